/*
 * The cluster's data path (docs/cluster.md): nodes that share one NATS
 * JetStream stream.
 *
 * In the worker that holds the store's writer lease:
 *
 *   publish (ngx_http_omni_cluster_pub.c): the writer task (a pool
 *     thread) sends what the workers queued, runs of consecutive queue
 *     records as they are in the ring (touches, event jobs with their
 *     text and context) behind a header (omni_cmsg.h), to the subject
 *     omni.<stream>.<node>, and waits for JetStream's acknowledgements
 *     (replicated as the stream says) for at most timeout=; nothing is
 *     applied there;
 *   consume: a pool task takes the stream in order from the sequence
 *     the store holds (meta "stream"), pushed by an ordered consumer,
 *     and applies what each take brought in one
 *     transaction through the core's omni_batch_apply(), every node's
 *     records the same way: the touches logged and folded, the events
 *     parsed again exactly as their worker did, each queue zone's records
 *     once and in order (its position, meta "origin").  The transaction
 *     stores the last sequence.  This node's own event jobs are then answered
 *     (their waiting requests get the results), and the ring's space up
 *     to this node's last applied record is given back.
 *
 * Every node applies the same records in the same order: the stream's
 * order decides between two nodes that change one profile at once, and
 * every store converges to the same profiles.  Nothing of libnats runs on
 * the event loop: connecting, publishing and fetching all happen in pool
 * threads (and libnats's own threads).
 */

#include "ngx_http_omni_module.h"
#include "ngx_http_omni_cluster.h"
#include "ngx_http_omni_metrics.h"
#include "omni_batch.h"
#include "omni_cmsg.h"
#include "ngx_http_omni_cluster_int.h"

#include <dlfcn.h>


#define NGX_HTTP_OMNI_FETCH_ASK    4                /* messages per fetch */
/* records decoded per fetch: every record of the messages fetched */
#define NGX_HTTP_OMNI_FETCH_MAX    (NGX_HTTP_OMNI_FETCH_ASK                \
                                    * NGX_HTTP_OMNI_RUN_RECORDS)
#define NGX_HTTP_OMNI_FETCH_WAIT   50               /* ms */
#define NGX_HTTP_OMNI_CONSUME_IDLE 10               /* ms */
#define NGX_HTTP_OMNI_CONSUME_PACE 50               /* ms, under load */
#define NGX_HTTP_OMNI_CONSUME_BUSY 512              /* touches: a load */
#define NGX_HTTP_OMNI_DUP_WINDOW   (120 * 1000000000LL)  /* ns */
#define NGX_HTTP_OMNI_CLOSE_WAIT   5000             /* ms, at exit */
#define NGX_HTTP_OMNI_EXIT_GUARD   15000            /* ms, at exit */
#define NGX_HTTP_OMNI_CONSUMER_IDLE  (30 * 1000000000LL) /* ns */
#define NGX_HTTP_OMNI_CONSUMER_HB    (1000000000LL)      /* ns */
#define NGX_HTTP_OMNI_STUCK_FETCHES  10               /* empty, then ask */


/* The messages of one fetch. */
typedef struct {
    natsMsg                *msgs[NGX_HTTP_OMNI_FETCH_ASK];
    ngx_uint_t              count;
} ngx_http_omni_fetched_t;


/* The consume task's context: one fetch, decoded and applied. */
typedef struct {
    int                     rc;
    char                    err[512];
    ngx_uint_t              nmsgs;
    ngx_uint_t              ntouches;
    ngx_uint_t              nevents;
    ngx_uint_t              merges;         /* for the metrics */
    double                  commit_s;
    ngx_uint_t              connected;
    uint64_t                own_end;        /* this zone's records up to */
    unsigned                ckpt:1;         /* begin a checkpoint after */
    unsigned                ckpt_begun:1;
    ngx_http_omni_qjob_t   *jobs;           /* NGX_HTTP_OMNI_BATCH_JOBS */
    ngx_uint_t              njobs;
    ngx_http_omni_queue_t  *fake;           /* the fetch as a ring */
    ngx_uint_t              skipped;        /* runs: copies, after holes */
    ngx_uint_t              norigins;       /* the zones of the fetch */
    omni_origin_t           origins[NGX_HTTP_OMNI_FETCH_ASK];
    u_char                  known[NGX_HTTP_OMNI_FETCH_ASK];
    omni_origin_t           put[NGX_HTTP_OMNI_FETCH_ASK];
} ngx_http_omni_ctask_t;




ngx_http_omni_cluster_t  ngx_http_omni_cl;


static void ngx_http_omni_cluster_tick(ngx_event_t *ev);
static void ngx_http_omni_cluster_thread(void *data, ngx_log_t *log);
static void ngx_http_omni_cluster_done(ngx_event_t *ev);
static void ngx_http_omni_cluster_settle(ngx_http_omni_ctask_t *c);
static void ngx_http_omni_cluster_watchdog(ngx_cycle_t *cycle,
    ngx_uint_t start);


ngx_uint_t
ngx_http_omni_cluster_on(void)
{
    return ngx_http_omni_cl.conf != NULL;
}


static void
ngx_http_omni_cluster_connected(natsConnection *nc, void *closure)
{
    /* nothing to do: the tasks use the connection once it is there */
}


static void
ngx_http_omni_cluster_pin(ngx_log_t *log)
{
    void     *h;
    Dl_info   di;

    if (dladdr((void *) ngx_http_omni_cluster_pin, &di) == 0
        || di.dli_fname == NULL)
    {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "omni: cluster: dladdr() found no module file");
        return;
    }

    h = dlopen(di.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);

    if (h == NULL) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "omni: cluster: dlopen(\"%s\", RTLD_NODELETE) failed: "
                      "%s", di.dli_fname, dlerror());
    }

    /* the handle is never closed: the module stays until exit */
}


