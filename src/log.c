/* log.c — leveled logging: a whole line is formatted at once (text or JSON, with the thread's
 * request id), then either written with one write(2) (before a server starts, and in forked
 * children) or put in a bounded lock-free ring (Vyukov's, many producers, one consumer) that a
 * writer thread drains with writev. A full ring drops the line and counts it: the loops never
 * wait for the log. */

#define IM__LOG_SLOT 1024 /* a line's room, its header included: longer lines are cut */
#define IM__LOG_BATCH 64  /* lines per writev */

typedef struct im__lslot {
    _Atomic uint64_t seq; /* Vyukov's sequence (pos when free, pos + 1 when filled) minus the
                           * slot's index: 0 at the start, so that a fresh ring is calloc's
                           * untouched zero pages, not 8 MiB written at start */
    uint32_t len;
    char data[IM__LOG_SLOT - 12];
} im__lslot;

static _Atomic int im__log_threshold = IM_LOG_INFO;
static _Thread_local const char *im__log_rid;
static _Thread_local int im__log_raw; /* the next JSON line's message is fields already */

static struct {
    im__lslot *slots;
    im__lslot *stale;         /* in a forked child: the parent's ring (see im__log_child) */
    uint32_t mask;
    _Atomic uint64_t head;    /* next position to fill */
    _Atomic uint64_t tail;    /* next position the writer takes */
    _Atomic int sleeping;     /* the writer waits on efd: 2 idle (the next line wakes it), 1
                               * napping between batches (woken only when the ring is half
                               * full), 0 awake */
    _Atomic int async;        /* lines go through the ring */
    _Atomic int stop;         /* the writer returns once the ring is empty (at exit) */
    _Atomic int fd;           /* where lines go: 2, or the file */
    _Atomic int json;
    _Atomic uint64_t dropped;
    unsigned ring_lines;      /* for the next start */
    int efd;
    int prd;                  /* the read end of the fork server's stderr, or -1 */
    char *pbuf;               /* owned: what came from it, up to a whole line */
    size_t plen;
    pthread_t thread;
    pthread_mutex_t mu;       /* configure, reopen, start */
    char *path;               /* owned: the file, or NULL for stderr */
} im__L = {.fd = 2, .efd = -1, .prd = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

#define IM__LOG_PBUF 65536

static const char *const im__log_names[] = {"trace", "debug", "info", "warn", "error", "fatal",
                                            "off"};
static const char *const im__log_tags[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"};

void im_log_set_level(im_log_level level)
{
    atomic_store_explicit(&im__log_threshold, (int)level, memory_order_relaxed);
}

im_log_level im_log_get_level(void)
{
    return (im_log_level)atomic_load_explicit(&im__log_threshold, memory_order_relaxed);
}

int im_log_level_parse(const char *name)
{
    for (int i = 0; i <= IM_LOG_OFF; i++)
        if (strcmp(name, im__log_names[i]) == 0) return i;
    if (strcmp(name, "warning") == 0) return IM_LOG_WARN;
    return -EINVAL;
}

const char *im_log_level_name(im_log_level level)
{
    return (unsigned)level < IM_LOG_OFF ? im__log_names[level] : "off";
}

void im_log_set_request_id(const char *request_id) { im__log_rid = request_id; }
const char *im_log_request_id(void) { return im__log_rid; }
uint64_t im_log_dropped(void) { return atomic_load_explicit(&im__L.dropped, memory_order_relaxed); }

uint64_t im_log_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* "2026-11-24T12:00:00.123Z" (24 bytes) at o; the calendar part is cached per thread. */
static void im__log_time(char *o)
{
    static _Thread_local time_t sec = -1;
    static _Thread_local char day[64]; /* 21 used: room for what gcc fears of %d */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(day, sizeof day, "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        sec = ts.tv_sec;
    }
    memcpy(o, day, 20);
    long ms = ts.tv_nsec / 1000000;
    o[20] = (char)('0' + ms / 100);
    o[21] = (char)('0' + ms / 10 % 10);
    o[22] = (char)('0' + ms % 10);
    o[23] = 'Z';
}

/* s as the inside of a JSON string at o (room: cap); returns the bytes written. Cut whole. */
static size_t im__log_jesc(char *o, size_t cap, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            if (k + 2 > cap) break;
            o[k++] = '\\';
            o[k++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            if (k + 6 > cap) break;
            memcpy(o + k, "\\u00", 4);
            o[k + 4] = hex[ch >> 4];
            o[k + 5] = hex[ch & 15];
            k += 6;
        } else {
            if (k + 1 > cap) break;
            o[k++] = (char)ch;
        }
    }
    return k;
}

/* One whole line (newline included) into o[0..cap), cap >= 128; returns its length. */
static size_t im__log_format(char *o, size_t cap, const char *tag, const char *name,
                             const char *fmt, va_list ap)
{
    const char *rid = im__log_rid;
    size_t n = 0;
    cap--; /* the newline's room */
    if (atomic_load_explicit(&im__L.json, memory_order_relaxed)) {
        char msg[IM__LOG_SLOT];
        int m = vsnprintf(msg, sizeof msg, fmt, ap);
        size_t ml = m < 0 ? 0 : (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;
        memcpy(o, "{\"time\":\"", 9);
        im__log_time(o + 9);
        n = 33;
        memcpy(o + n, "\",\"level\":\"", 11);
        n += 11;
        n += im__log_jesc(o + n, 64, name, strnlen(name, 32));
        o[n++] = '"';
        if (rid) {
            memcpy(o + n, ",\"request_id\":\"", 15);
            n += 15;
            n += im__log_jesc(o + n, cap - n - 16, rid, strnlen(rid, 128));
            o[n++] = '"';
        }
        if (im__log_raw) { /* already JSON fields (the access log's, bounded to fit) */
            size_t fl = ml < cap - n - 2 ? ml : cap - n - 2;
            o[n++] = ',';
            memcpy(o + n, msg, fl);
            n += fl;
        } else {
            memcpy(o + n, ",\"msg\":\"", 8);
            n += 8;
            n += im__log_jesc(o + n, cap - n - 2, msg, ml);
            o[n++] = '"';
        }
        o[n++] = '}';
    } else {
        im__log_time(o);
        o[24] = ' ';
        n = 25;
        size_t tl = strlen(tag);
        memcpy(o + n, tag, tl);
        n += tl;
        o[n++] = ' ';
        if (rid) {
            size_t rl = strnlen(rid, 128);
            o[n++] = '[';
            memcpy(o + n, rid, rl);
            n += rl;
            o[n++] = ']';
            o[n++] = ' ';
        }
        int m = vsnprintf(o + n, cap - n, fmt, ap);
        if (m > 0) n += (size_t)m < cap - n ? (size_t)m : cap - n - 1;
    }
    o[n++] = '\n';
    return n;
}

static void im__log_write_all(const char *p, size_t n)
{
    int fd = atomic_load_explicit(&im__L.fd, memory_order_relaxed);
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; /* nowhere left to report it */
        p += w;
        n -= (size_t)w;
    }
}

/* A slot to fill at the ring's head, or NULL when the ring is full. */
static im__lslot *im__log_claim(void)
{
    uint64_t pos = atomic_load_explicit(&im__L.head, memory_order_relaxed);
    for (;;) {
        im__lslot *s = &im__L.slots[pos & im__L.mask];
        uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire) + (pos & im__L.mask);
        int64_t dif = (int64_t)(seq - pos);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&im__L.head, &pos, pos + 1,
                                                      memory_order_relaxed, memory_order_relaxed))
                return s;
        } else if (dif < 0) {
            return NULL;
        } else {
            pos = atomic_load_explicit(&im__L.head, memory_order_relaxed);
        }
    }
}

