/*
 * The cluster's data path (docs/cluster.md): nodes that share one NATS
 * JetStream stream.
 *
 * In the worker that holds the store's writer lease:
 *
 *   publish: the writer task (a pool thread) sends what the workers
 *     queued, each queue record as it is in the ring (a touch, or an
 *     event job with its text and context), behind a small envelope (the
 *     node, the queue zone's id, the record's position), to the subject
 *     omni.<stream>.<node>, with Nats-Msg-Id <node>-<zone>-<position> so
 *     that a batch published twice (a retry, a writer that took over) is
 *     stored once.  It waits for JetStream's acknowledgements (replicated
 *     as the stream says) for at most timeout=; nothing is applied here;
 *   consume: a pool task fetches the stream in order from the sequence
 *     the store holds (meta "stream") and applies each fetch in one
 *     transaction through the core's omni_batch_apply(), every node's
 *     records the same way: the touches logged and folded, the events
 *     parsed again exactly as their worker did.  The transaction stores
 *     the last sequence.  This node's own event jobs are then answered
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

#include <nats/nats.h>
#include <dlfcn.h>


#define NGX_HTTP_OMNI_ENV_MAGIC    0x31434d4fU      /* "OMC1" */
#define NGX_HTTP_OMNI_ENV_LEN      48
#define NGX_HTTP_OMNI_FETCH_MAX    1024             /* decoded per fetch */
#define NGX_HTTP_OMNI_FETCH_ASK    256              /* asked per fetch */
#define NGX_HTTP_OMNI_FETCH_WAIT   50               /* ms */
#define NGX_HTTP_OMNI_CONSUME_IDLE 10               /* ms */
#define NGX_HTTP_OMNI_DUP_WINDOW   (120 * 1000000000LL)  /* ns */
#define NGX_HTTP_OMNI_CLOSE_WAIT   5000             /* ms, at exit */
#define NGX_HTTP_OMNI_PUB_TRY      250              /* ms per wait */
#define NGX_HTTP_OMNI_PUB_PAUSE    50               /* ms after refusals */
#define NGX_HTTP_OMNI_CONSUMER_IDLE  (30 * 1000000000LL) /* ns */
#define NGX_HTTP_OMNI_STUCK_FETCHES  10               /* empty, then ask */


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
} ngx_http_omni_ctask_t;


typedef struct {
    ngx_http_omni_cluster_conf_t  *conf;
    natsOptions           *opts;
    natsConnection        *nc;
    jsCtx                 *js;
    natsSubscription      *sub;
    char                   subject[96];     /* omni.<stream>.<node> */
    char                   filter[96];      /* omni.<stream>.> */
    ngx_uint_t             idle;            /* fetches that timed out */
    uint64_t               applied;         /* the store's meta "stream" */
    uint64_t               stream_last;     /* the stream's, as last seen */
    ngx_thread_pool_t     *pool;
    ngx_thread_task_t     *task;
    ngx_event_t            tick;
    omni_touch_t          *ops;
    u_char               (*pids)[OMNI_ID_LEN];
    omni_journal_job_t    *jjobs;
    uint32_t               visit_timeout;
    time_t                 logged;          /* the last error line */
    /*
     * Flags written by pool threads (opened, behind, more) and by the
     * event loop (busy): whole words each, no bit-fields sharing one.
     */
    ngx_uint_t             busy;
    ngx_uint_t             opened;          /* libnats is in use */
    ngx_uint_t             behind;          /* past the stream's retention */
    ngx_uint_t             more;
    ngx_uint_t             fresh;           /* a new consumer, no fetch yet */
} ngx_http_omni_cluster_t;


static ngx_http_omni_cluster_t  ngx_http_omni_cl;


/* What JetStream refused, handed from libnats's thread to the publisher. */
static struct {
    pthread_mutex_t        mu;
    natsMsg              **msgs;
    ngx_uint_t             n;
    ngx_uint_t             size;
    ngx_uint_t             count;           /* refusals, ever */
    ngx_uint_t             dropped;         /* not taken back (memory) */
    natsStatus             err;             /* the last one's */
    jsErrCode              code;
} ngx_http_omni_cl_refused = { PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, 0, 0,
                               NATS_OK, 0 };


