"""The stop-slu command itself: one line for what it cannot do, never a traceback."""

import subprocess
import sys

import pytest
import torch
from conftest import REPO, run_cli


@pytest.mark.slow  # a CLI subprocess (torch and SpeechBrain imported: seconds)
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_parse_on_a_gpu_that_is_not_there_is_one_line(tmp_path):
    result = run_cli("parse", tmp_path, tmp_path / "a.wav", "--device=cuda", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "error: --device=cuda: no such GPU here (0 visible); pass --device=cpu"


def test_a_reader_that_goes_away_is_no_traceback(tmp_path):
    ref = tmp_path / "ref.tsv"
    ref.write_text("".join(f"test_0-alarm-{i:08d}\t[IN:GET_ALARM ]\n" for i in range(20000)))
    process = subprocess.Popen(
        [sys.executable, "-m", "stop_slu.cli", "score", ref, ref],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()  # as `stop-slu score ... | head -1` does once it has its line
    stderr = process.stderr.read()
    process.wait(timeout=300)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
