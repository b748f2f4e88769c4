#!/usr/bin/env python3
"""Training throughput and decoding speed of ``hparams/mini.yaml`` on CPU.

Training: the recipe (train.py's ``SLU`` Brain, its data loading, augmentation,
progress bar and checkpoint timer) trains for ``--warmup`` + ``--steps``
optimiser steps on synthesised mini-STOP; beside it, in the same run, a bare
PyTorch loop trains the same modules (built from the same YAML with the same
seed) with the same optimiser on the very same batches (the utterance IDs the
recipe used, collated and held in memory before the clock starts): waveform
augmentation as the YAML configures it, fbank, normalisation, forward, joint
CTC + attention loss, backward, gradient clipping, step, learning-rate
schedule. Both report utterances/s and audio-seconds/s over the timed steps
and the peak resident memory of their process (VmHWM), each in a fresh
subprocess; rounds alternate their order.

Decoding: a model trained briefly through ``stop-slu train`` (``--model-epochs``,
about 600 optimiser steps: its hypotheses end with end-of-sequence as a trained
model's do, while a random model runs every hypothesis to the length limit)
decodes the test set the way the recipe's test stage does (``evaluate``: test
loader batches, encoder, batched beam search with the YAML's beam and CTC
weight, scoring). RTF = decoding wall time / audio seconds, with and without
the tree constraint when the YAML has ``tree_constrained_search``.

    python benchmarks/throughput.py                     # both
    python benchmarks/throughput.py --skip-rtf          # training only
    python benchmarks/throughput.py --skip-training --threads 1
    python benchmarks/throughput.py --hparams OTHER.yaml -- --num_workers=2  # config, overrides

On a machine shared with other jobs, two torch threads stall whenever a core
is taken: ``--threads 1`` gives steadier numbers there.

Data and the briefly trained model are kept under ``--work`` and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HPARAMS = REPO / "hparams" / "mini.yaml"


# ---- shared setup --------------------------------------------------------------
def ensure_data(work: Path, n_train: int) -> Path:
    """A mini-STOP for the benchmark (synthesised once)."""
    from stop_slu.data_prep.synth import synthesize

    data = work / f"mini_stop_{n_train}"
    if not (data / "manifests" / "test.tsv").is_file():
        synthesize(data, n_train=n_train, n_eval=20, n_test=50, seed=0)
    return data


def load_recipe(data: Path, output: Path, overrides: list[str], share_prepared: bool = True):
    """What train.main builds before fitting: hparams (with the tokenizer's
    output size), run options, tokenizer and the datasets. ``share_prepared``:
    CSVs and tokenizer in one folder beside the data, for every training run
    (else in ``output``, as train.main keeps them)."""
    import speechbrain as sb
    import yaml
    from hyperpyyaml import load_hyperpyyaml

    from stop_slu.recipe import train

    argv = [str(HPARAMS), f"--data_folder={data}", f"--output_folder={output}", *overrides]
    if share_prepared:
        shared = data.parent / f"{data.name}_prepared"
        argv[3:3] = [f"--prepare_folder={shared}", f"--tokenizer_folder={shared / 'tokenizer'}"]
    hparams_file, run_opts, overrides_text = sb.parse_arguments(argv)
    yaml_overrides = yaml.safe_load(overrides_text) or {}
    with open(hparams_file, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, yaml_overrides)
    train.prepare_data(hparams)
    tokenizer = train.build_tokenizer(hparams)
    if hparams["output_neurons"] != tokenizer.vocab_size:
        yaml_overrides["output_neurons"] = tokenizer.vocab_size
        with open(hparams_file, encoding="utf-8") as f:
            hparams = load_hyperpyyaml(f, yaml_overrides)
    datasets = train.dataio_prepare(hparams, tokenizer)
    return hparams, run_opts, tokenizer, datasets


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM)."""
    with open("/proc/self/status", encoding="ascii") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return round(kib / 1024, 1)


def batch_size(batch) -> tuple[int, float]:
    """(utterances, audio seconds) of a collated batch."""
    wavs, lens = batch.sig
    return len(batch.id), float(lens.sum()) * wavs.shape[1] / 16000


