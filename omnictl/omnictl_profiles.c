/*
 * omnictl: profile commands (import, export, get, put, forget, link).
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "omnictl.h"


#define OMNICTL_BATCH          10000    /* profiles per import transaction */
#define OMNICTL_PROGRESS_EVERY 0.2      /* seconds between progress lines */


typedef struct {
    omnictl_ctx_t    *ctx;
    omni_profile_t   *batch;
    unsigned long    *lines;            /* input line of each profile */
    unsigned          n;
    unsigned          bad;              /* index step() failed at */

    unsigned long     imported;
    unsigned long     failed;

    /* input bytes: the size of a regular file (0: unknown), and read */
    off_t             size;
    off_t             done;

    double            start;
    double            last_progress;
    unsigned          tty:1;
    unsigned          progress:1;       /* a TTY, or --progress */
    unsigned          progress_shown:1;
} omnictl_import_t;


typedef struct {
    omnictl_ctx_t    *ctx;
    FILE             *out;
    char             *buf;
    size_t            size;
    unsigned long     n;
} omnictl_export_t;


typedef struct {
    omni_store_t     *st;
    omnictl_target_t  target;
    unsigned          naliases;
    unsigned          ntouchpoints;
} omnictl_forget_t;


typedef struct {
    unsigned char     pid[OMNI_ID_LEN];
    unsigned          kind;
    char              value[OMNI_ALIAS_MAX_LEN + 1];
    size_t            len;
    unsigned char     prev[OMNI_ID_LEN];
    unsigned          moved:1;
} omnictl_link_t;


