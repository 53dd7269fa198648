/*
 * Unit tests of omni_token.c: base64url, the keyring, signing and
 * verification of cookies and app tokens, and omni_sha256_hex().
 */

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "omni_tap.h"
#include "omni_token.h"




#define KEY_A  "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL"
#define KEY_B  "zyxwvutsrqponmlkjihgfedcba9876543210ZYXWVUTSRQPO"
/* not hex nor base64: counted as raw bytes */
#define KEY_RAW  "0123456789!abcdefghij!klmnopqrstuvwxyz!"


static void
keyring(omni_keyring_t *kr, const char *k1, const char *k2)
{
    char  err[256];

    memset(kr, 0, sizeof(omni_keyring_t));

    if (k1) {
        omni_keyring_add(kr, k1, strlen(k1), err, sizeof(err));
    }

    if (k2) {
        omni_keyring_add(kr, k2, strlen(k2), err, sizeof(err));
    }
}


/* Verifies a copy of exactly len bytes, so nothing past it is readable. */
static int
verify_n(const omni_keyring_t *kr, unsigned kind, const char *in,
    size_t len, uint32_t now, omni_token_t *t)
{
    int    rc;
    char  *copy;

    copy = malloc(len ? len : 1);
    memcpy(copy, in, len);
    rc = omni_token_verify(kr, kind, copy, len, now, t);
    free(copy);

    return rc;
}


static void
test_base64url(void)
{
    int            n;
    char           out[64];
    unsigned char  raw[64];
    size_t         i;

    static const struct {
        const char  *plain;
        const char  *enc;
    } vec[] = {
        /* RFC 4648 section 10, without padding */
        { "", "" },
        { "f", "Zg" },
        { "fo", "Zm8" },
        { "foo", "Zm9v" },
        { "foob", "Zm9vYg" },
        { "fooba", "Zm9vYmE" },
        { "foobar", "Zm9vYmFy" },
    };

    for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        n = omni_b64url_encode((const unsigned char *) vec[i].plain,
                               strlen(vec[i].plain), out, sizeof(out));
        is_str(n >= 0 ? out : NULL, vec[i].enc, "encode \"%s\"",
               vec[i].plain);

        n = omni_b64url_decode(vec[i].enc, strlen(vec[i].enc), raw,
                               sizeof(raw));
        ok(n == (int) strlen(vec[i].plain)
           && memcmp(raw, vec[i].plain, n) == 0,
           "decode \"%s\"", vec[i].enc);
    }

    /* the URL-safe alphabet: 0xfb 0xff is "+/8=" in standard base64 */
    raw[0] = 0xfb;
    raw[1] = 0xff;
    n = omni_b64url_encode(raw, 2, out, sizeof(out));
    is_str(n == 3 ? out : NULL, "-_8", "encode uses - and _");

    n = omni_b64url_decode("-_8", 3, raw, sizeof(raw));
    ok(n == 2 && raw[0] == 0xfb && raw[1] == 0xff, "decode - and _");

    is_int(omni_b64url_decode("+/8", 3, raw, sizeof(raw)), -1,
           "decode rejects the standard alphabet (+ /)");
    is_int(omni_b64url_decode("Zg==", 4, raw, sizeof(raw)), -1,
           "decode rejects padding");
    is_int(omni_b64url_decode("Zm9 v", 5, raw, sizeof(raw)), -1,
           "decode rejects a space");
    is_int(omni_b64url_decode("Zm\0v", 4, raw, sizeof(raw)), -1,
           "decode rejects a NUL inside the length");
    is_int(omni_b64url_decode("Zm9vY", 5, raw, sizeof(raw)), -1,
           "decode rejects a length of 4n+1");
    is_int(omni_b64url_decode("Zh", 2, raw, sizeof(raw)), -1,
           "decode rejects non-canonical trailing bits (Zh for Zg)");
    is_int(omni_b64url_decode("Zm9", 3, raw, sizeof(raw)), -1,
           "decode rejects non-canonical trailing bits (Zm9 for Zm8)");
    is_int(omni_b64url_decode("Zm9vYmFy", 8, raw, 5), -1,
           "decode refuses an output buffer too small");
    is_int(omni_b64url_encode((const unsigned char *) "foobar", 6, out, 8),
           -1, "encode refuses an output buffer without room for NUL");
    is_int(omni_b64url_encode((const unsigned char *) "foobar", 6, out, 9),
           8, "encode fits exactly");
}


