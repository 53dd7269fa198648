/*
 * Marketer rules inside nginx.
 *
 * "omni_rules DIR" compiles every rule file at configuration time, so
 * "nginx -t" fails with file:line:column on any invalid rule, and a bad
 * file at "nginx -s reload" keeps the old configuration serving (nginx's
 * own rollback).  Marketers also just drop files: each worker re-checks
 * the directory on a timer, off the event loop in a thread-pool task that
 * stats the files and, when something changed, compiles the new set.  A
 * file that does not compile keeps its last good version serving (or is
 * left out, if it never compiled) while the other files' changes go
 * live; only an error between files (a duplicate rule id, ...) keeps
 * the whole previous set.  Errors are logged once per change, and shown
 * by the console and the metrics (ngx_http_omni_rules_failure()).  The
 * request path only reads the current compiled set: no stat, no JSON.
 */

#include <dirent.h>
#include <sys/stat.h>

#include "ngx_http_omni_module.h"
#include "ngx_http_omni_metrics.h"


typedef struct {
    char                 dir[NGX_MAX_PATH];
    uint64_t             last_sig;      /* signature of the set serving */
    uint64_t             skip_sig;      /* a change already found broken */
    uint64_t             sig;           /* out: what the task saw */
    int                  rc;            /* out: OMNI_OK, _INVALID, ... */
    omni_ruleset_t      *set;           /* out: new set on success */
    omni_rules_files_t   files;         /* out: its texts */
    const omni_rules_files_t  *good;    /* in: the texts serving */
    omni_rules_report_t  report;
} ngx_http_omni_rules_task_t;


typedef struct {
    omni_ruleset_t      *current;       /* the set requests use */
    omni_ruleset_t      *config_set;    /* owned by the cycle pool */
    uint64_t             sig;           /* of current, 0: unknown */
    uint64_t             failed_sig;    /* last set that failed */
    omni_rules_files_t  *good;          /* the texts of current */
    omni_rules_files_t   good_own;      /* ... when loaded by the timer */
    omni_rules_report_t *report;        /* the last change's errors */
    ngx_event_t          timer;
    ngx_connection_t     dummy;
    ngx_msec_t           interval;
#if (NGX_THREADS)
    ngx_thread_pool_t   *pool;
    ngx_thread_task_t   *task;
#endif
    unsigned             busy:1;
    unsigned             broken:1;      /* report holds errors */
} ngx_http_omni_rules_worker_t;


static ngx_http_omni_rules_worker_t  ngx_http_omni_rw;


static void ngx_http_omni_rules_cleanup(void *data);
static void ngx_http_omni_rules_files_cleanup(void *data);
static uint64_t ngx_http_omni_rules_signature(const char *dir);
#if (NGX_THREADS)
static void ngx_http_omni_rules_timer(ngx_event_t *ev);
static void ngx_http_omni_rules_thread(void *data, ngx_log_t *log);
static void ngx_http_omni_rules_done(ngx_event_t *ev);
static void ngx_http_omni_rules_broken(ngx_log_t *log,
    ngx_http_omni_rules_task_t *t);
#endif


omni_ruleset_t *
ngx_http_omni_rules_current(void)
{
    return ngx_http_omni_rw.current;
}


/*
 * The errors of the rules directory as it is now, for the console and
 * the metrics: the broken files (their last good version, or nothing,
 * serving instead), or a change that does not compile at all (the
 * previous set serving).  NULL when everything compiles.
 */
omni_rules_report_t *
ngx_http_omni_rules_failure(void)
{
    return ngx_http_omni_rw.broken ? ngx_http_omni_rw.report : NULL;
}


/* The files of the set serving: paths, and which are broken. */
const omni_rules_files_t *
ngx_http_omni_rules_files(void)
{
    return ngx_http_omni_rw.good;
}


