/*
 * omni_nkey: the public key of a NATS user seed, against the pair of the
 * NATS documentation ("nk -gen user -pubout"), inside a creds-style
 * armour, and refusals (bad checksum, bad base32, no seed, a missing
 * file).
 */

#include <stdio.h>
#include <string.h>

#include "omni_tap.h"
#include "omni_nkey.h"

#define SEED "SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY"
#define PUB  "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"

int
main(void)
{
    char        pub[OMNI_NKEY_PUBLIC_LEN + 1], err[256];
    char        bad[sizeof(SEED)];
    const char *armoured =
        "-----BEGIN USER NKEY SEED-----\n" SEED "\n"
        "------END USER NKEY SEED------\n";

    is_int(omni_nkey_public_from_seed(SEED "\n", strlen(SEED) + 1, pub,
                                      err, sizeof(err)), 0, "a seed line");
    is_str(pub, PUB, "its public key");

    memset(pub, 0, sizeof(pub));
    is_int(omni_nkey_public_from_seed(armoured, strlen(armoured), pub, err,
                                      sizeof(err)), 0, "an armoured seed");
    is_str(pub, PUB, "the same public key");

    memcpy(bad, SEED, sizeof(SEED));
    bad[20] = bad[20] == 'A' ? 'B' : 'A';
    ok(omni_nkey_public_from_seed(bad, strlen(bad), pub, err, sizeof(err))
       == -1 && strstr(err, "checksum") != NULL, "a changed letter: %s", err);

    memcpy(bad, SEED, sizeof(SEED));
    bad[30] = '1';
    ok(omni_nkey_public_from_seed(bad, strlen(bad), pub, err, sizeof(err))
       == -1 && strstr(err, "base32") != NULL, "not base32: %s", err);

    ok(omni_nkey_public_from_seed("hello\n", 6, pub, err, sizeof(err)) == -1
       && strstr(err, "no nkey seed") != NULL, "no seed: %s", err);

    ok(omni_nkey_public_from_seed(PUB, strlen(PUB), pub, err, sizeof(err))
       == -1, "a public key is not a seed: %s", err);

    ok(omni_nkey_public_from_file("/nonexistent/seed.nk", pub, err,
                                  sizeof(err)) == -1
       && strstr(err, "cannot open") != NULL, "a missing file: %s", err);

    return done_testing();
}
