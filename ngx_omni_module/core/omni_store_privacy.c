/*
 * What erasure needs from the store (docs/privacy.md):
 *
 *   - a keyed hash, so that the keys kept for idempotency and the
 *     tombstones of forgotten ids hold no identifier in clear: SHA-256 of
 *     the store's own random salt (meta "salt", 32 bytes, made when the
 *     store is first opened by a handle that may create) and the bytes,
 *     cut to 16 bytes;
 *   - tombstones ("forgotten": keyed hash of a cookie or device id ->
 *     a fresh profile id + the time of the forget), so that a forgotten
 *     cookie that comes back starts a new profile under a new id, and so
 *     that touches queued before the forget are not applied after it.
 */

/* SHA256_*() are deprecated in OpenSSL 3 but remain the allocation-free
   way to hash a few bytes; EVP_Digest() mallocs a context per call. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/sha.h>

#include "omni_store_int.h"


#define OMNI_SALT_LEN  32


/* Loads (or, when create is set, makes) the salt; in the open txn. */
int
omni_store_open_salt(omni_store_t *st, MDB_txn *txn, int create)
{
    int            rc;
    MDB_val        key, val;
    unsigned char  salt[OMNI_SALT_LEN];

    key.mv_data = (void *) "salt";
    key.mv_size = 4;

    rc = mdb_get(txn, st->meta, &key, &val);

    if (rc == MDB_NOTFOUND && create) {
        if (omni_id_random(salt) != OMNI_OK
            || omni_id_random(salt + OMNI_ID_LEN) != OMNI_OK)
        {
            snprintf(omni_store_err, OMNI_ERR_LEN, "no randomness for the "
                     "store's salt");
            return OMNI_ERROR;
        }

        val.mv_data = salt;
        val.mv_size = sizeof(salt);

        rc = mdb_put(txn, st->meta, &key, &val, 0);
        if (rc != 0) {
            return omni_store_fail(st, "mdb_put(meta salt) failed", rc);
        }

    } else if (rc == MDB_NOTFOUND) {
        /* an older store opened read-only: no hashed keys yet */
        return OMNI_OK;

    } else if (rc != 0) {
        return omni_store_fail(st, "mdb_get(meta salt) failed", rc);

    } else if (val.mv_size != OMNI_SALT_LEN) {
        snprintf(omni_store_err, OMNI_ERR_LEN, "corrupt store salt "
                 "(%zu bytes)", val.mv_size);
        return OMNI_ERROR;

    } else {
        memcpy(salt, val.mv_data, sizeof(salt));
    }

    memcpy(st->salt, salt, sizeof(salt));
    st->has_salt = 1;

    return OMNI_OK;
}


static void
omni_khash(const unsigned char *salt, unsigned char tag, const void *data,
    size_t len, unsigned char *out)
{
    SHA256_CTX     c;
    unsigned char  md[SHA256_DIGEST_LENGTH], block[64];

    /* the salt fills the first block: a prefix no input can forge */
    memset(block, 0, sizeof(block));
    memcpy(block, salt, OMNI_SALT_LEN);
    memcpy(block + OMNI_SALT_LEN, "omni keyed hash", 15);

    SHA256_Init(&c);
    SHA256_Update(&c, block, sizeof(block));
    SHA256_Update(&c, &tag, 1);
    SHA256_Update(&c, data, len);
    SHA256_Final(md, &c);

    memcpy(out, md, OMNI_KHASH_LEN);
}


int
omni_store_khash(omni_store_t *st, unsigned char tag, const void *data,
    size_t len, unsigned char *out)
{
    if (!st->has_salt) {
        return OMNI_NOTFOUND;
    }

    omni_khash(st->salt, tag, data, len, out);

    return OMNI_OK;
}


/*
 * Makes "forgotten" and the salt usable in this write transaction: a
 * handle that could not create them at open (attach, an older store)
 * creates them here; they become the handle's on commit.
 */
int
omni_wtxn_privacy_dbs(omni_wtxn_t *w)
{
    int      rc;
    MDB_val  key, val;

    if (!w->forgotten_open) {
        rc = mdb_dbi_open(w->txn, "forgotten", MDB_CREATE, &w->forgotten);
        if (rc != 0) {
            return omni_store_fail(w->st, "cannot open the forgotten "
                                   "database", rc);
        }

        w->forgotten_open = 1;
    }

    if (!w->st->has_salt && !w->salt_new) {
        if (omni_id_random(w->salt) != OMNI_OK
            || omni_id_random(w->salt + OMNI_ID_LEN) != OMNI_OK)
        {
            snprintf(omni_store_err, OMNI_ERR_LEN, "no randomness for the "
                     "store's salt");
            return OMNI_ERROR;
        }

        key.mv_data = (void *) "salt";
        key.mv_size = 4;
        val.mv_data = w->salt;
        val.mv_size = OMNI_SALT_LEN;

        rc = mdb_put(w->txn, w->st->meta, &key, &val, MDB_NOOVERWRITE);
        if (rc != 0) {
            return omni_store_fail(w->st, "mdb_put(meta salt) failed", rc);
        }

        w->salt_new = 1;
    }

    return OMNI_OK;
}


