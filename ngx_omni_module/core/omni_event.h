/*
 * Event ingest (docs/events.md): events in the shape of the Segment Spec
 * (track, identify, page, screen), validated into omni_event_t and then
 * applied to the store.
 *
 * Parsing and validation run where the event arrives (the module's event
 * loop, omnictl); applying runs inside a caller's write transaction (the
 * module's writer thread, omnictl), so a batch of events commits, and is
 * synced, as one.  Both halves are plain C shared by every channel.
 *
 * Trust: an event from a browser or an app (OMNI_TRUST_CLIENT) is
 * attributed to the requesting visitor and may only be one of the low-
 * trust kinds; purchases, POS and email/SMS events, identify with a
 * customer id or an email, and any event that names another identity
 * need a server key (OMNI_TRUST_SERVER) and otherwise are refused with
 * OMNI_EVENT_FORBIDDEN.
 */

#ifndef OMNI_EVENT_H
#define OMNI_EVENT_H

#include <jansson.h>

#include "omni_store.h"

/* Limits (documented in docs/events.md). */
#define OMNI_EVENT_MAX_BATCH        100
#define OMNI_EVENT_MAX_DEPTH        8       /* nesting of any event */
#define OMNI_EVENT_MAX_PRODUCTS     50      /* per event */
#define OMNI_EVENT_MAX_TRAITS       32
#define OMNI_EVENT_MAX_STR          1024
#define OMNI_EVENT_MAX_ID           128     /* messageId, ids, skus */
#define OMNI_EVENT_MAX_NAME         64      /* track event names */
#define OMNI_EVENT_MAX_FUTURE       86400   /* timestamp skew accepted */
#define OMNI_EVENT_DEDUPE_TTL       (7 * 86400)

/* Parse results beyond OMNI_OK / OMNI_INVALID. */
#define OMNI_EVENT_FORBIDDEN        -20     /* needs a server key */

#define OMNI_TRUST_CLIENT           0       /* browser or app */
#define OMNI_TRUST_SERVER           1       /* server key, upstream, CLI */

enum {
    OMNI_EV_TRACK = 1,
    OMNI_EV_IDENTIFY,
    OMNI_EV_PAGE,
    OMNI_EV_SCREEN,
    OMNI_EV_ALIAS,              /* previousId + userId: links them */
    OMNI_EV_GROUP               /* groupId: the account, attr group_id */
};

/* Track events with a meaning; any other name is counted only. */
enum {
    OMNI_EVN_OTHER = 0,
    OMNI_EVN_PRODUCT_VIEWED,
    OMNI_EVN_PRODUCT_ADDED,
    OMNI_EVN_PRODUCT_REMOVED,
    OMNI_EVN_CART_VIEWED,
    OMNI_EVN_CHECKOUT_STARTED,
    OMNI_EVN_ORDER_COMPLETED,
    OMNI_EVN_PRODUCT_REVIEWED,
    OMNI_EVN_EMAIL_OPENED,
    OMNI_EVN_EMAIL_CLICKED,
    OMNI_EVN_SMS_CLICKED,
    OMNI_EVN_CONSENT_UPDATED,
    OMNI_EVN_SIGNED_OUT
};

/* Where the event came from (the feed's context.source). */
enum {
    OMNI_SRC_CLIENT = 0,        /* omni_events without a key */
    OMNI_SRC_SERVER,            /* omni_events with a server key */
    OMNI_SRC_UPSTREAM,          /* the upstream's X-Omni-Event header */
    OMNI_SRC_CLI,               /* omnictl event */
    OMNI_SRC_COOKIE             /* the site's consent cookie, recorded as
                                   the visitor's Consent Updated */
};

/*
 * Flags over OMNI_SRC_* in omni_event_ctx_t.source (they travel with it
 * to the writer and the journal): the feed keeps the sender's
 * context.ip (omni_events ip=on) as a server sent it, or as the module
 * wrote it into a client's text (the connection's address, whatever the
 * client sent).  Without them context.ip is never kept.
 */
#define OMNI_SRC_MASK        0x0f
#define OMNI_SRC_KEEP_IP     0x10
#define OMNI_SRC_IP_SET      0x20

/*
 * The sending browser or app said Sec-GPC: 1 (or DNT: 1): an opt-out of
 * sale or sharing (docs/privacy.md).  Its events reach the feed without
 * referrer, campaign data or advertising ids, marked context.privacy.
 */
#define OMNI_SRC_GPC         0x40
#define OMNI_SRC_DNT         0x80

/* What the arrival point knows about the request. */
typedef struct {
    unsigned        trust;              /* OMNI_TRUST_* */
    unsigned        source;             /* OMNI_SRC_* */
    uint32_t        now;
    unsigned        channel;            /* the request's; OMNI_CH_MAX: none */
    /* the requesting visitor or device; kind 0 when there is none */
    unsigned        visitor_kind;       /* OMNI_ALIAS_COOKIE / _DEVICE */
    unsigned char   visitor[OMNI_ID_LEN];
    /* every event needs its own messageId (a signed request: a replay
       inside the signature's window must be a duplicate) */
    unsigned        need_message_id;
    /* the type of an event that names none: Segment's single-call
       endpoints (/v1/track, /v1/page, ...) imply it; 0: required */
    unsigned        type;
} omni_event_ctx_t;

