/*
 * The condition compiler: a "when" object to a tree of omni_cond_t.
 *
 * Composition is all/any/not; an object with several keys is an
 * implicit "all", and so is a group with several operators
 * ({"cart": {"non_empty": true, "idle_gte": "1h"}} is two leaves), so
 * every leaf tests exactly one thing and explain can name the one that
 * failed.  Children of all/any are ordered cheapest first (a stable
 * sort on the cost class), which changes no result, only the work done.
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "omni_rules_cc.h"


typedef struct {
    omni_cond_t   **v;
    unsigned        n, cap;
    int             oom;
} omni_clist_t;

typedef struct {
    const char     *name;
    uint8_t         op;
} omni_opname_t;

static const omni_opname_t  omni_numops[] = {
    { "gt", OMNI_OP_GT }, { "gte", OMNI_OP_GTE }, { "lt", OMNI_OP_LT },
    { "lte", OMNI_OP_LTE }, { "eq", OMNI_OP_EQ }, { "ne", OMNI_OP_NE },
    { NULL, 0 }
};


static void omni_clist_add(omni_clist_t *l, omni_cond_t *c);
static omni_cond_t *omni_clist_node(omni_cc_t *cc, omni_clist_t *l,
    unsigned kind);
static omni_cond_t *omni_leaf(omni_cc_t *cc, unsigned kind, unsigned op,
    unsigned cost, const char *label);
static void omni_cond_key(omni_cc_t *cc, const char *key, json_t *v,
    omni_clist_t *l);


static void
omni_clist_add(omni_clist_t *l, omni_cond_t *c)
{
    unsigned       ncap;
    omni_cond_t  **v;

    if (c == NULL) {
        return;
    }

    if (l->n == l->cap) {
        ncap = l->cap ? l->cap * 2 : 8;
        v = realloc(l->v, ncap * sizeof(omni_cond_t *));
        if (v == NULL) {
            l->oom = 1;
            return;
        }

        l->v = v;
        l->cap = ncap;
    }

    l->v[l->n++] = c;
}


/* all/any of the list (one element: itself); frees the list. */
static omni_cond_t *
omni_clist_node(omni_cc_t *cc, omni_clist_t *l, unsigned kind)
{
    unsigned      i, j, cost;
    omni_cond_t  *c, *k;

    if (l->oom) {
        cc->rb->oom = 1;
    }

    if (l->n == 0) {
        free(l->v);
        return NULL;
    }

    if (l->n == 1 && kind == OMNI_C_ALL) {
        c = l->v[0];
        free(l->v);
        return c;
    }

    c = omni_arena_alloc(cc->hot, sizeof(omni_cond_t));

    if (c == NULL
        || (c->u.kids = omni_arena_alloc(cc->hot,
                                         l->n * sizeof(omni_cond_t *)))
           == NULL)
    {
        cc->rb->oom = 1;
        free(l->v);
        return NULL;
    }

    /* stable insertion sort by cost: cheap tests first */
    for (i = 0; i < l->n; i++) {
        k = l->v[i];

        for (j = i; j > 0 && c->u.kids[j - 1]->cost > k->cost; j--) {
            c->u.kids[j] = c->u.kids[j - 1];
        }

        c->u.kids[j] = k;
    }

    cost = 0;
    for (i = 0; i < l->n; i++) {
        if (l->v[i]->cost > cost) {
            cost = l->v[i]->cost;
        }
    }

    c->kind = (uint8_t) kind;
    c->n = l->n;
    c->cost = (uint8_t) cost;
    c->label = kind == OMNI_C_ALL ? "all" : "any";

    free(l->v);

    return c;
}


static omni_cond_t *
omni_leaf(omni_cc_t *cc, unsigned kind, unsigned op, unsigned cost,
    const char *label)
{
    omni_cond_t  *c;

    if (++cc->leaves == OMNI_RULES_MAX_LEAVES + 1) {
        omni_cc_err(cc, "more than %d conditions in one rule",
                    OMNI_RULES_MAX_LEAVES);
    }

    c = omni_arena_alloc(cc->hot, sizeof(omni_cond_t));
    if (c == NULL) {
        cc->rb->oom = 1;
        return NULL;
    }

    c->kind = (uint8_t) kind;
    c->op = (uint8_t) op;
    c->cost = (uint8_t) cost;
    c->label = label;

    return c;
}


omni_cond_t *
omni_cc_cond(omni_cc_t *cc, json_t *v)
{
    const char    *key;
    json_t        *val;
    omni_clist_t   l;

    if (!json_is_object(v)) {
        omni_cc_err(cc, "expected a condition object");
        return NULL;
    }

    if (json_object_size(v) == 0) {
        omni_cc_err(cc, "empty condition");
        return NULL;
    }

    memset(&l, 0, sizeof(omni_clist_t));

    json_object_foreach(v, key, val) {
        omni_cc_key(cc, key);
        omni_cond_key(cc, key, val, &l);
        omni_cc_pop(cc);
    }

    return omni_clist_node(cc, &l, OMNI_C_ALL);
}


/* ---- helpers ---- */

static int
omni_opname(const omni_opname_t *names, const char *s)
{
    unsigned  i;

    for (i = 0; names[i].name; i++) {
        if (strcmp(names[i].name, s) == 0) {
            return names[i].op;
        }
    }

    return 0;
}


/* "gte": 5 style objects: one NUM leaf per operator. */
static void
omni_cond_metric(omni_cc_t *cc, const char *group, json_t *v,
    unsigned metric, unsigned cost, omni_clist_t *l)
{
    char          label[64];
    const char   *key;
    json_t       *val;
    double        num;
    int           op;
    omni_cond_t  *c;

    if (!json_is_object(v) || json_object_size(v) == 0) {
        omni_cc_err(cc, "expected an object of comparisons "
                    "(gt, gte, lt, lte, eq, ne)");
        return;
    }

    json_object_foreach(v, key, val) {
        omni_cc_key(cc, key);

        op = omni_opname(omni_numops, key);

        if (op == 0) {
            omni_cc_error(cc, OMNI_CC_AT_KEY, (size_t) -1,
                          "unknown key \"%s\" (expected gt, gte, lt, lte, "
                          "eq or ne)", key);

        } else if (omni_cc_number(cc, val, -1e15, 1e15, &num) == 0) {
            snprintf(label, sizeof(label), "%s.%s", group, key);
            c = omni_leaf(cc, OMNI_C_NUM, (unsigned) op, cost,
                          omni_cc_label(cc, label, val));
            if (c != NULL) {
                c->metric = (uint8_t) metric;
                c->num = num;
                omni_clist_add(l, c);
            }
        }

        omni_cc_pop(cc);
    }
}


