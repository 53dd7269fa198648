/*
 * The shared touch queue and the writer lease.
 *
 * One shared-memory zone per store ("omni_store"), created like
 * limit_req's zones: it survives HUP (a reload with the same queue size
 * reuses it, queued touches included), and nginx's master releases its
 * mutex when a worker dies holding it.
 *
 * The zone holds:
 *
 *   - a byte ring of touches.  Every worker appends (under the zone's
 *     mutex, a copy of a few hundred bytes, never a wait on anything but
 *     another worker's copy); exactly one worker, the writer, consumes.
 *     A record is published by moving the tail past it, last, so a
 *     worker killed half-way through a copy leaves nothing behind.
 *     When the ring is full a touch is dropped and counted.
 *
 *   - the writer lease: the pid of the one worker whose writer task
 *     consumes the ring and commits to LMDB.  Every worker checks the
 *     lease on a timer (NGX_HTTP_OMNI_LEASE_CHECK): a free lease (the
 *     holder exited) or one whose holder is dead (kill -9) is taken with
 *     a compare-and-swap, so exactly one worker holds it.  The holder
 *     also holds an exclusive flock() on the store's "writer.lock": a
 *     binary upgrade starts a second master with a zone of its own, and
 *     the lock keeps its workers from writing until the old
 *     generation's writer has gone (the kernel drops the lock of a dead
 *     process, so a crash never leaves it taken).
 *
 *   - two positions the holder moves after each commit: "logged up to"
 *     (the touchpoints are in the log) and "folded up to" (the counters
 *     are in the profiles; the ring's head: space behind it is free).
 *     Both are committed with the batch (meta "queue", with the zone's
 *     random id), so a new holder after a crash neither loses nor
 *     repeats anything.
 *
 *   - counters every worker adds to: touches and event jobs queued and
 *     consumed (whether a batch is worth posting at once), touches
 *     dropped.
 *
 * The ring's positions are byte counts since the zone was created (they
 * never wrap); a record starts on an 8-byte boundary, and one that would
 * not fit before the end of the ring is preceded by a pad record.
 */

#include "ngx_http_omni_module.h"
#include "omni_feed.h"
#include "omni_batch.h"

#include <openssl/rand.h>
#include <sys/file.h>


#define NGX_HTTP_OMNI_REC_PAD     0
#define NGX_HTTP_OMNI_REC_TOUCH   1
#define NGX_HTTP_OMNI_REC_JOB     2

/* The longest decision lists a touch keeps (campaigns, rules shown). */
#define NGX_HTTP_OMNI_MAX_LIST    1024

#define NGX_HTTP_OMNI_LEASE_CHECK 200          /* ms */


/* A queued touch: this header, then its strings in order. */
typedef struct {
    uint32_t            len;            /* whole record, 8-byte multiple */
    u_char              type;
    u_char              kind;
    u_char              channel;
    u_char              record;
    uint32_t            time;
    u_char              id[OMNI_ID_LEN];
    char                country[3];
    u_char              flags;          /* NGX_HTTP_OMNI_QREC_PID */
    uint16_t            lens[7];        /* campaigns, rules, path,
                                           referrer, utm x 3 */
    uint16_t            reserved;
    u_char              pid[OMNI_ID_LEN];  /* the resolved profile */
} ngx_http_omni_qrec_t;


#define NGX_HTTP_OMNI_QREC_PID  0x01
#define NGX_HTTP_OMNI_QREC_GPC  0x02    /* Sec-GPC: 1 */
#define NGX_HTTP_OMNI_QREC_DNT  0x04    /* DNT: 1 */
#define NGX_HTTP_OMNI_QREC_NEW  0x08    /* a browser's first request */


/*
 * A queued event job: this header, the text, then one entry per valid
 * event: u16 index, u8 length, its messageId (the one the worker parsed,
 * made up when the event had none, so both parses agree).
 */
