/*
 * Unit tests of the touch fast path (omni_splice.c, omni_update.c):
 * splicing must give exactly the bytes of decoding, changing and
 * encoding.
 *
 *   eligibility   random profiles of every shape (all sections, strings
 *                 at and over OMNI_MAX_STR, every bound reached and
 *                 passed, empty ones) encoded, then damaged in many ways:
 *                 whatever omni_splice_open() takes must be a fixed point
 *                 of decode + encode (so copying a section equals
 *                 re-encoding it), and every fixed point but those
 *                 holding a NaN must be taken (so the fast path is not
 *                 needlessly left);
 *   stores        two stores with the same random records and aliases,
 *                 one with the fast path and one without
 *                 (omni_update_splice), take the same random touches,
 *                 batched and one by one: the records written must be
 *                 byte-identical after every batch, the profile ids the
 *                 same, and the profiles and aliases databases identical
 *                 at the end.
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omni_tap.h"
#include "omni_splice.h"
#include "omni_update.h"

#include "store_helpers.h"


#define T0      1700000000u
#define NCAMP   80              /* campaign names: more than the bound */


/* ---- random profiles ---- */

/* A length: mostly short, now and then at or over OMNI_MAX_STR. */
static size_t
rand_len(void)
{
    switch (rnd() % 24) {
    case 0:
        return 0;
    case 1:
        return OMNI_MAX_STR - 1;
    case 2:
        return OMNI_MAX_STR;
    case 3:
        return OMNI_MAX_STR + 1 + rnd() % 8;    /* the encoder cuts it */
    default:
        return 1 + rnd() % 24;
    }
}


/*
 * A string of n bytes or a little less: ASCII, two- and three-byte
 * UTF-8 characters, so that a cut at OMNI_MAX_STR may fall inside one.
 */
static char *
rand_str_n(size_t n)
{
    char    *s;
    size_t   i;

    s = malloc(n + 1);
    if (s == NULL) {
        abort();
    }

    for (i = 0; i < n; /* void */ ) {
        switch (rnd() % 8) {
        case 0:
            if (n - i >= 2) {
                memcpy(s + i, "\xc3\xa9", 2);
                i += 2;
                continue;
            }
            break;
        case 1:
            if (n - i >= 3) {
                memcpy(s + i, "\xe2\x82\xac", 3);
                i += 3;
                continue;
            }
            break;
        }

        s[i++] = (char) ('a' + rnd() % 26);
    }

    s[n] = '\0';

    return s;
}


static char *
rand_str(void)
{
    return rand_str_n(rand_len());
}


static char *
dup_str(const char *v)
{
    char  *s;

    s = strdup(v);
    if (s == NULL) {
        abort();
    }

    return s;
}


/* n items: none, a few, exactly the bound, or over it. */
static unsigned
rand_count(unsigned max)
{
    switch (rnd() % 10) {
    case 0:
    case 1:
    case 2:
        return 0;
    case 3:
        return max;
    case 4:
        return max - 1;
    case 5:
        return max + 1 + rnd() % 6;     /* the encoder drops the oldest */
    default:
        return 1 + rnd() % 5;
    }
}


static double
rand_double(int nan_ok)
{
    switch (rnd() % 10) {
    case 0:
        return -0.0;
    case 1:
        return 1e300 * (rnd() % 2 ? 1 : -1);
    case 2:
        return nan_ok ? NAN : INFINITY;
    default:
        return (double) rnd() / 100.0;
    }
}


static void *
xcalloc(size_t n, size_t size)
{
    void  *p;

    p = calloc(n ? n : 1, size);
    if (p == NULL) {
        abort();
    }

    return p;
}


static void
campaign_name(char *buf, size_t size, unsigned k)
{
    snprintf(buf, size, "camp-%u", k);
}


/* What a generated profile holds that the fast path must leave. */
enum {
    GEN_NAN = 1,            /* a NaN double: a fixed point, not taken */
    GEN_ODD = 2             /* buckets the decoder rewrites */
};


/*
 * A random profile with every section: header fields at their edges,
 * aliases listing (or not) the visitor's cookie vhex and device dhex,
 * sections at and over their bounds.  `odd` makes it one the encoder
 * writes as no fixed point, or with a NaN; *flags tells which.
 */
