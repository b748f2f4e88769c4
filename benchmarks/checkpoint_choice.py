"""Which of a run's checkpoints to test: test EM of each choice, side by side,
on the run's own test set, with no training.

    python benchmarks/checkpoint_choice.py RUN [--data DATA] [--json OUT.json]

RUN is a training output folder of the recipe. Its ``save/`` keeps the
``avg_checkpoints`` checkpoints with the best valid token accuracy (``ACC``)
and the newest one; the choices are made among those:

- ``recipe``: the average of the best ``avg_checkpoints`` by ACC (what the
  recipe's test stage, ``parse`` and ``export`` use);
- ``best_acc``: the single checkpoint with the best ACC;
- ``best_em``: the single checkpoint with the best valid greedy EM (among
  those kept, where their EM was measured);
- ``newest``: the last checkpoint written (the end of training).

Each is decoded as ``stop-slu evaluate`` decodes (the model's test search,
each clip encoded alone) into ``RUN/checkpoint_choice/<choice>/``. Prints EM
and EM-Tree per choice and, given the synthetic corpus the run trained on
(``--data``), EM by voice group
(``stop_slu.voice_scores``).
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import torch
from speechbrain.utils.checkpoints import average_checkpoints

from stop_slu.evaluate import evaluate
from stop_slu.inference import SLUParser
from stop_slu.voice_scores import scores_by_voice


def choices(checkpointer, avg: int) -> dict[str, list]:
    """{choice: the checkpoints it averages} (a choice whose checkpoints are not kept is left out)."""
    kept = checkpointer.find_checkpoints(max_num_checkpoints=None)
    found = {
        "recipe": checkpointer.find_checkpoints(max_key="ACC", max_num_checkpoints=avg),
        "best_acc": checkpointer.find_checkpoints(max_key="ACC", max_num_checkpoints=1),
        "best_em": [max((c for c in kept if "EM" in c.meta), key=lambda c: c.meta["EM"], default=None)],
        "newest": [max(kept, key=lambda c: c.meta["unixtime"])],
    }
    return {name: ckpts for name, ckpts in found.items() if ckpts and None not in ckpts}


def describe(checkpoint) -> dict:
    meta = checkpoint.meta
    return {"name": checkpoint.path.name, **{k: meta[k] for k in ("epoch", "ACC", "EM") if k in meta}}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--data", help="the synthetic corpus, for EM by voice group (default: none)")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    parser = SLUParser.from_folder(args.run)
    hparams = parser.hparams
    data = args.data
    loader = partial(torch.load, map_location="cpu", weights_only=True)
    result = {}
    for name, ckpts in choices(hparams.checkpointer, int(hparams.avg_checkpoints)).items():
        state = average_checkpoints(ckpts, recoverable_name="model", parameter_loader=loader)
        hparams.model.load_state_dict(state, strict=True)
        hparams.model.eval()
        out = args.run / "checkpoint_choice" / name
        scores = evaluate(parser, args.run / "data" / "test.csv", out, restart=True).scores
        result[name] = {
            "checkpoints": [describe(c) for c in ckpts],
            "em": scores["em"],
            "em_tree": scores["em_tree"],
            "by_voice": scores_by_voice(out / "predictions_test.tsv", data) if data else None,
        }
        print(name, json.dumps(result[name]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
