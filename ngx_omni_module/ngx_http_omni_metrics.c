/*
 * Prometheus metrics: the "omni_metrics" shared zone and the omni_metrics
 * endpoint (docs/metrics.md).
 *
 * Every counter is an atomic in one small shared zone, so what a scrape
 * prints is the sum over every worker, whichever worker answers, with no
 * per-worker copies to add up.  Like limit_req's zones, the zone survives
 * a reload (HUP): its size never depends on the configuration, so the
 * counters go on across reloads and only a restart sets them to zero.
 * The queue's own counters (queued, dropped, ...) live in the omni_store
 * zone already and are read from there.
 *
 * Per-rule counters are kept in a fixed table of rule ids (open
 * addressing, lock-free reads, inserts under the zone's mutex); a scrape
 * prints the rules of the set that serves now, so the label values are
 * bounded by the rule set.  Counters of a rule that left the set stay in
 * the table and come back with it.
 */

#include "ngx_http_omni_metrics.h"
#include "omni_store_stat.h"


#define NGX_HTTP_OMNI_MRULES      16384     /* rule id slots, power of 2 */

/* omni_requests_total{identity=...} */
#define NGX_HTTP_OMNI_MID_COOKIE   0
#define NGX_HTTP_OMNI_MID_TOKEN    1
#define NGX_HTTP_OMNI_MID_NEW      2
#define NGX_HTTP_OMNI_MID_INVALID  3
#define NGX_HTTP_OMNI_MID_NONE     4
#define NGX_HTTP_OMNI_MID_MAX      5

/* omni_events_total{result=...} */
#define NGX_HTTP_OMNI_MEV_ACCEPTED   0
#define NGX_HTTP_OMNI_MEV_DUPLICATE  1
#define NGX_HTTP_OMNI_MEV_FAILED     2
#define NGX_HTTP_OMNI_MEV_MAX        3

/* omni_writer_batches_total{result=...} */
#define NGX_HTTP_OMNI_MB_OK        0
#define NGX_HTTP_OMNI_MB_FULL      1
#define NGX_HTTP_OMNI_MB_FAILED    2
#define NGX_HTTP_OMNI_MB_MAX       3

#define NGX_HTTP_OMNI_NSIZE        8
#define NGX_HTTP_OMNI_NLAT         12


typedef struct {
    ngx_atomic_t        key;            /* hash | 1; 0: free.  Set last */
    ngx_atomic_t        decisions;
    ngx_atomic_t        impressions;
    ngx_atomic_t        holdouts;       /* held back by its own holdout */
    ngx_atomic_t        day;            /* of the two below, UTC days */
    ngx_atomic_t        impressions_today;
    ngx_atomic_t        holdouts_today;
    u_char              len;
    u_char              id[OMNI_RULES_MAX_ID];
} ngx_http_omni_mrule_t;


typedef struct {
    ngx_atomic_t        requests[NGX_HTTP_OMNI_MID_MAX];
    ngx_atomic_t        decisions;
    ngx_atomic_t        holdouts;
    ngx_atomic_t        untracked;      /* rule counts with no slot */

    ngx_atomic_t        batches[NGX_HTTP_OMNI_MB_MAX];
    ngx_atomic_t        committed;      /* touches */
    ngx_atomic_t        size_bucket[NGX_HTTP_OMNI_NSIZE + 1];
    ngx_atomic_t        size_sum;
    ngx_atomic_t        lat_bucket[NGX_HTTP_OMNI_NLAT + 1];
    ngx_atomic_t        lat_sum_ns;
    ngx_atomic_t        merges;

    ngx_atomic_t        events[NGX_HTTP_OMNI_MEV_MAX];
    ngx_atomic_t        rejected[NGX_HTTP_OMNI_REJ_MAX];

    ngx_atomic_t        rules_sig;      /* of the newest set loaded */
    ngx_atomic_t        rules_failed_sig;
    ngx_atomic_t        rules_generation;
    ngx_atomic_t        rules_failures;

    ngx_atomic_t        geo_lookups;
    ngx_atomic_t        geo_misses;

    /* omni_cluster: counters, and the lease holder's gauges */
    ngx_atomic_t        cl_published;   /* messages acknowledged */
    ngx_atomic_t        cl_records;     /* the queue records in them */
    ngx_atomic_t        cl_publish_failures;
    ngx_atomic_t        cl_consumed;    /* messages applied */
    ngx_atomic_t        cl_skipped;     /* copies, and after holes */
    ngx_atomic_t        cl_consume_failures;
    ngx_atomic_t        cl_applied;     /* the store's stream sequence */
    ngx_atomic_t        cl_last;        /* the stream's, as last seen */
    ngx_atomic_t        cl_connected;
    ngx_atomic_t        cl_behind;

    ngx_http_omni_mrule_t  rules[NGX_HTTP_OMNI_MRULES];
} ngx_http_omni_metrics_t;


static ngx_int_t ngx_http_omni_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_omni_metrics_log(ngx_http_request_t *r);
static ngx_int_t ngx_http_omni_metrics_handler(ngx_http_request_t *r);
static void ngx_http_omni_metrics_batch_ok(ngx_uint_t touches,
    double commit_s, ngx_uint_t merges);


static ngx_str_t  ngx_http_omni_metrics_name = ngx_string("omni_metrics");

/* this process's zone: set in init_process, never inherited stale */
static ngx_http_omni_metrics_t  *ngx_http_omni_m;
static ngx_shm_zone_t           *ngx_http_omni_m_zone;


