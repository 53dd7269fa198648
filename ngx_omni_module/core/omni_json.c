/*
 * Profile <-> JSON (omni_json.h), for import, export, omnictl and the
 * admin API.  Never on the request path.
 *
 * Alias values.  A profile stores every alias value as a string, and the
 * aliases database key is the alias kind byte followed by exactly those
 * bytes (omni_store.h), so the text form below is the key:
 *
 *   "cookie", "device"  the id as 32 lowercase hex digits; the JSON id may
 *                       be any form omni_id_parse() takes (hex in either
 *                       case, or a UUID) and is normalised
 *   "customer"          the id as given, 1..OMNI_ALIAS_MAX_LEN bytes
 *   "anonymous"         a Segment anonymousId as its sender made it
 *                       (analytics.js's UUID), as given, like customer
 *   "email"             sha256 hex (64 lowercase digits) of the
 *                       lowercased address: a JSON id containing '@' is
 *                       hashed here, anything else must already be the
 *                       64-digit digest (exports write the digest, so an
 *                       export imports back unchanged)
 *
 * Export (omni_profile_to_json) writes keys in a fixed order: id, created,
 * updated, visits, visit_last, stage, consent, last_seen, orders, revenue,
 * aliases, segments, attributes, cart, purchases, impressions, views,
 * events.  The fixed fields are always present except consent (only when
 * stated) and last_seen (only channels seen); empty lists are left out.
 *
 * Import (omni_profile_from_json) is strict: an unknown key or a value of
 * the wrong type is an error naming its path, e.g.
 *     unknown key "foo"
 *     cart.items[2].qty: expected a non-negative integer
 * Bounds: more aliases, segments or attributes than the record keeps is an
 * error (silently dropping an identity or a segment on import would
 * surprise); the histories (cart lines, purchases, views, events,
 * impressions) are accepted whole and the encoder keeps the newest, as it
 * does for every write.
 */

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omni_json.h"
#include "omni_token.h"


#define OMNI_JSON_PATH_MAX    256
#define OMNI_SHA256_HEX_LEN   64


/* Field kinds of the table-driven items below. */
enum {
    OMNI_JF_STR = 1,            /* char *, at most OMNI_MAX_STR bytes */
    OMNI_JF_U32,                /* uint32_t */
    OMNI_JF_F64,                /* double */
    OMNI_JF_CHANNEL             /* unsigned, OMNI_CH_*, as its name */
};

typedef struct {
    const char   *name;
    int           kind;
    size_t        off;
    int           required;     /* JF_STR only: present and non-empty */
} omni_jfield_t;

typedef struct {
    char         *err;
    size_t        errlen;
} omni_jerr_t;


/*
 * The item tables give both the import grammar and the export key order,
 * which follows the binary item layout.
 */

static const omni_jfield_t  omni_cart_fields[] = {
    { "sku", OMNI_JF_STR, offsetof(omni_cart_item_t, sku), 0 },
    { "name", OMNI_JF_STR, offsetof(omni_cart_item_t, name), 0 },
    { "category", OMNI_JF_STR, offsetof(omni_cart_item_t, category), 0 },
    { "qty", OMNI_JF_U32, offsetof(omni_cart_item_t, qty), 0 },
    { "price", OMNI_JF_F64, offsetof(omni_cart_item_t, price), 0 },
    { "url", OMNI_JF_STR, offsetof(omni_cart_item_t, url), 0 },
    { "image", OMNI_JF_STR, offsetof(omni_cart_item_t, image), 0 },
    { NULL, 0, 0, 0 }
};

static const omni_jfield_t  omni_purchase_fields[] = {
    { "sku", OMNI_JF_STR, offsetof(omni_purchase_t, sku), 0 },
    { "order_id", OMNI_JF_STR, offsetof(omni_purchase_t, order_id), 0 },
    { "channel", OMNI_JF_CHANNEL, offsetof(omni_purchase_t, channel), 0 },
    { "time", OMNI_JF_U32, offsetof(omni_purchase_t, time), 0 },
    { "category", OMNI_JF_STR, offsetof(omni_purchase_t, category), 0 },
    { "price", OMNI_JF_F64, offsetof(omni_purchase_t, price), 0 },
    { "qty", OMNI_JF_U32, offsetof(omni_purchase_t, qty), 0 },
    { NULL, 0, 0, 0 }
};

/* "buckets" is handled on its own: it is not a scalar */
static const omni_jfield_t  omni_impr_fields[] = {
    { "campaign", OMNI_JF_STR, offsetof(omni_impr_t, campaign), 1 },
    { "total", OMNI_JF_U32, offsetof(omni_impr_t, total), 0 },
    { "last", OMNI_JF_U32, offsetof(omni_impr_t, last), 0 },
    { NULL, 0, 0, 0 }
};

static const omni_jfield_t  omni_view_fields[] = {
    { "sku", OMNI_JF_STR, offsetof(omni_view_t, sku), 0 },
    { "category", OMNI_JF_STR, offsetof(omni_view_t, category), 0 },
    { "time", OMNI_JF_U32, offsetof(omni_view_t, time), 0 },
    { "price", OMNI_JF_F64, offsetof(omni_view_t, price), 0 },
    { NULL, 0, 0, 0 }
};

