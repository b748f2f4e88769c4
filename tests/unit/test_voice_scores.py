"""EM by voice group: the voices training heard, held-out voices, a family training never heard."""

import json

import pytest
from conftest import TINY, run_cli

from stop_slu import metrics
from stop_slu.data_prep.release import utterance_id
from stop_slu.voice_scores import read_sidecar, scores_by_voice


def test_scores_split_by_voice_group_and_family(mini_release, tmp_path):
    sidecar = read_sidecar(mini_release)
    rows = []
    with open(mini_release / "manifests" / "test.tsv", encoding="utf-8") as f:
        next(f)
        for line in f:
            fields = line.rstrip("\n").split("\t")
            uid = utterance_id(fields[0])
            ref = fields[-1]
            right = sidecar[uid]["family"] == "espeak"  # a model that only understands eSpeak
            rows.append((uid, ref if right else "[IN:GET_WEATHER ]", ref, fields[1]))
    metrics.write_predictions(tmp_path / "predictions_test.tsv", rows)
    scores = scores_by_voice(tmp_path / "predictions_test.tsv", mini_release)
    assert scores["train_families"] == ["espeak", "piper"]
    assert scores["families"]["espeak"]["em"] == 100.0 and scores["families"]["piper"]["em"] == 0.0
    assert scores["families"]["espeak"]["slot_f1"] == 100.0 > scores["families"]["piper"]["slot_f1"]
    assert set(scores["groups"]) == {"seen voices", "held-out voices"}  # no family left out here
    assert sum(g["n"] for g in scores["groups"].values()) == len(rows)
    assert scores_by_voice(tmp_path / "predictions_test.tsv", tmp_path) is None  # no corpus, no sidecar


@pytest.mark.slow  # synthesis, a tiny training run and a test pass, in a CLI subprocess
def test_demo_prints_em_on_a_family_left_out_beside_the_families_trained_on(tmp_path):
    result = run_cli(
        "demo",
        "--out",
        tmp_path,
        "--train",
        30,
        "--valid",
        4,
        "--test",
        6,
        "--minutes",
        0,
        "--leave-out",
        "piper",
        "--number_of_epochs=1",
        "--test_beam_size=1",
        *TINY,
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("voices:"))
    assert "seen voices (espeak) EM" in line and "unseen family (piper) EM" in line
    saved = json.loads((tmp_path / "model_without_piper" / "metrics_by_voice.json").read_text())
    assert saved["train_families"] == ["espeak"] and saved["groups"]["unseen family"]["n"] > 0
