/*
 * Rules engine internals, shared by the omni_rules_*.c files only.
 *
 *   omni_rules_util.c     arena, symbol tables, SipHash, User-Agent
 *                         classes, query and referrer helpers
 *   omni_rules_load.c     directories, files, limits, error reports
 *   omni_rules_pos.c      JSON pointer -> line:column (error path only)
 *   omni_rules_cond.c     condition compiler
 *   omni_rules_compile.c  rule compiler, ranking and indexes
 *   omni_rules_eval.c     decide and explain
 *   omni_rules_render.c   HTML, pixels, JSON, text, headers
 *
 * A compiled set lives in one arena.  Rules are stored in rank order
 * (priority desc, leaves desc, id asc), so a rule's index is its rank
 * and "the first match in a list" is the arbitration winner.
 */

#ifndef OMNI_RULES_INT_H
#define OMNI_RULES_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "omni_rules.h"
#include "omni_tmpl.h"
#include "omni_tz.h"
#include "omni_geo.h"


/* ---- arena ---- */

typedef struct omni_arena_blk_s  omni_arena_blk_t;

typedef struct {
    omni_arena_blk_t   *head;
    size_t              total;
} omni_arena_t;

void *omni_arena_alloc(void *arena, size_t size);     /* zeroed */
char *omni_arena_strndup(omni_arena_t *a, const char *s, size_t len);
void omni_arena_free(omni_arena_t *a);


/* ---- symbol tables: skus, categories, segments ---- */

typedef struct {
    uint32_t        n, cap;         /* cap: a power of two */
    int32_t        *slots;          /* -1 empty, else the id */
    uint64_t       *hashes;         /* by slot */
    omni_strv_t    *names;          /* by id */
    uint32_t        ncap;
} omni_symtab_t;

uint64_t omni_hash_str(const char *s, size_t len);
uint64_t omni_hash_fast(const char *s, size_t len);
/* Load time: the id of name, added when new (-1: out of memory). */
int32_t omni_sym_intern(omni_symtab_t *t, omni_arena_t *a, const char *s,
    size_t len);
/* Any time: the id, or -1. */
int32_t omni_sym_find(const omni_symtab_t *t, const char *s, size_t len);
void omni_sym_free(omni_symtab_t *t);


/* ---- conditions ---- */

enum {
    OMNI_C_ALL = 1,
    OMNI_C_ANY,
    OMNI_C_NOT,
    OMNI_C_NUM,             /* a profile metric against a number */
    OMNI_C_SEGMENT,         /* member of any of ids */
    OMNI_C_ATTR,
    OMNI_C_ACCOUNT,
    OMNI_C_CART_SKU,
    OMNI_C_CART_CAT,
    OMNI_C_PURCHASED,
    OMNI_C_LAST_SEEN,
    OMNI_C_STAGE,           /* mask */
    OMNI_C_CHANNEL,         /* mask */
    OMNI_C_DEVICE,          /* mask */
    OMNI_C_PATH,
    OMNI_C_QUERY,
    OMNI_C_REFERRER,
    OMNI_C_TIME,
    OMNI_C_GEO,
    OMNI_C_EXPERIMENT,
    OMNI_C_VIEWED,
    OMNI_C_EVENT
};

/* comparison and string operators */
enum {
    OMNI_OP_GT = 1,
    OMNI_OP_GTE,
    OMNI_OP_LT,
    OMNI_OP_LTE,
    OMNI_OP_EQ,
    OMNI_OP_NE,
    OMNI_OP_IN,
    OMNI_OP_EXISTS,
    OMNI_OP_PREFIX,
    OMNI_OP_REGEX,
    OMNI_OP_HOST,
    OMNI_OP_WEEKDAYS,
    OMNI_OP_HOURS,
    OMNI_OP_AFTER,
    OMNI_OP_BEFORE,
    OMNI_OP_COUNTRY,
    OMNI_OP_REGION,
    OMNI_OP_CITY,
    OMNI_OP_NEAR
};