static const omni_jfield_t  omni_event_fields[] = {
    { "name", OMNI_JF_STR, offsetof(omni_evcount_t, name), 1 },
    { "count", OMNI_JF_U32, offsetof(omni_evcount_t, count), 0 },
    { "last", OMNI_JF_U32, offsetof(omni_evcount_t, last), 0 },
    { NULL, 0, 0, 0 }
};

/* Fixed profile fields; "id", "stage" and the objects are special. */
static const omni_jfield_t  omni_profile_fields[] = {
    { "created", OMNI_JF_U32, offsetof(omni_profile_t, created), 0 },
    { "updated", OMNI_JF_U32, offsetof(omni_profile_t, updated), 0 },
    { "visits", OMNI_JF_U32, offsetof(omni_profile_t, visits), 0 },
    { "visit_last", OMNI_JF_U32, offsetof(omni_profile_t, visit_last), 0 },
    { "orders", OMNI_JF_U32, offsetof(omni_profile_t, orders), 0 },
    { "revenue", OMNI_JF_F64, offsetof(omni_profile_t, revenue), 0 },
    { NULL, 0, 0, 0 }
};

static const struct {
    const char   *name;
    uint32_t      bit;
} omni_consent_names[] = {
    { "analytics", OMNI_CONSENT_ANALYTICS },
    { "personalize", OMNI_CONSENT_PERSONALIZE },
    { "ads", OMNI_CONSENT_ADS },
    { "email", OMNI_CONSENT_EMAIL },
    { "sms", OMNI_CONSENT_SMS },
    { NULL, 0 }
};

static const struct {
    const char   *name;
    unsigned      kind;
} omni_alias_names[] = {
    { "cookie", OMNI_ALIAS_COOKIE },
    { "device", OMNI_ALIAS_DEVICE },
    { "customer", OMNI_ALIAS_CUSTOMER },
    { "email", OMNI_ALIAS_EMAIL },
    { "anonymous", OMNI_ALIAS_ANON },
    { NULL, 0 }
};


/* ---- export ---- */

/*
 * Everything the profile holds should be valid UTF-8, but a record is
 * just bytes: rather than fail the whole export, a string jansson refuses
 * is written with every non-ASCII byte replaced by '?'.  Error messages
 * that quote input (a field name cut mid-character) use it too.
 */
json_t *
omni_json_string(const char *s)
{
    char    *c;
    size_t   i, n;
    json_t  *v;

    if (s == NULL) {
        s = "";
    }

    v = json_string(s);
    if (v != NULL) {
        return v;
    }

    n = strlen(s);
    c = malloc(n + 1);
    if (c == NULL) {
        return NULL;
    }

    for (i = 0; i < n; i++) {
        c[i] = (unsigned char) s[i] < 0x80 ? s[i] : '?';
    }

    c[n] = '\0';
    v = json_string(c);
    free(c);

    return v;
}


/* JSON has no NaN or infinity; a damaged record's ones export as 0. */
static json_t *
omni_json_real(double d)
{
    return json_real(isfinite(d) ? d : 0.0);
}


/* Integral numbers (attribute "points": 120) export as integers. */
static json_t *
omni_json_number(double d)
{
    if (isfinite(d) && d == floor(d) && fabs(d) < 9007199254740992.0) {
        return json_integer((json_int_t) d);
    }

    return omni_json_real(d);
}


/* Sets obj[key] = v (stealing v); counts failures instead of branching. */
static void
omni_json_set(json_t *obj, const char *key, json_t *v, int *failed)
{
    if (v == NULL || json_object_set_new(obj, key, v) != 0) {
        (*failed)++;
    }
}


/* A key from the record: sanitised like values when not valid UTF-8. */
static void
omni_json_set_key(json_t *obj, const char *key, json_t *v, int *failed)
{
    json_t  *k;

    k = omni_json_string(key);
    if (k == NULL) {
        json_decref(v);
        (*failed)++;
        return;
    }

    omni_json_set(obj, json_string_value(k), v, failed);
    json_decref(k);
}


static void
omni_json_append(json_t *arr, json_t *v, int *failed)
{
    if (v == NULL || json_array_append_new(arr, v) != 0) {
        (*failed)++;
    }
}


static void
omni_json_put_fields(json_t *obj, const omni_jfield_t *fields,
    const void *base, int *failed)
{
    const char           *ch;
    unsigned              c;
    const unsigned char  *b = base;
    const omni_jfield_t  *fd;

    for (fd = fields; fd->name; fd++) {
        switch (fd->kind) {

        case OMNI_JF_STR:
            omni_json_set(obj, fd->name,
                          omni_json_string(*(char *const *) (b + fd->off)),
                          failed);
            break;

        case OMNI_JF_U32:
            omni_json_set(obj, fd->name,
                          json_integer(*(const uint32_t *) (b + fd->off)),
                          failed);
            break;

        case OMNI_JF_F64:
            omni_json_set(obj, fd->name,
                          omni_json_real(*(const double *) (b + fd->off)),
                          failed);
            break;

        case OMNI_JF_CHANNEL:
            /* a channel this build does not know exports as "other" */
            c = *(const unsigned *) (b + fd->off);
            ch = omni_channel_name(c);
            omni_json_set(obj, fd->name,
                          json_string(ch ? ch : "other"), failed);
            break;
        }
    }
}


