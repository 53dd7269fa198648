/*
 * Unit tests: omni_core.c (names, ids) and omni_record.c (the profile
 * record codec): round trip, zero-copy readers, bounds, mutators,
 * forward and backward compatibility against hand-built records, and
 * robustness against truncated and damaged input.
 */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "omni_core.h"
#include "omni_record.h"
#include "omni_tap.h"


#define NOW  1700000000u                    /* 800 s into its hour */


/* ---- a tiny record writer, independent of the encoder under test ---- */

typedef struct {
    unsigned char  d[16384];
    size_t         len;
} tb_t;


static void
tb_u8(tb_t *b, unsigned v)
{
    b->d[b->len++] = (unsigned char) v;
}


static void
tb_u16(tb_t *b, unsigned v)
{
    tb_u8(b, v & 0xff);
    tb_u8(b, (v >> 8) & 0xff);
}


static void
tb_u32(tb_t *b, uint32_t v)
{
    tb_u16(b, v & 0xffff);
    tb_u16(b, v >> 16);
}


static void
tb_f64(tb_t *b, double d)
{
    uint64_t  v;

    memcpy(&v, &d, 8);
    tb_u32(b, (uint32_t) v);
    tb_u32(b, (uint32_t) (v >> 32));
}


static void
tb_str(tb_t *b, const char *s)
{
    tb_u16(b, (unsigned) strlen(s));
    memcpy(b->d + b->len, s, strlen(s));
    b->len += strlen(s);
}


static size_t
tb_item(tb_t *b)
{
    b->len += 2;
    return b->len - 2;
}


static void
tb_end(tb_t *b, size_t at)
{
    size_t  n = b->len - at - 2;

    b->d[at] = n & 0xff;
    b->d[at + 1] = n >> 8;
}


/* Patches a 12-byte section table entry. */
static void
tb_sect(tb_t *b, size_t entry, unsigned type, unsigned count, size_t off,
    size_t len)
{
    size_t  save = b->len;

    b->len = entry;
    tb_u16(b, type);
    tb_u16(b, count);
    tb_u32(b, (uint32_t) off);
    tb_u32(b, (uint32_t) len);
    b->len = save;
}


/*
 * Header of length hlen (>= 24) with minor `minor`: the v1.0 fields are
 * written as far as hlen reaches; beyond 96, filler bytes.
 */
static void
tb_header(tb_t *b, unsigned minor, unsigned hlen, unsigned nsect)
{
    unsigned  i;
    tb_t      h;

    memset(&h, 0, sizeof(h));

    tb_u16(&h, OMNI_REC_MAGIC);
    tb_u8(&h, 1);
    tb_u8(&h, minor);
    tb_u16(&h, hlen);
    tb_u16(&h, nsect);
    for (i = 0; i < 16; i++) {
        tb_u8(&h, 0xa0 + i);
    }

    tb_u32(&h, 1000);               /* created */
    tb_u32(&h, 2000);               /* updated */
    tb_u32(&h, 7);                  /* visits */
    tb_u32(&h, 1990);               /* visit_last */
    tb_u32(&h, OMNI_CONSENT_SET | OMNI_CONSENT_ADS);
    tb_u8(&h, OMNI_STAGE_CART);
    tb_u8(&h, 0);
    tb_u16(&h, 0);

    for (i = 0; i < OMNI_CH_MAX; i++) {
        tb_u32(&h, 100 + i);
    }

    tb_u32(&h, 3);                  /* orders */
    tb_u32(&h, 0);
    tb_f64(&h, 42.25);              /* revenue */

    while (h.len < hlen) {
        tb_u8(&h, 0xee);
    }

    memcpy(b->d + b->len, h.d, hlen);
    b->len += hlen;
}


static int
bytes_is(omni_bytes_t b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.data, s, b.len) == 0;
}


/* ---- a fully populated profile ---- */

static void
fill_profile(omni_profile_t *p)
{
    static const unsigned char  id[OMNI_ID_LEN] = {
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16
    };
    unsigned  i;

    omni_profile_init(p, id);

    p->created = 1600000000;
    p->updated = NOW;
    p->visits = 12;
    p->visit_last = NOW - 5;
    p->consent = OMNI_CONSENT_SET | OMNI_CONSENT_ANALYTICS
                 | OMNI_CONSENT_EMAIL;
    p->stage = OMNI_STAGE_CUSTOMER;

    for (i = 0; i < OMNI_CH_MAX; i++) {
        p->last_seen[i] = NOW - 1000 * i;
    }

    p->orders = 4;
    p->revenue = 1234.5;

    omni_profile_add_alias(p, OMNI_ALIAS_COOKIE,
                           "00112233445566778899aabbccddeeff", 32);
    omni_profile_add_alias(p, OMNI_ALIAS_CUSTOMER, "cust-42", 7);
    omni_profile_add_segment(p, "vip", 3);
    omni_profile_add_segment(p, "newsletter", 10);
    omni_profile_set_attr_str(p, "first_name", "Ana");
    omni_profile_set_attr_num(p, "points", 120);

    p->cart_updated = NOW - 60;
    p->cart = calloc(2, sizeof(omni_cart_item_t));
    p->ncart = 2;
    p->cart[0].sku = strdup("SKU-1");
    p->cart[0].name = strdup("Red shoes");
    p->cart[0].category = strdup("shoes");
    p->cart[0].qty = 2;
    p->cart[0].price = 59.9;
    p->cart[0].url = strdup("/p/sku-1");
    p->cart[0].image = strdup("/img/sku-1.jpg");
    p->cart[1].sku = strdup("SKU-2");
    p->cart[1].name = strdup("Socks");
    p->cart[1].category = strdup("");
    p->cart[1].qty = 1;
    p->cart[1].price = 4.5;
    p->cart[1].url = strdup("");
    p->cart[1].image = strdup("");

    p->purchases = calloc(1, sizeof(omni_purchase_t));
    p->npurchases = 1;
    p->purchases[0].sku = strdup("SKU-9");
    p->purchases[0].order_id = strdup("O-1001");
    p->purchases[0].category = strdup("bags");
    p->purchases[0].channel = OMNI_CH_POS;
    p->purchases[0].time = NOW - 86400;
    p->purchases[0].price = 199.0;
    p->purchases[0].qty = 1;

    omni_profile_add_impression(p, "spring", NOW - 7200);
    omni_profile_add_impression(p, "spring", NOW);
    omni_profile_add_impression(p, "spring", NOW);
    omni_profile_add_impression(p, "welcome", NOW - 3600);

    p->views = calloc(1, sizeof(omni_view_t));
    p->nviews = 1;
    p->views[0].sku = strdup("SKU-3");
    p->views[0].category = strdup("hats");
    p->views[0].time = NOW - 30;
    p->views[0].price = 19.99;

    p->events = calloc(1, sizeof(omni_evcount_t));
    p->nevents = 1;
    p->events[0].name = strdup("Product Reviewed");
    p->events[0].count = 3;
    p->events[0].last = NOW - 10;
}


