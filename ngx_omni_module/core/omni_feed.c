/*
 * The touchpoint feed: record building (in the module's writer thread)
 * and line formatting (shared by the omni_feed endpoint and omnictl).
 *
 * The record is written byte by byte into one buffer sized for the worst
 * case up front: no JSON library, one allocation.  The bytes are exactly
 * what jansson's json_dumps(JSON_COMPACT|JSON_PRESERVE_ORDER) printed for
 * the same record before (t/unit/test_feed.c keeps that implementation
 * and compares both on random touches), so stored and new touchpoints
 * read alike.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omni_feed.h"


/*
 * A string escapes to at most 6 bytes per input byte ("\u001F"); a list
 * item adds 2 quotes and a comma, and is at least 1 byte long.  Longer
 * strings than OMNI_FEED_LEN_MAX (never seen: the writer cuts them to a
 * few hundred bytes) make no record, so the size cannot overflow.
 */
#define OMNI_FEED_ESC_MAX    6
#define OMNI_FEED_ITEM_MAX   (OMNI_FEED_ESC_MAX + 3)
#define OMNI_FEED_LEN_MAX    (SIZE_MAX / 128)

/*
 * Everything but the strings of the touch: keys, punctuation, the
 * longest type, event and channel names, the timestamp and both ids.
 */
#define OMNI_FEED_FIXED      512


static const char  omni_feed_hex[] = "0123456789ABCDEF";


/*
 * Whether s is valid UTF-8 by jansson's rules (utf8_check_string(), so
 * that the old and new records agree): no overlong forms, no surrogates,
 * nothing above U+10FFFF.  NUL is valid.
 */
static int
omni_feed_utf8_valid(const unsigned char *s, size_t len)
{
    size_t    i, n, k;
    uint32_t  c, v;

    for (i = 0; i < len; i++) {
        c = s[i];

        if (c < 0x80) {
            continue;
        }

        if (c < 0xc2) {
            /* a continuation byte, or an overlong 2-byte lead */
            return 0;
        }

        if (c <= 0xdf) {
            n = 2;
            v = c & 0x1f;

        } else if (c <= 0xef) {
            n = 3;
            v = c & 0x0f;

        } else if (c <= 0xf4) {
            n = 4;
            v = c & 0x07;

        } else {
            return 0;
        }

        if (n > len - i) {
            return 0;
        }

        for (k = 1; k < n; k++) {
            c = s[i + k];

            if (c < 0x80 || c > 0xbf) {
                return 0;
            }

            v = (v << 6) | (c & 0x3f);
        }

        if (v > 0x10ffff
            || (v >= 0xd800 && v <= 0xdfff)
            || (n == 3 && v < 0x800)
            || (n == 4 && v < 0x10000))
        {
            return 0;
        }

        i += n - 1;
    }

    return 1;
}


/*
 * A JSON string (quotes included) from bytes that may not be UTF-8
 * (request headers): a string that is not valid UTF-8 as a whole has
 * every byte above 0x7f and every NUL replaced with '?'.  Escapes are
 * jansson's: \" \\ \b \f \n \r \t, other control characters \u00XX.
 */
static char *
omni_feed_str(char *p, const char *s, size_t len)
{
    int                   valid;
    size_t                i;
    unsigned char         c;
    const unsigned char  *u;

    u = (const unsigned char *) s;

    *p++ = '"';

    /* The usual string is printable ASCII: copied as it is. */
    for (i = 0; i < len; i++) {
        c = u[i];

        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') {
            break;
        }

        *p++ = (char) c;
    }

    if (i == len) {
        *p++ = '"';
        return p;
    }

    /* What was copied is ASCII: the same whether the rest is valid. */
    valid = omni_feed_utf8_valid(u + i, len - i);

    for ( /* void */ ; i < len; i++) {
        c = u[i];

        if (!valid && (c >= 0x80 || c == '\0')) {
            c = '?';
        }

        if (c >= 0x20 && c != '"' && c != '\\') {
            *p++ = (char) c;
            continue;
        }

        *p++ = '\\';

        switch (c) {
        case '"':
        case '\\':
            *p++ = (char) c;
            break;
        case '\b':
            *p++ = 'b';
            break;
        case '\f':
            *p++ = 'f';
            break;
        case '\n':
            *p++ = 'n';
            break;
        case '\r':
            *p++ = 'r';
            break;
        case '\t':
            *p++ = 't';
            break;
        default:
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = omni_feed_hex[c >> 4];
            *p++ = omni_feed_hex[c & 0xf];
            break;
        }
    }

    *p++ = '"';

    return p;
}


