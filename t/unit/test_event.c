/*
 * Unit tests of event ingest (omni_event.h, docs/events.md):
 *
 *   omni_event_parse_time()    ISO 8601 forms, offsets, calendar bounds;
 *   omni_event_batch_parse()   bodies (one event, batch, array), every
 *                              refusal with the field it names, the trust
 *                              rules, nesting and batch limits, channel
 *                              resolution, the hashed email alias, the
 *                              made-up messageId;
 *   omni_event_apply()         against a store in a temporary directory
 *                              under /tmp: the profile change of every
 *                              kind of event, idempotency (messageId,
 *                              order id, purchase history, per-visitor
 *                              client ids), identity resolution and
 *                              stitching, and the feed record.
 *
 * JSON is written with ' for " (J() turns them back) to stay readable.
 */

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

static void
time_ok(const char *s, uint32_t want)
{
    uint32_t  t;
    int       rc;

    t = 0;
    rc = omni_event_parse_time(s, strlen(s), &t);
    ok(rc == OMNI_OK && t == want, "time %s = %u", s, want);

    if (rc != OMNI_OK || t != want) {
        printf("#   got rc %d, %u\n", rc, t);
    }
}


static void
time_bad(const char *s, size_t len)
{
    uint32_t  t;

    t = 12345;
    ok(omni_event_parse_time(s, len, &t) == OMNI_INVALID && t == 12345,
       "time refused: '%.*s'", (int) len, s);
}


#define TIME_BAD(s)  time_bad(s, sizeof(s) - 1)

static void
test_time(void)
{
    uint32_t  t;

    time_ok("1970-01-01T00:00:00Z", 0);
    time_ok("2026-11-24T13:20:05Z", 1795526405);
    time_ok("2026-11-24T13:20:05.123Z", 1795526405);
    time_ok("2026-11-24T13:20:05.999999999Z", 1795526405);
    time_ok("2026-11-24T13:20:05.1z", 1795526405);
    time_ok("2026-11-24t13:20:05z", 1795526405);
    time_ok("2026-11-24 13:20:05Z", 1795526405);
    time_ok("2026-11-24T14:20:05+01:00", 1795526405);
    time_ok("2026-11-24T14:20:05.5+01:00", 1795526405);
    time_ok("2026-11-24T08:50:05-04:30", 1795526405);
    time_ok("2026-11-25T12:20:05+23:00", 1795526405);
    time_ok("2026-11-24T13:20:05-00:00", 1795526405);
    time_ok("2023-11-14T22:13:20Z", 1700000000);
    time_ok("2027-01-15T08:00:00Z", NOW);
    time_ok("2024-02-29T00:00:00Z", 1709164800);
    time_ok("2000-02-29T12:00:00Z", 951825600);
    time_ok("2100-02-28T23:59:59Z", 4107542399u);
    time_ok("2106-02-07T06:28:15Z", 4294967295u);
    time_ok("1970-01-01T00:00:00-01:00", 3600);
    time_ok("2016-12-31T23:59:60Z", 1483228799);   /* leap second */
    time_ok("2026-12-31T23:59:59Z", 1798761599);

    /* calendar */
    TIME_BAD("2026-13-01T00:00:00Z");
    TIME_BAD("2026-00-10T00:00:00Z");
    TIME_BAD("2026-01-00T00:00:00Z");
    TIME_BAD("2026-01-32T00:00:00Z");
    TIME_BAD("2026-02-30T00:00:00Z");
    TIME_BAD("2026-04-31T00:00:00Z");
    TIME_BAD("2025-02-29T00:00:00Z");   /* not a leap year */
    TIME_BAD("2100-02-29T00:00:00Z");   /* not a leap year either */
    TIME_BAD("2026-11-24T24:00:00Z");
    TIME_BAD("2026-11-24T23:60:00Z");
    TIME_BAD("2026-11-24T23:59:61Z");

    /* range */
    TIME_BAD("1969-12-31T23:59:59Z");
    TIME_BAD("0000-01-01T00:00:00Z");
    TIME_BAD("1970-01-01T00:00:00+00:01");
    TIME_BAD("2106-02-07T06:28:16Z");
    TIME_BAD("9999-12-31T23:59:59Z");

    /* shape */
    TIME_BAD("");
    TIME_BAD("2026-11-24");
    TIME_BAD("2026-11-24T13:20");
    TIME_BAD("2026-11-24T13:20:05");            /* no zone */
    TIME_BAD("2026-11-24T13:20:05.123");        /* no zone either */
    TIME_BAD("2026-11-24T13:20:05.Z");
    TIME_BAD("2026-11-24T13:20:05.");
    TIME_BAD("2026-11-24T13:20:05ZZ");
    TIME_BAD("2026-11-24T13:20:05Zx");
    TIME_BAD("2026-11-24T13:20:05Z ");
    TIME_BAD("2026-11-24T13:20:05 Z");
    TIME_BAD("2026-11-24T13:20:05+01:00x");
    TIME_BAD("2026-11-24T13:20:05+01:00Z");
    TIME_BAD("2026-11-24T13:20:05+0100");
    TIME_BAD("2026-11-24T13:20:05+01");
    TIME_BAD("2026-11-24T13:20:05+1:00");
    TIME_BAD("2026-11-24T13:20:05+24:00");
    TIME_BAD("2026-11-24T13:20:05+01:60");
    TIME_BAD("2026-11-24T13:20:05UTC");
    TIME_BAD("2026/11/24T13:20:05Z");
    TIME_BAD("2026-11-24X13:20:05Z");
    TIME_BAD("2026-11-24T13-20-05Z");
    TIME_BAD("2O26-11-24T13:20:05Z");
    TIME_BAD("+2026-11-24T13:20:05Z");
    TIME_BAD("2026-1-24T13:20:05Z");
    TIME_BAD(" 2026-11-24T13:20:05Z");
    TIME_BAD("yesterday at noon, UTC");

    /* len bounds the string, whatever follows */
    t = 0;
    ok(omni_event_parse_time("2026-11-24T13:20:05Zjunk", 20, &t) == OMNI_OK
       && t == 1795526405, "time: only len bytes are read");
    time_bad("2026-11-24T13:20:05Z", 19);
    time_bad("2026-11-24T13:20:05+01:00", 24);
}


/* ---- bodies ---- */

/* n page events between open and close; the length */
static size_t
many(char *buf, unsigned n, const char *open, const char *close)
{
    size_t    len;
    unsigned  i;

    len = (size_t) sprintf(buf, "%s", open);

    for (i = 0; i < n; i++) {
        len += (size_t) sprintf(buf + len, "%s{\"type\":\"page\"}",
                                i ? "," : "");
    }

    len += (size_t) sprintf(buf + len, "%s", close);

    return len;
}


static void
test_bodies(void)
{
    char                buf[32768];
    size_t              len;
    omni_event_ctx_t    c;
    omni_event_err_t    err;
    omni_event_batch_t  b;

    ctx_client(&c, OMNI_ALIAS_COOKIE, VID_A, OMNI_CH_WEB);

    /* one event */
    if (good(&b, &c, J("{'type':'page'}"))) {
        is_int(b.batch, 0, "one event: not a batch");
        is_int(b.events[0].type, OMNI_EV_PAGE, "one event: a page");
        omni_event_batch_free(&b);
    }

    /* a batch: every event on its own, named by index */
    len = strlen(strcpy(buf, J("{'batch':[{'type':'page'},"
                               "{'type':'track','event':'Product Added',"
                               "'properties':{'name':'x'}},"
                               "{'type':'track','event':'Order Completed',"
                               "'properties':{'order_id':'o','products':"
                               "[{'sku':'A'}]}},"
                               "7,"
                               "{'type':'screen'}],"
                               "'context':{'library':{'name':'x'}},"
                               "'sentAt':'2027-01-15T08:00:00Z',"
                               "'writeKey':'k','integrations':{}}")));
    is_int(omni_event_batch_parse(&b, buf, len, &c, &err), OMNI_OK,
           "batch: parsed");
    is_int(b.batch, 1, "batch: a batch");
    is_int(b.n, 5, "batch: five events");

    if (b.n == 5) {
        is_int(b.rc[0], OMNI_OK, "batch[0]: valid");
        is_int(b.rc[1], OMNI_INVALID, "batch[1]: invalid");
        is_str(b.errs[1].field, "batch[1].properties.sku",
               "batch[1]: named by index");
        is_int(b.rc[2], OMNI_EVENT_FORBIDDEN, "batch[2]: forbidden");
        is_str(b.errs[2].field, "batch[2].event", "batch[2]: the event");
        is_int(b.rc[3], OMNI_INVALID, "batch[3]: not an object");
        is_str(b.errs[3].field, "batch[3]", "batch[3]: the element");
        ok(strstr(b.errs[3].reason, "event object") != NULL,
           "batch[3]: the reason");
        is_int(b.rc[4], OMNI_OK, "batch[4]: valid");
        is_int(b.events[4].type, OMNI_EV_SCREEN, "batch[4]: a screen");
        ok(b.events[1].products == NULL && b.events[1].nproducts == 0
           && b.events[2].order_id == NULL,
           "refused events hold nothing");
    }

    omni_event_batch_free(&b);
    ok(b.n == 0 && b.events == NULL && b.rc == NULL,
       "batch_free clears the batch");

    /* a JSON array */
    strcpy(buf, J("[{'type':'page'},{'type':'screen','messageId':'s'}]"));
    is_int(omni_event_batch_parse(&b, buf, strlen(buf), &c, &err), OMNI_OK,
           "array: parsed");
    ok(b.batch == 1 && b.n == 2 && b.rc[0] == OMNI_OK && b.rc[1] == OMNI_OK
       && strcmp(b.events[1].message_id, "s") == 0,
       "array: a batch of two");
    omni_event_batch_free(&b);

    /* 100 events are fine, 101 are not */
    len = many(buf, 100, "[", "]");
    is_int(omni_event_batch_parse(&b, buf, len, &c, &err), OMNI_OK,
           "100 events: parsed");
    ok(b.n == 100 && b.rc[99] == OMNI_OK, "100 events");
    omni_event_batch_free(&b);

    len = many(buf, 100, "{\"batch\":[", "]}");
    is_int(omni_event_batch_parse(&b, buf, len, &c, &err), OMNI_OK,
           "a batch of 100: parsed");
    is_int(b.n, 100, "a batch of 100");
    omni_event_batch_free(&b);

    len = many(buf, 101, "[", "]");
    bad_body(&c, buf, len, "batch", "1 to 100", "101 events (array)");
    len = many(buf, 101, "{\"batch\":[", "]}");
    bad_body(&c, buf, len, "batch", "1 to 100", "101 events (batch)");

    bad_body(&c, "[]", 2, "batch", "1 to 100", "empty array");
    bad_body(&c, "{\"batch\":[]}", 12, "batch", "1 to 100", "empty batch");
    bad_body(&c, "{\"batch\":{}}", 12, "batch", "an array", "batch {}");
    bad_body(&c, "{\"batch\":null}", 14, "batch", "an array",
             "batch null");
    bad_body(&c, "{\"batch\":[{\"type\":\"page\"}],\"foo\":1}", 35, "foo",
             "next to \"batch\"", "unknown member next to batch");
    bad_body(&c, "{\"type\": \"track\", ", 18, "body",
             "invalid JSON at line 1", "truncated JSON");
    bad_body(&c, "{\"type\":\"track\",\"type\":\"page\"}", 30, "body",
             "duplicate", "duplicate keys");
    bad_body(&c, "\"hello\"", 7, "body", "event object or a batch",
             "a string");
    bad_body(&c, "42", 2, "body", "event object or a batch", "a number");
    bad_body(&c, "null", 4, "body", "event object or a batch", "null");
    bad_body(&c, "", 0, "body", "invalid JSON", "empty body");
    bad_body(&c, "{\"type\":\"page\"}{}", 17, "body", "invalid JSON",
             "two objects");
    bad_body(&c, "{\"type\":\"page\",\"x\":\"\\u0000\"}", 28, "body",
             "invalid JSON", "NUL in a string");

    /* len bounds the body */
    strcpy(buf, "{\"type\":\"page\"}garbage");
    is_int(omni_event_batch_parse(&b, buf, 15, &c, &err), OMNI_OK,
           "only len bytes are parsed");
    omni_event_batch_free(&b);
}


/* An event whose properties nest k objects deep: its depth is k + 1. */
static const char *
deep_event(unsigned k, const char *open, const char *close)
{
    char      *b;
    size_t     n;
    unsigned   i;

    b = bufs[bufi++ % NBUF];
    n = (size_t) sprintf(b, "%s{\"type\":\"page\",\"properties\":", open);

    for (i = 1; i < k; i++) {
        n += (size_t) sprintf(b + n, "{\"a\":");
    }

    n += (size_t) sprintf(b + n, "{\"x\":1}");

    for (i = 1; i < k; i++) {
        b[n++] = '}';
    }

    sprintf(b + n, "}%s", close);

    return b;
}


static void
test_depth(void)
{
    const char          *s;
    omni_event_ctx_t     c;
    omni_event_batch_t   b;

    ctx_client(&c, OMNI_ALIAS_COOKIE, VID_A, OMNI_CH_WEB);

    /* 8 levels inside an event */
    if (good(&b, &c, deep_event(7, "", ""))) {
        omni_event_batch_free(&b);
    }

    bad(&c, deep_event(8, "", ""), OMNI_INVALID, "event",
        "nested deeper than 8");
    bad(&c, deep_event(9, "", ""), OMNI_INVALID, "event",
        "nested deeper than 8");
    s = deep_event(10, "", "");
    bad_body(&c, s, strlen(s), "body", "nested deeper than 8",
             "an event of 11 levels");

    /* 10 for the whole body: a batch adds two, an array one */
    s = deep_event(7, "{\"batch\":[", "]}");
    if (good(&b, &c, s)) {
        omni_event_batch_free(&b);
    }

    s = deep_event(8, "{\"batch\":[", "]}");
    bad_body(&c, s, strlen(s), "body", "nested deeper", "batch of 11");

    s = deep_event(8, "[", "]");
    bad(&c, s, OMNI_INVALID, "batch[0]", "nested deeper than 8");

    s = deep_event(9, "[", "]");
    bad_body(&c, s, strlen(s), "body", "nested deeper", "array of 11");

    /* arrays count as levels too */
    bad(&c, J("{'type':'page','properties':{'a':[[[[[[[1]]]]]]]}}"),
        OMNI_INVALID, "event", "nested deeper");

    /* nesting is refused before anything else is looked at */
    s = J("{'batch':[{'type':'page'}],'foo':[[[[[[[[[[1]]]]]]]]]]}");
    bad_body(&c, s, strlen(s), "body", "nested deeper",
             "too deep beats an unknown member");
}


/* ---- every refusal, with the field it names ---- */

