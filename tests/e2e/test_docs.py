"""test_docs.py — /docs (Swagger UI) and /redoc (ReDoc) without internet: the pages and the
files compiled into the demo (the same bytes as third_party/docs, the only outward address
replaced), ETag and If-None-Match, Cache-Control, gzip that zlib inflates to the same bytes,
HEAD, the licenses served beside the code, docs.enabled = false; then both pages in headless
Chromium (tests/browser, puppeteer-core) with every non-loopback request blocked: every
operation of the served OpenAPI document is listed on each, and one is executed from Swagger UI
with its live answer read. The browser part runs where IM_BROWSER=1 (the release
configuration: it exercises the pages, not more C code)."""
import http.client
import json
import os
import re
import subprocess
import tempfile
import unittest
import zlib

from server import ServerTestCase

HERE = os.path.dirname(os.path.abspath(__file__))
THIRD = os.path.join(HERE, "..", "..", "third_party", "docs")
FILES = {"/docs/swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
         "/docs/swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
         "/docs/LICENSE": "swagger-ui-dist/LICENSE",
         "/docs/NOTICE": "swagger-ui-dist/NOTICE",
         "/docs/swagger-ui-bundle.js.LICENSE.txt": "swagger-ui-dist/swagger-ui-bundle.js.LICENSE.txt",
         "/redoc/redoc.standalone.js": "redoc/redoc.standalone.js",
         "/redoc/LICENSE": "redoc/LICENSE",
         "/redoc/redoc.standalone.js.LICENSE.txt": "redoc/redoc.standalone.js.LICENSE.txt"}
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


def repo_bytes(path):
    with open(os.path.join(THIRD, FILES[path]), "rb") as f:
        return f.read()


