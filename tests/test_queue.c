/* test_queue.c — the MPMC priority queue. Single-threaded: order across and within levels,
 * full, empty, wrap-around many times, the aging rule, close. Concurrent: P producers x C
 * consumers in several mixes (oversubscribed too) with every item tagged (producer, sequence):
 * each item popped exactly once, FIFO per producer within a level, nothing lost at close;
 * blocking pops wake for every item and at close; timeouts time out. Run under TSan in CI. */
#define IMMERSIVE_IMPLEMENTATION
struct im_queue;
static void clear_hook(struct im_queue *q);
#define IM__QUEUE_CLEAR_HOOK(q) clear_hook(q)
#include "immersive.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "support/check.h"


/* items are small integers, stored as pointers (never 0) */
#define ITEM(v) ((void *)(uintptr_t)(v))
#define VAL(p) ((uintptr_t)(p))

static void test_order(void)
{
    im_queue_opts o = {0};
    o.levels = 8;
    o.capacity = 4;
    im_queue *q = im_queue_new(&o);
    void *it;
    unsigned prio;
    CHECK(im_queue_pop(q, &it, &prio) == -EAGAIN, "empty at start");
    /* pushed in scrambled order: popped by level, FIFO within a level */
    static const unsigned lv[] = {5, 1, 7, 1, 0, 5, 3, 0, 7, 1};
    for (unsigned i = 0; i < 10; i++) CHECK(im_queue_push(q, lv[i], ITEM(100 + i)) == 0, "push %u", i);
    CHECK(im_queue_size(q) == 10, "size 10: %zu", im_queue_size(q));
    static const unsigned want[] = {104, 107, 101, 103, 109, 106, 100, 105, 102, 108};
    for (unsigned i = 0; i < 10; i++) {
        CHECK(im_queue_pop(q, &it, &prio) == 0 && VAL(it) == want[i], "pop %u: %lu, want %u", i,
              (unsigned long)VAL(it), want[i]);
        CHECK(prio == lv[VAL(it) - 100], "level of %lu", (unsigned long)VAL(it));
    }
    CHECK(im_queue_pop(q, &it, &prio) == -EAGAIN, "empty again");
    /* full per level (capacity 4), others unaffected */
    for (unsigned i = 0; i < 4; i++) CHECK(im_queue_push(q, 2, ITEM(1 + i)) == 0, "fill %u", i);
    CHECK(im_queue_push(q, 2, ITEM(9)) == -EAGAIN, "level 2 full");
    CHECK(im_queue_push(q, 6, ITEM(9)) == 0, "level 6 still has room");
    CHECK(im_queue_push(q, 8, ITEM(9)) == -EINVAL, "no level 8");
    CHECK(im_queue_push(q, 0, NULL) == -EINVAL, "NULL item");
    for (unsigned i = 0; i < 5; i++) CHECK(im_queue_pop(q, &it, NULL) == 0, "drain %u", i);
    /* wrap around many times: FIFO holds across the ring's laps */
    uintptr_t next_in = 1, next_out = 1;
    for (unsigned round = 0; round < 100000; round++) {
        unsigned k = 1 + round % 4;
        for (unsigned i = 0; i < k; i++) CHECK(im_queue_push(q, 4, ITEM(next_in++)) == 0, "wrap push");
        for (unsigned i = 0; i < k; i++) {
            int rc = im_queue_pop(q, &it, NULL);
            if (rc || VAL(it) != next_out) {
                CHECK(0, "wrap: got %lu want %lu", (unsigned long)VAL(it), (unsigned long)next_out);
                round = 100000;
                break;
            }
            next_out++;
        }
    }
    /* close: pushes refused, what is inside still comes out, then -ESHUTDOWN */
    CHECK(im_queue_push(q, 3, ITEM(77)) == 0, "push before close");
    im_queue_close(q);
    CHECK(im_queue_push(q, 3, ITEM(78)) == -ESHUTDOWN, "push after close");
    CHECK(im_queue_pop_wait(q, &it, NULL, -1) == 0 && VAL(it) == 77, "drain after close");
    CHECK(im_queue_pop_wait(q, &it, NULL, -1) == -ESHUTDOWN, "closed and empty");
    CHECK(im_queue_pop_wait(q, &it, NULL, 0) == -ESHUTDOWN, "closed and empty, no wait");
    CHECK(im_queue_pop_wait(q, &it, NULL, 10) == -ESHUTDOWN, "closed and empty, 10 ms");
    im_queue_free(q);
}

