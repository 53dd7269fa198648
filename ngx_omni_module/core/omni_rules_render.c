/*
 * Rendering a decision: banner HTML per slot, pixels, the JSON document
 * for apps, plain text for email and SMS, header values, and the list of
 * shown rules.  Every renderer reads the profile view in ctx again (the
 * caller keeps it valid), writes through a counted sink (snprintf-style)
 * and allocates nothing.
 *
 * Template variables resolve here: attributes, profile fields, the cart,
 * the view, purchase and store a rule matched (omni_match_t), geo, and
 * the rule itself.  Escaping is the template's business (omni_tmpl.c).
 */

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "omni_rules_int.h"


#define OMNI_PIXEL_URL_MAX   4096

typedef struct {
    const omni_ruleset_t  *set;
    omni_eval_t           *ctx;
    const omni_rec_t      *rec;
    const omni_rule_t     *rule;
    const omni_match_t    *match;
} omni_renv_t;


static void omni_render_resolve(void *env, const omni_top_t *op,
    const char *text, const char **val, size_t *len, char *scratch,
    size_t cap);


/* ---- values ---- */

/*
 * Fixed-point formatting by hand: printf's "%f" follows LC_NUMERIC, and a
 * price must read the same in nginx and in omnictl whatever the locale.
 */
static size_t
omni_fmt_fixed(double v, unsigned decimals, char *buf, size_t cap)
{
    char          digits[32];
    size_t        n, k;
    unsigned      d;
    long long     scaled;
    unsigned long long  u, scale;
    int           neg;

    scale = 1;
    for (d = 0; d < decimals; d++) {
        scale *= 10;
    }

    scaled = llround(v * (double) scale);
    neg = scaled < 0;
    u = neg ? 0ULL - (unsigned long long) scaled : (unsigned long long) scaled;

    /* digits, least significant first, with the point */
    n = 0;
    d = 0;

    do {
        if (decimals > 0 && d == decimals) {
            digits[n++] = '.';
        }

        digits[n++] = (char) ('0' + u % 10);
        u /= 10;
        d++;
    } while (u > 0 || d <= decimals);

    if (neg && scaled != 0) {
        digits[n++] = '-';
    }

    if (n + 1 > cap) {
        return 0;
    }

    for (k = 0; k < n; k++) {
        buf[k] = digits[n - 1 - k];
    }

    buf[n] = '\0';

    return n;
}


static void
omni_set_num(double v, int decimals, const char **val, size_t *len,
    char *scratch, size_t cap)
{
    size_t  n;

    *len = 0;

    if (!isfinite(v) || fabs(v) >= 1e15) {
        return;
    }

    if (decimals >= 0) {
        n = omni_fmt_fixed(v, (unsigned) decimals, scratch, cap);

    } else if (v == floor(v)) {
        /* attributes: integers as such */
        n = omni_fmt_fixed(v, 0, scratch, cap);

    } else {
        /* otherwise up to 6 decimals, trailing zeros dropped */
        n = fabs(v) < 1e8 ? omni_fmt_fixed(v, 6, scratch, cap) : 0;

        while (n > 0 && scratch[n - 1] == '0') {
            n--;
        }

        scratch[n] = '\0';
    }

    *val = scratch;
    *len = n;
}


static void
omni_set_bytes(omni_bytes_t b, const char **val, size_t *len)
{
    *val = (const char *) b.data;
    *len = b.data ? b.len : 0;
}


static void
omni_set_strv(omni_strv_t s, const char **val, size_t *len)
{
    *val = s.data;
    *len = s.data ? s.len : 0;
}


static const omni_product_t *
omni_product(const omni_ruleset_t *set, omni_bytes_t sku)
{
    int32_t  id;

    id = omni_sym_find(&set->skus, (const char *) sku.data, sku.len);

    if (id < 0 || set->product_of[id] < 0) {
        return NULL;
    }

    return &set->products[set->product_of[id]];
}


