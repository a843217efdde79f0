/* proc.c — process mode: a fork server forked while the process has one thread, the warm
 * worker processes it forks, and the job that runs a process task in one of them.
 *
 * A task's request (its bytes, as they came, with the views the binder reads) crosses on the
 * worker's socketpair, or in a sealed memfd when large; the worker binds it again, calls the
 * function and sends progress and the answer back the same way. The thread of the "im-proc"
 * executor that runs the task waits on that socket and on an eventfd that a cancel or the
 * time limit writes: then the task ends at once and its worker is killed (SIGTERM, SIGKILL
 * after process.kill_grace_ms) and replaced. The fork server reaps the workers and writes how
 * each ended on the worker's own socket, so the waiting thread learns "killed by SIGSEGV"
 * where it waits. The fork server keeps a spare of itself: when it dies the spare takes over
 * and makes a new spare (the server, a child subreaper, reaps what is orphaned). */

/* ---- messages (SOCK_SEQPACKET: one send is one message) ---- */

#define IM__P_INLINE (32u << 10) /* requests and answers larger than this go in a memfd */
#define IM__P_NFIXED (5 + IM_MAX_PARAMS) /* method, target, path, query, body, params */

enum { IM__PM_CALL = 1, IM__PM_PROGRESS, IM__PM_RESULT, IM__PM_EXIT, IM__PM_SPAWN, IM__PM_SPAWNED };
enum { IM__PK_WORKER = 1, IM__PK_FORKSERVER };

typedef struct im__pspan {
    uint32_t off, len; /* in the request's bytes; off UINT32_MAX: no view */
} im__pspan;

/* server → worker: a call. Its payload (the views, the module's temp dir, the route's
 * parameter names, then the request's bytes with the body 64-byte aligned) follows it, or is
 * the memfd passed with it. */
typedef struct im__pcall_msg {
    _Alignas(64) uint32_t kind;
    uint32_t nspans;      /* IM__P_NFIXED, then a name and a value per header */
    uint64_t ep;          /* the endpoint's address: the same in the worker, a fork of this image */
    uint64_t payload_len;
    uint64_t raw_off, raw_len;
    uint64_t arena_extra;
    uint32_t arena_ratio, cpu_s;
    uint32_t dir_off, dir_len;
    uint32_t names_off, nparams; /* the route's {param} names, each NUL-ended, in the payload */
    int32_t minor;
    uint32_t has_fd;
    char task_id[36];
    int32_t log_level, log_json; /* the server's now: its level is live */
    char rid[IM__RID_MAX + 1];   /* the request's id: the call's log lines carry it */
} im__pcall_msg;

typedef struct im__pprog_msg { /* worker → server, then the message's text */
    uint32_t kind, len;
    double fraction;
} im__pprog_msg;

typedef struct im__pres_msg { /* worker → server, then the answer (or the failure's text) */
    uint32_t kind;
    int32_t http;
    uint32_t is_npy, has_fd;
    uint64_t len;
} im__pres_msg;

typedef struct im__pexit_msg { /* fork server → server, on the worker's socket */
    uint32_t kind;
    int32_t wstatus;
} im__pexit_msg;

typedef struct im__pspawn_msg { /* server → fork server, with the child's end of its socket */
    uint32_t kind, what;
    uint64_t as_bytes;
    uint32_t nofile, pad;
} im__pspawn_msg;

typedef struct im__pspawned_msg { /* fork server → server, with a pidfd of the child */
    uint32_t kind;
    int32_t pid, err;
} im__pspawned_msg;

/* Sends a (and b) as one message, with fd when >= 0. */
static ssize_t im__psend(int sock, const void *a, size_t al, const void *b, size_t bl, int fd)
{
    struct iovec iov[2] = {{(void *)(uintptr_t)a, al}, {(void *)(uintptr_t)b, bl}};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } cm;
    struct msghdr m = {0};
    m.msg_iov = iov;
    m.msg_iovlen = bl ? 2 : 1;
    if (fd >= 0) {
        memset(&cm, 0, sizeof cm);
        m.msg_control = cm.buf;
        m.msg_controllen = sizeof cm.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    ssize_t n;
    do n = sendmsg(sock, &m, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
}

/* Receives one message (and the descriptor passed with it into *fd, else -1). */
static ssize_t im__precv(int sock, void *buf, size_t cap, int *fd, int flags)
{
    struct iovec iov = {buf, cap};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } cm;
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = cm.buf;
    m.msg_controllen = sizeof cm.buf;
    *fd = -1;
    ssize_t n;
    do n = recvmsg(sock, &m, flags | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    for (struct cmsghdr *c = n >= 0 ? CMSG_FIRSTHDR(&m) : NULL; c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int got;
            memcpy(&got, CMSG_DATA(c), sizeof got);
            if (*fd < 0) *fd = got;
            else close(got);
        }
    return n;
}

/* A sealed memfd holding a, then b at b_off (zeros between). -1 with errno on failure. */
static int im__pmemfd(const char *name, const void *a, size_t al, const void *b, size_t b_off,
                      size_t bl)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -1;
    const void *part[2] = {a, b};
    size_t off[2] = {0, b_off}, len[2] = {al, bl};
    if (ftruncate(fd, (off_t)(b_off + bl)) == 0) {
        for (int i = 0; i < 2; i++)
            for (size_t done = 0; done < len[i];) {
                ssize_t n = pwrite(fd, (const char *)part[i] + done, len[i] - done, (off_t)(off[i] + done));
                if (n <= 0) {
                    if (n < 0 && errno == EINTR) continue;
                    goto fail;
                }
                done += (size_t)n;
            }
        /* sealed: the reader maps it knowing it cannot shrink under it, nor change */
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) == 0)
            return fd;
    }
fail:;
    int e = errno ? errno : EIO;
    close(fd);
    errno = e;
    return -1;
}

