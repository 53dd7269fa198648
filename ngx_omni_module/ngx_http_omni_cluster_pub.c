/*
 * The cluster's publishing (docs/cluster.md "Data path"), in the writer
 * task of the worker that holds the store's writer lease: what the
 * workers queued goes to the stream as runs of consecutive records
 * (omni_cmsg.h), and the writer waits until JetStream has stored them
 * all, sending again what it refused or did not acknowledge, with every
 * run after it.
 */

#include "ngx_http_omni_module.h"
#include "ngx_http_omni_metrics.h"
#include "ngx_http_omni_cluster_int.h"


#define NGX_HTTP_OMNI_PUB_TRY      250              /* ms per wait */
#define NGX_HTTP_OMNI_PUB_PAUSE    50               /* ms after refusals */


/*
 * What JetStream refused, from libnats's reply thread to the publisher:
 * the earliest run refused (its prev position) and the last error.
 */
static struct {
    pthread_mutex_t        mu;
    ngx_uint_t             n;               /* since the publisher looked */
    uint64_t               prev;            /* the earliest run's */
    natsStatus             err;             /* the last one's */
    jsErrCode              code;
} ngx_http_omni_cl_refused = { PTHREAD_MUTEX_INITIALIZER, 0, 0, NATS_OK, 0 };


/*
 * A message JetStream refused (no stream leader during an election, a
 * server gone): libnats's reply thread calls this.  The publisher sends
 * the run again, with every run after it (omni_cmsg.h: a run after a
 * hole is skipped by every node), until its timeout; libnats frees the
 * message.
 */
void
ngx_http_omni_cluster_pub_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    omni_cmsg_t   m;
    const char   *e;

    if (pae->Msg == NULL
        || omni_cmsg_parse((const u_char *) natsMsg_GetData(pae->Msg),
                           natsMsg_GetDataLength(pae->Msg), &m, &e)
           != OMNI_OK)
    {
        return;
    }

    pthread_mutex_lock(&ngx_http_omni_cl_refused.mu);

    if (ngx_http_omni_cl_refused.n++ == 0
        || m.prev < ngx_http_omni_cl_refused.prev)
    {
        ngx_http_omni_cl_refused.prev = m.prev;
    }

    ngx_http_omni_cl_refused.err = pae->Err;
    ngx_http_omni_cl_refused.code = pae->ErrCode;

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



/*
 * Sends runs[i..n) (omni_cmsg.h), each one message to the node's
 * subject with Nats-Msg-Id <node>-<zone>-<prev>-<to>-<pid>.<round>: a
 * round sends again what the last one could not, under new ids, since
 * every node skipped the copies that came after a hole.
 */
static ngx_int_t
ngx_http_omni_cluster_send(ngx_uint_t i, ngx_uint_t n, ngx_uint_t round,
    char *err, size_t len)
{
    size_t                         size;
    natsMsg                       *msg;
    natsStatus                     s;
    omni_cmsg_t                   *m;
    ngx_http_omni_cluster_conf_t  *cf;
    u_char                         id[160];

    cf = ngx_http_omni_cl.conf;

    for ( /* void */ ; i < n; i++) {
        m = &ngx_http_omni_cl.runs[i];
        size = omni_cmsg_bound(m);

        if (size > ngx_http_omni_cl.buf_size) {
            free(ngx_http_omni_cl.buf);
            ngx_http_omni_cl.buf = malloc(size);

            if (ngx_http_omni_cl.buf == NULL) {
                ngx_http_omni_cl.buf_size = 0;
                snprintf(err, len, "out of memory");
                return NGX_ERROR;
            }

            ngx_http_omni_cl.buf_size = size;
        }

        if (cf->compress && ngx_http_omni_cl.zpub == NULL) {
            /* NULL (no memory): sent as they are */
            ngx_http_omni_cl.zpub = omni_cmsg_zctx_create();
        }

        size = omni_cmsg_encode(ngx_http_omni_cl.buf, m,
                                (const char *) cf->node.data, cf->node.len,
                                cf->compress ? ngx_http_omni_cl.zpub : NULL);

        /* the message takes a copy */
        s = natsMsg_Create(&msg, ngx_http_omni_cl.subject, NULL,
                           (const char *) ngx_http_omni_cl.buf, (int) size);
        if (s != NATS_OK) {
            return ngx_http_omni_cluster_fail(err, len, "message", s);
        }

        ngx_snprintf(id, sizeof(id) - 1, "%V-%016xL-%uL-%uL-%P.%ui%Z",
                     &cf->node, m->zone, m->prev, m->to, ngx_pid, round);

        s = natsMsgHeader_Set(msg, "Nats-Msg-Id", (const char *) id);

        if (s == NATS_OK) {
            s = js_PublishMsgAsync(ngx_http_omni_cl.js, &msg, NULL);
        }

        if (s != NATS_OK) {
            natsMsg_Destroy(msg);
            return ngx_http_omni_cluster_fail(err, len, "publish", s);
        }
    }

    return NGX_OK;
}