def clock() -> tuple[float, float]:
    """(wall, CPU) seconds now; CPU of every thread of this process."""
    return time.perf_counter(), time.process_time()


def rates(sizes, start: tuple, end: tuple) -> dict:
    """Rates over the steps between two ``clock()`` readings."""
    utts, audio = sum(s[0] for s in sizes), sum(s[1] for s in sizes)
    seconds, cpu = end[0] - start[0], end[1] - start[1]
    return {
        "steps": len(sizes),
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "utterances": utts,
        "audio_seconds": round(audio, 1),
        "utt_per_s": round(utts / seconds, 2),
        "audio_s_per_s": round(audio / seconds, 2),
        "audio_s_per_cpu_s": round(audio / cpu, 2),
    }


# ---- training: the recipe ----------------------------------------------------------
def run_recipe(data: Path, overrides: list[str], warmup: int, steps: int, ids_file: Path) -> dict:
    from stop_slu.recipe import train

    class TimedSLU(train.SLU):
        """The recipe's Brain, noting when each optimiser step ends."""

        def on_fit_batch_start(self, batch, should_step):
            self.bench_sizes.append(batch_size(batch))
            self.bench_ids.append(list(batch.id))
            super().on_fit_batch_start(batch, should_step)

        def on_fit_batch_end(self, batch, outputs, loss, should_step):
            super().on_fit_batch_end(batch, outputs, loss, should_step)
            self.bench_ends.append(clock())

    with tempfile.TemporaryDirectory() as output:
        hparams, run_opts, tokenizer, (train_data, _, _, loader_kwargs, _) = load_recipe(data, Path(output), overrides)
        brain = TimedSLU(
            modules=hparams["modules"],
            opt_class=hparams["Adam"],
            hparams=hparams,
            run_opts={**run_opts, "optimizer_step_limit": warmup + steps},
            checkpointer=hparams["checkpointer"],
        )
        brain.tokenizer = tokenizer
        brain.bench_sizes, brain.bench_ids, brain.bench_ends = [], [], []
        brain.fit(brain.hparams.epoch_counter, train_data, None, train_loader_kwargs=loader_kwargs)
    ends = brain.bench_ends
    ids_file.write_text(json.dumps(brain.bench_ids))
    return rates(brain.bench_sizes[warmup : warmup + steps], ends[warmup - 1], ends[warmup + steps - 1])


