/*
 * The event journal and checkpoints (omni_journal.h).
 *
 * journal.ckpt: two slots of OMNI_CKPT_SLOT bytes, written alternately
 * and synced, so a torn write leaves the other one valid:
 *
 *   0  "OMNICKP1"          8  u64 seq (the newer slot wins)
 *  16  u64 txnid S        24  u64 first segment still needed
 *  32  u32 page size      36  u32 the meta page's page number
 *  40  boot id (40 bytes, NUL-padded)
 *  80  u32 checksum of [0, 80) and the meta page
 * 128  S's meta page, as LMDB wrote it
 *
 * journal.<16 hex digits>: records, each
 *
 *   u32 "OJR1", u32 payload length, u64 txnid, u32 checksum of the
 *   payload, u32 0, then the payload: u8 trust, u8 source, u8 channel,
 *   u8 visitor kind, u8 type, u8 need_message_id, u16 nids, u32 now,
 *   u32 visit timeout, the visitor id, u32 text length, u32 ids length,
 *   the text, the ids.
 *
 * LMDB's meta page: the page number in its first 8 bytes, the magic at
 * 16, the transaction id at 144 (LMDB 0.9, 64-bit).
 */

/* sync_file_range(2) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "omni_store_int.h"
#include "omni_journal.h"
#include "omni_batch.h"

#define OMNI_CKPT_SLOT       8192
#define OMNI_CKPT_MAGIC      "OMNICKP1"
#define OMNI_JREC_MAGIC      0x314a524fU            /* "OJR1" */
#define OMNI_JREC_HDR        24
#define OMNI_JREC_FIXED      (16 + OMNI_ID_LEN + 8)
#define OMNI_JREC_MAX        (64u << 20)
#define OMNI_MDB_MAGIC       0xBEEFC0DEU
#define OMNI_META_MAGIC_AT   16
#define OMNI_META_TXNID_AT   144
/*
 * A segment is made ready before it is needed: written through (zeros,
 * or an obsolete segment renamed) and synced with its directory entry,
 * so that an append overwrites allocated blocks and its fdatasync
 * flushes the data alone, not the file's size and extents.
 */
#define OMNI_SEG_SIZE        (8u << 20)

typedef struct {
    uint64_t        seq;
    uint64_t        txnid;
    uint64_t        first_seg;
    unsigned        psize;
    unsigned        slot;
    char            boot[40];
    unsigned char   meta[4096];
    int             valid;
} omni_ckpt_t;


static uint32_t omni_crc_table[256];


static void
omni_crc_init(void)
{
    uint32_t  c, i, k;

    if (omni_crc_table[1]) {
        return;
    }

    for (i = 0; i < 256; i++) {
        c = i;

        for (k = 0; k < 8; k++) {
            c = (c & 1) ? 0xEDB88320U ^ (c >> 1) : c >> 1;
        }

        omni_crc_table[i] = c;
    }
}


static uint32_t
omni_crc(uint32_t crc, const void *data, size_t len)
{
    const unsigned char  *p = data;

    crc = ~crc;

    while (len--) {
        crc = omni_crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }

    return ~crc;
}


static void
omni_put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char) v;
    p[1] = (unsigned char) (v >> 8);
    p[2] = (unsigned char) (v >> 16);
    p[3] = (unsigned char) (v >> 24);
}


static uint32_t
omni_get_le32(const unsigned char *p)
{
    return (uint32_t) p[0] | ((uint32_t) p[1] << 8)
           | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}


static void
omni_put_le64(unsigned char *p, uint64_t v)
{
    omni_put_le32(p, (uint32_t) v);
    omni_put_le32(p + 4, (uint32_t) (v >> 32));
}


static uint64_t
omni_get_le64(const unsigned char *p)
{
    return (uint64_t) omni_get_le32(p)
           | ((uint64_t) omni_get_le32(p + 4) << 32);
}


/*
 * This boot's id: a host crash is a boot that differs from the one the
 * checkpoint was written in.  OMNI_BOOT_ID overrides it (the tests).
 */
static void
omni_boot_id(char *out)
{
    int          fd;
    ssize_t      n;
    const char  *env;

    memset(out, 0, 40);

    env = getenv("OMNI_BOOT_ID");
    if (env && *env) {
        snprintf(out, 40, "%s", env);
        return;
    }

    fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return;
    }

    n = read(fd, out, 39);
    close(fd);

    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\0')) {
        out[--n] = '\0';
    }
}


static int
omni_jfail(omni_store_t *st, const char *what)
{
    snprintf(omni_store_err, OMNI_ERR_LEN, "%.300s/%s: %s", st->path, what,
             strerror(errno));
    return OMNI_ERROR;
}


/* ---- journal.ckpt ---- */

static void
omni_ckpt_decode(const unsigned char *p, omni_ckpt_t *c)
{
    memset(c, 0, sizeof(omni_ckpt_t));

    if (memcmp(p, OMNI_CKPT_MAGIC, 8) != 0) {
        return;
    }

    c->psize = omni_get_le32(p + 32);

    if (c->psize < 512 || c->psize > sizeof(c->meta)
        || omni_crc(omni_crc(0, p, 80), p + 128, c->psize)
           != omni_get_le32(p + 80))
    {
        return;
    }

    c->seq = omni_get_le64(p + 8);
    c->txnid = omni_get_le64(p + 16);
    c->first_seg = omni_get_le64(p + 24);
    c->slot = omni_get_le32(p + 36);
    memcpy(c->boot, p + 40, 39);
    memcpy(c->meta, p + 128, c->psize);
    c->valid = 1;
}


