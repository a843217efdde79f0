/* task.c — task objects (ids, references, state under a small lock, progress, the JSON of a
 * task), waking whoever waits on one, and the in-memory task store behind the store
 * interface: a hash by id, lists by creation (all tasks, and per function), finished tasks
 * kept for a TTL under a memory cap, oldest finished evicted first, unfinished never. */

static const char *const im__task_states[] = {"QUEUED", "RUNNING", "SUCCEEDED", "FAILED",
                                              "TIMEOUT", "CANCELLED"};

const char *im_task_state_name(int state)
{
    return state >= 0 && state <= IM_TASK_CANCELLED ? im__task_states[state] : "UNKNOWN";
}

static int im__task_state_parse(im_str s)
{
    for (int i = 0; i <= IM_TASK_CANCELLED; i++)
        if (im_str_ieq(s, im__task_states[i])) return i;
    return -1;
}

static int im__task_terminal_state(int st) { return st >= IM_TASK_SUCCEEDED; }

/* A spin lock: every critical section is a few stores, but the holder may be preempted (a
 * worker on the loop's core), so the waiter yields after a short spin. */
static void im__task_lock(im__task *t)
{
    for (int spins = 0; atomic_exchange_explicit(&t->lock, 1, memory_order_acquire); spins++) {
        while (atomic_load_explicit(&t->lock, memory_order_relaxed)) {
            if (++spins > 64) sched_yield();
            else im__cpu_relax();
        }
    }
}

static void im__task_unlock(im__task *t) { atomic_store_explicit(&t->lock, 0, memory_order_release); }

static int64_t im__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t im__mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* 16 random bytes for an id, from the loop's buffer of getrandom output (one syscall per 32
 * ids). Loop thread only. */
static int im__task_id(im_loop *L, uint8_t id[16])
{
    if (L->rnd_off + 16 > sizeof L->rnd) {
        size_t got = 0;
        while (got < sizeof L->rnd) {
            ssize_t n = getrandom(L->rnd + got, sizeof L->rnd - got, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return -EIO;
            got += (size_t)n;
        }
        L->rnd_off = 0;
    }
    memcpy(id, L->rnd + L->rnd_off, 16);
    L->rnd_off += 16;
    return 0;
}

static void im__task_id_hex(const uint8_t id[16], char out[33])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[id[i] >> 4];
        out[2 * i + 1] = hex[id[i] & 15];
    }
    out[32] = 0;
}

