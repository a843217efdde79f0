/* lang.c — a module with the annotations of the generator's second pass (unsigned and 32-bit
 * numbers, .multiple_of, .alias, header and cookie arguments, .nullable, .example, .errors),
 * whose handlers echo what they were given: tests/test_lang.c drives it over HTTP. */
#include <stdio.h>

#include "immersive.h"
#include "lang.gen.h"

IM_MODULE(lang, "The annotation language of the second pass, for the binder tests")

IM_OBJECT(spot, "A place", .extra = IM_FORBID)
IM_FIELD(float, x, "Across", .min = -1000, .max = 1000, .example = 1.5)
IM_FIELD(uint32, tag, "A tag", .alias = "tag-no", .optional = true)

IM_ENDPOINT(POST, "/l/nums", .summary = "Unsigned, float and multiples")
IM_ARG(uint32, u32, "Any uint32")
IM_ARG(uint64, u64, "Any uint64, up to 18446744073709551615")
IM_ARG(uint64, big, "At least 10000000000000000000", .min = 10000000000000000000, .optional = true)
IM_ARG(float, f, "A float", .exclusive_min = 0)
IM_ARG(int64, m5, "A multiple of 5", .multiple_of = 5, .default = 10)
IM_ARG(double, q, "A multiple of 0.25", .multiple_of = 0.25, .default = 0.5)
IM_ARG(float[], fs, "Floats", .optional = true, .max_items = 4)
IM_RESULT(object, "What came")
IM_FIELD(uint32, u32, "")
IM_FIELD(uint64, u64, "")
IM_FIELD(uint64, big, "", .optional = true)
IM_FIELD(float, f, "")
IM_FIELD(int64, m5, "")
IM_FIELD(double, q, "")
IM_FIELD(float[], fs, "", .optional = true)
int nums(im_call *call, const nums_args *in, nums_result *out)
{
    (void)call;
    out->u32 = in->u32;
    out->u64 = in->u64;
    out->has_big = in->has_big;
    out->big = in->big;
    out->f = in->f;
    out->m5 = in->m5;
    out->q = in->q;
    out->has_fs = in->has_fs;
    out->fs = in->fs;
    return 0;
}

IM_ENDPOINT(GET, "/l/query", .summary = "Query values read as FastAPI reads them")
IM_ARG(int64, i, "An integer", .default = 0)
IM_ARG(double, d, "A number", .default = 0)
IM_ARG(bool, b, "A flag", .default = false)
IM_ARG(uint32, u, "Below 100", .max = 99, .default = 0, .example = 7)
IM_ARG(int32[], li, "Integers", .optional = true)
IM_RESULT(object, "What came")
IM_FIELD(int64, i, "")
IM_FIELD(double, d, "")
IM_FIELD(bool, b, "")
IM_FIELD(uint32, u, "")
IM_FIELD(int32[], li, "", .optional = true)
int query(im_call *call, const query_args *in, query_result *out)
{
    (void)call;
    out->i = in->i;
    out->d = in->d;
    out->b = in->b;
    out->u = in->u;
    out->has_li = in->has_li;
    out->li = in->li;
    return 0;
}

IM_ENDPOINT(GET, "/l/headers", .summary = "Header and cookie arguments")
IM_ARG(string, x_token, "The X-Token header", .in = header, .min_length = 3)
IM_ARG(string, agent, "The User-Agent header", .in = header, .alias = "User-Agent", .optional = true)
IM_ARG(string, session, "The session cookie", .in = cookie, .optional = true)
IM_ARG(string, theme, "The theme cookie", .in = cookie, .default = "light")
IM_RESULT(object, "What came")
IM_FIELD(string, x_token, "", .alias = "x-token")
IM_FIELD(string, agent, "", .optional = true)
IM_FIELD(string, session, "", .optional = true)
IM_FIELD(string, theme, "")
int headers(im_call *call, const headers_args *in, headers_result *out)
{
    (void)call;
    out->x_token = in->x_token;
    out->has_agent = in->has_agent;
    out->agent = in->agent;
    out->has_session = in->has_session;
    out->session = in->session;
    out->theme = in->theme;
    return 0;
}

