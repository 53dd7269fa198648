/*
 * Identity stitching: merging two profiles into one.  The rules are in
 * omni_merge.h and docs/store-format.md ("Merging profiles").
 */

#include <stdlib.h>
#include <string.h>

#include "omni_merge.h"
#include "omni_update.h"
#include "omni_store_int.h"         /* the transaction's merge count */


typedef struct {
    uint32_t        time;
    unsigned        idx;
} omni_merge_age_t;


static uint32_t
omni_merge_add32(uint32_t a, uint32_t b)
{
    return a > UINT32_MAX - b ? UINT32_MAX : a + b;
}


static uint32_t
omni_merge_max32(uint32_t a, uint32_t b)
{
    return a > b ? a : b;
}


/* NULL strings (a profile filled in by hand) read and copy as "". */
static char *
omni_merge_dup(const char *s)
{
    return strdup(s ? s : "");
}


static int
omni_merge_streq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}


static int
omni_merge_has_alias(const omni_profile_t *p, unsigned kind,
    const char *value)
{
    unsigned  i;

    for (i = 0; i < p->naliases; i++) {
        if (p->aliases[i].kind == kind
            && omni_merge_streq(p->aliases[i].value, value))
        {
            return 1;
        }
    }

    return 0;
}


/*
 * Appends src's aliases that dst lacks, then brings the list back to
 * OMNI_MAX_ALIASES if needed.  Cookie and device ids go first: a browser
 * or an install is the least lasting identity, while a customer or email
 * id is what omni_merge_pick() and later merges look for.
 */
static int
omni_merge_aliases(omni_profile_t *dst, const omni_profile_t *src)
{
    char          *v;
    size_t         len;
    unsigned       i, j, excess, pass, kind;
    omni_alias_t  *a;

    if (src->naliases == 0) {
        return OMNI_OK;
    }

    a = realloc(dst->aliases,
                (dst->naliases + src->naliases) * sizeof(omni_alias_t));
    if (a == NULL) {
        return OMNI_ERROR;
    }

    dst->aliases = a;

    for (i = 0; i < src->naliases; i++) {
        kind = src->aliases[i].kind;
        len = src->aliases[i].value ? strlen(src->aliases[i].value) : 0;

        /* what could never be an alias key is not carried over */
        if (kind == 0 || len == 0 || len > OMNI_ALIAS_MAX_LEN
            || omni_merge_has_alias(dst, kind, src->aliases[i].value))
        {
            continue;
        }

        v = strdup(src->aliases[i].value);
        if (v == NULL) {
            return OMNI_ERROR;
        }

        dst->aliases[dst->naliases].kind = (unsigned char) kind;
        dst->aliases[dst->naliases].value = v;
        dst->naliases++;
    }

    if (dst->naliases <= OMNI_MAX_ALIASES) {
        return OMNI_OK;
    }

    excess = dst->naliases - OMNI_MAX_ALIASES;

    /* pass 0: the oldest cookie and device ids; pass 1: the oldest */
    for (pass = 0; pass < 2 && excess; pass++) {
        for (i = 0; i < dst->naliases && excess; i++) {
            kind = dst->aliases[i].kind;

            if (dst->aliases[i].value == NULL
                || (pass == 0 && kind != OMNI_ALIAS_COOKIE
                    && kind != OMNI_ALIAS_DEVICE))
            {
                continue;
            }

            free(dst->aliases[i].value);
            dst->aliases[i].value = NULL;
            excess--;
        }
    }

    for (i = 0, j = 0; i < dst->naliases; i++) {
        if (dst->aliases[i].value != NULL) {
            dst->aliases[j++] = dst->aliases[i];
        }
    }

    dst->naliases = j;

    return OMNI_OK;
}


