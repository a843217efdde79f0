/* demo.c — the demo module: functions that run as tasks (pool and serial), with priorities,
 * limits, time limits, progress and failures. The tests, the examples and outside checks call
 * them; every one replies synchronously unless the request says Prefer: respond-async. */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "immersive.h"
#include "demo.gen.h"

IM_MODULE(demo, "Tasks: sleeping, counting, failing and reporting progress on the executors")

/* Sleeps up to `seconds`, in 10 ms steps, and stops early when the call is cancelled or past
 * its time limit. Returns 1 when it slept the whole time. */
static int nap(im_call *call, double seconds)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (im_call_cancelled(call)) return 0;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double left = seconds - (double)(now.tv_sec - start.tv_sec) -
                      (double)(now.tv_nsec - start.tv_nsec) / 1e9;
        if (left <= 0) return 1;
        struct timespec ts = {0, (long)((left < 0.01 ? left : 0.01) * 1e9)};
        while (nanosleep(&ts, &ts) && errno == EINTR) {
        }
    }
}

IM_ENDPOINT(POST, "/v1/demo/sleep", .name = "sleep", .summary = "Sleep, then answer the value",
            .mode = IM_POOL, .priority = 4, .max_concurrency = 64, .timeout_ms = 30000)
IM_ARG(double, seconds, "How long to sleep", .min = 0, .max = 60)
IM_ARG(int64, value, "What to answer", .default = 0)
IM_RESULT(int64, "The value")
int sleep_for(im_call *call, const sleep_for_args *in, sleep_for_result *out)
{
    nap(call, in->seconds);
    out->result = in->value;
    return 0;
}

IM_ENDPOINT(POST, "/v1/demo/urgent", .summary = "Answer the value, at the most urgent priority",
            .mode = IM_POOL, .priority = 0)
IM_ARG(int64, value, "What to answer")
IM_RESULT(int64, "The value")
int urgent(im_call *call, const urgent_args *in, urgent_result *out)
{
    (void)call;
    out->result = in->value;
    return 0;
}

IM_ENDPOINT(POST, "/v1/demo/batch", .summary = "Answer the value, at a low priority",
            .mode = IM_POOL, .priority = 7)
IM_ARG(int64, value, "What to answer")
IM_RESULT(int64, "The value")
int batch(im_call *call, const batch_args *in, batch_result *out)
{
    (void)call;
    out->result = in->value;
    return 0;
}

IM_ENDPOINT(POST, "/v1/demo/limited", .summary = "Sleep; one call at a time",
            .mode = IM_POOL, .max_concurrency = 1)
IM_ARG(double, seconds, "How long to sleep", .min = 0, .max = 60)
IM_RESULT(bool, "true")
int limited(im_call *call, const limited_args *in, limited_result *out)
{
    nap(call, in->seconds);
    out->result = true;
    return 0;
}

IM_ENDPOINT(POST, "/v1/demo/slow", .summary = "Sleep, within a time limit of 1 s",
            .mode = IM_POOL, .timeout_ms = 1000)
IM_ARG(double, seconds, "How long to sleep", .min = 0, .max = 60)
IM_RESULT(bool, "true when it slept the whole time")
int slow(im_call *call, const slow_args *in, slow_result *out)
{
    out->result = nap(call, in->seconds); /* stops once past its time limit */
    return 0;
}

IM_ENDPOINT(POST, "/v1/demo/progress", .summary = "Work in steps, reporting progress after each",
            .mode = IM_POOL)
IM_ARG(int32, steps, "How many steps", .min = 1, .max = 100)
IM_ARG(int32, step_ms, "Milliseconds a step takes", .min = 0, .max = 1000, .default = 0)
IM_RESULT(int32, "The steps done")
int progress(im_call *call, const progress_args *in, progress_result *out)
{
    for (int i = 1; i <= in->steps; i++) {
        if (!nap(call, in->step_ms / 1000.0)) return im_call_fail(call, 500, "stopped at step %d", i);
        char msg[48];
        snprintf(msg, sizeof msg, "step %d of %d", i, in->steps);
        im_call_progress(call, (double)i / in->steps, msg);
    }
    out->result = in->steps;
    return 0;
}

static long counter_value; /* not thread-safe on purpose: the serial executor protects it */

IM_ENDPOINT(POST, "/v1/demo/counter", .summary = "Count calls, on the single-threaded executor",
            .mode = IM_SERIAL)
IM_RESULT(int64, "How many calls came before, plus one")
int counter(im_call *call, const counter_args *in, counter_result *out)
{
    (void)call;
    (void)in;
    long n = counter_value; /* read, wait, write: overlapping calls would lose updates */
    struct timespec ts = {0, 1000000};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
    counter_value = n + 1;
    out->result = n + 1;
    return 0;
}

IM_ENDPOINT(POST, "/v1/demo/fail", .name = "fail", .summary = "Fail with the message given",
            .mode = IM_POOL)
IM_ARG(string, message, "What the failure says", .max_length = 200)
int fail_with(im_call *call, const fail_with_args *in, fail_with_result *out)
{
    (void)out;
    return im_call_fail(call, 500, "%.*s", (int)in->message.len, in->message.ptr);
}

IM_ENDPOINT(POST, "/v1/demo/add", .summary = "Add two integers, on the pool (as /v1/math/add)",
            .mode = IM_POOL)
IM_ARG(int64, x, "A value of X")
IM_ARG(int64, y, "A value of Y")
IM_RESULT(int64, "x + y")
int add_pool(im_call *call, const add_pool_args *in, add_pool_result *out)
{
    if (__builtin_add_overflow(in->x, in->y, &out->result))
        return im_call_fail(call, 400, "x + y does not fit in a 64-bit integer");
    return 0;
}

IM_ENDPOINT(POST, "/v1/demo/note", .summary = "Log a line from a worker thread",
            .description = "Logs 'note: <message>' at info level and the time of the work at "
                           "debug level (IM_TIMED); both lines carry the request's id. Answers "
                           "that id (im_call_request_id).",
            .mode = IM_POOL)
IM_ARG(string, message, "What the line says", .max_length = 200)
IM_RESULT(string, "The request id the lines carry")
int note(im_call *call, const note_args *in, note_result *out)
{
    IM_TIMED("note") { im_log(IM_LOG_INFO, "note: %.*s", (int)in->message.len, in->message.ptr); }
    out->result = im_str_from(im_call_request_id(call));
    return 0;
}
