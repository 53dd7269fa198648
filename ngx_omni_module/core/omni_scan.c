/*
 * Resumable HTML marker scanner; see omni_scan.h.
 *
 * The scanner hands back the longest literal runs it can, straight from
 * the caller's input: a '<' that does not start a marker stays inside the
 * run, so a page with hundreds of tags still comes back as one span per
 * input buffer plus one per marker.  Only a marker cut by the end of an
 * input piece is copied into the hold buffer.
 */

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "omni_scan.h"

#define OMNI_SCAN_IDLE        0
#define OMNI_SCAN_PREFIX      1     /* matching "<!--omni:slot " */
#define OMNI_SCAN_NAME        2
#define OMNI_SCAN_TAIL        3     /* spaces, then "-->" */
#define OMNI_SCAN_BODY        4     /* matching "</body>" */

#define OMNI_SCAN_MAX_SPACES  16

/* Outcome of feeding one byte to the matcher. */
#define OMNI_STEP_MORE        0
#define OMNI_STEP_MISMATCH    1
#define OMNI_STEP_SLOT        2
#define OMNI_STEP_BODY        3

static const char  omni_slot_prefix[] = "<!--omni:slot ";
static const char  omni_body_end[] = "</body>";


typedef struct {
    unsigned   state;
    size_t     i;               /* bytes matched in the current part */
    size_t     name_len;
    size_t     spaces;
    char       name[OMNI_SCAN_NAME_MAX + 3];
} omni_matcher_t;


static int
omni_scan_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}


/* Feeds byte c to a matcher that has already seen the leading '<'. */
static int
omni_scan_step(omni_matcher_t *m, unsigned body_seen, unsigned char c)
{
    unsigned char  lc;

    switch (m->state) {

    case OMNI_SCAN_IDLE:
        /* m->i == 1: only "<" so far; the next byte picks the pattern. */
        if (c == '!') {
            m->state = OMNI_SCAN_PREFIX;
            m->i = 2;
            return OMNI_STEP_MORE;
        }

        if (c == '/' && !body_seen) {
            m->state = OMNI_SCAN_BODY;
            m->i = 2;
            return OMNI_STEP_MORE;
        }

        return OMNI_STEP_MISMATCH;

    case OMNI_SCAN_PREFIX:
        if (c != (unsigned char) omni_slot_prefix[m->i]) {
            return OMNI_STEP_MISMATCH;
        }

        if (++m->i == sizeof(omni_slot_prefix) - 1) {
            m->state = OMNI_SCAN_NAME;
            m->name_len = 0;
        }

        return OMNI_STEP_MORE;

    case OMNI_SCAN_NAME:
        if (omni_scan_name_char(c)) {
            /* Room for the name plus a "--" that may turn out to be
             * the start of "-->". */
            if (m->name_len == OMNI_SCAN_NAME_MAX + 2) {
                return OMNI_STEP_MISMATCH;
            }

            m->name[m->name_len++] = (char) c;
            return OMNI_STEP_MORE;
        }

        if (c == '>' && m->name_len >= 3
            && m->name[m->name_len - 1] == '-'
            && m->name[m->name_len - 2] == '-')
        {
            m->name_len -= 2;
            return m->name_len <= OMNI_SCAN_NAME_MAX ? OMNI_STEP_SLOT
                                                      : OMNI_STEP_MISMATCH;
        }

        if ((c == ' ' || c == '\t') && m->name_len > 0
            && m->name_len <= OMNI_SCAN_NAME_MAX)
        {
            m->state = OMNI_SCAN_TAIL;
            m->i = 0;
            m->spaces = 1;
            return OMNI_STEP_MORE;
        }

        return OMNI_STEP_MISMATCH;

    case OMNI_SCAN_TAIL:
        if (m->i == 0 && (c == ' ' || c == '\t')) {
            return ++m->spaces > OMNI_SCAN_MAX_SPACES ? OMNI_STEP_MISMATCH
                                                      : OMNI_STEP_MORE;
        }

        if (c != (unsigned char) "-->"[m->i]) {
            return OMNI_STEP_MISMATCH;
        }

        return ++m->i == 3 ? OMNI_STEP_SLOT : OMNI_STEP_MORE;

    default: /* OMNI_SCAN_BODY */
        lc = (c >= 'A' && c <= 'Z') ? (unsigned char) (c | 0x20) : c;

        if (lc != (unsigned char) omni_body_end[m->i]) {
            return OMNI_STEP_MISMATCH;
        }

        return ++m->i == sizeof(omni_body_end) - 1 ? OMNI_STEP_BODY
                                                   : OMNI_STEP_MORE;
    }
}


void
omni_scan_init(omni_scan_t *s)
{
    memset(s, 0, sizeof(omni_scan_t));
}


