/*
 * Cross-origin calls of the app endpoints (omni_decide, omni_events,
 * omni_identify) from a web app on another origin, and the answer to an
 * app token that no longer verifies.
 *
 *   omni_cors off;                                  (default)
 *   omni_cors https://app.example.com https://m.example.com;
 *   omni_cors *;
 *
 * A listed origin may send credentials (the omni cookie): its answers get
 * Access-Control-Allow-Origin: <that origin>, -Allow-Credentials: true and
 * Vary: Origin.  "*" allows any origin without credentials (browsers
 * refuse credentials with "*"): apps that send their token in a header.
 *
 * A preflight (OPTIONS with Origin and Access-Control-Request-Method) is
 * answered in the rewrite phase, before the visitor is identified, so it
 * never mints a cookie nor records a touch: 204 with the allowed methods
 * and headers for an allowed origin, a 403 JSON naming Origin otherwise.
 * Without omni_cors a preflight is left alone (the endpoint's 405).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_omni_module.h"


/* Allowed in a preflight: what the endpoints and Segment's SDKs send. */
#define NGX_HTTP_OMNI_CORS_METHODS  "GET, HEAD, POST, OPTIONS"
#define NGX_HTTP_OMNI_CORS_MAX_AGE  "600"

static ngx_str_t  ngx_http_omni_authorization = ngx_string("Authorization");


char *
ngx_http_omni_cors(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    u_char      *p;
    ngx_str_t   *value, *o;
    ngx_uint_t   i, j;

    if (olcf->cors != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2
        && ngx_strcmp(value[1].data, "off") == 0)
    {
        olcf->cors = NULL;
        return NGX_CONF_OK;
    }

    olcf->cors = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                  sizeof(ngx_str_t));
    if (olcf->cors == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len == 1 && value[i].data[0] == '*') {
            if (cf->args->nelts != 2) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"omni_cors *\" cannot be combined "
                                   "with listed origins");
                return NGX_CONF_ERROR;
            }

        } else {
            /* scheme://host[:port], exactly as browsers send Origin */
            p = (u_char *) ngx_strstr(value[i].data, "://");

            if ((ngx_strncmp(value[i].data, "https://", 8) != 0
                 && ngx_strncmp(value[i].data, "http://", 7) != 0)
                || p == NULL || p[3] == '\0'
                || ngx_strlchr(p + 3, value[i].data + value[i].len, '/')
                || value[i].data[value[i].len - 1] == '.')
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid origin \"%V\" in \"omni_cors\": "
                                   "expected scheme://host[:port], "
                                   "without a path, or \"*\" or \"off\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            for (j = 0; j < value[i].len; j++) {
                if (value[i].data[j] >= 'A' && value[i].data[j] <= 'Z') {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "invalid origin \"%V\" in "
                                       "\"omni_cors\": browsers send "
                                       "origins in lowercase", &value[i]);
                    return NGX_CONF_ERROR;
                }
            }
        }

        o = ngx_array_push(olcf->cors);
        if (o == NULL) {
            return NGX_CONF_ERROR;
        }

        *o = value[i];
    }

    return NGX_CONF_OK;
}


