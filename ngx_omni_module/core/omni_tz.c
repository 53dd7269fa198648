/*
 * Time zones (TZif + POSIX TZ rules), dates and durations: omni_tz.h.
 * Load-time only, except omni_tz_offset().
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "omni_tz.h"


#define OMNI_TZIF_MAX       (256 * 1024)
#define OMNI_TZ_DURATION_MAX  (10u * 366 * 86400)

/* One POSIX TZ rule date: Jn, n or Mm.w.d, and the local time of day. */
typedef struct {
    char        kind;           /* 'J', 'N' or 'M' */
    int         day, week, month;
    int32_t     time;
} omni_tzrule_t;

typedef struct {
    int32_t         std, dst;   /* seconds east of UTC */
    int             has_dst;
    omni_tzrule_t   start, end;
} omni_posix_tz_t;

typedef struct {
    int64_t    *at;
    int32_t    *off;            /* off[i]: from at[i] on */
    uint32_t    n, cap;
    int32_t     first;          /* before at[0] */
} omni_trans_t;


static int omni_tz_fixed(const char *s, size_t len, int32_t *off);
static int omni_tzif_load(const char *path, omni_trans_t *tr, char *err,
    size_t errlen);
static int omni_posix_parse(const char *s, omni_posix_tz_t *p);
static int omni_trans_add(omni_trans_t *tr, int64_t at, int32_t off);
static int64_t omni_rule_instant(const omni_tzrule_t *r, int64_t year);


int64_t
omni_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t   era;
    unsigned  yoe, doy, doe;

    /* Howard Hinnant's days_from_civil */
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned) (y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + (int64_t) doe - 719468;
}


static int
omni_is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}


static unsigned
omni_month_days(int64_t y, unsigned m)
{
    static const unsigned  days[12] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    return m == 2 && omni_is_leap(y) ? 29 : days[m - 1];
}


/* Year of a UTC instant (Howard Hinnant's civil_from_days). */
static int64_t
omni_year_of(int64_t t)
{
    int64_t  z, era, doe, yoe, doy, mp;

    z = (t >= 0 ? t / 86400 : (t - 86399) / 86400) + 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;

    return yoe + era * 400 + (mp >= 10);
}


/* ---- loading ---- */

static int
omni_tz_fixed(const char *s, size_t len, int32_t *off)
{
    int       sign, h, m;
    size_t    i;

    if ((len == 3 && (strncmp(s, "UTC", 3) == 0 || strncmp(s, "GMT", 3)
                      == 0))
        || (len == 1 && s[0] == 'Z'))
    {
        *off = 0;
        return 1;
    }

    if (len < 3 || (s[0] != '+' && s[0] != '-')) {
        return 0;
    }

    sign = s[0] == '-' ? -1 : 1;

    for (i = 1; i < len; i++) {
        if (!(s[i] >= '0' && s[i] <= '9') && !(i == 3 && s[i] == ':')) {
            return -1;
        }
    }

    if (len == 3) {
        h = (s[1] - '0') * 10 + (s[2] - '0');
        m = 0;

    } else if (len == 6 && s[3] == ':') {
        h = (s[1] - '0') * 10 + (s[2] - '0');
        m = (s[4] - '0') * 10 + (s[5] - '0');

    } else if (len == 5) {
        h = (s[1] - '0') * 10 + (s[2] - '0');
        m = (s[3] - '0') * 10 + (s[4] - '0');

    } else {
        return -1;
    }

    if (h > 14 || m > 59) {
        return -1;
    }

    *off = sign * (h * 3600 + m * 60);

    return 1;
}


