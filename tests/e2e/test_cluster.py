"""Several instances sharing tasks through Redis (--store redis://...), end to end: a real
redis-server started here on a free loopback port with its own directory, and immersive-demo
instances pointed at it. Any instance answers for any task (get, result, wait, events, DELETE,
terminate); the queue capacity and max_concurrency hold for the whole cluster; roles; a worker
killed with SIGKILL loses no task (taken over, at most tasks.max_attempts runs); Redis stopped
and started again under load: 503 + Retry-After while it is gone, inline endpoints unaffected,
recovery after; a clear error at start when it cannot be reached. Skips (77) without
redis-server or a build with the Redis store."""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server import DemoServer, demo_binary  # noqa: E402
import test_tasks  # noqa: E402
from test_tasks import Client, read_events  # noqa: E402

SLOW = 3.0 if os.environ.get("IM_SANITIZE") else 1.0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Redis:
    """One redis-server on a free loopback port, in its own directory, persisting nothing."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="im-redis-")
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.cmd("PING") == "PONG":
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not answer on port %d" % self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, True)

    def cmd(self, *args, db=0):
        """One command (RESP over a socket): the reply as str, int, list or None."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            def enc(parts):
                out = b"*%d\r\n" % len(parts)
                for a in parts:
                    a = str(a).encode()
                    out += b"$%d\r\n%s\r\n" % (len(a), a)
                return out
            f = s.makefile("rb")
            if db:
                s.sendall(enc(["SELECT", db]))
                self._read(f)
            s.sendall(enc(args))
            return self._read(f)
        finally:
            s.close()

    def _read(self, f):
        line = f.readline().rstrip(b"\r\n")
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise AssertionError("redis: " + rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = f.read(n + 2)[:-2]
            return data.decode("utf-8", "replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read(f) for _ in range(n)]
        raise AssertionError("redis: bad reply %r" % line)


def have_redis_store():
    """The demo was built with the Redis store: its --help lists the key's doc."""
    p = subprocess.run([demo_binary(), "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=30)
    return b"--store" in p.stdout


def cluster_metrics(port):
    """The immersive_cluster_* series of an instance's GET /metrics."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return {ln.split()[0]: float(ln.split()[1]) for ln in text.splitlines()
            if ln.startswith("immersive_cluster_")}


class ClusterCase(unittest.TestCase):
    """A Redis and N instances (FLAGS each), db 1, claim after 1 s."""

    N = 2
    FLAGS = ("--workers", "2")

    def setUp(self):
        self.redis = Redis().start()
        self.addCleanup(self.redis.cleanup)
        self.url = "redis://127.0.0.1:%d/1" % self.redis.port
        self.srvs = []
        for i in range(self.N):
            self.srvs.append(self.start_instance(*self.flags_of(i)))
        self.cs = [Client(s.port) for s in self.srvs]

    def flags_of(self, i):
        return self.FLAGS

    def start_instance(self, *flags):
        srv = DemoServer("--store", self.url, "--task-claim-after-ms", "1000", *flags).start()
        self.addCleanup(srv.kill)
        return srv

    def tearDown(self):
        for s in self.srvs:
            if s.alive():
                rc = s.stop()
                self.assertEqual(rc, 0, "an instance exited with %s:\n%s" % (rc, s.stderr_tail()))
            self.assertNotIn("Sanitizer", s.stderr_text())

    def owner_pid(self, tid):
        owner = self.redis.cmd("HGET", "im:t:" + tid, "owner", db=1)
        return int(owner.split(":")[1]) if owner else None


class SharedTaskTests(ClusterCase):
    N = 3

    def test_submitted_on_one_read_on_each(self):
        a, b, c = self.cs
        tid = a.submit("/v1/demo/sleep", {"seconds": 0.2 * SLOW, "value": 41})
        for cl in (a, b, c):
            t = cl.task(tid)
            self.assertEqual((t["id"], t["function"]), (tid, "sleep"))
        done = c.wait(tid)
        self.assertEqual((done["state"], done["result"]), ("SUCCEEDED", {"result": 41}))
        for cl in (a, b, c):
            st, _, doc = cl.request("GET", "/tasks/%s/result" % tid)
            self.assertEqual((st, doc), (200, {"result": 41}))

    def test_sync_call_and_long_poll(self):
        a, b, _ = self.cs
        st, _, doc = b.post("/v1/demo/add", {"x": 20, "y": 22})
        self.assertEqual((st, doc), (200, {"result": 42}))
        tid = a.submit("/v1/demo/sleep", {"seconds": 0.5 * SLOW, "value": 3})
        st, h, doc = b.request("GET", "/tasks/%s/result" % tid)
        self.assertEqual(st, 202, doc)
        self.assertIn(doc["state"], ("QUEUED", "RUNNING"))
        self.assertIn("retry-after", h)
        t0 = time.monotonic()
        st, _, doc = b.request("GET", "/tasks/%s/result" % tid, headers={"Prefer": "wait=20"})
        self.assertEqual((st, doc), (200, {"result": 3}))
        self.assertLess(time.monotonic() - t0, 10)

    def test_errors_and_failures_keep_their_shape(self):
        a, b, _ = self.cs
        st, _, doc = a.post("/v1/demo/add", {"x": "one", "y": 2}, asynchronous=True)
        self.assertEqual(st, 422, doc)  # checked where it is accepted: nothing queued
        tid = a.submit("/v1/demo/fail", {"message": "no luck"})
        t = b.wait(tid)
        self.assertEqual((t["state"], t["error"]), ("FAILED", "no luck"))
        st, _, doc = b.request("GET", "/tasks/%s/result" % tid)
        self.assertEqual(doc["state"], "FAILED")
        self.assertEqual(doc["detail"], "no luck")
        st, _, doc = b.request("GET", "/tasks/" + "0" * 32)
        self.assertEqual(st, 404, doc)
        st, _, doc = b.request("GET", "/tasks/nothex")
        self.assertEqual(st, 404, doc)

    def test_cancel_from_another(self):
        a, b, c = self.cs
        tid = a.submit("/v1/demo/sleep", {"seconds": 30, "value": 1})
        a.wait(tid, ("RUNNING",))
        st, _, doc = b.request("DELETE", "/tasks/" + tid)
        self.assertEqual(st, 200, doc)
        t = c.wait(tid, timeout=10)
        self.assertEqual(t["state"], "CANCELLED")
        self.assertEqual(t["error"], "cancelled by DELETE /tasks/{id}")
        st, _, doc = c.request("DELETE", "/tasks/" + tid)
        self.assertEqual((st, doc["state"]), (409, "CANCELLED"))

    def test_time_limit(self):
        a, b, _ = self.cs
        tid = a.submit("/v1/demo/slow", {"seconds": 5})
        t = b.wait(tid, timeout=10)
        self.assertEqual((t["state"], t["error"]), ("TIMEOUT", "the task ran past its time limit of 1000 ms"))
        st, _, _ = b.request("GET", "/tasks/%s/result" % tid)
        self.assertEqual(st, 504)

    def test_events_from_a_third(self):
        a, b, c = self.cs
        tid = a.submit("/v1/demo/progress", {"steps": 5, "step_ms": int(150 * SLOW)})
        events, _ = read_events(c.port, tid)
        kinds = [e for e, _ in events]
        self.assertEqual(kinds[-1], "state")
        self.assertEqual(events[-1][1]["state"], "SUCCEEDED")
        fracs = [d["fraction"] for e, d in events if e == "progress"]
        self.assertGreaterEqual(len(fracs), 2, events)
        self.assertEqual(fracs, sorted(fracs))
        # a finished task: its state at once, and the end
        events, _ = read_events(b.port, tid)
        self.assertEqual([e for e, _ in events][-1], "state")

    def test_functions_counts_and_terminate(self):
        a, b, c = self.cs
        ids = [a.submit("/v1/demo/sleep", {"seconds": 30, "value": i}) for i in range(3)]
        for t in ids:
            a.wait(t, ("RUNNING",))
        for cl in (a, b, c):
            st, _, doc = cl.request("GET", "/functions/sleep")
            self.assertEqual((st, doc["running"], doc["queued"]), (200, 3, 0))
        st, _, doc = c.request("POST", "/functions/sleep/terminate")
        self.assertEqual((st, doc), (200, {"cancelled": 3}))
        for t in ids:
            self.assertEqual(b.wait(t, timeout=10)["state"], "CANCELLED")
        st, _, doc = b.request("GET", "/functions")
        sleep = [f for f in doc if f["name"] == "sleep"][0]
        self.assertEqual((sleep["running"], sleep["queued"]), (0, 0))


    def test_listing_is_the_clusters(self):
        a, b, c = self.cs
        ids = [(a, b)[i % 2].submit("/v1/demo/batch", {"value": i}) for i in range(7)]
        for t in ids:
            c.wait(t)
        slow = a.submit("/v1/demo/sleep", {"seconds": 30, "value": 1})
        a.wait(slow, ("RUNNING",))
        got, pages, cursor = [], 0, ""
        while True:  # from a third instance, newest first, 3 a page
            st, _, doc = c.request("GET", "/tasks?function=batch&limit=3" + cursor)
            self.assertEqual(st, 200, doc)
            pages += 1
            got += [t["id"] for t in doc["tasks"]]
            self.assertTrue(all(t["function"] == "batch" and "result" not in t
                                for t in doc["tasks"]), doc)
            if doc["next_cursor"] is None:
                break
            cursor = "&cursor=" + doc["next_cursor"]
        self.assertEqual(got, list(reversed(ids)), "newest first, each once, from both instances")
        self.assertEqual(pages, 3)
        st, _, doc = b.request("GET", "/tasks?state=RUNNING")
        self.assertEqual([t["id"] for t in doc["tasks"]], [slow], doc)
        st, _, doc = b.request("GET", "/tasks?state=QUEUED,SUCCEEDED&limit=1000")
        self.assertTrue(set(ids) <= {t["id"] for t in doc["tasks"]})
        self.assertNotIn(slow, [t["id"] for t in doc["tasks"]])
        for bad in ("state=DONE", "limit=0", "cursor=abc"):
            st, _, _ = c.request("GET", "/tasks?" + bad)
            self.assertEqual(st, 422, bad)
        b.request("DELETE", "/tasks/" + slow)

    def test_large_answers(self):
        a, b, _ = self.cs
        for n in (3, 20000):  # a small answer comes in the end's notice; a large one is read
            values = [float(i + 1) for i in range(n)]
            norm = sum(v * v for v in values) ** 0.5
            tid = a.submit("/v1/demo/normalize", {"array": values})
            answers = []
            for cl in (a, b):  # where it was submitted (followed there), and elsewhere
                st, _, doc = cl.request("GET", "/tasks/%s/result" % tid,
                                        headers={"Prefer": "wait=20"})
                self.assertEqual(st, 200, doc)
                answers.append(doc["result"])
            st, _, doc = b.post("/v1/demo/normalize", {"array": values})  # sync
            self.assertEqual(st, 200, doc)
            answers.append(doc["result"])
            self.assertEqual(answers[0], answers[1])
            self.assertEqual(answers[0], answers[2])
            self.assertEqual(len(answers[0]), n)
            self.assertTrue(all(abs(x - v / norm) < 1e-12 for x, v in zip(answers[0], values)))

    def test_metrics(self):
        a, b, c = self.cs
        ids = [a.submit("/v1/demo/add", {"x": i, "y": 1}) for i in range(12)]
        for t in ids:
            b.wait(t)
        taken = 0
        for cl in (a, b, c):
            m = cluster_metrics(cl.port)
            self.assertGreaterEqual(m["immersive_cluster_redis_connects_total"], 2, m)
            self.assertEqual(m["immersive_cluster_tasks_reclaimed_total"], 0)
            taken += m["immersive_cluster_tasks_taken_total"]
        self.assertGreaterEqual(taken, 12)  # each task taken once, by whichever was free


class LimitTests(ClusterCase):
    FLAGS = ("--workers", "1", "--queue-capacity", "4")

    def test_two_workers_in_all(self):
        """--workers 1 on each of two instances: two tasks run at once, no more."""
        a, b = self.cs
        ids = [a.submit("/v1/demo/sleep", {"seconds": 1.0 * SLOW, "value": i}) for i in range(4)]
        time.sleep(0.4 * SLOW)
        states = [b.task(t)["state"] for t in ids]
        self.assertEqual(states.count("RUNNING"), 2, states)
        pids = {self.owner_pid(t) for t in ids if b.task(t)["state"] == "RUNNING"}
        self.assertEqual(len(pids), 2, "one on each instance")
        for t in ids:
            self.assertEqual(a.wait(t)["state"], "SUCCEEDED")

    def test_capacity_is_the_clusters(self):
        a, b = self.cs
        running = [a.submit("/v1/demo/sleep", {"seconds": 3 * SLOW}) for _ in range(2)]
        for t in running:
            a.wait(t, ("RUNNING",))
        queued = [(a if i % 2 else b).submit("/v1/demo/sleep", {"seconds": 0.1}) for i in range(4)]
        st, h, doc = a.post("/v1/demo/sleep", {"seconds": 0.1}, asynchronous=True)
        self.assertEqual(st, 429, doc)
        self.assertIn("retry-after", h)
        self.assertIn("queue", doc["detail"])
        st, _, doc = b.post("/v1/demo/sleep", {"seconds": 0.1}, asynchronous=True)
        self.assertEqual(st, 429, doc)
        for t in running + queued:
            self.assertEqual(b.wait(t, timeout=30)["state"], "SUCCEEDED")

    def test_max_concurrency_is_the_clusters(self):
        a, b = self.cs
        tid = a.submit("/v1/demo/limited", {"seconds": 1.0 * SLOW})
        st, h, doc = b.post("/v1/demo/limited", {"seconds": 0.1}, asynchronous=True)
        self.assertEqual(st, 429, doc)
        self.assertEqual(doc["detail"], "limited has 1 unfinished tasks in the cluster, its "
                         "max_concurrency: try again later")
        self.assertEqual(b.wait(tid)["state"], "SUCCEEDED")
        st, _, doc = b.post("/v1/demo/limited", {"seconds": 0.01})  # its slot came back
        self.assertEqual(st, 200, doc)


class SerialTests(ClusterCase):
    N = 2

    def test_one_consumer_in_the_cluster(self):
        """Serial calls through both instances: one instance runs them all, one at a time (the
        demo's counter loses updates when two overlap, and counts per process)."""
        results = []

        def call(cl):
            st, _, doc = cl.post("/v1/demo/counter", {})
            results.append((st, doc))

        ths = [threading.Thread(target=call, args=(self.cs[i % 2],)) for i in range(40)]
        for th in ths:
            th.start()
        for th in ths:
            th.join(60)
        self.assertTrue(all(st == 200 for st, _ in results), results)
        values = sorted(d["result"] for _, d in results)
        self.assertEqual(values, list(range(1, 41)), "one counter, no lost update")

    def test_the_lease_is_taken_over(self):
        a, b = self.cs
        st, _, doc = a.post("/v1/demo/counter", {})
        self.assertEqual(st, 200, doc)
        holder = self.redis.cmd("GET", "im:lease:serial", db=1)
        pid = int(holder.split(":")[1])
        victim = [s for s in self.srvs if s.proc.pid == pid][0]
        os.kill(pid, signal.SIGKILL)
        victim.proc.wait(10)
        self.srvs.remove(victim)
        other = Client(self.srvs[0].port)
        t0 = time.monotonic()
        st, _, doc = other.post("/v1/demo/counter", {}, timeout=30)
        self.assertEqual((st, doc), (200, {"result": 1}), "the other instance's own counter")
        self.assertLess(time.monotonic() - t0, 10 * SLOW)

    def test_a_graceful_stop_gives_the_lease_up(self):
        a, b = self.cs
        st, _, doc = a.post("/v1/demo/counter", {})
        self.assertEqual(st, 200, doc)
        holder = self.redis.cmd("GET", "im:lease:serial", db=1)
        pid = int(holder.split(":")[1])
        leaver = [s for s in self.srvs if s.proc.pid == pid][0]
        self.srvs.remove(leaver)
        self.assertEqual(leaver.stop(), 0, leaver.stderr_tail())
        now = self.redis.cmd("GET", "im:lease:serial", db=1)
        self.assertNotEqual(now, holder, "released at the stop, not left to expire")
        st, _, doc = Client(self.srvs[0].port).post("/v1/demo/counter", {}, timeout=30)
        self.assertEqual(st, 200, doc)


class PriorityTests(ClusterCase):
    N = 1
    FLAGS = ("--workers", "1")

    def test_most_urgent_first(self):
        (a,) = self.cs
        first = a.submit("/v1/demo/sleep", {"seconds": 0.5 * SLOW})
        a.wait(first, ("RUNNING",))
        batch = [a.submit("/v1/demo/batch", {"value": i}) for i in range(3)]
        urgent = [a.submit("/v1/demo/urgent", {"value": i}) for i in range(3)]
        order = []
        deadline = time.monotonic() + 20
        pending = set(batch + urgent)
        while pending and time.monotonic() < deadline:
            for t in list(pending):
                d = a.task(t)
                if d["state"] == "SUCCEEDED":
                    order.append((d["started_at"], t))
                    pending.discard(t)
            time.sleep(0.01)
        self.assertFalse(pending)
        at = {t: when for when, t in order}  # ms: ties are possible, inversions are not
        self.assertLessEqual(max(at[t] for t in urgent), min(at[t] for t in batch),
                             "the urgent ones first: %s" % sorted(order))


class RoleTests(ClusterCase):
    N = 2

    def flags_of(self, i):
        return ("--workers", "2", "--role", "api" if i == 0 else "worker")

    def test_api_serves_worker_runs(self):
        api, worker = self.cs
        st, _, doc = worker.post("/v1/demo/add", {"x": 1, "y": 2})
        self.assertEqual(st, 404, doc)
        self.assertIn("--role worker", doc["detail"])
        for path in ("/health", "/ready", "/metrics"):
            st, _, _ = worker.raw("GET", path)
            self.assertEqual(st, 200, path)
        tid = api.submit("/v1/demo/sleep", {"seconds": 0.1, "value": 9})
        self.assertEqual(api.wait(tid)["result"], {"result": 9})
        self.assertEqual(self.owner_pid(tid), self.srvs[1].proc.pid, "run by the worker")
        st, _, doc = api.post("/v1/demo/add", {"x": 1, "y": 2})  # sync, through the worker
        self.assertEqual((st, doc), (200, {"result": 3}))

    def test_api_alone_queues(self):
        api, worker = self.cs
        worker_srv = self.srvs[1]
        worker_srv.stop()
        tid = api.submit("/v1/demo/sleep", {"seconds": 0.1, "value": 5})
        time.sleep(0.5)
        self.assertEqual(api.task(tid)["state"], "QUEUED", "nobody runs it")
        self.srvs[1] = self.start_instance("--workers", "1", "--role", "worker")
        self.assertEqual(api.wait(tid)["result"], {"result": 5})


class KillTests(ClusterCase):
    N = 2
    FLAGS = ("--workers", "2", "--task-max-attempts", "2")

    def test_sigkill_loses_no_task(self):
        a, b = self.cs
        ids = [a.submit("/v1/demo/sleep", {"seconds": 1.0 * SLOW, "value": i}) for i in range(8)]
        time.sleep(0.3 * SLOW)
        victim = self.srvs[0]
        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
        self.srvs = self.srvs[1:]
        for i, t in enumerate(ids):
            d = b.wait(t, timeout=60)
            self.assertEqual((d["state"], d["result"]), ("SUCCEEDED", {"result": i}), d)
        att = [int(self.redis.cmd("HGET", "im:t:" + t, "att", db=1)) for t in ids]
        self.assertIn(2, att, "some ran again after the kill")
        self.assertTrue(all(1 <= n <= 2 for n in att), att)
        self.assertGreaterEqual(cluster_metrics(b.port)["immersive_cluster_tasks_reclaimed_total"],
                                att.count(2))

    def test_graceful_stop_keeps_its_running_task(self):
        """A stop that lasts longer than tasks.redis.claim_after_ms (1 s here): the heartbeat
        goes on until the running handler ends, so nobody takes the task over meanwhile."""
        a, b = self.cs
        tid = a.submit("/v1/demo/sleep", {"seconds": 2.5 * SLOW, "value": 5})
        a.wait(tid, ("RUNNING",))
        i = [s.proc.pid for s in self.srvs].index(self.owner_pid(tid))
        runner, other = self.srvs[i], self.cs[1 - i]
        self.srvs.remove(runner)
        self.assertEqual(runner.stop(), 0, runner.stderr_tail())
        self.assertNotIn("Sanitizer", runner.stderr_text())
        d = other.wait(tid, timeout=30)
        self.assertEqual((d["state"], d["result"]), ("SUCCEEDED", {"result": 5}), d)
        self.assertEqual(self.redis.cmd("HGET", "im:t:" + tid, "att", db=1), "1",
                         "run once: not taken over during the stop")

    def test_worker_lost_after_max_attempts(self):
        a, b = self.cs
        # A task that kills whoever runs it is the real case; here each instance that takes
        # it is killed by the test: two runs, then FAILED "worker lost".
        tid = a.submit("/v1/demo/sleep", {"seconds": 60, "value": 1})
        for round_ in range(2):
            deadline = time.monotonic() + 30
            live = {s.proc.pid: s for s in self.srvs}
            while time.monotonic() < deadline:
                pid = self.owner_pid(tid)
                att = int(self.redis.cmd("HGET", "im:t:" + tid, "att", db=1) or 0)
                if pid in live and att == round_ + 1:
                    break
                time.sleep(0.05)
            self.assertIn(pid, live, "run %d of the task on a live instance (attempt %d)"
                          % (round_ + 1, att))
            victim = live[pid]
            os.kill(pid, signal.SIGKILL)
            victim.proc.wait(10)
            self.srvs.remove(victim)
            self.srvs.append(self.start_instance(*self.FLAGS))
        c = Client(self.srvs[-1].port)
        t = c.wait(tid, timeout=30)
        self.assertEqual(t["state"], "FAILED")
        self.assertIn("worker lost", t["error"])


class RedisDownTests(ClusterCase):
    N = 2

    def test_stopped_and_started_under_load(self):
        a, b = self.cs
        stop = threading.Event()
        seen = {}
        lock = threading.Lock()

        def load(cl):
            while not stop.is_set():
                st, h, doc = cl.post("/v1/demo/add", {"x": 1, "y": 1}, asynchronous=True,
                                     timeout=10)
                with lock:
                    seen[st] = seen.get(st, 0) + 1
                if st == 503:
                    assert "retry-after" in h, h
                    assert "unreachable" in doc["detail"], doc
                time.sleep(0.005)

        ts = [threading.Thread(target=load, args=(cl,)) for cl in (a, b)]
        for t in ts:
            t.start()
        time.sleep(0.5)
        port = self.redis.port
        self.redis.stop()
        time.sleep(1.0)
        # inline endpoints keep working
        st, _, doc = a.post("/v1/math/add", {"x": 2, "y": 3})
        self.assertEqual((st, doc), (200, {"result": 5}))
        self.assertEqual(b.raw("GET", "/health")[0], 200)
        self.redis.port = port
        self.redis.start()
        time.sleep(2.0)
        stop.set()
        for t in ts:
            t.join(30)
        self.assertGreater(seen.get(202, 0), 0, seen)
        self.assertGreater(seen.get(503, 0), 0, seen)
        self.assertEqual(set(seen) - {202, 503}, set(), seen)
        for cl in (a, b):  # recovered: the Redis came back empty, and work flows again
            tid = cl.submit("/v1/demo/add", {"x": 4, "y": 5})
            self.assertEqual(cl.wait(tid)["result"], {"result": 9})
        for s in self.srvs:
            self.assertTrue(s.alive())


class TaskTestsOnRedis(test_tasks.TaskTests):
    """test_tasks's TaskTests again, every one, against one instance with the Redis store:
    the HTTP contract of tasks is the same."""

    @classmethod
    def setUpClass(cls):
        cls.redis = Redis().start()
        cls.FLAGS = ("--workers", "2", "--store", "redis://127.0.0.1:%d/2" % cls.redis.port)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.redis.cleanup()


@unittest.skipUnless(shutil.which("haproxy"), "no haproxy (Debian haproxy)")
class BalancerTests(unittest.TestCase):
    """examples/cluster/cluster.sh as README shows it: Redis, three instances, HAProxy."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="im-cluster-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        lb = free_port()
        while any(not self.port_free(lb + i) for i in range(1, 4)):
            lb = free_port()
        self.env = dict(os.environ, IM_CLUSTER_DIR=self.dir, IM_REDIS_PORT=str(free_port()),
                        IM_LB_PORT=str(lb))
        self.script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                   "examples", "cluster", "cluster.sh")
        self.addCleanup(self.cluster, "stop")
        out = self.cluster("start", demo_binary(), "3", "--", "--workers", "2")
        self.assertIn("haproxy on http://127.0.0.1:%d" % lb, out)
        self.lb = Client(lb)
        self.direct = [Client(lb + i) for i in range(1, 4)]

    @staticmethod
    def port_free(p):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def cluster(self, *args):
        p = subprocess.run(["bash", self.script] + list(args), env=self.env, timeout=60,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertEqual(p.returncode, 0, p.stdout.decode())
        return p.stdout.decode()

    def test_through_the_balancer(self):
        deadline = time.monotonic() + 10  # HAProxy's first health checks
        while self.lb.raw("GET", "/ready")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        tid = self.lb.submit("/v1/demo/sleep", {"seconds": 0.2, "value": 8})
        for d in self.direct:  # read from each instance directly
            self.assertEqual(d.task(tid)["id"], tid)
        self.assertEqual(self.direct[2].wait(tid)["result"], {"result": 8})
        long = self.lb.submit("/v1/demo/sleep", {"seconds": 30})
        self.direct[0].wait(long, ("RUNNING",))
        st, _, _ = self.direct[1].request("DELETE", "/tasks/" + long)  # cancel from another
        self.assertEqual(st, 200)
        self.assertEqual(self.direct[2].wait(long)["state"], "CANCELLED")
        prog = self.lb.submit("/v1/demo/progress", {"steps": 3, "step_ms": 100})
        events, _ = read_events(self.direct[2].port, prog)  # SSE from a third
        self.assertEqual(events[-1][1]["state"], "SUCCEEDED")
        st, _, doc = self.lb.post("/v1/demo/add", {"x": 2, "y": 40})  # sync, balanced
        self.assertEqual((st, doc), (200, {"result": 42}))
        out = self.cluster("status")
        self.assertEqual(out.count("running"), 5, out)  # redis, three instances, haproxy


class StartTests(unittest.TestCase):
    def test_unreachable_is_a_clear_error(self):
        port = free_port()
        p = subprocess.run([demo_binary(), "--port", "0", "--store",
                            "redis://127.0.0.1:%d/0" % port], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        err = p.stderr.decode()
        self.assertIn("127.0.0.1:%d" % port, err)
        self.assertIn("tasks.store", err)

    def test_role_needs_a_shared_store(self):
        p = subprocess.run([demo_binary(), "--port", "0", "--role", "worker"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("needs a shared store", p.stderr.decode())

    def test_bad_url(self):
        p = subprocess.run([demo_binary(), "--port", "0", "--store", "redis:/nowhere"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("redis://", p.stderr.decode())


if __name__ == "__main__":
    if not shutil.which("redis-server"):
        print("skipped: no redis-server (Debian redis-server)")
        sys.exit(77)
    if not have_redis_store():
        print("skipped: immersive-demo was built without the Redis store (libhiredis-dev)")
        sys.exit(77)
    unittest.main(verbosity=2)
