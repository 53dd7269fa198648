/*
 * Event ingest: identify's traits, the email identity and the consent a
 * call states (omni_event_parse.c, omni_event_int.h).
 */

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "omni_event.h"
#include "omni_event_int.h"
#include "omni_token.h"
#include "omni_tz.h"


/* Traits a browser or an app may set on its own profile. */
static const char  *omni_client_traits[] = {
    "first_name", "firstName", "last_name", "lastName", "name", "locale",
    "language", "timezone", NULL
};


int
omni_ev_channel_name(const char *s, size_t len)
{
    /* Segment's context.channel values, then ours. */
    if (len == 7 && memcmp(s, "browser", 7) == 0) {
        return OMNI_CH_WEB;
    }

    if (len == 6 && memcmp(s, "mobile", 6) == 0) {
        return OMNI_CH_APP;
    }

    if (len == 6 && memcmp(s, "server", 6) == 0) {
        return OMNI_CH_OTHER;
    }

    return omni_channel_parse(s, len);
}


/* One trait value: a string, a number, a boolean (1 or 0) or null. */
static int
omni_ev_trait(omni_event_t *ev, omni_event_err_t *err, const char *path,
    const char *sub, const char *key, json_t *v)
{
    char         *k;
    size_t        len;
    omni_attr_t  *a;

    k = strdup(key);
    if (k == NULL) {
        return omni_ev_fail(err, OMNI_ERROR, path, sub, "out of memory");
    }

    if (json_is_null(v)) {
        ev->unset[ev->nunset++] = k;
        return OMNI_OK;
    }

    a = &ev->traits[ev->ntraits];
    a->key = k;
    a->str = NULL;
    a->num = 0.0;
    a->type = OMNI_ATTR_NUM;
    ev->ntraits++;

    if (json_is_string(v)) {
        len = json_string_length(v);

        /* empty is fine; control characters are not (docs: limits) */
        if (len > 0 && !omni_ev_text_ok(json_string_value(v), len,
                                        OMNI_MAX_STR))
        {
            return omni_ev_fail(err, OMNI_INVALID, path, sub,
                                "expected at most %d bytes without control "
                                "characters", OMNI_MAX_STR);
        }

        a->type = OMNI_ATTR_STR;
        a->str = strdup(json_string_value(v));

        if (a->str == NULL) {
            return omni_ev_fail(err, OMNI_ERROR, path, sub, "out of memory");
        }

    } else if (json_is_number(v) && isfinite(json_number_value(v))) {
        a->num = json_number_value(v);

    } else if (json_is_boolean(v)) {
        a->num = json_is_true(v) ? 1.0 : 0.0;

    } else {
        return omni_ev_fail(err, OMNI_INVALID, path, sub,
                            "expected a string, number, boolean or null");
    }

    return OMNI_OK;
}


/*
 * An email address as an alias: the sha256 of the trimmed, lowercased
 * address (the address itself is never kept).  OMNI_INVALID when it is
 * not an address.
 */
int
omni_ev_email(const char *s, size_t len, omni_event_ident_t *email)
{
    while (len && isspace((unsigned char) *s)) {
        s++;
        len--;
    }

    while (len && isspace((unsigned char) s[len - 1])) {
        len--;
    }

    if (!omni_ev_text_ok(s, len, 254) || memchr(s, '@', len) == NULL) {
        return OMNI_INVALID;
    }

    omni_sha256_hex(s, len, 1, email->value);
    email->kind = OMNI_ALIAS_EMAIL;
    email->soft = 0;
    email->len = OMNI_SHA256_HEX_LEN;

    return OMNI_OK;
}


/* Identify traits: attributes, unset attributes and the email alias. */
/*
 * A consent object: purposes to booleans, {"analytics": true, "ads":
 * false}.  "personalization" (or "personalize"), "ads" (or
 * "advertising", "marketing"), "analytics", "email", "sms".  Keys that
 * are not purposes (a CMP's own metadata) are passed over; at least one
 * purpose is required.  A browser or app may state its own consent.
 */
int
omni_ev_consent(omni_event_t *ev, omni_event_err_t *err, const char *path,
    const char *field, json_t *o)
{
    char         sub[192];
    unsigned     n;
    uint32_t     bit;
    const char  *k;
    json_t      *v;

    if (!json_is_object(o)) {
        return omni_ev_fail(err, OMNI_INVALID, path, field,
                            "expected an object of purposes to booleans, "
                            "like {\"analytics\": true, \"ads\": false}");
    }

    n = 0;

    json_object_foreach(o, k, v) {
        bit = omni_consent_purpose(k, strlen(k));

        if (bit == 0) {
            continue;
        }

        snprintf(sub, sizeof(sub), "%s.%s", field, k);

        if (json_is_true(v) || (json_is_integer(v) && json_integer_value(v)))
        {
            ev->consent_on |= bit;
            ev->consent_off &= ~bit;

        } else if (json_is_false(v)
                   || (json_is_integer(v) && !json_integer_value(v)))
        {
            ev->consent_off |= bit;
            ev->consent_on &= ~bit;

        } else {
            return omni_ev_fail(err, OMNI_INVALID, path, sub,
                                "expected true or false");
        }

        n++;
    }

    if (n == 0) {
        return omni_ev_fail(err, OMNI_INVALID, path, field,
                            "no purpose: expected analytics, "
                            "personalization, ads, email or sms");
    }

    ev->has_consent = 1;

    return OMNI_OK;
}


