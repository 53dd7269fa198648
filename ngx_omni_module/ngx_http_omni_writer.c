/*
 * The writer: the only place the module writes to LMDB.
 *
 * Touches go to the shared queue (ngx_http_omni_queue.c) from every
 * worker, and never wait.  The one worker holding the writer lease runs
 * the writer task: a thread-pool task that takes what is queued (up to
 * NGX_HTTP_OMNI_BATCH_MAX touches), applies it in one write transaction
 * through the core's omni_batch_apply() (group commit), and hands the
 * result back to the event loop, which moves the queue's positions and
 * posts the next batch at once while more is queued.  LMDB's writer lock
 * and fsync are therefore only ever waited on in a pool thread, and with
 * one writer per store, workers never take turns on the lock.
 *
 * Log first: a batch appends its touches' touchpoints ("logged up to"),
 * and the counters of the logged touches are folded into the profiles
 * every omni_store fold= interval ("folded up to", where the ring's
 * space is freed), up to NGX_HTTP_OMNI_FOLD_MAX touches per fold, each
 * profile written once per fold however many touches it had.
 *
 * The holder looks at the queue every NGX_HTTP_OMNI_BATCH_DELAY ms, and
 * at once when its own requests have queued NGX_HTTP_OMNI_BATCH_MIN:
 * one commit carries many touches even at moderate rates.
 *
 * Events (omni_events, upstream signals) go through the same queue as
 * jobs: the worker that received them queues their text and parse
 * context, wakes the holder through its mailbox
 * (ngx_http_omni_mailbox.c), and keeps the request suspended.  The
 * holder's writer parses them again, applies them after the batch's
 * touches, commits and syncs: the store is opened with MDB_NOMETASYNC (a
 * traffic batch costs one fsync, and an OS crash may undo the last one
 * but never breaks the database), and a batch with events is synced in
 * full before any of its results leave, so they may acknowledge their
 * events as durable.  The results go back to each job's worker, whose
 * handler answers.  Jobs are never dropped silently: a full queue
 * refuses them up front (503), a batch that fails for good fails its
 * jobs, and a job that gets no answer within NGX_HTTP_OMNI_JOB_TIMEOUT
 * (its writer died between commit and answer) fails: its retry is then
 * recognised as a duplicate.
 *
 * Map changes are handled on the event loop, where no transaction of this
 * process is open between tasks: MAP_RESIZED adopts the size another
 * process set; MAP_FULL adopts or doubles the map up to map_max.
 */

#include "ngx_http_omni_module.h"
#include "ngx_http_omni_metrics.h"
#include "omni_batch.h"

#include <sched.h>


#define NGX_HTTP_OMNI_BATCH_MIN    256
#define NGX_HTTP_OMNI_BATCH_MAX    8192
#define NGX_HTTP_OMNI_BATCH_DELAY  10          /* ms */
#define NGX_HTTP_OMNI_BATCH_JOBS   256         /* event jobs per batch */
#define NGX_HTTP_OMNI_FLUSH_BURST  4           /* cluster batches at once */

#define NGX_HTTP_OMNI_FOLD_MAX     32768       /* touches per fold */
#define NGX_HTTP_OMNI_JOB_TIMEOUT  10000       /* ms */

/* Mailbox messages (ngx_http_omni_mailbox.c). */
#define NGX_HTTP_OMNI_MSG_WAKE     'W'
#define NGX_HTTP_OMNI_MSG_RESULT   'R'

/* A job's results: this header, then n x (u8 status, 16-byte pid). */
/* profiles the anonymous expiry looks at per second (of ~1M: a sweep in
   17 minutes) */
#define NGX_HTTP_OMNI_EXPIRE_SCAN  1000


typedef struct {
    u_char                 type;
    u_char                 full;
    uint16_t               n;
    int32_t                rc;
    uint64_t               id;
} ngx_http_omni_result_t;

#define NGX_HTTP_OMNI_RESULT_ITEM  (1 + OMNI_ID_LEN)


typedef struct {
    omni_touch_t          *ops;
    unsigned char        (*pids)[OMNI_ID_LEN];
    ngx_uint_t             n;
    ngx_http_omni_qjob_t  *jobs;        /* event jobs of the batch */
    ngx_uint_t             njobs;
    ngx_uint_t             nevents;
    uint64_t               from;        /* the queue range it may log */
    uint64_t               to;
    uint64_t               end;         /* where it stopped */

    /* the fold: the counters of [fold_from, fold_end) into profiles */
    omni_touch_t          *fold_ops;
    unsigned char        (*fold_pids)[OMNI_ID_LEN];
    ngx_uint_t             nfold;
    ngx_uint_t             fold;        /* fold in this batch */
    uint64_t               fold_from;
    uint64_t               fold_end;
    int                    rc;
    double                 commit_s;    /* metrics: commit and sync */
    ngx_uint_t             merges;
    /* anonymous profiles: the expiry's place (kept across batches, only
       the thread touches it) and when it scans next */
    u_char                 expire_from[OMNI_ID_LEN];
    time_t                 expire_next;
    ngx_uint_t             expired;
    /* the journal's checkpoint: begun by this task after its commit */
    unsigned               ckpt:1;      /* asked for */
    unsigned               ckpt_only:1; /* nothing to write, just that */
    unsigned               ckpt_begun:1;
    /* a cluster node: the batch went to the stream, not to LMDB; its
       jobs are answered when the stream gives them back */
    unsigned               published:1;
    omni_journal_job_t    *jjobs;       /* NGX_HTTP_OMNI_BATCH_JOBS */
    char                   err[512];
} ngx_http_omni_wtask_t;


/* The checkpoint's end, in a pool thread of its own. */
typedef struct {
    omni_checkpoint_t      cp;
    int                    rc;
    char                   err[512];
} ngx_http_omni_ctask_t;


typedef struct {
#if (NGX_THREADS)
    ngx_thread_pool_t  *pool;
    ngx_thread_task_t  *task;
    ngx_thread_task_t  *ckpt_task;
#endif
    omni_journal_job_t *jjobs;
    ngx_msec_t          ckpt_every;     /* omni_store checkpoint= */
    ngx_msec_t          next_ckpt;
    unsigned            ckpt_busy:1;    /* an end in flight */
    unsigned            ckpt_dirty:1;   /* commits since the last begin */
    omni_touch_t       *ops;
    u_char            (*pids)[OMNI_ID_LEN];
    ngx_http_omni_qjob_t  *qjobs;
    omni_touch_t       *fold_ops;       /* allocated when first needed */
    u_char            (*fold_pids)[OMNI_ID_LEN];
    ngx_msec_t          fold_every;     /* omni_store fold= */
    ngx_msec_t          next_fold;

    ngx_queue_t         waiting;        /* this worker's jobs */
    ngx_uint_t          nwaiting;
    uint64_t            next_id;
    ngx_uint_t          retries;
    ngx_msec_t          due;            /* cluster: the next batch's
                                           time, at one per flush= */
    ngx_msec_t          flush_every;    /* omni_cluster flush=; 0 */
    ngx_uint_t          batch_min;      /* queued touches that make a
                                           batch go before the timer */
    ngx_uint_t          own;            /* touches queued since a post */

    omni_batch_opts_t   opts;
    size_t              map_max;
    time_t              visit_timeout;
    ngx_log_t          *log;

    /* this worker's share, for the exit line */
    ngx_uint_t          committed;
    ngx_uint_t          events;         /* events committed */
    ngx_uint_t          dropped;
    ngx_uint_t          failed;

    time_t              full_logged;    /* when "full" was last logged */

    /*
     * Armed while event jobs are queued or in flight.  A suspended
     * request has no timer of its own, and a worker that is exiting
     * gracefully leaves as soon as no timers are left: this one keeps
     * it until every waiting request has its answer.
     */
    ngx_event_t         hold;

    /* The holder's look at the queue, every NGX_HTTP_OMNI_BATCH_DELAY. */
    ngx_event_t         flush;

    unsigned            busy:1;
    unsigned            resize_pending:1;
} ngx_http_omni_writer_t;


