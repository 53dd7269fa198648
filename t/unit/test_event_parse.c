/*
 * Unit tests of event parsing (omni_event.h, docs/events.md):
 *
 *   omni_event_parse_time()    ISO 8601 forms, offsets, calendar bounds;
 *   omni_event_batch_parse()   bodies (one event, batch, array), every
 *                              refusal with the field it names, the trust
 *                              rules, nesting and batch limits, channel
 *                              resolution, the hashed email alias, the
 *                              made-up messageId.
 *
 * The store side is in test_event_apply.c.  JSON is written with ' for "
 * (J() turns them back) to stay readable.
 */

#include "event_helpers.h"


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
    bad(&c, J("{'type':'page','previousId':'x','userId':'C1'}"),
        OMNI_INVALID, "previousId", "only alias calls");
    bad(&c, J("{'type':'page','groupId':'x','userId':'C1'}"),
        OMNI_INVALID, "groupId", "only group calls");
    bad(&c, J("{'event':'X','userId':'C1'}"), OMNI_INVALID, "type",
        "required");
    bad(&c, J("{'type':null,'userId':'C1'}"), OMNI_INVALID, "type",
        "required");
    bad(&c, J("{'type':5,'userId':'C1'}"), OMNI_INVALID, "type",
        "expected a string");
    bad(&c, J("{'type':'','userId':'C1'}"), OMNI_INVALID, "type", NULL);
    bad(&c, J("{'type':'alias','userId':'C1'}"), OMNI_INVALID,
        "previousId", "required for an alias call");
    bad(&c, J("{'type':'alias','previousId':'a1'}"), OMNI_INVALID,
        "userId", "required for an alias call");
    bad(&c, J("{'type':'group','userId':'C1'}"), OMNI_INVALID, "groupId",
        "required for a group call");
    bad(&c, J("{'type':'Group','userId':'C1'}"), OMNI_INVALID, "type",
        "alias or group");
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
    bad(&c, J("{'type':'page','anonymousId':''}"), OMNI_INVALID,
        "anonymousId", "1 to 128");
    bad(&c, J("{'type':'page','anonymousId':{}}"), OMNI_INVALID,
        "anonymousId", "expected a string");
    bad(&c, J("{'type':'page','anonymousId':'%s'}", rep('a', 129)),
        OMNI_INVALID, "anonymousId", "1 to 128");
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


/* ---- Segment's libraries (analytics-node 3.1.0, analytics-go) ---- */

