/* ndarray.c — dtypes and the .npy reader and header writer (numpy's format, NEP 1: a magic,
 * a version, a little-endian header length, then a Python dict literal holding 'descr',
 * 'fortran_order' and 'shape', padded with spaces to an aligned length and ended by '\n'). */

static const struct {
    const char *descr, *alt, *name;
    size_t size;
} im__dtypes[IM_DT_COUNT] = {
    {"<f8", NULL, "f64", 8}, {"<f4", NULL, "f32", 4}, {"<i8", NULL, "i64", 8},
    {"<i4", NULL, "i32", 4}, {"|u1", "<u1", "u8", 1},
};

size_t im_dtype_size(int dtype)
{
    return (unsigned)dtype < IM_DT_COUNT ? im__dtypes[dtype].size : 0;
}

const char *im_dtype_descr(int dtype)
{
    return (unsigned)dtype < IM_DT_COUNT ? im__dtypes[dtype].descr : "";
}

const char *im_dtype_name(int dtype)
{
    return (unsigned)dtype < IM_DT_COUNT ? im__dtypes[dtype].name : "";
}

int64_t im_ndarray_count(const int64_t *shape, int ndim, size_t isz)
{
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (__builtin_mul_overflow(n, (uint64_t)shape[i], &n)) return -1;
    }
    uint64_t bytes;
    if (n > (uint64_t)INT64_MAX || __builtin_mul_overflow(n, (uint64_t)(isz ? isz : 1), &bytes) ||
        bytes > (uint64_t)INT64_MAX)
        return -1;
    return (int64_t)n;
}

static int im__npy_fail(char *err, size_t errlen, const char *msg)
{
    if (errlen) snprintf(err, errlen, "%s", msg);
    return -EINVAL;
}

int im_ndarray_check(const im_ndarray *a, char *err, size_t errlen)
{
    if ((unsigned)a->dtype >= IM_DT_COUNT) return im__npy_fail(err, errlen, "unknown dtype");
    if (a->ndim < 0 || a->ndim > IM_NDARRAY_MAX_DIMS)
        return im__npy_fail(err, errlen, "ndim is not 0..8");
    int64_t n = im_ndarray_count(a->shape, a->ndim, im__dtypes[a->dtype].size);
    if (n < 0) return im__npy_fail(err, errlen, "a negative or overflowing shape");
    if ((uint64_t)n * im__dtypes[a->dtype].size != a->nbytes) {
        if (errlen)
            snprintf(err, errlen, "nbytes is %zu but the shape holds %llu bytes", a->nbytes,
                     (unsigned long long)n * im__dtypes[a->dtype].size);
        return -EINVAL;
    }
    if (a->nbytes && !a->data) return im__npy_fail(err, errlen, "no data");
    return 0;
}

/* One element: unaligned data is read through memcpy (the compiler makes it a load). */
static void im__jw_elem(im_jw *w, int dtype, const unsigned char *p)
{
    switch (dtype) {
    case IM_DT_F64: { double v; memcpy(&v, p, 8); im_jw_double(w, v); break; }
    case IM_DT_F32: { float v; memcpy(&v, p, 4); im_jw_double(w, v); break; }
    case IM_DT_I64: { int64_t v; memcpy(&v, p, 8); im_jw_int(w, v); break; }
    case IM_DT_I32: { int32_t v; memcpy(&v, p, 4); im_jw_int(w, v); break; }
    default: im_jw_uint(w, *p); break;
    }
}

void im_jw_ndarray(im_jw *w, const im_ndarray *a)
{
    size_t isz = im_dtype_size(a->dtype);
    const unsigned char *p = (const unsigned char *)a->data;
    if (!isz || a->ndim < 0 || a->ndim > IM_NDARRAY_MAX_DIMS) { im_jw_null(w); return; }
    if (a->ndim == 0) { im__jw_elem(w, a->dtype, p); return; }
    /* an odometer over the indices: no recursion, rows of the last dimension in one loop */
    int64_t idx[IM_NDARRAY_MAX_DIMS] = {0};
    int d = 0, last = a->ndim - 1;
    im_jw_arr(w);
    for (;;) {
        if (d < last) {
            if (idx[d] < a->shape[d]) { im_jw_arr(w); d++; idx[d] = 0; continue; }
        } else {
            for (int64_t i = 0; i < a->shape[last]; i++, p += isz) im__jw_elem(w, a->dtype, p);
            idx[d] = a->shape[d];
        }
        im_jw_arr_end(w); /* dimension d is done */
        if (d == 0 || w->err) break; /* (im_jw_error also counts the arrays still open) */
        d--;
        idx[d]++;
    }
}

