/* bench_route.c — route lookup among 1,000 generated routes (bench/make_routes_module.py):
 * every route's path, a parameter filled in where it has one, looked up in a shuffled order;
 * plus paths that miss. Prints ns per lookup as JSON lines. Never run by ctest. */
#define IMMERSIVE_IMPLEMENTATION
#include "immersive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_route.service.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(void)
{
    im_server *s = im_server_new(NULL);
    if (im_register_bench_route(s)) return 1;
    size_t n = s->neps;
    char (*paths)[96] = malloc(n * sizeof *paths);
    im_str *methods = malloc(n * sizeof *methods);
    size_t *order = malloc(n * sizeof *order);
    for (size_t i = 0; i < n; i++) {
        const im_endpoint *ep = s->eps[i]->ep;
        const char *p = ep->path, *brace = strchr(p, '{');
        if (brace) snprintf(paths[i], sizeof paths[i], "%.*s%zu", (int)(brace - p), p, i * 7919 % 100000);
        else snprintf(paths[i], sizeof paths[i], "%s", p);
        methods[i] = im_str_from(ep->method);
        order[i] = i;
    }
    srand(7);
    for (size_t i = n - 1; i > 0; i--) { /* shuffle: no help from the order of the table */
        size_t j = (size_t)rand() % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    im_str params[IM_MAX_PARAMS];
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) { /* every route is found, with the right handler */
        const im__rnode *node = im__rmatch(s->root, paths[i], paths[i] + strlen(paths[i]), methods[i], params, 0);
        if (!node || im__route_pick(node, methods[i])->udata != s->eps[i]) {
            fprintf(stderr, "bench_route: %s %s not found\n", s->eps[i]->ep->method, paths[i]);
            return 1;
        }
    }
    long rounds = 2000;
    double best = 1e9, best_miss = 1e9;
    for (int r = 0; r < 5; r++) {
        double t0 = now_s();
        for (long k = 0; k < rounds; k++)
            for (size_t i = 0; i < n; i++) {
                size_t x = order[i];
                hits += im__rmatch(s->root, paths[x], paths[x] + strlen(paths[x]), methods[x], params, 0) != NULL;
            }
        double t1 = now_s();
        for (long k = 0; k < rounds; k++)
            for (size_t i = 0; i < n; i++) {
                size_t x = order[i];
                hits += im__rmatch(s->root, paths[x], paths[x] + strlen(paths[x]) - 1, methods[x], params, 0) != NULL;
            }
        double t2 = now_s();
        if (t1 - t0 < best) best = t1 - t0;
        if (t2 - t1 < best_miss) best_miss = t2 - t1;
    }
    printf("{\"bench\":\"route_lookup\",\"routes\":%zu,\"ns_per_lookup\":%.1f,\"found\":true}\n", n,
           best * 1e9 / (double)(rounds * (long)n));
    printf("{\"bench\":\"route_lookup\",\"routes\":%zu,\"ns_per_lookup\":%.1f,\"found\":false}\n", n,
           best_miss * 1e9 / (double)(rounds * (long)n));
    if (hits == 0) printf("(no hits)\n");
    free(paths);
    free(methods);
    free(order);
    im_server_free(s);
    return 0;
}
