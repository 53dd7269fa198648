/*
 * Unit tests of omni_merge.c (identity stitching: every merge rule, the
 * pick, the store-level merge with its aliases and touchpoints) and of
 * the store's idempotency keys (omni_wtxn_seen(), omni_wtxn_prune_seen()),
 * including stores created before those databases existed.
 *
 * Stores live in a temporary directory under /tmp, removed at the end.
 * LMDB must not have one environment open twice in a process, so the raw
 * LMDB helpers below only run while no omni_store_t has it open.
 */

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <lmdb.h>

#include "omni_tap.h"
#include "omni_merge.h"
#include "omni_update.h"


#define NOW  1700000000u

static char  tmpdir[64];


/* ---- profile builders ---- */

static void
mkid(unsigned char *id, unsigned n)
{
    memset(id, 0, OMNI_ID_LEN);
    id[0] = 0xa0;
    id[OMNI_ID_LEN - 1] = (unsigned char) n;
}


static void
mkprofile(omni_profile_t *p, unsigned n, uint32_t created, uint32_t updated)
{
    unsigned char  id[OMNI_ID_LEN];

    mkid(id, n);
    omni_profile_init(p, id);
    p->created = created;
    p->updated = updated;
}


static void
add_purchase(omni_profile_t *p, const char *order, const char *sku,
    uint32_t time)
{
    omni_purchase_t  *pu;

    p->purchases = realloc(p->purchases,
                           (p->npurchases + 1) * sizeof(omni_purchase_t));
    pu = &p->purchases[p->npurchases++];
    memset(pu, 0, sizeof(omni_purchase_t));
    pu->order_id = strdup(order);
    pu->sku = strdup(sku);
    pu->category = strdup("cat");
    pu->time = time;
    pu->price = 10;
    pu->qty = 1;
}


static void
add_view(omni_profile_t *p, const char *sku, uint32_t time)
{
    omni_view_t  *v;

    p->views = realloc(p->views, (p->nviews + 1) * sizeof(omni_view_t));
    v = &p->views[p->nviews++];
    v->sku = strdup(sku);
    v->category = strdup("cat");
    v->time = time;
    v->price = 1;
}


static void
add_cart(omni_profile_t *p, const char *sku, uint32_t updated)
{
    omni_cart_item_t  *c;

    p->cart = realloc(p->cart, (p->ncart + 1) * sizeof(omni_cart_item_t));
    c = &p->cart[p->ncart++];
    memset(c, 0, sizeof(omni_cart_item_t));
    c->sku = strdup(sku);
    c->name = strdup("name");
    c->category = strdup("");
    c->url = strdup("");
    c->image = strdup("");
    c->qty = 1;
    c->price = 5;
    p->cart_updated = updated;
}


static void
add_event(omni_profile_t *p, const char *name, uint32_t count, uint32_t last)
{
    omni_evcount_t  *e;

    p->events = realloc(p->events,
                        (p->nevents + 1) * sizeof(omni_evcount_t));
    e = &p->events[p->nevents++];
    e->name = strdup(name);
    e->count = count;
    e->last = last;
}