static const char  *ngx_http_omni_id_names[] = {
    "cookie", "token", "new", "invalid", "none"
};

static const char  *ngx_http_omni_ev_names[] = {
    "accepted", "duplicate", "failed"
};

static const char  *ngx_http_omni_rej_names[] = {
    "invalid", "forbidden", "unauthorized", "method", "media_type",
    "too_large", "queue_full", "unavailable"
};

static const char  *ngx_http_omni_batch_names[] = {
    "ok", "store_full", "failed"
};

/* touches per batch (the writer takes at most 8192 at once) */
static const ngx_uint_t  ngx_http_omni_size_le[NGX_HTTP_OMNI_NSIZE] = {
    1, 4, 16, 64, 256, 1024, 4096, 8192
};

/* commit and sync, in seconds (and as printed) */
static const double  ngx_http_omni_lat_le[NGX_HTTP_OMNI_NLAT] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
    2.5
};

static const char  *ngx_http_omni_lat_names[NGX_HTTP_OMNI_NLAT] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25", "0.5", "1", "2.5"
};


#define ngx_http_omni_minc(c, n)  (void) ngx_atomic_fetch_add(&(c), (n))


/* ---- configuration ---- */

char *
ngx_http_omni_metrics_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_omni_metrics_handler;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_omni_metrics_init(ngx_conf_t *cf)
{
    size_t                      size;
    ngx_shm_zone_t             *zone;
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    /*
     * A fixed size, whatever the configuration: a reload always finds the
     * zone it had and keeps counting in it.
     */
    size = ngx_align(sizeof(ngx_http_omni_metrics_t), ngx_pagesize)
           + 8 * ngx_pagesize;

    zone = ngx_shared_memory_add(cf, &ngx_http_omni_metrics_name, size,
                                 &ngx_http_omni_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->init = ngx_http_omni_metrics_init_zone;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_omni_metrics_log;

    return NGX_OK;
}


static ngx_int_t
ngx_http_omni_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t          *shpool;
    ngx_http_omni_metrics_t  *m;

    if (data) {
        /* a reload: the same counters go on */
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    m = ngx_slab_calloc(shpool, sizeof(ngx_http_omni_metrics_t));
    if (m == NULL) {
        return NGX_ERROR;
    }

    shpool->data = m;
    shm_zone->data = m;

    shpool->log_ctx = (u_char *) " in omni_metrics zone";

    return NGX_OK;
}


/* The zone of this cycle, looked up by name and tag in each worker. */
ngx_int_t
ngx_http_omni_metrics_init_worker(ngx_cycle_t *cycle)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_shm_zone_t   *zone;

    ngx_http_omni_m = NULL;
    ngx_http_omni_m_zone = NULL;

    part = &cycle->shared_memory.part;
    zone = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            zone = part->elts;
            i = 0;
        }

        if (zone[i].tag == &ngx_http_omni_module
            && zone[i].shm.name.len == ngx_http_omni_metrics_name.len
            && ngx_strncmp(zone[i].shm.name.data,
                           ngx_http_omni_metrics_name.data,
                           ngx_http_omni_metrics_name.len)
               == 0)
        {
            ngx_http_omni_m_zone = &zone[i];
            ngx_http_omni_m = zone[i].data;
            break;
        }
    }

    return NGX_OK;
}


/* ---- counting ---- */

/*
 * A worker's memo of rule ids it counted, before the shared table's
 * hash and probe (a request counts three or four): an id's slot never
 * moves or goes, so the memo holds until the zone is another.
 */
#define NGX_HTTP_OMNI_MMEMO  64                 /* a power of two */

typedef struct {
    ngx_http_omni_mrule_t      *e;
    size_t                      len;
    u_char                      id[OMNI_RULES_MAX_ID];
} ngx_http_omni_mmemo_t;

static ngx_http_omni_mmemo_t    ngx_http_omni_mmemo[NGX_HTTP_OMNI_MMEMO];
static void                    *ngx_http_omni_mmemo_zone;


static ngx_http_omni_mrule_t *ngx_http_omni_mrule_find(const u_char *id,
    size_t len, ngx_uint_t create);


/*
 * The rule id's slot, inserted when missing and create is set; NULL when
 * it is missing or the table is full.
 */
static ngx_http_omni_mrule_t *
ngx_http_omni_mrule(const u_char *id, size_t len, ngx_uint_t create)
{
    ngx_uint_t              k;
    ngx_http_omni_mrule_t  *e;
    ngx_http_omni_mmemo_t  *mm;

    if (len == 0 || len > OMNI_RULES_MAX_ID) {
        return NULL;
    }

    if (ngx_http_omni_mmemo_zone != (void *) ngx_http_omni_m) {
        ngx_memzero(ngx_http_omni_mmemo, sizeof(ngx_http_omni_mmemo));
        ngx_http_omni_mmemo_zone = ngx_http_omni_m;
    }

    k = (len + id[0] * 7 + id[len >> 1] * 17 + id[len - 1] * 31)
        & (NGX_HTTP_OMNI_MMEMO - 1);
    mm = &ngx_http_omni_mmemo[k];

    if (mm->e != NULL && mm->len == len && ngx_memcmp(mm->id, id, len) == 0) {
        return mm->e;
    }

    e = ngx_http_omni_mrule_find(id, len, create);

    if (e != NULL) {
        mm->e = e;
        mm->len = len;
        ngx_memcpy(mm->id, id, len);
    }

    return e;
}


