/* docs.c — interactive docs without internet: GET /docs (Swagger UI) and GET /redoc (ReDoc) of
 * the document at /openapi.json, from files compiled into the service (the generator's --docs,
 * im_server_add_docs), with ETags, Cache-Control and their gzip copies; docs.enabled. */

int im_server_add_docs(im_server *s, const im_static_file *files, size_t n)
{
    if (!s || (n && !files)) return -EINVAL;
    if (s->started) return -EBUSY;
    for (size_t i = 0; i < n; i++)
        if (!files[i].path || files[i].path[0] != '/' || !files[i].content_type ||
            (!files[i].data && files[i].len) || !files[i].etag)
            return -EINVAL;
    s->docs = files;
    s->ndocs = n;
    return 0;
}

/* Swagger UI's start, a file of its own rather than inline (a Content-Security-Policy without
 * 'unsafe-inline' lets it run). URLs are relative to the page: behind a proxy's path prefix
 * ("/api/docs") they still find "/api/openapi.json". */
static const char im__swagger_init[] =
    "window.ui = SwaggerUIBundle({\n"
    "  url: \"openapi.json\",\n"
    "  dom_id: \"#swagger-ui\",\n"
    "  deepLinking: true,\n"
    "  validatorUrl: null, /* no badge fetched from validator.swagger.io */\n"
    "  showExtensions: true,\n"
    "  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],\n"
    "  layout: \"BaseLayout\"\n"
    "});\n";

/* The title as HTML text: the document's info.title, escaped. */
static void im__docs_title(const im_server *s, char *out, size_t cap)
{
    snprintf(out, cap, "API");
    if (!s->openapi) return;
    im_json j;
    im_str k, v;
    char buf[200];
    im_json_init(&j, s->openapi, s->openapi_len, 0);
    if (im_json_obj_enter(&j) != 0) return;
    while (im_json_obj_key(&j, &k) == 1) {
        if (!im_str_eq(k, "info") || im_json_obj_enter(&j) != 0) {
            if (im_json_skip(&j)) return;
            continue;
        }
        while (im_json_obj_key(&j, &k) == 1) {
            if (im_str_eq(k, "title") && im_json_string(&j, &v, buf, sizeof buf) == 0) {
                size_t o = 0;
                for (size_t i = 0; i < v.len && o + 7 < cap; i++) {
                    const char *e = v.ptr[i] == '<' ? "&lt;" : v.ptr[i] == '>' ? "&gt;"
                                  : v.ptr[i] == '&' ? "&amp;" : v.ptr[i] == '"' ? "&quot;" : NULL;
                    if (e) o += (size_t)snprintf(out + o, cap - o, "%s", e);
                    else out[o++] = v.ptr[i];
                }
                out[o] = 0;
                return;
            }
            if (im_json_skip(&j)) return;
        }
        return;
    }
}

/* A strong entity tag for bytes made at start (FNV-1a, 64 bits). */
static void im__docs_etag(const char *p, size_t n, char out[24])
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    snprintf(out, 24, "\"%016llx\"", (unsigned long long)h);
}

/* If-None-Match names this entity tag (weakly compared, RFC 9110 13.1.2), or is "*". */
static int im__docs_not_modified(im_ctx *c, const char *etag)
{
    im_str v = im_ctx_header(c, "If-None-Match");
    size_t el = strlen(etag), i = 0;
    while (v.ptr && i < v.len) {
        while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == ',' || v.ptr[i] == '\t')) i++;
        if (i + 2 <= v.len && v.ptr[i] == 'W' && v.ptr[i + 1] == '/') i += 2;
        size_t s = i;
        while (i < v.len && v.ptr[i] != ',' && v.ptr[i] != ' ' && v.ptr[i] != '\t') i++;
        if ((i - s == 1 && v.ptr[s] == '*') || (i - s == el && !memcmp(v.ptr + s, etag, el)))
            return 1;
    }
    return 0;
}

