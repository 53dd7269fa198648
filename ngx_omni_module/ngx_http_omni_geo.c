/*
 * Geo facts for rules: a MaxMind DB (GeoIP2/GeoLite2 City or Country
 * layout) looked up for the request's client address.
 *
 *   - "omni_geoip PATH" opens the database at configuration time, so
 *     "nginx -t" names a missing or corrupt file with file:line, and a
 *     bad file at "nginx -s reload" keeps the old configuration (and its
 *     database) serving.  MMDB_close runs through the cycle pool cleanup.
 *   - The mapping is made once, in the master, and inherited read-only by
 *     the workers.  Nothing is stat()ed per request: a new database is
 *     picked up by "nginx -s reload", which maps the file again (the old
 *     workers keep their old mapping until they exit, so a file replaced
 *     by rename() never serves half old, half new data).
 *   - Lookups are lazy: the rules engine calls the callback at most once
 *     per decision, and only when a rule or template needs geo
 *     (omni_rules_needs()).  Only the five values the rules use are read,
 *     with MMDB_aget_value() and static paths: no allocation at all.
 *   - The client address is r->connection->sockaddr, which
 *     ngx_http_realip_module has already replaced when it is configured.
 *   - Any failure means "no geo" (geo conditions are false) and a debug
 *     line; a request never fails because of the database.
 *   - Each worker remembers the answers for the last few thousand
 *     addresses (a visitor's pages come from one address).
 */

#include <math.h>

#include <maxminddb.h>

#include "ngx_http_omni_module.h"
#include "ngx_http_omni_metrics.h"


static void ngx_http_omni_geoip_cleanup(void *data);
static ngx_int_t ngx_http_omni_geo_fill(ngx_http_request_t *r,
    omni_geo_t *out);
static ngx_int_t ngx_http_omni_geo_find(ngx_http_request_t *r,
    MMDB_entry_s *entry);
static size_t ngx_http_omni_geo_string(MMDB_entry_s *entry,
    const char *const *path, char *out, size_t cap);
static ngx_int_t ngx_http_omni_geo_double(MMDB_entry_s *entry,
    const char *const *path, double *out);
static ngx_int_t ngx_http_omni_geo_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


/* GeoIP2-City / GeoLite2-City paths (Country files have the first one). */
static const char *const  ngx_http_omni_geo_country[] =
    { "country", "iso_code", NULL };
static const char *const  ngx_http_omni_geo_region[] =
    { "subdivisions", "0", "iso_code", NULL };
static const char *const  ngx_http_omni_geo_city[] =
    { "city", "names", "en", NULL };
static const char *const  ngx_http_omni_geo_lat[] =
    { "location", "latitude", NULL };
static const char *const  ngx_http_omni_geo_lon[] =
    { "location", "longitude", NULL };


static ngx_http_variable_t  ngx_http_omni_geo_vars[] = {

    { ngx_string("omni_geo_country"), NULL, ngx_http_omni_geo_variable,
      (uintptr_t) ngx_http_omni_geo_country, 0, 0 },

    { ngx_string("omni_geo_city"), NULL, ngx_http_omni_geo_variable,
      (uintptr_t) ngx_http_omni_geo_city, 0, 0 },

      ngx_http_null_variable
};


