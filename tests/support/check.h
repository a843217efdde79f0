/* check.h — the tests' assertion: CHECK(cond, fmt, ...) reports a failed condition with its
 * place and a message and counts it (thread-safe); check_exit() prints the verdict and gives
 * the exit status (0 pass, 1 fail). */
#ifndef IM_TEST_CHECK_H
#define IM_TEST_CHECK_H
#include <stdatomic.h>
#include <stdio.h>

static atomic_int check_failures;

#define CHECK(cond, ...)                                                             \
    do {                                                                             \
        if (!(cond)) {                                                               \
            atomic_fetch_add(&check_failures, 1);                                    \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
        }                                                                            \
    } while (0)

static inline int check_failed(void) { return atomic_load(&check_failures); }

static inline int check_exit(const char *what)
{
    int n = atomic_load(&check_failures);
    if (n) {
        fprintf(stderr, "%s: %d checks failed\n", what, n);
        return 1;
    }
    printf("%s: all passed\n", what);
    return 0;
}
#endif
