#!/usr/bin/env python3
"""process_bench.py — process mode against pool mode and against a fork per call, in one run.

immersive-demo on core 0 with one loop, one pool thread and one worker process (--loops 1
--workers 1 --processes 1); wrk on core 1, 64 connections, POST {"x":3,"y":6}:
  pool sync      /v1/demo/add: the task runs on the pool thread
  process sync   /v1/demo/add_process: the same function in the warm worker process (the
                 request crosses a socketpair, is bound again there, the answer comes back)
  fork per call  restful-functions' pattern (bench/fork_per_call.py): FastAPI under uvicorn
                 (uvloop, httptools) forking a process per call with multiprocessing, on core 0
req/s, p50/p99 latency and the server's CPU per request (all its processes), medians of the
rounds. Targets (issue 13): process >= 0.5x pool's req/s, >= 20x fork per call's.

usage: bench/process_bench.py [--build DIR] [--duration S] [--rounds N] [--json FILE]
needs: wrk, Debian's python3-fastapi python3-uvicorn python3-uvloop python3-httptools
(tools/install-deps --bench); the peer runs under /usr/bin/python3. Never run by ctest."""
import argparse
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import medians  # noqa: E402
from tasks_bench import DEB_PY, HERE, ROOT, Proc, measure_wrk  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"process_bench: {tool} is missing (tools/install-deps --bench)")
    demo = os.path.join(a.build, "immersive-demo")
    runs = {k: [] for k in ("pool sync", "process sync", "fork per call")}
    with tempfile.TemporaryDirectory() as tmp:
        im = Proc([demo, "--port", "18295", "--loops", "1", "--workers", "1", "--processes", "1",
                   "--log-level", "warn"], 18295)
        fk = Proc([DEB_PY, "-m", "uvicorn", "fork_per_call:app", "--port", "18296", "--loop",
                   "uvloop", "--http", "httptools", "--log-level", "warning", "--no-access-log"],
                  18296, cwd=HERE)
        try:
            for _ in range(a.rounds):
                runs["pool sync"].append(measure_wrk(im, 18295, "/v1/demo/add", a.duration, tmp))
                runs["process sync"].append(measure_wrk(im, 18295, "/v1/demo/add_process",
                                                        a.duration, tmp))
                runs["fork per call"].append(measure_wrk(fk, 18296, "/add", a.duration, tmp))
        finally:
            im.stop()
            fk.stop()
    res = {k: medians(rs) for k, rs in runs.items()}
    pool, fork = res["pool sync"], res["fork per call"]
    print(f"\n{a.rounds} rounds x {a.duration} s (medians); servers on core 0, wrk on core 1")
    print(f"{'':14} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11} "
          f"{'x pool rps':>11} {'x fork rps':>11}")
    for k, r in res.items():
        print(f"{k:14} {r['rps']:>10.0f} {r['p50_ms'] or 0:>8.3f} {r['p99_ms'] or 0:>8.3f} "
              f"{r['cpu_us_per_req']:>11.2f} {r['rps'] / pool['rps']:>11.2f} "
              f"{r['rps'] / fork['rps']:>11.1f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
