/* fuzz_http.c — libFuzzer target for the HTTP/1.x parsers and the connection input path.
 * Byte 0 picks the mode: 0 head parser, 1 chunked decoder fed in two pieces, 2 the whole
 * connection input path (pipelining, bodies, errors, deferral) with the input delivered in
 * two reads split where byte 1 says. Limits are small so they are reached often. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <stdlib.h>
#include <string.h>

#include "../support/fake_loop.h"

static im_server *srv;
static im_loop L;
static int defer_next;

static void echo(im_ctx *c)
{
    const im_request *r = im_ctx_request(c);
    if (defer_next++ % 3 == 0 && im_ctx_defer(c, NULL, NULL) == 0) {
        im_res_header(c, "X-Late", "1");
        im_reply(c, 200, "text/plain", r->body.ptr, r->body.len); /* deferred, then answered */
        return;
    }
    im_reply(c, 200, "text/plain", r->body.ptr, r->body.len);
}

static void setup(void)
{
    im_server_opts o = {0};
    o.max_body_bytes = 512;
    o.max_header_bytes = 256;
    o.max_headers = 6;
    im_log_set_level(IM_LOG_OFF);
    srv = im_server_new(&o);
    im_server_route(srv, "*", "/", echo, NULL);
    im_server_route(srv, "*", "/a/{x}", echo, NULL);
    if (fake_loop_init(&L, srv)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv) setup();
    if (size < 2) return 0;
    int mode = data[0] % 3;
    size_t split = data[1];
    const char *in = (const char *)data + 2;
    size_t n = size - 2;
    if (split > n) split = n;
    if (mode == 0) {
        im_header hs[6];
        im_http_head h;
        char *copy = malloc(n ? n : 1);
        memcpy(copy, in, n);
        int r = im_http_parse_head(copy, n, &h, hs, 6, 256);
        if (r > 0) {
            if ((size_t)r > n || h.num_headers > 6) abort();
            for (unsigned i = 0; i < h.num_headers; i++) /* views inside the buffer */
                if (hs[i].name.ptr < copy || hs[i].value.ptr + hs[i].value.len > copy + r) abort();
        } else if (r == IM_HTTP_ERROR && (!h.error || h.status < 400)) {
            abort();
        }
        free(copy);
    } else if (mode == 1) {
        im_http_chunked d;
        char *buf = malloc(n ? n : 1);
        size_t raw = 0, dec = 0, used, made;
        memcpy(buf, in, n);
        memset(&d, 0, sizeof d);
        d.max_total = 512;
        d.max_trailer = 128;
        int r = im_http_decode_chunked(&d, buf, buf, split, &used, &made);
        raw += used;
        dec += made;
        if (r == 0 && raw == split) {
            r = im_http_decode_chunked(&d, buf + dec, buf + raw, n - raw, &used, &made);
            dec += made;
            raw += used;
        }
        if (dec > raw || raw > n || d.total > 512) abort();
        free(buf);
    } else {
        im__conn *c = fake_conn(&L);
        fake_feed(&L, c, in, split);
        fake_resume(&L);
        if (c->phase != IM__PH_CLOSING) fake_feed(&L, c, in + split, n - split);
        fake_resume(&L);
        if (c->in && c->in->len > im__in_limit(&L)) abort();
    }
    return 0;
}
