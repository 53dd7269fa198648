/*
 * Zero-copy injection into file-backed responses (static files,
 * proxy_cache and fastcgi_cache hits, open_file_cache): the page is not
 * read into memory.  The markers' offsets are found once per file
 * version, cached per worker by file identity (device, inode, size,
 * mtime) and body offset, as open_file_cache keys its entries; then each
 * request emits file-range buffers for the page around small in-memory
 * buffers for the banners and pixels, so sendfile() still sends the page.
 *
 * The offsets are found with the same resumable scanner as the memory
 * path (omni_scan), over the file read in 64 KB pieces, so both paths
 * see exactly the same markers.  gzip, sub_filter and the JSON path ask
 * for in-memory buffers, which then take the memory path.
 *
 * A file's first scan (reading up to the whole page) runs in the store's
 * thread pool, not on the event loop: the request waits for it as it
 * would for nginx's own threaded read (blocked, r->aio), and goes on
 * from the cache when the task is done.
 */

#include "ngx_http_omni_module.h"


#define NGX_HTTP_OMNI_MARKS_MAX     512     /* files per worker */
#define NGX_HTTP_OMNI_MARKS_EVENTS  256     /* markers per file, at most */
#define NGX_HTTP_OMNI_MARKS_READ    65536


typedef struct {
    off_t                       start;      /* first byte of the marker */
    off_t                       end;        /* after its last byte */
    ngx_uint_t                  type;       /* OMNI_SCAN_SLOT, _BODY_END */
    u_char                      name[OMNI_SCAN_NAME_MAX + 1];
    size_t                      name_len;
} ngx_http_omni_mark_t;


typedef struct {
    ngx_queue_t                 lru;
    dev_t                       dev;
    ino_t                       ino;
    off_t                       size;
    time_t                      mtime;
    off_t                       from;       /* where the body starts */
    ngx_uint_t                  nmarks;
    ngx_uint_t                  overflow;   /* too many: memory path */
    ngx_http_omni_mark_t       *marks;

    /*
     * A small page's bytes, read once for the scan anyway: responses
     * send memory buffers pointing here (one writev instead of a
     * sendfile per range).  refs counts the requests sending from it; an
     * entry evicted while referenced is freed by the last of them.
     */
    u_char                     *content;    /* [from, size), or NULL */
    ngx_uint_t                  refs;
    ngx_uint_t                  evicted;
} ngx_http_omni_marks_t;

/* pages up to this size are kept in memory (one read covers them) */
#define NGX_HTTP_OMNI_MARKS_INLINE  NGX_HTTP_OMNI_MARKS_READ


static ngx_queue_t  ngx_http_omni_marks_lru;
static ngx_uint_t   ngx_http_omni_marks_n;


/* What a file version is known by (open_file_cache's identity). */
typedef struct {
    dev_t                       dev;
    ino_t                       ino;
    off_t                       size;
    time_t                      mtime;
    off_t                       from;
} ngx_http_omni_file_id_t;


#if (NGX_THREADS)

/* A first scan in the thread pool, for the request that waits for it. */
typedef struct {
    ngx_http_request_t         *request;
    ngx_http_omni_filter_ctx_t *fctx;
    ngx_fd_t                    fd;
    ngx_log_t                  *log;
    ngx_http_omni_file_id_t     id;
    ngx_http_omni_marks_t      *mk;         /* the result; NULL: failed */
} ngx_http_omni_scan_task_t;

#endif


/*
 * Scans [from, size) of the file once; NULL on a read error.  Plain
 * pread() and the log only: it also runs in a pool thread.
 */
