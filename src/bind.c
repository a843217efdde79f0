/* bind.c — binding requests into generated argument structs, FastAPI-shaped validation
 * errors, and running annotated endpoints in their modes (on the loop or an executor). */

/* ---- the per-request arena: strings, arrays, argument and result structs ---- */

static void *im__arena_alloc(im__arena *a, size_t n)
{
    im__ablock *b = a->head;
    if (n > ((size_t)1 << 40)) return NULL; /* also keeps the rounding below from wrapping */
    n = (n + 15) & ~(size_t)15;
    if (!b || b->cap - b->used < n) {
        size_t cap = b ? b->cap * 2 : 4096;
        if (cap < n) cap = n;
        if (cap > ((size_t)1 << 40) || !(b = malloc(sizeof *b + cap))) return NULL;
        b->cap = cap;
        a->bytes += sizeof *b + cap;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

static void im__arena_free(im__arena *a)
{
    while (a->head) {
        im__ablock *b = a->head;
        a->head = b->next;
        free(b);
    }
    a->bytes = 0;
}

/* Frees all but one block (kept, emptied, for the next request). */
static void im__arena_reset(im__arena *a)
{
    im__ablock *b = a->head, *keep = NULL;
    while (b) {
        im__ablock *next = b->next;
        if (!next && b->cap <= 65536) keep = b; /* the first, small block */
        else free(b);
        b = next;
    }
    if (keep) {
        keep->used = 0;
        keep->next = NULL;
    }
    a->head = keep;
    a->bytes = keep ? sizeof *keep + keep->cap : 0;
}

/* ---- binding ---- */

#define IM__BIND_DEPTH 66 /* "body", 64 levels of JSON, the field: every loc fits */
#define IM__BIND_MAX_ERRORS 64

struct im_bind {
    im_ctx *ctx;
    const im_endpoint *ep;
    im_json j;          /* the body */
    int has_body;
    int is_npy;         /* the ndarray argument's body: 1 application/x-npy, 2 float64s */
    const char *root;   /* "body", "query" or "path": the first element of every loc */
    struct {
        const char *name; /* NULL: an index */
        size_t len;
        size_t index;
    } loc[IM__BIND_DEPTH];
    unsigned nloc;
    im_jw errs;         /* the "detail" array's items, comma-separated */
    unsigned nerrs;
    int oom;            /* memory ran out while binding: 503, not the client's fault */
    int too_big;        /* the request needs more than its budget: 413 */
    size_t budget;      /* bytes the binder may still allocate for this request */
};

/* Memory for what the binder builds, within the request's budget (arena_ratio times its
 * bytes plus arena_extra_bytes): a small body must not turn into a large allocation (an
 * array of empty objects bound into wide structs). NULL with too_big or oom set. */
static void *im__bind_alloc(im_bind *b, size_t n)
{
    void *p;
    if (n > b->budget) {
        b->too_big = 1;
        return NULL;
    }
    if (!(p = im__arena_alloc(&b->ctx->arena, n))) {
        b->oom = 1;
        return NULL;
    }
    b->budget -= n;
    return p;
}


int im_call_status(im_call *call, int status)
{
    if (!call || status < 200 || status > 299) return -EINVAL;
    if (call->pw) return -ENOTSUP; /* the worker's answer crosses without one */
    call->ok_status = (uint16_t)status;
    return 0;
}

int im_call_header(im_call *call, const char *name, const char *value)
{
    if (!call || !name || !value) return -EINVAL;
    if (call->pw) return -ENOTSUP;
    if (call->ctx) return im_res_header(call->ctx, name, value); /* inline: on the answer */
    if (!im__is_token(name) || strpbrk(value, "\r\n")) return -EINVAL;
    size_t nl = strlen(name), vl = strlen(value), need = call->hdrs_len + nl + vl + 4;
    if (need > 16384) return -ENOSPC;
    char *h = im__arena_alloc(call->arena, need + 1); /* the lines so far, and this one */
    if (!h) return -ENOMEM;
    if (call->hdrs_len) memcpy(h, call->hdrs, call->hdrs_len);
    snprintf(h + call->hdrs_len, need + 1 - call->hdrs_len, "%s: %s\r\n", name, value);
    call->hdrs = h;
    call->hdrs_len = need;
    return 0;
}

int im_call_fail(im_call *call, int status, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof tmp) n = sizeof tmp - 1;
    call->status = status >= 400 && status <= 599 ? status : 500;
    if ((call->detail = im__arena_alloc(call->arena, (size_t)n + 1))) memcpy(call->detail, tmp, (size_t)n + 1);
    return call->status;
}

void *im_call_alloc(im_call *call, size_t n) { return im__arena_alloc(call->arena, n ? n : 1); }
im_ctx *im_call_ctx(im_call *call) { return call->ctx; }
const char *im_call_name(const im_call *call) { return call->ep->name; }

static void im__bind_push(im_bind *b, const char *name, size_t len, size_t index)
{
    if (b->nloc < IM__BIND_DEPTH) {
        b->loc[b->nloc].name = name;
        b->loc[b->nloc].len = len;
        b->loc[b->nloc].index = index;
    }
    b->nloc++;
}

static void im__bind_pop(im_bind *b) { b->nloc--; }

/* The first element of an error's loc for each IM_IN_*, as FastAPI names them. */
static const char *const im__in_root[] = {"body", "query", "path", "header", "cookie"};

/* Records one error: {"type", "loc", "msg", "input"?, "ctx"?}. The input is raw JSON text
 * (input, input_len; NULL for none) or, when str is not NULL, a string value to quote. ctxj is
 * a JSON object text (may be NULL). */
static void im__bind_error_in(im_bind *b, const char *type, const char *msg, const char *input,
                              size_t input_len, const im_str *str, const char *ctxj)
{
    im_jw *w = &b->errs;
    if (b->nerrs++ >= IM__BIND_MAX_ERRORS) return;
    if (b->nerrs == 1) im_jw_arr(w); /* opened with the first error: nothing to do without */
    im_jw_obj(w);
    im_jw_key(w, "type");
    im_jw_str(w, type);
    im_jw_key(w, "loc");
    im_jw_arr(w);
    im_jw_str(w, b->root);
    for (unsigned i = 0; i < b->nloc && i < IM__BIND_DEPTH; i++) {
        if (!b->loc[i].name) im_jw_uint(w, b->loc[i].index);
        else if (b->loc[i].len == SIZE_MAX) im_jw_str(w, b->loc[i].name); /* a field's name */
        else im_jw_strn(w, b->loc[i].name, b->loc[i].len);                /* a key as sent */
    }
    im_jw_arr_end(w);
    im_jw_key(w, "msg");
    im_jw_str(w, msg);
    if (str) {
        im_jw_key(w, "input");
        im_jw_strn(w, str->ptr, str->len < 200 ? str->len : 200);
    } else if (input) {
        im_jw_key(w, "input");
        im_jw_raw(w, input, input_len);
    }
    if (ctxj) {
        im_jw_key(w, "ctx");
        im_jw_raw(w, ctxj, strlen(ctxj));
    }
    im_jw_obj_end(w);
}

static void im__bind_error(im_bind *b, const char *type, const char *msg, const char *input,
                           size_t input_len, const char *ctxj)
{
    im__bind_error_in(b, type, msg, input, input_len, NULL, ctxj);
}

/* A number as text for messages: integers exactly (kind 1 signed, 2 unsigned), others as
 * JSON writes them. */
static void im__num_text(char *out, size_t cap, int kind, int64_t i, uint64_t u, double d)
{
    if (kind == 1) {
        snprintf(out, cap, "%lld", (long long)i);
        return;
    }
    if (kind == 2) {
        snprintf(out, cap, "%llu", (unsigned long long)u);
        return;
    }
    im_jw w;
    im_jw_init(&w, out, cap - 1);
    im_jw_double(&w, d);
    out[im_jw_error(&w) ? 0 : w.len] = 0;
}

/* A bound broken (which: 0 minimum, 1 maximum, 2 multiple_of), said as pydantic says it. */
IM__COLD static int im__bind_bound_fail(im_bind *b, const im_field *f, int kind, int which,
                                        const char *input, size_t input_len)
{
    char num[40], msg[96], ctxj[64];
    if (which == 2) {
        if (kind == 0) im__num_text(num, sizeof num, 0, 0, 0, f->dmul);
        else im__num_text(num, sizeof num, 2, 0, f->imul, 0);
        snprintf(msg, sizeof msg, "Input should be a multiple of %s", num);
        snprintf(ctxj, sizeof ctxj, "{\"multiple_of\":%s}", num);
        im__bind_error(b, "multiple_of", msg, input, input_len, ctxj);
        return -1;
    }
    int x = (f->flags & (which ? IM_F_XMAX : IM_F_XMIN)) != 0;
    if (which == 0) im__num_text(num, sizeof num, kind, f->imin, f->umin, f->dmin);
    else im__num_text(num, sizeof num, kind, f->imax, f->umax, f->dmax);
    snprintf(msg, sizeof msg, "Input should be %s than%s %s", which ? "less" : "greater",
             x ? "" : " or equal to", num);
    snprintf(ctxj, sizeof ctxj, "{\"%s\":%s}", which ? (x ? "lt" : "le") : (x ? "gt" : "ge"), num);
    im__bind_error(b, which ? (x ? "less_than" : "less_than_equal")
                            : (x ? "greater_than" : "greater_than_equal"),
                   msg, input, input_len, ctxj);
    return -1;
}

/* Checks the bounds and multiple of f against a number: kind 0 a double (d), 1 an int64 (i),
 * 2 a uint64 (u). Records the error; 0 when fine. */
static inline int im__bind_bounds(im_bind *b, const im_field *f, int kind, int64_t i, uint64_t u,
                                  double d, const char *input, size_t input_len)
{
    if (!(f->flags & (IM_F_MIN | IM_F_MAX | IM_F_MULTIPLE))) return 0;
    if (f->flags & IM_F_MIN) {
        int x = (f->flags & IM_F_XMIN) != 0;
        int bad = kind == 1 ? (x ? i <= f->imin : i < f->imin)
                : kind == 2 ? (x ? u <= f->umin : u < f->umin) : (x ? d <= f->dmin : d < f->dmin);
        if (bad) return im__bind_bound_fail(b, f, kind, 0, input, input_len);
    }
    if (f->flags & IM_F_MAX) {
        int x = (f->flags & IM_F_XMAX) != 0;
        int bad = kind == 1 ? (x ? i >= f->imax : i > f->imax)
                : kind == 2 ? (x ? u >= f->umax : u > f->umax) : (x ? d >= f->dmax : d > f->dmax);
        if (bad) return im__bind_bound_fail(b, f, kind, 1, input, input_len);
    }
    if (f->flags & IM_F_MULTIPLE) {
        int bad;
        if (kind == 0) { /* as pydantic: a remainder within 1e-9 of the value's size is none */
            double r = fmod(d, f->dmul), tol = fabs(d) / 1e9;
            bad = fabs(r) > tol && fabs(fabs(r) - f->dmul) > tol;
        } else {
            uint64_t m = f->imul ? f->imul : 1;
            uint64_t a = kind == 2 ? u : i < 0 ? 0 - (uint64_t)i : (uint64_t)i;
            bad = a % m != 0;
        }
        if (bad) return im__bind_bound_fail(b, f, kind, 2, input, input_len);
    }
    return 0;
}

/* The range message of an integer type. */
static const char *im__int_range_msg(int type)
{
    switch (type) {
    case IM_T_INT32: return "Input should be an integer from -2147483648 to 2147483647";
    case IM_T_UINT32: return "Input should be an integer from 0 to 4294967295";
    case IM_T_UINT64: return "Input should be an integer from 0 to 18446744073709551615";
    default: return "Input should be an integer from -9223372036854775808 to 9223372036854775807";
    }
}

/* A number read (from JSON, or from a parameter's text made JSON) into dst as f's numeric
 * type says: the type's own range first, then the declared bounds. input names it in errors. */
static void im__bind_number(im_bind *b, const im_field *f, int type, const im_json_num *n,
                            const char *input, size_t inl, void *dst)
{
    if (type == IM_T_DOUBLE || type == IM_T_FLOAT) {
        if (!isfinite(n->d)) {
            im__bind_error(b, "finite_number", "Input should be a finite number", input, inl, NULL);
            return;
        }
        if (type == IM_T_FLOAT && fabs(n->d) > FLT_MAX) {
            im__bind_error(b, "float_range", "Input should be a finite number within a 32-bit float's range",
                           input, inl, NULL);
            return;
        }
        if (im__bind_bounds(b, f, 0, 0, 0, n->d, input, inl)) return;
        if (type == IM_T_FLOAT) *(float *)dst = (float)n->d;
        else *(double *)dst = n->d;
        return;
    }
    int64_t i = n->i;
    uint64_t u = 0;
    int neg = 0, big = 0; /* big: a uint64 above INT64_MAX */
    if (!n->is_int) {
        /* digits alone but past int64: exact for a uint64, else out of range (as a double,
         * -9223372036854775809 would round into it); with a fraction or an exponent, 3.0
         * and 1e2 are integers, 2.5 is not, 1e30 is out of range */
        const char *t = n->text.ptr;
        size_t k = t[0] == '-', len = n->text.len;
        while (k < len && t[k] >= '0' && t[k] <= '9') k++;
        if (k == len) {
            uint64_t v = 0;
            int over = t[0] == '-' || type != IM_T_UINT64;
            for (k = 0; !over && k < len; k++) {
                if (v > (UINT64_MAX - (uint64_t)(t[k] - '0')) / 10) over = 1;
                else v = v * 10 + (uint64_t)(t[k] - '0');
            }
            if (over) {
                im__bind_error(b, "int_range", im__int_range_msg(type), input, inl, NULL);
                return;
            }
            u = v;
            big = 1;
        } else if (isfinite(n->d) && n->d != floor(n->d)) {
            im__bind_error(b, "int_from_float",
                           "Input should be a valid integer, got a number with a fractional part",
                           input, inl, NULL);
            return;
        } else if (type == IM_T_UINT64 && isfinite(n->d) && n->d >= 0 && n->d < 18446744073709551616.0) {
            u = (uint64_t)n->d;
            big = 1;
        } else if (!isfinite(n->d) || n->d < -9223372036854775808.0 || n->d >= 9223372036854775808.0) {
            im__bind_error(b, "int_range", im__int_range_msg(type), input, inl, NULL);
            return;
        } else {
            i = (int64_t)n->d;
        }
    }
    if (!big) {
        neg = i < 0;
        u = (uint64_t)i;
    }
    int bad = 0;
    switch (type) {
    case IM_T_INT32: bad = big || i < INT32_MIN || i > INT32_MAX; break;
    case IM_T_INT64: bad = big; break;
    case IM_T_UINT32: bad = big ? u > UINT32_MAX : neg || i > (int64_t)UINT32_MAX; break;
    case IM_T_UINT64: bad = !big && neg; break;
    }
    if (bad) {
        im__bind_error(b, "int_range", im__int_range_msg(type), input, inl, NULL);
        return;
    }
    if (type == IM_T_UINT64 ? im__bind_bounds(b, f, 2, 0, u, 0, input, inl)
                            : im__bind_bounds(b, f, 1, i, 0, 0, input, inl))
        return;
    switch (type) {
    case IM_T_INT32: *(int32_t *)dst = (int32_t)i; break;
    case IM_T_INT64: *(int64_t *)dst = i; break;
    case IM_T_UINT32: *(uint32_t *)dst = (uint32_t)u; break;
    case IM_T_UINT64: *(uint64_t *)dst = u; break;
    }
}

/* Characters (code points) in valid UTF-8. */
static size_t im__utf8_count(im_str s)
{
    size_t n = s.len, i = 0;
    /* less the continuation bytes (10xxxxxx), counted eight at a time */
    for (; i + 8 <= s.len; i += 8) {
        uint64_t v;
        memcpy(&v, s.ptr + i, 8);
        /* one bit per continuation byte at bit 0 of its byte; the multiply sums the eight
         * into the top byte (no popcount: without -mpopcnt that is a libgcc call) */
        uint64_t c = (v & ~(v << 1) & 0x8080808080808080u) >> 7;
        n -= (size_t)((c * 0x0101010101010101u) >> 56);
    }
    for (; i < s.len; i++) n -= ((unsigned char)s.ptr[i] & 0xc0) == 0x80;
    return n;
}

/* ---- string formats ---- */

static int im__digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9') return 0;
    return 1;
}

