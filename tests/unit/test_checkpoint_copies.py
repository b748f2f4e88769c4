"""Checkpoints copied file by file while they are being saved (a spot instance's
checkpoint folder, synced to S3 and restored on a new instance) restore the newest
checkpoint that arrived whole: never a broken one, never nothing when one did.

Real saves of a small model by the recipe's SafeCheckpointer (keeping the best and
the newest, deleting the rest), while two kinds of copier run beside them:
- snapshots: at random moments, every file of the folder copied in random order
  (files caught half written, folders half deleted);
- an uploader that copies each file when it is closed after writing, and sees no
  other event (inotify IN_CLOSE_WRITE and IN_DELETE): a sync that misses files
  renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import threading
from pathlib import Path

import pytest
import torch
from conftest import Snapshots

from stop_slu.checkpoints import MANIFEST, SafeCheckpointer

SAVES = 8


def _digests(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


def _models():
    return {"model": torch.nn.Linear(1000, 500), "extra": torch.nn.Linear(1000, 1000)}


def _restore(save: Path):
    """(step restored or None, whether the weights are that step's everywhere)."""
    models = _models()
    for module in models.values():
        torch.nn.init.constant_(module.weight, -1.0)
    checkpoint = SafeCheckpointer(save, recoverables=models).recover_if_possible() if save.is_dir() else None
    if checkpoint is None:
        return None, all(bool((m.weight == -1.0).all()) for m in models.values())
    step = checkpoint.meta["step"]
    return step, all(bool((m.weight == float(step)).all()) for m in models.values())


def _fully_copied(copy: Path, finals: dict) -> int | None:
    """The newest step whose checkpoint folder is in ``copy`` with every file it had when saved."""
    whole = [
        step
        for step, (name, digests) in finals.items()
        if (copy / name).is_dir() and all(_digests(copy / name).get(f) == d for f, d in digests.items())
    ]
    return max(whole, default=None)


class CloseWriteUploader(threading.Thread):
    """Mirrors ``live`` into ``mirror`` from inotify's close-after-write and delete
    events only; each file lands whole (as an S3 object does)."""

    def __init__(self, live: Path, mirror: Path):
        from inotify_simple import INotify, flags

        super().__init__(daemon=True)
        self.live, self.mirror, self.done, self.idle = live, mirror, False, threading.Event()
        self.flags = flags
        self.inotify = INotify()
        self.mask = flags.CLOSE_WRITE | flags.DELETE | flags.CREATE
        self.folders = {self.inotify.add_watch(live, self.mask): live}

    def _upload(self, path: Path):
        target = self.mirror / path.relative_to(self.live)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = self.mirror.parent / "uploading"
        try:
            shutil.copyfile(path, staging)
        except FileNotFoundError:
            return
        os.replace(staging, target)

    def run(self):
        while not self.done:
            events = self.inotify.read(timeout=50)
            if not events:
                self.idle.set()
                continue
            self.idle.clear()
            for event in events:
                path = self.folders[event.wd] / event.name
                if event.mask & self.flags.ISDIR:
                    if event.mask & self.flags.CREATE:
                        self.folders[self.inotify.add_watch(path, self.mask)] = path
                        for early in sorted(path.iterdir()):  # written before the watch began
                            self._upload(early)
                    continue
                if event.mask & self.flags.CLOSE_WRITE:
                    self._upload(path)
                elif event.mask & self.flags.DELETE:
                    (self.mirror / path.relative_to(self.live)).unlink(missing_ok=True)

    def drained(self) -> bool:
        self.idle.clear()
        return self.idle.wait(timeout=10)


@pytest.mark.slow  # saves and copies for tens of seconds
@pytest.mark.parametrize("seed", [1, 2])
def test_copies_taken_while_saving_restore_the_newest_whole_checkpoint(tmp_path, seed):
    pytest.importorskip("inotify_simple")
    live = tmp_path / "live" / "save"
    live.mkdir(parents=True)
    rng = random.Random(seed)
    snapshots = Snapshots(live, tmp_path / "snapshots", seed)
    uploader = CloseWriteUploader(live, tmp_path / "s3" / "save")
    snapshots.start()
    uploader.start()

    models = _models()
    checkpointer = SafeCheckpointer(live, recoverables=models)
    finals, uploads = {}, []
    for step in range(1, SAVES + 1):
        for module in models.values():
            torch.nn.init.constant_(module.weight, float(step))
        checkpointer.save_and_keep_best(meta={"ACC": rng.random(), "step": step}, max_key="ACC", num_best=1)
        [newest] = checkpointer.find_checkpoints(max_num_checkpoints=1)
        finals[step] = (newest.path.name, _digests(newest.path))
        assert uploader.drained()  # what the sync has uploaded once the save returned: restored on a new instance
        restored = tmp_path / "restored" / f"after{step}"
        shutil.copytree(tmp_path / "s3" / "save", restored)
        uploads.append((step, restored))
    snapshots.done = uploader.done = True
    snapshots.join()
    uploader.join()

    # The uploader that never sees renamed files still gets every checkpoint whole.
    for step, restored in uploads:
        assert _restore(restored) == (step, True), f"restored after save {step}"

    # Each snapshot restores exactly the newest checkpoint it holds whole (or nothing),
    # with that checkpoint's weights.
    torn = 0
    assert len(snapshots.taken) > 10
    for copy in snapshots.taken:
        expected = _fully_copied(copy, finals)
        assert _restore(copy) == (expected, True), copy.name
        torn += any(
            folder.is_dir() and (folder / "CKPT.yaml").exists() and not (folder / MANIFEST).exists()
            for folder in copy.glob("CKPT+*")
        ) or any(_fully_copied(copy, {s: finals[s]}) is None and (copy / finals[s][0]).is_dir() for s in finals)
    assert torn, "no snapshot caught a checkpoint half copied: the test did not race the saves"
