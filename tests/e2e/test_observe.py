"""Observability and operations of immersive-demo: request ids (kept, sanitised, made; in the
answer, the task, and the log lines of a worker thread and a worker process), text and JSON
log lines, a log file reopened after a rename and SIGHUP, lines dropped and counted when the
ring is full, the access log's fields, the log level through POST and through a config edit,
the management endpoints with and without a token, on the service's port or on manage.port's
listener of their own, /health and /ready (503 during shutdown)."""
import subprocess

import http.client
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server import DemoServer  # noqa: E402
from test_config import wait_for, write  # noqa: E402
from test_tasks import Client  # noqa: E402

HEX32 = re.compile(r"^[0-9a-f]{32}$")
ACCESS = re.compile(r'^\S+Z ACCESS \[(?P<rid>[^\]]+)\] (?P<peer>\S+) "(?P<method>\S+) '
                    r'(?P<target>\S+)" (?P<status>\d{3}) (?P<bytes>\d+) (?P<us>\d+)us '
                    r'task=(?P<task>\S+)$')


def flood(port, n, timeout=30):
    """n pipelined GET /plaintext in one write on one connection: the answers counted."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n" * n)
    got = b""
    deadline = time.monotonic() + timeout
    while got.count(b"Hello, World!") < n and time.monotonic() < deadline:
        got += s.recv(1 << 20)
    s.close()
    return got.count(b"Hello, World!")


class ObserveCase(unittest.TestCase):
    FLAGS = ()

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="im-observe-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.cfg = os.path.join(self.dir, "config.toml")
        write(self.cfg, "[paths]\ncache = '%s/c'\ntemp = '%s/t'\ndata = '%s'\n%s"
              % (self.dir, self.dir, self.dir, self.config_text()))
        self.srv = DemoServer("--config", self.cfg, *self.FLAGS).start()
        self.addCleanup(self.srv.kill)
        self.c = Client(self.srv.port)

    def tearDown(self):
        """A graceful stop with exit status 0 (a sanitizer's report would change it)."""
        if self.srv.alive():
            self.stop()
        self.assertNotIn("Sanitizer", self.srv.stderr_text())

    def config_text(self):
        return ""

    def stop(self):
        rc = self.srv.stop(signal.SIGTERM)
        self.assertEqual(rc, 0, self.srv.stderr_tail())
        return self.srv.stderr_text()

    def log_has(self, needle, timeout=5):
        """Waits until the server's stderr holds needle (lines are written by a thread)."""
        wait_for(lambda: needle in self.srv.stderr_text(), timeout, repr(needle))


class RequestIdTests(ObserveCase):
    FLAGS = ("--log-level", "debug")

    def test_kept_when_sane(self):
        for rid in ("abc-123", "A.b_c:d-9", "x" * 128):
            st, h, _ = self.c.raw("GET", "/plaintext", headers={"X-Request-ID": rid})
            self.assertEqual(st, 200)
            self.assertEqual(h.get("x-request-id"), rid)

    def test_replaced_when_not_sane(self):
        for bad in ("has space", "x" * 129, "semi;colon", "quote\"", "ümlaut".encode().decode(
                "latin-1")):
            st, h, _ = self.c.raw("GET", "/plaintext", headers={"X-Request-ID": bad})
            self.assertEqual(st, 200)
            self.assertRegex(h.get("x-request-id", ""), HEX32, bad)

    def test_made_and_unique(self):
        seen = set()
        for _ in range(50):
            st, h, _ = self.c.raw("GET", "/plaintext")
            self.assertEqual(st, 200)
            self.assertRegex(h["x-request-id"], HEX32)
            seen.add(h["x-request-id"])
        self.assertEqual(len(seen), 50)

    def test_on_errors_too(self):
        st, h, _ = self.c.raw("GET", "/no/such/path", headers={"X-Request-ID": "lost-1"})
        self.assertEqual(st, 404)
        self.assertEqual(h.get("x-request-id"), "lost-1")
        st, h, _ = self.c.request("POST", "/v1/demo/note", {"message": 5},
                                  headers={"X-Request-ID": "bad-arg-1"})
        self.assertEqual(st, 422)
        self.assertEqual(h.get("x-request-id"), "bad-arg-1")

    def test_on_the_task_and_in_a_worker_threads_lines(self):
        st, h, doc = self.c.post("/v1/demo/note", {"message": "from a thread"},
                                 headers={"X-Request-ID": "thread-rid-1"})
        self.assertEqual((st, doc), (200, {"result": "thread-rid-1"}))
        self.assertEqual(h.get("x-request-id"), "thread-rid-1")
        tid = self.c.submit("/v1/demo/note", {"message": "async"})  # an id is made for it
        t = self.c.wait(tid)
        self.assertEqual(t["state"], "SUCCEEDED")
        self.assertRegex(t["request_id"], HEX32)
        self.assertEqual(t["result"], {"result": t["request_id"]})
        st, h, doc = self.c.post("/v1/demo/note", {"message": "kept"}, asynchronous=True,
                                 headers={"X-Request-ID": "async-rid-2"})
        self.assertEqual(st, 202)
        self.assertEqual(self.c.wait(doc["task_id"])["request_id"], "async-rid-2")
        self.log_has("[thread-rid-1] note: from a thread")
        # IM_TIMED's line, at debug level, with the id
        self.assertRegex(self.srv.stderr_text(), r"DEBUG \[thread-rid-1\] note: \d+ ns")

    def test_in_a_worker_processs_lines(self):
        st, h, doc = self.c.post("/v1/demo/note_process", {"message": "from a process"},
                                 headers={"X-Request-ID": "proc-rid-1"})
        self.assertEqual((st, doc), (200, {"result": "proc-rid-1"}))
        self.log_has("[proc-rid-1] note from pid")
        m = re.search(r"\[proc-rid-1\] note from pid (\d+): from a process", self.srv.stderr_text())
        self.assertTrue(m)
        self.assertNotEqual(int(m.group(1)), self.srv.proc.pid)  # another process wrote it
        self.assertRegex(self.srv.stderr_text(), r"DEBUG \[proc-rid-1\] note_process: \d+ ns")


class JsonLogTests(ObserveCase):
    FLAGS = ("--log-format", "json", "--access-log", "true")

    def test_every_line_is_json(self):
        self.c.post("/v1/demo/note", {"message": 'quote " and \\ backslash\tand tab'},
                    headers={"X-Request-ID": "json-1"})
        self.c.raw("GET", "/plaintext?x=%22y%22", headers={"X-Request-ID": "json-2"})
        self.log_has('"json-2"')
        err = self.stop()
        ours = [ln for ln in err.splitlines() if ln.startswith("{")]
        self.assertGreater(len(ours), 5)
        docs = [json.loads(ln) for ln in ours]  # every line parses
        for d in docs:
            self.assertRegex(d["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(d["level"], ("trace", "debug", "info", "warn", "error", "fatal",
                                       "access"))
        note = [d for d in docs if d.get("msg", "").startswith("note: ")]
        self.assertEqual(note[0]["msg"], 'note: quote " and \\ backslash\tand tab')
        self.assertEqual(note[0]["request_id"], "json-1")
        acc = [d for d in docs if d["level"] == "access" and d.get("request_id") == "json-2"][0]
        self.assertEqual((acc["method"], acc["target"], acc["status"]),
                         ("GET", "/plaintext?x=%22y%22", 200))
        self.assertIsNone(acc["task_id"])
        self.assertGreater(acc["bytes"], 13)
        self.assertGreaterEqual(acc["duration_us"], 0)
        self.assertTrue(acc["peer"].startswith("127.0.0.1:"))
        # the task's line names it
        acc1 = [d for d in docs if d["level"] == "access" and d.get("request_id") == "json-1"][0]
        self.assertRegex(acc1["task_id"], HEX32)


class AccessLogTests(ObserveCase):
    FLAGS = ("--access-log", "true")

    def test_fields(self):
        st, h, body = self.c.raw("GET", "/plaintext", headers={"X-Request-ID": "acc-1"})
        self.assertEqual(st, 200)
        st2, h2, doc = self.c.post("/v1/demo/add", {"x": 1, "y": 2},
                                   headers={"X-Request-ID": "acc-2"})
        self.assertEqual(st2, 200)
        st3, _, _ = self.c.raw("GET", "/nowhere", headers={"X-Request-ID": "acc-3"})
        self.assertEqual(st3, 404)
        self.log_has("[acc-3]")
        lines = {}
        for ln in self.srv.stderr_text().splitlines():
            m = ACCESS.match(ln)
            if m:
                lines[m.group("rid")] = m.groupdict()
        a = lines["acc-1"]
        self.assertEqual((a["method"], a["target"], a["status"], a["task"]),
                         ("GET", "/plaintext", "200", "-"))
        self.assertTrue(a["peer"].startswith("127.0.0.1:"))
        self.assertGreater(int(a["bytes"]), len(body))  # the head counts too
        b = lines["acc-2"]
        self.assertEqual((b["method"], b["target"], b["status"]), ("POST", "/v1/demo/add", "200"))
        self.assertRegex(b["task"], HEX32)
        self.assertEqual(lines["acc-3"]["status"], "404")

    def test_pipelined_flood_is_answered(self):
        """Many lines at once: all requests answered, every line either written or counted."""
        n = 400
        self.assertEqual(flood(self.srv.port, n), n)

        def written():
            return len([ln for ln in self.srv.stderr_text().splitlines()
                        if "ACCESS" in ln and "/plaintext" in ln])

        def dropped():
            body = self.c.raw("GET", "/metrics")[2].decode()
            return int(float(metric(parse_metrics(body), "immersive_log_lines_dropped_total")))

        try:  # 30 s: a loaded CI machine runs this under TSan beside another suite
            wait_for(lambda: written() + dropped() >= n, 30, "every access line written or counted")
        except AssertionError as e:
            raise AssertionError(f"{e}: {written()} written, {dropped()} dropped of {n}") from None
        self.assertEqual(dropped(), 0, "the default ring holds them all")


class DropTests(ObserveCase):
    """The log goes to a FIFO nobody reads yet (a disk that stalls): its writer blocks, the ring
    of 64 lines fills, and a flood of pipelined requests is still answered at once, its lines
    dropped and counted. Once the FIFO is read, the count is reported."""

    def config_text(self):
        self.fifo = os.path.join(self.dir, "log.fifo")
        os.mkfifo(self.fifo)
        self.rd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)  # the server's open succeeds
        self.addCleanup(os.close, self.rd)
        return "[logging]\nfile = '%s'\naccess = true\nring_lines = 64\n" % self.fifo

    def drain(self):
        out = b""
        while True:
            try:
                chunk = os.read(self.rd, 1 << 16)
            except BlockingIOError:
                return out
            if not chunk:
                return out
            out += chunk

    def test_dropped_lines_are_counted(self):
        n = 3000
        self.assertEqual(flood(self.srv.port, n), n)  # while nothing was written
        log = b""
        deadline = time.monotonic() + 20
        while b"lines dropped" not in log and time.monotonic() < deadline:
            log += self.drain()
            time.sleep(0.05)
        text = log.decode()
        m = re.search(r"log: (\d+) lines dropped \((\d+) in all\): the ring of 64 lines", text)
        self.assertTrue(m, text[-2000:])
        dropped = int(m.group(2))
        written = text.count(" ACCESS ")
        self.assertGreater(dropped, 0)
        self.assertLess(written, n)
        self.assertLessEqual(written + dropped, n)