typedef struct {
    char           *sku, *name, *category, *url, *image;
    uint32_t        qty;                /* 0: not given */
    double          price;
} omni_event_product_t;

/* An identity the event names; kind 'a' is an anonymousId of unknown
   kind (a visitor or device id, or a profile id), 'p' a profile id.  A
   soft identity (a browser's own Segment anonymousId) never finds,
   merges or takes over a profile: it is linked to the event's profile
   only while nobody else holds it. */
typedef struct {
    unsigned        kind;
    unsigned        soft;
    size_t          len;
    char            value[OMNI_ALIAS_MAX_LEN + 1];
} omni_event_ident_t;

#define OMNI_EVENT_MAX_IDENTS  6

typedef struct {
    unsigned                type;       /* OMNI_EV_* */
    unsigned                name_id;    /* OMNI_EVN_* (track) */
    unsigned                source;
    unsigned                trust;
    char                    name[OMNI_EVENT_MAX_NAME + 1];
    char                    message_id[OMNI_EVENT_MAX_ID + 1];
    uint32_t                time;
    unsigned                channel;    /* OMNI_CH_* */
    uint32_t                visit_timeout;

    omni_event_ident_t      idents[OMNI_EVENT_MAX_IDENTS];
    unsigned                nidents;
    char                    user_id[OMNI_ALIAS_MAX_LEN + 1];

    /* Product Viewed/Added/Removed: products[0]; Order Completed: all */
    omni_event_product_t   *products;
    unsigned                nproducts;
    char                   *order_id;
    double                  revenue;    /* Order Completed: < 0 unknown */

    omni_attr_t            *traits;     /* identify */
    unsigned                ntraits;
    char                  **unset;      /* identify: traits set to null */
    unsigned                nunset;

    /* "Consent Updated", identify traits.consent: OMNI_CONSENT_* bits
       stated granted (consent_on) and refused (consent_off) */
    uint32_t                consent_on;
    uint32_t                consent_off;
    unsigned                has_consent;

    /* For the feed: properties and traits as given (email removed). */
    json_t                 *properties;
    json_t                 *traits_json;

    /* For the feed: the ids as sent (anonymousId, previousId, groupId),
       page name and category, and the sender's context (no ip, no
       email), copied into the touchpoint next to the module's fields */
    json_t                 *feed_extra;
    char                    group_id[OMNI_EVENT_MAX_ID + 1];
} omni_event_t;

/* Where a parse failed: a JSON path ("batch[2].properties.sku") and why. */
typedef struct {
    char            field[128];
    char            reason[256];
} omni_event_err_t;

/*
 * Validates one event object.  Returns OMNI_OK, OMNI_INVALID (a bad
 * field: 400) or OMNI_EVENT_FORBIDDEN (needs a server key: 403), with
 * err filled; `path` prefixes err->field ("" or "batch[2]").  On OMNI_OK
 * the caller owns ev and frees it with omni_event_free().
 */
int omni_event_parse(omni_event_t *ev, json_t *obj, const omni_event_ctx_t *c,
    const char *path, omni_event_err_t *err);
void omni_event_free(omni_event_t *ev);

/*
 * A request body: one event object, {"batch": [...]} or a JSON array.
 * Parses the text (nesting is checked before anything else), then every
 * event: events[i] is valid when rc[i] == OMNI_OK, otherwise errs[i]
 * says why.  Returns OMNI_OK with *n set, or OMNI_INVALID with err set
 * when the body as a whole is unusable (not JSON, too deep, empty or
 * too large a batch).  *batch tells whether the body was a batch.
 * Free with omni_event_batch_free().
 */
typedef struct {
    omni_event_t           *events;
    int                    *rc;
    omni_event_err_t       *errs;
    unsigned                n;
    unsigned                batch;
} omni_event_batch_t;

int omni_event_batch_parse(omni_event_batch_t *b, const char *text,
    size_t len, const omni_event_ctx_t *c, omni_event_err_t *err);
void omni_event_batch_free(omni_event_batch_t *b);

/* The outcome of applying one event. */
#define OMNI_EVENT_ACCEPTED     0
#define OMNI_EVENT_DUPLICATE    1

/*
 * Applies ev inside the caller's write transaction: deduplication by
 * messageId (and order id for purchases), identity resolution and
 * stitching (omni_merge.h), the profile change, and its touchpoint in
 * the feed.  *status gets OMNI_EVENT_ACCEPTED or _DUPLICATE and pid the
 * profile.  Returns OMNI_OK or a store error (the caller aborts).
 */
int omni_event_apply(omni_wtxn_t *w, omni_event_t *ev, int *status,
    unsigned char *pid);

/* Drops idempotency keys older than OMNI_EVENT_DEDUPE_TTL (bounded). */
int omni_event_prune(omni_wtxn_t *w, uint32_t now, unsigned budget);

/* ISO 8601 ("2026-11-24T13:20:05.123Z", "+01:00" offsets) to seconds. */
int omni_event_parse_time(const char *s, size_t len, uint32_t *out);

const char *omni_event_status_name(int status);

/* "track", "identify", ... for OMNI_EV_*, and back (0: none). */
const char *omni_event_type_name(unsigned type);
unsigned omni_event_type_parse(const char *s, size_t len);

#endif /* OMNI_EVENT_H */
