"""The recipe's training extras, around SpeechBrain's ``Brain``.

- ``RobustBrain``: a ``Brain`` that skips optimiser steps whose loss is not
  finite (agreed across DDP ranks) and stops after ``nonfinite_patience`` in a
  row, ends training at ``max_train_minutes``, checks after every epoch that
  the DDP ranks hold identical weights and feature statistics, and logs to TensorBoard as well as to
  ``train_log.txt`` when ``use_tensorboard`` is on.
- ``parse_recipe_arguments``: SpeechBrain's command line with numbers read as
  numbers (``--lr_adam=1e-3``) and every override, nested or not, checked
  against the config before any work (``check_overrides``).
- ``prepare_data`` / ``build_tokenizer``: the recipe's first two stages, also
  run by the SageMaker entry point on every instance; ``build_tokenizer``
  trains the tokenizer or reuses a ``stop-slu tokenizer`` folder
  (``tokenizer_from``).
- ``copy_tokenizer``: a trained model's tokenizer, for fine-tuning.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import logging
import math
import os
import pydoc
import re
import shutil
import time
import typing
from pathlib import Path

import speechbrain as sb
import torch
import yaml
from speechbrain.utils.distributed import if_main_process

from stop_slu.checkpoints import state_digest, statistics_digest
from stop_slu.data_prep.download import STOP_URL, ensure_release
from stop_slu.data_prep.prepare import REPORT_NAME, prepare, summary_line
from stop_slu.data_prep.rows import PrepareError, read_csv
from stop_slu.frontend import compute_features_of
from stop_slu.inference import MODEL_TOKENIZER
from stop_slu.tokenizer.parse_tokenizer import MODEL_NAME, ParseTokenizer, train_tokenizer
from stop_slu.tokenizer.stage import is_tokenizer_folder, reuse_problems

logger = logging.getLogger(__name__)


class NonFiniteLossError(ValueError):
    """Training stopped: the loss stayed NaN/inf for too many steps in a row."""


def distributed() -> bool:
    """True inside an initialised torch.distributed process group (DDP)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


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
            logger.info("epoch %s: %s sha256 by rank: %s", epoch, name, " ".join(digests))
            if len(set(digests)) > 1:
                raise RuntimeError(f"epoch {epoch}: the processes' {what} differ (sha256 by rank: {digests})")


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _numbers(value):
    """``--lr_adam=1e-3`` as a number: YAML 1.1 (PyYAML) reads exponents without
    a dot as strings, YAML 1.2 and users read them as floats."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return float(value) if isinstance(value, str) and _FLOAT.fullmatch(value) else value


class OverrideError(ValueError):
    """A command-line override the config cannot take; one line naming the key."""


def _arguments_of(tag) -> set[str]:
    """Keyword arguments of the class or function a ``!new:`` / ``!name:`` /
    ``!apply:`` tag names (empty when it cannot be found)."""
    target = str(tag or "").split(":", 1)[-1] if str(tag or "").startswith(("!new:", "!name:", "!apply:")) else ""
    found = pydoc.locate(target) if target else None
    try:
        return set(inspect.signature(found).parameters) - {"self", "args", "kwargs"} if found else set()
    except (TypeError, ValueError):
        return set()


def _accepted_keys(key: str, node) -> set[str]:
    """What a mapping override of the config's ``key`` may name: the keys the
    config gives it, and the arguments of what consumes it (a ``!new:`` class;
    torch's DataLoader for ``*_dataloader_opts``; SpeechBrain's
    DynamicBatchSampler for ``dynamic_batch_sampler_*``)."""
    keys = {str(k) for k in node}
    keys |= _arguments_of(getattr(getattr(node, "tag", None), "value", None))
    if key.endswith("_dataloader_opts"):
        from torch.utils.data import DataLoader

        keys |= set(inspect.signature(DataLoader).parameters) | {"ckpt_prefix", "looped_nominal_epoch"}
    if key.startswith("dynamic_batch_sampler"):
        from speechbrain.dataio.sampler import DynamicBatchSampler

        keys |= set(inspect.signature(DynamicBatchSampler).parameters) - {"self", "dataset"}
    return keys


def _check_keys(hparams_file, config, overrides: dict, where: list[str]):
    for key, value in overrides.items():
        path = ".".join([*where, str(key)])
        accepted = _accepted_keys(where[-1], config) if where else {str(k) for k in config}
        if str(key) not in accepted:
            nearest = difflib.get_close_matches(str(key), sorted(accepted), n=1, cutoff=0.6)
            hint = f"did you mean {nearest[0]}?" if nearest else f"see the keys of {hparams_file}"
            inside = f"has no key {key} under {'.'.join(where)}" if where else f"has no key {key}"
            raise OverrideError(f"--{path}: {hparams_file} {inside}; {hint}")
        child = config.get(key) if hasattr(config, "get") else None
        if isinstance(value, dict) and isinstance(child, dict):
            _check_keys(hparams_file, child, value, [*where, str(key)])


def check_overrides(hparams_file, overrides: dict):
    """Every key of ``overrides``, nested mappings included, must be a key of
    the config ``hparams_file`` (or, inside a mapping, an argument of what
    consumes it); else OverrideError naming the key and the nearest valid one.
    Reads the YAML's structure only: nothing is built or run."""
    import ruamel.yaml

    config = ruamel.yaml.YAML().load(Path(hparams_file).read_text(encoding="utf-8"))
    _check_keys(hparams_file, config or {}, overrides, [])


