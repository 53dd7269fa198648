/*
 * The activity table: impressions shown and not yet in every reader's
 * view of the store, shared by all workers in the "omni_store" zone.
 *
 * Why: a touch reaches the profile record only when the writer commits
 * it, up to a batch later.  Without this table, two requests of one
 * visitor on two workers within that window both see the profile before
 * either impression and both pass a cap at its last impression.
 *
 * How: a decision that shows a capped campaign (one some rule caps or
 * cools down) reserves one entry per such campaign, under the zone's
 * mutex, after checking that the caps still hold with every entry
 * already there (omni_decision_caps_hold()); when they no longer do, it
 * decides again with them counted.  When the request's touch is queued
 * (same mutex) its entries get the queue position the touch ends at, or
 * are cancelled when nothing was delivered.  A decision counts the
 * entries of its profile that its LMDB snapshot does not hold yet: those
 * still pending, and those whose position is past the one the snapshot's
 * meta "queue" says the writer committed.  Counted exactly once, either
 * way.
 *
 * Every queued touch also gets an entry (campaign 0) with its channel,
 * time and queue position: a profile read adds the visits, the visit's
 * last hit and the last seen per channel of its touches that the
 * snapshot's fold does not hold yet, as the fold will (see
 * ngx_http_omni_activity_overlay()), so a second page view within the
 * fold interval already sees the first one.
 *
 * The table is a circular array of entries (activity=N, a power of two)
 * with two hash indexes by profile id, one for touches and one for
 * impressions; each entry links to the previous one of its bucket, so a
 * decision's walk for impressions never steps over page views, nor the
 * overlay's walk for page views over impressions.  A touch's queue
 * position grows with its entry's sequence number (both are taken under
 * the mutex), so the overlay's walk, newest first, stops at the first
 * touch of the profile that the reader's snapshot holds.  Impressions
 * get the same order: a reservation is pending (position 0) until its
 * request's touch is queued, when it is cancelled and a settled copy
 * with the touch's position is added at the head of the chain; with the
 * count of pending entries per bucket, a decision's walk stops at the
 * first settled impression the snapshot holds once it has seen every
 * pending one.  The oldest entry is overwritten by the newest:
 * with N at least a few seconds of capped impressions, only committed
 * entries go.  Overwriting one the writer has not committed yet (a table
 * too small for the rate, or a writer far behind) is counted and logged:
 * caps are then exact only up to what was lost.
 */

#include "ngx_http_omni_module.h"
#include "omni_batch.h"
#include "omni_update.h"


struct ngx_http_omni_act_s {
    uint64_t            seq;            /* 1-based; 0: never used */
    uint64_t            prev;           /* the bucket's previous seq */
    uint64_t            campaign;       /* omni_campaign_hash(); 0: a
                                           touch (a page view) */
    uint64_t            pos;            /* 0: pending */
    u_char              pid[OMNI_ID_LEN];
    uint32_t            time;
    uint32_t            channel;        /* touches: OMNI_CH_* */
};


#define NGX_HTTP_OMNI_ACT_CANCELLED  ((uint64_t) -1)

/* pending impressions of impression bucket b (b >= nact) */
#define ngx_http_omni_act_pending(qu, b)  (qu)->act_bucket[(b) + (qu)->nact]
#define NGX_HTTP_OMNI_ACT_WALK       256     /* entries per lookup, max */


size_t
ngx_http_omni_activity_size(ngx_uint_t n)
{
    return n * (sizeof(ngx_http_omni_act_t) + 3 * sizeof(uint64_t));
}


ngx_int_t
ngx_http_omni_activity_init(ngx_slab_pool_t *shpool,
    ngx_http_omni_queue_t *qu, ngx_uint_t n)
{
    qu->act = ngx_slab_calloc(shpool, n * sizeof(ngx_http_omni_act_t));
    /* touches' buckets, impressions', impressions' pending counts */
    qu->act_bucket = ngx_slab_calloc(shpool, 3 * n * sizeof(uint64_t));

    if (qu->act == NULL || qu->act_bucket == NULL) {
        return NGX_ERROR;
    }

    qu->nact = n;
    qu->act_next = 1;

    return NGX_OK;
}


/*
 * The bucket of pid's touches (impression 0) or impressions (1).  All 16
 * bytes are mixed (murmur3's finalizer): minted ids are random, but
 * imported ones can be anything, e.g. counters whose first 8 bytes are
 * all zero (bench/gen-profiles.pl), which would put every profile into
 * one bucket and every lookup on one long chain.
 */
static ngx_uint_t
ngx_http_omni_activity_bucket(ngx_http_omni_queue_t *qu, const u_char *pid,
    ngx_uint_t impression)
{
    uint64_t  h, l;

    ngx_memcpy(&h, pid, sizeof(h));
    ngx_memcpy(&l, pid + sizeof(h), sizeof(l));

    h ^= l * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;

    return ((ngx_uint_t) h & (qu->nact - 1)) + (impression ? qu->nact : 0);
}


