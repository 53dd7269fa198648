/*
 * Signed identities: HMAC-SHA256 cookies and app tokens.  See omni_token.h
 * for the wire format.
 */

/* SHA256_Init() and its context, which a plain struct copy duplicates */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <openssl/hmac.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/crypto.h>

#include "omni_token.h"

#define OMNI_MAC_LEN      16
#define OMNI_BODY_LEN     (OMNI_TOKEN_RAW_LEN - OMNI_MAC_LEN)   /* 26 */


static void
omni_put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char) (v >> 24);
    p[1] = (unsigned char) (v >> 16);
    p[2] = (unsigned char) (v >> 8);
    p[3] = (unsigned char) v;
}


static uint32_t
omni_get_be32(const unsigned char *p)
{
    return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16)
           | ((uint32_t) p[2] << 8) | (uint32_t) p[3];
}


/*
 * HMAC-SHA256 (RFC 2104) with the key's two padded blocks hashed once,
 * when the secret is added: a token's MAC is then two struct copies and
 * two SHA-256 blocks (the 34-byte message, then the inner digest), where
 * OpenSSL 3's EVP_MAC re-initialises its contexts through the provider
 * layer on every call (about five times the instructions) and its
 * one-shot HMAC() also fetches the algorithm.  The SHA-256 blocks are
 * OpenSSL's own (SHA extensions or vector code).  NULL (no memory):
 * HMAC() is used instead.
 */
typedef struct {
    SHA256_CTX     inner;           /* after (key ^ ipad) */
    SHA256_CTX     outer;           /* after (key ^ opad) */
} omni_hmac_pads_t;


static void *
omni_keyring_mac(const char *secret, size_t len)
{
    size_t             i;
    unsigned char      k[SHA256_CBLOCK], pad[SHA256_CBLOCK];
    omni_hmac_pads_t  *h;

    h = malloc(sizeof(omni_hmac_pads_t));
    if (h == NULL) {
        return NULL;
    }

    /* a key longer than a block is its digest (RFC 2104, section 2) */
    memset(k, 0, sizeof(k));

    if (len > SHA256_CBLOCK) {
        SHA256((const unsigned char *) secret, len, k);

    } else {
        memcpy(k, secret, len);
    }

    for (i = 0; i < SHA256_CBLOCK; i++) {
        pad[i] = k[i] ^ 0x36;
    }

    SHA256_Init(&h->inner);
    SHA256_Update(&h->inner, pad, SHA256_CBLOCK);

    for (i = 0; i < SHA256_CBLOCK; i++) {
        pad[i] = k[i] ^ 0x5c;
    }

    SHA256_Init(&h->outer);
    SHA256_Update(&h->outer, pad, SHA256_CBLOCK);

    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));

    return h;
}


/*
 * Words that mark a value as a placeholder someone forgot to replace,
 * matched in the secret lowercased with everything but letters and
 * digits left out ("CHANGE-ME", "change_me", "<your secret here>").
 * None is likely in random text: the shortest has 7 letters.
 */
static const char  *omni_secret_placeholders[] = {
    "changeme", "changethis", "replaceme", "replacethis", "placeholder",
    "yoursecret", "secrethere", "insertsecret", "opensslrand", "example",
    NULL
};


/*
 * The bytes of key material a secret holds: what the value decodes to
 * when it is written in hex (openssl rand -hex) or in base64 or
 * base64url (openssl rand -base64, with or without '=' padding), else
 * its length.  32 hex digits are 16 random bytes, not 32.
 */
static size_t
omni_secret_strength(const char *s, size_t len, const char **what)
{
    size_t  i, n, pad;
    int     hex, b64;

    hex = (len % 2 == 0);
    b64 = 1;
    pad = 0;

    for (i = 0; i < len; i++) {
        if (!isxdigit((unsigned char) s[i])) {
            hex = 0;
        }

        if (s[i] == '=' && i >= len - 2) {
            pad++;
            continue;
        }

        if (pad || !(isalnum((unsigned char) s[i]) || s[i] == '+'
                     || s[i] == '/' || s[i] == '-' || s[i] == '_'))
        {
            b64 = 0;
        }
    }

    if (hex) {
        *what = "hex digits";
        return len / 2;
    }

    if (b64) {
        n = len - pad;
        *what = "base64 characters";
        return n * 6 / 8;
    }

    *what = NULL;
    return len;
}


