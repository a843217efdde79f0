/* taskapi.c — the HTTP face of tasks and functions (GET/DELETE /tasks/{id}, its /result and
 * /events, GET /tasks, GET /functions[/{name}], POST /functions/{name}/terminate), and adding
 * annotated endpoints to a server (their routes, /openapi.json and the routes above). */

/* The task named by the {id} segment (a reference), or NULL after answering 404. */
static im__task *im__api_task(im_ctx *c)
{
    im_server *s = c->loop->srv;
    im_str raw = im_ctx_param(c, "id");
    uint8_t id[16];
    im__task *t = NULL;
    if (im__task_id_parse(raw, id) == 0) t = s->store->ops->get(s->store, id);
    if (!t) {
        char msg[160];
        snprintf(msg, sizeof msg, "no task %.*s: unknown, or finished longer ago than tasks are "
                 "kept", raw.len > 40 ? 40 : (int)raw.len, raw.ptr ? raw.ptr : "");
        im_reply_error(c, 404, msg);
    }
    return t;
}

/* Redis store: 1 when the task named by {id} is not one of this server's own (process-mode
 * tasks stay where they were accepted): it is looked up in Redis. */
static int im__api_shared(im_ctx *c)
{
    im_server *s = c->loop->srv;
    uint8_t id[16];
    if (!s->cluster) return 0;
    if (im__task_id_parse(im_ctx_param(c, "id"), id)) return 1;
    im__task *t = s->store->ops->get(s->store, id);
    im__task_unref(t);
    return t == NULL;
}

static void im__api_task_get(im_ctx *c)
{
    if (im__api_shared(c)) {
        im__cl_task_api(c, IM__CLQ_GET);
        return;
    }
    im__task *t = im__api_task(c);
    im_jw w;
    if (!t) return;
    im_jw_init(&w, NULL, 0);
    im__task_lock(t);
    im__task_json(&w, t, 1);
    im__task_unlock(t);
    im__task_unref(t);
    im__reply_jw(c, 200, &w);
}

static void im__api_task_result(im_ctx *c)
{
    if (im__api_shared(c)) {
        im__cl_task_api(c, IM__CLQ_RESULT);
        return;
    }
    im__task *t = im__api_task(c);
    if (!t) return;
    im__task_lock(t);
    int st = t->state;
    im__task_unlock(t);
    long wait;
    im__prefer_wait(c, &wait);
    if (!im__task_terminal_state(st) && wait > 0 && im__result_wait(c, t, wait) == 0)
        return; /* answered when it ends, or when the wait is over */
    if (!im__task_terminal_state(st)) {
        char msg[64];
        snprintf(msg, sizeof msg, "the task is %s: ask again later", im_task_state_name(st));
        im__retry_after(c, NULL);
        im__reply_task_error(c, 202, msg, st);
    } else {
        im__reply_task_end(c, t);
    }
    im__task_unref(t);
}

static void im__api_task_delete(im_ctx *c)
{
    if (im__api_shared(c)) {
        im__cl_task_api(c, IM__CLQ_DELETE);
        return;
    }
    im__task *t = im__api_task(c);
    im_jw w;
    if (!t) return;
    int st = im__task_cancel(t, "cancelled by DELETE /tasks/{id}");
    if (im__task_terminal_state(st)) {
        char msg[64];
        snprintf(msg, sizeof msg, "the task has ended already: %s", im_task_state_name(st));
        im__reply_task_error(c, 409, msg, st);
        im__task_unref(t);
        return;
    }
    im_jw_init(&w, NULL, 0);
    im__task_lock(t);
    im__task_json(&w, t, 1); /* CANCELLED, or RUNNING until its handler returns */
    im__task_unlock(t);
    im__task_unref(t);
    im__reply_jw(c, 200, &w);
}

static void im__api_task_events(im_ctx *c)
{
    if (im__api_shared(c)) {
        im__cl_task_api(c, IM__CLQ_EVENTS);
        return;
    }
    im__task *t = im__api_task(c);
    if (t) im__events_start(c, t);
}

