#!/usr/bin/env python3
"""What the demo's corpus costs to synthesise: eSpeak NG alone in silence (the
old corpus) against the default (eSpeak NG and the neural voice, rooms, noise
and microphones), side by side in one run, alternating, on the same cores.

    python benchmarks/synth_cost.py                  # the demo's corpus: 3000 train, 150+150 eval/test
    python benchmarks/synth_cost.py --fraction 0.2   # a fifth of it (the ratio holds; seconds scale)

Prints wall seconds per corpus, CPU seconds of the process tree, and the ratio.
On a shared machine wall seconds depend on the load; the ratio much less so.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from stop_slu.data_prep.synth import synthesize

CORPORA = {
    "espeak, clean (before)": {"families": ("espeak",), "clean_share": 1.0},
    "espeak + piper, rooms/noise/mics (default)": {},
}


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fraction", type=float, default=1.0, help="share of the demo's corpus (default: all)")
    parser.add_argument("--workers", type=int, default=2, help="synthesis processes (default: 2, as the demo)")
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs of each corpus")
    args = parser.parse_args(argv)
    n_train, n_held = round(3000 * args.fraction), max(2, round(150 * args.fraction))
    results = {name: {"wall_s": [], "cpu_s": []} for name in CORPORA}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for name, options in CORPORA.items():
                out = Path(tmp) / f"c{repeat}"
                wall, cpu = time.perf_counter(), cpu_seconds()
                synthesize(out, n_train, n_held, n_held, seed=0, workers=args.workers, progress=False, **options)
                results[name]["wall_s"].append(round(time.perf_counter() - wall, 1))
                results[name]["cpu_s"].append(round(cpu_seconds() - cpu, 1))
                shutil.rmtree(out)
    before, after = (min(results[n]["wall_s"]) for n in CORPORA)
    summary = {
        "train": n_train,
        "eval_test_per_take": n_held,
        "workers": args.workers,
        "results": results,
        "wall_ratio": round(after / before, 2),
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
