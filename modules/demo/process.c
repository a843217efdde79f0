/* process.c — the demo module's process-mode functions: each runs in a worker process, so a
 * crash, a hang or a leak of one call hurts nothing else; the tests and outside checks crash
 * them, spin them past their time limit, cancel them and compare their pids with the
 * server's. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include "immersive.h"
#include "demo.gen.h"

IM_ENDPOINT(POST, "/v1/demo/crash", .summary = "Crash the worker process, in the way asked",
            .description = "segv writes to a page mapped without access, abort calls abort(), exit "
                           "calls exit(3), bus reads past the end of a mapped file, fpe raises "
                           "SIGFPE. The task "
                           "is FAILED with the cause; the server and other tasks go on.",
            .mode = IM_PROCESS)
IM_ARG(enum, how, "How to crash", .values = {"segv", "abort", "exit", "bus", "fpe"})
IM_RESULT(bool, "never answered")
int crash(im_call *call, const crash_args *in, crash_result *out)
{
    (void)call;
    (void)out;
    /* real faults, not undefined behaviour a sanitizer would report first: a store to a page
     * that forbids it, a read past the end of a file mapped longer than the file */
    if (in->how == 0) {
        volatile char *p = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) p[0] = 1;
    } else if (in->how == 1) {
        abort();
    } else if (in->how == 2) {
        exit(3);
    } else if (in->how == 3) {
        FILE *f = tmpfile();
        volatile char *p = f ? mmap(NULL, 4096, PROT_READ, MAP_SHARED, fileno(f), 0) : MAP_FAILED;
        if (p != MAP_FAILED) (void)p[0];
    } else {
        raise(SIGFPE); /* an integer division by zero is undefined behaviour in C */
    }
    raise(in->how == 3 ? SIGBUS : SIGSEGV); /* where the above did not end the process */
    return 0;
}

IM_ENDPOINT(POST, "/v1/demo/spin", .summary = "Busy-loop, never looking at cancellation",
            .description = "Within a time limit of 1 s: past it the worker is killed and the task "
                           "is TIMEOUT.",
            .mode = IM_PROCESS, .timeout_ms = 1000)
IM_ARG(double, seconds, "How long to spin", .min = 0, .max = 60)
IM_RESULT(int64, "Loop iterations done")
int spin(im_call *call, const spin_args *in, spin_result *out)
{
    (void)call;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    volatile int64_t n = 0;
    for (;;) {
        for (int i = 0; i < 100000; i++) n = n + 1;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9 >= in->seconds)
            break;
    }
    out->result = n;
    return 0;
}

IM_ENDPOINT(POST, "/v1/demo/pid", .summary = "The process id of the worker that runs the call",
            .mode = IM_PROCESS)
IM_RESULT(int64, "getpid() in the worker")
int worker_pid(im_call *call, const worker_pid_args *in, worker_pid_result *out)
{
    (void)call;
    (void)in;
    out->result = getpid();
    return 0;
}

IM_ENDPOINT(POST, "/v1/demo/add_process", .summary = "Add two integers, in a worker process",
            .mode = IM_PROCESS)
IM_ARG(int64, x, "A value of X")
IM_ARG(int64, y, "A value of Y")
IM_RESULT(int64, "x + y")
int add_process(im_call *call, const add_process_args *in, add_process_result *out)
{
    if (__builtin_add_overflow(in->x, in->y, &out->result))
        return im_call_fail(call, 400, "x + y does not fit in a 64-bit integer");
    return 0;
}

IM_ENDPOINT(POST, "/v1/demo/steps", .summary = "Work in steps in a worker process, with progress "
            "and an event after each",
            .description = "After each step: progress on the task, and an event demo.step "
                           "(through the IPC hub to the server's bus, which logs it).",
            .mode = IM_PROCESS)
