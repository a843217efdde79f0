/* test_json_read.c — the JSON reader: the JSONTestSuite corpus (every y_ accepted, every n_
 * refused with an offset inside the text, every i_ either but without a crash), each file read
 * both from a read-only text and decoded in place; then table cases for numbers, escapes,
 * surrogates, UTF-8 and depth that the binders rely on.
 * usage: test_json_read CORPORA_DIR   (skips, exit 77, when the corpus is absent) */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "support/check.h"
#include "support/json_walk.h"



static int check_in_place(const char *text, size_t len, im_json *j)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, text, len);
    im_json_init(j, copy, len, 1);
    int rc = json_walk(j);
    if (!rc) rc = im_json_finish(j);
    free(copy);
    return rc;
}

static void corpus(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/json-test-suite/test_parsing", dir);
    DIR *d = opendir(path);
    if (!d) {
        printf("JSONTestSuite not found at %s: skipped (set IM_CORPORA)\n", path);
        exit(77);
    }
    struct dirent *e;
    int y = 0, n = 0, i = 0;
    while ((e = readdir(d))) {
        const char *name = e->d_name;
        if (strlen(name) < 3 || name[1] != '_') continue;
        char file[8192];
        snprintf(file, sizeof file, "%s/%s", path, name);
        FILE *f = fopen(file, "rb");
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *text = malloc((size_t)len + 1);
        if (fread(text, 1, (size_t)len, f) != (size_t)len) len = 0;
        fclose(f);
        im_json j1, j2;
        int r1 = im_json_check(&j1, text, (size_t)len);
        int r2 = check_in_place(text, (size_t)len, &j2);
        CHECK((r1 == 0) == (r2 == 0), "%s: read-only %d, in place %d", name, r1, r2);
        if (name[0] == 'y') {
            y++;
            CHECK(r1 == 0, "%s must be accepted: %s at %zu", name, j1.msg, j1.err_off);
        } else if (name[0] == 'n') {
            n++;
            CHECK(r1 < 0, "%s must be refused", name);
            CHECK(r1 == 0 || (j1.msg && j1.err_off <= (size_t)len), "%s: error without a place", name);
        } else {
            i++; /* either answer; surviving is the test (ASan and UBSan run it too) */
        }
        free(text);
    }
    closedir(d);
    printf("JSONTestSuite: %d y_ accepted, %d n_ refused, %d i_ survived\n", y, n, i);
    CHECK(y > 90 && n > 180, "the corpus looks incomplete (%d y_, %d n_)", y, n);
}