/* omni_geoip PATH; */
char *
ngx_http_omni_geoip(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_main_conf_t *mcf = conf;

    int                   status;
    time_t                built;
    ngx_tm_t              tm;
    ngx_err_t             err;
    MMDB_s               *mmdb;
    ngx_str_t            *value;
    ngx_pool_cleanup_t   *cln;
    ngx_http_variable_t  *var, *v;

    if (mcf->geoip_path.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        return "must not be empty";
    }

    /* Relative to the configuration prefix, like ssl_certificate. */
    if (ngx_conf_full_name(cf->cycle, &value[1], 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    mmdb = ngx_pcalloc(cf->pool, sizeof(MMDB_s));
    if (mmdb == NULL) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    status = MMDB_open((char *) value[1].data, MMDB_MODE_MMAP, mmdb);

    if (status != MMDB_SUCCESS) {
        err = (status == MMDB_FILE_OPEN_ERROR || status == MMDB_IO_ERROR)
              ? ngx_errno : 0;

        ngx_conf_log_error(NGX_LOG_EMERG, cf, err,
                           "omni_geoip: cannot open \"%V\": %s",
                           &value[1], MMDB_strerror(status));
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_omni_geoip_cleanup;
    cln->data = mmdb;

    mcf->geoip_path = value[1];
    mcf->geoip = mmdb;

    built = (time_t) mmdb->metadata.build_epoch;
    ngx_gmtime(built, &tm);

    ngx_conf_log_error(NGX_LOG_INFO, cf, 0,
                       "omni_geoip: \"%V\": %s, IPv%d, built "
                       "%4d-%02d-%02d %02d:%02d:%02d UTC",
                       &value[1],
                       mmdb->metadata.database_type
                       ? mmdb->metadata.database_type : "unknown type",
                       (int) mmdb->metadata.ip_version,
                       tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                       tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);

    /* $omni_geo_country, $omni_geo_city: only with a database. */
    for (v = ngx_http_omni_geo_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_CONF_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_CONF_OK;
}


static void
ngx_http_omni_geoip_cleanup(void *data)
{
    MMDB_close(data);
}


/*
 * The database entry for the client address: NGX_OK, NGX_DECLINED (not
 * in the database, no database, not an IP client) or NGX_ERROR.
 */
static ngx_int_t
ngx_http_omni_geo_find(ngx_http_request_t *r, MMDB_entry_s *entry)
{
    int                         mmdb_error;
    struct sockaddr            *sa;
    MMDB_lookup_result_s        res;
    ngx_http_omni_main_conf_t  *mcf;
#if (NGX_HAVE_INET6)
    u_char                     *p;
    struct sockaddr_in          sin;
    struct sockaddr_in6        *sin6;
#endif

    mcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);

    if (mcf->geoip == NULL) {
        return NGX_DECLINED;
    }

    sa = r->connection->sockaddr;

    switch (sa->sa_family) {

    case AF_INET:
        break;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        /* ::ffff:a.b.c.d (a dual-stack listener): look up a.b.c.d */
        sin6 = (struct sockaddr_in6 *) sa;

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            p = sin6->sin6_addr.s6_addr;

            ngx_memzero(&sin, sizeof(struct sockaddr_in));
            sin.sin_family = AF_INET;
            ngx_memcpy(&sin.sin_addr, p + 12, 4);
            sa = (struct sockaddr *) &sin;
        }

        break;
#endif

    default:
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "omni geo: no IP client address (family %d)",
                       (int) sa->sa_family);
        return NGX_DECLINED;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "omni geo: lookup %V", &r->connection->addr_text);

    res = MMDB_lookup_sockaddr(mcf->geoip, sa, &mmdb_error);

    if (mmdb_error != MMDB_SUCCESS) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "omni geo: %V: lookup failed: %s",
                       &r->connection->addr_text, MMDB_strerror(mmdb_error));
        return NGX_ERROR;
    }

    if (!res.found_entry) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "omni geo: %V: not in the database",
                       &r->connection->addr_text);
        return NGX_DECLINED;
    }

    *entry = res.entry;

    return NGX_OK;
}


/*
 * A bounded copy of a UTF-8 string value, NUL-terminated: control
 * characters are dropped (the values reach headers and logs through the
 * variables), and a cut never splits a multi-byte character.  Returns
 * the length, 0 when the value is absent or not a string.
 */
static size_t
ngx_http_omni_geo_string(MMDB_entry_s *entry, const char *const *path,
    char *out, size_t cap)
{
    size_t              i, n, len;
    u_char              c;
    const u_char       *s;
    MMDB_entry_data_s   ed;

    out[0] = '\0';

    if (MMDB_aget_value(entry, &ed, path) != MMDB_SUCCESS
        || !ed.has_data || ed.type != MMDB_DATA_TYPE_UTF8_STRING)
    {
        return 0;
    }

    s = (const u_char *) ed.utf8_string;
    n = ed.data_size;
    len = 0;

    for (i = 0; i < n && len < cap - 1; i++) {
        c = s[i];

        if (c < 0x20 || c == 0x7f) {
            continue;
        }

        out[len++] = (char) c;
    }

    if (i < n) {
        /* truncated: drop a partial multi-byte character at the end */
        while (len > 0 && ((u_char) out[len - 1] & 0xc0) == 0x80) {
            len--;
        }

        if (len > 0 && ((u_char) out[len - 1] & 0x80)) {
            len--;
        }
    }

    out[len] = '\0';

    return len;
}


