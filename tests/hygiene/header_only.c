/* header_only.c — the public declarations alone, compiled as strict C11 and as C++. */
#include "immersive.h"

int im_header_only_probe(void);
int im_header_only_probe(void) { return IM_VERSION_MAJOR >= 0 ? 0 : 1; }
