/*
 * LMDB profile store shared by the nginx module and omnictl.
 * See omni_store.h for the databases and the process model.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <lmdb.h>

#include "omni_store.h"

#define OMNI_ERR_LEN   512

/* A touchpoint value: profile id, u32 BE time, then the JSON line. */
#define OMNI_TP_HEADER  (OMNI_ID_LEN + 4)

/* A seen_age key: u32 BE time, then the seen key. */
#define OMNI_SEEN_AGE_HDR  4

/* A merged key: the kept profile's id, then the merged-away one's. */
#define OMNI_MERGED_KEY  (2 * OMNI_ID_LEN)

struct omni_store_s {
    MDB_env      *env;
    MDB_dbi       profiles;
    MDB_dbi       aliases;
    MDB_dbi       touchpoints;
    MDB_dbi       tpindex;
    MDB_dbi       meta;
    MDB_dbi       seen;
    MDB_dbi       seen_age;
    MDB_dbi       merged;
    /*
     * Whether seen and seen_age (merged) are open.  A store created by
     * an older build lacks them, and a handle that cannot create them
     * (read-only, attach) then treats them as empty until a write
     * transaction of this handle creates them (omni_wtxn_seen_dbs(),
     * omni_wtxn_merged_dbs()).
     */
    int           has_seen;
    int           has_merged;
    MDB_txn      *rtxn;             /* the reusable read transaction */
    unsigned      readonly:1;
    char          path[4096];
};


/*
 * Error text is per thread: the module reads in the event loop while its
 * writer task writes in a pool thread, both on one handle.
 */
static __thread char  omni_store_err[OMNI_ERR_LEN];

struct omni_wtxn_s {
    omni_store_t  *st;
    MDB_txn       *txn;
    uint64_t       next_seq;        /* 0: not looked up yet */
    /* seen and seen_age opened by this transaction: published to the
       handle on commit, closed by LMDB on abort */
    MDB_dbi        seen;
    MDB_dbi        seen_age;
    MDB_dbi        merged;          /* the same for merged */
    unsigned       seen_open:1;
    unsigned       merged_open:1;
};


static int omni_store_edge_seq(omni_store_t *st, MDB_txn *txn,
    MDB_cursor_op op, uint64_t *seq);


static int
omni_store_fail(omni_store_t *st, const char *what, int rc)
{
    snprintf(omni_store_err, OMNI_ERR_LEN, "%s: %s", what, mdb_strerror(rc));

    if (rc == MDB_MAP_FULL) {
        return OMNI_MAP_FULL;
    }

    if (rc == MDB_MAP_RESIZED) {
        return OMNI_MAP_RESIZED;
    }

    return OMNI_ERROR;
}


const char *
omni_store_error(omni_store_t *st)
{
    (void) st;
    return omni_store_err;
}


const char *
omni_store_path(omni_store_t *st)
{
    return st->path;
}


static void
omni_put_be64(unsigned char *p, uint64_t v)
{
    int  i;

    for (i = 7; i >= 0; i--) {
        p[i] = (unsigned char) v;
        v >>= 8;
    }
}


static uint64_t
omni_get_be64(const unsigned char *p)
{
    int       i;
    uint64_t  v;

    v = 0;
    for (i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }

    return v;
}


static void
omni_put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char) (v >> 24);
    p[1] = (unsigned char) (v >> 16);
    p[2] = (unsigned char) (v >> 8);
    p[3] = (unsigned char) v;
}


static uint32_t
omni_get_be32(const unsigned char *p)
{
    return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16)
           | ((uint32_t) p[2] << 8) | (uint32_t) p[3];
}


/*
 * The databases added after schema 1 was first released (seen,
 * seen_age): created by a handle that may create, otherwise opened when
 * present.  MDB_NOTFOUND is not an error here: an older store simply
 * does not have them yet.
 */
