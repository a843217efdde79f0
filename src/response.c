/* response.c — answers: output buffers, the response head (status line, Date, framing),
 * whole replies, streamed replies and JSON error bodies. Everything here runs on the loop
 * thread and appends to the connection's output; the loop sends it once per iteration. */

/* Output buffers of three sizes are recycled per loop: the smallest holds a common answer (a
 * head and a short body), the others grow into pipelined batches and larger bodies; bigger
 * buffers go back to malloc. Sizing the common answer's buffer to it keeps memory small: one
 * iteration queues the answers of every connection it read before any is sent, so a burst on
 * 10,000 connections has a thousand or more buffers alive at once (and malloc keeps their
 * pages resident afterwards). */
static const uint32_t im__out_caps[IM__OUT_CLASSES] = {256u - (uint32_t)sizeof(im__buf),
                                                       2048u - (uint32_t)sizeof(im__buf),
                                                       16384u - (uint32_t)sizeof(im__buf)};
static const uint32_t im__out_pool_max[IM__OUT_CLASSES] = {1024u, 256u, 32u};

static im__buf *im__out_new(im_loop *L, size_t need)
{
    im__buf *b;
    for (int k = 0; k < IM__OUT_CLASSES; k++) {
        if (need > im__out_caps[k]) continue;
        if ((b = L->out_pool[k])) {
            memcpy(&L->out_pool[k], b->data, sizeof(im__buf *));
            L->out_pooled[k]--;
        } else if (!(b = malloc(sizeof *b + im__out_caps[k]))) {
            return NULL;
        }
        b->cap = im__out_caps[k];
        b->len = 0;
        return b;
    }
    if (need > UINT32_MAX - sizeof *b || !(b = malloc(sizeof *b + need))) return NULL;
    b->cap = (uint32_t)need;
    b->len = 0;
    return b;
}

static void im__out_free(im_loop *L, im__buf *b)
{
    if (!b) return;
    for (int k = 0; k < IM__OUT_CLASSES; k++)
        if (b->cap == im__out_caps[k] && L->out_pooled[k] < im__out_pool_max[k]) {
            memcpy(b->data, &L->out_pool[k], sizeof(im__buf *));
            L->out_pool[k] = b;
            L->out_pooled[k]++;
            return;
        }
    free(b);
}

/* Room for n more bytes at the end of c->out; NULL when memory or the 4 GiB buffer limit
 * says no. A pooled buffer that is too small moves to the next size (its bytes copied). */
static char *im__out_reserve(im_loop *L, im__conn *c, size_t n)
{
    im__buf *b = c->out;
    if (!b) {
        if (!(b = c->out = im__out_new(L, n))) return NULL;
    } else if (b->cap - b->len < n) {
        size_t need = (size_t)b->len + n, cap = (size_t)b->cap * 2;
        if (cap < need) cap = need;
        if (cap > UINT32_MAX - sizeof *b) return NULL;
        if (b->cap < im__out_caps[IM__OUT_CLASSES - 1]) { /* pooled: a larger size, or exact */
            im__buf *nb = im__out_new(L, need <= im__out_caps[IM__OUT_CLASSES - 1] ? need : cap);
            if (!nb) return NULL;
            memcpy(nb->data, b->data, b->len);
            nb->len = b->len;
            im__out_free(L, b);
            c->out = b = nb;
        } else {
            im__buf *nb = realloc(b, sizeof *nb + cap);
            if (!nb) return NULL;
            nb->cap = (uint32_t)cap;
            c->out = b = nb;
        }
    }
    return b->data + b->len;
}

/* Bytes queued and not yet acknowledged by a send. */
static size_t im__out_queued(const im__conn *c)
{
    return (c->out ? c->out->len : 0) + (c->sending ? c->sending->len - c->send_off : 0);
}

static void im__conn_dirty(im_loop *L, im__conn *c)
{
    if (c->is_dirty) return;
    c->is_dirty = 1;
    c->next_dirty = L->dirty_head;
    L->dirty_head = (uint32_t)(c - L->conns);
}

static const char *im__reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return status < 200 ? "Informational" : status < 300 ? "Success"
                  : status < 400 ? "Redirection" : status < 500 ? "Client Error" : "Server Error";
    }
}

