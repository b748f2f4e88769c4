"""The cached beam and greedy searches score and find exactly what SpeechBrain's do."""

import torch
from conftest import REPO
from hyperpyyaml import load_hyperpyyaml
from speechbrain.decoders.scorer import CTCScorer, ScorerBuilder
from speechbrain.decoders.seq2seq import S2STransformerBeamSearcher, S2STransformerGreedySearcher

from stop_slu.cached_search import CachedTransformerBeamSearcher, CachedTransformerGreedySearcher

VOCAB = 60


def mini_model(tmp_path, **overrides):
    """mini.yaml's transformer, CTC and output layers with random weights."""
    with open(REPO / "hparams" / "mini.yaml", encoding="utf-8") as f:
        hparams = load_hyperpyyaml(
            f,
            {
                "data_folder": str(tmp_path),
                "output_folder": str(tmp_path / "out"),
                "output_neurons": VOCAB,
                "d_model": 64,
                "nhead": 4,
                "d_ffn": 128,
                "num_encoder_layers": 1,
                "num_decoder_layers": 2,
                **overrides,
            },
        )
    for module in hparams["modules"].values():
        module.eval()
    return hparams


def searchers(hparams, beam_size=4):
    """(SpeechBrain's searcher, the cached one) with joint CTC scoring."""
    scorer = ScorerBuilder(
        full_scorers=[CTCScorer(ctc_fc=hparams["ctc_lin"], blank_index=0, eos_index=hparams["eos_index"])],
        weights={"ctc": 0.4},
    )
    options = dict(
        modules=[hparams["Transformer"], hparams["seq_lin"]],
        bos_index=hparams["bos_index"],
        eos_index=hparams["eos_index"],
        min_decode_ratio=0.0,
        max_decode_ratio=1.0,
        beam_size=beam_size,
        scorer=scorer,
        using_eos_threshold=False,
        length_normalization=True,
    )
    return S2STransformerBeamSearcher(**options), CachedTransformerBeamSearcher(**options)


def encoder_states(hparams, batch=3, frames=40):
    torch.manual_seed(0)
    src = torch.randn(batch, frames * 4, 80)
    lens = torch.tensor([1.0, 0.7, 0.45])[:batch]
    with torch.no_grad():
        return hparams["Transformer"].encode(hparams["CNN"](src), lens), lens


def test_each_step_gives_the_same_log_probs_as_speechbrain(tmp_path):
    hparams = mini_model(tmp_path)
    reference, cached = searchers(hparams)
    assert cached.cached
    enc, lens = encoder_states(hparams)
    beam = 4
    enc = enc.repeat_interleave(beam, 0)  # every utterance once per beam, as the search holds it
    enc_lens = torch.round(enc.shape[1] * lens).int().repeat_interleave(beam, 0)
    generator = torch.Generator().manual_seed(1)
    tokens = torch.full((enc.shape[0],), hparams["bos_index"])
    memory_a = memory_b = None
    with torch.no_grad():
        for _ in range(12):
            log_a, memory_a, _ = reference.forward_step(tokens, memory_a, enc, enc_lens)
            log_b, memory_b, _ = cached.forward_step(tokens, memory_b, enc, enc_lens)
            assert torch.allclose(log_a, log_b, atol=1e-4)
            # A beam step reorders hypotheses within each utterance's beams.
            within = torch.randint(beam, (enc.shape[0] // beam, beam), generator=generator)
            order = (within + beam * torch.arange(enc.shape[0] // beam)[:, None]).view(-1)
            memory_a, memory_b = reference.permute_mem(memory_a, order), cached.permute_mem(memory_b, order)
            tokens = torch.randint(4, VOCAB, (enc.shape[0],), generator=generator)


def test_whole_search_finds_the_same_hypotheses(tmp_path):
    hparams = mini_model(tmp_path)
    reference, cached = searchers(hparams)
    enc, lens = encoder_states(hparams)
    with torch.no_grad():
        hyps_a, lens_a, scores_a, _ = reference(enc, lens)
        hyps_b, lens_b, scores_b, _ = cached(enc, lens)
    assert hyps_a == hyps_b and max(map(len, hyps_a)) > 3
    assert torch.allclose(scores_a, scores_b, atol=1e-4)


def test_other_attention_falls_back_to_speechbrain_steps(tmp_path):
    hparams = mini_model(tmp_path, attention_type="RelPosMHAXL")
    reference, cached = searchers(hparams)
    assert not cached.cached
    enc, lens = encoder_states(hparams)
    with torch.no_grad():
        assert reference(enc, lens)[0] == cached(enc, lens)[0]


def greedy_searchers(hparams):
    """(SpeechBrain's greedy searcher, the cached one), as the recipe's valid_search."""
    options = dict(
        modules=[hparams["Transformer"], hparams["seq_lin"]],
        bos_index=hparams["bos_index"],
        eos_index=hparams["eos_index"],
        min_decode_ratio=0.0,
        max_decode_ratio=1.0,
    )
    return S2STransformerGreedySearcher(**options), CachedTransformerGreedySearcher(**options)


def test_cached_greedy_search_finds_what_speechbrains_finds(tmp_path):
    hparams = mini_model(tmp_path)
    reference, cached = greedy_searchers(hparams)
    assert cached.cached
    enc, lens = encoder_states(hparams)
    with torch.no_grad():
        hyps_a, lens_a, scores_a, _ = reference(enc, lens)
        hyps_b, lens_b, scores_b, _ = cached(enc, lens)
    assert hyps_a == hyps_b and max(map(len, hyps_a)) > 3
    assert torch.equal(lens_a, lens_b) and torch.allclose(scores_a, scores_b, atol=1e-4)


def test_cached_greedy_search_falls_back_with_other_attention(tmp_path):
    hparams = mini_model(tmp_path, attention_type="RelPosMHAXL")
    reference, cached = greedy_searchers(hparams)
    assert not cached.cached
    enc, lens = encoder_states(hparams)
    with torch.no_grad():
        assert reference(enc, lens)[0] == cached(enc, lens)[0]


def test_every_config_validates_with_the_cached_greedy_searcher_and_a_ctc_pre_beam():
    import yaml

    for path in sorted((REPO / "hparams").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        if "valid_search:" not in text:
            continue  # finetune.yaml: overrides only
        if "families.WhisperSeq2Seq" in text:  # Whisper: its own searchers, no CTC; a valid subset all the same
            assert yaml.safe_load(text.split("valid_search_subset:")[1].split("\n")[0].split("#")[0]) > 0, path.name
            continue
        assert "valid_search: !new:stop_slu.cached_search.CachedTransformerGreedySearcher" in text, path.name
        assert "test_search: !new:stop_slu.cached_search.CachedTransformerBeamSearcher" in text, path.name
        scorer = text[text.index("scorer: !new:stop_slu.search.ScorerBuilder") :].split("\n\n")[0]
        assert "partial_scorers: [!ref <ctc_scorer>]" in scorer, path.name  # CTC on the pre-beam only
        assert yaml.safe_load(text.split("valid_search_subset:")[1].split("\n")[0].split("#")[0]) > 0, path.name