static int
omni_merge_segments(omni_profile_t *dst, const omni_profile_t *src)
{
    int          rc;
    unsigned     i;
    const char  *s;

    for (i = 0; i < src->nsegments; i++) {
        s = src->segments[i] ? src->segments[i] : "";

        /* OMNI_INVALID: a name no writer could have stored, skipped */
        rc = omni_profile_add_segment(dst, s, strlen(s));
        if (rc == OMNI_ERROR) {
            return rc;
        }
    }

    return OMNI_OK;
}


static int
omni_merge_attrs(omni_profile_t *dst, const omni_profile_t *src,
    int src_newer)
{
    int                 rc;
    unsigned            i, j, found;
    const omni_attr_t  *a;

    for (i = 0; i < src->nattrs; i++) {
        a = &src->attrs[i];

        if (a->key == NULL) {
            continue;
        }

        found = 0;

        for (j = 0; j < dst->nattrs; j++) {
            if (omni_merge_streq(dst->attrs[j].key, a->key)) {
                found = 1;
                break;
            }
        }

        if (found && !src_newer) {
            continue;
        }

        if (a->type == OMNI_ATTR_NUM) {
            rc = omni_profile_set_attr_num(dst, a->key, a->num);

        } else {
            rc = omni_profile_set_attr_str(dst, a->key, a->str);
        }

        /* OMNI_INVALID (an empty key, NaN): nothing a writer stores */
        if (rc == OMNI_ERROR) {
            return rc;
        }
    }

    return OMNI_OK;
}


static void
omni_merge_free_cart(omni_cart_item_t *cart, unsigned n)
{
    unsigned  i;

    for (i = 0; i < n; i++) {
        free(cart[i].sku);
        free(cart[i].name);
        free(cart[i].category);
        free(cart[i].url);
        free(cart[i].image);
    }

    free(cart);
}


/* The newer cart wins whole: lines of two carts are not mixed. */
static int
omni_merge_cart(omni_profile_t *dst, const omni_profile_t *src)
{
    unsigned                 i;
    omni_cart_item_t        *cart, *c;
    const omni_cart_item_t  *s;

    if (src->cart_updated <= dst->cart_updated) {
        return OMNI_OK;
    }

    cart = NULL;

    if (src->ncart) {
        cart = calloc(src->ncart, sizeof(omni_cart_item_t));
        if (cart == NULL) {
            return OMNI_ERROR;
        }
    }

    for (i = 0; i < src->ncart; i++) {
        s = &src->cart[i];
        c = &cart[i];

        c->sku = omni_merge_dup(s->sku);
        c->name = omni_merge_dup(s->name);
        c->category = omni_merge_dup(s->category);
        c->url = omni_merge_dup(s->url);
        c->image = omni_merge_dup(s->image);
        c->qty = s->qty;
        c->price = s->price;

        if (c->sku == NULL || c->name == NULL || c->category == NULL
            || c->url == NULL || c->image == NULL)
        {
            omni_merge_free_cart(cart, i + 1);
            return OMNI_ERROR;
        }
    }

    omni_merge_free_cart(dst->cart, dst->ncart);

    dst->cart = cart;
    dst->ncart = src->ncart;
    dst->cart_updated = src->cart_updated;

    return OMNI_OK;
}


static void
omni_merge_free_purchases(omni_purchase_t *pu, unsigned n)
{
    unsigned  i;

    for (i = 0; i < n; i++) {
        free(pu[i].sku);
        free(pu[i].order_id);
        free(pu[i].category);
    }

    free(pu);
}


static int
omni_merge_same_purchase(const omni_purchase_t *a, const omni_purchase_t *b)
{
    return omni_merge_streq(a->order_id, b->order_id)
           && omni_merge_streq(a->sku, b->sku);
}


/*
 * The purchases of src that are new to dst (by order_id and sku), then
 * both histories interleaved by time, each in its own order: with
 * time-ordered histories (what writers produce) the result is ordered,
 * and an empty src leaves dst exactly as it was.
 */
