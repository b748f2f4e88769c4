"""The literature's settings, each through the real CLI: low-resource and domain
splits (`prepare --low-resource/--domains`), fine-tuning a trained model on a
new domain (`finetune`), and the SSL front-ends (a tiny randomly initialised
WavLM and HuBERT saved in the test: nothing is downloaded)."""

import csv
import json

import pytest
import soundfile as sf
import torch
from conftest import REPO, TINY, run_cli

from stop_slu.data_prep.release import DOMAINS, candidate_paths

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def read_csv(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def manifest(release, split, domain):
    with open(release / "manifests" / f"{split}.tsv", encoding="utf-8") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [row for row in rows if row["domain"] == domain]


def complete_domains(release):
    """Domains with rows in train, eval and test (a small mini-STOP lacks some)."""
    return [
        d
        for d in dict.fromkeys(("reminder", "weather", *DOMAINS))
        if all(manifest(release, split, d) for split in ("train", "eval", "test"))
    ]


def held_out_domain(release):
    """Reminder as in STOP's low-resource splits, else the first complete domain."""
    return complete_domains(release)[0]


def write_low_resource_files(release, folder, domain):
    """STOP-style low-resource files for one domain of a mini-STOP: a foreign
    root folder on line 1, then ``path<TAB>num_samples``; the train file repeats
    two lines and has one unknown and one malformed line, the valid file names
    the folders as the disk does (no take suffix)."""
    folder.mkdir()

    def line(file_id, path_as_written):
        disk = next(p for p in candidate_paths(release, file_id) if p.is_file())
        return f"{path_as_written}\t{sf.info(disk).frames}"

    train = [line(r["file_id"], r["file_id"]) for r in manifest(release, "train", domain)]
    valid = [
        line(
            r["file_id"],
            str(next(p for p in candidate_paths(release, r["file_id"]) if p.is_file()).relative_to(release)),
        )
        for r in manifest(release, "eval", domain)
    ]
    test = [line(r["file_id"], r["file_id"]) for r in manifest(release, "test", domain)]
    files = {
        "train_25spis": train + train[:2] + [f"train/{domain}_train/09999999.wav\t16000", "not a line"],
        "valid_25spis": valid,
        "test": test,
    }
    for name, lines in files.items():
        (folder / f"{domain}_{name}.tsv").write_text("/private/home/someone/stop\n" + "\n".join(lines) + "\n")
        (folder / f"{domain}_{name}.ltr").write_text("ignored: not a manifest\n")
    return {"train": len(train), "valid": len(valid), "test": len(test)}


@pytest.fixture(scope="module")
def low_resource(mini_release, tmp_path_factory):
    """(prepared folder, held-out domain, expected counts, CompletedProcess) of
    `stop-slu prepare --domains <held-in> --low-resource <held-out domain's files>`."""
    tmp = tmp_path_factory.mktemp("low_resource")
    domain = held_out_domain(mini_release)
    expected = write_low_resource_files(mini_release, tmp / "low_resource_splits", domain)
    held_in = ",".join(d for d in DOMAINS if d != domain)
    result = run_cli(
        "prepare",
        mini_release,
        tmp / "prepared",
        "--domains",
        held_in,
        "--low-resource",
        tmp / "low_resource_splits",
        "--quiet",
    )
    return tmp / "prepared", domain, expected, result


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


def test_finetune_starts_from_the_trained_model_and_keeps_its_tokenizer(low_resource, mini_release, tmp_path):
    save, domain, expected, _ = low_resource
    source = tmp_path / "held_in"  # a tiny model of two other domains, 2 checkpoints averaged
    others = [d for d in complete_domains(mini_release) if d != domain][:2]
    run_cli(
        "train",
        "mini",
        f"--data_folder={mini_release}",
        f"--output_folder={source}",
        f"--domains=[{','.join(others)}]",
        "--number_of_epochs=2",
        *TINY,
    )
    out = tmp_path / domain
    run_cli(  # lr 0: the fine-tuned weights stay exactly where they started
        "finetune",
        source,
        f"--data_folder={mini_release}",
        f"--prepare_folder={save}",
        f"--train_split={domain}_train_25spis",
        f"--valid_split={domain}_valid_25spis",
        f"--test_split={domain}_test",
        f"--output_folder={out}",
        "--number_of_epochs=1",
        "--lr_adam=0.0",
    )
    from stop_slu.inference import SLUParser

    start = SLUParser.from_folder(source).hparams["model"].state_dict()  # the source's averaged weights
    (checkpoint,) = (out / "save").glob("CKPT+*")
    tuned = torch.load(checkpoint / "model.ckpt", weights_only=True)
    assert tuned.keys() == start.keys() and all(torch.equal(tuned[k], start[k]) for k in start)
    for name in ("tokenizer.model", "tokenizer.json"):
        assert (out / "save" / "tokenizer" / name).read_bytes() == (source / "save" / "tokenizer" / name).read_bytes()
    assert json.loads((out / "metrics_test.json").read_text())["n"] == expected["test"]
    assert "skip_prep: true" in (out / "recipe_overrides.yaml").read_text()  # hparams/finetune.yaml applied


def test_finetune_refuses_a_folder_that_is_not_a_model(tmp_path):
    result = run_cli("finetune", tmp_path, f"--data_folder={tmp_path}", check=False)
    assert result.returncode != 0 and "not a trained model folder" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def tiny_ssl(tmp_path_factory):
    """Folders of a tiny randomly initialised WavLM and HuBERT, saved like hub models."""
    transformers = pytest.importorskip("transformers", reason="the SSL configs need the ssl extra (transformers)")
    folders = {}
    for name, config, model in (("wavlm", "WavLMConfig", "WavLMModel"), ("hubert", "HubertConfig", "HubertModel")):
        cfg = getattr(transformers, config)(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            conv_dim=(32,) * 7,
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2,
        )
        folder = tmp_path_factory.mktemp(f"tiny_{name}")
        torch.manual_seed(0)
        getattr(transformers, model)(cfg).save_pretrained(folder)
        transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(folder)
        folders[name] = folder
    return folders


def build_ssl_config(name, ssl_folder, tmp_path):
    from hyperpyyaml import load_hyperpyyaml

    with open(REPO / "hparams" / f"conformer_{name}.yaml", encoding="utf-8") as f:
        return load_hyperpyyaml(
            f,
            {
                "data_folder": str(tmp_path),
                "output_folder": str(tmp_path / "out"),
                "output_neurons": 50,
                "ssl_hub": str(ssl_folder),
                "d_model": 32,
                "nhead": 2,
                "d_ffn": 64,
                "num_encoder_layers": 1,
                "num_decoder_layers": 1,
            },
        )


@pytest.mark.parametrize("name", ["wavlm", "hubert"])
def test_ssl_front_end_only_layer_weights_train(name, tiny_ssl, tmp_path, monkeypatch):
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    hparams = build_ssl_config(name, tiny_ssl[name], tmp_path)
    front = hparams["compute_features"]
    front.train()
    assert front.training and not front.ssl_model.training  # no dropout or layer drop in frozen features
    assert [p.shape for p in front.parameters() if p.requires_grad] == [torch.Size([3])]  # 2 layers + CNN output
    ssl_params = {id(p) for p in front.ssl_model.parameters()}
    assert not ssl_params & {id(p) for p in hparams["model"].parameters()}  # checkpoints stay small
    feats = front(torch.randn(2, 16000), torch.tensor([1.0, 0.6]))
    assert feats.shape[0] == 2 and feats.shape[-1] == 32 and feats.requires_grad


@pytest.mark.parametrize("name", ["wavlm", "hubert"])
def test_ssl_config_trains_through_the_recipe_and_parses(name, tiny_ssl, mini_release, tmp_path):
    out = tmp_path / name
    domain = held_out_domain(mini_release)  # one domain: a few utterances, a few steps
    run_cli(
        "train",
        REPO / "hparams" / f"conformer_{name}.yaml",
        f"--data_folder={mini_release}",
        f"--output_folder={out}",
        f"--ssl_hub={tiny_ssl[name]}",
        "--number_of_epochs=1",
        f"--domains=[{domain}]",
        "--precision=fp32",
        "--num_workers=0",
        "--cnn_channels=8",
        *TINY,
        env=OFFLINE,
    )
    assert json.loads((out / "metrics_test.json").read_text())["n"] == len(manifest(mini_release, "test", domain))
    (checkpoint,) = (out / "save").glob("CKPT+*")
    state = torch.load(checkpoint / "model.ckpt", weights_only=True)
    layer_weights = state["4.weights"]  # model: [CNN, Transformer, seq_lin, ctc_lin, layer_sum]
    assert layer_weights.shape == (3,) and layer_weights.abs().sum() > 0  # trained away from the start
    assert not any("feature_extractor" in key or "ssl" in key for key in state)

    if name == "wavlm":  # the output folder parses offline (the same code for HuBERT)
        wav = next((mini_release / "test_1").rglob("*.wav"))
        parsed = json.loads(run_cli("parse", out, wav, env=OFFLINE).stdout.strip().splitlines()[-1])
        assert parsed["file"] == str(wav) and set(parsed) == {"file", "parse", "intent", "slots", "confidence"}