int
omni_tz_load(const char *name, size_t len, omni_tz_t *tz,
    omni_tz_alloc_pt alloc, void *pool, char *err, size_t errlen)
{
    int           rc;
    int32_t       off;
    size_t        i;
    char          path[512], zone[65];
    const char   *dir;
    int64_t      *at;
    int32_t      *offs;
    omni_trans_t  tr;

    memset(tz, 0, sizeof(omni_tz_t));

    rc = omni_tz_fixed(name, len, &off);

    if (rc == 1) {
        tz->fixed = off;
        return 0;
    }

    if (rc < 0) {
        snprintf(err, errlen, "invalid UTC offset (use \"+HH:MM\")");
        return -1;
    }

    /* an IANA name: letters, digits, '_', '-', '+', '/' (no "..") */
    if (len == 0 || len >= sizeof(zone) || name[0] == '/') {
        snprintf(err, errlen, "invalid time zone name");
        return -1;
    }

    for (i = 0; i < len; i++) {
        char  c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '+'
              || c == '/' || (c == '.' && i > 0 && name[i - 1] != '.'
                              && name[i - 1] != '/')))
        {
            snprintf(err, errlen, "invalid time zone name");
            return -1;
        }
    }

    memcpy(zone, name, len);
    zone[len] = '\0';

    dir = getenv("TZDIR");
    if (dir == NULL || dir[0] == '\0') {
        dir = "/usr/share/zoneinfo";
    }

    if ((size_t) snprintf(path, sizeof(path), "%s/%s", dir, zone)
        >= sizeof(path))
    {
        snprintf(err, errlen, "time zone path too long");
        return -1;
    }

    memset(&tr, 0, sizeof(omni_trans_t));

    if (omni_tzif_load(path, &tr, err, errlen) != 0) {
        free(tr.at);
        free(tr.off);
        return -1;
    }

    at = alloc(pool, (tr.n ? tr.n : 1) * sizeof(int64_t));
    offs = alloc(pool, (tr.n + 1) * sizeof(int32_t));

    if (at == NULL || offs == NULL) {
        free(tr.at);
        free(tr.off);
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    offs[0] = tr.first;

    for (i = 0; i < tr.n; i++) {
        at[i] = tr.at[i];
        offs[i + 1] = tr.off[i];
    }

    tz->n = tr.n;
    tz->at = at;
    tz->off = offs;
    tz->fixed = tr.first;

    free(tr.at);
    free(tr.off);

    return 0;
}


static int
omni_trans_add(omni_trans_t *tr, int64_t at, int32_t off)
{
    uint32_t   ncap;
    int64_t   *a;
    int32_t   *o;

    if (tr->n >= OMNI_TZ_MAX_TRANS) {
        return -1;
    }

    if (tr->n == tr->cap) {
        ncap = tr->cap ? tr->cap * 2 : 64;

        a = realloc(tr->at, ncap * sizeof(int64_t));
        if (a == NULL) {
            return -1;
        }

        tr->at = a;

        o = realloc(tr->off, ncap * sizeof(int32_t));
        if (o == NULL) {
            return -1;
        }

        tr->off = o;
        tr->cap = ncap;
    }

    /* drop no-op transitions and keep the table ascending */
    if (tr->n > 0 && at <= tr->at[tr->n - 1]) {
        return 0;
    }

    if ((tr->n > 0 && tr->off[tr->n - 1] == off)
        || (tr->n == 0 && tr->first == off))
    {
        return 0;
    }

    tr->at[tr->n] = at;
    tr->off[tr->n] = off;
    tr->n++;

    return 0;
}


static uint32_t
omni_be32(const unsigned char *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16
           | (uint32_t) p[2] << 8 | p[3];
}


static int64_t
omni_be64(const unsigned char *p)
{
    return (int64_t) ((uint64_t) omni_be32(p) << 32 | omni_be32(p + 4));
}


/*
 * RFC 8536.  Uses the 64-bit (version 2+) data when present, then the
 * footer's POSIX rule for the years after the last transition.
 */