IM_ENDPOINT(POST, "/l/items/{item-id}", .summary = "Aliases: path, query and body keys")
IM_ARG(int64, item_id, "The item", .alias = "item-id", .min = 1)
IM_ARG(int32, page_size, "Per page", .in = query, .alias = "page-size", .default = 10)
IM_ARG(string, first_name, "A first name", .alias = "first-name")
IM_ARG(spot, at, "Where", .optional = true)
IM_RESULT(object, "What came")
IM_FIELD(int64, item_id, "", .alias = "item-id")
IM_FIELD(int32, page_size, "", .alias = "page-size")
IM_FIELD(string, first_name, "", .alias = "first-name")
IM_FIELD(spot, at, "", .optional = true)
int items(im_call *call, const items_args *in, items_result *out)
{
    (void)call;
    out->item_id = in->item_id;
    out->page_size = in->page_size;
    out->first_name = in->first_name;
    out->has_at = in->has_at;
    out->at = in->at;
    return 0;
}

IM_ENDPOINT(POST, "/l/nulls", .summary = "Null told apart from absent")
IM_ARG(int64, n, "Required, may be null", .nullable = true)
IM_ARG(string, s, "Optional, may be null", .nullable = true, .optional = true)
IM_ARG(spot, at, "Optional, may be null", .nullable = true, .optional = true)
IM_ARG(enum, e, "Optional, may be null", .values = {"a", "b"}, .nullable = true, .optional = true)
IM_RESULT(object, "What came, and how")
IM_FIELD(int64, n, "", .nullable = true)
IM_FIELD(string, s, "", .nullable = true)
IM_FIELD(string, how, "n, s, at and e: absent, null or set")
int nulls(im_call *call, const nulls_args *in, nulls_result *out)
{
    static const char *const hows[] = {"absent", "null", "set"};
    char *how = im_call_alloc(call, 64);
    if (!how) return im_call_fail(call, 503, "out of memory");
    int k[4] = {in->has_n ? in->n_is_null ? 1 : 2 : 0, in->has_s ? in->s_is_null ? 1 : 2 : 0,
                in->has_at ? in->at_is_null ? 1 : 2 : 0, in->has_e ? in->e_is_null ? 1 : 2 : 0};
    int len = snprintf(how, 64, "%s %s %s %s", hows[k[0]], hows[k[1]], hows[k[2]], hows[k[3]]);
    out->how = (im_str){how, (size_t)len};
    out->n_is_null = in->n_is_null;
    out->n = in->n;
    out->s_is_null = !in->has_s || in->s_is_null;
    out->s = in->s;
    return 0;
}

IM_ENDPOINT(GET, "/l/boxes/{id}", .summary = "A handler's own failures, documented",
            .errors = {404: "No such box", 409: "The box is locked"})
IM_ARG(int32, id, "The box", .example = 1)
IM_RESULT(string, "Its label")
int box_label(im_call *call, const box_label_args *in, box_label_result *out)
{
    if (in->id == 2) return im_call_fail(call, 409, "box %d is locked", in->id);
    if (in->id != 1) return im_call_fail(call, 404, "no box %d", in->id);
    out->result = im_str_from("one");
    return 0;
}

IM_ENUM(shade, "A shade, declared once, used as a type", "light", "dark", "very-dark")

IM_ENDPOINT(POST, "/l/shades", .summary = "A named enum in the body, the query and the result")
IM_ARG(shade, s, "One", .default = "dark")
IM_ARG(shade[], more, "More", .optional = true, .max_items = 3)
IM_ARG(shade, q, "One more, from the query", .in = query, .optional = true)
IM_RESULT(shade, "The darkest of them")
int shades(im_call *call, const shades_args *in, shades_result *out)
{
    (void)call;
    shade d = in->s;
    for (size_t i = 0; in->has_more && i < in->more.len; i++)
        if (in->more.ptr[i] > (int)d) d = (shade)in->more.ptr[i];
    if (in->has_q && in->q > d) d = in->q;
    out->result = d;
    return 0;
}

IM_ENDPOINT(POST, "/l/spots/scale", .summary = "The whole body is one value: an array of objects")
IM_BODY(spot[], "The spots to scale")
IM_ARG(float, by, "The factor", .in = query, .default = 2)
IM_RESULT(spot[], "The spots scaled: the JSON array itself")
int scale(im_call *call, const scale_args *in, scale_result *out)
{
    spot *s = im_call_alloc(call, sizeof(spot) * (in->body.len ? in->body.len : 1));
    if (!s) return im_call_fail(call, 503, "out of memory");
    for (size_t i = 0; i < in->body.len; i++) {
        s[i] = in->body.ptr[i];
        s[i].x *= in->by;
    }
    out->result = (spot_list){s, in->body.len};
    return 0;
}

