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


GPU_CONFIGS = [
    "conformer",
    "conformer_asr_transfer",
    "branchformer",
    "ebranchformer",
    "ebranchformer_small",
    "conformer_wavlm",
    "conformer_hubert",
]


@pytest.mark.parametrize("name", GPU_CONFIGS)
def test_gpu_batches_hold_about_max_batch_length_of_audio(name):
    """STOP-like durations (log-normal, median 3 s, 0.8 to 15 s): the configured
    dynamic batches hold at least 60 % of max_batch_length seconds of audio."""
    import numpy as np
    import yaml
    from speechbrain.dataio.dataset import DynamicItemDataset
    from speechbrain.dataio.sampler import DynamicBatchSampler

    text = (REPO / "hparams" / f"{name}.yaml").read_text(encoding="utf-8")
    block = text.split("dynamic_batch_sampler_train:\n")[1].split("\n\n")[0]
    options = yaml.safe_load("\n".join(line for line in block.splitlines() if not line.lstrip().startswith("#")))
    durations = np.clip(np.random.default_rng(0).lognormal(np.log(3.0), 0.4, 20_000), 0.8, 15.0)
    data = DynamicItemDataset({f"u{i}": {"duration": float(d)} for i, d in enumerate(durations)})
    sampler = DynamicBatchSampler(data, length_func=lambda x: x["duration"], seed=0, **options)
    seconds = [sum(durations[int(uid[1:])] for uid in (data.data_ids[i] for i in batch)) for batch in sampler]
    assert np.mean(seconds) >= 0.6 * options["max_batch_length"], (name, np.mean(seconds))
