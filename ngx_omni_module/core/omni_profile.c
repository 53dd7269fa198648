/*
 * The mutable profile: decoding a record into omni_profile_t, the
 * deterministic encoder that applies the bounds of omni_record.h, and the
 * mutators writers use.  Reading (zero-copy) is omni_record.c.
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "omni_record.h"
#include "omni_record_int.h"


typedef struct {
    unsigned char  *data;
    size_t          len;
    size_t          cap;
    int             failed;
} omni_buf_t;

typedef struct {
    uint32_t        key;
    unsigned        idx;
} omni_keyidx_t;


/* ---- little-endian writing without alignment assumptions ---- */

static void
omni_wr16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char) v;
    p[1] = (unsigned char) (v >> 8);
}


static void
omni_wr32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char) v;
    p[1] = (unsigned char) (v >> 8);
    p[2] = (unsigned char) (v >> 16);
    p[3] = (unsigned char) (v >> 24);
}


static void
omni_wrf64(unsigned char *p, double d)
{
    uint64_t  v;

    memcpy(&v, &d, sizeof(v));
    omni_wr32(p, (uint32_t) v);
    omni_wr32(p + 4, (uint32_t) (v >> 32));
}


/* A header field an older, shorter header does not have reads as zero. */


/* ---- mutable profile ---- */

void
omni_profile_init(omni_profile_t *p, const unsigned char *id)
{
    memset(p, 0, sizeof(omni_profile_t));

    if (id != NULL) {
        memcpy(p->id, id, OMNI_ID_LEN);
    }
}


void
omni_profile_free(omni_profile_t *p)
{
    unsigned  i;

    for (i = 0; i < p->naliases; i++) {
        free(p->aliases[i].value);
    }

    for (i = 0; i < p->nsegments; i++) {
        free(p->segments[i]);
    }

    for (i = 0; i < p->nattrs; i++) {
        free(p->attrs[i].key);
        free(p->attrs[i].str);
    }

    for (i = 0; i < p->ncart; i++) {
        free(p->cart[i].sku);
        free(p->cart[i].name);
        free(p->cart[i].category);
        free(p->cart[i].url);
        free(p->cart[i].image);
    }

    for (i = 0; i < p->npurchases; i++) {
        free(p->purchases[i].sku);
        free(p->purchases[i].order_id);
        free(p->purchases[i].category);
    }

    for (i = 0; i < p->nimpressions; i++) {
        free(p->impressions[i].campaign);
    }

    for (i = 0; i < p->nviews; i++) {
        free(p->views[i].sku);
        free(p->views[i].category);
    }

    for (i = 0; i < p->nevents; i++) {
        free(p->events[i].name);
    }

    free(p->aliases);
    free(p->segments);
    free(p->attrs);
    free(p->cart);
    free(p->purchases);
    free(p->impressions);
    free(p->views);
    free(p->events);

    /* the profile may be reused or freed twice without harm */
    omni_profile_init(p, NULL);
}


static char *
omni_strndup(const char *s, size_t len)
{
    char  *d;

    d = malloc(len + 1);
    if (d == NULL) {
        return NULL;
    }

    if (len) {
        memcpy(d, s, len);
    }

    d[len] = '\0';

    return d;
}


static char *
omni_bytes_dup(omni_bytes_t b)
{
    return omni_strndup((const char *) b.data, b.len);
}


/*
 * Keeps the newest OMNI_MAX_BUCKETS buckets of one campaign sorted by
 * hour, oldest first, one bucket per hour: a count for an hour already
 * present is added to it, an older hour is inserted in place (clock skew,
 * imports), and when the table is full the oldest bucket goes, or the new
 * one when it is older than every bucket kept.  Counts saturate at the
 * u16 the record stores.  Shared with the touch fast path (omni_splice.c)
 * so that both apply impressions alike.
 */
void
omni_impr_add_bucket(omni_impr_t *im, uint32_t hour, uint32_t count)
{
    unsigned  i, nb;

    nb = im->nbuckets < OMNI_MAX_BUCKETS ? im->nbuckets : OMNI_MAX_BUCKETS;
    im->nbuckets = nb;

    /* the insertion point, searched from the newest end: the usual case */
    i = nb;
    while (i > 0 && im->buckets[i - 1].hour > hour) {
        i--;
    }

    if (i > 0 && im->buckets[i - 1].hour == hour) {
        count += im->buckets[i - 1].count;
        if (count > OMNI_BUCKET_COUNT_MAX || count < im->buckets[i - 1].count)
        {
            count = OMNI_BUCKET_COUNT_MAX;
        }

        im->buckets[i - 1].count = count;
        return;
    }

    if (count > OMNI_BUCKET_COUNT_MAX) {
        count = OMNI_BUCKET_COUNT_MAX;
    }

    if (nb == OMNI_MAX_BUCKETS) {
        if (i == 0) {
            return;
        }

        /* drop the oldest, the new bucket goes just before position i */
        memmove(&im->buckets[0], &im->buckets[1],
                (i - 1) * sizeof(omni_bucket_t));
        im->buckets[i - 1].hour = hour;
        im->buckets[i - 1].count = count;
        return;
    }

    memmove(&im->buckets[i + 1], &im->buckets[i],
            (nb - i) * sizeof(omni_bucket_t));
    im->buckets[i].hour = hour;
    im->buckets[i].count = count;
    im->nbuckets = nb + 1;
}


