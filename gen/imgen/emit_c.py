"""emit_c.py — the C: <module>.gen.h, <service>.types.h and <service>.routes.c (binders, writers,
answer checks, the endpoint table, the document's builder)."""
import json
import re

from .model import (DTYPES, FORMATS, GENERATOR, NUMERIC, PARAM_SOURCES, REAL, TypeRef, body_kind, npy_arg,
                    objects_used, result_is_ndarray, result_kind)
from .checks import objects_in_order
from .openapi import args_definition


def c_str(s):
    """A C string literal for s (UTF-8 bytes, escaped)."""
    out = []
    for b in s.encode("utf-8"):
        if b in (34, 92):
            out.append("\\" + chr(b))
        elif 32 <= b < 127 and b != 63:  # '?' escaped: no trigraphs
            out.append(chr(b))
        else:
            out.append("\\%03o" % b)
    return '"' + "".join(out) + '"'


def c_comment(s):
    return s.replace("*/", "* /").replace("\n", " ")


CTYPE = {"bool": "bool", "int32": "int32_t", "int64": "int64_t", "uint32": "uint32_t", "uint64": "uint64_t",
         "double": "double", "float": "float", "string": "im_str", "enum": "int", "ndarray": "im_ndarray",
         "json": "im_str"}


ARRTYPE = {"bool": "im_bools", "int32": "im_i32s", "int64": "im_i64s", "uint32": "im_u32s", "uint64": "im_u64s",
           "double": "im_f64s", "float": "im_f32s", "string": "im_strs", "enum": "im_enums", "json": "im_strs"}


TCONST = {"bool": "IM_T_BOOL", "int32": "IM_T_INT32", "int64": "IM_T_INT64", "uint32": "IM_T_UINT32",
          "uint64": "IM_T_UINT64", "double": "IM_T_DOUBLE", "float": "IM_T_FLOAT", "string": "IM_T_STRING",
          "enum": "IM_T_ENUM", "object": "IM_T_OBJECT", "ndarray": "IM_T_NDARRAY", "json": "IM_T_JSON"}


MAPTYPE = {"bool": "im_bool_map", "int32": "im_i32_map", "int64": "im_i64_map", "uint32": "im_u32_map",
           "uint64": "im_u64_map", "double": "im_f64_map", "float": "im_f32_map", "string": "im_str_map",
           "enum": "im_enum_map", "json": "im_str_map"}


IN_CONST = {"body": "IM_IN_BODY", "raw": "IM_IN_BODY", "query": "IM_IN_QUERY", "path": "IM_IN_PATH",
            "header": "IM_IN_HEADER", "cookie": "IM_IN_COOKIE"}


def ctype_of(t):
    if t.map:
        return t.obj.name + "_map" if t.base == "object" else MAPTYPE[t.base]
    if t.array:
        return t.obj.name + "_list" if t.base == "object" else ARRTYPE[t.base]
    if t.enum is not None:
        return t.enum.name
    return t.obj.name if t.base == "object" else CTYPE[t.base]


class Out:
    """Collects generated lines, knows its own line numbers (for #line)."""

    def __init__(self, name):
        self.name, self.lines = name, []

    def add(self, *lines):
        for l in lines:
            self.lines.extend(l.split("\n"))

    def line_to(self, where):
        self.lines.append(f'#line {where[1]} "{where[0]}"')

    def line_back(self):
        self.lines.append(f'#line {len(self.lines) + 2} "{self.name}"')

    def user_line(self, where, text):
        """One line that stands for a line of the user's (a member for its IM_FIELD, the
        prototype for the function): a compiler's message, gdb and gcov point there; the
        lines after are the generated file's own again."""
        if where:
            self.line_to(where)
        self.add(text)
        if where:
            self.line_back()

    def text(self):
        return "\n".join(self.lines) + "\n"


def c_double(x):
    r = repr(float(x))
    if r in ("inf", "-inf", "nan"):
        raise ValueError(r)
    return r


PATTERN_TABLES = []  # (field, name) of the patterns the routes use, written at their top


def pattern_table(f):
    """The name of f's compiled pattern (an im_pattern), written once where used."""
    for g, name in PATTERN_TABLES:
        if g is f:
            return name
    name = f"im_gen_pat_{len(PATTERN_TABLES)}"
    PATTERN_TABLES.append((f, name))
    return name


def emit_pattern_tables(out, at):
    """The DFA tables of every pattern used, inserted at line `at` of out."""
    t = Out("")
    for f, name in PATTERN_TABLES:
        src, (cls, table, accept, sticky) = f.pattern
        n = max(cls) + 1
        t.add(f"/* .pattern of {c_comment(f.name)}: {c_comment(src)} ({len(table)} states, {n} byte classes) */",
              f"static const uint8_t {name}_cls[256] = {{")
        for i in range(0, 256, 32):
            t.add("    " + ", ".join(str(x) for x in cls[i:i + 32]) + ",")
        t.add("};", f"static const uint16_t {name}_next[] = {{")
        for row in table:
            t.add("    " + ", ".join("0xFFFF" if x < 0 else str(x) for x in row) + ",")
        t.add("};", f"static const uint8_t {name}_accept[] = {{{', '.join('1' if a else '0' for a in accept)}}};",
              f"static const im_pattern {name} = {{{c_str(src)}, {name}_cls, {name}_next, {name}_accept, {n}, "
              f"{1 if sticky else 0}}};", "")
    out.lines[at:at] = t.lines


def c_int(x):
    """An integer constant of any int64 or uint64 value."""
    if x < 0:
        return "INT64_C(%d)" % x if x != -2**63 else "INT64_MIN"
    return "INT64_C(%d)" % x if x < 2**63 else "UINT64_C(%d)" % x


