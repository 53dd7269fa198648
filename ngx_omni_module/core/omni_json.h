/*
 * Profile <-> JSON, for import, export, omnictl and the admin API only.
 * The request path never parses JSON.
 *
 * The JSON shape (every key optional on input except "id"):
 *
 *   {
 *     "id": "32 hex digits or a UUID",
 *     "created": 1700000000, "updated": ..., "visits": 3,
 *     "visit_last": ..., "stage": "new|browsing|cart|customer|loyal",
 *     "consent": {"analytics": true, "personalize": true, "ads": false,
 *                 "email": true, "sms": false},
 *     "last_seen": {"web": 1700000000, "app": ..., "pos": ...},
 *     "orders": 2, "revenue": 199.5,
 *     "aliases": [{"type": "cookie|device|customer|email", "id": "..."}],
 *     "segments": ["vip", ...],
 *     "attributes": {"first_name": "Ana", "points": 120},
 *     "cart": {"updated_at": ..., "items": [{"sku": "...", "name": "...",
 *              "category": "...", "qty": 1, "price": 9.5, "url": "...",
 *              "image": "..."}]},
 *     "purchases": [{"sku": "...", "order_id": "...", "channel": "pos",
 *                    "time": ..., "category": "...", "price": 1.0,
 *                    "qty": 1}],
 *     "impressions": [{"campaign": "...", "total": 3, "last": ...,
 *                      "buckets": [[hour, count], ...]}],
 *     "views": [{"sku": "...", "category": "...", "time": ..., "price": 1}],
 *     "events": [{"name": "...", "count": 1, "last": ...}]
 *   }
 *
 * Input is strict: an unknown key or a wrong type is an error that names
 * the field path (for example "cart.items[2].qty: expected an integer").
 */

#ifndef OMNI_JSON_H
#define OMNI_JSON_H

#include <jansson.h>
#include "omni_record.h"

/* Returns a new reference. */
json_t *omni_profile_to_json(const omni_profile_t *p);

/* json_string(s), or s with every non-ASCII byte as '?' when it is not
   valid UTF-8 (NULL: ""); NULL only when out of memory. */
json_t *omni_json_string(const char *s);

/*
 * Fills p (already omni_profile_init()ed) from obj.  On error returns
 * OMNI_INVALID and writes "field: reason" into err.
 */
int omni_profile_from_json(omni_profile_t *p, json_t *obj, char *err,
    size_t errlen);

#endif /* OMNI_JSON_H */
