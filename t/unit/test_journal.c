/*
 * Unit tests of omni_journal.c without nginx: a journaled store appends
 * each batch's event jobs to a segment; after a host crash (the data
 * file as a checkpoint synced it, another boot id) the first open
 * replays every whole record committed after the checkpoint, ignores a
 * torn last record and records that the checkpoint holds already; a
 * checkpoint that belongs to another data file (a restore) is dropped,
 * not applied; omni_journal_reset() empties the journal.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "omni_tap.h"
#include "omni_batch.h"

#include "store_helpers.h"


#define NOW  1700000000u


static int
copy_file(const char *from, const char *to)
{
    int      in, out;
    char     buf[65536];
    ssize_t  n;

    in = open(from, O_RDONLY);
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0640);

    if (in == -1 || out == -1) {
        return -1;
    }

    while ((n = read(in, buf, sizeof(buf))) > 0) {
        if (write(out, buf, n) != n) {
            n = -1;
            break;
        }
    }

    close(in);
    close(out);

    return n == 0 ? 0 : -1;
}


static omni_store_t *
open_journaled(const char *dir, const char *boot)
{
    char               err[512];
    omni_store_t      *st;
    omni_store_opts_t  opts;

    setenv("OMNI_BOOT_ID", boot, 1);

    memset(&opts, 0, sizeof(opts));
    opts.journal = 1;
    opts.map_size = MAP_SIZE;

    if (omni_store_open(&st, dir, &opts, err, sizeof(err)) != OMNI_OK) {
        printf("# %s\n", err);
        return NULL;
    }

    return st;
}


/* One server event, messageId id, for customer U-1, as a job. */
static int
post(omni_store_t *st, const char *id)
{
    int                  rc, status[1];
    char                 text[256];
    unsigned char        pids[1][OMNI_ID_LEN];
    omni_batch_t         b;
    omni_event_ctx_t     c;
    omni_event_err_t     err;
    omni_batch_opts_t    o;
    omni_event_batch_t   eb;
    omni_batch_events_t  g;
    omni_journal_job_t   j;

    snprintf(text, sizeof(text), "{\"type\":\"track\",\"event\":"
             "\"Product Added\",\"messageId\":\"%s\",\"userId\":\"U-1\","
             "\"properties\":{\"sku\":\"S-%s\"}}", id, id);

    memset(&c, 0, sizeof(c));
    c.trust = OMNI_TRUST_SERVER;
    c.source = OMNI_SRC_SERVER;
    c.now = NOW;
    c.channel = OMNI_CH_MAX;

    if (omni_event_batch_parse(&eb, text, strlen(text), &c, &err)
        != OMNI_OK)
    {
        printf("# parse: %s %s\n", err.field, err.reason);
        return OMNI_ERROR;
    }

    memset(&g, 0, sizeof(g));
    g.batch = &eb;
    g.to = 1;
    g.status = status;
    g.pids = pids;

    memset(&j, 0, sizeof(j));
    j.ec = &c;
    j.text = text;
    j.len = strlen(text);

    memset(&o, 0, sizeof(o));
    memset(&b, 0, sizeof(b));
    b.events = &g;
    b.journal = &j;
    b.njournal = 1;
    b.now = NOW;

    rc = omni_batch_apply(st, &o, &b);
    omni_event_batch_free(&eb);

    return rc;
}


typedef struct {
    const char  *want;
    int          found;
} find_t;


static int
find_cb(void *arg, uint64_t seq, const void *data, size_t len)
{
    find_t  *f = arg;

    if (memmem(data, len, f->want, strlen(f->want))) {
        f->found = 1;
    }

    return OMNI_OK;
}


/* Whether the touchpoint log holds an event of messageId id. */
static int
has(const char *dir, const char *id)
{
    char               err[512], want[64];
    find_t             f;
    omni_store_t      *st;
    omni_store_opts_t  opts;

    memset(&opts, 0, sizeof(opts));
    opts.attach = 1;

    if (omni_store_open(&st, dir, &opts, err, sizeof(err)) != OMNI_OK) {
        printf("# %s\n", err);
        return -1;
    }

    snprintf(want, sizeof(want), "\"messageId\":\"%s\"", id);
    f.want = want;
    f.found = 0;

    (void) omni_store_foreach_touchpoint(st, 0, 100000, find_cb, &f);

    omni_store_close(st);

    return f.found;
}


