/* test_lang.c — the annotations of the generator's second pass, through the real request path
 * (tests/lang's handlers echo what they were given): uint32, uint64 and float with their
 * ranges, .multiple_of, query and path values read as FastAPI reads them (signs, leading
 * zeros, '_', ".5", "1e3", %-decoded keys, the last of a repeated key), header and cookie
 * arguments, .alias on path, query and body keys, .nullable told apart from absent, a
 * handler's own documented failures, a named enum (IM_ENUM), a whole body (IM_BODY) and
 * answers that are the object or array itself. Expected bodies are compared
 * byte for byte. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "support/check.h"

#include "lang.service.h"
#include "support/fake_loop.h"

static im_server *srv;
static im_loop L;

/* Sends one request with extra header lines (each ending in \r\n, or NULL); returns the
 * status and copies the body into body[]. */
static int call(const char *method, const char *target, const char *headers, const char *json,
                char *body, size_t cap)
{
    static char req[1 << 16];
    im__conn *c = fake_conn(&L);
    int n = json ? snprintf(req, sizeof req,
                            "%s %s HTTP/1.1\r\nHost: t\r\n%sContent-Type: application/json\r\n"
                            "Content-Length: %zu\r\n\r\n%s",
                            method, target, headers ? headers : "", strlen(json), json)
                 : snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\n%s\r\n", method, target,
                            headers ? headers : "");
    if (n < 0 || (size_t)n >= sizeof req) return -1; /* the test's own request too long */
    fake_feed(&L, c, req, (size_t)n);
    if (!c->out) return -1;
    static char out[1 << 16];
    size_t len = c->out->len < sizeof out - 1 ? c->out->len : sizeof out - 1;
    memcpy(out, c->out->data, len);
    out[len] = 0;
    const char *b = strstr(out, "\r\n\r\n");
    snprintf(body, cap, "%s", b ? b + 4 : "");
    return atoi(out + 9);
}

static void expect(const char *method, const char *target, const char *headers, const char *json,
                   int status, const char *want)
{
    char body[16384];
    int st = call(method, target, headers, json, body, sizeof body);
    CHECK(st == status && (!want || strcmp(body, want) == 0), "%s %s %s%s\n  got  %d %s\n  want %d %s",
          method, target, headers ? headers : "", json ? json : "", st, body, status, want ? want : "(any)");
}

/* The answer is a 422 holding each needle, in order. */
static void expect_422(const char *method, const char *target, const char *headers, const char *json,
                       const char *const *needles)
{
    char body[16384];
    int st = call(method, target, headers, json, body, sizeof body);
    const char *p = body;
    CHECK(st == 422, "%s %s %s: status %d, want 422: %s", method, target, json ? json : "", st, body);
    for (; *needles; needles++) {
        const char *q = strstr(p, *needles);
        CHECK(q, "%s %s %s: '%s' missing (in order) from %s", method, target, json ? json : "", *needles, body);
        if (q) p = q + strlen(*needles);
    }
}

#define E422(m, t, h, j, ...)                                \
    do {                                                     \
        const char *needles_[] = {__VA_ARGS__, NULL};        \
        expect_422(m, t, h, j, needles_);                    \
    } while (0)

