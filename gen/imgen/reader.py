"""reader.py — the annotations of one module folder read into the model (two passes: the types,
then the rest)."""
import math
import os
import re

from .lexer import GenError, lex, parse_call
from .pattern import PatternError, compile_pattern, pattern_search
from .model import (DTYPES, ENDPOINT_ATTRS, EXTRAS, Endpoint, EnumDecl, FLT_MAX, FORMATS, Field, INT_RANGE,
                    ITEM_ATTRS, LEN_ATTRS, MAX_PARAMS, METHODS, MODES, MODULE_ATTRS, Module, ND_ATTRS,
                    ND_MAX_DIMS, NUMERIC, NUM_ATTRS, Obj, PARAM_SOURCES, REAL, RESPONSES, SCALARS, SOURCES,
                    TypeRef, format_ok, ident_ok, reserved)


class Reader:
    """Turns the annotations of one module folder into a Module."""

    def __init__(self, folder, objects_global):
        self.folder = folder
        self.module = None
        self.objects_global = objects_global

    def err(self, tok, msg, hint=None, path=None):
        raise GenError((path or self.path, tok.line, tok.col), msg, hint)

    def where(self, tok):
        return (self.path, tok.line, tok.col)

    def scan(self):
        """First pass: the module and the types it declares (objects, enums), so that every
        module of the service may use them, before or after their declaration."""
        files = sorted(f for f in os.listdir(self.folder) if f.endswith(".c"))
        if not files:
            raise GenError((self.folder, 1, 1), "no .c files in this module folder",
                           "a module is a folder of C sources holding IM_MODULE and IM_ENDPOINT")
        pending = []
        for f in files:
            self.path = os.path.join(self.folder, f)
            with open(self.path, encoding="utf-8") as fh:
                text = fh.read()
            toks = lex(self.path, text)
            calls = []
            i = 0
            while i < len(toks):
                t = toks[i]
                if t.kind == "ident" and t.text.startswith("IM_") and i + 1 < len(toks) and toks[i + 1].text == "(" \
                        and t.text in ("IM_MODULE", "IM_OBJECT", "IM_FIELD", "IM_ENDPOINT", "IM_ARG", "IM_RESULT",
                                       "IM_ENUM", "IM_BODY"):
                    c = parse_call(self.path, toks, i)
                    calls.append(c)
                    i = c.end
                    continue
                i += 1
            pending.append((self.path, toks, calls, text))
        # the module first (objects and endpoints need it)
        for path, toks, calls, text in pending:
            self.path = path
            for c in calls:
                if c.name == "IM_MODULE":
                    self.on_module(c)
        if not self.module:
            raise GenError((os.path.join(self.folder, files[0]), 1, 1), "no IM_MODULE in this module",
                           f'add IM_MODULE({os.path.basename(self.folder)}, "what it does") to one file')
        self.declared = {}
        for path, toks, calls, text in pending:
            self.path = path
            for c in calls:
                if c.name == "IM_OBJECT":
                    self.declared[id(c)] = self.on_object(c)
                elif c.name == "IM_ENUM":
                    self.on_enum(c)
        self.pending = pending
        return self.module

    def read(self):
        """Second pass: fields, endpoints, arguments and results (every type known)."""
        for path, toks, calls, text in self.pending:
            self.path = path
            self.module.files.append(path)
            self.walk(toks, calls, text)
        return self.module

    def on_module(self, c):
        if self.module:
            self.err(c.tok, f"a second IM_MODULE (the first is at {self.module.where[0]}:{self.module.where[1]})",
                     "a module folder has exactly one IM_MODULE")
        if len(c.args) != 2 or c.args[0].kind != "ident" or c.args[1].kind != "string":
            self.err(c.tok, "IM_MODULE takes a name and a description", 'IM_MODULE(math, "Integer arithmetic")')
        for k in c.kw:
            if k not in MODULE_ATTRS:
                self.err(c.kw[k].key_tok, f"unknown module attribute '.{k}'", "known: ." + ", .".join(MODULE_ATTRS))
        name = c.args[0].value
        folder = os.path.basename(os.path.normpath(self.folder))
        if name != folder:
            self.err(c.args[0].tok, f"module '{name}' lives in folder '{folder}'",
                     f"name the module after its folder: IM_MODULE({folder}, ...)")
        if not ident_ok(name):
            self.err(c.args[0].tok, f"'{name}' cannot be a module name", "use a C identifier")
        self.module = Module(name, c.args[1].value, self.where(c.tok), self.folder)
        for k in ("init", "fini"):
            if k in c.kw:
                v = c.kw[k]
                if v.kind != "ident" or not ident_ok(v.value):
                    self.err(v.tok, f"'.{k}' wants the name of a C function", f".{k} = {name}_{k}")
                setattr(self.module, k, v.value)
        if "serial" in c.kw:
            v = c.kw["serial"]
            if v.kind != "bool":
                self.err(v.tok, "'.serial' wants true or false", ".serial = true")
            self.module.serial = v.value
        dpath = os.path.join(self.folder, "defaults.toml")
        if os.path.exists(dpath):
            with open(dpath, encoding="utf-8") as fh:
                self.module.defaults = fh.read()
            try:  # read here too when this Python can (3.11+): an error shows at build time
                import tomllib
                doc = tomllib.loads(self.module.defaults)
            except ImportError:
                doc = None
            except ValueError as ex:
                raise GenError((dpath, 1, 1), f"not valid TOML: {ex}", "fix the file")
            if doc is not None and set(doc) - {name}:
                raise GenError((dpath, 1, 1), f"defaults.toml holds {', '.join(sorted(set(doc) - {name}))}",
                               f"a module's defaults hold only its own table [{name}]")

    def walk(self, toks, calls, text):
        group = None  # the IM_OBJECT or IM_ENDPOINT (or result object) that fields/args join
        for idx, c in enumerate(calls):
            if c.name == "IM_MODULE":
                group = None
                continue
            if c.name == "IM_OBJECT":
                group = self.declared[id(c)]
            elif c.name == "IM_ENUM":
                group = None
                continue
            elif c.name == "IM_ENDPOINT":
                group = self.on_endpoint(c)
            elif c.name == "IM_ARG":
                if not isinstance(group, Endpoint) or group.result is not None:
                    self.err(c.tok, "IM_ARG must follow its IM_ENDPOINT (before IM_RESULT)",
                             "write IM_ENDPOINT(...), then its IM_ARG lines, then IM_RESULT")
                group.args.append(self.on_field(c, "argument", group))
            elif c.name == "IM_BODY":
                if not isinstance(group, Endpoint) or group.result is not None:
                    self.err(c.tok, "IM_BODY must follow its IM_ENDPOINT (before IM_RESULT)",
                             "write IM_ENDPOINT(...), then IM_BODY and any IM_ARG lines, then IM_RESULT")
                group.args.append(self.on_body(c, group))
            elif c.name == "IM_RESULT":
                if not isinstance(group, Endpoint) or group.result is not None:
                    self.err(c.tok, "IM_RESULT must follow an IM_ENDPOINT and its arguments, once",
                             "one IM_RESULT per endpoint, after its IM_ARG lines")
                self.on_result(c, group)
            elif c.name == "IM_FIELD":
                if isinstance(group, Obj):
                    group.fields.append(self.on_field(c, "field", group))
                elif isinstance(group, Endpoint) and group.result is not None and group.result.base == "object" \
                        and group.result.obj is None:  # a field of the answer, not an argument
                    group.result_fields.append(self.on_field(c, "result field", group))
                else:
                    self.err(c.tok, "IM_FIELD must follow an IM_OBJECT, or an IM_RESULT(object, ...)",
                             "fields describe an object: IM_OBJECT(point, \"...\") then IM_FIELD lines")
            # an endpoint ends at the function that follows its last annotation
            nxt = calls[idx + 1] if idx + 1 < len(calls) else None
            if isinstance(group, Endpoint) and (nxt is None or nxt.name not in ("IM_ARG", "IM_RESULT", "IM_FIELD", "IM_BODY")):
                self.on_function(group, toks, c.end, nxt)
                group = None
            elif isinstance(group, Obj) and (nxt is None or nxt.name != "IM_FIELD"):
                if not group.fields:
                    self.err(c.tok, f"object '{group.name}' has no IM_FIELD", "declare its fields after IM_OBJECT")
                group = None

    def on_object(self, c):
        if len(c.args) != 2 or c.args[0].kind != "ident" or c.args[1].kind != "string":
            self.err(c.tok, "IM_OBJECT takes a name and a description", 'IM_OBJECT(point, "A 2-D point")')
        for k, v in c.kw.items():
            if k != "extra":
                self.err(v.key_tok, f"unknown object attribute '.{k}'", "known: .extra")
            if v.kind != "ident" or v.value not in EXTRAS:
                self.err(v.tok, "'.extra' is IM_FORBID or IM_IGNORE", ".extra = IM_IGNORE")
        name = c.args[0].value
        if not ident_ok(name) or name in SCALARS or name in ("object", "f64array") or reserved(name):
            self.err(c.args[0].tok, f"'{name}' cannot be an object name",
                     "use a C identifier that is not a type name, does not start with im_ and does "
                     "not end in _t, _list, _args or _result")
        if name in self.objects_global:
            o = self.objects_global[name]
            self.err(c.args[0].tok, f"object '{name}' is defined twice (first at {o.where[0]}:{o.where[1]})",
                     "type names are unique in a service: rename one")
        o = Obj(self.where(c.tok), name, c.args[1].value, self.module)
        if "extra" in c.kw:  # its own unknown-key policy, wherever it is bound (default forbid)
            o.extra = EXTRAS[c.kw["extra"].value]
        self.module.objects[name] = o
        self.objects_global[name] = o
        return o

    def on_enum(self, c):
        if len(c.args) < 3 or c.args[0].kind != "ident" or c.args[1].kind != "string" or c.kw:
            self.err(c.tok, "IM_ENUM takes a name, a description and its values",
                     'IM_ENUM(color, "A color", "red", "green", "blue")')
        name = c.args[0].value
        if not ident_ok(name) or name in SCALARS or name in ("object", "f64array", "ndarray") or reserved(name):
            self.err(c.args[0].tok, f"'{name}' cannot be an enum name",
                     "use a C identifier that is not a type name, does not start with im_ and does "
                     "not end in _t, _list, _args or _result")
        if name in self.objects_global:
            o = self.objects_global[name]
            self.err(c.args[0].tok, f"type '{name}' is defined twice (first at {o.where[0]}:{o.where[1]})",
                     "type names are unique in a service: rename one")
        vals = []
        for v in c.args[2:]:
            if v.kind != "string" or not v.value or "\0" in v.value:
                self.err(v.tok, "enum values are non-empty \"strings\"", 'IM_ENUM(color, "A color", "red", "green")')
            if v.value in vals:
                self.err(v.tok, f"value '{v.value}' is given twice", "list each value once")
            vals.append(v.value)
        consts = [re.sub(r"[^A-Za-z0-9_]", "_", x) for x in vals]
        if len(set(consts)) != len(consts):
            self.err(c.tok, "two enum values give the same C name",
                     "values are turned into C names by replacing other characters with _")
        d = EnumDecl(self.where(c.tok), name, c.args[1].value, vals, self.module)
        self.module.enums[name] = d
        self.objects_global[name] = d

    def on_endpoint(self, c):
        if len(c.args) != 2 or c.args[0].kind != "ident" or c.args[1].kind != "string":
            self.err(c.tok, "IM_ENDPOINT takes a method and a path", 'IM_ENDPOINT(POST, "/v1/math/add", .summary = "...")')
        method = c.args[0].value
        if method not in METHODS:
            self.err(c.args[0].tok, f"unknown method '{method}'", "use " + ", ".join(METHODS))
        path = c.args[1].value
        pt = c.args[1].tok
        if not path.startswith("/"):
            self.err(pt, f"path '{path}' must start with '/'", f"write \"/{path}\"")
        for seg in path.split("/")[1:]:
            if "{" in seg or "}" in seg:
                if not re.fullmatch(r"\{[A-Za-z_][A-Za-z0-9_.-]*\}", seg):
                    self.err(pt, f"bad path segment '{seg}'", "a parameter is a whole segment: /items/{id}")
            elif not re.fullmatch(r"[A-Za-z0-9._~!$&'()*+,;=:@%-]*", seg):
                self.err(pt, f"bad character in path segment '{seg}'",
                             "use letters, digits and -._~ (%-escape the rest)")
        params = re.findall(r"\{([^{}]*)\}", path)
        if len(set(params)) != len(params):
            self.err(pt, f"path '{path}' names a parameter twice",
                     "each {param} of a path needs its own name")
        if len(params) > MAX_PARAMS:
            self.err(pt, f"path '{path}' has {len(params)} parameters; a route takes {MAX_PARAMS} at most",
                     "take the rest from the query (IM_MAX_PARAMS, src/config.h, is 8)")
        for k in c.kw:
            if k not in ENDPOINT_ATTRS:
                self.err(c.kw[k].key_tok, f"unknown endpoint attribute '.{k}'", "known: ." + ", .".join(ENDPOINT_ATTRS))
        e = Endpoint(self.where(c.tok), method, path, {}, self.module)
        kw = c.kw

        def want(k, kinds):
            v = kw[k]
            if v.kind not in kinds:
                self.err(v.tok, f"'.{k}' wants {' or '.join(kinds)}",
                         f".{k} = " + {"string": '"text"', "ident": "NAME", "number": "42", "bool": "true"}[kinds[0]])
            return v.value

        if "summary" in kw:
            e.summary = want("summary", ("string",))
        if "status" in kw:
            s = want("status", ("number",))
            if not isinstance(s, int) or not 200 <= s <= 299 or s == 202:
                self.err(kw["status"].tok, f"'.status' = {s} is not a success status it can answer",
                         ".status = 201 (Created), or 204 (No Content) with no IM_RESULT; 202 is a "
                         "task's (Prefer: respond-async)")
            e.status = s
        if "errors" in kw:
            v = kw["errors"]
            if v.kind != "list" or not v.value or any(x.kind != "pair" for x in v.value):
                self.err(v.tok, "'.errors' wants {status: \"what it means\", ...}", '.errors = {404: "No such box"}')
            for x in v.value:
                k, d = x.value
                if k.kind != "number" or not isinstance(k.value, int) or not 400 <= k.value <= 599:
                    self.err(k.tok, f"'.errors' keys are statuses from 400 to 599", '.errors = {404: "No such box"}')
                if d.kind != "string" or not d.value:
                    self.err(d.tok, "'.errors' values say what the status means", '.errors = {404: "No such box"}')
                if k.value in e.errors:
                    self.err(k.tok, f"status {k.value} is given twice in '.errors'", "keep one")
                e.errors[k.value] = d.value
        if "name" in kw:
            e.name = want("name", ("string",))
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}", e.name):
                self.err(kw["name"].tok, "'.name' must be 1 to 64 letters, digits, _ . or -, "
                         "starting with a letter or _", '.name = "sleep"')
        if "description" in kw:
            e.description = want("description", ("string",))
        if "tags" in kw:
            v = kw["tags"]
            if v.kind == "string":
                e.tags = [v.value]
            elif v.kind == "list" and all(x.kind == "string" for x in v.value) and v.value:
                e.tags = [x.value for x in v.value]
            else:
                self.err(v.tok, "'.tags' wants a string or a {list} of strings", '.tags = {"math", "admin"}')
        if "mode" in kw:
            m = want("mode", ("ident",))
            if m not in MODES:
                self.err(kw["mode"].tok, f"unknown mode '{m}'", "use IM_INLINE, IM_POOL, IM_SERIAL or IM_PROCESS")
            e.mode = MODES[m]
        if "executor" in kw:
            e.executor = want("executor", ("string",))
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}", e.executor):
                self.err(kw["executor"].tok, "'.executor' names an executor: letters, digits, _ . -",
                         '.executor = "gpu"')
            if "mode" not in kw:
                e.mode = "pool"
            elif e.mode != "pool":
                self.err(kw["mode"].key_tok, f"'.executor' runs the endpoint on a module's executor: "
                         f"its mode is IM_POOL, not {e.mode}", "leave .mode out, or write .mode = IM_POOL")
        elif "mode" not in kw and self.module.serial:
            e.mode = "serial"  # the module is not thread-safe as a whole
        if "response" in kw:
            r = want("response", ("ident",))
            if r not in RESPONSES:
                self.err(kw["response"].tok, f"unknown response '{r}'", "use IM_SYNC or IM_ASYNC")
            e.response = RESPONSES[r]
        if "extra" in kw:
            x = want("extra", ("ident",))
            if x not in EXTRAS:
                self.err(kw["extra"].tok, f"unknown extra policy '{x}'", "use IM_FORBID (the default) or IM_IGNORE")
            e.extra = EXTRAS[x]
        if "deprecated" in kw:
            e.deprecated = want("deprecated", ("bool",))
        for k, lo, hi in (("priority", 0, 31), ("max_concurrency", 0, 2**31), ("timeout_ms", 0, 2**31),
                          ("max_body_bytes", 0, 2**30)):
            if k in kw:
                v = want(k, ("number",))
                if not isinstance(v, int) or not lo <= v <= hi:
                    self.err(kw[k].tok, f"'.{k}' must be an integer from {lo} to {hi}", f".{k} = {lo}")
                setattr(e, k, v)
        if e.mode == "inline" and (e.max_concurrency or e.timeout_ms) :
            key = "max_concurrency" if e.max_concurrency else "timeout_ms"
            self.err(kw[key].key_tok, f"'.{key}' needs an executor mode",
                     "inline endpoints run on the event loop and cannot be limited: add .mode = IM_POOL")
        if e.mode == "inline" and e.response == "async":
            self.err(kw["response"].key_tok, "'.response = IM_ASYNC' needs an executor mode",
                     "an inline endpoint answers before its handler returns, without a task: "
                     "add .mode = IM_POOL")
        self.module.endpoints.append(e)
        return e

    def parse_type(self, v, what):
        if v.kind != "ident":
            self.err(v.tok, f"the {what}'s type must be a name", "bool, int32, int64, double, string, enum, f64array, an IM_OBJECT or T[]")
        return v.value

    def resolve_type(self, name, tok, array, map=False):
        t = self.resolve_type1(name, tok, array or map)
        if map:
            if t.base == "ndarray" or getattr(t, "f64", False):
                self.err(tok, f"{name}{{}} is not a type", "a map's values are scalars, enums or objects")
            if t.base == "enum" and t.enum is None:
                self.err(tok, "enum{} is not a type: a map's values need a named enum",
                         'declare it: IM_ENUM(name, "doc", "a", "b"), then name{}')
            t.array, t.map = False, True
        return t

    def resolve_type1(self, name, tok, array):
        if name == "ndarray":
            if array:
                self.err(tok, "ndarray[] is not a type", "an ndarray already has dimensions: .ndim = 2")
            return TypeRef("ndarray")
        if name == "f64array":
            if array:
                self.err(tok, "f64array[] is not a type", "f64array already is an array of double")
            t = TypeRef("double", array=True)
            t.f64 = True  # as spelled, for GET /functions/{name}
            return t
        if name in SCALARS:
            return TypeRef(name, array=array)
        o = self.objects_global.get(name)
        if o is None:
            self.err(tok, f"unknown type '{name}'",
                     "types: bool, int32, int64, uint32, uint64, double, float, string, enum, f64array, "
                     "ndarray, T[] (an array of one of these), or a type of the service's (IM_OBJECT, IM_ENUM)")
        if isinstance(o, EnumDecl):
            return TypeRef("enum", array=array, enum=o)
        return TypeRef("object", array=array, obj=o)

    def on_field(self, c, what, owner):
        """IM_ARG / IM_FIELD (type, name, "doc", .attrs)."""
        if len(c.args) < 2 or len(c.args) > 3:
            self.err(c.tok, f"{c.name} takes a type, a name and a description",
                     f'{c.name}(int64, x, "A value of X", .min = 0)')
        tname = self.parse_type(c.args[0], what)
        ttok = c.args[0].tok
        array = False
        # T[] arrives as ident then '[' ']' which the value parser does not take: read it here
        if c.args[1].kind != "ident":
            self.err(c.args[1].tok, f"the {what}'s name must be a C identifier",
                     "letters, digits and _, not starting with a digit")
        name = c.args[1].value
        doc = ""
        if len(c.args) == 3:
            if c.args[2].kind != "string":
                self.err(c.args[2].tok, f"the {what}'s description must be a \"string\"",
                         'IM_ARG(int64, x, "A value of X")')
            doc = c.args[2].value
        is_map = tname.endswith("{}")
        if tname.endswith("[]") or is_map:
            tname, array = tname[:-2], not is_map
        if not ident_ok(name) or name.startswith("has_"):
            self.err(c.args[1].tok, f"'{name}' cannot be a {what} name",
                     "use a C identifier that is not a keyword and does not start with has_")
        t = self.resolve_type(tname, ttok, array, is_map)
        if isinstance(owner, Obj) and t.base == "object" and t.obj is owner and not t.many:
            self.err(ttok, f"object '{owner.name}' cannot hold itself",
                     f"a recursive field is an array: IM_FIELD({owner.name}[], {name}, ...)")
        if t.base == "ndarray" and what != "argument":
            self.err(ttok, "an ndarray is an argument or a whole result, not an object's field",
                     "take it as its own IM_ARG(ndarray, ...)")
        f = Field(self.where(c.tok), name, t, doc, c.kw)
        f.owner = owner
        self.apply_field_attrs(c, f, what, owner)
        return f

    def apply_field_attrs(self, c, f, what, owner):
        kw, t = c.kw, f.type
        allowed = {"default", "optional", "description", "alias", "example", "nullable"}
        if what == "argument":
            allowed.add("in")
        base = t.base
        if base in NUMERIC:
            allowed.update(NUM_ATTRS + ("multiple_of",))
        if base == "string":
            allowed.update(LEN_ATTRS + ("format", "pattern"))
        if base == "enum":
            allowed.add("values")
        if t.many:
            allowed.update(ITEM_ATTRS)
        if base == "ndarray":
            allowed.update(ND_ATTRS + ITEM_ATTRS)  # items: elements in all
            allowed -= {"example", "nullable"}
        for k, v in kw.items():
            if k not in allowed:
                known = ("." + ", .".join(sorted(allowed)))
                if k in NUM_ATTRS + LEN_ATTRS + ITEM_ATTRS + ND_ATTRS + (
                        "values", "in", "default", "optional", "multiple_of", "example", "nullable", "format", "pattern"):
                    self.err(v.key_tok, f"'.{k}' does not apply to {what} '{f.name}' of type {t}", "it takes " + known)
                self.err(v.key_tok, f"unknown attribute '.{k}'", "known here: " + known)
        if "description" in kw:
            if kw["description"].kind != "string":
                self.err(kw["description"].tok, "'.description' wants a string", '.description = "..."')
            f.doc = kw["description"].value
        if "alias" in kw:
            v = kw["alias"]
            if v.kind != "string" or not v.value or "\0" in v.value:
                self.err(v.tok, "'.alias' wants a non-empty string: the name on the wire", '.alias = "first-name"')
            f.alias = v.value
        if "in" in kw:
            v = kw["in"]
            if v.kind != "ident" or v.value not in SOURCES:
                self.err(v.tok, "'.in' is body, query, path, header, cookie or raw", ".in = query")
            f.source = SOURCES[v.value]
        elif what == "argument":
            if f.key in owner.params:
                f.source = "path"
            elif owner.method in ("GET", "DELETE"):
                f.source = "query"
        if what == "argument":
            if f.source == "path" and f.key not in owner.params:
                self.err(c.args[1].tok, f"argument '{f.name}' is a path parameter but {owner.path} has no {{{f.key}}}",
                         f"add /{{{f.key}}} to the path, or take it from the body or query")
            if f.key in owner.params and f.source != "path":
                self.err(c.args[1].tok, f"'{f.key}' is in the path, so it cannot come from the {f.source}",
                         "drop .in, or rename the argument")
            if f.source in ("header", "cookie") and (base != "string" or t.many):
                self.err(c.args[0].tok, f"a {f.source} argument is a string (an im_str), not {t}",
                         f"IM_ARG(string, {f.name}, \"...\", .in = {f.source}); parse it in the handler")
            if f.source == "header" and not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", f.key):
                self.err((kw.get("alias") or c.args[1]).tok, f"'{f.key}' cannot be a header name",
                         "a header name is a token: letters, digits and !#$%&'*+-.^_`|~")
            if f.source == "cookie" and not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", f.key):
                self.err((kw.get("alias") or c.args[1]).tok, f"'{f.key}' cannot be a cookie name",
                         "a cookie name is a token: letters, digits and !#$%&'*+-.^_`|~")
            if f.source in PARAM_SOURCES and (t.base == "object" or t.map or (t.array and f.source == "path")):
                self.err(c.args[0].tok, f"a {f.source} parameter cannot be of type {t}",
                         "objects come in the JSON body: .in = body")
            if f.source == "body" and owner.method == "GET":
                self.err(c.args[1].tok, f"GET {owner.path} cannot take '{f.name}' from a body",
                         "GET requests have no body: use .in = query")
            if base == "ndarray" and f.source != "body":
                self.err(c.args[0].tok, f"an ndarray comes in the body, not the {f.source}",
                         "drop .in; use POST (or PUT, PATCH)")
            if f.source == "raw":
                if not (t.base == "double" and t.array):
                    self.err(kw["in"].tok, "only an f64array can come raw", "the body is then little-endian float64s")
                if owner.method == "GET":
                    self.err(kw["in"].tok, "GET requests have no body", "use POST, or .in = query")
        if "format" in kw:
            v = kw["format"]
            if v.kind != "string" or v.value not in FORMATS:
                self.err(v.tok, "unknown .format" + (f" '{v.value}'" if v.kind == "string" else ""),
                         "formats: " + ", ".join(f'"{x}"' for x in FORMATS))
            f.format = v.value
        if "pattern" in kw:
            v = kw["pattern"]
            if v.kind != "string" or not v.value or "\0" in v.value:
                self.err(v.tok, "'.pattern' wants a non-empty \"string\"", '.pattern = "^[a-z]+$"')
            try:
                f.pattern = (v.value, compile_pattern(v.value))
            except PatternError as ex:
                self.err(v.tok, f"'.pattern': {ex}", ex.hint)
        if "nullable" in kw:
            v = kw["nullable"]
            if v.kind != "bool":
                self.err(v.tok, "'.nullable' wants true or false", ".nullable = true")
            f.nullable = v.value
            if f.nullable and f.source != "body":
                self.err(v.key_tok, f"a {f.source} value cannot be null", "leave it out instead: .optional = true")
        if base == "ndarray":
            self.nd_attrs(kw, f)
        # values (enum)
        if base == "enum" and t.enum is not None:
            if "values" in kw:
                self.err(kw["values"].key_tok, f"'{t.enum.name}' has its values already (IM_ENUM)",
                         "drop .values, or use the anonymous enum type")
            f.values = list(t.enum.values)
        elif base == "enum":
            v = kw.get("values")
            if v is None:
                self.err(c.args[0].tok, f"enum '{f.name}' needs .values", '.values = {"red", "green", "blue"}')
            if v.kind == "string":
                vals = v.value.split("|")
            elif v.kind == "list" and all(x.kind == "string" for x in v.value):
                vals = [x.value for x in v.value]
            else:
                self.err(v.tok, "'.values' wants a {list} of strings", '.values = {"a", "b"}')
            if not vals or any(not x for x in vals):
                self.err(v.tok, "enum values must be non-empty strings", '.values = {"a", "b"}')
            if len(set(vals)) != len(vals):
                self.err(v.tok, "an enum value is given twice", "list each value once")
            consts = [re.sub(r"[^A-Za-z0-9_]", "_", x) for x in vals]
            if len(set(consts)) != len(consts):
                self.err(v.tok, "two enum values give the same C name",
                         "values are turned into C names by replacing other characters with _")
            f.values = vals
        # bounds
        lo = hi = None
        for k in NUM_ATTRS:
            if k in kw:
                v = kw[k]
                if v.kind != "number":
                    self.err(v.tok, f"'.{k}' wants a number", f".{k} = 10")
                if base in INT_RANGE:
                    if not isinstance(v.value, int):
                        self.err(v.tok, f"'.{k}' of an integer must be an integer",
                                     f"write a whole number, like .{k} = {int(v.value)}")
                    rlo, rhi = INT_RANGE[base]
                    if not rlo <= v.value <= rhi:
                        self.err(v.tok, f"'.{k}' = {v.value} is outside {base}",
                                     f"a {base} is from {rlo} to {rhi}: use {'uint64' if rlo == 0 else 'int64'} for more")
                if base == "float" and abs(v.value) > FLT_MAX:
                    self.err(v.tok, f"'.{k}' = {v.value} is outside float", "a float goes up to about 3.4e38: use double")
        if "min" in kw and "exclusive_min" in kw:
            self.err(kw["exclusive_min"].key_tok, "give .min or .exclusive_min, not both",
                     ".min keeps the bound, .exclusive_min leaves it out")
        if "max" in kw and "exclusive_max" in kw:
            self.err(kw["exclusive_max"].key_tok, "give .max or .exclusive_max, not both",
                     ".max keeps the bound, .exclusive_max leaves it out")
        for k in ("min", "exclusive_min"):
            if k in kw:
                lo = (kw[k].value, k == "exclusive_min", kw[k])
        for k in ("max", "exclusive_max"):
            if k in kw:
                hi = (kw[k].value, k == "exclusive_max", kw[k])
        if lo and hi and (lo[0] > hi[0] or (lo[0] == hi[0] and (lo[1] or hi[1]))):
            self.err(hi[2].key_tok, f"no value satisfies both bounds of '{f.name}'",
                     "the lower bound must be below the upper bound")
        if lo and hi and base in INT_RANGE and lo[0] + (1 if lo[1] else 0) > hi[0] - (1 if hi[1] else 0):
            self.err(hi[2].key_tok, f"no integer satisfies both bounds of '{f.name}'",
                     "exclusive bounds leave out the bound itself: widen them")
        f.lo, f.hi = lo, hi
        if "multiple_of" in kw:
            v = kw["multiple_of"]
            ok = v.kind == "number" and v.value > 0 and (base in REAL or (isinstance(v.value, int) and v.value < 2**63))
            if not ok:
                self.err(v.tok, f"'.multiple_of' of a{'n integer' if base in INT_RANGE else ' number'} wants a "
                         f"positive {'integer' if base in INT_RANGE else 'number'}",
                         ".multiple_of = 5" if base in INT_RANGE else ".multiple_of = 0.25")
            f.multiple_of = v.value
        for a, b in ((LEN_ATTRS[0], LEN_ATTRS[1]), (ITEM_ATTRS[0], ITEM_ATTRS[1])):
            for k in (a, b):
                if k in kw:
                    v = kw[k]
                    if v.kind != "number" or not isinstance(v.value, int) or not 0 <= v.value < 2**32:
                        self.err(v.tok, f"'.{k}' wants a non-negative integer", f".{k} = 1")
            if a in kw and b in kw and kw[a].value > kw[b].value:
                self.err(kw[b].key_tok, f"'.{a}' is above '.{b}'", f"no value fits: lower .{a} or raise .{b}")
        f.min_len, f.max_len = (kw[k].value if k in kw else None for k in LEN_ATTRS)
        f.min_items, f.max_items = (kw[k].value if k in kw else None for k in ITEM_ATTRS)
        # optional, default
        if "optional" in kw:
            if kw["optional"].kind != "bool":
                self.err(kw["optional"].tok, "'.optional' wants true or false", ".optional = true")
            f.optional = kw["optional"].value
        if "default" in kw:
            v = kw["default"]
            if t.many or base in ("object", "ndarray", "json"):
                self.err(v.key_tok, f"{t} cannot have a default", "use .optional = true and test has_" + f.name)
            if f.source == "path":
                self.err(v.key_tok, "a path parameter cannot have a default: the path always has it",
                         "drop .default")
            f.default = self.literal(v, f, "default")
            if base in ("string", "enum") and "\0" in f.default:
                self.err(v.tok, "a default cannot hold a NUL character",
                         "C strings end at NUL: leave \\0 out of the default")
            if f.optional:
                self.err(v.key_tok, "an argument with a default is already optional", "drop .optional")
        if "example" in kw:
            v = kw["example"]
            if t.map:
                self.err(v.key_tok, "a map's example is not written in C", "leave .example out of T{} values")
            elif t.array:
                if v.kind != "list":
                    self.err(v.tok, f"the example of '{f.name}' is a {{list}}", ".example = {1, 2}")
                f.example = [self.literal(x, f, "example") for x in v.value]
            elif base == "json":
                f.example = self.literal_json(v)
            elif base == "object":
                self.err(v.key_tok, "an object's example is made of its fields' examples",
                         "give .example to the fields of the IM_OBJECT")
            else:
                f.example = self.literal(v, f, "example")
        if f.source == "path" and f.optional:
            self.err(kw["optional"].key_tok, "a path parameter cannot be optional",
                     "the route only matches when the segment is there: drop .optional")

    def literal_json(self, v):
        """A json argument's .example: a literal, or a {list} of literals."""
        if v.kind == "list":
            return [self.literal_json(x) for x in v.value]
        if v.kind in ("string", "number", "bool"):
            return v.value
        self.err(v.tok, "a json example is a literal or a {list} of them", '.example = {1, "two"}')

    def literal(self, v, f, what):
        """A .default or .example value checked against the field's type and constraints."""
        base = f.type.base
        ok = {"bool": ("bool",), "string": ("string",), "enum": ("string",)}.get(base, ("number",))
        if v.kind not in ok or (base in INT_RANGE and not isinstance(v.value, int)):
            self.err(v.tok, f"the {what} of '{f.name}' must be {'an integer' if base in INT_RANGE else 'a ' + ok[0]}",
                     f"write a {base} literal")
        d = v.value
        if base in INT_RANGE and not INT_RANGE[base][0] <= d <= INT_RANGE[base][1]:
            self.err(v.tok, f"{what} {d} is outside {base}", f"a {base} is from {INT_RANGE[base][0]} to {INT_RANGE[base][1]}")
        if base == "float" and abs(d) > FLT_MAX:
            self.err(v.tok, f"{what} {d} is outside float", "a float goes up to about 3.4e38")
        if base == "enum" and d not in f.values:
            self.err(v.tok, f"{what} '{d}' is not one of the values", "values: " + ", ".join(f.values))
        lo, hi = f.lo, f.hi
        if base in NUMERIC:
            if lo and (d < lo[0] or (lo[1] and d == lo[0])):
                self.err(v.tok, f"{what} {d} breaks the lower bound", f"the {what} must satisfy the constraints")
            if hi and (d > hi[0] or (hi[1] and d == hi[0])):
                self.err(v.tok, f"{what} {d} breaks the upper bound", f"the {what} must satisfy the constraints")
            m = f.multiple_of
            if m is not None and (d % m != 0 if isinstance(d, int) and isinstance(m, int)
                                  else abs(math.remainder(d, m)) > abs(d) / 1e9):
                self.err(v.tok, f"{what} {d} is not a multiple of {m}", f"the {what} must satisfy the constraints")
        if base == "string":
            n = len(d)
            if f.pattern and not pattern_search(f.pattern[1], d):
                self.err(v.tok, f"the {what} does not match the pattern", f"the {what} must satisfy the constraints")
            if f.format and not format_ok(f.format, d):
                self.err(v.tok, f"the {what} is not a valid {f.format}", f"the {what} must satisfy the constraints")
            if (f.min_len is not None and n < f.min_len) or (f.max_len is not None and n > f.max_len):
                self.err(v.tok, f"the {what} breaks the length bounds", f"the {what} must satisfy the constraints")
        return d

    def nd_attrs(self, kw, f):
        """.dtype ("f64", "f64|f32" or {"f64", "f32"}), .ndim (0..8), .shape ({-1, 3}: -1 any)."""
        if "dtype" in kw:
            v = kw["dtype"]
            if v.kind == "string":
                names = v.value.split("|")
            elif v.kind == "list" and v.value and all(x.kind == "string" for x in v.value):
                names = [x.value for x in v.value]
            else:
                self.err(v.tok, "'.dtype' wants a dtype or a {list} of them", '.dtype = "f64"')
            for n in names:
                if n not in DTYPES:
                    self.err(v.tok, f"unknown dtype '{n}'", "dtypes: " + ", ".join(DTYPES))
            if len(set(names)) != len(names):
                self.err(v.tok, "a dtype is given twice", "list each dtype once")
            f.dtypes = [n for n in DTYPES if n in names]
        if "ndim" in kw:
            v = kw["ndim"]
            if v.kind != "number" or not isinstance(v.value, int) or not 0 <= v.value <= ND_MAX_DIMS:
                self.err(v.tok, f"'.ndim' wants an integer from 0 to {ND_MAX_DIMS}", ".ndim = 2")
            f.ndim = v.value
        if "shape" in kw:
            v = kw["shape"]
            items = v.value if v.kind == "list" else None
            if items is None or not 1 <= len(items) <= ND_MAX_DIMS or any(
                    x.kind != "number" or not isinstance(x.value, int) or x.value < -1 or x.value >= 2**62 for x in items):
                self.err(v.tok, f"'.shape' wants a {{list}} of 1 to {ND_MAX_DIMS} sizes (-1: any)", ".shape = {-1, 3}")
            shape = [x.value for x in items]
            if f.ndim is not None and f.ndim != len(shape):
                self.err(v.tok, f"'.shape' has {len(shape)} sizes but '.ndim' is {f.ndim}",
                         "give one of them, or make them agree")
            f.shape, f.ndim = shape, len(shape)

    def on_body(self, c, e):
        """IM_BODY(type, "doc"): the whole body is one value of a named object type, or an
        array, bound into in->body (FastAPI's single body model)."""
        if not 1 <= len(c.args) <= 2 or c.kw or (len(c.args) == 2 and c.args[1].kind != "string"):
            self.err(c.tok, "IM_BODY takes a type and a description", 'IM_BODY(box, "The box to measure")')
        tname = self.parse_type(c.args[0], "body")
        array, is_map = tname.endswith("[]"), tname.endswith("{}")
        t = self.resolve_type(tname[:-2] if array or is_map else tname, c.args[0].tok, array, is_map)
        if not (t.many or t.base == "object"):
            self.err(c.args[0].tok, f"IM_BODY is a whole JSON value: a named object or an array, not {t}",
                     f"IM_ARG({t}, name, \"...\") for a key of the body")
        if e.method == "GET":
            self.err(c.tok, f"GET {e.path} cannot take a body", "use POST, PUT or PATCH")
        if any(a.whole for a in e.args):
            self.err(c.tok, "a second IM_BODY", "the body is one value: one IM_BODY per endpoint")
        f = Field(self.where(c.tok), "body", t, c.args[1].value if len(c.args) == 2 else "", {})
        f.owner, f.whole = e, True
        return f

    def on_result(self, c, e):
        if not 1 <= len(c.args) <= 2 or c.kw:
            self.err(c.tok, "IM_RESULT takes a type and a description", 'IM_RESULT(int64, "The sum")')
        tname = self.parse_type(c.args[0], "result")
        e.result_doc = c.args[1].value if len(c.args) == 2 and c.args[1].kind == "string" else ""
        if len(c.args) == 2 and c.args[1].kind != "string":
            self.err(c.args[1].tok, "the result's description must be a \"string\"",
                     'IM_RESULT(int64, "The sum")')
        array, is_map = tname.endswith("[]"), tname.endswith("{}")
        if array or is_map:
            tname = tname[:-2]
        if tname == "object" and is_map:
            self.err(c.args[0].tok, "object{} is not a type", "declare an IM_OBJECT and return name{}")
        if tname == "object":
            if array:
                self.err(c.args[0].tok, "object[] is not a type", "declare an IM_OBJECT and return name[]")
            e.result = TypeRef("object")  # inline object: IM_FIELD lines follow
            e.result_where = self.where(c.tok)
        else:
            e.result = self.resolve_type(tname, c.args[0].tok, array, is_map)
            if e.result.base == "enum" and e.result.enum is None:
                self.err(c.args[0].tok, "a result cannot be an anonymous enum",
                         'declare it: IM_ENUM(name, "doc", "a", "b"), then IM_RESULT(name, "...")')

    def on_function(self, e, toks, start, nxt):
        """The function definition after an endpoint's annotations: int NAME(...)."""
        i = start
        last = toks[start - 1]
        if e.result is not None and e.result.base == "object" and e.result.obj is None and not e.result_fields:
            self.err(last, "IM_RESULT(object, ...) needs IM_FIELD lines after it",
                     'IM_FIELD(int64, count, "How many") for each member')
        # find "ident (" ; the tokens before it must be "int"
        j = i
        while j + 1 < len(toks) and not (toks[j].kind == "ident" and toks[j + 1].text == "("):
            if toks[j].text in (";", "{", "}") or (toks[j].kind == "ident" and toks[j].text.startswith("IM_")):
                j = None
                break
            j += 1
        if j is None or j + 1 >= len(toks):
            self.err(last, "an endpoint's annotations must be followed by its function",
                     f"int name(im_call *call, const name_args *in, name_result *out) {{ ... }}")
        head = [t.text for t in toks[i:j]]
        if head != ["int"]:
            self.err(toks[i], "the endpoint function must be declared 'int name(...)'",
                     "it returns 0 (200 with the result) or a status from im_call_fail; no static")
        name = toks[j].text
        if not ident_ok(name) or name == "main" or name.lower().startswith("im_"):
            self.err(toks[j], f"'{name}' cannot be an endpoint function name",
                     "use a C identifier that is not a keyword, not main, and does not start with im_")
        e.func = name
        e.func_where = self.where(toks[j])
