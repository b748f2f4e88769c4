"""STOP metrics: exact match (EM), EM-Tree, well-formedness, root-intent
accuracy, slot precision/recall/F1 (label + text, every depth), per domain,
and a class for every wrong hypothesis (see ``error_class``).

EM compares the whitespace-tokenised parses after case folding (labels upper,
words lower), with ``[IN:X`` / ``[SL:Y`` and ``]`` as tokens; EM-Tree compares
only the labels and brackets. A missing or empty hypothesis counts as wrong.
"""

from __future__ import annotations

import csv
import io
import logging
from collections import Counter
from pathlib import Path

from stop_slu import parses
from stop_slu.data_prep.release import domain_of

logger = logging.getLogger(__name__)


def _pct(k: int, n: int) -> float:
    return round(100.0 * k / n, 2) if n else 0.0


def score(refs: dict, hyps: dict, domains: dict | None = None) -> dict:
    """Metrics of ``hyps`` (ID -> parse) against ``refs`` (ID -> parse).

    Every reference ID counts (one without a hypothesis is wrong); IDs only in
    ``hyps`` are not scored. Both are counted: ``ref_without_hyp``,
    ``hyp_not_in_ref``. ``domains`` (ID -> domain) defaults to the domain read
    from STOP-style IDs.
    """
    n = len(refs)
    em = em_tree = valid = intent_ok = 0
    slot_tp = slot_hyp = slot_ref = 0
    per_domain: dict[str, list[int]] = {}
    errors = Counter()
    for uid, ref in refs.items():
        hyp = hyps.get(uid, "") or ""
        ok_valid = parses.is_valid(hyp)
        ok_em = bool(hyp.strip()) and parses.canonical(hyp) == parses.canonical(ref)
        ok_tree = bool(hyp.strip()) and parses.skeleton(hyp) == parses.skeleton(ref)
        em += ok_em
        em_tree += ok_tree
        if not ok_em:
            errors[error_class(ref, hyp)] += 1
        valid += ok_valid
        hyp_intent = parses.root_intent(hyp)
        intent_ok += hyp_intent is not None and hyp_intent == parses.root_intent(ref)
        hyp_slots, ref_slots = Counter(parses.slots(hyp)), Counter(parses.slots(ref))
        slot_tp += sum((hyp_slots & ref_slots).values())
        slot_hyp += sum(hyp_slots.values())
        slot_ref += sum(ref_slots.values())
        domain = (domains or {}).get(uid) or domain_of(uid)
        if domain:
            counts = per_domain.setdefault(domain, [0, 0, 0])
            counts[0] += ok_em
            counts[1] += ok_tree
            counts[2] += 1
    return {
        "em": _pct(em, n),
        "em_tree": _pct(em_tree, n),
        "valid": _pct(valid, n),
        "n": n,
        "ref_without_hyp": sum(uid not in hyps for uid in refs),
        "hyp_not_in_ref": sum(uid not in refs for uid in hyps),
        "intent_acc": _pct(intent_ok, n),
        "slot_precision": _pct(slot_tp, slot_hyp),
        "slot_recall": _pct(slot_tp, slot_ref),
        "slot_f1": round(2 * slot_tp / (slot_hyp + slot_ref) * 100, 2) if slot_hyp + slot_ref else 0.0,
        "per_domain": {
            d: {"em": _pct(c[0], c[2]), "em_tree": _pct(c[1], c[2]), "n": c[2]} for d, c in sorted(per_domain.items())
        },
        # share: percent of the wrong hypotheses (the shares sum to 100)
        "errors": {name: {"count": errors[name], "share": _pct(errors[name], n - em)} for name in ERROR_CLASSES},
    }


ERROR_CLASSES = (
    "malformed",  # the hypothesis is not a well-formed parse
    "wrong_intent",  # well-formed, but the root intent differs
    "missing_slot",  # right root intent; slot labels: some missing, none extra
    "extra_slot",  # right root intent; slot labels: some extra, none missing
    "wrong_slot_label",  # right root intent; slot labels both missing and extra
    "wrong_nesting",  # same root intent and slot labels, different tree
    "wrong_slot_text",  # same tree (EM-Tree right), different words
)


def _slot_labels(parse: str) -> Counter:
    return Counter(label for label, _ in parses.slots(parse))


def error_class(ref: str, hyp: str) -> str:
    """The first class in ``ERROR_CLASSES`` that describes a wrong hypothesis."""
    if not parses.is_valid(hyp):
        return "malformed"
    if parses.root_intent(hyp) != parses.root_intent(ref):
        return "wrong_intent"
    hyp_labels, ref_labels = _slot_labels(hyp), _slot_labels(ref)
    missing, extra = ref_labels - hyp_labels, hyp_labels - ref_labels
    if missing and extra:
        return "wrong_slot_label"
    if missing:
        return "missing_slot"
    if extra:
        return "extra_slot"
    if parses.skeleton(hyp) != parses.skeleton(ref):
        return "wrong_nesting"
    return "wrong_slot_text"


