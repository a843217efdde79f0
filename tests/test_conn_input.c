/* test_conn_input.c — a connection's input path (conn.c) driven directly: pipelined batches
 * delivered whole, split at every offset and byte by byte must give the same responses and
 * the same handler calls; errors stop the line; a deferred request holds the ones behind it;
 * 100-continue and the limits. The loop is real (a real io_uring ring) but no socket is
 * involved, so every split is exact and the test is deterministic. */
#define IMMERSIVE_IMPLEMENTATION
#include <stddef.h>
static size_t parsed_bytes; /* what the head parser was handed, over the whole test */
#define IM__PARSE_HOOK(bytes) (parsed_bytes += (bytes))
#include "immersive.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "support/check.h"

#include "support/fake_loop.h"


static im_server *srv;
static im_loop L;

/* What the handlers saw, one line per call. */
static char seen[65536];
static size_t seen_len;
static im_ctx *deferred;

static void log_call(im_ctx *c)
{
    const im_request *r = im_ctx_request(c);
    im_str name = im_ctx_param(c, "name");
    seen_len += (size_t)snprintf(seen + seen_len, sizeof seen - seen_len,
                                 "%.*s %.*s q=%.*s name=%.*s body=%.*s\n", (int)r->method.len,
                                 r->method.ptr, (int)r->path.len, r->path.ptr, (int)r->query.len,
                                 r->query.ptr ? r->query.ptr : "", (int)name.len,
                                 name.ptr ? name.ptr : "", (int)r->body.len,
                                 r->body.ptr ? r->body.ptr : "");
}

static void echo(im_ctx *c)
{
    log_call(c);
    const im_request *r = im_ctx_request(c);
    im_reply(c, 200, "text/plain", r->body.ptr, r->body.len);
}

static void defer(im_ctx *c)
{
    log_call(c);
    CHECK(im_ctx_defer(c, NULL, NULL) == 0, "defer");
    deferred = c;
}

/* /status?N answers with status N (and records what im_reply returned) */
static int status_rc;
static void status(im_ctx *c)
{
    const im_request *r = im_ctx_request(c);
    int st = atoi(r->query.ptr ? r->query.ptr : "0");
    status_rc = im_reply(c, st, "text/plain", "x", 1);
}

/* /r/me (static) beside /r/{id} (a parameter): the static segment wins */
static void route_me(im_ctx *c) { im_reply(c, 200, "text/plain", "static", 6); }
static void route_id(im_ctx *c)
{
    im_str id = im_ctx_param(c, "id");
    im_reply(c, 200, "text/plain", id.ptr, id.len);
}

static void setup(void)
{
    im_server_opts o = {0};
    o.max_body_bytes = 1000;
    o.max_header_bytes = 400;
    o.max_headers = 8;
    srv = im_server_new(&o);
    im_server_route(srv, "*", "/a", echo, NULL);
    im_server_route(srv, "*", "/echo", echo, NULL);
    im_server_route(srv, "GET", "/hello/{name}", echo, NULL);
    im_server_route(srv, "GET", "/defer", defer, NULL);
    im_server_route(srv, "GET", "/status", status, NULL);
    im_server_route(srv, "GET", "/r/{id}", route_id, NULL);
    im_server_route(srv, "GET", "/r/me", route_me, NULL);
    int rc = fake_loop_init(&L, srv);
    if (rc) {
        fprintf(stderr, "io_uring unavailable (%s): skipped\n", strerror(-rc));
        exit(77);
    }
}

static void drain(void) { fake_loop_drain(&L); }

static im__conn *fresh(void)
{
    seen_len = 0;
    seen[0] = 0;
    return fake_conn(&L);
}

static void feed(im__conn *c, const char *p, size_t n) { fake_feed(&L, c, p, n); }
static void resume(void) { fake_resume(&L); }

static char *out_of(im__conn *c)
{
    size_t n = c->out ? c->out->len : 0;
    char *s = malloc(n + 1);
    memcpy(s, c->out ? c->out->data : "", n);
    s[n] = 0;
    /* a request id made for each answer is random: blanked, the rest compared byte for byte */
    for (char *p = s; (p = strstr(p, "X-Request-ID: ")); ) {
        p += 14;
        while (*p && *p != '\r') *p++ = '*';
    }
    return s;
}

static int count(const char *hay, const char *needle)
{
    int k = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) k++;
    return k;
}

