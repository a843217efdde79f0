/* queue.h — a bounded, lock-free multi-producer multi-consumer priority queue of pointers:
 * levels 0 (most urgent) .. levels-1, strict order between levels, FIFO within one, an
 * optional aging rule, and a blocking pop that spins briefly, then sleeps on a futex (no lost
 * wake-ups) until an item, a timeout or the queue's close. It knows nothing of HTTP. */

typedef struct im_queue im_queue; /* opaque */

#define IM_QUEUE_MAX_LEVELS 32

/* Queue options; zero-initialise, every 0 means the default. */
typedef struct im_queue_opts {
    unsigned levels;   /* priority levels, 1..32 (8) */
    unsigned capacity; /* items per level, rounded up to a power of two (1024) */
    unsigned aging;    /* 0 (default): strict priority. N > 0: every N-th pop serves the next
                        * non-empty level after a rotating cursor instead of the most urgent,
                        * so a level that stays non-empty is served at least once every
                        * N * levels pops, whatever arrives above it. */
} im_queue_opts;

/* Creates a queue; NULL opts for the defaults. NULL with errno EINVAL or ENOMEM. */
im_queue *im_queue_new(const im_queue_opts *opts);
/* Frees it; items still inside are not touched. No thread may be using it. */
void im_queue_free(im_queue *q);

/* Adds item (not NULL) at priority prio. Never waits.
 * Returns 0, -EAGAIN (that level is full), -EINVAL (bad prio or NULL), -ESHUTDOWN (closed). */
int im_queue_push(im_queue *q, unsigned prio, void *item);
/* Takes the most urgent item (subject to aging). Never waits.
 * Returns 0 with *item (and *prio when prio is not NULL) set, or -EAGAIN when empty. */
int im_queue_pop(im_queue *q, void **item, unsigned *prio);
/* Like im_queue_pop() but waits until an item comes: a short spin, then a futex sleep.
 * timeout_ms < 0 waits for ever, 0 does not wait. Returns 0, -ETIMEDOUT, or -ESHUTDOWN once
 * the queue is closed and empty. */
int im_queue_pop_wait(im_queue *q, void **item, unsigned *prio, int timeout_ms);
/* Closes the queue: pushes are refused from now on, every sleeper wakes; what is inside can
 * still be popped. */
void im_queue_close(im_queue *q);
/* Items inside (a snapshot; exact only when nobody pushes or pops). */
size_t im_queue_size(const im_queue *q);
/* Levels of the queue. */
unsigned im_queue_levels(const im_queue *q);
/* Items one level holds at most. */
size_t im_queue_capacity(const im_queue *q);
/* Items at one level (a snapshot), 0 for a level it does not have. */
size_t im_queue_level_size(const im_queue *q, unsigned level);
