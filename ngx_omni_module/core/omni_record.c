/*
 * Profile record codec: the binary layout is documented (and is a
 * contract) in omni_record.h; docs/store-format.md is the user-facing
 * copy.
 *
 * Reading is zero-copy and allocation-free: omni_rec_parse() validates
 * the fixed header and the section table up front, and the iterators and
 * field readers check every item and field lazily, so any byte string,
 * however damaged, either reads or is refused; nothing ever reads outside
 * [data, data + len).
 *
 * Writing decodes into omni_profile_t, mutates, and encodes the whole
 * record again.  The encoder is deterministic (the same profile always
 * gives the same bytes) and applies the bounds of omni_record.h.
 *
 * Strings longer than OMNI_MAX_STR: the mutators refuse them with
 * OMNI_INVALID (as they refuse empty names and embedded NULs), so a
 * writer learns about bad input; the encoder truncates whatever still
 * reaches it (a profile filled by hand) to OMNI_MAX_STR bytes, backing off
 * to a UTF-8 character boundary so that exports stay valid JSON.
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "omni_record.h"
#include "omni_record_int.h"


static const unsigned char  omni_empty[1];


/* ---- little-endian access without alignment assumptions ---- */

/*
 * Integers are assembled byte by byte: no unaligned pointer casts, and
 * the result does not depend on the host byte order.  Doubles go through
 * their 64-bit pattern and memcpy().
 */

static uint16_t
omni_rd16(const unsigned char *p)
{
    return (uint16_t) (p[0] | (unsigned) p[1] << 8);
}


static uint32_t
omni_rd32(const unsigned char *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
           | (uint32_t) p[3] << 24;
}


static double
omni_rdf64(const unsigned char *p)
{
    uint64_t  v;
    double    d;

    v = (uint64_t) omni_rd32(p) | (uint64_t) omni_rd32(p + 4) << 32;
    memcpy(&d, &v, sizeof(d));

    return d;
}


static uint32_t
omni_hdr32(const unsigned char *d, size_t hlen, size_t off)
{
    return off + 4 <= hlen ? omni_rd32(d + off) : 0;
}


/* ---- zero-copy reading ---- */

int
omni_rec_parse(omni_rec_t *rec, const void *data, size_t len)
{
    size_t                i, hlen, nsect, off, slen, entry;
    unsigned              type, seen;
    const unsigned char  *d;

    memset(rec, 0, sizeof(omni_rec_t));

    d = data;

    if (d == NULL || len < OMNI_REC_MIN_HDR) {
        return OMNI_INVALID;
    }

    if (omni_rd16(d + OMNI_OFF_MAGIC) != OMNI_REC_MAGIC
        || d[OMNI_OFF_MAJOR] != OMNI_REC_MAJOR)
    {
        return OMNI_INVALID;
    }

    hlen = omni_rd16(d + OMNI_OFF_HLEN);
    nsect = omni_rd16(d + OMNI_OFF_NSECT);

    if (hlen < OMNI_REC_MIN_HDR || hlen > len) {
        return OMNI_INVALID;
    }

    /* the section table must fit between the header and the end */
    if (nsect > (len - hlen) / OMNI_REC_SECT_ENTRY) {
        return OMNI_INVALID;
    }

    rec->minor = d[OMNI_OFF_MINOR];
    memcpy(rec->id, d + OMNI_OFF_ID, OMNI_ID_LEN);

    rec->created = omni_hdr32(d, hlen, OMNI_OFF_CREATED);
    rec->updated = omni_hdr32(d, hlen, OMNI_OFF_UPDATED);
    rec->visits = omni_hdr32(d, hlen, OMNI_OFF_VISITS);
    rec->visit_last = omni_hdr32(d, hlen, OMNI_OFF_VISIT_LAST);
    rec->consent = omni_hdr32(d, hlen, OMNI_OFF_CONSENT);

    /*
     * A stage beyond OMNI_STAGE_MAX (added by a newer minor) is kept as
     * is; omni_stage_name() returns NULL for it.
     */
    rec->stage = hlen > OMNI_OFF_STAGE ? d[OMNI_OFF_STAGE] : 0;

    for (i = 0; i < OMNI_CH_MAX; i++) {
        rec->last_seen[i] = omni_hdr32(d, hlen, OMNI_OFF_LAST_SEEN + 4 * i);
    }

    rec->orders = omni_hdr32(d, hlen, OMNI_OFF_ORDERS);
    rec->revenue = hlen >= OMNI_OFF_REVENUE + 8
                   ? omni_rdf64(d + OMNI_OFF_REVENUE) : 0.0;

    seen = 0;

    for (i = 0; i < nsect; i++) {
        entry = hlen + i * OMNI_REC_SECT_ENTRY;

        type = omni_rd16(d + entry);
        off = omni_rd32(d + entry + 4);
        slen = omni_rd32(d + entry + 8);

        /* checked for every entry, known type or not */
        if (off > len || slen > len - off) {
            goto invalid;
        }

        if (type == 0 || type >= OMNI_SECT_MAX) {
            continue;
        }

        /* each known type at most once: a repeat means a damaged record */
        if (seen & (1u << type)) {
            goto invalid;
        }

        seen |= 1u << type;

        rec->sect[type].data = d + off;
        rec->sect[type].len = slen;

        /*
         * The stored count is advisory (stats, preallocation); the
         * iterators walk the length-prefixed items and never trust it.
         */
        rec->count[type] = omni_rd16(d + entry + 2);
    }

    rec->data = d;
    rec->len = len;

    return OMNI_OK;

invalid:

    memset(rec, 0, sizeof(omni_rec_t));

    return OMNI_INVALID;
}


