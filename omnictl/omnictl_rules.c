/*
 * omnictl: rules (check) and decide.
 *
 * Both go through the core exactly as nginx does: "rules check" is the
 * omni_rules_load() of nginx -t with its report printed verbatim, and
 * "decide" is the decision of the request path (omni_decide() on the
 * stored profile view, read zero-copy in one read transaction) rendered
 * for a channel, so an email or an SMS says what the web page says.
 */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "omnictl.h"
#include "omni_rules.h"


#define OMNICTL_FORMAT_JSON    0
#define OMNICTL_FORMAT_TEXT    1
#define OMNICTL_FORMAT_HTML    2

#define OMNICTL_RENDER_START   16384


/* A growing output buffer. */
typedef struct {
    char       *data;
    size_t      len;
    size_t      cap;
} omnictl_buf_t;


typedef struct {
    omnictl_ctx_t        *ctx;
    omni_ruleset_t       *set;
    unsigned              channel;
    unsigned              format;
    uint32_t              now;
    int                   has_geo;
    omni_geo_t            geo;
    omnictl_target_t      target;

    /* one evaluation, valid while the read transaction is open */
    omni_eval_t           ev;
    omni_decision_t       d;
    const char           *slot;         /* omnictl_render_slot() */
    size_t                slot_len;

    omnictl_buf_t         out;          /* standard output */
    omnictl_buf_t         why;          /* --explain for text and html */
    unsigned              oom:1;
    unsigned              reported:1;   /* an error already printed */
} omnictl_decide_t;


typedef size_t (*omnictl_render_pt)(omnictl_decide_t *dc, char *out,
    size_t cap);


static const struct {
    const char  *name;
    unsigned     channel;
    unsigned     format;            /* the default format */
} omnictl_channels[] = {
    { "web", OMNI_CH_WEB, OMNICTL_FORMAT_JSON },
    { "app", OMNI_CH_APP, OMNICTL_FORMAT_JSON },
    { "email", OMNI_CH_EMAIL, OMNICTL_FORMAT_TEXT },
    { "sms", OMNI_CH_SMS, OMNICTL_FORMAT_TEXT },
    { "pos", OMNI_CH_POS, OMNICTL_FORMAT_JSON },
    { "ads", OMNI_CH_ADS, OMNICTL_FORMAT_JSON },
    { NULL, 0, 0 }
};


static int omnictl_rules_check(omnictl_ctx_t *ctx, const char *dir);
static json_t *omnictl_json_text(const char *s);
static int omnictl_load(omnictl_ctx_t *ctx, const char *dir,
    omni_ruleset_t **set);
static int omnictl_decide_args(omnictl_decide_t *dc);
static int omnictl_parse_latlon(const char *s, double *lat, double *lon);
static int omnictl_geo(void *data, omni_geo_t *out);
static int omnictl_decide_run(omnictl_decide_t *dc, omni_store_t *st);
static int omnictl_decide_render(omnictl_decide_t *dc);
static int omnictl_render(omnictl_decide_t *dc, omnictl_render_pt fn,
    omnictl_buf_t *b);
static size_t omnictl_render_json(omnictl_decide_t *dc, char *out,
    size_t cap);
static size_t omnictl_render_text(omnictl_decide_t *dc, char *out,
    size_t cap);
static size_t omnictl_render_slot(omnictl_decide_t *dc, char *out,
    size_t cap);
static size_t omnictl_render_pixels(omnictl_decide_t *dc, char *out,
    size_t cap);
static size_t omnictl_render_explain(omnictl_decide_t *dc, char *out,
    size_t cap);
static int omnictl_buf_reserve(omnictl_buf_t *b, size_t more);
static int omnictl_buf_add(omnictl_buf_t *b, const char *s, size_t len);
static int omnictl_buf_str(omnictl_buf_t *b, const char *s);


/* ---- rules check ---- */

int
omnictl_rules(omnictl_ctx_t *ctx)
{
    if (strcmp(ctx->args[0], "check") != 0) {
        return omnictl_usage_error(ctx, "unknown rules command \"%s\" "
                                   "(expected check)", ctx->args[0]);
    }

    return omnictl_rules_check(ctx, ctx->args[1]);
}


