"""Every filterbank config's model exports to the two ONNX graphs, and
onnxruntime gives what PyTorch gives at another length than the export's:
the encoder's CTC log-probabilities, and decoder steps with their caches
against SpeechBrain's own full-prefix ``TransformerASR.decode``."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import REPO
from hyperpyyaml import load_hyperpyyaml

from stop_slu.onnx_export import DECODER, ENCODER, EncoderGraph, export_graphs

SMALL = {"num_encoder_layers": 2, "num_decoder_layers": 2, "output_neurons": 60}


@pytest.mark.slow  # a few seconds of export per config
@pytest.mark.parametrize(
    "name", ["mini", "conformer", "branchformer", "ebranchformer", "ebranchformer_small", "conformer_asr_transfer"]
)
def test_config_exports_and_onnxruntime_matches_pytorch(name, tmp_path):
    with open(REPO / "hparams" / f"{name}.yaml", encoding="utf-8") as f:
        hp = load_hyperpyyaml(f, {"data_folder": str(tmp_path), "output_folder": str(tmp_path / "out"), **SMALL})
    hp["model"].eval()
    export_graphs(hp, tmp_path)
    torch.manual_seed(0)
    feats = torch.randn(1, 173, 80)  # not the export's 301 frames
    with torch.no_grad():
        ctc, cross_k, cross_v = EncoderGraph(hp["CNN"], hp["Transformer"], hp["ctc_lin"])(feats)
        enc = hp["Transformer"].encode(hp["CNN"](feats), None)
    encoder = ort.InferenceSession(str(tmp_path / ENCODER), providers=["CPUExecutionProvider"])
    o_ctc, o_k, o_v = encoder.run(None, {"feats": feats.numpy()})
    np.testing.assert_allclose(o_ctc, ctc.numpy(), atol=2e-4)

    decoder = ort.InferenceSession(str(tmp_path / DECODER), providers=["CPUExecutionProvider"])
    layers, _, heads, _, dim = o_k.shape
    hyps, prefix = 3, torch.tensor([[2, 7, 9, 11], [2, 7, 8, 40], [2, 5, 5, 5]])
    past_k = np.zeros((layers, hyps, heads, 0, dim), np.float32)
    past_v = past_k.copy()
    for step in range(prefix.shape[1]):
        feeds = {"tokens": prefix[:, step].numpy(), "position": np.array([step]), "past_k": past_k, "past_v": past_v}
        log_probs, past_k, past_v = decoder.run(None, {**feeds, "cross_k": o_k, "cross_v": o_v})
        with torch.no_grad():  # SpeechBrain's uncached decoder over the whole prefix
            pred, _ = hp["Transformer"].decode(prefix[:, : step + 1], enc.expand(hyps, -1, -1))
            expected = torch.log_softmax(hp["test_search"].fc(pred)[:, -1], dim=-1)
        np.testing.assert_allclose(log_probs, expected.numpy(), atol=2e-4)


@pytest.mark.parametrize("norm_type", ["global", "sentence", "batch"])
def test_feature_normalisation_exports_unless_it_depends_on_the_batch(norm_type, tmp_path):
    """Global statistics and per-utterance statistics export (the runtime's
    front-end computes both); batch statistics are refused in one line."""
    from stop_slu.onnx_export import OnnxExportError, check_exportable

    overrides = {"data_folder": str(tmp_path), "output_folder": str(tmp_path / "out"), **SMALL}
    with open(REPO / "hparams" / "mini.yaml", encoding="utf-8") as f:
        hp = load_hyperpyyaml(f, {**overrides, "normalize": {"norm_type": norm_type}})
    assert hp["normalize"].norm_type == norm_type
    if norm_type == "batch":
        with pytest.raises(
            OnnxExportError, match=r"^normalize.norm_type=batch: .*batch statistics depend on the batch$"
        ):
            check_exportable(hp)
    else:
        check_exportable(hp)
