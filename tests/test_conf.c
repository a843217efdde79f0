/* test_conf.c — configuration: lookups of every type and by dotted path, "is it set" apart from
 * 0, layers (defaults < files in order < flags < im_config_set), unknown keys and wrong types
 * refused with their places, a broken reload keeping the running config, subscribers called
 * once per change and only for their subtree, the server options a config gives, and
 * default_config.toml naming every key with a default that reads back. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "support/check.h"

static char dir[] = "/tmp/im_test_conf_XXXXXX";

static const char *write_file(const char *name, const char *text)
{
    static char path[8][256];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 256, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    return p;
}

static void test_toml_lookups(void)
{
    const char *text = "s = 'x'\ni = -42\nf = 2.5\nb = true\nd = 1979-05-27T07:32:00-08:00\n"
                       "[a.\"b.c\"]\nz = [1, 'two', {k = 3}]\n[[t]]\nn = 1\n[[t]]\nn = 2\n";
    char err[256];
    im_toml *t = im_toml_parse(text, strlen(text), "doc", err, sizeof err);
    CHECK(t, "parse: %s", err);
    if (!t) return;
    CHECK(im_toml_get(t, "s")->type == IM_TOML_STRING, "s");
    CHECK(im_toml_get(t, "i")->u.i == -42, "i");
    CHECK(im_toml_get(t, "f")->u.f == 2.5, "f");
    CHECK(im_toml_get(t, "b")->u.b == 1, "b");
    const im_toml *d = im_toml_get(t, "d");
    CHECK(d->type == IM_TOML_DATETIME && d->u.t.offset_min == -480 && d->u.t.hour == 7, "d");
    char buf[64];
    im_toml_time_str(d, buf, sizeof buf);
    CHECK(strcmp(buf, "1979-05-27T07:32:00-08:00") == 0, "%s", buf);
    const im_toml *z = im_toml_get(t, "a.\"b.c\".z");
    CHECK(z && z->type == IM_TOML_ARRAY && im_toml_len(z) == 3, "quoted part");
    CHECK(z && im_toml_at(z, 2)->type == IM_TOML_TABLE, "inline table in an array");
    CHECK(!im_toml_get(t, "a.b.c.z"), "a dotted path does not split a quoted key");
    CHECK(!im_toml_get(t, "i.x") && !im_toml_get(t, "nope"), "absent");
    const im_toml *arr = im_toml_get(t, "t");
    CHECK(im_toml_len(arr) == 2 && im_toml_get(im_toml_at(arr, 1), "n")->u.i == 2, "[[t]]");
    CHECK(im_toml_get(t, "") == t, "empty path is the table");
    CHECK(im_toml_get(t, "i")->line == 2 && im_toml_get(t, "i")->col == 1, "line/col of i");
    im_toml *c = im_toml_dup(t);
    im_jw w1, w2;
    im_jw_init(&w1, NULL, 0);
    im_jw_init(&w2, NULL, 0);
    im_toml_json(t, &w1, 1);
    im_toml_json(c, &w2, 1);
    CHECK(w1.len == w2.len && memcmp(w1.buf, w2.buf, w1.len) == 0, "dup equals");
    im_jw_free(&w1);
    im_jw_free(&w2);
    im_toml_free(c);
    im_toml_free(t);

    /* an error says name:line:col */
    t = im_toml_parse("a = 1\nb = \n", 11, "bad.toml", err, sizeof err);
    CHECK(!t && strcmp(err, "bad.toml:2:5: expected a value") == 0, "%s", err);
    /* a column counts characters, not bytes */
    t = im_toml_parse("k = \"\xc3\xa9\xc3\xa9\" x\n", 13, "u", err, sizeof err);
    CHECK(!t && strncmp(err, "u:1:10:", 7) == 0, "%s", err);

    /* Nesting is bounded over the whole tree (headers, dotted keys and values add up), so
     * whatever is read prints as JSON: the fuzzer found 100 nested arrays read and then
     * refused by the JSON writer. */
    char deep[4096];
    int n = snprintf(deep, sizeof deep, "a = ");
    for (int i = 0; i < 100; i++) deep[n++] = '[';
    for (int i = 0; i < 100; i++) deep[n++] = ']';
    t = im_toml_parse(deep, (size_t)n, "d", err, sizeof err);
    CHECK(!t && strstr(err, "nested more than 48 deep"), "100 arrays: %s", err);
    /* 20 header parts + 20 dotted parts + 10 arrays: each under the limit, too deep together */
    n = snprintf(deep, sizeof deep, "x = 1\n[");
    for (int i = 0; i < 20; i++) n += snprintf(deep + n, sizeof deep - (size_t)n, "%sh", i ? "." : "");
    n += snprintf(deep + n, sizeof deep - (size_t)n, "]\n");
    for (int i = 0; i < 20; i++) n += snprintf(deep + n, sizeof deep - (size_t)n, "%sk", i ? "." : "");
    n += snprintf(deep + n, sizeof deep - (size_t)n, " = [[[[[[[[[[1]]]]]]]]]]\n");
    t = im_toml_parse(deep, (size_t)n, "d", err, sizeof err);
    CHECK(!t && strncmp(err, "d:3:", 4) == 0 && strstr(err, "more than 48 deep"),
          "mixed nesting: %s", err);
    /* 47 levels under the root are read and print, tagged too */
    n = snprintf(deep, sizeof deep, "a = ");
    for (int i = 0; i < 47; i++) deep[n++] = '[';
    deep[n++] = '1';
    for (int i = 0; i < 47; i++) deep[n++] = ']';
    t = im_toml_parse(deep, (size_t)n, "d", err, sizeof err);
    CHECK(t, "47 levels: %s", err);
    if (t) {
        im_jw w;
        im_jw_init(&w, NULL, 0);
        im_toml_json(t, &w, 1);
        CHECK(!im_jw_error(&w), "47 levels print as tagged JSON");
        im_jw_free(&w);
        im_toml_free(t);
    }
}