static int
omni_store_open_seen(omni_store_t *st, MDB_txn *txn, unsigned flags)
{
    int  rc;

    rc = mdb_dbi_open(txn, "seen", flags, &st->seen);
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "seen_age", flags, &st->seen_age);
    }

    if (rc == 0) {
        st->has_seen = 1;
        return 0;
    }

    return rc;
}


/* The same for merged (after schema 1 too). */
static int
omni_store_open_merged(omni_store_t *st, MDB_txn *txn, unsigned flags)
{
    int  rc;

    rc = mdb_dbi_open(txn, "merged", flags, &st->merged);
    if (rc == 0) {
        st->has_merged = 1;
    }

    return rc;
}


/*
 * tpindex (profile id + seq) is no longer written or read: forget scans
 * the touchpoints' headers instead.  A store written by an older build
 * may still hold entries; a handle that may write empties it once.
 */
static int
omni_store_drop_tpindex(MDB_txn *txn, MDB_dbi dbi)
{
    int       rc;
    MDB_stat  ms;

    rc = mdb_stat(txn, dbi, &ms);
    if (rc != 0 || ms.ms_entries == 0) {
        return rc;
    }

    return mdb_drop(txn, dbi, 0);
}


static int
omni_store_open_dbs(omni_store_t *st, int create)
{
    int          rc;
    unsigned     flags, schema;
    MDB_val      key, val;
    MDB_txn     *txn;
    const char  *what;

    flags = create ? MDB_CREATE : 0;

    rc = mdb_txn_begin(st->env, NULL, create ? 0 : MDB_RDONLY, &txn);
    if (rc != 0) {
        return omni_store_fail(st, "mdb_txn_begin() failed", rc);
    }

    what = "profiles";
    rc = mdb_dbi_open(txn, "profiles", flags, &st->profiles);
    if (rc == 0) {
        what = "aliases";
        rc = mdb_dbi_open(txn, "aliases", flags, &st->aliases);
    }
    if (rc == 0) {
        what = "touchpoints";
        rc = mdb_dbi_open(txn, "touchpoints", flags, &st->touchpoints);
    }
    if (rc == 0) {
        what = "tpindex";
        rc = mdb_dbi_open(txn, "tpindex", flags, &st->tpindex);
        if (rc == 0 && create) {
            rc = omni_store_drop_tpindex(txn, st->tpindex);
        }
    }
    if (rc == 0) {
        what = "meta";
        rc = mdb_dbi_open(txn, "meta", flags, &st->meta);
    }
    if (rc == 0) {
        what = "seen";
        rc = omni_store_open_seen(st, txn, flags);
        if (rc == MDB_NOTFOUND && !create) {
            rc = 0;
        }
    }
    if (rc == 0) {
        what = "merged";
        rc = omni_store_open_merged(st, txn, flags);
        if (rc == MDB_NOTFOUND && !create) {
            rc = 0;
        }
    }

    if (rc != 0) {
        mdb_txn_abort(txn);
        snprintf(omni_store_err, OMNI_ERR_LEN,
                 "cannot open the \"%s\" database%s: %s", what,
                 rc == MDB_NOTFOUND ? " (store not initialised: run nginx -t"
                 " or omnictl stat --create first)" : "",
                 mdb_strerror(rc));
        return OMNI_ERROR;
    }

    key.mv_data = "schema";
    key.mv_size = 6;

    rc = mdb_get(txn, st->meta, &key, &val);

    if (rc == MDB_NOTFOUND && create) {
        schema = OMNI_SCHEMA_VERSION;
        val.mv_data = &schema;
        val.mv_size = sizeof(schema);
        rc = mdb_put(txn, st->meta, &key, &val, 0);

    } else if (rc == 0) {
        if (val.mv_size != sizeof(schema)) {
            mdb_txn_abort(txn);
            snprintf(omni_store_err, OMNI_ERR_LEN, "corrupt schema version");
            return OMNI_ERROR;
        }

        memcpy(&schema, val.mv_data, sizeof(schema));
        if (schema > OMNI_SCHEMA_VERSION) {
            mdb_txn_abort(txn);
            snprintf(omni_store_err, OMNI_ERR_LEN, "store schema %u is newer "
                     "than this build supports (%u)", schema,
                     OMNI_SCHEMA_VERSION);
            return OMNI_ERROR;
        }
    } else if (rc == MDB_NOTFOUND) {
        rc = 0;
    }

    if (rc != 0) {
        mdb_txn_abort(txn);
        return omni_store_fail(st, "cannot write the schema version", rc);
    }

    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        return omni_store_fail(st, "mdb_txn_commit() failed", rc);
    }

    return OMNI_OK;
}


