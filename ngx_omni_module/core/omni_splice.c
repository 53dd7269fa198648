/*
 * The touch fast path (omni_splice.h): check that a stored record is
 * canonical, then build the updated record from its bytes.  Nothing here
 * allocates but the output buffer, which is reused.
 */

#include <stdlib.h>
#include <string.h>

#include "omni_splice.h"
#include "omni_record_int.h"


/* Items per section the encoder keeps (the cart: its header item too). */
static const unsigned  omni_splice_max[OMNI_SECT_MAX] = {
    0,
    OMNI_MAX_ALIASES,
    OMNI_MAX_SEGMENTS,
    OMNI_MAX_ATTRS,
    1 + OMNI_MAX_CART,
    OMNI_MAX_PURCHASES,
    OMNI_MAX_IMPRESSIONS,
    OMNI_MAX_VIEWS,
    OMNI_MAX_EVENTS
};


/* ---- little-endian access, as in omni_record.c and omni_profile.c ---- */

static unsigned
omni_sp_rd16(const unsigned char *p)
{
    return p[0] | (unsigned) p[1] << 8;
}


static uint32_t
omni_sp_rd32(const unsigned char *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
           | (uint32_t) p[3] << 24;
}


static void
omni_sp_wr16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char) v;
    p[1] = (unsigned char) (v >> 8);
}


static void
omni_sp_wr32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char) v;
    p[1] = (unsigned char) (v >> 8);
    p[2] = (unsigned char) (v >> 16);
    p[3] = (unsigned char) (v >> 24);
}


/*
 * A NaN's bit pattern need not survive a trip through a double (x87
 * quiets signalling NaNs), so a record holding one is not spliced.
 */
static int
omni_sp_nan(const unsigned char *p)
{
    uint32_t  lo, hi;

    lo = omni_sp_rd32(p);
    hi = omni_sp_rd32(p + 4);

    return (hi & 0x7ff00000) == 0x7ff00000 && ((hi & 0x000fffff) | lo) != 0;
}


/* ---- canonical items: each check advances *p past a field, or fails ---- */

static int
omni_sp_fixed(const unsigned char **p, const unsigned char *end, size_t n)
{
    if ((size_t) (end - *p) < n) {
        return 0;
    }

    *p += n;

    return 1;
}


/* What the decoder's C string gives back unchanged to the encoder. */
static int
omni_sp_str(const unsigned char **p, const unsigned char *end)
{
    size_t  n;

    if (end - *p < 2) {
        return 0;
    }

    n = omni_sp_rd16(*p);

    if (n > OMNI_MAX_STR || (size_t) (end - *p) - 2 < n
        || (n && memchr(*p + 2, '\0', n) != NULL))
    {
        return 0;
    }

    *p += 2 + n;

    return 1;
}


static int
omni_sp_f64(const unsigned char **p, const unsigned char *end)
{
    if ((size_t) (end - *p) < 8 || omni_sp_nan(*p)) {
        return 0;
    }

    *p += 8;

    return 1;
}


/*
 * Buckets the decoder's insertion (omni_impr_add_bucket()) keeps as they
 * are: at most OMNI_MAX_BUCKETS, hours strictly increasing, no zero
 * count (the decoder skips those).
 */
static int
omni_sp_buckets(const unsigned char **p, const unsigned char *end)
{
    unsigned  nb, b;
    uint32_t  hour, prev;

    if (end - *p < 1) {
        return 0;
    }

    nb = **p;
    *p += 1;

    if (nb > OMNI_MAX_BUCKETS || (size_t) (end - *p) < 6 * (size_t) nb) {
        return 0;
    }

    prev = 0;

    for (b = 0; b < nb; b++) {
        hour = omni_sp_rd32(*p);

        if ((b > 0 && hour <= prev) || omni_sp_rd16(*p + 4) == 0) {
            return 0;
        }

        prev = hour;
        *p += 6;
    }

    return 1;
}


