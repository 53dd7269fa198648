/*
 * The omni_cluster directive (issue 13, docs/cluster.md):
 *
 *   omni_cluster URL[,URL...] node=ID [stream=NAME] [creds=FILE]
 *       [nkey=FILE] [tls_ca=FILE] [tls_cert=FILE] [tls_key=FILE]
 *       [replicas=N] [max_age=TIME] [max_bytes=SIZE] [timeout=TIME]
 *       [flush=TIME] [compress=on|off];
 *
 * Everything is checked here, at nginx -t, and nothing connects: URLs
 * (nats:// or tls://, a host and a port, no credentials, no duplicates,
 * not both schemes), names, numbers, and the files (readable; a creds
 * file with a user JWT and seed, an nkey file with a user seed whose
 * public key is derived here, certificates and a key that OpenSSL reads
 * and that match).  Each error names the parameter and the file:line.
 */

#include "ngx_http_omni_module.h"
#include "ngx_http_omni_cluster.h"
#include "omni_nkey.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>


#define NGX_HTTP_OMNI_CLUSTER_FILE_MAX  (1024 * 1024)


static ngx_int_t ngx_http_omni_cluster_urls(ngx_conf_t *cf,
    ngx_http_omni_cluster_conf_t *ccf, ngx_str_t *arg, ngx_uint_t *schemes);
static ngx_int_t ngx_http_omni_cluster_name(ngx_conf_t *cf,
    const char *param, ngx_str_t *value, ngx_str_t *name);
static ngx_int_t ngx_http_omni_cluster_path(ngx_conf_t *cf,
    const char *param, ngx_str_t *value, ngx_str_t *path);
static ngx_int_t ngx_http_omni_cluster_read(ngx_conf_t *cf,
    const char *param, ngx_str_t *path, ngx_str_t *text);
static ngx_int_t ngx_http_omni_cluster_files(ngx_conf_t *cf,
    ngx_http_omni_cluster_conf_t *ccf);
static void ngx_http_omni_cluster_ssl_error(ngx_conf_t *cf,
    const char *param, ngx_str_t *path, const char *what);


#define NGX_HTTP_OMNI_SCHEME_NATS  1
#define NGX_HTTP_OMNI_SCHEME_TLS   2


