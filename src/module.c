/* module.c — modules at run time: which are on, their init and fini in order, their tables,
 * directories, private executors and shared resources, and the OpenAPI document of the
 * modules that are on. */

typedef struct im__modexec {
    char *name;               /* owned */
    im_executor *ex;          /* owned once handed over */
    struct im__modexec *next;
} im__modexec;

typedef struct im__modres {
    char *name;               /* owned */
    void *ptr;                /* the resource, NULL until loaded */
    void (*free_fn)(void *);
    int loading;              /* a call is loading it (others wait on res_cv) */
    struct im__modres *next;
} im__modres;

struct im_module {
    const im_module_desc *d;
    im_server *srv;
    im_toml *table;           /* owned: its config table as at start (an empty table if none) */
    void *data;
    char *dirs[3];            /* owned: cache/<m>, temp/<m>, data/<m> */
    im__modexec *execs;
    im__modres *res;
    pthread_mutex_t res_mu;
    pthread_cond_t res_cv;
    int in_init, inited;
    _Atomic int made[2];      /* cache and temp directories exist */
    _Atomic unsigned tmp_seq; /* names of the temp directories of inline calls */
    struct im_module *next;   /* the server's modules, in init order */
};

int im_server_add_service(im_server *s, const im_module_desc *mods, size_t nmods,
                          const im_endpoint *eps, size_t neps, im_openapi_fn openapi)
{
    if (s->started) return -EBUSY;
    for (size_t i = 0; i < neps; i++) {
        if (eps[i].mode != IM_MODE_INLINE && eps[i].priority >= s->o.priority_levels) {
            im_log(IM_LOG_ERROR, "endpoint %s (%s %s): priority %u, but the server's executors "
                   "have levels 0..%u (priority_levels)", eps[i].name, eps[i].method,
                   eps[i].path, eps[i].priority, s->o.priority_levels - 1);
            return -EINVAL;
        }
        size_t k = 0;
        while (k < nmods && strcmp(mods[k].name, eps[i].module) != 0) k++;
        if (k == nmods) {
            im_log(IM_LOG_ERROR, "endpoint %s: module '%s' is not one of the service's",
                   eps[i].name, eps[i].module);
            return -EINVAL;
        }
    }
    im__service *v = (im__service *)calloc(1, sizeof *v);
    if (!v) return -ENOMEM;
    *v = (im__service){mods, nmods, eps, neps, openapi, NULL};
    im__service **pp = &s->svcs;
    while (*pp) pp = &(*pp)->next;
    *pp = v;
    return 0;
}

const char *im_module_name(const im_module *m) { return m->d->name; }
const im_toml *im_module_table(const im_module *m) { return m->table; }
im_config *im_module_config(const im_module *m) { return im_server_config(m->srv); }
void im_module_set_data(im_module *m, void *data) { m->data = data; }
void *im_module_data(const im_module *m) { return m->data; }
im_module *im_call_module(const im_call *call) { return call->st ? call->st->mod : NULL; }

int im_module_add_executor(im_module *m, const char *name, im_executor *ex)
{
    if (!ex || !name || !*name || !m->in_init) return -EINVAL;
    for (im__modexec *e = m->execs; e; e = e->next)
        if (strcmp(e->name, name) == 0) return -EINVAL;
    im__modexec *e = (im__modexec *)calloc(1, sizeof *e);
    if (!e || !(e->name = strdup(name))) { free(e); return -ENOMEM; }
    e->ex = ex;
    e->next = m->execs;
    m->execs = e;
    return 0;
}

/* ---- directories */

static int im__rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)ftw;
    if (flag == FTW_DP) rmdir(path);
    else unlink(path);
    return 0;
}

/* removes a directory and everything under it (symbolic links are not followed) */
static void im__rmtree(const char *path)
{
    nftw(path, im__rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int im__mkdirs(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) && errno != EEXIST) return -errno;
            *p = '/';
        }
    if (mkdir(tmp, 0755) && errno != EEXIST) return -errno;
    return 0;
}

