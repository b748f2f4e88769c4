"""The tokenizer stage: a prepared folder's train CSV -> a tokenizer folder, with a report.

``stop-slu tokenizer PREPARED_DIR OUT`` calls ``tokenizer_stage``; ``--sizes``
calls ``compare_sizes``. The folder written is the one the recipe writes to
``save/tokenizer/`` (``tokenizer.model`` + ``tokenizer.json``), so a training run
reuses it with ``--tokenizer_from=OUT``; ``reuse_problems`` says why a folder
cannot serve a run's training targets.
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
import time
from pathlib import Path

from stop_slu import parses
from stop_slu.tokenizer.parse_tokenizer import BOUNDARY, MODEL_NAME, UNK_ID, ParseTokenizer, train_tokenizer

REPORT_NAME = "prepare_report.json"  # written by stop-slu prepare beside the CSVs
OTHER_SPLITS = ("eval", "test")


def read_targets(prepared_dir, split: str = "train") -> list[str]:
    """The ``semantics`` column of ``PREPARED_DIR/<split>.csv``, canonical.

    Raises ``ValueError`` (one line naming the file) when the CSV is missing,
    has no ``semantics`` column or no rows.
    """
    path = Path(prepared_dir) / f"{split}.csv"
    if not path.is_file():
        raise ValueError(f"{path}: no such file; pass a folder written by `stop-slu prepare` (or --split)")
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if "semantics" not in (reader.fieldnames or []):
            raise ValueError(f"{path}: no semantics column; this is not a CSV written by `stop-slu prepare`")
        targets = [parses.canonical(row["semantics"]) for row in reader]
    if not targets:
        raise ValueError(f"{path}: no rows; prepare a split with utterances")
    return targets


def prepared_target(prepared_dir, target_column: str | None) -> str | None:
    """The manifest column the prepared CSVs hold (``prepare_report.json``'s
    ``target``). ``target_column``, when given, must be that column: raises
    ``ValueError`` otherwise (the CSVs hold one target column only)."""
    report = Path(prepared_dir) / REPORT_NAME
    found = json.loads(report.read_text()).get("target") if report.is_file() else None
    if target_column and found and target_column != found:
        raise ValueError(
            f"{prepared_dir}: prepared from {found}, not {target_column}; "
            f"run `stop-slu prepare STOP_DIR DIR --target {target_column}` first, or drop --target_column"
        )
    return target_column or found


def uncovered_characters(tokenizer: ParseTokenizer, targets) -> list[str]:
    """Characters of the words of ``targets`` (labels aside) that encode to
    ``<unk>``: they can never be output. Sorted."""
    words = {w for t in targets for w in parses.tokenize(t) if not parses.is_structure(w)}
    chars = {c for w in words for c in w}
    return sorted(c for c in chars if UNK_ID in tokenizer.encode(c))


def missing_labels(tokenizer: ParseTokenizer, targets) -> list[str]:
    """Labels (``[IN:X``, ``[SL:Y``) of ``targets`` that are not single pieces
    of ``tokenizer``: a model with it can never output them. Sorted."""
    pieces = set(tokenizer.pieces())
    return sorted({label for t in targets for label in parses.labels(t)} - {p.lstrip(BOUNDARY) for p in pieces})


def reuse_problems(tokenizer: ParseTokenizer, targets) -> list[str]:
    """Why ``tokenizer`` cannot serve a model trained on ``targets`` (STOP
    parses): labels it lacks and characters it does not cover, each as a short
    phrase; empty when it can."""
    problems = []
    labels = missing_labels(tokenizer, targets)
    if labels:
        shown = ", ".join(labels[:5]) + (f" and {len(labels) - 5} more" if len(labels) > 5 else "")
        problems.append(f"{len(labels)} label(s) of the train split are not among its pieces ({shown})")
    chars = uncovered_characters(tokenizer, targets)
    if chars:
        problems.append(f"{len(chars)} character(s) of the train split are not covered ({''.join(chars[:20])!r})")
    return problems


def _percentile(values, q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def piece_counts(tokenizer: ParseTokenizer, targets) -> dict:
    """Pieces per target: ``mean``, ``p95`` (nearest rank) and ``max``."""
    counts = [len(tokenizer.encode(t)) for t in targets]
    return {"mean": round(sum(counts) / len(counts), 2), "p95": _percentile(counts, 95), "max": max(counts)}


def describe(tokenizer: ParseTokenizer, targets, others: dict | None = None, n_examples: int = 3) -> dict:
    """The report of ``tokenizer`` on its training ``targets`` and on the
    ``others`` splits (``{split name: targets}``): pieces, labels, pieces per
    target, uncovered characters and missing labels per split, and
    ``n_examples`` segmentations (targets at the quartiles of piece count)."""
    counted = sorted(set(targets), key=lambda t: (len(tokenizer.encode(t)), t))
    picks = [counted[min(len(counted) - 1, (i + 1) * len(counted) // (n_examples + 1))] for i in range(n_examples)]
    report = {
        "folder": str(tokenizer.folder),
        "pieces": tokenizer.vocab_size,
        "requested": tokenizer.meta.get("vocab_size"),
        "type": tokenizer.meta.get("model_type"),
        "target_column": tokenizer.meta.get("target_column"),
        "labels": len(tokenizer.labels),
        "targets": len(targets),
        "pieces_per_target": piece_counts(tokenizer, targets),
        "uncovered": {"train": uncovered_characters(tokenizer, targets)},
        "missing_labels": {},
        "examples": [" ".join(tokenizer.sp.encode(t, out_type=str)) for t in dict.fromkeys(picks)],
    }
    for name, split_targets in (others or {}).items():
        report["uncovered"][name] = uncovered_characters(tokenizer, split_targets)
        report["missing_labels"][name] = missing_labels(tokenizer, split_targets)
    return report


def _other_targets(prepared_dir, split: str) -> dict:
    return {
        name: read_targets(prepared_dir, name)
        for name in OTHER_SPLITS
        if name != split and (Path(prepared_dir) / f"{name}.csv").is_file()
    }


def tokenizer_stage(
    prepared_dir,
    out,
    vocab_size: int = 400,
    model_type: str = "unigram",
    split: str = "train",
    target_column: str | None = None,
) -> tuple[ParseTokenizer, dict]:
    """Train the tokenizer on ``PREPARED_DIR/<split>.csv`` into ``out`` (reused
    when the targets and options are unchanged); return it and its report
    (``describe``, on the eval and test CSVs too when present).

    Raises ``ValueError`` (one line) for a missing or empty CSV, a
    ``target_column`` the CSVs were not prepared from, or a ``vocab_size``
    too small for the targets.
    """
    target_column = prepared_target(prepared_dir, target_column)
    targets = read_targets(prepared_dir, split)
    try:
        tokenizer = train_tokenizer(targets, out, vocab_size, model_type, target_column=target_column)
    except ValueError as error:
        raise ValueError(f"{Path(prepared_dir) / (split + '.csv')}: {error}") from None
    return tokenizer, describe(tokenizer, targets, _other_targets(prepared_dir, split))


def compare_sizes(
    prepared_dir,
    sizes,
    model_type: str = "unigram",
    split: str = "train",
    target_column: str | None = None,
    on_row=None,
) -> list[dict]:
    """Train one tokenizer per requested size in a temporary folder (none is
    kept) and return a row per size: ``requested``, ``pieces``, pieces per
    target (``mean``, ``p95``, ``max``), ``seconds`` (wall-clock training
    time), or ``error`` when that size cannot be trained. ``on_row(row)`` is
    called as each row is ready (progress)."""
    prepared_target(prepared_dir, target_column)
    targets = read_targets(prepared_dir, split)
    rows = []
    with tempfile.TemporaryDirectory(prefix="stop_slu_tokenizer_") as tmp:
        for size in sizes:
            started = time.perf_counter()
            try:
                tokenizer = train_tokenizer(targets, Path(tmp) / str(size), size, model_type)
                row = {"requested": size, "pieces": tokenizer.vocab_size, **piece_counts(tokenizer, targets)}
            except ValueError as error:
                row = {"requested": size, "error": str(error)}
            row["seconds"] = round(time.perf_counter() - started, 2)
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def format_report(report: dict) -> str:
    """``describe``'s report as the few lines ``stop-slu tokenizer`` prints."""
    per = report["pieces_per_target"]
    lines = [
        f"tokenizer: {report['folder']} ({report['type']}, {report['pieces']} pieces for {report['requested']} "
        f"requested; trained on {report['targets']} targets of {report['target_column'] or 'an unknown column'})",
        f"labels: {report['labels']} intent/slot labels, each one piece, and ']'",
        f"pieces per target: mean {per['mean']}, 95th percentile {per['p95']}, max {per['max']}",
    ]
    for name, chars in report["uncovered"].items():
        missing = report["missing_labels"].get(name, [])
        text = f"{name}: characters not covered: {''.join(chars) if chars else 'none'}"
        if name in report["missing_labels"]:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            text += f"; labels it lacks (never output): {shown if missing else 'none'}"
        lines.append(text)
    lines.append("examples:")
    lines += [f"  {example}" for example in report["examples"]]
    return "\n".join(lines)


SIZE_HEADER = f"{'requested':>9} {'pieces':>6} {'mean':>6} {'p95':>5} {'max':>5} {'seconds':>7}"


def format_size_row(row: dict) -> str:
    """One line of the ``--sizes`` table (under ``SIZE_HEADER``)."""
    if "error" in row:
        return f"{row['requested']:>9} {row['error']}"
    return (
        f"{row['requested']:>9} {row['pieces']:>6} {row['mean']:>6.2f} {row['p95']:>5} "
        f"{row['max']:>5} {row['seconds']:>7.2f}"
    )


def is_tokenizer_folder(folder) -> bool:
    """``folder`` holds a trained tokenizer (``tokenizer.model``)."""
    return (Path(folder) / MODEL_NAME).is_file()
