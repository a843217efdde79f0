#!/usr/bin/env python3
"""arrays_bench.py — large numeric bodies: POST /v1/demo/sum with 10^6 float64s as JSON, as raw
float64s and as .npy, against FastAPI receiving the same .npy body into numpy and summing it.

sum runs in process mode: the body crosses to the worker process in a sealed memfd, which it
maps. Both servers are pinned to core 0 (immersive-demo: one loop, one pool thread, one worker
process; uvicorn: one process with uvloop and httptools); the client (Python's http.client on one keep-alive connection,
sending the prepared body) runs on core 1. For each kind, N sequential requests: the median
wall time per request gives MB/s of body, and the server's CPU time over the round (utime +
stime of all its threads, as shared/tools/cpu-per-req) gives CPU per MB. The answer is
checked against numpy's own sum every time.

usage: bench/arrays_bench.py [--build DIR] [--n VALUES] [--rounds R] [--json FILE]
needs: numpy, fastapi, uvicorn, uvloop, httptools from Debian (tools/install-deps --bench):
run with /usr/bin/python3. Never run by ctest."""
import argparse
import http.client
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import cpu_seconds  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

FASTAPI_APP = '''
import io
import numpy as np
from fastapi import FastAPI, Request

app = FastAPI()


@app.post("/sum")
async def sum_npy(request: Request):
    body = await request.body()
    a = np.load(io.BytesIO(body), allow_pickle=False)
    return {"result": float(a.sum())}
'''


def wait_port(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"arrays_bench: nothing listens on port {port}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv, port, cwd=None):
    p = subprocess.Popen(["taskset", "-c", "0"] + argv, cwd=cwd, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    wait_port(port)
    return p


def stop(p):
    p.terminate()
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def all_pids(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    pids = [pid]
    for c in out:
        pids += all_pids(int(c))
    return pids


def measure(port, path, body, ctype, want, rounds, pid):
    """(median seconds per request, server CPU seconds per request)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    times = []
    pids = all_pids(pid)
    cpu0 = cpu_seconds(*pids)
    for _ in range(rounds):
        t0 = time.perf_counter()
        c.request("POST", path, body, {"Content-Type": ctype})
        r = c.getresponse()
        out = r.read()
        times.append(time.perf_counter() - t0)
        if r.status != 200:
            sys.exit(f"arrays_bench: {path} answered {r.status}: {out[:200]!r}")
        got = json.loads(out)["result"]
        if abs(got - want) > 1e-6 * max(1.0, abs(want)):
            sys.exit(f"arrays_bench: {path} summed {got}, numpy says {want}")
    cpu = (cpu_seconds(*pids) - cpu0) / rounds
    c.close()
    return statistics.median(times), cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--n", type=int, default=10**6)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--json")
    a = ap.parse_args()
    demo = os.path.join(a.build, "immersive-demo")
    if not os.access(demo, os.X_OK):
        sys.exit(f"arrays_bench: no {demo}: build first")
    v = np.random.default_rng(0).standard_normal(a.n)
    want = float(v.sum())
    buf = io.BytesIO()
    np.save(buf, v)
    bodies = {
        "json": (json.dumps({"values": v.tolist()}).encode(), "application/json"),
        "raw float64": (v.astype("<f8").tobytes(), "application/octet-stream"),
        "npy": (buf.getvalue(), "application/x-npy"),
    }
    results = {}
    port = free_port()
    p = start([demo, "--port", str(port), "--loops", "1", "--workers", "1", "--processes", "1",
               "--log-level", "warn"], port)
    try:
        for kind, (body, ctype) in bodies.items():
            measure(port, "/v1/demo/sum", body, ctype, want, 2, p.pid)  # warm-up
            t, cpu = measure(port, "/v1/demo/sum", body, ctype, want, a.rounds, p.pid)
            results["immersive " + kind] = (len(body), t, cpu)
    finally:
        stop(p)
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "npy_app.py"), "w") as f:
            f.write(FASTAPI_APP)
        port = free_port()
        p = start(["/usr/bin/python3", "-m", "uvicorn", "npy_app:app", "--port", str(port), "--loop",
                   "uvloop", "--http", "httptools", "--log-level", "warning"], port, cwd=d)
        try:
            body, ctype = bodies["npy"]
            measure(port, "/sum", body, ctype, want, 2, p.pid)
            t, cpu = measure(port, "/sum", body, ctype, want, a.rounds, p.pid)
            results["FastAPI npy"] = (len(body), t, cpu)
        finally:
            stop(p)
    print(f"POST sum of {a.n} float64s, {a.rounds} sequential requests each, medians")
    print(f"{'what':<24} {'body MB':>8} {'ms/req':>8} {'MB/s':>8} {'CPU ms/req':>11}")
    for k, (n, t, cpu) in results.items():
        print(f"{k:<24} {n / 1e6:8.2f} {t * 1e3:8.2f} {n / 1e6 / t:8.1f} {cpu * 1e3:11.2f}")
    ratio = (results["immersive npy"][0] / results["immersive npy"][1]) / \
            (results["FastAPI npy"][0] / results["FastAPI npy"][1])
    print(f"immersive npy / FastAPI npy: {ratio:.1f}x MB/s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({k: {"bytes": n, "seconds": t, "cpu_seconds": c} for k, (n, t, c) in results.items()},
                      f, indent=1)


if __name__ == "__main__":
    main()
