/*
 * The marker scan alone (issue 10, part 2): how long omni_scan_next()
 * takes over a page held in one buffer, as the module's body filter sees
 * a page it injects into.  Prints microseconds per page (median of 7
 * rounds) and whether the 1 us target for the 10 KB bench page is met.
 *
 *   build/scan-bench [PAGE] [ROUNDS]
 *
 * PAGE defaults to build/bench/html/b/page.html (bench/gen-page.pl).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "omni_scan.h"


static double
scan_bench_round(const unsigned char *page, size_t len, unsigned iters,
    unsigned *events)
{
    unsigned              i;
    omni_scan_t           s;
    struct timespec       a, b;
    omni_scan_event_t     ev;
    const unsigned char  *p;

    *events = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);

    for (i = 0; i < iters; i++) {
        omni_scan_init(&s);
        p = page;

        while (p < page + len
               && omni_scan_next(&s, &p, page + len, &ev)
                  != OMNI_SCAN_NEED_MORE)
        {
            (*events)++;
        }
    }

    clock_gettime(CLOCK_MONOTONIC, &b);

    return ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec))
           / 1e3 / iters;
}


static int
scan_bench_cmp(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


int
main(int argc, char **argv)
{
    FILE           *f;
    size_t          len;
    double          us[7];
    unsigned        r, rounds, events;
    const char     *path;
    unsigned char  *page;

    path = argc > 1 ? argv[1] : "build/bench/html/b/page.html";
    rounds = argc > 2 ? (unsigned) atoi(argv[2]) : 20000;

    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "scan-bench: %s: cannot open (run bench/run.sh "
                "once, or give a page)\n", path);
        return 2;
    }

    page = malloc(4 << 20);
    len = fread(page, 1, 4 << 20, f);
    fclose(f);

    for (r = 0; r < 7; r++) {
        us[r] = scan_bench_round(page, len, rounds, &events);
    }

    qsort(us, 7, sizeof(double), scan_bench_cmp);

    printf("marker scan: %zu bytes, %.3f us per page (median of 7 rounds "
           "of %u), %u events\n", len, us[3], rounds, events / rounds);
    printf("P-scan target <= 1 us for the 10 KB page: %s\n",
           us[3] <= 1.0 ? "met" : "not met");

    free(page);

    return 0;
}
