/*
 * ngx_omni_module: the cluster (issue 13), nodes sharing profiles and
 * touchpoints through a NATS JetStream stream.
 *
 *   ngx_http_omni_cluster_conf.c  the omni_cluster directive, checked at
 *                                 nginx -t without connecting
 *   ngx_http_omni_cluster.c       the runtime: the connection, the
 *                                 lifecycle, the consumer
 *   ngx_http_omni_cluster_pub.c   publishing the queue's records
 *
 * Without omni_cluster, ngx_http_omni_main_conf_t.cluster is NULL and the
 * module is a single host.
 */

#ifndef _NGX_HTTP_OMNI_CLUSTER_H_INCLUDED_
#define _NGX_HTTP_OMNI_CLUSTER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


#define NGX_HTTP_OMNI_CLUSTER_NAME_MAX   32     /* node=, stream= */


typedef struct {
    ngx_array_t   *servers;    /* ngx_str_t, each "nats://host:port" or
                                  "tls://host:port", NUL-terminated */
    ngx_str_t      urls;       /* all of them joined with ",",
                                  NUL-terminated, for log lines: libnats
                                  3.4's natsOptions_SetURL() takes ONE
                                  URL (a list fails to connect); give
                                  server_urls to natsOptions_SetServers() */
    ngx_str_t      stream;     /* default "OMNI"; [A-Za-z0-9_-]{1,32} */
    ngx_str_t      node;       /* required; [A-Za-z0-9_-]{1,32} */
    ngx_str_t      creds, nkey, tls_ca, tls_cert, tls_key;
                               /* NUL-terminated absolute paths, or empty;
                                  relative ones are resolved against the
                                  configuration prefix (like
                                  ssl_certificate) */
    ngx_uint_t     replicas;   /* default 3, 1..5 */
    time_t         max_age;    /* seconds, default 7d; 0 = no limit */
    off_t          max_bytes;  /* default 1g; 0 = no limit */
    ngx_msec_t     flush;      /* page views published at most once
                                  per flush (at once in a quiet
                                  cluster); default 50ms */
    ngx_msec_t     timeout;    /* how long a durable event waits for
                                  JetStream's ack; default 2s */
    ngx_flag_t     compress;   /* runs compressed ("OMC3"); default on */
    unsigned       tls:1;      /* any tls:// URL, or tls_* given */

    /* added to the agreed struct */
    ngx_str_t      nkey_public; /* the public key ("U...", 56 characters,
                                   NUL-terminated) of the nkey= seed, for
                                   natsOptions_SetNKeyFromSeed(); empty
                                   without nkey= */
    const char   **server_urls; /* servers as a C array of
                                   servers->nelts strings, for
                                   natsOptions_SetServers() */
    ngx_str_t      file;        /* where omni_cluster was configured */
    ngx_uint_t     line;
} ngx_http_omni_cluster_conf_t;


/* the omni_cluster directive (http, once) */
/*
 * A cluster node's writer publishes at once when this many touches are
 * queued (else once per flush=), and a run holds up to as many: each
 * message costs JetStream's three servers about the same whatever its
 * size, so fewer, fuller messages (a single host batches at 256).
 */
#define NGX_HTTP_OMNI_CLUSTER_BATCH  4096


char *ngx_http_omni_cluster(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/*
 * What needs the whole http block (omni_cluster requires omni_store);
 * called from ngx_http_omni_conf_check().
 */
char *ngx_http_omni_cluster_conf_check(ngx_conf_t *cf);

/* The running configuration's cluster, NULL without omni_cluster. */
ngx_http_omni_cluster_conf_t *ngx_http_omni_cluster_conf(ngx_cycle_t *cycle);


#endif /* _NGX_HTTP_OMNI_CLUSTER_H_INCLUDED_ */