/* The newer valid slot; c->valid 0 when there is none. */
static int
omni_ckpt_read(int fd, omni_ckpt_t *c)
{
    ssize_t        n;
    omni_ckpt_t    other;
    unsigned char  buf[2 * OMNI_CKPT_SLOT];

    memset(buf, 0, sizeof(buf));

    n = pread(fd, buf, sizeof(buf), 0);
    if (n < 0) {
        return OMNI_ERROR;
    }

    omni_ckpt_decode(buf, c);
    omni_ckpt_decode(buf + OMNI_CKPT_SLOT, &other);

    if (other.valid && (!c->valid || other.seq > c->seq)) {
        *c = other;
    }

    return OMNI_OK;
}


static int
omni_ckpt_write(int fd, const omni_ckpt_t *c)
{
    unsigned char  buf[OMNI_CKPT_SLOT];

    memset(buf, 0, sizeof(buf));
    memcpy(buf, OMNI_CKPT_MAGIC, 8);
    omni_put_le64(buf + 8, c->seq);
    omni_put_le64(buf + 16, c->txnid);
    omni_put_le64(buf + 24, c->first_seg);
    omni_put_le32(buf + 32, c->psize);
    omni_put_le32(buf + 36, c->slot);
    memcpy(buf + 40, c->boot, 39);
    memcpy(buf + 128, c->meta, c->psize);
    omni_put_le32(buf + 80, omni_crc(omni_crc(0, buf, 80), buf + 128,
                                     c->psize));

    if (pwrite(fd, buf, sizeof(buf), (off_t) (c->seq % 2) * OMNI_CKPT_SLOT)
        != (ssize_t) sizeof(buf)
        || fdatasync(fd) != 0)
    {
        return OMNI_ERROR;
    }

    return OMNI_OK;
}


/*
 * Records checkpoint txnid (its meta page) as the newest one, unless a
 * newer one is recorded already (another process's, e.g. omnictl's);
 * first_seg only moves forward.  Under the file's lock.
 */
static int
omni_ckpt_record(omni_store_t *st, uint64_t txnid, unsigned slot,
    unsigned psize, const unsigned char *meta, uint64_t first_seg)
{
    int          rc;
    omni_ckpt_t  cur, next;

    if (flock(st->ckpt_fd, LOCK_EX) != 0) {
        return omni_jfail(st, "journal.ckpt: flock()");
    }

    rc = omni_ckpt_read(st->ckpt_fd, &cur);

    if (rc == OMNI_OK) {
        memset(&next, 0, sizeof(omni_ckpt_t));
        next.seq = cur.valid ? cur.seq + 1 : 1;
        omni_boot_id(next.boot);

        if (cur.valid && cur.txnid >= txnid) {
            next.txnid = cur.txnid;
            next.slot = cur.slot;
            next.psize = cur.psize;
            memcpy(next.meta, cur.meta, cur.psize);

        } else {
            next.txnid = txnid;
            next.slot = slot;
            next.psize = psize;
            memcpy(next.meta, meta, psize);
        }

        next.first_seg = (cur.valid && cur.first_seg > first_seg)
                         ? cur.first_seg : first_seg;

        rc = omni_ckpt_write(st->ckpt_fd, &next);
    }

    (void) flock(st->ckpt_fd, LOCK_UN);

    if (rc != OMNI_OK) {
        return omni_jfail(st, "journal.ckpt");
    }

    return OMNI_OK;
}


/*
 * The meta page of transaction txnid (0: the newest one), read from the
 * data file.  OMNI_NOTFOUND: no meta page holds it now.
 */
static int
omni_meta_read(omni_store_t *st, uint64_t txnid, unsigned char *meta,
    unsigned *slot, uint64_t *got)
{
    unsigned        i, best;
    uint64_t        id, best_id;
    unsigned char  *p;
    unsigned char   buf[2 * 4096];

    if (pread(st->data_fd, buf, 2 * st->psize, 0)
        != (ssize_t) (2 * st->psize))
    {
        return omni_jfail(st, "data.mdb: pread()");
    }

    best = 2;
    best_id = 0;

    for (i = 0; i < 2; i++) {
        p = buf + i * st->psize;

        if (omni_get_le32(p + OMNI_META_MAGIC_AT) != OMNI_MDB_MAGIC) {
            continue;
        }

        id = omni_get_le64(p + OMNI_META_TXNID_AT);

        if ((txnid && id == txnid) || (!txnid && id >= best_id)) {
            best = i;
            best_id = id;
        }
    }

    if (best == 2) {
        return OMNI_NOTFOUND;
    }

    memcpy(meta, buf + best * st->psize, st->psize);
    *slot = best;
    *got = best_id;

    return OMNI_OK;
}


/* ---- segments ---- */

static int
omni_seg_name(char *buf, size_t size, const char *dir, uint64_t no)
{
    return snprintf(buf, size, "%s/journal.%016llx", dir,
                    (unsigned long long) no);
}