static void ngx_http_omni_cluster_tick(ngx_event_t *ev);
static void ngx_http_omni_cluster_thread(void *data, ngx_log_t *log);
static void ngx_http_omni_cluster_done(ngx_event_t *ev);
static void ngx_http_omni_cluster_settle(ngx_http_omni_ctask_t *c);


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


/*
 * A message JetStream refused (no stream leader during an election, a
 * server gone): libnats's reply thread calls this.  The message is taken
 * back (pae->Msg = NULL: libnats then leaves it alone) for the publisher
 * to send again, with the same Nats-Msg-Id, until its timeout.
 */
static void
ngx_http_omni_cluster_pub_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    natsMsg  **a;

    pthread_mutex_lock(&ngx_http_omni_cl_refused.mu);

    ngx_http_omni_cl_refused.count++;
    ngx_http_omni_cl_refused.err = pae->Err;
    ngx_http_omni_cl_refused.code = pae->ErrCode;

    if (ngx_http_omni_cl_refused.n == ngx_http_omni_cl_refused.size) {
        a = realloc(ngx_http_omni_cl_refused.msgs,
                    (ngx_http_omni_cl_refused.size * 2 + 64)
                    * sizeof(natsMsg *));

        if (a != NULL) {
            ngx_http_omni_cl_refused.msgs = a;
            ngx_http_omni_cl_refused.size =
                                  ngx_http_omni_cl_refused.size * 2 + 64;
        }
    }

    if (pae->Msg && ngx_http_omni_cl_refused.n < ngx_http_omni_cl_refused.size)
    {
        ngx_http_omni_cl_refused.msgs[ngx_http_omni_cl_refused.n++] =
                                                                  pae->Msg;
        pae->Msg = NULL;

    } else {
        ngx_http_omni_cl_refused.dropped++;
    }

    pthread_mutex_unlock(&ngx_http_omni_cl_refused.mu);
}


/* Milliseconds of a monotonic clock, for pool threads. */
static int64_t
ngx_http_omni_cluster_now(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

    ngx_http_omni_cl.sub = NULL;
    ngx_http_omni_cl.js = NULL;
    ngx_http_omni_cl.nc = NULL;
    ngx_http_omni_cl.opts = NULL;
    ngx_http_omni_cl.conf = NULL;
}


/* ---- the connection, in a pool thread ---- */

static ngx_int_t
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
static ngx_int_t
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


/* ---- publish: the writer task, in a pool thread ---- */

/*
 * Waits for the acknowledgements of what was published, for at most
 * timeout= in all, in tries of NGX_HTTP_OMNI_PUB_TRY: what JetStream
 * refused (no stream leader while it elects one) and what is still
 * unacknowledged after a try (sent to a server that died, whose
 * connection libnats has moved to another) are sent again, with their
 * Nats-Msg-Id, so that JetStream stores each once.  A server's death
 * then costs the events in flight some latency, not a 503.
 */