/* A campaign with explicit buckets (hours and counts, oldest first). */
static void
add_impr(omni_profile_t *p, const char *campaign, uint32_t total,
    uint32_t last, const uint32_t *hours, const uint32_t *counts,
    unsigned n)
{
    unsigned      i;
    omni_impr_t  *im;

    p->impressions = realloc(p->impressions,
                             (p->nimpressions + 1) * sizeof(omni_impr_t));
    im = &p->impressions[p->nimpressions++];
    memset(im, 0, sizeof(omni_impr_t));
    im->campaign = strdup(campaign);
    im->total = total;
    im->last = last;
    im->nbuckets = n;

    for (i = 0; i < n; i++) {
        im->buckets[i].hour = hours[i];
        im->buckets[i].count = counts[i];
    }
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


static int
has_segment(const omni_profile_t *p, const char *name)
{
    unsigned  i;

    for (i = 0; i < p->nsegments; i++) {
        if (strcmp(p->segments[i], name) == 0) {
            return 1;
        }
    }

    return 0;
}


static const omni_impr_t *
get_impr(const omni_profile_t *p, const char *campaign)
{
    unsigned  i;

    for (i = 0; i < p->nimpressions; i++) {
        if (strcmp(p->impressions[i].campaign, campaign) == 0) {
            return &p->impressions[i];
        }
    }

    return NULL;
}


/* Encoding both gives the same bytes. */
static int
same_bytes(const omni_profile_t *a, const omni_profile_t *b)
{
    int             same;
    size_t          la, lb;
    unsigned char  *da, *db;

    if (omni_profile_encode(a, &da, &la) != OMNI_OK) {
        return 0;
    }

    if (omni_profile_encode(b, &db, &lb) != OMNI_OK) {
        free(da);
        return 0;
    }

    same = la == lb && memcmp(da, db, la) == 0;
    free(da);
    free(db);

    return same;
}


/* A deep copy through the codec. */
static void
copy_profile(omni_profile_t *dst, const omni_profile_t *src)
{
    size_t          len;
    omni_rec_t      rec;
    unsigned char  *data;

    omni_profile_encode(src, &data, &len);
    omni_rec_parse(&rec, data, len);
    omni_profile_from_rec(dst, &rec);
    free(data);
}


/* ---- in-memory merge rules ---- */

static void
test_scalars(void)
{
    omni_profile_t  d, s;

    mkprofile(&d, 1, 0, 100);
    mkprofile(&s, 2, 500, 200);
    d.visits = 3;
    s.visits = 4;
    d.orders = 1;
    s.orders = 2;
    d.revenue = 10.5;
    s.revenue = 2.25;
    d.visit_last = 90;
    s.visit_last = 190;
    d.last_seen[OMNI_CH_WEB] = 100;
    s.last_seen[OMNI_CH_WEB] = 50;
    s.last_seen[OMNI_CH_APP] = 200;
    d.last_seen[OMNI_CH_POS] = 70;

    is_int(omni_profile_merge(&d, &s), OMNI_OK, "merge: OMNI_OK");
    ok(d.id[OMNI_ID_LEN - 1] == 1, "dst keeps its id");
    is_int(d.visits, 7, "visits summed");
    is_int(d.orders, 3, "orders summed");
    ok(d.revenue == 12.75, "revenue summed");
    is_int(d.created, 500, "created: dst unknown (0), src's");
    is_int(d.updated, 200, "updated: the later");
    is_int(d.visit_last, 190, "visit_last: the later");
    is_int(d.last_seen[OMNI_CH_WEB], 100, "last_seen web: dst's later");
    is_int(d.last_seen[OMNI_CH_APP], 200, "last_seen app: src's");
    is_int(d.last_seen[OMNI_CH_POS], 70, "last_seen pos: dst only");
    is_int(d.stage, OMNI_STAGE_CUSTOMER, "stage re-derived: customer");

    omni_profile_free(&d);
    omni_profile_free(&s);

    mkprofile(&d, 1, 400, 0);
    mkprofile(&s, 2, 300, 0);
    omni_profile_merge(&d, &s);
    is_int(d.created, 300, "created: the earlier");
    is_int(d.stage, OMNI_STAGE_NEW, "stage: new without any activity");
    omni_profile_free(&d);
    omni_profile_free(&s);

    mkprofile(&d, 1, 400, 0);
    mkprofile(&s, 2, 0, 0);
    s.visits = 1;
    d.visits = UINT32_MAX - 1;
    d.orders = 3;
    s.orders = 2;
    omni_profile_merge(&d, &s);
    is_int(d.created, 400, "created: src unknown (0) does not win");
    ok(d.visits == UINT32_MAX, "visits saturate");
    is_int(d.stage, OMNI_STAGE_LOYAL, "stage re-derived: 3 + 2 orders, loyal");
    omni_profile_free(&d);
    omni_profile_free(&s);

    mkprofile(&d, 1, 1, 1);
    mkprofile(&s, 2, 1, 1);
    add_cart(&s, "SKU", 10);
    omni_profile_merge(&d, &s);
    is_int(d.stage, OMNI_STAGE_CART, "stage re-derived: cart from src");
    omni_profile_free(&d);
    omni_profile_free(&s);

    /* a profile merged with itself is unchanged */
    mkprofile(&d, 1, 1, 1);
    d.visits = 5;
    is_int(omni_profile_merge(&d, &d), OMNI_OK, "self merge: OMNI_OK");
    is_int(d.visits, 5, "self merge: nothing summed");
    omni_profile_free(&d);
}


static void
test_sets(void)
{
    char            v[40];
    unsigned        i, cookies;
    omni_profile_t  d, s;

    mkprofile(&d, 1, 1, 100);
    mkprofile(&s, 2, 1, 200);

    omni_profile_add_segment(&d, "vip", 3);
    omni_profile_add_segment(&d, "a", 1);
    omni_profile_add_segment(&s, "a", 1);
    omni_profile_add_segment(&s, "b", 1);

    omni_profile_add_alias(&d, OMNI_ALIAS_COOKIE, "c1", 2);
    omni_profile_add_alias(&d, OMNI_ALIAS_CUSTOMER, "cust-1", 6);
    omni_profile_add_alias(&s, OMNI_ALIAS_COOKIE, "c2", 2);
    omni_profile_add_alias(&s, OMNI_ALIAS_CUSTOMER, "cust-1", 6);
    omni_profile_add_alias(&s, OMNI_ALIAS_EMAIL, "e1", 2);

    omni_profile_merge(&d, &s);

    ok(d.nsegments == 3 && has_segment(&d, "vip") && has_segment(&d, "a")
       && has_segment(&d, "b"), "segments unioned");
    ok(d.naliases == 4 && has_alias(&d, OMNI_ALIAS_COOKIE, "c1")
       && has_alias(&d, OMNI_ALIAS_COOKIE, "c2")
       && has_alias(&d, OMNI_ALIAS_CUSTOMER, "cust-1")
       && has_alias(&d, OMNI_ALIAS_EMAIL, "e1"), "aliases unioned");

    omni_profile_free(&d);
    omni_profile_free(&s);

    /* beyond the bound: cookies go before customer and email ids */
    mkprofile(&d, 1, 1, 1);
    mkprofile(&s, 2, 1, 1);

    omni_profile_add_alias(&d, OMNI_ALIAS_CUSTOMER, "cust-1", 6);
    for (i = 0; i < 20; i++) {
        snprintf(v, sizeof(v), "d%02u", i);
        omni_profile_add_alias(&d, OMNI_ALIAS_COOKIE, v, strlen(v));
        snprintf(v, sizeof(v), "s%02u", i);
        omni_profile_add_alias(&s, OMNI_ALIAS_COOKIE, v, strlen(v));
    }
    omni_profile_add_alias(&s, OMNI_ALIAS_EMAIL, "e1", 2);

    omni_profile_merge(&d, &s);

    cookies = 0;
    for (i = 0; i < d.naliases; i++) {
        cookies += d.aliases[i].kind == OMNI_ALIAS_COOKIE;
    }

    is_int(d.naliases, OMNI_MAX_ALIASES, "aliases bounded");
    ok(has_alias(&d, OMNI_ALIAS_CUSTOMER, "cust-1")
       && has_alias(&d, OMNI_ALIAS_EMAIL, "e1"),
       "the customer and email ids survive the bound");
    ok(cookies == 30 && !has_alias(&d, OMNI_ALIAS_COOKIE, "d09")
       && has_alias(&d, OMNI_ALIAS_COOKIE, "d10")
       && has_alias(&d, OMNI_ALIAS_COOKIE, "s19"),
       "the oldest cookies went");
    is_str(d.aliases[0].value, "cust-1", "the survivors keep their order");

    omni_profile_free(&d);
    omni_profile_free(&s);
}


static void
test_attrs_consent(void)
{
    const omni_attr_t  *a;
    omni_profile_t      d, s;

    /* src updated later: its values win conflicts */
    mkprofile(&d, 1, 1, 100);
    mkprofile(&s, 2, 1, 200);
    omni_profile_set_attr_str(&d, "name", "Ana");
    omni_profile_set_attr_str(&d, "tier", "gold");
    omni_profile_set_attr_str(&s, "name", "Anna");
    omni_profile_set_attr_num(&s, "points", 5);
    d.consent = OMNI_CONSENT_SET | OMNI_CONSENT_ADS;
    s.consent = OMNI_CONSENT_SET | OMNI_CONSENT_EMAIL;

    omni_profile_merge(&d, &s);

    a = get_attr(&d, "name");
    ok(a && a->type == OMNI_ATTR_STR && strcmp(a->str, "Anna") == 0,
       "attribute conflict: the later-updated src wins");
    a = get_attr(&d, "tier");
    ok(a && strcmp(a->str, "gold") == 0, "attribute of dst only kept");
    a = get_attr(&d, "points");
    ok(a && a->type == OMNI_ATTR_NUM && a->num == 5,
       "attribute of src only added");
    is_int(d.nattrs, 3, "three attributes");
    ok(d.consent == (OMNI_CONSENT_SET | OMNI_CONSENT_EMAIL),
       "consent: both stated, the later-updated src wins");

    omni_profile_free(&d);
    omni_profile_free(&s);

    /* src updated earlier: dst's values win; a tie too */
    mkprofile(&d, 1, 1, 300);
    mkprofile(&s, 2, 1, 200);
    omni_profile_set_attr_str(&d, "name", "Ana");
    omni_profile_set_attr_num(&s, "name", 7);
    d.consent = OMNI_CONSENT_SET | OMNI_CONSENT_ADS;
    s.consent = OMNI_CONSENT_SET | OMNI_CONSENT_EMAIL;

    omni_profile_merge(&d, &s);

    a = get_attr(&d, "name");
    ok(a && a->type == OMNI_ATTR_STR && strcmp(a->str, "Ana") == 0,
       "attribute conflict: the later-updated dst wins");
    ok(d.consent == (OMNI_CONSENT_SET | OMNI_CONSENT_ADS),
       "consent: both stated, the later-updated dst wins");

    omni_profile_free(&d);
    omni_profile_free(&s);

    mkprofile(&d, 1, 1, 200);
    mkprofile(&s, 2, 1, 200);
    omni_profile_set_attr_str(&d, "name", "Ana");
    omni_profile_set_attr_str(&s, "name", "Bob");
    d.consent = OMNI_CONSENT_SET;
    s.consent = OMNI_CONSENT_SET | OMNI_CONSENT_SMS;

    omni_profile_merge(&d, &s);

    a = get_attr(&d, "name");
    ok(a && strcmp(a->str, "Ana") == 0, "attribute conflict: tie, dst");
    ok(d.consent == OMNI_CONSENT_SET, "consent: tie, dst");

    omni_profile_free(&d);
    omni_profile_free(&s);

    /* a stated choice beats none, whichever is newer */
    mkprofile(&d, 1, 1, 500);
    mkprofile(&s, 2, 1, 100);
    s.consent = OMNI_CONSENT_SET | OMNI_CONSENT_ANALYTICS;
    omni_profile_merge(&d, &s);
    ok(d.consent == (OMNI_CONSENT_SET | OMNI_CONSENT_ANALYTICS),
       "consent: only the older src stated one, src's");
    omni_profile_free(&d);
    omni_profile_free(&s);

    mkprofile(&d, 1, 1, 100);
    mkprofile(&s, 2, 1, 500);
    d.consent = OMNI_CONSENT_SET | OMNI_CONSENT_SMS;
    omni_profile_merge(&d, &s);
    ok(d.consent == (OMNI_CONSENT_SET | OMNI_CONSENT_SMS),
       "consent: only the older dst stated one, dst's");
    omni_profile_free(&d);
    omni_profile_free(&s);

    mkprofile(&d, 1, 1, 100);
    mkprofile(&s, 2, 1, 500);
    omni_profile_merge(&d, &s);
    is_int(d.consent, 0, "consent: neither stated one");
    omni_profile_free(&d);
    omni_profile_free(&s);
}


static void
test_cart(void)
{
    omni_profile_t  d, s;

    mkprofile(&d, 1, 1, 1);
    mkprofile(&s, 2, 1, 1);
    add_cart(&d, "OLD", 100);
    add_cart(&s, "NEW1", 200);
    add_cart(&s, "NEW2", 200);
    omni_profile_merge(&d, &s);
    ok(d.ncart == 2 && strcmp(d.cart[0].sku, "NEW1") == 0
       && strcmp(d.cart[1].sku, "NEW2") == 0 && d.cart_updated == 200,
       "cart: src's newer cart wins whole");
    omni_profile_free(&d);
    omni_profile_free(&s);

    mkprofile(&d, 1, 1, 1);
    mkprofile(&s, 2, 1, 1);
    add_cart(&d, "MINE", 300);
    add_cart(&s, "THEIRS", 200);
    omni_profile_merge(&d, &s);
    ok(d.ncart == 1 && strcmp(d.cart[0].sku, "MINE") == 0
       && d.cart_updated == 300, "cart: dst's newer cart stays");
    omni_profile_free(&d);
    omni_profile_free(&s);

    mkprofile(&d, 1, 1, 1);
    mkprofile(&s, 2, 1, 1);
    add_cart(&d, "MINE", 200);
    add_cart(&s, "THEIRS", 200);
    omni_profile_merge(&d, &s);
    ok(d.ncart == 1 && strcmp(d.cart[0].sku, "MINE") == 0,
       "cart: tie, dst's");
    omni_profile_free(&d);
    omni_profile_free(&s);

    /* an emptied cart that is newer also wins: the lines were removed */
    mkprofile(&d, 1, 1, 1);
    mkprofile(&s, 2, 1, 1);
    add_cart(&d, "MINE", 200);
    s.cart_updated = 300;
    omni_profile_merge(&d, &s);
    ok(d.ncart == 0 && d.cart_updated == 300,
       "cart: a newer emptied cart wins");
    omni_profile_free(&d);
    omni_profile_free(&s);
}


static void
test_histories(void)
{
    char            sku[16];
    unsigned        i, sorted;
    omni_profile_t  d, s;

    mkprofile(&d, 1, 1, 1);
    mkprofile(&s, 2, 1, 1);
    add_purchase(&d, "O1", "A", 100);
    add_purchase(&d, "O2", "B", 300);
    add_purchase(&s, "O1", "A", 100);
    add_purchase(&s, "O3", "C", 200);
    add_purchase(&s, "O2", "C", 400);
    add_purchase(&s, "O3", "C", 200);

    omni_profile_merge(&d, &s);

    ok(d.npurchases == 4
       && strcmp(d.purchases[0].order_id, "O1") == 0
       && strcmp(d.purchases[1].order_id, "O3") == 0
       && strcmp(d.purchases[2].order_id, "O2") == 0
       && strcmp(d.purchases[2].sku, "B") == 0
       && strcmp(d.purchases[3].order_id, "O2") == 0
       && strcmp(d.purchases[3].sku, "C") == 0,
       "purchases unioned by order_id + sku, ordered by time");

    omni_profile_free(&d);
    omni_profile_free(&s);

    /* views: one of src's 10 is dst's too, 24 in all, the newest 20 kept */
    mkprofile(&d, 1, 1, 1);
    mkprofile(&s, 2, 1, 1);

    for (i = 0; i < 15; i++) {
        snprintf(sku, sizeof(sku), "D%u", i);
        add_view(&d, sku, 1000 + 2 * i);
    }

    add_view(&s, "D14", 1028);
    for (i = 0; i < 9; i++) {
        snprintf(sku, sizeof(sku), "S%u", i);
        add_view(&s, sku, 1001 + 4 * i);
    }

    omni_profile_merge(&d, &s);

    sorted = 1;
    for (i = 1; i < d.nviews; i++) {
        sorted &= d.views[i - 1].time <= d.views[i].time;
    }

    is_int(d.nviews, OMNI_MAX_VIEWS, "views bounded");
    ok(sorted, "views ordered by time");
    ok(d.views[d.nviews - 1].time == 1033
       && strcmp(d.views[d.nviews - 1].sku, "S8") == 0,
       "views: the newest last");
    is_int(d.views[0].time, 1005, "views: the four oldest went");
    is_int(d.stage, OMNI_STAGE_BROWSING, "stage: browsing with views");

    omni_profile_free(&d);
    omni_profile_free(&s);
}


static void
test_counters(void)
{
    unsigned              i, ok_;
    uint32_t              dh[3] = { 1000, 1001, 1003 }, dc[3] = { 2, 1, 4 };
    uint32_t              sh[3] = { 1001, 1002, 1003 };
    uint32_t              sc[3] = { 4, 1, 60000 };
    uint32_t              h16a[16], c16a[16], h16b[16], c16b[16];
    omni_profile_t        d, s;
    const omni_impr_t    *im;

    mkprofile(&d, 1, 1, 1);
    mkprofile(&s, 2, 1, 1);

    dc[2] = 10000;
    add_impr(&d, "spring", 7, 5000, dh, dc, 3);
    add_impr(&s, "spring", 60005, 6000, sh, sc, 3);
    add_impr(&s, "summer", 2, 7000, sh, sc, 1);
    add_event(&d, "Product Reviewed", 3, 100);
    add_event(&s, "Product Reviewed", 2, 200);
    add_event(&s, "Signed Up", 1, 50);
    add_event(&d, "Only Mine", 9, 300);

    omni_profile_merge(&d, &s);

    im = get_impr(&d, "spring");
    ok(im && im->total == 60012 && im->last == 6000,
       "impressions: totals summed, last the later");
    ok(im && im->nbuckets == 4
       && im->buckets[0].hour == 1000 && im->buckets[0].count == 2
       && im->buckets[1].hour == 1001 && im->buckets[1].count == 5
       && im->buckets[2].hour == 1002 && im->buckets[2].count == 1
       && im->buckets[3].hour == 1003 && im->buckets[3].count == 65535,
       "impressions: buckets merged by hour, summed, u16 saturates");
    im = get_impr(&d, "summer");
    ok(im && im->total == 2 && im->last == 7000 && im->nbuckets == 1
       && im->buckets[0].hour == 1001 && im->buckets[0].count == 4,
       "impressions: a campaign of src only copied");

    ok(d.nevents == 3
       && strcmp(d.events[0].name, "Product Reviewed") == 0
       && d.events[0].count == 5 && d.events[0].last == 200
       && strcmp(d.events[1].name, "Only Mine") == 0
       && d.events[1].count == 9 && d.events[1].last == 300
       && strcmp(d.events[2].name, "Signed Up") == 0
       && d.events[2].count == 1 && d.events[2].last == 50,
       "events: counts summed, last = max, new names added");

    omni_profile_free(&d);
    omni_profile_free(&s);

    /* 16 + 16 buckets overlapping by 8 hours: the newest 16 kept */
    for (i = 0; i < 16; i++) {
        h16a[i] = 100 + i;
        c16a[i] = 1;
        h16b[i] = 108 + i;
        c16b[i] = 10;
    }

    mkprofile(&d, 1, 1, 1);
    mkprofile(&s, 2, 1, 1);
    add_impr(&d, "c", 16, 1, h16a, c16a, 16);
    add_impr(&s, "c", 160, 2, h16b, c16b, 16);
    omni_profile_merge(&d, &s);

    im = get_impr(&d, "c");
    ok_ = im && im->nbuckets == OMNI_MAX_BUCKETS;
    for (i = 0; ok_ && i < 16; i++) {
        ok_ = im->buckets[i].hour == 108 + i
              && im->buckets[i].count == (i < 8 ? 11u : 10u);
    }

    ok(ok_, "impressions: the newest %d hour buckets kept",
       OMNI_MAX_BUCKETS);
    ok(im && im->total == 176, "impressions: total is exact, not bounded");

    omni_profile_free(&d);
    omni_profile_free(&s);
}


static void
test_pick(void)
{
    omni_profile_t  a, b;

    mkprofile(&a, 1, 100, 1);
    mkprofile(&b, 2, 200, 1);
    is_int(omni_merge_pick(&a, &b), 0, "pick: neither a customer, older a");
    is_int(omni_merge_pick(&b, &a), 1, "pick: symmetric");

    omni_profile_add_alias(&b, OMNI_ALIAS_CUSTOMER, "cust", 4);
    is_int(omni_merge_pick(&a, &b), 1, "pick: the customer b, though newer");
    is_int(omni_merge_pick(&b, &a), 0, "pick: the customer b, either order");

    omni_profile_add_alias(&a, OMNI_ALIAS_CUSTOMER, "cust2", 5);
    is_int(omni_merge_pick(&a, &b), 0, "pick: both customers, older a");
    is_int(omni_merge_pick(&b, &a), 1, "pick: both customers, symmetric");

    b.created = 100;
    is_int(omni_merge_pick(&a, &b), 0, "pick: same created, lower id a");
    is_int(omni_merge_pick(&b, &a), 1, "pick: same created, lower id a (2)");

    a.created = 0;
    is_int(omni_merge_pick(&a, &b), 1, "pick: an unknown created loses");
    is_int(omni_merge_pick(&b, &a), 0, "pick: an unknown created loses (2)");

    is_int(omni_merge_pick(&a, &a), 0, "pick: a profile against itself");

    omni_profile_free(&a);
    omni_profile_free(&b);
}


/* The rules applied to copies give the same bytes every time. */
static void
test_deterministic(void)
{
    uint32_t        h[2] = { 10, 11 }, c[2] = { 1, 2 };
    omni_profile_t  d, s, d1, d2;

    mkprofile(&d, 1, 100, 300);
    mkprofile(&s, 2, 50, 200);
    omni_profile_add_alias(&d, OMNI_ALIAS_COOKIE, "c1", 2);
    omni_profile_add_alias(&s, OMNI_ALIAS_DEVICE, "d1", 2);
    omni_profile_add_segment(&s, "x", 1);
    omni_profile_set_attr_str(&s, "k", "v");
    add_purchase(&s, "O1", "A", 10);
    add_view(&s, "A", 5);
    add_impr(&s, "c", 3, 40000, h, c, 2);
    add_event(&s, "E", 1, 1);

    copy_profile(&d1, &d);
    copy_profile(&d2, &d);
    omni_profile_merge(&d1, &s);
    omni_profile_merge(&d2, &s);
    ok(same_bytes(&d1, &d2), "the same merge encodes to the same bytes");

    omni_profile_free(&d2);
    mkprofile(&d2, 3, 0, 0);
    copy_profile(&d2, &d1);
    omni_profile_free(&s);
    mkprofile(&s, 4, 0, 0);
    omni_profile_merge(&d2, &s);
    ok(same_bytes(&d1, &d2), "merging an empty profile changes nothing");

    omni_profile_free(&d);
    omni_profile_free(&s);
    omni_profile_free(&d1);
    omni_profile_free(&d2);
}


/* ---- store helpers ---- */

static omni_store_t *
open_store(const char *path, int mode)
{
    char               err[512];
    omni_store_t      *st;
    omni_store_opts_t  opts;

    memset(&opts, 0, sizeof(opts));
    opts.map_size = (size_t) 64 << 20;

    switch (mode) {
    case 'c':
        opts.create = 1;
        break;
    case 'a':
        opts.attach = 1;
        opts.map_size = 0;
        break;
    case 'r':
        opts.readonly = 1;
        opts.map_size = 0;
        break;
    }

    if (omni_store_open(&st, path, &opts, err, sizeof(err)) != OMNI_OK) {
        printf("# open %s (%c): %s\n", path, mode, err);
        return NULL;
    }

    return st;
}


static void
rm_store(const char *path)
{
    char  f[256];

    snprintf(f, sizeof(f), "%s/data.mdb", path);
    unlink(f);
    snprintf(f, sizeof(f), "%s/lock.mdb", path);
    unlink(f);
    rmdir(path);
}


/*
 * Raw LMDB access, for what the store API does not show: which
 * databases exist, their entries, a touchpoint's header.
 */
typedef struct {
    MDB_env  *env;
    MDB_txn  *txn;
} raw_t;


static int
raw_open(raw_t *r, const char *path, int write)
{
    r->env = NULL;
    r->txn = NULL;

    if (mdb_env_create(&r->env) != 0) {
        return -1;
    }

    mdb_env_set_maxdbs(r->env, 16);
    mdb_env_set_mapsize(r->env, (size_t) 64 << 20);

    if (mdb_env_open(r->env, path, write ? 0 : MDB_RDONLY, 0640) != 0
        || mdb_txn_begin(r->env, NULL, write ? 0 : MDB_RDONLY, &r->txn)
           != 0)
    {
        mdb_env_close(r->env);
        return -1;
    }

    return 0;
}


static void
raw_close(raw_t *r, int commit)
{
    if (commit) {
        mdb_txn_commit(r->txn);

    } else {
        mdb_txn_abort(r->txn);
    }

    mdb_env_close(r->env);
}


/* Entries of a database; -1 when it does not exist. */
static long
raw_count(const char *path, const char *db)
{
    long      n;
    raw_t     r;
    MDB_dbi   dbi;
    MDB_stat  ms;

    if (raw_open(&r, path, 0) != 0) {
        return -2;
    }

    n = -1;
    if (mdb_dbi_open(r.txn, db, 0, &dbi) == 0
        && mdb_stat(r.txn, dbi, &ms) == 0)
    {
        n = (long) ms.ms_entries;
    }

    raw_close(&r, 0);

    return n;
}


/* Every touchpoint whose header names pid. */
static unsigned
raw_tp_owned(const char *path, const unsigned char *pid)
{
    unsigned     n;
    raw_t        r;
    MDB_val      k, v;
    MDB_dbi      tps;
    MDB_cursor  *cur;
    int          rc;

    n = 0;

    if (raw_open(&r, path, 0) != 0) {
        return 0;
    }

    mdb_dbi_open(r.txn, "touchpoints", 0, &tps);
    mdb_cursor_open(r.txn, tps, &cur);

    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
    {
        n += v.mv_size >= OMNI_ID_LEN
             && memcmp(v.mv_data, pid, OMNI_ID_LEN) == 0;
    }

    mdb_cursor_close(cur);
    raw_close(&r, 0);

    return n;
}


/*
 * A store as a build before "seen" (and "merged") created it: five
 * databases, one profile with one tpindex entry.
 */
static int
make_old_store(const char *path)
{
    static const char  *dbs[] = { "profiles", "aliases", "touchpoints",
                                  "tpindex", "meta" };
    unsigned        i, schema;
    raw_t           r;
    MDB_dbi         dbi;
    MDB_val         k, v;
    omni_profile_t  p;
    unsigned char  *data, ibuf[OMNI_ID_LEN + 8];
    size_t          len;

    if (mkdir(path, 0750) != 0 || raw_open(&r, path, 1) != 0) {
        return -1;
    }

    for (i = 0; i < 5; i++) {
        if (mdb_dbi_open(r.txn, dbs[i], MDB_CREATE, &dbi) != 0) {
            raw_close(&r, 0);
            return -1;
        }
    }

    schema = 1;
    k.mv_data = "schema";
    k.mv_size = 6;
    v.mv_data = &schema;
    v.mv_size = sizeof(schema);
    mdb_put(r.txn, dbi, &k, &v, 0);

    /* one profile, so the store is not trivially empty */
    mkprofile(&p, 9, 100, 100);
    omni_profile_encode(&p, &data, &len);
    mdb_dbi_open(r.txn, "profiles", 0, &dbi);
    k.mv_data = p.id;
    k.mv_size = OMNI_ID_LEN;
    v.mv_data = data;
    v.mv_size = len;
    mdb_put(r.txn, dbi, &k, &v, 0);
    free(data);

    /* a tpindex entry, as the builds that wrote it left them */
    memcpy(ibuf, p.id, OMNI_ID_LEN);
    memset(ibuf + OMNI_ID_LEN, 0, 8);
    ibuf[OMNI_ID_LEN + 7] = 1;
    mdb_dbi_open(r.txn, "tpindex", 0, &dbi);
    k.mv_data = ibuf;
    k.mv_size = sizeof(ibuf);
    v.mv_data = "";
    v.mv_size = 0;
    mdb_put(r.txn, dbi, &k, &v, 0);
    omni_profile_free(&p);

    raw_close(&r, 1);

    return 0;
}


typedef struct {
    unsigned   n;
    uint64_t   seqs[16];
} feed_t;


static int
feed_cb(void *arg, uint64_t seq, const void *data, size_t len)
{
    feed_t  *f = arg;

    if (f->n < 16) {
        f->seqs[f->n] = seq;
    }

    f->n++;

    return OMNI_OK;
}


static void
tp(omni_wtxn_t *w, const unsigned char *pid, uint32_t time)
{
    omni_wtxn_append_touchpoint(w, pid, time, "{\"type\":\"page\"}", 15,
                                NULL);
}


/* The stored bytes of a record (malloc()ed), or NULL. */
static unsigned char *
record_bytes(omni_store_t *st, const unsigned char *pid, size_t *len)
{
    omni_rec_t      rec;
    unsigned char  *d;

    d = NULL;
    *len = 0;

    omni_store_read_begin(st);

    if (omni_store_get_profile(st, pid, &rec) == OMNI_OK) {
        d = malloc(rec.len);
        memcpy(d, rec.data, rec.len);
        *len = rec.len;
    }

    omni_store_read_end(st);

    return d;
}


/* ---- store-level merge ---- */

static void
test_store_merge(void)
{
    char            path[128], v[16];
    size_t          len1, len2;
    feed_t          feed;
    uint64_t        first;
    unsigned        i, n, na, nt, pruned;
    omni_wtxn_t    *w;
    omni_store_t   *st;
    unsigned char   keep[OMNI_ID_LEN], gone[OMNI_ID_LEN], other[OMNI_ID_LEN];
    unsigned char   pid[OMNI_ID_LEN], *b1, *b2;
    omni_profile_t  k, g, p;

    omni_profile_init(&p, NULL);
    snprintf(path, sizeof(path), "%s/merge", tmpdir);

    st = open_store(path, 'c');
    ok(st != NULL, "store created");
    if (st == NULL) {
        return;
    }

    /* keep: a customer; gone: a visitor with a cookie, a device, email */
    mkprofile(&k, 1, 1000, 5000);
    omni_profile_add_alias(&k, OMNI_ALIAS_CUSTOMER, "cust-1", 6);
    omni_profile_add_segment(&k, "vip", 3);
    k.visits = 2;

    mkprofile(&g, 2, 900, 6000);
    omni_profile_add_alias(&g, OMNI_ALIAS_COOKIE, "cookie-g", 8);
    omni_profile_add_alias(&g, OMNI_ALIAS_DEVICE, "device-g", 8);
    omni_profile_add_alias(&g, OMNI_ALIAS_EMAIL, "email-g", 7);
    omni_profile_add_segment(&g, "new", 3);
    g.visits = 3;

    memcpy(keep, k.id, OMNI_ID_LEN);
    memcpy(gone, g.id, OMNI_ID_LEN);
    mkid(other, 3);

    is_int(omni_merge_pick(&k, &g), 0, "pick: the customer is kept");

    omni_store_write_begin(st, &w);
    omni_wtxn_put_profile(w, &k);
    omni_wtxn_put_profile(w, &g);
    tp(w, gone, 100);       /* seq 1 */
    tp(w, keep, 101);       /* seq 2 */
    tp(w, gone, 102);       /* seq 3 */
    tp(w, other, 103);      /* seq 4: another profile's, untouched */
    tp(w, gone, 104);       /* seq 5 */
    is_int(omni_wtxn_commit(w), OMNI_OK, "two profiles, five touchpoints");

    /* an aborted merge leaves everything as it was */
    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_merge(w, keep, gone, NOW), OMNI_OK, "merge");
    omni_wtxn_abort(w);

    omni_store_read_begin(st);
    ok(omni_store_get_alias(st, OMNI_ALIAS_COOKIE, "cookie-g", 8, pid)
       == OMNI_OK && memcmp(pid, gone, OMNI_ID_LEN) == 0,
       "aborted merge: the alias still points at gone");
    omni_store_read_end(st);

    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_merge(w, keep, gone, NOW), OMNI_OK, "merge again");
    is_int(omni_wtxn_commit(w), OMNI_OK, "commit");

    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_get_profile(w, gone, &p), OMNI_NOTFOUND,
           "gone's record deleted");
    omni_profile_free(&p);
    is_int(omni_wtxn_get_profile(w, keep, &p), OMNI_OK, "keep's record");
    omni_wtxn_abort(w);

    is_int(p.visits, 5, "keep: visits summed");
    is_int(p.created, 900, "keep: created the earlier");
    is_int(p.updated, 6000, "keep: updated the later");
    ok(has_segment(&p, "vip") && has_segment(&p, "new"),
       "keep: segments unioned");
    ok(p.naliases == 4 && has_alias(&p, OMNI_ALIAS_CUSTOMER, "cust-1")
       && has_alias(&p, OMNI_ALIAS_COOKIE, "cookie-g")
       && has_alias(&p, OMNI_ALIAS_DEVICE, "device-g")
       && has_alias(&p, OMNI_ALIAS_EMAIL, "email-g"),
       "keep: aliases unioned");
    omni_profile_free(&p);

    omni_store_read_begin(st);
    n = 0;
    n += omni_store_get_alias(st, OMNI_ALIAS_COOKIE, "cookie-g", 8, pid)
         == OMNI_OK && memcmp(pid, keep, OMNI_ID_LEN) == 0;
    n += omni_store_get_alias(st, OMNI_ALIAS_DEVICE, "device-g", 8, pid)
         == OMNI_OK && memcmp(pid, keep, OMNI_ID_LEN) == 0;
    n += omni_store_get_alias(st, OMNI_ALIAS_EMAIL, "email-g", 7, pid)
         == OMNI_OK && memcmp(pid, keep, OMNI_ID_LEN) == 0;
    n += omni_store_get_alias(st, OMNI_ALIAS_CUSTOMER, "cust-1", 6, pid)
         == OMNI_OK && memcmp(pid, keep, OMNI_ID_LEN) == 0;
    is_int(n, 4, "every alias of gone (and keep's own) resolves to keep");

    memset(&feed, 0, sizeof(feed));
    omni_store_feed(st, 0, 100, feed_cb, &feed, &first);
    omni_store_read_end(st);
    ok(feed.n == 5 && feed.seqs[0] == 1 && feed.seqs[4] == 5,
       "the feed still lists every touchpoint, in seq order");

    /* merging twice is the same as once */
    b1 = record_bytes(st, keep, &len1);
    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_merge(w, keep, gone, NOW + 10), OMNI_OK,
           "merge of an already merged profile: OMNI_OK");
    is_int(omni_wtxn_merge(w, keep, keep, NOW + 10), OMNI_OK,
           "merge of keep into itself: OMNI_OK");
    omni_wtxn_commit(w);
    b2 = record_bytes(st, keep, &len2);
    ok(b1 && b2 && len1 == len2 && memcmp(b1, b2, len1) == 0,
       "merging twice leaves the same bytes");
    free(b1);
    free(b2);

    omni_store_close(st);

    /* the merge is recorded; the touchpoints are not rewritten */
    is_int(raw_count(path, "merged"), 1, "merged: one entry, keep + gone");
    is_int(raw_count(path, "tpindex"), 0, "appends write no tpindex entry");
    is_int(raw_tp_owned(path, gone), 3, "gone's 3 headers keep their id");
    is_int(raw_tp_owned(path, keep), 1, "keep's own one");
    is_int(raw_tp_owned(path, other), 1, "another profile's untouched");

    /* retention after the merge: the oldest (seq 1, gone's) goes */
    st = open_store(path, 0);
    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_prune_touchpoints(w, 0, 101, 100, &pruned), OMNI_OK,
           "prune after the merge");
    is_int(pruned, 1, "pruned 1");
    omni_wtxn_commit(w);
    omni_store_close(st);

    is_int(raw_tp_owned(path, gone), 2, "pruning removed gone's oldest");
    is_int(raw_count(path, "touchpoints"), 4, "touchpoints: 4 left");

    /* forget of keep takes gone's touchpoints too */
    st = open_store(path, 0);
    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_forget(w, keep, &na, &nt), OMNI_OK, "forget keep");
    omni_wtxn_commit(w);
    is_int(nt, 3, "forget removed keep's 1 and merged gone's 2 touchpoints");
    is_int(na, 4, "forget removed keep's 4 aliases");
    omni_store_close(st);

    is_int(raw_count(path, "touchpoints"), 1, "only the other's is left");
    is_int(raw_tp_owned(path, other), 1, "and it is the other's");
    is_int(raw_count(path, "merged"), 0, "forget removed keep's merged entry");

    /*
     * A missing keep is created; gone at the alias bound has keys its
     * record dropped, and the scan moves them too.
     */
    st = open_store(path, 0);
    omni_profile_free(&g);
    mkprofile(&g, 4, 0, 700);
    mkid(gone, 4);
    mkid(keep, 5);

    omni_store_write_begin(st, &w);
    for (i = 0; i < 3; i++) {
        snprintf(v, sizeof(v), "dropped%u", i);
        omni_wtxn_put_alias(w, OMNI_ALIAS_COOKIE, v, strlen(v), gone);
    }
    for (i = 0; i < OMNI_MAX_ALIASES; i++) {
        snprintf(v, sizeof(v), "c%02u", i);
        omni_profile_add_alias(&g, OMNI_ALIAS_COOKIE, v, strlen(v));
    }
    omni_wtxn_put_profile(w, &g);
    tp(w, gone, 200);
    is_int(omni_wtxn_merge(w, keep, gone, NOW), OMNI_OK,
           "merge into a profile that has no record");
    omni_wtxn_commit(w);

    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_get_profile(w, keep, &p), OMNI_OK, "keep created");
    is_int(p.created, NOW, "keep: created now (gone's unknown)");
    is_int(p.updated, 700, "keep: updated from gone");
    is_int(p.naliases, OMNI_MAX_ALIASES, "keep: gone's aliases");
    omni_profile_free(&p);

    n = 0;
    for (i = 0; i < 3; i++) {
        snprintf(v, sizeof(v), "dropped%u", i);
        n += omni_wtxn_get_alias(w, OMNI_ALIAS_COOKIE, v, strlen(v), pid)
             == OMNI_OK && memcmp(pid, keep, OMNI_ID_LEN) == 0;
    }
    is_int(n, 3, "keys gone's record had dropped point at keep too");

    n = 0;
    for (i = 0; i < OMNI_MAX_ALIASES; i++) {
        snprintf(v, sizeof(v), "c%02u", i);
        n += omni_wtxn_get_alias(w, OMNI_ALIAS_COOKIE, v, strlen(v), pid)
             == OMNI_OK && memcmp(pid, keep, OMNI_ID_LEN) == 0;
    }
    is_int(n, OMNI_MAX_ALIASES, "every alias in gone's record -> keep");

    is_int(omni_wtxn_record_merge(w, keep, keep), OMNI_OK,
           "record_merge of a profile with itself: OMNI_OK");
    is_int(omni_wtxn_del_record(w, gone), OMNI_NOTFOUND,
           "del_record of a missing record: OMNI_NOTFOUND");
    omni_wtxn_abort(w);

    omni_store_close(st);

    is_int(raw_tp_owned(path, gone), 1, "the touchpoint names gone still");
    is_int(raw_count(path, "merged"), 1, "the merge is recorded");

    st = open_store(path, 0);
    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_forget(w, keep, &na, &nt), OMNI_OK,
           "forget the created keep");
    omni_wtxn_commit(w);
    omni_store_close(st);
    is_int(nt, 1, "forget removed gone's touchpoint");
    is_int(raw_count(path, "merged"), 0, "and the merged entry");

    omni_profile_free(&k);
    omni_profile_free(&g);
    rm_store(path);
}


