/*
 * Decide and explain.
 *
 * omni_decide() is the request path: no allocation, no I/O, no locale or
 * time zone calls.  Rules are looked at through the set's index, one
 * list per (slot, channel) in rank order, so a slot stops at its first
 * eligible match and rules for other channels are never touched.  Index
 * entries carry the cheap tests (dates, stage, a required segment, a
 * "needs one of" fact mask), so most candidates are rejected without
 * touching the rule or its conditions.
 *
 * omni_explain() runs the same checks on every rule with a "why" buffer;
 * it is the only place that formats text.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "omni_rules_int.h"


/* ---- rules ---- */

int
omni_rule_match(omni_run_t *run, const omni_rule_t *r)
{
    run->match.store = -1;
    run->match.store_km = 0;
    run->match.view = -1;
    run->match.purchase = -1;

    return r->when == NULL || omni_cond_eval(run, r->when);
}


/* Campaign names in the shared activity zone: never 0 (an empty slot). */
uint64_t
omni_campaign_hash(const char *name, size_t len)
{
    uint64_t  h;

    h = omni_hash_str(name, len);

    return h ? h : 1;
}


/*
 * The rule's campaign impressions: the profile's hour buckets plus the
 * impressions not in the profile yet (ctx->extra), bucketed the same way
 * (an impression counts in the window when its hour starts after
 * now - window).
 */
static void
omni_rule_impressions(omni_run_t *run, const omni_rule_t *r,
    uint32_t *total, uint32_t *last, uint32_t *inwin)
{
    unsigned      i;
    uint64_t      h;
    uint32_t      t;
    omni_eval_t  *ctx = run->ctx;

    (void) omni_rec_impressions(run->rec, r->campaign.data, r->campaign.len,
                                ctx->now, r->cap_per, total, last, inwin);

    if (ctx->nextra == 0) {
        return;
    }

    h = r->campaign_hash;

    for (i = 0; i < ctx->nextra; i++) {
        if (ctx->extra[i].campaign != h) {
            continue;
        }

        t = ctx->extra[i].time;

        (*total)++;

        if (t > *last) {
            *last = t;
        }

        if ((int64_t) (t / 3600) * 3600
            > (int64_t) ctx->now - (int64_t) r->cap_per)
        {
            (*inwin)++;
        }
    }
}


/* 1 when the rule's frequency cap is reached or its cooldown runs. */
static int
omni_rule_capped(omni_run_t *run, const omni_rule_t *r)
{
    uint32_t      now, total, last, inwin;

    now = run->ctx->now;

    omni_rule_impressions(run, r, &total, &last, &inwin);

    if (r->cap_max && (r->cap_per ? inwin : total) >= r->cap_max) {
        if (run->why) {
            char  d[32];

            if (r->cap_per) {
                omni_duration_format(r->cap_per, d, sizeof(d));
            }

            omni_why(run, "cap %u/%s reached (%u shown)", r->cap_max,
                     r->cap_per ? d : "lifetime",
                     r->cap_per ? inwin : total);
        }

        return 1;
    }

    if (r->cooldown && last && omni_ago(now, last) < r->cooldown) {
        if (run->why) {
            char  d[32], a[32];

            omni_duration_format(r->cooldown, d, sizeof(d));
            omni_duration_format(omni_ago(now, last), a, sizeof(a));
            omni_why(run, "cooldown %s (last shown %s ago)", d, a);
        }

        return 1;
    }

    return 0;
}


/* Dates, holdout, suppression, frequency cap, cooldown. */
int
omni_rule_eligible(omni_run_t *run, const omni_rule_t *r)
{
    unsigned           i;
    uint32_t           now, b;
    omni_eval_t       *ctx = run->ctx;
    omni_fpurch_t     *fp;

    now = ctx->now;

    if (now < r->start || (r->end && now >= r->end)) {
        omni_why(run, "not active now");
        return 0;
    }

    if (r->holdout_bp && ctx->pid != NULL) {
        b = omni_rules_bucket(ctx->pid, r->holdout_id.data,
                              r->holdout_id.len);

        if (b < r->holdout_bp) {
            omni_why(run, "holdout %u.%02u%% (bucket %u.%02u%%)",
                     r->holdout_bp / 100, r->holdout_bp % 100, b / 100,
                     b % 100);
            return 0;
        }
    }

    if (r->nsupp_skus || r->nsupp_cats) {
        if (!(run->have & OMNI_F_PURCH)) {
            omni_run_purch(run);
        }

        for (i = 0; i < run->npurch; i++) {
            fp = &run->purch[i];

            if (r->supp_within && omni_ago(now, fp->time) > r->supp_within) {
                continue;
            }

            if ((r->nsupp_skus
                 && omni_ids_has(r->supp_skus, r->nsupp_skus, fp->sku))
                || (r->nsupp_cats
                    && omni_ids_has(r->supp_cats, r->nsupp_cats, fp->cat)))
            {
                if (run->why) {
                    const omni_strv_t  *n = fp->sku >= 0
                                   ? &run->set->skus.names[fp->sku] : NULL;

                    omni_why(run, "suppressed: bought %.*s",
                             n ? (int) n->len : 0, n ? n->data : "");
                }

                return 0;
            }
        }
    }

    if ((r->cap_max || r->cooldown) && omni_rule_capped(run, r)) {
        return 0;
    }

    return 1;
}


