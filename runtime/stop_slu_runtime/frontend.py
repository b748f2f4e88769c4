"""The model's front-end in numpy: log mel filterbank and the feature
normalisation, equal to SpeechBrain's ``Fbank`` followed by the trained
``InputNormalization`` within 1e-3 (tests/unit/test_onnx_numpy.py): global
statistics, or per utterance (``norm_type: sentence``, the mean and standard
deviation of each feature over the utterance's frames).

The export writes the constants (``frontend.npz``): the STFT window padded to
``n_fft``, the mel filterbank matrix, the dB settings, the normalisation type
and, for global normalisation, its mean and standard deviation, all taken from
the trained model's own modules. Constants without ``norm_type`` are global.
"""

from __future__ import annotations

import numpy as np

NORM_TYPES = ("global", "sentence")  # SpeechBrain InputNormalization norm_type values computed here


class Frontend:
    """Audio (samples,) float32 at the model's rate -> normalised features (frames, n_mels).

    Frames: ``1 + samples // hop`` (SpeechBrain's centred STFT, zero padding)."""

    def __init__(self, constants: dict):
        self.window = np.asarray(constants["window"], dtype=np.float32)
        self.fbank = np.asarray(constants["fbank_matrix"], dtype=np.float32)
        self.hop = int(constants["hop_length"])
        self.n_fft = int(constants["n_fft"])
        self.amin = float(constants["amin"])
        self.multiplier = float(constants["multiplier"])
        self.db_offset = float(constants["db_offset"])
        self.top_db = float(constants["top_db"])
        self.norm_type = str(constants.get("norm_type", "global"))
        if self.norm_type not in NORM_TYPES:
            raise ValueError(f"norm_type {self.norm_type!r}, expected one of {', '.join(NORM_TYPES)}")
        self.std_norm = bool(constants.get("std_norm", True))
        self.epsilon = float(constants.get("epsilon", 1e-10))
        if self.norm_type == "global":
            self.mean = np.asarray(constants["mean"], dtype=np.float32)
            self.std = np.asarray(constants["std"], dtype=np.float32)

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        wav = np.asarray(wav, dtype=np.float32)
        half = self.n_fft // 2
        padded = np.pad(wav, (half, half))
        n_frames = 1 + (len(padded) - self.n_fft) // self.hop
        index = np.arange(self.n_fft)[None, :] + self.hop * np.arange(n_frames)[:, None]
        spectrum = np.fft.rfft(padded[index] * self.window, axis=-1)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        mel = power @ self.fbank
        db = self.multiplier * np.log10(np.maximum(mel, self.amin)) - self.db_offset
        db = np.maximum(db, db.max() - self.top_db)
        if self.norm_type == "global":
            return ((db - self.mean) / self.std).astype(np.float32)
        mean = db.mean(axis=0)
        std = np.sqrt(np.square(db - mean).mean(axis=0)) if self.std_norm else np.ones_like(mean)
        return ((db - mean) / np.maximum(std, self.epsilon)).astype(np.float32)