/* What nginx -t refuses as omni_secret, and what it takes. */
static void
test_secret_check(void)
{
    char         err[256];
    unsigned     i;

    static const char  *bad[] = {
        "<output of: openssl rand -base64 48>",
        "<openssl rand -base64 48>",
        "CHANGE-ME",
        "CHANGE-ME-this-is-the-documented-example-secret",
        "changeme-0123456789-abcdefghijklmnopqrstuvwxyz",
        "Change_Me_Please_0123456789abcdefghijklmnopqrstuv",
        "replace me with a real secret of 48 characters!",
        "tab\tseparated-0123456789-abcdefghijklmnopqrstuvwx",
        "0123456789abcdef0123456789abcdef",            /* hex: 16 bytes */
        "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4",            /* base64: 24 */
        "your-secret-here-0123456789-abcdefghijklmnopqrst",
        NULL
    };

    static const char  *good[] = {
        "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz",
        /* openssl rand -base64 48, -base64 32 and -hex 32 */
        "q3mJ0tQ7c1mP7Vw7o0Qd0kXJq3f9yQ2V8m1Lr4Yt6Zs9Hc2Wb5Nd0Ke3Fg6Ja8Uy",
        "3q2+7wAAAAC7u7u7zMzMzN3d3d3u7u7u/////wAAAAA=",
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        KEY_RAW,
        NULL
    };

    for (i = 0; bad[i]; i++) {
        err[0] = '\0';
        ok(omni_secret_check(bad[i], strlen(bad[i]), err, sizeof(err))
           == OMNI_INVALID && err[0] != '\0',
           "secret_check refuses \"%s\" (%s)", bad[i], err);
    }

    for (i = 0; good[i]; i++) {
        ok(omni_secret_check(good[i], strlen(good[i]), err, sizeof(err))
           == OMNI_OK, "secret_check takes \"%s\"", good[i]);
    }

    omni_secret_check("0123456789abcdef0123456789abcdef", 32, err,
                      sizeof(err));
    ok(strstr(err, "32 hex digits, 16 bytes decoded") != NULL,
       "a short hex secret: its decoded size (%s)", err);
}


static void
test_keyring(void)
{
    int             rc;
    char            err[256], key[300];
    unsigned        i;
    omni_keyring_t  kr;

    memset(&kr, 0, sizeof(omni_keyring_t));

    err[0] = '\0';
    rc = omni_keyring_add(&kr, KEY_RAW, 31, err, sizeof(err));
    ok(rc != OMNI_OK && err[0] != '\0' && kr.n == 0,
       "keyring_add rejects a 31-byte secret (%s)", err);

    rc = omni_keyring_add(&kr, KEY_RAW, 32, err, sizeof(err));
    ok(rc == OMNI_OK && kr.n == 1, "keyring_add takes a 32-byte secret");

    memset(key, 'x', sizeof(key));
    key[0] = 'y';
    rc = omni_keyring_add(&kr, key, OMNI_SECRET_MAX + 1, err, sizeof(err));
    ok(rc != OMNI_OK && kr.n == 1, "keyring_add rejects a %d-byte secret",
       OMNI_SECRET_MAX + 1);

    rc = omni_keyring_add(&kr, key, OMNI_SECRET_MAX, err, sizeof(err));
    ok(rc == OMNI_OK && kr.n == 2, "keyring_add takes a %d-byte secret",
       OMNI_SECRET_MAX);

    err[0] = '\0';
    rc = omni_keyring_add(&kr, OMNI_DOC_SECRET, strlen(OMNI_DOC_SECRET),
                          err, sizeof(err));
    ok(rc != OMNI_OK && kr.n == 2 && strstr(err, "example") != NULL,
       "keyring_add rejects the documented example secret");

    memset(key, 'a', 64);
    rc = omni_keyring_add(&kr, key, 64, err, sizeof(err));
    ok(rc != OMNI_OK && kr.n == 2,
       "keyring_add rejects a single repeated character");

    omni_keyring_free(&kr);
    memset(&kr, 0, sizeof(omni_keyring_t));

    test_secret_check();

    for (i = 0; i < OMNI_MAX_SECRETS; i++) {
        snprintf(key, sizeof(key), "%02u-%s", i, KEY_A);
        if (omni_keyring_add(&kr, key, strlen(key), err, sizeof(err))
            != OMNI_OK)
        {
            break;
        }
    }

    is_int(kr.n, OMNI_MAX_SECRETS, "keyring_add takes %d secrets",
           OMNI_MAX_SECRETS);

    rc = omni_keyring_add(&kr, KEY_B, strlen(KEY_B), err, sizeof(err));
    ok(rc != OMNI_OK && kr.n == OMNI_MAX_SECRETS,
       "keyring_add rejects secret number %d", OMNI_MAX_SECRETS + 1);

    omni_keyring_free(&kr);
}


