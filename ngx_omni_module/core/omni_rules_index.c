/*
 * The compiled set: per-rule prefilters, ranking, and the index.
 *
 * Rules are sorted into rank order (priority desc, conditions desc, id in
 * byte order), so a rule's index is its rank.  The index holds, per
 * (slot, channel), the rules that can win that slot on that channel, in
 * rank order, as compact entries carrying everything the scan tests
 * before it looks at a rule: dates, stage mask, a required segment and a
 * "needs one of these facts" mask.
 */

#include <stdlib.h>
#include <string.h>

#include "omni_rules_cc.h"


#define OMNI_MATCH_LIMIT    100000      /* pcre2 backtracking budget */
#define OMNI_DEPTH_LIMIT    1000


static unsigned
omni_cond_needs(const omni_cond_t *c)
{
    unsigned  i, needs;

    if (c == NULL) {
        return 0;
    }

    switch (c->kind) {
    case OMNI_C_ALL:
    case OMNI_C_ANY:
    case OMNI_C_NOT:
        needs = 0;
        for (i = 0; i < c->n; i++) {
            needs |= omni_cond_needs(c->u.kids[i]);
        }
        return needs;
    case OMNI_C_DEVICE:
        return OMNI_NEED_UA;
    case OMNI_C_PATH:
        return OMNI_NEED_PATH;
    case OMNI_C_QUERY:
        return OMNI_NEED_QUERY;
    case OMNI_C_REFERRER:
        return OMNI_NEED_REFERRER;
    case OMNI_C_GEO:
        return OMNI_NEED_GEO;
    case OMNI_C_EXPERIMENT:
        return OMNI_NEED_PID;
    case OMNI_C_STAGE:
    case OMNI_C_NUM:
    case OMNI_C_SEGMENT:
    case OMNI_C_ATTR:
    case OMNI_C_ACCOUNT:
    case OMNI_C_CART_SKU:
    case OMNI_C_CART_CAT:
    case OMNI_C_PURCHASED:
    case OMNI_C_LAST_SEEN:
    case OMNI_C_VIEWED:
    case OMNI_C_EVENT:
        return OMNI_NEED_PROFILE;
    default:
        return 0;
    }
}


/* The "needs one of" group a condition implies, if any. */
static unsigned
omni_cond_need(const omni_cond_t *c, uint64_t *mask)
{
    unsigned        i, n, kind;
    const int32_t  *ids;
    int32_t         one;

    ids = NULL;
    n = 0;
    kind = OMNI_FK_NONE;

    switch (c->kind) {

    case OMNI_C_EVENT:
        /* only when a count of 0 fails: then the event must exist */
        for (i = 0; i < c->nums->n; i++) {
            if (!((c->nums->op[i] == OMNI_OP_GTE && c->nums->v[i] > 0)
                  || (c->nums->op[i] == OMNI_OP_GT && c->nums->v[i] >= 0)
                  || (c->nums->op[i] == OMNI_OP_EQ && c->nums->v[i] != 0)))
            {
                continue;
            }

            one = (int32_t) c->b;
            ids = &one;
            n = 1;
            kind = OMNI_FK_EVENT;
            break;
        }
        break;

    case OMNI_C_PURCHASED:
        if (c->u.purch->nskus && !c->u.purch->ncats) {
            ids = c->u.purch->skus;
            n = c->u.purch->nskus;
            kind = OMNI_FK_PSKU;

        } else if (c->u.purch->ncats && !c->u.purch->nskus) {
            ids = c->u.purch->cats;
            n = c->u.purch->ncats;
            kind = OMNI_FK_PCAT;
        }
        break;

    case OMNI_C_VIEWED:
        if (c->u.view->nskus && !c->u.view->ncats) {
            ids = c->u.view->skus;
            n = c->u.view->nskus;
            kind = OMNI_FK_VSKU;

        } else if (c->u.view->ncats && !c->u.view->nskus) {
            ids = c->u.view->cats;
            n = c->u.view->ncats;
            kind = OMNI_FK_VCAT;
        }
        break;

    case OMNI_C_CART_SKU:
    case OMNI_C_CART_CAT:
        ids = c->u.ids;
        n = c->n;
        kind = c->kind == OMNI_C_CART_SKU ? OMNI_FK_CSKU : OMNI_FK_CCAT;
        break;

    case OMNI_C_SEGMENT:
        if (c->n > 1) {
            ids = c->u.ids;
            n = c->n;
            kind = OMNI_FK_SEG;
        }
        break;
    }

    *mask = 0;

    for (i = 0; i < n; i++) {
        *mask |= omni_fbit(ids[i]);
    }

    /* a full mask filters nothing */
    return *mask == ~(uint64_t) 0 ? OMNI_FK_NONE : kind;
}


