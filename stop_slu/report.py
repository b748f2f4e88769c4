"""``OUT/report.md``: the test results of a training run, for people.

Reads what the recipe wrote in its output folder (``predictions_test.tsv`` and
``train_log.txt``) and writes ``report.md`` with the metrics tables, error
classes and the most frequent label confusions, plus two charts beside it:
``per_domain.png`` (EM and EM-Tree per domain) and ``learning_curves.png``
(losses, token accuracy and EM over training). ``stop-slu report OUT`` rebuilds
it at any time.
"""

from __future__ import annotations

import csv
from pathlib import Path

from stop_slu import metrics

PREDICTIONS = "predictions_test.tsv"
TRAIN_LOG = "train_log.txt"
REPORT = "report.md"
DOMAIN_CHART = "per_domain.png"
CURVES_CHART = "learning_curves.png"

ERROR_MEANINGS = {
    "malformed": "the output is not a well-formed parse",
    "wrong_intent": "the root intent is wrong",
    "missing_slot": "a slot of the reference is missing",
    "extra_slot": "a slot the reference does not have",
    "wrong_slot_label": "a slot has the wrong label",
    "wrong_nesting": "right labels, wrong tree shape",
    "wrong_slot_text": "right tree, wrong words in a slot",
}


def read_predictions(path) -> list[dict]:
    """Rows of ``predictions_test.tsv``: ID, hypothesis, reference, domain."""
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def read_train_log(path) -> list[dict]:
    """One dict per validation line of SpeechBrain's ``train_log.txt``
    (``epoch: 3, lr: ..., steps: ... - train loss: ... - valid loss: ..., valid ACC: ...``)."""
    entries = []
    if not Path(path).is_file():
        return entries
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.startswith("epoch:"):
            continue
        entry = {}
        for part in line.split(" - "):
            for item in part.split(", "):
                key, _, value = item.partition(": ")
                entry[key.strip()] = _number(value.strip())
        entries.append(entry)
    return entries


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _plot_domains(per_domain: dict, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domains = list(per_domain)
    x = range(len(domains))
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(domains)), 3.5))
    ax.bar([i - 0.2 for i in x], [per_domain[d]["em"] for d in domains], width=0.4, label="EM")
    ax.bar([i + 0.2 for i in x], [per_domain[d]["em_tree"] for d in domains], width=0.4, label="EM-Tree")
    ax.set_xticks(list(x), [f"{d}\n(n={per_domain[d]['n']})" for d in domains])
    ax.set_ylim(0, 100)
    ax.set_ylabel("%")
    ax.set_title("Test accuracy per domain")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_curves(log: list[dict], path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_key = "minutes" if all("minutes" in e for e in log) else "epoch"
    xs = [e[x_key] for e in log]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    for key, label in (("train loss", "train"), ("valid loss", "valid")):
        points = [(x, e[key]) for x, e in zip(xs, log) if isinstance(e.get(key), float)]
        if points:
            left.plot(*zip(*points), marker=".", label=label)
    left.set_title("Loss")
    left.set_xlabel(x_key)
    left.legend()
    for key, label, scale in (("valid ACC", "valid token accuracy", 100), ("valid EM", "valid EM (greedy)", 1)):
        points = [(x, e[key] * scale) for x, e in zip(xs, log) if isinstance(e.get(key), float)]
        if points:
            right.plot(*zip(*points), marker=".", label=label)
    right.set_ylim(0, 100)
    right.set_ylabel("%")
    right.set_title("Validation")
    right.set_xlabel(x_key)
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(output_folder, top_confusions: int = 20, split: str = "test", about: str | None = None) -> Path:
    """Write ``report.md`` and its PNG charts in ``output_folder``; returns the
    report path. ``split``: the predictions read, ``predictions_<split>.tsv``;
    for a split other than test the report is ``report_<split>.md`` and its
    chart ``per_domain_<split>.png`` (``stop-slu evaluate --split``).
    ``about``: one line under the title saying what was evaluated (model, search, data)."""
    out = Path(output_folder)
    predictions = out / PREDICTIONS.replace("test", split)
    suffix = "" if split == "test" else f"_{split}"
    domain_chart = DOMAIN_CHART.replace(".png", f"{suffix}.png")
    if not predictions.is_file():
        raise FileNotFoundError(f"{predictions}: no test predictions; run training (with its test stage) first")
    rows = read_predictions(predictions)
    refs = {r["ID"]: r["reference"] for r in rows}
    hyps = {r["ID"]: r["hypothesis"] for r in rows}
    scores = metrics.score(refs, hyps, {r["ID"]: r["domain"] for r in rows})
    log = read_train_log(out / TRAIN_LOG)

    lines = [f"# Test report: {out.name}", "", f"{scores['n']} {split} utterances, from `{predictions.name}`.", ""]
    if about:
        lines[-1:-1] = [about, ""]
    lines += ["## Overall", ""]
    lines += _table(
        ["EM", "EM-Tree", "well-formed", "intent acc", "slot P", "slot R", "slot F1"],
        [[scores[k] for k in ("em", "em_tree", "valid", "intent_acc", "slot_precision", "slot_recall", "slot_f1")]],
    )
    lines += [
        "",
        "All numbers are percentages. EM: the whole parse is right; EM-Tree: labels and brackets "
        "are right (slot words may differ); slots count as right when label and words match.",
        "",
    ]

    lines += ["## Per domain", ""]
    lines += _table(
        ["domain", "n", "EM", "EM-Tree"], [[d, v["n"], v["em"], v["em_tree"]] for d, v in scores["per_domain"].items()]
    )
    if scores["per_domain"]:
        _plot_domains(scores["per_domain"], out / domain_chart)
        lines += ["", f"![EM per domain]({domain_chart})"]

    lines += [
        "",
        "## Errors",
        "",
        "Each wrong output gets the first class that fits; share is of the wrong outputs.",
        "",
    ]
    lines += _table(
        ["class", "meaning", "count", "share %"],
        [[name, ERROR_MEANINGS[name], v["count"], v["share"]] for name, v in scores["errors"].items()],
    )

    lines += [
        "",
        f"## The {top_confusions} most frequent confusions",
        "",
        "Reference label -> output label, over wrong outputs (root intent, and slot labels missing "
        "on one side and extra on the other).",
        "",
    ]
    confusions = metrics.confusions(refs, hyps).most_common(top_confusions)
    lines += (
        _table(["reference", "output", "count"], [[r, h, c] for (r, h), c in confusions]) if confusions else ["None."]
    )

    if log:
        lines += ["", "## Learning curves", ""]
        _plot_curves(log, out / CURVES_CHART)
        last = log[-1]
        lines += [
            f"{len(log)} validation passes in `{TRAIN_LOG}`; the last: "
            + ", ".join(f"{k} {v}" for k, v in last.items()),
            "",
            f"![learning curves]({CURVES_CHART})",
        ]
    report = out / REPORT.replace(".md", f"{suffix}.md")
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report