static void
test_sign_verify(void)
{
    int             rc;
    char            tok[OMNI_TOKEN_LEN + 1], tok2[OMNI_TOKEN_LEN + 1];
    unsigned        i;
    omni_token_t    t, v;
    omni_keyring_t  a, ba, b, none;

    keyring(&a, KEY_A, NULL);
    keyring(&ba, KEY_B, KEY_A);
    keyring(&b, KEY_B, NULL);
    keyring(&none, NULL, NULL);

    memset(&t, 0, sizeof(omni_token_t));
    t.kind = OMNI_KIND_TOKEN;
    for (i = 0; i < OMNI_ID_LEN; i++) {
        t.id[i] = (unsigned char) (0xa0 + i);
    }
    t.issued = 1700000000;
    t.expires = 1700003600;

    is_int(omni_token_sign(&none, &t, tok), OMNI_ERROR,
           "sign with an empty keyring fails");

    rc = omni_token_sign(&a, &t, tok);
    ok(rc == OMNI_OK && strlen(tok) == OMNI_TOKEN_LEN,
       "sign gives %d characters", OMNI_TOKEN_LEN);

    omni_token_sign(&a, &t, tok2);
    is_str(tok2, tok, "signing is deterministic");

    memset(&v, 0, sizeof(omni_token_t));
    rc = verify_n(&a, OMNI_KIND_TOKEN, tok, strlen(tok), 1700000001, &v);
    is_int(rc, OMNI_OK, "verify the signed token");
    ok(v.kind == OMNI_KIND_TOKEN && memcmp(v.id, t.id, OMNI_ID_LEN) == 0
       && v.issued == t.issued && v.expires == t.expires
       && v.key_index == 0,
       "verify returns kind, id, issued, expires and key 0");

    /* rotation: a new key in front, the old one still verifies */
    rc = verify_n(&ba, OMNI_KIND_TOKEN, tok, strlen(tok), 1700000001, &v);
    ok(rc == OMNI_OK && v.key_index == 1,
       "keyring [B, A] verifies an A token with key_index 1");

    rc = verify_n(&b, OMNI_KIND_TOKEN, tok, strlen(tok), 1700000001, &v);
    is_int(rc, OMNI_TOKEN_BAD_MAC, "keyring [B] rejects an A token");

    omni_token_sign(&ba, &t, tok2);
    rc = verify_n(&b, OMNI_KIND_TOKEN, tok2, strlen(tok2), 1700000001, &v);
    ok(rc == OMNI_OK && v.key_index == 0,
       "keyring [B, A] signs with B, its first key");

    /* expiry */
    is_int(verify_n(&a, OMNI_KIND_TOKEN, tok, OMNI_TOKEN_LEN, 1700003599, &v),
           OMNI_OK, "valid one second before expiry");
    is_int(verify_n(&a, OMNI_KIND_TOKEN, tok, OMNI_TOKEN_LEN, 1700003600, &v),
           OMNI_TOKEN_EXPIRED, "expired at the expiry second");
    is_int(verify_n(&a, OMNI_KIND_TOKEN, tok, OMNI_TOKEN_LEN, 0xffffffff, &v),
           OMNI_TOKEN_EXPIRED, "expired long after");

    t.expires = 0;
    omni_token_sign(&a, &t, tok2);
    is_int(verify_n(&a, OMNI_KIND_TOKEN, tok2, OMNI_TOKEN_LEN, 0xfffffffe,
                    &v),
           OMNI_OK, "expires 0 never expires");
    t.expires = 1700003600;

    /* kind confusion: the kind is inside the MAC */
    t.kind = OMNI_KIND_COOKIE;
    omni_token_sign(&a, &t, tok2);
    is_int(verify_n(&a, OMNI_KIND_TOKEN, tok2, OMNI_TOKEN_LEN, 1700000001,
                    &v),
           OMNI_TOKEN_BAD_KIND, "a cookie is not accepted as a token");
    is_int(verify_n(&a, OMNI_KIND_COOKIE, tok, OMNI_TOKEN_LEN, 1700000001,
                    &v),
           OMNI_TOKEN_BAD_KIND, "a token is not accepted as a cookie");
    is_int(verify_n(&a, OMNI_KIND_COOKIE, tok2, OMNI_TOKEN_LEN, 1700000001,
                    &v),
           OMNI_OK, "a cookie is accepted as a cookie");
    t.kind = OMNI_KIND_TOKEN;

    omni_keyring_free(&a);
    omni_keyring_free(&ba);
    omni_keyring_free(&b);
    omni_keyring_free(&none);
}