/* omni_rules DIR [check=TIME | check=off]; */
char *
ngx_http_omni_rules(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_main_conf_t *mcf = conf;

    int                   rc;
    ngx_str_t            *value, s;
    ngx_uint_t            i, n;
    omni_ruleset_t       *set;
    ngx_pool_cleanup_t   *cln, *fcln;
    omni_rules_files_t   *files;
    omni_rules_report_t  *report;

    if (mcf->rules_dir.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_conf_full_name(cf->cycle, &value[1], 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (value[1].len >= NGX_MAX_PATH) {
        return "has a path that is too long";
    }

    mcf->rules_dir = value[1];
    mcf->rules_check = 5000;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "check=", 6) == 0) {
            s.data = value[i].data + 6;
            s.len = value[i].len - 6;

            if (s.len == 3 && ngx_strncmp(s.data, "off", 3) == 0) {
                mcf->rules_check = 0;
                continue;
            }

            mcf->rules_check = ngx_parse_time(&s, 0);
            if (mcf->rules_check == (ngx_msec_t) NGX_ERROR
                || mcf->rules_check < 1000)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\" (at least 1s, or off)",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

#if (NGX_THREADS)
    /* The reload check runs in a pool thread, with or without a store. */
    if (mcf->rules_check && mcf->thread_pool == NULL) {
        if (mcf->thread_pool_name.len == 0) {
            ngx_str_set(&mcf->thread_pool_name, "default");
        }

        mcf->thread_pool = ngx_thread_pool_add(cf, &mcf->thread_pool_name);
        if (mcf->thread_pool == NULL) {
            return NGX_CONF_ERROR;
        }
    }
#endif

    report = ngx_pcalloc(cf->temp_pool, sizeof(omni_rules_report_t));
    if (report == NULL) {
        return NGX_CONF_ERROR;
    }

    files = ngx_pcalloc(cf->pool, sizeof(omni_rules_files_t));
    if (files == NULL) {
        return NGX_CONF_ERROR;
    }

    /*
     * Strict: any invalid rule fails the configuration, all reported.
     * The texts are kept: a worker's reload falls back on them for a
     * file that breaks later.
     */
    set = NULL;
    rc = omni_rules_read_dir((char *) mcf->rules_dir.data, files, report);

    if (rc == OMNI_OK) {
        rc = omni_rules_load_files(files, 0, &set, report);

        if (rc != OMNI_OK) {
            omni_rules_files_free(files);
        }
    }

    if (rc != OMNI_OK) {
        n = report->nerrors < OMNI_RULES_MAX_ERRORS ? report->nerrors
                                                    : OMNI_RULES_MAX_ERRORS;
        for (i = 0; i < n; i++) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "omni_rules: %s",
                               report->errors[i]);
        }

        if (report->nerrors > n) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "omni_rules: ... and %ui more error(s)",
                               (ngx_uint_t) (report->nerrors - n));
        }

        if (n == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "omni_rules: cannot load \"%V\"",
                               &mcf->rules_dir);
        }

        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    fcln = ngx_pool_cleanup_add(cf->pool, 0);

    if (cln == NULL || fcln == NULL) {
        omni_rules_free(set);
        omni_rules_files_free(files);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_omni_rules_cleanup;
    cln->data = set;
    fcln->handler = ngx_http_omni_rules_files_cleanup;
    fcln->data = files;

    mcf->rules = set;
    mcf->rules_files = files;
    mcf->rules_sig = ngx_http_omni_rules_signature(
                                               (char *) mcf->rules_dir.data);

    ngx_conf_log_error(NGX_LOG_INFO, cf, 0,
                       "omni_rules: %ui rule(s) from %ui file(s) in \"%V\"",
                       (ngx_uint_t) report->rules, (ngx_uint_t) report->files,
                       &mcf->rules_dir);

    return NGX_CONF_OK;
}


static void
ngx_http_omni_rules_cleanup(void *data)
{
    omni_rules_free(data);
}


static void
ngx_http_omni_rules_files_cleanup(void *data)
{
    omni_rules_files_free(data);
}


/*
 * A cheap fingerprint of the rule directory: names, sizes and mtimes of
 * the *.json files (FNV-1a).  Runs in a pool thread.
 */
static uint64_t
ngx_http_omni_rules_signature(const char *dir)
{
    DIR            *d;
    size_t          len;
    uint64_t        h, sum;
    struct stat     sb;
    struct dirent  *de;
    char            path[NGX_MAX_PATH + 256];
    const char     *p;

    d = opendir(dir);
    if (d == NULL) {
        return 1;
    }

    /* Order-independent: a sum of per-file hashes. */
    sum = 0;

    while ((de = readdir(d)) != NULL) {
        len = ngx_strlen(de->d_name);

        if (de->d_name[0] == '.' || len < 6
            || ngx_strcmp(de->d_name + len - 5, ".json") != 0)
        {
            continue;
        }

        if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name)
            >= (int) sizeof(path)
            || stat(path, &sb) != 0)
        {
            continue;
        }

        h = 14695981039346656037ULL;

        for (p = de->d_name; *p; p++) {
            h = (h ^ (unsigned char) *p) * 1099511628211ULL;
        }

        h = (h ^ (uint64_t) sb.st_size) * 1099511628211ULL;
        h = (h ^ (uint64_t) sb.st_mtim.tv_sec) * 1099511628211ULL;
        h = (h ^ (uint64_t) sb.st_mtim.tv_nsec) * 1099511628211ULL;
        h = (h ^ (uint64_t) sb.st_ino) * 1099511628211ULL;

        sum += h;
    }

    closedir(d);

    return sum ? sum : 2;
}


