#!/usr/bin/env python3
"""Accuracy on real language: TOPv2 text (STOP's text) spoken by eSpeak NG and
a neural voice (Piper), in simulated rooms, noise and microphones.

Synthesises distinct TOPv2 train utterances of some domains, tests on distinct
eval utterances whose text is not in training (two takes, the second with
voices training never hears), trains a config for a fixed time and reports EM,
EM-Tree, intent accuracy and slot F1, plus how many test utterances hold a
slot word never seen in training, and EM by voice group: voices training
heard, held-out voices of those families, and a family left out of training
(``--leave-out``).

    python benchmarks/spoken_topv2.py                       # mini, 30 min, alarm/timer/weather
    python benchmarks/spoken_topv2.py --leave-out piper     # train on eSpeak only, test on both families
    python benchmarks/spoken_topv2.py --families espeak --clean-share 1   # the old corpus: eSpeak in silence
    python benchmarks/spoken_topv2.py --minutes 10 -- --lr_adam=0.003
    python benchmarks/spoken_topv2.py --gpu                 # GPU headroom: conformer, 8 domains, bf16

``--gpu`` is the GPU-headroom run: ``hparams/conformer.yaml`` in bf16 on a larger
set of all eight domains (20,000 train utterances by default), its valid EM
by GPU-minute in its train_log.txt; without a CUDA device it says so and exits 0.

With ``mini`` it trains with SpecAugment on (``--specaugment_prob=0.8``;
``mini`` keeps it off for the 20-minute demo, where it costs EM): over this
benchmark's budget it lifts held-out voices and the Piper family
(benchmarks/README.md, "Voices training never heard"). Pass
``-- --specaugment_prob=0.0`` to train without it.

Needs TOPv2's files (../shared/topv2 beside the clone by default); without
them it says so and exits 0.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

from stop_slu import parses
from stop_slu.cli import hparams_path
from stop_slu.data_prep.synth import FAMILIES, synthesize
from stop_slu.recipe import train
from stop_slu.voice_scores import scores_by_voice

REPO = Path(__file__).resolve().parents[1]
SPECAUGMENT = "--specaugment_prob=0.8"  # the default here with mini: measured (benchmarks/README.md)


def unseen_slot_word_share(prepared: Path) -> float:
    """Percent of test utterances with a slot word that no training target has."""

    def rows(split):
        with open(prepared / f"{split}.csv", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    seen = {w for r in rows("train") for _, text in parses.slots(r["semantics"]) for w in text.split()}
    test = rows("test")
    unseen = sum(any(w not in seen for _, text in parses.slots(r["semantics"]) for w in text.split()) for r in test)
    return round(100.0 * unseen / len(test), 1) if test else 0.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topv2", default=str(REPO.parent / "shared" / "topv2"), help="TOPv2 folder")
    parser.add_argument("--work", default=str(REPO / "benchmarks" / "work" / "topv2"), help="work folder")
    parser.add_argument("--domains", default="alarm,timer,weather")
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--valid", type=int, default=100, help="distinct eval utterances for validation")
    parser.add_argument("--test", type=int, default=300, help="distinct test utterances (two takes each)")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--hparams", default="mini")
    parser.add_argument("--name", default="run", help="name of this run's output folder")
    parser.add_argument("--families", default=",".join(FAMILIES), help="voice families (default: %(default)s)")
    parser.add_argument("--leave-out", help="a family that speaks test but not train or eval (default: none)")
    parser.add_argument(
        "--clean-share", type=float, default=0.2, help="share without room/noise/mic; 1 = all clean (default: 0.2)"
    )
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="GPU headroom run: conformer, all 8 domains, 20,000 train utterances, bf16, 60 min",
    )
    parser.add_argument("overrides", nargs="*", help="recipe overrides, after --")
    args = parser.parse_args(argv)
    if args.gpu:
        import torch

        if not torch.cuda.is_available():
            print("skipped: --gpu needs a CUDA device; none is visible here")
            return 0
        args.hparams, args.name = "conformer", f"{args.name}_gpu"
        args.domains = "alarm,event,messaging,music,navigation,reminder,timer,weather"
        args.train = max(args.train, 20000)
        args.minutes = args.minutes if args.minutes != 30 else 60
        args.work = str(Path(args.work).with_name(Path(args.work).name + "_8domains"))
        args.overrides = ["--device=cuda:0", "--precision=bf16", *args.overrides]

    elif args.hparams == "mini" and not any(o.startswith("--specaugment_prob") for o in args.overrides):
        args.overrides = [SPECAUGMENT, *args.overrides]

    topv2 = Path(args.topv2)
    if not (topv2 / "alarm_train.tsv").is_file():
        print(f"skipped: no TOPv2 files in {topv2} (pass --topv2 DIR)")
        return 0
    work = Path(args.work)
    families = tuple(args.families.split(","))
    corpus = f"data_{'+'.join(families)}_clean{args.clean_share:g}"  # one folder per corpus
    data = work / (corpus if not args.leave_out else f"{corpus}_without_{args.leave_out}")
    if not (data / "manifests" / "test.tsv").is_file():
        synthesize(
            data,
            n_train=args.train,
            n_eval=args.valid,
            n_test=args.test,
            seed=0,
            text_dir=topv2,
            domains=args.domains.split(","),
            families=families,
            train_families=[f for f in families if f != args.leave_out],
            clean_share=args.clean_share,
        )
    out = work / args.name
    started = time.time()
    scores = train.main(
        [
            str(hparams_path(args.hparams)),
            f"--data_folder={data}",
            f"--output_folder={out}",
            f"--max_train_minutes={args.minutes}",
            *args.overrides,
        ]
    )
    result = {
        "hparams": args.hparams,
        "overrides": args.overrides,
        "minutes": args.minutes,
        "wall_minutes": round((time.time() - started) / 60, 1),
        "unseen_slot_word_pct": unseen_slot_word_share(out / "data"),
        "data": str(data),
        **{k: scores[k] for k in ("em", "em_tree", "intent_acc", "slot_f1", "valid", "n")},
        "by_voice": scores_by_voice(out / "predictions_test.tsv", data),
    }
    (out / "benchmark.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