static ngx_http_omni_writer_t  ngx_http_omni_w;


#if (NGX_THREADS)
static void ngx_http_omni_writer_thread(void *data, ngx_log_t *log);
static void ngx_http_omni_writer_done(ngx_event_t *ev);
static void ngx_http_omni_ckpt_thread(void *data, ngx_log_t *log);
static void ngx_http_omni_ckpt_done(ngx_event_t *ev);
static void ngx_http_omni_ckpt_post(void);
static ngx_uint_t ngx_http_omni_ckpt_due(void);
static void ngx_http_omni_writer_post_ckpt(void);
static void ngx_http_omni_writer_post(void);
static void ngx_http_omni_writer_flush(ngx_event_t *ev);
#endif
static int ngx_http_omni_writer_apply(omni_store_t *st,
    ngx_http_omni_wtask_t *t);
static void ngx_http_omni_writer_results(ngx_http_omni_wtask_t *t);
static void ngx_http_omni_writer_account(ngx_http_omni_wtask_t *t,
    ngx_log_t *log);
static void ngx_http_omni_writer_hold(ngx_event_t *ev);
static ngx_uint_t ngx_http_omni_writer_fold_due(ngx_http_omni_queue_t *qu,
    ngx_uint_t force);


ngx_int_t
ngx_http_omni_writer_init(ngx_cycle_t *cycle)
{
    ngx_http_omni_main_conf_t  *mcf;

    ngx_memzero(&ngx_http_omni_w, sizeof(ngx_http_omni_writer_t));

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_omni_module);

    if (mcf == NULL || ngx_http_omni_worker_store() == NULL) {
        return NGX_OK;
    }

#if (NGX_THREADS)
    ngx_http_omni_w.pool = mcf->thread_pool;

    ngx_http_omni_w.task = ngx_thread_task_alloc(cycle->pool,
                                              sizeof(ngx_http_omni_wtask_t));
    if (ngx_http_omni_w.task == NULL) {
        return NGX_ERROR;
    }

    ngx_http_omni_w.task->handler = ngx_http_omni_writer_thread;
    ngx_http_omni_w.task->event.handler = ngx_http_omni_writer_done;
    ngx_http_omni_w.task->event.data = ngx_http_omni_w.task->ctx;
    ngx_http_omni_w.task->event.log = cycle->log;

    ngx_http_omni_w.ckpt_task = ngx_thread_task_alloc(cycle->pool,
                                              sizeof(ngx_http_omni_ctask_t));
    if (ngx_http_omni_w.ckpt_task == NULL) {
        return NGX_ERROR;
    }

    ngx_http_omni_w.ckpt_task->handler = ngx_http_omni_ckpt_thread;
    ngx_http_omni_w.ckpt_task->event.handler = ngx_http_omni_ckpt_done;
    ngx_http_omni_w.ckpt_task->event.data = ngx_http_omni_w.ckpt_task->ctx;
    ngx_http_omni_w.ckpt_task->event.log = cycle->log;

    ngx_http_omni_w.flush.handler = ngx_http_omni_writer_flush;
    ngx_http_omni_w.flush.log = cycle->log;
    ngx_http_omni_w.flush.data = &ngx_http_omni_w;
    /* queued touches never hold an exiting worker: exit writes them */
    ngx_http_omni_w.flush.cancelable = 1;
#endif

    ngx_queue_init(&ngx_http_omni_w.waiting);
    ngx_http_omni_w.hold.handler = ngx_http_omni_writer_hold;
    ngx_http_omni_w.hold.log = cycle->log;
    ngx_http_omni_w.hold.data = &ngx_http_omni_w;

    ngx_http_omni_w.map_max = mcf->map_max;
    ngx_http_omni_w.visit_timeout = mcf->visit_timeout;
    ngx_http_omni_w.opts.tp_max = mcf->tp_max;
    ngx_http_omni_w.opts.tp_max_age = (uint32_t) mcf->tp_max_age;
    ngx_http_omni_w.opts.anon_ttl = (uint32_t) mcf->anon_ttl;
    ngx_http_omni_w.opts.sync = 1;
    ngx_http_omni_w.fold_every = mcf->fold;

    /* a cluster node batches more, and no more often than flush= */
    ngx_http_omni_w.batch_min = mcf->cluster ? NGX_HTTP_OMNI_CLUSTER_BATCH
                                             : NGX_HTTP_OMNI_BATCH_MIN;
    ngx_http_omni_w.flush_every = mcf->cluster ? mcf->cluster->flush : 0;
    ngx_http_omni_w.next_fold = ngx_current_msec + mcf->fold;
    ngx_http_omni_w.log = cycle->log;

    ngx_http_omni_w.ops = ngx_alloc(NGX_HTTP_OMNI_BATCH_MAX
                                    * sizeof(omni_touch_t), cycle->log);
    ngx_http_omni_w.pids = ngx_alloc(NGX_HTTP_OMNI_BATCH_MAX * OMNI_ID_LEN,
                                     cycle->log);
    ngx_http_omni_w.qjobs = ngx_alloc(NGX_HTTP_OMNI_BATCH_JOBS
                                      * sizeof(ngx_http_omni_qjob_t),
                                      cycle->log);
    ngx_http_omni_w.jjobs = ngx_alloc(NGX_HTTP_OMNI_BATCH_JOBS
                                      * sizeof(omni_journal_job_t),
                                      cycle->log);

    if (ngx_http_omni_w.ops == NULL || ngx_http_omni_w.pids == NULL
        || ngx_http_omni_w.qjobs == NULL || ngx_http_omni_w.jjobs == NULL)
    {
        return NGX_ERROR;
    }

    ngx_http_omni_w.ckpt_every = mcf->checkpoint;
    ngx_http_omni_w.next_ckpt = ngx_current_msec + mcf->checkpoint;

    if (ngx_http_omni_queue_init_worker(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_omni_queue() == NULL) {
        return NGX_OK;
    }

#if (NGX_THREADS)
    if (ngx_http_omni_cluster_init_worker(cycle, ngx_http_omni_w.pool,
                                          mcf->visit_timeout)
        != NGX_OK)
    {
        return NGX_ERROR;
    }
#endif

    return ngx_http_omni_mailbox_init(cycle, ngx_http_omni_queue()->id);
}


ngx_uint_t
ngx_http_omni_writer_busy(void)
{
    return ngx_http_omni_w.busy;
}


void
ngx_http_omni_writer_resize_pending(void)
{
    ngx_http_omni_w.resize_pending = 1;
}


/* This worker holds the lease now: look at the queue at once. */
void
ngx_http_omni_writer_kick(void)
{
#if (NGX_THREADS)
    if (ngx_http_omni_w.task == NULL) {
        return;
    }

    ngx_http_omni_cluster_kick();

    if (ngx_http_omni_w.flush.timer_set) {
        return;
    }

    ngx_add_timer(&ngx_http_omni_w.flush, 1);
#endif
}