static void
test_invalid(void)
{
    omni_event_ctx_t    c;
    omni_event_batch_t  b;

    ctx_server(&c);

    /* members */
    bad(&c, J("{'type':'track','event':'X','userId':'C1','foo':1}"),
        OMNI_INVALID, "foo", "unknown field");
    bad(&c, J("{'type':'alias','previousId':'x','userId':'C1'}"),
        OMNI_INVALID, "previousId", "unknown field");
    bad(&c, J("{'event':'X','userId':'C1'}"), OMNI_INVALID, "type",
        "required");
    bad(&c, J("{'type':null,'userId':'C1'}"), OMNI_INVALID, "type",
        "required");
    bad(&c, J("{'type':5,'userId':'C1'}"), OMNI_INVALID, "type",
        "expected a string");
    bad(&c, J("{'type':'','userId':'C1'}"), OMNI_INVALID, "type", NULL);
    bad(&c, J("{'type':'alias','userId':'C1'}"), OMNI_INVALID, "type",
        "alias and group are not supported");
    bad(&c, J("{'type':'group','userId':'C1'}"), OMNI_INVALID, "type",
        "alias and group");
    bad(&c, J("{'type':'Track','event':'X','userId':'C1'}"), OMNI_INVALID,
        "type", "expected track");
    bad(&c, J("{'type':'%s','userId':'C1'}", rep('t', 17)), OMNI_INVALID,
        "type", NULL);

    /* event */
    bad(&c, J("{'type':'track','userId':'C1'}"), OMNI_INVALID, "event",
        "required for a track call");
    bad(&c, J("{'type':'track','event':'','userId':'C1'}"), OMNI_INVALID,
        "event", "1 to 64");
    bad(&c, J("{'type':'track','event':'%s','userId':'C1'}", rep('e', 65)),
        OMNI_INVALID, "event", "1 to 64");
    bad(&c, J("{'type':'track','event':'A\\u0001B','userId':'C1'}"),
        OMNI_INVALID, "event", "control characters");
    bad(&c, J("{'type':'track','event':'A\\u007fB','userId':'C1'}"),
        OMNI_INVALID, "event", "control characters");
    bad(&c, J("{'type':'track','event':7,'userId':'C1'}"), OMNI_INVALID,
        "event", "expected a string");

    if (good(&b, &c, J("{'type':'track','event':'%s','userId':'C1'}",
                       rep('e', 64))))
    {
        is_str(b.events[0].name, rep('e', 64), "an event name of 64");
        omni_event_batch_free(&b);
    }

    /* messageId */
    bad(&c, J("{'type':'page','userId':'C1','messageId':'%s'}",
              rep('m', 129)),
        OMNI_INVALID, "messageId", "1 to 128");
    bad(&c, J("{'type':'page','userId':'C1','messageId':''}"),
        OMNI_INVALID, "messageId", NULL);
    bad(&c, J("{'type':'page','userId':'C1','messageId':{}}"),
        OMNI_INVALID, "messageId", "expected a string");
    bad(&c, J("{'type':'page','userId':'C1','messageId':1.5}"),
        OMNI_INVALID, "messageId", NULL);
    bad(&c, J("{'type':'page','userId':'C1','messageId':true}"),
        OMNI_INVALID, "messageId", NULL);
    bad(&c, J("{'type':'page','userId':'C1','messageId':'a\\nb'}"),
        OMNI_INVALID, "messageId", "control");

    /* timestamp */
    bad(&c, J("{'type':'page','userId':'C1','timestamp':'yesterday'}"),
        OMNI_INVALID, "timestamp", "ISO 8601");
    bad(&c, J("{'type':'page','userId':'C1','timestamp':1700000000}"),
        OMNI_INVALID, "timestamp", "ISO 8601");
    bad(&c, J("{'type':'page','userId':'C1',"
              "'timestamp':'2026-02-30T00:00:00Z'}"),
        OMNI_INVALID, "timestamp", "ISO 8601");
    bad(&c, J("{'type':'page','userId':'C1',"
              "'timestamp':'2024-02-29T00:00:00'}"),
        OMNI_INVALID, "timestamp", "ISO 8601");
    bad(&c, J("{'type':'page','userId':'C1','timestamp':'%s'}",
              iso(NOW + 86401)),
        OMNI_INVALID, "timestamp", "future");

    /* properties, channel, context */
    bad(&c, J("{'type':'page','userId':'C1','properties':'x'}"),
        OMNI_INVALID, "properties", "expected an object");
    bad(&c, J("{'type':'page','userId':'C1','properties':[]}"),
        OMNI_INVALID, "properties", "expected an object");
    bad(&c, J("{'type':'page','userId':'C1','properties':"
              "{'channel':'moon'}}"),
        OMNI_INVALID, "properties.channel", "expected web");
    bad(&c, J("{'type':'page','userId':'C1','properties':{'channel':5}}"),
        OMNI_INVALID, "properties.channel", "expected a string");
    bad(&c, J("{'type':'page','userId':'C1','properties':{'channel':''}}"),
        OMNI_INVALID, "properties.channel", NULL);
    bad(&c, J("{'type':'page','userId':'C1','properties':"
              "{'channel':'%s'}}", rep('w', 17)),
        OMNI_INVALID, "properties.channel", NULL);
    bad(&c, J("{'type':'page','userId':'C1','properties':"
              "{'channel':'Web'}}"),
        OMNI_INVALID, "properties.channel", NULL);
    bad(&c, J("{'type':'page','userId':'C1','properties':"
              "{'channel':'nope'},'channel':'web'}"),
        OMNI_INVALID, "properties.channel", NULL);
    bad(&c, J("{'type':'page','userId':'C1','channel':'moon'}"),
        OMNI_INVALID, "channel", "browser, mobile or server");
    bad(&c, J("{'type':'page','userId':'C1','channel':5}"),
        OMNI_INVALID, "channel", "expected a string");
    bad(&c, J("{'type':'page','userId':'C1','context':'x'}"),
        OMNI_INVALID, "context", "expected an object");
    bad(&c, J("{'type':'page','userId':'C1','context':[1]}"),
        OMNI_INVALID, "context", "expected an object");

    /* identities */
    bad(&c, J("{'type':'page','userId':''}"), OMNI_INVALID, "userId",
        NULL);
    bad(&c, J("{'type':'page','userId':'%s'}", rep('u', 129)),
        OMNI_INVALID, "userId", "1 to 128");
    bad(&c, J("{'type':'page','userId':{}}"), OMNI_INVALID, "userId",
        "expected a string");
    bad(&c, J("{'type':'page','userId':'C\\t1'}"), OMNI_INVALID, "userId",
        "control");
    bad(&c, J("{'type':'page','anonymousId':'zz'}"), OMNI_INVALID,
        "anonymousId", "32 hex digits or a UUID");
    bad(&c, J("{'type':'page','anonymousId':'%s'}", rep('g', 32)),
        OMNI_INVALID, "anonymousId", "32 hex digits");
    bad(&c, J("{'type':'page','anonymousId':5}"), OMNI_INVALID,
        "anonymousId", "expected a string");
    bad(&c, J("{'type':'page','anonymousId':'%s'}", rep('a', 65)),
        OMNI_INVALID, "anonymousId", NULL);
    bad(&c, J("{'type':'page','profileId':'nothex'}"), OMNI_INVALID,
        "profileId", "32 hex digits");
    bad(&c, J("{'type':'page'}"), OMNI_INVALID, "userId",
        "needs userId, anonymousId, profileId or traits.email");
    bad(&c, J("{'type':'page','context':{'traits':{'email':'nope'}}}"),
        OMNI_INVALID, "userId", "needs userId");
    bad(&c, J("{'type':'page','userId':null}"), OMNI_INVALID, "userId",
        "needs userId");

    /* traits */
    bad(&c, J("{'type':'track','event':'X','userId':'C1',"
              "'traits':{'a':1}}"),
        OMNI_INVALID, "traits", "only identify");
    bad(&c, J("{'type':'page','userId':'C1','traits':{'a':1}}"),
        OMNI_INVALID, "traits", "only identify");
    bad(&c, J("{'type':'identify','userId':'C1','traits':'x'}"),
        OMNI_INVALID, "traits", "expected an object");
    bad(&c, J("{'type':'identify','userId':'C1','traits':[1]}"),
        OMNI_INVALID, "traits", "expected an object");
    bad(&c, J("{'type':'identify','userId':'C1','traits':{'%s':1}}",
              rep('k', 65)),
        OMNI_INVALID, "traits", "1 to 64");
    bad(&c, J("{'type':'identify','userId':'C1','traits':{'':1}}"),
        OMNI_INVALID, "traits", "1 to 64");
    bad(&c, J("{'type':'identify','userId':'C1','traits':{'a\\u0007':1}}"),
        OMNI_INVALID, "traits", "control");
    bad(&c, J("{'type':'identify','userId':'C1','traits':"
              "{'address':{'geo':{'lat':1}}}}"),
        OMNI_INVALID, "traits.address.geo", "one level");
    bad(&c, J("{'type':'identify','userId':'C1','traits':"
              "{'address':{'lines':['a']}}}"),
        OMNI_INVALID, "traits.address.lines", "one level");
    bad(&c, J("{'type':'identify','userId':'C1','traits':"
              "{'address':{'':1}}}"),
        OMNI_INVALID, "traits.address.", "1 to 64");
    bad(&c, J("{'type':'identify','userId':'C1','traits':"
              "{'address':{'%s':1}}}", rep('z', 57)),
        OMNI_INVALID, J("traits.address.%s", rep('z', 57)), "1 to 64");
    bad(&c, J("{'type':'identify','userId':'C1','traits':{'tags':[1]}}"),
        OMNI_INVALID, "traits.tags", "arrays");
    bad(&c, J("{'type':'identify','userId':'C1','traits':{'bio':'%s'}}",
              rep('b', 1025)),
        OMNI_INVALID, "traits.bio", "1024");
    bad(&c, J("{'type':'identify','userId':'C1','traits':"
              "{'bio':'a\\nb'}}"),
        OMNI_INVALID, "traits.bio", "control");
    bad(&c, J("{'type':'identify','userId':'C1','traits':"
              "{'address':{'city':'a\\rb'}}}"),
        OMNI_INVALID, "traits.address.city", "control");
    bad(&c, J("{'type':'identify','userId':'C1','traits':{'email':5}}"),
        OMNI_INVALID, "traits.email", "expected a string");
    bad(&c, J("{'type':'identify','userId':'C1','traits':"
              "{'email':'nobody'}}"),
        OMNI_INVALID, "traits.email", "email address");
    bad(&c, J("{'type':'identify','userId':'C1','traits':"
              "{'email':'   '}}"),
        OMNI_INVALID, "traits.email", "email address");
    bad(&c, J("{'type':'identify','userId':'C1','traits':"
              "{'email':'%s@x.io'}}", rep('e', 250)),
        OMNI_INVALID, "traits.email", "email address");
    bad(&c, J("{'type':'identify','userId':'C1','traits':"
              "{'email':'a\\u0001@x.io'}}"),
        OMNI_INVALID, "traits.email", "email address");

    if (good(&b, &c, J("{'type':'identify','userId':'C1','traits':"
                       "{'bio':'%s','empty':''}}", rep('b', 1024))))
    {
        ok(ev_trait(&b.events[0], "bio") != NULL
           && strlen(ev_trait(&b.events[0], "bio")->str) == 1024
           && ev_trait(&b.events[0], "empty") != NULL
           && strcmp(ev_trait(&b.events[0], "empty")->str, "") == 0,
           "a trait of 1024 bytes, and an empty one");
        omni_event_batch_free(&b);
    }

    /* product events */
    bad(&c, J("{'type':'track','event':'Product Viewed','userId':'C1'}"),
        OMNI_INVALID, "properties", "\"Product Viewed\" needs properties");
    bad(&c, J("{'type':'track','event':'Product Added','userId':'C1',"
              "'properties':null}"),
        OMNI_INVALID, "properties", "needs properties");
    bad(&c, J("{'type':'track','event':'Product Removed','userId':'C1'}"),
        OMNI_INVALID, "properties", "needs properties");
    bad(&c, J("{'type':'track','event':'Order Completed','userId':'C1'}"),
        OMNI_INVALID, "properties", "needs properties");
    bad(&c, J("{'type':'track','event':'Product Viewed','userId':'C1',"
              "'properties':{'name':'x'}}"),
        OMNI_INVALID, "properties.sku", "required (sku or product_id)");
    bad(&c, J("{'type':'track','event':'Product Added','userId':'C1',"
              "'properties':{'sku':''}}"),
        OMNI_INVALID, "properties.sku", "1 to 128");
    bad(&c, J("{'type':'track','event':'Product Added','userId':'C1',"
              "'properties':{'sku':'%s'}}", rep('s', 129)),
        OMNI_INVALID, "properties.sku", "1 to 128");
    bad(&c, J("{'type':'track','event':'Product Added','userId':'C1',"
              "'properties':{'sku':5}}"),
        OMNI_INVALID, "properties.sku", "expected a string");
    bad(&c, J("{'type':'track','event':'Product Added','userId':'C1',"
              "'properties':{'sku':'A\\nB'}}"),
        OMNI_INVALID, "properties.sku", "control characters");
    bad(&c, J("{'type':'track','event':'Product Added','userId':'C1',"
              "'properties':{'product_id':5}}"),
        OMNI_INVALID, "properties.product_id", "expected a string");
    bad(&c, J("{'type':'track','event':'Product Added','userId':'C1',"
              "'properties':{'sku':'A','name':'%s'}}", rep('n', 1025)),
        OMNI_INVALID, "properties.name", "1 to 1024");
    bad(&c, J("{'type':'track','event':'Product Added','userId':'C1',"
              "'properties':{'sku':'A','name':'a\\tb'}}"),
        OMNI_INVALID, "properties.name", "control");
    bad(&c, J("{'type':'track','event':'Product Added','userId':'C1',"
              "'properties':{'sku':'A','category':5}}"),
        OMNI_INVALID, "properties.category", "expected a string");
    bad(&c, J("{'type':'track','event':'Product Added','userId':'C1',"
              "'properties':{'sku':'A','url':'javascript:alert(1)'}}"),
        OMNI_INVALID, "properties.url", "http(s) URL or a path");
    bad(&c, J("{'type':'track','event':'Product Added','userId':'C1',"
              "'properties':{'sku':'A','url':'ftp://x/y'}}"),
        OMNI_INVALID, "properties.url", "http");
    bad(&c, J("{'type':'track','event':'Product Added','userId':'C1',"
              "'properties':{'sku':'A','image_url':'data:image/png,x'}}"),
        OMNI_INVALID, "properties.image_url", "http");
    bad(&c, J("{'type':'track','event':'Product Added','userId':'C1',"
              "'properties':{'sku':'A','price':-1}}"),
        OMNI_INVALID, "properties.price", "number from 0 to 1e12");
    bad(&c, J("{'type':'track','event':'Product Added','userId':'C1',"
              "'properties':{'sku':'A','price':'5'}}"),
        OMNI_INVALID, "properties.price", "number from 0");
    bad(&c, J("{'type':'track','event':'Product Added','userId':'C1',"
              "'properties':{'sku':'A','price':1e13}}"),
        OMNI_INVALID, "properties.price", "number from 0");
    bad(&c, J("{'type':'track','event':'Product Added','userId':'C1',"
              "'properties':{'sku':'A','quantity':0}}"),
        OMNI_INVALID, "properties.quantity", "integer from 1 to 10000");
    bad(&c, J("{'type':'track','event':'Product Added','userId':'C1',"
              "'properties':{'sku':'A','quantity':10001}}"),
        OMNI_INVALID, "properties.quantity", "integer from 1");
    bad(&c, J("{'type':'track','event':'Product Added','userId':'C1',"
              "'properties':{'sku':'A','quantity':1.5}}"),
        OMNI_INVALID, "properties.quantity", "integer from 1");
    bad(&c, J("{'type':'track','event':'Product Removed','userId':'C1',"
              "'properties':{'sku':'A','quantity':'2'}}"),
        OMNI_INVALID, "properties.quantity", "integer from 1");
    bad(&c, J("{'type':'track','event':'Product Removed','userId':'C1',"
              "'properties':{'sku':'A','quantity':-3}}"),
        OMNI_INVALID, "properties.quantity", "integer from 1");

    /* purchases */
    bad(&c, J("{'type':'track','event':'Order Completed','userId':'C1',"
              "'properties':{'products':[{'sku':'A'}]}}"),
        OMNI_INVALID, "properties.order_id", "required for a purchase");
    bad(&c, J("{'type':'track','event':'Order Completed','userId':'C1',"
              "'properties':{'order_id':'','products':[{'sku':'A'}]}}"),
        OMNI_INVALID, "properties.order_id", NULL);
    bad(&c, J("{'type':'track','event':'Order Completed','userId':'C1',"
              "'properties':{'order_id':[],'products':[{'sku':'A'}]}}"),
        OMNI_INVALID, "properties.order_id", "expected a string");
    bad(&c, J("{'type':'track','event':'Order Completed','userId':'C1',"
              "'properties':{'order_id':'%s','products':[{'sku':'A'}]}}",
              rep('o', 129)),
        OMNI_INVALID, "properties.order_id", "1 to 128");
    bad(&c, J("{'type':'track','event':'Order Completed','userId':'C1',"
              "'properties':{'order_id':'o','total':-1,"
              "'products':[{'sku':'A'}]}}"),
        OMNI_INVALID, "properties.total", "number from 0");
    bad(&c, J("{'type':'track','event':'Order Completed','userId':'C1',"
              "'properties':{'order_id':'o','revenue':'x',"
              "'products':[{'sku':'A'}]}}"),
        OMNI_INVALID, "properties.revenue", "number from 0");
    bad(&c, J("{'type':'track','event':'Order Completed','userId':'C1',"
              "'properties':{'order_id':'o'}}"),
        OMNI_INVALID, "properties.products", "required");
    bad(&c, J("{'type':'track','event':'Order Completed','userId':'C1',"
              "'properties':{'order_id':'o','products':[]}}"),
        OMNI_INVALID, "properties.products", "1 to 50");
    bad(&c, J("{'type':'track','event':'Order Completed','userId':'C1',"
              "'properties':{'order_id':'o','products':{}}}"),
        OMNI_INVALID, "properties.products", "expected an array");
    bad(&c, J("{'type':'track','event':'Order Completed','userId':'C1',"
              "'properties':{'order_id':'o','products':[5]}}"),
        OMNI_INVALID, "properties.products[0]", "expected an object");
    bad(&c, J("{'type':'track','event':'Order Completed','userId':'C1',"
              "'properties':{'order_id':'o','products':"
              "[{'sku':'A'},{'name':'B'}]}}"),
        OMNI_INVALID, "properties.products[1].sku", "required");
    bad(&c, J("{'type':'track','event':'Order Completed','userId':'C1',"
              "'properties':{'order_id':'o','products':"
              "[{'sku':'A','quantity':0}]}}"),
        OMNI_INVALID, "properties.products[0].quantity", "integer");
    bad(&c, J("{'type':'track','event':'Order Completed','userId':'C1',"
              "'properties':{'order_id':'o','products':"
              "[{'sku':'A','url':'javascript:x'}]}}"),
        OMNI_INVALID, "properties.products[0].url", "http");
    bad(&c, J("{'type':'track','event':'Cart Viewed','userId':'C1',"
              "'properties':{'products':[{'price':1}]}}"),
        OMNI_INVALID, "properties.products[0].sku", "required");
    bad(&c, J("{'type':'track','event':'Checkout Started','userId':'C1',"
              "'properties':{'products':'x'}}"),
        OMNI_INVALID, "properties.products", "expected an array");
    {
        char    prods[2048];
        size_t  n;
        int     i;

        for (i = 0, n = 0; i < 51; i++) {
            n += (size_t) sprintf(prods + n, "%s{'sku':'S%d'}",
                                  i ? "," : "", i);
        }

        bad(&c, J("{'type':'track','event':'Order Completed',"
                  "'userId':'C1','properties':{'order_id':'o',"
                  "'products':[%s]}}", prods),
            OMNI_INVALID, "properties.products", "1 to 50");

        prods[n - strlen(",{'sku':'S50'}")] = '\0';

        if (good(&b, &c, J("{'type':'track','event':'Order Completed',"
                           "'userId':'C1','properties':{'order_id':'o',"
                           "'products':[%s]}}", prods)))
        {
            is_int(b.events[0].nproducts, 50, "50 products are fine");
            is_str(b.events[0].products[49].sku, "S49",
                   "the 50th product");
            omni_event_batch_free(&b);
        }
    }
}