/* "killed by SIGSEGV", "exited with status 3" */
static void im__wstatus_text(int ws, char *out, size_t cap)
{
    static const struct { int sig; const char *name; } names[] = {
        {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},
        {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},
        {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
        {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"}, {SIGXCPU, "SIGXCPU"},
        {SIGXFSZ, "SIGXFSZ"}, {SIGSYS, "SIGSYS"},
    };
    if (WIFEXITED(ws)) {
        snprintf(out, cap, "exited with status %d", WEXITSTATUS(ws));
        return;
    }
    if (WIFSIGNALED(ws)) {
        int sig = WTERMSIG(ws);
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (names[i].sig == sig) {
                snprintf(out, cap, "killed by %s", names[i].name);
                return;
            }
        snprintf(out, cap, "killed by signal %d", sig);
        return;
    }
    snprintf(out, cap, "ended (wait status %#x)", (unsigned)ws);
}

#ifdef P_PIDFD
#define IM__P_PIDFD P_PIDFD
#else
#define IM__P_PIDFD 3 /* waitid's idtype for a pidfd (Linux 5.4), which older headers lack */
#endif

static int im__pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

static int im__pidfd_signal(int pidfd, pid_t pid, int sig)
{
#ifdef SYS_pidfd_send_signal
    if (pidfd >= 0) return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
#endif
    (void)pidfd;
    return kill(pid, sig);
}

/* ---- in a worker process ---- */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define IM__SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define IM__SANITIZED 1
#endif
#endif

#ifdef MADV_POPULATE_READ
#define IM__MADV_POPULATE_READ MADV_POPULATE_READ
#else
#define IM__MADV_POPULATE_READ 22 /* older headers (Debian 12's) do not name it */
#endif

static im_bus *im__pw_bus; /* a worker's own bus, joined to the hub (im_call_bus) */
static char im__wd_path[4096 + 64]; /* a worker's working directory (im__pw_enter) */

static void im__pw_on_term(int sig)
{
    (void)sig;
    im__pw_term = 1; /* im_call_cancelled() says so; SIGKILL follows if the call goes on */
}

static void im__pw_progress(struct im__pwcall *pw, double fraction, const char *message)
{
    size_t n = message ? strnlen(message, 1024) : 0;
    if (n == 1024) /* cut before a character that would not fit whole */
        while (n && ((unsigned char)message[n] & 0xc0) == 0x80) n--;
    im__pprog_msg m = {IM__PM_PROGRESS, (uint32_t)n, fraction};
    if (im__psend(pw->sock, &m, sizeof m, message, n, -1) < 0) {
        /* the server is gone: the call's answer will not be read either */
    }
}

/* A call's working directory: the worker's own directory under the module's temp dir,
 * entered once (calls of the same module after it find it current) and emptied after any call
 * that left something in it (two system calls to look). */
static struct {
    char key[4096];   /* the module's temp dir it was made under */
    DIR *d;           /* open on it: rewound and read after each call */
    int is_in;
} im__pw_wd;

static int im__pw_enter(struct im__pwcall *pw, const char *home, const char *dir, size_t dl)
{
    if (!dl || dl >= sizeof im__pw_wd.key) return 0;
    if (im__pw_wd.is_in && strlen(im__pw_wd.key) == dl && memcmp(im__pw_wd.key, dir, dl) == 0) {
        pw->dir = im__wd_path;
        return 0;
    }
    if (im__pw_wd.d) closedir(im__pw_wd.d);
    im__pw_wd.d = NULL;
    im__pw_wd.is_in = 0;
    const char *pre = dir[0] != '/' ? home : ""; /* absolute: it names it after chdir */
    char parent[4000];
    if (strlen(pre) + dl + 2 >= sizeof parent) return -1;
    snprintf(parent, sizeof parent, "%s%s%.*s", pre, *pre ? "/" : "", (int)dl, dir);
    snprintf(im__wd_path, sizeof im__wd_path, "%s/worker-%d", parent, (int)getpid());
    if ((mkdir(im__wd_path, 0700) && errno != EEXIST &&
         (im__mkdirs(parent) || (mkdir(im__wd_path, 0700) && errno != EEXIST))) ||
        chdir(im__wd_path) || !(im__pw_wd.d = opendir("."))) {
        if (chdir(home)) {
        }
        return -1;
    }
    memcpy(im__pw_wd.key, dir, dl);
    im__pw_wd.key[dl] = 0;
    im__pw_wd.is_in = 1;
    pw->dir = im__wd_path;
    return 0;
}

static void im__pw_leave(struct im__pwcall *pw, const char *home)
{
    if (!pw->dir || !im__pw_wd.d) return;
    /* one read of its entries (readdir would read twice to see the end): an empty directory
     * has "." and ".." only, and they fit */
    _Alignas(8) char buf[1024];
    int fd = dirfd(im__pw_wd.d), left = 0;
    ssize_t n = lseek(fd, 0, SEEK_SET) == 0 ? getdents64(fd, buf, sizeof buf) : -1;
    for (ssize_t k = 0; n >= 0 && k < n && !left;) {
        const struct dirent64 *e = (const struct dirent64 *)(const void *)(buf + k);
        left = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
        k += e->d_reclen;
    }
    if (n < 0) left = 1; /* cannot tell: cleaned */
    if (!left) return;
    /* what the call left goes; the directory is made again for the next call */
    closedir(im__pw_wd.d);
    im__pw_wd.d = NULL;
    im__pw_wd.is_in = 0;
    if (chdir(home)) {
    }
    im__rmtree(pw->dir);
}

/* Runs one call: binds the request again, calls the function, sends its answer. */
static void im__pw_call(int sock, const im__pcall_msg *m, char *pay, im_loop *L, const char *home)
{
    const im_endpoint *ep = (const im_endpoint *)(uintptr_t)m->ep;
    const im__pspan *sp = (const im__pspan *)(void *)pay;
    char *raw = pay + m->raw_off;
    im_ctx x;
    memset(&x, 0, sizeof x);
    L->o.arena_ratio = m->arena_ratio;
    L->o.arena_extra_bytes = m->arena_extra;
    x.loop = L;
    x.is_detached = 1; /* an answer written to it (a bind that fails) goes nowhere */
    x.raw = raw;
    x.raw_len = m->raw_len;
    x.req.minor = m->minor;
#define IM__SPAN(i) (sp[i].off == UINT32_MAX ? (im_str){NULL, 0} : (im_str){raw + sp[i].off, sp[i].len})
    x.req.method = IM__SPAN(0);
    x.req.target = IM__SPAN(1);
    x.req.path = IM__SPAN(2);
    x.req.query = IM__SPAN(3);
    x.req.body = IM__SPAN(4);
    for (unsigned i = 0; i < IM_MAX_PARAMS; i++) x.params[i] = IM__SPAN(5 + i);
    unsigned nh = (m->nspans - IM__P_NFIXED) / 2;
    im_header *hs = calloc(nh ? nh : 1, sizeof *hs);
    for (unsigned i = 0; hs && i < nh; i++) {
        hs[i].name = IM__SPAN(IM__P_NFIXED + 2 * i);
        hs[i].value = IM__SPAN(IM__P_NFIXED + 2 * i + 1);
    }
#undef IM__SPAN
    im__route rt; /* what im_ctx_param reads: the names of the route's {params} */
    char *pn[IM_MAX_PARAMS];
    memset(&rt, 0, sizeof rt);
    const char *nm = pay + m->names_off;
    for (unsigned i = 0; i < m->nparams; i++) {
        pn[i] = (char *)(uintptr_t)nm;
        nm += strlen(nm) + 1;
    }
    rt.pnames = pn;
    rt.nparams = m->nparams;
    x.route = &rt;
    x.req.headers = hs;
    x.req.num_headers = hs ? nh : 0;
    struct im__pwcall pw;
    memset(&pw, 0, sizeof pw);
    pw.sock = sock;
    memcpy(pw.task_id, m->task_id, sizeof pw.task_id);
    pw.task_id[sizeof pw.task_id - 1] = 0;
    char rid[IM__RID_MAX + 1];
    memcpy(rid, m->rid, sizeof rid);
    rid[IM__RID_MAX] = 0;
    pw.rid = rid;
    im_log_set_level((im_log_level)m->log_level);
    atomic_store_explicit(&im__L.json, m->log_json ? 1 : 0, memory_order_relaxed);
    im_log_set_request_id(rid);
    im_call call = {NULL, ep, &x.arena, 0, NULL, NULL, NULL, NULL, &pw, 0, NULL, 0, NULL};
    void *args = calloc(1, ep->args_size ? ep->args_size : 1);
    void *out = calloc(1, ep->out_size ? ep->out_size : 1);
    int status;
    im__pw_term = 0;
    if (m->cpu_s) { /* this call's CPU time from now: SIGXCPU past it */
        struct rusage ru;
        struct rlimit rl;
        if (getrusage(RUSAGE_SELF, &ru) == 0 && getrlimit(RLIMIT_CPU, &rl) == 0) {
            rlim_t used = (rlim_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + 1;
            rl.rlim_cur = used + m->cpu_s;
            if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max) rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_CPU, &rl);
        }
    }
    im__pw_enter(&pw, home, pay + m->dir_off, m->dir_len);
    if (!args || !out || !hs) {
        status = im_call_fail(&call, 503, "out of memory in the worker process");
    } else if (im__ep_bind(&x, ep, args)) { /* it passed on the server: the bytes are the same */
        status = im_call_fail(&call, 500, "the worker process could not bind the request again");
    } else {
        status = ep->call(&call, args, out);
        im__call_end(&call);
        fflush(stderr); /* what the handler printed comes before the next call's lines */
        status = im__nd_result(ep, &call, status, out);
    }
    char small[2048], *img;
    size_t il;
    im_jw w;
    im_jw_init(&w, small, sizeof small);
    int http = im__call_keep(ep, &call, status, out, &w, &img, &il);
    const char *ans = img ? img : w.buf;
    size_t len = img ? il : w.len;
    if (http != 200) {
        ans = call.detail ? call.detail : im__reason(http);
        len = strlen(ans);
    }
    im__pres_msg r = {IM__PM_RESULT, http, img != NULL, 0, len};
    int mfd = -1;
    if (len > IM__P_INLINE) {
        if ((mfd = im__pmemfd("im-answer", NULL, 0, ans, 0, len)) >= 0) {
            r.has_fd = 1;
            len = 0;
        } else {
            static const char oom[] = "the worker process could not pass its answer (no memfd)";
            r.http = 503;
            r.is_npy = 0;
            ans = oom;
            len = r.len = sizeof oom - 1;
        }
    }
    if (im__psend(sock, &r, sizeof r, ans, len, mfd) < 0) {
        /* the server is gone */
    }
    if (mfd >= 0) close(mfd);
    im_log_set_request_id(NULL); /* rid is this frame's */
    free(img);
    im_jw_free(&w);
    free(args);
    free(out);
    free(hs);
    im__arena_free(&x.arena);
    im__pw_leave(&pw, home);
}

/* 1 when a call's views, directory and names lie inside its payload. */
static int im__pw_msg_ok(const im__pcall_msg *m, const char *pay)
{
    uint64_t pl = m->payload_len;
    if (m->nspans < IM__P_NFIXED || m->nspans > (1u << 24) || m->nparams > IM_MAX_PARAMS ||
        (uint64_t)m->nspans * sizeof(im__pspan) > pl || m->raw_off > pl ||
        m->raw_len > pl - m->raw_off || (uint64_t)m->dir_off + m->dir_len > pl ||
        m->names_off > pl)
        return 0;
    const im__pspan *sp = (const im__pspan *)(const void *)pay;
    for (uint32_t i = 0; i < m->nspans; i++)
        if (sp[i].off != UINT32_MAX && (sp[i].off > m->raw_len || sp[i].len > m->raw_len - sp[i].off))
            return 0;
    uint64_t k = m->names_off; /* nparams strings, each NUL-ended, before the request */
    for (uint32_t i = 0; i < m->nparams; i++, k++) {
        const char *z = memchr(pay + k, 0, (size_t)(m->raw_off > k ? m->raw_off - k : 0));
        if (!z) return 0;
        k = (uint64_t)(z - pay);
    }
    return 1;
}

static _Noreturn void im__pw_main(int sock, const im__pspawn_msg *sp)
{
    static _Alignas(64) char buf[sizeof(im__pcall_msg) + IM__P_INLINE];
    static im_loop L; /* what the binder reads of a loop: the limits */
    char home[PATH_MAX];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = im__pw_on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_UNBLOCK, &term, NULL); /* whatever the server's mask was */
    signal(SIGINT, SIG_IGN); /* a ^C reaches the whole group: the server decides */
    signal(SIGHUP, SIG_IGN); /* so does a hang-up: the server reopens the log */
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_NAME, "im-worker");
    if (sp->nofile) {
        struct rlimit rl = {sp->nofile, sp->nofile};
        setrlimit(RLIMIT_NOFILE, &rl);
    }
