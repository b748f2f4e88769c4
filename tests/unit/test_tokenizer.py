"""SentencePiece with labels as single pieces; rebuilt when targets change; the
``stop-slu tokenizer`` stage, its report and size comparison; reuse by a training run."""

import csv
import logging
import math
import tempfile

import pytest
from conftest import run_cli

from stop_slu import cli, parses
from stop_slu.data_prep.prepare import PrepareError
from stop_slu.stages import build_tokenizer
from stop_slu.tokenizer.parse_tokenizer import BOUNDARY, ParseTokenizer, train_tokenizer
from stop_slu.tokenizer.stage import describe, reuse_problems


def train_targets(prepared):
    save, _ = prepared
    with open(save / "train.csv", encoding="utf-8") as f:
        return [row["semantics"] for row in csv.DictReader(f)]


def test_labels_are_single_pieces_and_round_trip(prepared, tmp_path):
    targets = train_targets(prepared)
    tok = train_tokenizer(targets, tmp_path / "tok", vocab_size=150)
    labels = {label for t in targets for label in parses.labels(t)}
    pieces = set(tok.pieces())
    for label in labels | {"]"}:
        assert BOUNDARY + label in pieces
    for target in targets:
        ids = tok.encode(target)
        assert tok.decode(ids) == target
        n_structure = sum(parses.is_structure(t) for t in target.split())
        label_ids = [i for i in ids if parses.is_structure(tok.piece(i).lstrip(BOUNDARY))]
        assert len(label_ids) == n_structure  # each label or bracket is exactly one token
    assert tok.labels == sorted(labels)


def test_reused_when_unchanged_retrained_when_changed(prepared, tmp_path):
    targets = train_targets(prepared)
    folder = tmp_path / "tok"
    train_tokenizer(targets, folder, vocab_size=150)
    model = folder / "tokenizer.model"
    stamp = model.stat().st_mtime_ns
    train_tokenizer(targets, folder, vocab_size=150)
    assert model.stat().st_mtime_ns == stamp

    changed = targets[:-10] + ["[IN:BRAND_NEW_INTENT [SL:FRESH_SLOT zebra ] ]"]
    tok = train_tokenizer(changed, folder, vocab_size=150)
    assert BOUNDARY + "[IN:BRAND_NEW_INTENT" in tok.pieces()
    assert tok.decode(tok.encode(changed[-1])) == changed[-1]


def test_same_targets_same_model_bytes(prepared, tmp_path):
    targets = train_targets(prepared)
    a = train_tokenizer(targets, tmp_path / "a", vocab_size=150)
    b = train_tokenizer(targets, tmp_path / "b", vocab_size=150)
    assert (a.folder / "tokenizer.model").read_bytes() == (b.folder / "tokenizer.model").read_bytes()


# ---- the tokenizer stage: stop-slu tokenizer, its report, reuse by a run -------------------------


def test_cli_writes_the_folder_the_recipe_writes_and_reports(prepared, tmp_path):
    save, _ = prepared
    out = tmp_path / "tok"
    result = run_cli("tokenizer", save, out, "--vocab_size", 150)
    assert sorted(p.name for p in out.iterdir()) == ["tokenizer.json", "tokenizer.model"]
    tok = ParseTokenizer(out)
    targets = train_targets(prepared)
    assert tok.meta["target_column"] == "normalized_seqlogical"  # from prepare_report.json
    assert tok.labels == sorted({label for t in targets for label in parses.labels(t)})
    text = result.stdout
    assert f"{tok.vocab_size} pieces for 150 requested" in text
    assert f"labels: {len(tok.labels)} intent/slot labels" in text
    counts = sorted(len(tok.encode(t)) for t in targets)
    assert f"mean {sum(counts) / len(counts):.2f}".rstrip("0").rstrip(".") in text
    assert f"95th percentile {counts[math.ceil(0.95 * len(counts)) - 1]}," in text
    assert "train: characters not covered: none" in text
    examples = text.split("examples:\n")[1].splitlines()[:3]
    assert len(examples) == 3
    for line in examples:  # the pieces of a training target, labels as one piece each
        pieces = line.split()
        assert pieces[0].startswith(BOUNDARY + "[IN:") and pieces[-1] == BOUNDARY + "]"
        assert "".join(pieces).replace(BOUNDARY, " ").strip() in targets


def test_report_names_labels_and_characters_other_splits_need(prepared, tmp_path):
    save, _ = prepared
    targets = train_targets(prepared)
    tok = train_tokenizer(targets, tmp_path / "tok", vocab_size=150)
    unseen = ["[IN:GET_WEATHER [SL:LOCATION zürich ] ]", "[IN:NEVER_SEEN hello ]"]
    report = describe(tok, targets, {"eval": unseen})
    never_trained = sorted(set("zürich") - {c for t in targets for c in t})
    assert "ü" in never_trained and report["uncovered"] == {"train": [], "eval": never_trained}
    assert report["missing_labels"]["eval"] == ["[IN:NEVER_SEEN"]
    assert reuse_problems(tok, targets) == []
    problems = reuse_problems(tok, unseen)
    assert len(problems) == 2 and "[IN:NEVER_SEEN" in problems[0] and "".join(never_trained) in problems[1]