/* The wire format, recomputed here with OpenSSL directly. */
static void
test_wire_format(void)
{
    char            tok[OMNI_TOKEN_LEN + 1], want[OMNI_TOKEN_LEN + 1];
    unsigned        i, mdlen;
    omni_token_t    t, v;
    omni_keyring_t  a;
    unsigned char   raw[OMNI_TOKEN_RAW_LEN], msg[8 + 26], md[64];

    keyring(&a, KEY_A, NULL);

    memset(&t, 0, sizeof(omni_token_t));
    t.kind = OMNI_KIND_COOKIE;
    for (i = 0; i < OMNI_ID_LEN; i++) {
        t.id[i] = (unsigned char) i;
    }
    t.issued = 0x01020304;
    t.expires = 0x05060708;

    raw[0] = 1;
    raw[1] = 'c';
    memcpy(raw + 2, t.id, OMNI_ID_LEN);
    memcpy(raw + 18, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    memcpy(msg, "omni/v1/", 8);
    memcpy(msg + 8, raw, 26);
    HMAC(EVP_sha256(), KEY_A, (int) strlen(KEY_A), msg, sizeof(msg), md,
         &mdlen);
    memcpy(raw + 26, md, 16);
    omni_b64url_encode(raw, sizeof(raw), want, sizeof(want));

    omni_token_sign(&a, &t, tok);
    is_str(tok, want, "wire format: base64url(1, kind, id, issued, expires, "
           "HMAC-SHA256(\"omni/v1/\" || body)[0..16))");

    /* an unknown version is refused, whatever the MAC */
    raw[0] = 2;
    omni_b64url_encode(raw, sizeof(raw), want, sizeof(want));
    is_int(verify_n(&a, OMNI_KIND_COOKIE, want, OMNI_TOKEN_LEN, 0, &v),
           OMNI_TOKEN_BAD_VERSION, "version 2 is refused");

    omni_keyring_free(&a);
}


/*
 * The MAC with the key's pads hashed at omni_keyring_add() equals
 * OpenSSL's HMAC() for every key length a secret may have: shorter than
 * a SHA-256 block, exactly one, longer (hashed first: RFC 2104), the
 * longest; and over many bodies.
 */
static void
test_hmac_pads(void)
{
    char            tok[OMNI_TOKEN_LEN + 1], want[OMNI_TOKEN_LEN + 1];
    char            key[OMNI_SECRET_MAX + 1], err[256];
    size_t          lens[] = { 44, 48, 63, 64, 65, 100, 128, 200,
                               OMNI_SECRET_MAX };
    unsigned        i, j, k, mdlen, bad;
    omni_token_t    t, v;
    omni_keyring_t  kr;
    unsigned char   raw[OMNI_TOKEN_RAW_LEN], msg[8 + 26], md[64];
    const char     *chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRST"
                            "UVWXYZ0123456789-_";

    srand(42);

    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (j = 0; j < lens[i]; j++) {
            key[j] = chars[rand() % 64];
        }
        key[lens[i]] = '\0';

        memset(&kr, 0, sizeof(omni_keyring_t));
        if (omni_keyring_add(&kr, key, lens[i], err, sizeof(err))
            != OMNI_OK)
        {
            ok(0, "keyring_add of a %zu-byte key: %s", lens[i], err);
            continue;
        }

        bad = 0;

        for (k = 0; k < 50; k++) {
            memset(&t, 0, sizeof(omni_token_t));
            t.kind = (k & 1) ? OMNI_KIND_TOKEN : OMNI_KIND_COOKIE;
            for (j = 0; j < OMNI_ID_LEN; j++) {
                t.id[j] = (unsigned char) rand();
            }
            t.issued = (uint32_t) rand();
            t.expires = k % 3 ? 0 : 0xfffffff0u;

            raw[0] = 1;
            raw[1] = (unsigned char) t.kind;
            memcpy(raw + 2, t.id, OMNI_ID_LEN);
            raw[18] = (unsigned char) (t.issued >> 24);
            raw[19] = (unsigned char) (t.issued >> 16);
            raw[20] = (unsigned char) (t.issued >> 8);
            raw[21] = (unsigned char) t.issued;
            raw[22] = (unsigned char) (t.expires >> 24);
            raw[23] = (unsigned char) (t.expires >> 16);
            raw[24] = (unsigned char) (t.expires >> 8);
            raw[25] = (unsigned char) t.expires;
            memcpy(msg, "omni/v1/", 8);
            memcpy(msg + 8, raw, 26);
            HMAC(EVP_sha256(), key, (int) lens[i], msg, sizeof(msg), md,
                 &mdlen);
            memcpy(raw + 26, md, 16);
            omni_b64url_encode(raw, sizeof(raw), want, sizeof(want));

            if (omni_token_sign(&kr, &t, tok) != OMNI_OK
                || strcmp(tok, want) != 0
                || verify_n(&kr, t.kind, want, OMNI_TOKEN_LEN, 1, &v)
                   != OMNI_OK
                || memcmp(v.id, t.id, OMNI_ID_LEN) != 0)
            {
                bad++;
            }

            /* one flipped MAC bit: refused */
            raw[26 + k % 16] ^= (unsigned char) (1 << (k % 8));
            omni_b64url_encode(raw, sizeof(raw), want, sizeof(want));
            if (verify_n(&kr, t.kind, want, OMNI_TOKEN_LEN, 1, &v)
                != OMNI_TOKEN_BAD_MAC)
            {
                bad++;
            }
        }

        is_int(bad, 0, "HMAC pads: a %zu-byte key signs and verifies as "
               "HMAC() does, 50 tokens", lens[i]);

        omni_keyring_free(&kr);
    }
}