static char *
omni_feed_cpy(char *p, const char *s, size_t len)
{
    memcpy(p, s, len);
    return p + len;
}


#define omni_feed_lit(p, s)  omni_feed_cpy(p, s, sizeof(s) - 1)


/*
 * Member "key":"value" of an object, only when the value is not empty;
 * *first tells whether a comma goes before it.
 */
static char *
omni_feed_member(char *p, int *first, const char *key, size_t klen,
    const char *s, size_t len)
{
    if (s == NULL || len == 0) {
        return p;
    }

    if (!*first) {
        *p++ = ',';
    }

    *first = 0;

    *p++ = '"';
    p = omni_feed_cpy(p, key, klen);
    *p++ = '"';
    *p++ = ':';

    return omni_feed_str(p, s, len);
}


/* A comma-separated list as an array of its non-empty items. */
static char *
omni_feed_list(char *p, const char *s, size_t len)
{
    int          first;
    size_t       n;
    const char  *end, *comma;

    *p++ = '[';

    if (s != NULL) {
        first = 1;
        end = s + len;

        while (s < end) {
            comma = memchr(s, ',', (size_t) (end - s));
            n = (size_t) ((comma ? comma : end) - s);

            if (n > 0) {
                if (!first) {
                    *p++ = ',';
                }

                first = 0;
                p = omni_feed_str(p, s, n);
            }

            s += n + 1;
        }
    }

    *p++ = ']';

    return p;
}


/* Two decimal digits of v < 100. */
static char *
omni_feed_2d(char *p, unsigned v)
{
    *p++ = (char) ('0' + v / 10);
    *p++ = (char) ('0' + v % 10);

    return p;
}


/*
 * The touch time as "%Y-%m-%dT%H:%M:%SZ" in UTC, without gmtime_r() and
 * strftime(): the proleptic Gregorian date of a day count (H. Hinnant's
 * days_from_civil inverse).  A u32 time is at most 2106: four digits.
 */
static char *
omni_feed_time(char *p, uint32_t t)
{
    uint32_t  days, secs, era, doe, yoe, doy, mp, d, m, y;

    days = t / 86400;
    secs = t % 86400;

    /* days since 0000-03-01 */
    days += 719468;
    era = days / 146097;
    doe = days - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += (m <= 2);

    p = omni_feed_2d(p, y / 100);
    p = omni_feed_2d(p, y % 100);
    *p++ = '-';
    p = omni_feed_2d(p, m);
    *p++ = '-';
    p = omni_feed_2d(p, d);
    *p++ = 'T';
    p = omni_feed_2d(p, secs / 3600);
    *p++ = ':';
    p = omni_feed_2d(p, secs / 60 % 60);
    *p++ = ':';
    p = omni_feed_2d(p, secs % 60);
    *p++ = 'Z';

    return p;
}


/* Lowercase hex of an id, as omni_id_hex(). */
static char *
omni_feed_id(char *p, const unsigned char *id)
{
    static const char  hex[] = "0123456789abcdef";
    unsigned           i;

    for (i = 0; i < OMNI_ID_LEN; i++) {
        *p++ = hex[id[i] >> 4];
        *p++ = hex[id[i] & 0xf];
    }

    return p;
}


/* Adds a string's length to the worst-case size; -1 when too long. */
static int
omni_feed_size(size_t *max, const char *s, size_t len, size_t per_byte)
{
    if (s == NULL) {
        return 0;
    }

    if (len > OMNI_FEED_LEN_MAX) {
        return -1;
    }

    *max += len * per_byte;

    return 0;
}


