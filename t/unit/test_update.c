/*
 * Unit tests of omni_update.c: omni_apply_touches() against the same
 * touches applied one omni_apply_touch() at a time, in two stores built
 * alike.  Both must end byte for byte the same (every key and value of
 * the profiles and aliases databases, read with LMDB directly) and give
 * the same profile id for every touch: on random batches over profiles
 * of every shape, and on the stores where grouping cannot take a batch
 * (a profile listing an alias that points elsewhere, records the encoder
 * never writes), which must fall back and still agree.
 *
 * Micro-benchmarks of the writer's work, touch by touch and batched,
 * and of the touch fast path (omni_splice.h) against the full decode and
 * encode on realistic profiles, print as TAP comments (never asserted;
 * t/unit/test_splice.c holds the fast path to the full path's bytes).
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "omni_tap.h"
#include "omni_feed.h"
#include "omni_update.h"

#include "store_helpers.h"


/* Stores a raw profile record under key pid (the store closed). */
static int
raw_put_profile(const char *dir, const unsigned char *pid,
    const unsigned char *data, size_t len)
{
    int       rc;
    MDB_env  *env;
    MDB_txn  *txn;
    MDB_dbi   dbi;
    MDB_val   k, v;

    if (raw_open(dir, 0, &env) != 0) {
        return -1;
    }

    k.mv_data = (void *) pid;
    k.mv_size = OMNI_ID_LEN;
    v.mv_data = (void *) data;
    v.mv_size = len;

    rc = mdb_txn_begin(env, NULL, 0, &txn);
    rc = rc ? rc : mdb_dbi_open(txn, "profiles", 0, &dbi);
    rc = rc ? rc : mdb_put(txn, dbi, &k, &v, 0);
    rc = rc ? rc : mdb_txn_commit(txn);

    mdb_env_close(env);

    return rc ? -1 : 0;
}


static void
wr16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char) v;
    p[1] = (unsigned char) (v >> 8);
}


static void
wr32(unsigned char *p, uint32_t v)
{
    wr16(p, v & 0xffff);
    wr16(p + 2, v >> 16);
}


/*
 * A version 1.0 record (omni_record.h) with only an aliases section, of
 * any length: the encoder never writes more than OMNI_MAX_ALIASES, and
 * always the key's id, so this is how a foreign or damaged record looks.
 */
static size_t
craft_record(unsigned char *buf, const unsigned char *id, unsigned n,
    const char *last_value)
{
    char      v[64];
    size_t    off, start, len;
    unsigned  i;

    memset(buf, 0, 108);
    wr16(buf, 0x4d4f);
    buf[2] = 1;
    buf[3] = 0;
    wr16(buf + 4, 96);
    wr16(buf + 6, 1);
    memcpy(buf + 8, id, OMNI_ID_LEN);
    wr32(buf + 24, 1700000000);             /* created */
    wr32(buf + 28, 1700000000);             /* updated */
    wr32(buf + 32, 1);                      /* visits */
    wr32(buf + 36, 1700000000);             /* visit_last */

    off = start = 108;

    for (i = 0; i < n; i++) {
        if (i == n - 1 && last_value) {
            snprintf(v, sizeof(v), "%s", last_value);

        } else {
            snprintf(v, sizeof(v), "customer-%u", i);
        }

        len = strlen(v);
        wr16(buf + off, (unsigned) (1 + 2 + len));
        buf[off + 2] = (i == n - 1 && last_value) ? OMNI_ALIAS_COOKIE
                                                  : OMNI_ALIAS_CUSTOMER;
        wr16(buf + off + 3, (unsigned) len);
        memcpy(buf + off + 5, v, len);
        off += 5 + len;
    }

    /* the section table entry */
    wr16(buf + 96, 1);
    wr16(buf + 98, n);
    wr32(buf + 100, (uint32_t) start);
    wr32(buf + 104, (uint32_t) (off - start));

    return off;
}


/* ---- touches ---- */

/* A deterministic id: the profile or visitor number i of a family. */
static void
make_id(unsigned char *id, unsigned family, uint32_t i)
{
    memset(id, 0, OMNI_ID_LEN);
    id[0] = (unsigned char) family;
    id[1] = 0x5a;
    memcpy(id + 8, &i, sizeof(i));
    id[15] = (unsigned char) (i * 37);
}


static const char  *campaign_lists[] = {
    "spring", "spring,summer", ",spring,,winter,", "c1,c2,c3,c4,c5,c6,c7",
    "summer", "black-friday,cyber-monday", "vip"
};

#define NLISTS  (sizeof(campaign_lists) / sizeof(campaign_lists[0]))


static void
touch_init(omni_touch_t *t, unsigned kind, const unsigned char *id,
    uint32_t time)
{
    memset(t, 0, sizeof(omni_touch_t));
    t->kind = kind;
    memcpy(t->id, id, OMNI_ID_LEN);
    t->channel = OMNI_CH_WEB;
    t->time = time;
}


/* ---- the two stores: same setup, then touch by touch or batched ---- */

typedef struct {
    char            dir[2][64];
    omni_store_t   *st[2];
} pair_t;


