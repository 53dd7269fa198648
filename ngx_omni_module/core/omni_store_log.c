/*
 * The store's touchpoint log (omni_store.h): the feed and its cursor,
 * appends, retention, and forget, which finds a profile's touchpoints by
 * one pass over the log's headers.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lmdb.h>

#include "omni_store_int.h"


int
omni_store_feed(omni_store_t *st, uint64_t after, unsigned limit,
    omni_store_tp_cb cb, void *arg, uint64_t *first)
{
    int            rc, ret;
    unsigned       n;
    uint64_t       pruned;
    MDB_val        key, val;
    MDB_cursor    *cur;
    unsigned char  kbuf[8];

    /*
     * Expiry is retention's watermark, not the oldest key: a gap left by
     * forget (erasure) is intended, and a log emptied by pruning still
     * expires the cursors it overtook.
     */
    ret = omni_store_meta_u64(st, st->rtxn, "tp_pruned", &pruned);
    if (ret != OMNI_OK) {
        return ret;
    }

    *first = pruned + 1;

    if (after < pruned) {
        /* Expired: the caller reports it, nothing is served. */
        return OMNI_OK;
    }

    rc = mdb_cursor_open(st->rtxn, st->touchpoints, &cur);
    if (rc != 0) {
        return omni_store_fail(st, "mdb_cursor_open() failed", rc);
    }

    omni_put_be64(kbuf, after + 1);
    key.mv_data = kbuf;
    key.mv_size = 8;

    ret = OMNI_OK;
    n = 0;

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
         rc == 0 && n < limit;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (key.mv_size != 8 || val.mv_size < OMNI_TP_HEADER) {
            continue;
        }

        n++;

        ret = cb(arg, omni_get_be64(key.mv_data),
                 (unsigned char *) val.mv_data + OMNI_TP_HEADER,
                 val.mv_size - OMNI_TP_HEADER);
        if (ret != OMNI_OK) {
            break;
        }
    }

    if (rc != 0 && rc != MDB_NOTFOUND) {
        ret = omni_store_fail(st, "mdb_cursor_get() failed", rc);
    }

    mdb_cursor_close(cur);

    return ret;
}


int
omni_store_foreach_touchpoint(omni_store_t *st, uint64_t after,
    unsigned limit, omni_store_tp_cb cb, void *arg)
{
    int            rc, ret;
    unsigned       n;
    MDB_val        key, val;
    MDB_cursor    *cur;
    unsigned char  kbuf[8];

    ret = omni_store_read_begin(st);
    if (ret != OMNI_OK) {
        return ret;
    }

    rc = mdb_cursor_open(st->rtxn, st->touchpoints, &cur);
    if (rc != 0) {
        omni_store_read_end(st);
        return omni_store_fail(st, "mdb_cursor_open() failed", rc);
    }

    omni_put_be64(kbuf, after + 1);
    key.mv_data = kbuf;
    key.mv_size = 8;

    ret = OMNI_OK;
    n = 0;

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
         rc == 0 && (limit == 0 || n < limit);
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT), n++)
    {
        if (key.mv_size != 8) {
            continue;
        }

        if (val.mv_size < OMNI_TP_HEADER) {
            continue;
        }

        ret = cb(arg, omni_get_be64(key.mv_data),
                 (unsigned char *) val.mv_data + OMNI_TP_HEADER,
                 val.mv_size - OMNI_TP_HEADER);
        if (ret != OMNI_OK) {
            break;
        }
    }

    if (rc != 0 && rc != MDB_NOTFOUND) {
        ret = omni_store_fail(st, "mdb_cursor_get() failed", rc);
    }

    mdb_cursor_close(cur);
    omni_store_read_end(st);

    return ret;
}


