/*
 * Configuration checks that need the whole http block: a directive may
 * depend on another that comes later in the file or in an include (an
 * "omni on" in a server block, the omni_secret after it), so the order
 * of directives and includes never matters.  The directive records where
 * it was configured; ngx_http_omni_conf_check() runs from init_main_conf,
 * after the block is read, and names that file:line.
 */

#include "ngx_http_omni_module.h"


static void
ngx_http_omni_conf_ref(ngx_conf_t *cf, ngx_http_omni_conf_ref_t *ref)
{
    ngx_str_t  *value;

    if (ref->line) {
        return;                         /* the first one is named */
    }

    value = cf->args->elts;

    ref->name = value[0];
    ref->file = cf->conf_file->file.name;
    ref->line = cf->conf_file->line;
}


/* "omni on | off": a flag that remembers where it was first turned on. */
char *
ngx_http_omni_enable(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char                       *rv;
    ngx_http_omni_loc_conf_t   *olcf = conf;
    ngx_http_omni_main_conf_t  *mcf;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);

    if (rv == NGX_CONF_OK && olcf->enable) {
        mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_omni_module);
        ngx_http_omni_conf_ref(cf, &mcf->omni_on);
    }

    return rv;
}


/* An endpoint that issues or verifies signed identities. */
void
ngx_http_omni_conf_need_secret(ngx_conf_t *cf)
{
    ngx_http_omni_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_omni_module);
    ngx_http_omni_conf_ref(cf, &mcf->signer);
}


char *
ngx_http_omni_conf_check(ngx_conf_t *cf, ngx_http_omni_main_conf_t *mcf)
{
    ngx_http_omni_conf_ref_t  *ref;

    /* Unsigned identities are never issued: no secret, no start. */
    if (mcf->secrets == 0 && (mcf->omni_on.line || mcf->signer.line)) {
        ref = mcf->omni_on.line ? &mcf->omni_on : &mcf->signer;

        if (ref == &mcf->omni_on) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"omni on\" requires at least one "
                          "\"omni_secret\" in %V:%ui", &ref->file,
                          ref->line);

        } else {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"%V\" directive requires \"omni_secret\" "
                          "in %V:%ui", &ref->name, &ref->file, ref->line);
        }

        return NGX_CONF_ERROR;
    }

    /*
     * "omni on" without a store would issue cookies and record nothing,
     * silently: every visit, every impression and frequency cap lost.
     */
    if (mcf->omni_on.line && mcf->store_path.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"omni on\" requires \"omni_store\" (where visitors' "
                      "profiles and touchpoints are kept) in %V:%ui",
                      &mcf->omni_on.file, mcf->omni_on.line);
        return NGX_CONF_ERROR;
    }

    /* omni_cluster requires omni_store (ngx_http_omni_cluster_conf.c) */
    return ngx_http_omni_cluster_conf_check(cf);
}
