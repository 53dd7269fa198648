/*
 * Decide and explain.
 *
 * omni_decide() is the request path: no allocation, no I/O, no locale or
 * time zone calls.  Rules are looked at through the set's index, one
 * list per (slot, channel) in rank order, so a slot stops at its first
 * eligible match and rules for other channels are never touched.  Before
 * a rule's conditions run, its precomputed masks (dates, stage, one
 * required segment) reject most non-candidates with a few compares.
 *
 * Profile facts (segment membership, cart totals, purchases, views) are
 * computed at most once per evaluation, on first use, into the run state
 * on the stack; the geo callback runs at most once per context.
 *
 * omni_explain() runs the same checks for every rule with a "why" buffer,
 * and is the only place that formats text.
 */

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "omni_rules_int.h"


static const omni_rec_t  omni_rec_empty;

static int omni_cond_eval(omni_run_t *run, const omni_cond_t *c);


void
omni_eval_init(omni_eval_t *ctx)
{
    memset(ctx, 0, sizeof(omni_eval_t));
}


const omni_rec_t *
omni_rec_or_empty(const omni_rec_t *rec)
{
    return rec != NULL ? rec : &omni_rec_empty;
}


void
omni_run_init(omni_run_t *run, const omni_ruleset_t *set, omni_eval_t *ctx)
{
    /* the fact arrays are filled on demand: only the header is reset */
    run->set = set;
    run->ctx = ctx;
    run->rec = omni_rec_or_empty(ctx->rec);
    run->ch = ctx->channel < OMNI_CH_MAX ? ctx->channel : OMNI_CH_OTHER;
    run->have = 0;
    run->why = NULL;
    run->match.store = -1;
    run->match.store_km = 0;
    run->match.view = -1;
    run->match.purchase = -1;
}


void
omni_why(omni_run_t *run, const char *fmt, ...)
{
    va_list  ap;

    if (run->why == NULL || run->why->set) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(run->why->buf, run->why->cap, fmt, ap);
    va_end(ap);

    run->why->set = 1;
}


int
omni_run_geo(omni_eval_t *ctx)
{
    if (ctx->geo_state == 0) {
        memset(&ctx->geo_value, 0, sizeof(omni_geo_t));

        if (ctx->geo != NULL
            && ctx->geo(ctx->geo_data, &ctx->geo_value) == OMNI_OK)
        {
            ctx->geo_state = 1;
            ctx->geo_value.country[sizeof(ctx->geo_value.country) - 1] = 0;
            ctx->geo_value.region[sizeof(ctx->geo_value.region) - 1] = 0;
            ctx->geo_value.city[sizeof(ctx->geo_value.city) - 1] = 0;

        } else {
            ctx->geo_state = -1;
        }
    }

    return ctx->geo_state == 1;
}


/* ---- profile facts ---- */

static void
omni_run_segs(omni_run_t *run)
{
    int32_t            id;
    omni_bytes_t       item, name;
    omni_rec_iter_t    it;
    omni_rec_fields_t  f;

    run->have |= OMNI_F_SEGS;
    memset(run->segs, 0, sizeof(run->segs));

    if (run->set->segs.n == 0) {
        return;
    }

    omni_rec_iter_init(&it, run->rec, OMNI_SECT_SEGMENTS);

    while (omni_rec_iter_next(&it, &item)) {
        omni_rec_fields_init(&f, item);
        name = omni_rec_get_str(&f);

        id = omni_sym_find(&run->set->segs, (const char *) name.data,
                           name.len);

        if (id >= 0 && id < OMNI_RULES_MAX_SEGMENTS) {
            run->segs[id >> 6] |= (uint64_t) 1 << (id & 63);
        }
    }
}


static int
omni_run_has_seg(omni_run_t *run, int32_t id)
{
    if (!(run->have & OMNI_F_SEGS)) {
        omni_run_segs(run);
    }

    return id >= 0 && id < OMNI_RULES_MAX_SEGMENTS
           && (run->segs[id >> 6] >> (id & 63)) & 1;
}