/* omni_event_parse() itself: the path prefix, nothing left on failure. */
static void
test_parse_direct(void)
{
    json_t            *j;
    omni_event_t       ev;
    omni_event_ctx_t   c;
    omni_event_err_t   err;

    ctx_server(&c);

    j = json_loads(J("{'type':'track','event':'Order Completed',"
                     "'userId':'C1','properties':{'order_id':'o',"
                     "'products':[{'sku':'A','name':'n'},{'name':'B'}]}}"),
                   0, NULL);
    memset(&err, 0, sizeof(err));
    is_int(omni_event_parse(&ev, j, &c, "batch[7]", &err), OMNI_INVALID,
           "direct: invalid");
    is_str(err.field, "batch[7].properties.products[1].sku",
           "direct: the path prefixes the field");
    ok(ev.products == NULL && ev.nproducts == 0 && ev.order_id == NULL
       && ev.properties == NULL,
       "direct: a refused event holds nothing (nothing to free)");
    omni_event_free(&ev);
    json_decref(j);

    j = json_loads("[1]", 0, NULL);
    is_int(omni_event_parse(&ev, j, &c, "", &err), OMNI_INVALID,
           "direct: not an object");
    is_str(err.field, "event", "direct: without a path, \"event\"");
    json_decref(j);

    j = json_loads(J("{'type':'identify','userId':'C1',"
                     "'traits':{'a':1,'b':'x','c':[1]}}"), 0, NULL);
    is_int(omni_event_parse(&ev, j, &c, "", &err), OMNI_INVALID,
           "direct: a bad trait after good ones");
    ok(ev.traits == NULL && ev.ntraits == 0 && ev.traits_json == NULL,
       "direct: its traits were freed");
    json_decref(j);

    j = json_loads(J("{'type':'identify','userId':'C1',"
                     "'traits':{'a':1,'b':'x'}}"), 0, NULL);
    is_int(omni_event_parse(&ev, j, &c, "", &err), OMNI_OK, "direct: ok");
    is_int(ev.ntraits, 2, "direct: two traits");
    json_decref(j);
    ok(json_is_object(ev.traits_json), "direct: traits outlive the JSON");
    omni_event_free(&ev);
    ok(ev.traits == NULL && ev.ntraits == 0, "omni_event_free clears");
}


/* ---- trust ---- */

static void
test_trust(void)
{
    unsigned            i;
    omni_event_ctx_t    c, s, none;
    omni_event_batch_t  b;

    static const char  *server_only[] = {
        "{'type':'track','event':'Order Completed','properties':"
        "{'order_id':'o1','products':[{'sku':'X'}]}}",
        "{'type':'track','event':'Email Opened'}",
        "{'type':'track','event':'Email Clicked','properties':{'url':'x'}}",
        "{'type':'track','event':'SMS Clicked'}",
        NULL
    };

    static const char  *channels[] = {
        "pos", "email", "sms", "ads", "call", "other", "server", NULL
    };

    ctx_client(&c, OMNI_ALIAS_COOKIE, VID_A, OMNI_CH_WEB);
    ctx_server(&s);

    /* events that need a server key */
    for (i = 0; server_only[i]; i++) {
        bad(&c, J("%s", server_only[i]), OMNI_EVENT_FORBIDDEN, "event",
            "needs a server key");

        if (good(&b, &s, J("{'userId':'C1',%s", server_only[i] + 1))) {
            omni_event_batch_free(&b);
        }
    }

    bad(&c, J("{'type':'track','event':'Order Completed'}"),
        OMNI_EVENT_FORBIDDEN, "event", "\"Order Completed\" needs a server");

    /* other channels' facts, however the channel is given */
    for (i = 0; channels[i]; i++) {
        bad(&c, J("{'type':'track','event':'Product Viewed','properties':"
                  "{'sku':'X','channel':'%s'}}", channels[i]),
            OMNI_EVENT_FORBIDDEN, "channel", "channel need a server key");
        bad(&c, J("{'type':'page','channel':'%s'}", channels[i]),
            OMNI_EVENT_FORBIDDEN, "channel", "need a server key");
        bad(&c, J("{'type':'screen','context':{'channel':'%s'}}",
                  channels[i]),
            OMNI_EVENT_FORBIDDEN, "channel", "need a server key");
    }

    bad(&c, J("{'type':'track','event':'Product Viewed','properties':"
              "{'sku':'X','channel':'pos'}}"),
        OMNI_EVENT_FORBIDDEN, "channel", "pos channel");

    /* naming somebody else */
    bad(&c, J("{'type':'identify','userId':'C1'}"), OMNI_EVENT_FORBIDDEN,
        "userId", "needs a server key");
    bad(&c, J("{'type':'page','userId':42}"), OMNI_EVENT_FORBIDDEN,
        "userId", "server key");
    bad(&c, J("{'type':'page','profileId':'%s'}", VID_B),
        OMNI_EVENT_FORBIDDEN, "profileId", "server key");
    bad(&c, J("{'type':'page','profileId':'%s'}", VID_A),
        OMNI_EVENT_FORBIDDEN, "profileId", "server key");
    bad(&c, J("{'type':'track','event':'Product Viewed','anonymousId':'%s',"
              "'properties':{'sku':'X'}}", VID_B),
        OMNI_EVENT_FORBIDDEN, "anonymousId", "requesting visitor");

    /* traits a browser may not set */
    bad(&c, J("{'type':'identify','traits':{'email':'a@example.com'}}"),
        OMNI_EVENT_FORBIDDEN, "traits.email", "server key");
    bad(&c, J("{'type':'identify','traits':{'tier':'gold'}}"),
        OMNI_EVENT_FORBIDDEN, "traits.tier", "server key");
    bad(&c, J("{'type':'identify','traits':{'first_name':'Ana',"
              "'vip':true}}"),
        OMNI_EVENT_FORBIDDEN, "traits.vip", "server key");
    bad(&c, J("{'type':'identify','traits':{'Name':'Ana'}}"),
        OMNI_EVENT_FORBIDDEN, "traits.Name", "server key");
    bad(&c, J("{'type':'identify','traits':{'name':{'tier':'gold'}}}"),
        OMNI_EVENT_FORBIDDEN, "traits.name", "server key");
    bad(&c, J("{'type':'identify','traits':{'address':{'city':'x'}}}"),
        OMNI_EVENT_FORBIDDEN, "traits.address", "server key");

    /* nobody to speak for */
    ctx_client(&none, 0, NULL, OMNI_CH_MAX);
    bad(&none, J("{'type':'page'}"), OMNI_EVENT_FORBIDDEN, "anonymousId",
        "no visitor");
    bad(&none, J("{'type':'track','event':'Product Viewed','properties':"
                 "{'sku':'X'}}"),
        OMNI_EVENT_FORBIDDEN, "anonymousId", "no visitor");

    /* ... and what a browser may send about itself */
    if (good(&b, &c, J("{'type':'identify','anonymousId':'%s','traits':"
                       "{'first_name':'Ana','firstName':'Ana',"
                       "'last_name':'Silva','lastName':'Silva',"
                       "'name':'Ana Silva','locale':'pt-PT',"
                       "'language':'pt','timezone':'Europe/Lisbon'}}",
                       VID_A)))
    {
        is_int(b.events[0].ntraits, 8, "client: the eight own traits");
        is_int(b.events[0].nidents, 1, "client: one identity");
        is_int(b.events[0].idents[0].kind, OMNI_ALIAS_COOKIE,
               "client: the cookie");
        is_str(b.events[0].idents[0].value, VID_A, "client: its own id");
        is_int(b.events[0].trust, OMNI_TRUST_CLIENT, "client: trust");
        omni_event_batch_free(&b);
    }

    /* its own id as a UUID, in capitals */
    if (good(&b, &c, J("{'type':'page','anonymousId':"
                       "'A0000000-0000-0000-0000-000000000001'}")))
    {
        is_str(b.events[0].idents[0].value, VID_A,
               "client: own id as a UUID");
        omni_event_batch_free(&b);
    }

    if (good(&b, &c, J("{'type':'track','event':'Product Reviewed',"
                       "'properties':{'sku':'X','rating':5}}")))
    {
        is_int(b.events[0].name_id, OMNI_EVN_PRODUCT_REVIEWED,
               "client: a review");
        omni_event_batch_free(&b);
    }

    if (good(&b, &c, J("{'type':'track','event':'Checkout Started',"
                       "'properties':{'products':[{'sku':'A'}]}}")))
    {
        omni_event_batch_free(&b);
    }

    if (good(&b, &c, J("{'type':'track','event':'Product Removed',"
                       "'properties':{'sku':'A'},'channel':'app'}")))
    {
        is_int(b.events[0].channel, OMNI_CH_APP,
               "client: web and app are its own channels");
        omni_event_batch_free(&b);
    }

    /* context.traits.email is a server's word only: ignored */
    if (good(&b, &c, J("{'type':'track','event':'Wishlist Shared',"
                       "'context':{'traits':{'email':'a@example.com'}}}")))
    {
        ok(b.events[0].nidents == 1
           && b.events[0].idents[0].kind == OMNI_ALIAS_COOKIE,
           "client: context.traits.email names nobody");
        omni_event_batch_free(&b);
    }

    /* the request's own channel (omni_channel): its default, allowed */
    ctx_client(&none, OMNI_ALIAS_COOKIE, VID_A, OMNI_CH_POS);
    is_int(channel_of(&none, J("{'type':'page'}")), OMNI_CH_POS,
           "client: the request's own channel is allowed");
    bad(&none, J("{'type':'page','channel':'email'}"),
        OMNI_EVENT_FORBIDDEN, "channel", "email channel");

    /* a server may do all of it */
    if (good(&b, &s, J("{'type':'identify','userId':'C1','profileId':'%s',"
                       "'anonymousId':'%s','traits':{'tier':'gold',"
                       "'email':'a@example.com'}}", VID_B, VID_A)))
    {
        is_int(b.events[0].nidents, 4, "server: four identities");
        ok(b.events[0].idents[0].kind == 'p'
           && strcmp(b.events[0].idents[0].value, VID_B) == 0
           && b.events[0].idents[1].kind == OMNI_ALIAS_CUSTOMER
           && strcmp(b.events[0].idents[1].value, "C1") == 0
           && b.events[0].idents[1].len == 2
           && b.events[0].idents[2].kind == 'a'
           && strcmp(b.events[0].idents[2].value, VID_A) == 0
           && b.events[0].idents[3].kind == OMNI_ALIAS_EMAIL,
           "server: profile, customer, anonymous, email, in that order");
        is_str(b.events[0].user_id, "C1", "server: user_id");
        omni_event_batch_free(&b);
    }

    if (good(&b, &s, J("{'type':'page','userId':4217}"))) {
        is_str(b.events[0].user_id, "4217", "server: a numeric userId");
        omni_event_batch_free(&b);
    }

    if (good(&b, &s, J("{'type':'page','userId':'%s'}", rep('u', 128)))) {
        is_int(b.events[0].idents[0].len, 128, "server: userId of 128");
        omni_event_batch_free(&b);
    }

    /* an upstream: the visitor of the request, unless anonymousId says */
    ctx_client(&none, OMNI_ALIAS_DEVICE, VID_A, OMNI_CH_APP);
    none.trust = OMNI_TRUST_SERVER;
    none.source = OMNI_SRC_UPSTREAM;

    if (good(&b, &none, J("{'type':'identify','userId':'C1'}"))) {
        ok(b.events[0].nidents == 2
           && b.events[0].idents[1].kind == OMNI_ALIAS_DEVICE
           && strcmp(b.events[0].idents[1].value, VID_A) == 0,
           "upstream: about the visitor of the request");
        is_int(b.events[0].source, OMNI_SRC_UPSTREAM, "upstream: source");
        omni_event_batch_free(&b);
    }

    if (good(&b, &none, J("{'type':'identify','userId':'C1',"
                          "'anonymousId':'%s'}", VID_B)))
    {
        ok(b.events[0].nidents == 2 && b.events[0].idents[1].kind == 'a'
           && strcmp(b.events[0].idents[1].value, VID_B) == 0,
           "upstream: an anonymousId of its own instead");
        omni_event_batch_free(&b);
    }
}


