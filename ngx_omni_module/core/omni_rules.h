/*
 * Personalization rules: load, compile, decide, render, explain.
 *
 * Marketers drop JSON rule files into a directory (docs/rules.md is the
 * language reference).  omni_rules_load() validates and compiles them
 * once; the request path then runs omni_decide() against a profile view
 * (omni_rec_t) and never touches JSON, never allocates, and never does
 * I/O.  The nginx module (web pages, app JSON, variables) and omnictl
 * (email, SMS) call exactly these functions, so every channel gets the
 * same decision for the same profile, rules and time.
 *
 * Life cycle of one evaluation:
 *
 *     omni_eval_t      ctx;
 *     omni_decision_t  d;
 *
 *     omni_eval_init(&ctx);
 *     ctx.rec = rec;                  (NULL: no profile yet)
 *     ctx.pid = profile_id;           (16 bytes, for bucketing)
 *     ctx.channel = OMNI_CH_WEB;
 *     ctx.now = now;
 *     ctx.path.data = ...;            (only what omni_rules_needs() asks)
 *
 *     omni_decide(set, &ctx, &d);
 *     omni_render_slot_html(set, &ctx, &d, "hero", 4, buf, sizeof(buf));
 *     omni_render_pixels_html(set, &ctx, &d, buf, sizeof(buf));
 *
 * The renderers read the profile view again (cart item names, attributes
 * for templates), so the caller keeps the memory behind ctx.rec (the LMDB
 * read transaction) valid from omni_decide() to the last render.
 *
 * Thread safety: a compiled set is immutable except for one regex scratch
 * area, so evaluations of one set must not run in several threads at the
 * same time (nginx workers and omnictl are single-threaded; a threaded
 * caller loads one set per thread).  Nothing depends on hash-table
 * iteration order or on the clock: time comes from ctx.now only.
 */

#ifndef OMNI_RULES_H
#define OMNI_RULES_H

#include "omni_core.h"
#include "omni_record.h"


/* ---- limits (documented in docs/rules.md, "Limits") ---- */

#define OMNI_RULES_MAX_FILE_SIZE    (1024 * 1024)   /* bytes per file */
#define OMNI_RULES_MAX_FILES        1024            /* files per directory */
#define OMNI_RULES_MAX_DEPTH        32              /* JSON nesting */
#define OMNI_RULES_MAX_RULES        10000           /* rules per set */
#define OMNI_RULES_MAX_TEMPLATE     8192            /* bytes per template */
#define OMNI_RULES_MAX_SLOTS        16              /* slot names per set */
#define OMNI_RULES_MAX_SEGMENTS     1024            /* segment names */
#define OMNI_RULES_MAX_LIST         1000            /* items in one list */
#define OMNI_RULES_MAX_LEAVES       256             /* conditions per rule */
#define OMNI_RULES_MAX_PIXELS       8               /* pixels per rule */
#define OMNI_RULES_MAX_HEADERS      8               /* headers per rule */
#define OMNI_RULES_MAX_REGEX        1024            /* bytes per regex */
#define OMNI_RULES_MAX_ID           64              /* rule/campaign id */

#define OMNI_RULES_MAX_ERRORS       50              /* kept in a report */
#define OMNI_RULES_ERROR_LEN        512             /* bytes per message */


/* ---- loading ---- */

typedef struct omni_ruleset_s  omni_ruleset_t;

/*
 * What a load found.  Every error is one line "file:line:column: message"
 * (NUL-terminated, at most OMNI_RULES_ERROR_LEN - 1 bytes), in file order
 * then position order.  nerrors counts every error found; only the first
 * OMNI_RULES_MAX_ERRORS are kept in errors[].  nginx -t and
 * "omnictl rules check" print errors[] verbatim, so both say the same.
 */
typedef struct {
    unsigned    nerrors;
    unsigned    files;          /* files read */
    unsigned    rules;          /* rules compiled (valid ones) */
    unsigned    skipped;        /* invalid rules left out (lenient mode) */
    char        errors[OMNI_RULES_MAX_ERRORS][OMNI_RULES_ERROR_LEN];
} omni_rules_report_t;

/* omni_rules_load_ex() flags */
#define OMNI_RULES_LENIENT   0x01   /* keep the valid rules, report the
                                       rest (one bad rule never disables
                                       the others) */