static int
omni_merge_purchases(omni_profile_t *dst, const omni_profile_t *src)
{
    unsigned                i, j, k, nadd, dup;
    omni_purchase_t        *add, *out, *p;
    const omni_purchase_t  *s;

    if (src->npurchases == 0) {
        return OMNI_OK;
    }

    add = calloc(src->npurchases, sizeof(omni_purchase_t));
    if (add == NULL) {
        return OMNI_ERROR;
    }

    nadd = 0;

    for (i = 0; i < src->npurchases; i++) {
        s = &src->purchases[i];
        dup = 0;

        for (j = 0; j < dst->npurchases && !dup; j++) {
            dup = omni_merge_same_purchase(&dst->purchases[j], s);
        }

        for (j = 0; j < nadd && !dup; j++) {
            dup = omni_merge_same_purchase(&add[j], s);
        }

        if (dup) {
            continue;
        }

        p = &add[nadd++];
        *p = *s;
        p->sku = omni_merge_dup(s->sku);
        p->order_id = omni_merge_dup(s->order_id);
        p->category = omni_merge_dup(s->category);

        if (p->sku == NULL || p->order_id == NULL || p->category == NULL) {
            omni_merge_free_purchases(add, nadd);
            return OMNI_ERROR;
        }
    }

    if (nadd == 0) {
        free(add);
        return OMNI_OK;
    }

    out = malloc((dst->npurchases + nadd) * sizeof(omni_purchase_t));
    if (out == NULL) {
        omni_merge_free_purchases(add, nadd);
        return OMNI_ERROR;
    }

    /* ties: dst's first */
    for (i = 0, j = 0, k = 0; i < dst->npurchases || j < nadd; k++) {
        if (j == nadd
            || (i < dst->npurchases
                && dst->purchases[i].time <= add[j].time))
        {
            out[k] = dst->purchases[i++];

        } else {
            out[k] = add[j++];
        }
    }

    /* the strings moved to out: only the arrays go */
    free(dst->purchases);
    free(add);

    dst->purchases = out;
    dst->npurchases = k;

    return OMNI_OK;
}


static int
omni_merge_age_cmp(const void *a, const void *b)
{
    const omni_merge_age_t  *x = a, *y = b;

    if (x->time != y->time) {
        return x->time < y->time ? -1 : 1;
    }

    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}


/*
 * Keeps the newest OMNI_MAX_VIEWS views, with the encoder's rule: the
 * oldest go first, and of equal times the one earlier in the list.
 */
static int
omni_merge_bound_views(omni_profile_t *dst)
{
    unsigned           i, j, drop;
    unsigned char     *gone;
    omni_merge_age_t  *age;

    if (dst->nviews <= OMNI_MAX_VIEWS) {
        return OMNI_OK;
    }

    age = malloc(dst->nviews * sizeof(omni_merge_age_t));
    gone = calloc(dst->nviews, 1);

    if (age == NULL || gone == NULL) {
        free(age);
        free(gone);
        return OMNI_ERROR;
    }

    for (i = 0; i < dst->nviews; i++) {
        age[i].time = dst->views[i].time;
        age[i].idx = i;
    }

    qsort(age, dst->nviews, sizeof(omni_merge_age_t), omni_merge_age_cmp);

    drop = dst->nviews - OMNI_MAX_VIEWS;

    for (i = 0; i < drop; i++) {
        gone[age[i].idx] = 1;
    }

    for (i = 0, j = 0; i < dst->nviews; i++) {
        if (gone[i]) {
            free(dst->views[i].sku);
            free(dst->views[i].category);
            continue;
        }

        dst->views[j++] = dst->views[i];
    }

    dst->nviews = j;

    free(age);
    free(gone);

    return OMNI_OK;
}


static int
omni_merge_same_view(const omni_view_t *a, const omni_view_t *b)
{
    return a->time == b->time && omni_merge_streq(a->sku, b->sku);
}