ngx_int_t
ngx_http_omni_rules_init_worker(ngx_cycle_t *cycle)
{
    ngx_http_omni_main_conf_t  *mcf;

    ngx_memzero(&ngx_http_omni_rw, sizeof(ngx_http_omni_rules_worker_t));

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_omni_module);

    if (mcf == NULL || mcf->rules == NULL) {
        return NGX_OK;
    }

    /*
     * The cache manager and loader run init_process too, but the thread
     * pools are only set up in workers: a reload timer there would post
     * to a pool that does not exist.  Helpers never decide, so they keep
     * nothing of the rules.
     */
    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    ngx_http_omni_rw.current = mcf->rules;
    ngx_http_omni_rw.config_set = mcf->rules;
    ngx_http_omni_rw.good = mcf->rules_files;
    ngx_http_omni_rw.sig = mcf->rules_sig;

    /* the set of the configuration: generation 1, or the next after HUP */
    if (mcf->rules_sig) {
        ngx_http_omni_metrics_rules(mcf->rules_sig, 0);
    }

    ngx_http_omni_rw.interval = mcf->rules_check;

#if (NGX_THREADS)
    if (mcf->rules_check == 0 || mcf->thread_pool == NULL) {
        return NGX_OK;
    }

    ngx_http_omni_rw.pool = mcf->thread_pool;

    ngx_http_omni_rw.report = ngx_pcalloc(cycle->pool,
                                          sizeof(omni_rules_report_t));
    if (ngx_http_omni_rw.report == NULL) {
        return NGX_ERROR;
    }

    ngx_http_omni_rw.task = ngx_thread_task_alloc(cycle->pool,
                                          sizeof(ngx_http_omni_rules_task_t));
    if (ngx_http_omni_rw.task == NULL) {
        return NGX_ERROR;
    }

    ngx_http_omni_rw.task->handler = ngx_http_omni_rules_thread;
    ngx_http_omni_rw.task->event.handler = ngx_http_omni_rules_done;
    ngx_http_omni_rw.task->event.data = ngx_http_omni_rw.task->ctx;
    ngx_http_omni_rw.task->event.log = cycle->log;

    ngx_cpystrn((u_char *) ((ngx_http_omni_rules_task_t *)
                            ngx_http_omni_rw.task->ctx)->dir,
                mcf->rules_dir.data, NGX_MAX_PATH);

    ngx_http_omni_rw.dummy.fd = (ngx_socket_t) -1;
    ngx_http_omni_rw.timer.handler = ngx_http_omni_rules_timer;
    ngx_http_omni_rw.timer.data = &ngx_http_omni_rw.dummy;
    ngx_http_omni_rw.timer.log = cycle->log;
    ngx_http_omni_rw.timer.cancelable = 1;

    ngx_add_timer(&ngx_http_omni_rw.timer, ngx_http_omni_rw.interval);
#endif

    return NGX_OK;
}


void
ngx_http_omni_rules_exit_worker(ngx_cycle_t *cycle)
{
    if (ngx_http_omni_rw.timer.timer_set) {
        ngx_del_timer(&ngx_http_omni_rw.timer);
    }

    /* A set loaded by the timer is ours; the config one is the pool's. */
    if (ngx_http_omni_rw.current != ngx_http_omni_rw.config_set) {
        omni_rules_free(ngx_http_omni_rw.current);
    }

    omni_rules_files_free(&ngx_http_omni_rw.good_own);

    ngx_http_omni_rw.current = NULL;
    ngx_http_omni_rw.good = NULL;
}


#if (NGX_THREADS)