static void test_numbers(void)
{
    expect("POST", "/l/nums", NULL,
           "{\"u32\":4294967295,\"u64\":18446744073709551615,\"f\":0.1,\"m5\":-15,\"q\":1.75,\"fs\":[1.5,-2,3.4e38]}",
           200, "{\"u32\":4294967295,\"u64\":18446744073709551615,\"f\":0.1,\"m5\":-15,\"q\":1.75,\"fs\":[1.5,-2,3.4e+38]}");
    /* defaults; 3.0 and 1e19 are integers; a big uint64 at its bound */
    expect("POST", "/l/nums", NULL, "{\"u32\":3.0,\"u64\":1e19,\"f\":1,\"big\":10000000000000000000}", 200,
           "{\"u32\":3,\"u64\":10000000000000000000,\"big\":10000000000000000000,\"f\":1,\"m5\":10,\"q\":0.5}");
    E422("POST", "/l/nums", NULL, "{\"u32\":4294967296,\"u64\":18446744073709551616,\"f\":1e39}",
         "\"type\":\"int_range\",\"loc\":[\"body\",\"u32\"],\"msg\":\"Input should be an integer from 0 to 4294967295\",\"input\":4294967296",
         "\"type\":\"int_range\",\"loc\":[\"body\",\"u64\"],\"msg\":\"Input should be an integer from 0 to 18446744073709551615\"",
         "\"type\":\"float_range\",\"loc\":[\"body\",\"f\"]");
    E422("POST", "/l/nums", NULL, "{\"u32\":-1,\"u64\":-1,\"f\":0,\"m5\":7,\"q\":0.3,\"big\":9999999999999999999}",
         "\"type\":\"int_range\",\"loc\":[\"body\",\"u32\"]", "\"type\":\"int_range\",\"loc\":[\"body\",\"u64\"]",
         "\"type\":\"greater_than\",\"loc\":[\"body\",\"f\"],\"msg\":\"Input should be greater than 0\"",
         "\"type\":\"multiple_of\",\"loc\":[\"body\",\"m5\"],\"msg\":\"Input should be a multiple of 5\",\"input\":7,\"ctx\":{\"multiple_of\":5}",
         "\"type\":\"multiple_of\",\"loc\":[\"body\",\"q\"],\"msg\":\"Input should be a multiple of 0.25\",\"input\":0.3,\"ctx\":{\"multiple_of\":0.25}",
         "\"type\":\"greater_than_equal\",\"loc\":[\"body\",\"big\"],\"msg\":\"Input should be greater than or equal to 10000000000000000000\"");
    E422("POST", "/l/nums", NULL, "{\"u32\":2.5,\"u64\":\"1\",\"f\":\"x\",\"fs\":[1,1e39,2,3,4]}",
         "\"type\":\"int_from_float\",\"loc\":[\"body\",\"u32\"]", "\"type\":\"int_type\",\"loc\":[\"body\",\"u64\"]",
         "\"type\":\"float_type\",\"loc\":[\"body\",\"f\"]", "\"type\":\"too_long\",\"loc\":[\"body\",\"fs\"]");
    E422("POST", "/l/nums", NULL, "{\"u32\":1,\"u64\":1,\"f\":1,\"fs\":[1,1e39]}",
         "\"type\":\"float_range\",\"loc\":[\"body\",\"fs\",1]");
    /* Regression: -9223372036854775809 rounds to INT64_MIN as a double, and was taken for it */
    E422("POST", "/l/nums", NULL, "{\"u32\":1,\"u64\":1,\"f\":1,\"m5\":-9223372036854775809}",
         "\"type\":\"int_range\",\"loc\":[\"body\",\"m5\"],\"msg\":\"Input should be an integer from -9223372036854775808 to 9223372036854775807\"");
    E422("GET", "/l/query?i=9223372036854775808", NULL, NULL, "\"type\":\"int_range\",\"loc\":[\"query\",\"i\"]");
    /* -0 is an unsigned zero; a multiple of 5 may be negative or zero */
    expect("POST", "/l/nums", NULL, "{\"u32\":-0,\"u64\":0,\"f\":1e-30,\"m5\":0,\"q\":-2.25}", 200,
           "{\"u32\":0,\"u64\":0,\"f\":1e-30,\"m5\":0,\"q\":-2.25}");
}

