"""Resource limits of immersive-demo and the options that set them: header block size and
count, body size, connection count, header/body/idle timeouts (with short values so the
file runs in seconds), robustness against peers that reset mid-request, and the
command-line contract for those options (--help, bad flags)."""

import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server import (ConnectionClosed, ServerTestCase, chunked, demo_binary,  # noqa: E402
                    get, request)

HELLO = b"Hello, World!"


def padded_get(total_len, target="/plaintext"):
    """A GET whose whole header block (request line .. final CRLF) is `total_len` bytes."""
    base = get(target, ("X-Pad", ""))
    pad = total_len - len(base)
    assert pad >= 0, "total_len too small"
    return get(target, ("X-Pad", "p" * pad))


# ----------------------------------------------------------------------------------------
class SizeLimitTests(ServerTestCase):
    """--max-header-bytes, --max-headers and --max-body-bytes."""

    FLAGS = ("--max-header-bytes", "1024", "--max-headers", "10", "--max-body-bytes", "1024")

    def assertRejectedAndClosed(self, c, r, status, sent):
        self.assertJsonError(r, status, sent)
        self.assertClosesAfter(c, r, sent)

    def test_header_block_under_limit_ok(self):
        sent = padded_get(900)
        self.assertEqual(len(sent), 900)
        c, r = self.exchange(sent)
        self.assertEqual((r.status, r.body), (200, HELLO),
                         "900-byte header block with --max-header-bytes 1024: %r" % r)
        self.assertStillOpen(c, "900-byte header block")

    def test_header_block_over_limit_431(self):
        sent = padded_get(1600)
        c, r = self.exchange(sent)
        self.assertRejectedAndClosed(c, r, 431, "1600-byte header block (limit 1024)")

    def test_unterminated_header_block_over_limit_431_at_once(self):
        # The blank line never comes: the server must not wait for it (nor for the
        # 10 s default header timeout) once the limit is passed.
        sent = b"GET /plaintext HTTP/1.1\r\nHost: t\r\n" + b"X-Long: " + b"a" * 1500
        c = self.connect()
        c.send(sent)
        r = c.read_response(timeout=3)
        self.assertRejectedAndClosed(c, r, 431, "1550 bytes of headers without the final CRLF")

    def test_many_short_headers_over_byte_limit_431(self):
        # Host + 8 + 1 = 10 lines (within --max-headers) but more than 1024 bytes.
        headers = [("X-H%d" % i, "v" * 50) for i in range(8)]
        headers += [("X-Big", "b" * 700)]
        sent = get("/plaintext", *headers)
        self.assertGreater(len(sent), 1024)
        c, r = self.exchange(sent)
        self.assertRejectedAndClosed(c, r, 431, "%d-byte header block in 10 lines" % len(sent))

    def test_request_line_over_limit_414(self):
        sent = get("/hello/" + "a" * 1200)
        c, r = self.exchange(sent)
        self.assertRejectedAndClosed(c, r, 414, "request line of %d bytes (limit 1024)"
                                     % len(sent.split(b"\r\n")[0]))

    def test_header_count_at_limit_ok(self):
        # Host + 9 = 10 header lines = --max-headers.
        sent = get("/plaintext", *[("X-H%d" % i, "v") for i in range(9)])
        c, r = self.exchange(sent)
        self.assertEqual((r.status, r.body), (200, HELLO),
                         "10 header lines with --max-headers 10: %r" % r)
        self.assertStillOpen(c, "10 header lines")

    def test_header_count_over_limit_431(self):
        for extra in (10, 60):  # Host + extra lines: 11 and 61
            sent = get("/plaintext", *[("X-H%d" % i, "v") for i in range(extra)])
            with self.subTest(lines=extra + 1):
                c, r = self.exchange(sent)
                self.assertRejectedAndClosed(c, r, 431, "%d header lines with --max-headers 10"
                                             % (extra + 1))

    def test_content_length_at_limit_ok(self):
        body = bytes(range(256)) * 4
        sent = request("POST", "/echo", [("Content-Length", "1024")], body)
        c, r = self.exchange(sent)
        self.assertEqual((r.status, r.body), (200, body),
                         "POST of exactly --max-body-bytes 1024: %r" % r)
        self.assertStillOpen(c, "POST of 1024 bytes")

    def test_content_length_over_limit_413_before_body(self):
        for length in (1025, 10 ** 9):
            head = request("POST", "/echo", [("Content-Length", str(length))])
            with self.subTest(length=length):
                c = self.connect()
                c.send(head)  # no body at all: the answer must not wait for it
                r = c.read_response(timeout=3)
                self.assertRejectedAndClosed(c, r, 413, "headers of a POST with Content-Length "
                                             "%d, no body (limit 1024)" % length)

    def test_chunked_at_limit_ok(self):
        body = b"a" * 1000 + b"b" * 24
        sent = request("POST", "/echo", [("Transfer-Encoding", "chunked")],
                       chunked(body[:1000], body[1000:]))
        c, r = self.exchange(sent)
        self.assertEqual((r.status, r.body), (200, body),
                         "chunked POST of exactly 1024 bytes: %r" % r)
        self.assertStillOpen(c, "chunked POST of 1024 bytes")

    def test_chunked_over_limit_413(self):
        # 1000 + 100 bytes and no last chunk: the sum passes the limit, the server must
        # answer without waiting for the end of the body.
        sent = (request("POST", "/echo", [("Transfer-Encoding", "chunked")])
                + b"3e8\r\n" + b"a" * 1000 + b"\r\n" + b"64\r\n" + b"b" * 100 + b"\r\n")
        c = self.connect()
        c.send(sent)
        r = c.read_response(timeout=3)
        self.assertRejectedAndClosed(c, r, 413, "chunked body of 1000+100 bytes (limit 1024)")

    def test_chunked_over_limit_small_chunks_413(self):
        sent = (request("POST", "/echo", [("Transfer-Encoding", "chunked")])
                + b"".join(b"8\r\n" + b"c" * 8 + b"\r\n" for _ in range(130)))  # 1040 bytes
        c = self.connect()
        c.send(sent)
        r = c.read_response(timeout=3)
        self.assertRejectedAndClosed(c, r, 413, "130 chunks of 8 bytes (limit 1024)")

    def test_peer_reset_mid_request_does_not_disturb_others(self):
        keeper = self.connect()
        keeper.send(get("/hello/keeper"))
        self.assertEqual(keeper.read_response().json(), {"hello": "keeper"})
        partials = [
            b"GET /plain",                                              # in the request line
            b"GET /plaintext HTTP/1.1\r\nHost: t\r\nX-A: ",             # in a header
            request("POST", "/echo", [("Content-Length", "100")], b"abc"),   # in a body
            request("POST", "/echo", [("Transfer-Encoding", "chunked")], b"a\r\nhel"),
            request("POST", "/echo", [("Expect", "100-continue"), ("Content-Length", "5")]),
            get("/delay?ms=150"),                                       # deferred in flight
            get("/stream?n=20&ms=20"),                                  # streaming response
            b"".join(get("/plaintext") for _ in range(50)),             # responses unread
        ]
        for rnd in range(3):
            for raw in partials:
                c = self.server.connect()
                c.send(raw)
                time.sleep(0.01)
                c.abort()
        time.sleep(0.4)  # let the deferred/streaming work finish against dead peers
        self.assertTrue(self.server.alive(), "server died after peers reset mid-request")
        keeper.send(get("/hello/keeper2"))
        r = keeper.read_response()
        self.assertEqual((r.status, r.json()), (200, {"hello": "keeper2"}),
                         "an unrelated keep-alive connection after peers reset: %r" % r)
        _, r = self.exchange(get("/plaintext"))
        self.assertEqual((r.status, r.body), (200, HELLO), "a new connection after resets")


