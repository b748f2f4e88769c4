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
    on = {f"augment_{k}": True for k in ("pitch", "reverb", "noise", "band", "clip", "gain")}
    names = [type(a).__name__ for a in augmenter(tmp_path, **on).augmentations.values()]
    order = ["SpeedPerturb", "PitchFormantShift", "SimulatedReverb", "AddNoise", "DropFreq", "DoClip", "RandAmp"]
    assert names == order


def peak_hz(wave):
    spectrum = torch.fft.rfft(wave * torch.hann_window(len(wave)))
    return float(torch.fft.rfftfreq(len(wave), 1 / 16000)[spectrum.abs().argmax()])


def test_pitch_switch_scales_the_frequencies_by_a_drawn_factor_and_keeps_the_duration(tmp_path):
    """A 440 Hz tone comes out at 440 x one of the factors (0.9, 0.95, 1.05,
    1.1), as long as it went in, at about its level; each factor is drawn."""
    aug = augmenter(tmp_path, augment_speed=False, augment_pitch=True)
    (shift,) = aug.augmentations.values()
    t = torch.arange(32000) / 16000
    tone = (0.3 * torch.sin(2 * torch.pi * 440 * t)).repeat(12, 1)
    shifted, lens = aug(tone, torch.ones(12))
    assert shifted.shape == tone.shape and torch.equal(lens, torch.ones(12))
    found = set()
    for wave in shifted:
        middle = wave[4000:28000]  # the phase vocoder's edges aside
        factor = min(shift.factors, key=lambda f: abs(peak_hz(middle) - 440 * f))
        assert peak_hz(middle) == pytest.approx(440 * factor, rel=0.01)
        assert middle.pow(2).mean().sqrt() == pytest.approx(0.3 / 2**0.5, rel=0.05)
        found.add(factor)
    assert len(found) > 1  # a factor per utterance


def test_reverb_switch_convolves_with_a_room_of_the_reverberation_time_asked(tmp_path):
    """An impulse through the switched-on augmenter comes out as the room's
    response: its measured RT60 (T20) within 20 % of the drawn room's, the
    direct path where the impulse was, the length unchanged."""
    import pyroomacoustics as pra

    aug = augmenter(tmp_path, augment_speed=False, augment_reverb=True)
    (reverb,) = aug.augmentations.values()
    rooms = [room for room, _ in reverb.bank()]
    assert len(rooms) == 32 and all(0.15 <= r.rt60 <= 0.8 for r in rooms)
    assert [r.describe() for r in rooms] == [r.describe() for r, _ in type(reverb)(seed=1986).bank()]  # seeded
    impulses = torch.zeros(6, 32000)
    impulses[:, 1000] = 1.0
    wet, lens = aug(impulses, torch.ones(6))
    assert wet.shape == impulses.shape and torch.equal(lens, torch.ones(6))

    def room_of(response):  # the bank's response this output is (a scaled copy of)
        def fit(rir):
            rir = rir[int(rir.abs().argmax()) :][:31000]
            return torch.nn.functional.cosine_similarity(response[1000 : 1000 + len(rir)], rir, dim=0)

        return max(range(len(rooms)), key=lambda i: fit(reverb.bank()[i][1]))

    def rt60(x):
        return pra.experimental.measure_rt60(x.numpy(), fs=16000, decay_db=20)

    drawn = set()
    for response in wet:
        i = room_of(response)
        drawn.add(i)
        assert int(response.abs().argmax()) == 1000  # aligned on the direct path
        assert rt60(response[1000:]) == pytest.approx(rt60(reverb.bank()[i][1]), rel=0.02)  # the room, whole
    assert len(drawn) > 1  # a room per utterance
    # the bank's rooms ring as long as asked: measured T20 against the drawn RT60
    errors = sorted(abs(rt60(rir) - room.rt60) / room.rt60 for room, rir in reverb.bank())
    assert errors[len(errors) // 2] < 0.1 and errors[-1] < 0.4, errors


@pytest.mark.parametrize("bad", [{"rooms": 0}, {"rt60_low": 0.0}, {"rt60_low": 0.9, "rt60_high": 0.5}])
def test_reverb_refuses_an_empty_bank_or_a_reversed_range(bad):
    from stop_slu.augment import SimulatedReverb

    with pytest.raises(ValueError, match="SimulatedReverb"):
        SimulatedReverb(**bad)


@pytest.mark.parametrize("bad", [[], [0.4], [1.0, 2.5]])
def test_pitch_shift_refuses_factors_outside_half_to_double(bad):
    from stop_slu.augment import PitchFormantShift

    with pytest.raises(ValueError, match="PitchFormantShift"):
        PitchFormantShift(factors=bad)
