/*
 * The rules compiler: one file's JSON to rules.
 *
 * Validation is strict (an unknown key is an error) and exhaustive (every
 * error in every file is reported, not just the first), each error being
 * "file:line:column: path: message".  Ranking and the index are built
 * when all files are in (omni_rules_index.c).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "omni_rules_cc.h"


static const omni_tz_t  omni_tz_utc;


/* ---- rules ---- */

static int
omni_id_valid(omni_strv_t s)
{
    size_t  i;
    char    c;

    if (s.len == 0 || s.len > OMNI_RULES_MAX_ID) {
        return 0;
    }

    for (i = 0; i < s.len; i++) {
        c = s.data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9')
              || (i > 0 && (c == '_' || c == '-' || c == '.' || c == ':'))))
        {
            return 0;
        }
    }

    return 1;
}


static int
omni_cc_id(omni_cc_t *cc, json_t *v, omni_strv_t *out, const char *what)
{
    if (omni_cc_string(cc, v, OMNI_RULES_MAX_ID, out) != 0) {
        return -1;
    }

    if (!omni_id_valid(*out)) {
        omni_cc_err(cc, "invalid %s \"%.*s\" (letters, digits, '_', '-', "
                    "'.', ':'; at most %d)", what, (int) out->len,
                    out->data, OMNI_RULES_MAX_ID);
        return -1;
    }

    return 0;
}


static int
omni_cc_template(omni_cc_t *cc, json_t *v, unsigned mode,
    const omni_tmpl_t **out)
{
    omni_strv_t       s;
    omni_tmpl_err_t   err;
    const omni_tmpl_t *t;

    if (omni_cc_string(cc, v, OMNI_RULES_MAX_TEMPLATE, &s) != 0) {
        return -1;
    }

    t = omni_tmpl_compile(s.data, s.len, mode, omni_arena_alloc, cc->arena,
                          &err);

    if (t == NULL) {
        omni_cc_error(cc, 0, err.offset, "%s", err.msg);
        return -1;
    }

    if (t->needs & OMNI_TNEED_GEO) {
        cc->needs |= OMNI_NEED_GEO;
    }

    if (t->needs & OMNI_TNEED_PROFILE) {
        cc->needs |= OMNI_NEED_PROFILE;
    }

    *out = t;

    return 0;
}


/* A payload: JSON whose strings are templates (JSON-escaped). */
static int
omni_cc_payload_value(omni_cc_t *cc, json_t *v, omni_tmpl_b_t *b)
{
    const char       *key;
    json_t           *x;
    size_t            i;
    char             *dump;
    int               bad, first;
    omni_tmpl_err_t   err;

    bad = 0;

    switch (json_typeof(v)) {

    case JSON_OBJECT:
        omni_tmpl_b_literal(b, "{", 1);
        first = 1;

        json_object_foreach(v, key, x) {
            if (!first) {
                omni_tmpl_b_literal(b, ",", 1);
            }

            first = 0;
            omni_tmpl_b_json_string(b, key, strlen(key));
            omni_tmpl_b_literal(b, ":", 1);
            omni_cc_key(cc, key);
            bad |= omni_cc_payload_value(cc, x, b);
            omni_cc_pop(cc);
        }

        omni_tmpl_b_literal(b, "}", 1);
        break;

    case JSON_ARRAY:
        omni_tmpl_b_literal(b, "[", 1);

        json_array_foreach(v, i, x) {
            if (i > 0) {
                omni_tmpl_b_literal(b, ",", 1);
            }

            omni_cc_idx(cc, i);
            bad |= omni_cc_payload_value(cc, x, b);
            omni_cc_pop(cc);
        }

        omni_tmpl_b_literal(b, "]", 1);
        break;

    case JSON_STRING:
        if (json_string_length(v) > OMNI_RULES_MAX_TEMPLATE) {
            omni_cc_err(cc, "string longer than %d bytes",
                        OMNI_RULES_MAX_TEMPLATE);
            return -1;
        }

        if (omni_tmpl_b_parse(b, json_string_value(v), json_string_length(v),
                              OMNI_TMPL_JSON, &err) != 0)
        {
            omni_cc_error(cc, 0, err.offset, "%s", err.msg);
            return -1;
        }

        break;

    default:
        dump = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        if (dump == NULL) {
            cc->rb->oom = 1;
            return -1;
        }

        omni_tmpl_b_literal(b, dump, strlen(dump));
        free(dump);
        break;
    }

    return bad;
}


