/*
 * The store's identity bookkeeping (omni_store.h): the records of merged
 * profiles (the store half of omni_wtxn_merge()) and the idempotency keys
 * of ingested events.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lmdb.h>

#include "omni_store_int.h"


/*
 * Makes merged usable in this transaction, the way omni_wtxn_seen_dbs()
 * does for seen: opened here by a handle that did not have it, created
 * when `create` is set.  OMNI_NOTFOUND: it does not exist (no merges).
 */
static int
omni_wtxn_merged_dbs(omni_wtxn_t *w, int create)
{
    int  rc;

    if (w->merged_open) {
        return OMNI_OK;
    }

    rc = mdb_dbi_open(w->txn, "merged", create ? MDB_CREATE : 0, &w->merged);

    if (rc == MDB_NOTFOUND && !create) {
        return OMNI_NOTFOUND;
    }

    if (rc != 0) {
        return omni_store_fail(w->st, "cannot open the merged database",
                               rc);
    }

    w->merged_open = 1;

    return OMNI_OK;
}


int
omni_id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, OMNI_ID_LEN);
}


/*
 * The ids whose touchpoints are pid's, sorted for bsearch(): pid and
 * every profile merged into it.  Its merged entries (pid + X) are
 * deleted on the way.  *ids is malloc()ed.
 */
int
omni_wtxn_merged_take(omni_wtxn_t *w, const unsigned char *pid,
    unsigned char **idsp, size_t *nidsp)
{
    int             rc, ret;
    size_t          n, cap;
    MDB_val         key, val;
    MDB_cursor     *cur;
    unsigned char  *ids, *nb;

    *idsp = NULL;
    *nidsp = 0;

    cap = 8;
    ids = malloc(cap * OMNI_ID_LEN);
    if (ids == NULL) {
        snprintf(omni_store_err, OMNI_ERR_LEN, "out of memory");
        return OMNI_ERROR;
    }

    memcpy(ids, pid, OMNI_ID_LEN);
    n = 1;

    ret = omni_wtxn_merged_dbs(w, 0);
    if (ret == OMNI_NOTFOUND) {
        goto done;
    }

    if (ret != OMNI_OK) {
        free(ids);
        return ret;
    }

    rc = mdb_cursor_open(w->txn, w->merged, &cur);
    if (rc != 0) {
        free(ids);
        return omni_store_fail(w->st, "mdb_cursor_open() failed", rc);
    }

    key.mv_data = (void *) pid;
    key.mv_size = OMNI_ID_LEN;

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (key.mv_size < OMNI_ID_LEN
            || memcmp(key.mv_data, pid, OMNI_ID_LEN) != 0)
        {
            break;
        }

        if (key.mv_size == OMNI_MERGED_KEY) {
            if (n == cap) {
                nb = realloc(ids, 2 * cap * OMNI_ID_LEN);
                if (nb == NULL) {
                    rc = ENOMEM;
                    break;
                }

                ids = nb;
                cap *= 2;
            }

            memcpy(ids + n * OMNI_ID_LEN,
                   (unsigned char *) key.mv_data + OMNI_ID_LEN, OMNI_ID_LEN);
            n++;
        }

        rc = mdb_cursor_del(cur, 0);
        if (rc != 0) {
            break;
        }
    }

    mdb_cursor_close(cur);

    if (rc != 0 && rc != MDB_NOTFOUND) {
        free(ids);
        return omni_store_fail(w->st, "cannot delete merged entries", rc);
    }

    qsort(ids, n, OMNI_ID_LEN, omni_id_cmp);

done:

    *idsp = ids;
    *nidsp = n;

    return OMNI_OK;
}


/* ---- identity stitching: the store half of omni_wtxn_merge() ---- */

int
omni_wtxn_del_record(omni_wtxn_t *w, const unsigned char *pid)
{
    int      rc;
    MDB_val  key;

    key.mv_data = (void *) pid;
    key.mv_size = OMNI_ID_LEN;

    rc = mdb_del(w->txn, w->st->profiles, &key, NULL);
    if (rc == MDB_NOTFOUND) {
        return OMNI_NOTFOUND;
    }

    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_del(profiles) failed", rc);
    }

    return OMNI_OK;
}