static void numbers(void)
{
    static const struct {
        const char *in;
        int is_int;
        long long i;
        double d;
    } cases[] = {
        {"0", 1, 0, 0}, {"-0", 1, 0, -0.0}, {"9223372036854775807", 1, 9223372036854775807LL, 9223372036854775807.0},
        {"-9223372036854775808", 1, (-9223372036854775807LL - 1), -9223372036854775808.0},
        {"9223372036854775808", 0, 0, 9223372036854775808.0}, {"1.5", 0, 0, 1.5}, {"1e2", 0, 0, 100},
        {"0.1", 0, 0, 0.1}, {"123.456e-7", 0, 0, 123.456e-7}, {"1E+2", 0, 0, 100},
        {"2.2250738585072011e-308", 0, 0, 2.2250738585072011e-308},
        {"12345678901234567890123", 0, 0, 12345678901234567890123.0},
        {"0.30000000000000004", 0, 0, 0.30000000000000004}, {"1e-400", 0, 0, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        im_json j;
        im_json_num n = {{NULL, 0}, 0, 0, 0};
        im_json_init(&j, cases[k].in, strlen(cases[k].in), 0);
        int rc = im_json_number(&j, &n);
        CHECK(rc == 0 && n.is_int == cases[k].is_int && (!n.is_int || n.i == cases[k].i) &&
                  n.d == cases[k].d,
              "%s: rc %d int %d %lld %.17g", cases[k].in, rc, n.is_int, (long long)n.i, n.d);
    }
    im_json j;
    im_json_num n = {{NULL, 0}, 0, 0, 0};
    im_json_init(&j, "1e999", 5, 0);
    CHECK(im_json_number(&j, &n) == 0 && isinf(n.d), "huge exponent reads as inf (binders refuse it)");
    static const char *const bad[] = {"01", "-", "1.", ".5", "1e", "+1", "0x10", "1.e3", "-01"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++)
        CHECK(im_json_check(&j, bad[k], strlen(bad[k])) < 0, "%s is not a number", bad[k]);
}

static void strings(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", "a\"b\\c/d\b\f\n\r\t"},
        {"\"\\u00e9\\u20ac\"", "\xc3\xa9\xe2\x82\xac"},
        {"\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80"},
        {"\"caf\xc3\xa9\"", "caf\xc3\xa9"},
        {"\"\\u0000x\"", "\0x"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        size_t want = k == 4 ? 2 : strlen(cases[k].out);
        char buf[64], *copy = strdup(cases[k].in);
        im_json j;
        im_str s;
        /* into a buffer */
        im_json_init(&j, cases[k].in, strlen(cases[k].in), 0);
        CHECK(im_json_string(&j, &s, buf, sizeof buf) == 0 && s.len == want && memcmp(s.ptr, cases[k].out, want) == 0,
              "%s (buffer)", cases[k].in);
        /* in place */
        im_json_init(&j, copy, strlen(copy), 1);
        CHECK(im_json_string(&j, &s, NULL, 0) == 0 && s.len == want && memcmp(s.ptr, cases[k].out, want) == 0,
              "%s (in place)", cases[k].in);
        free(copy);
    }
    static const char *const bad[] = {
        "\"\\ud83d\"", "\"\\ude00\"", "\"\\ud83dx\"", "\"\\ud83d\\u0041\"", "\"\\x41\"", "\"a\nb\"",
        "\"\xff\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"abc", "\"\\u12\"",
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        im_json j;
        CHECK(im_json_check(&j, bad[k], strlen(bad[k])) < 0, "bad string %zu accepted", k);
    }
    /* a buffer too small: -ENOSPC, not an overflow */
    char tiny[3];
    im_json j;
    im_str s;
    im_json_init(&j, "\"ab\\ncd\"", 8, 0);
    CHECK(im_json_string(&j, &s, tiny, sizeof tiny) == -ENOSPC, "small buffer");
}

static void structure(void)
{
    char deep[200];
    im_json j;
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    CHECK(im_json_check(&j, deep, 128) == IM_JSON_EDEPTH || im_json_check(&j, deep, 200) == IM_JSON_EDEPTH,
          "100 levels are over the default 64");
    CHECK(im_json_check(&j, deep + 36, 128) == 0, "64 levels are fine");
    static const char *const bad[] = {"{\"a\":1,}", "[1,]", "[,1]", "{\"a\" 1}", "{1:2}", "[1 2]",
                                      "{\"a\":1}x", "", " ", "tru", "nulll", "[", "{\"a\":", "\xef\xbb\xbf{}"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++)
        CHECK(im_json_check(&j, bad[k], strlen(bad[k])) < 0, "'%s' accepted", bad[k]);
    static const char *const good[] = {"{}", "[]", " {\"a\" : [1, {\"b\": null}] } ", "true", "\"x\"", "-0.5e+3"};
    for (size_t k = 0; k < sizeof good / sizeof *good; k++)
        CHECK(im_json_check(&j, good[k], strlen(good[k])) == 0, "'%s' refused: %s", good[k], j.msg);
    /* the error's offset points at the fault */
    CHECK(im_json_check(&j, "[1, 2, x]", 9) < 0 && j.err_off == 7, "offset %zu", j.err_off);
}

int main(int argc, char **argv)
{
    numbers();
    strings();
    structure();
    corpus(argc > 1 ? argv[1] : "../shared/corpora");
    return check_exit("json reader");
}