static void test_query_text(void)
{
    expect("GET", "/l/query?i=+5&d=.5&b=on&u=05", NULL, NULL, 200, "{\"i\":5,\"d\":0.5,\"b\":true,\"u\":5}");
    expect("GET", "/l/query?i=%2B7&d=5.&b=NO&u=0", NULL, NULL, 200, "{\"i\":7,\"d\":5,\"b\":false,\"u\":0}");
    expect("GET", "/l/query?i=1_000&d=1e3", NULL, NULL, 200, "{\"i\":1000,\"d\":1000,\"b\":false,\"u\":0}");
    expect("GET", "/l/query?i=%20-42%20&d=-1_0.2_5e1", NULL, NULL, 200, "{\"i\":-42,\"d\":-102.5,\"b\":false,\"u\":0}");
    expect("GET", "/l/query?i=-007&d=+0.000", NULL, NULL, 200, "{\"i\":-7,\"d\":0,\"b\":false,\"u\":0}");
    /* the last of a repeated scalar wins; keys are %-decoded, for scalars and arrays */
    expect("GET", "/l/query?i=1&i=2&b=yes&b=off", NULL, NULL, 200, "{\"i\":2,\"d\":0,\"b\":false,\"u\":0}");
    expect("GET", "/l/query?%69=3&l%69=1&li=%2B2&&li=03", NULL, NULL, 200,
           "{\"i\":3,\"d\":0,\"b\":false,\"u\":0,\"li\":[1,2,3]}");
    E422("GET", "/l/query?i=1e3&d=inf&u=100", NULL, NULL,
         "\"type\":\"int_parsing\",\"loc\":[\"query\",\"i\"],\"msg\":\"Input should be a valid integer, unable to parse string as an integer\",\"input\":\"1e3\"",
         "\"type\":\"finite_number\",\"loc\":[\"query\",\"d\"]",
         "\"type\":\"less_than_equal\",\"loc\":[\"query\",\"u\"]");
    E422("GET", "/l/query?i=5.0&d=.&u=-1", NULL, NULL, "\"type\":\"int_parsing\",\"loc\":[\"query\",\"i\"]",
         "\"type\":\"float_parsing\",\"loc\":[\"query\",\"d\"]", "\"type\":\"int_range\",\"loc\":[\"query\",\"u\"]");
    E422("GET", "/l/query?i=1__0&d=1e&li=_1", NULL, NULL, "\"type\":\"int_parsing\",\"loc\":[\"query\",\"i\"]",
         "\"type\":\"float_parsing\",\"loc\":[\"query\",\"d\"]", "\"type\":\"int_parsing\",\"loc\":[\"query\",\"li\",0]");
    E422("GET", "/l/query?i=&d=--1&b=maybe", NULL, NULL, "\"type\":\"int_parsing\",\"loc\":[\"query\",\"i\"]",
         "\"type\":\"float_parsing\",\"loc\":[\"query\",\"d\"]", "\"type\":\"bool_parsing\",\"loc\":[\"query\",\"b\"]");
}

static void test_headers_cookies(void)
{
    expect("GET", "/l/headers", "X-Token: abc\r\nCookie: session=s1; theme=\"dark\"\r\n", NULL, 200,
           "{\"x-token\":\"abc\",\"session\":\"s1\",\"theme\":\"dark\"}");
    /* header names are case-insensitive; a cookie's last value wins; defaults apply */
    expect("GET", "/l/headers", "x-token: abcd\r\nuser-agent: t/1\r\nCookie: a=1;session=x; session=y\r\n", NULL, 200,
           "{\"x-token\":\"abcd\",\"agent\":\"t/1\",\"session\":\"y\",\"theme\":\"light\"}");
    E422("GET", "/l/headers", NULL, NULL, "\"type\":\"missing\",\"loc\":[\"header\",\"x-token\"]");
    E422("GET", "/l/headers", "X-Token: ab\r\n", NULL, "\"type\":\"string_too_short\",\"loc\":[\"header\",\"x-token\"]");
    /* a header is not the query */
    E422("GET", "/l/headers?x-token=abc", NULL, NULL, "\"type\":\"missing\",\"loc\":[\"header\",\"x-token\"]");
}

static void test_aliases(void)
{
    expect("POST", "/l/items/7?page-size=3", NULL, "{\"first-name\":\"Ada\",\"at\":{\"x\":1.5,\"tag-no\":4}}", 200,
           "{\"item-id\":7,\"page-size\":3,\"first-name\":\"Ada\",\"at\":{\"x\":1.5,\"tag-no\":4}}");
    expect("POST", "/l/items/1", NULL, "{\"first-name\":\"B\"}", 200, "{\"item-id\":1,\"page-size\":10,\"first-name\":\"B\"}");
    E422("POST", "/l/items/0?page_size=3", NULL, "{\"first_name\":\"A\",\"at\":{\"x\":1,\"tag\":1}}",
         "\"type\":\"greater_than_equal\",\"loc\":[\"path\",\"item-id\"]",
         "\"type\":\"extra_forbidden\",\"loc\":[\"body\",\"first_name\"]",
         "\"type\":\"extra_forbidden\",\"loc\":[\"body\",\"at\",\"tag\"]",
         "\"type\":\"missing\",\"loc\":[\"body\",\"first-name\"]");
    E422("POST", "/l/items/2", NULL, "{\"first-name\":null}", "\"type\":\"string_type\",\"loc\":[\"body\",\"first-name\"]");
}

