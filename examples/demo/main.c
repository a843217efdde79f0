/* main.c — immersive-demo: the annotated endpoints of modules/ (math, text, geo, and demo's
 * tasks: generated routes, /openapi.json, /tasks, /functions), the benchmark endpoints
 * (/plaintext, /json) and one hand-written example of each way to answer: a path parameter,
 * an echoed body, an answer deferred to another thread, a streamed answer. The end-to-end
 * tests run against this binary. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"
#include "immersive_demo.service.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void plaintext(im_ctx *c) { im_reply(c, 200, "text/plain", "Hello, World!", 13); }

static void json(im_ctx *c)
{
    static const char body[] = "{\"message\":\"Hello, World!\"}";
    im_reply_json(c, 200, body, sizeof body - 1);
}

static void echo(im_ctx *c)
{
    const im_request *r = im_ctx_request(c);
    im_str ct = im_ctx_header(c, "Content-Type");
    char type[256];
    snprintf(type, sizeof type, "%.*s", ct.ptr ? (int)ct.len : 24,
             ct.ptr ? ct.ptr : "application/octet-stream");
    im_reply(c, 200, type, r->body.ptr, r->body.len);
}

static void hello(im_ctx *c)
{
    im_str name = im_ctx_param(c, "name");
    char buf[512];
    im_jw w;
    im_jw_init(&w, buf, sizeof buf);
    im_jw_obj(&w);
    im_jw_key(&w, "hello");
    im_jw_strn(&w, name.ptr, name.len);
    im_jw_obj_end(&w);
    if (im_jw_error(&w)) im_reply_error(c, 414, "name too long");
    else im_reply_json(c, 200, w.buf, w.len);
}

/* Reads query parameter `name` as an integer in [lo, hi]; -1 and a 422 answer otherwise. */
static long query_long(im_ctx *c, const char *name, long dflt, long lo, long hi)
{
    im_str v = im_query_get(im_ctx_request(c)->query, name);
    char tmp[24], *end;
    long n;
    if (!v.ptr) return dflt;
    if (v.len == 0 || v.len >= sizeof tmp) goto bad;
    memcpy(tmp, v.ptr, v.len);
    tmp[v.len] = 0;
    errno = 0;
    n = strtol(tmp, &end, 10);
    if (errno || *end || n < lo || n > hi) goto bad;
    return n;
bad:;
    char msg[128];
    snprintf(msg, sizeof msg, "query parameter '%s' must be an integer from %ld to %ld", name, lo,
             hi);
    im_reply_error(c, 422, msg);
    return -1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

/* ---- /delay: the answer comes from another thread ---- */

typedef struct delay_job {
    im_ctx *ctx;
    long ms;
} delay_job;

static void delay_finish(void *arg) /* on the loop thread */
{
    delay_job *j = arg;
    char body[64];
    int n = snprintf(body, sizeof body, "{\"slept_ms\":%ld}", j->ms);
    im_reply_json(j->ctx, 200, body, (size_t)n); /* -EPIPE when the client left: fine */
    free(j);
}

static void *delay_thread(void *arg)
{
    delay_job *j = arg;
    sleep_ms(j->ms);
    im_loop_call(im_ctx_loop(j->ctx), delay_finish, j);
    return NULL;
}

static void delay(im_ctx *c)
{
    long ms = query_long(c, "ms", 0, 0, 60000);
    pthread_t t;
    pthread_attr_t a;
    delay_job *j;
    if (ms < 0) return;
    if (!(j = malloc(sizeof *j)) || im_ctx_defer(c, NULL, NULL)) {
        free(j);
        im_reply_error(c, 503, "out of memory");
        return;
    }
    j->ctx = c;
    j->ms = ms;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &a, delay_thread, j)) {
        free(j);
        im_reply_error(c, 503, "cannot start a thread");
    }
    pthread_attr_destroy(&a);
}

/* ---- /stream: chunks written over time ---- */

typedef struct stream_job {
    im_ctx *ctx;
    long n, ms, i;
    int gone;   /* set on the loop thread when the client left */
    int over;   /* set on the loop thread when the stream has ended */
    int full;   /* the output is full: the rest waits for it to drain */
    sem_t step; /* posted by the loop thread after each step */
} stream_job;

/* Writes chunk j->i; 1 when the stream is over, 0 when there is more, -1 when the output is
 * full (the chunk is written again once it drains: none is lost). On the loop thread. */