/* An array of objects, one per element of a typed array of size `size`. */
static json_t *
omni_json_items(const void *arr, unsigned n, size_t size,
    const omni_jfield_t *fields, int *failed)
{
    unsigned  i;
    json_t   *a, *o;

    a = json_array();
    if (a == NULL) {
        (*failed)++;
        return NULL;
    }

    for (i = 0; i < n; i++) {
        o = json_object();
        if (o == NULL) {
            (*failed)++;
            break;
        }

        omni_json_put_fields(o, fields, (const char *) arr + i * size,
                             failed);
        omni_json_append(a, o, failed);
    }

    return a;
}


json_t *
omni_profile_to_json(const omni_profile_t *p)
{
    int          failed;
    char         hex[OMNI_ID_HEX_LEN + 1];
    unsigned     i, j;
    const char  *name;
    json_t      *obj, *o, *a, *v;

    failed = 0;

    obj = json_object();
    if (obj == NULL) {
        return NULL;
    }

    omni_id_hex(p->id, hex);
    omni_json_set(obj, "id", json_string(hex), &failed);

    for (i = 0; i < 4; i++) {
        /* created, updated, visits, visit_last */
        omni_json_set(obj, omni_profile_fields[i].name,
                      json_integer(*(const uint32_t *)
                          ((const char *) p + omni_profile_fields[i].off)),
                      &failed);
    }

    /* a stage from a newer minor has no name here: export it as "new" */
    name = omni_stage_name(p->stage);
    omni_json_set(obj, "stage", json_string(name ? name : "new"), &failed);

    if (p->consent != 0) {
        o = json_object();
        if (o == NULL) {
            failed++;
        }

        /* the purposes stated (all of them for a record from before) */
        for (i = 0; o != NULL && omni_consent_names[i].name; i++) {
            if ((p->consent & OMNI_CONSENT_STATED_MASK)
                && !(p->consent
                     & OMNI_CONSENT_STATED(omni_consent_names[i].bit)))
            {
                continue;
            }

            omni_json_set(o, omni_consent_names[i].name,
                json_boolean(p->consent & omni_consent_names[i].bit),
                &failed);
        }

        omni_json_set(obj, "consent", o, &failed);
    }

    o = NULL;

    for (i = 0; i < OMNI_CH_MAX; i++) {
        if (p->last_seen[i] == 0) {
            continue;
        }

        if (o == NULL) {
            o = json_object();
            if (o == NULL) {
                failed++;
                break;
            }
        }

        omni_json_set(o, omni_channel_name(i), json_integer(p->last_seen[i]),
                      &failed);
    }

    if (o != NULL) {
        omni_json_set(obj, "last_seen", o, &failed);
    }

    omni_json_set(obj, "orders", json_integer(p->orders), &failed);
    omni_json_set(obj, "revenue", omni_json_real(p->revenue), &failed);

    if (p->naliases) {
        a = json_array();
        if (a == NULL) {
            failed++;
        }

        for (i = 0; a != NULL && i < p->naliases; i++) {
            name = NULL;

            for (j = 0; omni_alias_names[j].name; j++) {
                if (omni_alias_names[j].kind == p->aliases[i].kind) {
                    name = omni_alias_names[j].name;
                    break;
                }
            }

            /* an alias kind this build does not know has no JSON form */
            if (name == NULL) {
                continue;
            }

            o = json_pack("{s:s}", "type", name);
            if (o == NULL) {
                failed++;
                break;
            }

            omni_json_set(o, "id", omni_json_string(p->aliases[i].value),
                          &failed);
            omni_json_append(a, o, &failed);
        }

        omni_json_set(obj, "aliases", a, &failed);
    }

    if (p->nsegments) {
        a = json_array();
        if (a == NULL) {
            failed++;
        }

        for (i = 0; a != NULL && i < p->nsegments; i++) {
            omni_json_append(a, omni_json_string(p->segments[i]), &failed);
        }

        omni_json_set(obj, "segments", a, &failed);
    }

    if (p->nattrs) {
        o = json_object();
        if (o == NULL) {
            failed++;
        }

        for (i = 0; o != NULL && i < p->nattrs; i++) {
            if (p->attrs[i].type == OMNI_ATTR_NUM) {
                v = omni_json_number(p->attrs[i].num);
            } else {
                v = omni_json_string(p->attrs[i].str);
            }

            omni_json_set_key(o, p->attrs[i].key, v, &failed);
        }

        omni_json_set(obj, "attributes", o, &failed);
    }

    if (p->ncart || p->cart_updated) {
        o = json_object();
        if (o == NULL) {
            failed++;

        } else {
            omni_json_set(o, "updated_at", json_integer(p->cart_updated),
                          &failed);
            omni_json_set(o, "items",
                          omni_json_items(p->cart, p->ncart,
                                          sizeof(omni_cart_item_t),
                                          omni_cart_fields, &failed),
                          &failed);
        }

        omni_json_set(obj, "cart", o, &failed);
    }

    if (p->npurchases) {
        omni_json_set(obj, "purchases",
                      omni_json_items(p->purchases, p->npurchases,
                                      sizeof(omni_purchase_t),
                                      omni_purchase_fields, &failed),
                      &failed);
    }

    if (p->nimpressions) {
        a = omni_json_items(p->impressions, p->nimpressions,
                            sizeof(omni_impr_t), omni_impr_fields, &failed);

        for (i = 0; a != NULL && i < json_array_size(a); i++) {
            const omni_impr_t  *im = &p->impressions[i];

            v = json_array();
            if (v == NULL) {
                failed++;
                break;
            }

            for (j = 0; j < im->nbuckets && j < OMNI_MAX_BUCKETS; j++) {
                omni_json_append(v, json_pack("[I,I]",
                                              (json_int_t) im->buckets[j].hour,
                                              (json_int_t)
                                                  im->buckets[j].count),
                                 &failed);
            }

            omni_json_set(json_array_get(a, i), "buckets", v, &failed);
        }

        omni_json_set(obj, "impressions", a, &failed);
    }

    if (p->nviews) {
        omni_json_set(obj, "views",
                      omni_json_items(p->views, p->nviews,
                                      sizeof(omni_view_t), omni_view_fields,
                                      &failed),
                      &failed);
    }

    if (p->nevents) {
        omni_json_set(obj, "events",
                      omni_json_items(p->events, p->nevents,
                                      sizeof(omni_evcount_t),
                                      omni_event_fields, &failed),
                      &failed);
    }

    if (failed) {
        json_decref(obj);
        return NULL;
    }

    return obj;
}


