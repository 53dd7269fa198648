/*
 * Minimal TAP producer for the C unit tests: prove reads their output
 * through t/00-unit.t.  Each check prints "ok N - name" or "not ok N".
 */

#ifndef OMNI_TAP_H
#define OMNI_TAP_H

#include <stdio.h>
#include <string.h>

static int omni_tap_n;
static int omni_tap_failed;

#define ok(cond, ...)                                                       \
    do {                                                                    \
        int c_ = (cond) ? 1 : 0;                                            \
        printf("%sok %d - ", c_ ? "" : "not ", ++omni_tap_n);               \
        printf(__VA_ARGS__);                                                \
        printf("\n");                                                       \
        if (!c_) {                                                          \
            omni_tap_failed++;                                              \
            printf("#   failed at %s line %d\n", __FILE__, __LINE__);       \
        }                                                                   \
    } while (0)

#define is_int(got, want, ...)                                              \
    do {                                                                    \
        long long g_ = (long long) (got), w_ = (long long) (want);          \
        ok(g_ == w_, __VA_ARGS__);                                          \
        if (g_ != w_) {                                                     \
            printf("#   got %lld, want %lld\n", g_, w_);                    \
        }                                                                   \
    } while (0)

#define is_str(got, want, ...)                                              \
    do {                                                                    \
        const char *g_ = (got), *w_ = (want);                               \
        int c_ = g_ && w_ && strcmp(g_, w_) == 0;                           \
        ok(c_, __VA_ARGS__);                                                \
        if (!c_) {                                                          \
            printf("#   got '%s', want '%s'\n", g_ ? g_ : "(null)",         \
                   w_ ? w_ : "(null)");                                     \
        }                                                                   \
    } while (0)

#define done_testing()                                                      \
    (printf("1..%d\n", omni_tap_n), omni_tap_failed ? 1 : 0)

#endif /* OMNI_TAP_H */
