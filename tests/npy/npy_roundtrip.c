/* npy_roundtrip.c — reads one .npy image on stdin with im_npy_read and writes it back on
 * stdout with im_npy_header and the same data (what a service answers for
 * Accept: application/x-npy); a summary line goes to stderr. Exit 1 with the reason on stderr
 * when the image is refused. The numpy test (test_npy.py) drives it. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

int main(void)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) return 2;
        size_t n = fread(buf + len, 1, cap - len, stdin);
        len += n;
        if (n == 0) break;
        if (len == cap) buf = realloc(buf, cap *= 2);
    }
    im_ndarray a;
    char err[256];
    if (im_npy_read(buf, len, &a, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if ((size_t)((char *)a.data - buf) != im_npy_data_offset(buf)) return 3;
    char head[256];
    int hl = im_npy_header(a.dtype, a.ndim, a.shape, head, sizeof head);
    if (hl < 0) return 4;
    fwrite(head, 1, (size_t)hl, stdout);
    fwrite(a.data, 1, a.nbytes, stdout);
    fprintf(stderr, "%s ndim=%d nbytes=%zu\n", im_dtype_name(a.dtype), a.ndim, a.nbytes);
    free(buf);
    return 0;
}