/* ---- import ---- */

/* "path: reason", or just the reason at the top level. */
static int
omni_jfail(omni_jerr_t *e, const char *path, const char *fmt, ...)
{
    int      n;
    va_list  args;

    if (e->err == NULL || e->errlen == 0) {
        return OMNI_INVALID;
    }

    n = 0;

    if (path[0] != '\0') {
        n = snprintf(e->err, e->errlen, "%s: ", path);
        if (n < 0 || (size_t) n >= e->errlen) {
            return OMNI_INVALID;
        }
    }

    va_start(args, fmt);
    vsnprintf(e->err + n, e->errlen - n, fmt, args);
    va_end(args);

    return OMNI_INVALID;
}


/*
 * Paths are for messages only: one too long for the buffer (deep nesting
 * cannot happen, but attribute keys may be long) is cut and marked.
 */
static void
omni_jpath_done(char *buf, int n)
{
    if (n < 0 || n >= OMNI_JSON_PATH_MAX) {
        memcpy(buf + OMNI_JSON_PATH_MAX - 4, "...", 4);
    }
}


static void
omni_jpath_key(char *buf, const char *parent, const char *key)
{
    int  n;

    if (parent[0] == '\0') {
        n = snprintf(buf, OMNI_JSON_PATH_MAX, "%s", key);
    } else {
        n = snprintf(buf, OMNI_JSON_PATH_MAX, "%s.%s", parent, key);
    }

    omni_jpath_done(buf, n);
}


static void
omni_jpath_index(char *buf, const char *parent, size_t i)
{
    omni_jpath_done(buf, snprintf(buf, OMNI_JSON_PATH_MAX, "%s[%zu]",
                                  parent, i));
}


/* Unknown keys are echoed, cut short so that the path stays readable. */
static int
omni_junknown(omni_jerr_t *e, const char *path, const char *key)
{
    return omni_jfail(e, path, "unknown key \"%.64s\"", key);
}


static int
omni_jstr(omni_jerr_t *e, const char *path, json_t *v, size_t max,
    const char **s, size_t *len)
{
    /* outputs are set on every path: callers may be compiled to see them */
    *s = "";
    *len = 0;

    if (!json_is_string(v)) {
        return omni_jfail(e, path, "expected a string");
    }

    *s = json_string_value(v);
    *len = json_string_length(v);

    if (*len > max) {
        return omni_jfail(e, path, "longer than %zu bytes", max);
    }

    if (memchr(*s, '\0', *len) != NULL) {
        return omni_jfail(e, path, "contains a NUL byte");
    }

    return OMNI_OK;
}


static int
omni_jstrdup(omni_jerr_t *e, const char *path, json_t *v, char **out)
{
    char        *d;
    size_t       len;
    const char  *s;

    if (omni_jstr(e, path, v, OMNI_MAX_STR, &s, &len) != OMNI_OK) {
        return OMNI_INVALID;
    }

    d = malloc(len + 1);
    if (d == NULL) {
        return omni_jfail(e, path, "out of memory");
    }

    memcpy(d, s, len);
    d[len] = '\0';

    free(*out);
    *out = d;

    return OMNI_OK;
}


static int
omni_ju32(omni_jerr_t *e, const char *path, json_t *v, uint32_t max,
    uint32_t *out)
{
    json_int_t  n;

    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        return omni_jfail(e, path, "expected a non-negative integer");
    }

    n = json_integer_value(v);

    if ((unsigned long long) n > max) {
        return omni_jfail(e, path, "out of range (at most %lu)",
                          (unsigned long) max);
    }

    *out = (uint32_t) n;

    return OMNI_OK;
}


static int
omni_jf64(omni_jerr_t *e, const char *path, json_t *v, double *out)
{
    double  d;

    *out = 0.0;

    if (!json_is_number(v)) {
        return omni_jfail(e, path, "expected a number");
    }

    d = json_number_value(v);

    if (!isfinite(d)) {
        return omni_jfail(e, path, "expected a finite number");
    }

    *out = d;

    return OMNI_OK;
}


static int
omni_jobject(omni_jerr_t *e, const char *path, json_t *v)
{
    if (!json_is_object(v)) {
        return omni_jfail(e, path, "expected an object");
    }

    return OMNI_OK;
}