static ngx_http_omni_mrule_t *
ngx_http_omni_mrule_find(const u_char *id, size_t len, ngx_uint_t create)
{
    uint64_t                h;
    ngx_uint_t              i, n, insert;
    ngx_slab_pool_t        *shpool;
    ngx_http_omni_mrule_t  *e;

    h = 14695981039346656037ULL;

    for (i = 0; i < len; i++) {
        h = (h ^ id[i]) * 1099511628211ULL;
    }

    h |= 1;
    shpool = NULL;

    for (insert = 0; insert < 2; insert++) {
        i = (ngx_uint_t) h & (NGX_HTTP_OMNI_MRULES - 1);

        for (n = 0; n < NGX_HTTP_OMNI_MRULES; n++) {
            e = &ngx_http_omni_m->rules[i];

            if (e->key == 0) {
                break;
            }

            if (e->key == (ngx_atomic_uint_t) h && e->len == len
                && ngx_memcmp(e->id, id, len) == 0)
            {
                if (insert) {
                    ngx_shmtx_unlock(&shpool->mutex);
                }

                return e;
            }

            i = (i + 1) & (NGX_HTTP_OMNI_MRULES - 1);
        }

        if (n == NGX_HTTP_OMNI_MRULES || !create) {
            if (insert) {
                ngx_shmtx_unlock(&shpool->mutex);
            }

            return NULL;
        }

        if (insert) {
            /* under the mutex, and still free: the id first, key last */
            ngx_memcpy(e->id, id, len);
            e->len = (u_char) len;
            ngx_memory_barrier();
            e->key = (ngx_atomic_uint_t) h;

            ngx_shmtx_unlock(&shpool->mutex);
            return e;
        }

        /* not found without the lock: look again holding it */
        shpool = (ngx_slab_pool_t *) ngx_http_omni_m_zone->shm.addr;
        ngx_shmtx_lock(&shpool->mutex);
    }

    return NULL;
}


/*
 * Today's count of a rule (the console): the first count of a new day
 * (UTC) starts both of today's counters again.  Two workers passing
 * midnight at once may lose a count or two of the new day: the console
 * shows them, nothing bills by them.
 */
static void
ngx_http_omni_mtoday(ngx_http_omni_mrule_t *e, ngx_atomic_t *today)
{
    ngx_atomic_uint_t  day, old;

    day = (ngx_atomic_uint_t) (ngx_time() / 86400);
    old = e->day;

    if (old != day && ngx_atomic_cmp_set(&e->day, old, day)) {
        e->impressions_today = 0;
        e->holdouts_today = 0;
    }

    ngx_http_omni_minc(*today, 1);
}


/*
 * Counts every rule id of a comma-separated list ($omni_rules): a
 * decision, and an impression too when the rules were delivered; one
 * lookup per id for both.
 */
static void
ngx_http_omni_metrics_rules_list(ngx_str_t *list, ngx_uint_t impressions)
{
    u_char                 *p, *last, *comma;
    ngx_http_omni_mrule_t  *e;

    p = list->data;
    last = p + list->len;

    while (p < last) {
        comma = memchr(p, ',', last - p);
        if (comma == NULL) {
            comma = last;
        }

        e = ngx_http_omni_mrule(p, comma - p, 1);

        if (e == NULL) {
            /* once for the decision, once for the impression */
            ngx_http_omni_minc(ngx_http_omni_m->untracked,
                               impressions ? 2 : 1);

        } else {
            ngx_http_omni_minc(e->decisions, 1);

            if (impressions) {
                ngx_http_omni_minc(e->impressions, 1);
                ngx_http_omni_mtoday(e, &e->impressions_today);
            }
        }

        p = comma + 1;
    }
}


/* The rules a delivered decision held back by their own holdout. */
static void
ngx_http_omni_metrics_held_list(ngx_str_t *list)
{
    u_char                 *p, *last, *comma;
    ngx_http_omni_mrule_t  *e;

    p = list->data;
    last = p + list->len;

    while (p < last) {
        comma = memchr(p, ',', last - p);
        if (comma == NULL) {
            comma = last;
        }

        e = ngx_http_omni_mrule(p, comma - p, 1);

        if (e == NULL) {
            ngx_http_omni_minc(ngx_http_omni_m->untracked, 1);

        } else {
            ngx_http_omni_minc(e->holdouts, 1);
            ngx_http_omni_mtoday(e, &e->holdouts_today);
        }

        p = comma + 1;
    }
}


/*
 * The log phase: the identity outcome of every request the module
 * identified, its decision and what of it was delivered.  Once per
 * request: subrequests are left out.
 */
