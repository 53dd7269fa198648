/*
 * Event ingest (docs/events.md).
 *
 * omni_events: an endpoint for Segment-shaped events, single or batched.
 * The body is read and validated on the event loop (core/omni_event_*.c),
 * then the valid events go to the writer as one job and the request is
 * suspended, not the event loop: the answer is sent only once the
 * writer's transaction holding them is committed and synced (group
 * commit: every event that arrived while the previous batch was being
 * written shares the next fsync).  A 2xx therefore means durable.
 *
 * Trust: a request carrying a server key (omni_events_key) as a bearer
 * token or an HMAC signature of the body speaks for anybody; any other
 * request speaks only for its own visitor (cookie or app token) and only
 * with low-trust events.  A key that does not verify is a 401, a client
 * event that needs a key a 403, both with a JSON reason.
 *
 * omni_upstream_events: the upstream signals an event (a login, an
 * order) with X-Omni-Event response headers; they are consumed, removed
 * before the client sees the response, and queued for the writer as
 * server-trusted events about the visitor of that request.
 */

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "ngx_http_omni_module.h"
#include "ngx_http_omni_metrics.h"
#include "omni_event.h"
#include "omni_json.h"


#define NGX_HTTP_OMNI_SIG_TOLERANCE  300        /* seconds */


typedef struct {
    ngx_str_t                   name;
    ngx_str_t                   key;
    u_char                      digest[SHA256_DIGEST_LENGTH];
} ngx_http_omni_event_key_t;


typedef struct {
    ngx_http_omni_wjob_t        job;
    omni_event_batch_t          batch;
    unsigned                    trust;
} ngx_http_omni_events_ctx_t;


static ngx_int_t ngx_http_omni_events_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_omni_events_set_ip(ngx_http_request_t *r,
    u_char **body, size_t *len);
static ngx_uint_t ngx_http_omni_media_type(ngx_http_request_t *r,
    const char *type);
static ngx_int_t ngx_http_omni_events_fire(ngx_http_request_t *r,
    omni_event_ctx_t *ec, u_char *text, size_t len, const char *what);
static void ngx_http_omni_events_body(ngx_http_request_t *r);
static void ngx_http_omni_events_done(ngx_http_omni_wjob_t *job);
static ngx_int_t ngx_http_omni_events_respond(ngx_http_omni_wjob_t *job);
static ngx_int_t ngx_http_omni_events_send(ngx_http_request_t *r,
    ngx_uint_t status, json_t *root);
static ngx_int_t ngx_http_omni_events_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *error, const char *field,
    const char *reason);


/* ---- configuration ---- */

char *
ngx_http_omni_events_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    ssize_t                     size;
    ngx_str_t                  *value, s;
    ngx_uint_t                  i;
    ngx_http_core_loc_conf_t   *clcf;

    /* a secret anywhere in the http block (ngx_http_omni_conf.c) */
    ngx_http_omni_conf_need_secret(cf);

    if (olcf->events_max_body != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    olcf->events_max_body = 64 * 1024;

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "max_body=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            size = ngx_parse_size(&s);

            if (size == NGX_ERROR || size < 1024 || size > 16 * 1024 * 1024)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"max_body\" \"%V\" (1k to 16m)",
                                   &s);
                return NGX_CONF_ERROR;
            }

            olcf->events_max_body = (size_t) size;
            continue;
        }

        /* the feed keeps the sender's ip: off by default, for privacy */
        if (value[i].len == 5 && ngx_strncmp(value[i].data, "ip=on", 5) == 0)
        {
            olcf->events_ip = 1;
            continue;
        }

        if (value[i].len == 6
            && ngx_strncmp(value[i].data, "ip=off", 6) == 0)
        {
            olcf->events_ip = 0;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" (max_body=SIZE, ip=on "
                           "or ip=off)", &value[i]);
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_omni_events_handler;

    return NGX_CONF_OK;
}


/* Sets context.ip of one event object (not an object: left alone). */
static void
ngx_http_omni_events_set_ip_one(json_t *ev, json_t *ip)
{
    json_t  *ctx;

    if (!json_is_object(ev)) {
        return;
    }

    ctx = json_object_get(ev, "context");

    if (ctx == NULL) {
        ctx = json_object();
        if (ctx == NULL || json_object_set_new(ev, "context", ctx) != 0) {
            return;
        }
    }

    if (json_is_object(ctx)) {
        (void) json_object_set(ctx, "ip", ip);
    }
}


/*
 * omni_events ip=on for a browser or an app: its own address (the
 * connection's, as $remote_addr has it, after realip when configured)
 * written as context.ip into every event of the body, replacing what it
 * claimed; the body becomes that text.  NGX_DECLINED leaves a body that
 * does not parse to the parser's error.
 */