int
omni_store_open(omni_store_t **stp, const char *path,
    const omni_store_opts_t *opts, char *err, size_t errlen)
{
    int            rc;
    unsigned       flags;
    struct stat    sb;
    omni_store_t  *st;

    *stp = NULL;

    if (strlen(path) >= sizeof(st->path)) {
        snprintf(err, errlen, "store path is too long");
        return OMNI_ERROR;
    }

    if (stat(path, &sb) != 0) {
        if (errno != ENOENT || !opts->create || opts->readonly) {
            snprintf(err, errlen, "store \"%s\": %s", path, strerror(errno));
            return OMNI_ERROR;
        }

        if (mkdir(path, 0750) != 0) {
            snprintf(err, errlen, "cannot create store directory \"%s\": %s",
                     path, strerror(errno));
            return OMNI_ERROR;
        }

    } else if (!S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "store \"%s\" is not a directory", path);
        return OMNI_ERROR;
    }

    /* Attaching never creates anything: the store must exist already. */
    if (opts->attach || opts->readonly) {
        char  data[4200];

        snprintf(data, sizeof(data), "%s/data.mdb", path);

        if (stat(data, &sb) != 0) {
            snprintf(err, errlen, "store \"%s\" is not initialised (no "
                     "data.mdb): %s", path, strerror(errno));
            return OMNI_ERROR;
        }
    }

    st = calloc(1, sizeof(omni_store_t));
    if (st == NULL) {
        snprintf(err, errlen, "out of memory");
        return OMNI_ERROR;
    }

    strcpy(st->path, path);
    st->readonly = opts->readonly ? 1 : 0;

    rc = mdb_env_create(&st->env);
    if (rc != 0) {
        snprintf(err, errlen, "mdb_env_create() failed: %s",
                 mdb_strerror(rc));
        free(st);
        return OMNI_ERROR;
    }

    mdb_env_set_maxdbs(st->env, 16);
    mdb_env_set_maxreaders(st->env, opts->max_readers
                                    ? opts->max_readers
                                    : OMNI_STORE_DEFAULT_READERS);

    if (opts->map_size) {
        mdb_env_set_mapsize(st->env, opts->map_size);

    } else if (!opts->attach && !opts->readonly) {
        /* An existing larger map is kept: LMDB takes the file's size. */
        mdb_env_set_mapsize(st->env, OMNI_STORE_DEFAULT_MAP);
    }

    /*
     * MDB_NOTLS: the read transaction belongs to this handle, not to a
     * thread, so the event loop can read while a writer thread of the
     * same process writes.  MDB_NORDAHEAD: lookups are random; readahead
     * only evicts useful pages once the store outgrows memory.
     */
    flags = MDB_NOTLS | MDB_NORDAHEAD;
    if (opts->readonly) {
        flags |= MDB_RDONLY;
    }
    if (opts->nometasync) {
        flags |= MDB_NOMETASYNC;
    }

    if (opts->nosync) {
        flags |= MDB_NOSYNC;
    }

    rc = mdb_env_open(st->env, path, flags, 0640);
    if (rc != 0) {
        snprintf(err, errlen, "cannot open store \"%s\": %s", path,
                 mdb_strerror(rc));
        mdb_env_close(st->env);
        free(st);
        return OMNI_ERROR;
    }

    /*
     * A map already grown larger on disk wins over the configured or
     * default size: 0 adopts the size recorded in the file.
     */
    if (!opts->readonly) {
        size_t       want;
        MDB_envinfo  info;

        want = opts->map_size ? opts->map_size
                              : (opts->attach ? 0 : OMNI_STORE_DEFAULT_MAP);

        mdb_env_set_mapsize(st->env, 0);
        mdb_env_info(st->env, &info);

        if (want > info.me_mapsize) {
            mdb_env_set_mapsize(st->env, want);
        }
    }

    rc = omni_store_open_dbs(st, !opts->readonly && !opts->attach);
    if (rc != OMNI_OK) {
        snprintf(err, errlen, "store \"%s\": %s", path, omni_store_err);
        mdb_env_close(st->env);
        free(st);
        return rc;
    }

    *stp = st;

    return OMNI_OK;
}