static inline char *im__put(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}
#define IM__PUTS(o, lit) im__put(o, lit, sizeof(lit) - 1)

/* Framing of a response body. */
enum { IM__FRAME_LENGTH, IM__FRAME_CHUNKED, IM__FRAME_CLOSE };

/* What a response head says besides status and type. */
typedef struct im__head {
    int status;
    const char *ctype;   /* NULL: no Content-Type */
    size_t ctype_len;
    uint64_t length;     /* IM__FRAME_LENGTH: Content-Length (set by im__queue_response) */
    int frame;
    const char *xh;      /* extra header lines, each ending in CRLF */
    size_t xh_len;
    const char *rid;     /* X-Request-ID's value, or NULL */
    size_t rid_len;      /* at most IM__RID_MAX */
    size_t written;      /* set by im__queue_response: the bytes it queued */
    int keep;            /* the connection stays open */
    int minor;           /* the request's HTTP/1.<minor> */
} im__head;

/* The exact length im__write_head writes for h: the reservation then fits the smallest
 * pooled buffer for a common answer (a worst case of every line would not, and each answer
 * would take a 2 KiB buffer). */
static size_t im__head_len(const im__head *h)
{
    int st = h->status;
    size_t n = 13 + strlen(im__reason(st)) + 2 + 37 + 2; /* status line, Date, the blank line */
#if IM_ENABLE_SERVER_HEADER
    n += 19;
#endif
    if (h->ctype) n += 16 + h->ctype_len;
    if (h->frame == IM__FRAME_LENGTH && st >= 200 && st != 204 && st != 304) {
        size_t d = 1;
        for (uint64_t v = h->length; v >= 10; v /= 10) d++;
        n += 18 + d;
    } else if (h->frame == IM__FRAME_CHUNKED) {
        n += 28;
    }
    if (h->rid) n += 16 + h->rid_len;
    n += h->xh_len;
    if (!h->keep) n += 19;
    else if (h->minor == 0) n += 24;
    return n;
}

/* Writes a response head at o; returns the end. Room: im__head_len(h). */
static char *im__write_head(im_loop *L, char *o, const im__head *h)
{
    const char *reason = im__reason(h->status);
    int st = h->status;
    o = IM__PUTS(o, "HTTP/1.1 ");
    *o++ = (char)('0' + st / 100 % 10);
    *o++ = (char)('0' + st / 10 % 10);
    *o++ = (char)('0' + st % 10);
    *o++ = ' ';
    o = im__put(o, reason, strlen(reason));
    o = IM__PUTS(o, "\r\n");
#if IM_ENABLE_SERVER_HEADER
    o = IM__PUTS(o, "Server: immersive\r\n");
#endif
    o = im__put(o, L->date, 37);
    if (h->rid) {
        o = IM__PUTS(o, "X-Request-ID: ");
        o = im__put(o, h->rid, h->rid_len);
        o = IM__PUTS(o, "\r\n");
    }
    if (h->ctype) {
        o = IM__PUTS(o, "Content-Type: ");
        o = im__put(o, h->ctype, h->ctype_len);
        o = IM__PUTS(o, "\r\n");
    }
    if (h->frame == IM__FRAME_LENGTH) {
        if (st >= 200 && st != 204 && st != 304) {
            o = IM__PUTS(o, "Content-Length: ");
            o += im__u64_dec(o, h->length);
            o = IM__PUTS(o, "\r\n");
        }
    } else if (h->frame == IM__FRAME_CHUNKED) {
        o = IM__PUTS(o, "Transfer-Encoding: chunked\r\n");
    }
    if (h->xh_len) o = im__put(o, h->xh, h->xh_len);
    if (!h->keep) o = IM__PUTS(o, "Connection: close\r\n");
    else if (h->minor == 0) o = IM__PUTS(o, "Connection: keep-alive\r\n");
    return IM__PUTS(o, "\r\n");
}

/* Queues a whole response on c (no context needed: errors found while parsing use it too).
 * Returns 0 or -ENOMEM (then the connection is closed). */
