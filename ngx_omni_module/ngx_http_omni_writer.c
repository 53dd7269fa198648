/*
 * The writer: the only place the module writes to LMDB.
 *
 * Requests append touch operations to a per-worker queue and never wait.
 * One thread-pool task at a time drains the queue in a single write
 * transaction (group commit): while it runs, new operations accumulate,
 * and its completion handler posts the next batch.  LMDB's writer lock and
 * fsync are therefore only ever waited on in a pool thread.  When the
 * queue is full an operation is dropped and counted, never blocked on.
 *
 * Each touch also appends its touchpoint (omni_feed.h: the JSON is built
 * here, in the pool thread) in the same transaction as the profile
 * update, and each batch prunes the oldest touchpoints past the retention
 * limits (tp_max, tp_max_age), a bounded number per batch.
 *
 * Events (omni_events, upstream signals) arrive as jobs: they join the
 * next batch, after its touches, and their handlers run on the event
 * loop once the batch is committed and synced: the store is opened with
 * MDB_NOMETASYNC (a traffic batch costs one fsync, and an OS crash may
 * undo the last one but never breaks the database), and a batch with
 * events is synced in full (omni_store_sync()) before its handlers run,
 * so they may acknowledge their events as durable.  Jobs are never
 * dropped silently: a full queue refuses them up front (503), a batch
 * that fails for good fails its jobs.
 *
 * Map changes are handled on the event loop, where no transaction of this
 * process is open between tasks: MAP_RESIZED adopts the size another
 * process set; MAP_FULL adopts or doubles the map up to map_max.
 */

#include "ngx_http_omni_module.h"
#include "omni_feed.h"


typedef struct {
    omni_touch_t          *ops;
    ngx_uint_t             n;
    ngx_http_omni_wjob_t  *jobs;
    ngx_uint_t             nevents;
    int                    rc;
    char                   err[512];
} ngx_http_omni_wtask_t;


typedef struct {
#if (NGX_THREADS)
    ngx_thread_pool_t  *pool;
    ngx_thread_task_t  *task;
#endif
    omni_touch_t       *pending;
    ngx_uint_t          npending;
    u_char             *arena;          /* campaign lists of pending ops */
    size_t              arena_used;
    u_char             *arena_inflight;
    size_t              arena_size;
    omni_touch_t       *inflight;
    u_char            (*pids)[OMNI_ID_LEN];   /* of the batch's touches */
    ngx_http_omni_wjob_t  *jobs;        /* pending event jobs */
    ngx_http_omni_wjob_t **jobs_last;
    ngx_uint_t          nevents;        /* events in pending jobs */
    ngx_uint_t          capacity;
    ngx_uint_t          retries;

    size_t              map_max;
    time_t              visit_timeout;
    ngx_uint_t          tp_max;         /* retention: 0 unlimited */
    time_t              tp_max_age;
    ngx_log_t          *log;

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

    /*
     * Touches wait for a batch: they are written when
     * NGX_HTTP_OMNI_BATCH_MIN have queued up or NGX_HTTP_OMNI_BATCH_DELAY
     * after the first one, whichever comes first, so that one commit
     * carries many of them even at moderate rates.  Events never wait.
     */
    ngx_event_t         flush;

    unsigned            busy:1;
    unsigned            resize_pending:1;
} ngx_http_omni_writer_t;


static ngx_http_omni_writer_t  ngx_http_omni_w;


#define NGX_HTTP_OMNI_BATCH_MIN    256
#define NGX_HTTP_OMNI_BATCH_DELAY  10          /* ms */


#if (NGX_THREADS)
static void ngx_http_omni_writer_thread(void *data, ngx_log_t *log);
static void ngx_http_omni_writer_done(ngx_event_t *ev);
static void ngx_http_omni_writer_post(void);
#endif
static int ngx_http_omni_writer_apply(omni_store_t *st, omni_touch_t *ops,
    ngx_uint_t n, ngx_http_omni_wjob_t *jobs, char *err, size_t errlen);
