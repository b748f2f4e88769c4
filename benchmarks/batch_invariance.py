#!/usr/bin/env python3
"""Does batching change parses? A model's test clips parsed one at a time and
in padded batches, side by side in one process.

    python benchmarks/batch_invariance.py MODEL_DIR [--limit 64] [--batch-size 8]

MODEL_DIR: a training output folder or an export whose ``data/test.csv`` (a
training folder's) or ``--csv`` lists the clips; the first ``--limit`` rows,
in file order, so a batch mixes lengths as ``stop-slu parse a.wav b.wav ...``
and ``stop-slu evaluate`` do. Prints JSON: how many parses differ between
the two ways, how many confidences are below -1000 (a hypothesis forced past
the search's candidates), the largest confidence difference among equal
parses, and the wall seconds of each way (one torch thread).

To compare two versions of the code, run it from each checkout
(``git worktree add``) on the same model.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import torch

from stop_slu.inference import load_parser


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="training output folder or export")
    parser.add_argument("--csv", help="clips to parse (a prepared CSV; default MODEL/data/test.csv)")
    parser.add_argument("--limit", type=int, default=64, help="first N clips (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=8, help="padded batch size (default: %(default)s)")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    model = load_parser(args.model)
    with open(args.csv or Path(args.model) / "data" / "test.csv", encoding="utf-8") as f:
        wavs = [row["wav"] for row in csv.DictReader(f)][: args.limit]
    start = time.perf_counter()
    alone = [model.parse_files([wav])[0] for wav in wavs]
    seconds_alone = time.perf_counter() - start
    start = time.perf_counter()
    batched = model.parse_files(wavs, batch_size=args.batch_size)
    seconds_batched = time.perf_counter() - start

    differ = [(a["file"], a["parse"], b["parse"]) for a, b in zip(alone, batched) if a["parse"] != b["parse"]]
    same = [abs(a["confidence"] - b["confidence"]) for a, b in zip(alone, batched) if a["parse"] == b["parse"]]
    report = {
        "model": args.model,
        "clips": len(wavs),
        "batch_size": args.batch_size,
        "parses_differ": len(differ),
        "confidence_below_minus_1000": sum(b["confidence"] < -1000 for b in batched),
        "max_confidence_difference_of_equal_parses": round(max(same, default=0.0), 4),
        "seconds_alone": round(seconds_alone, 1),
        "seconds_batched": round(seconds_batched, 1),
        "examples": [{"file": f, "alone": a, "batched": b} for f, a, b in differ[:3]],
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