static void im__log_publish(im__lslot *s)
{
    uint64_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed); /* relative: +1 is +1 */
    /* seq_cst store, then seq_cst load; the writer does the mirror image: one of the two sees
     * the other's write, so no wake-up is lost (Dekker's pattern, without a fence) */
    atomic_store_explicit(&s->seq, seq + 1, memory_order_seq_cst);
    int sl = atomic_load_explicit(&im__L.sleeping, memory_order_seq_cst);
    if (sl == 1) { /* napping: woken only when the lines pile up */
        uint64_t used = atomic_load_explicit(&im__L.head, memory_order_relaxed) -
                        atomic_load_explicit(&im__L.tail, memory_order_relaxed);
        if (used <= (im__L.mask + 1) / 2) sl = 0;
    }
    if (sl && atomic_exchange_explicit(&im__L.sleeping, 0, memory_order_relaxed)) {
        uint64_t one = 1;
        if (write(im__L.efd, &one, sizeof one) < 0) { /* it wakes within a second anyway */
        }
    }
}

static void im__log_vemit(const char *tag, const char *name, const char *fmt, va_list ap)
{
    if (atomic_load_explicit(&im__L.async, memory_order_acquire)) {
        im__lslot *s = im__log_claim();
        if (!s) {
            atomic_fetch_add_explicit(&im__L.dropped, 1, memory_order_relaxed);
            return;
        }
        s->len = (uint32_t)im__log_format(s->data, sizeof s->data, tag, name, fmt, ap);
        im__log_publish(s);
        return;
    }
    char line[IM__LOG_SLOT];
    im__log_write_all(line, im__log_format(line, sizeof line, tag, name, fmt, ap));
}

