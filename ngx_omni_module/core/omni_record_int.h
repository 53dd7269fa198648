/*
 * Private to the record codec (omni_record.c reads, omni_profile.c
 * writes, omni_splice.c splices): the fixed header offsets and limits of
 * the layout documented in omni_record.h.
 */

#ifndef OMNI_RECORD_INT_H
#define OMNI_RECORD_INT_H

#include "omni_record.h"

/* The shortest header any writer may produce: magic .. profile id. */
#define OMNI_REC_MIN_HDR      24
#define OMNI_REC_SECT_ENTRY   12
#define OMNI_REC_ITEM_MAX     0xffff
#define OMNI_BUCKET_COUNT_MAX 0xffff      /* bucket counts are u16 */

/* Fixed header offsets (omni_record.h). */
#define OMNI_OFF_MAGIC        0
#define OMNI_OFF_MAJOR        2
#define OMNI_OFF_MINOR        3
#define OMNI_OFF_HLEN         4
#define OMNI_OFF_NSECT        6
#define OMNI_OFF_ID           8
#define OMNI_OFF_CREATED      24
#define OMNI_OFF_UPDATED      28
#define OMNI_OFF_VISITS       32
#define OMNI_OFF_VISIT_LAST   36
#define OMNI_OFF_CONSENT      40
#define OMNI_OFF_STAGE        44
#define OMNI_OFF_FLAGS        45
#define OMNI_OFF_RESERVED1    46
#define OMNI_OFF_LAST_SEEN    48
#define OMNI_OFF_ORDERS       80
#define OMNI_OFF_RESERVED2    84
#define OMNI_OFF_REVENUE      88


/*
 * Encoder pieces the touch fast path (omni_splice.c) shares with
 * omni_profile_encode(), so that a spliced record is written alike.
 */
void omni_rec_put_header(unsigned char *d, const omni_profile_t *p,
    unsigned nsect);
void omni_impr_add_bucket(omni_impr_t *im, uint32_t hour, uint32_t count);
/* Room for one more element of size bytes in *arr (n in use). */
int omni_grow(void **arr, unsigned n, size_t size);

#endif /* OMNI_RECORD_INT_H */
