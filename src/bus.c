/* bus.c — the event bus (one thread that delivers, a bounded ring per subscriber) and the IPC
 * hub (a forked process that forwards SOCK_SEQPACKET messages between a group's members). */

#define IM__BUS_MAX_PAYLOAD (60 * 1024)
#define IM__BUS_MAX_TOPIC 255

typedef struct im__event {
    _Atomic int refs;
    size_t len;               /* payload bytes */
    char *payload;            /* points into data, after the topic's NUL */
    char data[];              /* topic, NUL, payload */
} im__event;

typedef struct im__sub {
    int id;
    char *pattern;            /* owned */
    im_event_fn fn;
    void *arg;
    im__event **ring;         /* owned: capacity slots */
    unsigned head, tail;      /* (bus mu) tail - head events waiting */
    _Atomic uint64_t dropped;
    int dead;                 /* unsubscribed while its callback ran: freed after it */
    struct im__sub *next;
} im__sub;

struct im_bus {
    pthread_mutex_t mu;       /* subs and their rings */
    pthread_cond_t idle_cv;   /* im_bus_flush waits on it */
    im__sub *subs;
    _Atomic int nsubs;        /* no subscriber and no hub: im_notify costs a load */
    int next_id;
    unsigned cap;
    uint64_t queued, delivered; /* (mu) counts for im_bus_flush */
    int efd;                  /* wakes the thread */
    _Atomic int wake_pending;
    _Atomic int hubfd;        /* -1: not joined (kept open until freed: publishers use it) */
    _Atomic int hub_eof;      /* the hub went away: no longer polled */
    _Atomic uint64_t hub_dropped; /* events the hub socket had no room for */
    int stop;                 /* (mu) */
    im__sub *cur;             /* (mu) whose callback runs now */
    im__sub *rr;              /* (mu) the last one served: round robin starts after it */
    pthread_t thread;
};

static void im__event_put(im__event *e)
{
    if (e && atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1) free(e);
}

static void im__bus_wake(im_bus *b)
{
    if (!atomic_exchange(&b->wake_pending, 1)) {
        uint64_t one = 1;
        if (write(b->efd, &one, sizeof one) < 0) { /* a full counter wakes it as well */
        }
    }
}

/* queues e for the matching subscribers (mu held); how many */
static int im__bus_queue(im_bus *b, im__event *e)
{
    int n = 0;
    for (im__sub *s = b->subs; s; s = s->next) {
        if (s->dead || fnmatch(s->pattern, e->data, 0) != 0) continue;
        if (s->tail - s->head == b->cap) { /* a slow subscriber loses events, nobody waits */
            atomic_fetch_add_explicit(&s->dropped, 1, memory_order_relaxed);
            continue;
        }
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
        s->ring[s->tail++ % b->cap] = e;
        b->queued++;
        n++;
    }
    return n;
}

static im__event *im__event_new(const char *topic, size_t tl, const void *payload, size_t len)
{
    im__event *e = (im__event *)malloc(sizeof *e + tl + 1 + len + 1);
    if (!e) return NULL;
    atomic_init(&e->refs, 1);
    memcpy(e->data, topic, tl);
    e->data[tl] = 0;
    e->payload = e->data + tl + 1;
    if (len) memcpy(e->payload, payload, len);
    e->payload[len] = 0; /* JSON payloads can be read as C strings */
    e->len = len;
    return e;
}

