/* http_parse.c — the request head parser and the chunked decoder. Strict by design: whatever
 * two HTTP implementations could read differently (a request-smuggling vector) is refused. */

/* Character classes, one table lookup per byte. */
enum {
    IM__C_TCHAR = 1,  /* token character (RFC 9110 section 5.6.2) */
    IM__C_VALUE = 2,  /* field-value byte: HTAB, SP, VCHAR, obs-text */
    IM__C_TARGET = 4, /* request-target byte: VCHAR except '#' */
    IM__C_HEX = 8
};

static const unsigned char im__cc[256] = {
    ['\t'] = IM__C_VALUE, [' '] = IM__C_VALUE,
#define IM__T (IM__C_TCHAR | IM__C_VALUE | IM__C_TARGET)
#define IM__V (IM__C_VALUE | IM__C_TARGET)
    ['!'] = IM__T, ['"'] = IM__V, ['#'] = IM__C_VALUE, ['$'] = IM__T, ['%'] = IM__T,
    ['&'] = IM__T, ['\''] = IM__T, ['('] = IM__V, [')'] = IM__V, ['*'] = IM__T, ['+'] = IM__T,
    [','] = IM__V, ['-'] = IM__T, ['.'] = IM__T, ['/'] = IM__V, [':'] = IM__V, [';'] = IM__V,
    ['<'] = IM__V, ['='] = IM__V, ['>'] = IM__V, ['?'] = IM__V, ['@'] = IM__V, ['['] = IM__V,
    ['\\'] = IM__V, [']'] = IM__V, ['^'] = IM__T, ['_'] = IM__T, ['`'] = IM__T, ['{'] = IM__V,
    ['|'] = IM__T, ['}'] = IM__V, ['~'] = IM__T,
    ['0'] = IM__T | IM__C_HEX, ['1'] = IM__T | IM__C_HEX, ['2'] = IM__T | IM__C_HEX,
    ['3'] = IM__T | IM__C_HEX, ['4'] = IM__T | IM__C_HEX, ['5'] = IM__T | IM__C_HEX,
    ['6'] = IM__T | IM__C_HEX, ['7'] = IM__T | IM__C_HEX, ['8'] = IM__T | IM__C_HEX,
    ['9'] = IM__T | IM__C_HEX,
    ['A'] = IM__T | IM__C_HEX, ['B'] = IM__T | IM__C_HEX, ['C'] = IM__T | IM__C_HEX,
    ['D'] = IM__T | IM__C_HEX, ['E'] = IM__T | IM__C_HEX, ['F'] = IM__T | IM__C_HEX,
    ['G'] = IM__T, ['H'] = IM__T, ['I'] = IM__T, ['J'] = IM__T, ['K'] = IM__T, ['L'] = IM__T,
    ['M'] = IM__T, ['N'] = IM__T, ['O'] = IM__T, ['P'] = IM__T, ['Q'] = IM__T, ['R'] = IM__T,
    ['S'] = IM__T, ['T'] = IM__T, ['U'] = IM__T, ['V'] = IM__T, ['W'] = IM__T, ['X'] = IM__T,
    ['Y'] = IM__T, ['Z'] = IM__T,
    ['a'] = IM__T | IM__C_HEX, ['b'] = IM__T | IM__C_HEX, ['c'] = IM__T | IM__C_HEX,
    ['d'] = IM__T | IM__C_HEX, ['e'] = IM__T | IM__C_HEX, ['f'] = IM__T | IM__C_HEX,
    ['g'] = IM__T, ['h'] = IM__T, ['i'] = IM__T, ['j'] = IM__T, ['k'] = IM__T, ['l'] = IM__T,
    ['m'] = IM__T, ['n'] = IM__T, ['o'] = IM__T, ['p'] = IM__T, ['q'] = IM__T, ['r'] = IM__T,
    ['s'] = IM__T, ['t'] = IM__T, ['u'] = IM__T, ['v'] = IM__T, ['w'] = IM__T, ['x'] = IM__T,
    ['y'] = IM__T, ['z'] = IM__T,
#undef IM__T
#undef IM__V
    /* obs-text: allowed in field values only */
    [0x80] = IM__C_VALUE, [0x81] = IM__C_VALUE, [0x82] = IM__C_VALUE, [0x83] = IM__C_VALUE,
    [0x84] = IM__C_VALUE, [0x85] = IM__C_VALUE, [0x86] = IM__C_VALUE, [0x87] = IM__C_VALUE,
    [0x88] = IM__C_VALUE, [0x89] = IM__C_VALUE, [0x8a] = IM__C_VALUE, [0x8b] = IM__C_VALUE,
    [0x8c] = IM__C_VALUE, [0x8d] = IM__C_VALUE, [0x8e] = IM__C_VALUE, [0x8f] = IM__C_VALUE,
    [0x90] = IM__C_VALUE, [0x91] = IM__C_VALUE, [0x92] = IM__C_VALUE, [0x93] = IM__C_VALUE,
    [0x94] = IM__C_VALUE, [0x95] = IM__C_VALUE, [0x96] = IM__C_VALUE, [0x97] = IM__C_VALUE,
    [0x98] = IM__C_VALUE, [0x99] = IM__C_VALUE, [0x9a] = IM__C_VALUE, [0x9b] = IM__C_VALUE,
    [0x9c] = IM__C_VALUE, [0x9d] = IM__C_VALUE, [0x9e] = IM__C_VALUE, [0x9f] = IM__C_VALUE,
    [0xa0] = IM__C_VALUE, [0xa1] = IM__C_VALUE, [0xa2] = IM__C_VALUE, [0xa3] = IM__C_VALUE,
    [0xa4] = IM__C_VALUE, [0xa5] = IM__C_VALUE, [0xa6] = IM__C_VALUE, [0xa7] = IM__C_VALUE,
    [0xa8] = IM__C_VALUE, [0xa9] = IM__C_VALUE, [0xaa] = IM__C_VALUE, [0xab] = IM__C_VALUE,
    [0xac] = IM__C_VALUE, [0xad] = IM__C_VALUE, [0xae] = IM__C_VALUE, [0xaf] = IM__C_VALUE,
    [0xb0] = IM__C_VALUE, [0xb1] = IM__C_VALUE, [0xb2] = IM__C_VALUE, [0xb3] = IM__C_VALUE,
    [0xb4] = IM__C_VALUE, [0xb5] = IM__C_VALUE, [0xb6] = IM__C_VALUE, [0xb7] = IM__C_VALUE,
    [0xb8] = IM__C_VALUE, [0xb9] = IM__C_VALUE, [0xba] = IM__C_VALUE, [0xbb] = IM__C_VALUE,
    [0xbc] = IM__C_VALUE, [0xbd] = IM__C_VALUE, [0xbe] = IM__C_VALUE, [0xbf] = IM__C_VALUE,
    [0xc0] = IM__C_VALUE, [0xc1] = IM__C_VALUE, [0xc2] = IM__C_VALUE, [0xc3] = IM__C_VALUE,
    [0xc4] = IM__C_VALUE, [0xc5] = IM__C_VALUE, [0xc6] = IM__C_VALUE, [0xc7] = IM__C_VALUE,
    [0xc8] = IM__C_VALUE, [0xc9] = IM__C_VALUE, [0xca] = IM__C_VALUE, [0xcb] = IM__C_VALUE,
    [0xcc] = IM__C_VALUE, [0xcd] = IM__C_VALUE, [0xce] = IM__C_VALUE, [0xcf] = IM__C_VALUE,
    [0xd0] = IM__C_VALUE, [0xd1] = IM__C_VALUE, [0xd2] = IM__C_VALUE, [0xd3] = IM__C_VALUE,
    [0xd4] = IM__C_VALUE, [0xd5] = IM__C_VALUE, [0xd6] = IM__C_VALUE, [0xd7] = IM__C_VALUE,
    [0xd8] = IM__C_VALUE, [0xd9] = IM__C_VALUE, [0xda] = IM__C_VALUE, [0xdb] = IM__C_VALUE,
    [0xdc] = IM__C_VALUE, [0xdd] = IM__C_VALUE, [0xde] = IM__C_VALUE, [0xdf] = IM__C_VALUE,
    [0xe0] = IM__C_VALUE, [0xe1] = IM__C_VALUE, [0xe2] = IM__C_VALUE, [0xe3] = IM__C_VALUE,
    [0xe4] = IM__C_VALUE, [0xe5] = IM__C_VALUE, [0xe6] = IM__C_VALUE, [0xe7] = IM__C_VALUE,
    [0xe8] = IM__C_VALUE, [0xe9] = IM__C_VALUE, [0xea] = IM__C_VALUE, [0xeb] = IM__C_VALUE,
    [0xec] = IM__C_VALUE, [0xed] = IM__C_VALUE, [0xee] = IM__C_VALUE, [0xef] = IM__C_VALUE,
    [0xf0] = IM__C_VALUE, [0xf1] = IM__C_VALUE, [0xf2] = IM__C_VALUE, [0xf3] = IM__C_VALUE,
    [0xf4] = IM__C_VALUE, [0xf5] = IM__C_VALUE, [0xf6] = IM__C_VALUE, [0xf7] = IM__C_VALUE,
    [0xf8] = IM__C_VALUE, [0xf9] = IM__C_VALUE, [0xfa] = IM__C_VALUE, [0xfb] = IM__C_VALUE,
    [0xfc] = IM__C_VALUE, [0xfd] = IM__C_VALUE, [0xfe] = IM__C_VALUE, [0xff] = IM__C_VALUE,
};

