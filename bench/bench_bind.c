/* bench_bind.c — binding a ten-field JSON object into its argument struct with the binder
 * gen/immersive_gen.py generates (bench/bindmod), against parsing the same body with cJSON and
 * reading the ten fields into the same struct (with the same type checks); and, separately,
 * both from a body that is copied first (the binder decodes strings in place, so it gets a
 * fresh copy every time, as a server does). Prints one JSON object per line.
 * With simdjson (libsimdjson-dev) it times On-Demand reading the same fields with the same checks
 * (bind_simdjson.cpp), on this body and on a 2 KB one.
 * usage: bench_bind [--iterations N] [--only small|shuffled|2kb]      Never run by ctest. */
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

/* The same fields in another order than declared: the binder's in-order compare misses at the
 * first key, and every key goes through the key loop. */
static const char body_shuffled[] =
    "{\"note\":\"Leave it at the door, please\",\"currency\":\"EUR\",\"email\":\"ada@example.org\","
    "\"id\":123456789,\"express\":true,\"price\":19.99,\"customer\":\"Ada Lovelace\",\"created\":1764000000,"
    "\"discount\":0.15,\"quantity\":12}";

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

#ifdef IM_BENCH_SIMDJSON
int bind_simdjson(const char *text, size_t len, size_t cap, order_args *a);
int bind_simdjson_raw(const char *text, size_t len, size_t cap, order_args *a);
#endif

/* The same ten fields with a note of about 1,800 bytes (escapes in it): a 2 KB body. */
static char body2[4096];

static void make_body2(void)
{
    char note[2048];
    size_t o = 0;
    while (o < 1700) o += (size_t)snprintf(note + o, sizeof note - o, "Leave it at the door, \\\"please\\\"\\n ");
    snprintf(body2, sizeof body2,
             "{\"id\":123456789,\"customer\":\"Ada Lovelace\",\"email\":\"ada@example.org\",\"quantity\":12,"
             "\"price\":19.99,\"discount\":0.15,\"express\":true,\"currency\":\"EUR\","
             "\"created\":1764000000,\"note\":\"%s\"}", note);
}

