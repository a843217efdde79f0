"""Process mode, end to end, against immersive-demo started as outside checks start it
(--workers 2 --queue-capacity 8 --processes 2): crashes of every kind end their task FAILED
with the cause while the server goes on, a spin past its time limit is TIMEOUT and its worker
replaced, DELETE and terminate kill running workers, 1,000 calls with a crash every tenth
leave no zombie and no descriptor behind, progress and events cross from the worker, the
fork server killed with SIGKILL is replaced by its spare, an address-space limit fails a task
cleanly, and /functions says "mode": "process"."""

import json
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server import DemoServer, ServerTestCase  # noqa: E402
from test_tasks import SLOW, TERMINAL, Client, read_events  # noqa: E402

# A sanitizer would catch the faults itself and exit 1: the tests want the real signals.
for var in ("ASAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS"):
    extra = "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_abort=0"
    os.environ[var] = (os.environ[var] + ":" + extra) if os.environ.get(var) else extra

FLAGS = ("--workers", "2", "--queue-capacity", "8", "--processes", "2")


def children(pid):
    """{pid: (comm, state)} of the processes whose parent is pid."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            out[int(name)] = (comm, fields[0])
    return out


def descendants(pid):
    """Every process under pid: {pid: (comm, state)}."""
    out, todo = {}, [pid]
    while todo:
        kids = children(todo.pop())
        out.update(kids)
        todo.extend(kids)
    return out


def comm_of(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return None


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("not within %.1fs: %s" % (timeout, what))
        time.sleep(0.02)


class ProcessTests(ServerTestCase):
    FLAGS = FLAGS

    def setUp(self):
        self.c = Client(self.server.port)
        self.pid = self.server.proc.pid

    def workers(self):
        return {p for p, (comm, st) in descendants(self.pid).items() if comm == "im-worker" and st != "Z"}

    def fork_servers(self):
        return {p for p, (comm, st) in descendants(self.pid).items()
                if comm == "im-forkserver" and st != "Z"}

    def worker_pid(self):
        st, _, doc = self.c.post("/v1/demo/pid")
        self.assertEqual(st, 200, doc)
        return doc["result"]

    def test_runs_in_another_process(self):
        p = self.worker_pid()
        self.assertNotEqual(p, self.pid)
        self.assertEqual(comm_of(p), "im-worker")
        self.assertIn(p, self.workers())
        st, _, doc = self.c.post("/v1/demo/add_process", {"x": 40, "y": 2})
        self.assertEqual((st, doc), (200, {"result": 42}))
        st, _, doc = self.c.post("/v1/demo/add_process", {"x": 2**63 - 1, "y": 1})
        self.assertEqual((st, doc["state"]), (400, "FAILED"), doc)
        # validation happens before the task: the same 422 as the thread modes
        st, _, doc = self.c.post("/v1/demo/add_process", {"x": "one", "y": 1})
        self.assertEqual(st, 422, doc)
        self.assertEqual(doc["detail"][0]["loc"], ["body", "x"])

    def test_path_and_query_bound_in_the_worker(self):
        st, _, doc = self.c.request("GET", "/v1/demo/where/caf%C3%A9?times=3")
        self.assertEqual((st, doc), (200, {"result": "caf\u00e9-caf\u00e9-caf\u00e9"}))
        st, _, doc = self.c.request("GET", "/v1/demo/where/x?times=11")
        self.assertEqual(st, 422, doc)
        self.assertEqual(doc["detail"][0]["loc"], ["query", "times"])

    def test_warm_pool_of_two(self):
        self.worker_pid()
        self.assertEqual(len(wait_until(lambda: len(self.workers()) == 2 and self.workers(), 5,
                                        "two workers")), 2)

    def test_functions_say_process(self):
        st, _, doc = self.c.request("GET", "/functions")
        self.assertEqual(st, 200)
        modes = {f["name"]: f["mode"] for f in doc}
        for name in ("crash", "spin", "worker_pid", "sum_values", "steps"):
            self.assertEqual(modes.get(name), "process", (name, modes))
        self.assertEqual(modes.get("add_pool"), "pool")

    def test_crash_of_each_kind(self):
        want = {"segv": "killed by SIGSEGV", "abort": "killed by SIGABRT",
                "exit": "exited with status 3", "bus": "killed by SIGBUS",
                "fpe": "killed by SIGFPE"}
        for how, cause in want.items():
            before = self.workers()
            st, _, doc = self.c.post("/v1/demo/crash", {"how": how})
            self.assertEqual(st, 500, (how, doc))
            self.assertEqual(doc, {"detail": cause, "state": "FAILED"}, how)
            # the next call is served, by a live worker
            self.assertIn(self.worker_pid(), self.workers())
            self.assertTrue(before, before)
        # as a task: FAILED with the same cause in the task object
        tid = self.c.submit("/v1/demo/crash", {"how": "abort"})
        t = self.c.wait(tid)
        self.assertEqual((t["state"], t["error"]), ("FAILED", "killed by SIGABRT"), t)
        self.assertEqual(self.server.proc.poll(), None, "the server lives")

    def test_spin_past_its_time_limit(self):
        self.worker_pid()
        before = self.workers()
        t0 = time.monotonic()
        st, _, doc = self.c.post("/v1/demo/spin", {"seconds": 30})
        took = time.monotonic() - t0
        self.assertEqual((st, doc["state"]), (504, "TIMEOUT"), doc)
        self.assertLess(took, 1.0 + 0.5 * SLOW, "TIMEOUT within the deadline + 0.5 s")
        self.assertGreaterEqual(took, 0.95)
        # its worker is killed (SIGTERM, SIGKILL after the grace) and a fresh one replaces it
        wait_until(lambda: len(self.workers()) == 2 and self.workers() != before, 5 * SLOW,
                   "the spinning worker replaced")
        self.worker_pid()

    def test_delete_running_spin(self):
        tid = self.c.submit("/v1/demo/spin", {"seconds": 0.9})
        self.c.wait(tid, ("RUNNING",))
        time.sleep(0.1)
        t0 = time.monotonic()
        st, _, doc = self.c.request("DELETE", "/tasks/" + tid)
        self.assertIn(st, (200, 202), doc)
        t = self.c.wait(tid, TERMINAL, timeout=5)
        self.assertEqual(t["state"], "CANCELLED", t)
        self.assertLess(time.monotonic() - t0, 0.5, "CANCELLED within 0.5 s")

    def test_terminate_queued_and_running(self):
        ids = [self.c.submit("/v1/demo/spin", {"seconds": 0.95}) for _ in range(5)]
        wait_until(lambda: sum(self.c.task(t)["state"] == "RUNNING" for t in ids) == 2, 5,
                   "two spins running")
        st, _, doc = self.c.request("POST", "/functions/spin/terminate")
        self.assertEqual((st, doc), (200, {"cancelled": 5}))
        for t in ids:
            self.assertEqual(self.c.wait(t, timeout=5)["state"], "CANCELLED")
        wait_until(lambda: len(self.workers()) == 2, 10 * SLOW, "two workers again")
        self.worker_pid()

    def test_thousand_calls_crash_every_tenth(self):
        self.worker_pid()
        wait_until(lambda: len(self.workers()) == 2, 5, "two workers")
        fds = lambda: len(os.listdir("/proc/%d/fd" % self.pid))
        time.sleep(0.2)  # the connections of the calls before closed
        before = fds()
        states = {}
        n = 1000 if not os.environ.get("IM_SANITIZE") else 300
        for i in range(n):
            if i % 10 == 9:
                st, _, doc = self.c.post("/v1/demo/crash", {"how": "segv"})
                self.assertEqual((st, doc["state"]), (500, "FAILED"), doc)
                states["FAILED"] = states.get("FAILED", 0) + 1
            else:
                st, _, doc = self.c.post("/v1/demo/add_process", {"x": i, "y": 1})
                self.assertEqual((st, doc), (200, {"result": i + 1}))
                states["SUCCEEDED"] = states.get("SUCCEEDED", 0) + 1
        self.assertEqual(states, {"SUCCEEDED": n - n // 10, "FAILED": n // 10})
        st, _, doc = self.c.request("GET", "/tasks?function=crash&state=RUNNING")
        self.assertEqual(doc["tasks"], [], "nothing left running")
        wait_until(lambda: len(self.workers()) == 2, 5, "two workers")
        zombies = lambda: [p for p, (c, s) in descendants(self.pid).items() if s == "Z"]
        wait_until(lambda: not zombies(), 5, "no zombie under the server: %r" % descendants(self.pid))
        # (a crash's replacement may still be on its way: its socket, pidfd and eventfd)
        wait_until(lambda: fds() <= before, 5, "no descriptor leaked: %d then %d" % (before, fds()))

    def test_progress_and_events_from_a_worker(self):
        tid = self.c.submit("/v1/demo/steps", {"steps": 4, "step_ms": 100})
        events, _ = read_events(self.server.port, tid)
        progress = [d for e, d in events if e == "progress"]
        self.assertTrue(progress, events)
        self.assertEqual(progress[-1]["message"], "step 4 of 4")
        self.assertEqual(events[-1][0], "state")
        self.assertEqual(events[-1][1]["state"], "SUCCEEDED")
        wpid = events[-1][1]["result"]["result"]
        self.assertNotEqual(wpid, self.pid)
        # its events went through the hub to the server's bus, which logs "demo.*"
        want = '"step":4,"pid":%d,"task":"%s"' % (wpid, tid)
        wait_until(lambda: want in self.server.stderr_text(), 5, "the server logged the event")

    def test_working_directory_under_the_module_temp_dir(self):
        st, _, doc = self.c.post("/v1/demo/cwd", {"leave_file": True})
        self.assertEqual(st, 200, doc)
        path, entries = doc["result"].rsplit(":", 1)
        self.assertRegex(path, r"/temp/demo/worker-\d+$")
        self.assertTrue(path.startswith("/"), path)
        wait_until(lambda: not os.path.exists(os.path.join(path, "left-behind.txt")), 2,
                   "the file the call left removed")
        # the next call of that worker finds it empty (each worker has its own directory)
        for _ in range(4):
            st, _, doc = self.c.post("/v1/demo/cwd")
            self.assertEqual(st, 200, doc)
            self.assertEqual(doc["result"].rsplit(":", 1)[1], "0", doc)

    def test_sum_in_process_mode(self):
        import struct
        vals = [0.5 * i for i in range(100000)]  # 800 kB: crosses in a memfd
        st, _, doc = self.c.raw("POST", "/v1/demo/sum", struct.pack("<%dd" % len(vals), *vals),
                                {"Content-Type": "application/octet-stream"})
        self.assertEqual(st, 200, doc)
        self.assertEqual(json.loads(doc), {"result": sum(vals)})
        st, _, doc = self.c.post("/v1/demo/sum", {"values": [1.5, 2.5, 3]})
        self.assertEqual((st, doc), (200, {"result": 7.0}))


class ForkServerTests(ServerTestCase):
    FLAGS = FLAGS

    def test_fork_server_killed_is_replaced(self):
        c = Client(self.server.port)
        pid = self.server.proc.pid
        st, _, doc = c.post("/v1/demo/pid")
        self.assertEqual(st, 200, doc)
        fs = {p for p, (comm, s) in children(pid).items() if comm == "im-forkserver" and s != "Z"}
        self.assertEqual(len(fs), 1, children(pid))
        old = fs.pop()
        os.kill(old, signal.SIGKILL)
        # its spare (a child of the server now) takes over, and makes a spare of its own
        def others():
            fss = {p for p, (comm, s) in descendants(pid).items()
                   if comm == "im-forkserver" and s != "Z" and p != old}
            return fss if len(fss) == 2 else None
        new = wait_until(others, 5, "two fork servers again")
        self.assertNotIn(old, new)
        wait_until(lambda: old not in children(pid), 5, "the dead fork server reaped")
        line = "fork server (pid %d) killed by SIGKILL" % old  # the log's writer thread writes
        wait_until(lambda: line in self.server.stderr_text(), 5, "the line saying so")  # it soon
        self.assertIn(line, self.server.stderr_text())
        # workers come from the new one: crash one, the replacement is served
        for _ in range(3):
            st, _, doc = c.post("/v1/demo/crash", {"how": "segv"})
            self.assertEqual(doc, {"detail": "killed by SIGSEGV", "state": "FAILED"})
            st, _, doc = c.post("/v1/demo/pid")
            self.assertEqual(st, 200, doc)


class CpuLimitAndShutdownTests(unittest.TestCase):
    """Its own servers: spin without its time limit (functions.spin.timeout_ms = 0)."""

    def test_cpu_seconds_per_call(self):
        srv = DemoServer(*FLAGS, "--rlimit-cpu-s", "1", "--set", "functions.spin.timeout_ms=0").start()
        try:
            c = Client(srv.port)
            st, _, doc = c.post("/v1/demo/spin", {"seconds": 0.05})
            self.assertEqual(st, 200, doc)
            t0 = time.monotonic()
            st, _, doc = c.post("/v1/demo/spin", {"seconds": 20})
            self.assertEqual((st, doc), (500, {"detail": "killed by SIGXCPU", "state": "FAILED"}))
            self.assertLess(time.monotonic() - t0, 6 * SLOW)
            st, _, doc = c.post("/v1/demo/spin", {"seconds": 0.05})  # a fresh worker's budget
            self.assertEqual(st, 200, doc)
        finally:
            self.assertEqual(srv.stop(), 0, srv.stderr_tail())

    def test_shutdown_kills_running_workers(self):
        srv = DemoServer(*FLAGS, "--set", "functions.spin.timeout_ms=0",
                         "--kill-grace-ms", "300").start()
        c = Client(srv.port)
        tids = [c.submit("/v1/demo/spin", {"seconds": 30}) for _ in range(3)]
        wait_until(lambda: sum(c.task(t)["state"] == "RUNNING" for t in tids) == 2, 5, "two running")
        procs = {p for p, (comm, s) in descendants(srv.proc.pid).items() if s != "Z"}
        self.assertGreaterEqual(len(procs), 5, procs)  # hub, fork server, spare, 2 workers
        t0 = time.monotonic()
        self.assertEqual(srv.stop(), 0, srv.stderr_tail())
        self.assertLess(time.monotonic() - t0, 5 * SLOW, "the spins did not hold the stop")
        self.assertRegex(srv.stderr_text(), r"0 SUCCEEDED, 0 FAILED, 0 TIMEOUT, 3 CANCELLED, 0 still")

        def alive(p):
            try:
                with open("/proc/%d/stat" % p) as f:
                    return f.read().split(")")[-1].split()[0] != "Z"
            except OSError:
                return False
        wait_until(lambda: not [p for p in procs if alive(p)], 5, "every process of it gone")


@unittest.skipIf(os.environ.get("IM_SANITIZE"), "a sanitizer's shadow memory is past any "
                 "address-space limit: the worker sets none (the plain configuration runs this)")
class RlimitTests(ServerTestCase):
    FLAGS = FLAGS + ("--rlimit-as-bytes", str(512 << 20))

    def test_address_space_limit_fails_the_task(self):
        c = Client(self.server.port)
        st, _, doc = c.post("/v1/demo/alloc", {"mib": 16})
        self.assertEqual((st, doc), (200, {"result": 16}))
        st, _, doc = c.post("/v1/demo/alloc", {"mib": 1024})
        self.assertEqual(st, 507, doc)
        self.assertEqual(doc["state"], "FAILED")
        self.assertIn("malloc of 1024 MiB failed", doc["detail"])
        st, _, doc = c.post("/v1/demo/alloc", {"mib": 16})
        self.assertEqual((st, doc), (200, {"result": 16}))


if __name__ == "__main__":
    unittest.main()