def parse_recipe_arguments(argv) -> tuple[str, dict, dict]:
    """SpeechBrain's command line (``HPARAMS --key=value ...``) as
    ``(hparams file, run options, YAML overrides as a dict)``, numbers read as
    numbers. Every override is checked against the config first
    (``check_overrides``); raises OverrideError, one line, for a key the config
    does not have or a value that is not YAML."""
    hparams_file, run_opts, overrides_text = sb.parse_arguments(argv)
    try:
        overrides = _numbers((yaml.safe_load(overrides_text) if overrides_text else None) or {})
    except yaml.YAMLError as error:
        line = overrides_text.splitlines()[error.problem_mark.line] if getattr(error, "problem_mark", None) else ""
        raise OverrideError(
            f"--{line.split(':', 1)[0] or 'override'}: not a readable YAML value ({getattr(error, 'problem', error)}); "
            'quote it and close every bracket, e.g. "--key={a: 1, b: 2}"'
        ) from None
    check_overrides(hparams_file, overrides)
    return hparams_file, _typed_run_options(run_opts), overrides


def _typed_run_options(run_opts):
    """SpeechBrain's parser gives a run option whose default is None (e.g.
    ``--optimizer_step_limit``) as text, whatever its declared type, and the
    Brain then fails mid-run comparing it with a number: read each such option
    as its declared type here, or raise OverrideError naming it."""
    changes = {}
    declared = typing.get_type_hints(type(run_opts))
    for spec in dataclasses.fields(run_opts):
        value = getattr(run_opts, spec.name)
        if spec.name not in run_opts.overridden_args or not isinstance(value, str):
            continue
        hint = declared[spec.name]
        kind = next((kind for kind in typing.get_args(hint) or (hint,) if kind in (int, float)), None)
        if kind is None:
            continue
        try:
            changes[spec.name] = kind(value)
        except ValueError:
            raise OverrideError(f"--{spec.name}={value}: not {'an integer' if kind is int else 'a number'}") from None
    return dataclasses.replace(run_opts, **changes) if changes else run_opts


class RunOptionError(ValueError):
    """A run option this machine cannot run; one line naming the options to pass."""


def _config_value(hparams_file, key):
    import ruamel.yaml

    config = ruamel.yaml.YAML().load(Path(hparams_file).read_text(encoding="utf-8")) or {}
    return config.get(key)