/* metrics of OMNI_C_NUM */
enum {
    OMNI_M_CART_LINES = 1,
    OMNI_M_CART_ITEMS,
    OMNI_M_CART_VALUE,
    OMNI_M_CART_IDLE,       /* seconds since the cart changed */
    OMNI_M_ORDERS,
    OMNI_M_VISITS,
    OMNI_M_REVENUE,
    OMNI_M_DAYS_PURCHASE,   /* whole days since the last purchase */
    OMNI_M_DAYS_FIRST,      /* ... since the profile was created */
    OMNI_M_DAYS_LAST,       /* ... since last seen (any channel) */
    OMNI_M_DAYS_ENGAGED     /* ... since the last view, cart change,
                               purchase or event */
};

/* the cost class orders the children of all/any: cheap first */
#define OMNI_COST_MASK      0       /* bit tests on known values */
#define OMNI_COST_HEADER    1       /* fixed profile fields */
#define OMNI_COST_SCAN      2       /* one profile section */
#define OMNI_COST_REQUEST   3       /* path, query, referrer */
#define OMNI_COST_SLOW      4       /* regex, User-Agent, geo */

/* a list of numeric comparisons, all of which must hold */
typedef struct {
    unsigned        n;
    uint8_t         op[6];
    double          v[6];
} omni_numops_t;

typedef struct {
    omni_strv_t    *strs;
    unsigned        nstrs;
    double         *nums;
    unsigned        nnums;
} omni_cin_t;

typedef struct {
    int32_t        *skus;           /* sorted ids */
    unsigned        nskus;
    int32_t        *cats;
    unsigned        ncats;
    uint32_t        within;         /* 0: any time */
    uint32_t        older;          /* 0: unused */
} omni_cpurch_t;

typedef struct {
    int32_t        *skus;
    unsigned        nskus;
    int32_t        *cats;
    unsigned        ncats;
    omni_numops_t   price;
    uint32_t        within;
} omni_cview_t;

typedef struct {
    omni_geo_point_t  pt;           /* first: omni_geo_nearest() */
    omni_strv_t       id, name, address, url;
} omni_store_t;

typedef struct omni_cond_s  omni_cond_t;

struct omni_cond_s {
    uint8_t             kind;       /* OMNI_C_* */
    uint8_t             op;         /* OMNI_OP_* */
    uint8_t             metric;     /* OMNI_M_* */
    uint8_t             cost;       /* OMNI_COST_* */
    uint32_t            n;          /* kids, list items */
    uint32_t            mask;       /* stage/channel/device/weekdays,
                                       account and exists: wanted value */
    uint32_t            a, b;       /* durations, clock range, buckets,
                                       store range [a, a + n) */
    double              num;
    int                 is_num;     /* the operand is num, not str */
    omni_strv_t         str;        /* operand, attribute key, query arg,
                                       event name, experiment id */
    const omni_tz_t    *tz;
    const char         *label;      /* "cart.idle_gte 1h" for explain */
    omni_numops_t      *nums;       /* event counts */
    union {
        omni_cond_t   **kids;
        int32_t        *ids;
        omni_strv_t    *strs;
        omni_cin_t     *in;
        pcre2_code     *re;
        omni_cpurch_t  *purch;
        omni_cview_t   *view;
    } u;
};


/* ---- rules ---- */

#define OMNI_PIXEL_IMG      0
#define OMNI_PIXEL_SCRIPT   1

typedef struct {
    uint8_t             type;
    uint32_t            key;        /* same source text, same key */
    const omni_tmpl_t  *url;
    const omni_tmpl_t  *html;       /* the URL HTML-escaped, or NULL */
    uint32_t            html_delta; /* the bytes that escaping adds */
} omni_pixel_t;

typedef struct {
    omni_strv_t         name;
    uint32_t            key;        /* case-insensitive name id */
    const omni_tmpl_t  *value;
} omni_header_t;

typedef struct {
    omni_strv_t         name;
    omni_strv_t         url;
    omni_strv_t         image;
    omni_strv_t         category;
} omni_product_t;

