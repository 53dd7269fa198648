/*
 * The LMDB store inside nginx (the lua-resty-lmdb process model):
 *
 *   - at configuration time (master, and nginx -t) the path is checked
 *     without creating or changing anything, and an existing store is
 *     opened read-only and closed again; at start (not with -t) the
 *     master creates the store when missing and hands it to the worker
 *     user: no handle ever crosses fork();
 *   - each worker opens its own handle in init_process, runs
 *     mdb_reader_check() then and on a timer, and closes it on exit;
 *   - lookups renew the worker's one read transaction and reset it right
 *     after, so a request holds no reader slot between events;
 *   - any failure degrades to an unpersonalized response plus one error
 *     line; the module never answers 5xx because of the store.
 */

#include "ngx_http_omni_module.h"
#include "omni_batch.h"


typedef struct {
    omni_store_t       *store;
    ngx_event_t         timer;
    ngx_connection_t    dummy;          /* timer data, for debug logs */
    ngx_msec_t          interval;
    ngx_uint_t          failures;       /* consecutive read failures */

    /* meta "queue" of a snapshot, read once per snapshot: windows that
       see the same commit (omni_store_read_snapshot()) share it */
    ngx_uint_t          snap_read;
    ngx_int_t           snap_rc;
    uint64_t            snap_queue;     /* the queue id it was read for */
    uint64_t            snap_txn;       /* the snapshot it was read in */
    omni_store_t       *snap_store;
    uint64_t            snap;
} ngx_http_omni_worker_store_t;


static ngx_http_omni_worker_store_t  ngx_http_omni_ws;


static void ngx_http_omni_reader_check_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_omni_store_check(ngx_conf_t *cf,
    ngx_http_omni_main_conf_t *mcf);


omni_store_t *
ngx_http_omni_worker_store(void)
{
    return ngx_http_omni_ws.store;
}


static ngx_uint_t
ngx_http_omni_store_has(ngx_http_omni_main_conf_t *mcf, const char *file)
{
    u_char           path[NGX_MAX_PATH];
    ngx_file_info_t  fi;

    if (mcf->store_path.len + ngx_strlen(file) + 1 > NGX_MAX_PATH) {
        return 0;
    }

    ngx_sprintf(path, "%V%s%Z", &mcf->store_path, file);

    return ngx_file_info(path, &fi) != NGX_FILE_ERROR;
}


/*
 * omni_store PATH [map_size=SIZE] [map_max=SIZE] [max_readers=N]
 *            [queue=N] [reader_check=TIME] [thread_pool=NAME]
 *            [fold=TIME] [checkpoint=TIME] [tp_max=N] [tp_max_age=TIME] [anon_ttl=TIME|off];
 */
