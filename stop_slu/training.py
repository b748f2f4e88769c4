"""The recipe's training extras, around SpeechBrain's ``Brain``.

- ``RobustBrain``: a ``Brain`` that skips optimiser steps whose loss is not
  finite (agreed across DDP ranks) and stops after ``nonfinite_patience`` in a
  row, ends training at ``max_train_minutes``, checks after every epoch that
  the DDP ranks hold identical weights, and logs to TensorBoard as well as to
  ``train_log.txt`` when ``use_tensorboard`` is on.
- ``parse_recipe_arguments``: SpeechBrain's command line with numbers read as
  numbers (``--lr_adam=1e-3``).
- ``prepare_data`` / ``build_tokenizer``: the recipe's first two stages, also
  run by the SageMaker entry point on every instance.
- ``copy_tokenizer``: a trained model's tokenizer, for fine-tuning.
"""

from __future__ import annotations

import csv
import logging
import math
import re
import shutil
import time
from pathlib import Path

import speechbrain as sb
import torch
import yaml
from speechbrain.utils.distributed import if_main_process

from stop_slu.checkpoints import state_digest
from stop_slu.data_prep.prepare import prepare, summary_line
from stop_slu.inference import MODEL_TOKENIZER
from stop_slu.tokenizer.parse_tokenizer import train_tokenizer

logger = logging.getLogger(__name__)


class NonFiniteLossError(ValueError):
    """Training stopped: the loss stayed NaN/inf for too many steps in a row."""


def distributed() -> bool:
    """True inside an initialised torch.distributed process group (DDP)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class RobustBrain(sb.core.Brain):
    """A ``Brain`` for days-long runs: non-finite steps, a time limit, DDP checks.

    Reads from ``hparams``: ``max_train_minutes`` (0 = no limit),
    ``use_tensorboard`` and
    ``tensorboard_logs`` (optional), ``train_logger``, ``model``,
    ``output_folder``. Subclasses call ``log_stats`` instead of
    ``train_logger.log_stats`` and put their learning-rate schedule in
    ``on_optimizer_step``, which runs only after a step that really updated
    the weights. ``nonfinite_patience`` is SpeechBrain's run option (default 3).

    Raises ``NonFiniteLossError`` after more than ``nonfinite_patience``
    skipped steps in a row, and ``RuntimeError`` when DDP ranks' weights differ.
    """

    def on_optimizer_step(self):
        """Called after each optimiser step that updated the weights."""

    def on_fit_start(self):
        super().on_fit_start()
        self._train_started = time.time()
        self._time_is_up = False
        self._nonfinite_loss = False  # in the batches of the current optimiser step
        self.nonfinite_in_a_row = 0
        self.skipped_steps = 0

    def check_loss_isfinite(self, loss):
        """Brain calls this before backward(). A non-finite loss on any rank
        marks the optimiser step to be skipped (all ranks agree, so DDP stays in step)."""
        finite = torch.isfinite(loss.detach()).float()
        if distributed():
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        if not bool(finite):
            self._nonfinite_loss = True

    def optimizers_step(self):
        if self._nonfinite_loss:  # NaN/inf gradients: drop them, leave the weights as they are
            self.zero_grad(set_to_none=True)
            return
        super().optimizers_step()

    def _count_nonfinite_step(self, batch, loss):
        """Count a skipped step; stop the run after ``nonfinite_patience`` in a row."""
        self._nonfinite_loss = False
        self.skipped_steps += 1
        self.nonfinite_in_a_row += 1
        loss = float(loss.detach())
        where = ", ".join(batch.id) if not math.isfinite(loss) else "another process's batch"
        logger.warning(
            "Non-finite loss (%s) on %s: optimiser step skipped (%d in a row, nonfinite_patience=%d)",
            loss,
            where,
            self.nonfinite_in_a_row,
            self.nonfinite_patience,
        )
        if self.nonfinite_in_a_row > self.nonfinite_patience:
            raise NonFiniteLossError(
                f"{self.hparams.output_folder}: training stopped: the loss was not finite for "
                f"{self.nonfinite_in_a_row} optimiser steps in a row (utterances in log.txt); "
                "lower lr_adam, check those files, or raise --nonfinite_patience"
            )

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        if should_step and self._nonfinite_loss:
            self._count_nonfinite_step(batch, loss)
        elif should_step:
            self.nonfinite_in_a_row = 0
            self.on_optimizer_step()
        limit = float(getattr(self.hparams, "max_train_minutes", 0) or 0)
        if limit > 0 and not self._time_is_up:
            up = [(time.time() - self._train_started) / 60.0 >= limit]
            if distributed():
                torch.distributed.broadcast_object_list(up, src=0)  # ranks stop together
            if up[0]:
                logger.info("max_train_minutes=%s reached: stopping training", limit)
            self._time_is_up = up[0]

    @property
    def time_is_up(self) -> bool:
        """``max_train_minutes`` has passed (training ends after this step)."""
        return getattr(self, "_time_is_up", False)

    @property
    def train_minutes(self) -> float:
        """Minutes since training started (this process)."""
        return round((time.time() - self._train_started) / 60.0, 2)

    @property
    def _optimizer_step_limit_exceeded(self):
        # Brain checks this before each batch and after each epoch.
        return super()._optimizer_step_limit_exceeded or self.time_is_up

    def on_stage_start(self, stage, epoch):
        if stage == sb.Stage.TRAIN:
            self.skipped_steps = 0

    def on_stage_end(self, stage, stage_loss, epoch):
        if stage == sb.Stage.TRAIN and distributed():
            self.check_ranks_in_sync(epoch)

    def log_stats(self, **stats):
        """To train_log.txt, and to TensorBoard when ``use_tensorboard`` is on."""
        self.hparams.train_logger.log_stats(**stats)
        if getattr(self.hparams, "use_tensorboard", False) and if_main_process():
            if not hasattr(self, "_tensorboard"):
                from speechbrain.utils.train_logger import TensorboardLogger  # needs `tensorboard`

                self._tensorboard = TensorboardLogger(self.hparams.tensorboard_logs)
            stats["stats_meta"] = {k: v for k, v in stats["stats_meta"].items() if k != "Epoch loaded"}
            self._tensorboard.log_stats(**stats)

    def check_ranks_in_sync(self, epoch):
        """DDP: every process must hold the same weights; log their digests, stop if not."""
        digests = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(digests, state_digest(self.hparams.model.state_dict()))
        logger.info("epoch %s: model sha256 by rank: %s", epoch, " ".join(digests))
        if len(set(digests)) > 1:
            raise RuntimeError(f"epoch {epoch}: the processes' weights differ (sha256 by rank: {digests})")


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _numbers(value):
    """``--lr_adam=1e-3`` as a number: YAML 1.1 (PyYAML) reads exponents without
    a dot as strings, YAML 1.2 and users read them as floats."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return float(value) if isinstance(value, str) and _FLOAT.fullmatch(value) else value


