/* server.c — the server's lifecycle: options, listeners, loop threads and their rings,
 * signals, graceful stop, freeing. */

static int im__resolve_opts(im_server_opts *o)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
#define IM__DEF(field, value) \
    if (!o->field) o->field = value
    IM__DEF(host, IM_DEFAULT_HOST);
    IM__DEF(port, IM_DEFAULT_PORT);
    IM__DEF(loops, cores > 0 ? (int)cores : 1);
    IM__DEF(max_conns, IM_DEFAULT_MAX_CONNS);
    IM__DEF(max_header_bytes, IM_DEFAULT_MAX_HEADER_BYTES);
    IM__DEF(max_body_bytes, IM_DEFAULT_MAX_BODY_BYTES);
    IM__DEF(max_headers, IM_DEFAULT_MAX_HEADERS);
    IM__DEF(max_output_bytes, IM_DEFAULT_MAX_OUTPUT_BYTES);
    IM__DEF(header_timeout_ms, IM_DEFAULT_HEADER_TIMEOUT_MS);
    IM__DEF(body_timeout_ms, IM_DEFAULT_BODY_TIMEOUT_MS);
    IM__DEF(idle_timeout_ms, IM_DEFAULT_IDLE_TIMEOUT_MS);
    IM__DEF(send_timeout_ms, IM_DEFAULT_SEND_TIMEOUT_MS);
    IM__DEF(linger_ms, IM_DEFAULT_LINGER_MS);
    IM__DEF(shutdown_timeout_ms, IM_DEFAULT_SHUTDOWN_TIMEOUT_MS);
    IM__DEF(backlog, 4096);
    IM__DEF(sq_entries, IM_DEFAULT_SQ_ENTRIES);
    IM__DEF(recv_buffers, IM_DEFAULT_RECV_BUFFERS);
    IM__DEF(recv_buffer_size, IM_DEFAULT_RECV_BUFFER_SIZE);
    IM__DEF(workers, cores > 0 ? (unsigned)cores : 1);
    IM__DEF(queue_capacity, IM_DEFAULT_QUEUE_CAPACITY);
    IM__DEF(priority_levels, IM_DEFAULT_PRIORITY_LEVELS);
    IM__DEF(max_queued_bytes, IM_DEFAULT_MAX_QUEUED_BYTES);
    IM__DEF(arena_ratio, IM_DEFAULT_ARENA_RATIO);
    IM__DEF(arena_extra_bytes, IM_DEFAULT_ARENA_EXTRA_BYTES);
    IM__DEF(task_ttl_ms, IM_DEFAULT_TASK_TTL_MS);
    IM__DEF(task_memory_bytes, IM_DEFAULT_TASK_MEMORY_BYTES);
    IM__DEF(task_store, "memory");
    IM__DEF(role, "all");
    IM__DEF(task_claim_after_ms, 30000);
    IM__DEF(task_max_attempts, 3);
    IM__DEF(processes, cores > 0 ? (unsigned)cores : 1);
    IM__DEF(kill_grace_ms, IM_DEFAULT_KILL_GRACE_MS);
    IM__DEF(log_format, "text");
    IM__DEF(access_log, -1);
    IM__DEF(metrics, 1);
    IM__DEF(docs, 1);
    IM__DEF(cors_allow_methods, "GET");
    IM__DEF(cors_max_age, 600);
    IM__DEF(compress, 1);
    IM__DEF(compress_min_bytes, IM_DEFAULT_COMPRESS_MIN_BYTES);
    IM__DEF(compress_level, 6);
    IM__DEF(log_ring_lines, IM_DEFAULT_LOG_RING_LINES);
    IM__DEF(manage_prefix, IM_DEFAULT_MANAGE_PREFIX);
    IM__DEF(ready_queue_percent, IM_DEFAULT_READY_QUEUE_PERCENT);
