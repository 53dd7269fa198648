/*
 * Unit tests of applying events (omni_event_apply(), docs/events.md),
 * against a store in a temporary directory under /tmp: the profile
 * change of every kind of event, idempotency (messageId, order id,
 * purchase history, per-visitor client ids), identity resolution and
 * stitching, and the feed record.
 *
 * Parsing is tested in test_event_parse.c.  JSON is written with ' for "
 * (J() turns them back) to stay readable.
 */

#include "event_helpers.h"


static omni_store_t *
open_store(const char *name, char *path, size_t size)
{
    char               err[512];
    omni_store_t      *st;
    omni_store_opts_t  opts;

    snprintf(path, size, "%s/%s", tmpdir, name);

    memset(&opts, 0, sizeof(opts));
    opts.map_size = (size_t) 64 << 20;
    opts.create = 1;

    if (omni_store_open(&st, path, &opts, err, sizeof(err)) != OMNI_OK) {
        printf("# open %s: %s\n", path, err);
        return NULL;
    }

    return st;
}


static void
rm_store(omni_store_t *st, const char *path)
{
    char  f[256];

    omni_store_close(st);

    snprintf(f, sizeof(f), "%s/data.mdb", path);
    unlink(f);
    snprintf(f, sizeof(f), "%s/lock.mdb", path);
    unlink(f);
    rmdir(path);
}


static uint32_t  apply_timeout;


/*
 * Parses a one-event body and applies it in a transaction of its own
 * (committed); the apply's rc, or -100 when the event did not parse.
 */
static int
apply(omni_store_t *st, const omni_event_ctx_t *c, const char *text,
    int *status, unsigned char *pid)
{
    int                 rc;
    omni_wtxn_t        *w;
    omni_event_err_t    err;
    omni_event_batch_t  b;

    *status = -1;
    memset(pid, 0xff, OMNI_ID_LEN);

    if (omni_event_batch_parse(&b, text, strlen(text), c, &err) != OMNI_OK
        || b.n != 1 || b.rc[0] != OMNI_OK)
    {
        printf("# does not parse: %s: %s\n", text,
               b.n ? b.errs[0].reason : err.reason);
        omni_event_batch_free(&b);
        return -100;
    }

    b.events[0].visit_timeout = apply_timeout;

    rc = omni_store_write_begin(st, &w);
    if (rc != OMNI_OK) {
        omni_event_batch_free(&b);
        return rc;
    }

    rc = omni_event_apply(w, &b.events[0], status, pid);

    if (rc == OMNI_OK) {
        rc = omni_wtxn_commit(w);

    } else {
        omni_wtxn_abort(w);
    }

    omni_event_batch_free(&b);

    return rc;
}


/* apply(), expecting OMNI_OK and status */
static int
applied(omni_store_t *st, const omni_event_ctx_t *c, const char *text,
    int want, unsigned char *pid, const char *what)
{
    int  rc, status;

    rc = apply(st, c, text, &status, pid);
    ok(rc == OMNI_OK && status == want, "%s: %s", what,
       omni_event_status_name(want));

    if (rc != OMNI_OK || status != want) {
        printf("#   got rc %d, status %d\n", rc, status);
        return 0;
    }

    return 1;
}


static int
load(omni_store_t *st, const unsigned char *pid, omni_profile_t *p)
{
    int           rc;
    omni_wtxn_t  *w;

    if (omni_store_write_begin(st, &w) != OMNI_OK) {
        omni_profile_init(p, pid);
        return OMNI_ERROR;
    }

    rc = omni_wtxn_get_profile(w, pid, p);
    omni_wtxn_abort(w);

    return rc;
}


static int
exists(omni_store_t *st, const unsigned char *pid)
{
    int             rc;
    omni_profile_t  p;

    rc = load(st, pid, &p);
    omni_profile_free(&p);

    return rc == OMNI_OK;
}


