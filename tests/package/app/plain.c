/* plain.c — an outside program built with `cc plain.c $(pkg-config --cflags --libs immersive)`:
 * one hand-written route. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <stdio.h>

static void hello(im_ctx *c) { im_reply(c, 200, "text/plain", "Hello from pkg-config", 21); }

int main(void)
{
    im_server_opts o = {0};
    o.port = -1;
    o.loops = 1;
    im_server *s = im_server_new(&o);
    if (!s || im_server_route(s, "GET", "/hello", hello, NULL) || im_server_start(s)) return 1;
    printf("listening on http://127.0.0.1:%d\n", im_server_port(s));
    fflush(stdout);
    int rc = im_server_run(s);
    im_server_free(s);
    return rc ? 1 : 0;
}
