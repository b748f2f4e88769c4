"""The torch-free runtime's numpy parts (runtime/stop_slu_runtime) against the
PyTorch/SpeechBrain ones they replace, step by step on the same inputs: the
tree constraint, the CTC prefix scores, the front-end and the JSON fields."""

import numpy as np
import pytest
import torch
from speechbrain.decoders.ctc import CTCPrefixScore
from speechbrain.lobes.features import Fbank
from speechbrain.processing.features import InputNormalization
from stop_slu_runtime.frontend import Frontend
from stop_slu_runtime.parse_format import decouple_if_valid, describe
from stop_slu_runtime.scoring import CTCPrefixScorer, TreeConstraint

from stop_slu import parses
from stop_slu.inference import describe as torch_describe
from stop_slu.onnx_export import frontend_constants, tree_classes
from stop_slu.search import TreeConstraintScorer

PIECES = ["<pad>", "<unk>", "<s>", "</s>", "▁[IN:A", "▁[IN:B", "▁[SL:X", "▁[SL:Y", "▁]", "▁set", "s", "▁", "▁six", "x"]
BOS, EOS = 2, 3


@pytest.mark.parametrize("words_in_intents", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_tree_constraint_numpy_equals_torch_step_by_step(words_in_intents, seed):
    frames, ratio, hyps = 40, 0.5, 5
    torch_tree = TreeConstraintScorer("unused", EOS, BOS, max_decode_ratio=ratio, words_in_intents=words_in_intents)
    torch_tree.set_vocabulary(PIECES, ["[SL:Y"])
    numpy_tree = TreeConstraint(tree_classes(PIECES, EOS, ["[SL:Y"]), BOS, words_in_intents)
    limit = int(frames * ratio)
    rng = np.random.default_rng(seed)
    tokens = np.full(hyps, BOS)
    t_memory = torch_tree.reset_mem(torch.zeros(1, frames, 8), None)
    n_state = None
    for _ in range(limit + 3):
        t_scores, t_memory = torch_tree.score(torch.from_numpy(tokens), t_memory, None, None)
        n_scores, n_state = numpy_tree.score(tokens, n_state, limit)
        np.testing.assert_array_equal(n_scores, t_scores.numpy())
        # the beam's choice: any hypothesis may be kept twice or dropped; mostly allowed
        # tokens, sometimes a barred one (a starved beam) so broken hypotheses are covered
        index = rng.integers(0, hyps, hyps)
        t_memory = torch_tree.permute_mem(t_memory, torch.from_numpy(index))
        n_state = numpy_tree.permute(n_state, index)
        allowed = n_scores[index] == 0
        tokens = np.array(
            [
                rng.choice(np.flatnonzero(row)) if row.any() and rng.random() > 0.05 else rng.integers(0, len(PIECES))
                for row in allowed
            ]
        )


@pytest.mark.parametrize("seed", range(3))
def test_ctc_prefix_scores_numpy_equal_speechbrain_step_by_step(seed):
    frames, vocab, hyps, n_cand, blank, eos = 30, 12, 4, 5, 0, 3
    generator = torch.Generator().manual_seed(seed)
    x = torch.log_softmax(torch.randn(1, frames, vocab, generator=generator) * 3, dim=-1)
    sb = CTCPrefixScore(x.clone(), torch.tensor([frames]), blank, eos)
    ours = CTCPrefixScorer(x[0].numpy(), blank, eos)
    rng = np.random.default_rng(seed)
    tokens = np.full(hyps, 2)  # bos
    sb_state = ours_state = None
    for _ in range(6):
        candidates = np.stack([rng.choice(np.arange(1, vocab), n_cand, replace=False) for _ in range(hyps)])
        sb_scores, sb_state = sb.forward_step(torch.from_numpy(tokens), sb_state, torch.from_numpy(candidates))
        ours_scores, ours_state = ours.score(tokens, ours_state, candidates)
        sb_scores = sb_scores.numpy()
        scored = sb_scores > -1e10
        np.testing.assert_array_equal(ours_scores > -1e10, scored)
        np.testing.assert_allclose(ours_scores[scored], sb_scores[scored], rtol=1e-5, atol=1e-4)
        hyp = rng.integers(0, hyps, hyps)
        tokens = candidates[hyp, rng.integers(0, n_cand, hyps)]
        chosen = hyp * vocab + tokens
        sb_state = sb.permute_mem(sb_state, torch.from_numpy(chosen).view(1, hyps))
        ours_state = ours.permute(ours_state, chosen)


@pytest.mark.parametrize(
    "norm",
    [{"norm_type": "global"}, {"norm_type": "sentence"}, {"norm_type": "sentence", "std_norm": False}],
    ids=["global", "sentence", "sentence-mean-only"],
)
def test_frontend_numpy_equals_speechbrain_fbank_and_normalisation(norm, tmp_path):
    """Within 1e-3 on normalised features (float64 FFT here, float32 in torch),
    through the constants file the export writes. Global statistics come from
    another utterance, so that per-utterance and global differ."""
    rng = np.random.default_rng(0)
    t = np.arange(int(1.37 * 16000)) / 16000
    wav = 0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t) + 0.01 * rng.standard_normal(t.size)
    wav = wav.astype(np.float32)
    fbank = Fbank(sample_rate=16000, n_fft=400, n_mels=80)
    normalize = InputNormalization(**norm)
    other = fbank(torch.from_numpy(0.05 * rng.standard_normal(16000).astype(np.float32))[None])
    normalize(other, torch.ones(1))  # global: statistics from another utterance, then frozen
    normalize.eval()
    feats = fbank(torch.from_numpy(wav)[None])
    expected = normalize(feats, torch.ones(1))[0].detach().numpy()
    np.savez(tmp_path / "frontend.npz", **frontend_constants(fbank, normalize))
    ours = Frontend(dict(np.load(tmp_path / "frontend.npz")))(wav)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=1e-3)
    if norm["norm_type"] == "sentence":  # each feature over the utterance: mean 0 (and deviation 1)
        np.testing.assert_allclose(ours.mean(axis=0), 0, atol=1e-4)
        if norm.get("std_norm", True):
            np.testing.assert_allclose(ours.std(axis=0), 1, atol=1e-3)
    else:
        assert abs(ours.mean()) > 0.5  # another utterance's statistics: far from this one's own


PARSES = [
    "[IN:CREATE_ALARM set an alarm [SL:DATE_TIME for six [IN:GET_TIME x ] ] ]",
    "[IN:GET_WEATHER [SL:LOCATION Paris ] [SL:DATE_TIME tomorrow ] ]",
    "[IN:CREATE_REMINDER [SL:PERSON_REMINDED ] remind ]",
    "[IN:A [SL:X",
    "[SL:X a ]",
    "",
    "[IN:A ] ]",
]


@pytest.mark.parametrize("parse", PARSES)
def test_runtime_json_fields_equal_stop_slu(parse):
    assert describe(parse) == torch_describe(parse)
    assert decouple_if_valid(parse) == parses.decouple_if_valid(parse)
