"""test_gen.py — tests of gen/immersive_gen.py, the build-time generator that turns annotated C
modules (IM_MODULE, IM_OBJECT/IM_FIELD, IM_ENDPOINT, IM_ARG, IM_RESULT) into <module>.gen.h,
<service>.routes.c, <service>.service.h and <service>.openapi.json.

What is checked, from the documented behaviour (README, "Annotated endpoints (the generator)"):
  * accepted annotations (every type, source, constraint, result kind, mode and endpoint
    attribute) generate every file; the generated C compiles with -Wall -Wextra -Werror
    -Wshadow, links with the library and registers on a server; the OpenAPI document is
    OpenAPI 3.1 with every endpoint, its constraints and its x-immersive attributes; the output
    is byte-for-byte deterministic;
  * everything the generator cannot honour is refused with `file:line:col: error: ...` at the
    offending annotation (plus a `hint:` line where the README promises one), a non-zero exit
    status, and no file written.

Tests marked `# Regression:` pin defects found while these tests were written (all fixed).

Run: cd tests/gen && python3 -m unittest -v test_gen   (standard library only)
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.normpath(os.path.join(HERE, "..", "..", "gen", "immersive_gen.py"))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
CFLAGS = ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-Wshadow"]
LIBS = ["-luring", "-lpthread", "-lm"]
SERVICE = "acc"


# ---------------------------------------------------------------------------------------------
# Helpers


def have_c_toolchain():
    """Why compilation-based tests cannot run here, or None when they can."""
    if not shutil.which("cc"):
        return "no C compiler (cc) on PATH"
    if not os.path.exists("/usr/include/liburing.h"):
        return "liburing headers missing (/usr/include/liburing.h)"
    return None


def write_module(root, folder, files):
    """Writes module folder `folder` under root; files is a source text (written to
    <folder>.c) or a {filename: text} dict. Returns the folder's path."""
    path = os.path.join(root, folder)
    os.makedirs(path, exist_ok=True)
    if isinstance(files, str):
        files = {folder + ".c": files}
    for name, text in files.items():
        with open(os.path.join(path, name), "w", newline="") as f:
            f.write(text)
    return path


def run_gen(module_dirs, out, service=SERVICE, extra_args=()):
    return subprocess.run([sys.executable, GEN, "--service", service, "--out", out,
                           *extra_args, *module_dirs],
                          capture_output=True, text=True, timeout=60)


def line_of(text, needle, nth=1):
    """1-based number of the line holding the nth occurrence of needle in text."""
    pos = -1
    for _ in range(nth):
        pos = text.find(needle, pos + 1)
        if pos < 0:
            raise AssertionError(f"test source has no {needle!r} (occurrence {nth})")
    return text.count("\n", 0, pos) + 1


