/* conn.c — a connection's input: parse requests in place from the received bytes, hold a
 * partial request (and what is pipelined after it) between reads, enforce the limits, route,
 * and run handlers. Also the request context: pool, accessors, deferral. */


/* ---- contexts ---- */

static im_ctx *im__ctx_get(im_loop *L)
{
    im_ctx *x = L->ctx_free;
    if (x) {
        L->ctx_free = x->next_free;
        L->ctx_pooled--;
    } else if (!(x = calloc(1, sizeof *x))) {
        return NULL;
    }
    x->loop = L;
    return x;
}

static void im__ctx_put(im_loop *L, im_ctx *x)
{
    if (x->arena.head) im__arena_reset(&x->arena);
    if (x->acc) { /* a deferral that failed after taking it */
        free(x->acc);
        x->acc = NULL;
    }
    if (L->ctx_pooled >= 64) { /* enough kept for bursts of deferred requests */
        im__arena_free(&x->arena);
        free(x->xh);
        free(x);
        return;
    }
    x->next_free = L->ctx_free;
    L->ctx_free = x;
    L->ctx_pooled++;
}

const im_request *im_ctx_request(const im_ctx *x) { return &x->req; }
void *im_ctx_udata(const im_ctx *x) { return x->udata; }
im_loop *im_ctx_loop(const im_ctx *x) { return x->loop; }

im_str im_ctx_param(const im_ctx *x, const char *name)
{
    im_str none = {NULL, 0};
    if (x->route)
        for (unsigned i = 0; i < x->route->nparams; i++)
            if (strcmp(x->route->pnames[i], name) == 0) return x->params[i];
    return none;
}

im_str im_ctx_header(const im_ctx *x, const char *name)
{
    im_str none = {NULL, 0};
    for (unsigned i = 0; i < x->req.num_headers; i++)
        if (im_str_ieq(x->req.headers[i].name, name)) return x->req.headers[i].value;
    return none;
}

/* Moves a view that points into [from, from+n) to the same offset in to. */
static void im__rebase(im_str *s, const char *from, size_t n, char *to)
{
    if (s->ptr >= from && s->ptr < from + n) s->ptr = to + (s->ptr - from);
}

/* With the access log on, keeps x's method and target as they came: its line names them,
 * whoever takes its bytes (a deferral) or rewrites them (a forward). */
static void im__ctx_keep_acc(im_ctx *x)
{
    if (x->loop->o.access_log <= 0 || x->acc) return;
    size_t ml = x->req.method.len > 16 ? 16 : x->req.method.len;
    size_t tl = x->req.target.len > 512 ? 512 : x->req.target.len;
    if ((x->acc = malloc(ml + tl + 1))) {
        memcpy(x->acc, x->req.method.ptr, ml);
        memcpy(x->acc + ml, x->req.target.ptr, tl);
        x->acc_mlen = (uint16_t)ml;
        x->acc_tlen = (uint16_t)tl;
    }
}

/* Defers x. keep: with a copy of its request, which its views then point into; else without
 * one, for a caller that took what it needs of it (a process task's message): every view is
 * emptied, as nothing may read them once the connection's input is reused. */