static void
test_tampering(void)
{
    int             rc;
    char            tok[OMNI_TOKEN_LEN + 1], bad[OMNI_TOKEN_LEN + 2];
    unsigned        i, c, bit, accepted, tried;
    omni_token_t    t, v;
    omni_keyring_t  a;
    unsigned char   raw[OMNI_TOKEN_RAW_LEN], mod[OMNI_TOKEN_RAW_LEN];

    static const char  alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    keyring(&a, KEY_A, NULL);

    memset(&t, 0, sizeof(omni_token_t));
    t.kind = OMNI_KIND_TOKEN;
    memset(t.id, 0x5a, OMNI_ID_LEN);
    t.issued = 1700000000;
    t.expires = 0;
    omni_token_sign(&a, &t, tok);

    /* every character replaced by every other base64url character */
    accepted = 0;
    tried = 0;

    for (i = 0; i < OMNI_TOKEN_LEN; i++) {
        for (c = 0; c < 64; c++) {
            if (alphabet[c] == tok[i]) {
                continue;
            }

            memcpy(bad, tok, OMNI_TOKEN_LEN + 1);
            bad[i] = alphabet[c];
            tried++;

            if (verify_n(&a, OMNI_KIND_TOKEN, bad, OMNI_TOKEN_LEN,
                         1700000001, &v)
                == OMNI_OK)
            {
                accepted++;
            }
        }
    }

    ok(accepted == 0 && tried == OMNI_TOKEN_LEN * 63,
       "none of %u single-character changes verifies", tried);

    /* every bit of every decoded byte flipped */
    omni_b64url_decode(tok, OMNI_TOKEN_LEN, raw, sizeof(raw));
    accepted = 0;

    for (i = 0; i < OMNI_TOKEN_RAW_LEN; i++) {
        for (bit = 0; bit < 8; bit++) {
            memcpy(mod, raw, sizeof(raw));
            mod[i] ^= (unsigned char) (1u << bit);
            omni_b64url_encode(mod, sizeof(mod), bad, sizeof(bad));

            if (verify_n(&a, OMNI_KIND_TOKEN, bad, OMNI_TOKEN_LEN,
                         1700000001, &v)
                == OMNI_OK)
            {
                accepted++;
            }
        }
    }

    is_int(accepted, 0, "none of %d single-bit flips verifies",
           OMNI_TOKEN_RAW_LEN * 8);

    /* characters outside the alphabet, in every position */
    accepted = 0;

    for (i = 0; i < OMNI_TOKEN_LEN; i++) {
        memcpy(bad, tok, OMNI_TOKEN_LEN + 1);
        bad[i] = (i & 1) ? '=' : '\xff';

        rc = verify_n(&a, OMNI_KIND_TOKEN, bad, OMNI_TOKEN_LEN, 1700000001,
                      &v);
        if (rc != OMNI_TOKEN_BAD_ENCODING) {
            accepted++;
        }
    }

    is_int(accepted, 0, "a foreign character anywhere is a bad encoding");

    /* truncation: every prefix, and one character too many */
    accepted = 0;

    for (i = 0; i < OMNI_TOKEN_LEN; i++) {
        if (verify_n(&a, OMNI_KIND_TOKEN, tok, i, 1700000001, &v)
            != OMNI_TOKEN_BAD_LENGTH)
        {
            accepted++;
        }
    }

    is_int(accepted, 0, "every prefix (0..%d characters) is a bad length",
           OMNI_TOKEN_LEN - 1);

    memcpy(bad, tok, OMNI_TOKEN_LEN);
    bad[OMNI_TOKEN_LEN] = 'A';
    is_int(verify_n(&a, OMNI_KIND_TOKEN, bad, OMNI_TOKEN_LEN + 1,
                    1700000001, &v),
           OMNI_TOKEN_BAD_LENGTH, "one character too many is a bad length");

    is_int(verify_n(&a, OMNI_KIND_TOKEN, tok, OMNI_TOKEN_LEN, 1700000001,
                    &v),
           OMNI_OK, "the untouched token still verifies");

    omni_keyring_free(&a);
}


