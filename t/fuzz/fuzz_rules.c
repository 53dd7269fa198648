/*
 * Fuzz target for rule files and templates (GUIDE R7).
 *
 * Every input is loaded as a rule file; when it compiles, it is decided
 * and rendered on every channel against a busy profile, with geo, and
 * explained.  The same bytes are then compiled as a template in one of
 * the modes (chosen from the length) and rendered with the input as the
 * value of every variable, and pushed through the HTML-to-text filter.
 *
 * libFuzzer (clang), with CORE standing for every .c of the core:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -DOMNI_FUZZ_LIBFUZZER
 *       -Ingx_omni_module/core t/fuzz/fuzz_rules.c CORE
 *       -ljansson -llmdb -lcrypto -lmaxminddb -lpcre2-8 -lm -lpthread
 *       -o build/fuzz_rules
 *   build/fuzz_rules -max_len=65536 corpus rules
 *
 * Standalone (any compiler, e.g. gcc -fsanitize=address): without
 * OMNI_FUZZ_LIBFUZZER it has a main() that runs the files given as
 * arguments, for corpus replay and crash reproduction.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "omni_rules.h"
#include "omni_tmpl.h"
#include "omni_json.h"


static omni_rec_t      fz_rec;
static unsigned char  *fz_buf;
static int             fz_ready;

static const char     *fz_value;
static size_t          fz_value_len;


static const char  fz_profile[] =
    "{\"id\": \"0123456789abcdef0123456789abcdef\", \"created\": 1700000000,"
    " \"visits\": 7, \"orders\": 2, \"revenue\": 300.5,"
    " \"consent\": {\"personalize\": true, \"ads\": true, \"email\": true,"
    "  \"sms\": true},"
    " \"last_seen\": {\"web\": 1763000000, \"app\": 1762000000},"
    " \"aliases\": [{\"type\": \"customer\", \"id\": \"c-1\"}],"
    " \"segments\": [\"vip\", \"runners\", \"a\"],"
    " \"attributes\": {\"first_name\": \"\\\"><script>x</script>\","
    "  \"tier\": \"gold\", \"points\": 420, \"link\": \"javascript:x\"},"
    " \"cart\": {\"updated_at\": 1763800000, \"items\": ["
    "  {\"sku\": \"TRAIL-42\", \"name\": \"Trail <b>\", \"category\": "
    "   \"shoes\", \"qty\": 2, \"price\": 129, \"url\": \"/p/t\"}]},"
    " \"purchases\": [{\"sku\": \"SUMMIT-PRO\", \"order_id\": \"o1\","
    "  \"channel\": \"pos\", \"time\": 1763500000, \"category\": "
    "  \"premium\", \"price\": 349, \"qty\": 1}],"
    " \"impressions\": [{\"campaign\": \"c\", \"total\": 2, \"last\": "
    "  1763900000, \"buckets\": [[489972, 2]]}],"
    " \"views\": [{\"sku\": \"SUMMIT-PRO\", \"category\": \"premium\","
    "  \"time\": 1763800000, \"price\": 349}],"
    " \"events\": [{\"name\": \"Product Reviewed\", \"count\": 1, "
    "  \"last\": 1763700000}]}";


static void
fz_init(void)
{
    char            err[256];
    size_t          len;
    json_t         *j;
    json_error_t    je;
    omni_profile_t  p;

    if (fz_ready) {
        return;
    }

    fz_ready = 1;

    j = json_loads(fz_profile, 0, &je);
    omni_profile_init(&p, NULL);

    if (j == NULL || omni_profile_from_json(&p, j, err, sizeof(err)) != 0
        || omni_profile_encode(&p, &fz_buf, &len) != 0
        || omni_rec_parse(&fz_rec, fz_buf, len) != 0)
    {
        fprintf(stderr, "fuzz_rules: cannot build the test profile\n");
        abort();
    }

    omni_profile_free(&p);
    json_decref(j);
}


static int
fz_geo(void *data, omni_geo_t *g)
{
    memset(g, 0, sizeof(omni_geo_t));
    strcpy(g->country, "PT");
    strcpy(g->city, "Lisbon");
    g->lat = 38.72;
    g->lon = -9.14;
    g->has_location = 1;

    return OMNI_OK;
}


static void
fz_decide(const omni_ruleset_t *set)
{
    static char      out[16384];
    unsigned         ch, i, s;
    size_t           len;
    omni_strv_t      name;
    omni_eval_t      ctx;
    omni_decision_t  d;

    for (ch = 0; ch < OMNI_CH_MAX; ch++) {
        omni_eval_init(&ctx);
        ctx.rec = ch == OMNI_CH_OTHER ? NULL : &fz_rec;
        ctx.pid = fz_rec.id;
        ctx.channel = ch;
        ctx.now = 1763902400;
        ctx.path.data = "/shop/p/123";
        ctx.path.len = 11;
        ctx.query.data = "utm_source=x&a=%zz&b";
        ctx.query.len = 20;
        ctx.referrer.data = "https://u:p@www.example.com:8080/x";
        ctx.referrer.len = strlen(ctx.referrer.data);
        ctx.user_agent.data = "Mozilla/5.0 (iPad; CPU OS 17_0)";
        ctx.user_agent.len = strlen(ctx.user_agent.data);
        ctx.geo = fz_geo;

        omni_decide(set, &ctx, &d);

        for (s = 0; s < omni_rules_nslots(set); s++) {
            const char  *slot = omni_rules_slot(set, s, &len);

            (void) omni_render_slot_html(set, &ctx, &d, slot, len, out,
                                         sizeof(out));
        }

        (void) omni_render_pixels_html(set, &ctx, &d, out, sizeof(out));
        (void) omni_render_decision_json(set, &ctx, &d, ch == OMNI_CH_WEB,
                                         out, sizeof(out));
        (void) omni_render_text(set, &ctx, &d, ch, out, sizeof(out));
        (void) omni_render_shown(set, &d, OMNI_SHOWN_CAMPAIGNS, out,
                                 sizeof(out));

        for (i = 0; i < d.nheaders; i++) {
            len = omni_render_header(set, &ctx, &d, i, &name, out,
                                     sizeof(out));

            /* the header invariant: never CR, LF or NUL */
            if (len < sizeof(out) && (memchr(out, '\r', len) != NULL
                                      || memchr(out, '\n', len) != NULL
                                      || strlen(out) != len))
            {
                abort();
            }
        }

        if (ch == OMNI_CH_APP) {
            (void) omni_explain(set, &ctx, out, 64);
        }
    }
}


