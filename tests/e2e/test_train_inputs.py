"""The recipe on the data users really have: a data folder whose path holds a
``$``, a manifest with an unreadable row, an annotated empty slot and a target
not in canonical form. It trains, tests and says what it did with each."""

import json
import shutil

from conftest import TINY, run_cli


def test_a_dollar_folder_with_field_rows_trains(mini_release, tmp_path):
    release = tmp_path / "$STOP" / "stop"
    shutil.copytree(mini_release, release)
    manifest = release / "manifests" / "train.tsv"
    header, *rows = manifest.read_text(encoding="utf-8").splitlines()
    column = header.split("\t").index("normalized_seqlogical")
    fields = rows[0].split("\t")
    intent = fields[column].split()[0]
    fields[column] = f"{intent} set a reminder [SL:PERSON_REMINDED ] to [SL:TODO call mom ] ]"  # empty slot
    rows[0] = "\t".join(fields)
    fields = rows[1].split("\t")
    fields[column] = fields[column].replace(" ]", "]").lower()  # not canonical: `paris]]`
    rows[1] = "\t".join(fields)
    rows[2] = "\t".join(rows[2].split("\t")[:3])  # too few fields: skipped, reported
    manifest.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")

    out = tmp_path / "out"
    run_cli("train", "mini", f"--data_folder={release.parent}", f"--output_folder={out}", "--number_of_epochs=1", *TINY)
    report = json.loads((out / "data" / "prepare_report.json").read_text())
    assert [(e["line"], e["reason"].split(" (")[0]) for e in report["skipped"]] == [(4, "unreadable manifest row")]
    assert report["splits"]["train"]["empty_slots"] == 1
    assert report["splits"]["train"]["written"] == len(rows) - 1
    assert json.loads((out / "metrics_test.json").read_text())["n"] == 16
    lengths = json.loads((out / "target_lengths.json").read_text())
    assert set(lengths["splits"]) == {"train", "eval", "test"}
    log = (out / "train_log.txt").read_text()
    assert "epoch: 1" in log