static int im__queue_response(im_loop *L, im__conn *c, im__head *h, const void *body,
                              size_t blen, int is_head)
{
    h->length = blen; /* HEAD too: the length a GET would have */
    int nobody = is_head || h->status < 200 || h->status == 204 || h->status == 304;
    size_t room = im__head_len(h) + (nobody ? 0 : blen);
    char *o = im__out_reserve(L, c, room), *s = o;
    if (!o) {
        im_log(IM_LOG_ERROR, "loop %d: no memory for a %zu-byte response", L->index, room);
        im__conn_close(L, c);
        return -ENOMEM;
    }
    o = im__write_head(L, o, h);
#ifndef NDEBUG
    if ((size_t)(o - s) != im__head_len(h)) abort(); /* the reservation is exact: keep it so */
#endif
    if (!nobody && blen) o = im__put(o, body, blen);
    c->out->len += (uint32_t)(o - s);
    h->written = (size_t)(o - s);
    if (!h->keep && h->frame == IM__FRAME_LENGTH && c->phase == IM__PH_OPEN)
        c->phase = IM__PH_LAST; /* streams: at their end */
    if (im__out_queued(c) > L->o.max_output_bytes) c->is_full = 1;
    im__conn_dirty(L, c);
    return 0;
}

/* Writes {"detail":"<msg>"} (plus "offset" when >= 0) into buf; returns its length. */
static size_t im__error_body(char *buf, size_t cap, const char *msg, long offset)
{
    im_jw w;
    im_jw_init(&w, buf, cap);
    im_jw_obj(&w);
    im_jw_key(&w, "detail");
    im_jw_str(&w, msg);
    if (offset >= 0) {
        im_jw_key(&w, "offset");
        im_jw_int(&w, offset);
    }
    im_jw_obj_end(&w);
    return im_jw_error(&w) ? 0 : w.len;
}

/* Counts an answer in this loop's metrics: its route's status class and latency (x NULL: an
 * error found while parsing, under no route), and the bytes queued. */
static void im__met_answer(im_loop *L, const im_ctx *x, int status, uint64_t bytes, uint64_t us)
{
    im__met_add(&L->m_bytes_out, bytes);
    uint32_t mid = x && x->route ? x->route->mid : 0;
    if (mid >= L->nmet) return; /* routed after the loops started */
    im__rmet *m = &L->met[mid];
    unsigned cls = (unsigned)(status / 100 - 1);
    im__met_add(&m->status[cls < 5 ? cls : 4], 1);
    if (x && x->t0_ns) {
        im__met_add(&m->le[im__met_bucket(us)], 1);
        im__met_add(&m->sum_us, us);
    }
}

/* The peer of socket fd as text ("1.2.3.4:5678", "[::1]:5678") into text (when not NULL):
 * 1 when it is a loopback address, 0 when not, -1 when the socket cannot tell. */
static int im__peer(int fd, char *text, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char a[INET6_ADDRSTRLEN] = "?";
    if (getpeername(fd, (struct sockaddr *)&ss, &sl)) return -1;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)(const void *)&ss;
        if (text) {
            inet_ntop(AF_INET, &v4->sin_addr, a, sizeof a);
            snprintf(text, cap, "%s:%u", a, ntohs(v4->sin_port));
        }
        return (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)(const void *)&ss;
        if (text) {
            inet_ntop(AF_INET6, &v6->sin6_addr, a, sizeof a);
            snprintf(text, cap, "[%s]:%u", a, ntohs(v6->sin6_port));
        }
        return IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr) && v6->sin6_addr.s6_addr[12] == 127);
    }
    return -1;
}

/* The access log's line of an answer on c: x is its request (NULL for an error found while
 * parsing, which has none). The peer is asked of the socket once per connection: nothing is
 * kept for a log that is off by default. */
static void im__access(im__conn *c, const im_ctx *x, int status, uint64_t bytes, uint64_t us)
{
    char peer[INET6_ADDRSTRLEN + 8] = "-";
    if (!c->peer && im__peer(c->fd, peer, sizeof peer) >= 0) c->peer = strdup(peer);
    im_str m = {"-", 1}, t = {"-", 1};
    if (x && x->acc) { /* deferred: the request's bytes may be gone */
        m = (im_str){x->acc, x->acc_mlen};
        t = (im_str){x->acc + x->acc_mlen, x->acc_tlen};
    } else if (x) {
        m = x->req.method;
        t = x->req.target;
    }
    im__log_access(x && x->rid_len ? x->rid : NULL, c->peer ? c->peer : peer, m, t, status, bytes, us,
                   x && x->task_id[0] ? x->task_id : NULL);
}