def parse_recipe_arguments(argv) -> tuple[str, dict, dict]:
    """SpeechBrain's command line (``HPARAMS --key=value ...``) as
    ``(hparams file, run options, YAML overrides as a dict)``."""
    hparams_file, run_opts, overrides_text = sb.parse_arguments(argv)
    return hparams_file, run_opts, _numbers((yaml.safe_load(overrides_text) if overrides_text else None) or {})


def prepare_data(hparams: dict):
    """CSVs for the configured splits (reused when inputs are unchanged);
    nothing when ``skip_prep``. Raises PrepareError for unusable input."""
    if hparams["skip_prep"]:
        return
    report = prepare(
        hparams["data_folder"],
        hparams["prepare_folder"],
        splits=sorted({hparams["train_split"], hparams["valid_split"], hparams["test_split"]}),
        domains=hparams["domains"],
        target=hparams["target_column"],
    )
    logger.info(summary_line(report))


def build_tokenizer(hparams: dict):
    """Train (or reuse) the tokenizer on the training CSV's targets: the
    config's ``tokenizer_builder`` when it names one (the Whisper config: its
    own tokenizer plus the labels), else SentencePiece."""
    if hparams.get("tokenizer_builder") is not None:
        return hparams["tokenizer_builder"](hparams=hparams)
    with open(Path(hparams["prepare_folder"]) / f"{hparams['train_split']}.csv", encoding="utf-8") as f:
        targets = [row["semantics"] for row in csv.DictReader(f)]
    return train_tokenizer(targets, hparams["tokenizer_folder"], hparams["vocab_size"], hparams["tokenizer_type"])


def copy_tokenizer(model_dir, folder):
    """The tokenizer of the model folder ``model_dir``, byte for byte, into
    ``folder``: its ids are the output layer's (fine-tuning keeps them)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for path in (Path(model_dir) / MODEL_TOKENIZER).iterdir():
        if path.is_file():
            shutil.copyfile(path, folder / path.name)
