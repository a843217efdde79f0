/* modes.c — endpoints that run on the server's executors at every priority, for
 * tests/test_modes.c (a real server in process, called over real sockets). */
#include <time.h>

#include "immersive.h"
#include "modes.gen.h"

IM_MODULE(modes, "Execution modes, priorities and limits, for the mode tests")

IM_ENDPOINT(POST, "/m/pool/0", .summary = "Pool, the most urgent level", .mode = IM_POOL,
            .priority = 0)
IM_ARG(int64, v, "A value")
IM_RESULT(int64, "v")
int pool0(im_call *call, const pool0_args *in, pool0_result *out)
{
    (void)call;
    out->result = in->v;
    return 0;
}

IM_ENDPOINT(POST, "/m/pool/8", .summary = "Pool, level 8", .mode = IM_POOL, .priority = 8)
IM_ARG(int64, v, "A value")
IM_RESULT(int64, "v")
int pool8(im_call *call, const pool8_args *in, pool8_result *out)
{
    (void)call;
    out->result = in->v;
    return 0;
}

IM_ENDPOINT(POST, "/m/pool/10", .summary = "Pool, level 10", .mode = IM_POOL, .priority = 10)
IM_ARG(int64, v, "A value")
IM_RESULT(int64, "v")
int pool10(im_call *call, const pool10_args *in, pool10_result *out)
{
    (void)call;
    out->result = in->v;
    return 0;
}

IM_ENDPOINT(POST, "/m/pool/31", .summary = "Pool, the least urgent level", .mode = IM_POOL,
            .priority = 31)
IM_ARG(int64, v, "A value")
IM_RESULT(int64, "v")
int pool31(im_call *call, const pool31_args *in, pool31_result *out)
{
    (void)call;
    out->result = in->v;
    return 0;
}

IM_ENDPOINT(POST, "/m/serial/31", .summary = "Serial, the least urgent level",
            .mode = IM_SERIAL, .priority = 31)
IM_ARG(int64, v, "A value")
IM_RESULT(int64, "v")
int serial31(im_call *call, const serial31_args *in, serial31_result *out)
{
    (void)call;
    out->result = in->v;
    return 0;
}

IM_ENDPOINT(POST, "/m/inline/defer", .summary = "An inline call that tries to defer its request")
IM_RESULT(object, "What the attempts returned")
IM_FIELD(int32, defer, "im_ctx_defer's result")
IM_FIELD(int32, stream, "im_stream_begin's result")
int inline_defer(im_call *call, const inline_defer_args *in, inline_defer_result *out)
{
    (void)in;
    im_ctx *c = im_call_ctx(call);
    out->defer = im_ctx_defer(c, NULL, NULL);
    out->stream = im_stream_begin(c, 200, "text/plain");
    return 0;
}

IM_OBJECT(pt, "A point")
IM_FIELD(double, x, "X")
IM_FIELD(double, y, "Y")
IM_FIELD(string, label, "A name", .optional = true)

IM_ENDPOINT(POST, "/m/points", .summary = "Counts points, on the pool", .mode = IM_POOL)
IM_ARG(pt[], points, "The points")
IM_RESULT(int64, "How many")
int count_points(im_call *call, const count_points_args *in, count_points_result *out)
{
    (void)call;
    out->result = (int64_t)in->points.len;
    return 0;
}

IM_ENDPOINT(POST, "/m/points/inline", .summary = "Counts points, on the loop")
IM_ARG(pt[], points, "The points")
IM_RESULT(int64, "How many")
int count_points_inline(im_call *call, const count_points_inline_args *in,
                        count_points_inline_result *out)
{
    (void)call;
    out->result = (int64_t)in->points.len;
    return 0;
}

IM_ENDPOINT(POST, "/m/points/two", .summary = "Counts the points of two arrays, on the loop")
IM_ARG(pt[], a, "The first points")
IM_ARG(pt[], b, "The second points")
IM_RESULT(int64, "How many in all")
int count_two(im_call *call, const count_two_args *in, count_two_result *out)
{
    (void)call;
    out->result = (int64_t)(in->a.len + in->b.len);
    return 0;
}

void modes_block(void); /* in test_modes.c: returns once the test lets it */

IM_ENDPOINT(POST, "/m/block", .summary = "Holds a worker until the test lets it go",
            .mode = IM_POOL)
IM_RESULT(bool, "true")
int block(im_call *call, const block_args *in, block_result *out)
{
    (void)call;
    (void)in;
    modes_block();
    out->result = true;
    return 0;
}

IM_ENDPOINT(POST, "/m/nap", .summary = "Sleeps ms milliseconds (stops when cancelled)",
            .mode = IM_POOL, .priority = 3)
IM_ARG(int32, ms, "Milliseconds", .min = 0, .max = 10000)
IM_RESULT(int32, "ms")
int nap(im_call *call, const nap_args *in, nap_result *out)
{
    for (int i = 0; i < in->ms && !im_call_cancelled(call); i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    out->result = in->ms;
    return 0;
}
