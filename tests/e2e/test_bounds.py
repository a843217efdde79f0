"""test_bounds.py — every constraint the demo's /openapi.json publishes is the one its binder
checks: the test walks the document and, for each bound on each parameter, body property
(nested objects too) and raw body, sends a request that is valid but for one value, once just
inside the bound (never a 422 naming it) and once just outside (a 422 whose detail names it
at its loc). Bounds: minimum, maximum, their exclusive forms, multipleOf, minLength,
maxLength, minItems, maxItems, minProperties, maxProperties, enum, format, pattern, and the integer formats' own ranges (uint32, uint64,
int32, int64). Executor endpoints are asked for respond-async, so that inside values are
bound and queued but no handler has to finish. Standard library only."""
import http.client
import json
import math
import re
import struct
import unittest
from urllib.parse import quote

from server import ServerTestCase

INT_RANGE = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1),
             "uint32": (0, 2**32 - 1), "uint64": (0, 2**64 - 1)}


# a value of each string format, and one that is not
FORMATS = {"date-time": ("2026-12-03T10:20:30Z", "2026-12-03T24:00:00Z"), "date": ("2024-02-29", "2023-02-29"),
           "time": ("10:20:30", "10:20"), "uuid": ("123e4567-e89b-12d3-a456-426614174000", "123e4567"),
           "email": ("a@example.com", "a@b"), "uri": ("https://example.com/", "no scheme"),
           "ipv4": ("10.0.0.1", "10.0.0.256"), "ipv6": ("::1", "1:2:3")}


def deref(schema, comps):
    while True:
        if "$ref" in schema:
            schema = comps[schema["$ref"].split("/")[-1]]
        elif "allOf" in schema:
            schema = schema["allOf"][0]
        elif "anyOf" in schema:  # nullable: [T, null]
            schema = schema["anyOf"][0]
        else:
            return schema


def kind(schema):
    t = schema.get("type")
    return t[0] if isinstance(t, list) else t


def lower(schema):
    """The least value the schema admits: (value, exclusive) or None."""
    if "minimum" in schema:
        return schema["minimum"], False
    if "exclusiveMinimum" in schema:
        return schema["exclusiveMinimum"], True
    return None


def upper(schema):
    if "maximum" in schema:
        return schema["maximum"], False
    if "exclusiveMaximum" in schema:
        return schema["exclusiveMaximum"], True
    return None


def step(x, integer, up):
    """The next value past x that the type can hold."""
    if integer:
        return x + (1 if up else -1)
    return math.nextafter(float(x), math.inf if up else -math.inf)


def valid(schema, comps):
    """A value the schema admits (its default, else near its lower bound)."""
    s = deref(schema, comps)
    if "default" in s:
        return s["default"]
    if "enum" in s:
        return next(v for v in s["enum"] if v is not None)
    t = kind(s)
    if t == "boolean":
        return True
    if t in ("integer", "number"):
        lo, hi, m = lower(s), upper(s), s.get("multipleOf")
        v = 1 if t == "integer" else 1.0
        if lo and (v < lo[0] or (lo[1] and v == lo[0])):
            v = lo[0] if not lo[1] else step(lo[0], t == "integer", True)
        if hi and (v > hi[0] or (hi[1] and v == hi[0])):
            v = hi[0] if not hi[1] else step(hi[0], t == "integer", False)
        if m:
            v = math.ceil(v / m) * m
        return int(v) if t == "integer" else float(v)
    if t == "string":
        if "examples" in s:  # a pattern's: the document's own example
            return s["examples"][0]
        if s.get("format") in FORMATS:
            return FORMATS[s["format"]][0]
        n = max(s.get("minLength", 1), 1)
        return "a" * min(n, s.get("maxLength", n))
    if t == "array":
        return [valid(s["items"], comps) for _ in range(max(s.get("minItems", 1), 1))]
    if t == "object" and isinstance(s.get("additionalProperties"), dict):  # a map (T{})
        return {f"k{i}": valid(s["additionalProperties"], comps) for i in range(s.get("minProperties", 0))}
    if t == "object":
        return {k: valid(v, comps) for k, v in s.get("properties", {}).items() if k in s.get("required", [])}
    return None