typedef struct {
    uint32_t            len;
    u_char              type;
    u_char              trust;
    u_char              source;
    u_char              visitor_kind;
    uint32_t            now;
    uint32_t            channel;
    uint32_t            origin;         /* the waiting worker's pid */
    uint32_t            nids;
    uint64_t            job;
    u_char              visitor[OMNI_ID_LEN];
    uint32_t            text_len;
} ngx_http_omni_qjrec_t;


static ngx_int_t ngx_http_omni_queue_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_omni_lock(ngx_log_t *log);
static void ngx_http_omni_unlock(void);
static void ngx_http_omni_lease_handler(ngx_event_t *ev);


static ngx_shm_zone_t  *ngx_http_omni_queue_zone;
static ngx_event_t      ngx_http_omni_lease_ev;
static ngx_fd_t         ngx_http_omni_lock_fd = NGX_INVALID_FILE;
static ngx_uint_t       ngx_http_omni_lock_held;
static time_t           ngx_http_omni_lock_logged;


ngx_int_t
ngx_http_omni_queue_add(ngx_conf_t *cf, ngx_http_omni_main_conf_t *mcf)
{
    size_t      size;
    ngx_str_t   name;

    ngx_str_set(&name, "omni_store");

    /*
     * The ring, the zone header and the slab pool's own pages.  The size
     * depends only on queue=, so a reload that keeps it keeps the zone.
     */
    size = mcf->queue_size * NGX_HTTP_OMNI_QREC_AVG
           + ngx_http_omni_activity_size(mcf->activity);
    size += sizeof(ngx_http_omni_queue_t) + size / 32 + 64 * ngx_pagesize;

    mcf->queue_zone = ngx_shared_memory_add(cf, &name, size,
                                            &ngx_http_omni_module);
    if (mcf->queue_zone == NULL) {
        return NGX_ERROR;
    }

    mcf->queue_zone->init = ngx_http_omni_queue_init_zone;
    mcf->queue_zone->data = mcf;

    return NGX_OK;
}


static ngx_int_t
ngx_http_omni_queue_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    size_t                      ring;
    ngx_slab_pool_t            *shpool;
    ngx_http_omni_queue_t      *q;
    ngx_http_omni_main_conf_t  *mcf;

    mcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data) {
        /* A reload: the old zone, queued touches and lease included. */
        shm_zone->data = data;
        return NGX_OK;
    }

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    ring = mcf->queue_size * NGX_HTTP_OMNI_QREC_AVG;

    q = ngx_slab_calloc(shpool, sizeof(ngx_http_omni_queue_t) + ring);
    if (q == NULL) {
        return NGX_ERROR;
    }

    q->size = ring;

    if (ngx_http_omni_activity_init(shpool, q, mcf->activity) != NGX_OK) {
        return NGX_ERROR;
    }

    /* Tells this zone's batches from any other's in meta "queue". */
    if (RAND_bytes((u_char *) &q->id, sizeof(q->id)) != 1 || q->id == 0) {
        q->id = ((uint64_t) ngx_time() << 20) ^ (uint64_t) ngx_pid ^ 1;
    }

    shpool->data = q;
    shm_zone->data = q;

    shpool->log_ctx = (u_char *) " in omni_store zone";
    shpool->log_nomem = 0;

    return NGX_OK;
}


ngx_http_omni_queue_t *
ngx_http_omni_queue(void)
{
    if (ngx_http_omni_queue_zone == NULL) {
        return NULL;
    }

    return ngx_http_omni_queue_zone->data;
}


static ngx_shmtx_t *
ngx_http_omni_queue_mutex(void)
{
    return &((ngx_slab_pool_t *) ngx_http_omni_queue_zone->shm.addr)->mutex;
}


/* The zone's mutex: the queue's tail and the activity table. */
void
ngx_http_omni_queue_lock(void)
{
    ngx_shmtx_lock(ngx_http_omni_queue_mutex());
}


void
ngx_http_omni_queue_unlock(void)
{
    ngx_shmtx_unlock(ngx_http_omni_queue_mutex());
}


