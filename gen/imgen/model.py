"""model.py — the model both emitters read: types, fields with normalised constraints, objects,
enums, endpoints, modules, and what the annotation language knows."""
import re



GENERATOR = "gen/immersive_gen.py"


SCALARS = ("bool", "int32", "int64", "uint32", "uint64", "double", "float", "string", "enum", "json")


FORMATS = {"date-time": "IM_FMT_DATE_TIME", "date": "IM_FMT_DATE", "time": "IM_FMT_TIME", "uuid": "IM_FMT_UUID",
           "email": "IM_FMT_EMAIL", "uri": "IM_FMT_URI", "ipv4": "IM_FMT_IPV4", "ipv6": "IM_FMT_IPV6"}


NUMERIC = ("int32", "int64", "uint32", "uint64", "double", "float")


REAL = ("double", "float")


METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


C_KEYWORDS = set("""auto break case char const continue default do double else enum extern float
for goto if inline int long register restrict return short signed sizeof static struct switch
typedef union unsigned void volatile while _Bool _Complex _Imaginary bool true false NULL
_Alignas _Alignof _Atomic _Generic _Noreturn _Static_assert _Thread_local""".split())


INT_RANGE = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1), "uint32": (0, 2**32 - 1),
             "uint64": (0, 2**64 - 1)}


FLT_MAX = 3.4028234663852886e38


MODES = {"IM_INLINE": "inline", "IM_POOL": "pool", "IM_SERIAL": "serial", "IM_PROCESS": "process",
         "inline": "inline", "pool": "pool", "serial": "serial", "process": "process"}


RESPONSES = {"IM_SYNC": "sync", "IM_ASYNC": "async", "sync": "sync", "async": "async"}


EXTRAS = {"IM_FORBID": "forbid", "IM_IGNORE": "ignore", "forbid": "forbid", "ignore": "ignore"}


SOURCES = {"body": "body", "query": "query", "path": "path", "raw": "raw", "header": "header",
           "cookie": "cookie", "IM_BODY": "body", "IM_QUERY": "query", "IM_PATH": "path", "IM_RAW": "raw",
           "IM_HEADER": "header", "IM_COOKIE": "cookie"}


PARAM_SOURCES = ("query", "path", "header", "cookie")


ENDPOINT_ATTRS = ("summary", "description", "tags", "mode", "priority", "max_concurrency",
                  "timeout_ms", "response", "extra", "deprecated", "name", "executor", "max_body_bytes",
                  "status", "errors")


MODULE_ATTRS = ("init", "fini", "serial")


NUM_ATTRS = ("min", "max", "exclusive_min", "exclusive_max")


LEN_ATTRS = ("min_length", "max_length")


ITEM_ATTRS = ("min_items", "max_items")


ND_ATTRS = ("dtype", "ndim", "shape")


DTYPES = ("f64", "f32", "i64", "i32", "u8")  # im_dtype's order: bit i is IM_DT_* i


ND_MAX_DIMS = 8


MAX_PARAMS = 8  # IM_MAX_PARAMS of src/config.h: {param} segments in one route


class TypeRef:
    """A scalar, enum (anonymous: .values; named: IM_ENUM, in .enum), object <name>, ndarray, or
    an array of one of these."""

    def __init__(self, base, array=False, obj=None, raw=False, enum=None, map=False):
        self.base, self.array, self.obj, self.raw, self.enum, self.map = base, array, obj, raw, enum, map

    def __str__(self):
        named = self.obj or self.enum
        return (named.name if named else self.base) + ("[]" if self.array else "{}" if self.map else "")

    @property
    def many(self):
        """An array or a map: values of .base held by a view."""
        return self.array or self.map


class EnumDecl:
    """IM_ENUM(name, "doc", "value", ...): a C enum `name` with constants name_value."""

    def __init__(self, where, name, doc, values, module):
        self.where, self.name, self.doc, self.values, self.module = where, name, doc, values, module


class Field:
    def __init__(self, where, name, type_, doc, attrs):
        self.where, self.name, self.type, self.doc, self.attrs = where, name, type_, doc, attrs
        self.source = "body"
        self.values = []       # enum
        self.default = None    # python value or None
        self.optional = False
        self.owner = None      # the endpoint or object it belongs to
        self.dtypes, self.ndim, self.shape = [], None, None  # ndarray: .dtype, .ndim, .shape
        # the constraints, normalised: what the binder, the answer checks and the document read
        self.lo = self.hi = None  # (bound, exclusive, Value)
        self.min_len = self.max_len = None
        self.min_items = self.max_items = None
        self.multiple_of = None
        self.nullable = False     # JSON null accepted (has_x, x_is_null)
        self.alias = None         # .alias: the key or parameter name on the wire
        self.example = None       # .example, as a Python value
        self.whole = False        # IM_BODY: the whole body is this one value (in->body)
        self.format = None        # .format of a string: "date-time", "uuid"...
        self.pattern = None       # .pattern of a string: (source, compiled DFA)

    @property
    def key(self):
        """The name on the wire: the JSON key, or the query, path, header or cookie name."""
        if self.alias is not None:
            return self.alias
        return self.name.replace("_", "-") if self.source == "header" else self.name

    @property
    def required(self):
        return self.default is None and not self.optional


