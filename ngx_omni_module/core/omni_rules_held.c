/*
 * Rule holdouts, counted: which rules a visitor matched but did not see
 * because the visitor is in the rule's own control group.  The console
 * and the metrics set these next to the rule's impressions, so that a
 * marketer can compare the two groups.  Off the decision's own path:
 * omni_decide() skips a held-out rule without looking at its conditions,
 * so this looks at them, for the few rules whose holdout holds the
 * visitor.
 */

#include "omni_rules_int.h"


unsigned
omni_decision_held(const omni_ruleset_t *set, omni_eval_t *ctx,
    const omni_decision_t *d, uint32_t *out, unsigned max)
{
    unsigned            n;
    uint32_t            i;
    omni_run_t          run;
    const omni_rule_t  *r;

    if (set == NULL || !(set->needs & OMNI_NEED_HELD) || ctx->pid == NULL
        || d->block != OMNI_BLOCK_NONE || ctx->channel >= OMNI_CH_MAX)
    {
        return 0;
    }

    n = 0;
    run.set = NULL;

    for (i = 0; i < set->nrules && n < max; i++) {
        r = &set->rules[i];

        if (!r->enabled || r->holdout_bp == 0
            || !(r->chan_mask & (1u << ctx->channel))
            || ctx->now < r->start || (r->end && ctx->now >= r->end)
            || omni_rules_bucket(ctx->pid, r->holdout_id.data,
                                 r->holdout_id.len) >= r->holdout_bp)
        {
            continue;
        }

        if (run.set == NULL) {
            omni_run_init(&run, set, ctx);
        }

        if (omni_rule_match(&run, r)) {
            out[n++] = i;
        }
    }

    return n;
}