/* ---- producers: every worker, on the event loop ---- */

/*
 * Copies a record into the ring, with a pad record first when it would
 * not fit before the ring's end; *end gets the position after it.  The
 * caller holds the mutex.  NGX_DECLINED: no room.
 */
static ngx_int_t
ngx_http_omni_queue_append(ngx_http_omni_queue_t *qu, const u_char *rec,
    size_t len, uint64_t *end)
{
    u_char    *p;
    size_t     off, pad;
    uint64_t   tail;

    tail = qu->tail;
    off = tail % qu->size;
    pad = (qu->size - off < len) ? qu->size - off : 0;

    if (tail + pad + len - qu->head > qu->size) {
        return NGX_DECLINED;
    }

    if (pad) {
        p = qu->ring + off;
        ((ngx_http_omni_qrec_t *) p)->len = (uint32_t) pad;
        ((ngx_http_omni_qrec_t *) p)->type = NGX_HTTP_OMNI_REC_PAD;
        tail += pad;
        off = 0;
    }

    ngx_memcpy(qu->ring + off, rec, len);

    /* Published last: the writer never sees half a record. */
    ngx_memory_barrier();
    qu->tail = tail + len;
    *end = tail + len;

    return NGX_OK;
}

static u_char *
ngx_http_omni_queue_str(u_char *p, uint16_t *len, const u_char *s,
    size_t n, size_t max)
{
    if (s == NULL) {
        *len = 0;
        return p;
    }

    n = ngx_min(n, max);
    *len = (uint16_t) n;

    return ngx_cpymem(p, s, n);
}


/* A query argument, %XX-decoded into p. */
static u_char *
ngx_http_omni_queue_arg(ngx_http_request_t *r, u_char *p, uint16_t *len,
    const char *name)
{
    u_char     *dst, *src;
    ngx_str_t   arg;

    *len = 0;

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), &arg) != NGX_OK
        || arg.len == 0)
    {
        return p;
    }

    arg.len = ngx_min(arg.len, OMNI_FEED_MAX_UTM * 3);

    /* Decoding never grows a string. */
    dst = p;
    src = arg.data;
    ngx_unescape_uri(&dst, &src, arg.len, NGX_UNESCAPE_URI);

    *len = (uint16_t) ngx_min((size_t) (dst - p), OMNI_FEED_MAX_UTM);

    return p + *len;
}


/*
 * Queues the request's touch: serialized on the stack, then copied into
 * the ring under the zone's mutex.  NGX_DECLINED when the ring is full
 * (counted as dropped).
 */
