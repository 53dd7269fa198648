/*
 * Identity stitching: merging two profiles that turned out to be one
 * person (a web visitor who logs in, an app device linked to a known
 * customer).
 *
 * omni_profile_merge() merges src into dst in memory; dst keeps its id:
 *
 *   segments      unioned
 *   visits, orders, revenue
 *                 summed (u32 counters saturate).  They are lifetime
 *                 totals, not derived from the bounded histories, so a
 *                 purchase present in both histories is still counted
 *                 twice in orders and revenue
 *   impressions   per campaign: totals summed, last = the later, hour
 *                 buckets merged by hour and summed (u16 counts
 *                 saturate), the newest OMNI_MAX_BUCKETS kept; campaigns
 *                 of src only are added
 *   events        per name: counts summed, last = the later; names of
 *                 src only are added
 *   cart          the newer cart wins whole, by cart_updated (tie: dst)
 *   purchases     unioned; an entry of src with the order_id and sku of
 *                 one already kept is dropped.  The two histories are
 *                 interleaved by time, each keeping its own order
 *   views         unioned (an equal sku and time is one view), ordered
 *                 by time, newest last, the newest OMNI_MAX_VIEWS kept
 *   created       the earlier non-zero time
 *   updated, visit_last, last_seen[ch]
 *                 the later
 *   aliases       unioned.  Beyond OMNI_MAX_ALIASES the record keeps
 *                 customer and email ids before cookie and device ids,
 *                 dropping the oldest first (omni_wtxn_merge() still
 *                 points a dropped key at the kept profile)
 *   attributes    unioned; for a key both have, the value of the profile
 *                 updated later wins (tie: dst)
 *   consent       a stated choice (OMNI_CONSENT_SET) beats none; of two
 *                 stated choices, the later-updated profile's wins (tie:
 *                 dst)
 *   stage         re-derived (omni_derive_stage())
 *
 * The other bounds of omni_record.h are applied by the encoder as on
 * every write.  On an error (OMNI_ERROR: out of memory) dst is partially
 * merged but consistent: free it, do not store it.
 */

#ifndef OMNI_MERGE_H
#define OMNI_MERGE_H

#include "omni_store.h"

int omni_profile_merge(omni_profile_t *dst, const omni_profile_t *src);

/*
 * Which of two profiles to keep: 0 for a, 1 for b.  The one holding a
 * customer alias (OMNI_ALIAS_CUSTOMER); if both or neither, the one
 * created earlier (a created time of 0, unknown, counts as the latest);
 * then the lower id (memcmp).  It depends on nothing but the two
 * profiles and is symmetric, so concurrent writers that read the same
 * two records always agree.
 */
int omni_merge_pick(const omni_profile_t *a, const omni_profile_t *b);

/*
 * Merges profile `gone` into profile `keep` inside the caller's write
 * transaction:
 *
 *   - keep == gone, or no record of gone (merged already): OMNI_OK,
 *     nothing changes, so a repeated or concurrent merge is harmless;
 *   - no record of keep: it is created (created = now) first;
 *   - gone's profile is merged into keep's (omni_profile_merge());
 *   - every alias key of gone points at keep afterwards: those listed in
 *     gone's record, and, when that record is at OMNI_MAX_ALIASES (it may
 *     have dropped older keys), every key found pointing at gone by a
 *     scan of the aliases database;
 *   - the merge is recorded (omni_wtxn_record_merge()): forget of keep
 *     then deletes gone's touchpoints too, and those of any profile
 *     merged into gone before; the touchpoints themselves are not
 *     rewritten (the feed keeps their original profileId);
 *   - gone's record is deleted and keep's written.
 *
 * Any error is returned as is, with the transaction half done: the
 * caller must abort it.
 */
int omni_wtxn_merge(omni_wtxn_t *w, const unsigned char *keep,
    const unsigned char *gone, uint32_t now);

#endif /* OMNI_MERGE_H */