def fit_run_options(run_opts, hparams_file, overrides: dict):
    """SpeechBrain's run options (``run_opts``, from ``parse_recipe_arguments``)
    made to work on this machine, or refused before any work:

    - under torchrun without a GPU, the processes train on the CPU with the
      gloo backend (said in the log); with fewer GPUs than processes, refused;
    - ``--device=cuda[:N]`` where that GPU does not exist: refused;
    - fp16 (``--precision``/``--eval_precision``, or the config's
      ``precision``) on the CPU: refused (bf16 or fp32 run there).

    Returns ``(run_opts, notes)``: notes are the changes made, for the run's
    log; raises RunOptionError, one line naming the options to pass."""
    notes = []
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    given = run_opts.overridden_args
    device = str(run_opts["device"]) if "device" in given and run_opts["device"] else None
    if device and device.startswith("cuda"):
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if not gpus:
            raise RunOptionError(
                f"--device={device}: no GPU is visible here (torch.cuda.is_available() is False); "
                "pass --device=cpu, or run on a machine with a GPU"
            )
        if index >= gpus:
            raise RunOptionError(f"--device={device}: this machine has {gpus} GPU(s), cuda:0 to cuda:{gpus - 1}")
    local_rank = os.environ.get("LOCAL_RANK")
    if os.environ.get("RANK") is not None and local_rank is not None and run_opts["distributed_backend"] != "gloo":
        processes = int(os.environ.get("LOCAL_WORLD_SIZE", int(local_rank) + 1))
        if not gpus:
            run_opts = dataclasses.replace(
                run_opts,
                distributed_backend="gloo",
                device=device or "cpu",
                overridden_args=run_opts.overridden_args | {"distributed_backend", "device"},
            )
            notes.append(
                f"torchrun without a GPU: the {processes} process{'es' if processes != 1 else ''} train"
                f"{'' if processes != 1 else 's'} on the CPU with the gloo backend "
                "(as with --distributed_backend=gloo --device=cpu)"
            )
        elif gpus < processes:
            raise RunOptionError(
                f"torchrun --nproc_per_node={processes}: this machine has {gpus} GPU(s); "
                f"pass --nproc_per_node={gpus}, or --distributed_backend=gloo --device=cpu to train on the CPU"
            )
    on_cpu = str(run_opts["device"] or ("cuda" if gpus else "cpu")).startswith("cpu")
    for option in ("precision", "eval_precision"):
        if option in given:
            value = run_opts[option]
        else:
            value = overrides.get(option, _config_value(hparams_file, option))
        if on_cpu and value == "fp16":
            raise RunOptionError(
                f"--{option}=fp16: half precision needs a GPU and this run is on the CPU; "
                f"pass --{option}=bf16 (mixed precision on the CPU) or --{option}=fp32"
            )
    return run_opts, notes


_SPLIT_KEYS = ("train_split", "valid_split", "test_split")


