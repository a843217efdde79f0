/* queue.c — the MPMC priority queue.
 *
 * Design: one bounded ring per priority level (Dmitry Vyukov's sequence-numbered MPMC ring:
 * every cell carries a sequence number that says whether it is free for the producer of
 * position p (seq == p) or full for the consumer of position p (seq == p + 1)), plus one 64-bit
 * state word: bit L (L < 32) says level L may hold items, the high 32 bits count sleepers.
 * (Whoever sets a bit - a push, or a pop putting back a bit it had cleared - wakes a sleeper
 * if the word counts one.)
 * Push: put the item in its level's ring, then make sure the level's bit is set (and wake a
 * sleeper if the word counts one). Pop: try the levels whose bits are set, most urgent first;
 * when all of them turn out empty, clear their bits and look at those rings once more,
 * setting a bit back where an item arrived meanwhile.
 *
 * Why nothing is lost: a push publishes its cell, then reads the state word; a pop that found
 * its level empty clears the bit, then looks at the ring again. A seq_cst fence sits between
 * the two steps on both sides (a Dekker pair): either the push's read sees the clear (and sets
 * the bit again), or the pop's second look sees the cell. The push only writes the word when
 * the bit is clear, so while levels stay busy the word stays shared in every core's cache.
 * Sleepers announce themselves in the same word and look again after a fence: a push then
 * either sees them (and wakes one) or they see its item. Under ThreadSanitizer, which cannot
 * model fences, every push does its read-modify-write instead; as all changes of the word are
 * then read-modify-writes, their total order gives the same guarantee without fences.
 * tests/model/queue.pml checks the protocol with spin.
 *
 * Progress: no locks; a failed try-push or try-pop returns at once. A pop's retry loop only
 * repeats when a bit it read was stale, i.e. when other threads moved items: lock-free. As in
 * every Vyukov ring, a producer that is preempted between claiming a cell and publishing it
 * makes that cell (and the ones after it in that level) invisible to consumers until it
 * resumes; try-pop then reports empty rather than waiting, and that producer sets the bit when
 * it publishes. Blocking pop spins briefly (~200 pauses), then sleeps on a futex event count.
 */

#define IM__CACHELINE 64

/* A test schedules other threads into the window between a pop's clear of level bits and its
 * second look at the rings (tests/test_queue.c); nothing in a build of the library. */
#ifndef IM__QUEUE_CLEAR_HOOK
#define IM__QUEUE_CLEAR_HOOK(q) ((void)0)
#endif

#if defined(__SANITIZE_THREAD__)
#define IM__QUEUE_NO_FENCES 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define IM__QUEUE_NO_FENCES 1
#endif
#endif
#ifdef IM__QUEUE_NO_FENCES
#define IM__QUEUE_FENCE() ((void)0) /* every push writes the word instead (see above) */
#elif defined(__x86_64__)
/* A full barrier. On x86 a locked add to the stack orders loads and stores like mfence does
 * (Intel SDM 8.2.2) at about half the cost; Linux's smp_mb() is the same instruction. */
#define IM__QUEUE_FENCE() __asm__ __volatile__("lock; addl $0,-4(%%rsp)" ::: "memory", "cc")
#else
#define IM__QUEUE_FENCE() atomic_thread_fence(memory_order_seq_cst)
#endif

/* A pause for spin-waiting: lets the sibling hyper-thread run, saves power. */
static inline void im__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

typedef struct im__cell {
    _Atomic size_t seq; /* p: free for the producer of position p; p+1: full for its consumer */
    void *item;         /* written before seq is released, read after seq is acquired */
} im__cell;

typedef struct im__ring {
    _Alignas(IM__CACHELINE) _Atomic size_t head; /* next position to push */
    _Alignas(IM__CACHELINE) _Atomic size_t tail; /* next position to pop */
    _Alignas(IM__CACHELINE) im__cell *cells;     /* owned, capacity entries */
    size_t mask;                                 /* capacity - 1 */
} im__ring;

#define IM__SLEEPER ((uint64_t)1 << 32) /* one sleeper, in the state word's high half */
#define IM__LEVEL_BITS 0xffffffffu