static int
omni_tzif_load(const char *path, omni_trans_t *tr, char *err, size_t errlen)
{
    int                   fd;
    ssize_t               r;
    size_t                n, off, tsz, i, body;
    uint32_t              isut, isstd, leap, timecnt, typecnt, charcnt;
    int64_t               t, year, last, y;
    unsigned char        *d;
    const unsigned char  *types, *ttinfo, *foot;
    char                  footer[128];
    omni_posix_tz_t       px;
    struct stat           st;

    fd = open(path, O_RDONLY);
    if (fd == -1) {
        snprintf(err, errlen, "unknown time zone (%s)", strerror(errno));
        return -1;
    }

    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 44
        || st.st_size > OMNI_TZIF_MAX)
    {
        close(fd);
        snprintf(err, errlen, "unknown time zone (not a TZif file)");
        return -1;
    }

    n = (size_t) st.st_size;
    d = malloc(n);
    if (d == NULL) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    for (off = 0; off < n; off += (size_t) r) {
        r = read(fd, d + off, n - off);
        if (r <= 0) {
            break;
        }
    }

    close(fd);

    if (off != n || memcmp(d, "TZif", 4) != 0) {
        goto bad;
    }

    tsz = 4;
    off = 0;

    /* version 2+: skip the 32-bit block to the 64-bit one */
    if (d[4] >= '2') {
        isut = omni_be32(d + 20);
        isstd = omni_be32(d + 24);
        leap = omni_be32(d + 28);
        timecnt = omni_be32(d + 32);
        typecnt = omni_be32(d + 36);
        charcnt = omni_be32(d + 40);

        body = (size_t) timecnt * 5 + (size_t) typecnt * 6 + charcnt
               + (size_t) leap * 8 + isstd + isut;

        if (44 + body + 44 > n) {
            goto bad;
        }

        off = 44 + body;

        if (memcmp(d + off, "TZif", 4) != 0) {
            goto bad;
        }

        tsz = 8;
    }

    isut = omni_be32(d + off + 20);
    isstd = omni_be32(d + off + 24);
    leap = omni_be32(d + off + 28);
    timecnt = omni_be32(d + off + 32);
    typecnt = omni_be32(d + off + 36);
    charcnt = omni_be32(d + off + 40);

    if (typecnt == 0 || typecnt > 256 || timecnt > 100000) {
        goto bad;
    }

    body = (size_t) timecnt * (tsz + 1) + (size_t) typecnt * 6 + charcnt
           + (size_t) leap * (tsz + 4) + isstd + isut;

    if (off + 44 + body > n) {
        goto bad;
    }

    off += 44;
    types = d + off + (size_t) timecnt * tsz;
    ttinfo = types + timecnt;

    tr->first = (int32_t) omni_be32(ttinfo);
    last = INT64_MIN;

    for (i = 0; i < timecnt; i++) {
        t = tsz == 8 ? omni_be64(d + off + i * 8)
                     : (int64_t) (int32_t) omni_be32(d + off + i * 4);

        if (types[i] >= typecnt) {
            goto bad;
        }

        if (omni_trans_add(tr, t, (int32_t) omni_be32(ttinfo
                                                       + types[i] * 6))
            != 0)
        {
            goto nomem;
        }

        last = t;
    }

    /* the footer: "\nTZ\n" after the 64-bit block */
    foot = d + off + body;

    if (tsz == 8 && foot < d + n && foot[0] == '\n') {
        for (i = 1; foot + i < d + n && foot[i] != '\n'; i++) {
            if (i >= sizeof(footer)) {
                goto bad;
            }

            footer[i - 1] = (char) foot[i];
        }

        footer[i - 1] = '\0';

        if (footer[0] != '\0') {
            if (omni_posix_parse(footer, &px) != 0) {
                goto bad;
            }

            if (!px.has_dst) {
                if (omni_trans_add(tr, last == INT64_MIN ? INT64_MIN + 1
                                                         : last + 1,
                                   px.std) != 0)
                {
                    goto nomem;
                }

            } else {
                year = last == INT64_MIN ? 1970 : omni_year_of(last);

                for (y = year; y <= OMNI_TZ_LAST_YEAR; y++) {
                    int64_t  s = omni_rule_instant(&px.start, y) - px.std;
                    int64_t  e = omni_rule_instant(&px.end, y) - px.dst;
                    int64_t  a1 = s < e ? s : e, a2 = s < e ? e : s;
                    int32_t  o1 = s < e ? px.dst : px.std;
                    int32_t  o2 = s < e ? px.std : px.dst;

                    if (a1 > last && omni_trans_add(tr, a1, o1) != 0) {
                        goto nomem;
                    }

                    if (a2 > last && omni_trans_add(tr, a2, o2) != 0) {
                        goto nomem;
                    }
                }
            }
        }
    }

    free(d);
    return 0;

bad:
    free(d);
    snprintf(err, errlen, "unknown time zone (damaged TZif file)");
    return -1;

nomem:
    free(d);
    snprintf(err, errlen, "time zone table too large");
    return -1;
}


/* [+-]hh[:mm[:ss]]; returns the bytes read, 0 when invalid. */
static size_t
omni_posix_hms(const char *s, int32_t *out)
{
    size_t   i;
    int32_t  sign, v[3];
    int      k;

    i = 0;
    sign = 1;

    if (s[i] == '+' || s[i] == '-') {
        sign = s[i] == '-' ? -1 : 1;
        i++;
    }

    for (k = 0; k < 3; k++) {
        v[k] = 0;

        if (!(s[i] >= '0' && s[i] <= '9')) {
            if (k == 0) {
                return 0;
            }

            break;
        }

        while (s[i] >= '0' && s[i] <= '9') {
            v[k] = v[k] * 10 + (s[i] - '0');
            if (v[k] > 1000) {
                return 0;
            }
            i++;
        }

        if (s[i] != ':' || k == 2) {
            k++;
            break;
        }

        i++;
    }

    for (; k < 3; k++) {
        v[k] = 0;
    }

    *out = sign * (v[0] * 3600 + v[1] * 60 + v[2]);

    return i;
}