/*
 * Consent stated in the profile is enforced here, for every channel:
 * no personalization consent, no decision; no email/SMS consent, nothing
 * for that channel; no ads consent (or OMNI_EVAL_NO_ADS: Sec-GPC, DNT),
 * no pixels.  A profile that never stated consent is not restricted
 * here; the caller passes OMNI_EVAL_NO_ADS where the law wants opt-in.
 */
int
omni_rule_consent(const omni_eval_t *ctx, unsigned *no_ads)
{
    int       in;
    uint32_t  c;

    *no_ads = (ctx->flags & OMNI_EVAL_NO_ADS) != 0;

    c = omni_consent_merge(ctx->rec ? ctx->rec->consent : 0,
                           ctx->req_consent);
    in = (ctx->flags & OMNI_EVAL_OPT_IN) != 0;

    if (!omni_consent_allows(c, OMNI_CONSENT_PERSONALIZE, in)) {
        return OMNI_BLOCK_CONSENT;
    }

    /* email and SMS are opt-in whatever the web's model (a stated no) */
    if ((ctx->channel == OMNI_CH_EMAIL
         && !omni_consent_allows(c, OMNI_CONSENT_EMAIL, in))
        || (ctx->channel == OMNI_CH_SMS
            && !omni_consent_allows(c, OMNI_CONSENT_SMS, in)))
    {
        return OMNI_BLOCK_CHANNEL;
    }

    if (!omni_consent_allows(c, OMNI_CONSENT_ADS, in)) {
        *no_ads = 1;
    }

    return OMNI_BLOCK_NONE;
}


/*
 * The cheap checks on an index entry: dates, stage, a required segment;
 * then the conditions.  The rule itself is not touched.  Inline in the
 * scan: most entries fail a cheap check, and a call's register saves
 * cost more than the checks.
 */
static inline __attribute__((always_inline)) int
omni_entry_match(omni_run_t *run, const omni_entry_t *e)
{
    uint32_t  now = run->ctx->now;

    if (now < e->start || now >= e->end) {
        return 0;
    }

    if (e->stage_mask != (1u << OMNI_STAGE_MAX) - 1
        && !((e->stage_mask >> omni_run_stage(run)) & 1))
    {
        return 0;
    }

    if (e->req_seg >= 0 && !omni_run_has_seg(run, e->req_seg)) {
        return 0;
    }

    if (e->need_kind != OMNI_FK_NONE
        && !(omni_run_fbits(run, e->need_kind) & e->need_any))
    {
        return 0;
    }

    run->match.store = -1;
    run->match.store_km = 0;
    run->match.view = -1;
    run->match.purchase = -1;

    return e->when == NULL || omni_cond_eval(run, e->when);
}


static int
omni_shown_add(omni_decision_t *d, uint32_t rule, int32_t slot,
    const omni_match_t *m)
{
    omni_shown_t  *s;

    if (d->nshown >= OMNI_DECISION_MAX_SHOWN) {
        d->dropped++;
        return -1;
    }

    s = &d->shown[d->nshown++];
    s->rule = rule;
    s->slot = slot;
    s->match = *m;

    return 0;
}


