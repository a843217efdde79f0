/* executor.h — worker threads fed by an im_queue: submit(priority, job) returns at once (or
 * says "full"), a worker runs the job, and its completion goes back to the event loop that
 * submitted it, batched with the loop's other wake-ups. A server owns a primary executor
 * shared by all modules and a serial one; a module may create private ones. */

typedef struct im_executor im_executor; /* opaque */

/* A job, embedded in the caller's own struct (no allocation). Fill run and done, submit,
 * and leave it alone until done has been called. */
typedef struct im_job {
    void (*run)(struct im_job *j);              /* on a worker thread */
    void (*done)(struct im_job *j, int status); /* status 0: run; -ECANCELED: never ran (the
                                                 * executor shut down). Called on the loop that
                                                 * submitted, or on the worker when it was
                                                 * submitted from another thread; completions
                                                 * that outlive the loops (server shutdown) run
                                                 * on the thread calling im_server_free() */
    /* private */
    im_post post;   /* carries the completion back to the owner loop */
    im_loop *owner; /* loop that submitted, or NULL */
    int status;
} im_job;

/* Executor options; zero-initialise, every 0 means the default. */
typedef struct im_executor_opts {
    const char *name;  /* thread names are "<name>-<i>" (first 10 characters; "im-pool") */
    unsigned threads;  /* worker threads (the number of online cores); 1 makes it serial */
    unsigned levels;   /* priority levels, 0 most urgent (32: every .priority the generator
                        * accepts, IM_DEFAULT_PRIORITY_LEVELS) */
    unsigned capacity; /* queued jobs per level (1024): past it, submit says -EAGAIN */
    unsigned aging;    /* see im_queue_opts (0: strict priority) */
} im_executor_opts;

/* Starts an executor's threads. NULL opts for the defaults. NULL with errno on failure. */
im_executor *im_executor_new(const im_executor_opts *opts);

/* Queues job at priority prio. Never blocks.
 * Returns 0, -EAGAIN (that priority is full: answer 429), -EINVAL, -ESHUTDOWN. */
int im_executor_submit_job(im_executor *ex, unsigned prio, im_job *job);

/* Convenience: runs fn(arg) on a worker, then done(arg, status) as for im_job (done may be
 * NULL). Allocates a small job. Returns as im_executor_submit_job, or -ENOMEM. */
int im_executor_submit(im_executor *ex, unsigned prio, void (*fn)(void *arg), void *arg,
                       void (*done)(void *arg, int status));

/* Shuts down: refuses new jobs (-ESHUTDOWN), lets running jobs finish, hands every queued job
 * back as cancelled (done with -ECANCELED, on its owner loop), joins the threads. Idempotent.
 * A job must not wait for a loop that has stopped, nor submit after its executor is freed. */
void im_executor_shutdown(im_executor *ex);
/* Shuts down (when not yet done) and frees. */
void im_executor_free(im_executor *ex);

unsigned im_executor_threads(const im_executor *ex); /* worker threads */
size_t im_executor_queued(const im_executor *ex);    /* jobs waiting (snapshot) */
unsigned im_executor_running(const im_executor *ex); /* jobs running now (snapshot) */
