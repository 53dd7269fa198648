/*
 * The console's "try this rule" (docs/console.md): a draft rule file,
 * posted, is compiled with the rules serving, exactly as the directory
 * would be with the draft copied in (it replaces the file of its name),
 * and the decision it would give a visitor comes back, with the
 * explanation of every rule.  Nothing goes live and nothing is
 * recorded: the draft set lives as long as the request.
 *
 *   POST .../try?customer=ID&channel=web[&file=NAME.json]
 *   POST .../try?profile=ID&channel=app   (or email=, cookie=, token=)
 *   POST .../try                     (validation only)
 *
 * The core does the work (omni_rules_files_put(), omni_rules_load_files(),
 * as omnictl decide --draft does); the texts are the worker's copy of the
 * files serving (no disk read), and the compile runs in the thread pool
 * when there is one, so a large rule set never stalls the event loop.
 */

#include <jansson.h>

#include "ngx_http_omni_module.h"
#include "omni_json.h"


typedef struct {
    ngx_http_request_t     *request;
    omni_rules_files_t      files;      /* serving + the draft */
    char                   *path;       /* the draft's, in the directory */
    omni_ruleset_t         *set;        /* out */
    int                     rc;         /* out */
    omni_rules_report_t     report;     /* out */
} ngx_http_omni_try_t;


static void ngx_http_omni_try_body(ngx_http_request_t *r);
static void ngx_http_omni_try_compile(void *data, ngx_log_t *log);
static void ngx_http_omni_try_done(ngx_event_t *ev);
static ngx_int_t ngx_http_omni_try_answer(ngx_http_request_t *r,
    ngx_http_omni_try_t *t);
static void ngx_http_omni_try_cleanup(void *data);


ngx_int_t
ngx_http_omni_console_try(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (!(r->method & NGX_HTTP_POST)) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    if (ngx_http_omni_rules_files() == NULL) {
        return ngx_http_omni_admin_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "rules", "no omni_rules configured");
    }

    /* the location keeps bodies up to a rule file's size in memory */
    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_omni_try_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* Copies the files serving: a reload may free them while we compile. */