typedef struct im__npyh {
    const char *p, *e;
} im__npyh;

static void im__npyh_ws(im__npyh *h)
{
    while (h->p < h->e && (*h->p == ' ' || *h->p == '\t')) h->p++;
}

static int im__npyh_eat(im__npyh *h, char c)
{
    im__npyh_ws(h);
    if (h->p < h->e && *h->p == c) {
        h->p++;
        return 1;
    }
    return 0;
}

/* a quoted Python string (no escapes in the keys and values numpy writes) */
static int im__npyh_str(im__npyh *h, const char **s, size_t *n)
{
    im__npyh_ws(h);
    if (h->p >= h->e || (*h->p != '\'' && *h->p != '"')) return -1;
    char q = *h->p++;
    const char *st = h->p;
    while (h->p < h->e && *h->p != q) {
        if (*h->p == '\\') return -1;
        h->p++;
    }
    if (h->p >= h->e) return -1;
    *s = st;
    *n = (size_t)(h->p - st);
    h->p++;
    return 0;
}

int im_npy_read(const void *buf, size_t len, im_ndarray *a, char *err, size_t errlen)
{
    const unsigned char *b = (const unsigned char *)buf;
    memset(a, 0, sizeof *a);
    if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return im__npy_fail(err, errlen, "not a .npy image: it does not start with \\x93NUMPY");
    unsigned major = b[6];
    size_t hl, off;
    if (major == 1) {
        hl = (size_t)b[8] | (size_t)b[9] << 8;
        off = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) return im__npy_fail(err, errlen, "the .npy header is cut short");
        hl = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        off = 12;
    } else {
        char m[80];
        snprintf(m, sizeof m, ".npy version %u.%u is not one of 1.0, 2.0, 3.0", major, b[7]);
        return im__npy_fail(err, errlen, m);
    }
    if (hl > len - off) return im__npy_fail(err, errlen, "the .npy header is cut short");
    if ((off + hl) % 16 != 0)
        return im__npy_fail(err, errlen, "the .npy header's length is not a multiple of 16");
    im__npyh h = {(const char *)b + off, (const char *)b + off + hl};
    /* the dict ends with '\n' (and may be padded with spaces before it) */
    if (hl == 0 || h.e[-1] != '\n') return im__npy_fail(err, errlen, "the .npy header does not end with a newline");
    h.e--;
    if (!im__npyh_eat(&h, '{')) return im__npy_fail(err, errlen, "the .npy header is no dict");
    int have_descr = 0, have_order = 0, have_shape = 0, fortran = 0;
    a->dtype = -1;
    for (;;) {
        if (im__npyh_eat(&h, '}')) break;
        const char *k;
        size_t kn;
        if (im__npyh_str(&h, &k, &kn) || !im__npyh_eat(&h, ':'))
            return im__npy_fail(err, errlen, "the .npy header's dict is malformed");
        if (kn == 5 && memcmp(k, "descr", 5) == 0) {
            const char *d;
            size_t dn;
            if (have_descr++ || im__npyh_str(&h, &d, &dn))
                return im__npy_fail(err, errlen, "the .npy header's 'descr' is not a string");
            for (int t = 0; t < IM_DT_COUNT; t++)
                if ((dn == 3 && memcmp(d, im__dtypes[t].descr, 3) == 0) ||
                    (im__dtypes[t].alt && dn == 3 && memcmp(d, im__dtypes[t].alt, 3) == 0))
                    a->dtype = t;
            if (a->dtype < 0) {
                char m[160];
                if (dn >= 1 && d[0] == '>')
                    snprintf(m, sizeof m, "the array is big-endian ('%.*s'): send it "
                             "little-endian (arr.astype(arr.dtype.newbyteorder('<')))", (int)(dn > 16 ? 16 : dn), d);
                else
                    snprintf(m, sizeof m, "dtype '%.*s' is not one of f64, f32, i64, i32, u8 "
                             "('<f8', '<f4', '<i8', '<i4', '|u1')", (int)(dn > 16 ? 16 : dn), d);
                return im__npy_fail(err, errlen, m);
            }
        } else if (kn == 13 && memcmp(k, "fortran_order", 13) == 0) {
            im__npyh_ws(&h);
            if (have_order++) return im__npy_fail(err, errlen, "'fortran_order' given twice");
            if (h.e - h.p >= 4 && memcmp(h.p, "True", 4) == 0) { fortran = 1; h.p += 4; }
            else if (h.e - h.p >= 5 && memcmp(h.p, "False", 5) == 0) h.p += 5;
            else return im__npy_fail(err, errlen, "'fortran_order' is not True or False");
        } else if (kn == 5 && memcmp(k, "shape", 5) == 0) {
            if (have_shape++ || !im__npyh_eat(&h, '('))
                return im__npy_fail(err, errlen, "the .npy header's 'shape' is not a tuple");
            for (;;) {
                if (im__npyh_eat(&h, ')')) break;
                if (a->ndim == IM_NDARRAY_MAX_DIMS)
                    return im__npy_fail(err, errlen, "the array has more than 8 dimensions");
                im__npyh_ws(&h);
                int64_t v = 0;
                int digits = 0;
                while (h.p < h.e && *h.p >= '0' && *h.p <= '9') {
                    if (v > (INT64_MAX - 9) / 10) return im__npy_fail(err, errlen, "a dimension is too large");
                    v = v * 10 + (*h.p++ - '0');
                    digits++;
                }
                if (h.p < h.e && *h.p == 'L') h.p++; /* Python 2's long */
                if (!digits) return im__npy_fail(err, errlen, "the .npy header's 'shape' holds a non-integer");
                a->shape[a->ndim++] = v;
                if (im__npyh_eat(&h, ',')) continue;
                if (im__npyh_eat(&h, ')')) break;
                return im__npy_fail(err, errlen, "the .npy header's 'shape' is malformed");
            }
        } else {
            return im__npy_fail(err, errlen, "the .npy header has a key other than 'descr', "
                                "'fortran_order' and 'shape'");
        }
        if (im__npyh_eat(&h, ',')) continue;
        if (im__npyh_eat(&h, '}')) break;
        return im__npy_fail(err, errlen, "the .npy header's dict is malformed");
    }
    im__npyh_ws(&h);
    if (h.p != h.e) return im__npy_fail(err, errlen, "the .npy header has text after its dict");
    if (!have_descr || !have_order || !have_shape)
        return im__npy_fail(err, errlen, "the .npy header lacks 'descr', 'fortran_order' or 'shape'");
    size_t isz = im__dtypes[a->dtype].size;
    int64_t count = im_ndarray_count(a->shape, a->ndim, isz);
    if (count < 0) return im__npy_fail(err, errlen, "the array's shape is too large");
    /* Fortran order is the same bytes as C order when at most one dimension is above 1 */
    int big = 0;
    for (int i = 0; i < a->ndim; i++) big += a->shape[i] > 1;
    if (fortran && big > 1)
        return im__npy_fail(err, errlen, "the array is in Fortran order: send it in C order "
                            "(np.ascontiguousarray(arr))");
    a->nbytes = (size_t)count * isz;
    size_t data = off + hl;
    if (len - data != a->nbytes) {
        char m[160];
        snprintf(m, sizeof m, "the array's shape needs %zu bytes of data, the body holds %zu",
                 a->nbytes, len - data);
        return im__npy_fail(err, errlen, m);
    }
    a->data = (void *)(uintptr_t)(b + data);
    return 0;
}

size_t im_npy_data_offset(const void *buf)
{
    const unsigned char *b = (const unsigned char *)buf;
    if (b[6] == 1) return 10 + ((size_t)b[8] | (size_t)b[9] << 8);
    return 12 + ((size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24);
}

int im_npy_header(int dtype, int ndim, const int64_t *shape, char *out, size_t cap)
{
    if ((unsigned)dtype >= IM_DT_COUNT || ndim < 0 || ndim > IM_NDARRAY_MAX_DIMS) return -EINVAL;
    char dict[400];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     im__dtypes[dtype].descr);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -EINVAL;
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%lld", i ? ", " : "",
                      (long long)shape[i]);
    }
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", ndim == 1 ? "," : "");
    size_t total = 10 + (size_t)n + 1;
    total = (total + 63) / 64 * 64; /* as numpy pads: the data starts 64-byte aligned */
    if (total > cap) return -ENOSPC;
    size_t hl = total - 10;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (char)(hl & 0xff);
    out[9] = (char)(hl >> 8);
    memcpy(out + 10, dict, (size_t)n);
    memset(out + 10 + n, ' ', hl - (size_t)n - 1);
    out[total - 1] = '\n';
    return (int)total;
}
