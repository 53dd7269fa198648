/*
 * Templates (omni_tmpl.h), compiling: the builder, variable names, and
 * the HTML context analysis that picks each variable's escaping.
 * Rendering, escapers and sinks are in omni_tmpl_render.c.
 *
 * Why a tokenizer: banner HTML is written by people and may put a
 * variable anywhere.  Escaping "by default" (HTML-escape everything) is
 * not enough: an escaped value is still executable inside an event
 * handler, a <script> or a javascript: URL.  So the compiler follows the
 * HTML5 tokenizer states closely enough to know, for every variable,
 * whether it lands in text, in a quoted attribute value (and which
 * attribute), or somewhere no escaping can make safe, which is refused.
 */

#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <strings.h>

#include "omni_tmpl.h"


#define OMNI_TMPL_MAX_VAR       128     /* bytes inside {{ }} */

/* HTML tokenizer states (a subset of the HTML5 ones) */
enum {
    OMNI_H_DATA = 0,
    OMNI_H_TAG_OPEN,            /* after '<' */
    OMNI_H_TAG_NAME,
    OMNI_H_END_TAG,             /* "</...", skipped to '>' */
    OMNI_H_BEFORE_ATTR,
    OMNI_H_ATTR_NAME,
    OMNI_H_AFTER_ATTR_NAME,
    OMNI_H_BEFORE_VALUE,
    OMNI_H_VALUE_DQ,
    OMNI_H_VALUE_SQ,
    OMNI_H_VALUE_UNQ,
    OMNI_H_MARKUP,              /* after "<!" */
    OMNI_H_MARKUP_DASH,         /* after "<!-" */
    OMNI_H_COMMENT,
    OMNI_H_BOGUS,               /* "<!x", "<?": to '>' */
    OMNI_H_RAWTEXT              /* <script>, <style>, ... content */
};

typedef struct {
    unsigned        state;
    char            tag[17];
    size_t          ntag;
    char            attr[33];
    size_t          nattr;
    char            raw[17];    /* the element whose end RAWTEXT awaits */
    size_t          nraw;
    size_t          rawpos;     /* matched bytes of "</name" */
    unsigned        dashes;     /* trailing '-' in a comment */
    int             end_tag;    /* the tag being read is an end tag */

    /* the quoted attribute value being read */
    int             url_attr;
    int             value_has_var;
    size_t          value_len;  /* bytes and variables so far */
    size_t          value_src;  /* its first byte in the source */
    unsigned        url_op;     /* placeholder operation index */
} omni_html_t;


static int omni_tmpl_grow(omni_tmpl_b_t *b, size_t text, unsigned ops);
static omni_top_t *omni_tmpl_op(omni_tmpl_b_t *b, unsigned op);
static void omni_tmpl_lit(omni_tmpl_b_t *b, const char *s, size_t len);
static int omni_tmpl_var(const char *s, size_t len, omni_top_t *op,
    omni_tmpl_b_t *b, omni_tmpl_err_t *err);
static int omni_tmpl_err(omni_tmpl_err_t *err, size_t off,
    const char *fmt, const char *arg);
static int omni_html_step(omni_tmpl_b_t *b, omni_html_t *h, const char *src,
    size_t i, size_t *lit, omni_tmpl_err_t *err);
static int omni_html_var(omni_html_t *h, size_t off, unsigned *esc,
    omni_tmpl_err_t *err);
static int omni_html_literal_url(const char *v, size_t n);
static int omni_lower_eq(const char *a, const char *b);
static int omni_is_space(int c);


/* ---- builder ---- */

void
omni_tmpl_b_init(omni_tmpl_b_t *b)
{
    memset(b, 0, sizeof(omni_tmpl_b_t));
}


void
omni_tmpl_b_free(omni_tmpl_b_t *b)
{
    free(b->text);
    free(b->ops);
    omni_tmpl_b_init(b);
}


static int
omni_tmpl_grow(omni_tmpl_b_t *b, size_t text, unsigned ops)
{
    size_t       ncap;
    unsigned     nops;
    char        *t;
    omni_top_t  *o;

    if (b->failed) {
        return -1;
    }

    if (b->len + text > b->cap) {
        ncap = b->cap ? b->cap * 2 : 256;
        while (ncap < b->len + text) {
            ncap *= 2;
        }

        t = realloc(b->text, ncap);
        if (t == NULL) {
            b->failed = 1;
            return -1;
        }

        b->text = t;
        b->cap = ncap;
    }

    if (b->nops + ops > b->capops) {
        nops = b->capops ? b->capops * 2 : 16;
        while (nops < b->nops + ops) {
            nops *= 2;
        }

        o = realloc(b->ops, nops * sizeof(omni_top_t));
        if (o == NULL) {
            b->failed = 1;
            return -1;
        }

        b->ops = o;
        b->capops = nops;
    }

    return 0;
}


static omni_top_t *
omni_tmpl_op(omni_tmpl_b_t *b, unsigned op)
{
    omni_top_t  *o;

    if (omni_tmpl_grow(b, 0, 1) != 0) {
        return NULL;
    }

    o = &b->ops[b->nops++];
    memset(o, 0, sizeof(omni_top_t));
    o->op = (uint8_t) op;

    return o;
}


/* Appends literal text, merging with a literal just before it. */
static void
omni_tmpl_lit(omni_tmpl_b_t *b, const char *s, size_t len)
{
    omni_top_t  *o;

    if (len == 0 || omni_tmpl_grow(b, len, 1) != 0) {
        return;
    }

    o = b->nops ? &b->ops[b->nops - 1] : NULL;

    if (o == NULL || o->op != OMNI_TOP_LIT || o->off + o->len != b->len) {
        o = omni_tmpl_op(b, OMNI_TOP_LIT);
        if (o == NULL) {
            return;
        }

        o->off = (uint32_t) b->len;
    }

    memcpy(b->text + b->len, s, len);
    b->len += len;
    o->len += (uint32_t) len;
}