# ----------------------------------------------------------------------------------------
class MaxConnsTests(ServerTestCase):
    """--max-conns: the connection past the limit is refused politely, others unaffected."""

    FLAGS = ("--max-conns", "3")

    def new_conn_status(self, name):
        """Open a connection, send one request; returns (conn, response)."""
        c = self.connect()
        try:
            c.send(get("/hello/" + name))
        except OSError:
            pass  # already refused and closed: the 503 should still be readable
        return c, c.read_response()

    def assertRefused(self, c, r, what):
        self.assertJsonError(r, 503, what)
        retry = r.header("Retry-After")
        self.assertTrue(retry and retry.strip(), "%s: 503 without Retry-After: %r" % (what, r))
        self.assertEqual(c.read_until_eof(3.0), b"", "%s: expected EOF after the 503" % what)

    def accepted_eventually(self, name, timeout=3.0):
        """A new connection that gets 200 (retrying while the server still counts closed
        connections); fails after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            c, r = self.new_conn_status(name)
            if r.status == 200:
                self.assertEqual(r.json(), {"hello": name})
                return c
            self.assertEqual(r.status, 503, "unexpected response %r" % r)
            c.close()
            if time.monotonic() > deadline:
                self.fail("new connection still refused %.1fs after others were closed"
                          % timeout)
            time.sleep(0.05)

    def test_every_refused_connection_is_answered(self):
        # Each loop keeps a small reserve of slots (16 here) for polite refusals that linger;
        # past the reserve, refused connections are still answered 503 (without a slot).
        held = []
        for i in range(3):
            held.append(self.accepted_eventually("h%d" % i))
        refused = []
        for i in range(60):
            c = self.connect()
            refused.append(c)
            try:
                c.send(get("/hello/r%d" % i))
            except OSError:
                pass  # refused and closed already: the 503 should still be readable
        for i, c in enumerate(refused):
            r = c.read_response()
            self.assertRefused(c, r, "refused connection %d of 60 (3 held, reserve used up)"
                               % (i + 1))
        for c in refused + held:
            c.close()

    def test_limit(self):
        first = []
        for i in range(3):
            c, r = self.new_conn_status("c%d" % i)
            self.assertEqual((r.status, r.json()), (200, {"hello": "c%d" % i}),
                             "connection %d of --max-conns 3: %r" % (i + 1, r))
            first.append(c)
        c4, r = self.new_conn_status("c3")
        self.assertRefused(c4, r, "4th connection with --max-conns 3")
        # The existing ones are unaffected.
        for i, c in enumerate(first):
            c.send(get("/hello/again%d" % i))
            r = c.read_response()
            self.assertEqual((r.status, r.json()), (200, {"hello": "again%d" % i}),
                             "connection %d after the 503 to another one: %r" % (i + 1, r))
        # Close two: two new connections are accepted again, the third is refused.
        first[0].close()
        first[1].close()
        new1 = self.accepted_eventually("new1")
        new2 = self.accepted_eventually("new2")
        c, r = self.new_conn_status("new3")
        self.assertRefused(c, r, "connection past the limit after closing two and opening two")
        for c, name in ((first[2], "old"), (new1, "n1"), (new2, "n2")):
            c.send(get("/hello/" + name))
            self.assertEqual(c.read_response().json(), {"hello": name},
                             "open connection %s at the end" % name)


# ----------------------------------------------------------------------------------------
class TimeoutTests(ServerTestCase):
    """--header-timeout-ms, --body-timeout-ms and --idle-timeout-ms with short values."""

    HEADER_S, BODY_S, IDLE_S = 0.4, 0.4, 0.6
    FLAGS = ("--header-timeout-ms", "400", "--body-timeout-ms", "400",
             "--idle-timeout-ms", "600")

    def wait_answer(self, c, what, limit=3.0):
        self.assertTrue(c.readable(limit), "%s: nothing from the server within %.1fs"
                        % (what, limit))
        return c.read_response()

    def test_slowloris_header_408(self):
        c = self.connect()
        payload = b"GET /plaintext HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 500
        t0 = time.monotonic()
        sent = 0
        while time.monotonic() - t0 < 4.0 and sent < len(payload):
            if c.readable(0.05):
                break
            try:
                c.send(payload[sent:sent + 1])
            except OSError:
                break
            sent += 1
        elapsed = time.monotonic() - t0
        what = "header sent 1 byte per 50ms (%d bytes over %.2fs), header timeout 400ms" % (
            sent, elapsed)
        self.assertGreater(sent, 4, what)
        self.assertLess(elapsed, 3.0, "%s: no 408 while bytes kept trickling in" % what)
        self.assertGreaterEqual(elapsed, self.HEADER_S - 0.1, "%s: answered too early" % what)
        r = c.read_response()
        self.assertJsonError(r, 408, what)
        self.assertClosesAfter(c, r, what)

    def test_incomplete_header_then_silence_408(self):
        c = self.connect()
        t0 = time.monotonic()
        c.send(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n")
        r = self.wait_answer(c, "half a header block then silence")
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, self.HEADER_S - 0.1, "408 after only %.3fs" % elapsed)
        self.assertJsonError(r, 408, "half a header block then silence")
        self.assertClosesAfter(c, r, "half a header block then silence")

    def test_body_timeout_content_length_408(self):
        c = self.connect()
        sent = request("POST", "/echo", [("Content-Length", "10")], b"abc")
        c.send(sent)
        t0 = time.monotonic()
        r = self.wait_answer(c, "3 of 10 body bytes then silence")
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, self.BODY_S - 0.1, "408 after only %.3fs" % elapsed)
        self.assertJsonError(r, 408, sent)
        self.assertClosesAfter(c, r, sent)

    def test_body_timeout_chunked_408(self):
        c = self.connect()
        sent = request("POST", "/echo", [("Transfer-Encoding", "chunked")], b"5\r\nhello\r\n3\r\nab")
        c.send(sent)
        t0 = time.monotonic()
        r = self.wait_answer(c, "partial chunked body then silence")
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, self.BODY_S - 0.1, "408 after only %.3fs" % elapsed)
        self.assertJsonError(r, 408, sent)
        self.assertClosesAfter(c, r, sent)

    def test_slow_but_steady_body_is_not_timed_out(self):
        # 8 body bytes 100ms apart: 0.8s in total but never 400ms of silence.
        c = self.connect()
        c.send(request("POST", "/echo", [("Content-Length", "8")]))
        for b in b"steadily":
            time.sleep(0.1)
            c.send(bytes([b]))
        r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"steadily"),
                         "body sent 1 byte per 100ms with --body-timeout-ms 400: %r" % r)

    def test_idle_keepalive_closed_without_response(self):
        c = self.connect()
        c.send(get("/hello/idle"))
        self.assertEqual(c.read_response().json(), {"hello": "idle"})
        t0 = time.monotonic()
        rest = c.read_until_eof(3.0)
        elapsed = time.monotonic() - t0
        self.assertEqual(rest, b"", "idle keep-alive connection got bytes instead of a plain "
                         "close (idle timeout 600ms, header timeout 400ms)")
        self.assertGreaterEqual(elapsed, self.IDLE_S - 0.15,
                                "idle connection closed after only %.3fs" % elapsed)

    def test_active_keepalive_outlives_timeouts(self):
        # Requests every 200ms for 1s: past all three timeouts in total, never idle.
        c = self.connect()
        for i in range(6):
            c.send(get("/hello/%d" % i))
            try:
                r = c.read_response()
            except ConnectionClosed as e:
                self.fail("keep-alive connection closed at request %d (200ms apart): %s"
                          % (i, e))
            self.assertEqual(r.json(), {"hello": str(i)}, "request %d, 200ms apart" % i)
            if i < 5:
                time.sleep(0.2)


# ----------------------------------------------------------------------------------------
class CommandLineTests(unittest.TestCase):
    """--help exits 0; an unknown flag or bad value for a limit exits 2 with a message."""

    def run_demo(self, *args):
        cmd = [demo_binary()] + list(args)
        try:
            return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, timeout=5)
        except subprocess.TimeoutExpired:
            self.fail("%r did not exit within 5s" % cmd)

    def test_help(self):
        p = self.run_demo("--help")
        self.assertEqual(p.returncode, 0, "--help: stderr %r" % p.stderr)
        for opt in (b"--max-conns", b"--max-header-bytes", b"--max-body-bytes",
                    b"--header-timeout-ms", b"--idle-timeout-ms", b"--shutdown-timeout-ms"):
            self.assertIn(opt, p.stdout, "--help output lacks %r" % opt)

    def test_bad_flags_exit_2(self):
        for args in (["--no-such-flag"], ["--max-conns", "abc"], ["--max-body-bytes", "-5"],
                     ["--header-timeout-ms", "1x"], ["--log-level", "loud"],
                     ["--max-headers"]):
            with self.subTest(args=args):
                p = self.run_demo(*(["--port", "0"] + args))
                self.assertEqual(p.returncode, 2, "%r: exit status %s, stdout %r"
                                 % (args, p.returncode, p.stdout))
                self.assertTrue(p.stderr.strip(), "%r: no error message on stderr" % args)


if __name__ == "__main__":
    unittest.main()
