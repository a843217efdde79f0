#!/usr/bin/env python3
"""http_bench.py — plaintext HTTP benchmark of immersive against nginx and h2o, in one run.

Each server is pinned to core 0 with one loop thread / worker / thread; wrk is pinned to core 1
with one thread and 64 connections, for DURATION seconds, without and with pipelining (16
requests per write). Reported per server and mode: requests per second, and the server's CPU
time per request: utime+stime of the server process (all its threads) over the run, divided by
the requests wrk completed — the same method as shared/tools/cpu-per-req. Rounds are interleaved
(server A, B, C, A, B, C, ...); medians are reported, and the ratio to nginx is the median of
the per-round ratios (each server against nginx in the same round), which cancels most of the
noise of a shared machine.
Then each server is started again with its default options (immersive: one loop a core, the
default max_conns; only the port is given), warmed up with wrk (64 connections, 2 s), and holds
10,000 idle keep-alive connections (one request each): the growth of its resident memory per
connection is reported, as shared/tools/idle-conns measures it.

When shared/tools/floor_uring.c is present (next to this repository), the canned io_uring
responder is measured too, as the floor: the CPU a server spends with no HTTP work at all.
immersive is measured twice: with its defaults, and with --batch-wait-us 50 (the opt-in
batching of completions under load, a CPU-for-latency trade described in docs/DESIGN.md).

usage: bench/http_bench.py [--build DIR] [--duration S] [--rounds N] [--idle N] [--json FILE]
needs: wrk, nginx (Debian nginx-light), h2o (Debian h2o), taskset, a built immersive-demo.
Never run by ctest: it takes minutes and its figures depend on the machine.
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import cpu_seconds, rss_kb  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BODY = b"Hello, World!"


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
                if s.recv(4096).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing answers 200 on port {port}")


class Server:
    def __init__(self, name, argv, port, pidfile=None, env=None, pin=True):
        self.name, self.argv, self.port, self.pidfile = name, argv, port, pidfile
        with socket.socket() as s:  # a port someone else holds would measure the wrong server
            if s.connect_ex(("127.0.0.1", port)) == 0:
                sys.exit(f"http_bench: port {port} for {name} is already taken")
        self.proc = subprocess.Popen((["taskset", "-c", "0"] if pin else []) + argv,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=env)
        wait_port(port)
        if self.proc.poll() is not None:
            sys.exit(f"http_bench: {name} exited at start (status {self.proc.returncode})")
        self.pid = self.proc.pid

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wrk(port, duration, pipeline, script_dir):
    cmd = ["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{duration}s"]
    if pipeline > 1:
        path = os.path.join(script_dir, f"pipeline{pipeline}.lua")
        with open(path, "w") as f:
            f.write("init = function(args)\n  local r = {}\n"
                    f"  for i = 1, {pipeline} do r[i] = wrk.format(nil, \"/plaintext\") end\n"
                    "  req = table.concat(r)\nend\nrequest = function() return req end\n")
        cmd += ["-s", path]
    out = subprocess.run(cmd + [f"http://127.0.0.1:{port}/plaintext"], capture_output=True,
                         text=True).stdout
    m = re.search(r"(\d+) requests in", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return int(m.group(1)) if m else 0, int(bad.group(1)) if bad else 0, errors.group(1) if errors else ""


def measure(server, duration, pipeline, script_dir):
    c0, t0 = cpu_seconds(server.pid), time.monotonic()
    n, bad, errors = wrk(server.port, duration, pipeline, script_dir)
    c1, t1 = cpu_seconds(server.pid), time.monotonic()
    if bad or errors:
        print(f"  warning: {server.name}: {bad} non-2xx, socket errors: {errors}", file=sys.stderr)
    return {"rps": n / (t1 - t0), "cpu_us_per_req": (c1 - c0) * 1e6 / max(n, 1), "requests": n}


def idle_memory(server, n):
    """RSS growth per connection with n idle keep-alive connections, each after one request."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
    before = rss_kb(server.pid)
    socks, req = [], b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(req)
            socks.append(s)
        for s in socks:
            s.settimeout(10)
            if not s.recv(4096).startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"{server.name}: an idle connection got no 200")
        time.sleep(1)
        after = rss_kb(server.pid)
        alive = 0
        for s in socks[:: max(1, n // 100)]:
            s.sendall(req)
            if s.recv(4096).startswith(b"HTTP/1.1 200"):
                alive += 1
    finally:
        for s in socks:
            s.close()
    return {"rss_before_kb": before, "rss_after_kb": after,
            "bytes_per_conn": (after - before) * 1024 / n, "sampled_alive": alive}


def start_servers(build, tmp, idle, defaults=False):
    """The servers, pinned with one thread each, or (defaults) as they come: immersive with
    only its port given, nginx and h2o with only what serving the idle connections needs."""
    servers = []
    floor_src = os.path.join(ROOT, "..", "shared", "tools", "floor_uring.c")
    if os.path.exists(floor_src):
        exe = os.path.join(tmp, "floor_uring")
        subprocess.run(["cc", "-O2", "-o", exe, floor_src, "-luring"], check=True)
        servers.append(("floor (no HTTP work)", [exe, "18188"], 18188, None))
    demo = os.path.join(build, "immersive-demo")
    if defaults:
        servers.append(("immersive", [demo, "--port", "18190", "--log-level", "warn"], 18190,
                        None))
    else:
        servers.append(("immersive", [demo, "--port", "18190", "--loops", "1", "--log-level",
                                      "warn", "--max-conns", str(idle + 1000)], 18190, None))
        # the opt-in batching of completions (batch_wait_us, docs/DESIGN.md): not the default
        servers.append(("immersive batch 50us", [demo, "--port", "18193", "--loops", "1",
                                                 "--log-level", "warn", "--max-conns",
                                                 str(idle + 1000), "--batch-wait-us", "50"],
                        18193, None))
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""{"" if defaults else "worker_processes 1;"}
daemon off;
master_process off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx.err;
worker_rlimit_nofile {idle + 2000};
events {{ worker_connections {idle + 1000}; }}
http {{
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {{
    listen 127.0.0.1:18191;
    location / {{ default_type text/plain; return 200 "Hello, World!"; }}
  }}
}}
""")
    servers.append(("nginx", ["nginx", "-c", conf, "-e", f"{tmp}/nginx.err"], 18191, None))
    www = os.path.join(tmp, "www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "plaintext"), "wb") as f:
        f.write(BODY)
    h2o_conf = os.path.join(tmp, "h2o.conf")
    with open(h2o_conf, "w") as f:
        # h2o 2.2 (Debian 12) has no handler that returns a fixed body: its file handler
        # serves the 13-byte file, with the open file kept in its cache.
        f.write(f"""listen:
  host: 127.0.0.1
  port: 18192
{"" if defaults else "num-threads: 1"}
{"user: root" if os.geteuid() == 0 else ""}
max-connections: {idle + 1000}
http1-request-timeout: 300
hosts:
  default:
    paths:
      /:
        file.dir: {www}
""")
    servers.append(("h2o", ["h2o", "-c", h2o_conf], 18192, None))
    return servers


def idle_with_defaults(build, tmp, n, duration=2):
    """Each server on its own, with its defaults: a wrk warm-up, then n idle connections."""
    out = {}
    for name, argv, port, pf in start_servers(build, tmp, n, defaults=True):
        s = Server(name, argv, port, pf, pin=False)
        try:
            wrk(port, duration, 1, tmp)
            time.sleep(0.5)  # wrk's connections are closed and gone
            out[name] = idle_memory(s, n)
        finally:
            s.stop()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--json", help="also write one JSON object per result to this file")
    a = ap.parse_args()
    for tool in ("wrk", "nginx", "h2o", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"http_bench: {tool} is missing (apt-get install wrk nginx-light h2o util-linux)")
    if os.cpu_count() < 2:
        sys.exit("http_bench: needs 2 cores (server on core 0, wrk on core 1)")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        servers = [Server(n, av, p, pf) for n, av, p, pf in start_servers(a.build, tmp, a.idle)]
        try:
            for pipeline in (1, 16):
                runs = {s.name: [] for s in servers}
                for r in range(a.rounds):
                    for s in servers:
                        runs[s.name].append(measure(s, a.duration, pipeline, tmp))
                ng = runs["nginx"]
                for s in servers:
                    rs = runs[s.name]
                    results.append({
                        "server": s.name, "pipeline": pipeline,
                        "rps": statistics.median(x["rps"] for x in rs),
                        "cpu_us_per_req": statistics.median(x["cpu_us_per_req"] for x in rs),
                        "cpu_vs_nginx": statistics.median(x["cpu_us_per_req"] / n["cpu_us_per_req"]
                                                          for x, n in zip(rs, ng)),
                        "rps_vs_nginx": statistics.median(x["rps"] / n["rps"] for x, n in zip(rs, ng)),
                        "rounds_cpu": [round(x["cpu_us_per_req"], 2) for x in rs],
                        "rounds_rps": [round(x["rps"]) for x in rs]})
        finally:
            for s in servers:
                s.stop()
        idle = idle_with_defaults(a.build, tmp, a.idle)
    print(f"\nplaintext, 64 connections, {a.duration} s x {a.rounds} rounds (medians); "
          "server on core 0, wrk on core 1")
    print(f"{'server':22} {'pipeline':>8} {'req/s':>10} {'x nginx':>8} {'CPU us/req':>11} {'x nginx CPU':>12}")
    for r in results:
        print(f"{r['server']:22} {r['pipeline']:>8} {r['rps']:>10.0f} {r['rps_vs_nginx']:>8.2f} "
              f"{r['cpu_us_per_req']:>11.2f} {r['cpu_vs_nginx']:>12.2f}")
    print(f"\nidle keep-alive connections: {a.idle}, each server with its defaults, after a wrk "
          "warm-up")
    print(f"{'server':22} {'RSS before KB':>14} {'RSS after KB':>13} {'bytes/conn':>11}")
    for name, m in idle.items():
        print(f"{name:22} {m['rss_before_kb']:>14} {m['rss_after_kb']:>13} "
              f"{m['bytes_per_conn']:>11.0f}   ({m['sampled_alive']}/100 sampled still answer)")
        results.append({"server": name, "idle_conns": a.idle, **m})
    if a.json:
        with open(a.json, "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
