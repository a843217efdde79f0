#!/usr/bin/env python3
"""cluster_bench.py — async tasks end to end through HAProxy with 1, 2 and 3 instances sharing
tasks through Redis (--store redis://), against Celery over the same Redis, in one run.

Each instance has one loop and 4 worker threads (--workers). The load client
(bench/task_client.c: 64 connections, each submitting POST /v1/demo/add with Prefer:
respond-async and then GET /tasks/{id}/result with Prefer: wait=10) goes through HAProxy
(one thread). Two layouts (--layout): "pinned", the instances on core 0 and Redis, HAProxy
and the load on core 1 (so more instances share core 0: what grows is the cluster's
machinery, not the cores); "shared", every process on both cores as the kernel schedules
them. Measured, medians over the rounds: tasks per second end to end, the instances' CPU per
task (utime+stime of their threads), the CPU per task of Redis, HAProxy and the client, and
the Redis round trips per task (the commands clients sent, from INFO commandstats: EVALSHA,
XREAD, SUBSCRIBE, ...; what a script does inside is not a round trip). Celery:
bench/celery_add.py with 2 and then 4 prefork workers in the same layout (its workers where
the instances are, Redis and its client where HAProxy is), the better one the baseline.

usage: bench/cluster_bench.py [--build DIR] [--duration S] [--rounds N] [--instances 1,2,3]
                              [--workers N] [--layout pinned|shared] [--json FILE]
needs: haproxy, redis-server, cc, taskset; Celery from Debian (python3-celery python3-redis,
run under /usr/bin/python3). Never run by ctest."""
import argparse
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import cpu_seconds, medians  # noqa: E402
from tasks_bench import BODY, Proc, celery, children, wait_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RPORT, LB = 16390, 18400
# where each side runs: "pinned", instances (or Celery's workers) on core 0 and Redis, HAProxy
# and the load on core 1; "shared", every process on both cores, as the kernel schedules them
LAYOUTS = {"pinned": ("0", "1"), "shared": ("0,1", "0,1")}
CORES = LAYOUTS["pinned"]
# commands only clients send (those the scripts call inside, HGETALL, XREADGROUP, ..., are
# counted by commandstats too, and are no round trips)
TOP_LEVEL = ("eval", "evalsha", "xread", "subscribe", "select", "ping", "script")


def redis_cmd(*args):
    s = socket.create_connection(("127.0.0.1", RPORT), timeout=5)
    out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in args)
    s.sendall(out)
    data = b""
    while True:  # a bulk reply: $len\r\n...\r\n
        data += s.recv(1 << 20)
        if data.startswith(b"$") and b"\r\n" in data:
            n = int(data[1:data.index(b"\r\n")])
            if len(data) >= data.index(b"\r\n") + 2 + n + 2:
                break
        elif data.startswith((b"+", b"-", b":")) and data.endswith(b"\r\n"):
            break
    s.close()
    return data.decode(errors="replace")


def round_trips():
    """Commands clients sent so far (scripts' inner calls are not round trips)."""
    text = redis_cmd("INFO", "commandstats")
    n = 0
    for m in re.finditer(r"cmdstat_(\w+):calls=(\d+)", text):
        if m.group(1) in TOP_LEVEL:
            n += int(m.group(2))
    return n


