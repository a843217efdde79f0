/* metrics.c — GET /metrics in the Prometheus text format 0.0.4: what the loops counted (each
 * in its own memory, summed here), the executors' queues, the tasks by function, the log, the
 * configuration's reloads and the worker processes replaced. The scrape runs on a loop; the
 * counting it reads costs the requests no lock and no shared cache line. */

/* A label value as the format wants it (\\, \" and \n escaped) into o[0..cap); cut whole. */
static void im__prom_label(char *o, size_t cap, const char *s)
{
    size_t k = 0;
    for (; *s && k + 3 < cap; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') o[k++] = '\\';
        o[k++] = *s == '\n' ? 'n' : *s;
    }
    o[k] = 0;
}

static void im__prom_head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A histogram's series: per-bucket counts (not cumulative; the last is +Inf) made cumulative,
 * under the labels in lab (written as they are, without braces). */
static void im__prom_hist(FILE *f, const char *name, const char *lab, const uint64_t *le,
                          uint64_t sum_us)
{
    uint64_t cum = 0;
    for (unsigned b = 0; b <= IM__MET_BUCKETS; b++) {
        cum += le[b];
        if (b < IM__MET_BUCKETS)
            fprintf(f, "%s_bucket{%s,le=\"%g\"} %llu\n", name, lab, (double)im__met_le_us[b] / 1e6,
                    (unsigned long long)cum);
        else
            fprintf(f, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, lab, (unsigned long long)cum);
    }
    fprintf(f, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, lab, (double)sum_us / 1e6, name,
            lab, (unsigned long long)cum);
}