ngx_int_t
ngx_http_omni_writer_touch(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx)
{
    if (ngx_http_omni_w.ops == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_omni_queue_touch(r, ctx, ngx_http_omni_channel(r, ctx))
        != NGX_OK)
    {
        ngx_http_omni_w.dropped++;
        return NGX_DECLINED;
    }

#if (NGX_THREADS)
    /* A full batch of the holder's own: no need to wait for the timer. */
    if (++ngx_http_omni_w.own >= ngx_http_omni_w.batch_min
        && !ngx_http_omni_w.busy && ngx_http_omni_queue_holder())
    {
        ngx_http_omni_writer_post();
    }
#endif

    return NGX_OK;
}


/*
 * Queues a job of nevents events: its text goes to the shared queue, the
 * job waits here for its results.  NGX_DECLINED: no store; NGX_BUSY: the
 * queue is full, retry later.
 */
ngx_int_t
ngx_http_omni_writer_events(ngx_http_omni_wjob_t *job, ngx_uint_t nevents)
{
    ngx_int_t               rc;
    ngx_pid_t               holder;
    ngx_http_omni_queue_t  *qu;

    qu = ngx_http_omni_queue();

    if (ngx_http_omni_w.ops == NULL || qu == NULL) {
        return NGX_DECLINED;
    }

    job->id = ++ngx_http_omni_w.next_id;
    job->nevents = nevents;
    job->rc = NGX_OK;
    job->full = 0;

    rc = ngx_http_omni_queue_job(job, ngx_http_omni_w.log);
    if (rc != NGX_OK) {
        return rc == NGX_ERROR ? NGX_BUSY : rc;
    }

    job->deadline = ngx_current_msec + NGX_HTTP_OMNI_JOB_TIMEOUT;
    ngx_queue_insert_tail(&ngx_http_omni_w.waiting, &job->queue);
    ngx_http_omni_w.nwaiting++;

    if (!ngx_http_omni_w.hold.timer_set) {
        ngx_add_timer(&ngx_http_omni_w.hold, 1000);
    }

    /* The holder writes it now, not at its next look. */
    holder = (ngx_pid_t) qu->lease;

    if (holder == ngx_pid) {
#if (NGX_THREADS)
        if (!ngx_http_omni_w.busy) {
            ngx_http_omni_writer_post();
        }
#endif

    } else if (holder) {
        u_char  wake = NGX_HTTP_OMNI_MSG_WAKE;

        (void) ngx_http_omni_mailbox_send(holder, &wake, 1, 0);
    }

    return NGX_OK;
}


/*
 * Parses the batch's event jobs again, as their workers did: the same
 * text and context, the same messageIds.  A job whose text no longer
 * parses (it cannot, short of a changed limit across a reload) applies
 * nothing and fails.
 */
static ngx_int_t
ngx_http_omni_writer_parse(ngx_http_omni_qjob_t *j)
{
    size_t             len;
    ngx_uint_t         i, k, idx;
    const u_char      *p;
    omni_event_err_t   err;

    if (omni_event_batch_parse(&j->batch, (const char *) j->text, j->len,
                               &j->ec, &err)
        != OMNI_OK)
    {
        return NGX_ERROR;
    }

    j->parsed = 1;

    j->status = calloc(j->batch.n, sizeof(int) + OMNI_ID_LEN);
    if (j->status == NULL) {
        return NGX_ERROR;
    }

    j->pids = (u_char (*)[OMNI_ID_LEN]) (j->status + j->batch.n);

    for (i = 0; i < j->batch.n; i++) {
        if (j->batch.rc[i] == OMNI_OK) {
            j->batch.events[i].visit_timeout = j->visit_timeout;
        }
    }

    p = j->ids;

    for (k = 0; k < j->nids; k++) {
        idx = p[0] | (p[1] << 8);
        len = p[2];
        p += 3;

        if (idx < j->batch.n && j->batch.rc[idx] == OMNI_OK
            && len < sizeof(j->batch.events[idx].message_id))
        {
            ngx_memcpy(j->batch.events[idx].message_id, p, len);
            j->batch.events[idx].message_id[len] = '\0';
        }

        p += len;
    }

    return NGX_OK;
}


/* Whether an event of the batch may merge profiles. */
static ngx_uint_t
ngx_http_omni_writer_merges(ngx_http_omni_wtask_t *t)
{
    ngx_uint_t             i, k;
    omni_event_t          *ev;
    ngx_http_omni_qjob_t  *j;

    for (i = 0; i < t->njobs; i++) {
        j = &t->jobs[i];

        for (k = 0; j->parsed && k < j->batch.n; k++) {
            if (j->batch.rc[k] != OMNI_OK) {
                continue;
            }

            ev = &j->batch.events[k];

            if (ev->type == OMNI_EV_IDENTIFY || ev->nidents > 1) {
                return 1;
            }
        }
    }

    return 0;
}


static void
ngx_http_omni_writer_free_jobs(ngx_http_omni_wtask_t *t)
{
    ngx_uint_t             i;
    ngx_http_omni_qjob_t  *j;

    for (i = 0; i < t->njobs; i++) {
        j = &t->jobs[i];

        if (j->parsed) {
            omni_event_batch_free(&j->batch);
            j->parsed = 0;
        }

        free(j->status);
        j->status = NULL;
    }
}


#if (NGX_THREADS)

/*
 * A cluster node's consumer begins the checkpoints after its commits,
 * in its own thread (the only one that writes the store there): whether
 * one is due, where the begun one goes, and its end posted.
 */
ngx_uint_t
ngx_http_omni_writer_ckpt_due(void)
{
    return ngx_http_omni_w.ckpt_task && ngx_http_omni_ckpt_due();
}


omni_checkpoint_t *
ngx_http_omni_writer_ckpt_cp(void)
{
    return &((ngx_http_omni_ctask_t *) ngx_http_omni_w.ckpt_task->ctx)->cp;
}


void
ngx_http_omni_writer_ckpt_begun(ngx_uint_t begun)
{
    if (begun) {
        ngx_http_omni_ckpt_post();

    } else {
        ngx_http_omni_w.next_ckpt = ngx_current_msec;
    }
}

#endif


/* For a cluster node's consumer: the same parse, results and cleanup. */
ngx_int_t
ngx_http_omni_writer_parse_job(ngx_http_omni_qjob_t *j)
{
    return ngx_http_omni_writer_parse(j);
}


void
ngx_http_omni_writer_job_results(ngx_http_omni_qjob_t *jobs,
    ngx_uint_t njobs, int rc)
{
    ngx_http_omni_wtask_t  t;

    ngx_memzero(&t, sizeof(ngx_http_omni_wtask_t));
    t.jobs = jobs;
    t.njobs = njobs;
    t.rc = rc;

    ngx_http_omni_writer_results(&t);
    ngx_http_omni_writer_free_jobs(&t);
}


/*
 * The jobs to journal: those the batch applies, as their workers queued
 * them (text, context, assigned messageIds), so that a recovery parses
 * and applies them again exactly as here.
 */