/* ---- what an event holds ---- */

static void
test_fields(void)
{
    char                 mid[OMNI_EVENT_MAX_ID + 1];
    size_t               i;
    omni_event_t        *ev;
    const omni_attr_t   *a;
    omni_event_ctx_t     c, s;
    omni_event_batch_t   b;

    ctx_client(&c, OMNI_ALIAS_COOKIE, VID_A, OMNI_CH_WEB);
    ctx_server(&s);

    /* the made-up messageId */
    mid[0] = '\0';

    if (good(&b, &c, J("{'type':'page'}"))) {
        ev = &b.events[0];
        ok(strncmp(ev->message_id, "omni-", 5) == 0
           && strlen(ev->message_id) == 5 + OMNI_ID_HEX_LEN
           && strspn(ev->message_id + 5, "0123456789abcdef")
              == OMNI_ID_HEX_LEN,
           "no messageId: omni- and 32 hex digits (%s)", ev->message_id);
        strcpy(mid, ev->message_id);
        is_str(ev->name, "Page Viewed", "page: its name");
        is_int(ev->time, NOW, "no timestamp: now");
        is_int(ev->revenue, -1, "revenue unknown");
        ok(ev->properties == NULL && ev->traits_json == NULL,
           "no properties, no traits");
        omni_event_batch_free(&b);
    }

    if (good(&b, &c, J("{'type':'page'}"))) {
        ok(strcmp(b.events[0].message_id, mid) != 0,
           "each made-up messageId is new");
        omni_event_batch_free(&b);
    }

    if (good(&b, &c, J("{'type':'page','messageId':-42}"))) {
        is_str(b.events[0].message_id, "-42", "an integer messageId");
        omni_event_batch_free(&b);
    }

    if (good(&b, &c, J("{'type':'page','messageId':'%s'}", rep('m', 128))))
    {
        is_str(b.events[0].message_id, rep('m', 128), "messageId of 128");
        omni_event_batch_free(&b);
    }

    /* timestamps: the past kept, a small skew clamped */
    if (good(&b, &c, J("{'type':'page','timestamp':'2026-11-24T13:20:05"
                       ".5+00:00'}")))
    {
        is_int(b.events[0].time, 1795526405, "a past time is kept");
        omni_event_batch_free(&b);
    }

    if (good(&b, &c, J("{'type':'page','timestamp':'%s'}",
                       iso(NOW + 3600))))
    {
        is_int(b.events[0].time, NOW, "an hour ahead: clamped to now");
        omni_event_batch_free(&b);
    }

    if (good(&b, &c, J("{'type':'page','timestamp':'%s'}",
                       iso(NOW + 86400))))
    {
        is_int(b.events[0].time, NOW, "a day ahead: still accepted");
        omni_event_batch_free(&b);
    }

    if (good(&b, &c, J("{'type':'page','timestamp':null}"))) {
        is_int(b.events[0].time, NOW, "a null timestamp: now");
        omni_event_batch_free(&b);
    }

    /* names */
    if (good(&b, &c, J("{'type':'screen','name':'Home'}"))) {
        is_str(b.events[0].name, "Screen Viewed", "screen: its name");
        omni_event_batch_free(&b);
    }

    if (good(&b, &s, J("{'type':'identify','userId':'C1'}"))) {
        is_str(b.events[0].name, "Identify", "identify: its name");
        is_int(b.events[0].type, OMNI_EV_IDENTIFY, "identify: type");
        omni_event_batch_free(&b);
    }

    {
        static const struct {
            const char  *name;
            unsigned     id;
        } names[] = {
            { "Product Viewed", OMNI_EVN_PRODUCT_VIEWED },
            { "Product Added", OMNI_EVN_PRODUCT_ADDED },
            { "Product Removed", OMNI_EVN_PRODUCT_REMOVED },
            { "Cart Viewed", OMNI_EVN_CART_VIEWED },
            { "Checkout Started", OMNI_EVN_CHECKOUT_STARTED },
            { "Order Completed", OMNI_EVN_ORDER_COMPLETED },
            { "Product Reviewed", OMNI_EVN_PRODUCT_REVIEWED },
            { "Email Opened", OMNI_EVN_EMAIL_OPENED },
            { "Email Clicked", OMNI_EVN_EMAIL_CLICKED },
            { "SMS Clicked", OMNI_EVN_SMS_CLICKED },
            { "product viewed", OMNI_EVN_OTHER },
            { "Wishlist Shared", OMNI_EVN_OTHER },
        };

        for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            if (good(&b, &s, J("{'type':'track','event':'%s','userId':'C1',"
                               "'properties':{'sku':'A','order_id':'o',"
                               "'products':[{'sku':'A'}]}}",
                               names[i].name)))
            {
                ok(b.events[0].name_id == names[i].id
                   && strcmp(b.events[0].name, names[i].name) == 0,
                   "name id of %s", names[i].name);
                omni_event_batch_free(&b);
            }
        }
    }

    /* a product */
    if (good(&b, &c, J("{'type':'track','event':'Product Added',"
                       "'properties':{'sku':'TENT-2','name':'Trail Tent',"
                       "'category':'tents','price':199.5,'quantity':3,"
                       "'url':'/p/tent-2','image_url':"
                       "'https://cdn.example.com/t.jpg','brand':'x'}}")))
    {
        ev = &b.events[0];
        ok(ev->nproducts == 1 && strcmp(ev->products[0].sku, "TENT-2") == 0
           && strcmp(ev->products[0].name, "Trail Tent") == 0
           && strcmp(ev->products[0].category, "tents") == 0
           && strcmp(ev->products[0].url, "/p/tent-2") == 0
           && strcmp(ev->products[0].image,
                     "https://cdn.example.com/t.jpg") == 0
           && ev->products[0].price == 199.5 && ev->products[0].qty == 3,
           "Product Added: the product");
        ok(json_is_object(ev->properties)
           && json_string_value(json_object_get(ev->properties, "brand"))
           && strcmp(json_string_value(json_object_get(ev->properties,
                                                       "brand")), "x") == 0,
           "properties kept as given for the feed");
        omni_event_batch_free(&b);
    }

    if (good(&b, &c, J("{'type':'track','event':'Product Viewed',"
                       "'properties':{'product_id':'P-9','url':"
                       "'http://x/y'}}")))
    {
        ev = &b.events[0];
        ok(strcmp(ev->products[0].sku, "P-9") == 0
           && ev->products[0].qty == 0 && ev->products[0].price == 0
           && ev->products[0].name == NULL,
           "product_id stands for sku; quantity 0: not given");
        omni_event_batch_free(&b);
    }

    if (good(&b, &c, J("{'type':'track','event':'Product Viewed',"
                       "'properties':{'sku':'S','product_id':'P'}}")))
    {
        is_str(b.events[0].products[0].sku, "S", "sku before product_id");
        omni_event_batch_free(&b);
    }

    /* an order */
    if (good(&b, &s, J("{'type':'track','event':'Order Completed',"
                       "'userId':'C1','properties':{'order_id':5001,"
                       "'total':80,'revenue':70,'products':[{'sku':'A',"
                       "'price':40,'quantity':2},{'product_id':'B'}]}}")))
    {
        ev = &b.events[0];
        is_str(ev->order_id, "5001", "order: a numeric order id as text");
        ok(ev->revenue == 80, "order: total before revenue");
        ok(ev->nproducts == 2 && strcmp(ev->products[1].sku, "B") == 0
           && ev->products[0].qty == 2 && ev->products[0].price == 40,
           "order: the products");
        is_int(ev->channel, OMNI_CH_OTHER, "order: a server's: other");
        omni_event_batch_free(&b);
    }

    if (good(&b, &s, J("{'type':'track','event':'Order Completed',"
                       "'userId':'C1','properties':{'order_id':'o',"
                       "'revenue':70,'products':[{'sku':'A'}]}}")))
    {
        ok(b.events[0].revenue == 70, "order: revenue without total");
        omni_event_batch_free(&b);
    }

    if (good(&b, &c, J("{'type':'track','event':'Cart Viewed',"
                       "'properties':{'products':[{'sku':'A'},"
                       "{'sku':'B'}]}}")))
    {
        is_int(b.events[0].nproducts, 2, "Cart Viewed: products kept");
        omni_event_batch_free(&b);
    }

    if (good(&b, &c, J("{'type':'track','event':'Cart Viewed',"
                       "'properties':{'cart_id':'k'}}")))
    {
        ok(b.events[0].nproducts == 0 && b.events[0].products == NULL,
           "Cart Viewed: products are optional");
        omni_event_batch_free(&b);
    }

    if (good(&b, &c, J("{'type':'track','event':'Checkout Started',"
                       "'properties':{'products':[]}}")))
    {
        ok(b.events[0].nproducts == 0 && b.events[0].products == NULL,
           "Checkout Started: an empty list is fine");
        omni_event_batch_free(&b);
    }

    /* identify: traits, unset, flattening */
    if (good(&b, &s, J("{'type':'identify','userId':'C1','traits':"
                       "{'first_name':'Ana','age':41,'vip':true,"
                       "'optin':false,'gone':null,'score':2.5,"
                       "'address':{'city':'Lisbon','zip':null}}}")))
    {
        ev = &b.events[0];
        is_int(ev->ntraits, 6, "identify: six traits");
        a = ev_trait(ev, "first_name");
        ok(a && a->type == OMNI_ATTR_STR && strcmp(a->str, "Ana") == 0,
           "a string trait");
        a = ev_trait(ev, "age");
        ok(a && a->type == OMNI_ATTR_NUM && a->num == 41, "a number trait");
        a = ev_trait(ev, "vip");
        ok(a && a->type == OMNI_ATTR_NUM && a->num == 1, "true is 1");
        a = ev_trait(ev, "optin");
        ok(a && a->type == OMNI_ATTR_NUM && a->num == 0, "false is 0");
        a = ev_trait(ev, "score");
        ok(a && a->num == 2.5, "a fraction");
        a = ev_trait(ev, "address.city");
        ok(a && a->type == OMNI_ATTR_STR && strcmp(a->str, "Lisbon") == 0,
           "a nested trait flattens to address.city");
        ok(ev_trait(ev, "address") == NULL, "no trait \"address\"");
        ok(ev->nunset == 2 && ev_unset(ev, "gone")
           && ev_unset(ev, "address.zip"),
           "null unsets, nested too");
        ok(json_is_object(json_object_get(ev->traits_json, "address"))
           && json_is_null(json_object_get(ev->traits_json, "gone")),
           "traits_json as given");
        omni_event_batch_free(&b);
    }

    /* 32 traits, nested ones counted one by one */
    {
        char    t[4096];
        size_t  n;
        int     k;

        for (k = 0, n = 0; k < 32; k++) {
            n += (size_t) sprintf(t + n, "%s't%d':%d", k ? "," : "", k, k);
        }

        if (good(&b, &s, J("{'type':'identify','userId':'C1',"
                           "'traits':{%s}}", t)))
        {
            is_int(b.events[0].ntraits, 32, "32 traits");
            omni_event_batch_free(&b);
        }

        bad(&s, J("{'type':'identify','userId':'C1','traits':{%s,"
                  "'one_more':1}}", t),
            OMNI_INVALID, "traits", "more than 32");

        for (k = 0, n = 0; k < 17; k++) {
            n += (size_t) sprintf(t + n, "%s'k%d':%d", k ? "," : "", k, k);
        }

        bad(&s, J("{'type':'identify','userId':'C1','traits':{'a':{%s},"
                  "'b':{%s}}}", t, t),
            OMNI_INVALID, "traits", "more than 32");
    }
}


/* ---- channels ---- */

static void
test_channels(void)
{
    omni_event_ctx_t  c, d, s, u;

    ctx_client(&c, OMNI_ALIAS_COOKIE, VID_A, OMNI_CH_WEB);
    ctx_client(&d, OMNI_ALIAS_DEVICE, VID_B, OMNI_CH_APP);
    ctx_server(&s);
    ctx_client(&u, OMNI_ALIAS_COOKIE, VID_A, OMNI_CH_WEB);
    u.trust = OMNI_TRUST_SERVER;
    u.source = OMNI_SRC_UPSTREAM;

    /* properties.channel, then channel, then context.channel */
    is_int(channel_of(&s, J("{'type':'track','event':'X','userId':'C1',"
                            "'properties':{'channel':'pos'},"
                            "'channel':'email','context':"
                            "{'channel':'sms'}}")),
           OMNI_CH_POS, "properties.channel first");
    is_int(channel_of(&s, J("{'type':'track','event':'X','userId':'C1',"
                            "'channel':'email','context':"
                            "{'channel':'sms'}}")),
           OMNI_CH_EMAIL, "then channel");
    is_int(channel_of(&s, J("{'type':'track','event':'X','userId':'C1',"
                            "'context':{'channel':'sms'}}")),
           OMNI_CH_SMS, "then context.channel");
    is_int(channel_of(&s, J("{'type':'track','event':'X','userId':'C1',"
                            "'properties':{'channel':null},"
                            "'channel':null,'context':"
                            "{'channel':'call'}}")),
           OMNI_CH_CALL, "null ones are absent");
    is_int(channel_of(&s, J("{'type':'track','event':'X','userId':'C1',"
                            "'context':{'channel':'moon'}}")),
           OMNI_CH_OTHER, "an unknown context.channel is ignored");
    is_int(channel_of(&s, J("{'type':'track','event':'X','userId':'C1',"
                            "'context':{'channel':5}}")),
           OMNI_CH_OTHER, "a context.channel not a string: ignored");

    /* Segment's names */
    is_int(channel_of(&s, J("{'type':'page','userId':'C1',"
                            "'channel':'browser'}")),
           OMNI_CH_WEB, "browser is web");
    is_int(channel_of(&s, J("{'type':'page','userId':'C1',"
                            "'channel':'mobile'}")),
           OMNI_CH_APP, "mobile is app");
    is_int(channel_of(&s, J("{'type':'page','userId':'C1',"
                            "'context':{'channel':'server'}}")),
           OMNI_CH_OTHER, "server is other");
    is_int(channel_of(&s, J("{'type':'page','userId':'C1',"
                            "'properties':{'channel':'ads'}}")),
           OMNI_CH_ADS, "ads");
    is_int(channel_of(&s, J("{'type':'page','userId':'C1',"
                            "'properties':{'channel':'browser'}}")),
           OMNI_CH_WEB, "browser in properties.channel too");

    /* defaults */
    is_int(channel_of(&s, J("{'type':'track','event':'Email Opened',"
                            "'userId':'C1'}")),
           OMNI_CH_EMAIL, "Email Opened: email");
    is_int(channel_of(&s, J("{'type':'track','event':'Email Clicked',"
                            "'userId':'C1'}")),
           OMNI_CH_EMAIL, "Email Clicked: email");
    is_int(channel_of(&s, J("{'type':'track','event':'SMS Clicked',"
                            "'userId':'C1'}")),
           OMNI_CH_SMS, "SMS Clicked: sms");
    is_int(channel_of(&s, J("{'type':'track','event':'Email Clicked',"
                            "'userId':'C1','properties':"
                            "{'channel':'web'}}")),
           OMNI_CH_WEB, "a given channel beats the event's own");
    is_int(channel_of(&s, J("{'type':'page','userId':'C1'}")),
           OMNI_CH_OTHER, "a server: other");
    is_int(channel_of(&u, J("{'type':'page'}")), OMNI_CH_WEB,
           "an upstream: the request's");
    is_int(channel_of(&c, J("{'type':'page'}")), OMNI_CH_WEB,
           "a cookie: web");
    is_int(channel_of(&d, J("{'type':'screen'}")), OMNI_CH_APP,
           "an app token: app");
    is_int(channel_of(&d, J("{'type':'screen','channel':'browser'}")),
           OMNI_CH_WEB, "an app may say web");
}