NONE = "(none)"


def confusions(refs: dict, hyps: dict) -> Counter:
    """Counts of ``(reference label, hypothesis label)`` pairs over wrong parses:
    the root intent when it differs, and slot labels missing on one side paired
    (in sorted order) with labels extra on the other; unpaired ones meet ``(none)``."""
    counts = Counter()
    for uid, ref in refs.items():
        hyp = hyps.get(uid, "") or ""
        if parses.canonical(hyp) == parses.canonical(ref):
            continue
        ref_intent, hyp_intent = parses.root_intent(ref), parses.root_intent(hyp)
        if ref_intent != hyp_intent:
            counts[(ref_intent or NONE, hyp_intent or NONE)] += 1
        hyp_labels, ref_labels = _slot_labels(hyp), _slot_labels(ref)
        missing = sorted((ref_labels - hyp_labels).elements())
        extra = sorted((hyp_labels - ref_labels).elements())
        for i in range(max(len(missing), len(extra))):
            pair = (missing[i] if i < len(missing) else NONE, extra[i] if i < len(extra) else NONE)
            counts[pair] += 1
    return counts


# Names a header row gives the ID column and, per side, the parse column (first found wins).
ID_COLUMNS = ("id", "uid", "utt_id", "utterance_id", "key")
PARSE_COLUMNS = {
    "reference": ("reference", "parse", "semantics", "target", "ref"),
    "hypothesis": ("hypothesis", "parse", "prediction", "semantics", "hyp"),
}


def read_parse_tsv(path, side: str = "hypothesis") -> dict:
    """An ``ID<TAB>parse`` file -> {ID: parse}; a missing parse reads as ''.

    UTF-8 with or without a byte-order mark. A first row whose first field is
    an ID column name (``ID``, ``uid``...) is a header; its parse column is then
    the one named for ``side`` (``reference`` or ``hypothesis``, else
    ``parse``...), so the recipe's ``predictions_test.tsv`` (ID, hypothesis,
    reference, domain) reads right on either side. Raises ValueError, one line
    starting with the path, for a file that is not UTF-8, has no tab, no rows,
    a header without a parse column, or IDs given twice with different parses
    (all of them named, with their lines); an ID repeated with the same parse
    is read once, with a warning naming it.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte {error.start} is not UTF-8); save the file as UTF-8") from None
    rows = [
        (line_no, row)
        for line_no, row in enumerate(
            csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE), 1
        )
        if row and row[0].strip()
    ]
    if not rows:
        raise ValueError(f"{path}: no ID<TAB>parse lines; expected one utterance per line")
    if all(len(row) < 2 for _, row in rows):
        raise ValueError(f"{path}: no tab on any line; expected ID<TAB>parse lines (tab-separated, not spaces)")
    column = 1
    header = [field.strip().lower() for field in rows[0][1]]
    if header[0] in ID_COLUMNS:
        names = [name for name in PARSE_COLUMNS[side] if name in header[1:]]
        if not names:
            raise ValueError(
                f"{path}: the header row names {', '.join(rows[0][1])}, no parse column; "
                f"name it {' or '.join(PARSE_COLUMNS[side][:2])}, or drop the header"
            )
        column = header.index(names[0])
        rows = rows[1:]
    out, lines, conflicts, repeated = {}, {}, {}, []
    for line_no, row in rows:
        uid = row[0].strip()
        parse = row[column] if len(row) > column else ""
        if uid in out:
            if parses.canonical(parse) != parses.canonical(out[uid]):
                conflicts.setdefault(uid, [lines[uid]]).append(line_no)
            elif uid not in repeated:
                repeated.append(uid)
            continue
        out[uid], lines[uid] = parse, line_no
    if conflicts:
        named = [f"{uid!r} (lines {', '.join(map(str, at))})" for uid, at in conflicts.items()]
        more = f" and {len(named) - 5} more" if len(named) > 5 else ""
        raise ValueError(
            f"{path}: {len(conflicts)} ID(s) appear twice with different parses: {', '.join(named[:5])}{more}; "
            "keep one line per utterance"
        )
    if repeated:
        more = f" and {len(repeated) - 5} more" if len(repeated) > 5 else ""
        logger.warning(
            "%s: %d ID(s) appear more than once with the same parse, scored once: %s%s",
            path,
            len(repeated),
            ", ".join(repeated[:5]),
            more,
        )
    return out


def write_predictions(path, rows):
    """``OUT/predictions_test.tsv``: ID, hypothesis, reference, domain (header row)."""
    path = Path(path)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("ID\thypothesis\treference\tdomain\n")
        for uid, hyp, ref, domain in rows:
            f.write(f"{uid}\t{hyp}\t{ref}\t{domain}\n")
