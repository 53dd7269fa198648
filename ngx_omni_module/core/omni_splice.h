/*
 * The touch fast path: a profile record updated by splicing instead of
 * decoding it into omni_profile_t and encoding it again.
 *
 * A touch (omni_update.h) changes only fixed header fields and, when the
 * response showed campaigns, the IMPRESSIONS section.  So the new record
 * is the header written again, every other section's bytes copied as
 * they are, and the IMPRESSIONS section re-encoded from its items: the
 * untouched ones copied, the touched ones (and new ones) encoded with the
 * rules of omni_profile_encode().
 *
 * That gives exactly the bytes of the full path, encode(change(decode(
 * record))), when the stored record is canonical: the very bytes the
 * encoder writes for the profile it decodes to, so that decoding and
 * encoding an unchanged section gives it back.  omni_splice_open()
 * checks that, completely, without allocating:
 *
 *   - header: major OMNI_REC_MAJOR and minor OMNI_REC_MINOR, header
 *     length OMNI_REC_HDR_LEN, flags and reserved fields zero;
 *   - section table: known types only, in increasing type order, each
 *     section right after the table or the section before it, the last
 *     one ending the record, each count the number of its items;
 *   - sections: none empty, no cart of its header alone with a zero
 *     updated_at (the encoder leaves both out), each within the bound
 *     (OMNI_MAX_*) the encoder applies;
 *   - items: every field the decoder reads, in order, and nothing after
 *     them; strings at most OMNI_MAX_STR bytes without NUL (the decoder
 *     makes C strings of them, the encoder truncates longer ones), known
 *     attribute types, no NaN doubles (copied as bytes here, through a
 *     double there), impression buckets at most OMNI_MAX_BUCKETS, hours
 *     strictly increasing, counts not zero (what the decoder's bucket
 *     insertion leaves unchanged).
 *
 * Anything else (a record of another minor or writer, damaged, beyond a
 * bound) is left to the full path.  The differential tests (t/unit/
 * test_splice.c) hold both paths to the same bytes.
 */

#ifndef OMNI_SPLICE_H
#define OMNI_SPLICE_H

#include "omni_record.h"

/* One campaign of the IMPRESSIONS section being spliced. */
typedef struct {
    const unsigned char  *name;         /* in the record or the touch */
    size_t                len;
    const unsigned char  *raw;          /* the stored item (its length
                                           prefix included), copied as it
                                           is; NULL once changed */
    size_t                raw_len;
    omni_impr_t           im;           /* total and last; the buckets
                                           too once changed (campaign is
                                           unused) */
} omni_splice_impr_t;

typedef struct {
    const omni_rec_t     *rec;
    unsigned              nsect;
    unsigned              ncart;        /* cart lines */
    unsigned              nviews;

    /* the impressions, indexed at the first omni_splice_impression() */
    unsigned              indexed:1;
    unsigned              changed:1;
    unsigned              nimpr;
    omni_splice_impr_t    impr[OMNI_MAX_IMPRESSIONS];

    /* the output, reused from record to record */
    unsigned char        *buf;
    size_t                cap;
} omni_splice_t;

void omni_splice_init(omni_splice_t *s);
void omni_splice_free(omni_splice_t *s);

/*
 * Starts splicing rec, as omni_rec_parse() left it (its bytes must stay
 * valid until the record is built): 1 when rec is canonical (see above),
 * 0 when the full path must take it.
 */
int omni_splice_open(omni_splice_t *s, const omni_rec_t *rec);

/* The header fields of rec, as omni_profile_from_rec() sets them. */
void omni_splice_header(const omni_splice_t *s, omni_profile_t *hdr);

/* Whether the profile lists alias (kind, value). */
int omni_splice_has_alias(const omni_splice_t *s, unsigned kind,
    const char *value, size_t len);

/*
 * omni_profile_add_impression() on the IMPRESSIONS section: campaign is
 * 1 to OMNI_MAX_STR bytes without NUL (else OMNI_INVALID) and must stay
 * valid until the record is built.
 */
int omni_splice_impression(omni_splice_t *s, const char *campaign,
    size_t len, uint32_t now);

/*
 * The new record: hdr's header fields (as omni_profile_encode() writes
 * them), rec's other sections and the impressions.  *out stays valid
 * until the next build or omni_splice_free().  OMNI_ERROR: no memory.
 */
int omni_splice_build(omni_splice_t *s, const omni_profile_t *hdr,
    const unsigned char **out, size_t *len);

#endif /* OMNI_SPLICE_H */
