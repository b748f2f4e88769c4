"""Preparation and the recipe's data loading on the inputs users really send:
a bad manifest row, an annotated empty slot, audio changed since an earlier
preparation, an empty evaluation split, ``$`` in paths and targets, targets not
in canonical form."""

import csv
import json
import logging
import os
import shutil

import pytest

from stop_slu import parses
from stop_slu.data_prep.prepare import prepare
from stop_slu.data_prep.rows import PrepareError, read_csv
from stop_slu.recipe.train import dataio_prepare
from stop_slu.stages import build_tokenizer, prepare_data
from stop_slu.tokenizer.parse_tokenizer import UNK_ID


def copy_release(mini_release, root):
    shutil.copytree(mini_release, root)
    return root


def manifest_lines(root, split):
    return (root / "manifests" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()


def write_manifest(root, split, lines):
    (root / "manifests" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def csv_ids(path):
    with open(path, encoding="utf-8") as f:
        return [row["ID"] for row in csv.DictReader(f)]


def test_a_row_with_too_few_fields_is_a_reported_skip(mini_release, tmp_path):
    release = copy_release(mini_release, tmp_path / "release")
    lines = manifest_lines(release, "train")
    lines[3] = "\t".join(lines[3].split("\t")[:4])  # line 4: 4 fields of 9
    lines[5] = lines[5] + "\textra"  # line 6: 10 fields
    write_manifest(release, "train", lines)
    report = prepare(release, tmp_path / "out", progress=False)
    skipped = {(e["line"], e["reason"].split(" (")[0]) for e in report["skipped"]}
    assert skipped == {(4, "unreadable manifest row"), (6, "unreadable manifest row")}
    assert report["splits"]["train"]["written"] == len(lines) - 1 - 2
    assert report["splits"]["train"]["manifest_rows"] == len(lines) - 1
    assert all(e["file_id"].endswith(".wav") for e in report["skipped"])


def test_an_unreadable_header_still_stops(mini_release, tmp_path):
    release = copy_release(mini_release, tmp_path / "release")
    lines = manifest_lines(release, "eval")
    write_manifest(release, "eval", ["file_id\tdomain"] + lines[1:])
    with pytest.raises(PrepareError, match="lacks column"):
        prepare(release, tmp_path / "out", progress=False)


def test_empty_slots_are_kept_and_counted(mini_release, tmp_path):
    release = copy_release(mini_release, tmp_path / "release")
    header, *rows = manifest_lines(release, "test")
    column = header.split("\t").index("normalized_seqlogical")
    fields = rows[0].split("\t")
    fields[column] = "[IN:CREATE_REMINDER set a reminder [SL:PERSON_REMINDED ] to [SL:TODO call mom ] ]"
    rows[0] = "\t".join(fields)
    fields = rows[1].split("\t")
    fields[column] = "   "  # no target at all: the only kind of row the test set loses
    rows[1] = "\t".join(fields)
    write_manifest(release, "test", [header, *rows])
    report = prepare(release, tmp_path / "out", target="normalized_seqlogical", progress=False)
    assert report["splits"]["test"]["written"] == len(rows) - 1
    assert report["splits"]["test"]["empty_slots"] == 1
    assert [(e["line"], e["reason"]) for e in report["skipped"]] == [(3, "empty target parse")]
    kept = [row["semantics"] for row in read_csv(tmp_path / "out" / "test.csv").values()]
    assert "[IN:CREATE_REMINDER set a reminder [SL:PERSON_REMINDED ] to [SL:TODO call mom ] ]" in kept


# -- reuse of an earlier preparation -------------------------------------------------


def test_reuse_only_when_the_audio_is_unchanged(mini_release, tmp_path, caplog):
    release = copy_release(mini_release, tmp_path / "release")
    save = tmp_path / "out"
    wavs = sorted(release.glob("train/*/*.wav"))
    held = tmp_path / "held"
    held.mkdir()
    for wav in wavs[:5]:  # a partly extracted archive
        shutil.move(wav, held / wav.name)
    partial = prepare(release, save, progress=False)
    assert partial["splits"]["train"]["written"] == len(wavs) - 5

    for wav in wavs[:5]:  # extraction finished: the manifests did not change
        shutil.move(held / wav.name, wav)
    with caplog.at_level(logging.INFO):
        full = prepare(release, save, progress=False)
    assert full["splits"]["train"]["written"] == len(wavs)
    assert "audio changed" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = prepare(release, save, progress=False)
    assert again == full and "reused" in caplog.text

    wavs[7].unlink()  # deleted since
    assert prepare(release, save, progress=False)["splits"]["train"]["written"] == len(wavs) - 1

    stat = wavs[8].stat()  # rewritten in place with another length
    with open(wavs[8], "ab") as f:
        f.write(b"\0\0")
    os.utime(wavs[8], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        prepare(release, save, progress=False)
    assert "audio changed" in caplog.text


def recipe_hparams(release, out, **extra):
    return {
        "data_folder": str(release),
        "output_folder": str(out),
        "prepare_folder": str(out / "data"),
        "tokenizer_folder": str(out / "tok"),
        "skip_prep": False,
        "force_prep": False,
        "data_url": "http://127.0.0.1:9/unused.tar.gz",
        "train_split": "train",
        "valid_split": "eval",
        "test_split": "test",
        "domains": None,
        "target_column": "normalized_seqlogical",
        "vocab_size": 200,
        "tokenizer_type": "unigram",
        "sorting": "random",
        "sample_rate": 16000,
        "bos_index": 2,
        "eos_index": 3,
        "dynamic_batching": False,
        "train_dataloader_opts": {"batch_size": 2},
        **extra,
    }


def test_recipe_key_forces_preparation(mini_release, tmp_path, caplog):
    hparams = recipe_hparams(mini_release, tmp_path)
    prepare_data(hparams)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        prepare_data(hparams)
    assert "reused" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        prepare_data({**hparams, "force_prep": True})
    assert "reused" not in caplog.text


# -- an empty split ------------------------------------------------------------------


@pytest.mark.parametrize("split, key", [("eval", "valid_split"), ("test", "test_split")])
def test_an_empty_split_is_refused_at_the_start(mini_release, tmp_path, split, key):
    release = copy_release(mini_release, tmp_path / "release")
    for wav in release.glob(f"{split}_*/*/*.wav"):
        wav.unlink()
    with pytest.raises(PrepareError) as error:
        prepare_data(recipe_hparams(release, tmp_path / "out"))
    message = str(error.value)
    assert f"{split}.csv" in message and key in message and "missing wav" in message
    assert "\n" not in message


def test_an_empty_user_csv_is_refused(mini_release, tmp_path):
    hparams = recipe_hparams(mini_release, tmp_path, skip_prep=True)
    prepare_data({**hparams, "skip_prep": False})
    (tmp_path / "data" / "eval.csv").write_text("ID,duration,wav,domain,gender,native,transcript,semantics\n")
    with pytest.raises(PrepareError, match="eval.csv.*no rows"):
        prepare_data(hparams)


# -- the CSVs as the recipe reads them -------------------------------------------------


def user_csvs(mini_release, tmp_path):
    """The user's own CSVs (skip_prep): wavs under a folder named ``$DATA``,
    targets with ``$`` and not in canonical form."""
    data = tmp_path / "$DATA"
    shutil.copytree(mini_release, data)
    prepare(data, tmp_path / "data", progress=False)
    for split in ("train", "eval", "test"):
        path = tmp_path / "data" / f"{split}.csv"
        with open(path, encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        rows[0]["semantics"] = "[IN:GET_WEATHER [SL:LOCATION paris][SL:DATE_TIME at $5 ]]"
        rows[1]["semantics"] = "[in:get_weather [sl:location Paris ]]"
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return rows


def test_fields_are_literal_and_targets_canonical(mini_release, tmp_path):
    user_csvs(mini_release, tmp_path)
    hparams = recipe_hparams(tmp_path / "$DATA", tmp_path, skip_prep=True)
    prepare_data(hparams)
    tokenizer = build_tokenizer(hparams)
    train, valid, test = dataio_prepare(hparams, tokenizer)[:3]
    for dataset in (train, valid, test):
        items = [dataset[i] for i in range(len(dataset))]
        assert all(item["sig"].numel() > 0 for item in items)  # read from under $DATA
        for item in items:
            if dataset is train:  # the tokenizer's own targets: every piece known
                assert UNK_ID not in item["tokens"].tolist(), item["semantics"]
                assert tokenizer.decode(item["tokens"].tolist()) == item["semantics"]
            assert item["semantics"] == parses.canonical(item["semantics"])
        texts = {item["semantics"] for item in items}
        assert "[IN:GET_WEATHER [SL:LOCATION paris ] [SL:DATE_TIME at $5 ] ]" in texts
    rows = read_csv(tmp_path / "data" / "train.csv")
    assert all("/$DATA/" in row["wav"] for row in rows.values())
    assert isinstance(next(iter(rows.values()))["duration"], float)


def test_an_unreadable_csv_is_one_line(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("ID,duration,wav\na,1.0,/x.wav\na,2.0,/y.wav\n")
    with pytest.raises(PrepareError, match="train.csv:3: duplicate ID"):
        read_csv(path)
    path.write_text("ID,duration,wav\na,long,/x.wav\n")
    with pytest.raises(PrepareError, match="train.csv:2: .*duration"):
        read_csv(path)
    path.write_text("duration,wav\n1.0,/x.wav\n")
    with pytest.raises(PrepareError, match="lacks column"):
        read_csv(path)


def test_targets_ctc_cannot_align_are_counted_per_split(mini_release, tmp_path, caplog):
    from conftest import REPO, TINY
    from hyperpyyaml import load_hyperpyyaml

    from stop_slu.recipe_args import parse_recipe_arguments
    from stop_slu.stages import TARGET_LENGTHS, report_target_lengths

    _, _, overrides = parse_recipe_arguments(
        [str(REPO / "hparams" / "mini.yaml"), f"--data_folder={mini_release}", f"--output_folder={tmp_path}", *TINY]
    )
    with open(REPO / "hparams" / "mini.yaml", encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, overrides)
    prepare_data(hparams)
    tokenizer = build_tokenizer(hparams)
    before = report_target_lengths(hparams, tokenizer)["splits"]
    # 40 ms frames (10 ms fbank hop, two stride-2 convolutions)
    assert 24 <= json.loads((tmp_path / TARGET_LENGTHS).read_text())["encoder_frames_per_second"] <= 26

    path = tmp_path / "data" / "train.csv"
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rows[0]["duration"] = "0.1000"  # 2 frames for a target of many tokens
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with caplog.at_level(logging.WARNING):
        after = report_target_lengths(hparams, tokenizer)["splits"]
    counted = "targets_longer_than_encoder_frames"
    assert after["train"][counted] == before["train"][counted] + 1
    assert after["eval"] == before["eval"] and after["test"] == before["test"]
    assert "more tokens than encoder frames" in caplog.text and "target_column" in caplog.text
    saved = json.loads((tmp_path / TARGET_LENGTHS).read_text())
    assert saved["splits"]["train"][counted] == after["train"][counted] and "vocab_size" in saved["what_to_do"]


@pytest.mark.slow  # a CLI subprocess (torch and SpeechBrain imported: seconds)
def test_train_refuses_an_empty_split_in_one_line(mini_release, tmp_path):
    from conftest import run_cli

    release = copy_release(mini_release, tmp_path / "release")
    for wav in release.glob("eval_*/*/*.wav"):
        wav.unlink()
    result = run_cli("train", "mini", f"--data_folder={release}", f"--output_folder={tmp_path / 'out'}", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "eval.csv: the valid split (valid_split: eval) has no rows" in last
    assert not (tmp_path / "out" / "save" / "tokenizer").exists()  # refused before any other work