void
omni_store_close(omni_store_t *st)
{
    if (st == NULL) {
        return;
    }

    if (st->rtxn) {
        mdb_txn_abort(st->rtxn);
    }

    mdb_env_close(st->env);
    free(st);
}


int
omni_store_reader_check(omni_store_t *st, int *dead)
{
    int  rc;

    rc = mdb_reader_check(st->env, dead);
    if (rc != 0) {
        return omni_store_fail(st, "mdb_reader_check() failed", rc);
    }

    return OMNI_OK;
}


int
omni_store_set_map_size(omni_store_t *st, size_t size)
{
    int  rc;

    /* LMDB requires that this process has no transaction open. */
    if (st->rtxn) {
        mdb_txn_abort(st->rtxn);
        st->rtxn = NULL;
    }

    rc = mdb_env_set_mapsize(st->env, size);
    if (rc != 0) {
        return omni_store_fail(st, "mdb_env_set_mapsize() failed", rc);
    }

    return OMNI_OK;
}


size_t
omni_store_map_size(omni_store_t *st)
{
    MDB_envinfo  info;

    mdb_env_info(st->env, &info);

    return info.me_mapsize;
}


int
omni_store_sync(omni_store_t *st)
{
    int  rc;

    rc = mdb_env_sync(st->env, 1);
    if (rc != 0) {
        return omni_store_fail(st, "mdb_env_sync() failed", rc);
    }

    return OMNI_OK;
}


/* ---- read side ---- */

int
omni_store_read_begin(omni_store_t *st)
{
    int  rc;

    if (st->rtxn == NULL) {
        rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &st->rtxn);
        if (rc != 0) {
            st->rtxn = NULL;
            return omni_store_fail(st, "mdb_txn_begin(RDONLY) failed", rc);
        }

        return OMNI_OK;
    }

    rc = mdb_txn_renew(st->rtxn);
    if (rc != 0) {
        /* A failed renew leaves a finished handle: free it, start over. */
        mdb_txn_abort(st->rtxn);
        st->rtxn = NULL;
        return omni_store_fail(st, "mdb_txn_renew() failed", rc);
    }

    return OMNI_OK;
}


void
omni_store_read_end(omni_store_t *st)
{
    if (st->rtxn) {
        mdb_txn_reset(st->rtxn);
    }
}


static int
omni_alias_key(MDB_val *key, unsigned char *buf, unsigned kind,
    const void *val, size_t len)
{
    if (len == 0 || len > OMNI_ALIAS_MAX_LEN) {
        return OMNI_INVALID;
    }

    buf[0] = (unsigned char) kind;
    memcpy(buf + 1, val, len);
    key->mv_data = buf;
    key->mv_size = len + 1;

    return OMNI_OK;
}