/* An answer is queued on c: counted in the metrics and written in the access log, as on,
 * with one reading of the clock for both. */
static void im__answered(im_loop *L, im__conn *c, const im_ctx *x, int status, uint64_t bytes)
{
    uint64_t us = x && x->t0_ns ? (im_log_clock_ns() - x->t0_ns) / 1000u : 0;
    if (L->o.metrics > 0) im__met_answer(L, x, status, bytes, us);
    if (L->o.access_log > 0) im__access(c, x, status, bytes, us);
}

/* Answers a connection-level error (bad framing, limits, timeouts) and closes after it: the
 * input can no longer be trusted, so the rest of it is dropped (phase LAST). A connection
 * already past OPEN has its last answer: it is closed instead. */
static void im__conn_fail(im_loop *L, im__conn *c, int status, const char *msg, long offset)
{
    char body[256];
    im__head h = {0};
    if (c->phase == IM__PH_CLOSING) return;
    if (c->phase != IM__PH_OPEN) {
        im__conn_close(L, c);
        return;
    }
    h.status = status;
    h.ctype = "application/json";
    h.ctype_len = 16;
    h.keep = 0;
    h.minor = 1;
    im_log(IM_LOG_DEBUG, "loop %d: fd %d: %d %s", L->index, c->fd, status, msg);
    if (im__queue_response(L, c, &h, body, im__error_body(body, sizeof body, msg, offset), 0) ==
        0)
        im__answered(L, c, NULL, status, h.written);
}

/* The connection a context answers on, or NULL when its peer is gone. */
static im__conn *im__ctx_conn(const im_ctx *x)
{
    im_loop *L = x->loop;
    im__conn *c;
    if (x->is_detached || x->conn_idx >= L->hwm) return NULL;
    c = &L->conns[x->conn_idx];
    return c->gen == x->conn_gen && c->phase != IM__PH_CLOSING ? c : NULL;
}

/* Ends a deferred context: frees its copy of the request and gives its connection's line
 * back to the requests waiting behind it. */
static void im__ctx_finish(im_ctx *x)
{
    im_loop *L = x->loop;
    im__conn *c = im__ctx_conn(x);
    if (c && c->pending == x) {
        c->pending = NULL;
        im__conn_resume(L, c);
    }
    L->deferred--;
    free(x->owned);
    x->owned = NULL;
    free(x->acc);
    x->acc = NULL;
    if (x->is_dispatching || x->is_in_answer) x->is_finished = 1; /* put back by them */
    else im__ctx_put(L, x);
}

/* A handler's status as a final answer: 200..599 (a 1xx would end the request while its
 * client waits for the real answer). Anything else is logged and becomes a 500. */
static int im__final_status(int *status, const char **ct, const void **body, size_t *blen)
{
    static const char bad[] = "{\"detail\":\"the handler answered with an invalid status\"}";
    if (*status >= 200 && *status <= 599) return 0;
    im_log(IM_LOG_ERROR, "a handler answered with status %d: a final answer is 200..599; sent 500",
           *status);
    *status = 500;
    *ct = "application/json";
    *body = bad;
    *blen = sizeof bad - 1;
    return -EINVAL;
}