/*
 * The next entry of pid along its hash chain, newest first, from *s (the
 * bucket's head to begin with); NULL at the chain's end, where the
 * table overwrote it, or after NGX_HTTP_OMNI_ACT_WALK entries.  The
 * caller holds the zone's mutex.
 */
static ngx_http_omni_act_t *
ngx_http_omni_activity_next(ngx_http_omni_queue_t *qu, const u_char *pid,
    uint64_t *s, ngx_uint_t *walk)
{
    ngx_http_omni_act_t  *e;

    while (*s && (*walk)++ < NGX_HTTP_OMNI_ACT_WALK) {
        e = &qu->act[(*s - 1) & (qu->nact - 1)];

        if (e->seq != *s) {
            break;              /* overwritten: the rest is older */
        }

        *s = e->prev;

        if (ngx_memcmp(e->pid, pid, OMNI_ID_LEN) == 0) {
            return e;
        }
    }

    *s = 0;

    return NULL;
}


/*
 * The impressions of pid that a snapshot at queue position snap does
 * not hold (snap 0: it holds none), at most max of them.  The caller
 * holds the zone's mutex.
 */
ngx_uint_t
ngx_http_omni_activity_get(ngx_http_omni_queue_t *qu, const u_char *pid,
    uint64_t snap, omni_impr_extra_t *out, ngx_uint_t max)
{
    uint64_t              s, pending, seen;
    ngx_uint_t            n, b, walk;
    ngx_http_omni_act_t  *e;

    n = 0;
    seen = 0;
    b = ngx_http_omni_activity_bucket(qu, pid, 1);
    pending = ngx_http_omni_act_pending(qu, b);
    s = qu->act_bucket[b];

    for (walk = 0; s && n < max && walk < NGX_HTTP_OMNI_ACT_WALK; walk++) {
        e = &qu->act[(s - 1) & (qu->nact - 1)];

        if (e->seq != s) {
            break;              /* overwritten: the rest is older */
        }

        s = e->prev;

        if (e->pos == NGX_HTTP_OMNI_ACT_CANCELLED) {
            continue;
        }

        if (e->pos == 0) {
            seen++;             /* pending: counts, however old */

        } else if (snap != 0 && e->pos <= snap) {
            /*
             * Held by the snapshot, and so is every older settled one
             * (they are in settle order): done once no pending one can
             * be further down.
             */
            if (seen >= pending) {
                break;
            }

            continue;
        }

        if (ngx_memcmp(e->pid, pid, OMNI_ID_LEN) != 0) {
            continue;
        }

        out[n].campaign = e->campaign;
        out[n].time = e->time;
        n++;
    }

    return n;
}


/*
 * A new entry at the head of pid's chain (bucket b: touches'
 * or impressions'), overwriting the oldest of the table.  The caller
 * holds the zone's mutex.
 */
static uint64_t
ngx_http_omni_activity_put(ngx_http_omni_queue_t *qu, const u_char *pid,
    ngx_uint_t b, uint64_t campaign, uint32_t time, uint64_t pos,
    ngx_log_t *log)
{
    uint64_t              s;
    ngx_http_omni_act_t  *e;

    s = qu->act_next++;
    e = &qu->act[(s - 1) & (qu->nact - 1)];

    if (e->seq
        && e->pos != NGX_HTTP_OMNI_ACT_CANCELLED
        && (e->pos == 0 || e->pos > qu->head))
    {
        /* a pending impression goes: its bucket counts one less */
        if (e->pos == 0 && e->campaign != 0) {
            ngx_http_omni_act_pending(qu,
                ngx_http_omni_activity_bucket(qu, e->pid, 1))--;
        }

        /* still needed: the table is too small for the rate */
        if (ngx_atomic_fetch_add(&qu->act_evicted, 1) % 10000 == 0) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "omni: activity table full (activity=%ui): "
                          "an entry the writer has not folded was "
                          "overwritten, frequency caps may be "
                          "exceeded; %uA so far", qu->nact,
                          qu->act_evicted + 1);
        }
    }

    e->seq = s;
    e->prev = qu->act_bucket[b];
    e->campaign = campaign;
    e->pos = pos;
    e->time = time;
    e->channel = 0;
    ngx_memcpy(e->pid, pid, OMNI_ID_LEN);

    qu->act_bucket[b] = s;

    if (campaign != 0 && pos == 0) {
        ngx_http_omni_act_pending(qu, b)++;
    }

    return s;
}


/*
 * Reserves one entry per campaign for pid, seqs[] receiving them.  The
 * caller holds the zone's mutex.
 */
