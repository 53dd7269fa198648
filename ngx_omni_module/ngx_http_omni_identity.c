/*
 * Visitor identity: the signed web cookie (in the spirit of
 * ngx_http_userid_module, but HMAC-signed with rotating keys) and the
 * signed app token, plus the $omni_* identity variables.
 *
 * A tampered, truncated, garbage or wrongly keyed cookie is treated as no
 * cookie at all: the visitor becomes a new anonymous one, one info line
 * is logged, and the request carries on.  It never fails a request.
 */

#include "ngx_http_omni_module.h"


static void ngx_http_omni_ctx_cleanup(void *data);
static ngx_int_t ngx_http_omni_find_token(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_str_t *token);
static ngx_int_t ngx_http_omni_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_omni_attr_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


#define NGX_HTTP_OMNI_VAR_VISITOR   0
#define NGX_HTTP_OMNI_VAR_PROFILE   1
#define NGX_HTTP_OMNI_VAR_IDENTITY  2
#define NGX_HTTP_OMNI_VAR_STAGE     3
#define NGX_HTTP_OMNI_VAR_VISITS    4


static ngx_http_variable_t  ngx_http_omni_vars[] = {

    { ngx_string("omni_visitor"), NULL, ngx_http_omni_variable,
      NGX_HTTP_OMNI_VAR_VISITOR, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("omni_profile"), NULL, ngx_http_omni_variable,
      NGX_HTTP_OMNI_VAR_PROFILE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("omni_identity"), NULL, ngx_http_omni_variable,
      NGX_HTTP_OMNI_VAR_IDENTITY, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("omni_stage"), NULL, ngx_http_omni_variable,
      NGX_HTTP_OMNI_VAR_STAGE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("omni_visits"), NULL, ngx_http_omni_variable,
      NGX_HTTP_OMNI_VAR_VISITS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("omni_attr_"), NULL, ngx_http_omni_attr_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_omni_identity_names[] = {
    ngx_string(""),
    ngx_string("cookie"),
    ngx_string("token"),
    ngx_string("new")
};


/*
 * The ctx is also hung on a pool cleanup, so it survives the ctx reset of
 * an internal redirect (error_page, try_files): the visitor is identified
 * and counted once per request, as ngx_http_realip_module does for its
 * own state.
 */
ngx_http_omni_ctx_t *
ngx_http_omni_get_ctx(ngx_http_request_t *r, ngx_uint_t create)
{
    ngx_pool_cleanup_t   *cln;
    ngx_http_omni_ctx_t  *ctx;

    r = r->main;

    ctx = ngx_http_get_module_ctx(r, ngx_http_omni_module);
    if (ctx) {
        return ctx;
    }

    if (r->internal) {
        for (cln = r->pool->cleanup; cln; cln = cln->next) {
            if (cln->handler == ngx_http_omni_ctx_cleanup) {
                ctx = cln->data;
                ngx_http_set_ctx(r, ctx, ngx_http_omni_module);
                return ctx;
            }
        }
    }

    if (!create) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_omni_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    ctx = cln->data;
    ngx_memzero(ctx, sizeof(ngx_http_omni_ctx_t));

    cln->handler = ngx_http_omni_ctx_cleanup;
    ngx_http_set_ctx(r, ctx, ngx_http_omni_module);

    return ctx;
}


static void
ngx_http_omni_ctx_cleanup(void *data)
{
    /* Only a marker for ngx_http_omni_get_ctx(). */
}


ngx_http_omni_ctx_t *
ngx_http_omni_identify(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_str_t                   value;
    omni_token_t                tok;
    ngx_http_omni_ctx_t        *ctx;
    ngx_http_omni_loc_conf_t   *olcf;
    ngx_http_omni_main_conf_t  *mcf;

    ctx = ngx_http_omni_get_ctx(r, 1);
    if (ctx == NULL || ctx->identified) {
        return ctx;
    }

    r = r->main;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    olcf = ngx_http_get_module_loc_conf(r, ngx_http_omni_module);

    if (mcf->secrets == 0) {
        return ctx;
    }

    ctx->identified = 1;

    /* An app token, when present, takes precedence over a cookie. */
    if (ngx_http_omni_find_token(r, olcf, &value) == NGX_OK) {

        rc = omni_token_verify(&mcf->keyring, OMNI_KIND_TOKEN,
                               (char *) value.data, value.len,
                               (uint32_t) ngx_time(), &tok);

        if (rc == OMNI_OK) {
            ctx->identity = NGX_HTTP_OMNI_ID_TOKEN;
            ngx_memcpy(ctx->vid, tok.id, OMNI_ID_LEN);
            goto done;
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "omni: app token refused (%s)",
                      omni_token_strerror(rc));

        /* the endpoints answer 401 (ngx_http_omni_token_rejected()) */
        ctx->token_error = omni_token_strerror(rc);
        ctx->token_auth = ngx_http_omni_header_in(r, olcf->token_header.data,
                                                  olcf->token_header.len)
                          == NULL;

        ctx->refused = 1;

        /* A refused token counts as no token: cookie or new visitor. */
    }

    if (ngx_http_omni_find_cookie(r, &olcf->cookie_name, &value) == NGX_OK) {

        rc = omni_token_verify(&mcf->keyring, OMNI_KIND_COOKIE,
                               (char *) value.data, value.len,
                               (uint32_t) ngx_time(), &tok);

        if (rc == OMNI_OK) {
            ctx->identity = NGX_HTTP_OMNI_ID_COOKIE;
            ngx_memcpy(ctx->vid, tok.id, OMNI_ID_LEN);

            /* Signed by an older key: re-sign with the current one. */
            if (tok.key_index != 0 && olcf->enable) {
                ctx->set_cookie = 1;
            }

            goto done;
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "omni: visitor cookie \"%V\" refused (%s), "
                      "treating as a new visitor",
                      &olcf->cookie_name, omni_token_strerror(rc));

        ctx->refused = 1;
    }

    if (!olcf->enable || ctx->token_error) {
        /*
         * Outside "omni on" locations nobody new is minted; nor for an
         * app whose token was refused: it is no new web visitor.
         */
        return ctx;
    }

    return ngx_http_omni_mint_visitor(r, ctx) == NGX_OK ? ctx : NULL;

done:

    omni_id_hex(ctx->vid, (char *) ctx->vid_hex);

    /* Until the store says otherwise the profile id is the visitor id. */
    ngx_memcpy(ctx->pid, ctx->vid, OMNI_ID_LEN);
    ngx_memcpy(ctx->pid_hex, ctx->vid_hex, OMNI_ID_HEX_LEN);

    return ctx;
}


static ngx_int_t
ngx_http_omni_find_token(ngx_http_request_t *r,
    ngx_http_omni_loc_conf_t *olcf, ngx_str_t *token)
{
    u_char           *p;
    ngx_table_elt_t  *h;

    h = ngx_http_omni_header_in(r, olcf->token_header.data,
                                olcf->token_header.len);
    if (h) {
        *token = h->value;
        return NGX_OK;
    }

    /* Authorization: Bearer <token> */
    if (r->headers_in.authorization) {
        p = r->headers_in.authorization->value.data;

        if (r->headers_in.authorization->value.len > 7
            && ngx_strncasecmp(p, (u_char *) "Bearer ", 7) == 0)
        {
            token->data = p + 7;
            token->len = r->headers_in.authorization->value.len - 7;

            while (token->len && token->data[0] == ' ') {
                token->data++;
                token->len--;
            }

            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/* The first request header called name (case-insensitive), or NULL. */
ngx_table_elt_t *
ngx_http_omni_header_in(ngx_http_request_t *r, u_char *name, size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, name, len) == 0)
        {
            return &h[i];
        }
    }
}


/*
 * A new visitor: a random id, a cookie to set, the profile id the visitor
 * id until the store says otherwise.  A first request, and a browser that
 * signed out (ngx_http_omni_fresh_visitor()).
 */
ngx_int_t
ngx_http_omni_mint_visitor(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx)
{
    if (omni_id_random(ctx->vid) != OMNI_OK) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "omni: RAND_bytes() failed");
        return NGX_ERROR;
    }

    ctx->identity = NGX_HTTP_OMNI_ID_NEW;
    ctx->set_cookie = 1;

    omni_id_hex(ctx->vid, (char *) ctx->vid_hex);
    ngx_memcpy(ctx->pid, ctx->vid, OMNI_ID_LEN);
    ngx_memcpy(ctx->pid_hex, ctx->vid_hex, OMNI_ID_HEX_LEN);

    return NGX_OK;
}


