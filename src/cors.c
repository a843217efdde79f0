/* cors.c — Cross-Origin Resource Sharing for browser clients on other origins, as FastAPI's
 * CORSMiddleware does it: an allowed Origin gets Access-Control-Allow-Origin (and Vary,
 * credentials, exposed headers) on every answer; a preflight (OPTIONS with
 * Access-Control-Request-Method) is answered here, without reaching a handler. The lists come
 * from cors.* as comma-separated text; with cors.allow_origins empty nothing is sent. */

/* 1 when the comma-separated list holds v (case-insensitive when ci), or "*". */
static int im__cors_in(const char *list, im_str v, int ci)
{
    const char *p = list ? list : "";
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        const char *s = p;
        while (*p && *p != ',') p++;
        const char *e = p;
        while (e > s && e[-1] == ' ') e--;
        size_t n = (size_t)(e - s);
        if (n == 1 && *s == '*') return 1;
        if (n && n == v.len && (ci ? strncasecmp(s, v.ptr, n) : memcmp(s, v.ptr, n)) == 0)
            return 1;
    }
    return 0;
}

/* 1 when the list holds "*" (no real value is "\x01": only the wildcard matches it). */
static int im__cors_star(const char *list) { return im__cors_in(list, (im_str){"\x01", 1}, 0); }

/* Adds a header whose value is a view of the request (whole, however long it is). */
static void im__cors_echo(im_ctx *x, const char *name, im_str v)
{
    char small[512], *b = v.len < sizeof small ? small : malloc(v.len + 1);
    if (!b) return;
    memcpy(b, v.ptr, v.len);
    b[v.len] = 0;
    im_res_header(x, name, b);
    if (b != small) free(b);
}

/* The headers every CORS answer to an allowed origin carries. */
static void im__cors_common(im_ctx *x, const im_server_opts *o, im_str origin)
{
    int any = im__cors_star(o->cors_allow_origins) && o->cors_allow_credentials <= 0;
    if (any) {
        im_res_header(x, "Access-Control-Allow-Origin", "*");
    } else { /* the origin itself (Vary: Origin is there already) */
        im__cors_echo(x, "Access-Control-Allow-Origin", origin);
    }
    if (o->cors_allow_credentials > 0) im_res_header(x, "Access-Control-Allow-Credentials", "true");
}

/* Runs before routing. 1 when it answered (a preflight), else 0 (an allowed origin's headers
 * are added to what the handler answers). */
static int im__cors(im_ctx *x)
{
    const im_server_opts *o = &x->loop->o;
    if (!o->cors_allow_origins || !*o->cors_allow_origins) return 0;
    im_str origin = im_ctx_header(x, "Origin");
    int any = im__cors_star(o->cors_allow_origins) && o->cors_allow_credentials <= 0;
    if (!any) im_res_header(x, "Vary", "Origin"); /* the answer depends on it, allowed or not */
    if (!origin.ptr) return 0;
    int allowed = im__cors_in(o->cors_allow_origins, origin, 0);
    im_str want = im_ctx_header(x, "Access-Control-Request-Method");
    if (!(want.ptr && im_str_eq(x->req.method, "OPTIONS"))) { /* an actual request */
        if (allowed) {
            im__cors_common(x, o, origin);
            if (o->cors_expose_headers && *o->cors_expose_headers)
                im_res_header(x, "Access-Control-Expose-Headers", o->cors_expose_headers);
        }
        return 0;
    }
    /* a preflight: every requested header must be allowed */
    im_str hs = im_ctx_header(x, "Access-Control-Request-Headers");
    const char *why = !allowed ? "origin" : !im__cors_in(o->cors_allow_methods, want, 0)
                      ? "method" : NULL;
    for (size_t i = 0; !why && hs.ptr && i < hs.len;) {
        while (i < hs.len && (hs.ptr[i] == ' ' || hs.ptr[i] == ',')) i++;
        size_t s = i;
        while (i < hs.len && hs.ptr[i] != ',') i++;
        size_t e = i;
        while (e > s && hs.ptr[e - 1] == ' ') e--;
        im_str h = {hs.ptr + s, e - s};
        if (h.len && !im__cors_in(o->cors_allow_headers, h, 1) &&
            !im__cors_in("accept, accept-language, content-language, content-type", h, 1))
            why = "headers";
    }
    if (why) {
        char msg[64];
        snprintf(msg, sizeof msg, "Disallowed CORS %s", why);
        im_reply_error(x, 400, msg);
        return 1;
    }
    im__cors_common(x, o, origin);
    im_res_header(x, "Access-Control-Allow-Methods",
                  im__cors_star(o->cors_allow_methods)
                  ? "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT" : o->cors_allow_methods);
    char v[16];
    if (hs.ptr && hs.len && im__cors_star(o->cors_allow_headers)) { /* echoed: all allowed */
        im__cors_echo(x, "Access-Control-Allow-Headers", hs);
    } else if (o->cors_allow_headers && *o->cors_allow_headers) {
        im_res_header(x, "Access-Control-Allow-Headers", o->cors_allow_headers);
    }
    snprintf(v, sizeof v, "%u", o->cors_max_age);
    im_res_header(x, "Access-Control-Max-Age", v);
    im_reply(x, 200, "text/plain", "OK", 2);
    return 1;
}
