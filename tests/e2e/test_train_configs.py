"""The E-Branchformer, ASR-transfer and waveform-augmentation configs, each
trained through the real CLI on a mini-STOP with tiny sizes (nothing is
downloaded: the "pretrained" ASR model is a tiny one saved in the test)."""

import json
import re

import torch
from conftest import REPO, TINY, run_cli
from hyperpyyaml import load_hyperpyyaml

CPU = ["--precision=fp32", "--num_workers=0", "--cnn_channels=8"]


def train_losses(out):
    log = (out / "train_log.txt").read_text()
    return [float(x) for x in re.findall(r"train loss: ([0-9.e+-]+)", log)]


def test_ebranchformer_small_trains_and_parses(mini_release, tmp_path):
    out = tmp_path / "ebf"
    run_cli(
        "train",
        "ebranchformer_small",
        f"--data_folder={mini_release}",
        f"--output_folder={out}",
        "--number_of_epochs=4",
        "--dynamic_batching=False",  # batches of 16: 5 steps per epoch
        "--warmup_steps=10",
        "--lr_adam=2e-3",
        "--encoder_d_ffn=64",
        "--csgu_linear_units=64",
        *CPU,
        *TINY,
    )
    losses = train_losses(out)
    assert len(losses) == 4 and losses[-1] < losses[0]  # the loss goes down over 20 steps
    from stop_slu.inference import SLUParser

    parser = SLUParser.from_folder(out)
    assert type(parser.hparams["Transformer"].encoder).__name__ == "EBranchformerEncoder"
    wav = next((mini_release / "test_1").rglob("*.wav"))
    parsed = json.loads(run_cli("parse", out, wav).stdout.strip().splitlines()[-1])
    assert parsed["file"] == str(wav) and parsed["parse"].startswith("[IN:")


def tiny_pretrained_asr(folder, tmp_path):
    """A tiny conformer ASR model of the transfer config's architecture with its
    own 60-piece vocabulary, saved as SpeechBrain's hub models are."""
    with open(REPO / "hparams" / "conformer_asr_transfer.yaml", encoding="utf-8") as f:
        sizes = {k.lstrip("-").split("=")[0]: int(k.split("=")[1]) for k in TINY[:5]}
        hparams = load_hyperpyyaml(
            f,
            {
                "data_folder": str(tmp_path),
                "output_folder": str(tmp_path / "asr"),
                "output_neurons": 60,
                "cnn_channels": 8,
                **sizes,
            },
        )
    torch.manual_seed(5)
    for p in hparams["model"].parameters():  # weights unlike any fresh initialisation
        p.data.uniform_(-0.1, 0.1)
    normalize = hparams["normalize"].train()
    normalize(torch.randn(4, 50, 80) + 1, torch.ones(4))
    folder.mkdir()
    torch.save(hparams["model"].state_dict(), folder / "asr.ckpt")
    normalize._save(folder / "normalizer.ckpt")
    return hparams["model"].state_dict()


def test_asr_transfer_config_starts_from_the_pretrained_weights(mini_release, tmp_path):
    source = tiny_pretrained_asr(tmp_path / "pretrained", tmp_path)
    out = tmp_path / "transfer"
    run_cli(
        "train",
        "conformer_asr_transfer",
        f"--data_folder={mini_release}",
        f"--output_folder={out}",
        f"--asr_source={tmp_path / 'pretrained'}",
        "--number_of_epochs=1",
        "--lr_adam=0.0",  # the weights stay where the transfer put them
        *CPU,
        *TINY,
    )
    (checkpoint,) = (out / "save").glob("CKPT+*")
    state = torch.load(checkpoint / "model.ckpt", weights_only=True)
    encoder = [k for k in state if k.startswith(("0.", "1.encoder.", "1.decoder."))]
    assert encoder and all(torch.equal(state[k], source[k]) for k in encoder)
    assert state["2.w.weight"].shape != source["2.w.weight"].shape  # the parse vocabulary's output layer
    report = json.loads((out / "save" / "asr_pretrained" / "transfer_report.json").read_text())
    assert set(encoder) <= set(report["loaded"]) and "2.w.weight" in report["shape_mismatch"]
    assert json.loads((out / "metrics_test.json").read_text())["n"] > 0


def test_asr_transfer_from_a_missing_folder_is_one_line(mini_release, tmp_path):
    result = run_cli(
        "train",
        "conformer_asr_transfer",
        f"--data_folder={mini_release}",
        f"--output_folder={tmp_path / 'out'}",
        f"--asr_source={tmp_path / 'nowhere'}",
        *CPU,
        *TINY,
        check=False,
    )
    assert result.returncode != 0 and "cannot fetch the pretrained model" in result.stderr
    assert "Traceback" not in result.stderr


def noise_csv(release, tmp_path):
    """A noise CSV in SpeechBrain's format, written by SpeechBrain's own writer,
    over a few eSpeak wavs of the mini-STOP (babble-like noise)."""
    from speechbrain.augment.preparation import write_csv

    csv_file = tmp_path / "noise.csv"
    write_csv(sorted(str(w) for w in (release / "train").rglob("*.wav"))[:4], str(csv_file))
    return csv_file


def test_waveform_augmentation_doubles_batches_with_noisy_copies(mini_release, tmp_path):
    with open(REPO / "hparams" / "conformer.yaml", encoding="utf-8") as f:
        hparams = load_hyperpyyaml(
            f,
            {
                "data_folder": str(tmp_path),
                "output_folder": str(tmp_path / "out"),
                "waveform_augment": True,
                "noise_csv": str(noise_csv(mini_release, tmp_path)),
                "num_workers": 0,
            },
        )
    torch.manual_seed(0)
    clean = torch.sin(torch.arange(16000) / 8.0).repeat(3, 1) * 0.1
    augmented, lengths = hparams["wav_augment"](clean, torch.ones(3))
    assert augmented.shape[0] == 6 and lengths.shape == (6,)
    assert torch.equal(augmented[:3, :16000], clean)  # the clean batch, then its augmented copy
    assert not torch.allclose(augmented[3:, : clean.shape[1]], clean, atol=1e-3)
    assert hparams["wav_augment"].replicate_labels(torch.arange(3)).tolist() == [0, 1, 2, 0, 1, 2]


def test_waveform_augmentation_trains_through_the_recipe(mini_release, tmp_path):
    out = tmp_path / "augmented"
    run_cli(
        "train",
        "conformer",
        f"--data_folder={mini_release}",
        f"--output_folder={out}",
        "--waveform_augment=True",
        f"--noise_csv={noise_csv(mini_release, tmp_path)}",
        "--number_of_epochs=1",
        *CPU,
        *TINY,
    )
    assert json.loads((out / "metrics_test.json").read_text())["n"] > 0
    assert "waveform_augment: true" in (out / "recipe_overrides.yaml").read_text()