static int
omni_cc_slot(omni_cc_t *cc, json_t *v, int32_t *slot)
{
    uint32_t         i;
    size_t           k;
    omni_strv_t      s;
    omni_ruleset_t  *set = cc->rb->set;

    if (omni_cc_string(cc, v, 64, &s) != 0) {
        return -1;
    }

    for (k = 0; k < s.len; k++) {
        char  c = s.data[k];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_' || c == '-'))
        {
            break;
        }
    }

    if (s.len == 0 || k < s.len) {
        omni_cc_err(cc, "invalid slot name (letters, digits, '_' and '-')");
        return -1;
    }

    for (i = 0; i < set->nslots; i++) {
        if (omni_strv_eq(set->slots[i], s.data, s.len)) {
            *slot = (int32_t) i;
            return 0;
        }
    }

    if (set->nslots >= OMNI_RULES_MAX_SLOTS) {
        omni_cc_err(cc, "more than %d slot names", OMNI_RULES_MAX_SLOTS);
        return -1;
    }

    set->slots[set->nslots] = s;
    *slot = (int32_t) set->nslots++;

    return 0;
}


static int
omni_cc_banner(omni_cc_t *cc, json_t *v, omni_rule_t *r)
{
    static const char *const  keys[] = {
        "slot", "html", "text", "payload", NULL
    };
    json_t         *x;
    int             bad;
    omni_tmpl_b_t   b;

    if (!json_is_object(v)) {
        omni_cc_err(cc, "expected an object like {\"slot\": \"hero\", "
                    "\"html\": \"...\"}");
        return -1;
    }

    if (omni_cc_keys(cc, v, keys, "banner") != 0) {
        return -1;
    }

    if ((x = json_object_get(v, "slot")) == NULL) {
        omni_cc_err(cc, "\"slot\" is required");
        return -1;
    }

    if (json_object_get(v, "html") == NULL
        && json_object_get(v, "text") == NULL
        && json_object_get(v, "payload") == NULL)
    {
        omni_cc_err(cc, "a banner needs \"html\", \"text\" or \"payload\"");
        return -1;
    }

    bad = 0;

    omni_cc_key(cc, "slot");
    bad |= omni_cc_slot(cc, x, &r->slot);
    omni_cc_pop(cc);

    if ((x = json_object_get(v, "html")) != NULL) {
        omni_cc_key(cc, "html");
        bad |= omni_cc_template(cc, x, OMNI_TMPL_HTML, &r->html);
        omni_cc_pop(cc);
    }

    if ((x = json_object_get(v, "text")) != NULL) {
        omni_cc_key(cc, "text");
        bad |= omni_cc_template(cc, x, OMNI_TMPL_TEXT, &r->text);
        omni_cc_pop(cc);
    }

    if ((x = json_object_get(v, "payload")) != NULL) {
        omni_cc_key(cc, "payload");

        if (!json_is_object(x)) {
            omni_cc_err(cc, "expected an object");
            bad = -1;

        } else {
            omni_tmpl_b_init(&b);

            if (omni_cc_payload_value(cc, x, &b) == 0) {
                r->payload = omni_tmpl_b_finish(&b, omni_arena_alloc,
                                                cc->arena);
                if (r->payload == NULL) {
                    cc->rb->oom = 1;
                    bad = -1;

                } else {
                    if (r->payload->needs & OMNI_TNEED_GEO) {
                        cc->needs |= OMNI_NEED_GEO;
                    }

                    if (r->payload->needs & OMNI_TNEED_PROFILE) {
                        cc->needs |= OMNI_NEED_PROFILE;
                    }
                }

            } else {
                bad = -1;
            }

            omni_tmpl_b_free(&b);
        }

        omni_cc_pop(cc);
    }

    return bad ? -1 : 0;
}


static uint32_t
omni_cc_keyid(omni_cc_t *cc, const char *prefix, const char *s, size_t len)
{
    char     buf[64];
    char    *tmp;
    int32_t  id;
    size_t   pl;

    pl = strlen(prefix);

    tmp = len + pl <= sizeof(buf) ? buf : malloc(len + pl);
    if (tmp == NULL) {
        cc->rb->oom = 1;
        return 0;
    }

    memcpy(tmp, prefix, pl);
    memcpy(tmp + pl, s, len);

    id = omni_sym_intern(&cc->rb->set->keys, cc->arena, tmp, len + pl);

    if (tmp != buf) {
        free(tmp);
    }

    if (id < 0) {
        cc->rb->oom = 1;
        return 0;
    }

    return (uint32_t) id;
}


