/* redis.c — a Redis client that runs on an event loop: commands formatted by hiredis, sent
 * and received through the loop's io_uring (one send and one receive in flight), replies
 * parsed by hiredis's reader and handed to each command's callback in order. A lost
 * connection fails what was waiting and is made again with backoff; the loop never blocks.
 * Built with IM_HAVE_HIREDIS only (the CMake target sets it where libhiredis-dev is found).
 * The Redis task store (cluster.c) uses it on every loop. */

#if IM_HAVE_HIREDIS

/* redis://host[:port][/db]: 0, or -EINVAL with why in err. The name is resolved now
 * (start-up, not on a loop). */
IM__AHEAD static int im__redis_parse_url(const char *url, im__redis_addr *a, char *err, size_t cap)
{
    char host[256];
    const char *p = url, *h, *e;
    long port = 6379, db = 0;
    memset(a, 0, sizeof *a);
    if (strncmp(p, "redis://", 8)) {
        snprintf(err, cap, "'%s' is not a redis:// URL (redis://host:port/db)", url);
        return -EINVAL;
    }
    h = p += 8;
    if (*p == '[') { /* [v6 address] */
        h = ++p;
        while (*p && *p != ']') p++;
        if (*p != ']') goto bad;
        e = p++;
    } else {
        while (*p && *p != ':' && *p != '/') p++;
        e = p;
    }
    if (e == h || (size_t)(e - h) >= sizeof host) goto bad;
    memcpy(host, h, (size_t)(e - h));
    host[e - h] = 0;
    if (*p == ':') {
        char *q;
        port = strtol(p + 1, &q, 10);
        if (q == p + 1 || port < 1 || port > 65535) goto bad;
        p = q;
    }
    if (*p == '/' && p[1]) {
        char *q;
        db = strtol(p + 1, &q, 10);
        if (q == p + 1 || *q || db < 0 || db > 65535) goto bad;
        p = q;
    } else if (*p == '/') {
        p++;
    }
    if (*p) goto bad;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char ports[8];
    snprintf(ports, sizeof ports, "%ld", port);
    int rc = getaddrinfo(host, ports, &hints, &res);
    if (rc || !res) {
        snprintf(err, cap, "redis: cannot resolve '%s': %s", host, rc ? gai_strerror(rc) : "no address");
        return -EINVAL;
    }
    memcpy(&a->sa, res->ai_addr, res->ai_addrlen);
    a->salen = res->ai_addrlen;
    a->family = res->ai_family;
    freeaddrinfo(res);
    a->db = (int)db;
    snprintf(a->text, sizeof a->text, "%s:%ld/%ld", host, port, db);
    return 0;
bad:
    snprintf(err, cap, "'%s' is not a valid Redis URL (redis://host:port/db)", url);
    return -EINVAL;
}

/* At start-up, before the loops: connects, PINGs (and SELECTs) within timeout_ms, so that an
 * unreachable Redis is an error at once rather than 503s later. 0, or < 0 with why in err. */
IM__AHEAD static int im__redis_check(const im__redis_addr *a, int timeout_ms, char *err, size_t cap)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    char host[INET6_ADDRSTRLEN];
    int port;
    if (a->family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&a->sa)->sin6_addr, host, sizeof host);
        port = ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
    } else {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->sa)->sin_addr, host, sizeof host);
        port = ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
    }
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (c && !c->err) redisSetTimeout(c, tv);
    int rc = 0;
    if (!c || c->err) {
        snprintf(err, cap, "redis at %.120s is unreachable: %.127s", a->text, c ? c->errstr : "out of memory");
        rc = -ECONNREFUSED;
    } else {
        redisReply *r = redisCommand(c, a->db ? "SELECT %d" : "PING", a->db);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            snprintf(err, cap, "redis at %.120s does not answer: %.127s", a->text,
                     r ? r->str : c->errstr[0] ? c->errstr : "no reply");
            rc = -EPROTO;
        }
        if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
    return rc;
}

static void im__redis_connect(im__redis *r);

static void im__redis_retry_due(im__ltimer *t)
{
    im__redis *r = (im__redis *)(void *)((char *)t - offsetof(im__redis, retry));
    if (!r->L->is_stopping) im__redis_connect(r);
}

