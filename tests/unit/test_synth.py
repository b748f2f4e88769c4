"""mini-STOP: the release layout, real eSpeak and Piper audio, the synthesis sidecar, determinism, unseen test text."""

import csv
import hashlib

import pytest
import soundfile as sf
from conftest import run_cli

from stop_slu import parses
from stop_slu.data_prep.release import MANIFEST_COLUMNS, candidate_paths
from stop_slu.data_prep.synth import FAMILIES, SIDECAR, SIDECAR_COLUMNS, synthesize


def read_manifest(root, split):
    with open(root / "manifests" / f"{split}.tsv", encoding="utf-8") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_layout_matches_the_release(mini_release):
    for split, rows_expected in (("train", 80), ("eval", 16), ("test", 16)):
        rows = read_manifest(mini_release, split)
        assert tuple(rows[0]) == MANIFEST_COLUMNS
        assert len(rows) - 1 == rows_expected
        for row in rows[1:]:
            record = dict(zip(rows[0], row))
            file_id = record["file_id"]
            if split == "train":
                assert file_id.startswith("train/") and "_train/" in file_id
                assert (mini_release / file_id).is_file()
            else:
                take, folder, _ = file_id.split("/")
                assert take in (f"{split}_0", f"{split}_1")
                assert folder.endswith(take[-2:])  # manifest folder keeps the take suffix...
                assert not (mini_release / file_id).exists()  # ...the disk does not
                assert candidate_paths(mini_release, file_id)[1].is_file()
            assert parses.decouple(record["normalized_seqlogical"]) == record["decoupled_normalized_seqlogical"]
            assert parses.normalize_text(record["utterance"]) == record["normalized_utterance"]


def test_eval_and_test_are_two_takes_of_unseen_text(mini_release):
    train_text = {r[6] for r in read_manifest(mini_release, "train")[1:]}
    for split in ("eval", "test"):
        rows = read_manifest(mini_release, split)[1:]
        take0 = sorted((r[0].split("/")[-1], r[6]) for r in rows if r[0].startswith(f"{split}_0"))
        take1 = sorted((r[0].split("/")[-1], r[6]) for r in rows if r[0].startswith(f"{split}_1"))
        assert take0 == take1  # same utterances, same file numbers
        assert not train_text & {text for _, text in take0}


def test_audio_is_16k_mono_speech(mini_release):
    wavs = sorted(mini_release.glob("train/*/*.wav"))
    assert len(wavs) == 80
    for wav in wavs[:10]:
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        data, _ = sf.read(str(wav))
        assert 0.3 < len(data) / 16000 < 15
        assert abs(data).max() > 0.05  # not silence


@pytest.mark.slow  # a CLI subprocess (torch and SpeechBrain imported: seconds)
def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    def digest(root):
        h = hashlib.sha256()
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            h.update(str(path.relative_to(root)).encode() + path.read_bytes())
        return h.hexdigest()

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synthesize(a, n_train=12, n_eval=3, n_test=3, seed=11, progress=False)
    synthesize(b, n_train=12, n_eval=3, n_test=3, seed=11, progress=False, workers=1)
    synthesize(c, n_train=12, n_eval=3, n_test=3, seed=12, progress=False)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)
    assert {r["family"] for r in read_sidecar(a).values()} == set(FAMILIES)  # the neural voice is deterministic too


@pytest.mark.slow  # a CLI subprocess (torch and SpeechBrain imported: seconds)
def test_cli_prints_grammar_coverage(tmp_path):
    result = run_cli("synth", tmp_path / "s", "--train", "10", "--valid", "2", "--test", "2", "--quiet")
    line = next(x for x in result.stdout.splitlines() if x.startswith("grammar:"))
    numbers = [int(w) for w in line.replace(",", " ").split() if w.isdigit()]
    domains, intents, slots, values, carriers, depth = numbers
    assert domains == 8 and intents >= 40 and slots >= 40 and values >= 1000
    assert carriers >= 100 and depth >= 2


@pytest.mark.slow  # a CLI subprocess (torch and SpeechBrain imported: seconds)
def test_cli_rejects_unknown_domain(tmp_path):
    result = run_cli("synth", tmp_path / "s", "--domains", "alarm,cooking", check=False)
    assert result.returncode != 0
    assert "cooking" in result.stderr and "Traceback" not in result.stderr


def test_held_out_voices_are_absent_from_training():
    from stop_slu.data_prep import espeak, neural_voice

    assert not set(espeak.HELD_OUT_VARIANTS) & set(espeak.VARIANTS)
    assert not set(neural_voice.HELD_OUT_WARPS) & set(neural_voice.WARPS)


def read_sidecar(root):
    with open(root / "manifests" / SIDECAR, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert tuple(rows[0]) == SIDECAR_COLUMNS
    return {r["file_id"]: r for r in rows}


def test_sidecar_says_how_every_utterance_was_made(mini_release):
    from stop_slu.data_prep import espeak, neural_voice

    sidecar = read_sidecar(mini_release)
    file_ids = [r[0] for split in ("train", "eval", "test") for r in read_manifest(mini_release, split)[1:]]
    assert sorted(sidecar) == sorted(file_ids)
    for split in ("eval", "test"):  # both families speak eval and test, in both takes
        for take in (0, 1):
            rows = [r for fid, r in sidecar.items() if fid.startswith(f"{split}_{take}/")]
            assert {r["family"] for r in rows} == set(FAMILIES)
            for r in rows:
                held_out = r["voice"].split("+")[-1] in espeak.HELD_OUT_VARIANTS or (
                    r["family"] == neural_voice.FAMILY and float(r["voice"][4:]) in neural_voice.HELD_OUT_WARPS
                )
                assert held_out == (take == 1), r
    assert any(r["room"] for r in sidecar.values()) and any(r["noise"] == "babble" for r in sidecar.values())
    for r in sidecar.values():
        if r["noise"] == "babble":  # talkers from the same split: no held-out text in training audio
            split = r["file_id"].split("/")[0].split("_")[0]
            assert {t.split("/")[0].split("_")[0] for t in r["babble_from"].split(",")} == {split}


@pytest.mark.slow  # synthesis in subprocesses, the neural voice included
def test_a_family_left_out_of_training_and_validation_still_speaks_test(tmp_path):
    synthesize(tmp_path, n_train=10, n_eval=3, n_test=3, seed=5, progress=False, train_families=("espeak",))
    sidecar = read_sidecar(tmp_path)
    assert {r["family"] for fid, r in sidecar.items() if fid.startswith("train/")} == {"espeak"}
    assert {r["family"] for fid, r in sidecar.items() if fid.startswith("eval_")} == {"espeak"}  # checkpoint choice
    assert {r["family"] for fid, r in sidecar.items() if fid.startswith("test_")} == set(FAMILIES)
    with pytest.raises(ValueError, match="festival"):
        synthesize(tmp_path / "x", n_train=2, n_eval=1, n_test=1, families=("espeak", "festival"))
