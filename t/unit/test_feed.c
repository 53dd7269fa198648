/*
 * Unit tests of omni_feed.c: the feed line (seq and messageId spliced
 * into the stored record, the size protocol) and the record built from a
 * touch (Segment shape, escaping, invalid UTF-8, empty fields left out).
 *
 * omni_feed_record() used to build the record with jansson; it now
 * writes the bytes itself.  The jansson version is kept here as the
 * reference: random touches (hostile strings included) must give
 * byte-identical records, so touchpoints stored before and after the
 * change read alike.  A micro-benchmark of both prints as a TAP comment.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "omni_tap.h"
#include "omni_feed.h"


/* ---- the reference: the jansson implementation, as it was ---- */

/* A JSON string from bytes that may not be UTF-8 (request headers). */
static json_t *
ref_feed_str(const char *s, size_t len)
{
    char    *copy;
    size_t   i;
    json_t  *j;

    j = json_stringn(s, len);
    if (j != NULL) {
        return j;
    }

    copy = malloc(len + 1);
    if (copy == NULL) {
        return NULL;
    }

    for (i = 0; i < len; i++) {
        copy[i] = ((unsigned char) s[i] >= 0x80 || s[i] == '\0') ? '?' : s[i];
    }

    j = json_stringn(copy, len);
    free(copy);

    return j;
}


/* Sets key to the string when it is not empty; 0 on success. */
static int
ref_feed_set(json_t *obj, const char *key, const char *s, size_t len)
{
    json_t  *j;

    if (s == NULL || len == 0) {
        return 0;
    }

    j = ref_feed_str(s, len);
    if (j == NULL) {
        return -1;
    }

    return json_object_set_new(obj, key, j);
}


/* A comma-separated list as a JSON array of strings. */
static json_t *
ref_feed_list(const char *s, size_t len)
{
    size_t       n;
    json_t      *a, *j;
    const char  *end, *comma;

    a = json_array();
    if (a == NULL || s == NULL) {
        return a;
    }

    end = s + len;

    while (s < end) {
        comma = memchr(s, ',', (size_t) (end - s));
        n = (size_t) ((comma ? comma : end) - s);

        if (n > 0) {
            j = ref_feed_str(s, n);
            if (j == NULL || json_array_append_new(a, j) != 0) {
                json_decref(a);
                return NULL;
            }
        }

        s += n + 1;
    }

    return a;
}


static char *
ref_feed_record(const omni_touch_t *t, const unsigned char *pid,
    size_t *len)
{
    int          rc;
    char        *out;
    char         ts[32], vid[OMNI_ID_HEX_LEN + 1], prof[OMNI_ID_HEX_LEN + 1];
    json_t      *root, *props, *ctx;
    time_t       tt;
    struct tm    tm;
    const char  *type, *event;

    switch (t->channel) {
    case OMNI_CH_WEB:
        type = "page";
        event = "Page Viewed";
        break;
    case OMNI_CH_APP:
        type = "screen";
        event = "Screen Viewed";
        break;
    default:
        type = "track";
        event = "API Request";
        break;
    }

    tt = (time_t) t->time;
    gmtime_r(&tt, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);

    omni_id_hex(t->id, vid);
    omni_id_hex(pid, prof);

    root = json_object();
    props = json_object();
    ctx = json_object();

    if (root == NULL || props == NULL || ctx == NULL) {
        goto failed;
    }

    rc = json_object_set_new(root, "type", json_string(type));
    rc |= json_object_set_new(root, "event", json_string(event));
    rc |= json_object_set_new(root, "timestamp", json_string(ts));
    rc |= json_object_set_new(root, "anonymousId", json_string(vid));
    rc |= json_object_set_new(root, "profileId", json_string(prof));
    rc |= json_object_set_new(root, "channel",
                              json_string(omni_channel_name(t->channel)));

    rc |= ref_feed_set(props, "path", t->path, t->path_len);
    rc |= ref_feed_set(props, "referrer", t->referrer, t->referrer_len);
    rc |= ref_feed_set(props, "utm_source", t->utm[0], t->utm_len[0]);
    rc |= ref_feed_set(props, "utm_medium", t->utm[1], t->utm_len[1]);
    rc |= ref_feed_set(props, "utm_campaign", t->utm[2], t->utm_len[2]);

    rc |= json_object_set_new(ctx, "campaigns",
                              ref_feed_list(t->campaigns, t->campaigns_len));
    rc |= json_object_set_new(ctx, "rules",
                              ref_feed_list(t->rules, t->rules_len));
    rc |= ref_feed_set(ctx, "country", t->country, strlen(t->country));

    if (rc != 0) {
        goto failed;
    }

    rc = json_object_set_new(root, "properties", props);
    props = NULL;
    rc |= json_object_set_new(root, "context", ctx);
    ctx = NULL;

    if (rc != 0) {
        goto failed;
    }

    out = json_dumps(root, JSON_COMPACT|JSON_PRESERVE_ORDER);
    json_decref(root);

    if (out != NULL) {
        *len = strlen(out);
    }

    return out;

failed:

    json_decref(root);
    json_decref(props);
    json_decref(ctx);

    return NULL;
}