/* Feeds `in` whole, split in two at every offset, and byte by byte; every way must produce
 * the output and handler calls of the whole. Returns the whole's output (caller frees). */
static char *every_split(const char *name, const char *in, size_t n)
{
    im__conn *c = fresh();
    feed(c, in, n);
    char *whole = out_of(c), *calls = strdup(seen);
    for (size_t k = 0; k <= n; k++) {
        c = fresh();
        feed(c, in, k);
        feed(c, in + k, n - k);
        char *o = out_of(c);
        CHECK(strcmp(o, whole) == 0, "%s: split at %zu: output differs:\n%s\n--- whole:\n%s", name,
              k, o, whole);
        CHECK(strcmp(seen, calls) == 0, "%s: split at %zu: calls differ:\n%s", name, k, seen);
        free(o);
        if (check_failed() > 20) exit(1);
    }
    c = fresh();
    for (size_t k = 0; k < n; k++) feed(c, in + k, 1);
    char *o = out_of(c);
    CHECK(strcmp(o, whole) == 0, "%s: byte by byte: output differs:\n%s", name, o);
    CHECK(strcmp(seen, calls) == 0, "%s: byte by byte: calls differ:\n%s", name, seen);
    free(o);
    free(calls);
    return whole;
}

#define HOST "Host: h\r\n"
static const char batch[] =
    "GET /a HTTP/1.1\r\n" HOST "\r\n"
    "POST /echo HTTP/1.1\r\n" HOST "Content-Length: 5\r\n\r\nhello"
    "POST /echo HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n"
    "3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n"
    "GET /hello/zed?q=1 HTTP/1.1\r\n" HOST "\r\n"
    "\r\n" /* a stray blank line between requests is tolerated */
    "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    "HEAD /hello/h HTTP/1.1\r\n" HOST "\r\n";

static void test_pipelined(void)
{
    char *out = every_split("batch", batch, sizeof batch - 1);
    CHECK(count(out, "HTTP/1.1 200 OK\r\n") == 6, "six answers:\n%s", out);
    CHECK(strstr(out, "Content-Length: 5\r\n\r\nhello") != NULL, "CL body echoed");
    CHECK(strstr(out, "Content-Length: 5\r\n\r\nabcde") != NULL, "chunked body echoed");
    CHECK(strstr(out, "Connection: keep-alive\r\n") != NULL, "1.0 keep-alive answered");
    CHECK(count(out, "Connection: close") == 0, "nobody closes");
    CHECK(strcmp(seen, "GET /a q= name= body=\n"
                       "POST /echo q= name= body=hello\n"
                       "POST /echo q= name= body=abcde\n"
                       "GET /hello/zed q=q=1 name=zed body=\n"
                       "GET /a q= name= body=\n"
                       "HEAD /hello/h q= name=h body=\n") == 0,
          "handler calls:\n%s", seen);
    /* HEAD: the length of what GET would send, no body: the output ends with the head */
    const char *head = strstr(out, "HTTP/1.1 200 OK\r\nServer");
    for (int i = 0; i < 5 && head; i++) head = strstr(head + 1, "HTTP/1.1 200 OK\r\nServer");
    CHECK(head && strstr(head, "Content-Length: 0\r\n\r\n") &&
              out + strlen(out) - strstr(head, "\r\n\r\n") == 4,
          "HEAD answer has no body");
    free(out);
    /* nothing held once everything was answered */
    CHECK(L.conns[0].in == NULL, "no input held after whole requests");
}

static void test_partial_held(void)
{
    im__conn *c = fresh();
    const char *a = "GET /a HTTP/1.1\r\n" HOST "\r\nPOST /echo HTTP/1.1\r\n" HOST
                    "Content-Length: 10\r\n\r\n01234";
    feed(c, a, strlen(a));
    CHECK(c->in != NULL && c->in->st.head_len > 0, "a partial body is held");
    CHECK(count(seen, "\n") == 1, "one call so far");
    feed(c, "56789", 5);
    CHECK(c->in == NULL, "held input released");
    char *o = out_of(c);
    CHECK(strstr(o, "\r\n\r\n0123456789"), "whole body answered: %s", o);
    free(o);
}