static int
pair_open(pair_t *pr)
{
    pr->st[0] = store_new(pr->dir[0]);
    pr->st[1] = store_new(pr->dir[1]);

    return pr->st[0] && pr->st[1] ? 0 : -1;
}


static void
pair_close(pair_t *pr)
{
    omni_store_close(pr->st[0]);
    omni_store_close(pr->st[1]);
    pr->st[0] = pr->st[1] = NULL;
}


static int
pair_reopen(pair_t *pr)
{
    pr->st[0] = store_open(pr->dir[0]);
    pr->st[1] = store_open(pr->dir[1]);

    return pr->st[0] && pr->st[1] ? 0 : -1;
}


static void
pair_remove(pair_t *pr)
{
    store_remove(pr->dir[0]);
    store_remove(pr->dir[1]);
}


/*
 * Applies ops in write transactions of the given sizes: store 0 one
 * omni_apply_touch() at a time, store 1 with omni_apply_touches().
 * Returns the number of touches whose profile ids differ, or -1.
 */
static int
pair_apply(pair_t *pr, const omni_touch_t *ops, size_t n,
    const size_t *sizes, size_t nsizes, omni_touches_stat_t *stat)
{
    int             diff;
    size_t          i, j, k, len;
    omni_wtxn_t    *w;
    unsigned char   (*pa)[OMNI_ID_LEN], (*pb)[OMNI_ID_LEN];

    pa = calloc(n, OMNI_ID_LEN);
    pb = calloc(n, OMNI_ID_LEN);
    diff = -1;

    if (pa == NULL || pb == NULL) {
        goto done;
    }

    for (i = 0, k = 0; i < n; i += len, k++) {
        len = sizes[k % nsizes];
        if (len > n - i) {
            len = n - i;
        }

        if (omni_store_write_begin(pr->st[0], &w) != OMNI_OK) {
            goto done;
        }

        for (j = i; j < i + len; j++) {
            if (omni_apply_touch(w, &ops[j], pa[j]) != OMNI_OK) {
                printf("# apply_touch: %s\n", omni_store_error(pr->st[0]));
                omni_wtxn_abort(w);
                goto done;
            }
        }

        if (omni_wtxn_commit(w) != OMNI_OK
            || omni_store_write_begin(pr->st[1], &w) != OMNI_OK)
        {
            goto done;
        }

        if (omni_apply_touches_stat(w, ops + i, len, pb + i, stat)
            != OMNI_OK)
        {
            printf("# apply_touches: %s\n", omni_store_error(pr->st[1]));
            omni_wtxn_abort(w);
            goto done;
        }

        if (omni_wtxn_commit(w) != OMNI_OK) {
            goto done;
        }
    }

    diff = 0;

    for (i = 0; i < n; i++) {
        diff += memcmp(pa[i], pb[i], OMNI_ID_LEN) != 0;
    }

done:

    free(pa);
    free(pb);

    return diff;
}


/* Closes both stores and compares their profiles and aliases. */
static void
pair_compare(pair_t *pr, const char *what)
{
    size_t  np, na;

    pair_close(pr);

    ok(db_same(pr->dir[0], pr->dir[1], "profiles", &np),
       "%s: profile records identical (%zu)", what, np);
    ok(db_same(pr->dir[0], pr->dir[1], "aliases", &na),
       "%s: aliases identical (%zu)", what, na);
}


/*
 * Profiles of every shape a writer meets, the same in both stores:
 *   i % 5 == 0  a visitor seen before (profile and cookie alias)
 *   i % 5 == 1  the same, plus a device linked to it
 *   i % 5 == 2  an imported profile (an attribute, a segment), no alias:
 *               its visitor's first touch is a first sight of an
 *               existing profile
 *   i % 5 == 3  a customer: cookie, user id and email aliases, and
 *               impressions of 60 campaigns (evictions at 64)
 *   i % 5 == 4  imported with 32 customer aliases: its visitor's first
 *               sight pushes the oldest out
 */