void im_log(im_log_level level, const char *fmt, ...)
{
    va_list ap;
    if ((int)level < atomic_load_explicit(&im__log_threshold, memory_order_relaxed) ||
        level >= IM_LOG_OFF || (int)level < 0)
        return;
    va_start(ap, fmt);
    im__log_vemit(im__log_tags[level], im__log_names[level], fmt, ap);
    va_end(ap);
}

void im_log_always(const char *kind, const char *fmt, ...)
{
    va_list ap;
    char tag[16];
    size_t i = 0;
    for (; kind[i] && i < sizeof tag - 1; i++) tag[i] = (char)toupper((unsigned char)kind[i]);
    tag[i] = 0;
    va_start(ap, fmt);
    im__log_vemit(tag, kind, fmt, ap);
    va_end(ap);
}

/* The access log's line of one answer: every field separate in JSON; in text
 *   <time> ACCESS [<request id>] <peer> "<method> <target>" <status> <bytes> <us>us task=<id>
 * A field not known is "-". */
static void im__log_access(const char *rid, const char *peer, im_str method, im_str target,
                           int status, uint64_t bytes, uint64_t us, const char *task)
{
    const char *saved = im__log_rid;
    im__log_rid = rid;
    if (!method.len) method = (im_str){"-", 1};
    if (!target.len) target = (im_str){"-", 1};
    if (target.len > 512) target.len = 512; /* the line keeps its other fields */
    if (atomic_load_explicit(&im__L.json, memory_order_relaxed)) {
        char m[24], t[481]; /* bounded: the whole line stays within a slot, valid JSON */
        m[im__log_jesc(m, sizeof m - 1, method.ptr, method.len)] = 0;
        t[im__log_jesc(t, sizeof t - 1, target.ptr, target.len)] = 0;
        im__log_raw = 1;
        im_log_always("access", "\"peer\":\"%s\",\"method\":\"%s\",\"target\":\"%s\","
                      "\"status\":%d,\"bytes\":%llu,\"duration_us\":%llu,\"task_id\":%s%s%s",
                      peer, m, t, status, (unsigned long long)bytes, (unsigned long long)us,
                      task ? "\"" : "", task ? task : "null", task ? "\"" : "");
        im__log_raw = 0;
    } else { /* formatted by hand: a line per request is on the hot path */
        char m[700], *o = m;
        size_t pl = strnlen(peer, 64), ml = method.len > 16 ? 16 : method.len;
        memcpy(o, peer, pl);
        o += pl;
        *o++ = ' ';
        *o++ = '"';
        memcpy(o, method.ptr, ml);
        o += ml;
        *o++ = ' ';
        memcpy(o, target.ptr, target.len);
        o += target.len;
        *o++ = '"';
        *o++ = ' ';
        o += im__u64_dec(o, (uint64_t)(status > 0 ? status : 0));
        *o++ = ' ';
        o += im__u64_dec(o, bytes);
        *o++ = ' ';
        o += im__u64_dec(o, us);
        memcpy(o, "us task=", 8);
        o += 8;
        size_t tl = task ? strnlen(task, 32) : 1;
        memcpy(o, task ? task : "-", tl);
        o += tl;
        *o = 0;
        im_log_always("access", "%s", m);
    }
    im__log_rid = saved;
}