def cc(args, cwd=None):
    return subprocess.run(["cc", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def module_src(name, body, include_gen=True):
    """A module source: includes, IM_MODULE(name, ...), a blank line, then body."""
    head = '#include "immersive.h"\n'
    if include_gen:
        head += f'#include "{name}.gen.h"\n'
    return head + f'\nIM_MODULE({name}, "A test module")\n\n' + body


def fn(name):
    """An endpoint function with the documented signature, doing nothing."""
    return (f"int {name}(im_call *call, const {name}_args *in, {name}_result *out)\n"
            "{\n    (void)call;\n    (void)in;\n    (void)out;\n    return 0;\n}\n")


# ---------------------------------------------------------------------------------------------
# The accepted modules: every type, source, constraint, result kind, mode and attribute.

ALPHA = r'''/* alpha.c — every type in the JSON body, object types, arrays and result kinds. */
#include <string.h>

#include "immersive.h"
#include "alpha.gen.h"

IM_MODULE(alpha, "Every type in the body")

IM_OBJECT(pt, "A point")
IM_FIELD(double, x, "X", .min = -10, .max = 10)
IM_FIELD(double, y, "Y")
IM_FIELD(string, label, "A label", .optional = true, .max_length = 16)

IM_OBJECT(seg, "A segment")
IM_FIELD(pt, a, "From")
IM_FIELD(pt, b, "To")
IM_FIELD(int32[], marks, "Marks", .max_items = 4)

IM_ENDPOINT(POST, "/v1/alpha/all", .summary = "Every type", .tags = {"alpha", "kitchen"})
IM_ARG(bool, flag, "A flag", .default = true)
IM_ARG(int32, small, "Small", .min = -5, .max = 5)
IM_ARG(int64, big, "Positive", .exclusive_min = 0)
IM_ARG(double, ratio, "Below one", .exclusive_max = 1, .default = 0.5)
IM_ARG(string, name, "A name", .min_length = 1, .max_length = 8)
IM_ARG(enum, color, "A color", .values = {"red", "green", "blue"}, .default = "green")
IM_ARG(pt, where, "A point")
IM_ARG(seg[], segs, "Segments", .max_items = 10, .optional = true)
IM_ARG(int32[], nums, "Numbers", .min_items = 1, .max_items = 5, .min = 0)
IM_ARG(int64[], bigs, "Big numbers", .optional = true)
IM_ARG(double[], ds, "Doubles", .optional = true)
IM_ARG(bool[], bs, "Booleans", .optional = true)
IM_ARG(string[], words, "Words", .optional = true, .max_length = 3)
IM_ARG(enum[], inks, "Inks", .values = {"cyan", "magenta"}, .optional = true)
IM_ARG(f64array, series, "A series", .optional = true, .max_items = 100)
IM_ARG(int32, maybe, "Optional", .optional = true)
IM_RESULT(object, "Everything, echoed")
IM_FIELD(bool, flag, "")
IM_FIELD(int32, small, "")
IM_FIELD(int64, big, "")
IM_FIELD(double, ratio, "")
IM_FIELD(string, name, "")
IM_FIELD(enum, color, "", .values = {"red", "green", "blue"})
IM_FIELD(pt, where, "")
IM_FIELD(seg[], segs, "")
IM_FIELD(int32[], nums, "")
IM_FIELD(f64array, series, "")
IM_FIELD(int32, maybe, "", .optional = true)
int all(im_call *call, const all_args *in, all_result *out)
{
    (void)call;
    out->flag = in->flag;
    out->small = in->small;
    out->big = in->big;
    out->ratio = in->ratio;
    out->name = in->name;
    out->color = in->color == all_color_red ? all_result_color_red
               : in->color == all_color_blue ? all_result_color_blue : all_result_color_green;
    out->where = in->where;
    out->segs = in->has_segs ? in->segs : (seg_list){NULL, 0};
    out->nums = in->nums;
    out->series = in->has_series ? in->series : (im_f64s){NULL, 0};
    out->has_maybe = in->has_maybe;
    out->maybe = in->maybe;
    if (in->has_inks && in->inks.len && in->inks.ptr[0] == all_inks_magenta) out->small = 0;
    return 0;
}

IM_ENDPOINT(PUT, "/v1/alpha/point", .summary = "A point back", .mode = IM_INLINE)
IM_ARG(pt, p, "The point")
IM_RESULT(pt, "The same point")
int point_back(im_call *call, const point_back_args *in, point_back_result *out)
{
    (void)call;
    *out = in->p; /* point_back_result is pt: the answer is the object itself */
    return 0;
}

IM_ENDPOINT(PATCH, "/v1/alpha/points", .summary = "Points back")
IM_ARG(pt[], ps, "The points", .max_items = 3)
IM_RESULT(pt[], "The same points")
int points_back(im_call *call, const points_back_args *in, points_back_result *out)
{
    (void)call;
    out->result = in->ps;
    return 0;
}

IM_ENDPOINT(POST, "/v1/alpha/nothing", .summary = "No result")
IM_ARG(string, note, "Ignored", .default = "none")
int nothing(im_call *call, const nothing_args *in, nothing_result *out)
{
    (void)call;
    (void)in;
    (void)out;
    return 0;
}
'''

BETA = r'''/* beta.c — query and path arguments, GET, PUT and DELETE, scalar and array results. */
#include "immersive.h"
#include "beta.gen.h"

IM_MODULE(beta, "Query and path arguments")

IM_ENDPOINT(GET, "/v1/beta/items/{id}/{slug}", .summary = "Read an item", .extra = IM_FORBID)
IM_ARG(int64, id, "From the path", .min = 1)
IM_ARG(string, slug, "From the path too", .in = path, .max_length = 20)
IM_ARG(int32, limit, "How many", .min = 1, .max = 100, .default = 10)
IM_ARG(double, scale, "A scale", .exclusive_min = 0, .exclusive_max = 10, .optional = true)
IM_ARG(bool, verbose, "Talk more", .default = false)
IM_ARG(string, q, "A search", .in = query, .min_length = 2, .optional = true)
IM_ARG(enum, order, "Sort order", .values = {"asc", "desc"}, .default = "asc")
IM_ARG(string[], tag, "Repeated ?tag=", .max_items = 4, .optional = true)
IM_ARG(int32[], pick, "Repeated ?pick=", .min = 0, .max = 9, .optional = true)
IM_RESULT(string, "The slug")
int read_item(im_call *call, const read_item_args *in, read_item_result *out)
{
    (void)call;
    out->result = in->order == read_item_order_desc ? in->slug : in->slug;
    return 0;
}

IM_ENDPOINT(DELETE, "/v1/beta/items/{id}", .summary = "Delete an item")
IM_ARG(int64, id, "From the path", .in = path)
IM_ARG(bool, force, "Even when in use", .default = false)
IM_RESULT(bool, "Deleted")
int delete_item(im_call *call, const delete_item_args *in, delete_item_result *out)
{
    (void)call;
    out->result = in->id > 0 || in->force;
    return 0;
}

IM_ENDPOINT(PUT, "/v1/beta/items/{id}", .summary = "Replace an item")
IM_ARG(int32, id, "From the path", .max = 1000)
IM_ARG(double, weight, "In the body", .min = 0, .default = 1.5)
IM_ARG(int32, rev, "In the query", .in = query, .default = -1)
IM_RESULT(double, "The new weight")
int put_item(im_call *call, const put_item_args *in, put_item_result *out)
{
    (void)call;
    out->result = in->weight * (double)in->id + (double)in->rev;
    return 0;
}

IM_ENDPOINT(GET, "/v1/beta/count", .summary = "Count")
IM_ARG(int32, upto, "Up to", .min = 0)
IM_RESULT(int32, "The count")
int count(im_call *call, const count_args *in, count_result *out)
{
    (void)call;
    out->result = in->upto;
    return 0;
}

IM_ENDPOINT(GET, "/v1/beta/evens", .summary = "Even numbers")
IM_ARG(int32, n, "How many", .min = 0, .max = 16, .default = 4)
IM_RESULT(int64[], "The numbers")
int evens(im_call *call, const evens_args *in, evens_result *out)
{
    int64_t *v = im_call_alloc(call, sizeof(int64_t) * (size_t)(in->n ? in->n : 1));
    if (!v) return im_call_fail(call, 503, "out of memory");
    for (int32_t i = 0; i < in->n; i++) v[i] = 2 * (int64_t)i;
    out->result.ptr = v;
    out->result.len = (size_t)in->n;
    return 0;
}
'''

GAMMA = r'''/* gamma.c — execution modes and endpoint attributes, raw float64 bodies, no result, no
 * arguments. */
#include "immersive.h"
#include "gamma.gen.h"

IM_MODULE(gamma, "Modes and attributes")

IM_OBJECT(summary, "A summary of numbers")
IM_FIELD(int64, count, "How many")
IM_FIELD(double, total, "Their sum")

IM_ENDPOINT(POST, "/v1/gamma/sum", .summary = "Sum on the pool",
            .description = "Runs on the primary executor.", .response = IM_SYNC,
            .mode = IM_POOL, .priority = 3, .max_concurrency = 8, .timeout_ms = 250)
IM_ARG(f64array, values, "The values", .min_items = 1, .max_items = 1000, .min = -1e6, .max = 1e6)
IM_RESULT(summary, "The summary")
int sum(im_call *call, const sum_args *in, sum_result *out)
{
    (void)call;
    double t = 0;
    for (size_t i = 0; i < in->values.len; i++) t += in->values.ptr[i];
    out->count = (int64_t)in->values.len;
    out->total = t;
    return 0;
}

IM_ENDPOINT(POST, "/v1/gamma/sum/raw", .summary = "Sum of raw float64s",
            .mode = IM_SERIAL, .max_concurrency = 2, .priority = 1)
IM_ARG(f64array, values, "Little-endian float64s", .in = raw, .max_items = 4096)
IM_RESULT(double, "The sum")
int sum_raw(im_call *call, const sum_raw_args *in, sum_raw_result *out)
{
    (void)call;
    out->result = 0;
    for (size_t i = 0; i < in->values.len; i++) out->result += in->values.ptr[i];
    return 0;
}

IM_ENDPOINT(POST, "/v1/gamma/isolated", .summary = "In its own process", .mode = IM_PROCESS,
            .timeout_ms = 1000, .deprecated = true)
IM_ARG(string, cmd, "A command", .max_length = 64)
IM_RESULT(string[], "Output lines")
int isolated(im_call *call, const isolated_args *in, isolated_result *out)
{
    (void)call;
    out->result.ptr = &in->cmd;
    out->result.len = 1;
    return 0;
}

IM_ENDPOINT(POST, "/v1/gamma/later", .summary = "Answered later", .response = IM_ASYNC,
            .mode = IM_POOL, .extra = IM_IGNORE, .tags = "background")
IM_ARG(int32, delay, "Seconds", .min = 0, .max = 3600, .default = 0)
int later(im_call *call, const later_args *in, later_result *out)
{
    (void)call;
    (void)in;
    (void)out;
    return 0;
}

IM_ENDPOINT(DELETE, "/v1/gamma/cache")
int flush(im_call *call, const flush_args *in, flush_result *out)
{
    (void)call;
    (void)in;
    (void)out;
    return 0;
}
'''

MODULES = {"alpha": ALPHA, "beta": BETA, "gamma": GAMMA}

# (method, path, function, module) of every accepted endpoint.
ENDPOINTS = [
    ("post", "/v1/alpha/all", "all", "alpha"),
    ("put", "/v1/alpha/point", "point_back", "alpha"),
    ("patch", "/v1/alpha/points", "points_back", "alpha"),
    ("post", "/v1/alpha/nothing", "nothing", "alpha"),
    ("get", "/v1/beta/items/{id}/{slug}", "read_item", "beta"),
    ("delete", "/v1/beta/items/{id}", "delete_item", "beta"),
    ("put", "/v1/beta/items/{id}", "put_item", "beta"),
    ("get", "/v1/beta/count", "count", "beta"),
    ("get", "/v1/beta/evens", "evens", "beta"),
    ("post", "/v1/gamma/sum", "sum", "gamma"),
    ("post", "/v1/gamma/sum/raw", "sum_raw", "gamma"),
    ("post", "/v1/gamma/isolated", "isolated", "gamma"),
    ("post", "/v1/gamma/later", "later", "gamma"),
    ("delete", "/v1/gamma/cache", "flush", "gamma"),
]

NO_ARGUMENTS = {"flush"}

# (method, path, argument, where it must be, expected schema keys; "items." = on each element)
CONSTRAINTS = [
    ("post", "/v1/alpha/all", "flag", "body", {"type": "boolean", "default": True}),
    ("post", "/v1/alpha/all", "small", "body", {"type": "integer", "minimum": -5, "maximum": 5}),
    ("post", "/v1/alpha/all", "big", "body", {"type": "integer", "exclusiveMinimum": 0}),
    ("post", "/v1/alpha/all", "ratio", "body",
     {"type": "number", "exclusiveMaximum": 1, "default": 0.5}),
    ("post", "/v1/alpha/all", "name", "body", {"type": "string", "minLength": 1, "maxLength": 8}),
    ("post", "/v1/alpha/all", "color", "body",
     {"enum": ["red", "green", "blue"], "default": "green"}),
    ("post", "/v1/alpha/all", "segs", "body", {"type": "array", "maxItems": 10}),
    ("post", "/v1/alpha/all", "nums", "body",
     {"type": "array", "minItems": 1, "maxItems": 5, "items.minimum": 0}),
    ("post", "/v1/alpha/all", "words", "body", {"type": "array", "items.maxLength": 3}),
    ("post", "/v1/alpha/all", "inks", "body", {"type": "array", "items.enum": ["cyan", "magenta"]}),
    ("post", "/v1/alpha/all", "series", "body", {"type": "array", "maxItems": 100}),
    ("post", "/v1/alpha/nothing", "note", "body", {"type": "string", "default": "none"}),
    ("get", "/v1/beta/items/{id}/{slug}", "id", "path", {"type": "integer", "minimum": 1}),
    ("get", "/v1/beta/items/{id}/{slug}", "slug", "path", {"type": "string", "maxLength": 20}),
    ("get", "/v1/beta/items/{id}/{slug}", "limit", "query",
     {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}),
    ("get", "/v1/beta/items/{id}/{slug}", "scale", "query",
     {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 10}),
    ("get", "/v1/beta/items/{id}/{slug}", "verbose", "query", {"type": "boolean", "default": False}),
    ("get", "/v1/beta/items/{id}/{slug}", "q", "query", {"type": "string", "minLength": 2}),
    ("get", "/v1/beta/items/{id}/{slug}", "order", "query", {"enum": ["asc", "desc"], "default": "asc"}),
    ("get", "/v1/beta/items/{id}/{slug}", "tag", "query", {"type": "array", "maxItems": 4}),
    ("get", "/v1/beta/items/{id}/{slug}", "pick", "query",
     {"type": "array", "items.minimum": 0, "items.maximum": 9}),
    ("delete", "/v1/beta/items/{id}", "id", "path", {"type": "integer"}),
    ("delete", "/v1/beta/items/{id}", "force", "query", {"type": "boolean", "default": False}),
    ("put", "/v1/beta/items/{id}", "id", "path", {"type": "integer", "maximum": 1000}),
    ("put", "/v1/beta/items/{id}", "weight", "body", {"type": "number", "minimum": 0, "default": 1.5}),
    ("put", "/v1/beta/items/{id}", "rev", "query", {"type": "integer", "default": -1}),
    ("get", "/v1/beta/count", "upto", "query", {"type": "integer", "minimum": 0}),
    ("get", "/v1/beta/evens", "n", "query", {"type": "integer", "minimum": 0, "maximum": 16, "default": 4}),
    ("post", "/v1/gamma/sum", "values", "body",
     {"type": "array", "minItems": 1, "maxItems": 1000, "items.minimum": -1e6, "items.maximum": 1e6}),
    ("post", "/v1/gamma/later", "delay", "body",
     {"type": "integer", "minimum": 0, "maximum": 3600, "default": 0}),
]

# (method, path, argument): required or not
REQUIRED = [
    ("post", "/v1/alpha/all", "small", True), ("post", "/v1/alpha/all", "big", True),
    ("post", "/v1/alpha/all", "name", True), ("post", "/v1/alpha/all", "where", True),
    ("post", "/v1/alpha/all", "nums", True), ("post", "/v1/alpha/all", "flag", False),
    ("post", "/v1/alpha/all", "ratio", False), ("post", "/v1/alpha/all", "color", False),
    ("post", "/v1/alpha/all", "segs", False), ("post", "/v1/alpha/all", "maybe", False),
    ("post", "/v1/alpha/all", "series", False),
    ("get", "/v1/beta/items/{id}/{slug}", "id", True),
    ("get", "/v1/beta/items/{id}/{slug}", "slug", True),
    ("get", "/v1/beta/items/{id}/{slug}", "limit", False),
    ("get", "/v1/beta/items/{id}/{slug}", "q", False),
    ("get", "/v1/beta/count", "upto", True),
    ("put", "/v1/beta/items/{id}", "weight", False),
    ("post", "/v1/gamma/isolated", "cmd", True),
]

# (method, path): expected x-immersive values
X_IMMERSIVE = [
    ("post", "/v1/alpha/all", {"mode": "inline", "priority": 0, "max_concurrency": 0,
                               "timeout_ms": 0, "response": "sync", "extra": "forbid"}),
    ("get", "/v1/beta/items/{id}/{slug}", {"mode": "inline", "extra": "forbid"}),
    ("post", "/v1/gamma/sum", {"mode": "pool", "priority": 3, "max_concurrency": 8,
                               "timeout_ms": 250, "response": "sync"}),
    ("post", "/v1/gamma/sum/raw", {"mode": "serial", "priority": 1, "max_concurrency": 2,
                                   "timeout_ms": 0}),
    ("post", "/v1/gamma/isolated", {"mode": "process", "timeout_ms": 1000}),
    ("post", "/v1/gamma/later", {"mode": "pool", "response": "async", "extra": "ignore"}),
]


def generate_accepted(root, out):
    dirs = [write_module(root, name, text) for name, text in MODULES.items()]
    return dirs, run_gen(dirs, out)


def resolve(doc, schema):
    """Follows a $ref (or a single allOf $ref) inside the document."""
    while True:
        if "$ref" in schema:
            ref = schema["$ref"]
        elif "allOf" in schema and len(schema["allOf"]) == 1 and "$ref" in schema["allOf"][0]:
            ref = schema["allOf"][0]["$ref"]
        else:
            return schema
        assert ref.startswith("#/"), ref
        node = doc
        for part in ref[2:].split("/"):
            node = node[part]
        schema = node


def arg_schema(doc, method, path, arg):
    """(where, schema, required) of an argument of an operation: a parameter or a property of
    the JSON request body."""
    op = doc["paths"][path][method]
    for p in op.get("parameters", []):
        if p["name"] == arg:
            return p["in"], p["schema"], bool(p.get("required"))
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        schema = resolve(doc, body["schema"])
        if arg in schema.get("properties", {}):
            return "body", schema["properties"][arg], arg in schema.get("required", [])
    return None, None, None


# ---------------------------------------------------------------------------------------------
# Accepted annotations: files, OpenAPI document, determinism (no C compiler needed).


class AcceptedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="im_gen_ok_")
        cls.out = os.path.join(cls.tmp, "out")
        cls.dirs, cls.proc = generate_accepted(cls.tmp, cls.out)
        cls.doc = None
        path = os.path.join(cls.out, SERVICE + ".openapi.json")
        if cls.proc.returncode == 0 and os.path.exists(path):
            with open(path) as f:
                cls.text = f.read()
            try:
                cls.doc = json.loads(cls.text)
            except ValueError:
                cls.doc = None

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def need_doc(self):
        self.assertEqual(self.proc.returncode, 0,
                         f"generator should accept the accepted modules; stderr:\n{self.proc.stderr}")
        self.assertIsNotNone(self.doc, "the OpenAPI document should be valid JSON")
        return self.doc

    def test_exit_status_zero_and_quiet(self):
        self.assertEqual(self.proc.returncode, 0,
                         f"generator exit status on valid modules; stderr:\n{self.proc.stderr}")
        self.assertNotIn("error:", self.proc.stderr, "no error reported on valid modules")

    def test_generated_files_exist(self):
        expected = [m + ".gen.h" for m in MODULES] + [
            SERVICE + ".routes.c", SERVICE + ".service.h", SERVICE + ".openapi.json"]
        for name in expected:
            p = os.path.join(self.out, name)
            self.assertTrue(os.path.isfile(p), f"generated file {name} should exist")
            self.assertGreater(os.path.getsize(p), 0, f"generated file {name} should not be empty")

    def test_service_header_declares_register(self):
        with open(os.path.join(self.out, SERVICE + ".service.h")) as f:
            text = f.read()
        self.assertRegex(text, r"int\s+im_register_acc\s*\(\s*im_server\s*\*\s*\w*\s*\)",
                         "service header declares int im_register_acc(im_server *)")

    def test_module_headers_hold_argument_structs_and_prototypes(self):
        for method, path, func, module in ENDPOINTS:
            with open(os.path.join(self.out, module + ".gen.h")) as f:
                text = f.read()
            with self.subTest(function=func):
                self.assertIn(f"{func}_args", text, f"{module}.gen.h defines {func}_args")
                self.assertIn(f"{func}_result", text, f"{module}.gen.h defines {func}_result")
                self.assertRegex(text, rf"int\s+{func}\s*\(\s*im_call\s*\*",
                                 f"{module}.gen.h declares the prototype of {func}")

    def test_openapi_version_and_json(self):
        doc = self.need_doc()
        self.assertEqual(doc.get("openapi"), "3.1.0", "OpenAPI document version is 3.1.0")
        self.assertIn("paths", doc, "OpenAPI document has paths")
        self.assertIn("HTTPValidationError", doc.get("components", {}).get("schemas", {}),
                      "components.schemas defines HTTPValidationError")

    def test_openapi_every_endpoint_with_method_and_operation_id(self):
        doc = self.need_doc()
        for method, path, func, module in ENDPOINTS:
            with self.subTest(endpoint=f"{method.upper()} {path}"):
                self.assertIn(path, doc["paths"], f"path {path} is in the OpenAPI document")
                self.assertIn(method, doc["paths"][path], f"{path} has method {method}")
                op = doc["paths"][path][method]
                self.assertEqual(op.get("operationId"), func,
                                 f"operationId of {method.upper()} {path} is the function name")

    def test_openapi_422_references_http_validation_error(self):
        doc = self.need_doc()
        for method, path, func, module in ENDPOINTS:
            if func in NO_ARGUMENTS:
                continue  # nothing to validate, so no 422 to document
            with self.subTest(endpoint=f"{method.upper()} {path}"):
                responses = doc["paths"][path][method].get("responses", {})
                self.assertIn("422", responses, f"{method.upper()} {path} documents a 422 answer")
                schema = responses["422"]["content"]["application/json"]["schema"]
                self.assertEqual(schema.get("$ref"), "#/components/schemas/HTTPValidationError",
                                 f"422 answer of {method.upper()} {path} is an HTTPValidationError")

    def test_openapi_constraints(self):
        doc = self.need_doc()
        for method, path, arg, where, expected in CONSTRAINTS:
            with self.subTest(argument=f"{method.upper()} {path} {arg}"):
                got_where, schema, _ = arg_schema(doc, method, path, arg)
                self.assertEqual(got_where, where,
                                 f"argument {arg} of {method.upper()} {path} is documented in {where}")
                schema = resolve(doc, schema)
                for key, value in expected.items():
                    node = schema
                    if key.startswith("items."):
                        node = resolve(doc, schema.get("items", {}))
                        key = key[len("items."):]
                    self.assertIn(key, node, f"schema of {arg} in {method.upper()} {path} has {key}")
                    self.assertEqual(node[key], value,
                                     f"{key} of {arg} in {method.upper()} {path} is {value!r}")

    def test_openapi_required(self):
        doc = self.need_doc()
        for method, path, arg, required in REQUIRED:
            with self.subTest(argument=f"{method.upper()} {path} {arg}"):
                where, schema, got = arg_schema(doc, method, path, arg)
                self.assertIsNotNone(where, f"argument {arg} of {method.upper()} {path} is documented")
                self.assertEqual(got, required,
                                 f"argument {arg} of {method.upper()} {path} is "
                                 f"{'required' if required else 'not required'}")

    def test_openapi_object_types_are_schemas(self):
        doc = self.need_doc()
        schemas = doc["components"]["schemas"]
        for name, fields in (("pt", ["x", "y", "label"]), ("seg", ["a", "b", "marks"]),
                             ("summary", ["count", "total"])):
            self.assertIn(name, schemas, f"IM_OBJECT {name} is a component schema")
            self.assertEqual(sorted(schemas[name].get("properties", {})), sorted(fields),
                             f"properties of IM_OBJECT {name} are its IM_FIELDs")
        self.assertEqual(schemas["pt"]["properties"]["x"].get("minimum"), -10,
                         "IM_FIELD constraint .min of pt.x is in its schema")

    def test_openapi_result_kinds(self):
        doc = self.need_doc()

        def result_schema(method, path):
            return doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]

        obj = resolve(doc, result_schema("post", "/v1/alpha/all"))
        self.assertIn("color", obj.get("properties", {}), "object result documents its IM_FIELDs")
        self.assertEqual(obj["properties"]["color"].get("enum"), ["red", "green", "blue"],
                         "enum field of an object result lists its values")
        count = resolve(doc, result_schema("get", "/v1/beta/count"))
        self.assertIn("result", count.get("properties", {}), "a scalar result is answered as {\"result\": value}")
        pt = resolve(doc, result_schema("put", "/v1/alpha/point"))
        self.assertEqual(pt.get("properties", {}).keys(), {"x", "y", "label"},
                         "a named object's result is the object itself")
        for method, path, func in (("patch", "/v1/alpha/points", "points_back"), ("get", "/v1/beta/evens", "evens")):
            arr = resolve(doc, result_schema(method, path))
            self.assertEqual(arr.get("type"), "array", f"{func}: an array result is the array itself")
        pts = resolve(doc, result_schema("patch", "/v1/alpha/points"))
        self.assertEqual(resolve(doc, pts["items"]).get("properties", {}).keys(),
                         {"x", "y", "label"}, "an IM_OBJECT[] result's items are the object")
        nothing = result_schema("post", "/v1/alpha/nothing")
        self.assertEqual(nothing.get("type"), "null", "an endpoint without IM_RESULT answers null")

    def test_openapi_raw_body(self):
        doc = self.need_doc()
        body = doc["paths"]["/v1/gamma/sum/raw"]["post"].get("requestBody", {})
        self.assertIn("application/octet-stream", body.get("content", {}),
                      ".in = raw f64array takes an application/octet-stream body")

    def test_openapi_x_immersive_attributes(self):
        doc = self.need_doc()
        for method, path, expected in X_IMMERSIVE:
            with self.subTest(endpoint=f"{method.upper()} {path}"):
                x = doc["paths"][path][method].get("x-immersive")
                self.assertIsInstance(x, dict, f"{method.upper()} {path} has x-immersive")
                for key in ("mode", "priority", "max_concurrency", "timeout_ms", "response"):
                    self.assertIn(key, x, f"x-immersive of {method.upper()} {path} holds {key}")
                for key, value in expected.items():
                    self.assertEqual(x.get(key), value,
                                     f"x-immersive.{key} of {method.upper()} {path} is {value!r}")

    def test_openapi_tags_summary_description_deprecated(self):
        doc = self.need_doc()
        p = doc["paths"]
        self.assertEqual(p["/v1/alpha/all"]["post"].get("tags"), ["alpha", "kitchen"],
                         ".tags = {list} gives the operation's tags")
        self.assertEqual(p["/v1/gamma/later"]["post"].get("tags"), ["background"],
                         ".tags = \"string\" gives one tag")
        self.assertEqual(p["/v1/beta/count"]["get"].get("tags"), ["beta"],
                         "tags default to the module name")
        self.assertEqual(p["/v1/alpha/all"]["post"].get("summary"), "Every type",
                         ".summary is the operation's summary")
        self.assertEqual(p["/v1/gamma/sum"]["post"].get("description"),
                         "Runs on the primary executor.", ".description is the operation's description")
        self.assertIs(p["/v1/gamma/isolated"]["post"].get("deprecated"), True,
                      ".deprecated = true marks the operation deprecated")
        self.assertFalse(p["/v1/gamma/sum"]["post"].get("deprecated", False),
                         "an operation without .deprecated is not deprecated")

    def test_routes_embed_the_document(self):
        with open(os.path.join(self.out, SERVICE + ".routes.c")) as f:
            text = f.read()
        self.assertIn("im_register_acc", text, "routes.c defines im_register_acc")
        for method, path, func, module in ENDPOINTS:
            self.assertIn(f'"{path}"', text, f"routes.c holds the route {path}")

    def test_deterministic_output(self):
        self.assertEqual(self.proc.returncode, 0, f"first run succeeds; stderr:\n{self.proc.stderr}")
        out2 = os.path.join(self.tmp, "out2")
        p = run_gen(self.dirs, out2)
        self.assertEqual(p.returncode, 0, f"second run succeeds; stderr:\n{p.stderr}")
        first, second = sorted(os.listdir(self.out)), sorted(os.listdir(out2))
        self.assertEqual(first, second, "both runs write the same set of files")
        for name in first:
            with open(os.path.join(self.out, name), "rb") as a, open(os.path.join(out2, name), "rb") as b:
                self.assertEqual(a.read(), b.read(), f"{name} is byte-identical on a second run")

    def test_rerun_into_same_directory_is_stable(self):
        out3 = os.path.join(self.tmp, "out3")
        p1 = run_gen(self.dirs, out3)
        snap = {}
        for name in os.listdir(out3):
            with open(os.path.join(out3, name), "rb") as f:
                snap[name] = f.read()
        p2 = run_gen(self.dirs, out3)
        self.assertEqual((p1.returncode, p2.returncode), (0, 0), "both runs into one directory succeed")
        for name, data in snap.items():
            with open(os.path.join(out3, name), "rb") as f:
                self.assertEqual(f.read(), data, f"{name} unchanged when regenerated in place")