def field_init(f, cname, prefix):
    """A static const im_field: its non-zero members, by name."""
    t = f.type
    flags, m = [], [("name", c_str(f.key)), ("type", "IM_T_ARRAY" if t.array else "IM_T_MAP" if t.map else TCONST[t.base])]
    if t.many:
        m.append(("elem", TCONST[t.base]))
    real, unsigned = t.base in REAL, t.base == "uint64"
    for bound, flag, xflag, names in ((f.lo, "IM_F_MIN", "IM_F_XMIN", ("dmin", "umin", "imin")),
                                      (f.hi, "IM_F_MAX", "IM_F_XMAX", ("dmax", "umax", "imax"))):
        if bound:
            flags.append(flag)
            if bound[1]:
                flags.append(xflag)
            if real:
                m.append((names[0], c_double(bound[0])))
            else:
                m.append((names[1] if unsigned else names[2], c_int(bound[0])))
    if f.multiple_of is not None:
        flags.append("IM_F_MULTIPLE")
        m.append(("dmul", c_double(f.multiple_of)) if real else ("imul", c_int(f.multiple_of)))
    for v, flag, member in ((f.min_len, "IM_F_MINLEN", "min_len"), (f.max_len, "IM_F_MAXLEN", "max_len"),
                            (f.min_items, "IM_F_MINITEMS", "min_items"), (f.max_items, "IM_F_MAXITEMS", "max_items")):
        if v is not None:
            flags.append(flag)
            m.append((member, f"{v}u"))
    if f.format:
        m.append(("format", FORMATS[f.format]))
    if f.pattern:
        m.append(("pattern", "&" + pattern_table(f)))
    if flags:
        m.append(("flags", " | ".join(flags)))
    if f.source != "body":
        m.append(("in", IN_CONST[f.source]))
    if f.values:
        m += [("values", f"{prefix}_values"), ("nvalues", f"{len(f.values)}u")]
    if t.base == "object":
        if t.many:
            m.append(("elem_size", f"sizeof({t.obj.name})"))
        m.append(("object", f"im_gen_bind_obj_{t.obj.name}"))
    pre = ""
    if t.base == "ndarray":
        dtypes = sum(1 << DTYPES.index(d) for d in f.dtypes)
        if dtypes:
            m.append(("dtypes", f"{dtypes}u"))
        m.append(("ndim", str(-1 if f.ndim is None else f.ndim)))
        if f.shape:
            shape = f"{prefix}_shape"
            pre = f"static const int64_t {shape}[] = {{{', '.join(str(x) for x in f.shape)}}};\n"
            m.append(("shape", shape))
    return pre + f"static const im_field {cname} = {{" + ", ".join(f".{k} = {v}" for k, v in m) + "};"


def default_c(f):
    d, b = f.default, f.type.base
    if b == "bool":
        return "true" if d else "false"
    if b in ("int32", "uint32"):
        return str(d) + ("u" if b == "uint32" else "")
    if b in ("int64", "uint64"):
        return c_int(d)
    if b == "double":
        return c_double(d)
    if b == "float":
        return c_double(d) + "f"
    if b == "enum":
        return str(f.values.index(d))
    return f"im_str_from({c_str(d)})"


def key_dispatch(out, fields, var, on_match, indent="        "):
    """switch on the key's length, then compare bytes: no scan over all fields."""
    by_len = {}
    for i, f in enumerate(fields):
        by_len.setdefault(len(f.key.encode()), []).append((i, f))
    out.add(f"{indent}switch ({var}.len) {{")
    for n in sorted(by_len):
        out.add(f"{indent}case {n}:")
        for i, f in by_len[n]:
            out.add(f"{indent}    if (__builtin_memcmp({var}.ptr, {c_str(f.key)}, {n}) == 0) {{")
            for l in on_match(i, f):
                out.add(f"{indent}        {l}")
            out.add(f"{indent}        continue;", f"{indent}    }}")
        out.add(f"{indent}    break;")
    out.add(f"{indent}}}")


def emit_members(out, fields, indent="    "):
    for f in fields:
        if f.nullable:
            out.add(f"{indent}bool has_{f.name}; /* {f.name} was given (null or not) */",
                    f"{indent}bool {f.name}_is_null; /* {f.name} is null */")
        elif f.optional:
            out.add(f"{indent}bool has_{f.name}; /* {f.name} was given */")
        doc = f" /* {c_comment(f.doc)} */" if f.doc else ""
        out.user_line(f.where, f"{indent}{ctype_of(f.type)} {f.name};{doc}")
    if not fields:
        out.add(f"{indent}char im_unused_; /* no members: C wants one */")


def emit_types_header(service, modules):
    """<service>.types.h: every type the service's modules declare (IM_ENUM, IM_OBJECT), one
    header for all, so that any module may use any of them (each module header includes it)."""
    name = f"{service}.types.h"
    out = Out(name)
    guard = f"IM_GEN_TYPES_{service.upper()}_H"
    out.add(f"/* {name} — generated by {GENERATOR} for service '{service}'; do not edit.",
            " * The types of all its modules (IM_ENUM, IM_OBJECT): any module may use any. */",
            f"#ifndef {guard}", f"#define {guard}", '#include "immersive.h"', "")
    for m in modules:
        for d in m.enums.values():
            out.add(f"/* {c_comment(d.doc)} */")
            out.user_line(d.where, "typedef enum {")
            for i, v in enumerate(d.values):
                out.add(f"    {d.name}_{re.sub(r'[^A-Za-z0-9_]', '_', v)} = {i}, /* {c_comment(v)} */")
            out.add(f"}} {d.name};",
                    f"_Static_assert(sizeof({d.name}) == sizeof(int), \"the binder stores an enum as an int\");", "")
    objs = objects_in_order(modules)
    # every object's name and list type first: objects may hold arrays of themselves
    for o in objs:
        out.add(f"typedef struct {o.name} {o.name};",
                f"typedef struct {o.name}_list {{ const struct {o.name} *ptr; size_t len; }} {o.name}_list;",
                f"typedef struct {o.name}_map {{ const im_str *keys; const struct {o.name} *values; size_t len; }} "
                f"{o.name}_map;")
    if objs:
        out.add("")
    for o in objs:
        for f in o.fields:
            emit_enum(out, f, f"{o.name}_{f.name}")
        out.add(f"/* {c_comment(o.doc)} */")
        out.user_line(o.where, f"struct {o.name} {{")
        emit_members(out, o.fields)
        out.add("};", "")
    out.add(f"#endif /* {guard} */")
    return name, out.text()


