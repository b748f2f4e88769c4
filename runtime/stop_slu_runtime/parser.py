"""``OnnxParser``: an ONNX export (``stop-slu export RUN OUT --onnx``) ready to
parse audio, with the interface of ``stop_slu.inference.SLUParser`` that
``stop-slu parse``, ``evaluate`` and ``serve`` use (``parse_files``,
``check_file``, ``check_length``, ``supported_duration``, ``decode_batch``,
``sample_rate``, ``decouple_output``, ``target_column``, ``labels``,
``overrides``, ``search``, ``set_search``, ``test_batch_size``) and the same JSON.

The export folder holds ``manifest.json`` (config, search settings, limits,
versions), ``frontend.npz`` (filterbank and normalisation constants),
``encoder.onnx`` (features -> CTC log-probabilities and the decoder's
cross-attention keys and values), ``decoder_step.onnx`` (one token per
hypothesis -> log-probabilities, self-attention caches in and out),
``tree.npz`` (the token classes of the tree constraint) and ``tokenizer/``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import sentencepiece as spm
import soundfile as sf

from stop_slu_runtime.frontend import Frontend
from stop_slu_runtime.parse_format import decouple_if_valid, describe
from stop_slu_runtime.scoring import TOKEN_CLASSES, TreeConstraint
from stop_slu_runtime.search import SearchConfig, beam_search

MANIFEST = "manifest.json"
FORMAT = "stop-slu-onnx/1"
FILES = ("encoder.onnx", "decoder_step.onnx", "frontend.npz", "tree.npz", "tokenizer/tokenizer.model")


class ExportError(ValueError):
    """A folder that is not a usable ONNX export; the message says what is wrong."""


def is_onnx_export(folder) -> bool:
    """True for a folder written by ``stop-slu export --onnx``."""
    return (Path(folder) / MANIFEST).is_file()


class _Decoder:
    """The exported decoder step with its caches for one utterance's beam."""

    def __init__(self, session: ort.InferenceSession, cross_k: np.ndarray, cross_v: np.ndarray, hyps: int):
        self.session, self.cross_k, self.cross_v = session, cross_k, cross_v
        layers, _, heads, _, dim = cross_k.shape
        self.past_k = np.zeros((layers, hyps, heads, 0, dim), dtype=np.float32)
        self.past_v = np.zeros_like(self.past_k)

    def step(self, tokens: np.ndarray) -> np.ndarray:
        feeds = {
            "tokens": tokens.astype(np.int64),
            "position": np.array([self.past_k.shape[3]], dtype=np.int64),
            "past_k": self.past_k,
            "past_v": self.past_v,
            "cross_k": self.cross_k,
            "cross_v": self.cross_v,
        }
        log_probs, self.past_k, self.past_v = self.session.run(None, feeds)
        return log_probs

    def permute(self, index: np.ndarray):
        self.past_k, self.past_v = self.past_k[:, index], self.past_v[:, index]