/* ---- the email alias ---- */

static void
test_email(void)
{
    omni_event_t        *ev;
    omni_event_ctx_t     s;
    omni_event_batch_t   b;

    ctx_server(&s);

    if (good(&b, &s, J("{'type':'identify','userId':'C1','traits':"
                       "{'email':'  Ana@Example.COM\\t','first_name':"
                       "'Ana'}}")))
    {
        ev = &b.events[0];
        ok(ev->nidents == 2 && ev->idents[1].kind == OMNI_ALIAS_EMAIL
           && ev->idents[1].len == 64
           && strcmp(ev->idents[1].value, ANA_SHA) == 0,
           "traits.email: sha256 of the trimmed, lowercased address");
        ok(ev->ntraits == 1 && ev_trait(ev, "email") == NULL
           && ev_trait(ev, "first_name") != NULL,
           "the address is no trait");
        ok(json_object_get(ev->traits_json, "email") == NULL
           && json_object_get(ev->traits_json, "first_name") != NULL
           && json_object_size(ev->traits_json) == 1,
           "nor in traits_json (the feed)");
        omni_event_batch_free(&b);
    }

    /* an email alone names somebody */
    if (good(&b, &s, J("{'type':'identify','traits':"
                       "{'email':'ana@example.com'}}")))
    {
        ev = &b.events[0];
        ok(ev->nidents == 1 && ev->idents[0].kind == OMNI_ALIAS_EMAIL
           && strcmp(ev->idents[0].value, ANA_SHA) == 0,
           "traits.email alone: the email alias");
        ok(json_is_object(ev->traits_json)
           && json_object_size(ev->traits_json) == 0,
           "traits_json without it is empty");
        omni_event_batch_free(&b);
    }

    /* context.traits.email on a track call: the same hash */
    if (good(&b, &s, J("{'type':'track','event':'Coupon Used','context':"
                       "{'traits':{'email':' ANA@example.com '}}}")))
    {
        ev = &b.events[0];
        ok(ev->nidents == 1 && ev->idents[0].kind == OMNI_ALIAS_EMAIL
           && strcmp(ev->idents[0].value, ANA_SHA) == 0,
           "context.traits.email: trimmed and lowercased alike");
        ok(ev->traits_json == NULL, "a track call has no traits");
        omni_event_batch_free(&b);
    }

    /* traits given: context.traits is not read */
    if (good(&b, &s, J("{'type':'identify','userId':'C1','traits':"
                       "{'a':1},'context':{'traits':"
                       "{'email':'ana@example.com'}}}")))
    {
        is_int(b.events[0].nidents, 1, "traits win over context.traits");
        omni_event_batch_free(&b);
    }
}


/* ---- the store ---- */

static omni_store_t *
open_store(const char *name, char *path, size_t size)
{
    char               err[512];
    omni_store_t      *st;
    omni_store_opts_t  opts;

    snprintf(path, size, "%s/%s", tmpdir, name);

    memset(&opts, 0, sizeof(opts));
    opts.map_size = (size_t) 64 << 20;
    opts.create = 1;

    if (omni_store_open(&st, path, &opts, err, sizeof(err)) != OMNI_OK) {
        printf("# open %s: %s\n", path, err);
        return NULL;
    }

    return st;
}


static void
rm_store(omni_store_t *st, const char *path)
{
    char  f[256];

    omni_store_close(st);

    snprintf(f, sizeof(f), "%s/data.mdb", path);
    unlink(f);
    snprintf(f, sizeof(f), "%s/lock.mdb", path);
    unlink(f);
    rmdir(path);
}


static uint32_t  apply_timeout;


/*
 * Parses a one-event body and applies it in a transaction of its own
 * (committed); the apply's rc, or -100 when the event did not parse.
 */
static int
apply(omni_store_t *st, const omni_event_ctx_t *c, const char *text,
    int *status, unsigned char *pid)
{
    int                 rc;
    omni_wtxn_t        *w;
    omni_event_err_t    err;
    omni_event_batch_t  b;

    *status = -1;
    memset(pid, 0xff, OMNI_ID_LEN);

    if (omni_event_batch_parse(&b, text, strlen(text), c, &err) != OMNI_OK
        || b.n != 1 || b.rc[0] != OMNI_OK)
    {
        printf("# does not parse: %s: %s\n", text,
               b.n ? b.errs[0].reason : err.reason);
        omni_event_batch_free(&b);
        return -100;
    }

    b.events[0].visit_timeout = apply_timeout;

    rc = omni_store_write_begin(st, &w);
    if (rc != OMNI_OK) {
        omni_event_batch_free(&b);
        return rc;
    }

    rc = omni_event_apply(w, &b.events[0], status, pid);

    if (rc == OMNI_OK) {
        rc = omni_wtxn_commit(w);

    } else {
        omni_wtxn_abort(w);
    }

    omni_event_batch_free(&b);

    return rc;
}


/* apply(), expecting OMNI_OK and status */
static int
applied(omni_store_t *st, const omni_event_ctx_t *c, const char *text,
    int want, unsigned char *pid, const char *what)
{
    int  rc, status;

    rc = apply(st, c, text, &status, pid);
    ok(rc == OMNI_OK && status == want, "%s: %s", what,
       omni_event_status_name(want));

    if (rc != OMNI_OK || status != want) {
        printf("#   got rc %d, status %d\n", rc, status);
        return 0;
    }

    return 1;
}


static int
load(omni_store_t *st, const unsigned char *pid, omni_profile_t *p)
{
    int           rc;
    omni_wtxn_t  *w;

    if (omni_store_write_begin(st, &w) != OMNI_OK) {
        omni_profile_init(p, pid);
        return OMNI_ERROR;
    }

    rc = omni_wtxn_get_profile(w, pid, p);
    omni_wtxn_abort(w);

    return rc;
}


static int
exists(omni_store_t *st, const unsigned char *pid)
{
    int             rc;
    omni_profile_t  p;

    rc = load(st, pid, &p);
    omni_profile_free(&p);

    return rc == OMNI_OK;
}


/* The profile an alias points at (all zero: none). */
static const unsigned char *
alias_of(omni_store_t *st, unsigned kind, const char *value)
{
    static unsigned char  pid[OMNI_ID_LEN];

    memset(pid, 0, OMNI_ID_LEN);

    if (omni_store_read_begin(st) == OMNI_OK) {
        if (omni_store_get_alias(st, kind, value, strlen(value), pid)
            != OMNI_OK)
        {
            memset(pid, 0, OMNI_ID_LEN);
        }

        omni_store_read_end(st);
    }

    return pid;
}