#ifndef IM__SANITIZED /* a sanitizer's shadow memory is far past any address-space limit */
    if (sp->as_bytes) {
        struct rlimit rl = {sp->as_bytes, sp->as_bytes};
        setrlimit(RLIMIT_AS, &rl);
    }
#endif
    if (!getcwd(home, sizeof home)) snprintf(home, sizeof home, "/");
    for (;;) {
        int fd = -1;
        ssize_t n = im__precv(sock, buf, sizeof buf, &fd, 0);
        if (n <= 0) _exit(0); /* the server closed its end: it is gone, or retired this worker */
        const im__pcall_msg *m = (const im__pcall_msg *)(void *)buf;
        char *pay = buf + sizeof *m, *map = NULL;
        if ((size_t)n < sizeof *m || m->kind != IM__PM_CALL ||
            (!m->has_fd && (size_t)n < sizeof *m + m->payload_len) || (m->has_fd && fd < 0))
            _exit(70); /* not what the server sends */
        struct stat st;
        if (m->has_fd && (fstat(fd, &st) || (uint64_t)st.st_size < m->payload_len)) _exit(71);
        if (!m->has_fd && fd >= 0) close(fd);
        if (m->has_fd) { /* private: the binder decodes strings in place, copied on write */
            map = mmap(NULL, m->payload_len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
            close(fd);
            if (map == MAP_FAILED) _exit(71);
            /* its page tables filled in one call, not a fault per page (Linux 5.14+) */
            madvise(map, m->payload_len, IM__MADV_POPULATE_READ);
            pay = map;
        }
        if (!im__pw_msg_ok(m, pay)) _exit(72); /* not what the server sends */
        im__pw_call(sock, m, pay, &L, home);
        if (map) munmap(map, m->payload_len);
    }
}

/* ---- the fork server ---- */