class OnnxParser:
    """An ONNX export ready to parse 16 kHz mono audio (or the export's rate).

    ``threads``: onnxruntime's intra-op threads (default: onnxruntime's choice).
    Raises ExportError for a folder that is not an ONNX export."""

    def __init__(self, folder, threads: int | None = None):
        self.folder = Path(folder)
        missing = [name for name in (MANIFEST, *FILES) if not (self.folder / name).is_file()]
        if missing:
            raise ExportError(
                f"{self.folder}: not an ONNX export (missing {', '.join(missing)}); "
                "make one with stop-slu export RUN OUT --onnx"
            )
        self.manifest = json.loads((self.folder / MANIFEST).read_text(encoding="utf-8"))
        if self.manifest.get("format") != FORMAT:
            raise ExportError(f"{self.folder / MANIFEST}: format {self.manifest.get('format')!r}, expected {FORMAT!r}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        self.encoder = ort.InferenceSession(str(self.folder / "encoder.onnx"), options, providers=providers)
        self.decoder = ort.InferenceSession(str(self.folder / "decoder_step.onnx"), options, providers=providers)
        constants = self.folder / "frontend.npz"
        try:
            self.frontend = Frontend(dict(np.load(constants)))
        except KeyError as error:
            raise ExportError(f"{constants}: no {error.args[0]!r} constant; export the model again") from None
        except ValueError as error:
            raise ExportError(f"{constants}: {error}") from None
        search = self.manifest["search"]
        self.search = SearchConfig(**{k: search[k] for k in SearchConfig.__dataclass_fields__ if k in search})
        tree = np.load(self.folder / "tree.npz")
        self.tree = (
            TreeConstraint({n: tree[n] for n in TOKEN_CLASSES}, self.search.bos_index, search["words_in_intents"])
            if search["tree_constrained"]
            else None
        )
        self.tokenizer = spm.SentencePieceProcessor(model_file=str(self.folder / "tokenizer" / "tokenizer.model"))
        self.sample_rate = int(self.manifest["sample_rate"])
        self.decouple_output = bool(self.manifest["decouple_output"])
        self.target_column = self.manifest.get("target_column")  # None in exports made before it was recorded
        self.overrides = self.manifest.get("recipe_overrides") or {}  # of the training run
        labels = self.folder / "labels.txt"
        self.labels = [x for x in labels.read_text(encoding="utf-8").splitlines() if x] if labels.is_file() else []
        self._special = {search["bos_index"], search["eos_index"], self.manifest["pad_index"]}

    test_batch_size = None  # the search decodes one utterance at a time

    def set_search(self, beam_size: int | None = None, max_decode_ratio: float | None = None):
        """Change the search's beam size or most tokens per encoder frame (None
        keeps the export's own). The shortest audio taken stays the export's."""
        changes = {"beam_size": beam_size, "max_decode_ratio": max_decode_ratio}
        self.search = replace(
            self.search, **{k: type(getattr(self.search, k))(v) for k, v in changes.items() if v is not None}
        )

    # -- lengths ---------------------------------------------------------------
    def supported_samples(self) -> tuple[int, int | None]:
        """(shortest, longest or None) audio lengths in samples, as the PyTorch model's."""
        limits = self.manifest["limits"]
        return int(limits["shortest_samples"]), limits["longest_samples"]

    def supported_duration(self) -> tuple[float, float | None]:
        """``supported_samples`` in seconds."""
        low, high = self.supported_samples()
        return low / self.sample_rate, (high / self.sample_rate if high else None)

    def check_length(self, n_samples: int, sample_rate: int | None = None) -> str | None:
        """Why audio of ``n_samples`` (at ``sample_rate``) cannot be parsed, or None."""
        rate = sample_rate or self.sample_rate
        n = round(n_samples * self.sample_rate / rate)
        low, high = self.supported_samples()
        shortest, longest = self.supported_duration()
        supported = f"this model parses {shortest * 1000:.0f} ms" + (f" to {longest:.0f} s" if longest else " or more")
        if n < low:
            return f"audio too short ({n_samples / rate * 1000:.1f} ms); {supported}"
        if high and n > high:
            return f"audio too long ({n_samples / rate:.1f} s); {supported}: split it"
        return None

    def check_file(self, path) -> str | None:
        """Why the audio file cannot be parsed (not audio, other sample rate,
        too short or long), or None when it can."""
        if not Path(path).is_file():
            return "missing file" if not Path(path).exists() else "not a file"
        try:
            info = sf.info(str(path))
        except Exception:
            return "not a readable audio file"
        if info.frames == 0:
            return "no audio samples"
        if info.samplerate != self.sample_rate:
            return f"sample rate {info.samplerate} Hz; the runtime reads {self.sample_rate} Hz only: resample it"
        return self.check_length(info.frames, info.samplerate)

    def load_audio(self, path) -> np.ndarray:
        """Mono float32 samples (channels averaged)."""
        data, _ = sf.read(str(path), dtype="float32", always_2d=True)
        return np.ascontiguousarray(data.mean(axis=1) if data.shape[1] > 1 else data[:, 0], dtype=np.float32)

    # -- parsing -----------------------------------------------------------------
    def encode(self, wav: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Samples (n,) -> CTC log-probabilities (frames, vocab), cross-attention keys and values."""
        feats = self.frontend(wav)[None]
        ctc, cross_k, cross_v = self.encoder.run(None, {"feats": feats})
        return ctc[0], cross_k, cross_v

    def decode_waveform(self, wav: np.ndarray) -> tuple[str, float]:
        """The parse and confidence (length-normalised log-probability) of one utterance."""
        reason = self.check_length(len(wav))
        if reason:
            raise ValueError(reason)
        ctc, cross_k, cross_v = self.encode(wav)
        decoder = _Decoder(self.decoder, cross_k, cross_v, self.search.beam_size)
        ids, score = beam_search(self.search, ctc, decoder, self.tree)
        text = self.tokenizer.decode([i for i in ids if i not in self._special])
        return (decouple_if_valid(text) if self.decouple_output else text), round(score, 4)

    def decode_batch(self, wavs, wav_lens) -> tuple[list[str], list[float]]:
        """Parses and confidences of a padded batch: ``wavs`` (batch, samples),
        ``wav_lens`` (batch,) relative lengths, as ``SLUParser.decode_batch``."""
        wavs, wav_lens = np.asarray(wavs, dtype=np.float32), np.asarray(wav_lens, dtype=np.float64)
        out = [self.decode_waveform(w[: round(r * wavs.shape[1])]) for w, r in zip(wavs, wav_lens)]
        return [p for p, _ in out], [c for _, c in out]

    def parse_file(self, path) -> str:
        """The parse of one audio file; ValueError when it cannot be parsed."""
        result = self.parse_files([path])[0]
        if "error" in result:
            raise ValueError(f"{path}: {result['error']}")
        return result["parse"]

    def parse_files(self, paths, batch_size: int = 8) -> list[dict]:
        """One dict per file, in order: file, parse, intent, slots, confidence;
        or file and error (one line) for a file that cannot be parsed."""
        results = []
        for path in map(str, paths):
            reason = self.check_file(path)
            if reason:
                results.append({"file": path, "error": reason})
                continue
            parse, confidence = self.decode_waveform(self.load_audio(path))
            results.append({"file": path, **describe(parse), "confidence": confidence})
        return results