static void test_aging(void)
{
    /* strict: with level 0 always refilled, level 7 starves */
    im_queue_opts o = {0};
    o.levels = 8;
    o.capacity = 64;
    im_queue *q = im_queue_new(&o);
    void *it;
    unsigned prio, got7 = 0;
    CHECK(im_queue_push(q, 7, ITEM(7)) == 0, "low");
    for (int i = 0; i < 1000; i++) {
        im_queue_push(q, 0, ITEM(1));
        im_queue_pop(q, &it, &prio);
        got7 += prio == 7;
    }
    CHECK(got7 == 0, "strict priority: level 7 never served under a stream at 0");
    im_queue_free(q);

    /* aging 4 with 8 levels: a non-empty level is served within 4 * 8 = 32 pops */
    o.aging = 4;
    q = im_queue_new(&o);
    for (int lvl = 1; lvl < 8; lvl++) CHECK(im_queue_push(q, (unsigned)lvl, ITEM(lvl)) == 0, "p");
    int served_at[8] = {0};
    for (int n = 1; n <= 64; n++) {
        im_queue_push(q, 0, ITEM(100)); /* the urgent stream never stops */
        CHECK(im_queue_pop(q, &it, &prio) == 0, "pop");
        if (prio && !served_at[prio]) served_at[prio] = n;
    }
    for (int lvl = 1; lvl < 8; lvl++)
        CHECK(served_at[lvl] > 0 && served_at[lvl] <= 32, "level %d served at pop %d (bound 32)",
              lvl, served_at[lvl]);
    im_queue_free(q);
}

/* ---- concurrent ---- */

typedef struct stress {
    im_queue *q;
    int producers, consumers;
    int per_producer;
    int levels_used; /* 1: one level, else spread */
    int blocking;    /* consumers use pop_wait */
    atomic_int done_producers;
    atomic_long popped;
    /* per producer and level: the last sequence seen, to check FIFO */
    atomic_long *last;           /* [producer * 64 + level] */
    atomic_uchar *seen;          /* [producer * per_producer + seq] */
} stress;

static stress S;

/* item = producer << 24 | sequence (sequence from 1) */
static void *producer(void *arg)
{
    int p = (int)(intptr_t)arg;
    unsigned seed = (unsigned)p * 2654435761u + 1;
    for (int i = 1; i <= S.per_producer; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned lvl = S.levels_used == 1 ? 3 : (seed >> 16) % (unsigned)S.levels_used;
        void *it = ITEM(((uintptr_t)p << 24) | (uintptr_t)i);
        while (im_queue_push(S.q, lvl, it) == -EAGAIN) sched_yield(); /* full: let consumers in */
    }
    atomic_fetch_add(&S.done_producers, 1);
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    long local_last[64 * 16];
    memset(local_last, 0, sizeof local_last);
    for (;;) {
        void *it;
        unsigned prio;
        int rc = S.blocking ? im_queue_pop_wait(S.q, &it, &prio, 2000) : im_queue_pop(S.q, &it, &prio);
        if (rc == -ESHUTDOWN) break;
        if (rc == -ETIMEDOUT) {
            CHECK(0, "a blocking pop slept 2 s with items still to come (lost wake-up?)");
            break;
        }
        if (rc == -EAGAIN) {
            if (atomic_load(&S.done_producers) == S.producers && im_queue_size(S.q) == 0 &&
                im_queue_pop(S.q, &it, &prio) == -EAGAIN)
                break;
            sched_yield();
            continue;
        }
        uintptr_t v = VAL(it);
        int p = (int)(v >> 24);
        long seq = (long)(v & 0xffffff);
        CHECK(p < S.producers && seq >= 1 && seq <= S.per_producer, "bad item %lx", (unsigned long)v);
        if (atomic_exchange(&S.seen[(size_t)p * (size_t)S.per_producer + (size_t)seq - 1], 1))
            CHECK(0, "item (%d, %ld) popped twice", p, seq);
        /* FIFO per producer within a level, as seen by this consumer and globally */
        long *ll = &local_last[p * 64 + (int)prio];
        CHECK(seq > *ll, "producer %d level %u: %ld after %ld (this consumer)", p, prio, seq, *ll);
        *ll = seq;
        long prev = atomic_load(&S.last[p * 64 + (int)prio]);
        while (prev < seq && !atomic_compare_exchange_weak(&S.last[p * 64 + (int)prio], &prev, seq)) {
        }
        atomic_fetch_add(&S.popped, 1);
    }
    return NULL;
}