static void omnictl_import_clear(omnictl_import_t *imp);
static void omnictl_import_say(omnictl_import_t *imp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void omnictl_import_progress(omnictl_import_t *imp);
static int omnictl_import_flush(omnictl_import_t *imp, omni_store_t *st);
static int omnictl_import_step(omni_wtxn_t *w, void *arg);
static int omnictl_export_profile(void *arg, const omni_rec_t *rec);
static int omnictl_put_step(omni_wtxn_t *w, void *arg);
static int omnictl_forget_step(omni_wtxn_t *w, void *arg);
static int omnictl_link_step(omni_wtxn_t *w, void *arg);


/* ---- import ---- */

int
omnictl_import(omnictl_ctx_t *ctx)
{
    int                rc, ret;
    char              *line, err[1024];
    FILE              *in;
    size_t             cap, len;
    ssize_t            n;
    json_t            *obj;
    double             secs;
    const char        *path;
    unsigned long      lineno;
    omni_store_t      *st;
    json_error_t       jerr;
    omni_profile_t    *p;
    struct stat        sb;
    omnictl_import_t   imp;

    path = ctx->nargs ? ctx->args[0] : "-";

    if (ctx->store == NULL) {
        return omnictl_usage_error(ctx, "--store DIR (or OMNI_STORE) is "
                                   "required");
    }

    if (strcmp(path, "-") == 0) {
        in = stdin;

    } else {
        in = fopen(path, "r");
        if (in == NULL) {
            omnictl_error(ctx, "cannot open \"%s\": %s", path,
                          strerror(errno));
            return OMNICTL_EXIT_FATAL;
        }
    }

    memset(&imp, 0, sizeof(omnictl_import_t));
    imp.ctx = ctx;
    imp.batch = calloc(OMNICTL_BATCH, sizeof(omni_profile_t));
    imp.lines = calloc(OMNICTL_BATCH, sizeof(unsigned long));

    if (imp.batch == NULL || imp.lines == NULL) {
        omnictl_error(ctx, "out of memory");
        ret = OMNICTL_EXIT_FATAL;
        goto done;
    }

    ret = omnictl_open(ctx, OMNICTL_OPEN_BULK, &st);
    if (ret != OMNICTL_EXIT_OK) {
        goto done;
    }

    imp.tty = isatty(STDERR_FILENO) ? 1 : 0;
    imp.progress = imp.tty || ctx->progress;
    imp.start = omnictl_now();
    /* the first progress line comes with the first check */
    imp.last_progress = imp.start - OMNICTL_PROGRESS_EVERY;

    /* a file, or standard input redirected from one: a known size */
    if (fstat(fileno(in), &sb) == 0 && S_ISREG(sb.st_mode)) {
        imp.size = sb.st_size - ftello(in);
    }

    line = NULL;
    cap = 0;
    lineno = 0;

    while ((n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        len = (size_t) n;
        imp.done += n;

        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'
                           || line[len - 1] == ' ' || line[len - 1] == '\t'))
        {
            len--;
        }

        if (len == 0) {
            continue;
        }

        obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
        if (obj == NULL) {
            omnictl_import_say(&imp, "line %lu: invalid JSON at column %d: "
                               "%s", lineno, jerr.column, jerr.text);
            imp.failed++;
            continue;
        }

        p = &imp.batch[imp.n];
        omni_profile_init(p, NULL);

        rc = omni_profile_from_json(p, obj, err, sizeof(err));
        json_decref(obj);

        if (rc != OMNI_OK) {
            omnictl_import_say(&imp, "line %lu: %s", lineno,
                               err[0] ? err : "invalid profile");
            omni_profile_free(p);
            imp.failed++;
            continue;
        }

        imp.lines[imp.n++] = lineno;

        if (imp.n == OMNICTL_BATCH) {
            ret = omnictl_import_flush(&imp, st);
            if (ret != OMNICTL_EXIT_OK) {
                break;
            }
        }

        if (imp.progress && (lineno & 1023) == 0) {
            omnictl_import_progress(&imp);
        }
    }

    if (ret == OMNICTL_EXIT_OK && ferror(in)) {
        omnictl_import_say(&imp, "cannot read \"%s\": %s", path,
                           strerror(errno));
        ret = OMNICTL_EXIT_FATAL;
    }

    free(line);

    if (ret == OMNICTL_EXIT_OK && imp.n > 0) {
        ret = omnictl_import_flush(&imp, st);
    }

    if (omni_store_sync(st) != OMNI_OK) {
        omnictl_import_say(&imp, "%s", omni_store_error(st));
        ret = OMNICTL_EXIT_FATAL;
    }

    omni_store_close(st);

    secs = omnictl_now() - imp.start;

    omnictl_import_say(&imp, "imported %lu, failed %lu, in %.2f s (%.0f/s)",
                       imp.imported, imp.failed, secs,
                       secs > 0 ? imp.imported / secs : 0.0);

    if (ret == OMNICTL_EXIT_OK && imp.failed) {
        ret = OMNICTL_EXIT_FAILED;
    }

done:

    if (imp.batch != NULL) {
        omnictl_import_clear(&imp);
    }

    free(imp.batch);
    free(imp.lines);

    if (in != stdin) {
        fclose(in);
    }

    return ret;
}


/*
 * Commits the batch in one transaction.  A profile the store refuses as
 * invalid fails its line and the rest of the batch is retried; any other
 * store error is fatal (the batches before it stay committed).
 */
static int
omnictl_import_flush(omnictl_import_t *imp, omni_store_t *st)
{
    int  rc;

    for ( ;; ) {
        imp->bad = imp->n;

        rc = omnictl_write(imp->ctx, st, omnictl_import_step, imp);

        if (rc == OMNI_OK) {
            imp->imported += imp->n;
            omnictl_import_clear(imp);
            return OMNICTL_EXIT_OK;
        }

        if (rc != OMNI_INVALID || imp->bad >= imp->n) {
            omnictl_import_say(imp, "%s", omni_store_error(st));
            return OMNICTL_EXIT_FATAL;
        }

        omnictl_import_say(imp, "line %lu: %s", imp->lines[imp->bad],
                           omni_store_error(st));
        imp->failed++;

        omni_profile_free(&imp->batch[imp->bad]);
        imp->n--;

        memmove(&imp->batch[imp->bad], &imp->batch[imp->bad + 1],
                (imp->n - imp->bad) * sizeof(omni_profile_t));
        memmove(&imp->lines[imp->bad], &imp->lines[imp->bad + 1],
                (imp->n - imp->bad) * sizeof(unsigned long));
    }
}


