/*
 * Shared by the rules unit tests (test_rules.c, test_rules_scenarios.c):
 * crafted profile records, loading helpers and small assertions.
 * Each test file uses a subset of them.
 */

#ifndef RULES_HELPERS_H
#define RULES_HELPERS_H

#pragma GCC diagnostic ignored "-Wunused-function"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "omni_tap.h"
#include "omni_rules.h"
#include "omni_json.h"


/* 2025-11-23 12:53:20 UTC, a Sunday */
#define NOW   1763902400u
#define HOUR  3600u
#define DAY   86400u

#define MAX_RECS  512

static unsigned char  *recbufs[MAX_RECS];
static omni_rec_t     *recs[MAX_RECS];
static unsigned        nrecs;
static char            out[65536];


/* ---- helpers ---- */

/* A profile view from the import JSON shape (omni_json.h). */
static const omni_rec_t *
rec_from(const char *fmt, ...)
{
    char            js[8192], err[256];
    va_list         ap;
    json_t         *j;
    json_error_t    je;
    omni_profile_t  p;
    unsigned char  *buf;
    size_t          len;
    omni_rec_t     *rec;

    va_start(ap, fmt);
    vsnprintf(js, sizeof(js), fmt, ap);
    va_end(ap);

    j = json_loads(js, 0, &je);
    if (j == NULL) {
        printf("# bad test profile JSON: %s: %s\n", je.text, js);
        exit(2);
    }

    omni_profile_init(&p, NULL);

    if (omni_profile_from_json(&p, j, err, sizeof(err)) != OMNI_OK) {
        printf("# bad test profile: %s\n", err);
        exit(2);
    }

    json_decref(j);

    if (omni_profile_encode(&p, &buf, &len) != OMNI_OK || nrecs >= MAX_RECS)
    {
        printf("# cannot encode a test profile\n");
        exit(2);
    }

    omni_profile_free(&p);

    rec = malloc(sizeof(omni_rec_t));
    if (rec == NULL || omni_rec_parse(rec, buf, len) != OMNI_OK) {
        printf("# cannot parse a test profile\n");
        exit(2);
    }

    recbufs[nrecs] = buf;
    recs[nrecs++] = rec;

    return rec;
}


static void
recs_free(void)
{
    unsigned  i;

    for (i = 0; i < nrecs; i++) {
        free(recbufs[i]);
        free(recs[i]);
    }

    nrecs = 0;
}


static omni_ruleset_t *
load(const char *text)
{
    int                   rc;
    unsigned              i;
    omni_ruleset_t       *set;
    omni_rules_report_t   rep;

    rc = omni_rules_load_buffer("t.json", text, strlen(text), &set, &rep);

    if (rc != OMNI_OK) {
        printf("# load failed (%d):\n", rc);
        for (i = 0; i < rep.nerrors && i < OMNI_RULES_MAX_ERRORS; i++) {
            printf("#   %s\n", rep.errors[i]);
        }
        return NULL;
    }

    return set;
}


/* The first error of loading text as "t.json". */
static const char *
load_error(const char *text)
{
    static char           first[OMNI_RULES_ERROR_LEN];
    omni_ruleset_t       *set;
    omni_rules_report_t   rep;

    if (omni_rules_load_buffer("t.json", text, strlen(text), &set, &rep)
        == OMNI_OK)
    {
        omni_rules_free(set);
        return "(loaded)";
    }

    snprintf(first, sizeof(first), "%s", rep.nerrors ? rep.errors[0] : "");

    return first;
}


static void
ctx_init(omni_eval_t *ctx, const omni_rec_t *rec, unsigned ch)
{
    omni_eval_init(ctx);
    ctx->rec = rec;
    ctx->pid = rec ? rec->id : NULL;
    ctx->channel = ch;
    ctx->now = NOW;
}


/* The id of the rule that won a slot, or "". */
static const char *
winner(const omni_ruleset_t *set, const omni_decision_t *d, const char *slot)
{
    int  s, r;

    s = omni_rules_slot_find(set, slot, strlen(slot));
    r = s >= 0 ? omni_decision_slot_rule(d, (unsigned) s) : -1;

    return r >= 0 ? omni_rules_rule_id(set, (unsigned) r, NULL) : "";
}


static const char *
decide_slot(const omni_ruleset_t *set, omni_eval_t *ctx, const char *slot)
{
    omni_decision_t  d;

    omni_decide(set, ctx, &d);

    return winner(set, &d, slot);
}


/*
 * Does a one-rule set with this "when" show its banner for the context?
 * base may carry request fields; its rec is replaced by rec.
 */
static int
when_ok(const char *when, const omni_rec_t *rec, const omni_eval_t *base)
{
    char             text[8192];
    int              r;
    omni_eval_t      ctx;
    omni_ruleset_t  *set;

    snprintf(text, sizeof(text), "{\"id\": \"t\", \"when\": %s, "
             "\"banner\": {\"slot\": \"s\", \"html\": \"x\"}}", when);

    set = load(text);
    if (set == NULL) {
        return -1;
    }

    if (base != NULL) {
        ctx = *base;

    } else {
        ctx_init(&ctx, NULL, OMNI_CH_WEB);
    }

    ctx.rec = rec;
    if (rec != NULL) {
        ctx.pid = rec->id;
    }

    ctx.geo_state = 0;

    r = strcmp(decide_slot(set, &ctx, "s"), "t") == 0;
    omni_rules_free(set);

    return r;
}


static const char *
render_hero(const omni_ruleset_t *set, omni_eval_t *ctx,
    const omni_decision_t *d)
{
    omni_render_slot_html(set, ctx, d, "hero", 4, out, sizeof(out));
    return out;
}


static int
json_valid(const char *s)
{
    json_t        *j;
    json_error_t   e;

    j = json_loads(s, JSON_REJECT_DUPLICATES, &e);
    if (j == NULL) {
        printf("# invalid JSON: %s: %s\n", e.text, s);
        return 0;
    }

    json_decref(j);

    return 1;
}


/* A profile id from a small number. */
static const char *
pid_hex(unsigned n)
{
    static char  hex[33];

    snprintf(hex, sizeof(hex), "%08x00000000000000000000%04x", n * 2654435761u,
             n & 0xffff);

    return hex;
}


static int
write_file(const char *dir, const char *name, const char *text)
{
    char   path[512];
    FILE  *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);

    f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }

    fputs(text, f);
    fclose(f);

    return 0;
}


/* ---- loading and errors ---- */

#endif /* RULES_HELPERS_H */