static ngx_int_t
ngx_http_omni_cluster_complete(char *err, size_t len)
{
    int64_t        deadline, left, wait;
    natsMsg      **again, *m;
    natsStatus     s, last;
    jsPubOptions   po;
    ngx_uint_t     i, n, size, tries, refused, dropped;
    natsMsgList    pending;

    pthread_mutex_lock(&ngx_http_omni_cl_refused.mu);
    dropped = ngx_http_omni_cl_refused.dropped;
    pthread_mutex_unlock(&ngx_http_omni_cl_refused.mu);

    deadline = ngx_http_omni_cluster_now()
               + (int64_t) ngx_http_omni_cl.conf->timeout;
    again = NULL;
    size = 0;
    tries = 0;
    last = NATS_OK;

    for ( ;; ) {
        tries++;
        left = deadline - ngx_http_omni_cluster_now();
        wait = ngx_min(left, NGX_HTTP_OMNI_PUB_TRY);

        jsPubOptions_Init(&po);
        po.MaxWait = ngx_max(wait, 1);

        s = js_PublishAsyncComplete(ngx_http_omni_cl.js, &po);

        /* the refused ones, taken back by the error handler */
        pthread_mutex_lock(&ngx_http_omni_cl_refused.mu);

        n = ngx_http_omni_cl_refused.n;
        refused = n;

        if (n) {
            last = ngx_http_omni_cl_refused.err;

            if (n > size) {
                free(again);
                size = n + 256;
                again = malloc(size * sizeof(natsMsg *));
            }

            if (again) {
                ngx_memcpy(again, ngx_http_omni_cl_refused.msgs,
                           n * sizeof(natsMsg *));

            } else {
                for (i = 0; i < n; i++) {
                    natsMsg_Destroy(ngx_http_omni_cl_refused.msgs[i]);
                }

                size = 0;
                n = 0;
            }

            ngx_http_omni_cl_refused.n = 0;
        }

        /* a refused message that could not be kept: the batch fails */
        if (ngx_http_omni_cl_refused.dropped != dropped) {
            s = NATS_NO_MEMORY;
        }

        pthread_mutex_unlock(&ngx_http_omni_cl_refused.mu);

        if (s == NATS_OK && refused == 0) {
            free(again);
            return NGX_OK;
        }

        if (s == NATS_NO_MEMORY) {
            last = s;
            break;
        }

        if (s != NATS_OK && s != NATS_TIMEOUT) {
            break;
        }

        /* the unacknowledged ones: libnats forgets them, they go again */
        if (s == NATS_TIMEOUT
            && js_PublishAsyncGetPendingList(&pending, ngx_http_omni_cl.js)
               == NATS_OK)
        {
            last = NATS_TIMEOUT;

            if (n + pending.Count > size) {
                natsMsg  **a;

                a = realloc(again, (n + pending.Count + 256)
                                   * sizeof(natsMsg *));
                if (a == NULL) {
                    natsMsgList_Destroy(&pending);
                    break;
                }

                again = a;
                size = n + pending.Count + 256;
            }

            ngx_memcpy(again + n, pending.Msgs,
                       pending.Count * sizeof(natsMsg *));
            n += pending.Count;

            /* the list's array only: its messages are in again[] now */
            free(pending.Msgs);
        }

        if (again == NULL || (left = deadline - ngx_http_omni_cluster_now())
                             <= 0)
        {
            break;
        }

        /* no leader to take them yet: a pause, not a busy loop */
        if (refused) {
            ngx_msleep((ngx_msec_t) ngx_min(left, NGX_HTTP_OMNI_PUB_PAUSE));
        }

        for (i = 0; i < n; i++) {
            m = again[i];

            s = js_PublishMsgAsync(ngx_http_omni_cl.js, &m, NULL);

            if (s != NATS_OK) {
                /* not sent: the batch fails, the writer sends it again */
                last = s;
                break;
            }

            again[i] = NULL;
        }

        if (i < n) {
            ngx_memmove(again, again + i, (n - i) * sizeof(natsMsg *));
            n -= i;
            break;
        }

        n = 0;
    }

    if (again) {
        for (i = 0; i < n; i++) {
            natsMsg_Destroy(again[i]);
        }

        free(again);
    }

    /* what is left unacknowledged goes again with the writer's next try */
    if (js_PublishAsyncGetPendingList(&pending, ngx_http_omni_cl.js)
        == NATS_OK)
    {
        natsMsgList_Destroy(&pending);
    }

    snprintf(err, len, "no acknowledgement from JetStream within %lums "
             "(%lu tries; last: %s)",
             (unsigned long) ngx_http_omni_cl.conf->timeout,
             (unsigned long) tries,
             last == NATS_TIMEOUT ? "no answer"
                                  : natsStatus_GetText(last));

    return NGX_ERROR;
}


