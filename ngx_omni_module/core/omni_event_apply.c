/*
 * Event ingest, second half: a validated event applied inside a write
 * transaction (the module's writer thread, omnictl).  In order:
 *
 *   1. idempotency: a messageId (and a purchase's order id) seen before
 *      makes the event a duplicate that changes nothing;
 *   2. identity: the identities the event names are resolved and, when
 *      they belong to several profiles of the same person, stitched into
 *      one (omni_merge.h); a profile of another customer is never merged,
 *      it only loses the device or cookie that now belongs to this one;
 *   3. the profile change the event means (cart, views, purchases,
 *      traits, counters, last seen, stage);
 *   4. the event's touchpoint in the feed, with the event's messageId.
 *
 * Everything happens in the caller's transaction: it commits (and is
 * synced) with the rest of the batch, or not at all.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "omni_event.h"
#include "omni_merge.h"
#include "omni_update.h"
#include "omni_record_int.h"


static char *
omni_ev_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}


/* ---- profile changes ---- */

static int
omni_ev_view(omni_profile_t *p, const omni_event_product_t *pr, uint32_t t)
{
    unsigned      i;
    omni_view_t  *v;

    /* One entry per sku, the newest last. */
    for (i = 0; i < p->nviews; i++) {
        if (strcmp(p->views[i].sku, pr->sku) == 0) {
            free(p->views[i].sku);
            free(p->views[i].category);
            memmove(&p->views[i], &p->views[i + 1],
                    (p->nviews - i - 1) * sizeof(omni_view_t));
            p->nviews--;
            break;
        }
    }

    if (omni_grow((void **) &p->views, p->nviews, sizeof(omni_view_t))
        != OMNI_OK)
    {
        return OMNI_ERROR;
    }

    v = &p->views[p->nviews];
    memset(v, 0, sizeof(omni_view_t));
    v->sku = omni_ev_strdup(pr->sku);
    v->category = omni_ev_strdup(pr->category);
    v->time = t;
    v->price = pr->price;
    p->nviews++;

    return v->sku ? OMNI_OK : OMNI_ERROR;
}


static void
omni_ev_cart_drop(omni_profile_t *p, unsigned i)
{
    omni_cart_item_t  *c;

    c = &p->cart[i];
    free(c->sku);
    free(c->name);
    free(c->category);
    free(c->url);
    free(c->image);
    memmove(&p->cart[i], &p->cart[i + 1],
            (p->ncart - i - 1) * sizeof(omni_cart_item_t));
    p->ncart--;
}


/* Replaces *dst with a copy of src when src is given. */
static int
omni_ev_set(char **dst, const char *src)
{
    char  *s;

    if (src == NULL) {
        return OMNI_OK;
    }

    s = strdup(src);
    if (s == NULL) {
        return OMNI_ERROR;
    }

    free(*dst);
    *dst = s;

    return OMNI_OK;
}


static int
omni_ev_cart_add(omni_profile_t *p, const omni_event_product_t *pr)
{
    unsigned           i, qty;
    omni_cart_item_t  *c;

    qty = pr->qty ? pr->qty : 1;

    for (i = 0; i < p->ncart; i++) {
        c = &p->cart[i];

        if (strcmp(c->sku, pr->sku) == 0) {
            c->qty = (c->qty + qty > 10000) ? 10000 : c->qty + qty;

            if (pr->price > 0) {
                c->price = pr->price;
            }

            if (omni_ev_set(&c->name, pr->name) != OMNI_OK
                || omni_ev_set(&c->category, pr->category) != OMNI_OK
                || omni_ev_set(&c->url, pr->url) != OMNI_OK
                || omni_ev_set(&c->image, pr->image) != OMNI_OK)
            {
                return OMNI_ERROR;
            }

            return OMNI_OK;
        }
    }

    if (omni_grow((void **) &p->cart, p->ncart, sizeof(omni_cart_item_t))
        != OMNI_OK)
    {
        return OMNI_ERROR;
    }

    c = &p->cart[p->ncart];
    memset(c, 0, sizeof(omni_cart_item_t));
    c->sku = omni_ev_strdup(pr->sku);
    c->name = omni_ev_strdup(pr->name);
    c->category = omni_ev_strdup(pr->category);
    c->url = omni_ev_strdup(pr->url);
    c->image = omni_ev_strdup(pr->image);
    c->qty = qty;
    c->price = pr->price;
    p->ncart++;

    if (c->sku == NULL || (pr->name && c->name == NULL)
        || (pr->category && c->category == NULL)
        || (pr->url && c->url == NULL) || (pr->image && c->image == NULL))
    {
        return OMNI_ERROR;
    }

    return OMNI_OK;
}


