"""`stop-slu finetune`: a trained model adapted to a new domain's CSVs
(recipes/STOP/finetune.py)."""

import json

import torch
from conftest import TINY, complete_domains, run_cli


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