def emit_module_header(m, service):
    name = f"{m.name}.gen.h"
    out = Out(name)
    guard = f"IM_GEN_{m.name.upper()}_H"
    out.add(f"/* {name} — generated by {GENERATOR} from module '{m.name}'; do not edit. */",
            f"#ifndef {guard}", f"#define {guard}", '#include "immersive.h"',
            f'#include "{service}.types.h" /* the service\'s objects and enums */', "")
    for e in m.endpoints:
        out.add(f"/* {e.func}: {e.method} {e.path}" + (f" — {c_comment(e.summary)}" if e.summary else "") + " */")
        for a in e.args:
            emit_enum(out, a, f"{e.func}_{a.name}")
        for f in e.result_fields:
            emit_enum(out, f, f"{e.func}_result_{f.name}")
        out.user_line(e.where, f"typedef struct {e.func}_args {{")
        emit_members(out, e.args)
        out.add(f"}} {e.func}_args;")
        if result_kind(e) == "object":  # the answer is the object itself
            out.add(f"typedef {e.result.obj.name} {e.func}_result;" +
                    (f" /* {c_comment(e.result_doc)} */" if e.result_doc else ""))
        else:
            out.add(f"typedef struct {e.func}_result {{")
            if e.result is None:
                out.add("    char im_unused_; /* no result: the answer is null */")
            elif result_kind(e) == "fields":
                emit_members(out, e.result_fields)
            else:
                doc = f" /* {c_comment(e.result_doc)} */" if e.result_doc else ""
                out.add(f"    {ctype_of(e.result)} result;{doc}")
            out.add(f"}} {e.func}_result;")
        out.user_line(e.func_where, f"int {e.func}(im_call *call, const {e.func}_args *in, {e.func}_result *out);")
        out.add("")
    for k, decl in (("init", "int {}(im_module *m);"), ("fini", "void {}(im_module *m);")):
        f = getattr(m, k)
        if f:
            out.add(f"/* the module's .{k} */", decl.format(f), "")
    out.add(f"#endif /* {guard} */")
    return name, out.text()


def emit_enum(out, f, prefix):
    if f.type.base != "enum" or f.type.enum is not None:  # a named enum has its own constants
        return
    consts = [re.sub(r"[^A-Za-z0-9_]", "_", v) for v in f.values]
    out.add(f"enum {{ /* values of {f.name} */")
    for i, (c, v) in enumerate(zip(consts, f.values)):
        out.add(f"    {prefix}_{c} = {i}, /* {c_comment(v)} */")
    out.add("};")


def emit_binder_body(out, fields, prefix, target, extra):
    """The key loop of an object binder over `fields` into `target` (a pointer expression)."""
    n = len(fields)
    seen_t = "uint64_t" if n > 32 else "uint32_t"
    one = "UINT64_C(1)" if n > 32 else "1u"
    out.add(f"    {seen_t} seen = 0;", "    im_str k;", "    int r;")

    def given(f):  # after a field's value was read
        return [f"{target}->has_{f.name} = true;"] if f.optional or f.nullable else []

    def on(i, f):
        bind = f"im_bind_field(b, &{prefix}_{f.name}, &{target}->{f.name});"
        if f.nullable:
            bind = f"if (im_bind_null(b)) {target}->{f.name}_is_null = true; else {bind}"
        return [f"seen |= {one} << {i};", bind] + given(f)

    # keys as the fields are declared, compared where they stand (the usual client sends them so):
    # one compare per field, no key scan; the first key out of order, blank or escape goes to the loop
    chain = 0
    for i, f in enumerate(fields):
        raw = f.key.encode()
        if any(c in (34, 92) or c < 32 for c in raw):
            break
        lit = ("" if i == 0 else ",") + '"' + f.key + '":'
        if f.nullable:
            out.add(f"    if (!im_bind_key_at(b, {c_str(lit)}, {len(lit.encode())})) goto keyed;")
            out.add(*("    " + l for l in on(i, f)))
        else:  # one call: the key, then the value
            out.add(f"    if (!im_bind_field_at(b, {c_str(lit)}, {len(lit.encode())}, &{prefix}_{f.name}, "
                    f"&{target}->{f.name})) goto keyed;")
            out.add(f"    seen |= {one} << {i};", *("    " + l for l in given(f)))
        chain += 1
    if chain:
        out.add("keyed:")
    out.add("    while ((r = im_bind_obj_key(b, &k)) > 0) {")
    if fields:
        key_dispatch(out, fields, "k", on)
    out.add(f"        im_bind_extra_as(b, k, IM_EXTRA_{extra.upper()});", "    }", "    if (r < 0) return r;")
    if not any(f.required or f.default is not None for f in fields):
        out.add("    (void)seen; /* every field is optional */")
    for i, f in enumerate(fields):
        if f.required:
            out.add(f"    if (!(seen & ({one} << {i}))) im_bind_missing(b, &{prefix}_{f.name});")
        elif f.default is not None:
            out.add(f"    if (!(seen & ({one} << {i}))) {target}->{f.name} = {default_c(f)};")