typedef struct im__fskid {
    pid_t pid;
    int wfd; /* a worker's end of its socket, kept to tell how it ended (-1: a spare) */
} im__fskid;

/* Serves spawn requests on ctl; returns only in a new spare, with the spare's own socket. */
static int im__fs_serve(int ctl)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    /* a ^C or a SIGTERM to the whole group is the server's to act on: this one ends when its
     * socket closes (the server stops, or dies) */
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    prctl(PR_SET_NAME, "im-forkserver");
    im__fskid *kids = NULL;
    size_t nk = 0, ck = 0;
    for (;;) {
        struct pollfd p[2] = {{ctl, POLLIN, 0}, {sfd, POLLIN, 0}};
        if (poll(p, sfd >= 0 ? 2 : 1, sfd >= 0 ? -1 : 100) < 0 && errno != EINTR) _exit(1);
        struct signalfd_siginfo si;
        while (sfd >= 0 && read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
        }
        int ws;
        pid_t dead;
        while ((dead = waitpid(-1, &ws, WNOHANG)) > 0)
            for (size_t i = 0; i < nk; i++)
                if (kids[i].pid == dead) {
                    if (kids[i].wfd >= 0) { /* to the thread that waits for its answer */
                        im__pexit_msg e = {IM__PM_EXIT, ws};
                        if (send(kids[i].wfd, &e, sizeof e, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
                        }
                        close(kids[i].wfd);
                    }
                    kids[i] = kids[--nk];
                    break;
                }
        if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        im__pspawn_msg m;
        int fd;
        ssize_t n = im__precv(ctl, &m, sizeof m, &fd, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0) { /* the server is gone (or gave this one up): its workers go with it */
            for (size_t i = 0; i < nk; i++) kill(kids[i].pid, SIGKILL);
            for (size_t i = 0; i < nk; i++) /* reaped here: none is left a zombie */
                while (waitpid(kids[i].pid, &ws, 0) < 0 && errno == EINTR) {
                }
            _exit(0);
        }
        if (n != (ssize_t)sizeof m || m.kind != IM__PM_SPAWN || fd < 0) {
            im__pspawned_msg r = {IM__PM_SPAWNED, -1, EINVAL};
            if (fd >= 0) close(fd);
            im__psend(ctl, &r, sizeof r, NULL, 0, -1);
            continue;
        }
        if (nk == ck) {
            size_t nc = ck ? ck * 2 : 16;
            im__fskid *g = realloc(kids, nc * sizeof *g);
            if (!g) {
                im__pspawned_msg r = {IM__PM_SPAWNED, -1, ENOMEM};
                close(fd);
                im__psend(ctl, &r, sizeof r, NULL, 0, -1);
                continue;
            }
            kids = g;
            ck = nc;
        }
        pid_t pid = fork();
        if (pid == 0) { /* nothing of the fork server's stays open in its child */
            close(ctl);
            if (sfd >= 0) close(sfd);
            for (size_t i = 0; i < nk; i++)
                if (kids[i].wfd >= 0) close(kids[i].wfd);
            free(kids);
            if (m.what == IM__PK_FORKSERVER) return fd; /* blocked SIGCHLD: as it wants it */
            sigprocmask(SIG_UNBLOCK, &set, NULL);
            im__pw_main(fd, &m);
        }
        im__pspawned_msg r = {IM__PM_SPAWNED, pid, pid < 0 ? errno : 0};
        int pidfd = pid > 0 ? im__pidfd_open(pid) : -1;
        im__psend(ctl, &r, sizeof r, NULL, 0, pidfd);
        if (pidfd >= 0) close(pidfd);
        if (pid > 0) {
            kids[nk].pid = pid;
            kids[nk].wfd = m.what == IM__PK_WORKER ? fd : -1;
            nk++;
        }
        if (pid <= 0 || m.what != IM__PK_WORKER) close(fd);
    }
}

static _Noreturn void im__fs_main(int ctl)
{
    for (;;) ctl = im__fs_serve(ctl);
}

/* ---- in the server: fork servers and workers ---- */

typedef struct im__pworker {
    int sock, pidfd, efd; /* its socket, a pidfd (-1 without), the eventfd that wakes its thread */
    pid_t pid;
    im__taskrun *run;     /* (procs lock) the task it runs now */
    struct im__pworker *next;
} im__pworker;

typedef struct im__procs {
    pthread_mutex_t mu;   /* the fork servers, spawning, the lists */
    int ctl, spare_ctl;   /* control sockets of the fork server and of its spare (-1: none) */
    pid_t fs_pid, spare_pid;
    int fs_pidfd, spare_pidfd; /* their pidfds (-1: none) */
    unsigned gen;         /* bumped when they change: the watcher's snapshot is stale then */
    im__pworker *idle, *busy;
    im_executor *ex;      /* "im-proc": one thread per worker */
    pthread_t watcher;
    int has_watcher, wake_efd, closing;
    _Atomic int closing_a; /* closing, for a reader without the lock */
    im_server_opts o;     /* the options as at start */
    _Atomic unsigned long restarts; /* workers replaced */
    char why[200];        /* when process mode cannot run: why (the 503's text) */
} im__procs;

/* Asks a fork server (over ctl) for a child of kind what; child_end is its end of a socket.
 * Returns the pid (and *pidfd, -1 without) or -errno; -EPIPE when the fork server is gone. */
static pid_t im__fs_ask(im__procs *P, int ctl, uint32_t what, int child_end, int *pidfd)
{
    im__pspawn_msg m = {IM__PM_SPAWN, what, P->o.rlimit_as_bytes, P->o.rlimit_nofile, 0};
    *pidfd = -1;
    if (ctl < 0) return -EPIPE;
    if (im__psend(ctl, &m, sizeof m, NULL, 0, child_end) < 0)
        return errno == ENOMEM || errno == ENOBUFS ? -ENOMEM : -EPIPE;
    struct pollfd p = {ctl, POLLIN, 0};
    int r;
    do r = poll(&p, 1, 10000);
    while (r < 0 && errno == EINTR);
    if (r <= 0) return -ETIMEDOUT;
    im__pspawned_msg a;
    ssize_t n = im__precv(ctl, &a, sizeof a, pidfd, 0);
    if (n == 0 || (n < 0 && errno != ENOMEM)) return -EPIPE;
    if (n != (ssize_t)sizeof a || a.kind != IM__PM_SPAWNED) {
        if (*pidfd >= 0) close(*pidfd);
        *pidfd = -1;
        return -EPROTO;
    }
    if (a.pid <= 0) {
        if (*pidfd >= 0) close(*pidfd);
        *pidfd = -1;
        return a.err ? -a.err : -EAGAIN;
    }
    return a.pid;
}

