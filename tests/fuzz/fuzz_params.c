/* fuzz_params.c — libFuzzer target for parameters read from text and the second pass's
 * binders (tests/lang). Byte 0 picks where the data goes: 0 the query of GET /l/query
 * (FastAPI-style numbers and bools, %-decoded keys, repeats), 1 the Cookie header of GET
 * /l/headers, 2 its X-Token header, 3 the JSON body of POST /l/nums (uint32, uint64, float,
 * multiples), 4 the JSON body of POST /l/nulls (nullable), 5 the path segment of POST
 * /l/items/{item-id}. The answer must be a status the request can get, and the server must
 * not leak or crash. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <stdlib.h>
#include <string.h>

#include "lang.service.h"
#include "../support/fake_loop.h"

static im_server *srv;
static im_loop L;

static void setup(void)
{
    im_server_opts o = {0};
    im_log_set_level(IM_LOG_OFF);
    srv = im_server_new(&o);
    if (im_register_lang(srv) || fake_loop_init(&L, srv)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv) setup();
    if (size < 1 || size > 8192) return 0;
    const char *in = (const char *)data + 1;
    int n = (int)size - 1;
    char *req = malloc(size + 512);
    int len;
    switch (data[0] % 6) {
    case 0: len = sprintf(req, "GET /l/query?%.*s HTTP/1.1\r\nHost: f\r\n\r\n", n, in); break;
    case 1: len = sprintf(req, "GET /l/headers HTTP/1.1\r\nHost: f\r\nX-Token: abc\r\nCookie: %.*s\r\n\r\n", n, in); break;
    case 2: len = sprintf(req, "GET /l/headers HTTP/1.1\r\nHost: f\r\nX-Token: %.*s\r\n\r\n", n, in); break;
    case 3:
    case 4:
        len = sprintf(req, "POST /l/%s HTTP/1.1\r\nHost: f\r\nContent-Type: application/json\r\n"
                           "Content-Length: %d\r\n\r\n", data[0] % 6 == 3 ? "nums" : "nulls", n);
        memcpy(req + len, in, (size_t)n);
        len += n;
        break;
    default:
        len = sprintf(req, "POST /l/items/%.*s HTTP/1.1\r\nHost: f\r\nContent-Type: application/json\r\n"
                           "Content-Length: 18\r\n\r\n{\"first-name\":\"a\"}", n, in);
        break;
    }
    im__conn *c = fake_conn(&L);
    fake_feed(&L, c, req, (size_t)len);
    free(req);
    if (!c->out) return 0; /* an unfinished request (the data held CR LF): nothing to answer yet */
    int status = atoi(c->out->data + 9);
    if (status != 200 && status != 400 && status != 404 && status != 405 && status != 414 &&
        status != 422 && status != 431 && status != 501)
        abort();
    return 0;
}