static void ngx_http_omni_writer_jobs_done(ngx_http_omni_wjob_t *jobs,
    ngx_int_t rc, ngx_uint_t full);
static void ngx_http_omni_writer_hold(ngx_event_t *ev);
#if (NGX_THREADS)
static void ngx_http_omni_writer_flush(ngx_event_t *ev);
static void ngx_http_omni_writer_schedule(void);
#endif


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
#endif

    ngx_http_omni_w.jobs_last = &ngx_http_omni_w.jobs;
    ngx_http_omni_w.hold.handler = ngx_http_omni_writer_hold;
    ngx_http_omni_w.hold.log = cycle->log;
    ngx_http_omni_w.hold.data = &ngx_http_omni_w;
#if (NGX_THREADS)
    ngx_http_omni_w.flush.handler = ngx_http_omni_writer_flush;
    ngx_http_omni_w.flush.log = cycle->log;
    ngx_http_omni_w.flush.data = &ngx_http_omni_w;
    /* pending touches never hold an exiting worker: exit flushes them */
    ngx_http_omni_w.flush.cancelable = 1;
#endif
    ngx_http_omni_w.capacity = mcf->queue_size;
    ngx_http_omni_w.map_max = mcf->map_max;
    ngx_http_omni_w.visit_timeout = mcf->visit_timeout;
    ngx_http_omni_w.tp_max = mcf->tp_max;
    ngx_http_omni_w.tp_max_age = mcf->tp_max_age;
    ngx_http_omni_w.log = cycle->log;

    ngx_http_omni_w.pending = ngx_alloc(mcf->queue_size
                                        * sizeof(omni_touch_t), cycle->log);
    ngx_http_omni_w.inflight = ngx_alloc(mcf->queue_size
                                         * sizeof(omni_touch_t), cycle->log);
    ngx_http_omni_w.pids = ngx_alloc(mcf->queue_size * OMNI_ID_LEN,
                                     cycle->log);

    /*
     * The strings of queued touches (campaigns, rules, path, referrer,
     * utm_*), 256 bytes per queued touch on average; a string that does
     * not fit is left out of its touchpoint.
     */
    ngx_http_omni_w.arena_size = mcf->queue_size * 256;
    ngx_http_omni_w.arena = ngx_alloc(ngx_http_omni_w.arena_size, cycle->log);
    ngx_http_omni_w.arena_inflight = ngx_alloc(ngx_http_omni_w.arena_size,
                                               cycle->log);

    if (ngx_http_omni_w.pending == NULL || ngx_http_omni_w.inflight == NULL
        || ngx_http_omni_w.pids == NULL
        || ngx_http_omni_w.arena == NULL
        || ngx_http_omni_w.arena_inflight == NULL)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
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


/*
 * Copies a string of a queued touch into the queue's arena, cut to max
 * bytes (0: no cut).  NULL when empty or when the arena is full.
 */
static const char *
ngx_http_omni_writer_copy(const u_char *s, size_t len, size_t max,
    size_t *out_len)
{
    u_char  *p;

    *out_len = 0;

    if (max && len > max) {
        len = max;
    }

    if (len == 0
        || ngx_http_omni_w.arena_used + len > ngx_http_omni_w.arena_size)
    {
        return NULL;
    }

    p = ngx_http_omni_w.arena + ngx_http_omni_w.arena_used;
    ngx_memcpy(p, s, len);
    ngx_http_omni_w.arena_used += len;
    *out_len = len;

    return (const char *) p;
}


