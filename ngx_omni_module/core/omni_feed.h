/*
 * The touchpoint feed (docs/feed.md): the JSON record built for each
 * touch, and the line served for it by the omni_feed endpoint and
 * "omnictl tail" (same bytes from both).
 */

#ifndef OMNI_FEED_H
#define OMNI_FEED_H

#include "omni_update.h"

#define OMNI_FEED_MAX_PATH    512
#define OMNI_FEED_MAX_REF     512
#define OMNI_FEED_MAX_UTM     128

/*
 * The stored record for touch t of profile pid, compact JSON without
 * "seq" and "messageId" (added when served).  Returns malloc()ed bytes
 * (free()), length in *len, or NULL when out of memory.  Bytes that are
 * not valid UTF-8 are replaced with '?'.
 */
char *omni_feed_record(const omni_touch_t *t, const unsigned char *pid,
    size_t *len);

/*
 * One feed line: {"seq":N,"messageId":"tp-N",<the record's members>}\n.
 * Returns the line's length; writes it only when it fits in cap.
 */
size_t omni_feed_line(uint64_t seq, const void *data, size_t len, char *out,
    size_t cap);

#endif /* OMNI_FEED_H */