/* gt/gte/... into a numops list (event counts, view prices). */
static int
omni_cond_numop(omni_cc_t *cc, const char *key, json_t *val,
    omni_numops_t *ops)
{
    int     op;
    double  num;

    op = omni_opname(omni_numops, key);
    if (op == 0) {
        return 0;
    }

    if (omni_cc_number(cc, val, -1e15, 1e15, &num) != 0) {
        return -1;
    }

    if (ops->n < 6) {
        ops->op[ops->n] = (uint8_t) op;
        ops->v[ops->n] = num;
        ops->n++;
    }

    return 1;
}


static int
omni_cond_mask(omni_cc_t *cc, json_t *v, int (*parse)(const char *,
    size_t), const char *what, uint32_t *mask)
{
    unsigned      i, n;
    int           x;
    omni_strv_t  *list;

    if (omni_cc_strlist(cc, v, 64, &list, &n) != 0) {
        return -1;
    }

    *mask = 0;

    for (i = 0; i < n; i++) {
        x = parse(list[i].data, list[i].len);

        if (x < 0) {
            if (json_is_array(v)) {
                omni_cc_idx(cc, i);
            }

            omni_cc_err(cc, "unknown %s \"%.*s\"", what, (int) list[i].len,
                        list[i].data);

            if (json_is_array(v)) {
                omni_cc_pop(cc);
            }

            return -1;
        }

        *mask |= 1u << x;
    }

    return 0;
}


static int
omni_device_parse(const char *s, size_t len)
{
    unsigned     i;
    const char  *name;

    for (i = 0; (name = omni_device_name(i)) != NULL; i++) {
        if (strlen(name) == len && memcmp(name, s, len) == 0) {
            return (int) i;
        }
    }

    return -1;
}


static int
omni_weekday_parse(const char *s, size_t len)
{
    static const char  *days[] = {
        "sun", "mon", "tue", "wed", "thu", "fri", "sat"
    };
    unsigned  i;

    for (i = 0; i < 7; i++) {
        if (len == 3 && memcmp(days[i], s, 3) == 0) {
            return (int) i;
        }
    }

    return -1;
}


/* ---- groups ---- */

static void
omni_cond_attr(omni_cc_t *cc, json_t *v, omni_clist_t *l)
{
    static const char *const  keys[] = {
        "key", "eq", "ne", "in", "gt", "gte", "lt", "lte", "exists",
        "prefix", NULL
    };
    static const omni_opname_t  ops[] = {
        { "eq", OMNI_OP_EQ }, { "ne", OMNI_OP_NE }, { "in", OMNI_OP_IN },
        { "gt", OMNI_OP_GT }, { "gte", OMNI_OP_GTE }, { "lt", OMNI_OP_LT },
        { "lte", OMNI_OP_LTE }, { "exists", OMNI_OP_EXISTS },
        { "prefix", OMNI_OP_PREFIX }, { NULL, 0 }
    };
    char          label[160];
    const char   *key;
    json_t       *val, *kv, *item;
    size_t        i;
    int           op, b;
    unsigned      nops;
    omni_strv_t   k, sv;
    omni_cond_t  *c;
    omni_cin_t   *in;

    if (!json_is_object(v)) {
        omni_cc_err(cc, "expected an object like {\"key\": \"tier\", "
                    "\"eq\": \"gold\"}");
        return;
    }

    if (omni_cc_keys(cc, v, keys, "attr") != 0) {
        return;
    }

    kv = json_object_get(v, "key");
    if (kv == NULL) {
        omni_cc_err(cc, "\"key\" is required");
        return;
    }

    omni_cc_key(cc, "key");
    b = omni_cc_string(cc, kv, OMNI_MAX_STR, &k);
    omni_cc_pop(cc);

    if (b != 0) {
        return;
    }

    nops = 0;

    json_object_foreach(v, key, val) {
        op = omni_opname(ops, key);
        if (op == 0) {
            continue;
        }

        nops++;
        omni_cc_key(cc, key);
        snprintf(label, sizeof(label), "attr.%.100s.%s", k.data, key);
        c = omni_leaf(cc, OMNI_C_ATTR, (unsigned) op, OMNI_COST_SCAN,
                      omni_cc_label(cc, label, val));

        if (c == NULL) {
            omni_cc_pop(cc);
            continue;
        }

        c->str = k;

        switch (op) {

        case OMNI_OP_EQ:
        case OMNI_OP_NE:
            if (json_is_number(val)) {
                c->is_num = 1;
                c->num = json_number_value(val);

            } else if (omni_cc_string(cc, val, OMNI_MAX_STR, &sv) == 0) {
                c->u.strs = omni_arena_alloc(cc->hot, sizeof(omni_strv_t));
                if (c->u.strs == NULL) {
                    cc->rb->oom = 1;
                    c = NULL;
                    break;
                }

                c->u.strs[0] = sv;
                c->n = 1;

            } else {
                c = NULL;
            }

            break;

        case OMNI_OP_IN:
            if (!json_is_array(val) || json_array_size(val) == 0
                || json_array_size(val) > OMNI_RULES_MAX_LIST)
            {
                omni_cc_err(cc, "expected a non-empty array of strings or "
                            "numbers");
                c = NULL;
                break;
            }

            in = omni_arena_alloc(cc->hot, sizeof(omni_cin_t));
            if (in == NULL
                || (in->strs = omni_arena_alloc(cc->hot,
                                                json_array_size(val)
                                                * sizeof(omni_strv_t)))
                   == NULL
                || (in->nums = omni_arena_alloc(cc->hot,
                                                json_array_size(val)
                                                * sizeof(double)))
                   == NULL)
            {
                cc->rb->oom = 1;
                c = NULL;
                break;
            }

            json_array_foreach(val, i, item) {
                omni_cc_idx(cc, i);

                if (json_is_number(item)) {
                    in->nums[in->nnums++] = json_number_value(item);

                } else if (omni_cc_string(cc, item, OMNI_MAX_STR,
                                          &in->strs[in->nstrs]) == 0)
                {
                    in->nstrs++;

                } else {
                    c = NULL;
                }

                omni_cc_pop(cc);
            }

            if (c != NULL) {
                c->u.in = in;
            }

            break;

        case OMNI_OP_EXISTS:
            if (omni_cc_bool(cc, val, &b) == 0) {
                c->mask = (uint32_t) b;

            } else {
                c = NULL;
            }

            break;

        case OMNI_OP_PREFIX:
            if (omni_cc_strlist(cc, val, OMNI_MAX_STR, &c->u.strs, &c->n)
                != 0)
            {
                c = NULL;
            }

            break;

        default:
            if (omni_cc_number(cc, val, -1e15, 1e15, &c->num) != 0) {
                c = NULL;
            }

            break;
        }

        if (c != NULL) {
            omni_clist_add(l, c);
        }

        omni_cc_pop(cc);
    }

    if (nops == 0) {
        omni_cc_err(cc, "no operator (eq, ne, in, gt, gte, lt, lte, exists "
                    "or prefix)");
    }
}