/* The item fields every kind shares; name/url/image from the catalog. */
static void
omni_item_field(const omni_renv_t *env, unsigned field, omni_bytes_t sku,
    omni_bytes_t category, double price, const char **val, size_t *len,
    char *scratch, size_t cap)
{
    const omni_product_t  *p;

    switch (field) {
    case OMNI_VF_SKU:
        omni_set_bytes(sku, val, len);
        return;
    case OMNI_VF_CATEGORY:
        omni_set_bytes(category, val, len);
        return;
    case OMNI_VF_PRICE:
        omni_set_num(price, 2, val, len, scratch, cap);
        return;
    }

    p = omni_product(env->set, sku);
    if (p == NULL) {
        return;
    }

    switch (field) {
    case OMNI_VF_NAME:
        omni_set_strv(p->name, val, len);
        break;
    case OMNI_VF_URL:
        omni_set_strv(p->url, val, len);
        break;
    case OMNI_VF_IMAGE:
        omni_set_strv(p->image, val, len);
        break;
    }
}


static void
omni_resolve_cart(const omni_renv_t *env, const omni_top_t *op,
    const char **val, size_t *len, char *scratch, size_t cap)
{
    uint32_t              lines, items;
    double                value, best, v;
    int                   found;
    omni_rec_iter_t       it;
    omni_rec_cart_item_t  ci, pick;

    lines = 0;
    items = 0;
    value = 0;
    best = -1;
    found = 0;
    memset(&pick, 0, sizeof(pick));

    omni_rec_cart_init(&it, env->rec);

    while (omni_rec_cart_next(&it, &ci)) {
        lines++;
        items += ci.qty;
        v = isfinite(ci.price) ? ci.price * ci.qty : 0;
        value += v;

        if (op->var == OMNI_V_CART_LAST) {
            pick = ci;
            found = 1;

        } else if (op->var == OMNI_V_CART_TOP && v > best) {
            /* the most valuable line; the first one on a tie */
            best = v;
            pick = ci;
            found = 1;
        }
    }

    switch (op->var) {
    case OMNI_V_CART_COUNT:
        omni_set_num(lines, 0, val, len, scratch, cap);
        return;
    case OMNI_V_CART_ITEMS:
        omni_set_num(items, 0, val, len, scratch, cap);
        return;
    case OMNI_V_CART_VALUE:
        omni_set_num(value, 2, val, len, scratch, cap);
        return;
    }

    if (!found) {
        return;
    }

    switch (op->field) {
    case OMNI_VF_SKU:
        omni_set_bytes(pick.sku, val, len);
        break;
    case OMNI_VF_NAME:
        omni_set_bytes(pick.name, val, len);
        break;
    case OMNI_VF_CATEGORY:
        omni_set_bytes(pick.category, val, len);
        break;
    case OMNI_VF_PRICE:
        omni_set_num(pick.price, 2, val, len, scratch, cap);
        break;
    case OMNI_VF_QTY:
        omni_set_num(pick.qty, 0, val, len, scratch, cap);
        break;
    case OMNI_VF_URL:
        omni_set_bytes(pick.url, val, len);
        break;
    case OMNI_VF_IMAGE:
        omni_set_bytes(pick.image, val, len);
        break;
    }
}


/* The matched view, or else the most recent one. */
static void
omni_resolve_viewed(const omni_renv_t *env, const omni_top_t *op,
    const char **val, size_t *len, char *scratch, size_t cap)
{
    int                ord, want, found;
    double             price;
    omni_bytes_t       item, sku, cat, psku, pcat;
    omni_rec_iter_t    it;
    omni_rec_fields_t  f;

    want = env->match ? env->match->view : -1;
    found = 0;
    price = 0;
    memset(&psku, 0, sizeof(psku));
    memset(&pcat, 0, sizeof(pcat));

    omni_rec_iter_init(&it, env->rec, OMNI_SECT_VIEWS);

    for (ord = 0; omni_rec_iter_next(&it, &item); ord++) {
        if (want >= 0 && ord != want) {
            continue;
        }

        omni_rec_fields_init(&f, item);
        sku = omni_rec_get_str(&f);
        cat = omni_rec_get_str(&f);
        (void) omni_rec_get_u32(&f);

        psku = sku;
        pcat = cat;
        price = omni_rec_get_f64(&f);
        found = 1;

        if (want >= 0) {
            break;
        }
    }

    if (found) {
        omni_item_field(env, op->field, psku, pcat, price, val, len,
                        scratch, cap);
    }
}


