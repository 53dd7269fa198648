/*
 * Unit tests of omni_batch.c, the write path's one entry point, without
 * nginx: log first (touchpoints under the resolved profile, no profile
 * write), the fold (counters into profiles, new visitors' profiles), both
 * at once (the old writer), event groups and their ranges, the queue
 * positions in meta "queue", retention, and all or nothing on a full map.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omni_tap.h"
#include "omni_batch.h"
#include "omni_feed.h"

#include "store_helpers.h"


#define NOW  1700000000u

#define QID  0x1234567890abcdefULL


static void
mkid(unsigned char *id, unsigned n)
{
    memset(id, 0, OMNI_ID_LEN);
    id[0] = 0xb0;
    id[OMNI_ID_LEN - 1] = (unsigned char) n;
}


static void
touch(omni_touch_t *t, unsigned n, uint32_t time)
{
    memset(t, 0, sizeof(omni_touch_t));
    t->kind = OMNI_ALIAS_COOKIE;
    mkid(t->id, n);
    t->channel = OMNI_CH_WEB;
    t->time = time;
    t->visit_timeout = 1800;
    t->record = 1;
    t->path = "/p";
    t->path_len = 2;
    t->campaigns = "spring";
    t->campaigns_len = 6;
}


static uint64_t
count_tp(omni_store_t *st)
{
    omni_store_stat_t  s;

    if (omni_store_stat(st, &s) != OMNI_OK) {
        return (uint64_t) -1;
    }

    return s.touchpoints;
}


/* visits of the profile pid; -1 when there is none */
static long
visits(omni_store_t *st, const unsigned char *pid)
{
    long        v;
    omni_rec_t  rec;

    if (omni_store_read_begin(st) != OMNI_OK) {
        return -2;
    }

    v = omni_store_get_profile(st, pid, &rec) == OMNI_OK ? (long) rec.visits
                                                         : -1;
    omni_store_read_end(st);

    return v;
}


static int
apply(omni_store_t *st, const omni_batch_opts_t *o, omni_batch_t *b)
{
    b->now = NOW + 60;
    return omni_batch_apply(st, o, b);
}


static void
test_log_then_fold(omni_store_t *st)
{
    unsigned char      pids[4][OMNI_ID_LEN], fpids[4][OMNI_ID_LEN];
    unsigned char      id1[OMNI_ID_LEN], id2[OMNI_ID_LEN];
    uint64_t           pos, fold, tp0;
    omni_touch_t       t[4];
    omni_batch_t       b;
    omni_batch_opts_t  o;

    memset(&o, 0, sizeof(o));
    mkid(id1, 1);
    mkid(id2, 2);

    tp0 = count_tp(st);

    /* log only: two new visitors, visitor 1 twice */
    touch(&t[0], 1, NOW);
    touch(&t[1], 2, NOW);
    touch(&t[2], 1, NOW + 1);

    memset(&b, 0, sizeof(b));
    b.touches = t;
    b.ntouches = 3;
    b.pids = pids;
    b.queue_id = QID;
    b.queue_pos = 300;
    b.fold_pos = 0;

    is_int(apply(st, &o, &b), OMNI_OK, "log: the batch commits");
    is_int((int) (count_tp(st) - tp0), 3, "log: three touchpoints");
    ok(memcmp(pids[0], id1, OMNI_ID_LEN) == 0
       && memcmp(pids[1], id2, OMNI_ID_LEN) == 0
       && memcmp(pids[2], id1, OMNI_ID_LEN) == 0,
       "log: a new visitor's touchpoint names the id its profile will get");
    is_int((int) visits(st, id1), -1, "log: no profile written");

    is_int(omni_store_queue_pos(st, QID, &pos, &fold), OMNI_OK,
           "queue positions read");
    ok(pos == 300 && fold == 0, "meta queue: logged 300, folded 0");
    is_int(omni_store_queue_pos(st, QID + 1, &pos, &fold), OMNI_OK,
           "another queue's positions read");
    ok(pos == 0 && fold == 0, "another queue id: nothing committed");

    /* the fold of those three, nothing logged */
    memset(&b, 0, sizeof(b));
    b.fold = t;
    b.nfold = 3;
    b.fold_pids = fpids;
    b.queue_id = QID;
    b.queue_pos = 300;
    b.fold_pos = 300;

    is_int(apply(st, &o, &b), OMNI_OK, "fold: the batch commits");
    is_int((int) (count_tp(st) - tp0), 3, "fold: no touchpoint added");
    is_int((int) visits(st, id1), 1, "fold: visitor 1's profile, 1 visit "
           "for two page views within the visit timeout");
    is_int((int) visits(st, id2), 1, "fold: visitor 2's profile");
    ok(memcmp(fpids[2], id1, OMNI_ID_LEN) == 0, "fold: pids filled");

    if (omni_store_read_begin(st) == OMNI_OK) {
        ok(omni_store_read_queue_pos(st, QID, &fold) == OMNI_OK
           && fold == 300, "a reader's snapshot says folded up to 300");
        omni_store_read_end(st);
    }

    /* both at once, a new visit (after the timeout) of visitor 1 */
    touch(&t[3], 1, NOW + 7200);

    memset(&b, 0, sizeof(b));
    b.touches = &t[3];
    b.ntouches = 1;
    b.pids = pids;
    b.fold = &t[3];
    b.nfold = 1;
    b.fold_pids = pids;

    is_int(apply(st, &o, &b), OMNI_OK, "log and fold at once");
    is_int((int) visits(st, id1), 2, "the second visit is counted");
    is_int((int) (count_tp(st) - tp0), 4, "and logged");
    ok(omni_store_queue_pos(st, QID, &pos, &fold) == OMNI_OK
       && pos == 300 && fold == 300,
       "a batch without a queue id leaves meta queue alone");
}