static int
setup_profiles(omni_store_t *st, uint32_t nprof)
{
    int             rc;
    char            hex[OMNI_ID_HEX_LEN + 1], v[80];
    uint32_t        i, k;
    omni_wtxn_t    *w;
    omni_touch_t    t;
    omni_profile_t  p;
    unsigned char   id[OMNI_ID_LEN], dev[OMNI_ID_LEN];

    if (omni_store_write_begin(st, &w) != OMNI_OK) {
        return -1;
    }

    rc = OMNI_OK;

    for (i = 0; i < nprof && rc == OMNI_OK; i++) {
        make_id(id, 1, i);
        touch_init(&t, OMNI_ALIAS_COOKIE, id, 1700000000 + i);

        switch (i % 5) {

        case 0:
            rc = omni_apply_touch(w, &t, NULL);
            break;

        case 1:
            rc = omni_apply_touch(w, &t, NULL);
            make_id(dev, 2, i);
            omni_id_hex(dev, hex);
            rc = rc ? rc : omni_link_alias(w, id, OMNI_ALIAS_DEVICE, hex,
                                           OMNI_ID_HEX_LEN, t.time);
            break;

        case 2:
        case 4:
            omni_profile_init(&p, id);
            p.created = p.updated = t.time;
            p.visits = 3;
            rc = omni_profile_set_attr_str(&p, "first_name", "Ana");
            rc = rc ? rc : omni_profile_add_segment(&p, "vip", 3);

            for (k = 0; i % 5 == 4 && k < OMNI_MAX_ALIASES && !rc; k++) {
                snprintf(v, sizeof(v), "user-%u-%u", i, k);
                rc = omni_profile_add_alias(&p, OMNI_ALIAS_CUSTOMER, v,
                                            strlen(v));
            }

            rc = rc ? rc : omni_wtxn_put_profile(w, &p);
            omni_profile_free(&p);
            break;

        case 3:
            rc = omni_apply_touch(w, &t, NULL);
            snprintf(v, sizeof(v), "user-%u", i);
            rc = rc ? rc : omni_link_alias(w, id, OMNI_ALIAS_CUSTOMER, v,
                                           strlen(v), t.time);
            snprintf(v, sizeof(v), "%064u", i);
            rc = rc ? rc : omni_link_alias(w, id, OMNI_ALIAS_EMAIL, v,
                                           strlen(v), t.time);

            for (k = 0; k < 60 && rc == OMNI_OK; k++) {
                rc = omni_wtxn_get_profile(w, id, &p);
                snprintf(v, sizeof(v), "old-campaign-%u", k);
                rc = rc ? rc : omni_profile_add_impression(&p, v,
                                                           t.time - k * 600);
                rc = rc ? rc : omni_wtxn_put_record(w, &p);
                omni_profile_free(&p);
            }

            break;
        }
    }

    if (rc != OMNI_OK) {
        printf("# setup: %s\n", omni_store_error(st));
        omni_wtxn_abort(w);
        return -1;
    }

    return omni_wtxn_commit(w) == OMNI_OK ? 0 : -1;
}


/*
 * Random touches over those profiles: known and new visitors, devices
 * (linked, unknown, and unknown ones whose id is a profile's), time
 * going forward in steps around the visit timeout and now and then back
 * (clock skew), every channel, campaign lists.
 */
static void
random_touches(omni_touch_t *ops, size_t n, uint32_t nprof)
{
    size_t          i;
    uint32_t        now, r, v;
    unsigned char   id[OMNI_ID_LEN];

    now = 1700100000;

    for (i = 0; i < n; i++) {
        r = rnd() % 100;
        v = rnd() % nprof;

        /* a few hot visitors: many touches of one profile per batch */
        if (rnd() % 3 == 0) {
            v %= 16;
        }

        if (r < 60) {
            make_id(id, 1, v);
            touch_init(&ops[i], OMNI_ALIAS_COOKIE, id, now);

        } else if (r < 70) {
            make_id(id, 2, v - v % 5 + 1);              /* a linked device */
            touch_init(&ops[i], OMNI_ALIAS_DEVICE, id, now);

        } else if (r < 75) {
            make_id(id, 1, v);                  /* a device id = profile id */
            touch_init(&ops[i], OMNI_ALIAS_DEVICE, id, now);

        } else if (r < 90) {
            make_id(id, 3, rnd() % (nprof / 4 + 1));        /* new visitors */
            touch_init(&ops[i], OMNI_ALIAS_COOKIE, id, now);

        } else {
            make_id(id, 4, rnd() % (nprof / 8 + 1));        /* new devices */
            touch_init(&ops[i], OMNI_ALIAS_DEVICE, id, now);
        }

        ops[i].channel = rnd() % OMNI_CH_MAX;
        ops[i].visit_timeout = (rnd() % 3) * 900;

        if (rnd() % 3 == 0) {
            ops[i].campaigns = campaign_lists[rnd() % NLISTS];
            ops[i].campaigns_len = strlen(ops[i].campaigns);
        }

        if (rnd() % 20 == 0) {
            now -= rnd() % 4000;

        } else {
            now += rnd() % 1200;
        }
    }
}


static void
test_random(void)
{
    int                  diff;
    size_t               n;
    pair_t               pr;
    omni_touch_t        *ops;
    omni_touches_stat_t  stat;
    static const size_t  sizes[] = { 1, 2, 3, 50, 500, 7, 1000, 2500 };

    rnd_state = 0x1234567887654321ULL;
    n = 8000;

    ops = calloc(n, sizeof(omni_touch_t));

    if (ops == NULL || pair_open(&pr) != 0
        || setup_profiles(pr.st[0], 400) != 0
        || setup_profiles(pr.st[1], 400) != 0)
    {
        ok(0, "random: setup");
        free(ops);
        return;
    }

    random_touches(ops, n, 400);
    memset(&stat, 0, sizeof(stat));

    diff = pair_apply(&pr, ops, n, sizes, sizeof(sizes) / sizeof(sizes[0]),
                      &stat);
    is_int(diff, 0, "random: same profile id for every touch");
    is_int(stat.touches, n, "random: every touch applied");
    is_int(stat.sequential, 0, "random: no touch needed the fallback");
    ok(stat.profiles < stat.touches * 3 / 4,
       "random: %zu profiles written for %zu touches", stat.profiles,
       stat.touches);

    pair_compare(&pr, "random");
    pair_remove(&pr);
    free(ops);
}


/*
 * A profile P that lists alias c:X while c:X points at profile Q (an
 * import, say).  The first sight of P's own visitor stores P with its
 * aliases, so c:X moves to P in between two touches of X: grouping by
 * profile cannot reproduce that, the batch goes touch by touch.
 */
