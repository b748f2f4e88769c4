"""Rooms, noise and microphones for synthetic speech, each drawn from a seed
and described by a ``Condition`` that a manifest sidecar row records in full.

The chain, in this order, on float audio in [-1, 1] at 16 kHz:

1. reverberation: convolution with a room impulse response that
   pyroomacoustics simulates for a shoebox room of the drawn reverberation
   time (image sources for the early reflections, ray tracing for the tail);
2. additive noise at a drawn SNR (dB, over the whole signal): white, pink or
   brown noise generated from the row's noise seed, or babble made of other
   utterances of the corpus;
3. a microphone: band-limiting (Butterworth band-pass), gain (dB) and
   clipping at a fraction of full scale.

A ``Condition`` with nothing set leaves the audio unchanged (the clean share).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.fft import next_fast_len
from scipy.signal import butter, fftconvolve, sosfilt

SAMPLE_RATE = 16000
NOISE_KINDS = ("white", "pink", "brown", "babble")
TAIL_SECONDS = 0.3  # reverberant tail kept after the end of the speech


@dataclass(frozen=True)
class Room:
    """A shoebox room: size (m), target RT60 (s), source and microphone positions (m)."""

    rt60: float
    size: tuple[float, float, float]
    source: tuple[float, float, float]
    mic: tuple[float, float, float]
    seed: int = 0  # the ray tracer's random rays

    def describe(self) -> str:
        def xyz(v):
            return "x".join(f"{c:.2f}" for c in v)

        return f"rt60={self.rt60:.2f};size={xyz(self.size)};src={xyz(self.source)};mic={xyz(self.mic)};seed={self.seed}"


def random_room(rng: random.Random, rt60_range=(0.15, 0.8)) -> Room:
    """A room drawn from ``rng``: 2.5-8 m wide rooms, source and microphone
    0.5 m or more from the walls and from each other."""
    size = (round(rng.uniform(3.0, 8.0), 2), round(rng.uniform(2.5, 6.0), 2), round(rng.uniform(2.4, 3.5), 2))

    def point():
        return tuple(round(rng.uniform(0.5, s - 0.5), 2) for s in size[:2]) + (round(rng.uniform(1.0, 1.8), 2),)

    source, mic = point(), point()
    while np.linalg.norm(np.subtract(source, mic)) < 0.5:
        mic = point()
    return Room(round(rng.uniform(*rt60_range), 2), size, source, mic, rng.randrange(2**31))


def impulse_response(room: Room, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The room's impulse response from source to microphone, float32, peak 1.

    Eyring's formula gives the wall absorption for ``room.rt60`` (Sabine's,
    ``pyroomacoustics.inverse_sabine``, gives rooms 30% drier than asked at
    0.15-0.2 s). The measured RT60 (T20) of the response is within 20% of the
    one asked in a 6 x 4.5 x 3 m room (tests/unit/test_acoustics.py); over 32
    rooms of ``random_room`` half are within 8% and all within 40%, the
    shortest ringing longest past their target
    (tests/unit/test_mini_augmentation.py)."""
    import pyroomacoustics as pra

    w, d, h = room.size
    volume, surface = w * d * h, 2 * (w * d + w * h + d * h)
    absorption = float(min(0.99, 1 - np.exp(-0.161 * volume / (surface * room.rt60))))
    pra.random.seed(numpy=room.seed, libroom=room.seed)  # the ray tracer's rays (its own generators)
    sim = pra.ShoeBox(
        list(room.size),
        fs=sample_rate,
        materials=pra.Material(absorption),
        max_order=3,
        ray_tracing=True,
        air_absorption=True,
    )
    sim.set_ray_tracing(receiver_radius=0.5, n_rays=2000, energy_thres=1e-5)
    sim.add_source(list(room.source))
    sim.add_microphone(list(room.mic))
    sim.compute_rir()
    rir = np.asarray(sim.rir[0][0], dtype=np.float64)
    return (rir / np.max(np.abs(rir))).astype(np.float32)