/* The matched purchase, or else the most recent one. */
static void
omni_resolve_purchased(const omni_renv_t *env, const omni_top_t *op,
    const char **val, size_t *len, char *scratch, size_t cap)
{
    int                  ord, want, found;
    omni_rec_iter_t      it;
    omni_rec_purchase_t  p, pick;

    want = env->match ? env->match->purchase : -1;
    found = 0;
    memset(&pick, 0, sizeof(pick));

    omni_rec_iter_init(&it, env->rec, OMNI_SECT_PURCHASES);

    for (ord = 0; omni_rec_purchase_next(&it, &p); ord++) {
        if (want >= 0) {
            if (ord == want) {
                pick = p;
                found = 1;
                break;
            }

        } else if (!found || p.time >= pick.time) {
            pick = p;
            found = 1;
        }
    }

    if (!found) {
        return;
    }

    if (op->field == OMNI_VF_QTY) {
        omni_set_num(pick.qty, 0, val, len, scratch, cap);

    } else if (op->field == OMNI_VF_ORDER_ID) {
        omni_set_bytes(pick.order_id, val, len);

    } else {
        omni_item_field(env, op->field, pick.sku, pick.category, pick.price,
                        val, len, scratch, cap);
    }
}


static void
omni_render_resolve(void *data, const omni_top_t *op, const char *text,
    const char **val, size_t *len, char *scratch, size_t cap)
{
    int                  type;
    double               num;
    unsigned             stage;
    omni_bytes_t         s;
    omni_run_t          *run;
    const omni_store_t  *st;
    const omni_renv_t   *env = data;
    const omni_rec_t    *rec = env->rec;

    *val = NULL;
    *len = 0;

    switch (op->var) {

    case OMNI_V_ATTR:
        type = omni_rec_get_attr(rec, text + op->off, op->len, &s, &num);

        if (type == OMNI_ATTR_STR) {
            omni_set_bytes(s, val, len);

        } else if (type == OMNI_ATTR_NUM) {
            omni_set_num(num, -1, val, len, scratch, cap);
        }

        return;

    case OMNI_V_PROFILE_ID:
        if (env->ctx->rec != NULL) {
            omni_id_hex(rec->id, scratch);

        } else if (env->ctx->pid != NULL) {
            omni_id_hex(env->ctx->pid, scratch);

        } else {
            return;
        }

        *val = scratch;
        *len = OMNI_ID_HEX_LEN;
        return;

    case OMNI_V_PROFILE_VISITS:
        omni_set_num(rec->visits, 0, val, len, scratch, cap);
        return;

    case OMNI_V_PROFILE_ORDERS:
        omni_set_num(rec->orders, 0, val, len, scratch, cap);
        return;

    case OMNI_V_PROFILE_REVENUE:
        omni_set_num(rec->revenue, 2, val, len, scratch, cap);
        return;

    case OMNI_V_PROFILE_STAGE:
        {
            /* the same derivation as the stage condition; the run state
               is big, so it is only set up here, on this rare path */
            omni_run_t  r;

            run = &r;
            omni_run_init(run, env->set, env->ctx);
            stage = omni_run_stage(run);
            *val = omni_stage_name(stage);
            *len = *val ? strlen(*val) : 0;
        }
        return;

    case OMNI_V_CART_COUNT:
    case OMNI_V_CART_ITEMS:
    case OMNI_V_CART_VALUE:
    case OMNI_V_CART_TOP:
    case OMNI_V_CART_LAST:
        omni_resolve_cart(env, op, val, len, scratch, cap);
        return;

    case OMNI_V_VIEWED:
        omni_resolve_viewed(env, op, val, len, scratch, cap);
        return;

    case OMNI_V_PURCHASED:
        omni_resolve_purchased(env, op, val, len, scratch, cap);
        return;

    case OMNI_V_GEO_COUNTRY:
    case OMNI_V_GEO_REGION:
    case OMNI_V_GEO_CITY:
        if (!omni_run_geo(env->ctx)) {
            return;
        }

        *val = op->var == OMNI_V_GEO_COUNTRY ? env->ctx->geo_value.country
               : op->var == OMNI_V_GEO_REGION ? env->ctx->geo_value.region
                                              : env->ctx->geo_value.city;
        *len = strlen(*val);
        return;

    case OMNI_V_STORE:
        if (env->match == NULL || env->match->store < 0
            || (uint32_t) env->match->store >= env->set->nstores)
        {
            return;
        }

        st = &env->set->stores[env->match->store];

        switch (op->field) {
        case OMNI_VF_ID:
            omni_set_strv(st->id, val, len);
            break;
        case OMNI_VF_NAME:
            omni_set_strv(st->name, val, len);
            break;
        case OMNI_VF_ADDRESS:
            omni_set_strv(st->address, val, len);
            break;
        case OMNI_VF_URL:
            omni_set_strv(st->url, val, len);
            break;
        case OMNI_VF_DISTANCE_KM:
            omni_set_num(env->match->store_km, 1, val, len, scratch, cap);
            break;
        }

        return;

    case OMNI_V_RULE_ID:
        if (env->rule) {
            omni_set_strv(env->rule->id, val, len);
        }
        return;

    case OMNI_V_RULE_CAMPAIGN:
        if (env->rule) {
            omni_set_strv(env->rule->campaign, val, len);
        }
        return;

    case OMNI_V_CHANNEL:
        *val = omni_channel_name(env->ctx->channel);
        *len = *val ? strlen(*val) : 0;
        return;
    }
}


