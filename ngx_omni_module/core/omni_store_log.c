/*
 * The store's touchpoint log (omni_store.h): the feed and its cursor,
 * appends, retention, and forget, which finds a profile's touchpoints by
 * one pass over the log's headers.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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


/* ---- forget ---- */

/* The cookie and device ids (hex text) of a person being forgotten. */
typedef struct {
    unsigned   n, cap;
    unsigned   failed:1;
    struct {
        unsigned  kind;
        char      hex[OMNI_ID_HEX_LEN + 1];
    }         *v;
} omni_forget_ids_t;


static void
omni_forget_id(omni_forget_ids_t *f, unsigned kind, const char *v,
    size_t len)
{
    void      *p;
    unsigned   i;

    if ((kind != OMNI_ALIAS_COOKIE && kind != OMNI_ALIAS_DEVICE)
        || len != OMNI_ID_HEX_LEN)
    {
        return;
    }

    for (i = 0; i < f->n; i++) {
        if (f->v[i].kind == kind
            && memcmp(f->v[i].hex, v, OMNI_ID_HEX_LEN) == 0)
        {
            return;
        }
    }

    if (f->n == f->cap) {
        p = realloc(f->v, (f->cap ? f->cap * 2 : 16) * sizeof(f->v[0]));
        if (p == NULL) {
            f->failed = 1;
            return;
        }

        f->v = p;
        f->cap = f->cap ? f->cap * 2 : 16;
    }

    f->v[f->n].kind = kind;
    memcpy(f->v[f->n].hex, v, OMNI_ID_HEX_LEN);
    f->v[f->n].hex[OMNI_ID_HEX_LEN] = '\0';
    f->n++;
}


static void
omni_forget_ids_free(omni_forget_ids_t *f)
{
    free(f->v);
    f->v = NULL;
    f->n = 0;
    f->cap = 0;
}


/* ids (sorted, nids of them) plus the visitor ids of fid, sorted again. */
static int
omni_forget_more_ids(const omni_forget_ids_t *fid, unsigned char **idsp,
    size_t *nidsp)
{
    size_t          n, i;
    unsigned char  *ids;

    if (fid->n == 0) {
        return OMNI_OK;
    }

    ids = realloc(*idsp, (*nidsp + fid->n) * OMNI_ID_LEN);
    if (ids == NULL) {
        snprintf(omni_store_err, OMNI_ERR_LEN, "out of memory");
        return OMNI_ERROR;
    }

    n = *nidsp;

    for (i = 0; i < fid->n; i++) {
        if (omni_id_parse(fid->v[i].hex, OMNI_ID_HEX_LEN,
                          ids + n * OMNI_ID_LEN)
            == OMNI_OK)
        {
            n++;
        }
    }

    qsort(ids, n, OMNI_ID_LEN, omni_id_cmp);

    *idsp = ids;
    *nidsp = n;

    return OMNI_OK;
}


/* Deletes a seen key and its seen_age entry (the cursor is on the key). */
static int
omni_forget_seen_del(omni_wtxn_t *w, MDB_cursor *cur, MDB_val *key,
    MDB_val *val)
{
    int            rc;
    MDB_val        akey;
    unsigned char  abuf[OMNI_SEEN_AGE_HDR + OMNI_SEEN_KEY_MAX];

    if (val->mv_size >= 4 && key->mv_size <= OMNI_SEEN_KEY_MAX) {
        memcpy(abuf, val->mv_data, OMNI_SEEN_AGE_HDR);
        memcpy(abuf + OMNI_SEEN_AGE_HDR, key->mv_data, key->mv_size);
        akey.mv_data = abuf;
        akey.mv_size = OMNI_SEEN_AGE_HDR + key->mv_size;

        rc = mdb_del(w->txn, w->seen_age, &akey, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND) {
            return rc;
        }
    }

    return mdb_cursor_del(cur, 0);
}


/*
 * The idempotency keys of the person: those whose value names one of
 * ids as owner (one scan: forget is rare), and keys an older build
 * stored in clear with a visitor's id in them ("m" or "o", the id, ":").
 */
static int
omni_forget_seen(omni_wtxn_t *w, const unsigned char *ids, size_t nids,
    const omni_forget_ids_t *fid)
{
    int          rc;
    size_t       plen;
    unsigned     i, j;
    MDB_val      key, val;
    MDB_cursor  *cur;
    char         prefix[OMNI_ID_HEX_LEN + 3];

    rc = w->seen_open ? 0 : MDB_NOTFOUND;
    if (rc != 0) {
        return OMNI_OK;
    }

    rc = mdb_cursor_open(w->txn, w->seen, &cur);
    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_cursor_open() failed", rc);
    }

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (val.mv_size == OMNI_SEEN_VAL
            && bsearch((unsigned char *) val.mv_data + 4, ids, nids,
                       OMNI_ID_LEN, omni_id_cmp)
               != NULL)
        {
            rc = omni_forget_seen_del(w, cur, &key, &val);
            if (rc != 0) {
                break;
            }
        }
    }

    for (i = 0; (rc == 0 || rc == MDB_NOTFOUND) && i < fid->n; i++) {
        for (j = 0; j < 2; j++) {
            plen = (size_t) snprintf(prefix, sizeof(prefix), "%c%s:",
                                     j ? 'o' : 'm', fid->v[i].hex);
            key.mv_data = prefix;
            key.mv_size = plen;

            for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
                 rc == 0 && key.mv_size > plen
                 && memcmp(key.mv_data, prefix, plen) == 0;
                 rc = mdb_cursor_get(cur, &key, &val, MDB_GET_CURRENT))
            {
                rc = omni_forget_seen_del(w, cur, &key, &val);
                if (rc != 0) {
                    break;
                }
            }

            if (rc != 0 && rc != MDB_NOTFOUND) {
                break;
            }

            rc = 0;
        }
    }

    mdb_cursor_close(cur);

    if (rc != 0 && rc != MDB_NOTFOUND) {
        return omni_store_fail(w->st, "cannot delete idempotency keys", rc);
    }

    return OMNI_OK;
}