class LogFileTests(ObserveCase):
    def config_text(self):
        self.path = os.path.join(self.dir, "service.log")
        return "[logging]\nfile = '%s'\naccess = true\n" % self.path

    def lines(self, path):
        with open(path, encoding="utf-8") as f:
            return f.read()

    def test_reopened_after_rename_and_sighup(self):
        self.c.post("/v1/demo/note", {"message": "before"}, headers={"X-Request-ID": "f-1"})
        self.c.post("/v1/demo/note_process", {"message": "before-p"},
                    headers={"X-Request-ID": "f-2"})
        wait_for(lambda: "[f-2] note from pid" in self.lines(self.path) and
                 "ACCESS [f-2]" in self.lines(self.path), 5, "the first lines")
        old = self.path + ".1"
        os.rename(self.path, old)  # as logrotate does
        self.srv.send_signal(signal.SIGHUP)
        wait_for(lambda: os.path.exists(self.path), 5, "the new file")
        self.c.post("/v1/demo/note", {"message": "after"}, headers={"X-Request-ID": "f-3"})
        self.c.post("/v1/demo/note_process", {"message": "after-p"},
                    headers={"X-Request-ID": "f-4"})
        wait_for(lambda: "[f-4] note from pid" in self.lines(self.path), 5, "lines in the new file")
        new, was = self.lines(self.path), self.lines(old)
        self.assertIn("SIGHUP: log file reopened", new)
        self.assertIn("[f-3] note: after", new)
        self.assertIn("[f-1] note: before", was)
        self.assertIn("[f-2] note from pid", was)
        for rid in ("f-1", "f-2"):
            self.assertNotIn("[%s]" % rid, new)
        for rid in ("f-3", "f-4"):
            self.assertNotIn("[%s]" % rid, was)
        self.assertTrue(self.srv.alive())  # SIGHUP reopens; it does not stop the service
        self.assertEqual(self.c.post("/v1/demo/pid")[0], 200)  # nor its worker processes
        self.assertNotIn("listening on", self.srv.stderr_text())  # the lines went to the file
        self.stop()
        self.assertIn("stopped", self.lines(self.path))