static void
omni_cond_cart(omni_cc_t *cc, json_t *v, omni_clist_t *l)
{
    static const struct {
        const char  *prefix;
        unsigned     metric;
        int          duration;
    } metrics[] = {
        { "items_", OMNI_M_CART_ITEMS, 0 },
        { "value_", OMNI_M_CART_VALUE, 0 },
        { "idle_", OMNI_M_CART_IDLE, 1 },
        { NULL, 0, 0 }
    };
    char          label[64];
    const char   *key;
    json_t       *val;
    unsigned      i;
    int           op, b;
    uint32_t      secs;
    size_t        pl;
    omni_cond_t  *c;

    if (!json_is_object(v) || json_object_size(v) == 0) {
        omni_cc_err(cc, "expected an object like {\"non_empty\": true}");
        return;
    }

    json_object_foreach(v, key, val) {
        omni_cc_key(cc, key);
        snprintf(label, sizeof(label), "cart.%.40s", key);

        if (strcmp(key, "non_empty") == 0) {
            if (omni_cc_bool(cc, val, &b) == 0) {
                c = omni_leaf(cc, OMNI_C_NUM, b ? OMNI_OP_GT : OMNI_OP_EQ,
                              OMNI_COST_SCAN,
                              omni_cc_label(cc, label, val));
                if (c != NULL) {
                    c->metric = OMNI_M_CART_LINES;
                    c->num = 0;
                    omni_clist_add(l, c);
                }
            }

            omni_cc_pop(cc);
            continue;
        }

        if (strcmp(key, "contains_sku") == 0
            || strcmp(key, "contains_category") == 0)
        {
            int  sku = key[9] == 's';

            c = omni_leaf(cc, sku ? OMNI_C_CART_SKU : OMNI_C_CART_CAT, 0,
                          OMNI_COST_SCAN, omni_cc_label(cc, label, val));

            if (c != NULL
                && omni_cc_idlist(cc, val, sku ? &cc->rb->set->skus
                                               : &cc->rb->set->cats,
                                  &c->u.ids, &c->n) == 0)
            {
                omni_clist_add(l, c);
            }

            omni_cc_pop(cc);
            continue;
        }

        op = 0;

        for (i = 0; metrics[i].prefix; i++) {
            pl = strlen(metrics[i].prefix);

            if (strncmp(key, metrics[i].prefix, pl) == 0) {
                op = omni_opname(omni_numops, key + pl);
                break;
            }
        }

        if (op == 0) {
            omni_cc_error(cc, OMNI_CC_AT_KEY, (size_t) -1,
                          "unknown key \"%s\" in cart", key);
            omni_cc_pop(cc);
            continue;
        }

        c = omni_leaf(cc, OMNI_C_NUM, (unsigned) op, OMNI_COST_SCAN,
                      omni_cc_label(cc, label, val));

        if (c != NULL) {
            c->metric = (uint8_t) metrics[i].metric;

            if (metrics[i].duration) {
                if (omni_cc_duration(cc, val, &secs) == 0) {
                    c->num = secs;
                    omni_clist_add(l, c);
                }

            } else if (omni_cc_number(cc, val, -1e15, 1e15, &c->num) == 0) {
                omni_clist_add(l, c);
            }
        }

        omni_cc_pop(cc);
    }
}


static void
omni_cond_purchased(omni_cc_t *cc, json_t *v, omni_clist_t *l)
{
    static const char *const  keys[] = {
        "sku", "category", "within", "older_than", NULL
    };
    json_t         *x;
    int             bad;
    omni_cond_t    *c;
    omni_cpurch_t  *p;

    if (!json_is_object(v)) {
        omni_cc_err(cc, "expected an object like {\"sku\": \"SKU1\", "
                    "\"within\": \"30d\"}");
        return;
    }

    if (omni_cc_keys(cc, v, keys, "purchased") != 0) {
        return;
    }

    c = omni_leaf(cc, OMNI_C_PURCHASED, 0, OMNI_COST_SCAN,
                  omni_cc_label(cc, "purchased", v));
    p = omni_arena_alloc(cc->hot, sizeof(omni_cpurch_t));

    if (c == NULL || p == NULL) {
        cc->rb->oom = 1;
        return;
    }

    bad = 0;

    if ((x = json_object_get(v, "sku")) != NULL) {
        omni_cc_key(cc, "sku");
        bad |= omni_cc_idlist(cc, x, &cc->rb->set->skus, &p->skus,
                              &p->nskus);
        omni_cc_pop(cc);
    }

    if ((x = json_object_get(v, "category")) != NULL) {
        omni_cc_key(cc, "category");
        bad |= omni_cc_idlist(cc, x, &cc->rb->set->cats, &p->cats,
                              &p->ncats);
        omni_cc_pop(cc);
    }

    if ((x = json_object_get(v, "within")) != NULL) {
        omni_cc_key(cc, "within");
        bad |= omni_cc_duration(cc, x, &p->within);
        omni_cc_pop(cc);
    }

    if ((x = json_object_get(v, "older_than")) != NULL) {
        omni_cc_key(cc, "older_than");
        bad |= omni_cc_duration(cc, x, &p->older);
        omni_cc_pop(cc);
    }

    if (!bad) {
        c->u.purch = p;
        omni_clist_add(l, c);
    }
}