/* 1 when the answer's extra headers hold one named name (case-insensitive). */
static int im__xh_has(const im_ctx *x, const char *name)
{
    size_t n = strlen(name);
    if (!x->xh || !x->xh_len) return 0; /* (NULL + 0 is undefined in C) */
    for (const char *p = x->xh, *end = x->xh + x->xh_len; p < end;) {
        if ((size_t)(end - p) > n && p[n] == ':' && !strncasecmp(p, name, n)) return 1;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    return 0;
}

static int im__answer(im_ctx *x, int status, const char *ct, const void *body, size_t blen)
{
    im_loop *L = x->loop;
    im__conn *c;
    im__head h;
    int rc, bad;
    if (x->is_done) return -EALREADY;
    bad = im__final_status(&status, &ct, &body, &blen);
    if (x->on_answer) { /* a forwarded request's: its caller shapes the answer */
        im_answer_fn fn = x->on_answer;
        x->on_answer = NULL;
        x->is_in_answer = 1; /* finished in fn, it is not given back to the pool under us */
        fn(x, x->answer_arg, status, ct, body, blen);
        if (!x->is_done) {
            im_log(IM_LOG_ERROR, "a forwarded request's on_answer did not answer: sent 500");
            im_reply_error(x, 500, "the forwarded answer was not sent");
        }
        x->is_in_answer = 0;
        if (x->is_finished && !x->is_dispatching) im__ctx_put(L, x);
        return bad;
    }
    c = im__ctx_conn(x);
    char *gz = NULL;
    if (IM_HAVE_ZLIB && c && L->o.compress > 0 && blen >= L->o.compress_min_bytes &&
        status != 204 && status != 304 && im__compressible(ct) && !im__xh_has(x, "Content-Encoding")) {
        im_res_header(x, "Vary", "Accept-Encoding"); /* what a cache keys this answer on */
        /* HEAD too: its Content-Length is the one a GET would get */
        size_t gl = x->is_gzip_ok ? im__gzip(L, body, blen, &gz) : 0;
        if (gz && im_res_header(x, "Content-Encoding", "gzip") == 0) {
            body = gz;
            blen = gl;
        } /* else (no room for the header) the body goes as it is */
    }
    x->is_done = 1;
    if (!c) {
        rc = -EPIPE;
    } else {
        h.status = status;
        h.ctype = ct;
        h.ctype_len = ct ? strlen(ct) : 0;
        h.frame = IM__FRAME_LENGTH;
        h.xh = x->xh;
        h.xh_len = x->xh_len;
        h.rid = x->rid_len ? x->rid : NULL;
        h.rid_len = x->rid_len;
        h.keep = x->keepalive && !L->is_stopping;
        h.minor = x->req.minor;
        rc = im__queue_response(L, c, &h, body, blen, x->is_head);
        if (!rc) im__answered(L, c, x, status, h.written);
    }
    free(gz);
    if (x->is_deferred) im__ctx_finish(x);
    return rc ? rc : bad;
}

int im_reply(im_ctx *x, int status, const char *content_type, const void *body, size_t len)
{
    return im__answer(x, status, content_type, body, len);
}

int im_reply_json(im_ctx *x, int status, const char *json, size_t len)
{
    return im__answer(x, status, "application/json", json, len);
}

int im_reply_error(im_ctx *x, int status, const char *detail)
{
    char small[512];
    im_jw w;
    int rc;
    im_jw_init(&w, small, sizeof small);
    for (int pass = 0; pass < 2; pass++) {
        im_jw_obj(&w);
        im_jw_key(&w, "detail");
        im_jw_str(&w, detail);
        im_jw_obj_end(&w);
        if (im_jw_error(&w) != -ENOSPC) break;
        im_jw_init(&w, NULL, 0); /* a long detail: grow on the heap */
    }
    rc = im_jw_error(&w) ? im__answer(x, 500, NULL, NULL, 0)
                         : im__answer(x, status, "application/json", w.buf, w.len);
    im_jw_free(&w);
    return rc;
}

int im_res_header(im_ctx *x, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value), need = nl + vl + 4;
    if (!im__is_token(name) || x->is_done) return x->is_done ? -EALREADY : -EINVAL;
    for (size_t i = 0; i < vl; i++)
        if (value[i] == '\r' || value[i] == '\n') return -EINVAL;
    if (need > 65536 - x->xh_len) return -ENOSPC;
    if (x->xh_cap - x->xh_len < need) {
        uint32_t cap = x->xh_cap ? x->xh_cap : 256;
        while (cap - x->xh_len < need) cap *= 2;
        char *n = realloc(x->xh, cap);
        if (!n) return -ENOMEM;
        x->xh = n;
        x->xh_cap = cap;
    }
    char *o = x->xh + x->xh_len;
    o = im__put(o, name, nl);
    o = IM__PUTS(o, ": ");
    o = im__put(o, value, vl);
    o = IM__PUTS(o, "\r\n");
    x->xh_len = (uint32_t)(o - x->xh);
    return 0;
}