/* A fresh profile id for each of the person's cookies and devices. */
static int
omni_forget_tombstones(omni_wtxn_t *w, const omni_forget_ids_t *fid)
{
    int            rc;
    unsigned       i;
    uint32_t       now;
    unsigned char  fresh[OMNI_ID_LEN];

    now = (uint32_t) time(NULL);

    for (i = 0; i < fid->n; i++) {
        if (omni_id_random(fresh) != OMNI_OK) {
            snprintf(omni_store_err, OMNI_ERR_LEN, "no randomness");
            return OMNI_ERROR;
        }

        rc = omni_wtxn_tombstone(w, fid->v[i].kind, fid->v[i].hex,
                                 OMNI_ID_HEX_LEN, fresh, now);
        if (rc != OMNI_OK) {
            return rc;
        }
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
    omni_forget_ids_t  fid;
    char               hex[OMNI_ID_HEX_LEN + 1];
    unsigned char      owner[OMNI_ID_LEN], *ids;

    *naliases = 0;
    *ntouchpoints = 0;
    memset(&fid, 0, sizeof(omni_forget_ids_t));

    ret = omni_wtxn_get_profile(w, pid, &p);
    if (ret != OMNI_OK) {
        omni_profile_free(&p);
        return ret;
    }

    ret = omni_wtxn_privacy_dbs(w);
    if (ret != OMNI_OK) {
        omni_profile_free(&p);
        return ret;
    }

    /* Aliases: only those that still point at this profile. */
    for (i = 0; i < p.naliases; i++) {
        omni_forget_id(&fid, p.aliases[i].kind, p.aliases[i].value,
                       strlen(p.aliases[i].value));

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
            omni_forget_ids_free(&fid);
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
            omni_forget_id(&fid, *(unsigned char *) key.mv_data,
                           (char *) key.mv_data + 1, key.mv_size - 1);

            rc = mdb_cursor_del(cur, 0);
            if (rc != 0) {
                break;
            }

            (*naliases)++;
        }
    }

    mdb_cursor_close(cur);

    if (rc != 0 && rc != MDB_NOTFOUND) {
        omni_forget_ids_free(&fid);
        return omni_store_fail(w->st, "cannot delete aliases", rc);
    }

    /*
     * Touchpoints: one scan of the log's headers for those of pid and of
     * every profile merged into it (their headers keep the id they were
     * recorded under).  Reads do not dirty pages; only the deletes do.
     */
    ret = omni_wtxn_merged_take(w, pid, &ids, &nids);
    if (ret != OMNI_OK) {
        omni_forget_ids_free(&fid);
        return ret;
    }

    /*
     * A touch of a cookie or device not yet linked is recorded under
     * that visitor's own id: those ids are the person's too.
     */
    ret = omni_forget_more_ids(&fid, &ids, &nids);
    if (ret != OMNI_OK) {
        free(ids);
        omni_forget_ids_free(&fid);
        return ret;
    }

    rc = mdb_cursor_open(w->txn, w->st->touchpoints, &cur);
    if (rc != 0) {
        free(ids);
        omni_forget_ids_free(&fid);
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

    if (rc != 0 && rc != MDB_NOTFOUND) {
        free(ids);
        omni_forget_ids_free(&fid);
        return omni_store_fail(w->st, "cannot delete touchpoints", rc);
    }

    /*
     * The person's idempotency keys, and tombstones for every cookie and
     * device that was theirs: the profile and its merged-away ids were
     * visitor ids too, of either kind.
     */
    for (i = 0; i < nids; i++) {
        omni_id_hex(ids + i * OMNI_ID_LEN, hex);
        omni_forget_id(&fid, OMNI_ALIAS_COOKIE, hex, OMNI_ID_HEX_LEN);
        omni_forget_id(&fid, OMNI_ALIAS_DEVICE, hex, OMNI_ID_HEX_LEN);
    }

    ret = fid.failed ? OMNI_ERROR : omni_forget_seen(w, ids, nids, &fid);
    free(ids);

    if (ret == OMNI_OK) {
        ret = omni_forget_tombstones(w, &fid);
    }

    omni_forget_ids_free(&fid);

    if (ret != OMNI_OK) {
        if (fid.failed) {
            snprintf(omni_store_err, OMNI_ERR_LEN, "out of memory");
        }

        return ret;
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

    /* meta "tp_next" is written once, at commit (omni_wtxn_commit()) */
    w->tp_dirty = 1;

    return OMNI_OK;
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