def prepare_data(hparams: dict):
    """The recipe's first stage: CSVs for the configured splits, then a check
    that none of them is empty.

    Unless ``skip_prep``: when ``data_folder`` holds neither the release nor
    ``stop.tar.gz``, the release is downloaded from ``data_url`` and extracted
    (``data_prep/download.py``); then it is prepared, an earlier preparation
    being reused when manifests, options and audio are unchanged (``force_prep:
    True`` redoes it). Run it on the main process only. Raises PrepareError
    (``DownloadError`` is one) for unusable input or an empty split.
    """
    folder = Path(hparams["prepare_folder"])
    report = None
    if not hparams["skip_prep"]:
        root = ensure_release(hparams["data_folder"], hparams.get("data_url") or STOP_URL)
        report = prepare(
            root,
            folder,
            splits=sorted({hparams[key] for key in _SPLIT_KEYS}),
            domains=hparams["domains"],
            target=hparams["target_column"],
            skip_if_done=not hparams.get("force_prep", False),
            flat_only=hparams.get("flat_only", False),
        )
        logger.info(summary_line(report))
    for key in _SPLIT_KEYS:
        split = hparams[key]
        path = folder / f"{split}.csv"
        if read_csv(path):
            continue
        why = "; the recipe needs rows in its train, valid and test CSVs"
        if report is not None:
            entry = report["splits"][split]
            reasons: dict[str, int] = {}
            for skipped in report["skipped"]:
                if skipped["split"] == split:
                    reason = skipped["reason"].split(" (")[0].split(":")[0]
                    reasons[reason] = reasons.get(reason, 0) + 1
            listed = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items())) or "none skipped"
            why = (
                f": all {entry['manifest_rows']} manifest row(s) skipped or filtered out "
                f"({listed}; by domain {entry['filtered_out_by_domain']}, "
                f"not flat {entry.get('filtered_out_not_flat', 0)}); see {folder / REPORT_NAME}"
            )
        raise PrepareError(f"{path}: the {key.split('_')[0]} split ({key}: {split}) has no rows{why}")


def build_tokenizer(hparams: dict) -> ParseTokenizer:
    """The run's tokenizer in ``tokenizer_folder``: trained on the training
    CSV's targets (reused when they and the options are unchanged); built by
    the config's ``tokenizer_builder`` when it names one (the Whisper config:
    Whisper's tokenizer plus the labels); or, with
    ``tokenizer_from`` (a folder from ``stop-slu tokenizer``), that folder's
    files copied byte for byte, the output layer then taking its size. Logs
    which and why.

    Raises ``PrepareError`` (one line) when ``tokenizer_from`` is no tokenizer
    folder, or lacks labels or characters of the train split (a model with it
    could never output them) unless ``tokenizer_mismatch_ok`` is set.
    """
    train_csv = Path(hparams["prepare_folder"]) / f"{hparams['train_split']}.csv"
    targets = [row["semantics"] for row in read_csv(train_csv).values()]  # canonical, as the data pipeline reads them
    if hparams.get("tokenizer_builder") is not None:
        logger.info("Tokenizer: built by the config's tokenizer_builder on %s", train_csv)
        return hparams["tokenizer_builder"](targets=targets, hparams=hparams)
    source = hparams.get("tokenizer_from")
    if not source:
        logger.info("Tokenizer: trained on %s (tokenizer_from is not set)", train_csv)
        return train_tokenizer(
            targets,
            hparams["tokenizer_folder"],
            hparams["vocab_size"],
            hparams["tokenizer_type"],
            target_column=hparams.get("target_column"),
        )
    source = Path(source)
    if not is_tokenizer_folder(source):
        raise PrepareError(
            f"{source}: tokenizer_from is not a tokenizer folder (no {MODEL_NAME}); "
            "make one with `stop-slu tokenizer PREPARED_DIR OUT`"
        )
    given = ParseTokenizer(source)
    problems = reuse_problems(given, targets)
    if problems and not hparams.get("tokenizer_mismatch_ok"):
        raise PrepareError(
            f"{source}: not trained on this run's train split ({train_csv}): {'; '.join(problems)}, "
            "so the model could never output them; train it on this split (`stop-slu tokenizer`) "
            "or pass --tokenizer_mismatch_ok=True to use it anyway"
        )
    folder = Path(hparams["tokenizer_folder"])
    folder.mkdir(parents=True, exist_ok=True)
    if folder.resolve() != source.resolve():
        for path in sorted(source.iterdir()):
            if path.is_file():
                shutil.copyfile(path, folder / path.name)
    why = "it covers every label and character of the train split"
    if problems:
        why = f"tokenizer_mismatch_ok is set although {'; '.join(problems)}"
    logger.info(
        "Tokenizer: reused from %s (tokenizer_from), %d pieces (vocab_size=%s and tokenizer_type do not apply); %s",
        source,
        given.vocab_size,
        hparams["vocab_size"],
        why,
    )
    trained_on = given.meta.get("target_column")
    if trained_on and hparams.get("target_column") and trained_on != hparams["target_column"]:
        logger.warning(
            "Tokenizer from %s was trained on %s targets, this run trains on %s: its pieces fit the other column",
            source,
            trained_on,
            hparams["target_column"],
        )
    return ParseTokenizer(folder)