static ngx_int_t
ngx_http_omni_geo_double(MMDB_entry_s *entry, const char *const *path,
    double *out)
{
    MMDB_entry_data_s  ed;

    if (MMDB_aget_value(entry, &ed, path) != MMDB_SUCCESS || !ed.has_data) {
        return NGX_DECLINED;
    }

    switch (ed.type) {
    case MMDB_DATA_TYPE_DOUBLE:
        *out = ed.double_value;
        break;
    case MMDB_DATA_TYPE_FLOAT:
        *out = (double) ed.float_value;
        break;
    default:
        return NGX_DECLINED;
    }

    return isfinite(*out) ? NGX_OK : NGX_DECLINED;
}


/*
 * A per-worker cache of what the database says about an address: a
 * visitor's pages come from one address, and a lookup with its five
 * field walks costs far more than a cache probe.  Two ways per set (the
 * older of the two goes): direct-mapped, two addresses in one slot
 * evicted each other on every visit (245 misses of each 2,000 requests
 * from 2,000 addresses, 10,000 instructions each).  Keyed by the address
 * bytes, and tied to the database it was filled from (a reload in a
 * single-process nginx opens a new one).
 */

/* 16384 addresses (4 MB a worker): the bench's 10,000 visitors fit */
#define NGX_HTTP_OMNI_GEO_CACHE  16384              /* a power of two */

typedef struct {
    u_char          addr[16];
    u_char          len;                /* 0: empty; 4 or 16 */
    u_char          found;
    u_char          recent;             /* the set's last used */
    omni_geo_t      geo;
} ngx_http_omni_geo_slot_t;

static ngx_http_omni_geo_slot_t  *ngx_http_omni_geo_cache;
static struct MMDB_s             *ngx_http_omni_geo_cache_db;


static ngx_http_omni_geo_slot_t *
ngx_http_omni_geo_set(ngx_http_request_t *r, u_char *addr, size_t *len)
{
    uint32_t                    h;
    struct sockaddr            *sa;
    ngx_http_omni_main_conf_t  *mcf;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6        *sin6;
#endif

    mcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    sa = r->connection->sockaddr;

    switch (sa->sa_family) {

    case AF_INET:
        ngx_memcpy(addr, &((struct sockaddr_in *) sa)->sin_addr, 4);
        *len = 4;
        break;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            ngx_memcpy(addr, sin6->sin6_addr.s6_addr + 12, 4);
            *len = 4;

        } else {
            ngx_memcpy(addr, sin6->sin6_addr.s6_addr, 16);
            *len = 16;
        }

        break;
#endif

    default:
        return NULL;
    }

    if (ngx_http_omni_geo_cache == NULL
        || ngx_http_omni_geo_cache_db != mcf->geoip)
    {
        if (ngx_http_omni_geo_cache == NULL) {
            ngx_http_omni_geo_cache = ngx_alloc(NGX_HTTP_OMNI_GEO_CACHE
                                          * sizeof(ngx_http_omni_geo_slot_t),
                                          r->connection->log);
            if (ngx_http_omni_geo_cache == NULL) {
                return NULL;
            }
        }

        /* empty slots have len 0 */
        ngx_memzero(ngx_http_omni_geo_cache,
                    NGX_HTTP_OMNI_GEO_CACHE
                    * sizeof(ngx_http_omni_geo_slot_t));
        ngx_http_omni_geo_cache_db = mcf->geoip;
    }

    h = ngx_crc32_short(addr, *len);

    /* the set: two slots side by side */
    return &ngx_http_omni_geo_cache[(h & (NGX_HTTP_OMNI_GEO_CACHE / 2 - 1))
                                    * 2];
}


