/* bench_bus.c — the event bus: events per second and delivery latency (p50, p99), within a
 * process and between two processes through the hub.
 *
 * Throughput: one publisher sends N events as fast as it can; the figure is what reached the
 * subscriber per second (the bus drops rather than block a publisher: drops are reported).
 * Latency: events at a steady rate (R per second), each stamped with CLOCK_MONOTONIC when
 * published; the subscriber reads the clock when its callback runs.
 *
 * usage: bench_bus [N] [RATE]   (defaults 1000000 events, 50000 per second for latency)
 * Never run by ctest: its figures depend on the machine. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef struct rec {
    _Atomic long n;
    uint64_t *lat;    /* latencies (ns), n of them */
    long cap;
    uint64_t first, last;
} rec;

static void on_event(const char *topic, const void *payload, size_t len, void *arg)
{
    (void)topic;
    rec *r = arg;
    uint64_t t = now_ns(), sent = 0;
    if (len >= sizeof sent) memcpy(&sent, payload, sizeof sent);
    long i = atomic_load_explicit(&r->n, memory_order_relaxed);
    if (i == 0) r->first = t;
    r->last = t;
    if (i < r->cap && sent) r->lat[i] = t - sent;
    atomic_store_explicit(&r->n, i + 1, memory_order_release);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void pace(uint64_t start, long i, long rate)
{
    uint64_t due = start + (uint64_t)((double)i * 1e9 / (double)rate);
    for (uint64_t t; (t = now_ns()) < due;) { /* sleep, not spin: 2 cores serve 3 threads */
        struct timespec ts = {0, (long)(due - t)};
        nanosleep(&ts, NULL);
    }
}

/* publishes n events (paced at rate, or as fast as possible when rate is 0) */
static void publish(im_bus *b, long n, long rate)
{
    char payload[64] = {0};
    uint64_t start = now_ns();
    for (long i = 0; i < n; i++) {
        if (rate) pace(start, i, rate);
        uint64_t t = rate ? now_ns() : 0; /* no stamp in the throughput run */
        memcpy(payload, &t, sizeof t);
        im_notify(b, "bench.event", payload, sizeof payload);
    }
}

static void report(const char *what, rec *r, long sent, uint64_t dropped, int latency)
{
    long n = atomic_load(&r->n);
    if (!latency) {
        double secs = (double)(r->last - r->first) / 1e9;
        printf("%-28s %9.0f events/s delivered (%ld of %ld, %llu dropped)\n", what,
               secs > 0 ? (double)n / secs : 0, n, sent, (unsigned long long)dropped);
        return;
    }
    long k = n < r->cap ? n : r->cap;
    qsort(r->lat, (size_t)k, sizeof *r->lat, cmp_u64);
    printf("%-28s p50 %6.1f us  p99 %6.1f us  max %7.1f us (%ld events)\n", what,
           k ? (double)r->lat[k / 2] / 1e3 : 0, k ? (double)r->lat[k * 99 / 100] / 1e3 : 0,
           k ? (double)r->lat[k - 1] / 1e3 : 0, k);
}

static void wait_count(rec *r, long want, double secs)
{
    uint64_t dl = now_ns() + (uint64_t)(secs * 1e9);
    while (atomic_load(&r->n) < want && now_ns() < dl) usleep(1000);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000, rate = argc > 2 ? atol(argv[2]) : 50000;
    long nlat = rate * 2; /* two seconds of paced events */
    im_log_set_level(IM_LOG_WARN);
    unsetenv("IMMERSIVE_HUB");
    if (im_hub_start()) return 1; /* before any thread: the hub is a fork */
    /* within the process */
    im_bus_opts o = {.queue_capacity = 1 << 16};
    im_bus *b = im_bus_new(&o);
    rec r = {0, calloc((size_t)n + 1, sizeof(uint64_t)), n, 0, 0};
    int id = im_on(b, "bench.*", on_event, &r);
    publish(b, n, 0);
    im_bus_flush(b, -1);
    report("in process, throughput", &r, n, im_bus_dropped(b, id), 0);
    atomic_store(&r.n, 0);
    publish(b, nlat, rate);
    im_bus_flush(b, -1);
    char what[64];
    snprintf(what, sizeof what, "in process, %ld/s", rate);
    report(what, &r, nlat, 0, 1);
    im_bus_free(b);
    free(r.lat);

    /* across two processes: this one publishes to the hub, a second one receives */
    for (int run = 0; run < 2; run++) {
        int p2[2];
        if (pipe(p2)) return 1;
        pid_t k = fork();
        if (k == 0) { /* the receiver: counts and measures, then reports on the pipe */
            close(p2[0]);
            im_bus_opts ko = {.queue_capacity = 1 << 16};
            im_bus *kb = im_bus_new(&ko);
            long want = run == 0 ? n : nlat;
            rec kr = {0, calloc((size_t)want + 1, sizeof(uint64_t)), want, 0, 0};
            im_on(kb, "bench.*", on_event, &kr);
            if (im_bus_join(kb, NULL, "bench2")) _exit(2);
            if (write(p2[1], "r", 1) != 1) _exit(3);
            wait_count(&kr, want, 30);
            usleep(300000); /* stragglers */
            long got = atomic_load(&kr.n);
            long k2 = got < kr.cap ? got : kr.cap;
            qsort(kr.lat, (size_t)k2, sizeof *kr.lat, cmp_u64);
            uint64_t out[5] = {(uint64_t)got, kr.last - kr.first, k2 ? kr.lat[k2 / 2] : 0,
                               k2 ? kr.lat[k2 * 99 / 100] : 0, k2 ? kr.lat[k2 - 1] : 0};
            if (write(p2[1], out, sizeof out) != sizeof out) _exit(4);
            _exit(0);
        }
        close(p2[1]);
        char c;
        if (read(p2[0], &c, 1) != 1) return 1;
        im_bus *pb = im_bus_new(NULL);
        if (im_bus_join(pb, NULL, "bench2")) return 1;
        usleep(100000); /* the hub has both members */
        long sent = run == 0 ? n : nlat;
        uint64_t t0 = now_ns();
        publish(pb, sent, run == 0 ? 0 : rate);
        uint64_t pub_ns = now_ns() - t0;
        uint64_t out[5];
        if (read(p2[0], out, sizeof out) != sizeof out) return 1;
        waitpid(k, NULL, 0);
        close(p2[0]);
        uint64_t hub_dropped = atomic_load(&pb->hub_dropped);
        if (run == 0) {
            double secs = (double)out[1] / 1e9;
            printf("%-28s %9.0f events/s delivered (%llu of %ld; %llu dropped at the socket; "
                   "publisher %.0f events/s)\n", "2 processes, throughput",
                   secs > 0 ? (double)out[0] / secs : 0, (unsigned long long)out[0], sent,
                   (unsigned long long)hub_dropped, (double)sent / ((double)pub_ns / 1e9));
        } else {
            snprintf(what, sizeof what, "2 processes, %ld/s", rate);
            printf("%-28s p50 %6.1f us  p99 %6.1f us  max %7.1f us (%llu events, %llu dropped)\n",
                   what, (double)out[2] / 1e3, (double)out[3] / 1e3, (double)out[4] / 1e3,
                   (unsigned long long)out[0], (unsigned long long)hub_dropped);
        }
        im_bus_free(pb);
    }
    return 0;
}
