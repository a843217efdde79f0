/* unit_b.c — a second unit that only includes the header: the program must link with both. */
#include "immersive.h"

int unit_b_uses_the_api(void)
{
    im_str s = im_str_from("x");
    return im_str_eq(s, "x") ? 0 : 1;
}