/* The segment numbers in the directory, sorted; *n of them (malloc). */
static int
omni_seg_list(const char *dir, uint64_t **list, size_t *n)
{
    DIR            *d;
    size_t          cap;
    uint64_t       *l, *nl, no;
    struct dirent  *de;

    *list = NULL;
    *n = 0;

    d = opendir(dir);
    if (d == NULL) {
        return OMNI_ERROR;
    }

    l = NULL;
    cap = 0;

    while ((de = readdir(d)) != NULL) {
        char  *end;

        if (strncmp(de->d_name, "journal.", 8) != 0
            || strlen(de->d_name) != 8 + 16)
        {
            continue;
        }

        no = strtoull(de->d_name + 8, &end, 16);
        if (*end != '\0') {
            continue;
        }

        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            nl = realloc(l, cap * sizeof(uint64_t));
            if (nl == NULL) {
                free(l);
                closedir(d);
                return OMNI_ERROR;
            }
            l = nl;
        }

        l[(*n)++] = no;
    }

    closedir(d);

    /* a handful: insertion sort */
    for (size_t i = 1; i < *n; i++) {
        uint64_t  v = l[i];
        size_t    j = i;

        while (j && l[j - 1] > v) {
            l[j] = l[j - 1];
            j--;
        }

        l[j] = v;
    }

    *list = l;

    return OMNI_OK;
}


static void
omni_seg_prune(const char *dir, uint64_t below)
{
    char       name[4200];
    size_t     i, n;
    uint64_t  *l;

    if (omni_seg_list(dir, &l, &n) != OMNI_OK) {
        return;
    }

    for (i = 0; i < n; i++) {
        if (l[i] < below) {
            omni_seg_name(name, sizeof(name), dir, l[i]);
            (void) unlink(name);
        }
    }

    free(l);
}


static int omni_dir_sync(const char *dir);


/*
 * After a checkpoint: the segments before `below` are obsolete.  One of
 * them becomes the segment after the current one (below + 1), made
 * ready for the writer; the others go.  Without one, a new file of
 * zeros.  Stale records a recycled segment still holds name commits
 * the checkpoint has: a recovery skips them, and stops at the first
 * record that is not whole.
 */
static void
omni_seg_recycle(omni_store_t *st, uint64_t below)
{
    int          fd;
    char         name[4200], to[4200];
    size_t       i, n, off;
    uint64_t    *l;
    struct stat  sb;

    static const unsigned char  zeros[65536];

    if (omni_seg_list(st->path, &l, &n) != OMNI_OK) {
        return;
    }

    omni_seg_name(to, sizeof(to), st->path, below + 1);
    fd = -1;

    for (i = 0; i < n; i++) {
        if (l[i] >= below) {
            continue;
        }

        omni_seg_name(name, sizeof(name), st->path, l[i]);

        if (fd == -1 && st->prep_fd == -1 && stat(name, &sb) == 0
            && sb.st_size >= (off_t) OMNI_SEG_SIZE
            && rename(name, to) == 0)
        {
            fd = open(to, O_WRONLY | O_CLOEXEC);
            continue;
        }

        (void) unlink(name);
    }

    free(l);

    if (st->prep_fd != -1 || (fd == -1 && stat(to, &sb) == 0)) {
        return;                 /* ready already, or in use */
    }

    if (fd == -1) {
        fd = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);

        for (off = 0; fd != -1 && off < OMNI_SEG_SIZE; off += sizeof(zeros)) {
            if (pwrite(fd, zeros, sizeof(zeros), (off_t) off)
                != (ssize_t) sizeof(zeros))
            {
                close(fd);
                (void) unlink(to);
                fd = -1;
            }
        }
    }

    if (fd == -1) {
        return;
    }

    if (fdatasync(fd) != 0 || omni_dir_sync(st->path) != 0) {
        close(fd);
        return;
    }

    pthread_mutex_lock(&st->pin_mu);
    st->prep_fd = fd;
    st->prep_no = below + 1;
    pthread_mutex_unlock(&st->pin_mu);
}


static int
omni_dir_sync(const char *dir)
{
    int  fd, rc;

    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1) {
        return -1;
    }

    rc = fsync(fd);
    close(fd);

    return rc;
}


int
omni_journal_reset(const char *path)
{
    char  name[4200];

    snprintf(name, sizeof(name), "%s/journal.ckpt", path);

    if (truncate(name, 0) != 0 && errno != ENOENT) {
        return OMNI_ERROR;
    }

    omni_seg_prune(path, UINT64_MAX);

    return OMNI_OK;
}


/* ---- the writer's side ---- */

int
omni_store_journaled(omni_store_t *st)
{
    return st->journal;
}


unsigned
omni_store_replayed(omni_store_t *st)
{
    return st->replayed;
}


