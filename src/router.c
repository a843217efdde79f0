/* router.c — the route trie: one node per path segment, static children sorted for binary
 * search, one {param} child per node. Built before the loops start, read-only afterwards. */

static char *im__strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* Orders static children by length, then bytes: cheap to compare, fine for binary search. */
static int im__segcmp(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn) return an < bn ? -1 : 1;
    return memcmp(a, b, an);
}

/* Index of the child equal to seg, or -(insertion point) - 1. */
static long im__rfind(const im__rnode *n, const char *seg, size_t len)
{
    long lo = 0, hi = (long)n->nkids - 1;
    while (lo <= hi) {
        long mid = (lo + hi) / 2;
        int c = im__segcmp(n->kids[mid]->seg, n->kids[mid]->seglen, seg, len);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -lo - 1;
}

static im__rnode *im__rchild(im__rnode *n, const char *seg, size_t len)
{
    long i = im__rfind(n, seg, len);
    if (i >= 0) return n->kids[i];
    if (n->nkids == n->kcap) {
        uint32_t cap = n->kcap ? n->kcap * 2 : 4;
        im__rnode **k = realloc(n->kids, cap * sizeof *k);
        if (!k) return NULL;
        n->kids = k;
        n->kcap = cap;
    }
    im__rnode *c = calloc(1, sizeof *c);
    if (!c || !(c->seg = im__strndup(seg, len))) {
        free(c);
        return NULL;
    }
    c->seglen = (uint32_t)len;
    i = -i - 1;
    memmove(n->kids + i + 1, n->kids + i, (n->nkids - (size_t)i) * sizeof *n->kids);
    n->kids[i] = c;
    n->nkids++;
    return c;
}

static void im__route_free(im__route *r)
{
    while (r) {
        im__route *next = r->next;
        for (unsigned i = 0; i < r->nparams; i++) free(r->pnames[i]);
        free(r->pnames);
        free(r->method);
        free(r->pattern);
        free(r);
        r = next;
    }
}

static void im__rnode_free(im__rnode *n)
{
    if (!n) return;
    for (uint32_t i = 0; i < n->nkids; i++) im__rnode_free(n->kids[i]);
    im__rnode_free(n->param);
    im__route_free(n->routes);
    free(n->all);
    free(n->kids);
    free(n->seg);
    free(n);
}

static int im__is_token(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!IM__IS(*s, IM__C_TCHAR)) return 0;
    return 1;
}

/* Adds method+pattern to the trie at root. */
/* Adds a route; max_body: its own body limit (0: the server's). */
static int im__router_add_limited(im__rnode *root, const char *method, const char *pattern,
                                  im_handler_fn fn, void *udata, size_t max_body)
{
    char *names[IM_MAX_PARAMS];
    unsigned np = 0;
    im__rnode *n = root;
    const char *p = pattern;
    int rc = -EINVAL;
    if (!fn || !method || !pattern || pattern[0] != '/') return -EINVAL;
    if (strcmp(method, "*") != 0 && !im__is_token(method)) return -EINVAL;
    while (*p == '/') {
        const char *s = ++p;
        while (*p && *p != '/') p++;
        size_t len = (size_t)(p - s);
        if (len >= 2 && s[0] == '{' && s[len - 1] == '}') {
            for (size_t i = 1; i + 1 < len; i++)
                if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-' || s[i] == '.')) goto fail;
            if (len == 2 || np == IM_MAX_PARAMS) goto fail;
            for (unsigned i = 0; i < np; i++)
                if (strlen(names[i]) == len - 2 && memcmp(names[i], s + 1, len - 2) == 0)
                    goto fail; /* the same name twice */
            if (!(names[np] = im__strndup(s + 1, len - 2))) goto nomem;
            np++;
            if (!n->param && !(n->param = calloc(1, sizeof *n->param))) goto nomem;
            n = n->param;
        } else {
            for (size_t i = 0; i < len; i++) /* a pchar of RFC 3986, or '%' of an escape */
                if (!IM__IS(s[i], IM__C_TARGET) || s[i] == '?' || s[i] == '{' || s[i] == '}')
                    goto fail;
            if (!(n = im__rchild(n, s, len))) goto nomem;
        }
    }
    if (*p) goto fail;
    for (im__route *r = n->routes; r; r = r->next)
        if (strcmp(r->method, method) == 0) {
            rc = -EEXIST;
            goto fail;
        }
    im__route *r = calloc(1, sizeof *r);
    if (!r) goto nomem;
    r->method = im__strndup(method, strlen(method));
    r->pnames = np ? malloc(np * sizeof *r->pnames) : NULL;
    if (!r->method || (np && !r->pnames)) {
        free(r->method);
        free(r->pnames);
        free(r);
        goto nomem;
    }
    if (np) memcpy(r->pnames, names, np * sizeof *names);
    r->nparams = np;
    r->fn = fn;
    r->udata = udata;
    r->max_body = max_body;
    if (root->nall == root->allcap) {
        uint32_t cap = root->allcap ? root->allcap * 2 : 32;
        im__route **all = realloc(root->all, cap * sizeof *all);
        if (!all) goto nomem_r;
        root->all = all;
        root->allcap = cap;
    }
    if (!(r->pattern = im__strndup(pattern, strlen(pattern)))) goto nomem_r;
    root->all[root->nall++] = r;
    r->mid = root->nall;
    r->next = n->routes;
    n->routes = r;
    return 0;
nomem_r:
    free(r->method);
    free(r->pnames);
    free(r);
    rc = -ENOMEM;
    goto fail;
nomem:
    rc = -ENOMEM;
fail:
    while (np) free(names[--np]);
    return rc;
}