def emit_writer_value(out, t, expr, indent, depth=0):
    """Statements writing expr (of type t) with the im_jw *w."""
    if t.map:
        i = f"i{depth}"
        out.add(f"{indent}im_jw_obj(w);",
                f"{indent}for (size_t {i} = 0; {i} < {expr}.len; {i}++) {{",
                f"{indent}    im_jw_keyn(w, {expr}.keys[{i}].ptr, {expr}.keys[{i}].len);")
        emit_writer_value(out, TypeRef(t.base, obj=t.obj, enum=t.enum), f"{expr}.values[{i}]", indent + "    ", depth + 1)
        out.add(f"{indent}}}", f"{indent}im_jw_obj_end(w);")
        return
    if t.array:
        i = f"i{depth}"
        out.add(f"{indent}im_jw_arr(w);",
                f"{indent}for (size_t {i} = 0; {i} < {expr}.len; {i}++) {{")
        emit_writer_value(out, TypeRef(t.base, obj=t.obj, enum=t.enum), f"{expr}.ptr[{i}]", indent + "    ", depth + 1)
        out.add(f"{indent}}}", f"{indent}im_jw_arr_end(w);")
        return
    b = t.base
    if b == "bool":
        out.add(f"{indent}im_jw_bool(w, {expr});")
    elif b in ("int32", "int64"):
        out.add(f"{indent}im_jw_int(w, {expr});")
    elif b in ("uint32", "uint64"):
        out.add(f"{indent}im_jw_uint(w, {expr});")
    elif b == "double":
        out.add(f"{indent}im_jw_double(w, {expr});")
    elif b == "float":
        out.add(f"{indent}im_jw_float(w, {expr});")
    elif b == "string":
        out.add(f"{indent}if ({expr}.ptr) im_jw_strn(w, {expr}.ptr, {expr}.len);",
                f"{indent}else im_jw_null(w);")
    elif b == "json":
        out.add(f"{indent}if ({expr}.ptr) im_jw_raw(w, {expr}.ptr, {expr}.len);", f"{indent}else im_jw_null(w);")
    elif b == "enum" and t.enum is not None:
        d = t.enum
        out.add(f"{indent}{{", f"{indent}    static const char *const v[] = {{{', '.join(c_str(x) for x in d.values)}}};",
                f"{indent}    int x = (int){expr};",
                f"{indent}    if (x >= 0 && x < {len(d.values)}) im_jw_str(w, v[x]);",
                f"{indent}    else im_jw_null(w);", f"{indent}}}")
    elif b == "object":
        out.add(f"{indent}im_gen_write_obj_{t.obj.name}(w, &{expr});")
    elif b == "ndarray":
        out.add(f"{indent}im_jw_ndarray(w, &{expr});")


def emit_writer_fields(out, fields, src, enum_prefix):
    out.add("    im_jw_obj(w);")
    for f in fields:
        if f.optional:
            out.add(f"    if ({src}->has_{f.name}) {{")
            ind = "        "
        else:
            ind = "    "
        out.add(f"{ind}im_jw_key(w, {c_str(f.key)});")
        if f.nullable:
            out.add(f"{ind}if ({src}->{f.name}_is_null) im_jw_null(w);", f"{ind}else {{")
            ind += "    "
        if f.type.base == "enum" and f.type.enum is None and not f.type.array:
            vals = ", ".join(c_str(v) for v in f.values)
            out.add(f"{ind}{{", f"{ind}    static const char *const v[] = {{{vals}}};",
                    f"{ind}    int x = {src}->{f.name};",
                    f"{ind}    if (x >= 0 && x < {len(f.values)}) im_jw_str(w, v[x]);",
                    f"{ind}    else im_jw_null(w);", f"{ind}}}")
        elif f.type.base == "enum" and f.type.enum is None:
            vals = ", ".join(c_str(v) for v in f.values)
            out.add(f"{ind}{{", f"{ind}    static const char *const v[] = {{{vals}}};",
                    f"{ind}    im_jw_arr(w);",
                    f"{ind}    for (size_t i = 0; i < {src}->{f.name}.len; i++) {{",
                    f"{ind}        int x = {src}->{f.name}.ptr[i];",
                    f"{ind}        if (x >= 0 && x < {len(f.values)}) im_jw_str(w, v[x]);",
                    f"{ind}        else im_jw_null(w);", f"{ind}    }}", f"{ind}    im_jw_arr_end(w);", f"{ind}}}")
        else:
            emit_writer_value(out, f.type, f"{src}->{f.name}", ind)
        if f.nullable:
            ind = ind[:-4]
            out.add(f"{ind}}}")
        if f.optional:
            out.add("    }")
    out.add("    im_jw_obj_end(w);")


