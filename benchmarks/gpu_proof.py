#!/usr/bin/env python3
"""The recipe's GPU paths, run and measured in one go (about 7 minutes on one H100/H200).

    bash benchmarks/gpu_proof.sh RESULTS_DIR          # on the GPU machine: install the wheels, then this
    python benchmarks/gpu_proof.py --device cuda --json RESULTS_DIR/gpu_proof.json
    python benchmarks/gpu_proof.py --device cpu --tiny --json /tmp/gpu_proof.json   # the same path on a CPU

What it does, each phase timed and recorded (ok, failed with its error, or
skipped when ``--budget-s`` is spent) in one JSON file:

1. ``environment``: the GPU's name, memory, torch / CUDA / package versions.
2. ``synth``: a mini-STOP (``stop-slu synth``: 3,600 train utterances, about
   2.2 h of eSpeak speech, 100 + 100 test texts in two takes) on every core.
3. ``mini``: the whole user path through the CLI: ``stop-slu train
   hparams/mini.yaml --device=cuda --precision=bf16 --max_train_minutes=2``
   (prepare, tokenizer, 2 minutes of training, averaged checkpoints, test
   with tree-constrained beam search), ``stop-slu export``, then ``stop-slu
   parse EXPORT a.wav --device cuda``: EM, steps, and the parse.
4. ``steps``: ``hparams/conformer.yaml`` and the on-device
   ``hparams/ebranchformer_small.yaml``, each with bf16 and then fp16, each in
   a fresh process: the recipe's own Brain (``recipes/STOP/train.py``'s
   ``SLU``: its data loader, speed perturbation, SpecAugment, joint CTC +
   attention loss, AMP) runs 3 untimed and 30 timed optimiser steps on real
   mini-STOP audio, batches filled to the config's ``max_batch_length``
   (600 s): bucket boundaries at the train durations' quantiles (the configs'
   own boundaries, 1.5 s to 30 s, are set for STOP's durations; both
   batchings are recorded under ``epoch_batches``). Recorded: audio-seconds
   per second over the timed steps (the clock read after a CUDA synchronise
   at the end of each step), audio per batch, peak GPU memory
   (``torch.cuda.max_memory_allocated`` and ``max_memory_reserved``), every
   loss and whether any was not finite, the steps the recipe skipped, and for
   fp16 the gradient scaler's scale at the end.
5. ``decoding``: after the conformer's bf16 steps, in that process, the
   recipe's test stage (``Brain.evaluate``: test loader, encoder, batched beam
   search with the config's beam and CTC weight, tree constraint on) on the
   mini-STOP test set, with ``max_decode_ratio`` set so that hypotheses are as
   long as the references (an untrained model would otherwise run every
   hypothesis to the length limit; a trained one stops when its parse is
   done): real-time factor = decoding wall time / audio seconds.

The GPU machine this is made for has PyTorch, torchaudio, sentencepiece,
pandas, matplotlib and transformers for Python 3.12, no network, and lacks
speechbrain, hyperpyyaml and its YAML library, soundfile (and cffi) and the
eSpeak wheel. They travel as wheels in the git-ignored ``.whl/`` folder, with a
wheel of this project (pure Python). Made on any machine with network, in the
repository root, right before the run (the project wheel is the working tree
as it is then):

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \\
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \\
        speechbrain==1.1.2 HyperPyYAML==1.2.3 ruamel.yaml==0.18.17 ruamel.yaml.clib==0.2.15 \\
        soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 espeakng-loader==0.2.4
    python3 -m pip wheel --no-deps --no-build-isolation -w .whl .

(about 14 MB). ``benchmarks/gpu_proof.sh`` installs them with ``pip install
--no-index --no-deps --target /tmp/site`` and runs this script; the CLI runs
in a work folder outside the repository, so the installed package (not the
source folder) is imported.

``--tiny`` (for a CPU): a small corpus, a model of a few thousand parameters,
short batches, 1 + 3 steps, 0.3 minutes of training: the same code path in a
few minutes, proving the script, not measuring anything.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HPARAMS = REPO / "hparams"
ON_DEVICE = "ebranchformer_small"

# --tiny: a model small enough for a few CPU steps in seconds (as the tests' TINY).
TINY_MODEL = [
    "--d_model=32",
    "--nhead=2",
    "--d_ffn=64",
    "--num_encoder_layers=1",
    "--num_decoder_layers=1",
    "--test_beam_size=2",
    "--avg_checkpoints=2",
    "--num_workers=0",
]


def sizes(tiny: bool) -> dict:
    """Corpus, training time and step counts of a full or a ``--tiny`` run."""
    if tiny:
        return {
            "train": 60,
            "test": 6,
            "minutes": 0.3,
            "warmup": 1,
            "steps": 3,
            "batch_seconds": 20,
            "model": TINY_MODEL,
            "mini_model": [*TINY_MODEL, "--number_of_epochs=2"],
        }
    return {"train": 3600, "test": 100, "minutes": 2, "warmup": 3, "steps": 30, "batch_seconds": None, "model": []}


# ---- helpers ------------------------------------------------------------------------------
def run_phase(results: dict, name: str, function, deadline: float, *args):
    """Run ``function(*args)`` as phase ``name`` unless the deadline has passed;
    record its result, or its error, and its wall-clock seconds."""
    if time.monotonic() > deadline:
        results[name] = {"status": "skipped", "reason": "out of time (--budget-s)"}
        print(f"[{name}] skipped: out of time", flush=True)
        return None
    print(f"[{name}] ...", flush=True)
    started = time.monotonic()
    try:
        value = function(*args)
        results[name] = {"status": "ok", **(value or {})}
    except Exception as error:  # a failure is a result too: record it, go on with the next phase
        results[name] = {"status": "failed", "error": f"{type(error).__name__}: {error}"[-4000:]}
        traceback.print_exc()
    results[name]["seconds"] = round(time.monotonic() - started, 1)
    print(f"[{name}] {results[name]['status']} in {results[name]['seconds']} s", flush=True)
    return results[name]


def cli(work: Path, log: Path, *args, timeout: float) -> str:
    """``stop-slu ARGS`` in a subprocess run in ``work`` (outside the repository,
    so the installed package is imported); its stdout, or RuntimeError with the
    end of its log."""
    command = [sys.executable, "-m", "stop_slu.cli", *map(str, args)]
    with open(log, "w", encoding="utf-8") as f:
        done = subprocess.run(command, cwd=work, stdout=subprocess.PIPE, stderr=f, text=True, timeout=timeout)
        f.write("\n---- stdout ----\n" + done.stdout)
    if done.returncode != 0:
        raise RuntimeError(f"stop-slu {args[0]} exited {done.returncode}: {log.read_text()[-2000:]}")
    return done.stdout


def versions() -> dict:
    """Versions of the packages the run uses, and the GPU."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    found = {"python": platform.python_version(), "torch_cuda": torch.version.cuda}
    for name in ("torch", "torchaudio", "speechbrain", "hyperpyyaml", "sentencepiece", "soundfile", "stop-slu"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        found.update(
            gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), gpus=torch.cuda.device_count()
        )
    found["cpus"] = os.cpu_count()
    return found