def stop_slu(*args):
    """``stop-slu ARGS`` in this process: 0, or what it passed to sys.exit (the error line)."""
    status = 0
    try:
        cli.main([str(a) for a in args])
    except SystemExit as stop:
        status = stop.code
    return status


def test_sizes_compares_without_keeping(prepared, tmp_path, capsys, monkeypatch):
    save, _ = prepared
    before = sorted(save.iterdir())
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the compared tokenizers go
    assert stop_slu("tokenizer", save, "--sizes", "100,150,1000") == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["requested", "pieces"])
    rows = [line.split() for line in lines[header + 1 :]]
    assert [row[0] for row in rows] == ["100", "150", "1000"]
    assert "below the" in " ".join(rows[0])  # too small for the labels and characters: said, not dropped
    tok150 = train_tokenizer(train_targets(prepared), tmp_path / "check", vocab_size=150)
    assert rows[1][1] == str(tok150.vocab_size)
    assert int(rows[2][1]) < 1000  # a soft limit: this little text gives fewer pieces
    assert sorted(save.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["check"]  # the compared tokenizers are gone


def test_cli_errors_are_one_line(prepared, tmp_path, capsys):
    save, _ = prepared
    for args, expected in [
        ((save, tmp_path / "a", "--vocab_size", 50), "pass --vocab_size=117 or more"),
        ((save,), "OUT missing"),
        (
            (save, tmp_path / "b", "--target_column", "decoupled_normalized_seqlogical"),
            "--target decoupled_normalized_seqlogical",
        ),
        ((tmp_path, tmp_path / "c"), "train.csv: no such file"),
        ((save, tmp_path / "d", "--sizes", "100,many"), "not a comma-separated list"),
    ]:
        status = stop_slu("tokenizer", *args)
        assert status.startswith("error: ") and expected in status  # sys.exit(message): exit status 1
        assert len(status.splitlines()) == 1 and capsys.readouterr().err == ""


def run_hparams(prepared, folder, **extra):
    save, _ = prepared
    return {
        "prepare_folder": str(save),
        "train_split": "train",
        "tokenizer_folder": str(folder),
        "vocab_size": 400,
        "tokenizer_type": "unigram",
        "target_column": "decoupled_normalized_seqlogical",
        **extra,
    }


def test_run_reuses_a_tokenizer_folder_byte_for_byte(prepared, tmp_path, caplog):
    source = tmp_path / "tok"
    train_tokenizer(train_targets(prepared), source, vocab_size=150)
    run_folder = tmp_path / "run" / "save" / "tokenizer"
    with caplog.at_level(logging.INFO):
        tok = build_tokenizer(run_hparams(prepared, run_folder, tokenizer_from=str(source)))
    for name in ("tokenizer.model", "tokenizer.json"):
        assert (run_folder / name).read_bytes() == (source / name).read_bytes()
    assert tok.vocab_size == ParseTokenizer(source).vocab_size  # not the run's vocab_size of 400
    assert f"reused from {source}" in caplog.text and "covers every label" in caplog.text
    build_tokenizer(run_hparams(prepared, source, tokenizer_from=str(source)))  # its own folder: nothing to copy

    caplog.clear()
    with caplog.at_level(logging.INFO):
        build_tokenizer(run_hparams(prepared, tmp_path / "trained"))
    assert "trained on" in caplog.text and "tokenizer_from is not set" in caplog.text


def test_run_refuses_a_tokenizer_lacking_train_labels(prepared, tmp_path):
    targets = train_targets(prepared)
    dropped = parses.root_intent(targets[0])
    source = tmp_path / "tok"
    train_tokenizer([t for t in targets if dropped not in t], source, vocab_size=150)
    run_folder = tmp_path / "run"
    with pytest.raises(PrepareError) as refused:
        build_tokenizer(run_hparams(prepared, run_folder, tokenizer_from=str(source)))
    message = str(refused.value)
    assert "\n" not in message and dropped in message and "tokenizer_mismatch_ok=True" in message
    assert not run_folder.exists()  # nothing copied

    tok = build_tokenizer(run_hparams(prepared, run_folder, tokenizer_from=str(source), tokenizer_mismatch_ok=True))
    assert (run_folder / "tokenizer.model").read_bytes() == (source / "tokenizer.model").read_bytes()
    assert BOUNDARY + dropped not in tok.pieces()

    with pytest.raises(PrepareError, match="not a tokenizer folder"):
        build_tokenizer(run_hparams(prepared, run_folder, tokenizer_from=str(tmp_path / "nothing")))