/* A new spare fork server from the fork server. Procs lock held. */
static void im__fs_new_spare(im__procs *P)
{
    int sv[2], pidfd;
    if (P->ctl < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) return;
    pid_t pid = im__fs_ask(P, P->ctl, IM__PK_FORKSERVER, sv[1], &pidfd);
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        im_log(IM_LOG_WARN, "process mode: no spare fork server: %s", strerror((int)-pid));
        return;
    }
    P->spare_ctl = sv[0];
    P->spare_pid = pid;
    P->spare_pidfd = pidfd;
    P->gen++;
}

/* Reaps a process when it is a child of this one (the first fork server; what a dead fork
 * server orphaned, reparented to this subreaper), waiting up to ms for it to end. Through its
 * pidfd when there is one: only that very process is reaped, never a reused pid that is some
 * other child's (a handler's system()). Returns its wait status, or -1 (not ours, not ended). */
static int im__reap(int pidfd, pid_t pid, int ms)
{
    if (pidfd >= 0) {
        struct pollfd p = {pidfd, POLLIN, 0};
        if (ms > 0) poll(&p, 1, ms);
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid((idtype_t)IM__P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG) || si.si_pid == 0)
            return -1;
        return si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8 : si.si_status & 0x7f;
    }
    int ws;
    for (int waited = 0;; waited += 5) {
        pid_t r = waitpid(pid, &ws, WNOHANG);
        if (r == pid) return ws;
        if (r < 0 && errno != EINTR) return -1;
        if (waited >= ms) return -1;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
}

/* The fork server is gone: its spare takes over and makes a spare of its own. Procs lock
 * held. */
static void im__fs_lost(im__procs *P)
{
    char how[64] = "ended";
    int ws = im__reap(P->fs_pidfd, P->fs_pid, 1000);
    if (ws != -1) im__wstatus_text(ws, how, sizeof how);
    if (P->ctl >= 0) close(P->ctl);
    if (P->fs_pidfd >= 0) close(P->fs_pidfd);
    P->ctl = P->fs_pidfd = -1;
    P->gen++;
    if (P->closing) return;
    if (P->spare_ctl < 0) {
        im_log(IM_LOG_ERROR, "process mode: the fork server (pid %d) %s and there is no spare: "
               "process tasks fail from now on", (int)P->fs_pid, how);
        snprintf(P->why, sizeof P->why, "no worker process can be started: the fork server "
                 "died and had no spare");
        return;
    }
    im_log(IM_LOG_WARN, "process mode: the fork server (pid %d) %s: its spare (pid %d) takes over",
           (int)P->fs_pid, how, (int)P->spare_pid);
    P->ctl = P->spare_ctl;
    P->fs_pid = P->spare_pid;
    P->fs_pidfd = P->spare_pidfd;
    P->spare_ctl = P->spare_pidfd = -1;
    P->spare_pid = 0;
    im__fs_new_spare(P);
    uint64_t one = 1;
    if (write(P->wake_efd, &one, sizeof one) < 0) { /* the watcher looks at the new ones */
    }
}

/* A new worker. Procs lock held. NULL (why in cause) when none can be made. */
static im__pworker *im__pw_spawn(im__procs *P, char *cause, size_t cap)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int sv[2], pidfd;
        if (P->ctl < 0) break;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
            snprintf(cause, cap, "no worker process: socketpair: %s", strerror(errno));
            return NULL;
        }
        pid_t pid = im__fs_ask(P, P->ctl, IM__PK_WORKER, sv[1], &pidfd);
        close(sv[1]);
        if (pid > 0) {
            im__pworker *w = calloc(1, sizeof *w);
            int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
            if (w && efd >= 0) {
                w->sock = sv[0];
                w->pidfd = pidfd;
                w->efd = efd;
                w->pid = pid;
                return w;
            }
            free(w);
            if (efd >= 0) close(efd);
            close(sv[0]); /* the worker ends when its socket closes */
            if (pidfd >= 0) close(pidfd);
            snprintf(cause, cap, "out of memory");
            return NULL;
        }
        close(sv[0]);
        snprintf(cause, cap, "no worker process could be started: %s", strerror((int)-pid));
        if (pid == -ETIMEDOUT || pid == -EPROTO) /* its answers could come out of step: gone */
            im__pidfd_signal(P->fs_pidfd, P->fs_pid, SIGKILL);
        else if (pid != -EPIPE)
            return NULL;
        im__fs_lost(P); /* and once more, from the spare that took over */
    }
    if (P->ctl < 0) snprintf(cause, cap, "%s", P->why[0] ? P->why : "no fork server");
    return NULL;
}

/* Lets a worker go: its descriptors closed (it exits when it sees its socket close), reaped
 * when it is this process's child. */
static void im__pw_close(im__pworker *w, int wait_ms)
{
    if (w->sock >= 0) close(w->sock);
    close(w->efd);
    im__reap(w->pidfd, w->pid, w->pidfd >= 0 ? wait_ms : 0); /* it ends when its socket closes */
    if (w->pidfd >= 0) close(w->pidfd);
    free(w);
}

/* An idle worker for a task (spawned when none is idle). NULL with the reason in cause. */
static im__pworker *im__pw_take(im__procs *P, im__taskrun *r, char *cause, size_t cap)
{
    pthread_mutex_lock(&P->mu);
    im__pworker *w;
    if (P->closing) { /* a task that started as the stop began: it is not sent */
        pthread_mutex_unlock(&P->mu);
        snprintf(cause, cap, "the server is shutting down");
        return NULL;
    }
    while ((w = P->idle)) {
        P->idle = w->next;
        struct pollfd p = {w->sock, POLLIN, 0};
        if (poll(&p, 1, 0) == 0) break; /* nothing pending: alive */
        im__pw_close(w, 100); /* died while idle (its end was written, or its socket closed) */
        atomic_fetch_add_explicit(&P->restarts, 1, memory_order_relaxed);
    }
    if (!w) w = im__pw_spawn(P, cause, cap);
    if (w) {
        w->run = r;
        w->next = P->busy;
        P->busy = w;
    }
    pthread_mutex_unlock(&P->mu);
    return w;
}

/* Gives a worker back after a task: to the idle list when it is fine, else closed and
 * replaced at once, so that the next task finds one warm. */
