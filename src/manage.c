/* manage.c — operating a service: GET /health and /ready, and the management endpoints under
 * manage.prefix (spec, version, logging/level, config), with their write guard (a bearer
 * token when manage.token is set, else loopback peers only). */

#ifndef IM_BUILD_ID
#define IM_BUILD_ID __DATE__ " " __TIME__ /* cmake/Immersive.cmake passes the git commit */
#endif

static void im__manage_json(im_ctx *c, int status, im_jw *w)
{
    if (im_jw_error(w)) im_reply_error(c, 500, "out of memory");
    else im_reply_json(c, status, w->buf, w->len);
    im_jw_free(w);
}

static void im__health(im_ctx *c) /* liveness: this loop answers */
{
    im_reply_json(c, 200, "{\"status\":\"ok\"}", 15);
}

/* An executor's queue is fuller than pct% of one level's capacity. */
static int im__queue_over(const im_executor *ex, unsigned pct)
{
    return ex && im_executor_queued(ex) * 100 > (size_t)pct * im_executor_capacity(ex);
}

/* readiness: started, not stopping, every queue below manage.ready_queue_percent */
static void im__ready(im_ctx *c)
{
    im_server *s = im_ctx_udata(c);
    unsigned pct = c->loop->o.ready_queue_percent;
    const char *why = NULL;
    char buf[160];
    if (atomic_load(&s->stopping)) {
        why = "shutting down";
    } else if (!atomic_load(&s->loops_ready)) {
        why = "starting: the modules are not all initialised yet";
    } else if (im__queue_over(s->primary, pct) || im__queue_over(s->serial, pct)) {
        snprintf(buf, sizeof buf, "the %s executor's queue is over %u%% of its capacity",
                 im__queue_over(s->primary, pct) ? "primary" : "serial", pct);
        why = buf;
    } else {
        for (const im_module *m = s->mods; m && !why; m = m->next)
            for (const im__modexec *e = m->execs; e && !why; e = e->next)
                if (im__queue_over(e->ex, pct)) {
                    snprintf(buf, sizeof buf, "the queue of %s's executor %s is over %u%% of "
                             "its capacity", m->d->name, e->name, pct);
                    why = buf;
                }
    }
    im_jw w;
    im_jw_init(&w, NULL, 0);
    im_jw_obj(&w);
    im_jw_key(&w, "status");
    im_jw_str(&w, why ? "not ready" : "ready");
    if (why) {
        im_jw_key(&w, "detail");
        im_jw_str(&w, why);
    }
    im_jw_obj_end(&w);
    im__manage_json(c, why ? 503 : 200, &w);
}

/* 1 when the request's peer is on a loopback address. */
static int im__peer_loopback(const im_ctx *c)
{
    const im__conn *k = im__ctx_conn(c);
    return k && im__peer(k->fd, NULL, 0) == 1;
}

/* Compares in time that depends on the lengths only, not on where they differ. */
static int im__ct_equal(const char *a, size_t al, const char *b, size_t bl)
{
    unsigned char d = al != bl;
    for (size_t i = 0; i < al; i++) d |= (unsigned char)(a[i] ^ b[i % (bl ? bl : 1)]);
    return d == 0 && bl;
}

/* May this request change something? 1, or 0 once it is answered 401 or 403. */
static int im__manage_may_write(im_ctx *c)
{
    const char *tok = c->loop->o.manage_token;
    if (!tok || !*tok) {
        if (im__peer_loopback(c)) return 1;
        im_reply_error(c, 403, "management writes come from loopback peers only while "
                       "manage.token is not set");
        return 0;
    }
    im_str h = im_ctx_header(c, "Authorization");
    if (!h.ptr || h.len < 7 || strncasecmp(h.ptr, "Bearer ", 7)) {
        im_res_header(c, "WWW-Authenticate", "Bearer realm=\"manage\"");
        im_reply_error(c, 401, "this endpoint needs Authorization: Bearer <manage.token>");
        return 0;
    }
    if (!im__ct_equal(h.ptr + 7, h.len - 7, tok, strlen(tok))) {
        im_reply_error(c, 403, "the bearer token is not manage.token");
        return 0;
    }
    return 1;
}

