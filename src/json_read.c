/* json_read.c — the pull JSON reader: strict RFC 8259, UTF-8 checked, numbers read without
 * the locale, strings decoded in place when the text is writable. */

/* The "C" locale for strtod_l: JSON's decimal point is '.', whatever the process's locale. */
static locale_t im__c_locale_v;
static pthread_once_t im__c_locale_once = PTHREAD_ONCE_INIT;
static void im__c_locale_init(void) { im__c_locale_v = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0); }
static locale_t im__c_locale(void)
{
    pthread_once(&im__c_locale_once, im__c_locale_init);
    return im__c_locale_v;
}

static int im__jr_fail(im_json *j, int code, const char *msg, const char *at)
{
    if (!j->err) {
        j->err = code;
        j->msg = msg;
        j->err_off = (size_t)(at - j->buf);
    }
    return j->err;
}

static inline void im__jr_ws(im_json *j)
{
    const char *p = j->p, *e = j->end;
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    j->p = p;
}

void im_json_init(im_json *j, const char *text, size_t len, int in_place)
{
    memset(j, 0, sizeof *j);
    j->buf = j->p = text;
    j->end = text + len;
    j->max_depth = 64;
    j->in_place = in_place;
}

int im_json_peek(im_json *j)
{
    if (j->err) return j->err;
    im__jr_ws(j);
    if (j->p >= j->end) return im__jr_fail(j, IM_JSON_EEND, "unexpected end of JSON", j->p);
    switch (*j->p) {
    case '{': return IM_JSON_OBJECT;
    case '[': return IM_JSON_ARRAY;
    case '"': return IM_JSON_STRING;
    case 't': return IM_JSON_TRUE;
    case 'f': return IM_JSON_FALSE;
    case 'n': return IM_JSON_NULL;
    case '-': case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7':
    case '8': case '9': return IM_JSON_NUMBER;
    default: return im__jr_fail(j, IM_JSON_EBAD, "unexpected character", j->p);
    }
}

static int im__jr_enter(im_json *j, char open)
{
    int t = im_json_peek(j);
    if (t < 0) return t;
    if (*j->p != open)
        return im__jr_fail(j, IM_JSON_EBAD, open == '{' ? "expected an object" : "expected an array",
                           j->p);
    if (j->depth + 1 > j->max_depth || j->depth + 1 > 64)
        return im__jr_fail(j, IM_JSON_EDEPTH, "JSON nested too deeply", j->p);
    j->p++;
    j->depth++;
    j->fresh |= (uint64_t)1 << (j->depth - 1); /* bit d-1: the container at depth d */
    return 0;
}

int im_json_obj_enter(im_json *j) { return im__jr_enter(j, '{'); }
int im_json_arr_enter(im_json *j) { return im__jr_enter(j, '['); }

/* Reads the string at the cursor ('"' there). out NULL: check only. */
/* How many bytes at p are plain ASCII in a string (none of '"', '\\', a control character or
 * a byte of a multi-byte character), eight at a time (SWAR: no SIMD library, any CPU), up to
 * the first byte that is not (on a big-endian CPU, up to the word holding it). */
static inline size_t im__jr_plain(const unsigned char *p, const unsigned char *e)
{
    const unsigned char *s = p;
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    while (e - p >= 8) {
        uint64_t v, q, b;
        memcpy(&v, p, 8);
        q = v ^ (ones * '"');
        b = v ^ (ones * '\\');
        /* a byte >= 0x80, < 0x20, equal to '"' or to '\\' (the has-zero and has-less tricks:
         * their lowest flagged byte is exact, borrows only run upwards) */
        uint64_t m = (v | ((v - ones * 0x20) & ~v) | ((q - ones) & ~q) | ((b - ones) & ~b)) & highs;
        if (m) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            p += __builtin_ctzll(m) >> 3; /* up to the first special byte, exactly */
#endif
            break;
        }
        p += 8;
    }
    if (e - p < 8) /* the last few bytes, one at a time: a string that ends the text is read here */
        while (p < e && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') p++;
    return (size_t)(p - s);
}