static ngx_int_t
ngx_http_omni_metrics_log(ngx_http_request_t *r)
{
    ngx_uint_t                 id;
    ngx_http_omni_ctx_t       *ctx;
    ngx_http_omni_decision_t  *dec;

    if (ngx_http_omni_m == NULL || r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_omni_get_ctx(r, 0);

    if (ctx == NULL || !ctx->identified || ctx->pid_fixed) {
        return NGX_OK;
    }

    switch (ctx->identity) {

    case NGX_HTTP_OMNI_ID_COOKIE:
        id = NGX_HTTP_OMNI_MID_COOKIE;
        break;

    case NGX_HTTP_OMNI_ID_TOKEN:
        id = NGX_HTTP_OMNI_MID_TOKEN;
        break;

    case NGX_HTTP_OMNI_ID_NEW:
        id = ctx->refused ? NGX_HTTP_OMNI_MID_INVALID : NGX_HTTP_OMNI_MID_NEW;
        break;

    default:
        id = ctx->refused ? NGX_HTTP_OMNI_MID_INVALID
                          : NGX_HTTP_OMNI_MID_NONE;
    }

    ngx_http_omni_minc(ngx_http_omni_m->requests[id], 1);

    dec = ctx->decision;

    if (!ctx->decided || dec == NULL) {
        return NGX_OK;
    }

    ngx_http_omni_minc(ngx_http_omni_m->decisions, 1);

    if (dec->holdout) {
        ngx_http_omni_minc(ngx_http_omni_m->holdouts, 1);
    }

    ngx_http_omni_metrics_rules_list(&dec->rules, ctx->impressions);

    if (ctx->impressions && dec->held.len) {
        ngx_http_omni_metrics_held_list(&dec->held);
    }

    return NGX_OK;
}


void
ngx_http_omni_metrics_batch(int rc, ngx_uint_t touches, double commit_s,
    ngx_uint_t merges)
{
    ngx_uint_t  i;

    if (ngx_http_omni_m == NULL) {
        return;
    }

    /*
     * A cluster node's writer only publishes: the consumer's
     * transactions are the batches (ngx_http_omni_metrics_cluster_consumed).
     */
    if (ngx_http_omni_cluster_on()) {
        if (rc != OMNI_OK) {
            ngx_http_omni_minc(ngx_http_omni_m->cl_publish_failures, 1);
        }

        return;
    }

    if (rc != OMNI_OK) {
        i = (rc == OMNI_MAP_FULL || rc == OMNI_MAP_RESIZED)
            ? NGX_HTTP_OMNI_MB_FULL : NGX_HTTP_OMNI_MB_FAILED;
        ngx_http_omni_minc(ngx_http_omni_m->batches[i], 1);
        return;
    }

    ngx_http_omni_metrics_batch_ok(touches, commit_s, merges);
}


/* A committed batch: its touches, size, commit time and merges. */
static void
ngx_http_omni_metrics_batch_ok(ngx_uint_t touches, double commit_s,
    ngx_uint_t merges)
{
    ngx_uint_t  i;

    ngx_http_omni_minc(ngx_http_omni_m->batches[NGX_HTTP_OMNI_MB_OK], 1);
    ngx_http_omni_minc(ngx_http_omni_m->committed, touches);
    ngx_http_omni_minc(ngx_http_omni_m->merges, merges);

    for (i = 0; i < NGX_HTTP_OMNI_NSIZE; i++) {
        if (touches <= ngx_http_omni_size_le[i]) {
            break;
        }
    }

    ngx_http_omni_minc(ngx_http_omni_m->size_bucket[i], 1);
    ngx_http_omni_minc(ngx_http_omni_m->size_sum, touches);

    for (i = 0; i < NGX_HTTP_OMNI_NLAT; i++) {
        if (commit_s <= ngx_http_omni_lat_le[i]) {
            break;
        }
    }

    ngx_http_omni_minc(ngx_http_omni_m->lat_bucket[i], 1);
    ngx_http_omni_minc(ngx_http_omni_m->lat_sum_ns,
                       (ngx_atomic_uint_t) (commit_s * 1e9));
}


void
ngx_http_omni_metrics_job(omni_event_batch_t *b, int *status, ngx_uint_t ok)
{
    ngx_uint_t  k, res;

    if (ngx_http_omni_m == NULL || b == NULL) {
        return;
    }

    for (k = 0; k < b->n; k++) {
        /* events refused at parse time were counted by their request */
        if (b->rc[k] != OMNI_OK) {
            continue;
        }

        if (!ok || status == NULL) {
            res = NGX_HTTP_OMNI_MEV_FAILED;

        } else if (status[k] == OMNI_EVENT_DUPLICATE) {
            res = NGX_HTTP_OMNI_MEV_DUPLICATE;

        } else {
            res = NGX_HTTP_OMNI_MEV_ACCEPTED;
        }

        ngx_http_omni_minc(ngx_http_omni_m->events[res], 1);
    }
}


void
ngx_http_omni_metrics_event_refused(ngx_uint_t status, const char *field)
{
    ngx_uint_t  reason;

    if (ngx_http_omni_m == NULL) {
        return;
    }

    switch (status) {

    case NGX_HTTP_FORBIDDEN:
        reason = NGX_HTTP_OMNI_REJ_FORBIDDEN;
        break;

    case NGX_HTTP_UNAUTHORIZED:
        reason = NGX_HTTP_OMNI_REJ_UNAUTHORIZED;
        break;

    case NGX_HTTP_NOT_ALLOWED:
        reason = NGX_HTTP_OMNI_REJ_METHOD;
        break;

    case NGX_HTTP_UNSUPPORTED_MEDIA_TYPE:
        reason = NGX_HTTP_OMNI_REJ_MEDIA_TYPE;
        break;

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        reason = NGX_HTTP_OMNI_REJ_TOO_LARGE;
        break;

    case NGX_HTTP_SERVICE_UNAVAILABLE:
        reason = (field && ngx_strcmp(field, "queue") == 0)
                 ? NGX_HTTP_OMNI_REJ_QUEUE_FULL : NGX_HTTP_OMNI_REJ_UNAVAILABLE;
        break;

    default:
        reason = NGX_HTTP_OMNI_REJ_INVALID;
    }

    ngx_http_omni_minc(ngx_http_omni_m->rejected[reason], 1);
}


/* The refused events of a parsed batch (a lone event's request counts). */
void
ngx_http_omni_metrics_events_parsed(omni_event_batch_t *b)
{
    ngx_uint_t  k;

    if (ngx_http_omni_m == NULL || !b->batch) {
        return;
    }

    for (k = 0; k < b->n; k++) {
        if (b->rc[k] == OMNI_EVENT_FORBIDDEN) {
            ngx_http_omni_minc(
                ngx_http_omni_m->rejected[NGX_HTTP_OMNI_REJ_FORBIDDEN], 1);

        } else if (b->rc[k] != OMNI_OK) {
            ngx_http_omni_minc(
                ngx_http_omni_m->rejected[NGX_HTTP_OMNI_REJ_INVALID], 1);
        }
    }
}


/*
 * Every worker loads every change of the rules directory on its own: the
 * generation moves once per distinct set (the first worker to load it
 * swaps the signature), and a broken change counts once, not once per
 * worker.
 */
void
ngx_http_omni_metrics_rules(uint64_t sig, ngx_uint_t failed)
{
    ngx_atomic_t       *a;
    ngx_atomic_uint_t   old;

    if (ngx_http_omni_m == NULL) {
        return;
    }

    a = failed ? &ngx_http_omni_m->rules_failed_sig
               : &ngx_http_omni_m->rules_sig;

    old = *a;

    if (old == (ngx_atomic_uint_t) sig
        || !ngx_atomic_cmp_set(a, old, (ngx_atomic_uint_t) sig))
    {
        return;
    }

    if (failed) {
        ngx_http_omni_minc(ngx_http_omni_m->rules_failures, 1);

    } else {
        ngx_http_omni_minc(ngx_http_omni_m->rules_generation, 1);
    }
}


/* A rule's counters, for the console; all 0 when never counted. */
void
ngx_http_omni_metrics_rule(const char *id, size_t len,
    ngx_http_omni_rule_counts_t *out)
{
    ngx_http_omni_mrule_t  *e;

    ngx_memzero(out, sizeof(ngx_http_omni_rule_counts_t));

    if (ngx_http_omni_m == NULL) {
        return;
    }

    e = ngx_http_omni_mrule((const u_char *) id, len, 0);
    if (e == NULL) {
        return;
    }

    out->decisions = e->decisions;
    out->impressions = e->impressions;
    out->holdouts = e->holdouts;

    if (e->day == (ngx_atomic_uint_t) (ngx_time() / 86400)) {
        out->impressions_today = e->impressions_today;
        out->holdouts_today = e->holdouts_today;
    }
}


void
ngx_http_omni_metrics_geo(ngx_uint_t found)
{
    if (ngx_http_omni_m == NULL) {
        return;
    }

    ngx_http_omni_minc(ngx_http_omni_m->geo_lookups, 1);

    if (!found) {
        ngx_http_omni_minc(ngx_http_omni_m->geo_misses, 1);
    }
}


/* In a pool thread of the lease holder: JetStream acknowledged them. */
void
ngx_http_omni_metrics_cluster_published(ngx_uint_t messages,
    ngx_uint_t records)
{
    if (ngx_http_omni_m == NULL) {
        return;
    }

    ngx_http_omni_minc(ngx_http_omni_m->cl_published, messages);
    ngx_http_omni_minc(ngx_http_omni_m->cl_records, records);
}


/*
 * A consume task's outcome: a transaction of the stream's messages,
 * counted as the writer's batches are, or a failure (connect, fetch,
 * apply: the messages come again from the store's sequence).  A fetch
 * that found nothing new counts nothing.
 */
void
ngx_http_omni_metrics_cluster_consumed(int rc, ngx_uint_t failed,
    ngx_uint_t messages, ngx_uint_t skipped, ngx_uint_t touches,
    double commit_s, ngx_uint_t merges)
{
    if (ngx_http_omni_m == NULL) {
        return;
    }

    if (rc != OMNI_OK) {
        if (failed) {
            ngx_http_omni_minc(ngx_http_omni_m->cl_consume_failures, 1);
        }

        return;
    }

    if (skipped) {
        ngx_http_omni_minc(ngx_http_omni_m->cl_skipped, skipped);
    }

    if (messages == 0) {
        return;
    }

    ngx_http_omni_minc(ngx_http_omni_m->cl_consumed, messages);

    /* the transaction, as a single host's writer batch counts */
    ngx_http_omni_metrics_batch_ok(touches, commit_s, merges);
}


/* The lease holder, after each consume task (every 10 ms or so). */
void
ngx_http_omni_metrics_cluster_state(ngx_uint_t connected, uint64_t applied,
    uint64_t last, ngx_uint_t behind)
{
    if (ngx_http_omni_m == NULL) {
        return;
    }

    ngx_http_omni_m->cl_connected = connected ? 1 : 0;
    ngx_http_omni_m->cl_applied = (ngx_atomic_uint_t) applied;
    ngx_http_omni_m->cl_last = (ngx_atomic_uint_t) ngx_max(last, applied);
    ngx_http_omni_m->cl_behind = behind ? 1 : 0;
}


/* ---- the exposition ---- */

typedef struct {
    u_char     *pos;
    u_char     *end;
} ngx_http_omni_mout_t;


static void
ngx_http_omni_mput(ngx_http_omni_mout_t *o, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    o->pos = ngx_vslprintf(o->pos, o->end, fmt, args);
    va_end(args);
}


static void
ngx_http_omni_mhead(ngx_http_omni_mout_t *o, const char *name,
    const char *type, const char *help)
{
    ngx_http_omni_mput(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                       type);
}


static void
ngx_http_omni_mone(ngx_http_omni_mout_t *o, const char *name,
    const char *type, const char *help, uint64_t v)
{
    ngx_http_omni_mhead(o, name, type, help);
    ngx_http_omni_mput(o, "%s %uL\n", name, v);
}


/* A label value: backslash, double quote and newline escaped. */
static void
ngx_http_omni_mlabel(ngx_http_omni_mout_t *o, const char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len && o->pos + 2 <= o->end; i++) {
        if (s[i] == '\\' || s[i] == '"') {
            *o->pos++ = '\\';
            *o->pos++ = s[i];

        } else if (s[i] == '\n') {
            *o->pos++ = '\\';
            *o->pos++ = 'n';

        } else {
            *o->pos++ = s[i];
        }
    }
}


