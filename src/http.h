/* http.h — HTTP/1.x request head parser and chunked body decoder. Public so that tests,
 * fuzzers and users' own protocols can call them: the caller's buffer in, views out, no
 * allocation (picohttpparser's shape, with strict framing rules against request smuggling). */

/* One header line. Both views borrow from the parsed buffer; value has no surrounding OWS. */
typedef struct im_header {
    im_str name;
    im_str value;
} im_header;

#define IM_HTTP_ERROR (-1)      /* malformed: the parser left a status and a message */
#define IM_HTTP_INCOMPLETE (-2) /* need more bytes: call again with the longer buffer */

/* What im_http_parse_head() learned. All views borrow from its buffer. */
typedef struct im_http_head {
    im_str method;  /* token, case-sensitive ("GET") */
    im_str target;  /* request-target as sent */
    im_str path;    /* its path ("/" for an absolute-form target without one, "*" for OPTIONS *) */
    im_str query;   /* after '?', without it; len 0 when none */
    int minor;      /* HTTP/1.<minor>: 0 or 1 (1.2 and up are served as 1.1) */
    im_header *headers;           /* the caller's array, filled in order */
    unsigned num_headers;         /* entries used */
    uint64_t content_length;      /* valid when has_content_length */
    unsigned has_content_length : 1; /* one valid Content-Length header */
    unsigned chunked : 1;            /* Transfer-Encoding: chunked */
    unsigned conn_close : 1;         /* Connection: close */
    unsigned conn_keep_alive : 1;    /* Connection: keep-alive */
    unsigned expect_continue : 1;    /* Expect: 100-continue */
    unsigned expect_unknown : 1;     /* another Expect value: answer 417 */
    int status;          /* on IM_HTTP_ERROR: 400, 414, 431, 501 or 505 */
    const char *error;   /* on IM_HTTP_ERROR: what was wrong (static string) */
    size_t error_offset; /* on IM_HTTP_ERROR: where, as a byte offset into the buffer */
} im_http_head;

/* Parses a request line and header block from buf[0..len).
 * headers/max_headers: the caller's array for the header lines.
 * max_bytes: the longest head accepted (0: no limit); past it 431 (414 in the request line).
 * Returns the head's length in bytes (through the blank line), IM_HTTP_INCOMPLETE, or
 * IM_HTTP_ERROR with h->status, h->error and h->error_offset set. Leading blank lines are
 * skipped (RFC 9112 section 2.2) and counted in the length. */
int im_http_parse_head(const char *buf, size_t len, im_http_head *h, im_header *headers,
                       unsigned max_headers, size_t max_bytes);

/* State of an incremental chunked-body decoder. Zero it, set the limits, then feed it. */
typedef struct im_http_chunked {
    uint64_t size;         /* bytes left in the current chunk */
    uint64_t total;        /* decoded body bytes so far */
    uint64_t max_total;    /* body limit (0: none): past it IM_HTTP_ERROR with status 413 */
    uint32_t max_line;     /* longest chunk-size line or trailer line (0: 4096) */
    uint32_t max_trailer;  /* longest trailer section (0: 16384); past it status 431 */
    uint32_t line;         /* bytes in the current line */
    uint32_t trailer;      /* trailer bytes so far */
    uint8_t state;         /* private */
    uint8_t digits;        /* private */
    int status;            /* on IM_HTTP_ERROR: 400, 413 or 431 */
    const char *error;     /* on IM_HTTP_ERROR: what was wrong (static string) */
} im_http_chunked;

/* Decodes chunked framing from src[0..srclen) into dst. dst may be src itself or lie before it
 * (decoding in place). Sets *consumed (raw bytes read) and *produced (body bytes written).
 * Returns 1 once the last chunk and trailers are read (bytes after them are not consumed),
 * 0 when more input is needed, IM_HTTP_ERROR on bad framing or a body over the limit. */
int im_http_decode_chunked(im_http_chunked *d, char *dst, const char *src, size_t srclen,
                           size_t *consumed, size_t *produced);