int
omni_journal_append(omni_store_t *st, uint64_t txnid,
    const omni_journal_job_t *jobs, size_t n)
{
    char            name[4200];
    size_t          i, total, len;
    ssize_t         w;
    unsigned char  *buf, *p;

    if (!st->journal) {
        return OMNI_OK;
    }

    total = 0;

    for (i = 0; i < n; i++) {
        total += OMNI_JREC_HDR + OMNI_JREC_FIXED + jobs[i].len
                 + jobs[i].ids_len;
    }

    if (total == 0) {
        return OMNI_OK;
    }

    if (st->seg_fd == -1 && st->pin_mu_init) {
        pthread_mutex_lock(&st->pin_mu);

        if (st->prep_fd != -1 && st->prep_no == st->seg_no) {
            st->seg_fd = st->prep_fd;
            st->seg_off = 0;
            st->prep_fd = -1;
        }

        pthread_mutex_unlock(&st->pin_mu);
    }

    if (st->seg_fd == -1) {
        omni_seg_name(name, sizeof(name), st->path, st->seg_no);

        st->seg_fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                          0640);
        if (st->seg_fd == -1) {
            return omni_jfail(st, "journal segment: open()");
        }

        /* the new name must survive a crash before any record in it */
        if (omni_dir_sync(st->path) != 0) {
            return omni_jfail(st, "fsync() of the directory");
        }

        st->seg_off = 0;
    }

    buf = malloc(total);
    if (buf == NULL) {
        snprintf(omni_store_err, OMNI_ERR_LEN, "out of memory");
        return OMNI_ERROR;
    }

    p = buf;

    for (i = 0; i < n; i++) {
        const omni_journal_job_t  *j = &jobs[i];
        const omni_event_ctx_t    *ec = j->ec;
        unsigned char             *pl;

        len = OMNI_JREC_FIXED + j->len + j->ids_len;
        pl = p + OMNI_JREC_HDR;

        pl[0] = (unsigned char) ec->trust;
        pl[1] = (unsigned char) ec->source;
        pl[2] = (unsigned char) ec->channel;
        pl[3] = (unsigned char) ec->visitor_kind;
        pl[4] = (unsigned char) ec->type;
        pl[5] = (unsigned char) ec->need_message_id;
        pl[6] = (unsigned char) j->nids;
        pl[7] = (unsigned char) (j->nids >> 8);
        omni_put_le32(pl + 8, ec->now);
        omni_put_le32(pl + 12, j->visit_timeout);
        memcpy(pl + 16, ec->visitor, OMNI_ID_LEN);
        omni_put_le32(pl + 16 + OMNI_ID_LEN, (uint32_t) j->len);
        omni_put_le32(pl + 20 + OMNI_ID_LEN, (uint32_t) j->ids_len);
        memcpy(pl + OMNI_JREC_FIXED, j->text, j->len);
        if (j->ids_len) {
            memcpy(pl + OMNI_JREC_FIXED + j->len, j->ids, j->ids_len);
        }

        omni_put_le32(p, OMNI_JREC_MAGIC);
        omni_put_le32(p + 4, (uint32_t) len);
        omni_put_le64(p + 8, txnid);
        omni_put_le32(p + 16, omni_crc(0, pl, len));
        omni_put_le32(p + 20, 0);

        p = pl + len;
    }

    w = pwrite(st->seg_fd, buf, total, (off_t) st->seg_off);
    free(buf);

    if (w != (ssize_t) total) {
        if (w >= 0) {
            errno = ENOSPC;
        }

        /* a later append starts where this one did: nothing half-read */
        return omni_jfail(st, "journal segment: pwrite()");
    }

    if (fdatasync(st->seg_fd) != 0) {
        return omni_jfail(st, "journal segment: fdatasync()");
    }

    st->seg_off += total;

    return OMNI_OK;
}


/*
 * The tests' host crash: OMNI_TEST_CKPT_COPY names a file that receives
 * the data file as it is right after each checkpoint's sync, a state the
 * disk may hold after a crash (what was synced, and some of what came
 * after).  Never set in production.
 */
static void
omni_test_copy(omni_store_t *st)
{
    int          in, out;
    char         name[4200], tmp[4200];
    ssize_t      n;
    const char  *to;
    static char  buf[65536];

    to = getenv("OMNI_TEST_CKPT_COPY");
    if (to == NULL || *to == '\0') {
        return;
    }

    snprintf(name, sizeof(name), "%s/data.mdb", st->path);
    snprintf(tmp, sizeof(tmp), "%.4000s.tmp", to);

    in = open(name, O_RDONLY | O_CLOEXEC);
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);

    while (in != -1 && out != -1 && (n = read(in, buf, sizeof(buf))) > 0) {
        if (write(out, buf, n) != n) {
            break;
        }
    }

    if (in != -1) {
        close(in);
    }

    if (out != -1) {
        close(out);
        (void) rename(tmp, to);
    }
}


int
omni_checkpoint_begin(omni_store_t *st, omni_checkpoint_t *cp)
{
    int        rc;
    uint64_t   id, got;
    MDB_txn   *r;

    memset(cp, 0, sizeof(omni_checkpoint_t));

    rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &r);
    if (rc != 0) {
        return omni_store_fail(st, "mdb_txn_begin(checkpoint) failed", rc);
    }

    id = mdb_txn_id(r);

    rc = omni_meta_read(st, id, cp->meta, &cp->slot, &got);
    if (rc != OMNI_OK) {
        mdb_txn_abort(r);
        return rc;
    }

    cp->pin = r;
    cp->txnid = id;
    cp->psize = st->psize;

    /* every record after this one goes to a new segment */
    if (st->seg_fd != -1) {
        close(st->seg_fd);
        st->seg_fd = -1;
    }

    st->seg_no++;
    cp->next_seg = st->seg_no;

    return OMNI_OK;
}