static void im__redis_connect_late(im__ltimer *t)
{
    im__redis *r = (im__redis *)(void *)((char *)t - offsetof(im__redis, ctimer));
    if (r->state != IM__REDIS_CONNECTING || !r->is_connect) return;
    struct io_uring_sqe *s = im__sqe(r->L); /* the connect completes with -ECANCELED */
    io_uring_prep_cancel64(s, IM__UD(IM__OP_REDIS, r->gen, r->slot << 2 | 1), 0);
    im__sqe_ignore(s);
}

/* Once nothing is in flight on the lost socket: closed, and tried again after the backoff. */
static void im__redis_settle(im__redis *r)
{
    if (r->state != IM__REDIS_LOST || r->is_connect || r->is_send || r->is_recv) return;
    if (r->fd >= 0) close(r->fd);
    r->fd = -1;
    r->state = IM__REDIS_DOWN;
    if (r->L->is_stopping) return;
    im__ltimer_start(r->L, &r->retry, r->backoff_ms);
    r->backoff_ms = r->backoff_ms * 2 > r->o.backoff_max_ms ? r->o.backoff_max_ms : r->backoff_ms * 2;
}

/* Every command waiting for a reply is told with a NULL one, in order. */
static void im__redis_fail_waiting(im__redis *r)
{
    while (r->qn) {
        im__redis_wait w = r->q[r->qhead];
        r->qhead = (r->qhead + 1) % r->qcap;
        r->qn--;
        if (w.cb) w.cb(w.arg, NULL);
    }
}

/* The connection is gone (or never came): every command waiting is told with a NULL reply. */
static void im__redis_lost(im__redis *r, const char *why)
{
    if (r->state == IM__REDIS_LOST || r->state == IM__REDIS_DOWN) return;
    if (r->state == IM__REDIS_UP || !r->logged_down)
        im_log(IM_LOG_WARN, "redis %s: connection lost (%s); trying again", r->addr.text, why);
    r->logged_down = 1;
    r->state = IM__REDIS_LOST;
    r->n_lost++;
    im__ltimer_stop(r->L, &r->ctimer);
    if (r->fd >= 0) shutdown(r->fd, SHUT_RDWR); /* what is in flight completes */
    r->out_len = 0;
    redisReaderFree(r->rd);
    r->rd = NULL;
    im__redis_fail_waiting(r); /* callbacks that queue again find it LOST and are refused */
    im__redis_settle(r);
}

static void im__redis_send(im__redis *r)
{
    if (r->is_send || r->state != IM__REDIS_UP || !r->out_len) return;
    char *t = r->snd; /* swap: what was queued goes out, the other buffer takes new commands */
    size_t tc = r->snd_cap;
    r->snd = r->out;
    r->snd_cap = r->out_cap;
    r->snd_len = r->out_len;
    r->snd_off = 0;
    r->out = t;
    r->out_cap = tc;
    r->out_len = 0;
    struct io_uring_sqe *s = im__sqe(r->L);
    io_uring_prep_send(s, r->fd, r->snd, r->snd_len, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, IM__UD(IM__OP_REDIS, r->gen, r->slot << 2 | 2));
    r->is_send = 1;
}

static void im__redis_recv(im__redis *r)
{
    struct io_uring_sqe *s = im__sqe(r->L);
    io_uring_prep_recv(s, r->fd, r->in, sizeof r->in, 0);
    io_uring_sqe_set_data64(s, IM__UD(IM__OP_REDIS, r->gen, r->slot << 2 | 3));
    r->is_recv = 1;
}

static int im__redis_queue_bytes(im__redis *r, const char *cmd, size_t n)
{
    if (r->out_len + n > r->out_cap) {
        size_t cap = r->out_cap ? r->out_cap : 4096;
        while (cap < r->out_len + n) cap *= 2;
        char *o = realloc(r->out, cap);
        if (!o) return -ENOMEM;
        r->out = o;
        r->out_cap = cap;
    }
    memcpy(r->out + r->out_len, cmd, n);
    r->out_len += n;
    return 0;
}

static int im__redis_wait_push(im__redis *r, im__redis_cb cb, void *arg)
{
    if (r->qn == r->qcap) {
        size_t cap = r->qcap ? r->qcap * 2 : 64;
        im__redis_wait *q = malloc(cap * sizeof *q);
        if (!q) return -ENOMEM;
        for (size_t i = 0; i < r->qn; i++) q[i] = r->q[(r->qhead + i) % r->qcap];
        free(r->q);
        r->q = q;
        r->qcap = cap;
        r->qhead = 0;
    }
    r->q[(r->qhead + r->qn++) % r->qcap] = (im__redis_wait){cb, arg};
    return 0;
}