static void
omni_renv(omni_renv_t *env, const omni_ruleset_t *set, omni_eval_t *ctx,
    const omni_decision_t *d, unsigned shown)
{
    env->set = set;
    env->ctx = ctx;
    env->rec = omni_rec_or_empty(ctx->rec);
    env->rule = &set->rules[d->shown[shown].rule];
    env->match = &d->shown[shown].match;
}


static int
omni_decision_valid(const omni_ruleset_t *set, const omni_decision_t *d)
{
    unsigned  i;

    if (set == NULL || d->block != OMNI_BLOCK_NONE) {
        return 0;
    }

    /* a decision from another set must not index out of this one */
    for (i = 0; i < d->nshown; i++) {
        if (d->shown[i].rule >= set->nrules) {
            return 0;
        }
    }

    return 1;
}


/* ---- slot HTML ---- */

size_t
omni_render_slot_html(const omni_ruleset_t *set, omni_eval_t *ctx,
    const omni_decision_t *d, const char *slot, size_t slot_len,
    char *out, size_t cap)
{
    int           s;
    omni_sink_t   sink;
    omni_renv_t   env;

    omni_sink_buf(&sink, out, cap);

    if (!omni_decision_valid(set, d)) {
        return omni_sink_end(&sink);
    }

    s = omni_rules_slot_find(set, slot, slot_len);

    if (s >= 0 && d->slot[s] >= 0) {
        omni_renv(&env, set, ctx, d, (unsigned) d->slot[s]);

        if (env.rule->html != NULL) {
            omni_tmpl_render(env.rule->html, &sink, omni_render_resolve,
                             &env);
        }
    }

    return omni_sink_end(&sink);
}


/* ---- pixels ---- */

/*
 * Renders pixel i's URL into buf; 0 when it does not fit or (should a
 * template ever allow it) does not pass the URL policy.
 */
static size_t
omni_pixel_url(const omni_ruleset_t *set, omni_eval_t *ctx,
    const omni_decision_t *d, unsigned i, char *buf, size_t cap,
    unsigned *type)
{
    size_t              n;
    omni_sink_t         sink;
    omni_renv_t         env;
    const omni_pixel_t *px;

    omni_renv(&env, set, ctx, d, d->pixels[i].shown);
    px = &env.rule->pixels[d->pixels[i].pixel];
    *type = px->type;

    omni_sink_buf(&sink, buf, cap);
    omni_tmpl_render(px->url, &sink, omni_render_resolve, &env);
    n = omni_sink_end(&sink);

    if (n >= cap || !omni_url_allowed(buf, n)) {
        return 0;
    }

    return n;
}


