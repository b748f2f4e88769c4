#!/usr/bin/env python3
"""Test decoding with and without the decoder cache, side by side, at real size.

    nice -n 19 python benchmarks/cached_search.py [--configs ebranchformer_small conformer]
        [--utterances 4] [--threads 1] [--topv2 ../shared/topv2]

For each config: the model built from its YAML at its real size with random
weights (the work of a decoding step is a trained model's; only the number of
steps would differ, and it is forced here), and its test search as configured
(beam, CTC on the pre-beam, tree constraint) with its tokenizer trained on
TOPv2's training parses (the target column of the config; STOP's parses are
TOPv2's). Test utterances: the first ``--utterances`` parses of TOPv2's eval
files (after one for warming up), domains in turn, whose token count under
that tokenizer (the reference output length) is 20 to 30 (``--min-tokens``,
``--max-tokens``): STOP's longer parses, where a cache matters; the mean
decoupled parse is about 13 pieces. Audio: Gaussian noise lasting 0.3 s per word of the
utterance plus 0.5 s (about the eSpeak mini-STOP's rate), encoded once; only
the search is timed.

Output lengths are forced to the references': per utterance, decoded alone,
``max_decode_ratio`` is set so that the search's step limit (and the tree
constraint's closing limit) is the reference's token count; random weights do
not end a hypothesis earlier by themselves, so each search runs that many steps.

Both searches run on the same encoder states in the same process, alternating
which goes first, after one untimed utterance each (the tree constraint builds
its tables on first use): SpeechBrain's ``S2STransformerBeamSearcher`` (the whole
prefix through the decoder at each step) and the config's
``CachedTransformerBeamSearcher``. The script checks that they find the same
hypotheses with the same scores. Printed: seconds per utterance (wall and CPU)
of each, and their ratio.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.decoders.seq2seq import S2STransformerBeamSearcher

import stop_slu.cached_search
from stop_slu import parses
from stop_slu.frontend import compute_features_of
from stop_slu.tokenizer.parse_tokenizer import train_tokenizer

REPO = Path(__file__).resolve().parents[1]


def topv2_parses(folder: Path, split: str) -> list[tuple[str, str]]:
    """(utterance, parse) rows of TOPv2's ``<domain>_<split>.tsv`` files, domains in turn."""
    per_domain = []
    for path in sorted(folder.glob(f"*_{split}.tsv")):
        with open(path, encoding="utf-8") as f:
            per_domain.append([(r["utterance"], r["semantic_parse"]) for r in csv.DictReader(f, delimiter="\t")])
    if not per_domain:
        raise SystemExit(f"error: {folder}: no *_{split}.tsv files; pass --topv2 with TOPv2's folder")
    rows = [row for group in zip(*per_domain) for row in group]  # one of each domain in turn
    return [(text, parse) for text, parse in rows if parses.is_valid(parses.normalize_parse(parse))]


def target(parse: str, column: str) -> str:
    """A TOPv2 parse as the config's target column holds it."""
    normalized = parses.normalize_parse(parse)
    return parses.decouple(normalized) if column.startswith("decoupled") else normalized


def uncached_twin(hparams: dict) -> S2STransformerBeamSearcher:
    """SpeechBrain's searcher with the config's test search arguments."""
    search = hparams["test_search"]
    return S2STransformerBeamSearcher(
        modules=[hparams["Transformer"], hparams["seq_lin"]],
        bos_index=hparams["bos_index"],
        eos_index=hparams["eos_index"],
        min_decode_ratio=search.min_decode_ratio,
        max_decode_ratio=search.max_decode_ratio,
        beam_size=search.beam_size,
        scorer=hparams["scorer"],
        using_eos_threshold=False,
        length_normalization=True,
    )


def fit_normalizer(hparams: dict, generator: torch.Generator, utterances: int = 4):
    """Feature statistics of a few seconds of noise (random weights: any statistics do)."""
    if hparams.get("normalize") is None:
        return
    normalize = hparams["normalize"].train()
    with torch.no_grad():
        for _ in range(utterances):
            wav = 0.05 * torch.randn(1, 3 * hparams["sample_rate"], generator=generator)
            normalize(
                compute_features_of(hparams["modules"], hparams["compute_features"], wav, torch.ones(1)), torch.ones(1)
            )
    normalize.eval()


def timed(search, enc, lens) -> tuple[float, float, list, torch.Tensor]:
    start, start_cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        hyps, _, scores, _ = search(enc, lens)
    return time.perf_counter() - start, time.process_time() - start_cpu, hyps, scores


