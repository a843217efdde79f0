/* fake_loop.h — a loop with a real io_uring but no sockets, for driving a connection's input
 * path directly (tests and fuzz targets include it after the implementation). */
#ifndef IM_TEST_FAKE_LOOP_H
#define IM_TEST_FAKE_LOOP_H

/* Sets L up to serve with srv's routes; returns 0 or -errno when io_uring is unavailable. */
static inline int fake_loop_init(im_loop *L, im_server *srv)
{
    memset(L, 0, sizeof *L);
    L->srv = srv;
    L->o = srv->o; /* as im__loop_init takes them */
    if (im__modules_start(srv)) return -EINVAL; /* as im_server_start */
    int rc = io_uring_queue_init(256, &L->ring, 0);
    if (rc) return rc;
    L->hdrs = calloc((size_t)srv->o.max_headers, sizeof(im_header));
    L->bufsz = 4096;
    L->cap = 4;
    L->conns = calloc(L->cap, sizeof(im__conn));
    L->hwm = L->cap;
    L->free_head = L->dirty_head = IM__NIL;
    for (int t = 0; t < IM__T_COUNT; t++) L->thead[t] = L->ttail[t] = IM__NIL;
    L->date_sec = -1;
    im__clock(L); /* Date is then fixed */
    return 0;
}

/* SQEs the code queued (arming, cancels) target no socket: complete and forget them. */
static inline void fake_loop_drain(im_loop *L)
{
    struct io_uring_cqe *cqe;
    io_uring_submit(&L->ring);
    while (io_uring_peek_cqe(&L->ring, &cqe) == 0) io_uring_cqe_seen(&L->ring, cqe);
}

/* A connection in slot 0, as if just accepted with its recv armed; the old one is dropped. */
static inline im__conn *fake_conn(im_loop *L)
{
    im__conn *c = &L->conns[0];
    if (c->pending) { /* a deferred request nobody answered: drop it */
        im_ctx *x = c->pending;
        c->pending = NULL;
        x->is_detached = 1;
        im_reply(x, 500, NULL, NULL, 0);
    }
    im__in_free(c);
    im__out_free(L, c->out);
    uint32_t gen = c->gen + 1;
    memset(c, 0, sizeof *c);
    c->gen = gen;
    c->fd = -1;
    c->is_recv = 1;
    c->tprev = c->tnext = IM__NIL;
    L->dirty_head = IM__NIL;
    fake_loop_drain(L);
    return c;
}

/* Delivers bytes as one read would: in a buffer the parser may change, scribbled on after. */
static inline void fake_feed(im_loop *L, im__conn *c, const char *p, size_t n)
{
    char *buf = malloc(n ? n : 1);
    memcpy(buf, p, n);
    im__conn_on_data(L, c, buf, n);
    memset(buf, 0xee, n); /* nothing may point into a receive buffer after it is given back */
    free(buf);
}

/* What im__flush does besides sending: run input that waited for a deferred answer. */
static inline void fake_resume(im_loop *L)
{
    while (L->dirty_head != IM__NIL) {
        im__conn *c = &L->conns[L->dirty_head];
        L->dirty_head = c->next_dirty;
        c->is_dirty = 0;
        if (c->is_resume) {
            c->is_resume = 0;
            im__conn_process_held(L, c);
        }
    }
}

/* One loop iteration without sockets: what im__flush does besides sending (run held input,
 * choose each touched connection's timer), then the clock moves on by ms and the timers due
 * by then fire. Output is never sent, as if the peer read nothing. */
static inline void fake_tick(im_loop *L, uint32_t ms)
{
    while (L->dirty_head != IM__NIL) {
        im__conn *c = &L->conns[L->dirty_head];
        L->dirty_head = c->next_dirty;
        c->is_dirty = 0;
        if (c->phase == IM__PH_CLOSING) continue;
        if (c->is_resume) {
            c->is_resume = 0;
            if (!c->pending && !c->is_full) im__conn_process_held(L, c);
            if (c->phase == IM__PH_CLOSING) continue;
        }
        im__conn_retime(L, c, IM__PROGRESS_NONE);
    }
    L->now_ms += ms;
    im__timers(L);
}

static inline void fake_loop_free(im_loop *L)
{
    fake_conn(L);
    im__out_free(L, L->conns[0].out);
    fake_loop_drain(L);
    io_uring_queue_exit(&L->ring);
    free(L->hdrs);
    free(L->heap);
    free(L->conns);
    for (int k = 0; k < IM__OUT_CLASSES; k++)
        while (L->out_pool[k]) {
            im__buf *b = L->out_pool[k];
            memcpy(&L->out_pool[k], b->data, sizeof b);
            free(b);
        }
    while (L->ctx_free) {
        im_ctx *x = L->ctx_free;
        L->ctx_free = x->next_free;
        im__arena_free(&x->arena);
        free(x->xh);
        free(x);
    }
}
#endif