static void test_error_stops_line(void)
{
    static const char in[] = "GET /a HTTP/1.1\r\n" HOST "\r\n"
                             "POST /echo HTTP/1.1\r\n" HOST
                             "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "GET /a HTTP/1.1\r\n" HOST "\r\n";
    char *out = every_split("smuggle", in, sizeof in - 1);
    CHECK(count(out, "HTTP/1.1 200 OK") == 1 && count(out, "HTTP/1.1 400 Bad Request") == 1,
          "one answer then 400:\n%s", out);
    CHECK(strstr(out, "Connection: close\r\n") && strstr(out, "\"detail\":"), "400 closes, JSON:\n%s", out);
    CHECK(count(seen, "\n") == 1, "the request after the bad one never runs: %s", seen);
    CHECK(L.conns[0].phase == IM__PH_LAST, "connection closes after");
    free(out);

    static const char chunk[] = "POST /echo HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n"
                                "fffffffffffffffff1\r\nx\r\n0\r\n\r\n";
    out = every_split("chunk overflow", chunk, sizeof chunk - 1);
    CHECK(count(out, "400 Bad Request") == 1 && count(seen, "\n") == 0, "overflow: %s", out);
    free(out);
}

static void test_deferred(void)
{
    im__conn *c = fresh();
    const char *in = "GET /defer HTTP/1.1\r\n" HOST "\r\nGET /a?after HTTP/1.1\r\n" HOST "\r\n";
    deferred = NULL;
    feed(c, in, strlen(in));
    CHECK(deferred != NULL && c->pending == deferred, "deferred");
    CHECK(c->out == NULL || c->out->len == 0, "nothing answered yet");
    CHECK(count(seen, "\n") == 1, "the next request waits: %s", seen);
    /* the request view survives the receive buffer (feed() scribbled over it) */
    CHECK(im_str_eq(im_ctx_request(deferred)->path, "/defer"), "deferred view is a copy");
    CHECK(im_str_eq(im_ctx_header(deferred, "host"), "h"), "deferred headers are a copy");
    CHECK(im_reply(deferred, 201, "text/plain", "later", 5) == 0, "reply to deferred");
    CHECK(c->pending == NULL, "line released");
    resume();
    char *o = out_of(c);
    const char *first = strstr(o, "201 Created"), *second = strstr(o, "200 OK");
    CHECK(first && second && first < second, "answers in order:\n%s", o);
    CHECK(count(seen, "\n") == 2 && strstr(seen, "q=after"), "then the next ran: %s", seen);
    free(o);
    CHECK(L.deferred == 0, "no deferred context left");

    /* the peer leaves first: the owner still finishes, and is told -EPIPE */
    c = fresh();
    in = "GET /defer HTTP/1.1\r\n" HOST "\r\n";
    feed(c, in, strlen(in));
    im__conn_close(&L, c);
    CHECK(im_reply(deferred, 200, NULL, "x", 1) == -EPIPE, "reply after close: -EPIPE");
    CHECK(L.deferred == 0, "context finished");
    drain();
    im__conn_release(&L, c); /* as the cancelled recv's completion would */
    c->gen++;
}

static void test_continue(void)
{
    im__conn *c = fresh();
    const char *h = "POST /echo HTTP/1.1\r\n" HOST "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    feed(c, h, strlen(h));
    char *o = out_of(c);
    CHECK(strcmp(o, "HTTP/1.1 100 Continue\r\n\r\n") == 0, "100 first: %s", o);
    free(o);
    feed(c, "hello", 5);
    o = out_of(c);
    CHECK(strstr(o, "100 Continue\r\n\r\nHTTP/1.1 200 OK") && strstr(o, "\r\n\r\nhello"),
          "then the answer: %s", o);
    free(o);
    /* body already there: no 100 */
    c = fresh();
    feed(c, h, strlen(h));
    c = fresh();
    char both[512];
    snprintf(both, sizeof both, "%shello", h);
    feed(c, both, strlen(both));
    o = out_of(c);
    CHECK(strstr(o, "100 Continue") == NULL && strstr(o, "200 OK"), "no 100 with the body: %s", o);
    free(o);
    /* over the limit: 413 at once, no 100 */
    c = fresh();
    const char *big = "POST /echo HTTP/1.1\r\n" HOST "Expect: 100-continue\r\nContent-Length: 1001\r\n\r\n";
    feed(c, big, strlen(big));
    o = out_of(c);
    CHECK(strstr(o, "100 Continue") == NULL && strstr(o, "413 Content Too Large") &&
              c->phase == IM__PH_LAST,
          "413 without 100: %s", o);
    free(o);
    /* HTTP/1.0 has no 1xx answers (RFC 9110 section 15.2): no 100, the body is just read */
    c = fresh();
    const char *h10 = "POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    feed(c, h10, strlen(h10));
    CHECK(c->out == NULL || c->out->len == 0, "no 100 Continue to an HTTP/1.0 client");
    feed(c, "hello", 5);
    o = out_of(c);
    CHECK(strncmp(o, "HTTP/1.1 200 OK\r\n", 17) == 0 && strstr(o, "100 Continue") == NULL,
          "HTTP/1.0: the answer only: %s", o);
    free(o);
    /* another expectation */
    c = fresh();
    const char *odd = "POST /echo HTTP/1.1\r\n" HOST "Expect: teapot\r\nContent-Length: 1\r\n\r\nx";
    feed(c, odd, strlen(odd));
    o = out_of(c);
    CHECK(strstr(o, "417 Expectation Failed") && count(seen, "\n") == 0, "417: %s", o);
    free(o);
}

