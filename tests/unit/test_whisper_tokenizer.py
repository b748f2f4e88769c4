"""Whisper's tokenizer for parses (tokenizer/whisper_tokenizer.py) and the
tree-constrained search with a Whisper decoder, on a tiny randomly initialised
Whisper built offline (conftest.make_tiny_whisper): nothing is downloaded."""

import json

import pytest
import torch

from stop_slu import parses
from stop_slu.data_prep.grammar import generate
from stop_slu.search import ScorerBuilder, TreeConstraintScorer, token_classes
from stop_slu.tokenizer.parse_tokenizer import ParseTokenizer, load_tokenizer

transformers = pytest.importorskip("transformers", reason="the Whisper config needs the ssl extra (transformers)")

from stop_slu.tokenizer.whisper_tokenizer import train_whisper_tokenizer  # noqa: E402
from stop_slu.whisper import WhisperSLU  # noqa: E402


@pytest.fixture(scope="module")
def targets():
    return [parses.normalize_parse(e.seqlogical) for e in generate(200, seed=5)]


@pytest.fixture(scope="module")
def base(tiny_whisper):
    return transformers.AutoTokenizer.from_pretrained(str(tiny_whisper))


@pytest.fixture(scope="module")
def tokenizer(targets, base, tmp_path_factory):
    return train_whisper_tokenizer(targets, tmp_path_factory.mktemp("whisper_tok"), base)


def expected_ids(tokenizer, base, target):
    """The documented scheme: one added id per label/``]``, Whisper's BPE for each word run."""
    ids, words = [], []
    for token in [*parses.tokenize(target), None]:
        if (token is None or parses.is_structure(token)) and words:
            ids += base.encode(" " + " ".join(words), add_special_tokens=False)
            words = []
        if token is None:
            break
        if parses.is_structure(token):
            ids.append(len(base) + (tokenizer.labels + ["]"]).index(token))
        else:
            words.append(token)
    return ids


def test_every_target_round_trips_labels_are_one_token_and_words_are_whispers_bpe(tokenizer, targets, base):
    labels = sorted(set().union(*(parses.labels(t) for t in targets)))
    assert tokenizer.labels == labels and tokenizer.vocab_size == len(base) + len(labels) + 1
    for target in targets:
        ids = tokenizer.encode(target)
        assert ids == expected_ids(tokenizer, base, target)
        assert tokenizer.decode(ids) == parses.canonical(target)


def test_an_unseen_label_is_spelt_in_pieces_and_special_tokens_decode_to_nothing(tokenizer, targets, base):
    parse = "[IN:NEVER_SEEN [SL:ALSO_NEW ten ] ]"
    ids = tokenizer.encode(parse)
    assert all(i < len(base) for i in ids[:-2]) and tokenizer.decode(ids) == parse
    assert tokenizer.prefix == base.prefix_tokens and tokenizer.eos_id == base.eos_token_id
    ids = tokenizer.encode(targets[0])
    assert tokenizer.decode(tokenizer.prefix + ids + [tokenizer.eos_id]) == tokenizer.decode(ids)


def test_the_same_targets_reuse_the_folder_and_new_ones_rebuild_it(tokenizer, targets, base):
    meta = tokenizer.folder / "tokenizer.json"
    before = meta.read_text()
    train_whisper_tokenizer(targets, tokenizer.folder, base)
    assert meta.read_text() == before
    assert isinstance(load_tokenizer(tokenizer.folder), type(tokenizer))
    other = train_whisper_tokenizer(targets[:20], tokenizer.folder.parent / "other", base)
    assert json.loads((other.folder / "tokenizer.json").read_text())["fingerprint"] != json.loads(before)["fingerprint"]
    assert not isinstance(load_tokenizer(tokenizer.folder), ParseTokenizer)


def test_token_classes_of_the_whisper_vocabulary(tokenizer, base):
    classes = token_classes(tokenizer.pieces(), tokenizer.eos_id)
    n = tokenizer.vocab_size
    assert all(len(flags) == n for flags in classes.values())
    for label in tokenizer.labels:
        (i,) = tokenizer.encode(label + " ]")[:1]
        assert classes["intent" if parses.is_intent(label) else "slot"][i]
    assert classes["close"][n - 1] and sum(classes["close"]) == 1  # only the added "]", not BPE's "]" piece
    assert classes["eos"][tokenizer.eos_id] and sum(classes["eos"]) == 1
    for special in {*base.all_special_ids, *base.prefix_tokens} - {tokenizer.eos_id}:  # never emitted
        assert not any(flags[special] for flags in classes.values()), base.convert_ids_to_tokens(special)
    start = base.convert_tokens_to_ids("Ġt")
    assert classes["word_start"][start] and classes["word_cont"][base.convert_tokens_to_ids("t")]
    newline = base.convert_tokens_to_ids("Ċ")  # a control byte: never part of a parse
    assert not any(flags[newline] for flags in classes.values())


