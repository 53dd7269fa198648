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
        long long gi_ = (long long) (got), wi_ = (long long) (want);        \
        ok(gi_ == wi_, __VA_ARGS__);                                        \
        if (gi_ != wi_) {                                                   \
            printf("#   got %lld, want %lld\n", gi_, wi_);                  \
        }                                                                   \
    } while (0)

#define is_str(got, want, ...)                                              \
    do {                                                                    \
        const char *gs_ = (got), *ws_ = (want);                             \
        int same_ = gs_ && ws_ && strcmp(gs_, ws_) == 0;                    \
        ok(same_, __VA_ARGS__);                                             \
        if (!same_) {                                                       \
            printf("#   got '%s', want '%s'\n", gs_ ? gs_ : "(null)",       \
                   ws_ ? ws_ : "(null)");                                   \
        }                                                                   \
    } while (0)

#define done_testing()                                                      \
    (printf("1..%d\n", omni_tap_n), omni_tap_failed ? 1 : 0)

#endif /* OMNI_TAP_H */