static void
gen_profile(omni_profile_t *p, const unsigned char *pid, const char *vhex,
    const char *dhex, int odd, unsigned *flags)
{
    char       name[64];
    unsigned   i, k, n, b, own, dev, pos_own, pos_dev;
    uint32_t   hour;

    *flags = 0;

    omni_profile_init(p, pid);

    p->created = T0 - rnd() % 100000;
    p->updated = rnd() % 8 ? T0 - rnd() % 50000 : 0;
    p->visits = rnd() % 6 == 0 ? 0 : rnd() % 6 == 0 ? UINT32_MAX - rnd() % 3
                                  : rnd() % 5;
    p->visit_last = rnd() % 6 == 0 ? 0 : T0 - rnd() % 7200;
    p->consent = rnd() % 2 ? rnd() : 0;
    p->stage = rnd() % 7;
    p->orders = rnd() % 3 ? 0 : rnd() % 7;
    p->revenue = rand_double(0);

    for (i = 0; i < OMNI_CH_MAX; i++) {
        p->last_seen[i] = rnd() % 3 ? 0 : T0 - rnd() % 90000;
    }

    /*
     * Aliases: the visitor's own and its device's mostly at the end,
     * where the bound keeps them, now and then early, or missing.
     */
    n = rand_count(OMNI_MAX_ALIASES);
    own = rnd() % 8 ? 1 : 0;
    dev = rnd() % 2;
    n += own + dev;
    p->aliases = xcalloc(n, sizeof(omni_alias_t));

    pos_dev = dev ? n - 1 : n;
    pos_own = !own ? n : rnd() % 4 == 0 ? rnd() % n : n - 1 - dev;
    if (pos_own == pos_dev) {
        pos_own = n - 2;
    }

    for (i = 0; i < n; i++) {
        omni_alias_t  *a = &p->aliases[i];

        if (i == pos_own) {
            a->kind = OMNI_ALIAS_COOKIE;
            a->value = dup_str(vhex);

        } else if (i == pos_dev) {
            a->kind = OMNI_ALIAS_DEVICE;
            a->value = dup_str(dhex);

        } else {
            a->kind = "cdue"[rnd() % 4];
            a->value = rand_str_n(1 + rnd() % OMNI_ALIAS_MAX_LEN);
        }

        p->naliases++;
    }

    n = rand_count(OMNI_MAX_SEGMENTS);
    p->segments = xcalloc(n, sizeof(char *));

    for (i = 0; i < n; i++) {
        p->segments[p->nsegments++] = rand_str();
    }

    n = rand_count(OMNI_MAX_ATTRS);
    p->attrs = xcalloc(n, sizeof(omni_attr_t));

    for (i = 0; i < n; i++) {
        omni_attr_t  *a = &p->attrs[p->nattrs++];

        a->key = rand_str();

        if (rnd() % 2) {
            a->type = OMNI_ATTR_STR;
            a->str = rnd() % 8 ? rand_str() : NULL;

        } else {
            a->type = OMNI_ATTR_NUM;
            a->num = rand_double(odd);
        }
    }

    n = rand_count(OMNI_MAX_CART);
    p->cart_updated = rnd() % 3 ? T0 - rnd() % 1000 : 0;
    p->cart = xcalloc(n, sizeof(omni_cart_item_t));

    for (i = 0; i < n; i++) {
        omni_cart_item_t  *c = &p->cart[p->ncart++];

        c->sku = rand_str();
        c->name = rand_str();
        c->category = rand_str();
        c->url = rand_str();
        c->image = rand_str();
        c->qty = rnd() % 5;
        c->price = rand_double(odd);
    }

    n = rand_count(OMNI_MAX_PURCHASES);
    p->purchases = xcalloc(n, sizeof(omni_purchase_t));

    for (i = 0; i < n; i++) {
        omni_purchase_t  *pu = &p->purchases[p->npurchases++];

        pu->sku = rand_str();
        pu->order_id = rand_str();
        pu->category = rand_str();
        pu->channel = rnd() % 9;
        pu->time = T0 - rnd() % 50;             /* ties */
        pu->price = rand_double(odd);
        pu->qty = rnd();
    }

    /* impressions: names shared with the touches' lists */
    n = rand_count(OMNI_MAX_IMPRESSIONS);
    p->impressions = xcalloc(n, sizeof(omni_impr_t));

    for (i = 0; i < n; i++) {
        omni_impr_t  *im = &p->impressions[p->nimpressions++];

        k = rnd() % 20;

        if (k == 0) {
            im->campaign = rand_str();          /* empty and long too */

        } else {
            campaign_name(name, sizeof(name),
                          k == 1 && i > 0 ? i - 1 : rnd() % NCAMP);
            im->campaign = dup_str(name);       /* duplicates too */
        }

        im->total = rnd() % 10 ? rnd() % 1000 : UINT32_MAX;
        im->last = rnd() % 4 ? T0 - rnd() % 40 * 3600 : T0 - 3600;

        im->nbuckets = rnd() % 4 == 0 ? OMNI_MAX_BUCKETS
                       : rnd() % 6 == 0 ? OMNI_MAX_BUCKETS + 1
                       : rnd() % (OMNI_MAX_BUCKETS + 1);
        hour = T0 / 3600 - 40 + rnd() % 4;

        for (b = 0; b < im->nbuckets && b < OMNI_MAX_BUCKETS; b++) {
            im->buckets[b].hour = hour;
            im->buckets[b].count = rnd() % 5 ? 1 + rnd() % 9
                                   : 0xffff;
            hour += 1 + (rnd() % 3 == 0 ? rnd() % 3 : 0);
        }

        if (odd && im->nbuckets >= 2 && rnd() % 2) {
            /* out of order, a repeated hour, or a zero count */
            switch (rnd() % 3) {
            case 0:
                im->buckets[0].hour = im->buckets[1].hour + 1;
                break;
            case 1:
                im->buckets[1].hour = im->buckets[0].hour;
                break;
            default:
                im->buckets[rnd() % 2].count = 0;
            }

            *flags |= GEN_ODD;
        }
    }

    n = rand_count(OMNI_MAX_VIEWS);
    p->views = xcalloc(n, sizeof(omni_view_t));

    for (i = 0; i < n; i++) {
        omni_view_t  *v = &p->views[p->nviews++];

        v->sku = rand_str();
        v->category = rand_str();
        v->time = T0 - rnd() % 30;
        v->price = rand_double(odd);
    }

    n = rand_count(OMNI_MAX_EVENTS);
    p->events = xcalloc(n, sizeof(omni_evcount_t));

    for (i = 0; i < n; i++) {
        omni_evcount_t  *ev = &p->events[p->nevents++];

        ev->name = rand_str();
        ev->count = rnd();
        ev->last = T0 - rnd() % 30;
    }

    /* a NaN the encoder keeps: only where the bounds cannot drop it */
    if (odd && rnd() % 3 == 0) {
        p->revenue = NAN;
    }

    for (i = 0; odd && i < p->nattrs; i++) {
        if (p->attrs[i].type == OMNI_ATTR_NUM && isnan(p->attrs[i].num)) {
            *flags |= GEN_NAN;
        }
    }

    for (i = 0; odd && i < p->ncart; i++) {
        *flags |= isnan(p->cart[i].price) ? GEN_NAN : 0;
    }

    for (i = 0; odd && i < p->npurchases; i++) {
        *flags |= isnan(p->purchases[i].price) ? GEN_NAN : 0;
    }

    for (i = 0; odd && i < p->nviews; i++) {
        *flags |= isnan(p->views[i].price) ? GEN_NAN : 0;
    }

    *flags |= isnan(p->revenue) ? GEN_NAN : 0;
}