static void
omni_run_cart(omni_run_t *run)
{
    omni_rec_iter_t       it;
    omni_rec_cart_item_t  ci;

    run->have |= OMNI_F_CART;
    run->cart_lines = 0;
    run->cart_items = 0;
    run->cart_value = 0;
    run->ncart = 0;
    run->cart_updated = omni_rec_cart_updated(run->rec);

    omni_rec_cart_init(&it, run->rec);

    while (omni_rec_cart_next(&it, &ci)) {
        run->cart_lines++;
        run->cart_items += ci.qty;

        if (isfinite(ci.price)) {
            run->cart_value += ci.price * ci.qty;
        }

        if (run->ncart < OMNI_RUN_MAX_CART) {
            run->cart_sku[run->ncart] = omni_sym_find(&run->set->skus,
                                              (const char *) ci.sku.data,
                                              ci.sku.len);
            run->cart_cat[run->ncart] = omni_sym_find(&run->set->cats,
                                              (const char *) ci.category.data,
                                              ci.category.len);
            run->ncart++;
        }
    }
}


static void
omni_run_purch(omni_run_t *run)
{
    uint16_t             ord;
    omni_rec_iter_t      it;
    omni_fpurch_t       *fp;
    omni_rec_purchase_t  p;

    run->have |= OMNI_F_PURCH;
    run->npurch = 0;
    run->last_purchase = 0;

    omni_rec_iter_init(&it, run->rec, OMNI_SECT_PURCHASES);

    for (ord = 0; omni_rec_purchase_next(&it, &p); ord++) {
        if (p.time > run->last_purchase) {
            run->last_purchase = p.time;
        }

        if (run->npurch >= OMNI_RUN_MAX_PURCHASES) {
            continue;
        }

        fp = &run->purch[run->npurch++];
        fp->sku = omni_sym_find(&run->set->skus, (const char *) p.sku.data,
                                p.sku.len);
        fp->cat = omni_sym_find(&run->set->cats,
                                (const char *) p.category.data,
                                p.category.len);
        fp->time = p.time;
        fp->ord = ord;
    }
}


static void
omni_run_views(omni_run_t *run)
{
    uint16_t           ord;
    omni_bytes_t       item, sku, cat;
    omni_rec_iter_t    it;
    omni_rec_fields_t  f;
    omni_fview_t      *fv;

    run->have |= OMNI_F_VIEWS;
    run->nviews = 0;
    run->last_view = 0;

    omni_rec_iter_init(&it, run->rec, OMNI_SECT_VIEWS);

    for (ord = 0; omni_rec_iter_next(&it, &item); ord++) {
        omni_rec_fields_init(&f, item);
        sku = omni_rec_get_str(&f);
        cat = omni_rec_get_str(&f);

        if (run->nviews >= OMNI_RUN_MAX_VIEWS) {
            continue;
        }

        fv = &run->views[run->nviews++];
        fv->sku = omni_sym_find(&run->set->skus, (const char *) sku.data,
                                sku.len);
        fv->cat = omni_sym_find(&run->set->cats, (const char *) cat.data,
                                cat.len);
        fv->time = omni_rec_get_u32(&f);
        fv->price = omni_rec_get_f64(&f);
        fv->ord = ord;

        if (fv->time > run->last_view) {
            run->last_view = fv->time;
        }
    }
}


static void
omni_run_events(omni_run_t *run)
{
    uint32_t           last;
    omni_bytes_t       item;
    omni_rec_iter_t    it;
    omni_rec_fields_t  f;

    run->have |= OMNI_F_EVENTS;
    run->last_event = 0;

    omni_rec_iter_init(&it, run->rec, OMNI_SECT_EVENTS);

    while (omni_rec_iter_next(&it, &item)) {
        omni_rec_fields_init(&f, item);
        (void) omni_rec_get_str(&f);
        (void) omni_rec_get_u32(&f);
        last = omni_rec_get_u32(&f);

        if (last > run->last_event) {
            run->last_event = last;
        }
    }
}


/*
 * The journey stage, derived from the profile at decision time with the
 * rules of omni_derive_stage() (omni_update.h), so a purchase recorded
 * by any writer counts at once:
 *   loyal 5+ orders; customer 1+; cart: items in the cart; browsing: a
 *   second visit or a product viewed; new otherwise.
 */