static void
test_line(void)
{
    char         out[128];
    size_t       n;
    const char  *rec = "{\"type\":\"page\"}";

    n = omni_feed_line(42, rec, strlen(rec), NULL, 0);
    is_int((int) n, (int) strlen("{\"seq\":42,\"messageId\":\"tp-42\","
                                 "\"type\":\"page\"}\n"),
           "the size is returned when nothing fits");

    memset(out, 'x', sizeof(out));
    n = omni_feed_line(42, rec, strlen(rec), out, sizeof(out));
    out[n] = '\0';
    is_str(out, "{\"seq\":42,\"messageId\":\"tp-42\",\"type\":\"page\"}\n",
           "seq and messageId lead the record's members");

    n = omni_feed_line(7, "{}", 2, out, sizeof(out));
    out[n] = '\0';
    is_str(out, "{\"seq\":7,\"messageId\":\"tp-7\"}\n", "an empty record");

    memset(out, 'x', sizeof(out));
    n = omni_feed_line(42, rec, strlen(rec), out, 10);
    ok(n > 10 && out[0] == 'x', "a short buffer is left untouched");

    n = omni_feed_line(18446744073709551615ULL, "{}", 2, out, sizeof(out));
    out[n] = '\0';
    is_str(out, "{\"seq\":18446744073709551615,"
           "\"messageId\":\"tp-18446744073709551615\"}\n", "the largest seq");
}


static void
test_record(void)
{
    char           *s;
    size_t          len;
    json_t         *j;
    json_error_t    e;
    omni_touch_t    t;
    unsigned char   pid[OMNI_ID_LEN];

    memset(&t, 0, sizeof(t));
    memset(t.id, 0xab, OMNI_ID_LEN);
    memset(pid, 0x01, OMNI_ID_LEN);
    t.channel = OMNI_CH_WEB;
    t.time = 1795526405;                  /* 2026-11-24T13:20:05Z */
    t.path = "/a\"b";
    t.path_len = 4;
    t.referrer = "http://x/\xff";         /* not UTF-8 */
    t.referrer_len = 10;
    t.utm[2] = "spring";
    t.utm_len[2] = 6;
    t.campaigns = "c1,c2";
    t.campaigns_len = 5;
    t.rules = "r1";
    t.rules_len = 2;
    memcpy(t.country, "PT", 3);

    s = omni_feed_record(&t, pid, &len);
    ok(s != NULL && len == strlen(s), "a record");

    j = json_loadb(s, len, 0, &e);
    ok(j != NULL, "valid JSON: %s", s);

    is_str(json_string_value(json_object_get(j, "type")), "page", "type");
    is_str(json_string_value(json_object_get(j, "event")), "Page Viewed",
           "event");
    is_str(json_string_value(json_object_get(j, "timestamp")),
           "2026-11-24T13:20:05Z", "timestamp");
    is_str(json_string_value(json_object_get(j, "anonymousId")),
           "abababababababababababababababab", "anonymousId");
    is_str(json_string_value(json_object_get(j, "profileId")),
           "01010101010101010101010101010101", "profileId");
    is_str(json_string_value(json_object_get(j, "channel")), "web",
           "channel");
    is_str(json_string_value(json_object_get(
               json_object_get(j, "properties"), "path")), "/a\"b",
           "path escaped");
    is_str(json_string_value(json_object_get(
               json_object_get(j, "properties"), "referrer")), "http://x/?",
           "invalid UTF-8 replaced");
    ok(json_object_get(json_object_get(j, "properties"), "utm_source")
       == NULL, "absent utm_source left out");
    is_str(json_string_value(json_object_get(
               json_object_get(j, "properties"), "utm_campaign")), "spring",
           "utm_campaign");
    is_int((int) json_array_size(json_object_get(
               json_object_get(j, "context"), "campaigns")), 2, "campaigns");
    is_str(json_string_value(json_array_get(json_object_get(
               json_object_get(j, "context"), "rules"), 0)), "r1", "rules");
    is_str(json_string_value(json_object_get(
               json_object_get(j, "context"), "country")), "PT", "country");

    json_decref(j);
    free(s);

    t.channel = OMNI_CH_APP;
    t.country[0] = '\0';
    s = omni_feed_record(&t, pid, &len);
    j = json_loadb(s, len, 0, &e);
    is_str(json_string_value(json_object_get(j, "type")), "screen",
           "app: a screen");
    ok(json_object_get(json_object_get(j, "context"), "country") == NULL,
       "no country when unknown");
    json_decref(j);
    free(s);

    t.channel = OMNI_CH_EMAIL;
    s = omni_feed_record(&t, pid, &len);
    j = json_loadb(s, len, 0, &e);
    is_str(json_string_value(json_object_get(j, "type")), "track",
           "other channels: track");
    is_str(json_string_value(json_object_get(j, "event")), "API Request",
           "other channels: API Request");
    json_decref(j);
    free(s);
}


