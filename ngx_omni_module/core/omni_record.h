/*
 * Profile record codec.
 *
 * A profile is stored in LMDB as one compact, versioned binary record that
 * the request path reads zero-copy straight from the memory map: no JSON,
 * no allocation.  Writers (the module's writer task, omnictl) decode a
 * record into the mutable omni_profile_t, change it and encode it again.
 *
 * Layout (all integers little-endian, no alignment assumed):
 *
 *   fixed header
 *     0  u16  magic 0x4d4f ("OM")
 *     2  u8   major version (1).  A reader refuses a different major.
 *     3  u8   minor version.  Minors only append; readers ignore extras.
 *     4  u16  header length H (bytes, from offset 0).  Fields beyond what
 *             a reader knows are skipped; fields a newer reader expects
 *             but an older writer did not write read as zero.
 *     6  u16  section count N
 *     8  16   profile id
 *    24  u32  created (unix seconds)
 *    28  u32  updated
 *    32  u32  visits
 *    36  u32  visit_last (time of the last hit of the current visit)
 *    40  u32  consent flags (OMNI_CONSENT_*)
 *    44  u8   journey stage (OMNI_STAGE_*)
 *    45  u8   flags (reserved, 0)
 *    46  u16  reserved (0)
 *    48  u32  last_seen[8], one per channel (OMNI_CH_*)
 *    80  u32  order count (lifetime, not bounded like the history)
 *    84  u32  reserved (0)
 *    88  f64  lifetime revenue
 *    96  = H for version 1.0
 *
 *   section table, at offset H: N entries of 12 bytes
 *     u16 type, u16 item count, u32 offset (from record start), u32 length
 *   Unknown section types are skipped.  Sections may appear in any order;
 *   each known type appears at most once.
 *
 *   sections: a sequence of items, each "u16 item length L, L bytes".
 *   Fields inside an item are read in order; a reader stops at L, so later
 *   versions append fields to items without breaking older readers, and a
 *   field missing from an older item reads as empty/zero.
 *
 *   field encodings inside items:
 *     str   u16 length + bytes (no NUL; at most 65535)
 *     u8/u16/u32 little-endian; f64 IEEE-754 little-endian
 *
 *   section types and item fields:
 *     1 ALIASES      u8 kind (OMNI_ALIAS_*), str value
 *     2 SEGMENTS     str name
 *     3 ATTRS        str key, u8 type (1 string, 2 number), then
 *                    str value | f64 value
 *     4 CART         first item is the cart header: u32 updated_at;
 *                    then one item per line:
 *                    str sku, str name, str category, u32 qty, f64 price,
 *                    str url, str image
 *     5 PURCHASES    str sku, str order_id, u8 channel, u32 time,
 *                    str category, f64 price, u32 qty
 *     6 IMPRESSIONS  str campaign, u32 total, u32 last,
 *                    u8 bucket count B, B x (u32 hour, u16 count)
 *                    buckets are hours since the epoch, oldest first
 *     7 VIEWS        str sku, str category, u32 time, f64 price
 *                    (recently viewed products, newest last)
 *     8 EVENTS       str name, u32 count, u32 last
 *                    (named-event counters, e.g. "Product Reviewed")
 *
 * Bounds (enforced on encode; oldest entries are dropped first):
 *   OMNI_MAX_ALIASES, OMNI_MAX_SEGMENTS, ... below.
 */

#ifndef OMNI_RECORD_H
#define OMNI_RECORD_H

#include "omni_core.h"

#define OMNI_REC_MAGIC          0x4d4f
#define OMNI_REC_MAJOR          1
#define OMNI_REC_MINOR          0
#define OMNI_REC_HDR_LEN        96

enum {
    OMNI_SECT_ALIASES = 1,
    OMNI_SECT_SEGMENTS,
    OMNI_SECT_ATTRS,
    OMNI_SECT_CART,
    OMNI_SECT_PURCHASES,
    OMNI_SECT_IMPRESSIONS,
    OMNI_SECT_VIEWS,
    OMNI_SECT_EVENTS,
    OMNI_SECT_MAX              /* first unknown type */
};