class LevelTests(ObserveCase):
    def test_post_and_get(self):
        st, _, doc = self.c.request("GET", "/manage/logging/level")
        self.assertEqual((st, doc), (200, {"level": "info"}))
        self.c.post("/v1/demo/note", {"message": "quiet"}, headers={"X-Request-ID": "lv-1"})
        st, _, doc = self.c.request("POST", "/manage/logging/level", {"level": "debug"})
        self.assertEqual((st, doc), (200, {"level": "debug"}))
        self.assertEqual(self.c.request("GET", "/manage/logging/level")[2], {"level": "debug"})
        self.c.post("/v1/demo/note", {"message": "loud"}, headers={"X-Request-ID": "lv-2"})
        self.log_has("[lv-2] note: loud")
        self.assertRegex(self.srv.stderr_text(), r"DEBUG \[lv-2\] note: \d+ ns")
        self.assertNotRegex(self.srv.stderr_text(), r"DEBUG \[lv-1\]")
        st, _, doc = self.c.request("POST", "/manage/logging/level", {"level": "loud"})
        self.assertEqual(st, 422)
        self.assertEqual(doc["detail"][0]["loc"], ["body", "level"])
        st, _, doc = self.c.request("POST", "/manage/logging/level", {})
        self.assertEqual(st, 422)
        st, _, _ = self.c.raw("POST", "/manage/logging/level", b"{not json",
                              {"Content-Type": "application/json"})
        self.assertEqual(st, 400)
        self.assertEqual(self.c.request("GET", "/manage/logging/level")[2], {"level": "debug"})

    def test_config_edit(self):
        with open(self.cfg, "a") as f:
            f.write("[logging]\nlevel = 'warn'\n")
        wait_for(lambda: self.c.request("GET", "/manage/logging/level")[2] == {"level": "warn"},
                 10, "the level from the edited file")
        self.c.post("/v1/demo/note", {"message": "hidden"}, headers={"X-Request-ID": "lv-3"})
        self.assertEqual(self.c.request("GET", "/manage/logging/level")[2], {"level": "warn"})
        time.sleep(0.3)
        self.assertNotIn("[lv-3]", self.srv.stderr_text())