/* ---- differential tests against the reference ---- */

static uint64_t  rnd_state = 0x9e3779b97f4a7c15ULL;


/* xorshift64*: reproducible, so a failure can be replayed. */
static uint32_t
rnd(void)
{
    rnd_state ^= rnd_state >> 12;
    rnd_state ^= rnd_state << 25;
    rnd_state ^= rnd_state >> 27;

    return (uint32_t) ((rnd_state * 0x2545f4914f6cdd1dULL) >> 32);
}


typedef struct {
    const char  *s;
    size_t       len;
} piece_t;

#define P(s)  { s, sizeof(s) - 1 }

/* What the escaper must tell apart. */
static const piece_t  ascii_pieces[] = {
    P("a"), P("Z"), P("0"), P(" "), P("/"), P("?"), P("~"), P("\x7f"),
    P(","), P(",,"), P("\""), P("\\"), P("\\u0041"), P("\0"),
    P("\b"), P("\f"), P("\n"), P("\r"), P("\t"), P("\x01"), P("\x1f"),
    P("\x0b"), P("\x1b")
};

/* Valid UTF-8 at the bounds of each sequence length. */
static const piece_t  valid_pieces[] = {
    P("\xc2\x80"), P("\xc3\xa9"), P("\xdf\xbf"), P("\xe0\xa0\x80"),
    P("\xe2\x82\xac"), P("\xed\x9f\xbf"), P("\xee\x80\x80"),
    P("\xef\xbf\xbf"), P("\xf0\x90\x80\x80"), P("\xf0\x9f\x98\x80"),
    P("\xf4\x8f\xbf\xbf")
};

/*
 * Invalid: stray continuations, overlong forms, surrogates, past
 * U+10FFFF, bytes that never start a sequence, truncated sequences.
 */
static const piece_t  invalid_pieces[] = {
    P("\x80"), P("\xbf"), P("\xc0\x80"), P("\xc1\xbf"),
    P("\xe0\x80\x80"), P("\xe0\x9f\xbf"), P("\xed\xa0\x80"),
    P("\xed\xbf\xbf"), P("\xf0\x80\x80\x80"), P("\xf0\x8f\xbf\xbf"),
    P("\xf4\x90\x80\x80"), P("\xf5\x80\x80\x80"), P("\xf8"), P("\xff"),
    P("\xc3"), P("\xe2\x82"), P("\xf0\x9f\x98"), P("\xc3\x41"),
    P("\xe2\x28\xa1")
};

#undef P

#define NELTS(a)  (sizeof(a) / sizeof((a)[0]))


/*
 * A random string into buf (at most cap bytes) of up to maxparts parts:
 * printable runs, special ASCII, valid and (rarely: about one string in
 * three has one) invalid UTF-8.
 */
static size_t
rnd_string(char *buf, size_t cap, unsigned maxparts)
{
    size_t          len, n;
    unsigned        i, parts, k, r;
    const piece_t  *pc;

    len = 0;
    parts = rnd() % (maxparts + 1);

    for (i = 0; i < parts; i++) {
        r = rnd() % 100;

        if (r < 60) {
            n = 1 + rnd() % 8;

            for (k = 0; k < n && len < cap; k++) {
                buf[len++] = (char) (0x20 + rnd() % 0x5f);
            }

            continue;
        }

        if (r < 80) {
            pc = &ascii_pieces[rnd() % NELTS(ascii_pieces)];

        } else if (r < 97) {
            pc = &valid_pieces[rnd() % NELTS(valid_pieces)];

        } else {
            pc = &invalid_pieces[rnd() % NELTS(invalid_pieces)];
        }

        if (len + pc->len <= cap) {
            memcpy(buf + len, pc->s, pc->len);
            len += pc->len;
        }
    }

    return len;
}


