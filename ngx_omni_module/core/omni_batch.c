/*
 * omni_batch_apply(): the write path's one entry point (omni_batch.h).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "omni_batch.h"
#include "omni_feed.h"
#include "omni_store_int.h"


/* meta "queue": u64 BE queue id, u64 BE position */
#define OMNI_QUEUE_META  "queue"
#define OMNI_STREAM_META "stream"
#define OMNI_ORIGIN_META "origin"       /* + the zone's id, big-endian */


static int
omni_batch_touchpoints(omni_wtxn_t *w, omni_batch_t *b)
{
    int      rc;
    char    *json;
    size_t   i, len;

    for (i = 0; i < b->ntouches; i++) {
        if (!b->touches[i].record) {
            continue;
        }

        /* The touchpoint commits with its touch, or neither does. */
        json = omni_feed_record(&b->touches[i], b->pids[i], &len);
        if (json == NULL) {
            snprintf(omni_store_err, OMNI_ERR_LEN,
                     "touchpoint: out of memory");
            return OMNI_ERROR;
        }

        rc = omni_wtxn_append_touchpoint(w, b->pids[i], b->touches[i].time,
                                         json, len, NULL);
        free(json);

        if (rc != OMNI_OK) {
            return rc;
        }
    }

    return OMNI_OK;
}


static int
omni_batch_events(omni_wtxn_t *w, omni_batch_t *b)
{
    int                   rc;
    unsigned              i, to;
    omni_batch_events_t  *g;

    for (g = b->events; g; g = g->next) {
        to = g->to ? g->to : g->batch->n;

        for (i = g->from; i < to && i < g->batch->n; i++) {
            if (g->batch->rc[i] != OMNI_OK) {
                continue;
            }

            rc = omni_event_apply(w, &g->batch->events[i], &g->status[i],
                                  g->pids[i]);
            if (rc != OMNI_OK) {
                return rc;
            }

            b->nevents++;
        }
    }

    return OMNI_OK;
}


int
omni_resolve_touches(omni_wtxn_t *w, const omni_touch_t *t, size_t n,
    unsigned char (*pids)[OMNI_ID_LEN])
{
    int     rc;
    char    hex[OMNI_ID_HEX_LEN + 1];
    size_t  i;

    for (i = 0; i < n; i++) {
        if (t[i].pid_known) {
            memcpy(pids[i], t[i].pid, OMNI_ID_LEN);
            continue;
        }

        /* the previous touch is often the same visitor's */
        if (i && t[i].kind == t[i - 1].kind
            && memcmp(t[i].id, t[i - 1].id, OMNI_ID_LEN) == 0)
        {
            memcpy(pids[i], pids[i - 1], OMNI_ID_LEN);
            continue;
        }

        /* Cookie and device aliases are the id's hex text. */
        omni_id_hex(t[i].id, hex);

        rc = omni_wtxn_get_alias(w, t[i].kind, hex, OMNI_ID_HEX_LEN,
                                 pids[i]);

        if (rc == OMNI_NOTFOUND) {
            memcpy(pids[i], t[i].id, OMNI_ID_LEN);

        } else if (rc != OMNI_OK) {
            return rc;
        }
    }

    return OMNI_OK;
}


static int
omni_batch_queue_put(omni_wtxn_t *w, uint64_t id, uint64_t pos,
    uint64_t fold)
{
    int            rc;
    MDB_val        key, val;
    unsigned char  buf[24];

    omni_put_be64(buf, id);
    omni_put_be64(buf + 8, pos);
    omni_put_be64(buf + 16, fold);

    key.mv_data = (void *) OMNI_QUEUE_META;
    key.mv_size = sizeof(OMNI_QUEUE_META) - 1;
    val.mv_data = buf;
    val.mv_size = sizeof(buf);

    rc = mdb_put(w->txn, w->st->meta, &key, &val, 0);
    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_put(meta queue) failed", rc);
    }

    return OMNI_OK;
}


/* meta "origin" + id: the key of a zone's applied position */
static void
omni_batch_origin_key(unsigned char *buf, uint64_t zone, MDB_val *key)
{
    memcpy(buf, OMNI_ORIGIN_META, sizeof(OMNI_ORIGIN_META) - 1);
    omni_put_be64(buf + sizeof(OMNI_ORIGIN_META) - 1, zone);

    key->mv_data = buf;
    key->mv_size = sizeof(OMNI_ORIGIN_META) - 1 + 8;
}