static int
encode(const omni_profile_t *p, unsigned char **out, size_t *len)
{
    return omni_profile_encode(p, out, len);
}


/*
 * Exercises every reader on a parsed record, then decodes, re-encodes
 * and re-parses it: used on damaged input, where the only requirement is
 * "no crash, no out-of-bounds read" (ASan / valgrind check that) and that
 * whatever decodes encodes into something that parses.
 */
static int
walk(const unsigned char *data, size_t len)
{
    int                   rc;
    size_t                elen;
    unsigned              s, k;
    uint32_t              t, l, w;
    double                num;
    omni_rec_t            rec, rec2;
    omni_bytes_t          item, str;
    unsigned char        *enc;
    omni_profile_t        p;
    omni_rec_iter_t       it;
    omni_rec_fields_t     f;
    omni_rec_purchase_t   pu;
    omni_rec_cart_item_t  ci;

    if (omni_rec_parse(&rec, data, len) != OMNI_OK) {
        return 0;
    }

    for (s = 0; s < OMNI_SECT_MAX + 2; s++) {
        omni_rec_iter_init(&it, &rec, s);

        while (omni_rec_iter_next(&it, &item)) {
            omni_rec_fields_init(&f, item);

            for (k = 0; k < 4; k++) {
                (void) omni_rec_get_str(&f);
                (void) omni_rec_get_u8(&f);
                (void) omni_rec_get_u16(&f);
                (void) omni_rec_get_u32(&f);
                (void) omni_rec_get_f64(&f);
            }
        }
    }

    (void) omni_rec_has_segment(&rec, "vip", 3);
    (void) omni_rec_get_attr(&rec, "points", 6, &str, &num);
    (void) omni_rec_get_attr(&rec, "first_name", 10, &str, &num);
    (void) omni_rec_cart_updated(&rec);

    omni_rec_cart_init(&it, &rec);
    while (omni_rec_cart_next(&it, &ci)) {
        /* read only */
    }

    omni_rec_iter_init(&it, &rec, OMNI_SECT_PURCHASES);
    while (omni_rec_purchase_next(&it, &pu)) {
        /* read only */
    }

    (void) omni_rec_impressions(&rec, "spring", 6, NOW, 86400, &t, &l, &w);

    if (omni_profile_from_rec(&p, &rec) != OMNI_OK) {
        return -1;
    }

    rc = omni_profile_encode(&p, &enc, &elen);
    omni_profile_free(&p);

    if (rc != OMNI_OK) {
        return -1;
    }

    rc = omni_rec_parse(&rec2, enc, elen);
    free(enc);

    return rc == OMNI_OK ? 1 : -1;
}


/* Deterministic PRNG (xorshift32) for the damage loops. */
static uint32_t
rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}


/*
 * omni_id_random() serves ids from a per-thread buffer: 1,000 ids in a
 * row are all distinct, and a forked child (an nginx worker forked by
 * its master after the master drew one id) never hands out the ids its
 * parent will.
 */
static int
test_id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, OMNI_ID_LEN);
}


static void
test_random_ids(void)
{
    int            fd[2], status, dup = 0;
    pid_t          pid;
    unsigned       i;
    unsigned char  ids[1000][OMNI_ID_LEN], child[8][OMNI_ID_LEN];
    unsigned char  mine[8][OMNI_ID_LEN];

    for (i = 0; i < 1000; i++) {
        if (omni_id_random(ids[i]) != OMNI_OK) {
            break;
        }
    }

    qsort(ids, i, OMNI_ID_LEN, test_id_cmp);

    for (i = 1; i < 1000; i++) {
        dup += memcmp(ids[i - 1], ids[i], OMNI_ID_LEN) == 0;
    }

    ok(dup == 0, "1,000 random ids, all distinct");

    /* the parent has drawn part of a buffer: fork, both draw 8 */
    (void) omni_id_random(ids[0]);

    if (pipe(fd) != 0) {
        ok(0, "pipe");
        return;
    }

    pid = fork();

    if (pid == 0) {
        for (i = 0; i < 8; i++) {
            (void) omni_id_random(child[i]);
        }

        _exit(write(fd[1], child, sizeof(child)) == sizeof(child) ? 0 : 1);
    }

    for (i = 0; i < 8; i++) {
        (void) omni_id_random(mine[i]);
    }

    ok(read(fd[0], child, sizeof(child)) == sizeof(child)
       && waitpid(pid, &status, 0) == pid && status == 0,
       "the child's ids read");

    dup = 0;

    for (i = 0; i < 64; i++) {
        dup += memcmp(mine[i / 8], child[i % 8], OMNI_ID_LEN) == 0;
    }

    ok(dup == 0, "a forked child draws none of its parent's ids");

    close(fd[0]);
    close(fd[1]);
}



static void
test_core(void)
{
    char           hex[OMNI_ID_HEX_LEN + 1];
    unsigned char  id[OMNI_ID_LEN], id2[OMNI_ID_LEN];

    is_str(omni_channel_name(OMNI_CH_WEB), "web", "channel 0 is web");
    is_str(omni_channel_name(OMNI_CH_OTHER), "other", "channel 7 is other");
    ok(omni_channel_name(OMNI_CH_MAX) == NULL, "no channel 8");
    is_int(omni_channel_parse("pos", 3), OMNI_CH_POS, "parse pos");
    is_int(omni_channel_parse("posx", 3), OMNI_CH_POS, "parse counted");
    is_int(omni_channel_parse("Web", 3), -1, "names are case-sensitive");
    is_str(omni_stage_name(OMNI_STAGE_LOYAL), "loyal", "stage 4 is loyal");
    ok(omni_stage_name(OMNI_STAGE_MAX) == NULL, "no stage 5");
    is_int(omni_stage_parse("cart", 4), OMNI_STAGE_CART, "parse cart");
    is_int(omni_stage_parse("", 0), -1, "empty stage");

    ok(omni_id_parse("00112233445566778899AABBCCDDEEFF", 32, id) == OMNI_OK,
       "32 upper-case hex digits parse");
    omni_id_hex(id, hex);
    is_str(hex, "00112233445566778899aabbccddeeff", "hex is lower-case");

    ok(omni_id_parse("00112233-4455-6677-8899-aabbccddeeff", 36, id2)
       == OMNI_OK && memcmp(id, id2, OMNI_ID_LEN) == 0, "UUID form parses");
    ok(omni_id_parse("0011223-34455-6677-8899-aabbccddeeff", 36, id2)
       == OMNI_INVALID, "misplaced dash refused");
    ok(omni_id_parse("00112233445566778899aabbccddeefg", 32, id2)
       == OMNI_INVALID, "non-hex refused");
    ok(omni_id_parse("00112233445566778899aabbccddeef", 31, id2)
       == OMNI_INVALID, "31 digits refused");
    ok(omni_id_parse("{0112233-4455-6677-8899-aabbccddeeff}", 38, id2)
       == OMNI_INVALID, "braces refused");

    ok(omni_id_random(id) == OMNI_OK && omni_id_random(id2) == OMNI_OK
       && memcmp(id, id2, OMNI_ID_LEN) != 0, "random ids differ");

    test_random_ids();
}


