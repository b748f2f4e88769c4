"""The recipe's ``Brain``, around SpeechBrain's: ``RobustBrain``.

It skips optimiser steps whose loss or gradients are not finite (agreed across
DDP ranks) and stops after ``nonfinite_patience`` in a row, ends training at
``max_train_minutes``, checks after every epoch that the DDP ranks hold
identical weights and feature statistics, and logs to TensorBoard as well as
to ``train_log.txt`` when ``use_tensorboard`` is on.
"""

from __future__ import annotations

import logging
import math
import time

import speechbrain as sb
import torch
from speechbrain.utils.distributed import if_main_process

from stop_slu.checkpoints import state_digest, statistics_digest

logger = logging.getLogger(__name__)


class NonFiniteLossError(ValueError):
    """Training stopped: the loss stayed NaN/inf for too many steps in a row."""


def distributed() -> bool:
    """True inside an initialised torch.distributed process group (DDP)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def leave_process_group():
    """At the end of a DDP run: wait for every rank, then destroy the process
    group, as PyTorch asks before a process exits. A process that exits with
    its gloo group alive can abort in teardown (SIGABRT, "terminate called
    without an active exception") when its peer has already gone, failing a
    run whose work was done. Nothing outside DDP."""
    if distributed():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def all_ranks_agree(flag: bool, device="cpu") -> bool:
    """True when ``flag`` is true on every DDP rank (``flag`` itself in one
    process). ``device``: where the backend reduces (CUDA for NCCL)."""
    if not distributed():
        return flag
    value = torch.tensor(float(flag), device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MIN)
    return bool(value)


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

    def _train_loader_specifics(self, dataset, loader_kwargs):
        # Brain tells the sampler the epoch (its own order each epoch, the same
        # order again when a run resumes mid-epoch) only when it made the sampler
        # itself (DDP's wrapper, a shuffling sampler). A batch sampler given by the
        # recipe (the DynamicBatchSampler) in one process needs the same call, or
        # every epoch trains the first epoch's batches in the first epoch's order.
        loader_kwargs = super()._train_loader_specifics(dataset, loader_kwargs)
        if self.train_sampler is None:
            sampler = loader_kwargs.get("batch_sampler") or loader_kwargs.get("sampler")
            if hasattr(sampler, "set_epoch"):
                self.train_sampler = sampler
        return loader_kwargs

    def on_fit_batch_start(self, batch, should_step):
        if getattr(self.hparams, "log_batch_ids", False):
            lr = self.optimizer.param_groups[0]["lr"] if self.optimizer is not None else None
            logger.info("train batch: epoch %s step %d lr %r ids %s", self._epoch, self.step, lr, ",".join(batch.id))

    def on_fit_start(self):
        super().on_fit_start()
        self._train_started = time.time()
        self._time_is_up = False
        self._skip_reason = None  # "loss" or "gradients": the current optimiser step is skipped
        self._scaler_skipped = False  # the gradient scaler (fp16) skipped the last step
        self.nonfinite_in_a_row = 0
        self.skipped_steps = 0
        self.scaler_skipped_steps = 0

    def check_loss_isfinite(self, loss):
        """Brain calls this before backward(). A non-finite loss on any rank
        marks the optimiser step to be skipped (all ranks agree, so DDP stays in step)."""
        if not all_ranks_agree(bool(torch.isfinite(loss.detach())), loss.device):
            self._skip_reason = self._skip_reason or "loss"

    def _gradients_are_finite(self) -> bool:
        """Every gradient finite, on every rank."""
        grads = [p.grad for p in self.modules.parameters() if p.grad is not None]
        finite = bool(torch.stack([g.isfinite().all() for g in grads]).all()) if grads else True
        return all_ranks_agree(finite, self.device)

    def optimizers_step(self):
        # Without a gradient scaler (fp32, bf16) nothing else stops a finite loss
        # with NaN/inf gradients from reaching the weights; with one (fp16), the
        # scaler skips such a step itself and lowers its scale.
        if self._skip_reason is None and not self.scaler.is_enabled() and not self._gradients_are_finite():
            self._skip_reason = "gradients"
        if self._skip_reason is not None:  # drop the gradients, leave the weights as they are
            self.zero_grad(set_to_none=True)
            return
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else None
        super().optimizers_step()
        # GradScaler.update() lowers the scale exactly when it skipped the step.
        self._scaler_skipped = scale is not None and self.scaler.get_scale() < scale

    def _count_nonfinite_step(self, batch, loss):
        """Count a skipped step; stop the run after ``nonfinite_patience`` in a row."""
        reason, self._skip_reason = self._skip_reason, None
        self.skipped_steps += 1
        self.nonfinite_in_a_row += 1
        loss = float(loss.detach())
        if reason == "gradients":
            what, where = f"Non-finite gradients (loss {loss})", ", ".join(batch.id)
        else:
            what = f"Non-finite loss ({loss})"
            where = ", ".join(batch.id) if not math.isfinite(loss) else "another process's batch"
        logger.warning(
            "%s on %s: optimiser step skipped (%d in a row, nonfinite_patience=%d)",
            what,
            where,
            self.nonfinite_in_a_row,
            self.nonfinite_patience,
        )
        if self.nonfinite_in_a_row > self.nonfinite_patience:
            raise NonFiniteLossError(
                f"{self.hparams.output_folder}: training stopped: the loss or its gradients were not finite for "
                f"{self.nonfinite_in_a_row} optimiser steps in a row (utterances in log.txt); "
                "lower lr_adam, check those files, or raise --nonfinite_patience"
            )

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        if should_step and self._skip_reason is not None:
            self._count_nonfinite_step(batch, loss)
        elif should_step and self._scaler_skipped:
            # fp16: the scaler found inf/NaN gradients and skipped the step (it does
            # so while it calibrates its scale): no update, so no schedule step and
            # no reset of the non-finite count.
            self._scaler_skipped = False
            self.scaler_skipped_steps += 1
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
            self._epoch = epoch
            self.skipped_steps = 0
            self.scaler_skipped_steps = 0
            # A skip marked by the last batches of the previous epoch, which never
            # reached an optimiser step (gradient accumulation), ended with it.
            self._skip_reason = None

    def on_stage_end(self, stage, stage_loss, epoch):
        if stage == sb.Stage.TRAIN and distributed():
            self.check_ranks_in_sync(f"epoch {epoch}")

    def log_stats(self, **stats):
        """To train_log.txt, and to TensorBoard when ``use_tensorboard`` is on."""
        self.hparams.train_logger.log_stats(**stats)
        if getattr(self.hparams, "use_tensorboard", False) and if_main_process():
            if not hasattr(self, "_tensorboard"):
                from speechbrain.utils.train_logger import TensorboardLogger  # needs `tensorboard`

                self._tensorboard = TensorboardLogger(self.hparams.tensorboard_logs)
            stats["stats_meta"] = {k: v for k, v in stats["stats_meta"].items() if k != "Epoch loaded"}
            self._tensorboard.log_stats(**stats)

    def check_ranks_in_sync(self, when: str):
        """DDP: every process must hold the same weights and the same feature
        normalisation statistics (SpeechBrain's ``InputNormalization`` all-reduces
        each batch's statistics); log their digests, stop if they differ."""
        checks = [("model", "weights", state_digest(self.hparams.model.state_dict()))]
        normalizer = getattr(self.modules, "normalize", None)
        normalizer = getattr(normalizer, "module", normalizer)  # unwrap DDP, should it wrap
        if getattr(normalizer, "norm_type", None) == "global" and normalizer.count:
            checks.append(("normaliser", "feature statistics", statistics_digest(normalizer)))
        for name, what, digest in checks:
            digests = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(digests, digest)
            logger.info("%s: %s sha256 by rank: %s", when, name, " ".join(digests))
            if len(set(digests)) > 1:
                raise RuntimeError(f"{when}: the processes' {what} differ (sha256 by rank: {digests})")
