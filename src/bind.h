/* bind.h — endpoints declared with annotations (see README): the tables and binders that
 * gen/immersive_gen.py generates call what is declared here. Users meet im_call (the handle a
 * handler gets) and the array views; the rest is for generated code. */

/* ---- annotations ----
 * Read by gen/immersive_gen.py as text; to the compiler they are nothing at all. See README for
 * what each takes. */
#define IM_MODULE(...)
#define IM_OBJECT(...)
#define IM_FIELD(...)
#define IM_ENDPOINT(...)
#define IM_ARG(...)
#define IM_RESULT(...)
#define IM_ENUM(...)
#define IM_BODY(...)

/* ---- what a handler sees ---- */

/* Arrays bound from a request: borrowed, valid until the call is answered. */
typedef struct im_bools { const bool *ptr; size_t len; } im_bools;
typedef struct im_i32s { const int32_t *ptr; size_t len; } im_i32s;
typedef struct im_i64s { const int64_t *ptr; size_t len; } im_i64s;
typedef struct im_f64s { const double *ptr; size_t len; } im_f64s;
typedef struct im_strs { const im_str *ptr; size_t len; } im_strs;
typedef struct im_enums { const int *ptr; size_t len; } im_enums;
typedef struct im_u32s { const uint32_t *ptr; size_t len; } im_u32s;
typedef struct im_u64s { const uint64_t *ptr; size_t len; } im_u64s;
typedef struct im_f32s { const float *ptr; size_t len; } im_f32s;

/* Maps bound from a JSON object with any string keys (T{}, FastAPI's Dict[str, T]): keys[i]
 * holds values[i], in the order they came; a key sent twice keeps its last value. Borrowed,
 * like the arrays. */
typedef struct im_bool_map { const im_str *keys; const bool *values; size_t len; } im_bool_map;
typedef struct im_i32_map { const im_str *keys; const int32_t *values; size_t len; } im_i32_map;
typedef struct im_i64_map { const im_str *keys; const int64_t *values; size_t len; } im_i64_map;
typedef struct im_u32_map { const im_str *keys; const uint32_t *values; size_t len; } im_u32_map;
typedef struct im_u64_map { const im_str *keys; const uint64_t *values; size_t len; } im_u64_map;
typedef struct im_f64_map { const im_str *keys; const double *values; size_t len; } im_f64_map;
typedef struct im_f32_map { const im_str *keys; const float *values; size_t len; } im_f32_map;
typedef struct im_str_map { const im_str *keys; const im_str *values; size_t len; } im_str_map;
typedef struct im_enum_map { const im_str *keys; const int *values; size_t len; } im_enum_map;

/* The handle of one call of an annotated function. */
typedef struct im_call im_call;

/* Fails the call: the client gets `status` (>= 400) and {"detail": <formatted text>}.
 * Returns status, so that a handler can `return im_call_fail(call, 404, "no item %d", id);` */
int im_call_fail(im_call *call, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* The status of a successful answer (200..299), instead of the endpoint's .status (200 by
 * default): 201 when the call created what it answers, 204 for none (the body is then left
 * out). -EINVAL for another status; -ENOTSUP in a worker process (process mode: its .status). */
int im_call_status(im_call *call, int status);
/* Adds a header to a successful answer (Location, ETag, Cache-Control...), for inline calls
 * and tasks alike (a task keeps it for whoever reads its answer). The name must be a token
 * and the value free of CR, LF and NUL: else -EINVAL; -ENOMEM; -ENOTSUP in a worker process. */
int im_call_header(im_call *call, const char *name, const char *value);
/* Memory that lives until the call is answered (results may point into it). NULL when out of
 * memory. Aligned for any type. */
void *im_call_alloc(im_call *call, size_t n);
/* The request of an inline call (NULL for calls that run on an executor: there the request
 * belongs to the loop thread), to read headers or add response headers. Its body has been
 * read by the binder, which decodes JSON strings in place: the bytes of strings that held
 * escapes are changed. It cannot be deferred or streamed (im_ctx_defer and im_stream_begin
 * answer -EINVAL): the call's arguments borrow from the receive buffer, which is reused once
 * the handler returns. An endpoint that answers later is declared .mode = IM_POOL. */
im_ctx *im_call_ctx(im_call *call);
/* The function's name (its .name, by default its C function's). */
const char *im_call_name(const im_call *call);

