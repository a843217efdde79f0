/* jobs.c — the queue example's one endpoint: a job run on the one worker thread, behind the
 * bounded queue (--workers 1 --queue-capacity 2), whose caller waits for its result on the
 * loop without holding it (the loop keeps answering others meanwhile). */
#include <ctype.h>
#include <time.h>

#include "immersive.h"
#include "jobs.gen.h"

IM_MODULE(jobs, "Jobs on one worker thread behind a bounded queue")

IM_ENDPOINT(POST, "/jobs", .summary = "Runs a job on the worker and answers its result",
            .mode = IM_POOL)
IM_ARG(string, text, "What the job upper-cases", .max_length = 1000)
IM_ARG(int64, ms, "How long the job works (ms)", .min = 0, .max = 60000, .default = 0)
IM_RESULT(object, "The job's result")
IM_FIELD(string, text, "The text, upper-cased")
IM_FIELD(int64, ms, "How long it worked (ms)")
int job(im_call *call, const job_args *in, job_result *out)
{
    /* "work" in 10 ms steps that stops when the task is cancelled */
    for (int64_t left = in->ms; left > 0 && !im_call_cancelled(call); left -= 10) {
        struct timespec ts = {0, (left < 10 ? left : 10) * 1000000L};
        while (nanosleep(&ts, &ts)) {
        }
    }
    char *up = im_call_alloc(call, in->text.len + 1);
    if (!up) return im_call_fail(call, 503, "out of memory");
    for (size_t i = 0; i < in->text.len; i++) up[i] = (char)toupper((unsigned char)in->text.ptr[i]);
    up[in->text.len] = 0;
    out->text = im_str_from(up);
    out->ms = in->ms;
    return 0;
}
