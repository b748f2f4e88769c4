#!/usr/bin/env python3
"""Tree-constrained against free beam search on a trained model's test set.

Decodes the run's prepared test CSV (MODEL_DIR/data/test.csv) twice with the
model of MODEL_DIR (averaged checkpoints, the config's beam and CTC weight):
once with ``tree_constrained_search: True`` (the default) and once without,
in the recipe's test order and batch size. Prints EM, EM-Tree, well-formed
share and the decoding real-time factor of each.

    python benchmarks/constrained_search.py stop_slu_demo/model
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

from stop_slu import parses
from stop_slu.inference import SLUParser
from stop_slu.metrics import score


def decode(parser: SLUParser, rows: list[dict], batch_size: int) -> tuple[dict, float]:
    """ID -> parse for every row, and the wall time spent (audio loading excluded)."""
    hyps, spent = {}, 0.0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        wavs, lens = parser.load_batch([r["wav"] for r in chunk])
        started = time.perf_counter()
        for row, parse in zip(chunk, parser.parse_batch(wavs, lens)):
            hyps[row["ID"]] = parse
        spent += time.perf_counter() - started
    return hyps, spent


def main(argv=None):
    args = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    args.add_argument("model_dir", help="a finished training output folder")
    args.add_argument("--batch-size", type=int, default=32, help="test batch size (default: the recipe's 32)")
    args = args.parse_args(argv)
    model_dir = Path(args.model_dir)
    with open(model_dir / "data" / "test.csv", encoding="utf-8") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: float(r["duration"]))
    audio_seconds = sum(float(r["duration"]) for r in rows)
    results = {}
    for constrained in (True, False):
        parser = SLUParser.from_folder(model_dir, overrides={"tree_constrained_search": constrained})
        refs = {r["ID"]: r["semantics"] for r in rows}
        if parser.hparams["decouple_output"]:
            refs = {k: parses.decouple(v) for k, v in refs.items()}
        hyps, spent = decode(parser, rows, args.batch_size)
        scores = score(refs, hyps, {r["ID"]: r["domain"] for r in rows})
        results["constrained" if constrained else "free"] = {
            **{k: scores[k] for k in ("em", "em_tree", "valid", "intent_acc", "slot_f1", "n")},
            "rtf": round(spent / audio_seconds, 4),
        }
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