/* A -> B -> C, then forget(C): every touchpoint of the three goes. */
static void
test_merge_chain(void)
{
    char            path[128];
    unsigned        na, nt, pruned;
    omni_wtxn_t    *w;
    omni_store_t   *st;
    omni_profile_t  pa, pb, pc, pd;

    snprintf(path, sizeof(path), "%s/chain", tmpdir);

    st = open_store(path, 'c');
    ok(st != NULL, "chain: store created");
    if (st == NULL) {
        return;
    }

    mkprofile(&pa, 11, 100, 100);
    mkprofile(&pb, 12, 100, 100);
    mkprofile(&pc, 13, 100, 100);
    mkprofile(&pd, 14, 100, 100);
    omni_profile_add_alias(&pa, OMNI_ALIAS_COOKIE, "cookie-a", 8);

    omni_store_write_begin(st, &w);
    omni_wtxn_put_profile(w, &pa);
    omni_wtxn_put_profile(w, &pb);
    omni_wtxn_put_profile(w, &pc);
    omni_wtxn_put_profile(w, &pd);
    tp(w, pa.id, 100);      /* seq 1: pruned below */
    tp(w, pa.id, 101);
    tp(w, pb.id, 102);
    tp(w, pd.id, 103);      /* another profile's */
    tp(w, pc.id, 104);
    tp(w, pb.id, 105);
    is_int(omni_wtxn_commit(w), OMNI_OK, "chain: four profiles, six touches");

    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_merge(w, pb.id, pa.id, NOW), OMNI_OK, "merge A into B");
    is_int(omni_wtxn_commit(w), OMNI_OK, "commit");

    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_merge(w, pc.id, pb.id, NOW), OMNI_OK, "merge B into C");
    is_int(omni_wtxn_commit(w), OMNI_OK, "commit");

    omni_store_write_begin(st, &w);
    tp(w, pc.id, 106);
    is_int(omni_wtxn_prune_touchpoints(w, 6, 0, 100, &pruned), OMNI_OK,
           "chain: retention to 6 touchpoints");
    is_int(pruned, 1, "chain: the oldest (A's) pruned");
    omni_wtxn_commit(w);
    omni_store_close(st);

    is_int(raw_count(path, "merged"), 2, "merged: C + A and C + B");
    is_int(raw_count(path, "touchpoints"), 6, "six touchpoints");
    is_int(raw_tp_owned(path, pa.id), 1, "A's remaining one names A");

    st = open_store(path, 0);
    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_forget(w, pb.id, &na, &nt), OMNI_NOTFOUND,
           "forget B (merged away): OMNI_NOTFOUND");
    omni_wtxn_abort(w);

    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_forget(w, pc.id, &na, &nt), OMNI_OK, "forget C");
    omni_wtxn_commit(w);
    is_int(nt, 5, "forget C removed A's 1, B's 2 and C's 2 touchpoints");
    is_int(na, 1, "forget C removed A's alias");
    omni_store_close(st);

    is_int(raw_count(path, "touchpoints"), 1, "only D's touchpoint is left");
    is_int(raw_tp_owned(path, pd.id), 1, "and it is D's");
    is_int(raw_count(path, "merged"), 0, "no merged entry is left");

    omni_profile_free(&pa);
    omni_profile_free(&pb);
    omni_profile_free(&pc);
    omni_profile_free(&pd);
    rm_store(path);
}


