/*
 * omnictl: backup and restore of the whole store.
 *
 * A backup is LMDB's own copy of the environment (omni_store_copy():
 * mdb_env_copy2() with compaction) in DIR/data.mdb: every database, the
 * touchpoints, idempotency keys and merge records included, taken in one
 * read transaction while nginx goes on writing.  Unlike export, it keeps
 * everything, but it is tied to LMDB's format and the machine's byte
 * order (see docs/omnictl.md, "Backups and migrations").
 *
 * restore puts such a copy in place of the store's data.mdb.  Replacing
 * the file under a process that has it mapped would leave that process
 * writing to the old file, so restore first makes sure nobody has the
 * store open, the way LMDB itself tells: every process with the
 * environment open holds a shared fcntl() lock on the first byte of
 * lock.mdb, so an exclusive lock on it is granted only when no other
 * process uses the store.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "omnictl.h"
#include "omni_journal.h"


#define OMNICTL_PATH_MAX  4200


static int omnictl_restore_stage(omnictl_ctx_t *ctx, const char *from,
    const char *stage, omni_store_stat_t *s);
static int omnictl_copy_file(const char *from, const char *to, mode_t mode,
    char *err, size_t errlen);
static int omnictl_store_in_use(const char *store, int *in_use);
static int omnictl_sync_dir(const char *dir);
static int omnictl_stat_store(omnictl_ctx_t *ctx, omni_store_t *st,
    omni_store_stat_t *s);
static json_t *omnictl_stat_json(const omni_store_stat_t *s);


/* ---- backup ---- */

int
omnictl_backup(omnictl_ctx_t *ctx)
{
    int                ret;
    char               file[OMNICTL_PATH_MAX];
    json_t            *obj;
    double             start;
    const char        *dir;
    struct stat        sb;
    omni_store_t      *st;
    omni_store_stat_t  s;

    dir = ctx->args[0];

    if (strlen(dir) + sizeof("/data.mdb") > sizeof(file)) {
        return omnictl_usage_error(ctx, "backup directory path is too long");
    }

    snprintf(file, sizeof(file), "%s/data.mdb", dir);

    if (stat(file, &sb) == 0) {
        omnictl_error(ctx, "\"%s\" exists: a backup never overwrites one; "
                      "give a new directory (e.g. with the date in its "
                      "name) or remove the old backup first", file);
        return OMNICTL_EXIT_FATAL;
    }

    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        omnictl_error(ctx, "cannot create \"%s\": %s", dir, strerror(errno));
        return OMNICTL_EXIT_FATAL;
    }

    /* attach: a reader, never in the way of nginx's writer */
    ret = omnictl_open(ctx, OMNICTL_OPEN_READ, &st);
    if (ret != OMNICTL_EXIT_OK) {
        return ret;
    }

    start = omnictl_now();

    if (omni_store_copy(st, dir, 1) != OMNI_OK) {
        omnictl_error(ctx, "%s: %s", file, omni_store_error(st));
        omni_store_close(st);
        unlink(file);
        return OMNICTL_EXIT_FATAL;
    }

    omni_store_close(st);

    /* a backup holds personal data: no more open than the store */
    (void) chmod(file, 0640);

    if (omnictl_sync_dir(dir) != 0) {
        omnictl_error(ctx, "cannot sync \"%s\": %s", dir, strerror(errno));
        return OMNICTL_EXIT_FATAL;
    }

    /*
     * What the copy holds, read from the copy itself: this also proves
     * that it opens.  Opening creates DIR/lock.mdb, which restore never
     * uses.
     */
    ctx->store = dir;

    ret = omnictl_open(ctx, OMNICTL_OPEN_READ, &st);
    if (ret != OMNICTL_EXIT_OK) {
        return ret;
    }

    ret = omnictl_stat_store(ctx, st, &s);
    omni_store_close(st);

    if (ret != OMNICTL_EXIT_OK) {
        return ret;
    }

    obj = omnictl_stat_json(&s);
    if (obj != NULL) {
        json_object_set_new(obj, "backup", json_string(file));
        json_object_set_new(obj, "ms", json_integer((json_int_t)
                                ((omnictl_now() - start) * 1000)));
    }

    return omnictl_print_json(ctx, obj, JSON_COMPACT);
}


/* ---- restore ---- */