static int im__num2(const char *p) { return (p[0] - '0') * 10 + p[1] - '0'; }

/* YYYY-MM-DD, a day that exists: 10 bytes at p. */
static int im__fmt_date(const char *p, size_t n)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n != 10 || !im__digits(p, 4) || p[4] != '-' || !im__digits(p + 5, 2) || p[7] != '-' ||
        !im__digits(p + 8, 2))
        return 0;
    int y = im__num2(p) * 100 + im__num2(p + 2), m = im__num2(p + 5), d = im__num2(p + 8);
    if (m < 1 || m > 12 || d < 1) return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= days[m - 1] + (m == 2 && leap);
}

/* HH:MM:SS[.frac][Z|+HH:MM|-HH:MM] (the offset optional, as pydantic takes naive times). */
static int im__fmt_time(const char *p, size_t n)
{
    if (n < 8 || !im__digits(p, 2) || p[2] != ':' || !im__digits(p + 3, 2) || p[5] != ':' ||
        !im__digits(p + 6, 2) || im__num2(p) > 23 || im__num2(p + 3) > 59 || im__num2(p + 6) > 60)
        return 0;
    size_t i = 8;
    if (i < n && p[i] == '.') {
        size_t f = ++i;
        while (i < n && p[i] >= '0' && p[i] <= '9') i++;
        if (i == f) return 0;
    }
    if (i == n) return 1;
    if ((p[i] == 'Z' || p[i] == 'z') && i + 1 == n) return 1;
    return (p[i] == '+' || p[i] == '-') && n - i == 6 && im__digits(p + i + 1, 2) && p[i + 3] == ':' &&
           im__digits(p + i + 4, 2) && im__num2(p + i + 1) <= 23 && im__num2(p + i + 4) <= 59;
}

static int im__hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int im__fmt_ipv4(const char *p, size_t n)
{
    int parts = 0;
    for (size_t i = 0; i <= n && parts < 5;) {
        size_t s = i;
        while (i < n && p[i] >= '0' && p[i] <= '9') i++;
        size_t len = i - s;
        if (!len || len > 3 || (len > 1 && p[s] == '0')) return 0;
        int v = 0;
        for (size_t k = s; k < i; k++) v = v * 10 + p[k] - '0';
        if (v > 255) return 0;
        parts++;
        if (i == n) break;
        if (p[i] != '.') return 0;
        i++;
    }
    return parts == 4;
}

static int im__fmt_ipv6(const char *p, size_t n)
{
    char t[48];
    unsigned char a[16];
    if (n < 2 || n >= sizeof t) return 0;
    memcpy(t, p, n);
    t[n] = 0;
    return inet_pton(AF_INET6, t, a) == 1;
}

/* local@domain: an atom-dotted local part (RFC 5322's atext) and a domain of two or more
 * LDH labels; what pydantic's EmailStr takes, less internationalised forms. */
static int im__fmt_email(const char *p, size_t n)
{
    const char *at = memchr(p, '@', n);
    if (!at || at == p || at - p > 64 || n - (size_t)(at - p) - 1 > 255) return 0;
    for (const char *q = p; q < at; q++) {
        if (*q == '.') {
            if (q == p || q + 1 == at || q[1] == '.') return 0;
        } else if (!isalnum((unsigned char)*q) && !strchr("!#$%&'*+/=?^_`{|}~-", *q)) {
            return 0;
        }
    }
    const char *d = at + 1, *e = p + n;
    int labels = 0;
    while (d < e) {
        const char *s = d;
        while (d < e && (isalnum((unsigned char)*d) || *d == '-')) d++;
        if (d == s || d - s > 63 || *s == '-' || d[-1] == '-') return 0;
        labels++;
        if (d == e) break;
        if (*d != '.') return 0;
        d++;
        if (d == e) return 0;
    }
    return labels >= 2;
}