static void im__level_answer(im_ctx *c)
{
    char b[48];
    int n = snprintf(b, sizeof b, "{\"level\":\"%s\"}", im_log_level_name(im_log_get_level()));
    im_reply_json(c, 200, b, (size_t)n);
}

static void im__manage_level_get(im_ctx *c) { im__level_answer(c); }

/* A 422 shaped as the binder's: where, what, and the allowed values. */
static void im__level_invalid(im_ctx *c, const char *msg)
{
    im_jw w;
    im_jw_init(&w, NULL, 0);
    im_jw_obj(&w);
    im_jw_key(&w, "detail");
    im_jw_arr(&w);
    im_jw_obj(&w);
    im_jw_key(&w, "loc");
    im_jw_arr(&w);
    im_jw_str(&w, "body");
    im_jw_str(&w, "level");
    im_jw_arr_end(&w);
    im_jw_key(&w, "msg");
    im_jw_str(&w, msg);
    im_jw_key(&w, "type");
    im_jw_str(&w, "enum");
    im_jw_obj_end(&w);
    im_jw_arr_end(&w);
    im_jw_obj_end(&w);
    im__manage_json(c, 422, &w);
}

static void im__manage_level_post(im_ctx *c)
{
    if (!im__manage_may_write(c)) return;
    const im_request *r = im_ctx_request(c);
    im_json j;
    im_json_init(&j, r->body.ptr ? r->body.ptr : "", r->body.len, 0);
    char name[16] = "", buf[16];
    int found = 0, bad = im_json_peek(&j) != IM_JSON_OBJECT || im_json_obj_enter(&j) != 0;
    im_str key;
    while (!bad) {
        int k = im_json_obj_key(&j, &key);
        if (k == 0) break;
        if (k < 0) { bad = 1; break; }
        if (im_str_eq(key, "level") && im_json_peek(&j) == IM_JSON_STRING) {
            im_str v;
            int e = im_json_string(&j, &v, buf, sizeof buf);
            if (e < 0 && e != -ENOSPC) { bad = 1; break; }
            if (e == 0 && v.len < sizeof name) {
                memcpy(name, v.ptr, v.len);
                name[v.len] = 0;
            }
            found = 1;
        } else if (im_json_skip(&j)) {
            bad = 1;
        }
    }
    if (bad || im_json_finish(&j)) {
        im_reply_error(c, 400, "the body must be a JSON object such as {\"level\": \"debug\"}");
        return;
    }
    int lv = found ? im_log_level_parse(name) : -EINVAL;
    if (lv < 0) {
        im__level_invalid(c, found ? "level must be one of trace, debug, info, warn, error, "
                                     "fatal, off" : "level is required");
        return;
    }
    int was = (int)im_log_get_level();
    if (lv > was) /* said at the level it leaves, so that it is seen */
        im_log(IM_LOG_INFO, "log level %s (was %s), set through the management endpoint",
               im_log_level_name((im_log_level)lv), im_log_level_name((im_log_level)was));
    im_log_set_level((im_log_level)lv);
    if (lv <= was)
        im_log(IM_LOG_INFO, "log level %s (was %s), set through the management endpoint",
               im_log_level_name((im_log_level)lv), im_log_level_name((im_log_level)was));
    im__level_answer(c);
}

/* The service's version: info.version of its OpenAPI document, which the generator writes. */
static im_str im__service_version(const im_server *s)
{
    im_str none = {NULL, 0};
    const char *d = s->openapi, *end = d ? d + s->openapi_len : NULL;
    const char *info = d ? memmem(d, s->openapi_len, "\"info\":", 7) : NULL;
    const char *v = info ? memmem(info, (size_t)(end - info), "\"version\":\"", 11) : NULL;
    if (!v) return none;
    v += 11;
    const char *q = memchr(v, '"', (size_t)(end - v));
    return q ? (im_str){v, (size_t)(q - v)} : none;
}

