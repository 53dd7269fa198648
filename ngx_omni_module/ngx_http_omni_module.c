/*
 * ngx_omni_module: directives, configuration and process lifecycle.
 *
 * Requests in locations with "omni on" are identified in the rewrite
 * phase (signed cookie or app token), their profile is looked up in the
 * LMDB store, and a touchpoint is queued for the writer task in the log
 * phase, once per request whatever internal redirects happened between.
 */

#include "ngx_http_omni_module.h"
#include "ngx_http_omni_metrics.h"


static ngx_int_t ngx_http_omni_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_omni_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_omni_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_omni_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_omni_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_omni_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_omni_token_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_omni_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_omni_init_process(ngx_cycle_t *cycle);
static void ngx_http_omni_exit_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_omni_identify_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_omni_log_handler(ngx_http_request_t *r);
static void ngx_http_omni_upstream_identity(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx);
static ngx_int_t ngx_http_omni_header_filter(ngx_http_request_t *r);
static char *ngx_http_omni_token_rejected_conf(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_omni_log_consent(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx);


static ngx_conf_enum_t  ngx_http_omni_channels[] = {
    { ngx_string("web"), OMNI_CH_WEB },
    { ngx_string("app"), OMNI_CH_APP },
    { ngx_string("email"), OMNI_CH_EMAIL },
    { ngx_string("sms"), OMNI_CH_SMS },
    { ngx_string("pos"), OMNI_CH_POS },
    { ngx_string("ads"), OMNI_CH_ADS },
    { ngx_string("call"), OMNI_CH_CALL },
    { ngx_string("other"), OMNI_CH_OTHER },
    { ngx_null_string, 0 }
};


static ngx_str_t  ngx_http_omni_json_default_types[] = {
    ngx_string("application/json"),
    ngx_null_string
};


static ngx_command_t  ngx_http_omni_commands[] = {

    { ngx_string("omni"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_omni_enable,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_omni_loc_conf_t, enable),
      NULL },

    { ngx_string("omni_secret"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_omni_secret,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_cookie"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_omni_cookie,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_token_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_omni_token_header,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_token_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_omni_loc_conf_t, token_ttl),
      NULL },

    { ngx_string("omni_token_rejected"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_omni_token_rejected_conf,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_channel"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_omni_loc_conf_t, channel),
      &ngx_http_omni_channels },

    { ngx_string("omni_store"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_omni_store,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_cluster"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_omni_cluster,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_visit_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_omni_main_conf_t, visit_timeout),
      NULL },

    { ngx_string("omni_rules"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_omni_rules,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_geoip"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_omni_geoip,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_inject"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_omni_loc_conf_t, inject),
      NULL },

    { ngx_string("omni_fallback"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_omni_loc_conf_t, fallback),
      NULL },

    { ngx_string("omni_private"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_omni_loc_conf_t, private_cache),
      NULL },

    { ngx_string("omni_types"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_types_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_omni_loc_conf_t, types_keys),
      &ngx_http_html_default_types[0] },

    { ngx_string("omni_json_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_omni_loc_conf_t, json_key),
      NULL },

    { ngx_string("omni_json_types"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_types_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_omni_loc_conf_t, json_types_keys),
      &ngx_http_omni_json_default_types[0] },

    { ngx_string("omni_consent"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_omni_consent_model,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_console"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_omni_console,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_cors"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_omni_cors,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_consent_cookie"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_omni_consent_cookie,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_decide"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_omni_decide_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_admin_decide"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_omni_admin_decide_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_feed"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_omni_feed_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_omni_metrics_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_events"),
      NGX_HTTP_LOC_CONF|NGX_CONF_ANY,
      ngx_http_omni_events_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_events_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_omni_events_key,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omni_upstream_events"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_omni_loc_conf_t, upstream_events),
      NULL },

    { ngx_string("omni_identify"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_omni_identify_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_omni_module_ctx = {
    ngx_http_omni_preconfiguration,        /* preconfiguration */
    ngx_http_omni_postconfiguration,       /* postconfiguration */

    ngx_http_omni_create_main_conf,        /* create main configuration */
    ngx_http_omni_init_main_conf,          /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_omni_create_loc_conf,         /* create location configuration */
    ngx_http_omni_merge_loc_conf           /* merge location configuration */
};


ngx_module_t  ngx_http_omni_module = {
    NGX_MODULE_V1,
    &ngx_http_omni_module_ctx,             /* module context */
    ngx_http_omni_commands,                /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_omni_init_module,             /* init module */
    ngx_http_omni_init_process,            /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_omni_exit_process,            /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


static ngx_int_t
ngx_http_omni_preconfiguration(ngx_conf_t *cf)
{
    if (ngx_http_omni_add_variables(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_omni_add_decision_variables(cf);
}


static ngx_int_t
ngx_http_omni_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    /*
     * The rewrite phase, not later: "return" answers in this phase, and
     * handlers pushed after ngx_http_rewrite_module's (a dynamic module's
     * are) run before it.  Responses finalized even earlier (a server
     * level "return", errors) are identified by the header filter.
     */
    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_omni_identify_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_omni_log_handler;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_omni_header_filter;

    if (ngx_http_omni_metrics_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_omni_filter_init(cf);
}


static void *
ngx_http_omni_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_omni_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_omni_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mcf->keyring = { 0 };
     *     mcf->secrets = 0;
     *     mcf->store_path = { 0, NULL };
     *     mcf->thread_pool_name = { 0, NULL };
     */

    mcf->map_size = NGX_CONF_UNSET_SIZE;
    mcf->map_max = NGX_CONF_UNSET_SIZE;
    mcf->max_readers = NGX_CONF_UNSET_UINT;
    mcf->queue_size = NGX_CONF_UNSET_UINT;
    mcf->activity = NGX_CONF_UNSET_UINT;
    mcf->fold = NGX_CONF_UNSET_MSEC;
    mcf->checkpoint = NGX_CONF_UNSET_MSEC;
    mcf->reader_check = NGX_CONF_UNSET_MSEC;
    mcf->visit_timeout = NGX_CONF_UNSET;
    mcf->tp_max = NGX_CONF_UNSET_UINT;
    mcf->tp_max_age = NGX_CONF_UNSET;
    mcf->anon_ttl = NGX_CONF_UNSET;

    return mcf;
}


static char *
ngx_http_omni_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_omni_main_conf_t  *mcf = conf;

    ngx_conf_init_value(mcf->visit_timeout, OMNI_VISIT_TIMEOUT_DEFAULT);

    if (mcf->visit_timeout < 60) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"omni_visit_timeout\" must be at least 60s");
        return NGX_CONF_ERROR;
    }

    /* what needs the whole http block: secret, store (any order) */
    return ngx_http_omni_conf_check(cf, mcf);
}


static void *
ngx_http_omni_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_omni_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_omni_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->cookie_name = { 0, NULL };
     *     conf->cookie_suffix = { 0, NULL };
     *     conf->cookie_set = 0;
     *     conf->token_header = { 0, NULL };
     */

    conf->enable = NGX_CONF_UNSET;
    conf->token_ttl = NGX_CONF_UNSET;
    conf->token_rejected = NGX_CONF_UNSET_UINT;
    conf->channel = NGX_CONF_UNSET;
    conf->inject = NGX_CONF_UNSET;
    conf->fallback = NGX_CONF_UNSET;
    conf->private_cache = NGX_CONF_UNSET;
    conf->events_max_body = NGX_CONF_UNSET_SIZE;
    conf->upstream_events = NGX_CONF_UNSET;
    conf->consent_model = NGX_CONF_UNSET_UINT;
    conf->consent_cookie = NGX_CONF_UNSET_PTR;
    conf->cors = NGX_CONF_UNSET_PTR;

    return conf;
}


static char *
ngx_http_omni_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_omni_loc_conf_t *prev = parent;
    ngx_http_omni_loc_conf_t *conf = child;

    ngx_uint_t                 i;
    ngx_http_core_loc_conf_t  *clcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_str_value(conf->token_header, prev->token_header,
                             "x-omni-token");
    ngx_conf_merge_sec_value(conf->token_ttl, prev->token_ttl,
                             30 * 24 * 60 * 60);
    ngx_conf_merge_value(conf->channel, prev->channel, NGX_CONF_UNSET);
    ngx_conf_merge_uint_value(conf->token_rejected, prev->token_rejected,
                              NGX_HTTP_OMNI_REJECTED_401);
    ngx_conf_merge_value(conf->inject, prev->inject, 1);
    ngx_conf_merge_value(conf->fallback, prev->fallback, 1);
    ngx_conf_merge_value(conf->private_cache, prev->private_cache, 1);
    ngx_conf_merge_value(conf->upstream_events, prev->upstream_events, 0);
    ngx_conf_merge_uint_value(conf->consent_model, prev->consent_model,
                              NGX_HTTP_OMNI_OPT_OUT);
    ngx_conf_merge_ptr_value(conf->consent_cookie, prev->consent_cookie,
                             NULL);
    ngx_conf_merge_ptr_value(conf->cors, prev->cors, NULL);

    ngx_conf_merge_str_value(conf->json_key, prev->json_key, "");

    for (i = 0; i < conf->json_key.len; i++) {
        /* The key is written into JSON as is: keep it a plain name. */
        if (conf->json_key.data[i] < 0x20 || conf->json_key.data[i] == '"'
            || conf->json_key.data[i] == '\\' || conf->json_key.data[i] >= 0x7f)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"omni_json_key\" \"%V\"",
                               &conf->json_key);
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_merge_types(cf, &conf->json_types_keys,
                             &conf->json_types_hash,
                             &prev->json_types_keys, &prev->json_types_hash,
                             ngx_http_omni_json_default_types)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_merge_types(cf, &conf->types_keys, &conf->types_hash,
                             &prev->types_keys, &prev->types_hash,
                             ngx_http_html_default_types)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_omni_merge_cookie(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->events_max_body != NGX_CONF_UNSET_SIZE) {
        /*
         * An omni_events location keeps event bodies in memory: a body
         * larger than client_body_buffer_size would go to a temporary
         * file and be read back on the event loop.  (The core module's
         * configuration is merged before ours.)
         */
        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

        if (clcf->client_body_buffer_size < conf->events_max_body) {
            clcf->client_body_buffer_size = conf->events_max_body;
        }
    }

    if (conf->console) {
        /* the console's draft rule files too, up to a rule file's size */
        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

        if (clcf->client_body_buffer_size < OMNI_RULES_MAX_FILE_SIZE) {
            clcf->client_body_buffer_size = OMNI_RULES_MAX_FILE_SIZE;
        }
    }

    return NGX_CONF_OK;
}


/* omni_token_rejected 401 | anonymous: omni_decide and a refused token */
static char *
ngx_http_omni_token_rejected_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    ngx_str_t  *value;

    if (olcf->token_rejected != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "401", 3) == 0) {
        olcf->token_rejected = NGX_HTTP_OMNI_REJECTED_401;
        return NGX_CONF_OK;
    }

    if (value[1].len == 9
        && ngx_strncmp(value[1].data, "anonymous", 9) == 0)
    {
        olcf->token_rejected = NGX_HTTP_OMNI_REJECTED_ANONYMOUS;
        return NGX_CONF_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"omni_token_rejected\" "
                       "(401 or anonymous)", &value[1]);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_omni_token_header(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_loc_conf_t *olcf = conf;

    ngx_str_t  *value;
    ngx_uint_t  i;

    if (olcf->token_header.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 0; i < value[1].len; i++) {
        if (value[1].data[i] <= ' ' || value[1].data[i] == ':'
            || value[1].data[i] >= 0x7f)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid header name \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (value[1].len == 0) {
        return "must not be empty";
    }

    olcf->token_header.len = value[1].len;
    olcf->token_header.data = ngx_pnalloc(cf->pool, value[1].len);
    if (olcf->token_header.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_strlow(olcf->token_header.data, value[1].data, value[1].len);

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_omni_init_module(ngx_cycle_t *cycle)
{
    return ngx_http_omni_store_init_module(cycle);
}


static ngx_int_t
ngx_http_omni_init_process(ngx_cycle_t *cycle)
{
    if (ngx_http_omni_metrics_init_worker(cycle) != NGX_OK
        || ngx_http_omni_store_init_worker(cycle) != NGX_OK
        || ngx_http_omni_rules_init_worker(cycle) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_omni_writer_init(cycle);
}


static void
ngx_http_omni_exit_process(ngx_cycle_t *cycle)
{
    /* Flush queued touchpoints first: the writer needs the store. */
    ngx_http_omni_writer_exit(cycle);
    ngx_http_omni_geo_exit_worker(cycle);
    ngx_http_omni_marks_exit();
    ngx_http_omni_rules_exit_worker(cycle);
    ngx_http_omni_store_exit_worker(cycle);
}


static ngx_int_t
ngx_http_omni_identify_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_http_omni_ctx_t       *ctx;
    ngx_http_omni_loc_conf_t  *olcf;

    /* a CORS preflight is answered before anybody is identified */
    rc = ngx_http_omni_cors_handler(r);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_omni_module);

    if (!olcf->enable || r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_omni_identify(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * No store read here: the decision (header filter) and the variables
     * read the profile when, and only if, they need it.
     */

    /* Only when something can be injected: an empty set injects nothing. */
    if (olcf->inject && !ctx->upstream_identity
        && (omni_rules_needs(ngx_http_omni_rules_current())
            & OMNI_NEED_INJECT)
        && r->headers_in.accept_encoding)
    {
        ngx_http_omni_upstream_identity(r, ctx);
    }

    return NGX_DECLINED;
}


/*
 * A compressed upstream body cannot be injected into, so the upstream is
 * asked for identity encoding: the Accept-Encoding header that proxy,
 * fastcgi and the others forward says "identity", while the gzip filter
 * still sees the client's own header (a copy) and compresses the injected
 * result for the client.
 */
static void
ngx_http_omni_upstream_identity(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx)
{
    ngx_table_elt_t  *h, *client;

    h = r->headers_in.accept_encoding;

    client = ngx_palloc(r->pool, sizeof(ngx_table_elt_t));
    if (client == NULL) {
        return;
    }

    *client = *h;
    r->headers_in.accept_encoding = client;

    ngx_str_set(&h->value, "identity");

    ctx->upstream_identity = 1;
}


static ngx_int_t
ngx_http_omni_log_handler(ngx_http_request_t *r)
{
    ngx_http_omni_ctx_t       *ctx;
    ngx_http_omni_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_omni_module);
    ctx = ngx_http_omni_get_ctx(r, 0);

    if (ctx == NULL || ctx->touched || ctx->pid_fixed
        || ctx->identity == NGX_HTTP_OMNI_ID_NONE)
    {
        return NGX_OK;
    }

    /*
     * An "omni on" location records every request; any other records a
     * decision it delivered (omni_decide, $omni_decision): what an app
     * was shown counts toward caps and is in the feed, whatever the
     * location's other settings.
     */
    if (!olcf->enable && !(ctx->decided && ctx->impressions)) {
        return NGX_OK;
    }

    ctx->touched = 1;

    if (ngx_http_omni_log_consent(r, ctx) != NGX_OK) {
        return NGX_OK;
    }

    (void) ngx_http_omni_writer_touch(r, ctx);

    return NGX_OK;
}


/*
 * What consent lets this request record (docs/privacy.md): with
 * analytics allowed, its touchpoint; without, only what personalization
 * needs (the impressions it showed, for caps: no touchpoint in the
 * feed), or nothing at all.  Sec-GPC or DNT: no referrer, no campaign
 * data.  A consent cookie that states something new is recorded as the
 * visitor's "Consent Updated" event.  NGX_DECLINED: record nothing.
 */
static ngx_int_t
ngx_http_omni_log_consent(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx)
{
    uint32_t  c;

    /*
     * The profile's stated consent, unless the decision read it: under
     * opt-in always; under opt-out only once some visitor refused
     * something (a meta flag, one small read), so the common request
     * reads no profile here.
     */
    if (!ctx->resolved && ctx->identity != NGX_HTTP_OMNI_ID_NEW
        && ngx_http_omni_worker_store()
        && ngx_http_omni_consent_needs_profile(r))
    {
        (void) ngx_http_omni_resolve(r, ctx);
    }

    c = ngx_http_omni_consent(r, ctx);

    /*
     * A browser's first request (a new visitor id) records no statement:
     * an event would make a profile of it, and a cookieless flood that
     * carries a CMP's cookie would fill the store (docs/privacy.md).  The
     * cookie still applies to this request; its statement is recorded
     * when the browser comes back with its visitor cookie.
     */
    if ((ctx->consent_req & OMNI_CONSENT_SET) && c != ctx->consent_stored
        && ctx->identity != NGX_HTTP_OMNI_ID_NEW && !ctx->store_error
        && !ngx_http_omni_consent_recent(ctx, ctx->consent_req))
    {
        (void) ngx_http_omni_events_consent(r, ctx, ctx->consent_req);
    }

    ctx->signal = ngx_http_omni_consent_signal(r);

    if (ngx_http_omni_consent_allows(r, ctx, OMNI_CONSENT_ANALYTICS)) {
        return NGX_OK;
    }

    if (ctx->impressions && ctx->decision && ctx->decision->campaigns.len) {
        ctx->touch_bare = 1;
        return NGX_OK;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_omni_header_filter(ngx_http_request_t *r)
{
    ngx_http_omni_ctx_t       *ctx;
    ngx_http_omni_loc_conf_t  *olcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_omni_module);

    if (olcf->events_max_body != NGX_CONF_UNSET_SIZE
        && ngx_http_omni_events_error_page(r) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (olcf->enable) {
        /* Idempotent: a no-op when the rewrite phase already ran. */
        ctx = ngx_http_omni_identify(r);

        if (ctx && ctx->identity != NGX_HTTP_OMNI_ID_NONE
            && ngx_http_omni_filter_header(r, ctx) != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else {
        ctx = ngx_http_omni_get_ctx(r, 0);
    }

    if (olcf->upstream_events
        && ngx_http_omni_events_upstream(r, ctx) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * Opt-in: a new visitor gets no identifying cookie until the consent
     * cookie grants analytics or personalization (an event it posts
     * itself, on omni_events, is a deliberate act and gets one).
     */
    if (ctx && ctx->set_cookie && ctx->identity == NGX_HTTP_OMNI_ID_NEW
        && olcf->consent_model == NGX_HTTP_OMNI_OPT_IN
        && olcf->events_max_body == NGX_CONF_UNSET_SIZE
        && !ngx_http_omni_consent_allows(r, ctx, OMNI_CONSENT_ANALYTICS)
        && !ngx_http_omni_consent_allows(r, ctx, OMNI_CONSENT_PERSONALIZE))
    {
        ctx->set_cookie = 0;
    }

    if (ctx && ctx->set_cookie) {
        if (ngx_http_omni_set_cookie(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return ngx_http_next_header_filter(r);
}
