"""Export sizes: what `stop-slu export` writes, per part, measured or estimated.

Measured (any version's exports, e.g. before and after a change):

    python benchmarks/export_sizes.py measure EXPORT_DIR...

prints, per export folder: total bytes, bytes of weight files (``*.ckpt``,
``*.safetensors``, ``*.bin``, Hugging Face cache blobs included), files, and
whether ``hyperparams.yaml`` names an absolute path (one of the training
machine).

Estimated at real size (parameter counts, fp32):

    python benchmarks/export_sizes.py estimate

builds each filterbank config's model at its real sizes (random weights, no
download) to count its parameters; the SSL encoders and Whisper are counted from
their published sizes. "Before" is the layout that copied the Hugging Face cache
folder whole (blobs and snapshots: the pretrained weights twice; for Whisper a
third time in model.ckpt); "after" holds each weight once.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

WEIGHTS = (".ckpt", ".safetensors", ".bin")
# Published parameter counts of the pretrained models the configs start from (fp32: 4 bytes each).
PRETRAINED = {
    "conformer_wavlm": ("microsoft/wavlm-large", 315_453_120),
    "conformer_hubert": ("facebook/hubert-large-ll60k", 315_438_720),
    "whisper": ("openai/whisper-base", 72_593_920),
}
FILTERBANK = ("mini", "conformer", "branchformer", "ebranchformer", "ebranchformer_small", "conformer_asr_transfer")


def measure(folder: Path) -> dict:
    files = [p for p in folder.rglob("*") if p.is_file()]
    weights = sum(p.stat().st_size for p in files if p.suffix in WEIGHTS or "blobs" in p.parts)
    text = (folder / "hyperparams.yaml").read_text(encoding="utf-8")
    return {
        "total": sum(p.stat().st_size for p in files),
        "weights": weights,
        "files": len(files),
        "absolute_path": bool(re.search(r"(?m):\s+/[\w.-]+/", text)),
    }


def model_parameters(config: str, **overrides) -> int:
    """Parameters of the config's ``model`` at its real sizes (random weights)."""
    import tempfile

    from hyperpyyaml import load_hyperpyyaml

    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp, open(repo / "hparams" / f"{config}.yaml", encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, {"data_folder": tmp, "output_folder": tmp, **overrides})
        return sum(p.numel() for p in hparams["model"].parameters())


def estimate() -> list[tuple[str, str, float, float]]:
    """(config, pretrained model, MB before, MB after) at real size, fp32."""
    rows, counts = [], {}
    for config in FILTERBANK:
        counts[config] = model_parameters(config, output_neurons=600)
        trained = counts[config] * 4
        rows.append((config, "-", trained / 1e6, trained / 1e6))  # model.ckpt alone: no pretrained model to copy
    for config, (name, count) in PRETRAINED.items():
        pretrained = count * 4
        if config == "whisper":  # model.ckpt holds the fine-tuned Whisper; the cache held it twice more
            rows.append((config, name, 3 * pretrained / 1e6, pretrained / 1e6))
        else:  # model.ckpt: conformer's model + the 1024 -> 80 projection; the frozen encoder: blobs and snapshots
            head = (counts["conformer"] + 1024 * 80 + 80 + 25) * 4
            rows.append((config, name, (head + 2 * pretrained) / 1e6, (head + pretrained) / 1e6))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("measure").add_argument("exports", nargs="+", type=Path)
    sub.add_parser("estimate")
    args = parser.parse_args(argv)
    if args.command == "measure":
        print("| export | total (kB) | weights (kB) | files | absolute path in hyperparams.yaml |")
        print("|---|---|---|---|---|")
        for folder in args.exports:
            m = measure(folder)
            row = [folder.name, f"{m['total'] / 1e3:.1f}", f"{m['weights'] / 1e3:.1f}", m["files"], m["absolute_path"]]
            print("| " + " | ".join(map(str, row)) + " |")
    else:
        print("| config | pretrained model | before (MB, estimated) | after (MB, estimated) |")
        print("|---|---|---|---|")
        for config, name, before, after in estimate():
            print(f"| {config} | {name} | {before:,.0f} | {after:,.0f} |")


if __name__ == "__main__":
    sys.exit(main())
