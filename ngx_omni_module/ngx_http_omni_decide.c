/*
 * One decision per request, made by the core (omni_decide) inside one
 * short LMDB read window, and rendered into the request pool: slot HTML,
 * pixels, response headers, the shown rules and campaigns, and (for apps)
 * the decision JSON.  The HTML filter, the app endpoints and the
 * variables all read this one rendering, so a page, its headers and its
 * log line never disagree.
 */

#include "ngx_http_omni_module.h"
#include "omni_batch.h"


typedef size_t (*ngx_http_omni_render_pt)(ngx_http_request_t *r,
    omni_eval_t *ev, omni_decision_t *d, void *arg, char *out, size_t cap);


/* Where a decision's renderings go: one pool block, filled in turn. */
typedef struct {
    u_char  *pos;
    u_char  *end;
} ngx_http_omni_area_t;

#define NGX_HTTP_OMNI_AREA_SIZE  4096


static ngx_int_t ngx_http_omni_render(ngx_http_request_t *r,
    ngx_http_omni_area_t *area, ngx_http_omni_render_pt fn, omni_eval_t *ev,
    omni_decision_t *d, void *arg, ngx_str_t *out);
static ngx_int_t ngx_http_omni_decision_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_str_t  ngx_http_omni_one = ngx_string("1");
static ngx_str_t  ngx_http_omni_zero = ngx_string("0");


