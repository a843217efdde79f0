/* test_bind.c — the generated binders and writers of tests/fixture, driven through the real
 * request path (a connection fed whole requests, as in test_conn_input.c): valid input echoed
 * back exactly, each constraint violated, wrong types, integer overflow, nesting, escapes in
 * strings and keys, several errors at once, unknown fields, malformed JSON, query and path
 * parameters, handler failures. Expected bodies are compared byte for byte. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "support/check.h"

#include "fixture.service.h"
#include "support/fake_loop.h"


static im_server *srv;
static im_loop L;

/* Sends one request; returns the status, copies the body into body[]. */
static int call(const char *method, const char *target, const char *json, char *body, size_t cap)
{
    char req[65536];
    im__conn *c = fake_conn(&L);
    int n = json ? snprintf(req, sizeof req,
                            "%s %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                            "Content-Length: %zu\r\n\r\n%s",
                            method, target, strlen(json), json)
                 : snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\n\r\n", method, target);
    fake_feed(&L, c, req, (size_t)n);
    if (!c->out) return -1;
    static char out[1 << 17]; /* the output, NUL-ended (a buffer may be full to its end) */
    size_t len = c->out->len < sizeof out - 1 ? c->out->len : sizeof out - 1;
    memcpy(out, c->out->data, len);
    out[len] = 0;
    int status = atoi(out + 9);
    const char *b = strstr(out, "\r\n\r\n");
    snprintf(body, cap, "%s", b ? b + 4 : "");
    return status;
}

static void expect(const char *method, const char *target, const char *json, int status,
                   const char *want)
{
    char body[65536];
    int st = call(method, target, json, body, sizeof body);
    CHECK(st == status && (!want || strcmp(body, want) == 0),
          "%s %s %s\n  got  %d %s\n  want %d %s", method, target, json ? json : "", st, body, status,
          want ? want : "(any body)");
}

/* The response holds each of the needles, in order. */
static void expect_has(const char *method, const char *target, const char *json, int status,
                       const char *const *needles)
{
    char body[65536];
    int st = call(method, target, json, body, sizeof body);
    const char *p = body;
    CHECK(st == status, "%s %s %s: status %d, want %d: %s", method, target, json, st, status, body);
    for (; *needles; needles++) {
        const char *q = strstr(p, *needles);
        CHECK(q, "%s %s: '%s' missing (in order) from %s", method, target, *needles, body);
        if (q) p = q + strlen(*needles);
    }
}

#define ALL "/t/all"
#define VALID "{\"b\":true,\"i32\":-5,\"i64\":1,\"s\":\"abcd\",\"li\":[0,3]"

static void test_valid(void)
{
    expect("POST", ALL, VALID "}", 200,
           "{\"b\":true,\"i32\":-5,\"i64\":1,\"d\":0.25,\"s\":\"abcd\",\"e\":\"x\",\"li\":[0,3],\"f\":[]}");
    expect("POST", ALL,
           "{\"b\":false,\"i32\":5,\"i64\":9223372036854775807,\"d\":-1e300,\"s\":\"\\u0041\\u00e9\","
           "\"e\":\"y-z\",\"li\":[2147483647],\"ls\":[\"a\",\"\\u00e9\"],"
           "\"o\":{\"in\":{\"a\":0},\"list\":[{\"a\":1,\"s\":\"q\\\"\"},{\"a\":2}]},\"f\":[1.5,-0,3e-5]}",
           200,
           "{\"b\":false,\"i32\":5,\"i64\":9223372036854775807,\"d\":-1e+300,\"s\":\"A\xc3\xa9\","
           "\"e\":\"y-z\",\"li\":[2147483647],\"ls\":[\"a\",\"\xc3\xa9\"],"
           "\"o\":{\"in\":{\"a\":0},\"list\":[{\"a\":1,\"s\":\"q\\\"\"},{\"a\":2}]},\"f\":[1.5,-0,3e-05]}");
    /* keys with escapes are decoded before they are matched; whitespace anywhere */
    expect("POST", ALL,
           " { \"\\u0062\" : true , \"i\\u00332\":0, \"i64\":2, \"s\":\"xy\", \"li\":[ 1 ] } ", 200,
           "{\"b\":true,\"i32\":0,\"i64\":2,\"d\":0.25,\"s\":\"xy\",\"e\":\"x\",\"li\":[1],\"f\":[]}");
    /* lengths count characters, not bytes: three 2-byte characters fit a max_length of 4 */
    expect("POST", ALL, "{\"b\":true,\"i32\":0,\"i64\":2,\"s\":\"\xc3\xa9\xc3\xa9\xc3\xa9\",\"li\":[1]}", 200,
           "{\"b\":true,\"i32\":0,\"i64\":2,\"d\":0.25,\"s\":\"\xc3\xa9\xc3\xa9\xc3\xa9\",\"e\":\"x\",\"li\":[1],\"f\":[]}");
    /* integers written as floats are integers when they are whole */
    expect("POST", ALL, "{\"b\":true,\"i32\":4.0,\"i64\":1e3,\"s\":\"ab\",\"li\":[2e0]}", 200,
           "{\"b\":true,\"i32\":4,\"i64\":1000,\"d\":0.25,\"s\":\"ab\",\"e\":\"x\",\"li\":[2],\"f\":[]}");
}

