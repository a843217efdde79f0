/* bench_queue.c — throughput of immersive's MPMC priority queue against a mutex + condition
 * variable binary heap and a plain bounded MPMC ring (the same Vyukov ring the queue uses per
 * level, without priorities), for 1, 2 and 4 producers and as many consumers, with one
 * priority or mixed ones; then the executor's job round trip: submit from a real event loop,
 * run an empty job on a worker, get the completion back on the loop.
 *
 * One JSON object per line: {"impl","mix","prio","mops",...} where an operation is one item
 * through the queue (one push and its pop); and {"bench":"job_roundtrip",...}. Each figure is
 * the median of --rounds runs. Producers retry a full queue with sched_yield(); consumers of
 * "im" and "ring" retry an empty one the same way, "im_blocking" sleeps in im_queue_pop_wait,
 * "mutex_heap" sleeps on its condition variable. Each queue has room for every item of a run
 * (--capacity; im: per level), so what is measured is pushing and popping under contention,
 * not a producer that outruns its consumers: with 4 threads on 2 cores a producer fills any
 * bounded queue within its time slice, and the run then measures sched_yield() storms (with
 * per-level bounds and strict priority, the least urgent levels stay full and a producer that
 * picks one of them retries: each level has its own bound so that urgent work is never
 * refused for lack of room). With --capacity N the queues are bounded at N; a producer that
 * finds its priority full then retries at another random one. Threads are pinned
 * round-robin over the cores (producer i and consumer i on core i mod cores), which keeps the
 * scheduling of oversubscribed mixes comparable from run to run.
 * usage: bench_queue [--items N] [--rounds R] [--capacity N] [--mix 1|2|4] [--roundtrip 0|1]
 * Never run by ctest. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the mutex + condvar binary heap: min on (priority, arrival) ---- */

typedef struct heap_item {
    uint64_t key; /* prio << 48 | arrival: FIFO within a priority */
    void *item;
} heap_item;

typedef struct mheap {
    pthread_mutex_t mu;
    pthread_cond_t nonempty;
    heap_item *a;
    size_t n, cap;
    uint64_t arrivals;
    int sleepers;
} mheap;

static void mheap_init(mheap *h, size_t cap)
{
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->nonempty, NULL);
    h->a = malloc(cap * sizeof *h->a);
    h->n = 0;
    h->cap = cap;
    h->arrivals = 0;
    h->sleepers = 0;
}

static int mheap_push(mheap *h, unsigned prio, void *item)
{
    pthread_mutex_lock(&h->mu);
    if (h->n == h->cap) {
        pthread_mutex_unlock(&h->mu);
        return -EAGAIN;
    }
    size_t i = h->n++;
    heap_item x = {(uint64_t)prio << 48 | h->arrivals++, item};
    while (i && h->a[(i - 1) / 2].key > x.key) {
        h->a[i] = h->a[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->a[i] = x;
    if (h->sleepers) pthread_cond_signal(&h->nonempty);
    pthread_mutex_unlock(&h->mu);
    return 0;
}

static void *mheap_pop(mheap *h)
{
    pthread_mutex_lock(&h->mu);
    while (h->n == 0) {
        h->sleepers++;
        pthread_cond_wait(&h->nonempty, &h->mu);
        h->sleepers--;
    }
    void *top = h->a[0].item;
    heap_item x = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && h->a[c + 1].key < h->a[c].key) c++;
        if (h->a[c].key >= x.key) break;
        h->a[i] = h->a[c];
        i = c;
    }
    h->a[i] = x;
    pthread_mutex_unlock(&h->mu);
    return top;
}

/* ---- the run ---- */

enum { IMPL_IM, IMPL_IM_BLOCKING, IMPL_MUTEX_HEAP, IMPL_RING };
static const char *impl_names[] = {"im", "im_blocking", "mutex_heap", "ring"};

typedef struct run {
    int impl, producers, consumers, mixed;
    long per_producer, total, cap;
    im_queue *q;
    mheap h;
    im__ring ring;
    atomic_long popped;
    atomic_int go;
} run;

static void pin(pthread_t t, int i)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((int)(i % (cores > 0 ? cores : 1)), &set);
    pthread_setaffinity_np(t, sizeof set, &set);
}