static int im__bus_publish(im_bus *b, const char *topic, const void *payload, size_t len,
                           int remote)
{
    size_t tl = topic ? strlen(topic) : 0;
    if (!b || tl == 0 || tl > IM__BUS_MAX_TOPIC || len > IM__BUS_MAX_PAYLOAD) return -EINVAL;
    int hubfd = atomic_load_explicit(&b->hubfd, memory_order_relaxed);
    if (remote && hubfd >= 0) { /* to the other processes: one message, never waiting */
        struct iovec iov[2] = {{(void *)(uintptr_t)topic, tl + 1}, {(void *)(uintptr_t)payload, len}};
        struct msghdr m = {0};
        m.msg_iov = iov;
        m.msg_iovlen = len ? 2 : 1;
        if (sendmsg(hubfd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            atomic_fetch_add_explicit(&b->hub_dropped, 1, memory_order_relaxed);
    }
    if (atomic_load_explicit(&b->nsubs, memory_order_relaxed) == 0) return 0;
    im__event *e = im__event_new(topic, tl, payload, len);
    if (!e) return -ENOMEM;
    pthread_mutex_lock(&b->mu);
    int n = im__bus_queue(b, e);
    pthread_mutex_unlock(&b->mu);
    im__event_put(e);
    if (n) im__bus_wake(b);
    return n;
}

int im_notify(im_bus *b, const char *topic, const void *payload, size_t len)
{
    return im__bus_publish(b, topic, payload, len, 1);
}

/* A task changed state: "task.<state>" for this process's subscribers (no message to the hub
 * per task: that would be a system call per state change). Costs a load without subscribers. */
static void im__task_event(im_server *s, const uint8_t id[16], const char *fn, int state)
{
    im_bus *b = atomic_load_explicit(&s->bus, memory_order_acquire);
    if (!b || atomic_load_explicit(&b->nsubs, memory_order_relaxed) == 0) return;
    char topic[32], hex[33], payload[256];
    static const char *const names[] = {"queued", "running", "succeeded", "failed", "timeout",
                                        "cancelled"};
    const char *st = (unsigned)state < 6 ? names[state] : "unknown";
    snprintf(topic, sizeof topic, "task.%s", st);
    im__task_id_hex(id, hex);
    int n = snprintf(payload, sizeof payload, "{\"id\":\"%s\",\"function\":\"%.100s\",\"state\":\"%s\"}",
                     hex, fn, st);
    im__bus_publish(b, topic, payload, (size_t)n, 0);
}

static void im__sub_free(im__sub *s, unsigned cap)
{
    while (s->head != s->tail) im__event_put(s->ring[s->head++ % cap]);
    free(s->ring);
    free(s->pattern);
    free(s);
}

/* the hub's messages: delivered to this process's subscribers, not sent back */
static void im__bus_read_hub(im_bus *b)
{
    char buf[IM__BUS_MAX_TOPIC + 1 + IM__BUS_MAX_PAYLOAD + 16];
    for (;;) {
        ssize_t n = recv(atomic_load(&b->hubfd), buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) { /* the hub is gone */
                im_log(IM_LOG_WARN, "event bus: the hub closed; events stay in this process");
                atomic_store(&b->hub_eof, 1);
            }
            return;
        }
        char *nul = (char *)memchr(buf, 0, (size_t)n);
        if (!nul || nul == buf) continue; /* not an event */
        size_t tl = (size_t)(nul - buf);
        im__event *e = im__event_new(buf, tl, nul + 1, (size_t)n - tl - 1);
        if (!e) continue;
        pthread_mutex_lock(&b->mu);
        im__bus_queue(b, e);
        pthread_mutex_unlock(&b->mu);
        im__event_put(e);
    }
}

static void *im__bus_main(void *arg)
{
    im_bus *b = (im_bus *)arg;
    for (;;) { /* round robin: a busy subscriber does not starve the others */
        atomic_store(&b->wake_pending, 0); /* before looking: a wake-up after it is kept */
        for (;;) {
            pthread_mutex_lock(&b->mu);
            im__sub *s = b->rr && !b->rr->dead ? b->rr->next : NULL, *start;
            if (!s) s = b->subs;
            start = s;
            im__event *e = NULL;
            while (s) {
                if (!s->dead && s->head != s->tail) {
                    e = s->ring[s->head++ % b->cap];
                    break;
                }
                s = s->next ? s->next : b->subs;
                if (s == start) break;
            }
            if (!e) {
                pthread_cond_broadcast(&b->idle_cv);
                int stop = b->stop;
                pthread_mutex_unlock(&b->mu);
                if (stop) return NULL;
                break;
            }
            b->cur = s;
            b->rr = s;
            pthread_mutex_unlock(&b->mu);
            s->fn(e->data, e->payload, e->len, s->arg);
            im__event_put(e);
            pthread_mutex_lock(&b->mu);
            b->cur = NULL;
            b->delivered++;
            if (s->dead) { /* unsubscribed meanwhile */
                im__sub **pp = &b->subs;
                while (*pp && *pp != s) pp = &(*pp)->next;
                if (*pp) *pp = s->next;
                if (b->rr == s) b->rr = NULL;
                im__sub_free(s, b->cap);
            }
            pthread_cond_broadcast(&b->idle_cv);
            pthread_mutex_unlock(&b->mu);
        }
        int hubfd = atomic_load(&b->hubfd), hub = hubfd >= 0 && !atomic_load(&b->hub_eof);
        struct pollfd p[2] = {{b->efd, POLLIN, 0}, {hubfd, POLLIN, 0}};
        int r = poll(p, hub ? 2 : 1, -1);
        if (r < 0 && errno != EINTR) return NULL;
        if (p[0].revents) {
            uint64_t v;
            if (read(b->efd, &v, sizeof v) < 0) {
            }
        }
        if (hub && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) im__bus_read_hub(b);
    }
}

/* A bus's memory, its eventfd and locks, and no thread yet. NULL when out of memory. */
static im_bus *im__bus_alloc(unsigned want)
{
    im_bus *b = (im_bus *)calloc(1, sizeof *b);
    if (!b) return NULL;
    b->cap = 1;
    while (b->cap < want && b->cap < (1u << 24)) b->cap <<= 1; /* a power of two: the ring's
                                                              * indexes may wrap */
    b->next_id = 1;
    atomic_init(&b->hubfd, -1);
    b->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->idle_cv, NULL);
    return b;
}

