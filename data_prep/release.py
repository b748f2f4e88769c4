"""The layout of the STOP release, as written by Meta and read by the recipe.

```
stop/
  manifests/train.tsv  eval.tsv  test.tsv
  train/<domain>_train/00000001.wav
  eval_0/<domain>_eval/...   eval_1/<domain>_eval/...
  test_0/<domain>_test/...   test_1/<domain>_test/...
```
Manifests are tab separated with one header row. Eval and test manifests name
the folder with the take suffix (``eval_0/alarm_eval_0/x.wav``) while the disk
does not (``eval_0/alarm_eval/x.wav``).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

DOMAINS = ("alarm", "event", "messaging", "music", "navigation", "reminder", "timer", "weather")
SPLITS = ("train", "eval", "test")
TAKES = (0, 1)  # eval and test are recorded twice, by different speakers

MANIFEST_COLUMNS = (
    "file_id",
    "domain",
    "gender",
    "native",
    "utterance",
    "seqlogical",
    "normalized_utterance",
    "normalized_seqlogical",
    "decoupled_normalized_seqlogical",
)
TRANSCRIPT_COLUMN = "normalized_utterance"
# Full parses: every word and label of the utterance, so a tokenizer trained on them also
# covers the decoupled targets (their labels and slot words are a subset) and serves every config.
DEFAULT_TARGET = "normalized_seqlogical"


def manifest_file_id(split: str, domain: str, number: int, take: int | None = None) -> str:
    """The ``file_id`` the release's manifest uses (with its folder quirk)."""
    if split == "train":
        return f"train/{domain}_train/{number:08d}.wav"
    return f"{split}_{take}/{domain}_{split}_{take}/{number:08d}.wav"


def disk_path(split: str, domain: str, number: int, take: int | None = None) -> str:
    """Where the release stores that file, relative to ``stop/``."""
    if split == "train":
        return f"train/{domain}_train/{number:08d}.wav"
    return f"{split}_{take}/{domain}_{split}/{number:08d}.wav"


_TAKE_SUFFIX_RE = re.compile(r"^(?P<stem>.+_(?:eval|test|valid))_\d+$")


def candidate_paths(root: Path, file_id: str) -> list[Path]:
    """Paths to try for a manifest ``file_id``: as given, then with the
    take suffix removed from the domain folder (the release's quirk)."""
    parts = PurePosixPath(file_id).parts
    candidates = [root.joinpath(*parts)]
    if len(parts) >= 2:
        match = _TAKE_SUFFIX_RE.match(parts[-2])
        if match:
            fixed = parts[:-2] + (match["stem"],) + parts[-1:]
            candidates.append(root.joinpath(*fixed))
    return candidates


def utterance_id(file_id: str) -> str:
    """A stable ID that keeps split, take, domain and number:
    ``eval_1/alarm_eval_1/00002321.wav`` -> ``eval_1-alarm-00002321``."""
    parts = file_id.split("/")
    dot = parts[-1].rfind(".")
    if len(parts) >= 3 and 0 < dot < len(parts[-1]) - 1 and "" not in parts and "." not in parts:
        # Plain IDs (all of STOP's): the same result as the pathlib code below, 4x
        # faster (preparation calls this 230,000 times).
        return f"{parts[-3]}-{parts[-2].split('_')[0]}-{parts[-1][:dot]}"
    parts = PurePosixPath(file_id).parts
    stem = PurePosixPath(file_id).stem
    if len(parts) >= 3:
        folder = parts[-2]
        domain = folder.split("_")[0]
        return f"{parts[-3]}-{domain}-{stem}"
    return "-".join(PurePosixPath(file_id).with_suffix("").parts)


def find_release_root(path: Path) -> Path:
    """The folder holding ``manifests/``: ``path`` itself or ``path/stop``."""
    for candidate in (path, path / "stop"):
        if (candidate / "manifests").is_dir():
            return candidate
    raise FileNotFoundError(
        f"{path}: no manifests/ folder here or in {path / 'stop'}; "
        "pass the extracted STOP folder (the one holding manifests/ and train/)"
    )


_ID_RE = re.compile(r"^(?:train|(?:eval|test|valid)(?:_\d+)?)-(?P<domain>[a-z]+)-\w+$")


def domain_of(uid: str) -> str | None:
    """The domain inside an ID made by ``utterance_id``, else None."""
    match = _ID_RE.match(uid)
    return match["domain"] if match and match["domain"] in DOMAINS else None
