/* exec.c — running annotated endpoints in their modes. Inline: bound and called on the loop.
 * Pool and serial: bound and validated on the loop, then a task: limits checked at once, the
 * task's job on the executor, its answer written on the worker, sync callers woken on their
 * own loops (async ones got 202 with its id), time limits on the submitting loop, O(1)
 * cancellation of queued tasks, progress from the handler. */

/* ---- what a handler reaches through im_call ---- */

int im_call_cancelled(const im_call *call)
{
    if (call->pw) return im__pw_term != 0; /* a worker process: SIGTERM came */
    if (call->cj) return im__cl_cancelled(call->cj);
    return call->run && im_job_cancelled(&call->run->job);
}

void im_call_progress(im_call *call, double fraction, const char *message)
{
    if (call->pw) im__pw_progress(call->pw, fraction, message); /* to the server's task */
    else if (call->cj) im__cl_progress(call->cj, fraction, message); /* to Redis */
    else if (call->run) im_job_progress(&call->run->job, fraction, message);
}

const char *im_call_task_id(const im_call *call)
{
    if (call->pw) return call->pw->task_id;
    if (call->cj) return im__cl_task_id(call->cj);
    return call->run ? call->run->idhex : NULL;
}

int im_call_attempt(const im_call *call)
{
    if (call->cj) return im__cl_attempt(call->cj);
    return call->run || call->pw ? 1 : 0;
}

const char *im_call_request_id(const im_call *call)
{
    if (call->pw) return call->pw->rid;
    if (call->cj) return im__cl_request_id(call->cj);
    if (call->run) return call->run->task->request_id;
    return call->ctx ? call->ctx->rid : "";
}

/* The job's progress hook: the latest fraction and message on the task, its readers woken. */
static void im__task_progress(im_job *j, double fraction, const char *message)
{
    im__taskrun *r = (im__taskrun *)(void *)j;
    im__task *t = r->task;
    char *m = NULL;
    if (!(fraction >= 0)) fraction = 0; /* NaN too */
    if (fraction > 1) fraction = 1;
    if (message) {
        size_t n = strnlen(message, 1024);
        while (n && n < strlen(message) && ((unsigned char)message[n] & 0xc0) == 0x80) n--;
        if ((m = malloc(n + 1))) { /* cut at a character boundary */
            memcpy(m, message, n);
            m[n] = 0;
        }
    }
    im__task_lock(t);
    if (t->state == IM_TASK_RUNNING) {
        char *old = t->message;
        t->message = m;
        m = old;
        t->fraction = fraction;
        t->progress_seq++;
        im__task_wake(t);
    }
    im__task_unlock(t);
    free(m);
}

/* ---- answers ---- */

/* Writes the JSON of w (or 500 when it failed: out of memory, or a fixed buffer too small)
 * and frees it. */
static void im__reply_jw(im_ctx *c, int status, im_jw *w)
{
    if (im_jw_error(w)) im_reply_error(c, 500, "out of memory");
    else im_reply_json(c, status, w->buf, w->len);
    im_jw_free(w);
}

/* A handler's ndarray result is checked before anything reads it: a wrong nbytes or shape
 * would read past its data. Returns the call's status (500 with the reason when it is bad). */
static int im__nd_result(const im_endpoint *ep, im_call *call, int status, const void *out)
{
    char why[120];
    if (status || !ep->result_ndarray || im_ndarray_check((const im_ndarray *)out, why, sizeof why) == 0)
        return status;
    im_log(IM_LOG_ERROR, "%s: its ndarray result is inconsistent: %s", ep->name, why);
    return im_call_fail(call, 500, "the function's array result is inconsistent: %s", why);
}

/* The .npy image (header, then the data) of a checked array, malloc'ed; NULL when out of
 * memory or too large for a task to keep (4 GiB). */
static char *im__npy_image(const im_ndarray *a, size_t *len)
{
    char head[256];
    int hl = im_npy_header(a->dtype, a->ndim, a->shape, head, sizeof head);
    if (hl < 0 || a->nbytes > UINT32_MAX - (size_t)hl) return NULL;
    char *img = malloc((size_t)hl + a->nbytes);
    if (!img) return NULL;
    memcpy(img, head, (size_t)hl);
    if (a->nbytes) memcpy(img + hl, a->data, a->nbytes);
    *len = (size_t)hl + a->nbytes;
    return img;
}

