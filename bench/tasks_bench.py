#!/usr/bin/env python3
"""tasks_bench.py — tasks against the inline path, FastAPI's queue pattern and Celery, in one run.

Every server is pinned to core 0 (immersive: one loop and one worker thread; uvicorn: one
process); the load comes from core 1. Measured, with medians over the rounds:
  inline     POST /v1/math/add (the handler runs on the loop), wrk, 64 connections
  pool sync  POST /v1/demo/add, the same function as a task on the pool, answered when done
  async      POST /v1/demo/add with Prefer: respond-async, then GET /tasks/{id}/result until
             it is there (bench/task_client.c, 64 connections): tasks per second end to end
  FastAPI    the seed pattern (bench/fastapi_queue.py: a bounded queue, one worker thread, the
             handler awaiting a future) under uvicorn with uvloop and httptools, wrk
  Celery     the same add as a Celery task over Redis (bench/celery_add.py), 2 prefork
             workers on core 0, a redis-server this script starts on a loopback port
req/s, p50/p99 latency (wrk --latency) and the server's CPU time per request (utime+stime of
all its threads and processes over the run / requests, as shared/tools/cpu-per-req). Then the
store's memory per finished task: RSS growth of a fresh server after 100,000 async tasks.

usage: bench/tasks_bench.py [--build DIR] [--duration S] [--rounds N] [--json FILE]
needs: wrk, cc, Debian's python3-fastapi python3-uvicorn python3-uvloop python3-httptools
python3-celery python3-redis redis-server (tools/install-deps --bench), run with any python3:
the peers run under /usr/bin/python3. Never run by ctest."""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import cpu_seconds, medians, rss_kb  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEB_PY = "/usr/bin/python3"
BODY = '{"x":3,"y":6}'