/*
 * Strict, as nginx loads omni_rules: any invalid rule fails the set.  The
 * report's lines are printed as they are (nginx -t prints the same after
 * "omni_rules: "), the count of errors beyond the kept ones as nginx
 * says it.
 */
static int
omnictl_rules_check(omnictl_ctx_t *ctx, const char *dir)
{
    int                   rc, ret;
    char                  more[64];
    json_t               *obj, *errors;
    unsigned              i, n;
    omni_ruleset_t       *set;
    omni_rules_report_t  *rep;

    /* 25 KiB: not for the stack */
    rep = calloc(1, sizeof(omni_rules_report_t));
    if (rep == NULL) {
        omnictl_error(ctx, "out of memory");
        return OMNICTL_EXIT_FATAL;
    }

    rc = omni_rules_load(dir, &set, rep);

    if (rc == OMNI_OK) {
        ret = OMNICTL_EXIT_OK;
        omni_rules_free(set);

    } else if (rc == OMNI_INVALID) {
        ret = OMNICTL_EXIT_FAILED;

    } else {
        /* the directory cannot be read, or out of memory */
        ret = OMNICTL_EXIT_FATAL;
    }

    n = rep->nerrors < OMNI_RULES_MAX_ERRORS ? rep->nerrors
                                             : OMNI_RULES_MAX_ERRORS;
    more[0] = '\0';

    if (rep->nerrors > n) {
        snprintf(more, sizeof(more), "... and %u more error(s)",
                 rep->nerrors - n);
    }

    if (ctx->json) {
        errors = json_array();

        for (i = 0; errors != NULL && i < n; i++) {
            if (json_array_append_new(errors,
                                      omnictl_json_text(rep->errors[i]))
                != 0)
            {
                json_decref(errors);
                errors = NULL;
            }
        }

        if (errors != NULL && more[0] != '\0'
            && json_array_append_new(errors, json_string(more)) != 0)
        {
            json_decref(errors);
            errors = NULL;
        }

        if (errors != NULL && n == 0 && rc != OMNI_OK
            && json_array_append_new(errors,
                                     json_string("cannot load the rules"))
               != 0)
        {
            json_decref(errors);
            errors = NULL;
        }

        obj = NULL;

        if (errors != NULL) {
            obj = json_pack("{s:o, s:b, s:I, s:I, s:o}",
                            "dir", omnictl_json_text(dir),
                            "ok", rc == OMNI_OK,
                            "files", (json_int_t) rep->files,
                            "rules", (json_int_t) rep->rules,
                            "errors", errors);
        }

        rc = omnictl_print_json(ctx, obj, JSON_COMPACT);
        free(rep);

        return rc != OMNICTL_EXIT_OK ? rc : ret;
    }

    for (i = 0; i < n; i++) {
        fprintf(stderr, "%s\n", rep->errors[i]);
    }

    if (more[0] != '\0') {
        fprintf(stderr, "%s\n", more);
    }

    if (ret == OMNICTL_EXIT_OK) {
        printf("%s: %u rules in %u files, OK\n", dir, rep->rules,
               rep->files);

    } else if (ret == OMNICTL_EXIT_FAILED) {
        printf("%s: %u error(s)\n", dir, rep->nerrors);

    } else if (n == 0) {
        omnictl_error(ctx, "cannot load \"%s\"", dir);
    }

    free(rep);

    return ret;
}


/*
 * A JSON string of s.  Report lines are cut at a byte limit and file
 * names are bytes, so s need not be UTF-8: a byte that does not start a
 * valid sequence becomes U+FFFD rather than failing the document.
 */
static json_t *
omnictl_json_text(const char *s)
{
    char          *buf, *p;
    size_t         len, i, n;
    json_t        *str, *one;
    unsigned char  c;

    str = json_string(s);
    if (str != NULL) {
        return str;
    }

    len = strlen(s);
    buf = malloc(len * 3 + 1);
    if (buf == NULL) {
        return NULL;
    }

    p = buf;

    for (i = 0; i < len; i += n) {
        c = (unsigned char) s[i];
        n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
            : (c & 0xf8) == 0xf0 ? 4 : 1;

        /* jansson knows what a valid sequence is (overlongs, surrogates) */
        one = i + n <= len ? json_stringn(s + i, n) : NULL;

        if (one != NULL) {
            json_decref(one);
            memcpy(p, s + i, n);
            p += n;

        } else {
            memcpy(p, "\xef\xbf\xbd", 3);
            p += 3;
            n = 1;
        }
    }

    str = json_stringn(buf, (size_t) (p - buf));
    free(buf);

    return str;
}


