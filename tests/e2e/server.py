"""Helpers for the end-to-end tests: run the immersive-demo binary and talk raw HTTP to it.

The binary is named by the environment variable IM_DEMO. Without it every test that
needs the server is skipped (unittest.SkipTest). Every socket operation and every wait
here is bounded by a timeout, so a hung server fails a test instead of blocking it.
"""

import calendar
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HOST = "127.0.0.1"
# Default bound for one socket operation / one response.
IO_TIMEOUT = 5.0
# Bound for the server to print its "listening on" line.
STARTUP_TIMEOUT = 10.0
# Bound for the server to exit after SIGTERM/SIGINT.
STOP_TIMEOUT = 15.0

LISTEN_RE = re.compile(r"^listening on http://(?:127\.0\.0\.1|0\.0\.0\.0):(\d+)$")


# ----------------------------------------------------------------------------------------
# Errors: subclasses of AssertionError so that a misbehaving server is a test *failure*.

class ProtocolError(AssertionError):
    """The server sent something that is not a well-formed HTTP/1.x response."""


class ResponseTimeout(AssertionError):
    """The server did not send (all of) what was expected within the time limit."""


class ConnectionClosed(AssertionError):
    """The connection was closed (EOF or reset) before a complete response arrived."""


# ----------------------------------------------------------------------------------------
# Locating the binary

def demo_binary():
    """Path of the server binary from IM_DEMO; raises unittest.SkipTest when unset."""
    path = os.environ.get("IM_DEMO", "").strip()
    if not path:
        raise unittest.SkipTest(
            "IM_DEMO is not set: set IM_DEMO=/abs/path/to/immersive-demo to run e2e tests")
    path = os.path.abspath(path)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        # Set but wrong: that is a real error, not a reason to skip.
        raise AssertionError("IM_DEMO=%r is not an executable file" % path)
    return path


# ----------------------------------------------------------------------------------------
# The server process

class DemoServer:
    """One running immersive-demo process, started with `flags` plus `--port 0`."""

    def __init__(self, *flags):
        self.flags = [str(f) for f in flags]
        self.binary = demo_binary()
        self.proc = None
        self.host = HOST
        self.port = None
        self._stderr_file = None
        self._stderr_cache = None
        self._stdout_rest = bytearray()
        self._drain_thread = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self, timeout=STARTUP_TIMEOUT):
        self._stderr_file = tempfile.TemporaryFile(prefix="im-demo-stderr-")
        argv = [self.binary] + self.flags + ["--port", "0"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._stderr_file, bufsize=0)
        line = self._read_first_line(timeout, argv)
        m = LISTEN_RE.match(line)
        if not m:
            self.kill()
            raise AssertionError("first stdout line of %r is %r, expected "
                                 "'listening on http://127.0.0.1:PORT'\nstderr:\n%s"
                                 % (argv, line, self.stderr_text()))
        self.port = int(m.group(1))
        if not 0 < self.port < 65536:
            self.kill()
            raise AssertionError("bad port in %r" % line)
        # Keep draining stdout so the server can never block on a full pipe.
        self._drain_thread = threading.Thread(target=self._drain_stdout, daemon=True)
        self._drain_thread.start()
        return self

    def _read_first_line(self, timeout, argv):
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        data = bytearray()
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise AssertionError("%r printed no complete first line within %.1fs "
                                     "(got %r; is stdout flushed?)\nstderr:\n%s"
                                     % (argv, timeout, bytes(data), self.stderr_text()))
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                rc = self.proc.wait(timeout=5)
                self._close_pipes()
                raise AssertionError("%r exited (status %s) before printing its address; "
                                     "stdout %r\nstderr:\n%s"
                                     % (argv, rc, bytes(data), self.stderr_text()))
            data += chunk
        line, _, rest = bytes(data).partition(b"\n")
        self._stdout_rest += rest
        return line.decode("utf-8", "replace").rstrip("\r")

    def _drain_stdout(self):
        fd = self.proc.stdout.fileno()
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return
                if len(self._stdout_rest) < 1 << 20:
                    self._stdout_rest += chunk
        except OSError:
            return

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """Wait for exit; returns the status, or None if still running after `timeout`."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Send `sig`, wait up to `timeout` and return the exit status.

        A server that does not exit in time is killed and an AssertionError is raised."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            rc = self.wait(timeout)
            if rc is None:
                self.kill()
                raise AssertionError("server did not exit within %.1fs after signal %d\n"
                                     "stderr:\n%s" % (timeout, sig, self.stderr_tail()))
        self._close_pipes()
        return self.proc.returncode

    def kill(self):
        """Forcefully end the process (cleanup path only)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._close_pipes()

    def _close_pipes(self):
        if self._drain_thread is not None:
            self._drain_thread.join(timeout=2)
        if self.proc is not None and self.proc.stdout is not None:
            try:
                self.proc.stdout.close()
            except OSError:
                pass
        if self._stderr_file is not None:
            self._stderr_cache = self.stderr_text()
            self._stderr_file.close()
            self._stderr_file = None

    # -- output ----------------------------------------------------------------------

    def stderr_text(self):
        if self._stderr_file is None:
            return self._stderr_cache or ""
        # pread, never seek: the file's offset is shared with the server's fd 2, so a seek to
        # 0 between two of its writes made the next one land over the first lines
        try:
            fd = self._stderr_file.fileno()
            size, out, at = os.fstat(fd).st_size, [], 0
            while at < size:
                b = os.pread(fd, size - at, at)
                if not b:
                    break
                out.append(b)
                at += len(b)
            return b"".join(out).decode("utf-8", "replace")
        except (OSError, ValueError):
            return "<stderr unavailable>"

    def require_batching(self):
        """Skips the calling test when the server logged that it could not turn
        --batch-wait-us on (kernel without MIN_TIMEOUT); fails it instead under CI, whose
        machines must run the batched tests."""
        if "batch wait active" in self.stderr_text():
            return
        why = "batch_wait_us is not on here:\n" + self.stderr_tail(500)
        if os.environ.get("CI"):
            raise AssertionError(why)
        raise unittest.SkipTest(why)

    def stderr_tail(self, limit=4000):
        text = self.stderr_text()
        if len(text) > limit:
            text = "...\n" + text[-limit:]
        return text

    # -- clients ---------------------------------------------------------------------

    def connect(self, timeout=IO_TIMEOUT):
        return Conn(self.host, self.port, timeout=timeout)

    def url(self, path="/"):
        return "http://%s:%d%s" % (self.host, self.port, path)