int
omni_wtxn_repoint_aliases(omni_wtxn_t *w, const unsigned char *from,
    const unsigned char *to, unsigned *n)
{
    int          rc;
    MDB_val      key, val, nval;
    MDB_cursor  *cur;

    *n = 0;

    if (memcmp(from, to, OMNI_ID_LEN) == 0) {
        return OMNI_OK;
    }

    rc = mdb_cursor_open(w->txn, w->st->aliases, &cur);
    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_cursor_open() failed", rc);
    }

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (val.mv_size != OMNI_ID_LEN
            || memcmp(val.mv_data, from, OMNI_ID_LEN) != 0)
        {
            continue;
        }

        /* same size: LMDB overwrites the value in place */
        nval.mv_data = (void *) to;
        nval.mv_size = OMNI_ID_LEN;

        rc = mdb_cursor_put(cur, &key, &nval, MDB_CURRENT);
        if (rc != 0) {
            break;
        }

        (*n)++;
    }

    mdb_cursor_close(cur);

    if (rc != 0 && rc != MDB_NOTFOUND) {
        return omni_store_fail(w->st, "cannot repoint aliases", rc);
    }

    return OMNI_OK;
}


/*
 * gone + X becomes keep + X, one entry at a time: each step seeks to the
 * first entry of gone's prefix again, so the puts never matter to the
 * cursor.  An entry gone + keep (keep was merged into gone once and has
 * come back) is dropped: a profile is never merged into itself.
 */
int
omni_wtxn_record_merge(omni_wtxn_t *w, const unsigned char *keep,
    const unsigned char *gone)
{
    int            rc, ret;
    MDB_val        key, val, nkey, nval;
    MDB_cursor    *cur;
    unsigned char  kbuf[OMNI_MERGED_KEY];

    if (memcmp(keep, gone, OMNI_ID_LEN) == 0) {
        return OMNI_OK;
    }

    ret = omni_wtxn_merged_dbs(w, 1);
    if (ret != OMNI_OK) {
        return ret;
    }

    rc = mdb_cursor_open(w->txn, w->merged, &cur);
    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_cursor_open() failed", rc);
    }

    nval.mv_data = "";
    nval.mv_size = 0;

    for ( ;; ) {
        /* the bare 16-byte prefix sorts before every key it starts */
        key.mv_data = (void *) gone;
        key.mv_size = OMNI_ID_LEN;

        rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
        if (rc != 0) {
            break;
        }

        if (key.mv_size != OMNI_MERGED_KEY
            || memcmp(key.mv_data, gone, OMNI_ID_LEN) != 0)
        {
            rc = MDB_NOTFOUND;
            break;
        }

        memcpy(kbuf, keep, OMNI_ID_LEN);
        memcpy(kbuf + OMNI_ID_LEN, (unsigned char *) key.mv_data + OMNI_ID_LEN,
               OMNI_ID_LEN);

        rc = mdb_cursor_del(cur, 0);
        if (rc != 0) {
            break;
        }

        if (memcmp(kbuf + OMNI_ID_LEN, keep, OMNI_ID_LEN) == 0) {
            continue;
        }

        nkey.mv_data = kbuf;
        nkey.mv_size = OMNI_MERGED_KEY;

        rc = mdb_put(w->txn, w->merged, &nkey, &nval, 0);
        if (rc != 0) {
            break;
        }
    }

    mdb_cursor_close(cur);

    if (rc != 0 && rc != MDB_NOTFOUND) {
        return omni_store_fail(w->st, "cannot re-point merged entries", rc);
    }

    memcpy(kbuf, keep, OMNI_ID_LEN);
    memcpy(kbuf + OMNI_ID_LEN, gone, OMNI_ID_LEN);

    nkey.mv_data = kbuf;
    nkey.mv_size = OMNI_MERGED_KEY;

    rc = mdb_put(w->txn, w->merged, &nkey, &nval, 0);
    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_put(merged) failed", rc);
    }

    return OMNI_OK;
}


