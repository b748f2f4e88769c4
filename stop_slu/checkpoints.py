"""Checkpoints: saved so that a run killed at any moment resumes from a
complete one, loaded without running pickled code, and averaged for testing.

- ``SafeCheckpointer``: SpeechBrain's Checkpointer, but a checkpoint folder
  counts only once all its files are there whole (``MANIFEST.json``, written
  last, lists every file with its size and SHA-256; a copy made file by file
  in any order counts only once every file arrived), and
  every load uses ``torch.load(weights_only=True)``; ``save_and_keep_best``
  keeps only what averaging needs and the latest checkpoint.
- ``load_averaged_model``: for testing and inference, the best checkpoint's
  state (normaliser statistics included), then the model weights averaged over
  the ``avg_checkpoints`` best checkpoints by validation token accuracy.
- ``load_source_weights``: a trained model folder's averaged weights, as the
  starting point of fine-tuning.
- ``state_digest`` / ``statistics_digest``: fingerprints of a model's weights and
  of its feature normaliser's statistics (DDP ranks compare them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch
import yaml
from speechbrain.utils.checkpoints import METAFNAME, Checkpointer, average_checkpoints
from speechbrain.utils.distributed import ddp_barrier, if_main_process, run_on_main

logger = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"  # written last into each checkpoint folder: every other file's size and sha256
LEGACY_FILES_KEY = "files"  # checkpoints of 0.2: CKPT.yaml lists {file name: size in bytes}


class CheckpointError(ValueError):
    """A checkpoint that must not be loaded; the message names the folder."""


@contextmanager
def weights_only_loading(where):
    """Every ``torch.load`` inside reads tensors and plain containers only
    (``weights_only=True``), whatever its caller passes or the environment
    (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``) says; a file holding other pickled
    objects raises CheckpointError naming ``where``."""
    names = ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    saved = {name: os.environ.pop(name, None) for name in names}
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{where}: refused to load: it holds pickled Python objects, not just weights "
            "(checkpoints are read with torch.load(weights_only=True)); use checkpoints this recipe wrote"
        ) from None
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


def _fsync(path: Path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def seal_checkpoint(folder) -> Path:
    """Write ``folder/MANIFEST.json``: the size and SHA-256 of every other file in
    the checkpoint folder, written in place (no rename: a copy that only sees
    files written in place still gets it) after those files are flushed to disk.
    Returns the manifest's path."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST)
    for path in files:
        _fsync(path)
    listed = {p.name: {"bytes": p.stat().st_size, "sha256": _file_sha256(p)} for p in files}
    manifest = folder / MANIFEST
    with open(manifest, "w", encoding="utf-8") as f:
        json.dump({"files": listed}, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    _fsync(folder)
    return manifest


_VERIFIED: dict = {}  # {(folder, stats of its files): verdict}: a folder's files never change once sealed


def checkpoint_is_complete(folder) -> bool:
    """True when ``folder`` holds every file its ``MANIFEST.json`` lists, each with
    the listed size and SHA-256; so a folder cut short by a kill, half deleted, or
    copied file by file in any order and at any moment (a spot instance's restored
    checkpoints) counts only once all its files arrived whole. Checkpoints of 0.2
    (no manifest; CKPT.yaml lists file sizes) are checked by size."""
    folder = Path(folder)
    try:
        stats = tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()))
    except FileNotFoundError:
        return False
    key = (str(folder.resolve()), stats)
    if key not in _VERIFIED:
        if len(_VERIFIED) > 1000:
            _VERIFIED.clear()
        _VERIFIED[key] = _verify(folder)
    return _VERIFIED[key]