static int
omni_jarray(omni_jerr_t *e, const char *path, json_t *v)
{
    if (!json_is_array(v)) {
        return omni_jfail(e, path, "expected an array");
    }

    return OMNI_OK;
}


static const omni_jfield_t *
omni_jfield_find(const omni_jfield_t *fields, const char *key)
{
    const omni_jfield_t  *fd;

    for (fd = fields; fd->name; fd++) {
        if (strcmp(fd->name, key) == 0) {
            return fd;
        }
    }

    return NULL;
}


/* One scalar field of a table into the struct at base. */
static int
omni_jfield_get(omni_jerr_t *e, const char *path, const omni_jfield_t *fd,
    json_t *v, void *base)
{
    int             ch;
    size_t          len;
    const char     *s;
    unsigned char  *b = base;

    switch (fd->kind) {

    case OMNI_JF_STR:
        return omni_jstrdup(e, path, v, (char **) (b + fd->off));

    case OMNI_JF_U32:
        return omni_ju32(e, path, v, UINT32_MAX, (uint32_t *) (b + fd->off));

    case OMNI_JF_F64:
        return omni_jf64(e, path, v, (double *) (b + fd->off));

    case OMNI_JF_CHANNEL:
        if (omni_jstr(e, path, v, OMNI_MAX_STR, &s, &len) != OMNI_OK) {
            return OMNI_INVALID;
        }

        ch = omni_channel_parse(s, len);
        if (ch < 0) {
            return omni_jfail(e, path, "unknown channel \"%.64s\"", s);
        }

        *(unsigned *) (b + fd->off) = (unsigned) ch;

        return OMNI_OK;
    }

    return omni_jfail(e, path, "internal error");
}


/*
 * Fills one item from an object: every key must be in `fields` (or be
 * `extra`, which the caller handles), required strings must be there and
 * non-empty.
 */
static int
omni_jitem(omni_jerr_t *e, const char *path, json_t *obj,
    const omni_jfield_t *fields, const char *extra, void *base)
{
    char                  sub[OMNI_JSON_PATH_MAX];
    const char           *key;
    json_t               *v;
    const omni_jfield_t  *fd;

    if (omni_jobject(e, path, obj) != OMNI_OK) {
        return OMNI_INVALID;
    }

    json_object_foreach(obj, key, v) {
        if (extra != NULL && strcmp(key, extra) == 0) {
            continue;
        }

        fd = omni_jfield_find(fields, key);
        if (fd == NULL) {
            return omni_junknown(e, path, key);
        }

        omni_jpath_key(sub, path, key);

        if (omni_jfield_get(e, sub, fd, v, base) != OMNI_OK) {
            return OMNI_INVALID;
        }
    }

    for (fd = fields; fd->name; fd++) {
        if (fd->required && fd->kind == OMNI_JF_STR) {
            char  *s = *(char **) ((char *) base + fd->off);

            if (s == NULL || s[0] == '\0') {
                omni_jpath_key(sub, path, fd->name);
                return omni_jfail(e, sub, s ? "must not be empty"
                                            : "required");
            }
        }
    }

    return OMNI_OK;
}


/*
 * Grows a profile list by a whole JSON array at once, zeroed.  Callers
 * count an item before reading its fields, so omni_profile_free()
 * releases a half-read one.
 */
static int
omni_jgrow(omni_jerr_t *e, const char *path, void **arr, unsigned n,
    size_t add, size_t size)
{
    void  *a;

    if (add == 0) {
        return OMNI_OK;
    }

    /* far beyond any bound; keeps the size arithmetic from overflowing */
    if (add > 1000000) {
        return omni_jfail(e, path, "too many items");
    }

    a = realloc(*arr, (n + add) * size);
    if (a == NULL) {
        return omni_jfail(e, path, "out of memory");
    }

    memset((char *) a + (size_t) n * size, 0, add * size);
    *arr = a;

    return OMNI_OK;
}


static int
omni_jlist(omni_jerr_t *e, const char *path, json_t *v, void **arr,
    unsigned *n, size_t size, const omni_jfield_t *fields)
{
    char     sub[OMNI_JSON_PATH_MAX];
    size_t   i;
    json_t  *o;

    if (omni_jarray(e, path, v) != OMNI_OK
        || omni_jgrow(e, path, arr, *n, json_array_size(v), size) != OMNI_OK)
    {
        return OMNI_INVALID;
    }

    json_array_foreach(v, i, o) {
        void  *item = (char *) *arr + (size_t) *n * size;

        (*n)++;
        omni_jpath_index(sub, path, i);

        if (omni_jitem(e, sub, o, fields, NULL, item) != OMNI_OK) {
            return OMNI_INVALID;
        }
    }

    return OMNI_OK;
}


static int
omni_jconsent(omni_jerr_t *e, json_t *v, omni_profile_t *p)
{
    char         sub[OMNI_JSON_PATH_MAX];
    unsigned     i;
    uint32_t     consent;
    const char  *key;
    json_t      *b;

    if (omni_jobject(e, "consent", v) != OMNI_OK) {
        return OMNI_INVALID;
    }

    /* stating consent at all is information: OMNI_CONSENT_SET */
    consent = OMNI_CONSENT_SET;

    json_object_foreach(v, key, b) {
        for (i = 0; omni_consent_names[i].name; i++) {
            if (strcmp(omni_consent_names[i].name, key) == 0) {
                break;
            }
        }

        if (omni_consent_names[i].name == NULL) {
            return omni_junknown(e, "consent", key);
        }

        if (!json_is_boolean(b)) {
            omni_jpath_key(sub, "consent", key);
            return omni_jfail(e, sub, "expected a boolean");
        }

        if (json_is_true(b)) {
            consent |= omni_consent_names[i].bit;
        }

        consent |= OMNI_CONSENT_STATED(omni_consent_names[i].bit);
    }

    p->consent = consent;

    return OMNI_OK;
}