/* Calls fn for each distinct rendered pixel URL. */
static void
omni_pixels_each(const omni_ruleset_t *set, omni_eval_t *ctx,
    const omni_decision_t *d, omni_sink_t *out,
    void (*fn)(omni_sink_t *out, unsigned type, const char *url, size_t n,
               unsigned k))
{
    char      url[OMNI_PIXEL_URL_MAX];
    uint64_t  seen[OMNI_DECISION_MAX_PIXELS], h;
    unsigned  i, j, k, type;
    size_t    n;

    k = 0;

    for (i = 0; i < d->npixels && i < OMNI_DECISION_MAX_PIXELS; i++) {
        n = omni_pixel_url(set, ctx, d, i, url, sizeof(url), &type);
        if (n == 0) {
            continue;
        }

        /* two templates can render the same URL: one request is enough */
        /* equal keys are taken as equal URLs, as they always were */
        h = omni_hash_fast(url, n) ^ type;

        for (j = 0; j < k; j++) {
            if (seen[j] == h) {
                break;
            }
        }

        if (j < k) {
            continue;
        }

        seen[k] = h;
        fn(out, type, url, n, k);
        k++;
    }
}


static void
omni_pixel_html(omni_sink_t *out, unsigned type, const char *url, size_t n,
    unsigned k)
{
    if (type == OMNI_PIXEL_IMG) {
        omni_sink_str(out, "<img src=\"");
        omni_esc_html(out, url, n);
        omni_sink_str(out, "\" width=\"1\" height=\"1\" alt=\"\">");

    } else {
        omni_sink_str(out, "<script async src=\"");
        omni_esc_html(out, url, n);
        omni_sink_str(out, "\"></script>");
    }
}


/*
 * The pixels' tags from the URL templates HTML-escaped at load time
 * (omni_tmpl_html_url()): one render per pixel, where the plain way
 * renders the URL and then escapes it.  The same bytes: a variable's
 * percent-encoding leaves nothing for HTML escaping, the URL's length is
 * the escaped one less the fixed delta, the first literal passed the URL
 * policy at load, and equal escaped URLs are equal URLs (the escaping is
 * one to one), so de-duplication keys on them.  0 when a pixel has no
 * escaped template: the caller takes the plain way.
 */
static int
omni_pixels_html_pre(const omni_ruleset_t *set, omni_eval_t *ctx,
    const omni_decision_t *d, omni_sink_t *out)
{
    char                 html[5 * OMNI_PIXEL_URL_MAX];
    uint64_t             seen[OMNI_DECISION_MAX_PIXELS], h;
    unsigned             i, j, k;
    size_t               n;
    omni_sink_t          sink;
    omni_renv_t          env;
    const omni_pixel_t  *px;

    for (i = 0; i < d->npixels && i < OMNI_DECISION_MAX_PIXELS; i++) {
        px = &set->rules[d->shown[d->pixels[i].shown].rule]
                  .pixels[d->pixels[i].pixel];

        if (px->html == NULL) {
            return 0;
        }
    }

    k = 0;

    for (i = 0; i < d->npixels && i < OMNI_DECISION_MAX_PIXELS; i++) {
        omni_renv(&env, set, ctx, d, d->pixels[i].shown);
        px = &env.rule->pixels[d->pixels[i].pixel];

        omni_sink_buf(&sink, html, sizeof(html));
        omni_tmpl_render(px->html, &sink, omni_render_resolve, &env);
        n = omni_sink_end(&sink);

        /* the URL itself: OMNI_PIXEL_URL_MAX - 1 bytes at most, so the
           escaped one (five times that at most) fits */
        if (n - px->html_delta >= OMNI_PIXEL_URL_MAX) {
            continue;
        }

        h = omni_hash_fast(html, n) ^ px->type;

        for (j = 0; j < k; j++) {
            if (seen[j] == h) {
                break;
            }
        }

        if (j < k) {
            continue;
        }

        seen[k++] = h;

        if (px->type == OMNI_PIXEL_IMG) {
            omni_sink_str(out, "<img src=\"");
            out->put(out, html, n);
            omni_sink_str(out, "\" width=\"1\" height=\"1\" alt=\"\">");

        } else {
            omni_sink_str(out, "<script async src=\"");
            out->put(out, html, n);
            omni_sink_str(out, "\"></script>");
        }
    }

    return 1;
}