/*
 * Loads every "*.json" regular file of dir (dotfiles and other names are
 * ignored), in byte order of the names.  Strict: any error fails the
 * whole load with OMNI_INVALID, *out = NULL and the report listing all
 * errors; OMNI_ERROR when dir cannot be read (also reported).  On OMNI_OK
 * *out is the compiled set (possibly empty), freed by omni_rules_free().
 * report may be NULL.
 */
int omni_rules_load(const char *dir, omni_ruleset_t **out,
    omni_rules_report_t *report);
int omni_rules_load_ex(const char *dir, unsigned flags,
    omni_ruleset_t **out, omni_rules_report_t *report);

/* The same for one in-memory file (tests, fuzzing, admin uploads). */
int omni_rules_load_buffer(const char *name, const char *text, size_t len,
    omni_ruleset_t **out, omni_rules_report_t *report);

void omni_rules_free(omni_ruleset_t *set);

/*
 * Rule files as texts (omni_rules_files.c): what omni_rules_load() reads,
 * kept in memory so that a running server can keep a broken file's last
 * good version, and a draft can replace one file without touching disk.
 */
typedef struct {
    char        *path;          /* what errors and rule info call it */
    char        *text;          /* NUL-terminated; NULL: left out */
    size_t       len;
    char        *error;         /* could not be read: the error line */
    unsigned     broken;        /* did not compile: text is its last
                                   good version, or NULL */
} omni_rules_file_t;

typedef struct {
    unsigned            n, cap;
    omni_rules_file_t  *files;  /* in byte order of the file names */
} omni_rules_files_t;

/* Reads every rule file of dir (as omni_rules_load() would); a file that
   cannot be read keeps its error for the compile.  OMNI_OK, OMNI_INVALID
   (too many files) or OMNI_ERROR, the report saying why. */
int omni_rules_read_dir(const char *dir, omni_rules_files_t *fs,
    omni_rules_report_t *report);
/* Puts text in as the file of path's base name: replaces the file of the
   same name, or is inserted in name order.  OMNI_OK or OMNI_ERROR. */
int omni_rules_files_put(omni_rules_files_t *fs, const char *path,
    const char *text, size_t len);
void omni_rules_files_free(omni_rules_files_t *fs);
/* Compiles the files' texts together, exactly as omni_rules_load_ex(). */
int omni_rules_load_files(const omni_rules_files_t *fs, unsigned flags,
    omni_ruleset_t **out, omni_rules_report_t *report);
/*
 * A running server's reload: when fs does not compile, every file that
 * does not compile on its own is marked broken and replaced by its text
 * in good (the same path; NULL good, or none there: left out), and the
 * rest is compiled with those.  OMNI_OK: *out serves, fs holds what it
 * was made of, the report lists the broken files' errors.  OMNI_INVALID:
 * even that does not compile (an error between files, such as a
 * duplicate rule id): nothing of fs may serve.
 */
int omni_rules_load_last_good(omni_rules_files_t *fs,
    const omni_rules_files_t *good, omni_ruleset_t **out,
    omni_rules_report_t *report);
unsigned omni_rules_files_broken(const omni_rules_files_t *fs);
const char *omni_rules_file_base(const char *path);
int omni_rules_file_name_ok(const char *name);

unsigned omni_rules_count(const omni_ruleset_t *set);

/*
 * What the rules look at, so the caller fetches only that: a set with no
 * OMNI_NEED_GEO never causes a MaxMind lookup, one without OMNI_NEED_UA
 * never needs the User-Agent, and so on.  OMNI_NEED_PROFILE: some rule
 * reads the profile (without it a decision needs no store read at all).
 */
#define OMNI_NEED_GEO        0x0001
#define OMNI_NEED_UA         0x0002
#define OMNI_NEED_REFERRER   0x0004
#define OMNI_NEED_QUERY      0x0008
#define OMNI_NEED_PATH       0x0010
#define OMNI_NEED_PROFILE    0x0020
#define OMNI_NEED_PID        0x0040     /* experiments, holdouts */
#define OMNI_NEED_CAPS       0x0080     /* frequency caps, cooldowns:
                                           omni_decision_caps_hold() */
#define OMNI_NEED_INJECT     0x0100     /* some rule puts a banner or a
                                           pixel into pages */