static ngx_int_t
ngx_http_omni_events_set_ip(ngx_http_request_t *r, u_char **body,
    size_t *len)
{
    char          *text;
    u_char        *p;
    size_t         i, n;
    json_t        *root, *list, *ip;
    json_error_t   jerr;

    root = json_loadb((char *) *body, *len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return NGX_DECLINED;
    }

    ip = json_stringn((char *) r->connection->addr_text.data,
                      r->connection->addr_text.len);
    if (ip == NULL) {
        json_decref(root);
        return NGX_DECLINED;
    }

    /* one event, an array of them, or {"batch": [...]} */
    list = json_is_array(root) ? root : json_object_get(root, "batch");

    if (json_is_array(list)) {
        n = json_array_size(list);

        for (i = 0; i < n; i++) {
            ngx_http_omni_events_set_ip_one(json_array_get(list, i), ip);
        }

    } else {
        ngx_http_omni_events_set_ip_one(root, ip);
    }

    json_decref(ip);

    text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);

    if (text == NULL) {
        return NGX_DECLINED;
    }

    n = ngx_strlen(text);

    p = ngx_pnalloc(r->pool, n);
    if (p == NULL) {
        free(text);
        return NGX_ERROR;
    }

    ngx_memcpy(p, text, n);
    free(text);

    *body = p;
    *len = n;

    return NGX_OK;
}


