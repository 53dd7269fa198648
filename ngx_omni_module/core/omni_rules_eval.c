/*
 * Evaluation: profile facts and the condition tree.  Decide and explain,
 * which drive this, are in omni_rules_decide.c.
 *
 * Profile facts (segment membership, cart totals, purchases, views,
 * event names) are computed at most once per decision, on first use,
 * into the run state on the stack; the geo callback runs at most once per
 * evaluation context.  Nothing here allocates or formats text, except
 * under a "why" buffer (explain).
 */

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omni_rules_int.h"


static const omni_rec_t  omni_rec_empty;



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
omni_why_fmt(omni_run_t *run, const char *fmt, ...)
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

void
omni_run_segs(omni_run_t *run)
{
    int32_t            id;
    omni_bytes_t       item, name;
    omni_rec_iter_t    it;
    omni_rec_fields_t  f;

    run->have |= OMNI_F_SEGS;
    memset(run->segs, 0, sizeof(run->segs));
    run->fbits[OMNI_FK_SEG] = 0;

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
            run->fbits[OMNI_FK_SEG] |= omni_fbit(id);
        }
    }
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
    run->fbits[OMNI_FK_CSKU] = 0;
    run->fbits[OMNI_FK_CCAT] = 0;

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

            if (run->cart_sku[run->ncart] >= 0) {
                run->fbits[OMNI_FK_CSKU] |=
                                      omni_fbit(run->cart_sku[run->ncart]);
            }

            if (run->cart_cat[run->ncart] >= 0) {
                run->fbits[OMNI_FK_CCAT] |=
                                      omni_fbit(run->cart_cat[run->ncart]);
            }

            run->ncart++;
        }
    }
}


void
omni_run_purch(omni_run_t *run)
{
    uint16_t             ord;
    omni_rec_iter_t      it;
    omni_fpurch_t       *fp;
    omni_rec_purchase_t  p;

    run->have |= OMNI_F_PURCH;
    run->npurch = 0;
    run->last_purchase = 0;
    run->fbits[OMNI_FK_PSKU] = 0;
    run->fbits[OMNI_FK_PCAT] = 0;

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

        if (fp->sku >= 0) {
            run->fbits[OMNI_FK_PSKU] |= omni_fbit(fp->sku);
        }

        if (fp->cat >= 0) {
            run->fbits[OMNI_FK_PCAT] |= omni_fbit(fp->cat);
        }
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
    run->fbits[OMNI_FK_VSKU] = 0;
    run->fbits[OMNI_FK_VCAT] = 0;

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

        if (fv->sku >= 0) {
            run->fbits[OMNI_FK_VSKU] |= omni_fbit(fv->sku);
        }

        if (fv->cat >= 0) {
            run->fbits[OMNI_FK_VCAT] |= omni_fbit(fv->cat);
        }
    }
}


static void
omni_run_events(omni_run_t *run)
{
    int32_t            id;
    uint32_t           last;
    omni_bytes_t       item, name;
    omni_rec_iter_t    it;
    omni_rec_fields_t  f;

    run->have |= OMNI_F_EVENTS;
    run->last_event = 0;
    run->fbits[OMNI_FK_EVENT] = 0;

    omni_rec_iter_init(&it, run->rec, OMNI_SECT_EVENTS);

    while (omni_rec_iter_next(&it, &item)) {
        omni_rec_fields_init(&f, item);
        name = omni_rec_get_str(&f);
        (void) omni_rec_get_u32(&f);
        last = omni_rec_get_u32(&f);

        if (last > run->last_event) {
            run->last_event = last;
        }

        id = omni_sym_find(&run->set->events, (const char *) name.data,
                           name.len);
        if (id >= 0) {
            run->fbits[OMNI_FK_EVENT] |= omni_fbit(id);
        }
    }
}


/* omni_run_fbits() when the section is not decoded yet. */
uint64_t
omni_run_fbits_slow(omni_run_t *run, unsigned kind)
{
    switch (kind) {
    case OMNI_FK_SEG:
        if (!(run->have & OMNI_F_SEGS)) {
            omni_run_segs(run);
        }
        break;
    case OMNI_FK_PSKU:
    case OMNI_FK_PCAT:
        if (!(run->have & OMNI_F_PURCH)) {
            omni_run_purch(run);
        }
        break;
    case OMNI_FK_VSKU:
    case OMNI_FK_VCAT:
        if (!(run->have & OMNI_F_VIEWS)) {
            omni_run_views(run);
        }
        break;
    case OMNI_FK_CSKU:
    case OMNI_FK_CCAT:
        if (!(run->have & OMNI_F_CART)) {
            omni_run_cart(run);
        }
        break;
    case OMNI_FK_EVENT:
        if (!(run->have & OMNI_F_EVENTS)) {
            omni_run_events(run);
        }
        break;
    default:
        return ~(uint64_t) 0;
    }

    return run->fbits[kind];
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

        /* the visitor's point (a cosine) once per decision */
        if (!(run->have & OMNI_F_GEO_PT)) {
            omni_geo_point(&run->geo_pt, g->lat, g->lon);
            run->have |= OMNI_F_GEO_PT;
        }

        idx = omni_geo_nearest(&run->geo_pt, &run->set->stores[c->a].pt,
                               c->n, sizeof(omni_store_t), c->num, &dist);

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


/*
 * "any" when explaining: every branch's reason, "none of: a; b".  Only
 * on the explain path (it formats text).
 */
static int
omni_cond_any_why(omni_run_t *run, const omni_cond_t *c)
{
    char         all[OMNI_RULES_ERROR_LEN], one[OMNI_RULES_ERROR_LEN];
    size_t       n, l;
    unsigned     i;
    omni_why_t   sub, *outer;

    outer = run->why;
    n = 0;
    all[0] = '\0';

    for (i = 0; i < c->n; i++) {
        one[0] = '\0';
        sub.buf = one;
        sub.cap = sizeof(one);
        sub.set = 0;
        run->why = &sub;

        if (omni_cond_eval(run, c->u.kids[i])) {
            run->why = outer;
            return 1;
        }

        l = strlen(one);
        if (n + l + 3 < sizeof(all)) {
            if (n) {
                memcpy(all + n, "; ", 2);
                n += 2;
            }

            memcpy(all + n, one, l + 1);
            n += l;
        }
    }

    run->why = outer;
    omni_why(run, "none of: %s", all);

    return 0;
}


int
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
        if (run->why != NULL && !run->why->set) {
            return omni_cond_any_why(run, c);
        }

        for (i = 0; i < c->n; i++) {
            if (omni_cond_eval(run, c->u.kids[i])) {
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