/* ---- damaging an encoded record ---- */

static void
put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char) v;
    p[1] = (unsigned char) (v >> 8);
}


static void
put32(unsigned char *p, uint32_t v)
{
    put16(p, v & 0xffff);
    put16(p + 2, v >> 16);
}


static unsigned
get16(const unsigned char *p)
{
    return p[0] | (unsigned) p[1] << 8;
}


static uint32_t
get32(const unsigned char *p)
{
    return get16(p) | (uint32_t) get16(p + 2) << 16;
}


typedef struct {
    unsigned   type, count;
    uint32_t   off, len;
} sect_t;


/*
 * Lays a record out again from its sections: a header of hlen bytes,
 * the sections in the order of perm (reversed when `reverse`), `gap`
 * bytes between sections, and an extra section (type, bytes) at the end
 * when xtype is not 0.  Returns the new length.
 */
static size_t
relayout(const unsigned char *src, size_t len, unsigned char *dst,
    size_t hlen, int reverse, size_t gap, unsigned xtype, size_t xlen)
{
    size_t    off, tbl;
    unsigned  i, j, n, nsect;
    sect_t    s[16];

    (void) len;

    nsect = get16(src + 6);

    for (i = 0; i < nsect && i < 15; i++) {
        s[i].type = get16(src + 96 + 12 * i);
        s[i].count = get16(src + 96 + 12 * i + 2);
        s[i].off = get32(src + 96 + 12 * i + 4);
        s[i].len = get32(src + 96 + 12 * i + 8);
    }

    n = i;

    if (xtype) {
        s[n].type = xtype;
        s[n].count = xlen ? 1 : 0;
        s[n].off = 0;
        s[n].len = (uint32_t) xlen;
        n++;
    }

    memset(dst, 0, hlen);
    memcpy(dst, src, 96);
    put16(dst + 4, (unsigned) hlen);
    put16(dst + 6, n);

    tbl = hlen;
    off = hlen + 12 * n;

    for (j = 0; j < n; j++) {
        i = reverse ? n - 1 - j : j;

        put16(dst + tbl, s[i].type);
        put16(dst + tbl + 2, s[i].count);
        put32(dst + tbl + 4, (uint32_t) off);
        put32(dst + tbl + 8, s[i].len);
        tbl += 12;

        if (s[i].off) {
            memcpy(dst + off, src + s[i].off, s[i].len);

        } else {
            /* the extra section: one item of xlen - 2 zero bytes */
            memset(dst + off, 0, s[i].len);
            if (s[i].len >= 2) {
                put16(dst + off, s[i].len - 2);
            }
        }

        off += s[i].len;

        if (j + 1 < n) {
            memset(dst + off, 0, gap);
            off += gap;
        }
    }

    return off;
}