ngx_int_t
ngx_http_omni_cluster_init_worker(ngx_cycle_t *cycle,
    ngx_thread_pool_t *pool, time_t visit_timeout)
{
    ngx_http_omni_cluster_conf_t  *cf;

    ngx_memzero(&ngx_http_omni_cl, sizeof(ngx_http_omni_cluster_t));

    cf = ngx_http_omni_cluster_conf(cycle);

    if (cf == NULL || ngx_http_omni_worker_store() == NULL) {
        return NGX_OK;
    }

    ngx_http_omni_cl.conf = cf;
    ngx_http_omni_cl.pool = pool;

    /*
     * The module stays mapped until the process ends: nginx unloads it
     * (dlclose) when the worker's cycle is destroyed, right before exit,
     * and libnats, which it pulls in, would go with it.  Exit waits for
     * libnats's threads (nats_CloseAndWait), but one that outlived that
     * wait would then run unmapped code, or call back into it.
     */
    ngx_http_omni_cluster_pin(cycle->log);
    ngx_http_omni_cl.visit_timeout = (uint32_t) visit_timeout;

    ngx_snprintf((u_char *) ngx_http_omni_cl.subject,
                 sizeof(ngx_http_omni_cl.subject) - 1, "omni.%V.%V%Z",
                 &cf->stream, &cf->node);
    ngx_snprintf((u_char *) ngx_http_omni_cl.filter,
                 sizeof(ngx_http_omni_cl.filter) - 1, "omni.%V.>%Z",
                 &cf->stream);

    ngx_http_omni_cl.task = ngx_thread_task_alloc(cycle->pool,
                                              sizeof(ngx_http_omni_ctask_t));
    ngx_http_omni_cl.ops = ngx_alloc(NGX_HTTP_OMNI_FETCH_MAX
                                     * sizeof(omni_touch_t), cycle->log);
    ngx_http_omni_cl.pids = ngx_alloc(NGX_HTTP_OMNI_FETCH_MAX * OMNI_ID_LEN,
                                      cycle->log);
    ngx_http_omni_cl.jjobs = ngx_alloc(NGX_HTTP_OMNI_FETCH_MAX
                                       * sizeof(omni_journal_job_t),
                                       cycle->log);

    if (ngx_http_omni_cl.task == NULL || ngx_http_omni_cl.ops == NULL
        || ngx_http_omni_cl.pids == NULL || ngx_http_omni_cl.jjobs == NULL)
    {
        return NGX_ERROR;
    }

    ((ngx_http_omni_ctask_t *) ngx_http_omni_cl.task->ctx)->jobs =
        ngx_alloc(NGX_HTTP_OMNI_FETCH_MAX * sizeof(ngx_http_omni_qjob_t),
                  cycle->log);

    if (((ngx_http_omni_ctask_t *) ngx_http_omni_cl.task->ctx)->jobs == NULL) {
        return NGX_ERROR;
    }

    ngx_http_omni_cl.task->handler = ngx_http_omni_cluster_thread;
    ngx_http_omni_cl.task->event.handler = ngx_http_omni_cluster_done;
    ngx_http_omni_cl.task->event.data = ngx_http_omni_cl.task->ctx;
    ngx_http_omni_cl.task->event.log = cycle->log;

    ngx_http_omni_cl.tick.handler = ngx_http_omni_cluster_tick;
    ngx_http_omni_cl.tick.log = cycle->log;
    ngx_http_omni_cl.tick.data = &ngx_http_omni_cl;
    ngx_http_omni_cl.tick.cancelable = 1;

    return NGX_OK;
}


/* This worker holds the lease now: consume. */
void
ngx_http_omni_cluster_kick(void)
{
    if (ngx_http_omni_cl.conf && !ngx_http_omni_cl.tick.timer_set) {
        ngx_add_timer(&ngx_http_omni_cl.tick, 1);
    }
}


/*
 * The writer published event jobs of this node: their requests wait
 * until the consumer applies them, so a take paced under load (below)
 * goes at once.
 */
void
ngx_http_omni_cluster_events_published(uint64_t end)
{
    if (ngx_http_omni_cl.conf == NULL) {
        return;
    }

    ngx_http_omni_cl.ev_end = ngx_max(ngx_http_omni_cl.ev_end, end);

    if (!ngx_http_omni_cl.busy && ngx_http_omni_cl.tick.timer_set) {
        ngx_del_timer(&ngx_http_omni_cl.tick);
        ngx_http_omni_cluster_tick(&ngx_http_omni_cl.tick);
    }
}


/*
 * A consume task in flight: an exiting holder keeps the lease until it is
 * applied, or the next holder's consumer, reading the store's sequence
 * before this one's commit, would apply the same messages again.
 */
ngx_uint_t
ngx_http_omni_cluster_busy(void)
{
    return ngx_http_omni_cl.conf != NULL && ngx_http_omni_cl.busy;
}


