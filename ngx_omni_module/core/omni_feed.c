/*
 * The touchpoint feed: record building (in the module's writer thread)
 * and line formatting (shared by the omni_feed endpoint and omnictl).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>

#include "omni_feed.h"


/* A JSON string from bytes that may not be UTF-8 (request headers). */
static json_t *
omni_feed_str(const char *s, size_t len)
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
omni_feed_set(json_t *obj, const char *key, const char *s, size_t len)
{
    json_t  *j;

    if (s == NULL || len == 0) {
        return 0;
    }

    j = omni_feed_str(s, len);
    if (j == NULL) {
        return -1;
    }

    return json_object_set_new(obj, key, j);
}


/* A comma-separated list as a JSON array of strings. */
static json_t *
omni_feed_list(const char *s, size_t len)
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
            j = omni_feed_str(s, n);
            if (j == NULL || json_array_append_new(a, j) != 0) {
                json_decref(a);
                return NULL;
            }
        }

        s += n + 1;
    }

    return a;
}


char *
omni_feed_record(const omni_touch_t *t, const unsigned char *pid,
    size_t *len)
{
    int          rc;
    char        *out;
    char         ts[32], vid[OMNI_ID_HEX_LEN + 1], prof[OMNI_ID_HEX_LEN + 1];
    json_t      *root, *props, *ctx;
    time_t       tt;
    struct tm    tm;
    const char  *type, *event;

    /* Segment call types: a web request is a page view, an app's a
       screen view; any other channel is an API request. */
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

    rc |= omni_feed_set(props, "path", t->path, t->path_len);
    rc |= omni_feed_set(props, "referrer", t->referrer, t->referrer_len);
    rc |= omni_feed_set(props, "utm_source", t->utm[0], t->utm_len[0]);
    rc |= omni_feed_set(props, "utm_medium", t->utm[1], t->utm_len[1]);
    rc |= omni_feed_set(props, "utm_campaign", t->utm[2], t->utm_len[2]);

    rc |= json_object_set_new(ctx, "campaigns",
                              omni_feed_list(t->campaigns, t->campaigns_len));
    rc |= json_object_set_new(ctx, "rules",
                              omni_feed_list(t->rules, t->rules_len));
    rc |= omni_feed_set(ctx, "country", t->country, strlen(t->country));

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


size_t
omni_feed_line(uint64_t seq, const void *data, size_t len, char *out,
    size_t cap)
{
    int          n;
    size_t       need, rest;
    char         head[80];
    const char  *d = data;

    /* The record's members follow the cursor, after its opening '{'. */
    if (len >= 2 && d[0] == '{' && d[1] != '}') {
        n = snprintf(head, sizeof(head),
                     "{\"seq\":%llu,\"messageId\":\"tp-%llu\",",
                     (unsigned long long) seq, (unsigned long long) seq);
        d++;
        rest = len - 1;

    } else {
        n = snprintf(head, sizeof(head),
                     "{\"seq\":%llu,\"messageId\":\"tp-%llu\"}",
                     (unsigned long long) seq, (unsigned long long) seq);
        rest = 0;
    }

    need = (size_t) n + rest + 1;

    if (need <= cap) {
        memcpy(out, head, (size_t) n);
        memcpy(out + n, d, rest);
        out[need - 1] = '\n';
    }

    return need;
}
