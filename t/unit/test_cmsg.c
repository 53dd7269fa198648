/*
 * omni_cmsg: runs of a queue zone's records for the cluster's stream.
 * Splitting a ring into runs (pad records at its end, the record and
 * byte limits), the message round trip, damaged messages refused, the
 * one-record messages of before ("OMC1"), and what a node does with a
 * run given where it is in the zone: applied once, in order, whatever
 * order refusals and retries put the runs in; compressed runs ("OMC3"):
 * the round trip, the fallback when compressing does not pay, damaged
 * frames passed over, and the same order rules through them.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omni_tap.h"
#include "omni_cmsg.h"

#define RING  128


static unsigned char     ring[RING];
static omni_cmsg_zctx_t *zenc;         /* encode() compresses with it */
static omni_cmsg_zctx_t *zdec;


/* A record of len bytes at ring offset off: its length, type, a mark. */
static void
put_rec(uint64_t pos, uint32_t len, unsigned char type, unsigned char mark)
{
    unsigned char  *p = ring + pos % RING;

    memset(p, mark, len);
    memcpy(p, &len, sizeof(len));
    p[4] = type;
}


/* Positions 96 .. 176: a record, a pad at the ring's end, two records. */
static void
fill(void)
{
    memset(ring, 0, sizeof(ring));
    put_rec(96, 24, 1, 'a');
    put_rec(120, 8, OMNI_CMSG_REC_PAD, 0);
    put_rec(128, 24, 2, 'b');
    put_rec(152, 24, 1, 'c');
}


static void
test_span(void)
{
    omni_cmsg_t   m;
    const char   *e;

    fill();

    is_int(omni_cmsg_span(ring, RING, 96, 176, 100, 1 << 20, &m, &e),
           OMNI_OK, "a run from 96");
    ok(m.prev == 96 && m.from == 96 && m.to == 120 && m.nrec == 1,
       "it stops at the pad: [96, 120), 1 record");

    is_int(omni_cmsg_span(ring, RING, 120, 176, 100, 1 << 20, &m, &e),
           OMNI_OK, "the next run");
    ok(m.prev == 120 && m.from == 128 && m.to == 176 && m.nrec == 2,
       "it follows 120, skips the pad: [128, 176), 2 records");
    ok(m.recs == ring, "its records are the ring's, from offset 0");

    is_int(omni_cmsg_span(ring, RING, 128, 176, 1, 1 << 20, &m, &e),
           OMNI_OK, "one record per run");
    ok(m.from == 128 && m.to == 152 && m.nrec == 1, "[128, 152)");

    is_int(omni_cmsg_span(ring, RING, 128, 176, 100, 40, &m, &e),
           OMNI_OK, "40 bytes per run");
    ok(m.to == 152 && m.nrec == 1, "one 24-byte record fits, not two");

    is_int(omni_cmsg_span(ring, RING, 128, 176, 100, 8, &m, &e),
           OMNI_OK, "a record longer than the byte limit");
    ok(m.to == 152 && m.nrec == 1, "goes alone");

    is_int(omni_cmsg_span(ring, RING, 120, 128, 100, 1 << 20, &m, &e),
           OMNI_NOTFOUND, "only a pad before the end: nothing to send");

    put_rec(152, 20, 1, 'c');
    is_int(omni_cmsg_span(ring, RING, 128, 176, 100, 1 << 20, &m, &e),
           OMNI_INVALID, "a length not a multiple of 8: %s", e);

    fill();
    is_int(omni_cmsg_span(ring, RING, 128, 170, 100, 1 << 20, &m, &e),
           OMNI_INVALID, "a record past the range's end: %s", e);

    /* a record that ends exactly at the ring's end: no pad after it */
    fill();
    put_rec(120, 8, 1, 'z');
    is_int(omni_cmsg_span(ring, RING, 96, 176, 100, 1 << 20, &m, &e),
           OMNI_OK, "records up to the ring's very end");
    ok(m.from == 96 && m.to == 128 && m.nrec == 2,
       "the run ends with the ring: [96, 128), 2 records");
    is_int(omni_cmsg_span(ring, RING, 128, 176, 100, 1 << 20, &m, &e),
           OMNI_OK, "the next run");
    ok(m.prev == 128 && m.from == 128 && m.recs == ring,
       "starts at the ring's beginning, after no pad");
}


static size_t
encode(unsigned char *out, uint64_t prev, uint64_t from, uint64_t to)
{
    omni_cmsg_t  m;
    const char  *e;

    (void) omni_cmsg_span(ring, RING, prev, to, 100, 1 << 20, &m, &e);
    m.zone = 0x1234;
    ok(m.from == from, "the run [%llu, %llu)", (unsigned long long) from,
       (unsigned long long) to);

    return omni_cmsg_encode(out, &m, "web-1", 5, zenc);
}


