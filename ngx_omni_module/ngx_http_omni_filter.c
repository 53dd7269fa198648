/*
 * HTML injection, a body filter after ngx_http_sub_filter_module:
 *
 *   - the header filter decides (200, main request, not HEAD, an HTML
 *     type, not compressed, not empty), makes the decision, clears
 *     Content-Length, ETag, Last-Modified and Accept-Ranges, asks for
 *     in-memory buffers and marks the page private for shared caches;
 *   - the body filter streams: the resumable omni_scan finds
 *     <!--omni:slot NAME--> and </body> across any buffer split, output
 *     buffers point into the input (no copy) with b->shadow releasing the
 *     input once sent, and busy/free buffers are reused;
 *   - slots without a marker get their banner right before </body>,
 *     followed by the pixels (omni_fallback off disables the former).
 *
 * Because it runs on delivery, a proxy_cache keeps the anonymous page and
 * every hit is personalized on its way out.
 */

#include "ngx_http_omni_module.h"


static ngx_int_t ngx_http_omni_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_omni_file_read(ngx_http_request_t *r,
    ngx_buf_t *b, u_char **p, u_char **end);
static ngx_int_t ngx_http_omni_output(ngx_http_request_t *r,
    ngx_http_omni_filter_ctx_t *fctx);
static void ngx_http_omni_private(ngx_http_request_t *r);
static ngx_int_t ngx_http_omni_filter_json_header(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, ngx_http_omni_loc_conf_t *olcf);
static ngx_int_t ngx_http_omni_json_body(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, ngx_buf_t *b, ngx_buf_t **last);


static ngx_http_output_body_filter_pt  ngx_http_next_body_filter;


ngx_int_t
ngx_http_omni_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_omni_body_filter;

    return NGX_OK;
}


/*
 * Called by the module's header filter for "omni on" main requests,
 * after identification.  Decides whether this response is injected.
 */
ngx_int_t
ngx_http_omni_filter_header(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx)
{
    ngx_uint_t                  i, injects;
    ngx_keyval_t               *kv;
    ngx_table_elt_t            *h;
    ngx_http_omni_slot_t       *slot;
    ngx_http_omni_loc_conf_t   *olcf;
    ngx_http_omni_decision_t   *dec;
    ngx_http_omni_filter_ctx_t *fctx;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_omni_module);

    if (!olcf->inject
        || ctx->endpoint
        || ngx_http_omni_rules_current() == NULL
        || r->headers_out.status != NGX_HTTP_OK
        || r->header_only
        || r->method == NGX_HTTP_HEAD       /* header_only is set later */
        || r->headers_out.content_length_n == 0
        || r->headers_in.range              /* leave Range to nginx: 206 */
        || (r->headers_out.content_encoding
            && r->headers_out.content_encoding->value.len
            && ngx_strncasecmp(r->headers_out.content_encoding->value.data,
                               (u_char *) "identity", 8) != 0))
    {
        return NGX_OK;
    }

    if (ngx_http_test_content_type(r, &olcf->types_hash) == NULL) {

        if (olcf->json_key.len
            && ngx_http_test_content_type(r, &olcf->json_types_hash))
        {
            return ngx_http_omni_filter_json_header(r, ctx, olcf);
        }

        return NGX_OK;
    }

    if (ngx_http_omni_decide(r, ctx, 0) != NGX_OK) {
        return NGX_OK;
    }

    dec = ctx->decision;

    /* Response headers from rules (a theme switch, an offer code). */
    kv = dec->headers.elts;
    for (i = 0; i < dec->headers.nelts; i++) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
#if (nginx_version >= 1023000)
        h->next = NULL;
