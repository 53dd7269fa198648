/*
 * ngx_omni_module: declarations shared by the nginx glue files.
 *
 *   ngx_http_omni_module.c    directives, conf create/merge, lifecycle
 *   ngx_http_omni_identity.c  signed cookie and app token, variables
 *   ngx_http_omni_store.c     per-worker LMDB handle, reader checks, lookups
 *   ngx_http_omni_queue.c     the shared touch queue and the writer lease
 *   ngx_http_omni_writer.c    the writer task (thread pool, group commit)
 *   ngx_http_omni_api.c       HTTP endpoints (omni_identify, omni_decide,
 *                             omni_admin_decide, omni_feed)
 *   ngx_http_omni_events.c    event ingest (omni_events, server keys,
 *                             upstream X-Omni-Event signals)
 *
 * Everything that decides or encodes lives in core/ (plain C, no nginx
 * types), shared with omnictl.
 */

#ifndef NGX_HTTP_OMNI_MODULE_H
#define NGX_HTTP_OMNI_MODULE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "omni_core.h"
#include "omni_record.h"
#include "omni_token.h"
#include "omni_store.h"
#include "omni_update.h"
#include "omni_batch.h"
#include "omni_rules.h"
#include "omni_scan.h"
#include "omni_event.h"

#include "ngx_http_omni_cluster.h"


#define NGX_HTTP_OMNI_ID_NONE     0
#define NGX_HTTP_OMNI_ID_COOKIE   1
#define NGX_HTTP_OMNI_ID_TOKEN    2
#define NGX_HTTP_OMNI_ID_NEW      3

#define NGX_HTTP_OMNI_ACT_MAX     8      /* reservations per request */

#define NGX_HTTP_OMNI_SAMESITE_OFF     1
#define NGX_HTTP_OMNI_SAMESITE_STRICT  2
#define NGX_HTTP_OMNI_SAMESITE_LAX     3
#define NGX_HTTP_OMNI_SAMESITE_NONE    4


/* Where a directive was configured, for errors found after the block. */
/* omni_token_rejected */
#define NGX_HTTP_OMNI_REJECTED_401        0
#define NGX_HTTP_OMNI_REJECTED_ANONYMOUS  1


typedef struct {
    ngx_str_t                   name;           /* the directive */
    ngx_str_t                   file;
    ngx_uint_t                  line;           /* 0: not configured */
} ngx_http_omni_conf_ref_t;


typedef struct {
    omni_keyring_t              keyring;
    ngx_uint_t                  secrets;        /* configured count */

    ngx_str_t                   store_path;     /* empty: no store */
    size_t                      map_size;
    size_t                      map_max;
    ngx_uint_t                  max_readers;
    ngx_uint_t                  queue_size;
    ngx_msec_t                  fold;           /* fold interval */
    ngx_msec_t                  checkpoint;     /* store sync interval */
    ngx_msec_t                  reader_check;
    ngx_str_t                   thread_pool_name;
#if (NGX_THREADS)
    ngx_thread_pool_t          *thread_pool;
#endif
    ngx_shm_zone_t             *queue_zone;     /* ngx_http_omni_queue.c */
    ngx_uint_t                  activity;       /* activity entries */

    time_t                      visit_timeout;
    ngx_uint_t                  tp_max;         /* touchpoints kept */
    time_t                      tp_max_age;
    time_t                      anon_ttl;       /* 0: never expire */

    ngx_str_t                   rules_dir;      /* empty: no rules */
    ngx_msec_t                  rules_check;    /* 0: no timer */
    omni_ruleset_t             *rules;          /* compiled at config */
    omni_rules_files_t         *rules_files;    /* its texts */
    uint64_t                    rules_sig;

    ngx_str_t                   geoip_path;     /* empty: no geo */
    struct MMDB_s              *geoip;          /* opened at config */

    ngx_array_t                *event_keys;     /* omni_events_key */

    ngx_http_omni_cluster_conf_t *cluster;      /* omni_cluster; NULL: a
                                                   single host */

    /* checked once the http block is read (ngx_http_omni_conf.c) */
    ngx_http_omni_conf_ref_t    omni_on;        /* the first "omni on" */
    ngx_http_omni_conf_ref_t    signer;         /* the first endpoint that
                                                   needs omni_secret */
} ngx_http_omni_main_conf_t;


