"""immersive as a package other projects consume: a small outside project (tests/package/app:
main.c and one annotated module) is configured, built and run in each of the three ways
README shows, and its endpoint is called over HTTP:
  - add_subdirectory(immersive) in the project's CMakeLists.txt,
  - FetchContent from the local checkout,
  - find_package(immersive 0.1 REQUIRED) against an install prefix made here with
    `cmake --install` (which also installs immersive.pc: a one-file program is then built with
    `cc plain.c $(pkg-config --cflags --libs immersive)`).
As a subproject immersive must build nothing of its own (no demo, tests or benchmarks).

Needs cmake, a C compiler, pkg-config and liburing-dev; the repository is IM_SOURCE_DIR (or
the checkout this file is in), scratch space under IM_PACKAGE_WORK (or a temporary folder)."""

import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.environ.get("IM_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
APP = os.path.join(HERE, "app")

HEAD = "cmake_minimum_required(VERSION 3.18)\nproject(outside LANGUAGES C)\n"
TAIL = ("add_executable(app main.c)\n"
        "immersive_add_service(app MODULES modules/jobs)\n")
WAYS = {
    "add_subdirectory": HEAD + 'add_subdirectory("%(repo)s" immersive)\n' + TAIL,
    "fetchcontent": HEAD + "include(FetchContent)\n"
                    'FetchContent_Declare(immersive SOURCE_DIR "%(repo)s")\n'
                    "FetchContent_MakeAvailable(immersive)\n" + TAIL,
    "find_package": HEAD + "find_package(immersive 0.1 REQUIRED)\n" + TAIL,
}


def run(cmd, cwd=None, env=None):
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if p.returncode:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (" ".join(cmd), p.returncode,
                                                          p.stdout[-4000:], p.stderr[-4000:]))
    return p.stdout


def serve(binary):
    """Starts binary, returns (process, port) once it printed its address."""
    proc = subprocess.Popen([binary], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    line = proc.stdout.readline() if ready else ""
    m = re.match(r"listening on http://127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        raise AssertionError("%s did not start: %r %s" % (binary, line, proc.stderr.read()))
    return proc, int(m.group(1))


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the outside program did not stop on SIGTERM")
    finally:
        proc.stdout.close()
        proc.stderr.close()


class PackageTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool in ("cmake", "cc", "pkg-config"):
            if not shutil.which(tool):
                raise unittest.SkipTest(tool + " is missing")
        base = os.environ.get("IM_PACKAGE_WORK")
        if base:
            shutil.rmtree(base, ignore_errors=True)
            os.makedirs(base)
            cls.work = base
        else:
            cls.tmp = tempfile.TemporaryDirectory()
            cls.work = cls.tmp.name
        cls.prefix = os.path.join(cls.work, "prefix")

    def build_app(self, way, env=None):
        src = os.path.join(self.work, way)
        shutil.copytree(APP, src)
        with open(os.path.join(src, "CMakeLists.txt"), "w") as f:
            f.write(WAYS[way] % {"repo": REPO})
        build = os.path.join(src, "build")
        run(["cmake", "-S", src, "-B", build], env=env)
        run(["cmake", "--build", build, "-j2"], env=env)
        return build

    def call_double(self, binary, what):
        proc, port = serve(binary)
        try:
            req = urllib.request.Request("http://127.0.0.1:%d/v1/jobs/double" % port,
                                         data=json.dumps({"n": 21}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                self.assertEqual((r.status, json.load(r)), (200, {"result": 42}), what)
            # /docs from the files the package brings (an install: share/immersive/docs)
            css = os.path.join(REPO, "third_party", "docs", "swagger-ui-dist", "swagger-ui.css")
            with urllib.request.urlopen("http://127.0.0.1:%d/docs/swagger-ui.css" % port,
                                        timeout=10) as r, open(css, "rb") as f:
                self.assertEqual((r.status, r.read()), (200, f.read()), what + ": /docs")
        finally:
            self.assertEqual(stop(proc), 0, what + ": exit status after SIGTERM")

    def assertBuiltNothingElse(self, build, what):
        built = set()
        for root, _, files in os.walk(build):
            for f in files:
                p = os.path.join(root, f)
                if os.access(p, os.X_OK) and not f.endswith((".sh", ".py")) and \
                        "CMakeFiles" not in p:
                    built.add(f)
        self.assertEqual(built, {"app"}, what + ": immersive built more than the library")

    def test_add_subdirectory(self):
        build = self.build_app("add_subdirectory")
        self.assertBuiltNothingElse(build, "add_subdirectory")
        self.call_double(os.path.join(build, "app"), "add_subdirectory")
        # Regression (issue 15): after a handler edit the generator runs once, not on every build
        src = os.path.join(os.path.dirname(build), "modules", "jobs")
        for f in os.listdir(src):
            if f.endswith(".c"):
                os.utime(os.path.join(src, f))
        first = run(["cmake", "--build", build, "-j2"])
        again = run(["cmake", "--build", build, "-j2"])
        self.assertIn("generating the routes", first)
        self.assertNotIn("generating the routes", again, "the generator ran again with nothing changed")

    def test_fetchcontent(self):
        build = self.build_app("fetchcontent")
        self.assertBuiltNothingElse(build, "FetchContent")
        self.call_double(os.path.join(build, "app"), "FetchContent")

    def install(self):
        if os.path.exists(os.path.join(self.prefix, "include", "immersive.h")):
            return
        build = os.path.join(self.work, "immersive-build")
        run(["cmake", "-S", REPO, "-B", build, "-DIM_BUILD_TESTS=OFF", "-DIM_BENCH=OFF",
             "-DCMAKE_INSTALL_PREFIX=" + self.prefix])
        run(["cmake", "--build", build])
        run(["cmake", "--install", build])

    def test_find_package(self):
        self.install()
        env = dict(os.environ, CMAKE_PREFIX_PATH=self.prefix)
        build = self.build_app("find_package", env=env)
        self.call_double(os.path.join(build, "app"), "find_package")

    def test_pkg_config(self):
        self.install()
        pcdir = [os.path.join(self.prefix, d, "pkgconfig") for d in ("lib", "lib64", "share")]
        env = dict(os.environ, PKG_CONFIG_PATH=":".join(pcdir))
        flags = run(["pkg-config", "--cflags", "--libs", "immersive"], env=env).split()
        self.assertIn("-I" + os.path.join(self.prefix, "include"), flags)
        self.assertIn("-luring", flags)
        gen = run(["pkg-config", "--variable=generator", "immersive"], env=env).strip()
        self.assertTrue(os.access(gen, os.X_OK), "the generator %r is installed" % gen)
        exe = os.path.join(self.work, "plain")
        run(["cc", "-O1", "-o", exe, os.path.join(APP, "plain.c")] + flags)
        proc, port = serve(exe)
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/hello" % port, timeout=10) as r:
                self.assertEqual((r.status, r.read()), (200, b"Hello from pkg-config"))
        finally:
            self.assertEqual(stop(proc), 0)


if __name__ == "__main__":
    unittest.main()