static void test_nullable(void)
{
    expect("POST", "/l/nulls", NULL, "{\"n\":null}", 200, "{\"n\":null,\"s\":null,\"how\":\"null absent absent absent\"}");
    expect("POST", "/l/nulls", NULL, "{\"n\":5,\"s\":\"x\",\"at\":{\"x\":1},\"e\":\"b\"}", 200,
           "{\"n\":5,\"s\":\"x\",\"how\":\"set set set set\"}");
    expect("POST", "/l/nulls", NULL, "{\"n\":null,\"s\":null,\"at\":null,\"e\":null}", 200,
           "{\"n\":null,\"s\":null,\"how\":\"null null null null\"}");
    E422("POST", "/l/nulls", NULL, "{}", "\"type\":\"missing\",\"loc\":[\"body\",\"n\"]");
    E422("POST", "/l/nulls", NULL, "{\"n\":\"1\",\"e\":\"c\",\"at\":{\"x\":null}}", "\"type\":\"int_type\",\"loc\":[\"body\",\"n\"]",
         "\"type\":\"enum\",\"loc\":[\"body\",\"e\"]", "\"type\":\"float_type\",\"loc\":[\"body\",\"at\",\"x\"]");
}

static void test_named_enum(void)
{
    expect("POST", "/l/shades?q=light", NULL, "{\"s\":\"light\",\"more\":[\"very-dark\",\"light\"]}", 200,
           "{\"result\":\"very-dark\"}");
    expect("POST", "/l/shades", NULL, "{}", 200, "{\"result\":\"dark\"}");
    expect("POST", "/l/shades?q=very-dark", NULL, "{}", 200, "{\"result\":\"very-dark\"}");
    E422("POST", "/l/shades?q=grey", NULL, "{\"s\":\"pale\",\"more\":[\"dark\",1]}",
         "\"type\":\"enum\",\"loc\":[\"query\",\"q\"]",
         "\"type\":\"enum\",\"loc\":[\"body\",\"s\"],\"msg\":\"Input should be 'light', 'dark' or 'very-dark'\",\"input\":\"pale\"",
         "\"type\":\"string_type\",\"loc\":[\"body\",\"more\",1]");
}

static void test_whole_body(void)
{
    /* IM_BODY: the body is the array; the answer is the array */
    expect("POST", "/l/spots/scale?by=3", NULL, "[{\"x\":1.5},{\"x\":-2,\"tag-no\":7}]", 200,
           "[{\"x\":4.5},{\"x\":-6,\"tag-no\":7}]");
    expect("POST", "/l/spots/scale", NULL, "[]", 200, "[]");
    E422("POST", "/l/spots/scale", NULL, "[{\"x\":1},{\"y\":2}]", "\"type\":\"extra_forbidden\",\"loc\":[\"body\",1,\"y\"]",
         "\"type\":\"missing\",\"loc\":[\"body\",1,\"x\"]");
    E422("POST", "/l/spots/scale", NULL, "{\"x\":1}", "\"type\":\"list_type\",\"loc\":[\"body\"]");
    E422("POST", "/l/spots/scale", NULL, NULL, "\"type\":\"missing\",\"loc\":[\"body\"]");
    /* the body is the object, beside a path parameter; the answer is the object */
    expect("PUT", "/l/spot/9", NULL, "{\"x\":2.5}", 200, "{\"x\":2.5,\"tag-no\":9}");
    E422("PUT", "/l/spot/9", NULL, "{\"x\":2000}", "\"type\":\"less_than_equal\",\"loc\":[\"body\",\"x\"]");
    E422("PUT", "/l/spot/9", NULL, "[1]", "\"type\":\"model_attributes_type\",\"loc\":[\"body\"]");
}