/*
 * A smoothed checkpoint (PostgreSQL's checkpoint_completion_target, with
 * sync_file_range as its checkpoint_flush_after uses it): the data file's
 * dirty pages are written back one step of the file at a time, each step
 * waited for, the steps spread over cp->spread_ms.  A journal sync that
 * falls in the interval then waits behind one step's writes at most,
 * not behind every page of the interval, and the final fdatasync finds
 * little left to write.  Best effort: the sync after it is what makes
 * the pages durable.
 */
#define OMNI_CKPT_STEPS      64
#define OMNI_CKPT_STEP_MIN   (1u << 20)

static void
omni_ckpt_writeback(omni_store_t *st, omni_checkpoint_t *cp)
{
#ifdef SYNC_FILE_RANGE_WRITE
    int              fd;
    off_t            end, step, off;
    double           t0, due, now;
    unsigned         i;
    MDB_envinfo      info;
    struct timespec  ts;

    if (cp->spread_ms == 0
        || mdb_env_get_fd(st->env, &fd) != 0
        || mdb_env_info(st->env, &info) != 0)
    {
        return;
    }

    end = (off_t) (info.me_last_pgno + 1) * st->psize;
    step = (end + OMNI_CKPT_STEPS - 1) / OMNI_CKPT_STEPS;

    if (step < (off_t) OMNI_CKPT_STEP_MIN) {
        step = OMNI_CKPT_STEP_MIN;
    }

    t0 = omni_clock_s();

    for (i = 0, off = 0; off < end; i++, off += step) {

        if (cp->hurry && cp->hurry()) {
            return;
        }

        if (sync_file_range(fd, off, step, SYNC_FILE_RANGE_WAIT_BEFORE
                                           | SYNC_FILE_RANGE_WRITE
                                           | SYNC_FILE_RANGE_WAIT_AFTER)
            != 0)
        {
            return;
        }

        /* ahead of the schedule: wait for the next step's turn */
        due = t0 + cp->spread_ms / 1000.0 * (i + 1) / OMNI_CKPT_STEPS;
        now = omni_clock_s();

        if (due > now) {
            ts.tv_sec = (time_t) (due - now);
            ts.tv_nsec = (long) ((due - now - ts.tv_sec) * 1e9);
            nanosleep(&ts, NULL);
        }
    }
#else
    (void) st;
    (void) cp;
#endif
}


int
omni_checkpoint_end(omni_store_t *st, omni_checkpoint_t *cp)
{
    int       rc;
    MDB_txn  *old;

    omni_ckpt_writeback(st, cp);

    rc = mdb_env_sync(st->env, 1);
    if (rc != 0) {
        rc = omni_store_fail(st, "mdb_env_sync(checkpoint) failed", rc);
        goto failed;
    }

    omni_test_copy(st);

    rc = omni_ckpt_record(st, cp->txnid, cp->slot, cp->psize, cp->meta,
                          cp->next_seg);
    if (rc != OMNI_OK) {
        goto failed;
    }

    omni_seg_recycle(st, cp->next_seg);

    /* S is durable: what pinned the one before may go */
    pthread_mutex_lock(&st->pin_mu);
    old = st->pin;
    st->pin = cp->pin;
    pthread_mutex_unlock(&st->pin_mu);

    if (old) {
        mdb_txn_abort(old);
    }

    cp->pin = NULL;

    return OMNI_OK;

failed:

    /* the previous checkpoint stays the one to recover from */
    mdb_txn_abort(cp->pin);
    cp->pin = NULL;

    return rc;
}


void
omni_checkpoint_abandon(omni_store_t *st, omni_checkpoint_t *cp)
{
    if (cp->pin) {
        mdb_txn_abort(cp->pin);
        cp->pin = NULL;
    }
}


int
omni_checkpoint_now(omni_store_t *st)
{
    int                rc;
    unsigned           tries;
    omni_checkpoint_t  cp;

    for (tries = 0; tries < 100; tries++) {
        rc = omni_checkpoint_begin(st, &cp);

        if (rc == OMNI_OK) {
            return omni_checkpoint_end(st, &cp);
        }

        if (rc != OMNI_NOTFOUND) {
            return rc;
        }
    }

    snprintf(omni_store_err, OMNI_ERR_LEN,
             "no checkpoint: the meta pages keep moving");
    return OMNI_ERROR;
}


/*
 * A journaled handle's first write: the segments go on after the newest
 * one there, and a checkpoint makes everything before durable (a writer
 * that died left its commits in the page cache only).
 */
int
omni_journal_start(omni_store_t *st)
{
    size_t     n;
    uint64_t  *l;

    if (omni_seg_list(st->path, &l, &n) != OMNI_OK) {
        return omni_jfail(st, "opendir()");
    }

    st->seg_no = n ? l[n - 1] : 0;
    free(l);

    st->started = 1;

    return omni_checkpoint_now(st);
}


/*
 * A handle that syncs its own commits (omnictl), in a store that has a
 * journal: its commit is durable, and becomes the checkpoint to recover
 * from, so that a host crash never undoes it.  The writer lock keeps
 * every other commit out while the meta page is read.
 */
