/* server.h — the HTTP server's public API: options, lifecycle, routes, the request view,
 * responses (whole, deferred, streamed) and posting work back to a loop thread. */

typedef struct im_server im_server; /* one listening service; opaque */
typedef struct im_loop im_loop;     /* one event-loop thread with its io_uring; opaque */
typedef struct im_ctx im_ctx;       /* one request being answered; opaque */

/* Server options. Zero-initialise, set what you need: every 0 field takes the default
 * documented in config.h (IM_DEFAULT_*). */
typedef struct im_server_opts {
    const char *host;          /* address to bind, IPv4 or IPv6 literal (127.0.0.1) */
    int port;                  /* TCP port (8000); -1 binds an ephemeral port */
    int loops;                 /* event-loop threads (number of online cores) */
    int max_conns;             /* open connections, shared out over the loops (10000) */
    size_t max_header_bytes;   /* request line + header block (16384): 431 / 414 past it */
    size_t max_body_bytes;     /* request body after de-chunking (1 MiB, at most 1 GiB): 413 */
    int max_headers;           /* header lines in one request (100): 431 past it */
    size_t max_output_bytes;   /* queued output per connection (1 MiB), see im_stream_write */
    int header_timeout_ms;     /* whole header block, from its first byte (10 s): 408 */
    int body_timeout_ms;       /* between two reads of a body (30 s): 408 */
    int idle_timeout_ms;       /* idle keep-alive connection (60 s): closed */
    int send_timeout_ms;       /* peer that accepts none of our output (60 s): closed */
    int linger_ms;             /* draining input after a last response, before close (2 s) */
    int shutdown_timeout_ms;   /* graceful shutdown deadline for requests in flight (10 s) */
    int backlog;               /* listen(2) backlog (4096) */
    unsigned sq_entries;       /* io_uring submission queue per loop (2048); CQ is 4x */
    unsigned recv_buffers;     /* provided receive buffers per loop, a power of two (512) */
    unsigned recv_buffer_size; /* bytes each (4096) */
    int batch_wait_us;         /* 0 (off) or, under load, how long a loop may wait for a
                                * batch of completions (Linux 6.12+; try 50): ~15% less CPU
                                * per request with many busy connections, but up to this much
                                * added latency and less throughput with a few (see loop.c) */
    int no_signals;            /* 1: im_server_run() leaves SIGINT/SIGTERM/SIGPIPE alone */
    unsigned workers;          /* threads of the primary executor (number of online cores) */
    unsigned queue_capacity;   /* jobs per priority level in the server's executors (1024) */
    unsigned priority_levels;  /* priority levels of the server's executors, 1..32 (32): an
                                * endpoint whose .priority is not below it is refused when
                                * it is added */
    size_t max_queued_bytes;   /* memory held by calls that wait for or run on an executor,
                                * over the whole server (256 MiB): past it 429 + Retry-After */
    unsigned arena_ratio;      /* what the binder may build for one request: this many times
                                * the request's bytes (8) ... */
    size_t arena_extra_bytes;  /* ... plus this (65536): past it 413 */
    int task_ttl_ms;           /* a finished task is kept this long (10 min) */
    size_t task_memory_bytes;  /* what all kept tasks may hold (256 MiB): the oldest finished
                                * are evicted first, unfinished ones never */
    const char *task_store;    /* "memory" (default), or "redis://host[:port][/db]": tasks
                                * shared by every instance using the same Redis */
    const char *role;          /* "all" (default): serves and runs tasks; "api": serves, runs
                                * none; "worker": runs tasks, serves health, ready, metrics */
    int task_claim_after_ms;   /* Redis store: a task whose instance stopped answering is
                                * taken over by another after this (30 s) ... */
    unsigned task_max_attempts;/* ... at most this many runs in all (3), then FAILED */
    unsigned processes;        /* worker processes of process-mode functions, kept warm
                                * (number of online cores) */
    int kill_grace_ms;         /* a process task past its time limit or cancelled: SIGTERM,
                                * then SIGKILL after this (1000) */
    size_t rlimit_as_bytes;    /* each worker's address space, RLIMIT_AS (0: unlimited) */
    unsigned rlimit_cpu_s;     /* CPU seconds one call may take in its worker (0: no limit) */
    unsigned rlimit_nofile;    /* open files of each worker, RLIMIT_NOFILE (0: inherited) */
    const char *log_format;    /* "text" (default) or "json": one JSON object per line */
    const char *log_file;      /* append lines to this file, reopened on SIGHUP (NULL or "":
                                * stderr) */
    int access_log;            /* > 0: one line per request (time, id, peer, method, target,
                                * status, bytes, microseconds, task); < 0 or 0: none */
    int metrics;               /* GET /metrics and the counting behind it: > 0 or 0 on, < 0
                                * off */
    int docs;                  /* GET /docs and /redoc (when the service has their files): > 0
                                * or 0 on, < 0 off */
    unsigned log_ring_lines;   /* lines queued for the log writer before they drop (8192) */
    const char *manage_prefix; /* the management endpoints' prefix ("/manage") */
    int manage_port;           /* > 0: the management endpoints answer on this port only
                                * (with /health, /ready and /metrics, also on both) */
    const char *manage_host;   /* the address of that listener (NULL or "": host's) */
    const char *manage_token;  /* its write endpoints need "Authorization: Bearer <token>"
                                * (NULL or "": none, and only loopback peers may write) */
    unsigned ready_queue_percent; /* GET /ready says 503 when an executor's queue is fuller
                                   * than this share of its capacity (90) */
    /* CORS (FastAPI's CORSMiddleware): comma-separated lists; "*" allows any. With
     * cors_allow_origins NULL or "" nothing is sent. */
    const char *cors_allow_origins;   /* origins, exact ("https://app.example:8443") */
    const char *cors_allow_methods;   /* methods a preflight may ask for ("GET") */
    const char *cors_allow_headers;   /* request headers beyond the CORS-safelisted ("") */
    const char *cors_expose_headers;  /* response headers the page may read ("") */
    int cors_allow_credentials;       /* > 0: cookies and Authorization allowed (then the
                                       * origin is echoed, never "*") */
    unsigned cors_max_age;            /* seconds a preflight's answer is cached (600) */
    int compress;              /* gzip answers a client accepts it for (> 0 or 0: on, < 0 off;
                                * needs IM_HAVE_ZLIB) */
    size_t compress_min_bytes; /* ... whose body has at least this many bytes (1024) */
    unsigned compress_level;   /* zlib's level, 1 (fast) .. 9 (small) (6) */
} im_server_opts;