#define OMNI_MAX_ALIASES        32
#define OMNI_MAX_SEGMENTS       64
#define OMNI_MAX_ATTRS          64
#define OMNI_MAX_CART           50
#define OMNI_MAX_PURCHASES      100
#define OMNI_MAX_IMPRESSIONS    64      /* campaigns, least recent dropped */
#define OMNI_MAX_BUCKETS        16      /* per campaign */
#define OMNI_MAX_VIEWS          20
#define OMNI_MAX_EVENTS         32
#define OMNI_MAX_STR            1024    /* longest string field */

#define OMNI_ATTR_STR           1
#define OMNI_ATTR_NUM           2


/* ---- zero-copy view (request path) ---- */

typedef struct {
    const unsigned char  *data;
    size_t                len;

    unsigned              minor;
    unsigned char         id[OMNI_ID_LEN];
    uint32_t              created;
    uint32_t              updated;
    uint32_t              visits;
    uint32_t              visit_last;
    uint32_t              consent;
    unsigned              stage;
    uint32_t              last_seen[OMNI_CH_MAX];
    uint32_t              orders;
    double                revenue;

    /* item area and count of each known section; empty when absent */
    omni_bytes_t          sect[OMNI_SECT_MAX];
    unsigned              count[OMNI_SECT_MAX];
} omni_rec_t;

/*
 * Parse the header and section table.  Checks every bound, so any byte
 * string (a fuzzer's included) either parses or returns OMNI_INVALID.
 * Items are checked lazily by the iterators below.
 */
int omni_rec_parse(omni_rec_t *rec, const void *data, size_t len);

typedef struct {
    const unsigned char  *p;
    const unsigned char  *end;
} omni_rec_iter_t;

void omni_rec_iter_init(omni_rec_iter_t *it, const omni_rec_t *rec,
    unsigned sect);
/* Next item's bytes; 0 at the end or on a malformed item. */
int omni_rec_iter_next(omni_rec_iter_t *it, omni_bytes_t *item);

/* Item field reader: walks fields of one item, bounds-checked. */
typedef struct {
    const unsigned char  *p;
    const unsigned char  *end;
} omni_rec_fields_t;

void omni_rec_fields_init(omni_rec_fields_t *f, omni_bytes_t item);
/* A missing field (past the item's end) reads as zero/empty. */
omni_bytes_t omni_rec_get_str(omni_rec_fields_t *f);
unsigned omni_rec_get_u8(omni_rec_fields_t *f);
unsigned omni_rec_get_u16(omni_rec_fields_t *f);
uint32_t omni_rec_get_u32(omni_rec_fields_t *f);
double omni_rec_get_f64(omni_rec_fields_t *f);

/* Typed zero-copy item views. */
typedef struct {
    omni_bytes_t   sku, name, category, url, image;
    uint32_t       qty;
    double         price;
} omni_rec_cart_item_t;

typedef struct {
    omni_bytes_t   sku, order_id, category;
    unsigned       channel;
    uint32_t       time;
    double         price;
    uint32_t       qty;
} omni_rec_purchase_t;

/* Convenience lookups, all zero-copy. */
int omni_rec_has_segment(const omni_rec_t *rec, const char *name,
    size_t len);
/* Returns OMNI_ATTR_STR / OMNI_ATTR_NUM, or 0 when absent. */
int omni_rec_get_attr(const omni_rec_t *rec, const char *key, size_t len,
    omni_bytes_t *str, double *num);