static ngx_http_variable_t  ngx_http_omni_decision_vars[] = {

    { ngx_string("omni_rules"), NULL, ngx_http_omni_decision_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("omni_campaigns"), NULL, ngx_http_omni_decision_variable,
      1, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("omni_holdout"), NULL, ngx_http_omni_decision_variable,
      2, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("omni_decision"), NULL, ngx_http_omni_decision_variable,
      3, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/*
 * The rules a request decides with: the set serving, or the draft the
 * console's "try this rule" compiled for this request only.
 */
static ngx_inline omni_ruleset_t *
ngx_http_omni_decide_set(ngx_http_request_t *r)
{
    ngx_http_omni_ctx_t  *ctx;

    ctx = ngx_http_omni_get_ctx(r, 0);

    return ctx && ctx->draft ? ctx->draft : ngx_http_omni_rules_current();
}


/*
 * snprintf-style renderers, one after the other into one pool block (a
 * banner, the pixels, the lists of shown rules: a few hundred bytes
 * each), where each used to get a 1 KB allocation of its own.  What does
 * not fit the block's rest is rendered again into a new block, at least
 * its full size.
 */
static ngx_int_t
ngx_http_omni_render(ngx_http_request_t *r, ngx_http_omni_area_t *area,
    ngx_http_omni_render_pt fn, omni_eval_t *ev, omni_decision_t *d,
    void *arg, ngx_str_t *out)
{
    size_t  need, cap;

    need = 0;

    for ( ;; ) {
        cap = area->pos ? (size_t) (area->end - area->pos) : 0;

        if (cap > need) {
            need = fn(r, ev, d, arg, (char *) area->pos, cap);

            if (need < cap) {
                /* each stays NUL-terminated, as the renderer left it */
                out->data = area->pos;
                out->len = need;
                area->pos += need + 1;
                return NGX_OK;
            }
        }

        cap = ngx_max(need + 1, NGX_HTTP_OMNI_AREA_SIZE);

        area->pos = ngx_pnalloc(r->pool, cap);
        if (area->pos == NULL) {
            area->end = NULL;
            return NGX_ERROR;
        }

        area->end = area->pos + cap;
    }
}


typedef struct {
    const char  *name;
    size_t       len;
} ngx_http_omni_slot_arg_t;


static size_t
ngx_http_omni_render_slot(ngx_http_request_t *r, omni_eval_t *ev,
    omni_decision_t *d, void *arg, char *out, size_t cap)
{
    ngx_http_omni_slot_arg_t  *a = arg;

    return omni_render_slot_html(ngx_http_omni_decide_set(r), ev, d,
                                 a->name, a->len, out, cap);
}


static size_t
ngx_http_omni_render_pixels(ngx_http_request_t *r, omni_eval_t *ev,
    omni_decision_t *d, void *arg, char *out, size_t cap)
{
    return omni_render_pixels_html(ngx_http_omni_decide_set(r), ev, d,
                                   out, cap);
}


static size_t
ngx_http_omni_render_json(ngx_http_request_t *r, omni_eval_t *ev,
    omni_decision_t *d, void *arg, char *out, size_t cap)
{
    return omni_render_decision_json(ngx_http_omni_decide_set(r), ev, d,
                                     arg != NULL, out, cap);
}


static size_t
ngx_http_omni_render_txt(ngx_http_request_t *r, omni_eval_t *ev,
    omni_decision_t *d, void *arg, char *out, size_t cap)
{
    return omni_render_text(ngx_http_omni_decide_set(r), ev, d,
                            ev->channel, out, cap);
}


static size_t
ngx_http_omni_render_shown(ngx_http_request_t *r, omni_eval_t *ev,
    omni_decision_t *d, void *arg, char *out, size_t cap)
{
    return omni_render_shown(ngx_http_omni_decide_set(r), d,
                             (unsigned) (uintptr_t) arg, out, cap);
}


typedef struct {
    unsigned      i;
    omni_strv_t   name;
} ngx_http_omni_header_arg_t;


static size_t
ngx_http_omni_render_hdr(ngx_http_request_t *r, omni_eval_t *ev,
    omni_decision_t *d, void *arg, char *out, size_t cap)
{
    ngx_http_omni_header_arg_t  *a = arg;

    return omni_render_header(ngx_http_omni_decide_set(r), ev, d, a->i,
                              &a->name, out, cap);
}


#define NGX_HTTP_OMNI_EXTRA_MAX  64


/* A request that ends without queuing its touch gives its entries back. */
static void
ngx_http_omni_decide_cleanup(void *data)
{
    ngx_http_omni_ctx_t  *ctx = data;

    ngx_http_omni_queue_t  *qu;

    qu = ngx_http_omni_queue();

    if (ctx->nact && qu) {
        ngx_http_omni_queue_lock();
        ngx_http_omni_activity_settle(qu, ctx->act_seq, ctx->nact, 0);
        ngx_http_omni_queue_unlock();
        ctx->nact = 0;
    }
}


/*
 * Exact frequency caps across workers (ngx_http_omni_activity.c): the
 * capped campaigns the decision shows are reserved under the zone's
 * mutex if the caps still hold with what other requests reserved since
 * the decision looked; if not, it decides again counting those, and the
 * third time it decides under the mutex.
 */
static ngx_int_t
ngx_http_omni_decide_reserve(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, omni_ruleset_t *set, omni_eval_t *ev,
    omni_decision_t *d, uint64_t snap, omni_impr_extra_t *extra)
{
    ngx_uint_t              tries, ncamp;
    uint64_t                camps[NGX_HTTP_OMNI_ACT_MAX];
    ngx_pool_cleanup_t     *cln;
    ngx_http_omni_queue_t  *qu;

    qu = ngx_http_omni_queue();

    if (ctx->nact == 0) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        cln->handler = ngx_http_omni_decide_cleanup;
        cln->data = ctx;
    }

    for (tries = 0; /* void */; tries++) {
        ncamp = omni_decision_campaigns(set, d, camps,
                                        NGX_HTTP_OMNI_ACT_MAX);

        ngx_http_omni_queue_lock();

        /* a decision made again (JSON after HTML) replaces its entries */
        if (ctx->nact) {
            ngx_http_omni_activity_settle(qu, ctx->act_seq, ctx->nact, 0);
            ctx->nact = 0;
        }

        if (ncamp == 0) {
            break;
        }

        ev->nextra = (unsigned) ngx_http_omni_activity_get(qu, ctx->pid,
                                                  snap, extra,
                                                  NGX_HTTP_OMNI_EXTRA_MAX);
        ev->extra = extra;

        if (!omni_decision_caps_hold(set, ev, d)) {
            if (tries < 2) {
                ngx_http_omni_queue_unlock();
                (void) omni_decide(set, ev, d);
                continue;
            }

            (void) omni_decide(set, ev, d);
            ncamp = omni_decision_campaigns(set, d, camps,
                                            NGX_HTTP_OMNI_ACT_MAX);
        }

        ngx_http_omni_activity_reserve(qu, ctx->pid, camps, ncamp, ev->now,
                                       ctx->act_seq, r->connection->log);
        ctx->nact = ncamp;
        break;
    }

    ngx_http_omni_queue_unlock();

    return NGX_OK;
}


#define NGX_HTTP_OMNI_HELD_MAX  32


/* The held-back rules' ids, comma-separated, like dec->rules. */
static ngx_int_t
ngx_http_omni_decide_held(ngx_http_request_t *r, omni_ruleset_t *set,
    omni_eval_t *ev, omni_decision_t *d, ngx_http_omni_decision_t *dec)
{
    u_char       *p;
    size_t        len;
    uint32_t      held[NGX_HTTP_OMNI_HELD_MAX];
    unsigned      i, n;
    const char   *id;

    n = omni_decision_held(set, ev, d, held, NGX_HTTP_OMNI_HELD_MAX);

    if (n == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, n * (OMNI_RULES_MAX_ID + 1));
    if (p == NULL) {
        return NGX_ERROR;
    }

    dec->held.data = p;

    for (i = 0; i < n; i++) {
        id = omni_rules_rule_id(set, held[i], &len);

        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, id, len);
    }

    dec->held.len = p - dec->held.data;

    return NGX_OK;
}