static void
omni_scan_save(omni_scan_t *s, const omni_matcher_t *m)
{
    s->state = m->state + 1;            /* 0 stays "not matching" */
    s->name_len = m->name_len;
    memcpy(s->name, m->name, m->name_len);
    s->mi = m->i;
    s->spaces = m->spaces;
}


static void
omni_scan_load(const omni_scan_t *s, omni_matcher_t *m)
{
    m->state = s->state - 1;
    m->name_len = s->name_len;
    memcpy(m->name, s->name, s->name_len);
    m->i = s->mi;
    m->spaces = s->spaces;
}


static omni_scan_type_e
omni_scan_event(omni_scan_event_t *ev, int step, const omni_matcher_t *m,
    const unsigned char *data, size_t len, unsigned from_hold)
{
    ev->data = data;
    ev->len = len;
    ev->from_hold = from_hold;

    if (step == OMNI_STEP_SLOT) {
        memcpy(ev->name, m->name, m->name_len);
        ev->name[m->name_len] = '\0';
        ev->name_len = m->name_len;
        ev->type = OMNI_SCAN_SLOT;

    } else {
        ev->name[0] = '\0';
        ev->name_len = 0;
        ev->type = step == OMNI_STEP_BODY ? OMNI_SCAN_BODY_END
                                          : OMNI_SCAN_LITERAL;
    }

    return ev->type;
}


/*
 * The first '<' at or after p that may start a marker: "<!-", or "</b"
 * / "</B" while no "</body>" was seen, or a '<' too close to the end to
 * tell.  Most '<' start ordinary tags; they are ruled out here without
 * setting up a matcher.  With SSE2 (every x86-64) 16 bytes are tested at
 * once from three overlapping loads, so a page costs about one pass of
 * vector compares whatever its number of tags.
 */
#if defined(__x86_64__) && defined(__GNUC__)

/* The same test on 32 bytes at once, where the CPU has AVX2. */
__attribute__((target("avx2")))
static const unsigned char *
omni_scan_candidate_avx2(const unsigned char *p, const unsigned char *end,
    unsigned body_seen)
{
    unsigned  bits;
    __m256i   a, b, c, hit;

    const __m256i  v_lt = _mm256_set1_epi8('<');
    const __m256i  v_bang = _mm256_set1_epi8('!');
    const __m256i  v_dash = _mm256_set1_epi8('-');
    const __m256i  v_slash = _mm256_set1_epi8('/');
    const __m256i  v_b = _mm256_set1_epi8('b');
    const __m256i  v_case = _mm256_set1_epi8(0x20);

    while (end - p >= 34) {
        a = _mm256_loadu_si256((const __m256i *) p);
        b = _mm256_loadu_si256((const __m256i *) (p + 1));
        c = _mm256_loadu_si256((const __m256i *) (p + 2));

        hit = _mm256_and_si256(_mm256_cmpeq_epi8(b, v_bang),
                               _mm256_cmpeq_epi8(c, v_dash));

        if (!body_seen) {
            hit = _mm256_or_si256(hit,
                      _mm256_and_si256(_mm256_cmpeq_epi8(b, v_slash),
                          _mm256_cmpeq_epi8(_mm256_or_si256(c, v_case),
                                            v_b)));
        }

        bits = (unsigned) _mm256_movemask_epi8(
                   _mm256_and_si256(_mm256_cmpeq_epi8(a, v_lt), hit));

        if (bits) {
            return p + __builtin_ctz(bits);
        }

        p += 32;
    }

    return p;
}

#endif


static const unsigned char *
omni_scan_candidate(const unsigned char *p, const unsigned char *end,
    unsigned body_seen)
{
#if defined(__x86_64__) && defined(__GNUC__)
    static int  avx2 = -1;

    if (avx2 < 0) {
        avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
    }

    if (avx2) {
        p = omni_scan_candidate_avx2(p, end, body_seen);

        if (end - p >= 34) {
            return p;
        }
    }
#endif

#if defined(__SSE2__)
    int      bits;
    __m128i  a, b, c, lt, bang, dash, slash, bee, hit;

    const __m128i  v_lt = _mm_set1_epi8('<');
    const __m128i  v_bang = _mm_set1_epi8('!');
    const __m128i  v_dash = _mm_set1_epi8('-');
    const __m128i  v_slash = _mm_set1_epi8('/');
    const __m128i  v_b = _mm_set1_epi8('b');
    const __m128i  v_case = _mm_set1_epi8(0x20);

    while (end - p >= 18) {
        a = _mm_loadu_si128((const __m128i *) p);
        b = _mm_loadu_si128((const __m128i *) (p + 1));
        c = _mm_loadu_si128((const __m128i *) (p + 2));

        lt = _mm_cmpeq_epi8(a, v_lt);
        bang = _mm_cmpeq_epi8(b, v_bang);
        dash = _mm_cmpeq_epi8(c, v_dash);
        hit = _mm_and_si128(bang, dash);

        if (!body_seen) {
            slash = _mm_cmpeq_epi8(b, v_slash);
            bee = _mm_cmpeq_epi8(_mm_or_si128(c, v_case), v_b);
            hit = _mm_or_si128(hit, _mm_and_si128(slash, bee));
        }

        bits = _mm_movemask_epi8(_mm_and_si128(lt, hit));

        if (bits) {
            return p + __builtin_ctz((unsigned) bits);
        }

        p += 16;
    }
#endif

    while (p < end) {
        p = memchr(p, '<', (size_t) (end - p));
        if (p == NULL) {
            return NULL;
        }

        if (p + 2 >= end
            || (p[1] == '!' && p[2] == '-')
            || (p[1] == '/' && !body_seen && (p[2] | 0x20) == 'b'))
        {
            return p;
        }

        p++;
    }

    return NULL;
}


