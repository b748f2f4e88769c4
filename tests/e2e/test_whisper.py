"""The Whisper config through the real CLI: `stop-slu train whisper
--whisper_hub=DIR` fine-tunes a tiny randomly initialised Whisper saved in the
test (conftest.make_tiny_whisper: nothing is downloaded), then `stop-slu parse`
and `stop-slu export` use the trained folder."""

import csv
import json
import shutil

import pytest
import torch
from conftest import run_cli

from stop_slu import parses
from stop_slu.data_prep.release import DOMAINS

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def rows(release, split, domain):
    with open(release / "manifests" / f"{split}.tsv", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if r["domain"] == domain]


@pytest.fixture(scope="module")
def trained_whisper(tiny_whisper, mini_release, tmp_path_factory):
    """(output folder, domain) of a tiny Whisper fine-tuned for one epoch on one domain."""
    domain = next(d for d in DOMAINS if all(rows(mini_release, s, d) for s in ("train", "eval", "test")))
    out = tmp_path_factory.mktemp("whisper")
    run_cli(
        "train",
        "whisper",
        f"--data_folder={mini_release}",
        f"--output_folder={out}",
        f"--whisper_hub={tiny_whisper}",
        f"--domains=[{domain}]",
        "--number_of_epochs=1",
        "--precision=fp32",
        "--num_workers=0",
        "--batch_size=4",
        "--lr_adam=1e-3",
        "--warmup_steps=2",
        "--test_beam_size=2",
        "--max_decode_ratio=0.03",
        "--avg_checkpoints=2",
        env=OFFLINE,
    )
    return out, domain


def test_whisper_trains_through_the_recipe_and_every_test_output_is_a_parse(trained_whisper, mini_release):
    out, domain = trained_whisper
    scores = json.loads((out / "metrics_test.json").read_text())
    assert scores["n"] == len(rows(mini_release, "test", domain)) and scores["valid"] == 100.0
    for line in (out / "predictions_test.tsv").read_text().splitlines()[1:]:
        assert parses.is_valid(line.split("\t")[1]), line

    tokenizer = json.loads((out / "save" / "tokenizer" / "tokenizer.json").read_text())
    assert tokenizer["kind"] == "whisper" and (out / "save" / "tokenizer" / "whisper").is_dir()
    vocab = tokenizer["base_vocab_size"] + len(tokenizer["labels"]) + 1  # Whisper's tokens + labels + "]"
    assert f"output_neurons: {vocab}" in (out / "recipe_overrides.yaml").read_text()
    (checkpoint,) = (out / "save").glob("CKPT+*")
    state = torch.load(checkpoint / "model.ckpt", weights_only=True)
    (embedding,) = [v for k, v in state.items() if k.endswith("decoder.embed_tokens.weight")]
    assert embedding.shape[0] == vocab  # the decoder's vocabulary grew by the labels
    assert any(k.endswith("encoder.conv1.weight") for k in state)  # the encoder is fine-tuned too
    assert not (checkpoint / "normalizer.ckpt").exists()
    assert "train loss" in (out / "train_log.txt").read_text()


def test_parse_and_export_use_the_trained_whisper_offline(trained_whisper, mini_release, tmp_path):
    out, domain = trained_whisper
    wav = next((mini_release / "test_1").rglob(f"{domain}_test/*.wav"))
    parsed = json.loads(run_cli("parse", out, wav, env=OFFLINE).stdout.strip().splitlines()[-1])
    assert parsed["file"] == str(wav) and set(parsed) == {"file", "parse", "intent", "slots", "confidence"}
    assert parses.is_valid(parsed["parse"])

    export = tmp_path / "export"
    run_cli("export", out, export, env=OFFLINE)
    assert (export / "tokenizer" / "whisper").is_dir() and not (export / "normalizer.ckpt").exists()
    again = json.loads(run_cli("parse", export, wav, env=OFFLINE).stdout.strip().splitlines()[-1])
    assert again["parse"] == parsed["parse"]  # the same averaged weights, the same search

    broken = tmp_path / "broken"  # an export without its tokenizer: one line, no traceback
    shutil.copytree(export, broken)
    (broken / "tokenizer" / "tokenizer.json").unlink()
    result = run_cli("parse", broken, wav, check=False, env=OFFLINE)
    assert result.returncode != 0 and "tokenizer.json" in result.stderr and "Traceback" not in result.stderr
