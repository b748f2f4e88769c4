"""A built-in text grammar for mini-STOP: utterances with their STOP parses.

The grammar writes templates directly in the parse notation, so a template is
at once the text and its tree::

    "set an alarm [SL:DATE_TIME <alarm_time> ]"

* ``[SL:X`` / ``[IN:X`` ... ``]`` are parse nodes (real TOPv2 labels, used
  under the same parents and in the same domains as in TOPv2);
* ``<name>`` expands one alternative of the symbol ``name`` (``SYMBOLS``); an
  alternative may itself hold slots and intents, which is how nested parses
  such as ``[SL:DESTINATION [IN:GET_EVENT ... ] ]`` arise;
* ``(a b|c|)`` picks one of its ``|``-separated alternatives (empty allowed);
* anything else is a word.

A top-level template (``INTENTS``) is wrapped in ``[IN:<intent> ... ]``.
Words are lower case ``a-z`` and apostrophes; numbers are spelled out, as in
STOP's normalised text, so eSpeak reads exactly what the parse says. The
utterance is the parse's words, plus a ``?`` (not in the parse, as in TOPv2)
after questions.

The tables (``SYMBOLS``, ``INTENTS``) are in ``grammar_tables.py``; this
module is the engine. ``generate(n, seed)`` samples domain (uniform), intent (weighted), template
(uniform) and every choice inside with one ``random.Random(seed)``; a
duplicate utterance is redrawn within the same domain, so domains stay
balanced. ``stats()`` enumerates the
grammar to describe its coverage.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import cache

from stop_slu.data_prep.grammar_tables import INTENTS, SYMBOLS


@dataclass(frozen=True)
class Example:
    """One generated utterance with its TOPv2-style parse."""

    domain: str  # alarm event messaging music navigation reminder timer weather
    utterance: str  # raw text (may end with '?')
    seqlogical: str  # TOPv2-style parse holding every word of the utterance


DOMAINS = tuple(sorted(INTENTS))  # alarm event messaging music navigation reminder timer weather

_QUESTION_WORDS = frozenset(
    "what what's when where where's how how's is are do does did will can could who which "
    "any should has have would am was".split()
)
_MAX_N = 200_000  # more than any corpus needs; generate() refuses larger requests

# ----------------------------------------------------------------------------
# Engine

_PIECE_RE = re.compile(r"\([^()]*\)|\S+")


@cache
def _pieces(template: str) -> tuple:
    """Template -> tuple of pieces: ('w', word) | ('s', symbol) | ('g', (alternatives...))."""
    out = []
    for piece in _PIECE_RE.findall(template):
        if piece.startswith("("):
            out.append(("g", tuple(alt.strip() for alt in piece[1:-1].split("|"))))
        elif piece.startswith("<") and piece.endswith(">"):
            name = piece[1:-1]
            if name not in SYMBOLS:
                raise KeyError(f"unknown symbol <{name}> in {template!r}")
            out.append(("s", name))
        else:
            out.append(("w", piece))
    return tuple(out)


def _expand(template: str, rng: random.Random, out: list[str]) -> None:
    for kind, value in _pieces(template):
        if kind == "w":
            out.append(value)
        elif kind == "s":
            _expand(rng.choice(SYMBOLS[value]), rng, out)
        else:
            _expand(rng.choice(value), rng, out)


def _is_label(token: str) -> bool:
    return token.startswith("[") or token == "]"


def _example(domain: str, intent: str, template: str, rng: random.Random) -> Example:
    tokens = ["[IN:" + intent]
    _expand(template, rng, tokens)
    tokens.append("]")
    words = [t for t in tokens if not _is_label(t)]
    utterance = " ".join(words)
    if words[0] in _QUESTION_WORDS or (len(words) > 1 and words[0] == "hey" and words[1] in _QUESTION_WORDS):
        utterance += "?"
    return Example(domain, utterance, " ".join(tokens))


def _intent_tables():
    """Per domain: (intent labels, cumulative weights, template lists)."""
    tables = {}
    for domain in DOMAINS:
        rows = INTENTS[domain]
        cum, total = [], 0.0
        for _, weight, _ in rows:
            total += weight
            cum.append(total)
        tables[domain] = ([r[0] for r in rows], cum, [r[2] for r in rows])
    return tables


_TABLES = _intent_tables()


def generate(n: int, seed: int) -> list[Example]:
    """n examples with pairwise-distinct utterances, deterministic for (n, seed).

    Domains are drawn uniformly, intents by weight within a domain, templates
    uniformly. Raises ValueError when n distinct examples cannot be produced
    (n negative, above the supported maximum, or the grammar runs dry).
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, not {n!r}")
    if n > _MAX_N:
        raise ValueError(f"the grammar supports at most {_MAX_N} distinct examples, {n} asked")
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[Example] = []
    misses, max_misses = 0, 2_000
    while len(out) < n:
        # The domain is drawn once per example and kept while retrying a
        # duplicate, so domains stay balanced even where short templates run dry.
        domain = DOMAINS[rng.randrange(len(DOMAINS))]
        labels, cum, templates = _TABLES[domain]
        for _ in range(50):
            i = _bisect(cum, rng.random() * cum[-1])
            ex = _example(domain, labels[i], rng.choice(templates[i]), rng)
            key = ex.utterance.rstrip("?")
            if key not in seen:
                seen.add(key)
                out.append(ex)
                misses = 0
                break
        else:
            misses += 1
            if misses > max_misses:
                raise ValueError(f"could only produce {len(out)} distinct examples, {n} asked")
    return out


