/* launch.c — im_main(): command line, config files and the server's life, for every service. */

/* The flag of a key: its last part with dashes; timeouts read "--header-timeout-ms", task
 * keys "--task-ttl-ms", logging.level "--log-level" (logging.access "--access-log"), manage
 * keys "--manage-token", process.workers "--processes". */
static void im__flag_of(const char *key, char *out, size_t cap)
{
    const char *last = strrchr(key, '.');
    last = last ? last + 1 : key;
    char name[96];
    if (strncmp(key, "server.timeouts.", 16) == 0 && strcmp(last, "linger_ms") != 0) {
        size_t n = strlen(last);
        snprintf(name, sizeof name, "%.*s_timeout_ms", (int)(n > 3 ? n - 3 : n), last);
    } else if (strcmp(key, "tasks.store") == 0) { /* --store redis://... */
        snprintf(name, sizeof name, "store");
    } else if (strncmp(key, "tasks.", 6) == 0) {
        snprintf(name, sizeof name, "task_%s", last);
    } else if (strcmp(key, "compression.enabled") == 0) {
        snprintf(name, sizeof name, "compression");
    } else if (strncmp(key, "compression.", 12) == 0) { /* --compression-min-bytes, -level */
        snprintf(name, sizeof name, "compression_%s", last);
    } else if (strcmp(key, "metrics.enabled") == 0 || strcmp(key, "docs.enabled") == 0) {
        snprintf(name, sizeof name, "%.*s", (int)(strchr(key, '.') - key), key); /* --docs */
    } else if (strcmp(key, "logging.access") == 0) {
        snprintf(name, sizeof name, "access_log");
    } else if (strncmp(key, "logging.", 8) == 0) { /* --log-level, --log-file, ... */
        snprintf(name, sizeof name, "log_%s", last);
    } else if (strncmp(key, "cors.", 5) == 0) { /* --cors-allow-origins, ... */
        snprintf(name, sizeof name, "cors_%s", last);
    } else if (strncmp(key, "manage.", 7) == 0) {
        snprintf(name, sizeof name, "manage_%s", last);
    } else if (strcmp(key, "process.workers") == 0) { /* --workers is the thread pool's */
        snprintf(name, sizeof name, "processes");
    } else {
        snprintf(name, sizeof name, "%s", last);
    }
    snprintf(out, cap, "--%.60s", name);
    for (char *p = out + 2; *p; p++)
        if (*p == '_') *p = '-';
}

static void im__usage(FILE *f, const char *prog)
{
    fprintf(f, "usage: %s [options]\n\n"
            "  --config FILE            a TOML config file (repeatable: later files win; default\n"
            "                           ./config.toml; also IMMERSIVE_CONFIG=FILE[:FILE...])\n"
            "  --set KEY=VALUE          any key (a TOML value; a bare word is a string)\n"
            "  --print-default-config   every key with its default (default_config.toml)\n"
            "  --check-config           read and check the configuration, then exit\n"
            "  --help                   this text\n\n"
            "Each key of default_config.toml is also a flag (they beat the files):\n", prog);
    for (size_t i = 0; i < IM__NCKEYS; i++) {
        char flag[96];
        im__flag_of(im__ckeys[i].path, flag, sizeof flag);
        fprintf(f, "  %-28s %s: %s\n", flag, im__ckeys[i].path, im__ckeys[i].doc);
    }
}

