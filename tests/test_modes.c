/* test_modes.c — annotated endpoints on a real server in process, called over real sockets:
 * pool and serial endpoints at every priority level the generator accepts, many endpoint
 * tables added to one server (each freed once), and what a refused job is reported as. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "support/check.h"
#include "support/http_client.h"

#include "modes.service.h"

static int port;
static im_server *srv;

/* ---- /m/block holds workers until the test lets them go ---- */

static pthread_mutex_t block_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t block_cv = PTHREAD_COND_INITIALIZER;
static int block_open, block_waiting;

void modes_block(void);
void modes_block(void)
{
    pthread_mutex_lock(&block_mu);
    block_waiting++;
    pthread_cond_broadcast(&block_cv);
    while (!block_open) pthread_cond_wait(&block_cv, &block_mu);
    block_waiting--;
    pthread_mutex_unlock(&block_mu);
}

static int wait_blocked(int n)
{
    struct timespec until;
    int ok;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&block_mu);
    while (block_waiting < n && pthread_cond_timedwait(&block_cv, &block_mu, &until) == 0) {
    }
    ok = block_waiting >= n;
    pthread_mutex_unlock(&block_mu);
    return ok;
}

static void set_blocking(int open)
{
    pthread_mutex_lock(&block_mu);
    block_open = open;
    pthread_cond_broadcast(&block_cv);
    pthread_mutex_unlock(&block_mu);
}

/* ---- requests on connections of their own, answers read later ---- */

static http_conn *post_async(const char *path, const char *json)
{
    char head[256];
    size_t bl = json ? strlen(json) : 0;
    http_conn *c = calloc(1, sizeof *c);
    int n = snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: t\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", path, bl);
    c->fd = http_dial(port);
    CHECK(c->fd >= 0 && http_send_all(c->fd, head, (size_t)n) == 0 &&
              http_send_all(c->fd, json ? json : "", bl) == 0,
          "send %s", path);
    return c;
}

static void read_and_close(http_conn *c, http_resp *r)
{
    http_read(c, r);
    close(c->fd);
    free(c);
}

/* {"points":[...]} with n points, each {"x":i,"y":2} or, when empty, {} (3 bytes a point) */
static char *points_body(size_t n, int empty)
{
    char *b = malloc(n * 24 + 32), *o = b;
    o += sprintf(o, "{\"points\":[");
    for (size_t i = 0; i < n; i++)
        o += empty ? sprintf(o, "%s{}", i ? "," : "") : sprintf(o, "%s{\"x\":%zu,\"y\":2}", i ? "," : "", i % 10);
    sprintf(o, "]}");
    return b;
}

/* 200 with {"result": v} from endpoint `path` given {"v": v}. */
static void expect_value(const char *path, long v)
{
    char body[64], want[64];
    http_resp r;
    snprintf(body, sizeof body, "{\"v\":%ld}", v);
    snprintf(want, sizeof want, "{\"result\":%ld}", v);
    http_call(port, "POST", path, body, &r);
    CHECK(r.status == 200 && r.body && strcmp(r.body, want) == 0, "%s: %d %s", path, r.status,
          r.body ? r.body : "");
    http_free(&r);
}

/* Every level the generator accepts (0..31) runs, on the pool and on the serial executor. */
static void test_priorities(void)
{
    expect_value("/m/pool/0", 1);
    expect_value("/m/pool/8", 2);
    expect_value("/m/pool/10", 3);
    expect_value("/m/pool/31", 4);
    expect_value("/m/serial/31", 5);
}

/* An inline call's request holds views into the receive buffer, and its im_call lives on
 * the loop's stack: deferring it would leave the bound arguments dangling, so it is refused
 * (the call is answered as usual). ASan builds run this too. */
static void test_inline_defer_refused(void)
{
    http_resp r;
    http_call(port, "POST", "/m/inline/defer", NULL, &r);
    CHECK(r.status == 200 && r.body && strcmp(r.body, "{\"defer\":-22,\"stream\":-22}") == 0,
          "inline defer: %d %s", r.status, r.body ? r.body : "");
    http_free(&r);
}

/* An endpoint without body arguments takes an empty JSON object (as FastAPI does); anything
 * else in the body is refused as extra input. */
