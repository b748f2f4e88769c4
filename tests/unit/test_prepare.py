"""Preparation: one row per usable manifest row, header durations, a report."""

import csv
import json
import shutil

import soundfile as sf
from conftest import run_cli

from stop_slu.data_prep.prepare import CSV_COLUMNS, prepare


def read_csv(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def manifest_rows(root, split):
    with open(root / "manifests" / f"{split}.tsv", encoding="utf-8") as f:
        return sum(1 for _ in f) - 1


def test_one_row_per_manifest_row_with_true_durations(prepared, mini_release):
    save, report = prepared
    for split in ("train", "eval", "test"):
        with open(save / f"{split}.csv", encoding="utf-8") as f:
            assert next(csv.reader(f)) == list(CSV_COLUMNS)
        rows = read_csv(save / f"{split}.csv")
        assert len(rows) == manifest_rows(mini_release, split) == report["splits"][split]["written"]
        assert len({r["ID"] for r in rows}) == len(rows)
        for row in rows:
            assert row["wav"].startswith("/")
            true = sf.info(row["wav"]).frames / 16000
            assert abs(float(row["duration"]) - true) < 0.010
    assert report["skipped"] == []


def test_ids_keep_split_take_and_domain(prepared):
    save, _ = prepared
    ids = [r["ID"] for r in read_csv(save / "eval.csv")]
    assert any(i.startswith("eval_0-") for i in ids) and any(i.startswith("eval_1-") for i in ids)
    take0 = {i.split("-", 1)[1] for i in ids if i.startswith("eval_0-")}
    take1 = {i.split("-", 1)[1] for i in ids if i.startswith("eval_1-")}
    assert take0 == take1


def test_ids_stable_and_missing_files_reported(mini_release, tmp_path):
    release = tmp_path / "release"
    shutil.copytree(mini_release, release)
    first = prepare(release, tmp_path / "a", progress=False)
    ids_before = [r["ID"] for r in read_csv(tmp_path / "a" / "train.csv")]

    removed = sorted(release.glob("train/*/*.wav"))[:2] + sorted(release.glob("test_1/*/*.wav"))[:1]
    for wav in removed:
        wav.unlink()
    report = prepare(release, tmp_path / "b", progress=False)
    assert report["splits"]["train"]["written"] == first["splits"]["train"]["written"] - 2
    assert report["splits"]["test"]["written"] == first["splits"]["test"]["written"] - 1
    named = {entry["file_id"].split("/")[-1] for entry in report["skipped"]}
    assert named == {wav.name for wav in removed}
    assert all(entry["reason"] == "missing wav" and entry["line"] >= 2 for entry in report["skipped"])
    ids_after = [r["ID"] for r in read_csv(tmp_path / "b" / "train.csv")]
    assert ids_after == [i for i in ids_before if i in set(ids_after)]
    assert json.loads((tmp_path / "b" / "prepare_report.json").read_text())["skipped_by_reason"] == {"missing wav": 3}


def test_cli_prepare_summary_and_domains(mini_release, tmp_path):
    result = run_cli("prepare", mini_release, tmp_path / "p", "--domains", "alarm,weather", "--quiet")
    assert "nothing skipped" in result.stdout
    domains = {r["domain"] for r in read_csv(tmp_path / "p" / "train.csv")}
    assert domains <= {"alarm", "weather"} and domains
    report = json.loads((tmp_path / "p" / "prepare_report.json").read_text())
    assert report["splits"]["train"]["filtered_out_by_domain"] > 0


def test_cli_bad_input_is_one_clear_line(tmp_path, mini_release):
    missing = run_cli("prepare", tmp_path / "nowhere", tmp_path / "out", check=False)
    assert missing.returncode != 0 and "no such folder" in missing.stderr
    assert "Traceback" not in missing.stderr and len(missing.stderr.strip().splitlines()) <= 3

    no_manifests = tmp_path / "empty"
    no_manifests.mkdir()
    result = run_cli("prepare", no_manifests, tmp_path / "out", check=False)
    assert result.returncode != 0 and "manifests" in result.stderr and "Traceback" not in result.stderr

    bad_target = run_cli("prepare", mini_release, tmp_path / "out", "--target", "nope", check=False)
    assert bad_target.returncode != 0 and "nope" in bad_target.stderr and "Traceback" not in bad_target.stderr


def test_same_release_same_csv_bytes(mini_release, tmp_path):
    prepare(mini_release, tmp_path / "a", progress=False)
    prepare(mini_release, tmp_path / "b", progress=False)
    for split in ("train", "eval", "test"):
        assert (tmp_path / "a" / f"{split}.csv").read_bytes() == (tmp_path / "b" / f"{split}.csv").read_bytes()
