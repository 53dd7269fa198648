/*
 * Event ingest: the readers of a Segment event's fields (strings, ids,
 * amounts, products, times), each refusal naming the field as a JSON
 * path (omni_event_parse.c, omni_event_int.h).
 */

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "omni_event.h"
#include "omni_event_int.h"
#include "omni_token.h"
#include "omni_tz.h"


int
omni_ev_fail(omni_event_err_t *err, int rc, const char *path,
    const char *field, const char *fmt, ...)
{
    va_list  args;

    if (field == NULL || field[0] == '\0') {
        snprintf(err->field, sizeof(err->field), "%s",
                 path[0] ? path : "event");

    } else if (path[0]) {
        snprintf(err->field, sizeof(err->field), "%s.%s", path, field);

    } else {
        snprintf(err->field, sizeof(err->field), "%s", field);
    }

    va_start(args, fmt);
    vsnprintf(err->reason, sizeof(err->reason), fmt, args);
    va_end(args);

    return rc;
}


/* Depth of a JSON value, counted up to limit + 1. */
unsigned
omni_ev_depth(json_t *v, unsigned limit)
{
    size_t       i;
    json_t      *x;
    unsigned     d, max;
    const char  *k;

    if (!json_is_object(v) && !json_is_array(v)) {
        return 0;
    }

    if (limit == 0) {
        return 1;
    }

    max = 0;

    if (json_is_object(v)) {
        json_object_foreach(v, k, x) {
            d = omni_ev_depth(x, limit - 1);
            if (d > max) {
                max = d;
            }
        }

    } else {
        json_array_foreach(v, i, x) {
            d = omni_ev_depth(x, limit - 1);
            if (d > max) {
                max = d;
            }
        }
    }

    return max + 1;
}


/* A printable string of 1..max bytes, without control characters. */
int
omni_ev_text_ok(const char *s, size_t len, size_t max)
{
    size_t  i;

    if (len == 0 || len > max) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f) {
            return 0;
        }
    }

    return 1;
}


/*
 * An optional string member of obj: OMNI_NOTFOUND when absent or null,
 * OMNI_OK with *out pointing into the JSON, or OMNI_INVALID.
 */
int
omni_ev_str(omni_event_err_t *err, const char *path, json_t *obj,
    const char *key, size_t max, const char **out, size_t *len)
{
    json_t  *v;

    v = json_object_get(obj, key);

    if (v == NULL || json_is_null(v)) {
        return OMNI_NOTFOUND;
    }

    if (!json_is_string(v)) {
        return omni_ev_fail(err, OMNI_INVALID, path, key,
                            "expected a string");
    }

    *out = json_string_value(v);
    *len = json_string_length(v);

    if (!omni_ev_text_ok(*out, *len, max)) {
        return omni_ev_fail(err, OMNI_INVALID, path, key,
                            "expected 1 to %u characters without control "
                            "characters", (unsigned) max);
    }

    return OMNI_OK;
}


/* An id that may be a string or an integer (order ids often are). */
int
omni_ev_id(omni_event_err_t *err, const char *path, json_t *obj,
    const char *key, char *buf, size_t size)
{
    int          rc;
    size_t       len;
    json_t      *v;
    const char  *s;

    v = json_object_get(obj, key);

    if (json_is_integer(v)) {
        snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return OMNI_OK;
    }

    rc = omni_ev_str(err, path, obj, key, size - 1, &s, &len);
    if (rc != OMNI_OK) {
        return rc;
    }

    memcpy(buf, s, len);
    buf[len] = '\0';

    return OMNI_OK;
}


static int
omni_ev_dup(omni_event_err_t *err, const char *path, json_t *obj,
    const char *key, size_t max, char **out)
{
    int          rc;
    size_t       len;
    const char  *s;

    *out = NULL;

    rc = omni_ev_str(err, path, obj, key, max, &s, &len);
    if (rc != OMNI_OK) {
        return rc;
    }

    *out = malloc(len + 1);
    if (*out == NULL) {
        return omni_ev_fail(err, OMNI_ERROR, path, key, "out of memory");
    }

    memcpy(*out, s, len);
    (*out)[len] = '\0';

    return OMNI_OK;
}


/* A finite number >= 0 (OMNI_NOTFOUND when absent). */
int
omni_ev_amount(omni_event_err_t *err, const char *path, json_t *obj,
    const char *key, double *out)
{
    json_t  *v;

    v = json_object_get(obj, key);

    if (v == NULL || json_is_null(v)) {
        return OMNI_NOTFOUND;
    }

    if (!json_is_number(v) || !isfinite(json_number_value(v))
        || json_number_value(v) < 0 || json_number_value(v) > 1e12)
    {
        return omni_ev_fail(err, OMNI_INVALID, path, key,
                            "expected a number from 0 to 1e12");
    }

    *out = json_number_value(v);

    return OMNI_OK;
}