char *
ngx_http_omni_cluster(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_main_conf_t *mcf = conf;

    u_char                        *p;
    size_t                         len;
    ngx_int_t                      n;
    ngx_str_t                     *value, v, *s, *f;
    ngx_uint_t                     i, k, schemes, seen_urls;
    ngx_http_omni_cluster_conf_t  *ccf;

    static const struct {
        ngx_str_t                  name;
        size_t                     offset;
    } files[] = {
        { ngx_string("creds"),
          offsetof(ngx_http_omni_cluster_conf_t, creds) },
        { ngx_string("nkey"),
          offsetof(ngx_http_omni_cluster_conf_t, nkey) },
        { ngx_string("tls_ca"),
          offsetof(ngx_http_omni_cluster_conf_t, tls_ca) },
        { ngx_string("tls_cert"),
          offsetof(ngx_http_omni_cluster_conf_t, tls_cert) },
        { ngx_string("tls_key"),
          offsetof(ngx_http_omni_cluster_conf_t, tls_key) },
    };

    if (mcf->cluster != NULL) {
        return "is duplicate";
    }

    ccf = ngx_pcalloc(cf->pool, sizeof(ngx_http_omni_cluster_conf_t));
    if (ccf == NULL) {
        return NGX_CONF_ERROR;
    }

    ccf->servers = ngx_array_create(cf->pool, 3, sizeof(ngx_str_t));
    if (ccf->servers == NULL) {
        return NGX_CONF_ERROR;
    }

    ccf->replicas = NGX_CONF_UNSET_UINT;
    ccf->max_age = NGX_CONF_UNSET;
    ccf->max_bytes = NGX_CONF_UNSET;
    ccf->timeout = NGX_CONF_UNSET_MSEC;
    ccf->compress = NGX_CONF_UNSET;
    ccf->flush = NGX_CONF_UNSET_MSEC;
    ccf->file = cf->conf_file->file.name;
    ccf->line = cf->conf_file->line;

    value = cf->args->elts;
    schemes = 0;
    seen_urls = 0;

#define ngx_http_omni_param(name)                                            \
    (value[i].len >= sizeof(name) - 1                                        \
     && ngx_strncmp(value[i].data, name, sizeof(name) - 1) == 0              \
     && (v.data = value[i].data + sizeof(name) - 1,                          \
         v.len = value[i].len - (sizeof(name) - 1), 1))

#define ngx_http_omni_once(field, unset, name)                               \
    if ((field) != (unset)) {                                                \
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid \"omni_cluster\" " \
                           "parameter \"%V\": " name " is given twice",      \
                           &value[i]);                                       \
        return NGX_CONF_ERROR;                                               \
    }

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strlchr(value[i].data, value[i].data + value[i].len, '=')
            == NULL)
        {
            if (ngx_strnstr(value[i].data, "://", value[i].len) == NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"omni_cluster\" parameter "
                                   "\"%V\": neither a URL (nats://host:port "
                                   "or tls://host:port) nor name=value",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            if (ngx_http_omni_cluster_urls(cf, ccf, &value[i], &schemes)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            seen_urls = 1;
            continue;
        }

        if (ngx_http_omni_param("node=")) {
            ngx_http_omni_once(ccf->node.data, NULL, "node=");
            if (ngx_http_omni_cluster_name(cf, "node", &v, &ccf->node)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }
            continue;
        }

        if (ngx_http_omni_param("stream=")) {
            ngx_http_omni_once(ccf->stream.data, NULL, "stream=");
            if (ngx_http_omni_cluster_name(cf, "stream", &v, &ccf->stream)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }
            continue;
        }

        /* the file parameters: each once, each a readable file */
        for (k = 0; k < sizeof(files) / sizeof(files[0]); k++) {
            f = (ngx_str_t *) ((u_char *) ccf + files[k].offset);

            if (value[i].len <= files[k].name.len
                || ngx_strncmp(value[i].data, files[k].name.data,
                               files[k].name.len) != 0
                || value[i].data[files[k].name.len] != '=')
            {
                continue;
            }

            if (f->data != NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"omni_cluster\" parameter "
                                   "\"%V\": %V= is given twice", &value[i],
                                   &files[k].name);
                return NGX_CONF_ERROR;
            }

            v.data = value[i].data + files[k].name.len + 1;
            v.len = value[i].len - files[k].name.len - 1;

            if (ngx_http_omni_cluster_path(cf, (char *) files[k].name.data,
                                           &v, f)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            break;
        }

        if (k < sizeof(files) / sizeof(files[0])) {
            continue;
        }

        if (ngx_http_omni_param("replicas=")) {
            ngx_http_omni_once(ccf->replicas, NGX_CONF_UNSET_UINT,
                               "replicas=");
            n = ngx_atoi(v.data, v.len);
            if (n < 1 || n > 5) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"omni_cluster\" parameter "
                                   "\"%V\": replicas must be 1 to 5 (JetStream's "
                                   "limit; 3 on a 3-server cluster)",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }
            ccf->replicas = n;
            continue;
        }

        if (ngx_http_omni_param("max_age=")) {
            ngx_http_omni_once(ccf->max_age, NGX_CONF_UNSET, "max_age=");
            ccf->max_age = ngx_parse_time(&v, 1);
            if (ccf->max_age == (time_t) NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"omni_cluster\" parameter "
                                   "\"%V\": max_age must be a time (7d, "
                                   "12h, ...; 0: no limit)", &value[i]);
                return NGX_CONF_ERROR;
            }
            continue;
        }

        if (ngx_http_omni_param("max_bytes=")) {
            ngx_http_omni_once(ccf->max_bytes, NGX_CONF_UNSET, "max_bytes=");
            ccf->max_bytes = ngx_parse_offset(&v);
            if (ccf->max_bytes == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"omni_cluster\" parameter "
                                   "\"%V\": max_bytes must be a size (1g, "
                                   "500m, ...; 0: no limit)", &value[i]);
                return NGX_CONF_ERROR;
            }
            if (ccf->max_bytes != 0 && ccf->max_bytes < 1024 * 1024) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"omni_cluster\" parameter "
                                   "\"%V\": max_bytes must be at least 1m "
                                   "(or 0: no limit)", &value[i]);
                return NGX_CONF_ERROR;
            }
            continue;
        }

        if (ngx_http_omni_param("timeout=")) {
            ngx_http_omni_once(ccf->timeout, NGX_CONF_UNSET_MSEC, "timeout=");
            ccf->timeout = ngx_parse_time(&v, 0);
            if (ccf->timeout == (ngx_msec_t) NGX_ERROR || ccf->timeout == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"omni_cluster\" parameter "
                                   "\"%V\": timeout must be a time above "
                                   "zero (2s, 500ms, ...)", &value[i]);
                return NGX_CONF_ERROR;
            }
            continue;
        }

        if (ngx_http_omni_param("flush=")) {
            ngx_http_omni_once(ccf->flush, NGX_CONF_UNSET_MSEC, "flush=");
            ccf->flush = ngx_parse_time(&v, 0);
            if (ccf->flush == (ngx_msec_t) NGX_ERROR || ccf->flush > 10000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"omni_cluster\" parameter "
                                   "\"%V\": flush must be a time from 0 "
                                   "to 10s (100ms, 25ms, ...)", &value[i]);
                return NGX_CONF_ERROR;
            }
            continue;
        }

        if (ngx_http_omni_param("compress=")) {
            ngx_http_omni_once(ccf->compress, NGX_CONF_UNSET, "compress=");
            if (v.len == 2 && ngx_strncmp(v.data, "on", 2) == 0) {
                ccf->compress = 1;
            } else if (v.len == 3 && ngx_strncmp(v.data, "off", 3) == 0) {
                ccf->compress = 0;
            } else {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"omni_cluster\" parameter "
                                   "\"%V\": compress must be \"on\" or "
                                   "\"off\"", &value[i]);
                return NGX_CONF_ERROR;
            }
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"omni_cluster\" parameter \"%V\": "
                           "unknown (node=, stream=, creds=, nkey=, "
                           "tls_ca=, tls_cert=, tls_key=, replicas=, "
                           "max_age=, max_bytes=, timeout=, flush=, compress=)",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

