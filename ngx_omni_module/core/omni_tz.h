/*
 * Time zones, dates and durations for the rules compiler.
 *
 * A zone is resolved once, at rule load, into a table of UTC offset
 * transitions: a fixed offset ("UTC", "+01:00", "-05:30") has none, a
 * named zone ("Europe/Paris") is read from the system tzdata (TZif files
 * under $TZDIR or /usr/share/zoneinfo) and its POSIX footer rule is
 * expanded up to the year 2100.  At request time a lookup is a binary
 * search over at most a few hundred entries: no file access, no
 * localtime(), no dependence on the process TZ.  A tzdata update is seen
 * at the next rules reload.
 */

#ifndef OMNI_TZ_H
#define OMNI_TZ_H

#include <stddef.h>
#include <stdint.h>


#define OMNI_TZ_LAST_YEAR   2100
#define OMNI_TZ_MAX_TRANS   2048

typedef struct {
    int32_t          fixed;     /* the offset when n == 0 */
    uint32_t         n;         /* transitions */
    const int64_t   *at;        /* n UTC instants, ascending */
    const int32_t   *off;       /* n + 1 offsets: off[0] before at[0],
                                   off[i + 1] from at[i] on */
} omni_tz_t;

typedef void *(*omni_tz_alloc_pt)(void *pool, size_t size);

/*
 * "UTC", "Z", "GMT", "+HH:MM", "-HH:MM", "+HH" or an IANA name.  On error
 * returns -1 and writes a message to err.
 */
int omni_tz_load(const char *name, size_t len, omni_tz_t *tz,
    omni_tz_alloc_pt alloc, void *pool, char *err, size_t errlen);

/* Seconds east of UTC in effect at UTC instant t. */
int32_t omni_tz_offset(const omni_tz_t *tz, int64_t t);

/* Local wall-clock seconds since the epoch to UTC (the first match when
   a wall-clock time occurs twice; a skipped one moves forward). */
int64_t omni_tz_to_utc(const omni_tz_t *tz, int64_t local);

/*
 * "2024-12-01", "2024-12-01T09:30", "2024-12-01T09:30:00Z",
 * "2024-12-01T09:30:00+01:00" ("T" or a space).  Without an explicit
 * offset the time is local to tz.  A date alone is its 00:00, or with
 * end_of_day the next day's 00:00 (so "end": "2024-12-31" includes the
 * 31st).  Returns 0 or -1.
 */
int omni_date_parse(const char *s, size_t len, const omni_tz_t *tz,
    int end_of_day, int64_t *out);

/* "90s", "15m", "1h", "1h30m", "7d", "2w"; at most 10 years.  0 or -1. */
int omni_duration_parse(const char *s, size_t len, uint32_t *out);

/* "HH:MM" (00:00 .. 24:00) to seconds of the day.  0 or -1. */
int omni_clock_parse(const char *s, size_t len, uint32_t *out);

/* Days since 1970-01-01 of a proleptic Gregorian date. */
int64_t omni_days_from_civil(int64_t y, unsigned m, unsigned d);

/* Formats a duration compactly ("1h20m", "3d", "45s"). */
void omni_duration_format(uint32_t secs, char *buf, size_t cap);

#endif /* OMNI_TZ_H */
