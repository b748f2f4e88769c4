"""The flat-only filter of preparation (`stop-slu prepare --flat-only`, the
recipe key `flat_only`): utterances with one intent and no nesting."""

import csv
import json

from conftest import run_cli

from stop_slu import parses
from stop_slu.data_prep.prepare import prepare
from stop_slu.stages import prepare_data


def intents(parse):
    return sum(map(parses.is_intent, parses.tokenize(parse)))


def semantics(folder, split):
    with open(folder / f"{split}.csv", encoding="utf-8") as f:
        return [row["semantics"] for row in csv.DictReader(f)]


def test_flat_only_keeps_one_intent_parses_and_counts_the_rest(mini_release, prepared, tmp_path):
    everything, full = prepared
    result = run_cli("prepare", mini_release, tmp_path / "flat", "--flat-only", "--quiet")
    report = json.loads((tmp_path / "flat" / "prepare_report.json").read_text())
    assert report["flat_only"] is True and "prepared train" in result.stdout
    for split in ("train", "eval", "test"):
        kept, all_rows = semantics(tmp_path / "flat", split), semantics(everything, split)
        assert kept and all(intents(p) == 1 for p in kept)
        nested = sum(intents(p) > 1 for p in all_rows)
        entry = report["splits"][split]
        assert entry["filtered_out_not_flat"] == nested and len(kept) == len(all_rows) - nested
        assert entry["manifest_rows"] == full["splits"][split]["manifest_rows"]  # every row accounted for
    assert sum(report["splits"][s]["filtered_out_not_flat"] for s in ("train", "eval", "test")) > 0


def test_the_recipe_key_filters_and_a_change_redoes_the_preparation(mini_release, tmp_path):
    hparams = {
        "skip_prep": False,
        "data_folder": str(mini_release),
        "prepare_folder": str(tmp_path / "data"),
        "train_split": "train",
        "valid_split": "eval",
        "test_split": "test",
        "domains": None,
        "target_column": "decoupled_normalized_seqlogical",
        "flat_only": True,
    }
    prepare_data(hparams)
    assert all(intents(p) == 1 for p in semantics(tmp_path / "data", "train"))
    report = prepare(mini_release, tmp_path / "data", progress=False)  # same folder, no filter: redone
    assert report["flat_only"] is False and any(intents(p) > 1 for p in semantics(tmp_path / "data", "train"))