#endif
        h->key = kv[i].key;
        h->value = kv[i].value;
    }

    slot = dec->slots.elts;
    for (i = 0; i < dec->slots.nelts; i++) {
        if (slot[i].html.len) {
            break;
        }
    }

    injects = (i < dec->slots.nelts || dec->pixels.len);

    /*
     * Any personalized output, a rule's header alone included, makes the
     * response private: a shared cache must not give one visitor's theme
     * or offer code to the next.
     */
    if ((injects || dec->headers.nelts) && olcf->private_cache) {
        ngx_http_omni_private(r);
    }

    if (!injects) {
        /* Nothing to put in the page. */
        return NGX_OK;
    }

    fctx = ngx_pcalloc(r->pool, sizeof(ngx_http_omni_filter_ctx_t));
    if (fctx == NULL) {
        return NGX_ERROR;
    }

    omni_scan_init(&fctx->scan);
    fctx->last_out = &fctx->out;
    ctx->filter = fctx;
    ctx->impressions = 1;

    /*
     * No filter_need_in_memory: a file-backed page stays in the file and
     * goes out by sendfile around the banners (ngx_http_omni_marks.c).
     * gzip, sub_filter or sendfile off still ask for memory buffers,
     * which take the streaming scanner.
     */

    ngx_http_clear_content_length(r);
    ngx_http_clear_etag(r);
    ngx_http_clear_last_modified(r);
    ngx_http_clear_accept_ranges(r);

    return NGX_OK;
}


/*
 * A personalized page must never be stored by a shared cache: whatever
 * the upstream said, it becomes "Cache-Control: private, no-cache".
 */
static void
ngx_http_omni_private(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

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

        if (h[i].hash == 0) {
            continue;
        }

        if ((h[i].key.len == 13
             && ngx_strncasecmp(h[i].key.data, (u_char *) "Cache-Control",
                                13) == 0)
            || (h[i].key.len == 7
                && ngx_strncasecmp(h[i].key.data, (u_char *) "Expires", 7)
                   == 0))
        {
            h[i].hash = 0;
        }
    }

    if (r->headers_out.expires) {
        r->headers_out.expires->hash = 0;
        r->headers_out.expires = NULL;
    }

#if (nginx_version < 1023000)
    r->headers_out.cache_control.nelts = 0;
#else
    r->headers_out.cache_control = NULL;
#endif

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "private, no-cache");
}