char *
omni_feed_record(const omni_touch_t *t, const unsigned char *pid,
    size_t *len)
{
    int          first, rc;
    char        *out, *p;
    size_t       max, clen;
    const char  *head, *channel;

    /* Segment call types: a web request is a page view, an app's a
       screen view; any other channel is an API request. */
    switch (t->channel) {
    case OMNI_CH_WEB:
        head = "{\"type\":\"page\",\"event\":\"Page Viewed\"";
        break;
    case OMNI_CH_APP:
        head = "{\"type\":\"screen\",\"event\":\"Screen Viewed\"";
        break;
    default:
        head = "{\"type\":\"track\",\"event\":\"API Request\"";
        break;
    }

    /* A channel without a name made no record with jansson either. */
    channel = omni_channel_name(t->channel);
    if (channel == NULL) {
        return NULL;
    }

    clen = strnlen(t->country, sizeof(t->country));

    max = OMNI_FEED_FIXED + clen * OMNI_FEED_ESC_MAX;
    rc = omni_feed_size(&max, t->path, t->path_len, OMNI_FEED_ESC_MAX);
    rc |= omni_feed_size(&max, t->referrer, t->referrer_len,
                         OMNI_FEED_ESC_MAX);
    rc |= omni_feed_size(&max, t->utm[0], t->utm_len[0], OMNI_FEED_ESC_MAX);
    rc |= omni_feed_size(&max, t->utm[1], t->utm_len[1], OMNI_FEED_ESC_MAX);
    rc |= omni_feed_size(&max, t->utm[2], t->utm_len[2], OMNI_FEED_ESC_MAX);
    rc |= omni_feed_size(&max, t->campaigns, t->campaigns_len,
                         OMNI_FEED_ITEM_MAX);
    rc |= omni_feed_size(&max, t->rules, t->rules_len, OMNI_FEED_ITEM_MAX);

    if (rc != 0) {
        return NULL;
    }

    out = malloc(max);
    if (out == NULL) {
        return NULL;
    }

    p = omni_feed_cpy(out, head, strlen(head));
    p = omni_feed_lit(p, ",\"timestamp\":\"");
    p = omni_feed_time(p, t->time);
    p = omni_feed_lit(p, "\",\"anonymousId\":\"");
    p = omni_feed_id(p, t->id);
    p = omni_feed_lit(p, "\",\"profileId\":\"");
    p = omni_feed_id(p, pid);
    p = omni_feed_lit(p, "\",\"channel\":\"");
    p = omni_feed_cpy(p, channel, strlen(channel));

    /* Members with an empty value are left out. */
    p = omni_feed_lit(p, "\",\"properties\":{");
    first = 1;
    p = omni_feed_member(p, &first, "path", 4, t->path, t->path_len);
    p = omni_feed_member(p, &first, "referrer", 8, t->referrer,
                         t->referrer_len);
    p = omni_feed_member(p, &first, "utm_source", 10, t->utm[0],
                         t->utm_len[0]);
    p = omni_feed_member(p, &first, "utm_medium", 10, t->utm[1],
                         t->utm_len[1]);
    p = omni_feed_member(p, &first, "utm_campaign", 12, t->utm[2],
                         t->utm_len[2]);

    p = omni_feed_lit(p, "},\"context\":{\"campaigns\":");
    p = omni_feed_list(p, t->campaigns, t->campaigns_len);
    p = omni_feed_lit(p, ",\"rules\":");
    p = omni_feed_list(p, t->rules, t->rules_len);
    first = 0;
    p = omni_feed_member(p, &first, "country", 7, t->country, clen);

    /* downstream tools must honour it too (docs/privacy.md) */
    if (t->privacy == OMNI_PRIVACY_GPC) {
        p = omni_feed_lit(p, ",\"privacy\":\"gpc\"");

    } else if (t->privacy == OMNI_PRIVACY_DNT) {
        p = omni_feed_lit(p, ",\"privacy\":\"dnt\"");
    }

    p = omni_feed_lit(p, "}}");

    *p = '\0';
    *len = (size_t) (p - out);

    return out;
}


size_t
omni_feed_line(uint64_t seq, const void *data, size_t len, char *out,
    size_t cap)
{
    int          n;
    size_t       need, rest;
    char         head[80];
    const char  *d = data;

    /*
     * The record's members follow the cursor, after its opening '{'.  An
     * ingested event carries its own messageId (it comes first); a
     * traffic touchpoint gets "tp-" + seq.
     */
    if (len >= 14 && memcmp(d, "{\"messageId\":", 13) == 0) {
        n = snprintf(head, sizeof(head), "{\"seq\":%llu,",
                     (unsigned long long) seq);
        d++;
        rest = len - 1;

    } else if (len >= 2 && d[0] == '{' && d[1] != '}') {
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