size_t
omni_render_pixels_html(const omni_ruleset_t *set, omni_eval_t *ctx,
    const omni_decision_t *d, char *out, size_t cap)
{
    omni_sink_t  sink;

    omni_sink_buf(&sink, out, cap);

    if (omni_decision_valid(set, d) && !d->no_ads
        && !omni_pixels_html_pre(set, ctx, d, &sink))
    {
        omni_pixels_each(set, ctx, d, &sink, omni_pixel_html);
    }

    return omni_sink_end(&sink);
}


size_t
omni_render_pixels_html_plain(const omni_ruleset_t *set, omni_eval_t *ctx,
    const omni_decision_t *d, char *out, size_t cap)
{
    omni_sink_t  sink;

    omni_sink_buf(&sink, out, cap);

    if (omni_decision_valid(set, d) && !d->no_ads) {
        omni_pixels_each(set, ctx, d, &sink, omni_pixel_html);
    }

    return omni_sink_end(&sink);
}


static void
omni_pixel_json(omni_sink_t *out, unsigned type, const char *url, size_t n,
    unsigned k)
{
    omni_sink_str(out, k ? ",{\"type\":\"" : "{\"type\":\"");
    omni_sink_str(out, type == OMNI_PIXEL_IMG ? "img" : "script");
    omni_sink_str(out, "\",\"url\":\"");
    omni_esc_json(out, url, n);
    omni_sink_str(out, "\"}");
}


/* ---- text ---- */

/* A winner's text: its "text" template, or its HTML without tags. */
static int
omni_render_winner_text(omni_renv_t *env, omni_sink_t *out)
{
    omni_sink_t  strip;

    if (env->rule->text != NULL) {
        omni_tmpl_render(env->rule->text, out, omni_render_resolve, env);
        return 1;
    }

    if (env->rule->html != NULL) {
        omni_sink_strip(&strip, out);
        omni_tmpl_render(env->rule->html, &strip, omni_render_resolve, env);
        omni_sink_strip_end(&strip);
        return 1;
    }

    return 0;
}


size_t
omni_render_text(const omni_ruleset_t *set, omni_eval_t *ctx,
    const omni_decision_t *d, unsigned channel, char *out, size_t cap)
{
    unsigned     s, best, n;
    omni_sink_t  sink;
    omni_renv_t  env;

    omni_sink_buf(&sink, out, cap);

    if (!omni_decision_valid(set, d)) {
        return omni_sink_end(&sink);
    }

    if (channel == OMNI_CH_SMS) {
        /* one message: the highest-ranked winner with a text form */
        best = OMNI_DECISION_MAX_SHOWN;

        for (s = 0; s < set->nslots; s++) {
            if (d->slot[s] < 0) {
                continue;
            }

            env.rule = &set->rules[d->shown[(unsigned) d->slot[s]].rule];

            if ((env.rule->text || env.rule->html)
                && (unsigned) d->slot[s] < best)
            {
                best = (unsigned) d->slot[s];
            }
        }

        if (best < OMNI_DECISION_MAX_SHOWN) {
            omni_renv(&env, set, ctx, d, best);
            (void) omni_render_winner_text(&env, &sink);
        }

        return omni_sink_end(&sink);
    }

    n = 0;

    for (s = 0; s < set->nslots; s++) {
        if (d->slot[s] < 0) {
            continue;
        }

        omni_renv(&env, set, ctx, d, (unsigned) d->slot[s]);

        if (env.rule->text == NULL && env.rule->html == NULL) {
            continue;
        }

        if (n++ > 0) {
            omni_sink_str(&sink, "\n\n");
        }

        (void) omni_render_winner_text(&env, &sink);
    }

    return omni_sink_end(&sink);
}