ngx_int_t
ngx_http_omni_cluster_publish(ngx_http_omni_queue_t *qu, uint64_t from,
    uint64_t to, char *err, size_t len)
{
    u_char                        *p, *rec, *data;
    uint32_t                       rlen;
    uint64_t                       pos;
    natsMsg                       *m;
    natsStatus                     s;
    ngx_uint_t                     n;
    ngx_http_omni_cluster_conf_t  *cf;
    u_char                         id[128];
    u_char                         buf[NGX_HTTP_OMNI_ENV_LEN];

    if (from >= to) {
        return NGX_OK;
    }

    if (ngx_http_omni_cluster_connect(err, len) != NGX_OK) {
        return NGX_ERROR;
    }

    cf = ngx_http_omni_cl.conf;
    n = 0;

    for (pos = from; pos < to; pos += rlen) {
        rec = qu->ring + pos % qu->size;
        ngx_memcpy(&rlen, rec, sizeof(uint32_t));

        if (rlen < 8 || rlen > to - pos) {
            snprintf(err, len, "a damaged queue record at %llu",
                     (unsigned long long) pos);
            return NGX_ERROR;
        }

        if (rec[4] == 0) {
            continue;                   /* padding at the ring's end */
        }

        /* the envelope: magic, zone id, position, node */
        ngx_memzero(buf, sizeof(buf));
        p = buf;
        *(uint32_t *) p = NGX_HTTP_OMNI_ENV_MAGIC;
        *(uint64_t *) (p + 8) = qu->id;
        *(uint64_t *) (p + 16) = pos;
        ngx_memcpy(p + 24, cf->node.data,
                   ngx_min(cf->node.len, NGX_HTTP_OMNI_ENV_LEN - 24));

        data = malloc(NGX_HTTP_OMNI_ENV_LEN + rlen);
        if (data == NULL) {
            snprintf(err, len, "out of memory");
            return NGX_ERROR;
        }

        ngx_memcpy(data, buf, NGX_HTTP_OMNI_ENV_LEN);
        ngx_memcpy(data + NGX_HTTP_OMNI_ENV_LEN, rec, rlen);

        /* the message takes a copy */
        s = natsMsg_Create(&m, ngx_http_omni_cl.subject, NULL,
                           (const char *) data, NGX_HTTP_OMNI_ENV_LEN + rlen);
        free(data);

        if (s != NATS_OK) {
            return ngx_http_omni_cluster_fail(err, len, "message", s);
        }

        ngx_snprintf(id, sizeof(id) - 1, "%V-%016xL-%uL%Z", &cf->node,
                     qu->id, pos);

        s = natsMsgHeader_Set(m, "Nats-Msg-Id", (const char *) id);

        if (s == NATS_OK) {
            s = js_PublishMsgAsync(ngx_http_omni_cl.js, &m, NULL);
        }

        if (s != NATS_OK) {
            natsMsg_Destroy(m);
            return ngx_http_omni_cluster_fail(err, len, "publish", s);
        }

        n++;
    }

    if (n == 0) {
        return NGX_OK;
    }

    if (ngx_http_omni_cluster_complete(err, len) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_omni_metrics_cluster_published(n);

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
            return;
        }
    }

    ngx_add_timer(ev, NGX_HTTP_OMNI_CONSUME_IDLE);
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
        snprintf(err, len, "this node's store holds the stream up to "
                 "sequence %llu, and the stream now begins at %llu "
                 "(retention removed the records between): bootstrap this "
                 "node from a peer's store (docs/cluster.md), it applies "
                 "nothing more until then",
                 (unsigned long long) ngx_http_omni_cl.applied,
                 (unsigned long long) si->State.FirstSeq);
        jsStreamInfo_Destroy(si);
        ngx_http_omni_cl.behind = 1;
        return NGX_ERROR;
    }

    jsStreamInfo_Destroy(si);

    /*
     * A consumer of the moment, made anew from the store's sequence
     * whenever this node subscribes: the store's sequence is the truth,
     * not a consumer's, so one lost with its server costs only a new one.
     * Not durable (no name two generations of workers would fight over,
     * nothing to delete first), one replica in memory (made at once, no
     * election among servers); the server removes it 30 s after its last
     * fetch.
     */
    jsSubOptions_Init(&so);
    so.Stream = (const char *) cf->stream.data;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = ngx_http_omni_cl.applied + 1;
    so.Config.AckPolicy = js_AckAll;
    so.Config.MaxAckPending = 65536;
    so.Config.Replicas = 1;
    so.Config.MemoryStorage = true;
    so.Config.InactiveThreshold = NGX_HTTP_OMNI_CONSUMER_IDLE;

    s = js_PullSubscribe(&ngx_http_omni_cl.sub, ngx_http_omni_cl.js,
                         ngx_http_omni_cl.filter, NULL, NULL, &so, &jerr);

    if (s != NATS_OK) {
        ngx_http_omni_cl.sub = NULL;
        return ngx_http_omni_cluster_fail(err, len, "the consumer", s);
    }

    ngx_http_omni_cl.fresh = 1;

    return NGX_OK;
}