static int
has_alias(const omni_profile_t *p, unsigned kind, const char *value)
{
    unsigned  i;

    for (i = 0; i < p->naliases; i++) {
        if (p->aliases[i].kind == kind
            && strcmp(p->aliases[i].value, value) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static const omni_attr_t *
get_attr(const omni_profile_t *p, const char *key)
{
    unsigned  i;

    for (i = 0; i < p->nattrs; i++) {
        if (strcmp(p->attrs[i].key, key) == 0) {
            return &p->attrs[i];
        }
    }

    return NULL;
}


static const omni_cart_item_t *
get_cart(const omni_profile_t *p, const char *sku)
{
    unsigned  i;

    for (i = 0; i < p->ncart; i++) {
        if (strcmp(p->cart[i].sku, sku) == 0) {
            return &p->cart[i];
        }
    }

    return NULL;
}


static const omni_evcount_t *
get_count(const omni_profile_t *p, const char *name)
{
    unsigned  i;

    for (i = 0; i < p->nevents; i++) {
        if (strcmp(p->events[i].name, name) == 0) {
            return &p->events[i];
        }
    }

    return NULL;
}


static const omni_purchase_t *
get_purchase(const omni_profile_t *p, const char *order, const char *sku)
{
    unsigned  i;

    for (i = 0; i < p->npurchases; i++) {
        if (strcmp(p->purchases[i].order_id, order) == 0
            && strcmp(p->purchases[i].sku, sku) == 0)
        {
            return &p->purchases[i];
        }
    }

    return NULL;
}


/* A profile written directly: id, created, a customer, a cookie. */
static void
seed(omni_store_t *st, const char *hex, uint32_t created,
    const char *customer, const char *cookie, const char *order)
{
    unsigned char     id[OMNI_ID_LEN];
    omni_wtxn_t      *w;
    omni_profile_t    p;
    omni_purchase_t  *pu;

    hex2id(hex, id);
    omni_profile_init(&p, id);
    p.created = created;
    p.updated = created;

    if (customer) {
        omni_profile_add_alias(&p, OMNI_ALIAS_CUSTOMER, customer,
                               strlen(customer));
    }

    if (cookie) {
        omni_profile_add_alias(&p, OMNI_ALIAS_COOKIE, cookie,
                               strlen(cookie));
    }

    if (order) {
        p.purchases = calloc(1, sizeof(omni_purchase_t));
        pu = &p.purchases[0];
        pu->order_id = strdup(order);
        pu->sku = strdup("Z");
        pu->category = strdup("");
        pu->time = created;
        pu->price = 10;
        pu->qty = 1;
        p.npurchases = 1;
        p.orders = 1;
        p.revenue = 10;
        p.stage = OMNI_STAGE_CUSTOMER;
    }

    if (omni_store_write_begin(st, &w) != OMNI_OK
        || omni_wtxn_put_profile(w, &p) != OMNI_OK
        || omni_wtxn_commit(w) != OMNI_OK)
    {
        printf("Bail out! cannot seed %s\n", hex);
        exit(1);
    }

    omni_profile_free(&p);
}


/* ---- the feed ---- */

#define FEED_MAX  256

typedef struct {
    unsigned   n;
    uint64_t   seq[FEED_MAX];
    char      *line[FEED_MAX];
} feed_t;


static int
feed_cb(void *arg, uint64_t seq, const void *data, size_t len)
{
    feed_t  *f = arg;

    if (f->n < FEED_MAX) {
        f->seq[f->n] = seq;
        f->line[f->n] = strndup(data, len);
        f->n++;
    }

    return OMNI_OK;
}


static void
feed_load(omni_store_t *st, feed_t *f)
{
    memset(f, 0, sizeof(feed_t));
    omni_store_foreach_touchpoint(st, 0, FEED_MAX, feed_cb, f);
}


static void
feed_free(feed_t *f)
{
    unsigned  i;

    for (i = 0; i < f->n; i++) {
        free(f->line[i]);
    }

    f->n = 0;
}


/* The records with messageId id: how many, and the last one parsed. */
static json_t *
feed_find(const feed_t *f, const char *id, unsigned *count, unsigned *at)
{
    unsigned   i;
    json_t    *j, *found;

    found = NULL;
    *count = 0;

    for (i = 0; i < f->n; i++) {
        j = json_loads(f->line[i], 0, NULL);

        if (j && json_string_value(json_object_get(j, "messageId"))
            && strcmp(json_string_value(json_object_get(j, "messageId")),
                      id) == 0)
        {
            (*count)++;
            json_decref(found);
            found = j;

            if (at) {
                *at = i;
            }

            continue;
        }

        json_decref(j);
    }

    return found;
}


static const char *
jstr(json_t *o, const char *path)
{
    char         key[64];
    const char  *dot;

    dot = strchr(path, '.');

    if (dot) {
        snprintf(key, sizeof(key), "%.*s", (int) (dot - path), path);
        return jstr(json_object_get(o, key), dot + 1);
    }

    return json_string_value(json_object_get(o, path));
}


/* ---- apply: the profile changes ---- */

static void
test_apply_visits(void)
{
    char              path[128];
    uint32_t          t0;
    unsigned char     pid[OMNI_ID_LEN], vid[OMNI_ID_LEN];
    omni_store_t     *st;
    omni_profile_t    p;
    omni_event_ctx_t  c, d;

    st = open_store("visits", path, sizeof(path));
    ok(st != NULL, "visits: store");
    if (st == NULL) {
        return;
    }

    ctx_client(&c, OMNI_ALIAS_COOKIE, VID_A, OMNI_CH_WEB);
    t0 = NOW - 86400;

    /* a new visitor: its profile takes the visitor's id */
    if (applied(st, &c, J("{'type':'page','timestamp':'%s'}", iso(t0)),
                OMNI_EVENT_ACCEPTED, pid, "first page"))
    {
        is_str(id2hex(pid), VID_A, "a new profile takes the visitor id");
    }

    hex2id(VID_A, vid);
    is_int(load(st, vid, &p), OMNI_OK, "the profile is stored");
    is_int(p.created, t0, "created: the event's time");
    is_int(p.updated, t0, "updated: the event's time");
    is_int(p.visits, 1, "one visit");
    is_int(p.visit_last, t0, "visit_last");
    is_int(p.last_seen[OMNI_CH_WEB], t0, "last seen on the web");
    is_int(p.last_seen[OMNI_CH_APP], 0, "never on the app");
    ok(p.naliases == 1 && has_alias(&p, OMNI_ALIAS_COOKIE, VID_A),
       "the cookie alias");
    is_int(p.stage, OMNI_STAGE_NEW, "stage new");
    is_int(p.nevents, 0, "a page is not a counted track event");
    omni_profile_free(&p);
    ok(memcmp(alias_of(st, OMNI_ALIAS_COOKIE, VID_A), vid, OMNI_ID_LEN)
       == 0, "the alias key points at it");

    /* the 30-minute rule */
    applied(st, &c, J("{'type':'page','timestamp':'%s'}", iso(t0 + 1799)),
            OMNI_EVENT_ACCEPTED, pid, "a page 29:59 later");
    load(st, vid, &p);
    ok(p.visits == 1 && p.visit_last == t0 + 1799,
       "the same visit (visits %u)", p.visits);
    omni_profile_free(&p);

    applied(st, &c, J("{'type':'page','timestamp':'%s'}",
                      iso(t0 + 1799 + 1800)),
            OMNI_EVENT_ACCEPTED, pid, "a page 30:00 after that");
    load(st, vid, &p);
    ok(p.visits == 2 && p.visit_last == t0 + 3599, "a new visit");
    is_int(p.stage, OMNI_STAGE_BROWSING, "two visits: browsing");
    omni_profile_free(&p);

    /* an older event changes no latest time */
    applied(st, &c, J("{'type':'page','timestamp':'%s'}", iso(t0 - 100)),
            OMNI_EVENT_ACCEPTED, pid, "a backfilled page");
    load(st, vid, &p);
    ok(p.visit_last == t0 + 3599 && p.updated == t0 + 3599
       && p.last_seen[OMNI_CH_WEB] == t0 + 3599 && p.created == t0,
       "a backfill moves no latest time back");
    omni_profile_free(&p);

    /* omni_visit_timeout */
    apply_timeout = 60;
    applied(st, &c, J("{'type':'page','timestamp':'%s'}", iso(t0 + 3660)),
            OMNI_EVENT_ACCEPTED, pid, "a page 61s later, timeout 60");
    apply_timeout = 0;
    load(st, vid, &p);
    is_int(p.visits, 3, "the event's visit_timeout is used");
    omni_profile_free(&p);

    /* an app: screen views on its device */
    ctx_client(&d, OMNI_ALIAS_DEVICE, VID_B, OMNI_CH_APP);

    if (applied(st, &d, J("{'type':'screen','timestamp':'%s'}", iso(t0)),
                OMNI_EVENT_ACCEPTED, pid, "a screen"))
    {
        is_str(id2hex(pid), VID_B, "the device's profile");
    }

    load(st, pid, &p);
    ok(p.visits == 1 && p.last_seen[OMNI_CH_APP] == t0
       && p.last_seen[OMNI_CH_WEB] == 0
       && p.naliases == 1 && has_alias(&p, OMNI_ALIAS_DEVICE, VID_B),
       "screen: a visit on the app, the device alias");
    omni_profile_free(&p);

    rm_store(st, path);
}


static void
test_apply_cart(void)
{
    char                     path[128];
    uint32_t                 t;
    unsigned char            pid[OMNI_ID_LEN], vid[OMNI_ID_LEN];
    omni_store_t            *st;
    omni_profile_t           p;
    omni_event_ctx_t         c;
    const omni_cart_item_t  *ci;
    const omni_evcount_t    *e;

    st = open_store("cart", path, sizeof(path));
    ok(st != NULL, "cart: store");
    if (st == NULL) {
        return;
    }

    ctx_client(&c, OMNI_ALIAS_COOKIE, VID_A, OMNI_CH_WEB);
    hex2id(VID_A, vid);
    t = NOW - 5000;

    applied(st, &c, J("{'type':'track','event':'Product Added',"
                      "'timestamp':'%s','properties':{'sku':'TENT-2',"
                      "'name':'Trail Tent','category':'tents','price':199,"
                      "'quantity':2,'url':'/p/tent-2','image_url':"
                      "'https://cdn.example.com/t.jpg'}}", iso(t)),
            OMNI_EVENT_ACCEPTED, pid, "Product Added");
    load(st, vid, &p);
    ci = get_cart(&p, "TENT-2");
    ok(p.ncart == 1 && ci && ci->qty == 2 && ci->price == 199
       && strcmp(ci->name, "Trail Tent") == 0
       && strcmp(ci->category, "tents") == 0
       && strcmp(ci->url, "/p/tent-2") == 0
       && strcmp(ci->image, "https://cdn.example.com/t.jpg") == 0,
       "a cart line with everything");
    is_int(p.cart_updated, t, "the cart's time is the event's");
    is_int(p.stage, OMNI_STAGE_CART, "stage cart");
    e = get_count(&p, "Product Added");
    ok(e && e->count == 1 && e->last == t, "counted under its name");
    omni_profile_free(&p);

    applied(st, &c, J("{'type':'track','event':'Product Added',"
                      "'timestamp':'%s','properties':{'sku':'TENT-2',"
                      "'name':'Trail Tent 2','price':189,'quantity':3}}",
                      iso(t + 10)),
            OMNI_EVENT_ACCEPTED, pid, "the same sku again");
    load(st, vid, &p);
    ci = get_cart(&p, "TENT-2");
    ok(p.ncart == 1 && ci && ci->qty == 5 && ci->price == 189
       && strcmp(ci->name, "Trail Tent 2") == 0
       && strcmp(ci->category, "tents") == 0,
       "the quantity raised, new values set, the rest kept");
    e = get_count(&p, "Product Added");
    ok(e && e->count == 2 && e->last == t + 10, "counted twice");
    omni_profile_free(&p);

    applied(st, &c, J("{'type':'track','event':'Product Added',"
                      "'timestamp':'%s','properties':{'product_id':'MUG'}}",
                      iso(t + 20)),
            OMNI_EVENT_ACCEPTED, pid, "another product");
    applied(st, &c, J("{'type':'track','event':'Product Added',"
                      "'timestamp':'%s','properties':{'sku':'BULK',"
                      "'quantity':10000}}", iso(t + 21)),
            OMNI_EVENT_ACCEPTED, pid, "10000 of a product");
    applied(st, &c, J("{'type':'track','event':'Product Added',"
                      "'timestamp':'%s','properties':{'sku':'BULK',"
                      "'quantity':5}}", iso(t + 22)),
            OMNI_EVENT_ACCEPTED, pid, "5 more of it");
    load(st, vid, &p);
    ci = get_cart(&p, "MUG");
    ok(p.ncart == 3 && ci && ci->qty == 1 && ci->price == 0,
       "quantity 1 by default");
    ci = get_cart(&p, "BULK");
    ok(ci && ci->qty == 10000, "quantities stop at 10000");
    omni_profile_free(&p);

    applied(st, &c, J("{'type':'track','event':'Product Removed',"
                      "'timestamp':'%s','properties':{'sku':'TENT-2',"
                      "'quantity':1}}", iso(t + 30)),
            OMNI_EVENT_ACCEPTED, pid, "Product Removed, quantity 1");
    load(st, vid, &p);
    ci = get_cart(&p, "TENT-2");
    ok(ci && ci->qty == 4, "one taken out");
    is_int(p.cart_updated, t + 30, "the cart's time");
    omni_profile_free(&p);

    applied(st, &c, J("{'type':'track','event':'Product Removed',"
                      "'timestamp':'%s','properties':{'sku':'TENT-2',"
                      "'quantity':9}}", iso(t + 40)),
            OMNI_EVENT_ACCEPTED, pid, "Product Removed, more than there");
    applied(st, &c, J("{'type':'track','event':'Product Removed',"
                      "'timestamp':'%s','properties':{'sku':'MUG'}}",
                      iso(t + 41)),
            OMNI_EVENT_ACCEPTED, pid, "Product Removed, no quantity");
    applied(st, &c, J("{'type':'track','event':'Product Removed',"
                      "'timestamp':'%s','properties':{'sku':'NOPE'}}",
                      iso(t + 42)),
            OMNI_EVENT_ACCEPTED, pid, "Product Removed, not in the cart");
    load(st, vid, &p);
    ok(p.ncart == 1 && get_cart(&p, "BULK") != NULL,
       "the lines are gone, the other stays");
    e = get_count(&p, "Product Removed");
    ok(e && e->count == 4, "each removal counted");
    omni_profile_free(&p);

    /* recently viewed */
    applied(st, &c, J("{'type':'track','event':'Product Viewed',"
                      "'timestamp':'%s','properties':{'sku':'BOOT',"
                      "'category':'shoes','price':90}}", iso(t + 50)),
            OMNI_EVENT_ACCEPTED, pid, "Product Viewed BOOT");
    applied(st, &c, J("{'type':'track','event':'Product Viewed',"
                      "'timestamp':'%s','properties':{'sku':'HAT'}}",
                      iso(t + 60)),
            OMNI_EVENT_ACCEPTED, pid, "Product Viewed HAT");
    applied(st, &c, J("{'type':'track','event':'Product Viewed',"
                      "'timestamp':'%s','properties':{'sku':'BOOT',"
                      "'price':80}}", iso(t + 70)),
            OMNI_EVENT_ACCEPTED, pid, "Product Viewed BOOT again");
    load(st, vid, &p);
    ok(p.nviews == 2 && strcmp(p.views[0].sku, "HAT") == 0
       && strcmp(p.views[1].sku, "BOOT") == 0
       && p.views[1].time == t + 70 && p.views[1].price == 80
       && p.views[0].time == t + 60,
       "one entry per sku, the newest last");
    e = get_count(&p, "Product Viewed");
    ok(e && e->count == 3 && e->last == t + 70, "three views counted");
    omni_profile_free(&p);

    /* counted only */
    applied(st, &c, J("{'type':'track','event':'Cart Viewed',"
                      "'timestamp':'%s'}", iso(t + 80)),
            OMNI_EVENT_ACCEPTED, pid, "Cart Viewed");
    applied(st, &c, J("{'type':'track','event':'Wishlist Shared',"
                      "'timestamp':'%s','properties':{'a':[1,2]}}",
                      iso(t + 90)),
            OMNI_EVENT_ACCEPTED, pid, "any other name");
    applied(st, &c, J("{'type':'track','event':'Wishlist Shared',"
                      "'timestamp':'%s'}", iso(t + 85)),
            OMNI_EVENT_ACCEPTED, pid, "the same, earlier");
    load(st, vid, &p);
    e = get_count(&p, "Cart Viewed");
    ok(e && e->count == 1 && e->last == t + 80, "Cart Viewed counted");
    e = get_count(&p, "Wishlist Shared");
    ok(e && e->count == 2 && e->last == t + 90,
       "counted, the last time the latest");
    ok(p.ncart == 1 && p.cart_updated == t + 42,
       "a counted event leaves the cart alone");
    omni_profile_free(&p);

    rm_store(st, path);
}


static void
test_apply_orders(void)
{
    char                    path[128];
    uint32_t                t;
    unsigned char           pid[OMNI_ID_LEN], cid[OMNI_ID_LEN];
    omni_store_t           *st;
    omni_profile_t          p;
    omni_event_ctx_t        s;
    const omni_purchase_t  *pu;
    const omni_attr_t      *a;
    const omni_evcount_t   *e;

    st = open_store("orders", path, sizeof(path));
    ok(st != NULL, "orders: store");
    if (st == NULL) {
        return;
    }

    ctx_server(&s);
    t = NOW - 7200;

    applied(st, &s, J("{'type':'identify','userId':'C-1','timestamp':'%s',"
                      "'traits':{'first_name':'Ana','tier':'gold',"
                      "'old':'x','address':{'city':'Lisbon'}}}", iso(t)),
            OMNI_EVENT_ACCEPTED, cid, "identify a customer");
    ok(!is_zero_id(cid), "userId alone: a new random profile id");

    load(st, cid, &p);
    ok(has_alias(&p, OMNI_ALIAS_CUSTOMER, "C-1") && p.naliases == 1,
       "the customer alias");
    a = get_attr(&p, "first_name");
    ok(a && a->type == OMNI_ATTR_STR && strcmp(a->str, "Ana") == 0,
       "first_name set");
    a = get_attr(&p, "address.city");
    ok(a && strcmp(a->str, "Lisbon") == 0, "address.city set");
    is_int(p.last_seen[OMNI_CH_OTHER], t, "last seen on other");
    is_int(p.nevents, 0, "identify is not counted");
    omni_profile_free(&p);
    ok(memcmp(alias_of(st, OMNI_ALIAS_CUSTOMER, "C-1"), cid, OMNI_ID_LEN)
       == 0, "customer:C-1 resolves to it");

    applied(st, &s, J("{'type':'identify','userId':'C-1','timestamp':'%s',"
                      "'traits':{'old':null,'tier':'silver','points':7}}",
                      iso(t + 1)),
            OMNI_EVENT_ACCEPTED, pid, "identify again");
    ok(memcmp(pid, cid, OMNI_ID_LEN) == 0, "the same profile");
    load(st, cid, &p);
    ok(get_attr(&p, "old") == NULL, "null removed a trait");
    a = get_attr(&p, "tier");
    ok(a && strcmp(a->str, "silver") == 0, "a trait replaced");
    a = get_attr(&p, "points");
    ok(a && a->type == OMNI_ATTR_NUM && a->num == 7, "a number trait");
    ok(get_attr(&p, "first_name") != NULL, "the others kept");
    omni_profile_free(&p);

    /* a cart, then the order */
    applied(st, &s, J("{'type':'track','event':'Product Added',"
                      "'userId':'C-1','timestamp':'%s','properties':"
                      "{'sku':'A','quantity':2}}", iso(t + 2)),
            OMNI_EVENT_ACCEPTED, pid, "cart: A");
    applied(st, &s, J("{'type':'track','event':'Product Added',"
                      "'userId':'C-1','timestamp':'%s','properties':"
                      "{'sku':'B'}}", iso(t + 3)),
            OMNI_EVENT_ACCEPTED, pid, "cart: B");

    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-1','messageId':'o-1','timestamp':'%s',"
                      "'properties':{'order_id':'W-1','channel':'pos',"
                      "'total':250,'products':[{'sku':'A','price':100,"
                      "'quantity':2,'category':'x'},{'sku':'C',"
                      "'price':50}]}}", iso(t + 100)),
            OMNI_EVENT_ACCEPTED, pid, "Order Completed");
    ok(memcmp(pid, cid, OMNI_ID_LEN) == 0, "the customer's profile");

    load(st, cid, &p);
    is_int(p.npurchases, 2, "one purchase line per product");
    pu = get_purchase(&p, "W-1", "A");
    ok(pu && pu->channel == OMNI_CH_POS && pu->time == t + 100
       && pu->price == 100 && pu->qty == 2
       && strcmp(pu->category, "x") == 0,
       "the line: channel, time, price, quantity, category");
    pu = get_purchase(&p, "W-1", "C");
    ok(pu && pu->qty == 1 && pu->price == 50, "quantity 1 by default");
    is_int(p.orders, 1, "one order");
    ok(p.revenue == 250, "revenue: the total (%g)", p.revenue);
    ok(p.ncart == 1 && get_cart(&p, "B") != NULL,
       "the bought sku left the cart, the other stays");
    is_int(p.cart_updated, t + 100, "the cart's time");
    is_int(p.stage, OMNI_STAGE_CUSTOMER, "stage customer");
    is_int(p.last_seen[OMNI_CH_POS], t + 100, "last seen at the store");
    e = get_count(&p, "Order Completed");
    ok(e && e->count == 1, "counted");
    omni_profile_free(&p);

    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-1','timestamp':'%s','properties':"
                      "{'order_id':'W-2','products':[{'sku':'D',"
                      "'price':10,'quantity':3},{'sku':'E','price':1.5}]}}",
                      iso(t + 200)),
            OMNI_EVENT_ACCEPTED, pid, "an order without a total");
    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-1','timestamp':'%s','properties':"
                      "{'order_id':'W-3','revenue':5,'products':"
                      "[{'sku':'D','price':99}]}}", iso(t + 300)),
            OMNI_EVENT_ACCEPTED, pid, "an order with revenue");
    load(st, cid, &p);
    ok(p.orders == 3 && p.revenue == 250 + 31.5 + 5,
       "revenue: the lines' sum, else revenue (%g)", p.revenue);
    pu = get_purchase(&p, "W-2", "D");
    ok(pu && pu->channel == OMNI_CH_OTHER, "a server's order: other");
    omni_profile_free(&p);

    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-1','timestamp':'%s','properties':"
                      "{'order_id':'W-4','products':[{'sku':'F'}]}}",
                      iso(t + 400)),
            OMNI_EVENT_ACCEPTED, pid, "a fourth order");
    load(st, cid, &p);
    is_int(p.stage, OMNI_STAGE_CUSTOMER, "four orders: customer");
    omni_profile_free(&p);
    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-1','timestamp':'%s','properties':"
                      "{'order_id':'W-5','products':[{'sku':'F'}]}}",
                      iso(t + 500)),
            OMNI_EVENT_ACCEPTED, pid, "a fifth order");
    load(st, cid, &p);
    is_int(p.stage, OMNI_STAGE_LOYAL, "five orders: loyal");
    is_int(p.orders, 5, "five orders");
    omni_profile_free(&p);

    /* email and SMS events: last seen on their channel */
    applied(st, &s, J("{'type':'track','event':'Email Clicked',"
                      "'userId':'C-1','timestamp':'%s'}", iso(t + 600)),
            OMNI_EVENT_ACCEPTED, pid, "Email Clicked");
    applied(st, &s, J("{'type':'track','event':'SMS Clicked',"
                      "'userId':'C-1','timestamp':'%s'}", iso(t + 700)),
            OMNI_EVENT_ACCEPTED, pid, "SMS Clicked");
    load(st, cid, &p);
    ok(p.last_seen[OMNI_CH_EMAIL] == t + 600
       && p.last_seen[OMNI_CH_SMS] == t + 700 && p.updated == t + 700,
       "last seen on email and SMS");
    omni_profile_free(&p);

    rm_store(st, path);
}


/* ---- apply: idempotency ---- */