static int
omni_jlast_seen(omni_jerr_t *e, json_t *v, omni_profile_t *p)
{
    int          ch;
    char         sub[OMNI_JSON_PATH_MAX];
    const char  *key;
    json_t      *t;

    if (omni_jobject(e, "last_seen", v) != OMNI_OK) {
        return OMNI_INVALID;
    }

    json_object_foreach(v, key, t) {
        ch = omni_channel_parse(key, strlen(key));
        if (ch < 0) {
            return omni_jfail(e, "last_seen", "unknown channel \"%.64s\"",
                              key);
        }

        omni_jpath_key(sub, "last_seen", key);

        if (omni_ju32(e, sub, t, UINT32_MAX, &p->last_seen[ch]) != OMNI_OK) {
            return OMNI_INVALID;
        }
    }

    return OMNI_OK;
}


static int
omni_is_hex(const char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')
              || (s[i] >= 'A' && s[i] <= 'F')))
        {
            return 0;
        }
    }

    return 1;
}


/* One {"type": ..., "id": ...}; the value stored is documented above. */
static int
omni_jalias(omni_jerr_t *e, const char *path, json_t *o, omni_profile_t *p)
{
    int             rc;
    char            sub[OMNI_JSON_PATH_MAX];
    char            buf[OMNI_SHA256_HEX_LEN + 1];
    size_t          i, len, tlen;
    unsigned        kind;
    const char     *key, *s, *t;
    json_t         *v, *type, *id;
    unsigned char   raw[OMNI_ID_LEN];

    if (omni_jobject(e, path, o) != OMNI_OK) {
        return OMNI_INVALID;
    }

    json_object_foreach(o, key, v) {
        if (strcmp(key, "type") != 0 && strcmp(key, "id") != 0) {
            return omni_junknown(e, path, key);
        }
    }

    type = json_object_get(o, "type");
    id = json_object_get(o, "id");

    omni_jpath_key(sub, path, "type");

    if (type == NULL) {
        return omni_jfail(e, sub, "required");
    }

    if (omni_jstr(e, sub, type, OMNI_MAX_STR, &t, &tlen) != OMNI_OK) {
        return OMNI_INVALID;
    }

    kind = 0;

    for (i = 0; omni_alias_names[i].name; i++) {
        if (strcmp(omni_alias_names[i].name, t) == 0) {
            kind = omni_alias_names[i].kind;
            break;
        }
    }

    if (kind == 0) {
        return omni_jfail(e, sub, "unknown alias type \"%.64s\"", t);
    }

    omni_jpath_key(sub, path, "id");

    if (id == NULL) {
        return omni_jfail(e, sub, "required");
    }

    if (omni_jstr(e, sub, id, OMNI_MAX_STR, &s, &len) != OMNI_OK) {
        return OMNI_INVALID;
    }

    switch (kind) {

    case OMNI_ALIAS_COOKIE:
    case OMNI_ALIAS_DEVICE:
        if (omni_id_parse(s, len, raw) != OMNI_OK) {
            return omni_jfail(e, sub, "expected 32 hex digits or a UUID");
        }

        omni_id_hex(raw, buf);
        s = buf;
        len = OMNI_ID_HEX_LEN;
        break;

    case OMNI_ALIAS_CUSTOMER:
    case OMNI_ALIAS_ANON:
        if (len == 0 || len > OMNI_ALIAS_MAX_LEN) {
            return omni_jfail(e, sub, "expected 1 to %d bytes",
                              OMNI_ALIAS_MAX_LEN);
        }

        break;

    default: /* OMNI_ALIAS_EMAIL */
        if (memchr(s, '@', len) != NULL) {
            omni_sha256_hex(s, len, 1, buf);
            if (strlen(buf) != OMNI_SHA256_HEX_LEN) {
                return omni_jfail(e, sub, "cannot hash the address");
            }

        } else if (len == OMNI_SHA256_HEX_LEN && omni_is_hex(s, len)) {
            for (i = 0; i < len; i++) {
                buf[i] = (s[i] >= 'A' && s[i] <= 'F') ? s[i] + 32 : s[i];
            }

            buf[len] = '\0';

        } else {
            return omni_jfail(e, sub,
                              "expected an email address or a sha256 hex "
                              "digest");
        }

        s = buf;
        len = OMNI_SHA256_HEX_LEN;
        break;
    }

    rc = omni_profile_add_alias(p, kind, s, len);
    if (rc != OMNI_OK) {
        return omni_jfail(e, sub, rc == OMNI_INVALID ? "invalid alias"
                                                      : "out of memory");
    }

    return OMNI_OK;
}