#define IM__IS(c, cls) (im__cc[(unsigned char)(c)] & (cls))

/* Tests count the bytes the head parser is handed, to measure work rather than time; a test
 * defines this before including the implementation. */
#ifndef IM__PARSE_HOOK
#define IM__PARSE_HOOK(bytes) ((void)0)
#endif

static int im__head_fail(im_http_head *h, int status, const char *msg, const char *buf,
                         const char *at)
{
    h->status = status;
    h->error = msg;
    h->error_offset = (size_t)(at - buf);
    return IM_HTTP_ERROR;
}

/* Splits a comma-separated header list and calls back per non-empty element (OWS trimmed).
 * Returns the first non-zero callback result. */
typedef int (*im__list_fn)(im_http_head *h, const char *tok, size_t n);

static int im__each_token(im_http_head *h, im_str v, im__list_fn fn)
{
    size_t i = 0;
    while (i <= v.len) {
        size_t s = i, e;
        int r;
        while (i < v.len && v.ptr[i] != ',') i++;
        e = i;
        while (s < e && (v.ptr[s] == ' ' || v.ptr[s] == '\t')) s++;
        while (e > s && (v.ptr[e - 1] == ' ' || v.ptr[e - 1] == '\t')) e--;
        if (e > s && (r = fn(h, v.ptr + s, e - s)) != 0) return r;
        i++;
    }
    return 0;
}