/* omni_consent_cookie: the CMP cookie's name, the key of each purpose */
typedef struct {
    ngx_str_t                   name;
    ngx_str_t                   key[5];         /* OMNI_CONSENT_* order */
    ngx_uint_t                  nkeys;
} ngx_http_omni_consent_cookie_t;

#define NGX_HTTP_OMNI_OPT_OUT       1
#define NGX_HTTP_OMNI_OPT_IN        2

#define NGX_HTTP_OMNI_SIGNAL_GPC    1           /* Sec-GPC: 1 */
#define NGX_HTTP_OMNI_SIGNAL_DNT    2           /* DNT: 1 */


typedef struct {
    ngx_flag_t                  enable;

    ngx_str_t                   cookie_name;
    ngx_str_t                   cookie_suffix;  /* "; Max-Age=...; ..." */
    ngx_uint_t                  cookie_set;     /* omni_cookie seen */

    ngx_str_t                   token_header;   /* lowercase */
    time_t                      token_ttl;
    ngx_int_t                   channel;        /* NGX_CONF_UNSET: auto */

    ngx_flag_t                  inject;         /* HTML injection */
    ngx_flag_t                  fallback;       /* unplaced banners */
    ngx_flag_t                  private_cache;  /* mark injected pages */
    ngx_str_t                   json_key;       /* decision in JSON APIs */
    ngx_array_t                *json_types_keys;
    ngx_hash_t                  json_types_hash;
    ngx_array_t                *types;          /* injected types */
    ngx_array_t                *types_keys;
    ngx_hash_t                  types_hash;

    size_t                      events_max_body; /* omni_events */
    ngx_uint_t                  events_ip;      /* omni_events ip=on */
    ngx_flag_t                  decide_explain; /* omni_decide explain= */
    ngx_uint_t                  console;        /* omni_console here */
    ngx_uint_t                  token_rejected; /* NGX_HTTP_OMNI_REJECTED_* */
    ngx_uint_t                  consent_model;  /* NGX_HTTP_OMNI_OPT_* */
    ngx_http_omni_consent_cookie_t *consent_cookie; /* NULL: none */
    ngx_flag_t                  upstream_events;
    ngx_array_t                *cors;           /* omni_cors origins
                                                   (ngx_str_t); NULL: off */
} ngx_http_omni_loc_conf_t;


/*
 * A job for the writer: events to apply durably.  The job goes to the
 * shared queue as its text (the request body or header value) and the
 * context it was parsed with; the writer, in whichever worker holds the
 * lease, parses it again and applies it.  The handler runs on this
 * worker's event loop once the transaction holding the events is
 * committed and synced (rc NGX_OK, status[] and pids[] filled), or has
 * failed for good (rc NGX_ERROR; full when the store is full).
 */
typedef struct ngx_http_omni_wjob_s  ngx_http_omni_wjob_t;
typedef void (*ngx_http_omni_wjob_pt)(ngx_http_omni_wjob_t *job);

struct ngx_http_omni_wjob_s {
    ngx_queue_t                 queue;          /* waiting for its result */
    uint64_t                    id;
    ngx_msec_t                  deadline;
    const u_char               *text;           /* parsed as batch */
    size_t                      len;
    omni_event_ctx_t            ec;
    omni_event_batch_t         *batch;          /* rc[i] != OK: skipped */
    int                        *status;         /* OMNI_EVENT_* per event */
    u_char                    (*pids)[OMNI_ID_LEN];
    ngx_uint_t                  nevents;        /* valid events */
    ngx_int_t                   rc;
    unsigned                    full:1;
    ngx_http_omni_wjob_pt       handler;
    void                       *data;
};


/*
 * The shared touch queue (ngx_http_omni_queue.c), at the start of the
 * "omni_store" zone.  head and tail are byte positions that never wrap.
 */
#define NGX_HTTP_OMNI_QREC_AVG  512     /* ring bytes per queue= touch */

typedef struct ngx_http_omni_act_s  ngx_http_omni_act_t;

typedef struct {
    ngx_atomic_t                lease;          /* the writer's pid */
    uint64_t                    id;             /* random, never 0 */
    size_t                      size;           /* of ring */
    volatile uint64_t           head;           /* folded up to: free
                                                   before it */
    volatile uint64_t           appended;       /* logged up to */
    volatile uint64_t           tail;           /* under the mutex */
    ngx_atomic_t                queued;         /* touches */
    ngx_atomic_t                consumed;       /* touches logged */
    ngx_atomic_t                dropped;        /* touches dropped */
    ngx_atomic_t                ev_queued;      /* event jobs */
    ngx_atomic_t                ev_consumed;

    /* the activity table (ngx_http_omni_activity.c), under the mutex */
    ngx_http_omni_act_t        *act;
    uint64_t                   *act_bucket;
    ngx_uint_t                  nact;           /* a power of two */
    uint64_t                    act_next;
    ngx_atomic_t                act_evicted;

    u_char                      ring[];
} ngx_http_omni_queue_t;


