/* math.c — the math module: arithmetic endpoints showing each argument source (JSON body,
 * query, path), bounds, defaults, a result object, bulk float64 input (JSON or raw bytes) and
 * work that runs on the worker pool. */
#include <math.h>

#include "immersive.h"
#include "math.gen.h"

IM_MODULE(math, "Arithmetic on integers and on arrays of numbers")

IM_ENDPOINT(POST, "/v1/math/add", .summary = "Add two integers")
IM_ARG(int64, x, "A value of X")
IM_ARG(int64, y, "A value of Y", .min = -1000000, .max = 1000000, .default = 0)
IM_RESULT(int64, "x + y")
int add(im_call *call, const add_args *in, add_result *out)
{
    if (__builtin_add_overflow(in->x, in->y, &out->result))
        return im_call_fail(call, 400, "x + y does not fit in a 64-bit integer");
    return 0;
}

IM_ENDPOINT(POST, "/v1/math/divide", .summary = "Divide two numbers")
IM_ARG(double, a, "The dividend")
IM_ARG(double, b, "The divisor (not zero)")
IM_RESULT(double, "a / b")
int divide(im_call *call, const divide_args *in, divide_result *out)
{
    if (in->b == 0) return im_call_fail(call, 400, "division by zero");
    out->result = in->a / in->b;
    return 0;
}

IM_ENDPOINT(GET, "/v1/math/fib/{n}", .summary = "The n-th Fibonacci number")
IM_ARG(int32, n, "Which one (0 gives 0)", .min = 0, .max = 92)
IM_RESULT(int64, "F(n)")
int fib(im_call *call, const fib_args *in, fib_result *out)
{
    int64_t a = 0, b = 1; /* F(i - 1), F(i): never F(n + 1), which past F(92) overflows */
    (void)call;
    for (int32_t i = 1; i < in->n; i++) {
        int64_t t = a + b;
        a = b;
        b = t;
    }
    out->result = in->n == 0 ? 0 : b;
    return 0;
}

IM_ENDPOINT(GET, "/v1/math/clamp", .summary = "Clamp a value between two bounds")
IM_ARG(double, value, "The value")
IM_ARG(double, lo, "Lower bound", .default = 0)
IM_ARG(double, hi, "Upper bound", .default = 1)
IM_RESULT(double, "value, clamped to [lo, hi]")
int clamp(im_call *call, const clamp_args *in, clamp_result *out)
{
    if (in->lo > in->hi) return im_call_fail(call, 400, "lo (%g) is above hi (%g)", in->lo, in->hi);
    out->result = in->value < in->lo ? in->lo : in->value > in->hi ? in->hi : in->value;
    return 0;
}

/* Statistics of a series, shared by the JSON and the raw endpoints. */
static void series_stats(const double *v, size_t n, double *mean, double *min, double *max,
                         double *stddev)
{
    double sum = 0, sq = 0;
    *min = INFINITY;
    *max = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        sum += v[i];
        if (v[i] < *min) *min = v[i];
        if (v[i] > *max) *max = v[i];
    }
    *mean = sum / (double)n;
    for (size_t i = 0; i < n; i++) sq += (v[i] - *mean) * (v[i] - *mean);
    *stddev = n > 1 ? sqrt(sq / (double)(n - 1)) : 0;
}

IM_ENDPOINT(POST, "/v1/math/stats", .summary = "Mean, extremes and spread of a series",
            .mode = IM_POOL, .priority = 2, .max_concurrency = 64)
IM_ARG(f64array, values, "The series", .min_items = 1, .max_items = 1000000)
IM_RESULT(object, "Statistics")
IM_FIELD(int64, count, "How many values")
IM_FIELD(double, mean, "Arithmetic mean")
IM_FIELD(double, min, "Smallest")
IM_FIELD(double, max, "Largest")
IM_FIELD(double, stddev, "Sample standard deviation")
int stats(im_call *call, const stats_args *in, stats_result *out)
{
    (void)call;
    out->count = (int64_t)in->values.len;
    series_stats(in->values.ptr, in->values.len, &out->mean, &out->min, &out->max, &out->stddev);
    return 0;
}

IM_ENDPOINT(POST, "/v1/math/stats/raw", .summary = "Statistics of raw float64 values",
            .description = "The body is little-endian IEEE 754 float64 values, 8 bytes each "
                           "(Content-Type: application/octet-stream): bound without a copy.",
            .mode = IM_POOL, .priority = 2)
IM_ARG(f64array, values, "The series", .in = raw, .min_items = 1)
IM_RESULT(object, "Statistics")
IM_FIELD(int64, count, "How many values")
IM_FIELD(double, mean, "Arithmetic mean")
IM_FIELD(double, min, "Smallest")
IM_FIELD(double, max, "Largest")
IM_FIELD(double, stddev, "Sample standard deviation")
int stats_raw(im_call *call, const stats_raw_args *in, stats_raw_result *out)
{
    (void)call;
    out->count = (int64_t)in->values.len;
    series_stats(in->values.ptr, in->values.len, &out->mean, &out->min, &out->max, &out->stddev);
    return 0;
}