void
omni_tmpl_b_literal(omni_tmpl_b_t *b, const char *s, size_t len)
{
    omni_tmpl_lit(b, s, len);
}


/* JSON-escapes s as a quoted string literal into the output text. */
void
omni_tmpl_b_json_string(omni_tmpl_b_t *b, const char *s, size_t len)
{
    char         buf[256];
    omni_sink_t  sink;
    size_t       need;

    omni_sink_buf(&sink, buf, sizeof(buf));
    omni_esc_json(&sink, s, len);
    need = omni_sink_end(&sink);

    omni_tmpl_lit(b, "\"", 1);

    if (need < sizeof(buf)) {
        omni_tmpl_lit(b, buf, need);

    } else {
        char  *big = malloc(need + 1);

        if (big == NULL) {
            b->failed = 1;
            return;
        }

        omni_sink_buf(&sink, big, need + 1);
        omni_esc_json(&sink, s, len);
        (void) omni_sink_end(&sink);
        omni_tmpl_lit(b, big, need);
        free(big);
    }

    omni_tmpl_lit(b, "\"", 1);
}


static int
omni_tmpl_err(omni_tmpl_err_t *err, size_t off, const char *fmt,
    const char *arg)
{
    if (err != NULL) {
        snprintf(err->msg, sizeof(err->msg), fmt, arg ? arg : "");
        err->offset = off;
    }

    return -1;
}


/* ---- variables ---- */

typedef struct {
    const char  *name;
    uint8_t      var;
    uint8_t      field;
    uint8_t      needs;
} omni_tvar_t;

static const omni_tvar_t  omni_tvars[] = {
    { "channel",                OMNI_V_CHANNEL, 0, 0 },
    { "profile.id",             OMNI_V_PROFILE_ID, 0, 0 },
    { "profile.visits",         OMNI_V_PROFILE_VISITS, 0, OMNI_TNEED_PROFILE },
    { "profile.orders",         OMNI_V_PROFILE_ORDERS, 0, OMNI_TNEED_PROFILE },
    { "profile.stage",          OMNI_V_PROFILE_STAGE, 0, OMNI_TNEED_PROFILE },
    { "profile.revenue",        OMNI_V_PROFILE_REVENUE, 0,
                                OMNI_TNEED_PROFILE },
    { "cart.count",             OMNI_V_CART_COUNT, 0, OMNI_TNEED_PROFILE },
    { "cart.items",             OMNI_V_CART_ITEMS, 0, OMNI_TNEED_PROFILE },
    { "cart.value",             OMNI_V_CART_VALUE, 0, OMNI_TNEED_PROFILE },
    { "geo.country",            OMNI_V_GEO_COUNTRY, 0, OMNI_TNEED_GEO },
    { "geo.region",             OMNI_V_GEO_REGION, 0, OMNI_TNEED_GEO },
    { "geo.city",               OMNI_V_GEO_CITY, 0, OMNI_TNEED_GEO },
    { "geo.store.id",           OMNI_V_STORE, OMNI_VF_ID, 0 },
    { "geo.store.name",         OMNI_V_STORE, OMNI_VF_NAME, 0 },
    { "geo.store.address",      OMNI_V_STORE, OMNI_VF_ADDRESS, 0 },
    { "geo.store.url",          OMNI_V_STORE, OMNI_VF_URL, 0 },
    { "geo.store.distance_km",  OMNI_V_STORE, OMNI_VF_DISTANCE_KM, 0 },
    { "rule.id",                OMNI_V_RULE_ID, 0, 0 },
    { "rule.campaign",          OMNI_V_RULE_CAMPAIGN, 0, 0 },
    { NULL, 0, 0, 0 }
};

/* item fields, per item kind: bit 0 cart, 1 viewed, 2 purchased */
typedef struct {
    const char  *name;
    uint8_t      field;
    uint8_t      kinds;
} omni_tfield_t;

static const omni_tfield_t  omni_tfields[] = {
    { "sku",        OMNI_VF_SKU,        7 },
    { "name",       OMNI_VF_NAME,       7 },
    { "category",   OMNI_VF_CATEGORY,   7 },
    { "price",      OMNI_VF_PRICE,      7 },
    { "qty",        OMNI_VF_QTY,        5 },
    { "url",        OMNI_VF_URL,        7 },
    { "image",      OMNI_VF_IMAGE,      7 },
    { "order_id",   OMNI_VF_ORDER_ID,   4 },
    { NULL, 0, 0 }
};


/*
 * Attributes every profile may carry (identify's client traits): a bare
 * template name one or two typos away from one of these, or from a
 * variable, is a mistake ({{frist_name}}), not a new attribute.
 */
static const char  *omni_tattrs[] = {
    "first_name", "last_name", "firstName", "lastName", "name", "locale",
    "language", "timezone", "tier", NULL
};