/* One rendered slot of a decision. */
typedef struct {
    ngx_str_t                   name;
    ngx_str_t                   html;
    ngx_uint_t                  placed;         /* injected at a marker */
} ngx_http_omni_slot_t;


/* The decision, rendered into the request pool. */
typedef struct {
    ngx_array_t                 slots;          /* ngx_http_omni_slot_t */
    ngx_str_t                   pixels;
    ngx_str_t                   json;           /* when asked for */
    ngx_str_t                   text;           /* email/SMS, admin only */
    ngx_str_t                   rules;          /* shown rule ids */
    ngx_str_t                   campaigns;      /* shown campaigns */
    ngx_str_t                   held;           /* rule ids held back by
                                                   their own holdout */
    ngx_array_t                 headers;        /* ngx_keyval_t */
    ngx_uint_t                  holdout;
    ngx_uint_t                  nshown;
} ngx_http_omni_decision_t;


/* Body filter state (ngx_http_sub_filter_module's model). */
typedef struct {
    omni_scan_t                 scan;
    ngx_chain_t                *in;
    ngx_chain_t                *out;
    ngx_chain_t               **last_out;
    ngx_chain_t                *busy;
    ngx_chain_t                *free;
    ngx_uint_t                  body_done;
    ngx_uint_t                  seen;           /* any body bytes yet */
    ngx_uint_t                  json;           /* JSON mode */
    ngx_uint_t                  json_state;     /* 0 start, 1 after '{' */

    /* file-backed pages (ngx_http_omni_marks.c) */
    void                       *marks;          /* the file's markers */
    ngx_uint_t                  file_mark;      /* the next one */
    off_t                       file_skip;      /* a replaced marker's end */
    ngx_uint_t                  mem_path;       /* read files into memory */
    ngx_uint_t                  file_scanned;   /* a pool thread scanned */
} ngx_http_omni_filter_ctx_t;

/*
 * The request's bit in r->buffered while a pool thread scans its file:
 * the image filter's (0x08), which never works on a page this module
 * injects into (HTML).
 */
#define NGX_HTTP_OMNI_SCAN_BUFFERED  0x08


typedef struct {
    ngx_uint_t                  identity;       /* NGX_HTTP_OMNI_ID_* */
    ngx_uint_t                  reason;         /* why a cookie failed */
    unsigned char               vid[OMNI_ID_LEN];
    unsigned char               pid[OMNI_ID_LEN];
    u_char                      vid_hex[OMNI_ID_HEX_LEN + 1];
    u_char                      pid_hex[OMNI_ID_HEX_LEN + 1];

    unsigned                    identified:1;
    unsigned                    resolved:1;
    unsigned                    found:1;        /* profile in the store */
    unsigned                    store_error:1;
    unsigned                    set_cookie:1;   /* issue or re-sign */
    unsigned                    touched:1;      /* touchpoint queued */
    unsigned                    refused:1;      /* a cookie or token was
                                                   refused (metrics) */
    unsigned                    token_auth:1;   /* the refused token came
                                                   as a bearer */
    const char                 *token_error;    /* an app token was
                                                   refused: why */

    unsigned                    decided:1;
    unsigned                    decided_json:1;
    unsigned                    impressions:1;  /* count what was shown */
    unsigned                    endpoint:1;     /* our own API answer */
    unsigned                    upstream_identity:1;
    unsigned                    pid_fixed:1;    /* admin: pid is given */
    unsigned                    want_text:1;    /* admin: email/SMS text */
    ngx_int_t                   channel;        /* admin: -1 or OMNI_CH_* */

    uint32_t                    visits;
    ngx_uint_t                  stage;

    /* impressions reserved in the activity table, settled when queued */
    uint64_t                    act_seq[NGX_HTTP_OMNI_ACT_MAX];
    ngx_uint_t                  nact;
    u_char                      country[3];     /* geo, if looked up */

    ngx_http_omni_decision_t   *decision;
    ngx_http_omni_filter_ctx_t *filter;
    omni_ruleset_t             *draft;          /* the console's "try this
                                                   rule": decide with it */
    unsigned                    anonymous:1;    /* decide with no profile
                                                   (a refused token) */

    /* JSON that replaces nginx's own error page (events endpoint) */
    ngx_str_t                   error_body;

    /* consent: the profile's (when read), the request's cookie */
    uint32_t                    consent_stored;
    uint32_t                    consent_req;
    unsigned                    consent_req_done:1;
    unsigned                    touch_bare:1;   /* caps only, no feed */
    unsigned                    signal:2;       /* NGX_HTTP_OMNI_SIGNAL_* */
} ngx_http_omni_ctx_t;