/* Parses 32 hex characters (any case); 0 or -1. */
static int im__task_id_parse(im_str s, uint8_t id[16])
{
    if (s.len != 32) return -1;
    for (int i = 0; i < 16; i++) {
        int hi = im__hexval((unsigned char)s.ptr[2 * i]), lo = im__hexval((unsigned char)s.ptr[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        id[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static void im__task_ref(im__task *t) { atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed); }

static void im__task_unref(im__task *t)
{
    if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1) return;
    free(t->message);
    if (t->body != t->small) free(t->body);
    free(t->error);
    free(t->hdrs);
    free(t);
}

/* Wakes t's waiters: every event stream, and the requests waiting for the answer (sync calls,
 * long polls) when t has finished. A waiter whose wake-up is still on its way is not posted again (it reads the
 * latest state when it runs). Task lock held. */
static void im__task_wake(im__task *t)
{
    int terminal = im__task_terminal_state(t->state);
    for (im__waiter *w = t->waiters; w; w = w->next) {
        if (w->kind != IM__W_EVENTS && !terminal) continue; /* they only want the end */
        if (!atomic_exchange_explicit(&w->posted, 1, memory_order_acq_rel))
            im_loop_post(w->loop, &w->post);
    }
}

/* Adds a waiter to t's list (t's reference is taken for it). Loop thread. */
static void im__task_listen(im__task *t, im__waiter *w)
{
    im__task_ref(t);
    w->task = t;
    im__task_lock(t);
    w->next = t->waiters;
    t->waiters = w;
    w->is_listed = 1;
    im__task_unlock(t);
}

/* Takes w off its task's list: no wake-up is posted to it after this returns. */
static void im__task_unlisten(im__waiter *w)
{
    im__task *t = w->task;
    if (!w->is_listed) return;
    im__task_lock(t);
    for (im__waiter **p = &t->waiters; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    im__task_unlock(t);
    w->is_listed = 0;
}

/* Writes an RFC 3339 UTC time with milliseconds ("2026-12-01T23:10:41.029Z"), or null. */
static void im__jw_time(im_jw *w, int64_t ms)
{
    char b[64];
    struct tm tm;
    time_t sec = (time_t)(ms / 1000);
    if (!ms) {
        im_jw_null(w);
        return;
    }
    gmtime_r(&sec, &tm);
    snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    im_jw_str(w, b);
}

/* The task object of GET /tasks/{id}; "result" (the function's own answer) only when asked.
 * Task lock held. */
static void im__task_json(im_jw *w, const im__task *t, int with_result)
{
    char id[33];
    im__task_id_hex(t->id, id);
    im_jw_obj(w);
    im_jw_key(w, "id");
    im_jw_str(w, id);
    im_jw_key(w, "function");
    im_jw_str(w, t->fn->ep->name);
    im_jw_key(w, "request_id");
    im_jw_str(w, t->request_id);
    im_jw_key(w, "state");
    im_jw_str(w, im_task_state_name(t->state));
    im_jw_key(w, "priority");
    im_jw_int(w, t->priority);
    im_jw_key(w, "created_at");
    im__jw_time(w, t->created_ms);
    im_jw_key(w, "started_at");
    im__jw_time(w, t->started_ms);
    im_jw_key(w, "finished_at");
    im__jw_time(w, t->finished_ms);
    im_jw_key(w, "progress");
    im_jw_obj(w);
    im_jw_key(w, "fraction");
    im_jw_double(w, t->fraction);
    im_jw_key(w, "message");
    if (t->message) im_jw_str(w, t->message);
    else im_jw_null(w);
    im_jw_obj_end(w);
    if (t->state == IM_TASK_SUCCEEDED && with_result) {
        im_jw_key(w, "result");
        im_ndarray a;
        if (t->body && t->is_npy && im_npy_read(t->body, t->body_len, &a, NULL, 0) == 0) {
            t->fn->ep->write(w, &a); /* as the JSON answer is: {"result": nested lists} */
        } else if (t->body && !t->is_npy) {
            im_jw_raw(w, t->body, t->body_len);
        } else {
            im_jw_null(w);
        }
    } else if (t->state > IM_TASK_SUCCEEDED) {
        im_jw_key(w, "error");
        im_jw_str(w, t->error ? t->error : im_task_state_name(t->state));
    }
    im_jw_obj_end(w);
}

/* Memory a task holds, for the store's cap. Task lock held (or t not shared yet). */
static size_t im__task_bytes(const im__task *t)
{
    return sizeof *t + 32 + (t->body && t->body != t->small ? t->body_len : 0) +
           (t->error ? strlen(t->error) : 0) + (t->message ? strlen(t->message) : 0) +
           (t->hdrs ? strlen(t->hdrs) : 0);
}

/* ---- the in-memory store ---- */

typedef struct im__memstore {
    im__store base;          /* first */
    pthread_mutex_t mu;
    im__task **table;        /* owned: chains by hnext, a power of two of buckets */
    size_t nbuckets, count;
    im__task *newest, *oldest;         /* every task, by creation */
    im__task *done_head, *done_tail;   /* finished ones, by finish time: evicted from the head */
    size_t bytes, max_bytes;
    uint64_t ttl_ms;
    uint64_t seq;
    size_t by_state_evicted[6];        /* counts of tasks evicted, by state */
} im__memstore;

static size_t im__id_hash(const uint8_t id[16])
{
    uint64_t h;
    memcpy(&h, id, 8); /* random bytes: the first eight hash well */
    return (size_t)h;
}

static int im__ms_grow(im__memstore *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 1024;
    im__task **tb = calloc(n, sizeof *tb);
    if (!tb) return -ENOMEM;
    for (size_t i = 0; i < m->nbuckets; i++)
        for (im__task *t = m->table[i], *next; t; t = next) {
            next = t->hnext;
            size_t b = im__id_hash(t->id) & (n - 1);
            t->hnext = tb[b];
            tb[b] = t;
        }
    free(m->table);
    m->table = tb;
    m->nbuckets = n;
    return 0;
}

static int im__ms_add(im__store *s, im__task *t)
{
    im__memstore *m = (im__memstore *)s;
    pthread_mutex_lock(&m->mu);
    if (m->count + 1 > m->nbuckets / 4 * 3 && im__ms_grow(m)) {
        pthread_mutex_unlock(&m->mu);
        return -ENOMEM;
    }
    size_t b = im__id_hash(t->id) & (m->nbuckets - 1);
    t->hnext = m->table[b];
    m->table[b] = t;
    m->count++;
    t->seq = ++m->seq;
    t->newer = NULL;
    t->older = m->newest;
    if (m->newest) m->newest->newer = t;
    else m->oldest = t;
    m->newest = t;
    t->fnewer = NULL;
    t->folder = t->fn->newest;
    if (t->fn->newest) t->fn->newest->fnewer = t;
    t->fn->newest = t;
    im__task_lock(t); /* its job may be running, or over, already (lock order: store, task) */
    t->bytes = im__task_bytes(t);
    im__task_unlock(t);
    m->bytes += t->bytes;
    im__task_ref(t); /* the store's */
    pthread_mutex_unlock(&m->mu);
    return 0;
}

/* Takes t out of the hash and the creation lists (not the finished list). Store lock held. */
static void im__ms_unlink(im__memstore *m, im__task *t)
{
    size_t b = im__id_hash(t->id) & (m->nbuckets - 1);
    for (im__task **p = &m->table[b]; *p; p = &(*p)->hnext)
        if (*p == t) {
            *p = t->hnext;
            break;
        }
    m->count--;
    if (t->newer) t->newer->older = t->older;
    else m->newest = t->older;
    if (t->older) t->older->newer = t->newer;
    else m->oldest = t->newer;
    if (t->fnewer) t->fnewer->folder = t->folder;
    else t->fn->newest = t->folder;
    if (t->folder) t->folder->fnewer = t->fnewer;
    m->bytes -= t->bytes;
}

static void im__ms_remove(im__store *s, im__task *t)
{
    im__memstore *m = (im__memstore *)s;
    pthread_mutex_lock(&m->mu);
    im__ms_unlink(m, t);
    pthread_mutex_unlock(&m->mu);
    im__task_unref(t);
}

static im__task *im__ms_get(im__store *s, const uint8_t id[16])
{
    im__memstore *m = (im__memstore *)s;
    im__task *t;
    pthread_mutex_lock(&m->mu);
    for (t = m->table[im__id_hash(id) & (m->nbuckets - 1)]; t; t = t->hnext)
        if (memcmp(t->id, id, 16) == 0) {
            im__task_ref(t);
            break;
        }
    pthread_mutex_unlock(&m->mu);
    return t;
}

static size_t im__ms_list(im__store *s, const im__epstate *fn, unsigned mask, uint64_t before,
                          im__task **out, size_t max, uint64_t *next)
{
    im__memstore *m = (im__memstore *)s;
    size_t n = 0;
    *next = 0;
    pthread_mutex_lock(&m->mu);
    for (im__task *t = fn ? fn->newest : m->newest; t; t = fn ? t->folder : t->older) {
        if (before && t->seq >= before) continue;
        if (mask && !(mask & (1u << t->state))) continue;
        if (n == max) { /* there is more: continue from here */
            *next = out[n - 1]->seq;
            break;
        }
        im__task_ref(t);
        out[n++] = t;
    }
    pthread_mutex_unlock(&m->mu);
    return n;
}

/* Drops finished tasks past their TTL, and the oldest finished while over the memory cap.
 * Store lock held. Returns the tasks to unreference (outside the lock) through *drop. */
static im__task *im__ms_evict_locked(im__memstore *m, uint64_t now)
{
    im__task *drop = NULL;
    while (m->done_head && (m->done_head->expires <= now || m->bytes > m->max_bytes)) {
        im__task *t = m->done_head;
        m->done_head = t->dnext;
        if (!m->done_head) m->done_tail = NULL;
        im__ms_unlink(m, t);
        m->by_state_evicted[t->state]++;
        t->dnext = drop;
        drop = t;
    }
    return drop;
}

static void im__ms_drop(im__task *drop)
{
    while (drop) {
        im__task *next = drop->dnext;
        im__task_unref(drop);
        drop = next;
    }
}

static void im__ms_finished(im__store *s, im__task *t)
{
    im__memstore *m = (im__memstore *)s;
    uint64_t now = im__mono_ms();
    im__task *drop;
    pthread_mutex_lock(&m->mu);
    if (t->is_done_stored || !t->seq) { /* told twice, or never stored (refused at submit) */
        pthread_mutex_unlock(&m->mu);
        return;
    }
    t->is_done_stored = 1;
    im__task_lock(t);
    size_t bytes = im__task_bytes(t); /* now with its answer */
    im__task_unlock(t);
    m->bytes += bytes - t->bytes;
    t->bytes = bytes;
    t->expires = now + m->ttl_ms;
    t->dnext = NULL;
    if (m->done_tail) m->done_tail->dnext = t;
    else m->done_head = t;
    m->done_tail = t;
    drop = im__ms_evict_locked(m, now);
    pthread_mutex_unlock(&m->mu);
    im__ms_drop(drop);
}

static void im__ms_evict(im__store *s)
{
    im__memstore *m = (im__memstore *)s;
    pthread_mutex_lock(&m->mu);
    im__task *drop = im__ms_evict_locked(m, im__mono_ms());
    pthread_mutex_unlock(&m->mu);
    im__ms_drop(drop);
}

static void im__ms_counts(im__store *s, size_t by_state[6])
{
    im__memstore *m = (im__memstore *)s;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < 6; i++) by_state[i] = m->by_state_evicted[i];
    for (im__task *t = m->newest; t; t = t->older) by_state[t->state]++;
    pthread_mutex_unlock(&m->mu);
}

static void im__ms_destroy(im__store *s)
{
    im__memstore *m = (im__memstore *)s;
    if (!m) return;
    while (m->newest) {
        im__task *t = m->newest;
        im__ms_unlink(m, t);
        im__task_unref(t);
    }
    free(m->table);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static const im__store_ops im__memstore_ops = {
    "memory", im__ms_add, im__ms_remove, im__ms_get, im__ms_list, im__ms_finished, im__ms_evict,
    im__ms_counts, im__ms_destroy,
};

static im__store *im__memstore_new(uint64_t ttl_ms, size_t max_bytes)
{
    im__memstore *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->base.ops = &im__memstore_ops;
    m->ttl_ms = ttl_ms;
    m->max_bytes = max_bytes;
    pthread_mutex_init(&m->mu, NULL);
    if (im__ms_grow(m)) {
        free(m);
        return NULL;
    }
    return &m->base;
}