def emit_check_value(out, t, f, expr, at, ind, depth, uses):
    """Statements returning im_gen_fail() when expr, of type t (with f's constraints, when f),
    breaks the schema the document gives it; at is (printf format, arguments) naming it."""
    fmt, args = at
    def fail(cond, msg, *more):
        uses.add("fail")
        out.add(f'{ind}if ({cond})', f'{ind}    return im_gen_fail(err, cap, "{fmt}: {msg}"{args}{"".join(", " + m for m in more)});')
    if t.many:  # an array's items, or a map's values
        noun = "keys" if t.map else "items"
        if f is not None and f.min_items is not None:
            fail(f"{expr}.len < {f.min_items}u", f"%zu {noun}, fewer than {f.min_items}", f"{expr}.len")
        if f is not None and f.max_items is not None:
            fail(f"{expr}.len > {f.max_items}u", f"%zu {noun}, more than {f.max_items}", f"{expr}.len")
        i = f"i{depth}"
        out.add(f"{ind}for (size_t {i} = 0; {i} < {expr}.len; {i}++) {{")
        emit_check_value(out, TypeRef(t.base, obj=t.obj, enum=t.enum), f,
                         f"{expr}.{'values' if t.map else 'ptr'}[{i}]", (fmt + "[%zu]", args + ", " + i),
                         ind + "    ", depth + 1, uses)
        out.add(f"{ind}}}")
        return
    b = t.base
    lo, hi, mul = (f.lo, f.hi, f.multiple_of) if f is not None else (None, None, None)
    if b in REAL:
        fail(f"!__builtin_isfinite({expr})", "%g is not a finite number", f"(double){expr}")
    if b in NUMERIC:
        if b in REAL:
            val, pf, lit = f"(double){expr}", "%g", c_double
        elif b == "uint64":
            val, pf, lit = f"(unsigned long long){expr}", "%llu", lambda x: "%dULL" % x
        else:
            val, pf = f"(long long){expr}", "%lld"
            lit = lambda x: "%dLL" % x if x != -2**63 else "(-9223372036854775807LL - 1)"
        if lo:
            fail(f"{val} {'<=' if lo[1] else '<'} {lit(lo[0])}", f"{pf} is below its {'exclusive ' if lo[1] else ''}minimum {lo[0]}", val)
        if hi:
            fail(f"{val} {'>=' if hi[1] else '>'} {lit(hi[0])}", f"{pf} is above its {'exclusive ' if hi[1] else ''}maximum {hi[0]}", val)
        if mul is not None:
            if b in REAL:  # as the binder: a remainder within 1e-9 of the value's size is none
                r = f"__builtin_fmod({val}, {c_double(mul)})"
                tol = f"__builtin_fabs({val}) / 1e9"
                fail(f"__builtin_fabs({r}) > {tol} && __builtin_fabs(__builtin_fabs({r}) - {c_double(mul)}) > {tol}",
                     f"{pf} is not a multiple of {mul}", val)
            else:
                fail(f"{val} % {lit(mul)} != 0", f"{pf} is not a multiple of {mul}", val)
    elif b == "json":
        fail(f"!{expr}.ptr", "not set, and the document says a JSON value")
        out.add(f"{ind}{{", f"{ind}    im_json im_gen_j;")
        fail(f"im_json_check(&im_gen_j, {expr}.ptr, {expr}.len)", "not valid JSON text")
        out.add(f"{ind}}}")
    elif b == "string":
        fail(f"!{expr}.ptr", "not set, and the document says a string")
        if f is not None and f.format:
            fail(f"!im_format_ok({FORMATS[f.format]}, {expr})", f"not a valid {f.format}")
        if f is not None and f.pattern:
            fail(f"!im_pattern_match(&{pattern_table(f)}, {expr})", "does not match its pattern")
        if f is not None and (f.min_len is not None or f.max_len is not None):
            uses.add("chars")
            n = f"im_gen_chars({expr})"
            if f.min_len is not None:
                fail(f"{n} < {f.min_len}u", f"fewer than {f.min_len} characters")
            if f.max_len is not None:
                fail(f"{n} > {f.max_len}u", f"more than {f.max_len} characters")
    elif b == "enum" and (f is not None or t.enum is not None):
        n = len(t.enum.values if t.enum is not None else f.values)
        fail(f"(int){expr} < 0 || (int){expr} >= {n}", f"%d is none of its {n} values", f"(int){expr}")
    elif b == "object":
        uses.add("sub")
        out.add(f'{ind}im_gen_at(sub, sizeof sub, "{fmt}"{args});',
                f"{ind}if (im_gen_check_obj_{t.obj.name}(&{expr}, err, cap, sub)) return -1;")


def emit_check_fields(out, fields, src, at_fmt, at_args, uses):
    for f in fields:
        ind, close = "    ", 0
        if f.optional:
            out.add(f"    if ({src}->has_{f.name}) {{")
            ind, close = ind + "    ", close + 1
        if f.nullable:
            out.add(f"{ind}if (!{src}->{f.name}_is_null) {{")
            ind, close = ind + "    ", close + 1
        emit_check_value(out, f.type, f, f"{src}->{f.name}", (at_fmt + "." + c_str(f.key)[1:-1].replace("%", "%%"), at_args), ind, 0, uses)
        for _ in range(close):
            ind = ind[:-4]
            out.add(f"{ind}}}")


def emit_checker(out, head, body_fn, uses_all, keep_empty):
    """A checker function: head is its signature; body_fn(out, uses) writes its checks (the
    buffer for nested names is declared only when used). Without a check (and not keep_empty)
    nothing is written and False returned."""
    inner = Out("")
    uses = set()
    body_fn(inner, uses)
    if not uses and not keep_empty:
        return False
    uses_all |= uses
    out.add(head, "{")
    if "sub" in uses:
        out.add("    char sub[256];")
    out.lines.extend(inner.lines)
    out.add("    (void)err;", "    (void)cap;", "    return 0;", "}")
    return True


def emit_checks(out, modules):
    """The checkers of every answer (im_endpoint.check): {endpoint func: checker name or
    None}. Objects that answers carry have one each (they may hold one another)."""
    body, uses, names = Out(""), set(), {}
    _, written = objects_used(modules)
    objs = [o for m in modules for o in m.objects.values() if o.name in written]
    for o in objs:
        body.add(f"static int im_gen_check_obj_{o.name}(const {o.name} *o, char *err, size_t cap, const char *at);")
    for o in objs:
        emit_checker(body, f"static int im_gen_check_obj_{o.name}(const {o.name} *o, char *err, size_t cap, const char *at)",
                     lambda b, u, o=o: emit_check_fields(b, o.fields, "o", "%s", ", at", u), uses, True)
    for m in modules:
        for e in m.endpoints:
            head = f"static int im_gen_check_{e.func}(const void *vout, char *err, size_t cap)"
            if e.result is None or result_is_ndarray(e):
                names[e.func] = None
                continue
            def fill(b, u, e=e):
                b.add(f"    const {e.func}_result *o = vout;")
                if result_kind(e) == "fields":
                    emit_check_fields(b, e.result_fields, "o", "response", "", u)
                elif result_kind(e) == "object":
                    u.add("obj")  # a check to make, with no helper of its own
                    b.add(f'    if (im_gen_check_obj_{e.result.obj.name}(o, err, cap, "response")) return -1;')
                elif result_kind(e) == "array":
                    emit_check_value(b, e.result, None, "o->result", ("response", ""), "    ", 0, u)
                else:
                    emit_check_value(b, e.result, None, "o->result", ("response.result", ""), "    ", 0, u)
            names[e.func] = f"im_gen_check_{e.func}" if emit_checker(body, head, fill, uses, False) else None
    for k in ("fail", "sub", "chars"):  # only those used: no unused static function
        if k in uses:
            out.add(CHECK_HELPERS[k].rstrip("\n"))
    out.lines.extend(body.lines)
    out.add("")
    return names


