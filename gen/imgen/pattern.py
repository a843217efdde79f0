"""pattern.py — .pattern: an ECMA-262 subset compiled to a DFA over UTF-8 bytes."""
import re



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
