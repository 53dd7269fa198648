/*
 * Rules engine helpers: the arena, symbol tables, SipHash-2-4 for
 * experiment buckets, the User-Agent classifier, query strings and
 * referrer hosts.
 */

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "omni_rules_int.h"


/* ---- arena ---- */

#define OMNI_ARENA_BLOCK   (64 * 1024)
#define OMNI_ARENA_ALIGN   16

struct omni_arena_blk_s {
    omni_arena_blk_t   *next;
    size_t              used;
    size_t              size;
    /* keeps the data after the header aligned */
    long double         align_;
};


/*
 * Zeroed memory that lives as long as the set.  The compiled set is
 * written once and then only read, so one arena keeps it compact and
 * frees it in a few calls.
 */
void *
omni_arena_alloc(void *arena, size_t size)
{
    size_t             need, bsize;
    omni_arena_t      *a = arena;
    omni_arena_blk_t  *b;
    void              *p;

    size = (size + OMNI_ARENA_ALIGN - 1) & ~(size_t) (OMNI_ARENA_ALIGN - 1);
    if (size == 0) {
        size = OMNI_ARENA_ALIGN;
    }

    b = a->head;

    if (b == NULL || b->size - b->used < size) {
        need = sizeof(omni_arena_blk_t) + size;
        bsize = need > OMNI_ARENA_BLOCK ? need : OMNI_ARENA_BLOCK;

        b = malloc(bsize);
        if (b == NULL) {
            return NULL;
        }

        b->size = bsize - sizeof(omni_arena_blk_t);
        b->used = 0;

        /* a big block goes second, so the current small one stays */
        if (need > OMNI_ARENA_BLOCK && a->head != NULL) {
            b->next = a->head->next;
            a->head->next = b;

        } else {
            b->next = a->head;
            a->head = b;
        }

        a->total += bsize;
    }

    p = (char *) (b + 1) + b->used;
    b->used += size;
    memset(p, 0, size);

    return p;
}


char *
omni_arena_strndup(omni_arena_t *a, const char *s, size_t len)
{
    char  *d;

    d = omni_arena_alloc(a, len + 1);
    if (d == NULL) {
        return NULL;
    }

    if (len) {
        memcpy(d, s, len);
    }

    d[len] = '\0';

    return d;
}


void
omni_arena_free(omni_arena_t *a)
{
    omni_arena_blk_t  *b, *next;

    for (b = a->head; b; b = next) {
        next = b->next;
        free(b);
    }

    a->head = NULL;
    a->total = 0;
}


/* ---- symbol tables ---- */

/*
 * 8 bytes per step, for what only this process hashes (symbol tables,
 * the User-Agent cache, the pixels' de-duplication): FNV-1a multiplies
 * once per byte, and a User-Agent is some 130 of them.  The low bits,
 * which pick a table slot, depend on every input byte.
 */
uint64_t
omni_hash_fast(const char *s, size_t len)
{
    uint64_t  h, w;

    h = 0x9e3779b97f4a7c15ULL ^ len;

    while (len >= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        s += 8;
        len -= 8;
    }

    w = 0;
    memcpy(&w, s, len);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 29;

    return h;
}


/*
 * FNV-1a, 64 bits: campaign names in the shared activity zone, which
 * outlives a binary upgrade; do not change it.
 */
uint64_t
omni_hash_str(const char *s, size_t len)
{
    uint64_t  h;
    size_t    i;

    h = 0xcbf29ce484222325ULL;

    for (i = 0; i < len; i++) {
        h ^= (unsigned char) s[i];
        h *= 0x100000001b3ULL;
    }

    return h;
}


int32_t
omni_sym_find(const omni_symtab_t *t, const char *s, size_t len)
{
    uint64_t  h;
    uint32_t  i, mask;
    int32_t   id;

    if (t->cap == 0) {
        return -1;
    }

    h = omni_hash_fast(s, len);
    mask = t->cap - 1;

    for (i = (uint32_t) h & mask; ; i = (i + 1) & mask) {
        id = t->slots[i];

        if (id < 0) {
            return -1;
        }

        if (t->hashes[i] == h && t->names[id].len == len
            && memcmp(t->names[id].data, s, len) == 0)
        {
            return id;
        }
    }
}