void
omni_rec_iter_init(omni_rec_iter_t *it, const omni_rec_t *rec,
    unsigned sect)
{
    if (rec == NULL || sect >= OMNI_SECT_MAX
        || rec->sect[sect].data == NULL)
    {
        it->p = NULL;
        it->end = NULL;
        return;
    }

    it->p = rec->sect[sect].data;
    it->end = it->p + rec->sect[sect].len;
}


/*
 * A malformed item (a length running past the section) ends the
 * iteration for good: nothing after it can be framed reliably.
 */
int
omni_rec_iter_next(omni_rec_iter_t *it, omni_bytes_t *item)
{
    size_t  avail, n;

    if (it->p == NULL || it->p >= it->end) {
        return 0;
    }

    avail = (size_t) (it->end - it->p);

    if (avail < 2) {
        it->p = it->end;
        return 0;
    }

    n = omni_rd16(it->p);

    if (n > avail - 2) {
        it->p = it->end;
        return 0;
    }

    item->data = it->p + 2;
    item->len = n;
    it->p += 2 + n;

    return 1;
}


void
omni_rec_fields_init(omni_rec_fields_t *f, omni_bytes_t item)
{
    if (item.data == NULL) {
        f->p = NULL;
        f->end = NULL;
        return;
    }

    f->p = item.data;
    f->end = item.data + item.len;
}


/*
 * True when n more bytes are available.  When they are not, the reader
 * is exhausted: a partial field is as missing as an absent one, and every
 * later field reads as zero too.
 */
static int
omni_rec_need(omni_rec_fields_t *f, size_t n)
{
    if (f->p != NULL && (size_t) (f->end - f->p) >= n) {
        return 1;
    }

    f->p = f->end;

    return 0;
}


omni_bytes_t
omni_rec_get_str(omni_rec_fields_t *f)
{
    size_t        n;
    omni_bytes_t  b;

    /* empty strings point at a real byte, so memcmp() on them is safe */
    b.data = omni_empty;
    b.len = 0;

    if (!omni_rec_need(f, 2)) {
        return b;
    }

    n = omni_rd16(f->p);

    if ((size_t) (f->end - f->p) - 2 < n) {
        f->p = f->end;
        return b;
    }

    b.data = f->p + 2;
    b.len = n;
    f->p += 2 + n;

    return b;
}


unsigned
omni_rec_get_u8(omni_rec_fields_t *f)
{
    unsigned  v;

    if (!omni_rec_need(f, 1)) {
        return 0;
    }

    v = f->p[0];
    f->p += 1;

    return v;
}


unsigned
omni_rec_get_u16(omni_rec_fields_t *f)
{
    unsigned  v;

    if (!omni_rec_need(f, 2)) {
        return 0;
    }

    v = omni_rd16(f->p);
    f->p += 2;

    return v;
}