/* The tombstone key of a cookie or device id (its hex text). */
static int
omni_tomb_key(const unsigned char *salt, unsigned kind, const void *v,
    size_t len, unsigned char *key)
{
    unsigned char  buf[1 + OMNI_ALIAS_MAX_LEN];

    if (len == 0 || len > OMNI_ALIAS_MAX_LEN) {
        return OMNI_INVALID;
    }

    buf[0] = (unsigned char) kind;
    memcpy(buf + 1, v, len);
    omni_khash(salt, 't', buf, len + 1, key);

    return OMNI_OK;
}


int
omni_store_tombstone_get(omni_store_t *st, MDB_txn *txn, unsigned kind,
    const void *v, size_t len, unsigned char *pid, uint32_t *when)
{
    int            rc;
    MDB_val        key, val;
    MDB_stat       ms;
    unsigned char  k[OMNI_KHASH_LEN];

    /* No hashing at all while nobody was forgotten (the usual case). */
    if (!st->has_forgotten
        || (kind != OMNI_ALIAS_COOKIE && kind != OMNI_ALIAS_DEVICE)
        || mdb_stat(txn, st->forgotten, &ms) != 0
        || ms.ms_entries == 0)
    {
        return OMNI_NOTFOUND;
    }

    if (!st->has_salt || omni_tomb_key(st->salt, kind, v, len, k) != OMNI_OK)
    {
        return OMNI_NOTFOUND;
    }

    key.mv_data = k;
    key.mv_size = sizeof(k);

    rc = mdb_get(txn, st->forgotten, &key, &val);
    if (rc == MDB_NOTFOUND) {
        return OMNI_NOTFOUND;
    }

    if (rc != 0) {
        return omni_store_fail(st, "mdb_get(forgotten) failed", rc);
    }

    if (val.mv_size != OMNI_ID_LEN + 4) {
        snprintf(omni_store_err, OMNI_ERR_LEN, "corrupt tombstone "
                 "(%zu bytes)", val.mv_size);
        return OMNI_INVALID;
    }

    if (pid) {
        memcpy(pid, val.mv_data, OMNI_ID_LEN);
    }

    if (when) {
        *when = omni_get_be32((unsigned char *) val.mv_data + OMNI_ID_LEN);
    }

    return OMNI_OK;
}


int
omni_wtxn_tombstone(omni_wtxn_t *w, unsigned kind, const void *v,
    size_t len, const unsigned char *pid, uint32_t when)
{
    int            rc;
    MDB_val        key, val;
    unsigned char  k[OMNI_KHASH_LEN], buf[OMNI_ID_LEN + 4];

    rc = omni_wtxn_privacy_dbs(w);
    if (rc != OMNI_OK) {
        return rc;
    }

    /* an id that cannot be an alias has no tombstone to write */
    if (omni_tomb_key(w->salt_new ? w->salt : w->st->salt, kind, v, len, k)
        != OMNI_OK)
    {
        return OMNI_OK;
    }

    memcpy(buf, pid, OMNI_ID_LEN);
    omni_put_be32(buf + OMNI_ID_LEN, when);

    key.mv_data = k;
    key.mv_size = sizeof(k);
    val.mv_data = buf;
    val.mv_size = sizeof(buf);

    rc = mdb_put(w->txn, w->forgotten, &key, &val, 0);
    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_put(forgotten) failed", rc);
    }

    return OMNI_OK;
}


int
omni_wtxn_get_tombstone(omni_wtxn_t *w, unsigned kind, const void *v,
    size_t len, uint32_t *when)
{
    return omni_store_tombstone_get(w->st, w->txn, kind, v, len, NULL, when);
}


int
omni_wtxn_has_tombstones(omni_wtxn_t *w)
{
    MDB_stat  ms;

    if (!w->forgotten_open
        || mdb_stat(w->txn, w->forgotten, &ms) != 0)
    {
        return 0;
    }

    return ms.ms_entries > 0;
}


/* ---- anonymous profiles expire ---- */