static void
test_apply_dupes(void)
{
    int               status;
    char              path[128];
    unsigned          n;
    json_t           *r;
    omni_wtxn_t      *w;
    unsigned char     pid[OMNI_ID_LEN], hid[OMNI_ID_LEN], did[OMNI_ID_LEN];
    unsigned char     m1[OMNI_ID_LEN];
    feed_t            f;
    omni_store_t     *st;
    omni_profile_t    p;
    omni_event_ctx_t  c1, c2, s;

    st = open_store("dupes", path, sizeof(path));
    ok(st != NULL, "dupes: store");
    if (st == NULL) {
        return;
    }

    ctx_client(&c1, OMNI_ALIAS_COOKIE, VID_A, OMNI_CH_WEB);
    ctx_client(&c2, OMNI_ALIAS_COOKIE, VID_B, OMNI_CH_WEB);
    ctx_server(&s);

    /* a replayed messageId changes nothing */
    applied(st, &c1, J("{'type':'track','event':'Product Added',"
                       "'messageId':'same','properties':{'sku':'Q'}}"),
            OMNI_EVENT_ACCEPTED, m1, "client A: messageId same");
    applied(st, &c1, J("{'type':'track','event':'Product Added',"
                       "'messageId':'same','properties':{'sku':'Q'}}"),
            OMNI_EVENT_DUPLICATE, pid, "client A: replayed");
    load(st, m1, &p);
    ok(p.ncart == 1 && p.cart[0].qty == 1, "the replay added nothing");
    ok(get_count(&p, "Product Added")
       && get_count(&p, "Product Added")->count == 1, "counted once");
    omni_profile_free(&p);

    /* client ids are scoped to their visitor; servers share one space */
    applied(st, &c2, J("{'type':'track','event':'Product Added',"
                       "'messageId':'same','properties':{'sku':'Q'}}"),
            OMNI_EVENT_ACCEPTED, pid, "client B: the same messageId");
    is_str(id2hex(pid), VID_B, "client B: its own profile");
    applied(st, &s, J("{'type':'track','event':'X','userId':'C-M',"
                      "'messageId':'same'}"),
            OMNI_EVENT_ACCEPTED, pid, "server: the same messageId");
    applied(st, &s, J("{'type':'track','event':'Y','userId':'C-N',"
                      "'messageId':'same'}"),
            OMNI_EVENT_DUPLICATE, pid, "server: again, for somebody else");
    applied(st, &c2, J("{'type':'page','messageId':'same'}"),
            OMNI_EVENT_DUPLICATE, pid, "client B: replayed");

    feed_load(st, &f);
    r = feed_find(&f, "same", &n, NULL);
    is_int(n, 3, "three records with messageId same");
    json_decref(r);
    feed_free(&f);

    /* an aborted transaction keeps no key */
    {
        char                t[256];
        omni_event_err_t    err;
        omni_event_batch_t  b;

        strcpy(t, J("{'type':'track','event':'Z','userId':'C-Z',"
                    "'messageId':'aborted','properties':{'k':1}}"));
        omni_event_batch_parse(&b, t, strlen(t), &s, &err);
        omni_store_write_begin(st, &w);
        is_int(omni_event_apply(w, &b.events[0], &status, pid), OMNI_OK,
               "applied, then aborted");
        omni_wtxn_abort(w);
        omni_event_batch_free(&b);
        ok(is_zero_id(alias_of(st, OMNI_ALIAS_CUSTOMER, "C-Z")),
           "the aborted event left no profile");
        applied(st, &s, t, OMNI_EVENT_ACCEPTED, pid,
                "the same messageId after the abort");
    }

    /* a batch in one transaction: a duplicate within it */
    {
        int                 st3[3];
        omni_event_err_t    err;
        omni_event_batch_t  b;
        unsigned char       p3[3][OMNI_ID_LEN];
        const char         *t;
        unsigned            i;

        t = J("[{'type':'page','userId':'C-B','messageId':'b1'},"
              "{'type':'page','userId':'C-B','messageId':'b1'},"
              "{'type':'page','userId':'C-B','messageId':'b2'}]");
        omni_event_batch_parse(&b, t, strlen(t), &s, &err);
        omni_store_write_begin(st, &w);

        for (i = 0; i < 3; i++) {
            omni_event_apply(w, &b.events[i], &st3[i], p3[i]);
        }

        is_int(omni_wtxn_commit(w), OMNI_OK, "a batch in one transaction");
        omni_event_batch_free(&b);
        ok(st3[0] == OMNI_EVENT_ACCEPTED && st3[1] == OMNI_EVENT_DUPLICATE
           && st3[2] == OMNI_EVENT_ACCEPTED
           && memcmp(p3[0], p3[2], OMNI_ID_LEN) == 0,
           "a duplicate inside the batch");
        feed_load(st, &f);
        r = feed_find(&f, "b1", &n, NULL);
        is_int(n, 1, "one record of b1");
        json_decref(r);
        feed_free(&f);
    }

    /* the order id: under a new messageId, a duplicate */
    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-O','messageId':'m-a','properties':"
                      "{'order_id':'O-9','products':[{'sku':'A',"
                      "'price':5}]}}"),
            OMNI_EVENT_ACCEPTED, pid, "order O-9");
    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-O','messageId':'m-b','properties':"
                      "{'order_id':'O-9','products':[{'sku':'A',"
                      "'price':5}]}}"),
            OMNI_EVENT_DUPLICATE, pid, "order O-9 under a new messageId");
    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-P','messageId':'m-c','properties':"
                      "{'order_id':'O-9','products':[{'sku':'B'}]}}"),
            OMNI_EVENT_DUPLICATE, pid, "order O-9 for somebody else");
    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-O','messageId':'m-a','properties':"
                      "{'order_id':'O-10','products':[{'sku':'A'}]}}"),
            OMNI_EVENT_DUPLICATE, pid, "a new order under an old messageId");
    load(st, alias_of(st, OMNI_ALIAS_CUSTOMER, "C-O"), &p);
    ok(p.orders == 1 && p.revenue == 5 && p.npurchases == 1,
       "one order counted");
    omni_profile_free(&p);
    ok(is_zero_id(alias_of(st, OMNI_ALIAS_CUSTOMER, "C-P")),
       "the duplicate created nobody");

    /*
     * An order already in the purchase history (its key long pruned) is a
     * duplicate; it does not take the cookie of another customer either.
     */
    seed(st, "b0000000000000000000000000000001", NOW - 9999, "C-H", NULL,
         "OLD-1");
    seed(st, "b0000000000000000000000000000002", NOW - 9999, "C-D",
         "c0000000000000000000000000000001", NULL);
    hex2id("b0000000000000000000000000000001", hid);
    hex2id("b0000000000000000000000000000002", did);

    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-H','anonymousId':"
                      "'c0000000000000000000000000000001','messageId':"
                      "'h-1','properties':{'order_id':'OLD-1',"
                      "'products':[{'sku':'Z','price':10}]}}"),
            OMNI_EVENT_DUPLICATE, pid, "an order in the history");
    load(st, hid, &p);
    ok(p.orders == 1 && p.npurchases == 1 && p.revenue == 10
       && p.naliases == 1,
       "the history's profile is unchanged");
    omni_profile_free(&p);
    load(st, did, &p);
    ok(has_alias(&p, OMNI_ALIAS_COOKIE, "c0000000000000000000000000000001"),
       "the duplicate took no cookie from the other customer");
    omni_profile_free(&p);
    ok(memcmp(alias_of(st, OMNI_ALIAS_COOKIE,
                       "c0000000000000000000000000000001"), did,
              OMNI_ID_LEN) == 0, "the cookie still resolves to them");

    feed_load(st, &f);
    r = feed_find(&f, "h-1", &n, NULL);
    ok(n == 0 && r == NULL, "no feed record for the duplicate");
    json_decref(r);
    feed_free(&f);

    /* the same with a new order: the cookie moves, nothing is merged */
    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-H','anonymousId':"
                      "'c0000000000000000000000000000001','messageId':"
                      "'h-2','properties':{'order_id':'NEW-1',"
                      "'products':[{'sku':'Y','price':20}]}}"),
            OMNI_EVENT_ACCEPTED, pid, "a new order, another's cookie");
    ok(memcmp(pid, hid, OMNI_ID_LEN) == 0, "the customer's profile");
    load(st, hid, &p);
    ok(p.orders == 2 && p.revenue == 30
       && has_alias(&p, OMNI_ALIAS_COOKIE,
                    "c0000000000000000000000000000001"),
       "counted, and the cookie is theirs now");
    omni_profile_free(&p);
    is_int(load(st, did, &p), OMNI_OK, "the other customer's profile stays");
    ok(!has_alias(&p, OMNI_ALIAS_COOKIE, "c0000000000000000000000000000001")
       && has_alias(&p, OMNI_ALIAS_CUSTOMER, "C-D") && p.naliases == 1,
       "it only lost the cookie");
    omni_profile_free(&p);
    ok(memcmp(alias_of(st, OMNI_ALIAS_COOKIE,
                       "c0000000000000000000000000000001"), hid,
              OMNI_ID_LEN) == 0, "the cookie resolves to the buyer");
    ok(memcmp(alias_of(st, OMNI_ALIAS_CUSTOMER, "C-D"), did, OMNI_ID_LEN)
       == 0, "customer C-D still resolves to theirs");

    /* the keys expire after OMNI_EVENT_DEDUPE_TTL */
    omni_store_write_begin(st, &w);
    is_int(omni_event_prune(w, (uint32_t) time(NULL), 1000), OMNI_OK,
           "prune now");
    omni_wtxn_commit(w);
    applied(st, &s, J("{'type':'track','event':'X','userId':'C-M',"
                      "'messageId':'same'}"),
            OMNI_EVENT_DUPLICATE, pid, "a fresh key stays");
    omni_store_write_begin(st, &w);
    is_int(omni_event_prune(w, (uint32_t) time(NULL) + OMNI_EVENT_DEDUPE_TTL
                               + 10, 1000),
           OMNI_OK, "prune a week later");
    omni_wtxn_commit(w);
    applied(st, &s, J("{'type':'track','event':'X','userId':'C-M',"
                      "'messageId':'same'}"),
            OMNI_EVENT_ACCEPTED, pid, "an expired key is new again");
    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-O','messageId':'m-z','properties':"
                      "{'order_id':'O-9','products':[{'sku':'A'}]}}"),
            OMNI_EVENT_DUPLICATE, pid,
            "an expired order key: still in the history");

    rm_store(st, path);
}


/* ---- apply: identities ---- */

