"""``stop-slu export --onnx [--int8]`` on a tiny trained model: the torch-free
runtime (runtime/, ``stop_slu_runtime``) parses as the PyTorch parser does,
``stop-slu parse``, ``evaluate`` and ``serve`` take the export, and the runtime installs and parses in a
virtual environment without PyTorch."""

import http.client
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, run_cli, start_server
from stop_slu_runtime import OnnxParser


@pytest.fixture(scope="module")
def exports(trained, tmp_path_factory):
    out, _ = trained
    tmp = tmp_path_factory.mktemp("onnx")
    run_cli("export", out, tmp / "fp32", "--onnx")
    run_cli("export", out, tmp / "int8", "--onnx", "--int8")
    return out, tmp / "fp32", tmp / "int8"


@pytest.fixture(scope="module")
def test_wavs(mini_release):
    return sorted(str(p) for p in (mini_release / "test_0").rglob("*.wav"))


@pytest.fixture(scope="module")
def pytorch_results(exports, test_wavs):
    from stop_slu.inference import SLUParser

    # one utterance at a time, as the runtime parses
    return SLUParser.from_folder(exports[0]).parse_files(test_wavs, batch_size=1)


def test_fp32_export_parses_as_pytorch(exports, test_wavs, pytorch_results):
    got = OnnxParser(exports[1]).parse_files(test_wavs)
    assert len(got) == len(pytorch_results) >= 8
    for ours, theirs in zip(got, pytorch_results):
        assert {k: v for k, v in ours.items() if k != "confidence"} == {
            k: v for k, v in theirs.items() if k != "confidence"
        }
        assert ours["confidence"] == pytest.approx(theirs["confidence"], abs=2e-3)
    card = (exports[1] / "README.md").read_text()
    assert "| PyTorch (stop-slu parse) |" in card and "Same parse as PyTorch:" in card


def test_int8_export_keeps_the_interface_and_stays_near_fp32(exports, test_wavs):
    fp32, int8 = OnnxParser(exports[1]), OnnxParser(exports[2])
    size = lambda folder: sum((folder / n).stat().st_size for n in ("encoder.onnx", "decoder_step.onnx"))  # noqa: E731
    assert size(exports[2]) < 0.9 * size(exports[1])
    for name in ("encoder", "decoder"):
        a, b = getattr(fp32, name), getattr(int8, name)
        assert [(i.name, i.type) for i in a.get_inputs()] == [(i.name, i.type) for i in b.get_inputs()]
        assert [o.name for o in a.get_outputs()] == [o.name for o in b.get_outputs()]
    wav = fp32.load_audio(test_wavs[0])
    ctc32, ctc8 = fp32.encode(wav)[0], int8.encode(wav)[0]
    assert np.abs(np.exp(ctc32) - np.exp(ctc8)).sum(axis=-1).mean() < 0.1  # posteriors, L1 per frame
    import onnx

    graph = onnx.load(exports[2] / "decoder_step.onnx").graph
    tables = {t.name: t.data_type for t in graph.initializer}
    gathered = [tables[n.input[0]] for n in graph.node if n.op_type == "Gather" and n.input[0] in tables]
    assert gathered and set(gathered) <= {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}  # the token embedding too
    encoder = onnx.load(exports[2] / "encoder.onnx").graph
    assert not [n.name for n in encoder.node if n.op_type == "Conv"]  # the front-end's convolutions too (ConvInteger)
    results = int8.parse_files(test_wavs)
    assert all(set(r) == {"file", "parse", "intent", "slots", "confidence"} for r in results)
    assert all(r["intent"] for r in results)  # the tree constraint holds: well-formed parses