static int im__jr_string(im_json *j, im_str *out, char *buf, size_t cap)
{
    const unsigned char *p = (const unsigned char *)j->p + 1, *e = (const unsigned char *)j->end;
    const unsigned char *s = p;
    /* fast path: no escapes */
    for (;;) {
        p += im__jr_plain(p, e);
        if (p >= e) return im__jr_fail(j, IM_JSON_EEND, "unterminated string", j->p);
        unsigned c = *p;
        if (c == '"') {
            if (out) {
                out->ptr = (const char *)s;
                out->len = (size_t)(p - s);
            }
            j->p = (const char *)p + 1;
            return 0;
        }
        if (c == '\\') break;
        if (c < 0x20) return im__jr_fail(j, IM_JSON_EBAD, "control character in string", (const char *)p);
        if (c >= 0x80) {
            size_t k = im__utf8_len(p, (size_t)(e - p));
            if (!k) return im__jr_fail(j, IM_JSON_EBAD, "invalid UTF-8 in string", (const char *)p);
            p += k;
        } else {
            p++;
        }
    }
    /* escapes: decode into the text itself (w never passes p), or into buf, or nowhere */
    char *w = NULL;
    size_t n = (size_t)(p - s); /* bytes decoded so far */
    int room = 1;
    if (out && j->in_place) {
        w = (char *)p; /* the bytes before the first escape stay where they are */
    } else if (out) {
        if (n > cap) room = 0;
        else memcpy(buf, s, n);
    }
#define IM__EMIT(b)                                    \
    do {                                               \
        if (w) *w++ = (char)(b);                       \
        else if (out && room) {                        \
            if (n < cap) buf[n] = (char)(b);           \
            else room = 0;                             \
        }                                              \
        n++;                                           \
    } while (0)
    for (;;) {
        size_t run = im__jr_plain(p, e);
        if (run) { /* plain bytes between escapes: moved as a block */
            if (w) {
                memmove(w, p, run);
                w += run;
            } else if (out && room) {
                if (n + run <= cap) memcpy(buf + n, p, run);
                else room = 0;
            }
            n += run;
            p += run;
        }
        if (p >= e) return im__jr_fail(j, IM_JSON_EEND, "unterminated string", j->p);
        unsigned c = *p;
        if (c == '"') break;
        if (c == '\\') {
            if (p + 1 >= e) return im__jr_fail(j, IM_JSON_EEND, "unterminated string", j->p);
            unsigned x = p[1];
            uint32_t cp;
            switch (x) {
            case '"': case '\\': case '/': IM__EMIT(x); p += 2; continue;
            case 'b': IM__EMIT('\b'); p += 2; continue;
            case 'f': IM__EMIT('\f'); p += 2; continue;
            case 'n': IM__EMIT('\n'); p += 2; continue;
            case 'r': IM__EMIT('\r'); p += 2; continue;
            case 't': IM__EMIT('\t'); p += 2; continue;
            case 'u': break;
            default: return im__jr_fail(j, IM_JSON_EBAD, "invalid escape in string", (const char *)p);
            }
            cp = 0;
            for (int i = 2; i < 6; i++) {
                int h = p + i < e ? im__hexval(p[i]) : -1;
                if (h < 0)
                    return im__jr_fail(j, p + i < e ? IM_JSON_EBAD : IM_JSON_EEND,
                                       "invalid \\u escape", (const char *)p);
                cp = cp << 4 | (uint32_t)h;
            }
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return im__jr_fail(j, IM_JSON_EBAD, "lone low surrogate in \\u escape", (const char *)p);
            if (cp >= 0xd800 && cp <= 0xdbff) { /* a pair: \uD8xx\uDCxx */
                uint32_t lo = 0;
                if (p + 12 > e || p[6] != '\\' || p[7] != 'u')
                    return im__jr_fail(j, IM_JSON_EBAD, "lone high surrogate in \\u escape",
                                       (const char *)p);
                for (int i = 8; i < 12; i++) {
                    int h = im__hexval(p[i]);
                    if (h < 0) return im__jr_fail(j, IM_JSON_EBAD, "invalid \\u escape", (const char *)p + 6);
                    lo = lo << 4 | (uint32_t)h;
                }
                if (lo < 0xdc00 || lo > 0xdfff)
                    return im__jr_fail(j, IM_JSON_EBAD, "lone high surrogate in \\u escape",
                                       (const char *)p);
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 12;
            } else {
                p += 6;
            }
            if (cp < 0x80) {
                IM__EMIT(cp);
            } else if (cp < 0x800) {
                IM__EMIT(0xc0 | cp >> 6);
                IM__EMIT(0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                IM__EMIT(0xe0 | cp >> 12);
                IM__EMIT(0x80 | (cp >> 6 & 0x3f));
                IM__EMIT(0x80 | (cp & 0x3f));
            } else {
                IM__EMIT(0xf0 | cp >> 18);
                IM__EMIT(0x80 | (cp >> 12 & 0x3f));
                IM__EMIT(0x80 | (cp >> 6 & 0x3f));
                IM__EMIT(0x80 | (cp & 0x3f));
            }
            continue;
        }
        if (c < 0x20) return im__jr_fail(j, IM_JSON_EBAD, "control character in string", (const char *)p);
        size_t k = 1;
        if (c >= 0x80 && !(k = im__utf8_len(p, (size_t)(e - p))))
            return im__jr_fail(j, IM_JSON_EBAD, "invalid UTF-8 in string", (const char *)p);
        for (size_t i = 0; i < k; i++) IM__EMIT(p[i]);
        p += k;
    }
#undef IM__EMIT
    j->p = (const char *)p + 1;
    if (out) {
        out->ptr = w ? (const char *)s : buf;
        out->len = n;
        if (!w && !room) return -ENOSPC;
    }
    return 0;
}

int im_json_string(im_json *j, im_str *out, char *buf, size_t cap)
{
    int t = im_json_peek(j);
    if (t < 0) return t;
    if (t != IM_JSON_STRING) return im__jr_fail(j, IM_JSON_EBAD, "expected a string", j->p);
    return im__jr_string(j, out, buf, cap);
}

static inline int im__jr_obj_key(im_json *j, im_str *key)
{
    uint64_t bit;
    if (j->err) return j->err;
    if (!j->depth) return im__jr_fail(j, IM_JSON_EBAD, "not inside an object", j->p);
    bit = (uint64_t)1 << (j->depth - 1);
    const char *at = j->p;
    if (at + 1 < j->end && at[0] == ',' && at[1] == '"' && !(j->fresh & bit)) {
        j->p = at + 1; /* the usual: the next key, no blank between */
        goto read_key;
    }
    im__jr_ws(j);
    if (j->p >= j->end) return im__jr_fail(j, IM_JSON_EEND, "unterminated object", j->p);
    if (j->fresh & bit) {
        if (*j->p == '}') {
            j->p++;
            j->fresh &= ~bit;
            j->depth--;
            return 0;
        }
    } else if (*j->p == '}') {
        j->p++;
        j->depth--;
        return 0;
    } else if (*j->p == ',') {
        j->p++;
        im__jr_ws(j);
        if (j->p >= j->end) return im__jr_fail(j, IM_JSON_EEND, "unterminated object", j->p);
    } else {
        return im__jr_fail(j, IM_JSON_EBAD, "expected ',' or '}' in object", j->p);
    }
    j->fresh &= ~bit;
    if (*j->p != '"') return im__jr_fail(j, IM_JSON_EBAD, "expected a string key", j->p);
read_key:;
    const char *open = j->p;
    /* the usual key: plain bytes, then '"' and ':' */
    size_t n = im__jr_plain((const unsigned char *)open + 1, (const unsigned char *)j->end);
    if (open + n + 2 < j->end && open[n + 1] == '"' && open[n + 2] == ':') {
        if (key) {
            key->ptr = open + 1;
            key->len = n;
        }
        j->p = open + n + 3;
        return 1;
    }
    int rc = im__jr_string(j, key, NULL, 0);
    if (rc == -ENOSPC && key) { /* an escaped key in a read-only text: its raw form */
        key->ptr = open + 1;
        key->len = (size_t)(j->p - 1 - key->ptr);
        rc = 0;
    } else if (rc) {
        return rc;
    }
    im__jr_ws(j);
    if (j->p >= j->end) return im__jr_fail(j, IM_JSON_EEND, "unterminated object", j->p);
    if (*j->p != ':') return im__jr_fail(j, IM_JSON_EBAD, "expected ':' after key", j->p);
    j->p++;
    return 1;
}

int im_json_obj_key(im_json *j, im_str *key) { return im__jr_obj_key(j, key); }

int im_json_arr_next(im_json *j)
{
    uint64_t bit;
    if (j->err) return j->err;
    if (!j->depth) return im__jr_fail(j, IM_JSON_EBAD, "not inside an array", j->p);
    bit = (uint64_t)1 << (j->depth - 1);
    im__jr_ws(j);
    if (j->p >= j->end) return im__jr_fail(j, IM_JSON_EEND, "unterminated array", j->p);
    if (*j->p == ']' ) {
        j->p++;
        j->fresh &= ~bit;
        j->depth--;
        return 0;
    }
    if (j->fresh & bit) {
        j->fresh &= ~bit;
        return 1;
    }
    if (*j->p != ',') return im__jr_fail(j, IM_JSON_EBAD, "expected ',' or ']' in array", j->p);
    j->p++;
    return 1;
}

/* 10^i exactly, for the fast path */
static const double im__pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Reads the number at the cursor (a peek said IM_JSON_NUMBER). */
static int im__jr_number(im_json *j, im_json_num *out)
{
    const char *s = j->p, *p = s, *e = j->end;
    int neg = 0, frac_digits = 0, exp_neg = 0, big = 0;
    uint64_t mant = 0;
    long exp10 = 0;
    int digits = 0; /* significant digits in mant */
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (p >= e) return im__jr_fail(j, IM_JSON_EEND, "unterminated number", s);
    if (*p == '0') {
        p++;
        if (p < e && (unsigned)(*p - '0') < 10u)
            return im__jr_fail(j, IM_JSON_EBAD, "leading zero in number", s);
    } else if ((unsigned)(*p - '1') < 9u) {
        while (p < e && (unsigned)(*p - '0') < 10u) {
            if (digits < 19) {
                mant = mant * 10 + (uint64_t)(*p - '0');
                if (mant) digits++;
            } else {
                big = 1;
                exp10++; /* digits past 19 only scale */
            }
            p++;
        }
    } else {
        return im__jr_fail(j, IM_JSON_EBAD, "invalid number", s);
    }
    int has_frac = 0, has_exp = 0;
    if (p < e && *p == '.') {
        has_frac = 1;
        p++;
        if (p >= e || (unsigned)(*p - '0') >= 10u)
            return im__jr_fail(j, p >= e ? IM_JSON_EEND : IM_JSON_EBAD, "digits expected after '.'", p);
        while (p < e && (unsigned)(*p - '0') < 10u) {
            if (digits < 19) {
                mant = mant * 10 + (uint64_t)(*p - '0');
                if (mant) digits++;
                frac_digits++;
            } else {
                big = 1;
            }
            p++;
        }
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        long x = 0;
        has_exp = 1;
        p++;
        if (p < e && (*p == '+' || *p == '-')) exp_neg = *p++ == '-';
        if (p >= e || (unsigned)(*p - '0') >= 10u)
            return im__jr_fail(j, p >= e ? IM_JSON_EEND : IM_JSON_EBAD, "digits expected in exponent", p);
        while (p < e && (unsigned)(*p - '0') < 10u) {
            if (x < 100000000) x = x * 10 + (*p - '0');
            p++;
        }
        exp10 += exp_neg ? -x : x;
    }
    j->p = p;
    if (!out) return 0;
    out->text.ptr = s;
    out->text.len = (size_t)(p - s);
    out->is_int = 0;
    if (!has_frac && !has_exp && !big &&
        (neg ? mant <= (uint64_t)INT64_MAX + 1 : mant <= (uint64_t)INT64_MAX)) {
        out->is_int = 1;
        out->i = neg ? (int64_t)(0 - mant) : (int64_t)mant;
        out->d = neg && !mant ? -0.0 : (double)out->i; /* -0 keeps its sign as a double */
        return 0;
    }
    long e10 = exp10 - frac_digits;
    if (!big && mant < ((uint64_t)1 << 53) && e10 >= -22 && e10 <= 22) {
        /* exact: Clinger's fast path */
        double d = (double)mant;
        d = e10 < 0 ? d / im__pow10[-e10] : d * im__pow10[e10];
        out->d = neg ? -d : d;
        return 0;
    }
    /* everything else: correctly rounded by the C library, in the "C" locale */
    char small[64], *tmp = small;
    size_t n = out->text.len;
    if (n >= sizeof small && !(tmp = malloc(n + 1))) {
        out->d = NAN;
        return im__jr_fail(j, IM_JSON_EBAD, "out of memory reading a number", s);
    }
    memcpy(tmp, s, n);
    tmp[n] = 0;
    out->d = strtod_l(tmp, NULL, im__c_locale());
    if (tmp != small) free(tmp);
    return 0;
}

int im_json_number(im_json *j, im_json_num *out)
{
    int t = im_json_peek(j);
    if (t < 0) return t;
    if (t != IM_JSON_NUMBER) return im__jr_fail(j, IM_JSON_EBAD, "expected a number", j->p);
    return im__jr_number(j, out);
}

static int im__jr_literal(im_json *j, const char *lit, size_t n)
{
    if ((size_t)(j->end - j->p) < n)
        return im__jr_fail(j, memcmp(j->p, lit, (size_t)(j->end - j->p)) ? IM_JSON_EBAD : IM_JSON_EEND,
                           "invalid literal", j->p);
    if (memcmp(j->p, lit, n) != 0) return im__jr_fail(j, IM_JSON_EBAD, "invalid literal", j->p);
    j->p += n;
    return 0;
}

int im_json_bool(im_json *j, int *out)
{
    int t = im_json_peek(j);
    if (t < 0) return t;
    if (t == IM_JSON_TRUE || t == IM_JSON_FALSE) {
        int rc = t == IM_JSON_TRUE ? im__jr_literal(j, "true", 4) : im__jr_literal(j, "false", 5);
        if (rc == 0 && out) *out = t == IM_JSON_TRUE;
        return rc;
    }
    return im__jr_fail(j, IM_JSON_EBAD, "expected true or false", j->p);
}

int im_json_null(im_json *j)
{
    int t = im_json_peek(j);
    if (t < 0) return t;
    if (t != IM_JSON_NULL) return im__jr_fail(j, IM_JSON_EBAD, "expected null", j->p);
    return im__jr_literal(j, "null", 4);
}

int im_json_skip(im_json *j)
{
    int t = im_json_peek(j), r;
    switch (t) {
    case IM_JSON_OBJECT:
        if ((r = im_json_obj_enter(j))) return r;
        while ((r = im_json_obj_key(j, NULL)) == 1)
            if ((r = im_json_skip(j))) return r;
        return r;
    case IM_JSON_ARRAY:
        if ((r = im_json_arr_enter(j))) return r;
        while ((r = im_json_arr_next(j)) == 1)
            if ((r = im_json_skip(j))) return r;
        return r;
    case IM_JSON_STRING: return im__jr_string(j, NULL, NULL, 0);
    case IM_JSON_NUMBER: return im_json_number(j, NULL);
    case IM_JSON_TRUE: return im__jr_literal(j, "true", 4);
    case IM_JSON_FALSE: return im__jr_literal(j, "false", 5);
    case IM_JSON_NULL: return im__jr_literal(j, "null", 4);
    default: return t;
    }
}

int im_json_finish(im_json *j)
{
    if (j->err) return j->err;
    im__jr_ws(j);
    if (j->p != j->end) return im__jr_fail(j, IM_JSON_EBAD, "unexpected data after the JSON value", j->p);
    return 0;
}

int im_json_check(im_json *j, const char *text, size_t len)
{
    im_json_init(j, text, len, 0);
    int rc = im_json_skip(j);
    return rc ? rc : im_json_finish(j);
}