/* An absolute URI (RFC 3986): a scheme, ':', then only URI characters and whole %-escapes. */
static int im__fmt_uri(const char *p, size_t n)
{
    size_t i = 0;
    if (!n || !isalpha((unsigned char)p[0])) return 0;
    while (i < n && (isalnum((unsigned char)p[i]) || p[i] == '+' || p[i] == '-' || p[i] == '.')) i++;
    if (i == n || p[i] != ':') return 0;
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '%') {
            if (i + 2 >= n || !im__hex(p[i + 1]) || !im__hex(p[i + 2])) return 0;
            i += 2;
        } else if (!(isalnum(c) || strchr("-._~:/?#[]@!$&'()*+,;=", c)) || c == 0) {
            return 0;
        }
    }
    return 1;
}

/* Whether p[0..n) is of the format; *type and *msg say what it should be. */
static int im__format_ok(int format, const char *p, size_t n, const char **type, const char **msg)
{
    int ok;
    switch (format) {
    case IM_FMT_DATE_TIME:
        *type = "datetime_parsing";
        *msg = "Input should be a valid datetime (RFC 3339: YYYY-MM-DDTHH:MM:SS[.f][Z|+HH:MM])";
        return n >= 19 && im__fmt_date(p, 10) && (p[10] == 'T' || p[10] == 't' || p[10] == ' ') &&
               im__fmt_time(p + 11, n - 11);
    case IM_FMT_DATE:
        *type = "date_parsing";
        *msg = "Input should be a valid date in the format YYYY-MM-DD";
        return im__fmt_date(p, n);
    case IM_FMT_TIME:
        *type = "time_parsing";
        *msg = "Input should be a valid time in the format HH:MM:SS[.f][Z|+HH:MM]";
        return im__fmt_time(p, n);
    case IM_FMT_UUID:
        *type = "uuid_parsing";
        *msg = "Input should be a valid UUID (8-4-4-4-12 hexadecimal digits)";
        ok = n == 36;
        for (size_t i = 0; ok && i < n; i++)
            ok = (i == 8 || i == 13 || i == 18 || i == 23) ? p[i] == '-' : im__hex(p[i]);
        return ok;
    case IM_FMT_EMAIL:
        *type = "value_error";
        *msg = "value is not a valid email address";
        return im__fmt_email(p, n);
    case IM_FMT_URI:
        *type = "url_parsing";
        *msg = "Input should be a valid URL (an absolute URI, with its scheme)";
        return im__fmt_uri(p, n);
    case IM_FMT_IPV4:
        *type = "ip_v4_address";
        *msg = "Input is not a valid IPv4 address";
        return im__fmt_ipv4(p, n);
    case IM_FMT_IPV6:
        *type = "ip_v6_address";
        *msg = "Input is not a valid IPv6 address";
        return im__fmt_ipv6(p, n);
    default:
        *type = *msg = "";
        return 1;
    }
}

int im_format_ok(int format, im_str s)
{
    const char *type, *msg;
    return s.ptr && im__format_ok(format, s.ptr, s.len, &type, &msg);
}

int im_pattern_match(const im_pattern *p, im_str s)
{
    unsigned st = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (p->sticky && p->accept[st]) return 1;
        st = p->next[st * p->nclasses + p->cls[(unsigned char)s.ptr[i]]];
        if (st == IM_PATTERN_DEAD) return 0;
    }
    return p->accept[st];
}

/* 1 when s is of the format; else records the error and returns 0. */
static int im__bind_format(im_bind *b, int format, im_str s)
{
    const char *type, *msg;
    int ok = im__format_ok(format, s.ptr, s.len, &type, &msg);
    if (!ok) im__bind_error_in(b, type, msg, NULL, 0, &s, NULL);
    return ok;
}

/* Not one of the enum's strings: Input should be 'a', 'b' or 'c'. */
IM__COLD static void im__bind_enum_fail(im_bind *b, const im_field *f, im_str s)
{
    char mb[512];
    size_t o = 0;
    o += (size_t)snprintf(mb, sizeof mb, "Input should be ");
    for (uint32_t k = 0; k < f->nvalues && o < sizeof mb - 64; k++)
        o += (size_t)snprintf(mb + o, sizeof mb - o, "%s'%s'",
                              k == 0 ? "" : k + 1 == f->nvalues ? " or " : ", ", f->values[k]);
    im__bind_error_in(b, "enum", mb, NULL, 0, &s, NULL);
}

/* Too short (longer 0) or too long (1), in characters. */
IM__COLD static void im__bind_length_fail(im_bind *b, const im_field *f, im_str s, int longer)
{
    char msg[128], ctxj[64];
    uint32_t lim = longer ? f->max_len : f->min_len;
    snprintf(msg, sizeof msg, "String should have at %s %u character%s", longer ? "most" : "least", lim,
             lim == 1 ? "" : "s");
    snprintf(ctxj, sizeof ctxj, "{\"%s\":%u}", longer ? "max_length" : "min_length", lim);
    im__bind_error_in(b, longer ? "string_too_long" : "string_too_short", msg, NULL, 0, &s, ctxj);
}

IM__COLD static void im__bind_pattern_fail(im_bind *b, const im_field *f, im_str s)
{
    char pm[320], pc[320];
    im_jw w;
    snprintf(pm, sizeof pm, "String should match pattern '%.256s'", f->pattern->source);
    im_jw_init(&w, pc, sizeof pc - 1);
    im_jw_obj(&w);
    im_jw_key(&w, "pattern");
    im_jw_str(&w, f->pattern->source);
    im_jw_obj_end(&w);
    pc[im_jw_error(&w) ? 0 : w.len] = 0;
    im__bind_error_in(b, "string_pattern_mismatch", pm, NULL, 0, &s, pc[0] ? pc : NULL);
}

/* Checks a string's length and, for enums, its membership; writes it. The string comes as its
 * two words, not as an im_str: on the 203-byte bench body that measured a few ns faster (the
 * reader has just stored them as two 8-byte words). */
static inline void im__bind_string_value(im_bind *b, const im_field *f, int type, const char *sp,
                                         size_t sl, void *dst)
{
    im_str s = {sp, sl};
    if (type == IM_T_ENUM) {
        for (uint32_t k = 0; k < f->nvalues; k++) {
            const char *v = f->values[k];
            size_t i = 0; /* compared as it is walked: v is never read past its end */
            while (i < s.len && v[i] && v[i] == s.ptr[i]) i++;
            if (i == s.len && !v[i]) {
                *(int *)dst = (int)k;
                return;
            }
        }
        im__bind_enum_fail(b, f, s);
        return;
    }
    if (f->flags & (IM_F_MINLEN | IM_F_MAXLEN)) {
        /* no more bytes than the bound's characters: within it, uncounted */
        size_t n = (f->flags & IM_F_MINLEN) || s.len > f->max_len ? im__utf8_count(s) : s.len;
        if ((f->flags & IM_F_MINLEN) && n < f->min_len) {
            im__bind_length_fail(b, f, s, 0);
            return;
        }
        if ((f->flags & IM_F_MAXLEN) && n > f->max_len) {
            im__bind_length_fail(b, f, s, 1);
            return;
        }
    }
    if (f->format && !im__bind_format(b, f->format, s)) return;
    if (f->pattern && !im_pattern_match(f->pattern, s)) {
        im__bind_pattern_fail(b, f, s);
        return;
    }
    *(im_str *)dst = s;
}

static const char *im__type_error(int type, const char **msg)
{
    switch (type) {
    case IM_T_BOOL: *msg = "Input should be a valid boolean"; return "bool_type";
    case IM_T_INT32:
    case IM_T_INT64:
    case IM_T_UINT32:
    case IM_T_UINT64: *msg = "Input should be a valid integer"; return "int_type";
    case IM_T_DOUBLE:
    case IM_T_FLOAT: *msg = "Input should be a valid number"; return "float_type";
    case IM_T_STRING:
    case IM_T_ENUM: *msg = "Input should be a valid string"; return "string_type";
    case IM_T_ARRAY: *msg = "Input should be a valid list"; return "list_type";
    case IM_T_NDARRAY:
        *msg = "Input should be an array of numbers (nested lists, one level per dimension)";
        return "ndarray_type";
    default:
        *msg = "Input should be a valid dictionary or object to extract fields from";
        return "model_attributes_type";
    }
}

static void im__bind_value(im_bind *b, const im_field *f, int type, void *dst);

/* Bytes of one array element of each scalar type (IM_T_*). */
static const size_t im__elem_size[] = {0, sizeof(bool), sizeof(int32_t), sizeof(int64_t),
                                       sizeof(double), sizeof(im_str), sizeof(int), 0, 0, 0,
                                       sizeof(uint32_t), sizeof(uint64_t), sizeof(float),
                                       sizeof(im_str), 0};

/* Checks an array's length against f's item bounds (recording the error), then stores the
 * {ptr, len} view every array type shares. */
static void im__bind_items(im_bind *b, const im_field *f, const void *items, size_t n, void *dst)
{
    char msg[128], ctxj[64];
    if ((f->flags & IM_F_MINITEMS) && n < f->min_items) {
        snprintf(msg, sizeof msg, "List should have at least %u item%s after validation, not %zu",
                 f->min_items, f->min_items == 1 ? "" : "s", n);
        snprintf(ctxj, sizeof ctxj, "{\"min_length\":%u,\"actual_length\":%zu}", f->min_items, n);
        im__bind_error(b, "too_short", msg, NULL, 0, ctxj);
    } else if ((f->flags & IM_F_MAXITEMS) && n > f->max_items) {
        snprintf(msg, sizeof msg, "List should have at most %u item%s after validation, not %zu",
                 f->max_items, f->max_items == 1 ? "" : "s", n);
        snprintf(ctxj, sizeof ctxj, "{\"max_length\":%u,\"actual_length\":%zu}", f->max_items, n);
        im__bind_error(b, "too_long", msg, NULL, 0, ctxj);
    }
    struct {
        const void *ptr;
        size_t len;
    } *view = dst;
    view->ptr = items;
    view->len = n;
}

/* Elements of the array at the cursor, counted by a checking skip (the reader is left where it
 * was), or -1 after a syntax error. Counting first lets the array be allocated once, exactly. */
static long im__bind_count(im_bind *b)
{
    im_json save = b->j;
    long n = 0;
    int r;
    if (im_json_arr_enter(&b->j)) return -1;
    while ((r = im_json_arr_next(&b->j)) == 1) {
        if (im_json_skip(&b->j)) return -1;
        n++;
    }
    if (r < 0) return -1;
    b->j = save;
    return n;
}