/* Whether rec names no customer and no email (nobody ever identified). */
static int
omni_rec_anonymous(const omni_rec_t *rec)
{
    unsigned           kind;
    omni_bytes_t       item;
    omni_rec_iter_t    it;
    omni_rec_fields_t  f;

    omni_rec_iter_init(&it, rec, OMNI_SECT_ALIASES);

    while (omni_rec_iter_next(&it, &item)) {
        omni_rec_fields_init(&f, item);
        kind = omni_rec_get_u8(&f);

        if (kind == OMNI_ALIAS_CUSTOMER || kind == OMNI_ALIAS_EMAIL) {
            return 0;
        }
    }

    return rec->orders == 0;
}


/* The last time anything happened to rec. */
static uint32_t
omni_rec_last_active(const omni_rec_t *rec)
{
    unsigned  ch;
    uint32_t  t;

    t = rec->updated > rec->visit_last ? rec->updated : rec->visit_last;

    for (ch = 0; ch < OMNI_CH_MAX; ch++) {
        if (rec->last_seen[ch] > t) {
            t = rec->last_seen[ch];
        }
    }

    return t;
}


/* Deletes the alias rows of rec's cookies and devices that point at it. */
static int
omni_expire_aliases(omni_wtxn_t *w, const omni_rec_t *rec)
{
    int                rc;
    unsigned           kind;
    omni_bytes_t       item, v;
    unsigned char      owner[OMNI_ID_LEN];
    omni_rec_iter_t    it;
    omni_rec_fields_t  f;

    omni_rec_iter_init(&it, rec, OMNI_SECT_ALIASES);

    while (omni_rec_iter_next(&it, &item)) {
        omni_rec_fields_init(&f, item);
        kind = omni_rec_get_u8(&f);
        v = omni_rec_get_str(&f);

        if (v.len == 0 || v.len > OMNI_ALIAS_MAX_LEN) {
            continue;
        }

        rc = omni_wtxn_get_alias(w, kind, v.data, v.len, owner);

        if (rc == OMNI_OK && memcmp(owner, rec->id, OMNI_ID_LEN) == 0) {
            rc = omni_wtxn_del_alias(w, kind, v.data, v.len);
        }

        if (rc != OMNI_OK && rc != OMNI_NOTFOUND) {
            return rc;
        }
    }

    return OMNI_OK;
}


int
omni_wtxn_expire_anonymous(omni_wtxn_t *w, uint32_t before, unsigned budget,
    unsigned char *from, unsigned *expired)
{
    int            rc, ret;
    size_t         nids;
    unsigned       n;
    MDB_val        key, val;
    omni_rec_t     rec;
    MDB_cursor    *cur;
    unsigned char *ids;
    unsigned char  zero[OMNI_ID_LEN];

    *expired = 0;
    memset(zero, 0, sizeof(zero));

    rc = mdb_cursor_open(w->txn, w->st->profiles, &cur);
    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_cursor_open() failed", rc);
    }

    key.mv_data = from;
    key.mv_size = OMNI_ID_LEN;

    rc = memcmp(from, zero, OMNI_ID_LEN) == 0
         ? mdb_cursor_get(cur, &key, &val, MDB_FIRST)
         : mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);

    for (n = 0; rc == 0 && n < budget; n++) {
        if (key.mv_size == OMNI_ID_LEN
            && omni_rec_parse(&rec, val.mv_data, val.mv_size) == OMNI_OK
            && omni_rec_last_active(&rec) < before
            && omni_rec_anonymous(&rec))
        {
            ret = omni_expire_aliases(w, &rec);

            if (ret == OMNI_OK) {
                /* anonymous devices merged into it go with it */
                ret = omni_wtxn_merged_take(w, rec.id, &ids, &nids);
                free(ids);
            }

            if (ret != OMNI_OK) {
                mdb_cursor_close(cur);
                return ret;
            }

            rc = mdb_cursor_del(cur, 0);
            if (rc != 0) {
                break;
            }

            (*expired)++;

            /* as forget does: MDB_NEXT after a delete skips nothing */
        }

        rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }

    if (rc == 0 && key.mv_size == OMNI_ID_LEN) {
        memcpy(from, key.mv_data, OMNI_ID_LEN);

    } else if (rc == MDB_NOTFOUND) {
        /* the end: the next sweep starts over */
        memset(from, 0, OMNI_ID_LEN);
        rc = 0;
    }

    mdb_cursor_close(cur);

    if (rc != 0) {
        return omni_store_fail(w->st, "cannot expire anonymous profiles",
                               rc);
    }

    return OMNI_OK;
}