/* The table entry of section `type`, or -1. */
static int
find_sect(const unsigned char *r, unsigned type, sect_t *s)
{
    unsigned  i, n;

    n = get16(r + 6);

    for (i = 0; i < n; i++) {
        if (get16(r + 96 + 12 * i) == type) {
            s->type = type;
            s->count = get16(r + 96 + 12 * i + 2);
            s->off = get32(r + 96 + 12 * i + 4);
            s->len = get32(r + 96 + 12 * i + 8);
            return (int) i;
        }
    }

    return -1;
}


#define NMANGLE  14

/*
 * One kind of damage to record r (len bytes, room for len + 200) into
 * out; returns the new length, or 0 when this record has nothing to
 * damage that way.
 */
static size_t
mangle(const unsigned char *r, size_t len, unsigned char *out, unsigned kind)
{
    int       e;
    size_t    n, p, il;
    sect_t    s;
    unsigned  nsect;

    memcpy(out, r, len);
    nsect = get16(r + 6);

    switch (kind) {

    case 0:                                     /* a newer minor */
        out[3] = 1;
        return len;

    case 1:                                     /* a longer header */
        return relayout(r, len, out, 100, 0, 0, 0, 0);

    case 2:                                     /* a trailing byte */
        out[len] = 0x5a;
        return len + 1;

    case 3:                                     /* an unknown section */
        return relayout(r, len, out, 96, 0, 0, 9 + rnd() % 3, 7);

    case 4:                                     /* sections reversed */
        return nsect >= 2 ? relayout(r, len, out, 96, 1, 0, 0, 0) : 0;

    case 5:                                     /* a gap */
        return nsect >= 2 ? relayout(r, len, out, 96, 0, 1, 0, 0) : 0;

    case 6:                                     /* a wrong count */
        if (nsect == 0) {
            return 0;
        }

        e = (int) (rnd() % nsect);
        put16(out + 96 + 12 * e + 2, get16(out + 96 + 12 * e + 2) + 1);
        return len;

    case 7:                                     /* flags, reserved */
        out[rnd() % 2 ? 45 : 84 + rnd() % 4] = 1;
        return len;

    case 8:                                     /* a NUL in a string */
        if (find_sect(r, OMNI_SECT_ALIASES, &s) < 0
            || get16(r + s.off + 3) == 0)
        {
            return 0;
        }

        out[s.off + 5 + rnd() % get16(r + s.off + 3)] = '\0';
        return len;

    case 9:                                     /* an empty known section */
        if (find_sect(r, OMNI_SECT_EVENTS, &s) >= 0) {
            return 0;
        }

        return relayout(r, len, out, 96, 0, 0, OMNI_SECT_EVENTS, 0);

    case 10:                                    /* a field appended */
        if (nsect == 0) {
            return 0;
        }

        e = (int) nsect - 1;
        s.off = get32(r + 96 + 12 * e + 4);
        s.len = get32(r + 96 + 12 * e + 8);

        if (s.off + s.len != len) {
            return 0;
        }

        /* the last item of the last section */
        for (p = s.off; p + 2 + get16(r + p) < len; p += 2 + get16(r + p)) {
            /* void */
        }

        il = get16(r + p);
        put16(out + p, (unsigned) il + 1);
        out[len] = 0;
        put32(out + 96 + 12 * e + 8, s.len + 1);
        return len + 1;

    case 11:                                    /* another embedded id */
        out[8 + rnd() % OMNI_ID_LEN] ^= 0x40;
        return len;

    case 12:                                    /* a cart without date */
        if (find_sect(r, OMNI_SECT_CART, &s) < 0) {
            return 0;
        }

        put32(out + s.off + 2, 0);
        return len;

    default:                                    /* a random byte */
        n = 1 + rnd() % 3;

        while (n--) {
            out[rnd() % len] ^= (unsigned char) (1u << (rnd() % 8));
        }

        return len;
    }
}


/* ---- eligibility: taken means fixed point, fixed point means taken ---- */

typedef struct {
    size_t      records;
    size_t      taken;
    size_t      fixed;
    size_t      unsound;        /* taken, not a fixed point */
    size_t      untaken;        /* a fixed point without NaN, left */
    size_t      identity;       /* taken, but an empty splice differs */
} elig_stat_t;


/*
 * Checks one record: omni_splice_open() against decode + encode, and
 * the splice of no change against the record itself.  nan_free: the
 * record is known to hold no NaN (-1: unknown).
 */
