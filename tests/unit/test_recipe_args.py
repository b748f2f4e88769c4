"""The recipe's command line (stop_slu.recipe_args.parse_recipe_arguments): every
override, nested or not, is checked against the config before any work, and a
wrong one is refused in one line naming the nearest valid key."""

import pytest
from conftest import REPO, run_cli

from stop_slu.recipe_args import OverrideError, parse_recipe_arguments

MINI = str(REPO / "hparams" / "mini.yaml")


def test_valid_overrides_pass_nested_ones_included():
    _, run_opts, overrides = parse_recipe_arguments(
        [
            MINI,
            "--data_folder=/data/$STOP/stop",
            "--lr_adam=1e-3",
            "--dynamic_batch_sampler_train={max_batch_length: 300, num_buckets: 10}",
            "--train_dataloader_opts={batch_size: 4, pin_memory: True}",  # a DataLoader argument the config lacks
            "--compute_features={n_mels: 40, hop_length: 20}",  # an argument of the !new: class
            "--device=cpu",
        ]
    )
    assert overrides["dynamic_batch_sampler_train"] == {"max_batch_length": 300, "num_buckets": 10}
    assert overrides["lr_adam"] == 1e-3 and run_opts["device"] == "cpu"


@pytest.mark.parametrize(
    "override, named, nearest",
    [
        ("--number_of_epoch=5", "number_of_epoch", "number_of_epochs"),
        ("--dynamic_batch_sampler_train={max_batch_lenght: 300}", "max_batch_lenght", "max_batch_length"),
        ("--train_dataloader_opts={batch_sise: 4}", "batch_sise", "batch_size"),
        ("--compute_features={n_mel: 40}", "n_mel", "n_mels"),
        ("--scorer={weights: {ctc: 0.3, treeconstrant: 1.0}}", "treeconstrant", "treeconstraint"),
    ],
)
def test_a_wrong_key_is_refused_naming_the_nearest(override, named, nearest):
    with pytest.raises(OverrideError) as error:
        parse_recipe_arguments([MINI, "--data_folder=x", override])
    message = str(error.value)
    assert named in message and f"did you mean {nearest}?" in message and "\n" not in message


def test_an_unreadable_value_is_refused_in_one_line():
    with pytest.raises(OverrideError, match="dynamic_batch_sampler_train") as error:
        parse_recipe_arguments([MINI, "--dynamic_batch_sampler_train={max_batch_length: 300"])
    assert "\n" not in str(error.value)


def test_run_options_are_read_as_their_declared_type():
    # SpeechBrain's own parser leaves --optimizer_step_limit as text, and its
    # Brain then stops mid-run comparing a number with a string.
    for form in (["--optimizer_step_limit=5"], ["--optimizer_step_limit", "5"]):
        _, run_opts, _ = parse_recipe_arguments([MINI, "--data_folder=x", *form])
        assert run_opts["optimizer_step_limit"] == 5 and isinstance(run_opts["optimizer_step_limit"], int)
    with pytest.raises(OverrideError, match=r"^--optimizer_step_limit=five: not an integer$"):
        parse_recipe_arguments([MINI, "--optimizer_step_limit=five"])


def _fake_model_folder(folder):
    (folder / "save" / "tokenizer").mkdir(parents=True)
    (folder / "save" / "CKPT+2026-01-01+00-00-00+00").mkdir()
    (folder / "save" / "tokenizer" / "tokenizer.model").write_text("")
    (folder / "recipe.yaml").write_text((REPO / "hparams" / "mini.yaml").read_text())
    return folder


@pytest.mark.slow  # a CLI subprocess (torch and SpeechBrain imported: seconds)
def test_train_finetune_and_sagemaker_refuse_before_any_work(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    typo = "--dynamic_batch_sampler_train={max_batch_lenght: 300}"
    commands = {
        "train": ["train", "mini", f"--data_folder={data}", f"--output_folder={out}", typo],
        "train top-level": ["train", "mini", f"--data_folder={data}", f"--output_folder={out}", "--number_of_epoch=5"],
        "finetune": ["finetune", _fake_model_folder(tmp_path / "model"), f"--data_folder={data}", typo],
        "sagemaker": [
            "sagemaker",
            "mini",
            "--data",
            "s3://bucket/stop/",
            "--output",
            "s3://bucket/out/",
            "--dry-run",
            typo,
        ],
    }
    for name, command in commands.items():
        result = run_cli(*command, check=False)
        assert result.returncode != 0, name
        assert "Traceback" not in result.stderr, (name, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and "did you mean" in lines[0], (name, lines)
    assert not out.exists()  # nothing prepared, no tokenizer trained


no_gpu = pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks a machine without a GPU")


@no_gpu
@pytest.mark.parametrize(
    "options, named",
    [
        (["--device=cuda"], "--device=cuda: no GPU is visible here"),
        (["--device=cuda:1"], "--device=cuda:1: no GPU is visible here"),
        (["--precision=fp16"], "--precision=fp16: half precision needs a GPU"),
        (["--device=cpu", "--eval_precision=fp16"], "--eval_precision=fp16: half precision needs a GPU"),
        (["--precision=fp16", "--device=cpu", "--distributed_backend=gloo"], "pass --precision=bf16"),
    ],
)
@pytest.mark.slow  # a CLI subprocess (torch and SpeechBrain imported: seconds)
def test_run_options_that_cannot_work_here_are_refused_before_any_work(tmp_path, options, named):
    out = tmp_path / "out"
    result = run_cli("train", "mini", f"--data_folder={tmp_path}", f"--output_folder={out}", *options, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], lines
    assert not out.exists()


@no_gpu
def test_torchrun_without_a_gpu_falls_back_to_the_cpu_and_gloo(monkeypatch):
    import socket

    import speechbrain as sb
    import torch

    from stop_slu.recipe_args import fit_run_options

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    torchrun = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"}
    for name, value in {**torchrun, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(name, value)
    hparams_file, run_opts, overrides = parse_recipe_arguments([MINI, "--data_folder=x"])
    with pytest.raises(ValueError, match="Not enough GPUs"):  # SpeechBrain's own start, as it was
        sb.utils.distributed.ddp_init_group(run_opts)
    run_opts, notes = fit_run_options(run_opts, hparams_file, overrides)
    assert (run_opts["distributed_backend"], run_opts["device"]) == ("gloo", "cpu")
    assert notes == [
        "torchrun without a GPU: the 1 process trains on the CPU with the gloo backend "
        "(as with --distributed_backend=gloo --device=cpu)"
    ]
    sb.utils.distributed.ddp_init_group(run_opts)  # a real process group on the CPU
    try:
        assert torch.distributed.get_backend() == "gloo"
    finally:
        torch.distributed.destroy_process_group()