def _verify(folder: Path) -> bool:
    try:
        if (folder / MANIFEST).is_file():
            with open(folder / MANIFEST, encoding="utf-8") as f:
                listed = json.load(f)["files"]
            return METAFNAME in listed and all(
                (folder / name).is_file()
                and (folder / name).stat().st_size == entry["bytes"]
                and _file_sha256(folder / name) == entry["sha256"]
                for name, entry in listed.items()
            )
        with open(folder / METAFNAME, encoding="utf-8") as f:
            sizes = (yaml.safe_load(f) or {}).get(LEGACY_FILES_KEY)
        return isinstance(sizes, dict) and all(
            (folder / name).is_file() and (folder / name).stat().st_size == size for name, size in sizes.items()
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        return False  # missing, cut short or garbled: not complete


class SafeCheckpointer(Checkpointer):
    """A Checkpointer whose checkpoints are complete or invisible.

    SpeechBrain writes a checkpoint folder's files (``CKPT.yaml``, the parameter
    files) in an order of its choosing; here, once they are all written and
    flushed, ``MANIFEST.json`` is added, listing each with its size and SHA-256
    (``seal_checkpoint``). A folder counts as a checkpoint only when every listed
    file is there with that size and digest (``checkpoint_is_complete``): one
    cut short by a kill, half deleted, or half copied (in any file order, at any
    moment) is never listed nor loaded, and is removed at the next save. Nothing
    depends on the order in which SpeechBrain writes the files.
    """

    def save_checkpoint(self, meta={}, end_of_epoch=True, name=None, verbosity=logging.INFO):
        if if_main_process():
            self._remove_incomplete()
        checkpoint = super().save_checkpoint(meta=meta, end_of_epoch=end_of_epoch, name=name, verbosity=verbosity)
        if checkpoint is not None:  # the main process: all files written, mark it complete
            seal_checkpoint(checkpoint.path)
        ddp_barrier()  # every process sees the same, complete checkpoints from here on
        return checkpoint

    def _list_checkpoint_dirs(self):
        return [path for path in super()._list_checkpoint_dirs() if checkpoint_is_complete(path)]

    def _remove_incomplete(self):
        """Delete checkpoint folders left by a process killed while saving or deleting."""
        if not self.checkpoints_dir.is_dir():
            return
        complete = set(self._list_checkpoint_dirs())
        for path in self.checkpoints_dir.glob("CKPT+*"):
            if path.is_dir() and path not in complete:
                logger.warning("Removing the incomplete checkpoint %s (its process stopped while writing it)", path)
                shutil.rmtree(path, ignore_errors=True)

    def delete_checkpoints(self, **kwargs):
        """SpeechBrain's ``delete_checkpoints`` (mid-epoch saves call it), decided and
        done by the main process alone while the others wait: its deletion runs one
        collective call per checkpoint it deletes, so processes that see other
        checkpoint folders (machines without a shared output folder) would hang."""
        run_on_main(super().delete_checkpoints, kwargs=kwargs)

    @staticmethod
    def delete(path: Path):
        """Remove a checkpoint folder, its manifest first: it stops counting at once."""
        (Path(path) / MANIFEST).unlink(missing_ok=True)
        shutil.rmtree(path, ignore_errors=True)

    def save_and_keep_best(self, meta: dict, max_key: str, num_best: int):
        """Save an end-of-epoch checkpoint, then delete every checkpoint but the
        ``num_best`` with the highest ``meta[max_key]`` (those averaged before
        testing: pass ``avg_checkpoints``) and the newest (the one a killed run
        resumes from). Mid-epoch checkpoints go too: the new one supersedes them.
        At most ``num_best + 1`` folders stay (SpeechBrain's ``save_and_keep_only``
        keeps the best N *and* the N most recent). Call it on every process (DDP)."""
        if int(num_best) < 1:
            raise ValueError(f"num_best must be at least 1, not {num_best}")
        self.save_checkpoint(meta=meta)
        newest = self.find_checkpoints(max_num_checkpoints=1)
        best = self.find_checkpoints(max_key=max_key, max_num_checkpoints=int(num_best))
        keep = {c.path for c in [*newest, *best]}
        ddp_barrier()
        if if_main_process():
            for checkpoint in self.list_checkpoints():
                if checkpoint.path not in keep:
                    self.delete(checkpoint.path)
        ddp_barrier()

    def _call_load_hooks(self, checkpoint):
        with weights_only_loading(checkpoint.path):
            super()._call_load_hooks(checkpoint)


def state_digest(state_dict) -> str:
    """SHA-256 of a state dict's names and raw tensor bytes (bit-exact)."""
    digest = hashlib.sha256()
    for name, tensor in state_dict.items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def statistics_digest(normalizer) -> str:
    """SHA-256 of a SpeechBrain ``InputNormalization``'s global statistics
    (count, mean, std), or of the dict its checkpoint file holds."""
    stats = normalizer if isinstance(normalizer, dict) else normalizer._statistics_dict()
    return state_digest({name: torch.as_tensor(stats[name]) for name in ("count", "glob_mean", "glob_std")})


def load_averaged_model(hparams: dict, max_key: str | None = "ACC", min_key: str | None = None, device="cpu"):
    """Recover the best checkpoint and average the model over the best few.

    Falls back to the latest checkpoint when none carries ``max_key``/``min_key``.
    Returns the list of checkpoints averaged (empty when there is none).
    """
    checkpointer = hparams["checkpointer"]
    keys = {"max_key": max_key, "min_key": min_key}
    ckpts = checkpointer.find_checkpoints(**keys, max_num_checkpoints=int(hparams["avg_checkpoints"]))
    if not ckpts:
        keys = {}
        ckpts = checkpointer.find_checkpoints(max_num_checkpoints=1)
    if not ckpts:
        logger.warning("No checkpoint in %s: using the model as it is", checkpointer.checkpoints_dir)
        return []
    with weights_only_loading(checkpointer.checkpoints_dir):
        checkpointer.recover_if_possible(**keys)
        if len(ckpts) > 1:
            loader = partial(torch.load, map_location=device, weights_only=True)
            state = average_checkpoints(ckpts, recoverable_name="model", parameter_loader=loader)
            hparams["model"].load_state_dict(state, strict=True)
    hparams["model"].eval()
    logger.info("Loaded the average of %d checkpoint(s): %s", len(ckpts), ", ".join(c.path.name for c in ckpts))
    return ckpts


def load_source_weights(model_dir, hparams: dict, device) -> list:
    """Load the average of the best ``avg_checkpoints`` checkpoints of the
    training output folder ``model_dir`` (and its normaliser) into this run's
    ``hparams["model"]`` / ``hparams["normalize"]`` (if the config has one), before the first step: the
    model of the source's test scores, as long as ``avg_checkpoints`` is the
    source's. A resumed fine-tuning run then recovers its own checkpoint on top.
    Returns the checkpoints averaged."""
    source = Checkpointer(
        Path(model_dir) / "save",
        recoverables={
            "model": hparams["model"],
            **({"normalizer": hparams["normalize"]} if "normalize" in hparams else {}),
        },
    )
    return load_averaged_model(
        {"checkpointer": source, "model": hparams["model"], "avg_checkpoints": hparams["avg_checkpoints"]},
        max_key="ACC",
        device=device,
    )