def _whisper_search(folder, tokenizer, constrained, beam):
    torch.manual_seed(0)
    from speechbrain.decoders.seq2seq import S2SWhisperBeamSearcher

    whisper = WhisperSLU(str(folder), str(tokenizer.folder / "cache"), output_neurons=tokenizer.vocab_size).eval()
    tree = TreeConstraintScorer(
        tokenizer.folder, eos_index=tokenizer.eos_id, bos_index=tokenizer.eos_id, max_decode_ratio=0.03
    )
    tree.enabled = constrained
    search = S2SWhisperBeamSearcher(
        module=[whisper],
        min_decode_ratio=0.0,
        max_decode_ratio=0.03,
        beam_size=beam,
        scorer=ScorerBuilder(full_scorers=[tree], weights={"treeconstraint": 1.0}),
        suppress_tokens=[],
        using_eos_threshold=False,
        length_normalization=True,
    )
    with torch.no_grad():
        hyps, _, _, _ = search(whisper.encode(torch.randn(3, 16000)), torch.ones(3))
    return [tokenizer.decode(h) for h in hyps]


@pytest.mark.parametrize("beam", [1, 3])
def test_constrained_whisper_search_emits_only_well_formed_parses(tiny_whisper, tokenizer, beam):
    for hyp in _whisper_search(tiny_whisper, tokenizer, constrained=True, beam=beam):
        assert parses.is_valid(hyp), hyp
        assert parses.labels(hyp) <= set(tokenizer.labels)
    free = _whisper_search(tiny_whisper, tokenizer, constrained=False, beam=beam)
    assert not all(parses.is_valid(h) for h in free)  # the random model alone gives broken parses


def test_whisper_refuses_an_output_size_below_its_vocabulary(tiny_whisper, tmp_path, base):
    with pytest.raises(ValueError, match="below Whisper's vocabulary"):
        WhisperSLU(str(tiny_whisper), str(tmp_path), output_neurons=len(base) - 1)
    grown = WhisperSLU(str(tiny_whisper), str(tmp_path), output_neurons=len(base) + 5)
    assert grown.model.get_input_embeddings().weight.shape[0] == len(base) + 5


def test_labels_follow_the_models_rows_when_it_has_more_than_the_tokenizer(targets, base, tmp_path):
    wide = train_whisper_tokenizer(targets, tmp_path, base, model_vocab=len(base) + 7)
    first = len(base) + 7
    assert wide.vocab_size == first + len(wide.labels) + 1 and len(wide.pieces()) == wide.vocab_size
    ids = wide.encode(targets[0])
    assert min(i for i in ids if i >= len(base)) >= first and wide.decode(ids) == parses.canonical(targets[0])
    assert wide.decode([len(base) + 1, *ids]) == wide.decode(ids)  # rows past the tokenizer decode to nothing
    classes = token_classes(wide.pieces(), wide.eos_id)
    assert not any(flags[len(base) + 1] for flags in classes.values())


def test_training_scores_each_parse_token_where_the_search_predicts_it(tiny_whisper, tokenizer, targets, tmp_path):
    """The recipe's forward (teacher forcing after the prefix) and the search's
    steps see the same decoder positions: p_seq[:, t] is the distribution the
    search gets after the prefix and the first t parse tokens."""
    from types import SimpleNamespace

    from speechbrain.core import Stage

    from stop_slu.whisper import compute_forward

    torch.manual_seed(0)
    whisper = WhisperSLU(str(tiny_whisper), str(tmp_path), output_neurons=tokenizer.vocab_size).eval()
    ids = tokenizer.encode(targets[0])
    wavs = 0.1 * torch.randn(1, 16000)
    hparams = SimpleNamespace(wav_augment=None, decoder_prefix=tokenizer.prefix, log_softmax=torch.nn.LogSoftmax(-1))
    batch = SimpleNamespace(sig=(wavs, torch.ones(1)), tokens_bos=(torch.tensor([tokenizer.prefix + ids]), None))
    with torch.no_grad():
        p_ctc, p_seq, _, hyps = compute_forward(SimpleNamespace(whisper=whisper), hparams, batch, Stage.VALID)
        assert p_ctc is None and hyps is None and p_seq.shape == (1, len(ids) + 1, tokenizer.vocab_size)
        enc = whisper.encode(wavs)
        for t in (0, 1, len(ids)):
            logits, _, _ = whisper.forward_decoder(enc, torch.tensor([tokenizer.prefix + ids[:t]]), use_cache=False)
            assert torch.allclose(p_seq[0, t], torch.log_softmax(logits[0, -1].float(), -1), atol=1e-4)
