/* task_client.c — a load client for tasks: each of C connections submits an async call
 * (Prefer: respond-async), then asks GET /tasks/{id}/result until it is there (200: with
 * Prefer: wait=10 the server answers once the task has ended; --long-poll 0 asks again at
 * once instead), and starts the next one; for D seconds. Prints tasks per second end to end and the latency of a
 * task (submit to result) at p50 and p99. With --submit-only N it submits N tasks and waits
 * for no result (the store's memory per task is measured that way).
 *
 *   task_client PORT PATH BODY [--conns C] [--seconds D] [--submit-only N]
 *
 * One thread, epoll, keep-alive connections; a benchmark tool (bench/tasks_bench.py runs it). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct conn {
    int fd;
    char buf[8192];
    size_t len;
    char id[33];
    int polling;        /* 0: waiting for the 202, 1: for the result */
    double started;     /* when the task was submitted */
} conn;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *path, *body;
static int port, long_poll = 1;

static int dial(void)
{
    struct sockaddr_in a = {0};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        perror("connect");
        exit(1);
    }
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) {
            perror("send");
            exit(1);
        }
        p += k;
        n -= (size_t)k;
    }
}

static void submit(conn *c)
{
    char req[1024];
    int n = snprintf(req, sizeof req, "POST %s HTTP/1.1\r\nHost: b\r\nPrefer: respond-async\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     path, strlen(body), body);
    c->polling = 0;
    c->started = now();
    send_all(c->fd, req, (size_t)n);
}

static void poll_result(conn *c)
{
    char req[128];
    int n = snprintf(req, sizeof req, "GET /tasks/%s/result HTTP/1.1\r\nHost: b\r\n%s\r\n", c->id,
                     long_poll ? "Prefer: wait=10\r\n" : "");
    c->polling = 1;
    send_all(c->fd, req, (size_t)n);
}

/* One whole response in c->buf: its status and body; returns its length, 0 if incomplete. */
static size_t response(conn *c, int *status, const char **b)
{
    char *e = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!e) return 0;
    *status = atoi(c->buf + 9);
    size_t blen = 0, total;
    for (char *h = memchr(c->buf, '\n', (size_t)(e - c->buf)); h && h < e;
         h = memchr(h + 1, '\n', (size_t)(e - h))) /* any case: HAProxy sends lower case */
        if (!strncasecmp(h + 1, "content-length:", 15)) {
            blen = strtoul(h + 16, NULL, 10);
            break;
        }
    total = (size_t)(e - c->buf) + 4 + blen;
    if (c->len < total) return 0;
    *b = e + 4;
    return total;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int nconns = 64;
    double seconds = 5;
    long submit_only = 0;
    if (argc < 4) {
        fprintf(stderr, "usage: task_client PORT PATH BODY [--conns C] [--seconds D] [--submit-only N] "
                "[--long-poll 0|1]\n");
        return 2;
    }
    port = atoi(argv[1]);
    path = argv[2];
    body = argv[3];
    for (int i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--conns")) nconns = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--submit-only")) submit_only = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--long-poll")) long_poll = atoi(argv[i + 1]);
    }
    int ep = epoll_create1(0);
    conn *cs = calloc((size_t)nconns, sizeof *cs);
    size_t cap = 1 << 20, nlat = 0;
    double *lat = malloc(cap * sizeof *lat);
    long done = 0, submitted = 0, polls = 0, errors = 0;
    double t0 = now(), end = t0 + seconds;
    for (int i = 0; i < nconns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        cs[i].fd = dial();
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
        if (!submit_only || submitted < submit_only) {
            submit(&cs[i]);
            submitted++;
        }
    }
    int active = nconns;
    while (active > 0) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, 1000);
        for (int k = 0; k < n; k++) {
            conn *c = evs[k].data.ptr;
            ssize_t got = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
            if (got <= 0) {
                fprintf(stderr, "task_client: connection closed\n");
                return 1;
            }
            c->len += (size_t)got;
            int st;
            const char *b;
            size_t used;
            while ((used = response(c, &st, &b))) {
                int next = 0; /* 1: submit another, 2: poll again, 0: stop */
                if (!c->polling) {
                    const char *p = strstr(b, "\"task_id\":\"");
                    if (st == 202 && p) {
                        memcpy(c->id, p + 11, 32);
                        c->id[32] = 0;
                        next = submit_only ? 1 : 2;
                        if (submit_only) done++;
                    } else {
                        errors++;
                        next = 1;
                    }
                } else if (st == 202) {
                    polls++;
                    next = 2;
                } else {
                    if (st == 200) {
                        done++;
                        if (nlat == cap) lat = realloc(lat, (cap *= 2) * sizeof *lat);
                        lat[nlat++] = now() - c->started;
                    } else {
                        errors++;
                    }
                    next = 1;
                }
                memmove(c->buf, c->buf + used, c->len - used);
                c->len -= used;
                if (next == 2) {
                    poll_result(c);
                } else if (next == 1 && (submit_only ? submitted < submit_only : now() < end)) {
                    submit(c);
                    submitted++;
                } else {
                    active--;
                }
            }
        }
    }
    double t = now() - t0;
    qsort(lat, nlat, sizeof *lat, cmp);
    printf("tasks=%ld seconds=%.2f tasks_per_s=%.0f polls_per_task=%.2f errors=%ld", done, t,
           done / t, done ? (double)polls / (double)done : 0, errors);
    if (nlat)
        printf(" p50_ms=%.3f p99_ms=%.3f", lat[nlat / 2] * 1e3, lat[nlat * 99 / 100] * 1e3);
    printf("\n");
    return errors ? 1 : 0;
}
