/*
 * Rules compiler support: the JSON path of the value being compiled,
 * errors recorded against that path (positions are resolved only when
 * the file is done, and only if there are errors), and typed readers
 * that report their own errors.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omni_rules_cc.h"


/* ---- path and errors ---- */

void
omni_cc_key(omni_cc_t *cc, const char *key)
{
    if (cc->depth < OMNI_CC_MAX_PATH) {
        cc->path[cc->depth].key = key;
        cc->path[cc->depth].klen = strlen(key);
        cc->path[cc->depth].index = 0;
    }

    cc->depth++;
}


void
omni_cc_idx(omni_cc_t *cc, size_t index)
{
    if (cc->depth < OMNI_CC_MAX_PATH) {
        cc->path[cc->depth].key = NULL;
        cc->path[cc->depth].klen = 0;
        cc->path[cc->depth].index = index;
    }

    cc->depth++;
}


void
omni_cc_pop(omni_cc_t *cc)
{
    if (cc->depth > 0) {
        cc->depth--;
    }
}


/* Appends src to the NUL-terminated dst of capacity cap, truncating. */
static void
omni_append(char *dst, size_t cap, const char *src)
{
    size_t  have, n;

    have = strnlen(dst, cap - 1);
    n = strnlen(src, cap - 1 - have);
    memcpy(dst + have, src, n);
    dst[have + n] = '\0';
}


/* "rules[0].when.cart" */
static void
omni_cc_path_text(omni_cc_t *cc, char *buf, size_t cap)
{
    char      seg[72];
    unsigned  i, depth;

    buf[0] = '\0';
    depth = cc->depth < OMNI_CC_MAX_PATH ? cc->depth : OMNI_CC_MAX_PATH;

    for (i = 0; i < depth; i++) {
        if (cc->path[i].key != NULL) {
            snprintf(seg, sizeof(seg), "%s%.*s", i ? "." : "",
                     (int) (cc->path[i].klen > 48 ? 48 : cc->path[i].klen),
                     cc->path[i].key);

        } else {
            snprintf(seg, sizeof(seg), "[%u]",
                     (unsigned) (cc->path[i].index & 0xffffffu));
        }

        omni_append(buf, cap, seg);
    }
}


void
omni_cc_error(omni_cc_t *cc, unsigned flags, size_t str_off,
    const char *fmt, ...)
{
    char          path[160], msg[OMNI_RULES_ERROR_LEN];
    va_list       ap;
    omni_cerr_t  *e;

    cc->total++;
    cc->rule_errors++;

    if (cc->nerrs >= OMNI_CC_MAX_ERRORS) {
        return;
    }

    e = &cc->errs[cc->nerrs];
    memset(e, 0, sizeof(omni_cerr_t));

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    omni_cc_path_text(cc, path, sizeof(path));

    e->msg[0] = '\0';

    if (path[0] != '\0') {
        omni_append(e->msg, sizeof(e->msg), path);
        omni_append(e->msg, sizeof(e->msg), ": ");
    }

    omni_append(e->msg, sizeof(e->msg), msg);

    e->depth = cc->depth < OMNI_CC_MAX_PATH ? cc->depth : OMNI_CC_MAX_PATH;
    memcpy(e->path, cc->path, e->depth * sizeof(omni_jseg_t));
    e->want_key = (flags & OMNI_CC_AT_KEY) != 0;
    e->str_off = str_off;
    e->seq = cc->nerrs;

    cc->nerrs++;
}


static void
omni_rb_report(omni_rb_t *rb, const char *line)
{
    omni_rules_report_t  *r = rb->report;

    if (r->nerrors < OMNI_RULES_MAX_ERRORS) {
        r->errors[r->nerrors][0] = '\0';
        omni_append(r->errors[r->nerrors], OMNI_RULES_ERROR_LEN, line);
    }

    r->nerrors++;
    rb->errors++;
}


void
omni_rb_error(omni_rb_t *rb, const char *fmt, ...)
{
    char     line[OMNI_RULES_ERROR_LEN];
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);

    omni_rb_report(rb, line);
}


unsigned
omni_rb_errors(const omni_rb_t *rb)
{
    return rb->errors;
}


static int
omni_cerr_cmp(const void *a, const void *b)
{
    const omni_cerr_t  *x = a, *y = b;

    if (x->line != y->line) {
        return x->line < y->line ? -1 : 1;
    }

    if (x->col != y->col) {
        return x->col < y->col ? -1 : 1;
    }

    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}