# ---- training: the bare PyTorch loop ------------------------------------------------
def run_bare(data: Path, overrides: list[str], warmup: int, steps: int, ids_file: Path) -> dict:
    import torch
    from speechbrain.dataio.batch import PaddedBatch

    with tempfile.TemporaryDirectory() as output:
        hparams, run_opts, _, (train_data, _, _, _, _) = load_recipe(data, Path(output), overrides)
    position = {uid: i for i, uid in enumerate(train_data.data_ids)}
    batches = [PaddedBatch([train_data[position[uid]] for uid in ids]) for ids in json.loads(ids_file.read_text())]
    batches = batches[: warmup + steps]

    modules = torch.nn.ModuleDict(hparams["modules"]).train()
    optimizer = hparams["Adam"](modules.parameters())
    wav_augment, fea_augment = hparams["wav_augment"], hparams["fea_augment"]
    pad, weight, epoch = hparams["pad_index"], hparams["ctc_weight"], 1
    ends = []
    for batch in batches:
        wavs, wav_lens = batch.sig
        tokens_bos, tokens_eos, tokens = batch.tokens_bos.data, batch.tokens_eos, batch.tokens
        labels = [tokens_bos, tokens_eos.data, tokens_eos.lengths, tokens.data, tokens.lengths]
        if wav_augment is not None:
            wavs, wav_lens = wav_augment(wavs, wav_lens)
            labels = [wav_augment.replicate_labels(x) for x in labels]
        feats = hparams["compute_features"](wavs)
        feats = modules["normalize"](feats, wav_lens, epoch=epoch)
        if fea_augment is not None:
            feats, wav_lens = fea_augment(feats, wav_lens)
            labels = [fea_augment.replicate_labels(x) for x in labels]
        tokens_bos, eos, eos_lens, toks, toks_lens = labels
        enc_out, dec_out = modules["Transformer"](modules["CNN"](feats), tokens_bos, wav_lens, pad_idx=pad)
        p_ctc = torch.log_softmax(modules["ctc_lin"](enc_out), dim=-1)
        p_seq = torch.log_softmax(modules["seq_lin"](dec_out), dim=-1)
        loss = weight * hparams["ctc_cost"](p_ctc, toks, wav_lens, toks_lens) + (1 - weight) * hparams["seq_cost"](
            p_seq, eos, length=eos_lens
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(modules.parameters(), hparams["max_grad_norm"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        hparams["noam_annealing"](optimizer)
        ends.append(clock())
    return rates([batch_size(b) for b in batches[warmup : warmup + steps]], ends[warmup - 1], ends[warmup + steps - 1])


# ---- decoding ------------------------------------------------------------------------
def ensure_trained_model(work: Path, data: Path, epochs: int) -> Path:
    """A mini model trained for ``epochs`` epochs through the CLI (kept and
    reused). Epochs, not minutes: the same model however busy the machine."""
    model = work / f"model_{epochs}epochs"
    if not (model / "metrics_test.json").is_file():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "stop_slu.cli",
                "train",
                str(HPARAMS),
                f"--data_folder={data}",
                f"--output_folder={model}",
                f"--number_of_epochs={epochs}",
            ],
            check=True,
            cwd=REPO,
        )
    return model


def run_decoding(data: Path, model: Path, overrides: list[str]) -> dict:
    """RTF of the recipe's test stage with ``model``'s averaged checkpoints."""
    import csv

    from stop_slu.recipe import train

    class Timed:
        """Wraps the searcher to add up the time spent in it."""

        def __init__(self, search):
            self.search, self.seconds = search, 0.0

        def __call__(self, *args, **kwargs):
            started = time.perf_counter()
            out = self.search(*args, **kwargs)
            self.seconds += time.perf_counter() - started
            return out

    hparams, run_opts, tokenizer, (_, _, test_data, _, _) = load_recipe(data, model, overrides, share_prepared=False)
    brain = train.SLU(
        modules=hparams["modules"],
        opt_class=hparams["Adam"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.tokenizer = tokenizer
    brain.hparams.test_search = search = Timed(hparams["test_search"])
    with open(Path(hparams["prepare_folder"]) / f"{hparams['test_split']}.csv", encoding="utf-8") as f:
        audio = sum(float(row["duration"]) for row in csv.DictReader(f))
    started = clock()
    brain.evaluate(test_data, max_key="ACC", test_loader_kwargs=hparams["test_dataloader_opts"])
    seconds, cpu = (b - a for a, b in zip(started, clock()))
    hyp_tokens = [len(tokenizer.encode(hyp)) for _, hyp, _, _ in brain.decoded]
    ref_tokens = [len(tokenizer.encode(ref)) for _, _, ref, _ in brain.decoded]
    return {
        "utterances": len(brain.decoded),
        "audio_seconds": round(audio, 1),
        "seconds": round(seconds, 2),
        "rtf": round(seconds / audio, 4),
        "cpu_seconds_per_audio_second": round(cpu / audio, 4),
        "search_seconds": round(search.seconds, 2),
        "search_rtf": round(search.seconds / audio, 4),
        "beam": hparams["test_beam_size"],
        "ctc_weight_decode": hparams["ctc_weight_decode"],
        "test_batch_size": hparams["test_dataloader_opts"]["batch_size"],
        "tree_constrained_search": hparams.get("tree_constrained_search"),
        "em": round(brain.test_scores["em"], 1),
        "mean_hyp_tokens": round(sum(hyp_tokens) / len(hyp_tokens), 1),
        "mean_ref_tokens": round(sum(ref_tokens) / len(ref_tokens), 1),
    }


# ---- driver ---------------------------------------------------------------------------
def run_child(kind: str, args, extra: list[str]) -> dict:
    """Run one measurement in a fresh interpreter; returns its JSON result."""
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--work",
        args.work,
        "--train-utterances",
        str(args.train_utterances),
        "--warmup",
        str(args.warmup),
        "--steps",
        str(args.steps),
        "--model-epochs",
        str(args.model_epochs),
        "--threads",
        str(args.threads),
        "--hparams",
        args.hparams,
        "--",
        *extra,
    ]
    child = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=REPO)
    if child.returncode != 0:
        raise SystemExit(f"{kind} failed (exit {child.returncode})")
    return json.loads(child.stdout.strip().splitlines()[-1])


def child_main(args) -> int:
    import torch

    global HPARAMS
    HPARAMS = Path(args.hparams)
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work)
    data = ensure_data(work, args.train_utterances)
    ids_file = work / "recipe_batches.json"
    if args.child == "recipe":
        result = run_recipe(data, args.overrides, args.warmup, args.steps, ids_file)
    elif args.child == "bare":
        result = run_bare(data, args.overrides, args.warmup, args.steps, ids_file)
    else:
        model = ensure_trained_model(work, data, args.model_epochs)
        result = run_decoding(data, model, args.overrides)
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(REPO / "benchmarks" / "work" / "throughput"), help="work folder")
    parser.add_argument("--train-utterances", type=int, default=600, help="synthesised training utterances")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=30, help="timed optimiser steps (default: %(default)s)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="training rounds, the order alternating (default: %(default)s)"
    )
    parser.add_argument(
        "--model-epochs",
        type=int,
        default=15,
        help="training epochs of the model whose decoding is timed (default: %(default)s, "
        "about 600 optimiser steps on 600 utterances)",
    )
    parser.add_argument(
        "--hparams",
        default=str(HPARAMS),
        help="config (default: %(default)s); the decoded "
        "model is trained with it too, unless a model of that many epochs is already in --work",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's, one per core)")
    parser.add_argument("--skip-training", action="store_true", help="only the decoding RTF")
    parser.add_argument("--skip-rtf", action="store_true", help="only the training throughput")
    parser.add_argument("--child", choices=("recipe", "bare", "decode"), help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="recipe overrides (after --), e.g. --num_workers=2")
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)

    Path(args.work).mkdir(parents=True, exist_ok=True)
    ensure_data(Path(args.work), args.train_utterances)
    summary = {
        "hparams": args.hparams,
        "overrides": args.overrides,
        "cpus": os.cpu_count(),
        "threads": args.threads or "torch default",
    }
    if not args.skip_training:
        results = {"recipe": [], "bare": []}
        for round_ in range(args.rounds):
            # The recipe goes first in round 1: it records the batches the bare loop replays.
            for kind in ("recipe", "bare") if round_ % 2 == 0 else ("bare", "recipe"):
                result = run_child(kind, args, args.overrides)
                results[kind].append(result)
                print(
                    f"round {round_ + 1}: {kind}: {result['utt_per_s']} utt/s, {result['audio_s_per_s']} "
                    f"audio-s/s, peak RSS {result['peak_rss_mib']:.0f} MiB",
                    flush=True,
                )
        best = {kind: max(runs, key=lambda r: r["utt_per_s"]) for kind, runs in results.items()}
        summary["training"] = {
            **{kind: best[kind] for kind in best},
            "recipe_over_bare": round(best["recipe"]["utt_per_s"] / best["bare"]["utt_per_s"], 3),
            "rounds": results,
        }
        print(
            f"training: recipe {best['recipe']['utt_per_s']} utt/s, bare loop {best['bare']['utt_per_s']} utt/s: "
            f"{summary['training']['recipe_over_bare']:.3f}x (target >= 0.9x)"
        )
    if not args.skip_rtf:
        decoding = {}
        variants = {"as configured": []}
        if "tree_constrained_search" in Path(args.hparams).read_text():
            variants = {
                "tree constraint on": ["--tree_constrained_search=True"],
                "tree constraint off": ["--tree_constrained_search=False"],
            }
        for name, extra in variants.items():
            decoding[name] = run_child("decode", args, [*args.overrides, *extra])
            print(
                f"decoding ({name}): RTF {decoding[name]['rtf']} (search alone {decoding[name]['search_rtf']}), "
                f"beam {decoding[name]['beam']}, EM {decoding[name]['em']} (target RTF <= 0.05)",
                flush=True,
            )
        summary["decoding"] = decoding
    summary["load_average_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
