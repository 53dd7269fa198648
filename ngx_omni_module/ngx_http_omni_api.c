/*
 * HTTP endpoints.
 *
 * omni_identify: how a mobile app obtains its signed token.  The app calls
 * it once on first launch (and whenever it wants a fresh expiry); a valid
 * token in the request is refreshed for the same device, otherwise a new
 * device id is minted.  The answer is JSON and never cacheable.
 */

#include "ngx_http_omni_module.h"
#include "omni_feed.h"


static ngx_int_t ngx_http_omni_identify_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_omni_decide_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_omni_send_json(ngx_http_request_t *r,
    ngx_str_t *json);
static ngx_int_t ngx_http_omni_empty_decision(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, ngx_str_t *json);
static ngx_int_t ngx_http_omni_send_rejected(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, ngx_str_t *json);
static ngx_int_t ngx_http_omni_send_body(ngx_http_request_t *r,
    ngx_str_t *body, ngx_str_t *cache_control);


static ngx_str_t  ngx_http_omni_no_store = ngx_string("no-store");
static ngx_str_t  ngx_http_omni_private = ngx_string("private, no-store");
static ngx_int_t ngx_http_omni_admin_decide_handler(ngx_http_request_t *r);


/*
 * Makes the location an endpoint of ours.  Endpoints that identify their
 * caller need a signing secret, anywhere in the http block: checked once
 * the block is read (ngx_http_omni_conf_check()).
 */
static char *
ngx_http_omni_endpoint(ngx_conf_t *cf, ngx_http_handler_pt handler,
    ngx_uint_t need_secret)
{
    ngx_http_core_loc_conf_t  *clcf;

    if (need_secret) {
        ngx_http_omni_conf_need_secret(cf);
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = handler;

    return NGX_CONF_OK;
}


char *
ngx_http_omni_identify_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    return ngx_http_omni_endpoint(cf, ngx_http_omni_identify_handler, 1);
}


