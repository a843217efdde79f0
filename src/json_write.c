/* json_write.c — the JSON text writer. */

void im_jw_init(im_jw *w, char *buf, size_t cap)
{
    memset(w, 0, sizeof *w);
    w->buf = buf;
    w->cap = buf ? cap : 0;
    w->growable = buf == NULL;
}

void im_jw_free(im_jw *w)
{
    if (w->growable) free(w->buf);
    w->buf = NULL;
    w->cap = w->len = 0;
}

void im_jw_reset(im_jw *w)
{
    w->len = 0;
    w->err = 0;
    w->depth = 0;
    w->nonfirst = w->in_obj = 0;
    w->after_key = 0;
}

/* Makes room for n more bytes; 0 or sets the sticky error. */
static int im__jw_room(im_jw *w, size_t n)
{
    if (w->err) return -1;
    if (w->cap - w->len >= n) return 0;
    if (!w->growable) {
        w->err = -ENOSPC;
        return -1;
    }
    size_t cap = w->cap ? w->cap : 256;
    while (cap - w->len < n) cap *= 2;
    char *nb = realloc(w->buf, cap);
    if (!nb) {
        w->err = -ENOMEM;
        return -1;
    }
    w->buf = nb;
    w->cap = cap;
    return 0;
}

static void im__jw_put(im_jw *w, const char *s, size_t n)
{
    if (im__jw_room(w, n) == 0) {
        memcpy(w->buf + w->len, s, n);
        w->len += n;
    }
}

/* Writes the comma a value needs; refuses a value where a key is expected. */
static int im__jw_value(im_jw *w)
{
    uint64_t bit = (uint64_t)1 << (w->depth & 63);
    if (w->after_key) {
        w->after_key = 0;
        return 0;
    }
    if (w->depth && (w->in_obj & bit)) {
        if (!w->err) w->err = -EINVAL; /* a value without its key */
        return -1;
    }
    if (w->nonfirst & bit) im__jw_put(w, ",", 1);
    w->nonfirst |= bit;
    return 0;
}

static void im__jw_open(im_jw *w, char c, int obj)
{
    if (im__jw_value(w)) return;
    if (w->depth + 1 >= IM_JW_MAX_DEPTH) {
        if (!w->err) w->err = -EINVAL;
        return;
    }
    im__jw_put(w, &c, 1);
    w->depth++;
    uint64_t bit = (uint64_t)1 << w->depth;
    w->nonfirst &= ~bit;
    if (obj) w->in_obj |= bit;
    else w->in_obj &= ~bit;
}

static void im__jw_close(im_jw *w, char c, int obj)
{
    uint64_t bit = (uint64_t)1 << (w->depth & 63);
    if (w->depth == 0 || w->after_key || !!(w->in_obj & bit) != obj) {
        if (!w->err) w->err = -EINVAL;
        return;
    }
    w->depth--;
    im__jw_put(w, &c, 1);
}

void im_jw_obj(im_jw *w) { im__jw_open(w, '{', 1); }
void im_jw_obj_end(im_jw *w) { im__jw_close(w, '}', 1); }
void im_jw_arr(im_jw *w) { im__jw_open(w, '[', 0); }
void im_jw_arr_end(im_jw *w) { im__jw_close(w, ']', 0); }

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one. */
static size_t im__utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) return 0;
        if (c == 0xe0 && s[1] < 0xa0) return 0; /* overlong */
        if (c == 0xed && s[1] > 0x9f) return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && s[1] < 0x90) return 0; /* overlong */
        if (c == 0xf4 && s[1] > 0x8f) return 0; /* past U+10FFFF */
        return 4;
    }
    return 0;
}

/* Bytes the escaped form of c takes (c < 0x80). */
static inline size_t im__jw_esc_len(unsigned c)
{
    if (c >= 0x20 && c != '"' && c != '\\') return 1;
    return c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f'
               ? 2
               : 6;
}