/* ---- decide ---- */

int
omnictl_decide(omnictl_ctx_t *ctx)
{
    int                ret, rc, attempt;
    omni_store_t      *st;
    omnictl_decide_t  *dc;

    /* the decision and the evaluation state are a few KiB: on the heap */
    dc = calloc(1, sizeof(omnictl_decide_t));
    if (dc == NULL) {
        omnictl_error(ctx, "out of memory");
        return OMNICTL_EXIT_FATAL;
    }

    dc->ctx = ctx;
    st = NULL;

    ret = omnictl_decide_args(dc);
    if (ret != OMNICTL_EXIT_OK) {
        goto done;
    }

    ret = omnictl_load(ctx, ctx->rules, &dc->set);
    if (ret != OMNICTL_EXIT_OK) {
        goto done;
    }

    ret = omnictl_open(ctx, OMNICTL_OPEN_READ, &st);
    if (ret != OMNICTL_EXIT_OK) {
        goto done;
    }

    for (attempt = 0; /* void */; attempt++) {
        dc->out.len = 0;
        dc->why.len = 0;
        dc->oom = 0;
        dc->reported = 0;

        rc = omnictl_decide_run(dc, st);

        /* another process grew the map past this one's */
        if (rc != OMNI_MAP_RESIZED || attempt > 3
            || omni_store_set_map_size(st, 0) != OMNI_OK)
        {
            break;
        }
    }

    if (rc == OMNI_OK) {
        if (dc->why.len > 0) {
            fwrite(dc->why.data, 1, dc->why.len, stderr);
        }

        if (dc->out.len > 0
            && fwrite(dc->out.data, 1, dc->out.len, stdout) != dc->out.len)
        {
            omnictl_error(ctx, "cannot write the output");
            ret = OMNICTL_EXIT_FATAL;
        }

    } else if (rc == OMNI_NOTFOUND) {
        omnictl_error(ctx, "%s not found", omnictl_target_name(&dc->target));
        ret = OMNICTL_EXIT_FAILED;

    } else if (dc->oom) {
        omnictl_error(ctx, "out of memory");
        ret = OMNICTL_EXIT_FATAL;

    } else if (dc->reported) {
        ret = OMNICTL_EXIT_FATAL;

    } else {
        omnictl_error(ctx, "%s", omni_store_error(st));
        ret = OMNICTL_EXIT_FATAL;
    }

done:

    if (st != NULL) {
        omni_store_close(st);
    }

    omni_rules_free(dc->set);
    free(dc->out.data);
    free(dc->why.data);
    free(dc);

    return ret;
}


