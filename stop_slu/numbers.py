"""Numbers in words, as STOP's normalised text spells them.

``number_to_words(21)`` is ``"twenty one"``, ``ordinal_words(21)`` is
``"twenty first"``. The one implementation behind parse normalisation
(``stop_slu.parses.normalize_text``) and the mini-STOP grammar
(``data_prep/grammar_tables.py``), so both spell a number the same way.
"""

from __future__ import annotations

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve "
    "thirteen fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINAL = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def number_to_words(n: int) -> str:
    """Cardinal number in words, 0 <= n < 10**9 (``105`` -> ``"one hundred five"``).

    Raises ValueError outside that range."""
    if not 0 <= n < 10**9:
        raise ValueError(f"{n}: only 0 <= n < 10**9 are spelled")
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for size, name in ((10**6, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            head = number_to_words(n // size) + " " + name
            return head if n % size == 0 else head + " " + number_to_words(n % size)
    raise AssertionError(n)


def ordinal_words(n: int) -> str:
    """Ordinal number in words, 0 <= n < 10**9 (``21`` -> ``"twenty first"``)."""
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL:
        words[-1] = _ORDINAL[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)