/* Seconds from nanoseconds, as a decimal with 9 places. */
static void
ngx_http_omni_mseconds(ngx_http_omni_mout_t *o, uint64_t ns)
{
    ngx_http_omni_mput(o, "%uL.%09uL", ns / 1000000000, ns % 1000000000);
}


static void
ngx_http_omni_mhistograms(ngx_http_omni_mout_t *o,
    ngx_http_omni_metrics_t *m)
{
    uint64_t    cum;
    ngx_uint_t  i;

    ngx_http_omni_mhead(o, "omni_writer_batch_touches", "histogram",
                        "Touches per committed writer batch.");

    for (cum = 0, i = 0; i < NGX_HTTP_OMNI_NSIZE; i++) {
        cum += m->size_bucket[i];
        ngx_http_omni_mput(o, "omni_writer_batch_touches_bucket"
                           "{le=\"%ui\"} %uL\n",
                           ngx_http_omni_size_le[i], cum);
    }

    cum += m->size_bucket[NGX_HTTP_OMNI_NSIZE];
    ngx_http_omni_mput(o, "omni_writer_batch_touches_bucket{le=\"+Inf\"} "
                       "%uL\nomni_writer_batch_touches_sum %uA\n"
                       "omni_writer_batch_touches_count %uL\n",
                       cum, m->size_sum, cum);

    ngx_http_omni_mhead(o, "omni_writer_commit_duration_seconds",
                        "histogram",
                        "Time a committed writer batch spent in commit and "
                        "sync.");

    for (cum = 0, i = 0; i < NGX_HTTP_OMNI_NLAT; i++) {
        cum += m->lat_bucket[i];
        ngx_http_omni_mput(o, "omni_writer_commit_duration_seconds_bucket"
                           "{le=\"%s\"} %uL\n",
                           ngx_http_omni_lat_names[i], cum);
    }

    cum += m->lat_bucket[NGX_HTTP_OMNI_NLAT];
    ngx_http_omni_mput(o, "omni_writer_commit_duration_seconds_bucket"
                       "{le=\"+Inf\"} %uL\n"
                       "omni_writer_commit_duration_seconds_sum ", cum);
    ngx_http_omni_mseconds(o, m->lat_sum_ns);
    ngx_http_omni_mput(o, "\nomni_writer_commit_duration_seconds_count %uL\n",
                       cum);
}


