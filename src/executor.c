/* executor.c — worker threads over an im_queue, completions posted back to the owner loop. */

struct im_executor {
    im_queue *q;           /* owned */
    pthread_t *threads;    /* owned */
    unsigned nthreads;     /* started */
    _Atomic int stopping;  /* shutdown began: queued jobs are handed back, not run */
    _Atomic int submitting;/* threads inside submit: shutdown waits for them before its drain */
    _Atomic unsigned running;
    _Atomic unsigned alive; /* worker threads that have not returned yet */
    _Atomic uint64_t mean_ns; /* run time of recent jobs (a moving average, 1/16 per job) */
    int joined;
    int abandoned;         /* shutdown gave up on running jobs: never freed */
    char name[11];
};

void im_job_cancel(im_job *j) { __atomic_store_n(&j->cancelled, 1, __ATOMIC_RELEASE); }
int im_job_cancelled(const im_job *j) { return __atomic_load_n(&j->cancelled, __ATOMIC_ACQUIRE); }
void im_job_progress(im_job *j, double fraction, const char *message)
{
    if (j->progress) j->progress(j, fraction, message);
}

static uint64_t im__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Runs on the owner loop: the job's completion. */
static void im__job_delivered(im_post *p)
{
    im_job *j = (im_job *)(void *)((char *)p - offsetof(im_job, post));
    j->done(j, j->status);
}

static void im__job_complete(im_job *j, int status)
{
    j->status = status;
    if (j->owner) {
        j->post.fn = im__job_delivered;
        im_loop_post(j->owner, &j->post);
    } else {
        j->done(j, status);
    }
}

static void *im__worker_main(void *arg)
{
    im_executor *ex = arg;
    void *item;
    unsigned timed = 0;
    sigset_t all;
    sigfillset(&all); /* signals are for the thread that waits for them */
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    while (im_queue_pop_wait(ex->q, &item, NULL, -1) == 0) {
        im_job *j = item;
        /* acquire: pairs with the release in im_executor_shutdown */
        if (atomic_load_explicit(&ex->stopping, memory_order_acquire) || im_job_cancelled(j)) {
            im__job_complete(j, -ECANCELED); /* cancelled, or queued at shutdown: handed back */
            continue;
        }
        atomic_fetch_add_explicit(&ex->running, 1, memory_order_relaxed);
        if (++timed % 8 == 1) { /* one job in eight is timed: enough for an estimate */
            uint64_t t0 = im__mono_ns();
            j->run(j);
            uint64_t took = im__mono_ns() - t0, mean;
            mean = atomic_load_explicit(&ex->mean_ns, memory_order_relaxed); /* racy by design */
            atomic_store_explicit(&ex->mean_ns, mean ? mean - mean / 16 + took / 16 : took,
                                  memory_order_relaxed);
        } else {
            j->run(j);
        }
        atomic_fetch_sub_explicit(&ex->running, 1, memory_order_relaxed);
        im__job_complete(j, 0);
    }
    atomic_fetch_sub_explicit(&ex->alive, 1, memory_order_release);
    return NULL;
}

im_executor *im_executor_new(const im_executor_opts *opts)
{
    im_executor_opts o = {0};
    im_queue_opts qo = {0};
    im_executor *ex;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (opts) o = *opts;
    if (!o.threads) o.threads = cores > 0 ? (unsigned)cores : 1;
    if (!o.levels) o.levels = IM_DEFAULT_PRIORITY_LEVELS;
    if (o.threads > 1024) {
        errno = EINVAL;
        return NULL;
    }
    if (!(ex = calloc(1, sizeof *ex))) return NULL;
    snprintf(ex->name, sizeof ex->name, "%s", o.name ? o.name : "im-pool");
    qo.levels = o.levels;
    qo.capacity = o.capacity;
    qo.aging = o.aging;
    ex->threads = calloc(o.threads, sizeof *ex->threads);
    if (!ex->threads || !(ex->q = im_queue_new(&qo))) {
        int e = ex->threads ? errno : ENOMEM;
        free(ex->threads);
        free(ex);
        errno = e;
        return NULL;
    }
    for (; ex->nthreads < o.threads; ex->nthreads++) {
        char name[16];
        atomic_fetch_add(&ex->alive, 1);
        int rc = pthread_create(&ex->threads[ex->nthreads], NULL, im__worker_main, ex);
        if (rc) {
            atomic_fetch_sub(&ex->alive, 1);
            im_log(IM_LOG_ERROR, "executor %s: cannot start thread %u: %s", ex->name,
                   ex->nthreads, strerror(rc));
            im_executor_free(ex);
            errno = rc;
            return NULL;
        }
        snprintf(name, sizeof name, "%s-%u", ex->name, ex->nthreads);
        pthread_setname_np(ex->threads[ex->nthreads], name);
    }
    return ex;
}

