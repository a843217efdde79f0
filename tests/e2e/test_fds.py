"""test_fds.py — running out of file descriptors (EMFILE): the demo started with a limit of 64
open files keeps serving the connections it has, does not spin while the kernel refuses it new
ones, and accepts again once connections close."""
import os
import resource
import shutil
import socket
import time
import unittest

from server import DemoServer, demo_binary, get


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class OutOfDescriptorsTests(unittest.TestCase):
    def test_emfile(self):
        if not shutil.which("prlimit"):
            raise unittest.SkipTest("prlimit (util-linux) is missing")
        # prlimit sets the limit, then becomes the demo (same process)
        srv = DemoServer("--nofile=64:64", demo_binary(), "--loops", "1", "--log-level", "warn")
        srv.binary = shutil.which("prlimit")
        srv.start()
        socks = []
        try:
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            self.assertGreater(soft, 200, "the test itself needs descriptors")
            first = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            first.sendall(get("/plaintext"))
            self.assertTrue(first.recv(4096).startswith(b"HTTP/1.1 200"))
            # far more connections than the server has descriptors: the kernel queues them
            for _ in range(120):
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                socks.append(s)
            time.sleep(0.5)
            c0 = cpu_seconds(srv.proc.pid)
            time.sleep(1.0)
            busy = cpu_seconds(srv.proc.pid) - c0
            self.assertLess(busy, 0.3, f"the server burnt {busy:.2f} s of CPU in 1 s while out of "
                                       "descriptors: it spins on accept")
            # the connection it had still works
            first.sendall(get("/plaintext"))
            self.assertTrue(first.recv(4096).startswith(b"HTTP/1.1 200"), "old connection still served")
            self.assertIn("accept", srv.stderr_text(), "the refusal is logged")
            # free descriptors: the queued connections get served, in turn
            for s in socks[:80]:
                s.close()
            del socks[:80]
            served = 0
            deadline = time.monotonic() + 10
            for s in socks:
                s.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    s.sendall(get("/plaintext"))
                    if s.recv(4096).startswith(b"HTTP/1.1 200"):
                        served += 1
                except OSError:
                    pass
            self.assertGreater(served, 20, f"only {served} of {len(socks)} waiting connections "
                                           "were served after descriptors were freed")
        finally:
            for s in socks:
                s.close()
            rc = srv.stop()
            self.assertEqual(rc, 0, srv.stderr_tail())


if __name__ == "__main__":
    unittest.main()
