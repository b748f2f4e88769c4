"""Parity of the ONNX exports with the PyTorch parser on a run's test set.

    python benchmarks/onnx_parity.py RUN FP32_EXPORT INT8_EXPORT [--limit N] [--json OUT.json]

RUN is a training output folder, the exports are ``stop-slu export RUN DIR
--onnx [--int8]`` of it. Every utterance of RUN/data/test.csv (or the first N)
is parsed one at a time by the three parsers (PyTorch: ``SLUParser.parse_files``
with batch_size=1; ONNX: ``stop_slu_runtime.OnnxParser``). Prints the
same-parse rates (fp32 vs PyTorch, int8 vs fp32), EM of each against the
references, and, for every differing pair, how the parses differ
(``stop_slu.metrics.error_class`` with one parse as the reference).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from stop_slu_runtime import OnnxParser

from stop_slu.inference import SLUParser
from stop_slu.metrics import error_class, score
from stop_slu.onnx_export import _test_rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run")
    p.add_argument("fp32")
    p.add_argument("int8")
    p.add_argument("--limit", type=int, default=0, help="first N test utterances (0 = all)")
    p.add_argument("--json", help="write the figures and every parse here")
    args = p.parse_args()
    torch_parser = SLUParser.from_folder(args.run)
    rows = _test_rows(Path(args.run).resolve(), args.limit or 10**9, bool(torch_parser.hparams.decouple_output))
    wavs = [r["wav"] for r in rows]
    parses = {
        "pytorch": [r["parse"] for r in torch_parser.parse_files(wavs, batch_size=1)],
        "onnx_fp32": [r["parse"] for r in OnnxParser(args.fp32).parse_files(wavs)],
        "onnx_int8": [r["parse"] for r in OnnxParser(args.int8).parse_files(wavs)],
    }
    refs = {r["id"]: r["ref"] for r in rows}
    em = {name: score(refs, dict(zip(refs, hyps)))["em"] for name, hyps in parses.items()}

    def compare(a, b):
        same = sum(x == y for x, y in zip(parses[a], parses[b]))
        kinds = Counter(error_class(x, y) for x, y in zip(parses[a], parses[b]) if x != y)
        return {"same": same, "rate": round(100 * same / len(rows), 2), "differences": dict(kinds)}

    result = {
        "n": len(rows),
        "em": em,
        "fp32_vs_pytorch": compare("pytorch", "onnx_fp32"),
        "int8_vs_fp32": compare("onnx_fp32", "onnx_int8"),
        "em_fp32_minus_pytorch": round(em["onnx_fp32"] - em["pytorch"], 2),
        "em_int8_minus_fp32": round(em["onnx_int8"] - em["onnx_fp32"], 2),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({**result, "rows": rows, "parses": parses}, indent=1))


if __name__ == "__main__":
    main()
