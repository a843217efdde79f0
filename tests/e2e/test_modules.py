"""Modules of immersive-demo (modules/lab, modules/legacy): switched on and off by config
(routes, /openapi.json, /functions), init in order and fini in reverse, their tables read at
start and live, a private executor (.executor), a module marked serial, a resource loaded once
under 50 concurrent calls, temp directories per task and cleaned at start and exit, and a
shutdown while the private executor still works (under ASan in that configuration)."""

import concurrent.futures
import http.client
import json
import os
import shutil
import signal
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server import DemoServer  # noqa: E402
from test_config import wait_for, write  # noqa: E402


class ModuleTestCase(unittest.TestCase):
    CONFIG = ""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="im-modules-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.cfg = os.path.join(self.dir, "config.toml")
        self.temp = os.path.join(self.dir, "temp")
        write(self.cfg, "[paths]\ncache = '%s/cache'\ntemp = '%s'\ndata = '%s/data'\n%s"
              % (self.dir, self.temp, self.dir, self.CONFIG))
        self.srv = None
        self.stopped = False

    def stop(self, sig=signal.SIGTERM):
        """Stops the server (the test then reads what it logged); its exit status."""
        self.stopped = True
        return self.srv.stop(sig)

    def tearDown(self):
        if self.srv is not None and not self.stopped:
            alive = self.srv.alive()
            rc = self.stop()
            self.assertTrue(alive, "the server died:\n" + self.srv.stderr_tail())
            self.assertEqual(rc, 0, self.srv.stderr_tail())

    def start(self):
        self.srv = DemoServer("--config", self.cfg).start()
        return self.srv

    def call(self, method, path, body=None, timeout=10):
        c = http.client.HTTPConnection(self.srv.host, self.srv.port, timeout=timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            c.request(method, path, body=data,
                      headers={"Content-Type": "application/json"} if data is not None else {})
            r = c.getresponse()
            text = r.read()
            return r.status, (json.loads(text) if text else None)
        finally:
            c.close()


class AllOnTests(ModuleTestCase):
    CONFIG = "[lab]\ngreeting = 'bonjour'\n"

    def test_init_order_table_and_executors(self):
        srv = self.start()
        err = srv.stderr_text()
        self.assertIn("lab: init (greeting 'bonjour', 2 gpu workers)", err)
        self.assertLess(err.index("lab: init"), err.index("legacy: init"), "init in order")
        self.assertLess(err.index("legacy: init"), err.index("listening on"), "init before serving")
        self.assertIn("modules: math, text, geo, demo, lab, legacy", err)
        self.assertEqual(self.call("GET", "/v1/lab/greet"), (200, {"at_start": "bonjour", "now": "bonjour"}))
        st, body = self.call("POST", "/v1/lab/gpu", {"ms": 1})
        self.assertEqual(st, 200)
        self.assertRegex(body["result"], r"^lab-gpu-[01]$")      # the module's own executor
        self.assertEqual(self.call("POST", "/v1/lab/one_at_a_time", {}), (200, {"result": "im-serial-0"}))
        st, body = self.call("POST", "/v1/legacy/bump", {})        # .serial module, no .mode
        self.assertEqual((st, body["thread"]), (200, "im-serial-0"))
        self.assertEqual(self.call("GET", "/v1/legacy/version"), (200, {"result": "1.0"}))
        rc = self.stop()
        self.assertEqual(rc, 0, srv.stderr_tail())
        err = srv.stderr_text()
        self.assertLess(err.index("legacy: fini"), err.index("lab: fini"), "fini in reverse order")
        self.assertLess(err.index("stopped"), err.index("legacy: fini"), "fini after the last task")

    def test_openapi_and_functions_hold_every_module(self):
        self.start()
        st, doc = self.call("GET", "/openapi.json")
        self.assertEqual(st, 200)
        self.assertIn("/v1/legacy/bump", doc["paths"])
        self.assertIn("/v1/lab/predict", doc["paths"])
        self.assertIn("legacy", [t["name"] for t in doc["tags"]])
        self.assertIn("bump_result", doc["components"]["schemas"])
        st, fns = self.call("GET", "/functions")
        names = [f["name"] for f in (fns["functions"] if isinstance(fns, dict) else fns)]
        self.assertIn("bump", names)
        self.assertIn("gpu", names)

    def test_resource_loaded_once_under_50_concurrent_calls(self):
        self.start()
        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            got = list(pool.map(lambda i: self.call("POST", "/v1/lab/predict", {"i": i}), range(50)))
        for i, (st, body) in enumerate(got):
            self.assertEqual(st, 200, body)
            self.assertEqual(body["weight"], i * 0.5)
            self.assertEqual(body["loads"], 1, "the model was loaded more than once")
        self.stop()
        self.assertIn("lab: fini (model loaded 1 times)", self.srv.stderr_text())

    def test_temp_directories(self):
        stale = os.path.join(self.temp, "lab", "left-over")
        os.makedirs(stale)
        self.start()
        self.assertFalse(os.path.exists(stale), "temp/lab was not emptied at start")
        st, body = self.call("POST", "/v1/lab/scratch", {"text": "x"})
        self.assertEqual(st, 200, body)
        self.assertTrue(body["dir"].startswith(os.path.join(self.temp, "lab") + "/"), body)
        self.assertFalse(os.path.exists(body["dir"]), "the task's temp directory outlived it")
        self.assertTrue(os.path.isdir(body["cache"]), "the cache directory is kept")
        self.stop()
        self.assertFalse(os.path.exists(os.path.join(self.temp, "lab")), "temp/lab left at exit")
        self.assertTrue(os.path.isdir(body["cache"]))

    def test_live_table_value_and_restart_only_switch(self):
        self.start()
        with open(self.cfg) as f:
            text = f.read()
        write(self.cfg, text.replace("bonjour", "hej") + "[modules]\nlegacy = false\n")
        wait_for(lambda: self.call("GET", "/v1/lab/greet")[1]["now"] == "hej", what="the new greeting")
        self.assertEqual(self.call("GET", "/v1/lab/greet")[1]["at_start"], "bonjour")
        wait_for(lambda: "'modules.legacy' changed: it needs a restart" in self.srv.stderr_text(),
                 what="the restart message")
        self.assertEqual(self.call("POST", "/v1/legacy/bump", {})[0], 200, "still on until a restart")

    def test_shutdown_while_the_private_executor_works(self):
        srv = self.start()
        c = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
        c.request("POST", "/v1/lab/gpu", body=b'{"ms": 400}',
                  headers={"Content-Type": "application/json", "Prefer": "respond-async"})
        r = c.getresponse()
        body = r.read()
        self.assertEqual(r.status, 202, body)
        c.close()
        # a task still QUEUED at the signal ends CANCELLED: stop only once it runs
        tid = json.loads(body)["task_id"]
        wait_for(lambda: self.call("GET", "/tasks/" + tid)[1]["state"] == "RUNNING", 5,
                 "the task to run")
        rc = self.stop(signal.SIGTERM)
        self.assertEqual(rc, 0, srv.stderr_tail())
        err = srv.stderr_text()
        self.assertIn("1 SUCCEEDED", err)  # it finished within the deadline, then lab's fini
        self.assertLess(err.index("tasks at shutdown"), err.index("lab: fini"))
        self.assertNotIn("AddressSanitizer", err)


class SwitchedOffTests(ModuleTestCase):
    CONFIG = "[modules]\nlegacy = false\n"

    def test_off_module_registers_nothing(self):
        srv = self.start()
        err = srv.stderr_text()
        self.assertNotIn("legacy: init", err)
        self.assertIn("off: legacy", err)
        self.assertEqual(self.call("POST", "/v1/legacy/bump", {})[0], 404)
        self.assertEqual(self.call("GET", "/v1/legacy/version")[0], 404)
        st, doc = self.call("GET", "/openapi.json")
        self.assertEqual(st, 200)
        self.assertFalse([p for p in doc["paths"] if p.startswith("/v1/legacy")])
        self.assertNotIn("legacy", [t["name"] for t in doc["tags"]])
        self.assertNotIn("bump_result", doc["components"]["schemas"])
        self.assertIn("/v1/lab/gpu", doc["paths"])
        st, fns = self.call("GET", "/functions")
        names = [f["name"] for f in (fns["functions"] if isinstance(fns, dict) else fns)]
        self.assertNotIn("bump", names)
        self.assertIn("gpu", names)
        self.stop()
        self.assertNotIn("legacy: fini", srv.stderr_text())


class TableCheckTests(ModuleTestCase):
    def test_a_module_table_is_checked_against_its_defaults(self):
        import subprocess
        from server import demo_binary
        for extra, want in (("[lab]\ngreting = 'x'\n", "unknown key 'lab.greting' (did you mean 'lab.greeting'?)"),
                            ("[lab]\ngpu_workers = 'two'\n", "'lab.gpu_workers' must be an integer, not a string"),
                            ("[modules]\nlgeacy = false\n", "unknown key 'modules.lgeacy' (did you mean 'modules.legacy'?)")):
            write(self.cfg, extra)
            p = subprocess.run([demo_binary(), "--config", self.cfg, "--check-config"],
                               capture_output=True, timeout=10)
            self.assertEqual(p.returncode, 2, p.stdout)
            self.assertIn(want.encode(), p.stderr)


if __name__ == "__main__":
    unittest.main()