/* Optimal string alignment distance (a transposition costs 1). */
static size_t
omni_tmpl_distance(const char *a, const char *b)
{
    size_t  i, j, la, lb, c;
    size_t  r0[OMNI_TMPL_MAX_VAR + 2], r1[OMNI_TMPL_MAX_VAR + 2];
    size_t  r2[OMNI_TMPL_MAX_VAR + 2];
    size_t *pp, *p, *cur, *t;

    la = strlen(a);
    lb = strlen(b);

    if (la > OMNI_TMPL_MAX_VAR || lb > OMNI_TMPL_MAX_VAR) {
        return (size_t) -1;
    }

    /* three rows: i - 2, i - 1, i */
    pp = r0;
    p = r1;
    cur = r2;

    for (j = 0; j <= lb; j++) {
        p[j] = j;
    }

    for (i = 1; i <= la; i++) {
        cur[0] = i;

        for (j = 1; j <= lb; j++) {
            c = p[j - 1] + (a[i - 1] != b[j - 1]);

            if (p[j] + 1 < c) {
                c = p[j] + 1;
            }

            if (cur[j - 1] + 1 < c) {
                c = cur[j - 1] + 1;
            }

            if (i > 1 && j > 1 && a[i - 1] == b[j - 2]
                && a[i - 2] == b[j - 1] && pp[j - 2] + 1 < c)
            {
                c = pp[j - 2] + 1;
            }

            cur[j] = c;
        }

        t = pp;
        pp = p;
        p = cur;
        cur = t;
    }

    return p[lb];
}


/* The closest known name to name, within the typo distance, or NULL. */
static const char *
omni_tmpl_suggest(const char *name, char *buf, size_t size)
{
    size_t                d, best, max;
    unsigned              k;
    const char           *found;
    const omni_tvar_t    *tv;
    const omni_tfield_t  *tf;
    char                  cand[OMNI_TMPL_MAX_VAR + 1];
    static const char    *items[] = { "cart.top_item.", "cart.last_item.",
                                      "viewed.", "purchased.", NULL };
    static const unsigned kinds[] = { 1, 1, 2, 4 };

    max = strlen(name) >= 6 ? 2 : 1;
    best = max + 1;
    found = NULL;

    for (tv = omni_tvars; tv->name; tv++) {
        d = omni_tmpl_distance(name, tv->name);
        if (d < best) {
            best = d;
            snprintf(buf, size, "%s", tv->name);
            found = buf;
        }
    }

    for (k = 0; omni_tattrs[k]; k++) {
        d = omni_tmpl_distance(name, omni_tattrs[k]);
        if (d < best) {
            best = d;
            snprintf(buf, size, "%s", omni_tattrs[k]);
            found = buf;
        }
    }

    for (k = 0; items[k]; k++) {
        for (tf = omni_tfields; tf->name; tf++) {
            if (!(tf->kinds & kinds[k])) {
                continue;
            }

            snprintf(cand, sizeof(cand), "%s%s", items[k], tf->name);
            d = omni_tmpl_distance(name, cand);
            if (d < best) {
                best = d;
                snprintf(buf, size, "%s", cand);
                found = buf;
            }
        }
    }

    return best == 0 ? NULL : found;
}


/* "unknown template variable" with a "did you mean" when one is close. */
static int
omni_tmpl_unknown(omni_tmpl_err_t *err, const char *name)
{
    char         buf[OMNI_TMPL_MAX_VAR + 1];
    const char  *near;

    near = omni_tmpl_suggest(name, buf, sizeof(buf));

    if (err != NULL && near != NULL) {
        snprintf(err->msg, sizeof(err->msg),
                 "unknown template variable \"%s\" (did you mean \"%s\"?%s%s%s)",
                 name, near,
                 strchr(name, '.') ? "" : " an attribute of that very name "
                                          "is \"attr.",
                 strchr(name, '.') ? "" : name,
                 strchr(name, '.') ? "" : "\"");
        err->offset = 0;
        return -1;
    }

    return omni_tmpl_err(err, 0, "unknown template variable \"%s\"", name);
}


static int
omni_name_char(int c, int first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
        return 1;
    }

    return !first && ((c >= '0' && c <= '9') || c == '-' || c == '.');
}


/*
 * Parses the inside of "{{ name | default }}" (s, len) into op.  The
 * attribute key and the default go to the builder's text.
 */