char *
ngx_http_omni_store(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_omni_main_conf_t *mcf = conf;

    ssize_t             size;
    ngx_int_t           n;
    ngx_str_t          *value, s;
    ngx_uint_t          i;

    if (mcf->store_path.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_conf_full_name(cf->cycle, &value[1], 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    mcf->store_path = value[1];

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "map_size=", 9) == 0
            || ngx_strncmp(value[i].data, "map_max=", 8) == 0)
        {
            s.data = (u_char *) ngx_strchr(value[i].data, '=') + 1;
            s.len = value[i].data + value[i].len - s.data;

            size = ngx_parse_offset(&s);
            if (size == NGX_ERROR || size < 1024 * 1024) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid size \"%V\" in \"%V\" "
                                   "(at least 1m)", &s, &value[i]);
                return NGX_CONF_ERROR;
            }

            if (value[i].data[4] == 's') {
                mcf->map_size = (size_t) size;
            } else {
                mcf->map_max = (size_t) size;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "max_readers=", 12) == 0) {
            n = ngx_atoi(value[i].data + 12, value[i].len - 12);
            if (n < 8 || n > 65536) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\" (8..65536)", &value[i]);
                return NGX_CONF_ERROR;
            }

            mcf->max_readers = (ngx_uint_t) n;
            continue;
        }

        /* Touchpoint retention (docs/feed.md); 0 turns a limit off. */
        if (ngx_strncmp(value[i].data, "tp_max=", 7) == 0) {
            n = ngx_atoi(value[i].data + 7, value[i].len - 7);
            if (n == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            mcf->tp_max = (ngx_uint_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "anon_ttl=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            if (s.len == 3 && ngx_strncmp(s.data, "off", 3) == 0) {
                mcf->anon_ttl = 0;
                continue;
            }

            mcf->anon_ttl = ngx_parse_time(&s, 1);
            if (mcf->anon_ttl == (time_t) NGX_ERROR || mcf->anon_ttl < 3600)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\" (at least 1h, or off)",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "tp_max_age=", 11) == 0) {
            s.data = value[i].data + 11;
            s.len = value[i].len - 11;

            mcf->tp_max_age = ngx_parse_time(&s, 1);
            if (mcf->tp_max_age == (time_t) NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "queue=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (n < 16 || n > 1048576) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\" (16..1048576)", &value[i]);
                return NGX_CONF_ERROR;
            }

            mcf->queue_size = (ngx_uint_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "activity=", 9) == 0) {
            n = ngx_atoi(value[i].data + 9, value[i].len - 9);
            if (n < 16 || n > 16777216 || (n & (n - 1)) != 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\" (a power of two, "
                                   "16..16777216)", &value[i]);
                return NGX_CONF_ERROR;
            }

            mcf->activity = (ngx_uint_t) n;
            continue;
        }

        /* How often queued touches are folded into their profiles. */
        if (ngx_strncmp(value[i].data, "fold=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            mcf->fold = ngx_parse_time(&s, 0);
            if (mcf->fold == (ngx_msec_t) NGX_ERROR || mcf->fold > 60000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\" (0 to 60s)", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        /*
         * How often the store is synced (a checkpoint): what a host crash
         * can lose of page views, and what the journal replays.
         */
        if (ngx_strncmp(value[i].data, "checkpoint=", 11) == 0) {
            s.data = value[i].data + 11;
            s.len = value[i].len - 11;

            mcf->checkpoint = ngx_parse_time(&s, 0);
            if (mcf->checkpoint == (ngx_msec_t) NGX_ERROR
                || mcf->checkpoint < 10 || mcf->checkpoint > 600000)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\" (10ms to 10m)",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "reader_check=", 13) == 0) {
            s.data = value[i].data + 13;
            s.len = value[i].len - 13;

            mcf->reader_check = ngx_parse_time(&s, 0);
            if (mcf->reader_check == (ngx_msec_t) NGX_ERROR
                || mcf->reader_check < 100)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "thread_pool=", 12) == 0) {
            mcf->thread_pool_name.data = value[i].data + 12;
            mcf->thread_pool_name.len = value[i].len - 12;

            if (mcf->thread_pool_name.len == 0) {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    ngx_conf_init_size_value(mcf->map_size, OMNI_STORE_DEFAULT_MAP);
    ngx_conf_init_size_value(mcf->map_max, mcf->map_size * 8);
    ngx_conf_init_uint_value(mcf->max_readers, OMNI_STORE_DEFAULT_READERS);
    ngx_conf_init_uint_value(mcf->queue_size, 65536);
    ngx_conf_init_uint_value(mcf->activity, 262144);
    ngx_conf_init_msec_value(mcf->fold, 1000);
    ngx_conf_init_msec_value(mcf->checkpoint, 1000);
    ngx_conf_init_msec_value(mcf->reader_check, 10000);
    ngx_conf_init_uint_value(mcf->tp_max, 1000000);
    ngx_conf_init_value(mcf->tp_max_age, 7 * 86400);
    /* off unless asked: imported profiles may carry old times */
    ngx_conf_init_value(mcf->anon_ttl, 0);

    /*
     * An expired profile's touchpoints must be gone already: retention
     * by age removes them first (omni_wtxn_expire_anonymous()).  Without
     * retention by age (tp_max_age=0) they would stay: refused too.
     */
    if (mcf->anon_ttl && mcf->tp_max_age == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"anon_ttl\" needs \"tp_max_age\" (it is 0, no "
                           "limit): an expired profile's touchpoints would "
                           "stay");
        return NGX_CONF_ERROR;
    }

    if (mcf->anon_ttl && mcf->anon_ttl < mcf->tp_max_age) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"anon_ttl\" (%T s) is shorter than "
                           "\"tp_max_age\" (%T s): an expired profile's "
                           "touchpoints would stay", mcf->anon_ttl,
                           mcf->tp_max_age);
        return NGX_CONF_ERROR;
    }

    if (mcf->map_max < mcf->map_size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"map_max\" is smaller than \"map_size\"");
        return NGX_CONF_ERROR;
    }

