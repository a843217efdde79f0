/* test_bus.c — the event bus: glob patterns, order per publisher, callbacks on the bus thread,
 * a slow subscriber that drops (counted) while publishers never wait, im_off, flush; and
 * across processes through the hub: 1000 pings answered by a second process, and the hub
 * ending when its parent is killed with SIGKILL. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "support/check.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct seen {
    pthread_mutex_t mu;
    int n;
    long last;      /* the payload's number: must grow by one */
    int out_of_order;
    int wrong_thread;
    char topics[8][32];
} seen;

static void on_count(const char *topic, const void *payload, size_t len, void *arg)
{
    seen *s = arg;
    char name[16];
    pthread_getname_np(pthread_self(), name, sizeof name);
    pthread_mutex_lock(&s->mu);
    if (strcmp(name, "im-bus") != 0) s->wrong_thread++;
    long v = len ? strtol(payload, NULL, 10) : -1;
    if (s->n && v != s->last + 1) s->out_of_order++;
    s->last = v;
    if (s->n < 8) snprintf(s->topics[s->n], sizeof s->topics[0], "%s", topic);
    s->n++;
    pthread_mutex_unlock(&s->mu);
}

static void on_slow(const char *topic, const void *payload, size_t len, void *arg)
{
    (void)topic, (void)payload, (void)len;
    atomic_int *n = arg;
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    atomic_fetch_add(n, 1);
}

static void on_sleepy(const char *topic, const void *payload, size_t len, void *arg)
{
    (void)topic, (void)payload, (void)len;
    atomic_int *state = arg;
    atomic_store(state, 1);
    nanosleep(&(struct timespec){0, 200000000}, NULL);
    atomic_store(state, 2);
}

/* im_off from another thread returns after the subscriber's running callback ended */
static void test_off_waits(void)
{
    im_bus *b = im_bus_new(NULL);
    atomic_int state = 0;
    int id = im_on(b, "s", on_sleepy, &state);
    im_notify(b, "s", "", 0);
    while (atomic_load(&state) == 0) nanosleep(&(struct timespec){0, 1000000}, NULL);
    im_off(b, id);
    CHECK(atomic_load(&state) == 2, "im_off returned while the callback still ran");
    im_bus_free(b);
}

static void test_in_process(void)
{
    im_bus_opts o = {.queue_capacity = 64};
    im_bus *b = im_bus_new(&o);
    CHECK(b, "bus");
    seen cfg = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, {{0}}};
    seen all = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, {{0}}};
    int a = im_on(b, "config.*", on_count, &cfg);
    int z = im_on(b, "*", on_count, &all);
    CHECK(a > 0 && z > 0 && a != z, "ids");
    CHECK(im_notify(b, "config.server.port", "0", 1) == 2, "two subscribers match");
    CHECK(im_notify(b, "task.done", "1", 1) == 1, "one matches");
    CHECK(im_notify(b, "configx", "x", 1) == 1, "config.* needs the dot");
    CHECK(im_notify(b, "", "x", 1) == -EINVAL, "empty topic");
    CHECK(im_bus_flush(b, 5000) == 0, "flush");
    CHECK(cfg.n == 1 && strcmp(cfg.topics[0], "config.server.port") == 0, "%d %s", cfg.n,
          cfg.topics[0]);
    CHECK(all.n == 3, "all %d", all.n);
    CHECK(!cfg.wrong_thread && !all.wrong_thread, "callbacks run on the bus thread");
    im_off(b, z);

    /* order per publisher: 60 events (within the queue) arrive in the order sent */
    cfg.n = 0;
    for (int i = 0; i < 60; i++) {
        char p[16];
        int n = snprintf(p, sizeof p, "%d", i);
        im_notify(b, "config.x", p, (size_t)n);
    }
    CHECK(im_bus_flush(b, 5000) == 0, "flush");
    CHECK(cfg.n == 60 && !cfg.out_of_order, "order: %d events, %d out of order", cfg.n,
          cfg.out_of_order);
    CHECK(all.n == 3, "no call after im_off (%d)", all.n);

    /* a slow subscriber: its queue fills, it drops and counts, the publisher never waits */
    atomic_int slow_n = 0;
    int sid = im_on(b, "load.*", on_slow, &slow_n);
    double t0 = now_s(), worst = 0;
    for (int i = 0; i < 5000; i++) {
        double t1 = now_s();
        im_notify(b, "load.tick", "x", 1);
        double d = now_s() - t1;
        if (d > worst) worst = d;
    }
    double took = now_s() - t0;
    CHECK(took < 1.0, "5000 notifies to a 2 ms subscriber took %.3f s: the publisher waited", took);
    CHECK(worst < 0.05, "one notify took %.3f s", worst);
    uint64_t dropped = im_bus_dropped(b, sid);
    CHECK(dropped >= 5000 - 64 - 600 && dropped < 5000, "dropped %llu", (unsigned long long)dropped);
    CHECK(im_bus_flush(b, 10000) == 0, "flush the slow one");
    CHECK((uint64_t)atomic_load(&slow_n) + dropped == 5000, "delivered %d + dropped %llu",
          atomic_load(&slow_n), (unsigned long long)dropped);
    im_bus_free(b);
}