static int
omni_sym_grow(omni_symtab_t *t)
{
    uint32_t   ncap, i, j, mask;
    int32_t   *slots;
    uint64_t  *hashes;

    ncap = t->cap ? t->cap * 2 : 64;

    slots = malloc(ncap * sizeof(int32_t));
    hashes = malloc(ncap * sizeof(uint64_t));

    if (slots == NULL || hashes == NULL) {
        free(slots);
        free(hashes);
        return -1;
    }

    memset(slots, 0xff, ncap * sizeof(int32_t));
    mask = ncap - 1;

    for (i = 0; i < t->cap; i++) {
        if (t->slots[i] < 0) {
            continue;
        }

        for (j = (uint32_t) t->hashes[i] & mask; slots[j] >= 0;
             j = (j + 1) & mask)
        {
            /* probe */
        }

        slots[j] = t->slots[i];
        hashes[j] = t->hashes[i];
    }

    free(t->slots);
    free(t->hashes);
    t->slots = slots;
    t->hashes = hashes;
    t->cap = ncap;

    return 0;
}


int32_t
omni_sym_intern(omni_symtab_t *t, omni_arena_t *a, const char *s,
    size_t len)
{
    uint64_t      h;
    uint32_t      i, mask, ncap;
    int32_t       id;
    omni_strv_t  *names;
    char         *copy;

    id = omni_sym_find(t, s, len);
    if (id >= 0) {
        return id;
    }

    /* at most half full */
    if ((t->n + 1) * 2 > t->cap && omni_sym_grow(t) != 0) {
        return -1;
    }

    if (t->n == t->ncap) {
        ncap = t->ncap ? t->ncap * 2 : 32;
        names = realloc(t->names, ncap * sizeof(omni_strv_t));
        if (names == NULL) {
            return -1;
        }

        t->names = names;
        t->ncap = ncap;
    }

    copy = omni_arena_strndup(a, s, len);
    if (copy == NULL) {
        return -1;
    }

    h = omni_hash_fast(s, len);
    mask = t->cap - 1;

    for (i = (uint32_t) h & mask; t->slots[i] >= 0; i = (i + 1) & mask) {
        /* probe */
    }

    id = (int32_t) t->n++;
    t->slots[i] = id;
    t->hashes[i] = h;
    t->names[id].data = copy;
    t->names[id].len = len;

    return id;
}


void
omni_sym_free(omni_symtab_t *t)
{
    free(t->slots);
    free(t->hashes);
    free(t->names);
    memset(t, 0, sizeof(omni_symtab_t));
}


int
omni_ids_has(const int32_t *ids, unsigned n, int32_t id)
{
    unsigned  lo, hi, mid;

    lo = 0;
    hi = n;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        if (ids[mid] == id) {
            return 1;
        }

        if (ids[mid] < id) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    return 0;
}


int
omni_strv_eq(omni_strv_t a, const char *s, size_t len)
{
    return a.len == len && (len == 0 || memcmp(a.data, s, len) == 0);
}


int
omni_strv_caseeq(omni_strv_t a, const char *s, size_t len)
{
    return a.len == len && (len == 0 || strncasecmp(a.data, s, len) == 0);
}


/* ---- SipHash-2-4 (Aumasson and Bernstein), the reference algorithm ---- */

#define OMNI_ROTL(x, b)  (uint64_t) (((x) << (b)) | ((x) >> (64 - (b))))

#define OMNI_SIPROUND                                                       \
    do {                                                                    \
        v0 += v1; v1 = OMNI_ROTL(v1, 13); v1 ^= v0; v0 = OMNI_ROTL(v0, 32); \
        v2 += v3; v3 = OMNI_ROTL(v3, 16); v3 ^= v2;                         \
        v0 += v3; v3 = OMNI_ROTL(v3, 21); v3 ^= v0;                         \
        v2 += v1; v1 = OMNI_ROTL(v1, 17); v1 ^= v2; v2 = OMNI_ROTL(v2, 32); \
    } while (0)


static uint64_t
omni_le64(const unsigned char *p)
{
    return (uint64_t) p[0] | (uint64_t) p[1] << 8 | (uint64_t) p[2] << 16
           | (uint64_t) p[3] << 24 | (uint64_t) p[4] << 32
           | (uint64_t) p[5] << 40 | (uint64_t) p[6] << 48
           | (uint64_t) p[7] << 56;
}


uint64_t
omni_siphash24(const unsigned char key[16], const void *data, size_t len)
{
    const unsigned char  *in = data;
    uint64_t              k0, k1, v0, v1, v2, v3, m, b;
    size_t                i, left;

    k0 = omni_le64(key);
    k1 = omni_le64(key + 8);

    v0 = 0x736f6d6570736575ULL ^ k0;
    v1 = 0x646f72616e646f6dULL ^ k1;
    v2 = 0x6c7967656e657261ULL ^ k0;
    v3 = 0x7465646279746573ULL ^ k1;

    for (i = 0; i + 8 <= len; i += 8) {
        m = omni_le64(in + i);
        v3 ^= m;
        OMNI_SIPROUND;
        OMNI_SIPROUND;
        v0 ^= m;
    }

    b = (uint64_t) len << 56;
    left = len - i;

    while (left > 0) {
        left--;
        b |= (uint64_t) in[i + left] << (8 * left);
    }

    v3 ^= b;
    OMNI_SIPROUND;
    OMNI_SIPROUND;
    v0 ^= b;

    v2 ^= 0xff;
    OMNI_SIPROUND;
    OMNI_SIPROUND;
    OMNI_SIPROUND;
    OMNI_SIPROUND;

    return v0 ^ v1 ^ v2 ^ v3;
}


