/*
 * Profile updates shared by every writer: the module's writer task and
 * omnictl.  Each function runs inside a caller's write transaction, so a
 * batch of updates commits as one (group commit).
 */

#ifndef OMNI_UPDATE_H
#define OMNI_UPDATE_H

#include "omni_store.h"

#define OMNI_VISIT_TIMEOUT_DEFAULT  1800        /* 30 minutes */

/* One request seen from an identified visitor or device. */
#define OMNI_PRIVACY_GPC     1           /* Sec-GPC: 1 */
#define OMNI_PRIVACY_DNT     2           /* DNT: 1 */

typedef struct {
    unsigned        kind;               /* OMNI_ALIAS_COOKIE or _DEVICE */
    unsigned char   id[OMNI_ID_LEN];    /* the visitor or device id */
    unsigned        channel;            /* OMNI_CH_* */
    uint32_t        time;
    uint32_t        visit_timeout;      /* seconds; 0: the default */
    /* campaigns shown by this request, comma-separated (not NUL-
       terminated): one impression each, for frequency caps */
    const char     *campaigns;
    size_t          campaigns_len;

    /* the touchpoint (omni_feed.h); strings are not NUL-terminated */
    unsigned        record:1;           /* append one to the log */
    /* the visitor's opt-out signal (OMNI_PRIVACY_*): its touchpoint has
       no referrer or campaign data and says so */
    unsigned        privacy:2;
    /* a browser's first request (it sent no cookie): logged, but the
       fold creates no profile for it (omni_batch_apply()) */
    unsigned        first:1;
    const char     *rules;              /* shown rule ids, comma-sep. */
    size_t          rules_len;
    const char     *path;
    size_t          path_len;
    const char     *referrer;
    size_t          referrer_len;
    const char     *utm[3];             /* source, medium, campaign */
    size_t          utm_len[3];
    char            country[3];         /* "" when unknown */

    /* the profile the request resolved the identity to, when it did:
       logging it needs no alias read (omni_resolve_touches()) */
    unsigned        pid_known:1;
    unsigned char   pid[OMNI_ID_LEN];
} omni_touch_t;

/*
 * The visit rule every writer and reader applies for one touch at time
 * on channel: a new visit when the profile has none or the last hit of
 * its visit is timeout (0: the default) or more seconds old; the visit's
 * last hit and the channel's last seen move forward.  The module's
 * request path applies it to touches not folded yet, so a profile read
 * agrees with what the fold will write.
 */
void omni_visit_count(uint32_t *visits, uint32_t *visit_last,
    uint32_t *last_seen, unsigned channel, uint32_t time, uint32_t timeout);

/*
 * Resolves the identity to its profile (creating the profile, keyed by
 * the visitor id, on first sight), then updates last seen, the visit
 * count, the impression counters and the journey stage.  pid receives
 * the profile id when not NULL.
 */
int omni_apply_touch(omni_wtxn_t *w, const omni_touch_t *t,
    unsigned char *pid);

/*
 * Applies ops[0..n) with the same result as n calls of omni_apply_touch()
 * in order (profile records, aliases, profile ids), but resolves each
 * identity once and reads, decodes, encodes and writes each profile once
 * however many of the touches it gets (or splices it: omni_splice.h).
 * pids[i], when pids is not NULL, receives ops[i]'s profile id.  On an
 * error the transaction holds part of the batch: abort it.
 */
int omni_apply_touches(omni_wtxn_t *w, const omni_touch_t *ops, size_t n,
    unsigned char (*pids)[OMNI_ID_LEN]);

/* What a batch took, added to by omni_apply_touches_stat(). */
typedef struct {
    size_t          touches;
    size_t          identities;         /* distinct (kind, id) */
    size_t          profiles;           /* distinct profiles: a record
                                           write each when grouped */
    size_t          sequential;         /* touches applied one by one:
                                           the rare batches and profiles
                                           grouping cannot take */
    size_t          spliced;            /* profiles written by the fast
                                           path (omni_splice.h) */
} omni_touches_stat_t;

int omni_apply_touches_stat(omni_wtxn_t *w, const omni_touch_t *ops,
    size_t n, unsigned char (*pids)[OMNI_ID_LEN], omni_touches_stat_t *stat);

/*
 * The fast path (omni_splice.h), on by default: a touch of a known
 * visitor whose profile lists its alias updates the stored record by
 * splicing when that gives the very bytes decoding, changing and
 * encoding it would.  0 turns it off: for tests and benchmarks only.
 */
extern int omni_update_splice;

/*
 * Points alias (kind, value) at profile pid and records it in the
 * profile.  An alias that pointed at another profile is moved (merging
 * two profiles is the identity-stitching layer's job).
 */
int omni_link_alias(omni_wtxn_t *w, const unsigned char *pid, unsigned kind,
    const char *value, size_t len, uint32_t now);

/*
 * Journey stage derivation (documented in docs/rules.md):
 *   loyal     5 or more orders
 *   customer  at least one order
 *   cart      items in the cart
 *   browsing  a second visit, or a product viewed
 *   new       otherwise
 */
unsigned omni_derive_stage(const omni_profile_t *p);

#endif /* OMNI_UPDATE_H */
