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
import sys
from pathlib import Path

import yaml

from stop_slu.data_prep.prepare import PrepareError
from stop_slu.inference import RECIPE_COPY, RECIPE_OVERRIDES, ModelFolderError, check_model_folder
from stop_slu.recipe import train
from stop_slu.recipe_args import OverrideError, RunOptionError
from stop_slu.run_lock import RunLockedError

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
        for key, value in overrides.items()
        if key not in given
    ]
    return [str(model_dir / RECIPE_COPY), *inherited, *argv]


def main(argv=None) -> dict:
    """Fine-tune; returns the test metrics."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        sys.exit(__doc__)
    model_dir = check_model_folder(argv[0])
    return train.main(recipe_argv(model_dir, FINETUNE_OVERRIDES, argv[1:]), init_from=model_dir)


if __name__ == "__main__":
    try:
        main()
    except (PrepareError, ModelFolderError, OverrideError, RunOptionError, RunLockedError) as error:
        sys.exit(f"error: {error}")