# ----------------------------------------------------------------------------------------
# Building requests

def request(method, target, headers=(), body=b"", version="HTTP/1.1", host="test"):
    """Raw request bytes. `headers` is a sequence of (name, value) or raw b"line" items.

    A `Host` header is added first for HTTP/1.1 unless host is None. No Content-Length is
    added: tests state framing explicitly."""
    lines = ["%s %s %s" % (method, target, version)]
    if host is not None and version == "HTTP/1.1":
        lines.append("Host: %s" % host)
    out = "\r\n".join(lines).encode("latin-1") + b"\r\n"
    for h in headers:
        if isinstance(h, (bytes, bytearray)):
            out += bytes(h) + b"\r\n"
        else:
            out += ("%s: %s\r\n" % h).encode("latin-1")
    out += b"\r\n"
    if isinstance(body, str):
        body = body.encode("utf-8")
    return out + body


def get(target, *headers, version="HTTP/1.1"):
    return request("GET", target, headers=headers, version=version)


def chunked(*pieces, trailers=b""):
    """Chunked encoding of `pieces` (bytes/str), terminated by the last chunk."""
    out = b""
    for p in pieces:
        if isinstance(p, str):
            p = p.encode("utf-8")
        out += b"%x\r\n" % len(p) + p + b"\r\n"
    return out + b"0\r\n" + trailers + b"\r\n"


# ----------------------------------------------------------------------------------------
# Responses

