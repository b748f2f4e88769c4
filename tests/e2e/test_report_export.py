"""What a finished run leaves for people and programs: the full metrics, the
report with its charts, TensorBoard logs, and an exported model that parses
exactly as the recipe's own test decoding did."""

import csv
import json
import subprocess
import sys

import yaml
from conftest import REPO, TINY, run_cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_metrics_hold_every_documented_key(trained):
    out, _ = trained
    metrics = json.loads((out / "metrics_test.json").read_text())
    for key in (
        "em",
        "em_tree",
        "valid",
        "n",
        "intent_acc",
        "slot_precision",
        "slot_recall",
        "slot_f1",
        "per_domain",
        "errors",
    ):
        assert key in metrics
    assert metrics["valid"] == 100.0  # tree-constrained search, even for a barely trained model
    wrong = metrics["n"] - round(metrics["em"] * metrics["n"] / 100)
    assert sum(v["count"] for v in metrics["errors"].values()) == wrong
    assert metrics["errors"]["malformed"]["count"] == 0


def test_the_recipe_writes_a_report_and_the_cli_rebuilds_it(trained):
    out, _ = trained
    report = out / "report.md"
    text = report.read_text()
    for heading in ("## Overall", "## Per domain", "## Errors", "most frequent confusions", "## Learning curves"):
        assert heading in text
    for chart in ("per_domain.png", "learning_curves.png"):
        assert (out / chart).read_bytes()[:8] == PNG_MAGIC
        assert f"]({chart})" in text

    report.unlink()
    (out / "per_domain.png").unlink()
    result = run_cli("report", out)
    assert "report.md" in result.stdout
    assert report.read_text() == text
    assert (out / "per_domain.png").is_file()


def test_report_of_a_folder_without_predictions_is_one_clear_line(tmp_path):
    result = run_cli("report", tmp_path, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: ") and "predictions_test.tsv" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def _test_rows(out):
    with open(out / "data" / "test.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return sorted(rows, key=lambda r: float(r["duration"]))  # the recipe's test order


def test_exported_model_parses_like_the_recipe_in_a_fresh_process(trained, tmp_path):
    out, _ = trained
    export = tmp_path / "export"
    run_cli("export", out, export)
    for name in (
        "hyperparams.yaml",
        "model.ckpt",
        "normalizer.ckpt",
        "tokenizer/tokenizer.model",
        "labels.txt",
        "README.md",
    ):
        assert (export / name).is_file(), name
    config = (export / "hyperparams.yaml").read_text()
    assert "save" not in config.split("export_folder")[0]
    assert str(out) not in config  # no path back to the run
    assert "speechbrain.utils.parameter_transfer.Pretrainer" in config and "\nmodules:" in config
    assert "\nmax_audio_seconds: 60" in config  # the longest audio parse accepts travels with the model
    card = (export / "README.md").read_text()
    assert " ms to 60 s " in card and "`stop-slu parse --max_audio_seconds=S` raises it" in card
    # the Hub's metadata: licence, library, the run's EM; and no path of the training machine
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["license"] == "other" and "stop" in front["license_link"] and front["library_name"] == "speechbrain"
    metrics = json.loads((out / "metrics_test.json").read_text())
    assert front["model-index"][0]["results"][0]["metrics"][0]["value"] == metrics["em"]
    assert str(out) not in card and str(export) not in card and str(tmp_path) not in card

    rows = _test_rows(out)
    assert len(rows) <= 32  # one test batch, so padding matches the recipe's decoding
    # SpeechBrain's own loading path, into a separate savedir, in a fresh process
    script = (
        "import json, sys\n"
        "from speechbrain.inference.interfaces import Pretrained\n"
        "from stop_slu.inference import SLUParser\n"
        "parser = SLUParser.from_hparams(source=sys.argv[1], savedir=sys.argv[2], run_opts={'device': 'cpu'})\n"
        "assert isinstance(parser, Pretrained) and 'Transformer' in parser.mods\n"
        "wavs, lens = parser.load_batch(sys.argv[3:])\n"
        "print(json.dumps({'batch': parser.parse_batch(wavs, lens), 'file': parser.parse_file(sys.argv[3])}))\n"
    )
    savedir = tmp_path / "pretrained"
    result = subprocess.run(
        [sys.executable, "-c", script, str(export), str(savedir), *(r["wav"] for r in rows)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    with open(out / "predictions_test.tsv", encoding="utf-8") as f:
        recipe = {r["ID"]: r["hypothesis"] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)}
    assert parsed["batch"] == [recipe[r["ID"]] for r in rows]
    for name in ("hyperparams.yaml", "model.ckpt", "normalizer.ckpt", "tokenizer/tokenizer.model"):
        assert (savedir / name).exists(), name  # fetched into savedir

    # the CLI parses the same, from the export folder and from the training folder
    cli = json.loads(run_cli("parse", export, rows[0]["wav"]).stdout.splitlines()[0])
    assert cli["parse"] == parsed["file"]
    assert json.loads(run_cli("parse", out, rows[0]["wav"]).stdout.splitlines()[0])["parse"] == parsed["file"]


def test_export_with_a_symlink_out_of_it_is_refused(trained, tmp_path):
    out, _ = trained
    export = tmp_path / "export"
    run_cli("export", out, export)
    outside = tmp_path / "elsewhere.ckpt"
    (export / "model.ckpt").rename(outside)
    (export / "model.ckpt").symlink_to(outside)
    result = run_cli("parse", export, _test_rows(out)[0]["wav"], check=False)
    assert result.returncode != 0 and "leads outside the model folder" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_tensorboard_logs_when_asked(mini_release, tmp_path):
    out = tmp_path / "run"
    run_cli(
        "train",
        "mini",
        f"--data_folder={mini_release}",
        f"--output_folder={out}",
        "--number_of_epochs=1",
        "--use_tensorboard=True",
        *TINY,
    )
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    assert (REPO / "hparams" / "mini.yaml").read_text().count("use_tensorboard: False") == 1