ngx_int_t
ngx_http_omni_queue_touch(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx,
    ngx_uint_t channel)
{
    u_char                 *p, *q;
    size_t                  len;
    uint64_t                end_pos;
    ngx_http_request_t     *m;
    ngx_http_omni_qrec_t   *h;
    ngx_http_omni_queue_t  *qu;

    /* The header and the longest strings it may carry. */
    u_char  buf[sizeof(ngx_http_omni_qrec_t) + 2 * NGX_HTTP_OMNI_MAX_LIST
                + OMNI_FEED_MAX_PATH + OMNI_FEED_MAX_REF
                + 3 * OMNI_FEED_MAX_UTM * 3 + 8];

    qu = ngx_http_omni_queue();
    if (qu == NULL) {
        return NGX_DECLINED;
    }

    m = r->main;
    h = (ngx_http_omni_qrec_t *) buf;
    ngx_memzero(h, sizeof(ngx_http_omni_qrec_t));

    h->type = NGX_HTTP_OMNI_REC_TOUCH;
    h->kind = ctx->identity == NGX_HTTP_OMNI_ID_TOKEN ? OMNI_ALIAS_DEVICE
                                                      : OMNI_ALIAS_COOKIE;
    h->channel = (u_char) channel;
    h->record = !ctx->touch_bare;
    h->time = (uint32_t) ngx_time();
    ngx_memcpy(h->id, ctx->vid, OMNI_ID_LEN);
    ngx_memcpy(h->country, ctx->country, sizeof(h->country));

    /* The profile this request read: the writer needs no alias read. */
    if (ctx->resolved && !ctx->store_error && !ctx->pid_fixed) {
        h->flags |= NGX_HTTP_OMNI_QREC_PID;
        ngx_memcpy(h->pid, ctx->pid, OMNI_ID_LEN);
    }

    p = buf + sizeof(ngx_http_omni_qrec_t);

    /* What this response showed counts against frequency caps. */
    if (ctx->impressions && ctx->decision) {
        p = ngx_http_omni_queue_str(p, &h->lens[0],
                                    ctx->decision->campaigns.data,
                                    ctx->decision->campaigns.len,
                                    NGX_HTTP_OMNI_MAX_LIST);
        p = ngx_http_omni_queue_str(p, &h->lens[1],
                                    ctx->decision->rules.data,
                                    ctx->decision->rules.len,
                                    NGX_HTTP_OMNI_MAX_LIST);
    }

    if (ctx->identity == NGX_HTTP_OMNI_ID_NEW) {
        h->flags |= NGX_HTTP_OMNI_QREC_NEW;
    }

    if (ctx->signal == NGX_HTTP_OMNI_SIGNAL_GPC) {
        h->flags |= NGX_HTTP_OMNI_QREC_GPC;

    } else if (ctx->signal == NGX_HTTP_OMNI_SIGNAL_DNT) {
        h->flags |= NGX_HTTP_OMNI_QREC_DNT;
    }

    /*
     * A touch without analytics consent carries nothing about the page;
     * an opt-out signal keeps the page but not where the visitor came
     * from (referrer, campaign parameters).
     */
    if (ctx->touch_bare) {
        goto done;
    }

    /* The path the client asked for, before any internal redirect. */
    len = m->unparsed_uri.len;
    q = ngx_strlchr(m->unparsed_uri.data, m->unparsed_uri.data + len, '?');
    if (q) {
        len = q - m->unparsed_uri.data;
    }

    p = ngx_http_omni_queue_str(p, &h->lens[2], m->unparsed_uri.data, len,
                                OMNI_FEED_MAX_PATH);

    if (ctx->signal) {
        goto done;
    }

    if (m->headers_in.referer) {
        p = ngx_http_omni_queue_str(p, &h->lens[3],
                                    m->headers_in.referer->value.data,
                                    m->headers_in.referer->value.len,
                                    OMNI_FEED_MAX_REF);
    }

    p = ngx_http_omni_queue_arg(m, p, &h->lens[4], "utm_source");
    p = ngx_http_omni_queue_arg(m, p, &h->lens[5], "utm_medium");
    p = ngx_http_omni_queue_arg(m, p, &h->lens[6], "utm_campaign");

done:

    len = ngx_align(p - buf, 8);
    h->len = (uint32_t) len;

    ngx_shmtx_lock(ngx_http_omni_queue_mutex());

    if (ngx_http_omni_queue_append(qu, buf, len, &end_pos) != NGX_OK) {
        /* its impressions will not be committed: cancel them */
        ngx_http_omni_activity_settle(qu, ctx->act_seq, ctx->nact, 0);
        ngx_shmtx_unlock(ngx_http_omni_queue_mutex());
        ctx->nact = 0;

        /* Overload: drop and count, never block the request. */
        if (ngx_atomic_fetch_add(&qu->dropped, 1) % 10000 == 0) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "omni: writer queue full (%uz bytes), %uA "
                          "touchpoint(s) dropped so far", qu->size,
                          qu->dropped);
        }

        return NGX_DECLINED;
    }

    /*
     * Reserved impressions now belong to this touch: counted by
     * decisions until a snapshot holds it.  Without a delivery nothing
     * is counted: cancelled.
     */
    if (ctx->nact) {
        ngx_http_omni_activity_settle(qu, ctx->act_seq, ctx->nact,
                                      h->lens[0] ? end_pos : 0);
        ctx->nact = 0;
    }

    /* The touch itself: visits and last seen before the fold. */
    ngx_http_omni_activity_touch(qu, (h->flags & NGX_HTTP_OMNI_QREC_PID)
                                     ? h->pid : h->id,
                                 h->time, channel, end_pos,
                                 r->connection->log);

    ngx_shmtx_unlock(ngx_http_omni_queue_mutex());

    (void) ngx_atomic_fetch_add(&qu->queued, 1);

    return NGX_OK;
}