const char *im_module_path(const im_module *m, im_dir_kind kind)
{
    if ((unsigned)kind >= 3) {
        errno = EINVAL;
        return NULL;
    }
    im_module *w = (im_module *)(uintptr_t)m; /* made once: the flag is the module's own */
    if (kind != IM_DIR_DATA && !atomic_load(&w->made[kind])) {
        int rc = im__mkdirs(m->dirs[kind]);
        if (rc) {
            errno = -rc;
            return NULL;
        }
        atomic_store(&w->made[kind], 1);
    }
    return m->dirs[kind];
}

const char *im_module_dir(im_call *call, im_dir_kind kind)
{
    if (call->pw && kind == IM_DIR_TEMP && call->pw->dir) return call->pw->dir; /* a worker's */
    im_module *m = im_call_module(call);
    if (!m || (unsigned)kind >= 3) {
        errno = EINVAL;
        return NULL;
    }
    if (!im_module_path(m, kind)) return NULL;
    if (kind != IM_DIR_TEMP) return m->dirs[kind];
    if (call->tmpdir) return call->tmpdir;
    char path[4096];
    const char *id = im_call_task_id(call);
    if (id) snprintf(path, sizeof path, "%s/%s", m->dirs[IM_DIR_TEMP], id);
    else snprintf(path, sizeof path, "%s/call-%u-%u", m->dirs[IM_DIR_TEMP], (unsigned)getpid(),
                  atomic_fetch_add(&m->tmp_seq, 1));
    int rc = im__mkdirs(path);
    if (rc) {
        errno = -rc;
        return NULL;
    }
    call->tmpdir = strdup(path);
    if (!call->tmpdir) im__rmtree(path);
    return call->tmpdir;
}

/* the call ended: its temp directory goes */
static void im__call_end(im_call *call)
{
    if (call->tmpdir) {
        im__rmtree(call->tmpdir);
        free(call->tmpdir);
        call->tmpdir = NULL;
    }
}

/* ---- resources */

void *im_module_resource(im_call *call, const char *name, void *(*load_fn)(im_module *m),
                         void (*free_fn)(void *res))
{
    im_module *m = im_call_module(call);
    if (!m || !name || !load_fn) return NULL;
    pthread_mutex_lock(&m->res_mu);
    im__modres *r = m->res;
    while (r && strcmp(r->name, name) != 0) r = r->next;
    if (!r) {
        r = (im__modres *)calloc(1, sizeof *r);
        if (!r || !(r->name = strdup(name))) {
            free(r);
            pthread_mutex_unlock(&m->res_mu);
            return NULL;
        }
        r->next = m->res;
        m->res = r;
    }
    while (!r->ptr && r->loading) pthread_cond_wait(&m->res_cv, &m->res_mu);
    if (!r->ptr) { /* this call loads it, outside the lock: others wait, nobody spins */
        r->loading = 1;
        pthread_mutex_unlock(&m->res_mu);
        void *p = load_fn(m);
        pthread_mutex_lock(&m->res_mu);
        r->loading = 0;
        r->ptr = p;
        r->free_fn = free_fn;
        pthread_cond_broadcast(&m->res_cv);
    }
    void *p = r->ptr;
    pthread_mutex_unlock(&m->res_mu);
    return p;
}

/* ---- start and stop */

static void im__module_event(im_server *s, const char *topic, const char *name)
{
    im_bus *b = atomic_load(&s->bus);
    if (!b) return;
    char ev[128];
    int n = snprintf(ev, sizeof ev, "{\"module\":\"%.100s\"}", name);
    im_notify(b, topic, ev, (size_t)n);
}