int
omni_secret_check(const char *secret, size_t len, char *err, size_t errlen)
{
    char          norm[OMNI_SECRET_MAX + 1];
    size_t        i, n, bytes;
    const char   *what, **w;

    for (i = 0; i < len; i++) {
        if (secret[i] == '<' || secret[i] == '>'
            || isspace((unsigned char) secret[i])
            || iscntrl((unsigned char) secret[i]))
        {
            snprintf(err, errlen, "secret contains '<', '>', a space or a "
                     "control character: a placeholder, not a key; "
                     "generate one with: openssl rand -base64 48");
            return OMNI_INVALID;
        }
    }

    if (len > OMNI_SECRET_MAX) {
        snprintf(err, errlen, "secret is longer than %d bytes",
                 OMNI_SECRET_MAX);
        return OMNI_INVALID;
    }

    if (len == sizeof(OMNI_DOC_SECRET) - 1
        && memcmp(secret, OMNI_DOC_SECRET, len) == 0)
    {
        snprintf(err, errlen, "secret is the example value printed in the "
                 "documentation; generate a real one "
                 "(openssl rand -base64 48)");
        return OMNI_INVALID;
    }

    for (i = 0, n = 0; i < len; i++) {
        if (isalnum((unsigned char) secret[i])) {
            norm[n++] = (char) tolower((unsigned char) secret[i]);
        }
    }

    norm[n] = '\0';

    for (w = omni_secret_placeholders; *w; w++) {
        if (strstr(norm, *w) != NULL) {
            snprintf(err, errlen, "secret is a placeholder (it contains "
                     "\"%s\"), not a key; generate one with: "
                     "openssl rand -base64 48", *w);
            return OMNI_INVALID;
        }
    }

    for (i = 1; i < len; i++) {
        if (secret[i] != secret[0]) {
            break;
        }
    }

    if (len && i == len) {
        snprintf(err, errlen, "secret repeats a single character");
        return OMNI_INVALID;
    }

    bytes = omni_secret_strength(secret, len, &what);

    if (bytes < OMNI_SECRET_MIN) {
        if (what) {
            snprintf(err, errlen, "secret is %zu %s, %zu bytes decoded; at "
                     "least %d random bytes are required (openssl rand "
                     "-base64 48)", len, what, bytes, OMNI_SECRET_MIN);

        } else {
            snprintf(err, errlen, "secret is %zu bytes; at least %d random "
                     "bytes are required (openssl rand -base64 48)",
                     len, OMNI_SECRET_MIN);
        }

        return OMNI_INVALID;
    }

    return OMNI_OK;
}


int
omni_keyring_add(omni_keyring_t *kr, const char *secret, size_t len,
    char *err, size_t errlen)
{
    if (kr->n >= OMNI_MAX_SECRETS) {
        snprintf(err, errlen, "at most %d secrets can be configured",
                 OMNI_MAX_SECRETS);
        return OMNI_INVALID;
    }

    if (omni_secret_check(secret, len, err, errlen) != OMNI_OK) {
        return OMNI_INVALID;
    }

    memcpy(kr->keys[kr->n].key, secret, len);
    kr->keys[kr->n].len = len;
    kr->keys[kr->n].mac = omni_keyring_mac(secret, len);
    kr->n++;

    return OMNI_OK;
}


void
omni_keyring_free(omni_keyring_t *kr)
{
    unsigned  i;

    for (i = 0; i < kr->n; i++) {
        if (kr->keys[i].mac) {
            OPENSSL_cleanse(kr->keys[i].mac, sizeof(omni_hmac_pads_t));
            free(kr->keys[i].mac);
            kr->keys[i].mac = NULL;
        }
    }

    OPENSSL_cleanse(kr, sizeof(omni_keyring_t));
}


/* MAC over a domain-separation prefix, the kind and the body. */
static int
omni_token_mac(const omni_secret_t *key, const unsigned char *body,
    unsigned char *mac)
{
    unsigned char      msg[8 + OMNI_BODY_LEN];
    unsigned char      full[EVP_MAX_MD_SIZE];
    unsigned int       flen;
    SHA256_CTX         c;
    omni_hmac_pads_t  *h;

    memcpy(msg, "omni/v1/", 8);
    memcpy(msg + 8, body, OMNI_BODY_LEN);

    h = key->mac;

    if (h != NULL) {
        c = h->inner;

        if (SHA256_Update(&c, msg, sizeof(msg)) && SHA256_Final(full, &c)) {
            c = h->outer;

            if (SHA256_Update(&c, full, SHA256_DIGEST_LENGTH)
                && SHA256_Final(full, &c))
            {
                memcpy(mac, full, OMNI_MAC_LEN);
                OPENSSL_cleanse(full, sizeof(full));
                OPENSSL_cleanse(&c, sizeof(SHA256_CTX));
                return OMNI_OK;
            }
        }

        OPENSSL_cleanse(&c, sizeof(SHA256_CTX));

        return OMNI_ERROR;
    }

    if (HMAC(EVP_sha256(), key->key, (int) key->len, msg, sizeof(msg),
             full, &flen) == NULL)
    {
        return OMNI_ERROR;
    }

    memcpy(mac, full, OMNI_MAC_LEN);
    OPENSSL_cleanse(full, sizeof(full));

    return OMNI_OK;
}