/* Everything is checked before the rules are loaded and the store opened. */
static int
omnictl_decide_args(omnictl_decide_t *dc)
{
    int                  ret;
    char                *end;
    size_t               i;
    const char          *s;
    omnictl_ctx_t       *ctx = dc->ctx;
    unsigned long long   now;

    ret = omnictl_target_parse(ctx, ctx->profile, ctx->alias, &dc->target);
    if (ret != OMNICTL_EXIT_OK) {
        return ret;
    }

    if (ctx->rules == NULL) {
        return omnictl_usage_error(ctx, "--rules DIR is required");
    }

    s = ctx->channel ? ctx->channel : "web";

    for (i = 0; omnictl_channels[i].name; i++) {
        if (strcmp(omnictl_channels[i].name, s) == 0) {
            break;
        }
    }

    if (omnictl_channels[i].name == NULL) {
        return omnictl_usage_error(ctx, "invalid --channel \"%s\" (expected "
                                   "web, app, email, sms, pos or ads)", s);
    }

    dc->channel = omnictl_channels[i].channel;
    dc->format = omnictl_channels[i].format;

    if (ctx->format != NULL) {
        if (strcmp(ctx->format, "json") == 0) {
            dc->format = OMNICTL_FORMAT_JSON;

        } else if (strcmp(ctx->format, "text") == 0) {
            dc->format = OMNICTL_FORMAT_TEXT;

        } else if (strcmp(ctx->format, "html") == 0) {
            dc->format = OMNICTL_FORMAT_HTML;

        } else {
            return omnictl_usage_error(ctx, "invalid --format \"%s\" "
                                       "(expected json, text or html)",
                                       ctx->format);
        }
    }

    if (ctx->now != NULL) {
        errno = 0;
        now = strtoull(ctx->now, &end, 10);

        if (ctx->now[0] < '0' || ctx->now[0] > '9' || *end != '\0'
            || errno != 0 || now > UINT32_MAX)
        {
            return omnictl_usage_error(ctx, "invalid --now \"%s\" (expected "
                                       "unix seconds)", ctx->now);
        }

        dc->now = (uint32_t) now;

    } else {
        dc->now = (uint32_t) time(NULL);
    }

    if (ctx->geo_country != NULL) {
        s = ctx->geo_country;

        if (strlen(s) != 2
            || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z'))
            || !((s[1] >= 'A' && s[1] <= 'Z') || (s[1] >= 'a' && s[1] <= 'z')))
        {
            return omnictl_usage_error(ctx, "invalid --geo-country \"%s\" "
                                       "(expected a two-letter country "
                                       "code, e.g. PT)", s);
        }

        /* as a MaxMind lookup gives it */
        dc->geo.country[0] = (char) (s[0] & ~0x20);
        dc->geo.country[1] = (char) (s[1] & ~0x20);
        dc->has_geo = 1;
    }

    if (ctx->geo_latlon != NULL) {
        if (omnictl_parse_latlon(ctx->geo_latlon, &dc->geo.lat,
                                 &dc->geo.lon)
            != OMNI_OK)
        {
            return omnictl_usage_error(ctx, "invalid --geo-latlon \"%s\" "
                                       "(expected LAT,LON in degrees, e.g. "
                                       "41.1579,-8.6291)", ctx->geo_latlon);
        }

        dc->geo.has_location = 1;
        dc->has_geo = 1;
    }

    return OMNICTL_EXIT_OK;
}


/* "41.1579,-8.6291": latitude -90..90, longitude -180..180. */
static int
omnictl_parse_latlon(const char *s, double *lat, double *lon)
{
    char  *end;

    errno = 0;
    *lat = strtod(s, &end);

    if (end == s || *end != ',' || errno != 0) {
        return OMNI_INVALID;
    }

    s = end + 1;
    *lon = strtod(s, &end);

    if (end == s || *end != '\0' || errno != 0) {
        return OMNI_INVALID;
    }

    if (!isfinite(*lat) || !isfinite(*lon) || fabs(*lat) > 90
        || fabs(*lon) > 180)
    {
        return OMNI_INVALID;
    }

    return OMNI_OK;
}


/* omnictl has no MaxMind database: the location given on the command line. */
static int
omnictl_geo(void *data, omni_geo_t *out)
{
    memcpy(out, data, sizeof(omni_geo_t));

    return OMNI_OK;
}


/* Loads the rules as nginx does; errors as "rules check" prints them. */
static int
omnictl_load(omnictl_ctx_t *ctx, const char *dir, omni_ruleset_t **set)
{
    int                   rc;
    unsigned              i, n;
    omni_rules_report_t  *rep;

    rep = calloc(1, sizeof(omni_rules_report_t));
    if (rep == NULL) {
        omnictl_error(ctx, "out of memory");
        return OMNICTL_EXIT_FATAL;
    }

    if (ctx->draft != NULL) {
        /* the directory as it would be with the draft copied in */
        rc = omnictl_draft_load(ctx, dir, ctx->draft, set, rep);

        if (rc != OMNI_OK && rc != OMNI_INVALID && rc != OMNI_ERROR) {
            free(rep);
            return rc;              /* already said */
        }

    } else {
        rc = omni_rules_load(dir, set, rep);
    }

    if (rc != OMNI_OK) {
        n = rep->nerrors < OMNI_RULES_MAX_ERRORS ? rep->nerrors
                                                 : OMNI_RULES_MAX_ERRORS;

        for (i = 0; i < n; i++) {
            fprintf(stderr, "%s\n", rep->errors[i]);
        }

        if (rep->nerrors > n) {
            fprintf(stderr, "... and %u more error(s)\n", rep->nerrors - n);
        }

        omnictl_error(ctx, "cannot load the rules in \"%s\"%s%s%s", dir,
                      ctx->draft ? " with the draft " : "",
                      ctx->draft ? ctx->draft : "",
                      rc == OMNI_INVALID ? " (see omnictl rules check)"
                                         : "");
    }

    free(rep);

    return rc == OMNI_OK ? OMNICTL_EXIT_OK : OMNICTL_EXIT_FATAL;
}


