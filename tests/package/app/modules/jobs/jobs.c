/* jobs.c — the outside project's one module: an endpoint on the pool. */
#include "immersive.h"
#include "jobs.gen.h"

IM_MODULE(jobs, "Jobs of the outside project")

IM_ENDPOINT(POST, "/v1/jobs/double", .summary = "Twice n", .mode = IM_POOL)
IM_ARG(int64, n, "A number", .min = -1000000, .max = 1000000)
IM_RESULT(int64, "2n")
int double_it(im_call *call, const double_it_args *in, double_it_result *out)
{
    (void)call;
    out->result = 2 * in->n;
    return 0;
}
