/*
 * Fuzz target for consent cookies (GUIDE R7, "consent headers"):
 * omni_consent_cookie(), what the module reads from a CMP's cookie on
 * every request that carries one (omni_consent_cookie, docs/privacy.md).
 *
 * The input is the cookie's value.  It is read with the mappings of
 * privacy.md (Cookiebot, OneTrust, a site's own) and with keys taken
 * from the input itself (its first bytes, up to a ':' or '='), so that
 * keys and values meet.  Each reading must state only mapped purposes,
 * grant only what it states, and set OMNI_CONSENT_SET exactly when it
 * states something; the same bytes must give the same answer twice
 * (nothing depends on the scratch buffer's old contents).  ASan checks
 * that nothing reads past the value or writes past the scratch buffer,
 * which is exactly as long as the value.
 *
 * libFuzzer (clang), with CORE standing for every .c of the core:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -DOMNI_FUZZ_LIBFUZZER
 *       -Ingx_omni_module/core t/fuzz/fuzz_consent.c CORE
 *       -ljansson -llmdb -lcrypto -lmaxminddb -lpcre2-8 -lm -lpthread
 *       -o build/fuzz/fuzz_consent
 *   build/fuzz/fuzz_consent -max_len=4096 -dict=t/fuzz/consent.dict
 *       build/fuzz/consent t/fuzz/corpus/consent
 *
 * Standalone (any compiler, e.g. gcc -fsanitize=address): without
 * OMNI_FUZZ_LIBFUZZER it has a main() that runs the files given as
 * arguments, for corpus replay and crash reproduction.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omni_core.h"


#define fz_check(cond)                                                      \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "fuzz_consent: %s:%d: invariant failed: %s\n",  \
                    __FILE__, __LINE__, #cond);                             \
            abort();                                                        \
        }                                                                   \
    } while (0)


static void
fz_read(const char *value, size_t len, const char *const *key,
    const size_t *klen)
{
    char      *buf, *buf2;
    unsigned   k;
    uint32_t   c, c2, mapped;

    /* exactly len bytes of scratch, so ASan sees any overrun */
    buf = malloc(len ? len : 1);
    buf2 = malloc(len ? len : 1);
    if (buf == NULL || buf2 == NULL) {
        abort();
    }

    memset(buf2, 'x', len ? len : 1);

    c = omni_consent_cookie(value, len, buf, key, klen);
    c2 = omni_consent_cookie(value, len, buf2, key, klen);

    fz_check(c == c2);

    mapped = 0;

    for (k = 0; k < OMNI_CONSENT_NKEYS; k++) {
        if (klen[k]) {
            mapped |= 1u << k;
        }
    }

    if (c == 0) {
        goto done;
    }

    fz_check(c & OMNI_CONSENT_SET);
    fz_check((c & ~(OMNI_CONSENT_SET | OMNI_CONSENT_STATED_MASK
                    | OMNI_CONSENT_PURPOSES)) == 0);

    /* something stated, only what is mapped, granted only if stated */
    fz_check((c & OMNI_CONSENT_STATED_MASK) != 0);
    fz_check(((c & OMNI_CONSENT_STATED_MASK) >> 16 & ~mapped) == 0);
    fz_check((c & OMNI_CONSENT_PURPOSES
              & ~((c & OMNI_CONSENT_STATED_MASK) >> 16)) == 0);

done:

    free(buf);
    free(buf2);
}


int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    size_t        n, klen[OMNI_CONSENT_NKEYS];
    const char   *v;

    static const char  *cookiebot[] = { "statistics", "preferences",
                                        "marketing", NULL, NULL };
    static const char  *onetrust[] = { "C0002", "C0003", "C0004", "C0005",
                                       NULL };
    static const char  *own[] = { "analytics", "personalization", "ads",
                                  "email", "sms" };
    static const char *const  *maps[] = { cookiebot, onetrust, own };
    const char                *self[OMNI_CONSENT_NKEYS];
    unsigned                   m, k;

    v = (const char *) data;

    for (m = 0; m < sizeof(maps) / sizeof(maps[0]); m++) {
        for (k = 0; k < OMNI_CONSENT_NKEYS; k++) {
            klen[k] = maps[m][k] ? strlen(maps[m][k]) : 0;
        }

        fz_read(v, size, maps[m], klen);
    }

    /* the input's own first word as the key of every purpose but sms */
    for (n = 0; n < size && n < 64 && v[n] != ':' && v[n] != '='; n++) {
        /* void */
    }

    for (k = 0; k < OMNI_CONSENT_NKEYS; k++) {
        self[k] = v;
        klen[k] = (k == OMNI_CONSENT_NKEYS - 1) ? 0 : n;
    }

    fz_read(v, size, self, klen);

    return 0;
}


#if !defined(OMNI_FUZZ_LIBFUZZER)

#include "fuzz_replay.h"


int
main(int argc, char **argv)
{
    return fuzz_replay(argc, argv);
}

#endif