CHECK_HELPERS = {"fail": """/* What makes an answer break its schema, named (response.field[i].sub): the caller answers
 * 500 with it and logs it, as FastAPI validates its responses. */
__attribute__((format(printf, 3, 4))) static int im_gen_fail(char *err, size_t cap, const char *fmt, ...)
{
    __builtin_va_list ap;
    __builtin_va_start(ap, fmt);
    __builtin_vsnprintf(err, cap, fmt, ap);
    __builtin_va_end(ap);
    return -1;
}
""",
                 "sub": """__attribute__((format(printf, 3, 4))) static void im_gen_at(char *at, size_t cap, const char *fmt, ...)
{
    __builtin_va_list ap; /* where a nested value is: cut when deeper than cap */
    __builtin_va_start(ap, fmt);
    __builtin_vsnprintf(at, cap, fmt, ap);
    __builtin_va_end(ap);
}
""",
                 "chars": """static size_t im_gen_chars(im_str s) /* characters of UTF-8 text, as the binder counts them */
{
    size_t n = 0;
    for (size_t i = 0; i < s.len; i++) n += ((unsigned char)s.ptr[i] & 0xC0) != 0x80;
    return n;
}
"""}


def emit_routes(service, modules, openapi_doc, outdir, docs=None):
    name = f"{service}.routes.c"
    out = Out(name)
    out.add(f"/* {name} — generated by {GENERATOR} for service '{service}'; do not edit.",
            " * Binders read the request straight into each endpoint's argument struct; the table at",
            f" * the end is what im_register_{service}() hands to the server.",
            " * It includes no libc header (builtins instead), so no libc name meets the service's. */",
            '#include "immersive.h"')
    for m in modules:
        out.add(f'#include "{m.name}.gen.h"')
    out.add(f'#include "{service}.service.h"', "")
    PATTERN_TABLES.clear()
    tables_at = len(out.lines)
    # objects: binders for those that arrive, writers for those that leave (only those: no
    # unused functions), for the whole service (a module may use another's); declared first,
    # as they may refer to each other
    bound, written = objects_used(modules)
    objs = [o for m in modules for o in m.objects.values() if o.name in bound or o.name in written]
    if objs:
        out.add("/* ======== the service's objects ======== */", "")
    for o in objs:
        if o.name in bound:
            out.add(f"static int im_gen_bind_obj_{o.name}(im_bind *b, void *dst);")
        if o.name in written:
            out.add(f"static void im_gen_write_obj_{o.name}(im_jw *w, const {o.name} *o);")
    for o in objs:
        if o.name in bound:
            emit_fields_consts(out, o.fields, f"im_gen_f_{o.name}")
    for o in objs:
        if o.name in bound:
            out.add(f"static int im_gen_bind_obj_{o.name}(im_bind *b, void *dst)", "{",
                    f"    {o.name} *o = dst;", "    int rb = im_bind_obj_begin(b);",
                    "    if (rb <= 0) return rb;")
            emit_binder_body(out, o.fields, f"im_gen_f_{o.name}", "o", o.extra)
            out.add("    return 0;", "}")
        if o.name in written:
            out.add(f"static void im_gen_write_obj_{o.name}(im_jw *w, const {o.name} *o)", "{")
            emit_writer_fields(out, o.fields, "o", o.name)
            out.add("}")
        out.add("")
    for m in modules:
        out.add(f"/* ======== module {m.name}: {c_comment(m.doc)} ======== */", "")
        for e in m.endpoints:
            emit_endpoint(out, e)
    checks = emit_checks(out, modules)
    # the table: one row per route, its columns aligned
    rows = []
    for m in modules:
        for e in m.endpoints:
            rows.append([c_str(e.method) + ",", c_str(e.path) + ",", c_str(e.name or e.func) + ",", c_str(m.name) + ",",
                         f"sizeof({e.func}_args),", f"sizeof({e.func}_result),", f"im_gen_bind_{e.func},",
                         f"im_gen_call_{e.func},", f"im_gen_write_{e.func},", f"IM_MODE_{e.mode.upper()},",
                         f"IM_RESPOND_{e.response.upper()},", f"{e.priority},", f"IM_EXTRA_{e.extra.upper()},",
                         f"{body_kind(e)},",
                         f"{e.max_concurrency}u,", f"{e.timeout_ms}u,", c_str(e.summary) + ",",
                         f"im_gen_args_{e.func},", (c_str(e.executor) if e.executor else "NULL") + ",",
                         ("1" if result_is_ndarray(e) else "0") + ",", f"{e.max_body_bytes}u,",
                         (checks[e.func] or "NULL") + ",", f"{e.status}"])
    # the argument definitions of each function (GET /functions/{name}), as JSON text
    for m in modules:
        for e in m.endpoints:
            text = json.dumps(args_definition(e, modules), separators=(",", ":"), ensure_ascii=False)
            data = text.encode("utf-8")
            out.add(f"static const char im_gen_args_{e.func}[] =")
            for i in range(0, len(data), 200):
                out.add("    " + c_bytes(data[i:i + 200]))
            out.add(";")
    out.add("")
    out.add("/* method, path, function, module, sizes, binder, call, writer, mode, answer, priority,",
            "   extra fields, body (1 JSON, 2 raw, 3 JSON or .npy), max concurrency, timeout (ms),",
            "   summary, the arguments' definitions (JSON), executor, an ndarray result, body limit,",
            "   the answer's check, its success status */",
            "static const im_endpoint im_gen_endpoints[] = {")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))] if rows else []
    for r in rows:
        out.add("    {" + " ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "},")
    if not rows:
        out.add('    {"GET", "/", "", "", 0, 0, NULL, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, "", "[]", NULL, 0, 0}, /* none */')
    out.add("};", "")
    # the modules: name, description, init, fini, serial, defaults.toml
    for m in modules:
        if m.defaults is not None:
            data = m.defaults.encode("utf-8")
            out.add(f"static const char im_gen_defaults_{m.name}[] =")
            for i in range(0, len(data), 200):
                out.add("    " + c_bytes(data[i:i + 200]))
            out.add(";")
    out.add("/* name, description, init, fini, serial, defaults (defaults.toml) */",
            "static const im_module_desc im_gen_modules[] = {")
    for m in modules:
        out.add(f"    {{{c_str(m.name)}, {c_str(m.doc)}, {m.init or 'NULL'}, {m.fini or 'NULL'}, "
                f"{1 if m.serial else 0}, {('im_gen_defaults_' + m.name) if m.defaults is not None else 'NULL'}}},")
    if not modules:
        out.add('    {"", "", NULL, NULL, 0, NULL}, /* none */')
    out.add("};", "")
    emit_openapi_builder(out, openapi_doc, modules)
    emit_pattern_tables(out, tables_at)  # before all that use them; #line directives follow
    n = sum(len(m.endpoints) for m in modules)
    if docs:
        emit_docs(out, service, docs)
    out.add(f"int im_register_{service}(im_server *s)", "{",
            f"    int rc = im_server_add_service(s, im_gen_modules, {len(modules)}, im_gen_endpoints, {n}, im_gen_openapi);")
    if docs:
        out.add(f"    if (rc == 0) rc = im_server_add_docs(s, im_gen_docs, {len(docs)});")
    out.add("    return rc;", "}")
    return name, out.text()


