#!/usr/bin/env python3
"""Load on ``stop-slu serve``: throughput, latency, refusals and server memory,
micro-batching and one-request-at-a-time side by side in one run.

For each mode (``--max-batch B``, then ``--max-batch 1``; the same queue
limit) a server starts on 127.0.0.1 (a subprocess, ``--port 0``); for each
level of concurrent clients (1, 4, 16, 64 threads, each with its own
connections) a fixed number of requests (``--requests``) is sent, each the
bytes of a test clip in turn, bounded in time as well (``--seconds`` per
level). Per level: requests per second (answered / wall time), p50/p95/p99
latency of the answered ones, 503 refusals (queue full), other errors, and the
server's resident memory (VmRSS) and peak (VmHWM) from /proc. Before the
levels, one client's requests alternate with ``SLUParser.parse_file`` calls on
the same clips in this process (the baseline, under the same load); after
them, a soak: ``--soak`` requests
from 16 clients to the batching server, RSS after the first 200 and at the
end (bounded by ``--soak-seconds``).

    python benchmarks/serve_load.py MODEL CLIPS_DIR [--requests 200] [--soak 5000]

MODEL: anything ``stop-slu parse`` accepts; CLIPS_DIR: a folder of wavs (e.g. a
mini-STOP release's test_0/). Prints a table and the targets, writes JSON to
``--out``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def memory_kib(pid) -> dict:
    """VmRSS and VmHWM (peak) of a process, KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def start(model, *options):
    process = subprocess.Popen(
        [sys.executable, "-m", "stop_slu.cli", "serve", str(model), "--port", "0", *map(str, options)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    for line in process.stdout:
        if line.startswith("serving ") and " at http://" in line:
            return process, int(line.split(" at ")[1].split()[0].rstrip("/").rsplit(":", 1)[1])
    raise SystemExit(f"the server did not start (exit status {process.wait()})")


def load(port, bodies, clients, requests, seconds):
    """Send ``requests`` (at most, within ``seconds``) from ``clients`` threads; returns the measures."""
    lock = threading.Lock()
    state = {"next": 0, "latencies": [], "refused": 0, "errors": 0, "codes": {}}
    deadline = time.perf_counter() + seconds

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if state["next"] >= requests or time.perf_counter() > deadline:
                    break
                body = bodies[state["next"] % len(bodies)]
                state["next"] += 1
            started = time.perf_counter()
            try:
                connection.request("POST", "/v1/parse", body, {"Content-Type": "audio/wav"})
                response = connection.getresponse()
                response.read()
                status = response.status
                if response.getheader("connection", "").lower() == "close":
                    connection.close()
            except (OSError, http.client.HTTPException):
                status = "no answer"
                connection.close()
            elapsed = time.perf_counter() - started
            with lock:
                if status == 200:
                    state["latencies"].append(elapsed)
                elif status == 503:
                    state["refused"] += 1
                else:
                    state["errors"] += 1
                    state["codes"][str(status)] = state["codes"].get(str(status), 0) + 1
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    lat = sorted(state["latencies"])
    pct = lambda q: round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else None
    return {
        "clients": clients,
        "sent": state["next"],
        "ok": len(lat),
        "refused_503": state["refused"],
        "errors": state["errors"],
        "error_codes": state["codes"],
        "seconds": round(wall, 2),
        "requests_per_s": round(len(lat) / wall, 2),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model folder (anything stop-slu parse accepts)")
    parser.add_argument("clips", help="a folder of test wavs")
    parser.add_argument("--levels", default="1,4,16,64", help="concurrent clients per level (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=200, help="requests per level (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=120, help="time bound per level (default: %(default)s)")
    parser.add_argument("--max-batch", type=int, default=8, help="batching mode's --max-batch (default: %(default)s)")
    parser.add_argument("--max-queue", type=int, default=32, help="both modes' --max-queue (default: %(default)s)")
    parser.add_argument("--soak", type=int, default=5000, help="requests of the memory soak, 0 = none")
    parser.add_argument("--soak-seconds", type=float, default=900, help="time bound of the soak (default: %(default)s)")
    parser.add_argument("--out", default="benchmarks/work/serve_load.json", help="JSON results")
    args = parser.parse_args(argv)

    clips = sorted(Path(args.clips).rglob("*.wav"))[:32]
    if not clips:
        raise SystemExit(f"error: {args.clips}: no wav files; pass a folder of test clips")
    bodies = [clip.read_bytes() for clip in clips]
    levels = [int(level) for level in args.levels.split(",")]
    results = {"clips": len(clips), "levels": {}, "memory_kib": {}}

    from stop_slu.inference import load_parser

    parser_ = load_parser(args.model)  # the baseline, in this process
    for mode, batch in (("batching", args.max_batch), ("one_at_a_time", 1)):
        process, port = start(args.model, "--max-batch", batch, "--max-queue", args.max_queue)
        try:
            load(port, bodies, 2, 2 * len(bodies), args.seconds)  # warm-up: every clip once
            if mode == "batching":  # one client against parse_file, alternating, so both meet the same load
                direct, served = [], []
                for i in range(min(args.requests, 2 * len(clips))):
                    started = time.perf_counter()
                    parser_.parse_file(clips[i % len(clips)])
                    direct.append(time.perf_counter() - started)
                    served.append(load(port, [bodies[i % len(bodies)]], 1, 1, args.seconds)["p50_ms"])
                results["paired"] = {
                    "n": len(direct),
                    "parse_file_p50_ms": round(1000 * statistics.median(direct), 1),
                    "served_p50_ms": statistics.median(served),
                }
                print("paired", json.dumps(results["paired"]), flush=True)
            for clients in levels:
                row = load(port, bodies, clients, args.requests, args.seconds)
                row["server_memory_kib"] = memory_kib(process.pid)
                results["levels"].setdefault(str(clients), {})[mode] = row
                print(mode, json.dumps(row), flush=True)
            if mode == "batching" and args.soak:
                before = load(port, bodies, 16, 200, args.soak_seconds)
                rss_200 = memory_kib(process.pid)["VmRSS"]
                rest = load(port, bodies, 16, args.soak - 200, args.soak_seconds)
                rss_end = memory_kib(process.pid)["VmRSS"]
                results["soak"] = {
                    "requests": before["sent"] + rest["sent"],
                    "ok": before["ok"] + rest["ok"],
                    "errors": before["errors"] + rest["errors"] + rest["refused_503"] + before["refused_503"],
                    "rss_kib_after_200": rss_200,
                    "rss_kib_at_end": rss_end,
                    "growth": round(rss_end / rss_200 - 1, 4),
                }
                print("soak", json.dumps(results["soak"]), flush=True)
        finally:
            process.terminate()
            process.wait(60)

    levels_ = results["levels"]
    below = [c for c in levels if c <= args.max_queue]
    results["targets"] = {
        "errors_below_queue_limit": sum(
            levels_[str(c)][m]["errors"] + levels_[str(c)][m]["refused_503"] for c in below for m in levels_[str(c)]
        ),
        "errors_other_than_503_above": sum(
            levels_[str(c)][m]["errors"] for c in levels if c > args.max_queue for m in levels_[str(c)]
        ),
        "throughput_16_batching_over_one_at_a_time": round(
            levels_["16"]["batching"]["requests_per_s"] / levels_["16"]["one_at_a_time"]["requests_per_s"], 2
        )
        if "16" in levels_
        else None,
        "single_client_p50_over_parse_file": round(
            results["paired"]["served_p50_ms"] / results["paired"]["parse_file_p50_ms"], 2
        ),
        "rss_growth_after_soak": results.get("soak", {}).get("growth"),
    }
    print("\nclients  mode            req/s    p50 ms   p95 ms   p99 ms   503   errors  server RSS/peak MiB")
    for clients in levels:
        for mode, row in levels_[str(clients)].items():
            memory = row["server_memory_kib"]
            print(
                f"{clients:>7}  {mode:<14} {row['requests_per_s']:>6}  {row['p50_ms']!s:>7}  {row['p95_ms']!s:>7}"
                f"  {row['p99_ms']!s:>7}  {row['refused_503']:>4}  {row['errors']:>6}  "
                f"{memory['VmRSS'] / 1024:.0f}/{memory['VmHWM'] / 1024:.0f}"
            )
    print(f"one client, alternating with parse_file: {json.dumps(results['paired'])}")
    print("targets:", json.dumps(results["targets"]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
