/*
 * The LMDB profile store, shared by the nginx module and omnictl.
 *
 * One environment (a directory holding data.mdb and lock.mdb) with named
 * databases:
 *   profiles     16-byte profile id  -> profile record (omni_record.h)
 *   aliases      kind byte + value   -> 16-byte profile id
 *   touchpoints  u64 big-endian seq  -> 20-byte header (profile id,
 *                                       u32 BE time) + JSON line
 *   tpindex      no longer written or read (forget scans the
 *                touchpoints' headers); emptied by any handle that may
 *                create databases, kept so older builds still open
 *   meta         "schema"            -> u32 schema version
 *                "tp_next"           -> u64 BE next touchpoint seq
 *                "tp_pruned"         -> u64 BE last seq retention removed
 *   seen         idempotency key     -> u32 BE time first seen
 *                (1 to OMNI_SEEN_KEY_MAX bytes, e.g. an event's messageId
 *                 or an order id: omni_wtxn_seen())
 *   seen_age     u32 BE time + key   -> "" (the seen keys in age order,
 *                                       for omni_wtxn_prune_seen())
 *   merged       kept profile id +   -> "" (every profile merged into the
 *                merged-away id         kept one, directly or through a
 *                                       chain: forget deletes their
 *                                       touchpoints too)
 *
 * seen, seen_age and merged came after schema 1 and need no new schema
 * version: an older build ignores them, and a store created by an older
 * build gets them from the first handle that may create databases (any
 * open but read-only and attach).  Read-only and attach handles treat
 * them as empty while they are missing; an attach handle's write
 * transaction creates them when it first records a key or a merge.
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
#define OMNI_SEEN_KEY_MAX          256     /* longest idempotency key */

typedef struct omni_store_s  omni_store_t;
typedef struct omni_wtxn_s   omni_wtxn_t;