int
omnictl_restore(omnictl_ctx_t *ctx)
{
    int                ret, in_use;
    char               from[OMNICTL_PATH_MAX], stage[OMNICTL_PATH_MAX];
    char               data[OMNICTL_PATH_MAX], before[OMNICTL_PATH_MAX];
    char               lock[OMNICTL_PATH_MAX], sfile[OMNICTL_PATH_MAX];
    char               slock[OMNICTL_PATH_MAX];
    json_t            *obj;
    const char        *dir, *store;
    struct stat        sb, dsb;
    omni_store_stat_t  s;

    dir = ctx->args[0];
    store = ctx->store;

    if (store == NULL) {
        return omnictl_usage_error(ctx, "--store DIR (or OMNI_STORE) is "
                                   "required");
    }

    if (strlen(dir) + 32 > OMNICTL_PATH_MAX
        || strlen(store) + 32 > OMNICTL_PATH_MAX)
    {
        return omnictl_usage_error(ctx, "path is too long");
    }

    snprintf(from, sizeof(from), "%s/data.mdb", dir);
    snprintf(stage, sizeof(stage), "%s/.restore", store);
    snprintf(sfile, sizeof(sfile), "%s/.restore/data.mdb", store);
    snprintf(slock, sizeof(slock), "%s/.restore/lock.mdb", store);
    snprintf(data, sizeof(data), "%s/data.mdb", store);
    snprintf(lock, sizeof(lock), "%s/lock.mdb", store);
    snprintf(before, sizeof(before), "%s/data.mdb.before-restore", store);

    if (stat(from, &sb) != 0) {
        omnictl_error(ctx, "no backup in \"%s\": %s: %s (a backup directory "
                      "is what omnictl backup DIR wrote)", dir, from,
                      strerror(errno));
        return OMNICTL_EXIT_FATAL;
    }

    if (stat(store, &dsb) != 0) {
        if (errno != ENOENT || mkdir(store, 0750) != 0
            || stat(store, &dsb) != 0)
        {
            omnictl_error(ctx, "store \"%s\": %s", store, strerror(errno));
            return OMNICTL_EXIT_FATAL;
        }
    }

    /* Refuse early, before the copy, when nothing would come of it. */
    if (omnictl_store_in_use(store, &in_use) != 0) {
        omnictl_error(ctx, "cannot check \"%s\": %s", lock, strerror(errno));
        return OMNICTL_EXIT_FATAL;
    }

    if (in_use && !ctx->force) {
        omnictl_error(ctx, "store \"%s\" is in use by another process "
                      "(nginx or omnictl): stop nginx (systemctl stop nginx)"
                      " and run restore again, or give --force to replace "
                      "it now and restart nginx right after (a reload is "
                      "not enough)", store);
        return OMNICTL_EXIT_FATAL;
    }

    /*
     * Copy into the store's directory first (same file system: the
     * switch is a rename), and open the copy there: a backup that does
     * not open, or that a newer version wrote, never replaces anything.
     */
    ret = omnictl_restore_stage(ctx, from, stage, &s);
    if (ret != OMNICTL_EXIT_OK) {
        unlink(slock);
        unlink(sfile);
        rmdir(stage);
        return ret;
    }

    unlink(slock);

    /* the restored file belongs to whoever owns the store directory */
    if (geteuid() == 0) {
        if (chown(sfile, dsb.st_uid, dsb.st_gid) != 0) {
            omnictl_error(ctx, "chown \"%s\": %s", sfile, strerror(errno));
        }
    }

    /* checked again: the copy took time */
    if (omnictl_store_in_use(store, &in_use) != 0) {
        in_use = 1;
    }

    if (in_use && !ctx->force) {
        omnictl_error(ctx, "store \"%s\" came into use during the restore; "
                      "nothing was changed", store);
        unlink(sfile);
        rmdir(stage);
        return OMNICTL_EXIT_FATAL;
    }

    if (stat(data, &sb) == 0 && rename(data, before) != 0) {
        omnictl_error(ctx, "cannot rename \"%s\": %s", data, strerror(errno));
        unlink(sfile);
        rmdir(stage);
        return OMNICTL_EXIT_FATAL;
    }

    /*
     * The old lock file describes the old data file (its last
     * transaction id, the readers of its pages): it goes with it.  A
     * process that still has both open (--force) keeps its own pair.
     */
    if (unlink(lock) != 0 && errno != ENOENT) {
        omnictl_error(ctx, "cannot remove \"%s\": %s", lock, strerror(errno));
    }

    /* so does the journal: its checkpoint names pages of the old file */
    if (omni_journal_reset(store) != OMNI_OK) {
        omnictl_error(ctx, "cannot reset the journal of \"%s\": %s", store,
                      strerror(errno));
    }

    if (rename(sfile, data) != 0) {
        omnictl_error(ctx, "cannot rename \"%s\" to \"%s\": %s (the old "
                      "store is in \"%s\")", sfile, data, strerror(errno),
                      before);
        return OMNICTL_EXIT_FATAL;
    }

    rmdir(stage);
    (void) omnictl_sync_dir(store);

    if (in_use) {
        omnictl_error(ctx, "restored while the store was in use: restart "
                      "nginx now (systemctl restart nginx); until then it "
                      "writes to \"%s\", and those writes are not in the "
                      "restored store", before);
    }

    obj = omnictl_stat_json(&s);
    if (obj != NULL) {
        json_object_set_new(obj, "restored", json_string(from));
        json_object_set_new(obj, "previous", json_string(before));
    }

    return omnictl_print_json(ctx, obj, JSON_COMPACT);
}


