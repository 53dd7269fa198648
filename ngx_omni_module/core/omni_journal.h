/*
 * The event journal: durable events at the cost of one sync.
 *
 * An LMDB commit made durable costs two ordered flushes (the data pages,
 * then the meta page), and an event dirties some twenty pages of a large
 * store.  A store opened with "journal" instead commits without syncing
 * (MDB_NOSYNC), appends each acknowledged event job to a journal segment
 * and syncs that one file once per batch: an event is synced exactly
 * once, in a page or two, before it is answered.
 *
 * The store's pages reach the disk at checkpoints, about once a second,
 * off the writer's path:
 *
 *   begin (the writer, right after a commit): a read transaction pins
 *     the last commit S, so LMDB reuses none of S's pages until the next
 *     checkpoint is durable; S's meta page is copied; later journal
 *     records go to a new segment;
 *   end (any other thread): one sync of the data file makes S (and more)
 *     durable; journal.ckpt records S with its meta page (two alternate
 *     slots, each with a checksum); older segments are deleted; the
 *     previous checkpoint's pin is released.
 *
 * After a host crash (journal.ckpt names another boot id than this one)
 * the first process that opens the store restores S's meta page, which
 * only points to pages that were synced and never reused since, and
 * replays the journal's events committed after S, in order.  A process
 * crash (kill -9) loses nothing the page cache holds: the next writer
 * starts with a checkpoint.  Writers that sync their own commits
 * (omnictl) record a checkpoint after each, so recovery never goes back
 * before what they wrote.
 *
 * Files in the store's directory: journal.ckpt and journal.<16 hex>.
 */

#ifndef OMNI_JOURNAL_H
#define OMNI_JOURNAL_H

#include "omni_store.h"
#include "omni_event.h"

/* One acknowledged job: a request body and what it was parsed with. */
typedef struct {
    const omni_event_ctx_t  *ec;
    uint32_t                 visit_timeout;
    const char              *text;
    size_t                   len;
    /* messageIds the module assigned: (u16 LE index, u8 len, bytes)... */
    const unsigned char     *ids;
    size_t                   ids_len;
    unsigned                 nids;
} omni_journal_job_t;

/* A checkpoint between its begin and its end. */
typedef struct {
    void           *pin;            /* the read transaction */
    uint64_t        txnid;
    uint64_t        next_seg;       /* segments before it are obsolete */
    unsigned        slot;           /* the meta page's page number */
    unsigned        psize;
    unsigned char   meta[4096];
    double          started;
    /*
     * Set by the caller between begin and end: the end writes the data
     * file back in steps spread over spread_ms before its sync, so that
     * a journal sync never waits behind a whole interval's pages; it
     * stops spreading as soon as hurry() says so (an exiting process).
     */
    unsigned        spread_ms;
    int           (*hurry)(void);
} omni_checkpoint_t;

/*
 * Appends the jobs committed by transaction txnid to the current segment
 * and syncs it: when this returns OMNI_OK they survive a host crash.
 */
int omni_journal_append(omni_store_t *st, uint64_t txnid,
    const omni_journal_job_t *jobs, size_t n);

/*
 * The writer's side of a checkpoint, right after a commit (no commit of
 * this handle may run concurrently).  OMNI_NOTFOUND: not now (a commit
 * of another process moved the meta pages; try after the next commit).
 */
int omni_checkpoint_begin(omni_store_t *st, omni_checkpoint_t *cp);

/*
 * The rest, in any thread, concurrently with the writer's commits: the
 * sync, journal.ckpt, old segments, the previous pin.
 */
int omni_checkpoint_end(omni_store_t *st, omni_checkpoint_t *cp);

/* A begun checkpoint given up: the previous one stays. */
void omni_checkpoint_abandon(omni_store_t *st, omni_checkpoint_t *cp);

/* Both at once: a writer that starts, and one that stops. */
int omni_checkpoint_now(omni_store_t *st);

/*
 * Drops the journal of the store at path (its data file was replaced:
 * a restore): journal.ckpt emptied, the segments removed.
 */
int omni_journal_reset(const char *path);

/* Whether the store is opened with the journal. */
int omni_store_journaled(omni_store_t *st);

/* Recovery statistics of the last open: events replayed. */
unsigned omni_store_replayed(omni_store_t *st);

#endif /* OMNI_JOURNAL_H */