static void
ngx_http_omni_cluster_thread(void *data, ngx_log_t *log)
{
    ngx_http_omni_ctask_t  *c = data;

    int                     rc;
    u_char                 *p, *rec;
    size_t                  total, off;
    uint32_t                rlen;
    uint64_t                seq, last, end;
    natsMsg                *m, *lastmsg;
    natsStatus              s;
    jsErrCode               jerr;
    int                     ask, pending;
    ngx_uint_t              i, k, n, njobs, own;
    uint64_t                gap, zone, pos;
    uint32_t                magic;
    natsMsgList             list;
    omni_batch_t            b;
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

    /*
     * libnats 3.4.1's fetch (Debian 12) stops collecting when its count
     * equals the request's batch, which it lowers by what it took from
     * the subscription's queue before asking the server: with more than
     * half a batch already queued (messages of an earlier fetch's pull
     * request that came after that fetch timed out) the count passes the
     * lowered batch, never equals it, and the fetch writes past its array
     * of batch pointers until it times out (heap corruption: the signal 6
     * of bench/cluster.sh under load; fixed upstream by keeping the
     * original batch).  So a fetch asks exactly what is queued, when
     * something is: it takes all of it from the queue and asks the
     * server nothing.
     */
    ask = NGX_HTTP_OMNI_FETCH_ASK;

    if (natsSubscription_GetPending(ngx_http_omni_cl.sub, &pending, NULL)
        == NATS_OK
        && pending > 0)
    {
        ask = ngx_min(pending, NGX_HTTP_OMNI_FETCH_ASK);
    }

    s = natsSubscription_Fetch(&list, ngx_http_omni_cl.sub, ask,
                               NGX_HTTP_OMNI_FETCH_WAIT, &jerr);

    if (s == NATS_TIMEOUT) {
        /*
         * Nothing new, most likely.  Every 10 empty fetches (0.5 s) the
         * stream is asked: when it holds more than the store, the
         * consumer is stuck (its server gone) and is made again.
         */
        if (++ngx_http_omni_cl.idle % NGX_HTTP_OMNI_STUCK_FETCHES == 0) {
            jsStreamInfo  *si = NULL;

            if (js_GetStreamInfo(&si, ngx_http_omni_cl.js,
                                 (const char *)
                                     ngx_http_omni_cl.conf->stream.data,
                                 NULL, &jerr)
                == NATS_OK)
            {
                ngx_http_omni_cl.stream_last = si->State.LastSeq;

                if (si->State.LastSeq > ngx_http_omni_cl.applied) {
                    natsSubscription_Destroy(ngx_http_omni_cl.sub);
                    ngx_http_omni_cl.sub = NULL;
                }

                jsStreamInfo_Destroy(si);
            }
        }

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
        natsSubscription_Destroy(ngx_http_omni_cl.sub);
        ngx_http_omni_cl.sub = NULL;
        return;
    }

    qu = ngx_http_omni_queue();

    if (list.Count > ask) {
        /* the library's array overflowed (above): say so, loudly */
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "omni: cluster: a fetch of %d message(s) returned %d",
                      ask, list.Count);
        list.Count = ask;
        natsSubscription_Destroy(ngx_http_omni_cl.sub);
        ngx_http_omni_cl.sub = NULL;
    }

    /* the records, back to back: a ring the queue's decoder reads */
    total = 0;

    for (i = 0; i < (ngx_uint_t) list.Count; i++) {
        total += ngx_align(natsMsg_GetDataLength(list.Msgs[i]), 8);
    }

    c->fake = ngx_alloc(sizeof(ngx_http_omni_queue_t) + total + 8, log);
    if (c->fake == NULL) {
        natsMsgList_Destroy(&list);
        c->rc = OMNI_ERROR;
        return;
    }

    ngx_memzero(c->fake, sizeof(ngx_http_omni_queue_t));
    c->fake->size = total + 8;

    off = 0;
    last = 0;
    lastmsg = NULL;
    n = 0;
    njobs = 0;

    gap = 0;

    for (i = 0; i < (ngx_uint_t) list.Count; i++) {
        m = list.Msgs[i];

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
         * The stream's sequences are contiguous (every subject of it is
         * this node's): a message after a gap came out of order, the one
         * missing was delivered to a pull request that expired, or lost
         * with a consumer's leader, and comes again only after the ack
         * wait; acknowledging past it (AckAll) would lose it for good.
         * What precedes the gap is applied, the rest comes again from a
         * new consumer at the store's sequence.  A new consumer's first
         * message may follow a gap: it is the stream's first after the
         * store's sequence.
         */
        if (seq != (last ? last : ngx_http_omni_cl.applied) + 1
            && !(last == 0 && ngx_http_omni_cl.fresh))
        {
            gap = seq;
            break;
        }

        last = seq;
        lastmsg = m;
        p = (u_char *) natsMsg_GetData(m);

        /* the envelope, copied out: a message's data is not aligned */
        if (natsMsg_GetDataLength(m) >= NGX_HTTP_OMNI_ENV_LEN + 8) {
            ngx_memcpy(&magic, p, sizeof(uint32_t));
            ngx_memcpy(&zone, p + 8, sizeof(uint64_t));
            ngx_memcpy(&pos, p + 16, sizeof(uint64_t));

        } else {
            magic = 0;
        }

        if (magic != NGX_HTTP_OMNI_ENV_MAGIC) {
            continue;                   /* not a record of ours */
        }

        rec = p + NGX_HTTP_OMNI_ENV_LEN;
        ngx_memcpy(&rlen, rec, sizeof(uint32_t));

        if (rlen < 8 || rlen
            > (uint32_t) natsMsg_GetDataLength(m) - NGX_HTTP_OMNI_ENV_LEN)
        {
            continue;
        }

        own = (qu && zone == qu->id);

        if (own) {
            end = pos + rlen;
            c->own_end = ngx_max(c->own_end, end);
        }

        if (rec[4] == 2 && njobs < NGX_HTTP_OMNI_FETCH_MAX) {
            owns[njobs++] = (u_char) own;
        }

        ngx_memcpy(c->fake->ring + off, rec, rlen);
        off += rlen;
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
        rc = omni_batch_apply(ngx_http_omni_worker_store(), &opts, &b);

        if (rc == OMNI_MAP_RESIZED || rc == OMNI_MAP_FULL) {
            (void) omni_store_set_map_size(ngx_http_omni_worker_store(), 0);
            rc = omni_batch_apply(ngx_http_omni_worker_store(), &opts, &b);
        }
    }

    free(groups);

    if (rc != OMNI_OK) {
        snprintf(c->err, sizeof(c->err), "applying the stream failed: %s",
                 omni_store_error(ngx_http_omni_worker_store()));
        c->rc = rc;

        /* from the store's sequence again, with a new consumer */
        natsSubscription_Destroy(ngx_http_omni_cl.sub);
        ngx_http_omni_cl.sub = NULL;
        natsMsgList_Destroy(&list);
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

    if (lastmsg) {
        (void) natsMsg_Ack(lastmsg, NULL);
    }

    ngx_http_omni_cl.more = (list.Count >= ask);

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
        natsSubscription_Destroy(ngx_http_omni_cl.sub);
        ngx_http_omni_cl.sub = NULL;
        ngx_http_omni_cl.more = 1;
    }

    natsMsgList_Destroy(&list);
}