/* The function named by the {name} segment, or NULL after answering 404. */
static im__epstate *im__api_function(im_ctx *c, im_str name)
{
    im_server *s = c->loop->srv;
    for (size_t i = 0; i < s->neps; i++)
        if (im_str_eq(name, s->eps[i]->ep->name)) return s->eps[i];
    char msg[128];
    snprintf(msg, sizeof msg, "no function named '%.*s'", name.len > 60 ? 60 : (int)name.len,
             name.ptr ? name.ptr : "");
    im_reply_error(c, 404, msg);
    return NULL;
}

/* GET /tasks?function=&state=&limit=&cursor=: newest first. */
static void im__api_task_list(im_ctx *c)
{
    im_server *s = c->loop->srv;
    im_str q = c->req.query, v;
    im__epstate *fn = NULL;
    unsigned mask = 0;
    long limit = 100;
    uint64_t before = 0, next = 0;
    char tmp[40], *end;
    if ((v = im_query_get(q, "function")).ptr && v.len && !(fn = im__api_function(c, v))) return;
    if ((v = im_query_get(q, "state")).ptr && v.len) { /* one state, or several: a,b */
        for (size_t k = 0; k <= v.len;) {
            size_t e = k;
            while (e < v.len && v.ptr[e] != ',') e++;
            im_str one = {v.ptr + k, e - k};
            int st = im__task_state_parse(one);
            if (st < 0) {
                im_reply_error(c, 422, "state must be QUEUED, RUNNING, SUCCEEDED, FAILED, "
                                       "TIMEOUT or CANCELLED (several: comma-separated)");
                return;
            }
            mask |= 1u << st;
            k = e + 1;
        }
    }
    if ((v = im_query_get(q, "limit")).ptr) {
        snprintf(tmp, sizeof tmp, "%.*s", v.len < 30 ? (int)v.len : 30, v.ptr);
        limit = strtol(tmp, &end, 10);
        if (!v.len || *end || limit < 1 || limit > 1000) {
            im_reply_error(c, 422, "limit must be an integer from 1 to 1000");
            return;
        }
    }
    if ((v = im_query_get(q, "cursor")).ptr && v.len) {
        snprintf(tmp, sizeof tmp, "%.*s", v.len < 30 ? (int)v.len : 30, v.ptr);
        errno = 0;
        before = strtoull(tmp, &end, 10);
        if (*end || errno || !before || tmp[0] == '-') {
            im_reply_error(c, 422, "cursor must be a next_cursor this endpoint gave");
            return;
        }
    }
    if (s->cluster && !(fn && fn->ep->mode == IM_MODE_PROCESS)) { /* the cluster's */
        im__cl_task_list(c, fn, mask, before, limit);
        return;
    }
    im__task **ts = malloc((size_t)limit * sizeof *ts);
    if (!ts) {
        im_reply_error(c, 503, "out of memory");
        return;
    }
    size_t n = s->store->ops->list(s->store, fn, mask, before, ts, (size_t)limit, &next);
    im_jw w;
    im_jw_init(&w, NULL, 0);
    im_jw_obj(&w);
    im_jw_key(&w, "tasks");
    im_jw_arr(&w);
    for (size_t i = 0; i < n; i++) {
        im__task_lock(ts[i]);
        im__task_json(&w, ts[i], 0); /* results are fetched one task at a time */
        im__task_unlock(ts[i]);
        im__task_unref(ts[i]);
    }
    im_jw_arr_end(&w);
    im_jw_key(&w, "next_cursor");
    if (next) {
        snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)next);
        im_jw_str(&w, tmp);
    } else {
        im_jw_null(&w);
    }
    im_jw_obj_end(&w);
    free(ts);
    im__reply_jw(c, 200, &w);
}

static const char *im__mode_name(int mode)
{
    static const char *const names[] = {"inline", "pool", "serial", "process"};
    return mode >= 0 && mode <= IM_MODE_PROCESS ? names[mode] : "unknown";
}

/* One function as GET /functions lists it; with its arguments' definitions when asked.
 * counts: {running, unfinished} of the whole cluster (Redis store), or NULL: this server's. */
