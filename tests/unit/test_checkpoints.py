"""Checkpoints: complete or invisible (a process killed while saving leaves
nothing that loads), every load weights-only, every config on the safe
checkpointer (stop_slu/checkpoints.py)."""

import signal
import subprocess
import sys

import pytest
import torch
from conftest import REPO

DIE_WHILE_SAVING = """
import os, signal, sys, torch
from speechbrain.utils.checkpoints import Checkpointer
from stop_slu.checkpoints import SafeCheckpointer

model = torch.nn.Linear(4, 4)
kind = SafeCheckpointer if sys.argv[2] == "safe" else Checkpointer
checkpointer = kind(sys.argv[1], recoverables={"model": model})
torch.nn.init.constant_(model.weight, 1.0)
checkpointer.save_checkpoint(meta={"n": 1})

def write_half_then_die(obj, path):
    with open(path, "wb") as f:
        f.write(b"the first half of a file")
    os.kill(os.getpid(), signal.SIGKILL)

torch.nn.init.constant_(model.weight, 2.0)
checkpointer.add_recoverable("optimizer", model, custom_save_hook=write_half_then_die)
checkpointer.save_checkpoint(meta={"n": 2})
"""


@pytest.mark.slow  # a CLI subprocess (torch and SpeechBrain imported: seconds)
def test_a_checkpoint_cut_short_by_a_kill_is_never_loaded(tmp_path):
    from speechbrain.utils.checkpoints import Checkpointer

    from stop_slu.checkpoints import SafeCheckpointer

    for kind in ("speechbrain", "safe"):
        died = subprocess.run([sys.executable, "-c", DIE_WHILE_SAVING, str(tmp_path / kind), kind], cwd=REPO)
        assert died.returncode == -signal.SIGKILL
        assert len(list((tmp_path / kind).glob("CKPT+*"))) == 2  # the second one was cut short
    # SpeechBrain's own Checkpointer marks a folder complete before writing it...
    assert len(Checkpointer(tmp_path / "speechbrain").list_checkpoints()) == 2

    # ...the recipe's never lists the cut-short folder, loads the last complete one,
    model = torch.nn.Linear(4, 4)
    safe = SafeCheckpointer(tmp_path / "safe", recoverables={"model": model})
    assert [c.meta["n"] for c in safe.list_checkpoints()] == [1]
    assert safe.recover_if_possible().meta["n"] == 1 and bool((model.weight == 1.0).all())
    # and removes the leftover at its next save.
    third = safe.save_checkpoint(meta={"n": 3})
    assert sorted(p.name for p in (tmp_path / "safe").glob("CKPT+*")) == sorted(
        c.path.name for c in safe.list_checkpoints()
    )
    # A checkpoint missing a file (killed while deleting it) is not loaded either.
    (third.path / "model.ckpt").unlink()
    assert [c.meta["n"] for c in safe.list_checkpoints()] == [1]


def test_every_torch_load_in_the_code_is_weights_only():
    calls = [
        (path, line)
        for folder in ("stop_slu", "data_prep", "tokenizer", "recipes")
        for path in sorted((REPO / folder).rglob("*.py"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if "torch.load(" in line
    ]
    assert calls  # the scan sees the code
    assert [(path, line) for path, line in calls if "weights_only=True" not in line] == []


def test_every_config_checkpoints_with_the_safe_checkpointer():
    configs = [c for c in sorted((REPO / "hparams").glob("*.yaml")) if "\ncheckpointer:" in c.read_text()]
    assert configs
    for config in configs:
        assert "checkpointer: !new:stop_slu.checkpoints.SafeCheckpointer" in config.read_text(), config