def emit_openapi_builder(out, doc, modules):
    """A function that writes the OpenAPI document with only the modules that are on: tags,
    operations and the schemas they use, each behind its module's flag."""
    index = {m.name: i for i, m in enumerate(modules)}

    def raw(value, indent):
        data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(data) <= 200:
            out.add(f"{indent}im_jw_raw(w, {c_bytes(data)}, {len(data)});")
            return
        out.add(f"{indent}{{", f"{indent}    static const char v[] =")
        for i in range(0, len(data), 200):
            out.add(f"{indent}        " + c_bytes(data[i:i + 200]))
        out.add(f"{indent}    ;", f"{indent}    im_jw_raw(w, v, sizeof v - 1);", f"{indent}}}")

    def cond(mods):
        return " || ".join(f"on[{index[m]}]" for m in sorted(mods, key=lambda x: index[x]))

    # which modules use each schema: those of the operations that point to it, transitively
    users = {}
    def refs(v, acc):
        if isinstance(v, dict):
            r = v.get("$ref")
            if isinstance(r, str) and r.startswith("#/components/schemas/"):
                acc.add(r.rsplit("/", 1)[1])
            for x in v.values():
                refs(x, acc)
        elif isinstance(v, list):
            for x in v:
                refs(x, acc)
    schemas = doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            mod = op["x-immersive"]["module"]
            todo, seen = set(), set()
            refs(op, todo)
            while todo:
                sname = todo.pop()
                if sname in seen:
                    continue
                seen.add(sname)
                users.setdefault(sname, set()).add(mod)
                refs(schemas.get(sname, {}), todo)
    out.add("static void im_gen_openapi(im_jw *w, const unsigned char *on)", "{", "    (void)on;",
            "    im_jw_obj(w);")
    for k in ("openapi", "info"):
        out.add(f"    im_jw_key(w, {c_str(k)});")
        raw(doc[k], "    ")
    out.add('    im_jw_key(w, "tags");', "    im_jw_arr(w);")
    for t in doc["tags"]:
        out.add(f"    if ({cond([t['name']])})")
        raw(t, "        ")
    out.add("    im_jw_arr_end(w);", '    im_jw_key(w, "paths");', "    im_jw_obj(w);")
    for path, ops in doc["paths"].items():
        mods = {op["x-immersive"]["module"] for op in ops.values()}
        out.add(f"    if ({cond(mods)}) {{", f"        im_jw_key(w, {c_str(path)});", "        im_jw_obj(w);")
        for method, op in ops.items():
            out.add(f"        if ({cond([op['x-immersive']['module']])}) {{",
                    f"            im_jw_key(w, {c_str(method)});")
            raw(op, "            ")
            out.add("        }")
        out.add("        im_jw_obj_end(w);", "    }")
    out.add("    im_jw_obj_end(w);", '    im_jw_key(w, "components");', "    im_jw_obj(w);",
            '    im_jw_key(w, "schemas");', "    im_jw_obj(w);")
    common = ("HTTPError", "ValidationError", "HTTPValidationError")
    for sname, schema in schemas.items():
        u = None if sname in common else users.get(sname)  # the errors' schemas are always there
        ind = "    "
        if u is not None:
            out.add(f"    if ({cond(u)}) {{")
            ind = "        "
        elif sname not in common:
            continue  # used by no operation
        out.add(f"{ind}im_jw_key(w, {c_str(sname)});")
        raw(schema, ind)
        if u is not None:
            out.add("    }")
    out.add("    im_jw_obj_end(w);", "    im_jw_obj_end(w);", "    im_jw_obj_end(w);", "}", "")


def c_bytes(bs):
    out = []
    for b in bs:
        if b in (34, 92):
            out.append("\\" + chr(b))
        elif 32 <= b < 127 and b != 63:
            out.append(chr(b))
        else:
            out.append("\\%03o" % b)
    return '"' + "".join(out) + '"'