static ngx_http_omni_marks_t *
ngx_http_omni_marks_scan(ngx_fd_t fd, ngx_log_t *log,
    ngx_http_omni_file_id_t *id)
{
    u_char                 *buf;
    off_t                   off, base;
    ssize_t                 n;
    omni_scan_t             scan;
    omni_scan_event_t       ev;
    omni_scan_type_e        type;
    const u_char           *p, *end;
    ngx_http_omni_mark_t   *m;
    ngx_http_omni_marks_t  *mk, *small;

    mk = ngx_calloc(sizeof(ngx_http_omni_marks_t)
                    + NGX_HTTP_OMNI_MARKS_EVENTS
                      * sizeof(ngx_http_omni_mark_t), log);
    if (mk == NULL) {
        return NULL;
    }

    mk->marks = (ngx_http_omni_mark_t *) (mk + 1);

    /* the read buffer lives only for the scan */
    buf = ngx_alloc(NGX_HTTP_OMNI_MARKS_READ, log);
    if (buf == NULL) {
        ngx_free(mk);
        return NULL;
    }

    mk->dev = id->dev;
    mk->ino = id->ino;
    mk->size = id->size;
    mk->mtime = id->mtime;
    mk->from = id->from;

    omni_scan_init(&scan);

    /*
     * The events of a marker cut by a piece come back when it completes:
     * the scanner holds its bytes, and a marker ends at the current
     * position, so its start is end minus its length.
     */
    for (off = mk->from; off < mk->size; off += n) {
        n = pread(fd, buf, NGX_HTTP_OMNI_MARKS_READ, off);

        if (n == -1 && ngx_errno == NGX_EINTR) {
            n = 0;
            continue;
        }

        if (n <= 0) {
            if (n == -1) {
                ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                              "omni: pread() of a page to scan failed");
            }

            ngx_free(buf);
            ngx_free(mk);
            return NULL;
        }

        p = buf;
        end = buf + n;
        base = off;

        /* the whole page in this one piece: keep it */
        if (off == mk->from
            && mk->size - mk->from <= NGX_HTTP_OMNI_MARKS_INLINE
            && (off_t) n == mk->size - mk->from)
        {
            mk->content = ngx_alloc(n, log);
            if (mk->content) {
                ngx_memcpy(mk->content, buf, n);
            }
        }

        for ( ;; ) {
            type = omni_scan_next(&scan, &p, end, &ev);

            if (type == OMNI_SCAN_NEED_MORE) {
                break;
            }

            if (type == OMNI_SCAN_LITERAL) {
                continue;
            }

            if (mk->nmarks == NGX_HTTP_OMNI_MARKS_EVENTS) {
                mk->overflow = 1;
                continue;
            }

            m = &mk->marks[mk->nmarks++];
            m->end = base + (p - buf);
            m->start = m->end - (off_t) ev.len;
            m->type = type;
            m->name_len = ev.name_len;
            ngx_memcpy(m->name, ev.name, ev.name_len);

            /* "</body>" itself stays in the page: the tail goes before */
            if (type == OMNI_SCAN_BODY_END) {
                m->end = m->start;
            }
        }
    }

    ngx_free(buf);

    /* keep only the marks found: most pages have a handful */
    small = ngx_alloc(sizeof(ngx_http_omni_marks_t)
                      + mk->nmarks * sizeof(ngx_http_omni_mark_t), log);
    if (small == NULL) {
        return mk;
    }

    ngx_memcpy(small, mk, sizeof(ngx_http_omni_marks_t)
                          + mk->nmarks * sizeof(ngx_http_omni_mark_t));
    small->marks = (ngx_http_omni_mark_t *) (small + 1);
    ngx_free(mk);

    return small;
}


static void
ngx_http_omni_marks_free(ngx_http_omni_marks_t *mk)
{
    if (mk->content) {
        ngx_free(mk->content);
    }

    ngx_free(mk);
}


/* The end of a request that sent from mk->content. */
static void
ngx_http_omni_marks_release(void *data)
{
    ngx_http_omni_marks_t  *mk = data;

    if (--mk->refs == 0 && mk->evicted) {
        ngx_http_omni_marks_free(mk);
    }
}


/* Worker exit: the cache goes (valgrind checks every block). */
void
ngx_http_omni_marks_exit(void)
{
    ngx_queue_t  *q;

    if (ngx_http_omni_marks_lru.next == NULL) {
        return;
    }

    while (!ngx_queue_empty(&ngx_http_omni_marks_lru)) {
        q = ngx_queue_head(&ngx_http_omni_marks_lru);
        ngx_queue_remove(q);
        ngx_http_omni_marks_free(ngx_queue_data(q, ngx_http_omni_marks_t,
                                                lru));
    }

    ngx_http_omni_marks_n = 0;
}


/* The cached marks of a file version, or NULL. */
static ngx_http_omni_marks_t *
ngx_http_omni_marks_find(ngx_http_omni_file_id_t *id)
{
    ngx_queue_t            *q;
    ngx_http_omni_marks_t  *mk;

    if (ngx_http_omni_marks_lru.next == NULL) {
        ngx_queue_init(&ngx_http_omni_marks_lru);
    }

    for (q = ngx_queue_head(&ngx_http_omni_marks_lru);
         q != ngx_queue_sentinel(&ngx_http_omni_marks_lru);
         q = ngx_queue_next(q))
    {
        mk = ngx_queue_data(q, ngx_http_omni_marks_t, lru);

        if (mk->ino == id->ino && mk->dev == id->dev
            && mk->size == id->size && mk->mtime == id->mtime
            && mk->from == id->from)
        {
            ngx_queue_remove(q);
            ngx_queue_insert_head(&ngx_http_omni_marks_lru, q);
            return mk;
        }
    }

    return NULL;
}


