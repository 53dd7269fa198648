/*
 * Consent (docs/privacy.md): the model a location works under, the
 * site's own consent cookie (its CMP's), and the browser signals.
 *
 *   omni_consent opt-in | opt-out;
 *   omni_consent_cookie NAME analytics=KEY personalization=KEY ads=KEY
 *                       [email=KEY] [sms=KEY];
 *
 * Under opt-out (the default) a purpose is allowed until the visitor
 * refuses it; under opt-in it is refused until the visitor grants it.
 * What the visitor stated comes from the profile (events, omnictl) and,
 * on top of it and on the same request, from the consent cookie.
 * Sec-GPC: 1 and DNT: 1 refuse ads (and sale or sharing) whatever was
 * stated, and strip the touchpoint of referrer and campaign data.
 */

#include "ngx_http_omni_module.h"




char *
ngx_http_omni_consent_model(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    ngx_str_t  *value;

    if (olcf->consent_model != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 6 && ngx_strncmp(value[1].data, "opt-in", 6) == 0) {
        olcf->consent_model = NGX_HTTP_OMNI_OPT_IN;

    } else if (value[1].len == 7
               && ngx_strncmp(value[1].data, "opt-out", 7) == 0)
    {
        olcf->consent_model = NGX_HTTP_OMNI_OPT_OUT;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid consent model \"%V\" (opt-in or "
                           "opt-out)", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_omni_consent_cookie(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    u_char                         *eq;
    ngx_str_t                      *value;
    ngx_uint_t                      i, k;
    const char                     *name;
    ngx_http_omni_consent_cookie_t *cc;

    if (olcf->consent_cookie != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    cc = ngx_pcalloc(cf->pool, sizeof(ngx_http_omni_consent_cookie_t));
    if (cc == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < value[1].len; i++) {
        if (value[1].data[i] <= ' ' || value[1].data[i] >= 0x7f
            || ngx_strchr("()<>@,;:\\\"/[]?={}", value[1].data[i]))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid cookie name \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    cc->name = value[1];

    for (i = 2; i < cf->args->nelts; i++) {
        eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');

        /* the purposes' names (omni_core.h), not the other words */
        for (k = 0; eq && k < OMNI_CONSENT_NKEYS; k++) {
            name = omni_consent_purpose_name(k);

            if ((size_t) (eq - value[i].data) == ngx_strlen(name)
                && ngx_strncmp(value[i].data, name, ngx_strlen(name)) == 0)
            {
                break;
            }
        }

        if (eq == NULL || k == OMNI_CONSENT_NKEYS) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" (analytics=, "
                               "personalization=, ads=, email= or sms= "
                               "and the cookie's key for that purpose)",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        if (cc->key[k].len) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate parameter \"%s=\"",
                               omni_consent_purpose_name(k));
            return NGX_CONF_ERROR;
        }

        cc->key[k].data = eq + 1;
        cc->key[k].len = value[i].data + value[i].len - (eq + 1);

        if (cc->key[k].len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "empty key in \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        cc->nkeys++;
    }

    if (cc->nkeys == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"omni_consent_cookie\" maps no purpose: add "
                           "analytics=KEY, personalization=KEY or ads=KEY");
        return NGX_CONF_ERROR;
    }

    olcf->consent_cookie = cc;

    return NGX_CONF_OK;
}


uint32_t
ngx_http_omni_consent_request(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf)
{
    u_char                         *buf;
    size_t                          klen[OMNI_CONSENT_NKEYS];
    ngx_str_t                       value;
    ngx_uint_t                      k;
    const char                     *key[OMNI_CONSENT_NKEYS];
    ngx_http_omni_consent_cookie_t *cc;

    cc = olcf->consent_cookie;

    if (cc == NULL
        || ngx_http_omni_find_cookie(r, &cc->name, &value) != NGX_OK
        || value.len == 0)
    {
        return 0;
    }

    buf = ngx_pnalloc(r->pool, value.len);
    if (buf == NULL) {
        return 0;
    }

    /* the purposes' keys, in OMNI_CONSENT_* order like the table above */
    for (k = 0; k < OMNI_CONSENT_NKEYS; k++) {
        key[k] = (const char *) cc->key[k].data;
        klen[k] = cc->key[k].len;
    }

    return omni_consent_cookie((const char *) value.data, value.len,
                               (char *) buf, key, klen);
}


ngx_uint_t
ngx_http_omni_consent_signal(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    h = ngx_http_omni_header_in(r, (u_char *) "sec-gpc", 7);
    if (h && h->value.len == 1 && h->value.data[0] == '1') {
        return NGX_HTTP_OMNI_SIGNAL_GPC;
    }

    h = ngx_http_omni_header_in(r, (u_char *) "dnt", 3);
    if (h && h->value.len == 1 && h->value.data[0] == '1') {
        return NGX_HTTP_OMNI_SIGNAL_DNT;
    }

    return 0;
}


/*
 * The consent this request works under: the profile's stated consent
 * (when the request read it), the cookie's on top.  Computed once.
 */
uint32_t
ngx_http_omni_consent(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx)
{
    ngx_http_omni_loc_conf_t  *olcf;

    if (!ctx->consent_req_done) {
        olcf = ngx_http_get_module_loc_conf(r, ngx_http_omni_module);
        ctx->consent_req = ngx_http_omni_consent_request(r, olcf);
        ctx->consent_req_done = 1;
    }

    return omni_consent_merge(ctx->consent_stored, ctx->consent_req);
}


ngx_uint_t
ngx_http_omni_consent_allows(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx,
    uint32_t purpose)
{
    ngx_http_omni_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_omni_module);

    return omni_consent_allows(ngx_http_omni_consent(r, ctx), purpose,
                               olcf->consent_model == NGX_HTTP_OMNI_OPT_IN);
}


/*
 * After a sign-out: the browser gets a new visitor id, so nothing it
 * sends from now on is linked to the customer it was.  An app (token)
 * must drop its token and device id itself (docs/privacy.md).
 */
ngx_int_t
ngx_http_omni_fresh_visitor(ngx_http_request_t *r)
{
    ngx_http_omni_ctx_t  *ctx;

    ctx = ngx_http_omni_get_ctx(r, 0);

    if (ctx == NULL
        || (ctx->identity != NGX_HTTP_OMNI_ID_COOKIE
            && ctx->identity != NGX_HTTP_OMNI_ID_NEW))
    {
        return NGX_OK;
    }

    ctx->resolved = 0;
    ctx->found = 0;
    ctx->consent_stored = 0;

    return ngx_http_omni_mint_visitor(r, ctx);
}


/*
 * The consent cookie's statements this worker recorded lately, by
 * visitor (a small direct-mapped table): until the writer has put a
 * statement into the profile, every request of that browser would
 * record it again, and a page with a few quick requests wrote as many
 * identical Consent Updated events to the feed.
 */
#define NGX_HTTP_OMNI_CONSENT_RECENT  256
#define NGX_HTTP_OMNI_CONSENT_HOLD    10      /* seconds */

static struct {
    u_char      vid[OMNI_ID_LEN];
    uint32_t    consent;
    time_t      time;
} ngx_http_omni_consent_recent_tab[NGX_HTTP_OMNI_CONSENT_RECENT];


/*
 * 1: this visitor's cookie stated exactly this a moment ago and it was
 * recorded then; 0: record it (and remember it).  A statement lost on
 * the way (a full queue) is recorded again after the hold.
 */
ngx_uint_t
ngx_http_omni_consent_recent(ngx_http_omni_ctx_t *ctx, uint32_t consent)
{
    ngx_uint_t  i;

    i = (ctx->vid[0] | (ngx_uint_t) ctx->vid[1] << 8)
        % NGX_HTTP_OMNI_CONSENT_RECENT;

    if (ngx_http_omni_consent_recent_tab[i].consent == consent
        && ngx_time() - ngx_http_omni_consent_recent_tab[i].time
           < NGX_HTTP_OMNI_CONSENT_HOLD
        && ngx_memcmp(ngx_http_omni_consent_recent_tab[i].vid, ctx->vid,
                      OMNI_ID_LEN)
           == 0)
    {
        return 1;
    }

    ngx_memcpy(ngx_http_omni_consent_recent_tab[i].vid, ctx->vid,
               OMNI_ID_LEN);
    ngx_http_omni_consent_recent_tab[i].consent = consent;
    ngx_http_omni_consent_recent_tab[i].time = ngx_time();

    return 0;
}


static ngx_uint_t  ngx_http_omni_refusal_seen;


/* Whether the log phase must read the visitor's profile for its consent. */
ngx_uint_t
ngx_http_omni_consent_needs_profile(ngx_http_request_t *r)
{
    ngx_uint_t                 refused;
    omni_store_t              *st;
    ngx_http_omni_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_omni_module);

    if (olcf->consent_model == NGX_HTTP_OMNI_OPT_IN) {
        return 1;
    }

    /* the flag is never cleared: once seen, no more reads of it */
    if (ngx_http_omni_refusal_seen) {
        return 1;
    }

    st = ngx_http_omni_worker_store();

    if (ngx_http_omni_read_begin(r, st) != NGX_OK) {
        return 1;
    }

    refused = omni_store_consent_refused(st);
    omni_store_read_end(st);

    ngx_http_omni_refusal_seen = refused;

    return refused;
}
