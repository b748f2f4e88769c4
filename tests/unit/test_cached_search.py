"""The cached beam and greedy searches score and find exactly what SpeechBrain's
do, on the decoder of every config, and compute only the newest position."""

import pytest
import torch
from conftest import REPO
from hyperpyyaml import load_hyperpyyaml
from speechbrain.decoders.scorer import CTCScorer, ScorerBuilder
from speechbrain.decoders.seq2seq import S2STransformerBeamSearcher, S2STransformerGreedySearcher
from speechbrain.lobes.models.transformer.Transformer import TransformerDecoderLayer
from test_configs import GPU_CONFIGS

from stop_slu.cached_search import CachedTransformerBeamSearcher, CachedTransformerGreedySearcher

VOCAB = 60


def cached_configs():
    """The configs whose test search is the cached one (all but Whisper's and finetune.yaml's overrides)."""
    names = []
    for path in sorted((REPO / "hparams").glob("*.yaml")):
        if "test_search: !new:stop_slu.cached_search.CachedTransformerBeamSearcher" in path.read_text("utf-8"):
            names.append(path.stem)
    return names


CONFIGS = cached_configs()


def test_every_seq2seq_config_is_covered():
    assert set(CONFIGS) >= {"mini", *GPU_CONFIGS}


def tiny_model(name, tmp_path, **overrides):
    """A config's model shrunk in width and depth, its attention type and classes
    kept, with random weights. The SSL configs' frozen encoder is left out: the
    search sees only the encoder states."""
    sizes = {"d_model": 32, "nhead": 2, "d_ffn": 64, "num_encoder_layers": 1, "num_decoder_layers": 2}
    text = (REPO / "hparams" / f"{name}.yaml").read_text("utf-8")
    if "encoder_d_ffn:" in text:
        sizes.update(encoder_d_ffn=32, csgu_linear_units=32)
    if "ssl_model:" in text:
        sizes.update(ssl_model=None, compute_features=None, ssl_layers=3, ssl_size=32, n_mels=16)
    hparams = load_hyperpyyaml(
        text,
        {
            "data_folder": str(tmp_path),
            "output_folder": str(tmp_path / "out"),
            "output_neurons": VOCAB,
            **sizes,
            **overrides,
        },
    )
    torch.manual_seed(0)
    for module in hparams["modules"].values():
        if module is not None:
            module.eval()
    return hparams


def greedy_options(hparams):
    """Greedy search options, as the configs' valid search."""
    return dict(
        modules=[hparams["Transformer"], hparams["seq_lin"]],
        bos_index=hparams["bos_index"],
        eos_index=hparams["eos_index"],
        min_decode_ratio=0.0,
        max_decode_ratio=1.0,
    )


def search_options(hparams, beam_size=3):
    """Beam search options with joint CTC scoring, as the configs' test search."""
    scorer = ScorerBuilder(
        full_scorers=[CTCScorer(ctc_fc=hparams["ctc_lin"], blank_index=0, eos_index=hparams["eos_index"])],
        weights={"ctc": 0.4},
    )
    options = dict(beam_size=beam_size, scorer=scorer, using_eos_threshold=False, length_normalization=True)
    return {**greedy_options(hparams), **options}


def encoder_states(hparams, batch=2, frames=16):
    """Random encoder states (batch, frames, d_model) and relative lengths."""
    generator = torch.Generator().manual_seed(0)
    enc = torch.randn(batch, frames, hparams["d_model"], generator=generator)
    return enc, torch.tensor([1.0, 0.7, 0.45])[:batch]


