"""SentencePiece with labels as single pieces; rebuilt when targets change."""

import csv

from stop_slu import parses
from stop_slu.tokenizer.parse_tokenizer import BOUNDARY, train_tokenizer


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