static ngx_int_t
ngx_http_omni_identify_handler(ngx_http_request_t *r)
{
    u_char                     *p;
    size_t                      len;
    ngx_int_t                   rc;
    ngx_str_t                   json;
    omni_token_t                tok;
    ngx_http_omni_ctx_t        *ctx;
    ngx_http_omni_loc_conf_t   *olcf;
    ngx_http_omni_main_conf_t  *mcf;
    char                        token[OMNI_TOKEN_LEN + 1];
    char                        device[OMNI_ID_HEX_LEN + 1];

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_POST))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    olcf = ngx_http_get_module_loc_conf(r, ngx_http_omni_module);

    ctx = ngx_http_omni_identify(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(&tok, sizeof(omni_token_t));
    tok.kind = OMNI_KIND_TOKEN;

    if (ctx->identity == NGX_HTTP_OMNI_ID_TOKEN) {
        /* Refresh: same device, new expiry. */
        ngx_memcpy(tok.id, ctx->vid, OMNI_ID_LEN);
        if (!ctx->resolved) {
            (void) ngx_http_omni_resolve(r, ctx);
        }

    } else {
        if (omni_id_random(tok.id) != OMNI_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memcpy(ctx->pid, tok.id, OMNI_ID_LEN);
        omni_id_hex(ctx->pid, (char *) ctx->pid_hex);
    }

    tok.issued = (uint32_t) ngx_time();
    tok.expires = tok.issued + (uint32_t) olcf->token_ttl;

    if (omni_token_sign(&mcf->keyring, &tok, token) != OMNI_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    omni_id_hex(tok.id, device);

    len = sizeof("{\"token\":\"\",\"device\":\"\",\"profile\":\"\","
                 "\"expires\":}") - 1
          + OMNI_TOKEN_LEN + 2 * OMNI_ID_HEX_LEN + NGX_INT32_LEN;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json.data = p;
    json.len = ngx_sprintf(p, "{\"token\":\"%s\",\"device\":\"%s\","
                           "\"profile\":\"%*s\",\"expires\":%uD}",
                           token, device, (size_t) OMNI_ID_HEX_LEN,
                           ctx->pid_hex, tok.expires)
               - p;

    /* A token is a credential: no cache of any kind keeps it. */
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;

    return ngx_http_omni_send_body(r, &json, &ngx_http_omni_no_store);
}


/*
 * omni_decide [explain=on|off]: the visitor's decision as JSON, for apps.
 * The caller is identified by its app token (or cookie); the answer is
 * exactly what a web page would have shown, and counts as shown
 * (frequency caps see web and app together).  "?explain=1" adds the
 * explanation of every rule only where explain=on: it tells any visitor
 * every rule's conditions and their holdout bucket, so it is off unless
 * the configuration opens it (omni_admin_decide always has it).
 */
char *
ngx_http_omni_decide_endpoint(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    ngx_str_t  *value;

    if (cf->args->nelts == 2) {
        value = cf->args->elts;

        if (value[1].len == 10
            && ngx_strncmp(value[1].data, "explain=on", 10) == 0)
        {
            olcf->decide_explain = 1;

        } else if (!(value[1].len == 11
                     && ngx_strncmp(value[1].data, "explain=off", 11) == 0))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" "
                               "(explain=on or explain=off)", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    return ngx_http_omni_endpoint(cf, ngx_http_omni_decide_handler, 1);
}


/* "explain=1" asked: 1 no, 2 yes (the ngx_http_omni_decide() mode). */
static ngx_uint_t
ngx_http_omni_explain_arg(ngx_http_request_t *r)
{
    ngx_str_t  explain;

    if (ngx_http_arg(r, (u_char *) "explain", 7, &explain) == NGX_OK
        && explain.len == 1 && explain.data[0] == '1')
    {
        return 2;
    }

    return 1;
}


static ngx_int_t
ngx_http_omni_decide_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_str_t                  json;
    ngx_uint_t                 mode;
    ngx_http_omni_ctx_t       *ctx;
    ngx_http_omni_loc_conf_t  *olcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_POST))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_omni_module);
    mode = ngx_http_omni_explain_arg(r);

    if (mode == 2 && !olcf->decide_explain) {
        return ngx_http_omni_admin_error(r, NGX_HTTP_FORBIDDEN, "explain",
                                         "explain is not enabled here "
                                         "(omni_decide explain=on, or "
                                         "omni_admin_decide)");
    }

    ctx = ngx_http_omni_identify(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->identity == NGX_HTTP_OMNI_ID_NONE && ctx->token_error) {
        /* an expired or forged token: the app must get a new one */
        if (olcf->token_rejected == NGX_HTTP_OMNI_REJECTED_401) {
            return ngx_http_omni_token_rejected(r, ctx);
        }

        /*
         * omni_token_rejected anonymous: what anybody without a profile
         * sees, saying why; nothing is recorded, no cookie is minted.
         */
        ctx->anonymous = 1;
    }

    /*
     * Without an identity (or rules) the answer is the empty decision,
     * with every documented field.
     */
    if (ngx_http_omni_empty_decision(r, ctx, &json) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* The response is the decision itself: no JSON merge on top. */
    ctx->endpoint = 1;

    if (ctx->identity != NGX_HTTP_OMNI_ID_NONE || ctx->anonymous) {
        rc = ngx_http_omni_decide(r, ctx, mode);
        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ctx->decision) {
            json = ctx->decision->json;
            ctx->impressions = ctx->anonymous ? 0 : 1;
        }
    }

    if (ctx->anonymous) {
        return ngx_http_omni_send_rejected(r, ctx, &json);
    }

    return ngx_http_omni_send_json(r, &json);
}


/*
 * The anonymous decision for a refused token: {"identity":"rejected",
 * "reason":..., then the decision's own members}, a 200 the app can
 * render while it gets a new token.
 */