im_bus *im_bus_new(const im_bus_opts *o)
{
    im_bus *b = im__bus_alloc(o && o->queue_capacity ? o->queue_capacity : 1024);
    if (!b) return NULL;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* signals are for the thread that waits for them */
    int rc = b->efd < 0 ? errno : pthread_create(&b->thread, NULL, im__bus_main, b);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        if (b->efd >= 0) close(b->efd);
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->idle_cv);
        free(b);
        errno = rc;
        return NULL;
    }
    pthread_setname_np(b->thread, "im-bus");
    return b;
}

/* A bus without a thread, for a worker process: its events go to the hub only (nothing in
 * the worker subscribes; and a worker starts no thread it does not need). Never freed: it
 * lives as long as the worker. */
static im_bus *im__bus_new_sendonly(void) { return im__bus_alloc(1); }

void im_bus_free(im_bus *b)
{
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stop = 1;
    pthread_mutex_unlock(&b->mu);
    atomic_store(&b->wake_pending, 0);
    im__bus_wake(b);
    pthread_join(b->thread, NULL);
    while (b->subs) {
        im__sub *s = b->subs;
        b->subs = s->next;
        im__sub_free(s, b->cap);
    }
    if (atomic_load(&b->hubfd) >= 0) close(atomic_load(&b->hubfd));
    close(b->efd);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->idle_cv);
    free(b);
}

int im_on(im_bus *b, const char *pattern, im_event_fn fn, void *arg)
{
    if (!b || !pattern || !fn) return -EINVAL;
    im__sub *s = (im__sub *)calloc(1, sizeof *s);
    if (!s || !(s->pattern = strdup(pattern)) ||
        !(s->ring = (im__event **)calloc(b->cap, sizeof *s->ring))) {
        if (s) free(s->pattern);
        free(s);
        return -ENOMEM;
    }
    s->fn = fn;
    s->arg = arg;
    pthread_mutex_lock(&b->mu);
    s->id = b->next_id++;
    im__sub **pp = &b->subs;
    while (*pp) pp = &(*pp)->next;
    *pp = s;
    atomic_fetch_add(&b->nsubs, 1);
    pthread_mutex_unlock(&b->mu);
    return s->id;
}