static void
fz_resolve(void *env, const omni_top_t *op, const char *text,
    const char **val, size_t *len, char *scratch, size_t cap)
{
    *val = fz_value;
    *len = fz_value_len;
}


static void *
fz_alloc(void *pool, size_t n)
{
    void  **list = pool;
    void  **blk;

    /* a chain of blocks freed after the run: [next, data...] */
    blk = calloc(1, sizeof(void *) + n);
    if (blk == NULL) {
        return NULL;
    }

    blk[0] = *list;
    *list = blk;

    return blk + 1;
}


static void
fz_template(const char *data, size_t size)
{
    static char       out[65536];
    void             *pool, **blk, **next;
    unsigned          mode;
    omni_tmpl_t      *t;
    omni_tmpl_err_t   err;
    omni_sink_t       s, st;

    pool = NULL;
    mode = (unsigned) (size % 5) + 1;

    if (mode == OMNI_TMPL_JSON) {
        omni_tmpl_b_t  b;

        omni_tmpl_b_init(&b);
        t = omni_tmpl_b_parse(&b, data, size, mode, &err) == 0
            ? omni_tmpl_b_finish(&b, fz_alloc, &pool) : NULL;
        omni_tmpl_b_free(&b);

    } else {
        t = omni_tmpl_compile(data, size, mode, fz_alloc, &pool, &err);
    }

    fz_value = data;
    fz_value_len = size;

    if (t != NULL) {
        omni_sink_buf(&s, out, sizeof(out));
        omni_tmpl_render(t, &s, fz_resolve, NULL);
        omni_sink_end(&s);

        /* what a header template renders never holds CR or LF */
        if (mode == OMNI_TMPL_HEADER && s.len < sizeof(out)
            && (memchr(out, '\r', s.len) || memchr(out, '\n', s.len)))
        {
            abort();
        }
    }

    omni_sink_buf(&s, out, sizeof(out));
    omni_sink_strip(&st, &s);
    st.put(&st, data, size);
    omni_sink_strip_end(&st);
    omni_sink_end(&s);

    for (blk = pool; blk != NULL; blk = next) {
        next = blk[0];
        free(blk);
    }
}


int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    omni_ruleset_t       *set;
    omni_rules_report_t  *rep;

    fz_init();

    rep = malloc(sizeof(omni_rules_report_t));
    if (rep == NULL) {
        return 0;
    }

    if (omni_rules_load_buffer("fuzz.json", (const char *) data, size, &set,
                               rep) == OMNI_OK)
    {
        fz_decide(set);
        omni_rules_free(set);
    }

    free(rep);

    if (size <= 65536) {
        fz_template((const char *) data, size);
    }

    return 0;
}


#if !defined(OMNI_FUZZ_LIBFUZZER)

#include "fuzz_replay.h"


int
main(int argc, char **argv)
{
    int  rc;

    rc = fuzz_replay(argc, argv);

    free(fz_buf);

    return rc;
}

#endif