extern ngx_module_t  ngx_http_omni_module;


/* identity */
ngx_http_omni_ctx_t *ngx_http_omni_get_ctx(ngx_http_request_t *r,
    ngx_uint_t create);
ngx_http_omni_ctx_t *ngx_http_omni_identify(ngx_http_request_t *r);
ngx_int_t ngx_http_omni_add_variables(ngx_conf_t *cf);
ngx_int_t ngx_http_omni_register_variables(ngx_conf_t *cf,
    ngx_http_variable_t *vars);
ngx_table_elt_t *ngx_http_omni_header_in(ngx_http_request_t *r,
    u_char *name, size_t len);
ngx_int_t ngx_http_omni_set_cookie(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx);
ngx_uint_t ngx_http_omni_channel(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx);
char *ngx_http_omni_cookie(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_omni_secret(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_omni_merge_cookie(ngx_conf_t *cf,
    ngx_http_omni_loc_conf_t *prev, ngx_http_omni_loc_conf_t *conf);

/* configuration checks */
char *ngx_http_omni_enable(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
void ngx_http_omni_conf_need_secret(ngx_conf_t *cf);
char *ngx_http_omni_conf_check(ngx_conf_t *cf,
    ngx_http_omni_main_conf_t *mcf);

/* store */
char *ngx_http_omni_store(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_omni_store_init_module(ngx_cycle_t *cycle);
ngx_int_t ngx_http_omni_store_init_worker(ngx_cycle_t *cycle);
void ngx_http_omni_store_exit_worker(ngx_cycle_t *cycle);
ngx_int_t ngx_http_omni_resolve(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx);
int ngx_http_omni_lookup(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx,
    omni_store_t *st, omni_rec_t *rec);
omni_store_t *ngx_http_omni_worker_store(void);
ngx_int_t ngx_http_omni_read_begin(ngx_http_request_t *r, omni_store_t *st);
ngx_int_t ngx_http_omni_read_snap(omni_store_t *st, uint64_t queue_id,
    uint64_t *snap);
ngx_int_t ngx_http_omni_read_attr(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, ngx_str_t *key, ngx_str_t *value);

/* queue */
ngx_int_t ngx_http_omni_queue_add(ngx_conf_t *cf,
    ngx_http_omni_main_conf_t *mcf);
ngx_int_t ngx_http_omni_queue_init_worker(ngx_cycle_t *cycle);
void ngx_http_omni_queue_exit_worker(void);
ngx_http_omni_queue_t *ngx_http_omni_queue(void);
ngx_int_t ngx_http_omni_queue_touch(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, ngx_uint_t channel);
ngx_int_t ngx_http_omni_queue_job(ngx_http_omni_wjob_t *job,
    ngx_log_t *log);

/* An event job as the writer reads it from the queue. */
typedef struct {
    ngx_pid_t                   origin;
    uint64_t                    id;
    const u_char               *text;
    size_t                      len;
    omni_event_ctx_t            ec;
    uint32_t                    visit_timeout;
    const u_char               *ids;            /* messageIds: u16 index,
                                                   u8 length, bytes */
    ngx_uint_t                  nids;
    omni_event_batch_t          batch;
    int                        *status;
    u_char                    (*pids)[OMNI_ID_LEN];
    int                         parsed;
} ngx_http_omni_qjob_t;

void ngx_http_omni_queue_logged(ngx_http_omni_queue_t *qu, uint64_t pos,
    ngx_uint_t n);
ngx_uint_t ngx_http_omni_queue_read(ngx_http_omni_queue_t *qu,
    uint64_t from, uint64_t to, omni_touch_t *ops, ngx_uint_t max,
    ngx_http_omni_qjob_t *jobs, ngx_uint_t maxjobs, ngx_uint_t *njobs,
    uint32_t visit_timeout, uint64_t *end);
void ngx_http_omni_queue_folded(ngx_http_omni_queue_t *qu, uint64_t pos);
ngx_uint_t ngx_http_omni_queue_pending(ngx_http_omni_queue_t *qu);
ngx_uint_t ngx_http_omni_queue_holder(void);
void ngx_http_omni_queue_lock(void);
void ngx_http_omni_queue_unlock(void);
ngx_uint_t ngx_http_omni_lease_take(ngx_log_t *log);
void ngx_http_omni_lease_release(void);

/* activity */
size_t ngx_http_omni_activity_size(ngx_uint_t n);
ngx_int_t ngx_http_omni_activity_init(ngx_slab_pool_t *shpool,
    ngx_http_omni_queue_t *qu, ngx_uint_t n);
ngx_uint_t ngx_http_omni_activity_get(ngx_http_omni_queue_t *qu,
    const u_char *pid, uint64_t snap, omni_impr_extra_t *out, ngx_uint_t max);
void ngx_http_omni_activity_reserve(ngx_http_omni_queue_t *qu,
    const u_char *pid, const uint64_t *campaigns, ngx_uint_t n, uint32_t now,
    uint64_t *seqs, ngx_log_t *log);
void ngx_http_omni_activity_settle(ngx_http_omni_queue_t *qu,
    const uint64_t *seqs, ngx_uint_t n, uint64_t pos);
void ngx_http_omni_activity_touch(ngx_http_omni_queue_t *qu,
    const u_char *pid, uint32_t time, ngx_uint_t channel, uint64_t pos,
    ngx_log_t *log);
ngx_uint_t ngx_http_omni_activity_overlay(ngx_http_omni_queue_t *qu,
    const u_char *pid, omni_store_t *st, uint32_t visit_timeout,
    omni_rec_t *rec);

/* mailbox: datagrams between workers */
ngx_int_t ngx_http_omni_mailbox_init(ngx_cycle_t *cycle, uint64_t zone_id);
void ngx_http_omni_mailbox_exit(void);
ngx_int_t ngx_http_omni_mailbox_send(ngx_pid_t pid, const void *data,
    size_t len, ngx_msec_t timeout);

/* writer */
ngx_int_t ngx_http_omni_writer_init(ngx_cycle_t *cycle);
void ngx_http_omni_writer_message(const u_char *data, size_t len);
void ngx_http_omni_writer_kick(void);
void ngx_http_omni_writer_exit(ngx_cycle_t *cycle);
ngx_int_t ngx_http_omni_writer_touch(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx);
ngx_uint_t ngx_http_omni_writer_busy(void);
ngx_int_t ngx_http_omni_writer_events(ngx_http_omni_wjob_t *job,
    ngx_uint_t nevents);
void ngx_http_omni_writer_resize_pending(void);
ngx_int_t ngx_http_omni_writer_parse_job(ngx_http_omni_qjob_t *j);
void ngx_http_omni_writer_job_results(ngx_http_omni_qjob_t *jobs,
    ngx_uint_t njobs, int rc);
ngx_int_t ngx_http_omni_writer_events_batch(ngx_http_omni_qjob_t *jobs,
    ngx_uint_t njobs, omni_journal_job_t *jjobs, omni_batch_t *b,
    omni_batch_events_t **groups);

ngx_uint_t ngx_http_omni_writer_ckpt_due(void);
omni_checkpoint_t *ngx_http_omni_writer_ckpt_cp(void);
void ngx_http_omni_writer_ckpt_begun(ngx_uint_t begun);

/* the cluster's data path (ngx_http_omni_cluster.c) */
ngx_uint_t ngx_http_omni_cluster_on(void);
/* MAP_FULL / MAP_RESIZED, on the event loop: 1 to try again */
ngx_uint_t ngx_http_omni_writer_map_grow(int rc, ngx_log_t *log);
/* the writer published event jobs of this node, up to end */
void ngx_http_omni_cluster_events_published(uint64_t end);
ngx_int_t ngx_http_omni_cluster_init_worker(ngx_cycle_t *cycle,
    ngx_thread_pool_t *pool, time_t visit_timeout);
void ngx_http_omni_cluster_kick(void);
ngx_uint_t ngx_http_omni_cluster_busy(void);
void ngx_http_omni_cluster_exit(ngx_cycle_t *cycle);
/*
 * A cluster node frees the queue's space up to what its consumer applied
 * of its own records and its writer published (whichever comes later
 * sees both); nothing without omni_cluster.
 */
void ngx_http_omni_cluster_fold(ngx_http_omni_queue_t *qu);
ngx_int_t ngx_http_omni_cluster_publish(ngx_http_omni_queue_t *qu,
    uint64_t from, uint64_t to, uint64_t *covered, char *err, size_t len);

/* rules */
char *ngx_http_omni_rules(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_omni_rules_init_worker(ngx_cycle_t *cycle);
void ngx_http_omni_rules_exit_worker(ngx_cycle_t *cycle);
omni_ruleset_t *ngx_http_omni_rules_current(void);
omni_rules_report_t *ngx_http_omni_rules_failure(void);
const omni_rules_files_t *ngx_http_omni_rules_files(void);

/* console */
char *ngx_http_omni_console(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_omni_console_try(ngx_http_request_t *r);

/* cors */
char *ngx_http_omni_cors(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_omni_cors_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_omni_token_rejected(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx);

/* decision */
ngx_int_t ngx_http_omni_decide(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, ngx_uint_t json);
ngx_int_t ngx_http_omni_add_decision_variables(ngx_conf_t *cf);

/* geo */
char *ngx_http_omni_geoip(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
int ngx_http_omni_geo_lookup(void *data, omni_geo_t *out);
void ngx_http_omni_geo_exit_worker(ngx_cycle_t *cycle);

/* filter */
ngx_int_t ngx_http_omni_filter_init(ngx_conf_t *cf);
ngx_int_t ngx_http_omni_filter_header(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx);

/* api */
char *ngx_http_omni_decide_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_omni_admin_decide_endpoint(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_omni_identify_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_omni_feed_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_omni_admin_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *field, const char *reason);
ngx_int_t ngx_http_omni_admin_visitor(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, ngx_int_t *rc);
ngx_int_t ngx_http_omni_feed_answer(ngx_http_request_t *r, uint64_t after,
    ngx_uint_t limit);
ngx_int_t ngx_http_omni_send_json_status(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *json);
ngx_int_t ngx_http_omni_add_header(ngx_http_request_t *r, const char *key,
    const char *value);
ngx_int_t ngx_http_omni_retry_after(ngx_http_request_t *r);

/* events */
char *ngx_http_omni_events_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_omni_events_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
/* consent */
char *ngx_http_omni_consent_model(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_omni_consent_cookie(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
uint32_t ngx_http_omni_consent_request(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf);
ngx_uint_t ngx_http_omni_consent_signal(ngx_http_request_t *r);
uint32_t ngx_http_omni_consent(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx);
ngx_uint_t ngx_http_omni_consent_allows(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, uint32_t purpose);
ngx_int_t ngx_http_omni_find_cookie(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value);
ngx_int_t ngx_http_omni_fresh_visitor(ngx_http_request_t *r);
ngx_int_t ngx_http_omni_mint_visitor(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx);
ngx_uint_t ngx_http_omni_consent_needs_profile(ngx_http_request_t *r);
ngx_uint_t ngx_http_omni_consent_recent(ngx_http_omni_ctx_t *ctx,
    uint32_t consent);

ngx_int_t ngx_http_omni_emit(ngx_http_request_t *r,
    ngx_http_omni_filter_ctx_t *fctx, u_char *data, size_t len,
    ngx_uint_t copy, ngx_buf_t **last);
ngx_int_t ngx_http_omni_emit_tail(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, ngx_buf_t **last);
ngx_int_t ngx_http_omni_file_buf(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, ngx_buf_t *in, ngx_buf_t **last);
void ngx_http_omni_marks_exit(void);
ngx_http_omni_slot_t *ngx_http_omni_slot_take(ngx_http_omni_decision_t *dec,
    u_char *name, size_t len);

ngx_int_t ngx_http_omni_json_pool(ngx_http_request_t *r, json_t *o,
    size_t flags, ngx_str_t *out);
ngx_int_t ngx_http_omni_events_error_page(ngx_http_request_t *r);
ngx_int_t ngx_http_omni_events_consent(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, uint32_t consent);
ngx_int_t ngx_http_omni_events_error_body(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, ngx_chain_t *in, ngx_chain_t **out);
ngx_int_t ngx_http_omni_events_upstream(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx);

#endif /* NGX_HTTP_OMNI_MODULE_H */
