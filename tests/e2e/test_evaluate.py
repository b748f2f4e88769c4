"""``stop-slu evaluate``: the recipe's test stage for any model and split,
resumable after a kill and split between processes by torchrun."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, run_cli

from stop_slu.report import read_predictions


def _evaluate_command(*args):
    return [sys.executable, "-m", "stop_slu.cli", "evaluate", *map(str, args), "--quiet"]


def _rows(path):
    return [(r["ID"], r["hypothesis"], r["reference"], r["domain"]) for r in read_predictions(path)]


def test_evaluate_gives_the_recipes_test_results(trained, mini_release, tmp_path):
    """The same model on the same split: the recipe's test stage and evaluate
    write the same predictions (row by row) and the same metrics JSON; the
    release is prepared on the way with the model's own target column."""
    model, _ = trained
    out = tmp_path / "eval"
    result = run_cli("evaluate", model, mini_release, "--out", out, "--quiet")
    assert "test: EM" in result.stdout
    assert _rows(out / "predictions_test.tsv") == _rows(model / "predictions_test.tsv")
    assert json.loads((out / "metrics_test.json").read_text()) == json.loads((model / "metrics_test.json").read_text())
    assert (out / "report.md").is_file() and (out / "per_domain.png").is_file()
    assert not (out / "partial_test").exists()
    # Another split of the same release, one CSV, and a domain filter: one command each.
    run_cli("evaluate", model, out / "data" / "test.csv", "--out", out / "csv", "--domains", "alarm,timer", "--quiet")
    domains = {r[3] for r in _rows(out / "csv" / "predictions_test.tsv")}
    assert domains and domains <= {"alarm", "timer"}


@pytest.fixture(scope="module")
def one_by_one(trained, prepared, tmp_path_factory):
    """An uninterrupted single-process evaluation, one utterance per batch (no padding:
    each hypothesis independent of the others in its batch)."""
    out = tmp_path_factory.mktemp("one_by_one")
    run_cli("evaluate", trained[0], prepared[0], "--out", out, "--batch_size", 1, "--quiet")
    return out


def test_search_options_decode_as_the_same_overrides(trained, prepared, tmp_path):
    """--max_decode_ratio and --beam_size change the search as the config's
    overrides do (--override values are YAML, as the recipe's --key=value):
    the tree constraint's length budget follows the ratio. A malformed
    --override is one error line."""
    test_csv = prepared[0] / "test.csv"
    evaluate = lambda out, *options, check=True: run_cli(  # noqa: E731
        "evaluate", trained[0], test_csv, "--out", tmp_path / out, "--quiet", *options, check=check
    )
    options = evaluate("options", "--max_decode_ratio", 0.3, "--beam_size", 3)
    overrides = evaluate("overrides", "--override", "max_decode_ratio=0.3", "--override", "test_beam_size=3")
    assert "beam 3, max decode ratio 0.3" in options.stdout and "beam 3, max decode ratio 0.3" in overrides.stdout
    assert _rows(tmp_path / "options" / "predictions_test.tsv") == _rows(
        tmp_path / "overrides" / "predictions_test.tsv"
    )
    # the ratio reaches every scorer that budgets by it, as the override does (the tree constraint's budget)
    from stop_slu.inference import SLUParser

    def ratios(parser):
        scorer = parser.search.scorer
        return [getattr(s, "max_decode_ratio", None) for s in (parser.search, *scorer.full_scorers.values())]

    changed = SLUParser.from_folder(trained[0])
    changed.set_search(max_decode_ratio=0.3)
    assert ratios(changed) == ratios(SLUParser.from_folder(trained[0], overrides={"max_decode_ratio": 0.3}))
    assert 0.3 in ratios(changed)[1:]  # a scorer (the tree constraint) budgets by the ratio
    for bad in ("max_decode_ratio", "=0.3", "max_decode_ratio=[0.3"):
        refused = evaluate("bad", "--override", bad, check=False)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        assert line.startswith(f"error: --override {bad}: "), line


def test_a_killed_evaluation_resumes_where_it_stopped(trained, prepared, one_by_one, tmp_path):
    out = tmp_path / "killed"
    command = _evaluate_command(trained[0], prepared[0], "--out", out, "--batch_size", 1)
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = out / "partial_test" / "rank0.tsv"
    deadline = time.time() + 300
    try:
        while not (partial.is_file() and partial.read_text().count("\n") >= 2):
            assert process.poll() is None and time.time() < deadline, "no row written before the end"
            time.sleep(0.01)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    written = partial.read_text().count("\n")
    assert 2 <= written < 16 and not (out / "predictions_test.tsv").exists()

    result = run_cli("evaluate", trained[0], prepared[0], "--out", out, "--batch_size", 1, "--quiet")
    assert f"resuming: {written} of 16 utterances already decoded" in result.stderr
    assert f"{written} read back from the interrupted run" in result.stdout
    assert _rows(out / "predictions_test.tsv") == _rows(one_by_one / "predictions_test.tsv")
    assert (out / "metrics_test.json").read_text() == (one_by_one / "metrics_test.json").read_text()

    # Another search in the same folder is refused, not mixed in.
    (out / "partial_test").mkdir()
    (out / "partial_test" / "run.json").write_text(json.dumps({"beam_size": 99}))
    refused = run_cli("evaluate", trained[0], prepared[0], "--out", out, "--batch_size", 1, "--quiet", check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "an interrupted evaluation with another" in refused.stderr and "--restart" in refused.stderr


def test_two_processes_share_the_split_and_gather_it(trained, prepared, one_by_one, tmp_path):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "stop_slu.cli", "evaluate", str(trained[0]), str(prepared[0]), "--out", str(out)]
    command += ["--batch_size=1", "--quiet"]
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "decoded by rank: 8 8" in result.stdout
    assert _rows(out / "predictions_test.tsv") == _rows(one_by_one / "predictions_test.tsv")
    assert (out / "metrics_test.json").read_text() == (one_by_one / "metrics_test.json").read_text()


def test_low_resource_and_held_in_splits_evaluate_with_one_command_each(trained, mini_release, low_resource, tmp_path):
    """The held-out domain's low-resource test file, straight from the release
    and STOP's low_resource_splits folder; the held-in test of a prepared folder."""
    prepared, domain, expected, _ = low_resource
    splits = prepared.parent / "low_resource_splits"
    out = tmp_path / "held_out"
    args = ("--low-resource", splits, "--split", f"{domain}_test", "--out", out, "--quiet")
    result = run_cli("evaluate", trained[0], mini_release, *args)
    assert f"{domain}_test: EM" in result.stdout
    metrics = json.loads((out / f"metrics_{domain}_test.json").read_text())
    assert metrics["n"] == expected["test"] and set(metrics["per_domain"]) == {domain}
    assert (out / f"report_{domain}_test.md").is_file()

    run_cli("evaluate", trained[0], prepared, "--split", "test", "--out", tmp_path / "held_in", "--quiet")
    held_in = json.loads((tmp_path / "held_in" / "metrics_test.json").read_text())
    assert held_in["n"] > 0 and domain not in held_in["per_domain"]
