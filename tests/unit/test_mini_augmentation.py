"""hparams/mini.yaml's waveform augmenters: one switch each, speed perturbation alone by default."""

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from stop_slu.cli import hparams_path


def augmenter(tmp_path, **switches):
    with open(hparams_path("mini"), encoding="utf-8") as f:
        return load_hyperpyyaml(f, {"data_folder": str(tmp_path), **switches})["wav_augment"]


def test_speed_perturbation_alone_by_default(tmp_path):
    assert [type(a).__name__ for a in augmenter(tmp_path).augmentations.values()] == ["SpeedPerturb"]


@pytest.mark.parametrize("seed", range(5))
def test_noise_switch_adds_noise_between_0_and_30_db_snr(tmp_path, seed):
    aug = augmenter(tmp_path, augment_speed=False, augment_noise=True)
    torch.manual_seed(seed)
    clean = torch.sin(torch.arange(16000) / 8.0).repeat(4, 1) * 0.1
    noisy, _ = aug(clean, torch.ones(4))
    snr = 10 * torch.log10(clean.pow(2).mean(1) / (noisy - clean).pow(2).mean(1))
    assert ((snr > -0.5) & (snr < 30.5)).all(), snr


def test_every_switch_on_applies_every_augmenter_in_order(tmp_path):
    on = {f"augment_{k}": True for k in ("noise", "band", "clip", "gain")}
    names = [type(a).__name__ for a in augmenter(tmp_path, **on).augmentations.values()]
    assert names == ["SpeedPerturb", "AddNoise", "DropFreq", "DoClip", "RandAmp"]