void
ngx_http_omni_cluster_exit(ngx_cycle_t *cycle)
{
    if (ngx_http_omni_cl.conf == NULL) {
        return;
    }

    if (ngx_http_omni_cl.tick.timer_set) {
        ngx_del_timer(&ngx_http_omni_cl.tick);
    }

    /* the pool has finished the task in flight; a checkpoint it began
       gives way to the one the store's close makes */
    if (ngx_http_omni_cl.task
        && ((ngx_http_omni_ctask_t *) ngx_http_omni_cl.task->ctx)->ckpt_begun
        && ngx_http_omni_worker_store())
    {
        omni_checkpoint_abandon(ngx_http_omni_worker_store(),
                                ngx_http_omni_writer_ckpt_cp());
    }

    /*
     * Its completion event is never delivered (the pool is destroyed
     * before the exit handlers run), but what it applied is committed:
     * its event jobs are answered here, else their requests, in this
     * worker or another (a worker of the previous generation during a
     * reload), would wait for an answer until they fail, and the ring's
     * space is given back.
     */
    if (ngx_http_omni_cl.busy && ngx_http_omni_cl.task) {
        ngx_http_omni_cl.busy = 0;
        ngx_http_omni_cluster_settle(ngx_http_omni_cl.task->ctx);
    }

    ngx_http_omni_cluster_watchdog(cycle, 1);

    /*
     * The connection is closed first: libnats's threads then deliver
     * nothing more (acknowledgements, messages) to what is destroyed
     * after.
     */
    if (ngx_http_omni_cl.nc) {
        natsConnection_Close(ngx_http_omni_cl.nc);
    }

    if (ngx_http_omni_cl.sub) {
        natsSubscription_Destroy(ngx_http_omni_cl.sub);
    }

    if (ngx_http_omni_cl.js) {
        jsCtx_Destroy(ngx_http_omni_cl.js);
    }

    if (ngx_http_omni_cl.nc) {
        natsConnection_Destroy(ngx_http_omni_cl.nc);
    }

    if (ngx_http_omni_cl.opts) {
        natsOptions_Destroy(ngx_http_omni_cl.opts);
    }

    /*
     * Destroyed objects leave libnats's threads running for a while
     * (the connection's reader and flusher, the subscriptions' delivery
     * threads, the library's timer and callback threads): they must all
     * have stopped before nginx frees the cycle and unloads the module.
     * Blocking is acceptable here, the worker serves nothing more.
     */
    if (ngx_http_omni_cl.opened) {
        natsStatus  s;

        s = nats_CloseAndWait(NGX_HTTP_OMNI_CLOSE_WAIT);

        if (s != NATS_OK) {
            ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                          "omni: cluster: libnats's threads did not stop "
                          "within %d ms: %s", NGX_HTTP_OMNI_CLOSE_WAIT,
                          natsStatus_GetText(s));
        }

        ngx_http_omni_cl.opened = 0;
    }

    ngx_http_omni_cluster_watchdog(cycle, 0);

    omni_cmsg_zctx_free(ngx_http_omni_cl.zpub);
    omni_cmsg_zctx_free(ngx_http_omni_cl.zcon);
    ngx_http_omni_cl.zpub = NULL;
    ngx_http_omni_cl.zcon = NULL;

    ngx_http_omni_cl.sub = NULL;
    ngx_http_omni_cl.js = NULL;
    ngx_http_omni_cl.nc = NULL;
    ngx_http_omni_cl.opts = NULL;
    ngx_http_omni_cl.conf = NULL;
}


/*
 * An exiting worker's guard against libnats: closing the connection joins
 * libnats's reader thread, and a reader stuck on a lock (seen once, after
 * the worker's heap was damaged) would keep the worker "shutting down"
 * for good, a reload never finished.  Past NGX_HTTP_OMNI_EXIT_GUARD the
 * worker leaves anyway, and says so.  Everything of the store is
 * committed before the connection is closed.
 */
static ngx_atomic_t  ngx_http_omni_cl_closed;


static void *
ngx_http_omni_cluster_guard(void *data)
{
    ngx_log_t  *log = data;

    ngx_uint_t       i;
    struct timespec  ts = { 0, 100 * 1000000 };

    for (i = 0; i < NGX_HTTP_OMNI_EXIT_GUARD / 100; i++) {
        if (ngx_http_omni_cl_closed) {
            return NULL;
        }

        (void) nanosleep(&ts, NULL);
    }

    ngx_log_error(NGX_LOG_ALERT, log, 0,
                  "omni: cluster: closing the NATS connection took more "
                  "than %d ms: the worker exits without waiting for it",
                  NGX_HTTP_OMNI_EXIT_GUARD);
    _exit(1);

    return NULL;
}


static void
ngx_http_omni_cluster_watchdog(ngx_cycle_t *cycle, ngx_uint_t start)
{
    pthread_t       tid;
    pthread_attr_t  attr;

    if (!start) {
        ngx_http_omni_cl_closed = 1;
        return;
    }

    if (!ngx_http_omni_cl.opened) {
        return;
    }

    ngx_http_omni_cl_closed = 0;

    if (pthread_attr_init(&attr) != 0) {
        return;
    }

    (void) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);

    if (pthread_create(&tid, &attr, ngx_http_omni_cluster_guard, cycle->log)
        != 0)
    {
        ngx_log_error(NGX_LOG_WARN, cycle->log, ngx_errno,
                      "omni: cluster: no guard thread for the exit");
    }

    (void) pthread_attr_destroy(&attr);
}


/* ---- the connection, in a pool thread ---- */

ngx_int_t
ngx_http_omni_cluster_fail(char *err, size_t len, const char *what,
    natsStatus s)
{
    snprintf(err, len, "%s: %s (%s)", what, natsStatus_GetText(s),
             nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "");
    return NGX_ERROR;
}


/*
 * Connects (libnats goes on reconnecting in its own threads), and makes
 * the JetStream context.  Called by whichever task needs it first; both
 * tasks run in the holder's pool threads, the second waits for the
 * first.  Until libnats has connected, what is published waits in its
 * reconnect buffer, and the acknowledgements' wait counts it.
 */