static int
omnictl_import_step(omni_wtxn_t *w, void *arg)
{
    omnictl_import_t *imp = arg;

    int       rc, replaced;
    unsigned  i;

    for (i = 0; i < imp->n; i++) {
        rc = omnictl_replace_profile(w, &imp->batch[i], &replaced);
        if (rc != OMNI_OK) {
            imp->bad = i;
            return rc;
        }
    }

    return OMNI_OK;
}


static void
omnictl_import_clear(omnictl_import_t *imp)
{
    unsigned  i;

    for (i = 0; i < imp->n; i++) {
        omni_profile_free(&imp->batch[i]);
    }

    imp->n = 0;
}


/* A message to stderr that does not collide with the progress line. */
static void
omnictl_import_say(omnictl_import_t *imp, const char *fmt, ...)
{
    char     msg[1024];
    va_list  args;

    va_start(args, fmt);
    vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);

    if (imp->progress_shown) {
        fputs("\r\033[K", stderr);
        imp->progress_shown = 0;
    }

    omnictl_error(imp->ctx, "%s", msg);
}


static void
omnictl_import_progress(omnictl_import_t *imp)
{
    double  now, secs, eta;

    now = omnictl_now();

    if (now - imp->last_progress < OMNICTL_PROGRESS_EVERY) {
        return;
    }

    imp->last_progress = now;
    secs = now - imp->start;

    /* in place on a terminal; one line each where it is logged */
    fputs(imp->tty ? "\r\033[K" : "", stderr);

    fprintf(stderr, "omnictl: import: %lu imported, %lu failed, "
            "%.0f profiles/s", imp->imported + imp->n, imp->failed,
            secs > 0 ? imp->imported / secs : 0.0);

    if (imp->size > 0 && imp->done > 0 && imp->done <= imp->size) {
        eta = secs * (double) (imp->size - imp->done) / (double) imp->done;

        fprintf(stderr, ", %.1f%%, ETA %02u:%02u:%02u",
                100.0 * (double) imp->done / (double) imp->size,
                (unsigned) eta / 3600, (unsigned) eta / 60 % 60,
                (unsigned) eta % 60);
    }

    fputs(imp->tty ? "" : "\n", stderr);
    imp->progress_shown = imp->tty;
}


/* ---- export ---- */

int
omnictl_export(omnictl_ctx_t *ctx)
{
    int                ret, rc, attempt;
    char              *tmp;
    size_t             len;
    omni_store_t      *st;
    omnictl_export_t   exp;

    ret = omnictl_open(ctx, OMNICTL_OPEN_READ, &st);
    if (ret != OMNICTL_EXIT_OK) {
        return ret;
    }

    memset(&exp, 0, sizeof(omnictl_export_t));
    exp.ctx = ctx;
    exp.out = stdout;
    exp.size = 65536;
    exp.buf = malloc(exp.size);
    tmp = NULL;

    if (exp.buf == NULL) {
        omnictl_error(ctx, "out of memory");
        ret = OMNICTL_EXIT_FATAL;
        goto done;
    }

    if (ctx->out != NULL && strcmp(ctx->out, "-") != 0) {
        len = strlen(ctx->out) + sizeof(".tmp");
        tmp = malloc(len);
        if (tmp == NULL) {
            omnictl_error(ctx, "out of memory");
            ret = OMNICTL_EXIT_FATAL;
            goto done;
        }

        snprintf(tmp, len, "%s.tmp", ctx->out);

        exp.out = fopen(tmp, "w");
        if (exp.out == NULL) {
            omnictl_error(ctx, "cannot create \"%s\": %s", tmp,
                          strerror(errno));
            ret = OMNICTL_EXIT_FATAL;
            goto done;
        }
    }

    /* one read transaction: the export is a consistent snapshot */
    for (attempt = 0; /* void */; attempt++) {
        rc = omni_store_foreach_profile(st, omnictl_export_profile, &exp);

        if (rc != OMNI_MAP_RESIZED || exp.n > 0 || attempt > 3) {
            break;
        }

        /* another process grew the map before anything was written */
        rc = omni_store_set_map_size(st, 0);
        if (rc != OMNI_OK) {
            break;
        }
    }

    if (rc != OMNI_OK) {
        if (rc != OMNI_ERROR || omni_store_error(st)[0] != '\0') {
            omnictl_error(ctx, "%s", omni_store_error(st));
        }

        ret = OMNICTL_EXIT_FATAL;
    }

    if (exp.out != stdout) {
        if (fclose(exp.out) != 0 && ret == OMNICTL_EXIT_OK) {
            omnictl_error(ctx, "cannot write \"%s\": %s", tmp,
                          strerror(errno));
            ret = OMNICTL_EXIT_FATAL;
        }

        if (ret == OMNICTL_EXIT_OK && rename(tmp, ctx->out) != 0) {
            omnictl_error(ctx, "cannot rename \"%s\" to \"%s\": %s", tmp,
                          ctx->out, strerror(errno));
            ret = OMNICTL_EXIT_FATAL;
        }

        if (ret != OMNICTL_EXIT_OK) {
            unlink(tmp);
        }
    }

done:

    free(tmp);
    free(exp.buf);
    omni_store_close(st);

    return ret;
}