static void
test_roundtrip(void)
{
    size_t          len;
    uint32_t        v;
    omni_cmsg_t     m;
    const char     *e;
    unsigned char   buf[512], bad[512];

    fill();
    len = encode(buf, 120, 128, 176);
    is_int((int) len, OMNI_CMSG_HEAD + 48, "64 bytes of header, 48 of records");

    is_int(omni_cmsg_parse(buf, len, &m, &e), OMNI_OK, "parsed back");
    ok(m.zone == 0x1234 && m.prev == 120 && m.from == 128 && m.to == 176
       && m.nrec == 2 && !m.v1, "zone, positions, count");
    is_str(m.node, "web-1", "the node's name");
    ok(memcmp(m.recs, ring, 48) == 0, "the records as they were");

    is_int(omni_cmsg_parse(buf, len - 8, &m, &e), OMNI_INVALID,
           "a short message: %s", e);

    memcpy(bad, buf, len);
    v = 3;
    memcpy(bad + 4, &v, sizeof(v));
    is_int(omni_cmsg_parse(bad, len, &m, &e), OMNI_INVALID,
           "a count that is not the records': %s", e);

    memcpy(bad, buf, len);
    bad[OMNI_CMSG_HEAD + 24 + 4] = OMNI_CMSG_REC_PAD;
    is_int(omni_cmsg_parse(bad, len, &m, &e), OMNI_INVALID,
           "a pad inside a run: %s", e);
    ok(m.damaged && m.zone == 0x1234 && m.prev == 120 && m.to == 176,
       "its header is sound: the run can be passed over");

    memcpy(bad, buf, len);
    v = 0;
    memcpy(bad + OMNI_CMSG_HEAD + 24, &v, sizeof(v));
    is_int(omni_cmsg_parse(bad, len, &m, &e), OMNI_INVALID,
           "a record of length 0: %s", e);

    memcpy(bad, buf, len);
    memcpy(bad + 16, &(uint64_t) { 130 }, 8);
    is_int(omni_cmsg_parse(bad, len, &m, &e), OMNI_INVALID,
           "prev after from: %s", e);
    ok(!m.damaged, "a header that is not sound: nothing to pass over");

    is_int(omni_cmsg_parse((const unsigned char *) "x1 other app's", 14,
                           &m, &e), OMNI_NOTFOUND, "another's message");
    is_int(omni_cmsg_parse(buf, 4, &m, &e), OMNI_NOTFOUND, "4 bytes");

    /* "OMC1": magic, zone at 8, position at 16, node at 24, one record */
    memset(bad, 0, sizeof(bad));
    v = OMNI_CMSG_MAGIC_V1;
    memcpy(bad, &v, sizeof(v));
    memcpy(bad + 8, &(uint64_t) { 0x99 }, 8);
    memcpy(bad + 16, &(uint64_t) { 4096 }, 8);
    memcpy(bad + 24, "web-2", 5);
    memcpy(bad + OMNI_CMSG_HEAD_V1, ring, 24);        /* b, at 128 */

    is_int(omni_cmsg_parse(bad, OMNI_CMSG_HEAD_V1 + 24, &m, &e), OMNI_OK,
           "an OMC1 message");
    ok(m.v1 && m.zone == 0x99 && m.from == 4096 && m.to == 4120
       && m.nrec == 1, "one record at its position");
}


/*
 * A node's view of one zone, applying what comes in stream order: the
 * runs it applies, and from where.
 */
static uint64_t  applied;
static int       known;
static char      got[256];


static void
deliver(const unsigned char *msg, size_t len)
{
    int           rc;
    uint64_t      start, pos;
    uint32_t      rlen;
    omni_cmsg_t   m;
    const char   *e;

    static unsigned char  out[4096];

    if (omni_cmsg_parse(msg, len, &m, &e) != OMNI_OK
        || omni_cmsg_inflate(&m, out, zdec, &e) != OMNI_OK)
    {
        strcat(got, "?");
        return;
    }

    rc = omni_cmsg_start(&m, known, applied, &start);

    if (rc == OMNI_CMSG_DUP) {
        strcat(got, "d");
        return;
    }

    if (rc == OMNI_CMSG_HOLE) {
        strcat(got, "h");
        return;
    }

    for (pos = start; pos < m.to; pos += rlen) {
        memcpy(&rlen, m.recs + (pos - m.from), sizeof(rlen));
        strncat(got, (const char *) m.recs + (pos - m.from) + 5, 1);
    }

    applied = m.to;
    known = 1;
}


