/*
 * Profile updates shared by the module's writer task and omnictl.
 */

#include <string.h>

#include "omni_update.h"


unsigned
omni_derive_stage(const omni_profile_t *p)
{
    if (p->orders >= 5) {
        return OMNI_STAGE_LOYAL;
    }

    if (p->orders >= 1) {
        return OMNI_STAGE_CUSTOMER;
    }

    if (p->ncart > 0) {
        return OMNI_STAGE_CART;
    }

    if (p->visits >= 2 || p->nviews > 0) {
        return OMNI_STAGE_BROWSING;
    }

    return OMNI_STAGE_NEW;
}


/* One impression per campaign in the touch's comma-separated list. */
static int
omni_touch_impressions(omni_profile_t *p, const omni_touch_t *t)
{
    char         name[OMNI_MAX_STR + 1];
    size_t       n;
    const char  *c, *end, *comma;

    if (t->campaigns == NULL) {
        return OMNI_OK;
    }

    c = t->campaigns;
    end = c + t->campaigns_len;

    while (c < end) {
        comma = memchr(c, ',', (size_t) (end - c));
        n = (size_t) ((comma ? comma : end) - c);

        if (n > 0 && n <= OMNI_MAX_STR) {
            memcpy(name, c, n);
            name[n] = '\0';

            if (omni_profile_add_impression(p, name, t->time) != OMNI_OK) {
                return OMNI_ERROR;
            }
        }

        c += n + 1;
    }

    return OMNI_OK;
}


int
omni_apply_touch(omni_wtxn_t *w, const omni_touch_t *t, unsigned char *pid)
{
    int             rc;
    char            hex[OMNI_ID_HEX_LEN + 1];
    uint32_t        timeout;
    unsigned        linked;
    unsigned char   id[OMNI_ID_LEN];
    omni_profile_t  p;

    /* Cookie and device aliases are the id's hex text. */
    omni_id_hex(t->id, hex);

    rc = omni_wtxn_get_alias(w, t->kind, hex, OMNI_ID_HEX_LEN, id);
    linked = (rc == OMNI_OK);

    if (rc == OMNI_NOTFOUND) {
        /* First sight: the profile takes the visitor's own id. */
        memcpy(id, t->id, OMNI_ID_LEN);

    } else if (rc != OMNI_OK) {
        return rc;
    }

    rc = omni_wtxn_get_profile(w, id, &p);
    if (rc != OMNI_OK && rc != OMNI_NOTFOUND) {
        omni_profile_free(&p);
        return rc;
    }

    if (rc == OMNI_NOTFOUND) {
        p.created = t->time;
    }

    if (omni_profile_add_alias(&p, t->kind, hex, OMNI_ID_HEX_LEN)
        != OMNI_OK)
    {
        omni_profile_free(&p);
        return OMNI_ERROR;
    }

    /* A visit ends after visit_timeout seconds without a request. */
    timeout = t->visit_timeout ? t->visit_timeout
                               : OMNI_VISIT_TIMEOUT_DEFAULT;

    if (p.visits == 0 || t->time >= p.visit_last + timeout) {
        p.visits++;
    }

    if (t->time > p.visit_last) {
        p.visit_last = t->time;
    }

    if (t->channel < OMNI_CH_MAX && t->time > p.last_seen[t->channel]) {
        p.last_seen[t->channel] = t->time;
    }

    if (t->time > p.updated) {
        p.updated = t->time;
    }

    if (omni_touch_impressions(&p, t) != OMNI_OK) {
        omni_profile_free(&p);
        return OMNI_ERROR;
    }

    p.stage = omni_derive_stage(&p);

    /*
     * The common case, a known visitor: its alias already points here,
     * so only the record is written (no alias B-tree writes).
     */
    rc = linked ? omni_wtxn_put_record(w, &p) : omni_wtxn_put_profile(w, &p);
    omni_profile_free(&p);

    if (rc == OMNI_OK && pid) {
        memcpy(pid, id, OMNI_ID_LEN);
    }

    return rc;
}


int
omni_link_alias(omni_wtxn_t *w, const unsigned char *pid, unsigned kind,
    const char *value, size_t len, uint32_t now)
{
    int             rc;
    unsigned char   old[OMNI_ID_LEN];
    omni_profile_t  p;

    rc = omni_wtxn_get_alias(w, kind, value, len, old);

    if (rc == OMNI_OK && memcmp(old, pid, OMNI_ID_LEN) != 0) {
        /* Take the alias away from the profile that had it. */
        rc = omni_wtxn_get_profile(w, old, &p);

        if (rc == OMNI_OK) {
            omni_profile_del_alias(&p, kind, value, len);
            rc = omni_wtxn_put_profile(w, &p);
        }

        omni_profile_free(&p);

        if (rc != OMNI_OK && rc != OMNI_NOTFOUND) {
            return rc;
        }

    } else if (rc != OMNI_OK && rc != OMNI_NOTFOUND) {
        return rc;
    }

    rc = omni_wtxn_get_profile(w, pid, &p);
    if (rc != OMNI_OK && rc != OMNI_NOTFOUND) {
        omni_profile_free(&p);
        return rc;
    }

    if (rc == OMNI_NOTFOUND) {
        p.created = now;
        p.updated = now;
    }

    if (omni_profile_add_alias(&p, kind, value, len) != OMNI_OK) {
        omni_profile_free(&p);
        return OMNI_ERROR;
    }

    rc = omni_wtxn_put_profile(w, &p);
    omni_profile_free(&p);

    return rc;
}