static int
omnictl_export_profile(void *arg, const omni_rec_t *rec)
{
    omnictl_export_t *exp = arg;

    char            *buf;
    size_t           len;
    json_t          *obj;
    omni_profile_t   p;

    if (omni_profile_from_rec(&p, rec) != OMNI_OK) {
        omni_profile_free(&p);
        omnictl_error(exp->ctx, "cannot decode a profile record");
        return OMNI_ERROR;
    }

    obj = omni_profile_to_json(&p);
    omni_profile_free(&p);

    if (obj == NULL) {
        omnictl_error(exp->ctx, "out of memory");
        return OMNI_ERROR;
    }

    len = json_dumpb(obj, exp->buf, exp->size, JSON_COMPACT);

    if (len > exp->size) {
        buf = realloc(exp->buf, len * 2);
        if (buf == NULL) {
            json_decref(obj);
            omnictl_error(exp->ctx, "out of memory");
            return OMNI_ERROR;
        }

        exp->buf = buf;
        exp->size = len * 2;
        len = json_dumpb(obj, exp->buf, exp->size, JSON_COMPACT);
    }

    json_decref(obj);

    if (len == 0 || fwrite(exp->buf, 1, len, exp->out) != len
        || putc('\n', exp->out) == EOF)
    {
        omnictl_error(exp->ctx, "cannot write the output: %s",
                      strerror(errno));
        return OMNI_ERROR;
    }

    exp->n++;

    return OMNI_OK;
}


/* ---- get ---- */

int
omnictl_get(omnictl_ctx_t *ctx)
{
    int               ret, rc, attempt;
    json_t           *obj;
    omni_rec_t        rec;
    omni_store_t     *st;
    omni_profile_t    p;
    omnictl_target_t  t;

    ret = omnictl_target_parse(ctx, ctx->nargs ? ctx->args[0] : NULL,
                               ctx->alias, &t);
    if (ret != OMNICTL_EXIT_OK) {
        return ret;
    }

    ret = omnictl_open(ctx, OMNICTL_OPEN_READ, &st);
    if (ret != OMNICTL_EXIT_OK) {
        return ret;
    }

    omni_profile_init(&p, NULL);

    /* the alias and the profile are read in one snapshot */
    for (attempt = 0; /* void */; attempt++) {
        rc = omni_store_read_begin(st);

        if (rc == OMNI_OK) {
            rc = omnictl_target_resolve(st, NULL, &t);

            if (rc == OMNI_OK) {
                rc = omni_store_get_profile(st, t.pid, &rec);
            }

            /* copy out before the read transaction ends */
            if (rc == OMNI_OK && omni_profile_from_rec(&p, &rec) != OMNI_OK)
            {
                rc = OMNI_ERROR;
            }

            omni_store_read_end(st);
        }

        /* another process grew the map past this one's */
        if (rc != OMNI_MAP_RESIZED || attempt > 3
            || omni_store_set_map_size(st, 0) != OMNI_OK)
        {
            break;
        }
    }

    if (rc == OMNI_OK) {
        obj = omni_profile_to_json(&p);
        ret = omnictl_print_json(ctx, obj, JSON_INDENT(2));

    } else if (rc == OMNI_NOTFOUND) {
        omnictl_error(ctx, "%s not found", omnictl_target_name(&t));
        ret = OMNICTL_EXIT_FAILED;

    } else {
        omnictl_error(ctx, "%s", omni_store_error(st));
        ret = OMNICTL_EXIT_FATAL;
    }

    omni_profile_free(&p);
    omni_store_close(st);

    return ret;
}