typedef struct {
    omni_strv_t         id;
    omni_strv_t         campaign;
    omni_strv_t         file;
    int32_t             priority;
    uint32_t            leaves;         /* specificity */
    uint32_t            start, end;     /* [start, end); end 0: open */
    uint32_t            chan_mask;      /* channels it can match */
    uint32_t            stage_mask;     /* stages it can match */
    int32_t             req_seg;        /* a segment it requires, -1 */
    unsigned            need_kind;      /* OMNI_FK_*: needs one fact of */
    uint64_t            need_any;
    unsigned            needs;          /* OMNI_NEED_* */
    unsigned            enabled;
    const omni_cond_t  *when;           /* NULL: always */

    uint32_t            cap_max;        /* 0: no cap */
    uint32_t            cap_per;        /* 0: lifetime */
    uint32_t            cooldown;
    unsigned            campaign_capped; /* some rule caps its campaign */
    uint64_t            campaign_hash;  /* omni_campaign_hash() */
    uint32_t            holdout_bp;     /* 0: none */
    omni_strv_t         holdout_id;

    int32_t            *supp_skus;      /* sorted ids */
    unsigned            nsupp_skus;
    int32_t            *supp_cats;
    unsigned            nsupp_cats;
    uint32_t            supp_within;    /* 0: forever */
    omni_strv_t        *skus;           /* advertised */
    unsigned            nskus;

    int32_t             slot;           /* -1: pixel/header-only */
    const omni_tmpl_t  *html;
    const omni_tmpl_t  *text;
    const omni_tmpl_t  *payload;
    unsigned            npixels;
    omni_pixel_t       *pixels;
    unsigned            nheaders;
    omni_header_t      *headers;
} omni_rule_t;

/*
 * Fact kinds for the "needs one of" filter: a rule whose conditions
 * require, say, a purchase of one of some skus carries a 64-bit mask of
 * those sku ids (id & 63); the request computes the same mask for what
 * the profile has, once, and a rule whose mask does not intersect it is
 * skipped without evaluation (a Bloom filter: never a false negative).
 */
enum {
    OMNI_FK_NONE = 0,
    OMNI_FK_SEG,
    OMNI_FK_PSKU,
    OMNI_FK_PCAT,
    OMNI_FK_VSKU,
    OMNI_FK_VCAT,
    OMNI_FK_CSKU,
    OMNI_FK_CCAT,
    OMNI_FK_EVENT,
    OMNI_FK_MAX
};

#define omni_fbit(id)  ((uint64_t) 1 << ((uint32_t) (id) & 63))

/*
 * An index entry: what the scan tests before it touches the rule, so a
 * list of candidates is read sequentially, 40 bytes per rule.
 */
typedef struct {
    const omni_cond_t  *when;
    uint64_t            need_any;       /* fact bits, one must be set */
    uint32_t            rule;
    uint32_t            start;
    uint32_t            end;            /* UINT32_MAX: open */
    int32_t             req_seg;
    uint16_t            stage_mask;
    uint16_t            need_kind;      /* OMNI_FK_* */
} omni_entry_t;

struct omni_ruleset_s {
    omni_arena_t        arena;          /* cold: strings, templates */
    omni_arena_t        hot;            /* rules, index, conditions */
    uint32_t            nrules;
    omni_rule_t        *rules;          /* rank order */
    unsigned            needs;

    uint32_t            nslots;
    omni_strv_t         slots[OMNI_RULES_MAX_SLOTS];

    /* per (slot, channel) and per channel for slot-less rules: rule
       indices in rank order, back to back in lists[] */
    omni_entry_t       *lists;
    uint32_t            slot_off[OMNI_RULES_MAX_SLOTS][OMNI_CH_MAX];
    uint32_t            slot_n[OMNI_RULES_MAX_SLOTS][OMNI_CH_MAX];
    uint32_t            free_off[OMNI_CH_MAX];
    uint32_t            free_n[OMNI_CH_MAX];

    omni_symtab_t       skus, cats, segs, keys, events;
    omni_store_t       *stores;
    uint32_t            nstores;
    int32_t            *product_of;     /* by sku id, -1 */
    omni_product_t     *products;
    uint32_t            nproducts;