ngx_int_t
ngx_http_omni_cluster_connect(char *err, size_t len)
{
    natsStatus                     s;
    jsOptions                      jo;
    natsOptions                   *o;
    natsConnection                *nc;
    ngx_http_omni_cluster_conf_t  *cf;

    /*
     * The other task waits for the one connecting (which does not block:
     * libnats goes on connecting in its threads) rather than failing: a
     * new lease holder's first events would get a 503 at once otherwise.
     */
    static pthread_mutex_t         lock = PTHREAD_MUTEX_INITIALIZER;

    if (ngx_http_omni_cl.js) {
        return NGX_OK;
    }

    pthread_mutex_lock(&lock);

    if (ngx_http_omni_cl.js) {
        pthread_mutex_unlock(&lock);
        return NGX_OK;
    }

    cf = ngx_http_omni_cl.conf;
    o = ngx_http_omni_cl.opts;

    if (o == NULL) {
        /* the first call opens the library (its threads) */
        ngx_http_omni_cl.opened = 1;
        s = natsOptions_Create(&o);

        if (s == NATS_OK) {
            /* SetURL takes one URL: the list goes to SetServers */
            s = natsOptions_SetServers(o, cf->server_urls,
                                       (int) cf->servers->nelts);
        }

        if (s == NATS_OK) {
            s = natsOptions_SetName(o, (const char *) cf->node.data);
        }

        if (s == NATS_OK) {
            /*
             * With a connected callback, a first connect that fails
             * returns at once and goes on in libnats's threads; without
             * one it would block here until NATS answers.
             */
            s = natsOptions_SetRetryOnFailedConnect(o, true,
                                          ngx_http_omni_cluster_connected,
                                          NULL);
        }

        if (s == NATS_OK) {
            s = natsOptions_SetMaxReconnect(o, -1);
        }

        if (s == NATS_OK) {
            s = natsOptions_SetReconnectWait(o, 250);
        }

        if (s == NATS_OK) {
            s = natsOptions_SetTimeout(o, 2000);
        }

        if (s == NATS_OK && cf->creds.len) {
            s = natsOptions_SetUserCredentialsFromFiles(o,
                                          (const char *) cf->creds.data, NULL);
        }

        if (s == NATS_OK && cf->nkey.len) {
            s = natsOptions_SetNKeyFromSeed(o,
                                  (const char *) cf->nkey_public.data,
                                  (const char *) cf->nkey.data);
        }

        if (s == NATS_OK && cf->tls) {
            s = natsOptions_SetSecure(o, true);
        }

        if (s == NATS_OK && cf->tls_ca.len) {
            s = natsOptions_LoadCATrustedCertificates(o,
                                              (const char *) cf->tls_ca.data);
        }

        if (s == NATS_OK && cf->tls_cert.len) {
            s = natsOptions_LoadCertificatesChain(o,
                                              (const char *) cf->tls_cert.data,
                                              (const char *) cf->tls_key.data);
        }

        if (s != NATS_OK) {
            if (o) {
                natsOptions_Destroy(o);
            }

            pthread_mutex_unlock(&lock);
            return ngx_http_omni_cluster_fail(err, len, "NATS options", s);
        }

        ngx_http_omni_cl.opts = o;
    }

    if (ngx_http_omni_cl.nc == NULL) {
        s = natsConnection_Connect(&nc, o);

        if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
            pthread_mutex_unlock(&lock);
            return ngx_http_omni_cluster_fail(err, len, "connect", s);
        }

        ngx_http_omni_cl.nc = nc;
    }

    jsOptions_Init(&jo);
    jo.Wait = (int64_t) cf->timeout;
    jo.PublishAsync.MaxPending = 65536;
    jo.PublishAsync.ErrHandler = ngx_http_omni_cluster_pub_error;

    s = natsConnection_JetStream(&ngx_http_omni_cl.js, ngx_http_omni_cl.nc,
                                 &jo);

    pthread_mutex_unlock(&lock);

    if (s != NATS_OK) {
        ngx_http_omni_cl.js = NULL;
        return ngx_http_omni_cluster_fail(err, len, "JetStream", s);
    }

    return NGX_OK;
}


/* ---- consume: a pool task of the lease holder ---- */

static void
ngx_http_omni_cluster_tick(ngx_event_t *ev)
{
    if (ngx_exiting || ngx_http_omni_cl.conf == NULL
        || !ngx_http_omni_queue_holder())
    {
        return;
    }

    if (!ngx_http_omni_cl.busy) {
        ((ngx_http_omni_ctask_t *) ngx_http_omni_cl.task->ctx)->ckpt =
                                     ngx_http_omni_writer_ckpt_due() ? 1 : 0;

        if (ngx_thread_task_post(ngx_http_omni_cl.pool, ngx_http_omni_cl.task)
            == NGX_OK)
        {
            ngx_http_omni_cl.busy = 1;
            ngx_http_omni_cl.taken = ngx_current_msec;
            return;
        }
    }

    ngx_add_timer(ev, NGX_HTTP_OMNI_CONSUME_IDLE);
}


/*
 * The store misses records the stream no longer holds: this node stops
 * applying, for good, and says what to do.
 */
static void
ngx_http_omni_cluster_behind(char *err, size_t len, uint64_t first)
{
    snprintf(err, len, "this node's store holds the stream up to sequence "
             "%llu, and the stream now begins at %llu (retention removed "
             "the records between): bootstrap this node from a peer's "
             "store (docs/cluster.md), it applies nothing more until then",
             (unsigned long long) ngx_http_omni_cl.applied,
             (unsigned long long) first);

    ngx_http_omni_cl.behind = 1;
}


/*
 * The stream (made when missing) and a pull consumer from the sequence
 * after the store's.  A store behind the stream's first sequence missed
 * records retention removed: it stops here, for good, and says so.
 */