/* A request handler. It runs on the loop thread that read the request and must not block.
 * Before it returns it either answers (im_reply*, im_stream_begin) or calls im_ctx_defer();
 * a handler that does neither is answered 500. */
typedef void (*im_handler_fn)(im_ctx *c);

/* The request as parsed. Every view borrows from the connection's input and is valid until the
 * handler returns, or, after im_ctx_defer(), until the context is finished. */
typedef struct im_request {
    im_str method;            /* "GET", case-sensitive */
    im_str target;            /* request-target as sent ("/a/b?x=1") */
    im_str path;              /* raw path, still %-encoded ("/a/b") */
    im_str query;             /* raw query without '?', len 0 when none ("x=1") */
    int minor;                /* HTTP/1.<minor>: 0 or 1 */
    const im_header *headers; /* header lines in arrival order */
    unsigned num_headers;
    im_str body;              /* whole body, de-chunked; len 0 when none */
} im_request;

/* Creates a server (not yet listening). opts may be NULL for all defaults; it is copied.
 * Returns NULL with errno set on a bad option (EINVAL) or no memory. */
im_server *im_server_new(const im_server_opts *opts);

/* Adds a route: method ("GET", or "*" for any) and a pattern of '/'-separated segments where
 * "{name}" matches one non-empty segment (e.g. "/users/{id}/posts"). Static segments win over
 * parameters. HEAD is served by the GET handler when no HEAD route exists (body left out).
 * udata is handed back by im_ctx_udata(). Call before im_server_start().
 * Returns 0, -EEXIST (same method and pattern twice), -EINVAL (bad pattern), -EBUSY (started). */