#if (NGX_THREADS)
    if (mcf->thread_pool_name.len == 0) {
        ngx_str_set(&mcf->thread_pool_name, "default");
    }

    /* omni_rules may have taken the default pool first; this one wins. */
    mcf->thread_pool = ngx_thread_pool_add(cf, &mcf->thread_pool_name);
    if (mcf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }
#else
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"omni_store\" needs nginx built with threads "
                       "(--with-threads): writes never run in the event "
                       "loop");
    return NGX_CONF_ERROR;
#endif

    /* "nginx -t" names an unusable path, and creates nothing. */
    if (ngx_http_omni_store_check(cf, mcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* The shared touch queue and the writer lease. */
    if (ngx_http_omni_queue_add(cf, mcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
}


/*
 * Whether the store's path is usable, changing nothing on disk: an
 * existing directory that this process may read, write and enter, or a
 * missing one whose parent is a directory it may create it in.  An
 * existing store (data.mdb and lock.mdb) is opened read-only, which
 * checks that it is an LMDB environment of a schema this build reads;
 * one that waits for its recovery after a host crash is not read (the
 * master recovers and opens it at start).
 */
static ngx_int_t
ngx_http_omni_store_check(ngx_conf_t *cf, ngx_http_omni_main_conf_t *mcf)
{
    int                rc;
    char               err[512];
    u_char            *path, *slash;
    ngx_str_t          parent;
    ngx_file_info_t    fi;
    omni_store_t      *st;
    omni_store_opts_t  opts;

    path = mcf->store_path.data;

    if (ngx_file_info(path, &fi) == NGX_FILE_ERROR) {
        if (ngx_errno != NGX_ENOENT) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               "omni_store: cannot use store \"%s\"",
                               path);
            return NGX_ERROR;
        }

        /* created at start: its parent must take a new directory */
        slash = ngx_strlchr(path + 1, path + mcf->store_path.len, '/');

        for (parent.data = path, parent.len = 1; slash;
             slash = ngx_strlchr(slash + 1, path + mcf->store_path.len, '/'))
        {
            parent.len = slash - path;
        }

        parent.data = ngx_pnalloc(cf->pool, parent.len + 1);
        if (parent.data == NULL) {
            return NGX_ERROR;
        }

        ngx_cpystrn(parent.data, path, parent.len + 1);

        if (ngx_file_info(parent.data, &fi) == NGX_FILE_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               "omni_store: cannot create store \"%s\": "
                               "its parent \"%V\" is missing",
                               path, &parent);
            return NGX_ERROR;
        }

        if (!ngx_is_dir(&fi)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "omni_store: cannot create store \"%s\": "
                               "\"%V\" is not a directory", path, &parent);
            return NGX_ERROR;
        }

        if (access((char *) parent.data, W_OK|X_OK) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               "omni_store: cannot create store \"%s\" in "
                               "\"%V\"", path, &parent);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (!ngx_is_dir(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "omni_store: store \"%s\" is not a directory",
                           path);
        return NGX_ERROR;
    }

    if (access((char *) path, R_OK|W_OK|X_OK) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "omni_store: cannot use store \"%s\"", path);
        return NGX_ERROR;
    }

    /* a read-only open would create a missing lock.mdb: not at -t */
    if (!ngx_http_omni_store_has(mcf, "/data.mdb")
        || !ngx_http_omni_store_has(mcf, "/lock.mdb"))
    {
        return NGX_OK;
    }

    ngx_memzero(&opts, sizeof(omni_store_opts_t));
    opts.readonly = 1;
    opts.max_readers = (unsigned) mcf->max_readers;

    rc = omni_store_open(&st, (char *) path, &opts, err, sizeof(err));

    if (rc == OMNI_RECOVER) {
        /* checked once recovered, by the master at start */
        ngx_conf_log_error(NGX_LOG_NOTICE, cf, 0, "omni_store: \"%s\": %s",
                           path, err);
        return NGX_OK;
    }

    if (rc != OMNI_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "omni_store: %s", err);
        return NGX_ERROR;
    }

    omni_store_close(st);

    return NGX_OK;
}