/* ---- idempotency keys ---- */

/*
 * Makes seen and seen_age usable in this transaction.  A handle opened
 * with the databases present (or able to create them) has them already;
 * otherwise (read-only or attach open of an older store) they are
 * opened here, and created when `create` is set.  OMNI_NOTFOUND: they
 * do not exist and were not created.
 */
static int
omni_wtxn_seen_dbs(omni_wtxn_t *w, int create)
{
    int       rc;
    unsigned  flags;

    if (w->seen_open) {
        return OMNI_OK;
    }

    flags = create ? MDB_CREATE : 0;

    rc = mdb_dbi_open(w->txn, "seen", flags, &w->seen);
    if (rc == 0) {
        rc = mdb_dbi_open(w->txn, "seen_age", flags, &w->seen_age);
    }

    if (rc == MDB_NOTFOUND && !create) {
        return OMNI_NOTFOUND;
    }

    if (rc != 0) {
        return omni_store_fail(w->st, "cannot open the seen databases", rc);
    }

    w->seen_open = 1;

    return OMNI_OK;
}


/*
 * The stored form of an idempotency key: 'h' + its keyed hash, so that
 * no messageId, order id or visitor id is kept in clear.  A store without
 * a salt (opened read-only, older) keeps the key as it is.
 */
static void
omni_seen_key(omni_wtxn_t *w, const void *key, size_t len, MDB_val *k,
    unsigned char *buf)
{
    if (omni_store_khash(w->st, 's', key, len, buf + 1) == OMNI_OK) {
        buf[0] = 'h';
        k->mv_data = buf;
        k->mv_size = OMNI_SEEN_HKEY;
        return;
    }

    k->mv_data = (void *) key;
    k->mv_size = len;
}


int
omni_wtxn_seen(omni_wtxn_t *w, const void *key, size_t len, uint32_t now)
{
    int            rc, ret;
    MDB_val        k, v;
    unsigned char  vbuf[OMNI_SEEN_VAL], hbuf[OMNI_SEEN_HKEY];
    unsigned char  abuf[OMNI_SEEN_AGE_HDR + OMNI_SEEN_KEY_MAX];

    if (key == NULL || len == 0 || len > OMNI_SEEN_KEY_MAX) {
        snprintf(omni_store_err, OMNI_ERR_LEN, "invalid idempotency key "
                 "length %zu (1 to %d bytes)", len, OMNI_SEEN_KEY_MAX);
        return OMNI_INVALID;
    }

    ret = omni_wtxn_seen_dbs(w, 1);
    if (ret != OMNI_OK) {
        return ret;
    }

    /*
     * A key an older build stored in clear is still a duplicate until
     * retention removes it (one more read, while such keys may exist).
     */
    if (w->st->has_salt) {
        k.mv_data = (void *) key;
        k.mv_size = len;

        rc = mdb_get(w->txn, w->seen, &k, &v);
        if (rc == 0) {
            return 1;
        }

        if (rc != MDB_NOTFOUND) {
            return omni_store_fail(w->st, "mdb_get(seen) failed", rc);
        }
    }

    omni_seen_key(w, key, len, &k, hbuf);

    omni_put_be32(vbuf, now);
    memset(vbuf + 4, 0, OMNI_ID_LEN);

    v.mv_data = vbuf;
    v.mv_size = sizeof(vbuf);

    /* the first sighting stays: a duplicate never extends its life */
    rc = mdb_put(w->txn, w->seen, &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
        return 1;
    }

    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_put(seen) failed", rc);
    }

    memcpy(abuf, vbuf, OMNI_SEEN_AGE_HDR);
    memcpy(abuf + OMNI_SEEN_AGE_HDR, k.mv_data, k.mv_size);

    k.mv_data = abuf;
    k.mv_size = OMNI_SEEN_AGE_HDR + k.mv_size;
    v.mv_data = "";
    v.mv_size = 0;

    rc = mdb_put(w->txn, w->seen_age, &k, &v, 0);
    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_put(seen_age) failed", rc);
    }

    return 0;
}


