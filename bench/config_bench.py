#!/usr/bin/env python3
"""config_bench.py — what following a config file costs: plaintext CPU per request while the
config file is rewritten every 100 ms (each write a rename over the file, changing a live
limit, so each is a real reload that the loops take) against the same server with no reload,
in one run.

immersive-demo runs with one loop, pinned to core 0; wrk (1 thread, 64 connections) and the
writer run on core 1. Rounds alternate the two modes; the server's CPU per request is
utime+stime of its process (every thread: loops, workers, the config thread) over the run,
divided by the requests wrk completed (as shared/tools/cpu-per-req). Medians are reported and
the ratio is the median of the per-round ratios.

usage: bench/config_bench.py [--build DIR] [--duration S] [--rounds N]
needs: wrk, taskset, a built immersive-demo. Never run by ctest.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import cpu_seconds  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def wrk(port, duration):
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{duration}s",
                          f"http://127.0.0.1:{port}/plaintext"], capture_output=True, text=True).stdout
    m = re.search(r"(\d+) requests in", out)
    return int(m.group(1)) if m else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    os.sched_setaffinity(0, {1})  # the writer beside wrk, away from the server's core
    tmp = tempfile.mkdtemp(prefix="im-config-bench-")
    cfg = os.path.join(tmp, "config.toml")
    write(cfg, "[server.limits]\nmax_body_bytes = 100000\n")
    demo = os.path.join(a.build, "immersive-demo")
    srv = subprocess.Popen(["taskset", "-c", "0", demo, "--config", cfg, "--port", "18195",
                            "--loops", "1", "--workers", "1", "--log-level", "warn"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = srv.stdout.readline()
    if "listening" not in line:
        sys.exit("the server did not start: " + srv.stderr.read())
    port = int(line.rsplit(":", 1)[1])
    results = {"none": [], "reload every 100 ms": []}
    ratios = []
    reloads = 0
    for r in range(a.rounds):
        per = {}
        for mode in results:
            stop = threading.Event()
            count = [0]

            def writer():
                i = 0
                while not stop.wait(0.1):
                    i += 1
                    write(cfg, "[server.limits]\nmax_body_bytes = %d\n" % (100000 + i % 2))
                    count[0] += 1
            t = threading.Thread(target=writer)
            if mode != "none":
                t.start()
            c0, t0 = cpu_seconds(srv.pid), time.monotonic()
            n = wrk(port, a.duration)
            c1, t1 = cpu_seconds(srv.pid), time.monotonic()
            stop.set()
            if mode != "none":
                t.join()
                reloads += count[0]
            us = (c1 - c0) * 1e6 / max(n, 1)
            per[mode] = us
            results[mode].append((n / (t1 - t0), us))
            print(f"round {r + 1} {mode:22s} {n / (t1 - t0):9.0f} req/s {us:6.2f} us/req", flush=True)
        ratios.append(per["reload every 100 ms"] / per["none"])
    srv.terminate()
    srv.wait(20)
    print()
    for mode, rows in results.items():
        print(f"{mode:22s} median {statistics.median(x[0] for x in rows):9.0f} req/s "
              f"{statistics.median(x[1] for x in rows):6.2f} us/req")
    print(f"CPU per request, reloading / not: {statistics.median(ratios):.3f} "
          f"({reloads} reloads in all)")


if __name__ == "__main__":
    main()
