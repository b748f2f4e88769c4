#!/usr/bin/env python3
"""Estimate a config's GPU training memory at its default batch length, on CPU.

No GPU has been available to this project, so this is an ESTIMATE, not a
measurement. For a few batch lengths, a fresh process builds the recipe's
Brain from the config and runs one real training step (speed perturbation,
features, SpecAugment, forward, joint CTC + attention loss, backward, AdamW)
under bf16 autocast on CPU, on synthetic audio shaped like STOP commands
(``--utterance`` seconds each, 20-token targets). The step's peak memory above
the steady state (after a first step: weights, gradients and AdamW state in
place) is the activation memory. It grows linearly with the batch's total
audio (attention spans one utterance), so a line through the measurements is
extrapolated to the config's ``max_batch_length``; the steady part on a GPU is
16 bytes per trained parameter (fp32 weights, gradients, two AdamW moments).

    python benchmarks/gpu_memory_estimate.py hparams/conformer.yaml --lengths 40 80 120

Batches under ~40 s undercount (the step reuses memory the first step freed).
Not included: the CUDA context (~0.5 GiB), the caching allocator's
fragmentation and cuDNN workspaces; keep ~20 % headroom over the estimate.
Results and their reading: benchmarks/README.md, section GPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

GIB = 1024**3


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _batch(seconds: float, utterance: float, sample_rate: int, vocab: int):
    import torch
    from speechbrain.dataio.batch import PaddedBatch

    generator = torch.Generator().manual_seed(0)
    items = []
    for i in range(max(1, round(seconds / utterance))):
        tokens = torch.randint(4, vocab, (20,), generator=generator)
        items.append(
            {
                "id": f"utt{i}",
                "domain": "alarm",
                "semantics": "",
                "sig": 0.1 * torch.randn(int(utterance * sample_rate), generator=generator),
                "tokens_bos": torch.cat([torch.tensor([2]), tokens]),
                "tokens_eos": torch.cat([tokens, torch.tensor([3])]),
                "tokens": tokens,
            }
        )
    return PaddedBatch(items)


def measure(config: str, seconds: float, utterance: float, vocab: int) -> dict:
    """One process: peak memory of a training step on ``seconds`` of audio."""
    from hyperpyyaml import load_hyperpyyaml

    from stop_slu.recipe.train import SLU

    with tempfile.TemporaryDirectory() as tmp, open(config, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, {"data_folder": tmp, "output_folder": tmp, "output_neurons": vocab})
        brain = SLU(
            modules=hparams["modules"],
            opt_class=hparams["Adam"],
            hparams=hparams,
            run_opts={"device": "cpu", "precision": "bf16"},
        )
        brain.on_fit_start()
        brain.modules.train()
        rate = hparams["sample_rate"]
        brain.fit_batch(_batch(1.0, 1.0, rate, vocab))  # a tiny step: gradients and AdamW state in place
        steady = _status_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current size
        batch = _batch(seconds, utterance, rate, vocab)
        brain.fit_batch(batch)
        peak = _status_kib("VmHWM")
        trained = sum(p.numel() for p in hparams["model"].parameters() if p.requires_grad)
    return {
        "seconds": seconds,
        "utterances": len(batch),
        "step_peak_gib": (peak - steady) * 1024 / GIB,
        "trained_parameters": trained,
        "max_batch_length": hparams["dynamic_batch_sampler_train"]["max_batch_length"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--lengths", type=float, nargs="+", default=[40, 80, 120], help="batch lengths in seconds")
    parser.add_argument("--utterance", type=float, default=3.5, help="seconds per utterance (default: %(default)s)")
    parser.add_argument("--vocab", type=int, default=500, help="output tokens (default: %(default)s)")
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)  # internal: measure one length
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.config, args.one, args.utterance, args.vocab)))
        return

    import torch

    runs = []
    for seconds in args.lengths:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                args.config,
                "--one",
                str(seconds),
                "--utterance",
                str(args.utterance),
                "--vocab",
                str(args.vocab),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(runs[-1]), flush=True)
    x = torch.tensor([r["seconds"] for r in runs], dtype=torch.float64)
    y = torch.tensor([r["step_peak_gib"] for r in runs], dtype=torch.float64)
    slope = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
    intercept = float(y.mean() - slope * x.mean())
    length = runs[0]["max_batch_length"]
    activations = intercept + slope * length
    steady = 16 * runs[0]["trained_parameters"] / GIB
    print(
        json.dumps(
            {
                "config": args.config,
                "max_batch_length": length,
                "activation_gib_per_100s": round(100 * slope, 3),
                "estimated_activations_gib": round(activations, 1),
                "steady_gib": round(steady, 1),
                "estimated_peak_gib": round(activations + steady, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
