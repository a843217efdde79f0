/* conf.c — run-time configuration: layers merged into snapshots, checks against the known keys
 * (immersive's own, from one table, and those modules add), typed lookups, subscribers, and
 * the server's side: options from keys, live keys handed to the loops, files watched. */

/* ---- immersive's own keys: one row each, the single source of default_config.toml, of the
 * checks and of the options they set */

enum { IM__CK_INT, IM__CK_UINT, IM__CK_SIZE, IM__CK_STR, IM__CK_LEVEL, IM__CK_PATH, IM__CK_BOOL };
enum {
    IM__CKF_LIVE = 1,  /* changes take effect without a restart */
    IM__CKF_CORES = 2, /* 0 means one per online core */
    IM__CKF_OFF = 4,   /* 0 means off (no such timeout) */
    IM__CKF_ANY = 8,   /* port: 0 means any free port */
    IM__CKF_EMPTY = 16, /* a string that may be empty (then: none) */
};

static const char *im__sv(const char *s) { return s ? s : ""; }

typedef struct im__ckey {
    const char *path;
    int kind;
    size_t off;        /* in im_server_opts (not for IM__CK_LEVEL) */
    int64_t lo, hi;
    unsigned flags;
    const char *doc;
} im__ckey;

#define IM__OFF(f) offsetof(im_server_opts, f)
static const im__ckey im__ckeys[] = {
    {"server.host", IM__CK_STR, IM__OFF(host), 0, 0, 0, "address to bind, an IPv4 or IPv6 literal"},
    {"server.port", IM__CK_INT, IM__OFF(port), 0, 65535, IM__CKF_ANY, "TCP port (0: any free port)"},
    {"server.role", IM__CK_STR, IM__OFF(role), 0, 0, 0,
     "all (serves and runs tasks), api (runs none) or worker (serves only health, ready, "
     "metrics); api and worker need the Redis store"},
    {"server.loops", IM__CK_INT, IM__OFF(loops), 0, IM_MAX_LOOPS, IM__CKF_CORES,
     "event-loop threads (0: one per online core)"},
    {"server.backlog", IM__CK_INT, IM__OFF(backlog), 1, 1 << 20, 0, "listen(2) backlog"},
    {"server.limits.max_conns", IM__CK_INT, IM__OFF(max_conns), 1, 1 << 24, 0,
     "open connections, shared out over the loops (503 past it)"},
    {"server.limits.max_header_bytes", IM__CK_SIZE, IM__OFF(max_header_bytes), 64, 1 << 24,
     IM__CKF_LIVE, "request line and header block (431 / 414 past it)"},
    {"server.limits.max_body_bytes", IM__CK_SIZE, IM__OFF(max_body_bytes), 1, 1 << 30,
     IM__CKF_LIVE, "request body after de-chunking (413 past it)"},
    {"server.limits.max_headers", IM__CK_INT, IM__OFF(max_headers), 1, 100000, 0,
     "header lines in one request (431 past it)"},
    {"server.limits.max_output_bytes", IM__CK_SIZE, IM__OFF(max_output_bytes), 1024,
     (int64_t)1 << 40, IM__CKF_LIVE, "output queued for one connection before reading pauses"},
    {"server.limits.max_queued_bytes", IM__CK_SIZE, IM__OFF(max_queued_bytes), 1,
     (int64_t)1 << 48, IM__CKF_LIVE, "memory held by all queued and running calls (429 past it)"},
    {"server.limits.arena_ratio", IM__CK_UINT, IM__OFF(arena_ratio), 1, 1024, IM__CKF_LIVE,
     "what binding one request may build: this many times its bytes ..."},
    {"server.limits.arena_extra_bytes", IM__CK_SIZE, IM__OFF(arena_extra_bytes), 1,
     (int64_t)1 << 32, IM__CKF_LIVE, "... plus this (413 past it)"},
    {"server.timeouts.header_ms", IM__CK_INT, IM__OFF(header_timeout_ms), 0, 1 << 30,
     IM__CKF_LIVE | IM__CKF_OFF, "the whole header block, from accept or the request's first "
     "byte (408; 0: none)"},
    {"server.timeouts.body_ms", IM__CK_INT, IM__OFF(body_timeout_ms), 0, 1 << 30,
     IM__CKF_LIVE | IM__CKF_OFF, "between two reads of a body (408; 0: none)"},
    {"server.timeouts.idle_ms", IM__CK_INT, IM__OFF(idle_timeout_ms), 0, 1 << 30,
     IM__CKF_LIVE | IM__CKF_OFF, "an idle keep-alive connection is closed (0: never)"},
    {"server.timeouts.send_ms", IM__CK_INT, IM__OFF(send_timeout_ms), 0, 1 << 30,
     IM__CKF_LIVE | IM__CKF_OFF, "a peer that accepts none of our output is dropped (0: never)"},
    {"server.timeouts.linger_ms", IM__CK_INT, IM__OFF(linger_ms), 1, 1 << 30, IM__CKF_LIVE,
     "input drained after a last response, before the close"},
    {"server.timeouts.shutdown_ms", IM__CK_INT, IM__OFF(shutdown_timeout_ms), 1, 1 << 30, 0,
     "a graceful stop waits this long for requests in flight"},
    {"server.io.sq_entries", IM__CK_UINT, IM__OFF(sq_entries), 1, 32768, 0,
     "io_uring submission queue per loop (the completion queue is 4x)"},
    {"server.io.recv_buffers", IM__CK_UINT, IM__OFF(recv_buffers), 1, 32768, 0,
     "provided receive buffers per loop, a power of two"},
    {"server.io.recv_buffer_size", IM__CK_UINT, IM__OFF(recv_buffer_size), 256, 1 << 20, 0,
     "bytes of each receive buffer"},
    {"server.io.batch_wait_us", IM__CK_INT, IM__OFF(batch_wait_us), 0, 1000000, 0,
     "under load, how long a loop may wait for a batch of completions (0: off; Linux 6.12+)"},
    {"executor.workers", IM__CK_UINT, IM__OFF(workers), 0, 1024, IM__CKF_CORES,
     "threads of the primary executor (0: one per online core)"},
    {"executor.queue_capacity", IM__CK_UINT, IM__OFF(queue_capacity), 1, 1 << 24, 0,
     "jobs per priority level in each of the server's executors"},
    {"executor.priority_levels", IM__CK_UINT, IM__OFF(priority_levels), 1, IM_QUEUE_MAX_LEVELS,
     0, "priority levels of the server's executors"},
    {"process.workers", IM__CK_UINT, IM__OFF(processes), 0, 1024, IM__CKF_CORES,
     "worker processes of process-mode functions, kept warm (0: one per online core)"},
    {"process.kill_grace_ms", IM__CK_INT, IM__OFF(kill_grace_ms), 1, 1 << 30, 0,
     "a process task past its time limit or cancelled gets SIGTERM, then SIGKILL this late"},
    {"process.rlimit_as_bytes", IM__CK_SIZE, IM__OFF(rlimit_as_bytes), 0, (int64_t)1 << 48, 0,
     "address space of each worker process (RLIMIT_AS; 0: unlimited)"},
    {"process.rlimit_cpu_s", IM__CK_UINT, IM__OFF(rlimit_cpu_s), 0, 1 << 30, 0,
     "CPU seconds one call may use in its worker (RLIMIT_CPU; 0: unlimited)"},
    {"process.rlimit_nofile", IM__CK_UINT, IM__OFF(rlimit_nofile), 0, 1 << 20, 0,
     "open files of each worker process (RLIMIT_NOFILE; 0: as the server's)"},
    {"tasks.ttl_ms", IM__CK_INT, IM__OFF(task_ttl_ms), 1, INT_MAX, 0,
     "a finished task is kept this long"},
    {"tasks.memory_bytes", IM__CK_SIZE, IM__OFF(task_memory_bytes), 1, (int64_t)1 << 48, 0,
     "what all kept tasks may hold (the oldest finished are evicted first)"},
    {"tasks.store", IM__CK_STR, IM__OFF(task_store), 0, 0, 0,
     "memory, or redis://host:port/db: tasks shared by the instances using that Redis"},
    {"tasks.max_attempts", IM__CK_UINT, IM__OFF(task_max_attempts), 1, 1000, 0,
     "Redis store: runs of a task whose worker went away, at most (then FAILED, worker lost)"},
    {"tasks.redis.claim_after_ms", IM__CK_INT, IM__OFF(task_claim_after_ms), 100, 1 << 30, 0,
     "Redis store: a task whose instance stopped answering is taken over after this"},
    {"logging.level", IM__CK_LEVEL, 0, 0, 0, IM__CKF_LIVE,
     "trace, debug, info, warn, error, fatal or off"},
    {"logging.format", IM__CK_STR, IM__OFF(log_format), 0, 0, 0,
     "text, or json: one JSON object per line"},
    {"logging.file", IM__CK_STR, IM__OFF(log_file), 0, 0, IM__CKF_EMPTY,
     "append the lines to this file, opened again on SIGHUP (\"\": stderr)"},
    {"logging.access", IM__CK_BOOL, IM__OFF(access_log), 0, 0, IM__CKF_LIVE,
     "one line per request: time, request id, peer, method, target, status, bytes, us, task"},
    {"logging.ring_lines", IM__CK_UINT, IM__OFF(log_ring_lines), 64, 1 << 20, 0,
     "lines queued for the log's writer; past them lines are dropped and counted"},
    {"metrics.enabled", IM__CK_BOOL, IM__OFF(metrics), 0, 0, IM__CKF_LIVE,
     "GET /metrics (Prometheus text), and the counting behind it"},
    {"docs.enabled", IM__CK_BOOL, IM__OFF(docs), 0, 0, IM__CKF_LIVE,
     "GET /docs (Swagger UI) and /redoc (ReDoc), served from files built into the service"},
    {"cors.allow_origins", IM__CK_STR, IM__OFF(cors_allow_origins), 0, 0,
     IM__CKF_LIVE | IM__CKF_EMPTY, "origins browsers may call from, comma-separated, or \"*\" "
     "(\"\": no CORS headers at all)"},
    {"cors.allow_methods", IM__CK_STR, IM__OFF(cors_allow_methods), 0, 0, IM__CKF_LIVE,
     "methods a preflight may ask for, comma-separated, or \"*\""},
    {"cors.allow_headers", IM__CK_STR, IM__OFF(cors_allow_headers), 0, 0,
     IM__CKF_LIVE | IM__CKF_EMPTY, "request headers allowed beyond the safelisted ones, or \"*\""},
    {"cors.expose_headers", IM__CK_STR, IM__OFF(cors_expose_headers), 0, 0,
     IM__CKF_LIVE | IM__CKF_EMPTY, "response headers the page may read (X-Request-ID, ...)"},
    {"cors.allow_credentials", IM__CK_BOOL, IM__OFF(cors_allow_credentials), 0, 0, IM__CKF_LIVE,
     "cookies and Authorization may cross (the origin is then echoed, never \"*\")"},
    {"cors.max_age", IM__CK_UINT, IM__OFF(cors_max_age), 0, 86400 * 7, IM__CKF_LIVE,
     "seconds a browser may cache a preflight's answer"},
    {"compression.enabled", IM__CK_BOOL, IM__OFF(compress), 0, 0, IM__CKF_LIVE,
     "gzip answers when the client accepts it (in a build with zlib)"},
    {"compression.min_bytes", IM__CK_SIZE, IM__OFF(compress_min_bytes), 1, (int64_t)1 << 30,
     IM__CKF_LIVE, "bodies smaller than this go as they are"},
    {"compression.level", IM__CK_UINT, IM__OFF(compress_level), 1, 9, 0,
     "zlib's level: 1 fastest .. 9 smallest"},
    {"manage.prefix", IM__CK_STR, IM__OFF(manage_prefix), 0, 0, 0,
     "path prefix of the management endpoints"},
    {"manage.port", IM__CK_INT, IM__OFF(manage_port), 0, 65535, 0,
     "serve the management endpoints on this port only, a listener of their own (0: on the "
     "service's port)"},
    {"manage.host", IM__CK_STR, IM__OFF(manage_host), 0, 0, IM__CKF_EMPTY,
     "the address manage.port listens on (\"\": server.host's)"},
    {"manage.token", IM__CK_STR, IM__OFF(manage_token), 0, 0, IM__CKF_EMPTY,
     "bearer token the write endpoints need (\"\": none, and only loopback peers may write)"},
    {"manage.ready_queue_percent", IM__CK_UINT, IM__OFF(ready_queue_percent), 1, 100,
     IM__CKF_LIVE, "GET /ready answers 503 while an executor's queue is fuller than this"},
    {"paths.cache", IM__CK_PATH, 0, 0, 0, 0, "root of the modules' cache directories (kept)"},
    {"paths.temp", IM__CK_PATH, 0, 0, 0, 0, "root of their temp directories (emptied at start "
     "and exit)"},
    {"paths.data", IM__CK_PATH, 0, 0, 0, 0, "root of their static data (read-only)"},
};
#undef IM__OFF
#define IM__NCKEYS (sizeof im__ckeys / sizeof im__ckeys[0])