static void
test_alias_moved(void)
{
    int                  diff;
    char                 hx[OMNI_ID_HEX_LEN + 1];
    pair_t               pr;
    unsigned             s;
    omni_wtxn_t         *w;
    omni_touch_t         ops[4], t;
    omni_profile_t       p;
    omni_touches_stat_t  stat;
    unsigned char        x[OMNI_ID_LEN], pid[OMNI_ID_LEN];
    static const size_t  sizes[] = { 4 };

    make_id(x, 5, 1);
    make_id(pid, 5, 2);
    omni_id_hex(x, hx);

    if (pair_open(&pr) != 0) {
        ok(0, "moved alias: setup");
        return;
    }

    for (s = 0; s < 2; s++) {
        omni_store_write_begin(pr.st[s], &w);

        /* Q = X's own profile, then P listing c:X, then c:X back to Q */
        touch_init(&t, OMNI_ALIAS_COOKIE, x, 1700000000);
        omni_apply_touch(w, &t, NULL);

        omni_profile_init(&p, pid);
        p.created = p.updated = 1700000000;
        omni_profile_add_alias(&p, OMNI_ALIAS_COOKIE, hx, OMNI_ID_HEX_LEN);
        omni_wtxn_put_profile(w, &p);
        omni_profile_free(&p);

        omni_wtxn_put_alias(w, OMNI_ALIAS_COOKIE, hx, OMNI_ID_HEX_LEN, x);
        omni_wtxn_commit(w);
    }

    touch_init(&ops[0], OMNI_ALIAS_COOKIE, x, 1700001000);
    touch_init(&ops[1], OMNI_ALIAS_COOKIE, pid, 1700002000);
    touch_init(&ops[2], OMNI_ALIAS_COOKIE, x, 1700003000);
    touch_init(&ops[3], OMNI_ALIAS_COOKIE, x, 1700009000);

    memset(&stat, 0, sizeof(stat));
    diff = pair_apply(&pr, ops, 4, sizes, 1, &stat);

    is_int(diff, 0, "moved alias: same profile ids");
    is_int(stat.sequential, 4, "moved alias: the batch went touch by touch");

    pair_compare(&pr, "moved alias");
    pair_remove(&pr);
}


/*
 * Two profiles list the same email alias; the first sights of their
 * visitors store both, so the alias ends at whichever is stored last.
 * P1's group comes first in the batch (a device of P1 leads) but its
 * first sight comes after P2's: grouping would store them the other way
 * round, the batch goes touch by touch.
 */
static void
test_alias_shared(void)
{
    int                  diff;
    char                 hex[OMNI_ID_HEX_LEN + 1];
    pair_t               pr;
    unsigned             s, k;
    omni_wtxn_t         *w;
    omni_touch_t         ops[3];
    omni_profile_t       p;
    omni_touches_stat_t  stat;
    unsigned char        p1[OMNI_ID_LEN], p2[OMNI_ID_LEN], dev[OMNI_ID_LEN];
    unsigned char        got[OMNI_ID_LEN];
    static const size_t  sizes[] = { 3 };

    make_id(p1, 6, 1);
    make_id(p2, 6, 2);
    make_id(dev, 6, 3);
    omni_id_hex(dev, hex);

    if (pair_open(&pr) != 0) {
        ok(0, "shared alias: setup");
        return;
    }

    for (s = 0; s < 2; s++) {
        omni_store_write_begin(pr.st[s], &w);

        for (k = 0; k < 2; k++) {
            omni_profile_init(&p, k ? p2 : p1);
            p.created = p.updated = 1700000000;
            omni_profile_add_alias(&p, OMNI_ALIAS_EMAIL, "same@example.com",
                                   16);
            if (k == 0) {
                omni_profile_add_alias(&p, OMNI_ALIAS_DEVICE, hex,
                                       OMNI_ID_HEX_LEN);
            }

            omni_wtxn_put_profile(w, &p);
            omni_profile_free(&p);
        }

        omni_wtxn_commit(w);
    }

    touch_init(&ops[0], OMNI_ALIAS_DEVICE, dev, 1700001000);
    touch_init(&ops[1], OMNI_ALIAS_COOKIE, p2, 1700002000);
    touch_init(&ops[2], OMNI_ALIAS_COOKIE, p1, 1700003000);

    memset(&stat, 0, sizeof(stat));
    diff = pair_apply(&pr, ops, 3, sizes, 1, &stat);

    is_int(diff, 0, "shared alias: same profile ids");
    is_int(stat.sequential, 3, "shared alias: the batch went touch by touch");

    /* the check itself: the alias ends at P1 */
    omni_store_read_begin(pr.st[1]);
    ok(omni_store_get_alias(pr.st[1], OMNI_ALIAS_EMAIL, "same@example.com",
                            16, got) == OMNI_OK
       && memcmp(got, p1, OMNI_ID_LEN) == 0,
       "shared alias: stored last by the last first sight");
    omni_store_read_end(pr.st[1]);

    pair_compare(&pr, "shared alias");
    pair_remove(&pr);
}


