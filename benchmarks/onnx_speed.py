"""Speed and peak memory of the PyTorch parser and its ONNX exports, one CPU
thread, the same clips, side by side in one run.

    python benchmarks/onnx_speed.py RUN FP32_EXPORT INT8_EXPORT [--clips N] [--rounds R]
    python benchmarks/onnx_speed.py --config-size ebranchformer_small   # graph sizes at the config's vocab_size

Each parser runs in its own process (so peak memory is its own: ru_maxrss of
that process, model load included) on the first N clips of RUN/data/test.csv,
one utterance at a time, at the lengths the model itself writes (no forcing:
an under-trained model writes parses up to the search's step limit, which the
printed token counts show). The processes alternate over R rounds; the
figures are each parser's best round. Prints real-time factors and the ratios
to PyTorch.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def _child(kind: str, folder: str, wavs: list[str]) -> dict:
    """Load one parser on one thread and parse ``wavs``; timing excludes loading."""
    import soundfile as sf

    if kind == "pytorch":
        import torch

        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
        from stop_slu.inference import SLUParser

        parser = SLUParser.from_folder(folder)
        parse = lambda: parser.parse_files(wavs, batch_size=1)  # noqa: E731
    else:
        from stop_slu_runtime import OnnxParser

        parser = OnnxParser(folder, threads=1)
        parse = lambda: parser.parse_files(wavs)  # noqa: E731
    parse()  # warm-up (first-call allocations), not timed
    start = time.perf_counter()
    results = parse()
    seconds = time.perf_counter() - start
    audio = sum(sf.info(w).duration for w in wavs)
    tokens = [len(r.get("parse", "").split()) for r in results]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "audio": audio, "rtf": seconds / audio, "peak_mb": peak_mb, "words": tokens}


def config_sizes(name: str) -> dict:
    """MB of the fp32 and int8 graphs of a config at its full size (weights as
    initialised: size does not depend on training)."""
    import tempfile

    from hyperpyyaml import load_hyperpyyaml

    from stop_slu.onnx_export import export_graphs, quantize

    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        with open(repo / "hparams" / f"{name}.yaml", encoding="utf-8") as f:
            hp = load_hyperpyyaml(f, {"data_folder": tmp, "output_folder": tmp})  # the config's vocab_size
        hp["model"].eval()
        export_graphs(hp, Path(tmp))
        fp32 = sum(p.stat().st_size for p in Path(tmp).glob("*.onnx")) / 1e6
        quantize(Path(tmp))
        int8 = sum(p.stat().st_size for p in Path(tmp).glob("*.onnx")) / 1e6
    params = sum(p.numel() for p in hp["model"].parameters())
    return {"config": name, "parameters": params, "graphs_mb_fp32": round(fp32, 2), "graphs_mb_int8": round(int8, 2)}


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--config-size":
        print(json.dumps(config_sizes(sys.argv[2])))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, folder, wavs = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
        print(json.dumps(_child(kind, folder, wavs)))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run")
    p.add_argument("fp32")
    p.add_argument("int8")
    p.add_argument("--clips", type=int, default=30)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    from stop_slu.data_prep.rows import read_csv

    rows = list(read_csv(Path(args.run) / "data" / "test.csv").values())[: args.clips]
    wavs = json.dumps([r["wav"] for r in rows])
    best = {}
    for _ in range(args.rounds):
        for kind, folder in (("pytorch", args.run), ("onnx_fp32", args.fp32), ("onnx_int8", args.int8)):
            out = subprocess.run(
                [sys.executable, __file__, "--child", kind, folder, wavs],
                capture_output=True,
                text=True,
                check=True,
                env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
            )
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            if kind not in best or figures["rtf"] < best[kind]["rtf"]:
                best[kind] = figures
    size = lambda d: sum(p.stat().st_size for p in Path(d).glob("*.onnx")) / 1e6  # noqa: E731
    summary = {
        "clips": len(rows),
        "audio_seconds": round(best["pytorch"]["audio"], 1),
        **{f"rtf_{k}": round(v["rtf"], 4) for k, v in best.items()},
        **{f"peak_mb_{k}": round(v["peak_mb"]) for k, v in best.items()},
        "fp32_time_ratio": round(best["onnx_fp32"]["rtf"] / best["pytorch"]["rtf"], 3),
        "int8_time_ratio": round(best["onnx_int8"]["rtf"] / best["pytorch"]["rtf"], 3),
        "graphs_mb_fp32": round(size(args.fp32), 2),
        "graphs_mb_int8": round(size(args.int8), 2),
        "mean_words_pytorch": round(sum(best["pytorch"]["words"]) / len(rows), 1),
        "mean_words_onnx_fp32": round(sum(best["onnx_fp32"]["words"]) / len(rows), 1),
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