static void im__pw_give(im__procs *P, im__pworker *w, int fine)
{
    char cause[200];
    pthread_mutex_lock(&P->mu);
    for (im__pworker **p = &P->busy; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    w->run = NULL;
    if (fine && !P->closing) {
        w->next = P->idle;
        P->idle = w;
        w = NULL;
    }
    pthread_mutex_unlock(&P->mu);
    if (!w) return;
    im__pw_close(w, 100);
    pthread_mutex_lock(&P->mu);
    if (!P->closing) {
        atomic_fetch_add_explicit(&P->restarts, 1, memory_order_relaxed);
        im__pworker *n = im__pw_spawn(P, cause, sizeof cause);
        if (n) {
            n->next = P->idle;
            P->idle = n;
        } else {
            im_log(IM_LOG_WARN, "process mode: a worker could not be replaced: %s", cause);
        }
    }
    pthread_mutex_unlock(&P->mu);
}

/* How a worker that died ended (its fork server wrote it on its socket, or it is our child). */
static void im__pw_death(im__pworker *w, const char *msg, ssize_t n, char *cause, size_t cap)
{
    const im__pexit_msg *e = (const im__pexit_msg *)(const void *)msg;
    if (n == (ssize_t)sizeof *e && e->kind == IM__PM_EXIT) {
        im__wstatus_text(e->wstatus, cause, cap);
        return;
    }
    int ws = im__reap(w->pidfd, w->pid, 1000);
    if (ws != -1) im__wstatus_text(ws, cause, cap);
    else snprintf(cause, cap, "the worker process ended (how is not known: its fork server "
                  "was gone)");
}

/* Kills a worker whose task was stopped: SIGTERM, then SIGKILL after the grace period. 1 when
 * it answered within the grace (its function returned: the worker is fine), 0 when killed. */
static int im__pw_kill(im__procs *P, im__pworker *w, char *buf, size_t cap)
{
    im__pidfd_signal(w->pidfd, w->pid, SIGTERM);
    uint64_t until = im__mono_ns() / 1000000u + (uint64_t)P->o.kill_grace_ms;
    int killed = 0;
    for (;;) {
        uint64_t now = im__mono_ns() / 1000000u;
        if (!killed && now >= until) {
            im__pidfd_signal(w->pidfd, w->pid, SIGKILL);
            killed = 1;
            until = now + 5000; /* then its end, which the fork server reports */
        } else if (killed && now >= until) {
            return 0;
        }
        struct pollfd p = {w->sock, POLLIN, 0};
        int r = poll(&p, 1, (int)(until - now));
        if (r < 0 && errno != EINTR) return 0;
        if (r <= 0) continue;
        int fd;
        ssize_t n = im__precv(w->sock, buf, cap, &fd, MSG_DONTWAIT);
        if (fd >= 0) close(fd);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0) return 0;
        uint32_t kind;
        memcpy(&kind, buf, sizeof kind);
        if (kind == IM__PM_EXIT) return 0;
        if (kind == IM__PM_RESULT && !killed) return 1; /* it stopped when asked */
    }
}

/* Reads a memfd answer of len bytes into a malloc'ed buffer. NULL on failure. */
static char *im__pread_all(int fd, size_t len)
{
    struct stat st;
    if (fstat(fd, &st) || (uint64_t)st.st_size < len) return NULL;
    char *b = malloc(len ? len : 1);
    for (size_t done = 0; b && done < len;) {
        ssize_t n = pread(fd, b + done, len - done, (off_t)done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            free(b);
            return NULL;
        }
        done += (size_t)n;
    }
    return b;
}

/* The job of a process task, on an "im-proc" thread: the call sent to a worker, its
 * progress relayed, its answer (or how it died) ending the task. */