ngx_int_t
ngx_http_omni_find_cookie(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value)
{
#if (nginx_version >= 1023000)

    if (ngx_http_parse_multi_header_lines(r, r->headers_in.cookie, name,
                                          value)
        == NULL)
    {
        return NGX_DECLINED;
    }

#else

    if (ngx_http_parse_multi_header_lines(&r->headers_in.cookies, name,
                                          value)
        == NGX_DECLINED)
    {
        return NGX_DECLINED;
    }

#endif

    return NGX_OK;
}


ngx_int_t
ngx_http_omni_set_cookie(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx)
{
    u_char                     *p;
    size_t                      len;
    omni_token_t                tok;
    ngx_table_elt_t            *h;
    ngx_http_omni_loc_conf_t   *olcf;
    ngx_http_omni_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    olcf = ngx_http_get_module_loc_conf(r, ngx_http_omni_module);

    ctx->set_cookie = 0;

    ngx_memzero(&tok, sizeof(omni_token_t));
    tok.kind = OMNI_KIND_COOKIE;
    ngx_memcpy(tok.id, ctx->vid, OMNI_ID_LEN);
    tok.issued = (uint32_t) ngx_time();

    len = olcf->cookie_name.len + 1 + OMNI_TOKEN_LEN
          + olcf->cookie_suffix.len;

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "Set-Cookie");
    h->value.data = p;
    h->value.len = len;

    p = ngx_cpymem(p, olcf->cookie_name.data, olcf->cookie_name.len);
    *p++ = '=';

    if (omni_token_sign(&mcf->keyring, &tok, (char *) p) != OMNI_OK) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "omni: cannot sign the visitor cookie");
        h->hash = 0;
        return NGX_ERROR;
    }

    p += OMNI_TOKEN_LEN;
    ngx_memcpy(p, olcf->cookie_suffix.data, olcf->cookie_suffix.len);

    return NGX_OK;
}


