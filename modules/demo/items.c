/* items.c — answers of other success statuses: 201 with a Location from the handler, 204 with
 * no body, and a status the handler picks (im_call_status), inline and as a task. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>

#include "immersive.h"
#include "demo.gen.h"

IM_ENDPOINT(POST, "/v1/demo/items", .summary = "Create an item (201, with its Location)",
            .status = 201)
IM_ARG(string, name, "Its name", .min_length = 1, .max_length = 40)
IM_RESULT(object, "The item made")
IM_FIELD(int64, id, "Its id")
IM_FIELD(string, name, "Its name")
int item_create(im_call *call, const item_create_args *in, item_create_result *out)
{
    static _Atomic long next = 1;
    char where[64];
    out->id = atomic_fetch_add(&next, 1);
    out->name = in->name;
    snprintf(where, sizeof where, "/v1/demo/items/%lld", (long long)out->id);
    return im_call_header(call, "Location", where) == 0 ? 0 : im_call_fail(call, 500, "no header");
}

IM_ENDPOINT(DELETE, "/v1/demo/items/{id}", .summary = "Delete an item (204: no body)", .status = 204)
IM_ARG(int64, id, "Its id", .min = 1)
int item_delete(im_call *call, const item_delete_args *in, item_delete_result *out)
{
    (void)out;
    (void)in;
    return im_call_header(call, "X-Deleted", "1") == 0 ? 0 : im_call_fail(call, 500, "no header");
}

IM_ENDPOINT(PUT, "/v1/demo/items/{id}", .summary = "Store an item: 201 when new, 200 when replaced",
            .mode = IM_POOL)
IM_ARG(int64, id, "Its id", .min = 1)
IM_ARG(bool, fresh, "It did not exist before")
IM_RESULT(int64, "Its id")
int item_put(im_call *call, const item_put_args *in, item_put_result *out)
{
    out->result = in->id;
    if (in->fresh && im_call_status(call, 201)) return im_call_fail(call, 500, "no status");
    if (im_call_status(call, 302) != -EINVAL) return im_call_fail(call, 500, "302 was taken");
    return im_call_header(call, "ETag", in->fresh ? "\"new\"" : "\"old\"") == 0
               ? 0 : im_call_fail(call, 500, "no header");
}