/* A command of argc arguments (lens[i] bytes each; lens NULL: C strings), its reply handed to
 * cb(arg, reply) on this loop (reply NULL: the connection was lost first; the reply is freed
 * after cb returns). Sent with the next flush. 0; -ENOTCONN while Redis is down (the caller
 * answers 503), -ENOMEM. */
IM__AHEAD static int im__redis_cmd(im__redis *r, int argc, const char **argv, const size_t *lens, im__redis_cb cb,
                         void *arg)
{
    if (r->state != IM__REDIS_UP && r->state != IM__REDIS_CONNECTING) return -ENOTCONN;
    char *cmd;
    int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (n < 0) return -ENOMEM;
    int rc = im__redis_queue_bytes(r, cmd, (size_t)n);
    redisFreeCommand(cmd);
    if (!rc && (rc = im__redis_wait_push(r, cb, arg))) r->out_len -= (size_t)n;
    if (rc) return rc;
    r->n_cmds++;
    if (!r->is_dirty) { /* one send for every command queued in this iteration */
        r->is_dirty = 1;
        r->dirty_next = r->L->redis_dirty;
        r->L->redis_dirty = r;
    }
    return 0;
}

static void im__redis_flush(im_loop *L)
{
    while (L->redis_dirty) {
        im__redis *r = L->redis_dirty;
        L->redis_dirty = r->dirty_next;
        r->is_dirty = 0;
        im__redis_send(r);
    }
}

static void im__redis_selected(void *arg, redisReply *rep)
{
    im__redis *r = arg;
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        im_log(IM_LOG_ERROR, "redis %s: SELECT refused: %s", r->addr.text, rep->str);
        r->select_failed = 1; /* dropped once the reply is handled */
    }
}