/* The index of the run that follows position prev (runs are in order). */
static ngx_uint_t
ngx_http_omni_cluster_run_at(ngx_uint_t n, uint64_t prev)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        if (ngx_http_omni_cl.runs[i].to > prev) {
            return i;
        }
    }

    return n;
}


/*
 * Sends runs[i..n) and waits for JetStream's acknowledgements, for at
 * most timeout= in all, in tries of NGX_HTTP_OMNI_PUB_TRY.  What was
 * refused (no stream leader while it elects one) or is still
 * unacknowledged after a try (sent to a server that died, whose
 * connection libnats has moved to another) goes again, with every run
 * after it: a server's death costs the events in flight some latency,
 * not a 503.
 */
static ngx_int_t
ngx_http_omni_cluster_complete(ngx_uint_t i, ngx_uint_t n, char *err,
    size_t len)
{
    int64_t        deadline, left;
    uint64_t       again;
    natsStatus     s, last;
    omni_cmsg_t    m;
    const char    *e;
    jsErrCode      code;
    ngx_uint_t     k, round, refused;
    jsPubOptions   po;
    natsMsgList    pending;

    deadline = ngx_http_omni_cluster_now()
               + (int64_t) ngx_http_omni_cl.conf->timeout;
    last = NATS_OK;
    code = 0;

    pthread_mutex_lock(&ngx_http_omni_cl_refused.mu);
    ngx_http_omni_cl_refused.n = 0;
    pthread_mutex_unlock(&ngx_http_omni_cl_refused.mu);

    for (round = 0; /* void */; round++) {

        if (ngx_http_omni_cluster_send(i, n, ngx_http_omni_cl.round++, err,
                                       len)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        left = deadline - ngx_http_omni_cluster_now();

        jsPubOptions_Init(&po);
        po.MaxWait = ngx_max(ngx_min(left, NGX_HTTP_OMNI_PUB_TRY), 1);

        s = js_PublishAsyncComplete(ngx_http_omni_cl.js, &po);

        /* the earliest run refused, from the error handler */
        pthread_mutex_lock(&ngx_http_omni_cl_refused.mu);

        refused = ngx_http_omni_cl_refused.n;
        again = ngx_http_omni_cl_refused.prev;

        if (refused) {
            last = ngx_http_omni_cl_refused.err;
            code = ngx_http_omni_cl_refused.code;
            ngx_http_omni_cl_refused.n = 0;
        }

        pthread_mutex_unlock(&ngx_http_omni_cl_refused.mu);

        if (s == NATS_OK && refused == 0) {
            return NGX_OK;
        }

        if (s != NATS_OK && s != NATS_TIMEOUT) {
            last = s;
            break;
        }

        /* the unacknowledged ones: libnats forgets them, they go again */
        if (s == NATS_TIMEOUT) {
            last = NATS_TIMEOUT;

            if (js_PublishAsyncGetPendingList(&pending, ngx_http_omni_cl.js)
                == NATS_OK)
            {
                for (k = 0; k < (ngx_uint_t) pending.Count; k++) {
                    if (omni_cmsg_parse((const u_char *)
                                            natsMsg_GetData(pending.Msgs[k]),
                                        natsMsg_GetDataLength(pending.Msgs[k]),
                                        &m, &e)
                        == OMNI_OK
                        && (refused == 0 || m.prev < again))
                    {
                        again = m.prev;
                        refused = 1;
                    }
                }

                natsMsgList_Destroy(&pending);
            }
        }

        if (refused == 0) {
            /* a timeout with nothing pending: the acks came just then */
            return NGX_OK;
        }

        i = ngx_http_omni_cluster_run_at(n, again);

        left = deadline - ngx_http_omni_cluster_now();

        if (i >= n || left <= 0) {
            break;
        }

        /* no leader to take them yet: a pause, not a busy loop */
        if (last != NATS_TIMEOUT) {
            ngx_msleep((ngx_msec_t) ngx_min(left, NGX_HTTP_OMNI_PUB_PAUSE));
        }
    }

    /* what is left unacknowledged goes again with the writer's next try */
    if (js_PublishAsyncGetPendingList(&pending, ngx_http_omni_cl.js)
        == NATS_OK)
    {
        natsMsgList_Destroy(&pending);
    }

    if (last == NATS_TIMEOUT || code == 0) {
        snprintf(err, len, "no acknowledgement from JetStream within %lums "
                 "(%lu tries; last: %s)",
                 (unsigned long) ngx_http_omni_cl.conf->timeout,
                 (unsigned long) round + 1,
                 last == NATS_TIMEOUT ? "no answer"
                                      : natsStatus_GetText(last));

    } else {
        snprintf(err, len, "no acknowledgement from JetStream within %lums "
                 "(%lu tries; last: %s, JetStream error %d)",
                 (unsigned long) ngx_http_omni_cl.conf->timeout,
                 (unsigned long) round + 1, natsStatus_GetText(last),
                 (int) code);
    }

    return NGX_ERROR;
}


/*
 * Publishes the queue's records in [from, to) as runs (omni_cmsg.h) of
 * at most NGX_HTTP_OMNI_RUN_RECORDS records and NGX_HTTP_OMNI_RUN_BYTES
 * bytes, and waits until JetStream has stored them all.  *covered gets
 * the position up to which the range is published: a pad record at its
 * end waits for the record after it, so that every run follows the
 * previous one's end.
 */
ngx_int_t
ngx_http_omni_cluster_publish(ngx_http_omni_queue_t *qu, uint64_t from,
    uint64_t to, uint64_t *covered, char *err, size_t len)
{
    int            rc;
    void          *a;
    uint64_t       pos;
    omni_cmsg_t    m;
    const char    *e;
    ngx_uint_t     n, first, records;

    *covered = from;

    if (from >= to) {
        return NGX_OK;
    }

    if (ngx_http_omni_cluster_connect(err, len) != NGX_OK) {
        return NGX_ERROR;
    }

    n = 0;

    for (pos = from; pos < to; pos = m.to) {
        rc = omni_cmsg_span(qu->ring, qu->size, pos, to,
                            NGX_HTTP_OMNI_RUN_RECORDS,
                            NGX_HTTP_OMNI_RUN_BYTES, &m, &e);

        if (rc == OMNI_NOTFOUND) {
            break;
        }

        if (rc != OMNI_OK) {
            snprintf(err, len, "%s at %llu", e, (unsigned long long) pos);
            return NGX_ERROR;
        }

        m.zone = qu->id;

        if (n == ngx_http_omni_cl.nruns) {
            a = realloc(ngx_http_omni_cl.runs,
                        (n * 2 + 16) * sizeof(omni_cmsg_t));
            if (a == NULL) {
                snprintf(err, len, "out of memory");
                return NGX_ERROR;
            }

            ngx_http_omni_cl.runs = a;
            ngx_http_omni_cl.nruns = n * 2 + 16;
        }

        ngx_http_omni_cl.runs[n++] = m;
    }

    if (n == 0) {
        return NGX_OK;
    }

    /*
     * This process's first run goes alone: the zone's first run in the
     * stream is then one that nothing before it is missing from, which
     * is where every node starts the zone (omni_cmsg_start()).
     */
    first = 0;

    if (!ngx_http_omni_cl.sent) {
        if (ngx_http_omni_cluster_complete(0, 1, err, len) != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_http_omni_cl.sent = 1;
        first = 1;
    }

    if (first < n
        && ngx_http_omni_cluster_complete(first, n, err, len) != NGX_OK)
    {
        return NGX_ERROR;
    }

    *covered = ngx_http_omni_cl.runs[n - 1].to;

    for (records = 0, first = 0; first < n; first++) {
        records += ngx_http_omni_cl.runs[first].nrec;
    }

    ngx_http_omni_metrics_cluster_published(n, records);

    return NGX_OK;
}