/*
 * Queues an event job: its text, the context it was parsed with and the
 * messageIds the parse gave its valid events.  NGX_BUSY: no room (the
 * caller answers 503), NGX_DECLINED: no queue.
 */
ngx_int_t
ngx_http_omni_queue_job(ngx_http_omni_wjob_t *job, ngx_log_t *log)
{
    u_char                 *buf, *p;
    size_t                  len, n;
    uint64_t                end;
    ngx_int_t               rc;
    ngx_uint_t              i, nids;
    ngx_http_omni_qjrec_t  *h;
    ngx_http_omni_queue_t  *qu;

    qu = ngx_http_omni_queue();
    if (qu == NULL) {
        return NGX_DECLINED;
    }

    len = sizeof(ngx_http_omni_qjrec_t) + job->len;

    for (i = 0; i < job->batch->n; i++) {
        if (job->batch->rc[i] == OMNI_OK) {
            len += 3 + ngx_strlen(job->batch->events[i].message_id);
        }
    }

    len = ngx_align(len, 8);

    /* a job never takes more than a quarter of the ring */
    if (len > qu->size / 4) {
        return NGX_BUSY;
    }

    buf = ngx_alloc(len, log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    h = (ngx_http_omni_qjrec_t *) buf;
    ngx_memzero(h, sizeof(ngx_http_omni_qjrec_t));

    h->len = (uint32_t) len;
    h->type = NGX_HTTP_OMNI_REC_JOB;
    /* the high nibble: the type a Segment path implies (/v1/track) */
    h->trust = (u_char) (job->ec.trust | (job->ec.type << 4));
    h->source = (u_char) job->ec.source;
    h->visitor_kind = (u_char) job->ec.visitor_kind;
    h->now = job->ec.now;
    h->channel = job->ec.channel;
    h->origin = (uint32_t) ngx_pid;
    h->job = job->id;
    ngx_memcpy(h->visitor, job->ec.visitor, OMNI_ID_LEN);
    h->text_len = (uint32_t) job->len;

    p = ngx_cpymem(buf + sizeof(ngx_http_omni_qjrec_t), job->text, job->len);
    nids = 0;

    for (i = 0; i < job->batch->n; i++) {
        if (job->batch->rc[i] != OMNI_OK) {
            continue;
        }

        n = ngx_strlen(job->batch->events[i].message_id);
        *p++ = (u_char) (i & 0xff);
        *p++ = (u_char) (i >> 8);
        *p++ = (u_char) n;
        p = ngx_cpymem(p, job->batch->events[i].message_id, n);
        nids++;
    }

    h->nids = (uint32_t) nids;

    ngx_shmtx_lock(ngx_http_omni_queue_mutex());
    rc = ngx_http_omni_queue_append(qu, buf, len, &end);
    ngx_shmtx_unlock(ngx_http_omni_queue_mutex());

    ngx_free(buf);

    if (rc != NGX_OK) {
        return NGX_BUSY;
    }

    (void) ngx_atomic_fetch_add(&qu->ev_queued, 1);

    return NGX_OK;
}


/* ---- the consumer: the lease holder's writer task, in a pool thread ---- */

/*
 * Decodes the records at [from, to), at most max touches, into ops: the
 * strings point into the ring, which no producer overwrites before the
 * head moves past them.  Returns the count; *end is where decoding
 * stopped.
 */
ngx_uint_t
ngx_http_omni_queue_read(ngx_http_omni_queue_t *qu, uint64_t from,
    uint64_t to, omni_touch_t *ops, ngx_uint_t max,
    ngx_http_omni_qjob_t *jobs, ngx_uint_t maxjobs, ngx_uint_t *njobs,
    uint32_t visit_timeout, uint64_t *end)
{
    u_char                 *p;
    ngx_uint_t              n;
    omni_touch_t           *t;
    ngx_http_omni_qrec_t   *h;
    ngx_http_omni_qjob_t   *j;
    ngx_http_omni_qjrec_t  *jh;

    n = 0;
    *njobs = 0;

    /* jobs NULL: touches only (the fold) */
    while (from < to && n < max && (jobs == NULL || *njobs < maxjobs)) {
        h = (ngx_http_omni_qrec_t *) (qu->ring + from % qu->size);

        if (h->len < 8 || h->len > to - from) {
            /* Cannot happen short of memory corruption: skip it all. */
            from = to;
            break;
        }

        from += h->len;

        if (h->type == NGX_HTTP_OMNI_REC_JOB) {
            if (jobs == NULL) {
                continue;
            }

            jh = (ngx_http_omni_qjrec_t *) h;
            j = &jobs[(*njobs)++];
            ngx_memzero(j, sizeof(ngx_http_omni_qjob_t));

            j->origin = (ngx_pid_t) jh->origin;
            j->id = jh->job;
            j->text = (u_char *) (jh + 1);
            j->len = jh->text_len;
            j->ec.trust = jh->trust & 0x0f;
            j->ec.type = jh->trust >> 4;
            j->ec.source = jh->source;
            j->ec.now = jh->now;
            j->ec.channel = jh->channel;
            j->ec.visitor_kind = jh->visitor_kind;
            ngx_memcpy(j->ec.visitor, jh->visitor, OMNI_ID_LEN);
            j->visit_timeout = visit_timeout;
            j->ids = j->text + j->len;
            j->nids = jh->nids;
            continue;
        }

        if (h->type != NGX_HTTP_OMNI_REC_TOUCH) {
            continue;
        }

        t = &ops[n++];
        ngx_memzero(t, sizeof(omni_touch_t));

        t->kind = h->kind;
        ngx_memcpy(t->id, h->id, OMNI_ID_LEN);
        t->channel = h->channel;
        t->time = h->time;
        t->visit_timeout = visit_timeout;
        t->record = h->record;
        ngx_memcpy(t->country, h->country, sizeof(t->country));

        if (h->flags & NGX_HTTP_OMNI_QREC_PID) {
            t->pid_known = 1;
            ngx_memcpy(t->pid, h->pid, OMNI_ID_LEN);
        }

        t->first = (h->flags & NGX_HTTP_OMNI_QREC_NEW) ? 1 : 0;
        t->privacy = (h->flags & NGX_HTTP_OMNI_QREC_GPC) ? OMNI_PRIVACY_GPC
                     : (h->flags & NGX_HTTP_OMNI_QREC_DNT) ? OMNI_PRIVACY_DNT
                     : 0;

        p = (u_char *) h + sizeof(ngx_http_omni_qrec_t);

#define ngx_http_omni_queue_field(s, l, i)                                    \
        (s) = h->lens[i] ? (const char *) p : NULL;                           \
        (l) = h->lens[i];                                                     \
        p += h->lens[i]

        ngx_http_omni_queue_field(t->campaigns, t->campaigns_len, 0);
        ngx_http_omni_queue_field(t->rules, t->rules_len, 1);
        ngx_http_omni_queue_field(t->path, t->path_len, 2);
        ngx_http_omni_queue_field(t->referrer, t->referrer_len, 3);
        ngx_http_omni_queue_field(t->utm[0], t->utm_len[0], 4);
        ngx_http_omni_queue_field(t->utm[1], t->utm_len[1], 5);
        ngx_http_omni_queue_field(t->utm[2], t->utm_len[2], 6);

#undef ngx_http_omni_queue_field
    }

    *end = from;

    return n;
}


/* The writer logged everything before pos (n touches more). */
void
ngx_http_omni_queue_logged(ngx_http_omni_queue_t *qu, uint64_t pos,
    ngx_uint_t n)
{
    qu->appended = pos;
    (void) ngx_atomic_fetch_add(&qu->consumed, n);
}


/*
 * The writer folded everything before pos into the profiles: producers
 * may reuse it.
 */
void
ngx_http_omni_queue_folded(ngx_http_omni_queue_t *qu, uint64_t pos)
{
    ngx_memory_barrier();
    qu->head = pos;
}


/* Touches queued and not yet consumed (approximately, while it moves). */
ngx_uint_t
ngx_http_omni_queue_pending(ngx_http_omni_queue_t *qu)
{
    ngx_atomic_uint_t  queued, consumed;

    consumed = qu->consumed;
    queued = qu->queued;

    return queued > consumed ? (ngx_uint_t) (queued - consumed) : 0;
}


/* ---- the writer lease ---- */

ngx_uint_t
ngx_http_omni_queue_holder(void)
{
    ngx_http_omni_queue_t  *qu;

    qu = ngx_http_omni_queue();

    return qu != NULL && qu->lease == (ngx_atomic_uint_t) ngx_pid;
}


/*
 * The store's writer lock, across nginx generations: flock() on
 * "writer.lock" in the store directory, never waited for.
 */
static ngx_int_t
ngx_http_omni_lock(ngx_log_t *log)
{
    if (ngx_http_omni_lock_held) {
        return NGX_OK;
    }

    if (ngx_http_omni_lock_fd == NGX_INVALID_FILE) {
        return NGX_OK;          /* no lock file: one generation only */
    }

    if (flock(ngx_http_omni_lock_fd, LOCK_EX | LOCK_NB) == -1) {
        if (ngx_errno == NGX_EAGAIN
            && ngx_time() - ngx_http_omni_lock_logged >= 60)
        {
            /* once a minute while a binary upgrade keeps both */
            ngx_http_omni_lock_logged = ngx_time();
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "omni: another nginx generation's writer holds "
                          "the store, touches are queued until it exits");
        }

        return NGX_DECLINED;
    }

    ngx_http_omni_lock_held = 1;

    return NGX_OK;
}