static void test_formats_json(void)
{
    expect("POST", "/l/formats", NULL,
           "{\"when\":\"2026-12-03T10:20:30.5Z\",\"day\":\"2024-02-29\",\"at\":\"23:59:60+01:00\","
           "\"id\":\"123e4567-e89b-12d3-a456-426614174000\",\"mail\":\"a.b+c@example.co.uk\","
           "\"link\":\"https://example.com/a%20b?q=1#f\",\"v4\":\"192.168.0.1\",\"v6\":\"::ffff:1.2.3.4\","
           "\"extra\":{\"k\": [1, \"two\", null]}}",
           200, "{\"given\":9,\"extra\":{\"k\": [1, \"two\", null]},\"filter\":null,\"day\":\"2024-02-29\"}");
    expect("POST", "/l/formats?filter=%7B%22a%22%3A1%7D", NULL, "{\"when\":\"2026-12-03 10:20:30\",\"extra\":3}", 200,
           "{\"given\":3,\"extra\":3,\"filter\":{\"a\":1},\"day\":\"1970-01-01\"}");
    E422("POST", "/l/formats?filter=%7Ba", NULL,
         "{\"when\":\"2026-12-03T25:00:00\",\"day\":\"2023-02-29\",\"at\":\"10:20\",\"id\":\"123e4567e89b12d3a456426614174000\","
         "\"mail\":\"a..b@example.com\",\"link\":\"no scheme\",\"v4\":\"01.2.3.4\",\"v6\":\"1:2:3\"}",
         "\"type\":\"json_invalid\",\"loc\":[\"query\",\"filter\"]",
         "\"type\":\"datetime_parsing\",\"loc\":[\"body\",\"when\"]", "\"type\":\"date_parsing\",\"loc\":[\"body\",\"day\"]",
         "\"type\":\"time_parsing\",\"loc\":[\"body\",\"at\"]", "\"type\":\"uuid_parsing\",\"loc\":[\"body\",\"id\"]",
         "\"type\":\"value_error\",\"loc\":[\"body\",\"mail\"]", "\"type\":\"url_parsing\",\"loc\":[\"body\",\"link\"]",
         "\"type\":\"ip_v4_address\",\"loc\":[\"body\",\"v4\"]", "\"type\":\"ip_v6_address\",\"loc\":[\"body\",\"v6\"]");
    E422("POST", "/l/formats", NULL, "{\"extra\":[1,}", "\"type\":\"json_invalid\"");
    E422("POST", "/l/formats", NULL, "{\"mail\":\"a@b\",\"v4\":\"256.1.1.1\",\"day\":\"2026-13-01\"}",
         "\"type\":\"value_error\",\"loc\":[\"body\",\"mail\"]", "\"type\":\"ip_v4_address\"",
         "\"type\":\"date_parsing\"");
    /* an answer whose date breaks its format is a 500 naming it */
    char body[4096];
    int st = call("POST", "/l/formats", NULL, "{\"mail\":\"bad@answer.example\"}", body, sizeof body);
    CHECK(st == 500 && strstr(body, "response.day: not a valid date"), "a broken answer: %d %s", st, body);
}

