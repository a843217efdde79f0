/* fuzz_npy.c — libFuzzer target for the .npy reader: any bytes are refused with a reason or
 * read into an array whose data lies inside the input, whose size matches its shape, and whose
 * header, written again, reads back to the same dtype and shape. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    im_ndarray a;
    char err[256];
    if (im_npy_read(data, size, &a, err, sizeof err)) {
        if (!err[0]) abort();
        return 0;
    }
    const unsigned char *d = a.data;
    if (d < data || d + a.nbytes != data + size) abort(); /* the data is the input's tail */
    if ((size_t)im_ndarray_count(a.shape, a.ndim, 1) * im_dtype_size(a.dtype) != a.nbytes) abort();
    char head[256];
    int hl = im_npy_header(a.dtype, a.ndim, a.shape, head, sizeof head);
    if (hl <= 0 || hl % 64) abort();
    unsigned char *copy = malloc((size_t)hl + a.nbytes + 1);
    memcpy(copy, head, (size_t)hl);
    if (a.nbytes) memcpy(copy + hl, a.data, a.nbytes);
    im_ndarray b;
    if (im_npy_read(copy, (size_t)hl + a.nbytes, &b, err, sizeof err) || b.dtype != a.dtype ||
        b.ndim != a.ndim || memcmp(b.shape, a.shape, sizeof a.shape) != 0)
        abort();
    free(copy);
    return 0;
}