static int
omni_cc_pixels(omni_cc_t *cc, json_t *v, omni_rule_t *r)
{
    const char     *key;
    json_t         *x, *u;
    size_t          i;
    int             bad;
    omni_pixel_t   *px;

    if (!json_is_array(v) || json_array_size(v) == 0
        || json_array_size(v) > OMNI_RULES_MAX_PIXELS)
    {
        omni_cc_err(cc, "expected an array of 1 to %d pixels like "
                    "{\"img\": \"https://...\"}", OMNI_RULES_MAX_PIXELS);
        return -1;
    }

    r->pixels = omni_arena_alloc(cc->arena,
                                 json_array_size(v) * sizeof(omni_pixel_t));
    if (r->pixels == NULL) {
        cc->rb->oom = 1;
        return -1;
    }

    bad = 0;

    json_array_foreach(v, i, x) {
        omni_cc_idx(cc, i);

        if (!json_is_object(x) || json_object_size(x) != 1) {
            omni_cc_err(cc, "expected {\"img\": \"https://...\"} or "
                        "{\"script\": \"https://...\"}");
            bad = 1;
            omni_cc_pop(cc);
            continue;
        }

        json_object_foreach(x, key, u) {
            omni_cc_key(cc, key);
            px = &r->pixels[r->npixels];

            if (strcmp(key, "img") != 0 && strcmp(key, "script") != 0) {
                omni_cc_error(cc, OMNI_CC_AT_KEY, (size_t) -1,
                              "unknown pixel type \"%s\" (expected img or "
                              "script)", key);
                bad = 1;

            } else if (omni_cc_template(cc, u, OMNI_TMPL_URL, &px->url)
                       == 0)
            {
                size_t  delta;

                px->type = key[0] == 'i' ? OMNI_PIXEL_IMG
                                         : OMNI_PIXEL_SCRIPT;

                /* rendered straight into the img or script tag */
                px->html = omni_tmpl_html_url(px->url, omni_arena_alloc,
                                              cc->arena, &delta);
                px->html_delta = (uint32_t) delta;

                px->key = omni_cc_keyid(cc, key[0] == 'i' ? "i:" : "s:",
                                        json_string_value(u),
                                        json_string_length(u));
                r->npixels++;

            } else {
                bad = 1;
            }

            omni_cc_pop(cc);
        }

        omni_cc_pop(cc);
    }

    return bad ? -1 : 0;
}


static int
omni_header_name_ok(const char *s, size_t len)
{
    static const char *const  deny[] = {
        "content-length", "content-type", "content-encoding",
        "content-range", "transfer-encoding", "connection", "keep-alive",
        "upgrade", "te", "trailer", "host", "set-cookie", "location",
        "status", "cache-control", "expires", "etag", "last-modified",
        "age", "pragma", "vary", "www-authenticate", "authorization",
        "accept-ranges", "date", "server", "refresh", NULL
    };
    size_t    i;
    unsigned  k;

    if (len == 0 || len > 64) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        char  c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-'))
        {
            return 0;
        }
    }

    if (len > 6 && strncasecmp(s, "proxy-", 6) == 0) {
        return -1;
    }

    for (k = 0; deny[k]; k++) {
        if (strlen(deny[k]) == len && strncasecmp(deny[k], s, len) == 0) {
            return -1;
        }
    }

    return 1;
}


