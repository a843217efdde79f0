/* internal.h — private types the implementation parts share: the loop, its connections, the
 * request context, the router and the server. Nothing here is API; names are im__ / IM__ or
 * live inside the opaque public structs. */

#define IM__NIL UINT32_MAX
/* Error paths: kept out of line, so the hot functions stay small enough to inline. */
#define IM__COLD __attribute__((cold, noinline))
/* Parts written ahead of their first caller in the header (test programs call them already). */
#define IM__AHEAD __attribute__((unused))
#define IM__RID_MAX 128 /* a request id's characters at most (X-Request-ID) */

/* user_data of every SQE: what it is (op), and for connection ops which slot and which use of
 * that slot (generation), so that a late completion for a reused slot is recognised. */
enum {
    IM__OP_ACCEPT = 1,
    IM__OP_RECV,
    IM__OP_SEND,
    IM__OP_WAKE,   /* eventfd read: posts waiting */
    IM__OP_POLL,   /* a paused connection: watching for the peer leaving */
    IM__OP_IGNORE, /* cancel, close, shutdown: nothing to do on completion */
    IM__OP_INOTIFY, /* loop 0: the config files changed (conf.c) */
    IM__OP_REDIS    /* a Redis client's connect, send or receive (redis.c): idx is slot << 2 | kind */
};
#define IM__UD(op, gen, idx) \
    (((uint64_t)(op) << 56) | ((uint64_t)((gen) & 0xffffffu) << 32) | (uint64_t)(uint32_t)(idx))
#define IM__UD_OP(ud) ((unsigned)((ud) >> 56))
#define IM__UD_GEN(ud) ((uint32_t)((ud) >> 32) & 0xffffffu)
#define IM__UD_IDX(ud) ((uint32_t)(ud))

/* Sizes of pooled output buffers (response.c). */
#define IM__OUT_CLASSES 3

/* An owned, growable byte buffer (connection output). */
typedef struct im__buf {
    uint32_t len; /* bytes used */
    uint32_t cap; /* bytes available in data */
    char data[];
} im__buf;

/* Progress of one request whose bytes arrive over several reads. Offsets are relative to the
 * request's first byte, so the state survives moving the bytes. */
typedef struct im__rstate {
    uint32_t head_len;    /* 0 until the head is complete */
    uint32_t body_have;   /* chunked: decoded body bytes, stored right after the head */
    uint32_t raw_off;     /* chunked: first byte not yet decoded */
    uint32_t scanned;     /* head incomplete: bytes already searched for LF */
    uint64_t need;        /* Content-Length of the body */
    uint8_t mode;         /* IM__BODY_NONE / _LENGTH / _CHUNKED */
    uint8_t continue_sent;/* "100 Continue" already queued */
    im_http_chunked ch;   /* chunked decoder */
} im__rstate;
enum { IM__BODY_NONE = 0, IM__BODY_LENGTH, IM__BODY_CHUNKED };

/* Input a connection holds between reads: a partial request and anything pipelined after it.
 * Allocated only while there is such input; an idle connection has none. */
typedef struct im__in {
    uint32_t len;   /* bytes in data */
    uint32_t cap;   /* bytes allocated for data */
    im__rstate st;  /* progress of the request at data[0] */
    char data[];
} im__in;

/* Timer lists: a connection sits on at most one, each kept in deadline order because every
 * entry of a list has the same duration and is appended at the tail. */
enum {
    IM__T_NONE = 0,
    IM__T_IDLE,   /* keep-alive, nothing to do */
    IM__T_HEAD,   /* header block under way (deadline from its first byte; from the accept
                   * for a connection's first request) */
    IM__T_BODY,   /* body under way (deadline renewed on every read) */
    IM__T_SEND,   /* output waiting for the peer (renewed on progress) */
    IM__T_LINGER, /* draining input after the last response */
    IM__T_PROBE,  /* a deferred request waits behind the peer's FIN: is the peer still there? */
    IM__T_COUNT
};
/* How long a deferred request waits behind a FIN before the peer is probed, and how often
 * its socket is looked at after that (see im__conn_probe). */
#define IM__PROBE_MS 500