static size_t
ngx_http_omni_writer_journal(ngx_http_omni_qjob_t *jobs, ngx_uint_t njobs,
    omni_journal_job_t *jjobs)
{
    size_t                 n, ilen;
    ngx_uint_t             i, k;
    omni_journal_job_t    *jj;
    ngx_http_omni_qjob_t  *j;

    n = 0;

    for (i = 0; jjobs && i < njobs; i++) {
        j = &jobs[i];

        if (!j->parsed || j->status == NULL) {
            continue;
        }

        ilen = 0;

        for (k = 0; k < j->nids; k++) {
            ilen += 3 + j->ids[ilen + 2];
        }

        jj = &jjobs[n++];
        jj->ec = &j->ec;
        jj->visit_timeout = j->visit_timeout;
        jj->text = (const char *) j->text;
        jj->len = j->len;
        jj->ids = j->ids;
        jj->ids_len = ilen;
        jj->nids = j->nids;
    }

    return n;
}


/*
 * The batch's events: one group per parsed job, chained in order, and
 * the jobs to journal.  *groups (malloc) is freed by the caller after
 * the apply.  The writer and a cluster node's consumer both build their
 * batches with it.
 */
ngx_int_t
ngx_http_omni_writer_events_batch(ngx_http_omni_qjob_t *jobs,
    ngx_uint_t njobs, omni_journal_job_t *jjobs, omni_batch_t *b,
    omni_batch_events_t **groups)
{
    ngx_uint_t             i;
    omni_batch_events_t  **last;

    *groups = NULL;

    if (njobs == 0) {
        return NGX_OK;
    }

    *groups = calloc(njobs, sizeof(omni_batch_events_t));
    if (*groups == NULL) {
        return NGX_ERROR;
    }

    last = &b->events;

    for (i = 0; i < njobs; i++) {
        if (!jobs[i].parsed || jobs[i].status == NULL) {
            continue;
        }

        (*groups)[i].batch = &jobs[i].batch;
        (*groups)[i].status = jobs[i].status;
        (*groups)[i].pids = jobs[i].pids;
        *last = &(*groups)[i];
        last = &(*groups)[i].next;
    }

    b->journal = jjobs;
    b->njournal = ngx_http_omni_writer_journal(jobs, njobs, jjobs);

    return NGX_OK;
}


/*
 * Applies one task in one write transaction, all or nothing: the queued
 * touches of [from, to) (at most NGX_HTTP_OMNI_BATCH_MAX) and the jobs'
 * events.  Runs in a pool thread, or on the event loop at exit.
 */
static int
ngx_http_omni_writer_apply(omni_store_t *st, ngx_http_omni_wtask_t *t)
{
    int                     rc;
    ngx_uint_t              i, nj;
    omni_batch_t            b;
    ngx_http_omni_queue_t  *qu;
    omni_batch_events_t    *groups;

    qu = ngx_http_omni_queue();

    ngx_memzero(&b, sizeof(omni_batch_t));

    /* a retried batch parses its jobs again */
    ngx_http_omni_writer_free_jobs(t);

    t->n = 0;
    t->njobs = 0;
    t->nevents = 0;
    t->end = t->from;

    t->nfold = 0;
    t->fold_end = t->fold_from;

    if (qu && t->from < t->to) {
        t->n = ngx_http_omni_queue_read(qu, t->from, t->to, t->ops,
                                        NGX_HTTP_OMNI_BATCH_MAX, t->jobs,
                                        NGX_HTTP_OMNI_BATCH_JOBS, &t->njobs,
                                        (uint32_t)
                                            ngx_http_omni_w.visit_timeout,
                                        &t->end);
    }

    for (i = 0; i < t->njobs; i++) {
        (void) ngx_http_omni_writer_parse(&t->jobs[i]);
    }

    /*
     * The fold: the touches logged earlier and those of this batch, up
     * to NGX_HTTP_OMNI_FOLD_MAX; the counters of each profile are then
     * written once for all its touches.  A batch with an event that may
     * merge profiles (an identify, or an event naming more than one
     * identity) folds first: the merge sums counters that hold every
     * touch before it, as if each had been applied at once.  Other
     * events depend on no counter and never wait for a fold.
     */
    if (t->fold_ops && ngx_http_omni_writer_merges(t)) {
        t->fold = 1;
    }

    if (qu && t->fold && t->fold_from < t->end) {
        t->nfold = ngx_http_omni_queue_read(qu, t->fold_from, t->end,
                                            t->fold_ops,
                                            NGX_HTTP_OMNI_FOLD_MAX, NULL, 0,
                                            &nj, (uint32_t)
                                            ngx_http_omni_w.visit_timeout,
                                            &t->fold_end);
    }

    if (qu) {
        b.queue_id = qu->id;
        b.queue_pos = t->end;
        b.fold_pos = t->fold_end;
    }

    b.touches = t->ops;
    b.ntouches = t->n;
    b.pids = t->pids;
    b.fold = t->fold_ops;
    b.nfold = t->nfold;
    b.fold_pids = t->fold_pids;

    /* once a second, the next NGX_HTTP_OMNI_EXPIRE_SCAN profiles */
    if (ngx_http_omni_w.opts.anon_ttl && time(NULL) >= t->expire_next) {
        t->expire_next = time(NULL) + 1;
        b.expire_budget = NGX_HTTP_OMNI_EXPIRE_SCAN;
        ngx_memcpy(b.expire_from, t->expire_from, OMNI_ID_LEN);
    }

    if (ngx_http_omni_writer_events_batch(t->jobs, t->njobs, t->jjobs, &b,
                                          &groups)
        != NGX_OK)
    {
        ngx_cpystrn((u_char *) t->err, (u_char *) "out of memory",
                    sizeof(t->err));
        return OMNI_ERROR;
    }

    rc = omni_batch_apply(st, &ngx_http_omni_w.opts, &b);

    t->nevents = b.nevents;
    t->commit_s = b.commit_s;

    if (rc == OMNI_OK && b.expire_budget) {
        ngx_memcpy(t->expire_from, b.expire_from, OMNI_ID_LEN);
        t->expired += b.expired;
    }

    t->merges = b.merges;

    free(groups);

    if (rc != OMNI_OK) {
        ngx_cpystrn((u_char *) t->err, (u_char *) omni_store_error(st),
                    sizeof(t->err));
    }

    return rc;
}


/*
 * Whether the next batch folds: the fold interval has passed, half the
 * queue waits to be folded, the interval is 0 (every batch), or force
 * (exit: everything is folded, also where ngx_exiting is never set, with
 * master_process off).  The fold's memory comes with the first fold:
 * only the holder needs it.
 */
static ngx_uint_t
ngx_http_omni_writer_fold_due(ngx_http_omni_queue_t *qu, ngx_uint_t force)
{
    if (qu->head == qu->tail) {
        return 0;
    }

    if (ngx_http_omni_w.fold_ops == NULL) {
        ngx_http_omni_w.fold_ops = ngx_alloc(NGX_HTTP_OMNI_FOLD_MAX
                                             * sizeof(omni_touch_t),
                                             ngx_http_omni_w.log);
        ngx_http_omni_w.fold_pids = ngx_alloc(NGX_HTTP_OMNI_FOLD_MAX
                                              * OMNI_ID_LEN,
                                              ngx_http_omni_w.log);

        if (ngx_http_omni_w.fold_ops == NULL
            || ngx_http_omni_w.fold_pids == NULL)
        {
            ngx_free(ngx_http_omni_w.fold_ops);
            ngx_free(ngx_http_omni_w.fold_pids);
            ngx_http_omni_w.fold_ops = NULL;
            ngx_http_omni_w.fold_pids = NULL;
            return 0;
        }
    }

    return force || ngx_http_omni_w.fold_every == 0 || ngx_exiting
           || (ngx_msec_int_t) (ngx_current_msec
                                - ngx_http_omni_w.next_fold) >= 0
           || qu->appended - qu->head > qu->size / 2;
}


