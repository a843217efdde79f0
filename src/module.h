/* module.h — modules: the folders of annotated endpoints a service is made of, switched on and
 * tuned by config ([modules] math = true, and a [math] table), with init and fini hooks, their
 * own directories, private executors and resources loaded once and shared.
 *
 *   IM_MODULE(math, "Arithmetic", .init = math_init, .fini = math_fini, .serial = false)
 *   int math_init(im_module *m) {
 *       const im_toml *t = im_module_table(m);             // [math] of the config
 *       im_executor_opts o = {.threads = 1, .name = "gpu"};
 *       return im_module_add_executor(m, "gpu", im_executor_new(&o));  // .executor = "gpu"
 *   }
 *
 * A module's defaults are the file defaults.toml in its folder (its [math] table), which the
 * generator embeds: its keys become known to the config, with those values. */

typedef struct im_module im_module;

/* A module as the generator describes it (one row per module of a service). */
typedef struct im_module_desc {
    const char *name;           /* the folder's and IM_MODULE's name */
    const char *doc;
    int (*init)(im_module *m);  /* .init: at start, before the server accepts; < 0 stops it */
    void (*fini)(im_module *m); /* .fini: at shutdown, after its last task, before the loops go */
    int serial;                 /* .serial: endpoints without a .mode run on the serial executor */
    const char *defaults;       /* defaults.toml of its folder (TOML text), or NULL */
} im_module_desc;

/* Writes a service's OpenAPI document with only the modules whose on[i] is set (generated). */
typedef void (*im_openapi_fn)(im_jw *w, const unsigned char *on);

/* Adds a service: its modules and endpoints (each endpoint's .module names its module). The
 * modules switched on in the config (modules.<name>, on unless set false) are started by
 * im_server_start(): their directories made, init run in order with their tables, then their
 * routes added and GET /openapi.json built from them; switched off, a module registers nothing
 * (404, absent from /openapi.json and /functions). Call before im_server_start(). */
int im_server_add_service(im_server *s, const im_module_desc *mods, size_t nmods,
                          const im_endpoint *eps, size_t neps, im_openapi_fn openapi);

/* The module's name. */
const char *im_module_name(const im_module *m);
/* Its table of the config ([math]) as it was at start: valid until fini returns. Live values:
 * im_config_int(im_module_config(m), "math.x", 0) and im_config_watch(). */
const im_toml *im_module_table(const im_module *m);
/* The server's configuration (NULL when the server follows none). */
im_config *im_module_config(const im_module *m);
/* A pointer of the module's own (its model, its state), for its handlers. */
void im_module_set_data(im_module *m, void *data);
void *im_module_data(const im_module *m);
/* Hands a private executor to the server under a name its endpoints use (.executor = "gpu"):
 * the server shuts it down with its own executors, before the module's fini and before the
 * loops are freed. In init only. Returns 0, -EINVAL (ex NULL, name taken) or -ENOMEM. */
int im_module_add_executor(im_module *m, const char *name, im_executor *ex);
/* The module of a call. */
im_module *im_call_module(const im_call *call);

typedef enum im_dir_kind {
    IM_DIR_CACHE, /* cache/<module>/: kept across runs */
    IM_DIR_TEMP,  /* temp/<module>/: for a call, its own subdirectory, removed when it ends;
                   * the whole of temp/<module>/ is emptied at start and exit */
    IM_DIR_DATA   /* data/<module>/: static data, read-only (not created) */
} im_dir_kind;
/* The directory of a kind for a call (for IM_DIR_TEMP the call's own, made on first use), with
 * roots from paths.cache, paths.temp and paths.data. Borrowed: valid during the call. NULL when
 * it cannot be made (errno set). */
const char *im_module_dir(im_call *call, im_dir_kind kind);
/* The module's own directory of a kind (temp: temp/<module>/ itself). */
const char *im_module_path(const im_module *m, im_dir_kind kind);

/* A resource the module's calls share (a model, a lookup table): loaded by the first call that
 * asks (load_fn(m) on its thread; the others wait for it), then shared; freed with free_fn at
 * shutdown, after fini. A load that returns NULL is tried again by the next call. Returns the
 * resource or NULL. */
void *im_module_resource(im_call *call, const char *name, void *(*load_fn)(im_module *m),
                         void (*free_fn)(void *res));