#undef IM__DEF
    if (o->port < -1 || o->port > 65535 || o->manage_port < 0 || o->manage_port > 65535 ||
        (o->manage_port && o->manage_port == o->port) || o->loops < 1 || o->loops > IM_MAX_LOOPS ||
        o->max_conns < 1 || o->max_headers < 1 || o->max_header_bytes < 64 ||
        /* held input is counted in 32 bits: head + body + slack must stay far below 4 GiB */
        o->max_header_bytes > (1u << 24) || o->max_body_bytes > (1u << 30) ||
        o->header_timeout_ms < 0 || o->body_timeout_ms < 0 || o->idle_timeout_ms < 0 ||
        o->send_timeout_ms < 0 || o->linger_ms < 0 || o->shutdown_timeout_ms < 0 ||
        o->sq_entries > 32768 || o->recv_buffers > 32768 || o->batch_wait_us < 0 ||
        o->batch_wait_us > 1000000 ||
        (o->recv_buffers & (o->recv_buffers - 1)) || o->recv_buffer_size < 256 ||
        o->recv_buffer_size > (1u << 20) || o->workers > 1024 || o->queue_capacity > (1u << 24) ||
        o->priority_levels > IM_QUEUE_MAX_LEVELS || o->arena_ratio > 1024 || o->task_ttl_ms < 0 ||
        o->processes > 1024 || o->kill_grace_ms < 0 || o->ready_queue_percent > 100 ||
        o->compress_level > 9 ||
        (strcmp(o->log_format, "text") && strcmp(o->log_format, "json")) ||
        o->log_ring_lines > (1u << 20) || o->manage_prefix[0] != '/' ||
        o->arena_extra_bytes > ((size_t)1 << 32) || o->task_claim_after_ms < 100 ||
        o->task_max_attempts > 1000)
        return -EINVAL;
    if (o->max_conns < o->loops) o->loops = o->max_conns; /* at least one connection a loop */
    return 0;
}

im_server *im_server_new(const im_server_opts *opts)
{
    im_server *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (opts) s->o = *opts;
    if (im__resolve_opts(&s->o)) {
        free(s);
        errno = EINVAL;
        return NULL;
    }
    if (!(s->root = calloc(1, sizeof *s->root))) {
        free(s);
        errno = ENOMEM;
        return NULL;
    }
    s->port = -1;
    s->live = s->o;
    pthread_mutex_init(&s->live_mu, NULL);
    s->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&s->init_mu, NULL);
    pthread_cond_init(&s->init_cv, NULL);
    return s;
}

int im_server_route(im_server *s, const char *method, const char *pattern, im_handler_fn fn,
                    void *udata)
{
    if (s->started) return -EBUSY;
    return im__router_add(s->root, method, pattern, fn, udata);
}

int im_server_port(const im_server *s) { return s->port; }
im_executor *im_server_executor(const im_server *s) { return s->primary; }
im_executor *im_server_serial(const im_server *s) { return s->serial; }

/* One listening socket; *port is the port to bind (0: any) and becomes the one bound. */
static int im__listen(const char *host, int *port, int backlog)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } a;
    socklen_t alen;
    int one = 1, fd, rc;
    memset(&a, 0, sizeof a);
    if (inet_pton(AF_INET, host, &a.in4.sin_addr) == 1) {
        a.in4.sin_family = AF_INET;
        a.in4.sin_port = htons((uint16_t)*port);
        alen = sizeof a.in4;
    } else if (inet_pton(AF_INET6, host, &a.in6.sin6_addr) == 1) {
        a.in6.sin6_family = AF_INET6;
        a.in6.sin6_port = htons((uint16_t)*port);
        alen = sizeof a.in6;
    } else {
        im_log(IM_LOG_ERROR, "host '%s' is not an IPv4 or IPv6 address", host);
        return -EINVAL;
    }
    fd = socket(a.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    /* TCP_NODELAY is inherited by accepted sockets: responses leave at once */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) ||
        bind(fd, &a.sa, alen) || listen(fd, backlog) || getsockname(fd, &a.sa, &alen)) {
        rc = -errno;
        close(fd);
        return rc;
    }
    *port = ntohs(a.sa.sa_family == AF_INET ? a.in4.sin_port : a.in6.sin6_port);
    return fd;
}