#define OMNI_NEED_HELD       0x0200     /* some rule has its own holdout:
                                           omni_decision_held() */

unsigned omni_rules_needs(const omni_ruleset_t *set);

/* Slot names used by the set, sorted (slot ids are these indices). */
unsigned omni_rules_nslots(const omni_ruleset_t *set);
const char *omni_rules_slot(const omni_ruleset_t *set, unsigned slot,
    size_t *len);
/* -1 when the set has no such slot. */
int omni_rules_slot_find(const omni_ruleset_t *set, const char *name,
    size_t len);

/* Rule ids and campaigns by rule index (0 .. omni_rules_count() - 1). */
const char *omni_rules_rule_id(const omni_ruleset_t *set, unsigned rule,
    size_t *len);
const char *omni_rules_rule_campaign(const omni_ruleset_t *set,
    unsigned rule, size_t *len);

/* What a console shows of a rule: its file, slot ("" without a banner),
   priority and whether it is enabled.  OMNI_NOTFOUND past the end. */
typedef struct {
    const char  *file;
    const char  *slot;
    size_t       slot_len;
    int          priority;
    int          enabled;
} omni_rule_info_t;

int omni_rules_rule_info(const omni_ruleset_t *set, unsigned rule,
    omni_rule_info_t *out);


/* ---- evaluation context ---- */

typedef struct {
    const char  *data;
    size_t       len;
} omni_strv_t;

/* Geo facts for the request's client address. */
typedef struct {
    char        country[8];     /* ISO 3166-1 alpha-2, e.g. "FR" */
    char        region[64];     /* ISO 3166-2 subdivision, e.g. "IDF" */
    char        city[128];      /* English name */
    double      lat, lon;       /* degrees, valid when has_location */
    int         has_location;
} omni_geo_t;

/*
 * Fills *out; returns OMNI_OK, or anything else when nothing is known
 * (geo conditions are then false).  Called at most once per evaluation
 * context, and only when a rule or template that needs geo is looked at.
 */
typedef int (*omni_geo_pt)(void *data, omni_geo_t *out);

/* ctx.flags */
#define OMNI_EVAL_NO_ADS     0x01   /* no pixels: Sec-GPC, DNT, no consent */
#define OMNI_EVAL_OPT_IN     0x02   /* consent model opt-in: a purpose not
                                       stated is refused */

/*
 * An impression the profile view does not hold yet: shown by a request
 * whose touch the writer has not committed (or not in this reader's
 * snapshot).  Frequency caps and cooldowns count these too, so that a
 * cap is exact across workers at the moment of the decision.
 */
typedef struct {
    uint64_t    campaign;       /* omni_campaign_hash() of its name */
    uint32_t    time;           /* when it was shown */
} omni_impr_extra_t;

uint64_t omni_campaign_hash(const char *name, size_t len);

typedef struct {
    /* the profile view; NULL for a visitor without one: an empty profile,
       stage "new", 0 visits */
    const omni_rec_t     *rec;
    /* OMNI_ID_LEN bytes: the PROFILE id (the visitor id while there is
       no profile; it becomes the profile id on first sight), so buckets
       follow a person across linked devices.  NULL: every experiment
       condition is false and nobody is held out. */
    const unsigned char  *pid;
    unsigned              channel;      /* OMNI_CH_* */
    uint32_t              now;          /* unix seconds */
    unsigned              flags;        /* OMNI_EVAL_* */
    /* consent the request states (a CMP cookie), applied over the
       profile's: OMNI_CONSENT_* with OMNI_CONSENT_SET and the stated
       bits; 0: none */
    uint32_t              req_consent;

    /* request facts, (pointer, length), not NUL-terminated; empty when
       unknown (email, SMS) */
    omni_strv_t           path;         /* decoded URI path, no query */
    omni_strv_t           query;        /* raw query string, no '?' */
    omni_strv_t           referrer;
    omni_strv_t           user_agent;

    omni_geo_pt           geo;          /* may be NULL */
    void                 *geo_data;

    /* impressions not in rec yet (may be NULL) */
    const omni_impr_extra_t  *extra;
    unsigned              nextra;

    /* filled by the core; omni_eval_init() resets them */
    int                   geo_state;    /* 0 unknown, 1 known, -1 none */
    omni_geo_t            geo_value;
} omni_eval_t;

