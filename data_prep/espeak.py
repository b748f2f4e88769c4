"""Text to speech with eSpeak NG through its C API (no system package needed).

The ``espeakng-loader`` wheel ships ``libespeak-ng.so`` and its data. We call
``espeak_Initialize`` in synchronous mode, collect the samples the library hands
to our callback, and resample from eSpeak's 22.05 kHz to the 16 kHz of STOP.
One engine per process: the library keeps global state.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

TARGET_RATE = 16000

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4

# English accents eSpeak knows, and voice variants that sound clearly different.
ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc")
VARIANTS = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "f1",
    "f4",
    "klatt",
    "klatt2",
    "klatt3",
    "michael",
    "andy",
    "annie",
)
# Voices kept apart for the held-out takes of eval/test ("other voices"): none is in VARIANTS.
HELD_OUT_VARIANTS = ("m8", "steph", "klatt4", "max", "linda")
NATIVE_ACCENTS = ("en-us", "en", "en-us-nyc", "en-gb-x-rp")
FAMILY = "espeak"


@dataclass(frozen=True)
class Voice:
    """How one utterance is spoken."""

    accent: str = "en-us"
    variant: str = "m1"
    rate: int = 175  # words per minute
    pitch: int = 50  # 0-100
    pitch_range: int = 50  # 0-100

    family = FAMILY

    @property
    def name(self) -> str:
        return f"{self.accent}+{self.variant}"

    @property
    def native(self) -> bool:
        return self.accent in NATIVE_ACCENTS

    def describe(self) -> str:
        """Every setting, ``key=value;...`` (a manifest sidecar's field)."""
        return f"rate={self.rate};pitch={self.pitch};range={self.pitch_range}"

    @property
    def gender(self) -> str:
        female = self.variant.startswith("f") or self.variant in ("linda", "steph", "annie", "klatt3")
        return "female" if female else "male"


def random_voice(rng, variants=VARIANTS) -> Voice:
    """A voice drawn from ``rng`` (a random.Random)."""
    return Voice(
        accent=rng.choice(ACCENTS),
        variant=rng.choice(variants),
        rate=rng.randint(140, 210),
        pitch=rng.randint(30, 75),
        pitch_range=rng.randint(30, 80),
    )


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Engine:
    """The process's eSpeak NG instance. Use ``Engine.get()``."""

    _instance: Engine | None = None
    _lock = threading.Lock()

    def __init__(self):
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data_root = str(Path(espeakng_loader.get_data_path()).parent).encode()
        self.rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_root, 0)
        if self.rate <= 0:
            raise RuntimeError(f"eSpeak NG failed to initialise (data under {data_root.decode()})")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: ctypes does not
        self.lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> Engine:
        with cls._lock:
            if cls._instance is None:
                cls._instance = Engine()
            return cls._instance

    def _collect(self, wav, numsamples, events):
        if numsamples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0

    def speak(self, text: str, voice: Voice = Voice()) -> np.ndarray:
        """int16 samples at 16 kHz of ``text`` spoken with ``voice``."""
        with self._lock:
            if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise ValueError(f"eSpeak NG has no voice {voice.name!r}")
            self.lib.espeak_SetParameter(_PARAM_RATE, voice.rate, 0)
            self.lib.espeak_SetParameter(_PARAM_PITCH, voice.pitch, 0)
            self.lib.espeak_SetParameter(_PARAM_RANGE, voice.pitch_range, 0)
            self.lib.espeak_SetParameter(_PARAM_VOLUME, 100, 0)
            self._chunks = []
            data = text.encode("utf-8") + b"\0"
            error = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if error != 0:
                raise RuntimeError(f"eSpeak NG failed ({error}) on {text!r}")
            self.lib.espeak_Synchronize()
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            self._chunks = []
        return to_16k(audio, self.rate)


def to_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    """Resample int16 samples to 16 kHz (polyphase), clipped back to int16."""
    if rate == TARGET_RATE:
        return samples.astype(np.int16)
    g = np.gcd(rate, TARGET_RATE)
    out = resample_poly(samples.astype(np.float32), TARGET_RATE // g, rate // g)
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def speak(text: str, voice: Voice = Voice()) -> np.ndarray:
    """int16 samples at 16 kHz of ``text`` spoken by eSpeak NG."""
    return Engine.get().speak(text, voice)