/* ---- idempotency keys ---- */

static void
test_seen(void)
{
    char               path[128], big[OMNI_SEEN_KEY_MAX + 2];
    unsigned           pruned, na, nt;
    omni_wtxn_t       *w;
    omni_store_t      *st;
    omni_profile_t     p;
    omni_store_stat_t  s;

    snprintf(path, sizeof(path), "%s/seen", tmpdir);

    st = open_store(path, 'c');
    ok(st != NULL, "seen: store created");
    if (st == NULL) {
        return;
    }

    memset(big, 'k', sizeof(big));

    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_seen(w, "m:1", 3, 100), 0, "a new key: 0");
    is_int(omni_wtxn_seen(w, "m:1", 3, 150), 1, "the same key again: 1");
    is_int(omni_wtxn_seen(w, "m:2", 3, 200), 0, "another key: 0");
    is_int(omni_wtxn_seen(w, "o:1", 3, 300), 0, "a third: 0");
    is_int(omni_wtxn_seen(w, big, OMNI_SEEN_KEY_MAX, 300), 0,
           "a key of %d bytes", OMNI_SEEN_KEY_MAX);
    is_int(omni_wtxn_seen(w, big, OMNI_SEEN_KEY_MAX + 1, 300), OMNI_INVALID,
           "a key of %d bytes: OMNI_INVALID", OMNI_SEEN_KEY_MAX + 1);
    is_int(omni_wtxn_seen(w, "", 0, 300), OMNI_INVALID,
           "an empty key: OMNI_INVALID");
    is_int(omni_wtxn_commit(w), OMNI_OK, "commit");

    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_seen(w, "m:1", 3, 400), 1,
           "recorded in an earlier transaction: 1");
    omni_wtxn_abort(w);

    is_int(omni_store_stat(st, &s), OMNI_OK, "stat");
    is_int(s.seen, 4, "stat: 4 keys seen");

    /* forget leaves idempotency keys alone */
    mkprofile(&p, 7, 1, 1);
    omni_store_write_begin(st, &w);
    omni_wtxn_put_profile(w, &p);
    is_int(omni_wtxn_forget(w, p.id, &na, &nt), OMNI_OK, "forget");
    omni_wtxn_commit(w);
    omni_profile_free(&p);
    omni_store_stat(st, &s);
    is_int(s.seen, 4, "forget: the keys stay");

    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_prune_seen(w, 250, 1, &pruned), OMNI_OK,
           "prune_seen, budget 1");
    is_int(pruned, 1, "budget 1: one pruned");
    is_int(omni_wtxn_prune_seen(w, 250, 0, &pruned), OMNI_OK,
           "prune_seen, budget 0");
    is_int(pruned, 0, "budget 0: none");
    is_int(omni_wtxn_prune_seen(w, 250, 100, &pruned), OMNI_OK,
           "prune_seen again");
    is_int(pruned, 1, "the second key older than 250");
    is_int(omni_wtxn_prune_seen(w, 250, 100, &pruned), OMNI_OK,
           "prune_seen a third time");
    is_int(pruned, 0, "nothing older is left");
    is_int(omni_wtxn_seen(w, "m:1", 3, 500), 0, "a pruned key is new again");
    is_int(omni_wtxn_seen(w, "m:2", 3, 500), 0, "the other pruned one too");
    is_int(omni_wtxn_seen(w, "o:1", 3, 500), 1, "a kept key: still seen");
    omni_wtxn_commit(w);

    omni_store_stat(st, &s);
    is_int(s.seen, 4, "stat: 4 keys again");

    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_prune_seen(w, 1000, 100, &pruned), OMNI_OK,
           "prune everything");
    is_int(pruned, 4, "4 pruned");
    omni_wtxn_commit(w);

    omni_store_close(st);

    is_int(raw_count(path, "seen"), 0, "seen is empty");
    is_int(raw_count(path, "seen_age"), 0, "seen_age is empty");

    rm_store(path);
}