struct im_queue {
    _Alignas(IM__CACHELINE) _Atomic uint64_t state; /* bit L: level L may hold items;
                                                     * high 32 bits: sleepers */
    _Alignas(IM__CACHELINE) _Atomic uint32_t epoch; /* event count: bumped to wake sleepers */
    _Atomic int closed;
    _Alignas(IM__CACHELINE) _Atomic unsigned pops;     /* aging: pops so far */
    _Atomic unsigned cursor;                           /* aging: next level to favour */
    unsigned levels, aging;
    im__ring *rings; /* owned, one per level */
};

static int im__ring_init(im__ring *r, size_t cap)
{
    r->cells = aligned_alloc(IM__CACHELINE, (cap * sizeof(im__cell) + IM__CACHELINE - 1) /
                                                IM__CACHELINE * IM__CACHELINE);
    if (!r->cells) return -ENOMEM;
    for (size_t i = 0; i < cap; i++) atomic_init(&r->cells[i].seq, i);
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    r->mask = cap - 1;
    return 0;
}

static int im__ring_push(im__ring *r, void *item)
{
    /* relaxed: the position is only a hint until the CAS below claims it */
    size_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    for (;;) {
        im__cell *c = &r->cells[pos & r->mask];
        /* acquire: pairs with the consumer's release when it emptied this cell, so our write
         * of item cannot overtake its read of the old one */
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)pos;
        if (dif == 0) {
            /* relaxed: the cell's seq, not head, publishes the item */
            if (atomic_compare_exchange_weak_explicit(&r->head, &pos, pos + 1,
                                                      memory_order_relaxed, memory_order_relaxed)) {
                c->item = item;
                /* release: the item is visible to whoever acquires seq == pos + 1 */
                atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
                return 0;
            }
        } else if (dif < 0) {
            return -EAGAIN; /* the cell still holds an item a lap behind: full */
        } else {
            pos = atomic_load_explicit(&r->head, memory_order_relaxed); /* another producer won */
        }
    }
}

static int im__ring_pop(im__ring *r, void **item)
{
    size_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed); /* hint, as in push */
    for (;;) {
        im__cell *c = &r->cells[pos & r->mask];
        /* acquire: pairs with the producer's release; the item is then readable */
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)(pos + 1);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->tail, &pos, pos + 1,
                                                      memory_order_relaxed, memory_order_relaxed)) {
                *item = c->item;
                /* release: our read of item happens before the producer a lap ahead reuses it */
                atomic_store_explicit(&c->seq, pos + r->mask + 1, memory_order_release);
                return 0;
            }
        } else if (dif < 0) {
            return -EAGAIN; /* not yet published: empty (or a producer is mid-push) */
        } else {
            pos = atomic_load_explicit(&r->tail, memory_order_relaxed); /* another consumer won */
        }
    }
}

/* 1 when the ring holds a published item at its tail. A cell found already taken means the
 * tail moved: look at the new one (another consumer progressed). A cell not yet published is
 * "no": its producer has not set the level's bit yet and will. */
static int im__ring_ready(im__ring *r)
{
    for (;;) {
        size_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
        /* acquire: a publish that happened before our clear of the level's bit is seen */
        size_t seq = atomic_load_explicit(&r->cells[pos & r->mask].seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)(pos + 1);
        if (dif == 0) return 1;
        if (dif < 0) return 0;
    }
}

static long im__futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, 0);
}

im_queue *im_queue_new(const im_queue_opts *opts)
{
    im_queue_opts o = {0};
    im_queue *q;
    size_t cap = 1;
    if (opts) o = *opts;
    if (!o.levels) o.levels = 8;
    if (!o.capacity) o.capacity = 1024;
    if (o.levels > IM_QUEUE_MAX_LEVELS || o.capacity > (1u << 30)) {
        errno = EINVAL;
        return NULL;
    }
    while (cap < o.capacity) cap <<= 1;
    if (cap < 2) cap = 2; /* a one-cell Vyukov ring cannot tell full from empty */
    q = aligned_alloc(IM__CACHELINE, sizeof *q);
    if (!q) return NULL;
    memset(q, 0, sizeof *q);
    q->levels = o.levels;
    q->aging = o.aging;
    q->rings = aligned_alloc(IM__CACHELINE, o.levels * sizeof(im__ring));
    if (!q->rings) goto nomem;
    memset(q->rings, 0, o.levels * sizeof(im__ring));
    for (unsigned i = 0; i < o.levels; i++)
        if (im__ring_init(&q->rings[i], cap)) goto nomem;
    atomic_init(&q->state, 0);
    atomic_init(&q->epoch, 0);
    atomic_init(&q->closed, 0);
    atomic_init(&q->pops, 0);
    atomic_init(&q->cursor, 0);
    return q;
nomem:
    im_queue_free(q);
    errno = ENOMEM;
    return NULL;
}