static int
omni_tmpl_var(const char *s, size_t len, omni_top_t *op, omni_tmpl_b_t *b,
    omni_tmpl_err_t *err)
{
    char                 name[OMNI_TMPL_MAX_VAR + 1];
    char                 buf[OMNI_TMPL_MAX_VAR + 1];
    size_t               i, n, dn, plen;
    const char          *def, *item;
    unsigned             kind;
    const omni_tvar_t   *tv;
    const omni_tfield_t *tf;

    /* name: trimmed, up to '|' */
    i = 0;
    while (i < len && omni_is_space((unsigned char) s[i])) {
        i++;
    }

    n = 0;
    while (i < len && s[i] != '|' && !omni_is_space((unsigned char) s[i])) {
        if (n >= OMNI_TMPL_MAX_VAR
            || !omni_name_char((unsigned char) s[i], n == 0))
        {
            return omni_tmpl_err(err, 0, "invalid template variable name",
                                 NULL);
        }

        name[n++] = s[i++];
    }

    name[n] = '\0';

    while (i < len && omni_is_space((unsigned char) s[i])) {
        i++;
    }

    if (n == 0 || name[n - 1] == '.' || strstr(name, "..") != NULL) {
        return omni_tmpl_err(err, 0, "invalid template variable name",
                             NULL);
    }

    def = NULL;
    dn = 0;

    if (i < len) {
        if (s[i] != '|') {
            return omni_tmpl_err(err, 0, "invalid template variable \"%s\"",
                                 name);
        }

        i++;
        while (i < len && omni_is_space((unsigned char) s[i])) {
            i++;
        }

        def = s + i;
        dn = len - i;

        while (dn > 0 && omni_is_space((unsigned char) def[dn - 1])) {
            dn--;
        }

        if (dn >= 2 && def[0] == '"' && def[dn - 1] == '"') {
            def++;
            dn -= 2;
        }
    }

    for (tv = omni_tvars; tv->name; tv++) {
        if (strcmp(tv->name, name) == 0) {
            op->var = tv->var;
            op->field = tv->field;
            b->needs |= tv->needs;
            goto found;
        }
    }

    /* item fields: cart.top_item.F, cart.last_item.F, viewed.F, ... */
    kind = 0;
    item = NULL;

    if (strncmp(name, "cart.top_item.", 14) == 0) {
        op->var = OMNI_V_CART_TOP;
        kind = 1;
        item = name + 14;

    } else if (strncmp(name, "cart.last_item.", 15) == 0) {
        op->var = OMNI_V_CART_LAST;
        kind = 1;
        item = name + 15;

    } else if (strncmp(name, "viewed.", 7) == 0) {
        op->var = OMNI_V_VIEWED;
        kind = 2;
        item = name + 7;

    } else if (strncmp(name, "purchased.", 10) == 0) {
        op->var = OMNI_V_PURCHASED;
        kind = 4;
        item = name + 10;
    }

    if (item != NULL) {
        for (tf = omni_tfields; tf->name; tf++) {
            if (strcmp(tf->name, item) == 0 && (tf->kinds & kind)) {
                op->field = tf->field;
                b->needs |= OMNI_TNEED_PROFILE;
                goto found;
            }
        }

        return omni_tmpl_unknown(err, name);
    }

    /* attributes: a bare name, or attr.KEY */
    plen = 0;

    if (strncmp(name, "attr.", 5) == 0) {
        plen = 5;

    } else if (strchr(name, '.') != NULL) {
        return omni_tmpl_unknown(err, name);

    } else {
        /* a near miss of a known name is a typo, not an attribute */
        for (i = 0; omni_tattrs[i]; i++) {
            if (strcmp(omni_tattrs[i], name) == 0) {
                break;
            }
        }

        if (omni_tattrs[i] == NULL
            && omni_tmpl_suggest(name, buf, sizeof(buf)) != NULL)
        {
            return omni_tmpl_unknown(err, name);
        }
    }

    if (name[plen] == '\0') {
        return omni_tmpl_err(err, 0, "invalid template variable name",
                             NULL);
    }

    op->var = OMNI_V_ATTR;
    op->off = (uint32_t) b->len;
    op->len = (uint32_t) (n - plen);
    b->needs |= OMNI_TNEED_PROFILE;

    if (omni_tmpl_grow(b, n - plen, 0) != 0) {
        return omni_tmpl_err(err, 0, "out of memory", NULL);
    }

    memcpy(b->text + b->len, name + plen, n - plen);
    b->len += n - plen;

found:

    if (dn) {
        if (omni_tmpl_grow(b, dn, 0) != 0) {
            return omni_tmpl_err(err, 0, "out of memory", NULL);
        }

        op->def_off = (uint32_t) b->len;
        op->def_len = (uint32_t) dn;
        memcpy(b->text + b->len, def, dn);
        b->len += dn;
    }

    return 0;
}


/* ---- parsing ---- */

static int
omni_is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}


static int
omni_lower_eq(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}


/* Elements whose content is not parsed as HTML: no variables inside. */
static int
omni_html_rawtext(const char *tag)
{
    static const char  *raw[] = {
        "script", "style", "xmp", "iframe", "noembed", "noframes",
        "noscript", "plaintext", "template", NULL
    };
    unsigned  i;

    for (i = 0; raw[i]; i++) {
        if (omni_lower_eq(tag, raw[i])) {
            return 1;
        }
    }

    return 0;
}


/* Attributes whose value is a URL. */
static int
omni_html_url_attr(const char *attr)
{
    static const char  *url[] = {
        "href", "src", "action", "formaction", "poster", "cite",
        "background", "longdesc", "usemap", "lowsrc", "dynsrc",
        "manifest", "ping", "xlink:href", "codebase", "icon", "profile",
        "data", "archive", "classid", NULL
    };
    unsigned  i;

    for (i = 0; url[i]; i++) {
        if (omni_lower_eq(attr, url[i])) {
            return 1;
        }
    }

    return 0;
}


/*
 * Where a variable may not go even quoted: event handlers and style
 * (executable or CSS), srcdoc (a whole document), srcset (several URLs
 * the URL check cannot follow), and any attribute of elements that
 * redirect, load plugins or change the base URL.
 */
static const char *
omni_html_forbidden(const char *tag, const char *attr, const char **arg)
{
    static const char  *tags[] = {
        "meta", "base", "link", "object", "embed", "applet", "param",
        "svg", "math", NULL
    };
    static const char  *attrs[] = {
        "style", "srcdoc", "srcset", "imagesrcset", "http-equiv",
        "content", "formaction", "is", NULL
    };
    unsigned  i;

    for (i = 0; tags[i]; i++) {
        if (omni_lower_eq(tag, tags[i])) {
            *arg = tag;
            return "template variable not allowed in <%s> attributes";
        }
    }

    *arg = attr;

    if (attr[0] == 'o' && attr[1] == 'n') {
        return "template variable not allowed in event handler \"%s\"";
    }

    for (i = 0; attrs[i]; i++) {
        if (omni_lower_eq(attr, attrs[i])) {
            return "template variable not allowed in attribute \"%s\"";
        }
    }

    return NULL;
}


/*
 * A literal URL attribute value (no variable), checked at load: http(s),
 * a path, a query or a fragment.  Tabs and newlines are ignored, as
 * browsers ignore them inside schemes ("java\tscript:").
 */