int
omni_store_edge_seq(omni_store_t *st, MDB_txn *txn, MDB_cursor_op op,
    uint64_t *seq)
{
    int          rc;
    MDB_val      key, val;
    MDB_cursor  *cur;

    *seq = 0;

    rc = mdb_cursor_open(txn, st->touchpoints, &cur);
    if (rc != 0) {
        return omni_store_fail(st, "mdb_cursor_open() failed", rc);
    }

    rc = mdb_cursor_get(cur, &key, &val, op);
    if (rc == 0 && key.mv_size == 8) {
        *seq = omni_get_be64(key.mv_data);
    }

    mdb_cursor_close(cur);

    if (rc != 0 && rc != MDB_NOTFOUND) {
        return omni_store_fail(st, "mdb_cursor_get() failed", rc);
    }

    return OMNI_OK;
}


int
omni_wtxn_forget(omni_wtxn_t *w, const unsigned char *pid,
    unsigned *naliases, unsigned *ntouchpoints)
{
    int             rc, ret;
    size_t          nids;
    unsigned        i;
    MDB_val         key, val;
    MDB_cursor     *cur;
    omni_profile_t  p;
    unsigned char   owner[OMNI_ID_LEN], *ids;

    *naliases = 0;
    *ntouchpoints = 0;

    ret = omni_wtxn_get_profile(w, pid, &p);
    if (ret != OMNI_OK) {
        omni_profile_free(&p);
        return ret;
    }

    /* Aliases: only those that still point at this profile. */
    for (i = 0; i < p.naliases; i++) {
        ret = omni_wtxn_get_alias(w, p.aliases[i].kind, p.aliases[i].value,
                                  strlen(p.aliases[i].value), owner);
        if (ret == OMNI_OK && memcmp(owner, pid, OMNI_ID_LEN) == 0) {
            ret = omni_wtxn_del_alias(w, p.aliases[i].kind,
                                      p.aliases[i].value,
                                      strlen(p.aliases[i].value));
            if (ret == OMNI_OK) {
                (*naliases)++;
            }
        }

        if (ret != OMNI_OK && ret != OMNI_NOTFOUND) {
            omni_profile_free(&p);
            return ret;
        }
    }

    omni_profile_free(&p);

    /*
     * A profile keeps its newest OMNI_MAX_ALIASES aliases only; older keys
     * may still point at it.  Erasure must be complete, so sweep the
     * alias table for anything left (erasure is rare; a scan is fine).
     */
    rc = mdb_cursor_open(w->txn, w->st->aliases, &cur);
    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_cursor_open() failed", rc);
    }

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (val.mv_size == OMNI_ID_LEN
            && memcmp(val.mv_data, pid, OMNI_ID_LEN) == 0)
        {
            rc = mdb_cursor_del(cur, 0);
            if (rc != 0) {
                break;
            }

            (*naliases)++;
        }
    }

    mdb_cursor_close(cur);

    if (rc != 0 && rc != MDB_NOTFOUND) {
        return omni_store_fail(w->st, "cannot delete aliases", rc);
    }

    /*
     * Touchpoints: one scan of the log's headers for those of pid and of
     * every profile merged into it (their headers keep the id they were
     * recorded under).  Reads do not dirty pages; only the deletes do.
     */
    ret = omni_wtxn_merged_take(w, pid, &ids, &nids);
    if (ret != OMNI_OK) {
        return ret;
    }

    rc = mdb_cursor_open(w->txn, w->st->touchpoints, &cur);
    if (rc != 0) {
        free(ids);
        return omni_store_fail(w->st, "mdb_cursor_open() failed", rc);
    }

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (val.mv_size < OMNI_TP_HEADER
            || bsearch(val.mv_data, ids, nids, OMNI_ID_LEN, omni_id_cmp)
               == NULL)
        {
            continue;
        }

        rc = mdb_cursor_del(cur, 0);
        if (rc != 0) {
            break;
        }

        (*ntouchpoints)++;
    }

    mdb_cursor_close(cur);
    free(ids);

    if (rc != 0 && rc != MDB_NOTFOUND) {
        return omni_store_fail(w->st, "cannot delete touchpoints", rc);
    }

    key.mv_data = (void *) pid;
    key.mv_size = OMNI_ID_LEN;

    rc = mdb_del(w->txn, w->st->profiles, &key, NULL);
    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_del(profiles) failed", rc);
    }

    return OMNI_OK;
}