/* A store from a build without seen/seen_age/merged, in every mode. */
static void
test_old_store(void)
{
    char               path[128], path2[128];
    unsigned           pruned, na, nt;
    omni_wtxn_t       *w;
    omni_store_t      *st;
    omni_store_stat_t  s;
    omni_profile_t     p, q;

    snprintf(path, sizeof(path), "%s/old", tmpdir);
    snprintf(path2, sizeof(path2), "%s/old2", tmpdir);

    ok(make_old_store(path) == 0 && raw_count(path, "seen") == -1
       && raw_count(path, "profiles") == 1,
       "an old store: no seen database, one profile");

    st = open_store(path, 'r');
    ok(st != NULL, "old store: read-only open");
    if (st) {
        ok(omni_store_stat(st, &s) == OMNI_OK && s.seen == 0
           && s.profiles == 1, "read-only: stat, seen 0");
        omni_store_close(st);
    }

    st = open_store(path, 'a');
    ok(st != NULL, "old store: attach open");
    if (st == NULL) {
        return;
    }

    ok(omni_store_stat(st, &s) == OMNI_OK && s.seen == 0,
       "attach: stat, seen 0");

    omni_store_write_begin(st, &w);
    ok(omni_wtxn_prune_seen(w, 1000, 10, &pruned) == OMNI_OK && pruned == 0,
       "attach: prune_seen with no database: nothing");
    omni_wtxn_commit(w);

    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_seen(w, "k", 1, 100), 0,
           "attach: seen creates the databases");
    omni_wtxn_abort(w);

    /* merged: forget without it, merge creates it */
    mkprofile(&p, 21, 100, 100);
    omni_store_write_begin(st, &w);
    omni_wtxn_put_profile(w, &p);
    tp(w, p.id, 100);
    is_int(omni_wtxn_forget(w, p.id, &na, &nt), OMNI_OK,
           "attach: forget with no merged database");
    is_int(nt, 1, "attach: forget found the touchpoint");
    omni_wtxn_put_profile(w, &p);
    is_int(omni_wtxn_merge(w, p.id + 0, (unsigned char *) "\xa0nothing-there!",
                           NOW), OMNI_OK, "attach: merge of nothing");
    omni_wtxn_abort(w);
    omni_profile_free(&p);

    omni_store_close(st);
    is_int(raw_count(path, "seen"), -1, "aborted: still no seen database");
    is_int(raw_count(path, "merged"), -1, "aborted: no merged database");
    is_int(raw_count(path, "tpindex"), 1, "attach: tpindex left as it was");

    /* abort, then commit, on one handle */
    st = open_store(path, 'a');
    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_seen(w, "k", 1, 100), 0, "attach: seen, aborted");
    omni_wtxn_abort(w);
    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_seen(w, "k", 1, 100), 0, "attach: seen, 0");
    is_int(omni_wtxn_commit(w), OMNI_OK, "attach: commit");
    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_seen(w, "k", 1, 200), 1,
           "attach: the next transaction sees it");
    omni_wtxn_abort(w);
    ok(omni_store_stat(st, &s) == OMNI_OK && s.seen == 1,
       "attach: stat, seen 1");

    /* an attach handle's merge creates merged; its next forget uses it */
    mkprofile(&p, 21, 100, 100);
    mkprofile(&q, 22, 100, 100);
    omni_store_write_begin(st, &w);
    omni_wtxn_put_profile(w, &p);
    omni_wtxn_put_profile(w, &q);
    tp(w, q.id, 100);
    is_int(omni_wtxn_merge(w, p.id, q.id, NOW), OMNI_OK, "attach: merge");
    is_int(omni_wtxn_commit(w), OMNI_OK, "attach: commit the merge");
    omni_store_write_begin(st, &w);
    is_int(omni_wtxn_forget(w, p.id, &na, &nt), OMNI_OK, "attach: forget");
    is_int(nt, 1, "attach: forget took the merged profile's touchpoint");
    is_int(omni_wtxn_commit(w), OMNI_OK, "attach: commit the forget");
    omni_profile_free(&p);
    omni_profile_free(&q);
    omni_store_close(st);
    is_int(raw_count(path, "merged"), 0, "attach: merged emptied");

    is_int(raw_count(path, "seen"), 1, "seen created, one key");
    is_int(raw_count(path, "seen_age"), 1, "seen_age created, one entry");

    st = open_store(path, 'r');
    ok(st && omni_store_stat(st, &s) == OMNI_OK && s.seen == 1,
       "read-only reopen: seen 1");
    omni_store_close(st);

    /* a writer open of an old store creates them at once */
    ok(make_old_store(path2) == 0, "a second old store");
    st = open_store(path2, 0);
    ok(st != NULL, "old store: writer open");
    omni_store_close(st);
    ok(raw_count(path2, "seen") == 0 && raw_count(path2, "seen_age") == 0,
       "writer open: seen and seen_age created, empty");
    is_int(raw_count(path2, "merged"), 0, "writer open: merged created");
    is_int(raw_count(path2, "tpindex"), 0, "writer open: tpindex emptied");

    st = open_store(path2, 'a');
    omni_store_write_begin(st, &w);
    ok(omni_wtxn_prune_seen(w, 1000, 10, &pruned) == OMNI_OK && pruned == 0,
       "attach after the upgrade: prune_seen");
    is_int(omni_wtxn_seen(w, "k", 1, 100), 0, "attach after the upgrade");
    omni_wtxn_commit(w);
    omni_store_close(st);

    rm_store(path);
    rm_store(path2);
}


int
main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/omni-merge-XXXXXX");

    if (mkdtemp(tmpdir) == NULL) {
        printf("Bail out! mkdtemp failed\n");
        return 1;
    }

    test_scalars();
    test_sets();
    test_attrs_consent();
    test_cart();
    test_histories();
    test_counters();
    test_pick();
    test_deterministic();
    test_store_merge();
    test_merge_chain();
    test_seen();
    test_old_store();

    rmdir(tmpdir);

    return done_testing();
}
