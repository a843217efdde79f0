/* test_json_write.c — the JSON writer: commas and nesting, escaping, invalid UTF-8 replaced,
 * numbers that read back exactly, fixed buffers used to their last byte, misuse reported. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "support/check.h"


static void expect(im_jw *w, const char *want)
{
    CHECK(im_jw_error(w) == 0, "error %d for %s", im_jw_error(w), want);
    CHECK(w->len == strlen(want) && memcmp(w->buf, want, w->len) == 0, "got '%.*s', want '%s'",
          (int)w->len, w->buf, want);
}

int main(void)
{
    im_jw w;
    char small[64];

    im_jw_init(&w, NULL, 0);
    im_jw_obj(&w);
    im_jw_key(&w, "a");
    im_jw_int(&w, -9223372036854775807LL - 1);
    im_jw_key(&w, "b");
    im_jw_arr(&w);
    im_jw_uint(&w, 18446744073709551615ULL);
    im_jw_bool(&w, 1);
    im_jw_null(&w);
    im_jw_obj(&w);
    im_jw_obj_end(&w);
    im_jw_arr(&w);
    im_jw_arr_end(&w);
    im_jw_str(&w, "");
    im_jw_arr_end(&w);
    im_jw_key(&w, "c");
    im_jw_raw(&w, "{\"x\":1}", 7);
    im_jw_obj_end(&w);
    expect(&w, "{\"a\":-9223372036854775808,\"b\":[18446744073709551615,true,null,{},[],\"\"],"
               "\"c\":{\"x\":1}}");
    im_jw_free(&w);

    /* escapes: quotes, backslash, controls, DEL kept, UTF-8 kept, invalid bytes replaced */
    im_jw_init(&w, NULL, 0);
    static const char esc[] = "q\"b\\n\n\r\t\b\f\x01\x1f\x7f caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    im_jw_strn(&w, esc, sizeof esc - 1);
    expect(&w, "\"q\\\"b\\\\n\\n\\r\\t\\b\\f\\u0001\\u001f\x7f caf\xc3\xa9 \xe2\x82\xac "
               "\xf0\x9f\x98\x80\"");
    im_jw_reset(&w);
    static const char bad[] = "a\xff" "b\xc3" "c\xed\xa0\x80" "d\xc0\xaf" "e\xf4\x90\x80\x80";
    im_jw_strn(&w, bad, sizeof bad - 1);
    expect(&w, "\"a\\ufffdb\\ufffdc\\ufffd\\ufffd\\ufffdd\\ufffd\\ufffde\\ufffd\\ufffd\\ufffd"
               "\\ufffd\"");
    im_jw_reset(&w);
    im_jw_strn(&w, "nul\0in", 6);
    expect(&w, "\"nul\\u0000in\"");
    im_jw_free(&w);

    /* doubles: shortest form that reads back the same; no NaN in JSON */
    const double ds[] = {0.1, 1.0 / 3, 1e300, -2.5e-308, 123456789.0, 5e-324, 0.0};
    for (size_t i = 0; i < sizeof ds / sizeof *ds; i++) {
        im_jw_init(&w, small, sizeof small);
        im_jw_double(&w, ds[i]);
        small[w.len] = 0;
        CHECK(strtod(small, NULL) == ds[i], "%.17g written as %s", ds[i], small);
    }
    im_jw_init(&w, small, sizeof small);
    im_jw_double(&w, 0.1);
    expect(&w, "0.1");
    im_jw_init(&w, small, sizeof small);
    im_jw_arr(&w);
    im_jw_double(&w, NAN);
    im_jw_double(&w, -INFINITY);
    im_jw_arr_end(&w);
    expect(&w, "[null,null]");

    /* a fixed buffer: exactly full is fine, one byte more is -ENOSPC (sticky) */
    char exact[7];
    im_jw_init(&w, exact, sizeof exact);
    im_jw_str(&w, "abcde");
    expect(&w, "\"abcde\"");
    im_jw_init(&w, exact, sizeof exact);
    im_jw_str(&w, "abcdef");
    CHECK(im_jw_error(&w) == -ENOSPC, "overflow: %d", im_jw_error(&w));
    im_jw_null(&w);
    CHECK(im_jw_error(&w) == -ENOSPC && w.len == 0, "sticky");

    /* misuse */
    im_jw_init(&w, small, sizeof small);
    im_jw_obj(&w);
    im_jw_int(&w, 1); /* a value where a key belongs */
    CHECK(im_jw_error(&w) == -EINVAL, "value without key");
    im_jw_init(&w, small, sizeof small);
    im_jw_arr(&w);
    im_jw_obj_end(&w);
    CHECK(im_jw_error(&w) == -EINVAL, "mismatched close");
    im_jw_init(&w, small, sizeof small);
    im_jw_obj(&w);
    CHECK(im_jw_error(&w) == -EINVAL, "unclosed");
    im_jw_init(&w, NULL, 0);
    for (int i = 0; i < IM_JW_MAX_DEPTH + 5; i++) im_jw_arr(&w);
    CHECK(im_jw_error(&w) == -EINVAL, "too deep");
    im_jw_free(&w);

    return check_exit("json writer");
}