#if (NGX_THREADS)

/*
 * Posts the writer task: the pending jobs of this worker and, on the
 * lease holder, what the shared queue holds now.
 */
static void
ngx_http_omni_writer_post(void)
{
    ngx_msec_t              flush;
    ngx_http_omni_wtask_t  *t;
    ngx_http_omni_queue_t  *qu;

    t = ngx_http_omni_w.task->ctx;
    qu = ngx_http_omni_queue();

    if (qu == NULL || !ngx_http_omni_queue_holder()
        || qu->head == qu->tail)
    {
        return;
    }

    /* a cluster node folds what its consumer applies, not here */
    t->fold = ngx_http_omni_cluster_on() ? 0
                                         : ngx_http_omni_writer_fold_due(qu, 0);

    if (qu->appended == qu->tail && !t->fold) {
        return;                 /* logged; folded at the next fold */
    }

    /*
     * A cluster node publishes page views once per omni_cluster flush= on
     * average, in bursts of up to NGX_HTTP_OMNI_FLUSH_BURST (a generic
     * cell rate: "due" is when the next batch would be on time), and at
     * once when events wait or a full run is queued: each message costs
     * the three NATS servers about the same whatever its size, so under
     * load one message per interval, and a quiet site waits for nothing.
     */
    flush = ngx_http_omni_w.flush_every;

    if (flush
        && qu->ev_queued == qu->ev_consumed
        && ngx_http_omni_queue_pending(qu) < ngx_http_omni_w.batch_min
        && (ngx_msec_int_t) (ngx_http_omni_w.due - ngx_current_msec)
           > (ngx_msec_int_t) ((NGX_HTTP_OMNI_FLUSH_BURST - 1) * flush))
    {
        return;
    }

    if ((ngx_msec_int_t) (ngx_http_omni_w.due - ngx_current_msec) < 0) {
        ngx_http_omni_w.due = ngx_current_msec;
    }

    ngx_http_omni_w.due += flush;

    t->ops = ngx_http_omni_w.ops;
    t->pids = ngx_http_omni_w.pids;
    t->jobs = ngx_http_omni_w.qjobs;
    t->fold_ops = ngx_http_omni_w.fold_ops;
    t->fold_pids = ngx_http_omni_w.fold_pids;
    t->n = 0;
    t->njobs = 0;
    t->from = qu->appended;
    t->to = qu->tail;
    t->end = t->from;
    t->fold_from = qu->head;
    t->fold_end = t->fold_from;
    t->rc = OMNI_OK;
    t->err[0] = '\0';
    t->jjobs = ngx_http_omni_w.jjobs;
    /* a cluster node's store is written by its consumer, which begins
       the checkpoints (ngx_http_omni_cluster.c) */
    t->ckpt = ngx_http_omni_cluster_on() ? 0 : ngx_http_omni_ckpt_due();
    t->ckpt_only = 0;

    ngx_http_omni_w.retries = 0;
    ngx_http_omni_w.own = 0;

    if (ngx_thread_task_post(ngx_http_omni_w.pool, ngx_http_omni_w.task)
        != NGX_OK)
    {
        return;
    }

    ngx_http_omni_w.busy = 1;
}


/*
 * Whether the next batch begins a checkpoint: the store is journaled,
 * the interval has passed and the previous one has ended.
 */
static ngx_uint_t
ngx_http_omni_ckpt_due(void)
{
    omni_store_t  *st;

    st = ngx_http_omni_worker_store();

    return st && omni_store_journaled(st) && !ngx_http_omni_w.ckpt_busy
           && !ngx_exiting
           && (ngx_msec_int_t) (ngx_current_msec - ngx_http_omni_w.next_ckpt)
              >= 0;
}


/*
 * A writer with nothing to write still checkpoints its last commits
 * once the interval has passed: a task that only begins a checkpoint.
 */
static void
ngx_http_omni_writer_post_ckpt(void)
{
    ngx_http_omni_wtask_t  *t;

    if (!ngx_http_omni_w.ckpt_dirty || !ngx_http_omni_ckpt_due()
        || ngx_http_omni_cluster_on())
    {
        return;
    }

    t = ngx_http_omni_w.task->ctx;

    t->n = 0;
    t->njobs = 0;
    t->nfold = 0;
    t->fold = 0;
    t->from = t->to = t->end = 0;
    t->fold_from = t->fold_end = 0;
    t->rc = OMNI_OK;
    t->err[0] = '\0';
    t->nevents = 0;
    t->merges = 0;
    t->commit_s = 0;
    t->published = 0;
    t->ckpt = 1;
    t->ckpt_only = 1;

    if (ngx_thread_task_post(ngx_http_omni_w.pool, ngx_http_omni_w.task)
        != NGX_OK)
    {
        return;
    }

    ngx_http_omni_w.busy = 1;
}


/*
 * A cluster node's batch: what is queued goes to the stream, in queue
 * order; the node's consumer applies it when the stream gives it back,
 * as every other node does (ngx_http_omni_cluster.c).  The range is the
 * one a local batch would take.  On failure nothing moves: the batch is
 * published again (JetStream drops the duplicates by their ids), and
 * its event jobs are answered as failed now (503).
 */
static int
ngx_http_omni_writer_publish(ngx_http_omni_wtask_t *t)
{
    uint64_t                covered;
    ngx_int_t               rc;
    ngx_http_omni_queue_t  *qu;

    qu = ngx_http_omni_queue();

    t->n = 0;
    t->njobs = 0;
    t->nevents = 0;
    t->nfold = 0;
    t->fold = 0;
    t->end = t->from;
    t->fold_end = t->fold_from;
    t->published = 0;

    if (qu == NULL || t->from >= t->to) {
        return OMNI_OK;
    }

    t->n = ngx_http_omni_queue_read(qu, t->from, t->to, t->ops,
                                    NGX_HTTP_OMNI_BATCH_MAX, t->jobs,
                                    NGX_HTTP_OMNI_BATCH_JOBS, &t->njobs,
                                    (uint32_t) ngx_http_omni_w.visit_timeout,
                                    &t->end);

    rc = ngx_http_omni_cluster_publish(qu, t->from, t->end, &covered,
                                       t->err, sizeof(t->err));

    if (rc != NGX_OK) {
        t->end = t->from;
        return OMNI_ERROR;
    }

    /* a pad record at the range's end goes with the record after it */
    t->end = covered;

    t->published = 1;

    return OMNI_OK;
}


