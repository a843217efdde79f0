/* impl.c — the implementation alone in one object, for the exported-symbol check. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"
