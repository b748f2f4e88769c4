"""The SSL front-ends (hparams/conformer_wavlm.yaml, conformer_hubert.yaml) with a
tiny randomly initialised WavLM and HuBERT saved in the test: nothing is downloaded."""

import json

import pytest
import torch
from conftest import OFFLINE, REPO, TINY, held_out_domain, manifest, run_cli


def build_ssl_config(name, ssl_folder, tmp_path):
    from hyperpyyaml import load_hyperpyyaml

    with open(REPO / "hparams" / f"conformer_{name}.yaml", encoding="utf-8") as f:
        return load_hyperpyyaml(
            f,
            {
                "data_folder": str(tmp_path),
                "output_folder": str(tmp_path / "out"),
                "output_neurons": 50,
                "ssl_hub": str(ssl_folder),
                "d_model": 32,
                "nhead": 2,
                "d_ffn": 64,
                "num_encoder_layers": 1,
                "num_decoder_layers": 1,
            },
        )


@pytest.mark.parametrize("name", ["wavlm", "hubert"])
def test_ssl_front_end_only_layer_weights_train(name, tiny_ssl, tmp_path, monkeypatch):
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    hparams = build_ssl_config(name, tiny_ssl[name], tmp_path)
    front = hparams["compute_features"]
    front.train()
    assert front.training and not front.ssl_model.training  # no dropout or layer drop in frozen features
    assert [p.shape for p in front.parameters() if p.requires_grad] == [torch.Size([3])]  # 2 layers + CNN output
    ssl_params = {id(p) for p in front.ssl_model.parameters()}
    assert not ssl_params & {id(p) for p in hparams["model"].parameters()}  # checkpoints stay small
    feats = front(torch.randn(2, 16000), torch.tensor([1.0, 0.6]))
    assert feats.shape[0] == 2 and feats.shape[-1] == 32 and feats.requires_grad


@pytest.mark.parametrize("name", ["wavlm", "hubert"])
def test_ssl_config_trains_through_the_recipe_and_parses(name, tiny_ssl, mini_release, tmp_path):
    out = tmp_path / name
    domain = held_out_domain(mini_release)  # one domain: a few utterances, a few steps
    run_cli(
        "train",
        REPO / "hparams" / f"conformer_{name}.yaml",
        f"--data_folder={mini_release}",
        f"--output_folder={out}",
        f"--ssl_hub={tiny_ssl[name]}",
        "--number_of_epochs=1",
        f"--domains=[{domain}]",
        "--precision=fp32",
        "--num_workers=0",
        "--cnn_channels=8",
        *TINY,
        env=OFFLINE,
    )
    assert json.loads((out / "metrics_test.json").read_text())["n"] == len(manifest(mini_release, "test", domain))
    (checkpoint,) = (out / "save").glob("CKPT+*")
    state = torch.load(checkpoint / "model.ckpt", weights_only=True)
    layer_weights = state["4.weights"]  # model: [CNN, Transformer, seq_lin, ctc_lin, layer_sum]
    assert layer_weights.shape == (3,) and layer_weights.abs().sum() > 0  # trained away from the start
    assert not any("feature_extractor" in key or "ssl" in key for key in state)

    if name == "wavlm":  # the output folder parses offline (the same code for HuBERT)
        wav = next((mini_release / "test_1").rglob("*.wav"))
        parsed = json.loads(run_cli("parse", out, wav, env=OFFLINE).stdout.strip().splitlines()[-1])
        assert parsed["file"] == str(wav) and set(parsed) == {"file", "parse", "intent", "slots", "confidence"}