omni_scan_type_e
omni_scan_next(omni_scan_t *s, const unsigned char **pos,
    const unsigned char *end, omni_scan_event_t *ev)
{
    int                   step;
    size_t                n;
    const unsigned char  *p, *q, *start;
    omni_matcher_t        m;

    p = *pos;

    /* A marker cut by the previous piece: continue it from the hold. */
    if (s->state) {
        omni_scan_load(s, &m);

        while (p < end) {
            step = omni_scan_step(&m, s->body_seen, *p);

            if (step == OMNI_STEP_MISMATCH) {
                /* The held bytes were text; *p is scanned afresh. */
                n = s->nhold;
                memcpy(s->tmp, s->hold, n);
                s->state = 0;
                s->nhold = 0;
                *pos = p;
                return omni_scan_event(ev, step, &m, s->tmp, n, 1);
            }

            s->hold[s->nhold++] = *p++;

            if (step != OMNI_STEP_MORE) {
                if (step == OMNI_STEP_BODY) {
                    s->body_seen = 1;
                }

                n = s->nhold;
                memcpy(s->tmp, s->hold, n);
                s->state = 0;
                s->nhold = 0;
                *pos = p;
                return omni_scan_event(ev, step, &m, s->tmp, n, 1);
            }
        }

        omni_scan_save(s, &m);
        *pos = p;
        return OMNI_SCAN_NEED_MORE;
    }

    start = p;

    while (p < end) {
        p = omni_scan_candidate(p, end, s->body_seen);
        if (p == NULL) {
            break;
        }

        /* Try to match a marker at p, in place. */
        memset(&m, 0, sizeof(omni_matcher_t));
        m.i = 1;

        for (q = p + 1; q < end; q++) {
            step = omni_scan_step(&m, s->body_seen, *q);

            if (step == OMNI_STEP_MISMATCH) {
                break;
            }

            if (step != OMNI_STEP_MORE) {
                if (p > start) {
                    /* Text first; the marker is found again next call. */
                    *pos = p;
                    return omni_scan_event(ev, OMNI_STEP_MISMATCH, &m, start,
                                           (size_t) (p - start), 0);
                }

                if (step == OMNI_STEP_BODY) {
                    s->body_seen = 1;
                }

                *pos = q + 1;
                return omni_scan_event(ev, step, &m, p,
                                       (size_t) (q + 1 - p), 0);
            }
        }

        if (q == end) {
            /* The input ends inside a possible marker. */
            if (p > start) {
                *pos = p;
                return omni_scan_event(ev, OMNI_STEP_MISMATCH, &m, start,
                                       (size_t) (p - start), 0);
            }

            s->nhold = (size_t) (end - p);
            memcpy(s->hold, p, s->nhold);
            omni_scan_save(s, &m);
            *pos = end;
            return OMNI_SCAN_NEED_MORE;
        }

        p++;
    }

    *pos = end;

    if (end > start) {
        return omni_scan_event(ev, OMNI_STEP_MISMATCH, &m, start,
                               (size_t) (end - start), 0);
    }

    return OMNI_SCAN_NEED_MORE;
}


void
omni_scan_finish(omni_scan_t *s, omni_scan_event_t *ev)
{
    omni_matcher_t  m;

    memset(&m, 0, sizeof(omni_matcher_t));

    if (s->state) {
        memcpy(s->tmp, s->hold, s->nhold);
        omni_scan_event(ev, OMNI_STEP_MISMATCH, &m, s->tmp, s->nhold, 1);
        s->state = 0;
        s->nhold = 0;
        return;
    }

    omni_scan_event(ev, OMNI_STEP_MISMATCH, &m, s->tmp, 0, 1);
}