class TokenTests(ObserveCase):
    FLAGS = ("--manage-token", "s3cret-token")

    def test_missing_wrong_right(self):
        body = {"level": "debug"}
        st, h, doc = self.c.request("POST", "/manage/logging/level", body)
        self.assertEqual(st, 401)
        self.assertEqual(h.get("www-authenticate"), 'Bearer realm="manage"')
        self.assertIn("Bearer", doc["detail"])
        st, _, _ = self.c.request("POST", "/manage/logging/level", body,
                                  headers={"Authorization": "Bearer s3cret-tokeN"})
        self.assertEqual(st, 403)
        st, _, _ = self.c.request("POST", "/manage/logging/level", body,
                                  headers={"Authorization": "Bearer s3cret-token-longer"})
        self.assertEqual(st, 403)
        self.assertEqual(self.c.request("GET", "/manage/logging/level")[2], {"level": "info"})
        st, _, doc = self.c.request("POST", "/manage/logging/level", body,
                                    headers={"Authorization": "Bearer s3cret-token"})
        self.assertEqual((st, doc), (200, {"level": "debug"}))
        # reads need no token
        self.assertEqual(self.c.request("GET", "/manage/version")[0], 200)


def outside_address():
    """This machine's address on its way out (not loopback), or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))  # no packet is sent: the route picks the address
        a = s.getsockname()[0]
        return None if a.startswith("127.") else a
    except OSError:
        return None
    finally:
        s.close()


class LoopbackOnlyTests(ObserveCase):
    FLAGS = ("--host", "0.0.0.0")

    def test_writes_from_loopback_only_without_a_token(self):
        addr = outside_address()
        if addr is None:
            self.skipTest("this machine has no address besides loopback")
        c = http.client.HTTPConnection(addr, self.srv.port, timeout=10)
        c.request("POST", "/manage/logging/level", body=b'{"level":"debug"}',
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        doc = json.loads(r.read())
        c.close()
        self.assertEqual(r.status, 403)
        self.assertIn("loopback", doc["detail"])
        c = http.client.HTTPConnection(addr, self.srv.port, timeout=10)
        c.request("GET", "/manage/logging/level")  # reading is fine from anywhere
        r = c.getresponse()
        self.assertEqual((r.status, json.loads(r.read())), (200, {"level": "info"}))
        c.close()
        st, _, doc = self.c.request("POST", "/manage/logging/level", {"level": "debug"})
        self.assertEqual((st, doc), (200, {"level": "debug"}))


class ManageTests(ObserveCase):
    def test_endpoints(self):
        st, _, doc = self.c.request("GET", "/health")
        self.assertEqual((st, doc), (200, {"status": "ok"}))
        st, _, doc = self.c.request("GET", "/ready")
        self.assertEqual((st, doc), (200, {"status": "ready"}))
        st, _, doc = self.c.request("GET", "/manage/version")
        self.assertEqual(st, 200)
        self.assertEqual(doc["service"], "immersive-demo")
        self.assertRegex(doc["immersive"], r"^\d+\.\d+\.\d+$")
        self.assertTrue(doc["build_id"])
        st, _, spec = self.c.request("GET", "/manage/spec")
        self.assertEqual(st, 200)
        self.assertEqual(spec, self.c.request("GET", "/openapi.json")[2])
        self.assertEqual(doc["version"], spec["info"]["version"])
        st, _, conf = self.c.request("GET", "/manage/config")
        self.assertEqual(st, 200)
        self.assertEqual(conf["logging"]["level"], "info")
        self.assertEqual(self.c.request("DELETE", "/health")[0], 405)

    def test_ready_goes_503_during_shutdown(self):
        # a request whose head is in and whose body is not: the stop waits for it to finish
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=10)
        s.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n")
        tid = self.c.submit("/v1/demo/sleep", {"seconds": 1.5, "value": 1})
        self.c.wait(tid, ("RUNNING",))
        self.srv.send_signal(signal.SIGTERM)
        self.log_has("shutting down gracefully")
        s.sendall(b"x")
        got = b""
        while b"\r\n\r\n" not in got or not got.rstrip().endswith(b"}"):
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        s.close()
        head, _, body = got.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 503"), got)
        doc = json.loads(body)
        self.assertEqual(doc["status"], "not ready")
        self.assertIn("shutting down", doc["detail"])
        self.assertEqual(self.srv.wait(15), 0)


class PrefixTests(ObserveCase):
    FLAGS = ("--manage-prefix", "/ops/")

    def test_moved(self):
        self.assertEqual(self.c.request("GET", "/ops/version")[0], 200)
        self.assertEqual(self.c.request("GET", "/ops/logging/level")[2], {"level": "info"})
        self.assertEqual(self.c.request("GET", "/manage/version")[0], 404)
        self.assertEqual(self.c.request("GET", "/health")[0], 200)



def free_port(host):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ManagePortTests(ObserveCase):
    """manage.port on 127.0.0.2 (manage.host), the service on 127.0.0.1, two loops."""

    def setUp(self):
        self.mport = free_port("127.0.0.2")
        self.FLAGS = ("--loops", "2", "--manage-port", str(self.mport), "--manage-host", "127.0.0.2")
        super().setUp()

    def mreq(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.2", self.mport, timeout=10)
        try:
            data = json.dumps(body).encode() if body is not None else None
            c.request(method, path, body=data,
                      headers={"Content-Type": "application/json"} if data else {})
            r = c.getresponse()
            raw = r.read()
            return r.status, json.loads(raw) if raw and raw[:1] in b"{[" else raw
        finally:
            c.close()

    def test_split(self):
        for path in ("/manage/version", "/manage/logging/level", "/manage/spec", "/manage/config"):
            self.assertEqual(self.mreq("GET", path)[0], 200, path)
            self.assertEqual(self.c.request("GET", path)[0], 404, f"{path} on the service's port")
        self.assertEqual(self.c.request("DELETE", "/manage/version")[0], 404)  # not 405: not here
        for path in ("/health", "/ready", "/metrics"):  # probes and scrapes: on both
            self.assertEqual(self.mreq("GET", path)[0], 200, path)
            self.assertEqual(self.c.request("GET", path)[0], 200, path)
        for path in ("/v1/math/fib/3", "/openapi.json", "/docs", "/tasks"):  # the service's
            self.assertEqual(self.mreq("GET", path)[0], 404, path)
            self.assertEqual(self.c.request("GET", path)[0], 200, path)
        self.assertEqual(self.mreq("POST", "/manage/logging/level", {"level": "debug"}),
                         (200, {"level": "debug"}))
        self.assertEqual(self.c.request("GET", "/v1/math/fib/10")[2], {"result": 55})
        self.log_has("management endpoints on http://127.0.0.2:%d" % self.mport)

    def test_its_address_only(self):
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", self.mport), timeout=5).close()

    def test_every_loop_listens(self):
        """Connections spread over the loops' listeners (SO_REUSEPORT): all are answered."""
        conns = [http.client.HTTPConnection("127.0.0.2", self.mport, timeout=10) for _ in range(16)]
        for c in conns:
            c.request("GET", "/manage/version")
        for c in conns:
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            r.read()
            c.close()

    def test_the_services_document_leaves_them_out(self):
        doc = self.c.request("GET", "/openapi.json")[2]
        self.assertFalse([p for p in doc["paths"] if p.startswith("/manage/")])
        self.assertIn("/health", doc["paths"])