static ngx_int_t
ngx_http_omni_send_rejected(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx,
    ngx_str_t *json)
{
    u_char     *p;
    ngx_str_t   out;

    if (json->len < 2 || json->data[0] != '{') {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    out.data = ngx_pnalloc(r->pool, json->len + 128);
    if (out.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the reason is one of omni_token_strerror()'s fixed texts */
    p = ngx_snprintf(out.data, 128, "{\"identity\":\"rejected\","
                     "\"reason\":\"app token refused: %s\",",
                     ctx->token_error);
    p = ngx_cpymem(p, json->data + 1, json->len - 1);
    out.len = p - out.data;

    return ngx_http_omni_send_json(r, &out);
}


static ngx_int_t
ngx_http_omni_empty_decision(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx,
    ngx_str_t *json)
{
    u_char      *p;
    const char  *chn;

    chn = omni_channel_name((unsigned) ngx_http_omni_channel(r, ctx));
    if (chn == NULL) {
        chn = "other";
    }

    p = ngx_pnalloc(r->pool, 128);
    if (p == NULL) {
        return NGX_ERROR;
    }

    json->data = p;
    json->len = ngx_snprintf(p, 128, "{\"channel\":\"%s\",\"holdout\":false,"
                             "\"blocked\":null,\"slots\":{},\"pixels\":[],"
                             "\"headers\":{},\"shown\":[]}", chn)
                - p;

    return NGX_OK;
}


/*
 * o's text, in the request's pool: what every JSON answer of the module
 * sends.  The caller keeps its reference to o.
 */
ngx_int_t
ngx_http_omni_json_pool(ngx_http_request_t *r, json_t *o, size_t flags,
    ngx_str_t *out)
{
    char  *text;

    text = o ? json_dumps(o, flags) : NULL;
    if (text == NULL) {
        return NGX_ERROR;
    }

    out->len = ngx_strlen(text);
    out->data = ngx_pnalloc(r->pool, out->len);

    if (out->data == NULL) {
        free(text);
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, text, out->len);
    free(text);

    return NGX_OK;
}


static ngx_int_t
ngx_http_omni_send_json(ngx_http_request_t *r, ngx_str_t *json)
{
    return ngx_http_omni_send_json_status(r, NGX_HTTP_OK, json);
}


ngx_int_t
ngx_http_omni_send_json_status(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *json)
{
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = status;

    return ngx_http_omni_send_body(r, json, &ngx_http_omni_private);
}


ngx_int_t
ngx_http_omni_add_header(ngx_http_request_t *r, const char *key,
    const char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);

    return NGX_OK;
}


/* 503 answers tell clients when to retry. */
ngx_int_t
ngx_http_omni_retry_after(ngx_http_request_t *r)
{
    return ngx_http_omni_add_header(r, "Retry-After", "1");
}


/* Sends body plus a newline, never cacheable; content type already set. */
static ngx_int_t
ngx_http_omni_send_body(ngx_http_request_t *r, ngx_str_t *body,
    ngx_str_t *cache_control)
{
    ngx_int_t         rc;
    ngx_buf_t        *b;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "Cache-Control");
    h->value = *cache_control;

    if (r->headers_out.status == 0) {
        r->headers_out.status = NGX_HTTP_OK;
    }

    r->headers_out.content_length_n = body->len + 1;

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_create_temp_buf(r->pool, body->len + 1);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, body->data, body->len);
    *b->last++ = '\n';
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * omni_admin_decide: the decision for any profile, for email and SMS
 * systems, rendered exactly like "omnictl decide":
 *
 *   GET /omni/admin/decide?profile=ID&channel=email|sms|web|app[&format=text]
 *   GET /omni/admin/decide?customer=CUSTOMER-ID&channel=sms&format=text
 *
 * The endpoint exists only where the configuration puts it; protect the
 * location with allow/deny (docs/directives.md).
 */
char *
ngx_http_omni_admin_decide_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    return ngx_http_omni_endpoint(cf, ngx_http_omni_admin_decide_handler, 0);
}