static void
omni_cond_viewed(omni_cc_t *cc, json_t *v, omni_clist_t *l)
{
    static const char *const  keys[] = {
        "sku", "category", "within", "price_gt", "price_gte", "price_lt",
        "price_lte", NULL
    };
    const char    *key;
    json_t        *x;
    int            bad;
    omni_cond_t   *c;
    omni_cview_t  *vw;

    if (!json_is_object(v)) {
        omni_cc_err(cc, "expected an object like {\"price_gte\": 300, "
                    "\"within\": \"7d\"}");
        return;
    }

    if (omni_cc_keys(cc, v, keys, "viewed") != 0) {
        return;
    }

    c = omni_leaf(cc, OMNI_C_VIEWED, 0, OMNI_COST_SCAN,
                  omni_cc_label(cc, "viewed", v));
    vw = omni_arena_alloc(cc->hot, sizeof(omni_cview_t));

    if (c == NULL || vw == NULL) {
        cc->rb->oom = 1;
        return;
    }

    bad = 0;

    json_object_foreach(v, key, x) {
        omni_cc_key(cc, key);

        if (strcmp(key, "sku") == 0) {
            bad |= omni_cc_idlist(cc, x, &cc->rb->set->skus, &vw->skus,
                                  &vw->nskus);

        } else if (strcmp(key, "category") == 0) {
            bad |= omni_cc_idlist(cc, x, &cc->rb->set->cats, &vw->cats,
                                  &vw->ncats);

        } else if (strcmp(key, "within") == 0) {
            bad |= omni_cc_duration(cc, x, &vw->within);

        } else {
            bad |= omni_cond_numop(cc, key + 6, x, &vw->price) < 0;
        }

        omni_cc_pop(cc);
    }

    if (!bad) {
        c->u.view = vw;
        omni_clist_add(l, c);
    }
}


static void
omni_cond_event(omni_cc_t *cc, json_t *v, omni_clist_t *l)
{
    static const char *const  keys[] = {
        "name", "within", "gt", "gte", "lt", "lte", "eq", "ne", NULL
    };
    const char   *key;
    json_t       *x;
    int           bad;
    omni_cond_t  *c;

    if (!json_is_object(v)) {
        omni_cc_err(cc, "expected an object like {\"name\": \"Product "
                    "Reviewed\", \"gte\": 1}");
        return;
    }

    if (omni_cc_keys(cc, v, keys, "event") != 0) {
        return;
    }

    if (json_object_get(v, "name") == NULL) {
        omni_cc_err(cc, "\"name\" is required");
        return;
    }

    c = omni_leaf(cc, OMNI_C_EVENT, 0, OMNI_COST_SCAN,
                  omni_cc_label(cc, "event", v));
    if (c == NULL) {
        return;
    }

    c->nums = omni_arena_alloc(cc->hot, sizeof(omni_numops_t));
    if (c->nums == NULL) {
        cc->rb->oom = 1;
        return;
    }

    bad = 0;

    json_object_foreach(v, key, x) {
        omni_cc_key(cc, key);

        if (strcmp(key, "name") == 0) {
            bad |= omni_cc_string(cc, x, OMNI_MAX_STR, &c->str);

            if (!bad) {
                int32_t  id = omni_sym_intern(&cc->rb->set->events,
                                              cc->arena, c->str.data,
                                              c->str.len);
                if (id < 0) {
                    cc->rb->oom = 1;
                    bad = 1;

                } else {
                    c->b = (uint32_t) id;
                }
            }

        } else if (strcmp(key, "within") == 0) {
            bad |= omni_cc_duration(cc, x, &c->a);

        } else {
            bad |= omni_cond_numop(cc, key, x, c->nums) < 0;
        }

        omni_cc_pop(cc);
    }

    if (c->nums->n == 0) {
        /* happened at least once */
        c->nums->n = 1;
        c->nums->op[0] = OMNI_OP_GTE;
        c->nums->v[0] = 1;
    }

    if (!bad) {
        omni_clist_add(l, c);
    }
}


static void
omni_cond_last_seen(omni_cc_t *cc, json_t *v, omni_clist_t *l)
{
    static const char *const  keys[] = {
        "channel", "within", "older_than", NULL
    };
    json_t       *x;
    int           bad, ch;
    omni_strv_t   s;
    omni_cond_t  *c;

    if (!json_is_object(v)) {
        omni_cc_err(cc, "expected an object like {\"channel\": \"app\", "
                    "\"within\": \"7d\"}");
        return;
    }

    if (omni_cc_keys(cc, v, keys, "last_seen") != 0) {
        return;
    }

    if ((json_object_get(v, "within") == NULL)
        == (json_object_get(v, "older_than") == NULL))
    {
        omni_cc_err(cc, "exactly one of \"within\" and \"older_than\" is "
                    "required");
        return;
    }

    c = omni_leaf(cc, OMNI_C_LAST_SEEN, 0, OMNI_COST_HEADER,
                  omni_cc_label(cc, "last_seen", v));
    if (c == NULL) {
        return;
    }

    bad = 0;
    c->mask = OMNI_CH_MAX;          /* any channel */

    if ((x = json_object_get(v, "channel")) != NULL) {
        omni_cc_key(cc, "channel");

        if (omni_cc_string(cc, x, 16, &s) != 0) {
            bad = 1;

        } else if ((ch = omni_channel_parse(s.data, s.len)) < 0) {
            omni_cc_err(cc, "unknown channel \"%.*s\"", (int) s.len, s.data);
            bad = 1;

        } else {
            c->mask = (uint32_t) ch;
        }

        omni_cc_pop(cc);
    }

    if ((x = json_object_get(v, "within")) != NULL) {
        omni_cc_key(cc, "within");
        bad |= omni_cc_duration(cc, x, &c->a);
        omni_cc_pop(cc);
    }

    if ((x = json_object_get(v, "older_than")) != NULL) {
        omni_cc_key(cc, "older_than");
        bad |= omni_cc_duration(cc, x, &c->b);
        omni_cc_pop(cc);
    }

    if (!bad) {
        omni_clist_add(l, c);
    }
}


static void
omni_cond_path(omni_cc_t *cc, json_t *v, omni_clist_t *l)
{
    const char    *key;
    json_t        *x;
    int            rc;
    char           label[32];
    PCRE2_UCHAR    msg[160];
    PCRE2_SIZE     off;
    omni_strv_t    s;
    omni_cond_t   *c;
    pcre2_code    *re;

    if (!json_is_object(v) || json_object_size(v) == 0) {
        omni_cc_err(cc, "expected an object like {\"prefix\": \"/shop\"}");
        return;
    }

    json_object_foreach(v, key, x) {
        omni_cc_key(cc, key);
        snprintf(label, sizeof(label), "path.%.20s", key);

        if (strcmp(key, "eq") == 0 || strcmp(key, "prefix") == 0) {
            c = omni_leaf(cc, OMNI_C_PATH, key[0] == 'e' ? OMNI_OP_EQ
                                                         : OMNI_OP_PREFIX,
                          OMNI_COST_REQUEST, omni_cc_label(cc, label, x));

            if (c != NULL
                && omni_cc_strlist(cc, x, 4096, &c->u.strs, &c->n) == 0)
            {
                omni_clist_add(l, c);
            }

        } else if (strcmp(key, "regex") == 0) {
            if (omni_cc_string(cc, x, OMNI_RULES_MAX_REGEX, &s) == 0) {
                re = pcre2_compile((PCRE2_SPTR) s.data, s.len, 0, &rc, &off,
                                   NULL);

                if (re == NULL) {
                    pcre2_get_error_message(rc, msg, sizeof(msg));
                    omni_cc_error(cc, 0, off, "invalid regex: %s at offset "
                                  "%zu", (const char *) msg, (size_t) off);

                } else {
                    (void) pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);

                    if (omni_cc_regex(cc, re) == 0) {
                        c = omni_leaf(cc, OMNI_C_PATH, OMNI_OP_REGEX,
                                      OMNI_COST_SLOW,
                                      omni_cc_label(cc, label, x));
                        if (c != NULL) {
                            c->u.re = re;
                            omni_clist_add(l, c);
                        }
                    }
                }
            }

        } else {
            omni_cc_error(cc, OMNI_CC_AT_KEY, (size_t) -1,
                          "unknown key \"%s\" in path (expected eq, prefix "
                          "or regex)", key);
        }

        omni_cc_pop(cc);
    }
}