static unsigned
omni_rec_nitems(const omni_rec_t *rec, unsigned sect)
{
    unsigned         n;
    omni_bytes_t     item;
    omni_rec_iter_t  it;

    n = 0;
    omni_rec_iter_init(&it, rec, sect);

    while (omni_rec_iter_next(&it, &item)) {
        n++;
    }

    return n;
}


/*
 * Allocates room for every item of a section in one go: the count is
 * taken by walking the items, never from the (advisory) section table.
 */
static void *
omni_rec_alloc_items(const omni_rec_t *rec, unsigned sect, size_t size,
    unsigned *n)
{
    *n = omni_rec_nitems(rec, sect);

    if (*n == 0) {
        return NULL;
    }

    return calloc(*n, size);
}


#define omni_dup_or_fail(dst, b)                                             \
    do {                                                                     \
        (dst) = omni_bytes_dup(b);                                           \
        if ((dst) == NULL) {                                                 \
            goto failed;                                                     \
        }                                                                    \
    } while (0)


/*
 * Deep copy.  p need not be initialised (whatever it held is not freed);
 * on failure it is left empty.  What this reader does not know (unknown
 * sections, fields appended by newer minors, attributes of unknown type)
 * is not copied: a record rewritten by an older writer loses it.
 */
int
omni_profile_from_rec(omni_profile_t *p, const omni_rec_t *rec)
{
    unsigned           n, i, b, nb, type;
    uint32_t           hour, count;
    omni_bytes_t       item, v;
    omni_rec_iter_t    it;
    omni_rec_fields_t  f;

    omni_profile_init(p, rec->id);

    p->created = rec->created;
    p->updated = rec->updated;
    p->visits = rec->visits;
    p->visit_last = rec->visit_last;
    p->consent = rec->consent;
    p->stage = rec->stage;
    memcpy(p->last_seen, rec->last_seen, sizeof(p->last_seen));
    p->orders = rec->orders;
    p->revenue = rec->revenue;

    /* aliases */

    p->aliases = omni_rec_alloc_items(rec, OMNI_SECT_ALIASES,
                                      sizeof(omni_alias_t), &n);
    if (n && p->aliases == NULL) {
        goto failed;
    }

    omni_rec_iter_init(&it, rec, OMNI_SECT_ALIASES);

    for (i = 0; i < n && omni_rec_iter_next(&it, &item); i++) {
        omni_rec_fields_init(&f, item);
        p->aliases[i].kind = (unsigned char) omni_rec_get_u8(&f);
        omni_dup_or_fail(p->aliases[i].value, omni_rec_get_str(&f));
        p->naliases++;
    }

    /* segments */

    p->segments = omni_rec_alloc_items(rec, OMNI_SECT_SEGMENTS,
                                       sizeof(char *), &n);
    if (n && p->segments == NULL) {
        goto failed;
    }

    omni_rec_iter_init(&it, rec, OMNI_SECT_SEGMENTS);

    for (i = 0; i < n && omni_rec_iter_next(&it, &item); i++) {
        omni_rec_fields_init(&f, item);
        omni_dup_or_fail(p->segments[i], omni_rec_get_str(&f));
        p->nsegments++;
    }

    /* attributes */

    p->attrs = omni_rec_alloc_items(rec, OMNI_SECT_ATTRS,
                                    sizeof(omni_attr_t), &n);
    if (n && p->attrs == NULL) {
        goto failed;
    }

    omni_rec_iter_init(&it, rec, OMNI_SECT_ATTRS);

    for (i = 0; i < n && omni_rec_iter_next(&it, &item); i++) {
        omni_attr_t  *a;

        omni_rec_fields_init(&f, item);
        v = omni_rec_get_str(&f);
        type = omni_rec_get_u8(&f);

        if (type != OMNI_ATTR_STR && type != OMNI_ATTR_NUM) {
            continue;
        }

        a = &p->attrs[p->nattrs];
        a->type = (int) type;

        omni_dup_or_fail(a->key, v);

        if (type == OMNI_ATTR_STR) {
            a->str = omni_bytes_dup(omni_rec_get_str(&f));
            if (a->str == NULL) {
                free(a->key);
                goto failed;
            }

        } else {
            a->num = omni_rec_get_f64(&f);
        }

        p->nattrs++;
    }

    /* cart: the header item, then the lines */

    p->cart_updated = omni_rec_cart_updated(rec);

    p->cart = omni_rec_alloc_items(rec, OMNI_SECT_CART,
                                   sizeof(omni_cart_item_t), &n);
    if (n && p->cart == NULL) {
        goto failed;
    }

    omni_rec_cart_init(&it, rec);

    for (i = 0; i + 1 < n && omni_rec_iter_next(&it, &item); i++) {
        omni_cart_item_t  *c = &p->cart[i];

        /* counted first: a failure half way frees the half-copied line */
        p->ncart++;

        omni_rec_fields_init(&f, item);
        omni_dup_or_fail(c->sku, omni_rec_get_str(&f));
        omni_dup_or_fail(c->name, omni_rec_get_str(&f));
        omni_dup_or_fail(c->category, omni_rec_get_str(&f));
        c->qty = omni_rec_get_u32(&f);
        c->price = omni_rec_get_f64(&f);
        omni_dup_or_fail(c->url, omni_rec_get_str(&f));
        omni_dup_or_fail(c->image, omni_rec_get_str(&f));
    }

    /* purchases */

    p->purchases = omni_rec_alloc_items(rec, OMNI_SECT_PURCHASES,
                                        sizeof(omni_purchase_t), &n);
    if (n && p->purchases == NULL) {
        goto failed;
    }

    omni_rec_iter_init(&it, rec, OMNI_SECT_PURCHASES);

    for (i = 0; i < n && omni_rec_iter_next(&it, &item); i++) {
        omni_purchase_t  *pu = &p->purchases[i];

        p->npurchases++;

        omni_rec_fields_init(&f, item);
        omni_dup_or_fail(pu->sku, omni_rec_get_str(&f));
        omni_dup_or_fail(pu->order_id, omni_rec_get_str(&f));
        pu->channel = omni_rec_get_u8(&f);
        pu->time = omni_rec_get_u32(&f);
        omni_dup_or_fail(pu->category, omni_rec_get_str(&f));
        pu->price = omni_rec_get_f64(&f);
        pu->qty = omni_rec_get_u32(&f);
    }

    /* impressions */

    p->impressions = omni_rec_alloc_items(rec, OMNI_SECT_IMPRESSIONS,
                                          sizeof(omni_impr_t), &n);
    if (n && p->impressions == NULL) {
        goto failed;
    }

    omni_rec_iter_init(&it, rec, OMNI_SECT_IMPRESSIONS);

    for (i = 0; i < n && omni_rec_iter_next(&it, &item); i++) {
        omni_impr_t  *im = &p->impressions[i];

        omni_rec_fields_init(&f, item);
        omni_dup_or_fail(im->campaign, omni_rec_get_str(&f));
        p->nimpressions++;

        im->total = omni_rec_get_u32(&f);
        im->last = omni_rec_get_u32(&f);

        nb = omni_rec_get_u8(&f);

        for (b = 0; b < nb; b++) {

            /* a bucket cut short by the item's end is no bucket */
            if (f.p == NULL || (size_t) (f.end - f.p) < 6) {
                break;
            }

            hour = omni_rec_get_u32(&f);
            count = omni_rec_get_u16(&f);

            if (count) {
                omni_impr_add_bucket(im, hour, count);
            }
        }
    }

    /* views */

    p->views = omni_rec_alloc_items(rec, OMNI_SECT_VIEWS,
                                    sizeof(omni_view_t), &n);
    if (n && p->views == NULL) {
        goto failed;
    }

    omni_rec_iter_init(&it, rec, OMNI_SECT_VIEWS);

    for (i = 0; i < n && omni_rec_iter_next(&it, &item); i++) {
        omni_view_t  *vw = &p->views[i];

        p->nviews++;

        omni_rec_fields_init(&f, item);
        omni_dup_or_fail(vw->sku, omni_rec_get_str(&f));
        omni_dup_or_fail(vw->category, omni_rec_get_str(&f));
        vw->time = omni_rec_get_u32(&f);
        vw->price = omni_rec_get_f64(&f);
    }

    /* events */

    p->events = omni_rec_alloc_items(rec, OMNI_SECT_EVENTS,
                                     sizeof(omni_evcount_t), &n);
    if (n && p->events == NULL) {
        goto failed;
    }

    omni_rec_iter_init(&it, rec, OMNI_SECT_EVENTS);

    for (i = 0; i < n && omni_rec_iter_next(&it, &item); i++) {
        omni_evcount_t  *ev = &p->events[i];

        omni_rec_fields_init(&f, item);
        omni_dup_or_fail(ev->name, omni_rec_get_str(&f));
        p->nevents++;

        ev->count = omni_rec_get_u32(&f);
        ev->last = omni_rec_get_u32(&f);
    }

    return OMNI_OK;

failed:

    omni_profile_free(p);

    return OMNI_ERROR;
}


