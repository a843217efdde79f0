/* bindmod.c — the endpoint bench_bind binds: ten fields of the usual kinds. */
#include "immersive.h"
#include "bindmod.gen.h"

IM_MODULE(bindmod, "A ten-field body, for the binding benchmark")

IM_ENDPOINT(POST, "/bench/order", .summary = "An order")
IM_ARG(int64, id, "Order id", .min = 1)
IM_ARG(string, customer, "Customer name", .max_length = 64)
IM_ARG(string, email, "Customer e-mail", .max_length = 128)
IM_ARG(int32, quantity, "Items", .min = 1, .max = 1000)
IM_ARG(double, price, "Unit price", .min = 0)
IM_ARG(double, discount, "Discount", .min = 0, .max = 1, .default = 0)
IM_ARG(bool, express, "Express shipping", .default = false)
IM_ARG(enum, currency, "Currency", .values = {"EUR", "USD", "GBP"})
IM_ARG(int64, created, "Creation time (Unix seconds)")
IM_ARG(string, note, "Free text", .max_length = 2000, .default = "")
IM_RESULT(double, "Total")
int order(im_call *call, const order_args *in, order_result *out)
{
    (void)call;
    out->result = in->price * in->quantity * (1 - in->discount);
    return 0;
}