static void
ngx_http_omni_writer_thread(void *data, ngx_log_t *log)
{
    ngx_http_omni_wtask_t  *t = data;

    static __thread ngx_uint_t  placed;

    /*
     * Pool threads inherit the worker's worker_cpu_affinity.  The writer
     * may run on any CPU instead, so that it takes idle time wherever
     * there is some rather than the time of the event loop that shares
     * its core.
     */
    if (!placed) {
        cpu_set_t  set;
        long       i, n;

        placed = 1;
        n = sysconf(_SC_NPROCESSORS_ONLN);
        CPU_ZERO(&set);

        for (i = 0; i < n && i < CPU_SETSIZE; i++) {
            CPU_SET(i, &set);
        }

        (void) sched_setaffinity(0, sizeof(cpu_set_t), &set);
    }

    t->ckpt_begun = 0;

    if (ngx_http_omni_cluster_on() && !t->ckpt_only) {
        t->rc = ngx_http_omni_writer_publish(t);
        return;
    }

    if (!t->ckpt_only) {
        t->rc = ngx_http_omni_writer_apply(ngx_http_omni_worker_store(), t);
    }

    /* right after the commit, before the next: the checkpoint's begin */
    if (t->ckpt && t->rc == OMNI_OK) {
        ngx_http_omni_ctask_t  *c = ngx_http_omni_w.ckpt_task->ctx;

        if (omni_checkpoint_begin(ngx_http_omni_worker_store(), &c->cp)
            == OMNI_OK)
        {
            t->ckpt_begun = 1;
        }
    }
}


/*
 * The end of a checkpoint: the store's sync, journal.ckpt, the old
 * segments and the previous pin, concurrently with the next batches.
 */
static void
ngx_http_omni_ckpt_thread(void *data, ngx_log_t *log)
{
    ngx_http_omni_ctask_t  *c = data;

    c->rc = omni_checkpoint_end(ngx_http_omni_worker_store(), &c->cp);

    if (c->rc != OMNI_OK) {
        ngx_cpystrn((u_char *) c->err,
                    (u_char *) omni_store_error(ngx_http_omni_worker_store()),
                    sizeof(c->err));
    }
}


static void
ngx_http_omni_ckpt_done(ngx_event_t *ev)
{
    ngx_http_omni_ctask_t  *c = ev->data;

    ngx_http_omni_w.ckpt_busy = 0;

    if (c->rc != OMNI_OK) {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "omni: checkpoint failed, the previous one stays the "
                      "one to recover from: %s", c->err);
    }

    ngx_http_omni_w.next_ckpt = ngx_current_msec + ngx_http_omni_w.ckpt_every;
}


/*
 * An exiting worker's checkpoint stops spreading its writes: the thread
 * pool is destroyed (and waited for) before the exit handlers run.
 */
static int
ngx_http_omni_ckpt_hurry(void)
{
    return ngx_exiting || ngx_quit || ngx_terminate;
}


/*
 * The begun checkpoint's end goes to a pool thread, its writes spread
 * over half the interval (omni_checkpoint_t.spread_ms).
 */
static void
ngx_http_omni_ckpt_post(void)
{
    ngx_http_omni_ctask_t  *c = ngx_http_omni_w.ckpt_task->ctx;

    c->cp.spread_ms = ngx_http_omni_w.ckpt_every / 2;
    c->cp.hurry = ngx_http_omni_ckpt_hurry;

    if (ngx_thread_task_post(ngx_http_omni_w.pool, ngx_http_omni_w.ckpt_task)
        != NGX_OK)
    {
        /* what it pinned goes; the previous checkpoint stays */
        omni_checkpoint_abandon(ngx_http_omni_worker_store(), &c->cp);
        return;
    }

    ngx_http_omni_w.ckpt_busy = 1;
}


/*
 * A transaction of this process found the map full (rc OMNI_MAP_FULL) or
 * grown by another process (OMNI_MAP_RESIZED): adopt the size another
 * process set, or double it up to map_max.  On the event loop only, with
 * no transaction of this process open (the writer's and the cluster
 * consumer's tasks are done; the request path's read transaction is
 * reset between requests).  1: try the transaction again.
 */
ngx_uint_t
ngx_http_omni_writer_map_grow(int rc, ngx_log_t *log)
{
    size_t         before, after;
    omni_store_t  *st;

    st = ngx_http_omni_worker_store();
    before = omni_store_map_size(st);

    /* First adopt what another process may have grown it to. */
    (void) omni_store_set_map_size(st, 0);
    after = omni_store_map_size(st);

    if (rc == OMNI_MAP_FULL && after <= before
        && before < ngx_http_omni_w.map_max)
    {
        after = ngx_min(before * 2, ngx_http_omni_w.map_max);

        if (omni_store_set_map_size(st, after) != OMNI_OK) {
            after = before;
        }
    }

    if (after > before) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "omni: store map grown from %uz to %uz bytes",
                      before, after);
    }

    return rc == OMNI_MAP_RESIZED || after > before;
}


/* The batch is in (or failed): account, move the head, go on. */
static void
ngx_http_omni_writer_done(ngx_event_t *ev)
{
    omni_store_t           *st;
    ngx_http_omni_wtask_t  *t;
    ngx_http_omni_queue_t  *qu;

    t = ev->data;
    st = ngx_http_omni_worker_store();
    qu = ngx_http_omni_queue();

    ngx_http_omni_w.busy = 0;

    if (ngx_http_omni_w.resize_pending) {
        ngx_http_omni_w.resize_pending = 0;
        (void) omni_store_set_map_size(st, 0);
    }

    if ((t->rc == OMNI_MAP_RESIZED || t->rc == OMNI_MAP_FULL)
        && ngx_http_omni_writer_map_grow(t->rc, ev->log)
        && ngx_http_omni_w.retries++ < 3)
    {
        /* Retry the same batch. */
        if (ngx_thread_task_post(ngx_http_omni_w.pool, ngx_http_omni_w.task)
            == NGX_OK)
        {
            ngx_http_omni_w.busy = 1;
            return;
        }
    }

    if (t->rc == OMNI_OK && (t->n || t->njobs || t->nfold)) {
        ngx_http_omni_w.ckpt_dirty = 1;
    }

    ngx_http_omni_writer_account(t, ev->log);

    if (t->ckpt_begun) {
        t->ckpt_begun = 0;
        ngx_http_omni_w.ckpt_dirty = 0;
        ngx_http_omni_ckpt_post();

    } else if (t->ckpt) {
        /* not now (the meta pages moved): at the next batch */
        ngx_http_omni_w.next_ckpt = ngx_current_msec;
    }

    t->ckpt = 0;
    t->ckpt_only = 0;

    /*
     * Keep up: while events wait, or a batch's worth of touches is
     * queued, the next batch goes at once; otherwise the next look.
     * Touches left at exit are written by the exit handler.
     */
    if (qu && ngx_http_omni_queue_holder() && !ngx_exiting
        && (t->rc == OMNI_OK || !ngx_http_omni_cluster_on())
        && (qu->ev_queued != qu->ev_consumed
            || ngx_http_omni_queue_pending(qu)
               >= ngx_http_omni_w.batch_min
            || (t->fold && qu->head != qu->appended)))
    {
        ngx_http_omni_writer_post();
    }

    /*
     * An exiting holder lets the lease go as soon as nothing of its is in
     * flight, so that a worker of the new generation takes over at once
     * (and finds in meta "queue" where this one stopped).
     */
    if (ngx_exiting && !ngx_http_omni_w.busy && !ngx_http_omni_cluster_busy())
    {
        ngx_http_omni_lease_release();
    }
}


/*
 * The holder's look at the shared queue: whatever other workers queued
 * since the last batch goes now.  Re-armed for as long as this worker
 * holds the lease.
 */
static void
ngx_http_omni_writer_flush(ngx_event_t *ev)
{
    if (!ngx_http_omni_queue_holder()) {
        return;
    }

    if (ngx_exiting) {
        /*
         * writer_done lets the lease go when the batch in flight is in,
         * a cluster node's consumer when its fetch in flight is applied
         */
        if (!ngx_http_omni_w.busy && !ngx_http_omni_cluster_busy()) {
            ngx_http_omni_lease_release();
        }

        return;
    }

    if (!ngx_http_omni_w.busy) {
        ngx_http_omni_writer_post();
    }

    if (!ngx_http_omni_w.busy) {
        ngx_http_omni_writer_post_ckpt();
    }

    ngx_add_timer(ev, NGX_HTTP_OMNI_BATCH_DELAY);
}

