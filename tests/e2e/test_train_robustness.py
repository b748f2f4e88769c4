"""Nothing lost, nothing silent: bad rows, unusable input, a training
run killed and restarted, non-finite losses, determinism and safe loading.

Every test builds real files (wavs, manifests, checkpoints) and runs the real
CLI as subprocesses. tests/watch/sitecustomize.py, put on PYTHONPATH, records
from inside a subprocess what it writes and refuses any network use.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from conftest import (
    FEW_DOMAINS,
    REPO,
    SOME_DOMAINS,
    checkpoints,
    kill_in_epoch_2,
    run_cli,
    train,
    train_command,
    watched,
)

from stop_slu.checkpoints import seal_checkpoint, state_digest
from stop_slu.data_prep.audio import load_audio
from stop_slu.data_prep.release import DEFAULT_TARGET, utterance_id


def error_line(result, max_lines=None):
    """Exit status 1 and no traceback; returns the last line, ``error: ...``.
    ``max_lines``: at most that many lines in all (unusable input: 3)."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and lines[-1].startswith("error: "), result.stderr
    assert max_lines is None or len(lines) <= max_lines, result.stderr
    return lines[-1]


def manifest(root, split="train"):
    header, *rows = (root / "manifests" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
    return header.split("\t"), [row.split("\t") for row in rows]


def write_manifest(root, columns, rows, split="train"):
    lines = ["\t".join(columns), *("\t".join(row) for row in rows)]
    (root / "manifests" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


# -- 1. bad rows -------------------------------------------------------------------


def test_every_kind_of_bad_row_is_skipped_with_its_reason(mini_release, tmp_path):
    release = tmp_path / "release"
    shutil.copytree(mini_release, release)
    columns, rows = manifest(release)
    wav = [release / row[columns.index("file_id")] for row in rows]
    target = columns.index(DEFAULT_TARGET)  # the target column prepare reads by default
    signal_16k, _ = sf.read(wav[3], dtype="float32")

    wav[0].unlink()  # line 2: missing
    wav[1].write_bytes(wav[1].read_bytes()[: wav[1].stat().st_size // 2])  # line 3: truncated
    wav[2].write_text("not audio at all")  # line 4: not audio
    sf.write(wav[3], signal_16k[::2], 8000)  # line 5: 8 kHz (kept)
    sf.write(wav[4], np.stack([signal_16k, signal_16k], axis=1), 16000)  # line 6: stereo (kept)
    rows[5][target] = ""  # line 7: empty parse
    rows[6][target] = rows[6][target][:-2]  # line 8: unbalanced parse
    rows.append(list(rows[7]))  # last line: duplicate
    write_manifest(release, columns, rows)

    result = run_cli("prepare", release, tmp_path / "out", "--quiet")
    report = json.loads((tmp_path / "out" / "prepare_report.json").read_text())
    reasons = {entry["line"]: entry["reason"] for entry in report["skipped"]}
    assert set(reasons) == {2, 3, 4, 7, 8, len(rows) + 1}
    assert reasons[2] == "missing wav"
    assert reasons[3].startswith("bad wav: truncated")
    assert reasons[4] == "bad wav: not an audio file"
    assert reasons[7] == "empty target parse"
    assert reasons[8].startswith("malformed target parse")
    assert reasons[len(rows) + 1].startswith("duplicate row")
    train = report["splits"]["train"]
    assert (train["manifest_rows"], train["written"], train["skipped"]) == (len(rows), len(rows) - 6, 6)
    assert (train["resampled_at_load"], train["downmixed_at_load"]) == (1, 1)
    summary = result.stdout.splitlines()[0]
    assert "skipped 6 row(s)" in summary
    for reason in ("missing wav", "bad wav", "empty target parse", "malformed target parse", "duplicate row"):
        assert reason in summary

    # The kept odd files load as 16 kHz mono, the same length as the original.
    for path in (wav[3], wav[4]):
        samples = load_audio(path)
        assert samples.ndim == 1 and abs(len(samples) - len(signal_16k)) <= 2

    strict = run_cli("prepare", release, tmp_path / "strict", "--quiet", "--strict", check=False)
    line = error_line(strict, max_lines=3)
    assert "train.tsv:2: missing wav" in line and "6 row(s)" in line and "--strict" in line
    assert not (tmp_path / "strict" / "train.csv").exists()


# -- 2. unusable input -------------------------------------------------------------


def test_unusable_manifests_end_in_one_line_naming_path_and_fix(mini_release, tmp_path):
    release = tmp_path / "release"
    shutil.copytree(mini_release, release, ignore=shutil.ignore_patterns("*.wav"))
    columns, rows = manifest(release)
    train_tsv = release / "manifests" / "train.tsv"
    out = tmp_path / "out"

    keep = [i for i, c in enumerate(columns) if c != "domain"]
    write_manifest(release, [columns[i] for i in keep], [[row[i] for i in keep] for row in rows])
    line = error_line(run_cli("prepare", release, out, check=False), max_lines=3)
    assert f"{train_tsv}: manifest lacks column(s) domain" in line

    train_tsv.write_bytes(b"\xff\xfe\x00garbage\x9c\n\x81")
    line = error_line(run_cli("prepare", release, out, check=False), max_lines=3)
    assert str(train_tsv) in line and "unreadable manifest" in line

    train_tsv.write_bytes(b"")
    line = error_line(run_cli("prepare", release, out, check=False), max_lines=3)
    assert str(train_tsv) in line and "header" in line

    # parse checks its audio files before it loads a model.
    line = error_line(run_cli("parse", tmp_path, tmp_path / "nope.wav", check=False), max_lines=3)
    assert line == f"error: {tmp_path / 'nope.wav'}: missing file"
    line = error_line(run_cli("parse", tmp_path, train_tsv, check=False), max_lines=3)
    assert line == f"error: {train_tsv}: not an audio file"

    # The recipe script itself (not only the CLI) reports a missing data folder in one line.
    script = subprocess.run(
        [
            sys.executable,
            "recipes/STOP/train.py",
            "hparams/mini.yaml",
            f"--data_folder={tmp_path / 'nope'}",
            f"--output_folder={out}",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    line = error_line(script, max_lines=3)
    assert str(tmp_path / "nope") in line and "--data_folder" in line


# -- 3. interrupted training -------------------------------------------------------


def test_training_killed_in_its_second_epoch_resumes_mid_epoch(mini_release, tmp_path):
    out = tmp_path / "run"
    command = train_command(
        mini_release,
        out,
        "--number_of_epochs=2",
        SOME_DOMAINS,
        "--ckpt_interval_minutes=0",
        "--ckpt_interval_steps=1",  # a mid-epoch checkpoint after every step
    )
    kill_in_epoch_2(command, out)
    assert not (out / "metrics_test.json").exists()
    at_kill = checkpoints(out / "save")

    rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    loaded = [line.rsplit("/", 1)[-1] for line in rerun.stdout.splitlines() if "Loading a checkpoint from" in line]
    assert at_kill[loaded[0]] == (False, "2")  # the mid-epoch checkpoint of epoch 2
    assert "Going into epoch 1" not in rerun.stdout and "Going into epoch 2" in rerun.stdout

    log = (out / "train_log.txt").read_text().splitlines()
    steps = {
        int(line.split(",")[0].split()[1]): int(line.split("steps: ")[1].split(",")[0].split()[0])
        for line in log
        if line.startswith("epoch: ")
    }
    assert sorted(steps) == [1, 2]  # epoch 1 logged once: not trained again
    assert steps[1] >= 3 and steps[2] == 2 * steps[1]  # epoch 2 went on where it stopped: no batch lost or repeated
    test_rows = len((out / "data" / "test.csv").read_text().splitlines()) - 1
    assert json.loads((out / "metrics_test.json").read_text())["n"] == test_rows > 0


# -- 4. numerical faults, 5. determinism, 6. no network -----------------------------


def tiny_wav_file_id(release):
    """The training file that ``release_with_tiny_wav`` cuts to 10 ms."""
    columns, rows = manifest(release)
    return next(r[columns.index("file_id")] for r in rows if r[columns.index("domain")] in FEW_DOMAINS)


def longest_test_wav(release):
    """The longest test wav: FAST's max_decode_ratio (0.05) leaves the search
    room for a whole parse only on the longer utterances (parse refuses shorter
    audio in one line, as the model's supported range says)."""
    return max(sorted(release.glob("test_1/*/*.wav")), key=lambda path: path.stat().st_size)


@pytest.fixture(scope="module")
def release_with_tiny_wav(mini_release, tmp_path_factory):
    """mini-STOP with one training wav of 10 ms: too short for the model's 4x
    subsampling, its batch's loss is NaN (a real numerical fault)."""
    release = tmp_path_factory.mktemp("tiny_wav") / "release"
    shutil.copytree(mini_release, release)
    sf.write(release / tiny_wav_file_id(release), np.full(160, 0.01, dtype="float32"), 16000)
    return release


@pytest.fixture(scope="module")
def twin_runs(release_with_tiny_wav, tmp_path_factory):
    """Two training runs with the same seed on the same data, network refused."""
    root = tmp_path_factory.mktemp("twins")
    for name in ("a", "b"):
        train(
            release_with_tiny_wav,
            root / name,
            "--number_of_epochs=1",
            SOME_DOMAINS,
            env=watched(root / f"{name}.watch"),
        )
    return root


def test_a_nonfinite_loss_is_skipped_counted_and_named(twin_runs, release_with_tiny_wav):
    tiny = utterance_id(tiny_wav_file_id(release_with_tiny_wav))
    run = twin_runs / "a"
    epoch = next(line for line in (run / "train_log.txt").read_text().splitlines() if line.startswith("epoch: 1,"))
    assert "train skipped_steps: 1" in epoch and "nan" not in epoch
    warning = next(line for line in (run / "log.txt").read_text().splitlines() if "Non-finite loss" in line)
    assert tiny in warning and "optimiser step skipped" in warning
    (ckpt,) = (run / "save").glob("CKPT+*/model.ckpt")
    assert all(bool(t.isfinite().all()) for t in torch.load(ckpt, weights_only=True).values())
    assert json.loads((run / "metrics_test.json").read_text())["n"] > 0


def test_losses_stuck_at_nan_stop_the_run_with_one_line(mini_release, tmp_path):
    result = train(
        mini_release, tmp_path / "run", "--number_of_epochs=1", "--lr_adam=1.0e+30", "--warmup_steps=1", check=False
    )
    line = error_line(result)
    assert "not finite for 4 optimiser steps in a row" in line and "nonfinite_patience" in line
    assert not list((tmp_path / "run" / "save").glob("CKPT+*"))  # no NaN model left behind


def test_same_seed_same_csvs_tokenizer_losses_and_weights(twin_runs):
    a, b = twin_runs / "a", twin_runs / "b"
    for name in (
        "data/train.csv",
        "data/eval.csv",
        "data/test.csv",
        "save/tokenizer/tokenizer.model",
        "predictions_test.tsv",
    ):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    logs = [re.sub(r"minutes: [^ ,]+", "", (run / "train_log.txt").read_text()) for run in (a, b)]
    assert logs[0] == logs[1] and "train loss" in logs[0]  # the same losses, wall time aside
    (model_a,), (model_b,) = (run.glob("save/CKPT+*/model.ckpt") for run in (a, b))
    digests = {state_digest(torch.load(m, weights_only=True)) for m in (model_a, model_b)}
    assert len(digests) == 1  # bit-identical weights after the same steps: every loss was identical


def test_nothing_opens_a_network_connection(twin_runs, release_with_tiny_wav, tmp_path):
    # The watch refuses and records network use (checked here, so this test can fail)...
    probe = subprocess.run(
        [sys.executable, "-c", "import socket; socket.create_connection(('example.com', 80), timeout=5)"],
        env={**os.environ, **watched(tmp_path / "probe.watch")},
        capture_output=True,
        text=True,
    )
    assert probe.returncode != 0 and "example.com" in (tmp_path / "probe.watch").read_text()
    # ...and saw none in two training runs (prepare, tokenizer, train, test) and a parse.
    wav = longest_test_wav(release_with_tiny_wav)
    parse = run_cli("parse", twin_runs / "a", wav, env=watched(tmp_path / "parse.watch"))
    assert json.loads(parse.stdout)["file"] == str(wav)
    for log in (twin_runs / "a.watch", twin_runs / "b.watch", tmp_path / "parse.watch"):
        assert log.read_text() == ""


# -- 6. safe loading ---------------------------------------------------------------


class OpensAFileWhenUnpickled:
    """Pickled, this object is code that creates ``path`` when loaded."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_checkpoint_holding_pickled_code_is_refused(twin_runs, release_with_tiny_wav, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(twin_runs / "a", model)
    marker = tmp_path / "code_ran"
    for ckpt in model.glob("save/CKPT+*"):  # a self-consistent checkpoint folder, but with code inside
        torch.save({"weight": OpensAFileWhenUnpickled(marker)}, ckpt / "model.ckpt")
        seal_checkpoint(ckpt)
    wav = longest_test_wav(release_with_tiny_wav)
    # Even with torch told to unpickle anything, the checkpoint is read as weights only.
    result = run_cli("parse", model, wav, check=False, env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    line = error_line(result)
    assert "refused to load" in line and "weights_only=True" in line
    assert not marker.exists()


def test_parse_reads_only_files_inside_the_model_folder(twin_runs, release_with_tiny_wav, tmp_path):
    wav = longest_test_wav(release_with_tiny_wav)
    outside = tmp_path / "outside"
    shutil.copytree(twin_runs / "a" / "save" / "tokenizer", outside)

    model = tmp_path / "linked"  # a file of the model that is a symlink to elsewhere
    shutil.copytree(twin_runs / "a", model)
    (model / "save" / "tokenizer" / "tokenizer.model").unlink()
    (model / "save" / "tokenizer" / "tokenizer.model").symlink_to(outside / "tokenizer.model")
    line = error_line(run_cli("parse", model, wav, check=False))
    assert "tokenizer.model: leads outside the model folder" in line

    model = tmp_path / "overridden"  # training overrides naming folders elsewhere are not followed
    shutil.copytree(twin_runs / "a", model)
    (outside / "tokenizer.model").write_bytes(b"not a tokenizer")
    overrides = model / "recipe_overrides.yaml"
    paths = {"tokenizer_folder": str(outside), "save_folder": str(outside)}
    overrides.write_text(yaml.safe_dump({**yaml.safe_load(overrides.read_text()), **paths}))
    assert json.loads(run_cli("parse", model, wav).stdout)["file"] == str(wav)