/* Removes qty of sku (all of it when qty is 0). */
static void
omni_ev_cart_remove(omni_profile_t *p, const char *sku, uint32_t qty)
{
    unsigned  i;

    for (i = 0; i < p->ncart; i++) {
        if (strcmp(p->cart[i].sku, sku) == 0) {
            if (qty && qty < p->cart[i].qty) {
                p->cart[i].qty -= qty;

            } else {
                omni_ev_cart_drop(p, i);
            }

            return;
        }
    }
}


/* Whether the purchase history already has the order. */
static int
omni_ev_has_order(const omni_profile_t *p, const char *order_id)
{
    unsigned  j;

    for (j = 0; j < p->npurchases; j++) {
        if (p->purchases[j].order_id
            && strcmp(p->purchases[j].order_id, order_id) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static int
omni_ev_purchase(omni_profile_t *p, const omni_event_t *ev)
{
    double            total;
    unsigned          i;
    omni_purchase_t  *pu;

    /* (an order already in the history never gets here: apply stops it
       as a duplicate before linking anything) */
    total = 0.0;

    for (i = 0; i < ev->nproducts; i++) {
        if (omni_grow((void **) &p->purchases, p->npurchases,
                         sizeof(omni_purchase_t))
            != OMNI_OK)
        {
            return OMNI_ERROR;
        }

        pu = &p->purchases[p->npurchases];
        memset(pu, 0, sizeof(omni_purchase_t));
        pu->sku = omni_ev_strdup(ev->products[i].sku);
        pu->order_id = omni_ev_strdup(ev->order_id);
        pu->category = omni_ev_strdup(ev->products[i].category);
        pu->channel = ev->channel;
        pu->time = ev->time;
        pu->price = ev->products[i].price;
        pu->qty = ev->products[i].qty ? ev->products[i].qty : 1;
        p->npurchases++;

        if (pu->sku == NULL || pu->order_id == NULL
            || (ev->products[i].category && pu->category == NULL))
        {
            return OMNI_ERROR;
        }

        total += pu->price * pu->qty;

        /* What was bought, on any channel, leaves the cart. */
        omni_ev_cart_remove(p, ev->products[i].sku, 0);
    }

    if (p->orders != UINT32_MAX) {
        p->orders++;
    }

    p->revenue += ev->revenue >= 0 ? ev->revenue : total;

    return OMNI_OK;
}


static int
omni_ev_count(omni_profile_t *p, const char *name, uint32_t t)
{
    unsigned         i;
    omni_evcount_t  *e;

    for (i = 0; i < p->nevents; i++) {
        e = &p->events[i];

        if (strcmp(e->name, name) == 0) {
            if (e->count != UINT32_MAX) {
                e->count++;
            }

            if (t > e->last) {
                e->last = t;
            }

            return OMNI_OK;
        }
    }

    if (omni_grow((void **) &p->events, p->nevents,
                     sizeof(omni_evcount_t))
        != OMNI_OK)
    {
        return OMNI_ERROR;
    }

    e = &p->events[p->nevents];
    e->name = strdup(name);
    e->count = 1;
    e->last = t;
    p->nevents++;

    return e->name ? OMNI_OK : OMNI_ERROR;
}


static void
omni_ev_unset(omni_profile_t *p, const char *key)
{
    unsigned  i;

    for (i = 0; i < p->nattrs; i++) {
        if (strcmp(p->attrs[i].key, key) == 0) {
            free(p->attrs[i].key);
            free(p->attrs[i].str);
            memmove(&p->attrs[i], &p->attrs[i + 1],
                    (p->nattrs - i - 1) * sizeof(omni_attr_t));
            p->nattrs--;
            return;
        }
    }
}


/* The change an event means. */
static int
omni_ev_mutate(omni_profile_t *p, const omni_event_t *ev)
{
    int       rc;
    unsigned  i;
    uint32_t  timeout;

    if (ev->time > p->updated) {
        p->updated = ev->time;
    }

    if (ev->channel < OMNI_CH_MAX && ev->time > p->last_seen[ev->channel]) {
        p->last_seen[ev->channel] = ev->time;
    }

    /*
     * Stated consent, per purpose: each purpose the event states is set
     * and marked stated; the others keep what they were (unstated ones
     * then follow the location's consent model, omni_consent_allows()).
     */
    if (ev->has_consent) {
        p->consent = omni_consent_merge(p->consent,
                                        ev->consent_on
                                        | OMNI_CONSENT_STATED(ev->consent_on
                                                          | ev->consent_off)
                                        | OMNI_CONSENT_SET);
    }

    switch (ev->type) {

    case OMNI_EV_PAGE:
    case OMNI_EV_SCREEN:
        timeout = ev->visit_timeout ? ev->visit_timeout
                                    : OMNI_VISIT_TIMEOUT_DEFAULT;

        if (p->visits == 0 || ev->time >= p->visit_last + timeout) {
            p->visits++;
        }

        if (ev->time > p->visit_last) {
            p->visit_last = ev->time;
        }

        return OMNI_OK;

    case OMNI_EV_IDENTIFY:
        for (i = 0; i < ev->nunset; i++) {
            omni_ev_unset(p, ev->unset[i]);
        }

        for (i = 0; i < ev->ntraits; i++) {
            rc = ev->traits[i].type == OMNI_ATTR_STR
                 ? omni_profile_set_attr_str(p, ev->traits[i].key,
                                             ev->traits[i].str)
                 : omni_profile_set_attr_num(p, ev->traits[i].key,
                                             ev->traits[i].num);
            if (rc != OMNI_OK) {
                return OMNI_ERROR;
            }
        }

        return OMNI_OK;

    case OMNI_EV_ALIAS:
        /* the identities are linked: nothing else changes */
        return OMNI_OK;

    case OMNI_EV_GROUP:
        return omni_profile_set_attr_str(p, "group_id", ev->group_id)
               == OMNI_OK ? OMNI_OK : OMNI_ERROR;

    default:
        break;
    }

    switch (ev->name_id) {

    case OMNI_EVN_PRODUCT_VIEWED:
        rc = omni_ev_view(p, &ev->products[0], ev->time);
        break;

    case OMNI_EVN_PRODUCT_ADDED:
        rc = omni_ev_cart_add(p, &ev->products[0]);
        p->cart_updated = ev->time > p->cart_updated ? ev->time
                                                     : p->cart_updated;
        break;

    case OMNI_EVN_PRODUCT_REMOVED:
        omni_ev_cart_remove(p, ev->products[0].sku, ev->products[0].qty);
        p->cart_updated = ev->time > p->cart_updated ? ev->time
                                                     : p->cart_updated;
        rc = OMNI_OK;
        break;

    case OMNI_EVN_ORDER_COMPLETED:
        rc = omni_ev_purchase(p, ev);

        if (rc == OMNI_OK && ev->time > p->cart_updated) {
            p->cart_updated = ev->time;
        }

        break;

    default:
        rc = OMNI_OK;
    }

    if (rc != OMNI_OK) {
        return rc;
    }

    /* Every track call counts under its name (rules: "event"). */
    return omni_ev_count(p, ev->name, ev->time);
}


/* ---- identity ---- */

/*
 * The profile an identity resolves to.  An anonymousId ('a') may be a
 * visitor, a device or a profile id; *kind gets the alias kind it was
 * found as (the cookie kind when not found at all).
 */
static int
omni_ev_lookup(omni_wtxn_t *w, const omni_event_ident_t *id, unsigned *kind,
    unsigned char *pid)
{
    int             rc;
    omni_profile_t  p;

    *kind = id->kind;

    if (id->kind == 'a' || id->kind == 'p') {
        if (id->kind == 'a') {
            *kind = OMNI_ALIAS_COOKIE;

            rc = omni_wtxn_get_alias(w, OMNI_ALIAS_COOKIE, id->value,
                                     id->len, pid);
            if (rc != OMNI_NOTFOUND) {
                return rc;
            }

            rc = omni_wtxn_get_alias(w, OMNI_ALIAS_DEVICE, id->value,
                                     id->len, pid);
            if (rc != OMNI_NOTFOUND) {
                *kind = OMNI_ALIAS_DEVICE;
                return rc;
            }
        }

        if (omni_id_parse(id->value, id->len, pid) != OMNI_OK) {
            return OMNI_NOTFOUND;
        }

        rc = omni_wtxn_get_profile(w, pid, &p);
        omni_profile_free(&p);

        return rc;
    }

    return omni_wtxn_get_alias(w, id->kind, id->value, id->len, pid);
}


/* Whether the event names a Segment anonymousId kept as sent. */
static int
omni_ev_has_sent(const omni_event_t *ev)
{
    unsigned  i;

    for (i = 0; i < ev->nidents; i++) {
        if (ev->idents[i].kind == OMNI_ALIAS_ANON) {
            return 1;
        }
    }

    return 0;
}


/* Whether p belongs to a customer other than user_id ("" : any). */
static int
omni_ev_other_customer(const omni_profile_t *p, const char *user_id)
{
    unsigned  i, has;

    has = 0;

    for (i = 0; i < p->naliases; i++) {
        if (p->aliases[i].kind != OMNI_ALIAS_CUSTOMER) {
            continue;
        }

        if (user_id[0] && strcmp(p->aliases[i].value, user_id) == 0) {
            return 0;
        }

        has = 1;
    }

    return has;
}


static int
omni_ev_has_customer(const omni_profile_t *p)
{
    return omni_ev_other_customer(p, "");
}


/* 1 when the profile holds a customer id, 0 when not, or an error. */
static int
omni_ev_owner_is_customer(omni_wtxn_t *w, const unsigned char *owner)
{
    int             rc;
    omni_profile_t  p;

    rc = omni_wtxn_get_profile(w, owner, &p);

    if (rc == OMNI_OK) {
        rc = omni_ev_has_customer(&p);

    } else if (rc == OMNI_NOTFOUND) {
        rc = 0;
    }

    omni_profile_free(&p);

    return rc;
}


/* Takes alias (kind, value) away from profile owner (not the target). */
static int
omni_ev_steal(omni_wtxn_t *w, const unsigned char *owner, unsigned kind,
    const char *value, size_t len)
{
    int             rc;
    omni_profile_t  p;

    rc = omni_wtxn_get_profile(w, owner, &p);

    if (rc == OMNI_OK) {
        (void) omni_profile_del_alias(&p, kind, value, len);
        rc = omni_wtxn_put_record(w, &p);
    }

    omni_profile_free(&p);

    return rc == OMNI_NOTFOUND ? OMNI_OK : rc;
}


/*
 * "Signed Out" (docs/privacy.md): the browser or device that sends it
 * leaves the profile it was linked to.  Its id now points at a fresh,
 * empty profile id (so even a stale copy of the old cookie finds nothing
 * of the customer), the customer's record loses the alias, and the event
 * goes into the customer's feed.  pid: the profile it left.
 */
static int
omni_ev_sign_out(omni_wtxn_t *w, omni_event_t *ev, unsigned char *pid,
    unsigned *kinds)
{
    int                  rc;
    unsigned             i, kind;
    unsigned char        fresh[OMNI_ID_LEN];
    omni_event_ident_t  *id;

    for (i = 0; i < ev->nidents; i++) {
        kinds[i] = ev->idents[i].kind;
    }

    for (i = 0; i < ev->nidents; i++) {
        id = &ev->idents[i];

        if (id->kind == OMNI_ALIAS_COOKIE || id->kind == OMNI_ALIAS_DEVICE
            || id->kind == 'a')
        {
            break;
        }
    }

    if (i == ev->nidents) {
        /* validated at parse time: a visitor, device or anonymousId */
        return OMNI_INVALID;
    }

    rc = omni_ev_lookup(w, id, &kind, pid);
    kinds[i] = kind;

    if (rc == OMNI_NOTFOUND) {
        /* never linked: it leaves its own profile (its id) */
        if (omni_id_parse(id->value, id->len, pid) != OMNI_OK) {
            memset(pid, 0, OMNI_ID_LEN);
        }

    } else if (rc != OMNI_OK) {
        return rc;
    }

    if (omni_id_random(fresh) != OMNI_OK) {
        return OMNI_ERROR;
    }

    rc = omni_wtxn_put_alias(w, kind, id->value, id->len, fresh);
    if (rc != OMNI_OK) {
        return rc;
    }

    return omni_ev_steal(w, pid, kind, id->value, id->len);
}


/*
 * A merge goes into the feed as a Segment "alias" call, so consumers that
 * keyed anything by the old profile id can follow it:
 *   {"messageId":"merge-OLD","type":"alias","event":"Profiles Merged",
 *    "timestamp":...,"previousId":OLD,"profileId":NEW,...}
 */
static int
omni_ev_merge_record(omni_wtxn_t *w, const omni_event_t *ev,
    const unsigned char *keep, const unsigned char *gone)
{
    int        n;
    char       line[512], ts[32];
    char       k[OMNI_ID_HEX_LEN + 1], g[OMNI_ID_HEX_LEN + 1];
    time_t     t;
    struct tm  tm;

    t = (time_t) ev->time;
    gmtime_r(&t, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);

    omni_id_hex(keep, k);
    omni_id_hex(gone, g);

    /* Only hex ids and a fixed text: nothing here needs escaping. */
    n = snprintf(line, sizeof(line),
                 "{\"messageId\":\"merge-%s\",\"type\":\"alias\","
                 "\"event\":\"Profiles Merged\",\"timestamp\":\"%s\","
                 "\"previousId\":\"%s\",\"profileId\":\"%s\","
                 "\"channel\":\"%s\",\"context\":{\"cause\":\"%s\"}}",
                 g, ts, g, k, omni_channel_name(ev->channel),
                 ev->type == OMNI_EV_IDENTIFY ? "identify" : "event");

    return omni_wtxn_append_touchpoint(w, keep, ev->time, line, (size_t) n,
                                       NULL);
}


/*
 * Resolves the event's identities to one profile, stitching profiles of
 * the same person: the first one found is the target; every other one
 * is merged with it (omni_merge_pick() decides which id survives) unless
 * it belongs to another customer.  A profile of a customer other than
 * the event's userId is never the target.
 */
static int
omni_ev_resolve(omni_wtxn_t *w, omni_event_t *ev, unsigned char *target,
    unsigned *kinds, unsigned char (*found)[OMNI_ID_LEN], unsigned *isfound)
{
    int             rc, have, pick;
    unsigned        i;
    uint32_t        now;
    omni_profile_t  pt, px;
    unsigned char  *keep, *gone;

    have = 0;
    now = ev->time;

    for (i = 0; i < ev->nidents; i++) {
        if (ev->idents[i].soft) {
            /* a browser's own anonymousId finds nobody */
            kinds[i] = ev->idents[i].kind;
            isfound[i] = 0;
            continue;
        }

        rc = omni_ev_lookup(w, &ev->idents[i], &kinds[i], found[i]);
        isfound[i] = (rc == OMNI_OK);

        if (rc != OMNI_OK && rc != OMNI_NOTFOUND) {
            return rc;
        }

        if (!isfound[i]) {
            continue;
        }

        rc = omni_wtxn_get_profile(w, found[i], &px);
        if (rc != OMNI_OK) {
            omni_profile_free(&px);

            if (rc == OMNI_NOTFOUND) {
                /* a dangling alias: treated as not found */
                isfound[i] = 0;
                continue;
            }

            return rc;
        }

        if (ev->user_id[0] && omni_ev_other_customer(&px, ev->user_id)) {
            /* Another customer's profile: it only loses the alias. */
            omni_profile_free(&px);
            continue;
        }

        if (!have) {
            memcpy(target, found[i], OMNI_ID_LEN);
            have = 1;
            omni_profile_free(&px);
            continue;
        }

        if (memcmp(target, found[i], OMNI_ID_LEN) == 0) {
            omni_profile_free(&px);
            continue;
        }

        rc = omni_wtxn_get_profile(w, target, &pt);
        if (rc != OMNI_OK) {
            omni_profile_free(&pt);
            omni_profile_free(&px);
            return rc;
        }

        if (!ev->user_id[0]
            && omni_ev_has_customer(&pt) && omni_ev_has_customer(&px))
        {
            /* Two customers and no userId to tell: no merge. */
            omni_profile_free(&pt);
            omni_profile_free(&px);
            continue;
        }

        pick = omni_merge_pick(&pt, &px);
        omni_profile_free(&pt);
        omni_profile_free(&px);

        keep = pick ? found[i] : target;
        gone = pick ? target : found[i];

        rc = omni_wtxn_merge(w, keep, gone, now);
        if (rc != OMNI_OK) {
            return rc;
        }

        rc = omni_ev_merge_record(w, ev, keep, gone);
        if (rc != OMNI_OK) {
            return rc;
        }

        if (pick) {
            memcpy(target, found[i], OMNI_ID_LEN);
        }
    }

    if (have) {
        return OMNI_OK;
    }

    /* Nobody known: a new profile, with the visitor's id when there is
       one (as traffic would have created it), else a random one. */
    for (i = 0; i < ev->nidents; i++) {
        if ((ev->idents[i].kind == 'a' || ev->idents[i].kind == 'p'
             || ev->idents[i].kind == OMNI_ALIAS_COOKIE
             || ev->idents[i].kind == OMNI_ALIAS_DEVICE)
            && !isfound[i]
            && omni_id_parse(ev->idents[i].value, ev->idents[i].len, target)
               == OMNI_OK)
        {
            return OMNI_NOTFOUND;
        }
    }

    if (omni_id_random(target) != OMNI_OK) {
        return OMNI_ERROR;
    }

    return OMNI_NOTFOUND;
}


/* ---- the feed ---- */

static json_t *
omni_ev_record(const omni_event_t *ev, const unsigned char *pid,
    const unsigned *kinds)
{
    char          ts[32], hex[OMNI_ID_HEX_LEN + 1];
    time_t        t;
    json_t       *o, *ctx;
    unsigned      i;
    struct tm     tm;
    int           failed;
    const char   *k;
    json_t       *v, *sent;
    static const char  *types[] = { "", "track", "identify", "page",
                                    "screen", "alias", "group" };
    static const char  *sources[] = { "client", "server", "upstream",
                                      "cli", "consent cookie" };

    o = json_object();
    ctx = json_object();

    if (o == NULL || ctx == NULL) {
        json_decref(o);
        json_decref(ctx);
        return NULL;
    }

    t = (time_t) ev->time;
    gmtime_r(&t, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);

    failed = 0;
    failed |= json_object_set_new(o, "messageId",
                                  json_string(ev->message_id));
    failed |= json_object_set_new(o, "type", json_string(types[ev->type]));
    failed |= json_object_set_new(o, "event", json_string(ev->name));
    failed |= json_object_set_new(o, "timestamp", json_string(ts));

    /* the anonymousId as sent (a Segment UUID stays a UUID), else the
       visitor's or device's id */
    sent = ev->feed_extra ? json_object_get(ev->feed_extra, "anonymousId")
                          : NULL;

    for (i = 0; sent == NULL && i < ev->nidents; i++) {
        if (kinds[i] == OMNI_ALIAS_COOKIE || kinds[i] == OMNI_ALIAS_DEVICE) {
            failed |= json_object_set_new(o, "anonymousId",
                                          json_string(ev->idents[i].value));
            break;
        }
    }

    /* Segment's own members, and the sender's context under ours */
    if (ev->feed_extra) {
        json_object_foreach(ev->feed_extra, k, v) {
            if (strcmp(k, "context") == 0) {
                failed |= json_object_update(ctx, v);

            } else {
                failed |= json_object_set(o, k, v);
            }
        }
    }

    if (ev->user_id[0]) {
        failed |= json_object_set_new(o, "userId", json_string(ev->user_id));
    }

    omni_id_hex(pid, hex);
    failed |= json_object_set_new(o, "profileId", json_string(hex));
    failed |= json_object_set_new(o, "channel",
                                  json_string(omni_channel_name(ev->channel)));

    if (ev->properties) {
        failed |= json_object_set(o, "properties", ev->properties);
    }

    if (ev->traits_json) {
        failed |= json_object_set(o, "traits", ev->traits_json);
    }

    i = ev->source & OMNI_SRC_MASK;
    failed |= json_object_set_new(ctx, "source",
                                  json_string(i <= OMNI_SRC_COOKIE
                                              ? sources[i] : "client"));
    failed |= json_object_set_new(o, "context", ctx);

    if (failed) {
        json_decref(o);
        return NULL;
    }

    return o;
}


/* ---- apply ---- */

/* The idempotency key of an event's id (type 'M' messageId, 'O' order). */
static size_t
omni_ev_seen_key(const omni_event_t *ev, char type, const char *id,
    char *key, size_t size)
{
    size_t  n;

    /*
     * Server-trusted ids share one namespace; a browser's or app's are
     * scoped to its visitor, so no client can burn another's ids.
     */
    if (ev->trust == OMNI_TRUST_SERVER) {
        n = (size_t) snprintf(key, size, "%c%s", type, id);

    } else {
        n = (size_t) snprintf(key, size, "%c%s:%s", type + 32,
                              ev->idents[0].value, id);
    }

    return n < size ? n : size - 1;
}


/* Records an idempotency key; 1 when it was seen before. */
static int
omni_ev_seen(omni_wtxn_t *w, const omni_event_t *ev, char type,
    const char *id)
{
    char    key[OMNI_EVENT_MAX_ID * 2 + 8];
    size_t  n;

    n = omni_ev_seen_key(ev, type, id, key, sizeof(key));

    return omni_wtxn_seen(w, key, n, (uint32_t) time(NULL));
}


/* The event's keys belong to pid: forget of pid deletes them. */
static int
omni_ev_seen_owner(omni_wtxn_t *w, const omni_event_t *ev,
    const unsigned char *pid)
{
    int     rc;
    char    key[OMNI_EVENT_MAX_ID * 2 + 8];
    size_t  n;

    n = omni_ev_seen_key(ev, 'M', ev->message_id, key, sizeof(key));
    rc = omni_wtxn_seen_owner(w, key, n, pid);

    if (rc == OMNI_OK && ev->order_id) {
        n = omni_ev_seen_key(ev, 'O', ev->order_id, key, sizeof(key));
        rc = omni_wtxn_seen_owner(w, key, n, pid);
    }

    return rc;
}


int
omni_event_apply(omni_wtxn_t *w, omni_event_t *ev, int *status,
    unsigned char *pid)
{
    int             rc, created;
    char           *line;
    json_t         *rec;
    unsigned        i, kind;
    omni_profile_t  p;
    unsigned        kinds[OMNI_EVENT_MAX_IDENTS];
    unsigned        isfound[OMNI_EVENT_MAX_IDENTS];
    unsigned char   found[OMNI_EVENT_MAX_IDENTS][OMNI_ID_LEN];
    unsigned char   owner[OMNI_ID_LEN];

    *status = OMNI_EVENT_ACCEPTED;
    memset(pid, 0, OMNI_ID_LEN);

    /* 1. idempotency */
    rc = omni_ev_seen(w, ev, 'M', ev->message_id);
    if (rc < 0) {
        return rc;
    }

    if (rc == 0 && ev->order_id) {
        rc = omni_ev_seen(w, ev, 'O', ev->order_id);
        if (rc < 0) {
            return rc;
        }
    }

    if (rc == 1) {
        *status = OMNI_EVENT_DUPLICATE;
        return OMNI_OK;
    }

    if (ev->name_id == OMNI_EVN_SIGNED_OUT) {
        rc = omni_ev_sign_out(w, ev, pid, kinds);
        if (rc != OMNI_OK) {
            return rc;
        }

        goto feed;
    }

    /* 2. identity */
    rc = omni_ev_resolve(w, ev, pid, kinds, found, isfound);
    if (rc != OMNI_OK && rc != OMNI_NOTFOUND) {
        return rc;
    }

    rc = omni_wtxn_get_profile(w, pid, &p);
    if (rc != OMNI_OK && rc != OMNI_NOTFOUND) {
        goto failed;
    }

    created = (rc == OMNI_NOTFOUND);
    if (created) {
        p.created = ev->time;
        p.updated = ev->time;
    }

    /*
     * An order the profile already has is a duplicate that changes
     * nothing: found before any identity is linked below, or another
     * profile would lose its alias for an event that was not applied.
     */
    if (ev->order_id && omni_ev_has_order(&p, ev->order_id)) {
        *status = OMNI_EVENT_DUPLICATE;
        omni_profile_free(&p);
        return OMNI_OK;
    }

    for (i = 0; i < ev->nidents; i++) {
        kind = kinds[i];

        if (ev->idents[i].kind == 'p') {
            continue;
        }

        if (ev->idents[i].kind == 'a' && !isfound[i]
            && omni_ev_has_sent(ev))
        {
            /* a Segment UUID nobody knows: linked as sent, not as a
               cookie id of our own */
            continue;
        }

        /*
         * An alias still held by another profile moves here: a cookie or
         * a device changes hands with its user.  A customer's email or
         * customer id never does: it stays with that customer, and this
         * event does not link it.
         */
        rc = omni_wtxn_get_alias(w, kind, ev->idents[i].value,
                                 ev->idents[i].len, owner);
        if (rc == OMNI_OK && memcmp(owner, pid, OMNI_ID_LEN) != 0) {
            if (ev->idents[i].soft) {
                /* held by another profile: it stays there */
                continue;
            }

            if (kind == OMNI_ALIAS_EMAIL || kind == OMNI_ALIAS_CUSTOMER) {
                rc = omni_ev_owner_is_customer(w, owner);

                if (rc == 1) {
                    continue;
                }

                if (rc < 0) {
                    goto failed;
                }
            }

            rc = omni_ev_steal(w, owner, kind, ev->idents[i].value,
                               ev->idents[i].len);
        }

        if (rc != OMNI_OK && rc != OMNI_NOTFOUND) {
            goto failed;
        }

        if (omni_profile_add_alias(&p, kind, ev->idents[i].value,
                                   ev->idents[i].len)
            != OMNI_OK)
        {
            rc = OMNI_ERROR;
            goto failed;
        }
    }

    /* 3. the change */
    rc = omni_ev_mutate(&p, ev);

    if (rc != OMNI_OK) {
        goto failed;
    }

    p.stage = omni_derive_stage(&p);

    rc = omni_wtxn_put_profile(w, &p);
    omni_profile_free(&p);

    if (rc == OMNI_OK) {
        rc = omni_ev_seen_owner(w, ev, pid);
    }

    if (rc != OMNI_OK) {
        return rc;
    }

    /* 4. the feed */
feed:

    rec = omni_ev_record(ev, pid, kinds);
    line = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);

    if (line == NULL) {
        return OMNI_ERROR;
    }

    rc = omni_wtxn_append_touchpoint(w, pid, ev->time, line, strlen(line),
                                     NULL);
    free(line);

    return rc;

failed:

    omni_profile_free(&p);

    return rc == OMNI_NOTFOUND ? OMNI_ERROR : rc;
}


int
omni_event_prune(omni_wtxn_t *w, uint32_t now, unsigned budget)
{
    unsigned  pruned;

    if (now <= OMNI_EVENT_DEDUPE_TTL) {
        return OMNI_OK;
    }

    return omni_wtxn_prune_seen(w, now - OMNI_EVENT_DEDUPE_TTL, budget,
                                &pruned);
}