#undef ngx_http_omni_param
#undef ngx_http_omni_once

    if (!seen_urls) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"omni_cluster\": no NATS server URL "
                           "(nats://host:port[,nats://host:port...])");
        return NGX_CONF_ERROR;
    }

    if (ccf->node.data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"omni_cluster\": node= is required "
                           "(this nginx's name in the cluster, unique, "
                           "[A-Za-z0-9_-], at most %d characters)",
                           NGX_HTTP_OMNI_CLUSTER_NAME_MAX);
        return NGX_CONF_ERROR;
    }

    if (schemes == (NGX_HTTP_OMNI_SCHEME_NATS | NGX_HTTP_OMNI_SCHEME_TLS)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"omni_cluster\" URLs: nats:// and "
                           "tls:// mixed; TLS is for every connection or "
                           "none");
        return NGX_CONF_ERROR;
    }

    if (ccf->creds.len && ccf->nkey.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"omni_cluster\" parameters creds= and "
                           "nkey=: one or the other (a creds file holds "
                           "its own nkey seed)");
        return NGX_CONF_ERROR;
    }

    if ((ccf->tls_cert.len == 0) != (ccf->tls_key.len == 0)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"omni_cluster\" parameter %s= without "
                           "%s=: a client certificate needs its key",
                           ccf->tls_cert.len ? "tls_cert" : "tls_key",
                           ccf->tls_cert.len ? "tls_key" : "tls_cert");
        return NGX_CONF_ERROR;
    }

    ccf->tls = (schemes & NGX_HTTP_OMNI_SCHEME_TLS)
               || ccf->tls_ca.len || ccf->tls_cert.len;

    if (ccf->stream.data == NULL) {
        ngx_str_set(&ccf->stream, "OMNI");
    }

    ngx_conf_init_uint_value(ccf->replicas, 3);
    ngx_conf_init_value(ccf->max_age, 7 * 24 * 60 * 60);
    ngx_conf_init_value(ccf->max_bytes, (off_t) 1024 * 1024 * 1024);
    ngx_conf_init_msec_value(ccf->timeout, 2000);
    ngx_conf_init_value(ccf->compress, 1);
    ngx_conf_init_msec_value(ccf->flush, 50);

    if (ngx_http_omni_cluster_files(cf, ccf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* urls: the servers joined with "," */
    len = 0;
    s = ccf->servers->elts;
    for (i = 0; i < ccf->servers->nelts; i++) {
        len += s[i].len + 1;
    }

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ccf->urls.data = p;
    for (i = 0; i < ccf->servers->nelts; i++) {
        if (i) {
            *p++ = ',';
        }
        p = ngx_cpymem(p, s[i].data, s[i].len);
    }
    *p = '\0';
    ccf->urls.len = p - ccf->urls.data;

    ccf->server_urls = ngx_palloc(cf->pool,
                                  ccf->servers->nelts * sizeof(char *));
    if (ccf->server_urls == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < ccf->servers->nelts; i++) {
        ccf->server_urls[i] = (const char *) s[i].data;
    }

    mcf->cluster = ccf;

    return NGX_CONF_OK;
}


/* One argument of comma-separated URLs, appended to ccf->servers. */
static ngx_int_t
ngx_http_omni_cluster_urls(ngx_conf_t *cf, ngx_http_omni_cluster_conf_t *ccf,
    ngx_str_t *arg, ngx_uint_t *schemes)
{
    u_char      *p, *end, *item, *host, *host_end, *port, *q;
    size_t       slen;
    ngx_int_t    n;
    ngx_str_t    url, *s;
    ngx_uint_t   i, scheme;

    p = arg->data;
    end = arg->data + arg->len;

    for ( ;; ) {
        item = p;
        while (p < end && *p != ',') {
            p++;
        }

        url.data = item;
        url.len = p - item;

        if (url.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"omni_cluster\" URL list \"%V\": "
                               "an empty item", arg);
            return NGX_ERROR;
        }

        if (url.len > 7 && ngx_strncasecmp(url.data, (u_char *) "nats://", 7)
                           == 0)
        {
            scheme = NGX_HTTP_OMNI_SCHEME_NATS;
            slen = 7;

        } else if (url.len > 6
                   && ngx_strncasecmp(url.data, (u_char *) "tls://", 6) == 0)
        {
            scheme = NGX_HTTP_OMNI_SCHEME_TLS;
            slen = 6;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"omni_cluster\" URL \"%V\": the "
                               "scheme must be nats:// or tls://", &url);
            return NGX_ERROR;
        }

        host = url.data + slen;
        q = url.data + url.len;

        if (ngx_strlchr(host, q, '@') != NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"omni_cluster\" URL \"%V\": no "
                               "user or password in a URL (they would be "
                               "logged); use creds= or nkey=", &url);
            return NGX_ERROR;
        }

        if (*host == '[') {
            host_end = ngx_strlchr(host, q, ']');
            if (host_end == NULL || host_end == host + 1) {
                goto bad_host;
            }
            for (p = host + 1; p < host_end; p++) {
                if (!(isxdigit(*p) || *p == ':' || *p == '.')) {
                    goto bad_host;
                }
            }
            host_end++;

        } else {
            for (host_end = host; host_end < q; host_end++) {
                if (!(isalnum(*host_end) || *host_end == '.'
                      || *host_end == '-' || *host_end == '_'))
                {
                    break;
                }
            }
            if (host_end == host) {
                goto bad_host;
            }
        }

        if (host_end == q || *host_end != ':') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"omni_cluster\" URL \"%V\": "
                               "%s", &url,
                               host_end == q ? "no port (nats://host:4222)"
                                             : "a host name then a port, "
                                               "nothing else "
                                               "(nats://host:4222)");
            return NGX_ERROR;
        }

        port = host_end + 1;
        n = ngx_atoi(port, q - port);
        if (n < 1 || n > 65535) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"omni_cluster\" URL \"%V\": the "
                               "port must be 1 to 65535, nothing after it",
                               &url);
            return NGX_ERROR;
        }

        /* the same host:port twice (host names compared caselessly) */
        s = ccf->servers->elts;
        for (i = 0; i < ccf->servers->nelts; i++) {
            u_char  *o = (u_char *) ngx_strstr(s[i].data, "://") + 3;
            size_t   olen = s[i].len - (o - s[i].data);

            if (olen == (size_t) (q - host)
                && ngx_strncasecmp(o, host, olen) == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"omni_cluster\" URL \"%V\": "
                                   "given twice", &url);
                return NGX_ERROR;
            }
        }

        s = ngx_array_push(ccf->servers);
        if (s == NULL) {
            return NGX_ERROR;
        }

        /* "nats://" or "tls://" in lower case, then host:port as given */
        s->len = (scheme == NGX_HTTP_OMNI_SCHEME_TLS ? 6 : 7)
                 + (q - host);
        s->data = ngx_pnalloc(cf->pool, s->len + 1);
        if (s->data == NULL) {
            return NGX_ERROR;
        }

        q = ngx_cpymem(s->data,
                       scheme == NGX_HTTP_OMNI_SCHEME_TLS ? "tls://"
                                                          : "nats://",
                       scheme == NGX_HTTP_OMNI_SCHEME_TLS ? 6 : 7);
        q = ngx_cpymem(q, host, url.data + url.len - host);
        *q = '\0';

        *schemes |= scheme;

        p = url.data + url.len;
        if (p == end) {
            return NGX_OK;
        }
        p++;                                    /* the comma */

        if (p == end) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"omni_cluster\" URL list \"%V\": "
                               "an empty item", arg);
            return NGX_ERROR;
        }
    }