static void im__module_free(im_module *m)
{
    while (m->res) {
        im__modres *r = m->res;
        m->res = r->next;
        if (r->ptr && r->free_fn) r->free_fn(r->ptr);
        free(r->name);
        free(r);
    }
    while (m->execs) {
        im__modexec *e = m->execs;
        m->execs = e->next;
        im_executor_free(e->ex);
        free(e->name);
        free(e);
    }
    if (m->dirs[IM_DIR_TEMP]) { /* its temp directory, and the root when nothing else is left */
        im__rmtree(m->dirs[IM_DIR_TEMP]);
        char *slash = strrchr(m->dirs[IM_DIR_TEMP], '/');
        if (slash) {
            *slash = 0;
            rmdir(m->dirs[IM_DIR_TEMP]);
        }
    }
    for (int i = 0; i < 3; i++) free(m->dirs[i]);
    im_toml_free(m->table);
    pthread_mutex_destroy(&m->res_mu);
    pthread_cond_destroy(&m->res_cv);
    free(m);
}

static im_executor *im__module_executor(im_module *m, const char *name)
{
    for (im__modexec *e = m ? m->execs : NULL; e; e = e->next)
        if (strcmp(e->name, name) == 0) return e->ex;
    return NULL;
}

/* Starts the modules that are on (im_server_start, the executors made, before the loops). */
static int im__modules_start(im_server *s)
{
    im_config *cfg = im_server_config(s);
    im_module **tail = &s->mods;
    int rc = 0;
    if (s->mods_started) return 0;
    s->mods_started = 1;
    for (im__service *v = s->svcs; v && !rc; v = v->next) {
        unsigned char *on = (unsigned char *)calloc(v->nmods ? v->nmods : 1, 1);
        if (!on) return -ENOMEM;
        for (size_t i = 0; i < v->nmods && !rc; i++) {
            const im_module_desc *d = &v->mods[i];
            char key[300];
            snprintf(key, sizeof key, "modules.%s", d->name);
            on[i] = cfg ? (unsigned char)im_config_bool(cfg, key, 1) : 1;
            if (!on[i]) continue;
            im_module *m = (im_module *)calloc(1, sizeof *m);
            if (!m) { rc = -ENOMEM; break; }
            m->d = d;
            m->srv = s;
            pthread_mutex_init(&m->res_mu, NULL);
            pthread_cond_init(&m->res_cv, NULL);
            *tail = m; /* listed at once: a failure below frees it with the others */
            tail = &m->next;
            m->table = cfg ? im_config_table(cfg, d->name) : NULL;
            if (!m->table && (m->table = (im_toml *)calloc(1, sizeof *m->table)))
                m->table->type = IM_TOML_TABLE;
            static const char *const keys[] = {"paths.cache", "paths.temp", "paths.data"};
            static const char *const dflt[] = {"cache", "temp", "data"};
            for (int k = 0; k < 3; k++) {
                const char *root = cfg ? im_config_str(cfg, keys[k], dflt[k]) : dflt[k];
                size_t n = strlen(root) + strlen(d->name) + 2;
                if (!(m->dirs[k] = (char *)malloc(n))) { rc = -ENOMEM; break; }
                snprintf(m->dirs[k], n, "%s/%s", root, d->name);
            }
            if (rc || !m->table) { rc = -ENOMEM; break; }
            /* what an earlier run left in temp goes; directories are made when first asked
             * for, so that a module that uses none leaves none behind */
            im__rmtree(m->dirs[IM_DIR_TEMP]);
            if (d->init) {
                m->in_init = 1;
                rc = d->init(m);
                m->in_init = 0;
                if (rc) {
                    im_log(IM_LOG_ERROR, "module %s: init failed: %s", d->name,
                           rc < 0 ? strerror(-rc) : "it returned an error");
                    rc = rc < 0 ? rc : -EINVAL;
                    break;
                }
            }
            m->inited = 1;
            im__module_event(s, "module.init", d->name);
        }
        /* then the endpoints of the modules that are on */
        for (size_t i = 0; i < v->neps && !rc; i++) {
            const im_endpoint *ep = &v->eps[i];
            size_t k = 0;
            while (strcmp(v->mods[k].name, ep->module) != 0) k++;
            if (!on[k]) continue;
            im_module *m = s->mods;
            while (m->d != &v->mods[k]) m = m->next;
            im_executor *ex = NULL;
            if (ep->executor && !(ex = im__module_executor(m, ep->executor))) {
                im_log(IM_LOG_ERROR, "endpoint %s: module %s made no executor named '%s' in its "
                       "init (im_module_add_executor)", ep->name, m->d->name, ep->executor);
                rc = -EINVAL;
                break;
            }
            rc = im__add_endpoint(s, ep, m, ex);
        }
        if (!rc && v->openapi && !s->openapi) {
            im_jw w;
            im_jw_init(&w, NULL, 0);
            v->openapi(&w, on);
            rc = im_jw_error(&w) ? -ENOMEM
                                 : im__router_add(s->root, "GET", "/openapi.json", im__openapi_handler, s);
            if (rc) {
                im_jw_free(&w);
            } else { /* served from here on, freed with the modules */
                s->openapi_own = w.buf;
                s->openapi = w.buf;
                s->openapi_len = w.len;
            }
        }
        free(on);
    }
    if (!rc && cfg) im__apply_functions(s, cfg); /* functions.<name> of the config */
    if (!rc && s->svcs) { /* one line for operators: what runs */
        char on_l[512] = "", off_l[512] = "";
        for (im__service *v = s->svcs; v; v = v->next)
            for (size_t i = 0; i < v->nmods; i++) {
                int is_on = 0;
                for (im_module *m = s->mods; m; m = m->next) is_on |= m->d == &v->mods[i];
                char *l = is_on ? on_l : off_l;
                size_t n = strlen(l);
                snprintf(l + n, 512 - n, "%s%s", n ? ", " : "", v->mods[i].name);
            }
        im_log(IM_LOG_INFO, "modules: %s%s%s", *on_l ? on_l : "none", *off_l ? "; off: " : "",
               off_l);
    }
    if (!rc && s->svcs && !s->has_task_routes) {
        if ((rc = im__add_task_routes(s)) == 0) s->has_task_routes = 1;
    }
    return rc;
}