def children_cpu():
    """CPU seconds of the children waited for so far (the load client)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_cluster(demo, client, n, duration, tmp, workers):
    redis = Proc(["redis-server", "--port", str(RPORT), "--save", "", "--appendonly", "no",
                  "--bind", "127.0.0.1", "--dir", tmp], RPORT, core=CORES[1])
    insts, lb = [], None
    try:
        cfg = os.path.join(tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("global\n    maxconn 4000\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n"
                    "    timeout client 60s\n    timeout server 60s\n    option http-keep-alive\n"
                    f"frontend api\n    bind 127.0.0.1:{LB}\n    default_backend i\n"
                    "backend i\n    balance roundrobin\n    option httpchk GET /ready\n")
            for i in range(n):
                f.write(f"    server i{i} 127.0.0.1:{LB + 1 + i} check inter 1s\n")
        for i in range(n):
            insts.append(Proc([demo, "--port", str(LB + 1 + i), "--loops", "1", "--workers", str(workers),
                               "--log-level", "warn", "--store", f"redis://127.0.0.1:{RPORT}/0"],
                              LB + 1 + i, core=CORES[0]))
        lb = Proc(["haproxy", "-f", cfg], LB, core=CORES[1])
        time.sleep(1.5)  # the health checks say up
        subprocess.run([client, str(LB), "/v1/demo/add", BODY, "--conns", "16", "--seconds", "1"],
                       capture_output=True)  # warm-up
        pids = [p for inst in insts for p in children(inst.pid)]
        rt0, c0, r0 = round_trips(), cpu_seconds(*pids), cpu_seconds(redis.pid)
        h0, k0 = cpu_seconds(lb.pid), children_cpu()
        out = subprocess.run(["taskset", "-c", CORES[1], client, str(LB), "/v1/demo/add", BODY,
                              "--conns", "64", "--seconds", str(duration)],
                             capture_output=True, text=True).stdout
        rt1, c1, r1 = round_trips(), cpu_seconds(*pids), cpu_seconds(redis.pid)
        h1, k1 = cpu_seconds(lb.pid), children_cpu()
        kv = dict(x.split("=") for x in out.split())
        tasks = int(kv["tasks"])
        return {"rps": float(kv["tasks_per_s"]), "cpu_us_per_req": (c1 - c0) * 1e6 / max(tasks, 1),
                "redis_cpu_us_per_task": (r1 - r0) * 1e6 / max(tasks, 1),
                "round_trips_per_task": (rt1 - rt0) / max(tasks, 1),
                "haproxy_cpu_us_per_task": (h1 - h0) * 1e6 / max(tasks, 1),
                "client_cpu_us_per_task": (k1 - k0) * 1e6 / max(tasks, 1),
                "p50_ms": float(kv.get("p50_ms", 0)), "p99_ms": float(kv.get("p99_ms", 0)),
                "polls_per_task": float(kv.get("polls_per_task", 0))}
    finally:
        if lb:
            lb.stop()
        for inst in insts:
            inst.stop()
        redis.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-rel"))
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--instances", default="1,2,3", help="the cluster sizes, comma-separated")
    ap.add_argument("--workers", type=int, default=4, help="worker threads an instance")
    ap.add_argument("--layout", choices=sorted(LAYOUTS), default="pinned")
    ap.add_argument("--json")
    a = ap.parse_args()
    global CORES
    CORES = LAYOUTS[a.layout]
    for tool in ("haproxy", "redis-server", "cc", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"cluster_bench: {tool} is missing (tools/install-deps --bench)")
    demo = os.path.join(a.build, "immersive-demo")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        client = os.path.join(tmp, "task_client")
        subprocess.run(["cc", "-O2", "-o", client, os.path.join(HERE, "task_client.c")],
                       check=True)
        for n in (int(x) for x in a.instances.split(",")):
            rs = [run_cluster(demo, client, n, a.duration, tmp, a.workers)
                  for _ in range(a.rounds)]
            results[f"{n} instance{'s' if n > 1 else ''}"] = medians(rs)
        # Celery at its best: 2 and 4 prefork workers (on core 0, as the instances)
        cels = {c: celery(tmp, concurrency=c, cores=CORES) for c in (2, 4)}
        best = max(cels, key=lambda c: cels[c]["rps"])
        results[f"Celery ({best} workers)"] = cels[best]
        results[f"Celery ({6 - best} workers)"] = cels[6 - best]
    cel = results[f"Celery ({best} workers)"]
    where = ("instances on core 0; Redis, HAProxy and the load on core 1" if a.layout == "pinned"
             else "every process on both cores")
    print(f"\n{a.rounds} rounds x {a.duration} s (medians); {where}")
    print(f"{'':18} {'tasks/s':>9} {'x Celery':>9} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/task':>12} "
          f"{'Redis us/task':>14} {'Redis RT/task':>14} {'HAProxy us/task':>16} "
          f"{'client us/task':>15}")
    for k, r in results.items():
        print(f"{k:18} {r['rps']:>9.0f} {r['rps'] / cel['rps']:>9.1f} {r.get('p50_ms', 0):>7.2f} "
              f"{r.get('p99_ms', 0):>7.2f} {r['cpu_us_per_req']:>12.1f} "
              f"{r.get('redis_cpu_us_per_task', 0):>14.1f} {r.get('round_trips_per_task', 0):>14.2f} "
              f"{r.get('haproxy_cpu_us_per_task', 0):>16.1f} {r.get('client_cpu_us_per_task', 0):>15.1f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