/* The profile an alias points at (all zero: none). */
static const unsigned char *
alias_of(omni_store_t *st, unsigned kind, const char *value)
{
    static unsigned char  pid[OMNI_ID_LEN];

    memset(pid, 0, OMNI_ID_LEN);

    if (omni_store_read_begin(st) == OMNI_OK) {
        if (omni_store_get_alias(st, kind, value, strlen(value), pid)
            != OMNI_OK)
        {
            memset(pid, 0, OMNI_ID_LEN);
        }

        omni_store_read_end(st);
    }

    return pid;
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


static const omni_cart_item_t *
get_cart(const omni_profile_t *p, const char *sku)
{
    unsigned  i;

    for (i = 0; i < p->ncart; i++) {
        if (strcmp(p->cart[i].sku, sku) == 0) {
            return &p->cart[i];
        }
    }

    return NULL;
}


static const omni_evcount_t *
get_count(const omni_profile_t *p, const char *name)
{
    unsigned  i;

    for (i = 0; i < p->nevents; i++) {
        if (strcmp(p->events[i].name, name) == 0) {
            return &p->events[i];
        }
    }

    return NULL;
}


static const omni_purchase_t *
get_purchase(const omni_profile_t *p, const char *order, const char *sku)
{
    unsigned  i;

    for (i = 0; i < p->npurchases; i++) {
        if (strcmp(p->purchases[i].order_id, order) == 0
            && strcmp(p->purchases[i].sku, sku) == 0)
        {
            return &p->purchases[i];
        }
    }

    return NULL;
}


/* A profile written directly: id, created, a customer, a cookie. */
static void
seed(omni_store_t *st, const char *hex, uint32_t created,
    const char *customer, const char *cookie, const char *order)
{
    unsigned char     id[OMNI_ID_LEN];
    omni_wtxn_t      *w;
    omni_profile_t    p;
    omni_purchase_t  *pu;

    hex2id(hex, id);
    omni_profile_init(&p, id);
    p.created = created;
    p.updated = created;

    if (customer) {
        omni_profile_add_alias(&p, OMNI_ALIAS_CUSTOMER, customer,
                               strlen(customer));
    }

    if (cookie) {
        omni_profile_add_alias(&p, OMNI_ALIAS_COOKIE, cookie,
                               strlen(cookie));
    }

    if (order) {
        p.purchases = calloc(1, sizeof(omni_purchase_t));
        pu = &p.purchases[0];
        pu->order_id = strdup(order);
        pu->sku = strdup("Z");
        pu->category = strdup("");
        pu->time = created;
        pu->price = 10;
        pu->qty = 1;
        p.npurchases = 1;
        p.orders = 1;
        p.revenue = 10;
        p.stage = OMNI_STAGE_CUSTOMER;
    }

    if (omni_store_write_begin(st, &w) != OMNI_OK
        || omni_wtxn_put_profile(w, &p) != OMNI_OK
        || omni_wtxn_commit(w) != OMNI_OK)
    {
        printf("Bail out! cannot seed %s\n", hex);
        exit(1);
    }

    omni_profile_free(&p);
}


/* ---- the feed ---- */

#define FEED_MAX  256

typedef struct {
    unsigned   n;
    uint64_t   seq[FEED_MAX];
    char      *line[FEED_MAX];
} feed_t;


static int
feed_cb(void *arg, uint64_t seq, const void *data, size_t len)
{
    feed_t  *f = arg;

    if (f->n < FEED_MAX) {
        f->seq[f->n] = seq;
        f->line[f->n] = strndup(data, len);
        f->n++;
    }

    return OMNI_OK;
}


static void
feed_load(omni_store_t *st, feed_t *f)
{
    memset(f, 0, sizeof(feed_t));
    omni_store_foreach_touchpoint(st, 0, FEED_MAX, feed_cb, f);
}


static void
feed_free(feed_t *f)
{
    unsigned  i;

    for (i = 0; i < f->n; i++) {
        free(f->line[i]);
    }

    f->n = 0;
}


/* The records with messageId id: how many, and the last one parsed. */
static json_t *
feed_find(const feed_t *f, const char *id, unsigned *count, unsigned *at)
{
    unsigned   i;
    json_t    *j, *found;

    found = NULL;
    *count = 0;

    for (i = 0; i < f->n; i++) {
        j = json_loads(f->line[i], 0, NULL);

        if (j && json_string_value(json_object_get(j, "messageId"))
            && strcmp(json_string_value(json_object_get(j, "messageId")),
                      id) == 0)
        {
            (*count)++;
            json_decref(found);
            found = j;

            if (at) {
                *at = i;
            }

            continue;
        }

        json_decref(j);
    }

    return found;
}


static const char *
jstr(json_t *o, const char *path)
{
    char         key[64];
    const char  *dot;

    dot = strchr(path, '.');

    if (dot) {
        snprintf(key, sizeof(key), "%.*s", (int) (dot - path), path);
        return jstr(json_object_get(o, key), dot + 1);
    }

    return json_string_value(json_object_get(o, path));
}


/* ---- apply: the profile changes ---- */

static void
test_apply_visits(void)
{
    char              path[128];
    uint32_t          t0;
    unsigned char     pid[OMNI_ID_LEN], vid[OMNI_ID_LEN];
    omni_store_t     *st;
    omni_profile_t    p;
    omni_event_ctx_t  c, d;

    st = open_store("visits", path, sizeof(path));
    ok(st != NULL, "visits: store");
    if (st == NULL) {
        return;
    }

    ctx_client(&c, OMNI_ALIAS_COOKIE, VID_A, OMNI_CH_WEB);
    t0 = NOW - 86400;

    /* a new visitor: its profile takes the visitor's id */
    if (applied(st, &c, J("{'type':'page','timestamp':'%s'}", iso(t0)),
                OMNI_EVENT_ACCEPTED, pid, "first page"))
    {
        is_str(id2hex(pid), VID_A, "a new profile takes the visitor id");
    }

    hex2id(VID_A, vid);
    is_int(load(st, vid, &p), OMNI_OK, "the profile is stored");
    is_int(p.created, t0, "created: the event's time");
    is_int(p.updated, t0, "updated: the event's time");
    is_int(p.visits, 1, "one visit");
    is_int(p.visit_last, t0, "visit_last");
    is_int(p.last_seen[OMNI_CH_WEB], t0, "last seen on the web");
    is_int(p.last_seen[OMNI_CH_APP], 0, "never on the app");
    ok(p.naliases == 1 && has_alias(&p, OMNI_ALIAS_COOKIE, VID_A),
       "the cookie alias");
    is_int(p.stage, OMNI_STAGE_NEW, "stage new");
    is_int(p.nevents, 0, "a page is not a counted track event");
    omni_profile_free(&p);
    ok(memcmp(alias_of(st, OMNI_ALIAS_COOKIE, VID_A), vid, OMNI_ID_LEN)
       == 0, "the alias key points at it");

    /* the 30-minute rule */
    applied(st, &c, J("{'type':'page','timestamp':'%s'}", iso(t0 + 1799)),
            OMNI_EVENT_ACCEPTED, pid, "a page 29:59 later");
    load(st, vid, &p);
    ok(p.visits == 1 && p.visit_last == t0 + 1799,
       "the same visit (visits %u)", p.visits);
    omni_profile_free(&p);

    applied(st, &c, J("{'type':'page','timestamp':'%s'}",
                      iso(t0 + 1799 + 1800)),
            OMNI_EVENT_ACCEPTED, pid, "a page 30:00 after that");
    load(st, vid, &p);
    ok(p.visits == 2 && p.visit_last == t0 + 3599, "a new visit");
    is_int(p.stage, OMNI_STAGE_BROWSING, "two visits: browsing");
    omni_profile_free(&p);

    /* an older event changes no latest time */
    applied(st, &c, J("{'type':'page','timestamp':'%s'}", iso(t0 - 100)),
            OMNI_EVENT_ACCEPTED, pid, "a backfilled page");
    load(st, vid, &p);
    ok(p.visit_last == t0 + 3599 && p.updated == t0 + 3599
       && p.last_seen[OMNI_CH_WEB] == t0 + 3599 && p.created == t0,
       "a backfill moves no latest time back");
    omni_profile_free(&p);

    /* omni_visit_timeout */
    apply_timeout = 60;
    applied(st, &c, J("{'type':'page','timestamp':'%s'}", iso(t0 + 3660)),
            OMNI_EVENT_ACCEPTED, pid, "a page 61s later, timeout 60");
    apply_timeout = 0;
    load(st, vid, &p);
    is_int(p.visits, 3, "the event's visit_timeout is used");
    omni_profile_free(&p);

    /* an app: screen views on its device */
    ctx_client(&d, OMNI_ALIAS_DEVICE, VID_B, OMNI_CH_APP);

    if (applied(st, &d, J("{'type':'screen','timestamp':'%s'}", iso(t0)),
                OMNI_EVENT_ACCEPTED, pid, "a screen"))
    {
        is_str(id2hex(pid), VID_B, "the device's profile");
    }

    load(st, pid, &p);
    ok(p.visits == 1 && p.last_seen[OMNI_CH_APP] == t0
       && p.last_seen[OMNI_CH_WEB] == 0
       && p.naliases == 1 && has_alias(&p, OMNI_ALIAS_DEVICE, VID_B),
       "screen: a visit on the app, the device alias");
    omni_profile_free(&p);

    rm_store(st, path);
}


static void
test_apply_cart(void)
{
    char                     path[128];
    uint32_t                 t;
    unsigned char            pid[OMNI_ID_LEN], vid[OMNI_ID_LEN];
    omni_store_t            *st;
    omni_profile_t           p;
    omni_event_ctx_t         c;
    const omni_cart_item_t  *ci;
    const omni_evcount_t    *e;

    st = open_store("cart", path, sizeof(path));
    ok(st != NULL, "cart: store");
    if (st == NULL) {
        return;
    }

    ctx_client(&c, OMNI_ALIAS_COOKIE, VID_A, OMNI_CH_WEB);
    hex2id(VID_A, vid);
    t = NOW - 5000;

    applied(st, &c, J("{'type':'track','event':'Product Added',"
                      "'timestamp':'%s','properties':{'sku':'TENT-2',"
                      "'name':'Trail Tent','category':'tents','price':199,"
                      "'quantity':2,'url':'/p/tent-2','image_url':"
                      "'https://cdn.example.com/t.jpg'}}", iso(t)),
            OMNI_EVENT_ACCEPTED, pid, "Product Added");
    load(st, vid, &p);
    ci = get_cart(&p, "TENT-2");
    ok(p.ncart == 1 && ci && ci->qty == 2 && ci->price == 199
       && strcmp(ci->name, "Trail Tent") == 0
       && strcmp(ci->category, "tents") == 0
       && strcmp(ci->url, "/p/tent-2") == 0
       && strcmp(ci->image, "https://cdn.example.com/t.jpg") == 0,
       "a cart line with everything");
    is_int(p.cart_updated, t, "the cart's time is the event's");
    is_int(p.stage, OMNI_STAGE_CART, "stage cart");
    e = get_count(&p, "Product Added");
    ok(e && e->count == 1 && e->last == t, "counted under its name");
    omni_profile_free(&p);

    applied(st, &c, J("{'type':'track','event':'Product Added',"
                      "'timestamp':'%s','properties':{'sku':'TENT-2',"
                      "'name':'Trail Tent 2','price':189,'quantity':3}}",
                      iso(t + 10)),
            OMNI_EVENT_ACCEPTED, pid, "the same sku again");
    load(st, vid, &p);
    ci = get_cart(&p, "TENT-2");
    ok(p.ncart == 1 && ci && ci->qty == 5 && ci->price == 189
       && strcmp(ci->name, "Trail Tent 2") == 0
       && strcmp(ci->category, "tents") == 0,
       "the quantity raised, new values set, the rest kept");
    e = get_count(&p, "Product Added");
    ok(e && e->count == 2 && e->last == t + 10, "counted twice");
    omni_profile_free(&p);

    applied(st, &c, J("{'type':'track','event':'Product Added',"
                      "'timestamp':'%s','properties':{'product_id':'MUG'}}",
                      iso(t + 20)),
            OMNI_EVENT_ACCEPTED, pid, "another product");
    applied(st, &c, J("{'type':'track','event':'Product Added',"
                      "'timestamp':'%s','properties':{'sku':'BULK',"
                      "'quantity':10000}}", iso(t + 21)),
            OMNI_EVENT_ACCEPTED, pid, "10000 of a product");
    applied(st, &c, J("{'type':'track','event':'Product Added',"
                      "'timestamp':'%s','properties':{'sku':'BULK',"
                      "'quantity':5}}", iso(t + 22)),
            OMNI_EVENT_ACCEPTED, pid, "5 more of it");
    load(st, vid, &p);
    ci = get_cart(&p, "MUG");
    ok(p.ncart == 3 && ci && ci->qty == 1 && ci->price == 0,
       "quantity 1 by default");
    ci = get_cart(&p, "BULK");
    ok(ci && ci->qty == 10000, "quantities stop at 10000");
    omni_profile_free(&p);

    applied(st, &c, J("{'type':'track','event':'Product Removed',"
                      "'timestamp':'%s','properties':{'sku':'TENT-2',"
                      "'quantity':1}}", iso(t + 30)),
            OMNI_EVENT_ACCEPTED, pid, "Product Removed, quantity 1");
    load(st, vid, &p);
    ci = get_cart(&p, "TENT-2");
    ok(ci && ci->qty == 4, "one taken out");
    is_int(p.cart_updated, t + 30, "the cart's time");
    omni_profile_free(&p);

    applied(st, &c, J("{'type':'track','event':'Product Removed',"
                      "'timestamp':'%s','properties':{'sku':'TENT-2',"
                      "'quantity':9}}", iso(t + 40)),
            OMNI_EVENT_ACCEPTED, pid, "Product Removed, more than there");
    applied(st, &c, J("{'type':'track','event':'Product Removed',"
                      "'timestamp':'%s','properties':{'sku':'MUG'}}",
                      iso(t + 41)),
            OMNI_EVENT_ACCEPTED, pid, "Product Removed, no quantity");
    applied(st, &c, J("{'type':'track','event':'Product Removed',"
                      "'timestamp':'%s','properties':{'sku':'NOPE'}}",
                      iso(t + 42)),
            OMNI_EVENT_ACCEPTED, pid, "Product Removed, not in the cart");
    load(st, vid, &p);
    ok(p.ncart == 1 && get_cart(&p, "BULK") != NULL,
       "the lines are gone, the other stays");
    e = get_count(&p, "Product Removed");
    ok(e && e->count == 4, "each removal counted");
    omni_profile_free(&p);

    /* recently viewed */
    applied(st, &c, J("{'type':'track','event':'Product Viewed',"
                      "'timestamp':'%s','properties':{'sku':'BOOT',"
                      "'category':'shoes','price':90}}", iso(t + 50)),
            OMNI_EVENT_ACCEPTED, pid, "Product Viewed BOOT");
    applied(st, &c, J("{'type':'track','event':'Product Viewed',"
                      "'timestamp':'%s','properties':{'sku':'HAT'}}",
                      iso(t + 60)),
            OMNI_EVENT_ACCEPTED, pid, "Product Viewed HAT");
    applied(st, &c, J("{'type':'track','event':'Product Viewed',"
                      "'timestamp':'%s','properties':{'sku':'BOOT',"
                      "'price':80}}", iso(t + 70)),
            OMNI_EVENT_ACCEPTED, pid, "Product Viewed BOOT again");
    load(st, vid, &p);
    ok(p.nviews == 2 && strcmp(p.views[0].sku, "HAT") == 0
       && strcmp(p.views[1].sku, "BOOT") == 0
       && p.views[1].time == t + 70 && p.views[1].price == 80
       && p.views[0].time == t + 60,
       "one entry per sku, the newest last");
    e = get_count(&p, "Product Viewed");
    ok(e && e->count == 3 && e->last == t + 70, "three views counted");
    omni_profile_free(&p);

    /* counted only */
    applied(st, &c, J("{'type':'track','event':'Cart Viewed',"
                      "'timestamp':'%s'}", iso(t + 80)),
            OMNI_EVENT_ACCEPTED, pid, "Cart Viewed");
    applied(st, &c, J("{'type':'track','event':'Wishlist Shared',"
                      "'timestamp':'%s','properties':{'a':[1,2]}}",
                      iso(t + 90)),
            OMNI_EVENT_ACCEPTED, pid, "any other name");
    applied(st, &c, J("{'type':'track','event':'Wishlist Shared',"
                      "'timestamp':'%s'}", iso(t + 85)),
            OMNI_EVENT_ACCEPTED, pid, "the same, earlier");
    load(st, vid, &p);
    e = get_count(&p, "Cart Viewed");
    ok(e && e->count == 1 && e->last == t + 80, "Cart Viewed counted");
    e = get_count(&p, "Wishlist Shared");
    ok(e && e->count == 2 && e->last == t + 90,
       "counted, the last time the latest");
    ok(p.ncart == 1 && p.cart_updated == t + 42,
       "a counted event leaves the cart alone");
    omni_profile_free(&p);

    rm_store(st, path);
}


static void
test_apply_orders(void)
{
    char                    path[128];
    uint32_t                t;
    unsigned char           pid[OMNI_ID_LEN], cid[OMNI_ID_LEN];
    omni_store_t           *st;
    omni_profile_t          p;
    omni_event_ctx_t        s;
    const omni_purchase_t  *pu;
    const omni_attr_t      *a;
    const omni_evcount_t   *e;

    st = open_store("orders", path, sizeof(path));
    ok(st != NULL, "orders: store");
    if (st == NULL) {
        return;
    }

    ctx_server(&s);
    t = NOW - 7200;

    applied(st, &s, J("{'type':'identify','userId':'C-1','timestamp':'%s',"
                      "'traits':{'first_name':'Ana','tier':'gold',"
                      "'old':'x','address':{'city':'Lisbon'}}}", iso(t)),
            OMNI_EVENT_ACCEPTED, cid, "identify a customer");
    ok(!is_zero_id(cid), "userId alone: a new random profile id");

    load(st, cid, &p);
    ok(has_alias(&p, OMNI_ALIAS_CUSTOMER, "C-1") && p.naliases == 1,
       "the customer alias");
    a = get_attr(&p, "first_name");
    ok(a && a->type == OMNI_ATTR_STR && strcmp(a->str, "Ana") == 0,
       "first_name set");
    a = get_attr(&p, "address.city");
    ok(a && strcmp(a->str, "Lisbon") == 0, "address.city set");
    is_int(p.last_seen[OMNI_CH_OTHER], t, "last seen on other");
    is_int(p.nevents, 0, "identify is not counted");
    omni_profile_free(&p);
    ok(memcmp(alias_of(st, OMNI_ALIAS_CUSTOMER, "C-1"), cid, OMNI_ID_LEN)
       == 0, "customer:C-1 resolves to it");

    applied(st, &s, J("{'type':'identify','userId':'C-1','timestamp':'%s',"
                      "'traits':{'old':null,'tier':'silver','points':7}}",
                      iso(t + 1)),
            OMNI_EVENT_ACCEPTED, pid, "identify again");
    ok(memcmp(pid, cid, OMNI_ID_LEN) == 0, "the same profile");
    load(st, cid, &p);
    ok(get_attr(&p, "old") == NULL, "null removed a trait");
    a = get_attr(&p, "tier");
    ok(a && strcmp(a->str, "silver") == 0, "a trait replaced");
    a = get_attr(&p, "points");
    ok(a && a->type == OMNI_ATTR_NUM && a->num == 7, "a number trait");
    ok(get_attr(&p, "first_name") != NULL, "the others kept");
    omni_profile_free(&p);

    /* a cart, then the order */
    applied(st, &s, J("{'type':'track','event':'Product Added',"
                      "'userId':'C-1','timestamp':'%s','properties':"
                      "{'sku':'A','quantity':2}}", iso(t + 2)),
            OMNI_EVENT_ACCEPTED, pid, "cart: A");
    applied(st, &s, J("{'type':'track','event':'Product Added',"
                      "'userId':'C-1','timestamp':'%s','properties':"
                      "{'sku':'B'}}", iso(t + 3)),
            OMNI_EVENT_ACCEPTED, pid, "cart: B");

    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-1','messageId':'o-1','timestamp':'%s',"
                      "'properties':{'order_id':'W-1','channel':'pos',"
                      "'total':250,'products':[{'sku':'A','price':100,"
                      "'quantity':2,'category':'x'},{'sku':'C',"
                      "'price':50}]}}", iso(t + 100)),
            OMNI_EVENT_ACCEPTED, pid, "Order Completed");
    ok(memcmp(pid, cid, OMNI_ID_LEN) == 0, "the customer's profile");

    load(st, cid, &p);
    is_int(p.npurchases, 2, "one purchase line per product");
    pu = get_purchase(&p, "W-1", "A");
    ok(pu && pu->channel == OMNI_CH_POS && pu->time == t + 100
       && pu->price == 100 && pu->qty == 2
       && strcmp(pu->category, "x") == 0,
       "the line: channel, time, price, quantity, category");
    pu = get_purchase(&p, "W-1", "C");
    ok(pu && pu->qty == 1 && pu->price == 50, "quantity 1 by default");
    is_int(p.orders, 1, "one order");
    ok(p.revenue == 250, "revenue: the total (%g)", p.revenue);
    ok(p.ncart == 1 && get_cart(&p, "B") != NULL,
       "the bought sku left the cart, the other stays");
    is_int(p.cart_updated, t + 100, "the cart's time");
    is_int(p.stage, OMNI_STAGE_CUSTOMER, "stage customer");
    is_int(p.last_seen[OMNI_CH_POS], t + 100, "last seen at the store");
    e = get_count(&p, "Order Completed");
    ok(e && e->count == 1, "counted");
    omni_profile_free(&p);

    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-1','timestamp':'%s','properties':"
                      "{'order_id':'W-2','products':[{'sku':'D',"
                      "'price':10,'quantity':3},{'sku':'E','price':1.5}]}}",
                      iso(t + 200)),
            OMNI_EVENT_ACCEPTED, pid, "an order without a total");
    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-1','timestamp':'%s','properties':"
                      "{'order_id':'W-3','revenue':5,'products':"
                      "[{'sku':'D','price':99}]}}", iso(t + 300)),
            OMNI_EVENT_ACCEPTED, pid, "an order with revenue");
    load(st, cid, &p);
    ok(p.orders == 3 && p.revenue == 250 + 31.5 + 5,
       "revenue: the lines' sum, else revenue (%g)", p.revenue);
    pu = get_purchase(&p, "W-2", "D");
    ok(pu && pu->channel == OMNI_CH_OTHER, "a server's order: other");
    omni_profile_free(&p);

    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-1','timestamp':'%s','properties':"
                      "{'order_id':'W-4','products':[{'sku':'F'}]}}",
                      iso(t + 400)),
            OMNI_EVENT_ACCEPTED, pid, "a fourth order");
    load(st, cid, &p);
    is_int(p.stage, OMNI_STAGE_CUSTOMER, "four orders: customer");
    omni_profile_free(&p);
    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-1','timestamp':'%s','properties':"
                      "{'order_id':'W-5','products':[{'sku':'F'}]}}",
                      iso(t + 500)),
            OMNI_EVENT_ACCEPTED, pid, "a fifth order");
    load(st, cid, &p);
    is_int(p.stage, OMNI_STAGE_LOYAL, "five orders: loyal");
    is_int(p.orders, 5, "five orders");
    omni_profile_free(&p);

    /* email and SMS events: last seen on their channel */
    applied(st, &s, J("{'type':'track','event':'Email Clicked',"
                      "'userId':'C-1','timestamp':'%s'}", iso(t + 600)),
            OMNI_EVENT_ACCEPTED, pid, "Email Clicked");
    applied(st, &s, J("{'type':'track','event':'SMS Clicked',"
                      "'userId':'C-1','timestamp':'%s'}", iso(t + 700)),
            OMNI_EVENT_ACCEPTED, pid, "SMS Clicked");
    load(st, cid, &p);
    ok(p.last_seen[OMNI_CH_EMAIL] == t + 600
       && p.last_seen[OMNI_CH_SMS] == t + 700 && p.updated == t + 700,
       "last seen on email and SMS");
    omni_profile_free(&p);

    rm_store(st, path);
}