int
omni_token_sign(const omni_keyring_t *kr, const omni_token_t *t, char *out)
{
    unsigned char  raw[OMNI_TOKEN_RAW_LEN];

    if (kr->n == 0) {
        return OMNI_ERROR;
    }

    raw[0] = 1;
    raw[1] = (unsigned char) t->kind;
    memcpy(raw + 2, t->id, OMNI_ID_LEN);
    omni_put_be32(raw + 18, t->issued);
    omni_put_be32(raw + 22, t->expires);

    if (omni_token_mac(&kr->keys[0], raw, raw + OMNI_BODY_LEN) != OMNI_OK) {
        return OMNI_ERROR;
    }

    if (omni_b64url_encode(raw, sizeof(raw), out, OMNI_TOKEN_LEN + 1)
        != OMNI_TOKEN_LEN)
    {
        return OMNI_ERROR;
    }

    return OMNI_OK;
}


int
omni_token_verify(const omni_keyring_t *kr, unsigned kind, const char *in,
    size_t len, uint32_t now, omni_token_t *t)
{
    unsigned       i;
    int            match;
    unsigned char  raw[OMNI_TOKEN_RAW_LEN];
    unsigned char  mac[OMNI_MAC_LEN];

    if (len != OMNI_TOKEN_LEN) {
        return OMNI_TOKEN_BAD_LENGTH;
    }

    if (omni_b64url_decode(in, len, raw, sizeof(raw)) != OMNI_TOKEN_RAW_LEN)
    {
        return OMNI_TOKEN_BAD_ENCODING;
    }

    if (raw[0] != 1) {
        return OMNI_TOKEN_BAD_VERSION;
    }

    /*
     * Check the MAC against every key before looking at the kind or the
     * expiry, and without an early exit, so timing tells nothing about
     * which key or which byte failed.
     */
    match = -1;

    for (i = 0; i < kr->n; i++) {
        if (omni_token_mac(&kr->keys[i], raw, mac) != OMNI_OK) {
            return OMNI_ERROR;
        }

        if (CRYPTO_memcmp(mac, raw + OMNI_BODY_LEN, OMNI_MAC_LEN) == 0
            && match < 0)
        {
            match = (int) i;
        }
    }

    if (match < 0) {
        return OMNI_TOKEN_BAD_MAC;
    }

    if (raw[1] != kind) {
        return OMNI_TOKEN_BAD_KIND;
    }

    t->kind = raw[1];
    memcpy(t->id, raw + 2, OMNI_ID_LEN);
    t->issued = omni_get_be32(raw + 18);
    t->expires = omni_get_be32(raw + 22);
    t->key_index = (unsigned) match;

    if (t->expires != 0 && now >= t->expires) {
        return OMNI_TOKEN_EXPIRED;
    }

    return OMNI_OK;
}


const char *
omni_token_strerror(int rc)
{
    switch (rc) {
    case OMNI_OK:
        return "valid";
    case OMNI_TOKEN_BAD_LENGTH:
        return "wrong length";
    case OMNI_TOKEN_BAD_ENCODING:
        return "not base64url";
    case OMNI_TOKEN_BAD_VERSION:
        return "unknown version";
    case OMNI_TOKEN_BAD_KIND:
        return "wrong kind";
    case OMNI_TOKEN_BAD_MAC:
        return "bad signature";
    case OMNI_TOKEN_EXPIRED:
        return "expired";
    default:
        return "internal error";
    }
}


static const char  omni_b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";


