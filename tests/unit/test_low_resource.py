"""STOP's low-resource and domain splits through `stop-slu prepare
--low-resource/--domains` (data_prep/low_resource.py)."""

import json

from conftest import read_csv, run_cli


def test_low_resource_files_become_csvs_labelled_from_the_manifests(low_resource, prepared):
    save, domain, expected, _ = low_resource
    main_rows = {
        row["ID"]: row for split in ("train", "eval", "test") for row in read_csv(prepared[0] / f"{split}.csv")
    }
    for name, key in (("train_25spis", "train"), ("valid_25spis", "valid"), ("test", "test")):
        rows = read_csv(save / f"{domain}_{name}.csv")
        assert len(rows) == expected[key] > 0
        assert {row["domain"] for row in rows} == {domain}
        for row in rows:  # the same row the main preparation writes for that utterance
            assert row == main_rows[row["ID"]]


def test_duplicate_unknown_and_malformed_lines_are_dropped_and_counted(low_resource):
    save, domain, expected, result = low_resource
    name = f"{domain}_train_25spis"
    report = json.loads((save / "prepare_report.json").read_text())
    train = report["splits"][name]
    assert train["duplicate_lines"] == 2
    assert train["lines"] == expected["train"] + 4 and train["written"] == expected["train"] and train["skipped"] == 4
    dropped = {(e["line"], e["reason"].split(" (")[0]) for e in report["skipped"] if e["split"] == name}
    n = expected["train"]
    assert dropped == {
        (n + 2, "duplicate row"),
        (n + 3, "duplicate row"),
        (n + 4, "not in the release's manifests"),
        (n + 5, "malformed low-resource line"),
    }
    assert "2 duplicate row" in result.stdout and name in result.stdout
    ids = [row["ID"] for row in read_csv(save / f"{name}.csv")]
    assert len(ids) == len(set(ids))


def test_domains_select_the_held_in_main_splits(low_resource):
    save, domain, _, _ = low_resource
    for split in ("train", "eval", "test"):
        domains = {row["domain"] for row in read_csv(save / f"{split}.csv")}
        assert domains and domain not in domains


def test_low_resource_folder_without_manifests_is_one_line(mini_release, tmp_path):
    (tmp_path / "lr").mkdir()
    (tmp_path / "lr" / "notes.tsv").write_text("domain\tutterance\tsemantic_parse\n")
    result = run_cli("prepare", mini_release, tmp_path / "out", "--low-resource", tmp_path / "lr", check=False)
    assert result.returncode != 0 and "no low-resource manifest" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
