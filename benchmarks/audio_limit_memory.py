#!/usr/bin/env python3
"""CPU memory of parsing the longest audio each config accepts (``max_audio_seconds``).

    nice -n 19 python benchmarks/audio_limit_memory.py [--configs mini conformer ...]
        [--tokens 30] [--threads 1] [--topv2 ../shared/topv2]

Each config runs in a fresh Python process (so that its peak resident memory,
``ru_maxrss``, is its own): the model built from its YAML at its real size with
random weights (the SSL configs: a WavLM-large / HuBERT-large of the real
shape, randomly initialised and saved to a temporary folder as a hub model
would be: nothing is downloaded), its tokenizer trained on TOPv2's training
parses, then one ``SLUParser.decode_batch`` (the code ``stop-slu parse`` runs:
length check, features, encoder, the configured beam search) on
``max_audio_seconds`` of noise, batch 1.

Measured: peak RSS after building the model, and after parsing the longest
audio; their difference is what parsing it takes on top of the weights.
The search is forced to ``--tokens`` steps (``max_decode_ratio`` set so that
the step limit is that; STOP parses are 20 to 30 tokens, and a trained model
ends its hypothesis when the parse is complete). Estimated, not measured: the
decoder cache of a search that would run to the configured limit
(``max_decode_ratio`` x encoder frames steps, as random weights would): per
step, decoder layers x 2 (keys, values) x beam x d_model x 4 bytes. GPU memory
is not measured here (no GPU); attention and activations are the same tensors
on a GPU, so the CPU figure minus the weights is a guide, not a measurement.
Whisper is not in this script: every input is padded to its 30 s window, so
its memory does not depend on the audio's length.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from hyperpyyaml import load_hyperpyyaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [  # every config with the encoder-decoder search (not Whisper: see above)
    path.stem
    for path in sorted((REPO / "hparams").glob("*.yaml"))
    if "test_search: !new:stop_slu.cached_search." in path.read_text(encoding="utf-8")
]
SSL_SHAPES = {  # the hub models' shapes (microsoft/wavlm-large, facebook/hubert-large-ll60k)
    "conformer_wavlm": ("WavLMConfig", "WavLMModel"),
    "conformer_hubert": ("HubertConfig", "HubertModel"),
}


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def large_ssl_folder(name: str, folder: Path) -> Path:
    """A randomly initialised SSL model of the large shape, saved like a hub model."""
    import transformers

    config_class, model_class = SSL_SHAPES[name]
    config = getattr(transformers, config_class)(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
    )
    getattr(transformers, model_class)(config).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(folder)
    return folder


def measure(name: str, tokens: int, topv2: Path, tmp: Path) -> dict:
    """One config, in this process: see the module docstring."""
    from cached_search import fit_normalizer, target, topv2_parses  # benchmarks/cached_search.py, beside this script

    from stop_slu.inference import SLUParser
    from stop_slu.tokenizer.parse_tokenizer import train_tokenizer

    config = REPO / "hparams" / f"{name}.yaml"
    overrides = {"data_folder": str(tmp), "output_folder": str(tmp / "out")}
    if name in SSL_SHAPES:
        overrides["ssl_hub"] = str(large_ssl_folder(name, tmp / "ssl"))
    with open(config, encoding="utf-8") as f:
        text = f.read()
    column = next(line for line in text.splitlines() if line.startswith("target_column:")).split()[1]
    vocab_size = int(next(line for line in text.splitlines() if line.startswith("vocab_size:")).split()[1])
    train = [target(parse, column) for _, parse in topv2_parses(topv2, "train")[:4000]]
    tokenizer = train_tokenizer(train, tmp / "tok", vocab_size)
    torch.manual_seed(0)
    hparams = load_hyperpyyaml(
        text, {**overrides, "tokenizer_folder": str(tokenizer.folder), "output_neurons": tokenizer.vocab_size}
    )
    fit_normalizer(hparams, torch.Generator().manual_seed(1))
    parser = SLUParser(modules=hparams["modules"], hparams=hparams, run_opts={"device": "cpu"})
    built = peak_mib()
    seconds = parser.max_audio_seconds()
    n = parser.supported_samples()[1]
    assert parser.check_length(n) is None and parser.check_length(n + 1) is not None
    wav = 0.05 * torch.randn(1, n, generator=torch.Generator().manual_seed(0))
    frames = parser.encode_batch(wav, torch.ones(1)).shape[1]
    configured_ratio = float(hparams["test_search"].max_decode_ratio)
    for search in (hparams["test_search"], hparams["tree_scorer"]):
        search.max_decode_ratio = (tokens + 0.5) / frames
    start = time.perf_counter()
    parse = parser.decode_batch(wav, torch.ones(1))[0][0]
    decode_seconds = time.perf_counter() - start
    beam, d_model = hparams["test_search"].beam_size, hparams["d_model"]
    per_step = hparams["num_decoder_layers"] * 2 * beam * d_model * 4
    worst_steps = int(frames * configured_ratio)
    return {
        "config": name,
        "max_audio_seconds": seconds,
        "parameters_m": round(sum(p.numel() for p in hparams["model"].parameters()) / 1e6, 1)
        + (round(sum(p.numel() for p in hparams["ssl_model"].parameters()) / 1e6, 1) if name in SSL_SHAPES else 0),
        "encoder_frames": frames,
        "search_steps": len(tokenizer.encode(parse)) if parse else 0,
        "beam": beam,
        "peak_rss_built_mib": round(built),
        "peak_rss_parsed_mib": round(peak_mib()),
        "parse_cost_mib": round(peak_mib() - built),
        "decode_seconds": round(decode_seconds, 1),
        "estimated_extra_cache_mib_at_step_limit": round(per_step * (worst_steps - tokens) / 2**20),
        "step_limit_as_configured": worst_steps,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=CONFIGS)
    parser.add_argument("--tokens", type=int, default=30, help="search steps (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--topv2", default=str(REPO.parent / "shared" / "topv2"), help="TOPv2 folder (*_train.tsv)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: one config
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(measure(args.one, args.tokens, Path(args.topv2), Path(tmp))))
        return 0
    rows = []
    for name in args.configs:
        command = [
            sys.executable,
            __file__,
            "--one",
            name,
            "--tokens",
            str(args.tokens),
            "--threads",
            str(args.threads),
        ]
        result = subprocess.run([*command, "--topv2", args.topv2], capture_output=True, text=True)
        if result.returncode:
            rows.append({"config": name, "error": result.stderr.strip().splitlines()[-1]})
        else:
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"rows": rows, "load_average_1min": round(os.getloadavg()[0], 2)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