static void
test_segment(void)
{
    char                buf[4096];
    size_t              len;
    json_t             *x;
    omni_event_ctx_t    c, s;
    omni_event_err_t    err;
    omni_event_batch_t  b;

    ctx_client(&c, OMNI_ALIAS_COOKIE, VID_A, OMNI_CH_WEB);
    ctx_server(&s);

    /* the envelopes: analytics-node's, analytics-go's */
    len = strlen(strcpy(buf, J("{'batch':[{'type':'page','userId':'C1'}],"
                               "'timestamp':'2027-01-15T08:00:00Z',"
                               "'sentAt':'2027-01-15T08:00:00Z'}")));
    is_int(omni_event_batch_parse(&b, buf, len, &s, &err), OMNI_OK,
           "envelope {batch, timestamp, sentAt}");
    is_int(b.n == 1 ? b.rc[0] : -1, OMNI_OK, "its event");
    omni_event_batch_free(&b);

    len = strlen(strcpy(buf, J("{'messageId':'m1','sentAt':"
                               "'2027-01-15T08:00:00Z','batch':[{'type':"
                               "'track','event':'X','userId':'C1'}],"
                               "'context':{'library':{'name':'analytics-go'"
                               ",'version':'3.0.0'}}}")));
    is_int(omni_event_batch_parse(&b, buf, len, &s, &err), OMNI_OK,
           "envelope {messageId, sentAt, batch, context}");
    omni_event_batch_free(&b);

    /* the single-call paths imply the type */
    s.type = OMNI_EV_TRACK;
    if (good(&b, &s, J("{'event':'X','userId':'C1'}"))) {
        is_int(b.events[0].type, OMNI_EV_TRACK, "/v1/track: a track");
        omni_event_batch_free(&b);
    }
    s.type = 0;

    /* alias and group (server), refused to a client */
    if (good(&b, &s, J("{'type':'alias','previousId':"
                       "'0d3a1f2e-7c55-4f7b-9a8e-3b1c2d4e5f60',"
                       "'userId':'C1'}")))
    {
        is_int(b.events[0].type, OMNI_EV_ALIAS, "alias");
        is_int(b.events[0].nidents, 3, "alias: customer, as sent, hex");
        is_int(b.events[0].idents[1].kind, OMNI_ALIAS_ANON,
               "alias: previousId as sent");
        is_str(b.events[0].idents[1].value,
               "0d3a1f2e-7c55-4f7b-9a8e-3b1c2d4e5f60", "alias: the UUID");
        x = json_object_get(b.events[0].feed_extra, "previousId");
        is_str(json_string_value(x), "0d3a1f2e-7c55-4f7b-9a8e-3b1c2d4e5f60",
               "alias: previousId for the feed");
        omni_event_batch_free(&b);
    }

    if (good(&b, &s, J("{'type':'group','groupId':'acme','userId':'C1',"
                       "'traits':{'name':'Acme','email':'x@acme.com'}}")))
    {
        is_str(b.events[0].group_id, "acme", "group: groupId");
        ok(json_object_get(b.events[0].traits_json, "email") == NULL
           && json_object_get(b.events[0].traits_json, "name") != NULL,
           "group: traits for the feed, without email");
        omni_event_batch_free(&b);
    }

    bad(&c, J("{'type':'group','groupId':'acme'}"), OMNI_EVENT_FORBIDDEN,
        "type", "group calls need a server key");
    bad(&c, J("{'type':'alias','previousId':'x'}"), OMNI_EVENT_FORBIDDEN,
        "type", "alias calls need a server key");

    /* a browser's own anonymousId: a soft alias of its visitor */
    if (good(&b, &c, J("{'type':'page','name':'Home','category':'Shop',"
                       "'anonymousId':'0d3a1f2e-7c55-4f7b-9a8e-3b1c2d4e5f60',"
                       "'context':{'ip':'1.2.3.4','userAgent':'UA',"
                       "'library':{'name':'analytics.js'},"
                       "'traits':{'email':'a@b.c'}}}")))
    {
        is_int(b.events[0].nidents, 2, "browser UUID: visitor + soft");
        is_int(b.events[0].idents[0].kind, OMNI_ALIAS_COOKIE,
               "browser UUID: the visitor is the subject");
        ok(b.events[0].idents[1].soft
           && b.events[0].idents[1].kind == OMNI_ALIAS_ANON,
           "browser UUID: a soft alias");
        x = b.events[0].feed_extra;
        is_str(json_string_value(json_object_get(x, "anonymousId")),
               "0d3a1f2e-7c55-4f7b-9a8e-3b1c2d4e5f60", "feed: as sent");
        is_str(json_string_value(json_object_get(x, "name")), "Home",
               "feed: page name");
        is_str(json_string_value(json_object_get(x, "category")), "Shop",
               "feed: page category");
        x = json_object_get(x, "context");
        ok(json_object_get(x, "ip") == NULL
           && json_object_get(x, "userAgent") != NULL
           && json_object_get(json_object_get(x, "traits"), "email")
              == NULL, "feed: context without ip and email");
        omni_event_batch_free(&b);
    }

    /* its own id as a UUID: nothing more */
    if (good(&b, &c, J("{'type':'page','anonymousId':"
                       "'a0000000-0000-0000-0000-000000000001'}")))
    {
        is_int(b.events[0].nidents, 1, "own id as a UUID: the visitor");
        omni_event_batch_free(&b);
    }

    /* another visitor's id in our own form: still a spoof */
    bad(&c, J("{'type':'page','anonymousId':'%s'}", rep('b', 32)),
        OMNI_EVENT_FORBIDDEN, "anonymousId", "does not match");

    /* any id a server library sends */
    if (good(&b, &s, J("{'type':'page','anonymousId':'anon-42'}"))) {
        is_int(b.events[0].nidents, 1, "server anon-42: one identity");
        is_int(b.events[0].idents[0].kind, OMNI_ALIAS_ANON,
               "server anon-42: as sent");
        omni_event_batch_free(&b);
    }
}


