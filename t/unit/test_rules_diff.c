/*
 * Differential test of the request path's decision: omni_decide() (the
 * index, the prefilters, the facts decoded once per decision, the cached
 * geo point) against the straightforward evaluation written here from
 * the rule checks alone (every enabled rule in rank order, its whole
 * condition tree, then its eligibility), over the bench's 100 rules
 * (rules/ plus bench/gen-rules.pl) and thousands of random profiles and
 * requests.  The shown rules, their slots and what they matched (store,
 * distance, view, purchase) must be identical, and so must everything
 * rendered from them when the decision is rendered twice.
 */

#include "rules_helpers.h"
#include "omni_rules_int.h"
#include "omni_core.h"


#define NCASES  4000

static const char  extra_pixels[] =
    "{\"rules\": [\n"
    " {\"id\": \"px-a\", \"when\": {\"channel\": \"web\"}, \"pixels\": [\n"
    "  {\"img\": \"https://a.example/p?x=1&y='q'&z={{attr.zip|n/a}}\"},\n"
    "  {\"script\": \"https://a.example/p?x=1&y='q'&z={{attr.zip|n/a}}\"},"
    "\n"
    "  {\"img\": \"https://a.example/i?id={{profile.id}}&t={{attr.tier}}\"}"
    "\n ]},\n"
    " {\"id\": \"px-b\", \"pixels\": [\n"
    "  {\"img\": \"https://a.example/i?id={{profile.id|}}&t={{attr.tier}}\"}"
    ",\n"
    "  {\"img\": \"https://b.example/v?n={{first_name|x&y}}&c={{cart.value}}"
    "&s={{cart.top_item.sku}}&amp;\"}\n ]},\n"
    " {\"id\": \"px-c\", \"when\": {\"segment\": \"skiers\"}, "
    "\"pixels\": [\n"
    "  {\"script\": \"https://c.example/s.js?v={{viewed.name}}&u="
    "{{viewed.url}}&g={{geo.city|none}}\"}\n ]}\n"
    "]}\n";

static uint32_t  now;


static const char *
repo_dir(void)
{
    static const char  *dirs[] = { ".", "..", "../..", NULL };
    struct stat         st;
    unsigned            i;

    for (i = 0; dirs[i]; i++) {
        char  probe[256];

        snprintf(probe, sizeof(probe), "%s/bench/gen-rules.pl", dirs[i]);
        if (stat(probe, &st) == 0) {
            return dirs[i];
        }
    }

    return NULL;
}


/* ---- random requests ---- */

static unsigned
rnd(unsigned n)
{
    return (unsigned) rand() % n;
}


static const char  *segs[] = {
    "newsletter", "outdoor", "runners", "skiers", "b2b", "students",
    "climbers", "families", "cyclists", "lapsed-90d", "vip-club",
    "beta-testers", "lunch-club", "vip", "loyal"
};

static const char  *skus[] = {
    "JKT-7", "TENT-2P", "STOVE-1", "SOCK-3", "SUMMIT-PRO", "TRAIL-42",
    "BIKE-9", "SKI-1"
};

static const char  *cats[] = {
    "jackets", "tents", "stoves", "sleeping-bags", "bikes", "socks",
    "premium", "shoes", "skis"
};

typedef struct {
    const char  *country, *region, *city;
    double       lat, lon;
} place_t;

static const place_t  places[] = {
    { "ES", "MD", "Madrid", 40.4170, -3.7030 },
    { "DE", "BE", "Berlin", 52.5200, 13.4050 },
    { "GB", "ENG", "London", 51.5130, -0.1300 },
    { "IT", "25", "Milan", 45.4600, 9.1900 },
    { "US", "NY", "New York", 40.7200, -74.0000 },
    { "JP", "13", "Tokyo", 35.6700, 139.7600 },
    { "FR", "IDF", "Versailles", 48.8040, 2.1200 },
    { "FR", "PAC", "Nice", 43.7000, 7.2600 },
    { "PT", "13", "Porto", 41.1500, -8.6100 },
    { "PT", "11", "Lisbon", 38.7200, -9.1400 },
    { "AT", "9", "Vienna", 48.2100, 16.3700 },
    { "CA", "ON", "Toronto", 43.6500, -79.3800 },
};

