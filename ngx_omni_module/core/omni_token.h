/*
 * Signed identities: the web visitor cookie and the app token.
 *
 * Both carry a 16-byte id and are authenticated with HMAC-SHA256 (OpenSSL),
 * truncated to 128 bits.  A keyring holds one or more secrets: the first
 * signs, every one verifies, so secrets rotate by prepending a new one and
 * dropping the old one after the cookie lifetime.  MACs are compared in
 * constant time (CRYPTO_memcmp) against every key.
 *
 * Wire format: base64url (no padding) of
 *     u8  version (1)
 *     u8  kind ('c' cookie, 't' app token)
 *     16  id
 *     u32 issued (unix seconds, big-endian)
 *     u32 expires (0: never; big-endian)
 *     16  HMAC-SHA256(secret, "omni/v1/" kind || the 26 bytes above)[0..16)
 * = 42 bytes, 56 characters.  The kind is inside the MAC, so a cookie can
 * never be replayed as a token or the reverse.
 */

#ifndef OMNI_TOKEN_H
#define OMNI_TOKEN_H

#include "omni_core.h"

#define OMNI_SECRET_MIN       32
#define OMNI_SECRET_MAX       256
#define OMNI_MAX_SECRETS      8
#define OMNI_TOKEN_RAW_LEN    42
#define OMNI_TOKEN_LEN        56          /* encoded length */

#define OMNI_KIND_COOKIE      'c'
#define OMNI_KIND_TOKEN       't'

/* The example secret printed in the docs; refused as a real key. */
#define OMNI_DOC_SECRET  "CHANGE-ME-this-is-the-documented-example-secret"

typedef struct {
    unsigned char   key[OMNI_SECRET_MAX];
    size_t          len;
    void           *mac;        /* its HMAC pads, hashed once */
} omni_secret_t;

typedef struct {
    omni_secret_t   keys[OMNI_MAX_SECRETS];
    unsigned        n;
} omni_keyring_t;

/*
 * Whether a configured secret may sign: OMNI_OK, or OMNI_INVALID with the
 * reason in err.  Refused: a value with '<', '>', whitespace or control
 * characters (a placeholder such as "<output of: openssl rand ...>"),
 * longer than OMNI_SECRET_MAX, the doc example, one that contains a
 * placeholder word ("CHANGE-ME", "changeme", "replace me", ...), a repeat
 * of one byte, or less than OMNI_SECRET_MIN bytes of key material: the
 * decoded size when the value is hex or base64, else its length.
 */
int omni_secret_check(const char *secret, size_t len, char *err,
    size_t errlen);

/*
 * Adds a secret.  Fails (with a reason in err) when omni_secret_check()
 * refuses it or the keyring is full.
 */
int omni_keyring_add(omni_keyring_t *kr, const char *secret, size_t len,
    char *err, size_t errlen);

/* Frees the keyed MAC contexts and wipes the secrets. */
void omni_keyring_free(omni_keyring_t *kr);

typedef struct {
    unsigned        kind;
    unsigned char   id[OMNI_ID_LEN];
    uint32_t        issued;
    uint32_t        expires;
    unsigned        key_index;          /* which key verified it */
} omni_token_t;

/* Encodes with the first key; out must hold OMNI_TOKEN_LEN + 1 bytes. */
int omni_token_sign(const omni_keyring_t *kr, const omni_token_t *t,
    char *out);

/* Reasons a token is refused. */
#define OMNI_TOKEN_BAD_LENGTH   -10
#define OMNI_TOKEN_BAD_ENCODING -11
#define OMNI_TOKEN_BAD_VERSION  -12
#define OMNI_TOKEN_BAD_KIND     -13
#define OMNI_TOKEN_BAD_MAC      -14
#define OMNI_TOKEN_EXPIRED      -15

/*
 * Verifies `in` as a token of `kind` at time `now`.  Returns OMNI_OK or
 * one of the reasons above; never reads past len.
 */
int omni_token_verify(const omni_keyring_t *kr, unsigned kind,
    const char *in, size_t len, uint32_t now, omni_token_t *t);

const char *omni_token_strerror(int rc);

/* base64url without padding.  Return the output length, or -1. */
int omni_b64url_encode(const unsigned char *in, size_t len, char *out,
    size_t outlen);
int omni_b64url_decode(const char *in, size_t len, unsigned char *out,
    size_t outlen);

#define OMNI_SHA256_HEX_LEN   64

/* sha256 hex of a string (lowercased first when `lower`); out[65]. */
void omni_sha256_hex(const char *in, size_t len, int lower, char *out);

#endif /* OMNI_TOKEN_H */