/* Positions, order, and into the report. */
void
omni_cc_flush(omni_cc_t *cc)
{
    char          line[OMNI_RULES_ERROR_LEN], pos[64];
    unsigned      i;
    omni_cerr_t  *e;

    for (i = 0; i < cc->nerrs; i++) {
        e = &cc->errs[i];
        (void) omni_json_position(cc->text, cc->len, e->path, e->depth,
                                  e->want_key, e->str_off, &e->line,
                                  &e->col);
    }

    qsort(cc->errs, cc->nerrs, sizeof(omni_cerr_t), omni_cerr_cmp);

    for (i = 0; i < cc->nerrs; i++) {
        e = &cc->errs[i];
        line[0] = '\0';
        omni_append(line, sizeof(line), cc->file);
        snprintf(pos, sizeof(pos), ":%u:%u: ", e->line, e->col);
        omni_append(line, sizeof(line), pos);
        omni_append(line, sizeof(line), e->msg);
        omni_rb_report(cc->rb, line);
    }

    /* errors beyond what was kept still count */
    for (i = cc->nerrs; i < cc->total; i++) {
        cc->rb->report->nerrors++;
        cc->rb->errors++;
    }
}


/* ---- typed readers ---- */

const char *
omni_cc_type_name(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:  return "an object";
    case JSON_ARRAY:   return "an array";
    case JSON_STRING:  return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL:    return "a number";
    case JSON_TRUE:
    case JSON_FALSE:   return "a boolean";
    default:           return "null";
    }
}


int
omni_cc_keys(omni_cc_t *cc, json_t *obj, const char *const *allowed,
    const char *what)
{
    const char  *key;
    json_t      *v;
    unsigned     i, bad;

    bad = 0;

    json_object_foreach(obj, key, v) {
        for (i = 0; allowed[i]; i++) {
            if (strcmp(allowed[i], key) == 0) {
                break;
            }
        }

        if (allowed[i] == NULL) {
            omni_cc_key(cc, key);
            omni_cc_error(cc, OMNI_CC_AT_KEY, (size_t) -1,
                          "unknown key \"%s\" in %s", key, what);
            omni_cc_pop(cc);
            bad++;
        }
    }

    return bad ? -1 : 0;
}


int
omni_cc_string(omni_cc_t *cc, json_t *v, size_t max, omni_strv_t *out)
{
    if (!json_is_string(v)) {
        omni_cc_err(cc, "expected a string, got %s", omni_cc_type_name(v));
        return -1;
    }

    if (json_string_length(v) > max) {
        omni_cc_err(cc, "string longer than %zu bytes", max);
        return -1;
    }

    /* jansson keeps the string until the document is freed: copy it */
    out->len = json_string_length(v);
    out->data = omni_arena_strndup(cc->arena, json_string_value(v),
                                   out->len);

    if (out->data == NULL) {
        cc->rb->oom = 1;
        return -1;
    }

    return 0;
}


int
omni_cc_int(omni_cc_t *cc, json_t *v, long long min, long long max,
    long long *out)
{
    if (!json_is_integer(v)) {
        omni_cc_err(cc, "expected an integer, got %s",
                    omni_cc_type_name(v));
        return -1;
    }

    if (json_integer_value(v) < min || json_integer_value(v) > max) {
        omni_cc_err(cc, "out of range (%lld .. %lld)", min, max);
        return -1;
    }

    *out = json_integer_value(v);

    return 0;
}


int
omni_cc_number(omni_cc_t *cc, json_t *v, double min, double max,
    double *out)
{
    double  d;

    if (!json_is_number(v)) {
        omni_cc_err(cc, "expected a number, got %s", omni_cc_type_name(v));
        return -1;
    }

    d = json_number_value(v);

    if (!(d >= min && d <= max)) {
        omni_cc_err(cc, "out of range (%g .. %g)", min, max);
        return -1;
    }

    *out = d;

    return 0;
}


int
omni_cc_bool(omni_cc_t *cc, json_t *v, int *out)
{
    if (!json_is_boolean(v)) {
        omni_cc_err(cc, "expected true or false, got %s",
                    omni_cc_type_name(v));
        return -1;
    }

    *out = json_is_true(v);

    return 0;
}


int
omni_cc_duration(omni_cc_t *cc, json_t *v, uint32_t *out)
{
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0
            || json_integer_value(v) > 10LL * 366 * 86400)
        {
            omni_cc_err(cc, "duration out of range (0 .. 10 years)");
            return -1;
        }

        *out = (uint32_t) json_integer_value(v);
        return 0;
    }

    if (!json_is_string(v)
        || omni_duration_parse(json_string_value(v), json_string_length(v),
                               out) != 0)
    {
        omni_cc_err(cc, "expected a duration like \"90s\", \"15m\", \"1h\", "
                    "\"7d\" or \"2w\"");
        return -1;
    }

    return 0;
}