/* Top-level conjuncts the index can test before the rule is looked at. */
static void
omni_rule_prefilter(omni_rule_t *r)
{
    unsigned                   i, n;
    const omni_cond_t         *c;
    const omni_cond_t *const  *kids;

    r->chan_mask = (1u << OMNI_CH_MAX) - 1;
    r->stage_mask = (1u << OMNI_STAGE_MAX) - 1;
    r->req_seg = -1;
    r->need_kind = OMNI_FK_NONE;
    r->need_any = 0;

    if (r->when == NULL) {
        return;
    }

    if (r->when->kind == OMNI_C_ALL) {
        kids = (const omni_cond_t *const *) r->when->u.kids;
        n = r->when->n;

    } else {
        kids = &r->when;
        n = 1;
    }

    for (i = 0; i < n; i++) {
        c = kids[i];

        if (c->kind == OMNI_C_CHANNEL) {
            r->chan_mask &= c->mask;

        } else if (c->kind == OMNI_C_STAGE) {
            r->stage_mask &= c->mask;

        } else if (c->kind == OMNI_C_SEGMENT && c->n == 1
                   && r->req_seg < 0)
        {
            r->req_seg = c->u.ids[0];

        } else if (r->need_kind == OMNI_FK_NONE) {
            r->need_kind = omni_cond_need(c, &r->need_any);
        }
    }
}




/* 1 when an index entry of r tests top-level conjunct c itself. */
static int
omni_entry_tests(const omni_rule_t *r, const omni_cond_t *c, int *seg)
{
    if (c->kind == OMNI_C_CHANNEL || c->kind == OMNI_C_STAGE) {
        /* a list is one channel's, and holds the rule only when all its
           channel conjuncts allow that channel; the entry's stage mask
           is all the stage conjuncts */
        return 1;
    }

    if (c->kind == OMNI_C_SEGMENT && c->n == 1 && !*seg
        && c->u.ids[0] == r->req_seg)
    {
        /* the first single segment: the prefilter's required one */
        *seg = 1;
        return 1;
    }

    return 0;
}


/*
 * The condition an index entry evaluates: the rule's without the
 * top-level conjuncts the entry already tests (omni_entry_tests()), so a
 * rule such as "segment X on the web" costs no condition evaluation at
 * all.  The rule keeps its whole condition for explain.  Returns -1 when
 * out of memory.
 */
static int
omni_entry_when(omni_ruleset_t *set, const omni_rule_t *r,
    const omni_cond_t **out)
{
    int                        seg;
    unsigned                   i, n, k;
    omni_cond_t               *all, **kids;
    const omni_cond_t *const  *in;

    *out = r->when;

    if (r->when == NULL) {
        return 0;
    }

    if (r->when->kind == OMNI_C_ALL) {
        in = (const omni_cond_t *const *) r->when->u.kids;
        n = r->when->n;

    } else {
        in = &r->when;
        n = 1;
    }

    for (i = 0, k = 0, seg = 0; i < n; i++) {
        k += !omni_entry_tests(r, in[i], &seg);
    }

    if (k == n) {
        return 0;
    }

    kids = omni_arena_alloc(&set->hot, (k ? k : 1) * sizeof(omni_cond_t *));
    if (kids == NULL) {
        return -1;
    }

    for (i = 0, k = 0, seg = 0; i < n; i++) {
        if (!omni_entry_tests(r, in[i], &seg)) {
            kids[k++] = (omni_cond_t *) in[i];
        }
    }

    if (k <= 1) {
        *out = k ? kids[0] : NULL;
        return 0;
    }

    all = omni_arena_alloc(&set->hot, sizeof(omni_cond_t));
    if (all == NULL) {
        return -1;
    }

    *all = *r->when;
    all->n = k;
    all->u.kids = kids;
    *out = all;

    return 0;
}


/* What a rule reads, and what its index entries can test up front. */
void
omni_rule_prepare(omni_rule_t *r)
{
    r->needs |= omni_cond_needs(r->when);
    omni_rule_prefilter(r);
}


omni_rb_t *
omni_rb_create(unsigned flags, omni_rules_report_t *report)
{
    omni_rb_t  *rb;

    rb = calloc(1, sizeof(omni_rb_t));
    if (rb == NULL) {
        return NULL;
    }

    rb->set = calloc(1, sizeof(omni_ruleset_t));
    if (rb->set == NULL) {
        free(rb);
        return NULL;
    }

    rb->flags = flags;
    rb->report = report != NULL ? report : &rb->own;
    memset(rb->report, 0, sizeof(omni_rules_report_t));

    return rb;
}