/* Item idx of a section: exactly the fields the encoder writes. */
static int
omni_sp_item(unsigned type, unsigned idx, const unsigned char *p,
    const unsigned char *end)
{
    int       ok;
    unsigned  t;

    switch (type) {

    case OMNI_SECT_ALIASES:
        ok = omni_sp_fixed(&p, end, 1) && omni_sp_str(&p, end);
        break;

    case OMNI_SECT_SEGMENTS:
        ok = omni_sp_str(&p, end);
        break;

    case OMNI_SECT_ATTRS:
        ok = omni_sp_str(&p, end) && end - p >= 1;

        if (ok) {
            t = *p++;
            ok = t == OMNI_ATTR_STR ? omni_sp_str(&p, end)
                 : t == OMNI_ATTR_NUM ? omni_sp_f64(&p, end) : 0;
        }

        break;

    case OMNI_SECT_CART:
        if (idx == 0) {
            /* the cart header: updated_at */
            ok = omni_sp_fixed(&p, end, 4);
            break;
        }

        ok = omni_sp_str(&p, end) && omni_sp_str(&p, end)
             && omni_sp_str(&p, end) && omni_sp_fixed(&p, end, 4)
             && omni_sp_f64(&p, end) && omni_sp_str(&p, end)
             && omni_sp_str(&p, end);
        break;

    case OMNI_SECT_PURCHASES:
        ok = omni_sp_str(&p, end) && omni_sp_str(&p, end)
             && omni_sp_fixed(&p, end, 1 + 4) && omni_sp_str(&p, end)
             && omni_sp_f64(&p, end) && omni_sp_fixed(&p, end, 4);
        break;

    case OMNI_SECT_IMPRESSIONS:
        ok = omni_sp_str(&p, end) && omni_sp_fixed(&p, end, 4 + 4)
             && omni_sp_buckets(&p, end);
        break;

    case OMNI_SECT_VIEWS:
        ok = omni_sp_str(&p, end) && omni_sp_str(&p, end)
             && omni_sp_fixed(&p, end, 4) && omni_sp_f64(&p, end);
        break;

    case OMNI_SECT_EVENTS:
        ok = omni_sp_str(&p, end) && omni_sp_fixed(&p, end, 4 + 4);
        break;

    default:
        ok = 0;
    }

    /* fields appended by another minor would be dropped by the decoder */
    return ok && p == end;
}


/*
 * A section the encoder writes: canonical items that fill it exactly,
 * as many as the table says, at least one, at most the bound.
 */
static int
omni_sp_section(unsigned type, const unsigned char *p, size_t len,
    unsigned count)
{
    size_t                il;
    unsigned              n;
    const unsigned char  *end;

    end = p + len;
    n = 0;

    while (p < end) {
        if (end - p < 2) {
            return 0;
        }

        il = omni_sp_rd16(p);

        if ((size_t) (end - p) - 2 < il
            || n >= omni_splice_max[type]
            || !omni_sp_item(type, n, p + 2, p + 2 + il))
        {
            return 0;
        }

        p += 2 + il;
        n++;
    }

    return n == count && n > 0;
}


void
omni_splice_init(omni_splice_t *s)
{
    s->rec = NULL;
    s->buf = NULL;
    s->cap = 0;
}


void
omni_splice_free(omni_splice_t *s)
{
    free(s->buf);
    omni_splice_init(s);
}


int
omni_splice_open(omni_splice_t *s, const omni_rec_t *rec)
{
    size_t                off, slen;
    unsigned              i, nsect, type, prev;
    const unsigned char  *d, *e;

    s->rec = NULL;
    s->indexed = 0;
    s->changed = 0;
    s->nimpr = 0;

    d = rec->data;

    if (d == NULL || rec->len < OMNI_REC_HDR_LEN
        || d[OMNI_OFF_MAJOR] != OMNI_REC_MAJOR
        || d[OMNI_OFF_MINOR] != OMNI_REC_MINOR
        || omni_sp_rd16(d + OMNI_OFF_HLEN) != OMNI_REC_HDR_LEN
        || d[OMNI_OFF_FLAGS] != 0
        || omni_sp_rd16(d + OMNI_OFF_RESERVED1) != 0
        || omni_sp_rd32(d + OMNI_OFF_RESERVED2) != 0
        || omni_sp_nan(d + OMNI_OFF_REVENUE))
    {
        return 0;
    }

    /* omni_rec_parse() checked that the table and sections fit */
    nsect = omni_sp_rd16(d + OMNI_OFF_NSECT);

    if (nsect >= OMNI_SECT_MAX) {
        return 0;
    }

    off = OMNI_REC_HDR_LEN + nsect * OMNI_REC_SECT_ENTRY;
    prev = 0;

    for (i = 0; i < nsect; i++) {
        e = d + OMNI_REC_HDR_LEN + i * OMNI_REC_SECT_ENTRY;

        type = omni_sp_rd16(e);
        slen = omni_sp_rd32(e + 8);

        if (type <= prev || type >= OMNI_SECT_MAX
            || omni_sp_rd32(e + 4) != off
            || !omni_sp_section(type, d + off, slen, omni_sp_rd16(e + 2)))
        {
            return 0;
        }

        /* a cart with no lines is written for its updated_at only */
        if (type == OMNI_SECT_CART && rec->count[type] == 1
            && omni_sp_rd32(d + off + 2) == 0)
        {
            return 0;
        }

        prev = type;
        off += slen;
    }

    if (off != rec->len) {
        return 0;
    }

    s->rec = rec;
    s->nsect = nsect;
    s->ncart = rec->sect[OMNI_SECT_CART].data ? rec->count[OMNI_SECT_CART] - 1
                                              : 0;
    s->nviews = rec->count[OMNI_SECT_VIEWS];

    return 1;
}