int
omni_wtxn_append_touchpoint(omni_wtxn_t *w, const unsigned char *pid,
    uint32_t time, const void *data, size_t len, uint64_t *seq)
{
    int            rc, ret;
    uint64_t       last, next;
    MDB_val        key, val;
    unsigned char  kbuf[8], *v;

    if (w->next_seq == 0) {
        ret = omni_store_edge_seq(w->st, w->txn, MDB_LAST, &last);
        if (ret == OMNI_OK) {
            ret = omni_store_meta_u64(w->st, w->txn, "tp_next", &next);
        }

        if (ret != OMNI_OK) {
            return ret;
        }

        /* Never reuse a number, even after pruning emptied the log. */
        w->next_seq = next > last + 1 ? next : last + 1;
    }

    omni_put_be64(kbuf, w->next_seq);
    key.mv_data = kbuf;
    key.mv_size = 8;
    val.mv_data = NULL;
    val.mv_size = OMNI_TP_HEADER + len;

    /* Sequence numbers only grow, so MDB_APPEND keeps pages full. */
    rc = mdb_put(w->txn, w->st->touchpoints, &key, &val,
                 MDB_APPEND|MDB_RESERVE);
    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_put(touchpoints) failed", rc);
    }

    v = val.mv_data;
    memcpy(v, pid, OMNI_ID_LEN);
    v[OMNI_ID_LEN] = (unsigned char) (time >> 24);
    v[OMNI_ID_LEN + 1] = (unsigned char) (time >> 16);
    v[OMNI_ID_LEN + 2] = (unsigned char) (time >> 8);
    v[OMNI_ID_LEN + 3] = (unsigned char) time;
    memcpy(v + OMNI_TP_HEADER, data, len);

    if (seq) {
        *seq = w->next_seq;
    }

    w->next_seq++;

    return omni_wtxn_put_meta_u64(w, "tp_next", w->next_seq);
}


int
omni_wtxn_prune_touchpoints(omni_wtxn_t *w, uint64_t max_count,
    uint32_t min_time, unsigned budget, unsigned *pruned)
{
    int            rc;
    uint32_t       t;
    uint64_t       last;
    MDB_val        key, val;
    MDB_stat       ms;
    MDB_cursor    *cur;
    const unsigned char  *v;

    *pruned = 0;
    last = 0;

    if (max_count == 0 && min_time == 0) {
        return OMNI_OK;
    }

    rc = mdb_stat(w->txn, w->st->touchpoints, &ms);
    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_stat() failed", rc);
    }

    rc = mdb_cursor_open(w->txn, w->st->touchpoints, &cur);
    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_cursor_open() failed", rc);
    }

    /* Oldest first: over the count, or older than min_time. */
    while (*pruned < budget) {
        rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
        if (rc != 0) {
            break;
        }

        v = val.mv_data;
        t = 0;

        if (val.mv_size >= OMNI_TP_HEADER) {
            t = ((uint32_t) v[OMNI_ID_LEN] << 24)
                | ((uint32_t) v[OMNI_ID_LEN + 1] << 16)
                | ((uint32_t) v[OMNI_ID_LEN + 2] << 8)
                | (uint32_t) v[OMNI_ID_LEN + 3];
        }

        if (!(max_count && ms.ms_entries > max_count)
            && !(min_time && t < min_time))
        {
            break;
        }

        if (key.mv_size == 8) {
            last = omni_get_be64(key.mv_data);
        }

        rc = mdb_cursor_del(cur, 0);
        if (rc != 0) {
            break;
        }

        ms.ms_entries--;
        (*pruned)++;
    }

    mdb_cursor_close(cur);

    if (rc != 0 && rc != MDB_NOTFOUND) {
        return omni_store_fail(w->st, "cannot prune touchpoints", rc);
    }

    /* The watermark cursors expire against (omni_store_feed()). */
    return last ? omni_wtxn_put_meta_u64(w, "tp_pruned", last) : OMNI_OK;
}
