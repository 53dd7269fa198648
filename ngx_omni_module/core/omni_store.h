/*
 * The LMDB profile store, shared by the nginx module and omnictl.
 *
 * One environment (a directory holding data.mdb and lock.mdb) with named
 * databases:
 *   profiles     16-byte profile id  -> profile record (omni_record.h)
 *   aliases      kind byte + value   -> 16-byte profile id
 *   touchpoints  u64 big-endian seq  -> touchpoint (JSON line)
 *   tpindex      profile id + seq    -> "" (so forget finds a profile's
 *                                       touchpoints without a scan)
 *   meta         "schema"            -> u32 schema version
 *                "tp_next"           -> u64 BE next touchpoint seq
 *                "tp_pruned"         -> u64 BE last seq retention removed
 *
 * Process model (after Kong's lua-resty-lmdb): a handle belongs to one
 * process and is never used across fork().  The read side keeps one read
 * transaction per handle, renewed before and reset after each lookup
 * (MDB_NOTLS, so it may live in the event loop while a writer thread of
 * the same process writes).  Write transactions are short and are only
 * ever opened off the event loop: in the module's writer task or in
 * omnictl.
 *
 * Every failure records a message, including mdb_strerror(), readable
 * with omni_store_error().
 */

#ifndef OMNI_STORE_H
#define OMNI_STORE_H

#include "omni_core.h"
#include "omni_record.h"

#define OMNI_SCHEMA_VERSION        1
#define OMNI_STORE_DEFAULT_MAP     ((size_t) 1 << 30)      /* 1 GiB */
#define OMNI_STORE_DEFAULT_READERS 126

typedef struct omni_store_s  omni_store_t;
typedef struct omni_wtxn_s   omni_wtxn_t;

typedef struct {
    size_t      map_size;       /* 0: the default, or what the file has */
    unsigned    max_readers;    /* 0: OMNI_STORE_DEFAULT_READERS */
    int         readonly;
    int         nosync;         /* bulk loads: caller syncs at the end */
    int         create;         /* create the directory when missing */
    int         attach;         /* open existing databases read-only:
                                   never wait on the writer lock */
} omni_store_opts_t;

int omni_store_open(omni_store_t **stp, const char *path,
    const omni_store_opts_t *opts, char *err, size_t errlen);
void omni_store_close(omni_store_t *st);
const char *omni_store_error(omni_store_t *st);
const char *omni_store_path(omni_store_t *st);

/* Clears stale reader slots left by dead processes. */
int omni_store_reader_check(omni_store_t *st, int *dead);
/*
 * Sets the map size: 0 adopts the size another process grew the map to
 * (the answer to OMNI_MAP_RESIZED).  Only valid while this process has no
 * active transaction.
 */
int omni_store_set_map_size(omni_store_t *st, size_t size);
size_t omni_store_map_size(omni_store_t *st);
int omni_store_sync(omni_store_t *st);

/* ---- read side (zero-copy; pointers valid until read_end) ---- */

int omni_store_read_begin(omni_store_t *st);
void omni_store_read_end(omni_store_t *st);
/* OMNI_OK, OMNI_NOTFOUND or an error. */
int omni_store_get_alias(omni_store_t *st, unsigned kind, const void *val,
    size_t len, unsigned char *pid);
int omni_store_get_profile(omni_store_t *st, const unsigned char *pid,
    omni_rec_t *rec);

/* Calls cb for every profile, in id order, inside one read txn. */
typedef int (*omni_store_profile_cb)(void *arg, const omni_rec_t *rec);
int omni_store_foreach_profile(omni_store_t *st, omni_store_profile_cb cb,
    void *arg);

/* Touchpoints after `after`, at most `limit`; cb gets seq and the bytes. */
typedef int (*omni_store_tp_cb)(void *arg, uint64_t seq, const void *data,
    size_t len);
int omni_store_foreach_touchpoint(omni_store_t *st, uint64_t after,
    unsigned limit, omni_store_tp_cb cb, void *arg);
/*
 * The feed, inside the caller's read transaction (omni_store_read_begin):
 * first receives the oldest sequence number retention has not removed
 * (meta "tp_pruned" + 1; forget leaves gaps but never expires a cursor).
 * When after + 1 < *first the cursor has expired: OMNI_OK and cb is
 * never called.  Otherwise cb gets up to limit touchpoints after `after`.
 */
int omni_store_feed(omni_store_t *st, uint64_t after, unsigned limit,
    omni_store_tp_cb cb, void *arg, uint64_t *first);

typedef struct {
    size_t      map_size;
    size_t      map_used;
    unsigned    max_readers;
    unsigned    readers_used;
    uint64_t    profiles;
    uint64_t    aliases;
    uint64_t    touchpoints;
    uint64_t    first_seq;
    uint64_t    last_seq;
    uint64_t    next_seq;       /* the next touchpoint's seq */
    unsigned    schema;
} omni_store_stat_t;

int omni_store_stat(omni_store_t *st, omni_store_stat_t *s);

/* ---- write side (never on the event loop) ---- */

int omni_store_write_begin(omni_store_t *st, omni_wtxn_t **wp);
int omni_wtxn_commit(omni_wtxn_t *w);
void omni_wtxn_abort(omni_wtxn_t *w);

/* Decodes the stored record into p (omni_profile_init()ed by the call). */
int omni_wtxn_get_profile(omni_wtxn_t *w, const unsigned char *pid,
    omni_profile_t *p);
/* Encodes and stores p, and points every alias of p at p->id. */
int omni_wtxn_put_profile(omni_wtxn_t *w, const omni_profile_t *p);
/* Encodes and stores p only: for writers that know its aliases are set. */
int omni_wtxn_put_record(omni_wtxn_t *w, const omni_profile_t *p);
int omni_wtxn_get_alias(omni_wtxn_t *w, unsigned kind, const void *val,
    size_t len, unsigned char *pid);
int omni_wtxn_put_alias(omni_wtxn_t *w, unsigned kind, const void *val,
    size_t len, const unsigned char *pid);
int omni_wtxn_del_alias(omni_wtxn_t *w, unsigned kind, const void *val,
    size_t len);
/* Removes the profile, every alias pointing at it, and its touchpoints. */
int omni_wtxn_forget(omni_wtxn_t *w, const unsigned char *pid,
    unsigned *naliases, unsigned *ntouchpoints);
/*
 * Appends a touchpoint (data: its JSON line, without "seq") under the
 * next sequence number.  The stored value is a 20-byte header (profile
 * id, u32 big-endian time, for forget and pruning) then data; readers
 * only ever see data.  Numbers are never reused: meta "tp_next" keeps
 * the next one even when pruning or forget empties the log.
 */
int omni_wtxn_append_touchpoint(omni_wtxn_t *w, const unsigned char *pid,
    uint32_t time, const void *data, size_t len, uint64_t *seq);
/*
 * Retention: deletes the oldest touchpoints (and their tpindex entries)
 * while there are more than max_count (0: no limit) or they are older
 * than min_time (0: no limit), at most budget of them per call so a
 * write transaction stays short.
 */
int omni_wtxn_prune_touchpoints(omni_wtxn_t *w, uint64_t max_count,
    uint32_t min_time, unsigned budget, unsigned *pruned);

#endif /* OMNI_STORE_H */