/* Like the purchases: the new views, interleaved by time, then bound. */
static int
omni_merge_views(omni_profile_t *dst, const omni_profile_t *src)
{
    unsigned            i, j, k, nadd, dup;
    omni_view_t        *add, *out, *v;
    const omni_view_t  *s;

    if (src->nviews == 0) {
        return omni_merge_bound_views(dst);
    }

    add = calloc(src->nviews, sizeof(omni_view_t));
    if (add == NULL) {
        return OMNI_ERROR;
    }

    nadd = 0;

    for (i = 0; i < src->nviews; i++) {
        s = &src->views[i];
        dup = 0;

        for (j = 0; j < dst->nviews && !dup; j++) {
            dup = omni_merge_same_view(&dst->views[j], s);
        }

        for (j = 0; j < nadd && !dup; j++) {
            dup = omni_merge_same_view(&add[j], s);
        }

        if (dup) {
            continue;
        }

        v = &add[nadd++];
        *v = *s;
        v->sku = omni_merge_dup(s->sku);
        v->category = omni_merge_dup(s->category);

        if (v->sku == NULL || v->category == NULL) {
            for (j = 0; j < nadd; j++) {
                free(add[j].sku);
                free(add[j].category);
            }

            free(add);
            return OMNI_ERROR;
        }
    }

    if (nadd == 0) {
        free(add);
        return omni_merge_bound_views(dst);
    }

    out = malloc((dst->nviews + nadd) * sizeof(omni_view_t));
    if (out == NULL) {
        for (j = 0; j < nadd; j++) {
            free(add[j].sku);
            free(add[j].category);
        }

        free(add);
        return OMNI_ERROR;
    }

    for (i = 0, j = 0, k = 0; i < dst->nviews || j < nadd; k++) {
        if (j == nadd
            || (i < dst->nviews && dst->views[i].time <= add[j].time))
        {
            out[k] = dst->views[i++];

        } else {
            out[k] = add[j++];
        }
    }

    free(dst->views);
    free(add);

    dst->views = out;
    dst->nviews = k;

    return omni_merge_bound_views(dst);
}


/*
 * Both campaigns' hour buckets, one per hour (counts of the same hour
 * added, saturating at the record's u16), the newest OMNI_MAX_BUCKETS
 * kept, oldest first.  Sorting copes with tables that are not in order
 * (a profile filled in by hand); the record's are.
 */
static void
omni_merge_buckets(omni_impr_t *d, const omni_impr_t *s)
{
    unsigned       i, j, n, nd, ns, start;
    uint32_t       c;
    omni_bucket_t  all[2 * OMNI_MAX_BUCKETS], b;

    nd = d->nbuckets < OMNI_MAX_BUCKETS ? d->nbuckets : OMNI_MAX_BUCKETS;
    ns = s->nbuckets < OMNI_MAX_BUCKETS ? s->nbuckets : OMNI_MAX_BUCKETS;

    memcpy(all, d->buckets, nd * sizeof(omni_bucket_t));
    memcpy(all + nd, s->buckets, ns * sizeof(omni_bucket_t));
    n = nd + ns;

    /* insertion sort: stable, and n is at most 32 */
    for (i = 1; i < n; i++) {
        b = all[i];

        for (j = i; j > 0 && all[j - 1].hour > b.hour; j--) {
            all[j] = all[j - 1];
        }

        all[j] = b;
    }

    for (i = 0, j = 0; i < n; i++) {
        c = all[i].count < UINT16_MAX ? all[i].count : UINT16_MAX;

        if (j > 0 && all[j - 1].hour == all[i].hour) {
            c = omni_merge_add32(all[j - 1].count, c);
            all[j - 1].count = c < UINT16_MAX ? c : UINT16_MAX;

        } else {
            all[j].hour = all[i].hour;
            all[j].count = c;
            j++;
        }
    }

    start = j > OMNI_MAX_BUCKETS ? j - OMNI_MAX_BUCKETS : 0;

    memcpy(d->buckets, all + start, (j - start) * sizeof(omni_bucket_t));
    d->nbuckets = j - start;
}


