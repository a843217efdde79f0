/* test_server.c — the server in-process, over real sockets, sized to hit its edge cases:
 * tiny rings (full submission queue, completion overflow, receive buffers running out), many
 * clients pipelining at once, deferred answers posted from worker threads, the peer leaving a
 * deferred request (its owner is told), stream backpressure, and a stop from another thread
 * with every connection and context cleaned up (ASan and TSan builds run this too). */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "support/check.h"
#include "support/http_client.h"

static int port;

/* ---- handlers ---- */

static void plaintext(im_ctx *c) { im_reply(c, 200, "text/plain", "Hello, World!", 13); }

/* /work: answered by a worker thread through im_loop_post */
typedef struct work {
    im_post post; /* first */
    im_ctx *ctx;
    struct work *next;
} work;
static pthread_mutex_t work_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cv = PTHREAD_COND_INITIALIZER;
static work *work_head;
static int work_stop;

static void work_done(im_post *p) /* loop thread */
{
    work *w = (work *)(void *)p;
    const im_request *r = im_ctx_request(w->ctx);
    im_reply(w->ctx, 200, "text/plain", r->query.ptr, r->query.len);
    free(w);
}

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&work_mu);
    for (;;) {
        while (!work_head && !work_stop) pthread_cond_wait(&work_cv, &work_mu);
        if (!work_head) break;
        work *w = work_head;
        work_head = w->next;
        pthread_mutex_unlock(&work_mu);
        w->post.fn = work_done;
        im_loop_post(im_ctx_loop(w->ctx), &w->post);
        pthread_mutex_lock(&work_mu);
    }
    pthread_mutex_unlock(&work_mu);
    return NULL;
}

static void do_work(im_ctx *c)
{
    work *w = calloc(1, sizeof *w);
    CHECK(w && im_ctx_defer(c, NULL, NULL) == 0, "defer /work");
    w->ctx = c;
    pthread_mutex_lock(&work_mu);
    w->next = work_head;
    work_head = w;
    pthread_cond_signal(&work_cv);
    pthread_mutex_unlock(&work_mu);
}

/* /hang: deferred until the peer leaves; on_close must say so */
static atomic_int hang_closed;
static void hang_gone(im_ctx *c, void *arg)
{
    (void)arg;
    atomic_fetch_add(&hang_closed, 1);
    CHECK(im_reply(c, 200, NULL, NULL, 0) == -EPIPE, "reply to a gone peer");
}
static void hang(im_ctx *c) { CHECK(im_ctx_defer(c, hang_gone, NULL) == 0, "defer /hang"); }

/* /flood: streams until backpressure (-EAGAIN), then until the peer is gone (-EPIPE) */
static atomic_int flood_again, flood_pipe;
typedef struct flood {
    im_post post;
    im_ctx *ctx;
    int again;
} flood;
static void flood_step(im_post *p)
{
    flood *f = (flood *)(void *)p;
    static char chunk[16384];
    for (int i = 0; i < 64; i++) {
        int rc = im_stream_write(f->ctx, chunk, sizeof chunk);
        if (rc == -EAGAIN) {
            if (!f->again++) atomic_fetch_add(&flood_again, 1);
            break;
        }
        if (rc == -EPIPE) {
            atomic_fetch_add(&flood_pipe, 1);
            im_stream_end(f->ctx);
            free(f);
            return;
        }
    }
    usleep(1000);
    im_loop_post(im_ctx_loop(f->ctx), &f->post); /* again, from the loop itself */
}
static void flood_start(im_ctx *c)
{
    flood *f = calloc(1, sizeof *f);
    f->ctx = c;
    f->post.fn = flood_step;
    CHECK(im_stream_begin(c, 200, "application/octet-stream") == 0, "stream begin");
    im_loop_post(im_ctx_loop(c), &f->post);
}

/* ---- client side ---- */

/* Bytes of a text/plain answer with a body of n bytes. */
static size_t answer_len(size_t n)
{
    char cl[32];
    return strlen("HTTP/1.1 200 OK\r\nServer: immersive\r\n") + 37 /* Date */ +
           strlen("Content-Type: text/plain\r\n") +
           strlen("X-Request-ID: \r\n") + 32 /* one made: no X-Request-ID was sent */ +
           (size_t)snprintf(cl, sizeof cl, "Content-Length: %zu\r\n\r\n", n) + n;
}