/* ---- put ---- */

typedef struct {
    omni_profile_t   p;
    int              replaced;
} omnictl_put_t;


int
omnictl_put(omnictl_ctx_t *ctx)
{
    int              ret, rc;
    char            *data, err[1024], hex[OMNI_ID_HEX_LEN + 1];
    size_t           len;
    json_t          *obj;
    const char      *path;
    json_error_t     jerr;
    omni_store_t    *st;
    omnictl_put_t    put;

    path = ctx->nargs ? ctx->args[0] : "-";

    if (ctx->store == NULL) {
        return omnictl_usage_error(ctx, "--store DIR (or OMNI_STORE) is "
                                   "required");
    }

    if (omnictl_read_all(path, &data, &len) != OMNI_OK) {
        omnictl_error(ctx, "cannot read \"%s\": %s", path, strerror(errno));
        return OMNICTL_EXIT_FATAL;
    }

    obj = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    free(data);

    if (obj == NULL) {
        omnictl_error(ctx, "invalid JSON at line %d, column %d: %s",
                      jerr.line, jerr.column, jerr.text);
        return OMNICTL_EXIT_FAILED;
    }

    omni_profile_init(&put.p, NULL);
    put.replaced = 0;

    rc = omni_profile_from_json(&put.p, obj, err, sizeof(err));
    json_decref(obj);

    if (rc != OMNI_OK) {
        omnictl_error(ctx, "%s", err[0] ? err : "invalid profile");
        omni_profile_free(&put.p);
        return OMNICTL_EXIT_FAILED;
    }

    ret = omnictl_open(ctx, OMNICTL_OPEN_WRITE, &st);
    if (ret != OMNICTL_EXIT_OK) {
        omni_profile_free(&put.p);
        return ret;
    }

    rc = omnictl_write(ctx, st, omnictl_put_step, &put);

    if (rc == OMNI_OK) {
        omni_id_hex(put.p.id, hex);
        obj = json_pack("{s:s, s:b}", "put", hex, "replaced", put.replaced);
        ret = omnictl_print_json(ctx, obj, JSON_COMPACT);

    } else {
        omnictl_error(ctx, "%s", omni_store_error(st));
        ret = OMNICTL_EXIT_FATAL;
    }

    omni_profile_free(&put.p);
    omni_store_close(st);

    return ret;
}


static int
omnictl_put_step(omni_wtxn_t *w, void *arg)
{
    omnictl_put_t *put = arg;

    return omnictl_replace_profile(w, &put->p, &put->replaced);
}


/* ---- forget ---- */

int
omnictl_forget(omnictl_ctx_t *ctx)
{
    int                ret, rc;
    char               hex[OMNI_ID_HEX_LEN + 1];
    json_t            *obj;
    omni_store_t      *st;
    omnictl_forget_t   fg;

    memset(&fg, 0, sizeof(omnictl_forget_t));

    ret = omnictl_target_parse(ctx, ctx->nargs ? ctx->args[0] : NULL,
                               ctx->alias, &fg.target);
    if (ret != OMNICTL_EXIT_OK) {
        return ret;
    }

    ret = omnictl_open(ctx, OMNICTL_OPEN_WRITE, &st);
    if (ret != OMNICTL_EXIT_OK) {
        return ret;
    }

    fg.st = st;

    rc = omnictl_write(ctx, st, omnictl_forget_step, &fg);

    if (rc == OMNI_OK) {
        omni_id_hex(fg.target.pid, hex);
        obj = json_pack("{s:s, s:i, s:i}", "forgotten", hex,
                        "aliases", (int) fg.naliases,
                        "touchpoints", (int) fg.ntouchpoints);
        ret = omnictl_print_json(ctx, obj, JSON_COMPACT);

    } else if (rc == OMNI_NOTFOUND) {
        omnictl_error(ctx, "%s not found", omnictl_target_name(&fg.target));
        ret = OMNICTL_EXIT_FAILED;

    } else {
        omnictl_error(ctx, "%s", omni_store_error(st));
        ret = OMNICTL_EXIT_FATAL;
    }

    omni_store_close(st);

    return ret;
}