class Obj:
    def __init__(self, where, name, doc, module):
        self.where, self.name, self.doc, self.module = where, name, doc, module
        self.fields = []
        self.extra = "forbid"  # .extra: unknown keys refused (the schema's additionalProperties)


class Endpoint:
    def __init__(self, where, method, path, attrs, module):
        self.where, self.method, self.path, self.attrs, self.module = where, method, path, attrs, module
        self.args, self.result, self.result_doc, self.result_fields = [], None, "", []
        self.func = None
        self.func_where = None
        self.name = None  # the function's name in /functions and tasks (default: func)
        self.summary = attrs.get("summary", "")
        self.description = attrs.get("description", "")
        self.mode, self.priority, self.max_concurrency, self.timeout_ms = "inline", 0, 0, 0
        self.max_body_bytes = 0  # its own body limit (0: the server's max_body_bytes)
        self.response, self.extra, self.tags, self.deprecated = "sync", "forbid", [module.name], False
        self.executor = None  # .executor: a module's private executor
        self.status = 200     # .status: a successful answer's (204: no body)
        self.errors = {}      # .errors: {status: what it means}, the handler's own failures
        self.params = re.findall(r"\{([^{}/]*)\}", path)

    @property
    def body_args(self):
        return [a for a in self.args if a.source == "body"]


class Module:
    def __init__(self, name, doc, where, folder):
        self.name, self.doc, self.where, self.folder = name, doc, where, folder
        self.objects, self.endpoints, self.files = {}, [], []
        self.enums = {}               # IM_ENUM declarations
        self.init = self.fini = None  # .init / .fini: C function names
        self.serial = False           # .serial: endpoints without .mode go to the serial executor
        self.defaults = None          # defaults.toml of the folder (its text)


def format_ok(fmt, s):
    """The generator's own reading of the formats, for defaults and examples (the binder's is
    src/bind.c's im_format_ok; tests/test_lang.c holds both to the same cases)."""
    import ipaddress
    date = r"(\d{4})-(\d{2})-(\d{2})"
    time = r"([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)?"
    def date_ok(m):
        import datetime
        try:
            datetime.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            return True
        except ValueError:
            return False
    if fmt == "date":
        m = re.fullmatch(date, s)
        return bool(m) and date_ok(m)
    if fmt == "time":
        return re.fullmatch(time, s) is not None
    if fmt == "date-time":
        m = re.fullmatch(date + "[Tt ]" + time, s)
        return bool(m) and date_ok(m)
    if fmt == "uuid":
        return re.fullmatch(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", s) is not None
    if fmt == "email":
        return re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@"
                            r"([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?", s) is not None
    if fmt == "uri":
        return re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*:([A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*", s) is not None
    try:
        ipaddress.IPv4Address(s) if fmt == "ipv4" else ipaddress.IPv6Address(s)
        return "%" not in s
    except ValueError:
        return False


def reserved(name):
    """Names the generated code or the library already use."""
    return (name.lower().startswith("im_") or name.endswith("_t") or name.endswith("_list")
            or name.endswith("_map") or name.endswith("_args") or name.endswith("_result"))


def ident_ok(s):
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", s) is not None and s not in C_KEYWORDS


def objects_used(modules):
    """Names of the service's objects that requests carry (bound) and that results carry
    (written), following objects inside objects."""
    def close(types):
        seen, todo = set(), [t.obj for t in types if t is not None and t.base == "object" and t.obj]
        while todo:
            o = todo.pop()
            if o.name in seen:
                continue
            seen.add(o.name)
            todo.extend(f.type.obj for f in o.fields if f.type.base == "object")
        return seen
    eps = [e for m in modules for e in m.endpoints]
    bound = close([a.type for e in eps for a in e.args])
    written = close([e.result for e in eps] + [f.type for e in eps for f in e.result_fields])
    return bound, written


def npy_arg(e):
    """The ndarray argument an application/x-npy body binds to: the only body argument."""
    body = e.body_args
    return body[0] if len(body) == 1 and body[0].type.base == "ndarray" else None


def body_kind(e):
    """im_endpoint.body: 0 none, 1 JSON, 2 raw float64 (or .npy), 3 JSON or .npy."""
    if any(a.source == "raw" for a in e.args):
        return 2
    if npy_arg(e):
        return 3
    return 1 if e.body_args else 0


def result_kind(e):
    """How the answer is written: "none" (null), "fields" (IM_RESULT(object) + IM_FIELD), "object"
    (a named object: the JSON object itself, name_result a typedef of it), "array" (the JSON
    array itself, in out->result), "ndarray" or "scalar" ({"result": value})."""
    r = e.result
    if r is None:
        return "none"
    if r.base == "object" and r.obj is None:
        return "fields"
    if r.base == "ndarray":
        return "ndarray"
    if r.many:
        return "array"  # the value itself (an array, or a map's object)
    if r.base == "object":
        return "object"
    return "scalar"


def result_is_ndarray(e):
    return e.result is not None and e.result.base == "ndarray"
