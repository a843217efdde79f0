/* toml.h — TOML 1.0 documents: a reader that builds a tree of values, lookup by dotted path,
 * and the tree's types. Config files (conf.h) are read with it; it knows nothing of them. */

typedef enum im_toml_type {
    IM_TOML_NONE = 0,       /* no value (what a failed lookup gives) */
    IM_TOML_STRING,
    IM_TOML_INT,            /* 64-bit signed */
    IM_TOML_FLOAT,
    IM_TOML_BOOL,
    IM_TOML_DATETIME,       /* offset date-time: 1979-05-27T07:32:00Z */
    IM_TOML_DATETIME_LOCAL, /* 1979-05-27T07:32:00 */
    IM_TOML_DATE_LOCAL,     /* 1979-05-27 */
    IM_TOML_TIME_LOCAL,     /* 07:32:00 */
    IM_TOML_ARRAY,
    IM_TOML_TABLE
} im_toml_type;

/* A date, a time or both; the fields a type lacks are 0. */
typedef struct im_toml_time {
    int year, month, day;       /* 1..9999, 1..12, 1..31 */
    int hour, minute, second;   /* 0..23, 0..59, 0..60 (a leap second) */
    int nanosecond;             /* 0..999999999 (digits past the ninth are dropped) */
    int frac_digits;            /* digits of the fraction as written, at most 9 (0: none) */
    int offset_min;             /* minutes east of UTC (IM_TOML_DATETIME only; Z is 0) */
} im_toml_time;

/* One value of a document. A table's entries and an array's items are kids[0..len), in the
 * order they were written. Every string is NUL-terminated (and may hold NULs: use its len). */
typedef struct im_toml im_toml;
struct im_toml {
    im_toml_type type;
    const char *key;   /* owned: this value's key in its table; NULL in an array and at the root */
    size_t key_len;
    unsigned line, col;/* where it was defined in its text (1-based; col counts characters) */
    unsigned flags;    /* the reader's own (how a table was defined) */
    union {
        struct { char *ptr; size_t len; } str; /* owned */
        int64_t i;
        double f;
        int b;
        im_toml_time t;
        struct { im_toml **kids; size_t len, cap; } list; /* owned: ARRAY and TABLE */
    } u;
};

/* Reads a TOML 1.0 document (UTF-8) into a tree whose root is a table. name is used in errors
 * only (a file name; may be NULL). On an invalid document returns NULL and writes
 * "name:line:col: reason" into err (when errlen > 0); NULL with "out of memory" likewise.
 * Free the tree with im_toml_free(). */
im_toml *im_toml_parse(const char *text, size_t len, const char *name, char *err, size_t errlen);
/* The same from a file; errno-style failures to read it are reported in err as well. */
im_toml *im_toml_parse_file(const char *path, char *err, size_t errlen);
void im_toml_free(im_toml *v);
/* A deep copy (NULL when out of memory, or when v is NULL). */
im_toml *im_toml_dup(const im_toml *v);

/* The value at a dotted path under table t ("server.limits.max_body_bytes"; a part may be
 * quoted to hold dots: 'modules."my.mod"'), or NULL when any part is absent or not a table.
 * An empty path gives t itself. */
const im_toml *im_toml_get(const im_toml *t, const char *path);
/* The entry of table t named key[0..len), or NULL. */
const im_toml *im_toml_find(const im_toml *t, const char *key, size_t len);
/* Entries of a table or items of an array (0 for anything else), and the i-th of them. */
size_t im_toml_len(const im_toml *v);
const im_toml *im_toml_at(const im_toml *v, size_t i);
/* "string", "integer", "float", "bool", "datetime", "datetime-local", "date-local",
 * "time-local", "array", "table" (toml-test's names) or "none". */
const char *im_toml_type_name(im_toml_type t);
/* Writes v as JSON: plain (strings, numbers, booleans, arrays, objects; dates as strings in
 * RFC 3339) or tagged as toml-test's decoders do ({"type":"integer","value":"1"} for every
 * scalar). */
void im_toml_json(const im_toml *v, im_jw *w, int tagged);
/* A date/time as TOML writes it ("1979-05-27T07:32:00.5-07:00"); returns its length. */
size_t im_toml_time_str(const im_toml *v, char *buf, size_t cap);