void im_off(im_bus *b, int id)
{
    pthread_mutex_lock(&b->mu);
    for (im__sub **pp = &b->subs; *pp; pp = &(*pp)->next) {
        im__sub *s = *pp;
        if (s->id != id || s->dead) continue;
        atomic_fetch_sub(&b->nsubs, 1);
        /* what it had waiting is delivered to nobody */
        b->delivered += s->tail - s->head;
        while (s->head != s->tail) im__event_put(s->ring[s->head++ % b->cap]);
        if (b->cur == s && pthread_equal(pthread_self(), b->thread)) {
            s->dead = 1; /* from its own callback: the bus thread frees it after */
        } else {
            /* its callback may run right now: wait for it, so that arg may go at once */
            while (b->cur == s) pthread_cond_wait(&b->idle_cv, &b->mu);
            if (b->rr == s) b->rr = NULL;
            *pp = s->next;
            im__sub_free(s, b->cap);
        }
        pthread_cond_broadcast(&b->idle_cv);
        break;
    }
    pthread_mutex_unlock(&b->mu);
}

uint64_t im_bus_dropped(im_bus *b, int id)
{
    uint64_t n = 0;
    pthread_mutex_lock(&b->mu);
    for (im__sub *s = b->subs; s; s = s->next)
        if (s->id == id) n = atomic_load(&s->dropped);
    pthread_mutex_unlock(&b->mu);
    return n;
}

int im_bus_flush(im_bus *b, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    if (timeout_ms >= 0) {
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) { dl.tv_sec++; dl.tv_nsec -= 1000000000L; }
    }
    int rc = 0;
    pthread_mutex_lock(&b->mu);
    uint64_t want = b->queued;
    while (b->delivered < want && rc == 0)
        rc = timeout_ms < 0 ? pthread_cond_wait(&b->idle_cv, &b->mu)
                            : pthread_cond_timedwait(&b->idle_cv, &b->mu, &dl);
    pthread_mutex_unlock(&b->mu);
    return rc ? -ETIMEDOUT : 0;
}

/* ---- the hub */

/* Room for bursts (a full socket drops, it never blocks a publisher): past net.core.*mem_max
 * when the process may (CAP_NET_ADMIN), else as much as the limits give. */
static void im__sock_room(int fd)
{
    int sz = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz))
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz))
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
}

#define IM__HUB_MAX 256 /* members at once */

static void im__hub_main(int lfd, pid_t parent)
{
    struct pollfd p[IM__HUB_MAX + 1];
    char group[IM__HUB_MAX + 1][64];
    int n = 0;
    static char buf[IM__BUS_MAX_TOPIC + 1 + IM__BUS_MAX_PAYLOAD + 16];
    p[0] = (struct pollfd){lfd, POLLIN, 0};
    for (;;) {
        if (getppid() != parent) _exit(0); /* the parent died before PDEATHSIG was armed */
        int r = poll(p, (nfds_t)n + 1, 1000);
        if (r < 0 && errno != EINTR) _exit(1);
        if (r <= 0) continue;
        if (p[0].revents & POLLIN) {
            int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            struct ucred cr;
            socklen_t cl = sizeof cr;
            /* an abstract socket has no file permissions: only the service's user may join */
            if (fd >= 0 && (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) || cr.uid != getuid())) {
                close(fd);
                fd = -1;
            }
            if (fd >= 0 && n < IM__HUB_MAX) {
                im__sock_room(fd);
                n++;
                p[n] = (struct pollfd){fd, POLLIN, 0};
                group[n][0] = 0; /* named by its first message */
            } else if (fd >= 0) {
                close(fd);
            }
        }
        for (int i = 1; i <= n; i++) {
            if (!p[i].revents) continue;
            /* what a member sent meanwhile, up to a batch: one poll per burst, not per event */
            for (int batch = 0; batch < 64; batch++) {
                ssize_t len = recv(p[i].fd, buf, sizeof buf, MSG_DONTWAIT);
                if (len < 0 && (errno == EAGAIN || errno == EINTR)) break;
                if (len <= 0) { /* a member left */
                    close(p[i].fd);
                    p[i] = p[n];
                    memcpy(group[i], group[n], sizeof group[i]);
                    n--;
                    i--;
                    break;
                }
                if (!group[i][0]) {
                    size_t g = (size_t)len < sizeof group[i] - 1 ? (size_t)len : sizeof group[i] - 1;
                    memcpy(group[i], buf, g);
                    group[i][g] = 0;
                    if (!group[i][0]) memcpy(group[i], "events", 7);
                    continue;
                }
                for (int k = 1; k <= n; k++) /* verbatim to the group's others; full ones miss it */
                    if (k != i && strcmp(group[k], group[i]) == 0)
                        if (send(p[k].fd, buf, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
                        }
            }
        }
    }
}