static void *producer(void *arg)
{
    run *r = arg;
    unsigned seed = (unsigned)(uintptr_t)&seed;
    while (!atomic_load(&r->go)) {
    }
    for (long i = 1; i <= r->per_producer; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned prio = r->mixed ? (seed >> 16) % 8 : 0;
        void *item = (void *)(uintptr_t)i;
        for (;;) {
            int rc;
            if (r->impl == IMPL_RING) rc = im__ring_push(&r->ring, item);
            else if (r->impl == IMPL_MUTEX_HEAP) rc = mheap_push(&r->h, prio, item);
            else rc = im_queue_push(r->q, prio, item);
            if (rc == 0) break;
            sched_yield(); /* full */
            if (r->mixed) { /* see the top: another level, not the starved one again */
                seed = seed * 1103515245u + 12345u;
                prio = (seed >> 16) % 8;
            }
        }
    }
    return NULL;
}

static void *consumer(void *arg)
{
    run *r = arg;
    void *item;
    while (!atomic_load(&r->go)) {
    }
    for (;;) {
        if (r->impl == IMPL_MUTEX_HEAP) {
            item = mheap_pop(&r->h);
            if (!item) break; /* the stop marker */
        } else if (r->impl == IMPL_IM_BLOCKING) {
            if (im_queue_pop_wait(r->q, &item, NULL, -1) != 0) break; /* closed */
        } else {
            int rc = r->impl == IMPL_RING ? im__ring_pop(&r->ring, &item)
                                          : im_queue_pop(r->q, &item, NULL);
            if (rc) {
                if (atomic_load_explicit(&r->popped, memory_order_relaxed) >= r->total) break;
                sched_yield(); /* empty */
                continue;
            }
        }
        if (atomic_fetch_add_explicit(&r->popped, 1, memory_order_relaxed) + 1 == r->total &&
            r->impl == IMPL_IM_BLOCKING)
            im_queue_close(r->q); /* the last item: wake the sleepers so they can leave */
    }
    return NULL;
}