/* Writes the line written directly, whatever the ring (the writer's own warnings). */
static void im__log_direct(im_log_level level, const char *fmt, ...)
{
    va_list ap;
    char line[IM__LOG_SLOT];
    va_start(ap, fmt);
    size_t n = im__log_format(line, sizeof line, im__log_tags[level], im__log_names[level], fmt,
                              ap);
    va_end(ap);
    im__log_write_all(line, n);
}

/* Lines the worker processes wrote on their stderr (the pipe), written out whole: a partial
 * line waits for its end (or for a full buffer). */
static void im__log_drain_pipe(void)
{
    if (im__L.prd < 0) return;
    if (!im__L.pbuf && !(im__L.pbuf = malloc(IM__LOG_PBUF))) return;
    for (;;) {
        ssize_t r = read(im__L.prd, im__L.pbuf + im__L.plen, IM__LOG_PBUF - im__L.plen);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r == 0) { /* every writer is gone (the fork server and its workers) */
                im__log_write_all(im__L.pbuf, im__L.plen);
                im__L.plen = 0;
                close(im__L.prd);
                im__L.prd = -1;
            }
            return;
        }
        im__L.plen += (size_t)r;
        size_t whole = im__L.plen;
        if (whole < IM__LOG_PBUF)
            while (whole && im__L.pbuf[whole - 1] != '\n') whole--;
        im__log_write_all(im__L.pbuf, whole);
        memmove(im__L.pbuf, im__L.pbuf + whole, im__L.plen - whole);
        im__L.plen -= whole;
    }
}

/* The descriptor a process about to be forked (the fork server) makes its stderr: what it and
 * its workers write there comes out in this process's log, whatever file that is by then.
 * -errno when no pipe can be made (they keep this process's stderr). */
static int im__log_pipe(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return -errno;
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    pthread_mutex_lock(&im__L.mu);
    if (im__L.prd >= 0) close(im__L.prd); /* an earlier fork server's: it is gone */
    im__L.prd = p[0];
    pthread_mutex_unlock(&im__L.mu);
    return p[1];
}

/* After a batch the writer naps this long before the next one, so that under load one writev
 * carries many lines and the loops wake it rarely (each wake is a syscall and a context
 * switch, more than a line costs); an idle writer is woken by the next line at once. */
#define IM__LOG_NAP_MS 2

