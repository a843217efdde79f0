"""Config files of immersive-demo (through im_main): layers and their order, errors at start
with their places, hot reload (a good file, a broken file keeping the running config, 100
quick edits, a rename over the file), a live limit and the log level changing without a
restart, a restart-only key saying so, GET /manage/config, and --print-default-config /
--check-config. Python's own tomllib reads what the server prints, as a second reader."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server import DemoServer, demo_binary, request  # noqa: E402


def write(path, text):
    """Writes a new file beside path and renames it over path, as editors do."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_in_place(path, text):
    with open(path, "w") as f:
        f.write(text)


def echo_status(srv, n):
    """Status of POST /echo with an n-byte body."""
    c = srv.connect()
    try:
        c.send(request("POST", "/echo", [("Content-Type", "text/plain"),
                                          ("Content-Length", str(n))], b"a" * n))
        return c.read_response().status
    finally:
        c.close()


def wait_for(cond, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


class ConfigTestCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="im-config-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.cfg = os.path.join(self.dir, "config.toml")
        self.srv = None

    def tearDown(self):
        if self.srv is not None:
            alive = self.srv.alive()
            rc = self.srv.stop()
            self.assertTrue(alive, "the server died:\n" + self.srv.stderr_tail())
            self.assertEqual(rc, 0, self.srv.stderr_tail())

    def start(self, *flags, env=None):
        old = os.environ.copy()
        if env:
            os.environ.update(env)
        try:
            self.srv = DemoServer(*flags).start()
        finally:
            os.environ.clear()
            os.environ.update(old)
        return self.srv

    def run_demo(self, *args, env=None, cwd=None):
        e = os.environ.copy()
        e.pop("IMMERSIVE_CONFIG", None)
        e.update(env or {})
        return subprocess.run([demo_binary()] + list(args), stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=10, env=e, cwd=cwd or self.dir)

    def stderr_count(self, text):
        return self.srv.stderr_text().count(text)

    def wait_reloads(self, n, timeout=5.0):
        """Waits until the server logged n reload attempts (good or refused) in all."""
        def seen():
            t = self.srv.stderr_text()
            return t.count("config: reloaded") + t.count("running configuration is kept") >= n
        wait_for(seen, timeout, "%d reloads; stderr:\n%s" % (n, self.srv.stderr_tail()))


class StartTests(ConfigTestCase):
    def test_file_sets_a_limit_and_a_flag_beats_it(self):
        write(self.cfg, "[server.limits]\nmax_body_bytes = 100\n")
        srv = self.start("--config", self.cfg)
        self.assertEqual(echo_status(srv, 100), 200)
        self.assertEqual(echo_status(srv, 101), 413)
        srv.stop()
        self.srv = None
        srv = self.start("--config", self.cfg, "--max-body-bytes", "50")
        self.assertEqual(echo_status(srv, 51), 413)
        self.assertEqual(echo_status(srv, 50), 200)

    def test_later_files_win_and_env_comes_first(self):
        one = os.path.join(self.dir, "one.toml")
        write(one, "[server.limits]\nmax_body_bytes = 10\nmax_headers = 50\n")
        write(self.cfg, "[server.limits]\nmax_body_bytes = 20\n")
        srv = self.start("--config", self.cfg, env={"IMMERSIVE_CONFIG": one})
        self.assertEqual(echo_status(srv, 20), 200)   # --config beats IMMERSIVE_CONFIG
        self.assertEqual(echo_status(srv, 21), 413)
        cfg = json.loads(self.http_get(srv, "/manage/config"))
        self.assertEqual(cfg["server"]["limits"]["max_headers"], 50)  # the env file still counts

    def http_get(self, srv, path):
        c = srv.connect()
        try:
            c.send(request("GET", path))
            r = c.read_response()
            self.assertEqual(r.status, 200, r.body)
            return r.body
        finally:
            c.close()

    def test_config_toml_in_the_working_directory(self):
        write(self.cfg, "[server.limits]\nmax_body_bytes = 7\n")
        p = self.run_demo("--check-config", cwd=self.dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        write(self.cfg, "[server.limits]\nmax_body_bytes = 'seven'\n")
        p = self.run_demo("--check-config", cwd=self.dir)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"config.toml:2:1: 'server.limits.max_body_bytes' must be an integer, "
                      b"not a string", p.stderr)

    def test_unknown_key_and_wrong_type_refuse_to_start(self):
        write(self.cfg, "[server]\nport = 0\n\n[server.limits]\nmax_body_byts = 5\n")
        p = self.run_demo("--config", self.cfg)
        self.assertEqual(p.returncode, 2, p.stdout)
        self.assertIn(self.cfg.encode() + b":5:1: unknown key 'server.limits.max_body_byts' "
                      b"(did you mean 'server.limits.max_body_bytes'?)", p.stderr)
        write(self.cfg, "[executor]\nworkers = true\n")
        p = self.run_demo("--config", self.cfg)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b":2:1: 'executor.workers' must be an integer, not a boolean", p.stderr)
        write(self.cfg, "[server]\nport = 70000\n")
        p = self.run_demo("--config", self.cfg)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"'server.port' must be an integer from 0 to 65535", p.stderr)
        write(self.cfg, "[server]\nport = \n")
        p = self.run_demo("--config", self.cfg)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"config.toml:2:8: expected a value", p.stderr)
        p = self.run_demo("--config", os.path.join(self.dir, "missing.toml"))
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"missing.toml: No such file or directory", p.stderr)

    def test_print_default_config_reads_back(self):
        p = self.run_demo("--print-default-config")
        self.assertEqual(p.returncode, 0, p.stderr)
        doc = tomllib.loads(p.stdout.decode())
        self.assertEqual(doc["server"]["port"], 8000)
        self.assertEqual(doc["server"]["limits"]["max_body_bytes"], 1 << 20)
        self.assertEqual(doc["server"]["timeouts"]["header_ms"], 10000)
        self.assertEqual(doc["executor"]["queue_capacity"], 1024)
        self.assertEqual(doc["logging"]["level"], "info")
        self.assertIn("modules", doc)
        # and the server itself takes it as a config file
        write(self.cfg, p.stdout.decode())
        q = self.run_demo("--check-config", "--config", self.cfg)
        self.assertEqual(q.returncode, 0, q.stderr)

    def test_default_config_is_shipped_beside_the_program(self):
        shipped = os.path.join(os.path.dirname(demo_binary()), "default_config.toml")
        self.assertTrue(os.path.exists(shipped), "the build writes default_config.toml")
        with open(shipped) as f:
            text = f.read()
        self.assertEqual(text, self.run_demo("--print-default-config").stdout.decode())
        doc = tomllib.loads(text)
        self.assertIn("lab", doc)  # the modules' tables too
        self.assertEqual(doc["functions"]["sleep"]["timeout_ms"], 30000)

    def test_set_any_key(self):
        srv = self.start("--set", "server.limits.max_body_bytes=30")
        self.assertEqual(echo_status(srv, 31), 413)
        p = self.run_demo("--set", "server.nope=1", "--check-config")
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"unknown key 'server.nope'", p.stderr)