/*
 * Records no writer of this code leaves: 40 aliases (the encoder keeps
 * 32), and a record whose embedded id is not its key.  Their touches go
 * one by one (each sees the record as re-read), the rest of the batch is
 * grouped.
 */
static void
test_foreign_records(void)
{
    int                  diff;
    char                 hp[OMNI_ID_HEX_LEN + 1], hm[OMNI_ID_HEX_LEN + 1];
    size_t               len;
    pair_t               pr;
    unsigned             s, i;
    omni_wtxn_t         *w;
    omni_touch_t         ops[9];
    omni_touches_stat_t  stat;
    unsigned char        pid[OMNI_ID_LEN], mid[OMNI_ID_LEN], rid[OMNI_ID_LEN];
    unsigned char        other[OMNI_ID_LEN], buf[4096];
    static const size_t  sizes[] = { 9 };

    make_id(pid, 7, 1);
    make_id(mid, 7, 2);
    make_id(rid, 7, 3);
    make_id(other, 7, 4);
    omni_id_hex(pid, hp);
    omni_id_hex(mid, hm);

    if (pair_open(&pr) != 0) {
        ok(0, "foreign records: setup");
        return;
    }

    pair_close(&pr);

    for (s = 0; s < 2; s++) {
        len = craft_record(buf, pid, 40, hp);
        raw_put_profile(pr.dir[s], pid, buf, len);
        len = craft_record(buf, rid, 3, hm);
        raw_put_profile(pr.dir[s], mid, buf, len);
    }

    pair_reopen(&pr);

    for (s = 0; s < 2; s++) {
        omni_store_write_begin(pr.st[s], &w);
        omni_wtxn_put_alias(w, OMNI_ALIAS_COOKIE, hp, OMNI_ID_HEX_LEN, pid);
        omni_wtxn_put_alias(w, OMNI_ALIAS_COOKIE, hm, OMNI_ID_HEX_LEN, mid);
        omni_wtxn_commit(w);
    }

    for (i = 0; i < 9; i++) {
        touch_init(&ops[i], OMNI_ALIAS_COOKIE,
                   i % 3 == 0 ? pid : i % 3 == 1 ? mid : other,
                   1700001000 + i * 700);
        ops[i].campaigns = campaign_lists[i % NLISTS];
        ops[i].campaigns_len = strlen(ops[i].campaigns);
    }

    memset(&stat, 0, sizeof(stat));
    diff = pair_apply(&pr, ops, 9, sizes, 1, &stat);

    is_int(diff, 0, "foreign records: same profile ids");
    is_int(stat.sequential, 6, "foreign records: their touches one by one");

    pair_compare(&pr, "foreign records");
    pair_remove(&pr);
}


/* Empty and one-touch batches, no pids, and the touch's own checks. */
static void
test_edges(void)
{
    char            dir[64];
    omni_wtxn_t    *w;
    omni_store_t   *st;
    omni_touch_t    ops[2];
    unsigned char   id[OMNI_ID_LEN], pids[2][OMNI_ID_LEN];

    st = store_new(dir);
    if (st == NULL || omni_store_write_begin(st, &w) != OMNI_OK) {
        ok(0, "edges: setup");
        return;
    }

    make_id(id, 8, 1);
    touch_init(&ops[0], OMNI_ALIAS_COOKIE, id, 1700000000);
    touch_init(&ops[1], OMNI_ALIAS_COOKIE, id, 1700000100);

    is_int(omni_apply_touches(w, ops, 0, NULL), OMNI_OK, "no touches");
    is_int(omni_apply_touches(w, ops, 1, pids), OMNI_OK, "one touch");
    ok(memcmp(pids[0], id, OMNI_ID_LEN) == 0, "its profile id");
    is_int(omni_apply_touches(w, ops, 2, NULL), OMNI_OK, "no pids wanted");

    /* a campaign list starting with a NUL is refused, as one by one */
    ops[1].campaigns = "\0x";
    ops[1].campaigns_len = 2;
    ok(omni_apply_touches(w, ops, 2, pids) != OMNI_OK,
       "a refused touch fails the batch");

    omni_wtxn_abort(w);
    omni_store_close(st);
    store_remove(dir);
}


/* ---- micro-benchmark (reported, never asserted) ---- */

/*
 * The process's CPU time (user and system: LMDB's commits write pages
 * with pwrite()), steadier than wall time on a shared machine.
 */
static double
cpu_s(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);

    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


/*
 * The writer's batch loop on a store of nprof known visitors: n touches
 * in write transactions of `batch`, touch by touch or batched, with or
 * without the touchpoint (record built and appended).  Touches/s.
 */