/* The allowed origin the request comes from: 1 listed, 2 "*", 0 none. */
static ngx_uint_t
ngx_http_omni_cors_match(ngx_http_omni_loc_conf_t *olcf,
    ngx_table_elt_t *origin)
{
    ngx_uint_t   i;
    ngx_str_t   *o;

    o = olcf->cors->elts;

    for (i = 0; i < olcf->cors->nelts; i++) {
        if (o[i].len == 1 && o[i].data[0] == '*') {
            return 2;
        }

        if (o[i].len == origin->value.len
            && ngx_strncmp(o[i].data, origin->value.data, o[i].len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_omni_cors_allow(ngx_http_request_t *r, ngx_table_elt_t *origin,
    ngx_uint_t match)
{
    u_char  *o;

    if (match == 2) {
        return ngx_http_omni_add_header(r, "Access-Control-Allow-Origin",
                                        "*");
    }

    o = ngx_pnalloc(r->pool, origin->value.len + 1);
    if (o == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(o, origin->value.data, origin->value.len);
    o[origin->value.len] = '\0';

    if (ngx_http_omni_add_header(r, "Access-Control-Allow-Origin",
                                 (char *) o) != NGX_OK
        || ngx_http_omni_add_header(r, "Access-Control-Allow-Credentials",
                                    "true") != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Called first in the rewrite phase.  NGX_DECLINED: nothing to do here;
 * otherwise the preflight's answer (finalized by the phase engine).
 * Actual cross-origin requests from an allowed origin get their CORS
 * headers here too, so every answer of the endpoint (errors included)
 * carries them.
 */
ngx_int_t
ngx_http_omni_cors_handler(ngx_http_request_t *r)
{
    ngx_str_t                  json;
    ngx_uint_t                 match;
    ngx_table_elt_t           *origin, *method;
    ngx_http_omni_ctx_t       *ctx;
    ngx_http_omni_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_omni_module);

    if (olcf->cors == NULL || r != r->main || r->internal) {
        return NGX_DECLINED;
    }

    origin = ngx_http_omni_header_in(r, (u_char *) "origin", 6);
    if (origin == NULL) {
        return NGX_DECLINED;
    }

    method = ngx_http_omni_header_in(r,
                 (u_char *) "access-control-request-method", 29);

    match = ngx_http_omni_cors_match(olcf, origin);

    if (match && ngx_http_omni_add_header(r, "Vary", "Origin") != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method != NGX_HTTP_OPTIONS || method == NULL) {
        /* an actual request: headers for an allowed origin only */
        if (match && ngx_http_omni_cors_allow(r, origin, match) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_DECLINED;
    }

    /*
     * A preflight: no visitor, no cookie, no touch.  The context says
     * "identified, nobody", so the header filter and the log handler
     * leave the answer alone.
     */
    ctx = ngx_http_omni_get_ctx(r, 1);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->identified = 1;

    if (match == 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "omni: CORS preflight from \"%V\" refused: not in "
                      "\"omni_cors\"", &origin->value);

        ngx_str_set(&json, "{\"ok\":false,\"error\":\"forbidden\","
                    "\"field\":\"Origin\",\"reason\":\"origin not allowed "
                    "(omni_cors)\"}");

        return ngx_http_omni_send_json_status(r, NGX_HTTP_FORBIDDEN, &json);
    }

    if (ngx_http_omni_cors_allow(r, origin, match) != NGX_OK
        || ngx_http_omni_add_header(r, "Access-Control-Allow-Methods",
                                    NGX_HTTP_OMNI_CORS_METHODS) != NGX_OK
        || ngx_http_omni_add_header(r, "Access-Control-Allow-Headers",
                                    "Content-Type, Authorization, "
                                    "X-Omni-Token, X-Omni-Signature")
           != NGX_OK
        || ngx_http_omni_add_header(r, "Access-Control-Max-Age",
                                    NGX_HTTP_OMNI_CORS_MAX_AGE) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    (void) ngx_http_discard_request_body(r);

    return ngx_http_send_header(r);
}


/*
 * An app token that was presented and refused (expired, forged, signed by
 * a retired key): the endpoints answer 401 JSON naming the header, so an
 * app knows to call omni_identify again, rather than a 200 as a brand-new
 * visitor.  NGX_DECLINED when the request's token (if any) verified.
 */
ngx_int_t
ngx_http_omni_token_rejected(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx)
{
    u_char                    *p;
    ngx_str_t                  json;
    ngx_http_omni_loc_conf_t  *olcf;

    if (ctx->token_error == NULL) {
        return NGX_DECLINED;
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_omni_module);

    json.data = ngx_pnalloc(r->pool, 256 + olcf->token_header.len);
    if (json.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the header name is a configured token, the reason a fixed text */
    p = ngx_sprintf(json.data, "{\"ok\":false,\"error\":\"unauthorized\","
                    "\"identity\":\"rejected\",\"field\":\"%V\","
                    "\"reason\":\"app token refused: %s; get a new one "
                    "from omni_identify\"}",
                    ctx->token_auth ? &ngx_http_omni_authorization
                                    : &olcf->token_header,
                    ctx->token_error);
    json.len = p - json.data;

    if (ngx_http_omni_add_header(r, "WWW-Authenticate",
                                 "Bearer error=\"invalid_token\"")
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_omni_send_json_status(r, NGX_HTTP_UNAUTHORIZED, &json);
}