static int im__conn_token(im_http_head *h, const char *t, size_t n)
{
    if (n == 5 && im__ieq_lower(t, "close", 5)) h->conn_close = 1;
    else if (n == 10 && im__ieq_lower(t, "keep-alive", 10)) h->conn_keep_alive = 1;
    return 0;
}

/* Transfer-Encoding: "chunked" must come last and once; any other coding is unknown here.
 * Results: 0 ok so far, 1 chunked not last or repeated (400), 2 unknown coding (501). */
static int im__te_token(im_http_head *h, const char *t, size_t n)
{
    if (h->chunked) return 1; /* something after chunked, or chunked twice */
    if (n == 7 && im__ieq_lower(t, "chunked", 7)) {
        h->chunked = 1;
        return 0;
    }
    return 2;
}

static int im__parse_content_length(im_str v, uint64_t *out)
{
    uint64_t n = 0;
    if (v.len == 0 || v.len > 19) return -1; /* 19 digits always fit in 63 bits */
    for (size_t i = 0; i < v.len; i++) {
        unsigned d = (unsigned)((unsigned char)v.ptr[i] - '0');
        if (d > 9) return -1;
        n = n * 10 + d;
    }
    if (n > (uint64_t)INT64_MAX) return -1;
    *out = n;
    return 0;
}

