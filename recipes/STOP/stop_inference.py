"""Parse new audio with a trained model folder (a recipe output folder).

The folder needs nothing else: it holds the config the model was trained with
(``recipe.yaml`` + ``recipe_overrides.yaml``), the checkpoints under save/ and
the tokenizer under save/tokenizer/.
"""

from __future__ import annotations

from pathlib import Path

import torch
from hyperpyyaml import load_hyperpyyaml
import yaml

from stop_slu import parses
from stop_slu.data_prep.audio import load_audio
from stop_slu.recipe.stop_checkpoints import load_averaged_model
from stop_slu.tokenizer.parse_tokenizer import ParseTokenizer

RECIPE_COPY = "recipe.yaml"  # the config as given (references unresolved)
RECIPE_OVERRIDES = "recipe_overrides.yaml"  # overrides applied, minus the paths


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


class SLUParser:
    """A trained model ready to parse audio."""

    def __init__(self, hparams: dict, tokenizer: ParseTokenizer, device: str = "cpu"):
        self.hparams = hparams
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        for name in ("model", "normalize", "compute_features"):
            hparams[name].to(self.device).eval()

    @classmethod
    def from_folder(cls, folder, device: str = "cpu") -> "SLUParser":
        folder = Path(folder).resolve()
        recipe = folder / RECIPE_COPY
        if not recipe.is_file():
            raise ModelFolderError(
                f"{folder}: not a trained model folder (no {RECIPE_COPY}); "
                "pass the --output_folder of a finished training run"
            )
        overrides_path = folder / RECIPE_OVERRIDES
        overrides = yaml.safe_load(overrides_path.read_text()) if overrides_path.is_file() else {}
        overrides = {**(overrides or {}), "output_folder": str(folder), "data_folder": str(folder)}
        with open(recipe, encoding="utf-8") as f:
            hparams = load_hyperpyyaml(f, overrides)
        tokenizer_dir = Path(hparams["tokenizer_folder"])
        if not (tokenizer_dir / "tokenizer.model").is_file():
            raise ModelFolderError(f"{tokenizer_dir}: tokenizer missing; the model folder is incomplete")
        if not load_averaged_model(hparams, max_key="ACC", device=device):
            raise ModelFolderError(f"{hparams['save_folder']}: no checkpoint; training has not saved a model yet")
        return cls(hparams, ParseTokenizer(tokenizer_dir), device)

    @torch.no_grad()
    def parse_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> list[str]:
        """Parses of a padded batch (``wav_lens`` relative, as in SpeechBrain)."""
        hp = self.hparams
        wavs, wav_lens = wavs.to(self.device), wav_lens.to(self.device)
        feats = hp["compute_features"](wavs)
        feats = hp["normalize"](feats, wav_lens)
        src = hp["CNN"](feats)
        enc_out = hp["Transformer"].encode(src, wav_lens, pad_idx=hp["pad_index"])
        hyps, _, _, _ = hp["test_search"](enc_out, wav_lens)
        return [output_parse(self.tokenizer, h, hp["decouple_output"]) for h in hyps]

    def parse_files(self, paths, batch_size: int = 8) -> list[dict]:
        """One dict per file: file, parse, intent, slots."""
        results = []
        paths = [str(p) for p in paths]
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            signals = [torch.from_numpy(load_audio(p, self.hparams["sample_rate"])) for p in chunk]
            longest = max(len(s) for s in signals)
            wavs = torch.zeros(len(signals), longest)
            for i, s in enumerate(signals):
                wavs[i, : len(s)] = s
            wav_lens = torch.tensor([len(s) / longest for s in signals])
            for path, parse in zip(chunk, self.parse_batch(wavs, wav_lens)):
                results.append({"file": path, **describe(parse)})
        return results
