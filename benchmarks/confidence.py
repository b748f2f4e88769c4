#!/usr/bin/env python3
"""What ``stop-slu parse``'s confidence says on a trained model: its values on
right and wrong parses of a test set, and on silence and noise.

    python benchmarks/confidence.py MODEL_DIR RELEASE_DIR [--limit 120]

MODEL_DIR: a training output folder or an export; RELEASE_DIR: the release the
model was tested on (a mini-STOP: manifests/test.tsv and its wavs). Prints JSON:
quantiles of the confidence for right parses (exact match with the decoupled
target), wrong ones, and 1-second silence and noise clips; and, per threshold,
the share of test utterances kept and the EM among them.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from stop_slu import parses
from stop_slu.data_prep.release import candidate_paths
from stop_slu.inference import SLUParser


def quantiles(values):
    if not values:
        return {}
    q = np.quantile(values, [0.1, 0.5, 0.9])
    return {"n": len(values), "p10": round(q[0], 3), "median": round(q[1], 3), "p90": round(q[2], 3)}


def main():
    args = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    args.add_argument("model_dir")
    args.add_argument("release_dir")
    args.add_argument("--limit", type=int, default=120, help="test utterances (default: %(default)s)")
    args = args.parse_args()
    release = Path(args.release_dir)
    with open(release / "manifests" / "test.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[: args.limit]
    parser = SLUParser.from_folder(args.model_dir)
    wavs = [
        next((p for p in candidate_paths(release, r["file_id"]) if p.is_file()), release / r["file_id"]) for r in rows
    ]
    results = parser.parse_files(wavs)
    right, wrong = [], []
    scored = []
    refused = [result for result in results if "error" in result]
    for row, result in zip(rows, results):
        if "error" in result:
            continue
        ok = parses.canonical(result["parse"]) == parses.canonical(row["decoupled_normalized_seqlogical"])
        (right if ok else wrong).append(result["confidence"])
        scored.append((result["confidence"], ok))
    with tempfile.TemporaryDirectory() as tmp:
        clips = []
        for seed in range(10):
            silence, noise = Path(tmp) / f"silence{seed}.wav", Path(tmp) / f"noise{seed}.wav"
            sf.write(silence, np.zeros(16000, "float32"), 16000)
            sf.write(noise, np.random.default_rng(seed).normal(0, 0.05, 16000).astype("float32"), 16000)
            clips += [silence, noise] if seed == 0 else [noise]
        non_speech = [r["confidence"] for r in parser.parse_files(clips)]
    thresholds = {}
    cuts = np.quantile([c for c, _ in scored], [0.1, 0.25, 0.5]) if scored else []
    for threshold in sorted({round(q, 2) for q in cuts}):
        kept = [ok for c, ok in scored if c >= threshold]
        thresholds[str(threshold)] = {
            "kept": round(100 * len(kept) / len(scored), 1),
            "em_of_kept": round(100 * sum(kept) / max(len(kept), 1), 1),
        }
    print(
        json.dumps(
            {
                "model": str(args.model_dir),
                "em": round(100 * len(right) / len(rows), 1),
                "refused": [f"{r['file']}: {r['error']}" for r in refused],
                "right": quantiles(right),
                "wrong": quantiles(wrong),
                "silence_and_noise": quantiles(non_speech),
                "thresholds": thresholds,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