int im_server_route(im_server *s, const char *method, const char *pattern, im_handler_fn fn,
                    void *udata);

/* Binds the listeners (one per loop, SO_REUSEPORT) and starts the loop threads.
 * Returns 0 or -errno (-EADDRINUSE, -EPERM when io_uring is disabled, ...), logged. */
int im_server_start(im_server *s);

/* Runs the server until SIGINT/SIGTERM (unless opts.no_signals) or im_server_stop(), then
 * shuts down gracefully: stop accepting, close idle connections, finish requests in flight
 * within shutdown_timeout_ms, join the loops. Starts the server first when needed.
 * Returns 0 after a clean stop, -errno when it could not start. */
int im_server_run(im_server *s);

/* Asks a running server to shut down gracefully. Safe from any thread and from a signal
 * handler. im_server_run() (or im_server_wait()) returns once it is done. */
void im_server_stop(im_server *s);

/* Waits for a started server to be stopped and shut down (im_server_stop from elsewhere).
 * Returns 0. */
int im_server_wait(im_server *s);

/* Frees a server that is not running. Contexts still deferred past shutdown keep their loop's
 * memory alive (it is then not freed). */
void im_server_free(im_server *s);

/* The bound TCP port (useful with port -1), or -1 before im_server_start(). */
int im_server_port(const im_server *s);

/* The server's primary executor (opts.workers threads), shared by all modules, and its serial
 * executor (one thread, for code that is not thread-safe). Both exist from im_server_start()
 * until im_server_free(), which shuts them down after the loops have stopped. NULL before. */
struct im_executor *im_server_executor(const im_server *s);
struct im_executor *im_server_serial(const im_server *s);

/* ---- inside a handler ---- */

/* The request (borrowed, see im_request). */
const im_request *im_ctx_request(const im_ctx *c);
/* The route's udata. */
void *im_ctx_udata(const im_ctx *c);
/* The loop thread this request belongs to: post to it from other threads. */
im_loop *im_ctx_loop(const im_ctx *c);
/* Value of a {name} path segment, raw (%-encoded), or {NULL, 0} when the route has none. */
im_str im_ctx_param(const im_ctx *c, const char *name);
/* First header of that name (case-insensitive), or {NULL, 0}. */
im_str im_ctx_header(const im_ctx *c, const char *name);
/* Its request id (NUL-ended, valid while the request lives): X-Request-ID as the client sent
 * it when 1..128 of [A-Za-z0-9._:-], else 32 random hex digits. Echoed in the answer. */
const char *im_ctx_request_id(const im_ctx *c);

/* Adds a response header to the answer being built (before im_reply / im_stream_begin).
 * Name must be a token and value free of CR, LF and NUL: else -EINVAL. Copied. */
int im_res_header(im_ctx *c, const char *name, const char *value);

/* Answers with status, Content-Type (NULL: none) and body (copied). Adds Date, Server,
 * Content-Length and Connection as needed; leaves the body out for HEAD.
 * On a deferred context this also finishes it (it must not be used afterwards).
 * Returns 0, -EALREADY (already answered), -EPIPE (the peer is gone; context finished) or
 * -EINVAL (status is not 200..599: a 500 was sent instead, and logged). */
int im_reply(im_ctx *c, int status, const char *content_type, const void *body, size_t len);
/* im_reply with Content-Type application/json. */
int im_reply_json(im_ctx *c, int status, const char *json, size_t len);
/* Answers {"detail": "<detail>"} (JSON-escaped) with the given status. */
int im_reply_error(im_ctx *c, int status, const char *detail);

/* Called on the loop thread when the peer of a deferred request goes away (closed, reset,
 * timed out or server shutdown past its deadline). The context stays valid: its owner still
 * finishes it (im_reply returns -EPIPE and frees it). */
typedef void (*im_close_fn)(im_ctx *c, void *arg);

/* Keeps the request open after the handler returns: the answer comes later, from the loop
 * thread (use im_loop_post to get there from a worker). The request view is copied so it stays
 * valid until the context is finished. Later requests pipelined on the same connection wait.
 * on_close (may be NULL) is told if the peer leaves first. Returns 0, -ENOMEM or -EALREADY. */
