/*
 * Event ingest, first half: a Segment-shaped JSON event validated into
 * omni_event_t (omni_event.h).  Every refusal names the field at fault,
 * as a JSON path, and says why; nothing is half-accepted.  This file: a
 * call's members, its identities, privacy and the batch; the field
 * readers are in omni_event_fields.c, identify's traits and consent in
 * omni_event_traits.c.
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


/* Top-level members of a Segment call that are accepted (most ignored). */
static const char  *omni_event_keys[] = {
    "type", "event", "name", "category", "properties", "traits",
    "messageId", "timestamp", "userId", "anonymousId", "profileId",
    "context", "integrations", "sentAt", "originalTimestamp",
    "receivedAt", "version", "writeKey", "channel", "_metadata",
    "previousId", "groupId", NULL
};

static const struct {
    const char  *name;
    unsigned     id;
    unsigned     server;        /* needs a server key */
} omni_event_names[] = {
    { "Product Viewed",   OMNI_EVN_PRODUCT_VIEWED,   0 },
    { "Product Added",    OMNI_EVN_PRODUCT_ADDED,    0 },
    { "Product Removed",  OMNI_EVN_PRODUCT_REMOVED,  0 },
    { "Cart Viewed",      OMNI_EVN_CART_VIEWED,      0 },
    { "Checkout Started", OMNI_EVN_CHECKOUT_STARTED, 0 },
    { "Order Completed",  OMNI_EVN_ORDER_COMPLETED,  1 },
    { "Product Reviewed", OMNI_EVN_PRODUCT_REVIEWED, 0 },
    { "Email Opened",     OMNI_EVN_EMAIL_OPENED,     1 },
    { "Email Clicked",    OMNI_EVN_EMAIL_CLICKED,    1 },
    { "SMS Clicked",      OMNI_EVN_SMS_CLICKED,      1 },
    { "Consent Updated",  OMNI_EVN_CONSENT_UPDATED,  0 },
    { "Signed Out",       OMNI_EVN_SIGNED_OUT,       0 },
    { NULL, 0, 0 }
};


static int
omni_ev_name_id(const char *name, unsigned *server)
{
    unsigned  i;

    for (i = 0; omni_event_names[i].name; i++) {
        if (strcmp(omni_event_names[i].name, name) == 0) {
            *server = omni_event_names[i].server;
            return (int) omni_event_names[i].id;
        }
    }

    *server = 0;

    return OMNI_EVN_OTHER;
}


/* The products of an event, into ev->products. */
static int
omni_ev_products(omni_event_t *ev, omni_event_err_t *err, const char *path,
    json_t *props, int required)
{
    int       rc;
    char      sub[160];
    size_t    i, n;
    json_t   *arr, *x;

    arr = json_object_get(props, "products");

    if (arr == NULL || json_is_null(arr)) {
        if (required) {
            return omni_ev_fail(err, OMNI_INVALID, path,
                                "properties.products",
                                "required: the products ordered");
        }

        return OMNI_OK;
    }

    if (!json_is_array(arr)) {
        return omni_ev_fail(err, OMNI_INVALID, path, "properties.products",
                            "expected an array");
    }

    n = json_array_size(arr);

    if (n > OMNI_EVENT_MAX_PRODUCTS || (required && n == 0)) {
        return omni_ev_fail(err, OMNI_INVALID, path, "properties.products",
                            "expected 1 to %d products",
                            OMNI_EVENT_MAX_PRODUCTS);
    }

    if (n == 0) {
        return OMNI_OK;
    }

    ev->products = calloc(n, sizeof(omni_event_product_t));
    if (ev->products == NULL) {
        return omni_ev_fail(err, OMNI_ERROR, path, "properties.products",
                            "out of memory");
    }

    json_array_foreach(arr, i, x) {
        snprintf(sub, sizeof(sub), "%s%sproperties.products[%u]", path,
                 path[0] ? "." : "", (unsigned) i);

        ev->nproducts++;
        rc = omni_ev_product(err, sub, x, &ev->products[i], 1);

        if (rc != OMNI_OK) {
            return rc;
        }
    }

    return OMNI_OK;
}