static void
test_round_trip(void)
{
    int                   n;
    size_t                len, len2;
    double                num;
    omni_rec_t            rec;
    omni_bytes_t          str;
    unsigned char        *buf, *buf2;
    omni_profile_t        p, q;
    omni_rec_iter_t       it;
    omni_rec_purchase_t   pu;
    omni_rec_cart_item_t  ci;
    char                  hex[OMNI_ID_HEX_LEN + 1];

    fill_profile(&p);

    ok(encode(&p, &buf, &len) == OMNI_OK, "encode a full profile");
    ok(omni_rec_parse(&rec, buf, len) == OMNI_OK, "it parses");

    is_int(buf[0] | buf[1] << 8, OMNI_REC_MAGIC, "magic");
    is_int(buf[2], 1, "major 1");
    is_int(buf[4] | buf[5] << 8, 96, "header length 96");
    is_int(buf[6] | buf[7] << 8, 8, "eight sections");

    omni_id_hex(rec.id, hex);
    is_str(hex, "0102030405060708090a0b0c0d0e0f10", "id");
    is_int(rec.created, 1600000000, "created");
    is_int(rec.updated, NOW, "updated");
    is_int(rec.visits, 12, "visits");
    is_int(rec.visit_last, NOW - 5, "visit_last");
    is_int(rec.consent, OMNI_CONSENT_SET | OMNI_CONSENT_ANALYTICS
           | OMNI_CONSENT_EMAIL, "consent");
    is_int(rec.stage, OMNI_STAGE_CUSTOMER, "stage");
    is_int(rec.last_seen[OMNI_CH_WEB], NOW, "last_seen web");
    is_int(rec.last_seen[OMNI_CH_OTHER], NOW - 7000, "last_seen other");
    is_int(rec.orders, 4, "orders");
    ok(rec.revenue == 1234.5, "revenue");
    is_int(rec.count[OMNI_SECT_CART], 3, "cart count includes header");

    /* zero-copy lookups */
    ok(omni_rec_has_segment(&rec, "vip", 3), "has segment vip");
    ok(omni_rec_has_segment(&rec, "newsletter", 10), "has newsletter");
    ok(!omni_rec_has_segment(&rec, "vi", 2), "no prefix match");
    is_int(omni_rec_get_attr(&rec, "first_name", 10, &str, &num),
           OMNI_ATTR_STR, "first_name is a string");
    ok(bytes_is(str, "Ana"), "first_name = Ana");
    is_int(omni_rec_get_attr(&rec, "points", 6, &str, &num), OMNI_ATTR_NUM,
           "points is a number");
    ok(num == 120, "points = 120");
    is_int(omni_rec_get_attr(&rec, "nope", 4, &str, &num), 0,
           "absent attribute");

    is_int(omni_rec_cart_updated(&rec), NOW - 60, "cart header");
    omni_rec_cart_init(&it, &rec);
    ok(omni_rec_cart_next(&it, &ci) && bytes_is(ci.sku, "SKU-1")
       && bytes_is(ci.name, "Red shoes") && bytes_is(ci.category, "shoes")
       && ci.qty == 2 && ci.price == 59.9 && bytes_is(ci.url, "/p/sku-1")
       && bytes_is(ci.image, "/img/sku-1.jpg"), "cart line 1, every field");
    ok(omni_rec_cart_next(&it, &ci) && bytes_is(ci.sku, "SKU-2")
       && ci.qty == 1 && ci.price == 4.5 && ci.category.len == 0,
       "cart line 2");
    ok(!omni_rec_cart_next(&it, &ci), "two cart lines");

    omni_rec_iter_init(&it, &rec, OMNI_SECT_PURCHASES);
    n = 0;
    while (omni_rec_purchase_next(&it, &pu)) {
        n++;
        ok(bytes_is(pu.sku, "SKU-9") && bytes_is(pu.order_id, "O-1001")
           && bytes_is(pu.category, "bags") && pu.channel == OMNI_CH_POS
           && pu.time == NOW - 86400 && pu.price == 199.0 && pu.qty == 1,
           "purchase, every field");
    }
    is_int(n, 1, "one purchase");

    /* decode, compare, re-encode */
    ok(omni_profile_from_rec(&q, &rec) == OMNI_OK, "decode");
    ok(memcmp(q.id, p.id, OMNI_ID_LEN) == 0 && q.created == p.created
       && q.updated == p.updated && q.visits == p.visits
       && q.visit_last == p.visit_last && q.consent == p.consent
       && q.stage == p.stage && q.orders == p.orders
       && q.revenue == p.revenue
       && memcmp(q.last_seen, p.last_seen, sizeof(p.last_seen)) == 0,
       "fixed fields survive");
    ok(q.naliases == 2 && q.aliases[0].kind == OMNI_ALIAS_COOKIE
       && strcmp(q.aliases[1].value, "cust-42") == 0
       && q.aliases[1].kind == OMNI_ALIAS_CUSTOMER, "aliases survive");
    ok(q.nsegments == 2 && strcmp(q.segments[1], "newsletter") == 0,
       "segments survive");
    ok(q.nattrs == 2 && q.attrs[0].type == OMNI_ATTR_STR
       && strcmp(q.attrs[0].str, "Ana") == 0
       && q.attrs[1].type == OMNI_ATTR_NUM && q.attrs[1].num == 120,
       "attributes survive");
    ok(q.cart_updated == NOW - 60 && q.ncart == 2
       && strcmp(q.cart[0].image, "/img/sku-1.jpg") == 0,
       "cart survives");
    ok(q.npurchases == 1 && strcmp(q.purchases[0].order_id, "O-1001") == 0,
       "purchases survive");
    ok(q.nimpressions == 2 && strcmp(q.impressions[0].campaign, "spring")
       == 0 && q.impressions[0].total == 3 && q.impressions[0].last == NOW
       && q.impressions[0].nbuckets == 2
       && q.impressions[0].buckets[0].hour == (NOW - 7200) / 3600
       && q.impressions[0].buckets[1].count == 2, "impressions survive");
    ok(q.nviews == 1 && q.views[0].price == 19.99
       && strcmp(q.views[0].category, "hats") == 0, "views survive");
    ok(q.nevents == 1 && q.events[0].count == 3
       && strcmp(q.events[0].name, "Product Reviewed") == 0,
       "events survive");

    ok(encode(&q, &buf2, &len2) == OMNI_OK && len2 == len
       && memcmp(buf, buf2, len) == 0, "re-encoding gives the same bytes");
    free(buf2);

    ok(encode(&p, &buf2, &len2) == OMNI_OK && len2 == len
       && memcmp(buf, buf2, len) == 0, "encoding is deterministic");
    free(buf2);

    omni_profile_free(&q);

    /* empty cart with a header only; an empty profile */
    omni_profile_free(&p);
    omni_profile_init(&p, NULL);
    free(buf);
    ok(encode(&p, &buf, &len) == OMNI_OK && len == 96,
       "an empty profile is a bare 96-byte header");
    free(buf);

    p.cart_updated = 5;
    encode(&p, &buf, &len);
    omni_rec_parse(&rec, buf, len);
    omni_rec_cart_init(&it, &rec);
    ok(omni_rec_cart_updated(&rec) == 5 && !omni_rec_cart_next(&it, &ci),
       "emptied cart keeps its header");
    free(buf);
}