static int
omni_merge_impressions(omni_profile_t *dst, const omni_profile_t *src)
{
    unsigned            i, j;
    omni_impr_t        *a, *d;
    const omni_impr_t  *s;

    if (src->nimpressions == 0) {
        return OMNI_OK;
    }

    a = realloc(dst->impressions, (dst->nimpressions + src->nimpressions)
                                  * sizeof(omni_impr_t));
    if (a == NULL) {
        return OMNI_ERROR;
    }

    dst->impressions = a;

    for (i = 0; i < src->nimpressions; i++) {
        s = &src->impressions[i];
        d = NULL;

        for (j = 0; j < dst->nimpressions; j++) {
            if (omni_merge_streq(dst->impressions[j].campaign, s->campaign))
            {
                d = &dst->impressions[j];
                break;
            }
        }

        if (d == NULL) {
            /* a campaign only src has shown: copied whole */
            d = &dst->impressions[dst->nimpressions];
            *d = *s;
            d->nbuckets = s->nbuckets < OMNI_MAX_BUCKETS
                          ? s->nbuckets : OMNI_MAX_BUCKETS;

            d->campaign = omni_merge_dup(s->campaign);
            if (d->campaign == NULL) {
                return OMNI_ERROR;
            }

            dst->nimpressions++;
            continue;
        }

        d->total = omni_merge_add32(d->total, s->total);
        d->last = omni_merge_max32(d->last, s->last);
        omni_merge_buckets(d, s);
    }

    return OMNI_OK;
}


static int
omni_merge_events(omni_profile_t *dst, const omni_profile_t *src)
{
    unsigned               i, j;
    omni_evcount_t        *a, *d;
    const omni_evcount_t  *s;

    if (src->nevents == 0) {
        return OMNI_OK;
    }

    a = realloc(dst->events,
                (dst->nevents + src->nevents) * sizeof(omni_evcount_t));
    if (a == NULL) {
        return OMNI_ERROR;
    }

    dst->events = a;

    for (i = 0; i < src->nevents; i++) {
        s = &src->events[i];
        d = NULL;

        for (j = 0; j < dst->nevents; j++) {
            if (omni_merge_streq(dst->events[j].name, s->name)) {
                d = &dst->events[j];
                break;
            }
        }

        if (d == NULL) {
            d = &dst->events[dst->nevents];
            *d = *s;

            d->name = omni_merge_dup(s->name);
            if (d->name == NULL) {
                return OMNI_ERROR;
            }

            dst->nevents++;
            continue;
        }

        d->count = omni_merge_add32(d->count, s->count);
        d->last = omni_merge_max32(d->last, s->last);
    }

    return OMNI_OK;
}


int
omni_profile_merge(omni_profile_t *dst, const omni_profile_t *src)
{
    int       src_newer;
    unsigned  i;

    /* merging a profile with itself is no merge */
    if (dst == src) {
        return OMNI_OK;
    }

    /* decided before dst->updated takes the later of the two */
    src_newer = src->updated > dst->updated;

    if (dst->created == 0
        || (src->created != 0 && src->created < dst->created))
    {
        dst->created = src->created;
    }

    dst->updated = omni_merge_max32(dst->updated, src->updated);
    dst->visit_last = omni_merge_max32(dst->visit_last, src->visit_last);

    for (i = 0; i < OMNI_CH_MAX; i++) {
        dst->last_seen[i] = omni_merge_max32(dst->last_seen[i],
                                             src->last_seen[i]);
    }

    dst->visits = omni_merge_add32(dst->visits, src->visits);
    dst->orders = omni_merge_add32(dst->orders, src->orders);
    dst->revenue += src->revenue;

    if ((src->consent & OMNI_CONSENT_SET)
        && (!(dst->consent & OMNI_CONSENT_SET) || src_newer))
    {
        dst->consent = src->consent;
    }

    if (omni_merge_aliases(dst, src) != OMNI_OK
        || omni_merge_segments(dst, src) != OMNI_OK
        || omni_merge_attrs(dst, src, src_newer) != OMNI_OK
        || omni_merge_cart(dst, src) != OMNI_OK
        || omni_merge_purchases(dst, src) != OMNI_OK
        || omni_merge_impressions(dst, src) != OMNI_OK
        || omni_merge_views(dst, src) != OMNI_OK
        || omni_merge_events(dst, src) != OMNI_OK)
    {
        return OMNI_ERROR;
    }

    dst->stage = omni_derive_stage(dst);

    return OMNI_OK;
}


