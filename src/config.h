/* config.h — compile-time options and the defaults of every run-time option, in one place.
 * Define any of these before including immersive.h to change it. A run-time option left 0 in
 * its options struct takes the default named here. */

/* Default address and port of a server whose options leave them unset. */
#ifndef IM_DEFAULT_HOST
#define IM_DEFAULT_HOST "127.0.0.1"
#endif
#ifndef IM_DEFAULT_PORT
#define IM_DEFAULT_PORT 8000
#endif

/* Request limits (bytes, counts). Past them: 431, 413, 431, 503. */
#ifndef IM_DEFAULT_MAX_HEADER_BYTES
#define IM_DEFAULT_MAX_HEADER_BYTES 16384
#endif
#ifndef IM_DEFAULT_MAX_BODY_BYTES
#define IM_DEFAULT_MAX_BODY_BYTES (1024 * 1024) /* at most 1 GiB */
#endif
#ifndef IM_DEFAULT_MAX_HEADERS
#define IM_DEFAULT_MAX_HEADERS 100
#endif
#ifndef IM_DEFAULT_MAX_CONNS
#define IM_DEFAULT_MAX_CONNS 10000
#endif
/* Output queued for one connection past which the server stops reading its next requests,
 * and past which im_stream_write() answers -EAGAIN. With max_conns it bounds the memory that
 * clients who read nothing can pin (10000 x 1 MiB; send_timeout_ms frees it). */
#ifndef IM_DEFAULT_MAX_OUTPUT_BYTES
#define IM_DEFAULT_MAX_OUTPUT_BYTES (1024 * 1024)
#endif

/* Memory. What the binder may build for one request (arrays, decoded parameters): at most
 * IM_DEFAULT_ARENA_RATIO times the request's bytes plus IM_DEFAULT_ARENA_EXTRA_BYTES (413
 * past it; a JSON array of 3-byte empty objects bound into 40-byte structs is 13x). And the
 * memory held by calls that wait for or run on an executor, over the whole server (429 +
 * Retry-After past it). */
#ifndef IM_DEFAULT_ARENA_RATIO
#define IM_DEFAULT_ARENA_RATIO 8
#endif
#ifndef IM_DEFAULT_ARENA_EXTRA_BYTES
#define IM_DEFAULT_ARENA_EXTRA_BYTES 65536
#endif
#ifndef IM_DEFAULT_MAX_QUEUED_BYTES
#define IM_DEFAULT_MAX_QUEUED_BYTES ((size_t)256 << 20)
#endif

/* Tasks: a finished task is kept this long (then GET /tasks/{id} says 404), and finished tasks
 * together hold at most this much (the oldest finished is evicted first; unfinished never). */
#ifndef IM_DEFAULT_TASK_TTL_MS
#define IM_DEFAULT_TASK_TTL_MS (10 * 60 * 1000)
#endif
#ifndef IM_DEFAULT_TASK_MEMORY_BYTES
#define IM_DEFAULT_TASK_MEMORY_BYTES ((size_t)256 << 20)
#endif

/* Process mode: a worker killed (time limit, cancel) gets SIGTERM, then SIGKILL this much
 * later. */
#ifndef IM_DEFAULT_LOG_RING_LINES
#define IM_DEFAULT_LOG_RING_LINES 8192
#endif
#ifndef IM_DEFAULT_READY_QUEUE_PERCENT
#define IM_DEFAULT_READY_QUEUE_PERCENT 90
#endif
#ifndef IM_DEFAULT_MANAGE_PREFIX
#define IM_DEFAULT_MANAGE_PREFIX "/manage"
#endif
#ifndef IM_DEFAULT_COMPRESS_MIN_BYTES
#define IM_DEFAULT_COMPRESS_MIN_BYTES 1024
#endif
#ifndef IM_HAVE_HIREDIS
#define IM_HAVE_HIREDIS 0 /* 1 (and -lhiredis): the Redis task store; immersive's CMake target sets it */
#endif
#ifndef IM_HAVE_ZLIB
#define IM_HAVE_ZLIB 0 /* 1 (and -lz): gzip answers; immersive's CMake target sets it */
#endif
#ifndef IM_DEFAULT_KILL_GRACE_MS
#define IM_DEFAULT_KILL_GRACE_MS 1000
#endif

/* Timeouts (milliseconds). */
#ifndef IM_DEFAULT_HEADER_TIMEOUT_MS
#define IM_DEFAULT_HEADER_TIMEOUT_MS 10000 /* whole header block, from its first byte */
#endif
#ifndef IM_DEFAULT_BODY_TIMEOUT_MS
#define IM_DEFAULT_BODY_TIMEOUT_MS 30000 /* between two reads of a body */
#endif
#ifndef IM_DEFAULT_IDLE_TIMEOUT_MS
#define IM_DEFAULT_IDLE_TIMEOUT_MS 60000 /* keep-alive connection with nothing to do */
#endif
#ifndef IM_DEFAULT_SEND_TIMEOUT_MS
#define IM_DEFAULT_SEND_TIMEOUT_MS 60000 /* peer that reads none of our output */
#endif
#ifndef IM_DEFAULT_LINGER_MS
#define IM_DEFAULT_LINGER_MS 2000 /* draining input after a final response, before close */
#endif
#ifndef IM_DEFAULT_SHUTDOWN_TIMEOUT_MS
#define IM_DEFAULT_SHUTDOWN_TIMEOUT_MS 10000
#endif

/* io_uring sizing, per loop thread. The completion queue is 4x the submission queue. */
#ifndef IM_DEFAULT_SQ_ENTRIES
#define IM_DEFAULT_SQ_ENTRIES 2048
#endif
#ifndef IM_DEFAULT_RECV_BUFFERS
#define IM_DEFAULT_RECV_BUFFERS 512 /* power of two */
#endif
#ifndef IM_DEFAULT_RECV_BUFFER_SIZE
#define IM_DEFAULT_RECV_BUFFER_SIZE 4096
#endif

/* Priority levels of the server's executors: 0 (most urgent) .. levels-1. The generator
 * accepts .priority 0..31, so the default takes all of them (IM_QUEUE_MAX_LEVELS). */
#ifndef IM_DEFAULT_PRIORITY_LEVELS
#define IM_DEFAULT_PRIORITY_LEVELS 32
#endif

/* Jobs per priority level an executor's queue holds; past it submit says -EAGAIN (429). */
#ifndef IM_DEFAULT_QUEUE_CAPACITY
#define IM_DEFAULT_QUEUE_CAPACITY 1024
#endif

/* Compile-time limits. */
#ifndef IM_MAX_PARAMS
#define IM_MAX_PARAMS 8 /* {param} segments in one route pattern */
#endif
#ifndef IM_MAX_LOOPS
#define IM_MAX_LOOPS 256
#endif

/* Features. */
#ifndef IM_ENABLE_SERVER_HEADER
#define IM_ENABLE_SERVER_HEADER 1 /* send "Server: immersive" */
#endif