# ---------------------------------------------------------------------------------------------
# Accepted annotations: the generated C compiles, links and registers (one shared build).


class CompiledTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = have_c_toolchain()
        if why:
            raise unittest.SkipTest(why)
        cls.tmp = tempfile.mkdtemp(prefix="im_gen_cc_")
        cls.out = os.path.join(cls.tmp, "out")
        cls.dirs, cls.proc = generate_accepted(cls.tmp, cls.out)
        cls.compiled = {}
        cls.link = cls.ran = None
        if cls.proc.returncode != 0:
            return
        main_c = os.path.join(cls.tmp, "main.c")
        with open(main_c, "w") as f:
            f.write('#define IMMERSIVE_IMPLEMENTATION\n#include "immersive.h"\n'
                    f'#include "{SERVICE}.service.h"\n#include <stdio.h>\n\n'
                    "int main(void)\n{\n"
                    "    im_server *s = im_server_new(NULL);\n"
                    "    if (!s) {\n        fprintf(stderr, \"im_server_new failed\\n\");\n"
                    "        return 2;\n    }\n"
                    f"    int rc = im_register_{SERVICE}(s);\n"
                    "    if (rc != 0) {\n"
                    f"        fprintf(stderr, \"im_register_{SERVICE}: %d\\n\", rc);\n"
                    "        return 3;\n    }\n"
                    "    im_server_free(s);\n    return 0;\n}\n")
        sources = [os.path.join(d, os.path.basename(d) + ".c") for d in cls.dirs]
        sources += [os.path.join(cls.out, SERVICE + ".routes.c"), main_c]
        objs = []
        for src in sources:
            obj = os.path.join(cls.tmp, os.path.basename(src) + ".o")
            cls.compiled[os.path.basename(src)] = cc(
                [*CFLAGS, "-I" + ROOT, "-I" + cls.out, "-c", src, "-o", obj])
            objs.append(obj)
        if all(p.returncode == 0 for p in cls.compiled.values()):
            exe = os.path.join(cls.tmp, "registers")
            cls.link = cc(["-o", exe, *objs, *LIBS])
            if cls.link.returncode == 0:
                cls.ran = subprocess.run([exe], capture_output=True, text=True, timeout=30)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_generation_succeeded(self):
        self.assertEqual(self.proc.returncode, 0, f"generator accepts the modules; stderr:\n{self.proc.stderr}")

    def test_module_sources_compile(self):
        for name in MODULES:
            p = self.compiled.get(name + ".c")
            self.assertIsNotNone(p, f"{name}.c was compiled")
            self.assertEqual(p.returncode, 0,
                             f"{name}.c with its generated {name}.gen.h compiles with -Werror:\n{p.stderr}")

    def test_routes_compile(self):
        p = self.compiled.get(SERVICE + ".routes.c")
        self.assertIsNotNone(p, "routes.c was compiled")
        self.assertEqual(p.returncode, 0, f"generated {SERVICE}.routes.c compiles with -Werror:\n{p.stderr}")

    def test_main_compiles_links_and_registers(self):
        p = self.compiled.get("main.c")
        self.assertIsNotNone(p, "main.c was compiled")
        self.assertEqual(p.returncode, 0, f"main.c including the service header compiles:\n{p.stderr}")
        self.assertIsNotNone(self.link, "the program was linked")
        self.assertEqual(self.link.returncode, 0, f"modules + routes + main link:\n{self.link.stderr}")
        self.assertIsNotNone(self.ran, "the program ran")
        self.assertEqual(self.ran.returncode, 0,
                         f"im_register_{SERVICE}() on im_server_new(NULL) succeeds (program exit 0):\n"
                         f"{self.ran.stdout}{self.ran.stderr}")


# ---------------------------------------------------------------------------------------------
# Refused annotations: position, hint, exit status, nothing written.


