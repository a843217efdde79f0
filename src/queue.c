/* queue.c — the MPMC priority queue.
 *
 * Design: one bounded ring per priority level (Dmitry Vyukov's sequence-numbered MPMC ring:
 * every cell carries a sequence number that says whether it is free for the producer of
 * position p (seq == p) or full for the consumer of position p (seq == p + 1)), plus one 64-bit
 * state word: bit L (L < 32) says level L may hold items, the high 32 bits count sleepers.
 * Push: put the item in its level's ring, then set the level's bit with one atomic OR, whose
 * old value also tells whether anyone sleeps. Pop: take the lowest set bit's level; when its
 * ring turns out empty, clear the bit and look at the ring once more, setting the bit back if
 * an item arrived meanwhile.
 *
 * Why nothing is lost: every change of the state word is a read-modify-write, so all of them
 * are totally ordered. If a push's OR comes after a pop's clear, the bit ends up set. If it
 * comes before, the clear reads the OR's value (or a later one) and so synchronizes with it:
 * the second look sees the published cell. The same argument, with the sleeper count in the
 * same word, gives the blocking pop its no-lost-wake-up property. No fences are needed, and
 * ThreadSanitizer can check all of it. tests/model/queue.pml checks the protocol with spin.
 *
 * Progress: no locks; a failed try-push or try-pop returns at once. A pop's retry loop only
 * repeats when a bit it read was stale, i.e. when other threads moved items: lock-free. As in
 * every Vyukov ring, a producer that is preempted between claiming a cell and publishing it
 * makes that cell (and the ones after it in that level) invisible to consumers until it
 * resumes; try-pop then reports empty rather than waiting, and that producer sets the bit when
 * it publishes. Blocking pop sleeps on a futex event count (Linux), never spins.
 */

#define IM__CACHELINE 64

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
    /* acq_rel: one read-modify-write sets the bit (release: a pop's clear that reads it sees
     * our cell) and reads the sleeper count (acquire: a sleeper's announcement before it) */
    uint64_t old = atomic_fetch_or_explicit(&q->state, (uint64_t)1 << prio, memory_order_acq_rel);
    if (old >> 32) im__queue_wake(q);
    return 0;
}

/* The level a pop serves from the non-empty set m: the most urgent, or with aging every
 * N-th pop the first non-empty level at or after a rotating cursor. */
static unsigned im__queue_pick(im_queue *q, uint64_t m)
{
    if (q->aging &&
        atomic_fetch_add_explicit(&q->pops, 1, memory_order_relaxed) % q->aging == q->aging - 1) {
        unsigned c = atomic_fetch_add_explicit(&q->cursor, 1, memory_order_relaxed) % q->levels;
        uint64_t high = m >> c << c; /* levels >= c */
        return (unsigned)__builtin_ctzll(high ? high : m);
    }
    return (unsigned)__builtin_ctzll(m);
}

int im_queue_pop(im_queue *q, void **item, unsigned *prio)
{
    for (;;) {
        /* relaxed: the bit is a hint; the ring's seq acquire orders the item itself */
        uint64_t m = atomic_load_explicit(&q->state, memory_order_relaxed) & IM__LEVEL_BITS;
        if (!m) return -EAGAIN;
        unsigned level = im__queue_pick(q, m);
        uint64_t bit = (uint64_t)1 << level;
        if (im__ring_pop(&q->rings[level], item) == 0) {
            if (prio) *prio = level;
            return 0;
        }
        /* the level looked empty: clear its bit, then look again in case a push published
         * between our look and the clear. acq_rel: if that push's OR came first, this clear
         * reads it and synchronizes with it, so the look below sees its cell */
        atomic_fetch_and_explicit(&q->state, ~bit, memory_order_acq_rel);
        if (im__ring_ready(&q->rings[level]))
            atomic_fetch_or_explicit(&q->state, bit, memory_order_acq_rel);
    }
}

int im_queue_pop_wait(im_queue *q, void **item, unsigned *prio, int timeout_ms)
{
    struct timespec deadline, now, left;
    if (im_queue_pop(q, item, prio) == 0) return 0;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
    }
    for (;;) {
        /* announce the sleep in the state word, then read the event count, then look once
         * more. Every change of the word is a read-modify-write, so they are totally ordered:
         * a push whose OR comes after this add sees the sleeper and bumps the count (the
         * futex then does not sleep on a stale count); one whose OR came before is read by
         * this add (acq_rel), so the look below sees its item */
        atomic_fetch_add_explicit(&q->state, IM__SLEEPER, memory_order_acq_rel);
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
