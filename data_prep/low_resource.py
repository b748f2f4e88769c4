"""STOP's low-resource and domain splits -> CSVs like the main ones.

Meta publishes them apart from the release (``low_resource_splits.tar.gz``):
held-in domains (alarm, event, messaging, music, navigation, timer) for train,
eval and test, and reminder and weather at 25 samples per intent and slot
(25 SPIS) for train and valid, plus held-out test files. Each ``.tsv`` is a
fairseq audio manifest:

```
/the/root/folder/on/the/machine/that/wrote/it
train/reminder_train/00001234.wav<TAB>53760
eval_0/reminder_eval_0/00000012.wav<TAB>48000
```

The first line names a folder of Meta's machine: paths are resolved against the
release given to ``stop-slu prepare`` instead. Labels come from the release's
own manifests, joined by path through the utterance ID (split folder, domain,
number), so the take-suffix quirk (``eval_0/reminder_eval_0/`` on disk as
``eval_0/reminder_eval/``) and a leading folder (``stop/train/...``) do not
matter. Each file becomes ``SAVE_DIR/<file stem>.csv`` with
the usual columns, checked like the main splits (``rows.prepare_split``).
Lines that repeat an earlier one (the 25-SPIS files have some) are dropped and
counted; every dropped line is listed in ``prepare_report.json``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from stop_slu.data_prep.release import SPLITS, utterance_id
from stop_slu.data_prep.rows import DUPLICATE_ROW, PrepareError, prepare_split, read_manifest


def find_low_resource_files(folder) -> dict[str, Path]:
    """``{name: path}`` of the fairseq-style manifests under ``folder``: every
    ``*.tsv`` whose first line is a folder (no tab). Other files are ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PrepareError(f"{folder}: no such folder; pass the extracted low_resource_splits folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.tsv")):
        with open(path, encoding="utf-8") as f:
            first = f.readline().strip()
        if not first or "\t" in first:
            continue
        if path.stem in found:
            raise PrepareError(
                f"{folder}: two low-resource files named {path.name} ({found[path.stem]}, {path}); "
                "pass the folder of one set only (e.g. the natural speech or the TTS one)"
            )
        if path.stem in SPLITS:
            raise PrepareError(f"{path}: named like a main split ({path.stem}.csv would be overwritten); rename it")
        found[path.stem] = path
    if not found:
        raise PrepareError(
            f"{folder}: no low-resource manifest here (a .tsv whose first line is a folder, "
            "then relative/path.wav<TAB>num_samples); pass the extracted low_resource_splits folder"
        )
    return found


def read_low_resource_file(path: Path) -> tuple[list[tuple[int, str]], list[dict]]:
    """``([(line number, relative wav path)], [malformed-line entries])``."""
    entries, malformed = [], []
    with open(path, encoding="utf-8") as f:
        f.readline()  # the root folder of the machine that wrote the file
        for number, line in enumerate(f, start=2):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != 2 or not fields[1].strip().isdigit() or not fields[0].strip():
                malformed.append(
                    {
                        "line": number,
                        "file_id": line[:200],
                        "reason": "malformed low-resource line (expected relative/path.wav<TAB>num_samples)",
                    }
                )
                continue
            entries.append((number, fields[0].strip()))
    return entries, malformed


def fingerprint(folder) -> str:
    """Changes when any low-resource file changes (name, size or time)."""
    parts = [str(Path(folder).resolve())]
    for name, path in find_low_resource_files(folder).items():
        stat = path.stat()
        parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def join_labels(entries, by_id: dict) -> tuple[list[tuple], list[dict]]:
    """Manifest rows (numbered by the low-resource line) for each entry, in the
    file's order, duplicates kept (``prepare_split`` drops and reports them);
    plus an entry for each path the release's manifests do not have."""
    rows, unknown = [], []
    for number, relative in entries:
        row = by_id.get(utterance_id(relative))
        if row is None:
            unknown.append({"line": number, "file_id": relative, "reason": "not in the release's manifests"})
        else:
            rows.append((number, *row[1:]))
    return rows, unknown


def prepare_low_resource(folder, root: Path, target: str, strict: bool, pool, progress: bool) -> dict:
    """``{name: (csv rows, skipped entries, report entry)}`` for every low-resource
    file under ``folder``, its rows checked by ``rows.prepare_split``
    (so these CSVs are made exactly like the main ones). ``strict`` turns any
    dropped line except a duplicate into an error."""
    files = find_low_resource_files(folder)
    by_id = {}
    for split in SPLITS:
        manifest = root / "manifests" / f"{split}.tsv"
        if manifest.is_file():
            by_id.update((utterance_id(row[1]), row) for row in read_manifest(manifest, target)[0])
    results = {}
    for name, path in files.items():
        entries, malformed = read_low_resource_file(path)
        rows, unknown = join_labels(entries, by_id)
        csv_rows, skipped, notes = prepare_split(root, name, (rows, []), None, pool, progress)
        skipped = sorted([{"split": name, **e} for e in malformed + unknown] + skipped, key=lambda e: e["line"])
        duplicates = sum(e["reason"] == DUPLICATE_ROW for e in skipped)
        if strict and len(skipped) > duplicates:
            first = next(e for e in skipped if e["reason"] != DUPLICATE_ROW)
            raise PrepareError(
                f"{path}:{first['line']}: {first['reason']} ({first['file_id']}); drop --strict to skip such lines"
            )
        entry = {
            "source": str(path),
            "lines": len(entries) + len(malformed),
            "written": len(csv_rows),
            "skipped": len(skipped),
            "duplicate_lines": duplicates,
            "hours": round(sum(float(r[1]) for r in csv_rows) / 3600, 3),
            **{k: v for k, v in notes.items() if k not in ("filtered_out_by_domain", "audio_fingerprint")},
        }
        results[name] = (csv_rows, skipped, entry)
    return results
