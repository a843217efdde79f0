"""test_openapi.py — the demo's generated endpoints through HTTP, guided by its own OpenAPI
document: /openapi.json is served and is the document the generator wrote, with the runtime's
own endpoints added (tasks, functions, health, readiness, metrics, management), and the whole
passes swagger-parser; every route it lists answers a request built from its schema with 200
(the runtime's with a status they document) and a result matching the declared response
schema; a request that breaks the schema gets 422 in FastAPI's shape; executor endpoints answer
too, also many at once; malformed JSON is 422 (json_invalid, as FastAPI) with the byte offset;
every status an endpoint can answer is documented, with the schema its body has."""
import http.client
import json
import os
import struct
import subprocess
import tempfile
import threading
import unittest

from server import ServerTestCase


def sample(schema, comps, depth=0):
    """A value that satisfies `schema` (defaults and lower bounds where given)."""
    if "$ref" in schema:
        return sample(comps[schema["$ref"].split("/")[-1]], comps, depth)
    if "allOf" in schema:
        return sample(schema["allOf"][0], comps, depth)
    if "anyOf" in schema:  # nullable: the value, not null
        return sample(schema["anyOf"][0], comps, depth)
    if "default" in schema:
        return schema["default"]
    if "examples" in schema:  # the document's own (a pattern's value, say)
        return schema["examples"][0]
    t = schema.get("type")
    if isinstance(t, list):  # [T, "null"]
        t = t[0]
    if "enum" in schema:
        return schema["enum"][0]
    if t == "boolean":
        return True
    if t in ("integer", "number"):
        lo = schema.get("minimum", schema.get("exclusiveMinimum", 1) + (1 if "exclusiveMinimum" in schema else 0))
        hi = schema.get("maximum", schema.get("exclusiveMaximum", lo + 10) - 1)
        v = max(lo, min(1, hi)) if lo <= 1 <= hi else lo
        m = schema.get("multipleOf")
        if m:  # the first multiple from the lower bound
            v = -(-v // m) * m
        return int(v) if t == "integer" else float(v)
    if t == "string":
        return "ab" if schema.get("minLength", 0) <= 2 <= schema.get("maxLength", 2) else \
            "a" * schema.get("minLength", 0)
    if t == "array":
        n = max(schema.get("minItems", 2), 1)
        return [sample(schema["items"], comps, depth + 1) for _ in range(n)]
    if t == "object":
        return {k: sample(v, comps, depth + 1) for k, v in schema.get("properties", {}).items()
                if k in schema.get("required", []) or "default" in v}
    return None


def conforms(value, schema, comps, where="result"):
    """Checks a value against the subset of JSON Schema the generator emits; returns a problem
    or None."""
    if "$ref" in schema:
        return conforms(value, comps[schema["$ref"].split("/")[-1]], comps, where)
    if "allOf" in schema:
        return conforms(value, schema["allOf"][0], comps, where)
    t = schema.get("type")
    types = {"boolean": bool, "integer": int, "number": (int, float), "string": str, "array": list,
             "object": dict, "null": type(None)}
    if isinstance(t, list):  # ["string", "null"]: the first that fits
        t = next((x for x in t if isinstance(value, types[x]) and not (
            x in ("integer", "number") and isinstance(value, bool))), t[0])
    if t and not isinstance(value, types[t]) or (t in ("integer", "number") and isinstance(value, bool)):
        return f"{where}: {value!r} is not {t}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where}: {value!r} is not one of {schema['enum']}"
    if t == "array":
        for i, v in enumerate(value):
            p = conforms(v, schema["items"], comps, f"{where}[{i}]")
            if p:
                return p
    if t == "object":
        for k in schema.get("required", []):
            if k not in value:
                return f"{where}: required {k} missing"
        for k, v in value.items():
            if k in schema.get("properties", {}):
                p = conforms(v, schema["properties"][k], comps, f"{where}.{k}")
                if p:
                    return p
            elif schema.get("additionalProperties") is False:
                return f"{where}: unexpected {k}"
    return None


class OpenAPITests(ServerTestCase):
    FLAGS = ("--loops", "2")

    def http(self, method, path, body=None, ctype="application/json", headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        headers = dict(headers or {})
        if body is not None:
            if not isinstance(body, bytes):
                body = json.dumps(body).encode()
            headers["Content-Type"] = ctype
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        c = http.client.HTTPConnection("127.0.0.1", cls.server.port, timeout=10)
        c.request("GET", "/openapi.json")
        r = c.getresponse()
        cls.raw = r.read()
        cls.status = r.status
        cls.ctype = r.getheader("Content-Type")
        c.close()
        cls.full = json.loads(cls.raw)
        cls.comps = cls.full["components"]["schemas"]
        # the service's own part: without the runtime's operations (operationId im_*) and
        # schemas (immersive.*), which the generator does not write
        cls.doc = json.loads(cls.raw)
        for path in list(cls.doc["paths"]):
            item = {m: op for m, op in cls.doc["paths"][path].items()
                    if not op["operationId"].startswith("im_")}
            if item:
                cls.doc["paths"][path] = item
            else:
                del cls.doc["paths"][path]
        for name in [n for n in cls.doc["components"]["schemas"] if n.startswith("immersive.")]:
            del cls.doc["components"]["schemas"][name]

    def test_served_document_is_the_generated_one(self):
        self.assertEqual(self.status, 200)
        self.assertEqual(self.ctype, "application/json")
        gen = os.environ.get("IM_OPENAPI")
        if gen:
            with open(gen) as f:
                self.assertEqual(self.doc, json.load(f), "served document differs from the generated file")
        self.assertEqual(self.doc["openapi"], "3.1.0")
        self.assertIn("/v1/math/add", self.doc["paths"])

    RUNTIME = {("get", "/tasks"), ("get", "/tasks/{id}"), ("delete", "/tasks/{id}"),
               ("get", "/tasks/{id}/result"), ("get", "/tasks/{id}/events"), ("get", "/functions"),
               ("get", "/functions/{name}"), ("post", "/functions/{name}/terminate"),
               ("get", "/health"), ("get", "/ready"), ("get", "/metrics"),
               ("get", "/manage/version"), ("get", "/manage/logging/level"),
               ("post", "/manage/logging/level"), ("get", "/manage/spec"),
               ("get", "/manage/config")}

    def test_runtime_endpoints_are_documented(self):
        ops = {(m, p) for p, item in self.full["paths"].items() for m, op in item.items()
               if op["operationId"].startswith("im_")}
        self.assertEqual(ops, self.RUNTIME)
        for path in ("/openapi.json", "/docs", "/redoc"):  # as FastAPI: not in the document
            self.assertNotIn(path, self.full["paths"])

    def test_served_document_validates(self):
        here = os.path.dirname(os.path.abspath(__file__))
        npm_dir = os.environ.get("IM_NPM_DIR") or os.path.join(tempfile.gettempdir(), "im-npm")
        with tempfile.NamedTemporaryFile("wb", suffix=".json") as f:
            f.write(self.raw)
            f.flush()
            r = subprocess.run(["sh", os.path.join(here, "..", "openapi", "validate.sh"), f.name,
                                npm_dir], capture_output=True, text=True, timeout=280)
        if r.returncode == 77:
            self.skipTest(r.stdout.strip())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("valid OpenAPI 3.1.0", r.stdout)

    def test_every_status_is_documented(self):
        """Regression (issue 15): what each endpoint can answer is in its responses, with the
        schema of that body: 422 validation errors (malformed JSON too), 413/415 for bodies,
        202/429/503/504 on executors, and the handler's own failures as HTTPError."""
        verr = "#/components/schemas/HTTPValidationError"
        herr = "#/components/schemas/HTTPError"
        for path, item in self.doc["paths"].items():
            for method, op in item.items():
                with self.subTest(op=f"{method} {path}"):
                    rs = op["responses"]
                    ref = lambda code: rs[code]["content"]["application/json"]["schema"]["$ref"]
                    self.assertEqual(ref("default"), herr)
                    if op.get("parameters") or op.get("requestBody"):
                        self.assertEqual(ref("422"), verr)
                    self.assertNotIn("400", rs)
                    if op.get("requestBody"):
                        self.assertEqual((ref("413"), ref("415")), (herr, herr))
                    if op["x-immersive"]["mode"] != "inline":
                        self.assertEqual(ref("202"), "#/components/schemas/TaskAccepted")
                        for code in ("429", "503", "504"):
                            self.assertEqual(ref(code), herr)
        # and the bodies are those: a handler's failure, a task accepted
        status, data = self.http("POST", "/v1/math/divide", {"a": 1, "b": 0})
        self.assertEqual(status, 400)
        self.assertIsNone(conforms(json.loads(data), {"$ref": herr}, self.comps))
        c = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        c.request("POST", "/v1/demo/add", body=b'{"x": 1, "y": 2}',
                  headers={"Content-Type": "application/json", "Prefer": "respond-async"})
        r = c.getresponse()
        body = json.loads(r.read())
        c.close()
        self.assertEqual(r.status, 202)
        self.assertIsNone(conforms(body, self.comps["TaskAccepted"], self.comps))
        self.assertEqual(r.getheader("Location"), "/tasks/" + body["task_id"])
        raw = self.doc["paths"]["/v1/math/stats/raw"]["post"]["requestBody"]
        self.assertEqual(raw["x-immersive-values"]["minItems"], 1)

    def test_unknown_keys_as_each_schema_says(self):
        """Regression (issue 15): the endpoint's .extra = IM_IGNORE is its body's policy; the
        objects inside keep theirs (additionalProperties: false), as the document says."""
        self.assertNotIn("additionalProperties", self.comps["contains_args"])
        self.assertIs(self.comps["point"]["additionalProperties"], False)
        box = {"lo": {"x": 0, "y": 0}, "hi": {"x": 1, "y": 1}}
        status, data = self.http("POST", "/v1/geo/boxes/b/contains", {"box": box, "p": {"x": 0.5, "y": 0.5},
                                                                     "unknown": 1})
        self.assertEqual(status, 200, data)
        box["lo"]["z"] = 1
        status, data = self.http("POST", "/v1/geo/boxes/b/contains", {"box": box, "p": {"x": 0.5, "y": 0.5}})
        self.assertEqual(status, 422, data)
        self.assertEqual(json.loads(data)["detail"][0]["loc"], ["body", "box", "lo", "z"])

    def test_an_answer_that_breaks_its_schema_is_a_500(self):
        """Regression (issue 15): 1e308 / 1e-308 is inf, which the document's type: number
        cannot hold: answered 500 naming it, not {"result": null}."""
        status, data = self.http("POST", "/v1/math/divide", {"a": 1e308, "b": 1e-308})
        self.assertEqual((status, json.loads(data)), (500, {
            "detail": "the answer breaks its schema: response.result: inf is not a finite number"}))
        self.assertEqual(self.http("POST", "/v1/math/divide", {"a": 1, "b": 4}), (200, b'{"result":0.25}'))

    def test_runtime_endpoints_answer_as_documented(self):
        status, data = self.http("POST", "/v1/demo/add", {"x": 2, "y": 3})
        self.assertEqual(status, 200, data)
        status, data = self.http("GET", "/tasks?function=add_pool&limit=1")
        task = json.loads(data)["tasks"][0]["id"]
        calls = [("get", "/tasks", "/tasks", None), ("get", "/tasks/{id}", f"/tasks/{task}", None),
                 ("get", "/tasks/{id}/result", f"/tasks/{task}/result", None),
                 ("delete", "/tasks/{id}", f"/tasks/{task}", None),  # ended: 409
                 ("get", "/tasks/{id}", "/tasks/ffffffffffffffffffffffffffffffff", None),  # 404
                 ("get", "/functions", "/functions", None),
                 ("get", "/functions/{name}", "/functions/add", None),
                 ("post", "/functions/{name}/terminate", "/functions/add/terminate", None),
                 ("get", "/health", "/health", None), ("get", "/ready", "/ready", None),
                 ("get", "/metrics", "/metrics", None),
                 ("get", "/manage/version", "/manage/version", None),
                 ("get", "/manage/logging/level", "/manage/logging/level", None),
                 ("post", "/manage/logging/level", "/manage/logging/level", {"level": "info"}),
                 ("post", "/manage/logging/level", "/manage/logging/level", {"level": "loud"}),
                 ("get", "/manage/spec", "/manage/spec", None),
                 ("get", "/manage/config", "/manage/config", None)]
        seen = set()
        for method, path, target, body in calls:
            seen.add((method, path))
            op = self.full["paths"][path][method]
            status, data = self.http(method.upper(), target, body)
            with self.subTest(method=method, target=target, status=status):
                self.assertIn(str(status), op["responses"], f"{status} is not documented: {data[:200]!r}")
                content = op["responses"][str(status)].get("content", {})
                if "application/json" in content:
                    problem = conforms(json.loads(data), content["application/json"]["schema"], self.comps)
                    self.assertIsNone(problem, data[:300])
        self.assertEqual(seen | {("get", "/tasks/{id}/events")}, self.RUNTIME)
        self.assertEqual(json.loads(self.http("GET", "/manage/spec")[1]), self.full)

    def test_structure(self):
        ops = set()
        for path, item in self.doc["paths"].items():
            for method, op in item.items():
                self.assertNotIn(op["operationId"], ops, "operationIds are unique")
                ops.add(op["operationId"])
                declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
                wanted = {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
                self.assertEqual(declared, wanted, f"{method} {path}: path parameters declared")
                self.assertIn(str(op["x-immersive"]["status"]), op["responses"])
                if op.get("parameters") or op.get("requestBody"):
                    self.assertEqual(op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"],
                                     "#/components/schemas/HTTPValidationError")
                self.assertIn(op["x-immersive"]["mode"], ("inline", "pool", "serial", "process"))

    def build(self, path, op):
        """(target, body, content type, headers) for a valid call of op."""
        target, query, headers, cookies = path, [], {}, []
        for p in op.get("parameters", []):
            v = sample(p["schema"], self.comps)
            if p["in"] == "path":
                target = target.replace("{%s}" % p["name"], str(v))
            elif p["in"] == "header" and p.get("required"):
                headers[p["name"]] = str(v)
            elif p["in"] == "cookie" and p.get("required"):
                cookies.append(f"{p['name']}={v}")
            elif p.get("required"):
                for x in v if isinstance(v, list) else [v]:
                    query.append(f"{p['name']}={str(x).lower() if isinstance(x, bool) else x}")
        if query:
            target += "?" + "&".join(query)
        if cookies:
            headers["Cookie"] = "; ".join(cookies)
        body, ctype = None, "application/json"
        rb = op.get("requestBody")
        if rb:
            if "application/octet-stream" in rb["content"]:
                body, ctype = struct.pack("<3d", 1.0, 2.0, 4.0), "application/octet-stream"
            else:
                body = sample(rb["content"]["application/json"]["schema"], self.comps)
        return target, body, ctype, headers

    # demo functions whose sample call does not succeed by design: fail always fails, crash
    # kills its worker process, the samples of slow and spin (1 s) are their time limits
    FAILS = {("post", "/v1/demo/fail"): 500, ("post", "/v1/demo/crash"): 500}
    BODIES = {("post", "/v1/demo/slow"): {"seconds": 0}, ("post", "/v1/demo/spin"): {"seconds": 0},
              ("put", "/v1/demo/items/{id}"): {"fresh": False}}  # fresh: 201, its handler's pick

    def call_raw(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        c.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                  headers=dict(headers or {}, **({"Content-Type": "application/json"} if body is not None else {})))
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def test_success_statuses_and_headers(self):
        """.status = 201 and 204, im_call_status and im_call_header: inline, on the pool, and
        kept by a task for whoever reads its answer."""
        st, h, data = self.call_raw("POST", "/v1/demo/items", {"name": "box"})
        item = json.loads(data)
        self.assertEqual((st, item["name"], h["location"]), (201, "box", "/v1/demo/items/%d" % item["id"]))
        self.assertIn("201", self.doc["paths"]["/v1/demo/items"]["post"]["responses"])
        st, h, data = self.call_raw("DELETE", "/v1/demo/items/%d" % item["id"])
        self.assertEqual((st, data, h.get("x-deleted"), h.get("content-length", "0")), (204, b"", "1", "0"))
        self.assertNotIn("content", self.doc["paths"]["/v1/demo/items/{id}"]["delete"]["responses"]["204"])
        for fresh, want in ((True, 201), (False, 200)):
            st, h, data = self.call_raw("PUT", "/v1/demo/items/7", {"fresh": fresh})
            self.assertEqual((st, json.loads(data), h["etag"]), (want, {"result": 7}, '"new"' if fresh else '"old"'))
        st, h, data = self.call_raw("PUT", "/v1/demo/items/8", {"fresh": True}, {"Prefer": "respond-async"})
        self.assertEqual(st, 202)
        st, h, data = self.call_raw("GET", h["location"] + "/result", headers={"Prefer": "wait=5"})
        self.assertEqual((st, json.loads(data), h["etag"]), (201, {"result": 8}, '"new"'))

    def test_every_route_answers(self):
        n = 0
        for path, item in self.doc["paths"].items():
            for method, op in item.items():
                with self.subTest(route=f"{method.upper()} {path}"):
                    target, body, ctype, headers = self.build(path, op)
                    body = self.BODIES.get((method, path), body)
                    status, data = self.http(method.upper(), target, body, ctype, headers)
                    ok = op["x-immersive"]["status"]  # .status: 200, 201, 204...
                    expected = 202 if op["x-immersive"]["response"] == "async" else \
                        self.FAILS.get((method, path), ok)
                    self.assertEqual(status, expected, f"{method.upper()} {target} {body!r}: {data[:300]!r}")
                    self.assertIn(str(ok), op["responses"])
                    if status == 204:
                        self.assertEqual(data, b"")
                        self.assertNotIn("content", op["responses"]["204"])
                    elif status == ok:
                        schema = op["responses"][str(ok)]["content"]["application/json"]["schema"]
                        problem = conforms(json.loads(data), schema, self.comps)
                        self.assertIsNone(problem, f"{method.upper()} {target}: {data[:300]!r}")
                    n += 1
        self.assertGreaterEqual(n, 8, "the demo lists its endpoints")

    def test_every_body_route_validates(self):
        """A body of the wrong shape gets FastAPI's 422; broken JSON too, with an offset."""
        for path, item in self.doc["paths"].items():
            for method, op in item.items():
                rb = op.get("requestBody")
                if not rb or "application/json" not in rb["content"]:
                    continue
                target, body, _, headers = self.build(path, op)
                with self.subTest(route=f"{method.upper()} {path}"):
                    status, data = self.http(method.upper(), target, {"no_such_field": [1]}, headers=headers)
                    self.assertEqual(status, 422, data)
                    detail = json.loads(data)["detail"]
                    self.assertTrue(all({"loc", "msg", "type"} <= set(d) for d in detail), detail)
                    locs = [d["loc"] for d in detail]
                    bs = rb["content"]["application/json"]["schema"]
                    while "$ref" in bs or "allOf" in bs:
                        bs = self.comps[bs["$ref"].split("/")[-1]] if "$ref" in bs else bs["allOf"][0]
                    if bs.get("type") == "array":  # IM_BODY(T[]): an object is not a list
                        self.assertIn(["body"], locs)
                    elif bs.get("additionalProperties") is False:
                        self.assertIn(["body", "no_such_field"], locs)
                    else:
                        self.assertNotIn(["body", "no_such_field"], locs, "unknown fields ignored")
                    status, data = self.http(method.upper(), target, b'{"a": [1, 2,]}', headers=headers)
                    self.assertEqual(status, 422, data)
                    d = json.loads(data)["detail"][0]
                    self.assertEqual((d["type"], d["loc"]), ("json_invalid", ["body", 12]), d)

    def test_math_add(self):
        self.assertEqual(self.http("POST", "/v1/math/add", {"x": 3, "y": 6}), (200, b'{"result":9}'))
        status, data = self.http("POST", "/v1/math/add", {"x": 2**63, "y": 0})
        self.assertEqual(status, 422)
        self.assertEqual(json.loads(data)["detail"][0]["loc"], ["body", "x"])

    def test_raw_numbers_must_be_finite(self):
        for bad in (float("nan"), float("inf")):
            status, data = self.http("POST", "/v1/math/stats/raw", struct.pack("<2d", 1.0, bad),
                                     "application/octet-stream")
            self.assertEqual(status, 422, data)
            self.assertEqual(json.loads(data)["detail"][0]["type"], "finite_number")

    def test_pool_endpoints_under_load(self):
        """Many concurrent calls of executor endpoints: each gets its own right answer."""
        errors = []

        def worker(k):
            try:
                for i in range(20):
                    vals = [float(k), float(i), float(k + i)]
                    st, data = self.http("POST", "/v1/math/stats", {"values": vals})
                    r = json.loads(data)
                    if st != 200 or r["count"] != 3 or abs(r["mean"] - sum(vals) / 3) > 1e-9:
                        errors.append((st, data))
                    st, data = self.http("POST", "/v1/math/stats/raw", struct.pack("<3d", *vals),
                                         "application/octet-stream")
                    if st != 200 or json.loads(data)["max"] != max(vals):
                        errors.append((st, data))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [], "concurrent executor calls")


if __name__ == "__main__":
    unittest.main()