static const char  *paths[] = {
    "/b/page.html", "/", "/home", "/checkout/pay", "/account", "/p/123",
    "/p/x1", "/fr/page", "/c/skiers"
};

static const char  *queries[] = {
    "", "utm_source=newsletter", "utm_source=facebook&x=1",
    "utm_campaign=spring", "utm_campaign=fall", "a=b"
};

static const char  *referrers[] = {
    "", "https://www.google.com/search?q=x", "https://instagram.com/p/1",
    "https://example.org/"
};

static const char  *uas[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) "
    "AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15",
    ""
};

static char  js[16384];
static size_t  jn;


static void
put(const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    jn += (size_t) vsnprintf(js + jn, sizeof(js) - jn, fmt, ap);
    va_end(ap);
}


/* A profile in the import shape, every section random. */
static const omni_rec_t *
random_profile(unsigned k)
{
    unsigned  i, n, first;

    jn = 0;
    put("{\"id\":\"%032x\",\"created\":%u,\"visits\":%u,", k + 1,
        now - (1 + rnd(400)) * DAY, rnd(12));
    put("\"last_seen\":{\"web\":%u", now - rnd(60) * DAY - rnd(DAY));
    if (rnd(3) == 0) {
        put(",\"app\":%u", now - rnd(3) * DAY - rnd(DAY));
    }
    put("},");

    if (rnd(3) == 0) {
        put("\"orders\":%u,\"revenue\":%u.5,", rnd(8), rnd(3000));
    }

    put("\"segments\":[");
    for (i = 0, n = rnd(5), first = 1; i < n; i++, first = 0) {
        put("%s\"%s\"", first ? "" : ",", segs[rnd(sizeof(segs)
                                                   / sizeof(segs[0]))]);
    }
    put("],");

    put("\"attributes\":{\"x\":1");
    if (rnd(4)) {
        put(",\"first_name\":\"%s\"", rnd(2) ? "Ana" : "B<o>b & \\\"Co\\\"");
    }
    if (rnd(2)) {
        put(",\"tier\":\"%s\"", rnd(2) ? "gold" : rnd(2) ? "platinum"
                                                          : "bronze");
    }
    if (rnd(2)) {
        if (rnd(3)) {
            put(",\"age\":%u", 15 + rnd(70));
        } else {
            put(",\"age\":\"%u\"", 15 + rnd(70));
        }
    }
    if (rnd(2)) {
        put(",\"zip\":\"%u\"", 10000 + rnd(90000));
    }
    if (rnd(2)) {
        put(",\"lang\":\"%s\"", rnd(3) ? "de" : "pt");
    }
    if (rnd(5) == 0) {
        put(",\"employee\":\"yes\"");
    }
    put("},");

    if (rnd(2)) {
        put("\"cart\":{\"updated_at\":%u,\"items\":[",
            now - rnd(6) * HOUR - rnd(HOUR));
        for (i = 0, n = 1 + rnd(4); i < n; i++) {
            put("%s{\"sku\":\"%s\",\"name\":\"Item %u\",\"category\":\"%s\","
                "\"qty\":%u,\"price\":%u.0,\"url\":\"/p/%u\"}",
                i ? "," : "", skus[rnd(sizeof(skus) / sizeof(skus[0]))], i,
                cats[rnd(sizeof(cats) / sizeof(cats[0]))], 1 + rnd(4),
                10 + rnd(400), i);
        }
        put("]},");
    }

    if (rnd(2)) {
        put("\"purchases\":[");
        for (i = 0, n = 1 + rnd(4); i < n; i++) {
            put("%s{\"sku\":\"%s\",\"order_id\":\"O-%u\",\"channel\":\"web\","
                "\"time\":%u,\"category\":\"%s\",\"price\":19.9,\"qty\":1}",
                i ? "," : "", skus[rnd(sizeof(skus) / sizeof(skus[0]))], i,
                now - rnd(500) * DAY, cats[rnd(sizeof(cats)
                                               / sizeof(cats[0]))]);
        }
        put("],");
    }

    put("\"views\":[");
    for (i = 0, n = rnd(5); i < n; i++) {
        put("%s{\"sku\":\"%s\",\"category\":\"%s\",\"time\":%u,"
            "\"price\":%u.0}", i ? "," : "",
            skus[rnd(sizeof(skus) / sizeof(skus[0]))],
            cats[rnd(sizeof(cats) / sizeof(cats[0]))],
            now - rnd(40) * DAY - rnd(DAY), 20 + rnd(400));
    }
    put("]");

    if (rnd(2)) {
        put(",\"events\":[{\"name\":\"Newsletter Opened\",\"count\":%u,"
            "\"last\":%u},{\"name\":\"Wishlist Added\",\"count\":%u,"
            "\"last\":%u}]", rnd(40), now - rnd(40) * DAY, rnd(4),
            now - rnd(10) * DAY);
    }

    put("}");

    return rec_from("%s", js);
}