static void im__redis_connect(im__redis *r)
{
    int fd = socket(r->addr.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r->state = IM__REDIS_CONNECTING;
        im__redis_lost(r, strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    r->fd = fd;
    r->gen = (r->gen + 1) & 0xffffffu;
    r->state = IM__REDIS_CONNECTING;
    r->out_len = r->qn = r->qhead = 0;
    r->select_failed = 0;
    if (!(r->rd = redisReaderCreate())) {
        im__redis_lost(r, "out of memory");
        return;
    }
    if (r->addr.db) { /* first of all, before anything queued while connecting */
        char db[12];
        snprintf(db, sizeof db, "%d", r->addr.db);
        const char *argv[] = {"SELECT", db};
        im__redis_cmd(r, 2, argv, NULL, im__redis_selected, r);
    }
    if (r->on_connect) r->on_connect(r, r->push_arg); /* e.g. SUBSCRIBE again, on each connect */
    struct io_uring_sqe *s = im__sqe(r->L);
    io_uring_prep_connect(s, fd, (const struct sockaddr *)&r->addr.sa, r->addr.salen);
    io_uring_sqe_set_data64(s, IM__UD(IM__OP_REDIS, r->gen, r->slot << 2 | 1));
    r->is_connect = 1;
    im__ltimer_start(r->L, &r->ctimer, r->o.connect_timeout_ms);
}

static void im__redis_on_cqe(im_loop *L, struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    uint32_t idx = IM__UD_IDX(ud), kind = idx & 3, slot = idx >> 2;
    im__redis *r = slot < IM__REDIS_SLOTS ? L->redis[slot] : NULL;
    int res = cqe->res;
    if (!r) return;
    if (IM__UD_GEN(ud) != r->gen) return; /* a socket of before: nothing of it is pending */
    if (kind == 1) {
        r->is_connect = 0;
        im__ltimer_stop(L, &r->ctimer);
        if (r->state != IM__REDIS_CONNECTING) {
            im__redis_settle(r);
            return;
        }
        if (res < 0) {
            im__redis_lost(r, res == -ECANCELED ? "connect timed out" : strerror(-res));
            return;
        }
        r->state = IM__REDIS_UP;
        r->backoff_ms = r->o.backoff_min_ms;
        if (r->logged_down) im_log(IM_LOG_INFO, "redis %s: connected again", r->addr.text);
        r->logged_down = 0;
        r->n_connects++;
        im__redis_recv(r);
        im__redis_send(r);
    } else if (kind == 2) {
        r->is_send = 0;
        if (r->state != IM__REDIS_UP) {
            im__redis_settle(r);
            return;
        }
        if (res <= 0) {
            im__redis_lost(r, res ? strerror(-res) : "send wrote nothing");
            return;
        }
        r->snd_off += (size_t)res;
        if (r->snd_off < r->snd_len) { /* a short send: the rest, before anything newer */
            struct io_uring_sqe *s = im__sqe(L);
            io_uring_prep_send(s, r->fd, r->snd + r->snd_off, r->snd_len - r->snd_off, MSG_NOSIGNAL);
            io_uring_sqe_set_data64(s, IM__UD(IM__OP_REDIS, r->gen, r->slot << 2 | 2));
            r->is_send = 1;
            return;
        }
        im__redis_send(r);
    } else if (kind == 3) {
        r->is_recv = 0;
        if (r->state != IM__REDIS_UP) {
            im__redis_settle(r);
            return;
        }
        if (res <= 0) {
            im__redis_lost(r, res ? strerror(-res) : "closed by the server");
            return;
        }
        r->bytes_in += (uint64_t)res;
        if (redisReaderFeed(r->rd, r->in, (size_t)res) != REDIS_OK) {
            im__redis_lost(r, "out of memory");
            return;
        }
        for (;;) {
            void *rep = NULL;
            if (redisReaderGetReply(r->rd, &rep) != REDIS_OK) {
                char why[160];
                snprintf(why, sizeof why, "bad reply: %s", r->rd->errstr);
                im__redis_lost(r, why);
                return;
            }
            if (!rep) break;
            r->n_replies++;
            if (r->qn) {
                im__redis_wait w = r->q[r->qhead];
                r->qhead = (r->qhead + 1) % r->qcap;
                r->qn--;
                if (w.cb) w.cb(w.arg, rep);
            } else if (r->on_push) { /* pub/sub: messages nobody asked for */
                r->on_push(r->push_arg, rep);
            }
            freeReplyObject(rep);
            if (r->state != IM__REDIS_UP) return; /* a callback lost it */
            if (r->select_failed) {
                im__redis_lost(r, "SELECT refused");
                return;
            }
        }
        im__redis_recv(r);
    }
}

/* Fills r (zeroed, its hooks set) as a client on loop L in slot, and connects it. */
static im__redis *im__redis_init(im__redis *r, im_loop *L, int slot, const im__redis_addr *a,
                                 const im__redis_opts *o)
{
    r->L = L;
    r->slot = slot;
    r->addr = *a;
    r->o = *o;
    if (!r->o.backoff_min_ms) r->o.backoff_min_ms = 50;
    if (r->o.backoff_max_ms < r->o.backoff_min_ms) r->o.backoff_max_ms = r->o.backoff_min_ms;
    if (!r->o.connect_timeout_ms) r->o.connect_timeout_ms = 2000;
    r->backoff_ms = r->o.backoff_min_ms;
    r->fd = -1;
    im__ltimer_init(&r->retry, im__redis_retry_due);
    im__ltimer_init(&r->ctimer, im__redis_connect_late);
    L->redis[slot] = r;
    im__redis_connect(r);
    return r;
}

/* A client on loop L in slot (< IM__REDIS_SLOTS), connecting at once. NULL: out of memory. */
IM__AHEAD static im__redis *im__redis_new(im_loop *L, int slot, const im__redis_addr *a, const im__redis_opts *o)
{
    im__redis *r = calloc(1, sizeof *r);
    return r ? im__redis_init(r, L, slot, a, o) : NULL;
}

/* The same, with a hook called on each connect (before anything else queued goes out) and
 * one for the replies no command waits for (pub/sub messages); arg is theirs. */
IM__AHEAD static im__redis *im__redis_new_with(im_loop *L, int slot, const im__redis_addr *a,
                                               const im__redis_opts *o, void (*on_connect)(im__redis *, void *),
                                               im__redis_cb on_push, void *arg)
{
    im__redis *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->on_connect = on_connect;
    r->on_push = on_push;
    r->push_arg = arg;
    return im__redis_init(r, L, slot, a, o);
}

/* After the loop's ring is gone (nothing is in flight): what is still waiting is told, and
 * everything freed. */
static void im__redis_free(im__redis *r)
{
    if (!r) return;
    r->L->redis[r->slot] = NULL;
    im__ltimer_stop(r->L, &r->retry);
    im__ltimer_stop(r->L, &r->ctimer);
    r->state = IM__REDIS_DOWN;
    im__redis_fail_waiting(r);
    if (r->fd >= 0) close(r->fd);
    if (r->rd) redisReaderFree(r->rd);
    free(r->q);
    free(r->out);
    free(r->snd);
    free(r);
}

#endif /* IM_HAVE_HIREDIS */