void im_queue_free(im_queue *q)
{
    if (!q) return;
    if (q->rings)
        for (unsigned i = 0; i < q->levels; i++) free(q->rings[i].cells);
    free(q->rings);
    free(q);
}

unsigned im_queue_levels(const im_queue *q) { return q->levels; }
size_t im_queue_capacity(const im_queue *q) { return q->rings[0].mask + 1; }
size_t im_queue_level_size(const im_queue *q, unsigned level)
{
    if (level >= q->levels) return 0;
    const im__ring *r = &q->rings[level];
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    return h > t ? h - t : 0;
}

/* Wakes one sleeper. */
static void im__queue_wake(im_queue *q)
{
    /* release: a sleeper that reads the new epoch (acquire) also sees the item */
    atomic_fetch_add_explicit(&q->epoch, 1, memory_order_release);
    im__futex(&q->epoch, FUTEX_WAKE_PRIVATE, 1, NULL);
}

int im_queue_push(im_queue *q, unsigned prio, void *item)
{
    int rc;
    if (prio >= q->levels || !item) return -EINVAL;
    /* relaxed: a push racing with close may still get in; close only promises that pushes
     * starting after it returns are refused, and pops drain what got in */
    if (atomic_load_explicit(&q->closed, memory_order_relaxed)) return -ESHUTDOWN;
    if ((rc = im__ring_push(&q->rings[prio], item)) != 0) return rc;
    uint64_t bit = (uint64_t)1 << prio, old;
#ifdef IM__QUEUE_NO_FENCES
    /* acq_rel: the pop's clear that reads this OR sees our cell; we see sleepers before it */
    old = atomic_fetch_or_explicit(&q->state, bit, memory_order_acq_rel);
#else
    IM__QUEUE_FENCE(); /* Dekker pair with the fence after a pop's clear or a sleeper's add */
    old = atomic_load_explicit(&q->state, memory_order_relaxed);
    if (!(old & bit)) /* relaxed: the fences order it; the cell's seq carries the item */
        old = atomic_fetch_or_explicit(&q->state, bit, memory_order_relaxed);
#endif
    if (old >> 32) im__queue_wake(q);
    return 0;
}

/* Where an aged pop starts looking (every N-th pop with aging N), or -1: most urgent first. */
static int im__queue_cursor(im_queue *q)
{
    if (q->aging &&
        atomic_fetch_add_explicit(&q->pops, 1, memory_order_relaxed) % q->aging == q->aging - 1)
        return (int)(atomic_fetch_add_explicit(&q->cursor, 1, memory_order_relaxed) % q->levels);
    return -1;
}

/* The level to try among the candidates m: the most urgent, or the first at or after the
 * cursor (wrapping round). */
static unsigned im__queue_pick(uint64_t m, int cursor)
{
    if (cursor > 0) {
        uint64_t high = m >> cursor << cursor;
        if (high) return (unsigned)__builtin_ctzll(high);
    }
    return (unsigned)__builtin_ctzll(m);
}

/* Clears the bits of levels found empty, then looks at those rings again in case a push
 * published between our look and the clear (see the top of this file); sets back the bits
 * of levels that got items. Returns those levels. */
static uint64_t im__queue_clear(im_queue *q, uint64_t empty)
{
    uint64_t back = 0;
    atomic_fetch_and_explicit(&q->state, ~empty, memory_order_acq_rel);
    IM__QUEUE_CLEAR_HOOK(q);
    IM__QUEUE_FENCE();
    for (uint64_t e = empty; e; e &= e - 1) {
        unsigned level = (unsigned)__builtin_ctzll(e);
        if (im__ring_ready(&q->rings[level])) back |= (uint64_t)1 << level;
    }
    if (back) {
        /* a sleeper may have come between our clear and this: it saw no bit, so wake it */
        uint64_t old = atomic_fetch_or_explicit(&q->state, back, memory_order_acq_rel);
        if (old >> 32) im__queue_wake(q);
    }
    return back;
}