/* 1 when the call should stop: its task was cancelled (DELETE /tasks/{id}, POST
 * /functions/{name}/terminate, a waiting client that left) or ran past its timeout. A handler
 * that runs long looks now and then and returns (what it returns is then dropped); one that
 * never looks keeps its worker until it returns (process mode is for code that cannot
 * cooperate). Always 0 for inline calls. Any thread. */
int im_call_cancelled(const im_call *call);
/* Reports how far the call has got: fraction 0..1 (clamped) and a message (may be NULL;
 * copied, at most 1 KiB kept). GET /tasks/{id} shows the latest; GET /tasks/{id}/events
 * streams each (a slow reader gets the latest, not a backlog). Nothing for inline calls. */
void im_call_progress(im_call *call, double fraction, const char *message);
/* The call's task id (32 lowercase hex characters; borrowed, valid during the call), or NULL
 * for an inline call. */
const char *im_call_task_id(const im_call *call);
/* The id of the request that made the call (see im_ctx_request_id; borrowed, valid during
 * the call), in a worker thread or process as on the loop. Lines the call logs carry it. */
const char *im_call_request_id(const im_call *call);
/* Which run of its task this is: 1, or more when the task was taken over after its worker
 * went away (the Redis store runs a task at least once: tasks.max_attempts). 0 for an inline
 * call. A handler with effects outside may look at it to make them once. */
int im_call_attempt(const im_call *call);

/* States of a task, in the order it moves through them (the last four are terminal). */
enum {
    IM_TASK_QUEUED = 0,
    IM_TASK_RUNNING,
    IM_TASK_SUCCEEDED,
    IM_TASK_FAILED,
    IM_TASK_TIMEOUT,
    IM_TASK_CANCELLED
};
/* "QUEUED", "RUNNING", ... (static). */
const char *im_task_state_name(int state);

/* ---- for generated code ---- */

/* Execution modes and answers (process mode comes later: until then it answers 501). A
 * non-inline call is a task; IM_RESPOND_ASYNC answers 202 with its id at once, SYNC waits for
 * its end; a request's Prefer header (respond-async, respond-sync) overrides. */
enum { IM_MODE_INLINE = 0, IM_MODE_POOL, IM_MODE_SERIAL, IM_MODE_PROCESS };
enum { IM_RESPOND_SYNC = 0, IM_RESPOND_ASYNC };
enum { IM_EXTRA_FORBID = 0, IM_EXTRA_IGNORE };
enum { IM_IN_BODY = 0, IM_IN_QUERY, IM_IN_PATH, IM_IN_HEADER, IM_IN_COOKIE };

/* Value types of fields. */
enum {
    IM_T_BOOL = 1,
    IM_T_INT32,
    IM_T_INT64,
    IM_T_DOUBLE,
    IM_T_STRING,
    IM_T_ENUM,
    IM_T_OBJECT,
    IM_T_ARRAY,
    IM_T_NDARRAY, /* an im_ndarray: JSON nested arrays, or an application/x-npy body */
    IM_T_UINT32,
    IM_T_UINT64,
    IM_T_FLOAT,   /* 32-bit: a finite number within float's range, stored rounded */
    IM_T_JSON,    /* any JSON value, checked, as its text (an im_str) */
    IM_T_MAP      /* a JSON object of any keys, each value an `elem` (an im_*_map view) */
};

/* String formats (.format), checked after the length. */
enum {
    IM_FMT_NONE = 0,
    IM_FMT_DATE_TIME, /* RFC 3339: 2026-12-03T10:20:30.5Z (the offset may be left out) */
    IM_FMT_DATE,      /* 2026-12-03, a day that exists */
    IM_FMT_TIME,      /* 10:20:30[.5][Z|+01:00] */
    IM_FMT_UUID,      /* 8-4-4-4-12 hexadecimal digits */
    IM_FMT_EMAIL,     /* local@domain.tld */
    IM_FMT_URI,       /* RFC 3986, with a scheme */
    IM_FMT_IPV4,      /* dotted quad, no leading zeros */
    IM_FMT_IPV6       /* RFC 4291 text forms */
};

/* Constraint flags of a field. */
enum {
    IM_F_MIN = 1,       /* value >= min (> with IM_F_XMIN) */
    IM_F_MAX = 2,       /* value <= max (< with IM_F_XMAX) */
    IM_F_XMIN = 4,
    IM_F_XMAX = 8,
    IM_F_MINLEN = 16,   /* string: at least min_len characters */
    IM_F_MAXLEN = 32,
    IM_F_MINITEMS = 64, /* array (or map): at least min_items elements (keys) */
    IM_F_MAXITEMS = 128,
    IM_F_MULTIPLE = 256 /* number: a multiple of imul (integers) or dmul */
};