static void *im__log_writer(void *arg)
{
    (void)arg;
    struct iovec iov[IM__LOG_BATCH];
    uint64_t reported = 0;
    int64_t warned_ms = 0;
    int wrote = 0; /* since the last sleep */
    pthread_setname_np(pthread_self(), "im-log");
    for (;;) {
        uint64_t pos = atomic_load_explicit(&im__L.tail, memory_order_relaxed);
        int n = 0;
        while (n < IM__LOG_BATCH) {
            im__lslot *s = &im__L.slots[(pos + (uint64_t)n) & im__L.mask];
            if (atomic_load_explicit(&s->seq, memory_order_acquire) +
                    ((pos + (uint64_t)n) & im__L.mask) != pos + (uint64_t)n + 1)
                break;
            iov[n].iov_base = s->data;
            iov[n].iov_len = s->len;
            n++;
        }
        if (n) {
            int fd = atomic_load_explicit(&im__L.fd, memory_order_relaxed), k = 0;
            while (k < n) { /* whole lines; a partial write resumes inside one */
                ssize_t w = writev(fd, iov + k, n - k);
                if (w < 0 && errno == EINTR) continue;
                if (w <= 0) break;
                while (k < n && (size_t)w >= iov[k].iov_len) w -= (ssize_t)iov[k++].iov_len;
                if (k < n) {
                    iov[k].iov_base = (char *)iov[k].iov_base + w;
                    iov[k].iov_len -= (size_t)w;
                }
            }
            for (int i = 0; i < n; i++) {
                uint64_t at = pos + (uint64_t)i;
                atomic_store_explicit(&im__L.slots[at & im__L.mask].seq,
                                      at + im__L.mask + 1 - (at & im__L.mask),
                                      memory_order_release);
            }
            atomic_store_explicit(&im__L.tail, pos + (uint64_t)n, memory_order_release);
            im__log_drain_pipe();
            wrote = 1;
            continue;
        }
        im__log_drain_pipe();
        uint64_t d = atomic_load_explicit(&im__L.dropped, memory_order_relaxed);
        int64_t now = (int64_t)(im_log_clock_ns() / 1000000u);
        if (d != reported && now - warned_ms >= 10000) { /* at most one warning in 10 s */
            im__log_direct(IM_LOG_WARN, "log: %llu lines dropped (%llu in all): the ring of %u "
                           "lines was full (logging.ring_lines)",
                           (unsigned long long)(d - reported), (unsigned long long)d,
                           im__L.mask + 1);
            reported = d;
            warned_ms = now;
        }
        if (atomic_load_explicit(&im__L.stop, memory_order_acquire)) break;
        int nap = wrote; /* lines came lately: more are likely, batch them */
        wrote = 0;
        atomic_store_explicit(&im__L.sleeping, nap ? 1 : 2, memory_order_seq_cst); /* see
                                                                      * im__log_publish */
        im__lslot *s = &im__L.slots[pos & im__L.mask];
        if (!nap && atomic_load_explicit(&s->seq, memory_order_seq_cst) + (pos & im__L.mask) ==
                        pos + 1) {
            atomic_store_explicit(&im__L.sleeping, 0, memory_order_relaxed);
            continue;
        }
        struct pollfd p[2] = {{im__L.efd, POLLIN, 0}, {im__L.prd, POLLIN, 0}};
        if (poll(p, 2, nap ? IM__LOG_NAP_MS : 1000) > 0 && (p[0].revents & POLLIN)) {
            uint64_t v;
            if (read(im__L.efd, &v, sizeof v) < 0) { /* drained below anyway */
            }
        }
        atomic_store_explicit(&im__L.sleeping, 0, memory_order_relaxed);
    }
    return NULL;
}

/* At exit: what is queued is written, then the writer ends (a thread left running would
 * hold up the exit: TSan, for one, waits a second for it). Lines come directly after. */
static void im__log_stop(void)
{
    if (!atomic_load_explicit(&im__L.async, memory_order_acquire)) return;
    im_log_flush();
    atomic_store_explicit(&im__L.async, 0, memory_order_release);
    atomic_store_explicit(&im__L.stop, 1, memory_order_release);
    uint64_t one = 1;
    if (write(im__L.efd, &one, sizeof one) < 0) { /* it looks at stop within a second */
    }
    struct timespec ts; /* a writer stuck on a stalled stderr must not hold up the exit */
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 2;
    pthread_timedjoin_np(im__L.thread, NULL, &ts);
}

/* In a child after fork(): no writer there; lines are written directly. */
static void im__log_child(void)
{
    atomic_store_explicit(&im__L.async, 0, memory_order_relaxed);
    /* a server started in the child makes a ring and a writer of its own; the parent's
     * stay reachable (no leak is reported) but unused */
    im__L.stale = im__L.slots;
    im__L.slots = NULL;
    atomic_store_explicit(&im__L.head, 0, memory_order_relaxed);
    atomic_store_explicit(&im__L.tail, 0, memory_order_relaxed);
    if (im__L.efd >= 0) close(im__L.efd);
    im__L.efd = -1;
    if (im__L.prd >= 0) close(im__L.prd); /* the parent's end of the workers' pipe */
    im__L.prd = -1;
    im__L.plen = 0;
}

