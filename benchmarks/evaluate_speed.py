#!/usr/bin/env python3
"""``stop-slu evaluate`` speed on CPU: utterances per second of the demo-sized
model (``hparams/mini.yaml``, 2.9 M parameters) at several batch sizes, and
with two processes under torchrun (gloo), side by side in one run.

The model is ``--model DIR`` (any training folder or export, e.g. the demo's
``stop_slu_demo/model``), or else ``hparams/mini.yaml`` trained through
``stop-slu train`` for ``--model-steps`` optimiser steps on
``--train-utterances`` synthesised utterances. A barely trained model runs
most hypotheses to the length limit, where a trained one ends them with
end-of-sequence: its figures are a lower bound of a trained model's speed.
It decodes the synthesised test set (``--test-texts`` texts x 2 takes) with its
own search (beam 10, CTC pre-beam, tree constraint).
Each setting is a fresh ``stop-slu evaluate ... --restart`` subprocess; the
figure is evaluate's own (decoding wall time, audio loading included, model
loading not), as wall-clock and CPU rates: on a machine shared with other
jobs the CPU rate is the steadier one. Rounds alternate the order of the
settings; the table gives the means of the rounds.

    python benchmarks/evaluate_speed.py                  # batch 32 (the model's), 1; 2 processes
    python benchmarks/evaluate_speed.py --model stop_slu_demo/model --rounds 2

Data and the model are kept under ``--work`` and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(
    r"decoded (\d+) utterances \(([\d.]+) s of audio\) in ([\d.]+) s \(([\d.]+) CPU s\): ([\d.]+) utterances/s"
)


def ensure_data(work: Path, n_train: int, n_test: int) -> Path:
    """A mini-STOP for the benchmark (synthesised once)."""
    from stop_slu.data_prep.synth import synthesize

    data = work / f"mini_stop_{n_train}_{n_test}"
    if not (data / "manifests" / "test.tsv").is_file():
        synthesize(data, n_train=n_train, n_eval=20, n_test=n_test, seed=0, progress=False)
    return data


def ensure_model(work: Path, data: Path, steps: int) -> Path:
    """``hparams/mini.yaml`` trained ``steps`` optimiser steps on ``data`` (once)."""
    model = work / f"model_{data.name}_{steps}steps"
    if not (model / "metrics_test.json").is_file():
        command = [sys.executable, "-m", "stop_slu.cli", "train", "mini", f"--data_folder={data}"]
        command += [f"--output_folder={model}", f"--optimizer_step_limit={steps}", "--max_train_minutes=0"]
        subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return model


def run(setting: dict, model: Path, data: Path, out: Path, threads: int) -> dict:
    """One evaluation in a fresh process; evaluate's own figures."""
    processes = setting.get("processes", 1)
    launcher = [sys.executable, "-m", "stop_slu.cli"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        launcher += ["-m", "stop_slu.cli"]
    command = [*launcher, "evaluate", str(model), str(data), "--out", str(out), "--restart", "--quiet"]
    if setting.get("batch_size"):
        command += ["--batch_size", str(setting["batch_size"])]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    child = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{child.stderr[-2000:]}")
    n, audio, seconds, cpu, rate = LINE.search(child.stdout).groups()
    em = float(re.search(r"EM ([\d.]+)%", child.stdout).group(1))
    figures = {"utterances": int(n), "audio_s": float(audio), "seconds": float(seconds), "cpu_seconds": float(cpu)}
    return {**figures, "utt_per_s": float(rate), "utt_per_cpu_s": round(int(n) / float(cpu), 2), "em": em}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(REPO / "benchmarks" / "work" / "evaluate"), help="work folder")
    parser.add_argument("--model", help="the model to time (default: one trained here, see --model-steps)")
    parser.add_argument("--train-utterances", type=int, default=200, help="synthesised training utterances")
    parser.add_argument("--test-texts", type=int, default=25, help="test texts (x 2 takes) (default: %(default)s)")
    parser.add_argument("--model-steps", type=int, default=20, help="training steps (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds, the order alternating (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (default: %(default)s)")
    parser.add_argument(
        "--settings", default="batch32,batch1,ddp", help="which to run, the first the base (default: %(default)s)"
    )
    args = parser.parse_args(argv)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = ensure_data(work, args.train_utterances, args.test_texts)
    model = Path(args.model) if args.model else ensure_model(work, data, args.model_steps)
    settings = [
        {"key": "batch32", "name": "1 process, batch 32 (the model's)"},
        {"key": "batch1", "name": "1 process, batch 1", "batch_size": 1},
        {"key": "ddp", "name": "2 processes (torchrun, gloo), batch 32", "processes": 2},
    ]
    settings = [s for s in settings if s["key"] in args.settings.split(",")]
    results = {s["name"]: [] for s in settings}
    for round_no in range(args.rounds):
        for setting in settings if round_no % 2 == 0 else settings[::-1]:
            figures = run(setting, model, data, work / f"eval_{setting['key']}", args.threads)
            results[setting["name"]].append(figures)
            print(json.dumps({"round": round_no, "setting": setting["name"], **figures}), flush=True)
    base = sum(r["utt_per_s"] for r in results[settings[0]["name"]]) / args.rounds
    trained = f"hparams/mini.yaml, {args.model_steps} steps on {args.train_utterances} utterances"
    print(f"\nmodel: {model}" + ("" if args.model else f" ({trained})"))
    base_cpu = sum(r["utt_per_cpu_s"] for r in results[settings[0]["name"]]) / args.rounds
    print("| setting | utterances/s | x real time | utterances per CPU s | against the first (wall, CPU) | test EM |")
    print("|---|---|---|---|---|---|")
    for name, runs in results.items():
        rate = sum(r["utt_per_s"] for r in runs) / len(runs)
        per_cpu = sum(r["utt_per_cpu_s"] for r in runs) / len(runs)
        rtf = sum(r["seconds"] / r["audio_s"] for r in runs) / len(runs)
        print(
            f"| {name} | {rate:.2f} | {rtf:.3f} | {per_cpu:.2f} | {rate / base:.2f}x, {per_cpu / base_cpu:.2f}x "
            f"| {runs[0]['em']:.1f} |"
        )


if __name__ == "__main__":
    main()