/*
 * The experiment bucket: SipHash-2-4, key "omni-experiments", over the 16
 * profile id bytes then the experiment id; modulo 10000.  The id is
 * hashed in place in blocks, so there is no length limit and no copy.
 */
unsigned
omni_rules_bucket(const unsigned char *pid, const char *exp, size_t len)
{
    static const unsigned char  key[16] = {
        'o', 'm', 'n', 'i', '-', 'e', 'x', 'p',
        'e', 'r', 'i', 'm', 'e', 'n', 't', 's'
    };
    unsigned char   buf[OMNI_ID_LEN + OMNI_RULES_MAX_ID];

    if (len > OMNI_RULES_MAX_ID) {
        len = OMNI_RULES_MAX_ID;
    }

    memcpy(buf, pid, OMNI_ID_LEN);
    if (len) {
        memcpy(buf + OMNI_ID_LEN, exp, len);
    }

    return (unsigned) (omni_siphash24(key, buf, OMNI_ID_LEN + len) % 10000);
}


/* ---- the User-Agent classifier (docs/rules.md, "device") ---- */

#define OMNI_UA_MAX   512

/* memmem() without _GNU_SOURCE; needles are short words. */
static const char *
omni_memmem(const char *h, size_t n, const char *w, size_t wl)
{
    const char  *p, *end;

    if (wl == 0 || wl > n) {
        return NULL;
    }

    end = h + n - wl + 1;

    for (p = h; p < end; p++) {
        p = memchr(p, w[0], (size_t) (end - p));
        if (p == NULL) {
            return NULL;
        }

        if (memcmp(p, w, wl) == 0) {
            return p;
        }
    }

    return NULL;
}


static int
omni_ua_has(const char *ua, size_t n, const char *const *words)
{
    unsigned  i;
    size_t    wl;

    for (i = 0; words[i]; i++) {
        wl = strlen(words[i]);

        if (wl <= n && omni_memmem(ua, n, words[i], wl) != NULL) {
            return 1;
        }
    }

    return 0;
}


/*
 * In order: an empty User-Agent or one naming a crawler, a monitoring or
 * an HTTP library is a bot; iPads, Kindles and Android without "Mobile"
 * are tablets; "Mobi", iPhone, Android and the like are mobile; the rest
 * is desktop.  The first 512 bytes, case-insensitive.  iPadOS Safari
 * announces a Mac and is seen as a desktop.
 */
static unsigned omni_device_class_scan(const char *ua, size_t len);


/*
 * The class of each distinct User-Agent is remembered: a site sees a few
 * hundred of them, and the scan below costs far more than a probe.  A
 * direct-mapped table per thread, keyed by a 64-bit hash and the length.
 */
#define OMNI_UA_CACHE  1024                     /* a power of two */

typedef struct {
    uint64_t   hash;
    uint32_t   len;
    uint32_t   cls;                             /* class + 1; 0: empty */
} omni_ua_slot_t;

static __thread omni_ua_slot_t  omni_ua_cache[OMNI_UA_CACHE];


unsigned
omni_device_class(const char *ua, size_t len)
{
    uint64_t         h;
    omni_ua_slot_t  *s;

    if (ua == NULL || len == 0) {
        return omni_device_class_scan(ua, len);
    }

    h = omni_hash_fast(ua, len);
    s = &omni_ua_cache[h & (OMNI_UA_CACHE - 1)];

    if (s->cls && s->hash == h && s->len == (uint32_t) len) {
        return s->cls - 1;
    }

    s->hash = h;
    s->len = (uint32_t) len;
    s->cls = omni_device_class_scan(ua, len) + 1;

    return s->cls - 1;
}


