/*
 * Store usage (omni_store_stat.h).
 */

#include "omni_store_stat.h"
#include "omni_store_int.h"


int
omni_store_usage(omni_store_t *st, size_t *used, size_t *size)
{
    int          rc;
    MDB_stat     ms;
    MDB_envinfo  info;

    rc = mdb_env_info(st->env, &info);
    if (rc == 0) {
        rc = mdb_env_stat(st->env, &ms);
    }

    if (rc != 0) {
        return omni_store_fail(st, "mdb_env_info() failed", rc);
    }

    *used = ((size_t) info.me_last_pgno + 1) * ms.ms_psize;
    *size = info.me_mapsize;

    return OMNI_OK;
}
