/* spec.c — the OpenAPI document the server serves: the service's own (the generator's, or the
 * one given to im_server_add_endpoints) with the runtime's endpoints spliced in (tasks,
 * functions, health, readiness, metrics, management), so that clients and /docs see them all.
 * Like FastAPI, /openapi.json, /docs and /redoc themselves are left out. */

/* Schemas and responses the runtime's operations share; their names have a dot, which no C
 * identifier (a service's object names) has, so they cannot clash with the service's. */
#define IM__SP_REF(n) "{\"$ref\":\"#/components/schemas/immersive." n "\"}"
#define IM__SP_JSON(desc, schema) \
    "{\"description\":\"" desc "\",\"content\":{\"application/json\":{\"schema\":" schema "}}}"
#define IM__SP_ERR(desc) IM__SP_JSON(desc, IM__SP_REF("Error"))
#define IM__SP_PARAM(n, desc)                                                                 \
    "{\"name\":\"" n "\",\"in\":\"path\",\"required\":true,\"schema\":{\"type\":\"string\"}," \
    "\"description\":\"" desc "\"}"
#define IM__SP_TASK_ID IM__SP_PARAM("id", "the task's id (32 hex digits)")
#define IM__SP_FN_NAME IM__SP_PARAM("name", "the function's name, as GET /functions lists it")
#define IM__SP_404 "\"404\":" IM__SP_ERR("No such task or function")
#define IM__SP_GUARD                                                                          \
    "\"401\":{\"description\":\"manage.token is set and the request has no bearer token\","   \
    "\"headers\":{\"WWW-Authenticate\":{\"schema\":{\"type\":\"string\"}}},"                  \
    "\"content\":{\"application/json\":{\"schema\":" IM__SP_REF("Error") "}}},"               \
    "\"403\":" IM__SP_ERR("A wrong token, or (no manage.token) a peer that is not loopback")

