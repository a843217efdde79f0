/* compress.c — gzip for answers (Accept-Encoding: gzip), with zlib when immersive is built
 * with IM_HAVE_ZLIB (the CMake target sets it where Debian's zlib1g-dev is found): bodies of at
 * least compression.min_bytes, of types not compressed already, never streams. One deflate
 * state per loop, reset for each answer (making one costs more than a small body's
 * compression). */

/* 1 when an Accept-Encoding value takes gzip: "gzip" or "x-gzip" with q above 0, or else
 * "*" with q above 0 (an explicit "gzip;q=0" refuses it whatever "*" says). */
static int im__accepts_gzip(im_str v)
{
    size_t i = 0;
    int named = -1, star = 0;
    while (i < v.len) {
        while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == ',')) i++;
        size_t s = i;
        while (i < v.len && v.ptr[i] != ',' && v.ptr[i] != ';' && v.ptr[i] != ' ') i++;
        im_str c = {v.ptr + s, i - s};
        int q0 = 0; /* ;q=0 (or 0.0, 0.00...) refuses it */
        while (i < v.len && v.ptr[i] != ',') {
            if ((v.ptr[i] == 'q' || v.ptr[i] == 'Q') && i + 2 < v.len && v.ptr[i + 1] == '=') {
                size_t k = i + 2;
                q0 = v.ptr[k] == '0';
                for (k++; q0 && k < v.len && v.ptr[k] != ',' && v.ptr[k] != ';'; k++)
                    if (v.ptr[k] != '.' && v.ptr[k] != '0' && v.ptr[k] != ' ') q0 = 0;
            }
            i++;
        }
        if ((c.len == 4 && !strncasecmp(c.ptr, "gzip", 4)) ||
            (c.len == 6 && !strncasecmp(c.ptr, "x-gzip", 6)))
            named = named == 1 ? 1 : !q0;
        else if (c.len == 1 && c.ptr[0] == '*')
            star = !q0;
    }
    return named >= 0 ? named : star;
}

/* 0 for types that are compressed already (or arrays of numbers, where it costs more than it
 * saves), else 1. */
static int im__compressible(const char *ct)
{
    static const char *const no[] = {"image/", "video/", "audio/", "font/woff",
                                     "application/zip", "application/gzip",
                                     "application/x-gzip", "application/zstd",
                                     "application/x-bzip2", "application/x-xz",
                                     "application/x-7z-compressed", "application/x-npy",
                                     "application/octet-stream"};
    if (!ct) return 0;
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (!strncasecmp(ct, no[i], strlen(no[i]))) return 0;
    return 1;
}

#if IM_HAVE_ZLIB
/* body as gzip into a malloc'ed *out (NULL when it would not be smaller, or no memory). */
static size_t im__gzip(im_loop *L, const void *body, size_t blen, char **out)
{
    *out = NULL;
    if (blen > UINT32_MAX) return 0;
    z_stream *z = L->zs;
    if (!z) {
        if (!(z = calloc(1, sizeof *z))) return 0;
        int level = (int)L->o.compress_level;
        if (deflateInit2(z, level, Z_DEFLATED, 15 + 16 /* gzip */, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            free(z);
            return 0;
        }
        L->zs = z;
    } else if (deflateReset(z) != Z_OK) {
        return 0;
    }
    size_t cap = deflateBound(z, (uLong)blen);
    if (cap >= blen) cap = blen; /* not smaller: not worth sending */
    char *buf = malloc(cap ? cap : 1);
    if (!buf) return 0;
    z->next_in = (Bytef *)(uintptr_t)body;
    z->avail_in = (uInt)blen;
    z->next_out = (Bytef *)buf;
    z->avail_out = (uInt)cap;
    if (deflate(z, Z_FINISH) != Z_STREAM_END) { /* it did not fit in fewer bytes */
        free(buf);
        return 0;
    }
    *out = buf;
    return cap - z->avail_out;
}

static void im__gzip_free(im_loop *L)
{
    if (!L->zs) return;
    deflateEnd(L->zs);
    free(L->zs);
    L->zs = NULL;
}
#else
static size_t im__gzip(im_loop *L, const void *body, size_t blen, char **out)
{
    (void)L, (void)body, (void)blen;
    *out = NULL;
    return 0;
}
static void im__gzip_free(im_loop *L) { (void)L; }
#endif