    uint32_t            holdout_bp;
    omni_strv_t         holdout_id;

    pcre2_code        **regexes;
    uint32_t            nregexes;
    pcre2_match_data   *md;
    pcre2_match_context *mctx;
};


/* ---- evaluation state (omni_rules_eval.c, omni_rules_render.c) ---- */

#define OMNI_RUN_MAX_PURCHASES   128
#define OMNI_RUN_MAX_VIEWS       32
#define OMNI_RUN_MAX_CART        64

#define OMNI_F_SEGS       0x0001
#define OMNI_F_CART       0x0002
#define OMNI_F_PURCH      0x0004
#define OMNI_F_VIEWS      0x0008
#define OMNI_F_DEVICE     0x0010
#define OMNI_F_STAGE      0x0020
#define OMNI_F_EVENTS     0x0040
#define OMNI_F_ACCOUNT    0x0080
#define OMNI_F_GEO_PT     0x0100

typedef struct {
    int32_t         sku, cat;
    uint32_t        time;
    uint16_t        ord;
} omni_fpurch_t;

typedef struct {
    int32_t         sku, cat;
    uint32_t        time;
    uint16_t        ord;
    double          price;
} omni_fview_t;

/* explain output for one rule (slow path) */
typedef struct {
    char           *buf;
    size_t          cap;
    int             set;
} omni_why_t;

typedef struct {
    const omni_ruleset_t  *set;
    omni_eval_t           *ctx;
    const omni_rec_t      *rec;
    unsigned               ch;
    unsigned               have;        /* OMNI_F_* computed */

    unsigned               stage;
    unsigned               device;
    int                    account;
    uint64_t               segs[OMNI_RULES_MAX_SEGMENTS / 64];

    uint32_t               cart_lines, cart_items, cart_updated;
    double                 cart_value;
    unsigned               ncart;
    int32_t                cart_sku[OMNI_RUN_MAX_CART];
    int32_t                cart_cat[OMNI_RUN_MAX_CART];

    unsigned               npurch;
    uint32_t               last_purchase;
    omni_fpurch_t          purch[OMNI_RUN_MAX_PURCHASES];

    unsigned               nviews;
    uint32_t               last_view;
    omni_fview_t           views[OMNI_RUN_MAX_VIEWS];

    uint32_t               last_event;
    uint64_t               fbits[OMNI_FK_MAX];

    omni_geo_point_t       geo_pt;      /* the visitor's, for "near" */

    omni_match_t           match;       /* of the rule being evaluated */
    omni_why_t            *why;         /* NULL on the hot path */
} omni_run_t;

const omni_rec_t *omni_rec_or_empty(const omni_rec_t *rec);
void omni_run_init(omni_run_t *run, const omni_ruleset_t *set,
    omni_eval_t *ctx);