static int
omni_cc_headers(omni_cc_t *cc, json_t *v, omni_rule_t *r)
{
    char            lc[65];
    const char     *key;
    json_t         *x;
    size_t          i, len;
    int             bad, ok;
    omni_header_t  *h;

    if (!json_is_object(v) || json_object_size(v) == 0
        || json_object_size(v) > OMNI_RULES_MAX_HEADERS)
    {
        omni_cc_err(cc, "expected an object of 1 to %d headers like "
                    "{\"X-Omni-Theme\": \"story\"}", OMNI_RULES_MAX_HEADERS);
        return -1;
    }

    r->headers = omni_arena_alloc(cc->arena,
                                  json_object_size(v) * sizeof(omni_header_t));
    if (r->headers == NULL) {
        cc->rb->oom = 1;
        return -1;
    }

    bad = 0;

    json_object_foreach(v, key, x) {
        omni_cc_key(cc, key);
        len = strlen(key);
        ok = omni_header_name_ok(key, len);

        if (ok <= 0) {
            omni_cc_error(cc, OMNI_CC_AT_KEY, (size_t) -1, ok == 0
                          ? "invalid header name \"%s\""
                          : "header \"%s\" may not be set by a rule", key);
            bad = 1;
            omni_cc_pop(cc);
            continue;
        }

        h = &r->headers[r->nheaders];

        if (omni_cc_template(cc, x, OMNI_TMPL_HEADER, &h->value) != 0) {
            bad = 1;
            omni_cc_pop(cc);
            continue;
        }

        for (i = 0; i < len; i++) {
            lc[i] = (char) (key[i] >= 'A' && key[i] <= 'Z' ? key[i] | 0x20
                                                           : key[i]);
        }

        h->name.data = omni_arena_strndup(cc->arena, key, len);
        h->name.len = len;
        h->key = omni_cc_keyid(cc, "h:", lc, len);

        if (h->name.data == NULL) {
            cc->rb->oom = 1;
        }

        r->nheaders++;
        omni_cc_pop(cc);
    }

    return bad ? -1 : 0;
}


static int
omni_cc_suppress(omni_cc_t *cc, json_t *v, omni_rule_t *r, int *advertised)
{
    static const char *const  keys[] = {
        "purchased", "category", "within", NULL
    };
    json_t  *x;
    int      bad;

    if (!json_is_object(v)) {
        omni_cc_err(cc, "expected an object like {\"purchased\": "
                    "\"advertised\"}");
        return -1;
    }

    if (omni_cc_keys(cc, v, keys, "suppress") != 0) {
        return -1;
    }

    bad = 0;
    *advertised = 0;

    if ((x = json_object_get(v, "purchased")) != NULL) {
        omni_cc_key(cc, "purchased");

        if (json_is_string(x)
            && strcmp(json_string_value(x), "advertised") == 0)
        {
            *advertised = 1;

        } else if (json_is_string(x)
                   && strcmp(json_string_value(x), "none") == 0)
        {
            *advertised = 0;

        } else {
            bad |= omni_cc_idlist(cc, x, &cc->rb->set->skus, &r->supp_skus,
                                  &r->nsupp_skus);
        }

        omni_cc_pop(cc);

    } else {
        *advertised = -1;       /* the default applies */
    }

    if ((x = json_object_get(v, "category")) != NULL) {
        omni_cc_key(cc, "category");
        bad |= omni_cc_idlist(cc, x, &cc->rb->set->cats, &r->supp_cats,
                              &r->nsupp_cats);
        omni_cc_pop(cc);
    }

    if ((x = json_object_get(v, "within")) != NULL) {
        omni_cc_key(cc, "within");
        bad |= omni_cc_duration(cc, x, &r->supp_within);
        omni_cc_pop(cc);
    }

    return bad ? -1 : 0;
}


static int
omni_rb_add_rule(omni_rb_t *rb, omni_rule_t *r)
{
    uint32_t      ncap;
    omni_rule_t  *v;

    if (rb->nrules >= OMNI_RULES_MAX_RULES) {
        return -1;
    }

    if (rb->nrules == rb->caprules) {
        ncap = rb->caprules ? rb->caprules * 2 : 64;
        v = realloc(rb->rules, ncap * sizeof(omni_rule_t));
        if (v == NULL) {
            rb->oom = 1;
            return -1;
        }

        rb->rules = v;
        rb->caprules = ncap;
    }

    rb->rules[rb->nrules++] = *r;

    return 0;
}


