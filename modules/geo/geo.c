/* geo.c — the geo module: nested objects, arrays of objects, a path parameter that is a
 * string, and unknown fields ignored on request. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "immersive.h"
#include "geo.gen.h"

IM_MODULE(geo, "Points on a plane")

IM_OBJECT(point, "A point")
IM_FIELD(double, x, "X coordinate", .min = -1e9, .max = 1e9)
IM_FIELD(double, y, "Y coordinate", .min = -1e9, .max = 1e9)
IM_FIELD(string, label, "A name for it", .optional = true, .max_length = 32)

IM_OBJECT(box, "An axis-aligned box")
IM_FIELD(point, lo, "Lower-left corner")
IM_FIELD(point, hi, "Upper-right corner")

IM_ENDPOINT(POST, "/v1/geo/centroid", .summary = "The weighted centre of points")
IM_ARG(point[], points, "The points", .min_items = 1, .max_items = 100000)
IM_ARG(double[], weights, "A weight per point (all 1 when absent)", .optional = true)
IM_RESULT(point, "The centroid, labelled with the count")
int centroid(im_call *call, const centroid_args *in, centroid_result *out)
{
    double sx = 0, sy = 0, sw = 0;
    if (in->has_weights && in->weights.len != in->points.len)
        return im_call_fail(call, 422, "%zu weights for %zu points", in->weights.len, in->points.len);
    for (size_t i = 0; i < in->points.len; i++) {
        double w = in->has_weights ? in->weights.ptr[i] : 1.0;
        sx += w * in->points.ptr[i].x;
        sy += w * in->points.ptr[i].y;
        sw += w;
    }
    if (sw == 0) return im_call_fail(call, 422, "the weights sum to zero");
    out->x = sx / sw;
    out->y = sy / sw;
    char *label = im_call_alloc(call, 32);
    if (label) {
        out->label.len = (size_t)snprintf(label, 32, "centroid of %zu", in->points.len);
        out->label.ptr = label;
        out->has_label = true;
    }
    return 0;
}

IM_ENDPOINT(POST, "/v1/geo/boxes/{name}/contains", .summary = "Is a point inside a box?",
            .extra = IM_IGNORE)
IM_ARG(string, name, "The box's name (echoed back)", .max_length = 40)
IM_ARG(box, box, "The box")
IM_ARG(point, p, "The point")
IM_RESULT(object, "The answer")
IM_FIELD(string, name, "The box's name")
IM_FIELD(bool, inside, "The point is inside or on the edge")
IM_FIELD(double, distance, "Distance from the point to the box (0 inside)")
int contains(im_call *call, const contains_args *in, contains_result *out)
{
    (void)call;
    double dx = fmax(fmax(in->box.lo.x - in->p.x, 0), in->p.x - in->box.hi.x);
    double dy = fmax(fmax(in->box.lo.y - in->p.y, 0), in->p.y - in->box.hi.y);
    out->name = in->name;
    out->distance = sqrt(dx * dx + dy * dy);
    out->inside = out->distance == 0;
    return 0;
}