static void im__function_json(im_jw *w, const im__epstate *st, int with_args, const unsigned *counts)
{
    const im_endpoint *ep = st->ep;
    unsigned unfinished = counts ? counts[1] : atomic_load_explicit(&((im__epstate *)st)->unfinished,
                                                                    memory_order_relaxed);
    unsigned running = counts ? counts[0] : atomic_load_explicit(&((im__epstate *)st)->running,
                                                                 memory_order_relaxed);
    im_jw_obj(w);
    im_jw_key(w, "name");
    im_jw_str(w, ep->name);
    im_jw_key(w, "module");
    im_jw_str(w, ep->module);
    im_jw_key(w, "method");
    im_jw_str(w, ep->method);
    im_jw_key(w, "path");
    im_jw_str(w, ep->path);
    im_jw_key(w, "summary");
    im_jw_str(w, ep->summary ? ep->summary : "");
    im_jw_key(w, "mode");
    im_jw_str(w, im__mode_name(ep->mode));
    im_jw_key(w, "priority");
    im_jw_int(w, ep->priority);
    im_jw_key(w, "max_concurrency");
    unsigned mc = atomic_load(&st->max_conc);
    if (mc) im_jw_uint(w, mc);
    else im_jw_null(w);
    im_jw_key(w, "timeout_s");
    uint32_t tm = atomic_load(&st->timeout_ms);
    if (tm) im_jw_double(w, tm / 1000.0);
    else im_jw_null(w);
    im_jw_key(w, "reply");
    im_jw_str(w, ep->mode == IM_MODE_INLINE || ep->response == IM_RESPOND_SYNC ? "sync" : "async");
    im_jw_key(w, "running");
    im_jw_uint(w, running);
    im_jw_key(w, "queued");
    im_jw_uint(w, unfinished > running ? unfinished - running : 0);
    if (with_args) {
        im_jw_key(w, "args");
        if (ep->args_json) im_jw_raw(w, ep->args_json, strlen(ep->args_json));
        else im_jw_raw(w, "[]", 2);
    }
    im_jw_obj_end(w);
}

static void im__api_functions(im_ctx *c)
{
    im_server *s = c->loop->srv;
    im_jw w;
    if (s->cluster) {
        im__cl_functions(c, NULL, IM__CLQ_FUNCS);
        return;
    }
    im_jw_init(&w, NULL, 0);
    im_jw_arr(&w);
    for (size_t i = 0; i < s->neps; i++) im__function_json(&w, s->eps[i], 0, NULL);
    im_jw_arr_end(&w);
    im__reply_jw(c, 200, &w);
}

static void im__api_function_get(im_ctx *c)
{
    im__epstate *st = im__api_function(c, im_ctx_param(c, "name"));
    im_jw w;
    if (!st) return;
    if (c->loop->srv->cluster) {
        im__cl_functions(c, st, IM__CLQ_FUNC);
        return;
    }
    im_jw_init(&w, NULL, 0);
    im__function_json(&w, st, 1, NULL);
    im__reply_jw(c, 200, &w);
}

/* Cancels every queued and running task of a function: {"cancelled": n}. */
static void im__api_function_terminate(im_ctx *c)
{
    im_server *s = c->loop->srv;
    im__epstate *st = im__api_function(c, im_ctx_param(c, "name"));
    uint64_t before = 0, next;
    unsigned long cancelled = 0;
    im__task *batch[256];
    char body[48];
    if (!st) return;
    if (s->cluster && st->ep->mode != IM_MODE_PROCESS) {
        im__cl_functions(c, st, IM__CLQ_TERMINATE);
        return;
    }
    do { /* in batches, newest first, never holding the store's lock while cancelling */
        size_t n = s->store->ops->list(s->store, st, 1u << IM_TASK_QUEUED | 1u << IM_TASK_RUNNING,
                                       before, batch, 256, &next);
        for (size_t i = 0; i < n; i++) {
            int was = im__task_cancel(batch[i], "cancelled by POST /functions/{name}/terminate");
            if (!im__task_terminal_state(was)) cancelled++;
            im__task_unref(batch[i]);
        }
        before = next;
    } while (before);
    int n = snprintf(body, sizeof body, "{\"cancelled\":%lu}", cancelled);
    im_reply_json(c, 200, body, (size_t)n);
}

static void im__openapi_handler(im_ctx *c)
{
    im_server *s = im_ctx_udata(c);
    im_reply_json(c, 200, s->openapi, s->openapi_len);
}

