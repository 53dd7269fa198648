/*
 * omnictl event: Segment-shaped events from a file, applied by the same
 * core as nginx's omni_events endpoint (omni_event.h), with server trust:
 * a POS export, a CRM backfill or a replay of failed deliveries.
 *
 * Input is NDJSON: one event, batch or array per line.  Every line is
 * validated first (a bad one is reported and skipped); the valid events
 * are then applied in transactions of up to OMNICTL_EVENT_CHUNK events
 * (each one committed and synced), so a large file neither holds the
 * writer lock for long nor is lost half-way without a trace: the output
 * says, per event, what happened.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "omnictl.h"
#include "omni_event.h"
#include "omni_batch.h"


#define OMNICTL_EVENT_CHUNK  1000


typedef struct {
    omni_event_batch_t   batch;
    unsigned             line;
    int                 *status;
    unsigned char      (*pids)[OMNI_ID_LEN];
} omnictl_event_line_t;


typedef struct {
    omnictl_event_line_t  *lines;
    unsigned               nlines;
    unsigned               from_line, from_event;    /* chunk start */
    unsigned               to_line, to_event;        /* chunk end */
} omnictl_event_run_t;


/*
 * Applies the events of one chunk in one transaction, through the write
 * path's core entry point (omni_batch.h), committed and synced.
 */
static int
omnictl_event_step(omnictl_ctx_t *ctx, omni_store_t *st,
    omnictl_event_run_t *run)
{
    int                   rc;
    unsigned              l, n;
    omni_batch_t          b;
    omni_batch_opts_t     opts;
    omni_batch_events_t  *groups, *g, **last;

    n = run->to_line - run->from_line + 1;

    groups = calloc(n, sizeof(omni_batch_events_t));
    if (groups == NULL) {
        return OMNI_ERROR;
    }

    memset(&b, 0, sizeof(b));
    last = &b.events;

    for (l = run->from_line; l <= run->to_line && l < run->nlines; l++) {
        g = &groups[l - run->from_line];
        g->batch = &run->lines[l].batch;
        g->from = (l == run->from_line) ? run->from_event : 0;
        g->to = (l == run->to_line) ? run->to_event : g->batch->n;
        g->status = run->lines[l].status;
        g->pids = run->lines[l].pids;

        if (g->from >= g->to) {
            continue;
        }

        *last = g;
        last = &g->next;
    }

    memset(&opts, 0, sizeof(opts));
    opts.sync = 1;

    rc = b.events ? omnictl_batch(ctx, st, &opts, &b) : OMNI_OK;

    free(groups);

    return rc;
}


static int
omnictl_event_print(omnictl_ctx_t *ctx, omnictl_event_line_t *ln,
    unsigned e, int applied)
{
    char                 hex[OMNI_ID_HEX_LEN + 1];
    json_t              *o;
    omni_event_batch_t  *b;

    b = &ln->batch;

    o = json_pack("{s:i}", "line", (int) ln->line);
    if (o == NULL) {
        return OMNICTL_EXIT_FATAL;
    }

    if (b->batch) {
        json_object_set_new(o, "index", json_integer(e));
    }

    if (b->rc[e] == OMNI_OK) {
        json_object_set_new(o, "messageId",
                            json_string(b->events[e].message_id));

        if (!applied) {
            json_object_set_new(o, "status", json_string("failed"));

        } else {
            json_object_set_new(o, "status",
                         json_string(omni_event_status_name(ln->status[e])));

            if (ln->status[e] == OMNI_EVENT_ACCEPTED) {
                omni_id_hex(ln->pids[e], hex);
                json_object_set_new(o, "profile", json_string(hex));
            }
        }

    } else {
        json_object_set_new(o, "status", json_string("invalid"));
        json_object_set_new(o, "field", json_string(b->errs[e].field));
        json_object_set_new(o, "reason", json_string(b->errs[e].reason));
    }

    return omnictl_print_json(ctx, o, JSON_COMPACT);
}