/* A query argument, %XX-decoded into the arena. */
static const char *
ngx_http_omni_writer_arg(ngx_http_request_t *r, const char *name,
    size_t max, size_t *out_len)
{
    u_char     *dst, *src;
    ngx_str_t   arg;

    *out_len = 0;

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), &arg) != NGX_OK
        || arg.len == 0)
    {
        return NULL;
    }

    if (arg.len > max * 3) {
        arg.len = max * 3;
    }

    if (ngx_http_omni_w.arena_used + arg.len > ngx_http_omni_w.arena_size) {
        return NULL;
    }

    /* Decoding never grows a string: decode in place in the arena. */
    dst = ngx_http_omni_w.arena + ngx_http_omni_w.arena_used;
    src = arg.data;
    ngx_unescape_uri(&dst, &src, arg.len, NGX_UNESCAPE_URI);

    *out_len = ngx_min((size_t) (dst - (ngx_http_omni_w.arena
                                        + ngx_http_omni_w.arena_used)),
                       max);
    src = ngx_http_omni_w.arena + ngx_http_omni_w.arena_used;
    ngx_http_omni_w.arena_used += *out_len;

    return *out_len ? (const char *) src : NULL;
}


/* The request's part of its touchpoint: path, referrer, utm_* args. */
static void
ngx_http_omni_writer_strings(ngx_http_request_t *r, omni_touch_t *op)
{
    u_char               *q;
    size_t                len;
    ngx_http_request_t   *m;

    m = r->main;

    op->record = 1;
    op->country[0] = '\0';

    /* The path the client asked for, before any internal redirect. */
    len = m->unparsed_uri.len;
    q = ngx_strlchr(m->unparsed_uri.data, m->unparsed_uri.data + len, '?');
    if (q) {
        len = q - m->unparsed_uri.data;
    }

    op->path = ngx_http_omni_writer_copy(m->unparsed_uri.data, len,
                                         OMNI_FEED_MAX_PATH, &op->path_len);

    op->referrer = NULL;
    op->referrer_len = 0;

    if (m->headers_in.referer) {
        op->referrer = ngx_http_omni_writer_copy(
                           m->headers_in.referer->value.data,
                           m->headers_in.referer->value.len,
                           OMNI_FEED_MAX_REF, &op->referrer_len);
    }

    op->utm[0] = ngx_http_omni_writer_arg(m, "utm_source", OMNI_FEED_MAX_UTM,
                                          &op->utm_len[0]);
    op->utm[1] = ngx_http_omni_writer_arg(m, "utm_medium", OMNI_FEED_MAX_UTM,
                                          &op->utm_len[1]);
    op->utm[2] = ngx_http_omni_writer_arg(m, "utm_campaign",
                                          OMNI_FEED_MAX_UTM, &op->utm_len[2]);
}


ngx_int_t
ngx_http_omni_writer_touch(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx)
{
    omni_touch_t              *op;
    if (ngx_http_omni_w.pending == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_omni_w.npending == ngx_http_omni_w.capacity) {
        /* Overload: drop and count, never block the request. */
        if (ngx_http_omni_w.dropped++ % 10000 == 0) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "omni: writer queue full (%ui), %ui touchpoint(s) "
                          "dropped so far", ngx_http_omni_w.capacity,
                          ngx_http_omni_w.dropped);
        }

        return NGX_DECLINED;
    }

    op = &ngx_http_omni_w.pending[ngx_http_omni_w.npending++];

    op->kind = ctx->identity == NGX_HTTP_OMNI_ID_TOKEN ? OMNI_ALIAS_DEVICE
                                                       : OMNI_ALIAS_COOKIE;
    ngx_memcpy(op->id, ctx->vid, OMNI_ID_LEN);
    op->time = (uint32_t) ngx_time();
    op->visit_timeout = (uint32_t) ngx_http_omni_w.visit_timeout;

    op->channel = (unsigned) ngx_http_omni_channel(r, ctx);

    /* What this response showed counts against frequency caps. */
    op->campaigns = NULL;
    op->campaigns_len = 0;
    op->rules = NULL;
    op->rules_len = 0;

    if (ctx->impressions && ctx->decision) {
        op->campaigns = ngx_http_omni_writer_copy(
                            ctx->decision->campaigns.data,
                            ctx->decision->campaigns.len, 0,
                            &op->campaigns_len);
        op->rules = ngx_http_omni_writer_copy(ctx->decision->rules.data,
                                              ctx->decision->rules.len, 0,
                                              &op->rules_len);
    }

    ngx_http_omni_writer_strings(r, op);
    ngx_memcpy(op->country, ctx->country, sizeof(op->country));