static int
random_geo(void *data, omni_geo_t *g)
{
    const place_t  *p = data;

    memset(g, 0, sizeof(omni_geo_t));

    if (p == NULL) {
        return OMNI_ERROR;
    }

    snprintf(g->country, sizeof(g->country), "%s", p->country);
    snprintf(g->region, sizeof(g->region), "%s", p->region);
    snprintf(g->city, sizeof(g->city), "%s", p->city);
    g->lat = p->lat;
    g->lon = p->lon;
    g->has_location = 1;

    return OMNI_OK;
}


/* ---- the straightforward decision ---- */

typedef struct {
    uint32_t      rule;
    int32_t       slot;
    omni_match_t  match;
} ref_shown_t;


static int
ref_cmp(const void *a, const void *b)
{
    const ref_shown_t  *x = a, *y = b;

    return x->rule < y->rule ? -1 : x->rule > y->rule;
}


/* Every enabled rule in rank order, through its full condition tree. */
static unsigned
ref_decide(const omni_ruleset_t *set, omni_eval_t *ctx, ref_shown_t *out,
    unsigned *block)
{
    unsigned            n, no_ads;
    uint32_t            s, i;
    const omni_rule_t  *r;
    omni_run_t          run;

    *block = (unsigned) omni_rule_consent(ctx, &no_ads);
    if (*block != OMNI_BLOCK_NONE) {
        return 0;
    }

    if (set->holdout_bp && ctx->pid != NULL
        && omni_rules_bucket(ctx->pid, set->holdout_id.data,
                             set->holdout_id.len) < set->holdout_bp)
    {
        *block = OMNI_BLOCK_HOLDOUT;
        return 0;
    }

    omni_run_init(&run, set, ctx);
    n = 0;

    for (s = 0; s < set->nslots; s++) {
        for (i = 0; i < set->nrules; i++) {
            r = &set->rules[i];

            if (!r->enabled || r->slot != (int32_t) s) {
                continue;
            }

            if (omni_rule_match(&run, r) && omni_rule_eligible(&run, r)) {
                out[n].rule = i;
                out[n].slot = (int32_t) s;
                out[n].match = run.match;
                n++;
                break;
            }
        }
    }

    for (i = 0; i < set->nrules; i++) {
        r = &set->rules[i];

        if (!r->enabled || r->slot >= 0 || (no_ads && r->nheaders == 0)) {
            continue;
        }

        if (omni_rule_match(&run, r) && omni_rule_eligible(&run, r)) {
            out[n].rule = i;
            out[n].slot = -1;
            out[n].match = run.match;
            n++;
        }
    }

    qsort(out, n, sizeof(ref_shown_t), ref_cmp);

    return n;
}


