/*
 * Prometheus metrics (ngx_http_omni_metrics.c): counters in the
 * "omni_metrics" shared zone, summed across workers by construction, and
 * the omni_metrics endpoint that prints them.  docs/metrics.md lists
 * every metric.
 *
 * Every function here is safe to call when the zone is missing (a
 * process that is not a worker, or before init_process): it counts
 * nothing.
 */

#ifndef NGX_HTTP_OMNI_METRICS_H
#define NGX_HTTP_OMNI_METRICS_H

#include "ngx_http_omni_module.h"


/* omni_events_rejected_total{reason=...} */
#define NGX_HTTP_OMNI_REJ_INVALID       0
#define NGX_HTTP_OMNI_REJ_FORBIDDEN     1
#define NGX_HTTP_OMNI_REJ_UNAUTHORIZED  2
#define NGX_HTTP_OMNI_REJ_METHOD        3
#define NGX_HTTP_OMNI_REJ_MEDIA_TYPE    4
#define NGX_HTTP_OMNI_REJ_TOO_LARGE     5
#define NGX_HTTP_OMNI_REJ_QUEUE_FULL    6
#define NGX_HTTP_OMNI_REJ_UNAVAILABLE   7
#define NGX_HTTP_OMNI_REJ_MAX           8


char *ngx_http_omni_metrics_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
/* postconfiguration: the zone and the log-phase counter */
ngx_int_t ngx_http_omni_metrics_init(ngx_conf_t *cf);
ngx_int_t ngx_http_omni_metrics_init_worker(ngx_cycle_t *cycle);

/* the writer, on the event loop: one batch's outcome */
void ngx_http_omni_metrics_batch(int rc, ngx_uint_t touches,
    double commit_s, ngx_uint_t merges);
/* the writer: one event job's results (status[] valid when ok) */
void ngx_http_omni_metrics_job(omni_event_batch_t *b, int *status,
    ngx_uint_t ok);

/* event ingest: a refused request (its HTTP status), refused events */
void ngx_http_omni_metrics_event_refused(ngx_uint_t status,
    const char *field);
void ngx_http_omni_metrics_events_parsed(omni_event_batch_t *b);

/* rules: a set loaded (its signature) or a change that failed */
void ngx_http_omni_metrics_rules(uint64_t sig, ngx_uint_t failed);

/* a rule's counters (the console): totals, and today's (UTC) */
typedef struct {
    uint64_t    decisions;
    uint64_t    impressions;
    uint64_t    holdouts;
    uint64_t    impressions_today;
    uint64_t    holdouts_today;
} ngx_http_omni_rule_counts_t;

void ngx_http_omni_metrics_rule(const char *id, size_t len,
    ngx_http_omni_rule_counts_t *out);

/* geo: one lookup, found or not */
void ngx_http_omni_metrics_geo(ngx_uint_t found);

/*
 * The cluster (ngx_http_omni_cluster.c): messages JetStream acknowledged
 * (the publish, in a pool thread); one consume task's outcome, on the
 * event loop (messages, touches, commit time and merges applied, or a
 * failure); the lease holder's view of the stream and of its NATS
 * connection.  Without omni_cluster the writer's batches count as
 * before; with it the consumer's transactions are the batches.
 */
void ngx_http_omni_metrics_cluster_published(ngx_uint_t messages,
    ngx_uint_t records);
void ngx_http_omni_metrics_cluster_consumed(int rc, ngx_uint_t failed,
    ngx_uint_t messages, ngx_uint_t skipped, ngx_uint_t touches,
    double commit_s, ngx_uint_t merges);
void ngx_http_omni_metrics_cluster_state(ngx_uint_t connected,
    uint64_t applied, uint64_t last, ngx_uint_t behind);

#endif /* NGX_HTTP_OMNI_METRICS_H */
