"""Rooms, noise and microphones: each changes real synthesised speech by the amount asked."""

import random

import numpy as np
import pytest

from stop_slu.data_prep import acoustics, espeak


@pytest.fixture(scope="module")
def speech():
    """Real eSpeak NG speech, float in [-1, 1] at 16 kHz."""
    return espeak.speak("set an alarm for seven thirty tomorrow morning").astype(np.float32) / 32768


def snr_db(clean, noisy):
    noise = noisy[: len(clean)] - clean
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2))


@pytest.mark.parametrize("kind", ["white", "pink", "brown"])
@pytest.mark.parametrize("snr", [0.0, 12.5, 30.0])
def test_generated_noise_is_added_at_the_snr_asked(speech, kind, snr):
    noisy = acoustics.apply(speech, acoustics.Condition(noise=kind, snr_db=snr, noise_seed=7))
    assert abs(snr_db(speech, noisy) - snr) < 0.05


def test_babble_is_other_speech_at_the_snr_asked(speech):
    talkers = [espeak.speak(t).astype(np.float32) / 32768 for t in ("what is the weather", "play some jazz", "hi")]
    condition = acoustics.Condition(noise="babble", snr_db=5.0, babble_from=("a", "b", "c"))
    noisy = acoustics.apply(speech, condition, talkers=talkers)
    assert abs(snr_db(speech, noisy) - 5.0) < 0.05
    noise = noisy - speech
    # speech-shaped: most of its energy below 4 kHz, unlike white noise
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise), 1 / 16000)
    assert spectrum[freqs < 4000].sum() > 0.8 * spectrum.sum()


def test_noise_kinds_have_their_spectral_slope():
    def slope(kind):
        x = acoustics.colored_noise(kind, 2**16, seed=1)
        p = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(len(x), 1 / 16000)
        low, high = p[(f > 100) & (f < 200)].mean(), p[(f > 1600) & (f < 3200)].mean()
        return 10 * np.log10(high / low) / np.log2(2400 / 150)  # dB per octave

    assert abs(slope("white")) < 1.0
    assert abs(slope("pink") + 3.0) < 1.0
    assert abs(slope("brown") + 6.0) < 1.0


@pytest.mark.parametrize("rt60", [0.15, 0.3, 0.5, 0.8])
def test_room_impulse_response_has_the_reverberation_time_asked(rt60):
    import pyroomacoustics as pra

    room = acoustics.Room(rt60, (6.0, 4.5, 3.0), (1.5, 1.2, 1.6), (4.0, 3.1, 1.4), seed=3)
    rir = acoustics.impulse_response(room)
    measured = pra.experimental.measure_rt60(rir, fs=16000, decay_db=20)
    assert abs(measured - rt60) < 0.2 * rt60


def test_reverberation_smears_the_speech_into_its_pauses(speech):
    room = acoustics.Room(0.7, (6.0, 4.5, 3.0), (1.5, 1.2, 1.6), (4.0, 3.1, 1.4), seed=3)
    wet = acoustics.apply(speech, acoustics.Condition(room=room))
    assert len(wet) == len(speech) + int(acoustics.TAIL_SECONDS * 16000)
    tail = wet[len(speech) :]
    assert np.sqrt(np.mean(tail**2)) > 1e-3  # the room keeps ringing after the last word
    assert np.max(np.abs(wet)) == pytest.approx(np.max(np.abs(speech)), rel=1e-5)


def test_band_limiting_removes_what_a_cheap_microphone_cannot_hear():
    x = acoustics.colored_noise("white", 2**16, seed=2)
    y = acoustics.band_limit(x, 300, 3400)
    f = np.fft.rfftfreq(len(x), 1 / 16000)

    def level(signal, band):
        p = np.abs(np.fft.rfft(signal)) ** 2
        return 10 * np.log10(p[(f > band[0]) & (f < band[1])].mean())

    for band, least in (((20, 100), 30), ((6000, 7900), 20)):
        assert level(x, band) - level(y, band) > least
    assert abs(level(x, (800, 2000)) - level(y, (800, 2000))) < 1.0


def test_gain_and_clipping_by_the_amount_asked(speech):
    louder = acoustics.apply(speech, acoustics.Condition(gain_db=-6.0))
    ratio = 20 * np.log10(np.sqrt(np.mean(louder**2)) / np.sqrt(np.mean(speech**2)))
    assert abs(ratio + 6.0) < 0.01
    clipped = acoustics.apply(speech, acoustics.Condition(gain_db=6.0, clip=0.3))
    assert np.max(np.abs(clipped)) == pytest.approx(0.3)
    assert np.mean(np.abs(clipped) >= 0.3 - 1e-6) > 0.01


def test_clean_condition_leaves_the_audio_alone(speech):
    assert acoustics.Condition().clean
    assert np.array_equal(acoustics.apply(speech, acoustics.Condition()), speech)


def test_same_condition_same_samples(speech):
    rooms = [acoustics.random_room(random.Random(4)) for _ in range(3)]
    condition = acoustics.random_condition(random.Random(9), rooms, [], clean_share=0.0)
    assert condition == acoustics.random_condition(random.Random(9), rooms, [], clean_share=0.0)
    a = acoustics.apply(speech, condition)
    b = acoustics.apply(speech, condition)
    assert a.tobytes() == b.tobytes()
    room = rooms[0]
    assert acoustics.impulse_response(room).tobytes() == acoustics.impulse_response(room).tobytes()


def test_conditions_cover_the_ranges_asked():
    rng = random.Random(0)
    rooms = [acoustics.random_room(rng) for _ in range(4)]
    talkers = [f"t{i}" for i in range(10)]
    conditions = [acoustics.random_condition(rng, rooms, talkers, clean_share=0.2) for _ in range(2000)]
    clean = sum(c.clean for c in conditions) / len(conditions)
    assert 0.17 < clean < 0.23
    snrs = [c.snr_db for c in conditions if c.noise]
    assert min(snrs) < 1.5 and max(snrs) > 28.5 and all(0 <= s <= 30 for s in snrs)
    assert {c.noise for c in conditions if c.noise} == set(acoustics.NOISE_KINDS)
    assert all(3 <= len(c.babble_from) <= 5 for c in conditions if c.noise == "babble")
    assert any(c.band for c in conditions) and any(c.clip for c in conditions) and any(c.room for c in conditions)
