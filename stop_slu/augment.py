"""Training augmenters SpeechBrain does not ship, in the form its
``speechbrain.augment.augmenter.Augmenter`` takes: a module mapping waveforms
``[batch, time]`` to waveforms of the same shape.

- ``SimulatedReverb``: reverberation of simulated rooms. SpeechBrain's own
  ``AddReverb`` convolves with recorded impulse responses listed in a CSV (a
  download, and files every machine of a run must hold); this one simulates
  its bank of rooms from a seed, the same on every process, with the
  synthesiser's room model (``stop_slu.data_prep.acoustics``), and convolves
  with SpeechBrain's ``reverberate``.
- ``PitchFormantShift``: pitch and formants (a shorter or longer vocal tract)
  moved together by a drawn factor, the duration kept: SpeechBrain's
  ``SpeedPerturb`` without its change of tempo. torchaudio's phase vocoder
  stretches the time, SpeechBrain's ``Resample`` compresses it back.
"""

from __future__ import annotations

import random

import torch
import torchaudio.functional as audio_functional
from speechbrain.augment.time_domain import Resample
from speechbrain.processing.signal_processing import reverberate

from stop_slu.data_prep import acoustics


class SimulatedReverb(torch.nn.Module):
    """Each utterance convolved with the impulse response of one of ``rooms``
    simulated shoebox rooms, drawn per utterance with torch's generator (the
    recipe seeds it). SpeechBrain's ``reverberate`` aligns the output on the
    direct path and keeps the input's average amplitude.

    Arguments
    ---------
    rooms : int
        Size of the bank of impulse responses (each about 0.2 s to simulate,
        once, at the first call; nothing when the augmenter is disabled).
    rt60_low, rt60_high : float
        Reverberation time (RT60, seconds) of each room, drawn uniformly. The
        responses' measured RT60 (T20) is within about 8 % of the drawn one for
        half the rooms and within 40 % for all (the shortest rooms ring longest
        past their target: direct sound and early reflections dominate a
        20 dB decay); tests/unit/test_mini_augmentation.py.
    seed : int
        Seed of the rooms: the same bank on every process and every run.
    sample_rate : int
        Of the waveforms (Hz).

    Raises ValueError for an empty bank or a range outside 0 < low <= high.
    """

    def __init__(self, rooms=32, rt60_low=0.15, rt60_high=0.8, seed=0, sample_rate=16000):
        super().__init__()
        if int(rooms) < 1 or not 0 < rt60_low <= rt60_high:
            raise ValueError(
                f"SimulatedReverb: needs rooms >= 1 and 0 < rt60_low <= rt60_high, not {rooms}, {rt60_low}, {rt60_high}"
            )
        self.rooms, self.rt60_range, self.seed, self.sample_rate = int(rooms), (rt60_low, rt60_high), seed, sample_rate
        self._bank = None

    def bank(self) -> list[tuple[acoustics.Room, torch.Tensor]]:
        """The rooms and their impulse responses (float32, peak 1), simulated once."""
        if self._bank is None:
            rng = random.Random(self.seed)
            rooms = [acoustics.random_room(rng, self.rt60_range) for _ in range(self.rooms)]
            self._bank = [
                (room, torch.from_numpy(acoustics.impulse_response(room, self.sample_rate))) for room in rooms
            ]
        return self._bank

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """waveforms: ``[batch, time]`` -> reverberated ``[batch, time]`` (same dtype and device)."""
        bank = self.bank()
        picks = torch.randint(len(bank), (waveforms.shape[0],)).tolist()
        return torch.stack(
            [
                reverberate(wav.unsqueeze(0), bank[i][1].to(wav.device, wav.dtype), rescale_amp="avg").squeeze(0)
                for wav, i in zip(waveforms, picks)
            ]
        )


class PitchFormantShift(torch.nn.Module):
    """Each utterance's pitch and formants scaled by one of ``factors``, drawn
    per utterance with torch's generator, its duration, length and level (RMS)
    unchanged (a factor of 1.1 moves a 440 Hz tone to 484 Hz).

    Arguments
    ---------
    factors : list of float
        Frequency scale factors. Each is stretched in time by a phase vocoder
        (STFT of ``n_fft`` points, hop ``n_fft // 4``) and resampled from
        ``sample_rate * factor`` Hz, rounded to a whole Hz: factors whose rate
        shares a large divisor with ``sample_rate`` resample fast (0.9, 0.95,
        1.05 and 1.1 at 16 kHz).
    sample_rate : int
        Of the waveforms (Hz).
    n_fft : int
        The phase vocoder's STFT size.

    Raises ValueError for an empty list or a factor outside (0.5, 2).
    """

    def __init__(self, factors=(0.9, 0.95, 1.05, 1.1), sample_rate=16000, n_fft=512):
        super().__init__()
        factors = [float(f) for f in factors]
        if not factors or not all(0.5 < f < 2 for f in factors):
            raise ValueError(f"PitchFormantShift: needs factors in (0.5, 2), not {factors}")
        self.factors, self.n_fft, self.hop = factors, n_fft, n_fft // 4
        self.resamplers = [Resample(orig_freq=round(sample_rate * f), new_freq=sample_rate) for f in factors]

    def shift(self, waveforms: torch.Tensor, k: int) -> torch.Tensor:
        """``waveforms`` ``[batch, time]`` shifted by ``factors[k]``, the same shape."""
        factor, length = self.factors[k], waveforms.shape[-1]
        window = torch.hann_window(self.n_fft, device=waveforms.device)
        spectrum = torch.stft(waveforms.float(), self.n_fft, self.hop, window=window, return_complex=True)
        advance = torch.linspace(0, torch.pi * self.hop, spectrum.shape[-2], device=waveforms.device)[..., None]
        stretched = audio_functional.phase_vocoder(spectrum, 1 / factor, advance)
        longer = torch.istft(stretched, self.n_fft, self.hop, window=window, length=round(length * factor))
        shifted = self.resamplers[k](longer)
        shifted = torch.nn.functional.pad(shifted, (0, max(0, length - shifted.shape[-1])))[..., :length]
        # the input's level (torchaudio's phase vocoder loses up to 4.5 dB when it stretches)
        level_in, level_out = waveforms.float().pow(2).mean(-1, keepdim=True), shifted.pow(2).mean(-1, keepdim=True)
        shifted = shifted * torch.sqrt(level_in / level_out.clamp_min(1e-20))
        return shifted.to(waveforms.dtype)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """waveforms: ``[batch, time]`` -> shifted ``[batch, time]`` (same dtype and device)."""
        picks = torch.randint(len(self.factors), (waveforms.shape[0],))
        out = waveforms.clone()
        for k in picks.unique().tolist():
            rows = (picks == k).nonzero().squeeze(1)
            out[rows] = self.shift(waveforms[rows], k)
        return out
