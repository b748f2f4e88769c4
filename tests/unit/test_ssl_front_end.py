"""The SSL front-ends (hparams/conformer_wavlm.yaml, conformer_hubert.yaml) with a
tiny randomly initialised WavLM and HuBERT saved in the test: nothing is downloaded.
The configs train, test, export and parse in tests/e2e/test_every_config.py."""

import pytest
import torch
from conftest import OFFLINE, build_ssl_config


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
