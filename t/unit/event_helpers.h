/*
 * Shared by the event ingest unit tests (test_event_parse.c,
 * test_event_apply.c): JSON text helpers (J() writes ' for "), contexts
 * for client and server trust, and checks that a body is refused with a
 * given field.  Each test uses a part of them.
 */

#ifndef EVENT_HELPERS_H
#define EVENT_HELPERS_H

#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "omni_tap.h"
#include "omni_event.h"
#include "omni_update.h"


#define NOW  1800000000u            /* 2027-01-15T08:00:00Z */

#define VID_A   "a0000000000000000000000000000001"
#define VID_B   "a0000000000000000000000000000002"

/* sha256("ana@example.com") */
#define ANA_SHA                                                              \
    "8e43ca37701228e74983efdbd0cff5c16b3b1e5d4e29a7c05626d4d25a018e11"

static char  tmpdir[64];


/* ---- text helpers ---- */

#define NBUF  8

static char      bufs[NBUF][16384];
static unsigned  bufi;


/* printf into a rotating buffer, every ' turned into " */
static const char *J(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static const char *
J(const char *fmt, ...)
{
    char     *b, *p;
    va_list   ap;

    b = bufs[bufi++ % NBUF];

    va_start(ap, fmt);
    vsnprintf(b, sizeof(bufs[0]), fmt, ap);
    va_end(ap);

    for (p = b; *p; p++) {
        if (*p == '\'') {
            *p = '"';
        }
    }

    return b;
}


/* n copies of c */
static const char *
rep(char c, size_t n)
{
    char  *b;

    b = bufs[bufi++ % NBUF];
    memset(b, c, n);
    b[n] = '\0';

    return b;
}


static const char *
iso(uint32_t t)
{
    char       *b;
    time_t      tt;
    struct tm   tm;

    b = bufs[bufi++ % NBUF];
    tt = (time_t) t;
    gmtime_r(&tt, &tm);
    strftime(b, 64, "%Y-%m-%dT%H:%M:%SZ", &tm);

    return b;
}


static void
hex2id(const char *hex, unsigned char *id)
{
    if (omni_id_parse(hex, strlen(hex), id) != OMNI_OK) {
        printf("Bail out! bad test id %s\n", hex);
        exit(1);
    }
}


static const char *
id2hex(const unsigned char *id)
{
    char  *b;

    b = bufs[bufi++ % NBUF];
    omni_id_hex(id, b);

    return b;
}


static int
is_zero_id(const unsigned char *id)
{
    static const unsigned char  zero[OMNI_ID_LEN];

    return memcmp(id, zero, OMNI_ID_LEN) == 0;
}


/* ---- contexts ---- */

static void
ctx_client(omni_event_ctx_t *c, unsigned kind, const char *vid,
    unsigned channel)
{
    memset(c, 0, sizeof(omni_event_ctx_t));
    c->trust = OMNI_TRUST_CLIENT;
    c->source = OMNI_SRC_CLIENT;
    c->now = NOW;
    c->channel = channel;
    c->visitor_kind = kind;

    if (kind) {
        hex2id(vid, c->visitor);
    }
}


static void
ctx_server(omni_event_ctx_t *c)
{
    memset(c, 0, sizeof(omni_event_ctx_t));
    c->trust = OMNI_TRUST_SERVER;
    c->source = OMNI_SRC_SERVER;
    c->now = NOW;
    c->channel = OMNI_CH_MAX;
}


/* ---- parse checks ---- */

/*
 * A one-event body whose event is refused with rc, naming field, with a
 * reason that holds `reason` (any non-empty reason when NULL).
 */
static void
bad(const omni_event_ctx_t *c, const char *text, int rc, const char *field,
    const char *reason)
{
    int                 brc, same;
    omni_event_err_t    err;
    omni_event_batch_t  b;

    brc = omni_event_batch_parse(&b, text, strlen(text), c, &err);

    if (brc != OMNI_OK || b.n != 1) {
        ok(0, "refused: %s", text);
        printf("#   the body was refused: %s: %s\n", err.field, err.reason);
        omni_event_batch_free(&b);
        return;
    }

    same = b.rc[0] == rc && strcmp(b.errs[0].field, field) == 0
           && b.errs[0].reason[0] != '\0'
           && (reason == NULL || strstr(b.errs[0].reason, reason) != NULL);

    ok(same, "%s %s: %s", rc == OMNI_EVENT_FORBIDDEN ? "forbidden"
                                                     : "invalid",
       field, text);

    if (!same) {
        printf("#   got rc %d, field '%s', reason '%s'\n", b.rc[0],
               b.errs[0].field, b.errs[0].reason);
    }

    omni_event_batch_free(&b);
}


/* A body refused as a whole, naming field. */
static void
bad_body(const omni_event_ctx_t *c, const char *text, size_t len,
    const char *field, const char *reason, const char *what)
{
    int                 rc, same;
    omni_event_err_t    err;
    omni_event_batch_t  b;

    memset(&err, 0, sizeof(err));
    rc = omni_event_batch_parse(&b, text, len, c, &err);

    same = rc == OMNI_INVALID && strcmp(err.field, field) == 0
           && err.reason[0] != '\0'
           && (reason == NULL || strstr(err.reason, reason) != NULL)
           && b.n == 0 && b.events == NULL;

    ok(same, "body refused, %s: %s", field, what);

    if (!same) {
        printf("#   got rc %d, n %u, field '%s', reason '%s'\n", rc, b.n,
               err.field, err.reason);
    }

    omni_event_batch_free(&b);
}


/* A valid one-event body; the caller frees b when this returns 1. */
static int
good(omni_event_batch_t *b, const omni_event_ctx_t *c, const char *text)
{
    int               rc;
    omni_event_err_t  err;

    rc = omni_event_batch_parse(b, text, strlen(text), c, &err);

    if (rc != OMNI_OK) {
        ok(0, "valid: %s", text);
        printf("#   the body was refused: %s: %s\n", err.field, err.reason);
        return 0;
    }

    ok(b->n == 1 && b->rc[0] == OMNI_OK, "valid: %s", text);

    if (b->n != 1 || b->rc[0] != OMNI_OK) {
        printf("#   %s: %s\n", b->errs[0].field, b->errs[0].reason);
        omni_event_batch_free(b);
        return 0;
    }

    return 1;
}


/* The channel a valid event resolves to (-1: refused). */
static int
channel_of(const omni_event_ctx_t *c, const char *text)
{
    int                 ch;
    omni_event_err_t    err;
    omni_event_batch_t  b;

    if (omni_event_batch_parse(&b, text, strlen(text), c, &err) != OMNI_OK)
    {
        return -1;
    }

    ch = (b.n == 1 && b.rc[0] == OMNI_OK) ? (int) b.events[0].channel : -1;

    if (ch < 0 && b.n == 1) {
        printf("#   %s: %s: %s\n", text, b.errs[0].field, b.errs[0].reason);
    }

    omni_event_batch_free(&b);

    return ch;
}


static const omni_attr_t *
ev_trait(const omni_event_t *ev, const char *key)
{
    unsigned  i;

    for (i = 0; i < ev->ntraits; i++) {
        if (strcmp(ev->traits[i].key, key) == 0) {
            return &ev->traits[i];
        }
    }

    return NULL;
}


static int
ev_unset(const omni_event_t *ev, const char *key)
{
    unsigned  i;

    for (i = 0; i < ev->nunset; i++) {
        if (strcmp(ev->unset[i], key) == 0) {
            return 1;
        }
    }

    return 0;
}


/* ---- omni_event_parse_time ---- */

#endif /* EVENT_HELPERS_H */
