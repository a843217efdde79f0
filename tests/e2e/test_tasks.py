"""Tasks, end to end, through Python's http.client against immersive-demo's demo module: sync
and async calls (Prefer), the task resource and its result, cancellation of queued and
running tasks, time limits, failures, limits (max_concurrency, a full queue), listing with
cursors, functions and terminate, progress over server-sent events (live, late and slow
readers), priority order, the serial executor, a sync client that disconnects, eviction by
TTL and by the memory cap, and shutdown with tasks queued and running."""

import http.client
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server import DemoServer, ServerTestCase  # noqa: E402

ID_RE = re.compile(r"^[0-9a-f]{32}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TERMINAL = ("SUCCEEDED", "FAILED", "TIMEOUT", "CANCELLED")
SLOW = 3.0 if os.environ.get("IM_SANITIZE") else 1.0  # sanitizers slow the server down


class Client:
    """Requests over http.client; each call on a new connection unless keep is set."""

    def __init__(self, port):
        self.port = port

    def raw(self, method, path, data=None, headers=None, timeout=30):
        """(status, headers with lowercase names, body bytes): bytes in, bytes out."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=data, headers=dict(headers or {}))
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def request(self, method, path, body=None, headers=None, timeout=30):
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        st, h, raw = self.raw(method, path, data, hdrs, timeout)
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = raw
        return st, h, doc

    def post(self, path, body=None, asynchronous=False, headers=None, timeout=30):
        h = dict(headers or {})
        if asynchronous:
            h["Prefer"] = "respond-async"
        return self.request("POST", path, body if body is not None else {}, h, timeout)

    def submit(self, path, body=None):
        """An async call: the task id (asserting the 202 contract)."""
        st, h, doc = self.post(path, body, asynchronous=True)
        assert st == 202, (path, st, doc)
        return doc["task_id"]

    def task(self, tid):
        st, _, doc = self.request("GET", "/tasks/" + tid)
        assert st == 200, (tid, st, doc)
        return doc

    def wait(self, tid, states=TERMINAL, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            t = self.task(tid)
            if t["state"] in states:
                return t
            if time.monotonic() > deadline:
                raise AssertionError("task %s still %s after %.0fs" % (tid, t["state"], timeout))
            time.sleep(0.01)


def read_events(port, tid, delay=0.0, timeout=30):
    """GET /tasks/{id}/events: the list of (event, data) until the stream ends."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("GET", "/tasks/%s/events" % tid)
    r = c.getresponse()
    assert r.status == 200, r.status
    assert r.getheader("Content-Type", "").startswith("text/event-stream"), r.getheaders()
    if delay:
        time.sleep(delay)
    text = r.read().decode()
    c.close()
    events = []
    for block in text.split("\n\n"):
        ev, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                ev = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if ev:
            events.append((ev, json.loads("\n".join(data))))
    return events, text


class TaskTests(ServerTestCase):
    FLAGS = ("--workers", "2")

    def setUp(self):
        self.c = Client(self.server.port)

    def fill_workers(self, n=2, seconds=2.0):
        """Occupies the n workers with sleeps; returns their ids once they run."""
        ids = [self.c.submit("/v1/demo/sleep", {"seconds": seconds * SLOW}) for _ in range(n)]
        for t in ids:
            self.c.wait(t, ("RUNNING",))
        return ids

    def test_sync_call_answers_the_result(self):
        st, h, doc = self.c.post("/v1/demo/sleep", {"seconds": 0.05, "value": 7})
        self.assertEqual((st, doc), (200, {"result": 7}))
        self.assertNotIn("location", h)

    def test_async_call_task_and_result(self):
        st, h, doc = self.c.post("/v1/demo/sleep", {"seconds": 0.2, "value": 5}, asynchronous=True)
        self.assertEqual(st, 202, doc)
        self.assertEqual(set(doc), {"task_id", "state", "function"})
        self.assertRegex(doc["task_id"], ID_RE)
        self.assertEqual((doc["state"], doc["function"]), ("QUEUED", "sleep"))
        self.assertEqual(h.get("location"), "/tasks/" + doc["task_id"])
        self.assertEqual(h.get("preference-applied"), "respond-async")
        t = self.c.wait(doc["task_id"])
        self.assertEqual(t["state"], "SUCCEEDED", t)
        for k in ("id", "function", "state", "priority", "created_at", "started_at",
                  "finished_at", "progress", "result"):
            self.assertIn(k, t)
        self.assertEqual((t["id"], t["function"], t["priority"]), (doc["task_id"], "sleep", 4))
        for k in ("created_at", "started_at", "finished_at"):
            self.assertRegex(t[k], TIME_RE, k)
        self.assertLessEqual(t["created_at"], t["started_at"])
        self.assertLessEqual(t["started_at"], t["finished_at"])
        self.assertEqual(set(t["progress"]), {"fraction", "message"})
        self.assertEqual(t["result"], {"result": 5})
        self.assertNotIn("error", t)
        st, _, doc = self.c.request("GET", "/tasks/%s/result" % t["id"])
        self.assertEqual((st, doc), (200, {"result": 5}))

    def test_queued_task_object_has_nulls_until_reached(self):
        self.fill_workers()
        tid = self.c.submit("/v1/demo/sleep", {"seconds": 0})
        t = self.c.task(tid)
        self.assertEqual(t["state"], "QUEUED")
        self.assertIsNone(t["started_at"])
        self.assertIsNone(t["finished_at"])
        self.assertNotIn("result", t)
        st, h, doc = self.c.request("GET", "/tasks/%s/result" % tid)
        self.assertEqual(st, 202, doc)
        self.assertGreaterEqual(int(h["retry-after"]), 1)
        self.assertEqual(doc["state"], "QUEUED")
        self.assertIn("detail", doc)
        self.c.wait(tid)

    def test_result_long_poll(self):
        # GET .../result with Prefer: wait=N answers once the task ends (RFC 7240 wait)
        tid = self.c.submit("/v1/demo/sleep", {"seconds": 0.5, "value": 9})
        t0 = time.monotonic()
        st, _, doc = self.c.request("GET", "/tasks/%s/result" % tid, headers={"Prefer": "wait=10"})
        self.assertEqual((st, doc), (200, {"result": 9}))
        self.assertLess(time.monotonic() - t0, 0.5 + 0.5 * SLOW)
        # ... or when the wait is over: still 202
        tid = self.c.submit("/v1/demo/sleep", {"seconds": 5})
        t0 = time.monotonic()
        st, h, doc = self.c.request("GET", "/tasks/%s/result" % tid, headers={"Prefer": "wait=1"})
        self.assertEqual((st, doc["state"]), (202, "RUNNING"), doc)
        self.assertGreater(time.monotonic() - t0, 0.9)
        self.assertIn("retry-after", h)
        self.c.request("DELETE", "/tasks/" + tid)
        # a long poll whose client leaves does not cancel the task
        tid = self.c.submit("/v1/demo/sleep", {"seconds": 0.5})
        s = socket.create_connection(("127.0.0.1", self.server.port))
        s.sendall(b"GET /tasks/%s/result HTTP/1.1\r\nHost: t\r\nPrefer: wait=10\r\n\r\n"
                  % tid.encode())
        s.close()
        self.assertEqual(self.c.wait(tid)["state"], "SUCCEEDED")

    def test_prefer_respond_sync_overrides(self):
        # a function whose default is sync stays sync with respond-sync, goes async with
        # respond-async given among other preferences, in any case
        st, _, doc = self.c.post("/v1/demo/urgent", {"value": 1},
                                 headers={"Prefer": "respond-sync"})
        self.assertEqual((st, doc), (200, {"result": 1}))
        st, _, doc = self.c.post("/v1/demo/urgent", {"value": 2},
                                 headers={"Prefer": "wait=5, Respond-Async"})
        self.assertEqual(st, 202, doc)
        self.assertEqual(self.c.wait(doc["task_id"])["result"], {"result": 2})

    def test_validation_happens_before_any_task(self):
        st, _, doc = self.c.post("/v1/demo/sleep", {"seconds": 61}, asynchronous=True)
        self.assertEqual(st, 422, doc)
        self.assertEqual(doc["detail"][0]["loc"], ["body", "seconds"])

    def test_unknown_task_is_404(self):
        for path in ("/tasks/" + "0" * 32, "/tasks/" + "a" * 32 + "/result", "/tasks/nope",
                     "/tasks/" + "0" * 32 + "/events"):
            st, _, doc = self.c.request("GET", path)
            self.assertEqual(st, 404, path)
            self.assertIn("no task", doc["detail"], path)
        st, _, doc = self.c.request("DELETE", "/tasks/" + "1" * 32)
        self.assertEqual(st, 404)

    def test_delete_queued_task(self):
        self.fill_workers()
        tid = self.c.submit("/v1/demo/sleep", {"seconds": 0, "value": 1})
        self.assertEqual(self.c.task(tid)["state"], "QUEUED")
        queued = self.function("sleep")["queued"]
        st, _, doc = self.c.request("DELETE", "/tasks/" + tid)
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc["state"], "CANCELLED")
        self.assertIsNotNone(doc["finished_at"])
        self.assertIn("error", doc)
        # its slot is free at once, not when a worker reaches it
        self.assertEqual(self.function("sleep")["queued"], queued - 1)
        st, _, doc = self.c.request("GET", "/tasks/%s/result" % tid)
        self.assertEqual((st, doc["state"]), (409, "CANCELLED"))
        self.assertIn("detail", doc)
        st, _, doc = self.c.request("DELETE", "/tasks/" + tid)
        self.assertEqual((st, doc["state"]), (409, "CANCELLED"))

    def test_delete_running_task(self):
        tid = self.c.submit("/v1/demo/sleep", {"seconds": 10})
        self.c.wait(tid, ("RUNNING",))
        t0 = time.monotonic()
        st, _, doc = self.c.request("DELETE", "/tasks/" + tid)
        self.assertEqual(st, 200, doc)
        t = self.c.wait(tid)
        self.assertEqual(t["state"], "CANCELLED", t)
        self.assertLess(time.monotonic() - t0, 0.5 * SLOW, "the handler saw im_call_cancelled")
        st, _, doc = self.c.request("GET", "/tasks/%s/result" % tid)
        self.assertEqual((st, doc["state"]), (409, "CANCELLED"))

    def test_sync_caller_of_a_cancelled_task_gets_409(self):
        out = {}

        def call():
            out["r"] = self.c.post("/v1/demo/sleep", {"seconds": 10, "value": 3})

        th = threading.Thread(target=call)
        th.start()
        tid = self.running_task("sleep")
        self.c.request("DELETE", "/tasks/" + tid)
        th.join(10)
        st, _, doc = out["r"]
        self.assertEqual((st, doc["state"]), (409, "CANCELLED"), doc)

    def test_time_limit_sync_504(self):
        t0 = time.monotonic()
        st, _, doc = self.c.post("/v1/demo/slow", {"seconds": 5})
        took = time.monotonic() - t0
        self.assertEqual((st, doc["state"]), (504, "TIMEOUT"), doc)
        self.assertIn("1000 ms", doc["detail"])
        self.assertGreater(took, 0.9)
        self.assertLess(took, 1.0 + 0.5 * SLOW)

    def test_time_limit_async(self):
        tid = self.c.submit("/v1/demo/slow", {"seconds": 5})
        t = self.c.wait(tid)
        self.assertEqual(t["state"], "TIMEOUT", t)
        self.assertIn("time limit", t["error"])
        st, _, doc = self.c.request("GET", "/tasks/%s/result" % tid)
        self.assertEqual((st, doc["state"]), (504, "TIMEOUT"))
        # a task that ends in time is not touched
        tid = self.c.submit("/v1/demo/slow", {"seconds": 0.1})
        self.assertEqual(self.c.wait(tid)["state"], "SUCCEEDED")

    def test_failure(self):
        st, _, doc = self.c.post("/v1/demo/fail", {"message": "boom"})
        self.assertEqual((st, doc), (500, {"detail": "boom", "state": "FAILED"}))
        tid = self.c.submit("/v1/demo/fail", {"message": "bang"})
        t = self.c.wait(tid)
        self.assertEqual((t["state"], t["error"]), ("FAILED", "bang"))
        self.assertNotIn("result", t)
        st, _, doc = self.c.request("GET", "/tasks/%s/result" % tid)
        self.assertEqual((st, doc), (500, {"detail": "bang", "state": "FAILED"}))

    def test_max_concurrency_429(self):
        tid = self.c.submit("/v1/demo/limited", {"seconds": 2 * SLOW})
        st, h, doc = self.c.post("/v1/demo/limited", {"seconds": 0}, asynchronous=True)
        self.assertEqual(st, 429, doc)
        self.assertGreaterEqual(int(h["retry-after"]), 1)
        self.assertIn("max_concurrency", doc["detail"])
        self.c.request("DELETE", "/tasks/" + tid)
        self.c.wait(tid)
        st, _, doc = self.c.post("/v1/demo/limited", {"seconds": 0})
        self.assertEqual((st, doc), (200, {"result": True}))

    def function(self, name):
        st, _, doc = self.c.request("GET", "/functions/" + name)
        self.assertEqual(st, 200, doc)
        return doc

    def running_task(self, function, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st, _, doc = self.c.request("GET", "/tasks?function=%s&state=RUNNING" % function)
            if doc["tasks"]:
                return doc["tasks"][0]["id"]
            time.sleep(0.01)
        self.fail("no RUNNING task of %s" % function)

    def test_functions(self):
        st, _, doc = self.c.request("GET", "/functions")
        self.assertEqual(st, 200)
        by = {f["name"]: f for f in doc}
        for name in ("sleep", "urgent", "batch", "limited", "slow", "progress", "counter", "fail"):
            self.assertIn(name, by)
            self.assertEqual(by[name]["reply"], "sync")
        s = by["sleep"]
        for k in ("name", "module", "method", "path", "mode", "priority", "max_concurrency",
                  "timeout_s", "reply", "running", "queued"):
            self.assertIn(k, s)
        self.assertEqual((s["module"], s["method"], s["path"], s["mode"], s["priority"],
                          s["max_concurrency"], s["timeout_s"]),
                         ("demo", "POST", "/v1/demo/sleep", "pool", 4, 64, 30))
        self.assertEqual(by["counter"]["mode"], "serial")
        self.assertEqual(by["add"]["mode"], "inline")
        self.assertIsNone(by["urgent"]["max_concurrency"])
        self.assertIsNone(by["urgent"]["timeout_s"])
        f = self.function("sleep")
        args = {a["name"]: a for a in f["args"]}
        self.assertEqual(set(args), {"seconds", "value"})
        for a in args.values():
            for k in ("name", "type", "required", "default", "description", "schema"):
                self.assertIn(k, a)
        self.assertEqual((args["seconds"]["type"], args["seconds"]["required"]), ("double", True))
        self.assertEqual((args["seconds"]["schema"]["minimum"], args["seconds"]["schema"]["maximum"]),
                         (0, 60))
        self.assertEqual((args["value"]["required"], args["value"]["default"]), (False, 0))
        st, _, doc = self.c.request("GET", "/functions/nope")
        self.assertEqual(st, 404)
        st, _, doc = self.c.request("POST", "/functions/nope/terminate")
        self.assertEqual(st, 404)

    def test_running_and_queued_counts(self):
        ids = self.fill_workers()
        extra = [self.c.submit("/v1/demo/sleep", {"seconds": 0}) for _ in range(3)]
        f = self.function("sleep")
        self.assertEqual((f["running"], f["queued"]), (2, 3), f)
        for t in ids:
            self.c.request("DELETE", "/tasks/" + t)
        for t in ids + extra:
            self.c.wait(t)
        f = self.function("sleep")
        self.assertEqual((f["running"], f["queued"]), (0, 0), f)

    def test_terminate(self):
        ids = self.fill_workers(2, 10)
        ids += [self.c.submit("/v1/demo/sleep", {"seconds": 10}) for _ in range(3)]
        st, _, doc = self.c.request("POST", "/functions/sleep/terminate")
        self.assertEqual((st, doc), (200, {"cancelled": 5}))
        for t in ids:
            self.assertEqual(self.c.wait(t, timeout=5)["state"], "CANCELLED")
        st, _, doc = self.c.request("POST", "/functions/sleep/terminate")
        self.assertEqual(doc, {"cancelled": 0})

    def test_list_newest_first_with_cursor(self):
        ids = [self.c.submit("/v1/demo/batch", {"value": i}) for i in range(7)]
        for t in ids:
            self.c.wait(t)
        st, _, doc = self.c.request("GET", "/tasks?function=batch&limit=3")
        self.assertEqual(st, 200, doc)
        got, pages = [], 0
        while True:
            pages += 1
            got += [t["id"] for t in doc["tasks"]]
            for t in doc["tasks"]:
                self.assertEqual(t["function"], "batch")
                self.assertNotIn("result", t)
            if doc["next_cursor"] is None:
                break
            st, _, doc = self.c.request("GET", "/tasks?function=batch&limit=3&cursor=" +
                                        doc["next_cursor"])
            self.assertEqual(st, 200, doc)
        mine = [t for t in got if t in ids]
        self.assertEqual(mine, list(reversed(ids)), "newest first, each once")
        self.assertGreaterEqual(pages, 3)
        st, _, doc = self.c.request("GET", "/tasks?state=SUCCEEDED&limit=1000")
        self.assertTrue(all(t["state"] == "SUCCEEDED" for t in doc["tasks"]))
        for bad in ("state=DONE", "limit=0", "limit=1001", "limit=x", "cursor=abc"):
            st, _, doc = self.c.request("GET", "/tasks?" + bad)
            self.assertEqual(st, 422, bad)
        st, _, _ = self.c.request("GET", "/tasks?function=nope")
        self.assertEqual(st, 404)

    def test_events(self):
        tid = self.c.submit("/v1/demo/progress", {"steps": 5, "step_ms": 100})
        events, _ = read_events(self.server.port, tid)
        kinds = [e for e, _ in events]
        self.assertEqual(kinds[-1], "state", events)
        self.assertEqual(kinds.count("state"), 1)
        progress = [d for e, d in events if e == "progress"]
        self.assertGreaterEqual(len(progress), 1)
        self.assertLessEqual(len(progress), 5)
        fractions = [p["fraction"] for p in progress]
        self.assertEqual(fractions, sorted(fractions))
        self.assertEqual(progress[-1], {"fraction": 1, "message": "step 5 of 5"})
        final = events[-1][1]
        self.assertEqual((final["id"], final["state"], final["result"]),
                         (tid, "SUCCEEDED", {"result": 5}))

    def test_events_late_reader(self):
        tid = self.c.submit("/v1/demo/progress", {"steps": 2, "step_ms": 0})
        self.c.wait(tid)
        t0 = time.monotonic()
        events, _ = read_events(self.server.port, tid)
        self.assertLess(time.monotonic() - t0, 2)
        self.assertEqual([e for e, _ in events], ["progress", "state"][-len(events):])
        self.assertEqual(events[-1][1]["state"], "SUCCEEDED")

    def test_events_slow_reader(self):
        tid = self.c.submit("/v1/demo/progress", {"steps": 100, "step_ms": 5})
        events, text = read_events(self.server.port, tid, delay=1.5 * SLOW)
        progress = [d for e, d in events if e == "progress"]
        self.assertLessEqual(len(progress), 100)
        self.assertEqual(progress[-1]["fraction"], 1)
        self.assertEqual(events[-1][1]["state"], "SUCCEEDED")

    def test_events_of_a_failed_task(self):
        tid = self.c.submit("/v1/demo/fail", {"message": "x"})
        events, _ = read_events(self.server.port, tid)
        self.assertEqual(events[-1][0], "state")
        self.assertEqual((events[-1][1]["state"], events[-1][1]["error"]), ("FAILED", "x"))

    def test_sync_client_that_disconnects_cancels(self):
        for how in ("close", "reset"):
            with self.subTest(how=how):
                s = socket.create_connection(("127.0.0.1", self.server.port))
                body = b'{"seconds": 10}'
                s.sendall(b"POST /v1/demo/sleep HTTP/1.1\r\nHost: t\r\nContent-Type: "
                          b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                tid = self.running_task("sleep")
                if how == "reset":
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                t0 = time.monotonic()
                s.close()
                t = self.c.wait(tid, timeout=5)
                self.assertEqual(t["state"], "CANCELLED", t)
                self.assertLess(time.monotonic() - t0, 1.0 * SLOW, how)
                self.assertIn("disconnected", t["error"])

    def test_serial_counter_never_overlaps(self):
        results = []

        def call():
            st, _, doc = self.c.post("/v1/demo/counter", {})
            results.append((st, doc))

        ths = [threading.Thread(target=call) for _ in range(50)]
        for th in ths:
            th.start()
        for th in ths:
            th.join(60)
        self.assertTrue(all(st == 200 for st, _ in results), results)
        values = sorted(d["result"] for _, d in results)
        self.assertEqual(len(values), 50)
        self.assertEqual(values, list(range(values[0], values[0] + 50)), "no lost update")


class PriorityTests(ServerTestCase):
    """One worker: queued urgent calls start before batch calls queued earlier."""
    FLAGS = ("--workers", "1")

    def test_priority_order(self):
        c = Client(self.server.port)
        hold = c.submit("/v1/demo/sleep", {"seconds": 0.5 * SLOW})
        c.wait(hold, ("RUNNING",))
        batch = [c.submit("/v1/demo/batch", {"value": i}) for i in range(5)]
        urgent = [c.submit("/v1/demo/urgent", {"value": i}) for i in range(5)]
        tasks = {t: c.wait(t) for t in batch + urgent}
        last_urgent = max(tasks[t]["started_at"] for t in urgent)
        first_batch = min(tasks[t]["started_at"] for t in batch)
        self.assertLessEqual(last_urgent, first_batch)
        # FIFO within a level
        for group in (batch, urgent):
            starts = [tasks[t]["started_at"] for t in group]
            self.assertEqual(starts, sorted(starts))


class QueueFullTests(ServerTestCase):
    """A full executor queue answers 429 with Retry-After, in whole seconds, at least 1."""
    FLAGS = ("--workers", "1", "--queue-capacity", "2")

    def test_queue_full(self):
        c = Client(self.server.port)
        hold = c.submit("/v1/demo/sleep", {"seconds": 2 * SLOW})
        c.wait(hold, ("RUNNING",))
        queued = [c.submit("/v1/demo/sleep", {"seconds": 0}) for _ in range(2)]
        st, h, doc = c.post("/v1/demo/sleep", {"seconds": 0}, asynchronous=True)
        self.assertEqual(st, 429, doc)
        self.assertRegex(h["retry-after"], r"^[1-9]\d*$")
        self.assertIn("queue", doc["detail"])
        # another level has its own room
        st, _, doc = c.post("/v1/demo/urgent", {"value": 1}, asynchronous=True)
        self.assertEqual(st, 202)
        c.request("DELETE", "/tasks/" + hold)
        for t in queued:
            self.assertEqual(c.wait(t)["state"], "SUCCEEDED")


class EvictionByTtlTests(ServerTestCase):
    """Finished tasks are kept for --task-ttl-ms."""
    FLAGS = ("--task-ttl-ms", "800")

    def test_ttl(self):
        c = Client(self.server.port)
        tid = c.submit("/v1/demo/urgent", {"value": 1})
        c.wait(tid)
        time.sleep(2.5)  # the TTL, and the once-a-second sweep
        st, _, doc = c.request("GET", "/tasks/" + tid)
        self.assertEqual(st, 404, doc)


class EvictionByMemoryTests(ServerTestCase):
    """Finished tasks are kept within --task-memory-bytes, the oldest finished going first (one
    worker: they finish in the order they came)."""
    FLAGS = ("--task-memory-bytes", "60000", "--workers", "1")

    def test_memory_cap(self):
        c = Client(self.server.port)
        ids = [c.submit("/v1/demo/urgent", {"value": i}) for i in range(400)]
        found = []
        for t in ids:
            st, _, doc = c.request("GET", "/tasks/" + t)
            found.append(st == 200 and doc["state"] in TERMINAL)
        self.assertFalse(found[0], "the oldest finished task was evicted")
        self.assertTrue(found[-1], "the newest is kept")
        kept = sum(found)
        self.assertLess(kept, 400)
        self.assertEqual(found, [False] * (400 - kept) + [True] * kept, "oldest first")


class ShutdownWithTasksTests(unittest.TestCase):
    """SIGTERM with tasks running and queued: running ones finish within the deadline (their
    sync callers answered), queued ones are CANCELLED (409), the server logs a count by state
    and exits 0."""

    def test_shutdown(self):
        srv = DemoServer("--workers", "1", "--shutdown-timeout-ms", "5000").start()
        try:
            c = Client(srv.port)
            out = {}

            def call(key, seconds):
                out[key] = c.post("/v1/demo/sleep", {"seconds": seconds, "value": 1})
                out[key + "_at"] = time.monotonic()

            running = threading.Thread(target=call, args=("running", 2.0))
            running.start()
            deadline = time.monotonic() + 10
            while c.request("GET", "/functions/sleep")[2]["running"] < 1:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.01)
            queued = [threading.Thread(target=call, args=("q%d" % i, 0)) for i in range(3)]
            for th in queued:
                th.start()
            while c.request("GET", "/functions/sleep")[2]["queued"] < 3:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.01)
            srv.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            for th in [running] + queued:
                th.join(15)
            self.assertEqual(srv.wait(15), 0)
            self.assertEqual(out["running"][0], 200, out["running"])
            for i in range(3):
                st, _, doc = out["q%d" % i]
                self.assertEqual((st, doc["state"]), (409, "CANCELLED"), doc)
                # at once, not when the busy worker gets to them
                self.assertLess(out["q%d_at" % i] - signalled, 1.0)
            log = srv.stderr_text()
            m = re.search(r"tasks at shutdown: (\d+) SUCCEEDED, (\d+) FAILED, (\d+) TIMEOUT, "
                          r"(\d+) CANCELLED, (\d+) still RUNNING", log)
            self.assertTrue(m, log)
            self.assertEqual(m.groups(), ("1", "0", "0", "3", "0"))
        finally:
            srv.kill()


if __name__ == "__main__":
    unittest.main()