static int
same_match(const omni_match_t *a, const omni_match_t *b)
{
    return a->store == b->store && a->store_km == b->store_km
           && a->view == b->view && a->purchase == b->purchase;
}


/* Everything the request path renders from a decision, into buf. */
static size_t
render_all(const omni_ruleset_t *set, omni_eval_t *ctx,
    const omni_decision_t *d, char *buf, size_t cap)
{
    size_t       n;
    unsigned     s;
    const char  *name;

    n = 0;

    for (s = 0; s < set->nslots && n < cap; s++) {
        name = set->slots[s].data;
        n += omni_render_slot_html(set, ctx, d, name, strlen(name), buf + n,
                                   cap - n);
    }

    if (n < cap) {
        n += omni_render_pixels_html(set, ctx, d, buf + n, cap - n);
    }

    if (n < cap) {
        n += omni_render_decision_json(set, ctx, d, 0, buf + n, cap - n);
    }

    return n < cap ? n : cap;
}


int
main(void)
{
    char                   cmd[1024], tmp[] = "/tmp/omni-rules-diff-XXXXXX";
    static char            a[65536], b[65536];
    const char            *root;
    unsigned               i, k, n, block, seed, bad, bad_render, shown,
                           slots_shown, blocked, bad_pixels, pixels;
    FILE                  *f;
    size_t                 na, nb;
    unsigned char          pid[OMNI_ID_LEN];
    omni_ruleset_t        *set;
    omni_rules_report_t    rep;
    omni_eval_t            ctx;
    omni_decision_t        d;
    static ref_shown_t     ref[OMNI_DECISION_MAX_SHOWN * 4];
    const omni_rec_t      *rec;

    root = repo_dir();
    if (root == NULL || mkdtemp(tmp) == NULL) {
        printf("1..0 # SKIP no bench/gen-rules.pl or no temporary dir\n");
        return 0;
    }

    /* the bench's rule set: the seed rules and generated ones, 100 */
    snprintf(cmd, sizeof(cmd), "cp %s/rules/*.json %s/", root, tmp);
    ok(system(cmd) == 0, "seed rules copied");
    is_int(omni_rules_load(tmp, &set, &rep), OMNI_OK, "seed rules load");
    seed = omni_rules_count(set);
    omni_rules_free(set);

    snprintf(cmd, sizeof(cmd), "perl %s/bench/gen-rules.pl %s %u", root, tmp,
             100 - seed);
    ok(system(cmd) == 0, "bench/gen-rules.pl");

    /* pixels for the HTML rendering: escaped literals, defaults, two
       templates that render one URL, a long one */
    snprintf(cmd, sizeof(cmd), "%s/zz-pixels.json", tmp);
    f = fopen(cmd, "w");
    ok(f != NULL && fprintf(f, "%s", extra_pixels) > 0 && fclose(f) == 0,
       "pixel rules written");

    if (omni_rules_load(tmp, &set, &rep) != OMNI_OK) {
        for (i = 0; i < rep.nerrors && i < OMNI_RULES_MAX_ERRORS; i++) {
            printf("#   %s\n", rep.errors[i]);
        }
        ok(0, "the bench's rules load");
        return done_testing();
    }

    is_int(omni_rules_count(set), 103, "the bench's 100 rules and 3");

    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
    (void) system(cmd);

    now = (uint32_t) time(NULL);
    srand(1206);
    bad = bad_render = shown = slots_shown = blocked = 0;
    bad_pixels = pixels = 0;

    for (k = 0; k < NCASES; k++) {
        rec = rnd(10) ? random_profile(k) : NULL;

        omni_eval_init(&ctx);
        ctx.rec = rec;
        ctx.channel = rnd(4) ? OMNI_CH_WEB : rnd(2) ? OMNI_CH_APP
                                                    : OMNI_CH_EMAIL;
        ctx.now = now + rnd(3) * HOUR;
        ctx.flags = rnd(8) == 0 ? OMNI_EVAL_NO_ADS : 0;

        if (rec != NULL) {
            ctx.pid = rec->id;

        } else if (rnd(2)) {
            for (i = 0; i < OMNI_ID_LEN; i++) {
                pid[i] = (unsigned char) rnd(256);
            }
            ctx.pid = pid;
        }

        ctx.path.data = paths[rnd(sizeof(paths) / sizeof(paths[0]))];
        ctx.path.len = strlen(ctx.path.data);
        ctx.query.data = queries[rnd(sizeof(queries) / sizeof(queries[0]))];
        ctx.query.len = strlen(ctx.query.data);
        ctx.referrer.data = referrers[rnd(sizeof(referrers)
                                          / sizeof(referrers[0]))];
        ctx.referrer.len = strlen(ctx.referrer.data);
        ctx.user_agent.data = uas[rnd(sizeof(uas) / sizeof(uas[0]))];
        ctx.user_agent.len = strlen(ctx.user_agent.data);
        ctx.geo = random_geo;
        ctx.geo_data = rnd(6) ? (void *) &places[rnd(sizeof(places)
                                                     / sizeof(places[0]))]
                              : NULL;

        (void) omni_decide(set, &ctx, &d);

        ctx.geo_state = 0;
        n = ref_decide(set, &ctx, ref, &block);

        if (d.block != block || d.nshown != n) {
            bad++;
            if (bad < 5) {
                printf("# case %u: block %u/%u, shown %u/%u\n", k, d.block,
                       block, d.nshown, n);
            }
            goto next;
        }

        blocked += block != OMNI_BLOCK_NONE;
        shown += n;

        for (i = 0; i < n; i++) {
            if (d.shown[i].rule != ref[i].rule
                || d.shown[i].slot != ref[i].slot
                || !same_match(&d.shown[i].match, &ref[i].match))
            {
                bad++;
                if (bad < 5) {
                    printf("# case %u: shown %u: rule %s/%s\n", k, i,
                           set->rules[d.shown[i].rule].id.data,
                           set->rules[ref[i].rule].id.data);
                }
                goto next;
            }

            slots_shown += ref[i].slot >= 0;
        }

        /* the pixels' tags from the escaped templates = render, then
           escape */
        na = omni_render_pixels_html(set, &ctx, &d, a, sizeof(a));
        nb = omni_render_pixels_html_plain(set, &ctx, &d, b, sizeof(b));
        bad_pixels += na != nb || memcmp(a, b, na) != 0;
        pixels += na > 0;

        /* the render reads the same facts again: the same bytes twice,
           and the same as a context that never decided */
        na = render_all(set, &ctx, &d, a, sizeof(a));
        ctx.geo_state = 0;
        nb = render_all(set, &ctx, &d, b, sizeof(b));
        bad_render += na != nb || memcmp(a, b, na) != 0;

    next:
        recs_free();
    }

    is_int(bad, 0, "omni_decide = every rule in rank order, %u random "
           "requests", NCASES);
    is_int(bad_render, 0, "the decision renders the same bytes again");
    is_int(bad_pixels, 0, "pixel tags from the HTML-escaped templates = "
           "the URL rendered, then escaped (%u decisions with pixels)",
           pixels);
    ok(pixels > NCASES / 2, "most cases have pixels");
    ok(shown > NCASES && slots_shown > NCASES / 2 && blocked < NCASES / 4,
       "the cases show rules (%u shown, %u in slots, %u blocked)", shown,
       slots_shown, blocked);

    omni_rules_free(set);

    return done_testing();
}