int omni_run_geo(omni_eval_t *ctx);
unsigned omni_run_stage(omni_run_t *run);
void omni_why_fmt(omni_run_t *run, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/*
 * A reason, on the explain path only: the hot path (why NULL) neither
 * calls nor evaluates the arguments.
 */
#define omni_why(run, ...)                                                  \
    do {                                                                    \
        if ((run)->why != NULL) {                                           \
            omni_why_fmt((run), __VA_ARGS__);                               \
        }                                                                   \
    } while (0)

void omni_run_segs(omni_run_t *run);
uint64_t omni_run_fbits_slow(omni_run_t *run, unsigned kind);

/* Segment membership, the section decoded on first use. */
static inline int
omni_run_has_seg(omni_run_t *run, int32_t id)
{
    if (!(run->have & OMNI_F_SEGS)) {
        omni_run_segs(run);
    }

    return id >= 0 && id < OMNI_RULES_MAX_SEGMENTS
           && (run->segs[id >> 6] >> (id & 63)) & 1;
}

/* The fact bits of one kind, computing that profile section once. */
static inline uint64_t
omni_run_fbits(omni_run_t *run, unsigned kind)
{
    static const unsigned  sect[OMNI_FK_MAX] = {
        0, OMNI_F_SEGS, OMNI_F_PURCH, OMNI_F_PURCH, OMNI_F_VIEWS,
        OMNI_F_VIEWS, OMNI_F_CART, OMNI_F_CART, OMNI_F_EVENTS
    };

    if (kind != OMNI_FK_NONE && kind < OMNI_FK_MAX
        && (run->have & sect[kind]))
    {
        return run->fbits[kind];
    }

    return omni_run_fbits_slow(run, kind);
}
void omni_run_purch(omni_run_t *run);
int omni_cond_eval(omni_run_t *run, const omni_cond_t *c);

/* Seconds from t to now; 0 for a time in the future (clock skew). */
static inline uint32_t
omni_ago(uint32_t now, uint32_t t)
{
    return now > t ? now - t : 0;
}

/* The pixels' tags the plain way (render, then escape): for tests. */
size_t omni_render_pixels_html_plain(const omni_ruleset_t *set,
    omni_eval_t *ctx, const omni_decision_t *d, char *out, size_t cap);

/* Rule checks shared by decide and explain. */
int omni_rule_match(omni_run_t *run, const omni_rule_t *r);
int omni_rule_eligible(omni_run_t *run, const omni_rule_t *r);
int omni_rule_consent(const omni_eval_t *ctx, unsigned *no_ads);
void omni_explain_sink(const omni_ruleset_t *set, omni_eval_t *ctx,
    omni_sink_t *s);


/* ---- helpers (omni_rules_util.c) ---- */

/* value of a query argument (raw, not decoded); 1 found, 0 not */
int omni_query_arg(const char *q, size_t qlen, const char *name,
    size_t nlen, omni_strv_t *val);
/* percent-decodes (and '+' to space) into buf; returns the length */
size_t omni_url_decode(const char *s, size_t len, char *buf, size_t cap);
/* the host of a URL ("https://a.b:8080/x" -> "a.b") */
omni_strv_t omni_url_host(const char *url, size_t len);
int omni_host_match(omni_strv_t host, const char *want, size_t wlen);
int omni_ids_has(const int32_t *ids, unsigned n, int32_t id);
int omni_strv_eq(omni_strv_t a, const char *s, size_t len);
int omni_strv_caseeq(omni_strv_t a, const char *s, size_t len);


/* ---- loading internals ---- */

/* A JSON path segment: an object key or an array index. */
typedef struct {
    const char     *key;            /* NULL: index */
    size_t          klen;
    size_t          index;
} omni_jseg_t;

/*
 * Finds the value at path in JSON text (already known to parse) and
 * returns its 1-based line and column (columns count characters, as
 * jansson's do).  want_key: the position of the key itself.  str_off:
 * a byte offset into the decoded string value, or (size_t) -1.
 * Returns 0, or -1 when not found (then line:column of the document).
 */
int omni_json_position(const char *text, size_t len, const omni_jseg_t *path,
    unsigned depth, int want_key, size_t str_off, unsigned *line,
    unsigned *col);

/* The deepest nesting of text, or the position where it passes max. */
int omni_json_depth_check(const char *text, size_t len, unsigned max,
    unsigned *line, unsigned *col);

/* builder (omni_rules_compile.c) */
typedef struct omni_rb_s  omni_rb_t;

omni_rb_t *omni_rb_create(unsigned flags, omni_rules_report_t *report);
/* Compiles one file's text; errors go to the report. */
void omni_rb_file(omni_rb_t *rb, const char *name, const char *text,
    size_t len);
/* Adds a "file: message" error (I/O, limits). */
void omni_rb_error(omni_rb_t *rb, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
unsigned omni_rb_errors(const omni_rb_t *rb);
/* Ranks, indexes and returns the set (NULL: out of memory); frees rb. */
omni_ruleset_t *omni_rb_finish(omni_rb_t *rb);
void omni_rb_destroy(omni_rb_t *rb);

#endif /* OMNI_RULES_INT_H */