static void
test_events(omni_store_t *st)
{
    int                  status[3];
    unsigned char        pids[3][OMNI_ID_LEN];
    omni_batch_t         b;
    omni_event_ctx_t     c;
    omni_event_err_t     err;
    omni_batch_opts_t    o;
    omni_event_batch_t   eb;
    omni_batch_events_t  g;

    const char  *text = "[{\"type\":\"track\",\"event\":\"Product Added\","
                        "\"messageId\":\"b-1\",\"userId\":\"U-1\","
                        "\"properties\":{\"sku\":\"S1\"}},"
                        "{\"type\":\"track\",\"event\":\"Product Added\","
                        "\"messageId\":\"b-2\",\"userId\":\"U-1\","
                        "\"properties\":{\"sku\":\"S2\"}},"
                        "{\"type\":\"track\",\"event\":\"Product Added\","
                        "\"messageId\":\"b-3\",\"userId\":\"U-1\","
                        "\"properties\":{\"sku\":\"S3\"}}]";

    memset(&c, 0, sizeof(c));
    c.trust = OMNI_TRUST_SERVER;
    c.source = OMNI_SRC_SERVER;
    c.now = NOW;
    c.channel = OMNI_CH_MAX;

    if (omni_event_batch_parse(&eb, text, strlen(text), &c, &err)
        != OMNI_OK)
    {
        ok(0, "events parse: %s %s", err.field, err.reason);
        return;
    }

    memset(&o, 0, sizeof(o));
    o.sync = 1;

    memset(status, 0xff, sizeof(status));
    memset(&g, 0, sizeof(g));
    g.batch = &eb;
    g.from = 0;
    g.to = 2;
    g.status = status;
    g.pids = pids;

    memset(&b, 0, sizeof(b));
    b.events = &g;

    is_int(apply(st, &o, &b), OMNI_OK, "events: the batch commits, synced");
    is_int((int) b.nevents, 2, "events: only [from, to) applied");
    ok(status[0] == OMNI_EVENT_ACCEPTED && status[1] == OMNI_EVENT_ACCEPTED,
       "events: accepted");
    ok(status[2] == -1, "events: the one outside the range untouched");
    ok(memcmp(pids[0], pids[1], OMNI_ID_LEN) == 0,
       "events: one customer, one profile");

    g.from = 1;
    g.to = 3;

    is_int(apply(st, &o, &b), OMNI_OK, "events: the next range");
    ok(status[1] == OMNI_EVENT_DUPLICATE, "events: b-2 again is a duplicate");
    ok(status[2] == OMNI_EVENT_ACCEPTED, "events: b-3 accepted");

    omni_event_batch_free(&eb);
}


