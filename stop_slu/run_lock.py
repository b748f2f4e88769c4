"""One training run per output folder.

A run holds an exclusive ``flock`` on ``OUTPUT/run.lock`` for as long as its
process lives, and writes who it is into that file (pid, host, start time,
command line). A second run into the same folder finds the lock held and is
refused in one line naming that process, before it writes anything. The
kernel drops the lock when the holder exits, however it exits (SIGKILL, a
crash, a SageMaker instance restarted), so a killed run never leaves the
folder locked; the file itself stays, and only says who held it last.

Under DDP only the main process (global rank 0) takes the lock: the ranks of
one run share the folder, and a refused run's other ranks stop with it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

LOCK_NAME = "run.lock"

logger = logging.getLogger(__name__)


class RunLockedError(ValueError):
    """The output folder is in use by another run; one line naming it (a
    ValueError, as the recipe's other refusals, so the CLI prints that line)."""


def config_folders(hparams_file, overrides: dict, *keys: str) -> tuple[Path, ...]:
    """The folders that ``hparams_file`` with ``overrides`` gives its ``keys``
    (e.g. ``output_folder``; references such as ``results/mini/<seed>``
    resolved), read without building anything the config declares (no model,
    no download). Raises ValueError for a ``!PLACEHOLDER`` not overridden."""
    import ruamel.yaml
    from hyperpyyaml import resolve_references

    with open(hparams_file, encoding="utf-8") as f:
        config = ruamel.yaml.YAML().load(resolve_references(f, overrides))
    return tuple(Path(str(config[key])) for key in keys)


def _holder(path: Path) -> str:
    """Who holds the lock at ``path``, in words, from what it wrote there."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return (
            f"pid {info['pid']} on host {info['host']}, started {info['started']} ({' '.join(info.get('command', []))})"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not yet written its name"


class RunLock:
    """An exclusive lock on an output folder, held until ``release`` or the
    process ends. Build it with ``lock_output_folder``."""

    def __init__(self, path: Path, file):
        self.path = path
        self._file = file

    def release(self):
        """Let another run use the folder (the file stays, naming the last holder)."""
        if self._file is not None:
            self._file.close()  # closing the descriptor drops the flock
            self._file = None


def lock_output_folder(folder) -> RunLock | None:
    """Take ``folder``'s run lock (the folder is created when missing).

    Returns the held ``RunLock``: keep a reference for the run's lifetime.
    Returns None, with a warning, on a file system without locks (then a
    second run into the folder is not refused). Raises ``RunLockedError``
    (``folder: ...; what to do``) when another process holds it; nothing in
    the folder is changed then.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    file = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held for the run; "a+" never truncates a note)
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        file.close()
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunLockedError(
                f"{folder}: another run is using this output folder: {_holder(path)}; "
                "wait for it to end or stop it, or pass another --output_folder"
            ) from None
        logger.warning("%s: no lock on this file system (%s); a second run into it would not be refused", path, error)
        return None
    file.seek(0)
    file.truncate()
    note = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": sys.argv,
    }
    file.write(json.dumps(note) + "\n")
    file.flush()
    return RunLock(path, file)