/* A random touch; the strings live in bufs[]. */
static void
rnd_touch(omni_touch_t *t, unsigned char *pid, char bufs[8][512])
{
    unsigned     i;
    const char  *s[8];
    size_t       len[8];

    memset(t, 0, sizeof(omni_touch_t));

    for (i = 0; i < OMNI_ID_LEN; i++) {
        t->id[i] = (unsigned char) rnd();
        pid[i] = (unsigned char) rnd();
    }

    t->kind = OMNI_ALIAS_COOKIE;

    /* now and then a channel without a name: no record from either */
    t->channel = rnd() % 50 == 0 ? OMNI_CH_MAX + rnd() % 3
                                 : rnd() % OMNI_CH_MAX;

    switch (rnd() % 8) {
    case 0:
        t->time = 0;
        break;
    case 1:
        t->time = UINT32_MAX - rnd() % 100000;
        break;
    default:
        t->time = rnd();
        break;
    }

    for (i = 0; i < 8; i++) {
        len[i] = rnd_string(bufs[i], 512, i < 5 ? 12 : 24);
        s[i] = bufs[i];

        /* absent strings, and NULL with a length (left out as well) */
        switch (rnd() % 10) {
        case 0:
            s[i] = NULL;
            len[i] = 0;
            break;
        case 1:
            s[i] = NULL;
            break;
        case 2:
            len[i] = 0;
            break;
        }
    }

    t->path = s[0];
    t->path_len = len[0];
    t->referrer = s[1];
    t->referrer_len = len[1];

    for (i = 0; i < 3; i++) {
        t->utm[i] = s[2 + i];
        t->utm_len[i] = len[2 + i];
    }

    t->campaigns = s[5];
    t->campaigns_len = len[5];
    t->rules = s[6];
    t->rules_len = len[6];

    /* any 0 to 2 bytes, NUL-terminated */
    if (rnd() % 3) {
        t->country[0] = (char) (rnd() % 3 ? 'A' + rnd() % 26 : rnd());
        t->country[1] = t->country[0] ? (char) rnd() : '\0';
        t->country[2] = '\0';
    }
}


/* Whether both give the same record; prints the first difference. */
static int
same_record(const omni_touch_t *t, const unsigned char *pid, int verbose)
{
    int     same;
    char   *a, *b;
    size_t  alen, blen;

    alen = blen = 0;
    a = ref_feed_record(t, pid, &alen);
    b = omni_feed_record(t, pid, &blen);

    same = (a == NULL && b == NULL)
           || (a != NULL && b != NULL && alen == blen
               && memcmp(a, b, alen) == 0);

    if (!same && verbose) {
        printf("#   jansson: %s\n#   direct:  %s\n", a ? a : "(null)",
               b ? b : "(null)");
    }

    free(a);
    free(b);

    return same;
}


/* Whether jansson takes the bytes as UTF-8 (the reference's check). */
static int
is_utf8(const char *s, size_t len)
{
    json_t  *j;

    if (s == NULL || len == 0) {
        return 1;
    }

    j = json_stringn(s, len);
    json_decref(j);

    return j != NULL;
}


static void
test_differential(void)
{
    int             bad, nulls, invalid;
    char            bufs[8][512];
    unsigned        i;
    omni_touch_t    t;
    unsigned char   pid[OMNI_ID_LEN];

    bad = 0;
    nulls = 0;
    invalid = 0;

    for (i = 0; i < 20000; i++) {
        rnd_touch(&t, pid, bufs);
        nulls += t.channel >= OMNI_CH_MAX;
        invalid += !is_utf8(t.path, t.path_len)
                   || !is_utf8(t.referrer, t.referrer_len);

        if (!same_record(&t, pid, bad == 0)) {
            if (bad++ == 0) {
                printf("#   touch %u differs\n", i);
            }
        }
    }

    is_int(bad, 0, "20000 random touches: records identical to jansson's");
    ok(nulls > 0, "unnamed channels covered (%d)", nulls);
    ok(invalid > 1000 && invalid < 19000,
       "valid and invalid UTF-8 covered (%d invalid)", invalid);
}


