/* test_executor.c — executors: jobs run on worker threads and their completions come back on
 * the loop thread that submitted them; priorities order a serial executor's queue; a full
 * level says -EAGAIN; a serial executor never runs two jobs at once; shutdown lets the running
 * job finish and hands queued ones back as cancelled; the server's primary and serial
 * executors exist while it runs. Run under ASan and TSan in CI. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "support/check.h"


static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- completions come back to the submitting loop ---- */

#define JOBS 20000
static im_server *srv;
static atomic_int done_count, wrong_thread, ran_on_loop;
static im_loop *driver_loop;

typedef struct tjob {
    im_job job;
    int id;
} tjob;

static void tjob_run(im_job *j)
{
    if (im_loop_current()) atomic_fetch_add(&ran_on_loop, 1); /* must be a worker */
    (void)j;
}

static void tjob_done(im_job *j, int status)
{
    if (im_loop_current() != driver_loop || status != 0) atomic_fetch_add(&wrong_thread, 1);
    free(j);
    atomic_fetch_add(&done_count, 1);
}

static void fn_run(void *arg) { (void)arg; }
static void fn_done(void *arg, int status)
{
    if (im_loop_current() != driver_loop || status != 0 || arg != (void *)srv)
        atomic_fetch_add(&wrong_thread, 1);
    atomic_fetch_add(&done_count, 1);
}

static void drive(void *arg) /* on a loop thread */
{
    (void)arg;
    driver_loop = im_loop_current();
    CHECK(driver_loop != NULL, "driver runs on a loop");
    int again = 0;
    for (int i = 0; i < JOBS; i++) {
        int rc;
        if (i % 2) {
            tjob *t = calloc(1, sizeof *t);
            t->job.run = tjob_run;
            t->job.done = tjob_done;
            t->id = i;
            rc = im_executor_submit_job(im_server_executor(srv), (unsigned)(i % 8), &t->job);
            if (rc) free(t);
        } else {
            rc = im_executor_submit(im_server_executor(srv), (unsigned)(i % 8), fn_run, srv, fn_done);
        }
        if (rc == -EAGAIN) { /* full: count it as done, as a server would answer 429 */
            again++;
            atomic_fetch_add(&done_count, 1);
        } else {
            CHECK(rc == 0, "submit: %d", rc);
        }
    }
    (void)again;
}

static void test_completions_on_loop(void)
{
    im_server_opts o = {0};
    o.port = -1;
    o.loops = 2;
    o.workers = 3;
    o.no_signals = 1;
    o.queue_capacity = 64;
    srv = im_server_new(&o);
    int rc = im_server_start(srv);
    if (rc == -EPERM || rc == -ENOSYS) {
        fprintf(stderr, "io_uring unavailable: skipped\n");
        exit(77);
    }
    CHECK(rc == 0, "start");
    CHECK(im_executor_threads(im_server_executor(srv)) == 3, "3 workers");
    CHECK(im_executor_threads(im_server_serial(srv)) == 1, "serial has 1");
    im_loop_call(srv->loops[1], drive, NULL);
    for (int i = 0; i < 1000 && atomic_load(&done_count) < JOBS; i++) sleep_ms(10);
    CHECK(atomic_load(&done_count) == JOBS, "all %d completions arrived: %d", JOBS,
          atomic_load(&done_count));
    CHECK(atomic_load(&wrong_thread) == 0, "%d completions off the submitting loop",
          atomic_load(&wrong_thread));
    CHECK(atomic_load(&ran_on_loop) == 0, "jobs ran on workers");
    im_server_stop(srv);
    im_server_wait(srv);
    im_server_free(srv);
}

/* ---- a serial executor: order, exclusivity, full, shutdown ---- */

static atomic_int gate_open, in_job, max_in_job, order_slot, order_len;
static int order[64];

static void gate_run(void *arg)
{
    (void)arg;
    while (!atomic_load(&gate_open)) sleep_ms(1);
}

static void record_run(void *arg)
{
    int now = atomic_fetch_add(&in_job, 1) + 1, m = atomic_load(&max_in_job);
    while (now > m && !atomic_compare_exchange_weak(&max_in_job, &m, now)) {
    }
    order[atomic_fetch_add(&order_slot, 1)] = (int)(intptr_t)arg;
    atomic_fetch_add(&order_len, 1); /* after the write: the reader waits for this */
    atomic_fetch_sub(&in_job, 1);
}

static atomic_int status_ok, status_cancelled, off_loop_done;
static void count_done(void *arg, int status)
{
    (void)arg;
    if (!im_loop_current()) atomic_fetch_add(&off_loop_done, 1); /* no loop: on the worker */
    if (status == 0) atomic_fetch_add(&status_ok, 1);
    else if (status == -ECANCELED) atomic_fetch_add(&status_cancelled, 1);
}

static void *open_gate_later(void *arg)
{
    (void)arg;
    sleep_ms(200);
    atomic_store(&gate_open, 1);
    return NULL;
}