static void im__bind_array(im_bind *b, const im_field *f, void *dst)
{
    size_t esz = f->elem == IM_T_OBJECT ? f->elem_size : im__elem_size[f->elem], n = 0;
    long count = im__bind_count(b);
    char *items;
    int r;
    if (count < 0) return;
    if ((f->flags & IM_F_MAXITEMS) && (size_t)count > f->max_items) {
        /* too long: said once, and nothing of it is bound or kept */
        im__bind_items(b, f, NULL, (size_t)count, dst);
        im_json_skip(&b->j);
        return;
    }
    if ((size_t)count > (SIZE_MAX - 1) / (esz ? esz : 1) ||
        !(items = im__bind_alloc(b, (size_t)count * esz + 1))) {
        b->too_big |= !b->oom;
        im_json_skip(&b->j);
        return;
    }
    if (im_json_arr_enter(&b->j)) return;
    while ((r = im_json_arr_next(&b->j)) == 1) {
        memset(items + n * esz, 0, esz);
        im__bind_push(b, NULL, 0, n);
        im__bind_value(b, f, f->elem, items + n * esz);
        im__bind_pop(b);
        n++;
        if (b->j.err) return;
    }
    if (r < 0) return;
    im__bind_items(b, f, items, n, dst);
}

/* A map (T{}): the object at the cursor, its keys and values bound into two arrays of the
 * request's arena (counted first: allocated once, within the request's budget). A key sent
 * twice keeps its last value, as a Python dict does (item bounds count keys, after that); a
 * hash of the keys finds repeats without comparing all pairs. */
static void im__bind_map(im_bind *b, const im_field *f, void *dst)
{
    size_t esz = f->elem == IM_T_OBJECT ? f->elem_size : im__elem_size[f->elem], n = 0;
    im_json save = b->j;
    long count = 0;
    int r;
    if (im_json_obj_enter(&b->j)) return;
    while ((r = im_json_obj_key(&b->j, NULL)) == 1) {
        if (im_json_skip(&b->j)) return;
        count++;
    }
    if (r < 0) return;
    b->j = save;
    struct {
        const im_str *keys;
        const void *values;
        size_t len;
    } *view = dst;
    char msg[128], ctxj[64];
    size_t slots = 16;
    while (slots < (size_t)count * 2) slots *= 2;
    im_str *keys;
    char *vals;
    uint32_t *hash; /* index + 1 of the key in each slot, 0 for none */
    if ((size_t)count > (SIZE_MAX / 4) / (esz + sizeof(im_str) + 8) ||
        !(keys = im__bind_alloc(b, (size_t)count * sizeof(im_str) + 1)) ||
        !(vals = im__bind_alloc(b, (size_t)count * esz + 1)) ||
        !(hash = im__bind_alloc(b, slots * sizeof(uint32_t)))) {
        b->too_big |= !b->oom;
        im_json_skip(&b->j);
        return;
    }
    memset(hash, 0, slots * sizeof(uint32_t));
    if (im_json_obj_enter(&b->j)) return;
    im_str k;
    while ((r = im_json_obj_key(&b->j, &k)) == 1) {
        uint64_t h = 1469598103934665603u;
        for (size_t i = 0; i < k.len; i++) h = (h ^ (unsigned char)k.ptr[i]) * 1099511628211u;
        size_t at = (size_t)h & (slots - 1), idx;
        while (hash[at] && !(keys[hash[at] - 1].len == k.len && memcmp(keys[hash[at] - 1].ptr, k.ptr, k.len) == 0))
            at = (at + 1) & (slots - 1);
        if (hash[at]) {
            idx = hash[at] - 1; /* a repeat: its value replaces the first's */
        } else {
            idx = n++;
            keys[idx] = k;
            hash[at] = (uint32_t)(idx + 1);
        }
        memset(vals + idx * esz, 0, esz);
        im__bind_push(b, k.ptr, k.len, 0);
        im__bind_value(b, f, f->elem, vals + idx * esz);
        im__bind_pop(b);
        if (b->j.err) return;
    }
    if (r < 0) return;
    if ((f->flags & IM_F_MAXITEMS) && n > f->max_items) { /* keys, repeats counted once */
        snprintf(msg, sizeof msg, "Dictionary should have at most %u item%s after validation, not %zu",
                 f->max_items, f->max_items == 1 ? "" : "s", n);
        snprintf(ctxj, sizeof ctxj, "{\"max_length\":%u,\"actual_length\":%zu}", f->max_items, n);
        im__bind_error(b, "too_long", msg, NULL, 0, ctxj);
    } else if ((f->flags & IM_F_MINITEMS) && n < f->min_items) {
        snprintf(msg, sizeof msg, "Dictionary should have at least %u item%s after validation, not %zu",
                 f->min_items, f->min_items == 1 ? "" : "s", n);
        snprintf(ctxj, sizeof ctxj, "{\"min_length\":%u,\"actual_length\":%zu}", f->min_items, n);
        im__bind_error(b, "too_short", msg, NULL, 0, ctxj);
    }
    view->keys = keys;
    view->values = vals;
    view->len = n;
}

/* ---- n-dimensional arrays ---- */

/* The dtype, dimensions and shape f asks for; records the error and returns -1 when a breaks
 * them. */
static int im__bind_nd_check(im_bind *b, const im_field *f, const im_ndarray *a)
{
    char msg[400], want[160];
    if (f->dtypes && !(f->dtypes & (1u << a->dtype))) {
        size_t n = 0;
        want[0] = 0;
        for (int d = 0; d < IM_DT_COUNT; d++)
            if (f->dtypes & (1u << d))
                n += (size_t)snprintf(want + n, sizeof want - n, "%s%s", n ? " or " : "",
                                      im_dtype_name(d));
        snprintf(msg, sizeof msg, "Array should have dtype %s, not %s", want,
                 im_dtype_name(a->dtype));
        im__bind_error(b, "ndarray_dtype", msg, NULL, 0, NULL);
        return -1;
    }
    int64_t n = im_ndarray_count(a->shape, a->ndim, 1);
    if ((f->flags & IM_F_MAXITEMS) && n > (int64_t)f->max_items) {
        snprintf(msg, sizeof msg, "Array should have at most %u element%s, not %lld",
                 f->max_items, f->max_items == 1 ? "" : "s", (long long)n);
        im__bind_error(b, "too_long", msg, NULL, 0, NULL);
        return -1;
    }
    if ((f->flags & IM_F_MINITEMS) && n < (int64_t)f->min_items) {
        snprintf(msg, sizeof msg, "Array should have at least %u element%s, not %lld",
                 f->min_items, f->min_items == 1 ? "" : "s", (long long)n);
        im__bind_error(b, "too_short", msg, NULL, 0, NULL);
        return -1;
    }
    if (f->ndim >= 0 && a->ndim != f->ndim) {
        snprintf(msg, sizeof msg, "Array should have %d dimension%s, not %d", (int)f->ndim,
                 f->ndim == 1 ? "" : "s", a->ndim);
        im__bind_error(b, "ndarray_ndim", msg, NULL, 0, NULL);
        return -1;
    }
    if (f->shape) {
        int bad = 0;
        for (int d = 0; d < a->ndim; d++) bad |= f->shape[d] >= 0 && f->shape[d] != a->shape[d];
        if (bad) {
            size_t wn = 0, m = 0;
            char got[160];
            for (int d = 0; d < a->ndim; d++) {
                if (f->shape[d] >= 0)
                    wn += (size_t)snprintf(want + wn, sizeof want - wn, "%s%lld", d ? ", " : "",
                                          (long long)f->shape[d]);
                else
                    wn += (size_t)snprintf(want + wn, sizeof want - wn, "%sany", d ? ", " : "");
                m += (size_t)snprintf(got + m, sizeof got - m, "%s%lld", d ? ", " : "",
                                      (long long)a->shape[d]);
                if (wn >= sizeof want || m >= sizeof got) break;
            }
            snprintf(msg, sizeof msg, "Array should have shape (%s), not (%s)", want, got);
            im__bind_error(b, "ndarray_shape", msg, NULL, 0, NULL);
            return -1;
        }
    }
    return 0;
}

/* The indices of the element at flat index k of shape, into idx[0..ndim). */
static void im__bind_nd_index(const int64_t *shape, int ndim, uint64_t k, int64_t *idx)
{
    for (int d = ndim - 1; d >= 0; d--) {
        uint64_t n = shape[d] > 0 ? (uint64_t)shape[d] : 1;
        idx[d] = (int64_t)(k % n);
        k /= n;
    }
}

/* Records an error at the element (or row) whose indices are idx[0..n), under the field's
 * loc, then skips the whole array from its start: its first error stops it. */
static void im__bind_nd_fail(im_bind *b, const im_json *start, const int64_t *idx, int n,
                             const char *type, const char *msg, const char *in, size_t inl)
{
    for (int d = 0; d < n; d++) im__bind_push(b, NULL, 0, (size_t)idx[d]);
    im__bind_error(b, type, msg, in, inl, NULL);
    b->nloc -= (unsigned)n;
    b->j = *start;
    (void)im_json_skip(&b->j);
}

/* Stores JSON number n as element k of dtype: NULL, or why it does not fit (and *type). */
static const char *im__bind_nd_put(int dtype, const im_json_num *n, void *data, uint64_t k,
                                   const char **type)
{
    int64_t i = n->i;
    if (dtype == IM_DT_F64 || dtype == IM_DT_F32) {
        if (!isfinite(n->d) || (dtype == IM_DT_F32 && isinf((float)n->d))) {
            *type = "finite_number";
            return dtype == IM_DT_F32 ? "Input should be a finite number within float32"
                                      : "Input should be a finite number";
        }
        if (dtype == IM_DT_F64) ((double *)data)[k] = n->d;
        else ((float *)data)[k] = (float)n->d;
        return NULL;
    }
    if (!n->is_int) {
        if (isfinite(n->d) && n->d != floor(n->d)) {
            *type = "int_from_float";
            return "Input should be a valid integer, got a number with a fractional part";
        }
        if (!isfinite(n->d) || n->d < -9223372036854775808.0 || n->d >= 9223372036854775808.0) {
            *type = "int_range";
            return "Input should be an integer from -9223372036854775808 to 9223372036854775807";
        }
        i = (int64_t)n->d; /* 3.0 and 1e2 are integers, as for int arguments */
    }
    *type = "int_range";
    if (dtype == IM_DT_I64) {
        ((int64_t *)data)[k] = i;
    } else if (dtype == IM_DT_I32) {
        if (i < INT32_MIN || i > INT32_MAX)
            return "Input should be an integer from -2147483648 to 2147483647 (dtype i32)";
        ((int32_t *)data)[k] = (int32_t)i;
    } else {
        if (i < 0 || i > 255) return "Input should be an integer from 0 to 255 (dtype u8)";
        ((uint8_t *)data)[k] = (uint8_t)i;
    }
    return NULL;
}