static int
omni_merge_has_customer(const omni_profile_t *p)
{
    unsigned  i;

    for (i = 0; i < p->naliases; i++) {
        if (p->aliases[i].kind == OMNI_ALIAS_CUSTOMER) {
            return 1;
        }
    }

    return 0;
}


int
omni_merge_pick(const omni_profile_t *a, const omni_profile_t *b)
{
    int  ca, cb;

    ca = omni_merge_has_customer(a);
    cb = omni_merge_has_customer(b);

    if (ca != cb) {
        return ca ? 0 : 1;
    }

    /* 0 is an unknown creation time: it loses to any known one */
    if (a->created != b->created) {
        if (a->created == 0 || b->created == 0) {
            return a->created == 0 ? 1 : 0;
        }

        return a->created < b->created ? 0 : 1;
    }

    return memcmp(a->id, b->id, OMNI_ID_LEN) <= 0 ? 0 : 1;
}


int
omni_wtxn_merge(omni_wtxn_t *w, const unsigned char *keep,
    const unsigned char *gone, uint32_t now)
{
    int             rc;
    size_t          len;
    unsigned        i, n;
    omni_profile_t  kp, gp;

    if (memcmp(keep, gone, OMNI_ID_LEN) == 0) {
        return OMNI_OK;
    }

    rc = omni_wtxn_get_profile(w, gone, &gp);
    if (rc != OMNI_OK) {
        omni_profile_free(&gp);

        /* no record: merged already (by us, or a concurrent writer) */
        return rc == OMNI_NOTFOUND ? OMNI_OK : rc;
    }

    rc = omni_wtxn_get_profile(w, keep, &kp);
    if (rc == OMNI_NOTFOUND) {
        kp.created = now;
        rc = OMNI_OK;
    }

    if (rc != OMNI_OK) {
        goto done;
    }

    rc = omni_profile_merge(&kp, &gp);
    if (rc != OMNI_OK) {
        goto done;
    }

    /*
     * put_profile() points the aliases the merged record lists at keep;
     * gone's keys it dropped at OMNI_MAX_ALIASES are pointed here.
     */
    for (i = 0; i < gp.naliases; i++) {
        if (omni_merge_has_alias(&kp, gp.aliases[i].kind,
                                 gp.aliases[i].value))
        {
            continue;
        }

        len = gp.aliases[i].value ? strlen(gp.aliases[i].value) : 0;

        rc = omni_wtxn_put_alias(w, gp.aliases[i].kind, gp.aliases[i].value,
                                 len, keep);

        /* OMNI_INVALID: a value that cannot be a key, so none to move */
        if (rc != OMNI_OK && rc != OMNI_INVALID) {
            goto done;
        }
    }

    /*
     * Only a record at the bound may have dropped keys that still point
     * at gone (omni_profile_add_alias()); only then is the scan worth it.
     */
    if (gp.naliases >= OMNI_MAX_ALIASES) {
        rc = omni_wtxn_repoint_aliases(w, gone, keep, &n);
        if (rc != OMNI_OK) {
            goto done;
        }
    }

    rc = omni_wtxn_record_merge(w, keep, gone);
    if (rc != OMNI_OK) {
        goto done;
    }

    rc = omni_wtxn_del_record(w, gone);
    if (rc != OMNI_OK) {
        goto done;
    }

    rc = omni_wtxn_put_profile(w, &kp);

    if (rc == OMNI_OK) {
        w->merges++;
    }

done:

    omni_profile_free(&kp);
    omni_profile_free(&gp);

    return rc;
}
