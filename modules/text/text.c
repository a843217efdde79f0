/* text.c — the text module: strings with length bounds, enums, booleans, string arrays, an
 * optional argument, and a function that is not thread-safe run on the serial executor. */
#include <stdio.h>
#include <string.h>

#include "immersive.h"
#include "text.gen.h"

IM_MODULE(text, "Small text utilities")

IM_ENDPOINT(POST, "/v1/text/greet", .summary = "Greet someone in their language")
IM_ARG(string, name, "Who", .min_length = 1, .max_length = 64)
IM_ARG(enum, lang, "Language", .values = {"en", "fr", "de"}, .default = "en")
IM_ARG(bool, shout, "Upper-case the greeting", .default = false)
IM_ARG(int32, times, "Repeat it", .min = 1, .max = 5, .default = 1)
IM_RESULT(string, "The greeting")
int greet(im_call *call, const greet_args *in, greet_result *out)
{
    static const char *const hello[] = {"Hello", "Bonjour", "Hallo"};
    const char *h = hello[in->lang];
    /* "Hello, name!" times, separated by spaces */
    size_t one = strlen(h) + 2 + in->name.len + 1, n = one * (size_t)in->times + (size_t)in->times - 1;
    char *s = im_call_alloc(call, n + 1);
    if (!s) return im_call_fail(call, 503, "out of memory");
    size_t o = 0;
    for (int32_t i = 0; i < in->times; i++)
        o += (size_t)snprintf(s + o, n + 1 - o, "%s%s, %.*s!", i ? " " : "", h, (int)in->name.len,
                              in->name.ptr);
    if (in->shout)
        for (size_t i = 0; i < o; i++)
            if (s[i] >= 'a' && s[i] <= 'z') s[i] = (char)(s[i] - 32);
    out->result.ptr = s;
    out->result.len = o;
    return 0;
}

/* Not thread-safe on purpose (a static counter): it runs on the serial executor. */
static int64_t calls_so_far;

IM_ENDPOINT(POST, "/v1/text/words", .summary = "Count words and find the longest",
            .mode = IM_SERIAL)
IM_ARG(string[], words, "The words", .max_items = 10000, .max_length = 1000)
IM_ARG(string, sep, "Separator for the joined result", .optional = true, .max_length = 8)
IM_RESULT(object, "What was found")
IM_FIELD(int64, count, "Words")
IM_FIELD(string, longest, "The longest word (the first of equals)")
IM_FIELD(int64, chars, "Bytes in all words")
IM_FIELD(string, joined, "The words joined by sep, when sep was given", .optional = true)
IM_FIELD(int64, call_number, "Calls of this endpoint so far")
int words(im_call *call, const words_args *in, words_result *out)
{
    size_t best = 0, total = 0;
    for (size_t i = 0; i < in->words.len; i++) {
        total += in->words.ptr[i].len;
        if (in->words.ptr[i].len > in->words.ptr[best].len) best = i;
    }
    out->count = (int64_t)in->words.len;
    out->chars = (int64_t)total;
    if (in->words.len) out->longest = in->words.ptr[best];
    else out->longest = im_str_from("");
    if (in->has_sep) {
        size_t n = total + in->sep.len * (in->words.len ? in->words.len - 1 : 0), o = 0;
        char *s = im_call_alloc(call, n + 1);
        if (!s) return im_call_fail(call, 503, "out of memory");
        for (size_t i = 0; i < in->words.len; i++) {
            if (i) {
                memcpy(s + o, in->sep.ptr, in->sep.len);
                o += in->sep.len;
            }
            memcpy(s + o, in->words.ptr[i].ptr, in->words.ptr[i].len);
            o += in->words.ptr[i].len;
        }
        out->has_joined = true;
        out->joined.ptr = s;
        out->joined.len = o;
    }
    out->call_number = ++calls_so_far;
    return 0;
}