static void
omni_cc_rule(omni_cc_t *cc, json_t *v)
{
    static const char *const  keys[] = {
        "id", "description", "campaign", "priority", "enabled", "start",
        "end", "tz", "when", "skus", "cap", "cooldown", "suppress",
        "holdout", "banner", "pixels", "headers", NULL
    };
    static const char *const  cap_keys[] = { "max", "per", NULL };
    static const char *const  hold_keys[] = { "percent", "id", NULL };
    json_t       *x, *y;
    long long     ll;
    int64_t       t;
    int           b, advertised;
    unsigned      i, nstores;
    double        pct;
    int32_t       id, sku;
    omni_strv_t   s;
    omni_rule_t   r;
    omni_rb_t    *rb = cc->rb;
    const omni_tz_t  *tz;

    if (!json_is_object(v)) {
        omni_cc_err(cc, "expected a rule object, got %s",
                    omni_cc_type_name(v));
        return;
    }

    cc->rule_errors = 0;
    cc->leaves = 0;
    cc->needs = 0;
    cc->tz = &omni_tz_utc;
    nstores = rb->nstores;

    memset(&r, 0, sizeof(omni_rule_t));
    r.slot = -1;
    r.enabled = 1;
    r.file.data = cc->file;
    r.file.len = strlen(cc->file);

    (void) omni_cc_keys(cc, v, keys, "rule");

    if ((x = json_object_get(v, "id")) == NULL) {
        omni_cc_err(cc, "rule without \"id\"");

    } else {
        omni_cc_key(cc, "id");

        if (omni_cc_id(cc, x, &r.id, "rule id") == 0) {
            id = omni_sym_find(&rb->ids, r.id.data, r.id.len);

            if (id >= 0) {
                omni_cc_err(cc, "duplicate rule id \"%.*s\" (first in %.*s)",
                            (int) r.id.len, r.id.data,
                            (int) rb->id_files[id].len,
                            rb->id_files[id].data);
            }
        }

        omni_cc_pop(cc);
    }

    if ((x = json_object_get(v, "description")) != NULL) {
        omni_cc_key(cc, "description");
        (void) omni_cc_string(cc, x, 4096, &s);
        omni_cc_pop(cc);
    }

    r.campaign = r.id;

    if ((x = json_object_get(v, "campaign")) != NULL) {
        omni_cc_key(cc, "campaign");
        (void) omni_cc_id(cc, x, &r.campaign, "campaign");
        omni_cc_pop(cc);
    }

    if ((x = json_object_get(v, "priority")) != NULL) {
        omni_cc_key(cc, "priority");
        if (omni_cc_int(cc, x, -1000000, 1000000, &ll) == 0) {
            r.priority = (int32_t) ll;
        }
        omni_cc_pop(cc);
    }

    if ((x = json_object_get(v, "enabled")) != NULL) {
        omni_cc_key(cc, "enabled");
        if (omni_cc_bool(cc, x, &b) == 0) {
            r.enabled = (unsigned) b;
        }
        omni_cc_pop(cc);
    }

    if ((x = json_object_get(v, "tz")) != NULL) {
        char       err[128];
        omni_tz_t *ntz;

        omni_cc_key(cc, "tz");

        if (omni_cc_string(cc, x, 64, &s) == 0) {
            ntz = omni_arena_alloc(cc->arena, sizeof(omni_tz_t));

            if (ntz == NULL) {
                rb->oom = 1;

            } else if (omni_tz_load(s.data, s.len, ntz, omni_arena_alloc,
                                    cc->arena, err, sizeof(err)) != 0)
            {
                omni_cc_err(cc, "%s \"%.*s\"", err, (int) s.len, s.data);

            } else {
                cc->tz = ntz;
            }
        }

        omni_cc_pop(cc);
    }

    tz = cc->tz;

    for (i = 0; i < 2; i++) {
        x = json_object_get(v, i == 0 ? "start" : "end");
        if (x == NULL) {
            continue;
        }

        omni_cc_key(cc, i == 0 ? "start" : "end");

        if (omni_cc_string(cc, x, 40, &s) == 0) {
            if (omni_date_parse(s.data, s.len, tz, i == 1, &t) != 0
                || t < 0 || t > UINT32_MAX)
            {
                omni_cc_err(cc, "expected a date \"YYYY-MM-DD\" or "
                            "\"YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM]\"");

            } else if (i == 0) {
                r.start = (uint32_t) t;

            } else {
                r.end = (uint32_t) t;

                if (r.end <= r.start) {
                    omni_cc_err(cc, "\"end\" is not after \"start\"");
                }
            }
        }

        omni_cc_pop(cc);
    }

    if ((x = json_object_get(v, "when")) != NULL) {
        omni_cc_key(cc, "when");
        r.when = omni_cc_cond(cc, x);
        omni_cc_pop(cc);
    }

    if ((x = json_object_get(v, "skus")) != NULL) {
        omni_cc_key(cc, "skus");
        (void) omni_cc_strlist(cc, x, OMNI_MAX_STR, &r.skus, &r.nskus);
        omni_cc_pop(cc);
    }

    if ((x = json_object_get(v, "cap")) != NULL) {
        omni_cc_key(cc, "cap");

        if (!json_is_object(x) || json_object_get(x, "max") == NULL) {
            omni_cc_err(cc, "expected {\"max\": 3, \"per\": \"1d\"}");

        } else if (omni_cc_keys(cc, x, cap_keys, "cap") == 0) {
            omni_cc_key(cc, "max");
            if (omni_cc_int(cc, json_object_get(x, "max"), 1, 1000000, &ll)
                == 0)
            {
                r.cap_max = (uint32_t) ll;
            }
            omni_cc_pop(cc);

            if ((y = json_object_get(x, "per")) != NULL) {
                omni_cc_key(cc, "per");
                if (omni_cc_duration(cc, y, &r.cap_per) == 0
                    && r.cap_per < 3600)
                {
                    omni_cc_err(cc, "the shortest period is \"1h\" "
                                "(impressions are counted per hour)");
                }
                omni_cc_pop(cc);
            }
        }

        omni_cc_pop(cc);
    }

    if ((x = json_object_get(v, "cooldown")) != NULL) {
        omni_cc_key(cc, "cooldown");
        (void) omni_cc_duration(cc, x, &r.cooldown);
        omni_cc_pop(cc);
    }

    advertised = -1;

    if ((x = json_object_get(v, "suppress")) != NULL) {
        omni_cc_key(cc, "suppress");

        if (omni_cc_suppress(cc, x, &r, &advertised) == 0
            && advertised == 1 && r.nskus == 0)
        {
            omni_cc_key(cc, "purchased");
            omni_cc_err(cc, "\"advertised\" needs the rule's \"skus\"");
            omni_cc_pop(cc);
        }

        omni_cc_pop(cc);
    }

    /* by default a rule stops for whoever bought what it advertises */
    if (advertised != 0 && r.nskus > 0 && r.nsupp_skus == 0) {
        r.supp_skus = omni_arena_alloc(cc->arena,
                                       r.nskus * sizeof(int32_t));
        if (r.supp_skus == NULL) {
            rb->oom = 1;

        } else {
            for (i = 0; i < r.nskus; i++) {
                sku = omni_sym_intern(&rb->set->skus, cc->arena,
                                      r.skus[i].data, r.skus[i].len);
                if (sku < 0) {
                    rb->oom = 1;
                    break;
                }

                r.supp_skus[r.nsupp_skus++] = sku;
            }

            qsort(r.supp_skus, r.nsupp_skus, sizeof(int32_t), omni_cc_id_cmp);
        }
    }

    if ((x = json_object_get(v, "holdout")) != NULL) {
        omni_cc_key(cc, "holdout");

        if (!json_is_object(x) || json_object_get(x, "percent") == NULL) {
            omni_cc_err(cc, "expected {\"percent\": 10}");

        } else if (omni_cc_keys(cc, x, hold_keys, "holdout") == 0) {
            omni_cc_key(cc, "percent");
            if (omni_cc_number(cc, json_object_get(x, "percent"), 0.01, 100,
                               &pct) == 0)
            {
                r.holdout_bp = (uint32_t) (pct * 100 + 0.5);
            }
            omni_cc_pop(cc);

            r.holdout_id = r.campaign;

            if ((y = json_object_get(x, "id")) != NULL) {
                omni_cc_key(cc, "id");
                (void) omni_cc_id(cc, y, &r.holdout_id, "holdout id");
                omni_cc_pop(cc);
            }

            cc->needs |= OMNI_NEED_PID;
        }

        omni_cc_pop(cc);
    }

    if ((x = json_object_get(v, "banner")) != NULL) {
        omni_cc_key(cc, "banner");
        (void) omni_cc_banner(cc, x, &r);
        omni_cc_pop(cc);
    }

    if ((x = json_object_get(v, "pixels")) != NULL) {
        omni_cc_key(cc, "pixels");
        (void) omni_cc_pixels(cc, x, &r);
        omni_cc_pop(cc);
    }

    if ((x = json_object_get(v, "headers")) != NULL) {
        omni_cc_key(cc, "headers");
        (void) omni_cc_headers(cc, x, &r);
        omni_cc_pop(cc);
    }

    if (json_object_get(v, "banner") == NULL
        && json_object_get(v, "pixels") == NULL
        && json_object_get(v, "headers") == NULL)
    {
        omni_cc_err(cc, "rule has no action (\"banner\", \"pixels\" or "
                    "\"headers\")");
    }

    if (cc->rule_errors > 0) {
        rb->report->skipped++;
        rb->nstores = nstores;      /* its stores go with it */
        return;
    }

    r.leaves = cc->leaves;
    r.needs = cc->needs;
    omni_rule_prepare(&r);

    if (omni_rb_add_rule(rb, &r) != 0) {
        if (!rb->oom) {
            omni_cc_err(cc, "more than %d rules", OMNI_RULES_MAX_RULES);
        }
        return;
    }

    /* remember the id for duplicates in later rules and files */
    id = omni_sym_intern(&rb->ids, cc->arena, r.id.data, r.id.len);

    if (id < 0) {
        rb->oom = 1;
        return;
    }

    if ((uint32_t) id >= rb->nid_files) {
        omni_strv_t  *f;
        uint32_t      ncap = rb->nid_files ? rb->nid_files * 2 : 64;

        while (ncap <= (uint32_t) id) {
            ncap *= 2;
        }

        f = realloc(rb->id_files, ncap * sizeof(omni_strv_t));
        if (f == NULL) {
            rb->oom = 1;
            return;
        }

        rb->id_files = f;
        rb->nid_files = ncap;
    }

    rb->id_files[id] = r.file;
    rb->report->rules++;
}