static size_t
omni_posix_name(const char *s)
{
    size_t  i;

    if (s[0] == '<') {
        for (i = 1; s[i] && s[i] != '>'; i++) {
            /* quoted name */
        }

        return s[i] == '>' ? i + 1 : 0;
    }

    for (i = 0; (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z');
         i++)
    {
        /* alphabetic name */
    }

    return i >= 3 ? i : 0;
}


static size_t
omni_posix_date(const char *s, omni_tzrule_t *r)
{
    size_t   i;
    int32_t  t;
    char    *end;
    long     a, b, c;

    i = 0;

    if (s[0] == 'M') {
        a = strtol(s + 1, &end, 10);
        if (*end != '.') {
            return 0;
        }

        b = strtol(end + 1, &end, 10);
        if (*end != '.') {
            return 0;
        }

        c = strtol(end + 1, &end, 10);

        if (a < 1 || a > 12 || b < 1 || b > 5 || c < 0 || c > 6) {
            return 0;
        }

        r->kind = 'M';
        r->month = (int) a;
        r->week = (int) b;
        r->day = (int) c;

    } else if (s[0] == 'J') {
        a = strtol(s + 1, &end, 10);
        if (a < 1 || a > 365 || end == s + 1) {
            return 0;
        }

        r->kind = 'J';
        r->day = (int) a;

    } else {
        a = strtol(s, &end, 10);
        if (a < 0 || a > 365 || end == s) {
            return 0;
        }

        r->kind = 'N';
        r->day = (int) a;
    }

    i = (size_t) (end - s);
    r->time = 7200;

    if (s[i] == '/') {
        size_t  k = omni_posix_hms(s + i + 1, &t);

        if (k == 0) {
            return 0;
        }

        r->time = t;
        i += 1 + k;
    }

    return i;
}


/* "CET-1CEST,M3.5.0,M10.5.0/3", "<+03>-3", "EST5EDT,M3.2.0,M11.1.0" */
static int
omni_posix_parse(const char *s, omni_posix_tz_t *p)
{
    size_t   i, k;
    int32_t  v;

    memset(p, 0, sizeof(omni_posix_tz_t));

    i = omni_posix_name(s);
    if (i == 0) {
        return -1;
    }

    k = omni_posix_hms(s + i, &v);
    if (k == 0) {
        return -1;
    }

    p->std = -v;
    i += k;

    if (s[i] == '\0') {
        return 0;
    }

    k = omni_posix_name(s + i);
    if (k == 0) {
        return -1;
    }

    i += k;
    p->has_dst = 1;
    p->dst = p->std + 3600;

    if (s[i] != ',' && s[i] != '\0') {
        k = omni_posix_hms(s + i, &v);
        if (k == 0) {
            return -1;
        }

        p->dst = -v;
        i += k;
    }

    if (s[i] != ',') {
        /* no rule: the US rules are POSIX's default, refuse instead */
        return -1;
    }

    k = omni_posix_date(s + i + 1, &p->start);
    if (k == 0) {
        return -1;
    }

    i += 1 + k;

    if (s[i] != ',') {
        return -1;
    }

    k = omni_posix_date(s + i + 1, &p->end);
    if (k == 0 || s[i + 1 + k] != '\0') {
        return -1;
    }

    return 0;
}


/* Local wall-clock instant (seconds) of a rule date in a year. */
static int64_t
omni_rule_instant(const omni_tzrule_t *r, int64_t year)
{
    int64_t   days, first;
    int       wday, mday;

    switch (r->kind) {

    case 'J':
        days = omni_days_from_civil(year, 1, 1) + r->day - 1;
        if (omni_is_leap(year) && r->day >= 60) {
            days++;
        }
        break;

    case 'N':
        days = omni_days_from_civil(year, 1, 1) + r->day;
        break;

    default:
        first = omni_days_from_civil(year, (unsigned) r->month, 1);
        wday = (int) (((first % 7) + 11) % 7);     /* 1970-01-01: Thu */
        mday = 1 + (r->day - wday + 7) % 7 + (r->week - 1) * 7;

        while (mday > (int) omni_month_days(year, (unsigned) r->month)) {
            mday -= 7;
        }

        days = first + mday - 1;
        break;
    }

    return days * 86400 + r->time;
}


/* ---- lookups ---- */

int32_t
omni_tz_offset(const omni_tz_t *tz, int64_t t)
{
    uint32_t  lo, hi, mid;

    if (tz == NULL) {
        return 0;
    }

    if (tz->n == 0) {
        return tz->fixed;
    }

    /* the number of transitions at or before t */
    lo = 0;
    hi = tz->n;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        if (tz->at[mid] <= t) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    return tz->off[lo];
}


int64_t
omni_tz_to_utc(const omni_tz_t *tz, int64_t local)
{
    int64_t  t;

    t = local - omni_tz_offset(tz, local);
    t = local - omni_tz_offset(tz, t);

    return t;
}


/* ---- parsing ---- */

static int
omni_digits(const char *s, size_t n, int *out)
{
    size_t  i;
    int     v;

    v = 0;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        v = v * 10 + (s[i] - '0');
    }

    *out = v;

    return 0;
}


