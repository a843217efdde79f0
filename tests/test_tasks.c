/* test_tasks.c — a stress of the task machinery on a real server in process (run under TSan
 * in CI): client threads submit 10,000 tasks across modes and priorities, sync and async, and
 * cancel some while they are queued or running; at the end every task that was accepted
 * (a 202, or a sync answer) is in a terminal state, counted and checked id by id against the
 * store's own list. Also the loop's timer heap, in order and with stops, on the fake loop. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "support/check.h"
#include "support/fake_loop.h"
#include "support/http_client.h"

#include "modes.service.h"

static int port;

void modes_block(void); /* the modes module's /m/block, not called here */
void modes_block(void) {}

/* ---- the timer heap (loop.c), driven on a fake loop ---- */

static int fired[64], nfired;
static im__ltimer timers[64];
static void on_timer(im__ltimer *t) { fired[nfired++] = (int)(t - timers); }

static void test_timer_heap(void)
{
    im_server_opts o = {0};
    im_server *s = im_server_new(&o);
    im_loop L;
    if (fake_loop_init(&L, s)) {
        im_server_free(s);
        return;
    }
    /* 64 timers at pseudo-random delays; every third stopped, some restarted */
    uint64_t due[64];
    L.clock_ms = 0;
    for (int i = 0; i < 64; i++) {
        im__ltimer_init(&timers[i], on_timer);
        due[i] = (uint64_t)((i * 7919) % 1000) + 1;
        CHECK(im__ltimer_start(&L, &timers[i], due[i]) == 0, "start %d", i);
    }
    for (int i = 0; i < 64; i += 3) im__ltimer_stop(&L, &timers[i]);
    for (int i = 1; i < 64; i += 9) {
        due[i] = 2000 + (uint64_t)i;
        im__ltimer_start(&L, &timers[i], due[i]); /* again, later */
    }
    for (uint64_t t = 0; t <= 2100; t += 7) {
        L.clock_ms = t;
        L.now_ms = (uint32_t)t;
        im__timers(&L);
    }
    int want = 0;
    for (int i = 0; i < 64; i++) want += i % 3 != 0;
    CHECK(nfired == want, "%d of %d timers fired", nfired, want);
    for (int k = 1; k < nfired; k++)
        CHECK(due[fired[k - 1]] <= due[fired[k]], "timer %d (%llu) before %d (%llu)", fired[k - 1],
              (unsigned long long)due[fired[k - 1]], fired[k], (unsigned long long)due[fired[k]]);
    for (int k = 0; k < nfired; k++) CHECK(fired[k] % 3 != 0, "stopped timer %d fired", fired[k]);
    CHECK(L.nheap == 0, "heap empty: %u", L.nheap);
    fake_loop_free(&L);
    im_server_free(s);
}

/* ---- the stress ---- */

#define THREADS 4
#define PER_THREAD 2500

typedef struct client {
    int id;
    char (*ids)[33];    /* ids of accepted async tasks */
    size_t nids;
    size_t sync_ok, sync_ended, refused, cancels;
} client;

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

static int id_of(const char *body, char out[33])
{
    const char *p = body ? strstr(body, "\"task_id\":\"") : NULL;
    if (!p) return -1;
    memcpy(out, p + 11, 32);
    out[32] = 0;
    return 0;
}

static void *stress_client(void *arg)
{
    client *cl = arg;
    unsigned seed = (unsigned)cl->id * 2654435761u + 1;
    static const char *const pools[] = {"/m/pool/0", "/m/pool/8", "/m/pool/10", "/m/pool/31"};
    http_conn *c = calloc(1, sizeof *c);
    c->fd = http_dial(port);
    cl->ids = calloc(PER_THREAD, sizeof *cl->ids);
    for (int i = 0; i < PER_THREAD && c->fd >= 0; i++) {
        unsigned k = rnd(&seed) % 10;
        char body[64];
        const char *path;
        int async = k < 6;
        if (k < 3) {
            path = pools[rnd(&seed) % 4];
            snprintf(body, sizeof body, "{\"v\":%d}", i);
        } else if (k < 5) {
            path = "/m/serial/31";
            snprintf(body, sizeof body, "{\"v\":%d}", i);
        } else {
            path = "/m/nap";
            snprintf(body, sizeof body, "{\"ms\":%u}", rnd(&seed) % 3);
        }
        http_resp r;
        int st = http_req(c, "POST", path, body, async ? "Prefer: respond-async\r\n" : NULL, &r);
        if (st == 202 && id_of(r.body, cl->ids[cl->nids]) == 0) {
            char *tid = cl->ids[cl->nids++];
            if (rnd(&seed) % 10 == 0) { /* cancel at once: it is queued or running */
                char target[64];
                http_resp d;
                snprintf(target, sizeof target, "/tasks/%s", tid);
                int ds = http_req(c, "DELETE", target, NULL, NULL, &d);
                CHECK(ds == 200 || ds == 409, "DELETE %s: %d %s", tid, ds, d.body ? d.body : "");
                cl->cancels++;
                http_free(&d);
            }
        } else if (!async && st == 200) {
            cl->sync_ok++;
        } else if (!async && (st == 409 || st == 500 || st == 504)) {
            cl->sync_ended++;
        } else if (st == 429) {
            cl->refused++;
        } else {
            CHECK(0, "%s %s: %d %s", path, body, st, r.body ? r.body : "");
            http_free(&r);
            break;
        }
        http_free(&r);
    }
    /* every async task ends */
    for (size_t i = 0; i < cl->nids && c->fd >= 0; i++) {
        char target[64];
        snprintf(target, sizeof target, "/tasks/%s", cl->ids[i]);
        for (int tries = 0;; tries++) {
            http_resp r;
            int st = http_req(c, "GET", target, NULL, NULL, &r);
            int terminal = st == 200 && r.body &&
                           (strstr(r.body, "\"state\":\"SUCCEEDED\"") ||
                            strstr(r.body, "\"state\":\"CANCELLED\"") ||
                            strstr(r.body, "\"state\":\"FAILED\"") || strstr(r.body, "\"state\":\"TIMEOUT\""));
            CHECK(st == 200, "GET %s: %d", target, st);
            http_free(&r);
            if (terminal || st != 200) break;
            if (tries > 20000) {
                CHECK(0, "%s never ends", target);
                break;
            }
            usleep(1000);
        }
    }
    if (c->fd >= 0) close(c->fd);
    free(c);
    return NULL;
}