#endif


/*
 * A batch's outcome, on the event loop: the counters, the queue's head,
 * and every job's results to the worker that waits for them.
 */
static void
ngx_http_omni_writer_account(ngx_http_omni_wtask_t *t, ngx_log_t *log)
{
    ngx_http_omni_queue_t  *qu;

    qu = ngx_http_omni_queue();

    /* a task that only began a checkpoint is no batch */
    if (!t->ckpt_only) {
        ngx_http_omni_metrics_batch(t->rc, t->n, t->commit_s, t->merges);
    }

    switch (t->rc) {

    case OMNI_OK:
        ngx_http_omni_w.committed += t->n;
        ngx_http_omni_w.events += t->nevents;
        break;

    case OMNI_MAP_RESIZED:
    case OMNI_MAP_FULL:
        /* One line a minute while full, not one per batch. */
        if (ngx_time() - ngx_http_omni_w.full_logged >= 60) {
            ngx_http_omni_w.full_logged = ngx_time();
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "omni: store is full at map_max (%uz bytes), "
                          "touchpoints are dropped: %s",
                          ngx_http_omni_w.map_max, t->err);
        }

        /* The touches are given up: the queue must move on. */
        ngx_http_omni_w.dropped += t->n;

        if (qu) {
            (void) ngx_atomic_fetch_add(&qu->dropped, t->n);
        }

        break;

    default:
        if (ngx_http_omni_cluster_on()) {
            /* the stream is unreachable: one line a minute, retried */
            if (ngx_time() - ngx_http_omni_w.full_logged >= 60) {
                ngx_http_omni_w.full_logged = ngx_time();
                ngx_log_error(NGX_LOG_ERR, log, 0,
                              "omni: cluster: %ui touches and %ui event "
                              "job(s) not published, retrying: %s",
                              t->n, t->njobs, t->err);
            }

            break;
        }

        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "omni: writer batch of %ui touches and %ui event "
                      "job(s) failed: %s", t->n, t->njobs, t->err);
        ngx_http_omni_w.failed += t->n;
        break;
    }

    if (qu && t->end > t->from) {
        ngx_http_omni_queue_logged(qu, t->end, t->n);
        (void) ngx_atomic_fetch_add(&qu->ev_consumed, t->njobs);

        /* the consumer may have applied the records before this */
        ngx_http_omni_cluster_fold(qu);
    }

    if (t->fold) {
        if (qu && t->fold_end > t->fold_from) {
            ngx_http_omni_queue_folded(qu, t->fold_end);
        }

        /* caught up: the next fold after the interval */
        if (qu == NULL || qu->head == qu->appended) {
            ngx_http_omni_w.next_fold = ngx_current_msec
                                        + ngx_http_omni_w.fold_every;
        }
    }

    /* published event jobs: the consumer applies them without pausing */
    if (t->published && t->njobs) {
        ngx_http_omni_cluster_events_published(t->end);
    }

    ngx_http_omni_writer_results(t);
    ngx_http_omni_writer_free_jobs(t);
    t->njobs = 0;
    t->n = 0;
}


/* Each job's results, to its worker (or to this one's waiting jobs). */
static void
ngx_http_omni_writer_results(ngx_http_omni_wtask_t *t)
{
    u_char                  *p;
    ngx_uint_t               i, k;
    ngx_http_omni_qjob_t    *j;
    ngx_http_omni_result_t  *h;

    static u_char  buf[sizeof(ngx_http_omni_result_t)
                       + 1024 * NGX_HTTP_OMNI_RESULT_ITEM];

    if (t->published) {
        return;                 /* the consumer answers them */
    }

    for (i = 0; i < t->njobs; i++) {
        j = &t->jobs[i];
        h = (ngx_http_omni_result_t *) buf;

        if (j->origin == 0) {
            continue;           /* another node's: nobody waits here */
        }

        h->type = NGX_HTTP_OMNI_MSG_RESULT;
        h->full = (t->rc == OMNI_MAP_FULL || t->rc == OMNI_MAP_RESIZED);
        h->rc = (t->rc == OMNI_OK && j->parsed && j->status) ? NGX_OK
                                                             : NGX_ERROR;
        h->id = j->id;
        h->n = 0;

        p = buf + sizeof(ngx_http_omni_result_t);

        ngx_http_omni_metrics_job(j->parsed ? &j->batch : NULL, j->status,
                                  h->rc == NGX_OK);

        if (h->rc == NGX_OK) {
            h->n = (uint16_t) ngx_min(j->batch.n, 1024);

            for (k = 0; k < h->n; k++) {
                *p++ = (u_char) j->status[k];
                p = ngx_cpymem(p, j->pids[k], OMNI_ID_LEN);
            }
        }

        if (j->origin == ngx_pid) {
            ngx_http_omni_writer_message(buf, p - buf);

        } else {
            /* a worker that is gone waits for nothing */
            (void) ngx_http_omni_mailbox_send(j->origin, buf, p - buf,
                                             NGX_HTTP_OMNI_JOB_TIMEOUT);
        }
    }
}


static void
ngx_http_omni_writer_answer(ngx_http_omni_wjob_t *job, ngx_int_t rc,
    ngx_uint_t full)
{
    ngx_queue_remove(&job->queue);
    ngx_http_omni_w.nwaiting--;

    job->rc = rc;
    job->full = full;

    if (job->handler) {
        job->handler(job);
    }
}


/* A datagram from the mailbox, or this worker's own results. */
void
ngx_http_omni_writer_message(const u_char *data, size_t len)
{
    ngx_uint_t               k, n;
    ngx_queue_t             *q;
    const u_char            *p;
    ngx_http_omni_wjob_t    *job;
    ngx_http_omni_result_t   h;

    if (len == 1 && data[0] == NGX_HTTP_OMNI_MSG_WAKE) {
#if (NGX_THREADS)
        if (!ngx_http_omni_w.busy && !ngx_exiting) {
            ngx_http_omni_writer_post();
        }
#endif
        return;
    }

    if (len < sizeof(ngx_http_omni_result_t)
        || data[0] != NGX_HTTP_OMNI_MSG_RESULT)
    {
        return;
    }

    ngx_memcpy(&h, data, sizeof(ngx_http_omni_result_t));

    if (len < sizeof(ngx_http_omni_result_t)
              + (size_t) h.n * NGX_HTTP_OMNI_RESULT_ITEM)
    {
        return;
    }

    for (q = ngx_queue_head(&ngx_http_omni_w.waiting);
         q != ngx_queue_sentinel(&ngx_http_omni_w.waiting);
         q = ngx_queue_next(q))
    {
        job = ngx_queue_data(q, ngx_http_omni_wjob_t, queue);

        if (job->id != h.id) {
            continue;
        }

        if (h.rc == NGX_OK) {
            n = ngx_min((ngx_uint_t) h.n, job->batch->n);
            p = data + sizeof(ngx_http_omni_result_t);

            for (k = 0; k < n; k++) {
                job->status[k] = p[0];
                ngx_memcpy(job->pids[k], p + 1, OMNI_ID_LEN);
                p += NGX_HTTP_OMNI_RESULT_ITEM;
            }

        }

        ngx_http_omni_writer_answer(job, h.rc == NGX_OK ? NGX_OK : NGX_ERROR,
                                    h.full);
        break;
    }

    if (ngx_http_omni_w.nwaiting == 0 && ngx_http_omni_w.hold.timer_set) {
        /* Nobody waits any more: an exiting worker may leave now. */
        ngx_del_timer(&ngx_http_omni_w.hold);
    }
}