/* The event's own data, by what it is. */
static int
omni_ev_body(omni_event_t *ev, omni_event_err_t *err, const char *path,
    json_t *props)
{
    int     rc;
    char    sub[160];
    double  total;

    snprintf(sub, sizeof(sub), "%s%sproperties", path, path[0] ? "." : "");

    switch (ev->name_id) {

    case OMNI_EVN_PRODUCT_VIEWED:
    case OMNI_EVN_PRODUCT_ADDED:
    case OMNI_EVN_PRODUCT_REMOVED:
        ev->products = calloc(1, sizeof(omni_event_product_t));
        if (ev->products == NULL) {
            return omni_ev_fail(err, OMNI_ERROR, path, "properties",
                                "out of memory");
        }

        ev->nproducts = 1;

        return omni_ev_product(err, sub, props, &ev->products[0], 1);

    case OMNI_EVN_ORDER_COMPLETED:
        ev->order_id = malloc(OMNI_EVENT_MAX_ID + 1);
        if (ev->order_id == NULL) {
            return omni_ev_fail(err, OMNI_ERROR, path, "properties",
                                "out of memory");
        }

        rc = omni_ev_id(err, sub, props, "order_id", ev->order_id,
                        OMNI_EVENT_MAX_ID + 1);
        if (rc == OMNI_NOTFOUND) {
            return omni_ev_fail(err, OMNI_INVALID, sub, "order_id",
                                "required for a purchase");
        }

        if (rc != OMNI_OK) {
            return rc;
        }

        ev->revenue = -1;

        rc = omni_ev_amount(err, sub, props, "total", &total);
        if (rc == OMNI_NOTFOUND) {
            rc = omni_ev_amount(err, sub, props, "revenue", &total);
        }

        if (rc == OMNI_INVALID) {
            return rc;
        }

        if (rc == OMNI_OK) {
            ev->revenue = total;
        }

        return omni_ev_products(ev, err, path, props, 1);

    case OMNI_EVN_CART_VIEWED:
    case OMNI_EVN_CHECKOUT_STARTED:
        /* Validated, so the feed never carries a malformed product. */
        return omni_ev_products(ev, err, path, props, 0);

    case OMNI_EVN_CONSENT_UPDATED:
        return omni_ev_consent(ev, err, path, "properties", props);

    default:
        return OMNI_OK;
    }
}


/*
 * An anonymousId (or an alias call's previousId) as Segment libraries send
 * it: any id of 1 to 128 characters.  One that is our own id (32 hex
 * digits, or the same id as a UUID) gives the 'a' identity; any other
 * form (analytics.js's UUID, "anon-42") is kept as sent, an
 * OMNI_ALIAS_ANON alias, so joins on Segment's ids work.  The feed
 * always shows the id exactly as sent.
 */
static int
omni_ev_anon(omni_event_t *ev, omni_event_err_t *err, const char *path,
    json_t *obj, const char *key, omni_event_ident_t *anon,
    omni_event_ident_t *sent)
{
    int            rc;
    char           buf[OMNI_EVENT_MAX_ID + 1];
    size_t         len;
    unsigned char  raw[OMNI_ID_LEN];

    rc = omni_ev_id(err, path, obj, key, buf, sizeof(buf));
    if (rc != OMNI_OK) {
        return rc;
    }

    len = strlen(buf);

    if (ev->feed_extra == NULL) {
        ev->feed_extra = json_object();
    }

    if (ev->feed_extra == NULL
        || json_object_set_new(ev->feed_extra, key, json_string(buf)) != 0)
    {
        return omni_ev_fail(err, OMNI_ERROR, path, key, "out of memory");
    }

    if (omni_id_parse(buf, len, raw) == OMNI_OK) {
        anon->kind = 'a';
        omni_id_hex(raw, anon->value);
        anon->len = OMNI_ID_HEX_LEN;

        if (len == OMNI_ID_HEX_LEN) {
            /* our own form: nothing more to keep */
            return OMNI_OK;
        }
    }

    sent->kind = OMNI_ALIAS_ANON;
    sent->len = len;
    memcpy(sent->value, buf, len + 1);

    return OMNI_OK;
}


/*
 * What Segment's calls carry beyond the event itself, kept for the feed:
 * page and screen names and categories, the sender's context (library,
 * page, userAgent, ...; its ip only where configured, c->keep_ip; never
 * an email address in context.traits), alias's previousId and group's
 * groupId.  An alias
 * names a customer and a group sets the account on the profile: both
 * need a server key, as identify with a userId does.
 */