/* JSON nested arrays (or one number: 0 dimensions) into an im_ndarray. A checking first pass
 * finds the shape (every row as long as the first at its depth: rectangular) and whether all
 * numbers are integers; the data is then allocated once and a second pass fills it. */
static void im__bind_ndarray(im_bind *b, const im_field *f, void *dst)
{
    im_ndarray *a = (im_ndarray *)dst, nd;
    im_json save = b->j;
    int64_t cnt[IM_NDARRAY_MAX_DIMS];
    int depth = 0, ndim = -1, all_int = 1, r;
    char msg[160];
    memset(&nd, 0, sizeof nd);
    for (int d = 0; d < IM_NDARRAY_MAX_DIMS; d++) nd.shape[d] = -1;
    /* pass 1: shape */
    for (;;) {
        int t = im_json_peek(&b->j);
        if (t < 0) return;
        if (t == IM_JSON_ARRAY) {
            if (depth == ndim || depth == IM_NDARRAY_MAX_DIMS) {
                if (depth == IM_NDARRAY_MAX_DIMS && ndim < 0)
                    im__bind_nd_fail(b, &save, cnt, depth, "ndarray_ndim",
                                     "Array should have at most 8 dimensions", NULL, 0);
                else
                    im__bind_nd_fail(b, &save, cnt, depth, "ndarray_ragged", "Array should be "
                                     "rectangular: a list where its rows hold numbers", NULL, 0);
                return;
            }
            if (im_json_arr_enter(&b->j)) return;
            cnt[depth++] = 0;
        } else if (t == IM_JSON_NUMBER && (ndim < 0 || depth == ndim)) {
            /* checked, not converted (the fill pass converts): integer-ness from its text */
            if (all_int) {
                im_json_num n;
                im_json at = b->j;
                if (im_json_number(&b->j, NULL)) return;
                const char *q = at.p;
                while (q < b->j.p && *q != '.' && *q != 'e' && *q != 'E') q++;
                if (q < b->j.p) all_int = 0; /* 3.0 and 1e2 say float, as numpy reads them */
                else if (b->j.p - at.p >= 19 && (im_json_number(&at, &n) || !n.is_int))
                    all_int = 0; /* as long as INT64_MAX: does it fit? */
            } else if (im_json_number(&b->j, NULL)) {
                return;
            }
            if (ndim < 0) ndim = depth;
            if (depth == 0) break; /* a scalar */
            cnt[depth - 1]++;
        } else {
            const char *start = b->j.p;
            if (im_json_skip(&b->j)) return;
            int scalar = t != IM_JSON_OBJECT && t != IM_JSON_ARRAY && b->j.p - start <= 200;
            im__bind_nd_fail(b, &save, cnt, depth, t == IM_JSON_NUMBER ? "ndarray_ragged" : "float_type",
                             t == IM_JSON_NUMBER ? "Array should be rectangular: a number where "
                             "its rows hold lists" : "Input should be a valid number",
                             scalar ? start : NULL, scalar ? (size_t)(b->j.p - start) : 0);
            return;
        }
        /* close every array that ends here, checking its length against its depth's */
        for (;;) {
            if (depth == 0) break;
            if ((r = im_json_arr_next(&b->j)) < 0) return;
            if (r == 1) break;
            int d = depth - 1;
            if (ndim < 0) ndim = depth; /* [] or [[]]: empty, as deep as it goes */
            if (nd.shape[d] < 0) {
                nd.shape[d] = cnt[d];
            } else if (nd.shape[d] != cnt[d]) {
                snprintf(msg, sizeof msg, "Array should be rectangular: this row has %lld "
                         "item%s, the first at its depth %lld", (long long)cnt[d],
                         cnt[d] == 1 ? "" : "s", (long long)nd.shape[d]);
                im__bind_nd_fail(b, &save, cnt, d, "ndarray_ragged", msg, NULL, 0);
                return;
            }
            depth--;
            if (depth > 0) cnt[depth - 1]++;
        }
        if (depth == 0) break;
    }
    nd.ndim = ndim;
    for (int d = ndim; d < IM_NDARRAY_MAX_DIMS; d++) nd.shape[d] = 0;
    /* the dtype: the one asked for, else integers as i64 and anything else as f64 */
    uint32_t ok = f->dtypes ? f->dtypes : ~0u;
    if (all_int && (ok & (1u << IM_DT_I64))) nd.dtype = IM_DT_I64;
    else if (ok & (1u << IM_DT_F64)) nd.dtype = IM_DT_F64;
    else if (ok & (1u << IM_DT_F32)) nd.dtype = IM_DT_F32;
    else if (ok & (1u << IM_DT_I64)) nd.dtype = IM_DT_I64;
    else if (ok & (1u << IM_DT_I32)) nd.dtype = IM_DT_I32;
    else nd.dtype = IM_DT_U8;
    size_t isz = im_dtype_size(nd.dtype);
    int64_t count = im_ndarray_count(nd.shape, ndim, isz);
    if (im__bind_nd_check(b, f, &nd)) {
        b->j = save;
        (void)im_json_skip(&b->j);
        return;
    }
    if (count < 0 || !(nd.data = im__bind_alloc(b, (size_t)count * isz + 1))) {
        b->too_big |= !b->oom;
        b->j = save;
        (void)im_json_skip(&b->j);
        return;
    }
    nd.nbytes = (size_t)count * isz;
    /* pass 2: the numbers, in order (the structure is known good) */
    b->j = save;
    uint64_t k = 0;
    depth = 0;
    for (;;) {
        int t = im_json_peek(&b->j);
        if (t == IM_JSON_ARRAY) {
            if (im_json_arr_enter(&b->j)) return;
            depth++;
        } else {
            im_json_num n;
            if (im_json_number(&b->j, &n)) return;
            const char *type, *why = im__bind_nd_put(nd.dtype, &n, nd.data, k, &type);
            if (why) { /* said at the element's indices */
                int64_t idx[IM_NDARRAY_MAX_DIMS];
                im__bind_nd_index(nd.shape, ndim, k, idx);
                im__bind_nd_fail(b, &save, idx, ndim, type, why,
                                 n.text.len <= 200 ? n.text.ptr : NULL,
                                 n.text.len <= 200 ? n.text.len : 0);
                return;
            }
            k++;
        }
        while (depth > 0) {
            if ((r = im_json_arr_next(&b->j)) < 0) return;
            if (r == 1) break;
            depth--;
        }
        if (depth == 0) break;
    }
    *a = nd;
}

/* Reads the JSON value at the cursor as `type` into dst. */
static void im__bind_value(im_bind *b, const im_field *f, int type, void *dst)
{
    im_json *j = &b->j;
    int t = im_json_peek(j);
    if (t < 0) return;
    const char *start = j->p;
    switch (type) {
    case IM_T_BOOL:
        if (t == IM_JSON_TRUE || t == IM_JSON_FALSE) {
            int v;
            if (im_json_bool(j, &v) == 0) *(bool *)dst = v != 0;
            return;
        }
        break;
    case IM_T_INT32:
    case IM_T_INT64:
    case IM_T_DOUBLE:
    case IM_T_UINT32:
    case IM_T_UINT64:
    case IM_T_FLOAT:
        if (t == IM_JSON_NUMBER) {
            im_json_num n; /* peeked already: read on */
            if (im__jr_number(j, &n) == 0) im__bind_number(b, f, type, &n, n.text.ptr, n.text.len, dst);
            return;
        }
        break;
    case IM_T_STRING:
    case IM_T_ENUM:
        if (t == IM_JSON_STRING) {
            im_str s;
            if (im__jr_string(j, &s, NULL, 0) == 0) im__bind_string_value(b, f, type, s.ptr, s.len, dst);
            return;
        }
        break;
    case IM_T_ARRAY:
        if (t == IM_JSON_ARRAY) {
            im__bind_array(b, f, dst);
            return;
        }
        break;
    case IM_T_MAP:
        if (t == IM_JSON_OBJECT) {
            im__bind_map(b, f, dst);
            return;
        }
        type = IM_T_OBJECT; /* the wrong type: as for an object */
        break;
    case IM_T_JSON: /* any value: checked whole, kept as its text */
        if (im_json_skip(j) == 0) {
            ((im_str *)dst)->ptr = start;
            ((im_str *)dst)->len = (size_t)(j->p - start);
        }
        return;
    case IM_T_OBJECT:
        if (t == IM_JSON_OBJECT) {
            f->object(b, dst);
            return;
        }
        break;
    case IM_T_NDARRAY:
        if (t == IM_JSON_ARRAY || t == IM_JSON_NUMBER) {
            im__bind_ndarray(b, f, dst);
            return;
        }
        break;
    }
    /* the wrong type: say so with the value when it is a scalar, then skip it */
    const char *msg, *et = im__type_error(type, &msg);
    if (im_json_skip(j)) return;
    int scalar = t != IM_JSON_OBJECT && t != IM_JSON_ARRAY && (size_t)(j->p - start) <= 200;
    im__bind_error(b, et, msg, scalar ? start : NULL, scalar ? (size_t)(j->p - start) : 0, NULL);
}

int im_bind_obj_begin(im_bind *b)
{
    int t = im_json_peek(&b->j);
    if (t < 0) return t;
    if (t != IM_JSON_OBJECT) {
        const char *msg, *et = im__type_error(IM_T_OBJECT, &msg);
        const char *start = b->j.p;
        if (im_json_skip(&b->j)) return b->j.err;
        int scalar = t != IM_JSON_ARRAY && (size_t)(b->j.p - start) <= 200;
        im__bind_error(b, et, msg, scalar ? start : NULL, scalar ? (size_t)(b->j.p - start) : 0, NULL);
        return 0;
    }
    return im_json_obj_enter(&b->j) ? b->j.err : 1;
}

int im_bind_obj_key(im_bind *b, im_str *key) { return im__jr_obj_key(&b->j, key); }