static int
omnictl_restore_stage(omnictl_ctx_t *ctx, const char *from,
    const char *stage, omni_store_stat_t *s)
{
    int            ret;
    char           sfile[OMNICTL_PATH_MAX + 16];
    char           err[3 * OMNICTL_PATH_MAX];
    mode_t         mode;
    struct stat    sb;
    const char    *store;
    omni_store_t  *st;

    snprintf(sfile, sizeof(sfile), "%s/data.mdb", stage);

    /* a stage left by a restore that was killed is stale: start over */
    unlink(sfile);

    if (mkdir(stage, 0700) != 0 && errno != EEXIST) {
        omnictl_error(ctx, "cannot create \"%s\": %s", stage,
                      strerror(errno));
        return OMNICTL_EXIT_FATAL;
    }

    /* the mode of the data file it replaces, else LMDB's 0640 */
    mode = 0640;
    snprintf(err, sizeof(err), "%s/data.mdb", ctx->store);
    if (stat(err, &sb) == 0) {
        mode = sb.st_mode & 0777;
    }

    if (omnictl_copy_file(from, sfile, mode, err, sizeof(err)) != 0) {
        omnictl_error(ctx, "%s", err);
        return OMNICTL_EXIT_FATAL;
    }

    store = ctx->store;
    ctx->store = stage;

    ret = omnictl_open(ctx, OMNICTL_OPEN_READ, &st);

    ctx->store = store;

    if (ret != OMNICTL_EXIT_OK) {
        omnictl_error(ctx, "the backup in \"%s\" does not open; the store "
                      "was not changed", from);
        return ret;
    }

    ret = omnictl_stat_store(ctx, st, s);
    omni_store_close(st);

    return ret;
}


/* Copies a file and fsyncs the copy; the copy is created (O_EXCL). */
static int
omnictl_copy_file(const char *from, const char *to, mode_t mode, char *err,
    size_t errlen)
{
    int      in, out, e;
    char    *buf;
    size_t   done;
    ssize_t  n, w;

    in = open(from, O_RDONLY);
    if (in == -1) {
        snprintf(err, errlen, "cannot open \"%s\": %s", from,
                 strerror(errno));
        return -1;
    }

    out = open(to, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (out == -1) {
        snprintf(err, errlen, "cannot create \"%s\": %s", to,
                 strerror(errno));
        close(in);
        return -1;
    }

    buf = malloc(1 << 20);
    e = buf ? 0 : ENOMEM;

    while (e == 0 && (n = read(in, buf, 1 << 20)) != 0) {
        if (n < 0) {
            e = errno;
            break;
        }

        for (done = 0; done < (size_t) n; done += (size_t) w) {
            w = write(out, buf + done, (size_t) n - done);
            if (w < 0) {
                e = errno;
                break;
            }
        }
    }

    free(buf);

    if (e == 0 && fsync(out) != 0) {
        e = errno;
    }

    close(in);

    if (close(out) != 0 && e == 0) {
        e = errno;
    }

    if (e != 0) {
        snprintf(err, errlen, "cannot copy \"%s\" to \"%s\": %s", from, to,
                 strerror(e));
        unlink(to);
        return -1;
    }

    return 0;
}


/*
 * Whether another process has the store open: LMDB's own liveness lock
 * (a shared fcntl() lock on byte 0 of lock.mdb held by every open
 * environment).  This process must not have the store open itself:
 * fcntl() locks never conflict within one process.
 */
static int
omnictl_store_in_use(const char *store, int *in_use)
{
    int           fd;
    char          lock[OMNICTL_PATH_MAX];
    struct flock  fl;

    *in_use = 0;

    snprintf(lock, sizeof(lock), "%s/lock.mdb", store);

    fd = open(lock, O_RDWR);
    if (fd == -1) {
        if (errno == ENOENT) {
            return 0;
        }

        if (errno != EACCES) {
            return -1;
        }

        fd = open(lock, O_RDONLY);
        if (fd == -1) {
            return -1;
        }
    }

    memset(&fl, 0, sizeof(struct flock));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 1;

    /* F_GETLK: ask without taking it, so nothing has to be undone */
    if (fcntl(fd, F_GETLK, &fl) != 0) {
        close(fd);
        return -1;
    }

    *in_use = (fl.l_type != F_UNLCK);
    close(fd);

    return 0;
}


static int
omnictl_sync_dir(const char *dir)
{
    int  fd, rc;

    fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd == -1) {
        return -1;
    }

    rc = fsync(fd);
    close(fd);

    return rc;
}


static int
omnictl_stat_store(omnictl_ctx_t *ctx, omni_store_t *st,
    omni_store_stat_t *s)
{
    if (omni_store_stat(st, s) != OMNI_OK) {
        omnictl_error(ctx, "%s", omni_store_error(st));
        return OMNICTL_EXIT_FATAL;
    }

    return OMNICTL_EXIT_OK;
}


static json_t *
omnictl_stat_json(const omni_store_stat_t *s)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                     "schema", (json_int_t) s->schema,
                     "bytes", (json_int_t) s->map_used,
                     "profiles", (json_int_t) s->profiles,
                     "aliases", (json_int_t) s->aliases,
                     "touchpoints", (json_int_t) s->touchpoints,
                     "seen", (json_int_t) s->seen,
                     "last_seq", (json_int_t) s->last_seq);
}
