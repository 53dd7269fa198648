/*
 * NATS nkeys: the public key of a user seed file.
 *
 * A NATS client authenticating with an nkey sends its public key and
 * signs the server's nonce with its seed; libnats's
 * natsOptions_SetNKeyFromSeed() needs both, while a seed file (what
 * "nk -gen user" or nsc writes) holds only the seed.  The public key is
 * derived here (Ed25519, OpenSSL's libcrypto), and the seed checked: its
 * base32, its CRC16 and its type (a user seed, "SU...").
 */

#ifndef OMNI_NKEY_H
#define OMNI_NKEY_H

#include <stddef.h>

#define OMNI_NKEY_SEED_LEN    58        /* "SU" + base32 of 36 bytes */
#define OMNI_NKEY_PUBLIC_LEN  56        /* "U" + ..., base32 of 35 bytes */

/*
 * Derives the public key ("U...", NUL-terminated) of the user seed in
 * text (the first word starting with "SU" of the right length; blank
 * lines and "-----" armour lines are skipped).  Returns 0, or -1 with a
 * message in err.
 */
int omni_nkey_public_from_seed(const char *text, size_t len,
    char pub[OMNI_NKEY_PUBLIC_LEN + 1], char *err, size_t errlen);

/* The same for a file; -1 also when it cannot be read. */
int omni_nkey_public_from_file(const char *path,
    char pub[OMNI_NKEY_PUBLIC_LEN + 1], char *err, size_t errlen);

#endif