unsigned
omni_run_stage(omni_run_t *run)
{
    omni_bytes_t     item;
    omni_rec_iter_t  it;

    if (run->have & OMNI_F_STAGE) {
        return run->stage;
    }

    run->have |= OMNI_F_STAGE;

    if (run->rec->orders >= 5) {
        run->stage = OMNI_STAGE_LOYAL;

    } else if (run->rec->orders >= 1) {
        run->stage = OMNI_STAGE_CUSTOMER;

    } else {
        if (!(run->have & OMNI_F_CART)) {
            omni_run_cart(run);
        }

        if (run->cart_lines > 0) {
            run->stage = OMNI_STAGE_CART;

        } else {
            omni_rec_iter_init(&it, run->rec, OMNI_SECT_VIEWS);

            run->stage = run->rec->visits >= 2 || omni_rec_iter_next(&it,
                                                                     &item)
                         ? OMNI_STAGE_BROWSING : OMNI_STAGE_NEW;
        }
    }

    return run->stage;
}


/* A customer id or an email links the profile to an account. */
static int
omni_run_account(omni_run_t *run)
{
    omni_bytes_t       item;
    omni_rec_iter_t    it;
    omni_rec_fields_t  f;
    unsigned           kind;

    if (run->have & OMNI_F_ACCOUNT) {
        return run->account;
    }

    run->have |= OMNI_F_ACCOUNT;
    run->account = 0;

    omni_rec_iter_init(&it, run->rec, OMNI_SECT_ALIASES);

    while (omni_rec_iter_next(&it, &item)) {
        omni_rec_fields_init(&f, item);
        kind = omni_rec_get_u8(&f);

        if (kind == OMNI_ALIAS_CUSTOMER || kind == OMNI_ALIAS_EMAIL) {
            run->account = 1;
            break;
        }
    }

    return run->account;
}


static unsigned
omni_run_device(omni_run_t *run)
{
    if (!(run->have & OMNI_F_DEVICE)) {
        run->have |= OMNI_F_DEVICE;
        run->device = omni_device_class(run->ctx->user_agent.data,
                                        run->ctx->user_agent.data
                                        ? run->ctx->user_agent.len : 0);
    }

    return run->device;
}


static uint32_t
omni_ago(uint32_t now, uint32_t t)
{
    return now > t ? now - t : 0;
}


/* A metric's value; 0 when it does not exist (the condition fails). */
static int
omni_metric(omni_run_t *run, unsigned metric, double *out)
{
    const omni_rec_t  *rec = run->rec;
    uint32_t           now = run->ctx->now, t;
    unsigned           i;

    switch (metric) {

    case OMNI_M_CART_LINES:
    case OMNI_M_CART_ITEMS:
    case OMNI_M_CART_VALUE:
    case OMNI_M_CART_IDLE:
        if (!(run->have & OMNI_F_CART)) {
            omni_run_cart(run);
        }

        if (metric == OMNI_M_CART_LINES) {
            *out = run->cart_lines;

        } else if (metric == OMNI_M_CART_ITEMS) {
            *out = run->cart_items;

        } else if (metric == OMNI_M_CART_VALUE) {
            *out = run->cart_value;

        } else {
            if (run->cart_lines == 0 || run->cart_updated == 0) {
                return 0;
            }

            *out = omni_ago(now, run->cart_updated);
        }

        return 1;

    case OMNI_M_ORDERS:
        *out = rec->orders;
        return 1;

    case OMNI_M_VISITS:
        *out = rec->visits;
        return 1;

    case OMNI_M_REVENUE:
        *out = isfinite(rec->revenue) ? rec->revenue : 0;
        return 1;

    case OMNI_M_DAYS_PURCHASE:
        if (!(run->have & OMNI_F_PURCH)) {
            omni_run_purch(run);
        }

        t = run->last_purchase;
        break;

    case OMNI_M_DAYS_FIRST:
        t = rec->created;
        break;

    case OMNI_M_DAYS_LAST:
        t = 0;
        for (i = 0; i < OMNI_CH_MAX; i++) {
            if (rec->last_seen[i] > t) {
                t = rec->last_seen[i];
            }
        }
        break;

    case OMNI_M_DAYS_ENGAGED:
        if (!(run->have & OMNI_F_PURCH)) {
            omni_run_purch(run);
        }

        if (!(run->have & OMNI_F_VIEWS)) {
            omni_run_views(run);
        }

        if (!(run->have & OMNI_F_CART)) {
            omni_run_cart(run);
        }

        if (!(run->have & OMNI_F_EVENTS)) {
            omni_run_events(run);
        }

        t = run->last_purchase;
        t = run->last_view > t ? run->last_view : t;
        t = run->cart_updated > t ? run->cart_updated : t;
        t = run->last_event > t ? run->last_event : t;

        if (t == 0) {
            t = rec->created;       /* never engaged: since it exists */
        }
        break;

    default:
        return 0;
    }

    if (t == 0) {
        return 0;
    }

    *out = omni_ago(now, t) / 86400;

    return 1;
}