static int
omni_batch_origins_put(omni_wtxn_t *w, const omni_origin_t *o, size_t n)
{
    int            rc;
    size_t         i;
    MDB_val        key, val;
    unsigned char  kbuf[sizeof(OMNI_ORIGIN_META) - 1 + 8], vbuf[8];

    for (i = 0; i < n; i++) {
        omni_batch_origin_key(kbuf, o[i].zone, &key);
        omni_put_be64(vbuf, o[i].end);
        val.mv_data = vbuf;
        val.mv_size = sizeof(vbuf);

        rc = mdb_put(w->txn, w->st->meta, &key, &val, 0);
        if (rc != 0) {
            return omni_store_fail(w->st, "mdb_put(meta origin) failed", rc);
        }
    }

    return OMNI_OK;
}


int
omni_store_origins(omni_store_t *st, omni_origin_t *origins, size_t n,
    unsigned char *known)
{
    int            rc;
    size_t         i;
    MDB_txn       *txn;
    MDB_val        key, val;
    unsigned char  kbuf[sizeof(OMNI_ORIGIN_META) - 1 + 8];

    rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        return omni_store_fail(st, "mdb_txn_begin(origins) failed", rc);
    }

    for (i = 0; i < n; i++) {
        omni_batch_origin_key(kbuf, origins[i].zone, &key);

        rc = mdb_get(txn, st->meta, &key, &val);

        if (rc == 0 && val.mv_size == 8) {
            origins[i].end = omni_get_be64(val.mv_data);
            known[i] = 1;

        } else if (rc == 0 || rc == MDB_NOTFOUND) {
            origins[i].end = 0;
            known[i] = 0;

        } else {
            mdb_txn_abort(txn);
            return omni_store_fail(st, "mdb_get(meta origin) failed", rc);
        }
    }

    mdb_txn_abort(txn);

    return OMNI_OK;
}


static int omni_batch_apply_filtered(omni_store_t *st,
    const omni_batch_opts_t *opts, omni_batch_t *b);


/* Whether some touch is a browser's first request (no cookie yet). */
static int
omni_batch_has_first(const omni_touch_t *t, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (t[i].first) {
            return 1;
        }
    }

    return 0;
}


/*
 * The touches to apply, as a filtered copy (free it) or t itself:
 * without those a forgotten visitor made up to the second of the forget
 * (tomb: queued while omnictl forget ran, they must not bring the person
 * back), and for the fold (fold set) without first requests.
 */
static const omni_touch_t *
omni_batch_keep(omni_wtxn_t *w, const omni_touch_t *t, size_t *n, int tomb,
    int fold, int *rcp)
{
    int            rc, drop;
    char           hex[OMNI_ID_HEX_LEN + 1];
    size_t         i, k;
    uint32_t       when;
    omni_touch_t  *out;

    out = NULL;
    k = 0;
    *rcp = OMNI_OK;

    for (i = 0; i < *n; i++) {
        drop = fold && t[i].first;

        if (!drop && tomb) {
            omni_id_hex(t[i].id, hex);

            rc = omni_wtxn_get_tombstone(w, t[i].kind, hex, OMNI_ID_HEX_LEN,
                                         &when);
            if (rc != OMNI_OK && rc != OMNI_NOTFOUND) {
                *rcp = rc;
                free(out);
                return NULL;
            }

            drop = (rc == OMNI_OK && t[i].time <= when);
        }

        if (drop) {
            if (out == NULL) {
                out = malloc(*n * sizeof(omni_touch_t));
                if (out == NULL) {
                    *rcp = OMNI_ERROR;
                    return NULL;
                }

                memcpy(out, t, i * sizeof(omni_touch_t));
                k = i;
            }

            continue;
        }

        if (out) {
            out[k++] = t[i];
        }
    }

    if (out == NULL) {
        return t;
    }

    *n = k;

    return out;
}


int
omni_batch_apply(omni_store_t *st, const omni_batch_opts_t *opts,
    omni_batch_t *b)
{
    int                  rc;
    size_t               nfold, ntouches;
    const omni_touch_t  *fold, *touches;

    fold = b->fold;
    nfold = b->nfold;
    touches = b->touches;
    ntouches = b->ntouches;

    rc = omni_batch_apply_filtered(st, opts, b);

    /* the caller's arrays, as it gave them */
    if (b->fold != fold) {
        free((void *) b->fold);
    }

    if (b->touches != touches && b->touches != b->fold) {
        free((void *) b->touches);
    }

    b->fold = fold;
    b->nfold = nfold;
    b->touches = touches;
    b->ntouches = ntouches;

    return rc;
}