int im_main(int argc, char **argv, im_register_fn register_fn)
{
    const char *prog = argc > 0 ? argv[0] : "service";
    const char *slash = strrchr(prog, '/');
    if (slash) prog = slash + 1;
    /* the hub first: forked while this process has one thread (unless one is inherited) */
    int hub = 1;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") ||
            !strcmp(argv[i], "--print-default-config") || !strcmp(argv[i], "--check-config"))
            hub = 0;
    int hrc = hub ? im_hub_start() : 0;
    if (hrc)
        fprintf(stderr, "%s: no IPC hub (events stay in this process): %s\n", prog, strerror(-hrc));
    im_config *cfg = im_config_new();
    if (!cfg) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    int nfiles = 0, print_defaults = 0, check_only = 0, rc = 2;
    const char *env = getenv("IMMERSIVE_CONFIG");
    if (env && *env) {
        char *list = strdup(env), *save = NULL;
        for (char *p = list ? strtok_r(list, ":", &save) : NULL; p; p = strtok_r(NULL, ":", &save)) {
            im_config_add_file(cfg, p, 0);
            nfiles++;
        }
        free(list);
    }
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *a = i + 1 < argc ? argv[i + 1] : NULL;
        char flagbuf[128];
        const char *eq = strchr(f, '=');
        if (strncmp(f, "--", 2) == 0 && eq) { /* --flag=value */
            snprintf(flagbuf, sizeof flagbuf, "%.*s", (int)(eq - f), f);
            a = eq + 1;
            f = flagbuf;
        } else if (a) {
            i++; /* taken back below for flags without a value */
        }
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) {
            im__usage(stdout, prog);
            rc = 0;
            goto out;
        }
        if (strcmp(f, "--print-default-config") == 0 || strcmp(f, "--check-config") == 0) {
            if (a && !eq) i--;
            if (f[2] == 'p') print_defaults = 1;
            else check_only = 1;
            continue;
        }
        if (!a) {
            fprintf(stderr, "%s: %s needs a value (see --help)\n", prog, f);
            goto out;
        }
        if (strcmp(f, "--config") == 0) {
            im_config_add_file(cfg, a, 0);
            nfiles++;
            continue;
        }
        if (strcmp(f, "--set") == 0) {
            const char *e = strchr(a, '=');
            char key[256];
            if (!e || e == a || (size_t)(e - a) >= sizeof key) {
                fprintf(stderr, "%s: --set takes KEY=VALUE, not '%s'\n", prog, a);
                goto out;
            }
            snprintf(key, sizeof key, "%.*s", (int)(e - a), a);
            if (im_config_add_override(cfg, key, e + 1, "--set")) {
                fprintf(stderr, "%s: --set %s: not a key and a value\n", prog, a);
                goto out;
            }
            continue;
        }
        size_t k = 0;
        for (; k < IM__NCKEYS; k++) {
            char flag[96];
            im__flag_of(im__ckeys[k].path, flag, sizeof flag);
            if (strcmp(flag, f) == 0) break;
        }
        if (k == IM__NCKEYS) {
            fprintf(stderr, "%s: unknown option '%s' (see --help)\n", prog, f);
            goto out;
        }
        if (im_config_add_override(cfg, im__ckeys[k].path, a, f)) {
            fprintf(stderr, "%s: %s: bad value '%s'\n", prog, f, a);
            goto out;
        }
    }
    /* the server first, with its endpoints: its modules' defaults join the config's */
    im_server_opts none = {0};
    im_server *s = im_server_new(&none);
    char err[512];
    if (!s) {
        fprintf(stderr, "%s: out of memory\n", prog);
        rc = 1;
        goto out;
    }
    int r = register_fn ? register_fn(s) : 0;
    /* the fork server of process-mode functions, while this process has one thread still
     * (the bus and the executors start theirs next) */
    if (r == 0 && !print_defaults && !check_only && (r = im__log_setup(s))) {
        rc = 1;
    } else if (r == 0 && !print_defaults && !check_only && (r = im__procs_prestart(s))) {
        fprintf(stderr, "%s: cannot start the fork server: %s\n", prog, strerror(-r));
        rc = 1;
    } else if (r) {
        fprintf(stderr, "%s: cannot add the service's endpoints: %s\n", prog, strerror(-r));
        rc = 1;
    } else if (hub && !im_server_bus(s)) {
        fprintf(stderr, "%s: cannot start the event bus: %s\n", prog, strerror(errno));
        rc = 1;
    } else if (print_defaults) {
        char *d = NULL;
        if (im_server_config_defaults(s, cfg, err, sizeof err) == 0 &&
            (d = im_config_default_toml(cfg)))
            fputs(d, stdout);
        else
            fprintf(stderr, "%s: %s\n", prog, d ? err : "out of memory");
        rc = d ? 0 : 1;
        free(d);
    } else {
        if (!nfiles) im_config_add_file(cfg, "config.toml", 1);
        if (im_server_use_config(s, cfg, err, sizeof err)) {
            fprintf(stderr, "%s: %s\n", prog, err);
        } else if (check_only) {
            printf("%s: the configuration is valid\n", prog);
            rc = 0;
        } else if (im_server_start(s) == 0) {
            if (getenv("IMMERSIVE_HUB"))
                im_log(IM_LOG_INFO, "events: hub %s", getenv("IMMERSIVE_HUB"));
            im_log_flush(); /* what the start logged is out before the address is told */
            printf("listening on http://%s:%d\n", im_config_str(cfg, "server.host", IM_DEFAULT_HOST),
                   im_server_port(s));
            fflush(stdout);
            rc = im_server_run(s) ? 1 : 0;
        } else {
            rc = 1;
        }
    }
    im_server_free(s);
out:
    im_config_free(cfg);
    return rc;
}