static int cmp_id(const void *a, const void *b) { return memcmp(a, b, 33); }

/* The store's own list, every page: the ids of all tasks, and how many are not terminal. */
static size_t store_ids(char (**out)[33], size_t *unfinished)
{
    size_t n = 0, cap = 16384;
    char cursor[32] = "";
    *out = malloc(cap * 33);
    *unfinished = 0;
    http_conn *c = calloc(1, sizeof *c);
    c->fd = http_dial(port);
    for (;;) {
        char target[96];
        http_resp r;
        snprintf(target, sizeof target, "/tasks?limit=1000%s%s", cursor[0] ? "&cursor=" : "", cursor);
        if (http_req(c, "GET", target, NULL, NULL, &r) != 200) {
            CHECK(0, "GET %s", target);
            http_free(&r);
            break;
        }
        for (const char *p = r.body; (p = strstr(p, "{\"id\":\"")); p += 7) {
            if (n == cap) *out = realloc(*out, (cap *= 2) * 33);
            memcpy((*out)[n], p + 7, 32);
            (*out)[n++][32] = 0;
            const char *st = strstr(p, "\"state\":\"");
            if (st && (!strncmp(st + 9, "QUEUED", 6) || !strncmp(st + 9, "RUNNING", 7))) (*unfinished)++;
        }
        const char *nc = strstr(r.body, "\"next_cursor\":\"");
        if (!nc) {
            http_free(&r);
            break;
        }
        size_t k = strcspn(nc + 15, "\"");
        snprintf(cursor, sizeof cursor, "%.*s", (int)k, nc + 15);
        http_free(&r);
    }
    close(c->fd);
    free(c);
    return n;
}

static void test_stress(void)
{
    pthread_t th[THREADS];
    client cl[THREADS];
    memset(cl, 0, sizeof cl);
    for (int i = 0; i < THREADS; i++) {
        cl[i].id = i;
        pthread_create(&th[i], NULL, stress_client, &cl[i]);
    }
    size_t accepted_async = 0, sync = 0, refused = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        accepted_async += cl[i].nids;
        sync += cl[i].sync_ok + cl[i].sync_ended;
        refused += cl[i].refused;
    }
    CHECK(accepted_async + sync + refused == THREADS * PER_THREAD, "%zu + %zu + %zu calls",
          accepted_async, sync, refused);
    /* accepted = terminal, by count and by id: the store holds exactly the accepted tasks
     * (sync ones included: each is a task), none unfinished */
    char(*all)[33];
    size_t unfinished, n = store_ids(&all, &unfinished);
    CHECK(n == accepted_async + sync, "the store lists %zu tasks for %zu accepted", n,
          accepted_async + sync);
    CHECK(unfinished == 0, "%zu tasks not terminal", unfinished);
    qsort(all, n, 33, cmp_id);
    for (size_t i = 1; i < n; i++) CHECK(memcmp(all[i - 1], all[i], 33), "id %s twice", all[i]);
    for (int t = 0; t < THREADS; t++)
        for (size_t i = 0; i < cl[t].nids; i++)
            CHECK(bsearch(cl[t].ids[i], all, n, 33, cmp_id), "task %s accepted, not in the store",
                  cl[t].ids[i]);
    for (int t = 0; t < THREADS; t++) free(cl[t].ids);
    free(all);
    printf("stress: %zu async + %zu sync tasks, %zu refused\n", accepted_async, sync, refused);
}

int main(void)
{
    test_timer_heap();
    im_server_opts o = {0};
    o.port = -1;
    o.loops = 2;
    o.workers = 3;
    o.no_signals = 1;
    im_log_set_level(IM_LOG_WARN);
    im_server *s = im_server_new(&o);
    CHECK(im_register_modes(s) == 0, "register the modes module");
    int rc = im_server_start(s);
    if (rc == -EPERM || rc == -ENOSYS) {
        fprintf(stderr, "io_uring unavailable: skipped\n");
        return 77;
    }
    CHECK(rc == 0, "start: %d", rc);
    port = im_server_port(s);
    test_stress();
    im_server_stop(s);
    im_server_wait(s);
    im_server_free(s);
    return check_exit("tasks");
}
