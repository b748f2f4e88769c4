"""Every config has a longest audio it parses (``max_audio_seconds``); longer
audio is refused in one line that names the limit and how to raise it, also
where relative positions (RelPosMHAXL) set no limit of their own."""

import re

import numpy as np
import pytest
import soundfile as sf
import yaml
from conftest import REPO
from hyperpyyaml import load_hyperpyyaml

from stop_slu import parses
from stop_slu.data_prep.grammar import generate
from stop_slu.export import inference_yaml
from stop_slu.inference import SLUParser
from stop_slu.tokenizer.parse_tokenizer import train_tokenizer

RATE = 16000
CONFIGS = sorted(p.stem for p in (REPO / "hparams").glob("*.yaml") if p.stem != "finetune")


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_declares_its_longest_audio_and_its_export_keeps_it(name):
    text = (REPO / "hparams" / f"{name}.yaml").read_text("utf-8")
    seconds = yaml.safe_load(text.split("\nmax_audio_seconds:")[1].split("\n")[0].split("#")[0])
    assert isinstance(seconds, (int, float)) and 10 <= seconds <= 120, name
    exported = inference_yaml(text, {"max_audio_seconds": seconds + 1})
    assert re.search(rf"^max_audio_seconds: {seconds + 1}\b", exported, re.M), name  # a training override travels


@pytest.fixture(scope="module")
def conformer_parser(tmp_path_factory):
    """The conformer config (RelPosMHAXL), shrunk in width and depth, random weights."""
    root = tmp_path_factory.mktemp("conformer")
    targets = [parses.normalize_parse(e.seqlogical) for e in generate(200, seed=3)]
    tokenizer = train_tokenizer(targets, root / "tok", vocab_size=200)
    sizes = {"d_model": 32, "nhead": 2, "d_ffn": 64, "num_encoder_layers": 1, "num_decoder_layers": 1}
    with open(REPO / "hparams" / "conformer.yaml", encoding="utf-8") as f:
        hparams = load_hyperpyyaml(
            f,
            {
                "data_folder": str(root),
                "output_folder": str(root / "out"),
                "tokenizer_folder": str(root / "tok"),
                "output_neurons": tokenizer.vocab_size,
                **sizes,
            },
        )
    assert hparams["Transformer"].attention_type == "RelPosMHAXL"
    return SLUParser(modules=hparams["modules"], hparams=hparams)


def _silence(path, seconds):
    sf.write(path, np.zeros(int(seconds * RATE), "float32"), RATE)
    return path


def test_a_relative_position_config_refuses_longer_audio_in_one_line(conformer_parser, tmp_path):
    assert conformer_parser.supported_duration()[1] == 60
    too_long = _silence(tmp_path / "long.wav", 61)
    (result,) = conformer_parser.parse_files([too_long])
    reason = result["error"]
    assert reason.startswith("audio too long (61.0 s); this model parses "), reason
    assert " to 60 s (max_audio_seconds)" in reason and "--max_audio_seconds=SECONDS" in reason
    assert "\n" not in reason
    assert conformer_parser.check_length(60 * RATE) is None


def test_the_limit_is_raised_by_the_override_and_only_within_what_the_model_takes(conformer_parser, tmp_path):
    conformer_parser.set_max_audio_seconds(90)
    try:
        assert conformer_parser.supported_duration()[1] == 90
        assert conformer_parser.check_file(_silence(tmp_path / "long.wav", 61)) is None
    finally:
        conformer_parser.set_max_audio_seconds(60)
    assert conformer_parser.architectural_limit() == (None, None)  # relative positions: no limit of its own
    with pytest.raises(ValueError, match="must be a positive"):
        conformer_parser.set_max_audio_seconds(0)