/* Compares n bytes of p and q (n >= 4) with overlapping word loads: no call for keys. */
static inline int im__same_bytes(const char *p, const char *q, size_t n)
{
    uint64_t x, y, u, v;
    if (n < 8) {
        uint32_t a, c, d, e;
        memcpy(&a, p, 4), memcpy(&c, q, 4), memcpy(&d, p + n - 4, 4), memcpy(&e, q + n - 4, 4);
        return !((a ^ c) | (d ^ e));
    }
    for (; n > 16; n -= 8, p += 8, q += 8) {
        memcpy(&x, p, 8), memcpy(&y, q, 8);
        if (x != y) return 0;
    }
    memcpy(&x, p, 8), memcpy(&y, q, 8), memcpy(&u, p + n - 8, 8), memcpy(&v, q + n - 8, 8);
    return !((x ^ y) | (u ^ v));
}

static inline int im__bind_key_at(im_bind *b, const char *lit, size_t n)
{
    im_json *j = &b->j;
    if ((size_t)(j->end - j->p) < n || n < 4 || j->err || !j->depth || !im__same_bytes(j->p, lit, n)) return 0;
    uint64_t bit = (uint64_t)1 << (j->depth - 1);
    if ((lit[0] == '"') != !!(j->fresh & bit)) return 0; /* '"' opens the first key only */
    j->fresh &= ~bit;
    j->p += n;
    return 1;
}

int im_bind_key_at(im_bind *b, const char *lit, size_t n) { return im__bind_key_at(b, lit, n); }

/* Eight ASCII digits at p as their value, or -1 when they are not all digits (SWAR, as
 * fast_float reads them; little-endian only). */
static inline int64_t im__digits8(const char *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, 8);
    if (((v & 0xF0F0F0F0F0F0F0F0u) | (((v + 0x0606060606060606u) & 0xF0F0F0F0F0F0F0F0u) >> 4)) !=
        0x3333333333333333u)
        return -1;
    v -= 0x3030303030303030u;
    v = v * 10 + (v >> 8); /* pairs of digits */
    v = ((v & 0x000000FF000000FFu) * (100 + (1000000ull << 32)) +
         ((v >> 16) & 0x000000FF000000FFu) * (1 + (10000ull << 32))) >> 32;
    return (int64_t)v;
#else
    (void)p;
    return -1;
#endif
}

/* The usual values, read where they stand: a string with no escape nor multi-byte character,
 * an integer of up to 18 digits, a number, true, false. 1 when read (and checked), 0 to leave
 * the value to im__bind_value (blanks before it, anything else), which reads all of JSON. */
static inline int im__bind_fast(im_bind *b, const im_field *f, void *dst)
{
    im_json *j = &b->j;
    const char *p = j->p, *e = j->end;
    if (j->err || e - p < 2) return 0;
    switch (f->type) {
    case IM_T_STRING:
    case IM_T_ENUM: {
        if (*p != '"') return 0;
        size_t n = im__jr_plain((const unsigned char *)p + 1, (const unsigned char *)e);
        if (p + 1 + n >= e || p[1 + n] != '"') return 0;
        j->p = p + 2 + n;
        im__bind_string_value(b, f, f->type, p + 1, n, dst);
        return 1;
    }
    case IM_T_INT32:
    case IM_T_INT64: {
        const char *q = p + (*p == '-');
        int64_t v = 0;
        int k = 0;
        for (int64_t d8; k + 8 <= 16 && e - (q + k) >= 8 && (d8 = im__digits8(q + k)) >= 0; k += 8)
            v = v * 100000000 + d8;
        while (q + k < e && k < 18 && (unsigned)(q[k] - '0') < 10u) { /* 18 digits fit */
            v = v * 10 + (q[k] - '0');
            k++;
        }
        /* then a byte that is not part of the number; no leading zero */
        if (k == 0 || q + k >= e || (unsigned)(q[k] - '0') < 10u || (q[0] == '0' && k > 1) ||
            q[k] == '.' || q[k] == 'e' || q[k] == 'E')
            return 0;
        if (*p == '-') v = -v;
        j->p = q + k;
        if (f->type == IM_T_INT32 && (v < INT32_MIN || v > INT32_MAX)) {
            im__bind_error(b, "int_range", im__int_range_msg(IM_T_INT32), p, (size_t)(q + k - p), NULL);
            return 1;
        }
        if (im__bind_bounds(b, f, 1, v, 0, 0, p, (size_t)(q + k - p))) return 1;
        if (f->type == IM_T_INT32) *(int32_t *)dst = (int32_t)v;
        else *(int64_t *)dst = v;
        return 1;
    }
    case IM_T_DOUBLE:
    case IM_T_FLOAT: {
        if (*p != '-' && (unsigned)(*p - '0') >= 10u) return 0;
        /* up to 15 digits, a fraction, no exponent: exact as mantissa / 10^k (Clinger) */
        const char *q = p + (*p == '-');
        uint64_t m = 0;
        int k = 0, frac = 0;
        while (q + k < e && k < 15 && (unsigned)(q[k] - '0') < 10u) m = m * 10 + (uint64_t)(q[k++] - '0');
        if (k > 0 && q + k + 1 < e && q[k] == '.' && (q[0] != '0' || k == 1)) {
            const char *r = q + k + 1;
            while (r + frac < e && k + frac < 15 && (unsigned)(r[frac] - '0') < 10u)
                m = m * 10 + (uint64_t)(r[frac++] - '0');
            if (frac > 0 && r + frac < e && (unsigned)(r[frac] - '0') >= 10u && r[frac] != 'e' &&
                r[frac] != 'E') {
                double d = (double)m / im__pow10[frac];
                if (*p == '-') d = -d;
                j->p = r + frac;
                if (im__bind_bounds(b, f, 0, 0, 0, d, p, (size_t)(j->p - p))) return 1;
                if (f->type == IM_T_FLOAT) *(float *)dst = (float)d;
                else *(double *)dst = d;
                return 1;
            }
        }
        im_json_num n;
        if (im__jr_number(j, &n) == 0) im__bind_number(b, f, f->type, &n, n.text.ptr, n.text.len, dst);
        return 1;
    }
    case IM_T_BOOL:
        if (e - p >= 4 && !memcmp(p, "true", 4)) {
            j->p = p + 4;
            *(bool *)dst = true;
            return 1;
        }
        if (e - p >= 5 && !memcmp(p, "false", 5)) {
            j->p = p + 5;
            *(bool *)dst = false;
            return 1;
        }
        return 0;
    }
    return 0;
}

void im_bind_field(im_bind *b, const im_field *f, void *dst)
{
    im__bind_push(b, f->name, SIZE_MAX, 0);
    if (!im__bind_fast(b, f, dst)) im__bind_value(b, f, f->type, dst);
    im__bind_pop(b);
}

int im_bind_field_at(im_bind *b, const char *lit, size_t n, const im_field *f, void *dst)
{
    if (!im__bind_key_at(b, lit, n)) return 0;
    im_bind_field(b, f, dst);
    return 1;
}

void im_bind_body(im_bind *b, const im_field *f, void *dst) { im__bind_value(b, f, f->type, dst); }

int im_bind_null(im_bind *b)
{
    if (im_json_peek(&b->j) != IM_JSON_NULL) return 0;
    return im_json_null(&b->j) == 0;
}

void im_bind_extra(im_bind *b, im_str key) { im_bind_extra_as(b, key, b->ep->extra); }

void im_bind_extra_as(im_bind *b, im_str key, int extra)
{
    const char *start;
    if (im_json_peek(&b->j) < 0) return;
    start = b->j.p;
    if (im_json_skip(&b->j)) return;
    if (extra == IM_EXTRA_IGNORE) return;
    im__bind_push(b, key.ptr, key.len, 0);
    size_t n = (size_t)(b->j.p - start);
    im__bind_error(b, "extra_forbidden", "Extra inputs are not permitted", n <= 200 ? start : NULL,
                   n <= 200 ? n : 0, NULL);
    im__bind_pop(b);
}

void im_bind_missing(im_bind *b, const im_field *f)
{
    const char *root = b->root;
    if (!f) { /* the whole body */
        im__bind_error(b, "missing", "Field required", NULL, 0, NULL);
        return;
    }
    if (f->in != IM_IN_BODY && f->in <= IM_IN_COOKIE) b->root = im__in_root[f->in];
    im__bind_push(b, f->name, SIZE_MAX, 0);
    im__bind_error(b, "missing", "Field required", NULL, 0, NULL);
    im__bind_pop(b);
    b->root = root;
}

/* The .npy body read into a (no copy when its data is aligned for its dtype, else one copy
 * into the request's arena): 0, or -1 with a 422 recorded (or oom/too_big set). */
static int im__bind_npy_body(im_bind *b, im_ndarray *a)
{
    char why[160], msg[240];
    im_str body = b->ctx->req.body;
    if (im_npy_read(body.ptr, body.len, a, why, sizeof why)) {
        snprintf(msg, sizeof msg, "The body should be an array in numpy's .npy format: %s", why);
        im__bind_error(b, "npy_invalid", msg, NULL, 0, NULL);
        return -1;
    }
    size_t isz = im_dtype_size(a->dtype);
    if (a->nbytes && ((uintptr_t)a->data & (isz - 1))) {
        void *d = im__bind_alloc(b, a->nbytes);
        if (!d) return -1;
        memcpy(d, a->data, a->nbytes); /* one copy, not one per element */
        a->data = d;
    }
    return 0;
}

int im_bind_npy(im_bind *b, const im_field *f, void *dst)
{
    im_ndarray a;
    if (!b->is_npy) return 0;
    if (b->is_npy == 2) { /* application/octet-stream: little-endian float64s, 1 dimension */
        im_str body = b->ctx->req.body;
        char msg[128];
        if (body.len % 8) {
            snprintf(msg, sizeof msg, "The body must hold whole float64 values (8 bytes each), "
                     "not %zu bytes", body.len);
            im__bind_error(b, "bytes_length", msg, NULL, 0, NULL);
            return 1;
        }
        memset(&a, 0, sizeof a);
        a.dtype = IM_DT_F64;
        a.ndim = 1;
        a.shape[0] = (int64_t)(body.len / 8);
        a.nbytes = body.len;
        a.data = (void *)(uintptr_t)body.ptr;
        if ((uintptr_t)body.ptr & 7) {
            if (!(a.data = im__bind_alloc(b, body.len))) return 1;
            memcpy(a.data, body.ptr, body.len); /* one copy, not one per element */
        }
    } else if (im__bind_npy_body(b, &a)) {
        return 1;
    }
    if (im__bind_nd_check(b, f, &a) == 0) *(im_ndarray *)dst = a;
    return 1;
}