/* ---- file level: catalog and settings ---- */

static void
omni_cc_catalog(omni_cc_t *cc, json_t *v)
{
    static const char *const  keys[] = {
        "name", "url", "image", "category", NULL
    };
    const char      *sku;
    json_t          *x, *f;
    int32_t          id;
    uint32_t         i, ncap;
    int              bad;
    omni_rb_t       *rb = cc->rb;
    omni_product_t   p;
    omni_product_t  *np;
    int32_t         *ns;

    if (!json_is_object(v)) {
        omni_cc_err(cc, "expected an object of products by sku");
        return;
    }

    json_object_foreach(v, sku, x) {
        omni_cc_key(cc, sku);

        if (!json_is_object(x)) {
            omni_cc_err(cc, "expected a product {\"name\": ...}");
            omni_cc_pop(cc);
            continue;
        }

        if (omni_cc_keys(cc, x, keys, "product") != 0) {
            omni_cc_pop(cc);
            continue;
        }

        memset(&p, 0, sizeof(omni_product_t));
        bad = 0;

#define OMNI_PRODUCT_FIELD(k, field)                                        \
        if ((f = json_object_get(x, k)) != NULL) {                          \
            omni_cc_key(cc, k);                                             \
            bad |= omni_cc_string(cc, f, 2048, &p.field);                   \
            omni_cc_pop(cc);                                                \
        }

        OMNI_PRODUCT_FIELD("name", name);
        OMNI_PRODUCT_FIELD("url", url);
        OMNI_PRODUCT_FIELD("image", image);
        OMNI_PRODUCT_FIELD("category", category);
#undef OMNI_PRODUCT_FIELD

        id = omni_sym_intern(&rb->set->skus, cc->arena, sku, strlen(sku));
        if (id < 0) {
            rb->oom = 1;
            omni_cc_pop(cc);
            return;
        }

        for (i = 0; i < rb->nproducts; i++) {
            if (rb->product_sku[i] == id) {
                omni_cc_error(cc, OMNI_CC_AT_KEY, (size_t) -1,
                              "duplicate catalog sku \"%s\"", sku);
                bad = 1;
                break;
            }
        }

        if (!bad) {
            if (rb->nproducts == rb->capproducts) {
                ncap = rb->capproducts ? rb->capproducts * 2 : 32;
                np = realloc(rb->products, ncap * sizeof(omni_product_t));
                if (np != NULL) {
                    rb->products = np;
                }

                ns = realloc(rb->product_sku, ncap * sizeof(int32_t));
                if (ns != NULL) {
                    rb->product_sku = ns;
                }

                if (np == NULL || ns == NULL) {
                    rb->oom = 1;
                    omni_cc_pop(cc);
                    return;
                }

                rb->capproducts = ncap;
            }

            rb->products[rb->nproducts] = p;
            rb->product_sku[rb->nproducts] = id;
            rb->nproducts++;
        }

        omni_cc_pop(cc);
    }
}


