"""``stop-slu parse`` and SLUParser on the audio users really send: every
accepted file gets a well-formed parse and a confidence, anything else one
line saying why, while the other files of the call are still parsed."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import run_cli

from stop_slu import parses

RATE = 16000


def _wav(path, n_samples, rate=RATE, silence=False):
    noise = np.random.default_rng(n_samples).normal(0, 0.1, n_samples).astype("float32")
    sf.write(path, np.zeros(n_samples, "float32") if silence else noise, rate)
    return path


@pytest.fixture(scope="module")
def parser(trained):
    from stop_slu.inference import SLUParser

    return SLUParser.from_folder(trained[0])


def test_parse_answers_every_file_of_the_call(trained, parser, tmp_path):
    out, _ = trained
    low, high = parser.supported_samples()
    files = {
        "one_sample.wav": _wav(tmp_path / "one_sample.wav", 1),
        "10ms.wav": _wav(tmp_path / "10ms.wav", 160),
        "30ms.wav": _wav(tmp_path / "30ms.wav", 480),
        "50ms.wav": _wav(tmp_path / "50ms.wav", 800),
        "just_short.wav": _wav(tmp_path / "just_short.wav", low - 1),
        "shortest.wav": _wav(tmp_path / "shortest.wav", low),
        "silence_1s.wav": _wav(tmp_path / "silence_1s.wav", RATE, silence=True),
        "8k.wav": _wav(tmp_path / "8k.wav", RATE // 2, rate=8000),
        "too_long.wav": _wav(tmp_path / "too_long.wav", high + RATE, silence=True),
        "not_audio.wav": tmp_path / "not_audio.wav",
    }
    files["not_audio.wav"].write_text("hello")
    result = run_cli("parse", out, *files.values(), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    answered = {json.loads(line)["file"]: json.loads(line) for line in result.stdout.splitlines()}
    errors = {line.split(": ")[1]: line for line in result.stderr.splitlines() if line.startswith("error: ")}
    assert set(answered) | set(errors) == {str(p) for p in files.values()}
    assert not set(answered) & set(errors)
    for name in ("one_sample.wav", "10ms.wav", "just_short.wav"):
        assert "audio too short" in errors[str(files[name])] and "this model parses" in errors[str(files[name])]
    assert "audio too long" in errors[str(files["too_long.wav"])]
    assert (
        "(max_audio_seconds): split it, or raise the limit with `stop-slu parse --max_audio_seconds=SECONDS`"
        in (errors[str(files["too_long.wav"])])
    )
    assert str(files["not_audio.wav"]) in errors
    for name in ("shortest.wav", "silence_1s.wav", "8k.wav"):
        assert str(files[name]) in answered
    for parsed in answered.values():
        assert parses.is_valid(parsed["parse"]), parsed
        assert isinstance(parsed["confidence"], float) and parsed["confidence"] <= 0


@pytest.mark.parametrize("max_decode_ratio", [None, 1.0])  # the tiny model's 0.3, and the configs' own 1.0
def test_the_supported_range_is_the_models_own(trained, parser, max_decode_ratio):
    from stop_slu.inference import SLUParser

    if max_decode_ratio:
        parser = SLUParser.from_folder(trained[0], overrides={"max_decode_ratio": max_decode_ratio})
    low, high = parser.supported_samples()
    assert 1 < low < RATE and high == 60 * RATE  # mini.yaml's max_audio_seconds
    rng = torch.Generator().manual_seed(0)
    for n in range(low, low + 400, 40):  # from the shortest length on: a well-formed parse
        found, confidence = parser.decode_batch(torch.randn(1, n, generator=rng) * 0.1, torch.ones(1))
        assert parses.is_valid(found[0]), (n, found)
        assert confidence[0] <= 0
    with pytest.raises(ValueError, match="too short"):
        parser.parse_batch(torch.zeros(1, low - 1), torch.ones(1))
    with pytest.raises(ValueError, match="too long"):
        parser.parse_batch(torch.zeros(1, high + 1), torch.ones(1))
    # what the model takes at all is its encoder's absolute positions: a second more fails inside the model
    hard, why = parser.architectural_limit()
    assert hard > high and "positional encoding" in why
    assert parser.encode_batch(torch.zeros(1, hard), torch.ones(1)).shape[1] > 0
    with pytest.raises(RuntimeError):
        parser.encode_batch(torch.zeros(1, hard + RATE), torch.ones(1))
    with pytest.raises(ValueError, match="beyond what this model can take"):
        parser.set_max_audio_seconds((hard + RATE) / RATE)


def test_parse_takes_another_limit_within_what_the_model_takes(trained, tmp_path):
    out, _ = trained
    one, two = _wav(tmp_path / "one.wav", RATE), _wav(tmp_path / "two.wav", 2 * RATE)
    result = run_cli("parse", out, one, "--max_audio_seconds=200", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert line.startswith("error: --max_audio_seconds: max_audio_seconds=200.0: beyond what this model can take")
    result = run_cli("parse", out, one, two, "--max_audio_seconds=1.5", check=False)
    assert result.returncode == 1
    assert parses.is_valid(json.loads(result.stdout)["parse"])  # one.wav
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert line.startswith(f"error: {two}: audio too long (2.0 s); this model parses ") and " to 1.5 s " in line


def test_the_python_interface_gives_confidences_and_reasons(parser, tmp_path):
    low, _ = parser.supported_samples()
    good, short = _wav(tmp_path / "good.wav", 2 * low), _wav(tmp_path / "short.wav", low // 2)
    first, second = parser.parse_files([good, short])
    assert parses.is_valid(first["parse"]) and first["confidence"] <= 0
    assert second["file"] == str(short) and "audio too short" in second["error"]
    with pytest.raises(ValueError, match="audio too short"):
        parser.parse_file(short)


def test_parse_tsv_feeds_score(trained, prepared, tmp_path):
    """parse --tsv --csv: one ID<TAB>parse line per utterance of the CSV, with
    its IDs, which score reads against the same CSV; file-name IDs that clash
    are refused, naming them."""
    from stop_slu.data_prep.rows import read_csv

    test_csv = prepared[0] / "test.csv"
    rows = read_csv(test_csv)
    result = run_cli("parse", trained[0], "--csv", test_csv, "--tsv")
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert [uid for uid, _ in lines] == list(rows)
    assert all(parses.is_valid(parse) for _, parse in lines)
    (tmp_path / "hyp.tsv").write_text(result.stdout)
    scores = json.loads(run_cli("score", test_csv, tmp_path / "hyp.tsv").stdout)
    assert (scores["n"], scores["ref_without_hyp"], scores["hyp_not_in_ref"]) == (len(rows), 0, 0)

    wavs = [rows[uid]["wav"] for uid in rows]  # STOP's file names repeat across domains
    clash = run_cli("parse", trained[0], *wavs, "--tsv", check=False)
    assert clash.returncode != 0 and "Traceback" not in clash.stderr
    assert "given by two files of the same name (00000001: " in clash.stderr and "--csv" in clash.stderr
    one = run_cli("parse", trained[0], wavs[0], "--tsv")
    assert one.stdout.split("\t")[0] == Path(wavs[0]).stem


def test_a_clip_parses_the_same_alone_and_in_a_padded_batch(trained, parser):
    """Batching is an implementation detail: each utterance of a padded batch
    is encoded as if alone, keeps its own step limit and ends its hypotheses
    where a search of it alone ends them, so every parse and confidence is the
    one it gets alone; the greedy search (validation) keeps per-utterance
    limits too."""
    import csv

    out, _ = trained
    with open(out / "data" / "test.csv", encoding="utf-8") as f:
        wavs = [row["wav"] for row in sorted(csv.DictReader(f), key=lambda r: float(r["duration"]))]
    wavs = wavs[:: max(1, len(wavs) // 8)][:8]  # short to long: the longest pads the others
    assert len(wavs) == 8
    alone = [parser.parse_files([wav])[0] for wav in wavs]
    batched = parser.parse_files(wavs, batch_size=len(wavs))
    assert [r["parse"] for r in batched] == [r["parse"] for r in alone]
    assert [r["confidence"] for r in batched] == pytest.approx([r["confidence"] for r in alone], abs=1e-3)

    greedy = parser.hparams.valid_search  # the validation's search, on the same encoder
    with torch.no_grad():
        together = greedy(*parser.encode_each(*parser.load_batch(wavs)))[0]
        each = [greedy(parser.encode_batch(*parser.load_batch([w])), torch.ones(1))[0][0] for w in wavs]
    assert together == each