static int
omni_ev_segment(omni_event_t *ev, omni_event_err_t *err, const char *path,
    json_t *obj, const omni_event_ctx_t *c)
{
    int          rc;
    json_t      *v, *ctx, *t;
    size_t       len;
    unsigned     i;
    const char  *s;
    static const char  *names[] = { "name", "category", NULL };

    if (ev->feed_extra == NULL) {
        ev->feed_extra = json_object();
        if (ev->feed_extra == NULL) {
            return omni_ev_fail(err, OMNI_ERROR, path, "", "out of memory");
        }
    }

    for (i = 0; names[i]; i++) {
        rc = omni_ev_str(err, path, obj, names[i], OMNI_EVENT_MAX_STR, &s,
                         &len);
        if (rc == OMNI_INVALID) {
            return rc;
        }

        if (rc == OMNI_OK) {
            (void) json_object_set_new(ev->feed_extra, names[i],
                                       json_stringn(s, len));
        }
    }

    v = json_object_get(obj, "context");

    if (json_is_object(v)) {
        ctx = json_deep_copy(v);
        if (ctx == NULL) {
            return omni_ev_fail(err, OMNI_ERROR, path, "context",
                                "out of memory");
        }

        /* the module's own member, and what must not be kept */
        (void) json_object_del(ctx, "source");

        /* the sender's ip: where configured, a server's or ours */
        t = json_object_get(ctx, "ip");

        if (!(c->source & OMNI_SRC_KEEP_IP)
            || (c->trust != OMNI_TRUST_SERVER
                && !(c->source & OMNI_SRC_IP_SET))
            || !json_is_string(t) || json_string_length(t) > 64)
        {
            (void) json_object_del(ctx, "ip");
        }

        t = json_object_get(ctx, "traits");
        if (json_is_object(t)) {
            (void) json_object_del(t, "email");
        }

        (void) json_object_set_new(ev->feed_extra, "context", ctx);
    }

    if (ev->type == OMNI_EV_GROUP) {
        rc = omni_ev_id(err, path, obj, "groupId", ev->group_id,
                        sizeof(ev->group_id));
        if (rc == OMNI_NOTFOUND) {
            return omni_ev_fail(err, OMNI_INVALID, path, "groupId",
                                "required for a group call");
        }

        if (rc != OMNI_OK) {
            return rc;
        }

        (void) json_object_set_new(ev->feed_extra, "groupId",
                                   json_string(ev->group_id));

    } else if (json_object_get(obj, "groupId") != NULL) {
        return omni_ev_fail(err, OMNI_INVALID, path, "groupId",
                            "only group calls carry a groupId");
    }

    if (ev->type == OMNI_EV_ALIAS) {
        if (json_object_get(obj, "previousId") == NULL) {
            return omni_ev_fail(err, OMNI_INVALID, path, "previousId",
                                "required for an alias call");
        }

        if (json_object_get(obj, "anonymousId") != NULL) {
            return omni_ev_fail(err, OMNI_INVALID, path, "anonymousId",
                                "an alias call names previousId and "
                                "userId");
        }

        if (json_object_get(obj, "userId") == NULL
            && c->trust == OMNI_TRUST_SERVER)
        {
            return omni_ev_fail(err, OMNI_INVALID, path, "userId",
                                "required for an alias call");
        }

    } else if (json_object_get(obj, "previousId") != NULL) {
        return omni_ev_fail(err, OMNI_INVALID, path, "previousId",
                            "only alias calls carry a previousId");
    }

    if ((ev->type == OMNI_EV_ALIAS || ev->type == OMNI_EV_GROUP)
        && c->trust == OMNI_TRUST_CLIENT)
    {
        return omni_ev_fail(err, OMNI_EVENT_FORBIDDEN, path, "type",
                            "%s calls need a server key",
                            ev->type == OMNI_EV_ALIAS ? "alias" : "group");
    }

    return OMNI_OK;
}


/*
 * What a page-like object (a context.page, an event's properties) says
 * about where the visitor came from: the referrer, the search string,
 * utm_* members and the query or fragment of its URL, where click ids
 * (gclid, fbclid, ...) travel.  Removed in place.
 */
static void
omni_ev_privacy_page(json_t *o)
{
    json_t      *v;
    void        *tmp;
    const char  *k, *s;
    size_t       n;

    (void) json_object_del(o, "referrer");
    (void) json_object_del(o, "search");

    json_object_foreach_safe(o, tmp, k, v) {
        if (strncmp(k, "utm_", 4) == 0) {
            (void) json_object_del(o, k);
        }
    }

    v = json_object_get(o, "url");

    if (json_is_string(v)) {
        s = json_string_value(v);
        n = strcspn(s, "?#");

        if (s[n] != '\0') {
            /* jansson copies before it frees the old value */
            (void) json_string_setn(v, s, n);
        }
    }
}


/*
 * Sec-GPC: 1 or DNT: 1 on the request of a browser or app (c->source):
 * an opt-out of sale or sharing (docs/privacy.md).  The feed's copy of
 * its event keeps no referrer, no campaign data, no click ids in URLs
 * and no advertising id, and is marked context.privacy, as a page
 * view's touchpoint is.  What the event does to the profile is the same.
 */