static void
ngx_http_omni_mrules(ngx_http_omni_mout_t *o, ngx_http_omni_metrics_t *m,
    omni_ruleset_t *set, ngx_uint_t what)
{
    size_t                  len;
    unsigned                i, n;
    const char             *id;
    const char             *name;
    ngx_http_omni_mrule_t  *e;

    static const char  *names[] = {
        "omni_rule_decisions_total", "omni_rule_impressions_total",
        "omni_rule_holdouts_total"
    };
    static const char  *helps[] = {
        "Times a decision chose a rule, by rule id.",
        "Times a rule's banner, pixels or headers were delivered, by rule "
        "id.",
        "Times a delivered decision held a rule back from a visitor it "
        "matched, the visitor being in the rule's own holdout, by rule id."
    };

    name = names[what];

    ngx_http_omni_mhead(o, name, "counter", helps[what]);

    n = set ? omni_rules_count(set) : 0;

    for (i = 0; i < n; i++) {
        id = omni_rules_rule_id(set, i, &len);

        e = ngx_http_omni_mrule((const u_char *) id, len, 0);

        ngx_http_omni_mput(o, "%s{rule=\"", name);
        ngx_http_omni_mlabel(o, id, len);
        ngx_http_omni_mput(o, "\"} %uA\n",
                           e == NULL ? 0
                           : what == 1 ? e->impressions
                           : what == 2 ? e->holdouts : e->decisions);
    }
}


/*
 * The rules directory as it is now, as this worker loaded it (every
 * worker loads every change): whether it has errors, and which files do
 * not compile (label values bounded by the files of the directory).
 */
static void
ngx_http_omni_mfiles(ngx_http_omni_mout_t *o)
{
    ngx_uint_t                 i;
    const omni_rules_files_t  *fs;

    fs = ngx_http_omni_rules_files();

    ngx_http_omni_mone(o, "omni_rules_broken", "gauge",
                       "1 while the rules directory has errors (shown by "
                       "the console), else 0.",
                       ngx_http_omni_rules_failure() != NULL);

    ngx_http_omni_mhead(o, "omni_rules_file_broken", "gauge",
                        "1 for a rule file that does not compile (its last "
                        "good version serves, or nothing of it), else 0.");

    for (i = 0; fs && i < fs->n; i++) {
        ngx_http_omni_mput(o, "omni_rules_file_broken{file=\"");
        ngx_http_omni_mlabel(o, fs->files[i].path,
                             ngx_strlen(fs->files[i].path));
        ngx_http_omni_mput(o, "\"} %ui\n",
                           (ngx_uint_t) (fs->files[i].broken != 0));
    }
}