static int
omni_html_literal_url(const char *v, size_t n)
{
    char    s[16];
    size_t  i, k;

    for (i = 0, k = 0; i < n; i++) {
        if (v[i] == '\t' || v[i] == '\n' || v[i] == '\r') {
            continue;
        }

        if (k == 0 && (unsigned char) v[i] <= ' ') {
            continue;
        }

        if (v[i] == '/' || v[i] == '?' || v[i] == '#') {
            return 1;
        }

        if (v[i] == '&') {
            /* a character reference could spell a scheme */
            return 0;
        }

        if (v[i] == ':') {
            s[k] = '\0';
            return strcmp(s, "http") == 0 || strcmp(s, "https") == 0;
        }

        if (k + 1 >= sizeof(s)) {
            return 1;       /* too long to be a scheme: a relative path */
        }

        s[k++] = (char) (v[i] >= 'A' && v[i] <= 'Z' ? v[i] + 32 : v[i]);
    }

    return 1;
}


static void
omni_html_flush(omni_tmpl_b_t *b, const char *src, size_t *lit, size_t to)
{
    if (to > *lit) {
        omni_tmpl_lit(b, src + *lit, to - *lit);
    }

    *lit = to;
}


/*
 * One source byte through the tokenizer.  *lit is the first source byte
 * not yet emitted: URL attribute values are bracketed by operations, so
 * the literal is flushed at their quotes.
 */
static int
omni_html_step(omni_tmpl_b_t *b, omni_html_t *h, const char *src, size_t i,
    size_t *lit, omni_tmpl_err_t *err)
{
    int          c;
    omni_top_t  *o;

    c = (unsigned char) src[i];

    switch (h->state) {

    case OMNI_H_DATA:
        if (c == '<') {
            h->state = OMNI_H_TAG_OPEN;
        }
        break;

    case OMNI_H_TAG_OPEN:
        h->ntag = 0;
        h->end_tag = 0;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            h->state = OMNI_H_TAG_NAME;
            h->tag[h->ntag++] = (char) (c | 0x20);
            h->tag[h->ntag] = '\0';

        } else if (c == '/') {
            h->state = OMNI_H_END_TAG;

        } else if (c == '!') {
            h->state = OMNI_H_MARKUP;

        } else if (c == '?') {
            h->state = OMNI_H_BOGUS;

        } else {
            h->state = OMNI_H_DATA;     /* a lone '<' is text */
        }
        break;

    case OMNI_H_TAG_NAME:
        if (omni_is_space(c) || c == '/') {
            h->state = OMNI_H_BEFORE_ATTR;

        } else if (c == '>') {
            goto tag_end;

        } else if (h->ntag < sizeof(h->tag) - 1) {
            h->tag[h->ntag++] = (char) (c >= 'A' && c <= 'Z' ? c | 0x20 : c);
            h->tag[h->ntag] = '\0';
        }
        break;

    case OMNI_H_END_TAG:
        if (c == '>') {
            h->state = OMNI_H_DATA;
        }
        break;

    case OMNI_H_BEFORE_ATTR:
        if (c == '>') {
            goto tag_end;
        }

        if (!omni_is_space(c) && c != '/') {
            h->state = OMNI_H_ATTR_NAME;
            h->nattr = 0;
            h->attr[h->nattr++] = (char) (c >= 'A' && c <= 'Z' ? c | 0x20
                                                               : c);
            h->attr[h->nattr] = '\0';
        }
        break;

    case OMNI_H_ATTR_NAME:
        if (c == '=') {
            h->state = OMNI_H_BEFORE_VALUE;

        } else if (c == '>') {
            goto tag_end;

        } else if (omni_is_space(c)) {
            h->state = OMNI_H_AFTER_ATTR_NAME;

        } else if (c == '/') {
            h->state = OMNI_H_BEFORE_ATTR;

        } else if (h->nattr < sizeof(h->attr) - 1) {
            h->attr[h->nattr++] = (char) (c >= 'A' && c <= 'Z' ? c | 0x20
                                                               : c);
            h->attr[h->nattr] = '\0';
        }
        break;

    case OMNI_H_AFTER_ATTR_NAME:
        if (c == '=') {
            h->state = OMNI_H_BEFORE_VALUE;

        } else if (c == '>') {
            goto tag_end;

        } else if (c == '/') {
            h->state = OMNI_H_BEFORE_ATTR;

        } else if (!omni_is_space(c)) {
            h->state = OMNI_H_ATTR_NAME;
            h->nattr = 0;
            h->attr[h->nattr++] = (char) (c >= 'A' && c <= 'Z' ? c | 0x20
                                                               : c);
            h->attr[h->nattr] = '\0';
        }
        break;

    case OMNI_H_BEFORE_VALUE:
        if (omni_is_space(c)) {
            break;
        }

        if (c == '>') {
            goto tag_end;
        }

        h->url_attr = omni_html_url_attr(h->attr);
        h->value_has_var = 0;
        h->value_len = 0;

        if (c == '"' || c == '\'') {
            h->state = c == '"' ? OMNI_H_VALUE_DQ : OMNI_H_VALUE_SQ;
            h->value_src = i + 1;

            if (h->url_attr) {
                /* a placeholder: becomes URL_BEGIN if a variable shows */
                omni_html_flush(b, src, lit, i + 1);
                o = omni_tmpl_op(b, 0);
                if (o == NULL) {
                    return omni_tmpl_err(err, i, "out of memory", NULL);
                }

                h->url_op = b->nops - 1;
            }

        } else {
            h->state = OMNI_H_VALUE_UNQ;
            h->value_src = i;
            h->value_len = 1;
        }
        break;

    case OMNI_H_VALUE_DQ:
    case OMNI_H_VALUE_SQ:
        if (c != (h->state == OMNI_H_VALUE_DQ ? '"' : '\'')) {
            h->value_len++;
            break;
        }

        if (h->url_attr) {
            if (h->value_has_var) {
                b->ops[h->url_op].op = OMNI_TOP_URL_BEGIN;
                omni_html_flush(b, src, lit, i);
                if (omni_tmpl_op(b, OMNI_TOP_URL_END) == NULL) {
                    return omni_tmpl_err(err, i, "out of memory", NULL);
                }

            } else if (!omni_html_literal_url(src + h->value_src,
                                              i - h->value_src))
            {
                return omni_tmpl_err(err, h->value_src,
                                     "unsafe URL in attribute \"%s\": only "
                                     "http(s) URLs, paths and fragments "
                                     "are allowed", h->attr);
            }
        }

        h->state = OMNI_H_BEFORE_ATTR;
        break;

    case OMNI_H_VALUE_UNQ:
        if (omni_is_space(c) || c == '>') {
            if (omni_html_url_attr(h->attr)
                && !omni_html_literal_url(src + h->value_src,
                                          i - h->value_src))
            {
                return omni_tmpl_err(err, h->value_src,
                                     "unsafe URL in attribute \"%s\": only "
                                     "http(s) URLs, paths and fragments "
                                     "are allowed", h->attr);
            }

            if (c == '>') {
                goto tag_end;
            }

            h->state = OMNI_H_BEFORE_ATTR;

        } else {
            h->value_len++;
        }
        break;

    case OMNI_H_MARKUP:
        h->state = c == '-' ? OMNI_H_MARKUP_DASH
                            : (c == '>' ? OMNI_H_DATA : OMNI_H_BOGUS);
        break;

    case OMNI_H_MARKUP_DASH:
        if (c == '-') {
            h->state = OMNI_H_COMMENT;
            h->dashes = 0;

        } else {
            h->state = c == '>' ? OMNI_H_DATA : OMNI_H_BOGUS;
        }
        break;

    case OMNI_H_COMMENT:
        if (c == '>' && h->dashes >= 2) {
            h->state = OMNI_H_DATA;

        } else {
            h->dashes = c == '-' ? h->dashes + 1 : 0;
        }
        break;

    case OMNI_H_BOGUS:
        if (c == '>') {
            h->state = OMNI_H_DATA;
        }
        break;

    case OMNI_H_RAWTEXT:
        /* looking for "</name" followed by space, '/' or '>' */
        if (h->rawpos == 0) {
            h->rawpos = c == '<';

        } else if (h->rawpos == 1) {
            h->rawpos = c == '/' ? 2 : (c == '<');

        } else if (h->rawpos - 2 < h->nraw) {
            if ((c >= 'A' && c <= 'Z' ? c | 0x20 : c)
                == h->raw[h->rawpos - 2])
            {
                h->rawpos++;

            } else {
                h->rawpos = c == '<';
            }

        } else if (omni_is_space(c) || c == '/' || c == '>') {
            h->state = c == '>' ? OMNI_H_DATA : OMNI_H_END_TAG;
            h->rawpos = 0;

        } else {
            h->rawpos = c == '<';
        }
        break;
    }

    return 0;