/* Caches a scan's result; one already there (another scan) wins. */
static ngx_http_omni_marks_t *
ngx_http_omni_marks_add(ngx_http_omni_marks_t *mk)
{
    ngx_queue_t              *q;
    ngx_http_omni_file_id_t   id;
    ngx_http_omni_marks_t    *old;

    id.dev = mk->dev;
    id.ino = mk->ino;
    id.size = mk->size;
    id.mtime = mk->mtime;
    id.from = mk->from;

    old = ngx_http_omni_marks_find(&id);

    if (old != NULL) {
        ngx_http_omni_marks_free(mk);
        return old;
    }

    if (ngx_http_omni_marks_n == NGX_HTTP_OMNI_MARKS_MAX) {
        q = ngx_queue_last(&ngx_http_omni_marks_lru);
        ngx_queue_remove(q);
        old = ngx_queue_data(q, ngx_http_omni_marks_t, lru);
        ngx_http_omni_marks_n--;

        /* still being sent from: the last request frees it */
        if (old->refs) {
            old->evicted = 1;

        } else {
            ngx_http_omni_marks_free(old);
        }
    }

    ngx_queue_insert_head(&ngx_http_omni_marks_lru, &mk->lru);
    ngx_http_omni_marks_n++;

    return mk;
}


#if (NGX_THREADS)

static void
ngx_http_omni_scan_thread(void *data, ngx_log_t *log)
{
    ngx_http_omni_scan_task_t  *t = data;

    t->mk = ngx_http_omni_marks_scan(t->fd, t->log, &t->id);
}


/* Back on the event loop: cache the marks, let the request go on. */
static void
ngx_http_omni_scan_done(ngx_event_t *ev)
{
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_omni_scan_task_t  *t;

    t = ev->data;
    r = t->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    if (t->mk != NULL) {
        (void) ngx_http_omni_marks_add(t->mk);

    } else {
        /* unreadable now: this request takes the memory path */
        t->fctx->mem_path = 1;
    }

    t->mk = NULL;

    r->main->blocked--;
    r->aio = 0;
    r->buffered &= ~NGX_HTTP_OMNI_SCAN_BUFFERED;

    if (r->done) {
        c->write->handler(c->write);

    } else {
        r->write_event_handler(r);
        ngx_http_run_posted_requests(c);
    }
}


/*
 * Posts the file's first scan to the store's thread pool: NGX_OK when
 * the request now waits for it, NGX_DECLINED when it cannot (no pool,
 * HTTP/2, a scan already done for this request): the caller scans now.
 */
static ngx_int_t
ngx_http_omni_scan_post(ngx_http_request_t *r, ngx_buf_t *b,
    ngx_http_omni_file_id_t *id)
{
    ngx_thread_task_t           *task;
    ngx_http_omni_ctx_t         *ctx;
    ngx_http_omni_scan_task_t   *t;
    ngx_http_omni_main_conf_t   *mcf;
    ngx_http_omni_filter_ctx_t  *fctx;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    ctx = ngx_http_omni_get_ctx(r, 0);

    if (mcf->thread_pool == NULL || ctx == NULL || ctx->filter == NULL
        || r != r->main || ctx->filter->file_scanned)
    {
        return NGX_DECLINED;
    }

#if (NGX_HTTP_V2)
    if (r->stream) {
        return NGX_DECLINED;
    }
#endif

    fctx = ctx->filter;

    task = ngx_thread_task_alloc(r->pool, sizeof(ngx_http_omni_scan_task_t));
    if (task == NULL) {
        return NGX_DECLINED;
    }

    t = task->ctx;
    t->request = r;
    t->fctx = fctx;
    t->fd = b->file->fd;
    t->log = r->connection->log;
    t->id = *id;
    t->mk = NULL;

    task->handler = ngx_http_omni_scan_thread;
    task->event.data = t;
    task->event.handler = ngx_http_omni_scan_done;

    if (ngx_thread_task_post(mcf->thread_pool, task) != NGX_OK) {
        return NGX_DECLINED;
    }

    /* the file stays open: the request (its cleanups) waits too */
    fctx->file_scanned = 1;
    r->main->blocked++;
    r->aio = 1;

    return NGX_OK;
}

#endif


/*
 * The marks of the file behind b, from the cache or scanned now;
 * NGX_AGAIN in *rc when a pool thread scans it and the request waits.
 */
static ngx_http_omni_marks_t *
ngx_http_omni_marks_get(ngx_http_request_t *r, ngx_buf_t *b, ngx_int_t *rc)
{
    ngx_file_info_t          fi;
    ngx_http_omni_marks_t   *mk;
    ngx_http_omni_file_id_t  id;

    *rc = NGX_OK;

    if (b->file == NULL || b->file->fd == NGX_INVALID_FILE
        || ngx_fd_info(b->file->fd, &fi) == NGX_FILE_ERROR)
    {
        return NULL;
    }

    id.dev = fi.st_dev;
    id.ino = ngx_file_uniq(&fi);
    id.size = ngx_file_size(&fi);
    id.mtime = ngx_file_mtime(&fi);
    id.from = b->file_pos;

    mk = ngx_http_omni_marks_find(&id);
    if (mk != NULL) {
        return mk;
    }

#if (NGX_THREADS)
    if (ngx_http_omni_scan_post(r, b, &id) == NGX_OK) {
        *rc = NGX_AGAIN;
        return NULL;
    }
#endif

    mk = ngx_http_omni_marks_scan(b->file->fd, r->connection->log, &id);
    if (mk == NULL) {
        return NULL;
    }

    return ngx_http_omni_marks_add(mk);
}