static double
bench_run(const omni_touch_t *ops, size_t n, size_t batch, uint32_t nprof,
    int batched, int feed)
{
    char            dir[64], *json;
    size_t          i, j, len, jlen;
    double          t0, t1;
    omni_wtxn_t    *w;
    omni_store_t   *st;
    omni_touch_t    t;
    unsigned char   id[OMNI_ID_LEN], (*pids)[OMNI_ID_LEN];

    st = store_new(dir);
    pids = calloc(batch, OMNI_ID_LEN);

    if (st == NULL || pids == NULL
        || omni_store_write_begin(st, &w) != OMNI_OK)
    {
        free(pids);
        return 0;
    }

    for (i = 0; i < nprof; i++) {
        make_id(id, 1, (uint32_t) i);
        touch_init(&t, OMNI_ALIAS_COOKIE, id, 1700000000);
        omni_apply_touch(w, &t, NULL);
    }

    omni_wtxn_commit(w);

    t0 = cpu_s();

    for (i = 0; i < n; i += batch) {
        len = n - i < batch ? n - i : batch;

        if (omni_store_write_begin(st, &w) != OMNI_OK) {
            break;
        }

        if (batched) {
            if (omni_apply_touches(w, ops + i, len, pids) != OMNI_OK) {
                omni_wtxn_abort(w);
                break;
            }

        } else {
            for (j = 0; j < len; j++) {
                if (omni_apply_touch(w, &ops[i + j], pids[j]) != OMNI_OK) {
                    break;
                }
            }
        }

        for (j = 0; feed && j < len; j++) {
            json = omni_feed_record(&ops[i + j], pids[j], &jlen);
            if (json == NULL) {
                break;
            }

            omni_wtxn_append_touchpoint(w, pids[j], ops[i + j].time, json,
                                        jlen, NULL);
            free(json);
        }

        omni_wtxn_commit(w);
    }

    t1 = cpu_s();

    free(pids);
    omni_store_close(st);
    store_remove(dir);

    return i >= n ? (double) n / (t1 - t0) : 0;
}


/*
 * Touches of nprof known visitors.  sessions 0: every touch a random
 * visitor; else each window of `batch` touches comes from `sessions`
 * visitors browsing (several pages each, as under load).
 */
static void
bench_touches(omni_touch_t *ops, size_t n, uint32_t nprof, size_t batch,
    size_t sessions)
{
    size_t          i;
    uint32_t        v;
    unsigned char   id[OMNI_ID_LEN];

    for (i = 0; i < n; i++) {
        v = sessions ? (uint32_t) ((i / batch * 7919 + rnd() % sessions)
                                   % nprof)
                     : rnd() % nprof;

        make_id(id, 1, v);
        touch_init(&ops[i], OMNI_ALIAS_COOKIE, id,
                   1700100000 + (uint32_t) (i / 50));

        ops[i].record = 1;
        ops[i].path = "/products/running-shoes/1234";
        ops[i].path_len = strlen(ops[i].path);
        ops[i].referrer = "https://www.example.com/search?q=shoes";
        ops[i].referrer_len = strlen(ops[i].referrer);
        memcpy(ops[i].country, "PT", 3);

        if (i % 3 == 0) {
            ops[i].campaigns = "spring-sale,free-shipping";
            ops[i].campaigns_len = strlen(ops[i].campaigns);
            ops[i].rules = "r12,r40";
            ops[i].rules_len = strlen(ops[i].rules);
        }
    }
}


static int
cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


/*
 * Four arms: profiles only or with touchpoints, touch by touch or
 * batched; interleaved rounds (OMNI_BENCH_ROUNDS, default 1), medians.
 */
static void
bench(void)
{
    size_t         n, batch, s, rounds, k, a;
    double         r[4][16], m[4];
    uint32_t       nprof;
    omni_touch_t  *ops;
    const char    *env;
    static const struct {
        size_t       sessions;
        const char  *name;
    } shapes[] = {
        { 0, "uniform" },
        { 200, "200 visitors per batch" },
    };

    n = 100000;
    nprof = 10000;
    batch = 1000;
    rounds = 1;

    env = getenv("OMNI_BENCH_TOUCHES");

    if (env) {
        n = (size_t) strtoul(env, NULL, 10);

    } else if (UNDER_VALGRIND()) {
        n = 5000;
        nprof = 1000;
    }

    env = getenv("OMNI_BENCH_ROUNDS");

    if (env) {
        rounds = (size_t) strtoul(env, NULL, 10);
        rounds = rounds < 1 ? 1 : rounds > 16 ? 16 : rounds;
    }

    ops = calloc(n ? n : 1, sizeof(omni_touch_t));
    if (ops == NULL) {
        ok(0, "benchmark: memory");
        return;
    }

    rnd_state = 0x5eed5eed5eed5eedULL;

    for (s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        bench_touches(ops, n, nprof, batch, shapes[s].sessions);

        for (k = 0; k < rounds; k++) {
            for (a = 0; a < 4; a++) {
                r[a][k] = bench_run(ops, n, batch, nprof, a & 1, a >> 1);
            }
        }

        for (a = 0; a < 4; a++) {
            qsort(r[a], rounds, sizeof(double), cmp_double);
            m[a] = r[a][rounds / 2];
        }

        printf("# %zu touches over %u profiles in batches of %zu, %s "
               "(per CPU second, median of %zu):\n"
               "#   profiles only:      %.0f touches/s one by one, "
               "%.0f batched (%.2fx)\n"
               "#   with touchpoints:   %.0f touches/s one by one, "
               "%.0f batched (%.2fx)\n",
               n, nprof, batch, shapes[s].name, rounds,
               m[0], m[1], m[0] > 0 ? m[1] / m[0] : 0,
               m[2], m[3], m[2] > 0 ? m[3] / m[2] : 0);

        ok(m[0] > 0 && m[1] > 0 && m[2] > 0 && m[3] > 0,
           "benchmark ran: %s", shapes[s].name);
    }

    free(ops);
}


