/*
 * ngx_omni_module core: shared definitions.
 *
 * The core is plain C (no nginx types).  The nginx module and omnictl both
 * link it, so every channel goes through one codec, one store access path
 * and one token implementation.
 */

#ifndef OMNI_CORE_H
#define OMNI_CORE_H

#include <stddef.h>
#include <stdint.h>

/* Result codes shared by every core function that can fail. */
#define OMNI_OK            0
#define OMNI_NOTFOUND      1
#define OMNI_ERROR        -1
#define OMNI_MAP_FULL     -2      /* LMDB map is full */
#define OMNI_MAP_RESIZED  -3      /* another process grew the map */
#define OMNI_INVALID      -4      /* malformed input (record, token, ...) */
#define OMNI_RECOVER      -5      /* a read-only open found a host crash
                                     to recover from: left to the next
                                     read-write open */

/* Identifiers: visitors, devices and profiles are 16 random bytes. */
#define OMNI_ID_LEN        16
#define OMNI_ID_HEX_LEN    32

/* Channels: index into the per-channel "last seen" table. */
enum {
    OMNI_CH_WEB = 0,
    OMNI_CH_APP,
    OMNI_CH_EMAIL,
    OMNI_CH_SMS,
    OMNI_CH_POS,
    OMNI_CH_ADS,
    OMNI_CH_CALL,
    OMNI_CH_OTHER,
    OMNI_CH_MAX             /* 8 */
};

/* Journey stages. */
enum {
    OMNI_STAGE_NEW = 0,
    OMNI_STAGE_BROWSING,
    OMNI_STAGE_CART,
    OMNI_STAGE_CUSTOMER,
    OMNI_STAGE_LOYAL,
    OMNI_STAGE_MAX
};

/* Consent flags (bits). */
#define OMNI_CONSENT_ANALYTICS      0x01
#define OMNI_CONSENT_PERSONALIZE    0x02
#define OMNI_CONSENT_ADS            0x04
#define OMNI_CONSENT_EMAIL          0x08
#define OMNI_CONSENT_SMS            0x10
#define OMNI_CONSENT_SET            0x80000000u  /* flags were stated */
#define OMNI_CONSENT_PURPOSES       0x1f
/*
 * Which purposes were stated: bit << 16.  A record with OMNI_CONSENT_SET
 * and no stated bit comes from before them: every purpose was stated.
 */
#define OMNI_CONSENT_STATED(b)      ((uint32_t) (b) << 16)
#define OMNI_CONSENT_STATED_MASK    OMNI_CONSENT_STATED(OMNI_CONSENT_PURPOSES)

/*
 * Whether consent (flags as stored, or a request's) allows one purpose
 * (one OMNI_CONSENT_* bit): what was stated, else the model's default:
 * granted under opt-out, refused under opt-in (opt_in non-zero).
 */
int omni_consent_allows(uint32_t consent, uint32_t purpose, int opt_in);
/* stored, with what the request states (a CMP cookie) on top */
uint32_t omni_consent_merge(uint32_t stored, uint32_t req);

/* The purposes a consent cookie maps, in OMNI_CONSENT_* bit order. */
#define OMNI_CONSENT_NKEYS          5

/*
 * Purpose 1 << k's name (k < OMNI_CONSENT_NKEYS): "analytics",
 * "personalization", "ads", "email", "sms", as events, the feed and
 * omni_consent_cookie's parameters say them.
 */
const char *omni_consent_purpose_name(unsigned k);

/*
 * The purpose bit a name states: those names, and the other words
 * events accept ("personalize", "advertising", "marketing"); 0: none.
 */
uint32_t omni_consent_purpose(const char *name, size_t len);

/*
 * What a CMP's consent cookie states (docs/privacy.md): value is the
 * cookie's value as sent (len bytes, URL-encoded or not); key[k] (klen[k]
 * bytes, 0: not mapped) is the cookie's key for purpose 1 << k.  Each
 * key is found as KEY:VALUE or KEY=VALUE between separators, the value a
 * grant (1, true, yes, granted, ...) or a refusal (0, false, no, ...).
 * buf: len bytes of scratch for the decoded value.  Returns the stated
 * purposes with OMNI_CONSENT_STATED() and OMNI_CONSENT_SET, or 0 when
 * the cookie states nothing.
 */
uint32_t omni_consent_cookie(const char *value, size_t len, char *buf,
    const char *const *key, const size_t *klen);

/* Alias kinds: the first byte of an alias key. */
#define OMNI_ALIAS_COOKIE    'c'    /* 16-byte web visitor id */
#define OMNI_ALIAS_DEVICE    'd'    /* 16-byte app device id */
#define OMNI_ALIAS_CUSTOMER  'u'    /* customer / user id string */
#define OMNI_ALIAS_EMAIL     'e'    /* sha256 hex of lowercased email */
#define OMNI_ALIAS_ANON      's'    /* a sender's anonymousId, as sent */

#define OMNI_ALIAS_MAX_LEN   128

typedef struct {
    const unsigned char  *data;
    size_t                len;
} omni_bytes_t;

const char *omni_channel_name(unsigned ch);
int omni_channel_parse(const char *s, size_t len);      /* -1: unknown */
const char *omni_stage_name(unsigned stage);
int omni_stage_parse(const char *s, size_t len);        /* -1: unknown */

/* Hex of 16-byte ids; out must hold OMNI_ID_HEX_LEN + 1 bytes. */
void omni_id_hex(const unsigned char *id, char *out);
/* Accepts 32 hex digits or a UUID (8-4-4-4-12). */
int omni_id_parse(const char *s, size_t len, unsigned char *id);
/* Cryptographically random id (OpenSSL RAND_bytes). */
int omni_id_random(unsigned char *id);

/* Seconds on the monotonic clock, for durations (commits, checkpoints). */
double omni_clock_s(void);

#endif /* OMNI_CORE_H */
