/* test_redis.c — the loop's Redis client (redis.c) against a real redis-server, started here on
 * a free loopback port in a directory of its own: URLs read and refused; the start-up check's
 * error for a Redis that is not there; 10,000 pipelined commands answered in order on the URL's
 * db; a 1 MB value through short sends and split replies; Redis killed with a command in
 * flight: that command is told (NULL reply) and new ones are refused (-ENOTCONN) or told; Redis
 * back on the same port: the client connects again by itself. Skipped (77) without hiredis or
 * redis-server. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "support/check.h"

#if !IM_HAVE_HIREDIS
int main(void)
{
    fprintf(stderr, "built without hiredis (libhiredis-dev): skipped\n");
    return 77;
}
#else

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof a) && !getsockname(fd, (struct sockaddr *)&a, &n))
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

static int port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && !connect(fd, (struct sockaddr *)&a, sizeof a);
    if (fd >= 0) close(fd);
    return ok;
}

static char dir[] = "/tmp/im-test-redis-XXXXXX";

/* redis-server on port, nothing saved; its pid once it accepts, or -1 */
static pid_t start_redis(int port)
{
    char ports[8];
    snprintf(ports, sizeof ports, "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        execlp("redis-server", "redis-server", "--port", ports, "--bind", "127.0.0.1", "--dir", dir, "--save", "",
               "--appendonly", "no", "--daemonize", "no", "--logfile", "redis.log", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        if (port_open(port)) return pid;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) return -1;
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void stop_redis(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* ---- URLs and the start-up check (no loop) ---- */

static void test_urls(int port)
{
    im__redis_addr a;
    char err[400], url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", port);
    CHECK(im__redis_parse_url(url, &a, err, sizeof err) == 0, "%s: %s", url, err);
    CHECK(a.db == 3 && a.family == AF_INET, "db %d family %d", a.db, a.family);
    CHECK(ntohs(((struct sockaddr_in *)&a.sa)->sin_port) == port, "port");
    CHECK(im__redis_parse_url("redis://localhost", &a, err, sizeof err) == 0, "%s", err);
    CHECK(a.db == 0 && ntohs(a.family == AF_INET6 ? ((struct sockaddr_in6 *)&a.sa)->sin6_port
                                                  : ((struct sockaddr_in *)&a.sa)->sin_port) == 6379,
          "defaults: db 0, port 6379");
    CHECK(im__redis_parse_url("redis://[::1]:7000/", &a, err, sizeof err) == 0 && a.family == AF_INET6, "%s", err);
    static const char *const bad[] = {"http://x:1", "redis://", "redis://h:0", "redis://h:70000", "redis://h:1/x",
                                      "redis://h:1/2/3", "redis://[::1", "redis://h:x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        CHECK(im__redis_parse_url(bad[i], &a, err, sizeof err) == -EINVAL, "%s accepted", bad[i]);
        CHECK(strstr(err, bad[i]) && strstr(err, "redis://host:port/db"), "%s: the error says what: %s", bad[i], err);
    }
    CHECK(im__redis_parse_url("redis://no-such-host.invalid:1", &a, err, sizeof err) == -EINVAL &&
              strstr(err, "cannot resolve"),
          "an unknown host: %s", err);
    /* the start-up check: there, and not there */
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", port);
    im__redis_parse_url(url, &a, err, sizeof err);
    CHECK(im__redis_check(&a, 1000, err, sizeof err) == 0, "live Redis: %s", err);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", free_port());
    im__redis_parse_url(url, &a, err, sizeof err);
    err[0] = 0;
    CHECK(im__redis_check(&a, 1000, err, sizeof err) < 0 && strstr(err, "unreachable") && strstr(err, "127.0.0.1"),
          "no Redis: %s", err);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/9999", port);
    im__redis_parse_url(url, &a, err, sizeof err);
    err[0] = 0;
    CHECK(im__redis_check(&a, 1000, err, sizeof err) < 0 && strstr(err, "does not answer"), "db out of range: %s",
          err);
}

/* ---- the client on a loop ---- */

#define N 10000
static im_server *srv;
static im__redis *cli;
static im__redis_addr addr;
static atomic_int replies, in_order = 1, flushed, big_ok, blpop_told = -1, refused = -2, pongs, stats_ready;
static uint64_t n_connects, n_lost;
static char *big;
#define BIG (1 << 20)

static void on_setup(void *arg)
{
    (void)arg;
    im__redis_opts o = {.backoff_min_ms = 20, .backoff_max_ms = 200};
    cli = im__redis_new(im_loop_current(), 0, &addr, &o);
    CHECK(cli != NULL, "client");
}

static void on_flush(void *arg, redisReply *r)
{
    (void)arg;
    CHECK(r && r->type == REDIS_REPLY_STATUS, "FLUSHDB: %s", r ? r->str : "no reply");
    atomic_store(&flushed, 1);
}

static void on_incr(void *arg, redisReply *r)
{
    long long want = (long long)(intptr_t)arg;
    if (!r || r->type != REDIS_REPLY_INTEGER || r->integer != want) atomic_store(&in_order, 0);
    atomic_fetch_add(&replies, 1);
}

static void on_set(void *arg, redisReply *r)
{
    (void)arg;
    CHECK(r && r->type == REDIS_REPLY_STATUS, "SET big");
}

static void on_get(void *arg, redisReply *r)
{
    (void)arg;
    atomic_store(&big_ok, r && r->type == REDIS_REPLY_STRING && r->len == BIG && !memcmp(r->str, big, BIG) ? 1 : 0);
}

static void run_commands(void *arg)
{
    (void)arg;
    const char *fl[] = {"FLUSHDB"};
    CHECK(im__redis_cmd(cli, 1, fl, NULL, on_flush, NULL) == 0, "FLUSHDB queued while connecting");
    for (int i = 0; i < N; i++) {
        const char *argv[] = {"INCR", "k"};
        CHECK(im__redis_cmd(cli, 2, argv, NULL, on_incr, (void *)(intptr_t)(i + 1)) == 0, "INCR %d", i);
    }
    const char *set[] = {"SET", "big", big};
    size_t setl[] = {3, 3, BIG};
    CHECK(im__redis_cmd(cli, 3, set, setl, on_set, NULL) == 0, "SET big");
    const char *get[] = {"GET", "big"};
    CHECK(im__redis_cmd(cli, 2, get, NULL, on_get, NULL) == 0, "GET big");
}

static void on_blpop(void *arg, redisReply *r)
{
    (void)arg;
    atomic_store(&blpop_told, r == NULL);
}

static void send_blpop(void *arg)
{
    (void)arg;
    const char *argv[] = {"BLPOP", "never", "0"};
    CHECK(im__redis_cmd(cli, 3, argv, NULL, on_blpop, NULL) == 0, "BLPOP");
}

static void on_refused_ping(void *arg, redisReply *r)
{
    (void)arg;
    if (!r) atomic_store(&refused, 1); /* queued while it tried again, then told */
}

static void try_while_down(void *arg)
{
    (void)arg;
    const char *argv[] = {"PING"};
    int rc = im__redis_cmd(cli, 1, argv, NULL, on_refused_ping, NULL);
    if (rc == -ENOTCONN) atomic_store(&refused, 1);
    else if (rc) atomic_store(&refused, rc);
}

static void on_pong(void *arg, redisReply *r)
{
    (void)arg;
    if (r && r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "PONG")) atomic_fetch_add(&pongs, 1);
}

static void ping(void *arg)
{
    (void)arg;
    const char *argv[] = {"PING"};
    im__redis_cmd(cli, 1, argv, NULL, on_pong, NULL);
}

static void read_stats(void *arg)
{
    (void)arg;
    n_connects = cli->n_connects;
    n_lost = cli->n_lost;
    atomic_store(&stats_ready, 1);
}

static int wait_for(atomic_int *v, int want, int ms)
{
    for (int i = 0; i < ms / 5 && atomic_load(v) != want; i++) sleep_ms(5);
    return atomic_load(v) == want;
}

static void test_client(int port, pid_t *pid)
{
    char url[64], err[400];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", port);
    CHECK(im__redis_parse_url(url, &addr, err, sizeof err) == 0, "%s", err);
    big = malloc(BIG);
    for (int i = 0; i < BIG; i++) big[i] = (char)(i * 31 + (i >> 11));
    im_server_opts o = {0};
    o.port = -1;
    o.loops = 1;
    o.no_signals = 1;
    srv = im_server_new(&o);
    int rc = im_server_start(srv);
    if (rc == -EPERM || rc == -ENOSYS) {
        fprintf(stderr, "io_uring unavailable: skipped\n");
        exit(77);
    }
    CHECK(rc == 0, "start");
    im_loop_call(srv->loops[0], on_setup, NULL);
    im_loop_call(srv->loops[0], run_commands, NULL); /* queued before the connect completes */
    for (int i = 0; i < 2000 && (atomic_load(&replies) < N || atomic_load(&big_ok) == 0); i++) sleep_ms(5);
    CHECK(atomic_load(&flushed), "FLUSHDB answered");
    CHECK(atomic_load(&replies) == N, "%d of %d replies", atomic_load(&replies), N);
    CHECK(atomic_load(&in_order), "replies in order, each INCR its own count");
    CHECK(atomic_load(&big_ok) == 1, "1 MB back as sent");
    /* on the URL's db, not on 0: seen by another client */
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *r = redisCommand(c, "GET k");
    CHECK(r && r->type == REDIS_REPLY_NIL, "db 0 untouched");
    freeReplyObject(r);
    freeReplyObject(redisCommand(c, "SELECT 3"));
    r = redisCommand(c, "GET k");
    CHECK(r && r->type == REDIS_REPLY_STRING && atoi(r->str) == N, "db 3 holds k = %s", r && r->str ? r->str : "?");
    freeReplyObject(r);
    redisFree(c);
    /* Redis dies with a command in flight */
    im_loop_call(srv->loops[0], send_blpop, NULL);
    sleep_ms(100);
    stop_redis(*pid);
    CHECK(wait_for(&blpop_told, 1, 3000), "the command in flight told of the loss (%d)", atomic_load(&blpop_told));
    im_loop_call(srv->loops[0], try_while_down, NULL);
    CHECK(wait_for(&refused, 1, 3000), "a command while it is down refused or told (%d)", atomic_load(&refused));
    /* back on the same port: the client connects again by itself */
    *pid = start_redis(port);
    CHECK(*pid > 0, "redis-server again");
    for (int i = 0; i < 100 && !atomic_load(&pongs); i++) {
        im_loop_call(srv->loops[0], ping, NULL);
        sleep_ms(50);
    }
    CHECK(atomic_load(&pongs) > 0, "PONG after Redis came back");
    im_loop_call(srv->loops[0], read_stats, NULL);
    wait_for(&stats_ready, 1, 2000);
    CHECK(n_connects == 2 && n_lost >= 1, "connects %llu, losses %llu", (unsigned long long)n_connects,
          (unsigned long long)n_lost);
    im_server_stop(srv);
    im_server_wait(srv);
    im_server_free(srv);
    free(big);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (system("command -v redis-server >/dev/null 2>&1")) {
        fprintf(stderr, "redis-server not found (apt-get install redis-server): skipped\n");
        return 77;
    }
    if (!mkdtemp(dir)) return 1;
    int port = free_port();
    pid_t pid = start_redis(port);
    if (pid < 0) {
        fprintf(stderr, "redis-server did not start on port %d\n", port);
        return 1;
    }
    test_urls(port);
    test_client(port, &pid);
    if (pid > 0) stop_redis(pid);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    return check_exit("redis client");
}
#endif
