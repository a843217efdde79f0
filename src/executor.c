/* executor.c — worker threads over an im_queue, completions posted back to the owner loop. */

struct im_executor {
    im_queue *q;           /* owned */
    pthread_t *threads;    /* owned */
    unsigned nthreads;     /* started */
    _Atomic int stopping;  /* shutdown began: queued jobs are handed back, not run */
    _Atomic int submitting;/* threads inside submit: shutdown waits for them before its drain */
    _Atomic unsigned running;
    int joined;
    char name[11];
};

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
    sigset_t all;
    sigfillset(&all); /* signals are for the thread that waits for them */
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    while (im_queue_pop_wait(ex->q, &item, NULL, -1) == 0) {
        im_job *j = item;
        /* acquire: pairs with the release in im_executor_shutdown */
        if (atomic_load_explicit(&ex->stopping, memory_order_acquire)) {
            im__job_complete(j, -ECANCELED); /* queued at shutdown: handed back */
            continue;
        }
        atomic_fetch_add_explicit(&ex->running, 1, memory_order_relaxed);
        j->run(j);
        atomic_fetch_sub_explicit(&ex->running, 1, memory_order_relaxed);
        im__job_complete(j, 0);
    }
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
        int rc = pthread_create(&ex->threads[ex->nthreads], NULL, im__worker_main, ex);
        if (rc) {
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
    f->fn = fn;
    f->done = done;
    f->arg = arg;
    if ((rc = im_executor_submit_job(ex, prio, &f->job)) != 0) free(f);
    return rc;
}

void im_executor_shutdown(im_executor *ex)
{
    if (ex->joined) return;
    /* seq_cst: pairs with submit (see there); a worker that sees stopping hands jobs back */
    atomic_store(&ex->stopping, 1);
    while (atomic_load(&ex->submitting)) sched_yield(); /* pushes under way land first */
    im_queue_close(ex->q); /* workers drain what is queued (handing it back), then exit */
    for (unsigned i = 0; i < ex->nthreads; i++) pthread_join(ex->threads[i], NULL);
    ex->joined = 1;
    void *item; /* a push that raced with the close and got in after the workers left */
    while (im_queue_pop(ex->q, &item, NULL) == 0) im__job_complete(item, -ECANCELED);
}

void im_executor_free(im_executor *ex)
{
    if (!ex) return;
    im_executor_shutdown(ex);
    im_queue_free(ex->q);
    free(ex->threads);
    free(ex);
}

unsigned im_executor_threads(const im_executor *ex) { return ex->nthreads; }
size_t im_executor_queued(const im_executor *ex) { return im_queue_size(ex->q); }
unsigned im_executor_running(const im_executor *ex)
{
    return atomic_load_explicit(&((im_executor *)ex)->running, memory_order_relaxed);
}
