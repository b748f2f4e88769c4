"""``stop-slu-runtime EXPORT a.wav ...``: one JSON line per file, as ``stop-slu parse``."""

from __future__ import annotations

import argparse
import json
import sys

from stop_slu_runtime.parser import ExportError, OnnxParser


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="stop-slu-runtime",
        description="Parse audio with an ONNX export (stop-slu export RUN OUT --onnx), without PyTorch. "
        "Prints one JSON object per file (file, parse, intent, slots, confidence); a file that cannot be "
        "parsed gets an 'error: FILE: reason' line on stderr (exit status 1).",
    )
    p.add_argument("export", help="the folder of stop-slu export --onnx")
    p.add_argument("wavs", nargs="+", help="16 kHz audio files")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: its own choice)")
    args = p.parse_args(argv)
    try:
        parser = OnnxParser(args.export, threads=args.threads)
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    failed = 0
    for result in parser.parse_files(args.wavs):
        if "error" in result:
            failed += 1
            print(f"error: {result['file']}: {result['error']}", file=sys.stderr, flush=True)
        else:
            print(json.dumps(result), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