int
omnictl_event(omnictl_ctx_t *ctx)
{
    int                    ret, rc, failed;
    char                  *data, *p, *end, *nl;
    size_t                 len;
    unsigned               l, e, n, lineno;
    const char            *path;
    omni_store_t          *st;
    omni_event_ctx_t       ec;
    omni_event_err_t       err;
    omnictl_event_run_t    run;
    omnictl_event_line_t  *ln;

    path = ctx->nargs ? ctx->args[0] : "-";

    if (ctx->store == NULL) {
        return omnictl_usage_error(ctx, "--store DIR (or OMNI_STORE) is "
                                   "required");
    }

    if (omnictl_read_all(path, &data, &len) != OMNI_OK) {
        omnictl_error(ctx, "cannot read \"%s\": %s", path, strerror(errno));
        return OMNICTL_EXIT_FATAL;
    }

    memset(&ec, 0, sizeof(ec));
    ec.trust = OMNI_TRUST_SERVER;
    ec.source = OMNI_SRC_CLI;
    ec.now = (uint32_t) time(NULL);
    ec.channel = OMNI_CH_MAX;

    memset(&run, 0, sizeof(run));
    failed = 0;
    lineno = 0;

    /* validate every line first */
    for (p = data, end = data + len; p < end; p = nl + 1) {
        nl = memchr(p, '\n', (size_t) (end - p));
        if (nl == NULL) {
            nl = end;
        }

        lineno++;

        if (nl == p || (nl - p == 1 && *p == '\r')) {
            continue;
        }

        ln = realloc(run.lines, (run.nlines + 1) * sizeof(*ln));
        if (ln == NULL) {
            omnictl_error(ctx, "out of memory");
            ret = OMNICTL_EXIT_FATAL;
            goto done;
        }

        run.lines = ln;
        ln = &run.lines[run.nlines];
        memset(ln, 0, sizeof(*ln));
        ln->line = lineno;

        if (omni_event_batch_parse(&ln->batch, p, (size_t) (nl - p), &ec,
                                   &err)
            != OMNI_OK)
        {
            omnictl_error(ctx, "line %u: %s: %s", lineno, err.field,
                          err.reason);
            failed = 1;
            continue;
        }

        run.nlines++;

        ln->status = calloc(ln->batch.n, sizeof(int));
        ln->pids = calloc(ln->batch.n, OMNI_ID_LEN);

        if (ln->status == NULL || ln->pids == NULL) {
            omnictl_error(ctx, "out of memory");
            ret = OMNICTL_EXIT_FATAL;
            goto done;
        }

        for (e = 0; e < ln->batch.n; e++) {
            if (ln->batch.rc[e] != OMNI_OK) {
                failed = 1;
            }
        }
    }

    ret = omnictl_open(ctx, OMNICTL_OPEN_WRITE, &st);
    if (ret != OMNICTL_EXIT_OK) {
        goto done;
    }

    /* chunks of OMNICTL_EVENT_CHUNK events, one transaction each */
    l = 0;
    e = 0;

    while (l < run.nlines) {
        run.from_line = l;
        run.from_event = e;

        for (n = 0; l < run.nlines; ) {
            if (e >= run.lines[l].batch.n) {
                l++;
                e = 0;
                continue;
            }

            if (n == OMNICTL_EVENT_CHUNK) {
                break;
            }

            n++;
            e++;
        }

        run.to_line = l;
        run.to_event = e;

        rc = omnictl_event_step(ctx, st, &run);

        /* report this chunk's events */
        for (; run.from_line < run.nlines; run.from_line++) {
            ln = &run.lines[run.from_line];

            for (; run.from_event < ln->batch.n; run.from_event++) {
                if (run.from_line == run.to_line
                    && run.from_event >= run.to_event)
                {
                    break;
                }

                if (omnictl_event_print(ctx, ln, run.from_event,
                                        rc == OMNI_OK)
                    != OMNICTL_EXIT_OK)
                {
                    ret = OMNICTL_EXIT_FATAL;
                }

                if (ln->batch.rc[run.from_event] != OMNI_OK
                    || rc != OMNI_OK)
                {
                    failed = 1;
                }
            }

            if (run.from_line == run.to_line) {
                break;
            }

            run.from_event = 0;
        }

        if (rc != OMNI_OK) {
            omnictl_error(ctx, "%s", omni_store_error(st));
            ret = OMNICTL_EXIT_FATAL;
            break;
        }
    }

    omni_store_close(st);

    if (ret == OMNICTL_EXIT_OK && failed) {
        ret = OMNICTL_EXIT_FAILED;
    }

done:

    for (l = 0; l < run.nlines; l++) {
        omni_event_batch_free(&run.lines[l].batch);
        free(run.lines[l].status);
        free(run.lines[l].pids);
    }

    free(run.lines);
    free(data);

    return ret;
}