bad_host:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid \"omni_cluster\" URL \"%V\": no host "
                       "(nats://host:4222, tls://host:4222, "
                       "nats://[::1]:4222)", &url);
    return NGX_ERROR;
}


/* node= and stream=: [A-Za-z0-9_-]{1,32}, copied NUL-terminated */
static ngx_int_t
ngx_http_omni_cluster_name(ngx_conf_t *cf, const char *param,
    ngx_str_t *value, ngx_str_t *name)
{
    ngx_uint_t  i;

    if (value->len == 0 || value->len > NGX_HTTP_OMNI_CLUSTER_NAME_MAX) {
        goto invalid;
    }

    for (i = 0; i < value->len; i++) {
        if (!(isalnum(value->data[i]) || value->data[i] == '_'
              || value->data[i] == '-'))
        {
            goto invalid;
        }
    }

    name->len = value->len;
    name->data = ngx_pnalloc(cf->pool, value->len + 1);
    if (name->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(name->data, value->data, value->len);
    name->data[name->len] = '\0';

    return NGX_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid \"omni_cluster\" parameter \"%s=%V\": "
                       "%s must be 1 to %d of A-Z, a-z, 0-9, '_' and '-'",
                       param, value, param, NGX_HTTP_OMNI_CLUSTER_NAME_MAX);
    return NGX_ERROR;
}


