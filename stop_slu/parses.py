"""The STOP parse format, in one place.

A parse is a bracketed tree such as
``[IN:GET_WEATHER [SL:LOCATION paris ] [SL:DATE_TIME tomorrow ] ]``.
Tokens are ``[IN:LABEL`` / ``[SL:LABEL`` (open a node), ``]`` (close one) and
words. Intents hold slots (and, outside the decoupled form, words); slots hold
words and nested intents.

Everything that reads or writes parses (data preparation, the tokenizer, the
metrics, the constrained search, the ``parse`` command) uses this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from stop_slu.numbers import number_to_words, ordinal_words

_TOKEN_RE = re.compile(r"\[(?:IN|SL):[^\s\[\]]+|\]|[^\s\[\]]+", re.IGNORECASE)
CLOSE = "]"


class ParseError(ValueError):
    """A string that is not a well-formed parse."""


def tokenize(parse: str) -> list[str]:
    """Split a parse into tokens, tolerating missing spaces (``][SL:X``).

    Label tokens are upper-cased (``[in:x`` -> ``[IN:X``); words are kept.
    """
    tokens = _TOKEN_RE.findall(parse)
    return [t.upper() if is_open(t) else t for t in tokens]


def is_open(token: str) -> bool:
    """True for ``[IN:X`` and ``[SL:X`` tokens."""
    return token[:4].upper() in ("[IN:", "[SL:")


def is_intent(token: str) -> bool:
    """True for an intent label token (``[IN:X``, any case)."""
    return token[:4].upper() == "[IN:"


def is_slot(token: str) -> bool:
    """True for a slot label token (``[SL:X``, any case)."""
    return token[:4].upper() == "[SL:"


def is_structure(token: str) -> bool:
    """Label or closing bracket: the tokens EM-Tree compares."""
    return token == CLOSE or is_open(token)


def canonical(parse: str) -> str:
    """The form compared by exact match: labels upper case, words lower case,
    single spaces. References and hypotheses go through the same function."""
    return " ".join(t if is_open(t) else t.lower() for t in tokenize(parse))


def skeleton(parse: str) -> str:
    """Labels and brackets only (slot text dropped): the form EM-Tree compares."""
    return " ".join(t for t in tokenize(canonical(parse)) if is_structure(t))


@dataclass
class Node:
    """One intent or slot; children are words (str) or nested nodes."""

    label: str  # e.g. "IN:GET_WEATHER" or "SL:LOCATION"
    children: list = field(default_factory=list)

    @property
    def is_intent(self) -> bool:
        """True for an intent node (``IN:``), False for a slot (``SL:``)."""
        return self.label.startswith("IN:")

    def words(self) -> list[str]:
        """Every word under this node, at any depth, in order."""
        out = []
        for child in self.children:
            out.extend(child.words() if isinstance(child, Node) else [child])
        return out

    def nodes(self):
        """This node and every node below it, depth first."""
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.nodes()

    def depth(self) -> int:
        """Number of intent levels from here down (a flat parse has depth 1)."""
        below = [c.depth() for c in self.children if isinstance(c, Node)]
        return (1 if self.is_intent else 0) + max(below, default=0)


def parse_tree(parse: str) -> Node:
    """Build the tree of a parse, or raise ParseError saying what is wrong.

    Well-formed means: one root intent spanning the whole string, every
    bracket closed, slots directly under intents and intents directly under
    slots. An empty slot (``[SL:PERSON_REMINDED ]``) is well formed: STOP and
    TOPv2 annotate some (a reminder that names no person), so it is data.
    """
    tokens = tokenize(parse)
    if not tokens:
        raise ParseError("empty parse")
    if not is_intent(tokens[0]):
        raise ParseError(f"a parse must open with an intent label, not {tokens[0]!r}")
    stack: list[Node] = []
    root = None
    for position, token in enumerate(tokens):
        if root is not None:
            raise ParseError(f"text after the root closed at token {position}: {token!r}")
        if is_open(token):
            node = Node(token[1:])
            if stack:
                parent = stack[-1]
                if parent.is_intent == node.is_intent:
                    kind = "an intent" if node.is_intent else "a slot"
                    raise ParseError(f"{kind} cannot sit directly inside {parent.label}")
                parent.children.append(node)
            stack.append(node)
        elif token == CLOSE:
            node = stack.pop()
            if not stack:
                root = node
        else:
            stack[-1].children.append(token)
    if stack:
        raise ParseError(f"{len(stack)} node(s) left open: {', '.join(n.label for n in stack)}")
    return root


def check(parse: str) -> tuple[str, set[str]]:
    """``(canonical(parse), empty_slots(canonical(parse)))`` for a well-formed
    parse, else ParseError with ``parse_tree``'s reason: the same rules in one
    pass over the tokens, without building the tree (data preparation checks
    every distinct target of STOP's 230,000 rows with it)."""
    tokens = _TOKEN_RE.findall(parse)
    if not tokens:
        raise ParseError("empty parse")
    out: list[str] = []
    stack: list[str] = []
    empty: set[str] = set()
    closed = False
    for position, token in enumerate(tokens):
        if closed:
            raise ParseError(f"text after the root closed at token {position}: {token!r}")
        head = token[:4].upper()
        if head == "[IN:" or head == "[SL:":
            token = token.upper()
            if not stack and head != "[IN:":
                raise ParseError(f"a parse must open with an intent label, not {token!r}")
            if stack and stack[-1][:4] == head:
                kind = "an intent" if head == "[IN:" else "a slot"
                raise ParseError(f"{kind} cannot sit directly inside {stack[-1][1:]}")
            stack.append(token)
        elif token == CLOSE:
            if not stack:
                raise ParseError(f"a parse must open with an intent label, not {token!r}")
            label = stack.pop()
            if out[-1] == label and label[:4] == "[SL:":
                empty.add(label)
            closed = not stack
        else:
            if not stack:
                raise ParseError(f"a parse must open with an intent label, not {token!r}")
            token = token.lower()
        out.append(token)
    if stack:
        raise ParseError(f"{len(stack)} node(s) left open: {', '.join(label[1:] for label in stack)}")
    return " ".join(out), empty


def is_valid(parse: str) -> bool:
    """True when ``parse`` is a well-formed tree (``parse_tree`` accepts it)."""
    try:
        parse_tree(parse)
    except ParseError:
        return False
    return True


def to_string(node: Node) -> str:
    """A tree back to its one-line form, tokens separated by single spaces."""
    parts = ["[" + node.label]
    for child in node.children:
        parts.append(to_string(child) if isinstance(child, Node) else child)
    parts.append(CLOSE)
    return " ".join(parts)


def decouple(parse: str) -> str:
    """The decoupled form: drop words that sit directly under an intent.

    ``[IN:CREATE_ALARM set an alarm [SL:DATE_TIME for six ] ]`` becomes
    ``[IN:CREATE_ALARM [SL:DATE_TIME for six ] ]``.
    """

    def strip(node: Node) -> Node:
        kept = [
            strip(c) if isinstance(c, Node) else c for c in node.children if isinstance(c, Node) or not node.is_intent
        ]
        return Node(node.label, kept)

    return to_string(strip(parse_tree(parse)))


def decouple_if_valid(parse: str) -> str:
    """``decouple`` for a well-formed parse; anything else is returned as is."""
    try:
        return decouple(parse)
    except ParseError:
        return parse


def root_intent(parse: str) -> str | None:
    """``IN:LABEL`` of the root, or None for an unreadable parse."""
    tokens = tokenize(parse)
    return tokens[0][1:] if tokens and is_intent(tokens[0]) else None


def slots(parse: str) -> list[tuple[str, str]]:
    """(label, text) for every slot at every depth; text is all words below
    the slot, lower-cased. Empty for an unreadable parse."""
    try:
        root = parse_tree(canonical(parse))
    except ParseError:
        return []
    return [(n.label, " ".join(n.words())) for n in root.nodes() if not n.is_intent]


def empty_slots(parse: str) -> set[str]:
    """The slot label tokens (``[SL:Y``) that some slot of ``parse`` leaves
    empty (``[SL:Y ]``, as the release annotates a few rows)."""
    tokens = tokenize(parse)
    return {t for t, nxt in zip(tokens, tokens[1:]) if nxt == CLOSE and is_slot(t)}


def labels(parse: str) -> set[str]:
    """The label tokens (``[IN:X``, ``[SL:Y``) a parse uses."""
    return {t for t in tokenize(parse) if is_open(t)}


def tree_view(parse: str) -> str:
    """An indented, human-readable view of a parse."""
    lines = []

    def walk(node: Node, depth: int):
        words = [c for c in node.children if not isinstance(c, Node)]
        lines.append("  " * depth + node.label + (": " + " ".join(words) if words else ""))
        for child in node.children:
            if isinstance(child, Node):
                walk(child, depth + 1)

    walk(parse_tree(parse), 0)
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# Text normalisation (STOP's ``normalized_*`` columns): lower case, numbers in
# words, no punctuation. Used to derive those columns from raw text.

_NUMBER_PIECE_RE = re.compile(r"(\d+)(st|nd|rd|th)?|([a-z']+)")
_LETTER_ABBREVIATIONS = {"am": "a m", "pm": "p m"}


def normalize_word(word: str) -> str:
    """One raw word -> zero or more normalised words (space separated)."""
    word = word.lower().replace(":00", " o'clock").replace("%", " percent ").replace("&", " and ")
    out = []
    for chunk in re.split(r"[^a-z0-9']+", word):
        pieces = _NUMBER_PIECE_RE.findall(chunk)
        has_digits = any(d for d, _, _ in pieces)
        for digits, suffix, letters in pieces:
            if digits:
                n = int(digits) if len(digits) <= 9 else None
                if n is None:
                    out.extend(number_to_words(int(d)) for d in digits)
                else:
                    out.append(ordinal_words(n) if suffix else number_to_words(n))
            else:
                letters = letters.strip("'")
                if letters:
                    out.append(_LETTER_ABBREVIATIONS.get(letters, letters) if has_digits else letters)
    return " ".join(out)


def normalize_text(text: str) -> str:
    """A raw utterance in STOP's normalised form."""
    return " ".join(w for w in (normalize_word(w) for w in text.split()) if w)


def normalize_parse(parse: str) -> str:
    """Normalise every word of a parse; labels and brackets are kept."""
    out = []
    for token in tokenize(parse):
        if is_structure(token):
            out.append(token)
        else:
            word = normalize_word(token)
            if word:
                out.append(word)
    return " ".join(out)
