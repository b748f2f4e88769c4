"""The training loop at full-run scale: batch order per epoch and across a
resume, feature statistics under DDP, gradient faults, checkpoints kept on
disk, and the cost of evaluation.

Real runs of the recipe through the CLI (tiny models on a mini-STOP), and a
real ``RobustBrain`` on a small network where a whole run is not needed.
"""

import re
import signal
import subprocess
import sys
import time

from conftest import REPO
from test_robustness import FAST, SOME_DOMAINS, checkpoints, train

BATCH_LINE = re.compile(r"train batch: epoch (\d+) step (\d+) ids (\S+)")


def trained_batches(log_text):
    """{(epoch, step): ids} of every training batch logged (``log_batch_ids``);
    a step trained again after a resume replaces the earlier entry."""
    return {(int(e), int(s)): ids for e, s, ids in BATCH_LINE.findall(log_text)}


# -- batch order ------------------------------------------------------------------


def test_each_epoch_has_its_own_order_and_a_resumed_run_trains_the_same_batches(mini_release, tmp_path):
    options = [SOME_DOMAINS, "--number_of_epochs=2", "--log_batch_ids=True"]
    train(mini_release, tmp_path / "whole", *options)
    whole = trained_batches((tmp_path / "whole" / "log.txt").read_text())
    epochs = {epoch: [ids for (e, _), ids in sorted(whole.items()) if e == epoch] for epoch in (1, 2)}
    assert len(epochs[1]) == len(epochs[2]) >= 3
    assert sorted(",".join(epochs[1]).split(",")) == sorted(",".join(epochs[2]).split(","))  # the same utterances
    assert epochs[1] != epochs[2]  # ... in another order

    out = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "stop_slu.cli",
        "train",
        "mini",
        f"--data_folder={mini_release}",
        f"--output_folder={out}",
        *FAST,
        *options,
        "--ckpt_interval_minutes=0",
        "--ckpt_interval_steps=1",
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    try:
        while (False, "2") not in checkpoints(out / "save").values():
            assert process.poll() is None and time.time() < deadline, "no mid-epoch checkpoint in epoch 2"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    killed_at = trained_batches((out / "log.txt").read_text())
    assert max(killed_at)[0] == 2 and max(killed_at) < max(whole)  # killed inside epoch 2
    rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "Going into epoch 1" not in rerun.stdout  # resumed, not restarted
    assert trained_batches((out / "log.txt").read_text()) == whole