static void
test_strerror(void)
{
    int  rc, named;

    named = 0;

    for (rc = OMNI_TOKEN_EXPIRED; rc <= OMNI_TOKEN_BAD_LENGTH; rc++) {
        if (strcmp(omni_token_strerror(rc), "internal error") != 0) {
            named++;
        }
    }

    is_int(named, 6, "every refusal reason has a name");
    is_str(omni_token_strerror(OMNI_TOKEN_BAD_MAC), "bad signature",
           "strerror(BAD_MAC)");
}


static void
test_sha256(void)
{
    char    h1[65], h2[65];
    char   *big;
    size_t  n;

    omni_sha256_hex("abc", 3, 0, h1);
    is_str(h1, "ba7816bf8f01cfea414140de5dae2223"
               "b00361a396177a9cb410ff61f20015ad", "sha256(\"abc\")");

    omni_sha256_hex("", 0, 0, h1);
    is_str(h1, "e3b0c44298fc1c149afbf4c8996fb924"
               "27ae41e4649b934ca495991b7852b855", "sha256(\"\")");

    omni_sha256_hex("ABC", 3, 1, h1);
    is_str(h1, "ba7816bf8f01cfea414140de5dae2223"
               "b00361a396177a9cb410ff61f20015ad",
           "sha256 lowercased: \"ABC\" hashes as \"abc\"");

    omni_sha256_hex("ABC", 3, 0, h2);
    ok(strcmp(h1, h2) != 0, "without lowercasing \"ABC\" differs");

    omni_sha256_hex("Ana@Example.COM", 15, 1, h1);
    omni_sha256_hex("ana@example.com", 15, 0, h2);
    is_str(h1, h2, "an email address hashes the same in any case");

    /* a million 'a' (FIPS 180-2 vector), through the lowercasing chunks */
    n = 1000000;
    big = malloc(n);
    memset(big, 'A', n);
    omni_sha256_hex(big, n, 1, h1);
    is_str(h1, "cdc76e5c9914fb9281a1c7e284d73e67"
               "f1809a48a497200e046d39ccc7112cd0",
           "sha256 of a million 'A' lowercased");
    free(big);
}