int
omni_decide(const omni_ruleset_t *set, omni_eval_t *ctx, omni_decision_t *d)
{
    uint32_t            s, k, n, i, j;
    uint32_t            used[OMNI_DECISION_MAX_PIXELS];
    const omni_entry_t *list;
    const omni_rule_t  *r;
    omni_shown_t        tmp;
    omni_run_t          run;

    d->now = ctx->now;
    d->channel = ctx->channel;
    d->block = OMNI_BLOCK_NONE;
    d->holdout = 0;
    d->nshown = 0;
    d->npixels = 0;
    d->nheaders = 0;
    d->dropped = 0;
    memset(d->slot, 0xff, sizeof(d->slot));

    d->block = (unsigned) omni_rule_consent(ctx, &d->no_ads);

    if (set == NULL || d->block != OMNI_BLOCK_NONE) {
        return OMNI_OK;
    }

    if (set->holdout_bp && ctx->pid != NULL
        && omni_rules_bucket(ctx->pid, set->holdout_id.data,
                             set->holdout_id.len) < set->holdout_bp)
    {
        d->block = OMNI_BLOCK_HOLDOUT;
        d->holdout = 1;
        return OMNI_OK;
    }

    omni_run_init(&run, set, ctx);

    /* one winner per slot: the first eligible match in rank order */
    for (s = 0; s < set->nslots; s++) {
        list = set->lists + set->slot_off[s][run.ch];
        n = set->slot_n[s][run.ch];

        for (k = 0; k < n; k++) {
            if (!omni_entry_match(&run, &list[k])) {
                continue;
            }

            r = &set->rules[list[k].rule];

            if (omni_rule_eligible(&run, r)) {
                (void) omni_shown_add(d, list[k].rule, (int32_t) s,
                                      &run.match);
                break;
            }
        }
    }

    /* pixel- and header-only rules: every eligible match */
    list = set->lists + set->free_off[run.ch];
    n = set->free_n[run.ch];

    for (k = 0; k < n; k++) {
        r = &set->rules[list[k].rule];

        if (d->no_ads && r->nheaders == 0) {
            continue;           /* nothing it could show */
        }

        if (omni_entry_match(&run, &list[k]) && omni_rule_eligible(&run, r)) {
            (void) omni_shown_add(d, list[k].rule, -1, &run.match);
        }
    }

    /* rank order (rule index order) for pixels and header precedence */
    for (i = 1; i < d->nshown; i++) {
        tmp = d->shown[i];

        for (j = i; j > 0 && d->shown[j - 1].rule > tmp.rule; j--) {
            d->shown[j] = d->shown[j - 1];
        }

        d->shown[j] = tmp;
    }

    for (i = 0; i < d->nshown; i++) {
        r = &set->rules[d->shown[i].rule];

        if (d->shown[i].slot >= 0) {
            d->slot[d->shown[i].slot] = (int8_t) i;
        }

        /* pixels, once per distinct source */
        for (k = 0; !d->no_ads && k < r->npixels; k++) {
            for (j = 0; j < d->npixels; j++) {
                if (used[j] == r->pixels[k].key) {
                    break;
                }
            }

            if (j < d->npixels) {
                continue;
            }

            if (d->npixels >= OMNI_DECISION_MAX_PIXELS) {
                d->dropped++;
                continue;
            }

            used[d->npixels] = r->pixels[k].key;
            d->pixels[d->npixels].shown = (uint8_t) i;
            d->pixels[d->npixels].pixel = (uint8_t) k;
            d->npixels++;
        }

        /* headers: the highest-ranked rule sets a name */
        for (k = 0; k < r->nheaders; k++) {
            for (j = 0; j < d->nheaders; j++) {
                const omni_rule_t  *o = &set->rules[d->shown[d->headers[j]
                                                            .shown].rule];

                if (o->headers[d->headers[j].header].key
                    == r->headers[k].key)
                {
                    break;
                }
            }

            if (j < d->nheaders) {
                continue;
            }

            if (d->nheaders >= OMNI_DECISION_MAX_HEADERS) {
                d->dropped++;
                continue;
            }

            d->headers[d->nheaders].shown = (uint8_t) i;
            d->headers[d->nheaders].header = (uint8_t) k;
            d->nheaders++;
        }
    }

    return OMNI_OK;
}


int
omni_decision_slot_rule(const omni_decision_t *d, unsigned slot)
{
    if (slot >= OMNI_RULES_MAX_SLOTS || d->slot[slot] < 0) {
        return -1;
    }

    return (int) d->shown[(unsigned) d->slot[slot]].rule;
}


/* ---- explain ---- */

static void
omni_explain_line(omni_sink_t *s, const omni_rule_t *r, const char *fmt,
    ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void
omni_explain_line(omni_sink_t *s, const omni_rule_t *r, const char *fmt,
    ...)
{
    char     buf[OMNI_RULES_ERROR_LEN];
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);

    if (r != NULL) {
        s->put(s, r->id.data, r->id.len);
        s->put(s, ": ", 2);
    }

    omni_sink_str(s, buf);
    s->put(s, "\n", 1);
}


size_t
omni_explain(const omni_ruleset_t *set, omni_eval_t *ctx, char *out,
    size_t cap)
{
    omni_sink_t  s;

    omni_sink_buf(&s, out, cap);
    omni_explain_sink(set, ctx, &s);

    return omni_sink_end(&s);
}