/* query: {"arg": name, "eq"|"prefix"|"exists": ...}; utm_source */
static void
omni_cond_query(omni_cc_t *cc, json_t *v, omni_clist_t *l)
{
    static const char *const  keys[] = {
        "arg", "eq", "prefix", "exists", NULL
    };
    char          label[128];
    const char   *key;
    json_t       *x;
    int           b;
    unsigned      nops;
    omni_strv_t   arg;
    omni_cond_t  *c;

    if (!json_is_object(v)) {
        omni_cc_err(cc, "expected an object like {\"arg\": \"utm_campaign\","
                    " \"eq\": \"spring\"}");
        return;
    }

    if (omni_cc_keys(cc, v, keys, "query") != 0) {
        return;
    }

    if ((x = json_object_get(v, "arg")) == NULL) {
        omni_cc_err(cc, "\"arg\" is required");
        return;
    }

    omni_cc_key(cc, "arg");
    b = omni_cc_string(cc, x, 256, &arg);
    omni_cc_pop(cc);

    if (b != 0) {
        return;
    }

    nops = 0;

    json_object_foreach(v, key, x) {
        if (strcmp(key, "arg") == 0) {
            continue;
        }

        nops++;
        omni_cc_key(cc, key);
        snprintf(label, sizeof(label), "query.%.64s.%s", arg.data, key);

        c = omni_leaf(cc, OMNI_C_QUERY, key[0] == 'e' && key[1] == 'q'
                      ? OMNI_OP_EQ : key[0] == 'p' ? OMNI_OP_PREFIX
                                                   : OMNI_OP_EXISTS,
                      OMNI_COST_REQUEST, omni_cc_label(cc, label, x));

        if (c != NULL) {
            c->str = arg;

            if (c->op == OMNI_OP_EXISTS) {
                if (omni_cc_bool(cc, x, &b) == 0) {
                    c->mask = (uint32_t) b;
                    omni_clist_add(l, c);
                }

            } else if (omni_cc_strlist(cc, x, 1024, &c->u.strs, &c->n)
                       == 0)
            {
                omni_clist_add(l, c);
            }
        }

        omni_cc_pop(cc);
    }

    if (nops == 0) {
        omni_cc_err(cc, "no operator (eq, prefix or exists)");
    }
}


static void
omni_cond_referrer(omni_cc_t *cc, json_t *v, omni_clist_t *l)
{
    char          label[32];
    const char   *key;
    json_t       *x;
    int           b;
    omni_cond_t  *c;

    if (!json_is_object(v) || json_object_size(v) == 0) {
        omni_cc_err(cc, "expected an object like {\"host\": "
                    "\"google.com\"}");
        return;
    }

    json_object_foreach(v, key, x) {
        omni_cc_key(cc, key);
        snprintf(label, sizeof(label), "referrer.%.16s", key);

        if (strcmp(key, "host") == 0 || strcmp(key, "prefix") == 0) {
            c = omni_leaf(cc, OMNI_C_REFERRER, key[0] == 'h'
                          ? OMNI_OP_HOST : OMNI_OP_PREFIX,
                          OMNI_COST_REQUEST, omni_cc_label(cc, label, x));

            if (c != NULL
                && omni_cc_strlist(cc, x, 1024, &c->u.strs, &c->n) == 0)
            {
                omni_clist_add(l, c);
            }

        } else if (strcmp(key, "exists") == 0) {
            c = omni_leaf(cc, OMNI_C_REFERRER, OMNI_OP_EXISTS,
                          OMNI_COST_REQUEST, omni_cc_label(cc, label, x));

            if (c != NULL && omni_cc_bool(cc, x, &b) == 0) {
                c->mask = (uint32_t) b;
                omni_clist_add(l, c);
            }

        } else {
            omni_cc_error(cc, OMNI_CC_AT_KEY, (size_t) -1,
                          "unknown key \"%s\" in referrer (expected host, "
                          "prefix or exists)", key);
        }

        omni_cc_pop(cc);
    }
}


/* A zone by name, loaded once per set (load time). */
static const omni_tz_t *
omni_cc_tz(omni_cc_t *cc, json_t *v)
{
    char          err[128];
    omni_strv_t   name;
    omni_tz_t    *tz;

    if (omni_cc_string(cc, v, 64, &name) != 0) {
        return NULL;
    }

    tz = omni_arena_alloc(cc->hot, sizeof(omni_tz_t));
    if (tz == NULL) {
        cc->rb->oom = 1;
        return NULL;
    }

    if (omni_tz_load(name.data, name.len, tz, omni_arena_alloc, cc->arena,
                     err, sizeof(err)) != 0)
    {
        omni_cc_err(cc, "%s \"%.*s\"", err, (int) name.len, name.data);
        return NULL;
    }

    return tz;
}


