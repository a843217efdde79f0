/* lab.c — the lab module, built as an ImmersiveAPI module is: an init hook that reads its
 * [lab] table and makes a private executor, endpoints that run on it (.executor), on the
 * serial executor, with a model loaded once and shared, and with a temp directory per task;
 * a fini hook. The config tests run against it. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "immersive.h"
#include "lab.gen.h"

IM_MODULE(lab, "A module with its own config table, executor, shared model and temp files",
          .init = lab_init, .fini = lab_fini)

typedef struct lab_state {
    char greeting[128]; /* from [lab] at start */
    long model_load_ms;
    atomic_int loads;   /* how many times the model was loaded (once, however many ask) */
} lab_state;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts)) {
    }
}

int lab_init(im_module *m)
{
    lab_state *st = calloc(1, sizeof *st);
    if (!st) return -1;
    const im_toml *t = im_module_table(m);
    const im_toml *g = im_toml_get(t, "greeting");
    snprintf(st->greeting, sizeof st->greeting, "%s", g ? g->u.str.ptr : "hello");
    const im_toml *lm = im_toml_get(t, "model_load_ms");
    st->model_load_ms = lm ? (long)lm->u.i : 0;
    im_module_set_data(m, st);
    const im_toml *w = im_toml_get(t, "gpu_workers");
    im_executor_opts o = {0};
    o.name = "lab-gpu";
    o.threads = w ? (unsigned)w->u.i : 1;
    im_executor *ex = im_executor_new(&o);
    if (!ex) return -1;
    fprintf(stderr, "lab: init (greeting '%s', %u gpu workers)\n", st->greeting, o.threads);
    return im_module_add_executor(m, "gpu", ex);
}

void lab_fini(im_module *m)
{
    lab_state *st = im_module_data(m);
    fprintf(stderr, "lab: fini (model loaded %d times)\n", atomic_load(&st->loads));
    free(st);
}

IM_ENDPOINT(GET, "/v1/lab/greet", .summary = "The greeting of [lab]: as at start and as now")
IM_RESULT(object, "Both greetings")
IM_FIELD(string, at_start, "lab.greeting when the module started")
IM_FIELD(string, now, "lab.greeting in the configuration now (it changes live)")
int lab_greet(im_call *call, const lab_greet_args *in, lab_greet_result *out)
{
    (void)in;
    im_module *m = im_call_module(call);
    lab_state *st = im_module_data(m);
    out->at_start = im_str_from(st->greeting);
    im_config *cfg = im_module_config(m);
    out->now = im_str_from(cfg ? im_config_str(cfg, "lab.greeting", "") : "");
    return 0;
}

IM_ENDPOINT(POST, "/v1/lab/gpu", .summary = "Runs on the module's own executor",
            .executor = "gpu")
IM_ARG(int64, ms, "How long to work (ms)", .min = 0, .max = 10000, .default = 0)
IM_RESULT(string, "The name of the thread it ran on")
int gpu(im_call *call, const gpu_args *in, gpu_result *out)
{
    char *name = im_call_alloc(call, 16);
    if (!name) return im_call_fail(call, 503, "out of memory");
    for (long left = (long)in->ms; left > 0 && !im_call_cancelled(call); left -= 10)
        sleep_ms(left < 10 ? left : 10); /* "work" that stops when its task is cancelled */
    pthread_getname_np(pthread_self(), name, 16);
    out->result = im_str_from(name);
    return 0;
}

IM_ENDPOINT(POST, "/v1/lab/one_at_a_time", .summary = "Runs on the serial executor",
            .mode = IM_SERIAL)
IM_RESULT(string, "The name of the thread it ran on")
int one_at_a_time(im_call *call, const one_at_a_time_args *in, one_at_a_time_result *out)
{
    (void)in;
    char *name = im_call_alloc(call, 16);
    if (!name) return im_call_fail(call, 503, "out of memory");
    pthread_getname_np(pthread_self(), name, 16);
    out->result = im_str_from(name);
    return 0;
}

static void *load_model(im_module *m)
{
    lab_state *st = im_module_data(m);
    atomic_fetch_add(&st->loads, 1);
    sleep_ms(st->model_load_ms); /* a slow load: every call that comes meanwhile waits */
    double *weights = malloc(1000 * sizeof *weights);
    for (int i = 0; weights && i < 1000; i++) weights[i] = i * 0.5;
    return weights;
}

IM_ENDPOINT(POST, "/v1/lab/predict", .summary = "Uses the model, loaded once and shared",
            .mode = IM_POOL)
IM_ARG(int32, i, "Which weight", .min = 0, .max = 999)
IM_RESULT(object, "The weight and how often the model was loaded")
IM_FIELD(double, weight, "The i-th weight")
IM_FIELD(int64, loads, "Loads of the model so far (1)")
int predict(im_call *call, const predict_args *in, predict_result *out)
{
    const double *w = im_module_resource(call, "model", load_model, free);
    if (!w) return im_call_fail(call, 503, "the model could not be loaded");
    lab_state *st = im_module_data(im_call_module(call));
    out->weight = w[in->i];
    out->loads = atomic_load(&st->loads);
    return 0;
}

IM_ENDPOINT(POST, "/v1/lab/scratch", .summary = "Writes a file in the task's temp directory",
            .mode = IM_POOL)
IM_ARG(string, text, "What to write", .max_length = 1000)
IM_RESULT(object, "Where it was written")
IM_FIELD(string, dir, "The task's temp directory (gone once the task ended)")
IM_FIELD(string, cache, "The module's cache directory (kept)")
int scratch(im_call *call, const scratch_args *in, scratch_result *out)
{
    const char *dir = im_module_dir(call, IM_DIR_TEMP);
    const char *cache = im_module_dir(call, IM_DIR_CACHE);
    if (!dir || !cache) return im_call_fail(call, 500, "no temp directory");
    size_t n = strlen(dir) + 16;
    char *path = im_call_alloc(call, n);
    snprintf(path, n, "%s/note.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) return im_call_fail(call, 500, "cannot write %s", path);
    fwrite(in->text.ptr, 1, in->text.len, f);
    fclose(f);
    char *d = im_call_alloc(call, strlen(dir) + 1), *c = im_call_alloc(call, strlen(cache) + 1);
    strcpy(d, dir);
    strcpy(c, cache);
    out->dir = im_str_from(d);
    out->cache = im_str_from(c);
    return 0;
}