static int
omni_ev_privacy(omni_event_t *ev, omni_event_err_t *err, const char *path,
    const omni_event_ctx_t *c)
{
    json_t  *ctx, *o, *props;

    if (!(c->source & (OMNI_SRC_GPC | OMNI_SRC_DNT))) {
        return OMNI_OK;
    }

    ctx = ev->feed_extra ? json_object_get(ev->feed_extra, "context") : NULL;

    if (ctx == NULL) {
        if (ev->feed_extra == NULL) {
            ev->feed_extra = json_object();
        }

        ctx = json_object();

        if (ev->feed_extra == NULL || ctx == NULL
            || json_object_set_new(ev->feed_extra, "context", ctx) != 0)
        {
            return omni_ev_fail(err, OMNI_ERROR, path, "context",
                                "out of memory");
        }
    }

    (void) json_object_del(ctx, "campaign");
    (void) json_object_del(ctx, "referrer");

    o = json_object_get(ctx, "page");
    if (json_is_object(o)) {
        omni_ev_privacy_page(o);
    }

    o = json_object_get(ctx, "device");
    if (json_is_object(o)) {
        (void) json_object_del(o, "advertisingId");
    }

    if (json_object_set_new(ctx, "privacy",
                            json_string((c->source & OMNI_SRC_GPC)
                                        ? "gpc" : "dnt"))
        != 0)
    {
        return omni_ev_fail(err, OMNI_ERROR, path, "context",
                            "out of memory");
    }

    if (json_is_object(ev->properties)) {
        /* a copy: the parsed body is the caller's */
        props = json_deep_copy(ev->properties);
        if (props == NULL) {
            return omni_ev_fail(err, OMNI_ERROR, path, "properties",
                                "out of memory");
        }

        json_decref(ev->properties);
        ev->properties = props;
        omni_ev_privacy_page(props);
    }

    return OMNI_OK;
}


/* The identities an event names, with the trust rules applied. */
static int
omni_ev_idents(omni_event_t *ev, omni_event_err_t *err, const char *path,
    json_t *obj, const omni_event_ctx_t *c, omni_event_ident_t *email)
{
    int                  rc;
    omni_event_ident_t  *id;
    omni_event_ident_t   anon, sent;

    rc = omni_ev_id(err, path, obj, "userId", ev->user_id,
                    sizeof(ev->user_id));
    if (rc == OMNI_INVALID) {
        return rc;
    }

    if (rc == OMNI_OK && c->trust == OMNI_TRUST_CLIENT) {
        return omni_ev_fail(err, OMNI_EVENT_FORBIDDEN, path, "userId",
                            "naming a customer needs a server key");
    }

    if (json_object_get(obj, "profileId") != NULL
        && c->trust == OMNI_TRUST_CLIENT)
    {
        return omni_ev_fail(err, OMNI_EVENT_FORBIDDEN, path, "profileId",
                            "naming a profile needs a server key");
    }

    memset(&anon, 0, sizeof(anon));
    memset(&sent, 0, sizeof(sent));

    rc = omni_ev_anon(ev, err, path, obj,
                      ev->type == OMNI_EV_ALIAS ? "previousId"
                                                : "anonymousId",
                      &anon, &sent);
    if (rc == OMNI_INVALID) {
        return rc;
    }

    if (c->trust == OMNI_TRUST_CLIENT) {
        /*
         * A browser or app speaks for itself only: the requesting
         * visitor is the subject.  An anonymousId of its own making
         * (analytics.js keeps a UUID in localStorage) is a soft alias
         * of that visitor: linked while nobody else holds it, never
         * used to find, merge or take over a profile, so naming
         * another visitor's id achieves nothing.
         */
        id = &ev->idents[ev->nidents++];
        id->kind = c->visitor_kind;
        omni_id_hex(c->visitor, id->value);
        id->len = OMNI_ID_HEX_LEN;

        if (anon.kind && !sent.kind
            && memcmp(anon.value, id->value, OMNI_ID_HEX_LEN))
        {
            /* another visitor's id in our own form: a spoof */
            return omni_ev_fail(err, OMNI_EVENT_FORBIDDEN, path,
                                "anonymousId",
                                "does not match the requesting visitor; "
                                "naming another visitor needs a server "
                                "key");
        }

        if (sent.kind
            && !(anon.kind
                 && memcmp(anon.value, id->value, OMNI_ID_HEX_LEN) == 0))
        {
            sent.soft = 1;
            ev->idents[ev->nidents++] = sent;
        }

        return OMNI_OK;
    }

    /* Server trust: the body names the subject. */
    rc = omni_ev_hex_id(err, path, obj, "profileId",
                        &ev->idents[ev->nidents], 'p');
    if (rc == OMNI_INVALID) {
        return rc;
    }

    if (rc == OMNI_OK) {
        ev->nidents++;
    }

    if (ev->user_id[0]) {
        if (strlen(ev->user_id) > OMNI_ALIAS_MAX_LEN) {
            return omni_ev_fail(err, OMNI_INVALID, path, "userId",
                                "longer than %d bytes", OMNI_ALIAS_MAX_LEN);
        }

        id = &ev->idents[ev->nidents++];
        id->kind = OMNI_ALIAS_CUSTOMER;
        id->len = strlen(ev->user_id);
        memcpy(id->value, ev->user_id, id->len + 1);
    }

    if (sent.kind) {
        /* a Segment anonymousId as sent: found and linked as such */
        ev->idents[ev->nidents++] = sent;
    }

    if (anon.kind) {
        ev->idents[ev->nidents++] = anon;

    } else if (c->visitor_kind && !sent.kind) {
        /* An upstream's signal is about the visitor it answered. */
        id = &ev->idents[ev->nidents++];
        id->kind = c->visitor_kind;
        omni_id_hex(c->visitor, id->value);
        id->len = OMNI_ID_HEX_LEN;
    }

    if (email->kind) {
        ev->idents[ev->nidents++] = *email;
    }

    if (ev->nidents == 0) {
        return omni_ev_fail(err, OMNI_INVALID, path, "userId",
                            "an event needs userId, anonymousId, profileId "
                            "or traits.email");
    }

    return OMNI_OK;
}


