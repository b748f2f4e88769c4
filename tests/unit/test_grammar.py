"""The built-in mini-STOP grammar: determinism, well-formed parses, coverage,
and fidelity to TOPv2's label inventory (when TOPv2 is available)."""

from __future__ import annotations

import collections
import csv
import re
import time
from pathlib import Path

import pytest

from stop_slu import parses
from stop_slu.data_prep import grammar
from stop_slu.data_prep.grammar import Example, generate, stats

TOPV2 = Path(__file__).resolve().parents[3] / "shared" / "topv2"
STOP_DOMAINS = {"alarm", "event", "messaging", "music", "navigation", "reminder", "timer", "weather"}
WORD_RE = re.compile(r"^[a-z']+$")


@pytest.fixture(scope="module")
def sample() -> list[Example]:
    return generate(5000, 123)


@pytest.fixture(scope="module")
def trees(sample):
    return [parses.parse_tree(ex.seqlogical) for ex in sample]


# --- generate() ----------------------------------------------------------------


def test_count_and_types():
    out = generate(50, 0)
    assert len(out) == 50
    assert all(isinstance(ex, Example) for ex in out)
    assert generate(0, 0) == []


def test_deterministic_for_same_seed():
    assert generate(500, 42) == generate(500, 42)


def test_prefix_property_and_seed_sensitivity():
    a, b = generate(300, 1), generate(300, 2)
    assert a != b
    assert len({ex.utterance for ex in a} & {ex.utterance for ex in b}) < 150
    # n only decides where to stop: a shorter run is a prefix of a longer one
    assert generate(100, 1) == a[:100]


def test_utterances_distinct(sample):
    keys = [ex.utterance.rstrip("?") for ex in sample]
    assert len(set(keys)) == len(keys) == 5000


def test_invalid_n_raises():
    with pytest.raises(ValueError):
        generate(-1, 0)
    with pytest.raises(ValueError):
        generate(10**9, 0)


def test_fast_and_large_enough():
    start = time.perf_counter()
    generate(3000, 5)
    assert time.perf_counter() - start < 2.0
    big = generate(20000, 5)
    assert len({ex.utterance for ex in big}) == 20000


# --- parses and text -------------------------------------------------------------


def test_every_parse_is_well_formed(sample, trees):
    for ex, tree in zip(sample, trees):
        assert tree.is_intent, ex.seqlogical
        assert parses.is_valid(ex.seqlogical)


def test_parse_words_equal_utterance_words(sample, trees):
    for ex, tree in zip(sample, trees):
        assert tree.words() == ex.utterance.rstrip("?").split(), ex
        assert "?" not in ex.seqlogical
        assert ex.utterance.count("?") <= 1 and ("?" not in ex.utterance or ex.utterance.endswith("?"))


def test_text_is_lower_case_words_without_digits(sample, trees):
    for ex, tree in zip(sample, trees):
        for word in tree.words():
            assert WORD_RE.match(word), (word, ex.utterance)
        assert "  " not in ex.utterance and ex.utterance == ex.utterance.strip()
        # The parse survives the project's normalisation unchanged
        assert parses.normalize_parse(ex.seqlogical) == ex.seqlogical


def test_domains_are_stop_domains_and_balanced(sample):
    counts = collections.Counter(ex.domain for ex in sample)
    assert set(counts) == STOP_DOMAINS
    expected = len(sample) / len(STOP_DOMAINS)
    for domain, count in counts.items():
        assert 0.75 * expected <= count <= 1.25 * expected, (domain, count)


def test_sample_covers_labels_and_nesting(sample, trees):
    intents, slots = set(), set()
    for tree in trees:
        for node in tree.nodes():
            (intents if node.is_intent else slots).add(node.label)
    assert len(intents) >= 40, sorted(intents)
    assert len(slots) >= 40, sorted(slots)
    depths = collections.Counter(tree.depth() for tree in trees)
    nested = sum(c for d, c in depths.items() if d >= 2) / len(trees)
    assert 0.12 <= nested <= 0.35, depths
    assert depths[3] > 0, depths


def test_slot_texts_are_varied(trees):
    texts = {" ".join(n.words()) for tree in trees for n in tree.nodes() if not n.is_intent}
    assert len(texts) >= 1000


# --- stats() -----------------------------------------------------------------------


def test_stats():
    s = stats()
    assert set(s) == {"domains", "intents", "slots", "slot_values", "carrier_phrases", "max_depth"}
    assert s["domains"] == 8
    assert s["intents"] >= 40
    assert s["slots"] >= 40
    assert s["slot_values"] >= 1000
    assert s["carrier_phrases"] >= 100
    assert s["max_depth"] >= 3


def test_stats_agree_with_samples(trees):
    s = stats()
    intents = {n.label for t in trees for n in t.nodes() if n.is_intent}
    slots = {n.label for t in trees for n in t.nodes() if not n.is_intent}
    assert len(intents) <= s["intents"] and len(slots) <= s["slots"]
    assert max(t.depth() for t in trees) <= s["max_depth"]


def test_every_symbol_is_used():
    assert set(grammar.reachable_symbols()) == set(grammar.SYMBOLS)


# --- fidelity to TOPv2 ---------------------------------------------------------------


@pytest.fixture(scope="module")
def topv2_inventory():
    if not TOPV2.is_dir() or not list(TOPV2.glob("*_train.tsv")):
        pytest.skip(f"TOPv2 not found at {TOPV2}")
    labels, intent_domains, pairs = set(), collections.defaultdict(set), set()
    for path in sorted(TOPV2.glob("*_train.tsv")):
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            next(reader, None)
            for domain, _, parse in reader:
                try:
                    tree = parses.parse_tree(parse)
                except parses.ParseError:
                    continue
                for node in tree.nodes():
                    labels.add(node.label)
                    if node.is_intent:
                        intent_domains[node.label].add(domain)
                    for child in node.children:
                        if isinstance(child, parses.Node):
                            pairs.add((node.label, child.label))
    return labels, intent_domains, pairs


def test_labels_are_topv2_labels_used_as_in_topv2(sample, trees, topv2_inventory):
    labels, intent_domains, pairs = topv2_inventory
    for ex, tree in zip(sample, trees):
        for node in tree.nodes():
            assert node.label in labels, (node.label, ex.seqlogical)
            if node.is_intent:
                assert ex.domain in intent_domains[node.label], (node.label, ex.domain, ex.seqlogical)
            for child in node.children:
                if isinstance(child, parses.Node):
                    assert (node.label, child.label) in pairs, (node.label, child.label, ex.seqlogical)
