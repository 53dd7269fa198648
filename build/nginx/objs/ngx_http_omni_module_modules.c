
#include <ngx_config.h>
#include <ngx_core.h>

extern ngx_module_t  ngx_http_omni_module;

ngx_module_t *ngx_modules[] = {
    &ngx_http_omni_module,
    NULL
};

char *ngx_module_names[] = {
    "ngx_http_omni_module",
    NULL
};

char *ngx_module_order[] = {
    "ngx_http_omni_module",
    "ngx_http_sub_filter_module",
    "ngx_http_addition_filter_module",
    "ngx_http_gunzip_filter_module",
    "ngx_http_userid_filter_module",
    "ngx_http_headers_filter_module",
    "ngx_http_copy_filter_module",
    NULL
};