/* ---- the store ---- */


/* Consent (docs/privacy.md): "Consent Updated" and traits.consent. */
static void
test_consent(void)
{
    omni_event_t        *ev;
    omni_event_ctx_t     c;
    omni_event_batch_t   b;

    ctx_client(&c, OMNI_ALIAS_COOKIE, "00112233445566778899aabbccddeeff",
               OMNI_CH_WEB);

    if (good(&b, &c, J("{'type':'track','event':'Consent Updated',"
                       "'properties':{'analytics':true,'personalization':"
                       "true,'ads':false,'cmp':'x'}}")))
    {
        ev = &b.events[0];
        is_int(ev->name_id, OMNI_EVN_CONSENT_UPDATED, "a client may state "
               "its consent");
        ok(ev->has_consent
           && ev->consent_on == (OMNI_CONSENT_ANALYTICS
                                 | OMNI_CONSENT_PERSONALIZE)
           && ev->consent_off == OMNI_CONSENT_ADS,
           "granted and refused per purpose, other keys passed over");
        omni_event_batch_free(&b);
    }

    if (good(&b, &c, J("{'type':'identify','traits':{'consent':"
                       "{'marketing':false,'sms':1},'first_name':'Ana'}}")))
    {
        ev = &b.events[0];
        ok(ev->has_consent && ev->consent_off == OMNI_CONSENT_ADS
           && ev->consent_on == OMNI_CONSENT_SMS,
           "identify traits.consent from a client: marketing = ads");
        ok(ev->ntraits == 1, "consent is no attribute");
        omni_event_batch_free(&b);
    }

    bad(&c, J("{'type':'track','event':'Consent Updated','properties':"
              "{'ads':'yes'}}"), OMNI_INVALID, "properties.ads",
        "true or false");
    bad(&c, J("{'type':'track','event':'Consent Updated','properties':"
              "{'cmp':'x'}}"), OMNI_INVALID, "properties", "no purpose");
    bad(&c, J("{'type':'track','event':'Consent Updated'}"), OMNI_INVALID,
        "properties", "needs properties");
    bad(&c, J("{'type':'identify','traits':{'consent':true}}"),
        OMNI_INVALID, "traits.consent", "expected an object");

    if (good(&b, &c, J("{'type':'track','event':'Signed Out'}"))) {
        is_int(b.events[0].name_id, OMNI_EVN_SIGNED_OUT,
               "a client may sign itself out");
        omni_event_batch_free(&b);
    }

    ctx_server(&c);
    bad(&c, J("{'type':'track','event':'Signed Out','userId':'C1'}"),
        OMNI_INVALID, "anonymousId", "browser or device");
}


int
main(void)
{
    test_segment();
    test_time();
    test_bodies();
    test_depth();
    test_invalid();
    test_parse_direct();
    test_trust();
    test_fields();
    test_channels();
    test_email();
    test_consent();
    is_str(omni_event_status_name(OMNI_EVENT_ACCEPTED), "accepted",
           "status name: accepted");
    is_str(omni_event_status_name(OMNI_EVENT_DUPLICATE), "duplicate",
           "status name: duplicate");
    is_str(omni_event_status_name(-1), "failed", "status name: failed");

    return done_testing();
}