/*
 * One snapshot: the alias, the profile view and every render happen in
 * one read transaction, because the renderers read the view again (cart
 * item names, attributes).  Returns OMNI_OK, OMNI_NOTFOUND (a customer or
 * email alias nobody has: there is no id to decide for), or an error.
 */
static int
omnictl_decide_run(omnictl_decide_t *dc, omni_store_t *st)
{
    int                rc;
    omni_rec_t         rec;
    const omni_rec_t  *view;

    rc = omni_store_read_begin(st);
    if (rc != OMNI_OK) {
        return rc;
    }

    view = NULL;

    /* a cookie or device id without an alias is its own profile id */
    rc = omnictl_target_resolve(st, NULL, &dc->target);

    if (rc == OMNI_OK) {
        rc = omni_store_get_profile(st, dc->target.pid, &rec);

        if (rc == OMNI_OK) {
            view = &rec;

        } else if (rc == OMNI_NOTFOUND) {
            /* no profile yet: a new visitor, bucketed by the id its
               profile will have */
            rc = OMNI_OK;
        }
    }

    if (rc == OMNI_OK) {
        omni_eval_init(&dc->ev);
        dc->ev.rec = view;
        dc->ev.pid = dc->target.pid;
        dc->ev.channel = dc->channel;
        dc->ev.now = dc->now;

        if (dc->ctx->path != NULL) {
            dc->ev.path.data = dc->ctx->path;
            dc->ev.path.len = strlen(dc->ctx->path);
        }

        if (dc->ctx->query != NULL) {
            /* "?a=b" as well as "a=b" */
            dc->ev.query.data = dc->ctx->query
                                + (dc->ctx->query[0] == '?');
            dc->ev.query.len = strlen(dc->ev.query.data);
        }

        if (dc->ctx->referrer != NULL) {
            dc->ev.referrer.data = dc->ctx->referrer;
            dc->ev.referrer.len = strlen(dc->ctx->referrer);
        }

        if (dc->ctx->user_agent != NULL) {
            dc->ev.user_agent.data = dc->ctx->user_agent;
            dc->ev.user_agent.len = strlen(dc->ctx->user_agent);
        }

        if (dc->has_geo) {
            dc->ev.geo = omnictl_geo;
            dc->ev.geo_data = &dc->geo;
        }

        rc = omni_decide(dc->set, &dc->ev, &dc->d);

        if (rc == OMNI_OK) {
            rc = omnictl_decide_render(dc);

            /* the renderers cannot fail: only the buffers can */
            if (rc != OMNI_OK && !dc->reported) {
                dc->oom = 1;
            }
        }
    }

    omni_store_read_end(st);

    return rc;
}


static int
omnictl_decide_render(omnictl_decide_t *dc)
{
    unsigned  s;

    switch (dc->format) {

    case OMNICTL_FORMAT_JSON:
        if (omnictl_render(dc, omnictl_render_json, &dc->out) != OMNI_OK
            || omnictl_buf_str(&dc->out, "\n") != OMNI_OK)
        {
            return OMNI_ERROR;
        }

        return OMNI_OK;

    case OMNICTL_FORMAT_TEXT:
        if (omnictl_render(dc, omnictl_render_text, &dc->out) != OMNI_OK) {
            return OMNI_ERROR;
        }

        /* nothing to send: no output at all */
        if (dc->out.len > 0 && omnictl_buf_str(&dc->out, "\n") != OMNI_OK) {
            return OMNI_ERROR;
        }

        break;

    default: /* OMNICTL_FORMAT_HTML */
        for (s = 0; s < omni_rules_nslots(dc->set); s++) {
            dc->slot = omni_rules_slot(dc->set, s, &dc->slot_len);

            if (omnictl_buf_str(&dc->out, "<!-- slot ") != OMNI_OK
                || omnictl_buf_add(&dc->out, dc->slot, dc->slot_len)
                   != OMNI_OK
                || omnictl_buf_str(&dc->out, " -->\n") != OMNI_OK
                || omnictl_render(dc, omnictl_render_slot, &dc->out)
                   != OMNI_OK
                || omnictl_buf_str(&dc->out, "\n") != OMNI_OK)
            {
                return OMNI_ERROR;
            }
        }

        if (omnictl_buf_str(&dc->out, "<!-- pixels -->\n") != OMNI_OK
            || omnictl_render(dc, omnictl_render_pixels, &dc->out)
               != OMNI_OK
            || omnictl_buf_str(&dc->out, "\n") != OMNI_OK)
        {
            return OMNI_ERROR;
        }

        break;
    }

    /* JSON carries its explanation; the other formats keep stdout clean */
    if (dc->ctx->explain
        && omnictl_render(dc, omnictl_render_explain, &dc->why) != OMNI_OK)
    {
        return OMNI_ERROR;
    }

    return OMNI_OK;
}