static int
omni_ev_parse(omni_event_t *ev, json_t *obj, const omni_event_ctx_t *c,
    const char *path, omni_event_err_t *err)
{
    int                  rc, ch;
    char                 sub[160];
    size_t               len;
    json_t              *v, *props, *traits, *ctxo;
    unsigned             i, server;
    uint32_t             t;
    const char          *k, *s;
    unsigned char        rnd[OMNI_ID_LEN];
    omni_event_ident_t   email;

    memset(ev, 0, sizeof(omni_event_t));
    memset(&email, 0, sizeof(email));
    ev->trust = c->trust;
    ev->source = c->source & OMNI_SRC_MASK;
    ev->revenue = -1;

    if (!json_is_object(obj)) {
        return omni_ev_fail(err, OMNI_INVALID, path, NULL,
                            "expected an event object");
    }

    if (c->trust == OMNI_TRUST_CLIENT && c->visitor_kind == 0) {
        return omni_ev_fail(err, OMNI_EVENT_FORBIDDEN, path, "anonymousId",
                            "no visitor: send the cookie or app token, or "
                            "a server key");
    }

    json_object_foreach(obj, k, v) {
        for (i = 0; omni_event_keys[i]; i++) {
            if (strcmp(k, omni_event_keys[i]) == 0) {
                break;
            }
        }

        if (omni_event_keys[i] == NULL) {
            return omni_ev_fail(err, OMNI_INVALID, path, k, "unknown field");
        }
    }

    if (omni_ev_depth(obj, OMNI_EVENT_MAX_DEPTH) > OMNI_EVENT_MAX_DEPTH) {
        return omni_ev_fail(err, OMNI_INVALID, path, NULL,
                            "nested deeper than %d levels",
                            OMNI_EVENT_MAX_DEPTH);
    }

    /* type */
    rc = omni_ev_str(err, path, obj, "type", 16, &s, &len);
    if (rc == OMNI_NOTFOUND && c->type) {
        /* Segment's /v1/track and friends: the path names the type */
        rc = OMNI_OK;
        s = omni_event_type_name(c->type);
    }

    if (rc == OMNI_NOTFOUND) {
        return omni_ev_fail(err, OMNI_INVALID, path, "type",
                            "required: track, identify, page, screen, "
                            "alias or group");
    }

    if (rc != OMNI_OK) {
        return rc;
    }

    if (strcmp(s, "track") == 0) {
        ev->type = OMNI_EV_TRACK;

    } else if (strcmp(s, "identify") == 0) {
        ev->type = OMNI_EV_IDENTIFY;

    } else if (strcmp(s, "page") == 0) {
        ev->type = OMNI_EV_PAGE;

    } else if (strcmp(s, "screen") == 0) {
        ev->type = OMNI_EV_SCREEN;

    } else if (strcmp(s, "alias") == 0) {
        ev->type = OMNI_EV_ALIAS;

    } else if (strcmp(s, "group") == 0) {
        ev->type = OMNI_EV_GROUP;

    } else {
        return omni_ev_fail(err, OMNI_INVALID, path, "type",
                            "expected track, identify, page, screen, alias "
                            "or group");
    }

    /* event: required for track, its name otherwise */
    server = 0;

    if (ev->type == OMNI_EV_TRACK) {
        rc = omni_ev_str(err, path, obj, "event", OMNI_EVENT_MAX_NAME, &s,
                         &len);
        if (rc == OMNI_NOTFOUND) {
            return omni_ev_fail(err, OMNI_INVALID, path, "event",
                                "required for a track call");
        }

        if (rc != OMNI_OK) {
            return rc;
        }

        memcpy(ev->name, s, len + 1);
        ev->name_id = (unsigned) omni_ev_name_id(ev->name, &server);

    } else {
        strcpy(ev->name, ev->type == OMNI_EV_IDENTIFY ? "Identify"
                         : ev->type == OMNI_EV_PAGE ? "Page Viewed"
                         : ev->type == OMNI_EV_SCREEN ? "Screen Viewed"
                         : ev->type == OMNI_EV_ALIAS ? "Alias" : "Group");
    }

    rc = omni_ev_segment(ev, err, path, obj, c);
    if (rc != OMNI_OK) {
        return rc;
    }

    /* messageId: the idempotency key; one is made up when absent */
    rc = omni_ev_id(err, path, obj, "messageId", ev->message_id,
                    sizeof(ev->message_id));
    if (rc == OMNI_INVALID) {
        return rc;
    }

    if (rc == OMNI_NOTFOUND && c->need_message_id) {
        return omni_ev_fail(err, OMNI_INVALID, path, "messageId",
                            "required in a signed request (a replay must "
                            "be a duplicate)");
    }

    if (rc == OMNI_NOTFOUND) {
        if (omni_id_random(rnd) != OMNI_OK) {
            return omni_ev_fail(err, OMNI_ERROR, path, "messageId",
                                "no randomness");
        }

        memcpy(ev->message_id, "omni-", 5);
        omni_id_hex(rnd, ev->message_id + 5);
    }

    /* timestamp */
    ev->time = c->now;
    v = json_object_get(obj, "timestamp");

    if (v != NULL && !json_is_null(v)) {
        if (!json_is_string(v)
            || omni_event_parse_time(json_string_value(v),
                                     json_string_length(v), &t)
               != OMNI_OK)
        {
            return omni_ev_fail(err, OMNI_INVALID, path, "timestamp",
                                "expected an ISO 8601 time such as "
                                "2026-11-24T13:20:05Z");
        }

        if (t > c->now + OMNI_EVENT_MAX_FUTURE) {
            return omni_ev_fail(err, OMNI_INVALID, path, "timestamp",
                                "more than a day in the future");
        }

        /* Small clock skew: never record the future. */
        ev->time = t < c->now ? t : c->now;
    }

    /* properties */
    props = json_object_get(obj, "properties");

    if (props == NULL || json_is_null(props)) {
        props = NULL;

    } else if (!json_is_object(props)) {
        return omni_ev_fail(err, OMNI_INVALID, path, "properties",
                            "expected an object");
    }

    /* channel: properties.channel, then channel, then context.channel */
    ch = -1;

    rc = props ? omni_ev_str(err, path, props, "channel", 16, &s, &len)
               : OMNI_NOTFOUND;
    if (rc == OMNI_INVALID) {
        snprintf(err->field, sizeof(err->field), "%s%sproperties.channel",
                 path, path[0] ? "." : "");
        return rc;
    }

    if (rc == OMNI_OK) {
        ch = omni_ev_channel_name(s, len);
        if (ch < 0) {
            return omni_ev_fail(err, OMNI_INVALID, path,
                                "properties.channel",
                                "expected web, app, email, sms, pos, ads, "
                                "call or other");
        }
    }

    if (ch < 0) {
        rc = omni_ev_str(err, path, obj, "channel", 16, &s, &len);
        if (rc == OMNI_INVALID) {
            return rc;
        }

        if (rc == OMNI_OK) {
            ch = omni_ev_channel_name(s, len);
            if (ch < 0) {
                return omni_ev_fail(err, OMNI_INVALID, path, "channel",
                                    "expected web, app, email, sms, pos, "
                                    "ads, call, other, browser, mobile or "
                                    "server");
            }
        }
    }

    ctxo = json_object_get(obj, "context");

    if (ctxo != NULL && !json_is_null(ctxo) && !json_is_object(ctxo)) {
        return omni_ev_fail(err, OMNI_INVALID, path, "context",
                            "expected an object");
    }

    if (ch < 0 && json_is_object(ctxo)) {
        v = json_object_get(ctxo, "channel");
        if (json_is_string(v)) {
            ch = omni_ev_channel_name(json_string_value(v),
                                      json_string_length(v));
        }
    }

    if (ch < 0) {
        switch (ev->name_id) {
        case OMNI_EVN_EMAIL_OPENED:
        case OMNI_EVN_EMAIL_CLICKED:
            ch = OMNI_CH_EMAIL;
            break;
        case OMNI_EVN_SMS_CLICKED:
            ch = OMNI_CH_SMS;
            break;
        default:
            ch = (c->channel < OMNI_CH_MAX) ? (int) c->channel
                                            : OMNI_CH_OTHER;
        }
    }

    ev->channel = (unsigned) ch;

    /* trust: what a browser or app may not claim */
    if (c->trust == OMNI_TRUST_CLIENT) {
        if (server) {
            return omni_ev_fail(err, OMNI_EVENT_FORBIDDEN, path, "event",
                                "\"%s\" needs a server key", ev->name);
        }

        if (ev->channel != c->channel
            && !(ev->channel == OMNI_CH_WEB || ev->channel == OMNI_CH_APP))
        {
            return omni_ev_fail(err, OMNI_EVENT_FORBIDDEN, path, "channel",
                                "events of the %s channel need a server "
                                "key", omni_channel_name(ev->channel));
        }
    }

    /* identify: traits */
    traits = json_object_get(obj, "traits");

    if (traits == NULL && json_is_object(ctxo)) {
        /* Segment puts an identified user's traits here on track calls */
        v = json_object_get(ctxo, "traits");
        if (json_is_object(v) && json_object_get(v, "email") != NULL
            && c->trust == OMNI_TRUST_SERVER)
        {
            /* hashed as traits.email is; not an address: ignored */
            v = json_object_get(v, "email");
            if (json_is_string(v)) {
                (void) omni_ev_email(json_string_value(v),
                                     json_string_length(v), &email);
            }
        }
    }

    if (traits != NULL && !json_is_null(traits)
        && ev->type == OMNI_EV_GROUP)
    {
        /* the account's traits: for the feed only (email removed) */
        if (!json_is_object(traits)) {
            return omni_ev_fail(err, OMNI_INVALID, path, "traits",
                                "expected an object");
        }

        ev->traits_json = json_deep_copy(traits);
        if (ev->traits_json == NULL) {
            return omni_ev_fail(err, OMNI_ERROR, path, "traits",
                                "out of memory");
        }

        (void) json_object_del(ev->traits_json, "email");
        traits = NULL;
    }

    if (traits != NULL && !json_is_null(traits)) {
        if (ev->type != OMNI_EV_IDENTIFY) {
            return omni_ev_fail(err, OMNI_INVALID, path, "traits",
                                "only identify calls carry traits (use "
                                "properties)");
        }

        rc = omni_ev_traits(ev, err, path, traits,
                            c->trust == OMNI_TRUST_CLIENT, &email);
        if (rc != OMNI_OK) {
            return rc;
        }
    }

    rc = omni_ev_idents(ev, err, path, obj, c, &email);
    if (rc != OMNI_OK) {
        return rc;
    }

    /* a sign-out is about a browser or device, not a customer */
    if (ev->name_id == OMNI_EVN_SIGNED_OUT) {
        for (i = 0; i < ev->nidents; i++) {
            if (ev->idents[i].kind == OMNI_ALIAS_COOKIE
                || ev->idents[i].kind == OMNI_ALIAS_DEVICE
                || ev->idents[i].kind == 'a')
            {
                break;
            }
        }

        if (i == ev->nidents) {
            return omni_ev_fail(err, OMNI_INVALID, path, "anonymousId",
                                "\"Signed Out\" needs the browser or "
                                "device that signs out (its cookie or "
                                "token, or anonymousId)");
        }
    }

    if (props) {
        rc = omni_ev_body(ev, err, path, props);
        if (rc != OMNI_OK) {
            return rc;
        }

        ev->properties = json_incref(props);

    } else if (ev->name_id == OMNI_EVN_PRODUCT_VIEWED
               || ev->name_id == OMNI_EVN_PRODUCT_ADDED
               || ev->name_id == OMNI_EVN_PRODUCT_REMOVED
               || ev->name_id == OMNI_EVN_ORDER_COMPLETED
               || ev->name_id == OMNI_EVN_CONSENT_UPDATED)
    {
        snprintf(sub, sizeof(sub), "\"%s\" needs properties", ev->name);
        return omni_ev_fail(err, OMNI_INVALID, path, "properties", "%s",
                            sub);
    }

    return omni_ev_privacy(ev, err, path, c);
}