/* ---- encoding ---- */

static void
omni_buf_need(omni_buf_t *b, size_t n)
{
    size_t          cap;
    unsigned char  *d;

    if (b->failed || b->cap - b->len >= n) {
        return;
    }

    cap = b->cap ? b->cap : 256;

    while (cap - b->len < n) {
        cap *= 2;
    }

    d = realloc(b->data, cap);
    if (d == NULL) {
        b->failed = 1;
        return;
    }

    b->data = d;
    b->cap = cap;
}


/* Reserves n bytes at the end and returns their offset (zero-filled). */
static size_t
omni_buf_grow(omni_buf_t *b, size_t n)
{
    size_t  off;

    omni_buf_need(b, n);

    if (b->failed) {
        return 0;
    }

    off = b->len;
    memset(b->data + off, 0, n);
    b->len += n;

    return off;
}


static void
omni_put8(omni_buf_t *b, unsigned v)
{
    size_t  off = omni_buf_grow(b, 1);

    if (!b->failed) {
        b->data[off] = (unsigned char) v;
    }
}


static void
omni_put16(omni_buf_t *b, unsigned v)
{
    size_t  off = omni_buf_grow(b, 2);

    if (!b->failed) {
        omni_wr16(b->data + off, v);
    }
}


static void
omni_put32(omni_buf_t *b, uint32_t v)
{
    size_t  off = omni_buf_grow(b, 4);

    if (!b->failed) {
        omni_wr32(b->data + off, v);
    }
}


