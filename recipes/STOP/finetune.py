#!/usr/bin/env python3
"""Fine-tune a trained model on new data, e.g. a new domain at 25 SPIS.

    python recipes/STOP/finetune.py MODEL_DIR --data_folder=/path/to/stop \
        --prepare_folder=PREPARED --train_split=reminder_train_25spis \
        --valid_split=reminder_valid_25spis --test_split=reminder_test \
        --output_folder=results/reminder_25spis

(or ``stop-slu finetune MODEL_DIR ...``). MODEL_DIR is a training output folder
(``recipe.yaml``, ``save/CKPT+*/``, ``save/tokenizer/``); PREPARED holds the new
CSVs (``stop-slu prepare ... --low-resource DIR`` writes one per low-resource
file). The run rebuilds MODEL_DIR's model from its own config, keeps its
tokenizer (so the output layer matches), starts from the average of its best
checkpoints, and applies ``hparams/finetune.yaml`` and then the command line's
overrides. The new output folder is a complete model folder again
(``stop-slu parse`` reads it; it can be fine-tuned in turn). A rerun of the same
command resumes the fine-tuning run from its own last checkpoint.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import yaml
from speechbrain.utils.checkpoints import Checkpointer

from stop_slu.recipe.stop_checkpoints import load_averaged_model
from stop_slu.recipe.stop_inference import (
    MODEL_TOKENIZER, RECIPE_COPY, RECIPE_OVERRIDES, ModelFolderError, check_model_folder,
)

FINETUNE_OVERRIDES = Path(__file__).resolve().parents[2] / "hparams" / "finetune.yaml"


def recipe_argv(model_dir: Path, overrides_file: Path, argv: list[str]) -> list[str]:
    """The training recipe's arguments: MODEL_DIR's config and overrides, then
    the fine-tuning overrides, then ``argv`` (a key given later wins)."""
    overrides = {}
    for path in (model_dir / RECIPE_OVERRIDES, overrides_file):
        if path.is_file():
            overrides.update(yaml.safe_load(path.read_text()) or {})
    given = {arg[2:].split("=", 1)[0] for arg in argv if arg.startswith("--")}
    inherited = [
        f"--{key}={value if isinstance(value, str) else json.dumps(value)}"
        for key, value in overrides.items() if key not in given
    ]
    return [str(model_dir / RECIPE_COPY), *inherited, *argv]


def copy_tokenizer(model_dir, folder):
    """The source model's tokenizer, byte for byte: its ids are the output layer's."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for path in (Path(model_dir) / MODEL_TOKENIZER).iterdir():
        if path.is_file():
            shutil.copyfile(path, folder / path.name)


def load_source_weights(model_dir, hparams: dict, device) -> list:
    """Load the average of the source's best ``avg_checkpoints`` checkpoints (and
    its normaliser) into this run's model, before the first step: the model of
    the source's test scores, as long as ``avg_checkpoints`` is the source's. A
    resumed fine-tuning run then recovers its own checkpoint on top, as usual."""
    source = Checkpointer(
        Path(model_dir) / "save",
        recoverables={"model": hparams["model"], "normalizer": hparams["normalize"]},
    )
    return load_averaged_model(
        {"checkpointer": source, "model": hparams["model"], "avg_checkpoints": hparams["avg_checkpoints"]},
        max_key="ACC", device=device,
    )


def main(argv=None) -> dict:
    """Fine-tune; returns the test metrics."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        sys.exit(__doc__)
    from stop_slu.recipe import train  # train imports this module's helpers

    model_dir = check_model_folder(argv[0])
    return train.main(recipe_argv(model_dir, FINETUNE_OVERRIDES, argv[1:]), init_from=model_dir)


if __name__ == "__main__":
    from stop_slu.data_prep.prepare import PrepareError

    try:
        main()
    except (PrepareError, ModelFolderError) as error:
        sys.exit(f"error: {error}")
