/* toml.c — the TOML 1.0 reader: one pass over the text, checked against the spec's grammar
 * and its rules on defining tables (the toml-test suite runs it: tests/test_toml.py). */

/* How a table came to be, which decides what may still be added to it (spec, "Table"):
 * a [header] defines a table once; a header's leading parts create tables implicitly, which a
 * later header may still define; dotted keys define tables that no header may name again;
 * inline tables and arrays written with "=" are sealed: nothing is added to them later. */
enum {
    IM__TF_EXPLICIT = 1, /* named by a [header] or a [[header]] element */
    IM__TF_IMPLICIT = 2, /* created as a header's leading part */
    IM__TF_DOTTED = 4,   /* created by a dotted key */
    IM__TF_SEALED = 8,   /* an inline table or a static array, or inside one */
    IM__TF_AOT = 16,     /* an array of tables, grown by [[header]] */
};

/* Tables and arrays nested in a whole document, the root counted: headers, dotted keys and
 * values add up, so the limit is checked on the finished tree (and, to bound the parser's own
 * recursion, inside one value). Kept well under what the JSON writer nests (IM_JW_MAX_DEPTH)
 * so any document read can be printed, tagged leaves included. */
#define IM__TOML_MAX_DEPTH 48
_Static_assert(IM__TOML_MAX_DEPTH + 2 < IM_JW_MAX_DEPTH, "a document read must print as JSON");

typedef struct im__tp {
    const char *s, *p, *e;   /* text, position, end */
    const char *name;        /* for errors */
    char *err;
    size_t errlen;
    int failed;
    int depth;
    const char *lpos;        /* line/column cache: the start of line lline */
    unsigned lline;
} im__tp;

static void im__tp_loc(im__tp *t, const char *at, unsigned *line, unsigned *col)
{
    if (at < t->lpos) { t->lpos = t->s; t->lline = 1; }
    for (const char *q = t->lpos; q < at; q++)
        if (*q == '\n') { t->lline++; t->lpos = q + 1; }
    unsigned c = 1;
    for (const char *q = t->lpos; q < at; q++)
        if (((unsigned char)*q & 0xC0) != 0x80) c++;
    *line = t->lline;
    *col = c;
}