/* ---- apply: idempotency ---- */

static void
test_apply_dupes(void)
{
    int               status;
    char              path[128];
    unsigned          n;
    json_t           *r;
    omni_wtxn_t      *w;
    unsigned char     pid[OMNI_ID_LEN], hid[OMNI_ID_LEN], did[OMNI_ID_LEN];
    unsigned char     m1[OMNI_ID_LEN];
    feed_t            f;
    omni_store_t     *st;
    omni_profile_t    p;
    omni_event_ctx_t  c1, c2, s;

    st = open_store("dupes", path, sizeof(path));
    ok(st != NULL, "dupes: store");
    if (st == NULL) {
        return;
    }

    ctx_client(&c1, OMNI_ALIAS_COOKIE, VID_A, OMNI_CH_WEB);
    ctx_client(&c2, OMNI_ALIAS_COOKIE, VID_B, OMNI_CH_WEB);
    ctx_server(&s);

    /* a replayed messageId changes nothing */
    applied(st, &c1, J("{'type':'track','event':'Product Added',"
                       "'messageId':'same','properties':{'sku':'Q'}}"),
            OMNI_EVENT_ACCEPTED, m1, "client A: messageId same");
    applied(st, &c1, J("{'type':'track','event':'Product Added',"
                       "'messageId':'same','properties':{'sku':'Q'}}"),
            OMNI_EVENT_DUPLICATE, pid, "client A: replayed");
    load(st, m1, &p);
    ok(p.ncart == 1 && p.cart[0].qty == 1, "the replay added nothing");
    ok(get_count(&p, "Product Added")
       && get_count(&p, "Product Added")->count == 1, "counted once");
    omni_profile_free(&p);

    /* client ids are scoped to their visitor; servers share one space */
    applied(st, &c2, J("{'type':'track','event':'Product Added',"
                       "'messageId':'same','properties':{'sku':'Q'}}"),
            OMNI_EVENT_ACCEPTED, pid, "client B: the same messageId");
    is_str(id2hex(pid), VID_B, "client B: its own profile");
    applied(st, &s, J("{'type':'track','event':'X','userId':'C-M',"
                      "'messageId':'same'}"),
            OMNI_EVENT_ACCEPTED, pid, "server: the same messageId");
    applied(st, &s, J("{'type':'track','event':'Y','userId':'C-N',"
                      "'messageId':'same'}"),
            OMNI_EVENT_DUPLICATE, pid, "server: again, for somebody else");
    applied(st, &c2, J("{'type':'page','messageId':'same'}"),
            OMNI_EVENT_DUPLICATE, pid, "client B: replayed");

    feed_load(st, &f);
    r = feed_find(&f, "same", &n, NULL);
    is_int(n, 3, "three records with messageId same");
    json_decref(r);
    feed_free(&f);

    /* an aborted transaction keeps no key */
    {
        char                t[256];
        omni_event_err_t    err;
        omni_event_batch_t  b;

        strcpy(t, J("{'type':'track','event':'Z','userId':'C-Z',"
                    "'messageId':'aborted','properties':{'k':1}}"));
        omni_event_batch_parse(&b, t, strlen(t), &s, &err);
        omni_store_write_begin(st, &w);
        is_int(omni_event_apply(w, &b.events[0], &status, pid), OMNI_OK,
               "applied, then aborted");
        omni_wtxn_abort(w);
        omni_event_batch_free(&b);
        ok(is_zero_id(alias_of(st, OMNI_ALIAS_CUSTOMER, "C-Z")),
           "the aborted event left no profile");
        applied(st, &s, t, OMNI_EVENT_ACCEPTED, pid,
                "the same messageId after the abort");
    }

    /* a batch in one transaction: a duplicate within it */
    {
        int                 st3[3];
        omni_event_err_t    err;
        omni_event_batch_t  b;
        unsigned char       p3[3][OMNI_ID_LEN];
        const char         *t;
        unsigned            i;

        t = J("[{'type':'page','userId':'C-B','messageId':'b1'},"
              "{'type':'page','userId':'C-B','messageId':'b1'},"
              "{'type':'page','userId':'C-B','messageId':'b2'}]");
        omni_event_batch_parse(&b, t, strlen(t), &s, &err);
        omni_store_write_begin(st, &w);

        for (i = 0; i < 3; i++) {
            omni_event_apply(w, &b.events[i], &st3[i], p3[i]);
        }

        is_int(omni_wtxn_commit(w), OMNI_OK, "a batch in one transaction");
        omni_event_batch_free(&b);
        ok(st3[0] == OMNI_EVENT_ACCEPTED && st3[1] == OMNI_EVENT_DUPLICATE
           && st3[2] == OMNI_EVENT_ACCEPTED
           && memcmp(p3[0], p3[2], OMNI_ID_LEN) == 0,
           "a duplicate inside the batch");
        feed_load(st, &f);
        r = feed_find(&f, "b1", &n, NULL);
        is_int(n, 1, "one record of b1");
        json_decref(r);
        feed_free(&f);
    }

    /* the order id: under a new messageId, a duplicate */
    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-O','messageId':'m-a','properties':"
                      "{'order_id':'O-9','products':[{'sku':'A',"
                      "'price':5}]}}"),
            OMNI_EVENT_ACCEPTED, pid, "order O-9");
    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-O','messageId':'m-b','properties':"
                      "{'order_id':'O-9','products':[{'sku':'A',"
                      "'price':5}]}}"),
            OMNI_EVENT_DUPLICATE, pid, "order O-9 under a new messageId");
    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-P','messageId':'m-c','properties':"
                      "{'order_id':'O-9','products':[{'sku':'B'}]}}"),
            OMNI_EVENT_DUPLICATE, pid, "order O-9 for somebody else");
    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-O','messageId':'m-a','properties':"
                      "{'order_id':'O-10','products':[{'sku':'A'}]}}"),
            OMNI_EVENT_DUPLICATE, pid, "a new order under an old messageId");
    load(st, alias_of(st, OMNI_ALIAS_CUSTOMER, "C-O"), &p);
    ok(p.orders == 1 && p.revenue == 5 && p.npurchases == 1,
       "one order counted");
    omni_profile_free(&p);
    ok(is_zero_id(alias_of(st, OMNI_ALIAS_CUSTOMER, "C-P")),
       "the duplicate created nobody");

    /*
     * An order already in the purchase history (its key long pruned) is a
     * duplicate; it does not take the cookie of another customer either.
     */
    seed(st, "b0000000000000000000000000000001", NOW - 9999, "C-H", NULL,
         "OLD-1");
    seed(st, "b0000000000000000000000000000002", NOW - 9999, "C-D",
         "c0000000000000000000000000000001", NULL);
    hex2id("b0000000000000000000000000000001", hid);
    hex2id("b0000000000000000000000000000002", did);

    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-H','anonymousId':"
                      "'c0000000000000000000000000000001','messageId':"
                      "'h-1','properties':{'order_id':'OLD-1',"
                      "'products':[{'sku':'Z','price':10}]}}"),
            OMNI_EVENT_DUPLICATE, pid, "an order in the history");
    load(st, hid, &p);
    ok(p.orders == 1 && p.npurchases == 1 && p.revenue == 10
       && p.naliases == 1,
       "the history's profile is unchanged");
    omni_profile_free(&p);
    load(st, did, &p);
    ok(has_alias(&p, OMNI_ALIAS_COOKIE, "c0000000000000000000000000000001"),
       "the duplicate took no cookie from the other customer");
    omni_profile_free(&p);
    ok(memcmp(alias_of(st, OMNI_ALIAS_COOKIE,
                       "c0000000000000000000000000000001"), did,
              OMNI_ID_LEN) == 0, "the cookie still resolves to them");

    feed_load(st, &f);
    r = feed_find(&f, "h-1", &n, NULL);
    ok(n == 0 && r == NULL, "no feed record for the duplicate");
    json_decref(r);
    feed_free(&f);

    /* the same with a new order: the cookie moves, nothing is merged */
    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-H','anonymousId':"
                      "'c0000000000000000000000000000001','messageId':"
                      "'h-2','properties':{'order_id':'NEW-1',"
                      "'products':[{'sku':'Y','price':20}]}}"),
            OMNI_EVENT_ACCEPTED, pid, "a new order, another's cookie");
    ok(memcmp(pid, hid, OMNI_ID_LEN) == 0, "the customer's profile");
    load(st, hid, &p);
    ok(p.orders == 2 && p.revenue == 30
       && has_alias(&p, OMNI_ALIAS_COOKIE,
                    "c0000000000000000000000000000001"),
       "counted, and the cookie is theirs now");
    omni_profile_free(&p);
    is_int(load(st, did, &p), OMNI_OK, "the other customer's profile stays");
    ok(!has_alias(&p, OMNI_ALIAS_COOKIE, "c0000000000000000000000000000001")
       && has_alias(&p, OMNI_ALIAS_CUSTOMER, "C-D") && p.naliases == 1,
       "it only lost the cookie");
    omni_profile_free(&p);
    ok(memcmp(alias_of(st, OMNI_ALIAS_COOKIE,
                       "c0000000000000000000000000000001"), hid,
              OMNI_ID_LEN) == 0, "the cookie resolves to the buyer");
    ok(memcmp(alias_of(st, OMNI_ALIAS_CUSTOMER, "C-D"), did, OMNI_ID_LEN)
       == 0, "customer C-D still resolves to theirs");

    /* the keys expire after OMNI_EVENT_DEDUPE_TTL */
    omni_store_write_begin(st, &w);
    is_int(omni_event_prune(w, (uint32_t) time(NULL), 1000), OMNI_OK,
           "prune now");
    omni_wtxn_commit(w);
    applied(st, &s, J("{'type':'track','event':'X','userId':'C-M',"
                      "'messageId':'same'}"),
            OMNI_EVENT_DUPLICATE, pid, "a fresh key stays");
    omni_store_write_begin(st, &w);
    is_int(omni_event_prune(w, (uint32_t) time(NULL) + OMNI_EVENT_DEDUPE_TTL
                               + 10, 1000),
           OMNI_OK, "prune a week later");
    omni_wtxn_commit(w);
    applied(st, &s, J("{'type':'track','event':'X','userId':'C-M',"
                      "'messageId':'same'}"),
            OMNI_EVENT_ACCEPTED, pid, "an expired key is new again");
    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-O','messageId':'m-z','properties':"
                      "{'order_id':'O-9','products':[{'sku':'A'}]}}"),
            OMNI_EVENT_DUPLICATE, pid,
            "an expired order key: still in the history");

    rm_store(st, path);
}


