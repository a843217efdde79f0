/* log.h — leveled logging, safe from any thread: text or JSON lines, to stderr or a file
 * reopened on demand (SIGHUP), each line tagged with the request being handled. Once a server
 * starts, lines go through a bounded ring that a writer thread drains, so no caller (a loop
 * above all) ever waits for the disk: a full ring drops the line and counts it. */

typedef enum im_log_level {
    IM_LOG_TRACE = 0,
    IM_LOG_DEBUG = 1,
    IM_LOG_INFO = 2,
    IM_LOG_WARN = 3,
    IM_LOG_ERROR = 4,
    IM_LOG_FATAL = 5, /* the most severe; logging it does not end the process */
    IM_LOG_OFF = 6
} im_log_level;

/* Sets / reads the process-wide threshold (default IM_LOG_INFO). */
void im_log_set_level(im_log_level level);
im_log_level im_log_get_level(void);
/* Parses "trace", "debug", "info", "warn" ("warning"), "error", "fatal", "off". Returns the
 * level or -EINVAL. */
int im_log_level_parse(const char *name);
/* The name of a level ("info"), "off" past the last. */
const char *im_log_level_name(im_log_level level);

/* Where and how lines go. Zero-initialise; 0 / NULL is the default. */
typedef struct im_log_opts {
    int json;            /* 1: one JSON object per line (time, level, msg, request_id) */
    const char *file;    /* append to this file (created 0644) instead of stderr */
    unsigned ring_lines; /* lines the ring holds before it drops (8192) */
} im_log_opts;

/* Applies opts: opens the file (kept open; im_log_reopen opens the path again). Returns 0 or
 * -errno (the file cannot be opened: lines keep going where they went). */
int im_log_configure(const im_log_opts *opts);
/* Opens the file again, for log rotation: what is written from now on goes to the path's new
 * file. Safe from a signal's handling thread; no-op without a file. 0 or -errno. */
int im_log_reopen(void);
/* Starts the writer thread: lines go through the ring from now on (a server does it when it
 * starts). Idempotent; in a child after fork() lines are written directly again. */
int im_log_start(void);
/* Waits (up to 2 s) until every line queued so far is written. */
void im_log_flush(void);
/* Lines dropped because the ring was full, since the process started. */
uint64_t im_log_dropped(void);

/* The request id this thread is handling (set by the runtime around handlers and tasks; NULL
 * clears it): every line this thread logs meanwhile carries it. */
void im_log_set_request_id(const char *request_id);
const char *im_log_request_id(void);

/* Writes one line "2026-11-24T12:00:00.123Z INFO [request-id] message" (or its JSON) when
 * level passes the threshold. */
void im_log(im_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Like im_log, whatever the threshold (the access log: wanted by its own switch). kind is
 * the text tag and the JSON "level" ("access"). */
void im_log_always(const char *kind, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Times the block or statement after it and logs "<name>: <n> ns" at debug level (with the
 * request id), like serve-common's time_and_log:  IM_TIMED("resize") { ... }
 * The block must not leave by return, goto or break out of it (its time is then not logged). */
#define IM_TIMED(name)                                                                       \
    for (uint64_t im__t0_ = im_log_clock_ns(), im__once_ = 1; im__once_;                      \
         im__once_ = 0, im_log(IM_LOG_DEBUG, "%s: %llu ns", (name),                           \
                               (unsigned long long)(im_log_clock_ns() - im__t0_)))
/* CLOCK_MONOTONIC in nanoseconds (for IM_TIMED). */
uint64_t im_log_clock_ns(void);
