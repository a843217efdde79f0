#!/usr/bin/env python3
"""observe_bench.py — what observability costs plaintext, in one run: immersive-demo with its
defaults (metrics on, access log off), with the access log written to a file, and with the
metrics off. Each server is pinned to core 0 with one loop (its log writer thread shares that
core and its CPU time counts), wrk to core 1 (one thread, 64 connections), without and with
pipelining (16 requests a write). Reported per configuration and mode: requests per second and
the server's CPU time per request (utime+stime of all its threads over the run, divided by the
requests wrk completed, as shared/tools/cpu-per-req measures it); rounds are interleaved and
the ratios are medians of per-round ratios. nginx with its access log off and on (to a file,
buffer=64k) is measured in the same rounds: the price a mature peer pays for the same line.
Then the access log's default ring under load: the server with the access log on, unpinned
(two loops), driven by wrk without pipelining (about twice 100k requests per second here) and
with it (over a million); the log lines dropped are read from /metrics
(immersive_log_lines_dropped_total) and the file's lines are counted against the requests.

usage: bench/observe_bench.py [--build DIR] [--duration S] [--rounds N] [--json FILE]
needs: wrk, nginx (Debian nginx-light), taskset, a built immersive-demo (Release). Never run
by ctest.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_bench import Server, measure  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def dropped(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    m = re.search(r"^immersive_log_lines_dropped_total (\S+)$", text, re.M)
    return int(float(m.group(1))) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build-rel"))
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json")
    ap.add_argument("--ring-only", action="store_true", help="only the ring's part")
    a = ap.parse_args()
    demo = os.path.join(a.build, "immersive-demo")
    tmp = tempfile.mkdtemp(prefix="im-observe-bench-")
    log = os.path.join(tmp, "access.log")
    base = [demo, "--loops", "1", "--log-level", "warn"]
    configs = [
        ("defaults (metrics on)", base + ["--port", "18290"], 18290),
        ("access log to a file", base + ["--port", "18291", "--access-log", "true",
                                         "--log-file", log], 18291),
        ("metrics off", base + ["--port", "18292", "--metrics", "false"], 18292),
    ]
    # the peer's own price of an access log, in the same run: nginx with it off and on
    for name, port, acc in (("nginx, access log off", 18293, "off"),
                            ("nginx, access log on", 18294, f"{tmp}/nginx-access.log combined buffer=64k")):
        conf = os.path.join(tmp, f"nginx-{port}.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes 1;
daemon off;
master_process off;
pid {tmp}/nginx-{port}.pid;
error_log {tmp}/nginx-{port}.err;
events {{ worker_connections 4096; }}
http {{
  access_log {acc};
  keepalive_requests 100000000;
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type text/plain; return 200 "Hello, World!"; }}
  }}
}}
""")
        configs.append((name, ["nginx", "-c", conf, "-e", f"{tmp}/nginx-{port}.err"], port))
    results = {name: {1: [], 16: []} for name, _, _ in configs}
    for r in range(0 if a.ring_only else a.rounds):
        for pipeline in (1, 16):
            for name, argv, port in configs:
                srv = Server(name, argv, port)
                try:
                    measure(srv, 1, pipeline, tmp)  # warm-up
                    results[name][pipeline].append(measure(srv, a.duration, pipeline, tmp))
                finally:
                    srv.stop()
                for p in (log, f"{tmp}/nginx-access.log"):
                    if os.path.exists(p):
                        os.unlink(p)  # each round's file starts empty
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
    out = {"cpu": {}, "ring": {}}
    basename = configs[0][0]
    for pipeline in () if a.ring_only else (1, 16):
        print(f"\nplaintext, pipelining {pipeline}: median of {a.rounds} rounds")
        print(f"  {'configuration':26} {'req/s':>10} {'CPU us/req':>11} {'vs defaults':>12}")
        for name, _, _ in configs:
            rs = results[name][pipeline]
            ratio = statistics.median(x["cpu_us_per_req"] / b["cpu_us_per_req"]
                                      for x, b in zip(rs, results[basename][pipeline]))
            row = {"rps": statistics.median(x["rps"] for x in rs),
                   "cpu_us_per_req": statistics.median(x["cpu_us_per_req"] for x in rs),
                   "cpu_ratio_to_defaults": ratio}
            out["cpu"].setdefault(str(pipeline), {})[name] = row
            print(f"  {name:26} {row['rps']:10.0f} {row['cpu_us_per_req']:11.3f} {ratio:12.3f}")
    # the default ring under load, access log on (two loops, not pinned): without pipelining
    # (about twice 100k req/s) and with it (over a million)
    for pipeline in (1, 16):
        srv = Server("ring", [demo, "--port", "18295", "--log-level", "warn", "--access-log",
                              "true", "--log-file", log], 18295, pin=False)
        try:
            d0 = dropped(srv.port)
            m = measure(srv, a.duration, pipeline, tmp)
            time.sleep(1)  # the writer drains
            d1 = dropped(srv.port)
        finally:
            srv.stop()
        with open(log, "rb") as f:
            lines = sum(1 for ln in f if b" ACCESS " in ln)
        os.unlink(log)
        ring = {"rps": m["rps"], "requests": m["requests"], "dropped": d1 - d0,
                "access_lines": lines}
        out["ring"][str(pipeline)] = ring
        print(f"\naccess log on, default ring (8192 lines), pipelining {pipeline}: "
              f"{ring['rps']:.0f} req/s for {a.duration} s: {ring['requests']} requests, "
              f"{ring['access_lines']} access lines written, {ring['dropped']} dropped")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