def cases(schema, comps, depth=0):
    """(label, value, inside) for each bound of a value's schema, each value otherwise valid;
    nested: (label, path below the value, value, inside) reaching into objects and items."""
    s = deref(schema, comps)
    t = kind(s)
    out = []
    if t in ("integer", "number"):
        integer = t == "integer"
        m = s.get("multipleOf")
        rng = INT_RANGE.get(s.get("format")) if integer else None
        lo, hi = lower(s), upper(s)
        for name, b, up in (("lower", lo, False), ("upper", hi, True)):
            if not b:
                continue
            x, excl = b
            first = step(x, integer, not up) if excl else x  # the last value inside
            if m:  # the last multiple inside, and the first multiple past the bound
                first = (math.floor if up else math.ceil)(first / m) * m
                past = first + (m if up else -m)
            else:
                past = step(first, integer, up)
            out.append((f"{name} bound {x}{' (exclusive)' if excl else ''}: inside", (), first, True))
            out.append((f"{name} bound {x}{' (exclusive)' if excl else ''}: outside", (), past, False))
        if rng and not lo:
            out.append((f"{s['format']} range: outside below", (), rng[0] - 1, False))
        if rng and not hi:
            out.append((f"{s['format']} range: outside above", (), rng[1] + 1, False))
        if m:
            base = valid(s, comps)
            off = base + (1 if integer and m > 1 else m / 2)
            if not (integer and m == 1) and (not hi or off < hi[0]):
                out.append((f"multipleOf {m}: outside", (), int(off) if integer else off, False))
    elif t == "string" and s.get("format") in FORMATS:  # the format's: its lengths with it
        good, bad = FORMATS[s["format"]]
        out.append((f"format {s['format']}: inside", (), good, True))
        out.append((f"format {s['format']}: outside", (), bad, False))
    elif t == "string" and "pattern" in s:  # its example inside; a string it does not match outside
        good = valid(s, comps)
        bad = next(x for x in ("", "!", good + "!", "!" + good, "\x01") if not re.search(s["pattern"], x))
        out.append(("pattern: inside", (), good, True))
        out.append(("pattern: outside", (), bad, False))
    elif t == "string":
        if "minLength" in s and s["minLength"] > 0:
            out.append(("minLength: inside", (), "a" * s["minLength"], True))
            out.append(("minLength: outside", (), "a" * (s["minLength"] - 1), False))
        if "maxLength" in s:
            out.append(("maxLength: inside", (), "é" * s["maxLength"], True))  # characters, not bytes
            out.append(("maxLength: outside", (), "é" * (s["maxLength"] + 1), False))
        if "enum" in s:
            for v in s["enum"]:
                if v is not None:
                    out.append((f"enum {v!r}: inside", (), v, True))
            out.append(("enum: outside", (), "no-such-value", False))
    elif t == "array":
        item = valid(s["items"], comps)
        if "minItems" in s and s["minItems"] > 0:
            out.append(("minItems: inside", (), [item] * s["minItems"], True))
            out.append(("minItems: outside", (), [item] * (s["minItems"] - 1), False))
        if "maxItems" in s and s["maxItems"] <= 10000:
            out.append(("maxItems: inside", (), [item] * s["maxItems"], True))
            out.append(("maxItems: outside", (), [item] * (s["maxItems"] + 1), False))
        if depth < 4:
            n = max(s.get("minItems", 1), 1)
            for label, sub, v, inside in cases(s["items"], comps, depth + 1):
                out.append((f"[0] {label}", (0,) + sub, [v] + [item] * (n - 1), inside))
    elif t == "object" and isinstance(s.get("additionalProperties"), dict):  # a map (T{})
        item = valid(s["additionalProperties"], comps)
        keys = lambda n: {f"k{i}": item for i in range(n)}
        if s.get("minProperties", 0) > 0:
            out.append(("minProperties: inside", (), keys(s["minProperties"]), True))
            out.append(("minProperties: outside", (), keys(s["minProperties"] - 1), False))
        if "maxProperties" in s and s["maxProperties"] <= 10000:
            out.append(("maxProperties: inside", (), keys(s["maxProperties"]), True))
            out.append(("maxProperties: outside", (), keys(s["maxProperties"] + 1), False))
        if depth < 4:
            base = valid(s, comps)
            for label, sub, v, inside in cases(s["additionalProperties"], comps, depth + 1):
                out.append((f"[k] {label}", ("k",) + sub, dict(base, k=v), inside))
    elif t == "object" and depth < 4:
        base = valid(s, comps)
        for k, ps in s.get("properties", {}).items():
            for label, sub, v, inside in cases(ps, comps, depth + 1):
                out.append((f".{k} {label}", (k,) + sub, dict(base, **{k: v}), inside))
    return out