void
omni_explain_sink(const omni_ruleset_t *set, omni_eval_t *ctx,
    omni_sink_t *s)
{
    char                why[OMNI_RULES_ERROR_LEN];
    uint32_t            i, k, b;
    int                 shown;
    const char         *slot;
    const omni_rule_t  *r, *w;
    omni_why_t          wy;
    omni_run_t          run;
    omni_decision_t     d;

    if (set == NULL) {
        return;
    }

    (void) omni_decide(set, ctx, &d);

    if (set->holdout_bp) {
        if (ctx->pid == NULL) {
            omni_explain_line(s, NULL, "holdout: no profile id, not held "
                              "out");

        } else {
            b = omni_rules_bucket(ctx->pid, set->holdout_id.data,
                                  set->holdout_id.len);
            omni_explain_line(s, NULL, "holdout: %s \"%.*s\" (bucket "
                              "%u.%02u%%, holdout %u.%02u%%)",
                              d.holdout ? "in" : "not in",
                              (int) set->holdout_id.len,
                              set->holdout_id.data, b / 100, b % 100,
                              set->holdout_bp / 100,
                              set->holdout_bp % 100);
        }
    }

    if (d.block == OMNI_BLOCK_CONSENT) {
        omni_explain_line(s, NULL, "consent: personalization refused");

    } else if (d.block == OMNI_BLOCK_CHANNEL) {
        omni_explain_line(s, NULL, "consent: no consent for %s",
                          omni_channel_name(ctx->channel));

    } else if (d.no_ads) {
        omni_explain_line(s, NULL, "consent: no pixels (ads not allowed)");
    }

    omni_run_init(&run, set, ctx);

    for (i = 0; i < set->nrules; i++) {
        r = &set->rules[i];

        if (d.block != OMNI_BLOCK_NONE) {
            omni_explain_line(s, r, "skipped: %s",
                              d.holdout ? "holdout" : "consent");
            continue;
        }

        if (!r->enabled) {
            omni_explain_line(s, r, "disabled");
            continue;
        }

        shown = -1;
        for (k = 0; k < d.nshown; k++) {
            if (d.shown[k].rule == i) {
                shown = (int) k;
                break;
            }
        }

        if (shown >= 0) {
            if (r->slot >= 0) {
                omni_explain_line(s, r, "shown in slot %.*s",
                                  (int) set->slots[r->slot].len,
                                  set->slots[r->slot].data);

            } else {
                omni_explain_line(s, r, "shown (%s)", r->npixels
                                  ? (r->nheaders ? "pixels, headers"
                                                 : "pixels")
                                  : "headers");
            }

            continue;
        }

        why[0] = '\0';
        wy.buf = why;
        wy.cap = sizeof(why);
        wy.set = 0;
        run.why = &wy;

        if (ctx->now < r->start || (r->end && ctx->now >= r->end)) {
            omni_explain_line(s, r, "skipped: not active now");
            continue;
        }

        if (!omni_rule_match(&run, r)) {
            omni_explain_line(s, r, "no: %s", why[0] ? why : "conditions");
            continue;
        }

        if (!omni_rule_eligible(&run, r)) {
            omni_explain_line(s, r, "skipped: %s", why);
            continue;
        }

        if (r->slot >= 0) {
            k = (uint32_t) r->slot;
            slot = set->slots[k].data;

            if (d.slot[k] >= 0) {
                w = &set->rules[d.shown[(unsigned) d.slot[k]].rule];
                omni_explain_line(s, r, "lost: slot %.*s went to %.*s",
                                  (int) set->slots[k].len, slot,
                                  (int) w->id.len, w->id.data);

            } else {
                omni_explain_line(s, r, "dropped: decision full");
            }

        } else if (d.no_ads && r->nheaders == 0) {
            omni_explain_line(s, r, "skipped: no pixels (ads not allowed)");

        } else {
            omni_explain_line(s, r, "dropped: decision full");
        }
    }

    run.why = NULL;
}


int
omni_decision_caps_hold(const omni_ruleset_t *set, omni_eval_t *ctx,
    const omni_decision_t *d)
{
    unsigned            i;
    omni_run_t          run;
    const omni_rule_t  *r;

    if (set == NULL || d->nshown == 0) {
        return 1;
    }

    omni_run_init(&run, set, ctx);

    for (i = 0; i < d->nshown; i++) {
        r = &set->rules[d->shown[i].rule];

        if ((r->cap_max || r->cooldown) && omni_rule_capped(&run, r)) {
            return 0;
        }
    }

    return 1;
}


unsigned
omni_decision_campaigns(const omni_ruleset_t *set, const omni_decision_t *d,
    uint64_t *out, unsigned max)
{
    unsigned            i, j, n;
    uint64_t            h;
    const omni_rule_t  *r;

    n = 0;

    for (i = 0; set != NULL && i < d->nshown && n < max; i++) {
        r = &set->rules[d->shown[i].rule];

        if (!r->campaign_capped) {
            continue;
        }

        h = r->campaign_hash;

        for (j = 0; j < n && out[j] != h; j++) {
            /* void */
        }

        if (j == n) {
            out[n++] = h;
        }
    }

    return n;
}