int
omni_journal_synced(omni_store_t *st)
{
    int             rc;
    unsigned        slot;
    uint64_t        got;
    MDB_txn        *w;
    unsigned char   meta[4096];

    rc = mdb_txn_begin(st->env, NULL, 0, &w);
    if (rc != 0) {
        return omni_store_fail(st, "mdb_txn_begin(checkpoint) failed", rc);
    }

    rc = mdb_env_sync(st->env, 1);
    if (rc != 0) {
        mdb_txn_abort(w);
        return omni_store_fail(st, "mdb_env_sync(checkpoint) failed", rc);
    }

    rc = omni_meta_read(st, 0, meta, &slot, &got);

    if (rc == OMNI_OK) {
        rc = omni_ckpt_record(st, got, slot, st->psize, meta, 0);
    }

    mdb_txn_abort(w);

    return rc == OMNI_NOTFOUND ? OMNI_OK : rc;
}


/* ---- opening, and recovery after a host crash ---- */

/*
 * One record's job, parsed as the writer did, applied in a transaction
 * of its own.  A record that no longer parses is skipped: it could not
 * have been applied either.
 */
static int
omni_journal_replay_one(omni_store_t *st, const unsigned char *pl,
    size_t len, unsigned *events)
{
    int                   rc;
    size_t                tlen, ilen, k, idx, l;
    unsigned              nids, i;
    const unsigned char  *ids;
    omni_batch_t          b;
    omni_batch_opts_t     opts;
    omni_event_ctx_t      ec;
    omni_event_err_t      err;
    omni_event_batch_t    eb;
    omni_batch_events_t   group;

    if (len < OMNI_JREC_FIXED) {
        return OMNI_OK;
    }

    memset(&ec, 0, sizeof(ec));
    ec.trust = pl[0];
    ec.source = pl[1];
    ec.channel = pl[2];
    ec.visitor_kind = pl[3];
    ec.type = pl[4];
    ec.need_message_id = pl[5];
    nids = pl[6] | (pl[7] << 8);
    ec.now = omni_get_le32(pl + 8);
    memcpy(ec.visitor, pl + 16, OMNI_ID_LEN);
    tlen = omni_get_le32(pl + 16 + OMNI_ID_LEN);
    ilen = omni_get_le32(pl + 20 + OMNI_ID_LEN);

    if (OMNI_JREC_FIXED + tlen + ilen != len) {
        return OMNI_OK;
    }

    if (omni_event_batch_parse(&eb, (const char *) pl + OMNI_JREC_FIXED,
                               tlen, &ec, &err)
        != OMNI_OK)
    {
        return OMNI_OK;
    }

    for (i = 0; i < eb.n; i++) {
        if (eb.rc[i] == OMNI_OK) {
            eb.events[i].visit_timeout = omni_get_le32(pl + 12);
        }
    }

    /* the messageIds the module assigned, as the writer sets them */
    ids = pl + OMNI_JREC_FIXED + tlen;

    for (k = 0, l = 0; k < nids && l + 3 <= ilen; k++) {
        idx = ids[l] | (ids[l + 1] << 8);
        tlen = ids[l + 2];
        l += 3;

        if (l + tlen > ilen) {
            break;
        }

        if (idx < eb.n && eb.rc[idx] == OMNI_OK
            && tlen < sizeof(eb.events[idx].message_id))
        {
            memcpy(eb.events[idx].message_id, ids + l, tlen);
            eb.events[idx].message_id[tlen] = '\0';
        }

        l += tlen;
    }

    memset(&group, 0, sizeof(group));
    group.batch = &eb;
    group.status = calloc(eb.n ? eb.n : 1, sizeof(int) + OMNI_ID_LEN);

    if (group.status == NULL) {
        omni_event_batch_free(&eb);
        snprintf(omni_store_err, OMNI_ERR_LEN, "out of memory");
        return OMNI_ERROR;
    }

    group.pids = (unsigned char (*)[OMNI_ID_LEN]) (group.status + eb.n);

    memset(&b, 0, sizeof(b));
    memset(&opts, 0, sizeof(opts));
    b.events = &group;
    b.now = ec.now;

    rc = omni_batch_apply(st, &opts, &b);

    if (rc == OMNI_OK) {
        *events += b.nevents;
    }

    free(group.status);
    omni_event_batch_free(&eb);

    return rc;
}