/* On the event loop: answer this node's jobs, give back ring space. */
static void
ngx_http_omni_cluster_done(ngx_event_t *ev)
{
    ngx_http_omni_ctask_t  *c = ev->data;

    ngx_http_omni_cl.busy = 0;

    ngx_http_omni_metrics_cluster_consumed(c->rc, c->err[0] != '\0',
                                           c->nmsgs, c->ntouches,
                                           c->commit_s, c->merges);
    ngx_http_omni_metrics_cluster_state(c->connected,
                                        ngx_http_omni_cl.applied,
                                        ngx_http_omni_cl.stream_last,
                                        ngx_http_omni_cl.behind);

    if (c->ckpt) {
        ngx_http_omni_writer_ckpt_begun(c->ckpt_begun);
        c->ckpt = 0;
        c->ckpt_begun = 0;
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

    /* at once while the stream has more; otherwise at the next tick */
    if (ngx_http_omni_cl.more && c->rc == OMNI_OK) {
        ngx_http_omni_cluster_tick(&ngx_http_omni_cl.tick);
        return;
    }

    if (!ngx_http_omni_cl.tick.timer_set) {
        ngx_add_timer(&ngx_http_omni_cl.tick,
                      c->rc == OMNI_OK ? NGX_HTTP_OMNI_CONSUME_IDLE : 250);
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

    if (qu && c->rc == OMNI_OK && c->own_end > qu->head
        && c->own_end <= qu->appended)
    {
        ngx_http_omni_queue_folded(qu, c->own_end);
    }

    if (c->fake) {
        ngx_free(c->fake);
        c->fake = NULL;
    }
}
