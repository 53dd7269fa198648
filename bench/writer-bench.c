/*
 * The writer's committed touchpoints per second (GUIDE P7: "the writer
 * commits at least 200k records/s"), outside nginx: realistic touches
 * replayed through omni_batch_apply() (core/omni_batch.h), the very
 * call the module's writer makes for each batch, on a store opened like
 * the module's workers (attach, MDB_NOMETASYNC: one fdatasync per
 * commit): touches grouped by profile, their touchpoints, retention
 * (tp_max, budget 2n + 64), commit.
 *
 * The touches are built before the clock starts (in nginx the event loop
 * queues them); everything the pool thread does is timed, commit and
 * fdatasync included.
 *
 *   writer-bench [options] STORE_DIR
 *   writer-bench --fsync DIR [--count N]
 *
 * STORE_DIR: an existing store (omnictl import of bench/gen-profiles.pl
 * --aliases) whose profiles have ids sprintf("%032x", i), i < --profiles,
 * each with its cookie alias (returning visitors: the steady state).
 *
 *   --profiles N     profiles in the store; touches pick one uniformly
 *   --batches LIST   batch sizes, comma-separated (default 100,1000,10000)
 *   --records N      touches per run (at least 5 batches; default 10000)
 *   --runs N         interleaved rounds over the batch sizes (default 5),
 *                    after a warm-up round (--no-warmup: none)
 *   --tp-max N       the retention limit (default 1000000, the module's):
 *                    the log is first filled to it, so that every batch
 *                    also prunes as many touchpoints as it appends, as a
 *                    store that has been running for a while does
 *   --no-prefill     measure with the log below its limit (no pruning)
 *   --label TEXT     first column of the output rows (default: N)
 *   --fold N         log first, as the module's writer does: batches
 *                    append touchpoints only, and every N touches (the
 *                    fold= interval's worth at some rate) one batch also
 *                    folds the counters of those N touches into the
 *                    profiles; 0 (default): every batch folds its own
 *   --no-fold        log first and never fold: the log's own cost
 *   --active K       touches pick among K visitors spread over the store
 *                    (the nginx bench's 10,000 cookies), not all of them
 *
 * Output: a "WB ..." line per run (machine-readable) on stderr, and one
 * markdown table row per batch size on stdout: median records/s and the
 * range, wall and CPU µs per record, median commit (write-back and
 * fdatasync) time per batch and its share of the batch.
 *
 * --fsync DIR: the latency of one fdatasync() after a 4 KiB pwrite() over
 * a block of an existing file in DIR (what an LMDB commit syncs), and
 * after a 4 KiB append (the file grows: the metadata too): median, p90,
 * p99, max in µs, on stdout as "FSYNC mode=... ".
 */

#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "omni_feed.h"
#include "omni_batch.h"
#include "omni_store.h"
#include "omni_update.h"


static uint64_t  rnd_state = 0x9e3779b97f4a7c15ULL;


static uint32_t
rnd(void)
{
    rnd_state ^= rnd_state >> 12;
    rnd_state ^= rnd_state << 25;
    rnd_state ^= rnd_state >> 27;

    return (uint32_t) ((rnd_state * 0x2545f4914f6cdd1dULL) >> 32);
}