static void test_limits(void)
{
    char buf[4096];
    im__conn *c;
    char *o;
    /* header block over 400 bytes */
    c = fresh();
    int n = snprintf(buf, sizeof buf, "GET /a HTTP/1.1\r\n" HOST "X: %0400d\r\n\r\n", 0);
    feed(c, buf, (size_t)n);
    o = out_of(c);
    CHECK(strstr(o, "431 Request Header Fields Too Large"), "431: %s", o);
    free(o);
    /* a request line over it: 414 */
    c = fresh();
    n = snprintf(buf, sizeof buf, "GET /%0500d HTTP/1.1\r\n" HOST "\r\n", 0);
    feed(c, buf, (size_t)n);
    o = out_of(c);
    CHECK(strstr(o, "414 URI Too Long"), "414: %s", o);
    free(o);
    /* header lines: 8 allowed */
    c = fresh();
    const char *eight =
        "GET /a HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\n\r\n";
    feed(c, eight, strlen(eight));
    o = out_of(c);
    CHECK(strstr(o, "200 OK"), "8 headers: %s", o);
    free(o);
    c = fresh();
    const char *nine = "GET /a HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\nH: 1\r\n\r\n";
    feed(c, nine, strlen(nine));
    o = out_of(c);
    CHECK(strstr(o, "431"), "9 headers: %s", o);
    free(o);
    /* body: 1000 allowed, 1001 not; chunked the same */
    c = fresh();
    n = snprintf(buf, sizeof buf, "POST /echo HTTP/1.1\r\n" HOST "Content-Length: 1000\r\n\r\n");
    memset(buf + n, 'b', 1000);
    feed(c, buf, (size_t)n + 1000);
    o = out_of(c);
    CHECK(strstr(o, "200 OK") && strstr(o, "Content-Length: 1000"), "1000-byte body");
    free(o);
    c = fresh();
    n = snprintf(buf, sizeof buf, "POST /echo HTTP/1.1\r\n" HOST
                 "Transfer-Encoding: chunked\r\n\r\n3e8\r\n");
    memset(buf + n, 'b', 1000);
    n += 1000;
    n += snprintf(buf + n, sizeof buf - (size_t)n, "\r\n1\r\nb\r\n0\r\n\r\n");
    feed(c, buf, (size_t)n);
    o = out_of(c);
    CHECK(strstr(o, "413") && count(seen, "\n") == 0, "chunked 1001: %s", o);
    free(o);
}

/* A chunked body in tiny chunks, arriving in pieces: what is held is the head and the body
 * so far, not the framing already decoded (else small chunks would hit the input limit). */
static void test_chunked_held_compact(void)
{
    im__conn *c = fresh();
    char buf[8192];
    int n = snprintf(buf, sizeof buf, "POST /echo HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n");
    size_t head = (size_t)n;
    for (int i = 0; i < 900; i++) n += snprintf(buf + n, sizeof buf - (size_t)n, "1\r\n%c\r\n", 'a' + i % 26);
    /* 900 body bytes in 5400 bytes of framing; fed in 700-byte pieces, none ending the body */
    for (int o = 0; o < n; o += 700) {
        feed(c, buf + o, (size_t)(n - o < 700 ? n - o : 700));
        CHECK(c->in && c->in->len <= head + c->in->st.body_have + 8,
              "held %u bytes for %u decoded", c->in ? c->in->len : 0, c->in ? c->in->st.body_have : 0);
    }
    feed(c, "0\r\n\r\n", 5);
    char *o = out_of(c);
    CHECK(strstr(o, "200 OK") && strstr(o, "Content-Length: 900\r\n"), "the whole body: %s", o);
    free(o);
}

