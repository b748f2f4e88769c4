"""The commands of README.md and docs/walkthrough.md, taken from their
```bash blocks and run in order, as a reader would, on tiny data.

Each command runs as written, in one scratch folder (the reader's working
directory), with `stop-slu` being this checkout's CLI. Two explicit tables
change what cannot run here as written, and nothing else is left out:

- PLACEHOLDERS: the names the docs use for the reader's own paths, replaced
  by tiny ones (STOP_DIR: the tests' 80-utterance mini-STOP).
- SUBSTITUTES: whole commands replaced, each with its reason (an install that
  is done, a hub upload that needs an account, a GPU, sizes for minutes).
  Every training command gets the tests' tiny model (conftest.TINY) and one
  epoch, appended as overrides (TRAIN_SIZES).

A command added to these pages runs as written unless an entry is added
here; an entry whose command left the docs fails the test (stale mapping).
"""

import os
import re
import shlex
import subprocess
import sys

from conftest import REPO, TINY

PAGES = ("README.md", "docs/walkthrough.md")

# One epoch of the tiny model: a training command runs in seconds, not minutes. (TINY, not FAST: FAST's
# short decode limit makes its models refuse most test utterances, which `parse` reports as an error.)
TRAIN_SIZES = [*TINY, "--number_of_epochs=1"]

PLACEHOLDERS = {
    "STOP_DIR": "{release}",  # a STOP release: the tests' mini-STOP
    "OUT": "out",  # a training output folder
    "EXPORT_DIR": "export",  # an exported model folder
}

SUBSTITUTES = {
    # installing is done (the tests run in the installed project); the demo runs at tiny sizes
    'pip install -e ".[test]" && stop-slu demo': "stop-slu demo --train 40 --valid 4 --test 4 --minutes 0 "
    + " ".join(TRAIN_SIZES),
    # the whole suite is the CI's job: one fast test file shows the command works
    'pip install -c stop_slu/sagemaker/constraints.txt -e ./runtime -e ".[test]" && python -m pytest -q': (
        f"python -m pytest -q -p no:cacheprovider {REPO}/tests/unit/test_parses.py"
    ),
    # no GPU and 2 CPU cores here: 2 CPU processes (gloo) instead of 4 GPUs
    "torchrun --nproc_per_node=4 -m stop_slu.cli evaluate OUT STOP_DIR --device cuda --out eval": (
        "torchrun --standalone --nproc_per_node=2 -m stop_slu.cli evaluate out {release} --device cpu --out eval_ddp"
    ),
    # the server runs until stopped: started in the background (as the reader's second terminal would hold
    # it), its address line awaited; the curl command below stops it
    "stop-slu serve stop_slu_demo/model": (
        "timeout 900 stop-slu serve stop_slu_demo/model > serve.log 2>&1 & echo $! > serve.pid; "
        "for i in $(seq 300); do grep -q 'serving ' serve.log && break; sleep 1; done; grep -q 'serving ' serve.log"
    ),
    # the tiny demo has 4 test clips, not alarm_test/00000001.wav: its first test_1 clip instead; then the server stops
    "curl -H 'Content-Type: audio/wav' --data-binary @stop_slu_demo/mini_stop/test_1/alarm_test/00000001.wav "
    "http://127.0.0.1:8000/v1/parse": (
        "curl -s -H 'Content-Type: audio/wav' --data-binary @$(ls stop_slu_demo/mini_stop/test_1/*/*.wav | head -1) "
        "http://127.0.0.1:8000/v1/parse > served.json; kill $(cat serve.pid); grep -q '\"parse\"' served.json"
    ),
    # uploading needs a Hub account and the network: the command's own help shows it exists as written
    "hf upload YOUR_NAME/stop-slu-mini EXPORT_DIR . --repo-type model": "hf upload --help",
}


def extract(page) -> list[str]:
    """The commands of a Markdown page's ```bash blocks, in order: lines
    continued with a backslash joined, comments (`# ...`) and blank lines
    dropped."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", (REPO / page).read_text(encoding="utf-8"), re.M | re.S):
        for command in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"(^|\s)#.*$", "", command).strip()
            if command:
                commands.append(re.sub(r"\s+", " ", command))
    return commands


def _runnable(command: str, release) -> str:
    command = SUBSTITUTES.get(command, command)
    for name, value in PLACEHOLDERS.items():
        command = re.sub(rf"\b{name}\b", value, command)
    command = command.format(release=release)
    words = shlex.split(command.split("&&")[-1].split("|")[0].split(">")[0])
    if words[:2] == ["stop-slu", "train"]:
        command += " " + " ".join(TRAIN_SIZES)
    return command


def test_the_docs_commands_run_in_order(mini_release, tmp_path):
    documented = [command for page in PAGES for command in extract(page)]
    stale = set(SUBSTITUTES) - set(documented)
    assert not stale, f"SUBSTITUTES for commands no longer in the docs: {stale}"
    assert len(documented) >= 10

    bin_dir = tmp_path / "bin"  # `stop-slu` is this checkout's CLI, whatever is installed
    bin_dir.mkdir()
    (bin_dir / "stop-slu").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m stop_slu.cli "$@"\n')
    (bin_dir / "stop-slu").chmod(0o755)
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(bin_dir), str(os.path.dirname(sys.executable)), os.environ["PATH"]]),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    work = tmp_path / "reader"
    work.mkdir()
    for command in documented:
        runnable = _runnable(command, mini_release)
        result = subprocess.run(
            ["bash", "-c", runnable], cwd=work, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"{command}\n(ran: {runnable})\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"

    # What the commands promise is there.
    assert (work / "stop_slu_demo" / "eval" / "metrics_test.json").is_file()
    assert (work / "out" / "save" / "tokenizer" / "tokenizer.model").is_file()
    assert (work / "eval" / "metrics_eval.json").is_file() and (work / "eval_ddp" / "metrics_test.json").is_file()
    assert not (work / "tok").exists() or (work / "tok" / "tokenizer.model").is_file()
