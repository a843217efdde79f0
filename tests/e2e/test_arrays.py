"""n-dimensional arrays end to end, with numpy (Debian python3-numpy: run with /usr/bin/python3):
arrays of every dtype and 0..4 dimensions sent as .npy (what np.save writes) and as JSON nested
lists come back equal, as .npy (Accept: application/x-npy, read with np.load) and as JSON; the
pool's normalize through a task and /tasks/{id}/result; sum from JSON, .npy and raw float64s;
malformed headers, Fortran order, big-endian, truncated data, ragged lists, wrong dtypes and
dimensions get a 4xx that says why; OpenAPI names both media types.

Exits 77 (skipped) when numpy is not importable."""

import io
import json
import os
import sys
import unittest

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server import ServerTestCase  # noqa: E402
from test_tasks import Client  # noqa: E402

DTYPES = {"f64": "<f8", "f32": "<f4", "i64": "<i8", "i32": "<i4", "u8": "|u1"}
NPY = {"Content-Type": "application/x-npy"}


def npy(a, version=None):
    b = io.BytesIO()
    if version is None:
        np.save(b, a)
    else:
        np.lib.format.write_array(b, a, version=version)
    return b.getvalue()


class Arrays(ServerTestCase):
    FLAGS = ("--workers", "2")

    def setUp(self):
        self.c = Client(self.server.port)

    def post(self, path, body, headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = dict({"Content-Type": "application/json"}, **(headers or {}))
        return self.c.raw("POST", path, body, headers)

    def answer(self, r):
        """(status, headers, bytes) of whatever Client.request gives."""
        return r[0], r[1], r[2]

    def test_every_dtype_and_rank_round_trips(self):
        rng = np.random.default_rng(7)
        shapes = [(), (5,), (3, 4), (2, 3, 2), (2, 1, 3, 2), (0,), (2, 0, 3)]
        n = 0
        for name, descr in DTYPES.items():
            for shape in shapes:
                if name in ("f64", "f32"):
                    a = (rng.standard_normal(shape) * 1e3).astype(descr)
                elif name == "u8":
                    a = rng.integers(0, 256, shape).astype(descr)
                else:
                    a = rng.integers(-2**31, 2**31 - 1, shape).astype(descr)
                with self.subTest(dtype=name, shape=shape):
                    # .npy in, .npy out: identical bytes of data, same dtype and shape
                    st, h, body = self.answer(self.post("/v1/demo/array_echo", npy(a),
                                                        dict(NPY, Accept="application/x-npy")))
                    self.assertEqual(st, 200, body[:300])
                    self.assertEqual(h.get("content-type"), "application/x-npy")
                    back = np.load(io.BytesIO(body))
                    self.assertEqual(back.dtype, a.dtype)
                    self.assertEqual(back.shape, a.shape)
                    self.assertTrue(np.array_equal(back, a))
                    # .npy in, JSON out: the nested lists numpy itself would give
                    st, h, body = self.answer(self.post("/v1/demo/array_echo", npy(a), NPY))
                    self.assertEqual(st, 200, body[:300])
                    got = json.loads(body)["result"]
                    if name in ("f64", "f32"):
                        self.assertTrue(np.array_equal(np.array(got, dtype=a.dtype).reshape(shape), a))
                    else:
                        self.assertEqual(got, a.tolist())
                    # JSON in: integers bind as i64, anything else as f64
                    st, h, body = self.answer(self.post("/v1/demo/array_echo", {"array": a.tolist()},
                                                        {"Accept": "application/x-npy"}))
                    self.assertEqual(st, 200, body[:300])
                    back = np.load(io.BytesIO(body))
                    want = np.float64 if name in ("f64", "f32") else np.int64
                    if a.size == 0:  # an empty list holds no numbers: integers
                        want = np.int64
                    self.assertEqual(back.dtype, want)
                    # nested lists cannot hold the sizes after a 0 ((2, 0, 3) is [[], []]):
                    # the shape numpy itself reads from them
                    self.assertEqual(back.shape, np.array(a.tolist()).shape)
                    self.assertTrue(np.array_equal(back, np.array(a.tolist(), dtype=want)))
                    n += 1
        self.assertEqual(n, len(DTYPES) * len(shapes))

    def test_npy_versions_and_unaligned_bodies(self):
        a = np.arange(12, dtype="<f8").reshape(3, 4)
        for v in ((1, 0), (2, 0), (3, 0)):
            st, _, body = self.answer(self.post("/v1/demo/array_echo", npy(a, v),
                                                dict(NPY, Accept="application/x-npy")))
            self.assertEqual(st, 200, body)
            self.assertTrue(np.array_equal(np.load(io.BytesIO(body)), a))

    def test_normalize_sync_json_and_npy(self):
        st, _, body = self.answer(self.post("/v1/demo/normalize", {"array": [[3, 4], [0, 0]]}))
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body), {"result": [[0.6, 0.8], [0.0, 0.0]]})
        a = np.random.default_rng(1).standard_normal((4, 5, 6))
        st, h, body = self.answer(self.post("/v1/demo/normalize", npy(a),
                                            dict(NPY, Accept="application/x-npy")))
        self.assertEqual(st, 200, body[:200])
        back = np.load(io.BytesIO(body))
        self.assertEqual(back.shape, a.shape)
        self.assertTrue(np.allclose(back, a / np.linalg.norm(a)))
        self.assertAlmostEqual(float(np.linalg.norm(back)), 1.0, places=12)

    def test_normalize_as_a_task(self):
        a = np.random.default_rng(2).standard_normal((100, 30))
        st, h, body = self.answer(self.post("/v1/demo/normalize", npy(a),
                                            dict(NPY, Prefer="respond-async")))
        self.assertEqual(st, 202, body)
        tid = json.loads(body)["task_id"]
        st, h, body = self.answer(self.c.raw("GET", "/tasks/%s/result" % tid, None,
                                                 {"Prefer": "wait=10", "Accept": "application/x-npy"}))
        self.assertEqual(st, 200, body[:200])
        self.assertEqual(h.get("content-type"), "application/x-npy")
        self.assertTrue(np.allclose(np.load(io.BytesIO(body)), a / np.linalg.norm(a)))
        # the same stored result, as JSON, and inside the task resource
        st, h, body = self.answer(self.c.raw("GET", "/tasks/%s/result" % tid))
        self.assertEqual(st, 200)
        self.assertTrue(np.allclose(np.array(json.loads(body)["result"]), a / np.linalg.norm(a)))
        st, h, body = self.answer(self.c.raw("GET", "/tasks/%s" % tid))
        task = json.loads(body)
        self.assertEqual(task["state"], "SUCCEEDED")
        self.assertEqual(np.array(task["result"]["result"]).shape, (100, 30))
        # Accept with q=0 refuses .npy: JSON comes
        st, h, body = self.answer(self.c.raw("GET", "/tasks/%s/result" % tid, None,
                                                 {"Accept": "application/x-npy;q=0, application/json"}))
        self.assertEqual(h.get("content-type"), "application/json")

    def test_normalize_refuses(self):
        st, _, body = self.answer(self.post("/v1/demo/normalize", {"array": [0, 0]}))
        self.assertEqual(st, 422, body)
        self.assertIn("norm", json.loads(body)["detail"])
        st, _, body = self.answer(self.post("/v1/demo/normalize", npy(np.arange(4)), NPY))
        self.assertEqual(st, 422, body)
        d = json.loads(body)["detail"][0]
        self.assertEqual(d["type"], "ndarray_dtype")
        self.assertIn("f64", d["msg"])
        self.assertIn("i64", d["msg"])

    def test_sum_three_ways(self):
        v = np.random.default_rng(3).standard_normal(100000)
        want = float(v.sum())
        for body, hdrs in ((json.dumps({"values": v.tolist()}).encode(), {"Content-Type": "application/json"}),
                           (npy(v), NPY),
                           (v.astype("<f8").tobytes(), {"Content-Type": "application/octet-stream"})):
            st, _, out = self.answer(self.c.raw("POST", "/v1/demo/sum", body, hdrs))
            self.assertEqual(st, 200, out[:200])
            self.assertAlmostEqual(json.loads(out)["result"], want, delta=1e-9 * len(v))
        st, _, out = self.answer(self.post("/v1/demo/sum", npy(v.reshape(100, 1000)), NPY))
        self.assertEqual(st, 422)
        self.assertEqual(json.loads(out)["detail"][0]["type"], "ndarray_ndim")
        st, _, out = self.answer(self.c.raw("POST", "/v1/demo/sum", b"\0" * 12,
                                                {"Content-Type": "application/octet-stream"}))
        self.assertEqual(st, 422)
        self.assertEqual(json.loads(out)["detail"][0]["type"], "bytes_length")

    def test_malformed_npy(self):
        good = npy(np.arange(6, dtype="<f8").reshape(2, 3))
        cases = {
            "bad magic": (b"\x93NUMPX" + good[6:], "does not start with"),
            "truncated data": (good[:-8], "data"),
            "trailing bytes": (good + b"\0" * 8, "data"),
            "truncated header": (good[:20], ""),
            "fortran order": (npy(np.asfortranarray(np.arange(6.0).reshape(2, 3))), "Fortran"),
            "big-endian": (npy(np.arange(6, dtype=">f8")), "big-endian"),
            "complex": (npy(np.arange(3, dtype=np.complex128)), "dtype"),
            "too many dims": (npy(np.zeros((1,) * 9)), "dimensions"),
        }
        for name, (body, why) in cases.items():
            with self.subTest(name):
                st, _, out = self.answer(self.post("/v1/demo/array_echo", body, NPY))
                self.assertEqual(st, 422, out)
                d = json.loads(out)["detail"][0]
                self.assertEqual(d["type"], "npy_invalid")
                self.assertEqual(d["loc"], ["body"])
                self.assertIn(why.lower(), d["msg"].lower())

    def test_json_shapes_refused_with_where(self):
        cases = [
            ([[1, 2], [3]], "ndarray_ragged", ["body", "array", 1]),
            ([[1, 2], 3], "ndarray_ragged", ["body", "array", 1]),
            ([1, [2]], "ndarray_ragged", ["body", "array", 1]),
            ([[1, "x"]], "float_type", ["body", "array", 0, 1]),
            ([[1, None]], "float_type", ["body", "array", 0, 1]),
            ({"a": 1}, "ndarray_type", ["body", "array"]),
            ("text", "ndarray_type", ["body", "array"]),
            ([[[[[[[[[1]]]]]]]]], "ndarray_ndim", ["body", "array"] + [0] * 8),
        ]
        for value, typ, loc in cases:
            with self.subTest(value=value):
                st, _, out = self.answer(self.post("/v1/demo/array_echo", {"array": value}))
                self.assertEqual(st, 422, out)
                d = json.loads(out)["detail"][0]
                self.assertEqual(d["type"], typ, d)
                self.assertEqual(d["loc"], loc, d)
        # a number too large for float64: said at the element
        body = b'{"array": [[1, 2], [3, 1e400]]}'
        st, _, out = self.answer(self.c.raw("POST", "/v1/demo/normalize", body,
                                                {"Content-Type": "application/json"}))
        self.assertEqual(st, 422, out)
        d = json.loads(out)["detail"][0]
        self.assertEqual((d["type"], d["loc"], d["input"]), ("finite_number", ["body", "array", 1, 1], 1e400))

    def test_wrong_media_types(self):
        st, _, out = self.answer(self.c.raw("POST", "/v1/demo/normalize", b"abc",
                                                {"Content-Type": "text/plain"}))
        self.assertEqual(st, 415)
        self.assertIn("application/x-npy", json.loads(out)["detail"])
        # a JSON-only endpoint does not take .npy
        st, _, out = self.answer(self.c.raw("POST", "/v1/demo/add", npy(np.arange(2)), NPY))
        self.assertEqual(st, 415)

    def test_oversize(self):
        # over max_body_bytes (1 MiB by default): 413 before the body is read
        v = np.zeros(200000)
        st, _, out = self.answer(self.c.raw("POST", "/v1/demo/array_echo", npy(v), NPY))
        self.assertEqual(st, 413, out[:200])
        # sum has a limit of its own (.max_body_bytes, 256 MiB): 10^7 values come in
        v = np.random.default_rng(4).standard_normal(10**7)
        st, _, out = self.answer(self.c.raw("POST", "/v1/demo/sum", npy(v), NPY, timeout=120))
        self.assertEqual(st, 200, out[:200])
        self.assertAlmostEqual(json.loads(out)["result"], float(v.sum()), delta=1e-6)
        # and more than 10^7 is refused by its .max_items, saying so
        v = np.zeros(10**7 + 1)
        st, _, out = self.answer(self.c.raw("POST", "/v1/demo/sum", npy(v), NPY, timeout=120))
        self.assertEqual(st, 422, out[:200])
        d = json.loads(out)["detail"][0]
        self.assertEqual(d["type"], "too_long")
        self.assertIn("10000000", d["msg"])

    def test_openapi_names_both_media_types(self):
        st, _, body = self.answer(self.c.raw("GET", "/openapi.json"))
        doc = json.loads(body)
        op = doc["paths"]["/v1/demo/normalize"]["post"]
        self.assertEqual(set(op["requestBody"]["content"]),
                         {"application/json", "application/x-npy", "application/octet-stream"})
        self.assertIn("application/x-npy", op["responses"]["200"]["content"])
        self.assertIn("NDArray", doc["components"]["schemas"])
        prop = doc["components"]["schemas"]["normalize_args"]["properties"]["array"]
        self.assertEqual(prop["x-immersive-ndarray"]["dtype"], ["f64"])
        st, _, body = self.answer(self.c.raw("GET", "/functions/normalize"))
        fn = json.loads(body)
        self.assertEqual(fn["args"][0]["type"], "ndarray")


if __name__ == "__main__":
    if np is None:
        print("numpy is not importable by %s: install python3-numpy (Debian) and run this with "
              "/usr/bin/python3" % sys.executable)
        sys.exit(77)
    unittest.main(verbosity=2)