static void
omni_cond_time(omni_cc_t *cc, json_t *v, omni_clist_t *l)
{
    static const char *const  keys[] = {
        "tz", "weekdays", "hours", "after", "before", NULL
    };
    static const char *const  hkeys[] = { "from", "to", NULL };
    char              label[32];
    const char       *key;
    json_t           *x, *h;
    int64_t           t;
    omni_strv_t       s;
    omni_cond_t      *c;
    const omni_tz_t  *tz;

    if (!json_is_object(v) || json_object_size(v) == 0) {
        omni_cc_err(cc, "expected an object like {\"weekdays\": [\"sat\", "
                    "\"sun\"]}");
        return;
    }

    if (omni_cc_keys(cc, v, keys, "time") != 0) {
        return;
    }

    tz = cc->tz;

    if ((x = json_object_get(v, "tz")) != NULL) {
        omni_cc_key(cc, "tz");
        tz = omni_cc_tz(cc, x);
        omni_cc_pop(cc);

        if (tz == NULL) {
            return;
        }
    }

    json_object_foreach(v, key, x) {
        if (strcmp(key, "tz") == 0) {
            continue;
        }

        omni_cc_key(cc, key);
        snprintf(label, sizeof(label), "time.%.16s", key);
        c = omni_leaf(cc, OMNI_C_TIME, 0, OMNI_COST_MASK,
                      omni_cc_label(cc, label, x));

        if (c == NULL) {
            omni_cc_pop(cc);
            continue;
        }

        c->tz = tz;

        if (strcmp(key, "weekdays") == 0) {
            c->op = OMNI_OP_WEEKDAYS;

            if (omni_cond_mask(cc, x, omni_weekday_parse, "weekday "
                               "(sun, mon, tue, wed, thu, fri, sat)",
                               &c->mask) == 0)
            {
                omni_clist_add(l, c);
            }

        } else if (strcmp(key, "hours") == 0) {
            c->op = OMNI_OP_HOURS;

            if (!json_is_object(x)
                || json_object_get(x, "from") == NULL
                || json_object_get(x, "to") == NULL)
            {
                omni_cc_err(cc, "expected {\"from\": \"HH:MM\", \"to\": "
                            "\"HH:MM\"}");

            } else if (omni_cc_keys(cc, x, hkeys, "hours") == 0) {
                int  bad = 0;

                h = json_object_get(x, "from");
                omni_cc_key(cc, "from");
                if (omni_cc_string(cc, h, 8, &s) != 0
                    || omni_clock_parse(s.data, s.len, &c->a) != 0)
                {
                    if (json_is_string(h)) {
                        omni_cc_err(cc, "expected a time of day \"HH:MM\"");
                    }
                    bad = 1;
                }
                omni_cc_pop(cc);

                h = json_object_get(x, "to");
                omni_cc_key(cc, "to");
                if (omni_cc_string(cc, h, 8, &s) != 0
                    || omni_clock_parse(s.data, s.len, &c->b) != 0)
                {
                    if (json_is_string(h)) {
                        omni_cc_err(cc, "expected a time of day \"HH:MM\"");
                    }
                    bad = 1;

                } else if (!bad && c->a == c->b) {
                    omni_cc_err(cc, "an empty range (\"from\" equals "
                                "\"to\")");
                    bad = 1;
                }
                omni_cc_pop(cc);

                if (!bad) {
                    omni_clist_add(l, c);
                }
            }

        } else {
            c->op = key[0] == 'a' ? OMNI_OP_AFTER : OMNI_OP_BEFORE;

            if (omni_cc_string(cc, x, 40, &s) == 0) {
                if (omni_date_parse(s.data, s.len, tz, 0, &t) != 0
                    || t < 0 || t > UINT32_MAX)
                {
                    omni_cc_err(cc, "expected a date \"YYYY-MM-DD\" or "
                                "\"YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM]\"");

                } else {
                    c->a = (uint32_t) t;
                    omni_clist_add(l, c);
                }
            }
        }

        omni_cc_pop(cc);
    }
}


static void
omni_cond_near(omni_cc_t *cc, json_t *v, omni_cond_t *c)
{
    static const char *const  keys[] = { "km", "stores", NULL };
    static const char *const  skeys[] = {
        "id", "name", "lat", "lon", "address", "url", NULL
    };
    json_t        *st, *x;
    size_t         i;
    int            bad;
    double         lat, lon;
    uint32_t       ncap;
    omni_rb_t     *rb = cc->rb;
    omni_store_t  *s, *stores;

    if (!json_is_object(v)) {
        omni_cc_err(cc, "expected {\"km\": 25, \"stores\": [...]}");
        return;
    }

    if (omni_cc_keys(cc, v, keys, "near") != 0) {
        return;
    }

    x = json_object_get(v, "km");
    st = json_object_get(v, "stores");

    if (x == NULL || st == NULL) {
        omni_cc_err(cc, "\"km\" and \"stores\" are required");
        return;
    }

    omni_cc_key(cc, "km");
    bad = omni_cc_number(cc, x, 0.001, 20040, &c->num);
    omni_cc_pop(cc);

    omni_cc_key(cc, "stores");

    if (!json_is_array(st) || json_array_size(st) == 0
        || json_array_size(st) > OMNI_RULES_MAX_LIST)
    {
        omni_cc_err(cc, "expected a non-empty array of stores (at most %d)",
                    OMNI_RULES_MAX_LIST);
        omni_cc_pop(cc);
        return;
    }

    c->a = rb->nstores;

    json_array_foreach(st, i, x) {
        omni_cc_idx(cc, i);

        if (!json_is_object(x)) {
            omni_cc_err(cc, "expected a store {\"name\": ..., \"lat\": ..., "
                        "\"lon\": ...}");
            bad = 1;
            omni_cc_pop(cc);
            continue;
        }

        if (omni_cc_keys(cc, x, skeys, "store") != 0) {
            bad = 1;
            omni_cc_pop(cc);
            continue;
        }

        if (rb->nstores == rb->capstores) {
            ncap = rb->capstores ? rb->capstores * 2 : 16;
            stores = realloc(rb->stores, ncap * sizeof(omni_store_t));
            if (stores == NULL) {
                rb->oom = 1;
                omni_cc_pop(cc);
                break;
            }

            rb->stores = stores;
            rb->capstores = ncap;
        }

        s = &rb->stores[rb->nstores];
        memset(s, 0, sizeof(omni_store_t));

        if (json_object_get(x, "name") == NULL
            || json_object_get(x, "lat") == NULL
            || json_object_get(x, "lon") == NULL)
        {
            omni_cc_err(cc, "\"name\", \"lat\" and \"lon\" are required");
            bad = 1;
            omni_cc_pop(cc);
            continue;
        }

#define OMNI_STORE_FIELD(k, call)                                           \
        if (json_object_get(x, k) != NULL) {                                \
            omni_cc_key(cc, k);                                             \
            bad |= call;                                                    \
            omni_cc_pop(cc);                                                \
        }

        OMNI_STORE_FIELD("id", omni_cc_string(cc, json_object_get(x, "id"),
                                              256, &s->id));
        OMNI_STORE_FIELD("name", omni_cc_string(cc,
                                                json_object_get(x, "name"),
                                                1024, &s->name));
        OMNI_STORE_FIELD("address", omni_cc_string(cc,
                                          json_object_get(x, "address"),
                                          1024, &s->address));
        OMNI_STORE_FIELD("url", omni_cc_string(cc,
                                               json_object_get(x, "url"),
                                               2048, &s->url));
        OMNI_STORE_FIELD("lat", omni_cc_number(cc,
                                               json_object_get(x, "lat"),
                                               -90, 90, &lat));
        OMNI_STORE_FIELD("lon", omni_cc_number(cc,
                                               json_object_get(x, "lon"),
                                               -180, 180, &lon));
#undef OMNI_STORE_FIELD

        if (!bad) {
            omni_geo_point(&s->pt, lat, lon);
            rb->nstores++;
        }

        omni_cc_pop(cc);
    }

    omni_cc_pop(cc);

    c->n = rb->nstores - c->a;

    if (bad) {
        c->n = 0;
    }
}