/* a timeout of 0 ("off") becomes this: about 12 days, still far from the 32-bit clock's wrap */
#define IM__OFF_MS (1 << 30)

/* ---- the configuration */

enum { IM__L_DEFAULTS, IM__L_FILE, IM__L_OVERRIDE, IM__L_SET };

typedef struct im__clayer {
    int kind;
    char *name;         /* owned: file path, flag name, "im_config_set" or the defaults' name */
    int optional;       /* a missing file is no error */
    im_toml *doc;       /* owned: its document (NULL for a missing optional file) */
    char *text;         /* owned: defaults and overrides, kept for default_config.toml */
    int is_switch;      /* defaults: a module's line of [modules] (text is the line alone) */
    struct im__clayer *next;
} im__clayer;

typedef struct im__cwatch {
    int id;
    char *path;
    im_config_fn fn;
    void *arg;
    struct im__cwatch *next;
} im__cwatch;

typedef struct im__cstr {
    struct im__cstr *next;
    char s[];
} im__cstr;

struct im_config {
    pthread_mutex_t mu;     /* the fields below, held for lookups (a few microseconds) */
    im__clayer *layers;     /* lowest first: defaults, files, overrides, sets */
    im_toml *schema;        /* owned: the defaults merged (every known key), open tables marked */
    im_toml *cur;           /* owned: the current snapshot; NULL before the first load */
    uint64_t gen;
    im__cwatch *watches;
    int next_watch;
    im__cstr *strs;         /* interned strings handed out by im_config_str */
    int is_watched;         /* files followed by a server: no more layers */
    pthread_mutex_t load_mu;/* one load (and its notifications) at a time */
};

#define IM__TF_OPEN 32 /* a schema table that takes keys of any name */

static void im__cfg_layer_free(im__clayer *l)
{
    im_toml_free(l->doc);
    free(l->name);
    free(l->text);
    free(l);
}

static im__clayer *im__cfg_layer(im_config *cfg, int kind, const char *name)
{
    im__clayer *l = (im__clayer *)calloc(1, sizeof *l);
    if (!l || !(l->name = strdup(name))) { free(l); return NULL; }
    l->kind = kind;
    /* kept in order: defaults, then files, overrides and sets, each in the order added */
    im__clayer **pp = &cfg->layers;
    while (*pp && (*pp)->kind <= kind) pp = &(*pp)->next;
    l->next = *pp;
    *pp = l;
    return l;
}

/* Merges src into the table dst: tables merge key by key, anything else replaces. */
static int im__cfg_merge(im_toml *dst, const im_toml *src, unsigned mark)
{
    for (size_t i = 0; i < src->u.list.len; i++) {
        const im_toml *s = src->u.list.kids[i];
        im_toml *d = (im_toml *)im_toml_find(dst, s->key, s->key_len);
        if (d && d->type == IM_TOML_TABLE && s->type == IM_TOML_TABLE) {
            if (im__cfg_merge(d, s, mark)) return -ENOMEM;
            continue;
        }
        im_toml *c = im_toml_dup(s);
        if (!c) return -ENOMEM;
        c->flags = (c->flags & ~(unsigned)IM__TF_OPEN) | mark;
        if (d) {
            /* replace in place: the order of keys stays that of the first layer */
            size_t j = 0;
            while (dst->u.list.kids[j] != d) j++;
            free((void *)c->key);
            c->key = d->key;
            d->key = NULL;
            im_toml_free(d);
            dst->u.list.kids[j] = c;
        } else if (im__tv_push(dst, c)) { /* the copy has its own key */
            im_toml_free(c);
            return -ENOMEM;
        }
    }
    return 0;
}