int im_stream_begin(im_ctx *x, int status, const char *content_type)
{
    im_loop *L = x->loop;
    im__conn *c;
    im__head h = {0};
    int rc;
    if (x->is_done) return -EALREADY;
    if (status < 200 || status > 599) return -EINVAL; /* nothing sent: answer otherwise */
    if (!x->is_deferred && (rc = im_ctx_defer(x, NULL, NULL)) != 0) return rc;
    x->is_done = 1;
    x->is_streaming = 1;
    if (!(c = im__ctx_conn(x))) return -EPIPE;
    x->stream_chunked = x->req.minor >= 1;
    x->keepalive = x->keepalive && x->stream_chunked && !L->is_stopping;
    h.status = status;
    h.ctype = content_type;
    h.ctype_len = content_type ? strlen(content_type) : 0;
    h.frame = x->stream_chunked ? IM__FRAME_CHUNKED : IM__FRAME_CLOSE;
    h.xh = x->xh;
    h.xh_len = x->xh_len;
    h.rid = x->rid_len ? x->rid : NULL;
    h.rid_len = x->rid_len;
    h.keep = x->keepalive; /* the close itself comes at im_stream_end() */
    h.minor = x->req.minor;
    x->stream_status = (int16_t)status;
    rc = im__queue_response(L, c, &h, NULL, 0, 1);
    x->bytes_out = h.written;
    return rc;
}

int im_stream_write(im_ctx *x, const void *data, size_t len)
{
    im_loop *L = x->loop;
    im__conn *c = im__ctx_conn(x);
    char *o, *s;
    if (!x->is_streaming) return -EINVAL;
    if (!c) return -EPIPE;
    if (len == 0 || x->is_head) return 0; /* a zero-size chunk would end the body */
    if (im__out_queued(c) > L->o.max_output_bytes) return -EAGAIN;
    if (!(o = s = im__out_reserve(L, c, len + 24))) return -ENOMEM;
    if (x->stream_chunked) {
        static const char hex[] = "0123456789abcdef";
        char t[16];
        int n = 0;
        for (size_t v = len; v; v >>= 4) t[n++] = hex[v & 15];
        while (n) *o++ = t[--n];
        o = IM__PUTS(o, "\r\n");
    }
    o = im__put(o, data, len);
    if (x->stream_chunked) o = IM__PUTS(o, "\r\n");
    c->out->len += (uint32_t)(o - s);
    x->bytes_out += (uint64_t)(o - s);
    im__conn_dirty(L, c);
    return 0;
}

int im_stream_on_drain(im_ctx *x, void (*fn)(im_ctx *x, void *arg), void *arg)
{
    im_loop *L = x->loop;
    im__conn *c = im__ctx_conn(x);
    if (!x->is_streaming) return -EINVAL;
    if (!c) return -EPIPE;
    x->drain_fn = fn;
    x->drain_arg = arg;
    im__conn_dirty(L, c); /* the flush looks at once: it may be drained already */
    return 0;
}

/* Tells the stream on c, if it waits for its output to drain and it has. */
static void im__conn_drained(im_loop *L, im__conn *c)
{
    im_ctx *x = c->pending;
    if (!x || !x->drain_fn || im__out_queued(c) > L->o.max_output_bytes / 2) return;
    void (*fn)(im_ctx *, void *) = x->drain_fn;
    x->drain_fn = NULL;
    fn(x, x->drain_arg);
}

int im_stream_end(im_ctx *x)
{
    im_loop *L = x->loop;
    im__conn *c;
    int rc = 0;
    if (!x->is_streaming) return -EINVAL;
    if (!(c = im__ctx_conn(x))) {
        rc = -EPIPE;
    } else {
        char *o = x->stream_chunked && !x->is_head ? im__out_reserve(L, c, 5) : NULL;
        if (o) {
            memcpy(o, "0\r\n\r\n", 5);
            c->out->len += 5;
            x->bytes_out += 5;
        } else if (x->stream_chunked && !x->is_head) {
            x->keepalive = 0; /* no memory for the last chunk: the body ends with the close */
            rc = -ENOMEM;
        }
        if (!x->keepalive && c->phase == IM__PH_OPEN) c->phase = IM__PH_LAST;
        im__conn_dirty(L, c);
        im__answered(L, c, x, x->stream_status, x->bytes_out);
    }
    im__ctx_finish(x);
    return rc;
}
