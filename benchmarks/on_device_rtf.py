#!/usr/bin/env python3
"""Size and CPU real-time factor of the on-device config.

    nice -n 19 python benchmarks/on_device_rtf.py [--config hparams/ebranchformer_small.yaml]
        [--data MINI_STOP] [--utterances 20] [--threads 1] [--model TRAINED_OUTPUT_FOLDER] [--no-random]

Test wavs of a mini-STOP (real eSpeak speech; take 0) are decoded one at a time
(batch 1, as on a device) with the configured beam search, through the code
`stop-slu parse` uses (SLUParser). Runs, side by side in one invocation:

- ``trained`` (with ``--model``): a trained output folder of the config
  (``stop-slu train ebranchformer_small ...``) with its averaged checkpoints and
  its tokenizer; its exact match on the decoded wavs is reported too. The
  mini-STOP should be the one it was trained on (its test set).
- ``limit`` and ``reference_length`` (unless ``--no-random``): the config built
  with random weights (its size and the work of each decoding step are a trained
  model's, not the number of steps), the tokenizer trained on the mini-STOP's
  training parses, the normaliser on 50 training wavs. ``limit``: as configured;
  random weights run each hypothesis to the length limit (``max_decode_ratio``
  x encoder frames), an upper bound. ``reference_length``: the length limit set
  so that hypotheses are as long as the references (the tree-constrained search
  closes every parse by then).

RTF = decoding seconds / audio seconds (wall clock; ``cpu`` = CPU seconds).
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

import soundfile as sf
import torch
from hyperpyyaml import load_hyperpyyaml

from stop_slu.data_prep.audio import load_audio
from stop_slu.data_prep.synth import synthesize
from stop_slu.inference import SLUParser
from stop_slu.tokenizer.parse_tokenizer import train_tokenizer

REPO = Path(__file__).resolve().parents[1]


def fit_normalizer(hparams, wavs):
    """Global feature statistics from some training wavs, as training gathers them."""
    normalize = hparams["normalize"].train()
    with torch.no_grad():
        for wav in wavs:
            signal = torch.from_numpy(load_audio(wav, hparams["sample_rate"]))[None]
            normalize(hparams["compute_features"](signal), torch.ones(1))
    normalize.eval()


def build(config, tmp: Path, tokenizer=None, **overrides) -> dict:
    """The config's objects, random weights; output size from ``tokenizer`` if given."""
    if tokenizer is not None:
        overrides.update(tokenizer_folder=str(tokenizer.folder), output_neurons=tokenizer.vocab_size)
    torch.manual_seed(0)
    with open(config, encoding="utf-8") as f:
        return load_hyperpyyaml(f, {"data_folder": str(tmp), "output_folder": str(tmp / "out"), **overrides})


def decode(model: SLUParser, wavs, references=None) -> dict:
    """Wall and CPU seconds of decoding ``wavs`` one by one, the outputs' length
    and, given ``references`` (file name -> parse), the exact match in %."""
    model.parse_files(wavs[:2], batch_size=1)  # warm-up
    start, start_cpu = time.perf_counter(), time.process_time()
    results = model.parse_files(wavs, batch_size=1)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    audio = sum(sf.info(w).duration for w in wavs)
    tokens = sum(len(model.tokenizer.encode(r["parse"])) for r in results) / len(results)
    report = {
        "rtf": round(seconds / audio, 3),
        "cpu_rtf": round(cpu_seconds / audio, 3),
        "mean_output_tokens": round(tokens, 1),
        "max_decode_ratio": model.hparams["max_decode_ratio"],
    }
    if references:
        hits = sum(r["parse"] == references[Path(w).name] for w, r in zip(wavs, results))
        report["exact_match"] = round(100 * hits / len(wavs), 1)
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "hparams" / "ebranchformer_small.yaml"))
    parser.add_argument("--model", help="a trained output folder of the config: also decode with its weights")
    parser.add_argument("--no-random", action="store_true", help="skip the random-weight runs")
    parser.add_argument("--data", help="a mini-STOP (stop-slu synth); default: synthesise one in a temporary folder")
    parser.add_argument("--utterances", type=int, default=20, help="test wavs to decode (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = Path(args.data) if args.data else tmp / "mini_stop"
        if not args.data:
            synthesize(data, n_train=1000, n_eval=10, n_test=args.utterances, seed=0, progress=False)

        def rows(split):
            with open(data / "manifests" / f"{split}.tsv", encoding="utf-8") as f:
                return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))

        vocab_size = build(args.config, tmp)["vocab_size"]
        tokenizer = train_tokenizer(
            [r["decoupled_normalized_seqlogical"] for r in rows("train")], tmp / "tokenizer", vocab_size
        )
        wavs = sorted((data / "test_0").rglob("*.wav"))[: args.utterances]
        references = {
            Path(r["file_id"]).name: r["decoupled_normalized_seqlogical"]
            for r in rows("test")
            if r["file_id"].startswith("test_0/")
        }
        # encoder frames are 40 ms (4 x 10 ms fbank frames): tokens per frame of the references
        ratio = sum(len(tokenizer.encode(references[w.name])) for w in wavs) / sum(
            sf.info(w).duration / 0.04 for w in wavs
        )

        report = {
            "config": Path(args.config).name,
            "model": args.model,
            "threads": args.threads,
            "utterances": len(wavs),
            "audio_seconds": round(sum(sf.info(w).duration for w in wavs), 1),
            "mean_reference_tokens": round(sum(len(tokenizer.encode(references[w.name])) for w in wavs) / len(wavs), 1),
        }
        if args.model:
            trained = SLUParser.from_folder(args.model, device="cpu")
            report["trained_parameters"] = sum(p.numel() for p in trained.hparams["model"].parameters())
            report["trained"] = decode(trained, wavs, references)
        random_runs = (
            () if args.no_random else (("limit", {}), ("reference_length", {"max_decode_ratio": round(ratio, 4)}))
        )
        for name, overrides in random_runs:
            hparams = build(args.config, tmp, tokenizer, **overrides)
            fit_normalizer(hparams, sorted((data / "train").rglob("*.wav"))[:50])
            if name == "limit":
                torch.save(hparams["model"].state_dict(), tmp / "model.ckpt")
                report.update(
                    {
                        "parameters": sum(p.numel() for p in hparams["model"].parameters()),
                        "checkpoint_mb_fp32": round((tmp / "model.ckpt").stat().st_size / 2**20, 1),
                        "output_tokens": tokenizer.vocab_size,
                        "beam": hparams["test_beam_size"],
                        "ctc_weight_decode": hparams["ctc_weight_decode"],
                    }
                )
            parser = SLUParser(modules=hparams["modules"], hparams=hparams, run_opts={"device": "cpu"})
            report[name] = decode(parser, wavs)
    report["load_average_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main())