/* Closes the modules' executors (queued tasks end CANCELLED), as the server's own. */
static void im__modules_close(im_server *s)
{
    for (im_module *m = s->mods; m; m = m->next)
        for (im__modexec *e = m->execs; e; e = e->next) im_executor_close(e->ex);
}

/* Waits up to timeout_ms (-1: for ever) for the modules' executors; 1 if a job still runs. */
static int im__modules_shutdown_within(im_server *s, int timeout_ms)
{
    int stuck = 0;
    for (im_module *m = s->mods; m; m = m->next)
        for (im__modexec *e = m->execs; e; e = e->next)
            stuck |= im_executor_shutdown_within(e->ex, stuck ? 0 : timeout_ms) != 0;
    return stuck;
}

/* fini in reverse order of init, then their memory (im_server_free, the loops still there) */
static void im__modules_free(im_server *s)
{
    size_t n = 0;
    for (im_module *m = s->mods; m; m = m->next) n++;
    im_module **all = (im_module **)calloc(n ? n : 1, sizeof *all);
    size_t i = 0;
    for (im_module *m = s->mods; m; m = m->next) {
        if (all) all[i] = m;
        i++;
    }
    for (size_t k = n; all && k-- > 0;) {
        im_module *m = all[k];
        if (m->inited && m->d->fini) m->d->fini(m);
        if (m->inited) im__module_event(s, "module.fini", m->d->name);
        im__module_free(m);
    }
    free(all);
    s->mods = NULL;
    while (s->svcs) {
        im__service *v = s->svcs;
        s->svcs = v->next;
        free(v);
    }
    free(s->openapi_own);
    s->openapi_own = NULL;
}