static void
omni_cc_settings(omni_cc_t *cc, json_t *v)
{
    static const char *const  keys[] = { "holdout", NULL };
    static const char *const  hkeys[] = { "id", "percent", NULL };
    json_t          *x;
    double           pct;
    omni_strv_t      id;
    omni_rb_t       *rb = cc->rb;

    if (!json_is_object(v)) {
        omni_cc_err(cc, "expected an object");
        return;
    }

    if (omni_cc_keys(cc, v, keys, "settings") != 0) {
        return;
    }

    if ((x = json_object_get(v, "holdout")) == NULL) {
        return;
    }

    omni_cc_key(cc, "holdout");

    if (!json_is_object(x) || json_object_get(x, "id") == NULL
        || json_object_get(x, "percent") == NULL)
    {
        omni_cc_err(cc, "expected {\"id\": \"global\", \"percent\": 10}");

    } else if (rb->holdout_file.len > 0) {
        omni_cc_err(cc, "a global holdout is already set in %.*s",
                    (int) rb->holdout_file.len, rb->holdout_file.data);

    } else if (omni_cc_keys(cc, x, hkeys, "holdout") == 0) {
        omni_cc_key(cc, "id");
        if (omni_cc_id(cc, json_object_get(x, "id"), &id, "holdout id")
            == 0)
        {
            rb->set->holdout_id = id;
        }
        omni_cc_pop(cc);

        omni_cc_key(cc, "percent");
        if (omni_cc_number(cc, json_object_get(x, "percent"), 0, 100, &pct)
            == 0)
        {
            rb->set->holdout_bp = (uint32_t) (pct * 100 + 0.5);
        }
        omni_cc_pop(cc);

        rb->holdout_file.data = cc->file;
        rb->holdout_file.len = strlen(cc->file);
    }

    omni_cc_pop(cc);
}