static void run_stress(int producers, int consumers, int levels, int blocking, int per)
{
    pthread_t pt[16], ct[16];
    im_queue_opts o = {0};
    o.levels = 8;
    o.capacity = 256;
    memset(&S, 0, sizeof S);
    S.q = im_queue_new(&o);
    S.producers = producers;
    S.consumers = consumers;
    S.per_producer = per;
    S.levels_used = levels;
    S.blocking = blocking;
    S.last = calloc((size_t)producers * 64, sizeof *S.last);
    S.seen = calloc((size_t)producers * (size_t)per, 1);
    for (int i = 0; i < consumers; i++) pthread_create(&ct[i], NULL, consumer, NULL);
    for (int i = 0; i < producers; i++) pthread_create(&pt[i], NULL, producer, (void *)(intptr_t)i);
    for (int i = 0; i < producers; i++) pthread_join(pt[i], NULL);
    if (blocking) im_queue_close(S.q); /* sleepers wake; they drain the rest first */
    for (int i = 0; i < consumers; i++) pthread_join(ct[i], NULL);
    long total = (long)producers * per;
    CHECK(atomic_load(&S.popped) == total, "%dp%dc levels %d %s: popped %ld of %ld", producers,
          consumers, levels, blocking ? "blocking" : "spinning", atomic_load(&S.popped), total);
    for (long i = 0; i < total; i++)
        if (!S.seen[i]) {
            CHECK(0, "item (%ld, %ld) lost", i / per, i % per + 1);
            break;
        }
    free(S.last);
    free((void *)S.seen);
    im_queue_free(S.q);
}

static void test_timeout(void)
{
    im_queue *q = im_queue_new(NULL);
    void *it;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    CHECK(im_queue_pop_wait(q, &it, NULL, 150) == -ETIMEDOUT, "empty: times out");
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    CHECK(ms >= 140 && ms < 2000, "waited %.0f ms for a 150 ms timeout", ms);
    CHECK(im_queue_pop_wait(q, &it, NULL, 0) == -ETIMEDOUT, "zero timeout");
    im_queue_free(q);
}

static im_queue *closing_q;
static void *sleeper(void *arg)
{
    void *it;
    *(int *)arg = im_queue_pop_wait(closing_q, &it, NULL, 10000);
    return NULL;
}

static void test_close_wakes_all(void)
{
    pthread_t t[6];
    int rc[6];
    closing_q = im_queue_new(NULL);
    for (int i = 0; i < 6; i++) pthread_create(&t[i], NULL, sleeper, &rc[i]);
    struct timespec ts = {0, 100 * 1000000};
    nanosleep(&ts, NULL);
    im_queue_close(closing_q);
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        CHECK(rc[i] == -ESHUTDOWN, "sleeper %d: %d", i, rc[i]);
    }
    im_queue_free(closing_q);
}

/* Ping-pong with one item in flight: the producer pushes item i (level i % 3) only after the
 * consumer took i - 1, so every pop races with exactly one push, round after round. A push
 * that lands while a pop clears its level's bit must not be stranded (a pop must look at the
 * rings again after clearing, not before): the consumer waits at most 1 s for each item. */
static struct {
    im_queue *q;
    _Atomic long taken; /* items the consumer has taken */
    _Atomic int stop;
    long rounds;
} P;

static void *pingpong_producer(void *arg)
{
    (void)arg;
    for (long i = 0; i < P.rounds && !atomic_load(&P.stop); i++) {
        while (atomic_load_explicit(&P.taken, memory_order_acquire) < i)
            if (atomic_load(&P.stop)) return NULL;
        CHECK(im_queue_push(P.q, (unsigned)(i % 3), ITEM(i + 1)) == 0, "push %ld", i);
    }
    return NULL;
}

