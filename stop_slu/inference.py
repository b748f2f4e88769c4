"""Parse new audio with a trained model folder (a recipe output folder).

The folder needs nothing else: it holds the config the model was trained with
(``recipe.yaml`` + ``recipe_overrides.yaml``), the checkpoints under save/ and
the tokenizer under save/tokenizer/. Only files inside the folder are read (a
symlink leading out of it is refused; its own save/ layout is used whatever the
training run's overrides said) and checkpoints load with
``torch.load(weights_only=True)``; but ``recipe.yaml`` is HyperPyYAML, which
runs the code it names: parse only model folders from sources you trust.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.data_utils import batch_pad_right

from stop_slu import parses
from stop_slu.checkpoints import load_averaged_model, weights_only_loading
from stop_slu.data_prep.audio import load_audio
from stop_slu.frontend import encoder_input
from stop_slu.tokenizer.parse_tokenizer import ParseTokenizer, has_tokenizer, load_tokenizer

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


class SLUParser:
    """A trained model ready to parse audio."""

    def __init__(self, hparams: dict, tokenizer: ParseTokenizer, device: str = "cpu", overrides=None):
        self.hparams = hparams
        self.tokenizer = tokenizer
        self.overrides = overrides or {}  # of the training run (for the model card)
        self.device = torch.device(device)
        for name in ("model", "normalize", "compute_features"):
            if hparams.get(name) is not None:  # the Whisper config has no separate front-end
                hparams[name].to(self.device).eval()

    @classmethod
    def from_folder(cls, folder, device: str = "cpu", overrides: dict | None = None) -> SLUParser:
        """A training output folder, or an exported model folder. ``overrides``
        change the config for inference (e.g. ``{"test_beam_size": 4}``)."""
        folder = Path(folder).resolve()
        recipe = folder / RECIPE_COPY
        if not recipe.is_file() and (folder / EXPORT_HPARAMS).is_file():
            return cls.from_hparams(folder, device=device, overrides=overrides)
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
        tokenizer_dir = Path(hparams["tokenizer_folder"])
        if not load_averaged_model(hparams, max_key="ACC", device=device):
            raise ModelFolderError(f"{hparams['save_folder']}: no checkpoint; training has not saved a model yet")
        return cls(hparams, load_tokenizer(tokenizer_dir), device, overrides=trained_with)

    @classmethod
    def from_hparams(cls, source, device: str = "cpu", overrides: dict | None = None) -> SLUParser:
        """An exported model folder (``stop-slu export``), loaded the way
        SpeechBrain pretrained models are: ``SLUParser.from_hparams(source=DIR)``."""
        folder = Path(source).resolve()
        whisper = (folder / EXPORT_TOKENIZER / "whisper").is_dir()  # Whisper's tokenizer, no feature normaliser
        names = [EXPORT_HPARAMS, EXPORT_MODEL, *([] if whisper else [EXPORT_NORMALIZER])]
        names.append(f"{EXPORT_TOKENIZER}/{'tokenizer.json' if whisper else 'tokenizer.model'}")
        needed = [folder / name for name in names]
        missing = [p.name for p in needed if not p.is_file()]
        if missing:
            raise ModelFolderError(
                f"{folder}: not an exported model (missing {', '.join(missing)}); make one with stop-slu export"
            )
        for path in (*needed, *sorted(folder.rglob("*"))):
            _inside(folder, path)
        with open(folder / EXPORT_HPARAMS, encoding="utf-8") as f:
            hparams = load_hyperpyyaml(f, {**(overrides or {}), "export_folder": str(folder)})
        with weights_only_loading(folder):  # the normaliser's file too
            state = torch.load(folder / EXPORT_MODEL, map_location=device, weights_only=True)
            hparams["model"].load_state_dict(state, strict=True)
            if hparams.get("normalize") is not None:
                hparams["normalize"]._load(folder / EXPORT_NORMALIZER)
        return cls(hparams, load_tokenizer(folder / EXPORT_TOKENIZER), device)

    def parse_file(self, path) -> str:
        """The parse of one audio file (any sample rate; stereo is down-mixed)."""
        return self.parse_files([path])[0]["parse"]

    @torch.no_grad()
    def parse_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> list[str]:
        """Parses of a padded batch (``wav_lens`` relative, as in SpeechBrain)."""
        hp = self.hparams
        wavs, wav_lens = wavs.to(self.device), wav_lens.to(self.device)
        if hp.get("model_encode") is not None:  # the model's own (stop_slu/whisper.py)
            enc_out = hp["model_encode"](hp["modules"], wavs, wav_lens)
        else:
            src, wav_lens = encoder_input(hp["modules"], hp["compute_features"], wavs, wav_lens)
            enc_out = hp["Transformer"].encode(src, wav_lens, pad_idx=hp["pad_index"])
        hyps, _, _, _ = hp["test_search"](enc_out, wav_lens)
        return [output_parse(self.tokenizer, h, hp["decouple_output"]) for h in hyps]

    def load_batch(self, paths) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio files as a padded batch and relative lengths, padded the way the
        recipe's data loader pads them (SpeechBrain's ``batch_pad_right``)."""
        signals = [torch.from_numpy(load_audio(str(p), self.hparams["sample_rate"])) for p in paths]
        return batch_pad_right(signals)

    def parse_files(self, paths, batch_size: int = 8) -> list[dict]:
        """One dict per file: file, parse, intent, slots."""
        results = []
        paths = [str(p) for p in paths]
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            for path, parse in zip(chunk, self.parse_batch(*self.load_batch(chunk))):
                results.append({"file": path, **describe(parse)})
        return results