/*
 * omni_cookie NAME [max_age=TIME] [domain=DOMAIN] [path=PATH] [secure]
 *             [httponly|nohttponly] [samesite=strict|lax|none|off];
 */
char *
ngx_http_omni_cookie(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    u_char      *p, ch;
    time_t       max_age;
    ngx_str_t   *value, s, domain, path;
    ngx_uint_t   i, j, secure, httponly, samesite;

    static ngx_str_t  samesites[] = {
        ngx_null_string,
        ngx_null_string,
        ngx_string("; SameSite=Strict"),
        ngx_string("; SameSite=Lax"),
        ngx_string("; SameSite=None")
    };

    if (olcf->cookie_set) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (j = 0; j < value[1].len; j++) {
        ch = value[1].data[j];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
              || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'
              || ch == '.'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid cookie name \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (value[1].len == 0) {
        return "has an empty cookie name";
    }

    max_age = 365 * 24 * 60 * 60;
    ngx_str_null(&domain);
    ngx_str_set(&path, "/");
    secure = 0;
    httponly = 1;
    samesite = NGX_HTTP_OMNI_SAMESITE_LAX;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "max_age=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            max_age = ngx_parse_time(&s, 1);
            if (max_age == (time_t) NGX_ERROR || max_age == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "domain=", 7) == 0) {
            domain.data = value[i].data + 7;
            domain.len = value[i].len - 7;
            goto check_attr;
        }

        if (ngx_strncmp(value[i].data, "path=", 5) == 0) {
            path.data = value[i].data + 5;
            path.len = value[i].len - 5;

            if (path.len == 0 || path.data[0] != '/') {
                goto invalid;
            }

            goto check_attr;
        }

        if (ngx_strcmp(value[i].data, "secure") == 0) {
            secure = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "httponly") == 0) {
            httponly = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "nohttponly") == 0) {
            httponly = 0;
            continue;
        }

        if (ngx_strncmp(value[i].data, "samesite=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            if (s.len == 6 && ngx_strncasecmp(s.data, (u_char *) "strict", 6)
                              == 0)
            {
                samesite = NGX_HTTP_OMNI_SAMESITE_STRICT;

            } else if (s.len == 3
                       && ngx_strncasecmp(s.data, (u_char *) "lax", 3) == 0)
            {
                samesite = NGX_HTTP_OMNI_SAMESITE_LAX;

            } else if (s.len == 4
                       && ngx_strncasecmp(s.data, (u_char *) "none", 4) == 0)
            {
                samesite = NGX_HTTP_OMNI_SAMESITE_NONE;

            } else if (s.len == 3
                       && ngx_strncasecmp(s.data, (u_char *) "off", 3) == 0)
            {
                samesite = NGX_HTTP_OMNI_SAMESITE_OFF;

            } else {
                goto invalid;
            }

            continue;
        }

        goto invalid;

    check_attr:

        /* Attribute values end up in a header: no separators, no CTLs. */
        for (j = 0; j < value[i].len; j++) {
            if (value[i].data[j] <= ' ' || value[i].data[j] == ';'
                || value[i].data[j] == ',' || value[i].data[j] >= 0x7f)
            {
                goto invalid;
            }
        }
    }

    if (samesite == NGX_HTTP_OMNI_SAMESITE_NONE && !secure) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"samesite=none\" requires \"secure\" "
                           "(browsers drop such cookies otherwise)");
        return NGX_CONF_ERROR;
    }

    olcf->cookie_name = value[1];
    olcf->cookie_set = 1;

    s.len = sizeof("; Max-Age=") - 1 + NGX_TIME_T_LEN
            + (domain.len ? sizeof("; Domain=") - 1 + domain.len : 0)
            + sizeof("; Path=") - 1 + path.len
            + (secure ? sizeof("; Secure") - 1 : 0)
            + (httponly ? sizeof("; HttpOnly") - 1 : 0)
            + samesites[samesite].len;

    p = ngx_pnalloc(cf->pool, s.len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    s.data = p;
    p = ngx_sprintf(p, "; Max-Age=%T", max_age);

    if (domain.len) {
        p = ngx_sprintf(p, "; Domain=%V", &domain);
    }

    p = ngx_sprintf(p, "; Path=%V", &path);

    if (secure) {
        p = ngx_cpymem(p, "; Secure", sizeof("; Secure") - 1);
    }

    if (httponly) {
        p = ngx_cpymem(p, "; HttpOnly", sizeof("; HttpOnly") - 1);
    }

    p = ngx_cpymem(p, samesites[samesite].data, samesites[samesite].len);

    s.len = p - s.data;
    olcf->cookie_suffix = s;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
}


