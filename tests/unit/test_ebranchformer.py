"""The E-Branchformer encoder (stop_slu/ebranchformer.py): its size follows from
the paper's layer definition, and TransformerASR drives it."""

import pytest
import torch
from conftest import REPO
from hyperpyyaml import load_hyperpyyaml

from stop_slu.ebranchformer import EBranchformerASR, EBranchformerEncoder, EBranchformerEncoderLayer


def layer_parameters(d, ffn, cgmlp, kernel, merge_kernel, attention):
    """Parameters of one E-Branchformer layer (Kim et al., SLT 2022, section 3),
    counted from its definition: d = d_model, ffn = macaron FFN hidden size,
    cgmlp = cgMLP hidden size, kernel / merge_kernel = the two depth-wise kernels.
    LayerNorms have a weight and a bias (2 d); linear layers a weight and a bias."""
    layer_norm = 2 * d
    feed_forward = layer_norm + (d * ffn + ffn) + (ffn * d + d)  # LN, Linear d->ffn, Linear ffn->d
    if attention == "RelPosMHAXL":  # q, k, v (no bias), output (bias), position projection, u and v biases
        mhsa = 3 * d * d + (d * d + d) + d * d + 2 * d
    else:  # torch MultiheadAttention: q, k, v and output, with biases
        mhsa = 4 * d * d + 4 * d
    half = cgmlp // 2
    cgmlp_branch = (
        layer_norm
        + (d * cgmlp + cgmlp)  # channel projection up
        + 2 * half  # the gating unit's LayerNorm over half the channels
        + (half * kernel + half)  # its depth-wise convolution
        + (half * d + d)  # channel projection down
    )
    merge = (2 * d * merge_kernel + 2 * d) + (2 * d * d + d)  # depth-wise conv over the concatenation, Linear 2d->d
    return 2 * feed_forward + (layer_norm + mhsa) + cgmlp_branch + merge + layer_norm  # + the final LayerNorm


def count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("attention", ["RelPosMHAXL", "regularMHA"])
def test_layer_size_is_the_papers(attention):
    sizes = dict(d=32, ffn=48, cgmlp=64, kernel=7, merge_kernel=5)
    layer = EBranchformerEncoderLayer(
        d_model=32,
        nhead=4,
        d_ffn=48,
        csgu_linear_units=64,
        kernel_size=7,
        merge_conv_kernel=5,
        attention_type=attention,
    )
    assert count(layer) == layer_parameters(**sizes, attention=attention)
    encoder = EBranchformerEncoder(
        num_layers=3, d_model=32, nhead=4, d_ffn=48, csgu_linear_units=64, kernel_size=7, merge_conv_kernel=5
    )
    assert count(encoder) == 3 * layer_parameters(**sizes, attention="RelPosMHAXL") + 2 * 32  # + final LayerNorm


def test_on_device_config_encoder_is_the_papers_size(tmp_path):
    with open(REPO / "hparams" / "ebranchformer_small.yaml", encoding="utf-8") as f:
        hparams = load_hyperpyyaml(
            f, {"data_folder": str(tmp_path), "output_folder": str(tmp_path / "out"), "output_neurons": 500}
        )
    encoder = hparams["Transformer"].encoder
    assert isinstance(encoder, EBranchformerEncoder)
    one = layer_parameters(
        d=hparams["d_model"],
        ffn=hparams["encoder_d_ffn"],
        cgmlp=hparams["csgu_linear_units"],
        kernel=hparams["conv_kernel_size"],
        merge_kernel=hparams["merge_conv_kernel"],
        attention=hparams["attention_type"],
    )
    assert count(encoder) == hparams["num_encoder_layers"] * one + 2 * hparams["d_model"]


def test_transformer_asr_runs_the_encoder():
    torch.manual_seed(0)
    model = EBranchformerASR(
        tgt_vocab=20,
        input_size=40,
        d_model=32,
        nhead=2,
        num_encoder_layers=2,
        num_decoder_layers=1,
        d_ffn=64,
        csgu_linear_units=64,
        attention_type="RelPosMHAXL",
        normalize_before=True,
        causal=False,
        dropout=0.0,
    ).eval()
    assert isinstance(model.encoder, EBranchformerEncoder) and len(model.encoder.layers) == 2
    src, tgt = torch.rand(2, 30, 40), torch.randint(4, 20, (2, 6))
    enc, dec = model(src, tgt, torch.tensor([1.0, 1.0]))
    assert enc.shape == (2, 30, 32) and dec.shape == (2, 6, 32)
    assert torch.allclose(model.encode(src, torch.tensor([1.0, 1.0])), enc, atol=1e-5)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="merge_conv_kernel"):
        EBranchformerEncoderLayer(d_model=32, nhead=2, d_ffn=64, merge_conv_kernel=4)
    with pytest.raises(ValueError, match="attention_type"):
        EBranchformerEncoderLayer(d_model=32, nhead=2, d_ffn=64, attention_type="hypermixing")
    with pytest.raises(ValueError, match="encoder_module"):
        EBranchformerASR(tgt_vocab=20, input_size=40, d_model=32, encoder_module="conformer", causal=False)