static void
check_record(const unsigned char *r, size_t len, int nan_free,
    elig_stat_t *st, omni_splice_t *s)
{
    int                   taken, fixed;
    size_t                elen, olen;
    omni_rec_t            rec;
    omni_profile_t        p, hdr;
    unsigned char        *enc;
    const unsigned char  *out;

    if (omni_rec_parse(&rec, r, len) != OMNI_OK) {
        return;
    }

    st->records++;

    taken = omni_splice_open(s, &rec);

    if (omni_profile_from_rec(&p, &rec) != OMNI_OK
        || omni_profile_encode(&p, &enc, &elen) != OMNI_OK)
    {
        omni_profile_free(&p);
        st->unsound++;
        return;
    }

    fixed = elen == len && memcmp(enc, r, len) == 0;

    st->taken += taken;
    st->fixed += fixed;

    if (taken && !fixed) {
        if (st->unsound++ < 3) {
            printf("# taken, not a fixed point: %zu bytes, %zu again\n",
                   len, elen);
        }
    }

    if (fixed && !taken && nan_free == 1) {
        if (st->untaken++ < 3) {
            printf("# a fixed point left: %zu bytes\n", len);
        }
    }

    if (taken) {
        omni_splice_header(s, &hdr);

        if (omni_splice_build(s, &hdr, &out, &olen) != OMNI_OK
            || olen != len || memcmp(out, r, len) != 0)
        {
            st->identity++;
        }
    }

    free(enc);
    omni_profile_free(&p);
}


static void
test_eligibility(void)
{
    size_t          len, mlen, n, m, i, j;
    unsigned        flags, kind;
    omni_profile_t  p;
    omni_splice_t   s;
    elig_stat_t     gen, dmg;
    size_t          kinds[NMANGLE];
    char            vhex[OMNI_ID_HEX_LEN + 1], dhex[OMNI_ID_HEX_LEN + 1];
    unsigned char   pid[OMNI_ID_LEN], *enc, *buf;

    rnd_state = 0xe1191b1e5eed0001ULL;
    n = UNDER_VALGRIND() ? 800 : 4000;
    m = UNDER_VALGRIND() ? 8 : 16;

    memset(&gen, 0, sizeof(gen));
    memset(&dmg, 0, sizeof(dmg));
    memset(kinds, 0, sizeof(kinds));
    omni_splice_init(&s);

    for (i = 0; i < n; i++) {
        memset(pid, 0, sizeof(pid));
        memcpy(pid, &i, sizeof(i));
        omni_id_hex(pid, vhex);
        pid[15] = 0xdd;
        omni_id_hex(pid, dhex);
        pid[15] = 0;

        gen_profile(&p, pid, vhex, dhex, rnd() % 5 == 0, &flags);

        if (omni_profile_encode(&p, &enc, &len) != OMNI_OK) {
            omni_profile_free(&p);
            ok(0, "eligibility: encode");
            break;
        }

        omni_profile_free(&p);

        /* whatever the encoder writes without NaN nor odd buckets: taken */
        check_record(enc, len, !(flags & GEN_NAN), &gen, &s);

        if (!(flags & (GEN_NAN | GEN_ODD))) {
            omni_rec_t  rec;

            if (omni_rec_parse(&rec, enc, len) == OMNI_OK
                && !omni_splice_open(&s, &rec) && gen.untaken++ < 3)
            {
                printf("# a plain encoded profile left\n");
            }
        }

        buf = malloc(len + 256);
        if (buf == NULL) {
            free(enc);
            break;
        }

        for (j = 0; j < m; j++) {
            kind = rnd() % NMANGLE;
            mlen = mangle(enc, len, buf, kind);

            if (mlen) {
                kinds[kind]++;
                check_record(buf, mlen, -1, &dmg, &s);
            }
        }

        free(buf);
        free(enc);
    }

    omni_splice_free(&s);

    printf("# generated: %zu records, %zu fixed points, %zu taken\n",
           gen.records, gen.fixed, gen.taken);
    printf("# damaged:   %zu records, %zu fixed points, %zu taken\n",
           dmg.records, dmg.fixed, dmg.taken);

    is_int(gen.unsound + dmg.unsound, 0,
           "eligibility: every record taken is a fixed point");
    is_int(gen.untaken, 0,
           "eligibility: every fixed point without NaN is taken");
    is_int(gen.identity + dmg.identity, 0,
           "eligibility: splicing no change gives the record back");
    ok(gen.taken > gen.records * 3 / 4,
       "eligibility: most generated records taken (%zu of %zu)",
       gen.taken, gen.records);
    ok(gen.taken < gen.records,
       "eligibility: some generated records left (%zu)",
       gen.records - gen.taken);
    ok(dmg.taken > 0 && dmg.taken < dmg.records,
       "eligibility: damaged records taken and left (%zu of %zu)",
       dmg.taken, dmg.records);

    for (kind = 0; kind < NMANGLE; kind++) {
        if (kinds[kind] == 0) {
            printf("# damage %u never applied\n", kind);
            ok(0, "eligibility: damage %u applied", kind);
        }
    }
}


