"""STOP metrics: exact match (EM), EM-Tree, well-formedness, root-intent
accuracy, slot precision/recall/F1 (label + text, every depth), per domain.

EM compares the whitespace-tokenised parses after case folding (labels upper,
words lower), with ``[IN:X`` / ``[SL:Y`` and ``]`` as tokens; EM-Tree compares
only the labels and brackets. A missing or empty hypothesis counts as wrong.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from stop_slu import parses
from stop_slu.data_prep.release import domain_of


def _pct(k: int, n: int) -> float:
    return round(100.0 * k / n, 2) if n else 0.0


def score(refs: dict, hyps: dict, domains: dict | None = None) -> dict:
    """Metrics of ``hyps`` (ID -> parse) against ``refs`` (ID -> parse).

    Every reference ID counts; IDs only in ``hyps`` are ignored. ``domains``
    (ID -> domain) defaults to the domain read from STOP-style IDs.
    """
    n = len(refs)
    em = em_tree = valid = intent_ok = 0
    slot_tp = slot_hyp = slot_ref = 0
    per_domain: dict[str, list[int]] = {}
    for uid, ref in refs.items():
        hyp = hyps.get(uid, "") or ""
        ok_valid = parses.is_valid(hyp)
        ok_em = bool(hyp.strip()) and parses.canonical(hyp) == parses.canonical(ref)
        ok_tree = bool(hyp.strip()) and parses.skeleton(hyp) == parses.skeleton(ref)
        em += ok_em
        em_tree += ok_tree
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
        "intent_acc": _pct(intent_ok, n),
        "slot_precision": _pct(slot_tp, slot_hyp),
        "slot_recall": _pct(slot_tp, slot_ref),
        "slot_f1": round(2 * slot_tp / (slot_hyp + slot_ref) * 100, 2) if slot_hyp + slot_ref else 0.0,
        "per_domain": {
            d: {"em": _pct(c[0], c[2]), "em_tree": _pct(c[1], c[2]), "n": c[2]}
            for d, c in sorted(per_domain.items())
        },
    }


def read_parse_tsv(path) -> dict:
    """``ID<TAB>parse`` lines (no header) -> dict; a missing parse reads as ''."""
    out = {}
    with open(path, encoding="utf-8", newline="") as f:
        for line_no, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if not row or not row[0].strip():
                continue
            uid = row[0].strip()
            if uid in out:
                raise ValueError(f"{path}:{line_no}: ID {uid!r} appears twice")
            out[uid] = row[1] if len(row) > 1 else ""
    return out


def write_predictions(path, rows):
    """``OUT/predictions_test.tsv``: ID, hypothesis, reference, domain (header row)."""
    path = Path(path)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("ID\thypothesis\treference\tdomain\n")
        for uid, hyp, ref, domain in rows:
            f.write(f"{uid}\t{hyp}\t{ref}\t{domain}\n")
