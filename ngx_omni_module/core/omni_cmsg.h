/*
 * Cluster messages (docs/cluster.md): what a node publishes to the shared
 * stream is a run of its queue zone's records, as they are in the zone's
 * ring, behind a fixed header:
 *
 *   0   u32  magic "OMC2"
 *   4   u32  records in the run
 *   8   u64  the zone's id (random, never 0)
 *   16  u64  prev: the zone's position this run follows
 *   24  u64  from: the position of its first record
 *   32  u64  to: the position after its last record
 *   40  24   the node's name (informative, NUL-padded)
 *   64       the records, back to back: (to - from) bytes
 *
 * "OMC3" has the same header, then the records compressed: one zstd
 * frame that holds exactly (to - from) bytes.  A node compresses a run
 * unless the frame would not be smaller (omni_cluster compress=); every
 * node reads both.  Records of page views repeat paths, campaigns and
 * rules: the bench's runs shrink 10 to 15 times, and the stream's
 * servers (which store every byte three times and send it to every
 * node) do that much less work.
 *
 * [prev, from) holds only pad records (the ring's end), which are not
 * sent.  Positions are byte counts since the zone was created.
 *
 * Every node keeps, per zone, the position up to which it applied the
 * zone's records (omni_batch_t's origins): a run that repeats what was
 * applied is skipped (a retry, a new writer that sent a range again), a
 * run that overlaps it is applied from there, and a run after a hole
 * (an earlier run refused, then sent again after it) is skipped, to be
 * applied when the run again comes in order.  So a zone's records are
 * applied once, in order, on every node.
 *
 * Plain C: the module's cluster glue and the unit tests use it.
 */

#ifndef OMNI_CMSG_H
#define OMNI_CMSG_H

#include "omni_core.h"

#define OMNI_CMSG_MAGIC     0x32434d4fU     /* "OMC2" */
#define OMNI_CMSG_MAGIC_V1  0x31434d4fU     /* "OMC1": one record */
#define OMNI_CMSG_MAGIC_Z   0x33434d4fU     /* "OMC3": compressed */
#define OMNI_CMSG_HEAD      64
#define OMNI_CMSG_HEAD_V1   48
#define OMNI_CMSG_NODE      24

/* A run's records, at most (a header saying more is damaged). */
#define OMNI_CMSG_RUN_MAX   (16 * 1024 * 1024)

/* A queue record's header: its length (8-byte multiple), then its type. */
#define OMNI_CMSG_REC_PAD   0

typedef struct {
    uint64_t              zone;
    uint64_t              prev;
    uint64_t              from;
    uint64_t              to;
    uint32_t              nrec;
    unsigned              v1:1;     /* "OMC1": apply as it comes */
    unsigned              damaged:1;    /* header sound, records not */
    const unsigned char  *recs;     /* (to - from) bytes; NULL until
                                       omni_cmsg_inflate() for "OMC3" */
    const unsigned char  *z;        /* "OMC3": the frame */
    size_t                zlen;
    char                  node[OMNI_CMSG_NODE + 1];
} omni_cmsg_t;

/* What a node does with a run (omni_cmsg_start()). */
#define OMNI_CMSG_APPLY     0       /* from *start on */
#define OMNI_CMSG_DUP       1       /* applied already */
#define OMNI_CMSG_HOLE      2       /* an earlier run is missing */

/*
 * The next run of a ring's records from pos, before end: leading pad
 * records are skipped (prev = pos, from after them); the run stops at
 * the next pad record, after max_rec records, or before max_bytes (a
 * longer record goes alone), and at the ring's end (a run is contiguous
 * in memory).  m->recs points into the ring.
 * OMNI_NOTFOUND: only pad records before end; OMNI_INVALID: a damaged
 * record (*err says which).
 */
int omni_cmsg_span(const unsigned char *ring, uint64_t size, uint64_t pos,
    uint64_t end, size_t max_rec, size_t max_bytes, omni_cmsg_t *m,
    const char **err);

/*
 * zstd's state for encoding and inflating, one per thread that does
 * (made as needed: a node that only reads never makes an encoder).
 */
typedef struct omni_cmsg_zctx_s  omni_cmsg_zctx_t;

omni_cmsg_zctx_t *omni_cmsg_zctx_create(void);
void omni_cmsg_zctx_free(omni_cmsg_zctx_t *z);

/* The bytes omni_cmsg_encode() may write for the run m. */
size_t omni_cmsg_bound(const omni_cmsg_t *m);

/*
 * Header and records into out (omni_cmsg_bound() bytes): compressed
 * ("OMC3") with z when that is smaller, as they are ("OMC2") without z
 * or otherwise.  The message's length.
 */
size_t omni_cmsg_encode(unsigned char *out, const omni_cmsg_t *m,
    const char *node, size_t node_len, omni_cmsg_zctx_t *z);

/*
 * A message's data: OMNI_OK (m filled; its records checked, or for
 * "OMC3" found by omni_cmsg_inflate()), OMNI_NOTFOUND (not a message of
 * ours), OMNI_INVALID (damaged: *err; m->damaged when its header is
 * sound and its records are not: the run can be passed over, its records
 * lost).
 */
int omni_cmsg_parse(const unsigned char *p, size_t len, omni_cmsg_t *m,
    const char **err);

/*
 * The bytes a message's records take once inflated (its length when it
 * is not a run), to size a buffer for a fetch's messages before parsing.
 */
size_t omni_cmsg_records_len(const unsigned char *p, size_t len);

/*
 * The records of a parsed "OMC3" run into out (to - from bytes),
 * checked; m->recs then points there (nothing to do for the others).
 * OMNI_OK; OMNI_INVALID with m->damaged and *err (the frame or the
 * records in it are damaged); OMNI_ERROR (out of memory).
 */
int omni_cmsg_inflate(omni_cmsg_t *m, unsigned char *out,
    omni_cmsg_zctx_t *z, const char **err);

/*
 * Given the position up to which the zone's records were applied
 * (known: whether the store has one), what to do with the run; for
 * OMNI_CMSG_APPLY, *start is the first record's position to apply.  A
 * zone the store does not know yet starts with its first run seen.
 * Needs m->recs (omni_cmsg_inflate() first for "OMC3") to find where an
 * overlapping run's first record to apply is; a damaged run is told
 * apart from a copy or a run after a hole by its header alone.
 */
int omni_cmsg_start(const omni_cmsg_t *m, int known, uint64_t applied,
    uint64_t *start);

#endif /* OMNI_CMSG_H */