ngx_int_t
ngx_http_omni_admin_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *field, const char *reason)
{
    u_char     *p;
    ngx_str_t   json;

    p = ngx_pnalloc(r->pool, 64 + ngx_strlen(field) + ngx_strlen(reason));
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json.data = p;
    json.len = ngx_sprintf(p, "{\"error\":\"%s\",\"field\":\"%s\"}",
                           reason, field) - p;

    return ngx_http_omni_send_json_status(r, status, &json);
}


/* An argument's value, %XX-decoded, in the request pool. */
static ngx_int_t
ngx_http_omni_admin_arg(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    u_char     *dst, *src;
    ngx_str_t   arg;

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), &arg) != NGX_OK) {
        return NGX_DECLINED;
    }

    dst = ngx_pnalloc(r->pool, arg.len + 1);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    src = arg.data;
    value->data = dst;
    ngx_unescape_uri(&dst, &src, arg.len, NGX_UNESCAPE_URI);
    value->len = dst - value->data;

    return NGX_OK;
}


/*
 * The profile behind an alias; a cookie's or a token's visitor without
 * an alias yet is its own profile (ngx_http_omni_resolve() does the
 * same).  NGX_OK, NGX_DECLINED (not found), NGX_ERROR (no store).
 */
static ngx_int_t
ngx_http_omni_admin_alias(ngx_http_request_t *r, unsigned kind,
    const void *val, size_t len, unsigned char *pid)
{
    int            rc;
    omni_store_t  *st;

    st = ngx_http_omni_worker_store();

    if (st == NULL || ngx_http_omni_read_begin(r, st) != NGX_OK) {
        return NGX_ERROR;
    }

    rc = omni_store_get_alias(st, kind, val, len, pid);
    omni_store_read_end(st);

    if (rc == OMNI_NOTFOUND
        && (kind == OMNI_ALIAS_COOKIE || kind == OMNI_ALIAS_DEVICE))
    {
        return omni_id_parse(val, len, pid) == OMNI_OK ? NGX_OK
                                                       : NGX_DECLINED;
    }

    return rc == OMNI_OK ? NGX_OK : NGX_DECLINED;
}


/*
 * The visitor an admin endpoint asks about, the request's identity from
 * now on, deciding exactly as for that visitor: profile=ID,
 * customer=ID, email=ADDRESS, or cookie=VALUE / token=VALUE (the omni
 * cookie's value or an app token: either is accepted under either
 * name), and channel=.  NGX_OK, or NGX_DECLINED with *rc the answer
 * already sent (a JSON error naming the argument).
 */