/* Every control byte, alone and inside valid and invalid UTF-8. */
static void
test_differential_bytes(void)
{
    int             bad;
    char            s[8];
    unsigned        c;
    omni_touch_t    t;
    unsigned char   pid[OMNI_ID_LEN];

    memset(&t, 0, sizeof(t));
    memset(pid, 0x5a, sizeof(pid));
    bad = 0;

    for (c = 0; c < 256; c++) {
        s[0] = 'x';
        s[1] = (char) c;
        s[2] = '\xc3';
        s[3] = '\xa9';
        s[4] = (char) c;

        t.path = s;
        t.path_len = 5;
        t.referrer = s + 1;
        t.referrer_len = 1;
        t.rules = s;
        t.rules_len = 4;
        t.country[0] = (char) c;
        t.country[1] = '\0';

        bad += !same_record(&t, pid, bad == 0);
    }

    is_int(bad, 0, "every byte value: records identical to jansson's");
}


/* The timestamp over the whole u32 range, against gmtime_r + strftime. */
static void
test_timestamps(void)
{
    int            bad;
    char          *s, want[32], got[32];
    size_t         len;
    time_t         tt;
    uint64_t       tm64;
    struct tm      tm;
    omni_touch_t   t;
    unsigned char  pid[OMNI_ID_LEN];

    memset(&t, 0, sizeof(t));
    memset(pid, 0, sizeof(pid));
    bad = 0;

    /* a step just above a day walks every day and time of day drifts */
    for (tm64 = 0; tm64 <= UINT32_MAX; tm64 += 86400 + 3607) {
        t.time = (uint32_t) tm64;
        tt = (time_t) t.time;
        gmtime_r(&tt, &tm);
        strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%SZ", &tm);

        s = omni_feed_record(&t, pid, &len);
        got[0] = '\0';

        if (s != NULL && strstr(s, "\"timestamp\":\"")) {
            memcpy(got, strstr(s, "\"timestamp\":\"") + 13, 20);
            got[20] = '\0';
        }

        if (strcmp(got, want) != 0 && bad++ == 0) {
            printf("#   %u: got %s, want %s\n", t.time, got, want);
        }

        free(s);
    }

    t.time = UINT32_MAX;
    s = omni_feed_record(&t, pid, &len);
    ok(s && strstr(s, "\"2106-02-07T06:28:15Z\""), "the last u32 second");
    free(s);

    is_int(bad, 0, "timestamps match gmtime_r + strftime");
}


/* ---- micro-benchmark (reported, never asserted) ---- */

/* CPU time: steadier than wall time on a shared machine. */
static double
now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);

    return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}


static void
bench_record(void)
{
    char           *s;
    size_t          len, bytes;
    unsigned        i, n;
    double          t0, ref_ns, new_ns;
    omni_touch_t    t;
    unsigned char   pid[OMNI_ID_LEN];

    /* a typical web touch: path, referrer, one campaign shown */
    memset(&t, 0, sizeof(t));
    memset(t.id, 0xab, OMNI_ID_LEN);
    memset(pid, 0x01, OMNI_ID_LEN);
    t.kind = OMNI_ALIAS_COOKIE;
    t.channel = OMNI_CH_WEB;
    t.time = 1795526405;
    t.path = "/products/running-shoes/1234";
    t.path_len = strlen(t.path);
    t.referrer = "https://www.example.com/search?q=shoes";
    t.referrer_len = strlen(t.referrer);
    t.utm[0] = "newsletter";
    t.utm_len[0] = strlen(t.utm[0]);
    t.campaigns = "spring-sale,free-shipping";
    t.campaigns_len = strlen(t.campaigns);
    t.rules = "r12,r40";
    t.rules_len = strlen(t.rules);
    memcpy(t.country, "PT", 3);

    n = 20000;
    bytes = 0;

    t0 = now_ns();

    for (i = 0; i < n; i++) {
        t.time++;
        s = ref_feed_record(&t, pid, &len);
        bytes += len;
        free(s);
    }

    ref_ns = (now_ns() - t0) / n;

    t0 = now_ns();

    for (i = 0; i < n * 5; i++) {
        t.time++;
        s = omni_feed_record(&t, pid, &len);
        bytes += len;
        free(s);
    }

    new_ns = (now_ns() - t0) / (n * 5);

    printf("# feed record build: jansson %.0f ns/op, direct %.0f ns/op "
           "(%.1fx, %zu bytes)\n", ref_ns, new_ns, ref_ns / new_ns,
           len);
    ok(bytes > 0, "benchmark ran");
}


int
main(void)
{
    test_line();
    test_record();
    test_differential();
    test_differential_bytes();
    test_timestamps();
    bench_record();

    return done_testing();
}