static int
omni_jaliases(omni_jerr_t *e, json_t *v, omni_profile_t *p)
{
    char     sub[OMNI_JSON_PATH_MAX];
    size_t   i;
    json_t  *o;

    if (omni_jarray(e, "aliases", v) != OMNI_OK) {
        return OMNI_INVALID;
    }

    if (json_array_size(v) > OMNI_MAX_ALIASES) {
        return omni_jfail(e, "aliases", "more than %d aliases",
                          OMNI_MAX_ALIASES);
    }

    json_array_foreach(v, i, o) {
        omni_jpath_index(sub, "aliases", i);

        if (omni_jalias(e, sub, o, p) != OMNI_OK) {
            return OMNI_INVALID;
        }
    }

    return OMNI_OK;
}


static int
omni_jsegments(omni_jerr_t *e, json_t *v, omni_profile_t *p)
{
    char         sub[OMNI_JSON_PATH_MAX];
    size_t       i, len;
    json_t      *s;
    const char  *name;

    if (omni_jarray(e, "segments", v) != OMNI_OK) {
        return OMNI_INVALID;
    }

    if (json_array_size(v) > OMNI_MAX_SEGMENTS) {
        return omni_jfail(e, "segments", "more than %d segments",
                          OMNI_MAX_SEGMENTS);
    }

    json_array_foreach(v, i, s) {
        omni_jpath_index(sub, "segments", i);

        if (omni_jstr(e, sub, s, OMNI_MAX_STR, &name, &len) != OMNI_OK) {
            return OMNI_INVALID;
        }

        if (len == 0) {
            return omni_jfail(e, sub, "must not be empty");
        }

        if (omni_profile_add_segment(p, name, len) != OMNI_OK) {
            return omni_jfail(e, sub, "out of memory");
        }
    }

    return OMNI_OK;
}


static int
omni_jattributes(omni_jerr_t *e, json_t *v, omni_profile_t *p)
{
    int          rc;
    char         sub[OMNI_JSON_PATH_MAX];
    size_t       len;
    double       num;
    json_t      *a;
    const char  *key, *s;

    if (omni_jobject(e, "attributes", v) != OMNI_OK) {
        return OMNI_INVALID;
    }

    if (json_object_size(v) > OMNI_MAX_ATTRS) {
        return omni_jfail(e, "attributes", "more than %d attributes",
                          OMNI_MAX_ATTRS);
    }

    json_object_foreach(v, key, a) {
        if (key[0] == '\0') {
            return omni_jfail(e, "attributes", "empty key");
        }

        if (strlen(key) > OMNI_MAX_STR) {
            return omni_jfail(e, "attributes", "key longer than %d bytes",
                              OMNI_MAX_STR);
        }

        omni_jpath_key(sub, "attributes", key);

        if (json_is_string(a)) {
            if (omni_jstr(e, sub, a, OMNI_MAX_STR, &s, &len) != OMNI_OK) {
                return OMNI_INVALID;
            }

            rc = omni_profile_set_attr_str(p, key, s);

        } else if (json_is_number(a)) {
            if (omni_jf64(e, sub, a, &num) != OMNI_OK) {
                return OMNI_INVALID;
            }

            rc = omni_profile_set_attr_num(p, key, num);

        } else {
            return omni_jfail(e, sub, "expected a string or a number");
        }

        if (rc != OMNI_OK) {
            return omni_jfail(e, sub, rc == OMNI_INVALID ? "invalid value"
                                                          : "out of memory");
        }
    }

    return OMNI_OK;
}


static int
omni_jcart(omni_jerr_t *e, json_t *v, omni_profile_t *p)
{
    const char  *key;
    json_t      *x;

    if (omni_jobject(e, "cart", v) != OMNI_OK) {
        return OMNI_INVALID;
    }

    json_object_foreach(v, key, x) {
        if (strcmp(key, "updated_at") == 0) {
            if (omni_ju32(e, "cart.updated_at", x, UINT32_MAX,
                          &p->cart_updated)
                != OMNI_OK)
            {
                return OMNI_INVALID;
            }

        } else if (strcmp(key, "items") == 0) {
            if (omni_jlist(e, "cart.items", x, (void **) &p->cart, &p->ncart,
                           sizeof(omni_cart_item_t), omni_cart_fields)
                != OMNI_OK)
            {
                return OMNI_INVALID;
            }

        } else {
            return omni_junknown(e, "cart", key);
        }
    }

    return OMNI_OK;
}


static int
omni_jbuckets(omni_jerr_t *e, const char *path, json_t *v, omni_impr_t *im)
{
    char      sub[OMNI_JSON_PATH_MAX], sub2[OMNI_JSON_PATH_MAX];
    size_t    i;
    json_t   *b;
    unsigned  j;
    uint32_t  hour, count;

    if (omni_jarray(e, path, v) != OMNI_OK) {
        return OMNI_INVALID;
    }

    if (json_array_size(v) > OMNI_MAX_BUCKETS) {
        return omni_jfail(e, path, "more than %d buckets", OMNI_MAX_BUCKETS);
    }

    json_array_foreach(v, i, b) {
        omni_jpath_index(sub, path, i);

        if (!json_is_array(b) || json_array_size(b) != 2) {
            return omni_jfail(e, sub, "expected [hour, count]");
        }

        for (j = 0; j < 2; j++) {
            omni_jpath_index(sub2, sub, j);

            if (omni_ju32(e, sub2, json_array_get(b, j),
                          j ? 0xffff : UINT32_MAX, j ? &count : &hour)
                != OMNI_OK)
            {
                return OMNI_INVALID;
            }
        }

        /*
         * Merged by hour and kept sorted, as the writers keep them; at
         * most OMNI_MAX_BUCKETS were accepted, so there is always room.
         */
        if (count) {
            unsigned  k, nb = im->nbuckets;

            k = 0;
            while (k < nb && im->buckets[k].hour != hour) {
                k++;
            }

            if (k < nb) {
                count += im->buckets[k].count;
                im->buckets[k].count = count > 0xffff ? 0xffff : count;

            } else {
                k = nb;
                while (k > 0 && im->buckets[k - 1].hour > hour) {
                    im->buckets[k] = im->buckets[k - 1];
                    k--;
                }

                im->buckets[k].hour = hour;
                im->buckets[k].count = count;
                im->nbuckets = nb + 1;
            }
        }
    }

    return OMNI_OK;
}


