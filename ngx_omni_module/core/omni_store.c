/*
 * LMDB profile store shared by the nginx module and omnictl.
 * See omni_store.h for the databases and the process model.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#include <lmdb.h>

#include "omni_store_int.h"


/*
 * Error text is per thread: the module reads in the event loop while its
 * writer task writes in a pool thread, both on one handle.
 */
__thread char  omni_store_err[OMNI_ERR_LEN];


int
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


/*
 * A store directory with the set-group-ID bit (the packaged
 * /var/lib/omni: www-data, group omni, mode 2770) is shared with its
 * group: its files get the directory's group from the kernel, and here
 * group read-write whatever the umask of the process that created them,
 * so that admins in the group can run omnictl next to nginx.  Best
 * effort: only the files' owner (or root) may change them, and a file
 * that is already group-writable is left alone.
 */
static void
omni_store_share_group(const char *path)
{
    char         file[4200];
    unsigned     i;
    struct stat  sb;

    /* every file omnictl opens for writing (journal.ckpt: a writer
       records its sync there; the journal's segments are only read) */
    static const char  *names[] = { "data.mdb", "lock.mdb",
                                    "journal.ckpt" };

    if (stat(path, &sb) != 0 || !(sb.st_mode & S_ISGID)) {
        return;
    }

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(file, sizeof(file), "%s/%s", path, names[i]);

        if (stat(file, &sb) == 0 && (sb.st_mode & 0060) != 0060
            && (sb.st_uid == geteuid() || geteuid() == 0))
        {
            (void) chmod(file, (sb.st_mode & 07777) | 0060);
        }
    }
}


/*
 * A consistent copy of the whole environment (every named database) in
 * dir/data.mdb, taken in one read transaction, so writers go on while
 * it runs.  Compacting leaves out free pages and renumbers the rest;
 * the copy is fsynced before this returns.
 */