/* A string's .pattern, compiled by the generator into a DFA over UTF-8 bytes (no regex engine
 * runs at request time). State 0 starts; IM_PATTERN_DEAD ends the match. */
#define IM_PATTERN_DEAD 0xFFFFu
typedef struct im_pattern {
    const char *source;     /* the pattern as written */
    const uint8_t *cls;     /* 256 entries: each byte's class */
    const uint16_t *next;   /* states x nclasses: the next state */
    const uint8_t *accept;  /* one per state: 1 when accepting */
    uint16_t nclasses;
    uint8_t sticky;         /* no $: matched as soon as an accepting state is reached */
} im_pattern;
/* 1 when the pattern matches s (anywhere in it, unless anchored by ^ and $), as JSON Schema's
 * pattern does. */
int im_pattern_match(const im_pattern *p, im_str s);

typedef struct im_bind im_bind; /* binding state (opaque) */
typedef int (*im_bind_obj_fn)(im_bind *b, void *dst);

/* One field (argument, object member, array element): what to read and what to check. */
typedef struct im_field {
    const char *name;          /* JSON key or parameter name */
    uint16_t type;             /* IM_T_* */
    uint16_t elem;             /* IM_T_* of an array's elements */
    uint16_t flags;            /* IM_F_* */
    uint16_t in;               /* IM_IN_* (arguments) */
    int64_t imin, imax;        /* integer bounds */
    double dmin, dmax;         /* number bounds (double and float) */
    uint64_t umin, umax;       /* uint64 bounds */
    uint64_t imul;             /* integers: IM_F_MULTIPLE's divisor (> 0) */
    double dmul;               /* numbers: IM_F_MULTIPLE's divisor (> 0) */
    uint8_t format;            /* strings: IM_FMT_* */
    const im_pattern *pattern; /* strings: .pattern, or NULL */
    uint32_t min_len, max_len; /* string length, in characters (code points) */
    uint32_t min_items, max_items;
    const char *const *values; /* enum: its strings, in order */
    uint32_t nvalues;
    uint32_t elem_size;        /* array of objects: the element struct's size */
    im_bind_obj_fn object;     /* object, or array of objects: binds one object */
    uint32_t dtypes;           /* ndarray: bit (1 << IM_DT_*) per dtype accepted; 0: any */
    int32_t ndim;              /* ndarray: its dimensions (-1: any) */
    const int64_t *shape;      /* ndarray: ndim sizes, -1 where any (NULL: any shape) */
} im_field;

/* Body: 1 when the value at the cursor is an object (entered), 0 when it is not (422
 * recorded), < 0 on a JSON syntax error. */
int im_bind_obj_begin(im_bind *b);
/* The next key of the object entered: 1 (its value is next), 0 at the end, < 0 on a syntax
 * error. */
int im_bind_obj_key(im_bind *b, im_str *key);
/* The generated binders' fast path: 1 when the text at the cursor is lit (n bytes: `"key":` as
 * the object's first key, `,"key":` after a member), then read past it, as im_bind_obj_key
 * would; 0 with nothing read otherwise (any blank, escape or other key: the key loop reads it). */
int im_bind_key_at(im_bind *b, const char *lit, size_t n);
/* Both in one call: 1 when the key was lit and its value read into dst as f says. */
int im_bind_field_at(im_bind *b, const char *lit, size_t n, const im_field *f, void *dst);
/* Reads the value at the cursor into dst as f says, recording any 422 error under f->name. */
void im_bind_field(im_bind *b, const im_field *f, void *dst);
/* 1 when s is of the string format (IM_FMT_*): what .format checks, for answers too. */
int im_format_ok(int format, im_str s);
/* IM_BODY: the whole body, one value read into dst as f says (errors at ["body", ...]). */
void im_bind_body(im_bind *b, const im_field *f, void *dst);
/* Nullable fields: 1 when the value at the cursor is JSON null (then read), else 0. */
int im_bind_null(im_bind *b);
/* A key no field has: 422 extra_forbidden, or skipped when the endpoint ignores extras. */
void im_bind_extra(im_bind *b, im_str key);
/* The same with the policy of the object being bound (IM_EXTRA_FORBID or IM_EXTRA_IGNORE): an
 * object's .extra holds wherever it is, as its schema's additionalProperties says. */
void im_bind_extra_as(im_bind *b, im_str key, int extra);
/* A required field that did not come: 422 missing (f NULL: the whole body). */
void im_bind_missing(im_bind *b, const im_field *f);
/* A query, path, header or cookie parameter: 1 when present (read into dst, errors recorded), 0 when
 * absent. */