static int im__toml_equal(const im_toml *a, const im_toml *b)
{
    if (!a || !b) return a == b;
    if (a->type != b->type) return 0;
    switch (a->type) {
    case IM_TOML_STRING:
        return a->u.str.len == b->u.str.len && memcmp(a->u.str.ptr, b->u.str.ptr, a->u.str.len) == 0;
    case IM_TOML_INT: return a->u.i == b->u.i;
    case IM_TOML_FLOAT: return a->u.f == b->u.f || (isnan(a->u.f) && isnan(b->u.f));
    case IM_TOML_BOOL: return a->u.b == b->u.b;
    case IM_TOML_ARRAY:
        if (a->u.list.len != b->u.list.len) return 0;
        for (size_t i = 0; i < a->u.list.len; i++)
            if (!im__toml_equal(a->u.list.kids[i], b->u.list.kids[i])) return 0;
        return 1;
    case IM_TOML_TABLE:
        if (a->u.list.len != b->u.list.len) return 0;
        for (size_t i = 0; i < a->u.list.len; i++) {
            const im_toml *k = a->u.list.kids[i];
            if (!im__toml_equal(k, im_toml_find(b, k->key, k->key_len))) return 0;
        }
        return 1;
    default:
        return memcmp(&a->u.t, &b->u.t, sizeof a->u.t) == 0;
    }
}

static const char *im__cfg_type_word(im_toml_type t)
{
    switch (t) {
    case IM_TOML_STRING: return "a string";
    case IM_TOML_INT: return "an integer";
    case IM_TOML_FLOAT: return "a number";
    case IM_TOML_BOOL: return "a boolean";
    case IM_TOML_ARRAY: return "an array";
    case IM_TOML_TABLE: return "a table";
    default: return "a date or time";
    }
}