int im_queue_pop(im_queue *q, void **item, unsigned *prio)
{
    int cursor = im__queue_cursor(q);
    for (;;) {
        /* relaxed: the bits are hints; the ring's seq acquire orders the item itself */
        uint64_t m = atomic_load_explicit(&q->state, memory_order_relaxed) & IM__LEVEL_BITS;
        uint64_t empty = 0;
        /* try the candidate levels in order; the bits of those found empty are cleared
         * together, once, after an item was found or all of them came up empty */
        while (m) {
            unsigned level = im__queue_pick(m, cursor);
            uint64_t bit = (uint64_t)1 << level;
            if (im__ring_pop(&q->rings[level], item) == 0) {
                if (prio) *prio = level;
                if (empty) im__queue_clear(q, empty);
                return 0;
            }
            m &= ~bit;
            empty |= bit;
        }
        if (!empty || !im__queue_clear(q, empty)) return -EAGAIN;
    }
}

int im_queue_pop_wait(im_queue *q, void **item, unsigned *prio, int timeout_ms)
{
    struct timespec deadline, now, left;
    if (im_queue_pop(q, item, prio) == 0) return 0;
    if (timeout_ms == 0) { /* no wait: closed and empty is -ESHUTDOWN, as for a waiting pop */
        if (!atomic_load_explicit(&q->closed, memory_order_acquire)) return -ETIMEDOUT;
        return im_queue_pop(q, item, prio) == 0 ? 0 : -ESHUTDOWN; /* a push that raced it */
    }
    if (timeout_ms > 0) { /* the clock starts now, the spin below counts */
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
    }
    /* a short spin first: an item is often a few microseconds away, and a futex sleep and
     * wake-up cost more than that */
    for (int i = 0; i < 200; i++) {
        if (i % 50 == 49) sched_yield(); /* let a producer on this core run */
        else im__cpu_relax();
        if ((atomic_load_explicit(&q->state, memory_order_relaxed) & IM__LEVEL_BITS) &&
            im_queue_pop(q, item, prio) == 0)
            return 0;
        if (atomic_load_explicit(&q->closed, memory_order_relaxed)) break;
    }
    for (;;) {
        /* announce the sleep in the state word, then read the event count, then look once
         * more: a push either sees the sleeper and bumps the count (the futex then does not
         * sleep on a stale count), or our look sees its item (see the top of this file) */
        atomic_fetch_add_explicit(&q->state, IM__SLEEPER, memory_order_acq_rel);
        IM__QUEUE_FENCE(); /* pairs with the push's fence (see the top of this file) */
        /* acquire: pairs with the waker's release bump */
        uint32_t e = atomic_load_explicit(&q->epoch, memory_order_acquire);
        int rc = im_queue_pop(q, item, prio);
        if (rc == 0 || atomic_load_explicit(&q->closed, memory_order_acquire)) {
            atomic_fetch_sub_explicit(&q->state, IM__SLEEPER, memory_order_relaxed);
            if (rc == 0) return 0;
            return im_queue_pop(q, item, prio) == 0 ? 0 : -ESHUTDOWN;
        }
        const struct timespec *tsp = NULL;
        if (timeout_ms >= 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            left.tv_sec = deadline.tv_sec - now.tv_sec;
            left.tv_nsec = deadline.tv_nsec - now.tv_nsec;
            if (left.tv_nsec < 0) {
                left.tv_sec--;
                left.tv_nsec += 1000000000;
            }
            if (left.tv_sec < 0) {
                atomic_fetch_sub_explicit(&q->state, IM__SLEEPER, memory_order_relaxed);
                return -ETIMEDOUT;
            }
            tsp = &left;
        }
        im__futex(&q->epoch, FUTEX_WAIT_PRIVATE, e, tsp); /* returns at once if e is stale */
        atomic_fetch_sub_explicit(&q->state, IM__SLEEPER, memory_order_relaxed);
        if (im_queue_pop(q, item, prio) == 0) return 0;
    }
}

void im_queue_close(im_queue *q)
{
    /* release: a sleeper that wakes and reads closed (acquire) sees everything before it */
    atomic_store_explicit(&q->closed, 1, memory_order_release);
    atomic_fetch_add_explicit(&q->epoch, 1, memory_order_release);
    im__futex(&q->epoch, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
}

size_t im_queue_size(const im_queue *q)
{
    size_t n = 0;
    for (unsigned i = 0; i < q->levels; i++) {
        size_t h = atomic_load_explicit(&q->rings[i].head, memory_order_relaxed);
        size_t t = atomic_load_explicit(&q->rings[i].tail, memory_order_relaxed);
        n += h > t ? h - t : 0;
    }
    return n;
}