static void test_connection_close(void)
{
    static const char in[] = "GET /a HTTP/1.1\r\n" HOST "Connection: close\r\n\r\n"
                             "GET /a HTTP/1.1\r\n" HOST "\r\n";
    char *out = every_split("close", in, sizeof in - 1);
    CHECK(count(out, "200 OK") == 1 && strstr(out, "Connection: close\r\n"), "close: %s", out);
    CHECK(count(seen, "\n") == 1, "nothing after close runs");
    free(out);
    static const char both[] = "GET /a HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
                               "GET /a HTTP/1.0\r\n\r\n";
    out = every_split("1.0 keep-alive and close", both, sizeof both - 1);
    CHECK(count(out, "200 OK") == 1 && strstr(out, "Connection: close\r\n"), "close wins: %s", out);
    free(out);
    /* tokens are case-insensitive (RFC 9110 section 7.6.1) */
    static const char *const closes[] = {"Close", "CLOSE", "cLoSe", "keep-Alive, ClOsE"};
    for (size_t i = 0; i < sizeof closes / sizeof *closes; i++) {
        char in2[256];
        snprintf(in2, sizeof in2, "GET /a HTTP/1.1\r\n" HOST "Connection: %s\r\n\r\n"
                 "GET /a HTTP/1.1\r\n" HOST "\r\n", closes[i]);
        im__conn *c = fresh();
        feed(c, in2, strlen(in2));
        char *o = out_of(c);
        CHECK(count(o, "200 OK") == 1 && strstr(o, "Connection: close\r\n") &&
                  count(seen, "\n") == 1,
              "Connection: %s: %s", closes[i], o);
        free(o);
    }
    static const char ka[] = "GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    out = every_split("1.0 Keep-Alive", ka, sizeof ka - 1);
    CHECK(strstr(out, "Connection: keep-alive\r\n") && !strstr(out, "close"), "Keep-Alive: %s", out);
    free(out);
    static const char ten[] = "GET /a HTTP/1.0\r\n\r\nGET /a HTTP/1.0\r\n\r\n";
    out = every_split("1.0", ten, sizeof ten - 1);
    CHECK(count(out, "200 OK") == 1 && strstr(out, "Connection: close\r\n"), "1.0: %s", out);
    free(out);
}

static void test_routing(void)
{
    im__conn *c = fresh();
    const char *in = "DELETE /hello/x HTTP/1.1\r\n" HOST "\r\n"
                     "GET /nowhere HTTP/1.1\r\n" HOST "\r\n"
                     "OPTIONS /defer HTTP/1.1\r\n" HOST "\r\n"
                     "GET /hello/ HTTP/1.1\r\n" HOST "\r\n";
    feed(c, in, strlen(in));
    char *o = out_of(c);
    CHECK(strstr(o, "405 Method Not Allowed") && strstr(o, "Allow: GET, HEAD, OPTIONS\r\n"),
          "405 + Allow: %s", o);
    CHECK(count(o, "404 Not Found") == 2, "404 for unknown and for an empty {param}: %s", o);
    CHECK(strstr(o, "204 No Content"), "OPTIONS: 204");
    free(o);
}

/* A final answer is 200..599: a 1xx would end the request while the client waits for the
 * real answer (and read the next one as this one's), 600..999 are no status at all. */
static void test_reply_status(void)
{
    static const struct {
        int status, sent;
    } cases[] = {{200, 200}, {204, 204}, {599, 599}, {100, 500}, {101, 500}, {150, 500},
                 {199, 500}, {600, 500}, {999, 500}, {0, 500}, {-1, 500}, {1000, 500}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char req[128], want[32];
        im__conn *c = fresh();
        int n = snprintf(req, sizeof req, "GET /status?%d HTTP/1.1\r\n" HOST "\r\n", cases[i].status);
        feed(c, req, (size_t)n);
        char *o = out_of(c);
        snprintf(want, sizeof want, "HTTP/1.1 %d ", cases[i].sent);
        CHECK(strncmp(o, want, strlen(want)) == 0 && count(o, "HTTP/1.1") == 1,
              "im_reply(%d) sent: %s", cases[i].status, o);
        CHECK((status_rc == 0) == (cases[i].status == cases[i].sent),
              "im_reply(%d) returned %d", cases[i].status, status_rc);
        free(o);
    }
}