static unsigned
replayed_on_open(const char *dir, const char *boot)
{
    unsigned       n;
    omni_store_t  *st;

    st = open_journaled(dir, boot);
    if (st == NULL) {
        return (unsigned) -1;
    }

    n = omni_store_replayed(st);
    omni_store_close(st);

    return n;
}


/*
 * The writer's process: three events, then its end without a close (the
 * crash), leaving the data file as the first checkpoint copied it and a
 * torn record after the three.  Exits 0 when all went as asked.
 */
static int
crashing_writer(const char *dir, const char *copy)
{
    int            fd;
    char           data[128], seg[256];
    struct stat    sb;
    omni_store_t  *st;

    setenv("OMNI_TEST_CKPT_COPY", copy, 1);

    st = open_journaled(dir, "boot-a");
    if (st == NULL || !omni_store_journaled(st)) {
        return 1;
    }

    /* the first batch checkpoints first: e-1 is after the checkpoint */
    if (post(st, "e-1") != OMNI_OK || post(st, "e-2") != OMNI_OK
        || post(st, "e-3") != OMNI_OK || stat(copy, &sb) != 0)
    {
        return 2;
    }

    snprintf(seg, sizeof(seg), "%s/journal.%016llx", dir, 1ULL);

    fd = open(seg, O_WRONLY | O_APPEND);
    if (fd == -1 || write(fd, "OJR1\x40\0\0\0garbage", 15) != 15) {
        return 3;
    }

    close(fd);

    snprintf(data, sizeof(data), "%s/data.mdb", dir);

    return copy_file(copy, data) == 0 ? 0 : 4;
}


static void
test_crash_and_replay(void)
{
    int            status;
    char           dir[64], copy[128];
    pid_t          pid;
    omni_store_t  *st;

    st = store_new(dir);
    if (st == NULL) {
        ok(0, "a store");
        return;
    }

    omni_store_close(st);

    snprintf(copy, sizeof(copy), "%s/at-checkpoint", dir);

    pid = fork();
    if (pid == 0) {
        _exit(crashing_writer(dir, copy));
    }

    ok(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status)
       && WEXITSTATUS(status) == 0,
       "a journaled writer commits three events, then crashes (status %d)",
       pid > 0 ? WEXITSTATUS(status) : -1);

    is_int((int) replayed_on_open(dir, "boot-b"), 3,
           "another boot: the three events replayed, the torn one ignored");
    ok(has(dir, "e-1") == 1 && has(dir, "e-2") == 1 && has(dir, "e-3") == 1,
       "every journaled event is in the store");
    is_int((int) replayed_on_open(dir, "boot-b"), 0,
           "the same boot again: nothing replayed");
    is_int((int) replayed_on_open(dir, "boot-c"), 0,
           "a clean stop, then another boot: nothing to replay");
    ok(has(dir, "e-2") == 1, "and nothing lost");

    unsetenv("OMNI_BOOT_ID");
    store_remove(dir);
}


static void
test_stale_and_reset(void)
{
    char           dir[64], data[128], old[128], ckpt[128];
    struct stat    sb;
    omni_store_t  *st;

    st = store_new(dir);
    if (st == NULL) {
        ok(0, "a store");
        return;
    }

    omni_store_close(st);

    snprintf(data, sizeof(data), "%s/data.mdb", dir);
    snprintf(old, sizeof(old), "%s/old.mdb", dir);
    snprintf(ckpt, sizeof(ckpt), "%s/journal.ckpt", dir);

    ok(copy_file(data, old) == 0, "an old copy of the data file");

    st = open_journaled(dir, "boot-a");
    ok(st && post(st, "s-1") == OMNI_OK && post(st, "s-2") == OMNI_OK,
       "two events");
    omni_store_close(st);

    /* the old file put back, then a reboot: the checkpoint is newer */
    ok(copy_file(old, data) == 0, "the old data file put back");
    is_int((int) replayed_on_open(dir, "boot-b"), 0,
           "a checkpoint newer than the data file is dropped, not applied");
    ok(has(dir, "s-1") == 0, "the old file as it was");

    st = open_journaled(dir, "boot-b");
    ok(st && post(st, "s-3") == OMNI_OK, "the store is written again");
    omni_store_close(st);

    is_int(omni_journal_reset(dir), OMNI_OK, "omni_journal_reset()");
    ok(stat(ckpt, &sb) == 0 && sb.st_size == 0, "journal.ckpt emptied");

    unsetenv("OMNI_BOOT_ID");
    store_remove(dir);
}


int
main(void)
{
    test_crash_and_replay();
    test_stale_and_reset();

    return done_testing();
}
