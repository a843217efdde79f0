/* fuzz_json.c — libFuzzer target for the JSON reader and the generated binders. Byte 0 picks:
 * 0 the reader alone (checked read-only, then walked decoding in place: both must agree);
 * 1 the data as the JSON body of POST /t/all (tests/fixture: every type and constraint);
 * 2 the data as the query string of GET /t/q/{id}/{name}; 3 the JSON body of POST /t/nd (n-d
 * arrays, constrained); 4 a .npy body of POST /t/npy (answered as .npy when byte 1 is odd).
 * The answer must be 200, 400 or 422 with a JSON body, and the server must not leak or crash. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../support/json_walk.h"

#include "fixture.service.h"
#include "../support/fake_loop.h"

static im_server *srv;
static im_loop L;


static void setup(void)
{
    im_server_opts o = {0};
    o.max_body_bytes = 1 << 20;
    im_log_set_level(IM_LOG_OFF);
    srv = im_server_new(&o);
    if (im_register_fixture(srv) || fake_loop_init(&L, srv)) abort();
}

/* The answer's status; its body (after the head) into *out when out is not NULL (malloc'd). */
static int request_out(const char *head, const char *body, size_t n, char **out, size_t *outlen)
{
    size_t hl = strlen(head);
    char *req = malloc(hl + n);
    memcpy(req, head, hl);
    memcpy(req + hl, body, n);
    im__conn *c = fake_conn(&L);
    fake_feed(&L, c, req, hl + n);
    free(req);
    if (!c->out) abort(); /* every request is answered */
    int status = atoi(c->out->data + 9);
    if (status != 200 && status != 400 && status != 404 && status != 414 && status != 422 &&
        status != 431)
        abort();
    if (out) {
        const char *b = memmem(c->out->data, c->out->len, "\r\n\r\n", 4);
        size_t off = b ? (size_t)(b + 4 - c->out->data) : c->out->len;
        *outlen = c->out->len - off;
        *out = malloc(*outlen + 1);
        memcpy(*out, c->out->data + off, *outlen);
    }
    return status;
}

static void request(const char *head, const char *body, size_t n) { request_out(head, body, n, NULL, NULL); }

/* Whether byte c of a JSON text, read in order, stands outside strings (quotes count as in). */
static int outside(char c, int *str, int *esc)
{
    if (*str) {
        if (*esc) *esc = 0;
        else if (c == '\\') *esc = 1;
        else if (c == '"') *str = 0;
        return 0;
    }
    if (c == '"') *str = 1;
    return !*str;
}

/* Drops the blanks outside strings, in place: an answer quotes an object or array input as
 * its raw text, blanks and all. Returns the new length. */
static size_t unblank(char *t, size_t n)
{
    size_t k = 0;
    int str = 0, esc = 0;
    for (size_t i = 0; i < n; i++)
        if (!outside(t[i], &str, &esc) || t[i] != ' ') t[k++] = t[i];
    return k;
}

/* Drops every ',"input":' whose value is an object or an array, in place: those are quoted as
 * raw text up to a length, which the blanks change. Returns the new length. */
static size_t drop_raw_inputs(char *t, size_t n)
{
    static const char key[] = ",\"input\":";
    const size_t kl = sizeof key - 1;
    size_t k = 0;
    int str = 0, esc = 0;
    for (size_t i = 0; i < n;) {
        if (!str && i + kl < n && !memcmp(t + i, key, kl) && (t[i + kl] == '{' || t[i + kl] == '[')) {
            int depth = 0, s2 = 0, e2 = 0;
            size_t j = i + kl;
            for (; j < n; j++) {
                if (!outside(t[j], &s2, &e2)) continue;
                if (t[j] == '{' || t[j] == '[') depth++;
                else if ((t[j] == '}' || t[j] == ']') && --depth == 0) break;
            }
            i = j + 1;
            continue;
        }
        outside(t[i], &str, &esc);
        t[k++] = t[i++];
    }
    return k;
}

/* The body with a blank after every '{', ':' and ',' outside strings: the same JSON, but every
 * key and value then goes the binder's full way, not its fast path (which reads only what
 * stands right after them). Both ways must give the same answer. */
static char *spaced(const char *in, size_t n, size_t *outn)
{
    char *o = malloc(2 * n + 1);
    size_t k = 0;
    int str = 0, esc = 0;
    for (size_t i = 0; i < n; i++) {
        o[k++] = in[i];
        if (outside(in[i], &str, &esc) && (in[i] == '{' || in[i] == ':' || in[i] == ',')) o[k++] = ' ';
    }
    *outn = k;
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv) setup();
    if (size < 1) return 0;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 5) {
    case 0: {
        im_json a, b;
        char *copy = malloc(n ? n : 1);
        memcpy(copy, in, n);
        int ra = im_json_check(&a, in, n);
        im_json_init(&b, copy, n, 1);
        int rb = json_walk(&b);
        if (!rb) rb = im_json_finish(&b);
        if ((ra == 0) != (rb == 0) || (ra && a.err_off > n)) abort();
        free(copy);
        break;
    }
    case 1: {
        char head[160], *a, *b;
        size_t al, bl, sn;
        snprintf(head, sizeof head,
                 "POST /t/all HTTP/1.1\r\nHost: f\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n", n);
        int sa = request_out(head, in, n, &a, &al);
        char *sp = spaced(in, n, &sn);
        snprintf(head, sizeof head,
                 "POST /t/all HTTP/1.1\r\nHost: f\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n", sn);
        int sb = request_out(head, sp, sn, &b, &bl);
        /* the same answer, byte for byte but for the objects and arrays quoted as inputs
         * (their raw text has the blanks); a JSON error's offset moves with the blanks */
        al = drop_raw_inputs(a, unblank(a, al));
        bl = drop_raw_inputs(b, unblank(b, bl));
        if (sa != sb || (!memmem(a, al, "json_invalid", 12) && (al != bl || memcmp(a, b, al)))) {
            fprintf(stderr, "fast path %d %.*s\nfull reader %d %.*s\n", sa, (int)al, a, sb, (int)bl, b);
            abort();
        }
        free(a);
        free(b);
        free(sp);
        break;
    }
    case 3:
    case 4: {
        char head[200];
        snprintf(head, sizeof head,
                 "POST /t/%s HTTP/1.1\r\nHost: f\r\nContent-Type: application/%s\r\n%s"
                 "Content-Length: %zu\r\n\r\n", data[0] % 5 == 3 ? "nd" : "npy",
                 data[0] % 5 == 3 ? "json" : "x-npy",
                 n && (in[0] & 1) ? "Accept: application/x-npy\r\n" : "", n);
        request(head, in, n);
        break;
    }
    case 2: {
        /* the data as a query: only bytes a request target may hold */
        char *q = malloc(n + 1);
        size_t k = 0;
        for (size_t i = 0; i < n && k < 4000; i++)
            if (in[i] > 0x20 && in[i] < 0x7f && in[i] != '#') q[k++] = in[i];
        char head[4200];
        snprintf(head, sizeof head, "GET /t/q/7/n%%41me?%.*s HTTP/1.1\r\nHost: f\r\n\r\n", (int)k, q);
        free(q);
        request(head, "", 0);
        break;
    }
    }
    return 0;
}