/* ---- apply: identities ---- */

static void
test_apply_identity(void)
{
    char                  path[128], uhex[OMNI_ID_HEX_LEN + 1];
    unsigned              n, at, mat;
    json_t               *r;
    uint32_t              t;
    omni_wtxn_t          *w;
    unsigned char         pid[OMNI_ID_LEN], uid[OMNI_ID_LEN];
    unsigned char         sid[OMNI_ID_LEN], eid[OMNI_ID_LEN];
    unsigned char         did[OMNI_ID_LEN], rid[OMNI_ID_LEN];
    unsigned char         x[OMNI_ID_LEN];
    feed_t                f;
    omni_store_t         *st;
    omni_profile_t        p;
    omni_event_ctx_t      s, cs, cd;
    const omni_evcount_t *e;

    st = open_store("identity", path, sizeof(path));
    ok(st != NULL, "identity: store");
    if (st == NULL) {
        return;
    }

    ctx_server(&s);
    t = NOW - 20000;

    /* userId only: a random id, then found again */
    applied(st, &s, J("{'type':'identify','userId':'U-1','timestamp':'%s'}",
                      iso(t)),
            OMNI_EVENT_ACCEPTED, uid, "userId only");
    applied(st, &s, J("{'type':'identify','userId':'U-2'}"),
            OMNI_EVENT_ACCEPTED, pid, "another userId");
    ok(!is_zero_id(uid) && !is_zero_id(pid)
       && memcmp(uid, pid, OMNI_ID_LEN) != 0,
       "two customers, two random ids");
    applied(st, &s, J("{'type':'track','event':'Login','userId':'U-1'}"),
            OMNI_EVENT_ACCEPTED, pid, "U-1 again");
    ok(memcmp(uid, pid, OMNI_ID_LEN) == 0, "found by the customer alias");

    /* anonymousId of nobody known: the profile takes it (as a UUID too) */
    applied(st, &s, J("{'type':'page','anonymousId':"
                      "'C0000000-0000-0000-0000-0000000000F1'}"),
            OMNI_EVENT_ACCEPTED, pid, "a new anonymousId (UUID)");
    is_str(id2hex(pid), "c00000000000000000000000000000f1",
           "the profile id is the anonymousId");
    load(st, pid, &p);
    ok(p.naliases == 1
       && has_alias(&p, OMNI_ALIAS_ANON,
                    "C0000000-0000-0000-0000-0000000000F1"),
       "linked as sent (a Segment anonymousId)");
    omni_profile_free(&p);

    /* stitching: a web visitor logs in */
    ctx_client(&cs, OMNI_ALIAS_COOKIE, "d0000000000000000000000000000001",
               OMNI_CH_WEB);
    hex2id("d0000000000000000000000000000001", sid);
    applied(st, &cs, J("{'type':'track','event':'Product Added',"
                       "'timestamp':'%s','properties':{'sku':'S-1'}}",
                       iso(t + 100)),
            OMNI_EVENT_ACCEPTED, pid, "the visitor's cart");
    ok(memcmp(pid, sid, OMNI_ID_LEN) == 0, "the visitor's profile");

    applied(st, &s, J("{'type':'identify','userId':'U-1','anonymousId':"
                      "'d0000000000000000000000000000001','messageId':"
                      "'login-1','timestamp':'%s','traits':"
                      "{'first_name':'Ana'}}", iso(t + 200)),
            OMNI_EVENT_ACCEPTED, pid, "login: userId and the cookie");
    ok(memcmp(pid, uid, OMNI_ID_LEN) == 0,
       "the customer's profile is kept");
    ok(!exists(st, sid), "the visitor's profile was merged away");
    load(st, uid, &p);
    ok(has_alias(&p, OMNI_ALIAS_CUSTOMER, "U-1")
       && has_alias(&p, OMNI_ALIAS_COOKIE,
                    "d0000000000000000000000000000001"),
       "it holds both identities");
    ok(p.ncart == 1 && strcmp(p.cart[0].sku, "S-1") == 0,
       "and the visitor's cart");
    is_int(p.created, t, "created: the earlier");
    ok(get_attr(&p, "first_name") != NULL, "and the identify's trait");
    omni_profile_free(&p);
    ok(memcmp(alias_of(st, OMNI_ALIAS_COOKIE,
                       "d0000000000000000000000000000001"), uid,
              OMNI_ID_LEN) == 0, "the cookie resolves to the customer");

    feed_load(st, &f);
    omni_id_hex(uid, uhex);
    r = feed_find(&f, "merge-d0000000000000000000000000000001", &n, &mat);
    ok(n == 1 && r != NULL, "the merge is in the feed");

    if (r) {
        is_str(jstr(r, "type"), "alias", "merge record: type alias");
        is_str(jstr(r, "event"), "Profiles Merged", "merge record: event");
        is_str(jstr(r, "previousId"), "d0000000000000000000000000000001",
               "merge record: previousId");
        is_str(jstr(r, "profileId"), uhex, "merge record: profileId");
        is_str(jstr(r, "context.cause"), "identify", "merge record: cause");
        is_str(jstr(r, "timestamp"), iso(t + 200), "merge record: time");
        json_decref(r);
    }

    r = feed_find(&f, "login-1", &n, &at);
    ok(n == 1 && r != NULL && mat < at, "the merge comes before the event");
    is_str(jstr(r, "profileId"), uhex, "the event's record: the profile");
    json_decref(r);
    feed_free(&f);

    /* the visitor's later events go to the customer */
    applied(st, &cs, J("{'type':'page'}"), OMNI_EVENT_ACCEPTED, pid,
            "the visitor again");
    ok(memcmp(pid, uid, OMNI_ID_LEN) == 0, "to the stitched profile");

    /* linking the same identities again changes nothing */
    applied(st, &s, J("{'type':'identify','userId':'U-1','anonymousId':"
                      "'d0000000000000000000000000000001'}"),
            OMNI_EVENT_ACCEPTED, pid, "the same login again");
    feed_load(st, &f);
    r = feed_find(&f, "merge-d0000000000000000000000000000001", &n, NULL);
    ok(n == 1 && memcmp(pid, uid, OMNI_ID_LEN) == 0, "no second merge");
    json_decref(r);
    feed_free(&f);

    /*
     * The first profile found is merged into a later one: a server names
     * an anonymous profile first, then the customer; the customer's
     * profile is kept and becomes the event's.
     */
    ctx_client(&cs, OMNI_ALIAS_COOKIE, "d0000000000000000000000000000006",
               OMNI_CH_WEB);
    applied(st, &cs, J("{'type':'track','event':'Product Viewed',"
                       "'properties':{'sku':'V-6'}}"),
            OMNI_EVENT_ACCEPTED, pid, "another anonymous visitor");
    applied(st, &s, J("{'type':'track','event':'Linked','profileId':"
                      "'d0000000000000000000000000000006','userId':'U-1',"
                      "'messageId':'link-6'}"),
            OMNI_EVENT_ACCEPTED, pid, "profileId first, then userId");
    ok(memcmp(pid, uid, OMNI_ID_LEN) == 0,
       "the customer's profile is kept and gets the event");
    hex2id("d0000000000000000000000000000006", x);
    ok(!exists(st, x), "the anonymous profile was merged into it");
    load(st, uid, &p);
    ok(p.nviews == 1 && strcmp(p.views[0].sku, "V-6") == 0
       && get_count(&p, "Linked") != NULL
       && has_alias(&p, OMNI_ALIAS_COOKIE,
                    "d0000000000000000000000000000006"),
       "with the visitor's views, cookie and the event");
    omni_profile_free(&p);
    feed_load(st, &f);
    r = feed_find(&f, "merge-d0000000000000000000000000000006", &n, NULL);
    ok(r && strcmp(jstr(r, "profileId"), uhex) == 0
       && strcmp(jstr(r, "context.cause"), "event") == 0
       && strcmp(jstr(r, "channel"), "other") == 0,
       "merge record: into the customer, caused by an event");
    json_decref(r);
    feed_free(&f);

    /* the email: hashed alias, found from a track call's context */
    applied(st, &s, J("{'type':'identify','userId':'U-E','traits':"
                      "{'email':' Ana@Example.COM ','first_name':'Ana'},"
                      "'messageId':'id-e'}"),
            OMNI_EVENT_ACCEPTED, eid, "identify with an email");
    ok(memcmp(alias_of(st, OMNI_ALIAS_EMAIL, ANA_SHA), eid, OMNI_ID_LEN)
       == 0, "the email alias is the address's sha256");
    load(st, eid, &p);
    ok(get_attr(&p, "email") == NULL && p.nattrs == 1,
       "the address is not an attribute");
    omni_profile_free(&p);

    applied(st, &s, J("{'type':'track','event':'Coupon Used','messageId':"
                      "'cu-1','anonymousId':"
                      "'d0000000000000000000000000000002','context':"
                      "{'traits':{'email':'ana@example.com'}}}"),
            OMNI_EVENT_ACCEPTED, pid, "an event by the email");
    ok(memcmp(pid, eid, OMNI_ID_LEN) == 0, "found by the email");
    ok(memcmp(alias_of(st, OMNI_ALIAS_COOKIE,
                       "d0000000000000000000000000000002"), eid,
              OMNI_ID_LEN) == 0, "and the new cookie linked to it");

    feed_load(st, &f);
    r = feed_find(&f, "id-e", &n, &at);
    ok(r && json_is_object(json_object_get(r, "traits"))
       && json_object_get(json_object_get(r, "traits"), "email") == NULL
       && jstr(r, "traits.first_name")
       && strcmp(jstr(r, "traits.first_name"), "Ana") == 0,
       "identify record: traits without the email");
    ok(r && strstr(f.line[at], "xample") == NULL
       && strstr(f.line[at], "@") == NULL,
       "the address is nowhere in the record");
    json_decref(r);
    r = feed_find(&f, "cu-1", &n, NULL);
    ok(r && jstr(r, "anonymousId")
       && strcmp(jstr(r, "anonymousId"),
                 "d0000000000000000000000000000002") == 0
       && json_object_get(r, "userId") == NULL,
       "track record: the anonymousId, no userId");
    json_decref(r);
    feed_free(&f);

    /* another customer's profile: not merged, loses the cookie only */
    applied(st, &s, J("{'type':'identify','userId':'U-D','anonymousId':"
                      "'d0000000000000000000000000000003'}"),
            OMNI_EVENT_ACCEPTED, did, "customer D on a shared computer");
    is_str(id2hex(did), "d0000000000000000000000000000003",
           "D's profile took the cookie's id");
    applied(st, &s, J("{'type':'identify','userId':'U-F','anonymousId':"
                      "'d0000000000000000000000000000003','messageId':"
                      "'f-1'}"),
            OMNI_EVENT_ACCEPTED, rid, "customer F logs in on it");
    ok(!is_zero_id(rid) && memcmp(rid, did, OMNI_ID_LEN) != 0,
       "F gets a profile of its own (a random id)");
    is_int(load(st, did, &p), OMNI_OK, "D's profile is not merged");
    ok(has_alias(&p, OMNI_ALIAS_CUSTOMER, "U-D")
       && !has_alias(&p, OMNI_ALIAS_COOKIE,
                     "d0000000000000000000000000000003")
       && p.naliases == 1,
       "D only lost the cookie");
    omni_profile_free(&p);
    load(st, rid, &p);
    ok(has_alias(&p, OMNI_ALIAS_CUSTOMER, "U-F")
       && has_alias(&p, OMNI_ALIAS_COOKIE,
                    "d0000000000000000000000000000003"),
       "F holds the cookie");
    omni_profile_free(&p);
    ok(memcmp(alias_of(st, OMNI_ALIAS_COOKIE,
                       "d0000000000000000000000000000003"), rid,
              OMNI_ID_LEN) == 0, "the cookie resolves to F");
    feed_load(st, &f);
    r = feed_find(&f, "merge-d0000000000000000000000000000003", &n, NULL);
    ok(n == 0 && r == NULL, "no merge record");
    json_decref(r);
    r = feed_find(&f, "f-1", &n, NULL);
    is_str(jstr(r, "profileId"), id2hex(rid), "F's record names F");
    json_decref(r);
    feed_free(&f);

    /* two customers and no userId to tell: no merge */
    applied(st, &s, J("{'type':'track','event':'Store Visit','anonymousId':"
                      "'d0000000000000000000000000000003','context':"
                      "{'traits':{'email':'ana@example.com'}}}"),
            OMNI_EVENT_ACCEPTED, pid, "F's cookie with E's email");
    ok(memcmp(pid, rid, OMNI_ID_LEN) == 0, "to the first one found");
    ok(exists(st, eid) && exists(st, rid), "both profiles remain");
    load(st, eid, &p);
    ok(has_alias(&p, OMNI_ALIAS_CUSTOMER, "U-E"), "E is still E");
    omni_profile_free(&p);

    /* an anonymousId that is an app's device */
    ctx_client(&cd, OMNI_ALIAS_DEVICE, "d0000000000000000000000000000004",
               OMNI_CH_APP);
    applied(st, &cd, J("{'type':'screen'}"), OMNI_EVENT_ACCEPTED, pid,
            "an app's first screen");
    applied(st, &s, J("{'type':'track','event':'App Login','userId':"
                      "'U-DV','messageId':'dv-1','anonymousId':"
                      "'d0000000000000000000000000000004'}"),
            OMNI_EVENT_ACCEPTED, pid, "a server names the device");
    is_str(id2hex(pid), "d0000000000000000000000000000004",
           "found as a device");
    load(st, pid, &p);
    ok(has_alias(&p, OMNI_ALIAS_DEVICE, "d0000000000000000000000000000004")
       && has_alias(&p, OMNI_ALIAS_CUSTOMER, "U-DV")
       && !has_alias(&p, OMNI_ALIAS_COOKIE,
                     "d0000000000000000000000000000004")
       && p.naliases == 2,
       "linked as the device it is, not as a cookie");
    omni_profile_free(&p);
    feed_load(st, &f);
    r = feed_find(&f, "dv-1", &n, NULL);
    ok(r && jstr(r, "anonymousId")
       && strcmp(jstr(r, "anonymousId"),
                 "d0000000000000000000000000000004") == 0
       && strcmp(jstr(r, "userId"), "U-DV") == 0,
       "the record: the device and the userId");
    json_decref(r);
    feed_free(&f);

    /* profileId */
    applied(st, &s, J("{'type':'track','event':'CRM Note','profileId':'%s'}",
                      id2hex(uid)),
            OMNI_EVENT_ACCEPTED, pid, "an event by profileId");
    ok(memcmp(pid, uid, OMNI_ID_LEN) == 0, "to that profile");
    load(st, uid, &p);
    e = get_count(&p, "CRM Note");
    ok(e && e->count == 1, "counted there");
    ok(!has_alias(&p, OMNI_ALIAS_COOKIE, id2hex(uid)),
       "a profileId is no alias");
    omni_profile_free(&p);

    /* an alias pointing at no profile: as if unknown */
    hex2id("e0000000000000000000000000000009", x);
    omni_store_write_begin(st, &w);
    omni_wtxn_put_alias(w, OMNI_ALIAS_COOKIE,
                        "d0000000000000000000000000000005", 32, x);
    omni_wtxn_commit(w);
    ctx_client(&cs, OMNI_ALIAS_COOKIE, "d0000000000000000000000000000005",
               OMNI_CH_WEB);
    applied(st, &cs, J("{'type':'page'}"), OMNI_EVENT_ACCEPTED, pid,
            "a dangling alias");
    is_str(id2hex(pid), "d0000000000000000000000000000005",
           "a new profile with the visitor's id");
    ok(memcmp(alias_of(st, OMNI_ALIAS_COOKIE,
                       "d0000000000000000000000000000005"), pid,
              OMNI_ID_LEN) == 0, "the alias repaired");

    rm_store(st, path);
}