static void
test_impressions(void)
{
    size_t          len;
    unsigned        i;
    uint32_t        total, last, win;
    omni_rec_t      rec;
    unsigned char  *buf;
    omni_profile_t  p;

    omni_profile_init(&p, NULL);

    for (i = 0; i < 3; i++) {
        omni_profile_add_impression(&p, "c", NOW);
    }

    omni_profile_add_impression(&p, "c", NOW - 3600);
    omni_profile_add_impression(&p, "c", NOW - 3601);
    omni_profile_add_impression(&p, "c", NOW - 7200);

    for (i = 0; i < 4; i++) {
        omni_profile_add_impression(&p, "c", NOW - 2 * 86400);
    }

    is_int(p.impressions[0].nbuckets, 4, "one bucket per hour");
    is_int(p.impressions[0].buckets[0].hour, (NOW - 2 * 86400) / 3600,
           "buckets sorted oldest first");

    encode(&p, &buf, &len);
    omni_rec_parse(&rec, buf, len);

    is_int(omni_rec_impressions(&rec, "c", 1, NOW, 3600, &total, &last,
                                &win), OMNI_OK, "campaign found");
    is_int(total, 10, "total");
    is_int(last, NOW, "last");
    is_int(win, 3, "1h window: the current hour's bucket");
    omni_rec_impressions(&rec, "c", 1, NOW, 7200, NULL, NULL, &win);
    is_int(win, 5, "2h window: two buckets");
    omni_rec_impressions(&rec, "c", 1, NOW, 86400, NULL, NULL, &win);
    is_int(win, 6, "1d window: three buckets");
    omni_rec_impressions(&rec, "c", 1, NOW, 3 * 86400, NULL, NULL, &win);
    is_int(win, 10, "3d window: all buckets");
    omni_rec_impressions(&rec, "c", 1, NOW, 0, NULL, NULL, &win);
    is_int(win, 0, "empty window");
    omni_rec_impressions(&rec, "c", 1, 100, 200, NULL, NULL, &win);
    is_int(win, 10, "window longer than now counts everything");
    is_int(omni_rec_impressions(&rec, "d", 1, NOW, 3600, &total, &last,
                                &win), OMNI_NOTFOUND, "unknown campaign");
    ok(total == 0 && last == 0 && win == 0, "... reads as zero");
    free(buf);

    /* bucket bound: 20 hours in, the newest 16 stay */
    omni_profile_free(&p);
    for (i = 0; i < 20; i++) {
        omni_profile_add_impression(&p, "c", NOW + 3600 * i);
    }

    ok(p.impressions[0].nbuckets == OMNI_MAX_BUCKETS
       && p.impressions[0].buckets[0].hour == NOW / 3600 + 4
       && p.impressions[0].buckets[15].hour == NOW / 3600 + 19
       && p.impressions[0].total == 20, "16 newest buckets kept");

    /* an impression older than every kept bucket only counts in total */
    omni_profile_add_impression(&p, "c", NOW);
    ok(p.impressions[0].buckets[0].hour == NOW / 3600 + 4
       && p.impressions[0].total == 21
       && p.impressions[0].last == NOW + 3600 * 19,
       "late impression: total yes, bucket no, last unchanged");

    /* campaign bound: the least recently shown campaign makes room */
    omni_profile_free(&p);
    for (i = 0; i < OMNI_MAX_IMPRESSIONS + 6; i++) {
        char  name[16];

        snprintf(name, sizeof(name), "k%u", i);
        omni_profile_add_impression(&p, name, NOW + i);
    }

    ok(p.nimpressions == OMNI_MAX_IMPRESSIONS
       && strcmp(p.impressions[0].campaign, "k6") == 0,
       "64 campaigns, least recent evicted");
    omni_profile_free(&p);
}