static void
omni_putf64(omni_buf_t *b, double v)
{
    size_t  off = omni_buf_grow(b, 8);

    if (!b->failed) {
        omni_wrf64(b->data + off, v);
    }
}


/*
 * Strings are cut to OMNI_MAX_STR bytes; when the cut falls inside a
 * UTF-8 sequence the whole character goes, so valid UTF-8 stays valid.
 * NULL writes as the empty string.
 */
static void
omni_putstr(omni_buf_t *b, const char *s)
{
    size_t  n, off;

    n = s ? strlen(s) : 0;

    if (n > OMNI_MAX_STR) {
        n = OMNI_MAX_STR;
        while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80) {
            n--;
        }
    }

    off = omni_buf_grow(b, 2 + n);

    if (!b->failed) {
        omni_wr16(b->data + off, (unsigned) n);
        if (n) {
            memcpy(b->data + off + 2, s, n);
        }
    }
}


static size_t
omni_item_begin(omni_buf_t *b)
{
    return omni_buf_grow(b, 2);
}


static void
omni_item_end(omni_buf_t *b, size_t start)
{
    size_t  n;

    if (b->failed) {
        return;
    }

    n = b->len - start - 2;

    /* cannot happen with strings bounded by OMNI_MAX_STR; checked anyway */
    if (n > OMNI_REC_ITEM_MAX) {
        b->failed = 1;
        return;
    }

    omni_wr16(b->data + start, (unsigned) n);
}


static int
omni_keyidx_cmp(const void *a, const void *b)
{
    const omni_keyidx_t  *x = a, *y = b;

    if (x->key != y->key) {
        return x->key < y->key ? -1 : 1;
    }

    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}


/*
 * Marks in keep[] which of n entries survive a bound of max: the entries
 * with the smallest keys (times) go first, and among equal keys the one
 * earlier in the array, so the choice is deterministic.  keys[] is
 * clobbered.  A NULL keep (n <= max) means "keep all".
 */
static unsigned char *
omni_keep_newest(omni_keyidx_t *keys, size_t n, size_t max)
{
    size_t          i;
    unsigned char  *keep;

    if (n <= max) {
        return NULL;
    }

    keep = malloc(n);
    if (keep == NULL) {
        return NULL;
    }

    memset(keep, 1, n);
    qsort(keys, n, sizeof(omni_keyidx_t), omni_keyidx_cmp);

    for (i = 0; i < n - max; i++) {
        keep[keys[i].idx] = 0;
    }

    return keep;
}


/* First index that survives a FIFO bound: the oldest entries go. */
static unsigned
omni_fifo_start(unsigned n, unsigned max)
{
    return n > max ? n - max : 0;
}


/* Section bookkeeping while encoding. */
typedef struct {
    size_t      entry;          /* offset of the table entry */
    size_t      start;          /* offset of the section's first item */
    unsigned    count;
} omni_sect_w_t;


static void
omni_sect_begin(omni_buf_t *b, omni_sect_w_t *s)
{
    s->start = b->len;
    s->count = 0;
}


static void
omni_sect_end(omni_buf_t *b, omni_sect_w_t *s, unsigned type)
{
    if (b->failed) {
        return;
    }

    omni_wr16(b->data + s->entry, type);
    omni_wr16(b->data + s->entry + 2, s->count);
    omni_wr32(b->data + s->entry + 4, (uint32_t) s->start);
    omni_wr32(b->data + s->entry + 8, (uint32_t) (b->len - s->start));
}


/*
 * Writes the fixed header of p with nsect sections into the
 * OMNI_REC_HDR_LEN bytes at d, which the caller zero-filled.  Shared
 * with the touch fast path (omni_splice.c).
 */