/*
 * At start, never with "nginx -t": the master creates the store when it
 * is missing (directory, databases, schema and salt), then, running as
 * root, hands its files to the worker user so that workers can open the
 * lock file and write.
 */
ngx_int_t
ngx_http_omni_store_init_module(ngx_cycle_t *cycle)
{
    char                        err[512];
    u_char                      path[NGX_MAX_PATH];
    ngx_uint_t                  i;
    omni_store_t               *st;
    ngx_core_conf_t            *ccf;
    omni_store_opts_t           opts;
    ngx_http_omni_main_conf_t  *mcf;

    static const char  *files[] = { "", "/data.mdb", "/lock.mdb",
                                    "/writer.lock", "/journal.ckpt" };

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_omni_module);

    if (mcf == NULL || mcf->store_path.len == 0 || ngx_test_config) {
        return NGX_OK;
    }

    ngx_memzero(&opts, sizeof(omni_store_opts_t));
    opts.map_size = mcf->map_size;
    opts.max_readers = (unsigned) mcf->max_readers;
    opts.create = 1;

    if (omni_store_open(&st, (char *) mcf->store_path.data, &opts,
                        err, sizeof(err))
        != OMNI_OK)
    {
        /*
         * The path was checked with the configuration.  On a first start
         * nginx stops here; after a reload the master must not (init_module
         * failing exits it), and the workers serve unpersonalized.
         */
        if (ngx_is_init_cycle(cycle->old_cycle)) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "omni_store: %s",
                          err);
            return NGX_ERROR;
        }

        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0, "omni_store: %s", err);
        return NGX_OK;
    }

    /* the first open after a host crash recovers from the journal */
    if (omni_store_replayed(st)) {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "omni: store recovered after a host crash: %ui "
                      "event(s) replayed from the journal",
                      (ngx_uint_t) omni_store_replayed(st));
    }

    omni_store_close(st);

    if (geteuid() != 0) {
        return NGX_OK;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (ccf->user == (ngx_uid_t) NGX_CONF_UNSET_UINT || ccf->user == 0) {
        return NGX_OK;
    }

    /*
     * The writer lease's lock file (ngx_http_omni_queue.c) and the
     * journal's checkpoint file (core/omni_journal.c): made here so that
     * the workers' user owns them.
     */
    for (i = 3; i < sizeof(files) / sizeof(files[0]); i++) {
        ngx_fd_t  fd;

        if (mcf->store_path.len + ngx_strlen(files[i]) + 1 > NGX_MAX_PATH) {
            break;
        }

        ngx_sprintf(path, "%V%s%Z", &mcf->store_path, files[i]);
        fd = ngx_open_file(path, NGX_FILE_RDWR, NGX_FILE_CREATE_OR_OPEN,
                           0640);
        if (fd != NGX_INVALID_FILE) {
            (void) ngx_close_file(fd);
        }
    }

    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (mcf->store_path.len + ngx_strlen(files[i]) + 1 > NGX_MAX_PATH) {
            return NGX_OK;
        }

        ngx_sprintf(path, "%V%s%Z", &mcf->store_path, files[i]);

        if (chown((char *) path, ccf->user, (gid_t) -1) == -1
            && ngx_errno != NGX_ENOENT)
        {
            ngx_log_error(NGX_LOG_WARN, cycle->log, ngx_errno,
                          "omni: chown(\"%s\", %d) failed",
                          path, (int) ccf->user);
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_omni_store_init_worker(ngx_cycle_t *cycle)
{
    int                         dead;
    char                        err[512];
    ngx_uint_t                  readers;
    ngx_core_conf_t            *ccf;
    omni_store_opts_t           opts;
    ngx_http_omni_main_conf_t  *mcf;

    ngx_memzero(&ngx_http_omni_ws, sizeof(ngx_http_omni_worker_store_t));

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_omni_module);

    if (mcf == NULL || mcf->store_path.len == 0) {
        return NGX_OK;
    }

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    /*
     * Reader slots: one per worker of this and of an old generation still
     * finishing after a reload, plus room for omnictl and other tools.
     */
    readers = ngx_max(mcf->max_readers,
                      (ngx_uint_t) ccf->worker_processes * 2 + 32);

    ngx_memzero(&opts, sizeof(omni_store_opts_t));
    opts.map_size = 0;
    opts.max_readers = (unsigned) readers;
    opts.attach = 1;

    /*
     * The journal (core/omni_journal.h): commits are not synced; the
     * events of a batch are appended to the journal and synced there,
     * once, before anyone is answered, and the store is synced at
     * checkpoints, off the writer's path.
     */
    opts.journal = 1;

    if (omni_store_open(&ngx_http_omni_ws.store,
                        (char *) mcf->store_path.data, &opts,
                        err, sizeof(err))
        != OMNI_OK)
    {
        /* Serve unpersonalized rather than not at all. */
        ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                      "omni: store unavailable, serving without "
                      "personalization: %s", err);
        ngx_http_omni_ws.store = NULL;
        return NGX_OK;
    }

    if (omni_store_reader_check(ngx_http_omni_ws.store, &dead) != OMNI_OK) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, 0, "omni: %s",
                      omni_store_error(ngx_http_omni_ws.store));

    } else if (dead) {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "omni: cleared %d stale LMDB reader slot(s)", dead);
    }

    ngx_http_omni_ws.interval = mcf->reader_check;
    ngx_http_omni_ws.timer.handler = ngx_http_omni_reader_check_handler;
    ngx_http_omni_ws.timer.log = cycle->log;
    ngx_http_omni_ws.dummy.fd = (ngx_socket_t) -1;
    ngx_http_omni_ws.timer.data = &ngx_http_omni_ws.dummy;
    ngx_http_omni_ws.timer.cancelable = 1;

    ngx_add_timer(&ngx_http_omni_ws.timer, ngx_http_omni_ws.interval);

    return NGX_OK;
}