/* A file parameter: resolved against the conf prefix, NUL-terminated. */
static ngx_int_t
ngx_http_omni_cluster_path(ngx_conf_t *cf, const char *param,
    ngx_str_t *value, ngx_str_t *path)
{
    ngx_str_t  name;

    if (value->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"omni_cluster\" parameter \"%s=\": "
                           "no file", param);
        return NGX_ERROR;
    }

    name.len = value->len;
    name.data = ngx_pnalloc(cf->pool, value->len + 1);
    if (name.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(name.data, value->data, value->len);
    name.data[name.len] = '\0';

    /* ngx_get_full_name() copies the NUL too */
    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    *path = name;
    return NGX_OK;
}


/* Reads a whole (small) file into the conf pool, NUL-terminated. */
static ngx_int_t
ngx_http_omni_cluster_read(ngx_conf_t *cf, const char *param,
    ngx_str_t *path, ngx_str_t *text)
{
    ssize_t          n;
    ngx_fd_t         fd;
    ngx_err_t        err;
    ngx_file_info_t  fi;

    fd = ngx_open_file(path->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;
        ngx_conf_log_error(NGX_LOG_EMERG, cf, err,
                           "invalid \"omni_cluster\" parameter %s=: cannot "
                           "read \"%V\"", param, path);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR || !ngx_is_file(&fi)
        || ngx_file_size(&fi) == 0
        || ngx_file_size(&fi) > NGX_HTTP_OMNI_CLUSTER_FILE_MAX)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"omni_cluster\" parameter %s=: \"%V\" "
                           "is not a regular file of 1 byte to 1 MB",
                           param, path);
        ngx_close_file(fd);
        return NGX_ERROR;
    }

    text->len = (size_t) ngx_file_size(&fi);
    text->data = ngx_pnalloc(cf->temp_pool, text->len + 1);
    if (text->data == NULL) {
        ngx_close_file(fd);
        return NGX_ERROR;
    }

    n = ngx_read_fd(fd, text->data, text->len);
    err = ngx_errno;
    ngx_close_file(fd);

    if (n != (ssize_t) text->len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, n == -1 ? err : 0,
                           "invalid \"omni_cluster\" parameter %s=: cannot "
                           "read \"%V\"", param, path);
        return NGX_ERROR;
    }

    text->data[text->len] = '\0';
    return NGX_OK;
}