/*
 * omni_cluster: the counters go on across reloads like the others; the
 * gauges are the lease holder's view, 0 without omni_cluster.
 */
static void
ngx_http_omni_mcluster(ngx_http_omni_mout_t *o, ngx_http_omni_metrics_t *m,
    ngx_http_omni_cluster_conf_t *cf)
{
    uint64_t    applied, last;
    ngx_uint_t  on;

    on = (cf != NULL);
    applied = on ? m->cl_applied : 0;
    last = on ? m->cl_last : 0;

    /* an info metric: one series with omni_cluster, none without */
    ngx_http_omni_mhead(o, "omni_cluster_node_info", "gauge",
                        "1, labelled with this node's omni_cluster node= "
                        "and stream=; no series without omni_cluster.");

    if (on) {
        ngx_http_omni_mput(o, "omni_cluster_node_info{node=\"");
        ngx_http_omni_mlabel(o, (char *) cf->node.data, cf->node.len);
        ngx_http_omni_mput(o, "\",stream=\"");
        ngx_http_omni_mlabel(o, (char *) cf->stream.data, cf->stream.len);
        ngx_http_omni_mput(o, "\"} 1\n");
    }

    ngx_http_omni_mone(o, "omni_cluster_messages_published_total", "counter",
                       "Stream messages (runs of queue records) this node "
                       "published and JetStream acknowledged.",
                       m->cl_published);
    ngx_http_omni_mone(o, "omni_cluster_records_published_total", "counter",
                       "Queue records (touches, event jobs) in them.",
                       m->cl_records);
    ngx_http_omni_mone(o, "omni_cluster_publish_failures_total", "counter",
                       "Writer batches whose publish failed (no NATS "
                       "connection, no acknowledgement within timeout=): "
                       "published again with the next batch.",
                       m->cl_publish_failures);
    ngx_http_omni_mone(o, "omni_cluster_messages_consumed_total", "counter",
                       "Stream messages (every node's) applied to this "
                       "node's store.", m->cl_consumed);
    ngx_http_omni_mone(o, "omni_cluster_messages_skipped_total", "counter",
                       "Stream messages this node did not apply: copies of "
                       "records it holds, or runs after a refused one "
                       "(applied when sent again).", m->cl_skipped);
    ngx_http_omni_mone(o, "omni_cluster_consume_failures_total", "counter",
                       "Fetches or applies of the stream that failed: "
                       "fetched again from the store's sequence.",
                       m->cl_consume_failures);
    ngx_http_omni_mone(o, "omni_cluster_stream_applied_sequence", "gauge",
                       "The last stream sequence applied to this node's "
                       "store.", applied);
    ngx_http_omni_mone(o, "omni_cluster_stream_last_sequence", "gauge",
                       "The stream's last sequence, as this node last saw "
                       "it.", last);
    ngx_http_omni_mone(o, "omni_cluster_stream_lag_messages", "gauge",
                       "Stream messages this node has yet to apply.",
                       last > applied ? last - applied : 0);
    ngx_http_omni_mone(o, "omni_cluster_connected", "gauge",
                       "1 while the node's NATS connection is up, else 0.",
                       on ? (uint64_t) m->cl_connected : 0);
    ngx_http_omni_mone(o, "omni_cluster_behind_retention", "gauge",
                       "1 when the stream dropped records this node never "
                       "applied: it applies nothing until bootstrapped.",
                       on ? (uint64_t) m->cl_behind : 0);
}


