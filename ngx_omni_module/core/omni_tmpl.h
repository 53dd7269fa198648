/*
 * Templates: "{{first_name|there}}" substitution with contextual escaping.
 *
 * A template is compiled once (at rule load) into a list of operations:
 * literal text, variables, and brackets around URL-valued attributes.
 * Compilation decides how every variable is escaped from where it sits:
 *
 *   HTML mode (banners)  an HTML tokenizer walks the literal text; a
 *                        variable in element text is HTML-escaped, in a
 *                        quoted attribute value attribute-escaped, in a
 *                        URL attribute (href, src, ...) percent-encoded,
 *                        and the whole attribute value is checked at
 *                        render time: unless it starts with http://,
 *                        https:// or a single '/', it becomes "#".
 *                        Variables anywhere else (tag or attribute names,
 *                        unquoted values, event handlers, style, script,
 *                        comments) are compile errors.
 *   URL mode (pixels)    a literal http(s):// prefix, then variables
 *                        percent-encoded as URL components.
 *   TEXT mode (SMS and   variables with control characters removed.
 *   email)
 *   HEADER mode          the same; the literal may not contain any.
 *   JSON mode (payloads) built with omni_tmpl_b_*(): literal JSON text
 *                        and string values whose variables are
 *                        JSON-escaped (also <, >, &, U+2028, U+2029).
 *
 * Rendering writes to a sink (a counted buffer, or a filter in front of
 * one) and resolves variables through a caller callback, so this file
 * knows nothing about profiles.  No allocation while rendering.
 */

#ifndef OMNI_TMPL_H
#define OMNI_TMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>


#define OMNI_TMPL_HTML      1
#define OMNI_TMPL_TEXT      2
#define OMNI_TMPL_URL       3
#define OMNI_TMPL_HEADER    4
#define OMNI_TMPL_JSON      5

/* operations */
#define OMNI_TOP_LIT        1
#define OMNI_TOP_VAR        2
#define OMNI_TOP_URL_BEGIN  3
#define OMNI_TOP_URL_END    4

/* how a variable is escaped */
#define OMNI_ESC_HTML       1       /* element text or attribute value */
#define OMNI_ESC_URL_FULL   2       /* a whole URL in an attribute */
#define OMNI_ESC_URL_PART   3       /* a URL component in an attribute */
#define OMNI_ESC_URL_RAW    4       /* a URL component, no HTML escaping */
#define OMNI_ESC_TEXT       5       /* control characters removed */
#define OMNI_ESC_JSON       6       /* inside a JSON string */

/* variables */
enum {
    OMNI_V_ATTR = 1,                /* {{first_name}}, {{attr.tier}} */
    OMNI_V_PROFILE_ID,
    OMNI_V_PROFILE_VISITS,
    OMNI_V_PROFILE_ORDERS,
    OMNI_V_PROFILE_STAGE,
    OMNI_V_PROFILE_REVENUE,
    OMNI_V_CART_COUNT,              /* lines */
    OMNI_V_CART_ITEMS,              /* sum of quantities */
    OMNI_V_CART_VALUE,
    OMNI_V_CART_TOP,                /* + field: the most valuable line */
    OMNI_V_CART_LAST,               /* + field: the line added last */
    OMNI_V_VIEWED,                  /* + field: the matched view */
    OMNI_V_PURCHASED,               /* + field: the matched purchase */
    OMNI_V_GEO_COUNTRY,
    OMNI_V_GEO_REGION,
    OMNI_V_GEO_CITY,
    OMNI_V_STORE,                   /* + field: the matched store */
    OMNI_V_RULE_ID,
    OMNI_V_RULE_CAMPAIGN,
    OMNI_V_CHANNEL,
    OMNI_V_MAX
};

/* fields of cart lines, views, purchases and stores */
enum {
    OMNI_VF_NONE = 0,
    OMNI_VF_SKU,
    OMNI_VF_NAME,
    OMNI_VF_CATEGORY,
    OMNI_VF_PRICE,
    OMNI_VF_QTY,
    OMNI_VF_URL,
    OMNI_VF_IMAGE,
    OMNI_VF_ID,
    OMNI_VF_ADDRESS,
    OMNI_VF_DISTANCE_KM,
    OMNI_VF_ORDER_ID
};

/* what a template reads (omni_tmpl_t.needs) */
#define OMNI_TNEED_PROFILE  0x01
#define OMNI_TNEED_GEO      0x02


typedef struct {
    uint8_t     op;             /* OMNI_TOP_* */
    uint8_t     esc;            /* OMNI_ESC_* (variables) */
    uint8_t     var;            /* OMNI_V_* */
    uint8_t     field;          /* OMNI_VF_* */
    uint32_t    off, len;       /* literal text, or the attribute key */
    uint32_t    def_off, def_len;   /* default text ({{x|default}}) */
} omni_top_t;

typedef struct {
    const char         *text;   /* literal bytes, keys and defaults */
    const omni_top_t   *ops;
    unsigned            nops;
    unsigned            needs;  /* OMNI_TNEED_* */
} omni_tmpl_t;

