/* json_walk.h — walks a whole JSON value with the pull reader the way a binder does (keys and
 * strings read, numbers parsed). Returns 0 or the reader's error. */
#ifndef IM_TEST_JSON_WALK_H
#define IM_TEST_JSON_WALK_H
static int json_walk(im_json *j)
{
    int t = im_json_peek(j), r;
    im_str s;
    im_json_num n;
    switch (t) {
    case IM_JSON_OBJECT:
        if ((r = im_json_obj_enter(j))) return r;
        while ((r = im_json_obj_key(j, &s)) == 1)
            if ((r = json_walk(j))) return r;
        return r;
    case IM_JSON_ARRAY:
        if ((r = im_json_arr_enter(j))) return r;
        while ((r = im_json_arr_next(j)) == 1)
            if ((r = json_walk(j))) return r;
        return r;
    case IM_JSON_STRING: return im_json_string(j, &s, NULL, 0);
    case IM_JSON_NUMBER: return im_json_number(j, &n);
    case IM_JSON_TRUE:
    case IM_JSON_FALSE: return im_json_bool(j, &r);
    case IM_JSON_NULL: return im_json_null(j);
    default: return t;
    }
}
#endif
