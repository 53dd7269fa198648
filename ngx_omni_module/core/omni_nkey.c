/*
 * NATS nkeys (see omni_nkey.h).  The encoding, from the nkeys
 * specification: base32 (RFC 4648 alphabet, no padding) of
 *
 *   seed:    [0x90 | (prefix >> 5)] [(prefix & 31) << 3] seed[32] crc16
 *   public:  [prefix] public[32] crc16
 *
 * where prefix is 20 << 3 for a user ('U'), and crc16 is CRC-16/XMODEM
 * of the bytes before it, little-endian.
 */

#include "omni_nkey.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>


#define OMNI_NKEY_PREFIX_SEED  (18 << 3)     /* 'S' */
#define OMNI_NKEY_PREFIX_USER  (20 << 3)     /* 'U' */

static const char  omni_b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";


static uint16_t
omni_nkey_crc16(const unsigned char *p, size_t n)
{
    uint16_t  crc = 0;
    int       i;

    while (n--) {
        crc ^= (uint16_t) (*p++) << 8;
        for (i = 0; i < 8; i++) {
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                 : (uint16_t) (crc << 1);
        }
    }

    return crc;
}


/* base32 without padding; returns the decoded length or -1 */
static int
omni_nkey_b32_decode(const char *s, size_t n, unsigned char *out,
    size_t outlen)
{
    uint32_t  acc = 0;
    int       bits = 0;
    size_t    i, o = 0;
    const char *c;

    for (i = 0; i < n; i++) {
        c = s[i] ? strchr(omni_b32, s[i]) : NULL;
        if (c == NULL) {
            return -1;
        }
        acc = (acc << 5) | (uint32_t) (c - omni_b32);
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            if (o == outlen) {
                return -1;
            }
            out[o++] = (unsigned char) (acc >> bits);
        }
    }

    return (int) o;
}


static size_t
omni_nkey_b32_encode(const unsigned char *p, size_t n, char *out)
{
    uint32_t  acc = 0;
    int       bits = 0;
    size_t    i, o = 0;

    for (i = 0; i < n; i++) {
        acc = (acc << 8) | p[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out[o++] = omni_b32[(acc >> bits) & 31];
        }
    }

    if (bits > 0) {
        out[o++] = omni_b32[(acc << (5 - bits)) & 31];
    }

    out[o] = '\0';
    return o;
}


int
omni_nkey_public_from_seed(const char *text, size_t len,
    char pub[OMNI_NKEY_PUBLIC_LEN + 1], char *err, size_t errlen)
{
    const char     *p, *end, *word;
    size_t          wlen;
    unsigned char   raw[40], pk[35];
    size_t          pklen;
    int             n, rc;
    uint16_t        crc;
    EVP_PKEY       *key;

    p = text;
    end = text + len;
    word = NULL;
    wlen = 0;

    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'
                           || *p == '\n'))
        {
            p++;
        }
        word = p;
        while (p < end && *p != ' ' && *p != '\t' && *p != '\r'
               && *p != '\n')
        {
            p++;
        }
        wlen = (size_t) (p - word);
        if (wlen == OMNI_NKEY_SEED_LEN && word[0] == 'S') {
            break;
        }
        word = NULL;
    }

    if (word == NULL) {
        snprintf(err, errlen, "no nkey seed in it (a line of %d characters "
                 "starting with \"SU\", as \"nk -gen user\" writes)",
                 OMNI_NKEY_SEED_LEN);
        return -1;
    }

    n = omni_nkey_b32_decode(word, wlen, raw, sizeof(raw));
    if (n != 36) {
        snprintf(err, errlen, "the nkey seed is not valid base32");
        return -1;
    }

    crc = (uint16_t) (raw[34] | (raw[35] << 8));
    if (omni_nkey_crc16(raw, 34) != crc) {
        snprintf(err, errlen, "the nkey seed's checksum is wrong");
        return -1;
    }

    if ((raw[0] & 0xf8) != OMNI_NKEY_PREFIX_SEED
        || (((raw[0] & 7) << 5) | (raw[1] >> 3)) != OMNI_NKEY_PREFIX_USER)
    {
        snprintf(err, errlen, "the nkey seed is not a user seed (\"SU...\"); "
                 "a client connects with a user nkey");
        return -1;
    }

    key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw + 2, 32);
    if (key == NULL) {
        snprintf(err, errlen, "the nkey seed is not an Ed25519 key");
        return -1;
    }

    pk[0] = OMNI_NKEY_PREFIX_USER;
    pklen = 32;
    rc = EVP_PKEY_get_raw_public_key(key, pk + 1, &pklen);
    EVP_PKEY_free(key);
    memset(raw, 0, sizeof(raw));

    if (rc != 1 || pklen != 32) {
        snprintf(err, errlen, "cannot derive the nkey's public key");
        return -1;
    }

    crc = omni_nkey_crc16(pk, 33);
    pk[33] = (unsigned char) (crc & 0xff);
    pk[34] = (unsigned char) (crc >> 8);

    omni_nkey_b32_encode(pk, 35, pub);
    return 0;
}


int
omni_nkey_public_from_file(const char *path,
    char pub[OMNI_NKEY_PUBLIC_LEN + 1], char *err, size_t errlen)
{
    char         buf[4096];
    ssize_t      n;
    size_t       len;
    int          fd, rc;
    struct stat  st;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errlen, "cannot open: %s", strerror(errno));
        return -1;
    }

    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(err, errlen, "not a regular file");
        return -1;
    }

    len = 0;
    while (len < sizeof(buf)
           && (n = read(fd, buf + len, sizeof(buf) - len)) > 0)
    {
        len += (size_t) n;
    }
    close(fd);

    rc = omni_nkey_public_from_seed(buf, len, pub, err, errlen);
    memset(buf, 0, sizeof(buf));
    return rc;
}