int im_bind_raw_f64(im_bind *b, const im_field *f, void *dst)
{
    im_str body = b->ctx->req.body;
    const im_f64s *view = dst;
    char msg[128];
    const double *vals;
    size_t n;
    if (!b->has_body) return 0;
    if (b->is_npy) { /* np.save of a 1-dimensional float64 array */
        im_ndarray a;
        if (im__bind_npy_body(b, &a)) return 1;
        if (a.dtype != IM_DT_F64 || a.ndim != 1) {
            snprintf(msg, sizeof msg, "The array should be 1-dimensional float64 (<f8), not "
                     "%d-dimensional %s", a.ndim, im_dtype_name(a.dtype));
            im__bind_error(b, a.dtype != IM_DT_F64 ? "ndarray_dtype" : "ndarray_ndim", msg,
                           NULL, 0, NULL);
            return 1;
        }
        vals = a.data;
        n = (size_t)a.shape[0];
        goto check;
    }
    if (body.len % 8) {
        snprintf(msg, sizeof msg, "The body must hold whole float64 values (8 bytes each), not %zu bytes",
                 body.len);
        im__bind_error(b, "bytes_length", msg, NULL, 0, NULL);
        return 1;
    }
    n = body.len / 8;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "raw float64 bodies are little-endian: this byte order needs a swap here"
#endif
    vals = (const double *)(const void *)body.ptr; /* no copy when aligned */
    if ((uintptr_t)body.ptr & 7) {
        double *d = im__bind_alloc(b, body.len);
        if (!d) return 1;
        memcpy(d, body.ptr, body.len); /* one copy, not one per element */
        vals = d;
    }
check:;
    unsigned before = b->nerrs;
    im__bind_items(b, f, vals, n, dst);
    if (b->nerrs != before) return 1;
    for (size_t i = 0; i < n; i++) { /* as in JSON: finite numbers, within the bounds */
        double v = view->ptr[i];
        int bad = !isfinite(v);
        im__bind_push(b, NULL, 0, i);
        if (bad) im__bind_error(b, "finite_number", "Input should be a finite number", NULL, 0, NULL);
        else if (f->flags & (IM_F_MIN | IM_F_MAX | IM_F_MULTIPLE)) bad = im__bind_bounds(b, f, 0, 0, 0, v, NULL, 0);
        im__bind_pop(b);
        if (bad) break; /* one error is enough for a million numbers */
    }
    return 1;
}

int im_bind_has_body(const im_bind *b) { return b->has_body; }

#define IM__PY_NUM_MAX 320 /* longer parameter numbers are refused, as not numbers */

/* Digits at *pp with single '_' between them (as Python writes 1_000), copied to out + *o: how
 * many. */
static size_t im__py_digits(const char **pp, const char *e, char *out, size_t *o)
{
    const char *p = *pp;
    size_t n = 0;
    while (p < e && *p >= '0' && *p <= '9') {
        out[(*o)++] = *p++;
        n++;
        if (p + 1 < e && *p == '_' && p[1] >= '0' && p[1] <= '9') p++;
    }
    *pp = p;
    return n;
}

/* Parameter text read as FastAPI reads it (Python's int() or float()): surrounding whitespace,
 * a sign, leading zeros, '_' between digits, and for float ".5", "5." and "1e3", rewritten as
 * the JSON number it means into out. Its length; -1 when it is not one; -2 for inf or nan
 * (float() reads them; a finite number is wanted). */
static long im__py_number(im_str v, int real, char *out, size_t cap)
{
    const char *p = v.ptr, *e = v.ptr + v.len;
    size_t o = 0;
    while (p < e && isspace((unsigned char)*p)) p++;
    while (e > p && isspace((unsigned char)e[-1])) e--;
    if (e - p > IM__PY_NUM_MAX || cap < (size_t)(e - p) + 4) return -1;
    if (p < e && (*p == '+' || *p == '-')) {
        if (*p == '-') out[o++] = '-';
        p++;
    }
    if (real) {
        size_t n = (size_t)(e - p);
        if ((n == 3 && (!strncasecmp(p, "inf", 3) || !strncasecmp(p, "nan", 3))) ||
            (n == 8 && !strncasecmp(p, "infinity", 8)))
            return -2;
    }
    size_t at = o, int_digits = im__py_digits(&p, e, out, &o), z = at;
    while (z + 1 < o && out[z] == '0') z++; /* JSON has no leading zeros: "007" is 7 */
    memmove(out + at, out + z, o - z);
    o -= z - at;
    if (!real) return int_digits && p == e ? (long)o : -1;
    if (!int_digits) out[o++] = '0'; /* ".5" */
    size_t frac_digits = 0;
    if (p < e && *p == '.') {
        p++;
        out[o++] = '.';
        frac_digits = im__py_digits(&p, e, out, &o);
        if (!frac_digits) o--; /* "5." */
    }
    if (!int_digits && !frac_digits) return -1;
    if (p < e && (*p == 'e' || *p == 'E')) {
        out[o++] = 'e';
        p++;
        if (p < e && (*p == '+' || *p == '-')) out[o++] = *p++;
        if (!im__py_digits(&p, e, out, &o)) return -1;
    }
    return p == e ? (long)o : -1;
}

/* Parses parameter text (already %-decoded) as type into dst, checking f's constraints. */
static void im__bind_text(im_bind *b, const im_field *f, int type, im_str v, void *dst)
{
    char inbuf[256];
    im_jw in;
    im_jw_init(&in, inbuf, sizeof inbuf);
    im_jw_strn(&in, v.ptr, v.len < 200 ? v.len : 200);
    const char *input = im_jw_error(&in) ? NULL : inbuf;
    size_t inl = input ? in.len : 0;
    switch (type) {
    case IM_T_BOOL: {
        static const char *const yes[] = {"true", "1", "yes", "on", "t", "y"};
        static const char *const no[] = {"false", "0", "no", "off", "f", "n"};
        for (int k = 0; k < 6; k++) {
            if (im_str_ieq(v, yes[k])) {
                *(bool *)dst = true;
                return;
            }
            if (im_str_ieq(v, no[k])) {
                *(bool *)dst = false;
                return;
            }
        }
        im__bind_error(b, "bool_parsing", "Input should be a valid boolean, unable to interpret input",
                       input, inl, NULL);
        return;
    }
    case IM_T_INT32:
    case IM_T_INT64:
    case IM_T_UINT32:
    case IM_T_UINT64:
    case IM_T_DOUBLE:
    case IM_T_FLOAT: {
        int real = type == IM_T_DOUBLE || type == IM_T_FLOAT;
        im_json j;
        im_json_num n;
        char num[IM__PY_NUM_MAX + 8];
        long len = im__py_number(v, real, num, sizeof num);
        if (len == -2) {
            im__bind_error(b, "finite_number", "Input should be a finite number", input, inl, NULL);
            return;
        }
        if (len > 0) im_json_init(&j, num, (size_t)len, 0);
        if (len <= 0 || im_json_peek(&j) != IM_JSON_NUMBER || im_json_number(&j, &n) || j.p != j.end) {
            if (real)
                im__bind_error(b, "float_parsing", "Input should be a valid number, unable to parse string as a number",
                               input, inl, NULL);
            else
                im__bind_error(b, "int_parsing", "Input should be a valid integer, unable to parse string as an integer",
                               input, inl, NULL);
            return;
        }
        im__bind_number(b, f, type, &n, input, inl, dst);
        return;
    }
    case IM_T_JSON: { /* a parameter of JSON text (FastAPI's Json) */
        im_json j;
        if (im_json_check(&j, v.ptr, v.len)) {
            im__bind_error(b, "json_invalid", "Invalid JSON: the parameter is not a JSON value", input, inl, NULL);
            return;
        }
        *(im_str *)dst = v;
        return;
    }
    default: {
        /* a string must be valid UTF-8 */
        for (size_t k = 0; k < v.len;) {
            size_t u = im__utf8_len((const unsigned char *)v.ptr + k, v.len - k);
            if (!u) {
                im__bind_error(b, "string_unicode", "Input should be a valid string, unable to parse raw data as a unicode string",
                               NULL, 0, NULL);
                return;
            }
            k += u;
        }
        im__bind_string_value(b, f, type, v.ptr, v.len, dst);
        return;
    }
    }
}

/* %-decodes a parameter into the arena ('+' is a space in a query). */
static int im__bind_decode(im_bind *b, im_str raw, int query, im_str *out)
{
    if (!memchr(raw.ptr, '%', raw.len) && !(query && memchr(raw.ptr, '+', raw.len))) {
        *out = raw;
        return 0;
    }
    char *d = im__bind_alloc(b, raw.len + 1);
    if (!d) { /* too_big or oom: the request is refused; bind on with the raw text */
        *out = raw;
        return 0;
    }
    long n = im_url_decode(raw, d, raw.len, query);
    if (n < 0) return (int)n;
    out->ptr = d;
    out->len = (size_t)n;
    return 0;
}

/* The next key=value pair of a query from *pos: 1 (raw key and value), 0 at the end. */
static int im__query_next(im_str q, size_t *pos, im_str *key, im_str *val)
{
    while (*pos < q.len) {
        size_t i = *pos, e = i, eq;
        while (e < q.len && q.ptr[e] != '&') e++;
        *pos = e + 1;
        if (e == i) continue; /* a&&b */
        for (eq = i; eq < e && q.ptr[eq] != '='; eq++) {}
        key->ptr = q.ptr + i;
        key->len = eq - i;
        val->ptr = eq < e ? q.ptr + eq + 1 : q.ptr + e;
        val->len = eq < e ? e - eq - 1 : 0;
        return 1;
    }
    return 0;
}

/* A raw query key is name once %-decoded ('+' a space), as FastAPI decodes keys. */
static int im__query_key_is(im_str key, const char *name, size_t nlen)
{
    if (!memchr(key.ptr, '%', key.len) && !memchr(key.ptr, '+', key.len))
        return key.len == nlen && memcmp(key.ptr, name, nlen) == 0;
    char d[256];
    if (key.len > sizeof d) return 0;
    long n = im_url_decode(key, d, sizeof d, 1);
    return n == (long)nlen && memcmp(d, name, nlen) == 0;
}