static int im__tp_fail(im__tp *t, const char *at, const char *fmt, ...)
{
    if (t->failed) return -1;
    t->failed = 1;
    if (t->errlen) {
        unsigned line, col;
        im__tp_loc(t, at, &line, &col);
        int n = snprintf(t->err, t->errlen, "%s:%u:%u: ", t->name ? t->name : "<toml>", line, col);
        if (n >= 0 && (size_t)n < t->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(t->err + n, t->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static im_toml *im__tv_new(im__tp *t, im_toml_type type, const char *at)
{
    im_toml *v = (im_toml *)calloc(1, sizeof *v);
    if (!v) { im__tp_fail(t, at, "out of memory"); return NULL; }
    v->type = type;
    im__tp_loc(t, at, &v->line, &v->col);
    return v;
}

void im_toml_free(im_toml *v)
{
    if (!v) return;
    if (v->type == IM_TOML_ARRAY || v->type == IM_TOML_TABLE) {
        for (size_t i = 0; i < v->u.list.len; i++) im_toml_free(v->u.list.kids[i]);
        free(v->u.list.kids);
    } else if (v->type == IM_TOML_STRING) {
        free(v->u.str.ptr);
    }
    free((void *)v->key);
    free(v);
}

static int im__tv_push(im_toml *list, im_toml *kid)
{
    if (list->u.list.len == list->u.list.cap) {
        size_t cap = list->u.list.cap ? list->u.list.cap * 2 : 4;
        im_toml **k = (im_toml **)realloc(list->u.list.kids, cap * sizeof *k);
        if (!k) return -ENOMEM;
        list->u.list.kids = k;
        list->u.list.cap = cap;
    }
    list->u.list.kids[list->u.list.len++] = kid;
    return 0;
}

const im_toml *im_toml_find(const im_toml *t, const char *key, size_t len)
{
    if (!t || t->type != IM_TOML_TABLE) return NULL;
    for (size_t i = 0; i < t->u.list.len; i++) {
        const im_toml *k = t->u.list.kids[i];
        if (k->key_len == len && memcmp(k->key, key, len) == 0) return k;
    }
    return NULL;
}

size_t im_toml_len(const im_toml *v)
{
    return v && (v->type == IM_TOML_ARRAY || v->type == IM_TOML_TABLE) ? v->u.list.len : 0;
}

const im_toml *im_toml_at(const im_toml *v, size_t i)
{
    return i < im_toml_len(v) ? v->u.list.kids[i] : NULL;
}

const char *im_toml_type_name(im_toml_type t)
{
    static const char *const names[] = {"none", "string", "integer", "float", "bool",
                                        "datetime", "datetime-local", "date-local",
                                        "time-local", "array", "table"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "none";
}

/* ---- the text: UTF-8 and control characters, checked once for the whole document */

static int im__tp_check_text(im__tp *t)
{
    const unsigned char *p = (const unsigned char *)t->s, *e = (const unsigned char *)t->e;
    while (p < e) {
        unsigned c = *p;
        if (c < 0x80) {
            if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F)
                return im__tp_fail(t, (const char *)p, "control character U+%04X is not allowed "
                                   "(write it as an escape in a basic string)", c);
            if (c == '\r' && (p + 1 >= e || p[1] != '\n'))
                return im__tp_fail(t, (const char *)p, "a carriage return must be followed by "
                                   "a line feed");
            p++;
            continue;
        }
        size_t n = 0;
        unsigned cp = 0, min = 0;
        if (c >= 0xC2 && c <= 0xDF) { n = 1; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { n = 2; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 3; cp = c & 0x07; min = 0x10000; }
        else return im__tp_fail(t, (const char *)p, "invalid UTF-8");
        if ((size_t)(e - p) <= n) return im__tp_fail(t, (const char *)p, "invalid UTF-8");
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80) return im__tp_fail(t, (const char *)p, "invalid UTF-8");
            cp = cp << 6 | (p[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return im__tp_fail(t, (const char *)p, "invalid UTF-8");
        p += n + 1;
    }
    return 0;
}

/* ---- whitespace, comments, newlines */

static void im__tp_ws(im__tp *t)
{
    while (t->p < t->e && (*t->p == ' ' || *t->p == '\t')) t->p++;
}

static void im__tp_comment(im__tp *t)
{
    if (t->p < t->e && *t->p == '#')
        while (t->p < t->e && *t->p != '\n' && *t->p != '\r') t->p++;
}

static int im__tp_newline(im__tp *t)
{
    if (t->p < t->e && *t->p == '\n') { t->p++; return 1; }
    if (t->e - t->p >= 2 && t->p[0] == '\r' && t->p[1] == '\n') { t->p += 2; return 1; }
    return 0;
}

/* whitespace, comments and newlines, as allowed between an array's items */
static void im__tp_ws_nl(im__tp *t)
{
    for (;;) {
        im__tp_ws(t);
        im__tp_comment(t);
        if (!im__tp_newline(t)) return;
    }
}

/* after a key/value pair or a header: whitespace, a comment, then a newline or the end */
static int im__tp_eol(im__tp *t)
{
    im__tp_ws(t);
    im__tp_comment(t);
    if (t->p >= t->e || im__tp_newline(t)) return 0;
    return im__tp_fail(t, t->p, "expected a newline or the end of the document after a value");
}

/* ---- strings */

typedef struct im__tstr { char *p; size_t len, cap; } im__tstr;

static int im__ts_put(im__tstr *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 32;
        while (cap < b->len + n + 1) cap *= 2;
        char *q = (char *)realloc(b->p, cap);
        if (!q) return -ENOMEM;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

static int im__ts_utf8(im__tstr *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) { u[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | cp >> 6); u[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    return im__ts_put(b, u, n);
}

static int im__tp_oom(im__tp *t) { return im__tp_fail(t, t->p, "out of memory"); }

/* One escape after a backslash, in a basic string (one-line or multi-line). */
static int im__tp_escape(im__tp *t, im__tstr *b)
{
    const char *at = t->p - 1;
    if (t->p >= t->e) return im__tp_fail(t, at, "unterminated string");
    char c = *t->p++;
    const char *simple = NULL;
    switch (c) {
    case 'b': simple = "\b"; break;
    case 't': simple = "\t"; break;
    case 'n': simple = "\n"; break;
    case 'f': simple = "\f"; break;
    case 'r': simple = "\r"; break;
    case '"': simple = "\""; break;
    case '\\': simple = "\\"; break;
    case 'u': case 'U': {
        int n = c == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (int i = 0; i < n; i++) {
            if (t->p >= t->e || !isxdigit((unsigned char)*t->p))
                return im__tp_fail(t, at, "\\%c needs %d hexadecimal digits", c, n);
            char h = *t->p++;
            cp = cp * 16 + (uint32_t)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return im__tp_fail(t, at, "escape names no Unicode scalar value");
        return im__ts_utf8(b, cp) ? im__tp_oom(t) : 0;
    }
    default:
        return im__tp_fail(t, at, "unknown escape \\%c", c);
    }
    return im__ts_put(b, simple, 1) ? im__tp_oom(t) : 0;
}

/* A string of any of the four kinds, t->p on its first quote; multi-line kinds allowed only
 * for values. The decoded bytes go into b. */
static int im__tp_string(im__tp *t, im__tstr *b, int allow_multi)
{
    const char *start = t->p;
    char q = *t->p;
    int literal = q == '\'';
    if (t->e - t->p >= 3 && t->p[1] == q && t->p[2] == q) {
        if (!allow_multi) return im__tp_fail(t, start, "a key cannot be a multi-line string");
        t->p += 3;
        im__tp_newline(t); /* a newline right after the opening quotes is trimmed */
        for (;;) {
            if (t->p >= t->e) return im__tp_fail(t, start, "unterminated multi-line string");
            char c = *t->p;
            if (c == q && t->e - t->p >= 3 && t->p[1] == q && t->p[2] == q) {
                /* up to two more quotes belong to the content: """"" ends with "" */
                size_t run = 3;
                while (t->p + run < t->e && t->p[run] == q) run++;
                if (run > 5) return im__tp_fail(t, t->p, "too many quotes at the end of a "
                                                "multi-line string");
                if (im__ts_put(b, t->p, run - 3)) return im__tp_oom(t);
                t->p += run;
                if (!b->p && im__ts_put(b, "", 0)) return im__tp_oom(t);
                return 0;
            }
            if (!literal && c == '\\') {
                /* a backslash ending a line eats the newline and the whitespace after it */
                const char *r = t->p + 1;
                while (r < t->e && (*r == ' ' || *r == '\t')) r++;
                if (r < t->e && (*r == '\n' || *r == '\r')) {
                    t->p = r;
                    for (;;) {
                        im__tp_ws(t);
                        if (!im__tp_newline(t)) break;
                    }
                    continue;
                }
                t->p++;
                if (im__tp_escape(t, b)) return -1;
                continue;
            }
            if (c == '\r') { t->p++; continue; } /* CRLF: the text check ensured an LF follows */
            if (im__ts_put(b, t->p, 1)) return im__tp_oom(t);
            t->p++;
        }
    }
    t->p++;
    for (;;) {
        if (t->p >= t->e || *t->p == '\n' || *t->p == '\r')
            return im__tp_fail(t, start, "unterminated string (a one-line string ends on "
                               "its line)");
        char c = *t->p;
        if (c == q) {
            t->p++;
            if (!b->p && im__ts_put(b, "", 0)) return im__tp_oom(t);
            return 0;
        }
        if (!literal && c == '\\') {
            t->p++;
            if (im__tp_escape(t, b)) return -1;
            continue;
        }
        const char *r = t->p;
        while (r < t->e && *r != q && *r != '\n' && *r != '\r' && (literal || *r != '\\')) r++;
        if (im__ts_put(b, t->p, (size_t)(r - t->p))) return im__tp_oom(t);
        t->p = r;
    }
}

/* ---- keys */

#define IM__TKEY_MAX 64 /* parts of one dotted key */

typedef struct im__tkey {
    im__tstr part[IM__TKEY_MAX];
    const char *at[IM__TKEY_MAX];
    int n;
} im__tkey;

static void im__tk_free(im__tkey *k)
{
    for (int i = 0; i < k->n; i++) free(k->part[i].p);
    k->n = 0;
}

static int im__tp_bare(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

/* A key, simple or dotted, with whitespace around its dots; t->p on its first character. */
static int im__tp_key(im__tp *t, im__tkey *k)
{
    k->n = 0;
    for (;;) {
        if (k->n == IM__TKEY_MAX) return im__tp_fail(t, t->p, "a key has more than %d parts",
                                                     IM__TKEY_MAX);
        im__tstr *b = &k->part[k->n];
        memset(b, 0, sizeof *b);
        k->at[k->n] = t->p;
        k->n++;
        if (t->p < t->e && (*t->p == '"' || *t->p == '\'')) {
            if (im__tp_string(t, b, 0)) return -1;
        } else {
            const char *r = t->p;
            while (r < t->e && im__tp_bare(*r)) r++;
            if (r == t->p) {
                k->n--;
                return im__tp_fail(t, t->p, t->p < t->e && *t->p != '\n' && *t->p != '\r'
                                   ? "invalid character in a key (bare keys hold A-Z a-z 0-9 _ -)"
                                   : "expected a key");
            }
            if (im__ts_put(b, t->p, (size_t)(r - t->p))) return im__tp_oom(t);
            t->p = r;
        }
        im__tp_ws(t);
        if (t->p < t->e && *t->p == '.') {
            t->p++;
            im__tp_ws(t);
            continue;
        }
        return 0;
    }
}

static im_toml *im__tp_child(im__tp *t, im_toml *table, const im__tstr *key, im_toml_type type,
                             const char *at)
{
    im_toml *v = im__tv_new(t, type, at);
    if (!v) return NULL;
    char *kc = (char *)malloc(key->len + 1);
    if (!kc || im__tv_push(table, v)) {
        free(kc);
        free(v);
        im__tp_oom(t);
        return NULL;
    }
    memcpy(kc, key->p, key->len);
    kc[key->len] = 0;
    v->key = kc;
    v->key_len = key->len;
    return v;
}

static void im__tp_seal(im_toml *v)
{
    v->flags |= IM__TF_SEALED;
    if (v->type == IM_TOML_ARRAY || v->type == IM_TOML_TABLE)
        for (size_t i = 0; i < v->u.list.len; i++) im__tp_seal(v->u.list.kids[i]);
}

/* ---- numbers, dates and times */

static int im__tp_digits(const char *p, const char *e, int n)
{
    if (e - p < n) return 0;
    for (int i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9') return 0;
    return 1;
}

static int im__tp_num2(const char *p) { return (p[0] - '0') * 10 + (p[1] - '0'); }

/* HH:MM:SS[.frac] at t->p (seconds are required in TOML 1.0) */
static int im__tp_time(im__tp *t, im_toml_time *tm)
{
    const char *p = t->p, *e = t->e;
    if (!im__tp_digits(p, e, 2) || e - p < 8 || p[2] != ':' || !im__tp_digits(p + 3, e, 2) ||
        p[5] != ':' || !im__tp_digits(p + 6, e, 2))
        return im__tp_fail(t, p, "a time is HH:MM:SS (seconds are required)");
    tm->hour = im__tp_num2(p);
    tm->minute = im__tp_num2(p + 3);
    tm->second = im__tp_num2(p + 6);
    if (tm->hour > 23 || tm->minute > 59 || tm->second > 60)
        return im__tp_fail(t, p, "time out of range");
    p += 8;
    if (p < e && *p == '.') {
        p++;
        if (p >= e || *p < '0' || *p > '9')
            return im__tp_fail(t, p, "a fraction of a second needs digits after the '.'");
        int nd = 0;
        while (p < e && *p >= '0' && *p <= '9') {
            if (nd < 9) { tm->nanosecond = tm->nanosecond * 10 + (*p - '0'); nd++; }
            p++;
        }
        tm->frac_digits = nd;
        for (int i = nd; i < 9; i++) tm->nanosecond *= 10;
    }
    t->p = p;
    return 0;
}

static int im__tp_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* A date, a date-time or a time, t->p on its first digit; the caller saw its shape. */
static int im__tp_datetime(im__tp *t, im_toml *v, int is_time)
{
    im_toml_time *tm = &v->u.t;
    if (is_time) {
        v->type = IM_TOML_TIME_LOCAL;
        return im__tp_time(t, tm);
    }
    const char *p = t->p, *e = t->e;
    if (!im__tp_digits(p, e, 4) || e - p < 10 || p[4] != '-' || !im__tp_digits(p + 5, e, 2) ||
        p[7] != '-' || !im__tp_digits(p + 8, e, 2))
        return im__tp_fail(t, p, "a date is YYYY-MM-DD");
    tm->year = im__tp_num2(p) * 100 + im__tp_num2(p + 2);
    tm->month = im__tp_num2(p + 5);
    tm->day = im__tp_num2(p + 8);
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (tm->month < 1 || tm->month > 12 || tm->day < 1 ||
        tm->day > mdays[tm->month - 1] + (tm->month == 2 && im__tp_leap(tm->year)))
        return im__tp_fail(t, p, "no such date");
    p += 10;
    v->type = IM_TOML_DATE_LOCAL;
    /* 'T', 't' or a space followed by a time makes it a date-time */
    if (p < e && (*p == 'T' || *p == 't' || (*p == ' ' && im__tp_digits(p + 1, e, 2) &&
                                              p + 3 < e && p[3] == ':'))) {
        t->p = p + 1;
        if (im__tp_time(t, tm)) return -1;
        p = t->p;
        v->type = IM_TOML_DATETIME_LOCAL;
        if (p < e && (*p == 'Z' || *p == 'z')) {
            v->type = IM_TOML_DATETIME;
            p++;
        } else if (p < e && (*p == '+' || *p == '-')) {
            if (!im__tp_digits(p + 1, e, 2) || e - p < 6 || p[3] != ':' ||
                !im__tp_digits(p + 4, e, 2))
                return im__tp_fail(t, p, "a time offset is Z or +HH:MM");
            int h = im__tp_num2(p + 1), m = im__tp_num2(p + 4);
            if (h > 23 || m > 59) return im__tp_fail(t, p, "time offset out of range");
            tm->offset_min = (*p == '-' ? -1 : 1) * (h * 60 + m);
            v->type = IM_TOML_DATETIME;
            p += 6;
        }
    }
    t->p = p;
    return 0;
}

/* digits of one base with single underscores between them; returns the end, or NULL */
static const char *im__tp_run(const char *p, const char *e, int base, char *out, size_t *on,
                              size_t cap)
{
    int prev_digit = 0;
    const char *start = p;
    while (p < e) {
        char c = *p;
        int d = c >= '0' && c <= '9' ? c - '0'
              : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
        if (d >= 0 && d < base) {
            if (*on + 1 >= cap) return NULL; /* too long to read exactly: refused, not cut */
            out[(*on)++] = c;
            prev_digit = 1;
        } else if (c == '_') {
            if (!prev_digit || p + 1 >= e) return NULL;
            prev_digit = 0;
        } else {
            break;
        }
        p++;
    }
    if (p == start || !prev_digit) return NULL;
    return p;
}

static int im__tp_number(im__tp *t, im_toml *v)
{
    const char *p = t->p, *e = t->e, *start = p;
    char buf[512];
    size_t n = 0;
    if (p < e && (*p == '+' || *p == '-')) buf[n++] = *p++;
    if (e - p >= 3 && (memcmp(p, "inf", 3) == 0 || memcmp(p, "nan", 3) == 0)) {
        v->type = IM_TOML_FLOAT;
        v->u.f = p[0] == 'i' ? (n && buf[0] == '-' ? -HUGE_VAL : HUGE_VAL)
                             : (n && buf[0] == '-' ? -NAN : NAN);
        t->p = p + 3;
        return 0;
    }
    if (e - p >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'o' || p[1] == 'b')) {
        int base = p[1] == 'x' ? 16 : p[1] == 'o' ? 8 : 2;
        if (n) return im__tp_fail(t, start, "a hexadecimal, octal or binary integer takes no "
                                  "sign");
        const char *r = im__tp_run(p + 2, e, base, buf, &n, sizeof buf);
        if (!r) return im__tp_fail(t, start, "invalid %s integer",
                                   base == 16 ? "hexadecimal" : base == 8 ? "octal" : "binary");
        buf[n] = 0;
        errno = 0;
        unsigned long long u = strtoull(buf, NULL, base);
        if (errno || u > (unsigned long long)INT64_MAX)
            return im__tp_fail(t, start, "integer out of range (64-bit signed)");
        v->type = IM_TOML_INT;
        v->u.i = (int64_t)u;
        t->p = r;
        return 0;
    }
    size_t int_at = n;
    const char *r = im__tp_run(p, e, 10, buf, &n, sizeof buf);
    if (!r) return im__tp_fail(t, start, "invalid number");
    if (n - int_at > 1 && buf[int_at] == '0')
        return im__tp_fail(t, start, "a number cannot start with a leading zero");
    int is_float = 0;
    if (r < e && *r == '.') {
        is_float = 1;
        if (n + 1 < sizeof buf) buf[n++] = '.';
        r = im__tp_run(r + 1, e, 10, buf, &n, sizeof buf);
        if (!r) return im__tp_fail(t, start, "a float needs digits after its '.'");
    }
    if (r < e && (*r == 'e' || *r == 'E')) {
        is_float = 1;
        if (n + 1 < sizeof buf) buf[n++] = 'e';
        r++;
        if (r < e && (*r == '+' || *r == '-')) {
            if (n + 1 < sizeof buf) buf[n++] = *r;
            r++;
        }
        r = im__tp_run(r, e, 10, buf, &n, sizeof buf);
        if (!r) return im__tp_fail(t, start, "a float's exponent needs digits");
    }
    if (r < e && (im__tp_bare(*r) || *r == '.' || *r == ':'))
        return im__tp_fail(t, r, "invalid number");
    buf[n] = 0;
    errno = 0;
    if (is_float) {
        v->type = IM_TOML_FLOAT;
        v->u.f = strtod_l(buf, NULL, im__c_locale());
    } else {
        v->type = IM_TOML_INT;
        long long x = strtoll(buf, NULL, 10);
        if (errno) return im__tp_fail(t, start, "integer out of range (64-bit signed)");
        v->u.i = x;
    }
    t->p = r;
    return 0;
}

/* ---- values */

static int im__tp_keyval(im__tp *t, im_toml *table, im__tkey *k);

static int im__tp_value(im__tp *t, im_toml *v)
{
    const char *p = t->p, *e = t->e;
    if (p >= e || *p == '\n' || *p == '\r' || *p == '#')
        return im__tp_fail(t, p, "expected a value");
    char c = *p;
    if (c == '"' || c == '\'') {
        im__tstr b = {0};
        if (im__tp_string(t, &b, 1)) { free(b.p); return -1; }
        v->type = IM_TOML_STRING;
        v->u.str.ptr = b.p;
        v->u.str.len = b.len;
        return 0;
    }
    if (e - p >= 4 && memcmp(p, "true", 4) == 0 && (e - p == 4 || !im__tp_bare(p[4]))) {
        v->type = IM_TOML_BOOL;
        v->u.b = 1;
        t->p += 4;
        return 0;
    }
    if (e - p >= 5 && memcmp(p, "false", 5) == 0 && (e - p == 5 || !im__tp_bare(p[5]))) {
        v->type = IM_TOML_BOOL;
        t->p += 5;
        return 0;
    }
    if (c == '[' || c == '{') {
        if (++t->depth > IM__TOML_MAX_DEPTH)
            return im__tp_fail(t, p, "values nested more than %d deep", IM__TOML_MAX_DEPTH);
        int rc;
        t->p++;
        if (c == '[') {
            v->type = IM_TOML_ARRAY;
            for (;;) {
                im__tp_ws_nl(t);
                if (t->p < e && *t->p == ']') { t->p++; break; }
                im_toml *item = im__tv_new(t, IM_TOML_NONE, t->p);
                if (!item) return -1;
                if (im__tv_push(v, item)) { free(item); return im__tp_oom(t); }
                if (im__tp_value(t, item)) return -1;
                im__tp_ws_nl(t);
                if (t->p < e && *t->p == ',') { t->p++; continue; }
                if (t->p < e && *t->p == ']') { t->p++; break; }
                return im__tp_fail(t, t->p, "expected ',' or ']' in an array");
            }
            rc = 0;
        } else {
            v->type = IM_TOML_TABLE;
            im__tp_ws(t);
            rc = 0;
            if (t->p < e && *t->p == '}') {
                t->p++;
            } else {
                for (;;) {
                    im__tp_ws(t);
                    im__tkey k;
                    if (im__tp_key(t, &k) || im__tp_keyval(t, v, &k)) {
                        im__tk_free(&k);
                        return -1;
                    }
                    im__tk_free(&k);
                    im__tp_ws(t);
                    if (t->p < e && *t->p == ',') { t->p++; continue; }
                    if (t->p < e && *t->p == '}') { t->p++; break; }
                    return im__tp_fail(t, t->p, "expected ',' or '}' in an inline table (it "
                                       "stays on one line, with no trailing comma)");
                }
            }
        }
        t->depth--;
        im__tp_seal(v);
        return rc;
    }
    /* a date or time: 4 digits and '-', or 2 digits and ':' */
    if (im__tp_digits(p, e, 4) && e - p > 4 && p[4] == '-') return im__tp_datetime(t, v, 0);
    if (im__tp_digits(p, e, 2) && e - p > 2 && p[2] == ':') return im__tp_datetime(t, v, 1);
    if (c == '+' || c == '-' || (c >= '0' && c <= '9') || c == 'i' || c == 'n')
        return im__tp_number(t, v);
    return im__tp_fail(t, p, "expected a value (a string, number, boolean, date, array or "
                       "inline table)");
}

/* "key = value" into table, k already read; dotted keys define tables on the way. */
static int im__tp_keyval(im__tp *t, im_toml *table, im__tkey *k)
{
    im_toml *cur = table;
    for (int i = 0; i < k->n - 1; i++) {
        im_toml *next = (im_toml *)im_toml_find(cur, k->part[i].p, k->part[i].len);
        if (!next) {
            next = im__tp_child(t, cur, &k->part[i], IM_TOML_TABLE, k->at[i]);
            if (!next) return -1;
            next->flags = IM__TF_DOTTED;
        } else if (next->type != IM_TOML_TABLE || (next->flags & (IM__TF_EXPLICIT |
                                                                  IM__TF_SEALED))) {
            return im__tp_fail(t, k->at[i], "'%s' is already defined%s", k->part[i].p,
                               next->type == IM_TOML_TABLE ? " as a table: a dotted key "
                               "cannot add to it" : "");
        } else {
            next->flags |= IM__TF_DOTTED;
        }
        cur = next;
    }
    const im__tstr *last = &k->part[k->n - 1];
    if (im_toml_find(cur, last->p, last->len))
        return im__tp_fail(t, k->at[k->n - 1], "duplicate key '%s'", last->p);
    im__tp_ws(t);
    if (t->p >= t->e || *t->p != '=')
        return im__tp_fail(t, t->p, "expected '=' after a key");
    t->p++;
    im__tp_ws(t);
    im_toml *v = im__tp_child(t, cur, last, IM_TOML_NONE, k->at[0]);
    if (!v) return -1;
    return im__tp_value(t, v);
}

/* [a.b] or [[a.b]], t->p on the first '['; returns the table that keys go into next */
static im_toml *im__tp_header(im__tp *t, im_toml *root)
{
    const char *at = t->p;
    int aot = t->e - t->p >= 2 && t->p[1] == '[';
    t->p += aot ? 2 : 1;
    im__tp_ws(t);
    im__tkey k;
    if (im__tp_key(t, &k)) { im__tk_free(&k); return NULL; }
    im_toml *cur = root, *res = NULL;
    if (aot ? !(t->e - t->p >= 2 && t->p[0] == ']' && t->p[1] == ']')
            : !(t->p < t->e && t->p[0] == ']')) {
        im__tp_fail(t, t->p, aot ? "expected ']]' to close an array-of-tables header"
                                 : "expected ']' to close a table header");
        goto done;
    }
    t->p += aot ? 2 : 1;
    for (int i = 0; i < k.n; i++) {
        int lastp = i == k.n - 1;
        im_toml *next = (im_toml *)im_toml_find(cur, k.part[i].p, k.part[i].len);
        if (!next) {
            if (lastp && aot) {
                next = im__tp_child(t, cur, &k.part[i], IM_TOML_ARRAY, k.at[i]);
                if (!next) goto done;
                next->flags = IM__TF_AOT;
            } else {
                next = im__tp_child(t, cur, &k.part[i], IM_TOML_TABLE, k.at[i]);
                if (!next) goto done;
                next->flags = lastp ? IM__TF_EXPLICIT : IM__TF_IMPLICIT;
                cur = next;
                continue;
            }
        }
        if (next->flags & IM__TF_SEALED) {
            im__tp_fail(t, k.at[i], "'%s' was written inline: nothing can be added to it",
                        k.part[i].p);
            goto done;
        }
        if (lastp && aot) {
            if (next->type != IM_TOML_ARRAY || !(next->flags & IM__TF_AOT)) {
                im__tp_fail(t, k.at[i], "'%s' is already defined and is not an array of tables",
                            k.part[i].p);
                goto done;
            }
            im_toml *el = im__tv_new(t, IM_TOML_TABLE, at);
            if (!el) goto done;
            if (im__tv_push(next, el)) { free(el); im__tp_oom(t); goto done; }
            el->flags = IM__TF_EXPLICIT;
            cur = el;
            continue;
        }
        if (next->type == IM_TOML_ARRAY && (next->flags & IM__TF_AOT) && !lastp) {
            cur = next->u.list.kids[next->u.list.len - 1];
            continue;
        }
        if (next->type != IM_TOML_TABLE) {
            im__tp_fail(t, k.at[i], "'%s' is already defined and is not a table", k.part[i].p);
            goto done;
        }
        if (lastp) {
            if (next->flags & (IM__TF_EXPLICIT | IM__TF_DOTTED)) {
                im__tp_fail(t, k.at[i], "table '%s' is defined twice", k.part[i].p);
                goto done;
            }
            next->flags = (next->flags & ~(unsigned)IM__TF_IMPLICIT) | IM__TF_EXPLICIT;
        }
        cur = next;
    }
    if (im__tp_eol(t) == 0) res = cur;
done:
    im__tk_free(&k);
    return res;
}

/* The first table or array nested deeper than IM__TOML_MAX_DEPTH (v at depth d), or NULL;
 * the walk stops there, so it recurses at most that deep. */
static const im_toml *im__tv_deep(const im_toml *v, int d)
{
    if (v->type != IM_TOML_ARRAY && v->type != IM_TOML_TABLE) return NULL;
    if (d > IM__TOML_MAX_DEPTH) return v;
    for (size_t i = 0; i < v->u.list.len; i++) {
        const im_toml *r = im__tv_deep(v->u.list.kids[i], d + 1);
        if (r) return r;
    }
    return NULL;
}

im_toml *im_toml_parse(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
    im__tp t = {.s = text, .p = text, .e = text + len, .name = name, .err = err,
                .errlen = errlen, .lpos = text, .lline = 1};
    if (errlen) err[0] = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) t.p += 3; /* a byte order mark */
    im_toml *root = im__tv_new(&t, IM_TOML_TABLE, text);
    if (!root) return NULL;
    root->flags = IM__TF_EXPLICIT;
    if (im__tp_check_text(&t)) goto fail;
    im_toml *cur = root;
    while (t.p < t.e) {
        im__tp_ws(&t);
        im__tp_comment(&t);
        if (t.p >= t.e) break;
        if (im__tp_newline(&t)) continue;
        if (*t.p == '[') {
            cur = im__tp_header(&t, root);
            if (!cur) goto fail;
            continue;
        }
        im__tkey k;
        int rc = im__tp_key(&t, &k) || im__tp_keyval(&t, cur, &k) || im__tp_eol(&t);
        im__tk_free(&k);
        if (rc) goto fail;
    }
    const im_toml *deep = im__tv_deep(root, 1);
    if (deep) {
        if (errlen)
            snprintf(err, errlen, "%s:%u:%u: tables and arrays nested more than %d deep",
                     name ? name : "<toml>", deep->line, deep->col, IM__TOML_MAX_DEPTH);
        goto fail;
    }
    return root;
fail:
    im_toml_free(root);
    return NULL;
}

im_toml *im_toml_parse_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rbe"); /* close-on-exec: another thread may fork meanwhile */
    if (!f) {
        if (errlen) snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    im__tstr b = {0};
    char chunk[8192];
    size_t n;
    int bad = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (im__ts_put(&b, chunk, n)) { bad = ENOMEM; break; }
    if (!bad && ferror(f)) bad = errno ? errno : EIO;
    fclose(f);
    if (bad) {
        free(b.p);
        if (errlen) snprintf(err, errlen, "%s: %s", path, strerror(bad));
        return NULL;
    }
    im_toml *v = im_toml_parse(b.p ? b.p : "", b.len, path, err, errlen);
    free(b.p);
    return v;
}

im_toml *im_toml_dup(const im_toml *v)
{
    if (!v) return NULL;
    im_toml *c = (im_toml *)malloc(sizeof *c);
    if (!c) return NULL;
    *c = *v;
    c->key = NULL;
    if (v->type == IM_TOML_ARRAY || v->type == IM_TOML_TABLE) {
        c->u.list.kids = NULL;
        c->u.list.len = c->u.list.cap = 0;
    } else if (v->type == IM_TOML_STRING) {
        c->u.str.ptr = NULL;
    }
    if (v->key) {
        char *k = (char *)malloc(v->key_len + 1);
        if (!k) goto fail;
        memcpy(k, v->key, v->key_len + 1);
        c->key = k;
    }
    if (v->type == IM_TOML_STRING) {
        c->u.str.ptr = (char *)malloc(v->u.str.len + 1);
        if (!c->u.str.ptr) goto fail;
        memcpy(c->u.str.ptr, v->u.str.ptr, v->u.str.len + 1);
    } else if (v->type == IM_TOML_ARRAY || v->type == IM_TOML_TABLE) {
        for (size_t i = 0; i < v->u.list.len; i++) {
            im_toml *k = im_toml_dup(v->u.list.kids[i]);
            if (!k || im__tv_push(c, k)) { im_toml_free(k); goto fail; }
        }
    }
    return c;
fail:
    im_toml_free(c);
    return NULL;
}

/* One part of a dotted lookup path: bare, or quoted with " or '; *pp moves past the dot. */
static int im__tpath_part(const char **pp, char *out, size_t cap, size_t *len)
{
    const char *p = *pp;
    size_t n = 0;
    if (*p == '"' || *p == '\'') {
        char q = *p++;
        while (*p && *p != q) {
            if (n + 1 >= cap) return -1;
            out[n++] = *p++;
        }
        if (*p != q) return -1;
        p++;
    } else {
        while (*p && *p != '.') {
            if (n + 1 >= cap) return -1;
            out[n++] = *p++;
        }
    }
    if (*p == '.') p++;
    else if (*p) return -1;
    out[n] = 0;
    *len = n;
    *pp = p;
    return 0;
}

const im_toml *im_toml_get(const im_toml *t, const char *path)
{
    if (!t || !path) return NULL;
    const char *p = path;
    char part[256];
    size_t n;
    while (*p) {
        if (t->type != IM_TOML_TABLE || im__tpath_part(&p, part, sizeof part, &n)) return NULL;
        t = im_toml_find(t, part, n);
        if (!t) return NULL;
    }
    return t;
}

size_t im_toml_time_str(const im_toml *v, char *buf, size_t cap)
{
    const im_toml_time *tm = &v->u.t;
    char s[64];
    size_t n = 0;
    if (v->type != IM_TOML_TIME_LOCAL)
        n += (size_t)snprintf(s, sizeof s, "%04d-%02d-%02d", tm->year, tm->month, tm->day);
    if (v->type != IM_TOML_DATE_LOCAL) {
        if (v->type != IM_TOML_TIME_LOCAL) s[n++] = 'T';
        n += (size_t)snprintf(s + n, sizeof s - n, "%02d:%02d:%02d", tm->hour, tm->minute,
                              tm->second);
        if (tm->frac_digits) {
            char f[16];
            snprintf(f, sizeof f, "%09d", tm->nanosecond);
            n += (size_t)snprintf(s + n, sizeof s - n, ".%.*s", tm->frac_digits, f);
        }
        if (v->type == IM_TOML_DATETIME) {
            if (tm->offset_min == 0) {
                s[n++] = 'Z';
            } else {
                int o = tm->offset_min < 0 ? -tm->offset_min : tm->offset_min;
                n += (size_t)snprintf(s + n, sizeof s - n, "%c%02d:%02d",
                                      tm->offset_min < 0 ? '-' : '+', o / 60, o % 60);
            }
        }
    }
    s[n] = 0;
    if (cap) snprintf(buf, cap, "%s", s);
    return n;
}

void im_toml_json(const im_toml *v, im_jw *w, int tagged)
{
    char s[64];
    if (v->type == IM_TOML_TABLE || v->type == IM_TOML_ARRAY) {
        int tab = v->type == IM_TOML_TABLE;
        if (tab) im_jw_obj(w); else im_jw_arr(w);
        for (size_t i = 0; i < v->u.list.len; i++) {
            const im_toml *k = v->u.list.kids[i];
            if (tab) im_jw_keyn(w, k->key, k->key_len);
            im_toml_json(k, w, tagged);
        }
        if (tab) im_jw_obj_end(w); else im_jw_arr_end(w);
        return;
    }
    if (tagged) {
        im_jw_obj(w);
        im_jw_key(w, "type");
        im_jw_str(w, im_toml_type_name(v->type));
        im_jw_key(w, "value");
    }
    switch (v->type) {
    case IM_TOML_STRING: im_jw_strn(w, v->u.str.ptr, v->u.str.len); break;
    case IM_TOML_INT:
        if (tagged) {
            snprintf(s, sizeof s, "%lld", (long long)v->u.i);
            im_jw_str(w, s);
        } else {
            im_jw_int(w, v->u.i);
        }
        break;
    case IM_TOML_FLOAT:
        if (tagged) {
            if (isnan(v->u.f)) im_jw_str(w, "nan");
            else if (isinf(v->u.f)) im_jw_str(w, v->u.f < 0 ? "-inf" : "inf");
            else {
                im_jw tmp;
                im_jw_init(&tmp, s, sizeof s);
                im_jw_double(&tmp, v->u.f);
                im_jw_strn(w, tmp.buf, tmp.len);
            }
        } else {
            im_jw_double(w, v->u.f);
        }
        break;
    case IM_TOML_BOOL:
        if (tagged) im_jw_str(w, v->u.b ? "true" : "false");
        else im_jw_bool(w, v->u.b);
        break;
    case IM_TOML_DATETIME: case IM_TOML_DATETIME_LOCAL: case IM_TOML_DATE_LOCAL:
    case IM_TOML_TIME_LOCAL:
        im_toml_time_str(v, s, sizeof s);
        im_jw_str(w, s);
        break;
    default: im_jw_null(w); break;
    }
    if (tagged) im_jw_obj_end(w);
}