typedef struct {
    char        msg[200];
    size_t      offset;         /* byte offset in the template source */
} omni_tmpl_err_t;


/* ---- compiling ---- */

typedef void *(*omni_tmpl_alloc_pt)(void *pool, size_t size);

/* A growable template under construction (load time only). */
typedef struct {
    char           *text;
    size_t          len, cap;
    omni_top_t     *ops;
    unsigned        nops, capops;
    unsigned        needs;
    int             failed;     /* out of memory */
} omni_tmpl_b_t;

void omni_tmpl_b_init(omni_tmpl_b_t *b);
void omni_tmpl_b_free(omni_tmpl_b_t *b);
/* Appends literal output text (JSON mode: structure, keys, numbers). */
void omni_tmpl_b_literal(omni_tmpl_b_t *b, const char *s, size_t len);
/*
 * Parses one template source in a mode and appends its operations.
 * JSON mode appends a quoted JSON string.  Returns 0, or -1 with err.
 */
int omni_tmpl_b_parse(omni_tmpl_b_t *b, const char *src, size_t len,
    unsigned mode, omni_tmpl_err_t *err);
/* Copies the result into pool memory; NULL when out of memory. */
omni_tmpl_t *omni_tmpl_b_finish(omni_tmpl_b_t *b, omni_tmpl_alloc_pt alloc,
    void *pool);

/* Convenience: one source, one mode. */
omni_tmpl_t *omni_tmpl_compile(const char *src, size_t len, unsigned mode,
    omni_tmpl_alloc_pt alloc, void *pool, omni_tmpl_err_t *err);

/*
 * For a URL template (pixels): the same template with its literal text
 * HTML-escaped at load time, so that rendering it gives the URL as it
 * goes into an attribute value (its variables are percent-encoded, which
 * leaves nothing to escape) without a second pass.  *delta: the bytes
 * the escaping adds, the same on every render.  NULL when t is not a
 * URL template whose first literal decides the URL policy alone (eight
 * printable bytes that pass it), or when out of memory.
 */
omni_tmpl_t *omni_tmpl_html_url(const omni_tmpl_t *t,
    omni_tmpl_alloc_pt alloc, void *pool, size_t *delta);

/* JSON string escaping at load time (payload keys and literals). */
void omni_tmpl_b_json_string(omni_tmpl_b_t *b, const char *s, size_t len);


/* ---- sinks ---- */

typedef struct omni_sink_s  omni_sink_t;

struct omni_sink_s {
    void          (*put)(omni_sink_t *s, const char *p, size_t n);
    omni_sink_t    *next;       /* filters forward here */
    char           *buf;        /* buffer sinks */
    size_t          cap;
    size_t          len;        /* bytes the full output needs */
    unsigned        state;      /* filters */
    unsigned        space;
    char            pend[12];   /* strip filter: a pending entity */
    unsigned        npend;
};

/* Writes at most cap - 1 bytes; len counts everything. */
void omni_sink_buf(omni_sink_t *s, char *buf, size_t cap);
/* NUL-terminates a buffer sink and returns len. */
size_t omni_sink_end(omni_sink_t *s);
/* JSON string escaping in front of next. */
void omni_sink_json(omni_sink_t *s, omni_sink_t *next);
/* HTML to text: tags, comments, script and style removed, entities
   decoded, white space collapsed. */
void omni_sink_strip(omni_sink_t *s, omni_sink_t *next);
void omni_sink_strip_end(omni_sink_t *s);

#define omni_sink_put(s, p, n)   (s)->put((s), (p), (n))
/* inline: the length of a literal is known at compile time */
static inline void
omni_sink_str(omni_sink_t *s, const char *str)
{
    s->put(s, str, strlen(str));
}

/* Escapers (also for the rules renderer). */
void omni_esc_html(omni_sink_t *s, const char *p, size_t n);
void omni_esc_json(omni_sink_t *s, const char *p, size_t n);
void omni_esc_url_part(omni_sink_t *s, const char *p, size_t n);
void omni_esc_text(omni_sink_t *s, const char *p, size_t n);

/*
 * The URL policy for attribute values and pixels: true when the value
 * (as it appears in the attribute, tabs and newlines ignored as browsers
 * do) starts with http://, https:// (any case) or one '/' that is not
 * followed by another '/' or a '\'.
 */
int omni_url_allowed(const char *p, size_t n);


/* ---- rendering ---- */

/*
 * Resolves a variable.  Sets *val (possibly into scratch, scratch_cap is
 * at least 64 bytes); an empty value renders the default.
 */
typedef void (*omni_tmpl_resolve_pt)(void *env, const omni_top_t *op,
    const char *text, const char **val, size_t *len, char *scratch,
    size_t scratch_cap);

void omni_tmpl_render(const omni_tmpl_t *t, omni_sink_t *out,
    omni_tmpl_resolve_pt resolve, void *env);

#endif /* OMNI_TMPL_H */