class ReloadTests(ConfigTestCase):
    def setUp(self):
        super().setUp()
        write(self.cfg, "[server.limits]\nmax_body_bytes = 100\n")
        self.start("--config", self.cfg)

    def test_live_limit_changes_without_restart(self):
        self.assertEqual(echo_status(self.srv, 150), 413)
        write(self.cfg, "[server.limits]\nmax_body_bytes = 200\n")
        self.wait_reloads(1)
        wait_for(lambda: echo_status(self.srv, 150) == 200, what="the new limit")
        self.assertEqual(echo_status(self.srv, 201), 413)
        # written in place (no rename) is followed as well
        write_in_place(self.cfg, "[server.limits]\nmax_body_bytes = 100\n")
        self.wait_reloads(2)
        wait_for(lambda: echo_status(self.srv, 150) == 413, what="the limit back")

    def test_broken_file_keeps_the_running_config(self):
        write(self.cfg, "[server.limits]\nmax_body_bytes = 100\nmax_body_bytes = 3\n")
        self.wait_reloads(1)
        err = self.srv.stderr_text()
        self.assertIn("config.toml:3:1: duplicate key 'max_body_bytes' (the running "
                      "configuration is kept)", err)
        self.assertEqual(echo_status(self.srv, 100), 200)
        write(self.cfg, "[server.limits]\nmax_body_bytes = 'x'\n")
        self.wait_reloads(2)
        self.assertIn("'server.limits.max_body_bytes' must be an integer, not a string",
                      self.srv.stderr_text())
        self.assertEqual(echo_status(self.srv, 100), 200)
        self.assertEqual(echo_status(self.srv, 101), 413)
        write(self.cfg, "[server.limits]\nmax_body_bytes = 300\n")
        self.wait_reloads(3)
        wait_for(lambda: echo_status(self.srv, 300) == 200, what="a good file after bad ones")

    def test_restart_only_key_says_so(self):
        port = self.srv.port
        # the port comes from a flag (--port 0), which beats the file: no change to report
        write(self.cfg, "[server]\nport = 1\nloops = 1\n[executor]\nqueue_capacity = 5\n"
              "[server.limits]\nmax_body_bytes = 100\n")
        self.wait_reloads(1)
        err = self.srv.stderr_text()
        self.assertNotIn("'server.port' changed", err)
        self.assertIn("'server.loops' changed: it needs a restart", err)
        self.assertIn("'executor.queue_capacity' changed: it needs a restart", err)
        self.assertEqual(self.srv.port, port)
        self.assertEqual(echo_status(self.srv, 10), 200)  # still serving where it was

    def test_log_level_is_live(self):
        # the level applies before the reload is logged: at warn, no "reloaded" line
        write(self.cfg, "[logging]\nlevel = 'warn'\n[server.limits]\nmax_body_bytes = 101\n")
        wait_for(lambda: echo_status(self.srv, 101) == 200, what="the first reload")
        self.assertEqual(self.stderr_count("config: reloaded"), 0, "info logged at warn")
        write(self.cfg, "[logging]\nlevel = 'info'\n[server.limits]\nmax_body_bytes = 102\n")
        wait_for(lambda: echo_status(self.srv, 102) == 200, what="the second reload")
        wait_for(lambda: self.stderr_count("config: reloaded") == 1, what="info lines again")

    def test_function_limits_are_live(self):
        """functions.<name>.timeout_ms and .max_concurrency change without a restart."""
        import http.client
        def call(path, seconds):
            c = http.client.HTTPConnection(self.srv.host, self.srv.port, timeout=10)
            try:
                c.request("POST", path, body=json.dumps({"seconds": seconds}),
                          headers={"Content-Type": "application/json"})
                r = c.getresponse()
                return r.status, json.loads(r.read() or b"null")
            finally:
                c.close()
        self.assertEqual(call("/v1/demo/slow", 0.3)[0], 200)  # its table says 1000 ms
        write(self.cfg, "[server.limits]\nmax_body_bytes = 100\n"
              "[functions.slow]\ntimeout_ms = 100\n")
        wait_for(lambda: call("/v1/demo/slow", 0.3)[0] == 504, what="the shorter time limit")
        write(self.cfg, "[server.limits]\nmax_body_bytes = 100\n"
              "[functions.slow]\ntimeout_ms = 0\n")  # 0: none
        wait_for(lambda: call("/v1/demo/slow", 1.2)[0] == 200, what="no time limit")
        p = self.run_demo("--config", self.cfg, "--set", "functions.slow.timeout = 5",
                          "--check-config")
        self.assertEqual(p.returncode, 2)
        p = self.run_demo("--set", "functions.slo.timeout_ms=5", "--check-config")
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"unknown key 'functions.slo' (did you mean 'functions.slow'?)", p.stderr)

    def test_shorter_idle_timeout_reaches_waiting_connections(self):
        c = self.srv.connect()
        c.send(request("GET", "/plaintext"))
        self.assertEqual(c.read_response().status, 200)  # now idle, under the 60 s default
        write(self.cfg, "[server.limits]\nmax_body_bytes = 100\n[server.timeouts]\nidle_ms = 300\n")
        self.wait_reloads(1)
        t0 = time.monotonic()
        c.read_until_eof(timeout=5)  # closed by the server, not after 60 s
        self.assertLess(time.monotonic() - t0, 3.0)

    def test_a_task_keeps_the_time_limit_it_was_accepted_with(self):
        import http.client
        write(self.cfg, "[server.limits]\nmax_body_bytes = 100\n[functions.slow]\ntimeout_ms = 400\n")
        self.wait_reloads(1)
        c = http.client.HTTPConnection(self.srv.host, self.srv.port, timeout=10)
        c.request("POST", "/v1/demo/slow", body=b'{"seconds": 2}',
                  headers={"Content-Type": "application/json", "Prefer": "respond-async"})
        r = c.getresponse()
        task = json.loads(r.read())
        self.assertEqual(r.status, 202, task)
        write(self.cfg, "[server.limits]\nmax_body_bytes = 100\n[functions.slow]\ntimeout_ms = 0\n")
        self.wait_reloads(2)
        c.request("GET", "/tasks/%s/result" % task["task_id"], headers={"Prefer": "wait=5"})
        r = c.getresponse()
        doc = json.loads(r.read())
        self.assertEqual((r.status, doc.get("state")), (504, "TIMEOUT"), doc)
        self.assertEqual(echo_status(self.srv, 10), 200)  # the loop serves on
        c.close()

    def test_hundred_quick_edits(self):
        for i in range(100):
            write(self.cfg, "[server.limits]\nmax_body_bytes = %d\n" % (1000 + i))
        wait_for(lambda: echo_status(self.srv, 1099) == 200, what="the last edit")
        self.assertEqual(echo_status(self.srv, 1100), 413)
        cfg = json.loads(StartTests.http_get(self, self.srv, "/manage/config"))
        self.assertEqual(cfg["server"]["limits"]["max_body_bytes"], 1099)
        # every reload read a whole file: no error was logged
        self.assertNotIn("running configuration is kept", self.srv.stderr_text())

    def test_manage_config(self):
        body = StartTests.http_get(self, self.srv, "/manage/config")
        cfg = json.loads(body)
        self.assertEqual(cfg["server"]["limits"]["max_body_bytes"], 100)
        self.assertEqual(cfg["logging"]["level"], "info")
        self.assertIn("timeouts", cfg["server"])


if __name__ == "__main__":
    unittest.main()