/* ---- headers ---- */

size_t
omni_render_header(const omni_ruleset_t *set, omni_eval_t *ctx,
    const omni_decision_t *d, unsigned i, omni_strv_t *name, char *out,
    size_t cap)
{
    omni_sink_t          sink;
    omni_renv_t          env;
    const omni_header_t *h;

    omni_sink_buf(&sink, out, cap);
    name->data = NULL;
    name->len = 0;

    if (!omni_decision_valid(set, d) || i >= d->nheaders) {
        return omni_sink_end(&sink);
    }

    omni_renv(&env, set, ctx, d, d->headers[i].shown);
    h = &env.rule->headers[d->headers[i].header];
    *name = h->name;

    /* variables are stripped of control characters as they render */
    omni_tmpl_render(h->value, &sink, omni_render_resolve, &env);

    return omni_sink_end(&sink);
}


/* ---- shown ---- */

static void
omni_shown_list(const omni_ruleset_t *set, const omni_decision_t *d,
    unsigned what, omni_sink_t *out, int json)
{
    unsigned            i, j, n;
    const omni_rule_t  *r, *o;

    n = 0;

    for (i = 0; i < d->nshown; i++) {
        r = &set->rules[d->shown[i].rule];

        if (what == OMNI_SHOWN_CAMPAIGNS) {
            /* each campaign once */
            for (j = 0; j < i; j++) {
                o = &set->rules[d->shown[j].rule];

                if (omni_strv_eq(o->campaign, r->campaign.data,
                                 r->campaign.len))
                {
                    break;
                }
            }

            if (j < i) {
                continue;
            }
        }

        if (json) {
            omni_sink_str(out, n ? ",{\"rule\":\"" : "{\"rule\":\"");
            omni_esc_json(out, r->id.data, r->id.len);
            omni_sink_str(out, "\",\"campaign\":\"");
            omni_esc_json(out, r->campaign.data, r->campaign.len);
            omni_sink_str(out, "\"}");

        } else {
            if (n) {
                omni_sink_str(out, ",");
            }

            if (what == OMNI_SHOWN_CAMPAIGNS) {
                out->put(out, r->campaign.data, r->campaign.len);

            } else {
                out->put(out, r->id.data, r->id.len);
            }
        }

        n++;
    }
}


size_t
omni_render_shown(const omni_ruleset_t *set, const omni_decision_t *d,
    unsigned what, char *out, size_t cap)
{
    omni_sink_t  sink;

    omni_sink_buf(&sink, out, cap);

    if (omni_decision_valid(set, d)) {
        omni_shown_list(set, d, what, &sink, 0);
    }

    return omni_sink_end(&sink);
}


/* ---- JSON ---- */

/* Lines in, JSON string array items out: a\nb\n -> "a","b" */
typedef struct {
    omni_sink_t   base;
    unsigned      open;
    unsigned      n;
} omni_jlines_t;


static void
omni_jlines_put(omni_sink_t *s, const char *p, size_t n)
{
    omni_jlines_t  *j = (omni_jlines_t *) s;
    size_t          i, run;

    run = 0;

    for (i = 0; i <= n; i++) {
        if (i < n && p[i] != '\n') {
            continue;
        }

        if (i > run || (i < n && !j->open)) {
            if (!j->open) {
                omni_sink_str(s->next, j->n++ ? ",\"" : "\"");
                j->open = 1;
            }

            omni_esc_json(s->next, p + run, i - run);
        }

        if (i < n && j->open) {
            omni_sink_str(s->next, "\"");
            j->open = 0;
        }

        run = i + 1;
    }
}