static void test_serial(void)
{
    im_executor_opts o = {0};
    o.threads = 1;
    o.levels = 4;
    o.capacity = 4;
    o.name = "t-serial";
    im_executor *ex = im_executor_new(&o);
    CHECK(ex != NULL, "new");
    /* hold the only worker, then queue at mixed priorities */
    CHECK(im_executor_submit(ex, 0, gate_run, NULL, count_done) == 0, "gate");
    while (im_executor_running(ex) == 0) sleep_ms(1);
    static const int prios[] = {3, 1, 2, 0, 1, 3, 0, 2};
    for (int i = 0; i < 8; i++)
        CHECK(im_executor_submit(ex, (unsigned)prios[i], record_run, (void *)(intptr_t)i,
                                 count_done) == 0, "queue %d", i);
    for (int i = 0; i < 2; i++) /* level 2 then holds its 4 */
        CHECK(im_executor_submit(ex, 2, record_run, (void *)(intptr_t)(100 + i), count_done) == 0,
              "fill level 2");
    CHECK(im_executor_submit(ex, 2, record_run, NULL, count_done) == -EAGAIN, "level 2 is full");
    CHECK(im_executor_submit(ex, 9, record_run, NULL, count_done) == -EINVAL, "no level 9");
    CHECK(im_executor_queued(ex) == 10, "10 queued: %zu", im_executor_queued(ex));
    atomic_store(&gate_open, 1);
    while (atomic_load(&order_len) < 10) sleep_ms(1);
    static const int want[] = {3, 6, 1, 4, 2, 7, 100, 101, 0, 5};
    for (int i = 0; i < 10; i++)
        CHECK(order[i] == want[i], "run %d: job %d, want %d", i, order[i], want[i]);
    CHECK(atomic_load(&max_in_job) == 1, "serial: never two at once");

    /* shutdown: the running job finishes, queued ones come back cancelled */
    atomic_store(&gate_open, 0);
    atomic_store(&status_ok, 0);
    atomic_store(&status_cancelled, 0);
    CHECK(im_executor_submit(ex, 0, gate_run, NULL, count_done) == 0, "gate again");
    while (im_executor_running(ex) == 0) sleep_ms(1);
    for (int i = 0; i < 3; i++) im_executor_submit(ex, 1, record_run, (void *)(intptr_t)200, count_done);
    pthread_t opener;
    pthread_create(&opener, NULL, open_gate_later, NULL);
    im_executor_shutdown(ex); /* waits for the gate job */
    pthread_join(opener, NULL);
    CHECK(atomic_load(&status_ok) == 1, "the running job completed: %d", atomic_load(&status_ok));
    CHECK(atomic_load(&status_cancelled) == 3, "queued jobs cancelled: %d",
          atomic_load(&status_cancelled));
    CHECK(im_executor_submit(ex, 0, record_run, NULL, count_done) == -ESHUTDOWN, "after shutdown");
    CHECK(atomic_load(&off_loop_done) == 1 + 10 + 1 + 3, "done on the worker without a loop: %d",
          atomic_load(&off_loop_done));
    im_executor_free(ex);
}

/* ---- many submitters, many workers: nothing lost, nothing twice ---- */

#define STRESS 50000
static atomic_int stress_ran[STRESS], stress_done;
static void stress_run(void *arg) { atomic_fetch_add(&stress_ran[(intptr_t)arg], 1); }
static void stress_fin(void *arg, int status)
{
    (void)arg;
    CHECK(status == 0, "stress job status %d", status);
    atomic_fetch_add(&stress_done, 1);
}
static im_executor *stress_ex;
static void *submitter(void *arg)
{
    int base = (int)(intptr_t)arg;
    for (int i = base; i < STRESS; i += 4)
        while (im_executor_submit(stress_ex, (unsigned)(i % 8), stress_run, (void *)(intptr_t)i,
                                  stress_fin) == -EAGAIN)
            sched_yield();
    return NULL;
}

static void test_stress(void)
{
    im_executor_opts o = {0};
    o.threads = 4; /* oversubscribed on 2 cores */
    o.capacity = 32;
    stress_ex = im_executor_new(&o);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, submitter, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    while (atomic_load(&stress_done) < STRESS) sleep_ms(1);
    im_executor_free(stress_ex);
    for (int i = 0; i < STRESS; i++)
        if (atomic_load(&stress_ran[i]) != 1) {
            CHECK(0, "job %d ran %d times", i, atomic_load(&stress_ran[i]));
            break;
        }
}

/* Completions that outlive the loops run during im_server_free: one that submits again (to
 * either executor) must get -ESHUTDOWN, not a freed executor. */
static im_server *chain_srv;
static atomic_int chain_refused, chain_done;
static void slow_run(void *arg)
{
    (void)arg;
    sleep_ms(20);
}
static void chain_done_fn(void *arg, int status)
{
    (void)arg;
    (void)status;
    atomic_fetch_add(&chain_done, 1);
    int r1 = im_executor_submit(im_server_executor(chain_srv), 0, slow_run, NULL, NULL);
    int r2 = im_executor_submit(im_server_serial(chain_srv), 0, slow_run, NULL, NULL);
    if (r1 == -ESHUTDOWN && r2 == -ESHUTDOWN) atomic_fetch_add(&chain_refused, 1);
}
static void chain_start(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++)
        im_executor_submit(im_server_serial(chain_srv), 0, slow_run, NULL, chain_done_fn);
}

static void test_free_with_chained_completions(void)
{
    im_server_opts o = {0};
    o.port = -1;
    o.loops = 1;
    o.workers = 1;
    o.no_signals = 1;
    chain_srv = im_server_new(&o);
    CHECK(im_server_start(chain_srv) == 0, "start");
    im_loop_call(chain_srv->loops[0], chain_start, NULL);
    sleep_ms(50); /* a job or two ran; the rest wait in the serial executor */
    im_server_stop(chain_srv);
    im_server_wait(chain_srv);
    im_server_free(chain_srv); /* queued jobs come back cancelled, here; their done resubmits */
    CHECK(atomic_load(&chain_done) == 20, "every job completed or came back: %d",
          atomic_load(&chain_done));
    CHECK(atomic_load(&chain_refused) >= 1, "resubmits during free are refused");
}

int main(void)
{
    im_log_set_level(IM_LOG_WARN);
    test_serial();
    test_stress();
    test_completions_on_loop();
    test_free_with_chained_completions();
    return check_exit("executor");
}