int
omni_ev_product(omni_event_err_t *err, const char *path, json_t *obj,
    omni_event_product_t *pr, int need_sku)
{
    int      rc;
    json_t  *v;
    double   price;

    memset(pr, 0, sizeof(omni_event_product_t));

    if (!json_is_object(obj)) {
        return omni_ev_fail(err, OMNI_INVALID, path, NULL,
                            "expected an object");
    }

    /* Segment's product_id, or sku (ours, and Segment's second key). */
    rc = omni_ev_dup(err, path, obj, "sku", OMNI_EVENT_MAX_ID, &pr->sku);
    if (rc == OMNI_NOTFOUND) {
        rc = omni_ev_dup(err, path, obj, "product_id", OMNI_EVENT_MAX_ID,
                         &pr->sku);
        if (rc == OMNI_NOTFOUND && need_sku) {
            return omni_ev_fail(err, OMNI_INVALID, path, "sku",
                                "required (sku or product_id)");
        }
    }

    if (rc != OMNI_OK && rc != OMNI_NOTFOUND) {
        return rc;
    }

    if ((rc = omni_ev_dup(err, path, obj, "name", OMNI_EVENT_MAX_STR,
                          &pr->name)) < 0
        || (rc = omni_ev_dup(err, path, obj, "category", OMNI_EVENT_MAX_STR,
                             &pr->category)) < 0
        || (rc = omni_ev_dup(err, path, obj, "url", OMNI_EVENT_MAX_STR,
                             &pr->url)) < 0
        || (rc = omni_ev_dup(err, path, obj, "image_url", OMNI_EVENT_MAX_STR,
                             &pr->image)) < 0)
    {
        return rc;
    }

    if (pr->url && strncmp(pr->url, "https://", 8) != 0
        && strncmp(pr->url, "http://", 7) != 0 && pr->url[0] != '/')
    {
        return omni_ev_fail(err, OMNI_INVALID, path, "url",
                            "expected an http(s) URL or a path");
    }

    if (pr->image && strncmp(pr->image, "https://", 8) != 0
        && strncmp(pr->image, "http://", 7) != 0 && pr->image[0] != '/')
    {
        return omni_ev_fail(err, OMNI_INVALID, path, "image_url",
                            "expected an http(s) URL or a path");
    }

    rc = omni_ev_amount(err, path, obj, "price", &price);
    if (rc == OMNI_INVALID) {
        return rc;
    }

    pr->price = (rc == OMNI_OK) ? price : 0.0;

    v = json_object_get(obj, "quantity");

    if (v != NULL && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1
            || json_integer_value(v) > 10000)
        {
            return omni_ev_fail(err, OMNI_INVALID, path, "quantity",
                                "expected an integer from 1 to 10000");
        }

        pr->qty = (uint32_t) json_integer_value(v);
    }

    return OMNI_OK;
}


void
omni_ev_product_free(omni_event_product_t *pr)
{
    free(pr->sku);
    free(pr->name);
    free(pr->category);
    free(pr->url);
    free(pr->image);
}


/* An anonymousId or profileId: 32 hex digits or a UUID, as hex. */
int
omni_ev_hex_id(omni_event_err_t *err, const char *path, json_t *obj,
    const char *key, omni_event_ident_t *id, unsigned kind)
{
    int            rc;
    size_t         len;
    const char    *s;
    unsigned char  raw[OMNI_ID_LEN];

    rc = omni_ev_str(err, path, obj, key, 64, &s, &len);
    if (rc != OMNI_OK) {
        return rc;
    }

    if (omni_id_parse(s, len, raw) != OMNI_OK) {
        return omni_ev_fail(err, OMNI_INVALID, path, key,
                            "expected 32 hex digits or a UUID");
    }

    id->kind = kind;
    omni_id_hex(raw, id->value);
    id->len = OMNI_ID_HEX_LEN;

    return OMNI_OK;
}


static int
omni_ev_digits(const char *s, size_t n, unsigned *out)
{
    size_t  i;

    *out = 0;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }

        *out = *out * 10 + (unsigned) (s[i] - '0');
    }

    return 1;
}


int
omni_event_parse_time(const char *s, size_t len, uint32_t *out)
{
    static const unsigned char  mdays[] = {
        31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    size_t    i;
    int64_t   t, off;
    unsigned  y, mo, d, h, mi, sec, oh, om;

    /* YYYY-MM-DDTHH:MM:SS */
    if (len < 20
        || !omni_ev_digits(s, 4, &y) || s[4] != '-'
        || !omni_ev_digits(s + 5, 2, &mo) || s[7] != '-'
        || !omni_ev_digits(s + 8, 2, &d)
        || (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        || !omni_ev_digits(s + 11, 2, &h) || s[13] != ':'
        || !omni_ev_digits(s + 14, 2, &mi) || s[16] != ':'
        || !omni_ev_digits(s + 17, 2, &sec))
    {
        return OMNI_INVALID;
    }

    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1]
        || h > 23 || mi > 59 || sec > 60)
    {
        return OMNI_INVALID;
    }

    /* February 29th only in a leap year */
    if (mo == 2 && d == 29
        && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
    {
        return OMNI_INVALID;
    }

    i = 19;

    /* fractional seconds are accepted and dropped */
    if (i < len && s[i] == '.') {
        i++;

        if (i == len || s[i] < '0' || s[i] > '9') {
            return OMNI_INVALID;
        }

        while (i < len && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
    }

    off = 0;

    if (i + 1 == len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;

    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-')
               && omni_ev_digits(s + i + 1, 2, &oh) && s[i + 3] == ':'
               && omni_ev_digits(s + i + 4, 2, &om)
               && oh <= 23 && om <= 59)
    {
        off = (int64_t) (oh * 3600 + om * 60);
        if (s[i] == '+') {
            off = -off;
        }

        i += 6;

    } else {
        /* no zone (a local time of unknown offset), or trailing bytes */
        return OMNI_INVALID;
    }

    t = omni_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60
        + (sec > 59 ? 59 : sec) + off;

    if (t < 0 || t > (int64_t) UINT32_MAX) {
        return OMNI_INVALID;
    }

    *out = (uint32_t) t;

    return OMNI_OK;
}
