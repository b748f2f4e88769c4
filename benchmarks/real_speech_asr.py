"""How a recogniser trained on recorded speech hears each synthetic voice
family: the word error rate (WER) of PocketSphinx's US English model on a
synthetic corpus's test clips, per voice family and condition, side by side.

    pip install pocketsphinx     # 5.x: its acoustic model, dictionary and LM ship inside the wheel
    python benchmarks/real_speech_asr.py benchmarks/work/topv2/run/data/test.csv --per-group 30

TEST_CSV is a prepared split of a corpus ``stop-slu synth`` or the spoken-TOPv2
benchmark wrote (its wavs, the ``transcript`` column); the corpus's
``manifests/synthesis.tsv`` says each clip's family and whether a room, noise
or microphone was applied ("clean": none). The first ``--per-group`` clips of
each (family, condition), in CSV order, are decoded with PocketSphinx's
default US English acoustic and language models; WER is SpeechBrain's
(``speechbrain.utils.edit_distance``). The model learnt recorded speech, none
of these voices: a family it hears well sounds like speech to it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from speechbrain.utils.edit_distance import wer_details_for_batch, wer_summary

from stop_slu.data_prep.audio import load_audio
from stop_slu.data_prep.rows import read_csv
from stop_slu.voice_scores import read_sidecar

DEGRADING = ("room", "noise", "mic_band_hz", "clip")  # sidecar columns: empty where not applied


def condition(row: dict) -> str:
    degraded = any(row.get(k) not in ("", None) for k in DEGRADING) or row.get("gain_db") not in ("", "0.0", None)
    return "room/noise/mic" if degraded else "clean"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("test_csv", help="a prepared split of a synthetic corpus")
    parser.add_argument("--per-group", type=int, default=30, help="clips per (family, condition) (default: 30)")
    parser.add_argument("--json", help="write the table here too")
    args = parser.parse_args(argv)
    try:
        from pocketsphinx import Decoder
    except ImportError:
        sys.exit("error: pocketsphinx is not installed: pip install pocketsphinx")
    rows = read_csv(args.test_csv)
    first = next(iter(rows.values()))
    corpus = next((p for p in Path(first["wav"]).parents if (p / "manifests").is_dir()), None)
    sidecar = read_sidecar(corpus) if corpus else None
    if sidecar is None:
        sys.exit(f"error: {args.test_csv}: its wavs are not a synthetic corpus (no manifests/synthesis.tsv)")
    groups: dict[tuple, list] = {}
    for uid, row in rows.items():
        voice = sidecar.get(uid)
        if voice is not None:
            group = groups.setdefault((voice["family"], condition(voice)), [])
            if len(group) < args.per_group:
                group.append(row)
    decoder = Decoder(samprate=16000, loglevel="FATAL")
    table = []
    for (family, cond), group in sorted(groups.items()):
        refs, hyps, audio, start = [], [], 0.0, time.process_time()
        for row in group:
            wav = load_audio(row["wav"], 16000)
            audio += len(wav) / 16000
            pcm = (np.clip(wav, -1, 1) * 32767).astype(np.int16)
            decoder.start_utt()
            decoder.process_raw(pcm.tobytes(), full_utt=True)
            decoder.end_utt()
            hyp = decoder.hyp()
            refs.append(row["transcript"].split())
            hyps.append(hyp.hypstr.split() if hyp else [])
        summary = wer_summary(wer_details_for_batch(list(range(len(refs))), refs, hyps, compute_alignments=False))
        exact = sum(r == h for r, h in zip(refs, hyps))
        table.append(
            {
                "family": family,
                "condition": cond,
                "n": len(group),
                "wer": round(summary["WER"], 1),
                "sentences_right": round(100 * exact / len(group), 1),
                "cpu_rtf": round((time.process_time() - start) / audio, 3),
            }
        )
        print(
            f"{family:8s} {cond:15s} n={len(group):3d}  WER {table[-1]['wer']:5.1f}%  "
            f"sentences right {table[-1]['sentences_right']:5.1f}%  CPU {table[-1]['cpu_rtf']:.2f} x real time",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