ngx_int_t
ngx_http_omni_decide(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx,
    ngx_uint_t json)
{
    uint64_t                     snap;
    omni_impr_extra_t            extra[NGX_HTTP_OMNI_EXTRA_MAX];
    ngx_http_omni_queue_t       *qu;
    unsigned                     needs, s, reading;
    ngx_int_t                    ret;
    omni_rec_t                   rec;
    omni_eval_t                  ev;
    ngx_keyval_t                *kv;
    omni_store_t                *st;
    omni_ruleset_t              *set;
    omni_decision_t              d;
    ngx_http_omni_slot_t        *slot;
    ngx_http_omni_slot_arg_t     sa;
    ngx_http_omni_header_arg_t   ha;
    ngx_http_omni_decision_t    *dec;
    ngx_http_omni_loc_conf_t    *olcf;
    ngx_http_omni_main_conf_t   *mcf;
    ngx_http_omni_area_t         area;

    if (ctx->decided && (!json || ctx->decided_json)) {
        return ctx->decision ? NGX_OK : NGX_DECLINED;
    }

    ctx->decided = 1;
    ctx->decided_json = json ? 1 : 0;

    area.pos = NULL;
    area.end = NULL;

    set = ngx_http_omni_decide_set(r);

    /* nobody, unless asked as an anonymous visitor (a refused token) */
    if (set == NULL
        || (ctx->identity == NGX_HTTP_OMNI_ID_NONE && !ctx->anonymous))
    {
        return NGX_DECLINED;
    }

    dec = ngx_pcalloc(r->pool, sizeof(ngx_http_omni_decision_t));
    if (dec == NULL) {
        return NGX_ERROR;
    }

    if (ngx_array_init(&dec->slots, r->pool, 2, sizeof(ngx_http_omni_slot_t))
        != NGX_OK
        || ngx_array_init(&dec->headers, r->pool, 1, sizeof(ngx_keyval_t))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    needs = omni_rules_needs(set);

    omni_eval_init(&ev);
    ev.channel = (unsigned) ngx_http_omni_channel(r, ctx);
    ev.now = (uint32_t) ngx_time();

    /* anonymous: no profile id, so no experiment and no holdout either */
    ev.pid = ctx->anonymous ? NULL : ctx->pid;

    /* Sec-GPC or DNT: no ads, whatever was stated */
    if (ngx_http_omni_consent_signal(r)) {
        ev.flags |= OMNI_EVAL_NO_ADS;
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_omni_module);

    if (olcf->consent_model == NGX_HTTP_OMNI_OPT_IN) {
        ev.flags |= OMNI_EVAL_OPT_IN;
    }

    /* the CMP cookie's consent applies on this very request */
    (void) ngx_http_omni_consent(r, ctx);
    ev.req_consent = ctx->consent_req;

    if (needs & OMNI_NEED_PATH) {
        ev.path.data = (char *) r->uri.data;
        ev.path.len = r->uri.len;
    }

    if (needs & OMNI_NEED_QUERY) {
        ev.query.data = (char *) r->args.data;
        ev.query.len = r->args.len;
    }

    if ((needs & OMNI_NEED_REFERRER) && r->headers_in.referer) {
        ev.referrer.data = (char *) r->headers_in.referer->value.data;
        ev.referrer.len = r->headers_in.referer->value.len;
    }

    if ((needs & OMNI_NEED_UA) && r->headers_in.user_agent) {
        ev.user_agent.data = (char *) r->headers_in.user_agent->value.data;
        ev.user_agent.len = r->headers_in.user_agent->value.len;
    }

    /* Geo is looked up lazily, at most once, only if a rule asks. */
    if (needs & OMNI_NEED_GEO) {
        mcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);

        if (mcf->geoip) {
            ev.geo = ngx_http_omni_geo_lookup;
            ev.geo_data = r;
        }
    }

    /*
     * The read window: alias -> profile -> decide -> render, then reset.
     * A brand-new visitor has no profile and needs no read at all.
     */
    st = ngx_http_omni_worker_store();
    ret = NGX_OK;
    reading = 0;

    /*
     * The profile is read when the rules look at it, and also when the
     * consent it may state decides what may be shown: under opt-in, or
     * once some visitor refused something (omni_store_consent_refused()).
     */
    if (st && (ctx->identity == NGX_HTTP_OMNI_ID_COOKIE
               || ctx->identity == NGX_HTTP_OMNI_ID_TOKEN))
    {
        if (ngx_http_omni_read_begin(r, st) != NGX_OK) {
            ctx->store_error = 1;

        } else {
            reading = 1;

            /* caps and cooldowns count the profile's impressions too */
            if (((needs & (OMNI_NEED_PROFILE | OMNI_NEED_PID
                           | OMNI_NEED_CAPS))
                 || olcf->consent_model == NGX_HTTP_OMNI_OPT_IN
                 || omni_store_consent_refused(st))
                && ngx_http_omni_lookup(r, ctx, st, &rec) == OMNI_OK)
            {
                ev.rec = &rec;
            }
        }
    }

    /*
     * Impressions other requests showed that this snapshot does not hold
     * yet count against caps too (ngx_http_omni_activity.c).
     */
    qu = (needs & OMNI_NEED_CAPS) && !ctx->anonymous ? ngx_http_omni_queue()
                                                     : NULL;
    snap = 0;

    if (qu) {
        if (reading
            && ngx_http_omni_read_snap(st, qu->id, &snap) != NGX_OK)
        {
            snap = 0;
        }

        ngx_http_omni_queue_lock();
        ev.nextra = (unsigned) ngx_http_omni_activity_get(qu, ctx->pid, snap,
                                                  extra,
                                                  NGX_HTTP_OMNI_EXTRA_MAX);
        ngx_http_omni_queue_unlock();
        ev.extra = extra;
    }

    omni_decide(set, &ev, &d);

    if (qu
        && ngx_http_omni_decide_reserve(r, ctx, set, &ev, &d, snap, extra)
           != NGX_OK)
    {
        ret = NGX_ERROR;
        goto done;
    }

    /* rules the visitor would see but for their own holdout (metrics) */
    if ((needs & OMNI_NEED_HELD) && !ctx->pid_fixed
        && ngx_http_omni_decide_held(r, set, &ev, &d, dec) != NGX_OK)
    {
        ret = NGX_ERROR;
        goto done;
    }

    /* A country some rule looked up goes into the touchpoint. */
    if (ev.geo_state == 1 && ngx_strlen(ev.geo_value.country) == 2) {
        ngx_memcpy(ctx->country, ev.geo_value.country, 3);
    }

    dec->holdout = d.holdout;
    dec->nshown = d.nshown;

    for (s = 0; s < omni_rules_nslots(set); s++) {
        if (d.slot[s] < 0) {
            continue;
        }

        slot = ngx_array_push(&dec->slots);
        if (slot == NULL) {
            ret = NGX_ERROR;
            goto done;
        }

        sa.name = omni_rules_slot(set, s, &sa.len);

        slot->name.len = sa.len;
        slot->name.data = ngx_pnalloc(r->pool, sa.len);
        if (slot->name.data == NULL) {
            ret = NGX_ERROR;
            goto done;
        }

        ngx_memcpy(slot->name.data, sa.name, sa.len);
        slot->placed = 0;

        if (ngx_http_omni_render(r, &area, ngx_http_omni_render_slot, &ev,
                                 &d, &sa, &slot->html)
            != NGX_OK)
        {
            ret = NGX_ERROR;
            goto done;
        }
    }

    if (d.npixels
        && ngx_http_omni_render(r, &area, ngx_http_omni_render_pixels, &ev, &d,
                                NULL, &dec->pixels)
           != NGX_OK)
    {
        ret = NGX_ERROR;
        goto done;
    }

    for (ha.i = 0; ha.i < d.nheaders; ha.i++) {
        kv = ngx_array_push(&dec->headers);
        if (kv == NULL
            || ngx_http_omni_render(r, &area, ngx_http_omni_render_hdr, &ev, &d,
                                    &ha, &kv->value)
               != NGX_OK)
        {
            ret = NGX_ERROR;
            goto done;
        }

        /*
         * The name lives in the rule set, which a reload may free while
         * this request still runs: the request keeps its own copy.
         */
        kv->key.len = ha.name.len;
        kv->key.data = ngx_pnalloc(r->pool, ha.name.len);
        if (kv->key.data == NULL) {
            ret = NGX_ERROR;
            goto done;
        }

        ngx_memcpy(kv->key.data, ha.name.data, ha.name.len);
    }

    if (ngx_http_omni_render(r, &area, ngx_http_omni_render_shown, &ev, &d,
                             (void *) OMNI_SHOWN_RULES, &dec->rules)
        != NGX_OK
        || ngx_http_omni_render(r, &area, ngx_http_omni_render_shown, &ev, &d,
                                (void *) OMNI_SHOWN_CAMPAIGNS,
                                &dec->campaigns)
           != NGX_OK)
    {
        ret = NGX_ERROR;
        goto done;
    }

    if (ctx->want_text
        && ngx_http_omni_render(r, &area, ngx_http_omni_render_txt, &ev, &d,
                                NULL, &dec->text)
           != NGX_OK)
    {
        ret = NGX_ERROR;
        goto done;
    }

    if (json
        && ngx_http_omni_render(r, &area, ngx_http_omni_render_json, &ev, &d,
                                json > 1 ? (void *) 1 : NULL, &dec->json)
           != NGX_OK)
    {
        ret = NGX_ERROR;
        goto done;
    }

done:

    if (reading) {
        omni_store_read_end(st);
    }

    if (ret == NGX_OK) {
        ctx->decision = dec;
    }

    return ret;
}


