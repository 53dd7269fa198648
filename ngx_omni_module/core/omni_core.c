/*
 * ngx_omni_module core: channel and stage names, profile ids.
 */

#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <time.h>

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
    /* a byte's two digits: one 2-byte copy per byte on the request path
       (identity, the store read, {{profile.id}}) */
    static const char  pairs[513] =
        "000102030405060708090a0b0c0d0e0f"
        "101112131415161718191a1b1c1d1e1f"
        "202122232425262728292a2b2c2d2e2f"
        "303132333435363738393a3b3c3d3e3f"
        "404142434445464748494a4b4c4d4e4f"
        "505152535455565758595a5b5c5d5e5f"
        "606162636465666768696a6b6c6d6e6f"
        "707172737475767778797a7b7c7d7e7f"
        "808182838485868788898a8b8c8d8e8f"
        "909192939495969798999a9b9c9d9e9f"
        "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
        "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
        "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
        "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
        "e0e1e2e3e4e5e6e7e8e9eaebecedeeef"
        "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
    unsigned           i;

    for (i = 0; i < OMNI_ID_LEN; i++) {
        memcpy(out + 2 * i, pairs + 2 * id[i], 2);
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


/* Separators of the formats CMPs write (after URL-decoding). */
static int
omni_consent_sep(char c)
{
    return c == ',' || c == '&' || c == ';' || c == '|' || c == '{'
           || c == '}' || c == '"' || c == '\'' || c == ' ' || c == '\t';
}


/* 1 granted, 0 refused, -1 not a consent value. */
static int
omni_consent_word(const char *p, size_t len)
{
    size_t  i;

    static const char  *yes[] = { "1", "true", "yes", "granted", "allow",
                                  "allowed", "accepted", "on", NULL };
    static const char  *no[] = { "0", "false", "no", "denied", "deny",
                                 "rejected", "off", NULL };

    for (i = 0; yes[i]; i++) {
        if (len == strlen(yes[i]) && strncasecmp(p, yes[i], len) == 0) {
            return 1;
        }
    }

    for (i = 0; no[i]; i++) {
        if (len == strlen(no[i]) && strncasecmp(p, no[i], len) == 0) {
            return 0;
        }
    }

    return -1;
}


/*
 * The value of key in a decoded cookie: "KEY:VALUE" or "KEY=VALUE"
 * between separators, as Cookiebot's {statistics:true,...}, OneTrust's
 * groups=C0002:1,... and simple "analytics=1|ads=0" cookies write it.
 */
static int
omni_consent_find(const char *s, const char *end, const char *key,
    size_t klen)
{
    const char  *p, *v;

    for (p = s; (size_t) (end - p) > klen; p++) {
        if ((p != s && !omni_consent_sep(p[-1]) && p[-1] != '='
             && p[-1] != ':')
            || memcmp(p, key, klen) != 0
            || (p[klen] != ':' && p[klen] != '='))
        {
            continue;
        }

        v = p + klen + 1;

        for (p = v; p < end && !omni_consent_sep(*p); p++) {
            /* void */
        }

        return omni_consent_word(v, (size_t) (p - v));
    }

    return -1;
}


static int
omni_consent_hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10
           : -1;
}


static const struct {
    const char  *name;
    uint32_t     bit;
} omni_consent_purposes[] = {
    /* the names, in bit order */
    { "analytics",       OMNI_CONSENT_ANALYTICS },
    { "personalization", OMNI_CONSENT_PERSONALIZE },
    { "ads",             OMNI_CONSENT_ADS },
    { "email",           OMNI_CONSENT_EMAIL },
    { "sms",             OMNI_CONSENT_SMS },
    /* other words for them */
    { "personalize",     OMNI_CONSENT_PERSONALIZE },
    { "advertising",     OMNI_CONSENT_ADS },
    { "marketing",       OMNI_CONSENT_ADS },
    { NULL, 0 }
};


const char *
omni_consent_purpose_name(unsigned k)
{
    return k < OMNI_CONSENT_NKEYS ? omni_consent_purposes[k].name : NULL;
}


uint32_t
omni_consent_purpose(const char *name, size_t len)
{
    unsigned  i;

    for (i = 0; omni_consent_purposes[i].name; i++) {
        if (strlen(omni_consent_purposes[i].name) == len
            && memcmp(omni_consent_purposes[i].name, name, len) == 0)
        {
            return omni_consent_purposes[i].bit;
        }
    }

    return 0;
}


uint32_t
omni_consent_cookie(const char *value, size_t len, char *buf,
    const char *const *key, const size_t *klen)
{
    int       v, hi, lo;
    size_t    i, n;
    uint32_t  c, bit;

    /* URL-decoded; a '%' that starts no escape stays as it is */
    for (i = 0, n = 0; i < len; i++) {
        if (value[i] == '%' && i + 2 < len
            && (hi = omni_consent_hex(value[i + 1])) >= 0
            && (lo = omni_consent_hex(value[i + 2])) >= 0)
        {
            buf[n++] = (char) (hi << 4 | lo);
            i += 2;
            continue;
        }

        buf[n++] = value[i];
    }

    c = 0;

    for (i = 0; i < OMNI_CONSENT_NKEYS; i++) {
        if (klen[i] == 0) {
            continue;
        }

        v = omni_consent_find(buf, buf + n, key[i], klen[i]);
        if (v < 0) {
            continue;
        }

        bit = 1u << i;
        c |= OMNI_CONSENT_STATED(bit) | (v ? bit : 0);
    }

    return c ? (c | OMNI_CONSENT_SET) : 0;
}


/*
 * Random ids from a per-thread buffer of OpenSSL's DRBG output: one
 * RAND_bytes() call (about 6,600 instructions, most of them the DRBG's
 * cipher setup) serves 32 new visitors instead of one.  A forked child
 * must never hand out the bytes its parent already drew from the same
 * buffer: the atfork handler empties the child's copy.
 */
#define OMNI_RAND_BUF  (32 * OMNI_ID_LEN)

static __thread unsigned char  omni_rand_buf[OMNI_RAND_BUF];
static __thread unsigned       omni_rand_left;
static pthread_once_t          omni_rand_once = PTHREAD_ONCE_INIT;


static void
omni_rand_forked(void)
{
    omni_rand_left = 0;
}


static void
omni_rand_init(void)
{
    (void) pthread_atfork(NULL, NULL, omni_rand_forked);
}


int
omni_id_random(unsigned char *id)
{
    (void) pthread_once(&omni_rand_once, omni_rand_init);

    if (omni_rand_left < OMNI_ID_LEN) {
        if (RAND_bytes(omni_rand_buf, OMNI_RAND_BUF) != 1) {
            return OMNI_ERROR;
        }

        omni_rand_left = OMNI_RAND_BUF;
    }

    omni_rand_left -= OMNI_ID_LEN;
    memcpy(id, omni_rand_buf + omni_rand_left, OMNI_ID_LEN);

    /* drawn bytes are not kept */
    memset(omni_rand_buf + omni_rand_left, 0, OMNI_ID_LEN);

    return OMNI_OK;
}


double
omni_clock_s(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}