void
omni_rb_destroy(omni_rb_t *rb)
{
    uint32_t  i;

    if (rb == NULL) {
        return;
    }

    for (i = 0; i < rb->nregexes; i++) {
        pcre2_code_free(rb->regexes[i]);
    }

    free(rb->regexes);
    free(rb->rules);
    free(rb->id_files);
    free(rb->arms);
    free(rb->stores);
    free(rb->products);
    free(rb->product_sku);
    omni_sym_free(&rb->ids);

    if (rb->set != NULL) {
        omni_rules_free(rb->set);
    }

    free(rb);
}


/* Rank: priority (high first), conditions (more first), id (bytes). */
static int
omni_rule_rank_cmp(const void *a, const void *b)
{
    const omni_rule_t  *x = a, *y = b;
    size_t              n;
    int                 c;

    if (x->priority != y->priority) {
        return x->priority > y->priority ? -1 : 1;
    }

    if (x->leaves != y->leaves) {
        return x->leaves > y->leaves ? -1 : 1;
    }

    n = x->id.len < y->id.len ? x->id.len : y->id.len;
    c = memcmp(x->id.data, y->id.data, n);

    if (c != 0) {
        return c;
    }

    return x->id.len < y->id.len ? -1 : (x->id.len > y->id.len);
}


static int
omni_strv_cmp(omni_strv_t a, omni_strv_t b)
{
    size_t  n = a.len < b.len ? a.len : b.len;
    int     c = memcmp(a.data, b.data, n);

    return c != 0 ? c : (a.len < b.len ? -1 : (a.len > b.len));
}


