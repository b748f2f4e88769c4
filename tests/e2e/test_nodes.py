"""Two machines without a shared disk: plain torchrun started twice on this machine
(--nnodes=2, node ranks 0 and 1, gloo on CPU), each "node" with its own output
folder. What rank 0 prepares, trains and checkpoints reaches the other node, and
both test the same weights."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest
from conftest import FAST, REPO, SOME_DOMAINS


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow  # two torchrun process trees training the tiny model
def test_two_nodes_with_their_own_output_folders_train_and_test_the_same_weights(mini_release, tmp_path):
    port = free_port()
    nodes = []
    for rank in (0, 1):
        out = tmp_path / f"node{rank}" / "out"  # each node's own disk, the same path on neither
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes=2",
            "--nproc_per_node=1",
            f"--node_rank={rank}",
            "--master_addr=127.0.0.1",
            f"--master_port={port}",
            "recipes/STOP/train.py",
            "hparams/mini.yaml",
            f"--data_folder={mini_release}",
            f"--output_folder={out}",
            *FAST,
            SOME_DOMAINS,
            "--number_of_epochs=1",
            "--ckpt_interval_minutes=0",
            "--ckpt_interval_steps=2",  # mid-epoch checkpoints: SpeechBrain prunes them with collective calls
            "--distributed_backend=gloo",
            "--device=cpu",
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        nodes.append(
            (
                out,
                subprocess.Popen(
                    command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                ),
            )
        )
    logs = [process.communicate(timeout=600)[0] for _, process in nodes]
    assert [process.returncode for _, process in nodes] == [0, 0], "\n".join(log[-3000:] for log in logs)
    out0, out1 = (out for out, _ in nodes)
    # Rank 0's node wrote the run; the other node received its CSVs, tokenizer and checkpoints.
    assert (out1 / "data" / "train.csv").read_bytes() == (out0 / "data" / "train.csv").read_bytes()
    assert (out1 / "save" / "tokenizer" / "tokenizer.model").read_bytes() == (
        out0 / "save" / "tokenizer" / "tokenizer.model"
    ).read_bytes()
    assert sorted(p.name for p in (out1 / "save").glob("CKPT+*")) == sorted(
        p.name for p in (out0 / "save").glob("CKPT+*")
    )
    # Both processes tested the same weights: their digests, compared before decoding.
    log = (out0 / "log.txt").read_text()
    (line,) = re.findall(r"test: model sha256 by rank: (.*)", log)
    first, second = line.split()
    assert first == second
    assert "is not shared with rank(s) 1" in log
    (shares,) = re.findall(r"Test: utterances decoded by rank: (.*)", log)
    assert min(int(n) for n in shares.split()) > 0