void omni_eval_init(omni_eval_t *ctx);


/* ---- decision ---- */

#define OMNI_DECISION_MAX_SHOWN     32
#define OMNI_DECISION_MAX_PIXELS    16
#define OMNI_DECISION_MAX_HEADERS   16

/* What a rule matched against, for its templates ({{geo.store.name}}). */
typedef struct {
    int32_t     store;          /* index in the rule's store list, -1 */
    float       store_km;
    int16_t     view;           /* ordinal in the VIEWS section, -1 */
    int16_t     purchase;       /* ordinal in the PURCHASES section, -1 */
} omni_match_t;

typedef struct {
    uint32_t        rule;       /* rule index */
    int32_t         slot;       /* slot id, -1 for pixel/header-only */
    omni_match_t    match;
} omni_shown_t;

/* Why a decision is empty. */
#define OMNI_BLOCK_NONE          0
#define OMNI_BLOCK_HOLDOUT       1      /* in the global holdout */
#define OMNI_BLOCK_CONSENT       2      /* personalization refused */
#define OMNI_BLOCK_CHANNEL       3      /* no consent for email/SMS */

typedef struct {
    uint32_t        now;
    unsigned        channel;
    unsigned        block;                  /* OMNI_BLOCK_* */
    unsigned        holdout;                /* block == HOLDOUT */
    unsigned        no_ads;                 /* pixels withheld */

    /* shown rules in rank order: slot winners and pixel/header-only
       rules; the writer counts one impression per entry's campaign */
    unsigned        nshown;
    omni_shown_t    shown[OMNI_DECISION_MAX_SHOWN];

    /* per slot id: index into shown[], -1 when the slot is empty */
    int8_t          slot[OMNI_RULES_MAX_SLOTS];

    /* pixels, deduplicated: (shown index, pixel index in the rule) */
    unsigned        npixels;
    struct {
        uint8_t     shown;
        uint8_t     pixel;
    }               pixels[OMNI_DECISION_MAX_PIXELS];

    /* response headers, one per name (highest rank wins) */
    unsigned        nheaders;
    struct {
        uint8_t     shown;
        uint8_t     header;
    }               headers[OMNI_DECISION_MAX_HEADERS];

    unsigned        dropped;                /* did not fit the arrays */
} omni_decision_t;

/*
 * Decides: exactly one winner per slot (highest priority, then most
 * conditions, then rule id in byte order), the pixels of every winner
 * and of matching pixel-only rules, and the response headers.  No
 * allocation, no I/O; the geo callback runs at most once.  Returns
 * OMNI_OK (an empty decision is OK too).
 */
int omni_decide(const omni_ruleset_t *set, omni_eval_t *ctx,
    omni_decision_t *d);

/* The winning rule index of a slot, or -1. */
int omni_decision_slot_rule(const omni_decision_t *d, unsigned slot);

/*
 * Whether every rule the decision shows is still within its frequency
 * cap and cooldown, counting ctx->extra as it is now: a caller that
 * reserves impressions (the module's shared activity zone) checks this
 * under its lock, and decides again when it fails, so two concurrent
 * requests cannot both take a cap's last impression.
 */
int omni_decision_caps_hold(const omni_ruleset_t *set, omni_eval_t *ctx,
    const omni_decision_t *d);

/*
 * The distinct capped campaigns the decision shows (those some rule caps
 * or cools down), as omni_campaign_hash() values, at most max of them:
 * the impressions a caller reserves.  Returns the count.
 */
unsigned omni_decision_campaigns(const omni_ruleset_t *set,
    const omni_decision_t *d, uint64_t *out, unsigned max);


/*
 * The rules a visitor matched but did not see because they are in the
 * rule's own holdout (its control group), for counting: rule indices in
 * out, at most max; returns the count.  0 without OMNI_NEED_HELD, for a
 * decision blocked (global holdout, consent), or without ctx->pid.
 * Evaluates only the rules with a holdout whose bucket holds the
 * visitor; ctx as for omni_decide().
 */
unsigned omni_decision_held(const omni_ruleset_t *set, omni_eval_t *ctx,
    const omni_decision_t *d, uint32_t *out, unsigned max);