/* A file-range buffer [from, to) of b's file. */
static ngx_int_t
ngx_http_omni_emit_range(ngx_http_request_t *r,
    ngx_http_omni_filter_ctx_t *fctx, ngx_buf_t *in, off_t from, off_t to,
    ngx_buf_t **last)
{
    ngx_buf_t              *b;
    ngx_chain_t            *cl;
    ngx_http_omni_marks_t  *mk;

    if (from >= to) {
        return NGX_OK;
    }

    mk = fctx->marks;

    if (mk->content) {
        /* the page's own bytes, kept: no read, no copy, one writev */
        return ngx_http_omni_emit(r, fctx, mk->content + (from - mk->from),
                                  (size_t) (to - from), 0, last);
    }

    cl = ngx_chain_get_free_buf(r->pool, &fctx->free);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    b = cl->buf;
    ngx_memzero(b, sizeof(ngx_buf_t));
    b->tag = (ngx_buf_tag_t) &ngx_http_omni_module;
    b->in_file = 1;
    b->file = in->file;
    b->file_pos = from;
    b->file_last = to;

    *fctx->last_out = cl;
    fctx->last_out = &cl->next;
    cl->next = NULL;

    *last = b;

    return NGX_OK;
}


/*
 * One file buffer of the page: NGX_DECLINED when the file path cannot
 * take it (no marks, too many markers): the caller reads it into memory
 * instead.  fctx->file_mark walks the file's marks across buffers, and
 * fctx->file_skip is where a marker replaced by a banner ends.
 */
ngx_int_t
ngx_http_omni_file_buf(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx,
    ngx_buf_t *in, ngx_buf_t **last)
{
    off_t                        pos, to;
    ngx_int_t                    rc;
    ngx_http_omni_slot_t        *slot;
    ngx_pool_cleanup_t          *cln;
    ngx_http_omni_mark_t        *m;
    ngx_http_omni_marks_t       *mk;
    ngx_http_omni_filter_ctx_t  *fctx;

    fctx = ctx->filter;

    if (fctx->marks == NULL) {
        mk = ngx_http_omni_marks_get(r, in, &rc);

        if (rc == NGX_AGAIN) {
            return NGX_AGAIN;
        }

        if (mk == NULL || mk->overflow) {
            return NGX_DECLINED;
        }

        if (mk->content) {
            cln = ngx_pool_cleanup_add(r->pool, 0);
            if (cln == NULL) {
                return NGX_ERROR;
            }

            mk->refs++;
            cln->handler = ngx_http_omni_marks_release;
            cln->data = mk;
        }

        fctx->marks = mk;
        fctx->file_mark = 0;
    }

    mk = fctx->marks;
    pos = in->file_pos;
    to = in->file_last;

    if (pos < to) {
        fctx->seen = 1;
    }

    if (fctx->file_skip > pos) {
        pos = ngx_min(fctx->file_skip, to);
    }

    while (fctx->file_mark < mk->nmarks
           && mk->marks[fctx->file_mark].start < to)
    {
        m = &mk->marks[fctx->file_mark];

        if (m->start < pos) {
            /* behind us (a range that skipped it): nothing to do */
            fctx->file_mark++;
            continue;
        }

        if (m->type == OMNI_SCAN_BODY_END) {
            if (ngx_http_omni_emit_range(r, fctx, in, pos, m->start, last)
                != NGX_OK
                || ngx_http_omni_emit_tail(r, ctx, last) != NGX_OK)
            {
                return NGX_ERROR;
            }

            fctx->body_done = 1;
            pos = m->start;
            fctx->file_mark++;
            continue;
        }

        /* a slot: its banner in place of the marker, once per slot */
        slot = ngx_http_omni_slot_take(ctx->decision, m->name, m->name_len);

        fctx->file_mark++;

        if (slot == NULL) {
            /* no banner for it: the marker stays as it was */
            continue;
        }

        if (ngx_http_omni_emit_range(r, fctx, in, pos, m->start, last)
            != NGX_OK
            || ngx_http_omni_emit(r, fctx, slot->html.data, slot->html.len, 0,
                                  last)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        pos = ngx_min(m->end, to);
        fctx->file_skip = m->end;
    }

    if (ngx_http_omni_emit_range(r, fctx, in, pos, to, last) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}