static void
test_bounds(void)
{
    int                  ok_order;
    char                 name[32];
    size_t               len;
    unsigned             i, n, min;
    omni_rec_t           rec;
    omni_bytes_t         item;
    unsigned char       *buf;
    omni_profile_t       p, q;
    omni_rec_iter_t      it;
    omni_rec_fields_t    f;
    omni_rec_purchase_t  pu;
    char                 big[2100];

    omni_profile_init(&p, NULL);

    /* purchases: 150, times a permutation of 1000..1149 */
    p.npurchases = 150;
    p.purchases = calloc(150, sizeof(omni_purchase_t));
    for (i = 0; i < 150; i++) {
        p.purchases[i].time = 1000 + (i * 37) % 150;
    }

    /* views and events: oldest first in time */
    p.nviews = 25;
    p.views = calloc(25, sizeof(omni_view_t));
    for (i = 0; i < 25; i++) {
        p.views[i].time = 500 + i;
    }

    p.nevents = 40;
    p.events = calloc(40, sizeof(omni_evcount_t));
    for (i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "e%u", i);
        p.events[i].name = strdup(name);
        p.events[i].last = 40 - i;          /* the first ones are newest */
    }

    p.ncart = 60;
    p.cart = calloc(60, sizeof(omni_cart_item_t));
    for (i = 0; i < 60; i++) {
        snprintf(name, sizeof(name), "sku%u", i);
        p.cart[i].sku = strdup(name);
    }

    p.nimpressions = 70;
    p.impressions = calloc(70, sizeof(omni_impr_t));
    for (i = 0; i < 70; i++) {
        snprintf(name, sizeof(name), "k%u", i);
        p.impressions[i].campaign = strdup(name);
        p.impressions[i].last = (i % 2) ? 100 + i : 1000 + i;
    }

    for (i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "alias%u", i);
        omni_profile_add_alias(&p, OMNI_ALIAS_CUSTOMER, name, strlen(name));
    }

    for (i = 0; i < 70; i++) {
        snprintf(name, sizeof(name), "seg%u", i);
        omni_profile_add_segment(&p, name, strlen(name));
        omni_profile_set_attr_num(&p, name, i);
    }

    is_int(p.naliases, OMNI_MAX_ALIASES, "mutator bounds aliases");
    ok(strcmp(p.aliases[0].value, "alias8") == 0, "... oldest dropped");
    is_int(p.nsegments, OMNI_MAX_SEGMENTS, "mutator bounds segments");
    ok(strcmp(p.segments[0], "seg6") == 0, "... oldest dropped");
    is_int(p.nattrs, OMNI_MAX_ATTRS, "mutator bounds attributes");

    ok(encode(&p, &buf, &len) == OMNI_OK, "encode an over-full profile");
    ok(omni_rec_parse(&rec, buf, len) == OMNI_OK, "... parses");

    /* purchases: the 100 newest, in their original order */
    omni_rec_iter_init(&it, &rec, OMNI_SECT_PURCHASES);
    n = 0;
    min = UINT32_MAX;
    ok_order = 1;
    i = 0;
    while (omni_rec_purchase_next(&it, &pu)) {
        while (i < 150 && p.purchases[i].time < 1050) {
            i++;
        }

        if (i >= 150 || p.purchases[i].time != pu.time) {
            ok_order = 0;
        }

        i++;
        n++;
        min = pu.time < min ? pu.time : min;
    }

    is_int(n, OMNI_MAX_PURCHASES, "100 purchases kept");
    is_int(min, 1050, "the 50 oldest dropped");
    ok(ok_order, "kept purchases stay in order");

    omni_rec_iter_init(&it, &rec, OMNI_SECT_VIEWS);
    omni_rec_iter_next(&it, &item);
    omni_rec_fields_init(&f, item);
    omni_rec_get_str(&f);
    omni_rec_get_str(&f);
    is_int(omni_rec_get_u32(&f), 505, "views: the 5 oldest dropped");
    is_int(rec.count[OMNI_SECT_VIEWS], OMNI_MAX_VIEWS, "20 views kept");

    ok(omni_profile_from_rec(&q, &rec) == OMNI_OK, "decode bounded record");
    is_int(q.nevents, OMNI_MAX_EVENTS, "32 events kept");
    ok(strcmp(q.events[0].name, "e0") == 0
       && strcmp(q.events[31].name, "e31") == 0,
       "events: least recently updated dropped");
    is_int(q.ncart, OMNI_MAX_CART, "50 cart lines kept");
    ok(strcmp(q.cart[0].sku, "sku10") == 0, "cart: oldest lines dropped");
    is_int(q.nimpressions, OMNI_MAX_IMPRESSIONS, "64 campaigns kept");

    n = 0;
    for (i = 0; i < q.nimpressions; i++) {
        n += q.impressions[i].last < 100 + 12;
    }
    is_int(n, 0, "impressions: least recently shown dropped");

    omni_profile_free(&q);
    free(buf);

    /* long strings: the mutators refuse, the encoder cuts */
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';

    is_int(omni_profile_add_segment(&p, big, OMNI_MAX_STR + 1),
           OMNI_INVALID, "segment over 1024 bytes refused");
    is_int(omni_profile_add_alias(&p, OMNI_ALIAS_CUSTOMER, big,
                                  OMNI_ALIAS_MAX_LEN + 1),
           OMNI_INVALID, "alias over 128 bytes refused");
    is_int(omni_profile_add_alias(&p, OMNI_ALIAS_CUSTOMER, "a\0b", 3),
           OMNI_INVALID, "alias with a NUL refused");
    is_int(omni_profile_set_attr_num(&p, "x", NAN), OMNI_INVALID,
           "NaN attribute refused");
    is_int(omni_profile_set_attr_str(&p, "x", big), OMNI_INVALID,
           "attribute value over 1024 bytes refused");

    omni_profile_free(&p);
    omni_profile_init(&p, NULL);

    /* 1023 x, then U+00E9 across the 1024 cut, then more */
    memcpy(big + 1023, "\xc3\xa9", 2);
    p.nsegments = 2;
    p.segments = calloc(2, sizeof(char *));
    p.segments[0] = strdup(big);
    memcpy(big + 1023, "yz", 2);
    p.segments[1] = strdup(big);

    encode(&p, &buf, &len);
    omni_rec_parse(&rec, buf, len);
    omni_rec_iter_init(&it, &rec, OMNI_SECT_SEGMENTS);
    omni_rec_iter_next(&it, &item);
    omni_rec_fields_init(&f, item);
    is_int(omni_rec_get_str(&f).len, 1023,
           "cut backs off to a UTF-8 boundary");
    omni_rec_iter_next(&it, &item);
    omni_rec_fields_init(&f, item);
    is_int(omni_rec_get_str(&f).len, OMNI_MAX_STR, "ASCII cut at 1024");

    free(buf);
    omni_profile_free(&p);
}


static void
test_mutators(void)
{
    omni_profile_t  p;

    omni_profile_init(&p, NULL);

    omni_profile_add_alias(&p, OMNI_ALIAS_EMAIL, "abc", 3);
    omni_profile_add_alias(&p, OMNI_ALIAS_EMAIL, "abc", 3);
    omni_profile_add_alias(&p, OMNI_ALIAS_CUSTOMER, "abc", 3);
    is_int(p.naliases, 2, "alias add is idempotent, kind matters");
    is_int(omni_profile_del_alias(&p, OMNI_ALIAS_EMAIL, "abc", 3), OMNI_OK,
           "delete an alias");
    is_int(omni_profile_del_alias(&p, OMNI_ALIAS_EMAIL, "abc", 3),
           OMNI_NOTFOUND, "delete it again: not found");
    ok(p.naliases == 1 && p.aliases[0].kind == OMNI_ALIAS_CUSTOMER,
       "the other alias stays");

    omni_profile_add_segment(&p, "vip", 3);
    omni_profile_add_segment(&p, "vipx", 3);
    omni_profile_add_segment(&p, "vip", 3);
    is_int(p.nsegments, 1, "segment add is idempotent (counted name)");
    is_int(omni_profile_add_segment(&p, "", 0), OMNI_INVALID,
           "empty segment refused");

    omni_profile_set_attr_str(&p, "tier", "gold");
    omni_profile_set_attr_str(&p, "tier", "platinum");
    ok(p.nattrs == 1 && strcmp(p.attrs[0].str, "platinum") == 0,
       "set_attr replaces the value");
    omni_profile_set_attr_num(&p, "tier", 3);
    ok(p.nattrs == 1 && p.attrs[0].type == OMNI_ATTR_NUM
       && p.attrs[0].num == 3 && p.attrs[0].str == NULL,
       "... and the type");

    omni_profile_add_impression(&p, "c", NOW);
    omni_profile_add_impression(&p, "c", NOW + 1);
    ok(p.impressions[0].nbuckets == 1
       && p.impressions[0].buckets[0].count == 2,
       "same hour: newest bucket incremented");
    omni_profile_add_impression(&p, "c", NOW + 3600);
    ok(p.impressions[0].nbuckets == 2
       && p.impressions[0].buckets[1].hour == NOW / 3600 + 1
       && p.impressions[0].total == 3
       && p.impressions[0].last == NOW + 3600, "next hour: new bucket");

    omni_profile_free(&p);
    omni_profile_free(&p);
    ok(p.naliases == 0 && p.aliases == NULL, "free twice is harmless");
}


