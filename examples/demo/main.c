/* main.c — immersive-demo: the annotated endpoints of modules/ (math, text, geo, and demo's
 * tasks; tests/lang, the annotation language's echoes: generated routes, /openapi.json, /tasks,
 * /functions), the benchmark endpoints
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

/* ---- the service: its hand-written routes, then the generated ones ---- */

/* events "demo.*" from any process of the service (through the hub) are logged */
static void log_event(const char *topic, const void *payload, size_t len, void *arg)
{
    (void)arg;
    im_log(IM_LOG_INFO, "event %s: %.*s", topic, (int)len, (const char *)payload);
}

static int demo_register(im_server *s)
{
    im_bus *bus = im_server_bus(s);
    if (bus) im_on(bus, "demo.*", log_event, NULL);
    im_server_route(s, "GET", "/plaintext", plaintext, NULL);
    im_server_route(s, "GET", "/json", json, NULL);
    im_server_route(s, "POST", "/echo", echo, NULL);
    im_server_route(s, "GET", "/hello/{name}", hello, NULL);
    im_server_route(s, "GET", "/delay", delay, NULL);
    im_server_route(s, "GET", "/stream", stream, NULL);
    return im_register_immersive_demo(s); /* the annotated endpoints of modules/ */
}

/* the command line, config files and the server's life: see im_main in immersive.h */
int main(int argc, char **argv) { return im_main(argc, argv, demo_register); }