/* the Levenshtein distance of two short keys, to suggest the known one a typo meant */
static size_t im__cfg_dist(const char *a, size_t na, const char *b, size_t nb)
{
    size_t row[64];
    if (na >= 64 || nb >= 64) return 99;
    for (size_t j = 0; j <= nb; j++) row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

/* Checks a layer's table against the schema's: every key known (or under an open table), of
 * the known type. prefix is the dotted path so far. */
static int im__cfg_check(const im_toml *sch, const im_toml *t, const im__clayer *l,
                         const char *prefix, char *err, size_t errlen)
{
    for (size_t i = 0; i < t->u.list.len; i++) {
        const im_toml *v = t->u.list.kids[i];
        char path[512];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", v->key);
        const im_toml *s = im_toml_find(sch, v->key, v->key_len);
        char where[300];
        if (l->kind == IM__L_FILE) snprintf(where, sizeof where, "%s:%u:%u", l->name, v->line, v->col);
        else snprintf(where, sizeof where, "%s", l->name);
        if (!s) {
            if (sch->flags & IM__TF_OPEN) continue;
            const char *best = NULL;
            size_t bd = 3;
            for (size_t j = 0; j < sch->u.list.len; j++) {
                const im_toml *k = sch->u.list.kids[j];
                size_t d = im__cfg_dist(v->key, v->key_len, k->key, k->key_len);
                if (d < bd) { bd = d; best = k->key; }
            }
            if (best)
                snprintf(err, errlen, "%s: unknown key '%s' (did you mean '%s%s%s'?)", where, path,
                         prefix, *prefix ? "." : "", best);
            else
                snprintf(err, errlen, "%s: unknown key '%s'", where, path);
            return -EINVAL;
        }
        int ok = s->type == v->type || (s->type == IM_TOML_FLOAT && v->type == IM_TOML_INT) ||
                 (s->type >= IM_TOML_DATETIME && s->type <= IM_TOML_TIME_LOCAL &&
                  v->type >= IM_TOML_DATETIME && v->type <= IM_TOML_TIME_LOCAL);
        if (!ok) {
            snprintf(err, errlen, "%s: '%s' must be %s, not %s", where, path,
                     im__cfg_type_word(s->type), im__cfg_type_word(v->type));
            return -EINVAL;
        }
        if (v->type == IM_TOML_TABLE && !(s->flags & IM__TF_OPEN) &&
            im__cfg_check(s, v, l, path, err, errlen))
            return -EINVAL;
    }
    return 0;
}

/* An integer written where the defaults hold a float becomes that float: a lookup then reads
 * the key as the type its defaults give it. */
static void im__cfg_floats(const im_toml *sch, im_toml *t)
{
    for (size_t i = 0; i < t->u.list.len; i++) {
        im_toml *v = t->u.list.kids[i];
        const im_toml *s = im_toml_find(sch, v->key, v->key_len);
        if (!s) continue;
        if (s->type == IM_TOML_FLOAT && v->type == IM_TOML_INT) {
            v->type = IM_TOML_FLOAT;
            v->u.f = (double)v->u.i;
        } else if (s->type == IM_TOML_TABLE && v->type == IM_TOML_TABLE) {
            im__cfg_floats(s, v);
        }
    }
}

/* Range checks of immersive's own keys in a merged document. */
static int im__cfg_ranges(const im_toml *doc, char *err, size_t errlen)
{
    for (size_t i = 0; i < IM__NCKEYS; i++) {
        const im__ckey *k = &im__ckeys[i];
        const im_toml *v = im_toml_get(doc, k->path);
        if (!v) continue;
        if (k->kind == IM__CK_LEVEL) {
            if (v->type != IM_TOML_STRING || im_log_level_parse(v->u.str.ptr) < 0) {
                snprintf(err, errlen, "'%s' must be one of trace, debug, info, warn, error, "
                         "fatal, off", k->path);
                return -EINVAL;
            }
        } else if (k->kind == IM__CK_BOOL) {
            if (v->type != IM_TOML_BOOL) {
                snprintf(err, errlen, "'%s' must be true or false", k->path);
                return -EINVAL;
            }
        } else if (k->kind == IM__CK_STR || k->kind == IM__CK_PATH) {
            if (v->type != IM_TOML_STRING || (v->u.str.len == 0 && !(k->flags & IM__CKF_EMPTY)) ||
                strlen(v->u.str.ptr) != v->u.str.len) {
                snprintf(err, errlen, "'%s' must be a non-empty string", k->path);
                return -EINVAL;
            }
            if (!strcmp(k->path, "logging.format") && strcmp(v->u.str.ptr, "text") &&
                strcmp(v->u.str.ptr, "json")) {
                snprintf(err, errlen, "'%s' must be \"text\" or \"json\"", k->path);
                return -EINVAL;
            }
            if (!strcmp(k->path, "manage.prefix") &&
                (v->u.str.ptr[0] != '/' || v->u.str.len > 64 ||
                 strspn(v->u.str.ptr, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                      "0123456789/._~-") != v->u.str.len)) {
                snprintf(err, errlen, "'%s' must start with '/' and be at most 64 letters, "
                         "digits and / . _ ~ -", k->path);
                return -EINVAL;
            }
        } else if (v->type != IM_TOML_INT || v->u.i < k->lo || v->u.i > k->hi) {
            snprintf(err, errlen, "'%s' must be an integer from %lld to %lld", k->path,
                     (long long)k->lo, (long long)k->hi);
            return -EINVAL;
        }
    }
    const im_toml *rb = im_toml_get(doc, "server.io.recv_buffers");
    if (rb && rb->type == IM_TOML_INT && (rb->u.i & (rb->u.i - 1))) {
        snprintf(err, errlen, "'server.io.recv_buffers' must be a power of two");
        return -EINVAL;
    }
    return 0;
}

/* The defaults text of immersive's own keys, with a comment each. */
static char *im__cfg_own_defaults(void)
{
    im_server_opts o = {0};
    o.port = 1; /* resolved below; the defaults keep IM_DEFAULT_PORT */
    im__resolve_opts(&o);
    o.port = IM_DEFAULT_PORT;
    const char *table = "";
    char line[512];
    size_t cap = 8192, len = 0;
    char *out = (char *)malloc(cap);
    if (!out) return NULL;
#define IM__EMIT(...)                                                        \
    do {                                                                     \
        int n_ = snprintf(line, sizeof line, __VA_ARGS__);                   \
        if (n_ < 0) n_ = 0;                                                  \
        if (len + (size_t)n_ + 1 > cap) {                                    \
            char *q_ = (char *)realloc(out, cap = (cap + (size_t)n_) * 2);   \
            if (!q_) { free(out); return NULL; }                             \
            out = q_;                                                        \
        }                                                                    \
        memcpy(out + len, line, (size_t)n_ + 1);                             \
        len += (size_t)n_;                                                   \
    } while (0)
    IM__EMIT("# default_config.toml — every key immersive knows, with its default. Copy the keys\n"
             "# you change into config.toml (or a file given with --config); keys marked (live)\n"
             "# take effect while the service runs, the others at its next start.\n");
    for (size_t i = 0; i < IM__NCKEYS; i++) {
        const im__ckey *k = &im__ckeys[i];
        const char *dot = strrchr(k->path, '.');
        size_t tl = (size_t)(dot - k->path);
        if (strlen(table) != tl || strncmp(table, k->path, tl) != 0) {
            static char tbuf[64];
            snprintf(tbuf, sizeof tbuf, "%.*s", (int)tl, k->path);
            table = tbuf;
            IM__EMIT("\n[%s]\n", table);
        }
        IM__EMIT("# %s%s\n", k->doc, k->flags & IM__CKF_LIVE ? " (live)" : "");
        const char *base = (const char *)&o + k->off;
        switch (k->kind) {
        case IM__CK_STR:
            IM__EMIT("%s = \"%s\"\n", dot + 1, im__sv(*(const char *const *)(const void *)base));
            break;
        case IM__CK_BOOL: /* > 0 true, < 0 false (0 is "the default" in the options) */
            IM__EMIT("%s = %s\n", dot + 1, *(const int *)(const void *)base > 0 ? "true" : "false");
            break;
        case IM__CK_LEVEL: IM__EMIT("%s = \"info\"\n", dot + 1); break;
        case IM__CK_PATH: IM__EMIT("%s = \"%s\"\n", dot + 1, dot + 1); break;
        case IM__CK_INT: {
            int v = *(const int *)(const void *)base;
            if (k->flags & IM__CKF_CORES) v = 0;
            IM__EMIT("%s = %d\n", dot + 1, v);
            break;
        }
        case IM__CK_UINT: {
            unsigned v = *(const unsigned *)(const void *)base;
            if (k->flags & IM__CKF_CORES) v = 0;
            IM__EMIT("%s = %u\n", dot + 1, v);
            break;
        }
        default: IM__EMIT("%s = %zu\n", dot + 1, *(const size_t *)(const void *)base); break;
        }
    }
    IM__EMIT("\n# modules switched on (true) or off (false) at start\n[modules]\n");
#undef IM__EMIT
    return out;
}

im_config *im_config_new(void)
{
    im_config *cfg = (im_config *)calloc(1, sizeof *cfg);
    if (!cfg) return NULL;
    pthread_mutex_init(&cfg->mu, NULL);
    pthread_mutex_init(&cfg->load_mu, NULL);
    cfg->next_watch = 1;
    char *own = im__cfg_own_defaults();
    char err[256];
    if (!own || im_config_add_defaults(cfg, "default", own, NULL, err, sizeof err)) {
        free(own);
        im_config_free(cfg);
        return NULL;
    }
    free(own);
    return cfg;
}

void im_config_free(im_config *cfg)
{
    if (!cfg) return;
    while (cfg->layers) {
        im__clayer *l = cfg->layers;
        cfg->layers = l->next;
        im__cfg_layer_free(l);
    }
    while (cfg->watches) {
        im__cwatch *w = cfg->watches;
        cfg->watches = w->next;
        free(w->path);
        free(w);
    }
    while (cfg->strs) {
        im__cstr *s = cfg->strs;
        cfg->strs = s->next;
        free(s);
    }
    im_toml_free(cfg->schema);
    im_toml_free(cfg->cur);
    pthread_mutex_destroy(&cfg->mu);
    pthread_mutex_destroy(&cfg->load_mu);
    free(cfg);
}

int im_config_add_defaults(im_config *cfg, const char *name, const char *toml,
                           const char *open_tables, char *err, size_t errlen)
{
    im_toml *doc = im_toml_parse(toml, strlen(toml), name, err, errlen);
    if (!doc) return -EINVAL;
    pthread_mutex_lock(&cfg->mu);
    int rc = 0;
    if (cfg->is_watched) rc = -EBUSY;
    if (!rc && !cfg->schema && !(cfg->schema = (im_toml *)calloc(1, sizeof(im_toml))))
        rc = -ENOMEM;
    if (!rc) {
        cfg->schema->type = IM_TOML_TABLE;
        rc = im__cfg_merge(cfg->schema, doc, 0);
    }
    im__clayer *l = rc ? NULL : im__cfg_layer(cfg, IM__L_DEFAULTS, name);
    if (!rc && (!l || !(l->text = strdup(toml)))) rc = -ENOMEM;
    if (l) l->doc = doc;
    else im_toml_free(doc);
    /* open tables: each named one is created when absent and marked */
    for (const char *p = open_tables; !rc && p && *p;) {
        const char *q = strchr(p, ',');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        char path[256];
        snprintf(path, sizeof path, "%.*s", (int)n, p);
        im_toml *t = (im_toml *)im_toml_get(cfg->schema, path);
        if (!t || t->type != IM_TOML_TABLE) {
            snprintf(err, errlen, "%s: open table '%s' is not a table of its defaults", name, path);
            rc = -EINVAL;
        } else {
            t->flags |= IM__TF_OPEN;
        }
        p = q ? q + 1 : p + n;
    }
    pthread_mutex_unlock(&cfg->mu);
    if (rc == -ENOMEM) snprintf(err, errlen, "%s: out of memory", name);
    return rc;
}

int im_config_add_file(im_config *cfg, const char *path, int optional)
{
    pthread_mutex_lock(&cfg->mu);
    int rc = 0;
    if (cfg->is_watched) rc = -EBUSY;
    im__clayer *l = rc ? NULL : im__cfg_layer(cfg, IM__L_FILE, path);
    if (!rc && !l) rc = -ENOMEM;
    if (l) l->optional = optional;
    pthread_mutex_unlock(&cfg->mu);
    return rc;
}

/* "a.b = value" as a document; a value that is no TOML value is taken as a string */
static im_toml *im__cfg_assign(const char *path, const char *value, const char *name, char *err,
                               size_t errlen)
{
    size_t n = strlen(path) + strlen(value) * 2 + 16;
    char *text = (char *)malloc(n);
    if (!text) { snprintf(err, errlen, "out of memory"); return NULL; }
    snprintf(text, n, "%s = %s", path, value);
    im_toml *doc = im_toml_parse(text, strlen(text), name, err, errlen);
    if (!doc && !strpbrk(value, "\"\\\n\r=[{")) {
        char e2[64];
        snprintf(text, n, "%s = \"%s\"", path, value);
        doc = im_toml_parse(text, strlen(text), name, e2, sizeof e2);
    }
    free(text);
    return doc;
}

int im_config_add_override(im_config *cfg, const char *path, const char *value, const char *from)
{
    char err[256];
    im_toml *doc = im__cfg_assign(path, value, from, err, sizeof err);
    if (!doc) return -EINVAL;
    pthread_mutex_lock(&cfg->mu);
    im__clayer *l = im__cfg_layer(cfg, IM__L_OVERRIDE, from ? from : path);
    if (l) l->doc = doc;
    else im_toml_free(doc);
    pthread_mutex_unlock(&cfg->mu);
    return l ? 0 : -ENOMEM;
}

/* Builds a snapshot from the layers (files as they are on disk now) and checks it. Called with
 * load_mu held; takes mu itself for the layer list. *out gets the new document. */
static int im__cfg_build(im_config *cfg, int reread, im_toml **out, char *err, size_t errlen)
{
    int rc = 0;
    /* the files are read first, without the lock that lookups take (a slow disk must not stall
     * a loop that reads a value), and a file with an error leaves everything as it is */
    im_toml *fresh[64] = {0};
    char *names[64];
    int optional[64], nf = 0;
    pthread_mutex_lock(&cfg->mu);
    for (im__clayer *l = cfg->layers; l && reread && !rc; l = l->next) {
        if (l->kind != IM__L_FILE) continue;
        if (nf == 64) { snprintf(err, errlen, "more than 64 config files"); rc = -EINVAL; break; }
        if (!(names[nf] = strdup(l->name))) { rc = -ENOMEM; break; }
        optional[nf++] = l->optional;
    }
    pthread_mutex_unlock(&cfg->mu);
    for (int i = 0; i < nf && !rc; i++) {
        char e[512];
        fresh[i] = im_toml_parse_file(names[i], e, sizeof e);
        if (!fresh[i] && !(optional[i] && access(names[i], F_OK) != 0)) {
            snprintf(err, errlen, "%s", e);
            rc = -EINVAL;
        }
    }
    for (int i = 0; i < nf; i++) free(names[i]);
    pthread_mutex_lock(&cfg->mu);
    int now = 0; /* a file added meanwhile: this read is not the whole set */
    for (im__clayer *l = cfg->layers; l; l = l->next) now += l->kind == IM__L_FILE;
    if (!rc && reread && now != nf) {
        snprintf(err, errlen, "config files were added during the load: load again");
        rc = -EAGAIN;
    }
    im_toml *doc = rc ? NULL : im_toml_dup(cfg->schema);
    if (!rc && !doc) rc = -ENOMEM;
    /* the check runs over the whole new set first: nothing is replaced before it passed */
    int fi = 0;
    for (im__clayer *l = cfg->layers; l && !rc; l = l->next) {
        const im_toml *d = l->kind == IM__L_FILE && reread ? fresh[fi++] : l->doc;
        if (l->kind == IM__L_DEFAULTS || !d) continue;
        rc = im__cfg_check(cfg->schema, d, l, "", err, errlen);
        if (!rc && im__cfg_merge(doc, d, 0)) rc = -ENOMEM;
    }
    if (!rc) im__cfg_floats(cfg->schema, doc);
    if (!rc) rc = im__cfg_ranges(doc, err, errlen);
    if (!rc && reread) {
        fi = 0;
        for (im__clayer *l = cfg->layers; l; l = l->next)
            if (l->kind == IM__L_FILE) {
                im_toml_free(l->doc);
                l->doc = fresh[fi];
                fresh[fi++] = NULL;
            }
    }
    for (int i = 0; i < nf; i++) im_toml_free(fresh[i]);
    pthread_mutex_unlock(&cfg->mu);
    if (rc) {
        im_toml_free(doc);
        if (rc == -ENOMEM) snprintf(err, errlen, "out of memory");
        return rc;
    }
    *out = doc;
    return 0;
}

typedef struct im__cnote { im_config_fn fn; void *arg; const char *path; } im__cnote;

/* 1 on a thread that runs subscribers now: a load or set from one would wait for itself */
static __thread int im__cfg_notifying;

/* Makes doc current and calls the subscribers of what changed (load_mu held: a subscriber
 * that unsubscribes from another thread waits for this to end, so the paths stay valid). */
static void im__cfg_swap(im_config *cfg, im_toml *doc)
{
    pthread_mutex_lock(&cfg->mu);
    im_toml *old = cfg->cur;
    cfg->cur = doc;
    cfg->gen++;
    size_t nw = 0, nn = 0;
    for (im__cwatch *w = cfg->watches; w; w = w->next) nw++;
    im__cnote *notes = old && nw ? (im__cnote *)malloc(nw * sizeof *notes) : NULL;
    if (old && nw && !notes)
        im_log(IM_LOG_ERROR, "config: out of memory: subscribers not told of a change");
    for (im__cwatch *w = notes ? cfg->watches : NULL; w; w = w->next) {
        const im_toml *a = *w->path ? im_toml_get(old, w->path) : old;
        const im_toml *b = *w->path ? im_toml_get(doc, w->path) : doc;
        if (!im__toml_equal(a, b)) notes[nn++] = (im__cnote){w->fn, w->arg, w->path};
    }
    pthread_mutex_unlock(&cfg->mu);
    im_toml_free(old);
    im__cfg_notifying = 1;
    for (size_t i = 0; i < nn; i++) notes[i].fn(cfg, notes[i].path, notes[i].arg);
    im__cfg_notifying = 0;
    free(notes);
}

int im_config_load(im_config *cfg, char *err, size_t errlen)
{
    char dummy[8];
    if (!errlen) { err = dummy; errlen = sizeof dummy; }
    err[0] = 0;
    if (im__cfg_notifying) {
        snprintf(err, errlen, "a config subscriber cannot load the config (it would wait for itself)");
        return -EDEADLK;
    }
    pthread_mutex_lock(&cfg->load_mu);
    im_toml *doc = NULL;
    int rc = im__cfg_build(cfg, 1, &doc, err, errlen);
    if (!rc) im__cfg_swap(cfg, doc);
    pthread_mutex_unlock(&cfg->load_mu);
    return rc;
}

int im_config_set(im_config *cfg, const char *path, const char *toml_value, char *err,
                  size_t errlen)
{
    char dummy[8];
    if (!errlen) { err = dummy; errlen = sizeof dummy; }
    err[0] = 0;
    if (im__cfg_notifying) {
        snprintf(err, errlen, "a config subscriber cannot set a value (it would wait for itself)");
        return -EDEADLK;
    }
    im_toml *d = im__cfg_assign(path, toml_value, "im_config_set", err, errlen);
    if (!d) return -EINVAL;
    pthread_mutex_lock(&cfg->load_mu);
    /* the newest set of a key wins: a set layer of its own, on top */
    pthread_mutex_lock(&cfg->mu);
    im__clayer *l = im__cfg_layer(cfg, IM__L_SET, "im_config_set");
    if (l) l->doc = d;
    pthread_mutex_unlock(&cfg->mu);
    int rc = l ? 0 : -ENOMEM;
    im_toml *doc = NULL;
    if (!rc) rc = im__cfg_build(cfg, 0, &doc, err, errlen);
    if (rc && l) { /* refused: the layer goes again */
        pthread_mutex_lock(&cfg->mu);
        im__clayer **pp = &cfg->layers;
        while (*pp != l) pp = &(*pp)->next;
        *pp = l->next;
        pthread_mutex_unlock(&cfg->mu);
        im__cfg_layer_free(l);
    } else if (!l) {
        im_toml_free(d);
    }
    if (!rc) im__cfg_swap(cfg, doc);
    pthread_mutex_unlock(&cfg->load_mu);
    return rc;
}

/* Lookups: the value is read under mu, so a swap cannot free it meanwhile. */
#define IM__CFG_LOOKUP(cfg, path, v) \
    pthread_mutex_lock(&(cfg)->mu);  \
    const im_toml *v = im_toml_get((cfg)->cur, path)

int64_t im_config_int(im_config *cfg, const char *path, int64_t fallback)
{
    IM__CFG_LOOKUP(cfg, path, v);
    int64_t r = v && v->type == IM_TOML_INT ? v->u.i : fallback;
    pthread_mutex_unlock(&cfg->mu);
    return r;
}

double im_config_double(im_config *cfg, const char *path, double fallback)
{
    IM__CFG_LOOKUP(cfg, path, v);
    double r = !v ? fallback : v->type == IM_TOML_FLOAT ? v->u.f
             : v->type == IM_TOML_INT ? (double)v->u.i : fallback;
    pthread_mutex_unlock(&cfg->mu);
    return r;
}

int im_config_bool(im_config *cfg, const char *path, int fallback)
{
    IM__CFG_LOOKUP(cfg, path, v);
    int r = v && v->type == IM_TOML_BOOL ? v->u.b : fallback;
    pthread_mutex_unlock(&cfg->mu);
    return r;
}

/* The string v's copy that cfg keeps until it is freed, made once per distinct text (mu held);
 * NULL when out of memory. */
static const char *im__cfg_intern(im_config *cfg, const im_toml *v)
{
    im__cstr *s = cfg->strs;
    while (s && strcmp(s->s, v->u.str.ptr) != 0) s = s->next;
    if (!s && (s = (im__cstr *)malloc(sizeof *s + v->u.str.len + 1))) {
        memcpy(s->s, v->u.str.ptr, v->u.str.len + 1);
        s->next = cfg->strs;
        cfg->strs = s;
    }
    return s ? s->s : NULL;
}

const char *im_config_str(im_config *cfg, const char *path, const char *fallback)
{
    IM__CFG_LOOKUP(cfg, path, v);
    const char *r = fallback;
    if (v && v->type == IM_TOML_STRING) {
        const char *k = im__cfg_intern(cfg, v);
        if (k) r = k;
    }
    pthread_mutex_unlock(&cfg->mu);
    return r;
}

static im_toml *im__cfg_copy(im_config *cfg, const char *path, im_toml_type type)
{
    IM__CFG_LOOKUP(cfg, path, v);
    im_toml *r = v && v->type == type ? im_toml_dup(v) : NULL;
    pthread_mutex_unlock(&cfg->mu);
    return r;
}

im_toml *im_config_array(im_config *cfg, const char *path)
{
    return im__cfg_copy(cfg, path, IM_TOML_ARRAY);
}

im_toml *im_config_table(im_config *cfg, const char *path)
{
    return im__cfg_copy(cfg, path, IM_TOML_TABLE);
}

int im_config_has(im_config *cfg, const char *path)
{
    IM__CFG_LOOKUP(cfg, path, v);
    int r = v != NULL;
    pthread_mutex_unlock(&cfg->mu);
    return r;
}

int im_config_source(im_config *cfg, const char *path, char *buf, size_t cap)
{
    pthread_mutex_lock(&cfg->mu);
    const im__clayer *found = NULL;
    const im_toml *fv = NULL;
    for (const im__clayer *l = cfg->layers; l; l = l->next) { /* the last one that has it */
        const im_toml *v = im_toml_get(l->doc, path);
        if (v) { found = l; fv = v; }
    }
    if (found) {
        if (found->kind == IM__L_FILE) snprintf(buf, cap, "%s:%u:%u", found->name, fv->line, fv->col);
        else if (found->kind == IM__L_DEFAULTS) snprintf(buf, cap, "default");
        else snprintf(buf, cap, "%s", found->name);
    }
    pthread_mutex_unlock(&cfg->mu);
    return found ? 0 : -ENOENT;
}

uint64_t im_config_generation(im_config *cfg)
{
    pthread_mutex_lock(&cfg->mu);
    uint64_t g = cfg->gen;
    pthread_mutex_unlock(&cfg->mu);
    return g;
}

int im_config_watch(im_config *cfg, const char *path, im_config_fn fn, void *arg)
{
    im__cwatch *w = (im__cwatch *)calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path ? path : ""))) { free(w); return -ENOMEM; }
    w->fn = fn;
    w->arg = arg;
    pthread_mutex_lock(&cfg->mu);
    w->id = cfg->next_watch++;
    im__cwatch **pp = &cfg->watches; /* called in the order they subscribed */
    while (*pp) pp = &(*pp)->next;
    *pp = w;
    pthread_mutex_unlock(&cfg->mu);
    return w->id;
}