/* The value of a cookie (RFC 6265 "a=b; c=d", optionally quoted), or {NULL, 0}. The last of a
 * repeated name wins, as for query parameters. */
static im_str im__cookie_get(im_str h, const char *name, size_t nlen)
{
    im_str found = {NULL, 0};
    for (size_t i = 0; i < h.len;) {
        while (i < h.len && (h.ptr[i] == ' ' || h.ptr[i] == '\t' || h.ptr[i] == ';')) i++;
        size_t k = i, e = i;
        while (e < h.len && h.ptr[e] != ';') e++;
        size_t eq = k;
        while (eq < e && h.ptr[eq] != '=') eq++;
        if (eq < e) {
            size_t kl = eq - k, vs = eq + 1, ve = e;
            while (kl && (h.ptr[k + kl - 1] == ' ' || h.ptr[k + kl - 1] == '\t')) kl--;
            while (ve > vs && (h.ptr[ve - 1] == ' ' || h.ptr[ve - 1] == '\t')) ve--;
            if (ve - vs >= 2 && h.ptr[vs] == '"' && h.ptr[ve - 1] == '"') vs++, ve--;
            if (kl == nlen && memcmp(h.ptr + k, name, nlen) == 0) {
                found.ptr = h.ptr + vs;
                found.len = ve - vs;
            }
        }
        i = e + 1;
    }
    return found;
}

int im_bind_param(im_bind *b, const im_field *f, void *dst)
{
    const char *root = b->root;
    im_str raw = {NULL, 0};
    int found = 0;
    size_t klen = strlen(f->name);
    b->root = f->in <= IM_IN_COOKIE ? im__in_root[f->in] : "query";
    im__bind_push(b, f->name, SIZE_MAX, 0);
    if (f->in == IM_IN_PATH) {
        raw = im_ctx_param(b->ctx, f->name);
        found = raw.ptr != NULL;
        if (found) {
            im_str v;
            if (im__bind_decode(b, raw, 0, &v))
                im__bind_error(b, "url_decoding", "Invalid %-escape in the path", NULL, 0, NULL);
            else
                im__bind_text(b, f, f->type, v, dst);
        }
    } else if (f->in == IM_IN_HEADER || f->in == IM_IN_COOKIE) {
        /* taken as sent, not %-decoded (FastAPI does not decode them either) */
        if (f->in == IM_IN_HEADER) {
            raw = im_ctx_header(b->ctx, f->name);
        } else {
            im_str h = im_ctx_header(b->ctx, "Cookie");
            if (h.ptr) raw = im__cookie_get(h, f->name, klen);
        }
        found = raw.ptr != NULL;
        if (found) im__bind_text(b, f, f->type, raw, dst);
    } else if (f->type != IM_T_ARRAY) { /* ?n=1&n=2: the last wins, as in FastAPI */
        im_str q = b->ctx->req.query, k, v;
        size_t pos = 0;
        while (im__query_next(q, &pos, &k, &v))
            if (im__query_key_is(k, f->name, klen)) raw = v, found = 1;
        if (found) {
            if (im__bind_decode(b, raw, 1, &v))
                im__bind_error(b, "url_decoding", "Invalid %-escape in the query", NULL, 0, NULL);
            else
                im__bind_text(b, f, f->type, v, dst);
        }
    } else { /* ?a=1&a=2: every occurrence, in order */
        size_t esz = im__elem_size[f->elem], n = 0, cap = 0;
        char *items = NULL;
        im_str q = b->ctx->req.query, k, v;
        for (int pass = 0; pass < 2; pass++) { /* count, then bind into one allocation */
            if (pass == 1) {
                if (!cap || ((f->flags & IM_F_MAXITEMS) && cap > f->max_items)) break;
                if (!(items = im__bind_alloc(b, cap * esz))) break;
            }
            size_t pos = 0;
            while (im__query_next(q, &pos, &k, &v)) {
                if (!im__query_key_is(k, f->name, klen)) continue;
                if (pass == 0) {
                    cap++;
                    continue;
                }
                memset(items + n * esz, 0, esz);
                im__bind_push(b, NULL, 0, n);
                if (im__bind_decode(b, v, 1, &v))
                    im__bind_error(b, "url_decoding", "Invalid %-escape in the query", NULL, 0, NULL);
                else
                    im__bind_text(b, f, f->elem, v, items + n * esz);
                im__bind_pop(b);
                n++;
            }
        }
        found = cap > 0;
        if (found) im__bind_items(b, f, items, items ? n : cap, dst);
    }
    im__bind_pop(b);
    b->root = root;
    return found;
}

/* Binds the request; answers 400/413/415/422/503 itself and returns -1 when it cannot be
 * served. */
static int im__ep_bind(im_ctx *c, const im_endpoint *ep, void *args)
{
    im_bind b; /* not zeroed whole: the loc stack is written as it is used */
    int rc;
    b.ctx = c;
    b.ep = ep;
    b.root = "body";
    b.nloc = 0;
    b.nerrs = 0;
    b.oom = b.too_big = 0;
    b.budget = (size_t)c->loop->o.arena_ratio * c->raw_len + c->loop->o.arena_extra_bytes;
    b.has_body = c->req.body.len > 0;
    b.is_npy = 0;
    if (b.has_body) {
        im_str ct = im_ctx_header(c, "content-type");
        if (ct.ptr) { /* the media type: up to ';' or blank, parameters aside */
            size_t k = 0;
            while (k < ct.len && ct.ptr[k] != ';' && ct.ptr[k] != ' ' && ct.ptr[k] != '\t') k++;
            ct.len = k;
        }
        if (!ep->body && ct.ptr && !im_str_ieq(ct, "application/json")) {
            im_reply_error(c, 400, "this endpoint takes no request body (an empty JSON object "
                                   "is accepted)");
            return -1;
        }
        b.is_npy = ct.ptr && im_str_ieq(ct, "application/x-npy") && ep->body >= 2;
        if (ep->body == 3 && ct.ptr && im_str_ieq(ct, "application/octet-stream"))
            b.is_npy = 2; /* raw float64s, for the ndarray argument */
        if (ep->body == 2) {
            if (!b.is_npy && (!ct.ptr || !im_str_ieq(ct, "application/octet-stream"))) {
                im_reply_error(c, 415, "the request body must be float64 values "
                                       "(Content-Type: application/octet-stream, or "
                                       "application/x-npy for a .npy array)");
                return -1;
            }
        } else if (b.is_npy) {
            /* the ndarray argument's binder reads it */
        } else if (ct.ptr && !im_str_ieq(ct, "application/json") &&
                   !(ct.len > 5 && memchr(ct.ptr, '/', ct.len) &&
                     im__ieq_lower(ct.ptr + ct.len - 5, "+json", 5))) {
            im_reply_error(c, 415, ep->body == 3
                                   ? "the request body must be JSON (Content-Type: "
                                     "application/json), a .npy array (application/x-npy) or "
                                     "float64 values (application/octet-stream)"
                                   : "the request body must be JSON (Content-Type: application/json)");
            return -1;
        }
    }
    /* the body is ours (a receive buffer or a copy): strings are decoded in place */
    im_json_init(&b.j, c->req.body.ptr ? c->req.body.ptr : "", c->req.body.len, 1);
    im_jw_init(&b.errs, NULL, 0); /* allocates only when an error is recorded */
    rc = ep->bind(&b, args);
    if (rc >= 0 && b.has_body && !ep->body) { /* no body arguments: {} at most (as FastAPI) */
        im_str key;
        int r = im_bind_obj_begin(&b);
        while (r > 0 && (r = im_bind_obj_key(&b, &key)) > 0) im_bind_extra(&b, key);
    }
    if (rc >= 0 && b.has_body && ep->body != 2 && !b.is_npy && !b.j.err) im_json_finish(&b.j);
    if (b.too_big) {
        char msg[200];
        const im_server_opts *o = &c->loop->o;
        snprintf(msg, sizeof msg, "binding the arguments would need more memory than a request "
                 "of %zu bytes may use (%u x its size + %zu bytes)", c->raw_len, o->arena_ratio,
                 o->arena_extra_bytes);
        im_jw_free(&b.errs);
        im_reply_error(c, 413, msg);
        return -1;
    }
    if (b.oom) {
        im_jw_free(&b.errs);
        im_reply_error(c, 503, "out of memory");
        return -1;
    }
    if (b.j.err) { /* malformed JSON: 422 as FastAPI says it (json_invalid), and where */
        char ctxj[160];
        im_jw cw;
        im_jw_init(&cw, ctxj, sizeof ctxj - 1);
        im_jw_obj(&cw);
        im_jw_key(&cw, "error");
        im_jw_str(&cw, b.j.msg);
        im_jw_key(&cw, "offset");
        im_jw_uint(&cw, b.j.err_off);
        im_jw_obj_end(&cw);
        ctxj[im_jw_error(&cw) ? 0 : cw.len] = 0; /* the writer does not terminate */
        im_jw_reset(&b.errs);
        b.nerrs = 0;
        b.nloc = 0;
        im__bind_push(&b, NULL, 0, b.j.err_off);
        im__bind_error(&b, "json_invalid", b.j.err == IM_JSON_EDEPTH ? "JSON nested too deeply"
                                                                    : "JSON decode error",
                       NULL, 0, im_jw_error(&cw) ? NULL : ctxj);
        rc = 422;
    } else if (b.nerrs) {
        rc = 422;
    } else {
        rc = 0;
    }
    if (rc) {
        im_jw_arr_end(&b.errs);
        if (im_jw_error(&b.errs)) {
            im_reply_error(c, rc, b.j.err ? "malformed JSON" : "invalid request");
        } else {
            /* {"detail": [ ... ]} */
            size_t n = b.errs.len;
            char *body = im__arena_alloc(&c->arena, n + 12);
            if (!body) {
                im_reply_error(c, 503, "out of memory");
            } else {
                memcpy(body, "{\"detail\":", 10);
                memcpy(body + 10, b.errs.buf, n);
                body[10 + n] = '}';
                im_reply_json(c, rc, body, n + 11);
            }
        }
    }
    im_jw_free(&b.errs);
    return rc ? -1 : 0;
}