/* 1 when the request's Accept names application/x-npy (with a q above 0). */
static int im__accepts_npy(const im_ctx *c)
{
    im_str acc = im_ctx_header(c, "accept");
    static const char want[] = "application/x-npy";
    size_t wl = sizeof want - 1;
    for (size_t i = 0; acc.ptr && i + wl <= acc.len; i++) {
        if ((i && acc.ptr[i - 1] != ',' && acc.ptr[i - 1] != ' ' && acc.ptr[i - 1] != '\t') ||
            !im__ieq_lower(acc.ptr + i, want, wl))
            continue;
        size_t k = i + wl;
        while (k < acc.len && (acc.ptr[k] == ' ' || acc.ptr[k] == '\t')) k++;
        if (k < acc.len && acc.ptr[k] != ',' && acc.ptr[k] != ';') continue;
        /* ;q=0 (or 0.0, 0.00) refuses it */
        const char *q = k < acc.len && acc.ptr[k] == ';' ? acc.ptr + k : NULL;
        const char *end = acc.ptr + acc.len;
        if (q) {
            const char *comma = memchr(q, ',', (size_t)(end - q));
            const char *e = comma ? comma : end;
            for (const char *p = q; p + 2 < e; p++)
                if ((p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
                    p += 2;
                    int zero = *p == '0';
                    for (p++; zero && p < e && *p != ' ' && *p != ';'; p++) zero = *p == '.' || *p == '0';
                    if (zero) return 0;
                    break;
                }
        }
        return 1;
    }
    return 0;
}

/* Writes a call's answer into w (set up by the caller on a buffer of its own; a larger
 * answer moves w to the heap: im_jw_free it): the result's JSON, or {"detail": ...} for a
 * failure. Returns the HTTP status: 200, the one the call failed with, or 500 when the
 * answer could not be written (w then holds nothing usable). */
static int im__call_answer(const im_endpoint *ep, const im_call *call, int status, const void *out,
                           im_jw *w)
{
    if (status < 0 || (status && (status < 400 || status > 599))) status = 500;
    char bad[256], why[300];
    const char *detail = status && call && call->detail ? call->detail : NULL;
    if (!status && ep->check && ep->check(out, bad, sizeof bad)) {
        /* as FastAPI validates its responses: never an answer its own document calls invalid */
        snprintf(why, sizeof why, "the answer breaks its schema: %.256s", bad);
        im_log(IM_LOG_ERROR, "%s: %s", ep->name, why);
        status = 500;
        detail = why;
    }
    for (int pass = 0; pass < 2; pass++) {
        if (status) {
            im_jw_obj(w);
            im_jw_key(w, "detail");
            im_jw_str(w, detail ? detail : im__reason(status));
            im_jw_obj_end(w);
        } else if (ep->write) {
            ep->write(w, out);
        } else {
            im_jw_null(w);
        }
        if (im_jw_error(w) != -ENOSPC || w->growable) break;
        im_jw_init(w, NULL, 0); /* a big answer: again, on the heap */
    }
    if (im_jw_error(w)) return 500;
    return status ? status : 200;
}

/* The status of a successful answer: the one its handler picked (im_call_status; 0: none),
 * else the endpoint's .status, else 200. Inline answers and tasks' alike. */
static int im__ok_status(const im_endpoint *ep, unsigned picked)
{
    return picked ? (int)picked : ep->status ? ep->status : 200;
}

/* Answers c with what the call returned (inline calls). */
static void im__ep_answer(im_ctx *c, const im_endpoint *ep, im_call *call, int status,
                          const void *out)
{
    char small[1024];
    im_jw w;
    im_jw_init(&w, small, sizeof small);
    int st = im__call_answer(ep, call, status, out, &w);
    if (st == 200) st = im__ok_status(ep, call ? call->ok_status : 0);
    if (im_jw_error(&w)) im_reply_error(c, 500, "the result could not be written as JSON");
    else if (st == 204) im_reply(c, 204, NULL, NULL, 0);
    else im_reply_json(c, st, w.buf, w.len);
    im_jw_free(&w);
}

/* Adds the header lines a task's handler set (im_call_header) to its answer on c. */
static void im__task_headers(im_ctx *c, const char *h)
{
    char name[128], value[4096];
    for (const char *p = h; p && *p;) {
        const char *colon = strchr(p, ':'), *eol = strstr(p, "\r\n");
        if (!colon || !eol || colon > eol) break;
        snprintf(name, sizeof name, "%.*s", (int)(colon - p), p);
        snprintf(value, sizeof value, "%.*s", (int)(eol - colon - 2), colon + 2);
        im_res_header(c, name, value);
        p = eol + 2;
    }
}

/* Answers c with ep's array result a (img: its .npy image, when there is one already): .npy
 * when it accepts it, else the JSON the endpoint's writer makes, {"result": nested lists}. */
static void im__reply_ndarray(im_ctx *c, const im_endpoint *ep, const im_ndarray *a,
                              const char *img, size_t img_len)
{
    if (c->is_npy_known ? c->is_npy_accept : im__accepts_npy(c)) {
        if (img) {
            im_reply(c, 200, "application/x-npy", img, img_len);
            return;
        }
        size_t len;
        char *own = im__npy_image(a, &len);
        if (!own) im_reply_error(c, 503, "out of memory");
        else im_reply(c, 200, "application/x-npy", own, len);
        free(own);
        return;
    }
    im__ep_answer(c, ep, NULL, 0, a); /* the call is read only on failure */
}

/* {"detail": "...", "state": "..."}: how a task that did not succeed answers. */
static void im__reply_task_error(im_ctx *c, int status, const char *detail, int state)
{
    char small[640];
    im_jw w;
    im_jw_init(&w, small, sizeof small);
    for (int pass = 0; pass < 2; pass++) {
        im_jw_obj(&w);
        im_jw_key(&w, "detail");
        im_jw_str(&w, detail);
        im_jw_key(&w, "state");
        im_jw_str(&w, im_task_state_name(state));
        im_jw_obj_end(&w);
        if (im_jw_error(&w) != -ENOSPC) break;
        im_jw_init(&w, NULL, 0);
    }
    if (im_jw_error(&w)) im_reply_error(c, 500, "out of memory");
    else im_reply_json(c, status, w.buf, w.len);
    im_jw_free(&w);
}

/* Answers c as GET /tasks/{id}/result does for a finished task, the same for a sync caller:
 * the function's own answer when it SUCCEEDED, else its error and state (FAILED: the status
 * the handler failed with, 500 by default; TIMEOUT 504; CANCELLED 409). t is terminal, so its
 * answer no longer changes and is read without the lock. */
static void im__reply_task_end(im_ctx *c, const im__task *t)
{
    int st = t->state;
    int ok = im__ok_status(t->fn->ep, t->ok_status);
    if (st == IM_TASK_SUCCEEDED && t->hdrs) im__task_headers(c, t->hdrs);
    if (st == IM_TASK_SUCCEEDED && ok == 204) {
        im_reply(c, 204, NULL, NULL, 0);
        return;
    }
    if (st == IM_TASK_SUCCEEDED && t->body && t->is_npy) {
        im_ndarray a;
        if (im_npy_read(t->body, t->body_len, &a, NULL, 0) == 0) /* it wrote it */
            im__reply_ndarray(c, t->fn->ep, &a, t->body, t->body_len);
        else
            im_reply_error(c, 500, "the stored array cannot be read");
        return;
    }
    if (st == IM_TASK_SUCCEEDED && t->body) {
        im_reply_json(c, ok, t->body, t->body_len);
        return;
    }
    im__reply_task_error(c, st == IM_TASK_SUCCEEDED ? 500 : t->status ? t->status : 500,
                         t->error ? t->error : im_task_state_name(st), st);
}

/* ---- a task's memory and slot ---- */

typedef struct im__taskmem {
    char *owned;
    im__ablock *arena;
    size_t held;
    im__epstate *fn;
    int pfd; /* the request's memfd (process mode), -1 or (zero-initialised, no fn) unused */
} im__taskmem;

/* Takes what a task's arguments hold (to free outside the task lock) and marks it released:
 * exactly one of the worker that ran it and whoever ended it while queued does this. Task
 * lock held. */
static void im__taskrun_take(im__taskrun *r, im__taskmem *m)
{
    if (r->is_released) return;
    r->is_released = 1;
    m->owned = r->owned;
    m->arena = r->arena.head;
    m->held = r->held;
    m->fn = r->task->fn;
    m->pfd = r->pfd;
    r->pfd = -1;
    r->owned = NULL;
    r->arena.head = NULL;
    r->arena.bytes = 0;
}

/* Frees what im__taskrun_take took and gives the slot (max_concurrency) and the memory budget
 * (max_queued_bytes) back. Any thread. */
static void im__taskmem_free(im__taskmem *m)
{
    im__arena a = {m->arena, 0};
    if (!m->fn) return;
    im__arena_free(&a);
    free(m->owned);
    if (m->pfd >= 0) close(m->pfd);
    atomic_fetch_sub_explicit(&m->fn->unfinished, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&m->fn->srv->queued_bytes, m->held, memory_order_relaxed);
    m->fn = NULL;
}

/* Tells the store that t is terminal (its TTL starts; it may be evicted). */
static void im__task_stored_end(im__task *t)
{
    im__store *s = t->fn->srv->store;
    if (!atomic_exchange_explicit(&t->is_counted, 1, memory_order_relaxed)) {
        im__epstate *fn = t->fn;
        int st = atomic_load(&t->state);
        if (st >= IM_TASK_SUCCEEDED)
            atomic_fetch_add_explicit(&fn->ended[st - IM_TASK_SUCCEEDED], 1, memory_order_relaxed);
        im__task_lock(t);
        /* its handler's run when it returned; else (a time limit) the wall clock's, in ms */
        int64_t ran = t->run_us ? (int64_t)t->run_us
                      : t->started_ms && t->finished_ms ? (t->finished_ms - t->started_ms) * 1000
                      : -1;
        im__task_unlock(t);
        if (ran >= 0) {
            uint64_t us = (uint64_t)ran;
            atomic_fetch_add_explicit(&fn->dur_le[im__met_bucket(us)], 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&fn->dur_sum_us, us, memory_order_relaxed);
        }
    }
    im__task_event(t->fn->srv, t->id, t->fn->ep->name, atomic_load(&t->state));
    s->ops->finished(s, t);
}

/* Ends a task that is still QUEUED as CANCELLED (a DELETE, a terminate, a caller that left, a
 * shutdown): its arguments are freed and its slot given back at once; the worker that pops
 * its job skips it. A RUNNING task is asked to stop instead: its handler sees
 * im_call_cancelled() and the task ends CANCELLED when the handler returns. Returns the state
 * the task had. Any thread. */
static int im__task_cancel(im__task *t, const char *why)
{
    im__taskmem mem = {0};
    char *e = strdup(why);
    int st, ended = 0;
    im__task_lock(t);
    st = t->state;
    if (st == IM_TASK_QUEUED) {
        t->state = IM_TASK_CANCELLED;
        t->finished_ms = im__wall_ms();
        t->status = 409;
        free(t->error);
        t->error = e;
        e = NULL;
        if (t->run) {
            im_job_cancel(&t->run->job);
            im__taskrun_take(t->run, &mem);
        }
        im__task_wake(t);
        ended = 1;
    } else if (st == IM_TASK_RUNNING && !t->is_cancel) {
        t->is_cancel = 1;
        free(t->error); /* the reason, shown once it has ended */
        t->error = e;
        e = NULL;
        if (t->run) {
            im_job_cancel(&t->run->job);
            im__proc_wake(t->run); /* a process task ends now: its worker is killed */
        }
    }
    im__task_unlock(t);
    free(e);
    im__taskmem_free(&mem);
    if (ended) im__task_stored_end(t);
    return st;
}

/* ---- task runs: from a per-loop pool when small (no lock: allocated and freed on the
 * submitting loop) ---- */

static im__taskrun *im__run_new(im_loop *L, size_t structs)
{
    size_t size = sizeof(im__taskrun) + (structs > IM__RUN_SMALL ? structs : IM__RUN_SMALL);
    im__taskrun *r = NULL;
    if (structs <= IM__RUN_SMALL && (r = L->run_pool)) {
        L->run_pool = r->next_free;
        L->run_pooled--;
    } else if (!(r = malloc(size))) {
        return NULL;
    }
    memset(r, 0, sizeof *r + structs);
    r->size = (uint32_t)size;
    return r;
}

static void im__run_free(im_loop *L, im__taskrun *r)
{
    if (r->size == sizeof(im__taskrun) + IM__RUN_SMALL && L->run_pooled < 256) {
        r->next_free = L->run_pool;
        L->run_pool = r;
        L->run_pooled++;
    } else {
        free(r);
    }
}

/* ---- the job on the executor ---- */

/* Starts a task's run on its executor's thread: RUNNING. 0 when it ended while queued (its
 * memory is gone already: nothing to run). */
static int im__task_begin(im__taskrun *r)
{
    im__task *t = r->task;
    im__task_lock(t);
    if (t->state != IM_TASK_QUEUED) {
        im__task_unlock(t);
        return 0;
    }
    t->state = IM_TASK_RUNNING;
    t->started_ms = im__wall_ms();
    r->started_ns = im__mono_ns();
    r->started_mono = r->started_ns / 1000000u;
    im__task_unlock(t);
    im__task_event(t->fn->srv, t->id, t->fn->ep->name, IM_TASK_RUNNING);
    atomic_fetch_add_explicit(&t->fn->running, 1, memory_order_relaxed);
    return 1;
}

/* Ends a task that im__task_begin started, with what its call produced: http 200 and the
 * answer's bytes (JSON, or a .npy image when is_npy), or a failure's status and error text.
 * body, when not NULL, is the answer in a malloc'ed buffer of exactly len bytes the task may
 * take; else ans is copied. error is owned (NULL: the status's reason). A task that ended
 * meanwhile (its time limit, a cancel while it ran) keeps that end: the answer is dropped. */
static void im__task_end(im__taskrun *r, int http, const char *ans, size_t len, char *body,
                         int is_npy, char *error)
{
    im__task *t = r->task;
    im__epstate *fn = t->fn;
    im__taskmem mem = {0};
    int ended = 0;
    if (http != 200 && !error) error = strdup(im__reason(http));
    atomic_fetch_sub_explicit(&fn->running, 1, memory_order_relaxed);
    uint64_t ran_us = (im__mono_ns() - r->started_ns) / 1000u;
    im__task_lock(t);
    t->run_us = ran_us ? ran_us : 1;
    if (t->state == IM_TASK_RUNNING) { /* not past its time limit meanwhile */
        if (t->is_cancel) {
            t->state = IM_TASK_CANCELLED; /* asked while it ran: its answer is dropped */
            t->status = 409;
        } else {
            t->state = http == 200 ? IM_TASK_SUCCEEDED : IM_TASK_FAILED;
            t->status = (int16_t)http;
            if (http == 200) t->fraction = 1;
            if (http == 200) { /* a success's own status and headers (im_call_status, _header) */
                t->ok_status = r->call.ok_status;
                if (r->call.hdrs_len && (t->hdrs = malloc(r->call.hdrs_len + 1))) {
                    memcpy(t->hdrs, r->call.hdrs, r->call.hdrs_len);
                    t->hdrs[r->call.hdrs_len] = 0;
                }
            }
            t->is_npy = (uint8_t)is_npy;
            if (http == 200 && !body && ans && len <= sizeof t->small) { /* kept in the task */
                memcpy(t->small, ans, len);
                t->body = t->small;
            } else if (http == 200 && body) { /* exactly its size */
                t->body = body;
                body = NULL;
            } else if (http == 200 && ans && (t->body = malloc(len))) {
                memcpy(t->body, ans, len);
            }
            t->body_len = t->body ? (uint32_t)len : 0;
            if (http != 200) {
                free(t->error);
                t->error = error;
                error = NULL;
            }
        }
        t->finished_ms = im__wall_ms();
        im__task_wake(t);
        ended = 1;
    }
    im__taskrun_take(r, &mem);
    im__task_unlock(t);
    free(body);
    free(error);
    im__taskmem_free(&mem);
    if (ended) im__task_stored_end(t);
}

/* Writes a call's answer as a task keeps it: into w (its JSON), or, for an array result, a
 * malloc'ed .npy image in *img. Returns the HTTP status (as im__call_answer). */
static int im__call_keep(const im_endpoint *ep, im_call *call, int status, const void *out,
                         im_jw *w, char **img, size_t *img_len)
{
    *img = NULL;
    *img_len = 0;
    if (status == 0 && ep->result_ndarray) { /* kept as .npy: bytes, one copy */
        if ((*img = im__npy_image(out, img_len))) return 200;
        return im_call_fail(call, 500, "the array result could not be kept (out of memory, or "
                            "over 4 GiB)");
    }
    int http = im__call_answer(ep, call, status, out, w);
    if (im_jw_error(w)) return im_call_fail(call, 500, "the result could not be written as JSON");
    return http;
}

static void im__task_job_run(im_job *j) /* on a worker */
{
    im__taskrun *r = (im__taskrun *)(void *)j;
    const im_endpoint *ep = r->task->fn->ep;
    if (!im__task_begin(r)) return;
    im_log_set_request_id(r->task->request_id); /* its lines carry the request's id */
    int status = ep->call(&r->call, r->args, r->out);
    im_log_set_request_id(NULL);
    im__call_end(&r->call);
    status = im__nd_result(ep, &r->call, status, r->out);
    /* the answer is written here, while the arguments and the arena it may point into live */
    char small[256], *img, *body = NULL;
    size_t len;
    im_jw w;
    im_jw_init(&w, small, sizeof small);
    int http = im__call_keep(ep, &r->call, status, r->out, &w, &img, &len);
    if (img) {
        body = img;
    } else if (http == 200 && w.len > sizeof r->task->small && w.growable) {
        if ((body = realloc(w.buf, w.len))) w.buf = NULL; /* the writer's heap buffer, taken */
    }
    if (!img) len = w.len;
    im__task_end(r, http, img ? img : w.buf, len, body, img != NULL,
                 http != 200 && r->call.detail ? strdup(r->call.detail) : NULL);
    im_jw_free(&w);
}

static void im__task_job_done(im_job *j, int status) /* on the submitting loop */
{
    im__taskrun *r = (im__taskrun *)(void *)j;
    im__task *t = r->task;
    im__taskmem mem = {0};
    im__ltimer_stop(r->loop, &r->deadline);
    if (status == -ECANCELED) /* never ran: shutdown (or a cancel, which ended it already) */
        im__task_cancel(t, "the server shut down before the task started");
    im__task_lock(t);
    im__taskrun_take(r, &mem); /* (released already in every path; kept for safety) */
    t->run = NULL;
    im__task_unlock(t);
    im__taskmem_free(&mem);
    im__run_free(r->loop, r);
    im__task_unref(t); /* the run's reference */
}

/* The time limit, on the submitting loop: counted from the task's start, so a task still
 * queued is looked at again later. Past it the task is TIMEOUT at once (waiters answered 504)
 * and its handler sees im_call_cancelled(); the handler's answer is dropped when it comes. */
static void im__task_deadline(im__ltimer *tm)
{
    im__taskrun *r = (im__taskrun *)(void *)((char *)tm - offsetof(im__taskrun, deadline));
    im__task *t = r->task;
    uint32_t limit = r->limit_ms; /* its own: a later change of the function's is not its */
    int ended = 0;
    if (limit == 0) return;
    im__task_lock(t);
    if (t->state == IM_TASK_QUEUED) {
        im__task_unlock(t);
        im__ltimer_start(r->loop, tm, limit);
        return;
    }
    if (t->state == IM_TASK_RUNNING) {
        uint64_t now = im__mono_ns() / 1000000u, due = r->started_mono + limit;
        if (now < due) {
            im__task_unlock(t);
            im__ltimer_start(r->loop, tm, due - now);
            return;
        }
        char msg[96];
        snprintf(msg, sizeof msg, "the task ran past its time limit of %u ms", limit);
        t->state = IM_TASK_TIMEOUT;
        t->status = 504;
        t->finished_ms = im__wall_ms();
        free(t->error);
        t->error = strdup(msg);
        im_job_cancel(&r->job);
        im__proc_wake(r);
        im__task_wake(t);
        ended = 1;
    }
    im__task_unlock(t);
    if (ended) im__task_stored_end(t);
}

/* ---- waiters: requests that wait for a task's end, and event streams ---- */

static int im__events_write(im__waiter *w);

static void im__waiter_free(im__waiter *w)
{
    im__task_unref(w->task);
    free(w);
}

/* Lets a waiter go: off its task's list, then freed now, or by the wake-up already on its
 * way (which finds it gone). Loop thread. */
static void im__waiter_drop(im__waiter *w)
{
    im__task_unlisten(w);
    if (w->kind != IM__W_SYNC) im__ltimer_stop(w->loop, &w->keepalive);
    if (atomic_load_explicit(&w->posted, memory_order_acquire)) w->is_gone = 1;
    else im__waiter_free(w);
}

/* A waiter's wake-up, on its loop. */
static void im__waiter_run(im_post *p)
{
    im__waiter *w = (im__waiter *)(void *)p;
    atomic_store_explicit(&w->posted, 0, memory_order_release); /* events after this post anew */
    if (w->is_gone) {
        im__waiter_free(w);
        return;
    }
    if (w->kind == IM__W_EVENTS) {
        if (!w->is_blocked) (void)im__events_write(w);
        return;
    }
    im__task *t = w->task;
    im__task_lock(t);
    int st = t->state;
    im__task_unlock(t);
    if (!im__task_terminal_state(st)) return;
    w->ctx->on_close = NULL; /* its answer is on its way */
    im__reply_task_end(w->ctx, t);
    im__waiter_drop(w);
}

/* A long poll (GET /tasks/{id}/result with Prefer: wait=N) that ran out: still 202. */
static void im__result_wait_over(im__ltimer *tm)
{
    im__waiter *w = (im__waiter *)(void *)((char *)tm - offsetof(im__waiter, keepalive));
    im__task *t = w->task;
    im__task_lock(t);
    int st = t->state;
    im__task_unlock(t);
    w->ctx->on_close = NULL;
    im_res_header(w->ctx, "Retry-After", "1");
    im__reply_task_error(w->ctx, 202, "the task has not ended yet: ask again", st);
    im__waiter_drop(w);
}

static void im__result_gone(im_ctx *c, void *arg)
{
    im_reply(c, 500, NULL, NULL, 0); /* finishes the context (-EPIPE): the task goes on */
    im__waiter_drop(arg);
}

/* Waits up to seconds for t to end, then answers c as GET /tasks/{id}/result does (t: the
 * caller's reference, kept by the waiter). 0, or -1 when it could not (answer at once). */
static int im__result_wait(im_ctx *c, im__task *t, long seconds)
{
    im__waiter *w = calloc(1, sizeof *w);
    if (!w || im_ctx_defer(c, im__result_gone, w)) {
        free(w);
        return -1;
    }
    w->post.fn = im__waiter_run;
    w->ctx = c;
    w->loop = c->loop;
    w->kind = IM__W_RESULT;
    im__ltimer_init(&w->keepalive, im__result_wait_over);
    im__task_listen(t, w);
    im__task_unref(t);
    im__ltimer_start(w->loop, &w->keepalive, (uint64_t)(seconds > 60 ? 60 : seconds) * 1000);
    im__task_lock(t); /* it may have ended since the caller looked: then at once */
    int st = t->state;
    im__task_unlock(t);
    if (im__task_terminal_state(st) && !atomic_exchange(&w->posted, 1)) im_loop_post(w->loop, &w->post);
    return 0;
}

/* The client of a sync call left: nobody can read the result, so the task is cancelled. */
static void im__sync_gone(im_ctx *c, void *arg)
{
    im__waiter *w = arg;
    im__task_cancel(w->task, "cancelled: the client waiting for it disconnected");
    im_reply(c, 500, NULL, NULL, 0); /* finishes the context (-EPIPE) */
    im__waiter_drop(w);
}

/* ---- event streams (GET /tasks/{id}/events) ---- */

#define IM__SSE_KEEPALIVE_MS 15000

static void im__events_end(im__waiter *w)
{
    w->ctx->on_close = NULL;
    im_stream_end(w->ctx);
    im__waiter_drop(w);
}

static void im__events_drained(im_ctx *c, void *arg)
{
    im__waiter *w = arg;
    (void)c;
    w->is_blocked = 0;
    (void)im__events_write(w);
}

/* Queues text on the stream; 0, or -1 when the output is full (the stream waits for it to
 * drain, then writes the latest state: what a slow reader missed is coalesced) or gone. */
static int im__events_put(im__waiter *w, const char *text, size_t n)
{
    int rc = im_stream_write(w->ctx, text, n);
    if (rc == -EAGAIN) {
        w->is_blocked = 1;
        im_stream_on_drain(w->ctx, im__events_drained, w);
    }
    return rc ? -1 : 0;
}

/* Writes what the reader has not seen: the latest progress, then, once the task has ended,
 * one state event with the task object, and the end of the stream. Returns 1 when the stream
 * has ended (w is gone then), 0 otherwise. */
static int im__events_write(im__waiter *w)
{
    im__task *t = w->task;
    char buf[6400]; /* a 1 KiB message escaped (6 bytes a character at worst), with room */
    im_jw jw;
    im__task_lock(t);
    uint32_t seq = t->progress_seq;
    int st = t->state;
    size_t n = 0;
    if (seq != w->seen_seq) {
        n = (size_t)snprintf(buf, sizeof buf, "event: progress\ndata: ");
        im_jw_init(&jw, buf + n, sizeof buf - n - 3);
        im_jw_obj(&jw);
        im_jw_key(&jw, "fraction");
        im_jw_double(&jw, t->fraction);
        im_jw_key(&jw, "message");
        if (t->message) im_jw_str(&jw, t->message);
        else im_jw_null(&jw);
        im_jw_obj_end(&jw);
        n = im_jw_error(&jw) ? 0 : n + jw.len;
    }
    im__task_unlock(t);
    if (n) {
        memcpy(buf + n, "\n\n", 2);
        if (im__events_put(w, buf, n + 2) && w->is_blocked) return 0; /* again once drained */
        w->seen_seq = seq; /* written, or not writable: the state event comes next anyway */
    }
    if (!im__task_terminal_state(st)) return 0;
    im_jw_init(&jw, NULL, 0);
    im__task_json(&jw, t, 1); /* terminal: no longer changes */
    char *ev = im_jw_error(&jw) ? NULL : malloc(jw.len + 32);
    if (ev) {
        int k = snprintf(ev, 32, "event: state\ndata: ");
        memcpy(ev + k, jw.buf, jw.len);
        memcpy(ev + k + jw.len, "\n\n", 2);
        int rc = im__events_put(w, ev, (size_t)k + jw.len + 2);
        free(ev);
        if (rc && w->is_blocked) { /* written whole once the output drains */
            im_jw_free(&jw);
            return 0;
        }
    }
    im_jw_free(&jw);
    im__events_end(w);
    return 1;
}

static void im__events_keepalive(im__ltimer *tm)
{
    im__waiter *w = (im__waiter *)(void *)((char *)tm - offsetof(im__waiter, keepalive));
    if (!w->is_blocked) im__events_put(w, ": keep-alive\n\n", 14);
    im__ltimer_start(w->loop, tm, IM__SSE_KEEPALIVE_MS);
}

static void im__events_gone(im_ctx *c, void *arg)
{
    (void)c;
    im__events_end(arg); /* the stream ends with -EPIPE: nobody reads it */
}

/* Streams t's events to c (t: the caller's reference, kept by the stream). */
static void im__events_start(im_ctx *c, im__task *t)
{
    im__waiter *w = calloc(1, sizeof *w);
    im_res_header(c, "Cache-Control", "no-cache");
    if (!w || im_stream_begin(c, 200, "text/event-stream")) {
        free(w);
        im__task_unref(t);
        if (!c->is_done) im_reply_error(c, 503, "out of memory");
        else im_stream_end(c);
        return;
    }
    w->post.fn = im__waiter_run;
    w->ctx = c;
    w->loop = c->loop;
    w->kind = IM__W_EVENTS;
    im__ltimer_init(&w->keepalive, im__events_keepalive);
    c->on_close = im__events_gone;
    c->close_arg = w;
    im__task_listen(t, w);
    im__task_unref(t); /* the waiter holds its own */
    /* what there is already: the latest progress; for a finished task its state, and the end */
    if (im__events_write(w) == 0) im__ltimer_start(w->loop, &w->keepalive, IM__SSE_KEEPALIVE_MS);
}

/* ---- running an endpoint ---- */

/* 1: the request asks for an async answer (Prefer: respond-async), 0: a sync one
 * (respond-sync), -1: it does not say (RFC 7240: a comma-separated list, any case). With
 * wait not NULL, *wait is the seconds of a wait=N preference (-1 when none). */
static int im__prefer_wait(const im_ctx *c, long *wait)
{
    int want = -1;
    if (wait) *wait = -1;
    for (unsigned i = 0; i < c->req.num_headers; i++) {
        if (!im_str_ieq(c->req.headers[i].name, "prefer")) continue;
        im_str v = c->req.headers[i].value;
        for (size_t k = 0; k < v.len;) {
            while (k < v.len && (v.ptr[k] == ' ' || v.ptr[k] == '\t' || v.ptr[k] == ',')) k++;
            size_t s = k;
            while (k < v.len && v.ptr[k] != ',' && v.ptr[k] != ';' && v.ptr[k] != '=' &&
                   v.ptr[k] != ' ' && v.ptr[k] != '\t')
                k++;
            im_str tok = {v.ptr + s, k - s};
            if (im_str_ieq(tok, "respond-async")) want = 1;
            else if (im_str_ieq(tok, "respond-sync")) want = 0;
            else if (wait && im_str_ieq(tok, "wait")) { /* wait=<delta-seconds> */
                while (k < v.len && (v.ptr[k] == ' ' || v.ptr[k] == '=')) k++;
                long n = 0;
                size_t d = k;
                while (k < v.len && v.ptr[k] >= '0' && v.ptr[k] <= '9' && n < 1000000)
                    n = n * 10 + (v.ptr[k++] - '0');
                if (k > d) *wait = n;
            }
            while (k < v.len && v.ptr[k] != ',') k++;
        }
    }
    return want;
}

static int im__prefer(const im_ctx *c) { return im__prefer_wait(c, NULL); }

/* Seconds a refused caller should wait before trying again: the executor's estimate of the
 * wait of a job queued now, in whole seconds, at least 1. */
static void im__retry_after(im_ctx *c, im_executor *ex)
{
    char v[24];
    uint64_t ms = ex ? im_executor_wait_estimate_ms(ex) : 0;
    snprintf(v, sizeof v, "%llu", (unsigned long long)(ms / 1000 + 1));
    im_res_header(c, "Retry-After", v);
}

static void im__ep_inline(im_ctx *c, im__epstate *st)
{
    const im_endpoint *ep = st->ep;
    void *args = im__arena_alloc(&c->arena, ep->args_size ? ep->args_size : 1);
    void *out = im__arena_alloc(&c->arena, ep->out_size ? ep->out_size : 1);
    if (!args || !out) {
        im_reply_error(c, 503, "out of memory");
        return;
    }
    memset(args, 0, ep->args_size);
    memset(out, 0, ep->out_size);
    if (im__ep_bind(c, ep, args)) return;
    im_call call = {c, ep, &c->arena, 0, NULL, NULL, st, NULL, NULL, 0, NULL, 0, NULL};
    c->is_inline_call = 1; /* the call and its views end with this function */
    int status = ep->call(&call, args, out);
    c->is_inline_call = 0;
    im__call_end(&call);
    status = im__nd_result(ep, &call, status, out);
    if (c->is_done) return;
    if (status == 0 && ep->result_ndarray) im__reply_ndarray(c, ep, out, NULL, 0);
    else im__ep_answer(c, ep, &call, status, out);
}

/* A call refused before it became a task (no memory, a 4xx from the binder): its slot and
 * what was allocated for it given back. r may be NULL. */
static void im__call_refused(im_loop *L, im__epstate *st, im__task *t, im__taskrun *r)
{
    atomic_fetch_sub_explicit(&st->unfinished, 1, memory_order_relaxed);
    free(t);
    if (!r) return;
    free(r->owned); /* a process task's message (otherwise still the context's) */
    if (r->pfd >= 0) close(r->pfd);
    im__run_free(L, r);
}

/* A call of a pool, serial or process endpoint: bound on the loop, then a task. */
static void im__ep_task(im_ctx *c, im__epstate *st)
{
    const im_endpoint *ep = st->ep;
    im_server *s = c->loop->srv;
    int proc = ep->mode == IM_MODE_PROCESS;
    const char *why = NULL;
    im_executor *ex = proc ? im__procs_executor(s, &why) : st->ex ? st->ex
                      : ep->mode == IM_MODE_SERIAL ? s->serial : s->primary;
    if (!ex) {
        im_reply_error(c, 503, why ? why : "this function's executor is not running");
        return;
    }
    int prefer = im__prefer(c), async = prefer >= 0 ? prefer : ep->response == IM_RESPOND_ASYNC;
    /* the function's limit first: refused at once, nothing allocated */
    unsigned n = atomic_fetch_add_explicit(&st->unfinished, 1, memory_order_relaxed);
    unsigned limit = atomic_load_explicit(&st->max_conc, memory_order_relaxed);
    if (limit && n >= limit) {
        char msg[160];
        atomic_fetch_sub_explicit(&st->unfinished, 1, memory_order_relaxed);
        snprintf(msg, sizeof msg, "%s has %u unfinished tasks, its max_concurrency: try again "
                 "later", ep->name, limit);
        im__retry_after(c, ex);
        im_reply_error(c, 429, msg);
        return;
    }
    im_loop *L = c->loop;
    size_t as = (ep->args_size + 15) & ~(size_t)15, os = (ep->out_size + 15) & ~(size_t)15;
    im__task *t = calloc(1, sizeof *t);
    im__taskrun *r = im__run_new(L, as + os); /* the argument and result structs inside it */
    /* the request is copied first, so that what the binder points at outlives the handler;
     * a process task's copy is the message its worker gets (taken before the binder decodes
     * strings in place), and the binding here only validates */
    if (r) {
        r->pfd = -1;
        r->wake_fd = -1;
    }
    if (!t || !r || im__task_id(L, t->id) ||
        (proc ? im__proc_image(c, st, r) : im_ctx_defer(c, NULL, NULL))) {
        im__call_refused(L, st, t, r);
        im_reply_error(c, 503, "out of memory");
        return;
    }
    r->loop = L;
    r->args = r->mem;
    r->out = r->mem + as;
    if (im__ep_bind(c, ep, r->args)) { /* answered 4xx */
        im__call_refused(L, st, t, r);
        return;
    }
    /* the task takes the request's bytes (its headers with them: what the answer needs of
     * them is read now), and the arena if the binder used it (arrays, decoded strings): then
     * the context may answer at once */
    if (ep->result_ndarray) {
        c->is_npy_accept = im__accepts_npy(c) != 0;
        c->is_npy_known = 1;
    }
    if (proc && im__ctx_defer(c, 0, NULL, NULL)) { /* its bytes stay behind: only the message is kept */
        im__call_refused(L, st, t, r);
        im_reply_error(c, 503, "the request cannot wait for its task");
        return;
    }
    if (!proc) {
        r->owned = c->owned;
        c->owned = NULL;
    }
    for (im__ablock *b = proc ? NULL : c->arena.head; b; b = b->next)
        if (b->used) {
            r->arena = c->arena;
            c->arena.head = NULL;
            c->arena.bytes = 0;
            break;
        }
    /* what it holds until it ends, within the server-wide budget */
    r->held = sizeof *t + r->size + r->arena.bytes +
              (proc ? r->held /* the message's bytes (im__proc_image) */
                    : c->raw_len + c->req.num_headers * sizeof(im_header));
    size_t before = atomic_fetch_add_explicit(&s->queued_bytes, r->held, memory_order_relaxed);
    if (before + r->held > L->o.max_queued_bytes) {
        char msg[200];
        int never = r->held > L->o.max_queued_bytes; /* alone over it: retrying cannot help */
        im__taskmem mem = {r->owned, r->arena.head, r->held, st, r->pfd};
        im__taskmem_free(&mem);
        snprintf(msg, sizeof msg, never ? "this call needs %zu bytes of memory while it waits, "
                 "more than the server allows for all queued work (max_queued_bytes %zu)"
                 : "the queued work holds the memory the server allows for it (%zu more "
                 "bytes needed, max_queued_bytes %zu); try again later", r->held,
                 L->o.max_queued_bytes);
        free(t);
        im__run_free(L, r);
        if (!never) im__retry_after(c, ex);
        im_reply_error(c, never ? 413 : 429, msg);
        return;
    }
    atomic_init(&t->refs, 1); /* the run's */
    atomic_init(&t->lock, 0);
    t->fn = st;
    t->state = IM_TASK_QUEUED;
    t->priority = ep->priority;
    t->created_ms = L->wall_ms; /* read when this iteration woke: no clock read per task */
    t->run = r;
    r->task = t;
    im__task_id_hex(t->id, r->idhex);
    memcpy(t->request_id, c->rid, (size_t)c->rid_len + 1);
    memcpy(c->task_id, r->idhex, sizeof c->task_id);
    r->job.run = proc ? im__proc_job_run : im__task_job_run;
    r->job.done = im__task_job_done;
    r->job.progress = im__task_progress;
    r->call.ep = ep;
    r->call.arena = &r->arena;
    r->call.run = r;
    r->call.st = st;
    im__ltimer_init(&r->deadline, im__task_deadline);
    im__store *store = s->store;
    im__waiter *w = NULL;
    int rc = 0;
    if (!async) { /* the caller waits: listed before the job can end */
        if (!(w = calloc(1, sizeof *w))) {
            rc = -ENOMEM;
        } else {
            w->post.fn = im__waiter_run;
            w->ctx = c;
            w->loop = c->loop;
            w->kind = IM__W_SYNC;
            im__task_listen(t, w);
        }
    }
    /* told before the job is handed over: a worker may report it running at once */
    if (rc == 0) im__task_event(s, t->id, ep->name, IM_TASK_QUEUED);
    if (rc == 0) rc = im_executor_submit_job(ex, ep->priority, &r->job);
    if (rc) { /* refused: nobody else knows the task, it goes as it came */
        im__taskmem mem = {0};
        if (w) im__waiter_drop(w);
        im__taskrun_take(r, &mem);
        im__taskmem_free(&mem);
        im__run_free(L, r);
        im__task_unref(t);
        if (rc == -EAGAIN) {
            im__retry_after(c, ex);
            im_reply_error(c, 429, "the work queue is full: try again later");
        } else if (rc == -ESHUTDOWN) {
            im_reply_error(c, 503, "the server is shutting down");
        } else if (rc == -ENOMEM) {
            im_reply_error(c, 503, "out of memory");
        } else { /* a table the server cannot run: say what, not "shutting down" */
            im_log(IM_LOG_ERROR, "endpoint %s: the executor refused its job: %s", ep->name,
                   strerror(-rc));
            im_reply_error(c, 500, "the executor refused this call's job");
        }
        return;
    }
    /* from here the job may already have run and ended (a worker took it): t is kept by the
     * run's reference until the job's completion comes back to this loop */
    if (store->ops->add(store, t)) { /* nobody could look it up: it must not run */
        im__task_cancel(t, "out of memory");
        if (w) {
            im__waiter_drop(w);
            c->on_close = NULL;
        }
        im_reply_error(c, 503, "out of memory");
        return;
    }
    im__task_lock(t);
    int st_now = t->state;
    im__task_unlock(t);
    if (im__task_terminal_state(st_now)) im__task_stored_end(t); /* ended before it was stored */
    r->limit_ms = atomic_load_explicit(&st->timeout_ms, memory_order_relaxed);
    if (r->limit_ms) im__ltimer_start(c->loop, &r->deadline, r->limit_ms);
    if (w) {
        c->on_close = im__sync_gone;
        c->close_arg = w;
        return; /* answered when the task ends (im__waiter_run) */
    }
    char loc[48], body[256];
    im_jw jw;
    snprintf(loc, sizeof loc, "/tasks/%s", r->idhex);
    im_jw_init(&jw, body, sizeof body);
    im_jw_obj(&jw);
    im_jw_key(&jw, "task_id");
    im_jw_str(&jw, r->idhex);
    im_jw_key(&jw, "state");
    im_jw_str(&jw, "QUEUED"); /* as accepted: a worker may have taken it since */
    im_jw_key(&jw, "function");
    im_jw_str(&jw, ep->name);
    im_jw_obj_end(&jw);
    im_res_header(c, "Location", loc);
    im_res_header(c, "Preference-Applied", "respond-async");
    im__reply_jw(c, 202, &jw);
}

static void im__ep_handler(im_ctx *c)
{
    im__epstate *st = im_ctx_udata(c);
    const im_endpoint *ep = st->ep;
    if (ep->mode == IM_MODE_INLINE) im__ep_inline(c, st);
    else if (c->loop->srv->cluster && ep->mode != IM_MODE_PROCESS) im__cl_submit(c, st);
    else im__ep_task(c, st);
}