static int
omni_journal_replay_seg(omni_store_t *st, const char *name, uint64_t after,
    unsigned *events)
{
    int             fd, rc;
    size_t          off, len;
    ssize_t         n;
    struct stat     sb;
    unsigned char  *buf, *p;

    fd = open(name, O_RDONLY | O_CLOEXEC);
    if (fd == -1 || fstat(fd, &sb) != 0) {
        if (fd != -1) {
            close(fd);
        }
        return omni_jfail(st, "journal segment: open()");
    }

    buf = malloc(sb.st_size ? (size_t) sb.st_size : 1);
    if (buf == NULL) {
        close(fd);
        snprintf(omni_store_err, OMNI_ERR_LEN, "out of memory");
        return OMNI_ERROR;
    }

    n = pread(fd, buf, (size_t) sb.st_size, 0);
    close(fd);

    if (n != (ssize_t) sb.st_size) {
        free(buf);
        return omni_jfail(st, "journal segment: read()");
    }

    rc = OMNI_OK;

    /* up to the first record that is not whole: an append cut short */
    for (off = 0; off + OMNI_JREC_HDR <= (size_t) n; off += OMNI_JREC_HDR + len)
    {
        p = buf + off;
        len = omni_get_le32(p + 4);

        if (omni_get_le32(p) != OMNI_JREC_MAGIC || len > OMNI_JREC_MAX
            || off + OMNI_JREC_HDR + len > (size_t) n
            || omni_crc(0, p + OMNI_JREC_HDR, len) != omni_get_le32(p + 16))
        {
            break;
        }

        if (omni_get_le64(p + 8) <= after) {
            continue;
        }

        rc = omni_journal_replay_one(st, p + OMNI_JREC_HDR, len, events);
        if (rc != OMNI_OK) {
            break;
        }
    }

    free(buf);

    return rc;
}


/*
 * The host crashed after checkpoint c: put back its meta page (in both
 * slots, so LMDB picks it), replay the journal's events committed after
 * it, make that durable and record it as the new checkpoint.
 */
static int
omni_journal_recover(const char *path, int ckpt_fd, const omni_ckpt_t *c,
    unsigned *replayed, char *err, size_t errlen)
{
    int                 fd, rc;
    char                name[4200];
    size_t              i, n;
    uint64_t           *segs;
    unsigned            events;
    MDB_txn            *pin;
    omni_store_t       *st;
    omni_store_opts_t   opts;
    unsigned char       page[4096];

    snprintf(name, sizeof(name), "%s/data.mdb", path);

    fd = open(name, O_RDWR | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errlen, "recovery: %s: %s", name, strerror(errno));
        return OMNI_ERROR;
    }

    for (i = 0; i < 2; i++) {
        memcpy(page, c->meta, c->psize);
        omni_put_le64(page, i);                     /* mp_pgno */

        if (pwrite(fd, page, c->psize, (off_t) (i * c->psize))
            != (ssize_t) c->psize)
        {
            snprintf(err, errlen, "recovery: %s: %s", name,
                     strerror(errno));
            close(fd);
            return OMNI_ERROR;
        }
    }

    if (fdatasync(fd) != 0) {
        snprintf(err, errlen, "recovery: %s: %s", name, strerror(errno));
        close(fd);
        return OMNI_ERROR;
    }

    close(fd);

    memset(&opts, 0, sizeof(opts));
    opts.attach = 1;
    opts.nosync = 1;
    opts.recovering = 1;

    if (omni_store_open(&st, path, &opts, err, errlen) != OMNI_OK) {
        return OMNI_ERROR;
    }

    st->ckpt_fd = ckpt_fd;

    if (omni_journal_attach(st, err, errlen) != OMNI_OK) {
        st->ckpt_fd = -1;
        omni_store_close(st);
        return OMNI_ERROR;
    }

    /* the checkpoint's pages stay as they are until the end */
    rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &pin);
    if (rc != 0) {
        snprintf(err, errlen, "recovery: mdb_txn_begin(): %s",
                 mdb_strerror(rc));
        st->ckpt_fd = -1;
        omni_store_close(st);
        return OMNI_ERROR;
    }

    events = 0;
    rc = omni_seg_list(path, &segs, &n);

    for (i = 0; rc == OMNI_OK && i < n; i++) {
        if (segs[i] < c->first_seg) {
            continue;
        }

        omni_seg_name(name, sizeof(name), path, segs[i]);
        rc = omni_journal_replay_seg(st, name, c->txnid, &events);
    }

    if (rc == OMNI_OK && mdb_env_sync(st->env, 1) != 0) {
        rc = omni_jfail(st, "mdb_env_sync()");
    }

    mdb_txn_abort(pin);

    if (rc == OMNI_OK) {
        unsigned       slot;
        uint64_t       got;
        unsigned char  meta[4096];

        rc = omni_meta_read(st, 0, meta, &slot, &got);

        if (rc == OMNI_OK) {
            rc = omni_ckpt_record(st, got, slot, st->psize, meta,
                                  n ? segs[n - 1] + 1 : 0);
        }
    }

    if (rc == OMNI_OK && n) {
        omni_seg_prune(path, segs[n - 1] + 1);
    }

    free(segs);

    if (rc != OMNI_OK) {
        snprintf(err, errlen, "recovery: %s", omni_store_err);
    }

    st->ckpt_fd = -1;
    omni_store_close(st);

    *replayed = events;

    return rc;
}


/*
 * Whether the checkpoint belongs to another data file than this one (a
 * store put back from a backup, or copied elsewhere): the file's newest
 * meta page is older than the checkpoint, which the checkpoint's sync
 * made durable.  The journal is then dropped, not applied.
 */
