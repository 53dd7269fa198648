/*
 * Loading rules: a directory of JSON files (or one buffer) into a
 * compiled set, with every error reported as "file:line:column: ...".
 * Load time only: this is where file I/O happens, never later.
 */

#include <stdlib.h>
#include <string.h>

#include "omni_rules_int.h"


static int omni_rules_finish(omni_rb_t *rb, unsigned flags,
    omni_ruleset_t **out);


int
omni_rules_load(const char *dir, omni_ruleset_t **out,
    omni_rules_report_t *report)
{
    return omni_rules_load_ex(dir, 0, out, report);
}


int
omni_rules_load_ex(const char *dir, unsigned flags, omni_ruleset_t **out,
    omni_rules_report_t *report)
{
    int                  rc;
    omni_rules_files_t   fs;

    *out = NULL;

    rc = omni_rules_read_dir(dir, &fs, report);
    if (rc != OMNI_OK) {
        return rc;
    }

    rc = omni_rules_load_files(&fs, flags, out, report);

    omni_rules_files_free(&fs);

    return rc;
}


int
omni_rules_load_buffer(const char *name, const char *text, size_t len,
    omni_ruleset_t **out, omni_rules_report_t *report)
{
    omni_rb_t  *rb;

    *out = NULL;

    rb = omni_rb_create(0, report);
    if (rb == NULL) {
        return OMNI_ERROR;
    }

    if (len > OMNI_RULES_MAX_FILE_SIZE) {
        omni_rb_error(rb, "%s: larger than %d bytes", name,
                      OMNI_RULES_MAX_FILE_SIZE);
        omni_rb_destroy(rb);
        return OMNI_INVALID;
    }

    omni_rb_file(rb, name, text, len);

    return omni_rules_finish(rb, 0, out);
}


static int
omni_rules_finish(omni_rb_t *rb, unsigned flags, omni_ruleset_t **out)
{
    omni_ruleset_t  *set;

    if (omni_rb_errors(rb) > 0 && !(flags & OMNI_RULES_LENIENT)) {
        omni_rb_destroy(rb);
        return OMNI_INVALID;
    }

    set = omni_rb_finish(rb);          /* frees rb */
    if (set == NULL) {
        return OMNI_ERROR;
    }

    *out = set;

    return OMNI_OK;
}


/* ---- accessors ---- */

unsigned
omni_rules_count(const omni_ruleset_t *set)
{
    return set ? set->nrules : 0;
}


unsigned
omni_rules_needs(const omni_ruleset_t *set)
{
    return set ? set->needs : 0;
}


unsigned
omni_rules_nslots(const omni_ruleset_t *set)
{
    return set ? set->nslots : 0;
}


const char *
omni_rules_slot(const omni_ruleset_t *set, unsigned slot, size_t *len)
{
    if (set == NULL || slot >= set->nslots) {
        if (len) {
            *len = 0;
        }
        return NULL;
    }

    if (len) {
        *len = set->slots[slot].len;
    }

    return set->slots[slot].data;
}


int
omni_rules_slot_find(const omni_ruleset_t *set, const char *name,
    size_t len)
{
    uint32_t  i;

    if (set == NULL) {
        return -1;
    }

    for (i = 0; i < set->nslots; i++) {
        if (omni_strv_eq(set->slots[i], name, len)) {
            return (int) i;
        }
    }

    return -1;
}


const char *
omni_rules_rule_id(const omni_ruleset_t *set, unsigned rule, size_t *len)
{
    if (set == NULL || rule >= set->nrules) {
        if (len) {
            *len = 0;
        }
        return NULL;
    }

    if (len) {
        *len = set->rules[rule].id.len;
    }

    return set->rules[rule].id.data;
}


int
omni_rules_rule_info(const omni_ruleset_t *set, unsigned rule,
    omni_rule_info_t *out)
{
    const omni_rule_t  *r;

    if (set == NULL || rule >= set->nrules) {
        return OMNI_NOTFOUND;
    }

    r = &set->rules[rule];

    /* the file name and slot names live as long as the set */
    out->file = r->file.data ? r->file.data : "";
    out->slot_len = 0;
    out->slot = r->slot >= 0 ? omni_rules_slot(set, (unsigned) r->slot,
                                               &out->slot_len)
                             : "";
    out->priority = r->priority;
    out->enabled = r->enabled ? 1 : 0;

    return OMNI_OK;
}


const char *
omni_rules_rule_campaign(const omni_ruleset_t *set, unsigned rule,
    size_t *len)
{
    if (set == NULL || rule >= set->nrules) {
        if (len) {
            *len = 0;
        }
        return NULL;
    }

    if (len) {
        *len = set->rules[rule].campaign.len;
    }

    return set->rules[rule].campaign.data;
}