static void
omni_cond_geo(omni_cc_t *cc, json_t *v, omni_clist_t *l)
{
    char          label[32];
    const char   *key;
    json_t       *x;
    unsigned      errs;
    omni_cond_t  *c;

    if (!json_is_object(v) || json_object_size(v) == 0) {
        omni_cc_err(cc, "expected an object like {\"country\": \"FR\"}");
        return;
    }

    json_object_foreach(v, key, x) {
        omni_cc_key(cc, key);
        snprintf(label, sizeof(label), "geo.%.16s", key);

        if (strcmp(key, "country") == 0 || strcmp(key, "region") == 0
            || strcmp(key, "city") == 0)
        {
            c = omni_leaf(cc, OMNI_C_GEO, key[0] == 'c' && key[1] == 'o'
                          ? OMNI_OP_COUNTRY : key[0] == 'r'
                          ? OMNI_OP_REGION : OMNI_OP_CITY,
                          OMNI_COST_SLOW, omni_cc_label(cc, label, x));

            if (c != NULL
                && omni_cc_strlist(cc, x, 128, &c->u.strs, &c->n) == 0)
            {
                omni_clist_add(l, c);
            }

        } else if (strcmp(key, "near") == 0) {
            c = omni_leaf(cc, OMNI_C_GEO, OMNI_OP_NEAR, OMNI_COST_SLOW,
                          "geo.near");

            if (c != NULL) {
                errs = cc->total;
                omni_cond_near(cc, x, c);

                if (cc->total == errs && c->n > 0) {
                    char  *lb = omni_arena_alloc(cc->arena, 64);

                    if (lb != NULL) {
                        snprintf(lb, 64, "geo.near %g km of %u store%s",
                                 c->num, c->n, c->n == 1 ? "" : "s");
                        c->label = lb;
                    }

                    omni_clist_add(l, c);
                }
            }

        } else {
            omni_cc_error(cc, OMNI_CC_AT_KEY, (size_t) -1,
                          "unknown key \"%s\" in geo (expected country, "
                          "region, city or near)", key);
        }

        omni_cc_pop(cc);
    }
}


/*
 * One arm of an experiment: its range must equal (the same arm, e.g. a
 * banner rule and a pixel rule) or miss every other range of the same
 * experiment; a partial overlap puts a profile in two arms.
 */
static int
omni_cond_arm(omni_cc_t *cc, omni_strv_t *id, uint32_t a, uint32_t b)
{
    uint32_t               i, ncap;
    omni_rb_t             *rb;
    struct omni_rb_arm_s  *arm;

    rb = cc->rb;

    for (i = 0; i < rb->narms; i++) {
        arm = &rb->arms[i];

        if (arm->id.len != id->len
            || memcmp(arm->id.data, id->data, id->len) != 0
            || (arm->a == a && arm->b == b)
            || a >= arm->b || arm->a >= b)
        {
            continue;
        }

        omni_cc_err(cc, "experiment \"%.*s\" range [%u.%02u%%, %u.%02u%%) "
                    "overlaps [%u.%02u%%, %u.%02u%%) in %.*s: the ranges "
                    "of one experiment must be equal or disjoint",
                    (int) id->len, id->data, a / 100, a % 100, b / 100,
                    b % 100, arm->a / 100, arm->a % 100, arm->b / 100,
                    arm->b % 100, (int) arm->file.len, arm->file.data);
        return -1;
    }

    if (rb->narms == rb->caparms) {
        ncap = rb->caparms ? rb->caparms * 2 : 16;
        arm = realloc(rb->arms, ncap * sizeof(struct omni_rb_arm_s));
        if (arm == NULL) {
            rb->oom = 1;
            return -1;
        }

        rb->arms = arm;
        rb->caparms = ncap;
    }

    arm = &rb->arms[rb->narms++];
    arm->id = *id;
    arm->file.data = cc->file;
    arm->file.len = strlen(cc->file);
    arm->a = a;
    arm->b = b;

    return 0;
}


static void
omni_cond_experiment(omni_cc_t *cc, json_t *v, omni_clist_t *l)
{
    static const char *const  keys[] = { "id", "from", "to", NULL };
    json_t       *x;
    int           bad;
    double        from, to;
    omni_cond_t  *c;

    if (!json_is_object(v)) {
        omni_cc_err(cc, "expected {\"id\": \"exp\", \"from\": 0, \"to\": 50}");
        return;
    }

    if (omni_cc_keys(cc, v, keys, "experiment") != 0) {
        return;
    }

    if (json_object_get(v, "id") == NULL || json_object_get(v, "to") == NULL)
    {
        omni_cc_err(cc, "\"id\" and \"to\" are required");
        return;
    }

    c = omni_leaf(cc, OMNI_C_EXPERIMENT, 0, OMNI_COST_REQUEST,
                  omni_cc_label(cc, "experiment", v));
    if (c == NULL) {
        return;
    }

    from = 0;
    bad = 0;

    omni_cc_key(cc, "id");
    bad |= omni_cc_string(cc, json_object_get(v, "id"), OMNI_RULES_MAX_ID,
                          &c->str);
    omni_cc_pop(cc);

    if ((x = json_object_get(v, "from")) != NULL) {
        omni_cc_key(cc, "from");
        bad |= omni_cc_number(cc, x, 0, 100, &from);
        omni_cc_pop(cc);
    }

    omni_cc_key(cc, "to");
    bad |= omni_cc_number(cc, json_object_get(v, "to"), 0, 100, &to);

    if (!bad && to <= from) {
        omni_cc_err(cc, "\"to\" must be greater than \"from\"");
        bad = 1;
    }

    omni_cc_pop(cc);

    if (!bad) {
        /* percentages to basis points: [from, to) */
        c->a = (uint32_t) llround(from * 100);
        c->b = (uint32_t) llround(to * 100);

        if (omni_cond_arm(cc, &c->str, c->a, c->b) != 0) {
            return;
        }

        omni_clist_add(l, c);
    }
}


/* ---- one key of a condition object ---- */