tag_end:

    if (omni_html_rawtext(h->tag)) {
        memcpy(h->raw, h->tag, h->ntag + 1);
        h->nraw = h->ntag;
        h->rawpos = 0;
        h->state = OMNI_H_RAWTEXT;

    } else {
        h->state = OMNI_H_DATA;
    }

    return 0;
}


/* The escaping for a variable at the tokenizer's position, or an error. */
static int
omni_html_var(omni_html_t *h, size_t off, unsigned *esc,
    omni_tmpl_err_t *err)
{
    const char  *why, *arg;

    switch (h->state) {

    case OMNI_H_DATA:
        *esc = OMNI_ESC_HTML;
        return 0;

    case OMNI_H_VALUE_DQ:
    case OMNI_H_VALUE_SQ:
        why = omni_html_forbidden(h->tag, h->attr, &arg);
        if (why != NULL) {
            return omni_tmpl_err(err, off, why, arg);
        }

        if (h->url_attr) {
            *esc = h->value_len == 0 ? OMNI_ESC_URL_FULL : OMNI_ESC_URL_PART;
            h->value_has_var = 1;

        } else {
            *esc = OMNI_ESC_HTML;
        }

        h->value_len++;
        return 0;

    case OMNI_H_BEFORE_VALUE:
    case OMNI_H_VALUE_UNQ:
        return omni_tmpl_err(err, off, "template variable in an unquoted "
                             "attribute value (use quotes)", NULL);

    case OMNI_H_TAG_OPEN:
    case OMNI_H_TAG_NAME:
        return omni_tmpl_err(err, off, "template variable in a tag name",
                             NULL);

    case OMNI_H_END_TAG:
        return omni_tmpl_err(err, off, "template variable in an end tag",
                             NULL);

    case OMNI_H_BEFORE_ATTR:
    case OMNI_H_ATTR_NAME:
    case OMNI_H_AFTER_ATTR_NAME:
        return omni_tmpl_err(err, off, "template variable in an attribute "
                             "name", NULL);

    case OMNI_H_RAWTEXT:
        return omni_tmpl_err(err, off, "template variable not allowed "
                             "inside <%s>", h->raw);

    default:
        return omni_tmpl_err(err, off, "template variable not allowed in "
                             "a comment or declaration", NULL);
    }
}