ngx_int_t
ngx_http_omni_admin_visitor(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx,
    ngx_int_t *rc)
{
    int                         vrc;
    char                        hex[OMNI_SHA256_HEX_LEN + 1];
    ngx_int_t                   ch, found;
    ngx_str_t                   arg;
    const char                 *field;
    omni_token_t                tok;
    unsigned char               pid[OMNI_ID_LEN];
    ngx_http_omni_main_conf_t  *mcf;

    found = NGX_DECLINED;
    field = "profile";

    if (ngx_http_arg(r, (u_char *) "profile", 7, &arg) == NGX_OK) {
        if (omni_id_parse((char *) arg.data, arg.len, pid) != OMNI_OK) {
            *rc = ngx_http_omni_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "profile",
                                            "expected 32 hex digits");
            return NGX_DECLINED;
        }

        found = NGX_OK;

    } else if ((found = ngx_http_omni_admin_arg(r, "customer", &arg))
               != NGX_DECLINED)
    {
        field = "customer";

        if (found == NGX_OK) {
            if (arg.len == 0 || arg.len > OMNI_ALIAS_MAX_LEN) {
                *rc = ngx_http_omni_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                                "customer",
                                                "invalid length");
                return NGX_DECLINED;
            }

            found = ngx_http_omni_admin_alias(r, OMNI_ALIAS_CUSTOMER,
                                              arg.data, arg.len, pid);
        }

    } else if ((found = ngx_http_omni_admin_arg(r, "email", &arg))
               != NGX_DECLINED)
    {
        field = "email";

        if (found == NGX_OK) {
            /* stored as the SHA-256 of the lowercased, trimmed address */
            while (arg.len && arg.data[0] == ' ') {
                arg.data++;
                arg.len--;
            }

            while (arg.len && arg.data[arg.len - 1] == ' ') {
                arg.len--;
            }

            if (arg.len == 0 || arg.len > 254
                || ngx_strlchr(arg.data, arg.data + arg.len, '@') == NULL)
            {
                *rc = ngx_http_omni_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                                "email",
                                                "expected an address");
                return NGX_DECLINED;
            }

            omni_sha256_hex((char *) arg.data, arg.len, 1, hex);
            found = ngx_http_omni_admin_alias(r, OMNI_ALIAS_EMAIL, hex,
                                              OMNI_SHA256_HEX_LEN, pid);
        }

    } else if ((found = ngx_http_omni_admin_arg(r, "cookie", &arg))
               != NGX_DECLINED
               || (found = ngx_http_omni_admin_arg(r, "token", &arg))
                  != NGX_DECLINED)
    {
        field = ngx_http_arg(r, (u_char *) "cookie", 6, &arg) == NGX_OK
                ? "cookie" : "token";

        if (found == NGX_OK) {
            (void) ngx_http_omni_admin_arg(r, field, &arg);

            mcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);

            vrc = omni_token_verify(&mcf->keyring, OMNI_KIND_COOKIE,
                                    (char *) arg.data, arg.len,
                                    (uint32_t) ngx_time(), &tok);

            if (vrc == OMNI_TOKEN_BAD_KIND) {
                vrc = omni_token_verify(&mcf->keyring, OMNI_KIND_TOKEN,
                                        (char *) arg.data, arg.len,
                                        (uint32_t) ngx_time(), &tok);
            }

            if (vrc != OMNI_OK) {
                *rc = ngx_http_omni_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                                field,
                                                omni_token_strerror(vrc));
                return NGX_DECLINED;
            }

            /* visitor and device aliases are keyed by the id in hex */
            omni_id_hex(tok.id, hex);
            found = ngx_http_omni_admin_alias(r,
                                              tok.kind == OMNI_KIND_TOKEN
                                              ? OMNI_ALIAS_DEVICE
                                              : OMNI_ALIAS_COOKIE,
                                              hex, OMNI_ID_HEX_LEN, pid);
        }

    } else {
        *rc = ngx_http_omni_admin_error(r, NGX_HTTP_BAD_REQUEST, "profile",
                                        "profile, customer, email, cookie "
                                        "or token is required");
        return NGX_DECLINED;
    }

    if (found == NGX_ERROR) {
        *rc = ngx_http_omni_admin_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "store", "store unavailable");
        return NGX_DECLINED;
    }

    if (found == NGX_DECLINED) {
        *rc = ngx_http_omni_admin_error(r, NGX_HTTP_NOT_FOUND, field,
                                        "not found");
        return NGX_DECLINED;
    }

    ctx->channel = -1;

    if (ngx_http_arg(r, (u_char *) "channel", 7, &arg) == NGX_OK) {
        ch = omni_channel_parse((char *) arg.data, arg.len);
        if (ch < 0) {
            *rc = ngx_http_omni_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "channel", "unknown channel");
            return NGX_DECLINED;
        }

        ctx->channel = ch;
    }

    /* The profile is the identity: decide exactly as for a visitor. */
    ctx->identified = 1;
    ctx->identity = NGX_HTTP_OMNI_ID_COOKIE;
    ctx->pid_fixed = 1;
    ctx->endpoint = 1;
    ngx_memcpy(ctx->pid, pid, OMNI_ID_LEN);
    ngx_memcpy(ctx->vid, pid, OMNI_ID_LEN);
    omni_id_hex(pid, (char *) ctx->vid_hex);
    omni_id_hex(pid, (char *) ctx->pid_hex);

    return NGX_OK;
}