static void
ngx_http_omni_rules_timer(ngx_event_t *ev)
{
    ngx_http_omni_rules_task_t  *t;

    if (ngx_exiting) {
        return;
    }

    if (!ngx_http_omni_rw.busy) {
        t = ngx_http_omni_rw.task->ctx;
        t->last_sig = ngx_http_omni_rw.sig;
        t->skip_sig = ngx_http_omni_rw.failed_sig;
        t->good = ngx_http_omni_rw.good;
        t->set = NULL;
        t->rc = OMNI_OK;

        if (ngx_thread_task_post(ngx_http_omni_rw.pool, ngx_http_omni_rw.task)
            == NGX_OK)
        {
            ngx_http_omni_rw.busy = 1;
        }
    }

    ngx_add_timer(ev, ngx_http_omni_rw.interval);
}


static void
ngx_http_omni_rules_thread(void *data, ngx_log_t *log)
{
    ngx_http_omni_rules_task_t  *t = data;

    t->sig = ngx_http_omni_rules_signature(t->dir);

    if (t->sig == t->last_sig || t->sig == t->skip_sig) {
        return;
    }

    ngx_memzero(&t->report, sizeof(omni_rules_report_t));

    t->rc = omni_rules_read_dir(t->dir, &t->files, &t->report);
    if (t->rc != OMNI_OK) {
        return;
    }

    /* a broken file: its last good text serves, the rest goes live */
    t->rc = omni_rules_load_last_good(&t->files, t->good, &t->set,
                                      &t->report);

    if (t->rc != OMNI_OK) {
        omni_rules_files_free(&t->files);
    }
}


static void
ngx_http_omni_rules_done(ngx_event_t *ev)
{
    ngx_uint_t                   nbroken;
    ngx_http_omni_rules_task_t  *t;

    t = ev->data;
    ngx_http_omni_rw.busy = 0;

    if (t->sig == t->last_sig || t->sig == t->skip_sig) {
        return;
    }

    if (t->rc == OMNI_OK && t->set) {
        if (ngx_exiting) {
            omni_rules_free(t->set);
            omni_rules_files_free(&t->files);
            return;
        }

        if (ngx_http_omni_rw.current != ngx_http_omni_rw.config_set) {
            omni_rules_free(ngx_http_omni_rw.current);
        }

        /* the texts serving now: what a file that breaks next falls on */
        omni_rules_files_free(&ngx_http_omni_rw.good_own);
        ngx_http_omni_rw.good_own = t->files;
        ngx_http_omni_rw.good = &ngx_http_omni_rw.good_own;
        ngx_memzero(&t->files, sizeof(omni_rules_files_t));

        ngx_http_omni_rw.current = t->set;
        ngx_http_omni_rw.sig = t->sig;
        ngx_http_omni_rw.failed_sig = 0;
        t->set = NULL;

        ngx_http_omni_metrics_rules(t->sig, 0);

        nbroken = omni_rules_files_broken(ngx_http_omni_rw.good);

        ngx_log_error(NGX_LOG_NOTICE, ev->log, 0,
                      "omni_rules: reloaded %ui rule(s) from %ui file(s) "
                      "in \"%s\"", (ngx_uint_t) t->report.rules,
                      (ngx_uint_t) t->report.files, t->dir);

        ngx_http_omni_rw.broken = 0;

        if (nbroken == 0) {
            return;
        }

        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "omni_rules: %ui file(s) in \"%s\" do not compile, "
                      "their last good version keeps serving (a new file "
                      "is left out) (%ui error(s))", nbroken, t->dir,
                      (ngx_uint_t) t->report.nerrors);

        ngx_http_omni_rules_broken(ev->log, t);
        return;
    }

    /* The serving set stays; say why once per broken change. */
    if (t->sig == ngx_http_omni_rw.failed_sig) {
        return;
    }

    ngx_http_omni_rw.failed_sig = t->sig;

    ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                  "omni_rules: \"%s\" changed but does not compile, the "
                  "previous rules keep serving (%ui error(s))", t->dir,
                  (ngx_uint_t) t->report.nerrors);

    ngx_http_omni_rules_broken(ev->log, t);
}


/* A change with errors: counted, logged, kept for the console. */
static void
ngx_http_omni_rules_broken(ngx_log_t *log, ngx_http_omni_rules_task_t *t)
{
    ngx_uint_t  i, n;

    ngx_http_omni_metrics_rules(t->sig, 1);

    n = t->report.nerrors < OMNI_RULES_MAX_ERRORS ? t->report.nerrors
                                                  : OMNI_RULES_MAX_ERRORS;

    for (i = 0; i < n; i++) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "omni_rules: %s",
                      t->report.errors[i]);
    }

    ngx_memcpy(ngx_http_omni_rw.report, &t->report,
               sizeof(omni_rules_report_t));
    ngx_http_omni_rw.broken = 1;
}

#endif