/* Cart header: updated_at; 0 when there is no cart. */
uint32_t omni_rec_cart_updated(const omni_rec_t *rec);
/* Iterate cart lines (skips the header item). */
int omni_rec_cart_next(omni_rec_iter_t *it, omni_rec_cart_item_t *item);
void omni_rec_cart_init(omni_rec_iter_t *it, const omni_rec_t *rec);
int omni_rec_purchase_next(omni_rec_iter_t *it, omni_rec_purchase_t *p);
/*
 * Impressions of a campaign: total, last, and the count within the last
 * `window` seconds before `now` (hour-bucket granularity: a bucket counts
 * when its hour starts after now - window).
 */
int omni_rec_impressions(const omni_rec_t *rec, const char *campaign,
    size_t len, uint32_t now, uint32_t window, uint32_t *total,
    uint32_t *last, uint32_t *in_window);


/* ---- mutable profile (writers, import/export) ---- */

typedef struct {
    unsigned char   kind;
    char           *value;
} omni_alias_t;

typedef struct {
    char           *key;
    int             type;           /* OMNI_ATTR_* */
    char           *str;
    double          num;
} omni_attr_t;

typedef struct {
    char           *sku, *name, *category, *url, *image;
    uint32_t        qty;
    double          price;
} omni_cart_item_t;

typedef struct {
    char           *sku, *order_id, *category;
    unsigned        channel;
    uint32_t        time;
    double          price;
    uint32_t        qty;
} omni_purchase_t;

typedef struct {
    uint32_t        hour;
    uint32_t        count;
} omni_bucket_t;

typedef struct {
    char           *campaign;
    uint32_t        total;
    uint32_t        last;
    unsigned        nbuckets;
    omni_bucket_t   buckets[OMNI_MAX_BUCKETS];
} omni_impr_t;

typedef struct {
    char           *sku, *category;
    uint32_t        time;
    double          price;
} omni_view_t;

typedef struct {
    char           *name;
    uint32_t        count;
    uint32_t        last;
} omni_evcount_t;

typedef struct {
    unsigned char     id[OMNI_ID_LEN];
    uint32_t          created;
    uint32_t          updated;
    uint32_t          visits;
    uint32_t          visit_last;
    uint32_t          consent;
    unsigned          stage;
    uint32_t          last_seen[OMNI_CH_MAX];
    uint32_t          orders;
    double            revenue;

    omni_alias_t     *aliases;     unsigned naliases;
    char            **segments;    unsigned nsegments;
    omni_attr_t      *attrs;       unsigned nattrs;
    uint32_t          cart_updated;
    omni_cart_item_t *cart;        unsigned ncart;
    omni_purchase_t  *purchases;   unsigned npurchases;
    omni_impr_t      *impressions; unsigned nimpressions;
    omni_view_t      *views;       unsigned nviews;
    omni_evcount_t   *events;      unsigned nevents;
} omni_profile_t;

void omni_profile_init(omni_profile_t *p, const unsigned char *id);
void omni_profile_free(omni_profile_t *p);
/* Deep copy of a record into a mutable profile. */
int omni_profile_from_rec(omni_profile_t *p, const omni_rec_t *rec);
/*
 * Encode; *out is malloc()ed, the caller frees.  Applies the bounds above
 * (oldest entries dropped).
 */
int omni_profile_encode(const omni_profile_t *p, unsigned char **out,
    size_t *len);

/* Mutators used by writers; all copy their string arguments. */
int omni_profile_add_alias(omni_profile_t *p, unsigned kind,
    const char *value, size_t len);
int omni_profile_del_alias(omni_profile_t *p, unsigned kind,
    const char *value, size_t len);
int omni_profile_add_segment(omni_profile_t *p, const char *name,
    size_t len);
int omni_profile_set_attr_str(omni_profile_t *p, const char *key,
    const char *val);
int omni_profile_set_attr_num(omni_profile_t *p, const char *key,
    double val);
/* Count one impression of `campaign` at `now` into its hour bucket. */
int omni_profile_add_impression(omni_profile_t *p, const char *campaign,
    uint32_t now);

#endif /* OMNI_RECORD_H */