uint32_t
omni_rec_get_u32(omni_rec_fields_t *f)
{
    uint32_t  v;

    if (!omni_rec_need(f, 4)) {
        return 0;
    }

    v = omni_rd32(f->p);
    f->p += 4;

    return v;
}


double
omni_rec_get_f64(omni_rec_fields_t *f)
{
    double  v;

    if (!omni_rec_need(f, 8)) {
        return 0.0;
    }

    v = omni_rdf64(f->p);
    f->p += 8;

    return v;
}


static int
omni_bytes_eq(omni_bytes_t b, const char *s, size_t len)
{
    return b.len == len && (len == 0 || memcmp(b.data, s, len) == 0);
}


int
omni_rec_has_segment(const omni_rec_t *rec, const char *name, size_t len)
{
    omni_bytes_t       item;
    omni_rec_iter_t    it;
    omni_rec_fields_t  f;

    omni_rec_iter_init(&it, rec, OMNI_SECT_SEGMENTS);

    while (omni_rec_iter_next(&it, &item)) {
        omni_rec_fields_init(&f, item);

        if (omni_bytes_eq(omni_rec_get_str(&f), name, len)) {
            return 1;
        }
    }

    return 0;
}


/*
 * The first item of a section whose leading string is key, framed
 * inline as omni_rec_iter_next() and omni_rec_get_str() frame it (a key
 * cut short reads as empty): 1 and *item, or 0.
 */
static int
omni_rec_find_keyed(const omni_rec_t *rec, unsigned sect, const char *key,
    size_t len, omni_bytes_t *item)
{
    size_t               avail, n, k;
    const unsigned char *p, *end, *it;

    if (rec == NULL || rec->sect[sect].data == NULL) {
        return 0;
    }

    p = rec->sect[sect].data;
    end = p + rec->sect[sect].len;

    while (p < end) {
        avail = (size_t) (end - p);

        if (avail < 2) {
            return 0;
        }

        n = omni_rd16(p);

        if (n > avail - 2) {
            return 0;
        }

        it = p + 2;
        p += 2 + n;

        if (n < 2 || (k = omni_rd16(it)) > n - 2) {
            k = 0;
        }

        if (k == len && (len == 0 || memcmp(it + 2, key, len) == 0)) {
            item->data = it;
            item->len = n;
            return 1;
        }
    }

    return 0;
}


/*
 * The first attribute with the key decides.  An attribute of a type this
 * reader does not know (a newer minor) reads as absent.
 */
int
omni_rec_get_attr(const omni_rec_t *rec, const char *key, size_t len,
    omni_bytes_t *str, double *num)
{
    size_t               n, k, rest;
    unsigned             type;
    omni_bytes_t         it;
    const unsigned char *item;

    if (str != NULL) {
        str->data = omni_empty;
        str->len = 0;
    }

    if (num != NULL) {
        *num = 0.0;
    }

    /*
     * Items: a 16-bit length, then the key (a 16-bit length and bytes),
     * the type byte and the value, framed inline as the readers frame
     * them: the rules look attributes up on every request.
     */
    if (!omni_rec_find_keyed(rec, OMNI_SECT_ATTRS, key, len, &it)) {
        return 0;
    }

    item = it.data;
    n = it.len;

    /* a key cut short reads as empty, and the rest as absent */
    if (n < 2 || (k = omni_rd16(item)) > n - 2) {
        return 0;
    }

    rest = n - 2 - k;
    item += 2 + k;

    if (rest < 1) {
        return 0;
    }

    type = item[0];
    item++;
    rest--;

    if (type == OMNI_ATTR_STR) {
        if (str != NULL && rest >= 2 && omni_rd16(item) <= rest - 2) {
            str->data = item + 2;
            str->len = omni_rd16(item);
        }

        return OMNI_ATTR_STR;
    }

    if (type == OMNI_ATTR_NUM) {
        if (num != NULL && rest >= 8) {
            *num = omni_rdf64(item);
        }

        return OMNI_ATTR_NUM;
    }

    return 0;
}


uint32_t
omni_rec_cart_updated(const omni_rec_t *rec)
{
    omni_bytes_t       item;
    omni_rec_iter_t    it;
    omni_rec_fields_t  f;

    omni_rec_iter_init(&it, rec, OMNI_SECT_CART);

    if (!omni_rec_iter_next(&it, &item)) {
        return 0;
    }

    omni_rec_fields_init(&f, item);

    return omni_rec_get_u32(&f);
}