static int
omni_cmp(unsigned op, double a, double b)
{
    switch (op) {
    case OMNI_OP_GT:  return a > b;
    case OMNI_OP_GTE: return a >= b;
    case OMNI_OP_LT:  return a < b;
    case OMNI_OP_LTE: return a <= b;
    case OMNI_OP_EQ:  return a == b;
    case OMNI_OP_NE:  return a != b;
    default:          return 0;
    }
}


static int
omni_numops_ok(const omni_numops_t *ops, double v)
{
    unsigned  i;

    for (i = 0; i < ops->n; i++) {
        if (!omni_cmp(ops->op[i], v, ops->v[i])) {
            return 0;
        }
    }

    return 1;
}


/* A string attribute that is entirely a number ("120"). */
static int
omni_str_num(omni_bytes_t s, double *out)
{
    char    buf[64], *end;
    double  d;

    if (s.len == 0 || s.len >= sizeof(buf)) {
        return 0;
    }

    memcpy(buf, s.data, s.len);
    buf[s.len] = '\0';

    d = strtod(buf, &end);

    if (*end != '\0' || end == buf || !isfinite(d)) {
        return 0;
    }

    *out = d;

    return 1;
}


static int
omni_str_prefix(const char *s, size_t len, const omni_strv_t *list,
    unsigned n)
{
    unsigned  i;

    for (i = 0; i < n; i++) {
        if (list[i].len <= len && memcmp(s, list[i].data, list[i].len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static int
omni_str_in(const char *s, size_t len, const omni_strv_t *list, unsigned n)
{
    unsigned  i;

    for (i = 0; i < n; i++) {
        if (omni_strv_eq(list[i], s, len)) {
            return 1;
        }
    }

    return 0;
}


static void
omni_why_duration(omni_run_t *run, const char *label, const char *what,
    uint32_t secs)
{
    char  d[32];

    omni_duration_format(secs, d, sizeof(d));
    omni_why(run, "%s (%s %s)", label, what, d);
}


/* ---- leaves ---- */

static int
omni_eval_num(omni_run_t *run, const omni_cond_t *c)
{
    double  v;

    if (!omni_metric(run, c->metric, &v)) {
        if (run->why) {
            omni_why(run, "%s (%s)", c->label,
                     c->metric == OMNI_M_CART_IDLE ? "no cart" : "never");
        }
        return 0;
    }

    if (omni_cmp(c->op, v, c->num)) {
        return 1;
    }

    if (run->why) {
        if (c->metric == OMNI_M_CART_IDLE) {
            omni_why_duration(run, c->label, "idle", (uint32_t) v);

        } else if (c->metric == OMNI_M_CART_LINES) {
            omni_why(run, "%s (%s)", c->label, v ? "cart not empty"
                                                 : "cart empty");

        } else {
            omni_why(run, "%s (%g)", c->label, v);
        }
    }

    return 0;
}


static int
omni_eval_attr(omni_run_t *run, const omni_cond_t *c)
{
    int           type, r;
    unsigned      i;
    double        num;
    omni_bytes_t  s;

    type = omni_rec_get_attr(run->rec, c->str.data, c->str.len, &s, &num);

    if (type == OMNI_ATTR_STR && c->op != OMNI_OP_EXISTS
        && c->op != OMNI_OP_PREFIX && (c->is_num || c->op == OMNI_OP_IN
                                       || c->op >= OMNI_OP_GT))
    {
        /* numbers written as strings compare as numbers */
        if (omni_str_num(s, &num)) {
            type = OMNI_ATTR_STR | 0x100;
        }
    }

    switch (c->op) {

    case OMNI_OP_EQ:
    case OMNI_OP_NE:
        if (c->is_num) {
            r = (type == OMNI_ATTR_NUM || (type & 0x100)) && num == c->num;

        } else {
            r = (type & 0xff) == OMNI_ATTR_STR
                && omni_strv_eq(c->u.strs[0], (const char *) s.data, s.len);
        }

        if (c->op == OMNI_OP_NE) {
            r = !r;
        }

        break;

    case OMNI_OP_IN:
        r = 0;

        if ((type & 0xff) == OMNI_ATTR_STR) {
            r = omni_str_in((const char *) s.data, s.len, c->u.in->strs,
                            c->u.in->nstrs);
        }

        if (!r && (type == OMNI_ATTR_NUM || (type & 0x100))) {
            for (i = 0; i < c->u.in->nnums; i++) {
                if (c->u.in->nums[i] == num) {
                    r = 1;
                    break;
                }
            }
        }

        break;

    case OMNI_OP_EXISTS:
        r = (type != 0) == (c->mask != 0);
        break;

    case OMNI_OP_PREFIX:
        r = type == OMNI_ATTR_STR
            && omni_str_prefix((const char *) s.data, s.len, c->u.strs,
                               c->n);
        break;

    default:
        r = (type == OMNI_ATTR_NUM || (type & 0x100))
            && omni_cmp(c->op, num, c->num);
        break;
    }

    if (!r && run->why) {
        if (type == 0) {
            omni_why(run, "%s (absent)", c->label);

        } else if ((type & 0xff) == OMNI_ATTR_STR) {
            omni_why(run, "%s (%.*s)", c->label,
                     (int) (s.len > 60 ? 60 : s.len), (const char *) s.data);

        } else {
            omni_why(run, "%s (%g)", c->label, num);
        }
    }

    return r;
}


static int
omni_eval_cart_has(omni_run_t *run, const omni_cond_t *c)
{
    unsigned  i;

    if (!(run->have & OMNI_F_CART)) {
        omni_run_cart(run);
    }

    for (i = 0; i < run->ncart; i++) {
        if (omni_ids_has(c->u.ids, c->n, c->kind == OMNI_C_CART_SKU
                                         ? run->cart_sku[i]
                                         : run->cart_cat[i]))
        {
            return 1;
        }
    }

    omni_why(run, "%s (not in the cart)", c->label);

    return 0;
}


static int
omni_eval_purchased(omni_run_t *run, const omni_cond_t *c)
{
    unsigned              i;
    int                   best;
    uint32_t              now;
    const omni_cpurch_t  *p = c->u.purch;
    const omni_fpurch_t  *fp;

    if (!(run->have & OMNI_F_PURCH)) {
        omni_run_purch(run);
    }

    now = run->ctx->now;
    best = -1;

    /* the most recent matching purchase decides */
    for (i = 0; i < run->npurch; i++) {
        fp = &run->purch[i];

        if ((p->nskus || p->ncats)
            && !(p->nskus && omni_ids_has(p->skus, p->nskus, fp->sku))
            && !(p->ncats && omni_ids_has(p->cats, p->ncats, fp->cat)))
        {
            continue;
        }

        if (best < 0 || fp->time >= run->purch[best].time) {
            best = (int) i;
        }
    }

    if (best < 0) {
        omni_why(run, "%s (no such purchase)", c->label);
        return 0;
    }

    fp = &run->purch[best];

    if (p->within && omni_ago(now, fp->time) > p->within) {
        if (run->why) {
            omni_why_duration(run, c->label, "last bought",
                              omni_ago(now, fp->time));
        }
        return 0;
    }

    if (p->older && omni_ago(now, fp->time) < p->older) {
        if (run->why) {
            omni_why_duration(run, c->label, "last bought",
                              omni_ago(now, fp->time));
        }
        return 0;
    }

    run->match.purchase = (int16_t) fp->ord;

    return 1;
}


static int
omni_eval_viewed(omni_run_t *run, const omni_cond_t *c)
{
    unsigned             i;
    uint32_t             now;
    const omni_cview_t  *v = c->u.view;
    const omni_fview_t  *fv;

    if (!(run->have & OMNI_F_VIEWS)) {
        omni_run_views(run);
    }

    now = run->ctx->now;

    /* newest first: the record keeps views oldest first */
    for (i = run->nviews; i-- > 0; ) {
        fv = &run->views[i];

        if ((v->nskus || v->ncats)
            && !(v->nskus && omni_ids_has(v->skus, v->nskus, fv->sku))
            && !(v->ncats && omni_ids_has(v->cats, v->ncats, fv->cat)))
        {
            continue;
        }

        if (v->within && omni_ago(now, fv->time) > v->within) {
            continue;
        }

        if (!omni_numops_ok(&v->price, fv->price)) {
            continue;
        }

        run->match.view = (int16_t) fv->ord;
        return 1;
    }

    omni_why(run, "%s (no such view)", c->label);

    return 0;
}


static int
omni_eval_event(omni_run_t *run, const omni_cond_t *c)
{
    uint32_t           count, last;
    omni_bytes_t       item, name;
    omni_rec_iter_t    it;
    omni_rec_fields_t  f;

    count = 0;
    omni_rec_iter_init(&it, run->rec, OMNI_SECT_EVENTS);

    while (omni_rec_iter_next(&it, &item)) {
        omni_rec_fields_init(&f, item);
        name = omni_rec_get_str(&f);

        if (!omni_strv_eq(c->str, (const char *) name.data, name.len)) {
            continue;
        }

        count = omni_rec_get_u32(&f);
        last = omni_rec_get_u32(&f);

        /* outside the window it counts as not happened */
        if (c->a && omni_ago(run->ctx->now, last) > c->a) {
            count = 0;
        }

        break;
    }

    if (omni_numops_ok(c->nums, count)) {
        return 1;
    }

    omni_why(run, "%s (count %u)", c->label, count);

    return 0;
}


static int
omni_eval_last_seen(omni_run_t *run, const omni_cond_t *c)
{
    unsigned   i;
    uint32_t   t, ago;
    int        seen;

    t = 0;

    if (c->mask < OMNI_CH_MAX) {
        t = run->rec->last_seen[c->mask];

    } else {
        for (i = 0; i < OMNI_CH_MAX; i++) {
            if (run->rec->last_seen[i] > t) {
                t = run->rec->last_seen[i];
            }
        }
    }

    ago = omni_ago(run->ctx->now, t);

    if (c->a) {
        /* within: seen in the last a seconds */
        seen = t != 0 && ago <= c->a;

    } else {
        /* older_than: not seen in the last b seconds (never counts) */
        seen = t == 0 || ago >= c->b;
    }

    if (!seen && run->why) {
        if (t == 0) {
            omni_why(run, "%s (never seen)", c->label);

        } else {
            omni_why_duration(run, c->label, "last seen", ago);
        }
    }

    return seen;
}


static int
omni_eval_query(omni_run_t *run, const omni_cond_t *c)
{
    char          buf[512];
    size_t        n;
    int           found, r;
    omni_strv_t   val;
    omni_eval_t  *ctx = run->ctx;

    found = ctx->query.data != NULL
            && omni_query_arg(ctx->query.data, ctx->query.len, c->str.data,
                              c->str.len, &val);

    if (c->op == OMNI_OP_EXISTS) {
        r = found == (c->mask != 0);

    } else if (!found) {
        r = 0;

    } else {
        n = omni_url_decode(val.data, val.len, buf, sizeof(buf));

        r = c->op == OMNI_OP_EQ ? omni_str_in(buf, n, c->u.strs, c->n)
                                : omni_str_prefix(buf, n, c->u.strs, c->n);
    }

    if (!r && run->why) {
        if (found) {
            omni_why(run, "%s (%.*s)", c->label,
                     (int) (val.len > 60 ? 60 : val.len), val.data);

        } else {
            omni_why(run, "%s (absent)", c->label);
        }
    }

    return r;
}


static int
omni_eval_time(omni_run_t *run, const omni_cond_t *c)
{
    int64_t   local, days;
    uint32_t  now, sod, wday;
    int       r;

    now = run->ctx->now;
    local = (int64_t) now + omni_tz_offset(c->tz, now);
    days = local >= 0 ? local / 86400 : (local - 86399) / 86400;
    sod = (uint32_t) (local - days * 86400);
    wday = (uint32_t) (((days % 7) + 11) % 7);      /* 1970-01-01: Thu */

    switch (c->op) {
    case OMNI_OP_WEEKDAYS:
        r = (c->mask >> wday) & 1;
        break;
    case OMNI_OP_HOURS:
        r = c->a < c->b ? sod >= c->a && sod < c->b
                        : sod >= c->a || sod < c->b;
        break;
    case OMNI_OP_AFTER:
        r = now >= c->a;
        break;
    default:
        r = now < c->a;
        break;
    }

    if (!r && run->why) {
        static const char  *wd[] = {
            "sun", "mon", "tue", "wed", "thu", "fri", "sat"
        };

        omni_why(run, "%s (local %s %02u:%02u)", c->label, wd[wday],
                 sod / 3600, sod % 3600 / 60);
    }

    return r;
}


static int
omni_eval_geo(omni_run_t *run, const omni_cond_t *c)
{
    unsigned            i;
    int                 idx;
    double              dist;
    const char         *have;
    omni_geo_point_t    pt;
    const omni_geo_t   *g;

    if (!omni_run_geo(run->ctx)) {
        omni_why(run, "%s (no geo)", c->label);
        return 0;
    }

    g = &run->ctx->geo_value;

    if (c->op == OMNI_OP_NEAR) {
        if (!g->has_location) {
            omni_why(run, "%s (no location)", c->label);
            return 0;
        }

        omni_geo_point(&pt, g->lat, g->lon);
        idx = omni_geo_nearest(&pt, &run->set->stores[c->a].pt, c->n,
                               sizeof(omni_store_t), c->num, &dist);

        if (idx < 0) {
            omni_why(run, "%s (none within)", c->label);
            return 0;
        }

        run->match.store = (int32_t) (c->a + (unsigned) idx);
        run->match.store_km = (float) dist;

        return 1;
    }

    have = c->op == OMNI_OP_COUNTRY ? g->country
           : c->op == OMNI_OP_REGION ? g->region : g->city;

    for (i = 0; i < c->n; i++) {
        if (omni_strv_caseeq(c->u.strs[i], have, strlen(have))) {
            return 1;
        }
    }

    omni_why(run, "%s (%s)", c->label, have[0] ? have : "unknown");

    return 0;
}


static int
omni_cond_eval(omni_run_t *run, const omni_cond_t *c)
{
    unsigned     i, b;
    int          saved, r;
    omni_strv_t  s;
    omni_eval_t *ctx = run->ctx;

    switch (c->kind) {

    case OMNI_C_ALL:
        for (i = 0; i < c->n; i++) {
            if (!omni_cond_eval(run, c->u.kids[i])) {
                return 0;
            }
        }

        return 1;

    case OMNI_C_ANY:
        saved = run->why ? run->why->set : 1;

        for (i = 0; i < c->n; i++) {
            if (omni_cond_eval(run, c->u.kids[i])) {
                if (!saved) {
                    run->why->set = 0;      /* a failed branch is no why */
                }
                return 1;
            }
        }

        return 0;

    case OMNI_C_NOT:
        saved = run->why ? run->why->set : 1;
        r = omni_cond_eval(run, c->u.kids[0]);

        if (!saved) {
            run->why->set = 0;
        }

        if (r) {
            omni_why(run, "not %s", c->u.kids[0]->label);
        }

        return !r;

    case OMNI_C_NUM:
        return omni_eval_num(run, c);

    case OMNI_C_SEGMENT:
        for (i = 0; i < c->n; i++) {
            if (omni_run_has_seg(run, c->u.ids[i])) {
                return 1;
            }
        }

        omni_why(run, "%s (not a member)", c->label);
        return 0;

    case OMNI_C_ATTR:
        return omni_eval_attr(run, c);

    case OMNI_C_ACCOUNT:
        if ((unsigned) omni_run_account(run) == c->mask) {
            return 1;
        }

        omni_why(run, "%s (%s)", c->label, c->mask ? "no account"
                                                   : "has an account");
        return 0;

    case OMNI_C_CART_SKU:
    case OMNI_C_CART_CAT:
        return omni_eval_cart_has(run, c);

    case OMNI_C_PURCHASED:
        return omni_eval_purchased(run, c);

    case OMNI_C_LAST_SEEN:
        return omni_eval_last_seen(run, c);

    case OMNI_C_STAGE:
        b = omni_run_stage(run);
        if ((c->mask >> b) & 1) {
            return 1;
        }

        omni_why(run, "%s (stage %s)", c->label, omni_stage_name(b));
        return 0;

    case OMNI_C_CHANNEL:
        if ((c->mask >> run->ch) & 1) {
            return 1;
        }

        omni_why(run, "%s (channel %s)", c->label,
                 omni_channel_name(run->ch));
        return 0;

    case OMNI_C_DEVICE:
        b = omni_run_device(run);
        if ((c->mask >> b) & 1) {
            return 1;
        }

        omni_why(run, "%s (device %s)", c->label, omni_device_name(b));
        return 0;

    case OMNI_C_PATH:
        s = ctx->path;

        if (s.data == NULL) {
            omni_why(run, "%s (no path)", c->label);
            return 0;
        }

        if (c->op == OMNI_OP_EQ) {
            r = omni_str_in(s.data, s.len, c->u.strs, c->n);

        } else if (c->op == OMNI_OP_PREFIX) {
            r = omni_str_prefix(s.data, s.len, c->u.strs, c->n);

        } else {
            r = pcre2_match(c->u.re, (PCRE2_SPTR) s.data, s.len, 0, 0,
                            run->set->md, run->set->mctx) >= 0;
        }

        if (!r) {
            omni_why(run, "%s (%.*s)", c->label,
                     (int) (s.len > 60 ? 60 : s.len), s.data);
        }

        return r;

    case OMNI_C_QUERY:
        return omni_eval_query(run, c);

    case OMNI_C_REFERRER:
        s = ctx->referrer;
        if (s.data == NULL) {
            s.len = 0;
        }

        if (c->op == OMNI_OP_EXISTS) {
            r = (s.len > 0) == (c->mask != 0);

        } else if (s.len == 0) {
            r = 0;

        } else if (c->op == OMNI_OP_PREFIX) {
            r = omni_str_prefix(s.data, s.len, c->u.strs, c->n);

        } else {
            omni_strv_t  host = omni_url_host(s.data, s.len);

            r = 0;
            for (i = 0; i < c->n && !r; i++) {
                r = omni_host_match(host, c->u.strs[i].data,
                                    c->u.strs[i].len);
            }
        }

        if (!r) {
            omni_why(run, "%s (%.*s)", c->label,
                     (int) (s.len > 60 ? 60 : s.len), s.len ? s.data : "");
        }

        return r;

    case OMNI_C_TIME:
        return omni_eval_time(run, c);

    case OMNI_C_GEO:
        return omni_eval_geo(run, c);

    case OMNI_C_EXPERIMENT:
        if (ctx->pid == NULL) {
            omni_why(run, "%s (no profile id)", c->label);
            return 0;
        }

        b = omni_rules_bucket(ctx->pid, c->str.data, c->str.len);

        if (b >= c->a && b < c->b) {
            return 1;
        }

        omni_why(run, "%s (bucket %u.%02u%%)", c->label, b / 100, b % 100);
        return 0;

    case OMNI_C_VIEWED:
        return omni_eval_viewed(run, c);

    case OMNI_C_EVENT:
        return omni_eval_event(run, c);
    }

    return 0;
}


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


/* Dates, holdout, suppression, frequency cap, cooldown. */
int
omni_rule_eligible(omni_run_t *run, const omni_rule_t *r)
{
    unsigned           i;
    uint32_t           now, total, last, inwin, b;
    const omni_rec_t  *rec = run->rec;
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

    if (r->cap_max || r->cooldown) {
        if (omni_rec_impressions(rec, r->campaign.data, r->campaign.len, now,
                                 r->cap_per, &total, &last, &inwin)
            == OMNI_OK)
        {
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

                return 0;
            }

            if (r->cooldown && last && omni_ago(now, last) < r->cooldown) {
                if (run->why) {
                    char  d[32], a[32];

                    omni_duration_format(r->cooldown, d, sizeof(d));
                    omni_duration_format(omni_ago(now, last), a, sizeof(a));
                    omni_why(run, "cooldown %s (last shown %s ago)", d, a);
                }

                return 0;
            }
        }
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
    uint32_t  c;

    *no_ads = (ctx->flags & OMNI_EVAL_NO_ADS) != 0;

    if (ctx->rec == NULL || !(ctx->rec->consent & OMNI_CONSENT_SET)) {
        return OMNI_BLOCK_NONE;
    }

    c = ctx->rec->consent;

    if (!(c & OMNI_CONSENT_PERSONALIZE)) {
        return OMNI_BLOCK_CONSENT;
    }

    if ((ctx->channel == OMNI_CH_EMAIL && !(c & OMNI_CONSENT_EMAIL))
        || (ctx->channel == OMNI_CH_SMS && !(c & OMNI_CONSENT_SMS)))
    {
        return OMNI_BLOCK_CHANNEL;
    }

    if (!(c & OMNI_CONSENT_ADS)) {
        *no_ads = 1;
    }

    return OMNI_BLOCK_NONE;
}


/*
 * The cheap checks on an index entry: dates, stage, a required segment;
 * then the conditions.  The rule itself is not touched.
 */
static int
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