def _bisect(cum: list[float], x: float) -> int:
    for i, c in enumerate(cum):
        if x < c:
            return i
    return len(cum) - 1


# ----------------------------------------------------------------------------
# Coverage statistics (by enumeration of the grammar)

_CAP = 20_000  # enumeration stops growing a set of texts beyond this size


def _top_templates():
    for domain in DOMAINS:
        for intent, _, templates in INTENTS[domain]:
            for template in templates:
                yield domain, intent, template


def _reachable_fragments() -> list[str]:
    """Every template and symbol alternative reachable from the intents, in a fixed order."""
    fragments, seen_syms = [], set()
    stack = [t for _, _, t in _top_templates()]
    while stack:
        fragment = stack.pop(0)
        fragments.append(fragment)
        for kind, value in _pieces(fragment):
            if kind == "g":
                stack.extend(value)
            elif kind == "s" and value not in seen_syms:
                seen_syms.add(value)
                stack.extend(SYMBOLS[value])
    return fragments


def reachable_symbols() -> list[str]:
    """Names of the symbols some top-level template can expand (for coverage checks)."""
    names = []
    for fragment in _reachable_fragments():
        for kind, value in _pieces(fragment):
            if kind == "s" and value not in names:
                names.append(value)
    return names


@cache
def _symbol_texts(name: str) -> tuple:
    out: dict[str, None] = {}
    for alt in SYMBOLS[name]:
        for text in _texts(alt):
            out[text] = None
            if len(out) >= _CAP:
                return tuple(out)
    return tuple(out)


@cache
def _texts(fragment: str) -> tuple:
    """Distinct word strings a fragment can produce (labels dropped), up to _CAP."""
    partial = [""]
    for kind, value in _pieces(fragment):
        if kind == "w":
            options = ("",) if _is_label(value) else (value,)
        elif kind == "s":
            options = _symbol_texts(value)
        else:
            merged: dict[str, None] = {}
            for alt in value:
                merged.update(dict.fromkeys(_texts(alt)))
            options = tuple(merged)
        nxt: dict[str, None] = {}
        for head in partial:
            for tail in options:
                nxt[(head + " " + tail).strip()] = None
                if len(nxt) >= _CAP:
                    break
            if len(nxt) >= _CAP:
                break
        partial = list(nxt)
    return tuple(partial)


def _slot_spans(fragment: str):
    """(label, inner fragment) for each slot opened and closed in the fragment."""
    tokens = [p for p in _PIECE_RE.findall(fragment)]
    stack = []
    for i, tok in enumerate(tokens):
        if tok.startswith("[SL:") or tok.startswith("[IN:"):
            stack.append((tok, i))
        elif tok == "]":
            if not stack:
                raise ValueError(f"unbalanced ']' in {fragment!r}")
            label, start = stack.pop()
            if label.startswith("[SL:"):
                yield label[1:], " ".join(tokens[start + 1 : i])
    if stack:
        raise ValueError(f"unclosed node in {fragment!r}")


@cache
def _symbol_depth(name: str) -> int:
    return max(_depth(alt) for alt in SYMBOLS[name])


@cache
def _depth(fragment: str) -> int:
    """Deepest intent nesting a fragment can produce (intents opened in it count)."""
    best, open_intents, stack = 0, 0, []
    for kind, value in _pieces(fragment):
        below = 0
        if kind == "w":
            if value.startswith("[IN:"):
                open_intents += 1
                stack.append(True)
            elif value.startswith("[SL:"):
                stack.append(False)
            elif value == "]" and stack and stack.pop():
                open_intents -= 1
        elif kind == "s":
            below = _symbol_depth(value)
        else:
            below = max(_depth(alt) for alt in value)
        best = max(best, open_intents + below)
    return best


def stats() -> dict:
    """Coverage of the grammar, by enumeration (slot_values is capped per slot
    at 20,000 texts, so it is a lower bound)."""
    fragments = _reachable_fragments()
    intents = {intent for _, intent, _ in _top_templates()}
    slots = set()
    slot_texts: dict[str, None] = {}
    for fragment in fragments:
        for kind, value in _pieces(fragment):
            if kind == "w" and value.startswith("[IN:"):
                intents.add(value[4:])
            elif kind == "w" and value.startswith("[SL:"):
                slots.add(value[4:])
        for _, inner in _slot_spans(fragment):
            slot_texts.update(dict.fromkeys(_texts(inner)))
    templates = list(dict.fromkeys(t for _, _, t in _top_templates()))
    return {
        "domains": len(DOMAINS),
        "intents": len(intents),
        "slots": len(slots),
        "slot_values": len(slot_texts),
        "carrier_phrases": len(templates),
        "max_depth": 1 + max(_depth(t) for t in templates),
    }
