"""Half-closed clients (`printf ... | nc` and proxies shut their write side after the
requests): every complete request received before the FIN is answered, in order, then the
server closes. Also when the answers fill the output and reading pauses, when the FIN comes
while reading is paused, and when a request behind it is deferred or runs on an executor. A
client that closed for good is still noticed (a deferred request's owner is told)."""

import json
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server import Conn, ServerTestCase, get, request  # noqa: E402

HELLO = b"Hello, World!"


def read_final(conn, timeout=10):
    """The next final response (interim 1xx answers are skipped)."""
    while True:
        r = conn.read_response(timeout=timeout)
        if r.status >= 200:
            return r


class HalfCloseTests(ServerTestCase):

    def half_close(self, *parts, rcvbuf=None, pause_after_fin=0.0):
        """Sends the parts (bytes, or a number: seconds to wait), shuts the write side,
        returns the connection (nothing read yet)."""
        c = Conn(self.server.host, self.server.port, timeout=20)
        self.addCleanup(c.close)
        if rcvbuf:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        for p in parts:
            if isinstance(p, (int, float)):
                time.sleep(p)
            else:
                c.send(p)
        c.sock.shutdown(socket.SHUT_WR)
        if pause_after_fin:
            time.sleep(pause_after_fin)
        return c

    def assertAllAnswered(self, c, n, body=None, what=""):
        first = None
        for i in range(n):
            try:
                r = read_final(c)
            except AssertionError as e:
                self.fail("%s: answer %d of %d missing: %s" % (what, i + 1, n, e))
            self.assertEqual(r.status, 200, "%s: answer %d: %r" % (what, i + 1, r))
            if body is not None:
                self.assertEqual(r.body, body, "%s: answer %d" % (what, i + 1))
            elif first is None:
                first = r.body
            else:
                self.assertEqual(r.body, first, "%s: answer %d differs" % (what, i + 1))
        self.assertEqual(c.read_until_eof(10), b"", "%s: after the %d answers, the close"
                         % (what, n))

    def test_plaintext_pipelined(self):
        c = self.half_close(get("/plaintext") * 2000)
        self.assertAllAnswered(c, 2000, HELLO, "2000 x /plaintext")

    def test_large_answers_pipelined(self):
        # ~33 KB each: the output passes max_output_bytes, parsing waits for it to drain
        c = self.half_close(get("/openapi.json") * 300)
        self.assertAllAnswered(c, 300, what="300 x /openapi.json")

    def test_fin_while_reading_is_paused(self):
        # the client reads nothing for a while: the answers fill the socket and the output,
        # parsing waits, and the second half of the requests (more than max_header_bytes)
        # arrives while it waits, so reading pauses; the FIN then comes while it is paused
        # (seen by the poll that watches a paused connection), and the client reads after
        pad = ("X-Pad", "p" * 60)
        half = get("/openapi.json", pad) * 300
        self.assertGreater(len(half), 16384 * 1.5)
        c = self.half_close(half, 0.5, half, 0.3, rcvbuf=65536, pause_after_fin=0.5)
        self.assertAllAnswered(c, 600, what="600 x /openapi.json, FIN while paused")

    def test_deferred_behind_half_close(self):
        c = self.half_close(get("/delay?ms=200") + get("/plaintext"))
        r = read_final(c)
        self.assertEqual((r.status, r.json()), (200, {"slept_ms": 200}), repr(r))
        r = read_final(c)
        self.assertEqual((r.status, r.body), (200, HELLO), repr(r))
        self.assertEqual(c.read_until_eof(10), b"")

    def test_deferred_with_held_input_behind_half_close(self):
        # a deferred request with more than max_header_bytes pipelined behind it: reading
        # pauses; the FIN is seen by the poll; everything is answered once the delay ends
        pad = ("X-Pad", "p" * 60)
        later = get("/plaintext", pad) * 250
        self.assertGreater(len(later), 16384)
        c = self.half_close(get("/delay?ms=300") + later, pause_after_fin=0.1)
        r = read_final(c)
        self.assertEqual((r.status, r.json()), (200, {"slept_ms": 300}), repr(r))
        self.assertAllAnswered(c, 250, HELLO, "250 x /plaintext behind /delay")

    def test_long_deferred_behind_half_close_is_probed(self):
        # past 500 ms the server probes the half-closed peer with a 100 Continue (a peer that
        # closed for good answers it with a reset); one that still reads gets its answer
        c = self.half_close(get("/delay?ms=1200"))
        r = c.read_response(timeout=10)
        self.assertEqual(r.status, 100, "the probe first: %r" % r)
        r = c.read_response(timeout=10)
        self.assertEqual((r.status, r.json()), (200, {"slept_ms": 1200}), repr(r))
        self.assertEqual(c.read_until_eof(10), b"")

    def test_long_deferred_behind_half_close_http10(self):
        # no 1xx answer to an HTTP/1.0 client: it only gets its answer
        c = self.half_close(get("/delay?ms=1200", version="HTTP/1.0"))
        r = c.read_response(timeout=10)
        self.assertEqual((r.status, r.json()), (200, {"slept_ms": 1200}), repr(r))
        self.assertEqual(c.read_until_eof(10), b"")

    def test_executor_behind_half_close(self):
        body = json.dumps({"values": [1, 2, 3, 4]}).encode()
        req = request("POST", "/v1/math/stats",
                      [("Content-Type", "application/json"),
                       ("Content-Length", str(len(body)))], body)
        c = self.half_close(req + get("/plaintext"))
        r = read_final(c)
        self.assertEqual(r.status, 200, repr(r))
        self.assertEqual(r.json()["mean"], 2.5, repr(r))
        r = read_final(c)
        self.assertEqual((r.status, r.body), (200, HELLO), repr(r))
        self.assertEqual(c.read_until_eof(10), b"")

    def test_partial_request_at_fin_is_dropped(self):
        # what was received whole is answered; half a request can never complete: closed
        c = self.half_close(get("/plaintext") + b"GET /plain")
        r = read_final(c)
        self.assertEqual((r.status, r.body), (200, HELLO), repr(r))
        self.assertEqual(c.read_until_eof(5), b"")


if __name__ == "__main__":
    unittest.main()