void
omni_rb_file(omni_rb_t *rb, const char *name, const char *text, size_t len)
{
    size_t         i;
    unsigned       line, col;
    json_t        *root, *x;
    json_error_t   jerr;
    omni_cc_t      cc;
    const char    *file;
    static const char *const  keys[] = {
        "rules", "catalog", "settings", NULL
    };

    rb->report->files++;

    if (omni_json_depth_check(text, len, OMNI_RULES_MAX_DEPTH, &line, &col)
        != 0)
    {
        omni_rb_error(rb, "%s:%u:%u: nesting deeper than %d levels", name,
                      line, col, OMNI_RULES_MAX_DEPTH);
        return;
    }

    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);

    if (root == NULL) {
        /* jansson says column 0 at an end of line; columns are 1-based. */
        omni_rb_error(rb, "%s:%d:%d: %s", name, jerr.line,
                      jerr.column > 0 ? jerr.column : 1, jerr.text);
        return;
    }

    /* the file name lives as long as the set (rule.file) */
    file = omni_arena_strndup(&rb->set->arena, name, strlen(name));

    memset(&cc, 0, sizeof(omni_cc_t));
    cc.rb = rb;
    cc.arena = &rb->set->arena;
    cc.hot = &rb->set->hot;
    cc.file = file != NULL ? file : name;
    cc.text = text;
    cc.len = len;
    cc.errs = malloc(OMNI_CC_MAX_ERRORS * sizeof(omni_cerr_t));

    if (file == NULL || cc.errs == NULL) {
        rb->oom = 1;
        free(cc.errs);
        json_decref(root);
        return;
    }

    if (json_is_array(root)) {
        json_array_foreach(root, i, x) {
            omni_cc_idx(&cc, i);
            omni_cc_rule(&cc, x);
            omni_cc_pop(&cc);
        }

    } else if (json_is_object(root) && json_object_get(root, "rules")) {
        (void) omni_cc_keys(&cc, root, keys, "a rules file");

        if ((x = json_object_get(root, "settings")) != NULL) {
            omni_cc_key(&cc, "settings");
            omni_cc_settings(&cc, x);
            omni_cc_pop(&cc);
        }

        if ((x = json_object_get(root, "catalog")) != NULL) {
            omni_cc_key(&cc, "catalog");
            omni_cc_catalog(&cc, x);
            omni_cc_pop(&cc);
        }

        x = json_object_get(root, "rules");
        omni_cc_key(&cc, "rules");

        if (!json_is_array(x)) {
            omni_cc_err(&cc, "expected an array of rules");

        } else {
            for (i = 0; i < json_array_size(x); i++) {
                omni_cc_idx(&cc, i);
                omni_cc_rule(&cc, json_array_get(x, i));
                omni_cc_pop(&cc);
            }
        }

        omni_cc_pop(&cc);

    } else if (json_is_object(root)) {
        omni_cc_rule(&cc, root);

    } else {
        omni_cc_err(&cc, "expected a rule, an array of rules or "
                    "{\"rules\": [...]}");
    }

    omni_cc_flush(&cc);

    free(cc.errs);
    json_decref(root);
}