# ---- phases ---------------------------------------------------------------------------------
def synth_phase(data: Path, n: dict) -> dict:
    from stop_slu.data_prep.synth import synthesize

    if not (data / "manifests" / "test.tsv").is_file():
        synthesize(
            data, n_train=n["train"], n_eval=n["test"], n_test=n["test"], seed=0, workers=os.cpu_count(), progress=False
        )
    with open(data / "manifests" / "train.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return {"train_utterances": len(rows), "folder": str(data)}


def mini_phase(data: Path, work: Path, results_dir: Path, device: str, n: dict, deadline: float) -> dict:
    out, export = work / "mini", work / "mini_export"
    budget_s = max(60 * n["minutes"] + 120, deadline - time.monotonic() + 60)
    stdout = cli(
        work,
        work / "mini_train.log",
        "train",
        HPARAMS / "mini.yaml",
        f"--data_folder={data}",
        f"--output_folder={out}",
        f"--device={device}",
        "--precision=bf16",
        f"--max_train_minutes={n['minutes']}",
        *n.get("mini_model", []),
        timeout=budget_s,
    )
    scores = json.loads(stdout.strip().splitlines()[-1])
    cli(work, work / "mini_export.log", "export", out, export, timeout=300)
    wav = sorted((data / "test_1").rglob("*.wav"))[0]
    parsed = json.loads(cli(work, work / "mini_parse.log", "parse", export, wav, "--device", device, timeout=300))
    log = (out / "train_log.txt").read_text()
    for name in ("train_log.txt", "metrics_test.json"):
        shutil.copyfile(out / name, results_dir / f"mini_{name}")
    last_epoch = [line for line in log.splitlines() if line.startswith("epoch")][-1:]
    return {
        "test_em": scores["em"],
        "test_em_tree": scores["em_tree"],
        "test_valid": scores["valid"],
        "test_utterances": scores["n"],
        "last_epoch": last_epoch[0] if last_epoch else None,
        "parse": parsed,
    }


def steps_phase(
    config: str, precision: str, data: Path, work: Path, device: str, n: dict, decode: bool, deadline: float
) -> dict:
    """One fresh process: the timed steps (and the decoding) of ``config``."""
    out = work / f"steps_{config}_{precision}.json"
    command = [
        sys.executable,
        __file__,
        "--child",
        config,
        "--precision",
        precision,
        "--device",
        device,
        "--data",
        str(data),
        "--work",
        str(work),
        "--json",
        str(out),
        *(["--tiny"] if "mini_model" in n else []),
        *(["--decode"] if decode else []),
    ]
    with open(work / f"steps_{config}_{precision}.log", "w", encoding="utf-8") as log:
        timeout = max(120.0, deadline - time.monotonic() + 60)
        done = subprocess.run(command, cwd=work, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
    if done.returncode != 0:
        text = (work / f"steps_{config}_{precision}.log").read_text()
        raise RuntimeError(f"exit {done.returncode}: {text[-3000:]}")
    return json.loads(out.read_text())


# ---- the child: timed optimiser steps with the recipe's Brain ---------------------------------
def load_recipe(config: Path, data: Path, output: Path, argv: list[str], max_batch_length=None):
    """What ``train.main`` builds before fitting (hparams with the tokenizer's
    output size, run options, tokenizer, datasets); CSVs and tokenizer shared
    by every process of this config (``work/prepared_<config>``).
    ``max_batch_length``: seconds of audio per training batch instead of the
    config's (``--tiny``)."""
    import speechbrain as sb
    import yaml
    from hyperpyyaml import load_hyperpyyaml

    from stop_slu.recipe import train

    shared = output.parent / f"prepared_{config.stem}"
    argv = [
        str(config),
        f"--data_folder={data}",
        f"--output_folder={output}",
        f"--prepare_folder={shared}",
        f"--tokenizer_folder={shared / 'tokenizer'}",
        *argv,
    ]
    hparams_file, run_opts, overrides_text = sb.parse_arguments(argv)
    overrides = yaml.safe_load(overrides_text) or {}
    with open(hparams_file, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, overrides)
    train.prepare_data(hparams)
    tokenizer = train.build_tokenizer(hparams)
    if hparams["output_neurons"] != tokenizer.vocab_size:
        overrides["output_neurons"] = tokenizer.vocab_size
        with open(hparams_file, encoding="utf-8") as f:
            hparams = load_hyperpyyaml(f, overrides)
    sampler = hparams["dynamic_batch_sampler_train"]
    if max_batch_length:
        sampler["max_batch_length"] = max_batch_length
    as_configured = batch_stats(train.dataio_prepare(hparams, tokenizer)[3]["batch_sampler"])
    # Batches filled to max_batch_length. The config's num_buckets places SpeechBrain's
    # bucket boundaries on a log-normal curve whose last boundary is max_batch_length
    # (with 20 buckets and 600 s the first is 21 s): every STOP utterance falls in the
    # first bucket and a batch holds int(600 / 21) = 28 utterances, whatever their length
    # (as_configured shows it). Boundaries at the train durations' quantiles, k buckets
    # of at least 2.5 batches of audio each, fill each batch to about max_batch_length.
    with open(Path(hparams["prepare_folder"]) / f"{hparams['train_split']}.csv", encoding="utf-8") as f:
        durations = sorted(float(row["duration"]) for row in csv.DictReader(f))
    k = max(1, min(10, int(sum(durations) / (2.5 * sampler["max_batch_length"]))))
    sampler.pop("num_buckets", None)
    sampler["bucket_boundaries"] = sorted(
        {durations[min(len(durations) - 1, len(durations) * i // k)] for i in range(1, k + 1)}
    )
    datasets = train.dataio_prepare(hparams, tokenizer)
    hparams["bench_batches"] = {"as_configured": as_configured, "filled": batch_stats(datasets[3]["batch_sampler"])}
    return hparams, run_opts, tokenizer, datasets


def batch_stats(sampler) -> dict:
    """Utterances and seconds of audio per batch of one epoch of a DynamicBatchSampler."""
    batches = list(iter(sampler))
    audio = [sum(sampler.get_durations(batch)) for batch in batches]
    padded = [len(batch) * max(sampler.get_durations(batch)) for batch in batches]
    return {
        "batches": len(batches),
        "mean_utterances": round(sum(map(len, batches)) / len(batches), 1),
        "mean_audio_s": round(sum(audio) / len(batches), 1),
        "mean_padded_s": round(sum(padded) / len(batches), 1),
        "max_padded_s": round(max(padded), 1),
    }


def child_main(args) -> int:
    import tempfile

    import torch

    from stop_slu.recipe import train

    n = sizes(args.tiny)
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    config = HPARAMS / f"{args.child}.yaml"
    argv = [f"--device={args.device}", f"--precision={args.precision}", "--number_of_epochs=1000", *n["model"]]
    if not cuda:
        argv.append("--num_workers=0")

    class TimedSLU(train.SLU):
        """The recipe's Brain, noting each optimiser step's audio, loss and end."""

        def on_fit_batch_start(self, batch, should_step):
            wavs, lens = batch.sig
            self.bench_audio.append(float(lens.sum()) * wavs.shape[1] / 16000)
            self.bench_padded.append(wavs.shape[0] * wavs.shape[1] / 16000)
            super().on_fit_batch_start(batch, should_step)

        def on_fit_batch_end(self, batch, outputs, loss, should_step):
            super().on_fit_batch_end(batch, outputs, loss, should_step)
            sync()
            self.bench_losses.append(float(loss.detach()))
            self.bench_ends.append(time.perf_counter())

        def on_evaluate_start(self, max_key=None, min_key=None):
            pass  # decode with the weights in memory (no checkpoint was saved)

    with tempfile.TemporaryDirectory(dir=args.work) as output:
        hparams, run_opts, tokenizer, (train_data, _, test_data, loader_kwargs, _) = load_recipe(
            config, Path(args.data), Path(output), argv, max_batch_length=n["batch_seconds"]
        )
        total = n["warmup"] + n["steps"]
        brain = TimedSLU(
            modules=hparams["modules"],
            opt_class=hparams["Adam"],
            hparams=hparams,
            run_opts={**run_opts, "optimizer_step_limit": total},
            checkpointer=hparams["checkpointer"],
        )
        brain.tokenizer = tokenizer
        brain.bench_audio, brain.bench_padded, brain.bench_losses, brain.bench_ends = [], [], [], []
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        brain.fit(brain.hparams.epoch_counter, train_data, None, train_loader_kwargs=loader_kwargs)
        ends, audio = brain.bench_ends, brain.bench_audio
        timed_audio = audio[n["warmup"] : total]
        seconds = ends[total - 1] - ends[n["warmup"] - 1]
        scaler = getattr(brain, "scaler", None)
        result = {
            "config": config.name,
            "precision": args.precision,
            "device": args.device,
            "parameters_millions": round(sum(p.numel() for p in hparams["model"].parameters()) / 1e6, 2),
            "output_tokens": tokenizer.vocab_size,
            "max_batch_length_s": hparams["dynamic_batch_sampler_train"]["max_batch_length"],
            "bucket_boundaries_s": [round(b, 2) for b in hparams["dynamic_batch_sampler_train"]["bucket_boundaries"]],
            "epoch_batches": hparams["bench_batches"],
            "optimizer_steps": brain.optimizer_step,
            "batches": len(audio),
            "timed_steps": len(timed_audio),
            "timed_seconds": round(seconds, 3),
            "audio_s_per_s": round(sum(timed_audio) / seconds, 1),
            "audio_per_batch_s": {
                "mean": round(sum(timed_audio) / len(timed_audio), 1),
                "min": round(min(timed_audio), 1),
                "max": round(max(timed_audio), 1),
                "padded_mean": round(sum(brain.bench_padded[n["warmup"] : total]) / len(timed_audio), 1),
            },
            "losses": [round(x, 4) for x in brain.bench_losses],
            "nonfinite_losses": sum(not math.isfinite(x) for x in brain.bench_losses),
            "skipped_steps_last_epoch": brain.skipped_steps,
            "gradscaler_enabled": bool(scaler is not None and scaler.is_enabled()),
            "gradscaler_scale_end": float(scaler.get_scale()) if scaler is not None and scaler.is_enabled() else None,
        }
        if cuda:
            result["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            result["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
        if args.decode:
            result["decoding"] = decode(brain, hparams, tokenizer, test_data, sync)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "losses"}, indent=2))
    return 0


def decode(brain, hparams, tokenizer, test_data, sync) -> dict:
    """RTF of the recipe's test stage, hypotheses as long as the references."""
    from speechbrain.dataio.dataloader import make_dataloader

    with open(Path(hparams["prepare_folder"]) / f"{hparams['test_split']}.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    audio = sum(float(row["duration"]) for row in rows)
    ref_tokens = sum(len(tokenizer.encode(row["semantics"])) + 1 for row in rows)  # + end of sequence
    # The step limit is int(encoder frames of the batch's longest utterance x ratio): take
    # the ratio that makes the limits, summed over utterances, the references' tokens.
    # Encoder frames: 10 ms fbank frames, front-end stride 4.
    loader = make_dataloader(test_data, **hparams["test_dataloader_opts"])
    padded_frames = sum(len(batch.id) * batch.sig[0].shape[1] / 16000 / 0.04 for batch in loader)
    ratio = round(ref_tokens / padded_frames, 4)
    hparams["test_search"].max_decode_ratio = ratio
    hparams["tree_scorer"].max_decode_ratio = ratio

    class Timed:
        def __init__(self, search):
            self.search, self.seconds = search, 0.0

        def __call__(self, *args, **kwargs):
            sync()
            started = time.perf_counter()
            out = self.search(*args, **kwargs)
            sync()
            self.seconds += time.perf_counter() - started
            return out

    brain.hparams.test_search = search = Timed(hparams["test_search"])
    sync()
    started = time.perf_counter()
    brain.evaluate(test_data, max_key="ACC", test_loader_kwargs=hparams["test_dataloader_opts"])
    sync()
    seconds = time.perf_counter() - started
    hyp_tokens = [len(tokenizer.encode(hyp)) for _, hyp, _, _ in brain.decoded]
    return {
        "utterances": len(rows),
        "audio_seconds": round(audio, 1),
        "seconds": round(seconds, 2),
        "rtf": round(seconds / audio, 4),
        "search_rtf": round(search.seconds / audio, 4),
        "beam": hparams["test_beam_size"],
        "ctc_weight_decode": hparams["ctc_weight_decode"],
        "tree_constrained_search": hparams.get("tree_constrained_search"),
        "test_batch_size": hparams["test_dataloader_opts"]["batch_size"],
        "max_decode_ratio": ratio,
        "mean_ref_tokens": round(ref_tokens / len(rows), 1),
        "mean_hyp_tokens": round(sum(hyp_tokens) / len(hyp_tokens), 1),
    }


# ---- driver -----------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="torch device (default: %(default)s)")
    parser.add_argument("--work", default="/tmp/stop_slu_gpu_proof", help="work folder (default: %(default)s)")
    parser.add_argument("--json", default=None, help="results file (default: WORK/gpu_proof.json)")
    parser.add_argument("--tiny", action="store_true", help="tiny corpus, model and step counts (a CPU proof)")
    parser.add_argument(
        "--budget-s", type=float, default=450, help="start no phase after this many seconds (default: %(default)s)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--decode", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)

    started = time.monotonic()
    deadline = started + args.budget_s
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    json_path = Path(args.json) if args.json else work / "gpu_proof.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    n = sizes(args.tiny)
    data = work / ("mini_stop_tiny" if args.tiny else "mini_stop")
    results = {"command": " ".join(sys.argv), "device": args.device, "tiny": args.tiny}

    def save():
        results["total_seconds"] = round(time.monotonic() - started, 1)
        json_path.write_text(json.dumps(results, indent=2) + "\n")

    run_phase(results, "environment", versions, deadline)
    run_phase(results, "synth", synth_phase, deadline, data, n)
    save()
    if results["synth"]["status"] == "ok":
        run_phase(results, "mini", mini_phase, deadline, data, work, json_path.parent, args.device, n, deadline)
        save()
        for config in ("conformer", ON_DEVICE):
            for precision in ("bf16", "fp16"):
                decode = config == "conformer" and precision == "bf16"
                name = f"steps_{config}_{precision}"
                if precision == "fp16" and not args.device.startswith("cuda"):
                    results[name] = {"status": "skipped", "reason": "SpeechBrain runs fp16 on CUDA only"}
                    continue
                run_phase(
                    results,
                    name,
                    steps_phase,
                    deadline,
                    config,
                    precision,
                    data,
                    work,
                    args.device,
                    n,
                    decode,
                    deadline,
                )
                save()
    save()
    print(json.dumps({k: v.get("status") if isinstance(v, dict) else v for k, v in results.items()}, indent=2))
    print(f"results: {json_path}")
    failed = [k for k, v in results.items() if isinstance(v, dict) and v.get("status") == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