int
omni_ev_traits(omni_event_t *ev, omni_event_err_t *err, const char *path,
    json_t *traits, int client, omni_event_ident_t *email)
{
    int                  rc;
    char                 key[160], sub[192];
    size_t               klen;
    json_t              *v, *x, *clean;
    unsigned             j, n;
    const char          *k, *k2;
    omni_event_ident_t   addr;

    if (!json_is_object(traits)) {
        return omni_ev_fail(err, OMNI_INVALID, path, "traits",
                            "expected an object");
    }

    n = 0;
    json_object_foreach(traits, k, v) {
        n += json_is_object(v) ? (unsigned) json_object_size(v) : 1;
    }

    if (n > OMNI_EVENT_MAX_TRAITS) {
        return omni_ev_fail(err, OMNI_INVALID, path, "traits",
                            "more than %d traits", OMNI_EVENT_MAX_TRAITS);
    }

    ev->traits = calloc(n ? n : 1, sizeof(omni_attr_t));
    ev->unset = calloc(n ? n : 1, sizeof(char *));
    clean = json_object();

    if (ev->traits == NULL || ev->unset == NULL || clean == NULL) {
        json_decref(clean);
        return omni_ev_fail(err, OMNI_ERROR, path, "traits",
                            "out of memory");
    }

    ev->traits_json = clean;

    json_object_foreach(traits, k, v) {
        klen = strlen(k);

        /* the visitor's own consent: not an attribute (docs/privacy.md) */
        if (klen == 7 && strcmp(k, "consent") == 0) {
            rc = omni_ev_consent(ev, err, path, "traits.consent", v);
            if (rc != OMNI_OK) {
                return rc;
            }

            if (json_object_set(clean, k, v) != 0) {
                return omni_ev_fail(err, OMNI_ERROR, path, "traits",
                                    "out of memory");
            }

            continue;
        }

        if (klen == 5 && strcmp(k, "email") == 0) {
            if (!json_is_string(v)) {
                return omni_ev_fail(err, OMNI_INVALID, path, "traits.email",
                                    "expected a string");
            }

            /* Only the hash is kept: the address never reaches the feed. */
            if (omni_ev_email(json_string_value(v), json_string_length(v),
                              &addr)
                != OMNI_OK)
            {
                return omni_ev_fail(err, OMNI_INVALID, path, "traits.email",
                                    "expected an email address");
            }

            if (client) {
                return omni_ev_fail(err, OMNI_EVENT_FORBIDDEN, path,
                                    "traits.email",
                                    "linking an email address needs a "
                                    "server key");
            }

            *email = addr;
            continue;
        }

        if (!omni_ev_text_ok(k, klen, 64)) {
            return omni_ev_fail(err, OMNI_INVALID, path, "traits",
                                "a trait name must have 1 to 64 bytes "
                                "without control characters");
        }

        if (client) {
            for (j = 0; omni_client_traits[j]; j++) {
                if (strcmp(k, omni_client_traits[j]) == 0) {
                    break;
                }
            }

            /* "name": {"tier": ...} would flatten to any attribute */
            if (omni_client_traits[j] == NULL || json_is_object(v)) {
                snprintf(sub, sizeof(sub), "traits.%s", k);
                return omni_ev_fail(err, OMNI_EVENT_FORBIDDEN, path, sub,
                                    "this trait needs a server key (a "
                                    "browser or app may set only names, "
                                    "locale and timezone)");
            }
        }

        /* One level of nesting (Segment's address) flattens to "a.b". */
        if (json_is_object(v)) {
            json_object_foreach(v, k2, x) {
                snprintf(key, sizeof(key), "%s.%s", k, k2);
                snprintf(sub, sizeof(sub), "traits.%s", key);

                if (json_is_object(x) || json_is_array(x)) {
                    return omni_ev_fail(err, OMNI_INVALID, path, sub,
                                        "traits nest at most one level");
                }

                if (k2[0] == '\0' || !omni_ev_text_ok(key, strlen(key), 64))
                {
                    return omni_ev_fail(err, OMNI_INVALID, path, sub,
                                        "a trait name must have 1 to 64 "
                                        "bytes without control characters");
                }
            }
        }

        if (json_is_array(v)) {
            snprintf(sub, sizeof(sub), "traits.%s", k);
            return omni_ev_fail(err, OMNI_INVALID, path, sub,
                                "arrays are not supported in traits");
        }

        if (json_object_set(clean, k, v) != 0) {
            return omni_ev_fail(err, OMNI_ERROR, path, "traits",
                                "out of memory");
        }
    }

    /* Second pass: the validated values, flattened. */
    json_object_foreach(clean, k, v) {
        /* the visitor's consent is the profile's consent, no attribute */
        if (strcmp(k, "consent") == 0) {
            continue;
        }

        if (json_is_object(v)) {
            json_object_foreach(v, k2, x) {
                snprintf(key, sizeof(key), "%s.%s", k, k2);
                snprintf(sub, sizeof(sub), "traits.%s", key);

                rc = omni_ev_trait(ev, err, path, sub, key, x);
                if (rc != OMNI_OK) {
                    return rc;
                }
            }

            continue;
        }

        snprintf(sub, sizeof(sub), "traits.%s", k);

        rc = omni_ev_trait(ev, err, path, sub, k, v);
        if (rc != OMNI_OK) {
            return rc;
        }
    }

    return OMNI_OK;
}