static int stream_chunk(stream_job *j)
{
    char line[32];
    int k = snprintf(line, sizeof line, "chunk %ld\n", j->i), rc = 0;
    if (j->gone || j->i >= j->n || (rc = im_stream_write(j->ctx, line, (size_t)k)) == -EPIPE) {
        im_stream_end(j->ctx);
        return 1;
    }
    if (rc == -EAGAIN) return -1;
    if (++j->i >= j->n) {
        im_stream_end(j->ctx);
        return 1;
    }
    return 0;
}

static void stream_drained(im_ctx *c, void *arg);

/* Writes chunks until one is due later (ms > 0), the output is full or the stream is over. */
static int stream_run(stream_job *j, int all)
{
    for (;;) {
        int r = stream_chunk(j);
        if (r < 0) {
            j->full = 1;
            im_stream_on_drain(j->ctx, stream_drained, j);
            return 0;
        }
        if (r > 0 || !all) return r;
    }
}

static void stream_drained(im_ctx *c, void *arg) /* on the loop thread: room again */
{
    stream_job *j = arg;
    (void)c;
    j->full = 0;
    j->over = stream_run(j, j->ms == 0);
    if (j->over && j->ms == 0) { /* the all-at-once kind has no thread to free it */
        sem_destroy(&j->step);
        free(j);
        return;
    }
    if (!j->full && j->ms) sem_post(&j->step); /* the chunk that waited is out: go on */
}

static void stream_step(void *arg) /* on the loop thread */
{
    stream_job *j = arg;
    j->over = stream_run(j, 0);
    if (!j->full) sem_post(&j->step); /* orders j->over before the thread's sem_wait returns */
}

static void *stream_thread(void *arg)
{
    stream_job *j = arg;
    do {
        sleep_ms(j->ms);
        /* one step at a time: the job and its context are touched on the loop thread only */
        im_loop_call(im_ctx_loop(j->ctx), stream_step, j);
        while (sem_wait(&j->step) && errno == EINTR) {
        }
    } while (!j->over);
    sem_destroy(&j->step);
    free(j);
    return NULL;
}

static void stream_gone(im_ctx *c, void *arg)
{
    stream_job *j = arg;
    j->gone = 1;
    if (!j->full) return; /* the next step sees it */
    j->full = 0;          /* it waited for a drain that will not come */
    j->over = 1;
    im_stream_end(c);
    if (j->ms == 0) {
        sem_destroy(&j->step);
        free(j);
    } else {
        sem_post(&j->step); /* the thread sees over and leaves */
    }
}

static void stream(im_ctx *c)
{
    long n = query_long(c, "n", 3, 0, 100000), ms;
    stream_job *j;
    if (n < 0 || (ms = query_long(c, "ms", 0, 0, 60000)) < 0) return;
    if (!(j = calloc(1, sizeof *j)) || im_ctx_defer(c, stream_gone, j)) {
        free(j);
        im_reply_error(c, 503, "out of memory");
        return;
    }
    j->ctx = c;
    j->n = n;
    j->ms = ms;
    sem_init(&j->step, 0, 0);
    im_stream_begin(c, 200, "text/plain");
    if (ms == 0 || n == 0) { /* all at once, right here on the loop thread, as room allows */
        if (stream_run(j, 1)) {
            sem_destroy(&j->step);
            free(j);
        }
        return;
    }
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &a, stream_thread, j)) {
        im_stream_end(c);
        sem_destroy(&j->step);
        free(j);
    }
    pthread_attr_destroy(&a);
}

