#!/usr/bin/env python3
"""`stop-slu prepare` at the real STOP size, beside the obvious loop.

Builds a release-shaped tree with STOP's split sizes (120,935 train rows,
33,384 eval and 75,636 test rows, eval and test in two takes, the manifests'
folder-name quirk included). Manifest text is STOP's own (TOPv2's, which STOP
spoke) when ``../shared/topv2`` is there, so that targets repeat as in STOP;
else the built-in grammar's. A few real wavs spoken by eSpeak NG are hard-linked under every manifest
path (ext4 allows at most 65,000 links per file, so the links are spread over
all of them). The tree is built once under ``--work`` (in the temporary
folder by default, not in the repository) and reused.

Then it measures, side by side in the same run, each as a whole process:
  - ``naive``: the obvious single-process loop: pandas reads each manifest,
    ``soundfile.info`` on every wav (after resolving the folder quirk), pandas
    writes each CSV;
  - ``prepare``: the ``stop-slu prepare`` command (which also validates every
    parse, checks for duplicates and writes the report), worker processes
    included.
Wall time from start to exit (imports included); CPU time of the process and
all its children; peak memory of the whole process tree, sampled every 10 ms:
resident sets summed (RSS, which counts a page the workers share with the
main process once per process) and proportional sets summed (PSS, which
splits shared pages: the machine's real use).

    python benchmarks/prepare_full_size.py                # full size, 1 round
    python benchmarks/prepare_full_size.py --rounds 2     # alternate the order
    python benchmarks/prepare_full_size.py --text grammar # other text: 3x more distinct parses
    python benchmarks/prepare_full_size.py --before       # also the command as it ran before
    python benchmarks/prepare_full_size.py --scale 0.1    # a 10 % tree, quicker

The wavs are the same few files, so every header read hits the page cache
after the first: this measures CPU cost, not a cold disk (a real 50 GB
release read cold is slower for both methods).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STOP_SIZES = {"train": 120_935, "eval": 33_384, "test": 75_636}  # rows, both takes of eval/test
TOPV2_PLACES = (REPO.parent / "shared" / "topv2", REPO.parents[1] / "shared" / "topv2")  # beside a clone or a worktree
LINKS_PER_WAV = 60_000  # below ext4's 65,000 hard links per file


# ---- building the tree ----------------------------------------------------------
def utterance_texts(sizes: dict, topv2: Path, text: str = "topv2") -> tuple[str, dict]:
    """(source name, {split: one example per utterance}): STOP's own text (TOPv2,
    which STOP spoke) when ``text`` is "topv2" and ``topv2`` holds it, so that
    texts repeat as often as in STOP; else the built-in grammar's (distinct
    utterances: about three times as many distinct target parses)."""
    from stop_slu.data_prep import grammar, synth
    from stop_slu.data_prep.release import DOMAINS

    per_take = {split: n // (1 if split == "train" else 2) for split, n in sizes.items()}
    if text == "topv2" and (topv2 / "alarm_train.tsv").is_file():
        train = synth.topv2_examples(topv2, "train", DOMAINS)
        eval_ = synth.topv2_examples(topv2, "eval", DOMAINS)
        pools = {"train": train, "eval": eval_, "test": train[::-1]}  # no TOPv2 test text here: reuse train's
        source = f"TOPv2 text from {topv2}"
    else:
        drawn = grammar.generate(sum(per_take.values()), seed=0)
        pools = {"train": drawn, "eval": drawn[per_take["train"] :], "test": drawn[::-1]}
        source = "built-in grammar (distinct utterances: targets repeat less than in STOP)"
    return source, {split: [pools[split][i % len(pools[split])] for i in range(n)] for split, n in per_take.items()}


def build_release(release: Path, sizes: dict, topv2: Path, text: str = "topv2", progress: bool = True) -> str:
    """Manifests with ``sizes`` rows per split and a wav (hard link) behind each;
    returns where the text came from."""
    from tqdm import tqdm

    from stop_slu.data_prep import synth
    from stop_slu.data_prep.release import MANIFEST_COLUMNS, disk_path, manifest_file_id

    stamp = release / "built.json"
    wanted = {"sizes": sizes, "topv2": text == "topv2" and (topv2 / "alarm_train.tsv").is_file()}
    built = json.loads(stamp.read_text()) if stamp.is_file() else {}
    if {key: built.get(key) for key in wanted} == wanted:
        print(f"reusing the release-shaped tree in {release}")
        return built["text"]
    sources_dir = release.parent / "source_wavs"
    if not (sources_dir / "manifests" / "test.tsv").is_file():
        synth.synthesize(sources_dir, n_train=24, n_eval=4, n_test=4, seed=0, progress=progress)
    sources = sorted(sources_dir.glob("*/*/*.wav"))
    needed = -(-sum(sizes.values()) // LINKS_PER_WAV)
    if len(sources) < needed:
        raise SystemExit(f"{sources_dir}: {len(sources)} wavs, {needed} needed for the link limit")

    source, texts = utterance_texts(sizes, topv2, text)
    (release / "manifests").mkdir(parents=True, exist_ok=True)
    link_count = 0
    rng = random.Random(0)
    for split, examples in texts.items():
        fields_of = {}  # the manifest fields of each distinct text, computed once
        numbers: dict[str, int] = {}
        planned = []  # (fields, number) per utterance, shared by the takes
        for ex in examples:
            if ex not in fields_of:
                fields_of[ex] = synth.Row(split, 0, 1, ex, synth.espeak.random_voice(rng)).manifest_fields()
            numbers[ex.domain] = numbers.get(ex.domain, 0) + 1
            planned.append((fields_of[ex], numbers[ex.domain]))
        takes = (None,) if split == "train" else (0, 1)
        with open(release / "manifests" / f"{split}.tsv", "w", encoding="utf-8", newline="") as f:
            f.write("\t".join(MANIFEST_COLUMNS) + "\n")
            for take in takes:
                for fields, number in tqdm(planned, desc=f"linking {split} take {take}", disable=not progress):
                    domain = fields[1]
                    fields[0] = manifest_file_id(split, domain, number, take)
                    f.write("\t".join(fields) + "\n")
                    target = release / disk_path(split, domain, number, take)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if not target.exists():
                        os.link(sources[link_count % len(sources)], target)
                    link_count += 1
    stamp.write_text(json.dumps({**wanted, "text": source}))
    return source


# ---- the two methods, each run in a child process ----------------------------------
def naive_prepare(release: Path, out: Path) -> None:
    """The obvious loop: pandas in, soundfile.info per wav, pandas out."""
    import pandas as pd
    import soundfile as sf

    from stop_slu.data_prep.release import candidate_paths, utterance_id

    out.mkdir(parents=True, exist_ok=True)
    release = release.resolve()  # absolute wav paths, resolved once (not per file)
    for split in STOP_SIZES:
        frame = pd.read_csv(
            release / "manifests" / f"{split}.tsv",
            sep="\t",
            dtype=str,
            keep_default_na=False,
            quoting=csv.QUOTE_NONE,
        )
        rows = []
        for row in frame.itertuples(index=False):
            path = next((p for p in candidate_paths(release, row.file_id) if p.exists()), None)
            if path is None:
                continue
            info = sf.info(str(path))
            rows.append(
                {
                    "ID": utterance_id(row.file_id),
                    "duration": round(info.frames / info.samplerate, 4),
                    "wav": str(path),
                    "domain": row.domain,
                    "gender": row.gender,
                    "native": row.native,
                    "transcript": row.normalized_utterance,
                    "semantics": row.decoupled_normalized_seqlogical,
                }
            )
        pd.DataFrame(rows).to_csv(out / f"{split}.csv", index=False)


def project_prepare(release: Path, out: Path) -> None:
    from stop_slu.data_prep.prepare import prepare

    prepare(release, out, skip_if_done=False, progress=True)


METHODS = {"naive": naive_prepare, "prepare": project_prepare}
# The command as it ran before: its error handler imported stop_slu.inference
# (torch and SpeechBrain) before any work, and the workers forked from that.
BEFORE = "prepare_torch_loaded"
BEFORE_CODE = "import sys, stop_slu.inference; from stop_slu.cli import main; main(sys.argv[1:])"


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc/PID/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as f:
                    todo.extend(int(child) for child in f.read().split())
        except OSError:
            pass
    return found


def _memory_kib(pids) -> tuple[int, int]:
    """(summed resident set, summed proportional set) of ``pids`` in KiB: RSS
    counts a page shared by several processes once per process, PSS splits it."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss


def run_child(method: str, release: Path, out: Path) -> dict:
    """Run one method as a whole process, as a user would (``prepare``: the
    ``stop-slu prepare`` command, workers included; ``naive``: this script's
    loop): wall time from start to exit (imports included), CPU time of the
    process and all its children, and the peak over time of the memory of the
    whole process tree (sampled every 10 ms; RSS summed, and PSS summed)."""
    import threading

    if method in ("prepare", BEFORE):
        start = ["-m", "stop_slu.cli"] if method == "prepare" else ["-c", BEFORE_CODE]
        command = [sys.executable, *start, "prepare", str(release), str(out), "--force", "--quiet"]
    else:
        command = [sys.executable, __file__, "--child", method, "--release", str(release), "--out", str(out)]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, cwd=REPO)
    peak = {"rss": 0, "pss": 0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            rss, pss = _memory_kib(_tree(child.pid))
            peak["rss"], peak["pss"] = max(peak["rss"], rss), max(peak["pss"], pss)
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{method} failed (exit {child.returncode})")
    return {
        "method": method,
        "seconds": round(seconds, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mib": round(peak["rss"] / 1024, 1),
        "peak_pss_mib": round(peak["pss"] / 1024, 1),
        "largest_process_mib": round(usage.ru_maxrss / 1024, 1),
    }


def count_rows(folder: Path) -> dict:
    counts = {}
    for split in STOP_SIZES:
        with open(folder / f"{split}.csv", encoding="utf-8") as f:
            counts[split] = sum(1 for _ in f) - 1
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--work",
        default=str(Path(tempfile.gettempdir()) / "stop_slu_full_size"),
        help="work folder, outside the repository so that `grep -r` does not walk "
        "230,000 wav links (default: %(default)s)",
    )
    parser.add_argument(
        "--topv2",
        default=str(next((p for p in TOPV2_PLACES if p.is_dir()), TOPV2_PLACES[0])),
        help="TOPv2 folder for STOP's own text (default: %(default)s; without it, the grammar's)",
    )
    parser.add_argument(
        "--text",
        choices=("topv2", "grammar"),
        default="topv2",
        help="manifest text: TOPv2's (as STOP's; default) or the built-in grammar's (3x more distinct parses)",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of STOP's split sizes (default 1)")
    parser.add_argument("--rounds", type=int, default=1, help="timed rounds; the order alternates")
    parser.add_argument(
        "--before",
        action="store_true",
        help="also run the command as it was before (torch and SpeechBrain loaded first)",
    )
    parser.add_argument("--child", choices=sorted(METHODS), help=argparse.SUPPRESS)
    parser.add_argument("--release", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        METHODS[args.child](Path(args.release), Path(args.out))
        return 0

    work = Path(args.work)
    suffix = ("" if args.scale == 1.0 else f"_x{args.scale:g}") + ("" if args.text == "topv2" else f"_{args.text}")
    release = work / f"release{suffix}"
    sizes = {split: max(1, round(n * args.scale)) for split, n in STOP_SIZES.items()}
    sizes.update((split, 2 * max(1, round(sizes[split] / 2))) for split in ("eval", "test"))  # two takes
    text = build_release(release, sizes, Path(args.topv2), args.text)
    print(f"text: {text}")
    print(f"release: {release} ({', '.join(f'{s} {n:,}' for s, n in sizes.items())} manifest rows)")

    # Warm the dentry/inode caches once so neither method pays the first walk.
    run_child("prepare", release, work / "out_warmup")

    order = list(METHODS) + ([BEFORE] if args.before else [])
    results = {name: [] for name in order}
    for round_ in range(args.rounds):
        for name in order if round_ % 2 == 0 else order[::-1]:
            result = run_child(name, release, work / f"out_{name}")
            results[name].append(result)
            print(
                f"round {round_ + 1}: {name}: {result['seconds']:.1f} s wall, {result['cpu_s']:.1f} s CPU, "
                f"peak memory of the process tree: RSS {result['peak_rss_mib']:.0f} MiB, "
                f"PSS {result['peak_pss_mib']:.0f} MiB (largest process {result['largest_process_mib']:.0f})",
                flush=True,
            )
    for name in order:
        rows = count_rows(work / f"out_{name}")
        if rows != sizes:
            raise SystemExit(f"{name} wrote {rows}, expected {sizes}")
    best = {name: min(r["seconds"] for r in runs) for name, runs in results.items()}
    cpu = {name: min(r["cpu_s"] for r in runs) for name, runs in results.items()}
    peak = {name: max(r["peak_rss_mib"] for r in runs) for name, runs in results.items()}
    pss = {name: max(r["peak_pss_mib"] for r in runs) for name, runs in results.items()}
    summary = {
        "rows": sizes,
        "text": text,
        "rounds": args.rounds,
        "naive_s": best["naive"],
        "prepare_s": best["prepare"],
        "ratio": round(best["prepare"] / best["naive"], 3),
        "naive_cpu_s": cpu["naive"],
        "prepare_cpu_s": cpu["prepare"],
        "cpu_ratio": round(cpu["prepare"] / cpu["naive"], 3),
        "naive_peak_rss_mib": peak["naive"],
        "prepare_peak_rss_mib": peak["prepare"],
        "naive_peak_pss_mib": pss["naive"],
        "prepare_peak_pss_mib": pss["prepare"],
        "cpus": os.cpu_count(),
    }
    if args.before:
        summary.update(
            before_s=best[BEFORE],
            before_ratio=round(best[BEFORE] / best["naive"], 3),
            before_cpu_s=cpu[BEFORE],
            before_peak_rss_mib=peak[BEFORE],
            before_peak_pss_mib=pss[BEFORE],
        )
    print(json.dumps(summary, indent=2))
    print(
        f"prepare / naive wall time: {summary['ratio']:.3f}x (target <= 0.3x), "
        f"CPU time {summary['cpu_ratio']:.3f}x; "
        f"peak memory (whole process tree) RSS {peak['prepare']:.0f} MiB, PSS {pss['prepare']:.0f} MiB "
        "(target < 1024 MiB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