void im_config_unwatch(im_config *cfg, int id)
{
    /* after a notification in flight (unless called from one): then fn is not called again */
    int wait = !im__cfg_notifying;
    if (wait) pthread_mutex_lock(&cfg->load_mu);
    pthread_mutex_lock(&cfg->mu);
    for (im__cwatch **pp = &cfg->watches; *pp; pp = &(*pp)->next)
        if ((*pp)->id == id) {
            im__cwatch *w = *pp;
            *pp = w->next;
            free(w->path);
            free(w);
            break;
        }
    pthread_mutex_unlock(&cfg->mu);
    if (wait) pthread_mutex_unlock(&cfg->load_mu);
}

static int im__cfg_secret(const char *key, size_t n)
{
    static const char *const words[] = {"secret", "password", "token", "key"};
    for (size_t w = 0; w < 4; w++) {
        size_t wl = strlen(words[w]);
        for (size_t i = 0; i + wl <= n; i++)
            if (strncasecmp(key + i, words[w], wl) == 0) return 1;
    }
    return 0;
}

static void im__cfg_json(const im_toml *v, im_jw *w, int mask)
{
    if (v->type == IM_TOML_ARRAY) { /* tables inside arrays have keys to mask too */
        im_jw_arr(w);
        for (size_t i = 0; i < v->u.list.len; i++) im__cfg_json(v->u.list.kids[i], w, mask);
        im_jw_arr_end(w);
        return;
    }
    if (v->type != IM_TOML_TABLE) {
        im_toml_json(v, w, 0);
        return;
    }
    im_jw_obj(w);
    for (size_t i = 0; i < v->u.list.len; i++) {
        const im_toml *k = v->u.list.kids[i];
        im_jw_keyn(w, k->key, k->key_len);
        if (mask && k->type != IM_TOML_TABLE && im__cfg_secret(k->key, k->key_len))
            im_jw_str(w, "***");
        else
            im__cfg_json(k, w, mask);
    }
    im_jw_obj_end(w);
}