static void
ngx_http_omni_unlock(void)
{
    if (ngx_http_omni_lock_held) {
        (void) flock(ngx_http_omni_lock_fd, LOCK_UN);
        ngx_http_omni_lock_held = 0;
    }
}


/*
 * Takes the lease when it is free or its holder is gone (also at exit,
 * so the last worker to leave writes what the others queued after); 1:
 * this process holds it.  A holder that
 * died (kill -9, a crash) may have committed a batch without moving the
 * head past it: the store's meta "queue" says where its last batch
 * ended, and the head moves there first.
 */
ngx_uint_t
ngx_http_omni_lease_take(ngx_log_t *log)
{
    uint64_t                pos, fold;
    ngx_pid_t               pid;
    omni_store_t           *st;
    ngx_http_omni_queue_t  *qu;

    qu = ngx_http_omni_queue();
    st = ngx_http_omni_worker_store();

    if (qu == NULL || st == NULL) {
        return 0;
    }

    pid = (ngx_pid_t) qu->lease;

    if (pid == ngx_pid) {
        return 1;
    }

    if (pid != 0 && (kill(pid, 0) == 0 || ngx_errno != NGX_ESRCH)) {
        return 0;
    }

    /* another generation's writer (a binary upgrade) still writes */
    if (ngx_http_omni_lock(log) != NGX_OK) {
        return 0;
    }

    if (!ngx_atomic_cmp_set(&qu->lease, (ngx_atomic_uint_t) pid,
                            (ngx_atomic_uint_t) ngx_pid))
    {
        ngx_http_omni_unlock();
        return 0;
    }

    if (omni_store_queue_pos(st, qu->id, &pos, &fold) != OMNI_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "omni: reading the queue position failed: %s",
                      omni_store_error(st));
        pos = 0;
        fold = 0;
    }

    if (pos > qu->appended && pos <= qu->tail) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "omni: %uL queued byte(s) were logged by the "
                      "previous writer already", pos - qu->appended);
        qu->appended = pos;
    }

    if (fold > qu->head && fold <= qu->appended) {
        ngx_http_omni_queue_folded(qu, fold);
    }

    if (pid != 0) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "omni: writer taken over from process %P, which "
                      "is gone", pid);

    } else {
        ngx_log_error(NGX_LOG_INFO, log, 0, "omni: this worker is the "
                      "store's writer");
    }

    return 1;
}


