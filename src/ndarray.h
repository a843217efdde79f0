/* ndarray.h — n-dimensional numeric arrays (im_ndarray) and numpy's .npy format: the reader
 * (what np.save writes: versions 1.0 to 3.0, little-endian, C order; no copy of the data) and
 * the header writer (so that np.load reads what a service answers). */

typedef enum im_dtype {
    IM_DT_F64 = 0, /* '<f8' double */
    IM_DT_F32,     /* '<f4' float */
    IM_DT_I64,     /* '<i8' int64_t */
    IM_DT_I32,     /* '<i4' int32_t */
    IM_DT_U8,      /* '|u1' uint8_t */
    IM_DT_COUNT
} im_dtype;

#define IM_NDARRAY_MAX_DIMS 8

/* An array: data in C order (the last index varies fastest), borrowed from wherever it was
 * read (a request's body, a call's memory). ndim 0 is a scalar (one element). */
typedef struct im_ndarray {
    void *data;
    int dtype;                          /* im_dtype */
    int ndim;                           /* 0 .. IM_NDARRAY_MAX_DIMS */
    int64_t shape[IM_NDARRAY_MAX_DIMS];
    size_t nbytes;                      /* elements x item size */
} im_ndarray;

/* Bytes of one element of dtype (0 for none), its numpy descr ("<f8"), its name ("f64"). */
size_t im_dtype_size(int dtype);
const char *im_dtype_descr(int dtype);
const char *im_dtype_name(int dtype);
/* Elements of a shape; -1 when they (or their bytes, with item size isz) overflow. */
int64_t im_ndarray_count(const int64_t *shape, int ndim, size_t isz);

/* 0 when a is consistent (a known dtype, 0..8 dimensions of >= 0 elements, nbytes = their
 * count x item size, data set when nbytes > 0); else -EINVAL with the reason in err. A
 * handler's result is checked so before it is written. */
int im_ndarray_check(const im_ndarray *a, char *err, size_t errlen);
/* Writes a as JSON nested arrays (a number for 0 dimensions; NaN and inf as null). */
void im_jw_ndarray(im_jw *w, const im_ndarray *a);

/* Reads a .npy image buf[0..len): a->data points into buf (no copy). Returns 0, or -EINVAL
 * with the reason in err (a bad magic or header, a big-endian or Fortran-order array, a dtype
 * other than those above, more than IM_NDARRAY_MAX_DIMS dimensions, data shorter or longer
 * than the shape says). a->data is aligned for its type only if buf + header is: see
 * im_npy_data_offset. */
int im_npy_read(const void *buf, size_t len, im_ndarray *a, char *err, size_t errlen);
/* Where the data starts in a .npy image (after im_npy_read succeeded on it): a multiple of 16
 * (64 for what numpy writes), so data is aligned when the image is. */
size_t im_npy_data_offset(const void *buf);
/* Writes the .npy header (version 1.0, padded to 64 bytes) of an array of dtype and shape into
 * out[0..cap); the data follows it unchanged. Returns the header's length, or -ENOSPC (cap
 * below 128 is never enough for 8 dimensions) or -EINVAL. */
int im_npy_header(int dtype, int ndim, const int64_t *shape, char *out, size_t cap);
