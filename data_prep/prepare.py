"""STOP release -> SpeechBrain CSV manifests, validated, with a report.

``SAVE_DIR/{train,eval,test}.csv`` have the columns
``ID,duration,wav,domain,gender,native,transcript,semantics``; durations come
from wav headers (no decoding), wav paths are absolute, IDs keep split, take,
domain and number. ``SAVE_DIR/prepare_report.json`` counts rows per split and
lists every skipped row with its reason; nothing is dropped silently.

An earlier preparation in ``SAVE_DIR`` is reused only when the manifests, the
options and the audio files (presence, size and modification time of every wav
the manifests name) are all unchanged: a release extracted further, or a wav
deleted or rewritten since, is prepared again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from stop_slu.data_prep import low_resource as low_resource_files
from stop_slu.data_prep.release import DEFAULT_TARGET, DOMAINS, SPLITS, find_release_root
from stop_slu.data_prep.rows import (
    CSV_COLUMNS,  # noqa: F401  (the CSV format, named where users look for it)
    PrepareError,
    audio_fingerprint,
    finish_split,
    read_manifest,
    start_split,
    worker_pool,
    write_csv,
)

logger = logging.getLogger(__name__)

REPORT_NAME = "prepare_report.json"


def _fingerprint(root: Path, splits, domains, target, flat_only=False) -> str:
    parts = [str(root), target, ",".join(splits), ",".join(domains or ())] + ["flat_only"] * flat_only
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
    low_resource=None,
    flat_only: bool = False,
) -> dict:
    """Write the CSVs and the report; return the report.

    ``stop_dir`` is the folder holding ``manifests/`` (or its parent). With
    ``skip_if_done``, an earlier run with the same inputs and options is reused.
    ``strict`` turns any skipped row into an error. ``workers``: at most this
    many worker processes check rows (one per available core; big manifests
    only). ``low_resource``: the folder
    of STOP's low-resource files, each written as ``<file stem>.csv`` too
    (``data_prep/low_resource.py``; ``domains`` does not filter them).
    ``flat_only``: keep only utterances whose target has one intent and no
    nesting in the main splits (counted as ``filtered_out_not_flat``).
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
            raise PrepareError(
                f"{root / 'manifests' / (split + '.tsv')}: missing manifest; the release has {', '.join(SPLITS)}"
            )
    fingerprint = _fingerprint(root, splits, domains, target, flat_only)
    if low_resource:  # the low-resource files are inputs too
        fingerprint += low_resource_files.fingerprint(low_resource)
    report_path = save_dir / REPORT_NAME
    manifests = {split: root / "manifests" / f"{split}.tsv" for split in splits}
    if skip_if_done and report_path.is_file():
        old = _read_report(report_path)
        if old.get("fingerprint") == fingerprint and all((save_dir / f"{s}.csv").is_file() for s in splits):
            changed = [
                split
                for split in splits
                if old.get("audio", {}).get(split)
                != audio_fingerprint(root, read_manifest(manifests[split], target), domains, flat_only)
            ]
            if not changed:
                logger.info(
                    "Preparation reused: manifests, options and audio files unchanged since %s "
                    "(pass --force, or force_prep: True in the recipe, to redo it)",
                    report_path,
                )
                return old
            logger.info(
                "Preparing again: audio changed since %s in the %s split(s) (files added, removed or rewritten)",
                report_path,
                ", ".join(changed),
            )

    save_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "stop_dir": str(root.resolve()),
        "target": target,
        "domains": list(domains) if domains else "all",
        "flat_only": flat_only,
        "fingerprint": fingerprint,
        "splits": {},
        "skipped": [],
        "audio": {},
    }
    pool = worker_pool(workers, max(path.stat().st_size for path in manifests.values()))
    try:
        # Queue each split's checks as soon as its manifest is read: the workers
        # start while the next manifest is read, and go on with the next split
        # while this process writes the previous one. An unreadable manifest
        # still fails before any CSV is written.
        started = {
            split: start_split(root, read_manifest(manifests[split], target), domains, pool, flat_only)
            for split in splits
        }
        for split in splits:
            rows, skipped, notes = finish_split(split, started.pop(split), progress)
            if strict and skipped:
                first = skipped[0]
                raise PrepareError(
                    f"{manifests[split]}:{first['line']}: {first['reason']} ({first['file_id']}); "
                    f"{len(skipped)} row(s) would be skipped; drop --strict to skip them"
                )
            write_csv(save_dir / f"{split}.csv", rows)
            report["audio"][split] = notes.pop("audio_fingerprint")
            report["splits"][split] = {
                "manifest_rows": len(rows)
                + len(skipped)
                + notes["filtered_out_by_domain"]
                + notes["filtered_out_not_flat"],
                "written": len(rows),
                "skipped": len(skipped),
                "hours": round(sum(float(r[1]) for r in rows) / 3600, 3),
                **notes,
            }
            report["skipped"].extend(skipped)
        if low_resource:  # STOP's low-resource and domain splits
            found = low_resource_files.prepare_low_resource(low_resource, root, target, strict, pool, progress)
            for name, (rows, skipped, entry) in found.items():
                write_csv(save_dir / f"{name}.csv", rows)
                report["splits"][name] = entry
                report["skipped"].extend(skipped)
    finally:
        if pool is not None:
            pool.terminate()
    reasons: dict[str, int] = {}
    for entry in report["skipped"]:
        key = entry["reason"].split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    report["skipped_by_reason"] = reasons
    tmp = save_dir / f".{REPORT_NAME}.tmp"
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(report_path)
    return report


def _read_report(path: Path) -> dict:
    """An earlier report, or {} when it cannot be read (then preparation is redone)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def summary_line(report: dict) -> str:
    """One line: rows written per split and what was skipped, by reason."""
    written = ", ".join(f"{s} {v['written']}" for s, v in report["splits"].items())
    skipped = report.get("skipped_by_reason", {})
    if not skipped:
        return f"prepared {written}; nothing skipped"
    reasons = ", ".join(f"{n} {r}" for r, n in sorted(skipped.items()))
    return f"prepared {written}; skipped {sum(skipped.values())} row(s): {reasons} (see {REPORT_NAME})"