IM_ARG(int32, steps, "How many steps", .min = 1, .max = 100)
IM_ARG(int32, step_ms, "Milliseconds a step takes", .min = 0, .max = 1000, .default = 0)
IM_RESULT(int64, "The worker's process id")
int steps(im_call *call, const steps_args *in, steps_result *out)
{
    im_bus *bus = im_call_bus(call);
    for (int i = 1; i <= in->steps; i++) {
        struct timespec ts = {in->step_ms / 1000, (long)(in->step_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        char msg[64];
        int n = snprintf(msg, sizeof msg, "step %d of %d", i, in->steps);
        im_call_progress(call, (double)i / in->steps, msg);
        n = snprintf(msg, sizeof msg, "{\"step\":%d,\"pid\":%d,\"task\":\"%s\"}", i, (int)getpid(),
                     im_call_task_id(call) ? im_call_task_id(call) : "");
        if (bus) im_notify(bus, "demo.step", msg, (size_t)n);
    }
    out->result = getpid();
    return 0;
}

IM_ENDPOINT(POST, "/v1/demo/alloc", .summary = "Allocate and touch memory in a worker process",
            .description = "Fails cleanly (507) when the worker's address-space limit "
                           "(process.rlimit_as_bytes) refuses it.",
            .mode = IM_PROCESS)
IM_ARG(int32, mib, "Mebibytes to allocate", .min = 1, .max = 65536)
IM_RESULT(int32, "The mebibytes allocated and touched")
int alloc_mem(im_call *call, const alloc_mem_args *in, alloc_mem_result *out)
{
    size_t n = (size_t)in->mib << 20;
    char *p = malloc(n);
    if (!p) return im_call_fail(call, 507, "malloc of %d MiB failed: out of memory", in->mib);
    volatile char *touch = p; /* every page written: the allocation is real (and not elided) */
    for (size_t i = 0; i < n; i += 4096) touch[i] = 1;
    free(p);
    out->result = in->mib;
    return 0;
}

IM_ENDPOINT(POST, "/v1/demo/cwd", .summary = "The worker's working directory, after leaving a "
            "file in it", .description = "A file left in the working directory is removed "
            "after the call: the next call finds the directory empty.", .mode = IM_PROCESS)
IM_ARG(bool, leave_file, "Write a file there first", .default = false)
IM_RESULT(string, "The working directory, then ':' and how many entries it held on entry")
int worker_cwd(im_call *call, const worker_cwd_args *in, worker_cwd_result *out)
{
    char dir[4096];
    if (!getcwd(dir, sizeof dir)) return im_call_fail(call, 500, "getcwd failed");
    int entries = 0;
    DIR *d = opendir(".");
    for (struct dirent *e; d && (e = readdir(d));)
        entries += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d) closedir(d);
    if (in->leave_file) {
        FILE *f = fopen("left-behind.txt", "w");
        if (f) fclose(f);
    }
    const char *named = im_module_dir(call, IM_DIR_TEMP);
    if (!named || strcmp(named, dir)) return im_call_fail(call, 500, "im_module_dir says %s", named ? named : "nothing");
    size_t n = strlen(dir) + 16;
    char *s = im_call_alloc(call, n);
    if (!s) return im_call_fail(call, 503, "out of memory");
    out->result.len = (size_t)snprintf(s, n, "%s:%d", dir, entries);
    out->result.ptr = s;
    return 0;
}

IM_ENDPOINT(GET, "/v1/demo/where/{word}", .summary = "A path and a query parameter, bound in a "
            "worker process", .mode = IM_PROCESS)
IM_ARG(string, word, "From the path", .max_length = 64)
IM_ARG(int32, times, "From the query", .min = 1, .max = 10, .default = 1)
IM_RESULT(string, "word, times times, separated by '-'")
int where(im_call *call, const where_args *in, where_result *out)
{
    size_t n = (in->word.len + 1) * (size_t)in->times + 1;
    char *s = im_call_alloc(call, n);
    if (!s) return im_call_fail(call, 503, "out of memory");
    size_t o = 0;
    for (int32_t i = 0; i < in->times; i++)
        o += (size_t)snprintf(s + o, n - o, "%s%.*s", i ? "-" : "", (int)in->word.len, in->word.ptr);
    out->result.ptr = s;
    out->result.len = o;
    return 0;
}

IM_ENDPOINT(POST, "/v1/demo/note_process", .summary = "Log a line from a worker process",
            .description = "As /v1/demo/note, in a worker process: its lines reach the "
                           "server's log (and its file) with the request's id.",
            .mode = IM_PROCESS)
IM_ARG(string, message, "What the line says", .max_length = 200)
IM_RESULT(string, "The request id the lines carry")
int note_process(im_call *call, const note_process_args *in, note_process_result *out)
{
    IM_TIMED("note_process")
    {
        im_log(IM_LOG_INFO, "note from pid %d: %.*s", (int)getpid(), (int)in->message.len,
               in->message.ptr);
    }
    out->result = im_str_from(im_call_request_id(call));
    return 0;
}