#if (NGX_THREADS)
    ngx_http_omni_writer_schedule();
#endif

    return NGX_OK;
}


/*
 * Queues a job of nevents events.  NGX_DECLINED: no store; NGX_BUSY: the
 * events queue (as large as the touch queue) is full, retry later.
 */
ngx_int_t
ngx_http_omni_writer_events(ngx_http_omni_wjob_t *job, ngx_uint_t nevents)
{
    if (ngx_http_omni_w.pending == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_omni_w.nevents + nevents > ngx_http_omni_w.capacity) {
        return NGX_BUSY;
    }

    job->next = NULL;
    job->nevents = nevents;
    job->rc = NGX_OK;
    job->full = 0;

    *ngx_http_omni_w.jobs_last = job;
    ngx_http_omni_w.jobs_last = &job->next;
    ngx_http_omni_w.nevents += nevents;

    if (!ngx_http_omni_w.hold.timer_set) {
        ngx_add_timer(&ngx_http_omni_w.hold, 1000);
    }

#if (NGX_THREADS)
    if (!ngx_http_omni_w.busy) {
        ngx_http_omni_writer_post();
    }
#endif

    return NGX_OK;
}


/* Applies a batch in one write transaction: all or nothing. */
static int
ngx_http_omni_writer_apply(omni_store_t *st, omni_touch_t *ops,
    ngx_uint_t n, ngx_http_omni_wjob_t *jobs, char *err, size_t errlen)
{
    int                    rc;
    char                  *json;
    size_t                 len;
    uint32_t               now, min_time;
    unsigned               pruned;
    ngx_uint_t             i;
    omni_wtxn_t           *w;
    omni_event_batch_t    *b;
    ngx_http_omni_wjob_t  *job;

    rc = omni_store_write_begin(st, &w);
    if (rc != OMNI_OK) {
        ngx_cpystrn((u_char *) err, (u_char *) omni_store_error(st), errlen);
        return rc;
    }

    /*
     * The touches first, grouped so that each profile of the batch is
     * read and written once; then their touchpoints, in arrival order.
     */
    rc = n ? omni_apply_touches(w, ops, n, ngx_http_omni_w.pids) : OMNI_OK;

    if (rc != OMNI_OK) {
        ngx_cpystrn((u_char *) err, (u_char *) omni_store_error(st), errlen);
        omni_wtxn_abort(w);
        return rc;
    }

    for (i = 0; i < n; i++) {
        if (!ops[i].record) {
            continue;
        }

        /* The touchpoint commits with its touch, or neither does. */
        json = omni_feed_record(&ops[i], ngx_http_omni_w.pids[i], &len);

        if (json == NULL) {
            ngx_cpystrn((u_char *) err, (u_char *) "out of memory", errlen);
            omni_wtxn_abort(w);
            return OMNI_ERROR;
        }

        rc = omni_wtxn_append_touchpoint(w, ngx_http_omni_w.pids[i],
                                         ops[i].time, json, len, NULL);
        free(json);

        if (rc != OMNI_OK) {
            ngx_cpystrn((u_char *) err, (u_char *) omni_store_error(st),
                        errlen);
            omni_wtxn_abort(w);
            return rc;
        }
    }

    /* Events after the touches: a merge they cause sees every touch. */
    for (job = jobs; job; job = job->next) {
        b = job->batch;

        for (i = 0; i < b->n; i++) {
            if (b->rc[i] != OMNI_OK) {
                continue;
            }

            rc = omni_event_apply(w, &b->events[i], &job->status[i],
                                  job->pids[i]);
            if (rc != OMNI_OK) {
                ngx_cpystrn((u_char *) err,
                            (u_char *) omni_store_error(st), errlen);
                omni_wtxn_abort(w);
                return rc;
            }
        }
    }

    if (jobs) {
        rc = omni_event_prune(w, (uint32_t) time(NULL), 256);
        if (rc != OMNI_OK) {
            ngx_cpystrn((u_char *) err, (u_char *) omni_store_error(st),
                        errlen);
            omni_wtxn_abort(w);
            return rc;
        }
    }

    /*
     * Retention: a bounded number of the oldest touchpoints per batch
     * (twice what it appended, and some), so the log converges to its
     * limits without ever holding the write lock for long.
     */
    now = (uint32_t) time(NULL);
    min_time = 0;

    if (ngx_http_omni_w.tp_max_age
        && now > (uint32_t) ngx_http_omni_w.tp_max_age)
    {
        min_time = now - (uint32_t) ngx_http_omni_w.tp_max_age;
    }

    rc = omni_wtxn_prune_touchpoints(w, ngx_http_omni_w.tp_max, min_time,
                                     (unsigned) (2 * n + 64), &pruned);
    if (rc != OMNI_OK) {
        ngx_cpystrn((u_char *) err, (u_char *) omni_store_error(st), errlen);
        omni_wtxn_abort(w);
        return rc;
    }

    rc = omni_wtxn_commit(w);

    /*
     * The store commits without syncing its meta page (nometasync): a
     * batch whose events will be acknowledged is made durable here.
     */
    if (rc == OMNI_OK && jobs) {
        rc = omni_store_sync(st);
    }

    if (rc != OMNI_OK) {
        ngx_cpystrn((u_char *) err, (u_char *) omni_store_error(st), errlen);
    }

    return rc;
}


