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


@pytest.mark.parametrize(
    "argv, overrides, minutes",
    [
        (["demo", "--number_of_epochs=30", "--minutes", "0"], ["--number_of_epochs=30"], 0),
        (
            ["demo", "--minutes", "0", "--number_of_epochs=30", "--lr_adam=1e-3"],
            ["--number_of_epochs=30", "--lr_adam=1e-3"],
            0,
        ),
        (["demo", "--", "--number_of_epochs=30"], ["--number_of_epochs=30"], 20),
        (["train", "mini", "--number_of_epochs=30", "--device=cpu"], ["--number_of_epochs=30", "--device=cpu"], None),
    ],
)
def test_recipe_overrides_are_taken_wherever_they_stand(argv, overrides, minutes):
    from stop_slu.cli import parse_args

    args = parse_args(argv)
    assert args.overrides == overrides
    assert getattr(args, "minutes", None) == minutes


def test_commands_without_overrides_refuse_unknown_options(capsys):
    from stop_slu.cli import parse_args

    with pytest.raises(SystemExit) as stop:
        parse_args(["score", "ref.tsv", "hyp.tsv", "--number_of_epochs=30"])
    assert stop.value.code == 2 and "unrecognized arguments: --number_of_epochs=30" in capsys.readouterr().err


@pytest.mark.slow  # a CLI subprocess (torch and SpeechBrain imported: seconds)
def test_a_wrong_demo_override_is_refused_before_the_synthesis(tmp_path):
    result = run_cli("demo", "--out", tmp_path / "demo", "--number_of_epoch=3", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "number_of_epoch" in lines[0] and "did you mean number_of_epochs?" in lines[0], lines
    assert not (tmp_path / "demo" / "mini_stop").exists()