/*
 * The fast path (omni_splice.h) against the full decode and encode, on
 * realistic profiles: a returning shopper's (bench/gen-profiles.pl) with
 * its cookie and an email alias, segments, attributes, views, now and
 * then a cart, a purchase and event counters, and impressions of a few
 * campaigns over several hours: about 1 KB encoded.
 */
static int
bench_profile(omni_profile_t *p, uint32_t i)
{
    int            rc;
    char           v[80];
    uint32_t       k, n, now;
    unsigned char  id[OMNI_ID_LEN];
    static const char  *segs[] = { "newsletter", "outdoor", "runners" };
    static const char  *camps[] = {
        "spring-sale", "free-shipping", "summit-retarget", "review-request",
        "cart-abandon", "vip-early-access", "escalation-premium", "welcome"
    };

    now = 1700100000;
    make_id(id, 1, i);
    omni_profile_init(p, id);

    p->created = now - (30 + i % 60) * 86400;
    p->updated = p->visit_last = p->last_seen[OMNI_CH_WEB] = now - 7200;
    p->visits = 3 + i % 17;

    omni_id_hex(id, v);
    rc = omni_profile_add_alias(p, OMNI_ALIAS_COOKIE, v, OMNI_ID_HEX_LEN);
    snprintf(v, sizeof(v), "%064x", i);
    rc = rc ? rc : omni_profile_add_alias(p, OMNI_ALIAS_EMAIL, v, 64);

    for (k = 0; k < 3; k++) {
        if (i % (k + 2) == 0) {
            rc = rc ? rc : omni_profile_add_segment(p, segs[k],
                                                    strlen(segs[k]));
        }
    }

    snprintf(v, sizeof(v), "%04u-%03u", 1000 + i % 900, i % 1000);
    rc = rc ? rc : omni_profile_set_attr_str(p, "first_name", "Ana");
    rc = rc ? rc : omni_profile_set_attr_str(p, "tier", "silver");
    rc = rc ? rc : omni_profile_set_attr_str(p, "lang", "pt");
    rc = rc ? rc : omni_profile_set_attr_str(p, "zip", v);
    rc = rc ? rc : omni_profile_set_attr_num(p, "age", 20 + i % 50);

    if (rc != OMNI_OK) {
        return rc;
    }

    p->views = calloc(6, sizeof(omni_view_t));
    p->cart = calloc(1, sizeof(omni_cart_item_t));
    p->purchases = calloc(1, sizeof(omni_purchase_t));
    p->events = calloc(1, sizeof(omni_evcount_t));

    if (!p->views || !p->cart || !p->purchases || !p->events) {
        return OMNI_ERROR;
    }

    for (k = 0; k < 2 + i % 5; k++) {
        omni_view_t  *vw = &p->views[p->nviews++];

        snprintf(v, sizeof(v), "SKU-%u", (i + k * 7) % 500);
        vw->sku = strdup(v);
        vw->category = strdup(k % 2 ? "premium" : "shoes");
        vw->time = now - 86400 * (k + 1) - i % 3600;
        vw->price = 119.0 + k;
    }

    if (i % 5 == 1) {
        p->cart_updated = now - 3 * 3600;
        p->cart[0].sku = strdup("JKT-7");
        p->cart[0].name = strdup("Ridge 7 jacket");
        p->cart[0].category = strdup("jackets");
        p->cart[0].url = strdup("/product/jkt-7.html");
        p->cart[0].qty = 1;
        p->cart[0].price = 189.0;
        p->ncart = 1;
    }

    if (i % 7 == 3) {
        snprintf(v, sizeof(v), "O-%u", i);
        p->purchases[0].sku = strdup("SOCK-3");
        p->purchases[0].order_id = strdup(v);
        p->purchases[0].category = strdup("socks");
        p->purchases[0].time = now - 20 * 86400;
        p->purchases[0].price = 19.9;
        p->purchases[0].qty = 1;
        p->npurchases = 1;
        p->orders = 1;
        p->revenue = 19.9;
    }

    if (i % 3 == 0) {
        p->events[0].name = strdup("Newsletter Opened");
        p->events[0].count = 1 + i % 9;
        p->events[0].last = now - 5 * 86400;
        p->nevents = 1;
    }

    /* a few campaigns, shown over the last hours */
    n = 3 + i % 5;

    for (k = 0; k < n * 3 && rc == OMNI_OK; k++) {
        rc = omni_profile_add_impression(p, camps[(i + k) % n],
                                         now - 7200 - (k % 6) * 3600);
    }

    p->stage = omni_derive_stage(p);

    return rc;
}