static int im__ctx_defer(im_ctx *x, int keep, im_close_fn on_close, void *arg)
{
    im_loop *L = x->loop;
    im__conn *c = im__ctx_conn(x);
    if (x->is_deferred || x->is_done) return -EALREADY;
    if (!c) return -EPIPE;
    im__ctx_keep_acc(x);
    if (x->is_inline_call) { /* its bound arguments and im_call would dangle */
        im_log(IM_LOG_ERROR, "an inline endpoint cannot defer its request: declare it with "
               ".mode = IM_POOL (or IM_SERIAL) to answer later");
        return -EINVAL;
    }
    if (keep) {
        const char *from = x->raw;
        size_t n = x->raw_len, hn = x->req.num_headers * sizeof(im_header);
        /* headers first (keeps them aligned), then the request placed so that its body starts
         * 64-byte aligned: a binary body (an .npy array, float64s) is then viewed where it is
         * instead of being copied once more by the binder */
        size_t boff = x->req.body.len ? (size_t)(x->req.body.ptr - from) : 0;
        char *to = malloc(hn + 63 + n + 1);
        if (!to) return -ENOMEM;
        im_header *hs = (im_header *)(void *)to;
        char *req = to + hn + (64 - ((uintptr_t)(to + hn + boff) & 63)) % 64;
        memcpy(hs, x->req.headers, hn);
        memcpy(req, from, n);
        for (unsigned i = 0; i < x->req.num_headers; i++) {
            im__rebase(&hs[i].name, from, n, req);
            im__rebase(&hs[i].value, from, n, req);
        }
        im__rebase(&x->req.method, from, n, req);
        im__rebase(&x->req.target, from, n, req);
        im__rebase(&x->req.path, from, n, req);
        im__rebase(&x->req.query, from, n, req);
        im__rebase(&x->req.body, from, n, req);
        for (unsigned i = 0; i < IM_MAX_PARAMS; i++) im__rebase(&x->params[i], from, n, req);
        x->req.headers = hs;
        x->owned = to;
    } else {
        im_str none = {NULL, 0};
        x->req.method = x->req.target = x->req.path = x->req.query = x->req.body = none;
        x->req.headers = NULL;
        x->req.num_headers = 0;
        for (unsigned i = 0; i < IM_MAX_PARAMS; i++) x->params[i] = none;
        x->raw = NULL;
        x->raw_len = 0;
    }
    x->is_deferred = 1;
    c->is_probed = 0; /* a new request behind a FIN is probed anew */
    x->on_close = on_close;
    x->close_arg = arg;
    c->pending = x;
    L->deferred++;
    return 0;
}

int im_ctx_defer(im_ctx *x, im_close_fn on_close, void *arg) { return im__ctx_defer(x, 1, on_close, arg); }

/* The peer of a deferred request is gone: tell its owner, who still finishes it. */
static void im__ctx_detach(im_loop *L, im_ctx *x)
{
    x->is_detached = 1;
    if (x->on_close) x->on_close(x, x->close_arg);
    (void)L;
}

/* ---- request ids ---- */

/* A client's X-Request-ID is kept when it is 1..128 characters of [A-Za-z0-9._:-]: safe in
 * a header, a log line and JSON as it is. */
static int im__rid_ok(im_str v)
{
    if (v.len < 1 || v.len > IM__RID_MAX) return 0;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char ch = (unsigned char)v.ptr[i];
        if (!(isalnum(ch) || ch == '.' || ch == '_' || ch == ':' || ch == '-')) return 0;
    }
    return 1;
}

/* One pass over the request's headers for what every request needs: x's request id (the
 * client's when sane, else 32 random hex digits: xorshift128+ seeded from getrandom per loop,
 * as ids need to be unique, not secret) and, with compression on, whether it takes gzip. */
