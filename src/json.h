/* json.h — JSON text writer (responses, errors, the OpenAPI document). It appends to a caller's
 * fixed buffer or to a heap buffer it grows, places commas itself, escapes strings and
 * replaces invalid UTF-8 with U+FFFD so that its output is always valid JSON text. */

#define IM_JW_MAX_DEPTH 64

typedef struct im_jw {
    char *buf;        /* the text so far (owned when growable) */
    size_t len;       /* bytes used */
    size_t cap;       /* bytes available */
    int growable;     /* 1: buf is on the heap and grows; im_jw_free() releases it */
    int err;          /* sticky: 0, -ENOSPC (fixed buffer full), -ENOMEM, -EINVAL (misuse) */
    unsigned depth;   /* open objects and arrays */
    uint64_t nonfirst;/* bit d: a value was already written at depth d (a comma is due) */
    uint64_t in_obj;  /* bit d: depth d is an object (keys expected) */
    int after_key;    /* 1: a key was written, its value comes next */
} im_jw;

/* Starts a writer on buf[0..cap) (fixed), or on the heap when buf is NULL (growable). */
void im_jw_init(im_jw *w, char *buf, size_t cap);
/* Releases a growable writer's buffer. */
void im_jw_free(im_jw *w);
/* Empties the writer, keeping its buffer. */
void im_jw_reset(im_jw *w);
void im_jw_obj(im_jw *w);     /* { */
void im_jw_obj_end(im_jw *w); /* } */
void im_jw_arr(im_jw *w);     /* [ */
void im_jw_arr_end(im_jw *w); /* ] */
void im_jw_key(im_jw *w, const char *key);                /* "key": */
void im_jw_keyn(im_jw *w, const char *key, size_t n);
void im_jw_str(im_jw *w, const char *s);                  /* "s" (NULL writes null) */
void im_jw_strn(im_jw *w, const char *s, size_t n);
void im_jw_int(im_jw *w, int64_t v);
void im_jw_uint(im_jw *w, uint64_t v);
void im_jw_double(im_jw *w, double v); /* shortest text that reads back equal; NaN/inf: null */
void im_jw_bool(im_jw *w, int v);
void im_jw_null(im_jw *w);
void im_jw_raw(im_jw *w, const char *json, size_t n); /* a value already in JSON text */
/* 0 when everything fitted and nesting is balanced, else the first error. */
int im_jw_error(const im_jw *w);