void
ngx_http_omni_lease_release(void)
{
    ngx_http_omni_queue_t  *qu;

    qu = ngx_http_omni_queue();

    if (qu != NULL
        && ngx_atomic_cmp_set(&qu->lease, (ngx_atomic_uint_t) ngx_pid, 0))
    {
        ngx_http_omni_unlock();
    }
}


static void
ngx_http_omni_lease_handler(ngx_event_t *ev)
{
    /* an exiting worker takes the lease only in its exit handler */
    if (ngx_exiting) {
        return;
    }

    if (ngx_http_omni_lease_take(ev->log)) {
        ngx_http_omni_writer_kick();
    }

    ngx_add_timer(ev, NGX_HTTP_OMNI_LEASE_CHECK);
}


static ngx_fd_t
ngx_http_omni_lock_open(ngx_cycle_t *cycle, ngx_http_omni_main_conf_t *mcf)
{
    u_char    path[NGX_MAX_PATH];
    ngx_fd_t  fd;

    if (mcf->store_path.len + sizeof("/writer.lock") > NGX_MAX_PATH) {
        return NGX_INVALID_FILE;
    }

    ngx_sprintf(path, "%V/writer.lock%Z", &mcf->store_path);

    fd = ngx_open_file(path, NGX_FILE_RDWR, NGX_FILE_CREATE_OR_OPEN,
                       NGX_FILE_DEFAULT_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, ngx_errno,
                      "omni: " ngx_open_file_n " \"%s\" failed: a binary "
                      "upgrade may run two writers", path);
        return NGX_INVALID_FILE;
    }

    (void) fcntl(fd, F_SETFD, FD_CLOEXEC);

    return fd;
}


