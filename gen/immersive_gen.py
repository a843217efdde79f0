#!/usr/bin/env python3
"""immersive_gen.py — reads the annotations in module sources and emits, for one service:

  <module>.gen.h        per module: argument and result structs, enum constants, prototypes
  <service>.types.h     the service's types (IM_ENUM, IM_OBJECT), which any module may use
  <service>.routes.c    binders (request -> argument struct), result writers, the endpoint
                        table, the embedded OpenAPI 3.1 document, im_register_<service>()
  <service>.service.h   the prototype of im_register_<service>()
  <service>.openapi.json

usage: immersive_gen.py --service NAME --out DIR [--title T] [--version V] MODULE_DIR...

A module is a folder whose .c files hold the annotations (README shows a complete one):

  IM_MODULE(math, "Integer arithmetic")
  IM_OBJECT(point, "A point")                      then IM_FIELD(type, name, "doc", ...)
  IM_ENUM(color, "A color", "red", "green")        a C enum color: color_red, color_green
  IM_ENDPOINT(POST, "/v1/math/add", .summary = "Add two integers", .mode = IM_INLINE)
  IM_ARG(int64, x, "A value of X", .min = -1000, .max = 1000, .default = 0)
  IM_RESULT(int64, "The sum")                      or IM_RESULT(object, "...") + IM_FIELD lines
  int add(im_call *call, const add_args *in, add_result *out) { ... }

Everything it cannot honour is reported as `file:line:col: error: message` followed by a
`hint:` line, and nothing is written; what it accepts compiles. Standard library only; the
output depends on nothing but the input (same input, same bytes).
"""
import argparse
import gzip
import hashlib
import json
import math
import os
import re
import sys

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


class GenError(Exception):
    def __init__(self, where, msg, hint=None):
        super().__init__(msg)
        self.where, self.msg, self.hint = where, msg, hint

    def render(self):
        f, line, col = self.where
        out = f"{f}:{line}:{col}: error: {self.msg}"
        if self.hint:
            out += f"\n{f}:{line}:{col}: hint: {self.hint}"
        return out


# ---------------------------------------------------------------------------------------
# Reading C source: just enough lexing to find the annotations and the function after them.

TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<char>'(?:[^'\\\n]|\\.)*')
  | (?P<number>0[xX][0-9a-fA-F]+[uUlL]*|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?[uUlLfF]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<pp>\#(?:\\.|/\*.*?\*/|[^\n\\])*)
  | (?P<punct>\.\.\.|->|[][(){},;=.*&:+\-<>!~%^|/?])
""", re.S | re.X)


class Tok:
    __slots__ = ("kind", "text", "line", "col")

    def __init__(self, kind, text, line, col):
        self.kind, self.text, self.line, self.col = kind, text, line, col

    def __repr__(self):
        return f"{self.kind}:{self.text!r}@{self.line}:{self.col}"


PP_IF = re.compile(r"\#\s*(if|ifdef|ifndef|elif|else|endif)\b(.*)", re.S)


def pp_branch(stack, directive):
    """Follows #if/#else/#endif through a file: stack holds, per open #if, whether its branch
    is live. Only `#if 0` and `#if 1` are known; any other condition keeps every branch live
    (the generator cannot evaluate it, and a second definition is then reported)."""
    m = PP_IF.match(directive)
    if not m:
        return
    name = m.group(1)
    cond = re.sub(r"/\*.*?\*/|//.*", "", m.group(2).replace("\\\n", " ")).strip()
    if name in ("if", "ifdef", "ifndef"):
        known = {"0": 0, "1": 1}.get(cond) if name == "if" else None
        stack.append([known is None or known == 1, known])
    elif stack and name in ("elif", "else"):
        top = stack[-1]
        if top[1] is not None:  # after #if 0: the rest is live; after #if 1: none of it
            top[0], top[1] = top[1] == 0, 1
    elif stack and name == "endif":
        stack.pop()


def lex(path, text):
    """The tokens of a C file, without blanks, comments, preprocessor lines and what
    `#if 0` leaves out."""
    toks, pos, line, lstart = [], 0, 1, 0
    stack = []
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            raise GenError((path, line, pos - lstart + 1), f"cannot read {text[pos]!r} here",
                           "the generator reads C: is this a C source file?")
        kind = m.lastgroup
        s = m.group(kind)
        if kind == "pp":
            pp_branch(stack, s)
        elif kind not in ("ws", "comment") and all(b[0] for b in stack):
            toks.append(Tok(kind, s, line, pos - lstart + 1))
        nl = s.count("\n")
        if nl:
            line += nl
            lstart = pos + s.rfind("\n") + 1
        pos = m.end()
    return toks


def c_string_value(tok, path):
    """The value of a C string literal token (escapes decoded, UTF-8)."""
    body = tok.text[1:-1]
    out, i = bytearray(), 0
    simple = {"n": 10, "t": 9, "r": 13, "\\": 92, '"': 34, "'": 39, "a": 7, "b": 8,
              "f": 12, "v": 11, "?": 63}
    raw = body.encode("utf-8")
    while i < len(raw):
        c = raw[i]
        if c == 92 and i + 1 < len(raw):
            e = chr(raw[i + 1])
            if e in simple:
                out.append(simple[e])
                i += 2
                continue
            if e == "x":
                m = re.match(rb"[0-9a-fA-F]{1,2}", raw[i + 2:])
                if m:
                    out.append(int(m.group(0), 16))
                    i += 2 + len(m.group(0))
                    continue
            if e in "01234567":  # octal, up to three digits: "\012" is a newline
                m = re.match(rb"[0-7]{1,3}", raw[i + 1:])
                v = int(m.group(0), 8)
                if v > 255:
                    raise GenError((path, tok.line, tok.col), "octal escape above \\377",
                                   "an octal escape is one byte: \\0 to \\377")
                out.append(v)
                i += 1 + len(m.group(0))
                continue
            raise GenError((path, tok.line, tok.col), "unsupported escape in string literal",
                           "use plain text, \\n, \\t, \\\" or \\\\")
        out.append(c)
        i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise GenError((path, tok.line, tok.col), "string literal is not valid UTF-8",
                       "save the source file as UTF-8") from None


class Call:
    """One annotation: IM_X(arg, arg, .key = value, ...)."""

    def __init__(self, name, tok, args, kw, end_index):
        self.name, self.tok, self.args, self.kw, self.end = name, tok, args, kw, end_index


class Value:
    """An annotation argument: kind is ident, string, number, list or bool."""

    def __init__(self, kind, value, tok):
        self.kind, self.value, self.tok = kind, value, tok


def parse_value(path, toks, i, stop):
    """Parses one value from toks[i:stop]; returns (Value, next index)."""
    t = toks[i]
    if t.kind == "string":
        s = c_string_value(t, path)
        i += 1
        while i < stop and toks[i].kind == "string":  # "adjacent" "literals"
            s += c_string_value(toks[i], path)
            i += 1
        return Value("string", s, t), i
    if t.text == "{":
        items, i = [], i + 1
        while i < stop and toks[i].text != "}":
            v, i = parse_value(path, toks, i, stop)
            if i < stop and toks[i].text == ":":  # {404: "No such box"}: a key and its value
                w, i = parse_value(path, toks, i + 1, stop)
                v = Value("pair", (v, w), v.tok)
            items.append(v)
            if i < stop and toks[i].text == ",":
                i += 1
        if i >= stop:
            raise GenError((path, t.line, t.col), "unclosed '{'", "a {list} ends with '}'")
        return Value("list", items, t), i + 1
    sign = 1
    if t.text in ("-", "+"):
        sign = -1 if t.text == "-" else 1
        i += 1
        if i >= stop or toks[i].kind != "number":
            raise GenError((path, t.line, t.col), "a number must follow the sign", "write -5, not - or -x")
        t2 = toks[i]
    else:
        t2 = t
    if t2.kind == "number":
        txt = t2.text.rstrip("uUlLfF") if not t2.text.lower().startswith("0x") else t2.text.rstrip("uUlL")
        try:
            if txt.lower().startswith("0x"):
                v = int(txt, 16)
            elif re.fullmatch(r"[0-9]+", txt):
                v = int(txt, 10)
            else:
                v = float(txt)
                if v in (float("inf"), float("-inf")):
                    raise GenError((path, t2.line, t2.col), f"{t2.text} is too large for a double",
                                   "doubles go up to about 1.8e308")
        except ValueError:
            raise GenError((path, t2.line, t2.col), f"not a number: {t2.text}",
                           "write a decimal or 0x hexadecimal number") from None
        return Value("number", sign * v, t), i + 1
    if t.kind == "ident":
        if t.text in ("true", "false"):
            return Value("bool", t.text == "true", t), i + 1
        if i + 2 < stop + 1 and i + 2 <= len(toks) - 1 and toks[i + 1].text == "[" and toks[i + 2].text == "]":
            return Value("ident", t.text + "[]", t), i + 3  # an array type: T[]
        if i + 2 < stop + 1 and i + 2 <= len(toks) - 1 and toks[i + 1].text == "{" and toks[i + 2].text == "}":
            return Value("ident", t.text + "{}", t), i + 3  # a map type: T{}
        return Value("ident", t.text, t), i + 1
    raise GenError((path, t.line, t.col), f"unexpected {t.text!r} in an annotation",
                   "annotation arguments are names, \"strings\", numbers, {lists} or .key = value")


def parse_call(path, toks, i):
    """toks[i] is an annotation name, toks[i+1] '('. Returns a Call."""
    name_tok = toks[i]
    if i + 1 >= len(toks) or toks[i + 1].text != "(":
        raise GenError((path, name_tok.line, name_tok.col), f"{name_tok.text} needs '(' after it",
                       f"write {name_tok.text}(...) with its arguments")
    depth, j = 0, i + 1
    while j < len(toks):
        if toks[j].text in "({[":
            depth += 1
        elif toks[j].text in ")}]":
            depth -= 1
            if depth == 0:
                break
        j += 1
    if j >= len(toks):
        raise GenError((path, name_tok.line, name_tok.col), f"unclosed {name_tok.text}(",
                       "every '(' of an annotation needs its ')'")
    stop, k = j, i + 2
    args, kw = [], {}
    while k < stop:
        t = toks[k]
        if t.text == "." and k + 1 < stop and toks[k + 1].kind == "ident":
            key = toks[k + 1]
            if k + 2 >= stop or toks[k + 2].text != "=":
                raise GenError((path, key.line, key.col), f"'.{key.text}' needs '= value'",
                               f".{key.text} = ...")
            if key.text in kw:
                raise GenError((path, key.line, key.col), f"'.{key.text}' given twice", "keep one")
            v, k = parse_value(path, toks, k + 3, stop)
            v.key_tok = key
            kw[key.text] = v
        else:
            if kw:
                raise GenError((path, t.line, t.col), "positional argument after .key = value",
                               "put the type, name and description first")
            v, k = parse_value(path, toks, k, stop)
            args.append(v)
        if k < stop:
            if toks[k].text != ",":
                raise GenError((path, toks[k].line, toks[k].col),
                               f"expected ',' or ')' but found {toks[k].text!r}",
                               "arguments are separated by commas")
            k += 1
    return Call(name_tok.text, name_tok, args, kw, j + 1)


# ---------------------------------------------------------------------------------------
# .pattern: an ECMA-262 subset compiled to a DFA over UTF-8 bytes, so that no regex engine
# runs at request time. JSON Schema's pattern is unanchored: it may match anywhere in the
# string, unless ^ and $ pin it to the start and the end.

PATTERN_MAX_STATES = 2000   # DFA states a pattern may take (more: refused as too complex)
PATTERN_MAX_REPEAT = 100    # {m,n} bounds


class PatternError(Exception):
    def __init__(self, msg, hint):
        super().__init__(msg)
        self.hint = hint


ALL = (1 << 256) - 1
CONT = sum(1 << b for b in range(0x80, 0xC0))  # a UTF-8 continuation byte


def bmask(chars):
    m = 0
    for c in chars:
        m |= 1 << c
    return m


def ascii_class(pred):
    return bmask(c for c in range(128) if pred(chr(c)))


DIGIT = ascii_class(str.isdigit)
WORD = ascii_class(lambda c: c.isalnum() or c == "_")
SPACE = bmask(ord(c) for c in " \t\n\r\f\v")
ASCII = (1 << 128) - 1


class Nfa:
    """Thompson NFA over bytes: edges[s] = [(mask or None for epsilon, target)]."""

    def __init__(self):
        self.edges = []

    def state(self):
        self.edges.append([])
        return len(self.edges) - 1

    def edge(self, a, mask, b):
        self.edges[a].append((mask, b))


class PatternParser:
    """Parses the subset into fragments (start, end) of an Nfa."""

    def __init__(self, src):
        self.src, self.i, self.nfa = src, 0, Nfa()

    def fail(self, msg, hint="the subset: literals, escapes, [classes] and ranges, ., \\d \\w \\s, "
                             "* + ? {m,n}, (groups), |, ^ at the start and $ at the end"):
        raise PatternError(f"{msg} at offset {self.i} of the pattern", hint)

    def peek(self):
        return self.src[self.i] if self.i < len(self.src) else None

    def take(self):
        c = self.peek()
        self.i += 1
        return c

    def seq_of(self, masks):
        """A fragment matching bytes masks[0], masks[1]... in turn."""
        s = self.nfa.state()
        cur = s
        for m in masks:
            n = self.nfa.state()
            self.nfa.edge(cur, m, n)
            cur = n
        return s, cur

    def alt_of(self, frags):
        s, e = self.nfa.state(), self.nfa.state()
        for a, b in frags:
            self.nfa.edge(s, None, a)
            self.nfa.edge(b, None, e)
        return s, e

    def charset(self, ascii_mask, codepoints=(), any_multibyte=False):
        """A fragment matching one code point: an ASCII byte in the mask, one of the code
        points given (as their UTF-8 bytes), or with any_multibyte any non-ASCII code point."""
        frags = []
        if ascii_mask:
            frags.append(self.seq_of([ascii_mask]))
        for cp in codepoints:
            frags.append(self.seq_of([1 << b for b in chr(cp).encode("utf-8")]))
        if any_multibyte:
            frags.append(self.seq_of([bmask(range(0xC2, 0xE0)), CONT]))
            frags.append(self.seq_of([bmask(range(0xE0, 0xF0)), CONT, CONT]))
            frags.append(self.seq_of([bmask(range(0xF0, 0xF5)), CONT, CONT, CONT]))
        if not frags:  # [^\s\S]: nothing matches
            s, e = self.nfa.state(), self.nfa.state()
            return s, e
        return frags[0] if len(frags) == 1 else self.alt_of(frags)

    def parse(self):
        anchored_start = self.peek() == "^"
        if anchored_start:
            self.i += 1
        frag = self.alternation()
        anchored_end = False
        if self.peek() == "$":
            self.i += 1
            anchored_end = True
        if self.i != len(self.src):
            if self.peek() == ")":
                self.fail("an unmatched ')'", "each ')' closes a '('")
            self.fail(f"'{self.peek()}' here is outside the subset",
                      "^ only at the start and $ only at the end of the whole pattern: ^(a|b)$")
        return frag, anchored_start, anchored_end

    def alternation(self):
        frags = [self.sequence()]
        while self.peek() == "|":
            self.i += 1
            frags.append(self.sequence())
        return frags[0] if len(frags) == 1 else self.alt_of(frags)

    def sequence(self):
        s = self.nfa.state()
        cur = s
        while self.peek() is not None and self.peek() not in "|)" and not (self.peek() == "$" and self.i == len(self.src) - 1):
            a, b = self.repeat()
            self.nfa.edge(cur, None, a)
            cur = b
        return s, cur

    def repeat(self):
        start = self.i
        atom_at = self.i
        atom = self.atom()
        atom_src = self.src[atom_at:self.i]
        c = self.peek()
        if c in ("*", "+", "?", "{"):
            if c == "{":
                m = re.match(r"\{(\d+)(,(\d*))?\}", self.src[self.i:])
                if not m:
                    self.fail("a '{' that is not {m}, {m,} or {m,n}", "escape it: \\{")
                self.i += m.end()
                lo = int(m.group(1))
                hi = lo if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
                if lo > PATTERN_MAX_REPEAT or (hi is not None and (hi > PATTERN_MAX_REPEAT or hi < lo)):
                    self.fail(f"a repeat {m.group(0)} outside 0..{PATTERN_MAX_REPEAT} (or max below min)",
                              "use smaller counts, or .min_length/.max_length for the length")
            else:
                self.i += 1
                lo, hi = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
            if self.peek() == "?":  # lazy: the same language
                self.i += 1
            if self.peek() in ("*", "+", "?", "{"):
                self.fail("a quantifier after a quantifier", "group it: (a*)*")
            return self.repeat_of(atom, atom_src, lo, hi)
        return atom

    def copy(self, src):
        """A fresh fragment for the atom's source text (each repetition needs its own states)."""
        sub = PatternParser(src)
        sub.nfa = self.nfa
        f = sub.repeat()
        return f

    def repeat_of(self, atom, atom_src, lo, hi):
        parts = [atom] + [self.copy(atom_src) for _ in range(max(lo, 1 if hi is None else hi) - 1)]
        s = self.nfa.state()
        cur = s
        for k in range(lo):
            self.nfa.edge(cur, None, parts[k][0])
            cur = parts[k][1]
        end = self.nfa.state()
        if hi is None:  # the last copy loops
            loop = parts[lo - 1] if lo else parts[0]
            if lo:
                self.nfa.edge(loop[1], None, loop[0])
            else:
                self.nfa.edge(cur, None, loop[0])
                self.nfa.edge(loop[1], None, loop[0])
                self.nfa.edge(loop[1], None, end)
            self.nfa.edge(cur, None, end)
            return s, end
        self.nfa.edge(cur, None, end)
        for k in range(lo, hi):
            self.nfa.edge(cur, None, parts[k][0])
            cur = parts[k][1]
            self.nfa.edge(cur, None, end)
        return s, end

    def atom(self):
        c = self.take()
        if c == "(":
            if self.src.startswith("?:", self.i):
                self.i += 2
            elif self.peek() == "?":
                self.fail("lookarounds and named groups are outside the subset", "use (...) or (?:...)")
            f = self.alternation()
            if self.take() != ")":
                self.i -= 1
                self.fail("an unclosed '('", "close it with ')'")
            return f
        if c == "[":
            return self.klass()
        if c == ".":  # any code point but line terminators
            return self.charset(ASCII & ~bmask((10, 13)), any_multibyte=True)
        if c == "\\":
            return self.escape(in_class=False)
        if c in "*+?{":
            self.i -= 1
            self.fail(f"nothing to repeat before '{c}'", "escape it: \\" + c)
        if c in "^$":
            self.i -= 1
            self.fail(f"'{c}' here is outside the subset", "^ only at the start and $ only at the end of the whole pattern")
        cp = ord(c)
        return self.charset(1 << cp) if cp < 128 else self.charset(0, (cp,))

    ESCAPES = {"n": 10, "t": 9, "r": 13, "f": 12, "v": 11, "0": 0}

    def escape_value(self, in_class):
        """The escape after a backslash: ("set", mask, negated) or ("char", code point)."""
        c = self.take()
        if c is None:
            self.fail("a pattern ending in a backslash", "escape it: \\\\")
        if c in "dwsDWS":
            m = {"d": DIGIT, "w": WORD, "s": SPACE}[c.lower()]
            return ("set", m, c.isupper())
        if c in self.ESCAPES:
            return ("char", self.ESCAPES[c])
        if c in "xu":
            n = 2 if c == "x" else 4
            h = self.src[self.i:self.i + n]
            if not re.fullmatch(r"[0-9A-Fa-f]{%d}" % n, h):
                self.fail(f"\\{c} wants {n} hexadecimal digits", f"\\{c}{'0' * n}")
            self.i += n
            cp = int(h, 16)
            if 0xD800 <= cp < 0xE000:
                self.fail("a surrogate escape", "write the character itself")
            return ("char", cp)
        if c == "b" and in_class:
            return ("char", 8)
        if c.isalnum():
            self.fail(f"\\{c} is outside the subset", "escapes: \\d \\w \\s (and \\D \\W \\S), \\n \\t \\r \\f \\v \\0, "
                      "\\xHH, \\uHHHH, and \\ before a punctuation character")
        return ("char", ord(c))

    def escape(self, in_class):
        v = self.escape_value(in_class)
        if v[0] == "set":
            _, m, neg = v
            return self.charset(ASCII & ~m, any_multibyte=True) if neg else self.charset(m)
        cp = v[1]
        return self.charset(1 << cp) if cp < 128 else self.charset(0, (cp,))

    def klass(self):
        neg = self.peek() == "^"
        if neg:
            self.i += 1
        mask, cps, multi, first = 0, [], False, True
        while True:
            c = self.peek()
            if c is None:
                self.fail("an unclosed '['", "close it with ']'")
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            lo = self.class_atom()
            if lo[0] == "set":
                _, m, n = lo
                if n:
                    mask |= ASCII & ~m
                    multi = True
                else:
                    mask |= m
                continue
            a = lo[1]
            if self.peek() == "-" and self.i + 1 < len(self.src) and self.src[self.i + 1] != "]":
                self.i += 1
                hi = self.class_atom()
                if hi[0] == "set":
                    self.fail("a range to a class escape", "write the range's ends as characters")
                b = hi[1]
                if b < a:
                    self.fail("a range whose end is below its start", "write [a-z], not [z-a]")
                if b >= 128:
                    if a < 128 or b - a > 255:
                        self.fail("a range past ASCII (beyond 256 characters, or from ASCII)",
                                  "list the characters, or split the range at U+007F")
                    cps.extend(range(a, b + 1))
                else:
                    mask |= bmask(range(a, b + 1))
            elif a < 128:
                mask |= 1 << a
            else:
                cps.append(a)
        if neg:
            if cps:
                self.fail("a negated class holding characters past ASCII", "negate ASCII characters only")
            return self.charset(ASCII & ~mask, any_multibyte=not multi)
        return self.charset(mask, sorted(set(cps)), multi)

    def class_atom(self):
        c = self.take()
        if c == "\\":
            return self.escape_value(in_class=True)
        return ("char", ord(c))


def compile_pattern(src):
    """(byte classes [256], transition table [states][classes], accepting [states], sticky):
    state 0 starts; -1 is dead. Sticky: accept as soon as an accepting state is reached (no $)."""
    p = PatternParser(src)
    (start, end), anchored_start, anchored_end = p.parse()
    nfa = p.nfa
    if not anchored_start:  # a match may begin anywhere: the start loops on any byte
        s = nfa.state()
        nfa.edge(s, ALL, s)
        nfa.edge(s, None, start)
        start = s
    masks = sorted({m for es in nfa.edges for m, _ in es if m is not None})
    sig = {}
    cls = [0] * 256
    for b in range(256):
        key = tuple((m >> b) & 1 for m in masks)
        cls[b] = sig.setdefault(key, len(sig))
    reps = [0] * len(sig)
    for b in range(255, -1, -1):
        reps[cls[b]] = b

    def closure(states):
        todo, seen = list(states), set(states)
        while todo:
            s = todo.pop()
            for m, t in nfa.edges[s]:
                if m is None and t not in seen:
                    seen.add(t)
                    todo.append(t)
        return frozenset(seen)

    first = closure([start])
    index, order, table = {first: 0}, [first], []
    k = 0
    while k < len(order):
        cur = order[k]
        row = []
        for c, b in enumerate(reps):
            nxt = closure([t for s in cur for m, t in nfa.edges[s] if m is not None and (m >> b) & 1])
            if not nxt:
                row.append(-1)
                continue
            if nxt not in index:
                if len(order) >= PATTERN_MAX_STATES:
                    raise PatternError(f"the pattern needs more than {PATTERN_MAX_STATES} states",
                                       "simplify it: fewer counted repeats and alternatives")
                index[nxt] = len(order)
                order.append(nxt)
            row.append(index[nxt])
        table.append(row)
        k += 1
    accept = [end in st for st in order]
    return cls, table, accept, not anchored_end


def pattern_search(compiled, s):
    """The generated C's match, in Python (for defaults and examples)."""
    cls, table, accept, sticky = compiled
    st = 0
    for b in s.encode("utf-8"):
        if sticky and accept[st]:
            return True
        st = table[st][cls[b]]
        if st < 0:
            return False
    return accept[st]


# ---------------------------------------------------------------------------------------
# The model

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


# ---------------------------------------------------------------------------------------
# Checks across the service

# The names the generated code declares inside its functions (parameters and locals), which a
# type or a function of the service's would be hidden by; and the names the one header the
# generated files include (immersive.h: stdbool, stddef, stdint) defines besides *_t and im_*.
GEN_LOCALS = set("""a ap args at b call cap dst err fmt i k len n o on out r rb rc s seen sub v
vargs vout w x""".split()) | {f"i{d}" for d in range(16)}
# Functions gcc and clang know as builtins (C99 and GNU libc): a function of the service with
# one of these names is refused by the compilers whatever it includes (read off gcc 12 and
# clang 14 declaring each with another type), and main.
LIBC_BUILTINS = set("""abort abs acos acosf acosh acoshf acoshl acosl aligned_alloc alloca asin asinf asinh asinhf
asinhl asinl atan atan2 atan2f atan2l atanf atanh atanhf atanhl atanl bcmp bzero cabs cabsf
cabsl cacos cacosf cacosh cacoshf cacoshl cacosl calloc carg cargf cargl casin casinf casinh
casinhf casinhl casinl catan catanf catanh catanhf catanhl catanl cbrt cbrtf cbrtl ccos ccosf
ccosh ccoshf ccoshl ccosl ceil ceilf ceill cexp cexpf cexpl cimag cimagf cimagl clog clogf
clogl conj conjf conjl copysign copysignf copysignl cos cosf cosh coshf coshl cosl cpow cpowf
cpowl cproj cprojf cprojl creal crealf creall csin csinf csinh csinhf csinhl csinl csqrt csqrtf
csqrtl ctan ctanf ctanh ctanhf ctanhl ctanl dcgettext dgettext drem dremf dreml erf erfc erfcf
erfcl erff erfl exit exp exp10 exp10f exp10l exp2 exp2f exp2l expf expl expm1 expm1f expm1l
fabs fabsf fabsl fdim fdimf fdiml feclearexcept fegetround fesetround ffs ffsl ffsll floor
floorf floorl fma fmaf fmal fmax fmaxf fmaxl fmin fminf fminl fmod fmodf fmodl fprintf
fprintf_unlocked fputc fputc_unlocked fputs fputs_unlocked free frexp frexpf frexpl fscanf
fwrite fwrite_unlocked gamma gamma_r gammaf gammaf_r gammal gammal_r gettext hypot hypotf
hypotl ilogb ilogbf ilogbl imaxabs index isalnum isalpha isascii isblank iscntrl isdigit
isgraph islower isprint ispunct isspace isupper iswalnum iswalpha iswblank iswcntrl iswdigit
iswgraph iswlower iswprint iswpunct iswspace iswupper iswxdigit isxdigit j0 j0f j0l j1 j1f j1l
jn jnf jnl labs ldexp ldexpf ldexpl lgamma lgamma_r lgammaf lgammaf_r lgammal lgammal_r llabs
llrint llrintf llrintl llround llroundf llroundl log log10 log10f log10l log1p log1pf log1pl
log2 log2f log2l logb logbf logbl logf logl lrint lrintf lrintl lround lroundf lroundl main
malloc memccpy memchr memcmp memcpy memmove mempcpy memset modf modff modfl nan nanf nanl
nearbyint nearbyintf nearbyintl nextafter nextafterf nextafterl nexttoward nexttowardf
nexttowardl posix_memalign pow pow10 pow10f pow10l powf powl printf printf_unlocked putchar
puts realloc remainder remainderf remainderl remquo remquof remquol rindex rint rintf rintl
round roundf roundl scalb scalbf scalbl scalbln scalblnf scalblnl scalbn scalbnf scalbnl scanf
signbitd32 signbitf signbitl significand significandf significandl sin sincos sincosf sincosl
sinf sinh sinhf sinhl sinl snprintf sprintf sqrt sqrtf sqrtl sscanf stpcpy stpncpy strcasecmp
strcat strchr strcmp strcpy strcspn strdup strerror strfmon strftime strlen strncasecmp strncat
strncmp strncpy strndup strnlen strpbrk strrchr strspn strstr strtod strtol strtoul tan tanf
tanh tanhf tanhl tanl tgamma tgammaf tgammal toascii tolower toupper towlower towupper trunc
truncf truncl vfprintf vfscanf vprintf vscanf vsnprintf vsprintf vsscanf y0 y0f y0l y1 y1f y1l
yn ynf ynl""".split())
BUILTIN_SCHEMAS = {"HTTPError", "ValidationError", "HTTPValidationError", "NDArray", "TaskAccepted"}
STD_NAMES = {"NULL", "offsetof", "bool", "true", "false", "__bool_true_false_are_defined"}
STD_MACRO = re.compile(r"U?INT(8|16|32|64|PTR|MAX|_LEAST\d+|_FAST\d+)_(MIN|MAX|C)|U?INTMAX_C|"
                       r"SIZE_MAX|PTRDIFF_(MIN|MAX)|SIG_ATOMIC_(MIN|MAX)|WCHAR_(MIN|MAX)|WINT_(MIN|MAX)")


def check_names(modules):
    """Every C name the generated files declare at file scope, once in the whole service (the
    routes of all modules are one file); a type or function no generated local hides; none
    that C or the included header has."""
    seen = {}

    def claim(name, where, what):
        if name in C_KEYWORDS or name in STD_NAMES or STD_MACRO.fullmatch(name):
            raise GenError(where, f"{what} '{name}' is a name C or <stdint.h>/<stddef.h> has",
                           "choose another name")
        if name in seen:
            o_where, o_what = seen[name]
            raise GenError(where, f"{what} '{name}' is also the C name of {o_what} "
                                  f"(at {o_where[0]}:{o_where[1]})",
                           "rename one of them: the generated C declares both at file scope")
        seen[name] = (where, what)

    def local_clash(name, where, what, names=GEN_LOCALS):
        if name in names:
            raise GenError(where, f"{what} '{name}' is a name the generated code uses inside its "
                                  "functions", "choose a longer name: " + ", ".join(sorted(
                                      x for x in names if not x[1:].isdigit())) + " are taken")

    def enums(f, prefix, where):
        if f.type.base == "enum" and f.type.enum is None:
            for v in f.values:
                claim(f"{prefix}_{re.sub(r'[^A-Za-z0-9_]', '_', v)}", where,
                      f"the enum constant of value '{v}' of '{f.name}'")

    for m in modules:
        for d in m.enums.values():
            if d.name in BUILTIN_SCHEMAS:
                raise GenError(d.where, f"enum '{d.name}' is named like a schema the document has "
                                        "already", f"rename it: {', '.join(sorted(BUILTIN_SCHEMAS))} "
                                        "are the generator's")
            local_clash(d.name, d.where, "enum")
            claim(d.name, d.where, f"enum '{d.name}'")
            for v in d.values:
                claim(f"{d.name}_{re.sub(r'[^A-Za-z0-9_]', '_', v)}", d.where,
                      f"the constant of value '{v}' of enum '{d.name}'")
        for o in m.objects.values():
            if o.name in BUILTIN_SCHEMAS:
                raise GenError(o.where, f"object '{o.name}' is named like a schema the document has "
                                        "already", f"rename it: {', '.join(sorted(BUILTIN_SCHEMAS))} "
                                        "are the generator's")
            local_clash(o.name, o.where, "object")
            claim(o.name, o.where, f"object '{o.name}'")
            claim(o.name + "_list", o.where, f"the list type of object '{o.name}'")
            claim(o.name + "_map", o.where, f"the map type of object '{o.name}'")
            for f in o.fields:
                enums(f, f"{o.name}_{f.name}", f.where)
        for k in ("init", "fini"):
            fn_name = getattr(m, k)
            if fn_name:
                claim(fn_name, m.where, f"the .{k} function of module '{m.name}'")
        for e in m.endpoints:
            local_clash(e.func, e.func_where, "function", {"call", "args", "out"})  # im_gen_call_'s
            if e.func in LIBC_BUILTINS:
                raise GenError(e.func_where, f"function '{e.func}' has the name of a C library function "
                                             "the compilers know", f"call it {m.name}_{e.func}, or set "
                                             f".name = \"{e.func}\" to keep that name in the API")
            claim(e.func, e.func_where, f"function '{e.func}'")
            claim(e.func + "_args", e.func_where, f"the argument struct of '{e.func}'")
            claim(e.func + "_result", e.func_where, f"the result struct of '{e.func}'")
            for a in e.args:
                enums(a, f"{e.func}_{a.name}", a.where)
            for f in e.result_fields:
                enums(f, f"{e.func}_result_{f.name}", f.where)


def check_members(fields, what):
    """Members of one struct (an object's, a result's, or the body arguments'): names, the keys
    on the wire, and the x_is_null a nullable x adds, each once."""
    names, keys = {}, {}
    for f in fields:
        if f.name in names:
            raise GenError(f.where, f"{what} '{f.name}' is declared twice", "each field has its own name")
        names[f.name] = f
        if f.key in keys:
            raise GenError(f.where, f"{what}s '{keys[f.key].name}' and '{f.name}' are both '{f.key}' on the wire",
                           "give one another .alias")
        keys[f.key] = f
    for f in fields:
        if f.nullable and f.name + "_is_null" in names:
            raise GenError(names[f.name + "_is_null"].where,
                           f"'{f.name}_is_null' is the member nullable '{f.name}' adds", "rename it")


def check_service(modules):
    routes, funcs, public = {}, {}, {}
    for m in modules:
        for e in m.endpoints:
            key = (e.method, re.sub(r"\{[^}]*\}", "{}", e.path))
            if key in routes:
                o = routes[key]
                raise GenError(e.where, f"duplicate route {e.method} {e.path} (also at {o.where[0]}:{o.where[1]})",
                               "each method and path pair belongs to one endpoint")
            routes[key] = e
            if key == ("GET", "/openapi.json"):
                raise GenError(e.where, "GET /openapi.json is served by immersive itself",
                               "choose another path")
            if e.status == 204 and e.result is not None:
                raise GenError(e.where, f"{e.method} {e.path} answers 204 (No Content) but has an IM_RESULT",
                               "drop the IM_RESULT, or answer another status")
            check_members(e.result_fields, "result field")
            if e.func in funcs:
                o = funcs[e.func]
                raise GenError(e.func_where, f"function '{e.func}' serves two endpoints (also at {o.where[0]}:{o.where[1]})",
                               "each endpoint has a function of its own")
            funcs[e.func] = e
            if e.name is None:
                e.name = e.func
            if e.name in public:
                o = public[e.name]
                raise GenError(e.where, f"two functions are named '{e.name}' (also at {o.where[0]}:{o.where[1]})",
                               "a function's .name (by default its C name) is unique in the service")
            public[e.name] = e
            names, keys = {}, {}
            for a in e.args:
                if a.name in names:
                    raise GenError(a.where, f"argument '{a.name}' is declared twice",
                                   "each argument of an endpoint has its own name")
                names[a.name] = a
                k = (a.source if a.source in PARAM_SOURCES else "body",
                     a.key.lower() if a.source == "header" else a.key)
                if k in keys:
                    raise GenError(a.where, f"arguments '{keys[k].name}' and '{a.name}' are both "
                                   f"'{a.key}' in the {k[0]}", "give one another .alias")
                keys[k] = a
            for a in e.args:
                if a.nullable and a.name + "_is_null" in names:
                    b = names[a.name + "_is_null"]
                    raise GenError(b.where, f"'{b.name}' is the member nullable '{a.name}' adds", "rename it")
            for p in e.params:
                if ("path", p) not in keys:
                    raise GenError(e.where, f"path parameter {{{p}}} has no IM_ARG",
                                   f"declare it: IM_ARG(int64, {p}, \"...\") (or string)" if ident_ok(p) else
                                   f"declare it: IM_ARG(int64, {p.replace('-', '_').replace('.', '_')}, \"...\", .alias = \"{p}\")")
            whole = [a for a in e.args if a.whole]
            if whole and len(e.body_args) > 1:
                other = next(a for a in e.body_args if not a.whole)
                raise GenError(other.where, f"'{other.name}' is a key of the body, but IM_BODY makes the "
                               "body one value", "put it in the IM_BODY's object, or take it from the "
                               "query (.in = query)")
            raws = [a for a in e.args if a.source == "raw"]
            if raws and (len(raws) > 1 or e.body_args):
                raise GenError(raws[0].where, "a raw body argument must be the only body argument",
                               "move the others to the query: .in = query")
            if len(e.body_args) > 64:
                raise GenError(e.where, "more than 64 body arguments",
                               "group them in objects (IM_OBJECT)")
            for name in (e.func + "_args", e.func + "_result"):
                if name in funcs or any(name in mm.objects for mm in modules):
                    raise GenError(e.func_where, f"'{name}' is already a name in this service",
                                   "rename the function or the object")
        for o in m.objects.values():
            if len(o.fields) > 64:
                raise GenError(o.where, f"object '{o.name}' has more than 64 fields",
                               "split it into objects that hold objects")
            check_members(o.fields, "field")
            for f in o.fields:
                if f.source != "body":
                    raise GenError(f.where, "object fields come from the body", "drop .in")


# ---------------------------------------------------------------------------------------
# Emitting C

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


def objects_in_order(modules):
    """Every object of the service, each after those it holds by value (C wants a member's
    struct complete); a cycle of objects holding each other by value is refused."""
    done, order, busy = set(), [], []
    def visit(o):
        if o.name in done:
            return
        if o in busy:
            cycle = busy[busy.index(o):] + [o]
            raise GenError(o.where, "objects hold each other by value: " + " -> ".join(x.name for x in cycle),
                           "make one of the fields an array (T[]): arrays hold their items by pointer")
        busy.append(o)
        for f in o.fields:
            if f.type.base == "object" and not f.type.many:
                visit(f.type.obj)
        busy.pop()
        done.add(o.name)
        order.append(o)
    for m in modules:
        for o in m.objects.values():
            visit(o)
    return order


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

    def on(i, f):
        bind = f"im_bind_field(b, &{prefix}_{f.name}, &{target}->{f.name});"
        if f.nullable:
            bind = f"if (im_bind_null(b)) {target}->{f.name}_is_null = true; else {bind}"
        return [f"seen |= {one} << {i};", bind] + \
               ([f"{target}->has_{f.name} = true;"] if f.optional or f.nullable else [])

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
    if t.map:
        if f is not None and f.min_items is not None:
            fail(f"{expr}.len < {f.min_items}u", f"%zu keys, fewer than {f.min_items}", f"{expr}.len")
        if f is not None and f.max_items is not None:
            fail(f"{expr}.len > {f.max_items}u", f"%zu keys, more than {f.max_items}", f"{expr}.len")
        i = f"i{depth}"
        out.add(f"{ind}for (size_t {i} = 0; {i} < {expr}.len; {i}++) {{")
        emit_check_value(out, TypeRef(t.base, obj=t.obj, enum=t.enum), f, f"{expr}.values[{i}]",
                         (fmt + "[%zu]", args + ", " + i), ind + "    ", depth + 1, uses)
        out.add(f"{ind}}}")
        return
    if t.array:
        if f is not None and f.min_items is not None:
            fail(f"{expr}.len < {f.min_items}u", f"%zu items, fewer than {f.min_items}", f"{expr}.len")
        if f is not None and f.max_items is not None:
            fail(f"{expr}.len > {f.max_items}u", f"%zu items, more than {f.max_items}", f"{expr}.len")
        i = f"i{depth}"
        out.add(f"{ind}for (size_t {i} = 0; {i} < {expr}.len; {i}++) {{")
        emit_check_value(out, TypeRef(t.base, obj=t.obj, enum=t.enum), f, f"{expr}.ptr[{i}]", (fmt + "[%zu]", args + ", " + i),
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


DOC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# What the pages would fetch from the internet, replaced in the served copy (the repository's
# stays as published): ReDoc's sidebar logo comes from its CDN, whatever its options say. Its
# "API docs by Redocly" link stays; the image becomes an empty one.
DOC_OFFLINE = {"redoc.standalone.js": [(b"https://cdn.redoc.ly/redoc/logo-mini.svg",
                                        b"data:image/svg+xml,%3Csvg xmlns=%27http://www.w3.org/2000/svg%27/%3E")]}


def docs_files(docs_dir, outdir):
    """The files /docs (Swagger UI) and /redoc (ReDoc) serve, from docs_dir: this repository's
    third_party/docs or a node_modules folder (swagger-ui-dist/ and redoc/, with its bundles/):
    [(url, content type, source path, gzip path or None, length, gzip length, etag, package)].
    The gzip copies are written into outdir/docs (mtime 0: the same bytes every build)."""
    def where(*cands):
        for c in cands:
            if os.path.isfile(c):
                return os.path.abspath(c)
        return None
    sw = os.path.join(docs_dir, "swagger-ui-dist")
    rd = os.path.join(docs_dir, "redoc")
    wanted = [("/docs", sw, "swagger-ui-bundle.js", ""), ("/docs", sw, "swagger-ui.css", ""),
              ("/redoc", rd, "redoc.standalone.js", "bundles")]
    optional = [("/docs", sw, "swagger-ui-bundle.js.LICENSE.txt", ""), ("/docs", sw, "LICENSE", ""),
                ("/docs", sw, "NOTICE", ""), ("/redoc", rd, "redoc.standalone.js.LICENSE.txt", "bundles"),
                ("/redoc", rd, "LICENSE", "")]
    files = []
    os.makedirs(os.path.join(outdir, "docs"), exist_ok=True)
    for i, (base, folder, name, alt) in enumerate(wanted + optional):
        src = where(os.path.join(folder, name), os.path.join(folder, alt, name))
        if src is None:
            if i < len(wanted):
                raise GenError((docs_dir, 1, 1), f"no {name} in {folder} (or {folder}/{alt})",
                               "give --docs this repository's third_party/docs, or a node_modules "
                               "folder with swagger-ui-dist and redoc installed")
            continue
        with open(src, "rb") as f:
            data = f.read()
        patched = False
        for old, new in DOC_OFFLINE.get(name, []):
            patched |= old in data
            data = data.replace(old, new)
        if patched:  # served from the patched copy
            src = os.path.join(os.path.abspath(outdir), "docs", name)
            try:
                with open(src, "rb") as f:
                    same = f.read() == data
            except OSError:
                same = False
            if not same:
                with open(src, "wb") as f:
                    f.write(data)
        try:
            with open(os.path.join(folder, "package.json"), encoding="utf-8") as f:
                pkg = json.load(f)
            package = f"{pkg['name']} {pkg['version']}"
        except (OSError, ValueError, KeyError):
            package = os.path.basename(folder)
        ext = os.path.splitext(name)[1]
        ctype = DOC_TYPES.get(ext, "text/plain; charset=utf-8")
        gz_path, gz_len = None, 0
        if ext in DOC_TYPES:
            packed = gzip.compress(data, compresslevel=9, mtime=0)
            gz_path = os.path.join(os.path.abspath(outdir), "docs", name + ".gz")
            try:
                with open(gz_path, "rb") as f:
                    same = f.read() == packed
            except OSError:
                same = False
            if not same:  # untouched when unchanged: nothing rebuilds needlessly
                with open(gz_path, "wb") as f:
                    f.write(packed)
            gz_len = len(packed)
        etag = '"' + hashlib.sha256(data).hexdigest()[:24] + '"'
        files.append((f"{base}/{name}", ctype, src, gz_path, len(data), gz_len, etag, package))
    return files


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


# ---------------------------------------------------------------------------------------
# OpenAPI 3.1

NUM_SCHEMA = {"int32": {"type": "integer", "format": "int32"}, "int64": {"type": "integer", "format": "int64"},
              "uint32": {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 2**32 - 1},
              "uint64": {"type": "integer", "format": "uint64", "minimum": 0, "maximum": 2**64 - 1},
              "double": {"type": "number", "format": "double"},
              "float": {"type": "number", "format": "float", "minimum": -FLT_MAX, "maximum": FLT_MAX}}


def schema_of(t, f=None, modules=None):
    """The JSON Schema of a value of type t, with f's constraints (from the model: the binder
    reads the same ones)."""
    if t.map:
        s = {"type": "object", "additionalProperties": schema_of(TypeRef(t.base, obj=t.obj, enum=t.enum), f)}
        if f is not None:
            if f.min_items is not None:
                s["minProperties"] = f.min_items
            if f.max_items is not None:
                s["maxProperties"] = f.max_items
        return s
    if t.array:
        s = {"type": "array", "items": schema_of(TypeRef(t.base, obj=t.obj, enum=t.enum), f)}
        if f is not None:
            if f.min_items is not None:
                s["minItems"] = f.min_items
            if f.max_items is not None:
                s["maxItems"] = f.max_items
        return s
    b = t.base
    if b == "object":
        return {"$ref": f"#/components/schemas/{t.obj.name}"}
    if t.enum is not None:
        return {"$ref": f"#/components/schemas/{t.enum.name}"}
    if b == "ndarray":
        return nd_schema(f)
    s = dict(NUM_SCHEMA.get(b) or {"bool": {"type": "boolean"}, "string": {"type": "string"},
                                    "enum": {"type": "string"}, "json": {}}[b])
    if f is not None:
        if b == "enum":
            s["enum"] = list(f.values)
        if f.lo:  # the declared bound replaces the type's own
            s.pop("minimum", None)
            s["exclusiveMinimum" if f.lo[1] else "minimum"] = f.lo[0]
        if f.hi:
            s.pop("maximum", None)
            s["exclusiveMaximum" if f.hi[1] else "maximum"] = f.hi[0]
        if f.multiple_of is not None:
            s["multipleOf"] = f.multiple_of
        if f.format:
            s["format"] = f.format
        if f.pattern:
            s["pattern"] = f.pattern[0]
        if f.min_len is not None:
            s["minLength"] = f.min_len
        if f.max_len is not None:
            s["maxLength"] = f.max_len
    return s


NPY_SCHEMA = {"type": "string", "contentMediaType": "application/x-npy",
              "description": "numpy's .npy format, as np.save writes it (versions 1.0 to 3.0, "
                             "little-endian, C order)"}
ND_COMPONENT = {"title": "NDArray", "description": "An n-dimensional array as JSON: a number (0 "
                "dimensions), or a list of NDArrays of one shape (rectangular)",
                "anyOf": [{"type": "number"}, {"type": "array", "items": {"$ref": "#/components/schemas/NDArray"}}]}


def nd_schema(f):
    """Nested arrays as deep as .ndim says (sizes from .shape), else the recursive NDArray;
    x-immersive-ndarray tells the dtypes, ndim and shape a client may send."""
    dt = f.dtypes if f is not None else []  # a result's array: any
    ndim = f.ndim if f is not None else None
    shape = f.shape if f is not None else None
    ints = dt and all(d in ("i64", "i32", "u8") for d in dt)
    if ndim is None:
        s = {"allOf": [{"$ref": "#/components/schemas/NDArray"}]}
    else:
        s = {"type": "integer"} if ints else {"type": "number"}
        for d in reversed(range(ndim)):
            s = {"type": "array", "items": s}
            if shape and shape[d] >= 0:
                s["minItems"] = s["maxItems"] = shape[d]
    s["x-immersive-ndarray"] = {"dtype": dt or list(DTYPES), "ndim": ndim, "shape": shape}
    for v, name, items in ((f and f.min_items, "minElements", "minItems"),
                           (f and f.max_items, "maxElements", "maxItems")):
        if v is not None:
            s["x-immersive-ndarray"][name] = v
            if ndim == 1:  # then the elements are the items
                s[items] = v
    return s


def nullable_schema(s):
    """s that also takes null: type [T, "null"] (and null among an enum's values)."""
    if not s:  # json: any value, null already
        return s
    if "type" in s and "$ref" not in s and "allOf" not in s:
        s = dict(s, type=[s["type"], "null"])
        if "enum" in s:
            s["enum"] = s["enum"] + [None]
        return s
    return {"anyOf": [s, {"type": "null"}]}


def field_schema(f):
    s = schema_of(f.type, f)
    if f.nullable:
        s = nullable_schema(s)
    if "$ref" in s:
        s = {"allOf": [s]}  # siblings of $ref are fine in 3.1, allOf reads well in older tools
    if f.doc:
        s["description"] = f.doc
    if f.default is not None:
        s["default"] = f.default
    if f.example is not None:
        s["examples"] = [f.example]
    return s


def object_schema(title, fields, doc, extra):
    props, req = {}, []
    for f in fields:
        props[f.key] = field_schema(f)
        if f.required:
            req.append(f.key)
    s = {"title": title, "type": "object", "properties": props}
    if doc:
        s["description"] = doc
    if req:
        s["required"] = req
    if extra == "forbid":
        s["additionalProperties"] = False
    return s


def resolved_schema(s, modules, within=()):
    """s with every $ref to an object replaced by that object's schema; an object inside
    itself (a tree) keeps its $ref, which names the schema in /openapi.json."""
    if isinstance(s, dict):
        ref = s.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            for m in modules:
                if name in m.objects and name not in within:
                    o = m.objects[name]
                    rest = {k: v for k, v in s.items() if k != "$ref"}
                    return dict(resolved_schema(object_schema(o.name, o.fields, o.doc, o.extra),
                                                modules, within + (name,)), **rest)
        return {k: resolved_schema(v, modules, within) for k, v in s.items()}
    if isinstance(s, list):
        return [resolved_schema(v, modules, within) for v in s]
    return s


def args_definition(e, modules):
    """The function's arguments as GET /functions/{name} lists them (restful-functions'
    definitions): name, type as annotated, where it comes from, required, default, description
    and the JSON Schema of /openapi.json with objects written out."""
    out = []
    for a in e.args:
        t = "f64array" if getattr(a.type, "f64", False) else str(a.type)
        schema = field_schema(a)
        schema.pop("description", None)
        out.append({"name": a.key, "type": t, "in": a.source, "required": a.required,
                    "default": a.default, "description": a.doc or None,
                    "schema": resolved_schema(schema, modules)})
    return out


def openapi(service, title, version, modules):
    schemas = {}
    paths = {}
    for m in modules:
        for d in m.enums.values():
            schemas[d.name] = {"title": d.name, "type": "string", "enum": list(d.values), "description": d.doc}
        for o in m.objects.values():
            schemas[o.name] = object_schema(o.name, o.fields, o.doc, o.extra)
    for m in modules:
        for e in m.endpoints:
            op = {"operationId": e.func, "tags": e.tags}
            if e.summary:
                op["summary"] = e.summary
            if e.description:
                op["description"] = e.description
            if e.deprecated:
                op["deprecated"] = True
            params = []
            for a in e.args:
                if a.source in PARAM_SOURCES:
                    p = {"name": a.key, "in": a.source, "required": a.source == "path" or a.required,
                         "schema": schema_of(a.type, a)}
                    if a.default is not None:
                        p["schema"]["default"] = a.default
                    if a.example is not None:
                        p["example"] = a.example
                    if a.doc:
                        p["description"] = a.doc
                    if a.type.array:
                        p["style"], p["explode"] = "form", True
                    params.append(p)
            if params:
                op["parameters"] = params
            body = e.body_args
            raw = [a for a in e.args if a.source == "raw"]
            if body and body[0].whole:  # the body is that value itself
                bs = field_schema(body[0])
                op["requestBody"] = {"required": True, "content": {"application/json": {"schema": bs}}}
                if body[0].doc:
                    op["requestBody"]["description"] = body[0].doc
            elif body:
                sname = f"{e.func}_args"
                schemas[sname] = object_schema(sname, body, "", e.extra)
                op["requestBody"] = {"required": any(f.required for f in body),
                                     "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{sname}"}}}}
                if npy_arg(e):  # or the array alone, as .npy
                    op["requestBody"]["content"]["application/x-npy"] = {"schema": dict(
                        NPY_SCHEMA, description=f"the array '{npy_arg(e).name}' alone, in " + NPY_SCHEMA["description"])}
                    op["requestBody"]["content"]["application/octet-stream"] = {"schema": {
                        "type": "string", "contentMediaType": "application/octet-stream",
                        "description": f"the array '{npy_arg(e).name}' alone as little-endian float64 values, "
                                       "8 bytes each (1 dimension)"}}
            elif raw:
                # the values' own bounds (items, and each value's), which a string schema cannot say
                values = schema_of(raw[0].type, raw[0])
                op["requestBody"] = {"required": raw[0].required, "description": raw[0].doc or "float64 values",
                                     "x-immersive-values": values,
                                     "content": {"application/octet-stream": {"schema": {
                                         "type": "string", "contentMediaType": "application/octet-stream",
                                         "description": "little-endian IEEE 754 float64 values, 8 bytes each"}},
                                                 "application/x-npy": {"schema": dict(
                                                     NPY_SCHEMA, description="a 1-dimensional float64 array in " + NPY_SCHEMA["description"])}}}
            if e.result is None:
                rs = {"type": "null"}
            elif result_kind(e) == "fields":
                rname = f"{e.func}_result"
                schemas[rname] = object_schema(rname, e.result_fields, e.result_doc, "ignore")
                rs = {"$ref": f"#/components/schemas/{rname}"}
            elif result_kind(e) in ("object", "array"):  # the value itself
                rs = schema_of(e.result)
                if e.result_doc:
                    rs = {"allOf": [rs], "description": e.result_doc} if "$ref" in rs else dict(rs, description=e.result_doc)
            else:
                inner = schema_of(e.result)
                if e.result_doc:
                    inner = dict(inner, description=e.result_doc) if "$ref" not in inner else {"allOf": [inner], "description": e.result_doc}
                rname = f"{e.func}_result"
                schemas[rname] = {"title": rname, "type": "object", "properties": {"result": inner}, "required": ["result"]}
                rs = {"$ref": f"#/components/schemas/{rname}"}
            err = {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPError"}}}
            verr = {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}
            executor = e.mode in ("pool", "serial", "process")
            ok = str(e.status)
            responses = {ok: {"description": {200: "Successful Response", 201: "Created"}.get(e.status, "Success"),
                              "content": {"application/json": {"schema": rs}}}}
            if e.status == 204:
                responses = {ok: {"description": "No Content"}}
            if result_is_ndarray(e):  # with Accept: application/x-npy
                responses[ok]["content"]["application/x-npy"] = {"schema": dict(
                    NPY_SCHEMA, description="the array alone, with Accept: application/x-npy; " + NPY_SCHEMA["description"])}
            if executor:  # every call on an executor is a task: asked for, it answers at once
                responses["202"] = {
                    "description": "Accepted as a task (the default here: .response = IM_ASYNC)" if e.response == "async"
                                   else "Accepted as a task, with Prefer: respond-async",
                    "headers": {"Location": {"schema": {"type": "string"}, "description": "/tasks/{id}"}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TaskAccepted"}}}}
            if e.args:
                responses["422"] = {"description": "Validation Error" + (
                    " (malformed JSON too: json_invalid, with its byte offset in loc and ctx)" if body or raw else ""),
                                    "content": verr}
            if body or raw:
                responses["413"] = {"description": "The body is over the server's max_body_bytes (or the "
                                                   "endpoint's), or binding it would take more memory than a "
                                                   "request may use", "content": err}
                responses["415"] = {"description": "The body is not of a media type this endpoint takes", "content": err}
            if executor:
                responses["429"] = {"description": "Too many calls in flight, or the work queue is full",
                                    "headers": {"Retry-After": {"schema": {"type": "integer"},
                                                                "description": "Seconds to wait before trying again"}},
                                    "content": err}
                responses["503"] = {"description": "The function's executor is not running, the server is "
                                                   "shutting down, or memory ran out", "content": err}
                responses["504"] = {"description": "The call ran past its time limit (.timeout_ms, or "
                                                   "functions.<name>.timeout_ms in the config)", "content": err}
            for code, what in sorted(e.errors.items()):  # the handler's own, as it documents them
                if str(code) in responses:
                    responses[str(code)]["description"] += "; or " + what
                else:
                    responses[str(code)] = {"description": what, "content": err}
            responses["default"] = {"description": "A failure of the handler's own (im_call_fail: its status "
                                                   "and detail), or an answer that broke its schema (500)",
                                    "content": err}
            op["responses"] = responses
            op["x-immersive"] = {"name": e.name or e.func, "module": m.name, "mode": e.mode, "priority": e.priority,
                                 "status": e.status,
                                 "max_concurrency": e.max_concurrency, "timeout_ms": e.timeout_ms,
                                 "response": e.response, "extra": e.extra}
            if e.max_body_bytes:
                op["x-immersive"]["max_body_bytes"] = e.max_body_bytes
            paths.setdefault(e.path, {})[e.method.lower()] = op
    schemas["HTTPError"] = {"title": "HTTPError", "type": "object",
                            "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
    if any(e.mode in ("pool", "serial", "process") for m in modules for e in m.endpoints):
        schemas["TaskAccepted"] = {
            "title": "TaskAccepted", "type": "object", "description": "A call taken as a task: GET /tasks/{task_id}",
            "properties": {"task_id": {"type": "string", "description": "32 hex digits"},
                           "state": {"type": "string", "enum": ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED",
                                                                "TIMEOUT", "CANCELLED"]},
                           "function": {"type": "string"}},
            "required": ["task_id", "state", "function"]}
    schemas["ValidationError"] = {
        "title": "ValidationError", "type": "object",
        "properties": {"loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                       "msg": {"type": "string"}, "type": {"type": "string"}, "input": {},
                       "ctx": {"type": "object"}},
        "required": ["loc", "msg", "type"]}
    schemas["HTTPValidationError"] = {
        "title": "HTTPValidationError", "type": "object",
        "properties": {"detail": {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}}}}
    if '"#/components/schemas/NDArray"' in json.dumps([paths, schemas]):
        schemas["NDArray"] = ND_COMPONENT
    tags = [{"name": m.name, "description": m.doc} for m in modules]
    return {"openapi": "3.1.0", "info": {"title": title, "version": version},
            "tags": tags, "paths": paths, "components": {"schemas": schemas}}


# ---------------------------------------------------------------------------------------

def generate(service, module_dirs, outdir, title=None, version="0.1.0", docs_dir=None):
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", service):
        raise GenError(("<command line>", 1, 1), f"service name '{service}' is not a C identifier",
                       "letters, digits and _, not starting with a digit")
    objects = {}  # every type the service declares (IM_OBJECT, IM_ENUM), by name
    modules, readers = [], []
    seen = {}
    for d in module_dirs:
        if not os.path.isdir(d):
            raise GenError((d, 1, 1), "not a module folder",
                           "give the folders that hold the annotated .c files")
        r = Reader(d, objects)
        m = r.scan()
        if m.name in seen:
            raise GenError(m.where, f"module '{m.name}' given twice",
                           "list each module folder once")
        seen[m.name] = m
        modules.append(m)
        readers.append(r)
    for r in readers:
        r.read()
    check_service(modules)
    check_names(modules)
    doc = openapi(service, title or service, version, modules)
    files = {}
    n, t = emit_types_header(service, modules)
    files[n] = t
    for m in modules:
        n, t = emit_module_header(m, service)
        files[n] = t
    docs = docs_files(docs_dir, outdir) if docs_dir else None
    n, t = emit_routes(service, modules, doc, outdir, docs)
    files[n] = t
    files[f"{service}.service.h"] = (
        f"/* {service}.service.h — generated by {GENERATOR}; do not edit. */\n"
        f"#ifndef IM_GEN_SERVICE_{service.upper()}_H\n#define IM_GEN_SERVICE_{service.upper()}_H\n"
        '#include "immersive.h"\n'
        f"/* Adds the service's modules and annotated endpoints (started with the server, see\n"
        f" * im_server_add_service) and GET /openapi.json. 0 or -errno. */\n"
        f"int im_register_{service}(im_server *s);\n#endif\n")
    files[f"{service}.openapi.json"] = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    return files


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--service", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--title")
    ap.add_argument("--version", default="0.1.0")
    ap.add_argument("--docs", metavar="DIR", help="serve /docs and /redoc from DIR's swagger-ui-dist/ "
                    "and redoc/ (third_party/docs, or a node_modules folder)")
    ap.add_argument("modules", nargs="*")
    a = ap.parse_args(argv)
    try:
        files = generate(a.service, a.modules, a.out, a.title, a.version, a.docs)
    except GenError as e:
        print(e.render(), file=sys.stderr)
        return 1
    os.makedirs(a.out, exist_ok=True)
    for name, text in files.items():
        path = os.path.join(a.out, name)
        try:  # leave unchanged files alone: nothing rebuilds needlessly
            with open(path, encoding="utf-8") as f:
                if f.read() == text:
                    continue
        except FileNotFoundError:
            pass
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