int
omni_date_parse(const char *s, size_t len, const omni_tz_t *tz,
    int end_of_day, int64_t *out)
{
    int       y, mo, d, h, mi, se;
    int32_t   off;
    int64_t   t;
    size_t    i;
    int       has_off;

    if (len < 10 || s[4] != '-' || s[7] != '-'
        || omni_digits(s, 4, &y) != 0 || omni_digits(s + 5, 2, &mo) != 0
        || omni_digits(s + 8, 2, &d) != 0)
    {
        return -1;
    }

    if (y < 1970 || y > 2105 || mo < 1 || mo > 12 || d < 1
        || d > (int) omni_month_days(y, (unsigned) mo))
    {
        return -1;
    }

    h = mi = se = 0;
    has_off = 0;
    off = 0;
    i = 10;

    if (len > 10) {
        end_of_day = 0;

        if ((s[10] != 'T' && s[10] != ' ') || len < 16 || s[13] != ':'
            || omni_digits(s + 11, 2, &h) != 0
            || omni_digits(s + 14, 2, &mi) != 0)
        {
            return -1;
        }

        i = 16;

        if (i < len && s[i] == ':') {
            if (len < 19 || omni_digits(s + 17, 2, &se) != 0) {
                return -1;
            }

            i = 19;
        }

        if (h > 24 || mi > 59 || se > 60 || (h == 24 && (mi || se))) {
            return -1;
        }

        if (i < len) {
            if (omni_tz_fixed(s + i, len - i, &off) != 1) {
                return -1;
            }

            has_off = 1;
        }
    }

    t = omni_days_from_civil(y, (unsigned) mo, (unsigned) d) * 86400
        + h * 3600 + mi * 60 + se;

    if (end_of_day) {
        t += 86400;
    }

    *out = has_off ? t - off : omni_tz_to_utc(tz, t);

    return 0;
}


int
omni_duration_parse(const char *s, size_t len, uint32_t *out)
{
    size_t    i;
    uint64_t  total, v, unit;
    int       digits;

    if (len == 0) {
        return -1;
    }

    total = 0;
    i = 0;

    while (i < len) {
        v = 0;
        digits = 0;

        while (i < len && s[i] >= '0' && s[i] <= '9') {
            v = v * 10 + (uint64_t) (s[i] - '0');
            if (v > OMNI_TZ_DURATION_MAX) {
                return -1;
            }

            digits++;
            i++;
        }

        if (digits == 0 || i >= len) {
            return -1;
        }

        switch (s[i]) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        case 'w': unit = 7 * 86400; break;
        default: return -1;
        }

        i++;
        total += v * unit;

        if (total > OMNI_TZ_DURATION_MAX) {
            return -1;
        }
    }

    *out = (uint32_t) total;

    return 0;
}


int
omni_clock_parse(const char *s, size_t len, uint32_t *out)
{
    int  h, m;

    if (len != 5 || s[2] != ':' || omni_digits(s, 2, &h) != 0
        || omni_digits(s + 3, 2, &m) != 0 || h > 24 || m > 59
        || (h == 24 && m != 0))
    {
        return -1;
    }

    *out = (uint32_t) (h * 3600 + m * 60);

    return 0;
}


void
omni_duration_format(uint32_t secs, char *buf, size_t cap)
{
    uint32_t  d, h, m, s;

    d = secs / 86400;
    h = secs % 86400 / 3600;
    m = secs % 3600 / 60;
    s = secs % 60;

    if (d && !h && !m && !s) {
        snprintf(buf, cap, "%ud", d);

    } else if (d) {
        snprintf(buf, cap, "%ud%uh", d, h);

    } else if (h && m) {
        snprintf(buf, cap, "%uh%um", h, m);

    } else if (h) {
        snprintf(buf, cap, "%uh", h);

    } else if (m && s) {
        snprintf(buf, cap, "%um%us", m, s);

    } else if (m) {
        snprintf(buf, cap, "%um", m);

    } else {
        snprintf(buf, cap, "%us", s);
    }
}