static void test_maps(void)
{
    expect("POST", "/l/tally", NULL,
           "{\"counts\":{\"a\":1,\"b c\":500,\"a\":7},\"moods\":{\"x\":\"dark\"},\"places\":{\"home\":{\"x\":1.5}}}",
           200, "{\"doubled\":{\"a\":14,\"b c\":1000},\"moods\":{\"x\":\"dark\"},\"places\":{\"home\":{\"x\":1.5}}}");
    expect("POST", "/l/tally", NULL, "{\"counts\":{}}", 200, "{\"doubled\":{}}");
    E422("POST", "/l/tally", NULL, "{\"counts\":{\"a\":1001,\"b\":-1,\"c\":\"x\"},\"moods\":{\"y\":\"grey\"},\"places\":{}}",
         "\"type\":\"less_than_equal\",\"loc\":[\"body\",\"counts\",\"a\"]",
         "\"type\":\"int_range\",\"loc\":[\"body\",\"counts\",\"b\"]",
         "\"type\":\"int_type\",\"loc\":[\"body\",\"counts\",\"c\"]",
         "\"type\":\"enum\",\"loc\":[\"body\",\"moods\",\"y\"]",
         "\"type\":\"too_short\",\"loc\":[\"body\",\"places\"]");
    E422("POST", "/l/tally", NULL, "{\"counts\":{\"a\":1,\"b\":1,\"c\":1,\"d\":1,\"e\":1}}",
         "\"type\":\"too_long\",\"loc\":[\"body\",\"counts\"],\"msg\":\"Dictionary should have at most 4 items after validation, not 5\"");
    E422("POST", "/l/tally", NULL, "{\"counts\":[1]}", "\"type\":\"model_attributes_type\",\"loc\":[\"body\",\"counts\"]");
    /* many keys, all repeats of few: the hash keeps it linear */
    static char big[1 << 15];
    size_t o = (size_t)snprintf(big, sizeof big, "{\"counts\":{");
    for (int i = 0; i < 2000; i++) o += (size_t)snprintf(big + o, sizeof big - o, "%s\"k%d\":%d", i ? "," : "", i % 3, i % 1000);
    snprintf(big + o, sizeof big - o, "}}");
    expect("POST", "/l/tally", NULL, big, 200, "{\"doubled\":{\"k0\":1996,\"k1\":1998,\"k2\":1994}}");
}

static void test_patterns(void)
{
    expect("POST", "/l/codes", NULL, "{\"sku\":\"ABC-1234\",\"word\":\"un caf\u00e9 noir\",\"tags\":[\"a\",\"bc\"]}", 200,
           "{\"sku\":\"ABC-1234\"}");
    expect("POST", "/l/codes", NULL, "{\"sku\":\"XYZ-0000\",\"word\":\"cafe\"}", 200, "{\"sku\":\"XYZ-0000\"}");
    E422("POST", "/l/codes", NULL, "{\"sku\":\"ABC-12345\",\"word\":\"caff\",\"tags\":[\"ok\",\"No\"]}",
         "\"type\":\"string_pattern_mismatch\",\"loc\":[\"body\",\"sku\"],\"msg\":\"String should match pattern '^[A-Z]{3}-\\\\d{4}$'\",\"input\":\"ABC-12345\",\"ctx\":{\"pattern\":\"^[A-Z]{3}-\\\\d{4}$\"}",
         "\"type\":\"string_pattern_mismatch\",\"loc\":[\"body\",\"word\"]",
         "\"type\":\"string_pattern_mismatch\",\"loc\":[\"body\",\"tags\",1]");
    E422("POST", "/l/codes", NULL, "{\"sku\":\"abc-1234\"}", "\"type\":\"string_pattern_mismatch\"");
    char body[4096];
    int st = call("POST", "/l/codes", NULL, "{\"sku\":\"BAD-0000\"}", body, sizeof body);
    CHECK(st == 500 && strstr(body, "response.sku: does not match its pattern"), "a broken answer: %d %s", st, body);
}

static void test_own_errors(void)
{
    expect("GET", "/l/boxes/1", NULL, NULL, 200, "{\"result\":\"one\"}");
    expect("GET", "/l/boxes/2", NULL, NULL, 409, "{\"detail\":\"box 2 is locked\"}");
    expect("GET", "/l/boxes/3", NULL, NULL, 404, "{\"detail\":\"no box 3\"}");
}

int main(void)
{
    im_server_opts o = {0};
    im_log_set_level(IM_LOG_ERROR);
    srv = im_server_new(&o);
    CHECK(im_register_lang(srv) == 0, "register");
    int rc = fake_loop_init(&L, srv);
    if (rc) {
        fprintf(stderr, "io_uring unavailable (%s): skipped\n", strerror(-rc));
        return 77;
    }
    test_numbers();
    test_query_text();
    test_headers_cookies();
    test_aliases();
    test_nullable();
    test_named_enum();
    test_whole_body();
    test_formats_json();
    test_maps();
    test_patterns();
    test_own_errors();
    fake_loop_free(&L);
    im_server_free(srv);
    return check_exit("lang");
}