void im_config_json(im_config *cfg, im_jw *w, int mask)
{
    pthread_mutex_lock(&cfg->mu);
    if (cfg->cur) im__cfg_json(cfg->cur, w, mask);
    else im_jw_raw(w, "{}", 2);
    pthread_mutex_unlock(&cfg->mu);
}

char *im_config_default_toml(im_config *cfg)
{
    pthread_mutex_lock(&cfg->mu);
    size_t n = 1;
    for (im__clayer *l = cfg->layers; l; l = l->next)
        if (l->kind == IM__L_DEFAULTS) n += strlen(l->text) + 2;
    char *out = (char *)malloc(n), *p = out;
    /* immersive's own keys (ending with the [modules] header), the modules' lines under that
     * header, then each module's table */
    for (int pass = 0; out && pass < 3; pass++)
        for (im__clayer *l = cfg->layers; l; l = l->next) {
            if (l->kind != IM__L_DEFAULTS || (pass == 0) != (l == cfg->layers) ||
                (pass == 1) != l->is_switch || (pass == 2 && l->is_switch))
                continue;
            size_t k = strlen(l->text);
            if (pass == 2) *p++ = '\n';
            memcpy(p, l->text, k);
            p += k;
        }
    if (out) *p = 0;
    pthread_mutex_unlock(&cfg->mu);
    return out;
}

/* ---- the server's side */

int im_config_server_opts(im_config *cfg, im_server_opts *o, char *err, size_t errlen)
{
    char dummy[8];
    if (!errlen) { err = dummy; errlen = sizeof dummy; }
    pthread_mutex_lock(&cfg->mu);
    int rc = cfg->cur ? im__cfg_ranges(cfg->cur, err, errlen) : 0;
    for (size_t i = 0; !rc && i < IM__NCKEYS; i++) {
        const im__ckey *k = &im__ckeys[i];
        const im_toml *v = im_toml_get(cfg->cur, k->path);
        if (!v) continue;
        char *base = (char *)o + k->off;
        if (k->kind == IM__CK_PATH) continue; /* the modules' (module.c) */
        if (k->kind == IM__CK_LEVEL) {
            im_log_set_level((im_log_level)im_log_level_parse(v->u.str.ptr));
            continue;
        }
        if (k->kind == IM__CK_BOOL) {
            *(int *)(void *)base = v->u.b ? 1 : -1;
            continue;
        }
        if (k->kind == IM__CK_STR) {
            const char *txt = im__cfg_intern(cfg, v); /* lives as long as cfg */
            if (!txt) { rc = -ENOMEM; break; }
            *(const char **)(void *)base = txt;
            continue;
        }
        int64_t x = v->u.i;
        if (x == 0 && (k->flags & IM__CKF_OFF)) x = IM__OFF_MS;
        if (x == 0 && (k->flags & IM__CKF_ANY)) x = -1;
        /* 0 for loops and workers stays 0: the server's "one per core" */
        if (k->kind == IM__CK_INT) *(int *)(void *)base = (int)x;
        else if (k->kind == IM__CK_UINT) *(unsigned *)(void *)base = (unsigned)x;
        else *(size_t *)(void *)base = (size_t)x;
    }
    pthread_mutex_unlock(&cfg->mu);
    if (rc == -ENOMEM) snprintf(err, errlen, "out of memory");
    return rc;
}

/* The server follows a configuration: loop 0 reads the inotify descriptor through its ring,
 * the config thread reloads (parsing never runs on a loop), and the server's subscriber hands
 * the live keys to the loops. */