static double run_once(int impl, int np, int nc, int mixed, long items, long cap)
{
    run r;
    pthread_t pt[8], ct[8];
    memset(&r, 0, sizeof r);
    r.impl = impl;
    r.producers = np;
    r.consumers = nc;
    r.mixed = mixed;
    r.per_producer = items / np;
    r.total = r.per_producer * np;
    r.cap = cap;
    if (impl == IMPL_RING) {
        im__ring_init(&r.ring, (size_t)r.cap);
    } else if (impl == IMPL_MUTEX_HEAP) {
        mheap_init(&r.h, (size_t)r.cap);
    } else {
        im_queue_opts o = {0};
        o.levels = 8;
        o.capacity = (unsigned)r.cap;
        r.q = im_queue_new(&o);
    }
    for (int i = 0; i < nc; i++) {
        pthread_create(&ct[i], NULL, consumer, &r);
        pin(ct[i], i);
    }
    for (int i = 0; i < np; i++) {
        pthread_create(&pt[i], NULL, producer, &r);
        pin(pt[i], i);
    }
    double t0 = now_s();
    atomic_store(&r.go, 1);
    for (int i = 0; i < np; i++) pthread_join(pt[i], NULL);
    if (impl == IMPL_MUTEX_HEAP) { /* one stop marker per consumer, after the items */
        while (atomic_load(&r.popped) < r.total) sched_yield();
        for (int i = 0; i < nc; i++) {
            pthread_mutex_lock(&r.h.mu);
            heap_item stop = {UINT64_MAX, NULL};
            r.h.a[r.h.n++] = stop; /* the largest key: at the bottom is fine */
            pthread_cond_signal(&r.h.nonempty);
            pthread_mutex_unlock(&r.h.mu);
        }
    }
    for (int i = 0; i < nc; i++) pthread_join(ct[i], NULL);
    double dt = now_s() - t0;
    if (atomic_load(&r.popped) != r.total) {
        fprintf(stderr, "bench_queue: %s lost items (%ld of %ld)\n", impl_names[impl],
                atomic_load(&r.popped), r.total);
        exit(1);
    }
    if (impl == IMPL_RING) free(r.ring.cells);
    else if (impl == IMPL_MUTEX_HEAP) free(r.h.a);
    else im_queue_free(r.q);
    return (double)r.total / dt / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- job round trip through an executor, from a real event loop ---- */

typedef struct rt_job {
    im_job job;
    double t0;
} rt_job;

static struct {
    im_executor *ex;
    long target, submitted, completed;
    int window;
    double *lat;
    double t_start, t_end;
    atomic_int finished;
} RT;

static void rt_run(im_job *j) { (void)j; }

static void rt_submit(rt_job *j)
{
    j->t0 = now_s();
    while (im_executor_submit_job(RT.ex, 0, &j->job) == -EAGAIN) {
    }
    RT.submitted++;
}

static void rt_done(im_job *jj, int status) /* on the loop */
{
    rt_job *j = (rt_job *)(void *)jj;
    (void)status;
    RT.lat[RT.completed++] = now_s() - j->t0;
    if (RT.submitted < RT.target) {
        rt_submit(j);
    } else {
        free(j);
        if (RT.completed == RT.target) {
            RT.t_end = now_s();
            atomic_store(&RT.finished, 1);
        }
    }
}

static void rt_start(void *arg) /* on the loop */
{
    (void)arg;
    RT.t_start = now_s();
    for (int i = 0; i < RT.window; i++) {
        rt_job *j = calloc(1, sizeof *j);
        j->job.run = rt_run;
        j->job.done = rt_done;
        rt_submit(j);
    }
}

static void roundtrip(im_server *s, int window, long jobs)
{
    memset(&RT, 0, sizeof RT);
    RT.ex = im_server_executor(s);
    RT.target = jobs;
    RT.window = window;
    RT.lat = malloc((size_t)jobs * sizeof *RT.lat);
    im_loop_call(s->loops[0], rt_start, NULL);
    while (!atomic_load(&RT.finished)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    double secs = RT.t_end - RT.t_start;
    qsort(RT.lat, (size_t)jobs, sizeof *RT.lat, cmp_double);
    printf("{\"bench\":\"job_roundtrip\",\"window\":%d,\"jobs\":%ld,\"jobs_per_s\":%.0f,"
           "\"p50_us\":%.1f,\"p99_us\":%.1f,\"workers\":%u}\n",
           window, jobs, (double)jobs / secs, RT.lat[jobs / 2] * 1e6,
           RT.lat[jobs * 99 / 100] * 1e6, im_executor_threads(RT.ex));
    fflush(stdout);
    free(RT.lat);
}

int main(int argc, char **argv)
{
    long items = 2000000, cap = 0;
    int rounds = 7, only_mix = 0, roundtrips = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--items") == 0) items = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--rounds") == 0) rounds = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--mix") == 0) only_mix = atoi(argv[i + 1]); /* 1, 2 or 4 */
        else if (strcmp(argv[i], "--roundtrip") == 0) roundtrips = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--capacity") == 0) cap = atol(argv[i + 1]);
    }
    if (cap <= 0) cap = items; /* room for every item: see the top of this file */
    long pow2 = 2;
    while (pow2 < cap) pow2 <<= 1; /* im__ring needs a power of two; im_queue rounds alike */
    cap = pow2;
    if (rounds < 1 || rounds > 16) rounds = 5;
    static const int mixes[][2] = {{1, 1}, {2, 2}, {4, 4}};
    for (int m = 0; m < 3; m++)
        for (int mixed = 0; mixed <= 1; mixed++) {
            if (only_mix && mixes[m][0] != only_mix) continue;
            double res[4][16];
            /* rounds interleaved over the implementations: noise hits all alike */
            for (int k = 0; k < rounds; k++)
                for (int impl = 0; impl < 4; impl++)
                    res[impl][k] = run_once(impl, mixes[m][0], mixes[m][1], mixed, items, cap);
            for (int impl = 0; impl < 4; impl++)
                printf("{\"impl\":\"%s\",\"mix\":\"%dp%dc\",\"prio\":\"%s\",\"mops\":%.2f,"
                       "\"items\":%ld,\"capacity\":%ld,\"rounds\":%d}\n",
                       impl_names[impl], mixes[m][0], mixes[m][1], mixed ? "mixed" : "single",
                       median(res[impl], rounds), items, cap, rounds);
            fflush(stdout);
        }

    im_server_opts o = {0};
    o.port = -1;
    o.loops = 1;
    o.workers = 1;
    o.no_signals = 1;
    im_log_set_level(IM_LOG_WARN);
    im_server *s = im_server_new(&o);
    if (roundtrips && im_server_start(s) == 0) {
        roundtrip(s, 1, 200000);
        roundtrip(s, 64, 1000000);
        im_server_stop(s);
        im_server_wait(s);
    }
    im_server_free(s);
    return 0;
}