/* Touches/s (CPU) of one arm on a fresh store of nprof such profiles. */
static double
bench_splice_run(const omni_touch_t *ops, size_t n, size_t batch,
    uint32_t nprof, int batched, int splice, size_t *spliced)
{
    int                  rc;
    char                 dir[64];
    size_t               i, j, len;
    double               t0, t1;
    omni_wtxn_t         *w;
    omni_store_t        *st;
    omni_profile_t       p;
    omni_touches_stat_t  stat;
    unsigned char        (*pids)[OMNI_ID_LEN];

    st = store_new(dir);
    pids = calloc(batch, OMNI_ID_LEN);

    if (st == NULL || pids == NULL
        || omni_store_write_begin(st, &w) != OMNI_OK)
    {
        free(pids);
        return 0;
    }

    rc = OMNI_OK;

    for (i = 0; i < nprof && rc == OMNI_OK; i++) {
        rc = bench_profile(&p, (uint32_t) i);
        rc = rc ? rc : omni_wtxn_put_profile(w, &p);
        omni_profile_free(&p);
    }

    if (rc != OMNI_OK || omni_wtxn_commit(w) != OMNI_OK) {
        free(pids);
        omni_store_close(st);
        store_remove(dir);
        return 0;
    }

    memset(&stat, 0, sizeof(stat));
    omni_update_splice = splice;
    rc = OMNI_OK;

    t0 = cpu_s();

    for (i = 0; i < n && rc == OMNI_OK; i += batch) {
        len = n - i < batch ? n - i : batch;

        rc = omni_store_write_begin(st, &w);
        if (rc != OMNI_OK) {
            break;
        }

        if (batched) {
            rc = omni_apply_touches_stat(w, ops + i, len, pids, &stat);

        } else {
            for (j = 0; j < len && rc == OMNI_OK; j++) {
                rc = omni_apply_touch(w, &ops[i + j], pids[j]);
            }
        }

        if (rc != OMNI_OK) {
            omni_wtxn_abort(w);
            break;
        }

        rc = omni_wtxn_commit(w);
    }

    t1 = cpu_s();

    omni_update_splice = 1;
    *spliced += stat.spliced;

    free(pids);
    omni_store_close(st);
    store_remove(dir);

    return rc == OMNI_OK ? (double) n / (t1 - t0) : 0;
}


/*
 * Uniform traffic of known visitors over 10k and 100k realistic
 * profiles, campaigns in half the touches, in the writer's batches of
 * 256 and one by one: touches/s with the fast path and without.
 */
static void
bench_splice(void)
{
    size_t         n, batch, s, rounds, k, a, spliced;
    double         r[4][16], m[4];
    uint32_t       nprof, v;
    omni_touch_t  *ops;
    const char    *env;
    unsigned char  id[OMNI_ID_LEN];
    static const uint32_t  sizes[] = { 10000, 100000 };
    static const char     *lists[] = {
        "spring-sale", "spring-sale,free-shipping", "summit-retarget",
        "review-request,welcome", "black-friday"
    };

    n = 200000;
    batch = 256;
    rounds = 1;

    env = getenv("OMNI_BENCH_TOUCHES");

    if (env) {
        n = (size_t) strtoul(env, NULL, 10);

    } else if (UNDER_VALGRIND()) {
        n = 3000;
    }

    env = getenv("OMNI_BENCH_ROUNDS");

    if (env) {
        rounds = (size_t) strtoul(env, NULL, 10);
        rounds = rounds < 1 ? 1 : rounds > 16 ? 16 : rounds;
    }

    ops = calloc(n ? n : 1, sizeof(omni_touch_t));
    if (ops == NULL) {
        ok(0, "fast path benchmark: memory");
        return;
    }

    for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        nprof = UNDER_VALGRIND() ? sizes[s] / 50 : sizes[s];
        rnd_state = 0xfa57fa57fa57fa57ULL;

        for (k = 0; k < n; k++) {
            v = rnd() % nprof;
            make_id(id, 1, v);
            touch_init(&ops[k], OMNI_ALIAS_COOKIE, id,
                       1700100000 + (uint32_t) (k / 20));

            if (rnd() % 2) {
                ops[k].campaigns = lists[rnd() % 5];
                ops[k].campaigns_len = strlen(ops[k].campaigns);
            }
        }

        spliced = 0;

        for (k = 0; k < rounds; k++) {
            for (a = 0; a < 4; a++) {
                r[a][k] = bench_splice_run(ops, n, batch, nprof, a >> 1,
                                           a & 1, &spliced);
            }
        }

        for (a = 0; a < 4; a++) {
            qsort(r[a], rounds, sizeof(double), cmp_double);
            m[a] = r[a][rounds / 2];
        }

        printf("# fast path: %zu touches over %u realistic profiles, "
               "uniform, campaigns in half (per CPU second, median of "
               "%zu):\n"
               "#   one by one:         %.0f touches/s full path, "
               "%.0f fast path (%.2fx)\n"
               "#   batches of %zu:     %.0f touches/s full path, "
               "%.0f fast path (%.2fx)\n",
               n, nprof, rounds,
               m[0], m[1], m[0] > 0 ? m[1] / m[0] : 0,
               batch, m[2], m[3], m[2] > 0 ? m[3] / m[2] : 0);

        ok(m[0] > 0 && m[1] > 0 && m[2] > 0 && m[3] > 0,
           "fast path benchmark ran: %u profiles", nprof);
        ok(spliced > 0, "fast path benchmark: the fast path was taken");
    }

    free(ops);
}


int
main(void)
{
    test_edges();
    test_random();
    test_alias_moved();
    test_alias_shared();
    test_foreign_records();
    bench();
    bench_splice();

    return done_testing();
}