/* Sets up the loop's ring, buffer ring and connection table; runs on the loop's thread
 * (IORING_SETUP_SINGLE_ISSUER wants the submitting thread to be the creator). */
static int im__loop_init(im_loop *L)
{
    const im_server_opts *o = &L->srv->o;
    static const struct {
        unsigned flags;
        const char *name;
    } modes[] = {
        {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "SINGLE_ISSUER|DEFER_TASKRUN"},
        {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, "COOP_TASKRUN|TASKRUN_FLAG"},
        {0, "plain"},
    };
    struct io_uring_params p;
    struct io_uring_probe *probe;
    struct io_uring_buf_reg reg;
    struct timespec ts;
    int rc = -EINVAL;
    unsigned m;
    for (m = 0; m < sizeof modes / sizeof *modes; m++) {
        memset(&p, 0, sizeof p);
        p.flags = modes[m].flags | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
        p.cq_entries = o->sq_entries * 4; /* CQ overflow falls to a slow path: keep it roomy */
        rc = io_uring_queue_init_params(o->sq_entries, &L->ring, &p);
        if (rc != -EINVAL) break;
        if (L->index == 0)
            im_log(IM_LOG_WARN, "io_uring refused %s (kernel too old?); trying the next mode",
                   modes[m].name);
    }
    if (rc) {
        if (rc == -EPERM || rc == -ENOSYS)
            im_log(IM_LOG_ERROR, "io_uring is not available (%s): it may be disabled by the "
                   "kernel.io_uring_disabled sysctl (set it to 0) or by a container's seccomp "
                   "policy (allow io_uring_setup/enter/register)", strerror(-rc));
        else if (rc == -ENOMEM)
            im_log(IM_LOG_ERROR, "io_uring_queue_init: out of memory; the locked-memory limit "
                   "(ulimit -l, RLIMIT_MEMLOCK) may be too low");
        else
            im_log(IM_LOG_ERROR, "io_uring_queue_init: %s", strerror(-rc));
        return rc;
    }
    if (L->index == 0)
        im_log(IM_LOG_INFO, "io_uring: %s, %u SQ / %u CQ entries%s%s", modes[m].name,
               p.sq_entries, p.cq_entries, p.features & IORING_FEAT_NODROP ? ", NODROP" : "",
               p.features & IORING_FEAT_EXT_ARG ? ", EXT_ARG" : "");
    L->has_ext_arg = !!(p.features & IORING_FEAT_EXT_ARG);
    if (!L->has_ext_arg && L->index == 0)
        im_log(IM_LOG_WARN, "io_uring lacks EXT_ARG (kernel 5.11+): timed waits cost an SQE");
    /* saves a descriptor lookup per enter; optional */
    L->is_ring_registered = io_uring_register_ring_fd(&L->ring) == 1;

    /* the loop's own enter flushes the SQ by moving the tail only: make sure the index array
     * is the identity whatever liburing did (absent with IORING_SETUP_NO_SQARRAY) */
    if (L->ring.sq.array)
        for (unsigned i = 0; i < *L->ring.sq.kring_entries; i++) L->ring.sq.array[i] = i;
    /* min_wait is only trusted with DEFER_TASKRUN: until a late-2025 kernel fix, a completion
     * after the min wait could fail to wake a waiter in the other modes */
    if (o->batch_wait_us > 0 && (p.features & IM__FEAT_MIN_TIMEOUT) && m == 0 &&
        L->has_ext_arg) {
        L->batch_us = (uint32_t)o->batch_wait_us;
        if (L->index == 0)
            im_log(IM_LOG_INFO, "batch wait active: up to %d us per wait under load",
                   o->batch_wait_us);
    } else if (o->batch_wait_us > 0 && L->index == 0)
        im_log(IM_LOG_WARN, "batch_wait_us is ignored: it needs io_uring MIN_TIMEOUT (Linux "
               "6.12+) and DEFER_TASKRUN");
    probe = io_uring_get_probe_ring(&L->ring);
    if (probe) {
        static const int need[] = {IORING_OP_ACCEPT, IORING_OP_RECV, IORING_OP_SEND,
                                   IORING_OP_ASYNC_CANCEL, IORING_OP_CLOSE, IORING_OP_READ};
        for (unsigned i = 0; i < sizeof need / sizeof *need; i++)
            if (!io_uring_opcode_supported(probe, need[i])) {
                im_log(IM_LOG_ERROR, "io_uring lacks opcode %d: kernel 6.0 or newer is needed",
                       need[i]);
                rc = -EOPNOTSUPP;
            }
        io_uring_free_probe(probe);
        if (rc) goto fail;
    }

    /* provided buffers: liburing 2.3 has no io_uring_setup_buf_ring, so map and register.
     * The buffers are touched now: a fixed cost, not one paid on the first requests. */
    L->nbufs = o->recv_buffers;
    L->bufsz = o->recv_buffer_size;
    L->br_bytes = (size_t)L->nbufs * sizeof(struct io_uring_buf);
    L->bufs_bytes = (size_t)L->nbufs * L->bufsz;
    L->br = mmap(NULL, L->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    L->bufs = mmap(NULL, L->bufs_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (L->br == MAP_FAILED || L->bufs == MAP_FAILED) {
        rc = -ENOMEM;
        goto fail;
    }
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (unsigned long)L->br;
    reg.ring_entries = L->nbufs;
    reg.bgid = 0;
    if ((rc = io_uring_register_buf_ring(&L->ring, &reg, 0)) != 0) {
        im_log(IM_LOG_ERROR, "io_uring_register_buf_ring: %s%s", strerror(-rc),
               rc == -ENOMEM ? " (locked-memory limit, ulimit -l?)" : " (kernel 5.19+ needed)");
        goto fail;
    }
    io_uring_buf_ring_init(L->br);
    for (uint32_t i = 0; i < L->nbufs; i++)
        io_uring_buf_ring_add(L->br, L->bufs + (size_t)i * L->bufsz, L->bufsz, (unsigned short)i,
                              io_uring_buf_ring_mask(L->nbufs), (int)i);
    io_uring_buf_ring_advance(L->br, (int)L->nbufs);

    /* connection slots: reserved address space, touched only as connections come; any loop
     * may get all of them (the kernel spreads connections over the listeners by hash) */
    L->cap = (uint32_t)o->max_conns + (o->max_conns / 16 > 16 ? (uint32_t)o->max_conns / 16 : 16);
    L->conns_bytes = (size_t)L->cap * sizeof(im__conn);
    L->conns = mmap(NULL, L->conns_bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    L->hdrs = malloc((size_t)o->max_headers * sizeof(im_header));
    L->efd = eventfd(0, EFD_CLOEXEC);
    if (L->conns == MAP_FAILED || !L->hdrs || L->efd < 0) {
        rc = -ENOMEM;
        goto fail;
    }
    L->free_head = L->dirty_head = IM__NIL;
    for (int t = 0; t < IM__T_COUNT; t++) L->thead[t] = L->ttail[t] = IM__NIL;
    im__loop_live(L); /* L->o and the timers' durations */
    L->tdur[IM__T_PROBE] = IM__PROBE_MS;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    L->clock_base_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    L->date_sec = -1;
    im__clock(L);
    L->rnd_off = sizeof L->rnd; /* task ids: filled on first use */
    if (L->index == 0 && L->srv->store) { /* the store's TTL is kept by loop 0 */
        im__ltimer_init(&L->srv->evict_timer, im__evict_tick);
        im__ltimer_start(L, &L->srv->evict_timer, 1000);
    }
    if ((rc = im__cl_loop_init(L))) goto fail; /* its Redis connections, when shared */
    im__arm_accept(L, 0);
    if (L->lis[1].fd >= 0) im__arm_accept(L, 1);
    im__arm_wake(L);
    if (L->index == 0 && L->srv->cfgw) im__cfgw_arm(L); /* the config files */
    return 0;
fail:
    io_uring_queue_exit(&L->ring);
    return rc;
}

/* Frees what im__loop_init made (the ring is already gone). */
static void im__loop_free(im_loop *L)
{
#if IM_HAVE_HIREDIS
    for (int i = 0; i < IM__REDIS_SLOTS; i++) im__redis_free(L->redis[i]);
#endif
    im__cl_loop_free(L);
    free(L->met);
    im__gzip_free(L);
    while (atomic_load_explicit(&L->posting, memory_order_acquire)) /* see im_loop_post */
        sched_yield();
    while (L->run_pool) {
        im__taskrun *r = L->run_pool;
        L->run_pool = r->next_free;
        free(r);
    }
    while (L->ctx_free) {
        im_ctx *x = L->ctx_free;
        L->ctx_free = x->next_free;
        im__arena_free(&x->arena);
        free(x->xh);
        free(x);
    }
    for (int k = 0; k < IM__OUT_CLASSES; k++)
        while (L->out_pool[k]) {
            im__buf *b = L->out_pool[k];
            memcpy(&L->out_pool[k], b->data, sizeof(im__buf *));
            free(b);
        }
    if (L->conns && L->conns != MAP_FAILED) {
        for (uint32_t i = 0; i < L->hwm; i++) { /* only after a forced stop */
            im__in_free(&L->conns[i]);
            free(L->conns[i].out);
            free(L->conns[i].sending);
            free(L->conns[i].peer);
        }
        munmap(L->conns, L->conns_bytes);
    }
    if (L->br && L->br != MAP_FAILED) munmap(L->br, L->br_bytes);
    if (L->bufs && L->bufs != MAP_FAILED) munmap(L->bufs, L->bufs_bytes);
    free(L->hdrs);
    free(L->heap);
    if (L->efd >= 0) close(L->efd);
    for (int i = 0; i < 2; i++)
        if (L->lis[i].fd >= 0) close(L->lis[i].fd);
    free(L);
}

static void *im__loop_main(void *arg)
{
    im_loop *L = arg;
    im_server *s = L->srv;
    sigset_t all;
    char name[16];
    /* process-directed signals go to the thread that waits for them, never to a loop */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    snprintf(name, sizeof name, "im-loop-%d", L->index);
    pthread_setname_np(pthread_self(), name);
    im__cur_loop = L;
    /* the metrics of every route, in memory of this loop's own (first touched here) */
    size_t mb = ((size_t)(s->root->nall + 1) * sizeof(im__rmet) + 63) / 64 * 64;
    if ((L->met = aligned_alloc(64, mb))) {
        memset(L->met, 0, mb);
        L->nmet = s->root->nall + 1;
    }
    L->init_rc = im__loop_init(L);
    pthread_mutex_lock(&s->init_mu);
    s->init_left--;
    pthread_cond_broadcast(&s->init_cv);
    pthread_mutex_unlock(&s->init_mu);
    if (L->init_rc) return NULL;
    im__loop_run(L);
    io_uring_submit(&L->ring); /* the last closes */
    io_uring_queue_exit(&L->ring);
    return NULL;
}

/* Lets the process hold as many descriptors as it may: one per connection. */
static void im__raise_nofile(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

static void im__stop_loops(im_server *s, int n)
{
    for (int i = 0; i < n; i++) {
        im_loop *L = s->loops[i];
        uint64_t one = 1;
        atomic_store_explicit(&L->stop_req, 1, memory_order_release);
        if (write(L->efd, &one, sizeof one) < 0) { /* the loop still sees stop_req later */
        }
    }
    for (int i = 0; i < n; i++) pthread_join(s->loops[i]->thread, NULL);
}

/* SIGINT/SIGTERM wait, blocked, for im_server_run()'s signalfd; SIGPIPE is ignored. */
static void im__block_signals(im_server *s)
{
    sigset_t set;
    if (s->o.no_signals || s->sigs_blocked) return;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, &s->sig_old);
    signal(SIGPIPE, SIG_IGN);
    s->sigs_blocked = 1;
}

/* The log as the options say (format, file, ring): before anything is forked, so that the
 * fork server and its workers write to the same file in the same format. */
static int im__log_setup(im_server *s)
{
    im_log_opts lo = {0};
    lo.json = !strcmp(s->o.log_format, "json");
    lo.file = s->o.log_file && *s->o.log_file ? s->o.log_file : NULL;
    lo.ring_lines = s->o.log_ring_lines;
    int rc = im_log_configure(&lo);
    if (rc) im_log(IM_LOG_ERROR, "cannot open the log file %s: %s", lo.file, strerror(-rc));
    return rc;
}

int im_server_start(im_server *s)
{
    int port = s->o.port < 0 ? 0 : s->o.port, rc = 0, n;
    int mport = s->o.manage_port; /* manage.port: its endpoints on a listener of their own */
    const char *mhost = s->o.manage_host && s->o.manage_host[0] ? s->o.manage_host : s->o.host;
    if (s->started) return -EALREADY;
    if ((rc = im__log_setup(s))) return rc;
    /* the fork server first (process mode), while there may be no thread yet (im_main made
     * it already, before any) */
    if ((rc = im__procs_prestart(s))) {
        im_log(IM_LOG_ERROR, "cannot start the fork server of process mode: %s", strerror(-rc));
        return rc;
    }
    im__block_signals(s); /* from now on a signal waits for im_server_run() */
    im__raise_nofile();
    if ((rc = im_log_start())) { /* lines are written directly meanwhile: no reason to stop */
        im_log(IM_LOG_WARN, "no log writer thread (%s): lines are written directly",
               strerror(-rc));
        rc = 0;
    }
    if (!s->primary) {
        im_executor_opts eo = {0};
        eo.name = "im-pool";
        eo.threads = s->o.workers;
        eo.capacity = s->o.queue_capacity;
        eo.levels = s->o.priority_levels;
        s->primary = im_executor_new(&eo);
        eo.name = "im-serial";
        eo.threads = 1;
        s->serial = s->primary ? im_executor_new(&eo) : NULL;
        if (!s->serial) {
            rc = -errno;
            im_log(IM_LOG_ERROR, "cannot start the executors: %s", strerror(errno));
            im_executor_free(s->primary);
            s->primary = NULL;
            return rc;
        }
    }
    if ((rc = im__procs_start(s))) return rc;
    /* the modules that are on: init (which may make executors), then their routes; a module
     * that fails stops the start (im_server_free runs the fini of those started) */
    if ((rc = im__modules_start(s))) return rc;
    /* tasks.store: Redis, once the endpoints (their priority levels) are known */
    if (!s->cluster && (rc = im__cl_start_server(s))) return rc;
    if ((rc = im__manage_routes(s))) return rc;
    s->loops = calloc((size_t)s->o.loops, sizeof *s->loops);
    if (!s->loops) return -ENOMEM;
    s->nloops = s->o.loops;
    for (n = 0; n < s->nloops; n++) {
        im_loop *L = calloc(1, sizeof *L);
        if (!L) {
            rc = -ENOMEM;
            break;
        }
        L->srv = s;
        L->index = n;
        L->efd = -1;
        L->lis[0].fd = L->lis[1].fd = -1;
        atomic_init(&L->posts, NULL);
        atomic_init(&L->stop_req, 0);
        s->loops[n] = L;
        if ((L->lis[0].fd = im__listen(s->o.host, &port, s->o.backlog)) < 0) {
            rc = L->lis[0].fd;
            im_log(IM_LOG_ERROR, "cannot listen on %s:%d: %s", s->o.host, port, strerror(-rc));
            break;
        }
        if (s->o.manage_port > 0 &&
            (L->lis[1].fd = im__listen(mhost, &mport, s->o.backlog)) < 0) {
            rc = L->lis[1].fd;
            im_log(IM_LOG_ERROR, "cannot listen on %s:%d (manage.port): %s", mhost, mport,
                   strerror(-rc));
            break;
        }
    }
    if (rc == 0) {
        s->init_left = s->nloops;
        for (n = 0; n < s->nloops; n++) {
            if ((rc = -pthread_create(&s->loops[n]->thread, NULL, im__loop_main, s->loops[n]))) {
                pthread_mutex_lock(&s->init_mu);
                s->init_left -= s->nloops - n;
                pthread_mutex_unlock(&s->init_mu);
                break;
            }
        }
        pthread_mutex_lock(&s->init_mu);
        while (s->init_left > 0) pthread_cond_wait(&s->init_cv, &s->init_mu);
        pthread_mutex_unlock(&s->init_mu);
        int started = n;
        for (int i = 0; i < started && rc == 0; i++) rc = s->loops[i]->init_rc;
        if (rc) {
            im__stop_loops(s, started); /* threads whose init failed return at once */
            n = s->nloops;
        }
    }
    if (rc) {
        for (int i = 0; i < s->nloops; i++)
            if (s->loops[i]) im__loop_free(s->loops[i]);
        free(s->loops);
        s->loops = NULL;
        s->nloops = 0;
        return rc;
    }
    s->port = port;
    s->started = 1;
    if (mport > 0)
        im_log(IM_LOG_INFO, "management endpoints on http://%s:%d (manage.port), not on %d",
               mhost, mport, port);
    atomic_store(&s->loops_ready, 1);
    im_log(IM_LOG_INFO, "listening on http://%s:%d with %d loop%s", s->o.host, port, s->nloops,
           s->nloops == 1 ? "" : "s");
    return 0;
}

void im_server_stop(im_server *s)
{
    uint64_t one = 1;
    atomic_store(&s->stop_asked, 1);
    if (write(s->stop_efd, &one, sizeof one) < 0) { /* async-signal-safe; nothing to do */
    }
}

/* Waits on the stop eventfd (and the signal fd, when >= 0), then stops the loops. */
static int im__wait(im_server *s, int sfd)
{
    if (!s->started || s->joined) return 0;
    while (!atomic_load(&s->stop_asked)) {
        struct pollfd pf[2] = {{s->stop_efd, POLLIN, 0}, {sfd, POLLIN, 0}};
        int r = poll(pf, sfd >= 0 ? 2 : 1, -1);
        if (r < 0 && errno != EINTR) break;
        if (sfd >= 0 && (pf[1].revents & POLLIN)) {
            struct signalfd_siginfo si;
            memset(&si, 0, sizeof si);
            if (read(sfd, &si, sizeof si) != (ssize_t)sizeof si) si.ssi_signo = 0;
            if (si.ssi_signo == SIGHUP) {
                int rc = im_log_reopen(); /* logrotate's convention */
                if (rc) im_log(IM_LOG_ERROR, "SIGHUP: cannot reopen the log file: %s",
                               strerror(-rc));
                else im_log(IM_LOG_INFO, "SIGHUP: log file reopened");
                continue;
            }
            if (si.ssi_signo) {
                im_log(IM_LOG_INFO, "signal %s: shutting down gracefully (up to %d ms)",
                       strsignal((int)si.ssi_signo), s->o.shutdown_timeout_ms);
                break;
            }
        }
    }
    atomic_store(&s->stopping, 1);
    /* queued tasks end at once (CANCELLED: their callers are answered while the loops still
     * run); running ones may finish within the same deadline as the requests */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t t0 = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    im__cl_stop(s); /* no more tasks taken from the cluster */
    if (s->primary) im_executor_close(s->primary);
    if (s->serial) im_executor_close(s->serial);
    im__procs_close(s);
    im__modules_close(s);
    im__stop_loops(s, s->nloops);
    s->joined = 1;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t spent = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - t0;
    int left = spent < s->o.shutdown_timeout_ms ? (int)(s->o.shutdown_timeout_ms - spent) : 0;
    int stuck = 0;
    if (s->primary) stuck += im_executor_shutdown_within(s->primary, left);
    if (s->serial) stuck += im_executor_shutdown_within(s->serial, stuck ? 0 : left);
    stuck += im__procs_shutdown_within(s, stuck ? 0 : left);
    stuck += im__modules_shutdown_within(s, stuck ? 0 : left);
    if (s->store) {
        size_t n[6];
        s->store->ops->counts(s->store, n);
        im_log(stuck ? IM_LOG_WARN : IM_LOG_INFO, "tasks at shutdown: %zu SUCCEEDED, %zu FAILED, "
               "%zu TIMEOUT, %zu CANCELLED, %zu still RUNNING past the deadline%s", n[2], n[3],
               n[4], n[5], n[0] + n[1], stuck ? " (their threads are left to end on their own)" : "");
    }
    im_log(IM_LOG_INFO, "stopped");
    im_log_flush(); /* out before what comes next is printed directly (modules' fini) */
    return 0;
}

int im_server_wait(im_server *s) { return im__wait(s, -1); }

int im_server_run(im_server *s)
{
    sigset_t set;
    int sfd = -1, rc;
    im__block_signals(s);
    if (!s->o.no_signals) {
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGHUP);
        sfd = signalfd(-1, &set, SFD_CLOEXEC);
    }
    rc = s->started ? 0 : im_server_start(s);
    if (rc == 0) rc = im__wait(s, sfd);
    if (sfd >= 0) close(sfd);
    return rc;
}

void im_server_free(im_server *s)
{
    if (!s) return;
    if (s->started && !s->joined) {
        im_server_stop(s);
        im_server_wait(s);
    }
    /* loops are stopped: now the executors. Both stop first (a completion that submits to
     * the other gets -ESHUTDOWN, never a freed executor); queued jobs come back cancelled,
     * posted to the loops they came from, and run here on their behalf, until none is left */
    int stuck = (s->primary && im_executor_shutdown_within(s->primary, -1)) ||
                (s->serial && im_executor_shutdown_within(s->serial, -1)) ||
                im__procs_shutdown_within(s, -1) ||
                im__modules_shutdown_within(s, -1);
    for (int more = 1; more;) {
        more = 0;
        for (int i = 0; i < s->nloops; i++)
            if (atomic_load_explicit(&s->loops[i]->posts, memory_order_acquire)) {
                im__run_posts(s->loops[i]);
                more = 1;
            }
    }
    if (stuck) { /* jobs still run and will post to the loops: keep all they may touch */
        im_log(IM_LOG_WARN, "jobs still running: the server's memory is kept for them");
        return;
    }
    im__cfgw_free(s); /* no reload (and no watcher of a module's) runs during its fini */
    im__modules_free(s); /* fini in reverse order: every task of theirs has ended */
    im_executor_free(s->primary);
    im_executor_free(s->serial);
    s->primary = s->serial = NULL;
    im__procs_free(s);
    for (int i = 0; i < s->nloops; i++) {
        im_loop *L = s->loops[i];
        if (L->deferred) {
            im_log(IM_LOG_WARN, "loop %d: %u deferred requests never finished; its memory is "
                   "kept", L->index, L->deferred);
            continue;
        }
        im__loop_free(L);
    }
    free(s->loops);
    im__cl_free(s);
    im_bus_free(atomic_load(&s->bus)); /* after the modules' fini, which may publish */
    pthread_mutex_destroy(&s->live_mu);
    if (s->store) s->store->ops->destroy(s->store);
    for (size_t i = 0; i < s->neps; i++) free(s->eps[i]);
    free(s->eps);
    free(s->spec_own);
    im__docs_free(s);
    im__rnode_free(s->root);
    if (s->stop_efd >= 0) close(s->stop_efd);
    pthread_mutex_destroy(&s->init_mu);
    pthread_cond_destroy(&s->init_cv);
    free(s);
}