size_t
omni_render_decision_json(const omni_ruleset_t *set, omni_eval_t *ctx,
    const omni_decision_t *d, int explain, char *out, size_t cap)
{
    unsigned            s, i, n;
    omni_sink_t         sink, js, strip;
    omni_renv_t         env;
    omni_jlines_t       jl;
    omni_strv_t         name;
    const char         *chn;
    static const char  *blocks[] = {
        "null", "\"holdout\"", "\"consent\"", "\"channel consent\""
    };

    omni_sink_buf(&sink, out, cap);

    chn = omni_channel_name(d->channel);

    omni_sink_str(&sink, "{\"channel\":\"");
    omni_sink_str(&sink, chn ? chn : "other");
    omni_sink_str(&sink, "\",\"holdout\":");
    omni_sink_str(&sink, d->holdout ? "true" : "false");
    omni_sink_str(&sink, ",\"blocked\":");
    omni_sink_str(&sink, blocks[d->block <= 3 ? d->block : 0]);

    omni_sink_str(&sink, ",\"slots\":{");

    n = 0;

    for (s = 0; omni_decision_valid(set, d) && s < set->nslots; s++) {
        if (d->slot[s] < 0) {
            continue;
        }

        omni_renv(&env, set, ctx, d, (unsigned) d->slot[s]);

        omni_sink_str(&sink, n++ ? ",\"" : "\"");
        omni_esc_json(&sink, set->slots[s].data, set->slots[s].len);
        omni_sink_str(&sink, "\":{\"rule\":\"");
        omni_esc_json(&sink, env.rule->id.data, env.rule->id.len);
        omni_sink_str(&sink, "\",\"campaign\":\"");
        omni_esc_json(&sink, env.rule->campaign.data,
                      env.rule->campaign.len);
        omni_sink_str(&sink, "\"");

        if (env.rule->html != NULL) {
            omni_sink_str(&sink, ",\"html\":\"");
            omni_sink_json(&js, &sink);
            omni_tmpl_render(env.rule->html, &js, omni_render_resolve, &env);
            omni_sink_str(&sink, "\"");
        }

        if (env.rule->text != NULL || env.rule->html != NULL) {
            omni_sink_str(&sink, ",\"text\":\"");
            omni_sink_json(&js, &sink);

            if (env.rule->text != NULL) {
                omni_tmpl_render(env.rule->text, &js, omni_render_resolve,
                                 &env);

            } else {
                omni_sink_strip(&strip, &js);
                omni_tmpl_render(env.rule->html, &strip, omni_render_resolve,
                                 &env);
                omni_sink_strip_end(&strip);
            }

            omni_sink_str(&sink, "\"");
        }

        if (env.rule->payload != NULL) {
            omni_sink_str(&sink, ",\"payload\":");
            omni_tmpl_render(env.rule->payload, &sink, omni_render_resolve,
                             &env);
        }

        omni_sink_str(&sink, "}");
    }

    omni_sink_str(&sink, "},\"pixels\":[");

    if (omni_decision_valid(set, d) && !d->no_ads) {
        omni_pixels_each(set, ctx, d, &sink, omni_pixel_json);
    }

    omni_sink_str(&sink, "],\"headers\":{");

    for (i = 0; omni_decision_valid(set, d) && i < d->nheaders; i++) {
        char    hbuf[1024];
        size_t  hn;

        hn = omni_render_header(set, ctx, d, i, &name, hbuf, sizeof(hbuf));
        if (hn >= sizeof(hbuf)) {
            hn = sizeof(hbuf) - 1;
        }

        omni_sink_str(&sink, i ? ",\"" : "\"");
        omni_esc_json(&sink, name.data, name.len);
        omni_sink_str(&sink, "\":\"");
        omni_esc_json(&sink, hbuf, hn);
        omni_sink_str(&sink, "\"");
    }

    omni_sink_str(&sink, "},\"shown\":[");

    if (omni_decision_valid(set, d)) {
        omni_shown_list(set, d, OMNI_SHOWN_RULES, &sink, 1);
    }

    omni_sink_str(&sink, "]");

    if (explain) {
        /* the explanation renders once, straight into the JSON array */
        omni_sink_str(&sink, ",\"explanation\":[");

        memset(&jl, 0, sizeof(jl));
        jl.base.put = omni_jlines_put;
        jl.base.next = &sink;

        omni_explain_sink(set, ctx, &jl.base);

        if (jl.open) {
            omni_sink_str(&sink, "\"");
        }

        omni_sink_str(&sink, "]");
    }

    omni_sink_str(&sink, "}");

    return omni_sink_end(&sink);
}