static uint64_t im__ld(const _Atomic uint64_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

/* The executors a scrape reports: the server's, process mode's, and the modules'. */
static void im__prom_executor(FILE *f, const im_executor *ex, int part)
{
    if (!ex) return;
    const char *n = im_executor_name(ex);
    if (part == 0) {
        for (unsigned p = 0; p < im_executor_levels(ex); p++)
            fprintf(f, "immersive_executor_queue_depth{executor=\"%s\",priority=\"%u\"} %zu\n",
                    n, p, im_executor_queued_at(ex, p));
    } else if (part == 1) {
        fprintf(f, "immersive_executor_threads{executor=\"%s\"} %u\n", n, im_executor_threads(ex));
    } else {
        fprintf(f, "immersive_executor_threads_busy{executor=\"%s\"} %u\n", n,
                im_executor_running(ex));
    }
}

static void im__prom_executors(FILE *f, im_server *s, int part)
{
    im__prom_executor(f, s->primary, part);
    im__prom_executor(f, s->serial, part);
    if (s->procs) im__prom_executor(f, s->procs->ex, part);
    for (const im_module *m = s->mods; m; m = m->next)
        for (const im__modexec *e = m->execs; e; e = e->next) im__prom_executor(f, e->ex, part);
}

static void im__metrics(im_ctx *c)
{
    im_server *s = im_ctx_udata(c);
    if (c->loop->o.metrics < 0) {
        im_reply_error(c, 404, "metrics are off (metrics.enabled = false)");
        return;
    }
    if (!atomic_load(&s->loops_ready)) { /* every loop's counters exist from then on */
        im_reply_error(c, 503, "starting");
        return;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        im_reply_error(c, 503, "out of memory");
        return;
    }
    const im__rnode *root = s->root;
    uint32_t nroutes = root->nall + 1;
    im__prom_head(f, "immersive_requests_total", "counter", "Answers, by route and status class.");
    uint64_t *le = calloc((size_t)nroutes * (IM__MET_BUCKETS + 2), sizeof *le);
    uint64_t *cls = calloc((size_t)nroutes * 5, sizeof *cls);
    for (int i = 0; le && cls && i < s->nloops; i++) {
        const im_loop *L = s->loops[i];
        for (uint32_t r = 0; r < nroutes && r < L->nmet; r++) {
            const im__rmet *m = &L->met[r];
            for (int k = 0; k < 5; k++) cls[r * 5 + k] += im__ld(&m->status[k]);
            uint64_t *h = le + (size_t)r * (IM__MET_BUCKETS + 2);
            for (int b = 0; b <= IM__MET_BUCKETS; b++) h[b] += im__ld(&m->le[b]);
            h[IM__MET_BUCKETS + 1] += im__ld(&m->sum_us);
        }
    }
    char lab[640], (*esc)[512] = calloc(nroutes, sizeof *esc); /* the routes' labels */
    if (esc) snprintf(esc[0], sizeof esc[0], "(none)"); /* requests no route took */
    for (uint32_t r = 1; esc && r < nroutes; r++)
        im__prom_label(esc[r], sizeof esc[r], root->all[r - 1]->pattern);
    for (uint32_t r = 0; le && cls && esc && r < nroutes; r++) {
        const im__route *rt = r ? root->all[r - 1] : NULL;
        for (int k = 0; k < 5; k++) {
            if (!cls[r * 5 + k]) continue;
            fprintf(f, "immersive_requests_total{method=\"%s\",route=\"%s\",status=\"%dxx\"} "
                    "%llu\n", rt ? rt->method : "", esc[r], k + 1,
                    (unsigned long long)cls[r * 5 + k]);
        }
    }
    im__prom_head(f, "immersive_request_duration_seconds", "histogram",
                  "From a request's dispatch to its answer queued (a task's run included).");
    for (uint32_t r = 0; le && cls && esc && r < nroutes; r++) {
        const uint64_t *h = le + (size_t)r * (IM__MET_BUCKETS + 2);
        uint64_t any = 0;
        for (int b = 0; b <= IM__MET_BUCKETS; b++) any += h[b];
        if (!any) continue;
        const im__route *rt = r ? root->all[r - 1] : NULL;
        snprintf(lab, sizeof lab, "method=\"%s\",route=\"%s\"", rt ? rt->method : "", esc[r]);
        im__prom_hist(f, "immersive_request_duration_seconds", lab, h, h[IM__MET_BUCKETS + 1]);
    }
    free(le);
    free(cls);
    free(esc);
    uint64_t in = 0, out = 0, refused = 0;
    for (int i = 0; i < s->nloops; i++) {
        in += im__ld(&s->loops[i]->m_bytes_in);
        out += im__ld(&s->loops[i]->m_bytes_out);
        refused += im__ld(&s->loops[i]->m_refused);
    }
    im__prom_head(f, "immersive_received_bytes_total", "counter", "Bytes received.");
    fprintf(f, "immersive_received_bytes_total %llu\n", (unsigned long long)in);
    im__prom_head(f, "immersive_sent_bytes_total", "counter", "Bytes of answers queued to send.");
    fprintf(f, "immersive_sent_bytes_total %llu\n", (unsigned long long)out);
    im__prom_head(f, "immersive_connections_open", "gauge", "Connections open now.");
    fprintf(f, "immersive_connections_open %d\n", atomic_load_explicit(&s->conns,
                                                                      memory_order_relaxed));
    im__prom_head(f, "immersive_connections_refused_total", "counter",
                  "Connections answered 503 past server.limits.max_conns.");
    fprintf(f, "immersive_connections_refused_total %llu\n", (unsigned long long)refused);
    im__prom_head(f, "immersive_executor_queue_depth", "gauge", "Jobs waiting, by priority.");
    im__prom_executors(f, s, 0);
    im__prom_head(f, "immersive_executor_threads", "gauge", "Worker threads of an executor.");
    im__prom_executors(f, s, 1);
    im__prom_head(f, "immersive_executor_threads_busy", "gauge", "Of them, running a job now.");
    im__prom_executors(f, s, 2);
    im__prom_head(f, "immersive_tasks", "gauge", "Tasks not yet ended, by function and state.");
    for (size_t i = 0; i < s->neps; i++) {
        const im__epstate *st = s->eps[i];
        unsigned unf = atomic_load_explicit(&st->unfinished, memory_order_relaxed);
        unsigned run = atomic_load_explicit(&st->running, memory_order_relaxed);
        if (st->ep->mode == IM_MODE_INLINE) continue;
        fprintf(f, "immersive_tasks{function=\"%s\",state=\"QUEUED\"} %u\n"
                "immersive_tasks{function=\"%s\",state=\"RUNNING\"} %u\n", st->ep->name,
                unf > run ? unf - run : 0, st->ep->name, run);
    }
    im__prom_head(f, "immersive_tasks_ended_total", "counter", "Tasks ended, by function and state.");
    for (size_t i = 0; i < s->neps; i++) {
        const im__epstate *st = s->eps[i];
        if (st->ep->mode == IM_MODE_INLINE) continue;
        for (int k = 0; k < 4; k++)
            fprintf(f, "immersive_tasks_ended_total{function=\"%s\",state=\"%s\"} %llu\n",
                    st->ep->name, im_task_state_name(IM_TASK_SUCCEEDED + k),
                    (unsigned long long)im__ld(&st->ended[k]));
    }
    im__prom_head(f, "immersive_task_duration_seconds", "histogram",
                  "Run time of tasks that ran, from RUNNING to their end.");
    for (size_t i = 0; i < s->neps; i++) {
        const im__epstate *st = s->eps[i];
        if (st->ep->mode == IM_MODE_INLINE) continue;
        uint64_t h[IM__MET_BUCKETS + 1];
        for (int b = 0; b <= IM__MET_BUCKETS; b++) h[b] = im__ld(&st->dur_le[b]);
        snprintf(lab, sizeof lab, "function=\"%s\"", st->ep->name);
        im__prom_hist(f, "immersive_task_duration_seconds", lab, h, im__ld(&st->dur_sum_us));
    }
    im__prom_head(f, "immersive_log_lines_dropped_total", "counter",
                  "Log lines dropped because the log's ring was full.");
    fprintf(f, "immersive_log_lines_dropped_total %llu\n", (unsigned long long)im_log_dropped());
    im__prom_head(f, "immersive_config_reloads_total", "counter",
                  "Reloads of the configuration files, by result.");
    fprintf(f, "immersive_config_reloads_total{result=\"ok\"} %llu\n"
            "immersive_config_reloads_total{result=\"failed\"} %llu\n",
            (unsigned long long)(s->cfgw ? im__ld(&s->cfgw->reloads[0]) : 0),
            (unsigned long long)(s->cfgw ? im__ld(&s->cfgw->reloads[1]) : 0));
    im__prom_head(f, "immersive_process_worker_restarts_total", "counter",
                  "Worker processes replaced (after a crash, a kill or a leak).");
    fprintf(f, "immersive_process_worker_restarts_total %lu\n",
            s->procs ? atomic_load_explicit(&s->procs->restarts, memory_order_relaxed) : 0ul);
    uint64_t cl[4];
    if (!im__cl_counters(s, cl)) { /* the Redis store's */
        static const char *const name[4][2] = {
            {"immersive_cluster_tasks_taken_total",
             "Tasks this instance took from the cluster's queues (Redis store)."},
            {"immersive_cluster_tasks_reclaimed_total",
             "Of them, taken over from an instance that went away (tasks.redis.claim_after_ms)."},
            {"immersive_cluster_redis_connects_total",
             "Connections of the loops to Redis made (one command and one subscriber connection "
             "a loop; more: reconnects)."},
            {"immersive_cluster_redis_lost_total",
             "Blocking connections (taker, heartbeat, workers) lost to Redis."}};
        for (int i = 0; i < 4; i++) {
            im__prom_head(f, name[i][0], "counter", name[i][1]);
            fprintf(f, "%s %llu\n", name[i][0], (unsigned long long)cl[i]);
        }
    }
    im__prom_head(f, "immersive_info", "gauge", "immersive's version.");
    fprintf(f, "immersive_info{version=\"%s\"} 1\n", IM_VERSION_STRING);
    int bad = ferror(f);
    fclose(f);
    if (bad || !text) im_reply_error(c, 503, "out of memory");
    else im_reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}
