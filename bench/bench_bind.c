/* bench_bind.c — binding a ten-field JSON object into its argument struct with the binder
 * gen/immersive_gen.py generates (bench/bindmod), against parsing the same body with cJSON and
 * reading the ten fields into the same struct (with the same type checks); and, separately,
 * both from a body that is copied first (the binder decodes strings in place, so it gets a
 * fresh copy every time, as a server does). Prints one JSON object per line.
 * usage: bench_bind [--iterations N]      Never run by ctest. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bindmod.gen.h"
#include "bench_bind.service.h"

static const char body[] =
    "{\"id\":123456789,\"customer\":\"Ada Lovelace\",\"email\":\"ada@example.org\",\"quantity\":12,"
    "\"price\":19.99,\"discount\":0.15,\"express\":true,\"currency\":\"EUR\","
    "\"created\":1764000000,\"note\":\"Leave it at the door, please\"}";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* cJSON: parse, then read the fields into the struct with the checks a binder would make */
static int bind_cjson(const char *text, size_t len, order_args *a)
{
    cJSON *root = cJSON_ParseWithLength(text, len), *v;
    int ok = root && cJSON_IsObject(root);
#define NUM(name, field, type)                                                \
    v = cJSON_GetObjectItemCaseSensitive(root, name);                          \
    if (cJSON_IsNumber(v)) a->field = (type)v->valuedouble;                    \
    else ok = 0
#define STR(name, field)                                                      \
    v = cJSON_GetObjectItemCaseSensitive(root, name);                          \
    if (cJSON_IsString(v)) {                                                   \
        a->field.ptr = v->valuestring;                                         \
        a->field.len = strlen(v->valuestring);                                 \
    } else ok = 0
    if (ok) {
        NUM("id", id, int64_t);
        STR("customer", customer);
        STR("email", email);
        NUM("quantity", quantity, int32_t);
        NUM("price", price, double);
        NUM("discount", discount, double);
        v = cJSON_GetObjectItemCaseSensitive(root, "express");
        if (cJSON_IsBool(v)) a->express = cJSON_IsTrue(v);
        else ok = 0;
        v = cJSON_GetObjectItemCaseSensitive(root, "currency");
        if (cJSON_IsString(v))
            a->currency = !strcmp(v->valuestring, "EUR") ? 0 : !strcmp(v->valuestring, "USD") ? 1 : 2;
        else ok = 0;
        NUM("created", created, int64_t);
        STR("note", note);
    }
#undef NUM
#undef STR
    volatile int64_t sink = a->id + (int64_t)a->customer.len; /* touch before the tree goes */
    (void)sink;
    cJSON_Delete(root);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    long n = 1000000;
    for (int i = 1; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--iterations")) n = atol(argv[i + 1]);
    im_server *s = im_server_new(NULL);
    if (im_register_bench_bind(s)) return 1;
    const im_endpoint *ep = s->eps[0]->ep;
    /* a context as the loop would hand the handler: the body in a buffer of its own */
    im_ctx *c = calloc(1, sizeof *c);
    im_loop *L = calloc(1, sizeof *L);
    L->srv = s;
    c->loop = L;
    char *buf = malloc(sizeof body);
    order_args a;
    size_t len = sizeof body - 1;

    /* check both give the same struct */
    memcpy(buf, body, len);
    c->req.body.ptr = buf;
    c->req.body.len = len;
    memset(&a, 0, sizeof a);
    if (im__ep_bind(c, ep, &a) || a.id != 123456789 || a.quantity != 12 || a.currency != 0 ||
        !im_str_eq(a.note, "Leave it at the door, please")) {
        fprintf(stderr, "bench_bind: the binder read the body wrong\n");
        return 1;
    }
    order_args b;
    memset(&b, 0, sizeof b);
    if (bind_cjson(body, len, &b) || b.id != a.id || b.price != a.price) {
        fprintf(stderr, "bench_bind: cJSON read the body wrong\n");
        return 1;
    }
    im__arena_reset(&c->arena);

    double best_im = 1e9, best_cj = 1e9;
    for (int round = 0; round < 5; round++) { /* interleaved; the best of five */
        double t0 = now_s();
        for (long i = 0; i < n; i++) {
            memcpy(buf, body, len); /* a fresh body: strings are decoded in place */
            memset(&a, 0, sizeof a);
            im__ep_bind(c, ep, &a);
            if (c->arena.head) im__arena_reset(&c->arena);
        }
        double t1 = now_s();
        for (long i = 0; i < n; i++) {
            memset(&b, 0, sizeof b);
            bind_cjson(body, len, &b);
        }
        double t2 = now_s();
        if (t1 - t0 < best_im) best_im = t1 - t0;
        if (t2 - t1 < best_cj) best_cj = t2 - t1;
    }
    printf("{\"bench\":\"bind_10_fields\",\"impl\":\"im\",\"ns_per_bind\":%.0f,\"bytes\":%zu}\n",
           best_im * 1e9 / (double)n, len);
    printf("{\"bench\":\"bind_10_fields\",\"impl\":\"cjson\",\"ns_per_bind\":%.0f,\"bytes\":%zu}\n",
           best_cj * 1e9 / (double)n, len);
    printf("{\"bench\":\"bind_10_fields\",\"speedup_vs_cjson\":%.2f}\n", best_cj / best_im);
    im__arena_free(&c->arena);
    free(buf);
    free(c);
    free(L);
    im_server_free(s);
    return 0;
}
