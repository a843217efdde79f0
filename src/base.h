/* base.h — the smallest public pieces every other part uses: string views and helpers. */

/* A string view: non-owning, not NUL-terminated. Who made it says how long it lives
 * (a request's views are valid until its handler returns, see im_ctx_defer()). */
typedef struct im_str {
    const char *ptr; /* first byte; NULL for "absent" */
    size_t len;      /* bytes */
} im_str;

/* Makes a view of a NUL-terminated string (borrowed: lives as long as s). */
im_str im_str_from(const char *s);
/* 1 when the view holds exactly the bytes of the NUL-terminated z, else 0. */
int im_str_eq(im_str a, const char *z);
/* Same, ASCII case-insensitive (header names, tokens). */
int im_str_ieq(im_str a, const char *z);

/* Decodes %XX escapes (and '+' as space when plus_is_space) of src into dst (dst may equal
 * src.ptr). Returns the decoded length, or -EINVAL on a malformed escape, -ENOSPC when dst is
 * too small. dst is not NUL-terminated. */
long im_url_decode(im_str src, char *dst, size_t dstcap, int plus_is_space);

/* Finds the value of name in a query string ("a=1&b=2"), raw (still %-encoded).
 * Returns its view, or {NULL, 0} when absent. Borrowed from query. */
im_str im_query_get(im_str query, const char *name);
