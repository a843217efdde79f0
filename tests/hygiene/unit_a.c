/* unit_a.c — the translation unit with the implementation (see unit_b.c). */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

int unit_b_uses_the_api(void);

int main(void) { return unit_b_uses_the_api() == 0 ? 0 : 1; }
