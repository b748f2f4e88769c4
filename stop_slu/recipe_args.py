"""The recipe's command line, checked before any work.

- ``parse_recipe_arguments``: SpeechBrain's command line with numbers read as
  numbers (``--lr_adam=1e-3``), run options read as their declared type, and
  every override, nested or not, checked against the config
  (``check_overrides``).
- ``fit_run_options``: the run options made to work on this machine (torchrun
  without a GPU, a missing GPU, fp16 on the CPU), or refused in one line.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import os
import pydoc
import re
import typing
from pathlib import Path

import speechbrain as sb
import torch
import yaml

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
