/*
 * ngx_omni_module: what the cluster's runtime files share
 * (ngx_http_omni_cluster.c: the connection, the lifecycle and the
 * consumer; ngx_http_omni_cluster_pub.c: publishing).  Everything here
 * is the lease holder's, used by its event loop and its pool threads.
 */

#ifndef _NGX_HTTP_OMNI_CLUSTER_INT_H_INCLUDED_
#define _NGX_HTTP_OMNI_CLUSTER_INT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <nats/nats.h>

#include "ngx_http_omni_cluster.h"
#include "omni_batch.h"
#include "omni_cmsg.h"


#define NGX_HTTP_OMNI_RUN_RECORDS  NGX_HTTP_OMNI_CLUSTER_BATCH /* per message */
/* uncompressed at most, within NATS's default max_payload (1 MB) */
#define NGX_HTTP_OMNI_RUN_BYTES    (512 * 1024)     /* per message */


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

    /* the publisher's (the writer task's) */
    omni_cmsg_t           *runs;            /* of the range published */
    ngx_uint_t             nruns;           /* allocated */
    u_char                *buf;             /* a message's data */
    size_t                 buf_size;
    omni_cmsg_zctx_t      *zpub;            /* compress= on */
    ngx_uint_t             round;           /* of sending, for the ids */
    ngx_uint_t             sent;            /* a run was stored */

    uint64_t               own_end;         /* own records applied up to */
    uint64_t               ev_end;          /* own event jobs published
                                               up to (the event loop's) */
    ngx_msec_t             taken;           /* the last take's start */
    omni_cmsg_zctx_t      *zcon;            /* the consumer's, inflating */
} ngx_http_omni_cluster_t;


extern ngx_http_omni_cluster_t  ngx_http_omni_cl;


/* err gets "what: libnats's status (its last error)"; NGX_ERROR. */
ngx_int_t ngx_http_omni_cluster_fail(char *err, size_t len,
    const char *what, natsStatus s);

/* The connection and the JetStream context, made by the first caller. */
ngx_int_t ngx_http_omni_cluster_connect(char *err, size_t len);

/* libnats's reply thread: a message JetStream refused. */
void ngx_http_omni_cluster_pub_error(jsCtx *js, jsPubAckErr *pae,
    void *closure);


#endif /* _NGX_HTTP_OMNI_CLUSTER_INT_H_INCLUDED_ */
