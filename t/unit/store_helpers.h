/*
 * Shared by the unit tests of the writers (test_update.c, test_splice.c):
 * a pseudo-random generator, stores in temporary directories, and
 * comparing two stores' databases with LMDB directly.
 */

#ifndef STORE_HELPERS_H
#define STORE_HELPERS_H

#pragma GCC diagnostic ignored "-Wunused-function"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "omni_store.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND()  RUNNING_ON_VALGRIND
#endif
#endif

#ifndef UNDER_VALGRIND
#define UNDER_VALGRIND()  0
#endif

#define MAP_SIZE  ((size_t) 512 << 20)


static uint64_t  rnd_state;


static uint32_t
rnd(void)
{
    rnd_state ^= rnd_state >> 12;
    rnd_state ^= rnd_state << 25;
    rnd_state ^= rnd_state >> 27;

    return (uint32_t) ((rnd_state * 0x2545f4914f6cdd1dULL) >> 32);
}


/* ---- stores in temporary directories ---- */

static omni_store_t *
store_open(const char *dir)
{
    char               err[512];
    omni_store_t      *st;
    omni_store_opts_t  opts;

    memset(&opts, 0, sizeof(opts));
    opts.create = 1;
    opts.nosync = 1;
    opts.map_size = MAP_SIZE;

    if (omni_store_open(&st, dir, &opts, err, sizeof(err)) != OMNI_OK) {
        printf("# %s\n", err);
        return NULL;
    }

    return st;
}


static omni_store_t *
store_new(char *dir)
{
    strcpy(dir, "/tmp/omni-test-store-XXXXXX");

    if (mkdtemp(dir) == NULL) {
        return NULL;
    }

    return store_open(dir);
}


static void
store_remove(const char *dir)
{
    DIR            *d;
    char            path[512];
    struct dirent  *e;

    d = opendir(dir);
    if (d == NULL) {
        return;
    }

    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }

    closedir(d);
    rmdir(dir);
}


/* ---- LMDB directly: comparing stores, writing odd records ---- */

static int
raw_open(const char *dir, unsigned flags, MDB_env **env)
{
    if (mdb_env_create(env) != 0) {
        return -1;
    }

    mdb_env_set_maxdbs(*env, 16);
    mdb_env_set_mapsize(*env, MAP_SIZE);

    if (mdb_env_open(*env, dir, flags, 0640) != 0) {
        mdb_env_close(*env);
        return -1;
    }

    return 0;
}


/*
 * Whether database `name` holds the same keys and values in both stores
 * (closed); *count gets the number of entries.
 */
static int
db_same(const char *a, const char *b, const char *name, size_t *count)
{
    int          same, ra, rb;
    MDB_env     *env[2];
    MDB_txn     *txn[2];
    MDB_dbi      dbi[2];
    MDB_val      k[2], v[2];
    MDB_cursor  *cur[2];
    unsigned     i;

    *count = 0;

    if (raw_open(a, MDB_RDONLY, &env[0]) != 0) {
        return 0;
    }

    if (raw_open(b, MDB_RDONLY, &env[1]) != 0) {
        mdb_env_close(env[0]);
        return 0;
    }

    for (i = 0; i < 2; i++) {
        mdb_txn_begin(env[i], NULL, MDB_RDONLY, &txn[i]);
        mdb_dbi_open(txn[i], name, 0, &dbi[i]);
        mdb_cursor_open(txn[i], dbi[i], &cur[i]);
    }

    same = 1;
    ra = mdb_cursor_get(cur[0], &k[0], &v[0], MDB_FIRST);
    rb = mdb_cursor_get(cur[1], &k[1], &v[1], MDB_FIRST);

    while (ra == 0 && rb == 0) {
        if (k[0].mv_size != k[1].mv_size || v[0].mv_size != v[1].mv_size
            || memcmp(k[0].mv_data, k[1].mv_data, k[0].mv_size) != 0
            || memcmp(v[0].mv_data, v[1].mv_data, v[0].mv_size) != 0)
        {
            same = 0;
            break;
        }

        (*count)++;
        ra = mdb_cursor_get(cur[0], &k[0], &v[0], MDB_NEXT);
        rb = mdb_cursor_get(cur[1], &k[1], &v[1], MDB_NEXT);
    }

    if (ra != rb) {
        same = 0;
    }

    for (i = 0; i < 2; i++) {
        mdb_cursor_close(cur[i]);
        mdb_txn_abort(txn[i]);
        mdb_env_close(env[i]);
    }

    return same;
}



#endif /* STORE_HELPERS_H */