/* The decoder before it took four characters a step. */
static int
ref_b64url_decode(const char *in, size_t len, unsigned char *out,
    size_t outlen)
{
    int       d;
    size_t    i, o;
    uint32_t  v;
    unsigned  bits;
    unsigned char  c;

    if (len % 4 == 1
        || (len / 4) * 3 + (len % 4 ? len % 4 - 1 : 0) > outlen)
    {
        return -1;
    }

    v = 0;
    bits = 0;
    o = 0;

    for (i = 0; i < len; i++) {
        c = (unsigned char) in[i];
        d = c >= 'A' && c <= 'Z' ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '-' ? 62 : c == '_' ? 63 : -1;

        if (d < 0) {
            return -1;
        }

        v = (v << 6) | (uint32_t) d;
        bits += 6;

        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char) (v >> bits);
            v &= (1u << bits) - 1;
        }
    }

    return v != 0 ? -1 : (int) o;
}


static void
test_base64url_diff(void)
{
    static const char  set[] = "ABYZabyz0189-_+/=.\x80 ";
    char               in[80];
    unsigned char      a[64], b[64];
    unsigned           i, j, bad;
    size_t             n;
    int                na, nb;

    srand(56);
    bad = 0;

    for (i = 0; i < 50000; i++) {
        n = (size_t) rand() % 70;

        for (j = 0; j < n; j++) {
            in[j] = rand() % 30 ? set[rand() % 14] : set[rand() % 19];
        }

        na = omni_b64url_decode(in, n, a, sizeof(a));
        nb = ref_b64url_decode(in, n, b, sizeof(b));
        bad += na != nb || (na > 0 && memcmp(a, b, (size_t) na) != 0);
    }

    is_int(bad, 0, "base64url: four characters a step = one by one, "
           "50,000 random strings");
}


int
main(void)
{
    test_base64url();
    test_base64url_diff();
    test_keyring();
    test_sign_verify();
    test_wire_format();
    test_hmac_pads();
    test_tampering();
    test_strerror();
    test_sha256();

    return done_testing();
}
