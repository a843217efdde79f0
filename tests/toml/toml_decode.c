/* toml_decode.c — toml-decode: the decoder interface of toml-test (github.com/toml-lang/toml-test)
 * on immersive's TOML reader. TOML on stdin; the suite's tagged JSON on stdout and exit 0, or
 * the error ("file:line:col: reason") on stderr and exit 1. Usage: toml-decode [NAME] */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

int main(int argc, char **argv)
{
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    for (;;) {
        if (!text) { fprintf(stderr, "toml-decode: out of memory\n"); return 2; }
        size_t n = fread(text + len, 1, cap - len, stdin);
        len += n;
        if (n == 0) break;
        if (len == cap) text = realloc(text, cap *= 2);
    }
    char err[512];
    im_toml *doc = im_toml_parse(text, len, argc > 1 ? argv[1] : "stdin", err, sizeof err);
    free(text);
    if (!doc) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    im_jw w;
    im_jw_init(&w, NULL, 0);
    im_toml_json(doc, &w, 1);
    im_toml_free(doc);
    if (im_jw_error(&w)) { fprintf(stderr, "toml-decode: cannot write JSON\n"); return 2; }
    fwrite(w.buf, 1, w.len, stdout);
    putchar('\n');
    im_jw_free(&w);
    return 0;
}
