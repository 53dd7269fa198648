/*
 * omnictl tail: the touchpoint feed on standard output (docs/feed.md),
 * the same lines as the omni_feed endpoint (omni_feed_line()).
 */

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "omnictl.h"
#include "omni_feed.h"


/* Lines per read transaction: a long backlog never pins one snapshot. */
#define OMNICTL_TAIL_PAGE   1000


typedef struct {
    uint64_t    cursor;
    char       *buf;
    size_t      cap;
    unsigned    n;
    int         failed;
} omnictl_tail_t;


static volatile sig_atomic_t  omnictl_tail_stop;


static void
omnictl_tail_signal(int signo)
{
    (void) signo;
    omnictl_tail_stop = 1;
}


static int
omnictl_tail_line(void *arg, uint64_t seq, const void *data, size_t len)
{
    omnictl_tail_t *t = arg;

    char    *p;
    size_t   n;

    n = omni_feed_line(seq, data, len, t->buf, t->cap);

    if (n > t->cap) {
        p = realloc(t->buf, n);
        if (p == NULL) {
            return OMNI_ERROR;
        }

        t->buf = p;
        t->cap = n;
        (void) omni_feed_line(seq, data, len, t->buf, t->cap);
    }

    if (fwrite(t->buf, 1, n, stdout) != n) {
        t->failed = 1;
        return OMNI_ERROR;
    }

    t->cursor = seq;
    t->n++;

    return OMNI_OK;
}


int
omnictl_tail(omnictl_ctx_t *ctx)
{
    int                rc, attempt;
    char              *end;
    uint64_t           first, left;
    unsigned           page;
    omni_store_t      *st;
    omnictl_tail_t     t;
    struct sigaction   sa;
    struct timespec    ts;
    unsigned long long v;

    memset(&t, 0, sizeof(omnictl_tail_t));
    left = 0;

    if (ctx->after != NULL) {
        errno = 0;
        v = strtoull(ctx->after, &end, 10);
        if (errno || end == ctx->after || *end != '\0'
            || ctx->after[0] == '-')
        {
            return omnictl_usage_error(ctx, "invalid --after \"%s\" "
                                       "(a cursor: a seq)", ctx->after);
        }

        t.cursor = v;
    }

    if (ctx->limit != NULL) {
        errno = 0;
        v = strtoull(ctx->limit, &end, 10);
        if (errno || end == ctx->limit || *end != '\0' || v == 0
            || ctx->limit[0] == '-')
        {
            return omnictl_usage_error(ctx, "invalid --limit \"%s\"",
                                       ctx->limit);
        }

        left = v;
    }

    rc = omnictl_open(ctx, OMNICTL_OPEN_READ, &st);
    if (rc != OMNICTL_EXIT_OK) {
        return rc;
    }

    memset(&sa, 0, sizeof(struct sigaction));
    sa.sa_handler = omnictl_tail_signal;
    sigemptyset(&sa.sa_mask);
    (void) sigaction(SIGINT, &sa, NULL);
    (void) sigaction(SIGTERM, &sa, NULL);

    rc = OMNICTL_EXIT_OK;

    while (!omnictl_tail_stop) {

        /* One page per read transaction, renewed for every page. */
        for (attempt = 0; /* void */; attempt++) {
            rc = omni_store_read_begin(st);

            if (rc != OMNI_MAP_RESIZED || attempt > 3
                || omni_store_set_map_size(st, 0) != OMNI_OK)
            {
                break;
            }
        }

        if (rc != OMNI_OK) {
            omnictl_error(ctx, "%s", omni_store_error(st));
            rc = OMNICTL_EXIT_FATAL;
            break;
        }

        page = OMNICTL_TAIL_PAGE;
        if (left && left < page) {
            page = (unsigned) left;
        }

        t.n = 0;
        rc = omni_store_feed(st, t.cursor, page, omnictl_tail_line, &t,
                             &first);
        omni_store_read_end(st);
        fflush(stdout);

        if (rc != OMNI_OK) {
            if (!t.failed) {
                omnictl_error(ctx, "%s", omni_store_error(st));
            }

            rc = OMNICTL_EXIT_FATAL;
            break;
        }

        rc = OMNICTL_EXIT_OK;

        if (t.cursor + 1 < first) {
            omnictl_error(ctx, "cursor expired (first available: %llu)",
                          (unsigned long long) first);
            rc = OMNICTL_EXIT_FAILED;
            break;
        }

        if (left) {
            left -= t.n;

            if (left == 0 && !ctx->follow) {
                break;
            }

            if (left == 0) {
                /* With -f, --limit is per poll. */
                left = strtoull(ctx->limit, NULL, 10);
                goto wait;
            }
        }

        if (t.n == page) {
            continue;                   /* more right away */
        }

        if (!ctx->follow) {
            break;
        }

    wait:

        ts.tv_sec = 0;
        ts.tv_nsec = 200 * 1000000L;
        (void) nanosleep(&ts, NULL);
    }

    free(t.buf);
    omni_store_close(st);

    return rc;
}