#if (NGX_THREADS)

static void
ngx_http_omni_writer_post(void)
{
    u_char                 *atmp;
    omni_touch_t           *tmp;
    ngx_http_omni_wtask_t  *t;

    t = ngx_http_omni_w.task->ctx;

    if (ngx_http_omni_w.flush.timer_set) {
        ngx_del_timer(&ngx_http_omni_w.flush);
    }

    /* The queue becomes the batch; the old batch buffer the queue. */
    tmp = ngx_http_omni_w.inflight;
    ngx_http_omni_w.inflight = ngx_http_omni_w.pending;
    ngx_http_omni_w.pending = tmp;

    atmp = ngx_http_omni_w.arena_inflight;
    ngx_http_omni_w.arena_inflight = ngx_http_omni_w.arena;
    ngx_http_omni_w.arena = atmp;
    ngx_http_omni_w.arena_used = 0;

    t->ops = ngx_http_omni_w.inflight;
    t->n = ngx_http_omni_w.npending;
    t->jobs = ngx_http_omni_w.jobs;
    t->nevents = ngx_http_omni_w.nevents;
    t->rc = OMNI_OK;
    t->err[0] = '\0';

    ngx_http_omni_w.npending = 0;
    ngx_http_omni_w.jobs = NULL;
    ngx_http_omni_w.jobs_last = &ngx_http_omni_w.jobs;
    ngx_http_omni_w.nevents = 0;
    ngx_http_omni_w.retries = 0;

    if (ngx_thread_task_post(ngx_http_omni_w.pool, ngx_http_omni_w.task)
        != NGX_OK)
    {
        ngx_http_omni_w.failed += t->n;
        ngx_http_omni_writer_jobs_done(t->jobs, NGX_ERROR, 0);
        t->jobs = NULL;
        return;
    }

    ngx_http_omni_w.busy = 1;
}


static void
ngx_http_omni_writer_thread(void *data, ngx_log_t *log)
{
    ngx_http_omni_wtask_t  *t = data;

    t->rc = ngx_http_omni_writer_apply(ngx_http_omni_worker_store(), t->ops,
                                       t->n, t->jobs, t->err,
                                       sizeof(t->err));
}