static int
omni_store_alias_get(omni_store_t *st, MDB_txn *txn, unsigned kind,
    const void *v, size_t len, unsigned char *pid)
{
    int            rc;
    MDB_val        key, val;
    unsigned char  buf[OMNI_ALIAS_MAX_LEN + 1];

    if (omni_alias_key(&key, buf, kind, v, len) != OMNI_OK) {
        snprintf(omni_store_err, OMNI_ERR_LEN, "invalid alias length %zu", len);
        return OMNI_INVALID;
    }

    rc = mdb_get(txn, st->aliases, &key, &val);
    if (rc == MDB_NOTFOUND) {
        return OMNI_NOTFOUND;
    }

    if (rc != 0) {
        return omni_store_fail(st, "mdb_get(aliases) failed", rc);
    }

    if (val.mv_size != OMNI_ID_LEN) {
        snprintf(omni_store_err, OMNI_ERR_LEN,
                 "corrupt alias entry (%zu bytes)",
                 val.mv_size);
        return OMNI_INVALID;
    }

    memcpy(pid, val.mv_data, OMNI_ID_LEN);

    return OMNI_OK;
}


int
omni_store_get_alias(omni_store_t *st, unsigned kind, const void *val,
    size_t len, unsigned char *pid)
{
    return omni_store_alias_get(st, st->rtxn, kind, val, len, pid);
}


int
omni_store_get_profile(omni_store_t *st, const unsigned char *pid,
    omni_rec_t *rec)
{
    int      rc;
    MDB_val  key, val;

    key.mv_data = (void *) pid;
    key.mv_size = OMNI_ID_LEN;

    rc = mdb_get(st->rtxn, st->profiles, &key, &val);
    if (rc == MDB_NOTFOUND) {
        return OMNI_NOTFOUND;
    }

    if (rc != 0) {
        return omni_store_fail(st, "mdb_get(profiles) failed", rc);
    }

    if (omni_rec_parse(rec, val.mv_data, val.mv_size) != OMNI_OK) {
        snprintf(omni_store_err, OMNI_ERR_LEN, "corrupt profile record "
                 "(%zu bytes)", val.mv_size);
        return OMNI_INVALID;
    }

    return OMNI_OK;
}


int
omni_store_foreach_profile(omni_store_t *st, omni_store_profile_cb cb,
    void *arg)
{
    int          rc, ret;
    MDB_val      key, val;
    MDB_cursor  *cur;
    omni_rec_t   rec;

    ret = omni_store_read_begin(st);
    if (ret != OMNI_OK) {
        return ret;
    }

    rc = mdb_cursor_open(st->rtxn, st->profiles, &cur);
    if (rc != 0) {
        omni_store_read_end(st);
        return omni_store_fail(st, "mdb_cursor_open() failed", rc);
    }

    ret = OMNI_OK;

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (omni_rec_parse(&rec, val.mv_data, val.mv_size) != OMNI_OK) {
            snprintf(omni_store_err, OMNI_ERR_LEN, "corrupt profile record");
            ret = OMNI_INVALID;
            break;
        }

        ret = cb(arg, &rec);
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


/* A u64 kept in meta ("tp_next", "tp_pruned"); 0 when absent. */
static int
omni_store_meta_u64(omni_store_t *st, MDB_txn *txn, const char *name,
    uint64_t *v)
{
    int       rc;
    MDB_val   key, val;

    *v = 0;
    key.mv_data = (void *) name;
    key.mv_size = strlen(name);

    rc = mdb_get(txn, st->meta, &key, &val);
    if (rc == 0 && val.mv_size == 8) {
        *v = omni_get_be64(val.mv_data);

    } else if (rc != 0 && rc != MDB_NOTFOUND) {
        return omni_store_fail(st, "mdb_get(meta) failed", rc);
    }

    return OMNI_OK;
}


static int
omni_wtxn_put_meta_u64(omni_wtxn_t *w, const char *name, uint64_t v)
{
    int            rc;
    MDB_val        key, val;
    unsigned char  buf[8];

    omni_put_be64(buf, v);
    key.mv_data = (void *) name;
    key.mv_size = strlen(name);
    val.mv_data = buf;
    val.mv_size = 8;

    rc = mdb_put(w->txn, w->st->meta, &key, &val, 0);
    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_put(meta) failed", rc);
    }

    return OMNI_OK;
}


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