static ngx_int_t
ngx_http_omni_cluster_subscribe(char *err, size_t len)
{
    natsStatus                     s;
    jsErrCode                      jerr;
    jsStreamInfo                  *si;
    jsStreamConfig                 sc;
    jsSubOptions                   so;
    const char                    *subjects[1];
    ngx_http_omni_cluster_conf_t  *cf;

    cf = ngx_http_omni_cl.conf;

    if (omni_store_stream_seq(ngx_http_omni_worker_store(),
                              &ngx_http_omni_cl.applied)
        != OMNI_OK)
    {
        snprintf(err, len, "%s",
                 omni_store_error(ngx_http_omni_worker_store()));
        return NGX_ERROR;
    }

    si = NULL;
    s = js_GetStreamInfo(&si, ngx_http_omni_cl.js,
                         (const char *) cf->stream.data, NULL, &jerr);

    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
        jsStreamConfig_Init(&sc);
        subjects[0] = ngx_http_omni_cl.filter;
        sc.Name = (const char *) cf->stream.data;
        sc.Subjects = subjects;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        sc.Replicas = (int64_t) cf->replicas;
        sc.MaxAge = (int64_t) cf->max_age * 1000000000LL;
        sc.MaxBytes = cf->max_bytes ? (int64_t) cf->max_bytes : -1;
        /* JetStream wants the duplicates window within max_age */
        sc.Duplicates = (sc.MaxAge && sc.MaxAge < NGX_HTTP_OMNI_DUP_WINDOW)
                        ? sc.MaxAge : NGX_HTTP_OMNI_DUP_WINDOW;

        s = js_AddStream(&si, ngx_http_omni_cl.js, &sc, NULL, &jerr);
    }

    if (s != NATS_OK) {
        return ngx_http_omni_cluster_fail(err, len, "the stream", s);
    }

    ngx_http_omni_cl.stream_last = si->State.LastSeq;

    /* the stream went on past the store, and dropped what came between */
    if (si->State.LastSeq > ngx_http_omni_cl.applied
        && si->State.FirstSeq > ngx_http_omni_cl.applied + 1)
    {
        ngx_http_omni_cluster_behind(err, len, si->State.FirstSeq);
        jsStreamInfo_Destroy(si);
        return NGX_ERROR;
    }

    jsStreamInfo_Destroy(si);

    /*
     * A consumer of the moment, made anew from the store's sequence
     * whenever this node subscribes: the store's sequence is the truth,
     * not a consumer's, so one lost with its server costs only a new one.
     * An ordered push consumer: one replica in memory (made at once, no
     * election among servers), no acknowledgements, the server pushing
     * the stream as it grows, paced by flow control, with a heartbeat
     * every second; libnats makes it again, from the message after the
     * last it received, when a heartbeat says one was missed or after a
     * reconnect.  A pull consumer cost each node three requests or more
     * per message under load (fetch, "no more", acknowledgement): that
     * was most of the NATS servers' CPU.  Not durable (no name two
     * generations of workers would fight over, nothing to delete first);
     * the server removes it 30 s after its subscription went.
     */
    jsSubOptions_Init(&so);
    so.Stream = (const char *) cf->stream.data;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = ngx_http_omni_cl.applied + 1;
    so.Config.Heartbeat = NGX_HTTP_OMNI_CONSUMER_HB;
    so.Config.InactiveThreshold = NGX_HTTP_OMNI_CONSUMER_IDLE;

    s = js_SubscribeSync(&ngx_http_omni_cl.sub, ngx_http_omni_cl.js,
                         ngx_http_omni_cl.filter, NULL, &so, &jerr);

    if (s != NATS_OK) {
        ngx_http_omni_cl.sub = NULL;
        return ngx_http_omni_cluster_fail(err, len, "the consumer", s);
    }

    ngx_http_omni_cl.fresh = 1;

    return NGX_OK;
}


/* The consumer is made again, from the store's sequence, at the next try. */
static void
ngx_http_omni_cluster_unsubscribe(void)
{
    natsSubscription_Destroy(ngx_http_omni_cl.sub);
    ngx_http_omni_cl.sub = NULL;
}


/*
 * What the consumer has received, up to NGX_HTTP_OMNI_FETCH_ASK
 * messages, waiting at most NGX_HTTP_OMNI_FETCH_WAIT for the first one:
 * NATS_TIMEOUT when none came.  The server pushes the messages; these
 * calls only take them from the subscription's queue, and an error after
 * the first (a slow consumer's drop) is seen as a gap by the caller.
 */
static natsStatus
ngx_http_omni_cluster_fetch(ngx_http_omni_fetched_t *f)
{
    natsMsg     *m;
    natsStatus   s;

    f->count = 0;

    s = natsSubscription_NextMsg(&m, ngx_http_omni_cl.sub,
                                 NGX_HTTP_OMNI_FETCH_WAIT);
    if (s != NATS_OK) {
        return s;
    }

    f->msgs[f->count++] = m;

    while (f->count < NGX_HTTP_OMNI_FETCH_ASK
           && natsSubscription_NextMsg(&m, ngx_http_omni_cl.sub, 0)
              == NATS_OK)
    {
        f->msgs[f->count++] = m;
    }

    return NATS_OK;
}


static void
ngx_http_omni_cluster_fetched_free(ngx_http_omni_fetched_t *f)
{
    ngx_uint_t  i;

    for (i = 0; i < f->count; i++) {
        natsMsg_Destroy(f->msgs[i]);
    }

    f->count = 0;
}


/*
 * Nothing new, most likely.  Every 10 empty fetches (0.5 s) the stream
 * is asked: when it holds more than the store, the consumer is stuck (its
 * server gone) and is made again.
 */
static void
ngx_http_omni_cluster_idle(void)
{
    jsErrCode      jerr;
    jsStreamInfo  *si;

    if (++ngx_http_omni_cl.idle % NGX_HTTP_OMNI_STUCK_FETCHES) {
        return;
    }

    si = NULL;

    if (js_GetStreamInfo(&si, ngx_http_omni_cl.js,
                         (const char *) ngx_http_omni_cl.conf->stream.data,
                         NULL, &jerr)
        != NATS_OK)
    {
        return;
    }

    ngx_http_omni_cl.stream_last = si->State.LastSeq;

    if (si->State.LastSeq > ngx_http_omni_cl.applied) {
        ngx_http_omni_cluster_unsubscribe();
    }

    jsStreamInfo_Destroy(si);
}


