/* immersive.h — annotated C functions served as a fast HTTP API. v0.1.0, MIT licence (at the end).
 *
 * USE
 *   In exactly one .c file of your program:
 *       #define IMMERSIVE_IMPLEMENTATION
 *       #include "immersive.h"
 *   everywhere else a plain #include "immersive.h". Link with -luring -lpthread (-lm).
 *   Linux only (io_uring, kernel 6.0 or newer); the implementation is C11 (gnu11) and needs
 *   _GNU_SOURCE, which it defines itself when immersive.h comes before any system header.
 *   The declarations also compile as C++.
 *
 * QUICKSTART
 *       static void hello(im_ctx *c) { im_reply(c, 200, "text/plain", "Hello, World!", 13); }
 *       int main(void) {
 *           im_server *s = im_server_new(NULL);           // 127.0.0.1:8000, one loop a core
 *           im_server_route(s, "GET", "/hello", hello, NULL);
 *           int rc = im_server_run(s);                     // until SIGINT/SIGTERM
 *           im_server_free(s);
 *           return rc ? 1 : 0;
 *       }
 *
 * CONTENTS (each part is a file of src/ in the repository; gen/amalgamate.py joins them)
 *   version.h     IM_VERSION_*
 *   config.h      compile-time options, defaults of every run-time option
 *   base.h        im_str views, URL decoding, query lookup
 *   log.h         im_log: leveled logging
 *   json.h        im_jw: JSON writer; im_json: strict pull reader
 *   toml.h        im_toml: TOML 1.0 reader, values, lookup by dotted path
 *   ndarray.h     im_ndarray: n-dimensional numeric arrays, numpy's .npy reader and header
 *   http.h        im_http_parse_head, im_http_decode_chunked: the HTTP/1.x parsers
 *   server.h      im_server, routes, im_ctx requests, replies, streams, im_loop_post
 *   queue.h       im_queue: lock-free MPMC priority queue with a blocking pop
 *   executor.h    im_executor: worker threads, jobs, completions back to the loop
 *   bind.h        im_call, im_endpoint, im_bind: what annotated endpoints are built on
 *   conf.h        im_config: layered TOML configuration, reload, subscribers, server keys
 *   module.h      im_module: modules on and off, init/fini, tables, directories, resources
 *   bus.h         im_bus: events by topic on a thread of their own, across processes via a hub
 *   launch.h      im_main: a service's whole main (flags, config files, serving)
 *   --- implementation (IMMERSIVE_IMPLEMENTATION) ---
 *   internal.h    private types; base.c log.c json_write.c json_read.c toml.c ndarray.c
 *                 http_parse.c
 *   router.c compress.c response.c conn.c loop.c queue.c executor.c task.c bus.c bind.c exec.c taskapi.c
 *   server.c
 *   conf.c module.c cors.c metrics.c spec.c manage.c docs.c launch.c
 *
 * CONVENTIONS
 *   Public names start with im_ (functions, types) or IM_ (macros); private ones with im__.
 *   Functions return >= 0 on success and -errno on failure. Option structs are zero-initialised
 *   and every 0 field means "the default". Views (im_str) are borrowed: their lifetime is
 *   written where they are handed out.
 */
#ifndef IMMERSIVE_H
#define IMMERSIVE_H

#if defined(IMMERSIVE_IMPLEMENTATION) && !defined(_GNU_SOURCE)
#if defined(__GLIBC__)
#error "immersive: the implementation needs _GNU_SOURCE: include immersive.h before any system header in this file, or compile it with -D_GNU_SOURCE"
#endif
#define _GNU_SOURCE
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "version.h"
#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "base.h"
#include "log.h"
#include "json.h"
#include "toml.h"
#include "ndarray.h"
#include "http.h"
#include "server.h"
#include "queue.h"
#include "executor.h"
#include "bind.h"
#include "conf.h"
#include "module.h"
#include "bus.h"
#include "launch.h"

#ifdef __cplusplus
}
#endif
#endif /* IMMERSIVE_H */

#if defined(IMMERSIVE_IMPLEMENTATION) && !defined(IM__IMPLEMENTED)
#define IM__IMPLEMENTED
#ifdef __cplusplus
#error "immersive: compile the implementation as C (gnu11), not C++"
#endif

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <fnmatch.h>
#include <ftw.h>
#include <limits.h>
#include <locale.h>
#include <linux/futex.h>
#include <liburing.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#if IM_HAVE_HIREDIS
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#endif
#if IM_HAVE_ZLIB
#include <zlib.h>
#endif

#include "internal.h"
#include "base.c"
#include "log.c"
#include "json_write.c"
#include "json_read.c"
#include "toml.c"
#include "ndarray.c"
#include "http_parse.c"
#include "router.c"
#include "compress.c"
#include "response.c"
#include "conn.c"
#include "loop.c"
#include "redis.c"
#include "queue.c"
#include "executor.c"
#include "task.c"
#include "bus.c"
#include "bind.c"
#include "exec.c"
#include "proc.c"
#include "cluster.c"
#include "taskapi.c"
#include "server.c"
#include "conf.c"
#include "module.c"
#include "cors.c"
#include "metrics.c"
#include "spec.c"
#include "manage.c"
#include "docs.c"
#include "launch.c"

#endif /* IMMERSIVE_IMPLEMENTATION */

/*
 * MIT License
 *
 * Copyright (c) 2026 the immersive authors
 *
 * Permission is hereby granted, free of charge, to any person obtaining a copy of this software
 * and associated documentation files (the "Software"), to deal in the Software without
 * restriction, including without limitation the rights to use, copy, modify, merge, publish,
 * distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
 * Software is furnished to do so, subject to the following conditions:
 *
 * The above copyright notice and this permission notice shall be included in all copies or
 * substantial portions of the Software.
 *
 * THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
 * BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
 * NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
 * DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 * OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
 */