class GenErrorCase(unittest.TestCase):
    """Runs the generator on sources written for a test and checks how it refuses them."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="im_gen_err_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def gen(self, modules, order=None):
        """Writes {folder: source} modules in a fresh directory and runs the generator on them;
        returns (process, output dir, {folder: .c path})."""
        base = tempfile.mkdtemp(dir=self.tmp)
        paths, dirs = {}, []
        for folder in (order or modules):
            d = write_module(base, folder, modules[folder])
            dirs.append(d)
            paths[folder] = os.path.join(d, folder + ".c")
        out = os.path.join(base, "out")
        return run_gen(dirs, out), out, paths

    def assertNothingWritten(self, out, what):
        files = os.listdir(out) if os.path.isdir(out) else []
        self.assertEqual(files, [], f"{what}: no output file is written on error")

    def assertGenError(self, src, needle, at=None, words=(), hint=False, nth=1, folder="m",
                       others=None, order=None, lines=None, what=None):
        """Runs the generator on module `folder` holding src (plus `others` modules) and checks
        the refusal: exit status, `<file>:<line>:<col>: error: ` on the first stderr line at the
        line holding needle (or one of `lines`), a column at the annotation's start or inside
        `at` (a string or a tuple of them), the key words, a hint line when asked, and no file written. Returns stderr."""
        what = what or needle
        modules = {folder: src, **(others or {})}
        p, out, paths = self.gen(modules, order)
        self.assertNotEqual(p.returncode, 0, f"{what}: generator exit status is non-zero")
        self.assertNotIn("Traceback", p.stderr, f"{what}: an error message, not a Python traceback")
        errlines = p.stderr.splitlines()
        self.assertTrue(errlines, f"{what}: something is written to stderr")
        first = errlines[0]
        m = re.match(rf"^{re.escape(paths[folder])}:(\d+):(\d+): error: ", first)
        self.assertIsNotNone(m, f"{what}: first stderr line is '{paths[folder]}:<line>:<col>: error: ...'"
                                f", got: {first!r}")
        line, col = int(m.group(1)), int(m.group(2))
        want = lines if lines is not None else {line_of(src, needle, nth)}
        self.assertIn(line, want, f"{what}: error reported on the right line ({sorted(want)}); got: {first!r}")
        text = src.splitlines()[line - 1] if 0 < line <= len(src.splitlines()) else ""
        start = len(text) - len(text.lstrip()) + 1
        cols = {start}
        alternatives = [a for a in ((at,) if isinstance(at, str) else (at or ())) if a in text]
        for a in alternatives:
            i = text.index(a)
            cols |= set(range(i + 1, i + len(a) + 2))
        if not alternatives:
            cols |= set(range(1, len(text) + 2))
        self.assertIn(col, cols, f"{what}: column {col} points at the annotation or the offending token"
                                 f" in line {line}: {text!r}")
        for w in words:
            self.assertIn(w.lower(), first.lower(), f"{what}: the error message mentions {w!r}: {first!r}")
        if hint:
            self.assertGreaterEqual(len(errlines), 2, f"{what}: a hint line follows the error")
            self.assertIn("hint:", errlines[1], f"{what}: the second stderr line is a hint: {errlines[1]!r}")
        self.assertNothingWritten(out, what)
        return p.stderr



class ErrorTest(GenErrorCase):
    # -- types, routes, arguments ------------------------------------------------------------

    def test_unknown_type(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int16, n, "N")\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(int16", at="int16", words=["int16"], hint=True,
                            what="unknown type int16")

    def test_duplicate_route(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N")\n' + fn("a")
                         + 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N")\n' + fn("b"))
        self.assertGenError(src, 'IM_ENDPOINT(POST, "/a")', nth=2, at='"/a"', words=["duplicate", "/a"],
                            hint=True, what="duplicate route POST /a")

    def test_duplicate_route_with_renamed_path_param(self):
        src = module_src("m", 'IM_ENDPOINT(GET, "/a/{id}")\nIM_ARG(int64, id, "I")\n' + fn("a")
                         + 'IM_ENDPOINT(GET, "/a/{key}")\nIM_ARG(int64, key, "K")\n' + fn("b"))
        self.assertGenError(src, 'IM_ENDPOINT(GET, "/a/{key}")', at='"/a/{key}"', words=["duplicate"],
                            hint=True, what="duplicate route GET /a/{id} vs /a/{key}")

    def test_duplicate_route_across_modules(self):
        m = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N")\n' + fn("a"))
        n = module_src("n", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N")\n' + fn("b"))
        self.assertGenError(n, 'IM_ENDPOINT(POST, "/a")', at='"/a"', folder="n", others={"m": m},
                            order=["m", "n"], words=["duplicate"], hint=True,
                            what="duplicate route POST /a in two modules")

    def test_path_parameter_without_argument(self):
        src = module_src("m", 'IM_ENDPOINT(GET, "/a/{id}")\nIM_ARG(int32, n, "N")\n' + fn("a"))
        self.assertGenError(src, 'IM_ENDPOINT(GET, "/a/{id}")', at='"/a/{id}"', words=["id"], hint=True,
                            what="path parameter {id} without IM_ARG")

    def test_path_argument_not_in_path(self):
        src = module_src("m", 'IM_ENDPOINT(GET, "/a")\nIM_ARG(int32, n, "N", .in = path)\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(int32, n", at=("n,", ".in = path"), words=["'n'"],
                            what=".in = path argument not in the path")

    def test_duplicate_argument(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N")\nIM_ARG(int64, n, "N2")\n'
                         + fn("a"))
        self.assertGenError(src, "IM_ARG(int64, n", at="n,", words=["'n'"],
                            what="argument n declared twice")

    # -- constraints ---------------------------------------------------------------------------

    def test_min_above_max(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N", .min = 5, .max = 1)\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(int32, n", at=".min = 5, .max = 1", words=["'n'"], hint=True,
                            what=".min above .max")

    def test_exclusive_min_equal_to_max(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\n'
                              'IM_ARG(double, n, "N", .exclusive_min = 5, .max = 5)\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(double, n", at=".exclusive_min = 5, .max = 5", words=["'n'"],
                            hint=True, what=".exclusive_min equal to .max")

    def test_min_on_string(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(string, s, "S", .min = 1)\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(string, s", at=".min = 1", words=[".min", "string"], hint=True,
                            what=".min on a string")

    def test_min_length_on_int(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N", .min_length = 1)\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(int32, n", at=".min_length = 1", words=[".min_length", "int32"],
                            hint=True, what=".min_length on an int32")

    NON_INTEGER_BOUND = 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N", .max = 2.5)\n'
    BOUND_OUT_OF_RANGE = 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N", .max = 3000000000)\n'
    DEFAULT_OUT_OF_BOUNDS = 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N", .min = 1, .max = 10, .default = 11)\n'

    def test_non_integer_bound_on_int32(self):
        src = module_src("m", self.NON_INTEGER_BOUND + fn("a"))
        self.assertGenError(src, "IM_ARG(int32, n", at=".max = 2.5", words=[".max", "integer"],
                            what="non-integer .max on an int32")

    def test_bound_outside_int32(self):
        src = module_src("m", self.BOUND_OUT_OF_RANGE + fn("a"))
        self.assertGenError(src, "IM_ARG(int32, n", at=".max = 3000000000", words=["int32"],
                            what=".max outside int32")

    def test_default_outside_bounds(self):
        src = module_src("m", self.DEFAULT_OUT_OF_BOUNDS + fn("a"))
        self.assertGenError(src, "IM_ARG(int32, n", at=".default = 11", words=["default"],
                            what="default 11 above .max 10")

    # Regression: the README promises a hint: line for a constraint that does not fit the type and for
    # a default outside the bounds; these three errors come without one.

    def test_bug_no_hint_for_non_integer_bound(self):
        src = module_src("m", self.NON_INTEGER_BOUND + fn("a"))
        self.assertGenError(src, "IM_ARG(int32, n", at=".max = 2.5", hint=True,
                            what="hint for a non-integer .max on an int32")

    # Regression: (see above) no hint for a bound outside int32.

    def test_bug_no_hint_for_bound_outside_int32(self):
        src = module_src("m", self.BOUND_OUT_OF_RANGE + fn("a"))
        self.assertGenError(src, "IM_ARG(int32, n", at=".max = 3000000000", hint=True,
                            what="hint for .max outside int32")

    # Regression: (see above) no hint for a default outside the bounds.

    def test_bug_no_hint_for_default_outside_bounds(self):
        src = module_src("m", self.DEFAULT_OUT_OF_BOUNDS + fn("a"))
        self.assertGenError(src, "IM_ARG(int32, n", at=".default = 11", hint=True,
                            what="hint for default 11 above .max 10")

    def test_default_of_wrong_type(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N", .default = "x")\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(int32, n", at='.default = "x"', words=["default"],
                            what="string default on an int32")

    def test_default_on_array(self):
        for default in ("1", "{1, 2}"):
            with self.subTest(default=default):
                src = module_src("m", 'IM_ENDPOINT(POST, "/a")\n'
                                      f'IM_ARG(int32[], n, "N", .default = {default})\n' + fn("a"))
                self.assertGenError(src, "IM_ARG(int32[], n", at=f".default = {default}",
                                    words=["default"], what=f"default {default} on an int32[]")

    # -- enums ---------------------------------------------------------------------------------

    def test_enum_without_values(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(enum, e, "E")\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(enum, e", at="enum, e", words=[".values"],
                            what="enum without .values")

    def test_enum_default_not_a_value(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\n'
                              'IM_ARG(enum, e, "E", .values = {"x", "y"}, .default = "z")\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(enum, e", at='.default = "z"', words=["default"],
                            what="enum default 'z' not among the values")

    def test_duplicate_enum_value(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\n'
                              'IM_ARG(enum, e, "E", .values = {"x", "y", "x"})\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(enum, e", at='.values = {"x", "y", "x"}', words=["enum"],
                            what="enum value given twice")

    # -- attributes, methods, paths --------------------------------------------------------------

    def test_unknown_endpoint_attribute(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a", .summary = "s", .colour = 1)\n'
                              'IM_ARG(int32, n, "N")\n' + fn("a"))
        self.assertGenError(src, "IM_ENDPOINT(POST", at=".colour = 1", words=["colour"],
                            what="unknown endpoint attribute .colour")

    def test_unknown_endpoint_attribute_on_continuation_line(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a",\n            .summary = "s",\n'
                              '            .colour = 1)\nIM_ARG(int32, n, "N")\n' + fn("a"))
        self.assertGenError(src, ".colour = 1", at=".colour = 1", words=["colour"],
                            what="unknown attribute on the third line of a multi-line IM_ENDPOINT")

    def test_unknown_argument_attribute(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N", .minimum = 1)\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(int32, n", at=".minimum = 1", words=["minimum"],
                            what="unknown argument attribute .minimum")

    def test_unknown_method(self):
        for method in ("FETCH", "post", "HEAD"):
            with self.subTest(method=method):
                src = module_src("m", f'IM_ENDPOINT({method}, "/a")\nIM_ARG(int32, n, "N")\n' + fn("a"))
                self.assertGenError(src, f"IM_ENDPOINT({method}", at=method, words=[method],
                                    what=f"unknown method {method}")

    def test_path_without_leading_slash(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "a/b")\nIM_ARG(int32, n, "N")\n' + fn("a"))
        self.assertGenError(src, 'IM_ENDPOINT(POST, "a/b")', at='"a/b"', words=["/"],
                            what="path not starting with /")

    def test_bad_path_parameter_segment(self):
        for path in ("/a/{id", "/a/x{id}", "/a/{1d}", "/a/{}"):
            with self.subTest(path=path):
                src = module_src("m", f'IM_ENDPOINT(GET, "{path}")\nIM_ARG(int64, id, "I")\n' + fn("a"))
                self.assertGenError(src, f'IM_ENDPOINT(GET, "{path}")', at=f'"{path}"',
                                    what=f"bad parameter segment in {path}")

    def test_max_concurrency_on_inline_endpoint(self):
        for attrs in (".max_concurrency = 4", ".mode = IM_INLINE, .max_concurrency = 4"):
            with self.subTest(attrs=attrs):
                src = module_src("m", f'IM_ENDPOINT(POST, "/a", {attrs})\nIM_ARG(int32, n, "N")\n' + fn("a"))
                self.assertGenError(src, "IM_ENDPOINT(POST", at=".max_concurrency = 4",
                                    words=["max_concurrency"], what=f"{attrs} on an inline endpoint")

    # -- sources -------------------------------------------------------------------------------

    def test_body_argument_on_get(self):
        src = module_src("m", 'IM_ENDPOINT(GET, "/a")\nIM_ARG(int32, n, "N", .in = body)\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(int32, n", at=("n,", ".in = body"), words=["body"],
                            what="body argument on GET")

    def test_object_argument_in_query(self):
        obj = 'IM_OBJECT(pt, "P")\nIM_FIELD(double, x, "X")\n\n'
        for endpoint, arg in (('IM_ENDPOINT(GET, "/a")', 'IM_ARG(pt, p, "P")'),
                              ('IM_ENDPOINT(POST, "/a")', 'IM_ARG(pt, p, "P", .in = query)')):
            with self.subTest(endpoint=endpoint, arg=arg):
                src = module_src("m", obj + endpoint + "\n" + arg + "\n" + fn("a"))
                self.assertGenError(src, "IM_ARG(pt, p", at=arg[len("IM_ARG("):], words=["query"],
                                    what=f"object argument in the query ({arg})")

    def test_objects_holding_each_other(self):
        src = module_src("m", 'IM_OBJECT(aa, "A")\nIM_FIELD(bb, b1, "B")\nIM_OBJECT(bb, "B")\nIM_FIELD(aa, a1, "A")\n'
                              'IM_ENDPOINT(POST, "/a")\nIM_ARG(aa, x, "X")\n' + fn("a"))
        self.assertGenError(src, "IM_OBJECT(aa", words=["by value", "aa -> bb -> aa"], hint=True)

    # -- structure -----------------------------------------------------------------------------

    def test_arg_before_endpoint(self):
        src = module_src("m", 'IM_ARG(int32, n, "N")\nIM_ENDPOINT(POST, "/a")\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(int32, n", words=["IM_ARG"], what="IM_ARG before any IM_ENDPOINT")

    def test_result_twice(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N")\n'
                              'IM_RESULT(int32, "R")\nIM_RESULT(int64, "R2")\n' + fn("a"))
        self.assertGenError(src, "IM_RESULT(int64", words=["IM_RESULT"], what="IM_RESULT twice")

    def test_annotations_not_followed_by_function(self):
        body = 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N")\n\nstatic const int not_a_function = 1;\n'
        src = module_src("m", body)
        lines = {line_of(src, "IM_ENDPOINT(POST"), line_of(src, "IM_ARG(int32"),
                 line_of(src, "static const int")}
        self.assertGenError(src, "IM_ARG(int32", lines=lines, words=["function"],
                            what="annotations followed by a variable, not a function")
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N")\n')
        lines = {line_of(src, "IM_ENDPOINT(POST"), line_of(src, "IM_ARG(int32"), src.count("\n") + 1}
        self.assertGenError(src, "IM_ARG(int32", lines=lines, words=["function"],
                            what="annotations at the end of the file")

    def test_static_function(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N")\nstatic ' + fn("a"))
        lines = {line_of(src, "IM_ENDPOINT(POST"), line_of(src, "static int")}
        self.assertGenError(src, "static int", lines=lines, at="static", words=["int"],
                            what="static int endpoint function")

    def test_two_endpoints_one_function(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N")\n' + fn("a")
                         + 'IM_ENDPOINT(POST, "/b")\nIM_ARG(int32, n, "N")\n' + fn("a"))
        lines = {line_of(src, 'IM_ENDPOINT(POST, "/b")'), line_of(src, "int a(", 2)}
        self.assertGenError(src, "int a(", nth=2, lines=lines, at="a(", words=["'a'"],
                            what="two endpoints served by function a")

    def test_two_endpoints_one_function_across_modules(self):
        m = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N")\n' + fn("a"))
        n = module_src("n", 'IM_ENDPOINT(POST, "/b")\nIM_ARG(int32, n, "N")\n' + fn("a"))
        lines = {line_of(n, 'IM_ENDPOINT(POST, "/b")'), line_of(n, "int a(")}
        self.assertGenError(n, "int a(", lines=lines, at="a(", folder="n", others={"m": m},
                            order=["m", "n"], words=["'a'"],
                            what="function a serving endpoints of two modules")

    def test_module_name_not_folder(self):
        src = module_src("other", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N")\n' + fn("a"))
        self.assertGenError(src, "IM_MODULE(other", at="other", words=["other"], folder="m",
                            what="IM_MODULE(other) in folder m")

    def test_two_modules_in_one_folder(self):
        src = module_src("m", 'IM_MODULE(m, "again")\n\nIM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N")\n'
                         + fn("a"))
        self.assertGenError(src, 'IM_MODULE(m, "again")', words=["IM_MODULE"], what="a second IM_MODULE")

    def test_folder_without_module(self):
        src = '#include "immersive.h"\n\nint helper(void);\nint helper(void) { return 1; }\n'
        self.assertGenError(src, "#include", lines=set(range(1, src.count("\n") + 2)),
                            words=["IM_MODULE"], folder="empty", what="module folder without IM_MODULE")

    def test_unclosed_annotation(self):
        cases = [
            ('IM_ENDPOINT(POST, "/a", .summary = "s"\nIM_ARG(int32, n, "N")\n', "IM_ENDPOINT(POST"),
            ('IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N", .min = (1)\n', "IM_ARG(int32"),
            ('IM_ENDPOINT(POST, "/a")\nIM_ARG(enum, e, "E", .values = {"x", "y")\n', "IM_ARG(enum"),
        ]
        for body, needle in cases:
            with self.subTest(annotation=body.splitlines()[-1]):
                src = module_src("m", body + fn("a"))
                self.assertGenError(src, needle, at=needle, what=f"unbalanced parentheses in {needle}")
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N"')
        self.assertGenError(src, "IM_ARG(int32", at="IM_ARG(", what="annotation unclosed at end of file")

    # -- positions, atomicity ----------------------------------------------------------------------

    def test_line_after_comments_and_crlf(self):
        body = ('/* a\n * multi-line comment IM_ARG(int16, z, "ignored")\n */\n'
                'IM_ENDPOINT(POST, "/a")\n// IM_ARG(nothing here\nIM_ARG(int16, n, "N")\n' + fn("a"))
        src = module_src("m", body)
        self.assertGenError(src, 'IM_ARG(int16, n', at="int16",
                            what="line of an error after comments holding annotation-like text")
        self.assertGenError(src.replace("\n", "\r\n"), 'IM_ARG(int16, n', at="int16",
                            what="line of an error in a file with CRLF line ends")

    def test_error_in_second_module_writes_nothing(self):
        good = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N")\n' + fn("a"))
        bad = module_src("z", 'IM_ENDPOINT(POST, "/z")\nIM_ARG(int16, n, "N")\n' + fn("z"))
        self.assertGenError(bad, "IM_ARG(int16", at="int16", folder="z", others={"m": good},
                            order=["m", "z"], what="error in the second of two modules")

    def test_failed_run_leaves_previous_output_untouched(self):
        base = tempfile.mkdtemp(dir=self.tmp)
        d = write_module(base, "m", module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N")\n'
                                                    + fn("a")))
        out = os.path.join(base, "out")
        p = run_gen([d], out, service="svc")
        self.assertEqual(p.returncode, 0, f"a valid module is accepted; stderr:\n{p.stderr}")
        before = {}
        for name in os.listdir(out):
            with open(os.path.join(out, name), "rb") as f:
                before[name] = f.read()
        write_module(base, "m", module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int16, n, "N")\n' + fn("a")))
        p = run_gen([d], out, service="svc")
        self.assertNotEqual(p.returncode, 0, "the broken module is refused")
        after = {}
        for name in os.listdir(out):
            with open(os.path.join(out, name), "rb") as f:
                after[name] = f.read()
        self.assertEqual(after, before, "a refused run leaves the previous output as it was")

    # -- defects found ------------------------------------------------------------------------

    # Regression: a double bound or default that overflows to infinity crashes the generator with a
    # Python traceback (ValueError: inf) instead of a file:line:col error.

    def test_bug_infinite_double_crashes(self):
        for attr in (".default = 1e400", ".max = 1e999"):
            with self.subTest(attr=attr):
                src = module_src("m", f'IM_ENDPOINT(POST, "/a")\nIM_ARG(double, d, "D", {attr})\n' + fn("a"))
                self.assertGenError(src, "IM_ARG(double, d", at=attr, what=f"double {attr} (infinite)")

    # Regression: an int32 with .exclusive_min = 1, .exclusive_max = 2 admits no value (README: "a
    # constraint ... that no value satisfies" is refused), yet it is accepted.

    def test_bug_integer_exclusive_bounds_without_value(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\n'
                              'IM_ARG(int32, n, "N", .exclusive_min = 1, .exclusive_max = 2)\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(int32, n", at=".exclusive_min = 1, .exclusive_max = 2",
                            hint=True, what="int32 strictly between 1 and 2")

    # Regression: the generated im_register_<service>() adds GET /openapi.json itself, so an endpoint
    # GET /openapi.json is a duplicate route: accepted, it makes im_register_<service>() fail
    # at run time (non-zero, the route already exists) instead of being refused here.

    def test_bug_route_clashing_with_openapi_json(self):
        src = module_src("m", 'IM_ENDPOINT(GET, "/openapi.json")\nIM_ARG(int32, n, "N")\n' + fn("a"))
        self.assertGenError(src, 'IM_ENDPOINT(GET, "/openapi.json")', at='"/openapi.json"',
                            what="endpoint GET /openapi.json clashing with the generated one")


# ---------------------------------------------------------------------------------------------
# Defects where accepted annotations generate C that does not compile (README: "What it
# accepts compiles"). Each is either refused (fine) or must compile.


class AcceptedMustCompileTest(unittest.TestCase):
    def setUp(self):
        why = have_c_toolchain()
        if why:
            raise unittest.SkipTest(why)
        self.tmp = tempfile.mkdtemp(prefix="im_gen_bug_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def assertRefusedOrCompiles(self, src, what, files=("module", "routes")):
        d = write_module(self.tmp, "m", src)
        out = os.path.join(self.tmp, "out")
        p = run_gen([d], out, service="svc")
        self.assertNotIn("Traceback", p.stderr, f"{what}: no Python traceback")
        if p.returncode != 0:
            self.assertRegex(p.stderr.splitlines()[0], r":\d+:\d+: error: ",
                             f"{what}: refused with a positioned error")
            return
        targets = {"module": os.path.join(d, "m.c"), "routes": os.path.join(out, "svc.routes.c")}
        for which in files:
            c = cc([*CFLAGS, "-I" + ROOT, "-I" + out, "-fsyntax-only", targets[which]])
            self.assertEqual(c.returncode, 0, f"{what}: accepted, so the {which} source must compile:\n"
                                              f"{c.stderr[:2000]}")

    # Regression: the same IM_FIELD name twice in an IM_RESULT(object, ...) is accepted (twice in an
    # IM_OBJECT it is refused) and the result struct gets a duplicate member.

    def test_bug_duplicate_result_field(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int32, n, "N")\n'
                              'IM_RESULT(object, "R")\nIM_FIELD(int32, x, "")\nIM_FIELD(int32, x, "")\n'
                         + fn("a"))
        self.assertRefusedOrCompiles(src, "IM_FIELD x twice in a result object", files=("module",))

    # Regression: an IM_OBJECT with a field of its own array type (node[] inside node) is accepted, but
    # node_list is used in struct node before it is declared.

    def test_bug_recursive_object(self):
        src = module_src("m", 'IM_OBJECT(node, "A tree")\nIM_FIELD(node[], kids, "Children")\n\n'
                              'IM_ENDPOINT(POST, "/a")\nIM_ARG(node, root, "R")\n' + fn("a"))
        self.assertRefusedOrCompiles(src, "object node holding node[]", files=("module",))

    # Regression: an IM_OBJECT named after a library type (im_str) is accepted and redefines it.

    def test_bug_object_named_like_a_library_type(self):
        src = module_src("m", 'IM_OBJECT(im_str, "Clash")\nIM_FIELD(int32, x, "")\n')
        self.assertRefusedOrCompiles(src, "IM_OBJECT(im_str)", files=("module",))


class ModuleAttributesTest(GenErrorCase):
    """IM_MODULE's .init/.fini/.serial, an endpoint's .executor, and defaults.toml."""

    def test_accepted_attributes_reach_the_tables(self):
        src = ('#include "immersive.h"\n#include "m.gen.h"\n\n'
               'IM_MODULE(m, "A module", .init = m_init, .fini = m_fini, .serial = true)\n\n'
               'int m_init(im_module *mod) { (void)mod; return 0; }\n'
               'void m_fini(im_module *mod) { (void)mod; }\n'
               'IM_ENDPOINT(POST, "/a")\n' + fn("a") +
               'IM_ENDPOINT(POST, "/b", .mode = IM_INLINE)\n' + fn("b") +
               'IM_ENDPOINT(POST, "/c", .executor = "gpu")\n' + fn("c"))
        base = tempfile.mkdtemp(dir=self.tmp)
        d = write_module(base, "m", {"m.c": src, "defaults.toml": "[m]\nsize = 3\n"})
        out = os.path.join(base, "out")
        p = run_gen([d], out)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(out, SERVICE + ".routes.c")) as f:
            routes = f.read()
        with open(os.path.join(out, "m.gen.h")) as f:
            header = f.read()
        self.assertIn("int m_init(im_module *m);", header)
        self.assertIn("void m_fini(im_module *m);", header)
        self.assertRegex(routes, r'\{"m", "A module", m_init, m_fini, 1, im_gen_defaults_m\}')
        self.assertIn('"[m]\\012size = 3\\012"', routes)
        rows = {r.split(",")[1].strip(): r for r in routes.splitlines() if r.strip().startswith('{"POST"')}
        self.assertIn("IM_MODE_SERIAL", rows['"/a"'], ".serial module: no .mode runs serial")
        self.assertIn("IM_MODE_INLINE", rows['"/b"'], "an endpoint's .mode wins")
        self.assertIn("IM_MODE_POOL", rows['"/c"'])
        self.assertTrue(rows['"/c"'].rstrip().endswith('"gpu", 0, 0u, NULL, 200},'), rows['"/c"'])  # executor, no ndarray result, no check, 200
        self.assertIn("im_server_add_service(s, im_gen_modules, 1, im_gen_endpoints, 3, im_gen_openapi)",
                      routes)
        c = cc([*CFLAGS, "-I" + ROOT, "-I" + out, "-fsyntax-only", os.path.join(out, SERVICE + ".routes.c")])
        self.assertEqual(c.returncode, 0, c.stderr[:2000])

    def test_unknown_module_attribute(self):
        src = ('#include "immersive.h"\n\nIM_MODULE(m, "A module", .inti = m_init)\n')
        self.assertGenError(src, "IM_MODULE(m", at=".inti", words=["inti"], hint=True)

    def test_serial_wants_a_boolean(self):
        src = ('#include "immersive.h"\n\nIM_MODULE(m, "A module", .serial = 1)\n')
        self.assertGenError(src, "IM_MODULE(m", at="1", words=["serial"], hint=True)

    def test_executor_with_another_mode(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a", .mode = IM_SERIAL, .executor = "gpu")\n' + fn("a"))
        self.assertGenError(src, 'IM_ENDPOINT(POST, "/a"', at=".mode", words=["executor"], hint=True)

    def test_defaults_with_another_table(self):
        base = tempfile.mkdtemp(dir=self.tmp)
        d = write_module(base, "m", {"m.c": module_src("m", ""), "defaults.toml": "[server]\nport = 1\n"})
        p = run_gen([d], os.path.join(base, "out"))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("defaults.toml:1:1: error: defaults.toml holds server", p.stderr)


class NdarrayTest(GenErrorCase):
    """ndarray arguments and results: what is refused, where, and what is accepted compiles into
    the field's dtype mask, dimensions and shape."""

    def test_unknown_dtype(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(ndarray, x, "X", .dtype = "f16")\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(ndarray", at='"f16"', words=["dtype", "f16"], hint=True)

    def test_shape_disagrees_with_ndim(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(ndarray, x, "X", .ndim = 3, .shape = {-1, 2})\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(ndarray", at="{-1, 2}", words=["shape", "ndim"], hint=True)

    def test_ndim_out_of_range(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(ndarray, x, "X", .ndim = 9)\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(ndarray", at="9", words=["ndim"], hint=True)

    def test_ndarray_in_query(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(ndarray, x, "X", .in = query)\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(ndarray", words=["body"], hint=True)

    def test_ndarray_array_type(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(ndarray[], x, "X")\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(ndarray", words=["ndarray[]"], hint=True)

    def test_ndarray_default(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(ndarray, x, "X", .default = 1)\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(ndarray", words=["default"], hint=True)

    def test_ndarray_object_field(self):
        src = module_src("m", 'IM_OBJECT(o, "O")\nIM_FIELD(ndarray, x, "X")\n'
                         'IM_ENDPOINT(POST, "/a")\nIM_ARG(o, v, "V")\n' + fn("a"))
        self.assertGenError(src, "IM_FIELD(ndarray", words=["ndarray"], hint=True)

    def test_min_on_ndarray(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(ndarray, x, "X", .min = 0)\n' + fn("a"))
        self.assertGenError(src, "IM_ARG(ndarray", at=".min", words=[".min"], hint=True)

    def test_accepted_field_and_table(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a", .mode = IM_POOL)\n'
                         'IM_ARG(ndarray, x, "X", .dtype = {"u8", "i32"}, .shape = {-1, 3}, .max_items = 30)\n'
                         'IM_RESULT(ndarray, "Y")\n' + fn("a")
                         + 'IM_ENDPOINT(POST, "/b")\nIM_ARG(ndarray, x, "X")\nIM_ARG(int32, n, "N")\n' + fn("b"))
        p, out, _ = self.gen({"m": src})
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(out, SERVICE + ".routes.c")) as f:
            routes = f.read()
        # u8 is bit 4, i32 bit 3: 24; two dimensions; the shape's sizes
        self.assertIn('im_gen_f_a_x = {.name = "x", .type = IM_T_NDARRAY, .max_items = 30u, .flags = IM_F_MAXITEMS, '
                      '.dtypes = 24u, .ndim = 2, .shape = im_gen_f_a_x_shape};', routes)
        self.assertIn("static const int64_t im_gen_f_a_x_shape[] = {-1, 3};", routes)
        self.assertIn("im_bind_npy(b, &im_gen_f_a_x, &a->x)", routes)  # the only body argument
        self.assertNotIn("im_bind_npy(b, &im_gen_f_b_x", routes)        # one of two: JSON only
        with open(os.path.join(out, SERVICE + ".openapi.json")) as f:
            doc = json.load(f)
        a = doc["paths"]["/a"]["post"]
        self.assertIn("application/x-npy", a["requestBody"]["content"])
        self.assertIn("application/x-npy", a["responses"]["200"]["content"])
        self.assertNotIn("application/x-npy", doc["paths"]["/b"]["post"]["requestBody"]["content"])
        x = doc["components"]["schemas"]["a_args"]["properties"]["x"]
        self.assertEqual(x["type"], "array")
        self.assertEqual(x["items"], {"type": "array", "items": {"type": "integer"}, "minItems": 3, "maxItems": 3})
        self.assertEqual(x["x-immersive-ndarray"], {"dtype": ["i32", "u8"], "ndim": 2, "shape": [-1, 3],
                                                     "maxElements": 30})


# ---------------------------------------------------------------------------------------------
# --docs: the files of /docs and /redoc, here from a node_modules layout (a local npm install),
# compiled in and served by a real server.

REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


class DocsGenTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="im_gen_docs_")
        nm = os.path.join(cls.tmp, "node_modules")
        files = {"swagger-ui-dist/swagger-ui-bundle.js": "window.SwaggerUIBundle = 1;\n" * 400,
                 "swagger-ui-dist/swagger-ui.css": ".swagger-ui { color: red }\n" * 300,
                 "swagger-ui-dist/LICENSE": "Apache License 2.0 (test)\n",
                 "swagger-ui-dist/package.json": '{"name": "swagger-ui-dist", "version": "9.8.7"}',
                 "redoc/bundles/redoc.standalone.js": f'var logo = "{REDOC_LOGO}";\n' * 2,
                 "redoc/LICENSE": "MIT (test)\n",
                 "redoc/package.json": '{"name": "redoc", "version": "6.5.4"}'}
        for name, text in files.items():
            path = os.path.join(nm, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        cls.files = files
        mod = write_module(cls.tmp, "tiny", module_src("tiny", 'IM_ENDPOINT(GET, "/v1/tiny/one")\n'
                                                       'IM_RESULT(int64, "One")\n' + fn("one")))
        cls.out = os.path.join(cls.tmp, "out")
        cls.proc = run_gen([mod], cls.out, extra_args=("--docs", nm))
        cls.routes = ""
        if cls.proc.returncode == 0:
            with open(os.path.join(cls.out, SERVICE + ".routes.c")) as f:
                cls.routes = f.read()
        cls.mod = mod
        cls.nm = nm

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_generated(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)
        self.assertIn("redoc 6.5.4, swagger-ui-dist 9.8.7", self.routes)
        self.assertIn("im_server_add_docs(s, im_gen_docs, 5)", self.routes)
        for url in ("/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/LICENSE",
                    "/redoc/redoc.standalone.js", "/redoc/LICENSE"):
            self.assertIn(f'"{url}"', self.routes)

    def test_gzip_copies_and_the_patched_redoc(self):
        import gzip
        d = os.path.join(self.out, "docs")
        for name, src in (("swagger-ui-bundle.js", "swagger-ui-dist/swagger-ui-bundle.js"),
                          ("swagger-ui.css", "swagger-ui-dist/swagger-ui.css")):
            with open(os.path.join(d, name + ".gz"), "rb") as f:
                self.assertEqual(gzip.decompress(f.read()).decode(), self.files[src])
        with open(os.path.join(d, "redoc.standalone.js")) as f:
            patched = f.read()
        self.assertNotIn(REDOC_LOGO, patched)
        self.assertEqual(patched.count("data:image/svg+xml,"), 2)
        self.assertIn(os.path.join(d, "redoc.standalone.js"), self.routes)  # served from it

    def test_deterministic(self):
        out2 = os.path.join(self.tmp, "out2")
        p = run_gen([self.mod], out2, extra_args=("--docs", self.nm))
        self.assertEqual(p.returncode, 0, p.stderr)
        for name in ("docs/swagger-ui-bundle.js.gz", "docs/swagger-ui.css.gz"):
            with open(os.path.join(self.out, name), "rb") as a, open(os.path.join(out2, name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)

    def test_missing_files_are_refused(self):
        empty = os.path.join(self.tmp, "empty")
        os.makedirs(os.path.join(empty, "swagger-ui-dist"), exist_ok=True)
        p = run_gen([self.mod], os.path.join(self.tmp, "out3"), extra_args=("--docs", empty))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no swagger-ui-bundle.js", p.stderr)
        self.assertIn("hint:", p.stderr)

    def test_served_by_a_real_server(self):
        why = have_c_toolchain()
        if why:
            self.skipTest(why)
        src = [os.path.join(self.mod, "tiny.c")]
        for url, want in (("/docs/swagger-ui.css", self.files["swagger-ui-dist/swagger-ui.css"]),
                          ("/redoc/LICENSE", "MIT (test)\n")):
            self.assertEqual(serve_once(self, self.tmp, self.out, src, url), want, url)
        page = serve_once(self, self.tmp, self.out, src, "/docs")
        self.assertTrue(page.startswith("<!DOCTYPE html>"), page[:200])
        self.assertIn('href="docs/swagger-ui.css"', page)


# ---------------------------------------------------------------------------------------------
# Regression (issue 15): the fields of an IM_RESULT(object) are the answer's, not arguments: on
# a GET one may be an object, and one may be named like a path parameter.

RESULTS_SRC = r"""#include "immersive.h"
#include "res.gen.h"

IM_MODULE(res, "Result fields")

IM_OBJECT(pt, "A point")
IM_FIELD(double, x, "x")
IM_FIELD(double, y, "y")

IM_ENDPOINT(GET, "/v1/res/{id}/where", .summary = "Where it is")
IM_ARG(int64, id, "The id")
IM_RESULT(object, "Where it is")
IM_FIELD(pt, at, "The point")
IM_FIELD(int64, id, "The id again")
IM_FIELD(pt[], trail, "Where it was")
int where(im_call *call, const where_args *in, where_result *out)
{
    static const pt trail[2] = {{0, 0}, {0.5, 1}};
    (void)call;
    out->at.x = 1.5;
    out->at.y = -2;
    out->id = in->id;
    out->trail.ptr = trail;
    out->trail.len = 2;
    return 0;
}
"""


class ResultFieldsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="im_gen_res_")
        cls.mod = write_module(cls.tmp, "res", RESULTS_SRC)
        cls.out = os.path.join(cls.tmp, "out")
        cls.proc = run_gen([cls.mod], cls.out)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_accepted(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)

    def test_document(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)
        with open(os.path.join(self.out, SERVICE + ".openapi.json")) as f:
            doc = json.load(f)
        op = doc["paths"]["/v1/res/{id}/where"]["get"]
        self.assertEqual([(p["name"], p["in"]) for p in op["parameters"]], [("id", "path")])
        res = doc["components"]["schemas"]["where_result"]
        self.assertEqual(sorted(res["properties"]), ["at", "id", "trail"])
        self.assertIn('"#/components/schemas/pt"', json.dumps(res["properties"]["at"]))
        self.assertEqual(res["properties"]["id"]["type"], "integer")

    def test_served(self):
        why = have_c_toolchain()
        if why:
            self.skipTest(why)
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)
        body = serve_once(self, self.tmp, self.out, [os.path.join(self.mod, "res.c")],
                          "/v1/res/7/where")
        self.assertEqual(json.loads(body), {"at": {"x": 1.5, "y": -2}, "id": 7,
                                            "trail": [{"x": 0, "y": 0}, {"x": 0.5, "y": 1}]})


def serve_once(test, tmp, out, sources, target, status="200"):
    """Compiles sources with the generated routes and a main that starts a server, GETs
    target once and prints the body; returns it (the status asserted)."""
    main_c = os.path.join(tmp, "serve_main.c")
    with open(main_c, "w") as f:
        f.write('#define IMMERSIVE_IMPLEMENTATION\n#include "immersive.h"\n'
                f'#include "{SERVICE}.service.h"\n#include "support/http_client.h"\n'
                "int main(int argc, char **argv)\n{\n"
                "    im_server_opts o = {0};\n    o.port = -1;\n    o.loops = 1;\n"
                "    o.no_signals = 1;\n    im_log_set_level(IM_LOG_WARN);\n"
                "    im_server *s = im_server_new(&o);\n"
                f"    if (argc < 2 || im_register_{SERVICE}(s) || im_server_start(s)) return 77;\n"
                "    http_resp r;\n"
                "    http_call(im_server_port(s), \"GET\", argv[1], NULL, &r);\n"
                "    printf(\"%d\\n%s\", r.status, r.body ? r.body : \"\");\n"
                "    http_free(&r);\n    im_server_stop(s);\n    im_server_wait(s);\n"
                "    im_server_free(s);\n    return 0;\n}\n")
    exe = os.path.join(tmp, "serve_once")
    if os.path.exists(exe):  # built once per folder
        r = subprocess.run([exe, target], capture_output=True, text=True, timeout=30)
        got, _, body = r.stdout.partition("\n")
        test.assertEqual(got, status, r.stdout + r.stderr)
        return body
    p = cc([*CFLAGS, "-I" + ROOT, "-I" + out, "-I" + os.path.join(ROOT, "tests"), *sources,
            os.path.join(out, SERVICE + ".routes.c"), main_c, "-o", exe, *LIBS])
    test.assertEqual(p.returncode, 0, p.stderr)
    r = subprocess.run([exe, target], capture_output=True, text=True, timeout=30)
    if r.returncode == 77:
        test.skipTest("the server cannot start here (io_uring?)")
    got, _, body = r.stdout.partition("\n")
    test.assertEqual(got, status, r.stdout + r.stderr)
    return body


# ---------------------------------------------------------------------------------------------
# Regression (issue 15): the lexer reads hex numbers, macros continued over lines, octal
# escapes, and leaves out what `#if 0` leaves out; limits the C side has are refused here.


class LexerTest(GenErrorCase):
    def doc_of(self, src):
        p, out, _ = self.gen({"m": src})
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(out, SERVICE + ".openapi.json")) as f:
            return json.load(f)

    def test_hex_literal(self):
        doc = self.doc_of(module_src("m", 'IM_ENDPOINT(POST, "/a")\n'
                                          'IM_ARG(int64, n, "N", .max = 0xFF, .min = 0x0)\n' + fn("a")))
        props = doc["components"]["schemas"]["a_args"]["properties"]["n"]
        self.assertEqual((props["minimum"], props["maximum"]), (0, 255))

    def test_macro_continued_over_lines(self):
        doc = self.doc_of(module_src("m", '#define TWICE(x) \\\n    ((x) * 2) /* \\ */ \\\n    + 0\n'
                                          '#define Q "it\'s"\n'
                                          'IM_ENDPOINT(POST, "/a")\nIM_ARG(int64, n, "N")\n' + fn("a")))
        self.assertIn("/a", doc["paths"])

    def test_if_0_leaves_annotations_out(self):
        src = module_src("m", '#if 0\nIM_ENDPOINT(POST, "/gone")\nIM_ARG(int64, n, "N")\n'
                              + fn("gone") + '#else\nIM_ENDPOINT(POST, "/kept")\n'
                              'IM_ARG(int64, n, "N")\n' + fn("kept") + '#endif\n'
                              '#if 1\nIM_ENDPOINT(POST, "/one")\n' + fn("one") +
                              '#else\nIM_ENDPOINT(POST, "/other")\n' + fn("other") + '#endif\n'
                              '#ifdef SOMETHING\n#if 0\n#endif\n#endif\n')
        self.assertEqual(sorted(self.doc_of(src)["paths"]), ["/kept", "/one"])

    def test_octal_escape(self):
        doc = self.doc_of(module_src("m", 'IM_ENDPOINT(POST, "/a", .summary = "two\\012lines\\101")\n'
                                          + fn("a")))
        self.assertEqual(doc["paths"]["/a"]["post"]["summary"], "two\nlinesA")

    def test_too_many_path_parameters(self):
        path = "/" + "/".join("{p%d}" % i for i in range(9))
        args = "".join('IM_ARG(int64, p%d, "P")\n' % i for i in range(9))
        self.assertGenError(module_src("m", f'IM_ENDPOINT(GET, "{path}")\n' + args + fn("a")),
                            "IM_ENDPOINT", words=("9 parameters", "8 at most"), hint=True)

    def test_nul_in_a_default(self):
        self.assertGenError(module_src("m", 'IM_ENDPOINT(POST, "/a")\n'
                                            'IM_ARG(string, s, "S", .default = "a\\0b")\n' + fn("a")),
                            "IM_ARG", words=("NUL",), hint=True)


# ---------------------------------------------------------------------------------------------
# Regression (issue 15): an answer that breaks its own schema is a 500 naming the field, never
# a null where the document promises a number or a string.

CHECKS_SRC = r"""#include "immersive.h"
#include <math.h>
#include <string.h>
#include "chk.gen.h"

IM_MODULE(chk, "Answers checked")

IM_OBJECT(pt, "A point")
IM_FIELD(double, x, "x", .min = 0)
IM_FIELD(string, label, "Its label", .max_length = 3)

IM_ENDPOINT(GET, "/v1/chk/{what}", .summary = "One answer, good or bad")
IM_ARG(int64, what, "Which")
IM_RESULT(object, "Several kinds")
IM_FIELD(double, d, "A finite double")
IM_FIELD(int64, n, "At most 5", .max = 5)
IM_FIELD(string, s, "A string")
IM_FIELD(enum, color, "A color", .values = {"red", "green"})
IM_FIELD(pt, at, "A point")
IM_FIELD(pt[], trail, "Points", .max_items = 2)
IM_FIELD(int64[], small, "Small ones", .max = 9)
int probe(im_call *call, const probe_args *in, probe_result *out)
{
    static pt trail[3] = {{1, {"a", 1}}, {2, {"b", 1}}, {3, {"c", 1}}};
    (void)call;
    out->d = 1;
    out->n = 5;
    out->s = (im_str){"ok", 2};
    out->color = 1;
    out->at = (pt){0.5, {"abc", 3}};
    out->trail = (pt_list){trail, 2};
    static const int64_t small[2] = {1, 9}, big[2] = {1, 10};
    out->small.ptr = small;
    out->small.len = 2;
    switch (in->what) {
    case 1: out->d = NAN; break;
    case 2: out->n = 6; break;
    case 3: out->s = (im_str){NULL, 0}; break;
    case 4: out->color = 2; break;
    case 5: out->at.x = -1; break;
    case 6: out->at.label = (im_str){"abcd", 4}; break;
    case 7: out->trail.len = 3; break;
    case 8: trail[1].x = INFINITY; break;
    case 9: out->small.ptr = big; break;
    }
    return 0;
}

IM_ENDPOINT(GET, "/v1/chk/scalar/{v}")
IM_ARG(double, v, "Its logarithm is the answer")
IM_RESULT(double, "log(v)")
int scalar(im_call *call, const scalar_args *in, scalar_result *out)
{
    (void)call;
    out->result = log(in->v);
    return 0;
}
"""


class ResponseCheckTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="im_gen_chk_")
        cls.mod = write_module(cls.tmp, "chk", CHECKS_SRC)
        cls.out = os.path.join(cls.tmp, "out")
        cls.proc = run_gen([cls.mod], cls.out)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def call(self, target, status):
        why = have_c_toolchain()
        if why:
            self.skipTest(why)
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)
        return json.loads(serve_once(self, self.tmp, self.out, [os.path.join(self.mod, "chk.c")],
                                     target, status))

    def test_a_good_answer_passes(self):
        self.assertEqual(self.call("/v1/chk/0", "200")["at"], {"x": 0.5, "label": "abc"})
        self.assertEqual(self.call("/v1/chk/scalar/1", "200"), {"result": 0})

    def test_each_break_is_a_500_naming_it(self):
        cases = {1: "response.d: nan is not a finite number",
                 2: "response.n: 6 is above its maximum 5",
                 3: "response.s: not set",
                 4: "response.color: 2 is none of its 2 values",
                 5: "response.at.x: -1 is below its minimum 0",
                 6: "response.at.label: more than 3 characters",
                 7: "response.trail: 3 items, more than 2",
                 8: "response.trail[1].x: inf is not a finite number",
                 9: "response.small[1]: 10 is above its maximum 9"}
        for what, msg in cases.items():
            with self.subTest(what=what):
                detail = self.call(f"/v1/chk/{what}", "500")["detail"]
                self.assertTrue(detail.startswith("the answer breaks its schema: " + msg), detail)
        detail = self.call("/v1/chk/scalar/0", "500")["detail"]
        self.assertIn("response.result: -inf is not a finite number", detail)


# ---------------------------------------------------------------------------------------------
# Regression (issue 15): names the generator accepted but the C compiler then refused are caught
# by one table of every name the generated files declare; libc names are free, as the routes
# include no libc header.


class NamesTest(GenErrorCase):
    def test_object_list_type_and_a_handler(self):
        src = module_src("m", 'IM_OBJECT(item, "An item")\nIM_FIELD(int64, n, "N")\n\n'
                              'IM_ENDPOINT(POST, "/a")\nIM_ARG(item, it, "It")\n' + fn("item_list"))
        self.assertGenError(src, "item_list(", words=("item_list",), hint=True)

    def test_enum_constants_that_collide(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\n'
                              'IM_ARG(enum, sort, "S", .values = {"by_date", "by_name"})\n'
                              'IM_ARG(enum, sort_by, "B", .values = {"date"})\n' + fn("f"))
        self.assertGenError(src, "sort_by,", words=("f_sort_by_date",), hint=True)

    def test_handlers_named_like_the_callers_parameters(self):
        for name in ("call", "args", "out"):
            with self.subTest(name=name):
                src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int64, n, "N")\n' + fn(name))
                self.assertGenError(src, f"int {name}(", words=(name,), hint=True)

    def test_objects_named_like_generated_locals(self):
        for name in ("b", "dst", "w", "o"):
            with self.subTest(name=name):
                src = module_src("m", f'IM_OBJECT({name}, "A thing")\nIM_FIELD(int64, n, "N")\n\n'
                                      f'IM_ENDPOINT(POST, "/a")\nIM_ARG({name}, it, "It")\n' + fn("f"))
                self.assertGenError(src, f"IM_OBJECT({name}", words=(name,), hint=True)

    def test_objects_named_like_built_in_schemas(self):
        for name in ("HTTPError", "HTTPValidationError", "TaskAccepted"):
            with self.subTest(name=name):
                src = module_src("m", f'IM_OBJECT({name}, "Mine")\nIM_FIELD(int64, n, "N")\n\n'
                                      f'IM_ENDPOINT(POST, "/a")\nIM_ARG({name}, it, "It")\n' + fn("f"))
                self.assertGenError(src, f"IM_OBJECT({name}", words=(name, "schema"), hint=True)

    def test_compiler_builtins_refused(self):
        for name in ("index", "log", "round", "printf", "memcmp"):
            with self.subTest(name=name):
                src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int64, n, "N")\n' + fn(name))
                self.assertGenError(src, f"int {name}(", words=(name, "C library"), hint=True)

    def test_libc_names_compile(self):
        """Other libc names are free: the routes include no libc header."""
        why = have_c_toolchain()
        if why:
            self.skipTest(why)
        body = "".join(f'IM_ENDPOINT(POST, "/{n}")\nIM_ARG(int64, x, "X")\n' + fn(n) + "\n"
                       for n in ("remove", "rename", "read", "write", "open", "close", "select", "send"))
        p, out, paths = self.gen({"m": module_src("m", body)})
        self.assertEqual(p.returncode, 0, p.stderr)
        obj = os.path.join(self.tmp, "r.o")
        c = cc([*CFLAGS, "-I" + ROOT, "-I" + out, "-c", os.path.join(out, SERVICE + ".routes.c"), "-o", obj])
        self.assertEqual(c.returncode, 0, c.stderr)


# ---------------------------------------------------------------------------------------------
# Regression (issue 15): #line maps only the lines that stand for the user's (a member for its
# IM_FIELD, a prototype for its function), one line each; the generated code is its own file's.


class LineDirectivesTest(unittest.TestCase):
    def test_only_the_users_lines(self):
        tmp = tempfile.mkdtemp(prefix="im_gen_line_")
        self.addCleanup(shutil.rmtree, tmp, True)
        out = os.path.join(tmp, "out")
        dirs, p = generate_accepted(tmp, out)
        self.assertEqual(p.returncode, 0, p.stderr)
        mapped = 0
        for name in os.listdir(out):
            if not name.endswith((".c", ".h")):
                continue
            with open(os.path.join(out, name)) as f:
                lines = f.read().split("\n")
            for i, line in enumerate(lines):
                m = re.match(r'#line (\d+) "(.*)"$', line)
                if not m:
                    continue
                if m.group(2) == name:  # back: the next line is that line of this file
                    self.assertEqual(int(m.group(1)), i + 2, f"{name}:{i + 1}: {line}")
                    continue
                mapped += 1
                user = m.group(2)
                self.assertTrue(os.path.isabs(user) and os.path.exists(user), line)
                self.assertRegex(lines[i + 2], rf'^#line {i + 4} "{re.escape(name)}"$',
                                 f"{name}:{i + 1}: one line stands for {user}:{m.group(1)}, then back")
                with open(user) as f:
                    src = f.read().split("\n")[int(m.group(1)) - 1]
                self.assertRegex(src, r"IM_(FIELD|ARG|OBJECT|ENDPOINT)\(|^\w.*\(", f"{user}:{m.group(1)}")
        self.assertGreater(mapped, 10)
        with open(os.path.join(out, SERVICE + ".routes.c")) as f:
            routes = f.read()
        self.assertNotRegex(routes, r'#line \d+ "/', "the routes' code is the routes' own")


# ---------------------------------------------------------------------------------------------
# .status (issue 15): a success's own status, in the table and the document.


class StatusTest(GenErrorCase):
    def test_accepted(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a", .status = 201)\nIM_ARG(int64, n, "N")\n'
                              'IM_RESULT(int64, "N")\n' + fn("a") +
                              '\nIM_ENDPOINT(DELETE, "/b/{id}", .status = 204)\nIM_ARG(int64, id, "Id")\n' + fn("b"))
        p, out, _ = self.gen({"m": src})
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(out, SERVICE + ".openapi.json")) as f:
            doc = json.load(f)
        a = doc["paths"]["/a"]["post"]["responses"]
        self.assertEqual(a["201"]["description"], "Created")
        self.assertNotIn("200", a)
        self.assertEqual(doc["paths"]["/b/{id}"]["delete"]["responses"]["204"], {"description": "No Content"})
        with open(os.path.join(out, SERVICE + ".routes.c")) as f:
            routes = f.read()
        self.assertRegex(routes, r'\{"POST", +"/a",.*, 201\},')

    def test_refused(self):
        for value in ("302", "202", "99", "true"):
            with self.subTest(value=value):
                src = module_src("m", f'IM_ENDPOINT(POST, "/a", .status = {value})\n' + fn("a"))
                self.assertGenError(src, "IM_ENDPOINT", words=(".status",), hint=True)

    def test_204_with_a_result(self):
        src = module_src("m", 'IM_ENDPOINT(POST, "/a", .status = 204)\nIM_RESULT(int64, "N")\n' + fn("a"))
        self.assertGenError(src, "IM_ENDPOINT", words=("204", "IM_RESULT"), hint=True)


# ---------------------------------------------------------------------------------------------
# Issue 15, part 2: the annotations FastAPI users expect. tests/lang is the module that uses them
# (tests/test_lang.c drives it over HTTP); here: its document, and every refusal.

LANG = os.path.join(ROOT, "tests", "lang")


class LanguageDocTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="im_gen_lang_")
        cls.out = os.path.join(cls.tmp, "out")
        cls.proc = run_gen([LANG], cls.out)
        cls.doc = None
        if cls.proc.returncode == 0:
            with open(os.path.join(cls.out, SERVICE + ".openapi.json")) as f:
                cls.doc = json.load(f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def schemas(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)
        return self.doc["components"]["schemas"]

    def params(self, path, method="get"):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)
        return {p["name"]: p for p in self.doc["paths"][path][method].get("parameters", [])}

    def test_number_types(self):
        props = self.schemas()["nums_args"]["properties"]
        self.assertEqual(props["u32"]["format"], "uint32")
        self.assertEqual((props["u32"]["minimum"], props["u32"]["maximum"]), (0, 2**32 - 1))
        self.assertEqual((props["u64"]["minimum"], props["u64"]["maximum"]), (0, 2**64 - 1))
        self.assertEqual(props["big"]["minimum"], 10000000000000000000)  # the bound replaces the type's
        self.assertEqual(props["f"]["format"], "float")
        self.assertEqual(props["f"]["exclusiveMinimum"], 0)
        self.assertNotIn("minimum", props["f"])
        self.assertEqual(props["m5"]["multipleOf"], 5)
        self.assertEqual(props["q"]["multipleOf"], 0.25)
        self.assertEqual(props["fs"]["items"]["format"], "float")

    def test_header_cookie_alias(self):
        ps = self.params("/l/headers")
        self.assertEqual(ps["x-token"]["in"], "header")
        self.assertTrue(ps["x-token"]["required"])
        self.assertEqual(ps["x-token"]["schema"]["minLength"], 3)
        self.assertEqual(ps["User-Agent"]["in"], "header")
        self.assertEqual(ps["session"]["in"], "cookie")
        self.assertFalse(ps["session"]["required"])
        self.assertEqual(ps["theme"]["schema"]["default"], "light")
        ps = self.params("/l/items/{item-id}", "post")
        self.assertEqual(ps["item-id"]["in"], "path")
        self.assertEqual(ps["page-size"]["in"], "query")
        body = self.schemas()["items_args"]
        self.assertIn("first-name", body["properties"])
        self.assertIn("first-name", body["required"])
        self.assertIn("tag-no", self.schemas()["spot"]["properties"])
        self.assertEqual(sorted(self.schemas()["items_result"]["properties"]), ["at", "first-name", "item-id", "page-size"])

    def test_nullable(self):
        props = self.schemas()["nulls_args"]["properties"]
        self.assertEqual(props["n"]["type"], ["integer", "null"])
        self.assertEqual(props["s"]["type"], ["string", "null"])
        self.assertEqual(props["e"]["enum"], ["a", "b", None])
        self.assertEqual(props["at"]["anyOf"], [{"$ref": "#/components/schemas/spot"}, {"type": "null"}])
        self.assertEqual(self.schemas()["nulls_args"]["required"], ["n"])
        self.assertEqual(self.schemas()["nulls_result"]["properties"]["n"]["type"], ["integer", "null"])

    def test_examples_errors_tags(self):
        self.assertEqual(self.schemas()["spot"]["properties"]["x"]["examples"], [1.5])
        self.assertEqual(self.params("/l/query")["u"]["example"], 7)
        self.assertEqual(self.params("/l/boxes/{id}")["id"]["example"], 1)
        r = self.doc["paths"]["/l/boxes/{id}"]["get"]["responses"]
        self.assertEqual(r["404"]["description"], "No such box")
        self.assertEqual(r["409"]["description"], "The box is locked")
        self.assertEqual(r["404"]["content"]["application/json"]["schema"], {"$ref": "#/components/schemas/HTTPError"})
        self.assertEqual(self.doc["tags"], [{"name": "lang", "description":
                                             "The annotation language of the second pass, for the binder tests"}])

    def test_formats_json(self):
        props = self.schemas()["formats_args"]["properties"]
        for k, fmt in (("when", "date-time"), ("day", "date"), ("at", "time"), ("id", "uuid"), ("mail", "email"),
                       ("link", "uri"), ("v4", "ipv4"), ("v6", "ipv6")):
            self.assertEqual(props[k]["format"], fmt)
        self.assertEqual(props["day"]["examples"], ["2026-12-03"])
        self.assertEqual(props["extra"], {"description": "Any JSON value"})
        self.assertEqual(self.params("/l/formats", "post")["filter"]["schema"], {})

    def test_pattern_document(self):
        props = self.schemas()["codes_args"]["properties"]
        self.assertEqual(props["sku"]["pattern"], "^[A-Z]{3}-\\d{4}$")
        self.assertEqual(props["tags"]["items"]["pattern"], "^[a-z]+$")
        with open(os.path.join(self.out, SERVICE + ".routes.c")) as f:
            routes = f.read()
        self.assertIn("static const im_pattern im_gen_pat_0 = ", routes)
        self.assertNotIn("regcomp", routes)

    def test_maps(self):
        props = self.schemas()["tally_args"]["properties"]
        self.assertEqual(props["counts"]["type"], "object")
        self.assertEqual(props["counts"]["maxProperties"], 4)
        self.assertEqual(props["counts"]["additionalProperties"]["maximum"], 1000)
        self.assertEqual(props["moods"]["additionalProperties"], {"$ref": "#/components/schemas/shade"})
        self.assertEqual(props["places"]["minProperties"], 1)
        with open(os.path.join(self.out, "lang.gen.h")) as f:
            h = f.read()
        for decl in ("im_u32_map counts;", "im_enum_map moods;", "spot_map places;"):
            self.assertIn(decl, h)

    def test_whole_body_document(self):
        rb = self.doc["paths"]["/l/spots/scale"]["post"]["requestBody"]
        self.assertEqual(rb["content"]["application/json"]["schema"]["type"], "array")
        self.assertEqual(rb["content"]["application/json"]["schema"]["items"], {"$ref": "#/components/schemas/spot"})
        ok = self.doc["paths"]["/l/spot/{k}"]["put"]["responses"]["200"]["content"]["application/json"]["schema"]
        self.assertEqual(ok["allOf"], [{"$ref": "#/components/schemas/spot"}])

    def test_members(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)
        with open(os.path.join(self.out, "lang.gen.h")) as f:
            h = f.read()
        for decl in ("uint32_t u32;", "uint64_t u64;", "float f;", "im_f32s fs;", "im_str x_token;",
                     "bool has_n;", "bool n_is_null;", "int64_t n;", "bool has_at;", "bool at_is_null;"):
            self.assertIn(decl, h)


class LanguageErrorTest(GenErrorCase):
    def refused(self, args, needle, words=(), at=None, method="POST", path="/a"):
        src = module_src("m", f'IM_ENDPOINT({method}, "{path}")\n{args}\n' + fn("a"))
        return self.assertGenError(src, needle, at=at, words=words, hint=True)

    def test_numbers(self):
        self.refused('IM_ARG(uint32, n, "N", .max = 4294967296)', ".max", ("outside uint32",), at="4294967296")
        self.refused('IM_ARG(uint64, n, "N", .min = -1)', ".min", ("outside uint64",), at="-1")
        self.refused('IM_ARG(float, n, "N", .max = 1e39)', ".max", ("outside float",), at="1e39")
        self.refused('IM_ARG(int64, n, "N", .multiple_of = 0)', ".multiple_of", ("positive",), at="0")
        self.refused('IM_ARG(int32, n, "N", .multiple_of = 2.5)', ".multiple_of", ("integer",), at="2.5")
        self.refused('IM_ARG(int32, n, "N", .multiple_of = 3, .default = 4)', ".default", ("multiple",), at="4")
        self.refused('IM_ARG(string, n, "N", .multiple_of = 3)', ".multiple_of", ("does not apply",), at=".multiple_of")
        self.refused('IM_ARG(uint32, n, "N", .default = -1)', ".default", ("outside",), at="-1")

    def test_header_cookie(self):
        self.refused('IM_ARG(int64, n, "N", .in = header)', "IM_ARG", ("header", "string"))
        self.refused('IM_ARG(string[], n, "N", .in = cookie)', "IM_ARG", ("cookie", "string"))
        self.refused('IM_ARG(string, n, "N", .in = header, .alias = "a b")', ".alias", ("header name",), at='"a b"')
        self.refused('IM_ARG(string, n, "N", .in = header, .nullable = true)', ".nullable", ("null",), at=".nullable")
        self.refused('IM_ARG(string, n, "N", .in = body, .alias = "")', ".alias", ("non-empty",), at='""')

    def test_alias_clashes(self):
        self.refused('IM_ARG(int64, a1, "A", .alias = "x")\nIM_ARG(int64, x, "X")', 'IM_ARG(int64, x', ("both", "'x'"))
        self.refused('IM_ARG(string, a1, "A", .in = header, .alias = "X-A")\nIM_ARG(string, x_a, "X", .in = header)',
                     'IM_ARG(string, x_a', ("both",), method="GET")
        self.refused('IM_ARG(int64, item_id, "I")', "IM_ENDPOINT", ("{item-id}",), path="/a/{item-id}")
        src = module_src("m", 'IM_OBJECT(o, "O")\nIM_FIELD(int64, a, "A", .alias = "b")\nIM_FIELD(int64, b, "B")\n'
                              'IM_ENDPOINT(POST, "/a")\nIM_ARG(o, o, "O")\n' + fn("a"))
        self.assertGenError(src, "IM_FIELD(int64, b", words=("both",), hint=True)
        src = module_src("m", 'IM_ENDPOINT(POST, "/a")\nIM_ARG(int64, a, "A", .nullable = true)\n'
                              'IM_ARG(bool, a_is_null, "B")\n' + fn("a"))
        self.assertGenError(src, "a_is_null", words=("nullable",), hint=True)

    def test_nullable_example(self):
        self.refused('IM_ARG(int64, n, "N", .in = query, .nullable = true)', ".nullable", ("query",), at=".nullable")
        self.refused('IM_ARG(int64, n, "N", .nullable = 1)', ".nullable", ("true or false",), at="1")
        self.refused('IM_ARG(int64, n, "N", .example = "x")', ".example", ("integer",), at='"x"')
        self.refused('IM_ARG(int64, n, "N", .max = 3, .example = 4)', ".example", ("upper bound",), at="= 4")
        self.refused('IM_ARG(enum, n, "N", .values = {"a"}, .example = "b")', ".example", ("values",), at='"b"')
        self.refused('IM_ARG(int64[], n, "N", .example = 4)', ".example", ("list",), at="= 4")
        self.refused('IM_ARG(ndarray, n, "N", .example = 4)', ".example", ("does not apply",), at=".example")

    def test_formats_json(self):
        self.refused('IM_ARG(string, s, "S", .format = "colour")', ".format", ("unknown .format",), at='"colour"')
        self.refused('IM_ARG(int64, s, "S", .format = "uuid")', ".format", ("does not apply",), at=".format")
        self.refused('IM_ARG(string, s, "S", .format = "date", .default = "2023-02-29")', ".default",
                     ("not a valid date",), at='"2023-02-29"')
        self.refused('IM_ARG(string, s, "S", .format = "email", .example = "a@b")', ".example",
                     ("not a valid email",), at='"a@b"')
        self.refused('IM_ARG(json, j, "J", .default = "1")', ".default", ("cannot have a default",), at=".default")
        self.refused('IM_ARG(json, j, "J", .in = header)', "IM_ARG", ("string",))

    def test_patterns(self):
        for pat, words in (("(a", ("unclosed",)), ("a)", ("unmatched",)), ("*a", ("nothing to repeat",)),
                           ("\\\\bx", ("outside the subset",)), ("(?=a)", ("lookaround",)), ("a^b", ("outside the subset",)),
                           ("[z-a]", ("below its start",)), ("a{200}", ("repeat",)), ("\\\\1", ("outside the subset",)),
                           ("[^é]", ("negated",)), ("(a{50}|b{50}){50}", ("states",))):
            with self.subTest(pattern=pat):
                self.refused(f'IM_ARG(string, s, "S", .pattern = "{pat}")', ".pattern", (".pattern",) + words, at='= "')
        self.refused('IM_ARG(string, s, "S", .pattern = "^a+$", .default = "b")', ".default", ("pattern",), at='"b"')
        self.refused('IM_ARG(int64, s, "S", .pattern = "a")', ".pattern", ("does not apply",), at=".pattern")

    def test_maps(self):
        self.refused('IM_ARG(int64{}, m, "M", .in = query)', "IM_ARG", ("query",), method="GET")
        self.refused('IM_ARG(enum{}, m, "M", .values = {"a"})', "IM_ARG", ("named enum",))
        self.refused('IM_ARG(ndarray{}, m, "M")', "IM_ARG", ("not a type",))
        self.refused('IM_ARG(int64{}, m, "M", .default = 1)', ".default", ("cannot have a default",), at=".default")
        self.refused('IM_ARG(int64{}, m, "M", .min_items = 3, .max_items = 2)', ".max_items", ("above",), at=".max_items")
        src = module_src("m", 'IM_OBJECT(o_map, "O")\nIM_FIELD(int64, v, "V")\n')
        self.assertGenError(src, "IM_OBJECT", words=("_map",), hint=True)

    def test_whole_body(self):
        obj = 'IM_OBJECT(o, "O")\nIM_FIELD(int64, v, "V")\n'
        for args, needle, words, method in (
                ('IM_BODY(int64, "N")', "IM_BODY", ("named object or an array",), "POST"),
                ('IM_BODY(o, "O")', "IM_BODY", ("GET",), "GET"),
                ('IM_BODY(o, "O")\nIM_BODY(o[], "P")', 'IM_BODY(o[]', ("second",), "POST"),
                ('IM_BODY(o, "O")\nIM_ARG(int64, n, "N")', "IM_ARG", ("IM_BODY",), "POST"),
                ('IM_BODY(o, "O", .x = 1)', "IM_BODY", ("type and a description",), "POST"),
                ('IM_RESULT(int64, "R")\nIM_BODY(o, "O")', "IM_BODY", ("before IM_RESULT",), "POST")):
            with self.subTest(args=args):
                src = module_src("m", obj + f'IM_ENDPOINT({method}, "/a")\n{args}\n' + fn("a"))
                self.assertGenError(src, needle, words=words, hint=True)

    def test_errors(self):
        for errors, words in (('{404}', ("status",)), ('{200: "OK"}', ("400 to 599",)),
                              ('{404: ""}', ("mean",)), ('{404: "a", 404: "b"}', ("twice",)),
                              ('"404"', ("status",))):
            with self.subTest(errors=errors):
                src = module_src("m", f'IM_ENDPOINT(POST, "/a", .errors = {errors})\n' + fn("a"))
                self.assertGenError(src, "IM_ENDPOINT", words=words, hint=True)


# Issue 15: named enums (IM_ENUM), and types (enums and objects) shared by the modules of a
# service, used before or after their declaration.

SHARED_N = module_src("n", 'IM_ENUM(color, "A color", "red", "green", "dark-blue")\n'
                           'IM_OBJECT(pt, "A point")\nIM_FIELD(double, x, "X")\nIM_FIELD(color, c, "Its color", .default = "red")\n',
                      include_gen=False)
SHARED_M = module_src("m", """IM_ENDPOINT(GET, "/m/paint")
IM_ARG(color, c, "A color", .example = "green")
IM_ARG(color[], more, "More", .optional = true)
IM_RESULT(object, "The point painted")
IM_FIELD(pt, at, "Where")
IM_FIELD(later, l, "Declared below")
IM_FIELD(color[], all, "c, then more")
int paint(im_call *call, const paint_args *in, paint_result *out)
{
    color *all = im_call_alloc(call, sizeof(color) * (1 + (in->has_more ? in->more.len : 0)));
    size_t n = 0;
    if (!all) return im_call_fail(call, 503, "out of memory");
    all[n++] = in->c;
    for (size_t i = 0; in->has_more && i < in->more.len; i++) all[n++] = (color)in->more.ptr[i];
    out->at.x = 1.5;
    out->at.c = in->c;
    out->l.c = color_dark_blue;
    out->all.ptr = (const int *)all;
    out->all.len = n;
    return 0;
}

IM_ENDPOINT(GET, "/m/first")
IM_RESULT(color, "The first color")
int first(im_call *call, const first_args *in, first_result *out)
{
    (void)call;
    (void)in;
    out->result = color_red;
    return 0;
}

IM_OBJECT(later, "Declared after its use")
IM_FIELD(color, c, "A color")
""")


class SharedTypesTest(GenErrorCase):
    def test_accepted_in_any_order(self):
        for order in (["n", "m"], ["m", "n"]):
            with self.subTest(order=order):
                p, out, _ = self.gen({"n": SHARED_N, "m": SHARED_M}, order)
                self.assertEqual(p.returncode, 0, p.stderr)
                with open(os.path.join(out, SERVICE + ".openapi.json")) as f:
                    doc = json.load(f)
                sch = doc["components"]["schemas"]
                self.assertEqual(sch["color"], {"title": "color", "type": "string",
                                                "enum": ["red", "green", "dark-blue"], "description": "A color"})
                ps = {q["name"]: q for q in doc["paths"]["/m/paint"]["get"]["parameters"]}
                self.assertEqual(ps["c"]["schema"], {"$ref": "#/components/schemas/color"})
                self.assertEqual(ps["more"]["schema"]["items"], {"$ref": "#/components/schemas/color"})
                self.assertEqual(sch["pt"]["properties"]["c"]["allOf"], [{"$ref": "#/components/schemas/color"}])
                self.assertEqual(sch["first_result"]["properties"]["result"]["allOf"],
                                 [{"$ref": "#/components/schemas/color"}])
                with open(os.path.join(out, SERVICE + ".types.h")) as f:
                    types = f.read()
                self.assertIn("} color;", types)
                self.assertIn("color_dark_blue = 2,", types)

    def test_served(self):
        why = have_c_toolchain()
        if why:
            self.skipTest(why)
        p, out, paths = self.gen({"n": SHARED_N, "m": SHARED_M})
        self.assertEqual(p.returncode, 0, p.stderr)
        srcs = [paths["m"], paths["n"]]
        body = serve_once(self, self.tmp, out, srcs, "/m/paint?c=green&more=dark-blue&more=red")
        self.assertEqual(json.loads(body), {"at": {"x": 1.5, "c": "green"}, "l": {"c": "dark-blue"},
                                            "all": ["green", "dark-blue", "red"]})
        self.assertEqual(json.loads(serve_once(self, self.tmp, out, srcs, "/m/first")), {"result": "red"})
        detail = json.loads(serve_once(self, self.tmp, out, srcs, "/m/paint?c=blue", "422"))["detail"]
        self.assertEqual((detail[0]["type"], detail[0]["loc"]), ("enum", ["query", "c"]))

    def test_refused(self):
        for src, needle, words in (
                ('IM_ENUM(color, "C")\n', "IM_ENUM", ("name, a description and its values",)),
                ('IM_ENUM(color, "C", "a", "a")\n', "IM_ENUM", ("twice",)),
                ('IM_ENUM(color, "C", "a-b", "a_b")\n', "IM_ENUM", ("same C name",)),
                ('IM_ENUM(color, "C", 1)\n', "IM_ENUM", ("strings",)),
                ('IM_ENUM(HTTPError, "C", "a")\n', "IM_ENUM", ("schema",)),
                ('IM_ENUM(int32, "C", "a")\n', "IM_ENUM", ("enum name",)),
                ('IM_ENUM(color, "C", "a")\nIM_OBJECT(color, "O")\nIM_FIELD(int32, x, "X")\n', "IM_OBJECT", ("twice",)),
                ('IM_ENUM(color, "C", "a")\nIM_ENDPOINT(POST, "/a")\nIM_ARG(color, c, "C", .values = {"b"})\n' + fn("a"),
                 ".values", ("has its values",)),
                ('IM_ENUM(color, "C", "a")\nIM_ENDPOINT(POST, "/a")\nIM_ARG(color, c, "C", .default = "b")\n' + fn("a"),
                 ".default", ("values",)),
                ('IM_ENUM(color, "C", "red")\nIM_ENDPOINT(POST, "/a")\n' + fn("color_red"),
                 "int color_red", ("color_red", "constant"))):
            with self.subTest(src=src.splitlines()[0]):
                self.assertGenError(module_src("m", src), needle, words=words, hint=True)


if __name__ == "__main__":
    unittest.main()
