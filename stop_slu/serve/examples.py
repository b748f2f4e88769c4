"""Example clips for the page: the model's own test clips where its folder has them.

A training output folder lists its test set in ``data/test.csv`` (written by
the recipe's preparation: ID, wav, transcript, semantics, ...); an exported
model may carry wavs in an ``examples/`` folder. The clips are read once, when
the server starts, from the operator's model folder; requests choose one by
its index, never by a path.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

EXAMPLES_FOLDER = "examples"  # an exported model's own clips, if any
TEST_CSV = Path("data") / "test.csv"  # a training output folder's prepared test set
MAX_CLIP_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Example:
    """One clip: what was said (or the file name), its reference parse where known, the audio file's bytes."""

    text: str
    reference: str | None
    audio: bytes


def _from_test_csv(csv_path: Path, limit: int) -> list[Example]:
    with open(csv_path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    chosen, domains = [], set()
    for row in sorted(rows, key=lambda r: (r.get("domain", ""), r.get("ID", ""))):
        if row.get("domain") in domains:  # one clip per domain first
            continue
        wav = Path(row.get("wav", ""))
        if wav.is_file() and wav.stat().st_size <= MAX_CLIP_BYTES:
            chosen.append(Example(row.get("transcript") or wav.name, row.get("semantics"), wav.read_bytes()))
            domains.add(row.get("domain"))
        if len(chosen) == limit:
            break
    return chosen


def find_examples(source, limit: int = 4) -> list[Example]:
    """Up to ``limit`` clips from the model folder ``source`` (one per domain
    where the test set has several), or [] when it has none (a Hub id, an
    export without ``examples/``, a test set whose wavs have moved)."""
    folder = Path(str(source))
    if not folder.is_dir():
        return []
    if (folder / TEST_CSV).is_file():
        try:
            return _from_test_csv(folder / TEST_CSV, limit)
        except (OSError, csv.Error, UnicodeDecodeError):
            return []
    clips = sorted((folder / EXAMPLES_FOLDER).glob("*.wav"))[:limit] if (folder / EXAMPLES_FOLDER).is_dir() else []
    return [Example(p.stem, None, p.read_bytes()) for p in clips if p.stat().st_size <= MAX_CLIP_BYTES]
