/*
 * Unit tests of omni_feed.c: the feed line (seq and messageId spliced
 * into the stored record, the size protocol) and the record built from a
 * touch (Segment shape, escaping, invalid UTF-8, empty fields left out).
 */

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "omni_tap.h"
#include "omni_feed.h"


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


int
main(void)
{
    test_line();
    test_record();

    return done_testing();
}
