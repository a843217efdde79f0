/* main.c — an outside project that uses immersive as a package (tests/package/test_package.py
 * builds it with add_subdirectory, FetchContent and find_package): one annotated module. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"
#include "app.service.h"

#include <stdio.h>

int main(void)
{
    im_server_opts o = {0};
    o.port = -1; /* any free port: printed below */
    o.loops = 1;
    o.workers = 1;
    im_server *s = im_server_new(&o);
    if (!s || im_register_app(s) || im_server_start(s)) return 1;
    printf("listening on http://127.0.0.1:%d\n", im_server_port(s));
    fflush(stdout);
    int rc = im_server_run(s);
    im_server_free(s);
    return rc ? 1 : 0;
}
