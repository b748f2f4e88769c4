"""Test metrics split by the voices that spoke each utterance: those training
heard, held-out voices of the families training heard, and families training
never heard. Reads a synthetic corpus's ``manifests/synthesis.tsv`` (written by
``stop-slu synth``) and a run's ``predictions_test.tsv``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from stop_slu import metrics
from stop_slu.data_prep.release import find_release_root, utterance_id
from stop_slu.data_prep.synth import SIDECAR

GROUPS = ("seen voices", "held-out voices", "unseen family")


def read_sidecar(data_folder) -> dict[str, dict] | None:
    """{utterance ID: sidecar row} of the corpus in ``data_folder`` (the
    release root or its parent); None when it has no ``manifests/synthesis.tsv``
    (the real STOP release)."""
    try:
        root = find_release_root(Path(data_folder))
    except FileNotFoundError:
        return None
    path = root / "manifests" / SIDECAR
    if not path.is_file():
        return None
    with open(path, encoding="utf-8", newline="") as f:
        return {utterance_id(r["file_id"]): r for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)}


def voice_group(uid: str, row: dict, train_families: set[str]) -> str:
    """One of ``GROUPS`` for a test utterance."""
    if row["family"] not in train_families:
        return "unseen family"
    return "held-out voices" if uid.split("-")[0].endswith("_1") else "seen voices"


def scores_by_voice(predictions, data_folder) -> dict | None:
    """EM, EM-Tree, slot F1 and counts of ``predictions`` (``predictions_test.tsv``)
    per voice group and per family (``stop_slu.metrics.score``); None when the
    corpus has no sidecar.

    Returns ``{"train_families": [...], "groups": {group: {"em", "em_tree",
    "slot_f1", "n", "families"}}, "families": {family: {"em", "em_tree",
    "slot_f1", "n"}}}``; groups without utterances are left out."""
    sidecar = read_sidecar(data_folder)
    if sidecar is None:
        return None
    refs = metrics.read_parse_tsv(predictions, "reference")
    hyps = metrics.read_parse_tsv(predictions, "hypothesis")
    train_families = {r["family"] for uid, r in sidecar.items() if uid.startswith("train-")}
    by_group: dict[str, list[str]] = {}
    by_family: dict[str, list[str]] = {}
    for uid in refs:
        row = sidecar.get(uid)
        if row is None:
            continue
        by_group.setdefault(voice_group(uid, row, train_families), []).append(uid)
        by_family.setdefault(row["family"], []).append(uid)

    def subset(uids):
        s = metrics.score({u: refs[u] for u in uids}, {u: hyps[u] for u in uids if u in hyps})
        return {"em": s["em"], "em_tree": s["em_tree"], "slot_f1": s["slot_f1"], "n": s["n"]}

    return {
        "train_families": sorted(train_families),
        "groups": {
            g: {**subset(by_group[g]), "families": sorted({sidecar[u]["family"] for u in by_group[g]})}
            for g in GROUPS
            if g in by_group
        },
        "families": {f: subset(uids) for f, uids in sorted(by_family.items())},
    }


def summary_line(scores: dict) -> str:
    """One line for people: EM per voice group, with the families in each."""
    parts = [f"{g} ({', '.join(s['families'])}) EM {s['em']:.1f}% on {s['n']}" for g, s in scores["groups"].items()]
    return "; ".join(parts)