void
omni_splice_header(const omni_splice_t *s, omni_profile_t *hdr)
{
    const omni_rec_t  *rec = s->rec;

    omni_profile_init(hdr, rec->id);

    hdr->created = rec->created;
    hdr->updated = rec->updated;
    hdr->visits = rec->visits;
    hdr->visit_last = rec->visit_last;
    hdr->consent = rec->consent;
    hdr->stage = rec->stage;
    memcpy(hdr->last_seen, rec->last_seen, sizeof(hdr->last_seen));
    hdr->orders = rec->orders;
    hdr->revenue = rec->revenue;
}


int
omni_splice_has_alias(const omni_splice_t *s, unsigned kind,
    const char *value, size_t len)
{
    const unsigned char  *p, *end;

    p = s->rec->sect[OMNI_SECT_ALIASES].data;
    if (p == NULL) {
        return 0;
    }

    end = p + s->rec->sect[OMNI_SECT_ALIASES].len;

    /* canonical items: u16 length, u8 kind, u16 value length, value */
    for ( /* void */ ; p < end; p += 2 + omni_sp_rd16(p)) {
        if (p[2] == kind && omni_sp_rd16(p + 3) == len
            && memcmp(p + 5, value, len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* The stored campaigns: names, totals and lasts; buckets when needed. */
static void
omni_splice_index(omni_splice_t *s)
{
    size_t                il;
    unsigned              n;
    omni_splice_impr_t   *e;
    const unsigned char  *p, *q, *end;

    n = 0;
    s->indexed = 1;

    p = s->rec->sect[OMNI_SECT_IMPRESSIONS].data;
    if (p == NULL) {
        s->nimpr = 0;
        return;
    }

    end = p + s->rec->sect[OMNI_SECT_IMPRESSIONS].len;

    for ( /* void */ ; p < end; p += 2 + il) {
        il = omni_sp_rd16(p);

        e = &s->impr[n++];
        e->raw = p;
        e->raw_len = 2 + il;
        e->len = omni_sp_rd16(p + 2);
        e->name = p + 4;

        q = e->name + e->len;
        e->im.campaign = NULL;
        e->im.total = omni_sp_rd32(q);
        e->im.last = omni_sp_rd32(q + 4);
        e->im.nbuckets = 0;
    }

    s->nimpr = n;
}


/* A stored campaign about to change: its buckets, then no longer raw. */
static void
omni_splice_unpack(omni_splice_impr_t *e)
{
    unsigned              b, nb;
    const unsigned char  *q;

    q = e->name + e->len + 4 + 4;
    nb = *q++;

    for (b = 0; b < nb; b++, q += 6) {
        e->im.buckets[b].hour = omni_sp_rd32(q);
        e->im.buckets[b].count = omni_sp_rd16(q + 4);
    }

    e->im.nbuckets = nb;
    e->raw = NULL;
}


/* omni_profile_add_impression(), step for step. */
int
omni_splice_impression(omni_splice_t *s, const char *campaign, size_t len,
    uint32_t now)
{
    unsigned             i, victim;
    omni_splice_impr_t  *e;

    if (campaign == NULL || len == 0 || len > OMNI_MAX_STR
        || memchr(campaign, '\0', len) != NULL)
    {
        return OMNI_INVALID;
    }

    if (!s->indexed) {
        omni_splice_index(s);
    }

    e = NULL;

    for (i = 0; i < s->nimpr; i++) {
        if (s->impr[i].len == len
            && memcmp(s->impr[i].name, campaign, len) == 0)
        {
            e = &s->impr[i];
            break;
        }
    }

    if (e == NULL) {
        if (s->nimpr >= OMNI_MAX_IMPRESSIONS) {
            /* the least recently shown campaign, the first of equals */
            victim = 0;

            for (i = 1; i < s->nimpr; i++) {
                if (s->impr[i].im.last < s->impr[victim].im.last) {
                    victim = i;
                }
            }

            memmove(&s->impr[victim], &s->impr[victim + 1],
                    (s->nimpr - victim - 1) * sizeof(omni_splice_impr_t));
            s->nimpr--;
        }

        e = &s->impr[s->nimpr++];
        e->name = (const unsigned char *) campaign;
        e->len = len;
        e->raw = NULL;
        e->raw_len = 0;
        memset(&e->im, 0, sizeof(omni_impr_t));

    } else if (e->raw != NULL) {
        omni_splice_unpack(e);
    }

    omni_impr_add_bucket(&e->im, now / 3600, 1);

    if (e->im.total != UINT32_MAX) {
        e->im.total++;
    }

    if (now > e->im.last) {
        e->im.last = now;
    }

    s->changed = 1;

    return OMNI_OK;
}


/* A changed campaign's item, as omni_profile_encode() writes it. */
static size_t
omni_splice_impr_len(const omni_splice_impr_t *e)
{
    unsigned  nb;

    if (e->raw != NULL) {
        return e->raw_len;
    }

    nb = e->im.nbuckets < OMNI_MAX_BUCKETS ? e->im.nbuckets
                                           : OMNI_MAX_BUCKETS;

    return 2 + 2 + e->len + 4 + 4 + 1 + 6 * (size_t) nb;
}


static unsigned char *
omni_splice_impr_put(unsigned char *d, const omni_splice_impr_t *e)
{
    size_t    n;
    unsigned  b, nb;
    uint32_t  count;

    n = omni_splice_impr_len(e);

    if (e->raw != NULL) {
        memcpy(d, e->raw, n);
        return d + n;
    }

    nb = e->im.nbuckets < OMNI_MAX_BUCKETS ? e->im.nbuckets
                                           : OMNI_MAX_BUCKETS;

    omni_sp_wr16(d, (unsigned) (n - 2));
    omni_sp_wr16(d + 2, (unsigned) e->len);
    memcpy(d + 4, e->name, e->len);
    d += 4 + e->len;

    omni_sp_wr32(d, e->im.total);
    omni_sp_wr32(d + 4, e->im.last);
    d[8] = (unsigned char) nb;
    d += 9;

    for (b = 0; b < nb; b++, d += 6) {
        count = e->im.buckets[b].count;
        if (count > OMNI_BUCKET_COUNT_MAX) {
            count = OMNI_BUCKET_COUNT_MAX;
        }

        omni_sp_wr32(d, e->im.buckets[b].hour);
        omni_sp_wr16(d + 4, count);
    }

    return d;
}


int
omni_splice_build(omni_splice_t *s, const omni_profile_t *hdr,
    const unsigned char **out, size_t *len)
{
    int                   had, has;
    size_t                total, ilen, off, slen, tbl, cap;
    unsigned              i, type, nsect, count;
    unsigned char        *d, *p;
    const omni_rec_t     *rec = s->rec;
    const unsigned char  *src;

    had = rec->sect[OMNI_SECT_IMPRESSIONS].data != NULL;
    has = s->changed ? s->nimpr > 0 : had;
    nsect = s->nsect + (has && !had);

    ilen = 0;
    total = rec->len;

    if (s->changed) {
        for (i = 0; i < s->nimpr; i++) {
            ilen += omni_splice_impr_len(&s->impr[i]);
        }

        total = total - rec->sect[OMNI_SECT_IMPRESSIONS].len + ilen
                + (nsect - s->nsect) * OMNI_REC_SECT_ENTRY;
    }

    if (s->cap < total) {
        for (cap = s->cap ? s->cap : 1024; cap < total; cap *= 2) {
            /* void */
        }

        d = realloc(s->buf, cap);
        if (d == NULL) {
            return OMNI_ERROR;
        }

        s->buf = d;
        s->cap = cap;
    }

    d = s->buf;

    memset(d, 0, OMNI_REC_HDR_LEN);
    omni_rec_put_header(d, hdr, nsect);

    if (!s->changed) {
        /* the same table and sections: one copy */
        memcpy(d + OMNI_REC_HDR_LEN, rec->data + OMNI_REC_HDR_LEN,
               rec->len - OMNI_REC_HDR_LEN);

        *out = d;
        *len = total;

        return OMNI_OK;
    }

    /* the sections in type order, as the encoder writes them */
    tbl = OMNI_REC_HDR_LEN;
    off = OMNI_REC_HDR_LEN + nsect * OMNI_REC_SECT_ENTRY;

    for (type = 1; type < OMNI_SECT_MAX; type++) {

        if (type == OMNI_SECT_IMPRESSIONS) {
            if (!has) {
                continue;
            }

            p = d + off;

            for (i = 0; i < s->nimpr; i++) {
                p = omni_splice_impr_put(p, &s->impr[i]);
            }

            count = s->nimpr;
            slen = ilen;

        } else {
            src = rec->sect[type].data;
            if (src == NULL) {
                continue;
            }

            count = rec->count[type];
            slen = rec->sect[type].len;
            memcpy(d + off, src, slen);
        }

        omni_sp_wr16(d + tbl, type);
        omni_sp_wr16(d + tbl + 2, count);
        omni_sp_wr32(d + tbl + 4, (uint32_t) off);
        omni_sp_wr32(d + tbl + 8, (uint32_t) slen);

        tbl += OMNI_REC_SECT_ENTRY;
        off += slen;
    }

    *out = d;
    *len = off;

    return OMNI_OK;
}