def emit_fields_consts(out, fields, prefix):
    for f in fields:
        if f.values:
            out.add(f"static const char *const {prefix}_{f.name}_values[] = {{{', '.join(c_str(v) for v in f.values)}}};")
        out.add(field_init(f, f"{prefix}_{f.name}", f"{prefix}_{f.name}"))


def emit_endpoint(out, e):
    f_prefix = f"im_gen_f_{e.func}"
    out.add(f"/* ---- {e.func}: {e.method} {e.path} ---- */")
    emit_fields_consts(out, e.args, f_prefix)
    out.add(f"static int im_gen_bind_{e.func}(im_bind *b, void *vargs)", "{",
            f"    {e.func}_args *a = vargs;")
    params = [a for a in e.args if a.source in PARAM_SOURCES]
    body = e.body_args
    raw = [a for a in e.args if a.source == "raw"]
    if not params and not body and not raw:
        out.add("    (void)a;", "    (void)b;")
    for p in params:
        out.add(f"    if (im_bind_param(b, &{f_prefix}_{p.name}, &a->{p.name})) {{")
        if p.optional:
            out.add(f"        a->has_{p.name} = true;")
        out.add("    } else {")
        if p.required:
            out.add(f"        im_bind_missing(b, &{f_prefix}_{p.name});")
        elif p.default is not None:
            out.add(f"        a->{p.name} = {default_c(p)};")
        out.add("    }")
    if raw:
        r = raw[0]
        out.add(f"    if (im_bind_raw_f64(b, &{f_prefix}_{r.name}, &a->{r.name})) {{")
        if r.optional:
            out.add(f"        a->has_{r.name} = true;")
        out.add("    }")
        if r.required:
            out.add(f"    else im_bind_missing(b, NULL);")
    if body:
        required = [f for f in body if f.required]
        out.add("    if (!im_bind_has_body(b)) {")
        if required:
            out.add("        im_bind_missing(b, NULL); /* the whole body */")
        for f in body:
            if f.default is not None:
                out.add(f"        a->{f.name} = {default_c(f)};")
        out.add("        return 0;", "    }")
        if body[0].whole:
            out.add(f"    im_bind_body(b, &{f_prefix}_body, &a->body); /* the body is one value */",
                    "    return 0;", "}")
            return emit_endpoint_rest(out, e)
        nd = npy_arg(e)
        if nd:
            out.add(f"    if (im_bind_npy(b, &{f_prefix}_{nd.name}, &a->{nd.name})) {{ /* the body is the array */")
            if nd.optional:
                out.add(f"        a->has_{nd.name} = true;")
            out.add("        return 0;", "    }")
        out.add("    int rb = im_bind_obj_begin(b);", "    if (rb <= 0) return rb;")
        emit_binder_body(out, body, f_prefix, "a", e.extra)
    out.add("    return 0;", "}")
    emit_endpoint_rest(out, e)


def emit_endpoint_rest(out, e):
    """The call and the writer of an endpoint (after its binder)."""
    out.add(f"static int im_gen_call_{e.func}(im_call *call, const void *args, void *out)", "{",
            f"    return {e.func}(call, (const {e.func}_args *)args, ({e.func}_result *)out);", "}")
    out.add(f"static void im_gen_write_{e.func}(im_jw *w, const void *vout)", "{")
    if e.result is None:
        out.add("    (void)vout;", "    im_jw_null(w);")
    elif result_kind(e) == "fields":
        out.add(f"    const {e.func}_result *o = vout;")
        emit_writer_fields(out, e.result_fields, "o", f"{e.func}_result")
    elif result_kind(e) == "object":
        out.add(f"    im_gen_write_obj_{e.result.obj.name}(w, ({e.func}_result *)vout);")
    elif result_kind(e) == "array":
        out.add(f"    const {e.func}_result *o = vout;")
        emit_writer_value(out, e.result, "o->result", "    ")
    else:
        out.add(f"    const {e.func}_result *o = vout;", "    im_jw_obj(w);", '    im_jw_key(w, "result");')
        emit_writer_value(out, e.result, "o->result", "    ")
        out.add("    im_jw_obj_end(w);")
    out.add("}")
    out.add("")


def emit_docs(out, service, docs):
    """The files of /docs and /redoc as read-only data (.incbin: the assembler reads them, no
    multi-megabyte C literal to compile), and the table im_server_add_docs takes."""
    pkgs = sorted({d[7] for d in docs})
    out.add(f"/* /docs and /redoc: {', '.join(pkgs)}, with their licenses */")
    asm, decl, rows = [".pushsection .rodata"], [], []
    def sym(i, part):
        return f"im_gen_{service}_doc{i}{part}"
    def incbin(name, path, n):
        esc = path.replace("\\", "\\\\").replace('"', '\\"')
        asm.extend([f".globl {name}", f".hidden {name}", f".type {name}, @object", ".balign 16",
                    f"{name}:", f'.incbin "{esc}"', f".size {name}, {n}"])
        decl.append(f'extern const unsigned char {name}[] __attribute__((visibility("hidden")));')
    for i, (url, ctype, src, gz, n, gzn, etag, _) in enumerate(docs):
        incbin(sym(i, ""), src, n)
        if gz:
            incbin(sym(i, "_gz"), gz, gzn)
        rows.append(f"    {{{c_str(url)}, {c_str(ctype)}, {sym(i, '')}, {n}, "
                    f"{sym(i, '_gz') if gz else 'NULL'}, {gzn}, {c_str(etag)}}},")
    asm.append(".popsection")
    out.add("__asm__(")
    for line in asm:
        out.add(f"    {c_str(line + chr(10))}")
    out.add(");")
    out.add(*decl)
    out.add("static const im_static_file im_gen_docs[] = {", *rows, "};", "")