static int
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
omni_store_stat(omni_store_t *st, omni_store_stat_t *s)
{
    int          rc, ret;
    MDB_val      key, val;
    MDB_stat     ms;
    MDB_envinfo  info;

    memset(s, 0, sizeof(*s));

    mdb_env_info(st->env, &info);
    mdb_env_stat(st->env, &ms);

    s->map_size = info.me_mapsize;
    s->map_used = (info.me_last_pgno + 1) * (size_t) ms.ms_psize;
    s->max_readers = info.me_maxreaders;
    s->readers_used = info.me_numreaders;

    ret = omni_store_read_begin(st);
    if (ret != OMNI_OK) {
        return ret;
    }

    if ((rc = mdb_stat(st->rtxn, st->profiles, &ms)) != 0) {
        goto failed;
    }
    s->profiles = ms.ms_entries;

    if ((rc = mdb_stat(st->rtxn, st->aliases, &ms)) != 0) {
        goto failed;
    }
    s->aliases = ms.ms_entries;

    if ((rc = mdb_stat(st->rtxn, st->touchpoints, &ms)) != 0) {
        goto failed;
    }
    s->touchpoints = ms.ms_entries;

    /* an older store without the seen database has seen nothing */
    if (st->has_seen) {
        if ((rc = mdb_stat(st->rtxn, st->seen, &ms)) != 0) {
            goto failed;
        }
        s->seen = ms.ms_entries;
    }

    ret = omni_store_edge_seq(st, st->rtxn, MDB_FIRST, &s->first_seq);
    if (ret == OMNI_OK) {
        ret = omni_store_edge_seq(st, st->rtxn, MDB_LAST, &s->last_seq);
    }

    if (ret == OMNI_OK) {
        ret = omni_store_meta_u64(st, st->rtxn, "tp_next", &s->next_seq);
        if (s->next_seq <= s->last_seq) {
            s->next_seq = s->last_seq + 1;
        }
    }

    key.mv_data = "schema";
    key.mv_size = 6;
    if (mdb_get(st->rtxn, st->meta, &key, &val) == 0
        && val.mv_size == sizeof(s->schema))
    {
        memcpy(&s->schema, val.mv_data, sizeof(s->schema));
    }

    omni_store_read_end(st);

    return ret;

failed:

    omni_store_read_end(st);

    return omni_store_fail(st, "mdb_stat() failed", rc);
}


/* ---- write side ---- */

int
omni_store_write_begin(omni_store_t *st, omni_wtxn_t **wp)
{
    int           rc;
    omni_wtxn_t  *w;

    *wp = NULL;

    w = calloc(1, sizeof(omni_wtxn_t));
    if (w == NULL) {
        snprintf(omni_store_err, OMNI_ERR_LEN, "out of memory");
        return OMNI_ERROR;
    }

    rc = mdb_txn_begin(st->env, NULL, 0, &w->txn);
    if (rc != 0) {
        free(w);
        return omni_store_fail(st, "mdb_txn_begin() failed", rc);
    }

    w->st = st;

    if (st->has_seen) {
        w->seen = st->seen;
        w->seen_age = st->seen_age;
        w->seen_open = 1;
    }

    if (st->has_merged) {
        w->merged = st->merged;
        w->merged_open = 1;
    }

    *wp = w;

    return OMNI_OK;
}


int
omni_wtxn_commit(omni_wtxn_t *w)
{
    int            rc, publish, publish_merged;
    MDB_dbi        seen, seen_age, merged;
    omni_store_t  *st;

    st = w->st;
    publish = w->seen_open && !st->has_seen;
    publish_merged = w->merged_open && !st->has_merged;
    seen = w->seen;
    seen_age = w->seen_age;
    merged = w->merged;

    rc = mdb_txn_commit(w->txn);
    free(w);

    if (rc != 0) {
        return omni_store_fail(st, "mdb_txn_commit() failed", rc);
    }

    /*
     * Handles opened inside a write transaction belong to the whole
     * environment once it commits.  A handle's write transactions never
     * run concurrently (one writer task, or omnictl), and its read side
     * does not use these databases except in omni_store_stat().
     */
    if (publish) {
        st->seen = seen;
        st->seen_age = seen_age;
        st->has_seen = 1;
    }

    if (publish_merged) {
        st->merged = merged;
        st->has_merged = 1;
    }

    return OMNI_OK;
}