char *
ngx_http_omni_events_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_main_conf_t *mcf = conf;

    ngx_str_t                  *value;
    ngx_uint_t                  i;
    ngx_http_omni_event_key_t  *k;

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].len > 64) {
        return "needs a key name of 1 to 64 characters";
    }

    /*
     * The key is a bearer credential and an HMAC key: as long and as
     * random as the visitor secret (omni_secret's rules).
     */
    if (value[2].len < 32) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"omni_events_key\" \"%V\" is too short: at "
                           "least 32 characters (openssl rand -hex 32)",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < value[2].len; i++) {
        if (value[2].data[i] <= ' ' || value[2].data[i] >= 0x7f) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"omni_events_key\" \"%V\" must be "
                               "printable ASCII without spaces",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_strstr(value[2].data, "CHANGE-ME") != NULL
        || ngx_strstr(value[2].data, "change-me") != NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"omni_events_key\" \"%V\" is the documentation "
                           "example: generate a real key", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (mcf->event_keys == NULL) {
        mcf->event_keys = ngx_array_create(cf->pool, 2,
                                      sizeof(ngx_http_omni_event_key_t));
        if (mcf->event_keys == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    k = mcf->event_keys->elts;

    for (i = 0; i < mcf->event_keys->nelts; i++) {
        if (k[i].name.len == value[1].len
            && ngx_strncmp(k[i].name.data, value[1].data, value[1].len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate \"omni_events_key\" \"%V\"",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    k = ngx_array_push(mcf->event_keys);
    if (k == NULL) {
        return NGX_CONF_ERROR;
    }

    k->name = value[1];
    k->key = value[2];
    SHA256(value[2].data, value[2].len, k->digest);

    return NGX_CONF_OK;
}


/* ---- trust ---- */

/*
 * The SHA-256 of the user of an "Authorization: Basic" header (the part
 * before the first ':'), so it compares with the keys' digests.
 */
static ngx_int_t
ngx_http_omni_events_basic(ngx_http_request_t *r, ngx_str_t *value,
    u_char *digest)
{
    u_char     *colon;
    ngx_str_t   enc, dec;

    enc.data = value->data + 6;
    enc.len = value->len - 6;

    while (enc.len && enc.data[0] == ' ') {
        enc.data++;
        enc.len--;
    }

    dec.len = ngx_base64_decoded_length(enc.len);
    dec.data = ngx_pnalloc(r->pool, dec.len + 1);
    if (dec.data == NULL || enc.len == 0) {
        return NGX_ERROR;
    }

    if (ngx_decode_base64(&dec, &enc) != NGX_OK) {
        return NGX_ERROR;
    }

    colon = ngx_strlchr(dec.data, dec.data + dec.len, ':');
    if (colon != NULL) {
        dec.len = colon - dec.data;
    }

    SHA256(dec.data, dec.len, digest);

    return NGX_OK;
}

/*
 * NGX_OK with *trust set, or NGX_DECLINED with *field and *reason saying
 * why the credential presented is refused (401).
 */
static ngx_int_t
ngx_http_omni_events_auth(ngx_http_request_t *r, u_char *body, size_t len,
    unsigned *trust, const char **field, const char **reason)
{
    u_char                      *p, *last, *v1, *msg, *q;
    time_t                       t;
    ngx_uint_t                   i;
    unsigned int                 mdlen;
    ngx_table_elt_t             *auth, *sig;
    ngx_http_omni_ctx_t         *ctx;
    ngx_http_omni_event_key_t   *k;
    ngx_http_omni_main_conf_t   *mcf;
    u_char                       digest[SHA256_DIGEST_LENGTH];
    u_char                       mac[EVP_MAX_MD_SIZE];
    u_char                       hex[2 * EVP_MAX_MD_SIZE];

    mcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);

    *trust = OMNI_TRUST_CLIENT;

    auth = r->headers_in.authorization;
    sig = ngx_http_omni_header_in(r, (u_char *) "x-omni-signature", 16);

    if (auth == NULL && sig == NULL) {
        return NGX_OK;
    }

    *field = auth ? "Authorization" : "X-Omni-Signature";

    if (mcf->event_keys == NULL) {
        *reason = "no server key is configured (omni_events_key)";
        return NGX_DECLINED;
    }

    k = mcf->event_keys->elts;

    if (auth && auth->value.len > 6
        && ngx_strncasecmp(auth->value.data, (u_char *) "Basic ", 6) == 0)
    {
        /*
         * Segment's libraries: HTTP Basic with the writeKey as the user
         * and an empty password.  The writeKey is a server key.
         */
        if (ngx_http_omni_events_basic(r, &auth->value, digest) != NGX_OK) {
            *reason = "expected \"Basic base64(KEY:)\"";
            return NGX_DECLINED;
        }

        for (i = 0; i < mcf->event_keys->nelts; i++) {
            if (CRYPTO_memcmp(digest, k[i].digest, sizeof(digest)) == 0) {
                *trust = OMNI_TRUST_SERVER;
                return NGX_OK;
            }
        }

        *reason = "invalid server key";
        return NGX_DECLINED;
    }

    if (auth) {
        if (auth->value.len < 8
            || ngx_strncasecmp(auth->value.data, (u_char *) "Bearer ", 7)
               != 0)
        {
            *reason = "expected \"Bearer KEY\" or \"Basic base64(KEY:)\"";
            return NGX_DECLINED;
        }

        /* Digests compare in constant time whatever the lengths. */
        SHA256(auth->value.data + 7, auth->value.len - 7, digest);

        for (i = 0; i < mcf->event_keys->nelts; i++) {
            if (CRYPTO_memcmp(digest, k[i].digest, sizeof(digest)) == 0) {
                *trust = OMNI_TRUST_SERVER;
                return NGX_OK;
            }
        }

        /*
         * Not a server key: it may be an app's own token, which apps may
         * send as a bearer too (omni_token_header): then a client.
         */
        ctx = ngx_http_omni_identify(r);

        if (ctx && ctx->identity == NGX_HTTP_OMNI_ID_TOKEN) {
            return NGX_OK;
        }

        *reason = "invalid server key";
        return NGX_DECLINED;
    }

    /* X-Omni-Signature: t=UNIX,v1=HEX(HMAC-SHA256(key, "UNIX." + body)) */
    p = sig->value.data;
    last = p + sig->value.len;

    if (last - p < 3 || ngx_strncmp(p, "t=", 2) != 0) {
        *reason = "expected \"t=UNIXTIME,v1=HEX\"";
        return NGX_DECLINED;
    }

    v1 = ngx_strlcasestrn(p, last, (u_char *) ",v1=", 4 - 1);
    if (v1 == NULL || last - (v1 + 4) != 2 * SHA256_DIGEST_LENGTH) {
        *reason = "expected \"t=UNIXTIME,v1=HEX\" with 64 hex digits";
        return NGX_DECLINED;
    }

    t = ngx_atotm(p + 2, v1 - (p + 2));
    if (t == NGX_ERROR) {
        *reason = "expected \"t=UNIXTIME,v1=HEX\"";
        return NGX_DECLINED;
    }

    /* A replayed signature is refused once it is old. */
    if (t < ngx_time() - NGX_HTTP_OMNI_SIG_TOLERANCE
        || t > ngx_time() + NGX_HTTP_OMNI_SIG_TOLERANCE)
    {
        *reason = "signature timestamp outside 5 minutes of now";
        return NGX_DECLINED;
    }

    /* The signed message: "UNIX." followed by the body. */
    msg = ngx_pnalloc(r->pool, (v1 - (p + 2)) + 1 + len);
    if (msg == NULL) {
        *reason = "out of memory";
        return NGX_DECLINED;
    }

    q = ngx_cpymem(msg, p + 2, v1 - (p + 2));
    *q++ = '.';
    q = ngx_cpymem(q, body, len);

    ngx_strlow(v1 + 4, v1 + 4, 2 * SHA256_DIGEST_LENGTH);

    for (i = 0; i < mcf->event_keys->nelts; i++) {
        if (HMAC(EVP_sha256(), k[i].key.data, (int) k[i].key.len, msg,
                 q - msg, mac, &mdlen)
            == NULL)
        {
            break;
        }

        ngx_hex_dump(hex, mac, mdlen);

        if (CRYPTO_memcmp(hex, v1 + 4, 2 * mdlen) == 0) {
            *trust = OMNI_TRUST_SERVER;
            return NGX_OK;
        }
    }

    *reason = "signature does not verify";
    return NGX_DECLINED;
}


/* ---- the endpoint ---- */

static ngx_int_t
ngx_http_omni_events_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_http_omni_ctx_t       *ctx;
    ngx_http_omni_loc_conf_t  *olcf;

    /* The events are this request's record, not a page view. */
    ctx = ngx_http_omni_get_ctx(r, 0);
    if (ctx) {
        ctx->touched = 1;
    }

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_omni_events_error(r, NGX_HTTP_NOT_ALLOWED, "method",
                                          "method", "use POST");
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_omni_module);

    if (r->headers_in.content_length_n > (off_t) olcf->events_max_body) {
        return ngx_http_omni_events_error(r,
                                          NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                          "too large", "Content-Length",
                                          "body larger than max_body");
    }

    /* application/json, or text/plain as navigator.sendBeacon sends */
    if (!ngx_http_omni_media_type(r, "application/json")
        && !ngx_http_omni_media_type(r, "text/plain"))
    {
        return ngx_http_omni_events_error(r,
                                          NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                          "unsupported media type",
                                          "Content-Type",
                                          "expected application/json");
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_omni_events_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/*
 * Whether the request's Content-Type is exactly the media type "type"
 * (case-insensitive), with or without parameters: "application/json;
 * charset=utf-8" is, "application/jsonx" and "application/json-seq" are
 * not (RFC 9110 8.3.1).
 */
static ngx_uint_t
ngx_http_omni_media_type(ngx_http_request_t *r, const char *type)
{
    u_char  *p, *end;
    size_t   n;

    if (r->headers_in.content_type == NULL) {
        return 0;
    }

    p = r->headers_in.content_type->value.data;
    end = p + r->headers_in.content_type->value.len;
    n = ngx_strlen(type);

    if ((size_t) (end - p) < n
        || ngx_strncasecmp(p, (u_char *) type, n) != 0)
    {
        return 0;
    }

    for (p += n; p < end && (*p == ' ' || *p == '\t'); p++) {
        /* void */
    }

    return p == end || *p == ';';
}


/* The whole body in one buffer (it may have gone to a temp file). */
static u_char *
ngx_http_omni_events_read(ngx_http_request_t *r, size_t max, size_t *len)
{
    u_char       *buf, *p;
    off_t         size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    size = 0;

    if (r->request_body == NULL) {
        *len = 0;
        return (u_char *) "";
    }

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }

    if (size > (off_t) max) {
        *len = (size_t) size;
        return NULL;
    }

    buf = ngx_pnalloc(r->pool, (size_t) size + 1);
    if (buf == NULL) {
        *len = 0;
        return NULL;
    }

    p = buf;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, (size_t) (b->file_last
                                                    - b->file_pos),
                              b->file_pos);
            if (n != b->file_last - b->file_pos) {
                *len = 0;
                return NULL;
            }

            p += n;

        } else if (b->last > b->pos) {
            /* an empty body has no memory at all: pos may be NULL */
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    *len = p - buf;

    return buf;
}


static void
ngx_http_omni_events_cleanup(void *data)
{
    omni_event_batch_t  *b = data;

    omni_event_batch_free(b);
}


static void
ngx_http_omni_events_body(ngx_http_request_t *r)
{
    u_char                      *body, *p;
    size_t                       len;
    ngx_int_t                    rc;
    ngx_uint_t                   i, valid, forbidden, signal;
    const char                  *field, *reason;
    omni_event_ctx_t             ec;
    omni_event_err_t             err;
    ngx_pool_cleanup_t          *cln;
    ngx_http_omni_ctx_t         *ctx;
    ngx_http_omni_events_ctx_t  *ectx;
    ngx_http_omni_loc_conf_t    *olcf;
    ngx_http_omni_main_conf_t   *mcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_omni_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);

    body = ngx_http_omni_events_read(r, olcf->events_max_body, &len);

    if (body == NULL) {
        if (len > olcf->events_max_body) {
            ngx_http_finalize_request(r, ngx_http_omni_events_error(r,
                                      NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                      "too large", "body",
                                      "body larger than max_body"));
            return;
        }

        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ectx = ngx_pcalloc(r->pool, sizeof(ngx_http_omni_events_ctx_t));
    if (ectx == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ngx_http_omni_events_auth(r, body, len, &ectx->trust, &field,
                                  &reason)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "omni: events: %s refused: %s", field, reason);
        ngx_http_finalize_request(r, ngx_http_omni_events_error(r,
                                  NGX_HTTP_UNAUTHORIZED, "unauthorized",
                                  field, reason));
        return;
    }

    /* A server speaks for others: it gets no visitor cookie. */
    ctx = ngx_http_omni_get_ctx(r, 0);

    if (ctx && ectx->trust == OMNI_TRUST_SERVER
        && ctx->identity == NGX_HTTP_OMNI_ID_NEW)
    {
        ctx->set_cookie = 0;
    }

    ngx_memzero(&ec, sizeof(omni_event_ctx_t));
    ec.trust = ectx->trust;
    ec.source = ectx->trust == OMNI_TRUST_SERVER ? OMNI_SRC_SERVER
                                                 : OMNI_SRC_CLIENT;
    ec.now = (uint32_t) ngx_time();
    ec.channel = OMNI_CH_MAX;

    /*
     * omni_events ip=on: the feed keeps a server's context.ip as sent,
     * and a browser's or app's own address, written into the text the
     * writer parses again (whatever the client claimed).
     */
    if (olcf->events_ip) {
        ec.source |= OMNI_SRC_KEEP_IP;

        rc = ectx->trust != OMNI_TRUST_SERVER
             ? ngx_http_omni_events_set_ip(r, &body, &len) : NGX_DECLINED;

        if (rc == NGX_ERROR) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        if (rc == NGX_OK) {
            ec.source |= OMNI_SRC_IP_SET;
        }
    }

    /*
     * A browser or app that sends Sec-GPC: 1 or DNT: 1: the feed keeps
     * its events without referrer, campaign data, click ids or
     * advertising ids, marked context.privacy (docs/privacy.md).
     */
    if (ectx->trust == OMNI_TRUST_CLIENT) {
        signal = ngx_http_omni_consent_signal(r);

        if (signal == NGX_HTTP_OMNI_SIGNAL_GPC) {
            ec.source |= OMNI_SRC_GPC;

        } else if (signal == NGX_HTTP_OMNI_SIGNAL_DNT) {
            ec.source |= OMNI_SRC_DNT;
        }
    }

    /*
     * Segment's single-call paths (/v1/track, /v1/page, ...) imply the
     * type of an event that names none: the URI's last segment.
     */
    for (p = r->uri.data + r->uri.len; p > r->uri.data && p[-1] != '/'; p--)
    {
        /* void */
    }

    ec.type = omni_event_type_parse((char *) p,
                                    r->uri.data + r->uri.len - p);

    /* Server trust without a bearer key is a signature (see auth). */
    ec.need_message_id = ectx->trust == OMNI_TRUST_SERVER
                         && r->headers_in.authorization == NULL;

    if (ectx->trust == OMNI_TRUST_CLIENT) {
        /* A browser or app: its own cookie or token is the subject. */
        ctx = ngx_http_omni_identify(r);
        if (ctx == NULL) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        if (ctx->identity == NGX_HTTP_OMNI_ID_NONE && ctx->token_error) {
            /* an expired or forged token: the app must get a new one */
            ngx_http_finalize_request(r,
                                      ngx_http_omni_token_rejected(r, ctx));
            return;
        }

        if (ctx->identity != NGX_HTTP_OMNI_ID_NONE) {
            ec.visitor_kind = ctx->identity == NGX_HTTP_OMNI_ID_TOKEN
                              ? OMNI_ALIAS_DEVICE : OMNI_ALIAS_COOKIE;
            ngx_memcpy(ec.visitor, ctx->vid, OMNI_ID_LEN);
            ec.channel = (unsigned) ngx_http_omni_channel(r, ctx);
        }
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (omni_event_batch_parse(&ectx->batch, (char *) body, len, &ec, &err)
        != OMNI_OK)
    {
        ngx_http_finalize_request(r, ngx_http_omni_events_error(r,
                                  NGX_HTTP_BAD_REQUEST, "invalid",
                                  err.field, err.reason));
        return;
    }

    cln->handler = ngx_http_omni_events_cleanup;
    cln->data = &ectx->batch;

    valid = 0;
    forbidden = 0;

    for (i = 0; i < ectx->batch.n; i++) {
        if (ectx->batch.rc[i] == OMNI_OK) {
            ectx->batch.events[i].visit_timeout =
                                             (uint32_t) mcf->visit_timeout;
            valid++;

        } else if (ectx->batch.rc[i] == OMNI_EVENT_FORBIDDEN) {
            forbidden++;
        }
    }

    ngx_http_omni_metrics_events_parsed(&ectx->batch);

    if (valid == 0) {
        /* Nothing to write: one event, or a batch of only bad ones. */
        if (!ectx->batch.batch) {
            ngx_http_finalize_request(r, ngx_http_omni_events_error(r,
                                      forbidden ? NGX_HTTP_FORBIDDEN
                                                : NGX_HTTP_BAD_REQUEST,
                                      forbidden ? "forbidden" : "invalid",
                                      ectx->batch.errs[0].field,
                                      ectx->batch.errs[0].reason));
            return;
        }

        ectx->job.rc = NGX_OK;
        ectx->job.data = r;
        ectx->job.batch = &ectx->batch;
        ectx->job.status = ngx_pcalloc(r->pool,
                                       ectx->batch.n * sizeof(int));
        ectx->job.pids = ngx_pcalloc(r->pool,
                                     ectx->batch.n * OMNI_ID_LEN);

        if (ectx->job.status == NULL || ectx->job.pids == NULL) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_http_finalize_request(r, ngx_http_omni_events_respond(
                                                               &ectx->job));
        return;
    }

    ectx->job.batch = &ectx->batch;
    ectx->job.text = body;
    ectx->job.len = len;
    ectx->job.ec = ec;
    ectx->job.handler = ngx_http_omni_events_done;
    ectx->job.data = r;
    ectx->job.status = ngx_pcalloc(r->pool, ectx->batch.n * sizeof(int));
    ectx->job.pids = ngx_pcalloc(r->pool, ectx->batch.n * OMNI_ID_LEN);

    if (ectx->job.status == NULL || ectx->job.pids == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    rc = ngx_http_omni_writer_events(&ectx->job, valid);

    if (rc == NGX_DECLINED) {
        ngx_http_finalize_request(r, ngx_http_omni_events_error(r,
                                  NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "unavailable", "store",
                                  "no store: configure omni_store"));
        return;
    }

    if (rc == NGX_BUSY) {
        ngx_http_finalize_request(r, ngx_http_omni_events_error(r,
                                  NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "unavailable", "queue",
                                  "the event queue is full: retry"));
        return;
    }

    /*
     * Suspended until the writer has committed and synced the job: the
     * request keeps the reference the body reading took, and the
     * completion handler finalizes it.
     */
}


/* One event's result, appended to the JSON answer. */
static json_t *
ngx_http_omni_events_result(ngx_http_omni_wjob_t *job, ngx_uint_t i)
{
    char                 hex[OMNI_ID_HEX_LEN + 1];
    json_t              *o;
    omni_event_batch_t  *b;

    b = job->batch;

    o = json_object();
    if (o == NULL) {
        return NULL;
    }

    if (b->rc[i] == OMNI_OK) {
        json_object_set_new(o, "messageId",
                            omni_json_string(b->events[i].message_id));

        if (job->rc != NGX_OK) {
            json_object_set_new(o, "status", json_string("failed"));
            json_object_set_new(o, "reason",
                json_string(job->full ? "store is full"
                            : ngx_http_omni_cluster_on()
                              ? "the cluster's stream did not acknowledge "
                                "it in time: retry with the same messageId"
                            : "store error"));
            return o;
        }

        json_object_set_new(o, "status",
                        json_string(omni_event_status_name(job->status[i])));

        if (job->status[i] == OMNI_EVENT_ACCEPTED) {
            omni_id_hex(job->pids[i], hex);
            json_object_set_new(o, "profile", json_string(hex));
        }

        return o;
    }

    json_object_set_new(o, "status",
                        json_string(b->rc[i] == OMNI_EVENT_FORBIDDEN
                                    ? "forbidden" : "invalid"));
    json_object_set_new(o, "field", omni_json_string(b->errs[i].field));
    json_object_set_new(o, "reason", omni_json_string(b->errs[i].reason));

    return o;
}


/* The writer is done with the job: answer, and release the request. */
static void
ngx_http_omni_events_done(ngx_http_omni_wjob_t *job)
{
    ngx_http_request_t  *r = job->data;

    ngx_http_finalize_request(r, ngx_http_omni_events_respond(job));
}


/* The JSON answer: one event's result, or a batch's. */
static ngx_int_t
ngx_http_omni_events_respond(ngx_http_omni_wjob_t *job)
{
    json_t              *root, *results, *o;
    ngx_uint_t           i, status, accepted, dups, failed;
    ngx_http_request_t  *r;
    omni_event_batch_t  *b;

    r = job->data;
    b = job->batch;

    /* a browser that signed out leaves with a fresh visitor cookie */
    for (i = 0; job->rc == NGX_OK && i < b->n; i++) {
        if (b->rc[i] == OMNI_OK
            && b->events[i].name_id == OMNI_EVN_SIGNED_OUT
            && ngx_http_omni_fresh_visitor(r) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    root = json_object();
    results = json_array();

    if (root == NULL || results == NULL) {
        json_decref(root);
        json_decref(results);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    accepted = 0;
    dups = 0;
    failed = 0;

    for (i = 0; i < b->n; i++) {
        o = ngx_http_omni_events_result(job, i);
        if (o == NULL) {
            continue;
        }

        if (b->rc[i] != OMNI_OK || job->rc != NGX_OK) {
            failed++;

        } else if (job->status[i] == OMNI_EVENT_DUPLICATE) {
            dups++;

        } else {
            accepted++;
        }

        json_array_append_new(results, o);
    }

    status = NGX_HTTP_OK;

    if (job->rc != NGX_OK) {
        /* Nothing of the job was written: the client retries it all. */
        status = NGX_HTTP_SERVICE_UNAVAILABLE;

    } else if (accepted + dups == 0) {
        status = NGX_HTTP_BAD_REQUEST;

        for (i = 0; i < b->n; i++) {
            if (b->rc[i] == OMNI_EVENT_FORBIDDEN) {
                status = NGX_HTTP_FORBIDDEN;
                break;
            }
        }
    }

    json_object_set_new(root, "ok", json_boolean(failed == 0));

    if (b->batch) {
        json_object_set_new(root, "accepted", json_integer(accepted));
        json_object_set_new(root, "duplicate", json_integer(dups));
        json_object_set_new(root, "failed", json_integer(failed));
        json_object_set_new(root, "results", results);

    } else {
        json_object_update(root, json_array_get(results, 0));
        json_decref(results);
    }

    if (job->rc != NGX_OK) {
        json_object_set_new(root, "error", json_string("unavailable"));
    }

    /*
     * The events are done with: free them now rather than with the
     * request's pool, which a lingering close may keep for seconds.
     * (The pool cleanup then finds an empty batch.)
     */
    omni_event_batch_free(b);

    return ngx_http_omni_events_send(r, status, root);
}


/* Sends root (a reference this takes) as the JSON answer. */
static ngx_int_t
ngx_http_omni_events_send(ngx_http_request_t *r, ngx_uint_t status,
    json_t *root)
{
    ngx_int_t   rc;
    ngx_str_t   json;

    rc = ngx_http_omni_json_pool(r, root, JSON_COMPACT, &json);
    json_decref(root);

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (status == NGX_HTTP_NOT_ALLOWED) {
        (void) ngx_http_omni_add_header(r, "Allow", "POST");

    } else if (status == NGX_HTTP_UNAUTHORIZED) {
        (void) ngx_http_omni_add_header(r, "WWW-Authenticate",
                                        "Bearer realm=\"omni_events\"");

    } else if (status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        (void) ngx_http_omni_retry_after(r);
    }

    return ngx_http_omni_send_json_status(r, status, &json);
}


static ngx_int_t
ngx_http_omni_events_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *error, const char *field, const char *reason)
{
    json_t      *o;
    ngx_int_t    rc;

    ngx_http_omni_metrics_event_refused(status, field);

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    /* field and reason may quote the body: bad UTF-8 becomes '?' */
    o = json_pack("{s:b,s:s,s:o,s:o}", "ok", 0, "error", error,
                  "field", omni_json_string(field),
                  "reason", omni_json_string(reason));

    return ngx_http_omni_events_send(r, status, o);
}


/* ---- nginx's own errors, as JSON ---- */

/*
 * Some errors of the events endpoint are nginx's, not ours: a body over
 * client_max_body_size (413, found before the handler runs, or while a
 * chunked body is read) and a malformed chunked body (400).  nginx then
 * sends its HTML error page; an SDK expects the endpoint's JSON.  So the
 * header filter swaps such a page (still text/html: ours are JSON) for
 * the JSON error, and the body filter sends that instead of the HTML,
 * the way error_page would, without a location to redirect to.
 */
ngx_int_t
ngx_http_omni_events_error_page(ngx_http_request_t *r)
{
    u_char               *p;
    const char           *error, *field, *reason;
    ngx_http_omni_ctx_t  *ctx;

    if (r->headers_out.status == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        error = "too large";
        field = "body";
        reason = "body larger than client_max_body_size";

    } else if (r->headers_out.status == NGX_HTTP_BAD_REQUEST) {
        error = "invalid";
        field = "body";
        reason = "malformed request body (chunked encoding)";

    } else {
        return NGX_OK;
    }

    if (r->headers_out.content_type.len < 9
        || ngx_strncasecmp(r->headers_out.content_type.data,
                           (u_char *) "text/html", 9) != 0)
    {
        return NGX_OK;
    }

    ctx = ngx_http_omni_get_ctx(r, 1);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, 160);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->error_body.data = p;
    ctx->error_body.len = ngx_snprintf(p, 160,
                              "{\"ok\":false,\"error\":\"%s\","
                              "\"field\":\"%s\",\"reason\":\"%s\"}",
                              error, field, reason)
                          - p;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;
    r->headers_out.content_length_n = ctx->error_body.len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    return NGX_OK;
}


/*
 * The JSON error once, in place of the HTML page's buffers: *out is the
 * chain to send on, NULL until the page's last buffer arrives.
 */
ngx_int_t
ngx_http_omni_events_error_body(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, ngx_chain_t *in, ngx_chain_t **out)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    *out = NULL;

    for ( /* void */ ; in; in = in->next) {
        in->buf->pos = in->buf->last;

        if (in->buf->in_file) {
            in->buf->file_pos = in->buf->file_last;
        }

        if (in->buf->last_buf) {
            break;
        }
    }

    if (in == NULL) {
        return NGX_OK;
    }

    b = ngx_calloc_buf(r->pool);
    cl = ngx_alloc_chain_link(r->pool);

    if (b == NULL || cl == NULL) {
        return NGX_ERROR;
    }

    b->pos = ctx->error_body.data;
    b->last = b->pos + ctx->error_body.len;
    b->memory = 1;
    b->last_buf = 1;

    cl->buf = b;
    cl->next = NULL;
    *out = cl;

    ngx_str_null(&ctx->error_body);

    return NGX_OK;
}


/* ---- upstream signals ---- */

static void
ngx_http_omni_upstream_job_done(ngx_http_omni_wjob_t *job)
{
    /* Nobody waits: the response went out already.  Free the job. */
    omni_event_batch_free(job->batch);
    ngx_free(job->status);
    ngx_free(job);
}


/*
 * Queues events nobody waits for (an upstream's X-Omni-Event header, a
 * consent cookie's change): parsed here with ec, applied by the writer.
 * A refused event is logged and skipped; NGX_ERROR only without memory.
 */
static ngx_int_t
ngx_http_omni_events_fire(ngx_http_request_t *r, omni_event_ctx_t *ec,
    u_char *text, size_t len, const char *what)
{
    size_t                      size;
    ngx_int_t                   rc;
    ngx_uint_t                  j, valid;
    omni_event_err_t            err;
    ngx_http_omni_wjob_t       *job;
    ngx_http_omni_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);

    size = sizeof(ngx_http_omni_wjob_t) + sizeof(omni_event_batch_t);
    job = ngx_alloc(size, r->connection->log);
    if (job == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(job, size);
    job->batch = (omni_event_batch_t *) (job + 1);

    if (omni_event_batch_parse(job->batch, (char *) text, len, ec, &err)
        != OMNI_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "omni: %s refused: %s: %s", what, err.field,
                      err.reason);
        ngx_free(job);
        return NGX_DECLINED;
    }

    valid = 0;

    for (j = 0; j < job->batch->n; j++) {
        if (job->batch->rc[j] == OMNI_OK) {
            job->batch->events[j].visit_timeout =
                                             (uint32_t) mcf->visit_timeout;
            valid++;

            /* the site's logout page: the browser leaves with a new id */
            if (job->batch->events[j].name_id == OMNI_EVN_SIGNED_OUT
                && ec->visitor_kind
                && ngx_http_omni_fresh_visitor(r) != NGX_OK)
            {
                omni_event_batch_free(job->batch);
                ngx_free(job);
                return NGX_ERROR;
            }

            continue;
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "omni: %s refused: %s: %s", what,
                      job->batch->errs[j].field, job->batch->errs[j].reason);
    }

    job->status = ngx_calloc(job->batch->n * (sizeof(int) + OMNI_ID_LEN),
                             r->connection->log);

    if (valid == 0 || job->status == NULL) {
        rc = job->status ? NGX_DECLINED : NGX_ERROR;
        ngx_http_omni_upstream_job_done(job);
        return rc;
    }

    job->pids = (u_char (*)[OMNI_ID_LEN]) (job->status + job->batch->n);
    job->handler = ngx_http_omni_upstream_job_done;
    job->text = text;
    job->len = len;
    job->ec = *ec;

    if (ngx_http_omni_writer_events(job, valid) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "omni: %s dropped: the event queue is full or there "
                      "is no store", what);
        ngx_http_omni_upstream_job_done(job);
    }

    return NGX_OK;
}


/*
 * The consent cookie stated something the profile does not hold yet:
 * record it as the visitor's own "Consent Updated" event, so the profile
 * keeps it and the feed tells email and ad tools downstream.
 */
ngx_int_t
ngx_http_omni_events_consent(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx,
    uint32_t consent)
{
    u_char            *text, *p;
    ngx_uint_t         k, first;
    omni_event_ctx_t   ec;

    text = ngx_pnalloc(r->pool, 256);
    if (text == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(text, "{\"type\":\"track\",\"event\":\"Consent Updated\","
                    "\"properties\":{");
    first = 1;

    for (k = 0; k < OMNI_CONSENT_NKEYS; k++) {
        if (!(consent & OMNI_CONSENT_STATED(1u << k))) {
            continue;
        }

        p = ngx_sprintf(p, "%s\"%s\":%s", first ? "" : ",",
                        omni_consent_purpose_name(k),
                        (consent & (1u << k)) ? "true" : "false");
        first = 0;
    }

    /* the feed's context.source says "consent cookie" (OMNI_SRC_COOKIE) */
    p = ngx_sprintf(p, "}}");

    ngx_memzero(&ec, sizeof(omni_event_ctx_t));
    ec.trust = OMNI_TRUST_CLIENT;
    ec.source = OMNI_SRC_COOKIE;
    ec.now = (uint32_t) ngx_time();
    ec.visitor_kind = ctx->identity == NGX_HTTP_OMNI_ID_TOKEN
                      ? OMNI_ALIAS_DEVICE : OMNI_ALIAS_COOKIE;
    ngx_memcpy(ec.visitor, ctx->vid, OMNI_ID_LEN);
    ec.channel = (unsigned) ngx_http_omni_channel(r, ctx);

    return ngx_http_omni_events_fire(r, &ec, text, p - text,
                                     "the consent cookie's event");
}


/*
 * Consumes the X-Omni-Event headers of a response: each one holds one
 * event (or a batch) as JSON, trusted as the upstream's word about the
 * visitor of this request.  The headers are removed whatever happens;
 * a malformed one is logged with its reason, never shown to the client.
 */
ngx_int_t
ngx_http_omni_events_upstream(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx)
{
    ngx_uint_t                  i;
    ngx_list_part_t            *part;
    ngx_table_elt_t            *h;
    omni_event_ctx_t            ec;

    ngx_memzero(&ec, sizeof(omni_event_ctx_t));
    ec.trust = OMNI_TRUST_SERVER;
    ec.source = OMNI_SRC_UPSTREAM;
    ec.now = (uint32_t) ngx_time();
    ec.channel = OMNI_CH_MAX;

    if (ctx && ctx->identity != NGX_HTTP_OMNI_ID_NONE) {
        ec.visitor_kind = ctx->identity == NGX_HTTP_OMNI_ID_TOKEN
                          ? OMNI_ALIAS_DEVICE : OMNI_ALIAS_COOKIE;
        ngx_memcpy(ec.visitor, ctx->vid, OMNI_ID_LEN);
        ec.channel = (unsigned) ngx_http_omni_channel(r, ctx);
    }

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0 || h[i].key.len != 12
            || ngx_strncasecmp(h[i].key.data, (u_char *) "X-Omni-Event", 12)
               != 0)
        {
            continue;
        }

        /* Consumed: the client never sees it. */
        h[i].hash = 0;

        if (ngx_http_omni_events_fire(r, &ec, h[i].value.data,
                                      h[i].value.len,
                                      "upstream header \"X-Omni-Event\"")
            == NGX_ERROR)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}
