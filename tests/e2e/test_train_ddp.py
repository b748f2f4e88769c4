"""Training scaled out: several processes with DDP stay bit-identical
and prepare the data once; mixed precision keeps the CTC loss finite.

Real runs of recipes/STOP/train.py on CPU: 2 processes under torchrun with the
gloo backend, and one process with ``--precision=bf16``.
"""

import json
import math
import os
import re
import subprocess
import sys
from collections import Counter

import torch
from conftest import FAST, REPO, SOME_DOMAINS, run_cli, watched

from stop_slu.checkpoints import state_digest, statistics_digest


def test_two_processes_stay_bit_identical_and_prepare_once(mini_release, tmp_path):
    out = tmp_path / "ddp"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "recipes/STOP/train.py",
            "hparams/mini.yaml",
            f"--data_folder={mini_release}",
            f"--output_folder={out}",
            *FAST,
            "--number_of_epochs=1",
            "--distributed_backend=gloo",
            "--device=cpu",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", **watched(tmp_path / "watch", under=out, refuse_network=False)},
    )
    assert result.returncode == 0, result.stderr[-3000:]

    # Each process's weights after the epoch (gathered by the recipe), and the
    # checkpoint rank 0 saved: all the same bytes.
    (line,) = re.findall(r"epoch 1: model sha256 by rank: (.*)", (out / "log.txt").read_text())
    by_rank = line.split()
    (model,) = out.glob("save/CKPT+*/model.ckpt")
    assert by_rank == [state_digest(torch.load(model, weights_only=True))] * 2
    # The same for the global feature statistics, which each process updates
    # from its own batches: every rank holds those of all ranks' batches.
    (line,) = re.findall(r"epoch 1: normaliser sha256 by rank: (.*)", (out / "log.txt").read_text())
    (normalizer,) = out.glob("save/CKPT+*/normalizer.ckpt")
    assert line.split() == [statistics_digest(torch.load(normalizer, weights_only=True))] * 2

    # Every file under the output folder was written by rank 0 alone: preparation
    # and tokenizer training ran once (each output renamed into place once).
    events = [line.split(" ", 2) for line in (tmp_path / "watch").read_text().splitlines()]
    assert {rank for rank, _, _ in events} == {"0"}
    renamed = Counter(path for _, event, path in events if event == "rename")
    for name in (
        "data/train.csv",
        "data/eval.csv",
        "data/test.csv",
        "data/prepare_report.json",
        "save/tokenizer/tokenizer.model",
    ):
        assert renamed[str(out / name)] == 1, name
    assert json.loads((out / "metrics_test.json").read_text())["n"] == 16
    # The test set was split between the processes and gathered.
    (line,) = re.findall(r"Test: utterances decoded by rank: (.*)", (out / "log.txt").read_text())
    shares = [int(n) for n in line.split()]
    assert len(shares) == 2 and sum(shares) == 16 and min(shares) > 0
    with open(out / "predictions_test.tsv", encoding="utf-8") as f:
        assert len({row.split("\t")[0] for row in f.read().splitlines()[1:]}) == 16


def test_bf16_training_keeps_the_ctc_loss_finite(mini_release, tmp_path):
    out = tmp_path / "bf16"
    run_cli(
        "train",
        "mini",
        f"--data_folder={mini_release}",
        f"--output_folder={out}",
        *FAST,
        "--number_of_epochs=1",
        SOME_DOMAINS,
        "--precision=bf16",
    )
    assert "Using training precision: `--precision=bf16`" in (out / "log.txt").read_text()
    (epoch,) = [line for line in (out / "train_log.txt").read_text().splitlines() if line.startswith("epoch: 1,")]
    losses = [float(x) for x in re.findall(r"(?:train|valid) loss: ([^ ,]+)", epoch)]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert "skipped_steps" not in epoch  # no step had a non-finite loss
    (model,) = out.glob("save/CKPT+*/model.ckpt")
    assert all(bool(t.isfinite().all()) for t in torch.load(model, weights_only=True).values())