static unsigned
omni_device_class_scan(const char *ua, size_t len)
{
    static const char *const  bots[] = {
        "bot", "crawl", "spider", "slurp", "facebookexternalhit",
        "mediapartners", "headless", "lighthouse", "pingdom", "preview",
        "curl/", "wget/", "python-", "python/", "go-http-client", "java/",
        "httpclient", "libwww", "scrapy", "phantomjs", "feedfetcher",
        "ia_archiver", "node-fetch", "axios/", "monitor", "uptime",
        NULL
    };
    static const char *const  tablets[] = {
        "ipad", "tablet", "kindle", "silk/", "playbook", "nexus 7",
        "nexus 9", "nexus 10", "sm-t", NULL
    };
    static const char *const  mobiles[] = {
        "mobi", "iphone", "ipod", "android", "windows phone", "blackberry",
        "bb10", "opera mini", "webos", NULL
    };
    char    lc[OMNI_UA_MAX];
    size_t  i, n;

    n = len < OMNI_UA_MAX ? len : OMNI_UA_MAX;

    for (i = 0; i < n; i++) {
        lc[i] = (char) (ua[i] >= 'A' && ua[i] <= 'Z' ? ua[i] | 0x20 : ua[i]);
    }

    while (n > 0 && lc[n - 1] == ' ') {
        n--;
    }

    if (n == 0 || omni_ua_has(lc, n, bots)) {
        return OMNI_DEVICE_BOT;
    }

    if (omni_ua_has(lc, n, tablets)) {
        return OMNI_DEVICE_TABLET;
    }

    if (omni_memmem(lc, n, "android", 7) != NULL
        && omni_memmem(lc, n, "mobi", 4) == NULL)
    {
        return OMNI_DEVICE_TABLET;
    }

    if (omni_ua_has(lc, n, mobiles)) {
        return OMNI_DEVICE_MOBILE;
    }

    return OMNI_DEVICE_DESKTOP;
}


const char *
omni_device_name(unsigned device)
{
    static const char  *names[] = { "desktop", "mobile", "tablet", "bot" };

    return device < 4 ? names[device] : NULL;
}


/* ---- query strings and referrers ---- */

int
omni_query_arg(const char *q, size_t qlen, const char *name, size_t nlen,
    omni_strv_t *val)
{
    size_t  i, start, eq;

    start = 0;

    for (i = 0; i <= qlen; i++) {
        if (i < qlen && q[i] != '&') {
            continue;
        }

        /* one argument: q[start .. i) */
        for (eq = start; eq < i && q[eq] != '='; eq++) {
            /* find '=' */
        }

        if (eq - start == nlen && memcmp(q + start, name, nlen) == 0) {
            val->data = eq < i ? q + eq + 1 : q + i;
            val->len = eq < i ? i - eq - 1 : 0;
            return 1;
        }

        start = i + 1;
    }

    return 0;
}


static int
omni_hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}


size_t
omni_url_decode(const char *s, size_t len, char *buf, size_t cap)
{
    size_t  i, n;
    int     h, l;

    n = 0;

    for (i = 0; i < len && n < cap; i++) {
        if (s[i] == '+') {
            buf[n++] = ' ';

        } else if (s[i] == '%' && i + 2 < len
                   && (h = omni_hexval((unsigned char) s[i + 1])) >= 0
                   && (l = omni_hexval((unsigned char) s[i + 2])) >= 0)
        {
            buf[n++] = (char) (h << 4 | l);
            i += 2;

        } else {
            buf[n++] = s[i];
        }
    }

    return n;
}


omni_strv_t
omni_url_host(const char *url, size_t len)
{
    size_t       i, start, end, at;
    omni_strv_t  host;

    host.data = url;
    host.len = 0;

    /* scheme "://" */
    for (i = 0; i + 2 < len; i++) {
        if (url[i] == ':' && url[i + 1] == '/' && url[i + 2] == '/') {
            break;
        }

        if (url[i] == '/' || url[i] == '?' || url[i] == '#') {
            return host;
        }
    }

    if (i + 2 >= len) {
        return host;
    }

    start = i + 3;

    for (end = start; end < len && url[end] != '/' && url[end] != '?'
         && url[end] != '#'; end++)
    {
        /* authority */
    }

    /* userinfo */
    for (at = end; at > start; at--) {
        if (url[at - 1] == '@') {
            start = at;
            break;
        }
    }

    /* port (not inside an IPv6 literal) */
    for (i = end; i > start; i--) {
        if (url[i - 1] == ']') {
            break;
        }

        if (url[i - 1] == ':') {
            end = i - 1;
            break;
        }
    }

    host.data = url + start;
    host.len = end - start;

    return host;
}


/* host is want or a subdomain of it, case-insensitive. */
int
omni_host_match(omni_strv_t host, const char *want, size_t wlen)
{
    if (host.len == wlen) {
        return strncasecmp(host.data, want, wlen) == 0;
    }

    return host.len > wlen && host.data[host.len - wlen - 1] == '.'
           && strncasecmp(host.data + host.len - wlen, want, wlen) == 0;
}