int
omni_event_parse(omni_event_t *ev, json_t *obj, const omni_event_ctx_t *c,
    const char *path, omni_event_err_t *err)
{
    int  rc;

    rc = omni_ev_parse(ev, obj, c, path, err);

    if (rc != OMNI_OK) {
        /* nothing is half-accepted, and nothing is left to free */
        omni_event_free(ev);
    }

    return rc;
}


void
omni_event_free(omni_event_t *ev)
{
    unsigned  i;

    for (i = 0; i < ev->nproducts; i++) {
        omni_ev_product_free(&ev->products[i]);
    }

    for (i = 0; i < ev->ntraits; i++) {
        free(ev->traits[i].key);
        free(ev->traits[i].str);
    }

    for (i = 0; i < ev->nunset; i++) {
        free(ev->unset[i]);
    }

    free(ev->products);
    free(ev->order_id);
    free(ev->traits);
    free(ev->unset);
    json_decref(ev->properties);
    json_decref(ev->traits_json);
    json_decref(ev->feed_extra);

    memset(ev, 0, sizeof(omni_event_t));
}


int
omni_event_batch_parse(omni_event_batch_t *b, const char *text, size_t len,
    const omni_event_ctx_t *c, omni_event_err_t *err)
{
    char          path[32];
    size_t        i, n;
    json_t       *root, *arr, *x;
    const char   *k;
    json_error_t  jerr;

    memset(b, 0, sizeof(omni_event_batch_t));

    /* JSON_REJECT_DUPLICATES: a key given twice is ambiguous. */
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                      &jerr);

    if (root == NULL) {
        snprintf(err->field, sizeof(err->field), "body");
        snprintf(err->reason, sizeof(err->reason),
                 "invalid JSON at line %d, column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        return OMNI_INVALID;
    }

    /* Nesting first: nothing of a too deep body is looked at. */
    if (omni_ev_depth(root, OMNI_EVENT_MAX_DEPTH + 2)
        > OMNI_EVENT_MAX_DEPTH + 2)
    {
        json_decref(root);
        return omni_ev_fail(err, OMNI_INVALID, "", "body",
                            "nested deeper than %d levels",
                            OMNI_EVENT_MAX_DEPTH);
    }

    arr = NULL;

    if (json_is_array(root)) {
        arr = root;

    } else if (json_is_object(root) && json_object_get(root, "batch")) {
        json_object_foreach(root, k, x) {
            /* the envelopes of Segment's libraries: analytics-node's
               timestamp, analytics-go's messageId and context */
            if (strcmp(k, "batch") != 0 && strcmp(k, "context") != 0
                && strcmp(k, "sentAt") != 0 && strcmp(k, "writeKey") != 0
                && strcmp(k, "integrations") != 0
                && strcmp(k, "timestamp") != 0
                && strcmp(k, "messageId") != 0)
            {
                /* k lives in root: named before root is freed */
                (void) omni_ev_fail(err, OMNI_INVALID, "", k,
                                    "unknown field next to \"batch\"");
                json_decref(root);
                return OMNI_INVALID;
            }
        }

        arr = json_object_get(root, "batch");

        if (!json_is_array(arr)) {
            json_decref(root);
            return omni_ev_fail(err, OMNI_INVALID, "", "batch",
                                "expected an array of events");
        }

    } else if (!json_is_object(root)) {
        json_decref(root);
        return omni_ev_fail(err, OMNI_INVALID, "", "body",
                            "expected an event object or a batch");
    }

    n = arr ? json_array_size(arr) : 1;

    if (arr && (n == 0 || n > OMNI_EVENT_MAX_BATCH)) {
        json_decref(root);
        return omni_ev_fail(err, OMNI_INVALID, "", "batch",
                            "expected 1 to %d events",
                            OMNI_EVENT_MAX_BATCH);
    }

    b->batch = arr != NULL;
    b->events = calloc(n, sizeof(omni_event_t));
    b->rc = calloc(n, sizeof(int));
    b->errs = calloc(n, sizeof(omni_event_err_t));

    if (b->events == NULL || b->rc == NULL || b->errs == NULL) {
        json_decref(root);
        omni_event_batch_free(b);
        return omni_ev_fail(err, OMNI_ERROR, "", "body", "out of memory");
    }

    b->n = (unsigned) n;

    for (i = 0; i < n; i++) {
        x = arr ? json_array_get(arr, i) : root;

        if (arr) {
            snprintf(path, sizeof(path), "batch[%u]", (unsigned) i);

        } else {
            path[0] = '\0';
        }

        b->rc[i] = omni_event_parse(&b->events[i], x, c, path, &b->errs[i]);
    }

    json_decref(root);

    return OMNI_OK;
}


void
omni_event_batch_free(omni_event_batch_t *b)
{
    unsigned  i;

    for (i = 0; i < b->n; i++) {
        if (b->rc[i] == OMNI_OK) {
            omni_event_free(&b->events[i]);
        }
    }

    free(b->events);
    free(b->rc);
    free(b->errs);

    memset(b, 0, sizeof(omni_event_batch_t));
}


const char *
omni_event_type_name(unsigned type)
{
    static const char  *names[] = { "", "track", "identify", "page",
                                    "screen", "alias", "group" };

    return type <= OMNI_EV_GROUP ? names[type] : "";
}


unsigned
omni_event_type_parse(const char *s, size_t len)
{
    unsigned  i;

    for (i = OMNI_EV_TRACK; i <= OMNI_EV_GROUP; i++) {
        if (strlen(omni_event_type_name(i)) == len
            && memcmp(omni_event_type_name(i), s, len) == 0)
        {
            return i;
        }
    }

    return 0;
}


const char *
omni_event_status_name(int status)
{
    switch (status) {
    case OMNI_EVENT_ACCEPTED:
        return "accepted";
    case OMNI_EVENT_DUPLICATE:
        return "duplicate";
    default:
        return "failed";
    }
}