int
omni_store_copy(omni_store_t *st, const char *dir, int compact)
{
    int   rc, fd;
    char  file[4200];

    rc = mdb_env_copy2(st->env, dir, compact ? MDB_CP_COMPACT : 0);
    if (rc != 0) {
        return omni_store_fail(st, "mdb_env_copy2() failed", rc);
    }

    snprintf(file, sizeof(file), "%s/data.mdb", dir);

    fd = open(file, O_RDONLY);
    if (fd == -1 || fsync(fd) != 0) {
        rc = errno;
        if (fd != -1) {
            close(fd);
        }

        snprintf(omni_store_err, OMNI_ERR_LEN, "cannot sync the copy: %s",
                 strerror(rc));
        return OMNI_ERROR;
    }

    close(fd);

    return OMNI_OK;
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
    if (rc == 0) {
        what = "forgotten";
        rc = mdb_dbi_open(txn, "forgotten", flags, &st->forgotten);
        if (rc == 0) {
            st->has_forgotten = 1;

        } else if (rc == MDB_NOTFOUND && !create) {
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
                     "than this build supports (%u): it was written by a "
                     "newer version; upgrade the module and omnictl, or "
                     "restore a backup taken before the upgrade", schema,
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

    if (omni_store_open_salt(st, txn, create) != OMNI_OK) {
        mdb_txn_abort(txn);
        return OMNI_ERROR;
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
    st->nosync = opts->nosync ? 1 : 0;
    st->journal = (opts->journal && !opts->readonly) ? 1 : 0;
    st->ckpt_fd = -1;
    st->data_fd = -1;
    st->seg_fd = -1;
    st->prep_fd = -1;

    /* after a host crash, the journal's recovery comes first */
    if (!opts->recovering) {
        rc = omni_journal_open(st, opts, err, errlen);

        if (rc != OMNI_OK) {
            free(st);
            return rc == OMNI_RECOVER ? OMNI_RECOVER : OMNI_ERROR;
        }
    }

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

    if (opts->nosync || st->journal) {
        flags |= MDB_NOSYNC;
    }

    rc = mdb_env_open(st->env, path, flags, 0640);
    if (rc != 0) {
        snprintf(err, errlen, "cannot open store \"%s\": %s", path,
                 mdb_strerror(rc));
        mdb_env_close(st->env);
        omni_journal_close(st);
        free(st);
        return OMNI_ERROR;
    }

    if (omni_journal_attach(st, err, errlen) != OMNI_OK) {
        mdb_env_close(st->env);
        omni_journal_close(st);
        free(st);
        return OMNI_ERROR;
    }

    /* a read-only open (nginx -t) changes nothing, modes included */
    if (!opts->readonly) {
        omni_store_share_group(path);
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
        st->journal = 0;
        omni_journal_close(st);
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

    /* a bulk load synced at its end: record that as the checkpoint */
    if (!st->journal && st->ckpt_fd != -1 && st->nosync && st->wrote) {
        (void) omni_journal_synced(st);
    }

    omni_journal_close(st);

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


uint64_t
omni_store_read_snapshot(omni_store_t *st)
{
    return st->rtxn != NULL ? (uint64_t) mdb_txn_id(st->rtxn) : 0;
}


void
omni_store_read_end(omni_store_t *st)
{
    if (st->rtxn) {
        mdb_txn_reset(st->rtxn);
    }
}


int
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
        /*
         * A forgotten cookie or device that comes back: its tombstone
         * names the fresh profile it starts, never the erased one.
         */
        return omni_store_tombstone_get(st, txn, kind, v, len, pid, NULL);
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
int
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


int
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

    if (st->has_forgotten) {
        w->forgotten = st->forgotten;
        w->forgotten_open = 1;
    }

    *wp = w;

    return OMNI_OK;
}


int
omni_wtxn_commit(omni_wtxn_t *w)
{
    int            rc, publish, publish_merged, publish_forgotten;
    int            publish_salt;
    MDB_dbi        seen, seen_age, merged, forgotten;
    omni_store_t  *st;
    unsigned char  salt[sizeof(w->salt)];

    st = w->st;

    /* one write of the next touchpoint number for all the appends */
    if (w->tp_dirty) {
        rc = omni_wtxn_put_meta_u64(w, "tp_next", w->next_seq);
        if (rc != OMNI_OK) {
            omni_wtxn_abort(w);
            return rc;
        }
    }

    publish = w->seen_open && !st->has_seen;
    publish_merged = w->merged_open && !st->has_merged;
    publish_forgotten = w->forgotten_open && !st->has_forgotten;
    publish_salt = w->salt_new;
    seen = w->seen;
    seen_age = w->seen_age;
    merged = w->merged;
    forgotten = w->forgotten;
    memcpy(salt, w->salt, sizeof(salt));

    rc = mdb_txn_commit(w->txn);
    free(w);

    if (rc != 0) {
        return omni_store_fail(st, "mdb_txn_commit() failed", rc);
    }

    st->wrote = 1;

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

    if (publish_forgotten) {
        st->forgotten = forgotten;
        st->has_forgotten = 1;
    }

    if (publish_salt) {
        memcpy(st->salt, salt, sizeof(salt));
        st->has_salt = 1;
    }

    /*
     * A commit this handle synced, in a store whose nginx journals: it
     * becomes the checkpoint a host crash recovers from.
     */
    if (!st->journal && !st->nosync && st->ckpt_fd != -1) {
        return omni_journal_synced(st);
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

    /*
     * Some visitor refused a purpose: from now on the request path must
     * read each visitor's consent (omni_store_consent_refused()).  Until
     * then, under opt-out, it need not read a profile just to learn that
     * nothing was refused.
     */
    if ((p->consent & OMNI_CONSENT_SET) && !w->st->refusal_known
        && (p->consent & OMNI_CONSENT_PURPOSES)
           != OMNI_CONSENT_PURPOSES)
    {
        key.mv_data = (void *) "consent_refused";
        key.mv_size = sizeof("consent_refused") - 1;
        val.mv_data = (void *) "1";
        val.mv_size = 1;

        rc = mdb_put(w->txn, w->st->meta, &key, &val, 0);
        if (rc != 0) {
            return omni_store_fail(w->st, "mdb_put(meta) failed", rc);
        }

        /* a handle may write it again after an abort: harmless */
        w->st->refusal_known = 1;
    }

    return OMNI_OK;
}


int
omni_store_consent_refused(omni_store_t *st)
{
    MDB_val  key, val;

    if (st->rtxn == NULL) {
        return 1;
    }

    key.mv_data = (void *) "consent_refused";
    key.mv_size = sizeof("consent_refused") - 1;

    /* a store that cannot tell is read as "yes": read the consent */
    return mdb_get(st->rtxn, st->meta, &key, &val) != MDB_NOTFOUND;
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