/* ---- two stores, with and without the fast path ---- */

typedef struct {
    char            dir[2][64];
    omni_store_t   *st[2];
    uint32_t        nprof;
} pair_t;


/* Profile i: its id, its visitor's id and its device's id. */
static void
prof_ids(uint32_t i, unsigned char *pid, unsigned char *vid,
    unsigned char *did)
{
    memset(pid, 0, OMNI_ID_LEN);
    pid[0] = 1;
    memcpy(pid + 4, &i, sizeof(i));

    memcpy(vid, pid, OMNI_ID_LEN);
    if (i % 5 == 4) {
        vid[0] = 2;                     /* a visitor linked later */
    }

    memcpy(did, pid, OMNI_ID_LEN);
    did[0] = 3;
}


/*
 * The same random records in both stores (most canonical, a fifth
 * damaged), with the aliases of every profile's visitor and device.
 */
static int
pair_setup(pair_t *pr)
{
    int             rc, linked;
    char            vhex[OMNI_ID_HEX_LEN + 1], dhex[OMNI_ID_HEX_LEN + 1];
    size_t          len, mlen;
    uint32_t        i;
    unsigned        s, flags;
    omni_wtxn_t    *w[2];
    omni_rec_t      rec;
    omni_profile_t  p;
    unsigned char   pid[OMNI_ID_LEN], vid[OMNI_ID_LEN], did[OMNI_ID_LEN];
    unsigned char  *enc, *buf, *r;

    pr->st[0] = store_new(pr->dir[0]);
    pr->st[1] = store_new(pr->dir[1]);

    if (pr->st[0] == NULL || pr->st[1] == NULL
        || omni_store_write_begin(pr->st[0], &w[0]) != OMNI_OK)
    {
        return -1;
    }

    if (omni_store_write_begin(pr->st[1], &w[1]) != OMNI_OK) {
        omni_wtxn_abort(w[0]);
        return -1;
    }

    rc = OMNI_OK;

    for (i = 0; i < pr->nprof && rc == OMNI_OK; i++) {
        prof_ids(i, pid, vid, did);
        omni_id_hex(vid, vhex);
        omni_id_hex(did, dhex);

        gen_profile(&p, pid, vhex, dhex, rnd() % 10 == 0, &flags);
        rc = omni_profile_encode(&p, &enc, &len);
        omni_profile_free(&p);

        if (rc != OMNI_OK) {
            break;
        }

        buf = malloc(len + 256);
        if (buf == NULL) {
            free(enc);
            rc = OMNI_ERROR;
            break;
        }

        r = enc;

        /* damaged, but still a record the full path reads */
        if (rnd() % 10 == 0) {
            mlen = mangle(enc, len, buf, rnd() % NMANGLE);

            if (mlen && omni_rec_parse(&rec, buf, mlen) == OMNI_OK) {
                r = buf;
                len = mlen;
            }
        }

        /* a fifth of the visitors have their own id, half of them no
           alias yet */
        linked = i % 5 != 4 || rnd() % 2 == 0;

        for (s = 0; s < 2 && rc == OMNI_OK; s++) {
            rc = omni_wtxn_put_raw(w[s], pid, r, len);

            if (linked) {
                rc = rc ? rc : omni_wtxn_put_alias(w[s], OMNI_ALIAS_COOKIE,
                                                   vhex, OMNI_ID_HEX_LEN,
                                                   pid);
            }

            rc = rc ? rc : omni_wtxn_put_alias(w[s], OMNI_ALIAS_DEVICE, dhex,
                                               OMNI_ID_HEX_LEN, pid);
        }

        free(buf);
        free(enc);
    }

    if (rc != OMNI_OK) {
        omni_wtxn_abort(w[0]);
        omni_wtxn_abort(w[1]);
        return -1;
    }

    rc = omni_wtxn_commit(w[0]);
    rc = rc ? rc : omni_wtxn_commit(w[1]);

    return rc == OMNI_OK ? 0 : -1;
}


static char  name_max[OMNI_MAX_STR + 1];
static char  name_over[OMNI_MAX_STR + 2];


/*
 * A campaign list: names of the profiles' pool, empty entries,
 * repeats, names exactly OMNI_MAX_STR long and longer (skipped), now and
 * then a NUL (refused or cut by the full path).  Returns its length.
 */