void
omni_rec_put_header(unsigned char *d, const omni_profile_t *p,
    unsigned nsect)
{
    unsigned  i;

    omni_wr16(d + OMNI_OFF_MAGIC, OMNI_REC_MAGIC);
    d[OMNI_OFF_MAJOR] = OMNI_REC_MAJOR;
    d[OMNI_OFF_MINOR] = OMNI_REC_MINOR;
    omni_wr16(d + OMNI_OFF_HLEN, OMNI_REC_HDR_LEN);
    omni_wr16(d + OMNI_OFF_NSECT, nsect);
    memcpy(d + OMNI_OFF_ID, p->id, OMNI_ID_LEN);
    omni_wr32(d + OMNI_OFF_CREATED, p->created);
    omni_wr32(d + OMNI_OFF_UPDATED, p->updated);
    omni_wr32(d + OMNI_OFF_VISITS, p->visits);
    omni_wr32(d + OMNI_OFF_VISIT_LAST, p->visit_last);
    omni_wr32(d + OMNI_OFF_CONSENT, p->consent);
    d[OMNI_OFF_STAGE] = (unsigned char) p->stage;
    /* flags and both reserved fields stay zero */

    for (i = 0; i < OMNI_CH_MAX; i++) {
        omni_wr32(d + OMNI_OFF_LAST_SEEN + 4 * i, p->last_seen[i]);
    }

    omni_wr32(d + OMNI_OFF_ORDERS, p->orders);
    omni_wrf64(d + OMNI_OFF_REVENUE, p->revenue);
}


