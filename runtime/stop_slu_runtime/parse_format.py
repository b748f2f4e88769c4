"""The little of the STOP parse format the runtime needs to write
``stop-slu parse``'s JSON: the decoupled form, the root intent and the slots
(``stop_slu.parses`` holds the full format; tests hold the two equal)."""

from __future__ import annotations

import re

_TOKEN_RE = re.compile(r"\[(?:IN|SL):[^\s\[\]]+|\]|[^\s\[\]]+", re.IGNORECASE)


def _tokens(parse: str) -> list[str]:
    return [t.upper() if t[:4].upper() in ("[IN:", "[SL:") else t for t in _TOKEN_RE.findall(parse)]


def _tree(tokens: list[str]):
    """(label, children) of a well-formed parse, else None."""
    if not tokens or tokens[0][:4] != "[IN:":
        return None
    stack, root = [], None
    for token in tokens:
        if root is not None:
            return None
        if token[:4] in ("[IN:", "[SL:"):
            node = (token[1:], [])
            if stack:
                if stack[-1][0][:3] == node[0][:3]:
                    return None
                stack[-1][1].append(node)
            stack.append(node)
        elif token == "]":
            if not stack:
                return None
            node = stack.pop()
            root = node if not stack else None
        elif stack:
            stack[-1][1].append(token)
        else:
            return None
    return None if stack else root


def _string(node) -> str:
    label, children = node
    return " ".join(["[" + label, *(c if isinstance(c, str) else _string(c) for c in children), "]"])


def _decoupled(node):
    label, children = node
    intent = label.startswith("IN:")
    kept = [c if isinstance(c, str) else _decoupled(c) for c in children if not (intent and isinstance(c, str))]
    return (label, kept)


def decouple_if_valid(parse: str) -> str:
    """Words directly under an intent dropped; an ill-formed parse as it is."""
    root = _tree(_tokens(parse))
    return parse if root is None else _string(_decoupled(root))


def _words(node) -> list[str]:
    return [w for c in node[1] for w in ([c] if isinstance(c, str) else _words(c))]


def _slot_nodes(node):
    if not node[0].startswith("IN:"):
        yield node
    for child in node[1]:
        if not isinstance(child, str):
            yield from _slot_nodes(child)


def describe(parse: str) -> dict:
    """``{"parse", "intent", "slots": [{"label", "text"}]}`` as ``stop-slu parse`` writes them."""
    tokens = _tokens(parse)
    intent = tokens[0][4:] if tokens and tokens[0][:4] == "[IN:" else None
    canonical = [t if t[:4] in ("[IN:", "[SL:") else t.lower() for t in tokens]
    root = _tree(canonical)
    slots = [] if root is None else [{"label": n[0][3:], "text": " ".join(_words(n))} for n in _slot_nodes(root)]
    return {"parse": parse, "intent": intent, "slots": slots}