static void
test_forward_compat(void)
{
    size_t                at, tbl, s0, e;
    omni_rec_t            rec;
    omni_profile_t        p;
    omni_rec_iter_t       it;
    omni_rec_purchase_t   pu;
    omni_rec_cart_item_t  ci;
    tb_t                  b;

    memset(&b, 0, sizeof(b));

    /* minor 5, a 120-byte header, four sections in no particular order */
    tb_header(&b, 5, 120, 4);
    tbl = b.len;
    b.len += 4 * 12;

    /* an unknown section 42 */
    s0 = b.len;
    tb_str(&b, "from the future");
    tb_u32(&b, 0xdeadbeef);
    tb_sect(&b, tbl, 42, 1, s0, b.len - s0);

    /* cart: a header with an extra field, lines with extra fields */
    s0 = b.len;
    at = tb_item(&b);
    tb_u32(&b, 555);
    tb_u32(&b, 0x12345678);
    tb_end(&b, at);

    at = tb_item(&b);
    tb_str(&b, "A1");
    tb_str(&b, "Alpha");
    tb_str(&b, "cat");
    tb_u32(&b, 3);
    tb_f64(&b, 2.5);
    tb_str(&b, "/a1");
    tb_str(&b, "/a1.png");
    tb_str(&b, "gift-wrap");            /* added by minor 3, say */
    tb_u32(&b, 77);
    tb_end(&b, at);

    at = tb_item(&b);
    tb_str(&b, "B2");
    tb_str(&b, "Beta");
    tb_str(&b, "");
    tb_u32(&b, 1);
    tb_f64(&b, 10);
    tb_str(&b, "");
    tb_str(&b, "");
    tb_f64(&b, 99.0);
    tb_end(&b, at);
    tb_sect(&b, tbl + 24, OMNI_SECT_CART, 3, s0, b.len - s0);

    /* purchases after the cart in the file, before it in the table */
    s0 = b.len;
    at = tb_item(&b);
    tb_str(&b, "P1");
    tb_str(&b, "O1");
    tb_u8(&b, OMNI_CH_APP);
    tb_u32(&b, 4242);
    tb_str(&b, "c");
    tb_f64(&b, 7.5);
    tb_u32(&b, 2);
    tb_str(&b, "coupon");
    tb_end(&b, at);
    tb_sect(&b, tbl + 12, OMNI_SECT_PURCHASES, 1, s0, b.len - s0);

    s0 = b.len;
    at = tb_item(&b);
    tb_str(&b, "vip");
    tb_u8(&b, 9);
    tb_end(&b, at);
    tb_sect(&b, tbl + 36, OMNI_SECT_SEGMENTS, 1, s0, b.len - s0);

    e = b.len;

    ok(omni_rec_parse(&rec, b.d, e) == OMNI_OK,
       "minor 5, 120-byte header, section 42: parses");
    is_int(rec.minor, 5, "minor reported");
    ok(rec.visits == 7 && rec.stage == OMNI_STAGE_CART
       && rec.last_seen[OMNI_CH_OTHER] == 107 && rec.orders == 3
       && rec.revenue == 42.25, "known header fields read past extras");
    is_int(omni_rec_cart_updated(&rec), 555, "cart header read");

    omni_rec_cart_init(&it, &rec);
    ok(omni_rec_cart_next(&it, &ci) && bytes_is(ci.sku, "A1")
       && bytes_is(ci.name, "Alpha") && ci.qty == 3 && ci.price == 2.5
       && bytes_is(ci.image, "/a1.png"), "cart line with extra fields");
    ok(omni_rec_cart_next(&it, &ci) && bytes_is(ci.sku, "B2")
       && ci.price == 10, "next line framed correctly");
    ok(!omni_rec_cart_next(&it, &ci), "two lines");

    omni_rec_iter_init(&it, &rec, OMNI_SECT_PURCHASES);
    ok(omni_rec_purchase_next(&it, &pu) && pu.channel == OMNI_CH_APP
       && pu.time == 4242 && pu.qty == 2 && pu.price == 7.5,
       "purchase with an extra field");
    ok(omni_rec_has_segment(&rec, "vip", 3), "segment with an extra field");

    ok(omni_profile_from_rec(&p, &rec) == OMNI_OK && p.ncart == 2
       && p.cart_updated == 555 && p.npurchases == 1 && p.nsegments == 1,
       "decodes, unknown parts ignored");
    omni_profile_free(&p);

    /* the same known section twice is damage */
    tb_sect(&b, tbl, OMNI_SECT_PURCHASES, 1, s0, e - s0);
    ok(omni_rec_parse(&rec, b.d, e) == OMNI_INVALID,
       "a repeated section is refused");
}


static void
test_backward_compat(void)
{
    size_t                at, tbl, s0;
    double                num;
    uint32_t              total, last, win;
    omni_rec_t            rec;
    omni_bytes_t          str;
    omni_profile_t        p;
    omni_rec_iter_t       it;
    omni_rec_purchase_t   pu;
    omni_rec_cart_item_t  ci;
    tb_t                  b;

    memset(&b, 0, sizeof(b));

    /* an older writer: a 48-byte header, items shorter than today's */
    tb_header(&b, 0, 48, 4);
    tbl = b.len;
    b.len += 4 * 12;

    s0 = b.len;
    at = tb_item(&b);               /* an empty cart header */
    tb_end(&b, at);
    at = tb_item(&b);
    tb_str(&b, "OLD");
    tb_str(&b, "Old thing");
    tb_end(&b, at);
    tb_sect(&b, tbl, OMNI_SECT_CART, 2, s0, b.len - s0);

    s0 = b.len;
    at = tb_item(&b);
    tb_str(&b, "P");
    tb_str(&b, "O");
    tb_end(&b, at);
    tb_sect(&b, tbl + 12, OMNI_SECT_PURCHASES, 1, s0, b.len - s0);

    s0 = b.len;
    at = tb_item(&b);
    tb_str(&b, "spring");
    tb_u32(&b, 9);
    tb_end(&b, at);
    tb_sect(&b, tbl + 24, OMNI_SECT_IMPRESSIONS, 1, s0, b.len - s0);

    s0 = b.len;
    at = tb_item(&b);
    tb_str(&b, "tier");
    tb_end(&b, at);
    tb_sect(&b, tbl + 36, OMNI_SECT_ATTRS, 1, s0, b.len - s0);

    ok(omni_rec_parse(&rec, b.d, b.len) == OMNI_OK, "48-byte header parses");
    ok(rec.visits == 7 && rec.consent == (OMNI_CONSENT_SET
       | OMNI_CONSENT_ADS) && rec.stage == OMNI_STAGE_CART,
       "fields inside the short header read");
    ok(rec.last_seen[0] == 0 && rec.last_seen[7] == 0 && rec.orders == 0
       && rec.revenue == 0, "fields past the short header read as zero");
    is_int(omni_rec_cart_updated(&rec), 0, "empty cart header reads 0");

    omni_rec_cart_init(&it, &rec);
    ok(omni_rec_cart_next(&it, &ci) && bytes_is(ci.sku, "OLD")
       && bytes_is(ci.name, "Old thing") && ci.category.len == 0
       && ci.qty == 0 && ci.price == 0 && ci.url.len == 0
       && ci.image.len == 0, "short cart line: missing fields zero");

    omni_rec_iter_init(&it, &rec, OMNI_SECT_PURCHASES);
    ok(omni_rec_purchase_next(&it, &pu) && bytes_is(pu.order_id, "O")
       && pu.channel == 0 && pu.time == 0 && pu.category.len == 0
       && pu.price == 0 && pu.qty == 0, "short purchase: missing zero");

    ok(omni_rec_impressions(&rec, "spring", 6, NOW, 3600, &total, &last,
                            &win) == OMNI_OK
       && total == 9 && last == 0 && win == 0,
       "short impression: no buckets");
    is_int(omni_rec_get_attr(&rec, "tier", 4, &str, &num), 0,
           "attribute without a type reads as absent");

    ok(omni_profile_from_rec(&p, &rec) == OMNI_OK && p.ncart == 1
       && p.cart[0].qty == 0 && strcmp(p.cart[0].url, "") == 0
       && p.nattrs == 0 && p.nimpressions == 1, "short record decodes");
    omni_profile_free(&p);

    /* the shortest header allowed: magic .. id */
    memset(&b, 0, sizeof(b));
    tb_header(&b, 0, 24, 0);
    ok(omni_rec_parse(&rec, b.d, b.len) == OMNI_OK && rec.created == 0
       && rec.id[0] == 0xa0, "24-byte header parses, rest zero");
    b.d[4] = 23;
    ok(omni_rec_parse(&rec, b.d, b.len) == OMNI_INVALID,
       "23-byte header refused");
}