void
omni_wtxn_abort(omni_wtxn_t *w)
{
    if (w) {
        mdb_txn_abort(w->txn);
        free(w);
    }
}


int
omni_wtxn_get_profile(omni_wtxn_t *w, const unsigned char *pid,
    omni_profile_t *p)
{
    int          rc;
    MDB_val      key, val;
    omni_rec_t   rec;

    omni_profile_init(p, pid);

    key.mv_data = (void *) pid;
    key.mv_size = OMNI_ID_LEN;

    rc = mdb_get(w->txn, w->st->profiles, &key, &val);
    if (rc == MDB_NOTFOUND) {
        return OMNI_NOTFOUND;
    }

    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_get(profiles) failed", rc);
    }

    if (omni_rec_parse(&rec, val.mv_data, val.mv_size) != OMNI_OK) {
        snprintf(omni_store_err, OMNI_ERR_LEN, "corrupt profile record");
        return OMNI_INVALID;
    }

    if (omni_profile_from_rec(p, &rec) != OMNI_OK) {
        snprintf(omni_store_err, OMNI_ERR_LEN, "cannot decode profile");
        return OMNI_ERROR;
    }

    return OMNI_OK;
}


int
omni_wtxn_put_profile(omni_wtxn_t *w, const omni_profile_t *p)
{
    int       ret;
    unsigned  i;

    ret = omni_wtxn_put_record(w, p);
    if (ret != OMNI_OK) {
        return ret;
    }

    for (i = 0; i < p->naliases; i++) {
        ret = omni_wtxn_put_alias(w, p->aliases[i].kind, p->aliases[i].value,
                                  strlen(p->aliases[i].value), p->id);
        if (ret != OMNI_OK) {
            return ret;
        }
    }

    return OMNI_OK;
}


int
omni_wtxn_put_record(omni_wtxn_t *w, const omni_profile_t *p)
{
    int             rc;
    size_t          len;
    MDB_val         key, val;
    unsigned char  *data;

    if (omni_profile_encode(p, &data, &len) != OMNI_OK) {
        snprintf(omni_store_err, OMNI_ERR_LEN, "cannot encode profile");
        return OMNI_ERROR;
    }

    key.mv_data = (void *) p->id;
    key.mv_size = OMNI_ID_LEN;
    val.mv_data = data;
    val.mv_size = len;

    rc = mdb_put(w->txn, w->st->profiles, &key, &val, 0);
    free(data);

    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_put(profiles) failed", rc);
    }

    return OMNI_OK;
}


/*
 * The zero-copy twins of get_profile and put_record, for the touch fast
 * path (omni_splice.h): LMDB's pointer into the transaction's pages, and
 * bytes stored as they are.
 */
int
omni_wtxn_get_rec(omni_wtxn_t *w, const unsigned char *pid, omni_rec_t *rec)
{
    int      rc;
    MDB_val  key, val;

    key.mv_data = (void *) pid;
    key.mv_size = OMNI_ID_LEN;

    rc = mdb_get(w->txn, w->st->profiles, &key, &val);
    if (rc == MDB_NOTFOUND) {
        return OMNI_NOTFOUND;
    }

    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_get(profiles) failed", rc);
    }

    if (omni_rec_parse(rec, val.mv_data, val.mv_size) != OMNI_OK) {
        snprintf(omni_store_err, OMNI_ERR_LEN, "corrupt profile record");
        return OMNI_INVALID;
    }

    return OMNI_OK;
}