int im_executor_submit_job(im_executor *ex, unsigned prio, im_job *job)
{
    int rc;
    if (!job || !job->run || !job->done) return -EINVAL;
    /* seq_cst pair with shutdown (store stopping, then read submitting): either this submit
     * sees stopping, or shutdown waits for it to finish pushing before its final drain */
    atomic_fetch_add(&ex->submitting, 1);
    if (atomic_load(&ex->stopping)) {
        atomic_fetch_sub(&ex->submitting, 1);
        return -ESHUTDOWN;
    }
    job->owner = im_loop_current();
    job->status = 0;
    __atomic_store_n(&job->cancelled, 0, __ATOMIC_RELAXED);
    rc = im_queue_push(ex->q, prio, job);
    atomic_fetch_sub_explicit(&ex->submitting, 1, memory_order_release);
    return rc;
}

typedef struct im__fn_job {
    im_job job; /* first */
    void (*fn)(void *);
    void (*done)(void *, int);
    void *arg;
} im__fn_job;

static void im__fn_run(im_job *j)
{
    im__fn_job *f = (im__fn_job *)(void *)j;
    f->fn(f->arg);
}

static void im__fn_done(im_job *j, int status)
{
    im__fn_job *f = (im__fn_job *)(void *)j;
    if (f->done) f->done(f->arg, status);
    free(f);
}

int im_executor_submit(im_executor *ex, unsigned prio, void (*fn)(void *arg), void *arg,
                       void (*done)(void *arg, int status))
{
    im__fn_job *f;
    int rc;
    if (!fn) return -EINVAL;
    if (!(f = malloc(sizeof *f))) return -ENOMEM;
    f->job.run = im__fn_run;
    f->job.done = im__fn_done;
    f->job.progress = NULL;
    f->fn = fn;
    f->done = done;
    f->arg = arg;
    if ((rc = im_executor_submit_job(ex, prio, &f->job)) != 0) free(f);
    return rc;
}

void im_executor_close(im_executor *ex)
{
    if (atomic_load(&ex->stopping)) return;
    /* seq_cst: pairs with submit (see there); a worker that sees stopping hands jobs back */
    atomic_store(&ex->stopping, 1);
    while (atomic_load(&ex->submitting)) sched_yield(); /* pushes under way land first */
    im_queue_close(ex->q); /* workers drain what is queued (handing it back), then exit */
    /* and so does this thread, at once: workers busy with long jobs would hand the queued
     * ones back only when they get to them, and their callers wait for an answer now */
    void *item;
    while (im_queue_pop(ex->q, &item, NULL) == 0) im__job_complete(item, -ECANCELED);
}

int im_executor_shutdown_within(im_executor *ex, int timeout_ms)
{
    if (ex->joined) return 0;
    if (ex->abandoned) return (int)atomic_load(&ex->running);
    im_executor_close(ex);
    if (timeout_ms >= 0) { /* wait for the workers to return, up to the deadline */
        uint64_t until = im__mono_ns() + (uint64_t)timeout_ms * 1000000u;
        while (atomic_load_explicit(&ex->alive, memory_order_acquire) && im__mono_ns() < until)
            usleep(1000);
        if (atomic_load_explicit(&ex->alive, memory_order_acquire)) {
            int n = (int)atomic_load(&ex->running);
            im_log(IM_LOG_WARN, "executor %s: %d job%s still running %d ms after shutdown began; "
                   "left to finish on their own", ex->name, n, n == 1 ? "" : "s", timeout_ms);
            ex->abandoned = 1;
            for (unsigned i = 0; i < ex->nthreads; i++) pthread_detach(ex->threads[i]);
            return n ? n : 1;
        }
    }
    for (unsigned i = 0; i < ex->nthreads; i++) pthread_join(ex->threads[i], NULL);
    ex->joined = 1;
    void *item; /* a push that raced with the close and got in after the workers left */
    while (im_queue_pop(ex->q, &item, NULL) == 0) im__job_complete(item, -ECANCELED);
    return 0;
}

void im_executor_shutdown(im_executor *ex) { im_executor_shutdown_within(ex, -1); }

void im_executor_free(im_executor *ex)
{
    if (!ex) return;
    if (ex->abandoned) return; /* its threads may still use it: the process exits soon */
    im_executor_shutdown(ex);
    im_queue_free(ex->q);
    free(ex->threads);
    free(ex);
}

unsigned im_executor_threads(const im_executor *ex) { return ex->nthreads; }
size_t im_executor_queued(const im_executor *ex) { return im_queue_size(ex->q); }
size_t im_executor_capacity(const im_executor *ex) { return im_queue_capacity(ex->q); }
unsigned im_executor_levels(const im_executor *ex) { return im_queue_levels(ex->q); }
size_t im_executor_queued_at(const im_executor *ex, unsigned prio)
{
    return im_queue_level_size(ex->q, prio);
}
const char *im_executor_name(const im_executor *ex) { return ex->name; }
unsigned im_executor_running(const im_executor *ex)
{
    return atomic_load_explicit(&((im_executor *)ex)->running, memory_order_relaxed);
}

uint64_t im_executor_wait_estimate_ms(const im_executor *ex)
{
    uint64_t mean = atomic_load_explicit(&((im_executor *)ex)->mean_ns, memory_order_relaxed);
    uint64_t ahead = im_queue_size(ex->q) + im_executor_running(ex);
    return ahead * mean / (ex->nthreads ? ex->nthreads : 1) / 1000000u;
}