omni_ruleset_t *
omni_rb_finish(omni_rb_t *rb)
{
    uint32_t         i, j, s, ch, n, total;
    int32_t          remap[OMNI_RULES_MAX_SLOTS];
    omni_rule_t     *r;
    omni_ruleset_t  *set = rb->set;

    if (rb->oom) {
        goto failed;
    }

    /* slot ids in name order */
    for (i = 0; i < set->nslots; i++) {
        remap[i] = (int32_t) i;
    }

    for (i = 1; i < set->nslots; i++) {
        for (j = i; j > 0
             && omni_strv_cmp(set->slots[remap[j - 1]],
                              set->slots[remap[j]]) > 0; j--)
        {
            int32_t  t = remap[j];

            remap[j] = remap[j - 1];
            remap[j - 1] = t;
        }
    }

    {
        omni_strv_t  sorted[OMNI_RULES_MAX_SLOTS];
        int32_t      inv[OMNI_RULES_MAX_SLOTS];

        for (i = 0; i < set->nslots; i++) {
            sorted[i] = set->slots[remap[i]];
            inv[remap[i]] = (int32_t) i;
        }

        for (i = 0; i < set->nslots; i++) {
            set->slots[i] = sorted[i];
        }

        for (i = 0; i < rb->nrules; i++) {
            if (rb->rules[i].slot >= 0) {
                rb->rules[i].slot = inv[rb->rules[i].slot];
            }
        }
    }

    /* rank */
    if (rb->nrules > 1) {
        qsort(rb->rules, rb->nrules, sizeof(omni_rule_t),
              omni_rule_rank_cmp);
    }

    set->nrules = rb->nrules;
    set->rules = omni_arena_alloc(&set->hot,
                                  (rb->nrules ? rb->nrules : 1)
                                  * sizeof(omni_rule_t));
    if (set->rules == NULL) {
        goto failed;
    }

    if (rb->nrules) {
        memcpy(set->rules, rb->rules, rb->nrules * sizeof(omni_rule_t));
    }

    /*
     * A campaign is capped when any rule caps it or cools it down: its
     * impressions, from whichever rule, are the ones a decision reserves
     * (omni_decision_campaigns()).
     */
    for (i = 0; i < set->nrules; i++) {
        r = &set->rules[i];
        r->campaign_hash = omni_campaign_hash(r->campaign.data,
                                              r->campaign.len);
    }

    for (i = 0; i < set->nrules; i++) {
        if (!set->rules[i].cap_max && !set->rules[i].cooldown) {
            continue;
        }

        for (j = 0; j < set->nrules; j++) {
            if (set->rules[j].campaign_hash == set->rules[i].campaign_hash) {
                set->rules[j].campaign_capped = 1;
            }
        }

        set->needs |= OMNI_NEED_CAPS;
    }

    /* indexes: one list per (slot, channel), one per channel for the
       slot-less rules; each in rank order */
    total = 0;

    for (i = 0; i < set->nrules; i++) {
        r = &set->rules[i];

        if (!r->enabled) {
            continue;
        }

        set->needs |= r->needs;

        if (r->holdout_bp) {
            set->needs |= OMNI_NEED_HELD;
        }

        if ((r->slot >= 0 && r->html) || r->npixels) {
            set->needs |= OMNI_NEED_INJECT;
        }

        for (ch = 0; ch < OMNI_CH_MAX; ch++) {
            if (!(r->chan_mask & (1u << ch))) {
                continue;
            }

            if (r->slot >= 0) {
                set->slot_n[r->slot][ch]++;

            } else {
                set->free_n[ch]++;
            }

            total++;
        }
    }

    set->lists = omni_arena_alloc(&set->hot,
                                  (total ? total : 1) * sizeof(omni_entry_t));
    if (set->lists == NULL) {
        goto failed;
    }

    n = 0;

    for (s = 0; s < set->nslots; s++) {
        for (ch = 0; ch < OMNI_CH_MAX; ch++) {
            set->slot_off[s][ch] = n;
            n += set->slot_n[s][ch];
            set->slot_n[s][ch] = 0;
        }
    }

    for (ch = 0; ch < OMNI_CH_MAX; ch++) {
        set->free_off[ch] = n;
        n += set->free_n[ch];
        set->free_n[ch] = 0;
    }

    for (i = 0; i < set->nrules; i++) {
        omni_entry_t       *e;
        const omni_cond_t  *when;

        r = &set->rules[i];

        if (!r->enabled) {
            continue;
        }

        if (omni_entry_when(set, r, &when) != 0) {
            goto failed;
        }

        for (ch = 0; ch < OMNI_CH_MAX; ch++) {
            if (!(r->chan_mask & (1u << ch))) {
                continue;
            }

            if (r->slot >= 0) {
                e = &set->lists[set->slot_off[r->slot][ch]
                                + set->slot_n[r->slot][ch]++];

            } else {
                e = &set->lists[set->free_off[ch] + set->free_n[ch]++];
            }

            e->when = when;
            e->rule = i;
            e->start = r->start;
            e->end = r->end ? r->end : UINT32_MAX;
            e->req_seg = r->req_seg;
            e->stage_mask = (uint16_t) r->stage_mask;
            e->need_kind = (uint16_t) r->need_kind;
            e->need_any = r->need_any;
        }
    }

    if (set->holdout_bp > 0) {
        set->needs |= OMNI_NEED_PID;
    }

    /* stores */
    set->nstores = rb->nstores;
    set->stores = omni_arena_alloc(&set->arena,
                                   (rb->nstores ? rb->nstores : 1)
                                   * sizeof(omni_store_t));
    if (set->stores == NULL) {
        goto failed;
    }

    if (rb->nstores) {
        memcpy(set->stores, rb->stores, rb->nstores * sizeof(omni_store_t));
    }

    /* catalog by sku id */
    set->nproducts = rb->nproducts;
    set->products = omni_arena_alloc(&set->arena,
                                     (rb->nproducts ? rb->nproducts : 1)
                                     * sizeof(omni_product_t));
    set->product_of = omni_arena_alloc(&set->arena,
                                       (set->skus.n ? set->skus.n : 1)
                                       * sizeof(int32_t));
    if (set->products == NULL || set->product_of == NULL) {
        goto failed;
    }

    for (i = 0; i < set->skus.n; i++) {
        set->product_of[i] = -1;
    }

    for (i = 0; i < rb->nproducts; i++) {
        set->products[i] = rb->products[i];
        set->product_of[rb->product_sku[i]] = (int32_t) i;
    }

    /* regexes: one match block and a backtracking budget for the set */
    set->regexes = rb->regexes;
    set->nregexes = rb->nregexes;
    rb->regexes = NULL;
    rb->nregexes = 0;

    if (set->nregexes > 0) {
        set->md = pcre2_match_data_create(1, NULL);
        set->mctx = pcre2_match_context_create(NULL);

        if (set->md == NULL || set->mctx == NULL) {
            goto failed;
        }

        pcre2_set_match_limit(set->mctx, OMNI_MATCH_LIMIT);
        pcre2_set_depth_limit(set->mctx, OMNI_DEPTH_LIMIT);
    }

    rb->set = NULL;
    omni_rb_destroy(rb);

    return set;

failed:

    omni_rb_destroy(rb);

    return NULL;
}


void
omni_rules_free(omni_ruleset_t *set)
{
    uint32_t  i;

    if (set == NULL) {
        return;
    }

    for (i = 0; i < set->nregexes; i++) {
        pcre2_code_free(set->regexes[i]);
    }

    free(set->regexes);

    if (set->md != NULL) {
        pcre2_match_data_free(set->md);
    }

    if (set->mctx != NULL) {
        pcre2_match_context_free(set->mctx);
    }

    omni_sym_free(&set->skus);
    omni_sym_free(&set->cats);
    omni_sym_free(&set->segs);
    omni_sym_free(&set->keys);
    omni_sym_free(&set->events);
    omni_arena_free(&set->hot);
    omni_arena_free(&set->arena);
    free(set);
}