int
omni_profile_encode(const omni_profile_t *p, unsigned char **out,
    size_t *len)
{
    size_t          item, tbl, n;
    unsigned        i, j, nsect, nb, type, start;
    uint32_t        count;
    omni_buf_t      b;
    omni_keyidx_t  *keys;
    omni_sect_w_t   sect[OMNI_SECT_MAX];
    unsigned char  *keep[OMNI_SECT_MAX];
    int             present[OMNI_SECT_MAX];

    *out = NULL;
    *len = 0;

    memset(&b, 0, sizeof(omni_buf_t));
    memset(keep, 0, sizeof(keep));

    /*
     * Time-ordered bounds first: which purchases, impressions, views and
     * events survive.  keep[type] stays NULL when all of them do.
     */

    n = p->npurchases;
    if (p->nimpressions > n) {
        n = p->nimpressions;
    }

    if (p->nviews > n) {
        n = p->nviews;
    }

    if (p->nevents > n) {
        n = p->nevents;
    }

    keys = n ? malloc(n * sizeof(omni_keyidx_t)) : NULL;
    if (n && keys == NULL) {
        return OMNI_ERROR;
    }

    if (p->npurchases > OMNI_MAX_PURCHASES) {
        for (i = 0; i < p->npurchases; i++) {
            keys[i].key = p->purchases[i].time;
            keys[i].idx = i;
        }

        keep[OMNI_SECT_PURCHASES] = omni_keep_newest(keys, p->npurchases,
                                                     OMNI_MAX_PURCHASES);
        if (keep[OMNI_SECT_PURCHASES] == NULL) {
            goto failed;
        }
    }

    /* impressions: the least recently shown campaigns go */
    if (p->nimpressions > OMNI_MAX_IMPRESSIONS) {
        for (i = 0; i < p->nimpressions; i++) {
            keys[i].key = p->impressions[i].last;
            keys[i].idx = i;
        }

        keep[OMNI_SECT_IMPRESSIONS] = omni_keep_newest(keys,
                                        p->nimpressions,
                                        OMNI_MAX_IMPRESSIONS);
        if (keep[OMNI_SECT_IMPRESSIONS] == NULL) {
            goto failed;
        }
    }

    if (p->nviews > OMNI_MAX_VIEWS) {
        for (i = 0; i < p->nviews; i++) {
            keys[i].key = p->views[i].time;
            keys[i].idx = i;
        }

        keep[OMNI_SECT_VIEWS] = omni_keep_newest(keys, p->nviews,
                                                 OMNI_MAX_VIEWS);
        if (keep[OMNI_SECT_VIEWS] == NULL) {
            goto failed;
        }
    }

    /* events: the counters updated least recently go */
    if (p->nevents > OMNI_MAX_EVENTS) {
        for (i = 0; i < p->nevents; i++) {
            keys[i].key = p->events[i].last;
            keys[i].idx = i;
        }

        keep[OMNI_SECT_EVENTS] = omni_keep_newest(keys, p->nevents,
                                                  OMNI_MAX_EVENTS);
        if (keep[OMNI_SECT_EVENTS] == NULL) {
            goto failed;
        }
    }

    free(keys);
    keys = NULL;

    /* only non-empty sections are written; the cart also for its header */

    present[0] = 0;
    present[OMNI_SECT_ALIASES] = p->naliases > 0;
    present[OMNI_SECT_SEGMENTS] = p->nsegments > 0;
    present[OMNI_SECT_ATTRS] = p->nattrs > 0;
    present[OMNI_SECT_CART] = p->ncart > 0 || p->cart_updated != 0;
    present[OMNI_SECT_PURCHASES] = p->npurchases > 0;
    present[OMNI_SECT_IMPRESSIONS] = p->nimpressions > 0;
    present[OMNI_SECT_VIEWS] = p->nviews > 0;
    present[OMNI_SECT_EVENTS] = p->nevents > 0;

    nsect = 0;
    for (type = 1; type < OMNI_SECT_MAX; type++) {
        nsect += present[type] ? 1 : 0;
    }

    /* fixed header */

    (void) omni_buf_grow(&b, OMNI_REC_HDR_LEN + nsect * OMNI_REC_SECT_ENTRY);
    if (b.failed) {
        goto failed;
    }

    omni_rec_put_header(b.data, p, nsect);

    /* sections, in type order, each with its table entry */

    tbl = OMNI_REC_HDR_LEN;

    for (type = 1; type < OMNI_SECT_MAX; type++) {
        if (!present[type]) {
            continue;
        }

        sect[type].entry = tbl;
        tbl += OMNI_REC_SECT_ENTRY;

        omni_sect_begin(&b, &sect[type]);

        switch (type) {

        case OMNI_SECT_ALIASES:
            start = omni_fifo_start(p->naliases, OMNI_MAX_ALIASES);

            for (i = start; i < p->naliases; i++) {
                item = omni_item_begin(&b);
                omni_put8(&b, p->aliases[i].kind);
                omni_putstr(&b, p->aliases[i].value);
                omni_item_end(&b, item);
                sect[type].count++;
            }

            break;

        case OMNI_SECT_SEGMENTS:
            start = omni_fifo_start(p->nsegments, OMNI_MAX_SEGMENTS);

            for (i = start; i < p->nsegments; i++) {
                item = omni_item_begin(&b);
                omni_putstr(&b, p->segments[i]);
                omni_item_end(&b, item);
                sect[type].count++;
            }

            break;

        case OMNI_SECT_ATTRS:
            start = omni_fifo_start(p->nattrs, OMNI_MAX_ATTRS);

            for (i = start; i < p->nattrs; i++) {
                item = omni_item_begin(&b);
                omni_putstr(&b, p->attrs[i].key);

                if (p->attrs[i].type == OMNI_ATTR_NUM) {
                    omni_put8(&b, OMNI_ATTR_NUM);
                    omni_putf64(&b, p->attrs[i].num);

                } else {
                    omni_put8(&b, OMNI_ATTR_STR);
                    omni_putstr(&b, p->attrs[i].str);
                }

                omni_item_end(&b, item);
                sect[type].count++;
            }

            break;

        case OMNI_SECT_CART:
            item = omni_item_begin(&b);
            omni_put32(&b, p->cart_updated);
            omni_item_end(&b, item);
            sect[type].count++;

            /* the lines added first are the oldest */
            start = omni_fifo_start(p->ncart, OMNI_MAX_CART);

            for (i = start; i < p->ncart; i++) {
                const omni_cart_item_t  *c = &p->cart[i];

                item = omni_item_begin(&b);
                omni_putstr(&b, c->sku);
                omni_putstr(&b, c->name);
                omni_putstr(&b, c->category);
                omni_put32(&b, c->qty);
                omni_putf64(&b, c->price);
                omni_putstr(&b, c->url);
                omni_putstr(&b, c->image);
                omni_item_end(&b, item);
                sect[type].count++;
            }

            break;

        case OMNI_SECT_PURCHASES:
            for (i = 0; i < p->npurchases; i++) {
                const omni_purchase_t  *pu = &p->purchases[i];

                if (keep[type] && !keep[type][i]) {
                    continue;
                }

                item = omni_item_begin(&b);
                omni_putstr(&b, pu->sku);
                omni_putstr(&b, pu->order_id);
                omni_put8(&b, pu->channel);
                omni_put32(&b, pu->time);
                omni_putstr(&b, pu->category);
                omni_putf64(&b, pu->price);
                omni_put32(&b, pu->qty);
                omni_item_end(&b, item);
                sect[type].count++;
            }

            break;

        case OMNI_SECT_IMPRESSIONS:
            for (i = 0; i < p->nimpressions; i++) {
                const omni_impr_t  *im = &p->impressions[i];

                if (keep[type] && !keep[type][i]) {
                    continue;
                }

                nb = im->nbuckets < OMNI_MAX_BUCKETS
                     ? im->nbuckets : OMNI_MAX_BUCKETS;

                item = omni_item_begin(&b);
                omni_putstr(&b, im->campaign);
                omni_put32(&b, im->total);
                omni_put32(&b, im->last);
                omni_put8(&b, nb);

                for (j = 0; j < nb; j++) {
                    count = im->buckets[j].count;
                    if (count > OMNI_BUCKET_COUNT_MAX) {
                        count = OMNI_BUCKET_COUNT_MAX;
                    }

                    omni_put32(&b, im->buckets[j].hour);
                    omni_put16(&b, count);
                }

                omni_item_end(&b, item);
                sect[type].count++;
            }

            break;

        case OMNI_SECT_VIEWS:
            for (i = 0; i < p->nviews; i++) {
                const omni_view_t  *vw = &p->views[i];

                if (keep[type] && !keep[type][i]) {
                    continue;
                }

                item = omni_item_begin(&b);
                omni_putstr(&b, vw->sku);
                omni_putstr(&b, vw->category);
                omni_put32(&b, vw->time);
                omni_putf64(&b, vw->price);
                omni_item_end(&b, item);
                sect[type].count++;
            }

            break;

        case OMNI_SECT_EVENTS:
            for (i = 0; i < p->nevents; i++) {
                const omni_evcount_t  *ev = &p->events[i];

                if (keep[type] && !keep[type][i]) {
                    continue;
                }

                item = omni_item_begin(&b);
                omni_putstr(&b, ev->name);
                omni_put32(&b, ev->count);
                omni_put32(&b, ev->last);
                omni_item_end(&b, item);
                sect[type].count++;
            }

            break;
        }

        omni_sect_end(&b, &sect[type], type);
    }

    if (b.failed) {
        goto failed;
    }

    for (type = 0; type < OMNI_SECT_MAX; type++) {
        free(keep[type]);
    }

    *out = b.data;
    *len = b.len;

    return OMNI_OK;

failed:

    free(keys);

    for (type = 0; type < OMNI_SECT_MAX; type++) {
        free(keep[type]);
    }

    free(b.data);

    return OMNI_ERROR;
}


