"""Tree-constrained beam search: every output is a well-formed parse.

A randomly initialised model emits tokens almost at random, which is the
hardest case for the constraint: without it nearly every output is broken;
with it every output must parse, use only training labels, and (for decoupled
targets) hold words only inside slots.
"""

import pytest
import torch
from speechbrain.decoders.scorer import CTCScorer
from speechbrain.decoders.seq2seq import S2STransformerBeamSearcher
from speechbrain.lobes.models.transformer.TransformerASR import TransformerASR
from speechbrain.nnet.linear import Linear

from stop_slu import parses
from stop_slu.data_prep.grammar import generate
from stop_slu.search import ScorerBuilder, TreeConstraintScorer, token_classes
from stop_slu.tokenizer.parse_tokenizer import BOS_ID, EOS_ID, train_tokenizer


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    examples = generate(400, seed=5)
    full = [parses.normalize_parse(e.seqlogical) for e in examples]
    decoupled = [parses.decouple(p) for p in full]
    root = tmp_path_factory.mktemp("tok")
    return {
        "full": train_tokenizer(full, root / "full", vocab_size=300),
        "decoupled": train_tokenizer(decoupled, root / "decoupled", vocab_size=300),
    }


def _search(tokenizer, constrained, words_in_intents, seed, beam=4, ctc_weight=0.3):
    torch.manual_seed(seed)
    vocab = tokenizer.vocab_size
    model = TransformerASR(
        input_size=16,
        tgt_vocab=vocab,
        d_model=32,
        nhead=2,
        num_encoder_layers=1,
        num_decoder_layers=1,
        d_ffn=64,
        dropout=0.0,
        causal=False,
        normalize_before=True,
    ).eval()
    seq_lin, ctc_lin = Linear(input_size=32, n_neurons=vocab), Linear(input_size=32, n_neurons=vocab)
    tree = TreeConstraintScorer(
        tokenizer.folder,
        eos_index=EOS_ID,
        bos_index=BOS_ID,
        max_decode_ratio=1.0,
        words_in_intents=words_in_intents,
        enabled=constrained,
    )
    scorer = ScorerBuilder(
        full_scorers=[CTCScorer(ctc_lin, blank_index=0, eos_index=EOS_ID), tree],
        weights={"ctc": ctc_weight, "treeconstraint": 1.0},
    )
    search = S2STransformerBeamSearcher(
        modules=[model, seq_lin],
        bos_index=BOS_ID,
        eos_index=EOS_ID,
        min_decode_ratio=0.0,
        max_decode_ratio=1.0,
        beam_size=beam,
        scorer=scorer,
        using_eos_threshold=False,
        length_normalization=True,
    )
    frames = torch.randn(6, 30, 16)
    lens = torch.tensor([1.0, 0.9, 0.7, 0.5, 0.3, 0.2])
    with torch.no_grad():
        enc = model.encode(frames, lens)
        hyps, _, _, _ = search(enc, lens)
    return [tokenizer.decode(h) for h in hyps]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constrained_search_always_yields_a_well_formed_parse(tokenizers, seed):
    tok = tokenizers["full"]
    outputs = _search(tok, constrained=True, words_in_intents=True, seed=seed)
    inventory = set(tok.labels)
    for parse in outputs:
        assert parses.is_valid(parse), parse
        assert parses.labels(parse) <= inventory


def test_decoupled_targets_keep_words_inside_slots(tokenizers):
    tok = tokenizers["decoupled"]
    for seed in range(3):
        for parse in _search(tok, constrained=True, words_in_intents=False, seed=seed):
            assert parses.is_valid(parse), parse
            assert parses.decouple(parse) == parses.canonical(parse), parse


def test_without_the_constraint_random_models_emit_broken_parses(tokenizers):
    outputs = _search(tokenizers["full"], constrained=False, words_in_intents=True, seed=0)
    assert sum(not parses.is_valid(p) for p in outputs) >= len(outputs) // 2


def test_short_step_limit_still_closes_every_node(tokenizers):
    """A hypothesis cut off by the step limit has already closed its nodes:
    with only a few steps allowed, outputs are short but complete."""
    tok = tokenizers["full"]
    tree = TreeConstraintScorer(tok.folder, eos_index=EOS_ID, bos_index=BOS_ID, max_decode_ratio=1.0)
    memory = tree.reset_mem(torch.zeros(1, 5, 4), None)  # limit: 5 steps
    classes = token_classes(tok.pieces(), EOS_ID)
    tokens = torch.tensor([BOS_ID])
    emitted = []
    for _ in range(5):
        scores, memory = tree.score(tokens, memory, None, None)
        allowed = (scores[0] == 0).nonzero().flatten().tolist()
        # always take an opening label when allowed (the greediest nesting)
        opening = [i for i in allowed if classes["intent"][i] or classes["slot"][i]]
        choice = (opening or allowed)[0]
        emitted.append(choice)
        tree.permute_mem(memory, torch.tensor([0]))
        tokens = torch.tensor([choice])
    assert emitted[-1] == EOS_ID
    assert parses.is_valid(tok.decode(emitted))


def test_token_classes_of_a_real_tokenizer(tokenizers):
    tok = tokenizers["full"]
    classes = token_classes(tok.pieces(), EOS_ID)
    pieces = tok.pieces()
    assert sum(classes["intent"]) + sum(classes["slot"]) == len(tok.labels)
    assert pieces[classes["close"].index(True)] == "\u2581]"
    assert classes["eos"][EOS_ID] and not any(classes[c][0] for c in classes)  # pad never allowed


def _allowed_after(tok, labels):
    """Token ids the constraint allows after ``labels`` (label tokens, in order)."""
    tree = TreeConstraintScorer(tok.folder, eos_index=EOS_ID, bos_index=BOS_ID, max_decode_ratio=1.0)
    memory = tree.reset_mem(torch.zeros(1, 30, 4), None)
    pieces = tok.pieces()
    scores, memory = tree.score(torch.tensor([BOS_ID]), memory, None, None)
    for label in labels:
        scores, memory = tree.score(torch.tensor([pieces.index("\u2581" + label)]), memory, None, None)
    return {pieces[i] for i in (scores[0] == 0).nonzero().flatten().tolist()}


def test_an_empty_slot_only_where_training_targets_have_one(tokenizers, tmp_path):
    """The release annotates some empty slots (``[SL:PERSON_REMINDED ]``): the
    search may close a slot at once only for a slot label that training saw
    empty, and a parse with it is well formed."""
    targets = [
        "[IN:CREATE_REMINDER remind [SL:PERSON_REMINDED ] to [SL:TODO call mom ] ]",
        "[IN:CREATE_REMINDER remind [SL:PERSON_REMINDED me ] to [SL:TODO buy milk ] ]",
    ] * 20
    tok = train_tokenizer(targets, tmp_path / "tok", vocab_size=60)
    assert tok.meta["empty_slots"] == ["[SL:PERSON_REMINDED"]
    assert "\u2581]" in _allowed_after(tok, ["[IN:CREATE_REMINDER", "[SL:PERSON_REMINDED"])
    assert "\u2581]" not in _allowed_after(tok, ["[IN:CREATE_REMINDER", "[SL:TODO"])
    full = tokenizers["full"]  # generated targets: no empty slot anywhere
    slot = next(label for label in full.labels if label.startswith("[SL:"))
    intent = next(label for label in full.labels if label.startswith("[IN:"))
    assert "\u2581]" not in _allowed_after(full, [intent, slot])
