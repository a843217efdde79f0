/* arrays.c — the demo module's numeric endpoints: n-dimensional arrays in and out (JSON nested
 * lists, numpy's .npy, raw float64s), as the FastAPI workspace's /process_np_array does, with a
 * task id and /tasks/{id}/result. */
#include <math.h>

#include "immersive.h"
#include "demo.gen.h"

IM_ENDPOINT(POST, "/v1/demo/normalize", .summary = "Scale an array to unit L2 norm",
            .description = "Takes a float64 array of any shape (JSON nested lists, or a .npy "
                           "body) and answers the same shape divided by its L2 norm: as JSON, "
                           "or as .npy with Accept: application/x-npy.",
            .mode = IM_POOL)
IM_ARG(ndarray, array, "The array (float64, any shape)", .dtype = "f64")
IM_RESULT(ndarray, "The array divided by its L2 norm")
int normalize(im_call *call, const normalize_args *in, normalize_result *out)
{
    const double *x = in->array.data;
    size_t n = in->array.nbytes / sizeof(double);
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += x[i] * x[i];
    double norm = sqrt(ss);
    if (!(norm > 0) || !isfinite(norm))
        return im_call_fail(call, 422, "the array's L2 norm is %s: it cannot be scaled to 1",
                            norm > 0 ? "not finite" : "0");
    double *y = im_call_alloc(call, in->array.nbytes);
    if (!y) return im_call_fail(call, 503, "out of memory");
    for (size_t i = 0; i < n; i++) y[i] = x[i] / norm;
    out->result = in->array; /* same dtype, dimensions and shape */
    out->result.data = y;
    return 0;
}

IM_ENDPOINT(POST, "/v1/demo/sum", .summary = "Sum float64 values",
            .description = "The values come as JSON ({\"values\": [...]}), as a .npy array or as "
                           "raw little-endian float64s (application/octet-stream).",
            .mode = IM_PROCESS, .max_body_bytes = 268435456 /* 10^7 values: 80 MB raw, more as JSON */)
IM_ARG(ndarray, values, "The values (float64, 1 dimension, up to 10^7)", .dtype = "f64",
       .ndim = 1, .max_items = 10000000)
IM_RESULT(double, "Their sum")
int sum_values(im_call *call, const sum_values_args *in, sum_values_result *out)
{
    (void)call;
    const double *x = in->values.data;
    size_t n = (size_t)in->values.shape[0];
    /* four partial sums: the adds pipeline (and vectorize) instead of waiting on one chain */
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += x[i];
        s1 += x[i + 1];
        s2 += x[i + 2];
        s3 += x[i + 3];
    }
    for (; i < n; i++) s0 += x[i];
    out->result = (s0 + s1) + (s2 + s3);
    return 0;
}

IM_ENDPOINT(POST, "/v1/demo/array_echo", .summary = "Answer the array given",
            .description = "Any dtype and shape, inline: what was bound is what comes back (as "
                           "JSON, or as .npy with Accept: application/x-npy).")
IM_ARG(ndarray, array, "The array")
IM_RESULT(ndarray, "The same array")
int array_echo(im_call *call, const array_echo_args *in, array_echo_result *out)
{
    (void)call;
    out->result = in->array;
    return 0;
}