static const char im__spec_schemas[] =
    "\"immersive.Error\":{\"title\":\"immersive.Error\",\"type\":\"object\",\"properties\":{"
    "\"detail\":{\"type\":\"string\"},\"state\":{\"type\":\"string\",\"description\":"
    "\"the task's state, on the answers about a task\"}},\"required\":[\"detail\"]},"
    "\"immersive.ValidationError\":{\"title\":\"immersive.ValidationError\",\"type\":\"object\","
    "\"properties\":{\"detail\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
    "\"loc\":{\"type\":\"array\",\"items\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}},"
    "\"msg\":{\"type\":\"string\"},\"type\":{\"type\":\"string\"}},\"required\":[\"loc\",\"msg\","
    "\"type\"]}}},\"required\":[\"detail\"]},"
    "\"immersive.Task\":{\"title\":\"immersive.Task\",\"type\":\"object\",\"properties\":{"
    "\"id\":{\"type\":\"string\",\"description\":\"32 hex digits\"},"
    "\"function\":{\"type\":\"string\"},"
    "\"request_id\":{\"type\":\"string\",\"description\":\"X-Request-ID of the call that made it\"},"
    "\"state\":{\"type\":\"string\",\"enum\":[\"QUEUED\",\"RUNNING\",\"SUCCEEDED\",\"FAILED\","
    "\"TIMEOUT\",\"CANCELLED\"]},"
    "\"priority\":{\"type\":\"integer\",\"description\":\"0 runs first\"},"
    "\"created_at\":{\"type\":[\"string\",\"null\"],\"format\":\"date-time\"},"
    "\"started_at\":{\"type\":[\"string\",\"null\"],\"format\":\"date-time\"},"
    "\"finished_at\":{\"type\":[\"string\",\"null\"],\"format\":\"date-time\"},"
    "\"progress\":{\"type\":\"object\",\"properties\":{\"fraction\":{\"type\":\"number\","
    "\"minimum\":0,\"maximum\":1},\"message\":{\"type\":[\"string\",\"null\"]}},"
    "\"required\":[\"fraction\",\"message\"]},"
    "\"result\":{\"description\":\"the function's answer (its JSON body), once SUCCEEDED\"},"
    "\"error\":{\"type\":\"string\",\"description\":\"why, once FAILED, TIMEOUT or CANCELLED\"}},"
    "\"required\":[\"id\",\"function\",\"request_id\",\"state\",\"priority\",\"created_at\","
    "\"started_at\",\"finished_at\",\"progress\"]},"
    "\"immersive.TaskList\":{\"title\":\"immersive.TaskList\",\"type\":\"object\",\"properties\":{"
    "\"tasks\":{\"type\":\"array\",\"items\":" IM__SP_REF("Task") "},"
    "\"next_cursor\":{\"type\":[\"string\",\"null\"],\"description\":\"the cursor of the next "
    "page, null on the last\"}},\"required\":[\"tasks\",\"next_cursor\"]},"
    "\"immersive.Function\":{\"title\":\"immersive.Function\",\"type\":\"object\",\"properties\":{"
    "\"name\":{\"type\":\"string\"},\"module\":{\"type\":\"string\"},"
    "\"method\":{\"type\":\"string\"},\"path\":{\"type\":\"string\"},"
    "\"summary\":{\"type\":\"string\"},"
    "\"mode\":{\"type\":\"string\",\"enum\":[\"inline\",\"pool\",\"serial\",\"process\"]},"
    "\"priority\":{\"type\":\"integer\"},"
    "\"max_concurrency\":{\"type\":[\"integer\",\"null\"]},"
    "\"timeout_s\":{\"type\":[\"number\",\"null\"]},"
    "\"reply\":{\"type\":\"string\",\"enum\":[\"sync\",\"async\"]},"
    "\"running\":{\"type\":\"integer\"},\"queued\":{\"type\":\"integer\"},"
    "\"args\":{\"type\":\"array\",\"description\":\"its arguments (GET /functions/{name} only)\","
    "\"items\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
    "\"type\":{\"type\":\"string\"},\"in\":{\"type\":\"string\"},\"required\":{\"type\":"
    "\"boolean\"},\"default\":{},\"description\":{\"type\":[\"string\",\"null\"]},"
    "\"schema\":{\"type\":\"object\"}}}}},"
    "\"required\":[\"name\",\"module\",\"method\",\"path\",\"mode\",\"priority\",\"reply\","
    "\"running\",\"queued\"]},"
    "\"immersive.Status\":{\"title\":\"immersive.Status\",\"type\":\"object\",\"properties\":{"
    "\"status\":{\"type\":\"string\",\"enum\":[\"ok\",\"ready\",\"not ready\"]},"
    "\"detail\":{\"type\":\"string\",\"description\":\"why it is not ready\"}},"
    "\"required\":[\"status\"]},"
    "\"immersive.Version\":{\"title\":\"immersive.Version\",\"type\":\"object\",\"properties\":{"
    "\"service\":{\"type\":\"string\"},\"version\":{\"type\":[\"string\",\"null\"]},"
    "\"immersive\":{\"type\":\"string\"},\"build_id\":{\"type\":\"string\"}},"
    "\"required\":[\"service\",\"version\",\"immersive\",\"build_id\"]},"
    "\"immersive.LogLevel\":{\"title\":\"immersive.LogLevel\",\"type\":\"object\",\"properties\":{"
    "\"level\":{\"type\":\"string\",\"enum\":[\"trace\",\"debug\",\"info\",\"warn\",\"error\","
    "\"fatal\",\"off\"]}},\"required\":[\"level\"]}";

