"""Every config through every stage, as users run them: train a few steps
(under bf16 autocast where the config's GPU default is a reduced precision),
killed and resumed; test; export; load from a stand-in for the Hugging Face
Hub (tests/conftest.HubStandIn) into a fresh cache and parse exactly as
`stop-slu parse` parses the training folder; fine-tune.

Each config is shrunk in width and depth only: its attention type, front-end,
augmentation, search and tokenizer kind are its own. Nothing is downloaded:
the SSL encoders, Whisper and the "pretrained" ASR model are tiny random
models saved by the tests. One test per config shares the work of the stages.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import OFFLINE, REPO, checkpoints, held_out_domain, kill_in_epoch_2, manifest, run_cli
from test_train_configs import tiny_pretrained_asr

from stop_slu import parses
from stop_slu.checkpoints import statistics_digest
from stop_slu.inference import export_files

SHRINK = [  # width and depth only
    "--d_model=32",
    "--nhead=2",
    "--d_ffn=64",
    "--num_encoder_layers=1",
    "--num_decoder_layers=1",
    "--cnn_channels=8",
    "--vocab_size=1000",
]
EBRANCHFORMER = ["--encoder_d_ffn=64", "--csgu_linear_units=64"]
RUN = [  # a few steps of 4 utterances, a checkpoint after each, a short search
    "--num_workers=0",
    "--number_of_epochs=2",
    "--dynamic_batching=False",
    "--train_dataloader_opts={batch_size: 4}",
    "--ckpt_interval_minutes=0",
    "--ckpt_interval_steps=1",
    "--test_beam_size=2",
    "--max_decode_ratio=0.05",
    "--avg_checkpoints=2",
]
CONFIGS = {
    "mini": [*SHRINK, *RUN],
    "conformer": [*SHRINK, *RUN],
    "branchformer": [*SHRINK, *RUN],
    "ebranchformer": [*SHRINK, *EBRANCHFORMER, *RUN],
    "ebranchformer_small": [*SHRINK, *EBRANCHFORMER, *RUN],
    "conformer_asr_transfer": [*SHRINK, *RUN],
    "conformer_wavlm": [*SHRINK, *RUN],
    "conformer_hubert": [*SHRINK, *RUN],
    "whisper": [
        "--num_workers=0",
        "--number_of_epochs=2",
        "--batch_size=4",
        "--ckpt_interval_minutes=0",
        "--ckpt_interval_steps=1",
        "--test_beam_size=2",
        "--max_decode_ratio=0.03",
        "--avg_checkpoints=2",
        "--warmup_steps=2",
    ],
}
PARSE = (
    "import json, sys\n"
    "from stop_slu.inference import load_parser\n"
    "out, hub_id, wavs = sys.argv[1], sys.argv[2], sys.argv[3:]\n"
    "print(json.dumps([load_parser(source).parse_files(wavs) for source in (out, hub_id)]))\n"
)


def reduced_precision(config: str) -> bool:
    text = (REPO / "hparams" / f"{config}.yaml").read_text()
    return yaml.safe_load("\n".join(line for line in text.splitlines() if line.startswith("precision:")))[
        "precision"
    ] in ("bf16", "fp16")


def pretrained_options(config, request) -> list[str]:
    """The options naming the tiny local pretrained model a config starts from
    (built only for the configs that need one)."""
    if config == "conformer_asr_transfer":
        asr = request.getfixturevalue("tmp_path") / "asr"
        asr.mkdir()
        tiny_pretrained_asr(asr / "pretrained", asr)
        return [f"--asr_source={asr / 'pretrained'}"]
    if config in ("conformer_wavlm", "conformer_hubert"):
        return [f"--ssl_hub={request.getfixturevalue('tiny_ssl')[config.split('_')[1]]}"]
    if config == "whisper":
        return [f"--whisper_hub={request.getfixturevalue('tiny_whisper')}"]
    return []


def sizes(folder):
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_config_trains_resumes_exports_loads_from_the_hub_and_finetunes(config, request, mini_release, hub, tmp_path):
    domain = held_out_domain(mini_release)  # one domain: a few utterances
    out = tmp_path / "run"
    own = pretrained_options(config, request)
    precision = "--precision=bf16" if reduced_precision(config) else "--precision=fp32"
    command = [sys.executable, "-m", "stop_slu.cli", "train", config, f"--data_folder={mini_release}"]
    command += [f"--output_folder={out}", f"--domains=[{domain}]", precision, *CONFIGS[config], *own]

    # train, killed in its second epoch, resumed where it stopped, tested
    kill_in_epoch_2(command, out, timeout=1200)  # a loaded machine: minutes to epoch 2
    at_kill = checkpoints(out / "save")
    rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    loaded = [line.rsplit("/", 1)[-1] for line in rerun.stdout.splitlines() if "Loading a checkpoint from" in line]
    assert at_kill[loaded[0]] == (False, "2") and "Going into epoch 1" not in rerun.stdout
    scores = json.loads((out / "metrics_test.json").read_text())
    assert scores["n"] == len(manifest(mini_release, "test", domain)) > 0

    # export: each weight once, no path of the training machine
    export = tmp_path / "export"
    run_cli("export", out, export, env=OFFLINE)
    FAMILY_CHECKS.get(config, lambda *_: None)(out, export, mini_release)
    files = sizes(export)
    text = (export / "hyperparams.yaml").read_text()
    for path in (out, *(option.split("=", 1)[1] for option in own)):
        assert str(path) not in text, path
    assert not any("blobs" in name or "snapshots" in name for name in files)
    weights = [name for name in files if name.endswith((".safetensors", ".bin"))]
    assert weights == (["ssl_model/model.safetensors"] if "SSLSeq2Seq" in text else [])
    listed = export_files(export / "hyperparams.yaml")
    assert sorted(listed) == sorted(n for n in files if n not in ("hyperparams.yaml", "README.md", "labels.txt"))

    # loaded by Hub id from the stand-in into a fresh cache, parses as the training folder does
    repo_id = f"stop-slu/{config}"
    hub.serve(repo_id, export)
    wavs = [r["wav"] for r in csv_rows(out / "data" / "test.csv")][-2:]  # the longest: room for a parse
    result = subprocess.run(
        [sys.executable, "-c", PARSE, str(out), repo_id, *wavs],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **hub.env(tmp_path / "hf_home")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from_folder, from_hub = json.loads(result.stdout.strip().splitlines()[-1])
    assert from_hub == from_folder and all("parse" in r for r in from_hub)
    fetched = {path.split("/resolve/main/", 1)[1] for method, path, status in hub.requests if repo_id in path}
    assert fetched == {"hyperparams.yaml", *listed}
    assert all(status == 200 for _, path, status in hub.requests if repo_id in path)

    # fine-tune the trained folder on the same CSVs, offline (the ASR transfer's source is gone)
    if config == "conformer_asr_transfer":
        shutil.rmtree(own[0].split("=", 1)[1])
    tuned = tmp_path / "tuned"
    run_cli(
        "finetune",
        out,
        f"--data_folder={mini_release}",
        f"--prepare_folder={out / 'data'}",
        f"--output_folder={tuned}",
        "--number_of_epochs=1",
        "--optimizer_step_limit=1",
        "--ckpt_interval_minutes=0",
        env=OFFLINE,
    )
    assert json.loads((tuned / "metrics_test.json").read_text())["n"] == scores["n"]
    assert sizes(tuned / "save" / "tokenizer") == sizes(out / "save" / "tokenizer")


def last_checkpoint_state(out):
    return torch.load(sorted((out / "save").glob("CKPT+*"))[-1] / "model.ckpt", weights_only=True)


def check_ssl(out, export, release):
    """Only the layer weights of the SSL front-end train, and checkpoints hold
    no SSL weight (they stay small)."""
    state = last_checkpoint_state(out)
    (layer_weights,) = [v for k, v in state.items() if k.endswith(".weights") and v.ndim == 1]
    assert layer_weights.shape == (3,) and layer_weights.abs().sum() > 0  # 2 layers + CNN output, trained
    assert not any("feature_extractor" in key or "ssl" in key for key in state)


def check_whisper(out, export, release):
    """Whisper's tokenizer grows by the labels, the whole model is fine-tuned
    without a feature normaliser, every test output is a parse, and an export
    without its tokenizer is refused in one line."""
    scores = json.loads((out / "metrics_test.json").read_text())
    assert scores["valid"] == 100.0
    for line in (out / "predictions_test.tsv").read_text().splitlines()[1:]:
        assert parses.is_valid(line.split("\t")[1]), line
    tokenizer = json.loads((out / "save" / "tokenizer" / "tokenizer.json").read_text())
    assert tokenizer["kind"] == "whisper" and (out / "save" / "tokenizer" / "whisper").is_dir()
    vocab = tokenizer["base_vocab_size"] + len(tokenizer["labels"]) + 1  # Whisper's tokens + labels + "]"
    assert f"output_neurons: {vocab}" in (out / "recipe_overrides.yaml").read_text()
    state = last_checkpoint_state(out)
    (embedding,) = [v for k, v in state.items() if k.endswith("decoder.embed_tokens.weight")]
    assert embedding.shape[0] == vocab  # the decoder's vocabulary grew by the labels
    assert any(k.endswith("encoder.conv1.weight") for k in state)  # the encoder is fine-tuned too
    assert not list((out / "save").glob("CKPT+*/normalizer.ckpt"))
    assert (export / "tokenizer" / "whisper").is_dir() and not (export / "normalizer.ckpt").exists()

    broken = out.parent / "broken"  # an export without its tokenizer: one line, no traceback
    shutil.copytree(export, broken)
    (broken / "tokenizer" / "tokenizer.json").unlink()
    wav = next((release / "test_1").rglob("*.wav"))
    result = run_cli("parse", broken, wav, check=False, env=OFFLINE)
    assert result.returncode != 0 and "tokenizer.json" in result.stderr and "Traceback" not in result.stderr


FAMILY_CHECKS = {
    "conformer_wavlm": check_ssl,
    "conformer_hubert": check_ssl,
    "whisper": check_whisper,
}


def csv_rows(path):
    with open(path, encoding="utf-8") as f:
        return sorted(csv.DictReader(f), key=lambda r: float(r["duration"]))


def test_parsing_never_changes_the_model(trained, tmp_path):
    """SLUParser(freeze_params=False), as its docstring offers: parsing leaves
    the feature normaliser's statistics and every weight as they were."""
    from stop_slu.export import export_model
    from stop_slu.inference import SLUParser

    out, _ = trained
    export = export_model(out, tmp_path / "export")
    parser = SLUParser.from_hparams(source=str(export), savedir=tmp_path / "loaded", freeze_params=False)
    parser.mods.train()  # as a fine-tuning loop would leave it
    before = {k: v.clone() for k, v in parser.mods.state_dict().items()}
    stats = statistics_digest(parser.hparams.normalize)
    wavs = [r["wav"] for r in csv_rows(out / "data" / "test.csv")][-3:]
    assert all("parse" in r for r in parser.parse_files(wavs))
    assert statistics_digest(parser.hparams.normalize) == stats
    after = parser.mods.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