int im_hub_start(void)
{
    if (getenv("IMMERSIVE_HUB")) return 0;
    int lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (lfd < 0) return -errno;
    struct sockaddr_un a = {0};
    a.sun_family = AF_UNIX;
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) < 0) rnd = (uint32_t)time(NULL);
    /* abstract: nothing on disk to clean up, gone with the last descriptor */
    int alen = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "immersive-hub-%d-%08x",
                        (int)getpid(), rnd);
    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)alen);
    if (bind(lfd, (struct sockaddr *)&a, sl) || listen(lfd, 64)) {
        int e = errno;
        close(lfd);
        return -e;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(lfd);
        return -e;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        signal(SIGINT, SIG_IGN); /* a ^C reaches the whole group: the service decides */
        signal(SIGHUP, SIG_IGN); /* and a hang-up: the service reopens its log, nothing here */
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_IGN);
        prctl(PR_SET_NAME, "im-hub");
        im__hub_main(lfd, parent);
        _exit(0);
    }
    close(lfd);
    char env[128];
    snprintf(env, sizeof env, "@%s", a.sun_path + 1); /* '@' for the abstract namespace */
    setenv("IMMERSIVE_HUB", env, 1);
    return 0;
}

im_bus *im_server_bus(im_server *s)
{
    im_bus *b = atomic_load_explicit(&s->bus, memory_order_acquire);
    if (b) return b;
    im_bus *n = im_bus_new(NULL);
    if (!n) return NULL;
    if (!atomic_compare_exchange_strong(&s->bus, &b, n)) { /* another thread made it first */
        im_bus_free(n);
        return b;
    }
    int rc = im_bus_join(n, NULL, NULL);
    if (rc && rc != -ENOENT)
        im_log(IM_LOG_WARN, "event bus: cannot join the hub %s: %s", getenv("IMMERSIVE_HUB"),
               strerror(-rc));
    return n;
}

int im_bus_join(im_bus *b, const char *address, const char *group)
{
    if (!address) address = getenv("IMMERSIVE_HUB");
    if (!address || !*address) return -ENOENT;
    if (atomic_load(&b->hubfd) >= 0) return -EALREADY;
    struct sockaddr_un a = {0};
    a.sun_family = AF_UNIX;
    size_t al = strlen(address);
    if (al >= sizeof a.sun_path) return -EINVAL;
    memcpy(a.sun_path, address, al);
    if (address[0] == '@') a.sun_path[0] = 0;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + al);
    const char *g = group && *group ? group : "events";
    if (connect(fd, (struct sockaddr *)&a, sl)) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct ucred cr;
    socklen_t cl = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) || cr.uid != getuid()) {
        close(fd); /* a hub of another user's: its events are not ours to trust */
        return -EACCES;
    }
    if (send(fd, g, strlen(g), MSG_NOSIGNAL) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    im__sock_room(fd);
    int none = -1;
    if (!atomic_compare_exchange_strong(&b->hubfd, &none, fd)) {
        close(fd);
        return -EALREADY;
    }
    im__bus_wake(b); /* the thread polls the new descriptor from now on */
    return 0;
}