static const char im__spec_tasks[] =
    "\"/tasks\":{\"get\":{\"operationId\":\"im_tasks_list\",\"tags\":[\"tasks\"],"
    "\"summary\":\"The tasks kept, newest first\",\"parameters\":["
    "{\"name\":\"function\",\"in\":\"query\",\"schema\":{\"type\":\"string\"},"
    "\"description\":\"only this function's\"},"
    "{\"name\":\"state\",\"in\":\"query\",\"schema\":{\"type\":\"string\"},"
    "\"description\":\"only in this state, or these (comma-separated)\"},"
    "{\"name\":\"limit\",\"in\":\"query\",\"schema\":{\"type\":\"integer\",\"minimum\":1,"
    "\"maximum\":1000,\"default\":100}},"
    "{\"name\":\"cursor\",\"in\":\"query\",\"schema\":{\"type\":\"string\"},"
    "\"description\":\"next_cursor of the page before\"}],"
    "\"responses\":{\"200\":" IM__SP_JSON("The page", IM__SP_REF("TaskList")) ","
    IM__SP_404 ",\"422\":" IM__SP_ERR("A bad state, limit or cursor") "}}},"
    "\"/tasks/{id}\":{\"get\":{\"operationId\":\"im_task_get\",\"tags\":[\"tasks\"],"
    "\"summary\":\"A task's state, progress and result\",\"parameters\":[" IM__SP_TASK_ID "],"
    "\"responses\":{\"200\":" IM__SP_JSON("The task", IM__SP_REF("Task")) "," IM__SP_404 "}},"
    "\"delete\":{\"operationId\":\"im_task_cancel\",\"tags\":[\"tasks\"],"
    "\"summary\":\"Cancel a task\",\"description\":\"A queued task ends CANCELLED at once; a "
    "running one is asked to stop (a process-mode one is killed).\",\"parameters\":["
    IM__SP_TASK_ID "],\"responses\":{\"200\":" IM__SP_JSON("The task, as cancelled",
                                                           IM__SP_REF("Task")) ","
    IM__SP_404 ",\"409\":" IM__SP_ERR("It has ended already") "}}},"
    "\"/tasks/{id}/result\":{\"get\":{\"operationId\":\"im_task_result\",\"tags\":[\"tasks\"],"
    "\"summary\":\"A task's answer, as a synchronous call would have had it\",\"parameters\":["
    IM__SP_TASK_ID ",{\"name\":\"Prefer\",\"in\":\"header\",\"schema\":{\"type\":\"string\"},"
    "\"description\":\"wait=N: wait up to N seconds for the end\"}],\"responses\":{"
    "\"200\":{\"description\":\"The function's own answer\",\"content\":{\"application/json\":"
    "{\"schema\":{}}}},"
    "\"202\":{\"description\":\"Not ended yet: ask again\",\"headers\":{\"Retry-After\":"
    "{\"schema\":{\"type\":\"integer\"}}},\"content\":{\"application/json\":{\"schema\":"
    IM__SP_REF("Error") "}}}," IM__SP_404 ","
    "\"409\":" IM__SP_ERR("It was cancelled") ","
    "\"500\":" IM__SP_ERR("It failed") ",\"504\":" IM__SP_ERR("It ran past its time limit")
    "}}},"
    "\"/tasks/{id}/events\":{\"get\":{\"operationId\":\"im_task_events\",\"tags\":[\"tasks\"],"
    "\"summary\":\"A task's progress and end, as server-sent events\",\"parameters\":["
    IM__SP_TASK_ID "],\"responses\":{\"200\":{\"description\":\"progress, then one of "
    "succeeded, failed, timeout or cancelled\",\"content\":{\"text/event-stream\":{\"schema\":"
    "{\"type\":\"string\"}}}}," IM__SP_404 "}}},"
    "\"/functions\":{\"get\":{\"operationId\":\"im_functions_list\",\"tags\":[\"functions\"],"
    "\"summary\":\"The service's functions, with what runs and waits\",\"responses\":{\"200\":"
    IM__SP_JSON("The functions", "{\"type\":\"array\",\"items\":" IM__SP_REF("Function") "}")
    "}}},"
    "\"/functions/{name}\":{\"get\":{\"operationId\":\"im_function_get\","
    "\"tags\":[\"functions\"],\"summary\":\"One function, with its arguments\",\"parameters\":["
    IM__SP_FN_NAME "],\"responses\":{\"200\":" IM__SP_JSON("The function", IM__SP_REF("Function"))
    "," IM__SP_404 "}}},"
    "\"/functions/{name}/terminate\":{\"post\":{\"operationId\":\"im_function_terminate\","
    "\"tags\":[\"functions\"],\"summary\":\"Cancel every queued and running task of a "
    "function\",\"parameters\":[" IM__SP_FN_NAME "],\"responses\":{\"200\":"
    IM__SP_JSON("How many were cancelled", "{\"type\":\"object\",\"properties\":{\"cancelled\":"
                "{\"type\":\"integer\"}},\"required\":[\"cancelled\"]}")
    "," IM__SP_404 "}}},";

static const char im__spec_health[] =
    "\"/health\":{\"get\":{\"operationId\":\"im_health\",\"tags\":[\"operations\"],"
    "\"summary\":\"Liveness: the loops answer\",\"responses\":{\"200\":"
    IM__SP_JSON("Alive", IM__SP_REF("Status")) "}}},"
    "\"/ready\":{\"get\":{\"operationId\":\"im_ready\",\"tags\":[\"operations\"],"
    "\"summary\":\"Readiness: started, not stopping, queues below manage.ready_queue_percent\","
    "\"responses\":{\"200\":" IM__SP_JSON("Ready", IM__SP_REF("Status")) ","
    "\"503\":" IM__SP_JSON("Not ready, and why", IM__SP_REF("Status")) "}}},"
    "\"/metrics\":{\"get\":{\"operationId\":\"im_metrics\",\"tags\":[\"operations\"],"
    "\"summary\":\"Prometheus metrics (text format 0.0.4)\",\"responses\":{\"200\":{"
    "\"description\":\"The metrics\",\"content\":{\"text/plain\":{\"schema\":{\"type\":"
    "\"string\"}}}},\"404\":" IM__SP_ERR("metrics.enabled is false") "}}},";