def reverberate(audio: np.ndarray, rir: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``audio`` convolved with ``rir``, aligned on the direct path, with a
    ``TAIL_SECONDS`` tail, scaled to the input's peak. Shape (n + tail,)."""
    onset = int(np.argmax(np.abs(rir)))
    wet = fftconvolve(audio, rir[onset:])[: len(audio) + int(TAIL_SECONDS * sample_rate)]
    peak_in, peak_out = np.max(np.abs(audio)), np.max(np.abs(wet))
    return (wet * (peak_in / peak_out) if peak_out > 0 else wet).astype(np.float32)


def colored_noise(kind: str, n: int, seed: int) -> np.ndarray:
    """``n`` samples of white, pink (1/f power) or brown (1/f^2) noise, unit RMS."""
    rng = np.random.default_rng(seed)
    size = next_fast_len(n, real=True)  # an FFT of a length with a large prime factor takes 10x longer
    white = rng.standard_normal(size)
    if kind == "white":
        noise = white[:n]
    elif kind in ("pink", "brown"):
        spectrum = np.fft.rfft(white)
        f = np.arange(len(spectrum), dtype=np.float64)
        f[0] = 1.0
        spectrum /= np.sqrt(f) if kind == "pink" else f
        spectrum[0] = 0.0
        noise = np.fft.irfft(spectrum, size)[:n]
    else:
        raise ValueError(f"unknown noise kind {kind!r}; one of white, pink, brown (babble is made from speech)")
    rms = np.sqrt(np.mean(noise**2))
    return (noise / rms if rms > 0 else noise).astype(np.float32)


def babble(voices: list[np.ndarray], n: int) -> np.ndarray:
    """The sum of ``voices`` (float arrays), each looped to ``n`` samples and
    brought to unit RMS, then the sum to unit RMS: a crowd of talkers."""
    mix = np.zeros(n, np.float64)
    for v in voices:
        v = np.asarray(v, np.float64)
        rms = np.sqrt(np.mean(v**2)) if v.size else 0.0
        if rms > 0:
            mix += np.resize(v, n) / rms
    rms = np.sqrt(np.mean(mix**2))
    return (mix / rms if rms > 0 else mix).astype(np.float32)


def add_noise(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``audio + noise`` scaled so that 10 log10(P_audio / P_noise) = ``snr_db``,
    powers as means over the whole signal. Shapes (n,) and (n,)."""
    p_audio = float(np.mean(np.asarray(audio, np.float64) ** 2))
    p_noise = float(np.mean(np.asarray(noise, np.float64) ** 2))
    if p_audio == 0 or p_noise == 0:
        return np.asarray(audio, np.float32)
    scale = np.sqrt(p_audio / (p_noise * 10 ** (snr_db / 10)))
    return (audio + scale * noise).astype(np.float32)


def band_limit(audio: np.ndarray, low_hz: float, high_hz: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A cheap microphone: 4th-order Butterworth band-pass from ``low_hz`` to ``high_hz``."""
    sos = butter(4, [low_hz, min(high_hz, 0.49 * sample_rate)], btype="bandpass", fs=sample_rate, output="sos")
    return sosfilt(sos, audio).astype(np.float32)


def gain_and_clip(audio: np.ndarray, gain_db: float, clip: float | None) -> np.ndarray:
    """``audio`` times 10^(gain_db/20), then clipped to [-clip, clip] (None: only to [-1, 1])."""
    out = np.asarray(audio, np.float32) * np.float32(10 ** (gain_db / 20))
    limit = 1.0 if clip is None else clip
    return np.clip(out, -limit, limit)


@dataclass(frozen=True)
class Condition:
    """How a clean utterance is degraded. Every field None/0: clean."""

    room: Room | None = None
    noise: str | None = None  # one of NOISE_KINDS
    snr_db: float | None = None
    noise_seed: int = 0
    babble_from: tuple[str, ...] = field(default_factory=tuple)  # file_ids of the talkers
    band: tuple[float, float] | None = None  # microphone pass band, Hz
    gain_db: float = 0.0
    clip: float | None = None  # clipping level, a fraction of full scale

    @property
    def clean(self) -> bool:
        return self == Condition()

    def fields(self) -> dict:
        """Strings for the sidecar TSV (empty: not applied)."""
        d = asdict(self)
        return {
            "room": self.room.describe() if self.room else "",
            "noise": self.noise or "",
            "snr_db": f"{self.snr_db:.1f}" if self.snr_db is not None else "",
            "noise_seed": str(self.noise_seed) if self.noise else "",
            "babble_from": ",".join(d["babble_from"]),
            "mic_band_hz": f"{self.band[0]:.0f}-{self.band[1]:.0f}" if self.band else "",
            "gain_db": f"{self.gain_db:.1f}",
            "clip": f"{self.clip:.2f}" if self.clip is not None else "",
        }


CONDITION_COLUMNS = ("room", "noise", "snr_db", "noise_seed", "babble_from", "mic_band_hz", "gain_db", "clip")


def random_condition(rng: random.Random, rooms: list[Room], talkers: list[str], clean_share: float = 0.2) -> Condition:
    """A condition drawn from ``rng``: clean with probability ``clean_share``,
    else a room from ``rooms`` (70%), noise at 0-30 dB SNR (80%; babble of 3-5
    of ``talkers`` when there are enough), a cheap microphone's band (30%),
    a gain of -12 to +6 dB and clipping at 0.3-0.8 of full scale (10%)."""
    if rng.random() < clean_share:
        return Condition()
    room = rng.choice(rooms) if rooms and rng.random() < 0.7 else None
    noise = snr = None
    seed, babble_from = 0, ()
    if rng.random() < 0.8:
        kinds = NOISE_KINDS if len(talkers) >= 5 else NOISE_KINDS[:3]
        noise = rng.choice(kinds)
        snr = round(rng.uniform(0.0, 30.0), 1)
        seed = rng.randrange(2**31)
        if noise == "babble":
            babble_from = tuple(rng.sample(talkers, rng.randint(3, 5)))
    band = (float(rng.choice((100, 200, 300))), float(rng.choice((3400, 4000, 6000)))) if rng.random() < 0.3 else None
    clip = round(rng.uniform(0.3, 0.8), 2) if rng.random() < 0.1 else None
    return Condition(room, noise, snr, seed, babble_from, band, round(rng.uniform(-12.0, 6.0), 1), clip)


def apply(audio: np.ndarray, condition: Condition, rir: np.ndarray | None = None, talkers=()) -> np.ndarray:
    """``audio`` (float, [-1, 1]) under ``condition``; ``rir``: the impulse
    response of ``condition.room``; ``talkers``: the float audio of
    ``condition.babble_from``, in order. Returns float32 in [-1, 1]."""
    out = np.asarray(audio, np.float32)
    if condition.room is not None:
        if rir is None:
            rir = impulse_response(condition.room)
        out = reverberate(out, rir)
    if condition.noise is not None:
        if condition.noise == "babble":
            noise = babble(list(talkers), len(out))
        else:
            noise = colored_noise(condition.noise, len(out), condition.noise_seed)
        out = add_noise(out, noise, condition.snr_db)
    if condition.band is not None:
        out = band_limit(out, *condition.band)
    return gain_and_clip(out, condition.gain_db, condition.clip)