static size_t
rand_campaigns(char *buf, size_t size)
{
    char      name[32];
    size_t    len, n;
    unsigned  k, count;

    len = 0;
    count = 1 + rnd() % 4;

    for (k = 0; k < count; k++) {
        const char  *v;

        switch (rnd() % 16) {
        case 0:
            v = "";
            break;
        case 1:
            v = name_max;
            break;
        case 2:
            v = name_over;
            break;
        case 3:
            v = k ? "camp-1" : "camp-1,camp-1";
            break;
        default:
            campaign_name(name, sizeof(name), rnd() % NCAMP);
            v = name;
        }

        n = strlen(v);
        if (len + n + 2 > size) {
            break;
        }

        if (k) {
            buf[len++] = ',';
        }

        memcpy(buf + len, v, n);
        len += n;
    }

    if (rnd() % 5 == 0 && len + 1 < size) {
        buf[len++] = ',';                       /* a trailing comma */
    }

    if (rnd() % 200 == 0 && len) {
        buf[rnd() % len] = '\0';                /* cut, or refused */
    }

    return len;
}


#define CAMP_BUF  (3 * OMNI_MAX_STR + 64)

/*
 * Random touches: known visitors and devices, hot profiles, visitors
 * and devices never seen, times around the visit timeout and hour
 * boundaries, backwards now and then, near the end of u32, every
 * channel and some that are none; campaigns in half of them.
 */
static void
rand_touches(omni_touch_t *ops, char *camp, size_t n, uint32_t nprof,
    uint32_t *now)
{
    size_t          i;
    uint32_t        r, v;
    unsigned char   pid[OMNI_ID_LEN], vid[OMNI_ID_LEN], did[OMNI_ID_LEN];

    for (i = 0; i < n; i++) {
        omni_touch_t  *t = &ops[i];

        memset(t, 0, sizeof(omni_touch_t));

        r = rnd() % 100;
        v = r < 20 ? rnd() % 8 : rnd() % nprof;
        prof_ids(v, pid, vid, did);

        if (r < 70) {
            t->kind = OMNI_ALIAS_COOKIE;
            memcpy(t->id, vid, OMNI_ID_LEN);

        } else if (r < 85) {
            t->kind = OMNI_ALIAS_DEVICE;
            memcpy(t->id, did, OMNI_ID_LEN);

        } else {
            /* never seen: a first sight, then a known visitor */
            t->kind = r < 95 ? OMNI_ALIAS_COOKIE : OMNI_ALIAS_DEVICE;
            memset(t->id, 0, OMNI_ID_LEN);
            t->id[0] = 4;
            t->id[4] = (unsigned char) (rnd() % 64);
        }

        t->channel = rnd() % (OMNI_CH_MAX + 2);
        t->visit_timeout = rnd() % 4 ? 0 : rnd() % 4000;

        switch (rnd() % 40) {
        case 0:
            t->time = UINT32_MAX - rnd() % 4000;
            break;
        case 1:
            t->time = *now - rnd() % 200000;      /* clock skew */
            break;
        case 2:
            /* before every stored bucket */
            t->time = T0 - 50 * 3600 - rnd() % (100 * 3600);
            break;
        default:
            *now += rnd() % 3 ? rnd() % 120 : rnd() % 4000;
            t->time = *now;
        }

        if (rnd() % 2) {
            t->campaigns = camp + i * CAMP_BUF;
            t->campaigns_len = rand_campaigns(camp + i * CAMP_BUF,
                                              CAMP_BUF);
        }
    }
}


/*
 * Whether pid's record is the same in both transactions; prints where
 * they differ (at most a few times).
 */
static int
same_record(omni_wtxn_t *a, omni_wtxn_t *b, const unsigned char *pid)
{
    int          ra, rb;
    size_t       i;
    omni_rec_t   x, y;
    static int   shown;

    ra = omni_wtxn_get_rec(a, pid, &x);
    rb = omni_wtxn_get_rec(b, pid, &y);

    if (ra != rb) {
        return 0;
    }

    if (ra != OMNI_OK) {
        return 1;
    }

    if (x.len == y.len && memcmp(x.data, y.data, x.len) == 0) {
        return 1;
    }

    for (i = 0; i < x.len && i < y.len && x.data[i] == y.data[i]; i++) {
        /* void */
    }

    if (shown++ < 5) {
        printf("# records differ: %zu and %zu bytes, first at %zu\n",
               x.len, y.len, i);
    }

    return 0;
}