static ngx_int_t
ngx_http_omni_admin_decide_handler(ngx_http_request_t *r)
{
    ngx_int_t             rc;
    ngx_str_t             text, format;
    ngx_http_omni_ctx_t  *ctx;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_omni_rules_current() == NULL) {
        return ngx_http_omni_admin_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "rules", "no omni_rules configured");
    }

    ctx = ngx_http_omni_get_ctx(r, 1);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_omni_admin_visitor(r, ctx, &rc) != NGX_OK) {
        return rc;
    }

    ngx_str_null(&format);
    (void) ngx_http_arg(r, (u_char *) "format", 6, &format);

    if (format.len
        && !(format.len == 4 && ngx_strncmp(format.data, "text", 4) == 0)
        && !(format.len == 4 && ngx_strncmp(format.data, "json", 4) == 0))
    {
        return ngx_http_omni_admin_error(r, NGX_HTTP_BAD_REQUEST, "format",
                                         "expected json or text");
    }

    ctx->want_text = format.len == 4 && format.data[0] == 't';

    /* The admin endpoint may always explain (JSON only). */
    if (ngx_http_omni_decide(r, ctx, ctx->want_text
                                     ? 1 : ngx_http_omni_explain_arg(r))
        != NGX_OK
        || ctx->decision == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->want_text) {
        text = ctx->decision->text;
        ngx_str_set(&r->headers_out.content_type, "text/plain");
        r->headers_out.content_type_len = r->headers_out.content_type.len;
        return ngx_http_omni_send_body(r, &text, &ngx_http_omni_private);
    }

    return ngx_http_omni_send_json(r, &ctx->decision->json);
}


/*
 * omni_feed: the touchpoint log as NDJSON, for email, SMS and ad tools
 * and warehouse shippers (docs/feed.md):
 *
 *   GET /omni/feed?after=CURSOR&limit=N
 *
 * Lines are omni_feed_line()'s, the same bytes as "omnictl tail".
 * X-Omni-Cursor carries the last seq served (the next request's after;
 * unchanged when nothing new).  A cursor older than retention is 410
 * "cursor expired", never a silent gap.  Like omni_admin_decide, the
 * endpoint exists only where configured: protect it with allow/deny.
 */

#define NGX_HTTP_OMNI_FEED_LIMIT      100
#define NGX_HTTP_OMNI_FEED_LIMIT_MAX  10000


typedef struct {
    ngx_http_request_t         *r;
    ngx_chain_t                *out;
    ngx_chain_t               **last;
    uint64_t                    cursor;
    off_t                       size;
} ngx_http_omni_feed_ctx_t;


static ngx_int_t ngx_http_omni_feed_handler(ngx_http_request_t *r);


char *
ngx_http_omni_feed_endpoint(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_omni_endpoint(cf, ngx_http_omni_feed_handler, 0);
}


/* Copies one line out of the read transaction into the request pool. */
static int
ngx_http_omni_feed_line(void *arg, uint64_t seq, const void *data,
    size_t len)
{
    ngx_http_omni_feed_ctx_t *fc = arg;

    size_t        n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    n = omni_feed_line(seq, data, len, NULL, 0);

    b = ngx_create_temp_buf(fc->r->pool, n);
    cl = ngx_alloc_chain_link(fc->r->pool);
    if (b == NULL || cl == NULL) {
        return OMNI_ERROR;
    }

    b->last += omni_feed_line(seq, data, len, (char *) b->pos, n);

    cl->buf = b;
    cl->next = NULL;
    *fc->last = cl;
    fc->last = &cl->next;

    fc->cursor = seq;
    fc->size += n;

    return OMNI_OK;
}


/* A non-negative decimal up to 2^63, or -1. */
static int64_t
ngx_http_omni_feed_u64(ngx_str_t *s)
{
    size_t    i;
    uint64_t  v;

    if (s->len == 0 || s->len > 19) {
        return -1;
    }

    v = 0;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] < '0' || s->data[i] > '9') {
            return -1;
        }

        v = v * 10 + (s->data[i] - '0');
    }

    return v > (uint64_t) INT64_MAX ? -1 : (int64_t) v;
}


