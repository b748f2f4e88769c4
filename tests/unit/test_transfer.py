"""Transfer from a pretrained SpeechBrain ASR model (stop_slu/transfer.py,
hparams/conformer_asr_transfer.yaml): a tiny "pretrained" model saved in a local
folder as SpeechBrain's hub models are (asr.ckpt, normalizer.ckpt); nothing is
downloaded."""

import json

import pytest
import torch
from conftest import REPO
from hyperpyyaml import load_hyperpyyaml

from stop_slu.transfer import TransferError, load_matching, transfer_pretrained

TINY_CONFORMER = {"d_model": 32, "nhead": 2, "d_ffn": 64, "num_encoder_layers": 2, "num_decoder_layers": 1}


def build(tmp_path, **overrides):
    with open(REPO / "hparams" / "conformer_asr_transfer.yaml", encoding="utf-8") as f:
        return load_hyperpyyaml(
            f,
            {
                "data_folder": str(tmp_path),
                "output_folder": str(tmp_path / "out"),
                **TINY_CONFORMER,
                **overrides,
            },
        )


@pytest.fixture
def pretrained(tmp_path):
    """A folder holding a tiny ASR model's asr.ckpt (its vocabulary: 60 pieces)
    and normalizer.ckpt (statistics of some features), and that model."""
    torch.manual_seed(1)
    asr = build(tmp_path / "asr", output_neurons=60)
    normalize = asr["normalize"].train()
    normalize(torch.randn(4, 50, 80) * 3 + 2, torch.ones(4))
    folder = tmp_path / "pretrained"
    folder.mkdir()
    torch.save(asr["model"].state_dict(), folder / "asr.ckpt")
    normalize._save(folder / "normalizer.ckpt")
    return folder, asr


def test_weights_arrive_where_shapes_match(pretrained, tmp_path):
    folder, asr = pretrained
    torch.manual_seed(2)
    hparams = build(tmp_path / "run", output_neurons=50, asr_source=str(folder))  # the parse vocabulary: 50
    before = {k: v.clone() for k, v in hparams["model"].state_dict().items()}
    assert transfer_pretrained(hparams)

    source, state = asr["model"].state_dict(), hparams["model"].state_dict()
    for prefix in ("0.", "1.encoder.", "1.decoder.", "1.custom_src_module."):  # front-end, encoder, decoder blocks
        keys = [k for k in state if k.startswith(prefix)]
        assert keys and all(torch.equal(state[k], source[k]) for k in keys), prefix
    for key in ("1.custom_tgt_module.layers.0.emb.Embedding.weight", "2.w.weight", "3.w.weight"):  # vocab-sized
        assert source[key].shape != state[key].shape and torch.equal(state[key], before[key])

    report = json.loads((tmp_path / "run" / "out" / "save" / "asr_pretrained" / "transfer_report.json").read_text())
    assert "1.encoder.layers.0.mha_layer.in_proj_weight" in report["loaded"]
    assert set(report["shape_mismatch"]) == {
        "1.custom_tgt_module.layers.0.emb.Embedding.weight",
        "2.w.weight",
        "2.w.bias",
        "3.w.weight",
        "3.w.bias",
    }
    assert torch.equal(hparams["normalize"].glob_mean, asr["normalize"].glob_mean)  # the ASR model's statistics
    assert hparams["normalize"].glob_mean.abs().sum() > 0


def test_a_model_of_other_sizes_is_refused(pretrained, tmp_path):
    folder, _ = pretrained
    hparams = build(tmp_path / "run", output_neurons=50, d_model=48, d_ffn=96)
    before = {k: v.clone() for k, v in hparams["model"].state_dict().items()}
    with pytest.raises(TransferError, match="of this model's values match"):
        load_matching(hparams["model"], folder / "asr.ckpt")  # the front-end alone would match
    assert all(torch.equal(v, before[k]) for k, v in hparams["model"].state_dict().items())


def test_a_missing_source_is_one_clear_error(tmp_path):
    hparams = build(tmp_path / "run", output_neurons=50, asr_source=str(tmp_path / "nowhere"))
    with pytest.raises(TransferError, match="cannot fetch the pretrained model.*--asr_source="):
        transfer_pretrained(hparams)


def test_configs_without_a_pretrainer_are_left_alone(tmp_path):
    assert not transfer_pretrained({"model": torch.nn.Linear(2, 2)})