def children(pid):
    """pid and every descendant (uvicorn and celery have several)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def wait_port(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


class Proc:
    def __init__(self, argv, port=None, cwd=None, env=None, core="0"):
        if port:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    sys.exit(f"tasks_bench: port {port} is already taken")
        self.p = subprocess.Popen(["taskset", "-c", core] + argv, cwd=cwd, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if port:
            wait_port(port)
        self.pid = self.p.pid

    def stop(self):
        for pid in reversed(children(self.pid)):
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        try:
            self.p.wait(15)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def wrk_post(port, path, duration, script_dir):
    lua = os.path.join(script_dir, "post.lua")
    with open(lua, "w") as f:
        f.write(f'wrk.method = "POST"\nwrk.body = \'{BODY}\'\n'
                'wrk.headers["Content-Type"] = "application/json"\n')
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{duration}s",
                          "--latency", "-s", lua, f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True).stdout
    n = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        return float(m.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[m.group(2)] if m else None
    return n, int(bad.group(1)) if bad else 0, pct(50), pct(99)


def measure_wrk(proc, port, path, duration, tmp):
    pids = children(proc.pid)
    c0, t0 = cpu_seconds(*pids), time.monotonic()
    n, bad, p50, p99 = wrk_post(port, path, duration, tmp)
    c1, t1 = cpu_seconds(*pids), time.monotonic()
    if bad:
        print(f"  warning: {path}: {bad} non-2xx answers", file=sys.stderr)
    return {"rps": n / (t1 - t0), "cpu_us_per_req": (c1 - c0) * 1e6 / max(n, 1), "p50_ms": p50,
            "p99_ms": p99}


def measure_async(proc, client, port, duration):
    pids = children(proc.pid)
    c0 = cpu_seconds(*pids)
    out = subprocess.run(["taskset", "-c", "1", client, str(port), "/v1/demo/add", BODY,
                          "--conns", "64", "--seconds", str(duration)],
                         capture_output=True, text=True).stdout
    c1 = cpu_seconds(*pids)
    kv = dict(x.split("=") for x in out.split())
    n = int(kv["tasks"])
    return {"rps": float(kv["tasks_per_s"]), "cpu_us_per_req": (c1 - c0) * 1e6 / max(n, 1),
            "p50_ms": float(kv.get("p50_ms", 0)), "p99_ms": float(kv.get("p99_ms", 0)),
            "polls_per_task": float(kv["polls_per_task"])}


def store_memory(demo, client, n=100000):
    port = 18297
    p = Proc([demo, "--port", str(port), "--loops", "1", "--workers", "1", "--log-level",
              "warn"], port)
    try:
        subprocess.run([client, str(port), "/v1/demo/add", BODY, "--conns", "64",
                        "--submit-only", "2000"], capture_output=True)  # warm-up
        time.sleep(0.5)
        before = rss_kb(p.pid)
        out = subprocess.run([client, str(port), "/v1/demo/add", BODY, "--conns", "64",
                              "--submit-only", str(n)], capture_output=True, text=True).stdout
        time.sleep(1)
        after = rss_kb(p.pid)
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET /functions/add_pool HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            info = s.recv(65536).decode(errors="replace")
        queued = re.search(r'"queued":(\d+)', info)
    finally:
        p.stop()
    per = (after - before) * 1024 / n
    return {"tasks": n, "rss_before_kb": before, "rss_after_kb": after, "bytes_per_task": per,
            "result_bytes": len('{"result":9}'), "still_queued": int(queued.group(1)) if queued else -1,
            "client": out.strip()}


def celery(tmp, n=5000, concurrency=2, cores=("0", "1")):
    """Celery's tasks/s: its workers on cores[0], Redis and the client on cores[1]."""
    rport = 16379
    env = dict(os.environ, IM_BENCH_REDIS_PORT=str(rport), PYTHONPATH=HERE)
    redis = Proc(["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no",
                  "--bind", "127.0.0.1", "--dir", tmp], rport, core=cores[1])
    worker = Proc([DEB_PY, "-m", "celery", "-A", "celery_add", "worker", "--concurrency", str(concurrency),
                   "--pool", "prefork", "--loglevel", "warning", "--without-heartbeat",
                   "--without-mingle", "--without-gossip"], cwd=HERE, env=env, core=cores[0])
    try:
        pids = children(worker.pid)
        c0, r0 = cpu_seconds(*children(worker.pid)), cpu_seconds(redis.pid)
        out = subprocess.run(["taskset", "-c", cores[1], DEB_PY, os.path.join(HERE, "celery_add.py"),
                              str(n)], capture_output=True, text=True, env=env, cwd=HERE,
                             timeout=600)
        c1, r1 = cpu_seconds(*(children(worker.pid) or pids)), cpu_seconds(redis.pid)
        m = re.search(r"tasks=(\d+) seconds=([\d.]+) tasks_per_s=(\d+)", out.stdout)
        if not m:
            raise RuntimeError("celery client: " + out.stdout + out.stderr[-2000:])
        return {"rps": float(m.group(3)), "cpu_us_per_req": (c1 - c0) * 1e6 / int(m.group(1)),
                "redis_cpu_us_per_task": (r1 - r0) * 1e6 / int(m.group(1))}
    finally:
        worker.stop()
        redis.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    for tool in ("wrk", "taskset", "cc", "redis-server"):
        if not shutil.which(tool):
            sys.exit(f"tasks_bench: {tool} is missing (tools/install-deps --bench)")
    demo = os.path.join(a.build, "immersive-demo")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        client = os.path.join(tmp, "task_client")
        subprocess.run(["cc", "-O2", "-o", client, os.path.join(HERE, "task_client.c")],
                       check=True)
        runs = {k: [] for k in ("inline", "pool sync", "async", "FastAPI")}
        im = Proc([demo, "--port", "18290", "--loops", "1", "--workers", "1", "--log-level",
                   "warn"], 18290)
        fa = Proc([DEB_PY, "-m", "uvicorn", "fastapi_queue:app", "--port", "18291", "--loop",
                   "uvloop", "--http", "httptools", "--log-level", "warning", "--no-access-log"],
                  18291, cwd=HERE)
        try:
            for r in range(a.rounds):
                runs["inline"].append(measure_wrk(im, 18290, "/v1/math/add", a.duration, tmp))
                runs["pool sync"].append(measure_wrk(im, 18290, "/v1/demo/add", a.duration, tmp))
                runs["async"].append(measure_async(im, client, 18290, a.duration))
                runs["FastAPI"].append(measure_wrk(fa, 18291, "/add", a.duration, tmp))
        finally:
            im.stop()
            fa.stop()
        for k, rs in runs.items():
            results[k] = medians(rs)
        results["Celery"] = celery(tmp)
        results["store"] = store_memory(demo, client)
    inl, fa = results["inline"], results["FastAPI"]
    print(f"\n{a.rounds} rounds x {a.duration} s (medians); servers on core 0, load on core 1")
    print(f"{'':12} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11} "
          f"{'x inline rps':>13} {'x inline CPU':>13} {'x FastAPI CPU':>14}")
    for k in ("inline", "pool sync", "async", "FastAPI", "Celery"):
        r = results[k]
        print(f"{k:12} {r['rps']:>10.0f} {r.get('p50_ms') or 0:>8.3f} {r.get('p99_ms') or 0:>8.3f} "
              f"{r['cpu_us_per_req']:>11.2f} {r['rps'] / inl['rps']:>13.2f} "
              f"{r['cpu_us_per_req'] / inl['cpu_us_per_req']:>13.2f} "
              f"{r['cpu_us_per_req'] / fa['cpu_us_per_req']:>14.3f}")
    print(f"(async: tasks/s end to end, submit then result; "
          f"{results['async'].get('polls_per_task', 0):.2f} polls per task; "
          f"x Celery: {results['async']['rps'] / results['Celery']['rps']:.0f})")
    s = results["store"]
    print(f"\nstore: {s['tasks']} finished tasks: RSS {s['rss_before_kb']} -> {s['rss_after_kb']} KB: "
          f"{s['bytes_per_task']:.0f} bytes a task, {s['result_bytes']}-byte results "
          f"(still queued: {s['still_queued']})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