int
omni_b64url_encode(const unsigned char *in, size_t len, char *out,
    size_t outlen)
{
    size_t    i, o, need;
    uint32_t  v;

    need = (len / 3) * 4 + ((len % 3) ? (len % 3) + 1 : 0);

    if (outlen < need + 1) {
        return -1;
    }

    for (i = 0, o = 0; i + 2 < len; i += 3) {
        v = ((uint32_t) in[i] << 16) | ((uint32_t) in[i + 1] << 8) | in[i + 2];
        out[o++] = omni_b64url_alphabet[(v >> 18) & 63];
        out[o++] = omni_b64url_alphabet[(v >> 12) & 63];
        out[o++] = omni_b64url_alphabet[(v >> 6) & 63];
        out[o++] = omni_b64url_alphabet[v & 63];
    }

    if (len - i == 1) {
        v = (uint32_t) in[i] << 16;
        out[o++] = omni_b64url_alphabet[(v >> 18) & 63];
        out[o++] = omni_b64url_alphabet[(v >> 12) & 63];

    } else if (len - i == 2) {
        v = ((uint32_t) in[i] << 16) | ((uint32_t) in[i + 1] << 8);
        out[o++] = omni_b64url_alphabet[(v >> 18) & 63];
        out[o++] = omni_b64url_alphabet[(v >> 12) & 63];
        out[o++] = omni_b64url_alphabet[(v >> 6) & 63];
    }

    out[o] = '\0';

    return (int) o;
}


/* A character's 6 bits plus one, by byte; 0: not base64url. */
static const unsigned char  omni_b64url_dec[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6,
    ['G'] = 7, ['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12,
    ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,
    ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30,
    ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
    ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54,
    ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60,
    ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};


/*
 * Four characters, three bytes per step (the cookie is decoded on every
 * request); a short last group leaves bits that must be zero, so each
 * token has one encoding only.
 */
int
omni_b64url_decode(const char *in, size_t len, unsigned char *out,
    size_t outlen)
{
    size_t               i, o;
    uint32_t             v;
    unsigned             a, b, c, d;
    const unsigned char  *u = (const unsigned char *) in;

    if (len % 4 == 1) {
        return -1;
    }

    if ((len / 4) * 3 + (len % 4 ? len % 4 - 1 : 0) > outlen) {
        return -1;
    }

    o = 0;

    for (i = 0; i + 4 <= len; i += 4) {
        a = omni_b64url_dec[u[i]];
        b = omni_b64url_dec[u[i + 1]];
        c = omni_b64url_dec[u[i + 2]];
        d = omni_b64url_dec[u[i + 3]];

        if (a == 0 || b == 0 || c == 0 || d == 0) {
            return -1;
        }

        v = ((a - 1) << 18) | ((b - 1) << 12) | ((c - 1) << 6) | (d - 1);
        out[o++] = (unsigned char) (v >> 16);
        out[o++] = (unsigned char) (v >> 8);
        out[o++] = (unsigned char) v;
    }

    if (len - i == 2) {
        a = omni_b64url_dec[u[i]];
        b = omni_b64url_dec[u[i + 1]];

        if (a == 0 || b == 0) {
            return -1;
        }

        v = ((a - 1) << 6) | (b - 1);

        if (v & 0xf) {
            return -1;
        }

        out[o++] = (unsigned char) (v >> 4);

    } else if (len - i == 3) {
        a = omni_b64url_dec[u[i]];
        b = omni_b64url_dec[u[i + 1]];
        c = omni_b64url_dec[u[i + 2]];

        if (a == 0 || b == 0 || c == 0) {
            return -1;
        }

        v = ((a - 1) << 12) | ((b - 1) << 6) | (c - 1);

        if (v & 0x3) {
            return -1;
        }

        out[o++] = (unsigned char) (v >> 10);
        out[o++] = (unsigned char) (v >> 2);
    }

    return (int) o;
}


void
omni_sha256_hex(const char *in, size_t len, int lower, char *out)
{
    size_t         i, n, chunk;
    EVP_MD_CTX    *ctx;
    unsigned int   mdlen;
    unsigned char  buf[256], md[EVP_MAX_MD_SIZE];
    static const char  hex[] = "0123456789abcdef";

    out[0] = '\0';

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return;
    }

    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);

    /* Lowercase through a small buffer: emails are hashed normalised. */
    for (i = 0; i < len; i += chunk) {
        chunk = len - i < sizeof(buf) ? len - i : sizeof(buf);

        for (n = 0; n < chunk; n++) {
            buf[n] = (unsigned char) in[i + n];
            if (lower) {
                buf[n] = (unsigned char) tolower(buf[n]);
            }
        }

        EVP_DigestUpdate(ctx, buf, chunk);
    }

    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);

    for (i = 0; i < mdlen && i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }

    out[2 * i] = '\0';
}