static ngx_int_t
ngx_http_omni_try_files(omni_rules_files_t *dst)
{
    ngx_uint_t                 i;
    const omni_rules_file_t   *f;
    const omni_rules_files_t  *src;

    src = ngx_http_omni_rules_files();

    for (i = 0; src && i < src->n; i++) {
        f = &src->files[i];

        /* a broken file serves its last good version, or nothing */
        if (f->text == NULL) {
            continue;
        }

        if (omni_rules_files_put(dst, f->path, f->text, f->len) != OMNI_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_omni_try_body(ngx_http_request_t *r)
{
    u_char                     *p, *path;
    size_t                      len;
    ngx_str_t                   name;
    ngx_buf_t                  *b;
    ngx_chain_t                *cl;
    ngx_pool_cleanup_t         *cln;
    ngx_http_omni_try_t        *t;
    ngx_http_omni_main_conf_t  *mcf;
#if (NGX_THREADS)
    ngx_thread_task_t          *task;
#endif

    mcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        ngx_http_finalize_request(r,
            ngx_http_omni_admin_error(r, NGX_HTTP_BAD_REQUEST, "body",
                                      "post the draft rule file's JSON"));
        return;
    }

    /* the draft's name in the rules directory: file=, else draft.json */
    if (ngx_http_arg(r, (u_char *) "file", 4, &name) != NGX_OK) {
        ngx_str_set(&name, "draft.json");
    }

    if (name.len > 255 || ngx_strlchr(name.data, name.data + name.len, '/')
        || ngx_strlchr(name.data, name.data + name.len, '%'))
    {
        ngx_http_finalize_request(r,
            ngx_http_omni_admin_error(r, NGX_HTTP_BAD_REQUEST, "file",
                                      "a file name without a path"));
        return;
    }

    path = ngx_pnalloc(r->pool, mcf->rules_dir.len + 1 + name.len + 1);
    if (path == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = ngx_cpymem(path, mcf->rules_dir.data, mcf->rules_dir.len);
    *p++ = '/';
    p = ngx_cpymem(p, name.data, name.len);
    *p = '\0';

    if (!omni_rules_file_name_ok((char *) path + mcf->rules_dir.len + 1)) {
        ngx_http_finalize_request(r,
            ngx_http_omni_admin_error(r, NGX_HTTP_BAD_REQUEST, "file",
                                      "a rule file's name ends in .json and "
                                      "does not start with a dot"));
        return;
    }

    /* the body, in memory (client_body_buffer_size is raised for it) */
    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        if (cl->buf->in_file) {
            ngx_http_finalize_request(r,
                ngx_http_omni_admin_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                          "body", "the draft is larger than "
                                          "client_body_buffer_size"));
            return;
        }

        len += cl->buf->last - cl->buf->pos;
    }

    t = ngx_pcalloc(r->pool, sizeof(ngx_http_omni_try_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);
    b = ngx_create_temp_buf(r->pool, len + 1);

    if (t == NULL || cln == NULL || b == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    cln->handler = ngx_http_omni_try_cleanup;
    cln->data = t;
    t->request = r;
    t->path = (char *) path;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b->last = ngx_cpymem(b->last, cl->buf->pos,
                             cl->buf->last - cl->buf->pos);
    }

    if (ngx_http_omni_try_files(&t->files) != NGX_OK
        || omni_rules_files_put(&t->files, (char *) path, (char *) b->pos,
                                len)
           != OMNI_OK)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

#if (NGX_THREADS)
    if (mcf->thread_pool) {
        task = ngx_thread_task_alloc(r->pool, 0);
        if (task == NULL) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        task->ctx = t;
        task->handler = ngx_http_omni_try_compile;
        task->event.data = t;
        task->event.handler = ngx_http_omni_try_done;

        if (ngx_thread_task_post(mcf->thread_pool, task) == NGX_OK) {
            /* the request stays ours until ngx_http_omni_try_done() */
            return;
        }
    }
#endif

    ngx_http_omni_try_compile(t, r->connection->log);
    ngx_http_finalize_request(r, ngx_http_omni_try_answer(r, t));
}


static void
ngx_http_omni_try_compile(void *data, ngx_log_t *log)
{
    ngx_http_omni_try_t  *t = data;

    t->rc = omni_rules_load_files(&t->files, 0, &t->set, &t->report);
}


static void
ngx_http_omni_try_done(ngx_event_t *ev)
{
    ngx_http_omni_try_t  *t = ev->data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = t->request;
    c = r->connection;

    /* finalizing may free the request (and t with its pool) */
    ngx_http_finalize_request(r, ngx_http_omni_try_answer(r, t));
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_omni_try_cleanup(void *data)
{
    ngx_http_omni_try_t  *t = data;

    omni_rules_free(t->set);
    omni_rules_files_free(&t->files);
    t->set = NULL;
}


/*
 * 422 {"ok": false, "errors": ["file:line:col: ...", ...]}, or
 * 200 {"ok": true, "file", "rules", "decision": {...}} (the decision
 * only for a visitor named, with the explanation of every rule).
 */
static ngx_int_t
ngx_http_omni_try_answer(ngx_http_request_t *r, ngx_http_omni_try_t *t)
{
    u_char               *p;
    size_t                len;
    ngx_int_t             rc;
    ngx_str_t             json, arg;
    ngx_uint_t            i, n, visitor;
    json_t               *o, *errors;
    char                 *text;
    ngx_http_omni_ctx_t  *ctx;

    if (t->rc != OMNI_OK) {
        o = json_object();
        errors = json_array();

        if (o == NULL || errors == NULL) {
            json_decref(o);
            json_decref(errors);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        n = t->report.nerrors < OMNI_RULES_MAX_ERRORS ? t->report.nerrors
                                                      : OMNI_RULES_MAX_ERRORS;

        for (i = 0; i < n; i++) {
            json_array_append_new(errors,
                                  omni_json_string(t->report.errors[i]));
        }

        json_object_set_new(o, "ok", json_false());
        json_object_set_new(o, "errors", errors);
        json_object_set_new(o, "more", json_integer(t->report.nerrors - n));

        rc = ngx_http_omni_json_pool(r, o, JSON_COMPACT, &json);
        json_decref(o);

        if (rc != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_omni_send_json_status(r, 422, &json);
    }

    /* a visitor named as omni_admin_decide takes one */
    visitor = ngx_http_arg(r, (u_char *) "profile", 7, &arg) == NGX_OK
              || ngx_http_arg(r, (u_char *) "customer", 8, &arg) == NGX_OK
              || ngx_http_arg(r, (u_char *) "email", 5, &arg) == NGX_OK
              || ngx_http_arg(r, (u_char *) "cookie", 6, &arg) == NGX_OK
              || ngx_http_arg(r, (u_char *) "token", 5, &arg) == NGX_OK;

    ctx = NULL;

    if (visitor) {
        ctx = ngx_http_omni_get_ctx(r, 1);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ngx_http_omni_admin_visitor(r, ctx, &rc) != NGX_OK) {
            return rc;
        }

        /* the draft decides; nothing of it is recorded (pid_fixed) */
        ctx->draft = t->set;

        if (ngx_http_omni_decide(r, ctx, 2) != NGX_OK
            || ctx->decision == NULL)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    o = json_object();
    if (o == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json_object_set_new(o, "ok", json_true());
    json_object_set_new(o, "file", omni_json_string(t->path));
    json_object_set_new(o, "rules", json_integer(omni_rules_count(t->set)));

    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);

    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* {"ok":true,...} with the decision's own JSON spliced in */
    len = ngx_strlen(text);

    json.data = ngx_pnalloc(r->pool, len + sizeof(",\"decision\":")
                                     + (ctx ? ctx->decision->json.len : 4));
    if (json.data == NULL) {
        free(text);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(json.data, text, len - 1);
    free(text);

    p = ngx_cpymem(p, ",\"decision\":", sizeof(",\"decision\":") - 1);

    if (ctx) {
        p = ngx_cpymem(p, ctx->decision->json.data, ctx->decision->json.len);

    } else {
        p = ngx_cpymem(p, "null", 4);
    }

    *p++ = '}';
    json.len = p - json.data;

    return ngx_http_omni_send_json_status(r, NGX_HTTP_OK, &json);
}
