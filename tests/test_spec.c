/* test_spec.c — the served OpenAPI document for documents the generator did not write (given to
 * im_server_add_endpoints): pretty-printed, with no paths, with no schemas, with a path of the
 * runtime's taken by the service, with no components; each served document must be one JSON value that has the
 * runtime's operations once each and the service's own untouched. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "support/check.h"
#include "support/http_client.h"

static int no_bind(im_bind *b, void *args)
{
    (void)b;
    (void)args;
    return 0;
}

static int answer_null(im_call *call, const void *args, void *out)
{
    (void)call;
    (void)args;
    (void)out;
    return 0;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

/* Serves doc, fetches /openapi.json; the body (malloc'd) or NULL when io_uring is missing. */
static char *served(const char *what, const char *doc, const char *path)
{
    im_server_opts o = {0};
    o.port = -1;
    o.loops = 1;
    o.workers = 1;
    o.no_signals = 1;
    im_server *s = im_server_new(&o);
    static im_endpoint ep;
    ep = (im_endpoint){0};
    ep.method = "GET";
    ep.path = path;
    ep.name = "mine";
    ep.module = "mine";
    ep.bind = no_bind;
    ep.call = answer_null;
    CHECK(im_server_add_endpoints(s, &ep, 1, doc, strlen(doc)) == 0, "%s: added", what);
    int rc = im_server_start(s);
    if (rc == -EPERM || rc == -ENOSYS) {
        im_server_free(s);
        return NULL;
    }
    CHECK(rc == 0, "%s: start: %d", what, rc);
    http_resp r;
    http_call(im_server_port(s), "GET", "/openapi.json", NULL, &r);
    CHECK(r.status == 200, "%s: %d", what, r.status);
    char *body = r.body ? strdup(r.body) : NULL;
    http_free(&r);
    im_server_stop(s);
    im_server_wait(s);
    im_server_free(s);
    im_json j;
    CHECK(body && im_json_check(&j, body, strlen(body)) == 0, "%s: one JSON value: %s", what,
          body ? body : "(none)");
    return body;
}

/* The runtime's operations and schemas are there once each. */
static void has_runtime(const char *what, const char *b)
{
    CHECK(count(b, "\"/tasks/{id}\"") == 1 && count(b, "\"/health\"") == 1 &&
          count(b, "\"/manage/version\"") == 1 && count(b, "\"/functions\"") == 1,
          "%s: the runtime's paths once each: %s", what, b);
    CHECK(count(b, "\"immersive.Task\":{") == 1 && count(b, "\"immersive.Error\":{") == 1,
          "%s: the runtime's schemas once each", what);
}

int main(void)
{
    im_log_set_level(IM_LOG_WARN);
    const char *pretty = "{\n  \"openapi\": \"3.1.0\",\n  \"info\": {\"title\": \"t\", "
                         "\"version\": \"1\"},\n  \"paths\" : {\n  },\n  \"components\": {\n"
                         "    \"securitySchemes\": {}\n  }\n}\n";
    char *b = served("pretty, no paths, no schemas", pretty, "/mine");
    if (!b) {
        fprintf(stderr, "io_uring unavailable: skipped\n");
        return 77;
    }
    has_runtime("pretty", b);
    CHECK(strstr(b, "\"securitySchemes\": {}") != NULL, "pretty: its components kept: %s", b);
    free(b);

    const char *compact = "{\"openapi\":\"3.1.0\",\"info\":{\"title\":\"t\",\"version\":\"1\"},"
                          "\"paths\":{\"/mine\":{\"get\":{\"operationId\":\"mine\",\"responses\":"
                          "{\"200\":{\"description\":\"ok\"}}}}},\"components\":{\"schemas\":"
                          "{\"Mine\":{\"type\":\"object\"}}}}";
    b = served("compact", compact, "/mine");
    if (b) {
        has_runtime("compact", b);
        CHECK(count(b, "\"/mine\":{\"get\":{\"operationId\":\"mine\"") == 1 &&
              strstr(b, "\"Mine\":{\"type\":\"object\"}"), "compact: its own kept: %s", b);
    }
    free(b);

    /* the service routes GET /health itself: its document's /health stays the only one */
    const char *own_health = "{\"openapi\":\"3.1.0\",\"info\":{\"title\":\"t\",\"version\":\"1\"},"
                             "\"paths\":{\"/health\":{\"get\":{\"operationId\":\"mine\","
                             "\"responses\":{\"200\":{\"description\":\"mine\"}}}}},"
                             "\"components\":{\"schemas\":{}}}";
    b = served("its own /health", own_health, "/health");
    if (b) {
        CHECK(count(b, "\"/health\"") == 1 && strstr(b, "\"description\":\"mine\""),
              "own /health: once, its own: %s", b);
        CHECK(count(b, "\"/ready\"") == 1, "own /health: the rest added");
    }
    free(b);

    /* no components: they are added */
    const char *bare = "{\"openapi\":\"3.1.0\",\"info\":{\"title\":\"t\",\"version\":\"1\"},"
                       "\"paths\":{}}\n";
    b = served("no components", bare, "/mine");
    if (b) has_runtime("no components", b);
    free(b);

    /* no paths at all: a shape it does not know, served as it is */
    const char *odd = "{\"openapi\":\"3.1.0\",\"info\":{\"title\":\"t\",\"version\":\"1\"}}";
    b = served("no paths", odd, "/mine");
    if (b) CHECK(strcmp(b, odd) == 0, "no paths: as given: %s", b);
    free(b);
    return check_exit("spec");
}