int
omni_cc_strlist(omni_cc_t *cc, json_t *v, size_t max, omni_strv_t **out,
    unsigned *n)
{
    size_t        i;
    json_t       *x;
    omni_strv_t  *list;
    int           bad;

    if (json_is_string(v)) {
        list = omni_arena_alloc(cc->hot, sizeof(omni_strv_t));
        if (list == NULL) {
            cc->rb->oom = 1;
            return -1;
        }

        if (omni_cc_string(cc, v, max, &list[0]) != 0) {
            return -1;
        }

        *out = list;
        *n = 1;
        return 0;
    }

    if (!json_is_array(v) || json_array_size(v) == 0
        || json_array_size(v) > OMNI_RULES_MAX_LIST)
    {
        omni_cc_err(cc, json_is_array(v) && json_array_size(v)
                    ? "more than 1000 items"
                    : "expected a string or a non-empty array of strings");
        return -1;
    }

    list = omni_arena_alloc(cc->hot,
                            json_array_size(v) * sizeof(omni_strv_t));
    if (list == NULL) {
        cc->rb->oom = 1;
        return -1;
    }

    bad = 0;

    json_array_foreach(v, i, x) {
        omni_cc_idx(cc, i);
        bad |= omni_cc_string(cc, x, max, &list[i]);
        omni_cc_pop(cc);
    }

    if (bad) {
        return -1;
    }

    *out = list;
    *n = (unsigned) json_array_size(v);

    return 0;
}


int
omni_cc_id_cmp(const void *a, const void *b)
{
    int32_t  x = *(const int32_t *) a, y = *(const int32_t *) b;

    return x < y ? -1 : (x > y);
}


int
omni_cc_idlist(omni_cc_t *cc, json_t *v, omni_symtab_t *t, int32_t **out,
    unsigned *n)
{
    unsigned      i, k;
    int32_t      *ids;
    omni_strv_t  *list;

    if (omni_cc_strlist(cc, v, OMNI_MAX_STR, &list, n) != 0) {
        return -1;
    }

    ids = omni_arena_alloc(cc->hot, *n * sizeof(int32_t));
    if (ids == NULL) {
        cc->rb->oom = 1;
        return -1;
    }

    for (i = 0; i < *n; i++) {
        ids[i] = omni_sym_intern(t, cc->arena, list[i].data, list[i].len);
        if (ids[i] < 0) {
            cc->rb->oom = 1;
            return -1;
        }
    }

    qsort(ids, *n, sizeof(int32_t), omni_cc_id_cmp);

    for (i = 0, k = 0; i < *n; i++) {
        if (k == 0 || ids[k - 1] != ids[i]) {
            ids[k++] = ids[i];
        }
    }

    *n = k;
    *out = ids;

    return 0;
}


const char *
omni_cc_label(omni_cc_t *cc, const char *prefix, json_t *v)
{
    char    *dump, *label;
    size_t   n;

    dump = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

    label = omni_arena_alloc(cc->arena, 112);
    if (label == NULL) {
        free(dump);
        cc->rb->oom = 1;
        return prefix;
    }

    if (dump == NULL) {
        snprintf(label, 112, "%s", prefix);
        return label;
    }

    /* plain strings read better unquoted: cart.idle_gte 1h */
    n = strlen(dump);
    if (n >= 2 && dump[0] == '"' && strchr(dump + 1, '"') == dump + n - 1
        && strchr(dump, '\\') == NULL)
    {
        dump[n - 1] = '\0';
        snprintf(label, 112, "%s %.80s", prefix, dump + 1);

    } else {
        snprintf(label, 112, "%s %.80s", prefix, dump);
    }

    free(dump);

    return label;
}


int
omni_cc_regex(omni_cc_t *cc, pcre2_code *re)
{
    uint32_t     ncap;
    pcre2_code **v;
    omni_rb_t   *rb = cc->rb;

    if (rb->nregexes == rb->capregexes) {
        ncap = rb->capregexes ? rb->capregexes * 2 : 8;
        v = realloc(rb->regexes, ncap * sizeof(pcre2_code *));
        if (v == NULL) {
            pcre2_code_free(re);
            rb->oom = 1;
            return -1;
        }

        rb->regexes = v;
        rb->capregexes = ncap;
    }

    rb->regexes[rb->nregexes++] = re;

    return 0;
}