/* The management operations; %s: the prefix (three times, then once in the next). */
static const char im__spec_manage[] =
    "\"%s/version\":{\"get\":{\"operationId\":\"im_manage_version\",\"tags\":[\"operations\"],"
    "\"summary\":\"The service's and immersive's versions, and the build\",\"responses\":{"
    "\"200\":" IM__SP_JSON("The versions", IM__SP_REF("Version")) "}}},"
    "\"%s/logging/level\":{\"get\":{\"operationId\":\"im_manage_level_get\","
    "\"tags\":[\"operations\"],\"summary\":\"The log level\",\"responses\":{\"200\":"
    IM__SP_JSON("The level", IM__SP_REF("LogLevel")) "}},"
    "\"post\":{\"operationId\":\"im_manage_level_set\",\"tags\":[\"operations\"],"
    "\"summary\":\"Set the log level, until the config says otherwise\",\"requestBody\":{"
    "\"required\":true,\"content\":{\"application/json\":{\"schema\":" IM__SP_REF("LogLevel")
    "}}},\"responses\":{\"200\":" IM__SP_JSON("The level now", IM__SP_REF("LogLevel")) ","
    IM__SP_GUARD ",\"422\":" IM__SP_JSON("Not a level", IM__SP_REF("ValidationError")) "}}},"
    "\"%s/spec\":{\"get\":{\"operationId\":\"im_manage_spec\",\"tags\":[\"operations\"],"
    "\"summary\":\"This document (also at /openapi.json)\",\"responses\":{\"200\":"
    IM__SP_JSON("The OpenAPI document", "{\"type\":\"object\"}") "}}},";

static const char im__spec_config[] =
    "\"%s/config\":{\"get\":{\"operationId\":\"im_manage_config\",\"tags\":[\"operations\"],"
    "\"summary\":\"The configuration in force, every key (manage.token hidden)\","
    "\"responses\":{\"200\":" IM__SP_JSON("The configuration", "{\"type\":\"object\"}") "}}},";

/* The value of key (an object) at or after from: where its '{' is, or NULL. */
static const char *im__spec_obj(const char *d, const char *end, const char *from,
                                const char *key, int last)
{
    size_t kl = strlen(key);
    const char *found = NULL;
    for (const char *p = from; p && p + kl + 2 < end;) {
        const char *k = memmem(p, (size_t)(end - p), key, kl);
        if (!k || k == d || k[-1] != '"' || k + kl >= end || k[kl] != '"') {
            if (!k) break;
            p = k + 1;
            continue;
        }
        const char *q = k + kl + 1;
        while (q < end && strchr(" \t\r\n", *q)) q++;
        if (q < end && *q == ':') q++;
        else { p = k + 1; continue; }
        while (q < end && strchr(" \t\r\n", *q)) q++;
        if (q < end && *q == '{') {
            found = q;
            if (!last) return q;
        }
        p = k + 1;
    }
    return found;
}

/* The next character after '{' that is not blank is '}': an empty object. */
static int im__spec_empty(const char *open, const char *end)
{
    const char *q = open + 1;
    while (q < end && strchr(" \t\r\n", *q)) q++;
    return q < end && *q == '}';
}

/* Whether the service's document has this path already (the service's route won): the path
 * as a key, a string followed by ':' (a value that says it, as a description may, is not). */
static int im__spec_has_path(const char *d, size_t n, const char *path)
{
    char key[280];
    int kl = snprintf(key, sizeof key, "\"%s\"", path);
    if (kl <= 0 || (size_t)kl >= sizeof key) return 0;
    for (const char *p = d, *end = d + n; (p = memmem(p, (size_t)(end - p), key, (size_t)kl));) {
        const char *q = p + kl;
        while (q < end && strchr(" \t\r\n", *q)) q++;
        if (q < end && *q == ':') return 1;
        p += kl;
    }
    return 0;
}

/* Appends the entries of `frag` ("\"/p\":{...},..." ending in a comma) whose paths the
 * service's document lacks. */