/* ---- across processes */

static im_bus *child_bus;
static void on_ping(const char *topic, const void *payload, size_t len, void *arg)
{
    (void)topic, (void)arg;
    im_notify(child_bus, "pong", payload, len);
}

static void on_pong(const char *topic, const void *payload, size_t len, void *arg)
{
    (void)topic, (void)payload, (void)len;
    atomic_fetch_add((atomic_int *)arg, 1);
}

static void test_across_processes(void)
{
    unsetenv("IMMERSIVE_HUB");
    CHECK(im_hub_start() == 0, "hub");
    const char *addr = getenv("IMMERSIVE_HUB");
    CHECK(addr && addr[0] == '@', "address %s", addr ? addr : "(none)");
    pid_t kid = fork(); /* before this process has a thread: the child may make its own */
    if (kid == 0) {
        child_bus = im_bus_new(NULL);
        if (!child_bus || im_on(child_bus, "ping", on_ping, NULL) < 0 ||
            im_bus_join(child_bus, NULL, "t") != 0)
            _exit(3);
        pause();
        _exit(0);
    }
    /* the child has joined once it answers: pings go until a pong comes */
    im_bus *b = im_bus_new(NULL);
    atomic_int pongs = 0;
    im_on(b, "pong", on_pong, &pongs);
    CHECK(im_bus_join(b, NULL, "t") == 0, "join");
    im_bus *other = im_bus_new(NULL); /* another group: hears nothing */
    atomic_int stray = 0;
    im_on(other, "*", on_pong, &stray);
    CHECK(im_bus_join(other, NULL, "elsewhere") == 0, "join another group");
    double t0 = now_s();
    while (atomic_load(&pongs) == 0 && now_s() - t0 < 5) {
        im_notify(b, "ping", "0", 1);
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    CHECK(atomic_load(&pongs) > 0, "the child answers");
    int base = atomic_load(&pongs);
    struct timespec ts = {0, 100000000};
    nanosleep(&ts, NULL);
    base = atomic_load(&pongs);
    t0 = now_s();
    for (int i = 0; i < 1000; i++) {
        char p[16];
        int n = snprintf(p, sizeof p, "%d", i);
        im_notify(b, "ping", p, (size_t)n);
        if (i % 100 == 99) nanosleep(&(struct timespec){0, 2000000}, NULL); /* sockets breathe */
    }
    while (atomic_load(&pongs) < base + 1000 && now_s() - t0 < 10) nanosleep(&ts, NULL);
    CHECK(atomic_load(&pongs) == base + 1000, "1000 pings, %d pongs", atomic_load(&pongs) - base);
    CHECK(atomic_load(&stray) == 0, "another group heard %d", atomic_load(&stray));
    kill(kid, SIGKILL);
    waitpid(kid, NULL, 0);
    im_bus_free(other);
    im_bus_free(b);
}

/* The hub ends when its parent is killed with SIGKILL, and ignores SIGINT. */
static void test_hub_ends_with_parent(void)
{
    int fds[2];
    if (pipe(fds)) return;
    pid_t parent = fork();
    if (parent == 0) {
        close(fds[0]);
        unsetenv("IMMERSIVE_HUB");
        if (im_hub_start()) _exit(2);
        /* the hub is our only child: find it */
        char path[64], buf[256];
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)getpid(), (int)getpid());
        FILE *f = fopen(path, "r");
        int hub = 0;
        if (f && fgets(buf, sizeof buf, f)) hub = atoi(buf);
        if (f) fclose(f);
        if (write(fds[1], &hub, sizeof hub) != sizeof hub) _exit(3);
        pause();
        _exit(0);
    }
    close(fds[1]);
    int hub = 0;
    CHECK(read(fds[0], &hub, sizeof hub) == sizeof hub && hub > 0, "hub pid");
    close(fds[0]);
    if (hub <= 0) return;
    kill(hub, SIGINT);
    nanosleep(&(struct timespec){0, 100000000}, NULL);
    CHECK(kill(hub, 0) == 0, "the hub ignores SIGINT");
    kill(parent, SIGKILL);
    waitpid(parent, NULL, 0);
    double t0 = now_s();
    int gone = 0;
    while (now_s() - t0 < 3) {
        char path[64], state = 0;
        snprintf(path, sizeof path, "/proc/%d/stat", hub);
        FILE *f = fopen(path, "r");
        if (!f) { gone = 1; break; }
        if (fscanf(f, "%*d %*s %c", &state) == 1 && state == 'Z') gone = 1; /* dead, unreaped */
        fclose(f);
        if (gone) break;
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    }
    CHECK(gone, "the hub outlived its parent's SIGKILL");
}

int main(void)
{
    im_log_set_level(IM_LOG_ERROR);
    test_hub_ends_with_parent(); /* forks first, while this process has no thread */
    test_across_processes();
    test_in_process();
    test_off_waits();
    return check_exit("test_bus");
}
