"""lexer.py — the C source read as far as annotations need: tokens, the preprocessor's #if 0, the
annotation calls and their values."""
import re



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