static void im__jw_quoted(im_jw *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i, need = 2;
    /* exact size first, so that a fixed buffer is used to its last byte */
    for (i = 0; i < n;) {
        if (p[i] < 0x80) {
            need += im__jw_esc_len(p[i++]);
        } else {
            size_t k = im__utf8_len(p + i, n - i);
            need += k ? k : 6;
            i += k ? k : 1;
        }
    }
    if (im__jw_room(w, need)) return;
    char *o = w->buf + w->len;
    *o++ = '"';
    for (i = 0; i < n;) {
        unsigned c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            *o++ = (char)c;
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = im__utf8_len(p + i, n - i);
            if (k == 0) { /* invalid: U+FFFD */
                memcpy(o, "\\ufffd", 6);
                o += 6;
                i++;
            } else {
                memcpy(o, p + i, k);
                o += k;
                i += k;
            }
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
        i++;
    }
    *o++ = '"';
    w->len = (size_t)(o - w->buf);
}

void im_jw_keyn(im_jw *w, const char *key, size_t n)
{
    uint64_t bit = (uint64_t)1 << (w->depth & 63);
    if (w->depth == 0 || !(w->in_obj & bit) || w->after_key) {
        if (!w->err) w->err = -EINVAL;
        return;
    }
    if (w->nonfirst & bit) im__jw_put(w, ",", 1);
    w->nonfirst |= bit;
    im__jw_quoted(w, key, n);
    im__jw_put(w, ":", 1);
    w->after_key = 1;
}

void im_jw_key(im_jw *w, const char *key) { im_jw_keyn(w, key, strlen(key)); }

void im_jw_strn(im_jw *w, const char *s, size_t n)
{
    if (im__jw_value(w) == 0) im__jw_quoted(w, s, n);
}

void im_jw_str(im_jw *w, const char *s)
{
    if (!s) im_jw_null(w);
    else im_jw_strn(w, s, strlen(s));
}

/* Writes v in decimal to the end of out (at most 20 bytes); returns the length. */
static size_t im__u64_dec(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

void im_jw_uint(im_jw *w, uint64_t v)
{
    char t[21];
    if (im__jw_value(w) == 0) im__jw_put(w, t, im__u64_dec(t, v));
}

void im_jw_int(im_jw *w, int64_t v)
{
    char t[21];
    size_t n = 0;
    if (im__jw_value(w)) return;
    if (v < 0) t[n++] = '-';
    n += im__u64_dec(t + n, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v);
    im__jw_put(w, t, n);
}

/* The shortest %.*g text, from prec to last digits, that reads back as v (as a float when
 * single): 0.1 stays 0.1. NaN and infinities, which JSON lacks, are null. */
static void im__jw_real(im_jw *w, double v, int prec, int last, int single)
{
    char t[32];
    int n;
    if (isnan(v) || isinf(v)) {
        im_jw_null(w);
        return;
    }
    if (im__jw_value(w)) return;
    for (;; prec++) {
        n = snprintf(t, sizeof t, "%.*g", prec, v);
        if (prec == last || (single ? strtof(t, NULL) == (float)v : strtod(t, NULL) == v)) break;
    }
    for (int i = 0; i < n; i++) /* a locale with a decimal comma must not leak into JSON */
        if (t[i] == ',') t[i] = '.';
    im__jw_put(w, t, (size_t)n);
}

void im_jw_double(im_jw *w, double v) { im__jw_real(w, v, 15, 17, 0); }

void im_jw_float(im_jw *w, float v) { im__jw_real(w, (double)v, 6, 9, 1); }

void im_jw_bool(im_jw *w, int v)
{
    if (im__jw_value(w) == 0) im__jw_put(w, v ? "true" : "false", v ? 4 : 5);
}

void im_jw_null(im_jw *w)
{
    if (im__jw_value(w) == 0) im__jw_put(w, "null", 4);
}

void im_jw_raw(im_jw *w, const char *json, size_t n)
{
    if (im__jw_value(w) == 0) im__jw_put(w, json, n);
}

int im_jw_error(const im_jw *w)
{
    if (w->err) return w->err;
    return w->depth || w->after_key ? -EINVAL : 0;
}