static void
ngx_http_omni_metrics_print(ngx_http_request_t *r, ngx_http_omni_mout_t *o,
    ngx_http_omni_metrics_t *m, omni_ruleset_t *set)
{
    size_t                      used, size;
    ngx_uint_t                  i;
    omni_store_t               *st;
    ngx_http_omni_queue_t      *qu;
    ngx_http_omni_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    qu = ngx_http_omni_queue();

    ngx_http_omni_mhead(o, "omni_requests_total", "counter",
                        "Requests the module identified, by outcome: a "
                        "valid cookie or app token, a new visitor, a "
                        "refused cookie or token, or none.");

    for (i = 0; i < NGX_HTTP_OMNI_MID_MAX; i++) {
        ngx_http_omni_mput(o, "omni_requests_total{identity=\"%s\"} %uA\n",
                           ngx_http_omni_id_names[i], m->requests[i]);
    }

    ngx_http_omni_mone(o, "omni_decisions_total", "counter",
                       "Decisions made (web, app, email, SMS), empty ones "
                       "included.", m->decisions);
    ngx_http_omni_mone(o, "omni_holdouts_total", "counter",
                       "Decisions that kept the visitor in the holdout.",
                       m->holdouts);

    ngx_http_omni_mrules(o, m, set, 0);
    ngx_http_omni_mrules(o, m, set, 1);
    ngx_http_omni_mrules(o, m, set, 2);

    ngx_http_omni_mone(o, "omni_rule_untracked_total", "counter",
                       "Rule decisions and impressions not counted by "
                       "rule: the rule id table was full.", m->untracked);

    ngx_http_omni_mone(o, "omni_touches_queued_total", "counter",
                       "Touches queued for the writer.",
                       qu ? (uint64_t) qu->queued : 0);
    ngx_http_omni_mone(o, "omni_touches_committed_total", "counter",
                       "Touches committed to the store.", m->committed);
    ngx_http_omni_mone(o, "omni_touches_dropped_total", "counter",
                       "Touches dropped: the queue or the store was full.",
                       qu ? (uint64_t) qu->dropped : 0);
    ngx_http_omni_mone(o, "omni_writer_queue_touches", "gauge",
                       "Touches queued and not yet written.",
                       qu ? (uint64_t) (qu->queued - qu->consumed) : 0);
    ngx_http_omni_mone(o, "omni_writer_queue_event_jobs", "gauge",
                       "Event jobs queued and not yet written.",
                       qu ? (uint64_t) (qu->ev_queued - qu->ev_consumed) : 0);
    ngx_http_omni_mone(o, "omni_writer_queue_capacity_touches", "gauge",
                       "Touches the queue holds (omni_store queue=).",
                       qu ? (uint64_t) mcf->queue_size : 0);
    ngx_http_omni_mone(o, "omni_activity_evicted_total", "counter",
                       "Activity entries overwritten before the fold.",
                       qu ? (uint64_t) qu->act_evicted : 0);

    ngx_http_omni_mhead(o, "omni_writer_batches_total", "counter",
                        "Writer transactions, by result.");

    for (i = 0; i < NGX_HTTP_OMNI_MB_MAX; i++) {
        ngx_http_omni_mput(o, "omni_writer_batches_total{result=\"%s\"} "
                           "%uA\n", ngx_http_omni_batch_names[i],
                           m->batches[i]);
    }

    ngx_http_omni_mhistograms(o, m);

    ngx_http_omni_mhead(o, "omni_events_total", "counter",
                        "Events the writer applied or failed, by result.");

    for (i = 0; i < NGX_HTTP_OMNI_MEV_MAX; i++) {
        ngx_http_omni_mput(o, "omni_events_total{result=\"%s\"} %uA\n",
                           ngx_http_omni_ev_names[i], m->events[i]);
    }

    ngx_http_omni_mhead(o, "omni_events_rejected_total", "counter",
                        "Events refused before the writer, by reason (a "
                        "refused request counts once).");

    for (i = 0; i < NGX_HTTP_OMNI_REJ_MAX; i++) {
        ngx_http_omni_mput(o, "omni_events_rejected_total{reason=\"%s\"} "
                           "%uA\n", ngx_http_omni_rej_names[i],
                           m->rejected[i]);
    }

    ngx_http_omni_mone(o, "omni_merges_total", "counter",
                       "Profiles merged into another (identity stitching).",
                       m->merges);

    st = ngx_http_omni_worker_store();
    used = 0;
    size = 0;

    if (st && omni_store_usage(st, &used, &size) != OMNI_OK) {
        used = 0;
        size = 0;
    }

    ngx_http_omni_mone(o, "omni_store_map_used_bytes", "gauge",
                       "Bytes of the store's map in use.", used);
    ngx_http_omni_mone(o, "omni_store_map_size_bytes", "gauge",
                       "The store's map size now (it grows up to "
                       "map_max).", size);
    ngx_http_omni_mone(o, "omni_store_map_max_bytes", "gauge",
                       "The largest the map may grow (omni_store "
                       "map_max=).", mcf->store_path.len ? mcf->map_max : 0);

    ngx_http_omni_mone(o, "omni_rules_generation", "gauge",
                       "Rule sets loaded since start (1: the set of the "
                       "configuration).", m->rules_generation);
    ngx_http_omni_mone(o, "omni_rules_loaded", "gauge",
                       "Rules in the set that serves.",
                       set ? omni_rules_count(set) : 0);
    ngx_http_omni_mone(o, "omni_rules_reload_failures_total", "counter",
                       "Changes of the rules directory with errors (a "
                       "broken file's last good version, or the previous "
                       "set, kept serving).",
                       m->rules_failures);

    ngx_http_omni_mfiles(o);

    ngx_http_omni_mone(o, "omni_geo_lookups_total", "counter",
                       "Geo lookups of decisions whose rules need the "
                       "visitor's location.", m->geo_lookups);
    ngx_http_omni_mone(o, "omni_geo_misses_total", "counter",
                       "Geo lookups that found no location.",
                       m->geo_misses);

    ngx_http_omni_mcluster(o, m, mcf->cluster);
}


static ngx_int_t
ngx_http_omni_metrics_handler(ngx_http_request_t *r)
{
    size_t                     size;
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    ngx_uint_t                 i;
    ngx_chain_t                out;
    omni_ruleset_t            *set;
    ngx_http_omni_mout_t       o;
    const omni_rules_files_t  *fs;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_omni_m == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    set = ngx_http_omni_rules_current();

    /* the fixed part, three lines per rule with their longest ids, one
       per rule file with its path (escaped: twice as long at most) */
    fs = ngx_http_omni_rules_files();

    size = 16384 + (set ? omni_rules_count(set) : 0)
                   * 3 * (sizeof("omni_rule_impressions_total{rule=\"\"} ")
                          + 2 * OMNI_RULES_MAX_ID + NGX_ATOMIC_T_LEN + 1);

    for (i = 0; fs && i < fs->n; i++) {
        size += sizeof("omni_rules_file_broken{file=\"\"} 0\n")
                + 2 * ngx_strlen(fs->files[i].path);
    }

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    o.pos = b->pos;
    o.end = b->end;

    ngx_http_omni_metrics_print(r, &o, ngx_http_omni_m, set);

    b->last = o.pos;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = sizeof("text/plain") - 1;

    if (ngx_http_omni_add_header(r, "Cache-Control", "no-store") != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