static void
ngx_http_omni_reader_check_handler(ngx_event_t *ev)
{
    int  dead;

    if (ngx_exiting || ngx_http_omni_ws.store == NULL) {
        return;
    }

    if (omni_store_reader_check(ngx_http_omni_ws.store, &dead) != OMNI_OK) {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0, "omni: %s",
                      omni_store_error(ngx_http_omni_ws.store));

    } else if (dead) {
        ngx_log_error(NGX_LOG_NOTICE, ev->log, 0,
                      "omni: cleared %d stale LMDB reader slot(s)", dead);
    }

    ngx_add_timer(ev, ngx_http_omni_ws.interval);
}


void
ngx_http_omni_store_exit_worker(ngx_cycle_t *cycle)
{
    if (ngx_http_omni_ws.timer.timer_set) {
        ngx_del_timer(&ngx_http_omni_ws.timer);
    }

    omni_store_close(ngx_http_omni_ws.store);
    ngx_http_omni_ws.store = NULL;
    ngx_http_omni_ws.snap_read = 0;
}


/* Renews the read transaction, adopting a map another process grew. */
ngx_int_t
ngx_http_omni_read_begin(ngx_http_request_t *r, omni_store_t *st)
{
    int  rc;

    rc = omni_store_read_begin(st);

    if (rc == OMNI_MAP_RESIZED) {
        /*
         * mdb_env_set_mapsize() needs this process to have no open
         * transaction, and the writer task may have one right now: then
         * the writer adopts the new size when it completes, and this
         * request goes unpersonalized.
         */
        if (ngx_http_omni_writer_busy()) {
            ngx_http_omni_writer_resize_pending();
            return NGX_DECLINED;
        }

        if (omni_store_set_map_size(st, 0) != OMNI_OK) {
            goto failed;
        }

        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "omni: store map grew to %uz bytes, adopted",
                      omni_store_map_size(st));

        rc = omni_store_read_begin(st);
    }

    if (rc == OMNI_OK) {
        ngx_http_omni_ws.failures = 0;
        return NGX_OK;
    }