/* A connection's phase. It only moves forward, OPEN -> LAST -> LINGER -> CLOSING (any phase
 * may jump to CLOSING), and decides what is read, what is parsed and which timer runs:
 *   OPEN     requests are read, parsed and answered in order. Once the peer has shut its
 *            write side (is_eof) nothing more comes, but what it sent is still answered; when
 *            nothing is pending, held or queued any more, the connection closes.
 *   LAST     the last answer is queued or on its way (Connection: close, an error, the 503
 *            past max_conns, the server stopping): nothing more is parsed and input is
 *            dropped. Once no request is pending and the output is sent: LINGER (or CLOSING
 *            when the peer has shut its side already).
 *   LINGER   our write side is shut; input is read and dropped until EOF or linger_ms, so
 *            that unread input does not turn the close into a reset that destroys the answer.
 *   CLOSING  what is in flight is cancelled; the slot is released with the last completion.
 * Timers (im__conn_retime): OPEN: HEAD or BODY while a request is under way, SEND while output
 * waits, PROBE while a deferred request waits behind the peer's FIN, none while one waits
 * otherwise (its owner answers it; the server's stop deadline bounds it), IDLE (HEAD before
 * the first request) when there is nothing to do. LAST: SEND, PROBE or none as in OPEN.
 * LINGER: LINGER. So every connection that waits for the peer has a deadline. */
enum { IM__PH_OPEN = 0, IM__PH_LAST, IM__PH_LINGER, IM__PH_CLOSING };

typedef struct im__conn {
    int fd;              /* socket */
    uint32_t gen;        /* bumped when the slot is released; in every SQE's user_data */
    uint32_t tprev;      /* timer list links (slot indices, IM__NIL at the ends) */
    uint32_t tnext;      /* (a released slot: next free slot) */
    uint32_t deadline;   /* loop clock (ms) when its timer fires */
    uint32_t next_dirty; /* link in the loop's flush list */
    uint32_t send_off;   /* bytes of `sending` already sent (short sends) */
    uint8_t tlist;       /* IM__T_* list it is on */
    uint8_t phase;       /* IM__PH_*: see above */
    unsigned is_recv : 1;        /* multishot recv armed */
    unsigned is_send : 1;        /* a send in flight */
    unsigned is_dirty : 1;       /* on the flush list */
    unsigned is_paused : 1;      /* recv cancelled on purpose (backpressure) */
    unsigned is_eof : 1;         /* recv said 0: the peer shut its write side, all is read */
    unsigned is_rdhup : 1;       /* the poll of a paused connection saw the peer's FIN (what
                                  * it sent before may still wait in the socket) */
    unsigned is_probed : 1;      /* a 100 Continue went out to see if a half-closed peer is
                                  * still there (im__conn_probe) */
    unsigned is_full : 1;        /* output over max_output_bytes: next requests wait */
    unsigned is_resume : 1;      /* held input to run at the next flush */
    unsigned is_fresh : 1;       /* no request completed yet: the header timeout applies */
    unsigned is_refused : 1;     /* over max_conns: answered 503, not counted */
    unsigned is_manage : 1;      /* accepted on manage.port's listener */
    unsigned is_poll : 1;        /* a poll for the peer leaving is armed (while paused) */
    unsigned is_progress : 1;    /* a request completed since the timer was last set */
    im__in *in;          /* owned: held input, NULL when none */
    im__buf *out;        /* owned: responses waiting for the socket */
    im__buf *sending;    /* owned: buffer of the send in flight */
    struct im_ctx *pending; /* the deferred request that holds this connection's line */
    char *peer;          /* owned: "address:port", made for its first access-log line */
} im__conn;

/* A route: one method on one pattern. */
typedef struct im__route {
    char *method;            /* owned; "*" for any */
    im_handler_fn fn;        /* handler */
    void *udata;             /* handed to the handler */
    size_t max_body;         /* its own body limit, above max_body_bytes (0: that one) */
    char *pattern;           /* owned: as added (the metrics' route label) */
    uint32_t mid;            /* its metrics' index, 1.. (0: requests no route took) */
    uint8_t place;           /* IM__AT_*: which listeners answer it when manage.port is set */
    uint8_t is_probe;        /* /health, /ready, /metrics: served by a worker-only instance */
    char **pnames;           /* owned {param} names in pattern order */
    unsigned nparams;
    struct im__route *next;  /* other methods of the same node */
} im__route;

/* Where a route answers once manage.port is set (without it, everywhere). */
enum { IM__AT_SERVICE, IM__AT_MANAGE, IM__AT_BOTH };

/* A node of the route trie: one path segment. */
typedef struct im__rnode {
    char *seg;                 /* owned static segment text (not for param nodes) */
    uint32_t seglen;
    uint32_t nkids;            /* static children, sorted by (length, bytes) */
    uint32_t kcap;
    struct im__rnode **kids;   /* owned */
    struct im__rnode *param;   /* owned "{name}" child */
    im__route *routes;         /* owned handlers ending here */
    im__route **all;           /* root only, owned array: every route, by mid - 1 */
    uint32_t nall, allcap;
} im__rnode;

/* Latency buckets of the metrics' histograms, upper bounds in microseconds (+Inf after). */
#define IM__MET_BUCKETS 16
static const uint64_t im__met_le_us[IM__MET_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
    2500000, 5000000, 10000000};

