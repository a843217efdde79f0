// bind_simdjson.cpp — the ten fields of bench/bindmod's body read with simdjson On-Demand into
// the same order_args struct, with the same checks the generated binder makes (types, bounds,
// string lengths in characters, the enum's values, no unknown key, every required key, a key
// once), for bench_bind to time beside it. Two ways: keys unescaped and compared as strings (the
// documented idiom), and raw keys dispatched on their first byte (simdjson's fastest, which
// refuses a key written with escapes where the binder decodes it). C++ in bench/ only.
#include <simdjson.h>

#include <cmath>
#include <cstring>

extern "C" {
#include "bindmod.gen.h"
}

static size_t chars(std::string_view s)
{
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xc0) != 0x80;
    return n;
}

static simdjson::ondemand::parser parser;

// 0 when the body binds; -1 on any error (the binder would answer 422)
extern "C" int bind_simdjson(const char *text, size_t len, size_t cap, order_args *a)
{
    using namespace simdjson;
    padded_string_view in(text, len, cap);
    ondemand::document doc;
    if (parser.iterate(in).get(doc)) return -1;
    ondemand::object obj;
    if (doc.get_object().get(obj)) return -1;
    unsigned seen = 0;
    a->discount = 0;
    a->express = false;
    a->note = im_str{"", 0};
    for (auto field : obj) {
        std::string_view key;
        if (field.unescaped_key().get(key)) return -1;
        ondemand::value v = field.value();
        unsigned bit;
        if (key == "id") {
            int64_t x;
            if (v.get_int64().get(x) || x < 1) return -1;
            a->id = x;
            bit = 1;
        } else if (key == "customer" || key == "email" || key == "note") {
            std::string_view s;
            if (v.get_string().get(s)) return -1;
            size_t max = key == "customer" ? 64 : key == "email" ? 128 : 2000;
            if (chars(s) > max) return -1;
            im_str *dst = key == "customer" ? &a->customer : key == "email" ? &a->email : &a->note;
            *dst = im_str{s.data(), s.size()};
            bit = key == "customer" ? 2 : key == "email" ? 4 : 512;
        } else if (key == "quantity") {
            int64_t x;
            if (v.get_int64().get(x) || x < 1 || x > 1000) return -1;
            a->quantity = (int32_t)x;
            bit = 8;
        } else if (key == "price" || key == "discount") {
            double x;
            if (v.get_double().get(x) || !std::isfinite(x) || x < 0 || (key == "discount" && x > 1)) return -1;
            (key == "price" ? a->price : a->discount) = x;
            bit = key == "price" ? 16 : 32;
        } else if (key == "express") {
            bool x;
            if (v.get_bool().get(x)) return -1;
            a->express = x;
            bit = 64;
        } else if (key == "currency") {
            std::string_view s;
            if (v.get_string().get(s)) return -1;
            if (s == "EUR") a->currency = 0;
            else if (s == "USD") a->currency = 1;
            else if (s == "GBP") a->currency = 2;
            else return -1;
            bit = 128;
        } else if (key == "created") {
            int64_t x;
            if (v.get_int64().get(x)) return -1;
            a->created = x;
            bit = 256;
        } else {
            return -1; // extra_forbidden
        }
        if (seen & bit) return -1;
        seen |= bit;
    }
    // (simdjson 3.0's On-Demand has no at_end(): what follows the object is not checked here,
    // where the binder refuses it; the comparison favours simdjson by that much)
    const unsigned required = 1 | 2 | 4 | 8 | 16 | 128 | 256;
    return (seen & required) == required ? 0 : -1;
}

// The same with raw keys: no unescaping copy, a switch on the first byte, compared in place
extern "C" int bind_simdjson_raw(const char *text, size_t len, size_t cap, order_args *a)
{
    using namespace simdjson;
    padded_string_view in(text, len, cap);
    ondemand::document doc;
    if (parser.iterate(in).get(doc)) return -1;
    ondemand::object obj;
    if (doc.get_object().get(obj)) return -1;
    unsigned seen = 0, bit = 0;
    a->discount = 0;
    a->express = false;
    a->note = im_str{"", 0};
    for (auto field : obj) {
        ondemand::raw_json_string key;
        if (field.key().get(key)) return -1;
        ondemand::value v;
        if (field.value().get(v)) return -1;
        std::string_view s;
        int64_t x;
        double d;
        bool t;
        switch (key.raw()[0]) {
        case 'i':
            if (!key.unsafe_is_equal("id")) return -1;
            if (v.get_int64().get(x) || x < 1) return -1;
            a->id = x;
            bit = 1;
            break;
        case 'c':
            if (key.unsafe_is_equal("customer")) {
                if (v.get_string().get(s) || chars(s) > 64) return -1;
                a->customer = im_str{s.data(), s.size()};
                bit = 2;
            } else if (key.unsafe_is_equal("currency")) {
                if (v.get_string().get(s)) return -1;
                if (s == "EUR") a->currency = 0;
                else if (s == "USD") a->currency = 1;
                else if (s == "GBP") a->currency = 2;
                else return -1;
                bit = 128;
            } else if (key.unsafe_is_equal("created")) {
                if (v.get_int64().get(x)) return -1;
                a->created = x;
                bit = 256;
            } else {
                return -1;
            }
            break;
        case 'e':
            if (key.unsafe_is_equal("email")) {
                if (v.get_string().get(s) || chars(s) > 128) return -1;
                a->email = im_str{s.data(), s.size()};
                bit = 4;
            } else if (key.unsafe_is_equal("express")) {
                if (v.get_bool().get(t)) return -1;
                a->express = t;
                bit = 64;
            } else {
                return -1;
            }
            break;
        case 'q':
            if (!key.unsafe_is_equal("quantity")) return -1;
            if (v.get_int64().get(x) || x < 1 || x > 1000) return -1;
            a->quantity = (int32_t)x;
            bit = 8;
            break;
        case 'p':
            if (!key.unsafe_is_equal("price")) return -1;
            if (v.get_double().get(d) || !std::isfinite(d) || d < 0) return -1;
            a->price = d;
            bit = 16;
            break;
        case 'd':
            if (!key.unsafe_is_equal("discount")) return -1;
            if (v.get_double().get(d) || !std::isfinite(d) || d < 0 || d > 1) return -1;
            a->discount = d;
            bit = 32;
            break;
        case 'n':
            if (!key.unsafe_is_equal("note")) return -1;
            if (v.get_string().get(s) || chars(s) > 2000) return -1;
            a->note = im_str{s.data(), s.size()};
            bit = 512;
            break;
        default:
            return -1; // extra_forbidden (or a key with escapes: refused here)
        }
        if (seen & bit) return -1;
        seen |= bit;
    }
    const unsigned required = 1 | 2 | 4 | 8 | 16 | 128 | 256;
    return (seen & required) == required ? 0 : -1;
}
