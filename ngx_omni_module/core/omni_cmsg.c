/*
 * Cluster messages: runs of a queue zone's records (omni_cmsg.h).
 */

#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "omni_cmsg.h"


/*
 * zstd's fastest level that still finds the repeats within a run: the
 * bench's 21 KB runs compress 14 times at about 1 GB/s, so a node's
 * publisher spends well under 1% of a CPU on it.
 */
#define OMNI_CMSG_ZLEVEL  1


struct omni_cmsg_zctx_s {
    ZSTD_CCtx            *cctx;         /* made when first needed */
    ZSTD_DCtx            *dctx;
};


static uint32_t
omni_cmsg_get32(const unsigned char *p)
{
    uint32_t  v;

    memcpy(&v, p, sizeof(v));
    return v;
}


static uint64_t
omni_cmsg_get64(const unsigned char *p)
{
    uint64_t  v;

    memcpy(&v, p, sizeof(v));
    return v;
}


static void
omni_cmsg_put32(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, sizeof(v));
}


static void
omni_cmsg_put64(unsigned char *p, uint64_t v)
{
    memcpy(p, &v, sizeof(v));
}


int
omni_cmsg_span(const unsigned char *ring, uint64_t size, uint64_t pos,
    uint64_t end, size_t max_rec, size_t max_bytes, omni_cmsg_t *m,
    const char **err)
{
    uint32_t              len;
    const unsigned char  *rec;

    memset(m, 0, sizeof(omni_cmsg_t));
    m->prev = pos;

    /* the pads at the ring's end before the run */
    while (pos < end) {
        rec = ring + pos % size;
        len = omni_cmsg_get32(rec);

        if (len < 8 || len % 8 || len > end - pos
            || pos % size + len > size)
        {
            *err = "a damaged queue record";
            return OMNI_INVALID;
        }

        if (rec[4] != OMNI_CMSG_REC_PAD) {
            break;
        }

        pos += len;
    }

    if (pos == end) {
        return OMNI_NOTFOUND;
    }

    m->from = pos;
    m->recs = ring + pos % size;

    while (pos < end && m->nrec < max_rec) {
        rec = ring + pos % size;
        len = omni_cmsg_get32(rec);

        if (len < 8 || len % 8 || len > end - pos
            || pos % size + len > size)
        {
            *err = "a damaged queue record";
            return OMNI_INVALID;
        }

        if (rec[4] == OMNI_CMSG_REC_PAD
            || (m->nrec && pos + len - m->from > max_bytes))
        {
            break;
        }

        /* a run is contiguous in the ring: it ends where the ring does */
        if (pos % size + len == size) {
            pos += len;
            m->nrec++;
            break;
        }

        pos += len;
        m->nrec++;
    }

    m->to = pos;

    return OMNI_OK;
}


omni_cmsg_zctx_t *
omni_cmsg_zctx_create(void)
{
    return calloc(1, sizeof(omni_cmsg_zctx_t));
}


void
omni_cmsg_zctx_free(omni_cmsg_zctx_t *z)
{
    if (z) {
        ZSTD_freeCCtx(z->cctx);
        ZSTD_freeDCtx(z->dctx);
        free(z);
    }
}


size_t
omni_cmsg_bound(const omni_cmsg_t *m)
{
    size_t  raw, zb;

    raw = (size_t) (m->to - m->from);
    zb = ZSTD_compressBound(raw);

    return OMNI_CMSG_HEAD + (zb > raw ? zb : raw);
}


size_t
omni_cmsg_encode(unsigned char *out, const omni_cmsg_t *m, const char *node,
    size_t node_len, omni_cmsg_zctx_t *z)
{
    size_t  raw, zlen;

    raw = (size_t) (m->to - m->from);

    memset(out, 0, OMNI_CMSG_HEAD);

    omni_cmsg_put32(out, OMNI_CMSG_MAGIC);
    omni_cmsg_put32(out + 4, m->nrec);
    omni_cmsg_put64(out + 8, m->zone);
    omni_cmsg_put64(out + 16, m->prev);
    omni_cmsg_put64(out + 24, m->from);
    omni_cmsg_put64(out + 32, m->to);
    memcpy(out + 40, node, node_len < OMNI_CMSG_NODE ? node_len
                                                     : OMNI_CMSG_NODE);

    if (z && z->cctx == NULL) {
        z->cctx = ZSTD_createCCtx();
    }

    if (z && z->cctx) {
        zlen = ZSTD_compressCCtx(z->cctx, out + OMNI_CMSG_HEAD,
                                 ZSTD_compressBound(raw), m->recs, raw,
                                 OMNI_CMSG_ZLEVEL);

        if (!ZSTD_isError(zlen) && zlen < raw) {
            omni_cmsg_put32(out, OMNI_CMSG_MAGIC_Z);
            return OMNI_CMSG_HEAD + zlen;
        }

        /* not smaller (or an error): as they are */
    }

    memcpy(out + OMNI_CMSG_HEAD, m->recs, raw);

    return OMNI_CMSG_HEAD + raw;
}


/* Every record whole, none a pad, as many as the header says. */
static int
omni_cmsg_check(omni_cmsg_t *m, const char **err)
{
    size_t                len, off;
    uint32_t              rlen, n;
    const unsigned char  *p;

    p = m->recs;
    len = (size_t) (m->to - m->from);
    n = 0;

    for (off = 0; off < len; off += rlen) {
        rlen = (len - off >= 4) ? omni_cmsg_get32(p + off) : 0;

        if (rlen < 8 || rlen > len - off || (!m->v1 && rlen % 8)
            || p[off + 4] == OMNI_CMSG_REC_PAD)
        {
            *err = "a damaged record";
            m->damaged = 1;
            return OMNI_INVALID;
        }

        n++;
    }

    if (n != m->nrec) {
        *err = "a message with fewer or more records than its header says";
        m->damaged = 1;
        return OMNI_INVALID;
    }

    return OMNI_OK;
}