int
omni_wtxn_put_raw(omni_wtxn_t *w, const unsigned char *pid,
    const void *data, size_t len)
{
    int      rc;
    MDB_val  key, val;

    key.mv_data = (void *) pid;
    key.mv_size = OMNI_ID_LEN;
    val.mv_data = (void *) data;
    val.mv_size = len;

    rc = mdb_put(w->txn, w->st->profiles, &key, &val, 0);
    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_put(profiles) failed", rc);
    }

    return OMNI_OK;
}


int
omni_wtxn_get_alias(omni_wtxn_t *w, unsigned kind, const void *val,
    size_t len, unsigned char *pid)
{
    return omni_store_alias_get(w->st, w->txn, kind, val, len, pid);
}


int
omni_wtxn_put_alias(omni_wtxn_t *w, unsigned kind, const void *v,
    size_t len, const unsigned char *pid)
{
    int            rc;
    MDB_val        key, val;
    unsigned char  buf[OMNI_ALIAS_MAX_LEN + 1];

    if (omni_alias_key(&key, buf, kind, v, len) != OMNI_OK) {
        snprintf(omni_store_err, OMNI_ERR_LEN, "invalid alias length %zu",
                 len);
        return OMNI_INVALID;
    }

    val.mv_data = (void *) pid;
    val.mv_size = OMNI_ID_LEN;

    rc = mdb_put(w->txn, w->st->aliases, &key, &val, 0);
    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_put(aliases) failed", rc);
    }

    return OMNI_OK;
}


int
omni_wtxn_del_alias(omni_wtxn_t *w, unsigned kind, const void *v,
    size_t len)
{
    int            rc;
    MDB_val        key;
    unsigned char  buf[OMNI_ALIAS_MAX_LEN + 1];

    if (omni_alias_key(&key, buf, kind, v, len) != OMNI_OK) {
        return OMNI_INVALID;
    }

    rc = mdb_del(w->txn, w->st->aliases, &key, NULL);
    if (rc == MDB_NOTFOUND) {
        return OMNI_NOTFOUND;
    }

    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_del(aliases) failed", rc);
    }

    return OMNI_OK;
}


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


static int
omni_id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, OMNI_ID_LEN);
}


/*
 * The ids whose touchpoints are pid's, sorted for bsearch(): pid and
 * every profile merged into it.  Its merged entries (pid + X) are
 * deleted on the way.  *ids is malloc()ed.
 */
static int
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


int
omni_wtxn_seen(omni_wtxn_t *w, const void *key, size_t len, uint32_t now)
{
    int            rc, ret;
    MDB_val        k, v;
    unsigned char  tbuf[4], abuf[OMNI_SEEN_AGE_HDR + OMNI_SEEN_KEY_MAX];

    if (key == NULL || len == 0 || len > OMNI_SEEN_KEY_MAX) {
        snprintf(omni_store_err, OMNI_ERR_LEN, "invalid idempotency key "
                 "length %zu (1 to %d bytes)", len, OMNI_SEEN_KEY_MAX);
        return OMNI_INVALID;
    }

    ret = omni_wtxn_seen_dbs(w, 1);
    if (ret != OMNI_OK) {
        return ret;
    }

    omni_put_be32(tbuf, now);

    k.mv_data = (void *) key;
    k.mv_size = len;
    v.mv_data = tbuf;
    v.mv_size = sizeof(tbuf);

    /* the first sighting stays: a duplicate never extends its life */
    rc = mdb_put(w->txn, w->seen, &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
        return 1;
    }

    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_put(seen) failed", rc);
    }

    memcpy(abuf, tbuf, OMNI_SEEN_AGE_HDR);
    memcpy(abuf + OMNI_SEEN_AGE_HDR, key, len);

    k.mv_data = abuf;
    k.mv_size = OMNI_SEEN_AGE_HDR + len;
    v.mv_data = "";
    v.mv_size = 0;

    rc = mdb_put(w->txn, w->seen_age, &k, &v, 0);
    if (rc != 0) {
        return omni_store_fail(w->st, "mdb_put(seen_age) failed", rc);
    }

    return 0;
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
            if (rc == 0 && val.mv_size == 4
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
