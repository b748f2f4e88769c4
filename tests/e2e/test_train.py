"""The recipe end to end through the CLI, as real subprocesses:
synth -> train (prepare, tokenizer, fit, average, test) -> parse -> score."""

import csv
import json
import re

import soundfile as sf
from conftest import TINY, run_cli, train

from stop_slu.data_prep.espeak import Voice, speak


def test_train_writes_metrics_predictions_and_checkpoints(trained, mini_release):
    out, result = trained
    metrics = json.loads((out / "metrics_test.json").read_text())
    assert {"em", "em_tree", "valid", "n", "per_domain"} <= set(metrics)
    assert metrics["n"] == 16  # 8 test utterances x 2 takes
    assert json.loads(result.stdout.strip().splitlines()[-1])["n"] == 16

    with open(out / "predictions_test.tsv", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert rows[0] == ["ID", "hypothesis", "reference", "domain"]
    assert len(rows) == 17
    assert {r[3] for r in rows[1:]} == set(metrics["per_domain"])

    log = (out / "train_log.txt").read_text()
    assert "epoch: 3" in log and "test loss" in log
    assert len(list((out / "save").glob("CKPT+*"))) >= 2
    assert (out / "data" / "prepare_report.json").is_file()
    assert (out / "save" / "tokenizer" / "tokenizer.model").is_file()


def test_model_output_size_comes_from_the_tokenizer(trained):
    out, _ = trained
    from stop_slu.tokenizer.parse_tokenizer import ParseTokenizer

    tokenizer = ParseTokenizer(out / "save" / "tokenizer")
    assert f"output_neurons: {tokenizer.vocab_size}" in (out / "recipe_overrides.yaml").read_text()
    assert tokenizer.vocab_size < 1000  # the requested size is not reachable on this little text


def test_rerun_resumes_instead_of_restarting(trained, mini_release):
    out, _ = trained
    run_cli(
        "train",
        "mini",
        f"--data_folder={mini_release}",
        f"--output_folder={out}",
        "--number_of_epochs=4",
        *TINY,
    )
    log = (out / "train_log.txt").read_text()
    assert log.count("epoch: 1,") == 1  # not trained again from scratch
    assert "epoch: 4," in log


def test_parse_a_wav_the_model_never_saw(trained, tmp_path):
    out, _ = trained
    wav = tmp_path / "new.wav"
    sf.write(wav, speak("what is the weather like in lisbon tomorrow", Voice("en-us", "m3")), 16000)
    result = run_cli("parse", out, wav, wav)
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(lines) == 2
    for item in lines:
        assert set(item) == {"file", "parse", "intent", "slots", "confidence"}
        assert item["file"] == str(wav) and item["confidence"] <= 0
        assert isinstance(item["slots"], list)
    assert lines[0]["parse"] == lines[1]["parse"]


def test_parse_errors_are_one_line(trained, tmp_path):
    out, _ = trained
    missing = run_cli("parse", out, tmp_path / "nope.wav", check=False)
    assert missing.returncode != 0 and "nope.wav" in missing.stderr and "Traceback" not in missing.stderr
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("hello")
    bad = run_cli("parse", out, not_audio, check=False)
    assert bad.returncode != 0 and "not an audio file" in bad.stderr and "Traceback" not in bad.stderr
    not_model = run_cli("parse", tmp_path, not_audio, check=False)
    assert not_model.returncode != 0 and "Traceback" not in not_model.stderr


def test_time_limit_stops_training_and_still_tests(mini_release, tmp_path):
    out = tmp_path / "limited"
    run_cli(
        "train",
        "mini",
        f"--data_folder={mini_release}",
        f"--output_folder={out}",
        "--number_of_epochs=500",
        "--max_train_minutes=0.02",
        *TINY,
    )
    log = (out / "train_log.txt").read_text()
    minutes = [float(m) for m in re.findall(r"^epoch: \d+, .*?minutes: ([0-9.e+-]+)", log, re.M)]
    assert 1 <= len(minutes) < 500  # stopped long before the epoch limit
    assert minutes[-1] >= 0.02  # ... once the time was up
    first_over = next(i for i, m in enumerate(minutes) if m >= 0.02)
    assert first_over >= len(minutes) - 2  # at most the epoch in progress ran after the limit
    assert json.loads((out / "metrics_test.json").read_text())["n"] == 16


def test_optimizer_step_limit_stops_training_and_still_tests(mini_release, tmp_path):
    # SpeechBrain's run option, given as text on the command line
    out = tmp_path / "steps"
    train(mini_release, out, "--number_of_epochs=500", "--optimizer_step_limit=3", "--log_batch_ids=True")
    batches = re.findall(r"train batch: epoch \d+ step \d+", (out / "log.txt").read_text())
    assert len(batches) == 3
    assert json.loads((out / "metrics_test.json").read_text())["n"] == 16


def test_train_with_missing_data_folder_is_one_line(tmp_path):
    result = run_cli(
        "train", "mini", f"--data_folder={tmp_path / 'nope'}", f"--output_folder={tmp_path / 'o'}", check=False
    )
    assert result.returncode != 0 and "nope" in result.stderr and "Traceback" not in result.stderr