/* Blank lines before a request (RFC 9112 section 2.2: ignored), each in its own read: the
 * work must stay linear in the bytes received (counted, not timed), and they do not count
 * against the request's own limits. */
static void test_leading_blank_lines(void)
{
    im__conn *c = fresh();
    size_t before = parsed_bytes, fed = 0;
    for (int i = 0; i < 5000; i++) {
        feed(c, "\r\n", 2);
        fed += 2;
    }
    feed(c, "\r", 1); /* half of one more, then the request */
    const char *req = "\nGET /a HTTP/1.1\r\n" HOST "\r\n";
    feed(c, req, strlen(req));
    fed += 1 + strlen(req);
    char *o = out_of(c);
    CHECK(strncmp(o, "HTTP/1.1 200 OK", 15) == 0 && count(seen, "\n") == 1,
          "the request after 5000 blank lines: %s", o);
    free(o);
    CHECK(parsed_bytes - before <= 2 * fed, "the parser was handed %zu bytes for %zu received",
          parsed_bytes - before, fed);
    CHECK(c->in == NULL, "nothing held");
}

/* An answer waits to be sent, half of a second request is held, and the peer shuts its
 * write side, then reads nothing: whichever timer runs out, the connection must close (a
 * connection on no timer list pins its slot, descriptor and output until TCP gives up). */
static void test_no_lost_timer(void)
{
    char buf[2048];
    im__conn *c = fresh();
    int n = snprintf(buf, sizeof buf, "POST /echo HTTP/1.1\r\n" HOST "Content-Length: 900\r\n\r\n");
    memset(buf + n, 'b', 900);
    n += 900;
    n += snprintf(buf + n, sizeof buf - (size_t)n, "GET /a HTTP/1.1\r\nHo");
    feed(c, buf, (size_t)n);
    CHECK(c->out && c->out->len > 900 && c->in, "an answer queued, half a request held");
    im__conn_on_eof(&L, c);
    im__conn_retime(&L, c, IM__PROGRESS_NONE);
    for (int round = 0; round < 6 && c->phase != IM__PH_CLOSING; round++)
        fake_tick(&L, 100000000); /* past every timeout */
    CHECK(c->phase == IM__PH_CLOSING, "closed by a timer: phase %d, timer list %d", c->phase,
          c->tlist);
}

/* A static segment is tried before a parameter at the same place. */
static void test_static_before_param(void)
{
    im__conn *c = fresh();
    const char *in = "GET /r/me HTTP/1.1\r\n" HOST "\r\nGET /r/you HTTP/1.1\r\n" HOST "\r\n";
    feed(c, in, strlen(in));
    char *o = out_of(c);
    const char *a = strstr(o, "\r\n\r\nstatic"), *b = strstr(o, "\r\n\r\nyou");
    CHECK(a && b && a < b, "/r/me static, /r/you the parameter: %s", o);
    free(o);
}

/* A completion for an earlier use of a slot (a late CQE after the slot went to a new
 * connection) must not touch the new connection: the generation in user_data tells. */
static void test_stale_completion(void)
{
    im__conn *c = fresh();
    struct io_uring_cqe cqe;
    int fd = open("/dev/null", O_RDONLY); /* a live descriptor, as a real connection has */
    c->fd = fd;
    memset(&cqe, 0, sizeof cqe);
    cqe.res = 0; /* an EOF */
    cqe.user_data = IM__UD(IM__OP_RECV, c->gen - 1, 0);
    im__on_cqe(&L, &cqe);
    CHECK(c->phase == IM__PH_OPEN && !c->is_eof, "a stale EOF closed the new connection: "
          "phase %d eof %d", c->phase, c->is_eof);
    c->fd = -1; /* the fake loop's own again: nothing real is closed later */
    close(fd);
    const char *in = "GET /a HTTP/1.1\r\n" HOST "\r\n";
    feed(c, in, strlen(in));
    char *o = out_of(c);
    CHECK(strncmp(o, "HTTP/1.1 200", 12) == 0, "the new connection still serves: %s", o);
    free(o);
}

int main(void)
{
    setup();
    test_pipelined();
    test_partial_held();
    test_error_stops_line();
    test_deferred();
    test_continue();
    test_limits();
    test_connection_close();
    test_chunked_held_compact();
    test_routing();
    test_reply_status();
    test_leading_blank_lines();
    test_no_lost_timer();
    test_static_before_param();
    test_stale_completion();
    fake_loop_free(&L);
    im_server_free(srv);
    return check_exit("connection input");
}