/* The store's TTL, once a second, on loop 0 (finishing tasks evict too). */
static void im__evict_tick(im__ltimer *t)
{
    im_server *s = (im_server *)(void *)((char *)t - offsetof(im_server, evict_timer));
    s->store->ops->evict(s->store);
    im__ltimer_start(s->loops[0], t, 1000);
}

static int im__add_task_routes(im_server *s)
{
    static const struct {
        const char *method, *path;
        im_handler_fn fn;
    } routes[] = {
        {"GET", "/tasks", im__api_task_list},
        {"GET", "/tasks/{id}", im__api_task_get},
        {"DELETE", "/tasks/{id}", im__api_task_delete},
        {"GET", "/tasks/{id}/result", im__api_task_result},
        {"GET", "/tasks/{id}/events", im__api_task_events},
        {"GET", "/functions", im__api_functions},
        {"GET", "/functions/{name}", im__api_function_get},
        {"POST", "/functions/{name}/terminate", im__api_function_terminate},
    };
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        int rc = im__router_add(s->root, routes[i].method, routes[i].path, routes[i].fn, NULL);
        if (rc) {
            im_log(IM_LOG_ERROR, "%s %s: %s", routes[i].method, routes[i].path,
                   rc == -EEXIST ? "another route took the path the tasks API needs" : strerror(-rc));
            return rc;
        }
    }
    return 0;
}

/* Routes one endpoint; mod and ex may be NULL (no module; the executor of its mode). */
static int im__add_endpoint(im_server *s, const im_endpoint *ep, struct im_module *mod,
                            im_executor *ex)
{
    im__epstate *st, **all;
    int rc;
    if (!s->store && !(s->store = im__memstore_new((uint64_t)s->o.task_ttl_ms,
                                                   s->o.task_memory_bytes)))
        return -ENOMEM;
    if (ep->mode != IM_MODE_INLINE && ep->priority >= s->o.priority_levels) {
        im_log(IM_LOG_ERROR, "endpoint %s (%s %s): priority %u, but the server's executors "
               "have levels 0..%u (priority_levels)", ep->name, ep->method, ep->path,
               ep->priority, s->o.priority_levels - 1);
        return -EINVAL;
    }
    if (!(all = realloc(s->eps, (s->neps + 1) * sizeof *all))) return -ENOMEM;
    s->eps = all;
    /* one allocation per endpoint, owned by s->eps (freed with the server) */
    if (!(st = calloc(1, sizeof *st))) return -ENOMEM;
    st->ep = ep;
    st->srv = s;
    st->mod = mod;
    st->ex = ex;
    atomic_init(&st->timeout_ms, ep->timeout_ms);
    atomic_init(&st->max_conc, ep->max_concurrency);
    atomic_init(&st->unfinished, 0);
    atomic_init(&st->running, 0);
    if (ep->max_body_bytes > s->max_route_body) s->max_route_body = ep->max_body_bytes;
    if ((rc = im__router_add_limited(s->root, ep->method, ep->path, im__ep_handler, st,
                                     ep->max_body_bytes))) {
        im_log(IM_LOG_ERROR, "endpoint %s (%s %s): %s", ep->name, ep->method, ep->path,
               rc == -EEXIST ? "that route exists already" : strerror(-rc));
        free(st);
        return rc;
    }
    s->eps[s->neps++] = st;
    return 0;
}

int im_server_add_endpoints(im_server *s, const im_endpoint *eps, size_t n, const char *openapi,
                            size_t openapi_len)
{
    int rc;
    if (s->started) return -EBUSY;
    for (size_t i = 0; i < n; i++)
        if ((rc = im__add_endpoint(s, &eps[i], NULL, NULL))) return rc;
    if (openapi && !s->openapi) {
        s->openapi = openapi;
        s->openapi_len = openapi_len;
        if ((rc = im__router_add(s->root, "GET", "/openapi.json", im__openapi_handler, s))) return rc;
    }
    if (!s->has_task_routes) {
        if ((rc = im__add_task_routes(s))) return rc;
        s->has_task_routes = 1;
    }
    return 0;
}

unsigned im_server_endpoint_inflight(const im_server *s, size_t i)
{
    return i < s->neps ? atomic_load_explicit(&s->eps[i]->unfinished, memory_order_relaxed) : 0;
}
