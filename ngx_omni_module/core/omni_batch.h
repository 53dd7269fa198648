/*
 * The write path's one entry point: a batch of touches, their
 * touchpoints and events, applied in one write transaction.
 *
 * The module's writer, "omnictl event" and bench/writer-bench all call
 * omni_batch_apply(), so every writer of a store does the same things in
 * the same order:
 *
 *   1. the touches, grouped so each profile is read and written once
 *      (omni_apply_touches());
 *   2. one touchpoint per touch that asks for one, in arrival order;
 *   3. the events, group by group, after the touches (a merge an
 *      identify causes sees every touch of the batch);
 *   4. retention: a bounded number of the oldest touchpoints and, when
 *      the batch carried events, of the oldest idempotency keys;
 *   5. the queue position the batch ends at (meta "queue"), so a writer
 *      that takes over after a crash knows what is committed already;
 *   6. commit, then one sync when the batch asks to be durable.
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
    int             sync;               /* 1: synced before returning
                                           (durable); 0: as the store's
                                           open options say */
    int             always_sync;        /* sync even with no events */
} omni_batch_opts_t;

typedef struct {
    const omni_touch_t    *touches;
    size_t                 ntouches;
    /* scratch of ntouches ids, receives each touch's profile id */
    unsigned char        (*pids)[OMNI_ID_LEN];
    omni_batch_events_t   *events;

    /*
     * The queue the batch came from: queue_id != 0 stores (queue_id,
     * queue_pos) in meta "queue" in the same transaction.
     */
    uint64_t               queue_id;
    uint64_t               queue_pos;

    /* results */
    unsigned               nevents;     /* events applied */
    unsigned               pruned;      /* touchpoints retention removed */
    double                 commit_s;    /* time in commit and sync */
    uint32_t               now;         /* 0: time(NULL) */
} omni_batch_t;

/*
 * OMNI_OK, or the error of the step that failed (OMNI_MAP_FULL and
 * OMNI_MAP_RESIZED included: the caller adjusts the map and retries the
 * same batch) with omni_store_error() saying why.
 */
int omni_batch_apply(omni_store_t *st, const omni_batch_opts_t *opts,
    omni_batch_t *b);

/*
 * The queue position meta "queue" holds for queue_id: 0 when the store
 * last committed a batch of another queue, or none.
 */
int omni_store_queue_pos(omni_store_t *st, uint64_t queue_id,
    uint64_t *pos);

/*
 * The same, inside the caller's read transaction (omni_store_read_begin):
 * the queue position the reader's snapshot holds.
 */
int omni_store_read_queue_pos(omni_store_t *st, uint64_t queue_id,
    uint64_t *pos);

#endif /* OMNI_BATCH_H */