char *
ngx_http_omni_merge_cookie(ngx_conf_t *cf, ngx_http_omni_loc_conf_t *prev,
    ngx_http_omni_loc_conf_t *conf)
{
    static ngx_str_t  default_suffix =
        ngx_string("; Max-Age=31536000; Path=/; HttpOnly; SameSite=Lax");

    if (conf->cookie_set) {
        return NGX_CONF_OK;
    }

    if (prev->cookie_set) {
        conf->cookie_name = prev->cookie_name;
        conf->cookie_suffix = prev->cookie_suffix;
        conf->cookie_set = 1;
        return NGX_CONF_OK;
    }

    ngx_str_set(&conf->cookie_name, "omni");
    conf->cookie_suffix = default_suffix;

    return NGX_CONF_OK;
}


static void
ngx_http_omni_keyring_cleanup(void *data)
{
    omni_keyring_free(data);
}


char *
ngx_http_omni_secret(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_main_conf_t *mcf = conf;

    char                 err[256];
    ngx_str_t           *value;
    ngx_pool_cleanup_t  *cln;

    value = cf->args->elts;

    if (mcf->secrets == 0) {
        /* The keyed MAC contexts live as long as the configuration. */
        cln = ngx_pool_cleanup_add(cf->pool, 0);
        if (cln == NULL) {
            return NGX_CONF_ERROR;
        }

        cln->handler = ngx_http_omni_keyring_cleanup;
        cln->data = &mcf->keyring;
    }

    if (omni_keyring_add(&mcf->keyring, (char *) value[1].data,
                         value[1].len, err, sizeof(err))
        != OMNI_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid \"omni_secret\": %s",
                           err);
        return NGX_CONF_ERROR;
    }

    mcf->secrets++;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_omni_add_variables(ngx_conf_t *cf)
{
    return ngx_http_omni_register_variables(cf, ngx_http_omni_vars);
}


