/*
 * Resumable HTML marker scanner for the injection body filter.
 *
 * It finds, in a byte stream fed in arbitrary pieces (1-byte buffers
 * included), the two places where the module injects:
 *
 *   <!--omni:slot NAME-->     a named banner slot (NAME: [A-Za-z0-9_.-],
 *                             1..64 bytes; spaces allowed before "-->")
 *   </body>                   case-insensitive; pixels and fallback
 *                             banners go right before it (first one only)
 *
 * A marker split across pieces is held back in the scanner (at most
 * OMNI_SCAN_HOLD bytes) until it is known to be a marker or not, so the
 * caller never has to buffer the body.  Everything that is not a marker
 * comes back as literal spans, byte-identical to the input.
 */

#ifndef OMNI_SCAN_H
#define OMNI_SCAN_H

#include <stddef.h>

#define OMNI_SCAN_NAME_MAX   64
#define OMNI_SCAN_HOLD       (sizeof("<!--omni:slot ") - 1                \
                              + OMNI_SCAN_NAME_MAX + 16 + 3)

typedef enum {
    OMNI_SCAN_NEED_MORE = 0,    /* input used up, nothing to report */
    OMNI_SCAN_LITERAL,          /* pass span through unchanged */
    OMNI_SCAN_SLOT,             /* a slot marker: name in ev->name */
    OMNI_SCAN_BODY_END          /* "</body>": span holds its bytes */
} omni_scan_type_e;

typedef struct {
    omni_scan_type_e      type;
    const unsigned char  *data;     /* LITERAL, SLOT (marker), BODY_END */
    size_t                len;
    /* data points into the caller's input, or into the scanner's own
       hold buffer (from_hold = 1): valid until the next call. */
    unsigned              from_hold;
    char                  name[OMNI_SCAN_NAME_MAX + 1];
    size_t                name_len;
} omni_scan_event_t;

typedef struct {
    unsigned              state;
    unsigned              body_seen;
    size_t                nhold;
    size_t                name_len;
    size_t                mi;         /* matcher position in its part */
    size_t                spaces;
    unsigned char         hold[OMNI_SCAN_HOLD + 8];
    unsigned char         tmp[OMNI_SCAN_HOLD + 8];
    char                  name[OMNI_SCAN_NAME_MAX + 1];
} omni_scan_t;

void omni_scan_init(omni_scan_t *s);

/*
 * Scans input [*pos, end).  Returns one event and advances *pos past what
 * it consumed.  Call again until OMNI_SCAN_NEED_MORE, then feed the next
 * piece.  At the end of the stream call omni_scan_finish() to get back
 * any held bytes (a partial marker at EOF is literal text).
 */
omni_scan_type_e omni_scan_next(omni_scan_t *s, const unsigned char **pos,
    const unsigned char *end, omni_scan_event_t *ev);

/* Held bytes at end of stream, as a LITERAL (len 0 when none). */
void omni_scan_finish(omni_scan_t *s, omni_scan_event_t *ev);

#endif /* OMNI_SCAN_H */