static void run(const char *name, const char *text, long n, im_ctx *c, const im_endpoint *ep, char *buf,
                size_t cap)
{
    size_t len = strlen(text);
    order_args a, b;
    memcpy(buf, text, len);
    c->req.body.ptr = buf;
    c->req.body.len = len;
    memset(&a, 0, sizeof a);
    if (im__ep_bind(c, ep, &a) || a.id != 123456789 || a.quantity != 12 || a.currency != 0) {
        fprintf(stderr, "bench_bind: the binder read %s wrong\n", name);
        exit(1);
    }
    im__arena_reset(&c->arena);
    memset(&b, 0, sizeof b);
    if (bind_cjson(text, len, &b) || b.id != a.id || b.price != a.price) {
        fprintf(stderr, "bench_bind: cJSON read %s wrong\n", name);
        exit(1);
    }
#ifdef IM_BENCH_SIMDJSON
    memcpy(buf, text, len);
    memset(&b, 0, sizeof b);
    if (bind_simdjson(buf, len, cap, &b) || b.id != a.id || b.price != a.price || b.note.len != a.note.len) {
        fprintf(stderr, "bench_bind: simdjson read %s wrong\n", name);
        exit(1);
    }
    memcpy(buf, text, len);
    memset(&b, 0, sizeof b);
    if (bind_simdjson_raw(buf, len, cap, &b) || b.id != a.id || b.price != a.price || b.note.len != a.note.len ||
        b.currency != a.currency || b.created != a.created) {
        fprintf(stderr, "bench_bind: simdjson (raw keys) read %s wrong\n", name);
        exit(1);
    }
#else
    (void)cap;
#endif
    double best_im = 1e9, best_cj = 1e9, best_sj = 1e9, best_sr = 1e9;
    for (int round = 0; round < 5; round++) { /* interleaved; the best of five */
        double t0 = now_s();
        for (long i = 0; i < n; i++) {
            memcpy(buf, text, len); /* a fresh body: strings are decoded in place */
            memset(&a, 0, sizeof a);
            im__ep_bind(c, ep, &a);
            if (c->arena.head) im__arena_reset(&c->arena);
        }
        double t1 = now_s();
        for (long i = 0; i < n; i++) {
            memset(&b, 0, sizeof b);
            bind_cjson(text, len, &b);
        }
        double t2 = now_s();
#ifdef IM_BENCH_SIMDJSON
        for (long i = 0; i < n; i++) {
            memcpy(buf, text, len); /* the same copy the binder gets, for fairness */
            memset(&b, 0, sizeof b);
            bind_simdjson(buf, len, cap, &b);
        }
#endif
        double t3 = now_s();
#ifdef IM_BENCH_SIMDJSON
        for (long i = 0; i < n; i++) {
            memcpy(buf, text, len);
            memset(&b, 0, sizeof b);
            bind_simdjson_raw(buf, len, cap, &b);
        }
#endif
        double t4 = now_s();
        if (t4 - t3 < best_sr) best_sr = t4 - t3;
        if (t1 - t0 < best_im) best_im = t1 - t0;
        if (t2 - t1 < best_cj) best_cj = t2 - t1;
        if (t3 - t2 < best_sj) best_sj = t3 - t2;
    }
    printf("{\"bench\":\"%s\",\"impl\":\"im\",\"ns_per_bind\":%.0f,\"bytes\":%zu}\n", name, best_im * 1e9 / (double)n, len);
    printf("{\"bench\":\"%s\",\"impl\":\"cjson\",\"ns_per_bind\":%.0f,\"bytes\":%zu}\n", name, best_cj * 1e9 / (double)n, len);
#ifdef IM_BENCH_SIMDJSON
    printf("{\"bench\":\"%s\",\"impl\":\"simdjson_ondemand\",\"ns_per_bind\":%.0f,\"bytes\":%zu}\n", name,
           best_sj * 1e9 / (double)n, len);
    printf("{\"bench\":\"%s\",\"impl\":\"simdjson_ondemand_raw_keys\",\"ns_per_bind\":%.0f,\"bytes\":%zu}\n", name,
           best_sr * 1e9 / (double)n, len);
    printf("{\"bench\":\"%s\",\"im_time_over_simdjson\":%.2f,\"im_time_over_simdjson_raw_keys\":%.2f,"
           "\"speedup_vs_cjson\":%.2f}\n", name, best_im / best_sj, best_im / best_sr, best_cj / best_im);
#else
    printf("{\"bench\":\"%s\",\"speedup_vs_cjson\":%.2f}\n", name, best_cj / best_im);
#endif
}

int main(int argc, char **argv)
{
    long n = 1000000;
    const char *only = "";
    for (int i = 1; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--iterations")) n = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--only")) only = argv[i + 1]; /* one body: for a profiler */
    im_server *s = im_server_new(NULL);
    if (im_register_bench_bind(s)) return 1;
    const im_endpoint *ep = &s->svcs->eps[0]; /* routed only when the server starts */
    /* a context as the loop would hand the handler: the body in a buffer of its own, with the
     * 64 bytes of padding simdjson reads past the end */
    im_ctx *c = calloc(1, sizeof *c);
    im_loop *L = calloc(1, sizeof *L);
    L->srv = s;
    c->loop = L;
    make_body2();
    size_t cap = sizeof body2 + 64;
    char *buf = calloc(1, cap);
    if (!*only || !strcmp(only, "small")) run("bind_10_fields", body, n, c, ep, buf, cap);
    if (!*only || !strcmp(only, "shuffled")) run("bind_10_fields_shuffled", body_shuffled, n, c, ep, buf, cap);
    if (!*only || !strcmp(only, "2kb")) run("bind_10_fields_2kb", body2, n / 4, c, ep, buf, cap);
    im__arena_free(&c->arena);
    free(buf);
    free(c);
    free(L);
    im_server_free(s);
    return 0;
}