def test_stop_slu_parse_takes_an_onnx_export(exports, test_wavs, tmp_path):
    short, missing = tmp_path / "short.wav", tmp_path / "missing.wav"
    sf.write(short, np.zeros(800, dtype=np.float32), 16000)
    result = run_cli("parse", exports[1], *test_wavs[:3], short, missing, check=False)
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == OnnxParser(exports[1]).parse_files(test_wavs[:3])
    too_short, not_there = result.stderr.strip().splitlines()
    assert too_short.startswith(f"error: {short}: audio too short (50.0 ms); this model parses ")
    assert not_there == f"error: {missing}: missing file"  # as stop-slu parse says with a PyTorch model
    assert "Traceback" not in result.stderr


def test_stop_slu_evaluate_takes_an_onnx_export(exports, mini_release, tmp_path):
    """evaluate runs an ONNX export as the training run: the rows the recipe's
    test stage wrote; --beam_size changes its search; overrides and a GPU,
    which an export cannot take, are one line each."""
    from stop_slu.report import read_predictions

    rows = lambda path: [tuple(r.values()) for r in read_predictions(path)]  # noqa: E731
    model, fp32, _ = exports
    result = run_cli("evaluate", fp32, mini_release, "--out", tmp_path / "eval", "--quiet")
    assert "test: EM" in result.stdout and f"search: beam {OnnxParser(fp32).search.beam_size}," in result.stdout
    assert rows(tmp_path / "eval" / "predictions_test.tsv") == rows(model / "predictions_test.tsv")
    test_csv = tmp_path / "eval" / "data" / "test.csv"
    result = run_cli("evaluate", fp32, test_csv, "--out", tmp_path / "beam1", "--beam_size", 1, "--quiet")
    assert "search: beam 1," in result.stdout
    report = (tmp_path / "beam1" / "report.md").read_text()  # says what was evaluated
    assert f"Evaluated: model `{fp32}`; beam 1, max decode ratio " in report and f"data `{test_csv}`" in report
    for option, reason in [
        (("--override", "test_beam_size=3"), "overrides (test_beam_size) do not apply"),
        (("--device", "cuda"), "--device"),
    ]:
        refused = run_cli("evaluate", fp32, test_csv, "--out", tmp_path / "x", *option, check=False)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        assert line.startswith("error: ") and reason in line


def test_stop_slu_serve_takes_an_onnx_export(exports, test_wavs, tmp_path):
    """The service and its page's /v1/model with an ONNX export: what the
    runtime parses, its labels and search; an 8 kHz stereo upload is read as
    with a PyTorch model (resampled, down-mixed), not refused."""
    from stop_slu.data_prep.audio import load_audio

    runtime = OnnxParser(exports[1])
    mono, _ = sf.read(test_wavs[0], dtype="float32")
    stereo_8k = tmp_path / "stereo_8k.wav"
    sf.write(stereo_8k, np.stack([mono[::2], 0.5 * mono[::2]], axis=1), 8000)
    server = start_server(exports[1])
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        for path, expected in [
            (test_wavs[0], runtime.parse_files(test_wavs[:1])[0]["parse"]),
            (stereo_8k, runtime.decode_waveform(load_audio(stereo_8k, 16000))[0]),
        ]:
            connection.request("POST", "/v1/parse", Path(path).read_bytes(), {"Content-Type": "audio/wav"})
            response = connection.getresponse()
            answer = json.loads(response.read())
            assert response.status == 200 and answer["parse"] == expected, (path, answer)
        connection.request("GET", "/v1/model")
        model = json.loads(connection.getresponse().read())
        assert model["config"]["sample_rate"] == 16000 and model["config"]["beam_size"] == runtime.search.beam_size
        assert model["labels"]["intents"] and model["labels"]["slots"]
        assert model["limits"]["shortest_seconds"] > 0
    finally:
        server.stop()