int im_bind_param(im_bind *b, const im_field *f, void *dst);
/* 1 when the request has a JSON body to bind. */
int im_bind_has_body(const im_bind *b);
/* A raw body of little-endian float64 values (Content-Type application/octet-stream), or a
 * 1-dimensional '<f8' .npy (application/x-npy), into an im_f64s: no copy when the data is
 * aligned, one copy otherwise. 1 when present, 0 when not. */
int im_bind_raw_f64(im_bind *b, const im_field *f, void *dst);

/* An ndarray argument from an application/x-npy body (the whole body is the array): 1 when
 * the body is one (bound into dst, or a 422 recorded), 0 when it is not. */
int im_bind_npy(im_bind *b, const im_field *f, void *dst);

/* An annotated endpoint, as gen/immersive_gen.py describes it. */
typedef struct im_endpoint {
    const char *method;    /* "GET", "POST", ... */
    const char *path;      /* "/v1/math/add", with {param} segments */
    const char *name;      /* the function's name (.name; by default its C name) */
    const char *module;    /* its module */
    size_t args_size;      /* sizeof the argument struct */
    size_t out_size;       /* sizeof the result struct */
    int (*bind)(im_bind *b, void *args);                     /* request into args */
    int (*call)(im_call *call, const void *args, void *out); /* the user's function */
    void (*write)(im_jw *w, const void *out);                /* the result as JSON */
    uint8_t mode;          /* IM_MODE_* */
    uint8_t response;      /* IM_RESPOND_* */
    uint8_t priority;      /* executor priority, 0 most urgent */
    uint8_t extra;         /* IM_EXTRA_* */
    uint8_t body;          /* 1: arguments come in a JSON body; 2: the body is raw float64s
                            * (or a 1-dimensional f64 .npy); 3: JSON, or a .npy body that is
                            * the one ndarray argument */
    uint32_t max_concurrency; /* unfinished tasks at once (0: no limit); past it 429 */
    uint32_t timeout_ms;   /* a task's time limit from its start (0: none): then TIMEOUT */
    const char *summary;   /* one line for GET /functions ("" when none) */
    const char *args_json; /* the arguments' definitions as a JSON array (GET /functions/{name}) */
    const char *executor;  /* .executor: a module's private executor by name, or NULL */
    uint8_t result_ndarray;/* 1: the result struct is an im_ndarray (answered as JSON nested
                            * arrays, or as .npy to Accept: application/x-npy) */
    uint32_t max_body_bytes; /* .max_body_bytes: its own body limit when above the server's
                              * (0: the server's max_body_bytes) */
    /* Checks a result against the schema the OpenAPI document gives it (finite numbers,
     * bounds, strings set, enums in range, item counts): 0, or -1 with what breaks it (named:
     * "response.at.x: nan is not a finite number") in err. NULL: nothing to check. */
    int (*check)(const void *out, char *err, size_t cap);
    uint16_t status;       /* .status: a successful answer's (0: 200; 204 answers no body) */
} im_endpoint;

/* Registers generated endpoints and the OpenAPI document served at GET /openapi.json
 * (openapi may be NULL). Call before im_server_start(). Returns 0 or -errno. */
int im_server_add_endpoints(im_server *s, const im_endpoint *eps, size_t n, const char *openapi,
                            size_t openapi_len);

/* A file compiled into the service and served as it is (the generator's --docs: Swagger UI at
 * /docs, ReDoc at /redoc), with an ETag (If-None-Match: 304) and, for a client that takes it,
 * its gzip copy. Borrowed: static data. */
typedef struct im_static_file {
    const char *path;              /* "/docs/swagger-ui-bundle.js" */
    const char *content_type;      /* "text/javascript; charset=utf-8" */
    const unsigned char *data;
    size_t len;
    const unsigned char *gz;       /* the same gzip'd, or NULL */
    size_t gz_len;
    const char *etag;              /* a quoted entity tag: "\"9f2c...\"" */
} im_static_file;

/* Serves GET /docs (Swagger UI) and GET /redoc (ReDoc) of the document at /openapi.json, and
 * their files (those whose paths start with /docs/ and /redoc/), unless docs.enabled is false.
 * Call before im_server_start(). Returns 0 or -errno. */
int im_server_add_docs(im_server *s, const im_static_file *files, size_t n);

/* Unfinished tasks (queued or running) of endpoint number i of those added (monitoring). */
unsigned im_server_endpoint_inflight(const im_server *s, size_t i);