/* ---- apply: the feed record ---- */

static void
test_apply_feed(void)
{
    char              path[128];
    unsigned          n;
    json_t           *r;
    uint64_t          first;
    unsigned char     pid[OMNI_ID_LEN];
    feed_t            f;
    omni_store_t     *st;
    omni_event_ctx_t  c, s;

    st = open_store("feed", path, sizeof(path));
    ok(st != NULL, "feed: store");
    if (st == NULL) {
        return;
    }

    ctx_client(&c, OMNI_ALIAS_COOKIE, VID_A, OMNI_CH_WEB);
    ctx_server(&s);

    applied(st, &c, J("{'type':'track','event':'Product Added',"
                      "'messageId':'feed-1','timestamp':"
                      "'2026-11-24T13:20:05.250Z','properties':"
                      "{'sku':'TENT-2','price':199,'note':'\\u00e9\\\"<'}}"),
            OMNI_EVENT_ACCEPTED, pid, "a client event");

    /* omni_store_feed, as the module's feed endpoint reads it */
    memset(&f, 0, sizeof(f));
    omni_store_read_begin(st);
    is_int(omni_store_feed(st, 0, 100, feed_cb, &f, &first), OMNI_OK,
           "omni_store_feed");
    omni_store_read_end(st);
    ok(first == 1 && f.n == 1 && f.seq[0] == 1, "one record, seq 1");
    ok(f.n == 1 && strncmp(f.line[0], "{\"messageId\":\"feed-1\",", 22) == 0,
       "the event's messageId first: %.40s", f.n ? f.line[0] : "");

    r = f.n ? json_loads(f.line[0], 0, NULL) : NULL;
    ok(r != NULL, "the record is JSON");
    is_str(jstr(r, "type"), "track", "type");
    is_str(jstr(r, "event"), "Product Added", "event");
    is_str(jstr(r, "timestamp"), "2026-11-24T13:20:05Z", "timestamp");
    is_str(jstr(r, "anonymousId"), VID_A, "anonymousId");
    is_str(jstr(r, "profileId"), VID_A, "profileId");
    is_str(jstr(r, "channel"), "web", "channel");
    is_str(jstr(r, "properties.sku"), "TENT-2", "properties as given");
    is_str(jstr(r, "properties.note"), "\xc3\xa9\"<", "escaped alike");
    is_str(jstr(r, "context.source"), "client", "context.source client");
    ok(json_object_get(r, "userId") == NULL
       && json_object_get(r, "traits") == NULL, "no userId, no traits");
    json_decref(r);
    feed_free(&f);

    /* server events: userId, sources, other types */
    applied(st, &s, J("{'type':'track','event':'Order Completed',"
                      "'userId':'C-1042','messageId':'pos-77-1',"
                      "'properties':{'order_id':'POS-77','channel':'pos',"
                      "'total':349,'products':[{'sku':'SUMMIT-PRO',"
                      "'price':349}]}}"),
            OMNI_EVENT_ACCEPTED, pid, "a server's order");
    s.source = OMNI_SRC_CLI;
    applied(st, &s, J("{'type':'page','userId':'C-1042','messageId':"
                      "'cli-1'}"),
            OMNI_EVENT_ACCEPTED, pid, "omnictl's page");
    s.source = OMNI_SRC_UPSTREAM;
    applied(st, &s, J("{'type':'screen','userId':'C-1042','messageId':"
                      "'up-1'}"),
            OMNI_EVENT_ACCEPTED, pid, "an upstream's screen");
    s.source = OMNI_SRC_SERVER;
    applied(st, &s, J("{'type':'page','userId':'C-1042'}"),
            OMNI_EVENT_ACCEPTED, pid, "no messageId");

    feed_load(st, &f);
    ok(f.n == 5 && f.seq[4] == 5, "five records");

    r = feed_find(&f, "pos-77-1", &n, NULL);
    ok(n == 1 && r, "the order's record");
    is_str(jstr(r, "userId"), "C-1042", "userId");
    is_str(jstr(r, "channel"), "pos", "channel pos");
    is_str(jstr(r, "context.source"), "server", "context.source server");
    is_str(jstr(r, "properties.order_id"), "POS-77", "its properties");
    is_str(jstr(r, "profileId"), id2hex(pid), "the customer's profile");
    ok(json_object_get(r, "anonymousId") == NULL, "no anonymousId");
    json_decref(r);

    r = feed_find(&f, "cli-1", &n, NULL);
    ok(r && strcmp(jstr(r, "type"), "page") == 0
       && strcmp(jstr(r, "event"), "Page Viewed") == 0
       && strcmp(jstr(r, "context.source"), "cli") == 0,
       "a page from omnictl");
    json_decref(r);

    r = feed_find(&f, "up-1", &n, NULL);
    ok(r && strcmp(jstr(r, "type"), "screen") == 0
       && strcmp(jstr(r, "context.source"), "upstream") == 0,
       "a screen from an upstream");
    json_decref(r);

    r = f.n == 5 ? json_loads(f.line[4], 0, NULL) : NULL;
    ok(r && strncmp(jstr(r, "messageId"), "omni-", 5) == 0
       && strncmp(f.line[4], "{\"messageId\":\"omni-", 19) == 0,
       "a made-up messageId is in the feed too");
    json_decref(r);
    feed_free(&f);

    rm_store(st, path);
}