static void
test_start(void)
{
    size_t          l1, l2, l3, l4;
    uint64_t        start;
    omni_cmsg_t     m;
    const char     *e;
    unsigned char   r1[256], r2[256], r3[256], r23[256], out[256];

    /* records a (96), pad, b (128), c (152), d (176): runs of one */
    fill();
    put_rec(176, 24, 1, 'd');

    l1 = encode(r1, 96, 96, 120);
    l2 = encode(r2, 120, 128, 152);
    l3 = encode(r3, 152, 152, 176);

    /* in order, from a zone the node does not know yet */
    applied = 0; known = 0; got[0] = '\0';
    deliver(r1, l1);
    deliver(r2, l2);
    deliver(r3, l3);
    is_str(got, "abc", "in order: each record once");

    /* every run again (a new writer sends the range again) */
    deliver(r1, l1);
    deliver(r2, l2);
    deliver(r3, l3);
    is_str(got, "abcddd", "again: copies, skipped");

    /* r1 refused: r2 and r3 stored before it; then r1, r2, r3 again */
    applied = 96; known = 1; got[0] = '\0';
    deliver(r2, l2);
    deliver(r3, l3);
    deliver(r1, l1);
    deliver(r2, l2);
    deliver(r3, l3);
    is_str(got, "hhabc", "after a hole: skipped, then applied in order");

    /* a retry whose last run is longer: applied from where it was */
    applied = 96; known = 1; got[0] = '\0';
    deliver(r1, l1);
    l4 = encode(r23, 120, 128, 200);
    deliver(r2, l2);
    deliver(r23, l4);
    is_str(got, "abcd",
           "an overlapping run: from the first record not applied");

    /* a store that ends at the pad takes the run after it whole */
    is_int(omni_cmsg_parse(r2, l2, &m, &e), OMNI_OK, "the run after the pad");
    is_int(omni_cmsg_inflate(&m, out, zdec, &e), OMNI_OK, "its records");
    is_int(omni_cmsg_start(&m, 1, 120, &start), OMNI_CMSG_APPLY,
           "from the pad's position");
    ok(start == 128, "its first record");

    is_int(omni_cmsg_start(&m, 1, 136, &start), OMNI_CMSG_HOLE,
           "a position inside a record: not this zone's, skipped");

    /* the first run of a zone not known yet, whatever its prev */
    is_int(omni_cmsg_parse(r3, l3, &m, &e), OMNI_OK, "a later run");
    is_int(omni_cmsg_inflate(&m, out, zdec, &e), OMNI_OK, "its records");
    is_int(omni_cmsg_start(&m, 0, 0, &start), OMNI_CMSG_APPLY,
           "a zone's first run seen is where the node starts it");
    ok(start == 152, "from its first record");
}


/* A big ring of records that repeat (as page views' paths do). */
#define BIG  (64 * 1024)

static unsigned char  big[BIG];


static size_t
fill_big(int random)
{
    size_t    pos;
    uint32_t  len;

    srand(7);

    if (random) {
        /* one record of random bytes: nothing in it repeats */
        len = 1024;
        for (pos = 0; pos < len; pos++) {
            big[pos] = (unsigned char) rand();
        }
        memcpy(big, &len, sizeof(len));
        big[4] = 1;

        return len;
    }

    for (pos = 0; pos + 64 <= BIG / 2; pos += len) {
        len = 64;
        memset(big + pos, 'a' + (pos / 64) % 5, len);
        memcpy(big + pos, &len, sizeof(len));
        big[pos + 4] = 1;
    }

    return pos;
}