static void im__manage_version(im_ctx *c)
{
    im_server *s = im_ctx_udata(c);
    im_str sv = im__service_version(s);
    im_jw w;
    im_jw_init(&w, NULL, 0);
    im_jw_obj(&w);
    im_jw_key(&w, "service");
    im_jw_str(&w, program_invocation_short_name);
    im_jw_key(&w, "version");
    if (sv.ptr) im_jw_strn(&w, sv.ptr, sv.len);
    else im_jw_null(&w);
    im_jw_key(&w, "immersive");
    im_jw_str(&w, IM_VERSION_STRING);
    im_jw_key(&w, "build_id");
    im_jw_str(&w, IM_BUILD_ID);
    im_jw_obj_end(&w);
    im__manage_json(c, 200, &w);
}

/* Adds a built-in route unless the service has its own there (the service's wins). */
static int im__route_builtin(im_server *s, const char *method, const char *path,
                             im_handler_fn fn, void *udata, int place)
{
    int rc = im__router_add(s->root, method, path, fn, udata);
    im__route *r = rc ? NULL : im__router_find(s->root, method, path);
    if (r) r->place = (uint8_t)place;
    if (rc == -EEXIST) {
        im_log(IM_LOG_DEBUG, "%s %s is the service's own: the built-in one is not added",
               method, path);
        return 0;
    }
    if (rc) im_log(IM_LOG_ERROR, "%s %s: %s", method, path, strerror(-rc));
    return rc;
}

static int im__manage_routes(im_server *s)
{
    const char *pre = s->o.manage_prefix;
    size_t pl = strlen(pre);
    while (pl > 1 && pre[pl - 1] == '/') pl--; /* "/ops/" is "/ops" */
    if (pl == 1) pl = 0;                        /* "/": the endpoints at the root */
    static const struct {
        const char *method, *sub;
        im_handler_fn fn;
    } subs[] = {
        {"GET", "/version", im__manage_version},
        {"GET", "/logging/level", im__manage_level_get},
        {"POST", "/logging/level", im__manage_level_post},
    };
    int rc = im__route_builtin(s, "GET", "/health", im__health, s, IM__AT_BOTH);
    if (!rc) rc = im__route_builtin(s, "GET", "/ready", im__ready, s, IM__AT_BOTH);
    if (!rc) rc = im__route_builtin(s, "GET", "/metrics", im__metrics, s, IM__AT_BOTH);
    const char *probes[] = {"/health", "/ready", "/metrics"};
    for (int i = 0; !rc && i < 3; i++) {
        im__route *r = im__router_find(s->root, "GET", probes[i]);
        if (r && r->fn != NULL) r->is_probe = 1; /* the service's own there counts too */
    }
    char path[256];
    for (size_t i = 0; !rc && i < sizeof subs / sizeof *subs; i++) {
        snprintf(path, sizeof path, "%.*s%s", (int)pl, pre, subs[i].sub);
        rc = im__route_builtin(s, subs[i].method, path, subs[i].fn, s, IM__AT_MANAGE);
    }
    if (!rc && s->openapi) {
        snprintf(path, sizeof path, "%.*s/spec", (int)pl, pre);
        rc = im__route_builtin(s, "GET", path, im__openapi_handler, s, IM__AT_MANAGE);
    }
    if (!rc && s->cfgw) {
        snprintf(path, sizeof path, "%.*s/config", (int)pl, pre);
        rc = im__route_builtin(s, "GET", path, im__manage_config, s, IM__AT_MANAGE);
    }
    if (!rc) rc = im__docs_routes(s);
    return rc ? rc : im__spec_complete(s);
}
