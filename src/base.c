/* base.c — string views, URL decoding and query lookup. */

im_str im_str_from(const char *s)
{
    im_str r = {s, s ? strlen(s) : 0};
    return r;
}

int im_str_eq(im_str a, const char *z)
{
    size_t n = strlen(z);
    return a.len == n && (n == 0 || memcmp(a.ptr, z, n) == 0);
}

static inline unsigned char im__lower(unsigned char c)
{
    return (unsigned char)((unsigned)(c - 'A') < 26u ? c + 32 : c);
}

/* Compares n bytes ASCII case-insensitively; b must already be lower case. */
static inline int im__ieq_lower(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (im__lower((unsigned char)a[i]) != (unsigned char)b[i]) return 0;
    return 1;
}

int im_str_ieq(im_str a, const char *z)
{
    size_t n = strlen(z);
    if (a.len != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (im__lower((unsigned char)a.ptr[i]) != im__lower((unsigned char)z[i])) return 0;
    return 1;
}

static inline int im__hexval(unsigned char c)
{
    if ((unsigned)(c - '0') < 10u) return c - '0';
    c = im__lower(c);
    if ((unsigned)(c - 'a') < 6u) return c - 'a' + 10;
    return -1;
}

long im_url_decode(im_str src, char *dst, size_t dstcap, int plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < src.len; i++) {
        unsigned char c = (unsigned char)src.ptr[i];
        if (c == '%') {
            int hi, lo;
            if (src.len - i < 3) return -EINVAL; /* needs two hex digits */
            hi = im__hexval((unsigned char)src.ptr[i + 1]);
            lo = im__hexval((unsigned char)src.ptr[i + 2]);
            if (hi < 0 || lo < 0) return -EINVAL;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (o >= dstcap) return -ENOSPC;
        dst[o++] = (char)c;
    }
    return (long)o;
}

im_str im_query_get(im_str q, const char *name)
{
    size_t n = strlen(name), i = 0;
    im_str none = {NULL, 0};
    while (i < q.len) {
        size_t e = i;
        while (e < q.len && q.ptr[e] != '&') e++;
        /* one "key=value" or "key" pair in [i, e) */
        if (e - i >= n && memcmp(q.ptr + i, name, n) == 0) {
            if (e - i == n) {
                im_str r = {q.ptr + e, 0};
                return r;
            }
            if (q.ptr[i + n] == '=') {
                im_str r = {q.ptr + i + n + 1, e - i - n - 1};
                return r;
            }
        }
        i = e + 1;
    }
    return none;
}