int im_http_parse_head(const char *buf, size_t len, im_http_head *h, im_header *hdrs,
                       unsigned max_headers, size_t max_bytes)
{
    const char *p = buf, *end = buf + len, *t;
    int truncated = 0, hosts = 0, te_seen = 0, te_result = 0;
    memset(h, 0, sizeof *h);
    h->headers = hdrs;
    IM__PARSE_HOOK(max_bytes && len > max_bytes ? max_bytes : len);
    if (max_bytes && len > max_bytes) {
        end = buf + max_bytes; /* what lies past the limit is never looked at */
        truncated = 1;
    }
    while (end - p >= 2 && p[0] == '\r' && p[1] == '\n') p += 2;
    if (end - p == 1 && *p == '\r') goto line_incomplete; /* half of a blank line */

    /* request-line = method SP request-target SP HTTP-version CRLF */
    t = p;
    while (p < end && IM__IS(*p, IM__C_TCHAR)) p++;
    if (p == end) goto line_incomplete;
    if (*p != ' ' || p == t) return im__head_fail(h, 400, "invalid method token", buf, p);
    h->method.ptr = t;
    h->method.len = (size_t)(p - t);
    t = ++p;
    while (p < end && IM__IS(*p, IM__C_TARGET)) p++;
    if (p == end) goto line_incomplete;
    if (*p != ' ' || p == t)
        return im__head_fail(h, 400, "invalid character in request target", buf, p);
    h->target.ptr = t;
    h->target.len = (size_t)(p - t);
    p++;
    if (end - p < 10) {
        size_t have = (size_t)(end - p);
        if (memcmp(p, "HTTP/", have < 5 ? have : 5) != 0)
            return im__head_fail(h, 400, "malformed HTTP version", buf, p);
        goto line_incomplete;
    }
    if (memcmp(p, "HTTP/", 5) != 0 || (unsigned)(p[5] - '0') > 9u || p[6] != '.' || (unsigned)(p[7] - '0') > 9u ||
        p[8] != '\r' || p[9] != '\n') {
        if (p[8] == '\n') return im__head_fail(h, 400, "bare LF in request line", buf, p + 8);
        return im__head_fail(h, 400, "malformed HTTP version", buf, p);
    }
    if (p[5] != '1') return im__head_fail(h, 505, "HTTP version not supported", buf, p);
    h->minor = p[7] == '0' ? 0 : 1;
    p += 10;

    /* the request target: origin-form, absolute-form, or '*' for OPTIONS */
    t = h->target.ptr;
    if (t[0] == '/') {
        h->path = h->target;
    } else if (h->target.len == 1 && t[0] == '*') {
        if (!(h->method.len == 7 && memcmp(h->method.ptr, "OPTIONS", 7) == 0))
            return im__head_fail(h, 400, "'*' target is only for OPTIONS", buf, t);
        h->path = h->target;
    } else {
        size_t n = h->target.len, i;
        if (n > 7 && im__ieq_lower(t, "http://", 7)) i = 7;
        else if (n > 8 && im__ieq_lower(t, "https://", 8)) i = 8;
        else return im__head_fail(h, 400, "request target must start with '/'", buf, t);
        while (i < n && t[i] != '/' && t[i] != '?') i++;
        if (i < n && t[i] == '/') {
            h->path.ptr = t + i;
            h->path.len = n - i;
        } else {
            h->path.ptr = "/";
            h->path.len = 1;
            if (i < n) { /* "http://host?q": the query follows directly */
                h->query.ptr = t + i + 1;
                h->query.len = n - i - 1;
            }
        }
    }
    if (h->path.ptr[0] == '/') {
        const char *q = memchr(h->path.ptr, '?', h->path.len);
        if (q) {
            h->query.ptr = q + 1;
            h->query.len = (size_t)(h->path.ptr + h->path.len - q - 1);
            h->path.len = (size_t)(q - h->path.ptr);
        }
    }

    /* header fields */
    for (;;) {
        im_header *f;
        const char *v;
        if (p == end) goto head_incomplete;
        if (*p == '\r') {
            if (p + 1 == end) goto head_incomplete;
            if (p[1] != '\n') return im__head_fail(h, 400, "bare CR in header", buf, p);
            p += 2;
            break;
        }
        if (*p == '\n') return im__head_fail(h, 400, "bare LF in header", buf, p);
        if (*p == ' ' || *p == '\t')
            return im__head_fail(h, 400, "obsolete line folding is not allowed", buf, p);
        t = p;
        while (p < end && IM__IS(*p, IM__C_TCHAR)) p++;
        if (p == end) goto head_incomplete;
        if (*p != ':') {
            if (*p == ' ' || *p == '\t')
                return im__head_fail(h, 400, "whitespace between header name and colon", buf, p);
            return im__head_fail(h, 400, "invalid character in header name", buf, p);
        }
        if (p == t) return im__head_fail(h, 400, "empty header name", buf, p);
        if (h->num_headers == max_headers)
            return im__head_fail(h, 431, "too many header fields", buf, t);
        f = &hdrs[h->num_headers++];
        f->name.ptr = t;
        f->name.len = (size_t)(p - t);
        p++;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        v = p;
        while (p < end && IM__IS(*p, IM__C_VALUE)) p++;
        if (p == end) goto head_incomplete;
        if (*p != '\r') {
            if (*p == '\n') return im__head_fail(h, 400, "bare LF in header", buf, p);
            if (*p == 0) return im__head_fail(h, 400, "NUL in header value", buf, p);
            return im__head_fail(h, 400, "control character in header value", buf, p);
        }
        if (p + 1 == end) goto head_incomplete;
        if (p[1] != '\n') return im__head_fail(h, 400, "bare CR in header", buf, p);
        f->value.ptr = v;
        f->value.len = (size_t)(p - v);
        while (f->value.len && (v[f->value.len - 1] == ' ' || v[f->value.len - 1] == '\t'))
            f->value.len--;
        p += 2;

        /* the fields that decide framing and connection handling */
        switch (f->name.len) {
        case 4:
            if (im__ieq_lower(t, "host", 4)) hosts++;
            break;
        case 6:
            if (im__ieq_lower(t, "expect", 6)) {
                if (f->value.len == 12 && im__ieq_lower(f->value.ptr, "100-continue", 12))
                    h->expect_continue = 1;
                else
                    h->expect_unknown = 1;
            }
            break;
        case 10:
            if (im__ieq_lower(t, "connection", 10)) im__each_token(h, f->value, im__conn_token);
            break;
        case 14:
            if (im__ieq_lower(t, "content-length", 14)) {
                if (h->has_content_length)
                    return im__head_fail(h, 400, "more than one Content-Length", buf, t);
                if (im__parse_content_length(f->value, &h->content_length))
                    return im__head_fail(h, 400, "invalid Content-Length", buf, v);
                h->has_content_length = 1;
            }
            break;
        case 17:
            if (im__ieq_lower(t, "transfer-encoding", 17)) {
                if (te_seen++)
                    return im__head_fail(h, 400, "more than one Transfer-Encoding", buf, t);
                te_result = im__each_token(h, f->value, im__te_token);
                if (te_result == 0 && !h->chunked) te_result = 2; /* empty list */
            }
            break;
        default:
            break;
        }
    }

    /* whole-head rules (RFC 9112 sections 3.2 and 6.1) */
    if (hosts > 1 || (hosts == 0 && h->minor == 1))
        return im__head_fail(h, 400, hosts ? "more than one Host" : "missing Host header", buf,
                             h->method.ptr);
    if (te_seen) {
        if (h->minor == 0)
            return im__head_fail(h, 400, "Transfer-Encoding in an HTTP/1.0 request", buf,
                                 h->method.ptr);
        if (h->has_content_length)
            return im__head_fail(h, 400, "both Content-Length and Transfer-Encoding", buf,
                                 h->method.ptr);
        if (te_result == 1)
            return im__head_fail(h, 400, "chunked must be the last transfer coding, once", buf,
                                 h->method.ptr);
        if (te_result == 2)
            return im__head_fail(h, 501, "unsupported transfer coding", buf, h->method.ptr);
    }
    return (int)(p - buf);

line_incomplete:
    if (truncated) return im__head_fail(h, 414, "request line too long", buf, end);
    return IM_HTTP_INCOMPLETE;
head_incomplete:
    if (truncated) return im__head_fail(h, 431, "request header block too large", buf, end);
    return IM_HTTP_INCOMPLETE;
}