/*
 * The fetch's entry for a zone (omni_cmsg.h): where the store's records
 * of it end, read from the store the first time the fetch meets it.
 * NULL: the store could not be read.
 */
static omni_origin_t *
ngx_http_omni_cluster_origin(ngx_http_omni_ctask_t *c, uint64_t zone)
{
    ngx_uint_t      i;
    omni_origin_t  *o;

    for (i = 0; i < c->norigins; i++) {
        if (c->origins[i].zone == zone) {
            return &c->origins[i];
        }
    }

    /* a fetch holds at most NGX_HTTP_OMNI_FETCH_ASK messages */
    o = &c->origins[c->norigins];
    o->zone = zone;

    if (omni_store_origins(ngx_http_omni_worker_store(), o, 1,
                           &c->known[c->norigins])
        != OMNI_OK)
    {
        return NULL;
    }

    c->norigins++;

    return o;
}


static void
ngx_http_omni_cluster_thread(void *data, ngx_log_t *log)
{
    ngx_http_omni_ctask_t  *c = data;

    int                     rc;
    u_char                 *rec;
    size_t                  total, off;
    uint32_t                rlen;
    uint64_t                seq, last, end, start, pos;
    natsMsg                *m;
    natsStatus              s;
    omni_cmsg_t             cm;
    const char             *e;
    ngx_uint_t              i, k, n, njobs, own;
    uint64_t                gap;
    ngx_http_omni_fetched_t  list;
    omni_batch_t            b;
    omni_origin_t          *o;
    jsMsgMetaData          *meta;
    omni_batch_opts_t       opts;
    omni_batch_events_t    *groups;
    ngx_http_omni_queue_t  *qu;
    u_char                  owns[NGX_HTTP_OMNI_FETCH_MAX];

    c->rc = OMNI_OK;
    c->err[0] = '\0';
    c->nmsgs = 0;
    c->ntouches = 0;
    c->nevents = 0;
    c->merges = 0;
    c->commit_s = 0;
    c->njobs = 0;
    c->own_end = 0;
    c->fake = NULL;
    c->ckpt_begun = 0;
    c->norigins = 0;
    c->skipped = 0;

    /* for the metrics, here: the event loop must not wait for nc's lock */
    c->connected = (ngx_http_omni_cl.nc != NULL
                    && natsConnection_Status(ngx_http_omni_cl.nc)
                       == NATS_CONN_STATUS_CONNECTED);

    if (ngx_http_omni_cl.behind) {
        return;
    }

    if (ngx_http_omni_cluster_connect(c->err, sizeof(c->err)) != NGX_OK) {
        c->rc = OMNI_ERROR;
        return;
    }

    if (ngx_http_omni_cl.sub == NULL
        && ngx_http_omni_cluster_subscribe(c->err, sizeof(c->err))
           != NGX_OK)
    {
        c->rc = OMNI_ERROR;
        return;
    }

    s = ngx_http_omni_cluster_fetch(&list);

    if (s == NATS_TIMEOUT) {
        ngx_http_omni_cluster_idle();
        return;
    }

    ngx_http_omni_cl.idle = 0;

    if (s != NATS_OK) {
        (void) ngx_http_omni_cluster_fail(c->err, sizeof(c->err), "fetch",
                                          s);
        c->rc = OMNI_ERROR;

        /*
         * The consumer may be gone with the server that held it (a
         * server killed, a cluster restarted): a new one, from the
         * store's sequence, at the next try.
         */
        ngx_http_omni_cluster_unsubscribe();
        return;
    }

    qu = ngx_http_omni_queue();

    /* the records, back to back: a ring the queue's decoder reads */
    total = 0;

    for (i = 0; i < list.count; i++) {
        m = list.msgs[i];
        total += ngx_align(omni_cmsg_records_len(
                               (const u_char *) natsMsg_GetData(m),
                               natsMsg_GetDataLength(m)), 8);
    }

    c->fake = ngx_alloc(sizeof(ngx_http_omni_queue_t) + total + 8, log);
    if (c->fake == NULL) {
        ngx_http_omni_cluster_fetched_free(&list);
        c->rc = OMNI_ERROR;
        return;
    }

    ngx_memzero(c->fake, sizeof(ngx_http_omni_queue_t));
    c->fake->size = total + 8;

    off = 0;
    last = 0;
    njobs = 0;
    gap = 0;

    for (i = 0; i < list.count; i++) {
        m = list.msgs[i];

        seq = 0;
        if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
            seq = meta->Sequence.Stream;
            ngx_http_omni_cl.stream_last = seq + meta->NumPending;
            jsMsgMetaData_Destroy(meta);
        }

        if (seq == 0 || seq <= ngx_http_omni_cl.applied || seq <= last) {
            continue;                   /* applied already */
        }

        /*
         * A new consumer starts at the sequence after the store's: when
         * its first message is a later one, the stream no longer holds
         * those between (retention removed them after the stream was
         * looked at, or they were deleted): this node missed them, and
         * stops as when the subscription finds it behind.
         */
        if (last == 0 && ngx_http_omni_cl.fresh
            && seq != ngx_http_omni_cl.applied + 1)
        {
            ngx_http_omni_cluster_behind(c->err, sizeof(c->err), seq);
            c->rc = OMNI_ERROR;
            ngx_http_omni_cluster_fetched_free(&list);
            ngx_free(c->fake);
            c->fake = NULL;
            return;
        }

        /*
         * The stream's sequences are contiguous (every subject of it is
         * this node's): a message after a gap means one was lost (the
         * subscription's queue overflowed, a consumer libnats made again
         * started past it).  What precedes the gap is applied, the rest
         * comes again from a new consumer at the store's sequence.
         */
        if (seq != (last ? last : ngx_http_omni_cl.applied) + 1) {
            gap = seq;
            break;
        }

        last = seq;

        rc = omni_cmsg_parse((const u_char *) natsMsg_GetData(m),
                             natsMsg_GetDataLength(m), &cm, &e);

        if (rc == OMNI_INVALID && !cm.damaged) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "omni: cluster: message %uL of the stream skipped: "
                          "%s", seq, e);
        }

        if (rc != OMNI_OK && !cm.damaged) {
            continue;                   /* not a message of ours */
        }

        /* where this node is in the zone's records */
        o = ngx_http_omni_cluster_origin(c, cm.zone);

        if (o == NULL) {
            snprintf(c->err, sizeof(c->err), "%s",
                     omni_store_error(ngx_http_omni_worker_store()));
            c->rc = OMNI_ERROR;
            ngx_http_omni_cluster_unsubscribe();
            ngx_http_omni_cluster_fetched_free(&list);
            return;
        }

        /* "OMC3": inflated where its records go (moved down below) */
        if (rc == OMNI_OK && cm.z) {
            if (ngx_http_omni_cl.zcon == NULL) {
                ngx_http_omni_cl.zcon = omni_cmsg_zctx_create();
            }

            rc = (ngx_http_omni_cl.zcon == NULL)
                 ? OMNI_ERROR
                 : omni_cmsg_inflate(&cm, c->fake->ring + off,
                                     ngx_http_omni_cl.zcon, &e);

            if (rc == OMNI_ERROR) {
                snprintf(c->err, sizeof(c->err),
                         "inflating message %llu: out of memory",
                         (unsigned long long) seq);
                c->rc = OMNI_ERROR;
                ngx_http_omni_cluster_unsubscribe();
                ngx_http_omni_cluster_fetched_free(&list);
                return;
            }
        }

        if (omni_cmsg_start(&cm, c->known[o - c->origins], o->end, &start)
            != OMNI_CMSG_APPLY)
        {
            c->skipped++;               /* a copy, or after a hole */
            continue;
        }

        if (!cm.v1) {
            o->end = cm.to;
            c->known[o - c->origins] = 1;
        }

        own = (qu && cm.zone == qu->id);

        if (own) {
            c->own_end = ngx_max(c->own_end, cm.to);
        }

        if (rc != OMNI_OK) {
            /*
             * A run whose records are damaged: passed over, so that the
             * zone's later runs are not all held behind it.
             */
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "omni: cluster: message %uL of the stream: %s: "
                          "the %uD record(s) of node \"%s\"'s run [%uL, %uL) "
                          "are lost", seq, e, cm.nrec, cm.node, cm.from,
                          cm.to);
            c->skipped++;
            continue;
        }

        for (pos = start; pos < cm.to; pos += rlen) {
            rec = (u_char *) cm.recs + (pos - cm.from);
            ngx_memcpy(&rlen, rec, sizeof(uint32_t));

            if (rec[4] == 2 && njobs < NGX_HTTP_OMNI_FETCH_MAX) {
                owns[njobs++] = (u_char) own;
            }

            ngx_memmove(c->fake->ring + off, rec, rlen);
            off += ngx_align(rlen, 8);
        }

        c->nmsgs++;
    }

    n = 0;

    if (off) {
        n = ngx_http_omni_queue_read(c->fake, 0, off, ngx_http_omni_cl.ops,
                                     NGX_HTTP_OMNI_FETCH_MAX, c->jobs,
                                     NGX_HTTP_OMNI_FETCH_MAX, &c->njobs,
                                     ngx_http_omni_cl.visit_timeout, &end);
    }

    for (k = 0; k < c->njobs; k++) {
        if (k >= njobs || !owns[k]) {
            c->jobs[k].origin = 0;      /* another node's (or zone's) */
        }

        (void) ngx_http_omni_writer_parse_job(&c->jobs[k]);
    }

    ngx_memzero(&b, sizeof(omni_batch_t));
    ngx_memzero(&opts, sizeof(omni_batch_opts_t));

    /* every node logs and folds at once what the stream gives it */
    b.touches = ngx_http_omni_cl.ops;
    b.ntouches = n;
    b.pids = ngx_http_omni_cl.pids;
    b.fold = ngx_http_omni_cl.ops;
    b.nfold = n;
    b.fold_pids = ngx_http_omni_cl.pids;
    b.stream_seq = last;
    /* the zones whose position the store keeps (none for "OMC1") */
    for (k = 0; k < c->norigins; k++) {
        if (c->known[k]) {
            c->put[b.norigins++] = c->origins[k];
        }
    }

    b.origins = c->put;

    if (qu && c->own_end) {
        b.queue_id = qu->id;
        b.queue_pos = c->own_end;
        b.fold_pos = c->own_end;
    }

    rc = OMNI_OK;

    if (ngx_http_omni_writer_events_batch(c->jobs, c->njobs,
                                          ngx_http_omni_cl.jjobs, &b, &groups)
        != NGX_OK)
    {
        rc = OMNI_ERROR;
    }

    if (rc == OMNI_OK && last) {
        /* MAP_FULL, MAP_RESIZED: the map is changed on the event loop */
        rc = omni_batch_apply(ngx_http_omni_worker_store(), &opts, &b);
    }

    free(groups);

    if (rc != OMNI_OK) {
        snprintf(c->err, sizeof(c->err), "applying the stream failed: %s",
                 omni_store_error(ngx_http_omni_worker_store()));
        c->rc = rc;

        /* from the store's sequence again, with a new consumer */
        ngx_http_omni_cluster_unsubscribe();
        ngx_http_omni_cluster_fetched_free(&list);
        return;
    }

    if (last) {
        ngx_http_omni_cl.applied = last;
    }

    /* right after this thread's commit: the checkpoint's begin */
    if (c->ckpt && last
        && omni_checkpoint_begin(ngx_http_omni_worker_store(),
                                 ngx_http_omni_writer_ckpt_cp())
           == OMNI_OK)
    {
        c->ckpt_begun = 1;
    }

    c->ntouches = n;
    c->nevents = b.nevents;
    c->merges = b.merges;
    c->commit_s = b.commit_s;

    /* at once: the next fetch waits, in its thread, for what comes */
    ngx_http_omni_cl.more = (list.count > 0);

    if (last) {
        ngx_http_omni_cl.fresh = 0;
    }

    if (gap) {
        /* what follows the gap, again from a new consumer, at once */
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "omni: cluster: message %uL came before %uL, "
                      "fetching again from %uL", gap,
                      ngx_http_omni_cl.applied + 1,
                      ngx_http_omni_cl.applied + 1);
        ngx_http_omni_cluster_unsubscribe();
        ngx_http_omni_cl.more = 1;
    }

    ngx_http_omni_cluster_fetched_free(&list);
}