failed:

    /* One line per streak of failures, not one per request. */
    if (ngx_http_omni_ws.failures++ == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "omni: store read failed, serving without "
                      "personalization: %s", omni_store_error(st));
    }

    return NGX_ERROR;
}


/*
 * The fold position (meta "queue") of the snapshot of the read window
 * that ngx_http_omni_read_begin() opened: read once per window, since
 * the profile's overlay and the decision's caps both ask (an LMDB read
 * each).
 */
ngx_int_t
ngx_http_omni_read_snap(omni_store_t *st, uint64_t queue_id, uint64_t *snap)
{
    uint64_t  txn;

    /*
     * The same commit, the same value: between two commits of the writer
     * every request's window sees one snapshot, and the meta get (1,300
     * instructions, a B-tree descent) is done once for all of them.
     */
    txn = omni_store_read_snapshot(st);

    if (!ngx_http_omni_ws.snap_read
        || ngx_http_omni_ws.snap_queue != queue_id
        || ngx_http_omni_ws.snap_store != st
        || ngx_http_omni_ws.snap_txn != txn
        || txn == 0)
    {
        ngx_http_omni_ws.snap_rc =
            omni_store_read_queue_pos(st, queue_id, &ngx_http_omni_ws.snap)
            == OMNI_OK ? NGX_OK : NGX_ERROR;
        ngx_http_omni_ws.snap_queue = queue_id;
        ngx_http_omni_ws.snap_store = st;
        ngx_http_omni_ws.snap_txn = txn;
        ngx_http_omni_ws.snap_read = 1;
    }

    *snap = ngx_http_omni_ws.snap;

    return ngx_http_omni_ws.snap_rc;
}


/*
 * The touches of the profile that the snapshot's fold does not hold yet
 * (ngx_http_omni_activity.c): their visits and last seen, added to the
 * view, so a page view sees the one before it even within the fold
 * interval.
 */
static void
ngx_http_omni_lookup_overlay(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx,
    omni_store_t *st, omni_rec_t *rec)
{
    ngx_http_omni_queue_t      *qu;
    ngx_http_omni_main_conf_t  *mcf;

    qu = ngx_http_omni_queue();

    if (qu == NULL || ctx->pid_fixed) {
        return;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);

    (void) ngx_http_omni_activity_overlay(qu, ctx->pid, st,
                                          (uint32_t) mcf->visit_timeout,
                                          rec);
}


/*
 * Inside an open read window: the identity's alias, else the identity's
 * own id, then its profile (zero-copy into rec).  Every reader of the
 * profile on the request path goes through here.
 */