ngx_int_t
ngx_http_omni_add_decision_variables(ngx_conf_t *cf)
{
    return ngx_http_omni_register_variables(cf, ngx_http_omni_decision_vars);
}


/*
 * $omni_rules, $omni_campaigns: what this request was shown (comma
 * separated); $omni_holdout: 1 for a visitor in the holdout;
 * $omni_decision: the decision as JSON (apps behind proxy_set_header).
 */
static ngx_int_t
ngx_http_omni_decision_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t            *s;
    ngx_http_omni_ctx_t  *ctx;

    v->not_found = 1;

    ctx = ngx_http_omni_identify(r);
    if (ctx == NULL || ctx->identity == NGX_HTTP_OMNI_ID_NONE) {
        return NGX_OK;
    }

    if (ngx_http_omni_decide(r, ctx, data == 3) == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (ctx->decision == NULL) {
        return NGX_OK;
    }

    switch (data) {
    case 0:
        s = &ctx->decision->rules;
        break;
    case 1:
        s = &ctx->decision->campaigns;
        break;
    case 2:
        s = ctx->decision->holdout ? &ngx_http_omni_one : &ngx_http_omni_zero;
        break;
    default:
        s = &ctx->decision->json;
        break;
    }

    v->data = s->data;
    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    /* Whatever a variable hands on was shown: count the impressions. */
    if (data == 3) {
        ctx->impressions = 1;
    }

    return NGX_OK;
}
