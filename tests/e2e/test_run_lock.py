"""Two runs into one output folder: the second is refused in one line naming the
first (pid, host, start time) and changes nothing there; a killed run leaves no lock."""

import json
import os
import signal
import socket
import subprocess
import time

from conftest import REPO, run_cli, train_command, watched

from stop_slu.run_lock import LOCK_NAME, lock_output_folder


def files_under(folder):
    """{relative path: (size, mtime in ns)} of every file under ``folder``."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_a_second_run_into_the_same_folder_is_refused_and_changes_nothing(mini_release, tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(
        train_command(mini_release, out, "--number_of_epochs=1"),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while not (out / "log.txt").is_file():  # the first run holds the lock and has begun writing
            assert first.poll() is None and time.time() < deadline, "the first run did not start"
            time.sleep(0.05)
        first.send_signal(signal.SIGSTOP)  # still running (and holding the lock), but writing nothing now
        note = json.loads((out / LOCK_NAME).read_text())
        assert note["pid"] == first.pid and note["host"] == socket.gethostname()
        before = files_under(out)

        log = tmp_path / "watch.log"
        second = run_cli(*train_command(mini_release, out)[3:], check=False, env=watched(log, under=out))
        assert second.returncode != 0 and "Traceback" not in second.stderr
        last = second.stderr.strip().splitlines()[-1]
        assert last.startswith(
            f"error: {out}: another run is using this output folder: pid {first.pid} on host {socket.gethostname()}, "
            f"started {note['started']}"
        )
        assert last.endswith("wait for it to end or stop it, or pass another --output_folder")
        assert files_under(out) == before  # nothing of the first run changed
        written = [line.split(" ", 2)[2] for line in log.read_text().splitlines() if " write " in line]
        assert set(written) <= {str(out / LOCK_NAME)}  # opened to try the lock, never written
        assert json.loads((out / LOCK_NAME).read_text()) == note
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()

    lock = lock_output_folder(out)  # the killed run left no lock behind
    assert lock is not None
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