typedef struct {
    size_t      map_size;       /* 0: the default, or what the file has */
    unsigned    max_readers;    /* 0: OMNI_STORE_DEFAULT_READERS */
    int         readonly;
    int         nosync;         /* bulk loads: caller syncs at the end */
    int         nometasync;     /* commits sync data, not the meta page:
                                   the last commit may be undone by an OS
                                   crash (never the database's integrity)
                                   until omni_store_sync() */
    int         create;         /* create the directory when missing */
    int         attach;         /* open existing databases read-only:
                                   never wait on the writer lock */
    int         journal;        /* commits are not synced; acknowledged
                                   events are journaled, the store is
                                   synced at checkpoints (omni_journal.h) */
    int         recovering;     /* internal: the journal's recovery */
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
/*
 * A hot, consistent copy of every database into dir/data.mdb (dir must
 * exist and hold no data.mdb), compacted when compact is set: for
 * omnictl backup.
 */
int omni_store_copy(omni_store_t *st, const char *dir, int compact);

/* ---- read side (zero-copy; pointers valid until read_end) ---- */

int omni_store_read_begin(omni_store_t *st);
void omni_store_read_end(omni_store_t *st);
/*
 * The snapshot the open read transaction sees (LMDB's transaction id of
 * the last commit it includes); 0 when none is open.  Two windows with
 * the same id read the same data.
 */
uint64_t omni_store_read_snapshot(omni_store_t *st);
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
    uint64_t    seen;           /* idempotency keys held */
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
/*
 * The stored record as it is, zero-copy: rec points into the transaction
 * and is valid until its next write or its end.  OMNI_NOTFOUND,
 * OMNI_INVALID (omni_rec_parse() refuses it) or an error.
 */
int omni_wtxn_get_rec(omni_wtxn_t *w, const unsigned char *pid,
    omni_rec_t *rec);
/* Stores record bytes under pid as they are (omni_splice.h builds them). */
int omni_wtxn_put_raw(omni_wtxn_t *w, const unsigned char *pid,
    const void *data, size_t len);
int omni_wtxn_get_alias(omni_wtxn_t *w, unsigned kind, const void *val,
    size_t len, unsigned char *pid);
int omni_wtxn_put_alias(omni_wtxn_t *w, unsigned kind, const void *val,
    size_t len, const unsigned char *pid);
int omni_wtxn_del_alias(omni_wtxn_t *w, unsigned kind, const void *val,
    size_t len);
/*
 * Removes the profile, every alias pointing at it, and its touchpoints:
 * those recorded under its id or under the id of any profile merged
 * into it (one scan of the touchpoints' headers), and its merged
 * entries.
 */
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
 * Retention: deletes the oldest touchpoints (the front of the log only)
 * while there are more than max_count (0: no limit) or they are older
 * than min_time (0: no limit), at most budget of them per call so a
 * write transaction stays short.
 */
int omni_wtxn_prune_touchpoints(omni_wtxn_t *w, uint64_t max_count,
    uint32_t min_time, unsigned budget, unsigned *pruned);

/*
 * Identity stitching (omni_merge.h builds omni_wtxn_merge() on these).
 *
 * omni_wtxn_del_record() deletes the profile record only: its alias keys
 * and touchpoints stay where they are (OMNI_NOTFOUND: no record).  Unlike
 * forget, it is meant for a profile whose aliases were moved and whose
 * merge was recorded first.
 */
int omni_wtxn_del_record(omni_wtxn_t *w, const unsigned char *pid);
/*
 * Points every alias key that points at `from` at `to`, *n of them.  A
 * scan of the whole aliases database (the keys a profile dropped at
 * OMNI_MAX_ALIASES are listed nowhere else): for the rare profile at the
 * bound, not for every merge.
 */
int omni_wtxn_repoint_aliases(omni_wtxn_t *w, const unsigned char *from,
    const unsigned char *to, unsigned *n);
/*
 * Records that gone was merged into keep: merged gets keep + gone, and
 * every entry gone + X (profiles merged into gone before) becomes
 * keep + X, so forget of keep finds the touchpoints of all of them.
 * The touchpoints themselves are not touched: their headers and JSON
 * lines keep the profile id they were recorded under, and their seqs.
 */
int omni_wtxn_record_merge(omni_wtxn_t *w, const unsigned char *keep,
    const unsigned char *gone);

/*
 * Idempotency keys (event ingest: a messageId, an order id).  Records
 * key (1 to OMNI_SEEN_KEY_MAX bytes, else OMNI_INVALID) as first seen at
 * `now` and returns 0, or returns 1 when it was recorded already (a
 * duplicate: its time is left as it was), or a negative OMNI_* error.
 * Callers that share the databases give their keys distinct prefixes
 * ("m:" + messageId, "o:" + order id, ...).
 */
int omni_wtxn_seen(omni_wtxn_t *w, const void *key, size_t len,
    uint32_t now);
/*
 * Names the profile a key recorded in this transaction belongs to, so
 * that forget finds and deletes it.  The stored key is a keyed hash of
 * `key` (omni_store_privacy.c): no messageId, order id or visitor id is
 * kept in clear.
 */
int omni_wtxn_seen_owner(omni_wtxn_t *w, const void *key, size_t len,
    const unsigned char *pid);
/*
 * Forgets the oldest keys first seen before `before`, at most budget of
 * them per call (*pruned), so a write transaction stays short.  After
 * that a key counts as new again: keep them longer than any redelivery.
 */
int omni_wtxn_prune_seen(omni_wtxn_t *w, uint32_t before, unsigned budget,
    unsigned *pruned);

/*
 * Tombstones of forgotten cookie and device ids (their hex text), keyed
 * by a keyed hash: the fresh profile id such an id starts when it comes
 * back, and the time of the forget.  omni_*_get_alias() already answer
 * the fresh id for a tombstoned cookie or device.
 */
int omni_wtxn_tombstone(omni_wtxn_t *w, unsigned kind, const void *v,
    size_t len, const unsigned char *pid, uint32_t when);
int omni_wtxn_get_tombstone(omni_wtxn_t *w, unsigned kind, const void *v,
    size_t len, uint32_t *when);
/*
 * Anonymous profiles expire: scans at most budget profiles from `from`
 * (a profile id, all zero for the first; updated to where the next call
 * goes on, all zero again after the last) and deletes, with their alias
 * rows and merge records, those that name no customer or email and have
 * done nothing since `before`.  Their touchpoints are older than any
 * retention allows by then (omni_store anon_ttl >= tp_max_age).
 */
int omni_wtxn_expire_anonymous(omni_wtxn_t *w, uint32_t before,
    unsigned budget, unsigned char *from, unsigned *expired);
/*
 * Whether any profile ever stated a refusal of some purpose (meta
 * "consent_refused", written by the write that stored it), in the open
 * read window; 1 when it cannot tell.  Under opt-out, a request whose
 * visitor states nothing needs no profile read to know what it may
 * record while this is 0.
 */
int omni_store_consent_refused(omni_store_t *st);
/* Whether any tombstone exists (a batch then checks its touches). */
int omni_wtxn_has_tombstones(omni_wtxn_t *w);

#endif /* OMNI_STORE_H */