/* Positions `it` on the first cart line, past the header item. */
void
omni_rec_cart_init(omni_rec_iter_t *it, const omni_rec_t *rec)
{
    omni_bytes_t  header;

    omni_rec_iter_init(it, rec, OMNI_SECT_CART);
    (void) omni_rec_iter_next(it, &header);
}


int
omni_rec_cart_next(omni_rec_iter_t *it, omni_rec_cart_item_t *ci)
{
    omni_bytes_t       item;
    omni_rec_fields_t  f;

    if (!omni_rec_iter_next(it, &item)) {
        return 0;
    }

    omni_rec_fields_init(&f, item);

    ci->sku = omni_rec_get_str(&f);
    ci->name = omni_rec_get_str(&f);
    ci->category = omni_rec_get_str(&f);
    ci->qty = omni_rec_get_u32(&f);
    ci->price = omni_rec_get_f64(&f);
    ci->url = omni_rec_get_str(&f);
    ci->image = omni_rec_get_str(&f);

    return 1;
}


/* `it` comes from omni_rec_iter_init(it, rec, OMNI_SECT_PURCHASES). */
int
omni_rec_purchase_next(omni_rec_iter_t *it, omni_rec_purchase_t *p)
{
    omni_bytes_t       item;
    omni_rec_fields_t  f;

    if (!omni_rec_iter_next(it, &item)) {
        return 0;
    }

    omni_rec_fields_init(&f, item);

    p->sku = omni_rec_get_str(&f);
    p->order_id = omni_rec_get_str(&f);
    p->channel = omni_rec_get_u8(&f);
    p->time = omni_rec_get_u32(&f);
    p->category = omni_rec_get_str(&f);
    p->price = omni_rec_get_f64(&f);
    p->qty = omni_rec_get_u32(&f);

    return 1;
}


/*
 * Frequency capping reads this.  Impressions are kept per hour, so the
 * window is only as precise as an hour: a bucket counts, whole, when the
 * hour it covers *starts* after now - window.  With now = 10:30 and a
 * one-hour window the 10:00 bucket counts and the 09:00 bucket (which
 * holds 09:30..09:59 too) does not, so a window undercounts by at most
 * the part of one hour it cuts; a window of 0 counts nothing but
 * buckets stamped in the future (clock skew).  A window longer than
 * `now` counts every bucket.
 *
 * Returns OMNI_OK, or OMNI_NOTFOUND (every output zero) when the
 * campaign was never shown.
 */
int
omni_rec_impressions(const omni_rec_t *rec, const char *campaign,
    size_t len, uint32_t now, uint32_t window, uint32_t *total,
    uint32_t *last, uint32_t *in_window)
{
    int64_t            cutoff;
    uint32_t           sum, hour, count;
    unsigned           b, nb;
    omni_bytes_t       item;
    omni_rec_fields_t  f;

    if (total != NULL) {
        *total = 0;
    }

    if (last != NULL) {
        *last = 0;
    }

    if (in_window != NULL) {
        *in_window = 0;
    }

    /* the caps ask once per capped rule: the search is framed inline,
       the item found is read by the field readers */
    if (omni_rec_find_keyed(rec, OMNI_SECT_IMPRESSIONS, campaign, len,
                            &item))
    {
        omni_rec_fields_init(&f, item);
        (void) omni_rec_get_str(&f);

        if (total != NULL) {
            *total = omni_rec_get_u32(&f);
        } else {
            (void) omni_rec_get_u32(&f);
        }

        if (last != NULL) {
            *last = omni_rec_get_u32(&f);
        } else {
            (void) omni_rec_get_u32(&f);
        }

        nb = omni_rec_get_u8(&f);
        cutoff = (int64_t) now - (int64_t) window;
        sum = 0;

        for (b = 0; b < nb; b++) {
            hour = omni_rec_get_u32(&f);
            count = omni_rec_get_u16(&f);

            /* at most 255 x 65535: cannot overflow */
            if ((int64_t) hour * 3600 > cutoff) {
                sum += count;
            }
        }

        if (in_window != NULL) {
            *in_window = sum;
        }

        return OMNI_OK;
    }

    return OMNI_NOTFOUND;
}