/* ---- command line ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: immersive-demo [options]\n"
            "  --host H                 address to bind (127.0.0.1)\n"
            "  --port P                 TCP port, 0 for any free one (8000)\n"
            "  --loops N                event-loop threads (number of cores)\n"
            "  --max-conns N            open connections (10000)\n"
            "  --max-header-bytes N     request line + headers (16384)\n"
            "  --max-body-bytes N       request body (1048576)\n"
            "  --max-headers N          header lines (100)\n"
            "  --header-timeout-ms N    (10000)\n"
            "  --body-timeout-ms N      (30000)\n"
            "  --idle-timeout-ms N      (60000)\n"
            "  --send-timeout-ms N      a peer that reads none of our output (60000)\n"
            "  --shutdown-timeout-ms N  (10000)\n"
            "  --batch-wait-us N        under load, gather completions this long (0: off)\n"
            "  --workers N              threads of the primary executor (number of cores)\n"
            "  --queue-capacity N       queued tasks per priority level, per executor (1024)\n"
            "  --max-queued-bytes N     memory all queued and running calls may hold (268435456)\n"
            "  --task-ttl-ms N          how long a finished task is kept (600000)\n"
            "  --task-memory-bytes N    what kept tasks may hold in all (268435456)\n"
            "  --log-level L            debug, info, warn, error (info)\n"
            "  --help                   this text\n");
}

static int parse_num(const char *flag, const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long n = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || *end || end == v || n < lo || n > hi) {
        fprintf(stderr, "immersive-demo: %s needs an integer from %ld to %ld\n", flag, lo, hi);
        return -1;
    }
    *out = n;
    return 0;
}

int main(int argc, char **argv)
{
    im_server_opts o = {0};
    long v;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *a = i + 1 < argc ? argv[i + 1] : NULL;
#define NUM(name, lo, hi, field)                                     \
    if (strcmp(f, name) == 0) {                                      \
        if (parse_num(f, a, lo, hi, &v)) return 2;                   \
        o.field = v;                                                 \
        i++;                                                         \
        continue;                                                    \
    }
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(f, "--host") == 0 && a) {
            o.host = a;
            i++;
            continue;
        }
        if (strcmp(f, "--port") == 0) {
            if (parse_num(f, a, 0, 65535, &v)) return 2;
            o.port = v ? (int)v : -1; /* 0: any free port */
            i++;
            continue;
        }
        if (strcmp(f, "--log-level") == 0 && a) {
            int l = im_log_level_parse(a);
            if (l < 0) {
                fprintf(stderr, "immersive-demo: unknown log level '%s'\n", a);
                return 2;
            }
            im_log_set_level((im_log_level)l);
            i++;
            continue;
        }
        NUM("--loops", 1, 256, loops)
        NUM("--max-conns", 1, 1000000, max_conns)
        NUM("--max-header-bytes", 64, 1 << 30, max_header_bytes)
        NUM("--max-body-bytes", 1, 1L << 30, max_body_bytes)
        NUM("--max-headers", 1, 100000, max_headers)
        NUM("--header-timeout-ms", 1, 86400000, header_timeout_ms)
        NUM("--body-timeout-ms", 1, 86400000, body_timeout_ms)
        NUM("--idle-timeout-ms", 1, 86400000, idle_timeout_ms)
        NUM("--send-timeout-ms", 1, 86400000, send_timeout_ms)
        NUM("--shutdown-timeout-ms", 1, 86400000, shutdown_timeout_ms)
        NUM("--batch-wait-us", 0, 1000000, batch_wait_us)
        NUM("--workers", 1, 1024, workers)
        NUM("--queue-capacity", 1, 1 << 24, queue_capacity)
        NUM("--max-queued-bytes", 1, 1L << 40, max_queued_bytes)
        NUM("--task-ttl-ms", 1, 86400000L * 30, task_ttl_ms)
        NUM("--task-memory-bytes", 1, 1L << 40, task_memory_bytes)
#undef NUM
        fprintf(stderr, "immersive-demo: unknown option '%s' (see --help)\n", f);
        return 2;
    }
    im_server *s = im_server_new(&o);
    if (!s) {
        fprintf(stderr, "immersive-demo: bad options: %s\n", strerror(errno));
        return 2;
    }
    im_server_route(s, "GET", "/plaintext", plaintext, NULL);
    im_server_route(s, "GET", "/json", json, NULL);
    im_server_route(s, "POST", "/echo", echo, NULL);
    im_server_route(s, "GET", "/hello/{name}", hello, NULL);
    im_server_route(s, "GET", "/delay", delay, NULL);
    im_server_route(s, "GET", "/stream", stream, NULL);
    int rc = im_register_immersive_demo(s); /* the annotated endpoints of modules/ */
    if (rc) {
        fprintf(stderr, "immersive-demo: cannot add the generated endpoints: %s\n", strerror(-rc));
        im_server_free(s);
        return 1;
    }
    rc = im_server_start(s);
    if (rc) {
        im_server_free(s);
        return 1;
    }
    printf("listening on http://%s:%d\n", o.host ? o.host : IM_DEFAULT_HOST, im_server_port(s));
    fflush(stdout);
    rc = im_server_run(s);
    im_server_free(s);
    return rc ? 1 : 0;
}