/*
 * Re-armed for as long as this worker's jobs wait: it keeps an exiting
 * worker until each has its answer, and fails those whose answer is
 * overdue (their writer died between commit and answer).
 */
static void
ngx_http_omni_writer_hold(ngx_event_t *ev)
{
    ngx_queue_t           *q, *next;
    ngx_http_omni_wjob_t  *job;

    for (q = ngx_queue_head(&ngx_http_omni_w.waiting);
         q != ngx_queue_sentinel(&ngx_http_omni_w.waiting);
         q = next)
    {
        next = ngx_queue_next(q);
        job = ngx_queue_data(q, ngx_http_omni_wjob_t, queue);

        if ((ngx_msec_int_t) (ngx_current_msec - job->deadline) >= 0) {
            ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                          "omni: no answer from the writer for %ui "
                          "event(s) within %d ms", job->nevents,
                          NGX_HTTP_OMNI_JOB_TIMEOUT);
            ngx_http_omni_writer_answer(job, NGX_ERROR, 0);
        }
    }

    if (ngx_http_omni_w.nwaiting) {
        ngx_add_timer(ev, 1000);
    }
}


/*
 * Graceful stop or reload: the thread pool has already finished the task
 * in flight, so only the queue is left.  Blocking is acceptable here: the
 * worker serves nothing more.  The lease holder, or any worker that finds
 * the lease free, writes what is queued, then lets the lease go: a worker
 * of the next generation takes it over, or the last worker to leave
 * writes what the others queued after.
 */
void
ngx_http_omni_writer_exit(ngx_cycle_t *cycle)
{
    int                     rc;
    uint64_t                to;
    ngx_queue_t            *q;
    omni_store_t           *st;
    ngx_http_omni_wtask_t   t;
    ngx_http_omni_queue_t  *qu;

    st = ngx_http_omni_worker_store();
    qu = ngx_http_omni_queue();

    if (ngx_http_omni_w.ops == NULL) {
        return;
    }

#if (NGX_THREADS)
    /*
     * The thread pool has been destroyed before this exit handler runs,
     * which waited for the task in flight: its result is final, but its
     * completion event will never be delivered.  Account for it here.
     */
    if (ngx_http_omni_w.busy) {
        ngx_http_omni_wtask_t  *wt = ngx_http_omni_w.task->ctx;

        ngx_http_omni_writer_account(wt, cycle->log);
        ngx_http_omni_w.busy = 0;

        /* a checkpoint it began: the one at close replaces it */
        if (wt->ckpt_begun && st) {
            ngx_http_omni_ctask_t  *c = ngx_http_omni_w.ckpt_task->ctx;

            omni_checkpoint_abandon(st, &c->cp);
            wt->ckpt_begun = 0;
        }
    }
#endif

    ngx_memzero(&t, sizeof(ngx_http_omni_wtask_t));
    t.ops = ngx_http_omni_w.ops;
    t.pids = ngx_http_omni_w.pids;
    t.jobs = ngx_http_omni_w.qjobs;
    t.jjobs = ngx_http_omni_w.jjobs;

    to = 0;

    /* Everything queued is logged and folded at exit. */
    if (st && qu && ngx_http_omni_lease_take(cycle->log)
        && ngx_http_omni_writer_fold_due(qu, 1))
    {
        /* What is queued now; the next holder takes what comes after. */
        t.from = qu->appended;
        t.fold_from = qu->head;
        to = qu->tail;
        t.fold = 1;
        t.fold_ops = ngx_http_omni_w.fold_ops;
        t.fold_pids = ngx_http_omni_w.fold_pids;
    }

    /* a cluster node publishes what is queued: the stream applies it */
    if (ngx_http_omni_cluster_on()) {
        t.fold = 0;
        t.fold_from = t.from;
    }

    while (st && (t.fold_from < to || (t.from < to && t.fold == 0))) {
        t.to = to;

        if (ngx_http_omni_cluster_on()) {
            t.rc = ngx_http_omni_writer_publish(&t);
            rc = t.rc;

            if (rc != OMNI_OK) {
                ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                              "omni: cluster: %ui queued touchpoint(s) and "
                              "%ui event job(s) not published on exit: %s",
                              t.n, t.njobs, t.err);
            }

            ngx_http_omni_writer_account(&t, cycle->log);

            if (rc != OMNI_OK || t.end == t.from) {
                break;
            }

            t.from = t.end;
            t.fold_from = t.end;
            continue;
        }

        t.rc = ngx_http_omni_writer_apply(st, &t);

        if (t.rc == OMNI_MAP_RESIZED || t.rc == OMNI_MAP_FULL) {
            (void) omni_store_set_map_size(st, 0);
            t.rc = ngx_http_omni_writer_apply(st, &t);
        }

        if (t.rc != OMNI_OK) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                          "omni: writing %ui queued touchpoint(s) and %ui "
                          "event job(s) on exit failed: %s", t.n, t.njobs,
                          t.err);
        }

        rc = t.rc;
        ngx_http_omni_writer_account(&t, cycle->log);

        if (rc != OMNI_OK || (t.end == t.from && t.fold_end == t.fold_from))
        {
            break;
        }

        t.from = t.end;
        t.fold_from = t.fold_end;
    }

    ngx_http_omni_cluster_exit(cycle);
    ngx_http_omni_lease_release();

    /* Whatever still waits gets no answer now: fail it. */
    while (!ngx_queue_empty(&ngx_http_omni_w.waiting)) {
        q = ngx_queue_head(&ngx_http_omni_w.waiting);
        ngx_http_omni_writer_answer(ngx_queue_data(q, ngx_http_omni_wjob_t,
                                                   queue),
                                    NGX_ERROR, 0);
    }

    if (ngx_http_omni_w.committed || ngx_http_omni_w.dropped
        || ngx_http_omni_w.failed || ngx_http_omni_w.events)
    {
        ngx_log_error(NGX_LOG_INFO, cycle->log, 0,
                      "omni: writer exit: %ui committed, %ui dropped, "
                      "%ui failed, %ui event(s)", ngx_http_omni_w.committed,
                      ngx_http_omni_w.dropped, ngx_http_omni_w.failed,
                      ngx_http_omni_w.events);
    }

    ngx_http_omni_mailbox_exit();
    ngx_http_omni_queue_exit_worker();

    ngx_free(ngx_http_omni_w.ops);
    ngx_free(ngx_http_omni_w.pids);
    ngx_free(ngx_http_omni_w.qjobs);
    ngx_free(ngx_http_omni_w.jjobs);
    ngx_free(ngx_http_omni_w.fold_ops);
    ngx_free(ngx_http_omni_w.fold_pids);
    ngx_http_omni_w.fold_ops = NULL;
    ngx_http_omni_w.fold_pids = NULL;
    ngx_http_omni_w.ops = NULL;
    ngx_http_omni_w.pids = NULL;
    ngx_http_omni_w.qjobs = NULL;
    ngx_http_omni_w.jjobs = NULL;
}
