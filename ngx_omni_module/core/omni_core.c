/*
 * ngx_omni_module core: channel and stage names, profile ids.
 */

#include <string.h>

#include <openssl/rand.h>

#include "omni_core.h"


/* Indexed by OMNI_CH_*; the names are the ones JSON and logs use. */
static const char  *omni_channel_names[OMNI_CH_MAX] = {
    "web", "app", "email", "sms", "pos", "ads", "call", "other"
};

/* Indexed by OMNI_STAGE_*. */
static const char  *omni_stage_names[OMNI_STAGE_MAX] = {
    "new", "browsing", "cart", "customer", "loyal"
};


static int omni_name_parse(const char **names, unsigned n, const char *s,
    size_t len);
static int omni_hex_value(unsigned char c);


const char *
omni_channel_name(unsigned ch)
{
    return ch < OMNI_CH_MAX ? omni_channel_names[ch] : NULL;
}


int
omni_channel_parse(const char *s, size_t len)
{
    return omni_name_parse(omni_channel_names, OMNI_CH_MAX, s, len);
}


const char *
omni_stage_name(unsigned stage)
{
    return stage < OMNI_STAGE_MAX ? omni_stage_names[stage] : NULL;
}


int
omni_stage_parse(const char *s, size_t len)
{
    return omni_name_parse(omni_stage_names, OMNI_STAGE_MAX, s, len);
}


/*
 * Exact, case-sensitive match of a counted string against a name table:
 * the names are part of the JSON and configuration vocabulary, and one
 * spelling keeps exports byte-identical.
 */
static int
omni_name_parse(const char **names, unsigned n, const char *s, size_t len)
{
    unsigned  i;

    if (s == NULL) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) {
            return (int) i;
        }
    }

    return -1;
}


void
omni_id_hex(const unsigned char *id, char *out)
{
    static const char  hex[] = "0123456789abcdef";
    unsigned           i;

    for (i = 0; i < OMNI_ID_LEN; i++) {
        out[2 * i] = hex[id[i] >> 4];
        out[2 * i + 1] = hex[id[i] & 0x0f];
    }

    out[OMNI_ID_HEX_LEN] = '\0';
}


static int
omni_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}


/*
 * Accepts exactly 32 hex digits (either case) or the canonical UUID form
 * 8-4-4-4-12 (36 characters, dashes at 8, 13, 18 and 23).  Anything else,
 * including braces, "urn:uuid:" prefixes or surrounding blanks, is
 * refused: ids come from cookies, tokens and admin input, and one strict
 * grammar keeps every entry point in agreement.  `id` is written only on
 * success.
 */
int
omni_id_parse(const char *s, size_t len, unsigned char *id)
{
    unsigned char  buf[OMNI_ID_LEN];
    size_t         i, n;
    int            hi, lo, uuid;

    if (s == NULL) {
        return OMNI_INVALID;
    }

    if (len == OMNI_ID_HEX_LEN) {
        uuid = 0;

    } else if (len == OMNI_ID_HEX_LEN + 4) {
        uuid = 1;
        if (s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-') {
            return OMNI_INVALID;
        }

    } else {
        return OMNI_INVALID;
    }

    n = 0;

    for (i = 0; i < len; i++) {
        if (uuid && (i == 8 || i == 13 || i == 18 || i == 23)) {
            continue;
        }

        /* dashes are skipped above, so digits always come in pairs */
        if (i + 1 >= len) {
            return OMNI_INVALID;
        }

        hi = omni_hex_value((unsigned char) s[i]);
        lo = omni_hex_value((unsigned char) s[i + 1]);

        if (hi < 0 || lo < 0 || n >= OMNI_ID_LEN) {
            return OMNI_INVALID;
        }

        buf[n++] = (unsigned char) (hi << 4 | lo);
        i++;
    }

    if (n != OMNI_ID_LEN) {
        return OMNI_INVALID;
    }

    memcpy(id, buf, OMNI_ID_LEN);

    return OMNI_OK;
}


int
omni_consent_allows(uint32_t consent, uint32_t purpose, int opt_in)
{
    if (!(consent & OMNI_CONSENT_SET)) {
        return !opt_in;
    }

    if (!(consent & OMNI_CONSENT_STATED_MASK)
        || (consent & OMNI_CONSENT_STATED(purpose)))
    {
        return (consent & purpose) != 0;
    }

    return !opt_in;
}


uint32_t
omni_consent_merge(uint32_t stored, uint32_t req)
{
    uint32_t  stated;

    if (!(req & OMNI_CONSENT_SET)) {
        return stored;
    }

    if (!(stored & OMNI_CONSENT_SET)) {
        return req;
    }

    /* a legacy record stated everything */
    if (!(stored & OMNI_CONSENT_STATED_MASK)) {
        stored |= OMNI_CONSENT_STATED_MASK;
    }

    stated = (req & OMNI_CONSENT_STATED_MASK) >> 16;

    return (stored & ~stated & ~OMNI_CONSENT_STATED_MASK)
           | (req & stated)
           | (stored & OMNI_CONSENT_STATED_MASK)
           | (req & OMNI_CONSENT_STATED_MASK)
           | OMNI_CONSENT_SET;
}


int
omni_id_random(unsigned char *id)
{
    if (RAND_bytes(id, OMNI_ID_LEN) != 1) {
        return OMNI_ERROR;
    }

    return OMNI_OK;
}