/* ---- rendering ----
 *
 * Every renderer writes at most cap bytes into out, always NUL-terminates
 * when cap > 0, and returns the length the full output needs (excluding
 * the NUL), like snprintf: when the result is >= cap, call again with a
 * bigger buffer.  Output is deterministic.
 */

/* The winner's banner HTML for one slot (empty when the slot is). */
size_t omni_render_slot_html(const omni_ruleset_t *set, omni_eval_t *ctx,
    const omni_decision_t *d, const char *slot, size_t slot_len,
    char *out, size_t cap);

/* Every pixel as <img>/<script> tags, for insertion before </body>. */
size_t omni_render_pixels_html(const omni_ruleset_t *set, omni_eval_t *ctx,
    const omni_decision_t *d, char *out, size_t cap);

/*
 * The decision as one JSON object (apps, the decision endpoint, omnictl):
 *   {"channel": "web", "holdout": false,
 *    "slots": {"hero": {"rule": "...", "campaign": "...", "html": "...",
 *                       "text": "...", "payload": {...}}},
 *    "pixels": [{"type": "img", "url": "https://..."}],
 *    "headers": {"X-Omni-Theme": "story"},
 *    "shown": [{"rule": "...", "campaign": "..."}],
 *    "explanation": ["rule: ...", ...]}       (only when explain)
 */
size_t omni_render_decision_json(const omni_ruleset_t *set,
    omni_eval_t *ctx, const omni_decision_t *d, int explain, char *out,
    size_t cap);

/*
 * Plain text for email or SMS (channel OMNI_CH_EMAIL / OMNI_CH_SMS): each
 * winner's "text" template, or its banner HTML with the tags stripped.
 * Email: every slot in slot order, separated by a blank line.  SMS: the
 * highest-ranked winner only.
 */
size_t omni_render_text(const omni_ruleset_t *set, omni_eval_t *ctx,
    const omni_decision_t *d, unsigned channel, char *out, size_t cap);

/*
 * Header actions: i from 0 to d->nheaders - 1.  *name receives the
 * header name (from the compiled set); the value, with CR, LF, NUL and
 * other control characters removed, goes to out like the renderers.
 */
size_t omni_render_header(const omni_ruleset_t *set, omni_eval_t *ctx,
    const omni_decision_t *d, unsigned i, omni_strv_t *name, char *out,
    size_t cap);

/* Shown rule ids (what = 0) or campaigns (what = 1), comma-separated. */
#define OMNI_SHOWN_RULES       0
#define OMNI_SHOWN_CAMPAIGNS   1

size_t omni_render_shown(const omni_ruleset_t *set, const omni_decision_t *d,
    unsigned what, char *out, size_t cap);


/* ---- explanation (slow path, debugging) ----
 *
 * One line per rule, in rank order, then nothing else, for example:
 *   welcome-offer: shown in slot hero
 *   vip-offer: lost: slot hero went to welcome-offer
 *   cart-abandon: no: cart.idle_gte 1h (idle 20m)
 *   freq-demo: skipped: cap 3/1d reached (3 shown)
 * preceded by "holdout: ..." / "consent: ..." lines when they decided.
 * Evaluates every rule fully (no index shortcuts); ctx as for decide.
 */
size_t omni_explain(const omni_ruleset_t *set, omni_eval_t *ctx,
    char *out, size_t cap);


/* ---- experiments ----
 *
 * The deterministic bucket of a profile in an experiment, 0 .. 9999
 * (basis points): SipHash-2-4 with the 16-byte key "omni-experiments"
 * over the 16 profile id bytes followed by the experiment id, modulo
 * 10000.  Every channel computes exactly this.
 */
unsigned omni_rules_bucket(const unsigned char *pid, const char *exp,
    size_t len);

uint64_t omni_siphash24(const unsigned char key[16], const void *data,
    size_t len);

/* The device class the rules see for a User-Agent (docs/rules.md). */
#define OMNI_DEVICE_DESKTOP   0
#define OMNI_DEVICE_MOBILE    1
#define OMNI_DEVICE_TABLET    2
#define OMNI_DEVICE_BOT       3

unsigned omni_device_class(const char *ua, size_t len);
const char *omni_device_name(unsigned device);

#endif /* OMNI_RULES_H */
