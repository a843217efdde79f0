/* executor.h — worker threads fed by an im_queue: submit(priority, job) returns at once (or
 * says "full"), a worker runs the job, and its completion goes back to the event loop that
 * submitted it, batched with the loop's other wake-ups. A server owns a primary executor
 * shared by all modules and a serial one; a module may create private ones. */

typedef struct im_executor im_executor; /* opaque */

/* A job, embedded in the caller's own struct (no allocation). Fill run and done (progress
 * may stay NULL), submit, and leave it alone until done has been called. */
typedef struct im_job {
    void (*run)(struct im_job *j);              /* on a worker thread */
    void (*done)(struct im_job *j, int status); /* status 0: run; -ECANCELED: never ran (the
                                                 * executor shut down, or im_job_cancel before
                                                 * a worker took it). Called on the loop that
                                                 * submitted, or on the worker when it was
                                                 * submitted from another thread; completions
                                                 * that outlive the loops (server shutdown) run
                                                 * on the thread calling im_server_free() */
    void (*progress)(struct im_job *j, double fraction, const char *message); /* optional:
                                                 * where im_job_progress reports (any thread) */
    /* private */
    im_post post;   /* carries the completion back to the owner loop */
    im_loop *owner; /* loop that submitted, or NULL */
    int status;
    int cancelled;  /* im_job_cancel was called (accessed atomically; plain int for C++) */
} im_job;

/* Asks a job to stop. One still queued is skipped when a worker pops it (done is called with
 * -ECANCELED, in O(1): nothing searches the queue); one running sees im_job_cancelled()
 * return 1 and decides itself. Any thread. */
void im_job_cancel(im_job *j);
/* 1 once im_job_cancel was called on j. */
int im_job_cancelled(const im_job *j);
/* Reports progress through the job's progress hook (nothing when it has none). */
void im_job_progress(im_job *j, double fraction, const char *message);

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
/* Begins a shutdown and returns at once: new jobs are refused (-ESHUTDOWN), queued ones are
 * handed back as cancelled (done with -ECANCELED on their owner loops), running ones go on.
 * im_executor_shutdown then waits for them. */
void im_executor_close(im_executor *ex);
/* The same as im_executor_shutdown, waiting at most timeout_ms (< 0: for ever) for running jobs. Returns 0, or the
 * number of jobs still running at the deadline (logged with the executor's name): their
 * threads are left to finish on their own and the executor must then not be freed
 * (im_executor_free leaks it instead; the process may still exit). */
int im_executor_shutdown_within(im_executor *ex, int timeout_ms);
/* Shuts down (when not yet done) and frees. */
void im_executor_free(im_executor *ex);

unsigned im_executor_threads(const im_executor *ex); /* worker threads */
size_t im_executor_queued(const im_executor *ex);    /* jobs waiting (snapshot) */
size_t im_executor_capacity(const im_executor *ex);  /* jobs one priority level holds */
unsigned im_executor_levels(const im_executor *ex);  /* its priority levels */
size_t im_executor_queued_at(const im_executor *ex, unsigned prio); /* waiting at one level */
const char *im_executor_name(const im_executor *ex); /* as its options named it */
unsigned im_executor_running(const im_executor *ex); /* jobs running now (snapshot) */
/* How long a job just queued would wait before a worker starts it, in milliseconds: the jobs
 * ahead of it times the recent mean run time, over the threads (a Retry-After estimate). */
uint64_t im_executor_wait_estimate_ms(const im_executor *ex);