static int
omni_batch_apply_filtered(omni_store_t *st, const omni_batch_opts_t *opts,
    omni_batch_t *b)
{
    int           rc, same, tomb;
    double        t0;
    uint64_t      txnid;
    uint32_t      min_time;
    unsigned      pruned;
    omni_wtxn_t  *w;

    b->nevents = 0;
    b->pruned = 0;
    b->merges = 0;

    if (b->now == 0) {
        b->now = (uint32_t) time(NULL);
    }

    /* a journaled writer's first batch: a checkpoint of what is there */
    if (st->journal && !st->started) {
        rc = omni_journal_start(st);
        if (rc != OMNI_OK) {
            return rc;
        }
    }

    rc = omni_store_write_begin(st, &w);
    if (rc != OMNI_OK) {
        return rc;
    }

    /*
     * Touches the fold and the log must not apply: a forgotten visitor's
     * (tombstones), and for the fold, a browser's first request (it came
     * without a cookie: no profile until it comes back with one, so a
     * cookieless flood creates no profiles).  Filtered copies, freed by
     * omni_batch_apply().
     */
    tomb = (b->nfold || b->ntouches) && omni_wtxn_has_tombstones(w);

    if (b->nfold && (tomb || omni_batch_has_first(b->fold, b->nfold))) {
        same = (b->fold == b->touches);
        b->fold = omni_batch_keep(w, b->fold, &b->nfold, tomb, 1, &rc);

        if (rc != OMNI_OK) {
            goto failed;
        }

        if (same && !tomb) {
            /* the log keeps the first requests: not the fold's copy */
            same = 0;
        }

        if (same) {
            b->touches = b->fold;
            b->ntouches = b->nfold;
        }

        tomb = tomb && !same;
    }

    if (b->ntouches && tomb) {
        b->touches = omni_batch_keep(w, b->touches, &b->ntouches, 1, 0, &rc);

        if (rc != OMNI_OK) {
            goto failed;
        }
    }

    /* the fold first: a touchpoint names the profile it created */
    if (b->nfold) {
        rc = omni_apply_touches(w, b->fold, b->nfold, b->fold_pids);
        if (rc != OMNI_OK) {
            goto failed;
        }
    }

    if (b->ntouches) {
        if (b->fold == b->touches && b->nfold == b->ntouches) {
            if (b->pids != b->fold_pids) {
                memcpy(b->pids, b->fold_pids, b->ntouches * OMNI_ID_LEN);
            }

        } else {
            rc = omni_resolve_touches(w, b->touches, b->ntouches, b->pids);
            if (rc != OMNI_OK) {
                goto failed;
            }
        }

        rc = omni_batch_touchpoints(w, b);
        if (rc != OMNI_OK) {
            goto failed;
        }
    }

    if (b->events) {
        rc = omni_batch_events(w, b);
        if (rc != OMNI_OK) {
            goto failed;
        }

        rc = omni_event_prune(w, b->now, 256);
        if (rc != OMNI_OK) {
            goto failed;
        }
    }

    /*
     * Retention: a bounded number of the oldest touchpoints per batch
     * (twice what it appended, and some), so the log converges to its
     * limits without ever holding the write lock for long.
     */
    min_time = 0;

    b->expired = 0;

    if (opts->anon_ttl && b->expire_budget && b->now > opts->anon_ttl) {
        rc = omni_wtxn_expire_anonymous(w, b->now - opts->anon_ttl,
                                        b->expire_budget, b->expire_from,
                                        &b->expired);
        if (rc != OMNI_OK) {
            goto failed;
        }
    }

    if (opts->tp_max_age && b->now > opts->tp_max_age) {
        min_time = b->now - opts->tp_max_age;
    }

    if (opts->tp_max || min_time) {
        rc = omni_wtxn_prune_touchpoints(w, opts->tp_max, min_time,
                                         (unsigned) (2 * b->ntouches + 64),
                                         &pruned);
        if (rc != OMNI_OK) {
            goto failed;
        }

        b->pruned = pruned;
    }

    if (b->queue_id) {
        rc = omni_batch_queue_put(w, b->queue_id, b->queue_pos,
                                  b->fold_pos);
        if (rc != OMNI_OK) {
            goto failed;
        }
    }

    if (b->norigins) {
        rc = omni_batch_origins_put(w, b->origins, b->norigins);
        if (rc != OMNI_OK) {
            goto failed;
        }
    }

    if (b->stream_seq) {
        MDB_val        key, val;
        unsigned char  buf[8];

        omni_put_be64(buf, b->stream_seq);
        key.mv_data = (void *) OMNI_STREAM_META;
        key.mv_size = sizeof(OMNI_STREAM_META) - 1;
        val.mv_data = buf;
        val.mv_size = sizeof(buf);

        rc = mdb_put(w->txn, st->meta, &key, &val, 0);
        if (rc != 0) {
            rc = omni_store_fail(st, "mdb_put(meta stream) failed", rc);
            goto failed;
        }
    }

    b->merges = w->merges;

    t0 = omni_clock_s();
    txnid = mdb_txn_id(w->txn);
    rc = omni_wtxn_commit(w);

    if (rc == OMNI_OK && st->journal) {
        /* one sync: the events' own bytes, in the journal */
        if (b->events && b->njournal) {
            rc = omni_journal_append(st, txnid, b->journal, b->njournal);
        }

    } else if (rc == OMNI_OK && opts->sync && b->events) {
        /*
         * A store opened with nometasync commits its data but not its
         * meta page: a batch whose events will be acknowledged is made
         * durable here, with one more sync.
         */
        rc = omni_store_sync(st);
    }

    b->commit_s = omni_clock_s() - t0;

    return rc;

failed:

    omni_wtxn_abort(w);
    return rc;
}