void
ngx_http_omni_queue_exit_worker(void)
{
    ngx_http_omni_unlock();

    if (ngx_http_omni_lock_fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(ngx_http_omni_lock_fd);
        ngx_http_omni_lock_fd = NGX_INVALID_FILE;
    }
}


ngx_int_t
ngx_http_omni_queue_init_worker(ngx_cycle_t *cycle)
{
    ngx_http_omni_main_conf_t  *mcf;

    ngx_http_omni_queue_zone = NULL;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_omni_module);

    if (mcf == NULL || mcf->queue_zone == NULL
        || ngx_http_omni_worker_store() == NULL)
    {
        return NGX_OK;
    }

    ngx_http_omni_queue_zone = mcf->queue_zone;

    ngx_http_omni_lock_held = 0;
    ngx_http_omni_lock_fd = ngx_http_omni_lock_open(cycle, mcf);

    ngx_memzero(&ngx_http_omni_lease_ev, sizeof(ngx_event_t));
    ngx_http_omni_lease_ev.handler = ngx_http_omni_lease_handler;
    ngx_http_omni_lease_ev.log = cycle->log;
    ngx_http_omni_lease_ev.data = mcf;
    /* a lease check never holds an exiting worker */
    ngx_http_omni_lease_ev.cancelable = 1;

    if (ngx_http_omni_lease_take(cycle->log)) {
        ngx_http_omni_writer_kick();
    }

    ngx_add_timer(&ngx_http_omni_lease_ev, NGX_HTTP_OMNI_LEASE_CHECK);

    return NGX_OK;
}