int im_ctx_defer(im_ctx *c, im_close_fn on_close, void *arg);

/* Memory for this request (8-byte aligned at least), freed with it; NULL when out of memory. */
void *im_ctx_alloc(im_ctx *c, size_t n);

/* What a forwarded request answered, given to its caller instead of the client. The body is
 * valid during the call only. fn answers c itself (im_reply...) before it returns: a 500 is
 * sent when it does not. Runs on the loop thread, at once or later (a task's answer). */
typedef void (*im_answer_fn)(im_ctx *c, void *arg, int status, const char *content_type,
                             const void *body, size_t len);
/* A request to run again, in place, as another route's: a hand-written route that keeps an
 * older URL set (a service's former API) answers through the framework's own routes (tasks,
 * functions, annotated endpoints) and reshapes their answers. Unset fields keep the request's
 * own (its headers always stay, but for those replaced). */
typedef struct im_forward {
    const char *method;       /* NULL: the request's method */
    const char *target;       /* required: the path, %-encoded, with its query ("/tasks/ab?x=1") */
    const char *content_type; /* non-NULL: the body is replaced by body[0..len) of this type */
    const void *body;
    size_t len;
    const char *prefer;       /* non-NULL: replaces the Prefer header ("" drops it) */
    im_answer_fn on_answer;   /* NULL: the answer goes to the client as it is */
    void *arg;
} im_forward;
/* Routes c anew as f says and runs that route's handler, which answers (at once, or later if
 * it defers) through f->on_answer. Call it from a handler, before the request is deferred or
 * answered; extra response headers set by either handler are kept. A route that streams (an
 * event stream) streams to the client as it is: on_answer is not called. Returns 0 (the
 * request is answered or deferred: its handler returns), -EALREADY, -EPIPE, -EINVAL (no
 * target) or -ENOMEM (nothing was done: answer it yourself). */
int im_ctx_forward(im_ctx *c, const im_forward *f);

/* Starts a streamed answer (chunked for HTTP/1.1; raw then close for HTTP/1.0) on a deferred
 * context. Returns 0, -EPIPE (peer gone: finish with im_stream_end), -EALREADY, or -EINVAL
 * (status not 200..599: nothing was sent, the request still needs an answer). */
int im_stream_begin(im_ctx *c, int status, const char *content_type);
/* Queues one chunk (copied). Returns 0, -EPIPE (peer gone), or -EAGAIN when the connection's
 * queued output is over max_output_bytes (nothing queued: try again later). */
int im_stream_write(im_ctx *c, const void *data, size_t len);
/* Ends the stream and finishes the context. Returns 0 or -EPIPE. */
int im_stream_end(im_ctx *c);
/* After im_stream_write said -EAGAIN: fn(c, arg) runs once on the loop thread when the
 * connection's queued output has drained to half of max_output_bytes (at once, from the next
 * loop iteration, when it is below that already). Not called when the peer leaves first
 * (on_close is). Returns 0, -EINVAL (not a stream) or -EPIPE. */
int im_stream_on_drain(im_ctx *c, void (*fn)(im_ctx *c, void *arg), void *arg);

/* ---- posting to a loop thread ---- */

/* A unit of work to run on a loop thread. Embed it in your own struct (no allocation):
 * fill fn, then im_loop_post(). Owned by the caller; untouched by the loop after fn starts. */
typedef struct im_post {
    void (*fn)(struct im_post *p); /* runs on the loop thread */
    struct im_post *next;          /* private link */
} im_post;

/* Queues p to run on loop's thread. Thread-safe, lock-free, never blocks; many posts made
 * while the loop is busy are collected with one wake-up. Posting after im_server_free() is a
 * use after free: stop the threads that post before freeing the server. Returns 0. */
int im_loop_post(im_loop *loop, im_post *p);
/* Convenience: allocates the post. Returns 0 or -ENOMEM. */
int im_loop_call(im_loop *loop, void (*fn)(void *arg), void *arg);
/* The loop whose thread is calling, or NULL on other threads. */
im_loop *im_loop_current(void);
/* Index of a loop within its server (0 .. loops-1). */
int im_loop_index(const im_loop *loop);