def test_int8_without_onnx_is_refused_in_one_line(exports, tmp_path):
    result = run_cli("export", exports[0], tmp_path / "x", "--int8", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: --int8: quantises the ONNX export only; add --onnx"


def test_whisper_export_is_refused_saying_why(tiny_whisper, tmp_path):
    from hyperpyyaml import load_hyperpyyaml

    from stop_slu.onnx_export import OnnxExportError, check_exportable

    with open(REPO / "hparams" / "whisper.yaml", encoding="utf-8") as f:
        hp = load_hyperpyyaml(
            f, {"data_folder": str(tmp_path), "output_folder": str(tmp_path), "whisper_hub": str(tiny_whisper)}
        )
    with pytest.raises(OnnxExportError, match="Whisper config: .*parse it with PyTorch"):
        check_exportable(hp)


def test_runtime_installs_without_torch_and_parses_the_same(exports, test_wavs, tmp_path):
    """A fresh virtual environment with only the runtime and its four
    dependencies (from PyPI; pip's wheel cache keeps reruns quick)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(REPO / "runtime")]
    subprocess.run(install, check=True, timeout=900, env={**os.environ, "PIP_NO_INPUT": "1"})
    freeze = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True, check=True).stdout
    names = {line.split("==")[0].split(" @ ")[0].lower() for line in freeze.splitlines()}
    assert {"onnxruntime", "numpy", "sentencepiece", "soundfile", "stop-slu-runtime"} <= names
    assert not any(n.startswith(("torch", "speechbrain")) for n in names)
    no_torch = subprocess.run([str(python), "-c", "import torch"], capture_output=True, text=True)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr
    parsed = subprocess.run(
        [str(venv / "bin" / "stop-slu-runtime"), str(exports[1]), *test_wavs],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert [json.loads(line) for line in parsed.stdout.splitlines()] == OnnxParser(exports[1]).parse_files(test_wavs)


def test_per_utterance_normalisation_exports_and_parses_as_pytorch(trained, test_wavs, tmp_path):
    """A config that normalises each utterance by its own statistics
    (``--normalize={norm_type: sentence}``) exports, and the runtime's front-end
    computes the statistics as SpeechBrain does: the same parses. The tiny
    model's folder with that override added to its training overrides (the
    weights stay; parity needs the same model on both sides, not a good one)."""
    import yaml

    from stop_slu.inference import RECIPE_OVERRIDES, SLUParser

    run = tmp_path / "run"
    shutil.copytree(trained[0], run, symlinks=True)
    overrides = yaml.safe_load((run / RECIPE_OVERRIDES).read_text())
    (run / RECIPE_OVERRIDES).write_text(yaml.safe_dump({**overrides, "normalize": {"norm_type": "sentence"}}))
    run_cli("export", run, tmp_path / "onnx", "--onnx")
    runtime = OnnxParser(tmp_path / "onnx")
    assert runtime.frontend.norm_type == "sentence"
    got = runtime.parse_files(test_wavs)
    expected = SLUParser.from_folder(run).parse_files(test_wavs, batch_size=1)
    assert len(got) == len(expected) >= 8
    for ours, theirs in zip(got, expected):
        assert {k: v for k, v in ours.items() if k != "confidence"} == {
            k: v for k, v in theirs.items() if k != "confidence"
        }
        assert ours["confidence"] == pytest.approx(theirs["confidence"], abs=2e-3)


@pytest.mark.parametrize(
    "replace, drop, reason",
    [
        ({"norm_type": np.str_("batch")}, None, "norm_type 'batch', expected one of global, sentence"),
        ({}, "mean", "no 'mean' constant; export the model again"),
    ],
    ids=["unknown-normalisation", "missing-constant"],
)
def test_a_front_end_the_runtime_cannot_compute_is_one_line(exports, test_wavs, tmp_path, replace, drop, reason):
    """frontend.npz naming a normalisation the runtime does not compute, or
    lacking a constant: one ``error:`` line naming the file, exit status 2."""
    export = tmp_path / "export"
    shutil.copytree(exports[1], export)
    constants = {**dict(np.load(export / "frontend.npz")), **replace}
    constants.pop(drop, None)
    np.savez(export / "frontend.npz", **constants)
    result = subprocess.run(
        [sys.executable, "-m", "stop_slu_runtime", str(export), test_wavs[0]], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {export / 'frontend.npz'}: {reason}"
