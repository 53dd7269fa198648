/*
 * Rules compiler internals (load time only): the per-file compile
 * context, error recording by JSON path, and typed JSON readers.
 * Shared by omni_rules_compile.c and omni_rules_cond.c.
 */

#ifndef OMNI_RULES_CC_H
#define OMNI_RULES_CC_H

#include <jansson.h>

#include "omni_rules_int.h"


#define OMNI_CC_MAX_PATH     (OMNI_RULES_MAX_DEPTH + 8)
#define OMNI_CC_MAX_ERRORS   (OMNI_RULES_MAX_ERRORS + 1)

typedef struct {
    omni_jseg_t         path[OMNI_CC_MAX_PATH];
    unsigned            depth;
    int                 want_key;
    size_t              str_off;
    char                msg[OMNI_RULES_ERROR_LEN];
    unsigned            line, col;
    unsigned            seq;
} omni_cerr_t;

struct omni_rb_s {
    unsigned              flags;
    omni_rules_report_t  *report;
    omni_rules_report_t   own;          /* when the caller gave none */
    omni_ruleset_t       *set;          /* arena, tables, stores */

    omni_rule_t          *rules;
    uint32_t              nrules, caprules;

    omni_symtab_t         ids;          /* rule ids, for duplicates */
    omni_strv_t          *id_files;     /* by id */
    uint32_t              nid_files;

    omni_store_t         *stores;
    uint32_t              nstores, capstores;
    omni_product_t       *products;
    int32_t              *product_sku;
    uint32_t              nproducts, capproducts;
    pcre2_code          **regexes;
    uint32_t              nregexes, capregexes;

    omni_strv_t           holdout_file;

    /* experiment arms seen so far: one experiment's ranges must be equal
       (the same arm) or disjoint, across rules and files */
    struct omni_rb_arm_s {
        omni_strv_t       id, file;
        uint32_t          a, b;         /* [a, b) basis points */
    }                    *arms;
    uint32_t              narms, caparms;

    unsigned              errors;
    int                   oom;
};

typedef struct {
    omni_rb_t            *rb;
    omni_arena_t         *arena;        /* strings, labels, templates */
    omni_arena_t         *hot;          /* condition nodes and operands */
    const char           *file;
    const char           *text;
    size_t                len;

    omni_jseg_t           path[OMNI_CC_MAX_PATH];
    unsigned              depth;

    omni_cerr_t          *errs;
    unsigned              nerrs;        /* kept */
    unsigned              total;        /* found in this file */

    /* the rule being compiled */
    unsigned              rule_errors;
    unsigned              leaves;
    unsigned              needs;
    const omni_tz_t      *tz;
} omni_cc_t;


/* path */
void omni_cc_key(omni_cc_t *cc, const char *key);
void omni_cc_idx(omni_cc_t *cc, size_t index);
void omni_cc_pop(omni_cc_t *cc);

/* errors at the current path; a "%s" in fmt may take arg */
#define OMNI_CC_AT_KEY   0x01       /* point at the key, not the value */

void omni_cc_error(omni_cc_t *cc, unsigned flags, size_t str_off,
    const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
#define omni_cc_err(cc, ...)  omni_cc_error(cc, 0, (size_t) -1, __VA_ARGS__)

/* Unknown keys of obj (every one reported); 0 when all are allowed. */
int omni_cc_keys(omni_cc_t *cc, json_t *obj, const char *const *allowed,
    const char *what);

/* typed readers: each reports its own error and returns -1 */
int omni_cc_string(omni_cc_t *cc, json_t *v, size_t max, omni_strv_t *out);
int omni_cc_int(omni_cc_t *cc, json_t *v, long long min, long long max,
    long long *out);
int omni_cc_number(omni_cc_t *cc, json_t *v, double min, double max,
    double *out);
int omni_cc_bool(omni_cc_t *cc, json_t *v, int *out);
int omni_cc_duration(omni_cc_t *cc, json_t *v, uint32_t *out);
/* A string or a non-empty array of strings. */
int omni_cc_strlist(omni_cc_t *cc, json_t *v, size_t max,
    omni_strv_t **out, unsigned *n);
/* The same, interned into a table, sorted and deduplicated. */
int omni_cc_idlist(omni_cc_t *cc, json_t *v, omni_symtab_t *t,
    int32_t **out, unsigned *n);

/* An explain label: prefix plus the value's compact JSON text. */
const char *omni_cc_label(omni_cc_t *cc, const char *prefix, json_t *v);

/* The condition compiler (omni_rules_cond.c). */
omni_cond_t *omni_cc_cond(omni_cc_t *cc, json_t *v);

/* Registers a regex for freeing with the set. */
int omni_cc_regex(omni_cc_t *cc, pcre2_code *re);

/* Resolves positions of the file's errors and adds them to the report. */
void omni_cc_flush(omni_cc_t *cc);
const char *omni_cc_type_name(json_t *v);
int omni_cc_id_cmp(const void *a, const void *b);

/* Needs and prefilters of a compiled rule (omni_rules_index.c). */
void omni_rule_prepare(omni_rule_t *r);

#endif /* OMNI_RULES_CC_H */