/* ---- mutators ---- */

/*
 * A name, key or value a mutator accepts: 1..max bytes (0..max when
 * empty is allowed), no NUL inside (the profile holds C strings).
 */
static int
omni_str_ok(const char *s, size_t len, size_t max, int empty_ok)
{
    if (len == 0) {
        return empty_ok;
    }

    return s != NULL && len <= max && memchr(s, '\0', len) == NULL;
}


int
omni_grow(void **arr, unsigned n, size_t size)
{
    void  *a;

    a = realloc(*arr, (size_t) (n + 1) * size);
    if (a == NULL) {
        return OMNI_ERROR;
    }

    *arr = a;

    return OMNI_OK;
}


/*
 * Aliases, segments and attributes are bounded in the profile itself,
 * not only on encode, so that what a writer holds is what gets stored:
 * at the bound the oldest entry goes to make room.  Note that a dropped
 * alias is gone from the profile but not from the aliases database.
 */
int
omni_profile_add_alias(omni_profile_t *p, unsigned kind, const char *value,
    size_t len)
{
    char      *v;
    unsigned   i;

    if (kind == 0 || kind > 0xff
        || !omni_str_ok(value, len, OMNI_ALIAS_MAX_LEN, 0))
    {
        return OMNI_INVALID;
    }

    for (i = 0; i < p->naliases; i++) {
        if (p->aliases[i].kind == kind
            && strlen(p->aliases[i].value) == len
            && memcmp(p->aliases[i].value, value, len) == 0)
        {
            return OMNI_OK;
        }
    }

    v = omni_strndup(value, len);
    if (v == NULL) {
        return OMNI_ERROR;
    }

    if (p->naliases >= OMNI_MAX_ALIASES) {
        free(p->aliases[0].value);
        memmove(&p->aliases[0], &p->aliases[1],
                (p->naliases - 1) * sizeof(omni_alias_t));
        p->naliases--;

    } else if (omni_grow((void **) &p->aliases, p->naliases,
                         sizeof(omni_alias_t))
               != OMNI_OK)
    {
        free(v);
        return OMNI_ERROR;
    }

    p->aliases[p->naliases].kind = (unsigned char) kind;
    p->aliases[p->naliases].value = v;
    p->naliases++;

    return OMNI_OK;
}


/* OMNI_OK when removed, OMNI_NOTFOUND when the profile had no such alias. */
int
omni_profile_del_alias(omni_profile_t *p, unsigned kind, const char *value,
    size_t len)
{
    unsigned  i;

    for (i = 0; i < p->naliases; i++) {
        if (p->aliases[i].kind == kind
            && strlen(p->aliases[i].value) == len
            && (len == 0 || memcmp(p->aliases[i].value, value, len) == 0))
        {
            free(p->aliases[i].value);
            memmove(&p->aliases[i], &p->aliases[i + 1],
                    (p->naliases - i - 1) * sizeof(omni_alias_t));
            p->naliases--;

            return OMNI_OK;
        }
    }

    return OMNI_NOTFOUND;
}


int
omni_profile_add_segment(omni_profile_t *p, const char *name, size_t len)
{
    char      *s;
    unsigned   i;

    if (!omni_str_ok(name, len, OMNI_MAX_STR, 0)) {
        return OMNI_INVALID;
    }

    for (i = 0; i < p->nsegments; i++) {
        if (strlen(p->segments[i]) == len
            && memcmp(p->segments[i], name, len) == 0)
        {
            return OMNI_OK;
        }
    }

    s = omni_strndup(name, len);
    if (s == NULL) {
        return OMNI_ERROR;
    }

    if (p->nsegments >= OMNI_MAX_SEGMENTS) {
        free(p->segments[0]);
        memmove(&p->segments[0], &p->segments[1],
                (p->nsegments - 1) * sizeof(char *));
        p->nsegments--;

    } else if (omni_grow((void **) &p->segments, p->nsegments,
                         sizeof(char *))
               != OMNI_OK)
    {
        free(s);
        return OMNI_ERROR;
    }

    p->segments[p->nsegments++] = s;

    return OMNI_OK;
}