static int im__router_add(im__rnode *root, const char *method, const char *pattern,
                          im_handler_fn fn, void *udata)
{
    return im__router_add_limited(root, method, pattern, fn, udata, 0);
}

/* The route of node n for method: exact, then HEAD served by GET, then "*". */
static const im__route *im__route_pick(const im__rnode *n, im_str m)
{
    const im__route *any = NULL, *get = NULL;
    int head = m.len == 4 && memcmp(m.ptr, "HEAD", 4) == 0;
    for (const im__route *r = n->routes; r; r = r->next) {
        if (strlen(r->method) == m.len && memcmp(r->method, m.ptr, m.len) == 0) return r;
        if (r->method[0] == '*') any = r;
        else if (head && strcmp(r->method, "GET") == 0) get = r;
    }
    return get ? get : any;
}

/* Walks the path from node n. With m.ptr set, only a node that has a route for m counts; with
 * m.ptr NULL any node with routes does (to tell 405 from 404). Static segments are tried
 * before the parameter, backtracking when the static branch leads nowhere. */
static const im__rnode *im__rmatch(const im__rnode *n, const char *p, const char *end, im_str m,
                                   im_str *vals, unsigned depth)
{
    if (p == end) {
        if (!n->routes) return NULL;
        return !m.ptr || im__route_pick(n, m) ? n : NULL;
    }
    if (*p != '/') return NULL;
    const char *s = ++p;
    const char *e = memchr(s, '/', (size_t)(end - s));
    if (!e) e = end;
    long i = im__rfind(n, s, (size_t)(e - s));
    if (i >= 0) {
        const im__rnode *r = im__rmatch(n->kids[i], e, end, m, vals, depth);
        if (r) return r;
    }
    if (n->param && e > s && depth < IM_MAX_PARAMS) {
        const im__rnode *r = im__rmatch(n->param, e, end, m, vals, depth + 1);
        if (r) {
            vals[depth].ptr = s;
            vals[depth].len = (size_t)(e - s);
            return r;
        }
    }
    return NULL;
}

/* The route added for method at a pattern without {params}, or NULL. */
static im__route *im__router_find(im__rnode *root, const char *method, const char *path)
{
    im_str vals[IM_MAX_PARAMS], m = {method, strlen(method)};
    const im__rnode *n = im__rmatch(root, path, path + strlen(path), m, vals, 0);
    for (im__route *r = n ? n->routes : NULL; r; r = r->next)
        if (!strcmp(r->method, method)) return r;
    return NULL;
}

/* Whether connection c may use route r: with manage.port set, the management routes answer
 * on its listener only, the service's on the other, and /health, /ready, /metrics on both. */
static int im__route_here(const im_server *s, const im__conn *c, const im__route *r)
{
    if (s->o.manage_port <= 0 || r->place == IM__AT_BOTH) return 1;
    return (r->place == IM__AT_MANAGE) == c->is_manage;
}

/* Whether some route of node n is for connection c (else it is a 404 there, not a 405). */
static int im__node_here(const im_server *s, const im__conn *c, const im__rnode *n)
{
    for (const im__route *r = n->routes; r; r = r->next)
        if (im__route_here(s, c, r)) return 1;
    return 0;
}

/* Writes the Allow list of node n ("GET, HEAD, OPTIONS") into out; returns its length. */
static size_t im__router_allow(const im__rnode *n, char *out, size_t cap)
{
    size_t len = 0;
    int get = 0, head = 0, options = 0;
    for (const im__route *r = n->routes; r; r = r->next) {
        size_t k = strlen(r->method);
        if (r->method[0] == '*') continue;
        get |= strcmp(r->method, "GET") == 0;
        head |= strcmp(r->method, "HEAD") == 0;
        options |= strcmp(r->method, "OPTIONS") == 0;
        if (len + k + 2 < cap) {
            if (len) {
                memcpy(out + len, ", ", 2);
                len += 2;
            }
            memcpy(out + len, r->method, k);
            len += k;
        }
    }
    if (get && !head && len + 6 < cap) {
        memcpy(out + len, len ? ", HEAD" : "HEAD", len ? 6 : 4);
        len += len ? 6 : 4;
    }
    if (!options && len + 9 < cap) {
        memcpy(out + len, len ? ", OPTIONS" : "OPTIONS", len ? 9 : 7);
        len += len ? 9 : 7;
    }
    return len;
}

/* The body limit of the request whose head is h: the server's max_body_bytes, or its route's
 * own when that is larger. The route is looked up only where it can matter (a route has a
 * limit of its own, and the body is over the server's or its length is not known yet). */
static size_t im__body_limit(const im_server *s, size_t max_body, const im_http_head *h,
                             uint64_t content_length)
{
    if (!s->max_route_body || content_length <= max_body) return max_body;
    im_str vals[IM_MAX_PARAMS];
    const im__rnode *n = im__rmatch(s->root, h->path.ptr, h->path.ptr + h->path.len, h->method,
                                    vals, 0);
    const im__route *r = n ? im__route_pick(n, h->method) : NULL;
    return r && r->max_body > max_body ? r->max_body : max_body;
}