int
omni_wtxn_seen_owner(omni_wtxn_t *w, const void *key, size_t len,
    const unsigned char *pid)
{
    int            rc;
    MDB_val        k, v;
    unsigned char  vbuf[OMNI_SEEN_VAL], hbuf[OMNI_SEEN_HKEY];

    if (!w->seen_open || key == NULL || len == 0 || len > OMNI_SEEN_KEY_MAX)
    {
        return OMNI_OK;
    }

    omni_seen_key(w, key, len, &k, hbuf);

    rc = mdb_get(w->txn, w->seen, &k, &v);
    if (rc == MDB_NOTFOUND || (rc == 0 && v.mv_size < 4)) {
        return OMNI_OK;
    }

    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_get(seen) failed", rc);
    }

    memcpy(vbuf, v.mv_data, 4);
    memcpy(vbuf + 4, pid, OMNI_ID_LEN);

    v.mv_data = vbuf;
    v.mv_size = sizeof(vbuf);

    rc = mdb_put(w->txn, w->seen, &k, &v, 0);
    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_put(seen) failed", rc);
    }

    return OMNI_OK;
}


int
omni_wtxn_prune_seen(omni_wtxn_t *w, uint32_t before, unsigned budget,
    unsigned *pruned)
{
    int            rc, ret;
    size_t         klen;
    uint32_t       t;
    MDB_val        key, val, skey;
    MDB_cursor    *cur;
    unsigned char  kbuf[OMNI_SEEN_KEY_MAX];

    *pruned = 0;

    if (before == 0 || budget == 0) {
        return OMNI_OK;
    }

    /* nothing to prune in a store that never recorded a key */
    ret = omni_wtxn_seen_dbs(w, 0);
    if (ret == OMNI_NOTFOUND) {
        return OMNI_OK;
    }

    if (ret != OMNI_OK) {
        return ret;
    }

    rc = mdb_cursor_open(w->txn, w->seen_age, &cur);
    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_cursor_open() failed", rc);
    }

    /* oldest first: seen_age keys sort by their big-endian time */
    while (*pruned < budget) {
        rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
        if (rc != 0) {
            break;
        }

        t = 0;
        klen = 0;

        /* a damaged entry (too short or too long) reads as time 0: goes */
        if (key.mv_size >= OMNI_SEEN_AGE_HDR
            && key.mv_size <= OMNI_SEEN_AGE_HDR + OMNI_SEEN_KEY_MAX)
        {
            t = omni_get_be32(key.mv_data);
            klen = key.mv_size - OMNI_SEEN_AGE_HDR;
            memcpy(kbuf, (unsigned char *) key.mv_data + OMNI_SEEN_AGE_HDR,
                   klen);
        }

        if (t >= before) {
            break;
        }

        /*
         * The key itself, unless it records another time: then this age
         * entry is stale and the key's own entry decides when it goes.
         */
        if (klen) {
            skey.mv_data = kbuf;
            skey.mv_size = klen;

            rc = mdb_get(w->txn, w->seen, &skey, &val);
            if (rc == 0 && val.mv_size >= 4
                && omni_get_be32(val.mv_data) == t)
            {
                rc = mdb_del(w->txn, w->seen, &skey, NULL);
            }

            if (rc != 0 && rc != MDB_NOTFOUND) {
                break;
            }
        }

        rc = mdb_cursor_del(cur, 0);
        if (rc != 0) {
            break;
        }

        (*pruned)++;
    }

    mdb_cursor_close(cur);

    if (rc != 0 && rc != MDB_NOTFOUND) {
        return omni_store_fail(w->st, "cannot prune idempotency keys", rc);
    }

    return OMNI_OK;
}