int im_log_start(void)
{
    int rc = 0;
    pthread_mutex_lock(&im__L.mu);
    if (im__L.slots) {
        atomic_store_explicit(&im__L.async, 1, memory_order_release);
        pthread_mutex_unlock(&im__L.mu);
        return 0;
    }
    uint32_t cap = 64;
    unsigned want = im__L.ring_lines ? im__L.ring_lines : IM_DEFAULT_LOG_RING_LINES;
    while (cap < want && cap < (1u << 20)) cap <<= 1; /* 1 KiB each: 1 GiB at most */
    im__L.slots = calloc(cap, sizeof(im__lslot)); /* every seq 0: see im__lslot */
    im__L.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!im__L.slots || im__L.efd < 0) {
        rc = im__L.slots ? -errno : -ENOMEM;
    } else {
        im__L.mask = cap - 1;
        rc = -pthread_create(&im__L.thread, NULL, im__log_writer, NULL);
    }
    if (rc) {
        free(im__L.slots);
        im__L.slots = NULL;
        if (im__L.efd >= 0) close(im__L.efd);
        im__L.efd = -1;
    } else {
        static int once;
        if (!once++) {
            pthread_atfork(NULL, NULL, im__log_child);
            atexit(im__log_stop);
        }
        atomic_store_explicit(&im__L.async, 1, memory_order_release);
    }
    pthread_mutex_unlock(&im__L.mu);
    return rc;
}

void im_log_flush(void)
{
    if (!atomic_load_explicit(&im__L.async, memory_order_acquire)) return;
    uint64_t want = atomic_load_explicit(&im__L.head, memory_order_acquire);
    for (int i = 0; i < 2000; i++) {
        if (atomic_load_explicit(&im__L.tail, memory_order_acquire) >= want) return;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* Opens path for appending and puts it at the log's descriptor (a file's own, kept: a writer
 * mid-line keeps a valid descriptor while it changes). Called with mu held. */
static int im__log_open_locked(const char *path)
{
    int nfd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (nfd < 0) return -errno;
    int fd = atomic_load_explicit(&im__L.fd, memory_order_relaxed);
    if (fd == 2) {
        atomic_store_explicit(&im__L.fd, nfd, memory_order_relaxed);
        return 0;
    }
    int rc = dup3(nfd, fd, O_CLOEXEC) < 0 ? -errno : 0; /* atomic: never a closed fd */
    close(nfd);
    return rc;
}

int im_log_configure(const im_log_opts *o)
{
    static const im_log_opts none = {0};
    if (!o) o = &none;
    int rc = 0;
    pthread_mutex_lock(&im__L.mu);
    atomic_store_explicit(&im__L.json, o->json ? 1 : 0, memory_order_relaxed);
    if (!im__L.slots) im__L.ring_lines = o->ring_lines;
    int same = (!o->file && !im__L.path) || (o->file && im__L.path && !strcmp(o->file, im__L.path));
    if (!same) {
        if (o->file) {
            char *p = strdup(o->file);
            if (!p) rc = -ENOMEM;
            else if ((rc = im__log_open_locked(p)) == 0) {
                free(im__L.path);
                im__L.path = p;
            } else {
                free(p);
            }
        } else { /* back to stderr (the file's descriptor stays: a writer may hold it) */
            int fd = atomic_load_explicit(&im__L.fd, memory_order_relaxed);
            if (fd != 2 && dup3(2, fd, O_CLOEXEC) < 0) rc = -errno;
            free(im__L.path);
            im__L.path = NULL;
        }
    }
    pthread_mutex_unlock(&im__L.mu);
    return rc;
}

int im_log_reopen(void)
{
    int rc = 0;
    pthread_mutex_lock(&im__L.mu);
    if (im__L.path) rc = im__log_open_locked(im__L.path);
    pthread_mutex_unlock(&im__L.mu);
    return rc;
}