def text(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


class BoundsTests(ServerTestCase):
    FLAGS = ("--loops", "1")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        c = http.client.HTTPConnection("127.0.0.1", cls.server.port, timeout=10)
        c.request("GET", "/openapi.json")
        cls.doc = json.loads(c.getresponse().read())
        c.close()
        cls.comps = cls.doc["components"]["schemas"]

    def send(self, method, op, params, body, raw=None):
        target = self.path
        query, headers, cookies = [], {}, []
        for p in op.get("parameters", []):
            if p["name"] not in params:
                continue
            v = params[p["name"]]
            if p["in"] == "path":
                target = target.replace("{%s}" % p["name"], quote(text(v), safe=""))
            elif p["in"] == "header":  # ASCII: a header's bytes are not UTF-8 to http.client
                headers[p["name"]] = text(v).replace("é", "e")
            elif p["in"] == "cookie":
                cookies.append(f"{p['name']}={text(v).replace('é', 'e')}")
            else:
                for x in v if isinstance(v, list) else [v]:
                    query.append(f"{quote(p['name'], safe='')}={quote(text(x), safe='')}")
        if query:
            target += "?" + "&".join(query)
        if cookies:
            headers["Cookie"] = "; ".join(cookies)
        if op["x-immersive"]["mode"] != "inline":
            headers["Prefer"] = "respond-async"
        data = None
        if raw is not None:
            data, headers["Content-Type"] = raw, "application/octet-stream"
        elif body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        c = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=20)
        c.request(method.upper(), target, body=data, headers=headers)
        r = c.getresponse()
        out = r.read()
        if r.status == 202:  # accepted: cancel it, so no handler outlives the walk (or shutdown)
            tid = json.loads(out)["task_id"]
            c.request("DELETE", f"/tasks/{tid}")
            c.getresponse().read()
            c.request("GET", f"/tasks/{tid}/result", headers={"Prefer": "wait=10"})
            res = c.getresponse()
            res.read()
            self.assertNotIn(res.status, (202,), f"{method.upper()} {target}: task {tid} "
                             "still unfinished 10 s after DELETE")
        c.close()
        return r.status, out

    def check(self, what, status, data, loc, inside):
        detail = None
        if status == 422:
            try:
                detail = json.loads(data)["detail"]
            except (ValueError, KeyError):
                pass
        locs = [d["loc"] for d in detail] if isinstance(detail, list) else []
        named = [l for l in locs if l[:len(loc)] == list(loc)]
        if inside:
            self.assertFalse(locs, f"{what}: inside its bound, yet 422 {data[:400]!r}")
        else:
            self.assertTrue(named, f"{what}: outside its bound, want a 422 naming {list(loc)}; "
                                   f"got {status} {data[:400]!r}")
        return 1

    def test_every_published_bound(self):
        n = 0
        for path, item in self.doc["paths"].items():
            for method, op in item.items():
                if op["operationId"].startswith("im_"):
                    continue  # the runtime's own: tested with their own contracts
                self.path = path
                params = {p["name"]: valid(p["schema"], self.comps) for p in op.get("parameters", [])
                          if p.get("required") or p["in"] == "path"}
                rb = op.get("requestBody")
                js = rb and rb["content"].get("application/json")
                body = valid(js["schema"], self.comps) if js else None
                rawv = rb.get("x-immersive-values") if rb and not js else None
                raw = struct.pack("<d", 1.0) if rawv else None
                todo = []  # (inside, what, params, body, raw, loc)
                for p in op.get("parameters", []):
                    for label, sub, v, inside in cases(p["schema"], self.comps):
                        todo.append((inside, f"{method.upper()} {path} {p['in']} {p['name']} {label}",
                                     dict(params, **{p["name"]: v}), body, raw, (p["in"], p["name"]) + sub))
                if js:
                    s = deref(js["schema"], self.comps)
                    for k, ps in s.get("properties", {}).items():
                        for label, sub, v, inside in cases(ps, self.comps):
                            todo.append((inside, f"{method.upper()} {path} body {k} {label}", params,
                                         dict(body, **{k: v}), None, ("body", k) + sub))
                if rawv:
                    for label, sub, v, inside in cases(rawv, self.comps):
                        vals = v if isinstance(v, list) else [v]
                        todo.append((inside, f"{method.upper()} {path} raw body {label}", params, None,
                                     struct.pack(f"<{len(vals)}d", *map(float, vals)), ("body",) + sub))
                # outside first: a call inside may hold the endpoint's one slot (.max_concurrency)
                for inside, what, ps, b, r, loc in sorted(todo, key=lambda x: x[0]):
                    with self.subTest(what):
                        st, data = self.send(method, op, ps, b, r)
                        n += self.check(what, st, data, loc, inside)
        self.assertGreater(n, 150, "the demo publishes bounds to walk (228 when this was written)")


if __name__ == "__main__":
    unittest.main()