static int
omni_jimpressions(omni_jerr_t *e, json_t *v, omni_profile_t *p)
{
    char          sub[OMNI_JSON_PATH_MAX], sub2[OMNI_JSON_PATH_MAX];
    size_t        i;
    unsigned      k;
    json_t       *o, *b;
    omni_impr_t  *im;

    if (omni_jarray(e, "impressions", v) != OMNI_OK
        || omni_jgrow(e, "impressions", (void **) &p->impressions,
                      p->nimpressions, json_array_size(v),
                      sizeof(omni_impr_t))
           != OMNI_OK)
    {
        return OMNI_INVALID;
    }

    json_array_foreach(v, i, o) {
        im = &p->impressions[p->nimpressions++];
        omni_jpath_index(sub, "impressions", i);

        if (omni_jitem(e, sub, o, omni_impr_fields, "buckets", im)
            != OMNI_OK)
        {
            return OMNI_INVALID;
        }

        for (k = 0; k + 1 < p->nimpressions; k++) {
            if (strcmp(p->impressions[k].campaign, im->campaign) == 0) {
                omni_jpath_key(sub2, sub, "campaign");
                return omni_jfail(e, sub2, "duplicate campaign \"%.64s\"",
                                  im->campaign);
            }
        }

        b = json_object_get(o, "buckets");

        if (b != NULL) {
            omni_jpath_key(sub2, sub, "buckets");

            if (omni_jbuckets(e, sub2, b, im) != OMNI_OK) {
                return OMNI_INVALID;
            }
        }
    }

    return OMNI_OK;
}


int
omni_profile_from_json(omni_profile_t *p, json_t *obj, char *err,
    size_t errlen)
{
    int                   rc, st;
    size_t                len;
    json_t               *v;
    const char           *key, *s;
    omni_jerr_t           e;
    const omni_jfield_t  *fd;

    e.err = err;
    e.errlen = errlen;

    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }

    if (!json_is_object(obj)) {
        return omni_jfail(&e, "", "expected an object");
    }

    v = json_object_get(obj, "id");
    if (v == NULL) {
        return omni_jfail(&e, "id", "required");
    }

    if (!json_is_string(v)
        || omni_id_parse(json_string_value(v), json_string_length(v), p->id)
           != OMNI_OK)
    {
        return omni_jfail(&e, "id", "expected 32 hex digits or a UUID");
    }

    json_object_foreach(obj, key, v) {
        rc = OMNI_OK;

        if (strcmp(key, "id") == 0) {
            continue;

        } else if ((fd = omni_jfield_find(omni_profile_fields, key))
                   != NULL)
        {
            rc = omni_jfield_get(&e, key, fd, v, p);

        } else if (strcmp(key, "stage") == 0) {
            rc = omni_jstr(&e, key, v, OMNI_MAX_STR, &s, &len);

            if (rc == OMNI_OK) {
                st = omni_stage_parse(s, len);
                if (st < 0) {
                    return omni_jfail(&e, key, "unknown stage \"%.64s\"", s);
                }

                p->stage = (unsigned) st;
            }

        } else if (strcmp(key, "consent") == 0) {
            rc = omni_jconsent(&e, v, p);

        } else if (strcmp(key, "last_seen") == 0) {
            rc = omni_jlast_seen(&e, v, p);

        } else if (strcmp(key, "aliases") == 0) {
            rc = omni_jaliases(&e, v, p);

        } else if (strcmp(key, "segments") == 0) {
            rc = omni_jsegments(&e, v, p);

        } else if (strcmp(key, "attributes") == 0) {
            rc = omni_jattributes(&e, v, p);

        } else if (strcmp(key, "cart") == 0) {
            rc = omni_jcart(&e, v, p);

        } else if (strcmp(key, "purchases") == 0) {
            rc = omni_jlist(&e, key, v, (void **) &p->purchases,
                            &p->npurchases, sizeof(omni_purchase_t),
                            omni_purchase_fields);

        } else if (strcmp(key, "impressions") == 0) {
            rc = omni_jimpressions(&e, v, p);

        } else if (strcmp(key, "views") == 0) {
            rc = omni_jlist(&e, key, v, (void **) &p->views, &p->nviews,
                            sizeof(omni_view_t), omni_view_fields);

        } else if (strcmp(key, "events") == 0) {
            rc = omni_jlist(&e, key, v, (void **) &p->events, &p->nevents,
                            sizeof(omni_evcount_t), omni_event_fields);

        } else {
            return omni_junknown(&e, "", key);
        }

        if (rc != OMNI_OK) {
            return OMNI_INVALID;
        }
    }

    return OMNI_OK;
}