void
ngx_http_omni_geo_exit_worker(ngx_cycle_t *cycle)
{
    ngx_free(ngx_http_omni_geo_cache);
    ngx_http_omni_geo_cache = NULL;
    ngx_http_omni_geo_cache_db = NULL;
}


/* The omni_geo_pt callback: data is the request. */
int
ngx_http_omni_geo_lookup(void *data, omni_geo_t *out)
{
    ngx_http_request_t *r = data;

    int                        rc;
    size_t                     len;
    u_char                     addr[16];
    ngx_uint_t                 i;
    ngx_http_omni_geo_slot_t  *set, *slot;

    len = 0;
    set = ngx_http_omni_geo_set(r, addr, &len);

    for (i = 0; set != NULL && i < 2; i++) {
        slot = &set[i];

        if (slot->len != len || ngx_memcmp(slot->addr, addr, len) != 0) {
            continue;
        }

        slot->recent = 1;
        set[i ^ 1].recent = 0;

        ngx_http_omni_metrics_geo(slot->found);

        if (!slot->found) {
            return OMNI_NOTFOUND;
        }

        *out = slot->geo;
        return OMNI_OK;
    }

    rc = ngx_http_omni_geo_fill(r, out);

    /* A failed lookup (not "not found") is not remembered. */
    if (set && rc != NGX_ERROR) {
        /* an empty way, else the one used less recently */
        i = set[0].len == 0 ? 0
            : set[1].len == 0 ? 1
            : set[0].recent ? 1 : 0;

        slot = &set[i];
        slot->recent = 1;
        set[i ^ 1].recent = 0;

        ngx_memcpy(slot->addr, addr, len);
        slot->len = (u_char) len;
        slot->found = (rc == NGX_OK);

        if (rc == NGX_OK) {
            slot->geo = *out;
        }
    }

    ngx_http_omni_metrics_geo(rc == NGX_OK);

    return rc == NGX_OK ? OMNI_OK : OMNI_NOTFOUND;
}


/* The database's answer for the request's address, into out. */
static ngx_int_t
ngx_http_omni_geo_fill(ngx_http_request_t *r, omni_geo_t *out)
{
    double         lat, lon;
    ngx_int_t      rc;
    MMDB_entry_s   entry;

    rc = ngx_http_omni_geo_find(r, &entry);
    if (rc != NGX_OK) {
        return rc;
    }

    (void) ngx_http_omni_geo_string(&entry, ngx_http_omni_geo_country,
                                    out->country, sizeof(out->country));
    (void) ngx_http_omni_geo_string(&entry, ngx_http_omni_geo_region,
                                    out->region, sizeof(out->region));
    (void) ngx_http_omni_geo_string(&entry, ngx_http_omni_geo_city,
                                    out->city, sizeof(out->city));

    out->has_location = 0;

    if (ngx_http_omni_geo_double(&entry, ngx_http_omni_geo_lat, &lat)
        == NGX_OK
        && ngx_http_omni_geo_double(&entry, ngx_http_omni_geo_lon, &lon)
           == NGX_OK
        && lat >= -90.0 && lat <= 90.0 && lon >= -180.0 && lon <= 180.0)
    {
        out->lat = lat;
        out->lon = lon;
        out->has_location = 1;
    }

    ngx_log_debug6(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "omni geo: %V: country \"%s\" region \"%s\" "
                   "city \"%s\" location %.4f,%.4f",
                   &r->connection->addr_text, out->country, out->region,
                   out->city, out->has_location ? out->lat : 0.0,
                   out->has_location ? out->lon : 0.0);

    return NGX_OK;
}


/* $omni_geo_country, $omni_geo_city: one field, one lookup. */
static ngx_int_t
ngx_http_omni_geo_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    size_t         len;
    u_char        *p;
    MMDB_entry_s   entry;
    char           buf[128];

    v->not_found = 1;

    if (ngx_http_omni_geo_find(r, &entry) != NGX_OK) {
        return NGX_OK;
    }

    len = ngx_http_omni_geo_string(&entry, (const char *const *) data, buf,
                                   sizeof(buf));
    if (len == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, buf, len);

    v->data = p;
    v->len = len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}