static void
test_damage(void)
{
    int             rc, bad, parsed;
    size_t          len, i;
    uint32_t        seed;
    unsigned        k, pos;
    omni_rec_t      rec;
    unsigned char  *buf, *copy;
    omni_profile_t  p;

    fill_profile(&p);
    encode(&p, &buf, &len);
    omni_profile_free(&p);

    copy = malloc(len);

    memcpy(copy, buf, len);
    copy[0] ^= 1;
    is_int(omni_rec_parse(&rec, copy, len), OMNI_INVALID, "bad magic");

    memcpy(copy, buf, len);
    copy[2] = 2;
    is_int(omni_rec_parse(&rec, copy, len), OMNI_INVALID, "major 2");

    memcpy(copy, buf, len);
    copy[3] = 200;
    is_int(omni_rec_parse(&rec, copy, len), OMNI_OK, "minor 200 is fine");

    memcpy(copy, buf, len);
    copy[4] = 0xff;
    copy[5] = 0xff;
    is_int(omni_rec_parse(&rec, copy, len), OMNI_INVALID,
           "header longer than the record");

    memcpy(copy, buf, len);
    copy[6] = 0xff;
    is_int(omni_rec_parse(&rec, copy, len), OMNI_INVALID,
           "section table past the end");

    memcpy(copy, buf, len);
    copy[96 + 8] = 0xff;                    /* first section's length */
    copy[96 + 9] = 0xff;
    is_int(omni_rec_parse(&rec, copy, len), OMNI_INVALID,
           "section length past the end");

    memcpy(copy, buf, len);
    copy[96 + 7] = 0xff;                    /* first section's offset */
    is_int(omni_rec_parse(&rec, copy, len), OMNI_INVALID,
           "section offset past the end");

    memcpy(copy, buf, len);
    copy[96] = 200;                         /* type 200: skipped */
    ok(omni_rec_parse(&rec, copy, len) == OMNI_OK
       && rec.sect[OMNI_SECT_ALIASES].data == NULL,
       "unknown type: section skipped");

    is_int(omni_rec_parse(&rec, NULL, 0), OMNI_INVALID, "NULL input");

    /* every prefix, each in an exactly sized heap block for ASan */
    bad = 0;
    parsed = 0;
    for (i = 0; i < len; i++) {
        unsigned char  *pre = malloc(i ? i : 1);

        memcpy(pre, buf, i);
        rc = walk(pre, i);
        bad += rc < 0;
        parsed += rc > 0;
        free(pre);
    }

    is_int(bad, 0, "every prefix parses or is refused, never crashes");
    /* the section table covers the record to its last byte */
    is_int(parsed, 0, "no proper prefix of an encoded record parses");

    /* random damage: flips, and random lengths rewritten */
    seed = 2463534242u;
    bad = 0;
    parsed = 0;
    for (k = 0; k < 20000; k++) {
        memcpy(copy, buf, len);

        for (i = 0; i < 1 + rnd(&seed) % 4; i++) {
            pos = rnd(&seed) % len;

            if (rnd(&seed) % 2) {
                copy[pos] ^= 1u << (rnd(&seed) % 8);
            } else {
                copy[pos] = (unsigned char) rnd(&seed);
            }
        }

        rc = walk(copy, len - rnd(&seed) % 3);
        bad += rc < 0;
        parsed += rc > 0;
    }

    is_int(bad, 0, "20000 damaged records: parse or refusal, no crash");
    ok(parsed > 1000, "many damaged records still parse (%d)", parsed);

    /* pure noise */
    bad = 0;
    for (k = 0; k < 5000; k++) {
        for (i = 0; i < len; i++) {
            copy[i] = (unsigned char) rnd(&seed);
        }

        copy[0] = 0x4f;
        copy[1] = 0x4d;
        copy[2] = 1;
        rc = walk(copy, rnd(&seed) % len);
        bad += rc < 0;
    }

    is_int(bad, 0, "5000 noise records with a valid magic: no crash");

    free(copy);
    free(buf);
}


/*
 * omni_rec_get_attr() frames the attributes section inline; the reference
 * is its former self, through the public iterator and field readers.
 * Random sections, some items cut short or lying about their lengths:
 * the same type, string and number for every key asked.
 */
static int
ref_get_attr(const omni_rec_t *rec, const char *key, size_t len,
    omni_bytes_t *str, double *num)
{
    unsigned           type;
    omni_bytes_t       item, k;
    omni_rec_iter_t    it;
    omni_rec_fields_t  f;

    str->len = 0;
    *num = 0.0;

    omni_rec_iter_init(&it, rec, OMNI_SECT_ATTRS);

    while (omni_rec_iter_next(&it, &item)) {
        omni_rec_fields_init(&f, item);
        k = omni_rec_get_str(&f);

        if (k.len != len || (len && memcmp(k.data, key, len) != 0)) {
            continue;
        }

        type = omni_rec_get_u8(&f);

        if (type == OMNI_ATTR_STR) {
            *str = omni_rec_get_str(&f);
            return OMNI_ATTR_STR;
        }

        if (type == OMNI_ATTR_NUM) {
            *num = omni_rec_get_f64(&f);
            return OMNI_ATTR_NUM;
        }

        return 0;
    }

    return 0;
}