/* Answers with f: 304 when the client has it, its gzip copy when taken. */
static void im__docs_send(im_ctx *c, const im_static_file *f, const char *cache)
{
    if (c->loop->o.docs < 0) {
        im_reply_error(c, 404, "the docs are off (docs.enabled = false)");
        return;
    }
    im_res_header(c, "ETag", f->etag);
    im_res_header(c, "Cache-Control", cache);
    if (f->gz) im_res_header(c, "Vary", "Accept-Encoding");
    if (im__docs_not_modified(c, f->etag)) {
        im_reply(c, 304, NULL, NULL, 0);
        return;
    }
    if (f->gz && f->gz_len < f->len && im__accepts_gzip(im_ctx_header(c, "Accept-Encoding"))) {
        im_res_header(c, "Content-Encoding", "gzip");
        im_reply(c, 200, f->content_type, f->gz, f->gz_len);
        return;
    }
    im_reply(c, 200, f->content_type, f->data, f->len);
}

/* The pinned packages' files: they change only with a new build. */
static void im__docs_file(im_ctx *c) { im__docs_send(c, im_ctx_udata(c), "public, max-age=86400"); }

/* The pages made at start: checked on every load (cheap with the ETag). */
static void im__docs_page(im_ctx *c) { im__docs_send(c, im_ctx_udata(c), "no-cache"); }

/* Makes the pages and routes them with the files; nothing without files from the generator. */
static int im__docs_routes(im_server *s)
{
    int has_swagger = 0, has_redoc = 0, rc = 0;
    for (size_t i = 0; i < s->ndocs; i++) {
        has_swagger |= !strcmp(s->docs[i].path, "/docs/swagger-ui-bundle.js");
        has_redoc |= !strcmp(s->docs[i].path, "/redoc/redoc.standalone.js");
    }
    if (s->o.docs < 0 || !s->openapi || (!has_swagger && !has_redoc)) return 0;
    char title[256];
    im__docs_title(s, title, sizeof title);
    static const char *const paths[3] = {"/docs", "/docs/swagger-init.js", "/redoc"};
    for (int i = 0; i < 3; i++) {
        im_static_file *f = &s->docs_pages[i];
        char *text = NULL;
        int n = -1;
        if (i == 0 && has_swagger)
            n = asprintf(&text, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
                         "<meta charset=\"utf-8\">\n"
                         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                         "<title>%s - Swagger UI</title>\n"
                         "<link rel=\"icon\" href=\"data:,\">\n"
                         "<link rel=\"stylesheet\" href=\"docs/swagger-ui.css\">\n</head>\n"
                         "<body>\n<div id=\"swagger-ui\"></div>\n"
                         "<script src=\"docs/swagger-ui-bundle.js\"></script>\n"
                         "<script src=\"docs/swagger-init.js\"></script>\n</body>\n</html>\n",
                         title);
        else if (i == 1 && has_swagger)
            n = asprintf(&text, "%s", im__swagger_init);
        else if (i == 2 && has_redoc)
            n = asprintf(&text, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
                         "<meta charset=\"utf-8\">\n"
                         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                         "<title>%s - ReDoc</title>\n"
                         "<link rel=\"icon\" href=\"data:,\">\n"
                         "<style>body { margin: 0; padding: 0; }</style>\n</head>\n<body>\n"
                         "<redoc spec-url=\"openapi.json\"></redoc>\n"
                         "<script src=\"redoc/redoc.standalone.js\"></script>\n</body>\n</html>\n",
                         title);
        if (n < 0) continue;
        char *tag = malloc(24);
        if (!tag) {
            free(text);
            return -ENOMEM;
        }
        im__docs_etag(text, (size_t)n, tag);
        *f = (im_static_file){paths[i], i == 1 ? "text/javascript; charset=utf-8"
                                               : "text/html; charset=utf-8",
                              (const unsigned char *)text, (size_t)n, NULL, 0, tag};
        if (!rc) rc = im__route_builtin(s, "GET", paths[i], im__docs_page, f, IM__AT_SERVICE);
    }
    for (size_t i = 0; i < s->ndocs && !rc; i++) {
        const char *p = s->docs[i].path;
        if ((has_swagger && !strncmp(p, "/docs/", 6)) || (has_redoc && !strncmp(p, "/redoc/", 7)))
            rc = im__route_builtin(s, "GET", p, im__docs_file, (void *)&s->docs[i],
                                   IM__AT_SERVICE);
    }
    return rc;
}

static void im__docs_free(im_server *s)
{
    for (int i = 0; i < 3; i++) {
        free((void *)s->docs_pages[i].data);
        free((void *)s->docs_pages[i].etag);
    }
}