static void
test_stores(void)
{
    int                  ra, rb;
    size_t               n, batch, i, j, len, differ, pids_differ;
    size_t               rounds, failed, single;
    pair_t               pr;
    uint32_t             now;
    omni_wtxn_t         *w[2];
    omni_touch_t        *ops;
    omni_touches_stat_t  sa, sb;
    char                *camp;
    unsigned char        (*pa)[OMNI_ID_LEN], (*pb)[OMNI_ID_LEN];
    static const size_t  sizes[] = { 1, 2, 3, 17, 64, 256, 700 };

    rnd_state = 0x5911ce5eed000002ULL;
    memset(&pr, 0, sizeof(pr));

    memset(name_max, 'M', OMNI_MAX_STR);
    memset(name_over, 'O', OMNI_MAX_STR + 1);

    pr.nprof = UNDER_VALGRIND() ? 600 : 3000;
    n = UNDER_VALGRIND() ? 12000 : 40000;
    batch = 700;

    ops = calloc(batch, sizeof(omni_touch_t));
    camp = malloc(batch * CAMP_BUF);
    pa = calloc(batch, OMNI_ID_LEN);
    pb = calloc(batch, OMNI_ID_LEN);

    if (ops == NULL || camp == NULL || pa == NULL || pb == NULL
        || pair_setup(&pr) != 0)
    {
        ok(0, "stores: setup");
        goto done;
    }

    memset(&sa, 0, sizeof(sa));
    memset(&sb, 0, sizeof(sb));
    differ = pids_differ = rounds = failed = single = 0;

    /* among the stored buckets at first */
    now = T0 - 30 * 3600;

    for (i = 0; i < n; i += len) {
        len = sizes[rnd() % (sizeof(sizes) / sizeof(sizes[0]))];
        if (len > n - i) {
            len = n - i;
        }

        rand_touches(ops, camp, len, pr.nprof, &now);

        /* a campaign list the full path refuses, now and then */
        if (rounds % 10 == 9) {
            j = rnd() % len;
            ops[j].campaigns = "\0x";
            ops[j].campaigns_len = 2;
        }

        if (omni_store_write_begin(pr.st[0], &w[0]) != OMNI_OK
            || omni_store_write_begin(pr.st[1], &w[1]) != OMNI_OK)
        {
            ok(0, "stores: write transactions");
            goto done;
        }

        /* a batch, or one by one as omnictl and the single path do */
        if (rnd() % 5) {
            omni_update_splice = 1;
            ra = omni_apply_touches_stat(w[0], ops, len, pa, &sa);
            omni_update_splice = 0;
            rb = omni_apply_touches_stat(w[1], ops, len, pb, &sb);

        } else {
            single++;
            ra = rb = OMNI_OK;

            for (j = 0; j < len && ra == OMNI_OK && rb == OMNI_OK; j++) {
                omni_update_splice = 1;
                ra = omni_apply_touch(w[0], &ops[j], pa[j]);
                omni_update_splice = 0;
                rb = omni_apply_touch(w[1], &ops[j], pb[j]);
            }
        }

        omni_update_splice = 1;
        rounds++;

        if (ra != OMNI_OK || rb != OMNI_OK) {
            /* a refused campaign name: refused alike */
            if (ra != rb && differ++ < 5) {
                printf("# results differ: %d and %d\n", ra, rb);
            }

            failed++;
            omni_wtxn_abort(w[0]);
            omni_wtxn_abort(w[1]);
            continue;
        }

        for (j = 0; j < len; j++) {
            pids_differ += memcmp(pa[j], pb[j], OMNI_ID_LEN) != 0;
            differ += !same_record(w[0], w[1], pa[j]);
        }

        if (omni_wtxn_commit(w[0]) != OMNI_OK
            || omni_wtxn_commit(w[1]) != OMNI_OK)
        {
            ok(0, "stores: commit");
            goto done;
        }
    }

    printf("# %zu touches in %zu rounds (%zu one by one, %zu refused): "
           "%zu of %zu profiles spliced, %zu touches one by one\n",
           n, rounds, single, failed, sa.spliced, sa.profiles,
           sa.sequential);

    is_int(differ, 0, "stores: every record written alike");
    is_int(pids_differ, 0, "stores: the same profile ids");
    is_int(sb.spliced, 0, "stores: no splice when turned off");
    ok(sa.spliced > sa.profiles / 2,
       "stores: most profiles spliced (%zu of %zu)", sa.spliced,
       sa.profiles);
    ok(sa.spliced < sa.profiles, "stores: some left to the full path");
    ok(failed > 0 && failed < rounds / 4,
       "stores: a few refused batches (%zu)", failed);

    omni_store_close(pr.st[0]);
    omni_store_close(pr.st[1]);
    pr.st[0] = pr.st[1] = NULL;

    ok(db_same(pr.dir[0], pr.dir[1], "profiles", &i),
       "stores: profiles identical (%zu)", i);
    ok(db_same(pr.dir[0], pr.dir[1], "aliases", &i),
       "stores: aliases identical (%zu)", i);

done:

    omni_update_splice = 1;

    if (pr.st[0]) {
        omni_store_close(pr.st[0]);
    }

    if (pr.st[1]) {
        omni_store_close(pr.st[1]);
    }

    if (pr.dir[0][0]) {
        store_remove(pr.dir[0]);
    }

    if (pr.dir[1][0]) {
        store_remove(pr.dir[1]);
    }

    free(ops);
    free(camp);
    free(pa);
    free(pb);
}


int
main(void)
{
    test_eligibility();
    test_stores();

    return done_testing();
}