static ngx_int_t
ngx_http_omni_cluster_files(ngx_conf_t *cf, ngx_http_omni_cluster_conf_t *ccf)
{
    int         rc;
    BIO        *bio;
    X509       *cert;
    EVP_PKEY   *key;
    ngx_str_t   text;
    char        pub[OMNI_NKEY_PUBLIC_LEN + 1], err[256];

    if (ccf->creds.len) {
        if (ngx_http_omni_cluster_read(cf, "creds", &ccf->creds, &text)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ngx_strstr(text.data, "BEGIN NATS USER JWT") == NULL
            || ngx_strstr(text.data, "NKEY SEED") == NULL)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"omni_cluster\" parameter creds=: "
                               "\"%V\" is not a NATS credentials file (a "
                               "user JWT and its nkey seed, as nsc "
                               "generate creds writes)", &ccf->creds);
            return NGX_ERROR;
        }

        ngx_explicit_memzero(text.data, text.len);
    }

    if (ccf->nkey.len) {
        if (ngx_http_omni_cluster_read(cf, "nkey", &ccf->nkey, &text)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        rc = omni_nkey_public_from_seed((char *) text.data, text.len, pub,
                                        err, sizeof(err));
        ngx_explicit_memzero(text.data, text.len);

        if (rc != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"omni_cluster\" parameter nkey=: "
                               "\"%V\": %s", &ccf->nkey, err);
            return NGX_ERROR;
        }

        ccf->nkey_public.len = OMNI_NKEY_PUBLIC_LEN;
        ccf->nkey_public.data = ngx_pnalloc(cf->pool,
                                            OMNI_NKEY_PUBLIC_LEN + 1);
        if (ccf->nkey_public.data == NULL) {
            return NGX_ERROR;
        }
        ngx_memcpy(ccf->nkey_public.data, pub, OMNI_NKEY_PUBLIC_LEN + 1);
    }

    if (ccf->tls_ca.len) {
        if (ngx_http_omni_cluster_read(cf, "tls_ca", &ccf->tls_ca, &text)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        bio = BIO_new_mem_buf(text.data, (int) text.len);
        cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);

        if (cert == NULL) {
            ngx_http_omni_cluster_ssl_error(cf, "tls_ca", &ccf->tls_ca,
                                            "no PEM certificate");
            return NGX_ERROR;
        }
        X509_free(cert);
    }

    if (ccf->tls_cert.len) {
        if (ngx_http_omni_cluster_read(cf, "tls_cert", &ccf->tls_cert, &text)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        bio = BIO_new_mem_buf(text.data, (int) text.len);
        cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);

        if (cert == NULL) {
            ngx_http_omni_cluster_ssl_error(cf, "tls_cert", &ccf->tls_cert,
                                            "no PEM certificate");
            return NGX_ERROR;
        }

        if (ngx_http_omni_cluster_read(cf, "tls_key", &ccf->tls_key, &text)
            != NGX_OK)
        {
            X509_free(cert);
            return NGX_ERROR;
        }

        bio = BIO_new_mem_buf(text.data, (int) text.len);
        key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        ngx_explicit_memzero(text.data, text.len);

        if (key == NULL) {
            X509_free(cert);
            ngx_http_omni_cluster_ssl_error(cf, "tls_key", &ccf->tls_key,
                                            "no unencrypted PEM private key");
            return NGX_ERROR;
        }

        rc = X509_check_private_key(cert, key);
        X509_free(cert);
        EVP_PKEY_free(key);

        if (rc != 1) {
            ERR_clear_error();
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"omni_cluster\" parameter tls_key=: "
                               "\"%V\" is not the key of tls_cert= \"%V\"",
                               &ccf->tls_key, &ccf->tls_cert);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_omni_cluster_ssl_error(ngx_conf_t *cf, const char *param,
    ngx_str_t *path, const char *what)
{
    ERR_clear_error();
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid \"omni_cluster\" parameter %s=: \"%V\": %s",
                       param, path, what);
}


char *
ngx_http_omni_cluster_conf_check(ngx_conf_t *cf)
{
    ngx_http_omni_main_conf_t     *mcf;
    ngx_http_omni_cluster_conf_t  *ccf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_omni_module);
    ccf = mcf->cluster;

    if (ccf == NULL) {
        return NGX_CONF_OK;
    }

    /* the stream is applied to the local store: a node needs one */
    if (mcf->store_path.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"omni_cluster\" requires \"omni_store\" (each "
                      "node's local copy of the stream) in %V:%ui",
                      &ccf->file, ccf->line);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


ngx_http_omni_cluster_conf_t *
ngx_http_omni_cluster_conf(ngx_cycle_t *cycle)
{
    ngx_http_omni_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_omni_module);

    return mcf ? mcf->cluster : NULL;
}