static void
ngx_http_omni_writer_done(ngx_event_t *ev)
{
    size_t                  before, after;
    omni_store_t           *st;
    ngx_http_omni_wtask_t  *t;

    t = ev->data;
    st = ngx_http_omni_worker_store();

    ngx_http_omni_w.busy = 0;

    if (ngx_http_omni_w.resize_pending) {
        ngx_http_omni_w.resize_pending = 0;
        (void) omni_store_set_map_size(st, 0);
    }

    switch (t->rc) {

    case OMNI_OK:
        ngx_http_omni_w.committed += t->n;
        ngx_http_omni_writer_jobs_done(t->jobs, NGX_OK, 0);
        break;

    case OMNI_MAP_RESIZED:
    case OMNI_MAP_FULL:
        before = omni_store_map_size(st);

        /* First adopt what another process may have grown it to. */
        (void) omni_store_set_map_size(st, 0);
        after = omni_store_map_size(st);

        if (t->rc == OMNI_MAP_FULL && after <= before
            && before < ngx_http_omni_w.map_max)
        {
            after = ngx_min(before * 2, ngx_http_omni_w.map_max);

            if (omni_store_set_map_size(st, after) != OMNI_OK) {
                after = before;
            }
        }

        if ((t->rc == OMNI_MAP_RESIZED || after > before)
            && ngx_http_omni_w.retries++ < 3)
        {
            if (after > before) {
                ngx_log_error(NGX_LOG_NOTICE, ev->log, 0,
                              "omni: store map grown from %uz to %uz bytes",
                              before, after);
            }

            /* Retry the same batch. */
            if (ngx_thread_task_post(ngx_http_omni_w.pool,
                                     ngx_http_omni_w.task)
                == NGX_OK)
            {
                ngx_http_omni_w.busy = 1;
                return;
            }
        }

        /* One line a minute while full, not one per batch. */
        if (ngx_time() - ngx_http_omni_w.full_logged >= 60) {
            ngx_http_omni_w.full_logged = ngx_time();
            ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                          "omni: store is full at map_max (%uz bytes), "
                          "touchpoints are dropped: %s",
                          ngx_http_omni_w.map_max, t->err);
        }

        ngx_http_omni_w.dropped += t->n;
        ngx_http_omni_writer_jobs_done(t->jobs, NGX_ERROR, 1);
        break;

    default:
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "omni: writer batch of %ui touches and %ui events "
                      "failed: %s", t->n, t->nevents, t->err);
        ngx_http_omni_w.failed += t->n;
        ngx_http_omni_writer_jobs_done(t->jobs, NGX_ERROR, 0);
        break;
    }

    t->jobs = NULL;

    /* Waiting requests are served even while exiting gracefully. */
    if (ngx_http_omni_w.jobs) {
        ngx_http_omni_writer_post();

    } else if (!ngx_exiting) {
        ngx_http_omni_writer_schedule();
    }

    if (ngx_http_omni_w.hold.timer_set
        && !(ngx_http_omni_w.busy && t->jobs != NULL))
    {
        /* Nobody waits any more: an exiting worker may leave now. */
        ngx_del_timer(&ngx_http_omni_w.hold);
    }
}

#endif


#if (NGX_THREADS)

/*
 * After a touch is queued or a batch is done: write now when a batch is
 * full, or when the batching delay has passed (the flush timer).
 */
static void
ngx_http_omni_writer_schedule(void)
{
    if (ngx_http_omni_w.busy || ngx_http_omni_w.npending == 0) {
        return;
    }

    if (ngx_http_omni_w.npending >= NGX_HTTP_OMNI_BATCH_MIN) {
        if (ngx_http_omni_w.flush.timer_set) {
            ngx_del_timer(&ngx_http_omni_w.flush);
        }

        ngx_http_omni_writer_post();
        return;
    }

    if (!ngx_http_omni_w.flush.timer_set) {
        ngx_add_timer(&ngx_http_omni_w.flush, NGX_HTTP_OMNI_BATCH_DELAY);
    }
}