static int
omni_batch_queue_get(omni_store_t *st, MDB_txn *txn, uint64_t queue_id,
    uint64_t *pos, uint64_t *fold)
{
    int       rc;
    MDB_val   key, val;

    *pos = 0;
    *fold = 0;

    key.mv_data = (void *) OMNI_QUEUE_META;
    key.mv_size = sizeof(OMNI_QUEUE_META) - 1;

    rc = mdb_get(txn, st->meta, &key, &val);

    if (rc == 0 && val.mv_size == 24
        && omni_get_be64(val.mv_data) == queue_id)
    {
        *pos = omni_get_be64((unsigned char *) val.mv_data + 8);
        *fold = omni_get_be64((unsigned char *) val.mv_data + 16);

    } else if (rc != 0 && rc != MDB_NOTFOUND) {
        return omni_store_fail(st, "mdb_get(meta queue) failed", rc);
    }

    return OMNI_OK;
}


int
omni_store_read_queue_pos(omni_store_t *st, uint64_t queue_id,
    uint64_t *fold)
{
    uint64_t  pos;

    *fold = 0;

    if (st->rtxn == NULL) {
        return OMNI_ERROR;
    }

    return omni_batch_queue_get(st, st->rtxn, queue_id, &pos, fold);
}


int
omni_store_queue_pos(omni_store_t *st, uint64_t queue_id, uint64_t *pos,
    uint64_t *fold)
{
    int       rc;
    MDB_txn  *txn;

    *pos = 0;
    *fold = 0;

    rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        return omni_store_fail(st, "mdb_txn_begin(queue) failed", rc);
    }

    rc = omni_batch_queue_get(st, txn, queue_id, pos, fold);

    mdb_txn_abort(txn);

    return rc;
}


int
omni_store_stream_seq(omni_store_t *st, uint64_t *seq)
{
    int       rc;
    MDB_val   key, val;
    MDB_txn  *txn;

    *seq = 0;

    rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        return omni_store_fail(st, "mdb_txn_begin(stream) failed", rc);
    }

    key.mv_data = (void *) OMNI_STREAM_META;
    key.mv_size = sizeof(OMNI_STREAM_META) - 1;

    rc = mdb_get(txn, st->meta, &key, &val);

    if (rc == 0 && val.mv_size == 8) {
        *seq = omni_get_be64(val.mv_data);

    } else if (rc != 0 && rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return omni_store_fail(st, "mdb_get(meta stream) failed", rc);
    }

    mdb_txn_abort(txn);

    return OMNI_OK;
}