/* A literal pixel URL byte: printable ASCII that needs no quoting. */
static int
omni_url_literal_ok(int c)
{
    return c > ' ' && c < 0x7f && c != '"' && c != '<' && c != '>'
           && c != '\\' && c != '^' && c != '`' && c != '{' && c != '|'
           && c != '}';
}


int
omni_tmpl_b_parse(omni_tmpl_b_t *b, const char *src, size_t len,
    unsigned mode, omni_tmpl_err_t *err)
{
    size_t        i, j, lit, k, host;
    unsigned      esc;
    omni_top_t    var, *o;
    omni_html_t   h;
    int           seen_var;

    memset(&h, 0, sizeof(omni_html_t));
    lit = 0;
    seen_var = 0;

    if (mode == OMNI_TMPL_JSON) {
        omni_tmpl_lit(b, "\"", 1);
    }

    if (mode == OMNI_TMPL_URL) {
        /* the scheme and the host are literal */
        if (len >= 8 && strncasecmp(src, "https://", 8) == 0) {
            host = 8;

        } else if (len >= 7 && strncasecmp(src, "http://", 7) == 0) {
            host = 7;

        } else {
            return omni_tmpl_err(err, 0, "a pixel URL must start with "
                                 "https:// or http://", NULL);
        }

        for (k = host; k < len && src[k] != '/' && src[k] != '?'
             && src[k] != '#'; k++)
        {
            if (src[k] == '{' || src[k] == '@') {
                return omni_tmpl_err(err, k, "the host of a pixel URL must "
                                     "be literal", NULL);
            }
        }

        if (k == host) {
            return omni_tmpl_err(err, k, "a pixel URL needs a host", NULL);
        }
    }

    for (i = 0; i < len; i++) {

        if (src[i] == '{' && i + 1 < len && src[i + 1] == '{') {
            /* a variable: find its end */
            for (j = i + 2; j + 1 < len; j++) {
                if (src[j] == '}' && src[j + 1] == '}') {
                    break;
                }

                if (src[j] == '{' && src[j + 1] == '{') {
                    return omni_tmpl_err(err, i, "unterminated \"{{\"",
                                         NULL);
                }
            }

            if (j + 1 >= len) {
                return omni_tmpl_err(err, i, "unterminated \"{{\"", NULL);
            }

            esc = OMNI_ESC_TEXT;

            switch (mode) {
            case OMNI_TMPL_HTML:
                if (omni_html_var(&h, i, &esc, err) != 0) {
                    return -1;
                }
                break;
            case OMNI_TMPL_URL:
                esc = OMNI_ESC_URL_RAW;
                break;
            case OMNI_TMPL_JSON:
                esc = OMNI_ESC_JSON;
                break;
            default:
                esc = OMNI_ESC_TEXT;
                break;
            }

            omni_html_flush(b, src, &lit, i);

            memset(&var, 0, sizeof(omni_top_t));
            var.op = OMNI_TOP_VAR;
            var.esc = (uint8_t) esc;

            if (omni_tmpl_var(src + i + 2, j - i - 2, &var, b, err) != 0) {
                if (err != NULL) {
                    err->offset = i;
                }
                return -1;
            }

            o = omni_tmpl_op(b, OMNI_TOP_VAR);
            if (o == NULL) {
                return omni_tmpl_err(err, i, "out of memory", NULL);
            }

            *o = var;
            seen_var = 1;
            i = j + 1;
            lit = i + 1;
            continue;
        }

        switch (mode) {

        case OMNI_TMPL_HTML:
            if (omni_html_step(b, &h, src, i, &lit, err) != 0) {
                return -1;
            }
            break;

        case OMNI_TMPL_URL:
            if (!omni_url_literal_ok((unsigned char) src[i])) {
                return omni_tmpl_err(err, i, "invalid character in a pixel "
                                     "URL (percent-encode it)", NULL);
            }
            break;

        case OMNI_TMPL_HEADER:
            if ((unsigned char) src[i] < ' ' || src[i] == 0x7f) {
                return omni_tmpl_err(err, i, "control character in a "
                                     "header value", NULL);
            }
            break;

        case OMNI_TMPL_JSON:
            /* literal parts are JSON-escaped as they are flushed */
            break;

        default:
            if (src[i] == '\0') {
                return omni_tmpl_err(err, i, "NUL in a template", NULL);
            }
            break;
        }

        if (mode == OMNI_TMPL_JSON) {
            /* escape the literal run at once, up to the next "{{" */
            for (k = i; k < len; k++) {
                if (src[k] == '{' && k + 1 < len && src[k + 1] == '{') {
                    break;
                }
            }

            {
                char         buf[512];
                omni_sink_t  sink;
                size_t       need, step;

                /* chunked so a stack buffer always suffices (escaping
                   grows a byte to at most 6); split on a UTF-8 start */
                while (i < k) {
                    step = k - i < 80 ? k - i : 80;

                    /* back off to a UTF-8 start, if there is one near */
                    while (step > 4 && i + step < k
                           && ((unsigned char) src[i + step] & 0xc0) == 0x80)
                    {
                        step--;
                    }

                    omni_sink_buf(&sink, buf, sizeof(buf));
                    omni_esc_json(&sink, src + i, step);
                    need = omni_sink_end(&sink);
                    omni_tmpl_lit(b, buf, need);
                    i += step;
                }
            }

            i = k - 1;
            lit = k;
            continue;
        }
    }

    (void) seen_var;

    if (mode == OMNI_TMPL_HTML) {
        if (h.state != OMNI_H_DATA) {
            return omni_tmpl_err(err, len, h.state == OMNI_H_RAWTEXT
                                 ? "template ends inside <%s>"
                                 : "template ends inside a tag, an "
                                   "attribute or a comment",
                                 h.state == OMNI_H_RAWTEXT ? h.raw : NULL);
        }
    }

    if (mode != OMNI_TMPL_JSON) {
        omni_html_flush(b, src, &lit, len);

    } else {
        omni_tmpl_lit(b, "\"", 1);
    }

    if (b->failed) {
        return omni_tmpl_err(err, 0, "out of memory", NULL);
    }

    return 0;
}