def run_config(name: str, rows, train_targets, tmp: Path, utterances: int, lengths=(20, 30)) -> dict:
    config = REPO / "hparams" / f"{name}.yaml"
    with open(config, encoding="utf-8") as f:
        plain = load_hyperpyyaml(f, {"data_folder": str(tmp), "output_folder": str(tmp / "out")})
    column, vocab_size = plain["target_column"], plain["vocab_size"]
    tokenizer = train_tokenizer([target(p, column) for p in train_targets], tmp / f"tok_{name}", vocab_size)
    torch.manual_seed(0)
    with open(config, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(
            f,
            {
                "data_folder": str(tmp),
                "output_folder": str(tmp / "out"),
                "tokenizer_folder": str(tokenizer.folder),
                "output_neurons": tokenizer.vocab_size,
            },
        )
    for module in hparams["modules"].values():
        module.eval()
    cached, uncached = hparams["test_search"], uncached_twin(hparams)
    tree = hparams["tree_scorer"]
    generator = torch.Generator().manual_seed(0)
    fit_normalizer(hparams, generator)
    results = []
    low, high = lengths
    chosen = [(t, p, n) for t, p in rows if low <= (n := len(tokenizer.encode(target(p, column)))) <= high]
    for i, (text, _parse, reference) in enumerate(chosen[: utterances + 1]):  # the first warms up (untimed)
        seconds = 0.3 * len(text.split()) + 0.5
        wav = 0.05 * torch.randn(1, int(seconds * hparams["sample_rate"]), generator=generator)
        with torch.no_grad():
            feats = hparams["normalize"](hparams["compute_features"](wav), torch.ones(1))
            enc = hparams["Transformer"].encode(hparams["CNN"](feats), torch.ones(1))
        ratio = (reference + 0.5) / enc.shape[1]  # int(frames * ratio) == reference
        for search in (cached, uncached, tree):
            search.max_decode_ratio = ratio
        runs = {}
        order = [("cached", cached), ("uncached", uncached)]
        for label, search in order if i % 2 == 0 else order[::-1]:
            runs[label] = timed(search, enc, torch.ones(1))
        if i == 0:
            continue
        same = runs["cached"][2] == runs["uncached"][2] and torch.allclose(
            runs["cached"][3], runs["uncached"][3], atol=1e-4
        )
        results.append(
            {
                "audio_s": round(seconds, 1),
                "reference_tokens": reference,
                "output_tokens": len(runs["cached"][2][0]),
                "uncached_s": round(runs["uncached"][0], 3),
                "cached_s": round(runs["cached"][0], 3),
                "uncached_cpu_s": round(runs["uncached"][1], 3),
                "cached_cpu_s": round(runs["cached"][1], 3),
                "same_hypotheses_and_scores": same,
            }
        )
    total = {key: sum(r[key] for r in results) for key in ("uncached_s", "cached_s", "uncached_cpu_s", "cached_cpu_s")}
    return {
        "config": name,
        "parameters": sum(p.numel() for p in hparams["model"].parameters()),
        "beam": cached.beam_size,
        "utterances": results,
        "mean_reference_tokens": round(sum(r["reference_tokens"] for r in results) / len(results), 1),
        "uncached_s_per_utt": round(total["uncached_s"] / len(results), 3),
        "cached_s_per_utt": round(total["cached_s"] / len(results), 3),
        "speed_up_wall": round(total["uncached_s"] / total["cached_s"], 2),
        "speed_up_cpu": round(total["uncached_cpu_s"] / total["cached_cpu_s"], 2),
        "all_same": all(r["same_hypotheses_and_scores"] for r in results),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["ebranchformer_small", "conformer"])
    parser.add_argument("--utterances", type=int, default=4, help="test utterances per config (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--topv2", default=str(REPO.parent / "shared" / "topv2"), help="TOPv2 folder (*_train.tsv)")
    parser.add_argument("--min-tokens", type=int, default=20, help="shortest reference kept (default: %(default)s)")
    parser.add_argument("--max-tokens", type=int, default=30, help="longest reference kept (default: %(default)s)")
    parser.add_argument("--train-parses", type=int, default=4000, help="TOPv2 training parses for the tokenizer")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    topv2 = Path(args.topv2)
    train = [parse for _, parse in topv2_parses(topv2, "train")[: args.train_parses]]
    rows = topv2_parses(topv2, "eval")
    report = {"threads": args.threads, "cached_search": stop_slu.cached_search.__file__, "configs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            lengths = (args.min_tokens, args.max_tokens)
            report["configs"].append(run_config(name, rows, train, Path(tmp), args.utterances, lengths))
            print(json.dumps(report["configs"][-1]), file=sys.stderr, flush=True)
    report["load_average_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=2))
    return 0 if all(c["all_same"] for c in report["configs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