class PositionsComputed:
    """Counts the target positions each decoder call runs through the decoder's
    first feed-forward (the real module, hooked): one per call when the decoder
    computes only the newest position, the whole prefix when it recomputes."""

    def __init__(self, model):
        self.widths = []
        self.handle = model.decoder.layers[0].pos_ffn.register_forward_hook(
            lambda module, inputs, output: self.widths.append(inputs[0].shape[1])
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.mark.parametrize("name", CONFIGS)
def test_search_is_cached_and_finds_what_speechbrains_finds(name, tmp_path):
    """The config's test (beam) and valid (greedy) searchers: the hypotheses and
    scores of SpeechBrain's searchers, each step computing one position. On a
    padded batch, each utterance gets what SpeechBrain finds for it alone (its
    own step limit; SpeechBrain's batch search takes the longest's)."""
    hparams = tiny_model(name, tmp_path)
    assert type(hparams["test_search"]) is CachedTransformerBeamSearcher
    assert type(hparams["valid_search"]) is CachedTransformerGreedySearcher
    enc, lens = encoder_states(hparams)
    frames = torch.round(enc.shape[1] * lens).int().tolist()
    pairs = [
        (S2STransformerBeamSearcher, CachedTransformerBeamSearcher, search_options(hparams)),
        (S2STransformerGreedySearcher, CachedTransformerGreedySearcher, greedy_options(hparams)),
    ]
    for reference, cached, options in pairs:
        with torch.no_grad():
            with PositionsComputed(hparams["Transformer"]) as uncached_positions:
                alone = [reference(**options)(enc[i : i + 1, :n], torch.ones(1)) for i, n in enumerate(frames)]
            with PositionsComputed(hparams["Transformer"]) as cached_positions:
                hyps_b, _, scores_b, _ = cached(**options)(enc, lens)
        hyps_a, scores_a = [a[0][0] for a in alone], torch.cat([a[2].view(-1) for a in alone])
        assert hyps_a == hyps_b and max(map(len, hyps_a)) > 3, (name, cached.__name__)
        assert all(len(h) <= n for h, n in zip(hyps_b, frames))  # each within its own step limit
        if cached is CachedTransformerBeamSearcher:  # the beam's final scores (greedy: per-step log-probs)
            assert torch.allclose(scores_a, scores_b.view(-1), atol=1e-4)
        assert max(uncached_positions.widths) > 3  # SpeechBrain's steps rerun the prefix
        assert set(cached_positions.widths) == {1}, (name, cached.__name__)  # the newest position only


@pytest.mark.parametrize("name", ["mini", "conformer"])  # absolute and relative encoder positions
def test_each_step_gives_the_same_log_probs_as_speechbrain(name, tmp_path):
    hparams = tiny_model(name, tmp_path)
    reference = S2STransformerBeamSearcher(**search_options(hparams))
    cached = CachedTransformerBeamSearcher(**search_options(hparams))
    enc, lens = encoder_states(hparams)
    beam = 3
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


def test_a_decoder_the_cache_cannot_step_is_refused_when_the_searcher_is_built(tmp_path):
    """SpeechBrain's decoder layer with relative-position attention (which
    TransformerASR never builds, but a user's model might) is not stepped by the
    cache: the searchers refuse it in one line instead of falling back."""
    hparams = tiny_model("mini", tmp_path)
    decoder = hparams["Transformer"].decoder
    decoder.layers[1] = TransformerDecoderLayer(d_ffn=64, nhead=2, d_model=32, attention_type="RelPosMHAXL")
    for searcher, options in (
        (CachedTransformerBeamSearcher, search_options(hparams)),
        (CachedTransformerGreedySearcher, greedy_options(hparams)),
    ):
        with pytest.raises(ValueError, match=r"decoder layer 1's self_attn .*S2STransformerBeamSearcher") as error:
            searcher(**options)
        assert "\n" not in str(error.value)


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


def test_the_whisper_config_searches_with_speechbrains_key_value_cache(tiny_whisper, tmp_path):
    """Whisper's decoder is not ours: the config uses SpeechBrain's Whisper
    searcher, which keeps the Hugging Face decoder's key-value cache (its
    default); after the decoder prefix, each step feeds the decoder one token."""
    text = (REPO / "hparams" / "whisper.yaml").read_text("utf-8")
    hparams = load_hyperpyyaml(
        text,
        {
            "data_folder": str(tmp_path),
            "output_folder": str(tmp_path / "out"),
            "whisper_hub": str(tiny_whisper),
            "scorer": None,  # the tree constraint needs a trained tokenizer; not what is tested here
            "max_decode_ratio": 0.01,
        },
    )
    search = hparams["test_search"]
    assert type(search).__name__ == "S2SWhisperBeamSearcher" and search.use_kv_cache
    whisper = hparams["whisper"].eval()
    widths = []
    hook = whisper.model.decoder.embed_tokens.register_forward_hook(
        lambda module, inputs, output: widths.append(inputs[0].shape[1])
    )
    try:
        with torch.no_grad():
            enc = whisper.encode(torch.randn(2, 16000, generator=torch.Generator().manual_seed(0)) * 0.1)
            search(enc, torch.ones(2))
    finally:
        hook.remove()
    prefix = len(hparams["decoder_prefix"])
    assert widths[0] == prefix and len(widths) > 3 and set(widths[1:]) == {1}, widths