static double
now_wall(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


static double
now_cpu(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


static int
cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


static double
pct(double *v, size_t n, double p)
{
    size_t  i;

    qsort(v, n, sizeof(double), cmp_double);
    i = (size_t) (p / 100.0 * (double) (n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}


static double
median(const double *v, size_t n)
{
    double  tmp[64];

    memcpy(tmp, v, n * sizeof(double));
    qsort(tmp, n, sizeof(double), cmp_double);

    return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}


/* ---- fsync latency ---- */

static int
fsync_bench(const char *dir, int count)
{
    int       fd, i, mode;
    char      path[4096], buf[4096];
    double   *lat, t0;
    off_t     off;

    snprintf(path, sizeof(path), "%s/fsync-bench.tmp", dir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        fprintf(stderr, "writer-bench: %s: %s\n", path, strerror(errno));
        return 1;
    }

    lat = calloc((size_t) count, sizeof(double));
    memset(buf, 'x', sizeof(buf));

    /* An allocated file of 1 MiB, synced, to overwrite in place. */
    for (i = 0; i < 256; i++) {
        if (write(fd, buf, sizeof(buf)) != (ssize_t) sizeof(buf)) {
            return 1;
        }
    }
    fsync(fd);

    for (mode = 0; mode < 2; mode++) {
        off = 1 << 20;

        for (i = 0; i < count; i++) {
            buf[0] = (char) i;
            t0 = now_wall();

            if (mode == 0) {
                /* overwrite: a block of the existing file */
                if (pwrite(fd, buf, sizeof(buf), (off_t) (rnd() % 256) * 4096)
                    != (ssize_t) sizeof(buf))
                {
                    return 1;
                }

            } else {
                /* append: the file grows */
                if (pwrite(fd, buf, sizeof(buf), off)
                    != (ssize_t) sizeof(buf))
                {
                    return 1;
                }
                off += sizeof(buf);
            }

            if (fdatasync(fd) != 0) {
                fprintf(stderr, "writer-bench: fdatasync: %s\n",
                        strerror(errno));
                return 1;
            }

            lat[i] = (now_wall() - t0) * 1e6;
        }

        printf("FSYNC mode=%s count=%d p50_us=%.0f p90_us=%.0f p99_us=%.0f "
               "max_us=%.0f\n", mode == 0 ? "overwrite" : "append", count,
               pct(lat, (size_t) count, 50), pct(lat, (size_t) count, 90),
               pct(lat, (size_t) count, 99), pct(lat, (size_t) count, 100));
    }

    close(fd);
    unlink(path);
    free(lat);

    return 0;
}


/* ---- touches ---- */

/*
 * What a page view of the bench's shop queues (ngx_http_omni_writer_touch):
 * the shown campaigns and rules (arm B shows a hero banner and the
 * retargeting pixels, some an aside banner), the path, a referrer for
 * some, utm_* for a few, the country of the geo lookup for most.
 */
static const char  *paths[] = {
    "/", "/b/page.html", "/product/summit-pro.html",
    "/product/trail-42.html", "/category/jackets", "/product/jkt-7.html",
    "/cart", "/search", "/category/shoes/running", "/blog/layering-guide"
};

static const char  *referrers[] = {
    "https://www.google.com/", "https://shop.example.com/category/jackets",
    "https://www.facebook.com/", "https://shop.example.com/"
};

static const char  *shown[][2] = {
    /* campaigns, rules */
    { "escalation-premium,summit-retarget",
      "escalation-premium,summit-retarget,newsletter-pixel" },
    { "review-request,summit-retarget",
      "review-request,summit-retarget" },
    { "cart-abandon,summit-retarget,showroom",
      "cart-abandon,summit-retarget,showroom-invite,geo-store-lis" },
    { "escalation-premium,summit-retarget,geo-pt",
      "escalation-premium,summit-retarget,geo-country-pt,newsletter-pixel" },
};

static const char  *countries[] = { "PT", "ES", "FR", "DE", "GB", "US", "" };

#define N(a)  (sizeof(a) / sizeof(a[0]))


static uint32_t  active;     /* --active: 0 all profiles */


static void
make_touches(omni_touch_t *ops, size_t n, uint32_t nprof, uint32_t now)
{
    size_t         i, k;
    uint32_t       v;
    omni_touch_t  *t;

    for (i = 0; i < n; i++) {
        t = &ops[i];
        memset(t, 0, sizeof(omni_touch_t));

        v = active && active < nprof ? (rnd() % active) * (nprof / active)
                                     : rnd() % nprof;

        /* sprintf("%032x", v): 12 zero bytes, then v big-endian */
        t->kind = OMNI_ALIAS_COOKIE;
        t->id[12] = (unsigned char) (v >> 24);
        t->id[13] = (unsigned char) (v >> 16);
        t->id[14] = (unsigned char) (v >> 8);
        t->id[15] = (unsigned char) v;

        /*
         * The profile the request's own lookup found (the visitor id is
         * the profile id in these stores): the module's page views pass
         * it with the touch, so the writer reads no alias for them.
         */
        t->pid_known = 1;
        memcpy(t->pid, t->id, OMNI_ID_LEN);

        t->channel = OMNI_CH_WEB;
        t->time = now;
        t->visit_timeout = OMNI_VISIT_TIMEOUT_DEFAULT;

        k = rnd() % N(shown);
        t->campaigns = shown[k][0];
        t->campaigns_len = strlen(shown[k][0]);
        t->rules = shown[k][1];
        t->rules_len = strlen(shown[k][1]);

        t->record = 1;
        t->path = paths[rnd() % N(paths)];
        t->path_len = strlen(t->path);

        if (rnd() % 2) {
            t->referrer = referrers[rnd() % N(referrers)];
            t->referrer_len = strlen(t->referrer);
        }

        if (rnd() % 10 == 0) {
            t->utm[0] = "newsletter";
            t->utm_len[0] = 10;
            t->utm[1] = "email";
            t->utm_len[1] = 5;
            t->utm[2] = "autumn-sale-2026";
            t->utm_len[2] = 16;
        }

        memcpy(t->country, countries[rnd() % N(countries)], 3);
    }
}


/* ---- the writer's batch: the core entry point the module calls ---- */

static size_t                  fold_every;    /* --fold */
static int                     no_fold;       /* --no-fold: log only */
static size_t                  fold_from;     /* in the run's ops */
static unsigned char         (*fold_pids)[OMNI_ID_LEN];


/*
 * ops + n - base .. : this batch; with --fold, touches from fold_from
 * on are folded when fold_every have been logged, or at the run's end.
 */
static int
writer_batch(omni_store_t *st, omni_touch_t *base, omni_touch_t *ops,
    size_t n, unsigned char (*pids)[OMNI_ID_LEN], uint64_t tp_max,
    double *commit_s, int last)
{
    int                rc;
    size_t             end;
    omni_batch_t       b;
    omni_batch_opts_t  opts;

    /* The module's defaults: tp_max 1000000, tp_max_age 7 days. */
    memset(&opts, 0, sizeof(opts));
    opts.tp_max = tp_max;
    opts.tp_max_age = 7 * 86400;

    memset(&b, 0, sizeof(b));
    b.touches = ops;
    b.ntouches = n;
    b.pids = pids;
    b.fold = ops;
    b.nfold = n;
    b.fold_pids = pids;

    if (fold_every) {
        end = (size_t) (ops - base) + n;
        b.nfold = 0;

        if (end - fold_from >= fold_every || (last && !no_fold)) {
            b.fold = base + fold_from;
            b.nfold = end - fold_from;
            b.fold_pids = fold_pids;
            fold_from = end;
        }
    }

    rc = omni_batch_apply(st, &opts, &b);
    *commit_s += b.commit_s;

    /*
     * The module's checkpoint every second (omni_store checkpoint=),
     * here in the writer's own thread: its sync is counted, which the
     * module's writer, whose checkpoints end in another thread, is
     * spared.
     */
    if (rc == OMNI_OK && omni_store_journaled(st)) {
        static double  next_ckpt;
        double         t = now_wall();

        if (t >= next_ckpt) {
            rc = omni_checkpoint_now(st);
            next_ckpt = t + 1.0;
            *commit_s += now_wall() - t;
        }
    }

    return rc;
}


/* Fills the touchpoint log up to tp_max with records of recent touches. */
static int
prefill(omni_store_t *st, uint64_t tp_max, uint32_t nprof)
{
    int                rc;
    char              *json;
    size_t             i, len, chunk;
    uint64_t           have;
    omni_wtxn_t       *w;
    omni_touch_t       t;
    omni_store_stat_t  s;
    unsigned char      pid[OMNI_ID_LEN];

    if (omni_store_stat(st, &s) != OMNI_OK) {
        return OMNI_ERROR;
    }

    have = s.touchpoints;

    while (have < tp_max) {
        chunk = tp_max - have < 100000 ? (size_t) (tp_max - have) : 100000;

        if (omni_store_write_begin(st, &w) != OMNI_OK) {
            return OMNI_ERROR;
        }

        for (i = 0; i < chunk; i++) {
            make_touches(&t, 1, nprof, (uint32_t) time(NULL));
            memcpy(pid, t.id, OMNI_ID_LEN);

            json = omni_feed_record(&t, pid, &len);
            if (json == NULL) {
                omni_wtxn_abort(w);
                return OMNI_ERROR;
            }

            rc = omni_wtxn_append_touchpoint(w, pid, t.time, json, len, NULL);
            free(json);

            if (rc != OMNI_OK) {
                omni_wtxn_abort(w);
                return rc;
            }
        }

        if (omni_wtxn_commit(w) != OMNI_OK) {
            return OMNI_ERROR;
        }

        have += chunk;
    }

    return omni_store_sync(st);
}


static void
usage(void)
{
    fprintf(stderr,
        "usage: writer-bench [--profiles N] [--batches 100,1000,10000] "
        "[--records N] [--runs N] [--no-warmup] [--tp-max N] [--no-prefill] "
        "[--label TEXT] STORE_DIR\n"
        "       writer-bench --fsync DIR [--count N]\n");
    exit(2);
}


#define MAX_BATCHES  8
#define MAX_RUNS     64


int
main(int argc, char **argv)
{
    int                i, rc, nb, runs, r, b, do_prefill, count, warmup;
    char               err[512], *p, label[64];
    size_t             records, n, k, len, nbatch, batches[MAX_BATCHES];
    size_t             nrec[MAX_BATCHES], maxrec;
    double             t0, c0, wall, cpu, commit;
    double             rps[MAX_BATCHES][MAX_RUNS];
    double             cpu_us[MAX_BATCHES][MAX_RUNS];
    double             commit_ms[MAX_BATCHES][MAX_RUNS];
    double             share[MAX_BATCHES][MAX_RUNS];
    double             lo, hi, med;
    uint32_t           nprof;
    uint64_t           tp_max;
    const char        *dir, *fsync_dir;
    omni_store_t      *st;
    omni_touch_t      *ops;
    omni_store_opts_t  opts;
    omni_store_stat_t  s;
    unsigned char    (*pids)[OMNI_ID_LEN];

    nprof = 1000;
    nb = 0;
    records = 10000;
    warmup = 1;
    runs = 5;
    tp_max = 1000000;
    do_prefill = 1;
    dir = NULL;
    fsync_dir = NULL;
    count = 500;
    label[0] = '\0';

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--profiles") == 0 && i + 1 < argc) {
            nprof = (uint32_t) strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--batches") == 0 && i + 1 < argc) {
            for (p = strtok(argv[++i], ","); p && nb < MAX_BATCHES;
                 p = strtok(NULL, ","))
            {
                batches[nb++] = strtoul(p, NULL, 10);
            }
        } else if (strcmp(argv[i], "--records") == 0 && i + 1 < argc) {
            records = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--tp-max") == 0 && i + 1 < argc) {
            tp_max = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--no-warmup") == 0) {
            warmup = 0;
        } else if (strcmp(argv[i], "--no-prefill") == 0) {
            do_prefill = 0;
        } else if (strcmp(argv[i], "--fold") == 0 && i + 1 < argc) {
            fold_every = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--no-fold") == 0) {
            no_fold = 1;
            fold_every = (size_t) -1;
        } else if (strcmp(argv[i], "--active") == 0 && i + 1 < argc) {
            active = (uint32_t) strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--label") == 0 && i + 1 < argc) {
            snprintf(label, sizeof(label), "%s", argv[++i]);
        } else if (strcmp(argv[i], "--fsync") == 0 && i + 1 < argc) {
            fsync_dir = argv[++i];
        } else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            count = atoi(argv[++i]);
        } else if (argv[i][0] != '-' && dir == NULL) {
            dir = argv[i];
        } else {
            usage();
        }
    }

    if (fsync_dir) {
        return fsync_bench(fsync_dir, count > 0 ? count : 500);
    }

    if (dir == NULL || nprof == 0 || runs < 1 || runs > MAX_RUNS
        || records == 0)
    {
        usage();
    }

    if (nb == 0) {
        batches[0] = 100;
        batches[1] = 1000;
        batches[2] = 10000;
        nb = 3;
    }

    if (label[0] == '\0') {
        snprintf(label, sizeof(label), "%u", nprof);
    }

    /*
     * As ngx_http_omni_store.c opens it in each worker: the journal
     * (commits not synced, a checkpoint a second; see writer_batch()).
     */
    memset(&opts, 0, sizeof(opts));
    opts.attach = 1;
    opts.journal = 1;

    if (omni_store_open(&st, dir, &opts, err, sizeof(err)) != OMNI_OK) {
        fprintf(stderr, "writer-bench: %s\n", err);
        return 1;
    }

    if (omni_store_stat(st, &s) != OMNI_OK || s.profiles < nprof) {
        fprintf(stderr, "writer-bench: %s holds %llu profiles, fewer than "
                "--profiles %u\n", dir, (unsigned long long) s.profiles,
                nprof);
        return 1;
    }

    if (do_prefill) {
        t0 = now_wall();
        if (prefill(st, tp_max, nprof) != OMNI_OK) {
            fprintf(stderr, "writer-bench: prefill: %s\n",
                    omni_store_error(st));
            return 1;
        }
        fprintf(stderr, "writer-bench: %s: touchpoint log at %llu "
                "(tp_max), %.1f s\n", label, (unsigned long long) tp_max,
                now_wall() - t0);
    }

    /* Each run of a batch size: `records` touches, at least 5 batches. */
    maxrec = 0;
    for (b = 0; b < nb; b++) {
        nrec[b] = records < 5 * batches[b] ? 5 * batches[b] : records;
        maxrec = nrec[b] > maxrec ? nrec[b] : maxrec;
    }

    ops = calloc(maxrec, sizeof(omni_touch_t));
    pids = calloc(maxrec, OMNI_ID_LEN);
    fold_pids = calloc(maxrec, OMNI_ID_LEN);
    if (ops == NULL || pids == NULL || fold_pids == NULL) {
        return 1;
    }

    /* A warm-up round (page cache, LMDB free list), not reported. */
    for (r = warmup ? -1 : 0; r < runs; r++) {
        for (b = 0; b < nb; b++) {
            nbatch = batches[b];
            records = nrec[b];
            make_touches(ops, records, nprof, (uint32_t) time(NULL));

            commit = 0;
            fold_from = 0;
            t0 = now_wall();
            c0 = now_cpu();

            for (n = 0; n < records; n += len) {
                len = records - n < nbatch ? records - n : nbatch;

                rc = writer_batch(st, ops, ops + n, len, pids + n, tp_max,
                                  &commit, n + len == records);
                if (rc != OMNI_OK) {
                    fprintf(stderr, "writer-bench: batch failed (%d): %s\n",
                            rc, omni_store_error(st));
                    return 1;
                }
            }

            wall = now_wall() - t0;
            cpu = now_cpu() - c0;
            k = (records + nbatch - 1) / nbatch;

            fprintf(stderr, "WB label=%s profiles=%u batch=%zu round=%d "
                    "records=%zu wall_s=%.4f cpu_s=%.4f commit_s=%.4f "
                    "rps=%.0f\n", label, nprof, nbatch, r + 1, records,
                    wall, cpu, commit, records / wall);

            if (r >= 0) {
                rps[b][r] = records / wall;
                cpu_us[b][r] = cpu * 1e6 / records;
                commit_ms[b][r] = commit * 1e3 / k;
                share[b][r] = 100 * commit / wall;
            }
        }
    }

    for (b = 0; b < nb; b++) {
        med = median(rps[b], (size_t) runs);
        lo = hi = rps[b][0];
        for (r = 1; r < runs; r++) {
            lo = rps[b][r] < lo ? rps[b][r] : lo;
            hi = rps[b][r] > hi ? rps[b][r] : hi;
        }

        printf("| %s | %zu | **%.0f** | %.0f–%.0f | %.2f | %.2f | %.2f | "
               "%.0f%% | %d |\n", label, batches[b], med, lo, hi, 1e6 / med,
               median(cpu_us[b], (size_t) runs),
               median(commit_ms[b], (size_t) runs),
               median(share[b], (size_t) runs), runs);
    }

    free(ops);
    free(pids);
    omni_store_close(st);

    return 0;
}
