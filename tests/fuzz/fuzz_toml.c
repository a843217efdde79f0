/* fuzz_toml.c — libFuzzer target for the TOML reader: any bytes are either refused with a
 * "name:line:col: reason" message or read into a tree that copies, prints as JSON (plain and
 * tagged) and frees without a leak; a lookup by each top-level key finds that key. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char err[256];
    im_toml *t = im_toml_parse((const char *)data, size, "f", err, sizeof err);
    if (!t) {
        if (strncmp(err, "f:", 2) != 0) abort(); /* every refusal says where */
        return 0;
    }
    im_toml *c = im_toml_dup(t);
    for (int tagged = 0; tagged < 2; tagged++) {
        im_jw w;
        im_jw_init(&w, NULL, 0);
        im_toml_json(c, &w, tagged);
        if (im_jw_error(&w)) abort();
        im_jw_free(&w);
    }
    for (size_t i = 0; i < im_toml_len(t); i++) {
        const im_toml *k = im_toml_at(t, i);
        if (im_toml_find(t, k->key, k->key_len) != k) abort();
    }
    im_toml_free(c);
    im_toml_free(t);
    return 0;
}
