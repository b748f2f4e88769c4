"""Watches a test's subprocesses from inside, with Python audit hooks.

Tests put this folder first on PYTHONPATH; Python then imports this module at
start-up in every process of the run (torchrun's workers too). Nothing is
replaced: the hooks only record what the process does, and refuse network use.

    STOP_SLU_WATCH=FILE         append one line per event to FILE:
                                "<RANK or -> <event> <path or address>"
    STOP_SLU_WATCH_UNDER=DIR    record files opened for writing, and renames, under DIR
    STOP_SLU_NO_NETWORK=1       record and refuse every internet socket connection,
                                datagram and host name lookup (Unix sockets stay allowed)

Code in C libraries that opens its own sockets is not seen; everything that
goes through Python's socket module is.
"""

import os
import socket
import sys

_LOG = os.environ.get("STOP_SLU_WATCH")
_UNDER = os.environ.get("STOP_SLU_WATCH_UNDER")
_NO_NETWORK = os.environ.get("STOP_SLU_NO_NETWORK") == "1"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_NETWORK_EVENTS = {"socket.connect", "socket.sendto", "socket.getaddrinfo", "socket.gethostbyname"}
_INTERNET = (socket.AF_INET, socket.AF_INET6)


def _install():
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    rank = os.environ.get("RANK", "-")

    def record(event, what):
        os.write(fd, f"{rank} {event} {what}\n".encode("utf-8", "replace"))

    def under(path):
        return isinstance(path, (str, bytes, os.PathLike)) and os.path.abspath(os.fsdecode(path)).startswith(_UNDER)

    def hook(event, args):
        if _NO_NETWORK and event in _NETWORK_EVENTS:
            if event in ("socket.connect", "socket.sendto") and args[0].family not in _INTERNET:
                return
            what = args[1] if event.startswith("socket.c") or event == "socket.sendto" else args[0]
            record(event, what)
            raise ConnectionRefusedError(f"network use refused by tests/watch: {event} {what}")
        if _UNDER and event == "open" and isinstance(args[2], int) and args[2] & _WRITE_FLAGS and under(args[0]):
            record("write", os.path.abspath(os.fsdecode(args[0])))
        elif _UNDER and event == "os.rename" and under(args[1]):
            record("rename", os.path.abspath(os.fsdecode(args[1])))

    sys.addaudithook(hook)


if _LOG:
    _install()