static void
test_retention(omni_store_t *st)
{
    unsigned            i;
    unsigned char       pids[40][OMNI_ID_LEN];
    omni_touch_t        t[40];
    omni_batch_t        b;
    omni_batch_opts_t   o;

    for (i = 0; i < 40; i++) {
        touch(&t[i], 100 + (i % 7), NOW + i);
    }

    memset(&o, 0, sizeof(o));
    o.tp_max = 10;

    memset(&b, 0, sizeof(b));
    b.touches = t;
    b.ntouches = 40;
    b.pids = pids;

    is_int(apply(st, &o, &b), OMNI_OK, "retention: the batch commits");
    ok(count_tp(st) <= 10, "retention: the log is back to tp_max (%llu)",
       (unsigned long long) count_tp(st));
    ok(b.pruned > 0, "retention: it says how many it removed (%u)",
       b.pruned);
}


/* A map too small for the batch: OMNI_MAP_FULL, nothing of it stays. */
static void
test_all_or_nothing(void)
{
    char                dir[64], err[512];
    uint64_t            pos, fold, tp0;
    unsigned            i, n;
    omni_store_t       *st;
    omni_touch_t       *t;
    omni_batch_t        b;
    omni_store_opts_t   so;
    omni_batch_opts_t   o;
    omni_origin_t       origins[2] = { { 0xfeed, 4096 }, { 0xbeef, 64 } };
    omni_origin_t       got[3];
    unsigned char       known[3];
    unsigned char     (*pids)[OMNI_ID_LEN];

    strcpy(dir, "/tmp/omni-test-batch-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        ok(0, "mkdtemp");
        return;
    }

    memset(&so, 0, sizeof(so));
    so.create = 1;
    so.nosync = 1;
    so.map_size = (size_t) 1 << 20;

    if (omni_store_open(&st, dir, &so, err, sizeof(err)) != OMNI_OK) {
        ok(0, "open: %s", err);
        return;
    }

    n = 20000;
    t = calloc(n, sizeof(omni_touch_t));
    pids = calloc(n, OMNI_ID_LEN);

    for (i = 0; i < n; i++) {
        touch(&t[i], i, NOW);
        t[i].id[1] = (unsigned char) (i >> 8);
        t[i].id[2] = (unsigned char) (i >> 16);
    }

    tp0 = count_tp(st);

    memset(&o, 0, sizeof(o));
    memset(&b, 0, sizeof(b));
    b.touches = t;
    b.ntouches = n;
    b.pids = pids;
    b.fold = t;
    b.nfold = n;
    b.fold_pids = pids;
    b.queue_id = QID;
    b.queue_pos = 999;
    b.fold_pos = 999;
    b.origins = origins;
    b.norigins = 2;

    is_int(apply(st, &o, &b), OMNI_MAP_FULL, "a full map: OMNI_MAP_FULL");
    is_int((int) (count_tp(st) - tp0), 0, "no touchpoint of the batch");
    ok(omni_store_queue_pos(st, QID, &pos, &fold) == OMNI_OK && pos == 0,
       "nor its queue position");

    memcpy(got, origins, sizeof(origins));
    got[0].end = got[1].end = 7;
    ok(omni_store_origins(st, got, 2, known) == OMNI_OK
       && !known[0] && !known[1] && got[0].end == 0 && got[1].end == 0,
       "nor its cluster origins");
    is_int((int) visits(st, t[0].id), -1, "nor any profile");

    is_int(omni_store_set_map_size(st, (size_t) 64 << 20), OMNI_OK,
           "the map grows");
    is_int(apply(st, &o, &b), OMNI_OK, "the same batch, again: it commits");
    is_int((int) (count_tp(st) - tp0), (int) n, "every touchpoint");

    memset(got, 0, sizeof(got));
    got[0].zone = 0xfeed;
    got[1].zone = 0xbeef;
    got[2].zone = 0xabcd;
    ok(omni_store_origins(st, got, 3, known) == OMNI_OK
       && known[0] && got[0].end == 4096 && known[1] && got[1].end == 64
       && !known[2], "the origins, with the batch: two zones, not a third");

    free(t);
    free(pids);
    omni_store_close(st);
    store_remove(dir);
}


int
main(void)
{
    char           dir[64];
    omni_store_t  *st;

    st = store_new(dir);
    if (st == NULL) {
        ok(0, "a store");
        return done_testing();
    }

    test_log_then_fold(st);
    test_events(st);
    test_retention(st);

    omni_store_close(st);
    store_remove(dir);

    test_all_or_nothing();

    return done_testing();
}
