"""Parse new audio with a trained model: ``SLUParser``, a SpeechBrain
``Pretrained`` interface.

Two kinds of model folder load:

- an exported model (``stop-slu export``), local or on the Hugging Face Hub,
  through SpeechBrain's own ``from_hparams``: its ``hyperparams.yaml`` holds
  ``modules`` and a ``pretrainer`` that loads ``model.ckpt`` (strictly) and
  ``normalizer.ckpt``;
- a training output folder (``SLUParser.from_folder``): the config the model
  was trained with (``recipe.yaml`` + ``recipe_overrides.yaml``), the
  checkpoints under save/ (the best ones averaged) and the tokenizer under
  save/tokenizer/; its own save/ layout is used whatever the training run's
  overrides said.

From a local folder only files inside it are read (a symlink leading out of it
is refused), and every checkpoint loads with ``torch.load(weights_only=True)``;
but the configs are HyperPyYAML, which runs the code it names: load models
only from sources you trust.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import ruamel.yaml
import torch
import yaml
from hyperpyyaml import load_hyperpyyaml
from speechbrain.inference.interfaces import Pretrained, pretrained_from_hparams
from speechbrain.utils.data_utils import batch_pad_right
from speechbrain.utils.fetching import FetchConfig, LocalStrategy, fetch

from stop_slu import parses
from stop_slu.checkpoints import load_averaged_model, weights_only_loading
from stop_slu.data_prep.audio import AudioError, audio_info, load_audio
from stop_slu.families import family_of
from stop_slu.frontend import compute_features_of
from stop_slu.tokenizer.parse_tokenizer import ParseTokenizer, has_tokenizer, load_tokenizer

if TYPE_CHECKING:  # the ONNX runtime (runtime/, pip install ./runtime) is imported only for an ONNX export
    from stop_slu_runtime import OnnxParser

RECIPE_COPY = "recipe.yaml"  # the config as given (references unresolved)
RECIPE_OVERRIDES = "recipe_overrides.yaml"  # overrides applied, minus the paths
# An exported model folder (stop-slu export; see export.py):
EXPORT_HPARAMS = "hyperparams.yaml"
EXPORT_MODEL = "model.ckpt"
EXPORT_NORMALIZER = "normalizer.ckpt"
EXPORT_TOKENIZER = "tokenizer"


class ModelFolderError(ValueError):
    """A folder that is not a trained model; the message says what is missing."""


def output_parse(tokenizer: ParseTokenizer, token_ids, decouple: bool) -> str:
    """The parse a model emits, in the form users get and metrics score:
    decoupled when the model learnt full parses (``decouple_output``)."""
    text = tokenizer.decode(token_ids)
    return parses.decouple_if_valid(text) if decouple else text


def describe(parse: str) -> dict:
    """Root intent and slots of a parse, for JSON output."""
    intent = parses.root_intent(parse)
    return {
        "parse": parse,
        "intent": intent[3:] if intent else None,
        "slots": [{"label": label[3:], "text": text} for label, text in parses.slots(parse)],
    }


def _inside(folder: Path, path: Path):
    """Refuse a path of the model folder that leads outside it (symlink, override)."""
    if (path.exists() or path.is_symlink()) and not path.resolve().is_relative_to(folder):
        raise ModelFolderError(
            f"{path}: leads outside the model folder {folder} (to {path.resolve()}); "
            "parse reads only files inside MODEL_DIR: copy the file into it"
        )


MODEL_TOKENIZER = Path("save") / "tokenizer"  # in a training output folder


def check_model_folder(folder) -> Path:
    """A training output folder (resolved) that holds its config, its tokenizer
    and at least one checkpoint; else ModelFolderError saying what is missing."""
    folder = Path(folder).resolve()
    if not (folder / RECIPE_COPY).is_file():
        raise ModelFolderError(
            f"{folder}: not a trained model folder (no {RECIPE_COPY}); "
            "pass the --output_folder of a finished training run"
        )
    if not has_tokenizer(folder / MODEL_TOKENIZER):
        raise ModelFolderError(f"{folder / MODEL_TOKENIZER}: tokenizer missing; the model folder is incomplete")
    if not any((folder / "save").glob("CKPT+*")):
        raise ModelFolderError(f"{folder / 'save'}: no checkpoint; training has not saved a model yet")
    return folder


class _Hparams(SimpleNamespace):
    """Pretrained's ``hparams`` namespace (``parser.hparams.test_search``) that
    also reads like the dict it came from (``parser.hparams["model"]``)."""

    def __getitem__(self, key):
        return getattr(self, key)

    def __contains__(self, key):
        return hasattr(self, key)

    def get(self, key, default=None):
        return getattr(self, key, default)


def load_model_weights(model: torch.nn.Module, path):
    """Pretrainer hook for ``model.ckpt``: a state dict read weights-only
    (``torch.load(weights_only=True)``) and loaded strictly: every key must
    match, where SpeechBrain's default transfer hook only warns. Raises
    CheckpointError for a file holding pickled objects, RuntimeError for keys
    or shapes that do not match the model."""
    with weights_only_loading(path):
        state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)


def load_normalizer(normalizer, path):
    """Pretrainer hook for ``normalizer.ckpt``: SpeechBrain's
    ``InputNormalization`` statistics, read weights-only."""
    with weights_only_loading(path):
        normalizer._load(path)


def export_files(config_path) -> list[str]:
    """The files an exported model needs besides ``hyperparams.yaml`` (paths
    relative to the export), as its ``files`` key lists them: read from the
    YAML structure, without running the config. An export without the key
    (stop-slu 0.2) needs its model, normaliser and tokenizer."""
    tree = ruamel.yaml.YAML(typ="rt").load(Path(config_path).read_text(encoding="utf-8"))
    files = tree.get(EXPORT_FILES) if hasattr(tree, "get") else None
    if files is None:
        return [EXPORT_MODEL, EXPORT_NORMALIZER, *(f"{EXPORT_TOKENIZER}/{n}" for n in TOKENIZER_FILES)]
    return [str(name) for name in files]


def _check_export_folder(folder: Path):
    """A local exported model folder: the files it needs, none leading outside it."""
    if not (folder / EXPORT_HPARAMS).is_file():
        raise ModelFolderError(f"{folder}: not an exported model (no {EXPORT_HPARAMS}); make one with stop-slu export")
    _inside(folder, folder / EXPORT_HPARAMS)
    needed = [folder / name for name in export_files(folder / EXPORT_HPARAMS)]
    missing = [str(p.relative_to(folder)) for p in needed if not p.is_file()]
    if missing:
        raise ModelFolderError(
            f"{folder}: not an exported model (missing {', '.join(missing)}); make one with stop-slu export"
        )
    for path in (*needed, *sorted(folder.rglob("*"))):
        _inside(folder, path)


MIN_DECODE_STEPS = 3  # the shortest parse and its end: "[IN:X", "]", end-of-sequence
DEFAULT_MAX_AUDIO_SECONDS = 60.0  # the limit of a model whose config predates max_audio_seconds
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json")  # SentencePiece model, label inventory
EXPORT_FILES = "files"  # the export's key listing every file it needs


class SLUParser(Pretrained):
    """A trained model ready to parse audio: a SpeechBrain ``Pretrained`` interface.

    Load an exported model (``stop-slu export``; a local folder or a Hugging
    Face Hub repository) the SpeechBrain way::

        parser = SLUParser.from_hparams(source="EXPORT_DIR", savedir="pretrained/stop",
                                        run_opts={"device": "cuda"})
        parser.parse_file("audio.wav")  # '[IN:CREATE_ALARM [SL:DATE_TIME for seven ] ]'

    or a training output folder with ``SLUParser.from_folder(OUT)``. The
    modules (``self.mods``) are the config's ``modules``; ``self.hparams``
    holds the rest (attribute or ``[key]`` access). Audio is 16 kHz mono
    (other rates are resampled, stereo down-mixed when loading files).
    """

    # The modules are the config's: what its model family (``family``) needs.
    HPARAMS_NEEDED = ["model", "test_search", "decouple_output", "sample_rate"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hparams = _Hparams(**vars(self.hparams))
        self.family = family_of(self.hparams)
        self.overrides = {}  # of the training run (for the model card); from_folder sets them
        folder = self.hparams.get("tokenizer_folder") or Path(self.hparams.export_folder) / EXPORT_TOKENIZER
        self.tokenizer = load_tokenizer(folder)
        for module in (self.hparams.model, self.hparams.get("compute_features"), self.hparams.test_search):
            if module is not None:  # the Whisper config has no separate front-end
                module.to(self.device).eval()
        self.mods.eval()  # parsing never trains: not even a normaliser's statistics (freeze_params=False)

    @classmethod
    def from_folder(
        cls, folder, device: str = "cpu", overrides: dict | None = None, run_opts: dict | None = None
    ) -> SLUParser:
        """A training output folder (or an exported model folder, loaded with
        ``from_hparams``). ``overrides`` change the config for inference (e.g.
        ``{"test_beam_size": 4}``); ``device`` is a torch device string.
        Raises ModelFolderError for a folder that is not a trained model."""
        run_opts = {"device": device, **(run_opts or {})}
        folder = Path(folder).resolve()
        recipe = folder / RECIPE_COPY
        if not recipe.is_file() and (folder / EXPORT_HPARAMS).is_file():
            return cls.from_hparams(source=str(folder), overrides=overrides, run_opts=run_opts)
        overrides_path = folder / RECIPE_OVERRIDES
        save = folder / "save"
        for path in (recipe, overrides_path, save, *sorted(save.rglob("*"))):
            _inside(folder, path)  # before anything is read: no symlink out of the folder
        check_model_folder(folder)
        trained_with = yaml.safe_load(overrides_path.read_text()) if overrides_path.is_file() else {}
        overrides = {  # the folder's own layout, whatever the overrides of the training run said
            **(trained_with or {}),
            "output_folder": str(folder),
            "data_folder": str(folder),
            "save_folder": str(save),
            "tokenizer_folder": str(folder / MODEL_TOKENIZER),
            **(overrides or {}),
        }
        with open(recipe, encoding="utf-8") as f:
            hparams = load_hyperpyyaml(f, overrides)
        _inside(folder, Path(hparams["checkpointer"].checkpoints_dir))
        if not load_averaged_model(hparams, max_key="ACC", device=run_opts["device"]):
            raise ModelFolderError(f"{hparams['save_folder']}: no checkpoint; training has not saved a model yet")
        parser = cls(modules=hparams["modules"], hparams=hparams, run_opts=run_opts)
        parser.overrides = trained_with or {}
        return parser

    @classmethod
    def from_hparams(
        cls,
        source,
        hparams_file: str = EXPORT_HPARAMS,
        savedir=None,
        overrides: dict | None = None,
        local_strategy: LocalStrategy = LocalStrategy.SYMLINK,
        fetch_config: FetchConfig = FetchConfig(),
        **kwargs,
    ) -> SLUParser:
        """An exported model (``stop-slu export``), loaded through SpeechBrain's
        ``pretrained_from_hparams``: ``source`` is a local folder or a Hugging
        Face Hub repository id, ``savedir`` where its files are linked or
        downloaded (default: the local folder itself, or the Hub cache).
        Every file the export's ``files`` key lists (the tokenizer, which the
        tree-constrained search reads when it is built, a pretrained model's
        configuration and frozen weights, the model's weights) is fetched into
        ``savedir`` first, one file at a time as from a Hub repository, then
        the config is loaded with ``export_folder`` set there and the
        Pretrainer loads ``model.ckpt`` (strictly) and ``normalizer.ckpt``,
        weights-only. ``kwargs`` go to
        the constructor (``run_opts={"device": "cuda"}``, ``freeze_params``).
        Raises ModelFolderError for a local folder that is not an export, or
        one holding a symlink that leads outside it."""
        if Path(str(source)).is_dir():
            source = Path(source).resolve()
            _check_export_folder(source)
            source = str(source)
        fetch_opts = {"source": source, "savedir": savedir, "local_strategy": local_strategy}
        fetch_opts["fetch_config"] = fetch_config
        config = fetch(filename=hparams_file, **fetch_opts)
        export_folder = Path(config).parent  # savedir, the local folder or the Hub cache's snapshot
        for relative in export_files(config):
            if savedir is not None:
                (Path(savedir) / relative).parent.mkdir(parents=True, exist_ok=True)
            fetch(filename=relative, **fetch_opts)
        with weights_only_loading(source):
            return pretrained_from_hparams(
                cls,
                hparams_file=hparams_file,
                overrides={**(overrides or {}), "export_folder": str(export_folder)},
                **fetch_opts,
                **kwargs,
            )

    # -- what every parser gives (this class and stop_slu_runtime.OnnxParser) --------
    @property
    def sample_rate(self) -> int:
        """The audio sample rate the model takes, in Hz."""
        return int(self.hparams.sample_rate)

    @property
    def decouple_output(self) -> bool:
        """Whether parses come out decoupled (slot words only) from a model that learnt full parses."""
        return bool(self.hparams.decouple_output)

    @property
    def target_column(self) -> str | None:
        """The STOP manifest column the model learnt (None where its config names none)."""
        return self.hparams.get("target_column")

    @property
    def labels(self) -> list[str]:
        """The intent and slot labels the model can output (``[IN:...``, ``[SL:...``)."""
        return list(self.tokenizer.labels)

    @property
    def search(self):
        """The test search; its ``beam_size`` and ``max_decode_ratio`` are the model's own."""
        return self.hparams.test_search

    @property
    def test_batch_size(self) -> int | None:
        """Utterances per batch of the config's test loader (None where it names none)."""
        opts = self.hparams.get("test_dataloader_opts") or {}
        return int(opts["batch_size"]) if "batch_size" in opts else None

    def set_search(self, beam_size: int | None = None, max_decode_ratio: float | None = None):
        """Change the test search's beam size or most tokens per encoder frame
        (None keeps the model's own), as the overrides ``test_beam_size`` and
        ``max_decode_ratio`` would: a scorer that budgets by the ratio (the
        tree constraint's length budget) takes the new one too, and the
        shortest audio the model takes follows."""
        if beam_size is not None:
            self.search.beam_size = int(beam_size)
        if max_decode_ratio is not None:
            scorer = self.search.scorer
            scorers = [*scorer.full_scorers.values(), *scorer.partial_scorers.values()] if scorer is not None else []
            for searcher in (self.search, *scorers):
                if hasattr(searcher, "max_decode_ratio"):
                    searcher.max_decode_ratio = float(max_decode_ratio)
            self._supported = None

    @torch.no_grad()
    def encode_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> torch.Tensor:
        """Audio (batch, samples) at ``sample_rate`` with relative lengths
        (batch,) -> encoder output (batch, frames, d_model)."""
        wavs, wav_lens = wavs.to(self.device).float(), wav_lens.to(self.device)
        return self.family.encode(self.mods, self.hparams, wavs, wav_lens)

    @torch.no_grad()
    def encode_each(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row of a padded batch encoded as if alone (the model family's
        ``encode_each``): audio (batch, samples) at ``sample_rate`` with
        relative lengths (batch,) -> ``(enc_states, enc_lens)``, (batch,
        frames, d_model) and relative lengths (batch,). Parsing searches these,
        so a parse never depends on the clips batched with it."""
        wavs, wav_lens = wavs.to(self.device).float(), wav_lens.to(self.device)
        return self.family.encode_each(self.mods, self.hparams, wavs, wav_lens)

    @torch.no_grad()
    def _encoder_frames(self, n_samples: int) -> int | None:
        """Encoder frames for ``n_samples`` of audio; None where the front-end cannot take it."""
        wavs = torch.zeros(1, n_samples, device=self.device)
        try:
            feats = compute_features_of(
                self.mods, self.hparams.compute_features, wavs, torch.ones(1, device=self.device)
            )
            return int(self.mods.CNN(feats).shape[1])
        except RuntimeError:
            return None

    def supported_samples(self) -> tuple[int, int]:
        """The audio lengths this model parses, in samples at ``sample_rate``:
        ``(shortest, longest)``.

        Shortest: the search must have room for the shortest parse
        (``MIN_DECODE_STEPS`` tokens, ``max_decode_ratio`` of the encoder
        frames), measured on the model's own front-end. Longest: the config's
        ``max_audio_seconds`` (``DEFAULT_MAX_AUDIO_SECONDS`` for a model whose
        config predates the key), the length whose encoding and search memory
        was measured (benchmarks/README.md); never beyond what the model can
        take at all (``architectural_limit``)."""
        if getattr(self, "_supported", None) is None:
            rate = self.hparams.sample_rate
            shortest = 1 if self.family.fixed_window else self._shortest_samples()
            hard = self.architectural_limit()[0]
            longest = int(self.max_audio_seconds() * rate)
            self._supported = (shortest, min(longest, hard) if hard else longest)
        return self._supported

    def max_audio_seconds(self) -> float:
        """The configured limit on audio length in seconds (``max_audio_seconds``)."""
        configured = self.hparams.get("max_audio_seconds")
        return float(configured if configured is not None else DEFAULT_MAX_AUDIO_SECONDS)

    def set_max_audio_seconds(self, seconds: float):
        """Raise (or lower) the longest audio this parser takes, in seconds, as
        the override ``max_audio_seconds`` does; memory grows with it (as its
        square in the encoder's self-attention). Raises ValueError for a value
        that is not positive or beyond ``architectural_limit``."""
        hard, why = self.architectural_limit()
        if not seconds > 0:
            raise ValueError(f"max_audio_seconds={seconds}: must be a positive number of seconds")
        if hard and seconds * self.hparams.sample_rate > hard:
            raise ValueError(
                f"max_audio_seconds={seconds}: beyond what this model can take ({why}, "
                f"{hard / self.hparams.sample_rate:.0f} s); split longer recordings"
            )
        self.hparams.max_audio_seconds = float(seconds)
        self._supported = None

    def architectural_limit(self) -> tuple[int | None, str | None]:
        """The longest audio, in samples, the model can take whatever the
        config's ``max_audio_seconds`` says, and why: Whisper's window (its
        input is padded or cut to it), the encoder's absolute positional
        encoding (``max_len`` frames); ``(None, None)`` for relative positions."""
        whisper = getattr(self.mods, "whisper", None)
        if getattr(whisper, "_n_samples", None):
            return int(whisper._n_samples), "Whisper's input window"
        encoding = getattr(self.mods.Transformer, "positional_encoding", None)
        max_frames = getattr(encoding, "max_len", None)
        if not max_frames:
            return None, None
        one, two = self.hparams.sample_rate, 2 * self.hparams.sample_rate
        per_sample = (self._encoder_frames(two) - self._encoder_frames(one)) / one
        # frames grow linearly with length: one frame of margin for the front-end's rounding
        longest = one + int((max_frames - 1 - self._encoder_frames(one)) / per_sample)
        return longest, f"the encoder's absolute positional encoding of {max_frames} frames"

    def _shortest_samples(self) -> int:
        """The shortest audio whose encoder frames leave the search room for the shortest parse."""
        ratio = float(self.hparams.test_search.max_decode_ratio)

        def enough(n):
            frames = self._encoder_frames(n)
            return frames is not None and int(frames * ratio) >= MIN_DECODE_STEPS

        low, high = 1, 2 * self.hparams.sample_rate
        while not enough(high) and high < 64 * self.hparams.sample_rate:
            low, high = high, 2 * high
        while low < high:  # the shortest length with room enough (frames grow with length)
            middle = (low + high) // 2
            low, high = (middle + 1, high) if not enough(middle) else (low, middle)
        return low

    def supported_duration(self) -> tuple[float, float]:
        """``supported_samples`` in seconds: (shortest, longest)."""
        low, high = self.supported_samples()
        rate = self.hparams.sample_rate
        return low / rate, high / rate

    def check_length(self, n_samples: int, sample_rate: int | None = None) -> str | None:
        """Why audio of ``n_samples`` (at ``sample_rate``, default the model's)
        cannot be parsed (one line: the limit, how to raise it), or None when it can."""
        rate = sample_rate or self.hparams.sample_rate
        n = round(n_samples * self.hparams.sample_rate / rate)
        low, high = self.supported_samples()
        shortest, longest = self.supported_duration()
        supported = f"this model parses {shortest * 1000:.0f} ms to {longest:g} s"
        if n < low:
            return f"audio too short ({n_samples / rate * 1000:.1f} ms); {supported}"
        if n > high:
            hard, why = self.architectural_limit()
            if hard and high >= hard:
                return f"audio too long ({n_samples / rate:.1f} s); {supported} ({why}): split it"
            return (
                f"audio too long ({n_samples / rate:.1f} s); {supported} (max_audio_seconds): split it, "
                "or raise the limit with `stop-slu parse --max_audio_seconds=SECONDS` "
                "(Python: the override max_audio_seconds, or SLUParser.set_max_audio_seconds)"
            )
        return None

    def parse_file(self, path) -> str:
        """The parse of one audio file (any sample rate; stereo is down-mixed).
        Raises AudioError for a file that is not audio or out of ``supported_duration``."""
        result = self.parse_files([path])[0]
        if "error" in result:
            raise AudioError(f"{path}: {result['error']}")
        return result["parse"]

    @torch.no_grad()
    def decode_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> tuple[list[str], list[float]]:
        """Parses of a padded batch and their confidences: ``wavs`` (batch,
        samples) at ``sample_rate``, ``wav_lens`` (batch,) relative lengths in
        [0, 1], as in SpeechBrain. The confidence is the search's
        length-normalised log-probability (its score divided by the number of
        tokens, end-of-sequence included; attention and CTC scores weighted as
        in the config): at most 0, nearer 0 more confident. Raises ValueError
        for a row shorter or longer than ``supported_samples``."""
        wav_lens = wav_lens.to(self.device)
        self.mods.eval()  # parsing never changes the model, whatever mode it was left in
        for row, length in enumerate(wav_lens.tolist()):
            reason = self.check_length(round(length * wavs.shape[1]))
            if reason:
                raise ValueError(f"batch row {row}: {reason}")
        hyps, _, scores, _ = self.hparams.test_search(*self.encode_each(wavs, wav_lens))
        parsed = [output_parse(self.tokenizer, h, self.hparams.decouple_output) for h in hyps]
        return parsed, [round(float(score), 4) for score in scores.view(-1)]

    def parse_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> list[str]:
        """Parses of a padded batch (``decode_batch`` without the confidences)."""
        return self.decode_batch(wavs, wav_lens)[0]

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> list[str]:
        """The full model on a batch: ``parse_batch``."""
        return self.parse_batch(wavs, wav_lens)

    def load_batch(self, paths) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio files as a padded batch and relative lengths, padded the way the
        recipe's data loader pads them (SpeechBrain's ``batch_pad_right``)."""
        signals = [torch.from_numpy(load_audio(str(p), self.hparams.sample_rate)) for p in paths]
        return batch_pad_right(signals)

    def check_file(self, path) -> str | None:
        """Why the audio file ``path`` cannot be parsed (not audio, too short,
        too long; from its header alone), or None when it can."""
        try:
            info = audio_info(path)
        except AudioError as error:
            return str(error)
        return self.check_length(info.frames, info.sample_rate)

    def parse_files(self, paths, batch_size: int = 8) -> list[dict]:
        """One dict per file, in order: file, parse, confidence (see
        ``decode_batch``), intent, slots; or file and error (one line saying
        why) for a file that is not audio or out of ``supported_duration``.
        The other files are parsed all the same."""
        paths = [str(p) for p in paths]
        results = {path: {"file": path, "error": reason} for path in paths if (reason := self.check_file(path))}
        good = [path for path in paths if path not in results]
        for start in range(0, len(good), batch_size):
            chunk = good[start : start + batch_size]
            for path, parse, confidence in zip(chunk, *self.decode_batch(*self.load_batch(chunk))):
                results[path] = {"file": path, **describe(parse), "confidence": confidence}
        return [results[path] for path in paths]


def load_parser(source, device: str = "cpu", overrides: dict | None = None, savedir=None) -> SLUParser | OnnxParser:
    """Any model ``stop-slu parse`` accepts, ready to parse: a training output
    folder, a local exported model folder, an ONNX export (``stop-slu export
    --onnx``: a ``stop_slu_runtime.OnnxParser``, same ``parse_files``,
    ``check_file``, ``supported_duration``, ``decode_batch``, ``sample_rate``,
    ``search``, ``set_search``...; it runs on the CPU and takes no
    ``overrides``: asked for either, ModelFolderError), or a Hugging Face Hub repository id
    of an export (``user/repo``, fetched into ``savedir``, by default the Hub
    cache). ``device`` is a torch device string; ``overrides`` change the
    config for inference (e.g. ``{"test_beam_size": 4}``). Raises
    ModelFolderError for a local folder that is not a model, or a source that
    is neither a folder nor a Hub id."""
    path = Path(str(source))
    if path.is_dir() and (path / "manifest.json").is_file():  # stop-slu export --onnx
        from stop_slu_runtime import OnnxParser

        if overrides:
            raise ModelFolderError(
                f"{source}: an ONNX export's config is fixed when it is exported; overrides "
                f"({', '.join(overrides)}) do not apply: export the training run again with them"
            )
        if str(device) != "cpu":
            raise ModelFolderError(
                f"{source}: an ONNX export runs on the CPU (onnxruntime); --device {device} does not apply"
            )
        return OnnxParser(path)
    if path.is_dir():
        return SLUParser.from_folder(path, device=device, overrides=overrides)
    if path.exists() or not re.fullmatch(r"[\w.-]+/[\w.-]+", str(source)):
        raise ModelFolderError(
            f"{source}: not a model folder or a Hugging Face Hub repository id (user/repo); "
            "pass a training output folder, an exported model folder or a Hub id"
        )
    return SLUParser.from_hparams(source=str(source), savedir=savedir, overrides=overrides, run_opts={"device": device})