TARGET_LENGTHS = "target_lengths.json"  # in the output folder


def encoder_frames_per_second(hparams: dict, seconds: float = 20.0) -> float:
    """Encoder frames per second of audio for this config, measured by running
    its front-end (features and the convolutional front-end, in eval mode,
    without gradients) on ``seconds`` of silence."""
    modules = hparams["modules"]
    was_training = {name: module.training for name, module in modules.items()}
    wavs = torch.zeros(1, int(seconds * hparams["sample_rate"]))
    try:
        for module in modules.values():
            module.eval()
        with torch.no_grad():
            feats = compute_features_of(modules, hparams["compute_features"], wavs, torch.ones(1))
            frames = modules["CNN"](feats).shape[1]
    finally:
        for name, module in modules.items():
            module.train(was_training[name])
    return frames / seconds


def report_target_lengths(hparams: dict, tokenizer: ParseTokenizer) -> dict | None:
    """Count, per split, the utterances whose target has more tokens than the
    encoder has frames: CTC cannot align them (its loss is zeroed). Logged as a
    warning when any, and written to ``OUTPUT/target_lengths.json``; returns
    that report (None for a config without CTC or without a ``CNN`` front-end,
    such as Whisper). Run on the main process."""
    if not hparams.get("ctc_weight") or "CNN" not in hparams["modules"]:
        return None
    rate = encoder_frames_per_second(hparams)
    report = {"encoder_frames_per_second": round(rate, 3), "splits": {}}
    for key in _SPLIT_KEYS:
        split = hparams[key]
        rows = read_csv(Path(hparams["prepare_folder"]) / f"{split}.csv").values()
        too_long = sum(len(tokenizer.encode(row["semantics"])) > int(row["duration"] * rate) for row in rows)
        report["splits"][split] = {
            "rows": len(rows),
            "targets_longer_than_encoder_frames": too_long,
            "percent": round(100 * too_long / max(1, len(rows)), 2),
        }
    report["what_to_do"] = (
        "CTC cannot align a target with more tokens than encoder frames and trains nothing on it "
        "(speed perturbation at 1.1 shortens the audio further). Use an encoder with more frames per second "
        "(smaller CNN strides), a target with fewer tokens (target_column: decoupled_normalized_seqlogical) "
        "or a larger vocab_size (fewer pieces per target)"
    )
    Path(hparams["output_folder"]).mkdir(parents=True, exist_ok=True)
    (Path(hparams["output_folder"]) / TARGET_LENGTHS).write_text(json.dumps(report, indent=2) + "\n")
    counts = ", ".join(
        f"{split} {v['targets_longer_than_encoder_frames']} ({v['percent']} %)" for split, v in report["splits"].items()
    )
    if any(v["targets_longer_than_encoder_frames"] for v in report["splits"].values()):
        logger.warning(
            "Targets with more tokens than encoder frames (%.1f frames/s): %s. %s (see %s)",
            rate,
            counts,
            report["what_to_do"],
            TARGET_LENGTHS,
        )
    else:
        logger.info("Every target fits the encoder frames (%.1f frames/s): %s", rate, counts)
    return report


def copy_tokenizer(model_dir, folder):
    """The tokenizer of the model folder ``model_dir``, byte for byte, into
    ``folder``: its ids are the output layer's (fine-tuning keeps them)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for path in (Path(model_dir) / MODEL_TOKENIZER).iterdir():
        if path.is_file():
            shutil.copyfile(path, folder / path.name)