/* ---- Segment: a browser's own anonymousId, alias, group ---- */

static void
test_apply_segment(void)
{
    char              path[128];
    unsigned          n;
    json_t           *r;
    feed_t            f;
    omni_store_t     *st;
    omni_profile_t    p;
    omni_event_ctx_t  a, b, s;
    unsigned char     pa[OMNI_ID_LEN], pb[OMNI_ID_LEN], px[OMNI_ID_LEN];

    st = open_store("segment", path, sizeof(path));
    ok(st != NULL, "segment: store");
    if (st == NULL) {
        return;
    }

    ctx_client(&a, OMNI_ALIAS_COOKIE, VID_A, OMNI_CH_WEB);
    ctx_client(&b, OMNI_ALIAS_COOKIE, VID_B, OMNI_CH_WEB);
    ctx_server(&s);

    /* A's analytics.js UUID becomes an alias of A's profile */
    applied(st, &a, J("{'type':'page','messageId':'sa-1','name':'Home',"
                      "'anonymousId':'0d3a1f2e-7c55-4f7b-9a8e-3b1c2d4e5f60',"
                      "'context':{'library':{'name':'analytics.js'},"
                      "'userAgent':'UA','ip':'10.1.2.3'}}"),
            OMNI_EVENT_ACCEPTED, pa, "A's browser UUID");
    load(st, pa, &p);
    ok(has_alias(&p, OMNI_ALIAS_ANON,
                 "0d3a1f2e-7c55-4f7b-9a8e-3b1c2d4e5f60"),
       "the UUID is an alias of A");
    omni_profile_free(&p);

    /* B sending A's UUID gets B's profile, and A keeps the alias */
    applied(st, &b, J("{'type':'track','event':'Product Added',"
                      "'anonymousId':'0d3a1f2e-7c55-4f7b-9a8e-3b1c2d4e5f60',"
                      "'properties':{'sku':'X','price':1}}"),
            OMNI_EVENT_ACCEPTED, pb, "B claims A's UUID");
    ok(memcmp(pa, pb, OMNI_ID_LEN) != 0, "B stays B");
    load(st, pb, &p);
    ok(!has_alias(&p, OMNI_ALIAS_ANON,
                  "0d3a1f2e-7c55-4f7b-9a8e-3b1c2d4e5f60"),
       "B did not take A's UUID");
    ok(p.ncart == 1, "the cart line went to B");
    omni_profile_free(&p);
    load(st, pa, &p);
    ok(p.ncart == 0, "A's cart untouched");
    omni_profile_free(&p);

    /* a server names the UUID: A's profile (joins on Segment's ids) */
    applied(st, &s, J("{'type':'track','event':'Coupon Used','anonymousId':"
                      "'0d3a1f2e-7c55-4f7b-9a8e-3b1c2d4e5f60'}"),
            OMNI_EVENT_ACCEPTED, px, "a server names the UUID");
    ok(memcmp(px, pa, OMNI_ID_LEN) == 0, "it is A");

    /* alias: the UUID's profile and the customer are one */
    applied(st, &s, J("{'type':'alias','messageId':'sa-alias','userId':"
                      "'C-77','previousId':"
                      "'0d3a1f2e-7c55-4f7b-9a8e-3b1c2d4e5f60'}"),
            OMNI_EVENT_ACCEPTED, px, "alias");
    applied(st, &s, J("{'type':'group','messageId':'sa-group','userId':"
                      "'C-77','groupId':'acme','traits':{'name':'Acme'}}"),
            OMNI_EVENT_ACCEPTED, pb, "group");
    ok(memcmp(px, pb, OMNI_ID_LEN) == 0, "alias linked the customer");
    load(st, pb, &p);
    ok(has_alias(&p, OMNI_ALIAS_CUSTOMER, "C-77")
       && has_alias(&p, OMNI_ALIAS_ANON,
                    "0d3a1f2e-7c55-4f7b-9a8e-3b1c2d4e5f60"),
       "one profile: the customer and the UUID");
    ok(get_attr(&p, "group_id") != NULL
       && strcmp(get_attr(&p, "group_id")->str, "acme") == 0,
       "group: attribute group_id");
    omni_profile_free(&p);

    /* the feed: ids as sent, the sender's context, page name */
    feed_load(st, &f);
    r = feed_find(&f, "sa-1", &n, NULL);
    is_str(jstr(r, "anonymousId"), "0d3a1f2e-7c55-4f7b-9a8e-3b1c2d4e5f60",
           "feed: the UUID as sent");
    is_str(jstr(r, "name"), "Home", "feed: the page name");
    is_str(jstr(r, "context.library.name"), "analytics.js",
           "feed: the sender's library");
    is_str(jstr(r, "context.userAgent"), "UA", "feed: the userAgent");
    is_str(jstr(r, "context.source"), "client", "feed: our source");
    ok(json_object_get(json_object_get(r, "context"), "ip") == NULL,
       "feed: no ip");
    json_decref(r);
    r = feed_find(&f, "sa-alias", &n, NULL);
    is_str(jstr(r, "type"), "alias", "feed: an alias call");
    is_str(jstr(r, "previousId"), "0d3a1f2e-7c55-4f7b-9a8e-3b1c2d4e5f60",
           "feed: its previousId");
    json_decref(r);
    r = feed_find(&f, "sa-group", &n, NULL);
    is_str(jstr(r, "groupId"), "acme", "feed: the groupId");
    json_decref(r);
    feed_free(&f);

    rm_store(st, path);
}


int
main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/omni-event-XXXXXX");

    if (mkdtemp(tmpdir) == NULL) {
        printf("Bail out! mkdtemp failed\n");
        return 1;
    }

    test_apply_visits();
    test_apply_cart();
    test_apply_orders();
    test_apply_dupes();
    test_apply_identity();
    test_apply_feed();
    test_apply_segment();

    rmdir(tmpdir);

    return done_testing();
}