class Response:
    def __init__(self, version, status, reason, headers, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers          # list of (name, value) as str, in order
        self.raw_head = raw_head        # bytes up to and including the blank line
        self.body = b""
        self.chunks = None              # list of chunk payloads when chunked
        self.trailers = []
        self.framing = None             # "length", "chunked", "eof" or "none"

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def has_token(self, name, token):
        """True if header `name` contains the comma-separated token (case-insensitive)."""
        token = token.lower()
        for v in self.header_all(name):
            if token in [t.strip().lower() for t in v.split(",")]:
                return True
        return False

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise AssertionError("response body is not JSON (%s): %r" % (e, self.body[:300]))

    def __repr__(self):
        body = self.body if len(self.body) <= 300 else self.body[:300] + b"..."
        return "<Response %s %s %r headers=%r body=%r>" % (
            self.version, self.status, self.reason, self.headers, body)


STATUS_RE = re.compile(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$")


class Conn:
    """A client TCP connection with a receive buffer, able to read consecutive responses."""

    def __init__(self, host, port, timeout=IO_TIMEOUT):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.reset = False

    # -- context manager ---------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Close with SO_LINGER 0: the peer receives an RST instead of a FIN."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    # -- sending -----------------------------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.settimeout(self.timeout)
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise ResponseTimeout("sending %d bytes did not complete within %.1fs"
                                  % (len(data), self.timeout))

    def send_slowly(self, data, step=1, pause=0.001):
        """Send `data` in pieces of `step` bytes with a pause between them."""
        for i in range(0, len(data), step):
            self.send(data[i:i + step])
            if pause:
                time.sleep(pause)

    # -- receiving ---------------------------------------------------------------------
    def _recv_more(self, deadline, what):
        """Append received bytes to the buffer. Returns False at EOF (or reset)."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ResponseTimeout("timed out waiting for %s; received so far: %r"
                                  % (what, bytes(self.buf[:500])))
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise ResponseTimeout("timed out waiting for %s; received so far: %r"
                                  % (what, bytes(self.buf[:500])))
        except ConnectionResetError:
            self.reset = True
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def readable(self, timeout):
        """True if data (or EOF) is available within `timeout` seconds."""
        if self.buf or self.eof:
            return True
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)

    def _take_line(self, deadline, what):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if not self._recv_more(deadline, what):
                raise ConnectionClosed("connection closed%s in the middle of %s; pending %r"
                                       % (" (reset)" if self.reset else "", what,
                                          bytes(self.buf[:500])))

    def _take_exact(self, n, deadline, what):
        while len(self.buf) < n:
            if not self._recv_more(deadline, what):
                raise ConnectionClosed("connection closed%s after %d of %d bytes of %s"
                                       % (" (reset)" if self.reset else "", len(self.buf),
                                          n, what))
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_response(self, head=False, timeout=None):
        """Read one complete response (1xx responses are returned as such).

        head=True: the request was HEAD, so the response has no body whatever its headers."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        # Header block
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if not self._recv_more(deadline, "a response header block"):
                if not self.buf:
                    raise ConnectionClosed("connection closed%s before any response"
                                           % (" (reset)" if self.reset else ""))
                raise ConnectionClosed("connection closed%s inside a response header block: %r"
                                       % (" (reset)" if self.reset else "",
                                          bytes(self.buf[:500])))
        raw_head = bytes(self.buf[:end + 4])
        del self.buf[:end + 4]
        lines = raw_head[:-4].split(b"\r\n")
        m = STATUS_RE.match(lines[0])
        if not m:
            raise ProtocolError("bad status line %r" % lines[0])
        headers = []
        for line in lines[1:]:
            if b":" not in line or line[:1] in (b" ", b"\t"):
                raise ProtocolError("bad response header line %r in %r" % (line, raw_head))
            k, _, v = line.partition(b":")
            if k != k.strip() or not k:
                raise ProtocolError("bad response header name %r" % line)
            headers.append((k.decode("latin-1"), v.strip(b" \t").decode("latin-1")))
        resp = Response(m.group(1).decode(), int(m.group(2)),
                        (m.group(3) or b"").decode("latin-1"), headers, raw_head)

        te = resp.header_all("Transfer-Encoding")
        cl = resp.header_all("Content-Length")
        if head or 100 <= resp.status < 200 or resp.status in (204, 304):
            resp.framing = "none"
            return resp
        if te:
            codings = [c.strip().lower() for c in ",".join(te).split(",")]
            if codings[-1] != "chunked":
                raise ProtocolError("response Transfer-Encoding %r without final chunked" % te)
            if cl:
                raise ProtocolError("response has both Transfer-Encoding and Content-Length")
            resp.framing = "chunked"
            resp.chunks = []
            body = bytearray()
            while True:
                size_line = self._take_line(deadline, "a chunk-size line")
                size_txt = size_line.split(b";")[0].strip()
                if not re.match(rb"^[0-9A-Fa-f]+$", size_txt):
                    raise ProtocolError("bad chunk-size line in response: %r" % size_line)
                size = int(size_txt, 16)
                if size == 0:
                    break
                data = self._take_exact(size, deadline, "chunk data")
                crlf = self._take_exact(2, deadline, "CRLF after chunk data")
                if crlf != b"\r\n":
                    raise ProtocolError("chunk data not followed by CRLF: %r" % crlf)
                resp.chunks.append(data)
                body += data
            while True:
                line = self._take_line(deadline, "the trailer section")
                if not line:
                    break
                resp.trailers.append(line)
            resp.body = bytes(body)
            return resp
        if cl:
            if len(set(cl)) != 1 or not cl[0].isdigit():
                raise ProtocolError("bad response Content-Length %r" % cl)
            resp.framing = "length"
            resp.body = self._take_exact(int(cl[0]), deadline, "the response body")
            return resp
        resp.framing = "eof"
        resp.body = self.read_until_eof(timeout=max(0.0, deadline - time.monotonic()))
        return resp

    def read_until_eof(self, timeout=None):
        """Everything until the server closes the connection (buffered bytes included).

        Raises ResponseTimeout if the connection is still open after `timeout`."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while self._recv_more(deadline, "the server to close the connection"):
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return data


# ----------------------------------------------------------------------------------------
# Checks shared by the test files

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
IMF_FIXDATE_RE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$")


def parse_imf_fixdate(value):
    """Seconds since the epoch for an RFC 7231 IMF-fixdate, or None if malformed."""
    m = IMF_FIXDATE_RE.match(value or "")
    if not m:
        return None
    day, month = int(m.group(2)), MONTHS.index(m.group(3)) + 1
    year, hh, mm, ss = int(m.group(4)), int(m.group(5)), int(m.group(6)), int(m.group(7))
    try:
        tm = time.struct_time((year, month, day, hh, mm, ss, 0, 0, 0))
        ts = calendar.timegm(tm)
        real = time.gmtime(ts)
    except (ValueError, OverflowError):
        return None
    if (real.tm_year, real.tm_mon, real.tm_mday) != (year, month, day):
        return None
    if DAYS[real.tm_wday] != m.group(1):
        return None
    return ts


class ServerTestCase(unittest.TestCase):
    """Base class: one server per test class, started with FLAGS.

    tearDown checks the server is still running (a crash fails the test that caused it);
    tearDownClass stops it with SIGTERM and requires exit status 0."""

    FLAGS = ()
    server = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = DemoServer(*cls.FLAGS).start()

    @classmethod
    def tearDownClass(cls):
        srv, cls.server = cls.server, None
        if srv is not None:
            try:
                rc = srv.stop()
            except AssertionError:
                srv.kill()
                raise
            if rc != 0:
                raise AssertionError("server %r exited with status %s after SIGTERM\n"
                                     "stderr:\n%s" % (cls.FLAGS, rc, srv.stderr_tail()))
        super().tearDownClass()

    def tearDown(self):
        if self.server is not None and not self.server.alive():
            self.fail("the server died during this test (status %s)\nstderr:\n%s"
                      % (self.server.proc.returncode, self.server.stderr_tail()))

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before and self.server is not None:
            sys.stderr.write("\n--- server stderr (tail) for %s ---\n%s\n--- end ---\n"
                             % (self.id(), self.server.stderr_tail(2000)))
        return out

    # -- helpers -----------------------------------------------------------------------

    def connect(self, timeout=IO_TIMEOUT):
        c = self.server.connect(timeout=timeout)
        self.addCleanup(c.close)
        return c

    def exchange(self, data, head=False, timeout=None):
        """New connection, send `data`, return (conn, first response)."""
        c = self.connect()
        c.send(data)
        return c, c.read_response(head=head, timeout=timeout)

    def assertDate(self, resp, sent):
        date = resp.header("Date")
        self.assertIsNotNone(date, "no Date header in response to %r: %r" % (sent, resp))
        ts = parse_imf_fixdate(date)
        self.assertIsNotNone(ts, "Date %r is not an IMF-fixdate (response to %r)" % (date, sent))
        self.assertLess(abs(ts - time.time()), 5,
                        "Date %r is more than 5s from now (response to %r)" % (date, sent))

    def assertFramed(self, resp, sent):
        """A final response carries Content-Length or chunked framing."""
        self.assertIn(resp.framing, ("length", "chunked"),
                      "response to %r has neither Content-Length nor chunked framing: %r"
                      % (sent, resp))

    def assertJsonError(self, resp, status, sent):
        if isinstance(status, int):
            status = (status,)
        self.assertIn(resp.status, status, "sent %r, got %r" % (sent, resp))
        ctype = (resp.header("Content-Type") or "").split(";")[0].strip().lower()
        self.assertEqual(ctype, "application/json",
                         "error response to %r must be application/json: %r" % (sent, resp))
        doc = resp.json()
        self.assertIsInstance(doc, dict, "error body for %r is not an object: %r" % (sent, doc))
        self.assertIn("detail", doc, "error body for %r has no 'detail': %r" % (sent, doc))
        self.assertDate(resp, sent)
        self.assertFramed(resp, sent)

    def assertClosesAfter(self, conn, resp, sent, timeout=3.0):
        """Response says Connection: close and the server then closes with nothing more."""
        self.assertTrue(resp.has_token("Connection", "close"),
                        "response to %r must carry Connection: close: %r" % (sent, resp))
        rest = conn.read_until_eof(timeout)
        self.assertEqual(rest, b"", "after the %d response to %r the server sent more bytes "
                         "instead of closing" % (resp.status, sent))

    def assertStillOpen(self, conn, sent):
        """The connection still serves a request after `sent` was answered."""
        probe = get("/hello/probe")
        try:
            conn.send(probe)
            resp = conn.read_response()
        except (ConnectionClosed, OSError) as e:
            self.fail("connection unusable after the response to %r: %s" % (sent, e))
        self.assertEqual(resp.status, 200, "follow-up after %r: %r" % (sent, resp))
        self.assertEqual(resp.json(), {"hello": "probe"}, "follow-up after %r" % (sent,))