static void im__scan_headers(im_loop *L, im_ctx *x, const im_http_head *h)
{
    int gz = IM_HAVE_ZLIB && L->o.compress > 0, found = 0;
    for (unsigned i = 0; i < h->num_headers; i++) {
        const im_header *hd = &h->headers[i];
        if (gz && hd->name.len == 15 && strncasecmp(hd->name.ptr, "accept-encoding", 15) == 0)
            x->is_gzip_ok = im__accepts_gzip(hd->value) != 0; /* and the id is looked for on */
        if (found) continue;
        if (hd->name.len == 12 && strncasecmp(hd->name.ptr, "x-request-id", 12) == 0 &&
            im__rid_ok(hd->value)) {
            memcpy(x->rid, hd->value.ptr, hd->value.len);
            x->rid[hd->value.len] = 0;
            x->rid_len = (uint8_t)hd->value.len;
            found = 1;
        }
    }
    if (found) return;
    uint64_t *st = L->rid_rng;
    while (!st[0] && !st[1])
        if (getrandom(st, 16, 0) != 16) st[0] = im_log_clock_ns() | 1;
    static const char hex[] = "0123456789abcdef";
    for (int half = 0; half < 2; half++) {
        uint64_t a = st[0], b = st[1];
        st[0] = b;
        a ^= a << 23;
        st[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
        uint64_t v = st[1] + b;
        for (int k = 0; k < 16; k++) x->rid[half * 16 + k] = hex[(v >> (60 - 4 * k)) & 15];
    }
    x->rid[32] = 0;
    x->rid_len = 32;
}

const char *im_ctx_request_id(const im_ctx *x) { return x->rid; }

/* ---- routing and running a handler ---- */

/* Finds x's route by its request's method and path and runs its handler, or answers 404,
 * 405, 204 (OPTIONS) itself: for a request as it came and for one forwarded. */
static void im__route_run(im_loop *L, im__conn *c, im_ctx *x)
{
    const im_request *h = &x->req;
    const im__rnode *n;
    const im__route *r = NULL;
    im_str none = {NULL, 0};
    if ((n = im__rmatch(L->srv->root, h->path.ptr, h->path.ptr + h->path.len, h->method,
                        x->params, 0)) &&
        im__route_here(L->srv, c, r = im__route_pick(n, h->method))) {
        x->route = r;
        x->udata = x->route->udata;
        if (L->srv->worker_only && !r->is_probe)
            im_reply_error(x, 404, "this instance runs tasks only (--role worker): it serves "
                           "/health, /ready and /metrics");
        else
            x->route->fn(x);
        if (!x->is_done && !x->is_deferred) {
            im_log(IM_LOG_WARN, "handler for %.*s %.*s returned without answering",
                   (int)h->method.len, h->method.ptr, (int)h->path.len, h->path.ptr);
            im_reply_error(x, 500, "the handler returned without an answer");
        }
    } else if (h->path.len == 1 && h->path.ptr[0] == '*') {
        im__answer(x, 204, NULL, NULL, 0); /* OPTIONS * */
    } else if (!(n = im__rmatch(L->srv->root, h->path.ptr, h->path.ptr + h->path.len, none,
                                x->params, 0)) || !im__node_here(L->srv, c, n)) {
        im_reply_error(x, 404, "Not Found");
    } else {
        char allow[256];
        size_t al = im__router_allow(n, allow, sizeof allow);
        allow[al] = 0;
        im_res_header(x, "Allow", allow);
        if (im_str_eq(h->method, "OPTIONS")) im__answer(x, 204, NULL, NULL, 0);
        else im_reply_error(x, 405, "Method Not Allowed");
    }
}

void *im_ctx_alloc(im_ctx *x, size_t n) { return im__arena_alloc(&x->arena, n ? n : 1); }

/* Copies n bytes into x's arena, NUL-ended: a view that lives as long as the request. */
static im_str im__ctx_dup(im_ctx *x, const char *p, size_t n)
{
    im_str v = {NULL, 0};
    char *d = im__arena_alloc(&x->arena, n + 1);
    if (!d) return v;
    if (n) memcpy(d, p, n);
    d[n] = 0;
    v.ptr = d;
    v.len = n;
    return v;
}

int im_ctx_forward(im_ctx *x, const im_forward *f)
{
    im_loop *L = x->loop;
    im__conn *c = im__ctx_conn(x);
    if (x->is_done || x->is_deferred || x->is_streaming) return -EALREADY;
    if (!c) return -EPIPE;
    if (!f || !f->target || f->target[0] != '/') return -EINVAL;
    /* the new request's views, and its headers: the request's own, less those replaced */
    size_t tl = strlen(f->target), nh = 0, cap = x->req.num_headers + 2;
    im_str target = im__ctx_dup(x, f->target, tl), method = x->req.method;
    im_header *hs = im__arena_alloc(&x->arena, cap * sizeof *hs);
    if (f->method) method = im__ctx_dup(x, f->method, strlen(f->method));
    if (!target.ptr || !hs || !method.ptr) return -ENOMEM;
    for (unsigned i = 0; i < x->req.num_headers; i++) {
        im_str name = x->req.headers[i].name;
        if (f->content_type && (im_str_ieq(name, "content-type") ||
                                im_str_ieq(name, "content-length") ||
                                im_str_ieq(name, "transfer-encoding")))
            continue;
        if (f->prefer && im_str_ieq(name, "prefer")) continue;
        hs[nh++] = x->req.headers[i];
    }
    if (f->content_type) {
        hs[nh].name = im__ctx_dup(x, "Content-Type", 12);
        hs[nh].value = im__ctx_dup(x, f->content_type, strlen(f->content_type));
        if (!hs[nh].name.ptr || !hs[nh].value.ptr) return -ENOMEM;
        nh++;
    }
    if (f->prefer && f->prefer[0]) {
        hs[nh].name = im__ctx_dup(x, "Prefer", 6);
        hs[nh].value = im__ctx_dup(x, f->prefer, strlen(f->prefer));
        if (!hs[nh].name.ptr || !hs[nh].value.ptr) return -ENOMEM;
        nh++;
    }
    im_str body = x->req.body;
    if (f->content_type) {
        body.ptr = NULL;
        body.len = f->len;
        if (f->len && !(body = im__ctx_dup(x, f->body, f->len)).ptr) return -ENOMEM;
        if (!f->len) body.ptr = NULL;
    }
    im__ctx_keep_acc(x);
    const char *q = memchr(target.ptr, '?', tl);
    x->req.method = method;
    x->req.target = target;
    x->req.path.ptr = target.ptr;
    x->req.path.len = q ? (size_t)(q - target.ptr) : tl;
    x->req.query.ptr = q ? q + 1 : NULL;
    x->req.query.len = q ? tl - (size_t)(q + 1 - target.ptr) : 0;
    x->req.headers = hs;
    x->req.num_headers = (unsigned)nh;
    x->req.body = body;
    x->is_head = method.len == 4 && memcmp(method.ptr, "HEAD", 4) == 0;
    x->on_answer = f->on_answer;
    x->answer_arg = f->arg;
    im__route_run(L, c, x);
    return 0;
}

/* Runs the request whose bytes are raw[0..head_len) plus a body of blen right after them. */
static void im__dispatch(im_loop *L, im__conn *c, const im_http_head *h, char *raw,
                         size_t head_len, size_t blen)
{
    char *body = raw + head_len;
    im_ctx *x = im__ctx_get(L);
    if (!x) {
        im__conn_fail(L, c, 503, "out of memory", -1);
        return;
    }
    x->req.method = h->method;
    x->req.target = h->target;
    x->req.path = h->path;
    x->req.query = h->query;
    x->req.minor = h->minor;
    x->req.headers = h->headers;
    x->req.num_headers = h->num_headers;
    x->req.body.ptr = blen ? body : NULL;
    x->req.body.len = blen;
    x->raw = raw;
    x->raw_len = head_len + blen;
    c->is_fresh = 0;
    c->is_progress = 1;
    x->conn_idx = (uint32_t)(c - L->conns);
    x->conn_gen = c->gen;
    x->route = NULL;
    x->udata = NULL;
    x->is_head = h->method.len == 4 && memcmp(h->method.ptr, "HEAD", 4) == 0;
    x->keepalive = !h->conn_close && (h->minor || h->conn_keep_alive) && !L->is_stopping;
    x->is_deferred = x->is_done = x->is_streaming = x->stream_chunked = x->is_detached = 0;
    x->is_finished = x->is_in_answer = x->is_inline_call = x->is_npy_known = x->is_npy_accept = 0;
    x->is_gzip_ok = 0;
    x->is_dispatching = 1; /* finished inside its handler, it comes back to the pool below */
    x->on_close = NULL;
    x->on_answer = NULL;
    x->drain_fn = NULL;
    x->xh_len = 0;
    x->bytes_out = 0;
    x->task_id[0] = 0;
    x->t0_ns = L->o.access_log > 0 || L->o.metrics > 0 ? im_log_clock_ns() : 0;
    im__scan_headers(L, x, h);
    im_log_set_request_id(x->rid); /* lines logged while it is handled here carry it */

    if (L->o.cors_allow_origins && L->o.cors_allow_origins[0] && im__cors(x)) {
        /* a preflight, answered */
    } else {
        im__route_run(L, c, x);
    }
    im_log_set_request_id(NULL);
    x->is_dispatching = 0;
    if (!x->is_deferred || x->is_finished) im__ctx_put(L, x);
}

/* ---- parsing ---- */

/* Parses and runs the requests in buf[0..len). st carries the progress of a request begun in
 * an earlier call (zero for none). Returns the bytes fully handled; the caller keeps the rest
 * (a partial request, or requests waiting behind a deferred one) with st describing it.
 * buf is modified (chunked bodies are decoded in place) and *len may shrink (the framing of a
 * partly received chunked body is dropped). */
static size_t im__parse(im_loop *L, im__conn *c, char *buf, size_t *len, im__rstate *st)
{
    const im_server_opts *o = &L->o;
    im_http_head h;
    size_t off = 0;
    while (off < *len && !c->pending && !c->is_full && c->phase == IM__PH_OPEN) {
        char *r = buf + off, *body;
        size_t n = *len - off, total, blen;
        int have_head = 0;
        if (st->head_len == 0 && n >= 2 && r[0] == '\r' && r[1] == '\n') {
            /* blank lines before a request are ignored (RFC 9112 section 2.2): drop them
             * here, once, rather than have every later read parse them again */
            size_t k = 2;
            while (k + 1 < n && r[k] == '\r' && r[k + 1] == '\n') k += 2;
            off += k;
            st->scanned = 0;
            continue;
        }
        if (st->head_len == 0) {
            /* re-parse only when a line ended since last time (or past the limit) */
            if (st->scanned && n <= o->max_header_bytes &&
                !memchr(r + st->scanned, '\n', n - st->scanned)) {
                st->scanned = (uint32_t)n;
                break;
            }
            int hl = im_http_parse_head(r, n, &h, L->hdrs, (unsigned)o->max_headers,
                                        o->max_header_bytes);
            if (hl == IM_HTTP_INCOMPLETE) {
                st->scanned = (uint32_t)n;
                break;
            }
            if (hl == IM_HTTP_ERROR) {
                im__conn_fail(L, c, h.status, h.error, (long)(h.error_offset));
                return *len;
            }
            if (h.expect_unknown) {
                im__conn_fail(L, c, 417, "unsupported Expect value", -1);
                return *len;
            }
            st->head_len = (uint32_t)hl;
            if (h.chunked) {
                st->mode = IM__BODY_CHUNKED;
                st->raw_off = (uint32_t)hl;
                st->ch.max_total = im__body_limit(L->srv, o->max_body_bytes, &h, UINT64_MAX);
                st->ch.max_trailer = (uint32_t)o->max_header_bytes;
            } else if (h.has_content_length && h.content_length) {
                if (h.content_length > o->max_body_bytes &&
                    h.content_length > im__body_limit(L->srv, o->max_body_bytes, &h, h.content_length)) {
                    im__conn_fail(L, c, 413, "request body too large", -1);
                    return *len;
                }
                st->mode = IM__BODY_LENGTH;
                st->need = h.content_length;
            }
            if (h.expect_continue && h.minor && st->mode != IM__BODY_NONE && n == (size_t)hl) {
                char *p = im__out_reserve(L, c, 25);
                if (p) {
                    memcpy(p, "HTTP/1.1 100 Continue\r\n\r\n", 25);
                    c->out->len += 25;
                    im__conn_dirty(L, c);
                }
                st->continue_sent = 1;
            }
            have_head = 1;
        }
        body = r + st->head_len;
        if (st->mode == IM__BODY_LENGTH) {
            if (n - st->head_len < st->need) break;
            blen = (size_t)st->need;
            total = st->head_len + blen;
        } else if (st->mode == IM__BODY_CHUNKED) {
            size_t used, made;
            int rc = im_http_decode_chunked(&st->ch, body + st->body_have, r + st->raw_off,
                                            n - st->raw_off, &used, &made);
            st->raw_off += (uint32_t)used;
            st->body_have += (uint32_t)made;
            if (rc == IM_HTTP_ERROR) {
                im__conn_fail(L, c, st->ch.status, st->ch.error, -1);
                return *len;
            }
            if (rc == 0) {
                /* move the undecoded tail down over the framing already decoded: what is held
                 * is then the head, the body so far and one partial chunk line at most */
                size_t dec_end = st->head_len + st->body_have;
                if (st->raw_off > dec_end) {
                    memmove(r + dec_end, r + st->raw_off, n - st->raw_off);
                    *len -= st->raw_off - dec_end;
                    st->raw_off = (uint32_t)dec_end;
                }
                break;
            }
            blen = st->body_have;
            total = st->raw_off;
        } else {
            blen = 0;
            total = st->head_len;
        }
        if (!have_head) /* the head came in an earlier read: get its views again */
            im_http_parse_head(r, st->head_len, &h, L->hdrs, (unsigned)o->max_headers, 0);
        size_t head_len = st->head_len;
        memset(st, 0, sizeof *st);
        off += total;
        im__dispatch(L, c, &h, r, head_len, blen);
    }
    return off;
}

/* The most input a connection may hold: one full request and a read's worth behind it. */
static size_t im__in_limit(const im_loop *L)
{
    size_t body = L->o.max_body_bytes > L->srv->max_route_body ? L->o.max_body_bytes
                                                                 : L->srv->max_route_body;
    return L->o.max_header_bytes + body + 2 * (size_t)L->bufsz + 4096;
}

/* Keeps n bytes of input (a partial request described by st, or waiting requests). */
static int im__in_append(im_loop *L, im__conn *c, const char *p, size_t n, const im__rstate *st)
{
    im__in *in = c->in;
    size_t limit = im__in_limit(L), len = in ? in->len : 0;
    if (n > limit - len || len + n > limit) return -E2BIG;
    if (!in || in->cap - in->len < n) {
        size_t cap = in ? (size_t)in->cap * 2 : 1024;
        if (cap < len + n) cap = len + n;
        /* a Content-Length body: room for all of it at once */
        if (st && st->mode == IM__BODY_LENGTH && cap < st->head_len + st->need)
            cap = (size_t)(st->head_len + st->need);
        if (cap > limit) cap = limit;
        im__in *ni = realloc(in, sizeof *ni + cap);
        if (!ni) return -ENOMEM;
        if (!in) {
            ni->len = 0;
            memset(&ni->st, 0, sizeof ni->st);
        }
        ni->cap = (uint32_t)cap;
        c->in = in = ni;
    }
    if (st) in->st = *st;
    memcpy(in->data + in->len, p, n);
    in->len += (uint32_t)n;
    return 0;
}

static void im__in_free(im__conn *c)
{
    free(c->in);
    c->in = NULL;
}

/* Runs what the held input allows; drops it when done. */
static void im__conn_process_held(im_loop *L, im__conn *c)
{
    im__in *in = c->in;
    size_t used, len;
    if (!in) return;
    len = in->len;
    used = im__parse(L, c, in->data, &len, &in->st);
    if (c->phase == IM__PH_CLOSING) return; /* its input was freed */
    in->len = (uint32_t)len;
    /* past the last answer the rest is dropped; after the peer's FIN, what could not be run
     * although nothing blocks it is part of a request that can never complete */
    if (c->phase != IM__PH_OPEN || used == in->len ||
        (c->is_eof && !c->pending && !c->is_full)) {
        im__in_free(c);
        return;
    }
    if (used) {
        memmove(in->data, in->data + used, in->len - used);
        in->len -= (uint32_t)used;
    }
    if (in->cap > 65536 && in->len < in->cap / 4) { /* a big body is gone: shrink */
        uint32_t cap = in->len > 4096 ? in->len : 4096;
        im__in *ni = realloc(in, sizeof *ni + cap);
        if (ni) {
            ni->cap = cap;
            c->in = ni;
        }
    }
}

/* Bytes a blocked connection may hold before its reads are paused. */
static size_t im__pause_at(const im_loop *L) { return L->o.max_header_bytes; }

/* Data arrived in a receive buffer (ours until we return it to the ring). */
static void im__conn_on_data(im_loop *L, im__conn *c, char *data, size_t n)
{
    if (c->phase != IM__PH_OPEN) return; /* past the last answer: nobody will read it */
    if (!c->in && !c->pending && !c->is_full) {
        im__rstate st;
        memset(&st, 0, sizeof st);
        size_t used = im__parse(L, c, data, &n, &st);
        if (used < n && c->phase == IM__PH_OPEN &&
            im__in_append(L, c, data + used, n - used, &st)) {
            im__conn_fail(L, c, 413, "request too large", -1);
        }
    } else {
        if (im__in_append(L, c, data, n, NULL)) {
            im__in_free(c);
            if (c->pending) im__conn_close(L, c); /* an answer now would overtake the deferred one */
            else im__conn_fail(L, c, 413, "request too large", -1);
            return;
        }
        if (!c->pending && !c->is_full) im__conn_process_held(L, c);
        else if (c->in && c->in->len > im__pause_at(L)) im__conn_pause(L, c);
    }
}

/* A deferred request finished or the output drained: run what waited, read again. */
static void im__conn_resume(im_loop *L, im__conn *c)
{
    c->is_paused = 0;
    if (c->is_poll && c->phase != IM__PH_CLOSING) { /* reading again: the recv sees the FIN */
        struct io_uring_sqe *s = im__sqe(L);
        io_uring_prep_cancel64(s, IM__UD(IM__OP_POLL, c->gen, c - L->conns), 0);
        im__sqe_ignore(s);
    }
    if (c->in) { /* later: not from inside whoever finished the deferred request */
        c->in->st.scanned = 0;
        c->is_resume = 1;
        im__conn_dirty(L, c);
    }
    if (!c->is_recv && !c->is_eof && c->phase != IM__PH_CLOSING) im__conn_arm_recv(L, c);
}