static void
omni_cond_key(omni_cc_t *cc, const char *key, json_t *v, omni_clist_t *l)
{
    static const struct {
        const char  *name;
        unsigned     metric;
        unsigned     cost;
    } metrics[] = {
        { "orders", OMNI_M_ORDERS, OMNI_COST_HEADER },
        { "visits", OMNI_M_VISITS, OMNI_COST_HEADER },
        { "revenue", OMNI_M_REVENUE, OMNI_COST_HEADER },
        { "days_since_purchase", OMNI_M_DAYS_PURCHASE, OMNI_COST_SCAN },
        { "days_since_first_seen", OMNI_M_DAYS_FIRST, OMNI_COST_HEADER },
        { "days_since_last_seen", OMNI_M_DAYS_LAST, OMNI_COST_HEADER },
        { "days_since_engagement", OMNI_M_DAYS_ENGAGED, OMNI_COST_SCAN },
        { NULL, 0, 0 }
    };
    size_t         i;
    int            b;
    json_t        *x;
    omni_cond_t   *c;
    omni_clist_t   sub;

    if (strcmp(key, "all") == 0 || strcmp(key, "any") == 0) {
        if (!json_is_array(v) || json_array_size(v) == 0) {
            omni_cc_err(cc, "expected a non-empty array of conditions");
            return;
        }

        memset(&sub, 0, sizeof(omni_clist_t));

        json_array_foreach(v, i, x) {
            omni_cc_idx(cc, i);
            omni_clist_add(&sub, omni_cc_cond(cc, x));
            omni_cc_pop(cc);
        }

        if (sub.n != json_array_size(v)) {
            free(sub.v);        /* an error was reported */
            return;
        }

        if (key[1] == 'n' && sub.n == 1) {
            /* any of one: that one */
            omni_clist_add(l, sub.v[0]);
            free(sub.v);
            return;
        }

        omni_clist_add(l, omni_clist_node(cc, &sub, key[1] == 'l'
                                                    ? OMNI_C_ALL
                                                    : OMNI_C_ANY));
        return;
    }

    if (strcmp(key, "not") == 0) {
        omni_cond_t  *k = omni_cc_cond(cc, v);

        if (k == NULL) {
            return;
        }

        c = omni_arena_alloc(cc->hot, sizeof(omni_cond_t));
        if (c == NULL
            || (c->u.kids = omni_arena_alloc(cc->hot,
                                             sizeof(omni_cond_t *))) == NULL)
        {
            cc->rb->oom = 1;
            return;
        }

        c->kind = OMNI_C_NOT;
        c->n = 1;
        c->u.kids[0] = k;
        c->cost = k->cost;
        c->label = "not";
        omni_clist_add(l, c);
        return;
    }

    for (i = 0; metrics[i].name; i++) {
        if (strcmp(key, metrics[i].name) == 0) {
            omni_cond_metric(cc, key, v, metrics[i].metric, metrics[i].cost,
                             l);
            return;
        }
    }

    if (strcmp(key, "segment") == 0) {
        c = omni_leaf(cc, OMNI_C_SEGMENT, 0, OMNI_COST_SCAN,
                      omni_cc_label(cc, "segment", v));

        if (c != NULL
            && omni_cc_idlist(cc, v, &cc->rb->set->segs, &c->u.ids, &c->n)
               == 0)
        {
            if (cc->rb->set->segs.n > OMNI_RULES_MAX_SEGMENTS) {
                omni_cc_err(cc, "more than %d distinct segment names",
                            OMNI_RULES_MAX_SEGMENTS);
                return;
            }

            omni_clist_add(l, c);
        }

        return;
    }

    if (strcmp(key, "account") == 0) {
        if (omni_cc_bool(cc, v, &b) == 0) {
            c = omni_leaf(cc, OMNI_C_ACCOUNT, 0, OMNI_COST_SCAN,
                          omni_cc_label(cc, "account", v));
            if (c != NULL) {
                c->mask = (uint32_t) b;
                omni_clist_add(l, c);
            }
        }

        return;
    }

    if (strcmp(key, "stage") == 0 || strcmp(key, "channel") == 0
        || strcmp(key, "device") == 0)
    {
        c = omni_leaf(cc, key[0] == 's' ? OMNI_C_STAGE
                          : key[0] == 'c' ? OMNI_C_CHANNEL : OMNI_C_DEVICE,
                      0, key[0] == 'd' ? OMNI_COST_SLOW : OMNI_COST_MASK,
                      omni_cc_label(cc, key, v));

        if (c != NULL
            && omni_cond_mask(cc, v, key[0] == 's' ? omni_stage_parse
                                     : key[0] == 'c' ? omni_channel_parse
                                                     : omni_device_parse,
                              key, &c->mask) == 0)
        {
            omni_clist_add(l, c);
        }

        return;
    }

    if (strcmp(key, "utm_source") == 0) {
        c = omni_leaf(cc, OMNI_C_QUERY, OMNI_OP_EQ, OMNI_COST_REQUEST,
                      omni_cc_label(cc, "utm_source", v));

        if (c != NULL
            && omni_cc_strlist(cc, v, 1024, &c->u.strs, &c->n) == 0)
        {
            c->str.data = "utm_source";
            c->str.len = 10;
            omni_clist_add(l, c);
        }

        return;
    }

    if (strcmp(key, "attr") == 0) {
        omni_cond_attr(cc, v, l);

    } else if (strcmp(key, "cart") == 0) {
        omni_cond_cart(cc, v, l);

    } else if (strcmp(key, "purchased") == 0) {
        omni_cond_purchased(cc, v, l);

    } else if (strcmp(key, "viewed") == 0) {
        omni_cond_viewed(cc, v, l);

    } else if (strcmp(key, "event") == 0) {
        omni_cond_event(cc, v, l);

    } else if (strcmp(key, "last_seen") == 0) {
        omni_cond_last_seen(cc, v, l);

    } else if (strcmp(key, "path") == 0) {
        omni_cond_path(cc, v, l);

    } else if (strcmp(key, "query") == 0) {
        omni_cond_query(cc, v, l);

    } else if (strcmp(key, "referrer") == 0) {
        omni_cond_referrer(cc, v, l);

    } else if (strcmp(key, "time") == 0) {
        omni_cond_time(cc, v, l);

    } else if (strcmp(key, "geo") == 0) {
        omni_cond_geo(cc, v, l);

    } else if (strcmp(key, "experiment") == 0) {
        omni_cond_experiment(cc, v, l);

    } else {
        omni_cc_error(cc, OMNI_CC_AT_KEY, (size_t) -1,
                      "unknown condition \"%s\"", key);
    }
}