static ngx_int_t
ngx_http_omni_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    u_char                      *p, *end;
    ngx_int_t                    rc;
    ngx_buf_t                   *b, *last;
    ngx_chain_t                 *cl;
    omni_scan_event_t            ev;
    omni_scan_type_e             type;
    ngx_http_omni_ctx_t         *ctx;
    ngx_http_omni_slot_t        *slot;
    ngx_http_omni_filter_ctx_t  *fctx;

    if (r != r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_omni_get_ctx(r, 0);

    if (ctx && ctx->error_body.data) {
        if (ngx_http_omni_events_error_body(r, ctx, in, &cl) != NGX_OK) {
            return NGX_ERROR;
        }

        return cl ? ngx_http_next_body_filter(r, cl) : NGX_OK;
    }

    if (ctx == NULL || ctx->filter == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    fctx = ctx->filter;

    if (in == NULL && fctx->in == NULL && fctx->busy == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    if (ngx_chain_add_copy(r->pool, &fctx->in, in) != NGX_OK) {
        return NGX_ERROR;
    }

    while (fctx->in) {
        cl = fctx->in;
        b = cl->buf;
        last = NULL;

        p = b->pos;
        end = b->last;

        if (!ngx_buf_in_memory(b)) {
            p = end = NULL;

            if (b->in_file && !fctx->json && !fctx->mem_path) {
                rc = ngx_http_omni_file_buf(r, ctx, b, &last);

                if (rc == NGX_ERROR) {
                    return NGX_ERROR;
                }

                if (rc == NGX_AGAIN) {
                    /*
                     * The file's first scan runs in a pool thread: this
                     * buffer waits in fctx->in, what came before goes out
                     * (ngx_http_omni_marks.c resumes the request).
                     */
                    rc = ngx_http_omni_output(r, fctx);
                    r->buffered |= NGX_HTTP_OMNI_SCAN_BUFFERED;

                    return rc == NGX_ERROR ? NGX_ERROR : NGX_AGAIN;
                }

                if (rc == NGX_DECLINED) {
                    /* no usable marks: this page goes the memory way */
                    fctx->mem_path = 1;
                }
            }

            if (b->in_file && fctx->mem_path
                && ngx_http_omni_file_read(r, b, &p, &end) != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        if (p != end) {
            fctx->seen = 1;
        }

        if (fctx->json) {
            if (p != end && ngx_http_omni_json_body(r, ctx, b, &last)
                            != NGX_OK)
            {
                return NGX_ERROR;
            }

            p = end;
        }

        while (p != end) {
            type = omni_scan_next(&fctx->scan, (const u_char **) &p, end,
                                  &ev);

            if (type == OMNI_SCAN_NEED_MORE) {
                break;
            }

            switch (type) {

            case OMNI_SCAN_LITERAL:
                if (ngx_http_omni_emit(r, fctx, (u_char *) ev.data, ev.len,
                                       ev.from_hold, &last)
                    != NGX_OK)
                {
                    return NGX_ERROR;
                }

                break;

            case OMNI_SCAN_SLOT:
                slot = ngx_http_omni_slot_take(ctx->decision,
                                               (u_char *) ev.name,
                                               ev.name_len);

                /* No banner for it: the marker stays as it was. */
                if ((slot
                     ? ngx_http_omni_emit(r, fctx, slot->html.data,
                                          slot->html.len, 0, &last)
                     : ngx_http_omni_emit(r, fctx, (u_char *) ev.data,
                                          ev.len, ev.from_hold, &last))
                    != NGX_OK)
                {
                    return NGX_ERROR;
                }

                break;

            default: /* OMNI_SCAN_BODY_END */
                if (ngx_http_omni_emit_tail(r, ctx, &last) != NGX_OK
                    || ngx_http_omni_emit(r, fctx, (u_char *) ev.data,
                                          ev.len, ev.from_hold, &last)
                       != NGX_OK)
                {
                    return NGX_ERROR;
                }

                fctx->body_done = 1;
                break;
            }
        }

        /*
         * last_in_chain ends this request's own body when other output
         * follows it (add_after_body, slice): what the scanner holds must
         * go out before that output, not after it.
         */
        if ((b->last_buf || b->last_in_chain) && !fctx->json) {
            /* A marker cut off by the end of the body is plain text. */
            omni_scan_finish(&fctx->scan, &ev);

            if (ev.len
                && ngx_http_omni_emit(r, fctx, (u_char *) ev.data, ev.len, 1,
                                      &last)
                   != NGX_OK)
            {
                return NGX_ERROR;
            }

            /*
             * No </body> at all: pixels and banners go at the very end
             * (after what add_after_body appends, too), but an empty body
             * stays empty.
             */
            if (b->last_buf && !fctx->body_done && fctx->seen) {
                fctx->body_done = 1;

                if (ngx_http_omni_emit_tail(r, ctx, &last) != NGX_OK) {
                    return NGX_ERROR;
                }
            }
        }

        /*
         * The last buffer made from this input carries its flags, and as
         * its shadow releases the input once it has been sent.
         */
        if (last == NULL) {
            if (ngx_http_omni_emit(r, fctx, NULL, 0, 0, &last) != NGX_OK) {
                return NGX_ERROR;
            }

            last->sync = 1;
        }

        last->shadow = b;
        last->recycled = b->recycled;
        last->last_buf = b->last_buf;
        last->last_in_chain = b->last_in_chain;
        last->flush = b->flush;

        fctx->in = cl->next;
    }

    return ngx_http_omni_output(r, fctx);
}


/*
 * The slot a marker names, when the decision has a banner for it not
 * placed yet (each slot's banner goes in once): marked placed.  The
 * memory and the file paths both place banners through here.
 */
ngx_http_omni_slot_t *
ngx_http_omni_slot_take(ngx_http_omni_decision_t *dec, u_char *name,
    size_t len)
{
    ngx_uint_t             i;
    ngx_http_omni_slot_t  *slot;

    slot = dec->slots.elts;

    for (i = 0; i < dec->slots.nelts; i++) {
        if (slot[i].name.len == len
            && ngx_strncmp(slot[i].name.data, name, len) == 0
            && slot[i].html.len && !slot[i].placed)
        {
            slot[i].placed = 1;
            return &slot[i];
        }
    }

    return NULL;
}


/* Appends a buffer pointing at data (or at a copy of it) to the output. */
ngx_int_t
ngx_http_omni_emit(ngx_http_request_t *r, ngx_http_omni_filter_ctx_t *fctx,
    u_char *data, size_t len, ngx_uint_t copy, ngx_buf_t **last)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    cl = ngx_chain_get_free_buf(r->pool, &fctx->free);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    b = cl->buf;
    ngx_memzero(b, sizeof(ngx_buf_t));
    b->tag = (ngx_buf_tag_t) &ngx_http_omni_module;

    if (len == 0) {
        /* An empty buffer must be a sync one, or the writer complains. */
        b->sync = 1;

    } else {
        if (copy) {
            /* Held bytes live in the scanner: copy before the next call. */
            b->start = ngx_pnalloc(r->pool, len);
            if (b->start == NULL) {
                return NGX_ERROR;
            }

            ngx_memcpy(b->start, data, len);
            b->pos = b->start;
            b->last = b->start + len;
            b->end = b->last;
            b->temporary = 1;

        } else {
            b->pos = data;
            b->last = data + len;
            b->memory = 1;
        }
    }

    *fctx->last_out = cl;
    fctx->last_out = &cl->next;
    cl->next = NULL;

    *last = b;

    return NGX_OK;
}


/* Banners whose slot had no marker, then the pixels. */
ngx_int_t
ngx_http_omni_emit_tail(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx,
    ngx_buf_t **last)
{
    u_char                      *p;
    size_t                       len;
    ngx_uint_t                   i;
    ngx_http_omni_slot_t        *slot;
    ngx_http_omni_loc_conf_t    *olcf;
    ngx_http_omni_filter_ctx_t  *fctx;

    fctx = ctx->filter;
    olcf = ngx_http_get_module_loc_conf(r, ngx_http_omni_module);

    slot = ctx->decision->slots.elts;

    for (i = 0; olcf->fallback && i < ctx->decision->slots.nelts; i++) {
        if (slot[i].placed || slot[i].html.len == 0) {
            continue;
        }

        slot[i].placed = 1;

        len = sizeof("<div data-omni-slot=\"\"></div>") - 1
              + slot[i].name.len + slot[i].html.len;

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        /* Slot names are [A-Za-z0-9_.-]: safe in an attribute. */
        ngx_sprintf(p, "<div data-omni-slot=\"%V\">%V</div>", &slot[i].name,
                    &slot[i].html);

        if (ngx_http_omni_emit(r, fctx, p, len, 0, last) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ctx->decision->pixels.len) {
        return ngx_http_omni_emit(r, fctx, ctx->decision->pixels.data,
                                  ctx->decision->pixels.len, 0, last);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_omni_output(ngx_http_request_t *r, ngx_http_omni_filter_ctx_t *fctx)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    rc = ngx_http_next_body_filter(r, fctx->out);

    if (fctx->busy == NULL) {
        fctx->busy = fctx->out;

    } else {
        for (cl = fctx->busy; cl->next; cl = cl->next) { /* void */ }
        cl->next = fctx->out;
    }

    fctx->out = NULL;
    fctx->last_out = &fctx->out;

    /* Sent buffers release their input and go back to the free list. */
    while (fctx->busy) {
        cl = fctx->busy;
        b = cl->buf;

        if (ngx_buf_size(b) != 0) {
            break;
        }

        if (b->shadow) {
            b->shadow->pos = b->shadow->last;

            if (b->shadow->in_file) {
                b->shadow->file_pos = b->shadow->file_last;
            }
        }

        fctx->busy = cl->next;

        if (ngx_buf_in_memory(b) || b->in_file) {
            cl->next = fctx->free;
            fctx->free = cl;
        }
    }

    return rc;
}


/*
 * Proxied JSON APIs: with "omni_json_key NAME" the decision is added to
 * the top-level object of the response as "NAME": {...}, streamed: the
 * filter only waits for the first '{' and the character after it.  Any
 * other body (an array, a string, an empty one) passes unchanged.
 */
static ngx_int_t
ngx_http_omni_filter_json_header(ngx_http_request_t *r,
    ngx_http_omni_ctx_t *ctx, ngx_http_omni_loc_conf_t *olcf)
{
    u_char                      *p;
    ngx_str_t                   *json;
    ngx_http_omni_filter_ctx_t  *fctx;

    if (ngx_http_omni_decide(r, ctx, 1) != NGX_OK
        || ctx->decision->json.len == 0)
    {
        return NGX_OK;
    }

    json = &ctx->decision->json;

    /* "NAME":{...} prepared once; the body filter only copies it. */
    p = ngx_pnalloc(r->pool, olcf->json_key.len + 3 + json->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->decision->pixels.data = p;
    p = ngx_sprintf(p, "\"%V\":%V", &olcf->json_key, json);
    ctx->decision->pixels.len = p - ctx->decision->pixels.data;

    fctx = ngx_pcalloc(r->pool, sizeof(ngx_http_omni_filter_ctx_t));
    if (fctx == NULL) {
        return NGX_ERROR;
    }

    fctx->json = 1;
    fctx->last_out = &fctx->out;
    ctx->filter = fctx;
    ctx->impressions = 1;

    r->filter_need_in_memory = 1;

    ngx_http_clear_content_length(r);
    ngx_http_clear_etag(r);
    ngx_http_clear_accept_ranges(r);

    if (olcf->private_cache) {
        ngx_http_omni_private(r);
    }

    return NGX_OK;
}


/* JSON mode: states 0 before '{', 1 right after it, 2 passing through. */
static ngx_int_t
ngx_http_omni_json_body(ngx_http_request_t *r, ngx_http_omni_ctx_t *ctx,
    ngx_buf_t *b, ngx_buf_t **last)
{
    u_char                      *p, *start;
    ngx_http_omni_filter_ctx_t  *fctx;

    static u_char  comma = ',';

    fctx = ctx->filter;
    start = b->pos;

    for (p = b->pos; p < b->last && fctx->json_state < 2; p++) {

        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
            continue;
        }

        if (fctx->json_state == 0) {
            if (*p != '{') {
                /* Not an object: nothing to add to. */
                fctx->json_state = 2;
                break;
            }

            /* Up to and including '{', then "NAME":{...}. */
            if (ngx_http_omni_emit(r, fctx, start, p + 1 - start, 0, last)
                    != NGX_OK
                || ngx_http_omni_emit(r, fctx, ctx->decision->pixels.data,
                                      ctx->decision->pixels.len, 0, last)
                   != NGX_OK)
            {
                return NGX_ERROR;
            }

            start = p + 1;
            fctx->json_state = 1;
            continue;
        }

        /* json_state 1: a member follows unless the object is empty. */
        if (*p != '}') {
            if (ngx_http_omni_emit(r, fctx, start, p - start, 0, last)
                    != NGX_OK
                || ngx_http_omni_emit(r, fctx, &comma, 1, 0, last) != NGX_OK)
            {
                return NGX_ERROR;
            }

            start = p;
        }

        fctx->json_state = 2;
    }

    if (b->last > start) {
        return ngx_http_omni_emit(r, fctx, start, b->last - start, 0, last);
    }

    return NGX_OK;
}


/*
 * A file buffer the file path declined (more markers than it keeps):
 * read into memory here, as the copy filter would have, and scanned.
 */
static ngx_int_t
ngx_http_omni_file_read(ngx_http_request_t *r, ngx_buf_t *b, u_char **p,
    u_char **end)
{
    off_t     size;
    ssize_t   n;
    u_char   *buf;

    size = b->file_last - b->file_pos;

    if (size <= 0) {
        return NGX_OK;
    }

    buf = ngx_pnalloc(r->pool, (size_t) size);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    n = ngx_read_file(b->file, buf, (size_t) size, b->file_pos);

    if (n != (ssize_t) size) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "omni: reading \"%V\" for injection failed",
                      &b->file->name);
        return NGX_ERROR;
    }

    *p = buf;
    *end = buf + size;

    return NGX_OK;
}