/* chunked decoder states */
enum {
    IM__CH_SIZE = 0, /* hex digits of a chunk size */
    IM__CH_SIZE_WS,  /* whitespace after the digits: only more of it, ';' or CR may follow */
    IM__CH_EXT,      /* an extension, up to CR */
    IM__CH_SIZE_LF,
    IM__CH_DATA,
    IM__CH_DATA_CR,
    IM__CH_DATA_LF,
    IM__CH_TRAILER, /* start of a trailer line, or the final CRLF */
    IM__CH_TNAME,
    IM__CH_TVALUE,
    IM__CH_TLF,
    IM__CH_END_LF,
    IM__CH_DONE
};

static int im__chunk_fail(im_http_chunked *d, int status, const char *msg)
{
    d->status = status;
    d->error = msg;
    return IM_HTTP_ERROR;
}

int im_http_decode_chunked(im_http_chunked *d, char *dst, const char *src, size_t n,
                           size_t *consumed, size_t *produced)
{
    size_t i = 0, o = 0;
    uint32_t max_line = d->max_line ? d->max_line : 4096;
    uint32_t max_trailer = d->max_trailer ? d->max_trailer : 16384;
    int r = 0;
    while (i < n && d->state != IM__CH_DONE) {
        unsigned char c = (unsigned char)src[i];
        if (d->state == IM__CH_DATA) {
            size_t k = n - i < d->size ? n - i : (size_t)d->size;
            if (dst + o != src + i) memmove(dst + o, src + i, k);
            i += k;
            o += k;
            d->size -= k;
            if (d->size == 0) d->state = IM__CH_DATA_CR;
            continue;
        }
        i++;
        if (d->state >= IM__CH_TRAILER && ++d->trailer > max_trailer) {
            r = im__chunk_fail(d, 431, "trailer section too large");
            break;
        }
        switch (d->state) {
        case IM__CH_SIZE:
            if (IM__IS(c, IM__C_HEX)) {
                int v = im__hexval(c);
                if (d->size > (UINT64_MAX >> 4)) {
                    r = im__chunk_fail(d, 400, "chunk size overflows");
                    goto out;
                }
                d->size = d->size << 4 | (uint64_t)v;
                if (d->digits < 255) d->digits++;
                if (++d->line > max_line) {
                    r = im__chunk_fail(d, 400, "chunk size line too long");
                    goto out;
                }
                continue;
            }
            if (d->digits == 0) {
                r = im__chunk_fail(d, 400, "missing chunk size");
                goto out;
            }
            if (c == '\r') d->state = IM__CH_SIZE_LF;
            else if (c == ';') d->state = IM__CH_EXT;
            else if (c == ' ' || c == '\t') d->state = IM__CH_SIZE_WS;
            else {
                r = im__chunk_fail(d, 400, "invalid chunk size");
                goto out;
            }
            break;
        case IM__CH_SIZE_WS: /* "5 ;ext" is allowed (BWS), "5 6" is not: it could read as 0x56 */
            if (++d->line > max_line) {
                r = im__chunk_fail(d, 400, "chunk size line too long");
                goto out;
            }
            if (c == '\r') d->state = IM__CH_SIZE_LF;
            else if (c == ';') d->state = IM__CH_EXT;
            else if (c != ' ' && c != '\t') {
                r = im__chunk_fail(d, 400, "invalid chunk size");
                goto out;
            }
            break;
        case IM__CH_EXT:
            if (++d->line > max_line) {
                r = im__chunk_fail(d, 400, "chunk size line too long");
                goto out;
            }
            if (c == '\r') d->state = IM__CH_SIZE_LF;
            else if (!IM__IS(c, IM__C_VALUE)) {
                r = im__chunk_fail(d, 400, "invalid chunk extension");
                goto out;
            }
            break;
        case IM__CH_SIZE_LF:
            if (c != '\n') {
                r = im__chunk_fail(d, 400, "bare CR after chunk size");
                goto out;
            }
            d->line = 0;
            d->digits = 0;
            if (d->size == 0) {
                d->state = IM__CH_TRAILER;
                break;
            }
            if (d->max_total && d->size > d->max_total - d->total) {
                r = im__chunk_fail(d, 413, "request body too large");
                goto out;
            }
            d->total += d->size;
            d->state = IM__CH_DATA;
            break;
        case IM__CH_DATA_CR:
            if (c != '\r') {
                r = im__chunk_fail(d, 400, "missing CRLF after chunk data");
                goto out;
            }
            d->state = IM__CH_DATA_LF;
            break;
        case IM__CH_DATA_LF:
            if (c != '\n') {
                r = im__chunk_fail(d, 400, "missing CRLF after chunk data");
                goto out;
            }
            d->state = IM__CH_SIZE;
            break;
        case IM__CH_TRAILER:
            if (c == '\r') d->state = IM__CH_END_LF;
            else if (IM__IS(c, IM__C_TCHAR)) d->state = IM__CH_TNAME;
            else {
                r = im__chunk_fail(d, 400, "invalid trailer field");
                goto out;
            }
            break;
        case IM__CH_TNAME:
            if (c == ':') d->state = IM__CH_TVALUE;
            else if (!IM__IS(c, IM__C_TCHAR)) {
                r = im__chunk_fail(d, 400, "invalid trailer field name");
                goto out;
            }
            break;
        case IM__CH_TVALUE:
            if (c == '\r') d->state = IM__CH_TLF;
            else if (!IM__IS(c, IM__C_VALUE)) {
                r = im__chunk_fail(d, 400, "invalid character in trailer field");
                goto out;
            }
            break;
        case IM__CH_TLF:
        case IM__CH_END_LF:
            if (c != '\n') {
                r = im__chunk_fail(d, 400, "bare CR in trailer section");
                goto out;
            }
            d->state = d->state == IM__CH_TLF ? IM__CH_TRAILER : IM__CH_DONE;
            break;
        default:
            break;
        }
    }
    if (d->state == IM__CH_DONE) r = 1;
out:
    *consumed = i;
    *produced = o;
    return r;
}