IM_ENDPOINT(PUT, "/l/spot/{k}", .summary = "The whole body is one object; the answer is that object")
IM_ARG(int32, k, "Where it goes")
IM_BODY(spot, "The spot")
IM_RESULT(spot, "The spot as kept: the JSON object itself")
int put_spot(im_call *call, const put_spot_args *in, put_spot_result *out)
{
    (void)call;
    *out = in->body;
    out->has_tag = true;
    out->tag = (uint32_t)in->k;
    return 0;
}

IM_ENDPOINT(POST, "/l/formats", .summary = "String formats, and JSON values handed over as text")
IM_ARG(string, when, "A date-time", .format = "date-time", .optional = true)
IM_ARG(string, day, "A date", .format = "date", .optional = true, .example = "2026-12-03")
IM_ARG(string, at, "A time", .format = "time", .optional = true)
IM_ARG(string, id, "A UUID", .format = "uuid", .optional = true)
IM_ARG(string, mail, "An email address", .format = "email", .optional = true)
IM_ARG(string, link, "A URI", .format = "uri", .optional = true, .max_length = 200)
IM_ARG(string, v4, "An IPv4 address", .format = "ipv4", .optional = true)
IM_ARG(string, v6, "An IPv6 address", .format = "ipv6", .optional = true)
IM_ARG(json, extra, "Any JSON value", .optional = true)
IM_ARG(json, filter, "JSON from the query", .in = query, .optional = true)
IM_RESULT(object, "How many were given, and the JSON values as they came")
IM_FIELD(int32, given, "Arguments given")
IM_FIELD(json, extra, "The body's JSON value (null when absent)")
IM_FIELD(json, filter, "The query's JSON value (null when absent)")
IM_FIELD(string, day, "The date, or 1970-01-01", .format = "date")
int formats(im_call *call, const formats_args *in, formats_result *out)
{
    (void)call;
    out->given = in->has_when + in->has_day + in->has_at + in->has_id + in->has_mail + in->has_link +
                 in->has_v4 + in->has_v6 + in->has_extra + in->has_filter;
    out->extra = in->has_extra ? in->extra : im_str_from("null");
    out->filter = in->has_filter ? in->filter : im_str_from("null");
    out->day = in->has_day ? in->day : im_str_from("1970-01-01");
    if (in->has_mail && im_str_eq(in->mail, "bad@answer.example")) out->day = im_str_from("2026-02-30");
    return 0;
}

IM_ENDPOINT(POST, "/l/tally", .summary = "Maps (T{}): any keys, each value a T")
IM_ARG(uint32{}, counts, "Up to 4 counts, each up to 1000", .max_items = 4, .max = 1000)
IM_ARG(shade{}, moods, "A shade per name", .optional = true)
IM_ARG(spot{}, places, "A spot per name", .optional = true, .min_items = 1)
IM_RESULT(object, "The counts doubled, and the rest as it came")
IM_FIELD(uint32{}, doubled, "Each count doubled")
IM_FIELD(shade{}, moods, "", .optional = true)
IM_FIELD(spot{}, places, "", .optional = true)
int tally(im_call *call, const tally_args *in, tally_result *out)
{
    uint32_t *d = im_call_alloc(call, sizeof(uint32_t) * (in->counts.len + 1));
    if (!d) return im_call_fail(call, 503, "out of memory");
    for (size_t i = 0; i < in->counts.len; i++) d[i] = in->counts.values[i] * 2;
    out->doubled = (im_u32_map){in->counts.keys, d, in->counts.len};
    out->has_moods = in->has_moods;
    out->moods = in->moods;
    out->has_places = in->has_places;
    out->places = in->places;
    return 0;
}

IM_ENDPOINT(POST, "/l/codes", .summary = "Patterns, compiled to a DFA")
IM_ARG(string, sku, "Three capitals, a dash, four digits", .pattern = "^[A-Z]{3}-\\d{4}$",
       .example = "ABC-1234")
IM_ARG(string, word, "Holds 'café' somewhere", .pattern = "caf(é|e)", .optional = true, .example = "un café")
IM_ARG(string[], tags, "Each a lowercase word", .pattern = "^[a-z]+$", .optional = true)
IM_RESULT(object, "The code as kept")
IM_FIELD(string, sku, "", .pattern = "^[A-Z]{3}-\\d{4}$")
int codes(im_call *call, const codes_args *in, codes_result *out)
{
    (void)call;
    out->sku = in->sku;
    if (im_str_eq(in->sku, "BAD-0000")) out->sku = im_str_from("bad");
    return 0;
}