static void im__spec_paths(im_jw *w, const char *d, size_t n, const char *frag)
{
    const char *p = frag;
    while (*p == '"') { /* each entry: "path":{...}, where the object ends at its "}}}," */
        const char *q = strchr(p + 1, '"');
        char path[256];
        snprintf(path, sizeof path, "%.*s", (int)(q - p - 1), p + 1);
        int depth = 0;
        const char *e = q + 2;
        for (; *e; e++) { /* no brace inside the fragments' strings */
            if (*e == '{') depth++;
            else if (*e == '}' && --depth == 0) break;
        }
        e++; /* past the '}' */
        if (!im__spec_has_path(d, n, path)) im__jw_put(w, p, (size_t)(e - p + 1)); /* and ',' */
        p = e + 1;
    }
}

/* Builds the served document from s->openapi; on a shape it cannot splice into, the service's
 * document is served as it is. 0, or -ENOMEM. */
static int im__spec_complete(im_server *s)
{
    const char *d = s->openapi, *end = d ? d + s->openapi_len : NULL;
    if (!d) return 0;
    const char *paths = im__spec_obj(d, end, d, "paths", 0);
    const char *comps = paths ? im__spec_obj(d, end, paths, "components", 1) : NULL;
    const char *schemas = comps ? im__spec_obj(d, end, comps, "schemas", 0) : NULL;
    const char *last = end; /* the document's closing brace */
    while (last > d && last[-1] != '}') last--;
    if (!paths || last == d) {
        im_log(IM_LOG_DEBUG, "the OpenAPI document has no paths: served as given");
        return 0;
    }
    const char *pre = s->o.manage_prefix;
    size_t pl = strlen(pre);
    while (pl > 1 && pre[pl - 1] == '/') pl--;
    if (pl == 1) pl = 0;
    char p[72]; /* config checks it: at most 64 characters, none to escape in JSON */
    snprintf(p, sizeof p, "%.*s", (int)(pl < 64 ? pl : 64), pre);
    char manage[sizeof im__spec_manage + 3 * sizeof p], config[sizeof im__spec_config + sizeof p];
    snprintf(manage, sizeof manage, im__spec_manage, p, p, p);
    snprintf(config, sizeof config, im__spec_config, p);

    im_jw w;
    im_jw_init(&w, NULL, 0);
    im__jw_put(&w, d, (size_t)(paths + 1 - d));
    size_t at = w.len;
    if (s->has_task_routes) im__spec_paths(&w, d, s->openapi_len, im__spec_tasks);
    im__spec_paths(&w, d, s->openapi_len, im__spec_health);
    int plain = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._~-") ==
                strlen(p); /* an im_server_opts prefix is not checked as config's is */
    plain &= s->o.manage_port <= 0; /* else they answer on another port: not this document's */
    if (plain) im__spec_paths(&w, d, s->openapi_len, manage);
    if (plain && s->cfgw) im__spec_paths(&w, d, s->openapi_len, config);
    if (w.len > at && im__spec_empty(paths, end)) w.len--; /* the last entry's comma */
    if (schemas) {
        im__jw_put(&w, paths + 1, (size_t)(schemas + 1 - (paths + 1)));
        im__jw_put(&w, im__spec_schemas, sizeof im__spec_schemas - 1);
        if (!im__spec_empty(schemas, end)) im__jw_put(&w, ",", 1);
        im__jw_put(&w, schemas + 1, (size_t)(end - (schemas + 1)));
    } else if (!comps) { /* components added at the end */
        im__jw_put(&w, paths + 1, (size_t)(last - 1 - (paths + 1)));
        im__jw_put(&w, ",\"components\":{\"schemas\":{", 26);
        im__jw_put(&w, im__spec_schemas, sizeof im__spec_schemas - 1);
        im__jw_put(&w, "}}", 2);
        im__jw_put(&w, last - 1, (size_t)(end - (last - 1)));
    } else {
        im__jw_put(&w, paths + 1, (size_t)(comps + 1 - (paths + 1)));
        im__jw_put(&w, "\"schemas\":{", 11);
        im__jw_put(&w, im__spec_schemas, sizeof im__spec_schemas - 1);
        im__jw_put(&w, "}", 1);
        if (!im__spec_empty(comps, end)) im__jw_put(&w, ",", 1);
        im__jw_put(&w, comps + 1, (size_t)(end - (comps + 1)));
    }
    if (im_jw_error(&w)) {
        im_jw_free(&w);
        return -ENOMEM;
    }
    free(s->spec_own);
    s->spec_own = w.buf;
    s->openapi = w.buf;
    s->openapi_len = w.len;
    return 0;
}