/*
 * Finds the attribute `key` or appends an empty one (dropping the oldest
 * at the bound).  The new key is allocated before anything changes, so a
 * failure leaves the profile as it was.
 */
static omni_attr_t *
omni_profile_attr(omni_profile_t *p, const char *key)
{
    char         *k;
    size_t        len;
    unsigned      i;
    omni_attr_t  *a;

    len = key ? strlen(key) : 0;

    if (!omni_str_ok(key, len, OMNI_MAX_STR, 0)) {
        return NULL;
    }

    for (i = 0; i < p->nattrs; i++) {
        if (strcmp(p->attrs[i].key, key) == 0) {
            return &p->attrs[i];
        }
    }

    k = omni_strndup(key, len);
    if (k == NULL) {
        return NULL;
    }

    if (p->nattrs >= OMNI_MAX_ATTRS) {
        free(p->attrs[0].key);
        free(p->attrs[0].str);
        memmove(&p->attrs[0], &p->attrs[1],
                (p->nattrs - 1) * sizeof(omni_attr_t));
        p->nattrs--;

    } else if (omni_grow((void **) &p->attrs, p->nattrs,
                         sizeof(omni_attr_t))
               != OMNI_OK)
    {
        free(k);
        return NULL;
    }

    a = &p->attrs[p->nattrs++];
    a->key = k;
    a->type = OMNI_ATTR_NUM;
    a->str = NULL;
    a->num = 0.0;

    return a;
}


/* NULL val sets the empty string. */
int
omni_profile_set_attr_str(omni_profile_t *p, const char *key,
    const char *val)
{
    char         *v;
    size_t        len;
    omni_attr_t  *a;

    if (val == NULL) {
        val = "";
    }

    len = strlen(val);
    if (len > OMNI_MAX_STR
        || key == NULL || !omni_str_ok(key, strlen(key), OMNI_MAX_STR, 0))
    {
        return OMNI_INVALID;
    }

    v = omni_strndup(val, len);
    if (v == NULL) {
        return OMNI_ERROR;
    }

    a = omni_profile_attr(p, key);
    if (a == NULL) {
        free(v);
        return OMNI_ERROR;
    }

    free(a->str);
    a->type = OMNI_ATTR_STR;
    a->str = v;
    a->num = 0.0;

    return OMNI_OK;
}


/* NaN and infinities are refused: JSON cannot carry them. */
int
omni_profile_set_attr_num(omni_profile_t *p, const char *key, double val)
{
    omni_attr_t  *a;

    if (!isfinite(val)
        || key == NULL || !omni_str_ok(key, strlen(key), OMNI_MAX_STR, 0))
    {
        return OMNI_INVALID;
    }

    a = omni_profile_attr(p, key);
    if (a == NULL) {
        return OMNI_ERROR;
    }

    free(a->str);
    a->type = OMNI_ATTR_NUM;
    a->str = NULL;
    a->num = val;

    return OMNI_OK;
}


/*
 * One impression at `now`: into the hour bucket now / 3600 (the newest
 * bucket when it is the same hour, else a new one; the oldest bucket goes
 * beyond OMNI_MAX_BUCKETS), plus total and last.  A new campaign beyond
 * OMNI_MAX_IMPRESSIONS replaces the least recently shown one.
 */
int
omni_profile_add_impression(omni_profile_t *p, const char *campaign,
    uint32_t now)
{
    char         *c;
    size_t        len;
    unsigned      i, victim;
    omni_impr_t  *im;

    len = campaign ? strlen(campaign) : 0;

    if (!omni_str_ok(campaign, len, OMNI_MAX_STR, 0)) {
        return OMNI_INVALID;
    }

    im = NULL;

    for (i = 0; i < p->nimpressions; i++) {
        if (strcmp(p->impressions[i].campaign, campaign) == 0) {
            im = &p->impressions[i];
            break;
        }
    }

    if (im == NULL) {
        c = omni_strndup(campaign, len);
        if (c == NULL) {
            return OMNI_ERROR;
        }

        if (p->nimpressions >= OMNI_MAX_IMPRESSIONS) {
            victim = 0;

            for (i = 1; i < p->nimpressions; i++) {
                if (p->impressions[i].last < p->impressions[victim].last) {
                    victim = i;
                }
            }

            free(p->impressions[victim].campaign);
            memmove(&p->impressions[victim], &p->impressions[victim + 1],
                    (p->nimpressions - victim - 1) * sizeof(omni_impr_t));
            p->nimpressions--;

        } else if (omni_grow((void **) &p->impressions, p->nimpressions,
                             sizeof(omni_impr_t))
                   != OMNI_OK)
        {
            free(c);
            return OMNI_ERROR;
        }

        im = &p->impressions[p->nimpressions++];
        memset(im, 0, sizeof(omni_impr_t));
        im->campaign = c;
    }

    omni_impr_add_bucket(im, now / 3600, 1);

    if (im->total != UINT32_MAX) {
        im->total++;
    }

    if (now > im->last) {
        im->last = now;
    }

    return OMNI_OK;
}