static void im__proc_job_run(im_job *j)
{
    im__taskrun *r = (im__taskrun *)(void *)j;
    im__task *t = r->task;
    im__procs *P = t->fn->srv->procs;
    char cause[200];
    if (!im__task_begin(r)) return;
    im__pworker *w = im__pw_take(P, r, cause, sizeof cause);
    if (!w) {
        if (atomic_load_explicit(&P->closing_a, memory_order_relaxed))
            im__task_cancel(t, "cancelled: the server is shutting down");
        im__task_end(r, 503, NULL, 0, NULL, 0, strdup(cause));
        return;
    }
    im__task_lock(t);
    r->wake_fd = w->efd;
    int stop = t->is_cancel || t->state != IM_TASK_RUNNING;
    im__task_unlock(t);
    _Alignas(64) char buf[sizeof(im__pres_msg) + IM__P_INLINE + 64];
    im__pcall_msg *m = (im__pcall_msg *)(void *)r->owned;
    memcpy(m->task_id, r->idhex, sizeof r->idhex); /* im_call_task_id() in the worker */
    memcpy(m->rid, t->request_id, sizeof m->rid);
    m->log_level = (int32_t)im_log_get_level();
    m->log_json = atomic_load_explicit(&im__L.json, memory_order_relaxed);
    int fine = 0, ended = 0;
    if (stop) {
        /* cancelled before it was sent: the worker never saw it */
        fine = 1;
    } else if (im__psend(w->sock, r->owned, r->pmsg_len, NULL, 0, m->has_fd ? r->pfd : -1) < 0) {
        snprintf(cause, sizeof cause, "the call could not be sent to its worker process: %s",
                 strerror(errno));
        im__task_end(r, 500, NULL, 0, NULL, 0, strdup(cause));
        ended = 1;
    } else {
        for (;;) {
            struct pollfd p[2] = {{w->sock, POLLIN, 0}, {w->efd, POLLIN, 0}};
            if (poll(p, 2, -1) < 0) {
                if (errno == EINTR) continue;
                stop = 1;
                break;
            }
            if (p[1].revents & POLLIN) {
                uint64_t v;
                if (read(w->efd, &v, sizeof v) < 0) {
                }
                im__task_lock(t);
                stop = t->is_cancel || t->state != IM_TASK_RUNNING;
                im__task_unlock(t);
                if (stop) break;
            }
            if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            int fd;
            ssize_t n = im__precv(w->sock, buf, sizeof buf, &fd, MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            uint32_t kind = 0;
            if (n >= 4) memcpy(&kind, buf, sizeof kind);
            if (kind == IM__PM_PROGRESS && n >= (ssize_t)sizeof(im__pprog_msg)) {
                im__pprog_msg pm;
                memcpy(&pm, buf, sizeof pm);
                size_t ml = (size_t)n - sizeof pm;
                char *text = ml ? buf + sizeof pm : NULL;
                if (text) text[ml < 1024 ? ml : 1024] = 0; /* room: buf is larger than that */
                im__task_progress(&r->job, pm.fraction, text);
                if (fd >= 0) close(fd);
                continue;
            }
            if (kind == IM__PM_RESULT && n >= (ssize_t)sizeof(im__pres_msg)) {
                im__pres_msg rm;
                memcpy(&rm, buf, sizeof rm);
                const char *ans = buf + sizeof rm;
                size_t len = (size_t)n - sizeof rm;
                char *body = NULL;
                if (rm.has_fd) {
                    body = fd >= 0 ? im__pread_all(fd, (size_t)rm.len) : NULL;
                    len = (size_t)rm.len;
                    ans = body;
                    if (!body) {
                        rm.http = 503;
                        ans = "the worker process's answer could not be read";
                        len = strlen(ans);
                    }
                }
                if (fd >= 0) close(fd);
                int http = rm.http >= 200 && rm.http <= 599 ? rm.http : 500;
                char *error = NULL;
                if (http != 200) {
                    error = strndup(ans ? ans : "", len);
                    free(body);
                    body = NULL;
                    ans = NULL;
                    len = 0;
                }
                im__task_end(r, http, ans, len, body, http == 200 && rm.is_npy, error);
                fine = ended = 1;
                break;
            }
            if (fd >= 0) close(fd);
            /* its end (from the fork server), or its socket closed: it died during the call */
            im__pw_death(w, buf, n, cause, sizeof cause);
            im__task_end(r, 500, NULL, 0, NULL, 0, strdup(cause));
            ended = 1;
            break;
        }
    }
    im__task_lock(t);
    r->wake_fd = -1; /* before the eventfd can be closed */
    im__task_unlock(t);
    if (!ended) /* stopped: CANCELLED (or already TIMEOUT), now; then the worker is killed */
        im__task_end(r, 500, NULL, 0, NULL, 0, strdup("stopped"));
    if (stop && !fine) fine = im__pw_kill(P, w, buf, sizeof buf);
    const char *tmp = !fine && t->fn->mod ? im_module_path(t->fn->mod, IM_DIR_TEMP) : NULL;
    if (tmp) { /* what the killed or crashed call left in its working directory goes too */
        char wd[4200];
        snprintf(wd, sizeof wd, "%s/worker-%d", tmp, (int)w->pid);
        im__rmtree(wd);
    }
    im__pw_give(P, w, fine);
}

/* Wakes the thread that waits on r's worker (a cancel, the time limit). Task lock held. */
static void im__proc_wake(im__taskrun *r)
{
    uint64_t one = 1;
    if (r->wake_fd >= 0 && write(r->wake_fd, &one, sizeof one) < 0) {
    }
}

/* The message a process task's worker gets: the request's bytes as they came (before the
 * binder decodes strings in place) and its views, in r->owned (a memfd in r->pfd when it is
 * large); r->held is what it holds. On the loop, before the binder runs. 0 or -ENOMEM. */
static int im__proc_image(im_ctx *c, im__epstate *st, im__taskrun *r)
{
    im_loop *L = c->loop;
    const char *raw = c->raw;
    size_t rl = c->raw_len;
    unsigned nh = c->req.num_headers;
    size_t nspans = IM__P_NFIXED + 2 * (size_t)nh, spb = nspans * sizeof(im__pspan);
    const char *dir = st->mod ? im_module_path(st->mod, IM_DIR_TEMP) : NULL;
    size_t dl = dir ? strlen(dir) : 0;
    unsigned np = c->route ? c->route->nparams : 0;
    size_t nl = 0;
    for (unsigned i = 0; i < np; i++) nl += strlen(c->route->pnames[i]) + 1;
    size_t boff = c->req.body.len ? (size_t)(c->req.body.ptr - raw) : 0;
    size_t raw_off = spb + dl + nl;
    raw_off += (64 - ((raw_off + boff) & 63)) & 63; /* the body 64-byte aligned: viewed in place */
    size_t pay = raw_off + rl;
    int inl = pay <= IM__P_INLINE;
    size_t mlen = (sizeof(im__pcall_msg) + (inl ? pay : spb + dl + nl) + 63) & ~(size_t)63;
    im__pcall_msg *m = aligned_alloc(64, mlen); /* its alignment is 64 (the body's, inline) */
    if (!m) return -ENOMEM;
    memset(m, 0, mlen);
    im__pspan *sp = (im__pspan *)(void *)(m + 1);
    const im_str *v[IM__P_NFIXED] = {&c->req.method, &c->req.target, &c->req.path,
                                     &c->req.query, &c->req.body};
    for (unsigned i = 0; i < IM_MAX_PARAMS; i++) v[5 + i] = &c->params[i];
#define IM__SET(k, s)                                                                      \
    do {                                                                                   \
        int in = (s)->ptr && (s)->ptr >= raw && (s)->ptr + (s)->len <= raw + rl;           \
        sp[k].off = in ? (uint32_t)((s)->ptr - raw) : UINT32_MAX;                          \
        sp[k].len = in ? (uint32_t)(s)->len : 0;                                           \
    } while (0)
    for (unsigned i = 0; i < IM__P_NFIXED; i++) IM__SET(i, v[i]);
    for (unsigned i = 0; i < nh; i++) {
        IM__SET(IM__P_NFIXED + 2 * i, &c->req.headers[i].name);
        IM__SET(IM__P_NFIXED + 2 * i + 1, &c->req.headers[i].value);
    }
#undef IM__SET
    if (dl) memcpy((char *)sp + spb, dir, dl);
    for (unsigned i = 0, k = 0; i < np; i++) {
        size_t l = strlen(c->route->pnames[i]) + 1;
        memcpy((char *)sp + spb + dl + k, c->route->pnames[i], l);
        k += (unsigned)l;
    }
    m->kind = IM__PM_CALL;
    m->nspans = (uint32_t)nspans;
    m->ep = (uint64_t)(uintptr_t)st->ep;
    m->payload_len = pay;
    m->raw_off = raw_off;
    m->raw_len = rl;
    m->arena_extra = L->o.arena_extra_bytes;
    m->arena_ratio = L->o.arena_ratio;
    m->cpu_s = L->srv->procs ? L->srv->procs->o.rlimit_cpu_s : 0;
    m->dir_off = (uint32_t)spb;
    m->dir_len = (uint32_t)dl;
    m->names_off = (uint32_t)(spb + dl);
    m->nparams = np;
    m->minor = c->req.minor;
    if (inl) {
        memcpy((char *)sp + raw_off, raw, rl);
        r->pmsg_len = (uint32_t)(sizeof *m + pay);
    } else {
        int fd = im__pmemfd("im-request", sp, spb + dl + nl, raw, raw_off, rl);
        if (fd < 0) {
            free(m);
            return -ENOMEM;
        }
        m->has_fd = 1;
        r->pfd = fd;
        r->pmsg_len = sizeof *m;
    }
    r->owned = (char *)m;
    r->held = sizeof *m + pay;
    return 0;
}

/* ---- the server's side: start, executor, watcher, stop ---- */

/* Watches the fork server and its spare: one that dies is replaced (the spare takes over). */
static void *im__procs_watch(void *arg)
{
    im__procs *P = arg;
    for (;;) {
        pthread_mutex_lock(&P->mu);
        int closing = P->closing, ctl = P->ctl, spare = P->spare_ctl;
        unsigned gen = P->gen;
        pthread_mutex_unlock(&P->mu);
        if (closing) return NULL;
        /* POLLRDHUP only: an answer waiting for a spawner does not wake this thread */
        struct pollfd p[3] = {{P->wake_efd, POLLIN, 0}, {ctl, POLLRDHUP, 0}, {spare, POLLRDHUP, 0}};
        int r = poll(p, 3, 1000);
        if (r < 0 && errno != EINTR) return NULL;
        if (p[0].revents & POLLIN) {
            uint64_t v;
            if (read(P->wake_efd, &v, sizeof v) < 0) {
            }
        }
        pthread_mutex_lock(&P->mu);
        /* what it saw is about the descriptors of its snapshot only when nothing changed */
        if (!P->closing && gen == P->gen && ctl >= 0 && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR)))
            im__fs_lost(P);
        else if (!P->closing && gen == P->gen && spare >= 0 &&
                 (p[2].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            im_log(IM_LOG_WARN, "process mode: the spare fork server (pid %d) ended: a new one "
                   "is made", (int)P->spare_pid);
            close(P->spare_ctl);
            im__reap(P->spare_pidfd, P->spare_pid, 100);
            if (P->spare_pidfd >= 0) close(P->spare_pidfd);
            P->spare_ctl = P->spare_pidfd = -1;
            P->gen++;
            im__fs_new_spare(P);
        }
        pthread_mutex_unlock(&P->mu);
    }
}

