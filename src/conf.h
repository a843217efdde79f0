/* conf.h — run-time configuration: TOML layers (defaults, files, values set from code and from
 * the command line) merged into one immutable snapshot, typed lookups by dotted path, checks
 * against the known keys, reloads and subscribers. (config.h holds the compile-time defaults.)
 *
 *   im_config *cfg = im_config_new();
 *   im_config_add_file(cfg, "config.toml");
 *   if (im_config_load(cfg, err, sizeof err)) { fprintf(stderr, "%s\n", err); exit(2); }
 *   int64_t n = im_config_int(cfg, "server.limits.max_body_bytes", 1 << 20);
 *
 * Thread safety: every function may be called from any thread. Lookups read the snapshot that
 * is current when they are called; a reload or im_config_set() swaps in a new one whole. */

typedef struct im_config im_config;

/* A new configuration whose defaults (and known keys) are every key immersive itself knows:
 * im_config_default_toml() tells them. */
im_config *im_config_new(void);
/* Frees it (no reload or subscriber may be running). */
void im_config_free(im_config *cfg);

/* Adds defaults: a TOML text whose keys become known and whose values are the base layer (a
 * module's own table, for instance). name appears in errors. A table listed in open_tables
 * (comma-separated dotted paths, may be NULL) takes keys of any name. Before im_config_load().
 * Returns 0, or -EINVAL with the reason in err. */
int im_config_add_defaults(im_config *cfg, const char *name, const char *toml,
                           const char *open_tables, char *err, size_t errlen);
/* Adds a file layer; files given later win key by key. optional: a missing file is no error.
 * Returns 0, -ENOMEM, or -EBUSY once the configuration is watched. */
int im_config_add_file(im_config *cfg, const char *path, int optional);
/* Sets a value from the command line: the highest layer ("server.port", "8080": the text is a
 * TOML value; a bare word that is no TOML value is taken as a string). Checked at load. */
int im_config_add_override(im_config *cfg, const char *path, const char *value, const char *from);

/* (Re)reads every file, merges the layers and checks every key: an unknown key and a value of
 * the wrong type are errors that say where ("config.toml:3:1: unknown key 'server.prot'") and
 * the expected type. On success the new snapshot is current and subscribers of the keys that
 * changed are called (see im_config_watch); on an error the current snapshot stays and err
 * says why. Returns 0, -EINVAL (err set) or -ENOMEM. */
int im_config_load(im_config *cfg, char *err, size_t errlen);
/* Sets one value from code ("tasks.ttl_ms", "60000" as a TOML value), seen like a reload.
 * Returns 0 or -EINVAL with err set (unknown key, wrong type, bad TOML). */
int im_config_set(im_config *cfg, const char *path, const char *toml_value, char *err,
                  size_t errlen);

/* Typed lookups. fallback when the key is absent or of another type (an integer is also read
 * as a double). */
int64_t im_config_int(im_config *cfg, const char *path, int64_t fallback);
double im_config_double(im_config *cfg, const char *path, double fallback);
int im_config_bool(im_config *cfg, const char *path, int fallback);
/* The string is kept by cfg until it is freed (a string that changes keeps its old text too). */
const char *im_config_str(im_config *cfg, const char *path, const char *fallback);
/* Copies of an array or table (free with im_toml_free()), or NULL when absent or not one. */
im_toml *im_config_array(im_config *cfg, const char *path);
im_toml *im_config_table(im_config *cfg, const char *path);
/* 1 when the key has a value in the current snapshot, defaults included, else 0: a key that is
 * absent differs from one set to 0. */
int im_config_has(im_config *cfg, const char *path);
/* Where the current value of a key comes from ("config.toml:12:1", "--port", "default",
 * "im_config_set") into buf; returns 0 or -ENOENT. */
int im_config_source(im_config *cfg, const char *path, char *buf, size_t cap);
/* A counter that grows with every snapshot made current (load, reload, set). */
uint64_t im_config_generation(im_config *cfg);

/* Calls fn(cfg, path, arg) after each change of the value at path or under it (path "" is the
 * whole configuration), once per load or set that changed it, from the thread that made the
 * change (in a server: its config thread, never a loop). fn may read the config but not load
 * or set it (-EDEADLK). Returns an id > 0 or -ENOMEM. im_config_unwatch() returns after a
 * call in flight has ended. */
typedef void (*im_config_fn)(im_config *cfg, const char *path, void *arg);
int im_config_watch(im_config *cfg, const char *path, im_config_fn fn, void *arg);
void im_config_unwatch(im_config *cfg, int id);

/* The effective configuration as JSON (an object of tables); values of keys whose last part
 * holds "secret", "password", "token" or "key" are written as "***" when mask is set. */
void im_config_json(im_config *cfg, im_jw *w, int mask);
/* The defaults of every known key as a commented TOML document (default_config.toml): a heap
 * string to free(). */
char *im_config_default_toml(im_config *cfg);

/* The server's options from the configuration (server.*, executor.*, tasks.*; logging.level is
 * applied at once). Values are checked against their ranges: -EINVAL with the key in err. */
int im_config_server_opts(im_config *cfg, im_server_opts *o, char *err, size_t errlen);
/* Makes the server follow cfg. First the defaults of the modules added with
 * im_server_add_service() join cfg (modules.<name> = true and their tables), then cfg is
 * loaded and its server keys replace the server's options. While it runs, the files are
 * watched (inotify, through loop 0's ring) and reloaded when they change; keys that can change
 * live (limits, timeouts, log level) take effect at each loop's next iteration; the others log
 * "needs a restart". GET /manage/config shows the effective configuration. Call before
 * im_server_start(), once. Returns 0, or -EINVAL with the reason in err (a config error). */
int im_server_use_config(im_server *s, im_config *cfg, char *err, size_t errlen);
/* Adds the defaults of the server's modules to cfg (what im_server_use_config does first):
 * for --print-default-config. Returns 0 or -EINVAL with err. */
int im_server_config_defaults(im_server *s, im_config *cfg, char *err, size_t errlen);
/* The configuration a server follows, or NULL. */
im_config *im_server_config(im_server *s);