class ManagePortConfigTests(unittest.TestCase):
    def test_refused(self):
        from server import demo_binary
        for flags, why in ((["--manage-port", "70000"], "manage.port"),
                           (["--port", "8123", "--manage-port", "8123"], "must differ")):
            r = subprocess.run([demo_binary(), "--check-config"] + flags, capture_output=True,
                               text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0, flags)
            self.assertIn(why, r.stderr)


def parse_metrics(text):
    """{(name, frozenset(labels)): value} of a Prometheus text page."""
    out = {}
    for ln in text.splitlines():
        if not ln or ln.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', ln)
        assert m, ln
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(ms, name, **labels):
    return ms.get((name, frozenset(labels.items())), 0.0)


class MetricsTests(ObserveCase):
    FLAGS = ("--max-conns", "40")

    def scrape(self):
        st, h, body = self.c.raw("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertEqual(h["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        return body.decode()

    def test_counts_match_a_mixed_load(self):
        before = parse_metrics(self.scrape())
        n_plain, n_404, n_add, n_proc = 37, 5, 11, 4
        sent = 0
        for _ in range(n_plain):
            self.assertEqual(self.c.raw("GET", "/plaintext")[0], 200)
        for _ in range(n_404):
            self.assertEqual(self.c.raw("GET", "/missing/x")[0], 404)
        for i in range(n_add):
            self.assertEqual(self.c.post("/v1/demo/add", {"x": i, "y": 1})[0], 200)
        for _ in range(n_proc):
            self.assertEqual(self.c.post("/v1/demo/pid")[0], 200)
        self.assertEqual(self.c.post("/v1/demo/fail", {"message": "no"})[0], 500)
        self.assertEqual(self.c.post("/v1/demo/add", {"x": "one"})[0], 422)
        held = socket.create_connection(("127.0.0.1", self.srv.port))  # one stays open
        self.addCleanup(held.close)
        text = self.scrape()
        ms = parse_metrics(text)
        d = lambda name, **kw: metric(ms, name, **kw) - metric(before, name, **kw)  # noqa: E731
        self.assertEqual(d("immersive_requests_total", method="GET", route="/plaintext",
                           status="2xx"), n_plain)
        self.assertEqual(d("immersive_requests_total", method="", route="(none)", status="4xx"),
                         n_404)
        self.assertEqual(d("immersive_requests_total", method="POST", route="/v1/demo/add",
                           status="2xx"), n_add)
        self.assertEqual(d("immersive_requests_total", method="POST", route="/v1/demo/add",
                           status="4xx"), 1)
        self.assertEqual(d("immersive_requests_total", method="POST", route="/v1/demo/fail",
                           status="5xx"), 1)
        self.assertEqual(d("immersive_request_duration_seconds_count", method="GET",
                           route="/plaintext"), n_plain)
        self.assertEqual(d("immersive_request_duration_seconds_bucket", method="GET",
                           route="/plaintext", le="+Inf"), n_plain)
        self.assertEqual(d("immersive_tasks_ended_total", function="add_pool", state="SUCCEEDED"),
                         n_add)
        self.assertEqual(d("immersive_tasks_ended_total", function="worker_pid",
                           state="SUCCEEDED"), n_proc)
        self.assertEqual(d("immersive_tasks_ended_total", function="fail", state="FAILED"), 1)
        self.assertEqual(d("immersive_task_duration_seconds_count", function="add_pool"), n_add)
        self.assertEqual(metric(ms, "immersive_tasks", function="add_pool", state="RUNNING"), 0)
        self.assertGreaterEqual(metric(ms, "immersive_connections_open"), 1)
        self.assertGreater(d("immersive_received_bytes_total"),
                           n_plain * len("GET /plaintext HTTP/1.1\r\n"))
        self.assertGreater(d("immersive_sent_bytes_total"), n_plain * len("Hello, World!"))
        self.assertEqual(metric(ms, "immersive_log_lines_dropped_total"), 0)
        self.assertEqual(metric(ms, "immersive_executor_threads_busy", executor="im-pool"), 0)
        self.assertGreaterEqual(metric(ms, "immersive_executor_threads", executor="im-pool"), 1)
        self.assertIn(("immersive_executor_queue_depth",
                       frozenset({("executor", "im-pool"), ("priority", "0")})), ms)
        self.check_promtool(text)

    def check_promtool(self, text):
        promtool = shutil.which("promtool")
        if not promtool:
            if os.environ.get("CI"):
                self.fail("promtool (Debian prometheus) is missing on CI")
            self.skipTest("promtool is not installed (Debian package prometheus)")
        import subprocess
        r = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        self.assertEqual(r.stdout.decode().strip() + r.stderr.decode().strip(), "")

    def test_reloads_restarts_refusals(self):
        before = parse_metrics(self.scrape())
        with open(self.cfg, "a") as f:
            f.write("[logging]\nlevel = 'info'\n")
        wait_for(lambda: metric(parse_metrics(self.scrape()), "immersive_config_reloads_total",
                                result="ok") > metric(before, "immersive_config_reloads_total",
                                                      result="ok"), 10, "a reload counted")
        with open(self.cfg, "a") as f:
            f.write("[server.limits]\nmax_output_bytes = 'lots'\n")
        wait_for(lambda: metric(parse_metrics(self.scrape()), "immersive_config_reloads_total",
                                result="failed") > 0, 10, "a failed reload counted")
        self.assertEqual(self.c.post("/v1/demo/crash", {"how": "abort"})[0], 500)
        wait_for(lambda: metric(parse_metrics(self.scrape()),
                                "immersive_process_worker_restarts_total") >= 1, 10,
                 "a restart counted")
        conns = [socket.create_connection(("127.0.0.1", self.srv.port)) for _ in range(45)]
        self.addCleanup(lambda: [s.close() for s in conns])
        for s in conns:  # every one answers or is answered 503 at once
            s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        refused = 0
        for s in conns:
            s.settimeout(10)
            head = s.recv(4096)
            refused += head.startswith(b"HTTP/1.1 503")
        for s in conns:
            s.close()
        self.assertGreater(refused, 0)
        wait_for(lambda: metric(parse_metrics(self.scrape()),
                                "immersive_connections_refused_total") >= refused, 10,
                 "refusals counted")


class MetricsOffTests(ObserveCase):
    FLAGS = ("--metrics", "false")

    def test_off(self):
        st, _, doc = self.c.request("GET", "/metrics")
        self.assertEqual(st, 404)
        self.assertIn("metrics.enabled", doc["detail"])
        self.assertEqual(self.c.raw("GET", "/plaintext")[0], 200)



class CorsTests(ObserveCase):
    FLAGS = ("--cors-allow-origins", "https://app.example, http://localhost:3000",
             "--cors-allow-methods", "GET, POST", "--cors-allow-headers", "X-Token",
             "--cors-expose-headers", "X-Request-ID", "--cors-max-age", "120")

    def test_simple_request_allowed_and_refused(self):
        st, h, body = self.c.raw("GET", "/plaintext", headers={"Origin": "https://app.example"})
        self.assertEqual((st, body), (200, b"Hello, World!"))
        self.assertEqual(h.get("access-control-allow-origin"), "https://app.example")
        self.assertEqual(h.get("vary"), "Origin")
        self.assertEqual(h.get("access-control-expose-headers"), "X-Request-ID")
        self.assertNotIn("access-control-allow-credentials", h)
        st, h, body = self.c.raw("GET", "/plaintext", headers={"Origin": "https://evil.example"})
        self.assertEqual((st, body), (200, b"Hello, World!"))  # served; the browser hides it
        self.assertFalse([k for k in h if k.startswith("access-control-")])
        self.assertEqual(h.get("vary"), "Origin")  # a cache keeps the two apart
        st, h, _ = self.c.raw("GET", "/plaintext")  # no Origin: no CORS headers
        self.assertFalse([k for k in h if k.startswith("access-control-")])
        # on a task's answer too, and on errors
        st, h, doc = self.c.post("/v1/demo/add", {"x": 1, "y": 2},
                                 headers={"Origin": "http://localhost:3000"})
        self.assertEqual((st, doc), (200, {"result": 3}))
        self.assertEqual(h.get("access-control-allow-origin"), "http://localhost:3000")
        st, h, _ = self.c.raw("GET", "/nowhere", headers={"Origin": "http://localhost:3000"})
        self.assertEqual(st, 404)
        self.assertEqual(h.get("access-control-allow-origin"), "http://localhost:3000")

    def preflight(self, origin, method, headers=None):
        hd = {"Origin": origin, "Access-Control-Request-Method": method}
        if headers:
            hd["Access-Control-Request-Headers"] = headers
        return self.c.raw("OPTIONS", "/v1/demo/add", headers=hd)

    def test_preflight(self):
        before = self.c.request("GET", "/functions/add_pool")[2]
        st, h, body = self.preflight("https://app.example", "POST", "content-type, x-token")
        self.assertEqual((st, body), (200, b"OK"))
        self.assertEqual(h["access-control-allow-origin"], "https://app.example")
        self.assertEqual(h["access-control-allow-methods"], "GET, POST")
        self.assertEqual(h["access-control-allow-headers"], "X-Token")
        self.assertEqual(h["access-control-max-age"], "120")
        self.assertEqual(h["vary"], "Origin")
        for args, why in ((("https://evil.example", "POST"), "origin"),
                          (("https://app.example", "DELETE"), "method"),
                          (("https://app.example", "POST", "x-other"), "headers")):
            st, h, body = self.preflight(*args)
            self.assertEqual(st, 400, args)
            self.assertEqual(json.loads(body), {"detail": "Disallowed CORS " + why})
            self.assertNotIn("access-control-allow-origin", h)
        after = self.c.request("GET", "/functions/add_pool")[2]
        self.assertEqual(before, after)  # no preflight reached the function
        # a plain OPTIONS (no Access-Control-Request-Method) is not a preflight: routing answers
        st, h, _ = self.c.raw("OPTIONS", "/v1/demo/add", headers={"Origin": "https://app.example"})
        self.assertEqual(st, 204)
        self.assertIn("POST", h["allow"])


class CorsAnyTests(ObserveCase):
    FLAGS = ("--cors-allow-origins", "*", "--cors-allow-methods", "*",
             "--cors-allow-headers", "*")

    def test_wildcards(self):
        st, h, _ = self.c.raw("GET", "/plaintext", headers={"Origin": "https://any.example"})
        self.assertEqual(h.get("access-control-allow-origin"), "*")
        self.assertNotIn("vary", h)
        st, h, _ = self.c.raw("OPTIONS", "/v1/demo/add", headers={
            "Origin": "https://any.example", "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "x-a, x-b"})
        self.assertEqual(st, 200)
        self.assertEqual(h["access-control-allow-headers"], "x-a, x-b")
        self.assertIn("PATCH", h["access-control-allow-methods"])
        many = ", ".join("x-header-%03d" % i for i in range(100))  # 1,498 characters: whole
        st, h, _ = self.c.raw("OPTIONS", "/v1/demo/add", headers={
            "Origin": "https://any.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": many})
        self.assertEqual((st, h["access-control-allow-headers"]), (200, many))


class CorsCredentialsTests(ObserveCase):
    FLAGS = ("--cors-allow-origins", "*", "--cors-allow-credentials", "true")

    def test_origin_echoed_with_credentials(self):
        st, h, _ = self.c.raw("GET", "/plaintext", headers={"Origin": "https://x.example"})
        self.assertEqual(h.get("access-control-allow-origin"), "https://x.example")
        self.assertEqual(h.get("access-control-allow-credentials"), "true")
        self.assertEqual(h.get("vary"), "Origin")


class NoCorsTests(ObserveCase):
    def test_nothing_sent_when_unset(self):
        st, h, _ = self.c.raw("GET", "/plaintext", headers={"Origin": "https://app.example"})
        self.assertFalse([k for k in h if k.startswith("access-control-")])
        st, h, _ = self.c.raw("OPTIONS", "/v1/demo/add", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
        self.assertEqual(st, 204)  # routing's own OPTIONS answer
        self.assertFalse([k for k in h if k.startswith("access-control-")])



class GzipTests(ObserveCase):
    """Answers gzipped for a client that accepts it; zlib inflates them back to the bytes an
    identity answer carries."""
    FLAGS = ("--compression-min-bytes", "200")

    def big(self, enc=None, path="/openapi.json"):
        hd = {"Accept-Encoding": enc} if enc is not None else {}
        return self.c.raw("GET", path, headers=hd)

    def test_inflates_to_the_same_bytes(self):
        import zlib
        st, h, plain = self.big()
        self.assertEqual(st, 200)
        self.assertNotIn("content-encoding", h)
        self.assertIn("Accept-Encoding", h.get("vary", ""))
        for enc in ("gzip", "deflate, gzip;q=0.5", "br, *", "x-gzip", "GZIP"):
            st, h, body = self.big(enc)
            self.assertEqual((st, h.get("content-encoding")), (200, "gzip"), enc)
            self.assertEqual(int(h["content-length"]), len(body))
            self.assertLess(len(body), len(plain))
            self.assertEqual(zlib.decompress(body, 16 + zlib.MAX_WBITS), plain)
        for enc in ("gzip;q=0", "deflate", "identity", "gzip;q=0.000, br", "gzip;q=0, *"):
            st, h, body = self.big(enc)
            self.assertEqual((st, body), (200, plain), enc)
            self.assertNotIn("content-encoding", h)

    def test_a_tasks_answer_and_small_ones(self):
        import zlib
        st, h, body = self.c.raw("POST", "/v1/demo/note", json.dumps({"message": "x" * 190})
                                 .encode(), {"Content-Type": "application/json",
                                             "Accept-Encoding": "gzip"})
        self.assertEqual(st, 200)
        doc = json.loads(zlib.decompress(body, 31)) if h.get("content-encoding") else json.loads(body)
        self.assertRegex(doc["result"], HEX32)
        st, h, body = self.c.raw("GET", "/plaintext", headers={"Accept-Encoding": "gzip"})
        self.assertEqual((st, body), (200, b"Hello, World!"))  # under min_bytes
        self.assertNotIn("content-encoding", h)
        st, h, body = self.c.raw("HEAD", "/openapi.json", headers={"Accept-Encoding": "gzip"})
        self.assertEqual((st, body), (200, b""))
        # the same representation a GET gets: gzip, with its length
        st, g, zipped = self.c.raw("GET", "/openapi.json", headers={"Accept-Encoding": "gzip"})
        self.assertEqual(h.get("content-encoding"), "gzip")
        self.assertEqual(int(h["content-length"]), len(zipped))

    def test_never_npy_or_streams(self):
        st, h, body = self.c.raw("POST", "/v1/demo/normalize",
                                 json.dumps({"array": [[3, 4]] * 64}).encode(),
                                 {"Content-Type": "application/json", "Accept-Encoding": "gzip",
                                  "Accept": "application/x-npy"})
        self.assertEqual(st, 200, body)
        self.assertEqual(h["content-type"], "application/x-npy")
        self.assertNotIn("content-encoding", h)
        tid = self.c.submit("/v1/demo/sleep", {"seconds": 0.2, "value": 1})
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=10)
        c.request("GET", "/tasks/%s/events" % tid, headers={"Accept-Encoding": "gzip"})
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        self.assertTrue(r.getheader("Content-Type").startswith("text/event-stream"))
        self.assertIsNone(r.getheader("Content-Encoding"))  # each event flushes as it comes
        self.assertIn(b"SUCCEEDED", r.read())
        c.close()


class GzipOffTests(ObserveCase):
    FLAGS = ("--compression", "false")

    def test_off(self):
        st, h, body = self.c.raw("GET", "/openapi.json", headers={"Accept-Encoding": "gzip"})
        self.assertEqual(st, 200)
        self.assertNotIn("content-encoding", h)
        json.loads(body)


if __name__ == "__main__":
    unittest.main()