/* Resolved inside the write transaction, so nothing moves in between. */
static int
omnictl_forget_step(omni_wtxn_t *w, void *arg)
{
    omnictl_forget_t *fg = arg;

    int  rc;

    rc = omnictl_target_resolve(fg->st, w, &fg->target);
    if (rc != OMNI_OK) {
        return rc;
    }

    return omni_wtxn_forget(w, fg->target.pid, &fg->naliases,
                            &fg->ntouchpoints);
}


/* ---- link ---- */

int
omnictl_link(omnictl_ctx_t *ctx)
{
    int              ret, rc;
    char             err[1024], hex[OMNI_ID_HEX_LEN + 1];
    char             prev[OMNI_ID_HEX_LEN + 1];
    json_t          *obj;
    omni_store_t    *st;
    omnictl_link_t   ln;

    memset(&ln, 0, sizeof(omnictl_link_t));

    if (omni_id_parse(ctx->args[0], strlen(ctx->args[0]), ln.pid)
        != OMNI_OK)
    {
        return omnictl_usage_error(ctx, "invalid profile id \"%s\" "
                                   "(expected 32 hex digits or a UUID)",
                                   ctx->args[0]);
    }

    if (omnictl_parse_alias(ctx->args[1], &ln.kind, ln.value, &ln.len, err,
                            sizeof(err))
        != OMNI_OK)
    {
        return omnictl_usage_error(ctx, "%s", err);
    }

    ret = omnictl_open(ctx, OMNICTL_OPEN_WRITE, &st);
    if (ret != OMNICTL_EXIT_OK) {
        return ret;
    }

    rc = omnictl_write(ctx, st, omnictl_link_step, &ln);

    omni_id_hex(ln.pid, hex);

    if (rc == OMNI_OK) {
        obj = json_pack("{s:s, s:s, s:s}", "linked", hex,
                        "type", omnictl_alias_type(ln.kind),
                        "alias", ln.value);

        if (obj != NULL && ln.moved) {
            omni_id_hex(ln.prev, prev);
            json_object_set_new(obj, "moved_from", json_string(prev));
        }

        ret = omnictl_print_json(ctx, obj, JSON_COMPACT);

    } else if (rc == OMNI_NOTFOUND) {
        omnictl_error(ctx, "profile %s not found", hex);
        ret = OMNICTL_EXIT_FAILED;

    } else {
        omnictl_error(ctx, "%s", omni_store_error(st));
        ret = OMNICTL_EXIT_FATAL;
    }

    omni_store_close(st);

    return ret;
}


/*
 * The profile must exist: omni_link_alias() would create an empty one,
 * and a mistyped id should fail rather than start a new person.
 */
static int
omnictl_link_step(omni_wtxn_t *w, void *arg)
{
    omnictl_link_t *ln = arg;

    int             rc;
    omni_profile_t  p;

    rc = omni_wtxn_get_profile(w, ln->pid, &p);
    omni_profile_free(&p);

    if (rc != OMNI_OK) {
        return rc;
    }

    rc = omni_wtxn_get_alias(w, ln->kind, ln->value, ln->len, ln->prev);
    if (rc != OMNI_OK && rc != OMNI_NOTFOUND) {
        return rc;
    }

    ln->moved = (rc == OMNI_OK
                 && memcmp(ln->prev, ln->pid, OMNI_ID_LEN) != 0);

    return omni_link_alias(w, ln->pid, ln->kind, ln->value, ln->len,
                           (uint32_t) time(NULL));
}