static void
test_apply_identity(void)
{
    char                  path[128], uhex[OMNI_ID_HEX_LEN + 1];
    unsigned              n, at, mat;
    json_t               *r;
    uint32_t              t;
    omni_wtxn_t          *w;
    unsigned char         pid[OMNI_ID_LEN], uid[OMNI_ID_LEN];
    unsigned char         sid[OMNI_ID_LEN], eid[OMNI_ID_LEN];
    unsigned char         did[OMNI_ID_LEN], rid[OMNI_ID_LEN];
    unsigned char         x[OMNI_ID_LEN];
    feed_t                f;
    omni_store_t         *st;
    omni_profile_t        p;
    omni_event_ctx_t      s, cs, cd;
    const omni_evcount_t *e;

    st = open_store("identity", path, sizeof(path));
    ok(st != NULL, "identity: store");
    if (st == NULL) {
        return;
    }

    ctx_server(&s);
    t = NOW - 20000;

    /* userId only: a random id, then found again */
    applied(st, &s, J("{'type':'identify','userId':'U-1','timestamp':'%s'}",
                      iso(t)),
            OMNI_EVENT_ACCEPTED, uid, "userId only");
    applied(st, &s, J("{'type':'identify','userId':'U-2'}"),
            OMNI_EVENT_ACCEPTED, pid, "another userId");
    ok(!is_zero_id(uid) && !is_zero_id(pid)
       && memcmp(uid, pid, OMNI_ID_LEN) != 0,
       "two customers, two random ids");
    applied(st, &s, J("{'type':'track','event':'Login','userId':'U-1'}"),
            OMNI_EVENT_ACCEPTED, pid, "U-1 again");
    ok(memcmp(uid, pid, OMNI_ID_LEN) == 0, "found by the customer alias");

    /* anonymousId of nobody known: the profile takes it (as a UUID too) */
    applied(st, &s, J("{'type':'page','anonymousId':"
                      "'C0000000-0000-0000-0000-0000000000F1'}"),
            OMNI_EVENT_ACCEPTED, pid, "a new anonymousId (UUID)");
    is_str(id2hex(pid), "c00000000000000000000000000000f1",
           "the profile id is the anonymousId");
    load(st, pid, &p);
    ok(p.naliases == 1
       && has_alias(&p, OMNI_ALIAS_COOKIE,
                    "c00000000000000000000000000000f1"),
       "linked as a cookie");
    omni_profile_free(&p);

    /* stitching: a web visitor logs in */
    ctx_client(&cs, OMNI_ALIAS_COOKIE, "d0000000000000000000000000000001",
               OMNI_CH_WEB);
    hex2id("d0000000000000000000000000000001", sid);
    applied(st, &cs, J("{'type':'track','event':'Product Added',"
                       "'timestamp':'%s','properties':{'sku':'S-1'}}",
                       iso(t + 100)),
            OMNI_EVENT_ACCEPTED, pid, "the visitor's cart");
    ok(memcmp(pid, sid, OMNI_ID_LEN) == 0, "the visitor's profile");

    applied(st, &s, J("{'type':'identify','userId':'U-1','anonymousId':"
                      "'d0000000000000000000000000000001','messageId':"
                      "'login-1','timestamp':'%s','traits':"
                      "{'first_name':'Ana'}}", iso(t + 200)),
            OMNI_EVENT_ACCEPTED, pid, "login: userId and the cookie");
    ok(memcmp(pid, uid, OMNI_ID_LEN) == 0,
       "the customer's profile is kept");
    ok(!exists(st, sid), "the visitor's profile was merged away");
    load(st, uid, &p);
    ok(has_alias(&p, OMNI_ALIAS_CUSTOMER, "U-1")
       && has_alias(&p, OMNI_ALIAS_COOKIE,
                    "d0000000000000000000000000000001"),
       "it holds both identities");
    ok(p.ncart == 1 && strcmp(p.cart[0].sku, "S-1") == 0,
       "and the visitor's cart");
    is_int(p.created, t, "created: the earlier");
    ok(get_attr(&p, "first_name") != NULL, "and the identify's trait");
    omni_profile_free(&p);
    ok(memcmp(alias_of(st, OMNI_ALIAS_COOKIE,
                       "d0000000000000000000000000000001"), uid,
              OMNI_ID_LEN) == 0, "the cookie resolves to the customer");

    feed_load(st, &f);
    omni_id_hex(uid, uhex);
    r = feed_find(&f, "merge-d0000000000000000000000000000001", &n, &mat);
    ok(n == 1 && r != NULL, "the merge is in the feed");

    if (r) {
        is_str(jstr(r, "type"), "alias", "merge record: type alias");
        is_str(jstr(r, "event"), "Profiles Merged", "merge record: event");
        is_str(jstr(r, "previousId"), "d0000000000000000000000000000001",
               "merge record: previousId");
        is_str(jstr(r, "profileId"), uhex, "merge record: profileId");
        is_str(jstr(r, "context.cause"), "identify", "merge record: cause");
        is_str(jstr(r, "timestamp"), iso(t + 200), "merge record: time");
        json_decref(r);
    }

    r = feed_find(&f, "login-1", &n, &at);
    ok(n == 1 && r != NULL && mat < at, "the merge comes before the event");
    is_str(jstr(r, "profileId"), uhex, "the event's record: the profile");
    json_decref(r);
    feed_free(&f);

    /* the visitor's later events go to the customer */
    applied(st, &cs, J("{'type':'page'}"), OMNI_EVENT_ACCEPTED, pid,
            "the visitor again");
    ok(memcmp(pid, uid, OMNI_ID_LEN) == 0, "to the stitched profile");

    /* linking the same identities again changes nothing */
    applied(st, &s, J("{'type':'identify','userId':'U-1','anonymousId':"
                      "'d0000000000000000000000000000001'}"),
            OMNI_EVENT_ACCEPTED, pid, "the same login again");
    feed_load(st, &f);
    r = feed_find(&f, "merge-d0000000000000000000000000000001", &n, NULL);
    ok(n == 1 && memcmp(pid, uid, OMNI_ID_LEN) == 0, "no second merge");
    json_decref(r);
    feed_free(&f);

    /*
     * The first profile found is merged into a later one: a server names
     * an anonymous profile first, then the customer; the customer's
     * profile is kept and becomes the event's.
     */
    ctx_client(&cs, OMNI_ALIAS_COOKIE, "d0000000000000000000000000000006",
               OMNI_CH_WEB);
    applied(st, &cs, J("{'type':'track','event':'Product Viewed',"
                       "'properties':{'sku':'V-6'}}"),
            OMNI_EVENT_ACCEPTED, pid, "another anonymous visitor");
    applied(st, &s, J("{'type':'track','event':'Linked','profileId':"
                      "'d0000000000000000000000000000006','userId':'U-1',"
                      "'messageId':'link-6'}"),
            OMNI_EVENT_ACCEPTED, pid, "profileId first, then userId");
    ok(memcmp(pid, uid, OMNI_ID_LEN) == 0,
       "the customer's profile is kept and gets the event");
    hex2id("d0000000000000000000000000000006", x);
    ok(!exists(st, x), "the anonymous profile was merged into it");
    load(st, uid, &p);
    ok(p.nviews == 1 && strcmp(p.views[0].sku, "V-6") == 0
       && get_count(&p, "Linked") != NULL
       && has_alias(&p, OMNI_ALIAS_COOKIE,
                    "d0000000000000000000000000000006"),
       "with the visitor's views, cookie and the event");
    omni_profile_free(&p);
    feed_load(st, &f);
    r = feed_find(&f, "merge-d0000000000000000000000000000006", &n, NULL);
    ok(r && strcmp(jstr(r, "profileId"), uhex) == 0
       && strcmp(jstr(r, "context.cause"), "event") == 0
       && strcmp(jstr(r, "channel"), "other") == 0,
       "merge record: into the customer, caused by an event");
    json_decref(r);
    feed_free(&f);

    /* the email: hashed alias, found from a track call's context */
    applied(st, &s, J("{'type':'identify','userId':'U-E','traits':"
                      "{'email':' Ana@Example.COM ','first_name':'Ana'},"
                      "'messageId':'id-e'}"),
            OMNI_EVENT_ACCEPTED, eid, "identify with an email");
    ok(memcmp(alias_of(st, OMNI_ALIAS_EMAIL, ANA_SHA), eid, OMNI_ID_LEN)
       == 0, "the email alias is the address's sha256");
    load(st, eid, &p);
    ok(get_attr(&p, "email") == NULL && p.nattrs == 1,
       "the address is not an attribute");
    omni_profile_free(&p);

    applied(st, &s, J("{'type':'track','event':'Coupon Used','messageId':"
                      "'cu-1','anonymousId':"
                      "'d0000000000000000000000000000002','context':"
                      "{'traits':{'email':'ana@example.com'}}}"),
            OMNI_EVENT_ACCEPTED, pid, "an event by the email");
    ok(memcmp(pid, eid, OMNI_ID_LEN) == 0, "found by the email");
    ok(memcmp(alias_of(st, OMNI_ALIAS_COOKIE,
                       "d0000000000000000000000000000002"), eid,
              OMNI_ID_LEN) == 0, "and the new cookie linked to it");

    feed_load(st, &f);
    r = feed_find(&f, "id-e", &n, &at);
    ok(r && json_is_object(json_object_get(r, "traits"))
       && json_object_get(json_object_get(r, "traits"), "email") == NULL
       && jstr(r, "traits.first_name")
       && strcmp(jstr(r, "traits.first_name"), "Ana") == 0,
       "identify record: traits without the email");
    ok(r && strstr(f.line[at], "xample") == NULL
       && strstr(f.line[at], "@") == NULL,
       "the address is nowhere in the record");
    json_decref(r);
    r = feed_find(&f, "cu-1", &n, NULL);
    ok(r && jstr(r, "anonymousId")
       && strcmp(jstr(r, "anonymousId"),
                 "d0000000000000000000000000000002") == 0
       && json_object_get(r, "userId") == NULL,
       "track record: the anonymousId, no userId");
    json_decref(r);
    feed_free(&f);

    /* another customer's profile: not merged, loses the cookie only */
    applied(st, &s, J("{'type':'identify','userId':'U-D','anonymousId':"
                      "'d0000000000000000000000000000003'}"),
            OMNI_EVENT_ACCEPTED, did, "customer D on a shared computer");
    is_str(id2hex(did), "d0000000000000000000000000000003",
           "D's profile took the cookie's id");
    applied(st, &s, J("{'type':'identify','userId':'U-F','anonymousId':"
                      "'d0000000000000000000000000000003','messageId':"
                      "'f-1'}"),
            OMNI_EVENT_ACCEPTED, rid, "customer F logs in on it");
    ok(!is_zero_id(rid) && memcmp(rid, did, OMNI_ID_LEN) != 0,
       "F gets a profile of its own (a random id)");
    is_int(load(st, did, &p), OMNI_OK, "D's profile is not merged");
    ok(has_alias(&p, OMNI_ALIAS_CUSTOMER, "U-D")
       && !has_alias(&p, OMNI_ALIAS_COOKIE,
                     "d0000000000000000000000000000003")
       && p.naliases == 1,
       "D only lost the cookie");
    omni_profile_free(&p);
    load(st, rid, &p);
    ok(has_alias(&p, OMNI_ALIAS_CUSTOMER, "U-F")
       && has_alias(&p, OMNI_ALIAS_COOKIE,
                    "d0000000000000000000000000000003"),
       "F holds the cookie");
    omni_profile_free(&p);
    ok(memcmp(alias_of(st, OMNI_ALIAS_COOKIE,
                       "d0000000000000000000000000000003"), rid,
              OMNI_ID_LEN) == 0, "the cookie resolves to F");
    feed_load(st, &f);
    r = feed_find(&f, "merge-d0000000000000000000000000000003", &n, NULL);
    ok(n == 0 && r == NULL, "no merge record");
    json_decref(r);
    r = feed_find(&f, "f-1", &n, NULL);
    is_str(jstr(r, "profileId"), id2hex(rid), "F's record names F");
    json_decref(r);
    feed_free(&f);

    /* two customers and no userId to tell: no merge */
    applied(st, &s, J("{'type':'track','event':'Store Visit','anonymousId':"
                      "'d0000000000000000000000000000003','context':"
                      "{'traits':{'email':'ana@example.com'}}}"),
            OMNI_EVENT_ACCEPTED, pid, "F's cookie with E's email");
    ok(memcmp(pid, rid, OMNI_ID_LEN) == 0, "to the first one found");
    ok(exists(st, eid) && exists(st, rid), "both profiles remain");
    load(st, eid, &p);
    ok(has_alias(&p, OMNI_ALIAS_CUSTOMER, "U-E"), "E is still E");
    omni_profile_free(&p);

    /* an anonymousId that is an app's device */
    ctx_client(&cd, OMNI_ALIAS_DEVICE, "d0000000000000000000000000000004",
               OMNI_CH_APP);
    applied(st, &cd, J("{'type':'screen'}"), OMNI_EVENT_ACCEPTED, pid,
            "an app's first screen");
    applied(st, &s, J("{'type':'track','event':'App Login','userId':"
                      "'U-DV','messageId':'dv-1','anonymousId':"
                      "'d0000000000000000000000000000004'}"),
            OMNI_EVENT_ACCEPTED, pid, "a server names the device");
    is_str(id2hex(pid), "d0000000000000000000000000000004",
           "found as a device");
    load(st, pid, &p);
    ok(has_alias(&p, OMNI_ALIAS_DEVICE, "d0000000000000000000000000000004")
       && has_alias(&p, OMNI_ALIAS_CUSTOMER, "U-DV")
       && !has_alias(&p, OMNI_ALIAS_COOKIE,
                     "d0000000000000000000000000000004")
       && p.naliases == 2,
       "linked as the device it is, not as a cookie");
    omni_profile_free(&p);
    feed_load(st, &f);
    r = feed_find(&f, "dv-1", &n, NULL);
    ok(r && jstr(r, "anonymousId")
       && strcmp(jstr(r, "anonymousId"),
                 "d0000000000000000000000000000004") == 0
       && strcmp(jstr(r, "userId"), "U-DV") == 0,
       "the record: the device and the userId");
    json_decref(r);
    feed_free(&f);

    /* profileId */
    applied(st, &s, J("{'type':'track','event':'CRM Note','profileId':'%s'}",
                      id2hex(uid)),
            OMNI_EVENT_ACCEPTED, pid, "an event by profileId");
    ok(memcmp(pid, uid, OMNI_ID_LEN) == 0, "to that profile");
    load(st, uid, &p);
    e = get_count(&p, "CRM Note");
    ok(e && e->count == 1, "counted there");
    ok(!has_alias(&p, OMNI_ALIAS_COOKIE, id2hex(uid)),
       "a profileId is no alias");
    omni_profile_free(&p);

    /* an alias pointing at no profile: as if unknown */
    hex2id("e0000000000000000000000000000009", x);
    omni_store_write_begin(st, &w);
    omni_wtxn_put_alias(w, OMNI_ALIAS_COOKIE,
                        "d0000000000000000000000000000005", 32, x);
    omni_wtxn_commit(w);
    ctx_client(&cs, OMNI_ALIAS_COOKIE, "d0000000000000000000000000000005",
               OMNI_CH_WEB);
    applied(st, &cs, J("{'type':'page'}"), OMNI_EVENT_ACCEPTED, pid,
            "a dangling alias");
    is_str(id2hex(pid), "d0000000000000000000000000000005",
           "a new profile with the visitor's id");
    ok(memcmp(alias_of(st, OMNI_ALIAS_COOKIE,
                       "d0000000000000000000000000000005"), pid,
              OMNI_ID_LEN) == 0, "the alias repaired");

    rm_store(st, path);
}


/* ---- apply: the feed record ---- */

static void
test_apply_feed(void)
{
    char              path[128];
    unsigned          n;
    json_t           *r;
    uint64_t          first;
    unsigned char     pid[OMNI_ID_LEN];
    feed_t            f;
    omni_store_t     *st;
    omni_event_ctx_t  c, s;

    st = open_store("feed", path, sizeof(path));
    ok(st != NULL, "feed: store");
    if (st == NULL) {
        return;
    }

    ctx_client(&c, OMNI_ALIAS_COOKIE, VID_A, OMNI_CH_WEB);
    ctx_server(&s);

    applied(st, &c, J("{'type':'track','event':'Product Added',"
                      "'messageId':'feed-1','timestamp':"
                      "'2026-11-24T13:20:05.250Z','properties':"
                      "{'sku':'TENT-2','price':199,'note':'\\u00e9\\\"<'}}"),
            OMNI_EVENT_ACCEPTED, pid, "a client event");

    /* omni_store_feed, as the module's feed endpoint reads it */
    memset(&f, 0, sizeof(f));
    omni_store_read_begin(st);
    is_int(omni_store_feed(st, 0, 100, feed_cb, &f, &first), OMNI_OK,
           "omni_store_feed");
    omni_store_read_end(st);
    ok(first == 1 && f.n == 1 && f.seq[0] == 1, "one record, seq 1");
    ok(f.n == 1 && strncmp(f.line[0], "{\"messageId\":\"feed-1\",", 22) == 0,
       "the event's messageId first: %.40s", f.n ? f.line[0] : "");

    r = f.n ? json_loads(f.line[0], 0, NULL) : NULL;
    ok(r != NULL, "the record is JSON");
    is_str(jstr(r, "type"), "track", "type");
    is_str(jstr(r, "event"), "Product Added", "event");
    is_str(jstr(r, "timestamp"), "2026-11-24T13:20:05Z", "timestamp");
    is_str(jstr(r, "anonymousId"), VID_A, "anonymousId");
    is_str(jstr(r, "profileId"), VID_A, "profileId");
    is_str(jstr(r, "channel"), "web", "channel");
    is_str(jstr(r, "properties.sku"), "TENT-2", "properties as given");
    is_str(jstr(r, "properties.note"), "\xc3\xa9\"<", "escaped alike");
    is_str(jstr(r, "context.source"), "client", "context.source client");
    ok(json_object_get(r, "userId") == NULL
       && json_object_get(r, "traits") == NULL, "no userId, no traits");
    json_decref(r);
    feed_free(&f);

    /* server events: userId, sources, other types */
    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-1042','messageId':'pos-77-1',"
                      "'properties':{'order_id':'POS-77','channel':'pos',"
                      "'total':349,'products':[{'sku':'SUMMIT-PRO',"
                      "'price':349}]}}"),
            OMNI_EVENT_ACCEPTED, pid, "a server's order");
    s.source = OMNI_SRC_CLI;
    applied(st, &s, J("{'type':'page','userId':'C-1042','messageId':"
                      "'cli-1'}"),
            OMNI_EVENT_ACCEPTED, pid, "omnictl's page");
    s.source = OMNI_SRC_UPSTREAM;
    applied(st, &s, J("{'type':'screen','userId':'C-1042','messageId':"
                      "'up-1'}"),
            OMNI_EVENT_ACCEPTED, pid, "an upstream's screen");
    s.source = OMNI_SRC_SERVER;
    applied(st, &s, J("{'type':'page','userId':'C-1042'}"),
            OMNI_EVENT_ACCEPTED, pid, "no messageId");

    feed_load(st, &f);
    ok(f.n == 5 && f.seq[4] == 5, "five records");

    r = feed_find(&f, "pos-77-1", &n, NULL);
    ok(n == 1 && r, "the order's record");
    is_str(jstr(r, "userId"), "C-1042", "userId");
    is_str(jstr(r, "channel"), "pos", "channel pos");
    is_str(jstr(r, "context.source"), "server", "context.source server");
    is_str(jstr(r, "properties.order_id"), "POS-77", "its properties");
    is_str(jstr(r, "profileId"), id2hex(pid), "the customer's profile");
    ok(json_object_get(r, "anonymousId") == NULL, "no anonymousId");
    json_decref(r);

    r = feed_find(&f, "cli-1", &n, NULL);
    ok(r && strcmp(jstr(r, "type"), "page") == 0
       && strcmp(jstr(r, "event"), "Page Viewed") == 0
       && strcmp(jstr(r, "context.source"), "cli") == 0,
       "a page from omnictl");
    json_decref(r);

    r = feed_find(&f, "up-1", &n, NULL);
    ok(r && strcmp(jstr(r, "type"), "screen") == 0
       && strcmp(jstr(r, "context.source"), "upstream") == 0,
       "a screen from an upstream");
    json_decref(r);

    r = f.n == 5 ? json_loads(f.line[4], 0, NULL) : NULL;
    ok(r && strncmp(jstr(r, "messageId"), "omni-", 5) == 0
       && strncmp(f.line[4], "{\"messageId\":\"omni-", 19) == 0,
       "a made-up messageId is in the feed too");
    json_decref(r);
    feed_free(&f);

    rm_store(st, path);
}


int
main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/omni-event-XXXXXX");

    if (mkdtemp(tmpdir) == NULL) {
        printf("Bail out! mkdtemp failed\n");
        return 1;
    }

    test_time();
    test_bodies();
    test_depth();
    test_invalid();
    test_parse_direct();
    test_trust();
    test_fields();
    test_channels();
    test_email();
    is_str(omni_event_status_name(OMNI_EVENT_ACCEPTED), "accepted",
           "status name: accepted");
    is_str(omni_event_status_name(OMNI_EVENT_DUPLICATE), "duplicate",
           "status name: duplicate");
    is_str(omni_event_status_name(-1), "failed", "status name: failed");

    test_apply_visits();
    test_apply_cart();
    test_apply_orders();
    test_apply_dupes();
    test_apply_identity();
    test_apply_feed();

    rmdir(tmpdir);

    return done_testing();
}