int
ngx_http_omni_lookup(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx,
    omni_store_t *st, omni_rec_t *rec)
{
    int       rc;
    unsigned  kind;

    kind = ctx->identity == NGX_HTTP_OMNI_ID_TOKEN ? OMNI_ALIAS_DEVICE
                                                   : OMNI_ALIAS_COOKIE;

    rc = ctx->pid_fixed
         ? OMNI_OK
         : omni_store_get_alias(st, kind, ctx->vid_hex, OMNI_ID_HEX_LEN,
                                ctx->pid);

    if (rc == OMNI_NOTFOUND) {
        ngx_memcpy(ctx->pid, ctx->vid, OMNI_ID_LEN);
        rc = OMNI_OK;
    }

    if (rc == OMNI_OK) {
        rc = omni_store_get_profile(st, ctx->pid, rec);
    }

    if (rc == OMNI_OK) {
        ngx_http_omni_lookup_overlay(r, ctx, st, rec);

        ctx->found = 1;
        ctx->consent_stored = rec->consent;
        ctx->visits = rec->visits;
        ctx->stage = rec->stage < OMNI_STAGE_MAX ? rec->stage : 0;

    } else if (rc != OMNI_NOTFOUND) {
        ctx->store_error = 1;
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "omni: profile lookup failed, serving without it: %s",
                      omni_store_error(st));
    }

    ctx->resolved = 1;
    omni_id_hex(ctx->pid, (char *) ctx->pid_hex);

    return rc;
}


ngx_int_t
ngx_http_omni_resolve(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx)
{
    int            rc;
    omni_rec_t     rec;
    omni_store_t  *st;

    ctx->resolved = 1;

    st = ngx_http_omni_ws.store;

    if (st == NULL || ctx->identity == NGX_HTTP_OMNI_ID_NONE
        || ctx->identity == NGX_HTTP_OMNI_ID_NEW)
    {
        /* A brand-new visitor has no profile yet: nothing to read. */
        return NGX_DECLINED;
    }

    if (ngx_http_omni_read_begin(r, st) != NGX_OK) {
        ctx->store_error = 1;
        return NGX_ERROR;
    }

    rc = ngx_http_omni_lookup(r, ctx, st, &rec);

    omni_store_read_end(st);

    return (rc == OMNI_OK || rc == OMNI_NOTFOUND) ? NGX_OK : NGX_ERROR;
}


/*
 * One attribute of the visitor's profile, copied into the request pool
 * (numbers formatted) inside its own short read window.
 */
ngx_int_t
ngx_http_omni_read_attr(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx,
    ngx_str_t *key, ngx_str_t *value)
{
    int            rc, type;
    double         num;
    omni_rec_t     rec;
    omni_bytes_t   str;
    omni_store_t  *st;

    if (!ctx->resolved) {
        (void) ngx_http_omni_resolve(r, ctx);
    }

    st = ngx_http_omni_ws.store;

    if (st == NULL || !ctx->found || ctx->store_error) {
        return NGX_DECLINED;
    }

    if (ngx_http_omni_read_begin(r, st) != NGX_OK) {
        return NGX_DECLINED;
    }

    type = 0;
    rc = omni_store_get_profile(st, ctx->pid, &rec);

    if (rc == OMNI_OK) {
        type = omni_rec_get_attr(&rec, (char *) key->data, key->len,
                                 &str, &num);
    }

    if (type == OMNI_ATTR_STR) {
        value->data = ngx_pnalloc(r->pool, str.len + 1);
        if (value->data) {
            ngx_memcpy(value->data, str.data, str.len);
            value->len = str.len;
        }

    } else if (type == OMNI_ATTR_NUM) {
        value->data = ngx_pnalloc(r->pool, 32);
        if (value->data) {
            value->len = snprintf((char *) value->data, 32, "%.15g", num);
        }
    }

    omni_store_read_end(st);

    if (type == 0 || value->data == NULL) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}
