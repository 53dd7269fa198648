/*
 * Private to the store (omni_store.c: environment, profiles and aliases;
 * omni_store_log.c: the touchpoint log, feed, retention and forget;
 * omni_store_ident.c: merges and idempotency keys): the handle and
 * transaction structures and the helpers they share.
 */

#ifndef OMNI_STORE_INT_H
#define OMNI_STORE_INT_H

#include <lmdb.h>
#include <pthread.h>

#include "omni_store.h"

#define OMNI_ERR_LEN   512

/* A touchpoint value: profile id, u32 BE time, then the JSON line. */
#define OMNI_TP_HEADER  (OMNI_ID_LEN + 4)

/* A seen_age key: u32 BE time, then the seen key. */
#define OMNI_SEEN_AGE_HDR  4

/* A merged key: the kept profile's id, then the merged-away one's. */
#define OMNI_MERGED_KEY  (2 * OMNI_ID_LEN)

/* A keyed hash (omni_store_khash()), and a seen key made of one. */
#define OMNI_KHASH_LEN   16
#define OMNI_SEEN_HKEY   (1 + OMNI_KHASH_LEN)

/* A seen value: u32 BE time first seen, then the owner profile's id
   (zero until the event is applied; older stores: the time alone). */
#define OMNI_SEEN_VAL    (4 + OMNI_ID_LEN)

struct omni_store_s {
    MDB_env      *env;
    MDB_dbi       profiles;
    MDB_dbi       aliases;
    MDB_dbi       touchpoints;
    MDB_dbi       tpindex;
    MDB_dbi       meta;
    MDB_dbi       seen;
    MDB_dbi       seen_age;
    MDB_dbi       merged;
    MDB_dbi       forgotten;        /* tombstones (omni_store_privacy.c) */
    /*
     * Whether seen and seen_age (merged) are open.  A store created by
     * an older build lacks them, and a handle that cannot create them
     * (read-only, attach) then treats them as empty until a write
     * transaction of this handle creates them (omni_wtxn_seen_dbs(),
     * omni_wtxn_merged_dbs()).
     */
    int           has_seen;
    int           has_merged;
    int           has_forgotten;
    int           has_salt;
    unsigned char salt[32];         /* meta "salt": keyed hashes */
    int           refusal_known;    /* meta "consent_refused" written */
    MDB_txn      *rtxn;             /* the reusable read transaction */
    unsigned      readonly:1;
    unsigned      nosync:1;         /* bulk: the caller syncs */
    unsigned      wrote:1;          /* a write transaction committed */

    /* the journal (omni_journal.c) */
    unsigned      journal:1;        /* NOSYNC commits, journaled events */
    unsigned      started:1;        /* the first checkpoint is taken */
    unsigned      pin_mu_init:1;
    int           ckpt_fd;          /* journal.ckpt; -1: none */
    int           data_fd;          /* data.mdb, for its meta pages */
    int           seg_fd;           /* the segment appended to; -1 */
    uint64_t      seg_no;
    uint64_t      seg_off;
    unsigned      psize;
    unsigned      replayed;         /* events the recovery replayed */
    MDB_txn      *pin;              /* the durable checkpoint's pin */
    int           prep_fd;          /* the next segment, made ready */
    uint64_t      prep_no;
    pthread_mutex_t  pin_mu;
    char          path[4096];
};


/* Error text, per thread (omni_store.c). */
extern __thread char  omni_store_err[OMNI_ERR_LEN];

struct omni_wtxn_s {
    omni_store_t  *st;
    MDB_txn       *txn;
    uint64_t       next_seq;        /* 0: not looked up yet */
    unsigned       tp_dirty:1;      /* next_seq moved: meta at commit */
    /* seen and seen_age opened by this transaction: published to the
       handle on commit, closed by LMDB on abort */
    MDB_dbi        seen;
    MDB_dbi        seen_age;
    MDB_dbi        merged;          /* the same for merged */
    MDB_dbi        forgotten;       /* and for forgotten, with the salt */
    unsigned       seen_open:1;
    unsigned       merged_open:1;
    unsigned       forgotten_open:1;
    unsigned       salt_new:1;      /* salt made by this transaction */
    unsigned       merges;          /* profiles merged (omni_batch_t) */
    unsigned char  salt[32];
};


int omni_store_fail(omni_store_t *st, const char *what, int rc);

/* omni_journal.c */
int omni_journal_open(omni_store_t *st, const omni_store_opts_t *opts,
    char *err, size_t errlen);
int omni_journal_attach(omni_store_t *st, char *err, size_t errlen);
void omni_journal_close(omni_store_t *st);
int omni_journal_start(omni_store_t *st);
int omni_journal_synced(omni_store_t *st);
int omni_alias_key(MDB_val *key, unsigned char *buf, unsigned kind,
    const void *val, size_t len);
int omni_store_meta_u64(omni_store_t *st, MDB_txn *txn, const char *name,
    uint64_t *v);
int omni_wtxn_put_meta_u64(omni_wtxn_t *w, const char *name, uint64_t v);
int omni_store_edge_seq(omni_store_t *st, MDB_txn *txn, MDB_cursor_op op,
    uint64_t *seq);
/* memcmp of two profile ids, for qsort() and bsearch() */
int omni_id_cmp(const void *a, const void *b);
int omni_wtxn_merged_take(omni_wtxn_t *w, const unsigned char *pid,
    unsigned char **idsp, size_t *nidsp);

/* omni_store_privacy.c */
int omni_store_open_salt(omni_store_t *st, MDB_txn *txn, int create);
int omni_store_khash(omni_store_t *st, unsigned char tag, const void *data,
    size_t len, unsigned char *out);
int omni_wtxn_privacy_dbs(omni_wtxn_t *w);
int omni_store_tombstone_get(omni_store_t *st, MDB_txn *txn, unsigned kind,
    const void *v, size_t len, unsigned char *pid, uint32_t *when);


static inline void
omni_put_be64(unsigned char *p, uint64_t v)
{
    int  i;

    for (i = 7; i >= 0; i--) {
        p[i] = (unsigned char) v;
        v >>= 8;
    }
}


static inline uint64_t
omni_get_be64(const unsigned char *p)
{
    int       i;
    uint64_t  v;

    v = 0;
    for (i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }

    return v;
}


static inline void
omni_put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char) (v >> 24);
    p[1] = (unsigned char) (v >> 16);
    p[2] = (unsigned char) (v >> 8);
    p[3] = (unsigned char) v;
}


static inline uint32_t
omni_get_be32(const unsigned char *p)
{
    return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16)
           | ((uint32_t) p[2] << 8) | (uint32_t) p[3];
}

#endif /* OMNI_STORE_INT_H */