/* One route's counters on one loop: written by that loop only (a relaxed load and store, no
 * lock prefix), read by a scrape on any loop. */
typedef struct im__rmet {
    _Atomic uint64_t status[5];             /* answers by class: 1xx .. 5xx */
    _Atomic uint64_t le[IM__MET_BUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
    _Atomic uint64_t sum_us;
} im__rmet;

static inline void im__met_add(_Atomic uint64_t *p, uint64_t v)
{
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

/* Which bucket a duration falls in. */
static inline unsigned im__met_bucket(uint64_t us)
{
    unsigned b = 0;
    while (b < IM__MET_BUCKETS && us > im__met_le_us[b]) b++;
    return b;
}

/* A per-request arena: blocks freed when the request is answered (one small block is kept). */
typedef struct im__ablock {
    struct im__ablock *next;
    size_t cap, used;
    _Alignas(16) char data[];
} im__ablock;
typedef struct im__arena {
    im__ablock *head; /* newest block first */
    size_t bytes;     /* allocated for its blocks, headers included */
} im__arena;
static void *im__arena_alloc(im__arena *a, size_t n); /* bind.c */

/* A timer of any duration on a loop (task deadlines, event-stream keep-alives), kept in the
 * loop's binary min-heap: starting or stopping one is O(log n). Loop thread only. (The
 * connection timers are lists instead: one duration each, O(1).) */
typedef struct im__ltimer {
    uint64_t due;                     /* loop clock (clock_ms) when it fires */
    uint32_t idx;                     /* its place in the heap, IM__NIL when not armed */
    void (*fn)(struct im__ltimer *t); /* runs on the loop thread once due (may start it again) */
} im__ltimer;

/* The context of one request. Pooled per loop; a deferred one stays out of the pool until
 * finished. */
struct im_ctx {
    im_request req;            /* views into the connection input, or into `owned` */
    struct im_loop *loop;      /* owning loop */
    uint32_t conn_idx;         /* connection slot */
    uint32_t conn_gen;         /* and its generation: a mismatch means the peer is gone */
    const im__route *route;    /* matched route (param names), NULL for built-in answers */
    void *udata;               /* route's udata */
    im_str params[IM_MAX_PARAMS]; /* raw {param} values in pattern order */
    unsigned is_head : 1;      /* HEAD: headers only */
    unsigned keepalive : 1;    /* the client wants the connection kept */
    unsigned is_deferred : 1;  /* im_ctx_defer() was called */
    unsigned is_done : 1;      /* the answer (or the stream's head) is queued */
    unsigned is_streaming : 1; /* im_stream_begin() was called */
    unsigned stream_chunked : 1; /* chunked framing (HTTP/1.1) */
    unsigned is_detached : 1;  /* the connection went away */
    unsigned is_dispatching : 1; /* its handler is running: im__dispatch returns it to the pool */
    unsigned is_finished : 1;  /* finished while its handler was still running */
    unsigned is_npy_known : 1;  /* is_npy_accept was read while the request's headers lived */
    unsigned is_npy_accept : 1; /* its Accept names application/x-npy */
    unsigned is_inline_call : 1; /* an annotated inline call runs on it: its arguments borrow
                                  * from the receive buffer, so it cannot be deferred */
    unsigned is_gzip_ok : 1;   /* its Accept-Encoding takes gzip (read at dispatch) */
    unsigned is_in_answer : 1; /* its on_answer runs: finishing it leaves it to im__answer */
    im_close_fn on_close;      /* told when the peer goes away while deferred */
    im_answer_fn on_answer;    /* a forwarded request's answer goes here first */
    void *answer_arg;
    void *close_arg;
    void (*drain_fn)(im_ctx *x, void *arg); /* im_stream_on_drain: told once output drains */
    void *drain_arg;
    const char *raw;           /* the request's bytes: head, then the de-chunked body */
    size_t raw_len;
    char *owned;               /* deferred: owned copy of the request bytes and headers */
    char *xh;                  /* owned extra response header lines ("Name: v\r\n"...) */
    im__arena arena;           /* owned: binder and handler memory of this request */
    uint32_t xh_len, xh_cap;
    uint64_t t0_ns;            /* when it was dispatched (access log), 0 when not read */
    uint64_t bytes_out;        /* what it queued (access log) */
    int16_t stream_status;     /* a stream's status (access log at its end) */
    char task_id[33];          /* its task's id, "" when none (access log) */
    char *acc;                 /* owned, deferred: its method and target (access log) */
    uint16_t acc_mlen, acc_tlen;
    uint8_t rid_len;
    char rid[IM__RID_MAX + 1]; /* its request id: X-Request-ID as it came, or one made */
    struct im_ctx *next_free;  /* pool link */
};

/* One event-loop thread: its ring, provided buffers, connections, timers and post queue. */
/* Linux 6.12's IORING_FEAT_MIN_TIMEOUT, which Debian 12's liburing headers do not name. */
#define IM__FEAT_MIN_TIMEOUT (1u << 15)

/* A listening socket of a loop (SO_REUSEPORT: each loop has its own) and its accept's state. */
typedef struct im__lis {
    int fd;                    /* -1 once closed, or when there is none */
    unsigned is_accepting : 1; /* multishot accept armed */
    unsigned is_paused : 1;    /* out of descriptors: re-armed at the next tick */
    uint32_t retry_at;
} im__lis;

/* ---- Redis (redis.c, with IM_HAVE_HIREDIS) ---- */
#define IM__REDIS_SLOTS 4 /* clients per loop */
typedef struct im__redis_addr {
    struct sockaddr_storage sa;
    socklen_t salen;
    int family;
    int db;
    char text[300];             /* host:port/db, for messages */
} im__redis_addr;
typedef struct im__redis_opts {
    uint32_t connect_timeout_ms; /* a connect that takes longer is given up (0: 2000) */
    uint32_t backoff_min_ms;     /* the first retry after a loss (0: 50), doubling up to ... */
    uint32_t backoff_max_ms;     /* ... this */
} im__redis_opts;
struct redisReply;
typedef void (*im__redis_cb)(void *arg, struct redisReply *reply);
typedef struct im__redis_wait {
    im__redis_cb cb;
    void *arg;
} im__redis_wait;
enum { IM__REDIS_DOWN, IM__REDIS_CONNECTING, IM__REDIS_UP, IM__REDIS_LOST /* in flight settling */ };
typedef struct im__redis {
    struct im_loop *L;
    int slot;
    im__redis_addr addr;
    im__redis_opts o;
    int fd;
    uint32_t gen;                /* of the socket: bumped by each connect */
    int state;                   /* IM__REDIS_* */
    struct redisReader *rd;      /* owned: this socket's reply parser */
    char *out;                   /* commands queued, not yet handed to the kernel */
    size_t out_len, out_cap;
    char *snd;                   /* the send in flight */
    size_t snd_len, snd_off, snd_cap;
    im__redis_wait *q;           /* commands sent or queued, waiting for their replies (a ring) */
    size_t qhead, qn, qcap;
    im__redis_cb on_push;        /* replies no command waits for (pub/sub) */
    void (*on_connect)(struct im__redis *r, void *arg); /* on each connect (push_arg): what to
                                                         * send first */
    void *push_arg;
    uint32_t backoff_ms;
    im__ltimer retry, ctimer;    /* the next connect; the connect's time limit */
    unsigned is_connect : 1, is_send : 1, is_recv : 1, is_dirty : 1, logged_down : 1, select_failed : 1;
    struct im__redis *dirty_next; /* the loop's list of clients with commands to send */
    uint64_t n_cmds, n_replies, n_connects, n_lost, bytes_in;
    char in[16384];              /* the receive in flight */
} im__redis;

struct im_loop {
    struct io_uring ring;
    struct im_server *srv;
    im_server_opts o;          /* the server's options as this loop applies them: the live
                                * keys are taken at the start of an iteration (im__loop_live) */
    uint64_t live_gen;         /* the srv->live_gen they were taken at */
    int index;                 /* 0 .. loops-1 */
    im__lis lis[2];            /* its listeners: the service's, and manage.port's (fd -1: none) */
    pthread_t thread;
    /* provided buffer ring */
    struct io_uring_buf_ring *br;
    char *bufs;
    size_t br_bytes, bufs_bytes;
    uint32_t nbufs, bufsz;
    uint32_t br_added;         /* buffers given back since the last advance */
    /* connections: a slot array touched only as it is used, with a free list through it */
    im__conn *conns;
    size_t conns_bytes;
    uint32_t cap;              /* slots: max_conns plus a reserve for answering 503 */
    uint32_t hwm;              /* slots ever used */
    uint32_t free_head;        /* released slots */
    uint32_t nconns;           /* open connections */
    uint32_t dirty_head;       /* connections with output to flush this iteration */
    uint32_t thead[IM__T_COUNT], ttail[IM__T_COUNT];
    uint32_t tdur[IM__T_COUNT];/* each list's duration (ms) */
    uint32_t now_ms;           /* loop clock, read once per iteration (wraps: compared by
                                * difference) */
    uint64_t clock_ms;         /* the same clock in 64 bits, for timers of any length */
    int64_t wall_ms;           /* the real time then, ms since 1970 (task times) */
    uint64_t clock_base_ms;
    uint64_t rid_rng[2];       /* xorshift128+ state of the request ids this loop makes */
    struct z_stream_s *zs;     /* owned: the deflate state of its answers (compress.c), or NULL */
    im__rmet *met;             /* owned: per route (index mid), allocated by the loop itself */
    uint32_t nmet;
    _Atomic uint64_t m_bytes_in, m_bytes_out, m_refused; /* this loop's, see im__met_add */
    im__ltimer **heap;         /* owned: armed timers of any duration, a min-heap on due */
    uint32_t nheap, heap_cap;
    time_t date_sec;           /* second the Date header was made for */
    char date[40];             /* "Date: Tue, 24 Nov 2026 12:00:00 GMT\r\n" */
    /* request scratch */
    im_header *hdrs;           /* owned: max_headers entries for the parser */
    struct im_ctx *ctx_free;   /* context pool */
    uint32_t ctx_pooled;
    uint32_t deferred;         /* contexts deferred and not yet finished */
    im__buf *out_pool[IM__OUT_CLASSES]; /* recycled output buffers by size (linked through
                                * data; see response.c) */
    uint32_t out_pooled[IM__OUT_CLASSES];
    /* cross-thread posts: an intrusive MPSC stack plus an eventfd the ring reads */
    _Atomic(im_post *) posts;
    _Atomic int posting;       /* threads inside im_loop_post(): the loop outlives them */
    int efd;
    uint64_t efd_val;          /* target of the eventfd read */
    _Atomic int stop_req;      /* the server asked this loop to stop */
    unsigned is_stopping : 1;  /* graceful shutdown under way */
    unsigned is_forced : 1;    /* shutdown deadline passed */
    uint32_t stop_deadline;
    uint32_t log_next_emfile;  /* rate limit for that warning */
    uint32_t batch_us;         /* batch_wait_us where the kernel has MIN_TIMEOUT, else 0 */
    uint32_t last_batch;       /* completions the last iteration reaped */
    unsigned is_ring_registered : 1; /* io_uring_register_ring_fd() took */
    unsigned has_ext_arg : 1;  /* IORING_FEAT_EXT_ARG (5.11+) */
    im__redis *redis[IM__REDIS_SLOTS]; /* owned: Redis clients on this loop (redis.c) */
    im__redis *redis_dirty;    /* those with commands to send this iteration */
    struct im__clloop *cl;     /* owned: its side of the Redis task store (cluster.c), or NULL */
    struct im__taskrun *run_pool; /* recycled task runs (exec.c) */
    uint32_t run_pooled;
    /* task ids: random bytes from getrandom, drawn 16 at a time */
    uint8_t rnd[512];
    uint32_t rnd_off;          /* first unused byte of rnd */
    /* start-up handshake with im_server_start() */
    int init_rc;
};

struct im_server {
    im_server_opts o;          /* resolved options (no zeros left) */
    im__rnode *root;           /* owned route trie */
    size_t max_route_body;     /* the largest body limit of a route of its own (0: none) */
    struct im_loop **loops;    /* owned */
    int nloops;
    int port;                  /* bound port, -1 before start */
    int stop_efd;              /* written by im_server_stop() */
    _Atomic int stop_asked;
    _Atomic int stopping;      /* the graceful stop began (GET /ready: 503) */
    _Atomic int conns;         /* connections served, over all loops (503s not counted) */
    int started;
    int joined;
    int sigs_blocked;          /* SIGINT/SIGTERM blocked in the starting thread */
    sigset_t sig_old;          /* the mask before */
    struct im__epstate **eps;  /* owned array of owned states: every annotated endpoint added */
    size_t neps;
    const char *openapi;       /* borrowed (generated, static): GET /openapi.json */
    size_t openapi_len;
    _Atomic size_t queued_bytes; /* memory held by calls on the executors (max_queued_bytes) */
    struct im__store *store;   /* owned: the tasks (in memory) */
    struct im__cluster *cluster; /* owned: tasks shared through Redis (cluster.c), or NULL */
    im__ltimer evict_timer;    /* on loop 0: the store's TTL, once a second */
    int has_task_routes;       /* /tasks and /functions are routed */
    int worker_only;           /* --role worker: only the probes answer (cluster.c) */
    im_executor *primary;      /* owned: shared worker pool */
    im_executor *serial;       /* owned: one worker */
    struct im__procs *procs;   /* owned: process mode (proc.c): fork server and workers, or NULL */
    struct im__cfgw *cfgw;     /* owned: the configuration it follows (conf.c), or NULL */
    struct im__service *svcs;  /* owned: services added (module.c), started by start */
    struct im_module *mods;    /* owned: the modules that are on, in init order */
    char *openapi_own;         /* owned: the OpenAPI document built from the modules on */
    char *spec_own;            /* owned: that with the runtime's endpoints (spec.c), served */
    const im_static_file *docs;/* borrowed (generated): the files of /docs and /redoc */
    size_t ndocs;
    im_static_file docs_pages[3]; /* owned text: /docs, its init script, /redoc (docs.c) */
    int mods_started;          /* im__modules_start ran */
    struct im_bus *_Atomic bus;/* owned: its event bus (bus.c), made on first use */
    pthread_mutex_t live_mu;   /* guards live */
    im_server_opts live;       /* o with the live keys as last configured: loops copy it */
    _Atomic uint64_t live_gen; /* grows with each change of live */
    _Atomic int loops_ready;   /* the loops run: a change of live wakes them (their eventfds) */
    pthread_mutex_t init_mu;   /* loop start-up handshake */
    pthread_cond_t init_cv;
    int init_left;
};

/* One call of an annotated function (im_call in bind.h). */
struct im_call {
    im_ctx *ctx;              /* the request (NULL while on a worker) */
    const im_endpoint *ep;
    im__arena *arena;         /* its memory (the request's, or its task's) */
    int status;               /* set by im_call_fail */
    char *detail;             /* its text (arena) */
    struct im__taskrun *run;  /* its task's execution (NULL for inline calls) */
    struct im__epstate *st;   /* its endpoint's state (module, executor) */
    char *tmpdir;             /* owned: its temp directory (im_module_dir), removed at its end */
    struct im__pwcall *pw;    /* in a worker process (proc.c): its link to the server, else NULL */
    uint16_t ok_status;       /* set by im_call_status: a success's, or 0 (the endpoint's) */
    char *hdrs;               /* im_call_header's of a task: "Name: value\r\n"... (arena) */
    size_t hdrs_len;
    struct im__cljob *cj;     /* a task taken from the cluster (cluster.c), else NULL */
};

/* A call's link to the server in a worker process (proc.c). */
struct im__pwcall {
    int sock;                 /* its socket to the server */
    char task_id[36];
    const char *rid;          /* its request id (the message's) */
    const char *dir;          /* its working directory (im__pw_enter's), or NULL */
};
/* In a worker process: SIGTERM came (im_call_cancelled() says 1). */
static volatile sig_atomic_t im__pw_term;

/* ---- tasks (task.c: objects and the store; exec.c: running endpoints; taskapi.c: /tasks) ---- */

/* Per annotated endpoint: its description and what is in flight. */
typedef struct im__epstate {
    const im_endpoint *ep;
    struct im_server *srv;
    _Atomic unsigned unfinished; /* its tasks queued or running (max_concurrency counts them) */
    _Atomic unsigned running;    /* its handlers running now */
    _Atomic uint64_t ended[4];   /* tasks that ended SUCCEEDED, FAILED, TIMEOUT, CANCELLED */
    _Atomic uint64_t dur_le[IM__MET_BUCKETS + 1]; /* their run times (from RUNNING) */
    _Atomic uint64_t dur_sum_us;
    _Atomic uint32_t timeout_ms; /* a task's time limit from its start (0: none); and ... */
    _Atomic uint32_t max_conc;   /* ... its unfinished tasks at once (0: any): both from its
                                  * table and then functions.<name> of the config (live) */
    struct im__task *newest;     /* its tasks in the store, newest first (store lock) */
    struct im_module *mod;       /* its module (module.c), NULL when added without one */
    im_executor *ex;             /* the executor it runs on (NULL: by its mode) */
} im__epstate;

/* A task: one call of a non-inline endpoint, from its acceptance to its eviction. Owned by the
 * store and by whoever holds a reference (a request that waits, an event stream, the job on
 * the executor). lock guards the fields marked (L); the store's lock those marked (S). */
typedef struct im__task {
    uint8_t id[16];              /* 128 random bits (getrandom), printed as 32 hex */
    im__epstate *fn;             /* its function */
    _Atomic int refs;
    _Atomic int lock;            /* a spin lock: held for a few instructions at a time */
    _Atomic uint8_t state;       /* (L) IM_TASK_*: written under the lock, read anywhere */
    uint8_t priority;
    uint8_t is_cancel;           /* (L) cancellation asked while it ran: CANCELLED at its end */
    uint8_t is_done_stored;      /* (S) the store saw it finish (its TTL runs) */
    uint8_t is_npy;              /* (L) body is the result as a .npy image, not JSON */
    int16_t status;              /* (L) terminal: the HTTP status of its answer */
    uint16_t ok_status;          /* (L) a success's status when not 200 (im_call_status) */
    char *hdrs;                  /* (L) owned: its answer's own header lines, or NULL */
    uint32_t body_len;           /* (L) */
    int64_t created_ms, started_ms, finished_ms; /* (L) wall clock, ms since 1970; 0: not yet */
    double fraction;             /* (L) progress, 0..1 */
    uint32_t progress_seq;       /* (L) bumped by each progress update (readers coalesce) */
    char *message;               /* (L) owned: the last progress message, or NULL */
    char *body;                  /* (L) owned: its answer's JSON (the result, or the error's) */
    char *error;                 /* (L) owned: why it FAILED, TIMEOUT or CANCELLED */
    struct im__waiter *waiters;  /* (L) who is told when it changes */
    struct im__taskrun *run;     /* its execution while queued or running (owner loop) */
    uint64_t seq;                /* (S) creation order, for listing and cursors */
    uint64_t expires;            /* (S) monotonic ms when a finished task may be evicted */
    struct im__task *hnext;      /* (S) hash chain */
    struct im__task *newer, *older;   /* (S) all tasks, by creation */
    struct im__task *fnewer, *folder; /* (S) its function's tasks, by creation */
    struct im__task *dnext;      /* (S) finished tasks, in the order they finished */
    size_t bytes;                /* (S) what it holds, counted against the store's cap */
    char small[32];              /* (L) a short answer is kept here: body points to it */
    char request_id[IM__RID_MAX + 1]; /* the id of the request that made it */
    _Atomic uint8_t is_counted;  /* its end is in its function's metrics */
    uint64_t run_us;             /* (L) its handler's run, when one ran to its end, else 0 */
} im__task;

/* A task's execution: the job on the executor and what the call needs, alive from submit to
 * the job's completion on the submitting loop. */
typedef struct im__taskrun {
    im_job job;                  /* first: queued on the executor */
    im__task *task;              /* a reference */
    im_call call;
    void *args, *out;            /* in arena */
    char *owned;                 /* owned: the request's bytes, taken from its context */
    im__arena arena;             /* owned: the binder's and the handler's memory */
    size_t held;                 /* its share of the server's queued_bytes */
    im__ltimer deadline;         /* the time limit, on the submitting loop */
    uint32_t limit_ms;           /* that limit, as it was when the task was accepted */
    uint64_t started_ns;         /* monotonic ns at the start (the metrics' run time) */
    uint64_t started_mono;       /* (task lock) monotonic ms at the start: the time limit
                                  * does not follow steps of the wall clock */
    im_loop *loop;               /* the submitting loop */
    uint8_t is_released;         /* (task lock) arguments freed, slot and budget given back */
    int pfd;                     /* process mode: the sealed memfd of a large request, or -1 */
    uint32_t pmsg_len;           /* process mode: the bytes of the message in owned */
    int wake_fd;                 /* (task lock) process mode: the eventfd that wakes the thread
                                  * waiting on its worker, -1 when none waits */
    char idhex[33];              /* the task's id as text (im_call_task_id) */
    uint32_t size;               /* bytes allocated for it (pooled per loop when small) */
    struct im__taskrun *next_free; /* the loop's pool */
    _Alignas(16) char mem[];     /* the argument and result structs */
} im__taskrun;
/* Runs whose argument and result structs fit this many bytes come from a per-loop pool. */
#define IM__RUN_SMALL 512

/* Someone told when a task changes: a request waiting for its answer (sync), or an event
 * stream (GET /tasks/{id}/events). Lives on its loop; a wake-up is a post to that loop, and
 * one already on its way absorbs the events behind it (a slow reader sees the latest). */
enum { IM__W_SYNC = 1, IM__W_EVENTS, IM__W_RESULT /* GET .../result with Prefer: wait */ };
typedef struct im__waiter {
    im_post post;                /* first: its wake-up */
    struct im__waiter *next;     /* (task lock) the task's list */
    im__task *task;              /* a reference */
    im_ctx *ctx;                 /* the request it answers */
    im_loop *loop;
    _Atomic int posted;          /* a wake-up is on its way */
    uint8_t kind;                /* IM__W_* */
    uint8_t is_gone;             /* the client left: freed once no wake-up is on its way */
    uint8_t is_listed;           /* on the task's list */
    uint8_t is_blocked;          /* events: the output is full, waiting for it to drain */
    uint32_t seen_seq;           /* events: the progress update last sent */
    im__ltimer keepalive;        /* events: a comment line every 15 s; result: the wait's end */
} im__waiter;

/* The task store, behind a small interface (a shared backend can replace the in-memory one).
 * Every function is thread-safe; those returning tasks return references. */
typedef struct im__store im__store;
typedef struct im__store_ops {
    const char *name;
    int (*add)(im__store *s, im__task *t);                      /* a new task: 0 or -ENOMEM */
    void (*remove)(im__store *s, im__task *t);                  /* one never started (refused) */
    im__task *(*get)(im__store *s, const uint8_t id[16]);       /* NULL: unknown or evicted */
    /* tasks newest first, of fn (NULL: all) in a state of mask (bit per state; 0: any),
     * older than before_seq (0: from the newest); *next is the seq to continue from, 0 at
     * the end. Returns how many it put in out. */
    size_t (*list)(im__store *s, const im__epstate *fn, unsigned mask, uint64_t before_seq,
                   im__task **out, size_t max, uint64_t *next);
    void (*finished)(im__store *s, im__task *t);                /* t is terminal: TTL starts */
    void (*evict)(im__store *s);                                /* TTL and memory cap */
    void (*counts)(im__store *s, size_t by_state[6]);
    void (*destroy)(im__store *s);
} im__store_ops;
struct im__store {
    const im__store_ops *ops;
};

/* A service added with im_server_add_service (module.c): its tables, borrowed (generated). */
typedef struct im__service {
    const im_module_desc *mods;
    size_t nmods;
    const im_endpoint *eps;
    size_t neps;
    im_openapi_fn openapi;
    struct im__service *next;
} im__service;

/* Functions one part calls and another defines (all static: nothing leaks). */
static void im__conn_close(im_loop *L, im__conn *c);
static int im__manage_routes(im_server *s);
static int im__cors(im_ctx *x);
static size_t im__u64_dec(char *out, uint64_t v);
static void im__log_access(const char *rid, const char *peer, im_str method, im_str target,
                           int status, uint64_t bytes, uint64_t us, const char *task);
static struct io_uring_sqe *im__sqe(im_loop *L);
static void im__sqe_ignore(struct io_uring_sqe *s);
static void im__conn_pause(im_loop *L, im__conn *c);
static void im__conn_arm_recv(im_loop *L, im__conn *c);
static void im__conn_resume(im_loop *L, im__conn *c);
static void im__ctx_put(im_loop *L, im_ctx *x);
static void im__arena_reset(im__arena *a);
static void im__arena_free(im__arena *a);
static int im__docs_routes(im_server *s);
static void im__docs_free(im_server *s);
static void im__cfgw_arm(im_loop *L);
static void im__cfgw_on_read(im_loop *L, int res);
#if IM_HAVE_HIREDIS
static void im__redis_on_cqe(im_loop *L, struct io_uring_cqe *cqe);
static void im__redis_flush(im_loop *L);
static void im__redis_free(im__redis *r);
#endif
static void im__cfgw_free(im_server *s);
static void im__apply_functions(im_server *s, im_config *cfg);
static int im__modules_start(im_server *s);
static void im__modules_close(im_server *s);
static int im__modules_shutdown_within(im_server *s, int timeout_ms);
static void im__modules_free(im_server *s);
static void im__call_end(im_call *call);
/* the Redis task store (cluster.c) */
enum { IM__CLQ_SUBMIT = 1, IM__CLQ_GET, IM__CLQ_RESULT, IM__CLQ_DELETE, IM__CLQ_WAIT, IM__CLQ_EVENTS,
       IM__CLQ_FUNCS, IM__CLQ_FUNC, IM__CLQ_TERMINATE, IM__CLQ_LIST };
static int im__cl_counters(const im_server *s, uint64_t out[4]);
static void im__cl_task_list(im_ctx *c, const im__epstate *fn, unsigned mask, uint64_t before,
                             long limit);
static void im__function_json(im_jw *w, const im__epstate *st, int with_args, const unsigned *counts);
struct im__cljob;
static void im__cl_submit(im_ctx *c, im__epstate *st);
static void im__cl_loop_stop(struct im_loop *L);
static void im__cl_progress(struct im__cljob *j, double fraction, const char *message);
static int im__cl_attempt(const struct im__cljob *j);
static const char *im__cl_task_id(const struct im__cljob *j);
static const char *im__cl_request_id(const struct im__cljob *j);
static int im__cl_cancelled(const struct im__cljob *j);
static int im__procs_prestart(im_server *s);
static int im__procs_start(im_server *s);
static void im__procs_close(im_server *s);
static int im__procs_shutdown_within(im_server *s, int timeout_ms);
static void im__procs_free(im_server *s);
static void im__proc_job_run(im_job *j);
static void im__proc_wake(im__taskrun *r);
static void im__pw_progress(struct im__pwcall *pw, double fraction, const char *message);
static void im__rmtree(const char *path);
static int im__mkdirs(const char *path);
static int im__proc_image(im_ctx *c, im__epstate *st, im__taskrun *r);
static im_executor *im__procs_executor(im_server *s, const char **why);
