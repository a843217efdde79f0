"""Events across processes: immersive-demo forks its IPC hub at start; this test is a second
process that joins it with the address the service logs (SOCK_SEQPACKET, abstract; first
message the group, then "topic NUL payload" per event). It hears the service's config.changed
after a reload, its own events reach the service's subscriber (demo.* is logged), and the hub
ignores SIGINT and ends when the service is killed with SIGKILL."""

import os
import re
import signal
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server import DemoServer  # noqa: E402
from test_config import wait_for, write  # noqa: E402


def hub_address(srv):
    m = re.search(r"events: hub @(\S+)", srv.stderr_text())
    if not m:
        raise AssertionError("the service logged no hub address:\n" + srv.stderr_tail())
    return "\0" + m.group(1)


def hub_pid(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        kids = [int(x) for x in f.read().split()]
    for k in kids:
        with open("/proc/%d/comm" % k) as f:
            if f.read().strip() == "im-hub":
                return k
    raise AssertionError("no im-hub child of %d (children %r)" % (pid, kids))


def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split()[2] == "Z"
    except FileNotFoundError:
        return True


class EventTests(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="im-events-")
        self.cfg = os.path.join(self.dir, "config.toml")
        write(self.cfg, "[server.limits]\nmax_body_bytes = 100\n")
        self.srv = DemoServer("--config", self.cfg).start()
        self.addCleanup(self.srv.kill)

    def join(self, group="events"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.settimeout(5)
        s.connect(hub_address(self.srv))
        s.send(group.encode())
        self.addCleanup(s.close)
        return s

    def test_events_both_ways(self):
        s = self.join()
        time.sleep(0.1)  # the hub has taken the group name
        write(self.cfg, "[server.limits]\nmax_body_bytes = 200\n")
        msg = s.recv(70000)
        topic, _, payload = msg.partition(b"\0")
        self.assertEqual(topic, b"config.changed")
        self.assertRegex(payload, rb'^\{"generation":\d+\}$')
        s.send(b"demo.hello\0from a second process")
        wait_for(lambda: "event demo.hello: from a second process" in self.srv.stderr_text(),
                 what="the service to hear the event")
        s.send(b"other.topic\0not for demo.*")
        s.send(b"demo.after\0x")
        wait_for(lambda: "event demo.after: x" in self.srv.stderr_text(), what="the second event")
        self.assertNotIn("other.topic", self.srv.stderr_text())
        # a member of another group hears nothing of this one
        other = self.join("elsewhere")
        time.sleep(0.1)
        s.send(b"demo.x\0y")
        other.settimeout(0.3)
        with self.assertRaises(socket.timeout):
            other.recv(100)
        self.assertEqual(self.srv.stop(), 0, self.srv.stderr_tail())

    def test_hub_ignores_sigint_and_ends_with_its_parent(self):
        hub = hub_pid(self.srv.proc.pid)
        os.kill(hub, signal.SIGINT)
        time.sleep(0.2)
        self.assertFalse(gone(hub), "the hub ended on SIGINT")
        self.srv.proc.kill()  # SIGKILL: no cleanup of its own runs
        self.srv.proc.wait(5)
        wait_for(lambda: gone(hub), timeout=3, what="the hub to end after its parent")

    def test_graceful_stop_ends_the_hub(self):
        hub = hub_pid(self.srv.proc.pid)
        self.assertEqual(self.srv.stop(signal.SIGINT), 0, self.srv.stderr_tail())
        wait_for(lambda: gone(hub), timeout=3, what="the hub to end")


if __name__ == "__main__":
    unittest.main()