omni_tmpl_t *
omni_tmpl_b_finish(omni_tmpl_b_t *b, omni_tmpl_alloc_pt alloc, void *pool)
{
    char         *text;
    unsigned      i, n;
    omni_top_t   *ops;
    omni_tmpl_t  *t;

    if (b->failed) {
        return NULL;
    }

    t = alloc(pool, sizeof(omni_tmpl_t));
    text = alloc(pool, b->len + 1);
    ops = alloc(pool, (b->nops ? b->nops : 1) * sizeof(omni_top_t));

    if (t == NULL || text == NULL || ops == NULL) {
        return NULL;
    }

    if (b->len) {
        memcpy(text, b->text, b->len);
    }

    text[b->len] = '\0';

    /* unused URL placeholders (literal-only URL values) go */
    for (i = 0, n = 0; i < b->nops; i++) {
        if (b->ops[i].op != 0) {
            ops[n++] = b->ops[i];
        }
    }

    /* merge literals that the placeholders separated */
    for (i = 1; i < n; i++) {
        if (ops[i].op == OMNI_TOP_LIT && ops[i - 1].op == OMNI_TOP_LIT
            && ops[i - 1].off + ops[i - 1].len == ops[i].off)
        {
            ops[i - 1].len += ops[i].len;
            memmove(&ops[i], &ops[i + 1], (n - i - 1) * sizeof(omni_top_t));
            n--;
            i--;
        }
    }

    t->text = text;
    t->ops = ops;
    t->nops = n;
    t->needs = b->needs;

    return t;
}


omni_tmpl_t *
omni_tmpl_html_url(const omni_tmpl_t *t, omni_tmpl_alloc_pt alloc,
    void *pool, size_t *delta)
{
    char              *text;
    size_t             size, n, k, total;
    unsigned           i;
    omni_sink_t        sink;
    omni_top_t        *ops;
    omni_tmpl_t       *h;
    const omni_top_t  *op;

    *delta = 0;

    if (t == NULL || t->nops == 0 || t->ops[0].op != OMNI_TOP_LIT
        || t->ops[0].len < 8)
    {
        return NULL;
    }

    for (k = 0; k < 8; k++) {
        if ((unsigned char) t->text[t->ops[0].off + k] <= ' ') {
            return NULL;
        }
    }

    if (!omni_url_allowed(t->text + t->ops[0].off, 8)) {
        return NULL;
    }

    /* the original text (variables' keys and defaults), then the
       escaped literals */
    size = 0;
    n = 0;

    for (i = 0; i < t->nops; i++) {
        op = &t->ops[i];

        size = op->off + op->len > size ? op->off + op->len : size;
        size = op->def_off + op->def_len > size ? op->def_off + op->def_len
                                                : size;

        if (op->op == OMNI_TOP_VAR) {
            if (op->esc != OMNI_ESC_URL_RAW && op->esc != OMNI_ESC_URL_PART) {
                return NULL;
            }

            continue;
        }

        if (op->op != OMNI_TOP_LIT) {
            return NULL;
        }

        omni_sink_buf(&sink, NULL, 0);
        omni_esc_html(&sink, t->text + op->off, op->len);
        n += sink.len;
        *delta += sink.len - op->len;
    }

    h = alloc(pool, sizeof(omni_tmpl_t));
    text = alloc(pool, size + n + 1);
    ops = alloc(pool, t->nops * sizeof(omni_top_t));

    if (h == NULL || text == NULL || ops == NULL) {
        *delta = 0;
        return NULL;
    }

    memcpy(text, t->text, size);
    memcpy(ops, t->ops, t->nops * sizeof(omni_top_t));
    total = size + n;
    n = size;

    for (i = 0; i < t->nops; i++) {
        if (ops[i].op != OMNI_TOP_LIT) {
            continue;
        }

        /* the room left is what the first pass measured, plus one */
        omni_sink_buf(&sink, text + n, total + 1 - n);
        omni_esc_html(&sink, t->text + ops[i].off, ops[i].len);

        ops[i].off = (uint32_t) n;
        ops[i].len = (uint32_t) sink.len;
        n += sink.len;
    }

    text[n] = '\0';

    h->text = text;
    h->ops = ops;
    h->nops = t->nops;
    h->needs = t->needs;

    return h;
}


omni_tmpl_t *
omni_tmpl_compile(const char *src, size_t len, unsigned mode,
    omni_tmpl_alloc_pt alloc, void *pool, omni_tmpl_err_t *err)
{
    omni_tmpl_t    *t;
    omni_tmpl_b_t   b;

    omni_tmpl_b_init(&b);

    if (omni_tmpl_b_parse(&b, src, len, mode, err) != 0) {
        omni_tmpl_b_free(&b);
        return NULL;
    }

    t = omni_tmpl_b_finish(&b, alloc, pool);
    omni_tmpl_b_free(&b);

    if (t == NULL) {
        (void) omni_tmpl_err(err, 0, "out of memory", NULL);
    }

    return t;
}
