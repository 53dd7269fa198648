/*
 * The write path's one entry point: a batch of touches, their
 * touchpoints and events, applied in one write transaction.
 *
 * The module's writer, "omnictl event" and bench/writer-bench all call
 * omni_batch_apply(), so every writer of a store does the same things in
 * the same order:
 *
 *   1. log first: one touchpoint per touch that asks for one, in arrival
 *      order, under the profile its identity resolves to now (an alias
 *      read, no profile write);
 *   2. the fold: the counters of the touches to fold (visits, last seen,
 *      impressions, stage; new visitors' profiles), grouped so each
 *      profile is read and written once however many touches it got
 *      (omni_apply_touches()).  A writer that folds every batch passes
 *      the same touches twice; the module folds touches it appended
 *      earlier, about once a second, so a profile record is rewritten
 *      once per fold, not once per page view;
 *   3. the events, group by group, after the touches (a merge an
 *      identify causes sees every touch of the batch);
 *   4. retention: a bounded number of the oldest touchpoints and, when
 *      the batch carried events, of the oldest idempotency keys;
 *   5. the queue positions the batch ends at (meta "queue": appended up
 *      to, folded up to), so a writer that takes over after a crash
 *      knows what is committed already;
 *   6. commit, then one sync when the batch asks to be durable: of the
 *      journal when the store is journaled, of the store otherwise.
 *
 * All or nothing: on any error the transaction is aborted and the store
 * is as it was.  Per-event results are written to each group's status[]
 * and pids[] only when the batch committed.
 */

#ifndef OMNI_BATCH_H
#define OMNI_BATCH_H

#include "omni_store.h"
#include "omni_update.h"
#include "omni_event.h"
#include "omni_journal.h"

typedef struct omni_batch_events_s  omni_batch_events_t;

/* A group of parsed events: one request body, one line of a file. */
struct omni_batch_events_s {
    omni_batch_events_t   *next;
    omni_event_batch_t    *batch;       /* rc[i] != OMNI_OK: skipped */
    unsigned               from, to;    /* the events [from, to) */
    int                   *status;      /* OMNI_EVENT_*, per event */
    unsigned char        (*pids)[OMNI_ID_LEN];
};

typedef struct {
    uint64_t        tp_max;             /* touchpoints kept; 0: no limit */
    uint32_t        tp_max_age;         /* seconds; 0: no limit */
    int             sync;               /* 1: a batch with events is
                                           synced before returning
                                           (durable); 0: as the store's
                                           open options say */
    uint32_t        anon_ttl;           /* seconds; 0: anonymous profiles
                                           never expire */
} omni_batch_opts_t;

/* A queue zone, and the position up to which its records are applied. */
typedef struct {
    uint64_t               zone;
    uint64_t               end;
} omni_origin_t;

typedef struct {
    /* touches to log (their touchpoints) */
    const omni_touch_t    *touches;
    size_t                 ntouches;
    /* scratch of ntouches ids, receives each touch's profile id */
    unsigned char        (*pids)[OMNI_ID_LEN];

    /* touches to fold into the profiles (may be the same array) */
    const omni_touch_t    *fold;
    size_t                 nfold;
    unsigned char        (*fold_pids)[OMNI_ID_LEN];

    omni_batch_events_t   *events;

    /*
     * The jobs the events came in, as received: a journaled store
     * (omni_journal.h) appends them after the commit and syncs that
     * instead of the store.
     */
    const omni_journal_job_t  *journal;
    size_t                 njournal;

    /*
     * The queue the batch came from: queue_id != 0 stores (queue_id,
     * queue_pos, fold_pos) in meta "queue" in the same transaction.
     */
    uint64_t               queue_id;
    uint64_t               queue_pos;   /* logged up to */
    uint64_t               fold_pos;    /* folded up to */

    /*
     * A cluster node's batch consumed from the shared stream: != 0
     * stores the last stream sequence it holds in meta "stream", in the
     * same transaction (omni_store_stream_seq()).
     */
    uint64_t               stream_seq;

    /*
     * With it, the cluster's origins (omni_cmsg.h): for each queue zone
     * whose records the batch applied, the position up to which they
     * are applied now, stored in meta "origin" + the zone's id.
     */
    const omni_origin_t   *origins;
    size_t                 norigins;

    /* results */
    unsigned               nevents;     /* events applied */
    unsigned               pruned;      /* touchpoints retention removed */
    unsigned               merges;      /* profiles merged into others */
    double                 commit_s;    /* time in commit and sync */
    uint32_t               now;         /* 0: time(NULL) */

    /*
     * Expiry of anonymous profiles (opts->anon_ttl): a batch with
     * expire_budget > 0 scans that many profiles from expire_from, which
     * it moves on (the caller keeps it between batches); expired counts
     * the profiles it removed.
     */
    unsigned               expire_budget;
    unsigned char          expire_from[OMNI_ID_LEN];
    unsigned               expired;
} omni_batch_t;

/*
 * OMNI_OK, or the error of the step that failed (OMNI_MAP_FULL and
 * OMNI_MAP_RESIZED included: the caller adjusts the map and retries the
 * same batch) with omni_store_error() saying why.
 */
int omni_batch_apply(omni_store_t *st, const omni_batch_opts_t *opts,
    omni_batch_t *b);

/*
 * The queue positions meta "queue" holds for queue_id (logged up to,
 * folded up to): 0 when the store last committed a batch of another
 * queue, or none.
 */
int omni_store_queue_pos(omni_store_t *st, uint64_t queue_id,
    uint64_t *pos, uint64_t *fold);

/*
 * The same, inside the caller's read transaction (omni_store_read_begin):
 * the fold position the reader's snapshot holds (the touches whose
 * counters its profiles include).
 */
int omni_store_read_queue_pos(omni_store_t *st, uint64_t queue_id,
    uint64_t *fold);

/*
 * Fills pids[i] with the profile touch i's identity resolves to now:
 * the one its request resolved (pid_known), else its alias's profile,
 * or, on first sight, the visitor's own id (the id the fold will create
 * the profile under).  Reads only.
 */
int omni_resolve_touches(omni_wtxn_t *w, const omni_touch_t *t, size_t n,
    unsigned char (*pids)[OMNI_ID_LEN]);

/*
 * The last stream sequence a cluster node applied (meta "stream"); 0
 * when none.  Its own read transaction.
 */
int omni_store_stream_seq(omni_store_t *st, uint64_t *seq);

/*
 * The applied position of each origins[i].zone (meta "origin"), in one
 * read transaction: known[i] is 0 for a zone the store has none of
 * (origins[i].end is then 0).
 */
int omni_store_origins(omni_store_t *st, omni_origin_t *origins, size_t n,
    unsigned char *known);

#endif /* OMNI_BATCH_H */