static int
omni_journal_stale(const char *path, int ckpt_fd, const omni_ckpt_t *c)
{
    int             fd;
    char            name[4200];
    unsigned        i;
    uint64_t        best;
    unsigned char   buf[2 * 4096];

    snprintf(name, sizeof(name), "%s/data.mdb", path);

    fd = open(name, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return 0;
    }

    memset(buf, 0, sizeof(buf));

    if (pread(fd, buf, 2 * c->psize, 0) != (ssize_t) (2 * c->psize)) {
        close(fd);
        return 0;
    }

    close(fd);

    best = 0;

    for (i = 0; i < 2; i++) {
        const unsigned char  *p = buf + i * c->psize;

        if (omni_get_le32(p + OMNI_META_MAGIC_AT) == OMNI_MDB_MAGIC
            && omni_get_le64(p + OMNI_META_TXNID_AT) > best)
        {
            best = omni_get_le64(p + OMNI_META_TXNID_AT);
        }
    }

    if (best >= c->txnid) {
        return 0;
    }

    if (ftruncate(ckpt_fd, 0) == 0) {
        omni_seg_prune(path, UINT64_MAX);
    }

    return 1;
}


/*
 * Before the environment is opened: the journal's files, and recovery
 * when the host crashed since the last checkpoint.  Every opener goes
 * through the checkpoint file's lock, so one recovers and the others
 * find it done.
 */
int
omni_journal_open(omni_store_t *st, const omni_store_opts_t *opts,
    char *err, size_t errlen)
{
    int          fd, flags;
    char         name[4200], boot[40];
    omni_ckpt_t  c;

    omni_crc_init();

    st->ckpt_fd = -1;
    st->data_fd = -1;
    st->seg_fd = -1;
    st->prep_fd = -1;

    snprintf(name, sizeof(name), "%s/journal.ckpt", st->path);

    flags = O_CLOEXEC | (opts->journal ? O_RDWR | O_CREAT : O_RDWR);

    fd = open(name, flags, 0640);

    if (fd == -1 && errno == EACCES && opts->readonly) {
        fd = open(name, O_RDONLY | O_CLOEXEC);
    }

    if (fd == -1) {
        if (errno == ENOENT) {
            return OMNI_OK;             /* a store without a journal */
        }

        snprintf(err, errlen, "%s: %s", name, strerror(errno));
        return OMNI_ERROR;
    }

    if (flock(fd, LOCK_EX) != 0 || omni_ckpt_read(fd, &c) != OMNI_OK) {
        snprintf(err, errlen, "%s: %s", name, strerror(errno));
        close(fd);
        return OMNI_ERROR;
    }

    omni_boot_id(boot);

    if (c.valid && strcmp(c.boot, boot) != 0
        && omni_journal_stale(st->path, fd, &c))
    {
        c.valid = 0;
    }

    if (c.valid && strcmp(c.boot, boot) != 0 && opts->readonly) {
        /*
         * A read-only opener (nginx -t) changes nothing on disk, and the
         * data file is not to be read before the recovery: the next
         * read-write open (nginx's start, omnictl) recovers.
         */
        (void) flock(fd, LOCK_UN);
        close(fd);
        snprintf(err, errlen, "the store is to be recovered after a host "
                 "crash: the next start (or omnictl) replays its journal");
        return OMNI_RECOVER;
    }

    if (c.valid && strcmp(c.boot, boot) != 0) {
        if (omni_journal_recover(st->path, fd, &c, &st->replayed, err,
                                 errlen)
            != OMNI_OK)
        {
            (void) flock(fd, LOCK_UN);
            close(fd);
            return OMNI_ERROR;
        }
    }

    (void) flock(fd, LOCK_UN);

    st->ckpt_fd = fd;

    return OMNI_OK;
}


/* After the environment is open: what checkpoints read. */
int
omni_journal_attach(omni_store_t *st, char *err, size_t errlen)
{
    char      name[4200];
    MDB_stat  ms;

    if (st->ckpt_fd == -1) {
        return OMNI_OK;
    }

    mdb_env_stat(st->env, &ms);
    st->psize = ms.ms_psize;

    if (st->psize > 4096) {
        snprintf(err, errlen, "store \"%s\": the journal needs a page size "
                 "of at most 4096 bytes, not %u", st->path, st->psize);
        return OMNI_ERROR;
    }

    snprintf(name, sizeof(name), "%s/data.mdb", st->path);

    st->data_fd = open(name, O_RDONLY | O_CLOEXEC);
    if (st->data_fd == -1) {
        snprintf(err, errlen, "%s: %s", name, strerror(errno));
        return OMNI_ERROR;
    }

    pthread_mutex_init(&st->pin_mu, NULL);
    st->pin_mu_init = 1;

    return OMNI_OK;
}


/* At close: a journaled writer leaves a checkpoint of everything. */
void
omni_journal_close(omni_store_t *st)
{
    if (st->journal && st->started) {
        (void) omni_checkpoint_now(st);
    }

    if (st->pin) {
        mdb_txn_abort(st->pin);
        st->pin = NULL;
    }

    if (st->seg_fd != -1) {
        close(st->seg_fd);
        st->seg_fd = -1;
    }

    if (st->prep_fd != -1) {
        close(st->prep_fd);
        st->prep_fd = -1;
    }

    if (st->data_fd != -1) {
        close(st->data_fd);
        st->data_fd = -1;
    }

    if (st->ckpt_fd != -1) {
        close(st->ckpt_fd);
        st->ckpt_fd = -1;
    }

    if (st->pin_mu_init) {
        pthread_mutex_destroy(&st->pin_mu);
        st->pin_mu_init = 0;
    }
}