/* Each client pipelines rounds of /plaintext and /work?<id> requests and checks every answer
 * in order, byte for byte except the Date. */
#define ROUNDS 30
#define DEPTH 8
static void *client(void *arg)
{
    int id = (int)(intptr_t)arg, fd = http_dial(port);
    char req[DEPTH * 64], resp[DEPTH * 256];
    CHECK(fd >= 0, "client %d connects", id);
    if (fd < 0) return NULL;
    for (int r = 0; r < ROUNDS; r++) {
        size_t n = 0, expect = 0;
        char qs[DEPTH][32];
        for (int d = 0; d < DEPTH; d++) {
            if (d % 2) {
                snprintf(qs[d], sizeof qs[d], "c%dr%dd%d", id, r, d);
                n += (size_t)sprintf(req + n, "GET /work?%s HTTP/1.1\r\nHost: t\r\n\r\n", qs[d]);
                expect += answer_len(strlen(qs[d]));
            } else {
                n += (size_t)sprintf(req + n, "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
                expect += answer_len(13);
            }
        }
        CHECK(http_send_all(fd, req, n) == 0, "client %d sends", id);
        size_t got = http_recv_n(fd, resp, expect);
        CHECK(got == expect, "client %d round %d: %zu of %zu bytes", id, r, got, expect);
        if (got != expect) break;
        /* answers in order: walk them */
        const char *p = resp;
        for (int d = 0; d < DEPTH; d++) {
            const char *body = strstr(p, "\r\n\r\n");
            CHECK(body && strncmp(p, "HTTP/1.1 200 OK\r\n", 17) == 0, "status %d", d);
            if (!body) break;
            body += 4;
            const char *want = d % 2 ? qs[d] : "Hello, World!";
            CHECK(strncmp(body, want, strlen(want)) == 0, "client %d answer %d: %.20s", id, d,
                  body);
            p = body + strlen(want);
        }
    }
    close(fd);
    return NULL;
}

static void test_many_clients(void)
{
    enum { N = 48 };
    pthread_t t[N];
    for (int i = 0; i < N; i++) pthread_create(&t[i], NULL, client, (void *)(intptr_t)i);
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
}

static void test_peer_leaves_deferred(void)
{
    int fd = http_dial(port);
    const char *req = "GET /hang HTTP/1.1\r\nHost: t\r\n\r\n";
    CHECK(http_send_all(fd, req, strlen(req)) == 0, "send /hang");
    usleep(100000);
    CHECK(atomic_load(&hang_closed) == 0, "still open");
    close(fd);
    for (int i = 0; i < 200 && atomic_load(&hang_closed) == 0; i++) usleep(10000);
    CHECK(atomic_load(&hang_closed) == 1, "on_close called once: %d", atomic_load(&hang_closed));
}

/* A deferred request with more than max_header_bytes pipelined behind it: reading pauses;
 * the peer then leaves and must still be noticed (a poll watches for it). */
static void test_paused_peer_leaves(void)
{
    int before = atomic_load(&hang_closed), fd = http_dial(port);
    static char junk[40000];
    memset(junk, 'x', sizeof junk);
    const char *req = "GET /hang HTTP/1.1\r\nHost: t\r\n\r\n";
    CHECK(http_send_all(fd, req, strlen(req)) == 0, "send /hang");
    CHECK(http_send_all(fd, junk, sizeof junk) == 0, "send what waits behind it");
    usleep(200000);
    CHECK(atomic_load(&hang_closed) == before, "still open");
    close(fd);
    for (int i = 0; i < 300 && atomic_load(&hang_closed) == before; i++) usleep(10000);
    CHECK(atomic_load(&hang_closed) == before + 1, "on_close after the paused peer left");
}

/* A peer that reads nothing but keeps sending a byte now and then: its send timer is not
 * renewed by what it sends, so the connection closes (the stream then sees -EPIPE). */
static void test_send_timeout_trickle(void)
{
    int before = atomic_load(&flood_pipe), fd = http_dial(port), buf = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    const char *req = "GET /flood HTTP/1.1\r\nHost: t\r\n\r\n";
    CHECK(http_send_all(fd, req, strlen(req)) == 0, "send /flood");
    for (int i = 0; i < 40 && atomic_load(&flood_pipe) == before; i++) {
        if (send(fd, "x", 1, MSG_NOSIGNAL) != 1) break;
        usleep(100000);
    }
    CHECK(atomic_load(&flood_pipe) == before + 1, "closed by the send timeout despite the trickle");
    close(fd);
}

static void test_backpressure(void)
{
    int fd = http_dial(port), buf = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    const char *req = "GET /flood HTTP/1.1\r\nHost: t\r\n\r\n";
    CHECK(http_send_all(fd, req, strlen(req)) == 0, "send /flood");
    for (int i = 0; i < 500 && atomic_load(&flood_again) == 0; i++) usleep(10000);
    CHECK(atomic_load(&flood_again) == 1, "a reader that does not read: -EAGAIN");
    char sink[65536];
    http_recv_n(fd, sink, sizeof sink); /* some progress, then leave */
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    for (int i = 0; i < 500 && atomic_load(&flood_pipe) == 0; i++) usleep(10000);
    CHECK(atomic_load(&flood_pipe) == 1, "the reader left: -EPIPE");
}

int main(int argc, char **argv)
{
    im_server_opts o = {0};
    pthread_t workers[3];
    /* options out of range are refused */
    o.batch_wait_us = -1;
    CHECK(!im_server_new(&o) && errno == EINVAL, "batch_wait_us -1 accepted");
    o.batch_wait_us = 1000001;
    CHECK(!im_server_new(&o) && errno == EINVAL, "batch_wait_us 1000001 accepted");
    o.batch_wait_us = argc > 1 && strcmp(argv[1], "batched") == 0 ? 100 : 0;
    o.port = -1;
    o.loops = 2;
    o.no_signals = 1;
    o.sq_entries = 8;        /* the submission queue fills up all the time */
    o.recv_buffers = 8;      /* receive buffers run out: ENOBUFS */
    o.recv_buffer_size = 256;
    o.max_output_bytes = 256 * 1024;
    o.shutdown_timeout_ms = 2000;
    o.send_timeout_ms = 1000;
    im_log_set_level(IM_LOG_WARN);
    im_server *s = im_server_new(&o);
    im_server_route(s, "GET", "/plaintext", plaintext, NULL);
    im_server_route(s, "GET", "/work", do_work, NULL);
    im_server_route(s, "GET", "/hang", hang, NULL);
    im_server_route(s, "GET", "/flood", flood_start, NULL);
    int rc = im_server_start(s);
    if (rc == -EPERM || rc == -ENOSYS) {
        fprintf(stderr, "io_uring unavailable: skipped\n");
        return 77;
    }
    CHECK(rc == 0, "start: %d", rc);
    if (o.batch_wait_us && !s->loops[0]->batch_us) { /* the kernel cannot: not a batched pass */
        printf("SKIP: batch_wait_us is not on here (io_uring MIN_TIMEOUT, Linux 6.12+)\n");
        im_server_stop(s);
        im_server_wait(s);
        im_server_free(s);
        return 77;
    }
    port = im_server_port(s);
    for (int i = 0; i < 3; i++) pthread_create(&workers[i], NULL, worker, NULL);

    test_many_clients();
    test_peer_leaves_deferred();
    test_paused_peer_leaves();
    test_backpressure();
    test_send_timeout_trickle();

    im_server_stop(s);
    CHECK(im_server_wait(s) == 0, "wait");
    pthread_mutex_lock(&work_mu);
    work_stop = 1;
    pthread_cond_broadcast(&work_cv);
    pthread_mutex_unlock(&work_mu);
    for (int i = 0; i < 3; i++) pthread_join(workers[i], NULL);
    int fd = http_dial(port);
    CHECK(fd < 0, "nothing listens after stop");
    if (fd >= 0) close(fd);
    im_server_free(s);
    return check_exit("server");
}