/* 1 when s has an endpoint of mode process. */
static int im__has_process_eps(const im_server *s)
{
    for (const im__service *v = s->svcs; v; v = v->next)
        for (size_t i = 0; i < v->neps; i++)
            if (v->eps[i].mode == IM_MODE_PROCESS) return 1;
    return 0;
}

static int im__procs_prestart(im_server *s)
{
    if (s->procs || !im__has_process_eps(s)) return 0;
    im__procs *P = calloc(1, sizeof *P);
    int sv[2];
    if (!P) return -ENOMEM;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
        int e = errno;
        free(P);
        return -e;
    }
    int logw = im__log_pipe(); /* their stderr: into this process's log */
    fflush(NULL); /* nothing buffered is written twice */
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        if (logw >= 0) close(logw);
        free(P);
        return -e;
    }
    if (pid == 0) {
        close(sv[0]);
        if (logw >= 0 && dup2(logw, 2) == 2) close(logw);
        atomic_store_explicit(&im__L.fd, 2, memory_order_relaxed); /* the pipe, not a file */
        im__fs_main(sv[1]);
    }
    close(sv[1]);
    if (logw >= 0) close(logw);
    /* the spare that takes over from a dead fork server, and the workers of a dead one, become
     * this process's children: reaped here, their ends known */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    pthread_mutex_init(&P->mu, NULL);
    P->ctl = sv[0];
    P->fs_pid = pid;
    P->fs_pidfd = im__pidfd_open(pid); /* our child, not reaped: it is that process */
    P->spare_ctl = P->spare_pidfd = -1;
    P->wake_efd = -1;
    s->procs = P;
    return 0;
}

static int im__procs_start(im_server *s)
{
    im__procs *P = s->procs;
    if (!P) return 0;
    P->o = s->o;
    if ((P->wake_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) return -errno;
    im_executor_opts eo = {0};
    eo.name = "im-proc";
    eo.threads = s->o.processes;
    eo.capacity = s->o.queue_capacity;
    eo.levels = s->o.priority_levels;
    if (!(P->ex = im_executor_new(&eo))) {
        int e = errno;
        im_log(IM_LOG_ERROR, "process mode: cannot start its executor: %s", strerror(e));
        return -e;
    }
    pthread_mutex_lock(&P->mu);
    im__fs_new_spare(P);
    char cause[200];
    unsigned made = 0;
    for (unsigned i = 0; i < s->o.processes; i++) { /* warm: the first calls wait for no fork */
        im__pworker *w = im__pw_spawn(P, cause, sizeof cause);
        if (!w) {
            im_log(IM_LOG_WARN, "process mode: %s", cause);
            break;
        }
        w->next = P->idle;
        P->idle = w;
        made++;
    }
    pthread_mutex_unlock(&P->mu);
    if (pthread_create(&P->watcher, NULL, im__procs_watch, P) == 0) P->has_watcher = 1;
    im_log(IM_LOG_INFO, "process mode: fork server pid %d, spare pid %d, %u worker%s", (int)P->fs_pid,
           (int)P->spare_pid, made, made == 1 ? "" : "s");
    return 0;
}

static im_executor *im__procs_executor(im_server *s, const char **why)
{
    im__procs *P = s->procs;
    if (P && P->ex) return P->ex;
    *why = "process mode is not running in this server (no fork server: see its log)";
    return NULL;
}

/* Begins the stop: no new task; queued ones end CANCELLED; running ones are cancelled, which
 * kills their workers after the grace period. */
static void im__procs_close(im_server *s)
{
    im__procs *P = s->procs;
    if (!P || !P->ex) return;
    im_executor_close(P->ex);
    pthread_mutex_lock(&P->mu);
    P->closing = 1; /* no worker is taken or replaced from now on */
    atomic_store(&P->closing_a, 1);
    for (im__pworker *w = P->busy; w; w = w->next)
        if (w->run) im__task_cancel(w->run->task, "cancelled: the server is shutting down");
    pthread_mutex_unlock(&P->mu);
}

static int im__procs_shutdown_within(im_server *s, int timeout_ms)
{
    im__procs *P = s->procs;
    im__procs_close(s);
    return P && P->ex ? im_executor_shutdown_within(P->ex, timeout_ms) : 0;
}

static void im__procs_free(im_server *s)
{
    im__procs *P = s->procs;
    if (!P) return;
    pthread_mutex_lock(&P->mu);
    P->closing = 1;
    pthread_mutex_unlock(&P->mu);
    if (P->has_watcher) {
        uint64_t one = 1;
        if (write(P->wake_efd, &one, sizeof one) < 0) {
        }
        pthread_join(P->watcher, NULL);
    }
    im_executor_free(P->ex);
    for (im__pworker *w = P->idle, *n; w; w = n) { /* each exits when its socket closes */
        n = w->next;
        close(w->sock);
        w->sock = -1;
    }
    for (im__pworker *w = P->idle; w; w = w->next) { /* and is reaped by its fork server */
        struct pollfd p = {w->pidfd, POLLIN, 0};
        if (w->pidfd >= 0) poll(&p, 1, 500);
    }
    /* the fork servers kill what they forked, reap it, and exit when their sockets close */
    if (P->ctl >= 0) close(P->ctl);
    if (P->spare_ctl >= 0) close(P->spare_ctl);
    im__reap(P->fs_pidfd, P->fs_pid, 2000);
    im__reap(P->spare_pidfd, P->spare_pid, 2000); /* ours when the first one died */
    if (P->fs_pidfd >= 0) close(P->fs_pidfd);
    if (P->spare_pidfd >= 0) close(P->spare_pidfd);
    for (im__pworker *w = P->idle, *n; w; w = n) {
        n = w->next;
        im__pw_close(w, 0);
    }
    if (P->wake_efd >= 0) close(P->wake_efd);
    pthread_mutex_destroy(&P->mu);
    free(P);
    s->procs = NULL;
}

/* ---- what a handler reaches ---- */

im_bus *im_call_bus(im_call *call)
{
    if (call->pw) { /* a worker process: its own bus, joined to the service's hub */
        if (!im__pw_bus && (im__pw_bus = im__bus_new_sendonly())) im_bus_join(im__pw_bus, NULL, NULL);
        return im__pw_bus;
    }
    return call->st ? im_server_bus(call->st->srv) : NULL;
}