static int calls_level, calls_limits, calls_all;
static void on_level(im_config *cfg, const char *path, void *arg)
{
    (void)arg;
    CHECK(strcmp(path, "logging.level") == 0, "%s", path);
    /* the new value is there when the subscriber runs */
    CHECK(strcmp(im_config_str(cfg, "logging.level", "?"), "debug") == 0 ||
          strcmp(im_config_str(cfg, "logging.level", "?"), "warn") == 0, "value");
    calls_level++;
}
static void on_limits(im_config *cfg, const char *path, void *arg)
{
    (void)cfg, (void)path, (void)arg;
    calls_limits++;
}
static void on_all(im_config *cfg, const char *path, void *arg)
{
    (void)cfg, (void)path, (void)arg;
    calls_all++;
}

static void test_layers_and_lookups(void)
{
    char err[512];
    im_config *cfg = im_config_new();
    CHECK(im_config_add_defaults(cfg, "math", "[math]\nscale = 1.5\nname = 'm'\nsteps = [1, 2]\n"
                                 "api_token = 'abc'\n[math.cache]\nsize = 0\n"
                                 "[[math.backends]]\nhost = 'h'\npassword = 'pw1'\n", NULL, err,
                                 sizeof err) == 0, "%s", err);
    CHECK(im_config_add_defaults(cfg, "module math", "[modules]\nmath = true\n", NULL, err,
                                 sizeof err) == 0, "%s", err);
    const char *f1 = write_file("one.toml", "[server]\nport = 9000\n[math]\nscale = 3\n"
                                "[modules]\nmath = false\n");
    const char *f2 = write_file("two.toml", "[server]\nport = 9001\n[math.cache]\nsize = 7\n");
    im_config_add_file(cfg, f1, 0);
    im_config_add_file(cfg, f2, 0);
    im_config_add_file(cfg, "/nonexistent/im.toml", 1); /* optional: no error */
    im_config_add_override(cfg, "server.host", "0.0.0.0", "--host");
    CHECK(im_config_load(cfg, err, sizeof err) == 0, "load: %s", err);
    CHECK(im_config_int(cfg, "server.port", 0) == 9001, "later file wins");
    CHECK(strcmp(im_config_str(cfg, "server.host", ""), "0.0.0.0") == 0, "flag, bare word");
    CHECK(im_config_double(cfg, "math.scale", 0) == 3.0, "an integer read as a double");
    CHECK(im_config_double(cfg, "server.port", 0) == 9001.0, "int as double");
    CHECK(im_config_int(cfg, "math.scale", -1) == -1, "a float is no integer: fallback");
    CHECK(im_config_bool(cfg, "modules.math", 1) == 0, "a module switched off");
    CHECK(im_config_int(cfg, "math.cache.size", -1) == 7, "nested");
    CHECK(im_config_has(cfg, "math.cache.size") && !im_config_has(cfg, "math.cache.nope"),
          "has: set vs absent");
    CHECK(im_config_int(cfg, "math.nope", 5) == 5, "absent: fallback");
    im_toml *a = im_config_array(cfg, "math.steps");
    CHECK(a && im_toml_len(a) == 2 && im_toml_at(a, 1)->u.i == 2, "array");
    im_toml_free(a);
    CHECK(!im_config_array(cfg, "math.scale"), "not an array");
    im_toml *t = im_config_table(cfg, "math.cache");
    CHECK(t && im_toml_get(t, "size")->u.i == 7, "table copy");
    im_toml_free(t);
    char src[300];
    CHECK(im_config_source(cfg, "server.port", src, sizeof src) == 0 && strstr(src, "two.toml:2:1"),
          "source %s", src);
    CHECK(im_config_source(cfg, "server.host", src, sizeof src) == 0 && strcmp(src, "--host") == 0,
          "source %s", src);
    CHECK(im_config_source(cfg, "server.loops", src, sizeof src) == 0 && strcmp(src, "default") == 0,
          "source %s", src);

    /* the server options this gives: port as configured, a 0 timeout meaning off */
    CHECK(im_config_set(cfg, "server.timeouts.idle_ms", "0", err, sizeof err) == 0, "%s", err);
    im_server_opts o = {0};
    CHECK(im_config_server_opts(cfg, &o, err, sizeof err) == 0, "%s", err);
    CHECK(o.port == 9001 && strcmp(o.host, "0.0.0.0") == 0 && o.idle_timeout_ms > 86400000 &&
          o.max_body_bytes == IM_DEFAULT_MAX_BODY_BYTES && o.loops == 0, "opts");
    CHECK(im_config_set(cfg, "server.port", "0", err, sizeof err) == 0, "%s", err);
    im_config_server_opts(cfg, &o, err, sizeof err);
    CHECK(o.port == -1, "port 0: any free port");

    /* secrets are masked in the JSON */
    im_jw w;
    im_jw_init(&w, NULL, 0);
    im_config_json(cfg, &w, 1);
    char *json = strndup(w.buf, w.len); /* the writer's text is not NUL-terminated */
    CHECK(json && strstr(json, "\"api_token\":\"***\"") && !strstr(json, "abc"), "masked");
    CHECK(json && strstr(json, "\"password\":\"***\"") && !strstr(json, "pw1"),
          "masked inside an array of tables: %s", json);
    free(json);
    im_jw_free(&w);

    /* subscribers: once per change, only for their subtree */
    im_config_watch(cfg, "logging.level", on_level, NULL);
    im_config_watch(cfg, "server.limits", on_limits, NULL);
    im_config_watch(cfg, "", on_all, NULL);
    uint64_t g = im_config_generation(cfg);
    CHECK(im_config_set(cfg, "logging.level", "'debug'", err, sizeof err) == 0, "%s", err);
    CHECK(calls_level == 1 && calls_limits == 0 && calls_all == 1, "%d %d %d", calls_level,
          calls_limits, calls_all);
    CHECK(im_config_set(cfg, "logging.level", "'debug'", err, sizeof err) == 0, "%s", err);
    CHECK(calls_level == 1 && calls_all == 1, "no change, no call");
    CHECK(im_config_set(cfg, "server.limits.max_body_bytes", "2048", err, sizeof err) == 0, "%s", err);
    CHECK(calls_level == 1 && calls_limits == 1 && calls_all == 2, "limits");
    CHECK(im_config_generation(cfg) == g + 3, "generation %llu",
          (unsigned long long)im_config_generation(cfg));
    im_config_load(cfg, err, sizeof err); /* the files again: the set values stay on top */
    CHECK(im_config_int(cfg, "server.limits.max_body_bytes", 0) == 2048, "set beats files");
    CHECK(calls_limits == 1, "a reload that changes nothing calls nobody");

    /* refused sets name the key and the reason; the value stays */
    CHECK(im_config_set(cfg, "server.limits.max_body_bytes", "'big'", err, sizeof err) == -EINVAL &&
          strstr(err, "'server.limits.max_body_bytes' must be an integer, not a string"), "%s", err);
    CHECK(im_config_set(cfg, "server.limits.max_body_bytes", "0", err, sizeof err) == -EINVAL &&
          strstr(err, "from 1 to"), "%s", err);
    CHECK(im_config_set(cfg, "server.limits.max_bdy_bytes", "1", err, sizeof err) == -EINVAL &&
          strstr(err, "unknown key 'server.limits.max_bdy_bytes' (did you mean "
                 "'server.limits.max_body_bytes'?)"), "%s", err);
    CHECK(im_config_set(cfg, "logging.level", "'loud'", err, sizeof err) == -EINVAL, "level");
    CHECK(im_config_int(cfg, "server.limits.max_body_bytes", 0) == 2048, "kept");
    CHECK(calls_limits == 1, "refused: nobody told");

    /* a broken file on reload: the running config stays, the error says where */
    write_file("two.toml", "[server]\nport = 9002\n[server.limits]\nmax_body_bytes = 1\n"
               "max_header_byte = 100\n");
    CHECK(im_config_load(cfg, err, sizeof err) == -EINVAL &&
          strstr(err, "two.toml:5:1: unknown key 'server.limits.max_header_byte'"), "%s", err);
    CHECK(im_config_int(cfg, "server.port", 0) == 0, "old snapshot kept");
    write_file("two.toml", "[server]\nport = 'x'\n");
    CHECK(im_config_load(cfg, err, sizeof err) == -EINVAL &&
          strstr(err, "two.toml:2:1: 'server.port' must be an integer, not a string"), "%s", err);
    write_file("two.toml", "[server\nport = 1\n");
    CHECK(im_config_load(cfg, err, sizeof err) == -EINVAL && strstr(err, "two.toml:1:8:"),
          "%s", err);
    write_file("two.toml", "[server]\nport = 9003\n");
    CHECK(im_config_load(cfg, err, sizeof err) == 0 && im_config_int(cfg, "server.port", 0) == 0,
          "the set port still wins");
    im_config_free(cfg);

    /* a missing file that is not optional is an error */
    cfg = im_config_new();
    im_config_add_file(cfg, "/nonexistent/im.toml", 0);
    CHECK(im_config_load(cfg, err, sizeof err) == -EINVAL && strstr(err, "/nonexistent/im.toml"),
          "%s", err);
    CHECK(!im_config_has(cfg, "server.port"), "nothing loaded");
    im_config_free(cfg);
}