typedef struct im__cfgw {
    im_server *srv;
    im_config *cfg;
    int ifd;                     /* inotify, blocking: io_uring polls it */
    int nfiles;
    struct { int wd; char *base; } files[64]; /* owned base names, by directory watch */
    _Alignas(struct inotify_event) char buf[4096]; /* loop 0's read buffer */
    pthread_t thread;
    int has_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending, stop;           /* (mu) */
    int watch_id;
    _Atomic uint64_t reloads[2]; /* reloads that took, and that failed (metrics) */
    im_server_opts asked;        /* the options as the config gave them when last applied */
    im_toml *fixed;              /* owned: modules and paths as at start (restart-only) */
} im__cfgw;

static void im__cfgw_reload_soon(im__cfgw *w)
{
    pthread_mutex_lock(&w->mu);
    w->pending = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void *im__cfgw_main(void *arg)
{
    im__cfgw *w = (im__cfgw *)arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->pending && !w->stop) pthread_cond_wait(&w->cv, &w->mu);
        if (w->stop) break;
        w->pending = 0;
        pthread_mutex_unlock(&w->mu);
        char err[512];
        int bad = im_config_load(w->cfg, err, sizeof err) != 0;
        atomic_fetch_add_explicit(&w->reloads[bad], 1, memory_order_relaxed);
        if (bad)
            im_log(IM_LOG_ERROR, "config: %s (the running configuration is kept)", err);
        else
            im_log(IM_LOG_INFO, "config: reloaded (generation %llu)",
                   (unsigned long long)im_config_generation(w->cfg));
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* loop 0: an inotify read completed */
static void im__cfgw_arm(im_loop *L)
{
    im__cfgw *w = L->srv->cfgw;
    if (w->ifd < 0) return; /* no files to follow */
    struct io_uring_sqe *sqe = im__sqe(L);
    io_uring_prep_read(sqe, w->ifd, w->buf, sizeof w->buf, 0);
    io_uring_sqe_set_data64(sqe, IM__UD(IM__OP_INOTIFY, 0, 0));
}

static void im__cfgw_on_read(im_loop *L, int res)
{
    im__cfgw *w = L->srv->cfgw;
    if (res < 0) {
        if (res == -EINTR || res == -EAGAIN) { im__cfgw_arm(L); return; }
        if (res != -ECANCELED)
            im_log(IM_LOG_ERROR, "config: watching the files: %s (changes are no longer "
                   "followed)", strerror(-res));
        return;
    }
    int hit = 0;
    for (int off = 0; off + (int)sizeof(struct inotify_event) <= res;) {
        const struct inotify_event *e = (const struct inotify_event *)(const void *)(w->buf + off);
        if (e->mask & IN_Q_OVERFLOW) hit = 1;
        for (int i = 0; i < w->nfiles && !hit; i++)
            if (e->wd == w->files[i].wd && e->len && strcmp(e->name, w->files[i].base) == 0) hit = 1;
        off += (int)sizeof *e + (int)e->len;
    }
    if (hit) im__cfgw_reload_soon(w);
    if (!L->is_stopping) im__cfgw_arm(L);
}

/* the options' live fields from a, into the loops' next iteration */
static void im__srv_take_live(im_server *s, const im_server_opts *a)
{
    pthread_mutex_lock(&s->live_mu);
    im_server_opts *o = &s->live;
    for (size_t i = 0; i < IM__NCKEYS; i++) {
        const im__ckey *k = &im__ckeys[i];
        if (!(k->flags & IM__CKF_LIVE) || k->kind == IM__CK_LEVEL || k->kind == IM__CK_PATH)
            continue;
        size_t n = k->kind == IM__CK_SIZE ? sizeof(size_t) : k->kind == IM__CK_STR
                 ? sizeof(char *) : sizeof(int);
        memcpy((char *)o + k->off, (const char *)a + k->off, n);
    }
    atomic_fetch_add_explicit(&s->live_gen, 1, memory_order_release);
    pthread_mutex_unlock(&s->live_mu);
    /* a loop asleep until its next timer would take the change only then (an idle timeout
     * made shorter must reach the connections already waiting): each is woken */
    if (atomic_load(&s->loops_ready))
        for (int i = 0; i < s->nloops; i++) {
            uint64_t one = 1;
            if (write(s->loops[i]->efd, &one, sizeof one) < 0) { /* a full counter wakes too */
            }
        }
}

static void im__srv_on_config(im_config *cfg, const char *path, void *arg)
{
    (void)path;
    im__cfgw *w = (im__cfgw *)arg;
    im_server_opts a = w->asked;
    char err[256];
    if (im_config_server_opts(cfg, &a, err, sizeof err)) {
        im_log(IM_LOG_ERROR, "config: %s", err);
        return;
    }
    for (size_t i = 0; i < IM__NCKEYS; i++) {
        const im__ckey *k = &im__ckeys[i];
        if ((k->flags & IM__CKF_LIVE) || k->kind == IM__CK_LEVEL || k->kind == IM__CK_PATH)
            continue;
        const char *x = (const char *)&a + k->off, *y = (const char *)&w->asked + k->off;
        int same = k->kind == IM__CK_STR ? strcmp(im__sv(*(const char *const *)(const void *)x),
                                                  im__sv(*(const char *const *)(const void *)y)) == 0
                 : k->kind == IM__CK_SIZE ? memcmp(x, y, sizeof(size_t)) == 0
                 : memcmp(x, y, sizeof(int)) == 0;
        if (!same)
            im_log(IM_LOG_WARN, "config: '%s' changed: it needs a restart (the running value is "
                   "kept)", k->path);
    }
    /* modules are switched on and off, and their directories chosen, at start only */
    static const char *const fixed[] = {"modules", "paths"};
    for (int f = 0; f < 2; f++) {
        im_toml *now = im_config_table(cfg, fixed[f]);
        const im_toml *was = im_toml_get(w->fixed, fixed[f]);
        for (size_t i = 0; now && i < im_toml_len(now); i++) {
            const im_toml *k = im_toml_at(now, i);
            if (!im__toml_equal(k, im_toml_find(was, k->key, k->key_len)))
                im_log(IM_LOG_WARN, "config: '%s.%s' changed: it needs a restart (the running "
                       "value is kept)", fixed[f], k->key);
        }
        im_toml_free(now);
    }
    w->asked = a;
    im__srv_take_live(w->srv, &a);
    im__apply_functions(w->srv, cfg);
    im_bus *b = atomic_load(&w->srv->bus);
    if (b) {
        char ev[64];
        int n = snprintf(ev, sizeof ev, "{\"generation\":%llu}",
                         (unsigned long long)im_config_generation(cfg));
        im_notify(b, "config.changed", ev, (size_t)n);
    }
}

static void im__manage_config(im_ctx *c)
{
    im_server *s = (im_server *)im_ctx_udata(c);
    im_jw w;
    im_jw_init(&w, NULL, 0);
    im_config_json(s->cfgw->cfg, &w, 1);
    if (im_jw_error(&w)) im_reply_error(c, 500, "out of memory");
    else im_reply_json(c, 200, w.buf, w.len);
    im_jw_free(&w);
}

/* s as one comment line (at most cap - 1 bytes: newlines become spaces, a comment ends there) */
static void im__comment(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; s && *s && n + 1 < cap; s++) out[n++] = *s == '\n' || *s == '\r' ? ' ' : *s;
    out[n] = 0;
}

/* functions.<name>.timeout_ms and .max_concurrency into the endpoints' states (live) */
static void im__apply_functions(im_server *s, im_config *cfg)
{
    for (size_t i = 0; i < s->neps; i++) {
        im__epstate *st = s->eps[i];
        if (st->ep->mode == IM_MODE_INLINE) continue;
        char key[300];
        snprintf(key, sizeof key, "functions.\"%s\".timeout_ms", st->ep->name);
        atomic_store(&st->timeout_ms, (uint32_t)im_config_int(cfg, key, st->ep->timeout_ms));
        snprintf(key, sizeof key, "functions.\"%s\".max_concurrency", st->ep->name);
        atomic_store(&st->max_conc, (uint32_t)im_config_int(cfg, key, st->ep->max_concurrency));
    }
}

