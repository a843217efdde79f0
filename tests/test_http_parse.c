/* test_http_parse.c — the request head parser and the chunked decoder, table-driven: every
 * case is parsed whole, as every prefix (bytes arriving one by one), and placed right before
 * an unreadable page so that any read past the input crashes the test. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "support/check.h"

/* the case tables leave trailing fields zero */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"


/* A writable copy of s[0..n) that ends right before a PROT_NONE page. */
static char *guard_region;
static size_t guard_size;
static char *guarded(const char *s, size_t n)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t need = (n + (size_t)page - 1) / (size_t)page * (size_t)page + (size_t)page;
    if (guard_region) munmap(guard_region, guard_size);
    guard_size = need;
    guard_region = mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard_region == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    mprotect(guard_region + need - (size_t)page, (size_t)page, PROT_NONE);
    char *p = guard_region + need - (size_t)page - n;
    memcpy(p, s, n);
    return p;
}

typedef struct head_case {
    const char *name;
    const char *in;      /* request bytes */
    size_t len;          /* 0: strlen(in) */
    int status;          /* 0: valid; else the error status expected */
    const char *method, *path, *query;
    int minor;
    int nheaders;
    long long clen;      /* -1: no Content-Length */
    int chunked, close, keep, expect;
} head_case;