static void
test_compressed(void)
{
    size_t              end, len, raw;
    uint32_t            v;
    omni_cmsg_t         m, r;
    const char         *e;
    static unsigned char  msg[BIG], bad[BIG], out[BIG];

    end = fill_big(0);

    is_int(omni_cmsg_span(big, BIG, 0, end, 256, 1 << 20, &r, &e), OMNI_OK,
           "a run of 256 records");
    r.zone = 0x77;
    raw = (size_t) (r.to - r.from);
    ok(omni_cmsg_bound(&r) >= OMNI_CMSG_HEAD + raw, "the bound holds it");

    len = omni_cmsg_encode(msg, &r, "web-2", 5, zenc);
    ok(len < OMNI_CMSG_HEAD + raw / 10,
       "compressed: %zu bytes for %zu of records", len, raw);
    memcpy(&v, msg, sizeof(v));
    ok(v == OMNI_CMSG_MAGIC_Z, "an OMC3 message");
    is_int((int) omni_cmsg_records_len(msg, len), (int) raw,
           "its records' length, from the header");

    is_int(omni_cmsg_parse(msg, len, &m, &e), OMNI_OK, "parsed");
    ok(m.recs == NULL && m.z != NULL && m.nrec == 256 && m.zone == 0x77
       && m.from == r.from && m.to == r.to, "the header; records later");
    is_int(omni_cmsg_inflate(&m, out, zdec, &e), OMNI_OK, "inflated");
    ok(m.recs == out && memcmp(out, big, raw) == 0,
       "the records as they were");

    /* a byte of the frame changed, the frame cut short */
    memcpy(bad, msg, len);
    bad[len - 5] ^= 0x5a;
    is_int(omni_cmsg_parse(bad, len, &m, &e), OMNI_OK, "a damaged frame's "
           "header parses");
    is_int(omni_cmsg_inflate(&m, out, zdec, &e), OMNI_INVALID,
           "its frame does not inflate: %s", e);
    ok(m.damaged, "a sound header: the run can be passed over");

    is_int(omni_cmsg_parse(msg, len - 10, &m, &e), OMNI_OK, "a short frame");
    is_int(omni_cmsg_inflate(&m, out, zdec, &e), OMNI_INVALID,
           "does not inflate: %s", e);

    /* the header says fewer bytes than the frame holds */
    memcpy(bad, msg, len);
    memcpy(bad + 32, &(uint64_t) { r.to - 64 }, 8);
    is_int(omni_cmsg_parse(bad, len, &m, &e), OMNI_OK, "a header too short");
    is_int(omni_cmsg_inflate(&m, out, zdec, &e), OMNI_INVALID,
           "for its frame: %s", e);

    /* one record more than the header's count */
    memcpy(bad, msg, len);
    memcpy(bad + 4, &(uint32_t) { 255 }, 4);
    is_int(omni_cmsg_parse(bad, len, &m, &e), OMNI_OK, "a wrong count");
    is_int(omni_cmsg_inflate(&m, out, zdec, &e), OMNI_INVALID,
           "found once inflated: %s", e);

    /* a header claiming more than a run can hold: not sound */
    memcpy(bad, msg, len);
    memcpy(bad + 32, &(uint64_t) { r.from + OMNI_CMSG_RUN_MAX + 8 }, 8);
    is_int(omni_cmsg_parse(bad, len, &m, &e), OMNI_INVALID,
           "a run longer than any: %s", e);
    ok(!m.damaged, "nothing to pass over");
    is_int((int) omni_cmsg_records_len(bad, len), (int) len,
           "nor a length to size a buffer by");

    /* a damaged run is told from a copy and a hole by its header */
    memcpy(bad, msg, len);
    bad[len - 5] ^= 0x5a;
    (void) omni_cmsg_parse(bad, len, &m, &e);
    (void) omni_cmsg_inflate(&m, out, zdec, &e);
    is_int(omni_cmsg_start(&m, 1, r.to, &end), OMNI_CMSG_DUP,
           "damaged and applied already: a copy");
    is_int(omni_cmsg_start(&m, 1, r.from + 64, &end), OMNI_CMSG_APPLY,
           "damaged, overlapping: passed over (its records lost)");
    ok(end == r.from + 64, "from where the node is");

    /* records that do not compress go as they are */
    end = fill_big(1);
    (void) omni_cmsg_span(big, BIG, 0, end, 256, 1 << 20, &r, &e);
    len = omni_cmsg_encode(msg, &r, "web-2", 5, zenc);
    memcpy(&v, msg, sizeof(v));
    ok(v == OMNI_CMSG_MAGIC && len == OMNI_CMSG_HEAD + 1024,
       "incompressible records: an OMC2 message");
    is_int(omni_cmsg_parse(msg, len, &m, &e), OMNI_OK, "parsed");
    is_int(omni_cmsg_inflate(&m, out, zdec, &e), OMNI_OK,
           "inflating one: nothing to do");
    ok(m.recs == msg + OMNI_CMSG_HEAD, "its records in the message");
}


int
main(void)
{
    zdec = omni_cmsg_zctx_create();

    test_span();
    test_roundtrip();
    test_start();

    /* the order rules again, with runs compressed where that pays */
    zenc = omni_cmsg_zctx_create();
    test_start();
    test_compressed();

    omni_cmsg_zctx_free(zenc);
    omni_cmsg_zctx_free(zdec);

    return done_testing();
}