/* On the event loop: answer this node's jobs, give back ring space. */
static void
ngx_http_omni_cluster_done(ngx_event_t *ev)
{
    ngx_http_omni_ctask_t  *c = ev->data;

    ngx_msec_t              elapsed;

    ngx_http_omni_cl.busy = 0;

    ngx_http_omni_metrics_cluster_consumed(c->rc, c->err[0] != '\0',
                                           c->nmsgs, c->skipped,
                                           c->ntouches, c->commit_s,
                                           c->merges);
    ngx_http_omni_metrics_cluster_state(c->connected,
                                        ngx_http_omni_cl.applied,
                                        ngx_http_omni_cl.stream_last,
                                        ngx_http_omni_cl.behind);

    if (c->ckpt) {
        ngx_http_omni_writer_ckpt_begun(c->ckpt_begun);
        c->ckpt = 0;
        c->ckpt_begun = 0;
    }

    /*
     * The map: grown (or another process's size adopted) here, where no
     * transaction of this process is open, and the stream read again at
     * once from the store's sequence; at map_max, logged and retried.
     */
    if ((c->rc == OMNI_MAP_FULL || c->rc == OMNI_MAP_RESIZED)
        && ngx_http_omni_writer_map_grow(c->rc, ev->log))
    {
        c->rc = OMNI_OK;
        c->err[0] = '\0';
        ngx_http_omni_cl.more = 1;
    }

    if (c->rc != OMNI_OK && c->err[0]
        && ngx_time() - ngx_http_omni_cl.logged >= 60)
    {
        ngx_http_omni_cl.logged = ngx_time();
        ngx_log_error(NGX_LOG_ERR, ev->log, 0, "omni: cluster: %s", c->err);
    }

    ngx_http_omni_cluster_settle(c);

    if (ngx_exiting) {
        /* the writer let the lease go if this task was all that held it */
        if (!ngx_http_omni_writer_busy()) {
            ngx_http_omni_lease_release();
        }

        return;
    }

    if (!ngx_http_omni_queue_holder()) {
        return;
    }

    /*
     * While the stream has more: at once when this node's events wait to
     * be applied or the last take was small, else at most a take every
     * NGX_HTTP_OMNI_CONSUME_PACE.
     * Under load a take then holds several messages, and each profile
     * they touch is written once per take, not once per message (each
     * take folds its touches; a single host's writer folds once a
     * second): the node's threads, and every other node's, spend that
     * much less on LMDB.  A quiet cluster waits for nothing (the take
     * waits for the next message in its thread and applies it at once).
     */
    if (ngx_http_omni_cl.more && c->rc == OMNI_OK) {
        elapsed = ngx_current_msec - ngx_http_omni_cl.taken;

        if (ngx_http_omni_cl.own_end < ngx_http_omni_cl.ev_end
            || c->ntouches < NGX_HTTP_OMNI_CONSUME_BUSY
            || elapsed >= NGX_HTTP_OMNI_CONSUME_PACE)
        {
            ngx_http_omni_cluster_tick(&ngx_http_omni_cl.tick);

        } else if (!ngx_http_omni_cl.tick.timer_set) {
            ngx_add_timer(&ngx_http_omni_cl.tick,
                          NGX_HTTP_OMNI_CONSUME_PACE - elapsed);
        }

        return;
    }

    if (!ngx_http_omni_cl.tick.timer_set) {
        ngx_add_timer(&ngx_http_omni_cl.tick,
                      c->rc == OMNI_OK ? NGX_HTTP_OMNI_CONSUME_IDLE : 250);
    }
}


void
ngx_http_omni_cluster_fold(ngx_http_omni_queue_t *qu)
{
    uint64_t  pos;

    if (ngx_http_omni_cl.conf == NULL) {
        return;
    }

    pos = ngx_min(ngx_http_omni_cl.own_end, qu->appended);

    if (pos > qu->head) {
        ngx_http_omni_queue_folded(qu, pos);
    }
}


/*
 * A consume task's outcome, on the event loop: this node's jobs answered,
 * the ring's space up to what was applied given back, the records' copy
 * freed.  At the task's end, and at exit for a task that never ended.
 */
static void
ngx_http_omni_cluster_settle(ngx_http_omni_ctask_t *c)
{
    ngx_http_omni_queue_t  *qu;

    if (c->njobs) {
        ngx_http_omni_writer_job_results(c->jobs, c->njobs, c->rc);
        c->njobs = 0;
    }

    qu = ngx_http_omni_queue();

    if (qu && c->rc == OMNI_OK && c->own_end > ngx_http_omni_cl.own_end) {
        ngx_http_omni_cl.own_end = c->own_end;
    }

    if (qu) {
        ngx_http_omni_cluster_fold(qu);
    }

    if (c->fake) {
        ngx_free(c->fake);
        c->fake = NULL;
    }
}
