"""STOP release -> SpeechBrain CSV manifests, validated, with a report.

``SAVE_DIR/{train,eval,test}.csv`` have the columns
``ID,duration,wav,domain,gender,native,transcript,semantics``; durations come
from wav headers (no decoding), wav paths are absolute, IDs keep split, take,
domain and number. ``SAVE_DIR/prepare_report.json`` counts rows per split and
lists every skipped row with its reason; nothing is dropped silently.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from stop_slu import parses
from stop_slu.data_prep.audio import SAMPLE_RATE, AudioError, audio_info
from stop_slu.data_prep.release import (
    DEFAULT_TARGET,
    DOMAINS,
    MANIFEST_COLUMNS,
    SPLITS,
    TRANSCRIPT_COLUMN,
    candidate_paths,
    find_release_root,
    utterance_id,
)

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("ID", "duration", "wav", "domain", "gender", "native", "transcript", "semantics")
REPORT_NAME = "prepare_report.json"
_NEEDED = ("file_id", "domain", "gender", "native", TRANSCRIPT_COLUMN)


class PrepareError(Exception):
    """Input that preparation cannot use at all; the message names path and fix."""


def read_manifest(path: Path, target: str) -> pd.DataFrame:
    """Every field as a string (no NaN, no quoting), columns checked by name."""
    try:
        frame = pd.read_csv(
            path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE,
            encoding="utf-8",
        )
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise PrepareError(f"{path}: unreadable manifest ({str(e).splitlines()[0]})") from None
    except OSError as e:
        raise PrepareError(f"{path}: cannot read ({e.strerror or e})") from None
    missing = [c for c in (*_NEEDED, target) if c not in frame.columns]
    if missing:
        hint = ""
        if target in missing and target not in MANIFEST_COLUMNS:
            hint = f"; --target must be one of {', '.join(MANIFEST_COLUMNS[4:])}"
        raise PrepareError(f"{path}: manifest lacks column(s) {', '.join(missing)}{hint}")
    return frame


def _check_row(root: Path, file_id: str, parse: str, transcript: str):
    """(wav path, info, None) for a usable row, else (None, None, reason)."""
    if not parse.strip():
        return None, None, "empty target parse"
    try:
        parses.parse_tree(parse)
    except parses.ParseError as e:
        return None, None, f"malformed target parse: {e}"
    if not transcript.strip():
        return None, None, "empty transcript"
    reason = "missing wav"
    for path in candidate_paths(root, file_id):
        try:
            return path.resolve(), audio_info(path), None
        except AudioError as e:
            if str(e) != "missing file":
                return None, None, f"bad wav: {e}"
    return None, None, reason


def _prepare_split(root, split, frame, target, domains, workers, progress):
    """(csv rows, skipped entries, notes) for one manifest."""
    keep = frame["domain"].isin(domains) if domains else pd.Series(True, index=frame.index)
    filtered_out = int((~keep).sum())
    frame = frame[keep]
    jobs = list(zip(frame.index, frame["file_id"], frame[target], frame[TRANSCRIPT_COLUMN]))
    extra = zip(frame["domain"], frame["gender"], frame["native"])
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(
            tqdm(
                pool.map(lambda job: _check_row(root, job[1], job[2], job[3]), jobs, chunksize=256),
                total=len(jobs), desc=f"prepare {split}", unit="row", disable=not progress,
            )
        )
    rows, skipped = [], []
    notes = {"filtered_out_by_domain": filtered_out, "resampled_at_load": 0, "downmixed_at_load": 0}
    seen_ids = set()
    for (index, file_id, parse, transcript), (domain, gender, native), (path, info, reason) in zip(
        jobs, extra, results
    ):
        line = int(index) + 2  # 1-based, after the header row
        uid = utterance_id(file_id)
        if reason is None and uid in seen_ids:
            reason = "duplicate row (same file_id as an earlier row)"
        if reason is not None:
            skipped.append({"split": split, "line": line, "file_id": file_id, "reason": reason})
            continue
        seen_ids.add(uid)
        notes["resampled_at_load"] += info.sample_rate != SAMPLE_RATE
        notes["downmixed_at_load"] += info.channels > 1
        rows.append(
            (uid, f"{info.duration:.4f}", str(path), domain, gender, native,
             transcript.strip(), parses.canonical(parse))
        )
    return rows, skipped, notes


def _fingerprint(root: Path, splits, domains, target) -> str:
    parts = [str(root), target, ",".join(splits), ",".join(domains or ())]
    for split in splits:
        stat = (root / "manifests" / f"{split}.tsv").stat()
        parts.append(f"{split}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def prepare(
    stop_dir,
    save_dir,
    splits=SPLITS,
    domains=None,
    target: str = DEFAULT_TARGET,
    strict: bool = False,
    workers: int = 16,
    progress: bool = True,
    skip_if_done: bool = True,
) -> dict:
    """Write the CSVs and the report; return the report.

    ``stop_dir`` is the folder holding ``manifests/`` (or its parent). With
    ``skip_if_done``, an earlier run with the same inputs and options is reused.
    ``strict`` turns any skipped row into an error.
    """
    stop_dir, save_dir = Path(stop_dir), Path(save_dir)
    if not stop_dir.is_dir():
        raise PrepareError(f"{stop_dir}: no such folder; pass the extracted STOP release (or run `stop-slu synth`)")
    try:
        root = find_release_root(stop_dir)
    except FileNotFoundError as e:
        raise PrepareError(str(e)) from None
    splits = tuple(splits)
    unknown = sorted(set(domains or ()) - set(DOMAINS))
    if unknown:
        raise PrepareError(f"unknown domain(s) {', '.join(unknown)}; STOP has {', '.join(DOMAINS)}")
    for split in splits:
        if not (root / "manifests" / f"{split}.tsv").is_file():
            raise PrepareError(f"{root / 'manifests' / (split + '.tsv')}: missing manifest; the release has {', '.join(SPLITS)}")
    fingerprint = _fingerprint(root, splits, domains, target)
    report_path = save_dir / REPORT_NAME
    if skip_if_done and report_path.is_file():
        old = json.loads(report_path.read_text())
        if old.get("fingerprint") == fingerprint and all((save_dir / f"{s}.csv").is_file() for s in splits):
            logger.info("Preparation already done with the same inputs: %s", report_path)
            return old

    save_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "stop_dir": str(root.resolve()),
        "target": target,
        "domains": list(domains) if domains else "all",
        "fingerprint": fingerprint,
        "splits": {},
        "skipped": [],
    }
    for split in splits:
        manifest = root / "manifests" / f"{split}.tsv"
        frame = read_manifest(manifest, target)
        rows, skipped, notes = _prepare_split(root, split, frame, target, domains, workers, progress)
        if strict and skipped:
            first = skipped[0]
            raise PrepareError(
                f"{manifest}:{first['line']}: {first['reason']} ({first['file_id']}); "
                f"{len(skipped)} row(s) would be skipped; drop --strict to skip them"
            )
        tmp = save_dir / f".{split}.csv.tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            writer.writerows(rows)
        tmp.replace(save_dir / f"{split}.csv")
        report["splits"][split] = {
            "manifest_rows": len(frame), "written": len(rows), "skipped": len(skipped),
            "hours": round(sum(float(r[1]) for r in rows) / 3600, 3), **notes,
        }
        report["skipped"].extend(skipped)
    reasons: dict[str, int] = {}
    for entry in report["skipped"]:
        key = entry["reason"].split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    report["skipped_by_reason"] = reasons
    tmp = save_dir / f".{REPORT_NAME}.tmp"
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(report_path)
    return report


def summary_line(report: dict) -> str:
    """One line: rows written per split and what was skipped, by reason."""
    written = ", ".join(f"{s} {v['written']}" for s, v in report["splits"].items())
    skipped = report.get("skipped_by_reason", {})
    if not skipped:
        return f"prepared {written}; nothing skipped"
    reasons = ", ".join(f"{n} {r}" for r, n in sorted(skipped.items()))
    return f"prepared {written}; skipped {sum(skipped.values())} row(s): {reasons} (see {REPORT_NAME})"