int im_server_config_defaults(im_server *s, im_config *cfg, char *err, size_t errlen)
{
    /* every function that runs as a task: its time limit and concurrency, live */
    size_t cap = 256, len = 0;
    char *ftext = (char *)malloc(cap);
    for (im__service *v = s->svcs; v && ftext; v = v->next)
        for (size_t i = 0; i < v->neps && ftext; i++) {
            const im_endpoint *ep = &v->eps[i];
            if (ep->mode == IM_MODE_INLINE) continue;
            char one[900], summary[200], path[300];
            im__comment(summary, sizeof summary, ep->summary);
            im__comment(path, sizeof path, ep->path);
            int n = snprintf(one, sizeof one, "\n[functions.\"%.64s\"]\n# %.8s %s%s%s\n"
                             "# a task's time limit from its start, 0: none (live)\n"
                             "timeout_ms = %u\n"
                             "# its unfinished tasks at once, 0: no limit; past it 429 (live)\n"
                             "max_concurrency = %u\n", ep->name, ep->method, path,
                             *summary ? ": " : "", summary, ep->timeout_ms, ep->max_concurrency);
            if (n < 0 || (size_t)n >= sizeof one) continue; /* bounded above: cannot happen */
            while (len + (size_t)n + 1 > cap) cap *= 2;
            char *q = (char *)realloc(ftext, cap);
            if (!q) { free(ftext); ftext = NULL; break; }
            ftext = q;
            memcpy(ftext + len, one, (size_t)n + 1);
            len += (size_t)n;
        }
    if (!ftext) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int frc = len ? im_config_add_defaults(cfg, "functions", ftext + 1, NULL, err, errlen) : 0;
    free(ftext);
    if (frc) return -EINVAL;
    for (im__service *v = s->svcs; v; v = v->next)
        for (size_t i = 0; i < v->nmods; i++) {
            const im_module_desc *d = &v->mods[i];
            char text[512], name[300], doc[300];
            im__comment(doc, sizeof doc, d->doc);
            snprintf(text, sizeof text, "[modules]\n# %s\n%.150s = true\n", doc, d->name);
            snprintf(name, sizeof name, "module %s", d->name);
            if (im_config_add_defaults(cfg, name, text, NULL, err, errlen)) return -EINVAL;
            /* default_config.toml writes it under the one [modules] header */
            pthread_mutex_lock(&cfg->mu);
            im__clayer *last = NULL;
            for (im__clayer *l = cfg->layers; l && l->kind == IM__L_DEFAULTS; l = l->next) last = l;
            if (last) {
                last->is_switch = 1;
                memmove(last->text, last->text + 10, strlen(last->text + 10) + 1); /* "[modules]\n" */
            }
            pthread_mutex_unlock(&cfg->mu);
            if (!d->defaults) continue;
            snprintf(name, sizeof name, "%s/defaults.toml", d->name);
            /* a module's defaults hold its own table and nothing else */
            im_toml *t = im_toml_parse(d->defaults, strlen(d->defaults), name, err, errlen);
            if (!t) return -EINVAL;
            int own = 1;
            for (size_t k = 0; k < im_toml_len(t); k++)
                if (strcmp(im_toml_at(t, k)->key, d->name) != 0) own = 0;
            im_toml_free(t);
            if (!own) {
                snprintf(err, errlen, "%s: a module's defaults hold only its table [%s]", name,
                         d->name);
                return -EINVAL;
            }
            if (im_config_add_defaults(cfg, name, d->defaults, NULL, err, errlen)) return -EINVAL;
        }
    return 0;
}

int im_server_use_config(im_server *s, im_config *cfg, char *err, size_t errlen)
{
    char dummy[8];
    if (!errlen) { err = dummy; errlen = sizeof dummy; }
    err[0] = 0;
    if (s->started) return -EBUSY;
    if (s->cfgw) return -EEXIST;
    int rc = im_server_config_defaults(s, cfg, err, errlen);
    if (rc || (rc = im_config_load(cfg, err, errlen))) return rc;
    /* the config's values replace the options the server was made with */
    im_server_opts o = {0};
    o.no_signals = s->o.no_signals;
    if (im_config_server_opts(cfg, &o, err, errlen)) return -EINVAL;
    im_server_opts given = o;
    if (o.manage_port && o.manage_port == o.port) {
        snprintf(err, errlen, "'manage.port' must differ from 'server.port' (%d)", o.port);
        return -EINVAL;
    }
    if (im__resolve_opts(&o)) {
        snprintf(err, errlen, "the configuration gives options the server refuses");
        return -EINVAL;
    }
    s->o = o;
    s->live = o;
    im__cfgw *w = (im__cfgw *)calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->srv = s;
    w->cfg = cfg;
    w->ifd = -1;
    w->asked = given;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if ((w->fixed = (im_toml *)calloc(1, sizeof *w->fixed))) {
        w->fixed->type = IM_TOML_TABLE;
        pthread_mutex_lock(&cfg->mu);
        for (int f = 0; f < 2; f++) {
            const im_toml *t = im_toml_get(cfg->cur, f ? "paths" : "modules");
            im_toml *c = im_toml_dup(t);
            if (c && im__tv_push(w->fixed, c)) im_toml_free(c);
        }
        pthread_mutex_unlock(&cfg->mu);
    }
    pthread_mutex_lock(&cfg->mu);
    cfg->is_watched = 1;
    int nfile = 0;
    for (im__clayer *l = cfg->layers; l; l = l->next) nfile += l->kind == IM__L_FILE;
    pthread_mutex_unlock(&cfg->mu);
    if (!rc && nfile) {
        /* the directories are watched, not the files: an editor that writes a new file and
         * renames it over the old one replaces the inode a file watch would follow */
        w->ifd = inotify_init1(IN_CLOEXEC);
        int wrc = w->ifd < 0 ? -errno : 0;
        pthread_mutex_lock(&cfg->mu);
        for (im__clayer *l = cfg->layers; l && !wrc && !rc; l = l->next) {
            if (l->kind != IM__L_FILE || w->nfiles == 64) continue;
            const char *slash = strrchr(l->name, '/');
            char dir[4096];
            if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - l->name + (slash == l->name)), l->name);
            else snprintf(dir, sizeof dir, ".");
            int wd = inotify_add_watch(w->ifd, dir, IN_CLOSE_WRITE | IN_MOVED_TO);
            if (wd < 0) {
                if (errno == ENOENT && l->optional) continue;
                wrc = -errno;
                break;
            }
            w->files[w->nfiles].wd = wd;
            if (!(w->files[w->nfiles].base = strdup(slash ? slash + 1 : l->name))) rc = -ENOMEM;
            w->nfiles++;
        }
        pthread_mutex_unlock(&cfg->mu);
        if (wrc) { /* serving matters more than following edits: say so, go on without */
            im_log(IM_LOG_WARN, "config: cannot watch the config files (%s): changes need a "
                   "restart", strerror(-wrc));
            if (w->ifd >= 0) close(w->ifd);
            w->ifd = -1;
        }
    }
    if (!rc) { /* with every signal blocked: SIGINT and SIGTERM are the server's to take */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        rc = pthread_create(&w->thread, NULL, im__cfgw_main, w) ? -EAGAIN : 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    if (!rc) w->has_thread = 1;
    if (!rc && (w->watch_id = im_config_watch(cfg, "", im__srv_on_config, w)) < 0) rc = w->watch_id;
    s->cfgw = w; /* freed by im_server_free, also after a failure here */
    if (rc && !err[0])
        snprintf(err, errlen, "cannot follow the configuration: %s", strerror(-rc));
    return rc;
}

im_config *im_server_config(im_server *s) { return s->cfgw ? s->cfgw->cfg : NULL; }

/* im_server_free: after the loops are gone, before the modules' fini */
static void im__cfgw_free(im_server *s)
{
    im__cfgw *w = s->cfgw;
    if (!w) return;
    if (w->has_thread) {
        pthread_mutex_lock(&w->mu);
        w->stop = 1;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    if (w->watch_id > 0) im_config_unwatch(w->cfg, w->watch_id);
    if (w->ifd >= 0) close(w->ifd);
    for (int i = 0; i < w->nfiles; i++) free(w->files[i].base);
    im_toml_free(w->fixed);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
    s->cfgw = NULL;
}
