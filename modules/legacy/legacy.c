/* legacy.c — a module whose code is not thread-safe as a whole (.serial = true): its
 * endpoints run on the serial executor unless one says otherwise. Switch it off with
 * [modules] legacy = false. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>

#include "immersive.h"
#include "legacy.gen.h"

IM_MODULE(legacy, "Code that must not run twice at once", .serial = true,
          .init = legacy_init, .fini = legacy_fini)

static long counter; /* shared, unguarded: the serial executor is its guard */

int legacy_init(im_module *m)
{
    (void)m;
    fprintf(stderr, "legacy: init\n");
    return 0;
}

void legacy_fini(im_module *m)
{
    (void)m;
    fprintf(stderr, "legacy: fini\n");
}

IM_ENDPOINT(POST, "/v1/legacy/bump", .summary = "Adds one to a counter no lock guards")
IM_RESULT(object, "The count and the thread")
IM_FIELD(int64, count, "The counter after this call")
IM_FIELD(string, thread, "The thread it ran on")
int bump(im_call *call, const bump_args *in, bump_result *out)
{
    (void)in;
    long c = counter;
    for (volatile int i = 0; i < 1000; i++) {
    }
    counter = c + 1;
    char *name = im_call_alloc(call, 16);
    pthread_getname_np(pthread_self(), name, 16);
    out->count = counter;
    out->thread = im_str_from(name);
    return 0;
}

IM_ENDPOINT(GET, "/v1/legacy/version", .summary = "Answered on the loop (it says so)",
            .mode = IM_INLINE)
IM_RESULT(string, "The version")
int legacy_version(im_call *call, const legacy_version_args *in, legacy_version_result *out)
{
    (void)call, (void)in;
    out->result = im_str_from("1.0");
    return 0;
}