/*
 * snprintf-style: render into what is left of b; when the output needs
 * more, grow b and render again (rendering is deterministic, so the
 * second pass has exactly the length the first one asked for).
 */
static int
omnictl_render(omnictl_decide_t *dc, omnictl_render_pt fn, omnictl_buf_t *b)
{
    size_t  n, m;

    if (omnictl_buf_reserve(b, OMNICTL_RENDER_START) != OMNI_OK) {
        dc->oom = 1;
        return OMNI_ERROR;
    }

    n = fn(dc, b->data + b->len, b->cap - b->len);

    if (n >= b->cap - b->len) {
        if (n == (size_t) -1 || omnictl_buf_reserve(b, n + 1) != OMNI_OK) {
            dc->oom = 1;
            return OMNI_ERROR;
        }

        m = fn(dc, b->data + b->len, b->cap - b->len);

        if (m != n) {
            omnictl_error(dc->ctx, "the rendered output changed length "
                          "between two passes (%zu, then %zu bytes)", n, m);
            dc->reported = 1;
            return OMNI_ERROR;
        }
    }

    b->len += n;

    return OMNI_OK;
}


static size_t
omnictl_render_json(omnictl_decide_t *dc, char *out, size_t cap)
{
    return omni_render_decision_json(dc->set, &dc->ev, &dc->d,
                                     dc->ctx->explain, out, cap);
}


static size_t
omnictl_render_text(omnictl_decide_t *dc, char *out, size_t cap)
{
    return omni_render_text(dc->set, &dc->ev, &dc->d, dc->channel, out, cap);
}


static size_t
omnictl_render_slot(omnictl_decide_t *dc, char *out, size_t cap)
{
    return omni_render_slot_html(dc->set, &dc->ev, &dc->d, dc->slot,
                                 dc->slot_len, out, cap);
}


static size_t
omnictl_render_pixels(omnictl_decide_t *dc, char *out, size_t cap)
{
    return omni_render_pixels_html(dc->set, &dc->ev, &dc->d, out, cap);
}


static size_t
omnictl_render_explain(omnictl_decide_t *dc, char *out, size_t cap)
{
    return omni_explain(dc->set, &dc->ev, out, cap);
}


/* ---- buffer ---- */

/* At least more free bytes after len. */
static int
omnictl_buf_reserve(omnictl_buf_t *b, size_t more)
{
    char    *p;
    size_t   cap;

    if (b->cap - b->len >= more) {
        return OMNI_OK;
    }

    if (more > ((size_t) -1) / 2 - b->len) {
        return OMNI_ERROR;
    }

    cap = b->cap ? b->cap : OMNICTL_RENDER_START;

    while (cap - b->len < more) {
        cap *= 2;
    }

    p = realloc(b->data, cap);
    if (p == NULL) {
        return OMNI_ERROR;
    }

    b->data = p;
    b->cap = cap;

    return OMNI_OK;
}


static int
omnictl_buf_add(omnictl_buf_t *b, const char *s, size_t len)
{
    if (omnictl_buf_reserve(b, len + 1) != OMNI_OK) {
        return OMNI_ERROR;
    }

    memcpy(b->data + b->len, s, len);
    b->len += len;
    b->data[b->len] = '\0';

    return OMNI_OK;
}


static int
omnictl_buf_str(omnictl_buf_t *b, const char *s)
{
    return omnictl_buf_add(b, s, strlen(s));
}