static ngx_int_t
ngx_http_omni_feed_handler(ngx_http_request_t *r)
{
    int64_t      v;
    uint64_t     after;
    ngx_int_t    rc;
    ngx_str_t    arg;
    ngx_uint_t   limit;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    after = 0;
    limit = NGX_HTTP_OMNI_FEED_LIMIT;

    if (ngx_http_arg(r, (u_char *) "after", 5, &arg) == NGX_OK) {
        v = ngx_http_omni_feed_u64(&arg);
        if (v < 0) {
            return ngx_http_omni_admin_error(r, NGX_HTTP_BAD_REQUEST, "after",
                                             "expected a cursor (a seq)");
        }

        after = (uint64_t) v;
    }

    if (ngx_http_arg(r, (u_char *) "limit", 5, &arg) == NGX_OK) {
        v = ngx_http_omni_feed_u64(&arg);
        if (v < 1 || v > NGX_HTTP_OMNI_FEED_LIMIT_MAX) {
            return ngx_http_omni_admin_error(r, NGX_HTTP_BAD_REQUEST, "limit",
                                             "expected 1..10000");
        }

        limit = (ngx_uint_t) v;
    }

    return ngx_http_omni_feed_answer(r, after, limit);
}


/*
 * The lines after a cursor, with X-Omni-Cursor; also the console's live
 * feed.  after == (uint64_t) -1: the last "limit" lines.
 */
ngx_int_t
ngx_http_omni_feed_answer(ngx_http_request_t *r, uint64_t after,
    ngx_uint_t limit)
{
    int                        ret;
    u_char                    *p;
    uint64_t                   first;
    ngx_int_t                  rc;
    ngx_str_t                  json;
    ngx_buf_t                 *b;
    omni_store_t              *st;
    ngx_table_elt_t           *h;
    omni_store_stat_t          ss;
    ngx_http_omni_feed_ctx_t   fc;

    st = ngx_http_omni_worker_store();

    if (st != NULL && after == (uint64_t) -1) {
        /* where the log ends now: a few mdb_stat() and cursor ends */
        if (omni_store_stat(st, &ss) != OMNI_OK) {
            return ngx_http_omni_admin_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                             "store", "store unavailable");
        }

        after = ss.last_seq > limit ? ss.last_seq - limit : 0;

        if (ss.first_seq && after + 1 < ss.first_seq) {
            after = ss.first_seq - 1;
        }
    }

    if (st == NULL || ngx_http_omni_read_begin(r, st) != NGX_OK) {
        return ngx_http_omni_admin_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "store", "store unavailable");
    }

    fc.r = r;
    fc.out = NULL;
    fc.last = &fc.out;
    fc.cursor = after;
    fc.size = 0;

    /* The window is short: lines are copied out as they are read. */
    ret = omni_store_feed(st, after, (unsigned) limit,
                          ngx_http_omni_feed_line, &fc, &first);
    omni_store_read_end(st);

    if (ret != OMNI_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "omni: feed: %s", omni_store_error(st));
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (after + 1 < first) {
        p = ngx_pnalloc(r->pool, 64 + NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        json.data = p;
        json.len = ngx_sprintf(p, "{\"error\":\"cursor expired\","
                               "\"first\":%uL}", first) - p;

        return ngx_http_omni_send_json_status(r, 410, &json);
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "X-Omni-Cursor");
    h->value.data = p;
    h->value.len = ngx_sprintf(p, "%uL", fc.cursor) - p;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "private, no-store");

    ngx_str_set(&r->headers_out.content_type, "application/x-ndjson");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = fc.size;

    if (fc.out == NULL) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    /* The last buffer ends the response. */
    for (b = NULL, fc.last = &fc.out; *fc.last; fc.last = &(*fc.last)->next) {
        b = (*fc.last)->buf;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    return ngx_http_output_filter(r, fc.out);
}