static void test_constraints(void)
{
    static const struct {
        const char *patch, *type, *loc;
    } cases[] = {
        {"\"i32\":6", "less_than_equal", "[\"body\",\"i32\"]"},
        {"\"i32\":-6", "greater_than_equal", "[\"body\",\"i32\"]"},
        {"\"i64\":0", "greater_than", "[\"body\",\"i64\"]"},
        {"\"d\":1.5", "less_than", "[\"body\",\"d\"]"},
        {"\"s\":\"a\"", "string_too_short", "[\"body\",\"s\"]"},
        {"\"s\":\"abcde\"", "string_too_long", "[\"body\",\"s\"]"},
        {"\"s\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"", "string_too_long", "[\"body\",\"s\"]"},
        {"\"e\":\"z\"", "enum", "[\"body\",\"e\"]"},
        {"\"li\":[]", "too_short", "[\"body\",\"li\"]"},
        {"\"li\":[1,2,3,4]", "too_long", "[\"body\",\"li\"]"},
        {"\"li\":[1,-1]", "greater_than_equal", "[\"body\",\"li\",1]"},
        {"\"ls\":[\"abc\"]", "string_too_long", "[\"body\",\"ls\",0]"},
        {"\"o\":{\"in\":{\"a\":-1},\"list\":[]}", "greater_than_equal", "[\"body\",\"o\",\"in\",\"a\"]"},
        {"\"o\":{\"in\":{\"a\":1},\"list\":[{\"a\":1},{\"a\":1},{\"a\":1},{\"a\":1}]}", "too_long", "[\"body\",\"o\",\"list\"]"},
        {"\"o\":{\"in\":{\"a\":1},\"list\":[{\"a\":1},{\"a\":1,\"b\":1}]}", "extra_forbidden", "[\"body\",\"o\",\"list\",1,\"b\"]"},
        /* wrong types */
        {"\"b\":1", "bool_type", "[\"body\",\"b\"]"},
        {"\"b\":\"true\"", "bool_type", "[\"body\",\"b\"]"},
        {"\"i32\":\"1\"", "int_type", "[\"body\",\"i32\"]"},
        {"\"i32\":1.5", "int_from_float", "[\"body\",\"i32\"]"},
        {"\"i32\":null", "int_type", "[\"body\",\"i32\"]"},
        {"\"d\":\"x\"", "float_type", "[\"body\",\"d\"]"},
        {"\"s\":5", "string_type", "[\"body\",\"s\"]"},
        {"\"e\":1", "string_type", "[\"body\",\"e\"]"},
        {"\"li\":{}", "list_type", "[\"body\",\"li\"]"},
        {"\"li\":[\"1\"]", "int_type", "[\"body\",\"li\",0]"},
        {"\"o\":[]", "model_attributes_type", "[\"body\",\"o\"]"},
        {"\"f\":[1,true]", "float_type", "[\"body\",\"f\",1]"},
        /* overflow */
        {"\"i32\":2147483648", "int_range", "[\"body\",\"i32\"]"},
        {"\"li\":[2147483648]", "int_range", "[\"body\",\"li\",0]"},
        {"\"i64\":9223372036854775808", "int_range", "[\"body\",\"i64\"]"},
        {"\"i64\":1e19", "int_range", "[\"body\",\"i64\"]"},
        {"\"d\":1e999", "finite_number", "[\"body\",\"d\"]"},
        {"\"d\":-1e400", "finite_number", "[\"body\",\"d\"]"},
        {"\"zz\":1", "extra_forbidden", "[\"body\",\"zz\"]"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char json[1024], type[128], loc[256];
        snprintf(json, sizeof json, VALID ",%s}", cases[k].patch);
        snprintf(type, sizeof type, "\"type\":\"%s\"", cases[k].type);
        snprintf(loc, sizeof loc, "\"loc\":%s", cases[k].loc);
        const char *needles[] = {"{\"detail\":[{", type, loc, "\"msg\":\"", NULL};
        expect_has("POST", ALL, json, 422, needles);
        char body[4096];
        call("POST", ALL, json, body, sizeof body);
        CHECK(strstr(body, "},{") == NULL, "%s: exactly one error: %s", cases[k].patch, body);
    }
    /* a message says what was wanted */
    expect("POST", ALL, VALID ",\"i32\":9}", 422,
           "{\"detail\":[{\"type\":\"less_than_equal\",\"loc\":[\"body\",\"i32\"],\"msg\":\"Input should be "
           "less than or equal to 5\",\"input\":9,\"ctx\":{\"le\":5}}]}");
    expect("POST", ALL, VALID ",\"e\":\"q\"}", 422,
           "{\"detail\":[{\"type\":\"enum\",\"loc\":[\"body\",\"e\"],\"msg\":\"Input should be 'x' or "
           "'y-z'\",\"input\":\"q\"}]}");
}

static void test_many_errors(void)
{
    /* every failing field is listed, in order; missing ones after the others */
    const char *needles[] = {
        "\"type\":\"int_type\",\"loc\":[\"body\",\"i32\"]",
        "\"type\":\"string_too_long\",\"loc\":[\"body\",\"s\"]",
        "\"type\":\"extra_forbidden\",\"loc\":[\"body\",\"what\"]",
        "\"type\":\"missing\",\"loc\":[\"body\",\"b\"]",
        "\"type\":\"missing\",\"loc\":[\"body\",\"i64\"]",
        "\"type\":\"missing\",\"loc\":[\"body\",\"li\"]",
        NULL};
    expect_has("POST", ALL, "{\"i32\":\"x\",\"s\":\"toolong\",\"what\":[1,{\"deep\":[]}]}", 422, needles);
    expect("POST", ALL, "{}", 422,
           "{\"detail\":[{\"type\":\"missing\",\"loc\":[\"body\",\"b\"],\"msg\":\"Field required\"},"
           "{\"type\":\"missing\",\"loc\":[\"body\",\"i32\"],\"msg\":\"Field required\"},"
           "{\"type\":\"missing\",\"loc\":[\"body\",\"i64\"],\"msg\":\"Field required\"},"
           "{\"type\":\"missing\",\"loc\":[\"body\",\"s\"],\"msg\":\"Field required\"},"
           "{\"type\":\"missing\",\"loc\":[\"body\",\"li\"],\"msg\":\"Field required\"}]}");
    expect("POST", ALL, NULL, 422, "{\"detail\":[{\"type\":\"missing\",\"loc\":[\"body\"],\"msg\":\"Field required\"}]}");
    expect("POST", ALL, "[]", 422,
           "{\"detail\":[{\"type\":\"model_attributes_type\",\"loc\":[\"body\"],\"msg\":\"Input should be a "
           "valid dictionary or object to extract fields from\"}]}");
}

static void test_malformed(void)
{
    static const struct {
        const char *json;
        int offset;
    } cases[] = {
        {"{\"b\":true,}", 10},  {"{\"b\" true}", 5},        {"{\"b\":tru}", 5},
        {"{\"s\":\"a\\qb\"}", 7}, {"{\"s\":\"\\ud800\"}", 6}, {"{\"s\":\"\xff\"}", 6},
        {"{\"i32\":01}", 7},    {"{\"b\":true}}", 10},      {"{\"b\":true", 9},
        {"{\"s\":\"\\udc00\"}", 6},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char want[64];
        snprintf(want, sizeof want, "\"loc\":[\"body\",%d]", cases[k].offset);
        const char *needles[] = {"{\"detail\":[{\"type\":\"json_invalid\"", want, "\"ctx\":{\"error\":", NULL};
        expect_has("POST", ALL, cases[k].json, 422, needles);
    }
    /* deep nesting is refused, not recursed into without end */
    char deep[400];
    int n = snprintf(deep, sizeof deep, "{\"o\":");
    for (int i = 0; i < 100; i++) deep[n++] = '[';
    for (int i = 0; i < 100; i++) deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = 0;
    const char *needles[] = {"\"type\":\"json_invalid\"", "\"msg\":\"JSON nested too deeply\"", NULL};
    expect_has("POST", ALL, deep, 422, needles);
}

/* Where the binder's fast path (plain strings and keys, short integers, numbers, booleans read
 * where they stand) hands over to the full reader: each side of each edge gives one answer. */
/* Keys in declared order are compared where they stand (the generated chain); any other key,
 * order, blank or escape hands over to the key loop: the answer must not depend on which read it. */
static void test_key_chain(void)
{
    const char *echo = "{\"b\":true,\"i32\":1,\"i64\":2,\"d\":0.5,\"s\":\"ab\",\"e\":\"y-z\",\"li\":[1],"
                       "\"ls\":[\"q\"],\"o\":{\"in\":{\"a\":0},\"list\":[]},\"f\":[1]}";
    /* every key in order: the chain reads them all, nested object included */
    expect("POST", ALL, echo, 200, echo);
    /* a key written with an escape, a blank, or out of order, part way: the loop goes on */
    expect("POST", ALL,
           "{\"b\":true,\"i32\":1,\"\\u0069\\u00364\":2,\"d\":0.5,\"s\":\"ab\",\"e\":\"y-z\",\"li\":[1],"
           "\"ls\":[\"q\"],\"o\":{\"in\":{\"a\":0},\"list\":[]},\"f\":[1]}", 200, echo);
    expect("POST", ALL,
           "{\"b\":true,\"i32\":1,\"i64\":2, \"d\":0.5,\"s\":\"ab\",\"e\":\"y-z\",\"li\":[1],"
           "\"ls\":[\"q\"],\"o\":{ \"in\":{\"a\":0},\"list\":[]},\"f\":[1]}", 200, echo);
    expect("POST", ALL,
           "{\"b\":true,\"i64\":2,\"i32\":1,\"d\":0.5,\"s\":\"ab\",\"e\":\"y-z\",\"li\":[1],"
           "\"ls\":[\"q\"],\"o\":{\"list\":[],\"in\":{\"a\":0}},\"f\":[1]}", 200, echo);
    /* a key repeated after the chain: the last one wins */
    expect("POST", ALL,
           "{\"b\":true,\"i32\":1,\"i64\":2,\"d\":0.5,\"s\":\"ab\",\"e\":\"y-z\",\"li\":[1],"
           "\"ls\":[\"q\"],\"o\":{\"in\":{\"a\":0},\"list\":[]},\"f\":[1],\"i32\":-3}", 200,
           "{\"b\":true,\"i32\":-3,\"i64\":2,\"d\":0.5,\"s\":\"ab\",\"e\":\"y-z\",\"li\":[1],"
           "\"ls\":[\"q\"],\"o\":{\"in\":{\"a\":0},\"list\":[]},\"f\":[1]}");
    /* a key that starts like a declared one is not it */
    const char *pre[] = {"\"type\":\"extra_forbidden\"", "\"loc\":[\"body\",\"i32x\"]", NULL};
    expect_has("POST", ALL, "{\"b\":true,\"i32x\":1,\"i32\":1,\"i64\":2,\"s\":\"ab\",\"li\":[1]}", 422, pre);
    /* errors in the chain: each field still checked after one fails, in order, extra included */
    const char *errs[] = {"\"loc\":[\"body\",\"i32\"]", "\"loc\":[\"body\",\"zz\"]", "\"loc\":[\"body\",\"s\"]",
                          "\"loc\":[\"body\",\"o\",\"in\",\"q\"]", NULL};
    expect_has("POST", ALL,
               "{\"b\":true,\"i32\":9,\"i64\":2,\"zz\":0,\"d\":0.5,\"s\":\"abcdef\",\"e\":\"x\",\"li\":[1],"
               "\"o\":{\"in\":{\"a\":0,\"q\":1},\"list\":[]}}", 422, errs);
    /* what the chain must not take for a key: a comma first, none between, nothing at all */
    const char *bad[] = {"\"type\":\"json_invalid\"", NULL};
    expect_has("POST", ALL, "{,\"b\":true}", 422, bad);
    expect_has("POST", ALL, "{\"b\":true\"i32\":1}", 422, bad);
    expect_has("POST", ALL, "{\"b\":true,,\"i32\":1}", 422, bad);
    expect_has("POST", ALL, "{\"b\":true,\"i32\":1", 422, bad);
    const char *none[] = {"\"type\":\"missing\"", "\"loc\":[\"body\",\"b\"]", NULL};
    expect_has("POST", ALL, "{}", 422, none);
}

static void test_fast_path_edges(void)
{
#define ECHO_OK(patch, i32, i64, s)                                                           \
    expect("POST", ALL, "{\"b\":true,\"li\":[1]," patch "}", 200,                        \
           "{\"b\":true,\"i32\":" i32 ",\"i64\":" i64 ",\"d\":0.25,\"s\":" s                \
           ",\"e\":\"x\",\"li\":[1],\"f\":[]}")
    /* 18 digits (read at once), 19 (the full reader), the int64 maximum */
    ECHO_OK("\"i32\":-0,\"i64\":123456789012345678,\"s\":\"ab\"", "0", "123456789012345678", "\"ab\"");
    ECHO_OK("\"i32\":5,\"i64\":1234567890123456789,\"s\":\"ab\"", "5", "1234567890123456789", "\"ab\"");
    ECHO_OK("\"i32\":-5,\"i64\":100e-2,\"s\":\"ab\"", "-5", "1", "\"ab\"");
    expect_has("POST", ALL, "{\"i64\":01}", 422, (const char *const[]){"\"leading zero in number\"", NULL});
    /* a key or a string ending in an escape, a blank before ':', a multi-byte character */
    ECHO_OK("\"i32\":1,\"i64\":7,\"s\":\"ab\\\"\"", "1", "7", "\"ab\\\"\"");
    ECHO_OK("\"i3\\u0032\" :1,\"i64\" :7,\"s\":\"\xc3\xa9z\"", "1", "7", "\"\xc3\xa9z\"");
    /* reals: digits '.' digits read at once (exact: 0.1 stays 0.1), others by the full reader */
    static const struct {
        const char *in, *out;
    } reals[] = {{"0.1", "0.1"},     {"-0.0", "-0"},        {"1.4999999999999", "1.4999999999999"},
                 {"0.123456789012345678", "0.12345678901234568"}, {"1e-1", "0.1"}, {"-12.5", "-12.5"},
                 {"1.49999999999999999", "1.5"}};
    for (size_t k = 0; k < sizeof reals / sizeof *reals; k++) {
        char json[200], want[300];
        snprintf(json, sizeof json, "{\"b\":true,\"li\":[1],\"i32\":0,\"i64\":1,\"s\":\"ab\",\"d\":%s}", reals[k].in);
        snprintf(want, sizeof want, "{\"b\":true,\"i32\":0,\"i64\":1,\"d\":%s,\"s\":\"ab\",\"e\":\"x\","
                 "\"li\":[1],\"f\":[]}", reals[k].out);
        expect("POST", ALL, json, strcmp(reals[k].out, "1.5") ? 200 : 422,
               strcmp(reals[k].out, "1.5") ? want : NULL);
    }
    /* a body ending right after a value, and blanks before values */
    expect("POST", ALL, "{\"b\":true,\"li\":[1],\"i32\": 2,\"s\":\"ab\",\"i64\":9}", 200, NULL);
    expect("POST", ALL, "{\"li\":[1],\"i32\":2,\"s\":\"ab\",\"i64\":9,\"b\":false}", 200, NULL);
#undef ECHO_OK
    static const struct {
        const char *patch, *type;
    } bad[] = {
        {"\"i32\":-2147483649", "int_range"},           /* past int32, within int64 */
        {"\"i32\":99999999999999999", "int_range"},     /* 17 digits */
        {"\"i32\":999999999999999999999", "int_range"}, /* 21: past int64 */
        {"\"i64\":-9223372036854775809", "int_range"},
        {"\"i64\":-1", "greater_than"},
        {"\"i32\":2.5", "int_from_float"},
        {"\"s\":\"abcdef\"", "string_too_long"},
        {"\"e\":\"xx\"", "enum"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        char json[256], type[64];
        snprintf(json, sizeof json, "{\"b\":true,\"i32\":0,\"i64\":1,\"s\":\"ab\",\"li\":[1],%s}", bad[k].patch);
        snprintf(type, sizeof type, "\"type\":\"%s\"", bad[k].type);
        const char *needles[] = {type, NULL};
        expect_has("POST", ALL, json, 422, needles);
    }
    /* truncated where the fast path stops: a JSON error at the right offset */
    const char *n1[] = {"\"type\":\"json_invalid\"", "\"loc\":[\"body\",7]", NULL};
    expect_has("POST", ALL, "{\"i64\":", 422, n1);
    const char *n2[] = {"\"type\":\"json_invalid\"", NULL};
    expect_has("POST", ALL, "{\"i64\":12", 422, n2);
    expect_has("POST", ALL, "{\"s\":\"ab", 422, n2);
    expect_has("POST", ALL, "{\"b\":fals", 422, n2);
    expect_has("POST", ALL, "{\"i64", 422, n2);
}

static void test_extra_ignored(void)
{
    expect("POST", "/t/lenient", "{\"n\":7,\"other\":{\"deep\":[1,2,{\"x\":null}]}}", 200, "{\"result\":7}");
    expect("POST", "/t/lenient", "{\"n\":7,\"other\":[}", 422, NULL); /* still valid JSON only */
    /* each object's own policy, as its schema's additionalProperties says (issue 15) */
    const char *strict[] = {"\"type\":\"extra_forbidden\"", "\"loc\":[\"body\",\"strict\",\"zz\"]", NULL};
    expect_has("POST", "/t/lenient", "{\"n\":7,\"strict\":{\"a\":1,\"zz\":2}}", 422, strict);
    expect("POST", "/t/objects", "{\"loose\":{\"v\":4,\"zz\":[1]}}", 200, "{\"result\":4}");
    const char *top[] = {"\"loc\":[\"body\",\"zz\"]", NULL};
    expect_has("POST", "/t/objects", "{\"loose\":{\"v\":4},\"zz\":1}", 422, top);
}

static void test_params(void)
{
    expect("GET", "/t/q/42/caf%C3%A9%20au%2Flait?n=100&tags=a&tags=b%2Bc&flag=yes&mode=fast", NULL, 200,
           "{\"id\":42,\"name\":\"caf\xc3\xa9 au/lait\",\"n\":100,\"flag\":true,\"tags\":[\"a\",\"b+c\"],\"mode\":\"fast\"}");
    expect("GET", "/t/q/1/x?n=-3", NULL, 200,
           "{\"id\":1,\"name\":\"x\",\"n\":-3,\"flag\":false,\"tags\":[],\"mode\":\"slow\"}");
    const char *missing[] = {"\"type\":\"missing\",\"loc\":[\"query\",\"n\"]", NULL};
    expect_has("GET", "/t/q/1/x", NULL, 422, missing);
    const char *bad[] = {"\"type\":\"greater_than_equal\",\"loc\":[\"path\",\"id\"]",
                         "\"type\":\"int_parsing\",\"loc\":[\"query\",\"n\"]",
                         "\"type\":\"bool_parsing\",\"loc\":[\"query\",\"flag\"]",
                         "\"type\":\"too_long\",\"loc\":[\"query\",\"tags\"]",
                         "\"type\":\"enum\",\"loc\":[\"query\",\"mode\"]", NULL};
    expect_has("GET", "/t/q/0/x?n=1x&flag=maybe&tags=1&tags=2&tags=3&tags=4&mode=medium", NULL, 422, bad);
    const char *over[] = {"\"type\":\"less_than_equal\",\"loc\":[\"query\",\"n\"]", NULL};
    expect_has("GET", "/t/q/1/x?n=101", NULL, 422, over);
    const char *esc[] = {"\"type\":\"url_decoding\",\"loc\":[\"path\",\"name\"]", NULL};
    expect_has("GET", "/t/q/1/bad%zz?n=1", NULL, 422, esc);
    expect("GET", "/t/q/1/x?n=1", NULL, 200, NULL);
    /* a body where none is taken: an empty object at most (as FastAPI ignores one) */
    expect("GET", "/t/q/1/x?n=1", "{}", 200, NULL);
    const char *extra[] = {"\"type\":\"extra_forbidden\",\"loc\":[\"body\",\"a\"]", NULL};
    expect_has("GET", "/t/q/1/x?n=1", "{\"a\":1}", 422, extra);
}

/* Sends a body with a given Content-Type; returns the status. */
static int call_ct(const char *ctype, const char *json)
{
    char req[4096];
    im__conn *c = fake_conn(&L);
    int n = snprintf(req, sizeof req,
                     "POST /t/lenient HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\n\r\n%s", ctype, strlen(json), json);
    fake_feed(&L, c, req, (size_t)n);
    return c->out ? atoi(c->out->data + 9) : -1;
}

static void test_content_types(void)
{
    const char *j = "{\"n\":1}";
    CHECK(call_ct("application/json", j) == 200, "plain JSON");
    CHECK(call_ct("Application/JSON; charset=utf-8", j) == 200, "parameters and case");
    CHECK(call_ct("application/vnd.api+json", j) == 200, "a +json type");
    CHECK(call_ct("application/jsonp", j) == 415, "a longer name is another type");
    CHECK(call_ct("text/plain", j) == 415, "text");
    CHECK(call_ct("+json", j) == 415, "no type/subtype");
}

static void test_arena_limits(void)
{
    im__arena a = {0};
    CHECK(im__arena_alloc(&a, SIZE_MAX) == NULL, "a size that would wrap");
    CHECK(im__arena_alloc(&a, SIZE_MAX - 8) == NULL, "a size that would wrap");
    void *p = im__arena_alloc(&a, 100);
    CHECK(p && ((uintptr_t)p & 15) == 0, "aligned");
    im__arena_free(&a);
}

static void test_fail(void)
{
    expect("POST", "/t/fail", "{}", 200, "null");
    expect("POST", "/t/fail", "{\"status\":404}", 404, "{\"detail\":\"failed with 404 as asked\"}");
    expect("POST", "/t/fail", "{\"status\":200}", 500, "{\"detail\":\"failed with 200 as asked\"}");
    expect("POST", "/t/fail", "{\"status\":1}", 500, "{\"detail\":\"failed with 1 as asked\"}");
}

/* ndarray arguments from JSON (tests/fixture /t/nd): dtype inference and the constraints,
 * each refusal where it is; a handler's inconsistent array is a 500, never read. */
static void test_ndarrays(void)
{
    expect("POST", "/t/nd", "{}", 200, "{\"result\":0}");
    expect("POST", "/t/nd", "{\"any\":7}", 200, "{\"result\":7}");
    expect("POST", "/t/nd", "{\"any\":[]}", 200, "{\"result\":[]}");
    expect("POST", "/t/nd", "{\"any\":[[[1.5],[2]],[[3],[-4e-3]]]}", 200,
           "{\"result\":[[[1.5],[2]],[[3],[-0.004]]]}");
    expect("POST", "/t/nd", "{\"m\":[[1,2,3],[4,5,255]],\"f\":[1]}", 200,
           "{\"result\":[[1,2,3],[4,5,255]]}");
    expect("POST", "/t/nd", "{\"f\":[0.1]}", 200, "{\"result\":[0.10000000149011612]}");
    static const char *const shape[] = {"ndarray_shape", "[\"body\",\"m\"]",
                                        "Array should have shape (any, 3), not (1, 2)", NULL};
    expect_has("POST", "/t/nd", "{\"m\":[[1,2]]}", 422, shape);
    static const char *const ndim[] = {"ndarray_ndim", "Array should have 2 dimensions, not 1", NULL};
    expect_has("POST", "/t/nd", "{\"m\":[1,2,3]}", 422, ndim);
    static const char *const frac[] = {"int_from_float", "[\"body\",\"m\",1,2]", NULL};
    expect_has("POST", "/t/nd", "{\"m\":[[1,2,3],[4,5,6.5]]}", 422, frac);
    static const char *const i32[] = {"int_range", "[\"body\",\"m\",0,2]", "dtype i32", NULL};
    expect_has("POST", "/t/nd", "{\"m\":[[1,2,3e9]]}", 422, i32);
    static const char *const f32[] = {"finite_number", "[\"body\",\"f\",1]", "float32", NULL};
    expect_has("POST", "/t/nd", "{\"f\":[1,1e39]}", 422, f32);
    /* JSON takes the dtype the field does: integers in an f32 field are f32 */
    expect("POST", "/t/nd", "{\"f\":[1,2]}", 200, "{\"result\":[1,2]}");
    char big[1024];
    int n = snprintf(big, sizeof big, "{\"f\":[");
    for (int i = 0; i < 101; i++) n += snprintf(big + n, sizeof big - (size_t)n, "%s1", i ? "," : "");
    snprintf(big + n, sizeof big - (size_t)n, "]}");
    static const char *const many[] = {"too_long", "at most 100 elements, not 101", NULL};
    expect_has("POST", "/t/nd", big, 422, many);
    static const char *const ragged[] = {"ndarray_ragged", "[\"body\",\"any\",1]",
                                         "this row has 1 item, the first at its depth 2", NULL};
    expect_has("POST", "/t/nd", "{\"any\":[[1,2],[3]]}", 422, ragged);
    for (int how = 1; how <= 3; how++) {
        char req[32];
        snprintf(req, sizeof req, "{\"how\":%d}", how);
        static const char *const bad[] = {"the function's array result is inconsistent", NULL};
        expect_has("POST", "/t/badnd", req, 500, bad);
    }
}

int main(void)
{
    im_server_opts o = {0};
    im_log_set_level(IM_LOG_ERROR);
    srv = im_server_new(&o);
    CHECK(im_register_fixture(srv) == 0, "register");
    int rc = fake_loop_init(&L, srv);
    if (rc) {
        fprintf(stderr, "io_uring unavailable (%s): skipped\n", strerror(-rc));
        return 77;
    }
    test_valid();
    test_constraints();
    test_many_errors();
    test_malformed();
    test_fast_path_edges();
    test_key_chain();
    test_extra_ignored();
    test_params();
    test_fail();
    test_content_types();
    test_arena_limits();
    test_ndarrays();
    fake_loop_free(&L);
    im_server_free(srv);
    return check_exit("binders");
}