#define H "Host: h\r\n"
static const head_case heads[] = {
    {"simple", "GET / HTTP/1.1\r\n" H "\r\n", 0, 0, "GET", "/", "", 1, 1, -1, 0, 0, 0, 0},
    {"wrk", "GET /plaintext HTTP/1.1\r\nHost: localhost:8080\r\nAccept: */*\r\n\r\n", 0, 0, "GET",
     "/plaintext", "", 1, 2, -1, 0, 0, 0, 0},
    {"query", "GET /a/b?x=1&y=2 HTTP/1.1\r\n" H "\r\n", 0, 0, "GET", "/a/b", "x=1&y=2", 1, 1, -1},
    {"empty query", "GET /a? HTTP/1.1\r\n" H "\r\n", 0, 0, "GET", "/a", "", 1, 1, -1},
    {"http/1.0 without host", "GET / HTTP/1.0\r\n\r\n", 0, 0, "GET", "/", "", 0, 0, -1},
    {"http/1.2 served as 1.1", "GET / HTTP/1.2\r\n" H "\r\n", 0, 0, "GET", "/", "", 1, 1, -1},
    {"absolute form", "GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n", 0, 0,
     "GET", "/x", "y", 1, 1, -1},
    {"absolute form without path", "GET HTTPS://example.com HTTP/1.1\r\n" H "\r\n", 0, 0, "GET",
     "/", "", 1, 1, -1},
    {"options *", "OPTIONS * HTTP/1.1\r\n" H "\r\n", 0, 0, "OPTIONS", "*", "", 1, 1, -1},
    {"custom method", "PURGE /c HTTP/1.1\r\n" H "\r\n", 0, 0, "PURGE", "/c", "", 1, 1, -1},
    {"content-length", "POST /x HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\n", 0, 0, "POST", "/x",
     "", 1, 2, 5},
    {"content-length 0", "POST /x HTTP/1.1\r\n" H "content-length:0\r\n\r\n", 0, 0, "POST", "/x",
     "", 1, 2, 0},
    {"content-length max", "POST /x HTTP/1.1\r\n" H "Content-Length: 9223372036854775807\r\n\r\n",
     0, 0, "POST", "/x", "", 1, 2, 9223372036854775807LL},
    {"chunked", "POST /x HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n", 0, 0, "POST", "/x",
     "", 1, 2, -1, 1},
    {"chunked any case, OWS", "POST /x HTTP/1.1\r\n" H "transfer-encoding:  ChUnKeD \r\n\r\n", 0,
     0, "POST", "/x", "", 1, 2, -1, 1},
    {"connection close", "GET / HTTP/1.1\r\n" H "Connection: close\r\n\r\n", 0, 0, "GET", "/", "",
     1, 2, -1, 0, 1},
    {"connection list", "GET / HTTP/1.0\r\nConnection: Upgrade, Keep-Alive\r\n\r\n", 0, 0, "GET",
     "/", "", 0, 1, -1, 0, 0, 1},
    {"expect", "PUT /u HTTP/1.1\r\n" H "Expect: 100-Continue\r\nContent-Length: 1\r\n\r\n", 0, 0,
     "PUT", "/u", "", 1, 3, 1, 0, 0, 0, 1},
    {"leading blank lines", "\r\n\r\nGET / HTTP/1.1\r\n" H "\r\n", 0, 0, "GET", "/", "", 1, 1, -1},
    {"value OWS trimmed, empty value", "GET / HTTP/1.1\r\nHost:\t h \t\r\nX-Empty:\r\n\r\n", 0, 0,
     "GET", "/", "", 1, 2, -1},
    {"obs-text in value", "GET / HTTP/1.1\r\n" H "X: \xff\xfe caf\xc3\xa9\r\n\r\n", 0, 0, "GET", "/",
     "", 1, 2, -1},
    {"percent path", "GET /a%20b/%E2%82%AC HTTP/1.1\r\n" H "\r\n", 0, 0, "GET", "/a%20b/%E2%82%AC",
     "", 1, 1, -1},

    /* smuggling vectors and malformed framing: 400 */
    {"CL and TE", "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
     0, 400},
    {"TE and CL", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
     0, 400},
    {"two CL equal", "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 0,
     400},
    {"two CL differ", "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 0,
     400},
    {"CL list", "POST / HTTP/1.1\r\n" H "Content-Length: 5, 5\r\n\r\n", 0, 400},
    {"CL plus", "POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n", 0, 400},
    {"CL minus", "POST / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n", 0, 400},
    {"CL hex", "POST / HTTP/1.1\r\n" H "Content-Length: 0x10\r\n\r\n", 0, 400},
    {"CL empty", "POST / HTTP/1.1\r\n" H "Content-Length: \r\n\r\n", 0, 400},
    {"CL inner space", "POST / HTTP/1.1\r\n" H "Content-Length: 1 2\r\n\r\n", 0, 400},
    {"CL overflow", "POST / HTTP/1.1\r\n" H "Content-Length: 99999999999999999999\r\n\r\n", 0, 400},
    {"CL past int64", "POST / HTTP/1.1\r\n" H "Content-Length: 9223372036854775808\r\n\r\n", 0, 400},
    {"obs-fold", "GET / HTTP/1.1\r\n" H "X: a\r\n b\r\n\r\n", 0, 400},
    {"obs-fold tab", "GET / HTTP/1.1\r\n" H "X: a\r\n\tb\r\n\r\n", 0, 400},
    {"space before first header", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", 0, 400},
    {"space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 0, 400},
    {"tab before colon", "GET / HTTP/1.1\r\n" H "Content-Length\t: 5\r\n\r\n", 0, 400},
    {"NUL in value", "GET / HTTP/1.1\r\n" H "X: a\0b\r\n\r\n", 35, 400},
    {"NUL in name", "GET / HTTP/1.1\r\n" H "X\0: a\r\n\r\n", 35, 400},
    {"bare CR in value", "GET / HTTP/1.1\r\n" H "X: a\rb\r\n\r\n", 0, 400},
    {"bare CR ending", "GET / HTTP/1.1\r\n" H "X: a\r\r\n\r\n", 0, 400},
    {"control char in value", "GET / HTTP/1.1\r\n" H "X: a\x01\r\n\r\n", 0, 400},
    {"DEL in value", "GET / HTTP/1.1\r\n" H "X: a\x7f\r\n\r\n", 0, 400},
    {"bare LF everywhere", "GET / HTTP/1.1\nHost: h\n\n", 0, 400},
    {"bare LF in headers", "GET / HTTP/1.1\r\nHost: h\n\r\n", 0, 400},
    {"bare LF final", "GET / HTTP/1.1\r\n" H "\n", 0, 400},
    {"method with (", "G(ET / HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"method with space", "GE T / HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"empty method", " / HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"method with NUL", "GE\0T / HTTP/1.1\r\n" H "\r\n", 28, 400},
    {"two spaces", "GET  / HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"missing host", "GET / HTTP/1.1\r\n\r\n", 0, 400},
    {"two hosts", "GET / HTTP/1.1\r\n" H H "\r\n", 0, 400},
    {"two hosts 1.0", "GET / HTTP/1.0\r\n" H H "\r\n", 0, 400},
    {"relative target", "GET foo HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"star with GET", "GET * HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"fragment in target", "GET /a#b HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"control in target", "GET /a\x01 HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"high byte in target", "GET /caf\xc3\xa9 HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"version short", "GET / HTTP/1\r\n" H "\r\n", 0, 400},
    {"version HTTX", "GET / HTTX/1.1\r\n" H "\r\n", 0, 400},
    {"version trailing", "GET / HTTP/1.1x\r\n" H "\r\n", 0, 400},
    {"version lower case", "GET / http/1.1\r\n" H "\r\n", 0, 400},
    {"version two digits", "GET / HTTP/1.10\r\n" H "\r\n", 0, 400},
    {"no version", "GET /\r\n" H "\r\n", 0, 400},
    {"empty header name", "GET / HTTP/1.1\r\n" H ": x\r\n\r\n", 0, 400},
    {"bad header name", "GET / HTTP/1.1\r\n" H "X@Y: z\r\n\r\n", 0, 400},
    {"header without colon", "GET / HTTP/1.1\r\n" H "Host\r\n\r\n", 0, 400},
    {"chunked not last", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, gzip\r\n\r\n", 0,
     400},
    {"chunked twice", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, chunked\r\n\r\n", 0, 400},
    {"two TE headers", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
     0, 400},
    {"TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 400},

    /* unsupported */
    {"TE gzip", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n", 0, 501},
    {"TE identity", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: identity\r\n\r\n", 0, 501},
    {"TE unknown", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: foo\r\n\r\n", 0, 501},
    {"TE empty", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: \r\n\r\n", 0, 501},
    {"HTTP/2.0", "GET / HTTP/2.0\r\n" H "\r\n", 0, 505},
    {"HTTP/3.0", "GET / HTTP/3.0\r\n" H "\r\n", 0, 505},
    {"HTTP/0.9", "GET / HTTP/0.9\r\n" H "\r\n", 0, 505},
};

static int parse(const char *buf, size_t n, im_http_head *h, im_header *hs, unsigned maxh,
                 size_t maxb)
{
    return im_http_parse_head(guarded(buf, n), n, h, hs, maxh, maxb);
}

static void check_view(const char *name, const char *what, im_str got, const char *want)
{
    CHECK(want == NULL || im_str_eq(got, want), "%s: %s is '%.*s', want '%s'", name, what,
          (int)got.len, got.ptr ? got.ptr : "", want);
}

static void test_heads(void)
{
    im_header hs[16];
    im_http_head h;
    for (size_t i = 0; i < sizeof heads / sizeof *heads; i++) {
        const head_case *t = &heads[i];
        size_t n = t->len ? t->len : strlen(t->in);
        int r = parse(t->in, n, &h, hs, 16, 8192);
        if (t->status == 0) {
            CHECK(r == (int)n, "%s: parse returned %d (%s), want %zu", t->name, r,
                  r == IM_HTTP_ERROR ? h.error : "", n);
            if (r != (int)n) continue;
            check_view(t->name, "method", h.method, t->method);
            check_view(t->name, "path", h.path, t->path);
            check_view(t->name, "query", h.query, t->query);
            CHECK(h.minor == t->minor, "%s: minor %d", t->name, h.minor);
            CHECK((int)h.num_headers == t->nheaders, "%s: %u headers", t->name, h.num_headers);
            CHECK(t->clen < 0 ? !h.has_content_length
                              : h.has_content_length && h.content_length == (uint64_t)t->clen,
                  "%s: content length", t->name);
            CHECK(h.chunked == t->chunked, "%s: chunked", t->name);
            CHECK(h.conn_close == t->close, "%s: close", t->name);
            CHECK(h.conn_keep_alive == t->keep, "%s: keep-alive", t->name);
            CHECK(h.expect_continue == t->expect, "%s: expect", t->name);
        } else {
            CHECK(r == IM_HTTP_ERROR && h.status == t->status, "%s: returned %d status %d, want %d",
                  t->name, r, h.status, t->status);
            CHECK(r != IM_HTTP_ERROR || (h.error && h.error_offset <= n), "%s: error details",
                  t->name);
        }
        /* bytes one by one: every prefix is incomplete, or already the same error */
        for (size_t k = 0; k < n; k++) {
            int rk = parse(t->in, k, &h, hs, 16, 8192);
            if (t->status == 0)
                CHECK(rk == IM_HTTP_INCOMPLETE, "%s: prefix %zu gave %d (%s)", t->name, k, rk,
                      rk == IM_HTTP_ERROR ? h.error : "");
            else
                CHECK(rk == IM_HTTP_INCOMPLETE || (rk == IM_HTTP_ERROR && h.status == t->status),
                      "%s: prefix %zu gave %d status %d", t->name, k, rk, h.status);
        }
    }
}

static void test_limits(void)
{
    im_header hs[4];
    im_http_head h;
    const char *five = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    const char *four = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    CHECK(parse(four, strlen(four), &h, hs, 4, 0) == (int)strlen(four), "4 headers fit in 4");
    CHECK(parse(five, strlen(five), &h, hs, 4, 0) == IM_HTTP_ERROR && h.status == 431,
          "5 headers in 4: %d", h.status);
    /* the head limit: exactly at it passes, one byte over fails, in the line: 414 */
    size_t n = strlen(four);
    CHECK(parse(four, n, &h, hs, 4, n) == (int)n, "head of exactly the limit");
    CHECK(parse(four, n, &h, hs, 4, n - 1) == IM_HTTP_ERROR && h.status == 431,
          "one byte over: %d", h.status);
    CHECK(parse(four, n, &h, hs, 4, 10) == IM_HTTP_ERROR && h.status == 414, "line over: %d",
          h.status);
    /* more bytes than the limit but incomplete within it: error, not "need more" */
    char big[300];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /", 5);
    CHECK(parse(big, sizeof big, &h, hs, 4, 100) == IM_HTTP_ERROR && h.status == 414,
          "long target: %d", h.status);
    CHECK(parse(big, 50, &h, hs, 4, 100) == IM_HTTP_INCOMPLETE, "under the limit: more");
    /* what follows the head is not read, nor counted */
    const char *two = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
    int r = parse(two, strlen(two), &h, hs, 4, 0);
    CHECK(r == 28 && im_str_eq(h.path, "/1"), "pipelined: first head is 28 bytes, got %d", r);
    r = im_http_parse_head(guarded(two, strlen(two)) + 28, strlen(two) - 28, &h, hs, 4, 0);
    CHECK(r == 28 && im_str_eq(h.path, "/2"), "pipelined: second head, got %d", r);
}

/* ---- chunked ---- */

typedef struct chunk_case {
    const char *name;
    const char *in;
    int status;       /* 0 valid */
    const char *body; /* decoded */
    size_t rest;      /* bytes after the message, not consumed */
} chunk_case;

static const chunk_case chunks[] = {
    {"one", "5\r\nhello\r\n0\r\n\r\n", 0, "hello", 0},
    {"two", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 0, "hello world", 0},
    {"hex cases, zeros", "000A\r\n0123456789\r\na\r\nabcdefghij\r\n0000\r\n\r\n", 0,
     "0123456789abcdefghij", 0},
    {"extensions", "5;a=b;c=\"d e\"\r\nhello\r\n0;last\r\n\r\n", 0, "hello", 0},
    {"BWS before ext", "5 ;a=b\r\nhello\r\n0\r\n\r\n", 0, "hello", 0},
    {"BWS then CRLF", "5 \t\r\nhello\r\n0\r\n\r\n", 0, "hello", 0},
    {"space inside the size", "5 6\r\nhello\r\n0\r\n\r\n", 400},
    {"junk after the size", "5\tjunk\r\nhello\r\n0\r\n\r\n", 400},
    {"trailers", "3\r\nabc\r\n0\r\nX-T: 1\r\nY: two words\r\n\r\n", 0, "abc", 0},
    {"empty body", "0\r\n\r\n", 0, "", 0},
    {"pipelined after", "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n", 0, "abc", 16},
    {"not hex", "g\r\nhello\r\n0\r\n\r\n", 400},
    {"no size", "\r\nhello\r\n0\r\n\r\n", 400},
    {"negative", "-5\r\nhello\r\n0\r\n\r\n", 400},
    {"hex prefix", "0x5\r\nhello\r\n0\r\n\r\n", 400},
    {"overflow", "fffffffffffffffff1\r\nhello\r\n0\r\n\r\n", 400},
    {"overflow 17 digits", "10000000000000000\r\n", 400},
    {"data too long", "5\r\nhelloX\r\n0\r\n\r\n", 400},
    {"data too short", "5\r\nhell\r\n0\r\n\r\n", 400},
    {"bare LF after size", "5\nhello\r\n0\r\n\r\n", 400},
    {"bare LF after data", "5\r\nhello\n0\r\n\r\n", 400},
    {"bare CR in size line", "5\rhello\r\n0\r\n\r\n", 400},
    {"control in ext", "5;a\x01\r\nhello\r\n0\r\n\r\n", 400},
    {"bad trailer", "0\r\nX Y: 1\r\n\r\n", 400},
    {"trailer obs-fold", "0\r\nX: 1\r\n folded\r\n\r\n", 400},
    {"bare LF end", "0\r\n\n", 400},
    {"over the limit", "401\r\n", 413}, /* limit is 1024 in this test */
};

/* Decodes in place, feeding pieces of `step` bytes (0: all at once). Returns the decoder's
 * last result; *out gets the decoded bytes, *rest the bytes left unconsumed. */
static int decode(const char *in, size_t n, size_t step, char *out, size_t *outlen, size_t *rest,
                  im_http_chunked *d)
{
    char *buf = guarded(in, n);
    size_t raw = 0, dec = 0;
    int r = 0;
    memset(d, 0, sizeof *d);
    d->max_total = 1024;
    d->max_trailer = 64;
    while (raw < n) {
        size_t avail = step ? raw + step : n; /* bytes "received" so far */
        if (avail > n) avail = n;
        size_t used, made;
        r = im_http_decode_chunked(d, buf + dec, buf + raw, avail - raw, &used, &made);
        raw += used;
        dec += made;
        if (r != 0) break;
        if (avail == n) break;
    }
    memcpy(out, buf, dec);
    *outlen = dec;
    *rest = n - raw;
    return r;
}

static void test_chunked(void)
{
    char out[4096];
    size_t olen, rest;
    im_http_chunked d;
    for (size_t i = 0; i < sizeof chunks / sizeof *chunks; i++) {
        const chunk_case *t = &chunks[i];
        size_t n = strlen(t->in);
        for (size_t step = 0; step <= n; step += step < 3 ? 1 : 7) {
            int r = decode(t->in, n, step, out, &olen, &rest, &d);
            if (t->status == 0) {
                CHECK(r == 1, "%s (step %zu): result %d (%s)", t->name, step, r,
                      r < 0 ? d.error : "");
                CHECK(olen == strlen(t->body) && memcmp(out, t->body, olen) == 0,
                      "%s (step %zu): body '%.*s'", t->name, step, (int)olen, out);
                CHECK(rest == t->rest, "%s (step %zu): %zu bytes left", t->name, step, rest);
                CHECK(d.total == strlen(t->body), "%s: total %llu", t->name,
                      (unsigned long long)d.total);
            } else {
                CHECK(r == IM_HTTP_ERROR && d.status == t->status, "%s (step %zu): %d / %d",
                      t->name, step, r, d.status);
            }
        }
    }
    /* the limit counts the sum of the chunks */
    const char *sum = "400\r\n";
    char two[2200];
    size_t n = 0;
    n += (size_t)sprintf(two, "%s", sum);
    memset(two + n, 'a', 1024);
    n += 1024;
    n += (size_t)sprintf(two + n, "\r\n1\r\nb\r\n0\r\n\r\n");
    int r = decode(two, n, 0, out, &olen, &rest, &d);
    CHECK(r == IM_HTTP_ERROR && d.status == 413, "1024 + 1 bytes over a 1024 limit: %d/%d", r,
          d.status);
    /* a trailer section over its limit (64 here) */
    char tr[200];
    n = (size_t)sprintf(tr, "0\r\nX: %070d\r\n\r\n", 0);
    r = decode(tr, n, 0, out, &olen, &rest, &d);
    CHECK(r == IM_HTTP_ERROR && d.status == 431, "long trailer: %d/%d", r, d.status);
}

int main(void)
{
    test_heads();
    test_limits();
    test_chunked();
    printf("%zu head cases, %zu chunked cases\n", sizeof heads / sizeof *heads,
           sizeof chunks / sizeof *chunks);
    return check_exit("http parser");
}