static void test_empty_body_object(void)
{
    static const struct {
        const char *body;
        int status;
        const char *has;
    } cases[] = {{"{}", 200, "\"defer\""},
                 {" { } ", 200, "\"defer\""},
                 {"{\"x\":1}", 422, "extra_forbidden"},
                 {"[]", 422, "model_attributes_type"},
                 {"{", 422, "json_invalid"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        http_resp r;
        http_call(port, "POST", "/m/inline/defer", cases[i].body, &r);
        CHECK(r.status == cases[i].status && r.body && strstr(r.body, cases[i].has),
              "body %s: %d %s", cases[i].body, r.status, r.body ? r.body : "");
        http_free(&r);
    }
}

/* What binding one request may build is bounded by its size: an array of empty objects costs
 * 3 bytes of body a point but a 40-byte struct each (13x), past the default 8x: 413, before
 * anything is validated. Real points (14 bytes each) are bound. */
static void test_bind_memory_bound(void)
{
    char *empty = points_body(100000, 1), *full = points_body(60000, 0);
    static const char *const paths[] = {"/m/points/inline", "/m/points"};
    for (int i = 0; i < 2; i++) {
        http_resp r;
        http_call(port, "POST", paths[i], empty, &r);
        CHECK(r.status == 413 && r.body && strstr(r.body, "memory"), "%s, 100000 x {}: %d %.200s",
              paths[i], r.status, r.body ? r.body : "");
        http_free(&r);
        http_call(port, "POST", paths[i], full, &r);
        CHECK(r.status == 200 && r.body && strcmp(r.body, "{\"result\":60000}") == 0,
              "%s, 60000 points: %d %.200s", paths[i], r.status, r.body ? r.body : "");
        http_free(&r);
    }
    free(empty);
    free(full);
    /* the budget is for the whole request: two arrays of 20,000 empty points are each
     * under it (800 KB against 1 MB), together over it */
    char *one = points_body(20000, 1), *two = malloc(2 * strlen(one) + 16);
    one[strlen(one) - 1] = 0; /* {"points":[...]  without its closing brace */
    sprintf(two, "{\"a\":%s,\"b\":%s}", one + 10, one + 10);
    http_resp r;
    http_call(port, "POST", "/m/points/two", two, &r);
    CHECK(r.status == 413 && r.body && strstr(r.body, "memory"), "two arrays over the budget: %d %.200s",
          r.status, r.body ? r.body : "");
    http_free(&r);
    free(one);
    free(two);
}

/* The memory held by calls that wait for a worker is bounded over the whole server
 * (max_queued_bytes, 4 MiB here): with both workers held, calls of ~0.8 MB each are taken
 * until the budget is used, the rest refused at once with 429 and Retry-After; once the
 * workers go on, every call taken is answered and the budget is back to zero. */
static void test_queued_memory_budget(void)
{
    enum { N = 6 };
    http_conn *blocks[2], *calls[N];
    http_resp r;
    int refused = 0, answered[N] = {0};
    char *body = points_body(14000, 0);
    set_blocking(0);
    for (int i = 0; i < 2; i++) blocks[i] = post_async("/m/block", NULL);
    CHECK(wait_blocked(2), "both workers held");
    for (int i = 0; i < N; i++) calls[i] = post_async("/m/points", body);
    for (int i = 0; i < N; i++) {
        struct pollfd pf = {calls[i]->fd, POLLIN, 0};
        if (poll(&pf, 1, 500) != 1) continue; /* taken: it waits for a worker */
        http_read(calls[i], &r);
        char ra[16];
        CHECK(r.status == 429 && http_header(r.head, "Retry-After", ra, sizeof ra) == 0 &&
                  atoi(ra) >= 1 && strstr(r.body, "memory"),
              "call %d refused: %d %s", i, r.status, r.body ? r.body : "");
        http_free(&r);
        answered[i] = 1;
        refused++;
    }
    size_t held = atomic_load(&srv->queued_bytes);
    CHECK(refused >= 1 && refused <= N - 2, "%d of %d calls refused", refused, N);
    CHECK(held > 0 && held <= srv->o.max_queued_bytes, "%zu bytes held", held);
    set_blocking(1);
    for (int i = 0; i < N; i++) {
        if (answered[i]) {
            close(calls[i]->fd);
            free(calls[i]);
            continue;
        }
        read_and_close(calls[i], &r);
        CHECK(r.status == 200 && r.body && strcmp(r.body, "{\"result\":14000}") == 0,
              "call %d: %d %s", i, r.status, r.body ? r.body : "");
        http_free(&r);
    }
    for (int i = 0; i < 2; i++) {
        read_and_close(blocks[i], &r);
        CHECK(r.status == 200, "block %d: %d", i, r.status);
        http_free(&r);
    }
    for (int i = 0; i < 100 && atomic_load(&srv->queued_bytes); i++) usleep(10000);
    CHECK(atomic_load(&srv->queued_bytes) == 0, "%zu bytes still counted",
          (size_t)atomic_load(&srv->queued_bytes));
    free(body);
}

/* A server whose executors have fewer levels refuses, when they are added, the endpoints
 * it could not run (instead of failing every call of theirs). */
static void test_levels_option(void)
{
    im_server_opts o = {0};
    o.priority_levels = 4;
    im_server *s = im_server_new(&o);
    CHECK(s && im_register_modes(s) == -EINVAL, "priority 8 with 4 levels is refused");
    im_server_free(s);
    o.priority_levels = 33;
    CHECK(!im_server_new(&o), "33 levels");
}

/* A service whose /openapi.json is routed already cannot start, and frees cleanly (the
 * document it built is freed once: ASan checks). */
static void openapi_taken(im_ctx *c) { im_reply(c, 200, "text/plain", "mine", 4); }
static void test_openapi_route_taken(void)
{
    im_server_opts o = {0};
    o.port = -1;
    o.loops = 1;
    o.no_signals = 1;
    im_server *s = im_server_new(&o);
    CHECK(s && im_server_route(s, "GET", "/openapi.json", openapi_taken, NULL) == 0, "route");
    CHECK(im_register_modes(s) == 0, "register");
    CHECK(im_server_start(s) == -EEXIST, "start refused");
    im_server_free(s);
}

/* ---- many endpoint tables on one server ---- */

#define TABLES 40
static char table_paths[TABLES][24];
static im_endpoint tables[TABLES];

static int no_bind(im_bind *b, void *args)
{
    (void)b;
    (void)args;
    return 0;
}

static int answer_null(im_call *call, const void *args, void *out)
{
    (void)call;
    (void)args;
    (void)out;
    return 0;
}

static int add_tables(im_server *s)
{
    for (int i = 0; i < TABLES; i++) {
        snprintf(table_paths[i], sizeof table_paths[i], "/many/%d", i);
        tables[i].method = "GET";
        tables[i].path = table_paths[i];
        tables[i].name = "many";
        tables[i].module = "many";
        tables[i].bind = no_bind;
        tables[i].call = answer_null;
        int rc = im_server_add_endpoints(s, &tables[i], 1, NULL, 0);
        CHECK(rc == 0, "table %d added: %d", i, rc);
        if (rc) return rc;
    }
    return 0;
}

/* Each of the tables answers (one add per table: more adds than any fixed array holds). */
static void test_many_tables(void)
{
    for (int i = 0; i < TABLES; i += 13) {
        http_resp r;
        http_call(port, "GET", table_paths[i], NULL, &r);
        CHECK(r.status == 200 && r.body && strcmp(r.body, "null") == 0, "%s: %d %s",
              table_paths[i], r.status, r.body ? r.body : "");
        http_free(&r);
    }
}

int main(void)
{
    im_server_opts o = {0};
    o.port = -1;
    o.loops = 1;
    o.workers = 2;
    o.no_signals = 1;
    o.max_queued_bytes = 4 << 20;
    im_log_set_level(IM_LOG_WARN);
    im_server *s = srv = im_server_new(&o);
    CHECK(im_register_modes(s) == 0, "register the modes module");
    add_tables(s);
    int rc = im_server_start(s);
    if (rc == -EPERM || rc == -ENOSYS) {
        fprintf(stderr, "io_uring unavailable: skipped\n");
        return 77;
    }
    CHECK(rc == 0, "start: %d", rc);
    port = im_server_port(s);

    test_priorities();
    test_levels_option();
    test_openapi_route_taken();
    test_inline_defer_refused();
    test_empty_body_object();
    test_bind_memory_bound();
    test_queued_memory_budget();
    test_many_tables();

    im_server_stop(s);
    im_server_wait(s);
    im_server_free(s);
    return check_exit("modes");
}