static void
test_attr_scan(void)
{
    static const char  *keys[] = { "", "a", "tier", "age", "zip", "x" };
    unsigned char       sect[512];
    size_t              n, m, kl, i, j;
    unsigned            bad, found, c;
    int                 ta, tb;
    double              na, nb;
    omni_bytes_t        sa, sb;
    omni_rec_t          rec;

    srand(77);
    bad = found = 0;

    for (c = 0; c < 20000; c++) {
        n = 0;

        while (n < sizeof(sect) - 64 && rand() % 6) {
            kl = strlen(keys[rand() % 6]);
            m = 2 + kl + 1 + (rand() % 2 ? 2 + rand() % 5 : 8);
            m = rand() % 8 ? m : (size_t) rand() % 12;  /* lies, cuts */
            sect[n] = (unsigned char) (m & 0xff);
            sect[n + 1] = (unsigned char) (m >> 8);

            for (i = 0; i < m && n + 2 + i < sizeof(sect); i++) {
                sect[n + 2 + i] = (unsigned char) rand();
            }

            if (m >= 2 + kl) {
                sect[n + 2] = (unsigned char) kl;
                sect[n + 3] = 0;
                memcpy(sect + n + 4, keys[rand() % 6], kl);
            }

            if (m >= 3 + kl) {
                sect[n + 4 + kl] = (unsigned char) (1 + rand() % 3);
            }

            if (m >= 5 + kl && rand() % 2) {
                sect[n + 5 + kl] = (unsigned char) (rand() % (m - kl - 2));
                sect[n + 6 + kl] = 0;
            }

            n += 2 + m;
        }

        if (n > sizeof(sect)) {
            n = sizeof(sect);
        }

        memset(&rec, 0, sizeof(rec));
        rec.sect[OMNI_SECT_ATTRS].data = sect;
        rec.sect[OMNI_SECT_ATTRS].len = n - (rand() % 4 == 0 && n ? 1 : 0);

        for (j = 0; j < 6; j++) {
            ta = omni_rec_get_attr(&rec, keys[j], strlen(keys[j]), &sa, &na);
            tb = ref_get_attr(&rec, keys[j], strlen(keys[j]), &sb, &nb);
            found += ta != 0;

            if (ta != tb || sa.len != sb.len
                || (sa.len && memcmp(sa.data, sb.data, sa.len) != 0)
                || memcmp(&na, &nb, sizeof(double)) != 0)
            {
                bad++;
            }
        }
    }

    is_int(bad, 0, "omni_rec_get_attr = the iterator and field readers, "
           "20,000 random sections");
    ok(found > 10000, "the random sections hold attributes (%u found)",
       found);
}


/* omni_rec_impressions() before its search was framed inline. */
static int
ref_impressions(const omni_rec_t *rec, const char *campaign, size_t len,
    uint32_t now, uint32_t window, uint32_t *total, uint32_t *last,
    uint32_t *in_window)
{
    int64_t            cutoff;
    uint32_t           sum, hour, count;
    unsigned           b, nb;
    omni_bytes_t       item, k;
    omni_rec_iter_t    it;
    omni_rec_fields_t  f;

    *total = *last = *in_window = 0;

    omni_rec_iter_init(&it, rec, OMNI_SECT_IMPRESSIONS);

    while (omni_rec_iter_next(&it, &item)) {
        omni_rec_fields_init(&f, item);
        k = omni_rec_get_str(&f);

        if (k.len != len || (len && memcmp(k.data, campaign, len) != 0)) {
            continue;
        }

        *total = omni_rec_get_u32(&f);
        *last = omni_rec_get_u32(&f);
        nb = omni_rec_get_u8(&f);
        cutoff = (int64_t) now - (int64_t) window;
        sum = 0;

        for (b = 0; b < nb; b++) {
            hour = omni_rec_get_u32(&f);
            count = omni_rec_get_u16(&f);

            if ((int64_t) hour * 3600 > cutoff) {
                sum += count;
            }
        }

        *in_window = sum;

        return OMNI_OK;
    }

    return OMNI_NOTFOUND;
}


static void
test_impressions_scan(void)
{
    static const char  *keys[] = { "", "c", "spring", "cart-x", "vip" };
    unsigned char       sect[1024];
    size_t              n, m, kl, i, j;
    unsigned            bad, found, c, nb, b;
    int                 ra, rb;
    uint32_t            ta, la, wa, tb, lb, wb, h;
    omni_rec_t          rec;

    srand(78);
    bad = found = 0;

    for (c = 0; c < 20000; c++) {
        n = 0;

        while (n < sizeof(sect) - 200 && rand() % 5) {
            kl = strlen(keys[rand() % 5]);
            nb = (unsigned) rand() % 6;
            m = 2 + kl + 9 + nb * 6;
            m = rand() % 8 ? m : (size_t) rand() % (m + 4);  /* cuts, lies */
            sect[n] = (unsigned char) (m & 0xff);
            sect[n + 1] = (unsigned char) (m >> 8);

            for (i = 0; i < m; i++) {
                sect[n + 2 + i] = (unsigned char) rand();
            }

            if (m >= 2 + kl) {
                sect[n + 2] = (unsigned char) kl;
                sect[n + 3] = 0;
                memcpy(sect + n + 4, keys[rand() % 5], kl);
            }

            if (m >= 11 + kl) {
                sect[n + 12 + kl] = (unsigned char) nb;
            }

            for (b = 0; b < nb && m >= 11 + kl + (b + 1) * 6; b++) {
                h = NOW / 3600 - (uint32_t) (rand() % 400);
                memcpy(sect + n + 13 + kl + b * 6, &h, 4);
            }

            n += 2 + m;
        }

        memset(&rec, 0, sizeof(rec));
        rec.sect[OMNI_SECT_IMPRESSIONS].data = sect;
        rec.sect[OMNI_SECT_IMPRESSIONS].len = n - (rand() % 4 == 0 && n);

        for (j = 0; j < 5; j++) {
            uint32_t  w = (uint32_t) (rand() % 3) * 86400 * 7;

            ra = omni_rec_impressions(&rec, keys[j], strlen(keys[j]), NOW, w,
                                      &ta, &la, &wa);
            rb = ref_impressions(&rec, keys[j], strlen(keys[j]), NOW, w,
                                 &tb, &lb, &wb);
            found += ra == OMNI_OK;
            bad += ra != rb || ta != tb || la != lb || wa != wb;
        }
    }

    is_int(bad, 0, "omni_rec_impressions = the iterator and field readers, "
           "20,000 random sections");
    ok(found > 10000, "the random sections hold campaigns (%u found)",
       found);
}


int
main(void)
{
    test_core();
    test_round_trip();
    test_impressions();
    test_bounds();
    test_mutators();
    test_forward_compat();
    test_backward_compat();
    test_damage();
    test_attr_scan();
    test_impressions_scan();

    return done_testing();
}