static void test_pingpong(long rounds)
{
    im_queue_opts o = {0};
    pthread_t t;
    o.levels = 3;
    o.capacity = 8;
    P.q = im_queue_new(&o);
    P.rounds = rounds;
    atomic_store(&P.taken, 0);
    atomic_store(&P.stop, 0);
    pthread_create(&t, NULL, pingpong_producer, NULL);
    for (long i = 0; i < rounds; i++) {
        void *it;
        int rc = im_queue_pop_wait(P.q, &it, NULL, 1000);
        if (rc) {
            CHECK(0, "round %ld: nothing for 1 s (%d) while the queue holds %zu: a lost item", i,
                  rc, im_queue_size(P.q));
            break;
        }
        CHECK(VAL(it) == (uintptr_t)(i + 1), "round %ld: item %lu", i, (unsigned long)VAL(it));
        atomic_store_explicit(&P.taken, i + 1, memory_order_release);
        /* a varying pause before the next pop, so that over the rounds it meets the
         * producer's push at every point of its path (a fixed timing may always miss) */
        for (long k = (i * 7919) % 97; k > 0; k--) im__cpu_relax();
    }
    atomic_store(&P.stop, 1);
    pthread_join(t, NULL);
    im_queue_free(P.q);
}

/* A pop that finds levels empty clears their bits, then looks again and puts a bit back
 * where an item arrived meanwhile: a blocking pop that looked in between saw no bits and went
 * to sleep, so the put-back must wake it. Scheduled exactly with the clear hook: A clears the
 * two (stale) bits; in the window, items land in both rings the way a push does when it saw
 * the bits still set (no state write, no wake), and B goes to sleep; A then takes one item and
 * leaves. B must wake for the other at once (its own timeout is 5 s). */
static struct {
    im_queue *q;
    pthread_t a;     /* the thread whose clear is scheduled */
    int armed;       /* the hook acts once */
    pthread_t b;
    _Atomic int b_rc;
    _Atomic long b_ms;
} W;

static void *putback_sleeper(void *arg)
{
    void *it;
    struct timespec t0, t1;
    (void)arg;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = im_queue_pop_wait(W.q, &it, NULL, 5000);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    atomic_store(&W.b_ms, (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
    atomic_store(&W.b_rc, rc);
    return NULL;
}

static void clear_hook(struct im_queue *q)
{
    if (!W.armed || q != W.q || !pthread_equal(pthread_self(), W.a)) return;
    W.armed = 0;
    CHECK(im__ring_push(&q->rings[0], ITEM(10)) == 0 && im__ring_push(&q->rings[1], ITEM(11)) == 0,
          "items into both rings");
    pthread_create(&W.b, NULL, putback_sleeper, NULL);
    for (int i = 0; i < 2000 && !(atomic_load(&q->state) >> 32); i++) usleep(1000);
    CHECK(atomic_load(&q->state) >> 32, "B sleeps");
    usleep(50000); /* well inside its futex wait */
}

static void test_putback_wakes_sleeper(void)
{
    im_queue_opts o = {0};
    void *it;
    o.levels = 2;
    o.capacity = 4;
    W.q = im_queue_new(&o);
    /* both bits set, both rings empty: a pop leaves the bit of the level it took from set */
    CHECK(im_queue_push(W.q, 1, ITEM(1)) == 0 && im_queue_pop(W.q, &it, NULL) == 0, "level 1");
    CHECK(im_queue_push(W.q, 0, ITEM(2)) == 0 && im_queue_pop(W.q, &it, NULL) == 0, "level 0");
    CHECK((atomic_load(&W.q->state) & 3) == 3, "stale bits");
    W.a = pthread_self();
    W.armed = 1;
    atomic_store(&W.b_rc, 1);
    CHECK(im_queue_pop(W.q, &it, NULL) == 0 && VAL(it) == 10, "A takes the urgent item");
    pthread_join(W.b, NULL);
    CHECK(atomic_load(&W.b_rc) == 0 && atomic_load(&W.b_ms) < 1000,
          "the sleeper woke for the put-back item: rc %d after %ld ms", atomic_load(&W.b_rc),
          atomic_load(&W.b_ms));
    im_queue_free(W.q);
}

int main(int argc, char **argv)
{
    int per = argc > 1 ? atoi(argv[1]) : 200000;
    test_putback_wakes_sleeper();
    test_pingpong(argc > 2 ? atol(argv[2]) : 2000000);
    test_order();
    test_aging();
    test_timeout();
    test_close_wakes_all();
    static const int mixes[][2] = {{1, 1}, {2, 2}, {4, 4}, {1, 4}, {4, 1}, {8, 8}};
    for (size_t m = 0; m < sizeof mixes / sizeof *mixes; m++)
        for (int levels = 1; levels <= 8; levels += 7)
            for (int blocking = 0; blocking <= 1; blocking++)
                run_stress(mixes[m][0], mixes[m][1], levels, blocking,
                           per / (mixes[m][0] * (levels == 8 ? 1 : 2)));
    return check_exit("queue");
}