static void test_default_config(void)
{
    im_config *cfg = im_config_new();
    char *text = im_config_default_toml(cfg), err[256];
    im_toml *t = im_toml_parse(text, strlen(text), "default_config.toml", err, sizeof err);
    CHECK(t, "%s", err);
    /* every key the issue names, with the default the server uses */
    static const char *const keys[] = {"server.host", "server.port", "server.loops",
        "server.limits.max_body_bytes", "server.limits.max_conns", "server.timeouts.header_ms",
        "server.timeouts.idle_ms", "executor.workers", "executor.queue_capacity",
        "logging.level", "modules"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        CHECK(im_toml_get(t, keys[i]), "%s missing from default_config.toml", keys[i]);
    CHECK(im_toml_get(t, "server.limits.max_body_bytes")->u.i == IM_DEFAULT_MAX_BODY_BYTES, "mb");
    CHECK(im_toml_get(t, "server.timeouts.header_ms")->u.i == IM_DEFAULT_HEADER_TIMEOUT_MS, "h");
    /* the file itself loads as a config.toml without an error */
    const char *p = write_file("default_config.toml", text);
    im_config_add_file(cfg, p, 0);
    CHECK(im_config_load(cfg, err, sizeof err) == 0, "%s", err);
    im_toml_free(t);
    free(text);
    im_config_free(cfg);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    im_log_set_level(IM_LOG_OFF);
    test_toml_lookups();
    test_layers_and_lookups();
    test_default_config();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {
    }
    return check_exit("test_conf");
}