void
ngx_http_omni_activity_reserve(ngx_http_omni_queue_t *qu, const u_char *pid,
    const uint64_t *campaigns, ngx_uint_t n, uint32_t now, uint64_t *seqs,
    ngx_log_t *log)
{
    ngx_uint_t  i, b;

    b = ngx_http_omni_activity_bucket(qu, pid, 0);

    for (i = 0; i < n; i++) {
        seqs[i] = ngx_http_omni_activity_put(qu, pid,
                                             b + (campaigns[i] ? qu->nact
                                                               : 0),
                                             campaigns[i], now, 0, log);
    }
}


/*
 * The request's touch is queued and ends at pos (0: nothing was
 * delivered, or the touch was dropped: the entries are cancelled).  A
 * settled reservation is cancelled and added again, settled, at the
 * head of its chain, so that settled impressions stay in the order of
 * their positions (the queue's, taken under the same mutex).  The caller
 * holds the zone's mutex.
 */
void
ngx_http_omni_activity_settle(ngx_http_omni_queue_t *qu,
    const uint64_t *seqs, ngx_uint_t n, uint64_t pos)
{
    u_char                pid[OMNI_ID_LEN];
    uint32_t              time;
    uint64_t              campaign;
    ngx_uint_t            i, b;
    ngx_http_omni_act_t  *e;

    for (i = 0; i < n; i++) {
        e = &qu->act[(seqs[i] - 1) & (qu->nact - 1)];

        if (e->seq != seqs[i] || e->pos != 0) {
            continue;           /* overwritten, or settled already */
        }

        e->pos = NGX_HTTP_OMNI_ACT_CANCELLED;

        if (e->campaign == 0) {
            continue;
        }

        b = ngx_http_omni_activity_bucket(qu, e->pid, 1);
        ngx_http_omni_act_pending(qu, b)--;

        if (pos == 0) {
            continue;
        }

        ngx_memcpy(pid, e->pid, OMNI_ID_LEN);
        campaign = e->campaign;
        time = e->time;

        (void) ngx_http_omni_activity_put(qu, pid, b, campaign, time, pos,
                                          ngx_cycle->log);
    }
}


/*
 * A queued touch: its entry, settled at once with the position its
 * record ends at.  The caller holds the zone's mutex.
 */
void
ngx_http_omni_activity_touch(ngx_http_omni_queue_t *qu, const u_char *pid,
    uint32_t time, ngx_uint_t channel, uint64_t pos, ngx_log_t *log)
{
    uint64_t  seq;

    seq = ngx_http_omni_activity_put(qu, pid,
                                     ngx_http_omni_activity_bucket(qu, pid, 0),
                                     0, time, pos, log);

    qu->act[(seq - 1) & (qu->nact - 1)].channel = (uint32_t) channel;
}


/*
 * Adds to the profile view what pid's touches that the snapshot at fold
 * position snap does not hold will add when folded: visits (a touch
 * more than visit_timeout after the visit's last hit starts a visit),
 * the visit's last hit, last seen per channel.  Takes the zone's mutex;
 * reads meta "queue" in st's open read window (ngx_http_omni_read_snap(),
 * once per window) only when pid's bucket has touches.  Returns how many
 * touches it counted.
 */
ngx_uint_t
ngx_http_omni_activity_overlay(ngx_http_omni_queue_t *qu, const u_char *pid,
    omni_store_t *st, uint32_t visit_timeout, omni_rec_t *rec)
{
    uint64_t              s, snap;
    uint32_t              times[NGX_HTTP_OMNI_ACT_WALK];
    u_char                chans[NGX_HTTP_OMNI_ACT_WALK];
    ngx_uint_t            n, b, walk;
    ngx_http_omni_act_t  *e;

    b = ngx_http_omni_activity_bucket(qu, pid, 0);

    /*
     * An empty bucket, read without the mutex: the same as having taken
     * it a moment earlier, before a touch another request is queuing.
     */
    if (qu->act_bucket[b] == 0) {
        return 0;
    }

    /* what the reader's snapshot has folded already (meta "queue") */
    if (ngx_http_omni_read_snap(st, qu->id, &snap) != NGX_OK) {
        snap = 0;
    }

    n = 0;
    walk = 0;

    ngx_http_omni_queue_lock();

    s = qu->act_bucket[b];

    while ((e = ngx_http_omni_activity_next(qu, pid, &s, &walk)) != NULL) {
        if (e->campaign != 0 || e->pos == 0) {
            continue;           /* not a touch (or not queued) */
        }

        if (e->pos <= snap) {
            break;              /* held, and so is every older touch */
        }

        times[n] = e->time;
        chans[n] = (u_char) e->channel;
        n++;
    }

    ngx_http_omni_queue_unlock();

    /* newest first: fold them oldest first, as the writer will */
    for (walk = n; walk > 0; walk--) {
        omni_visit_count(&rec->visits, &rec->visit_last, rec->last_seen,
                         chans[walk - 1], times[walk - 1], visit_timeout);
    }

    return n;
}
