/*
 * How full a store is, for the module's metrics and omnictl: the pages
 * the last committed transaction uses and the size of the memory map.
 */

#ifndef OMNI_STORE_STAT_H
#define OMNI_STORE_STAT_H

#include "omni_store.h"

/*
 * used: bytes up to the last page in use (what the data file would need
 * at least); size: the map size, the bound past which writes fail with
 * MDB_MAP_FULL until the map grows.  Reads LMDB's meta page only: no
 * transaction, any time.
 */
int omni_store_usage(omni_store_t *st, size_t *used, size_t *size);

#endif /* OMNI_STORE_STAT_H */