static void
ngx_http_omni_writer_flush(ngx_event_t *ev)
{
    if (!ngx_http_omni_w.busy && ngx_http_omni_w.npending) {
        ngx_http_omni_writer_post();
    }
}

#endif


/* Re-armed for as long as events are queued or being written. */
static void
ngx_http_omni_writer_hold(ngx_event_t *ev)
{
#if (NGX_THREADS)
    ngx_http_omni_wtask_t  *t;

    t = ngx_http_omni_w.task ? ngx_http_omni_w.task->ctx : NULL;

    if (ngx_http_omni_w.jobs
        || (ngx_http_omni_w.busy && t != NULL && t->jobs != NULL))
    {
        ngx_add_timer(ev, 1000);
    }
#endif
}


/* Hands each job its outcome; handlers may free the job. */
static void
ngx_http_omni_writer_jobs_done(ngx_http_omni_wjob_t *jobs, ngx_int_t rc,
    ngx_uint_t full)
{
    ngx_http_omni_wjob_t  *job, *next;

    for (job = jobs; job; job = next) {
        next = job->next;
        job->rc = rc;
        job->full = full;

        if (rc == NGX_OK) {
            ngx_http_omni_w.events += job->nevents;
        }

        if (job->handler) {
            job->handler(job);
        }
    }
}


/*
 * Graceful stop or reload: the thread pool has already finished the task
 * in flight, so only the queue is left.  Blocking is acceptable here: the
 * worker serves nothing more.
 */
void
ngx_http_omni_writer_exit(ngx_cycle_t *cycle)
{
    int            rc;
    char           err[512];
    omni_store_t  *st;

    st = ngx_http_omni_worker_store();

#if (NGX_THREADS)
    /*
     * The thread pool has been destroyed before this exit handler runs,
     * which waited for the task in flight: its result is final, but its
     * completion event will never be delivered.  Account for it here.
     */
    if (ngx_http_omni_w.busy) {
        ngx_http_omni_wtask_t  *t = ngx_http_omni_w.task->ctx;

        if (t->rc == OMNI_OK) {
            ngx_http_omni_w.committed += t->n;

        } else {
            ngx_http_omni_w.failed += t->n;
        }

        ngx_http_omni_writer_jobs_done(t->jobs,
                                       t->rc == OMNI_OK ? NGX_OK : NGX_ERROR,
                                       0);
        t->jobs = NULL;
        ngx_http_omni_w.busy = 0;
    }
#endif

    if (st && (ngx_http_omni_w.npending || ngx_http_omni_w.jobs)) {
        rc = ngx_http_omni_writer_apply(st, ngx_http_omni_w.pending,
                                        ngx_http_omni_w.npending,
                                        ngx_http_omni_w.jobs,
                                        err, sizeof(err));

        if (rc != OMNI_OK) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                          "omni: flushing %ui queued touchpoint(s) and %ui "
                          "event(s) on exit failed: %s",
                          ngx_http_omni_w.npending, ngx_http_omni_w.nevents,
                          err);
            ngx_http_omni_w.failed += ngx_http_omni_w.npending;

        } else {
            ngx_http_omni_w.committed += ngx_http_omni_w.npending;
        }

        /* Only upstream signals can be left here: nobody waits. */
        ngx_http_omni_writer_jobs_done(ngx_http_omni_w.jobs,
                                       rc == OMNI_OK ? NGX_OK : NGX_ERROR,
                                       0);
        ngx_http_omni_w.jobs = NULL;
        ngx_http_omni_w.npending = 0;
        ngx_http_omni_w.arena_used = 0;
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

    ngx_free(ngx_http_omni_w.pending);
    ngx_free(ngx_http_omni_w.inflight);
    ngx_free(ngx_http_omni_w.arena);
    ngx_free(ngx_http_omni_w.arena_inflight);
    ngx_free(ngx_http_omni_w.pids);
    ngx_http_omni_w.pending = NULL;
    ngx_http_omni_w.inflight = NULL;
}
