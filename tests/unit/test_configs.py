"""Every config builds; sizes are what the README says."""

import pytest
from conftest import REPO
from hyperpyyaml import load_hyperpyyaml


def build(name, tmp_path):
    with open(REPO / "hparams" / f"{name}.yaml", encoding="utf-8") as f:
        return load_hyperpyyaml(
            f, {"data_folder": str(tmp_path), "output_folder": str(tmp_path / "out"), "output_neurons": 500}
        )


def n_params(hparams):
    return sum(p.numel() for p in hparams["model"].parameters())


@pytest.mark.parametrize(
    "name, low, high, layers, d_model, layer_class",
    [
        ("mini", 2e6, 4e6, 4, 144, "ConformerEncoderLayer"),
        ("conformer", 90e6, 110e6, 12, 512, "ConformerEncoderLayer"),
        ("conformer_asr_transfer", 90e6, 110e6, 12, 512, "ConformerEncoderLayer"),
        ("branchformer", 70e6, 85e6, 12, 512, "BranchformerEncoderLayer"),
        ("ebranchformer", 95e6, 110e6, 12, 512, "EBranchformerEncoderLayer"),
        ("ebranchformer_small", 10e6, 15e6, 8, 256, "EBranchformerEncoderLayer"),
    ],  # on-device track: at most 15 M parameters
)
def test_config_sizes(name, low, high, layers, d_model, layer_class, tmp_path):
    hparams = build(name, tmp_path)
    assert low <= n_params(hparams) <= high
    assert hparams["num_encoder_layers"] == layers and hparams["d_model"] == d_model
    assert len({hparams["pad_index"], hparams["bos_index"], hparams["eos_index"]}) == 3
    assert all(type(layer).__name__ == layer_class for layer in hparams["Transformer"].encoder.layers)
