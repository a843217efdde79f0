/* http_client.h — a small blocking HTTP/1.1 client for the C tests that run a real server in
 * process: connect to 127.0.0.1, send bytes, read one response (Content-Length or chunked
 * framing, 1xx interim answers skipped) with every wait bounded by a timeout. */
#ifndef IM_TEST_HTTP_CLIENT_H
#define IM_TEST_HTTP_CLIENT_H
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* Connects to 127.0.0.1:port with 10 s send and receive timeouts; -1 on failure. */
static inline int http_dial(int port)
{
    struct sockaddr_in a;
    struct timeval tv = {10, 0};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        perror("connect");
        close(fd);
        return -1;
    }
    return fd;
}

static inline int http_send_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k <= 0) return -1;
        s += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Reads until `want` bytes arrived (or EOF, error, timeout); returns how many. */
static inline size_t http_recv_n(int fd, char *buf, size_t want)
{
    size_t got = 0;
    while (got < want) {
        ssize_t k = recv(fd, buf + got, want - got, 0);
        if (k <= 0) break;
        got += (size_t)k;
    }
    return got;
}

/* Reads until the peer closes (or 10 s pass); returns the bytes (NUL-terminated, caller
 * frees) and their count in *n. */
static inline char *http_recv_all(int fd, size_t *n)
{
    size_t cap = 65536, len = 0;
    char *b = malloc(cap + 1);
    for (;;) {
        if (cap - len < 65536) b = realloc(b, (cap *= 2) + 1);
        ssize_t k = recv(fd, b + len, cap - len, 0);
        if (k <= 0) break;
        len += (size_t)k;
    }
    b[len] = 0;
    *n = len;
    return b;
}

/* One response as read by http_read(). */
typedef struct http_resp {
    int status;       /* -1: no (complete) response */
    char head[8192];  /* status line and headers, NUL-terminated */
    char *body;       /* owned (http_free), NUL-terminated; de-chunked */
    size_t body_len;
} http_resp;

/* A buffered reader over one connection, so that pipelined responses can be read in turn. */
typedef struct http_conn {
    int fd;
    char buf[1 << 16];
    size_t len;       /* bytes in buf */
} http_conn;

static inline int http_fill(http_conn *c)
{
    if (c->len == sizeof c->buf) return -1;
    ssize_t k = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (k <= 0) return -1;
    c->len += (size_t)k;
    return 0;
}

static inline void http_take(http_conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* The value of header `name` in a head (case-insensitive), copied into out; 0 if found. */
static inline int http_header(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *l = p + 2;
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1, *e = strstr(v, "\r\n");
            while (*v == ' ') v++;
            size_t n = e ? (size_t)(e - v) : strlen(v);
            if (n >= cap) n = cap - 1;
            memcpy(out, v, n);
            out[n] = 0;
            return 0;
        }
    }
    return -1;
}

/* Reads the next final response (1xx answers are skipped); r->status -1 on EOF or timeout. */
static inline void http_read(http_conn *c, http_resp *r)
{
    char v[64];
    r->status = -1;
    r->body = NULL;
    r->body_len = 0;
    r->head[0] = 0;
    for (;;) {
        char *e;
        while (!(e = memmem(c->buf, c->len, "\r\n\r\n", 4)))
            if (http_fill(c)) return;
        size_t hl = (size_t)(e - c->buf) + 4;
        if (hl >= sizeof r->head || c->len < 12) return;
        memcpy(r->head, c->buf, hl);
        r->head[hl] = 0;
        r->status = atoi(r->head + 9);
        http_take(c, hl);
        if (r->status >= 200) break;
        r->status = -1; /* an interim answer: the final one follows */
    }
    if (http_header(r->head, "Content-Length", v, sizeof v) == 0) {
        size_t n = strtoull(v, NULL, 10);
        r->body = malloc(n + 1);
        while (c->len < n && c->len < sizeof c->buf)
            if (http_fill(c)) break;
        size_t have = c->len < n ? c->len : n;
        memcpy(r->body, c->buf, have);
        http_take(c, have);
        r->body_len = have + http_recv_n(c->fd, r->body + have, n - have);
        r->body[r->body_len] = 0;
        if (r->body_len != n) r->status = -1;
    } else if (http_header(r->head, "Transfer-Encoding", v, sizeof v) == 0) {
        size_t cap = 4096;
        r->body = malloc(cap + 1);
        for (;;) {
            char *nl;
            while (!(nl = memmem(c->buf, c->len, "\r\n", 2)))
                if (http_fill(c)) goto broken;
            size_t n = strtoull(c->buf, NULL, 16);
            http_take(c, (size_t)(nl - c->buf) + 2);
            while (c->len < n + 2)
                if (http_fill(c)) goto broken;
            if (r->body_len + n > cap) r->body = realloc(r->body, (cap = 2 * (r->body_len + n)) + 1);
            memcpy(r->body + r->body_len, c->buf, n);
            r->body_len += n;
            http_take(c, n + 2);
            if (n == 0) break;
        }
        r->body[r->body_len] = 0;
    } else {
        r->body = calloc(1, 1);
    }
    return;
broken:
    r->body[r->body_len] = 0;
    r->status = -1;
}

/* One request on an open keep-alive connection (extra: header lines, each ending in CRLF, or
 * NULL); the response in r. Returns its status (-1: none). */
static inline int http_req(http_conn *c, const char *method, const char *target,
                           const char *json, const char *extra, http_resp *r)
{
    char req[1024];
    size_t bl = json ? strlen(json) : 0;
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\n%s%sContent-Length: %zu\r\n\r\n",
                     method, target, json ? "Content-Type: application/json\r\n" : "",
                     extra ? extra : "", bl);
    r->status = -1;
    r->body = NULL;
    if (http_send_all(c->fd, req, (size_t)n) == 0 && http_send_all(c->fd, json ? json : "", bl) == 0)
        http_read(c, r);
    return r->status;
}

static inline void http_free(http_resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* One request on a new connection; the response in r (free it with http_free). */
static inline int http_call(int port, const char *method, const char *target, const char *json,
                            http_resp *r)
{
    http_conn *c = malloc(sizeof *c); /* big: not on the stack */
    char req[1024];
    size_t bl = json ? strlen(json) : 0;
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: t\r\n%sContent-Length: %zu\r\n\r\n", method,
                     target, json ? "Content-Type: application/json\r\n" : "", bl);
    r->status = -1;
    r->body = NULL;
    c->fd = http_dial(port);
    c->len = 0;
    if (c->fd >= 0) {
        if (http_send_all(c->fd, req, (size_t)n) == 0 &&
            http_send_all(c->fd, json ? json : "", bl) == 0)
            http_read(c, r);
        close(c->fd);
    }
    free(c);
    return r->status;
}
#endif
