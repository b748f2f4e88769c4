"""Training augmenters SpeechBrain does not ship, in the form its
``speechbrain.augment.augmenter.Augmenter`` takes: a module mapping waveforms
``[batch, time]`` to waveforms of the same shape.

- ``SimulatedReverb``: reverberation of simulated rooms. SpeechBrain's own
  ``AddReverb`` convolves with recorded impulse responses listed in a CSV (a
  download, and files every machine of a run must hold); this one simulates
  its bank of rooms from a seed, the same on every process, with the
  synthesiser's room model (``stop_slu.data_prep.acoustics``), and convolves
  with SpeechBrain's ``reverberate``.
"""

from __future__ import annotations

import random

import torch
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
        responses' measured RT60 (T20) is within 8 % of the drawn one for half
        the rooms and within 40 % for all (the shortest rooms ring longest
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