int
omni_cmsg_parse(const unsigned char *p, size_t len, omni_cmsg_t *m,
    const char **err)
{
    size_t    head;
    uint32_t  magic, rlen;

    memset(m, 0, sizeof(omni_cmsg_t));

    if (len < 8) {
        return OMNI_NOTFOUND;
    }

    magic = omni_cmsg_get32(p);

    if (magic == OMNI_CMSG_MAGIC_V1) {
        /* one record: magic, zone at 8, position at 16, node at 24 */
        if (len < OMNI_CMSG_HEAD_V1 + 8) {
            *err = "a message shorter than its header";
            return OMNI_INVALID;
        }

        head = OMNI_CMSG_HEAD_V1;
        m->v1 = 1;
        m->zone = omni_cmsg_get64(p + 8);
        m->prev = omni_cmsg_get64(p + 16);
        m->from = m->prev;
        m->nrec = 1;
        memcpy(m->node, p + 24, OMNI_CMSG_NODE);

        /* the record's own length: the message may carry padding */
        rlen = omni_cmsg_get32(p + head);

        if (rlen < 8 || rlen > len - head) {
            *err = "a damaged record";
            return OMNI_INVALID;
        }

        m->to = m->from + rlen;

    } else if (magic == OMNI_CMSG_MAGIC || magic == OMNI_CMSG_MAGIC_Z) {
        if (len < OMNI_CMSG_HEAD) {
            *err = "a message shorter than its header";
            return OMNI_INVALID;
        }

        head = OMNI_CMSG_HEAD;
        m->nrec = omni_cmsg_get32(p + 4);
        m->zone = omni_cmsg_get64(p + 8);
        m->prev = omni_cmsg_get64(p + 16);
        m->from = omni_cmsg_get64(p + 24);
        m->to = omni_cmsg_get64(p + 32);
        memcpy(m->node, p + 40, OMNI_CMSG_NODE);

        if (m->prev > m->from || m->from >= m->to
            || m->to - m->from > OMNI_CMSG_RUN_MAX
            || (magic == OMNI_CMSG_MAGIC && m->to - m->from != len - head)
            || (magic == OMNI_CMSG_MAGIC_Z && len == head)
            || m->nrec == 0)
        {
            *err = "a message whose positions do not match its length";
            return OMNI_INVALID;
        }

        if (magic == OMNI_CMSG_MAGIC_Z) {
            /* the records are checked once inflated */
            m->z = p + head;
            m->zlen = len - head;
            return OMNI_OK;
        }

    } else {
        return OMNI_NOTFOUND;
    }

    m->recs = p + head;

    return omni_cmsg_check(m, err);
}


size_t
omni_cmsg_records_len(const unsigned char *p, size_t len)
{
    uint32_t  magic;
    uint64_t  from, to;

    if (len < OMNI_CMSG_HEAD) {
        return len;
    }

    magic = omni_cmsg_get32(p);

    if (magic != OMNI_CMSG_MAGIC && magic != OMNI_CMSG_MAGIC_Z) {
        return len;
    }

    from = omni_cmsg_get64(p + 24);
    to = omni_cmsg_get64(p + 32);

    if (from >= to || to - from > OMNI_CMSG_RUN_MAX) {
        return len;                     /* damaged: parsed as such */
    }

    return (size_t) (to - from);
}


int
omni_cmsg_inflate(omni_cmsg_t *m, unsigned char *out, omni_cmsg_zctx_t *z,
    const char **err)
{
    size_t  raw, n;

    if (m->z == NULL) {
        return OMNI_OK;                 /* checked by omni_cmsg_parse() */
    }

    if (z->dctx == NULL) {
        z->dctx = ZSTD_createDCtx();

        if (z->dctx == NULL) {
            *err = "out of memory";
            return OMNI_ERROR;
        }
    }

    raw = (size_t) (m->to - m->from);
    n = ZSTD_decompressDCtx(z->dctx, out, raw, m->z, m->zlen);

    if (ZSTD_isError(n) || n != raw) {
        *err = "a damaged compressed run";
        m->damaged = 1;
        return OMNI_INVALID;
    }

    m->recs = out;

    return omni_cmsg_check(m, err);
}


int
omni_cmsg_start(const omni_cmsg_t *m, int known, uint64_t applied,
    uint64_t *start)
{
    uint64_t              pos;
    const unsigned char  *rec;

    *start = m->from;

    if (m->v1 || !known) {
        return OMNI_CMSG_APPLY;
    }

    if (m->to <= applied) {
        return OMNI_CMSG_DUP;
    }

    if (m->prev > applied) {
        return OMNI_CMSG_HOLE;
    }

    if (m->damaged || m->recs == NULL) {
        /* records not to be walked: the run is passed over anyway */
        *start = applied > m->from ? applied : m->from;
        return OMNI_CMSG_APPLY;
    }

    /* the first record at or after applied: a boundary of the zone's */
    pos = m->from;
    rec = m->recs;

    while (pos < applied) {
        pos += omni_cmsg_get32(rec);
        rec = m->recs + (pos - m->from);
    }

    if (pos != applied && applied > m->from) {
        /* applied ends inside a record: not this zone's positions */
        return OMNI_CMSG_HOLE;
    }

    *start = pos;

    return OMNI_CMSG_APPLY;
}