ngx_int_t
ngx_http_omni_register_variables(ngx_conf_t *cf, ngx_http_variable_t *vars)
{
    ngx_http_variable_t  *var, *v;

    for (v = vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_omni_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char               *p;
    ngx_str_t            *s;
    ngx_http_omni_ctx_t  *ctx;

    ctx = ngx_http_omni_identify(r);

    if (ctx && ctx->identity == NGX_HTTP_OMNI_ID_NONE && ctx->token_error
        && data == NGX_HTTP_OMNI_VAR_IDENTITY)
    {
        /* an app token was refused: nobody, and the app should know */
        v->valid = 1;
        v->no_cacheable = 1;
        v->not_found = 0;
        v->data = (u_char *) "rejected";
        v->len = sizeof("rejected") - 1;
        return NGX_OK;
    }

    if (ctx == NULL || ctx->identity == NGX_HTTP_OMNI_ID_NONE) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    switch (data) {

    case NGX_HTTP_OMNI_VAR_VISITOR:
        v->data = ctx->vid_hex;
        v->len = OMNI_ID_HEX_LEN;
        break;

    case NGX_HTTP_OMNI_VAR_PROFILE:
        if (!ctx->resolved) {
            (void) ngx_http_omni_resolve(r, ctx);
        }

        v->data = ctx->pid_hex;
        v->len = OMNI_ID_HEX_LEN;
        break;

    case NGX_HTTP_OMNI_VAR_IDENTITY:
        s = &ngx_http_omni_identity_names[ctx->identity];
        v->data = s->data;
        v->len = s->len;
        break;

    case NGX_HTTP_OMNI_VAR_STAGE:
        if (!ctx->resolved) {
            (void) ngx_http_omni_resolve(r, ctx);
        }

        v->data = (u_char *) omni_stage_name(ctx->stage);
        v->len = ngx_strlen(v->data);
        break;

    default: /* NGX_HTTP_OMNI_VAR_VISITS */
        if (!ctx->resolved) {
            (void) ngx_http_omni_resolve(r, ctx);
        }

        p = ngx_pnalloc(r->pool, NGX_INT32_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = ngx_sprintf(p, "%uD", ctx->visits) - p;
        break;
    }

    return NGX_OK;
}


/*
 * $omni_attr_NAME: a profile attribute.  Values come from other channels
 * and from visitors themselves, so the variable is safe wherever nginx
 * may put it: HTML-special characters become entities and control
 * characters (CR, LF, NUL, ...) are dropped, so it can go into HTML text,
 * an attribute or a header without escaping or header injection.
 */
static ngx_int_t
ngx_http_omni_attr_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t            *name = (ngx_str_t *) data;

    u_char               *p;
    size_t                len;
    ngx_str_t             key, raw;
    ngx_uint_t            i;
    ngx_http_omni_ctx_t  *ctx;

    v->not_found = 1;

    ctx = ngx_http_omni_identify(r);

    if (ctx == NULL || ctx->identity == NGX_HTTP_OMNI_ID_NONE) {
        return NGX_OK;
    }

    key.data = name->data + sizeof("omni_attr_") - 1;
    key.len = name->len - (sizeof("omni_attr_") - 1);

    if (ngx_http_omni_read_attr(r, ctx, &key, &raw) != NGX_OK) {
        return NGX_OK;
    }

    len = 0;
    for (i = 0; i < raw.len; i++) {
        switch (raw.data[i]) {
        case '<': case '>': len += 4; break;
        case '&': len += 5; break;
        case '"': case '\'': len += 6; break;
        default: len += (raw.data[i] < 0x20 || raw.data[i] == 0x7f) ? 0 : 1;
        }
    }

    p = ngx_pnalloc(r->pool, len ? len : 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;

    for (i = 0; i < raw.len; i++) {
        switch (raw.data[i]) {
        case '<': p = ngx_cpymem(p, "&lt;", 4); break;
        case '>': p = ngx_cpymem(p, "&gt;", 4); break;
        case '&': p = ngx_cpymem(p, "&amp;", 5); break;
        case '"': p = ngx_cpymem(p, "&quot;", 6); break;
        case '\'': p = ngx_cpymem(p, "&#x27;", 6); break;
        default:
            if (raw.data[i] >= 0x20 && raw.data[i] != 0x7f) {
                *p++ = raw.data[i];
            }
        }
    }

    v->len = p - v->data;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * The channel a request speaks for: the admin's, the location's
 * omni_channel, else app for an app token and web for a cookie.
 */
ngx_uint_t
ngx_http_omni_channel(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx)
{
    ngx_http_omni_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_omni_module);

    if (ctx->pid_fixed && ctx->channel >= 0) {
        return (ngx_uint_t) ctx->channel;
    }

    if (olcf->channel != NGX_CONF_UNSET) {
        return (ngx_uint_t) olcf->channel;
    }

    /* an app whose token was refused is still an app */
    return ctx->identity == NGX_HTTP_OMNI_ID_TOKEN || ctx->anonymous
           ? OMNI_CH_APP : OMNI_CH_WEB;
}
