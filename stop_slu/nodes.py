"""Several machines ("nodes") in one run, with or without a shared output folder.

The recipe's main process (global rank 0) prepares the CSVs, trains the tokenizer
and writes every checkpoint into its output folder; the other processes read
them. On one machine, or on machines sharing that folder (NFS, EFS, FSx), they
are there. On machines that do not share it (SageMaker's instances, or plain
``torchrun`` on two machines with local disks), ``OutputFolder`` finds out at the
start, from a file rank 0 writes that every process looks for after a barrier,
and then sends rank 0's files over ``torch.distributed`` to one process per
machine that does not see them, which writes them into its own output folder at
the same path:

    folder = OutputFolder.check(hparams["output_folder"])   # every process
    ...
    folder.share(hparams["prepare_folder"])                  # rank 0's CSVs everywhere
    folder.share_checkpoints(hparams["checkpointer"])        # rank 0's checkpoints everywhere

Without DDP, or when every process sees rank 0's folder, each call does nothing.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

MARKER = ".main_process_marker"  # written by rank 0 into its output folder at the start


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _broadcast(value):
    """``value`` of rank 0, on every process."""
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


@dataclass(frozen=True)
class OutputFolder:
    """The run's output folder, as this process sees it.

    ``sees_main``: whether this process sees the folder rank 0 writes (True
    without DDP). ``shared``: whether every process does."""

    path: Path
    sees_main: bool = True
    shared: bool = True

    @classmethod
    def check(cls, path) -> OutputFolder:
        """Call on every process, once DDP is set up: rank 0 writes a marker with a
        random token into ``path``; after a barrier every process reads it back.
        Logs, on rank 0, the ranks that do not see it (their machines then get
        rank 0's files through ``share``)."""
        path = Path(path)
        if not _distributed():
            return cls(path)
        token = None
        if torch.distributed.get_rank() == 0:
            token = secrets.token_hex(16)
            path.mkdir(parents=True, exist_ok=True)
            (path / MARKER).write_text(token)
        token = _broadcast(token)
        try:
            sees = (path / MARKER).read_text() == token
        except OSError:
            sees = False
        everyone = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(everyone, sees)
        apart = [rank for rank, seen in enumerate(everyone) if not seen]
        if apart and torch.distributed.get_rank() == 0:
            logger.info(
                "Output folder %s is not shared with rank(s) %s: rank 0 sends them its data CSVs, tokenizer "
                "and checkpoints (each machine keeps a copy at the same path)",
                path,
                " ".join(map(str, apart)),
            )
        return cls(path, sees_main=sees, shared=not apart)

    @property
    def _writes_here(self) -> bool:
        """One process per machine that does not see rank 0's folder writes its copy."""
        return not self.sees_main and int(os.environ.get("LOCAL_RANK", "0")) == 0

    def _portable(self, path) -> str:
        """``path`` relative to the output folder when inside it (each machine's
        output folder may lie elsewhere), else as it is."""
        path = Path(path)
        return str(path.relative_to(self.path)) if path.is_relative_to(self.path) else str(path)

    def _local(self, name: str) -> Path:
        return self.path / name  # an absolute name stays absolute

    def share(self, *paths, replace_folders: tuple = ()):
        """Rank 0's files under each of ``paths`` (folders or files; inside the output
        folder, or at the same absolute path on every machine) written on every
        machine that does not see rank 0's output folder, into its own output
        folder, file by file (each written under a temporary name, then renamed).
        Folders in ``replace_folders`` are emptied there first. Call on every
        process, with this process's paths; returns once every machine has them."""
        if self.shared:
            return
        files = None
        if torch.distributed.get_rank() == 0:
            files = sorted(
                self._portable(file)
                for path in map(Path, paths)
                for file in ([path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()))
            )
        files = _broadcast(files)
        if self._writes_here:
            for folder in replace_folders:
                shutil.rmtree(self._local(self._portable(folder)), ignore_errors=True)
        for name in files:  # one broadcast per file: memory holds one file at a time
            data = _broadcast(self._local(name).read_bytes() if torch.distributed.get_rank() == 0 else None)
            if self._writes_here:
                target = self._local(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(target.name + ".partial")
                partial.write_bytes(data)
                os.replace(partial, target)
        torch.distributed.barrier()

    def share_checkpoints(self, checkpointer):
        """Rank 0's complete checkpoints (``checkpointer.list_checkpoints()``) on every
        machine, in place of what that machine's folder held: before training (so a
        resumed run recovers the same state everywhere) and before testing (so every
        process averages the same weights)."""
        if self.shared:
            return
        names = None
        if torch.distributed.get_rank() == 0:
            names = [c.path.name for c in checkpointer.list_checkpoints()]
        names = _broadcast(names)
        save = Path(checkpointer.checkpoints_dir)
        if self._writes_here and save.is_dir():
            for stale in save.glob("CKPT+*"):
                if stale.name not in names:
                    shutil.rmtree(stale, ignore_errors=True)
        folders = [save / name for name in names]
        self.share(*folders, replace_folders=folders)