class DocsTests(ServerTestCase):
    FLAGS = ("--loops", "1")

    def get(self, path, headers=None, method="GET"):
        c = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def test_pages(self):
        for path, script in (("/docs", "docs/swagger-ui-bundle.js"),
                             ("/redoc", "redoc/redoc.standalone.js")):
            status, h, body = self.get(path)
            self.assertEqual(status, 200, body)
            self.assertEqual(h["content-type"], "text/html; charset=utf-8")
            self.assertEqual(h["cache-control"], "no-cache")
            self.assertRegex(h["etag"], r'^"[0-9a-f]{16}"$')
            text = body.decode()
            self.assertIn("<title>immersive demo - ", text)
            self.assertIn(f'src="{script}"', text)
            self.assertNotRegex(text, r"https?://", "no outward address in the page")
            # every file the page names (relative to it) is served
            for ref in re.findall(r'(?:src|href)="([^":]+)"', text):
                st, _, _ = self.get("/" + ref)
                self.assertEqual(st, 200, f"{path} names {ref}")
            st, h2, _ = self.get(path, {"If-None-Match": h["etag"]})
            self.assertEqual((st, h2["etag"]), (304, h["etag"]))
        status, h, body = self.get("/docs/swagger-init.js")
        self.assertEqual(h["content-type"], "text/javascript; charset=utf-8")
        self.assertIn(b'url: "openapi.json"', body)
        self.assertIn(b"validatorUrl: null", body)

    def test_files_are_the_pinned_packages(self):
        for path in FILES:
            with self.subTest(path=path):
                status, h, body = self.get(path)
                self.assertEqual(status, 200)
                want = repo_bytes(path)
                if path == "/redoc/redoc.standalone.js":  # its CDN logo, replaced
                    self.assertIn(REDOC_LOGO, want)
                    self.assertNotIn(REDOC_LOGO, body)
                    self.assertEqual(len(body.split(b"data:image/svg+xml,")), 2)
                    want = want.replace(REDOC_LOGO, body[body.index(b"data:image/svg+xml,"):].split(b'"')[0])
                self.assertEqual(body, want)
                self.assertEqual(int(h["content-length"]), len(want))
                self.assertEqual(h["cache-control"], "public, max-age=86400")
                self.assertRegex(h["etag"], r'^"[0-9a-f]{24}"$')
                ctype = ("text/javascript" if path.endswith(".js") else
                         "text/css" if path.endswith(".css") else "text/plain")
                self.assertEqual(h["content-type"], ctype + "; charset=utf-8")

    def test_gzip(self):
        for path in ("/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/redoc/redoc.standalone.js"):
            with self.subTest(path=path):
                _, plain_h, plain = self.get(path)
                status, h, body = self.get(path, {"Accept-Encoding": "br, gzip;q=0.8"})
                self.assertEqual(status, 200)
                self.assertEqual(h.get("content-encoding"), "gzip")
                self.assertIn("Accept-Encoding", h.get("vary", ""))
                self.assertEqual(h["etag"], plain_h["etag"])
                self.assertLess(len(body), len(plain) // 2)
                self.assertEqual(zlib.decompress(body, 16 + zlib.MAX_WBITS), plain)
                _, h0, _ = self.get(path, {"Accept-Encoding": "gzip;q=0"})
                self.assertNotIn("content-encoding", h0)

    def test_conditional_and_head(self):
        _, h, _ = self.get("/docs/swagger-ui.css")
        tag = h["etag"]
        for inm in (tag, f'"nope", {tag}', f"W/{tag}", "*"):
            status, h2, body = self.get("/docs/swagger-ui.css", {"If-None-Match": inm})
            self.assertEqual((status, body, h2["etag"]), (304, b"", tag), inm)
            self.assertEqual(h2["cache-control"], "public, max-age=86400")
        status, _, body = self.get("/docs/swagger-ui.css", {"If-None-Match": '"other"'})
        self.assertEqual(status, 200)
        self.assertEqual(len(body), len(repo_bytes("/docs/swagger-ui.css")))
        status, h, body = self.get("/redoc/redoc.standalone.js", method="HEAD")
        self.assertEqual((status, body), (200, b""))
        self.assertGreater(int(h["content-length"]), 500000)

    def test_unknown_file(self):
        status, _, body = self.get("/docs/../README.md")
        self.assertIn(status, (400, 404))
        status, _, body = self.get("/docs/index.html")
        self.assertEqual(status, 404)


class DocsOffTests(ServerTestCase):
    FLAGS = ("--loops", "1", "--docs", "false")

    def test_off(self):
        for path in ("/docs", "/redoc", "/docs/swagger-ui-bundle.js", "/redoc/redoc.standalone.js"):
            c = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            c.close()
            self.assertEqual(r.status, 404, path)


class DocsBrowserTests(ServerTestCase):
    FLAGS = ("--loops", "1")

    def setUp(self):
        if os.environ.get("IM_BROWSER") != "1":
            self.skipTest("the browser runs in the release configuration only (IM_BROWSER=1)")
        super().setUp()

    def test_pages_in_chromium(self):
        npm_dir = os.environ.get("IM_NPM_DIR") or os.path.join(tempfile.gettempdir(), "im-npm")
        run = os.path.join(HERE, "..", "browser", "run.sh")
        r = subprocess.run(["sh", run, str(self.server.port), npm_dir, "get", "/v1/math/fib/{n}",
                            "n", "10"], capture_output=True, text=True, timeout=400)
        if r.returncode == 77:
            if os.environ.get("CI"):
                self.fail("CI must run the browser test: " + r.stdout)
            self.skipTest(r.stdout.strip())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        out = json.loads(r.stdout.strip().splitlines()[-1])
        self.assertEqual(out["errors"], [])
        self.assertEqual(out["blocked"], [], "the pages asked for something beyond loopback")
        c = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        c.request("GET", "/openapi.json")
        doc = json.loads(c.getresponse().read())
        c.close()
        ops = {(m, p) for p, item in doc["paths"].items() for m in item}
        ids = {op["operationId"] for item in doc["paths"].values() for op in item.values()}
        self.assertGreater(len(ops), 40)
        self.assertEqual(sorted(map(tuple, out["swagger"]["ops"])), sorted(ops),
                         "Swagger UI lists every operation, once")
        self.assertEqual(sorted(out["redoc"]["ops"]), sorted(ids), "ReDoc lists every operation")
        self.assertEqual(out["swagger"]["title"], "immersive demo - Swagger UI")
        self.assertEqual(out["redoc"]["title"], "immersive demo - ReDoc")
        ex = out["swagger"]["executed"]
        self.assertEqual(ex["status"], 200, ex)
        self.assertEqual(json.loads(ex["body"]), {"result": 55}, ex)  # fib(10), live
        self.assertEqual(ex["url"], f"http://127.0.0.1:{self.server.port}/v1/math/fib/10")


if __name__ == "__main__":
    unittest.main()
