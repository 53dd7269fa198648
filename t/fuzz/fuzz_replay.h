/*
 * The standalone main()'s loop shared by the fuzz targets (built without
 * -DOMNI_FUZZ_LIBFUZZER): every file named on the command line goes
 * through LLVMFuzzerTestOneInput() once, for corpus replay and crash
 * reproduction.  1 when a file cannot be read.
 */

#ifndef FUZZ_REPLAY_H
#define FUZZ_REPLAY_H

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static int
fuzz_replay(int argc, char **argv)
{
    int     i;
    long    n;
    FILE   *f;
    char   *buf;

    for (i = 1; i < argc; i++) {
        f = fopen(argv[i], "rb");
        if (f == NULL) {
            perror(argv[i]);
            return 1;
        }

        fseek(f, 0, SEEK_END);
        n = ftell(f);
        fseek(f, 0, SEEK_SET);

        buf = malloc(n > 0 ? (size_t) n : 1);
        if (buf == NULL || (n > 0 && fread(buf, 1, (size_t) n, f)
                                     != (size_t) n))
        {
            fclose(f);
            free(buf);
            return 1;
        }

        fclose(f);
        LLVMFuzzerTestOneInput((const unsigned char *) buf, (size_t) n);
        free(buf);
        printf("%s: ok\n", argv[i]);
    }

    return 0;
}

#endif /* FUZZ_REPLAY_H */
