/* test_modes.c — annotated endpoints on a real server in process, called over real sockets:
 * pool and serial endpoints at every priority level the generator accepts, many endpoint
 * tables added to one server (each freed once), and what a refused job is reported as. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "support/check.h"
#include "support/http_client.h"

#include "modes.service.h"

static int port;

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
    im_log_set_level(IM_LOG_WARN);
    im_server *s = im_server_new(&o);
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
    test_inline_defer_refused();
    test_many_tables();

    im_server_stop(s);
    im_server_wait(s);
    im_server_free(s);
    return check_exit("modes");
}
