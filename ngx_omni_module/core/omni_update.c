/*
 * Profile updates shared by the module's writer task and omnictl.
 */

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "omni_splice.h"
#include "omni_update.h"


int  omni_update_splice = 1;


/* The stage from the counts it depends on: the fast path has no profile. */
static unsigned
omni_stage_of(uint32_t orders, unsigned ncart, uint32_t visits,
    unsigned nviews)
{
    if (orders >= 5) {
        return OMNI_STAGE_LOYAL;
    }

    if (orders >= 1) {
        return OMNI_STAGE_CUSTOMER;
    }

    if (ncart > 0) {
        return OMNI_STAGE_CART;
    }

    if (visits >= 2 || nviews > 0) {
        return OMNI_STAGE_BROWSING;
    }

    return OMNI_STAGE_NEW;
}


unsigned
omni_derive_stage(const omni_profile_t *p)
{
    return omni_stage_of(p->orders, p->ncart, p->visits, p->nviews);
}


/*
 * The next campaign of a touch's comma-separated list at *c (before
 * end), its length in *n; NULL at the end.  Empty entries and entries
 * longer than OMNI_MAX_STR are skipped.
 */
static const char *
omni_campaign_next(const char **c, const char *end, size_t *n)
{
    const char  *name, *comma;

    while (*c < end) {
        name = *c;
        comma = memchr(name, ',', (size_t) (end - name));

        *n = (size_t) ((comma ? comma : end) - name);
        *c = comma ? comma + 1 : end;

        if (*n > 0 && *n <= OMNI_MAX_STR) {
            return name;
        }
    }

    return NULL;
}


/* One impression per campaign in the touch's comma-separated list. */
static int
omni_touch_impressions(omni_profile_t *p, const omni_touch_t *t)
{
    char         name[OMNI_MAX_STR + 1];
    size_t       n;
    const char  *c, *end, *campaign;

    if (t->campaigns == NULL) {
        return OMNI_OK;
    }

    c = t->campaigns;
    end = c + t->campaigns_len;

    while ((campaign = omni_campaign_next(&c, end, &n)) != NULL) {
        memcpy(name, campaign, n);
        name[n] = '\0';

        if (omni_profile_add_impression(p, name, t->time) != OMNI_OK) {
            return OMNI_ERROR;
        }
    }

    return OMNI_OK;
}


void
omni_visit_count(uint32_t *visits, uint32_t *visit_last, uint32_t *last_seen,
    unsigned channel, uint32_t time, uint32_t timeout)
{
    /* A visit ends after visit_timeout seconds without a request. */
    if (timeout == 0) {
        timeout = OMNI_VISIT_TIMEOUT_DEFAULT;
    }

    if (*visits == 0 || time >= *visit_last + timeout) {
        (*visits)++;
    }

    if (time > *visit_last) {
        *visit_last = time;
    }

    if (channel < OMNI_CH_MAX && time > last_seen[channel]) {
        last_seen[channel] = time;
    }
}


/* The header fields a touch changes, but the stage. */
static void
omni_touch_visit(omni_profile_t *p, const omni_touch_t *t)
{
    omni_visit_count(&p->visits, &p->visit_last, p->last_seen, t->channel,
                     t->time, t->visit_timeout);

    if (t->time > p->updated) {
        p->updated = t->time;
    }
}


/*
 * What one touch changes in its profile: the identity's alias, the
 * visit count, last seen, the impression counters and the journey
 * stage.  hex is the identity's alias value (its id in hex).
 */
static int
omni_touch_profile(omni_profile_t *p, const omni_touch_t *t,
    const char *hex)
{
    if (omni_profile_add_alias(p, t->kind, hex, OMNI_ID_HEX_LEN) != OMNI_OK) {
        return OMNI_ERROR;
    }

    omni_touch_visit(p, t);

    if (omni_touch_impressions(p, t) != OMNI_OK) {
        return OMNI_ERROR;
    }

    p->stage = omni_derive_stage(p);

    return OMNI_OK;
}


/*
 * The fast path: touches ops[order[0..n)] (ops[0..n) when order is
 * NULL), every one of a known visitor of profile pid, applied to its
 * stored record by splicing (omni_splice.h).  *done tells whether the
 * record was written; when it was not, nothing was, and the full path
 * must apply the touches.  That is the case for
 *
 *   - a record that is missing, refused, under another id, or not
 *     canonical (omni_splice_open());
 *   - a touch whose alias the profile does not list (dropped at
 *     OMNI_MAX_ALIASES): omni_profile_add_alias() would add it back;
 *   - a touch of an alias kind omni_profile_add_alias() refuses, or
 *     with a NUL in its campaigns (omni_touch_impressions() would cut the
 *     name there, or fail): the full path's result, or its error;
 *   - no memory for the record.
 *
 * Otherwise the record is what omni_touch_profile() for each touch in
 * order, between a decode and an encode, would give.
 */
static int
omni_touch_splice(omni_wtxn_t *w, omni_splice_t *s,
    const unsigned char *pid, const omni_touch_t *ops,
    const uint32_t *order, uint32_t n, int *done)
{
    int                   rc;
    char                  hex[OMNI_ID_HEX_LEN + 1];
    size_t                len, cn;
    uint32_t              k;
    omni_rec_t            rec;
    const char           *c, *end, *campaign;
    omni_profile_t        hdr;
    const omni_touch_t   *t;
    const unsigned char  *data;

    *done = 0;

    if (!omni_update_splice) {
        return OMNI_OK;
    }

    for (k = 0; k < n; k++) {
        t = &ops[order ? order[k] : k];

        if (t->kind == 0 || t->kind > 0xff
            || (t->campaigns != NULL
                && memchr(t->campaigns, '\0', t->campaigns_len) != NULL))
        {
            return OMNI_OK;
        }
    }

    if (omni_wtxn_get_rec(w, pid, &rec) != OMNI_OK
        || memcmp(rec.id, pid, OMNI_ID_LEN) != 0
        || !omni_splice_open(s, &rec))
    {
        return OMNI_OK;
    }

    for (k = 0; k < n; k++) {
        t = &ops[order ? order[k] : k];
        omni_id_hex(t->id, hex);

        if (!omni_splice_has_alias(s, t->kind, hex, OMNI_ID_HEX_LEN)) {
            return OMNI_OK;
        }
    }

    omni_splice_header(s, &hdr);

    for (k = 0; k < n; k++) {
        t = &ops[order ? order[k] : k];

        omni_touch_visit(&hdr, t);

        if (t->campaigns != NULL) {
            c = t->campaigns;
            end = c + t->campaigns_len;

            while ((campaign = omni_campaign_next(&c, end, &cn)) != NULL) {
                /* cannot fail: the names are checked above and here */
                if (omni_splice_impression(s, campaign, cn, t->time)
                    != OMNI_OK)
                {
                    return OMNI_OK;
                }
            }
        }

        hdr.stage = omni_stage_of(hdr.orders, s->ncart, hdr.visits,
                                  s->nviews);
    }

    if (omni_splice_build(s, &hdr, &data, &len) != OMNI_OK) {
        return OMNI_OK;
    }

    rc = omni_wtxn_put_raw(w, pid, data, len);

    *done = (rc == OMNI_OK);

    return rc;
}


int
omni_apply_touch(omni_wtxn_t *w, const omni_touch_t *t, unsigned char *pid)
{
    int             rc, done;
    char            hex[OMNI_ID_HEX_LEN + 1];
    unsigned        linked;
    unsigned char   id[OMNI_ID_LEN];
    omni_profile_t  p;
    omni_splice_t   s;

    /* Cookie and device aliases are the id's hex text. */
    omni_id_hex(t->id, hex);

    rc = omni_wtxn_get_alias(w, t->kind, hex, OMNI_ID_HEX_LEN, id);
    linked = (rc == OMNI_OK);

    if (rc == OMNI_NOTFOUND) {
        /* First sight: the profile takes the visitor's own id. */
        memcpy(id, t->id, OMNI_ID_LEN);

    } else if (rc != OMNI_OK) {
        return rc;
    }

    if (linked) {
        omni_splice_init(&s);
        rc = omni_touch_splice(w, &s, id, t, NULL, 1, &done);
        omni_splice_free(&s);

        if (rc != OMNI_OK || done) {
            if (rc == OMNI_OK && pid) {
                memcpy(pid, id, OMNI_ID_LEN);
            }

            return rc;
        }
    }

    rc = omni_wtxn_get_profile(w, id, &p);
    if (rc != OMNI_OK && rc != OMNI_NOTFOUND) {
        omni_profile_free(&p);
        return rc;
    }

    if (rc == OMNI_NOTFOUND) {
        p.created = t->time;
    }

    if (omni_touch_profile(&p, t, hex) != OMNI_OK) {
        omni_profile_free(&p);
        return OMNI_ERROR;
    }

    /*
     * The common case, a known visitor: its alias already points here,
     * so only the record is written (no alias B-tree writes).
     */
    rc = linked ? omni_wtxn_put_record(w, &p) : omni_wtxn_put_profile(w, &p);
    omni_profile_free(&p);

    if (rc == OMNI_OK && pid) {
        memcpy(pid, id, OMNI_ID_LEN);
    }

    return rc;
}


/*
 * Batches (omni_apply_touches()).
 *
 * A batch must end as n calls of omni_apply_touch() in order would leave
 * it.  Those calls interact only through the store:
 *
 *   - each reads and rewrites its profile's record: touches of one
 *     profile must see each other's changes, in order;
 *   - a touch of an identity without an alias ("first sight") stores
 *     its profile with omni_wtxn_put_profile(), which points every
 *     alias the profile lists at it: later touches of the identity find
 *     the alias, and any other alias the profile lists is (re)pointed.
 *
 * So: every identity (kind, id) in the batch is resolved once, through
 * its alias as the batch starts; the touches are grouped by the profile
 * their identity resolves to, each group in the batch's order; and each
 * group's profile is read and decoded once, changed by all its touches in
 * order and encoded and written once.  A first sight writes the
 * profile's aliases at once, as omni_wtxn_put_profile() would, only the
 * record waits for the end of the group.
 *
 * That equals the sequential result unless one group's alias writes
 * could change what another group's identity resolves to, or two groups
 * write the same alias key (then the order of the writes decides): only
 * possible when a profile lists an alias that points elsewhere, which
 * omni_apply_touch() and omni_link_alias() never leave behind.  Checked
 * before anything is written (omni_batch_check()); the batch then falls
 * back to one omni_apply_touch() per touch.
 *
 * The record of a group is read once, so a touch sees its predecessors'
 * changes as they are in memory, not as encoding and decoding them
 * again would give them back.  Both agree for every record the encoder
 * writes (omni_batch_canonical()); for any other, the group falls back
 * to one omni_apply_touch() per touch.  (One case stays out of reach: a
 * damaged record stored under another profile's id is written back
 * under its embedded id, as omni_apply_touch() does; if that profile is
 * touched in the same batch, the two groups' order may differ from the
 * touches'.  No writer of this code stores such a record.)
 */

#define OMNI_BATCH_NONE    UINT32_MAX
#define OMNI_BATCH_MAX     (1u << 17)       /* touches per pass */

typedef struct {
    uint32_t        op;             /* its first touch: kind and id */
    uint32_t        group;
    unsigned char   pid[OMNI_ID_LEN];   /* what its alias resolved to */
    unsigned        linked;         /* its alias exists (by now) */
} omni_ident_t;

typedef struct {
    unsigned char   pid[OMNI_ID_LEN];
    uint32_t        start;          /* its touches: order[start, +n) */
    uint32_t        n;
    uint32_t        fill;
    unsigned        first_sight;    /* one of its identities has no alias */
} omni_group_t;

/* An alias a first-sight group's profile lists (omni_batch_check()). */
typedef struct {
    uint64_t        hash;
    uint32_t        group;
} omni_alias_ref_t;

typedef struct {
    omni_wtxn_t          *w;
    const omni_touch_t   *ops;
    uint32_t              n;
    uint32_t              mask;         /* of the hash tables */
    uint32_t              nidents;
    uint32_t              ngroups;
    uint32_t              sequential;   /* touches applied one by one */
    uint32_t              spliced;      /* profiles the fast path wrote */
    uint32_t             *op_ident;     /* each touch's identity */
    uint32_t             *order;        /* touches grouped by profile */
    uint32_t             *itab;         /* identities by (kind, id) */
    uint32_t             *gtab;         /* groups by profile id */
    omni_ident_t         *idents;
    omni_group_t         *groups;
    omni_splice_t         splice;       /* its buffer serves every group */
} omni_batch_t;


/* Mixes 16 id bytes and a kind into a hash-table index. */
static uint32_t
omni_batch_hash(unsigned kind, const unsigned char *id)
{
    uint64_t  a, b;

    memcpy(&a, id, 8);
    memcpy(&b, id + 8, 8);

    a ^= (b + kind) * 0x9e3779b97f4a7c15ULL;
    a ^= a >> 32;
    a *= 0xd6e8feb86659fd93ULL;
    a ^= a >> 32;

    return (uint32_t) a;
}


/* The identity (kind, id) of the batch, or OMNI_BATCH_NONE. */
static uint32_t
omni_batch_ident(omni_batch_t *b, unsigned kind, const unsigned char *id,
    uint32_t *slot)
{
    uint32_t             h, x;
    const omni_touch_t  *t;

    for (h = omni_batch_hash(kind, id) & b->mask; b->itab[h] != 0;
         h = (h + 1) & b->mask)
    {
        x = b->itab[h] - 1;
        t = &b->ops[b->idents[x].op];

        if (t->kind == kind && memcmp(t->id, id, OMNI_ID_LEN) == 0) {
            return x;
        }
    }

    if (slot) {
        *slot = h;
    }

    return OMNI_BATCH_NONE;
}


/* Allocates the batch's arrays, all in one block. */
static int
omni_batch_init(omni_batch_t *b, omni_wtxn_t *w, const omni_touch_t *ops,
    uint32_t n)
{
    size_t          m, size;
    unsigned char  *mem;

    memset(b, 0, offsetof(omni_batch_t, splice));
    omni_splice_init(&b->splice);

    /* Hash tables at most half full. */
    for (m = 16; m < 2 * (size_t) n; m *= 2) { /* void */ }

    size = n * sizeof(omni_ident_t) + n * sizeof(omni_group_t)
           + 2 * n * sizeof(uint32_t) + 2 * m * sizeof(uint32_t);

    mem = malloc(size);
    if (mem == NULL) {
        return OMNI_ERROR;
    }

    b->w = w;
    b->ops = ops;
    b->n = n;
    b->mask = (uint32_t) (m - 1);

    /* The structs first: malloc()'s alignment suits them. */
    b->idents = (omni_ident_t *) mem;
    b->groups = (omni_group_t *) (b->idents + n);
    b->op_ident = (uint32_t *) (b->groups + n);
    b->order = b->op_ident + n;
    b->itab = b->order + n;
    b->gtab = b->itab + m;

    memset(b->itab, 0, 2 * m * sizeof(uint32_t));

    return OMNI_OK;
}


static void
omni_batch_free(omni_batch_t *b)
{
    /* idents heads the block */
    free(b->idents);
    omni_splice_free(&b->splice);
}


/*
 * Finds each touch's identity and resolves every identity once, through
 * its alias as the batch starts.
 */
static int
omni_batch_resolve(omni_batch_t *b)
{
    int                  rc;
    char                 hex[OMNI_ID_HEX_LEN + 1];
    uint32_t             i, x, slot;
    omni_ident_t        *id;
    const omni_touch_t  *t;

    for (i = 0; i < b->n; i++) {
        t = &b->ops[i];

        x = omni_batch_ident(b, t->kind, t->id, &slot);

        if (x == OMNI_BATCH_NONE) {
            x = b->nidents++;
            b->itab[slot] = x + 1;

            id = &b->idents[x];
            id->op = i;

            omni_id_hex(t->id, hex);

            rc = omni_wtxn_get_alias(b->w, t->kind, hex, OMNI_ID_HEX_LEN,
                                     id->pid);
            if (rc == OMNI_NOTFOUND) {
                memcpy(id->pid, t->id, OMNI_ID_LEN);

            } else if (rc != OMNI_OK) {
                return rc;
            }

            id->linked = (rc == OMNI_OK);
        }

        b->op_ident[i] = x;
    }

    return OMNI_OK;
}


/* Groups the touches by profile, each group in the batch's order. */
static void
omni_batch_group(omni_batch_t *b)
{
    uint32_t       i, g, h, start;
    omni_ident_t  *id;
    omni_group_t  *gr;

    for (i = 0; i < b->nidents; i++) {
        id = &b->idents[i];

        for (h = omni_batch_hash(0, id->pid) & b->mask; b->gtab[h] != 0;
             h = (h + 1) & b->mask)
        {
            if (memcmp(b->groups[b->gtab[h] - 1].pid, id->pid, OMNI_ID_LEN)
                == 0)
            {
                break;
            }
        }

        if (b->gtab[h] == 0) {
            g = b->ngroups++;
            b->gtab[h] = g + 1;

            gr = &b->groups[g];
            memcpy(gr->pid, id->pid, OMNI_ID_LEN);
            gr->n = 0;
            gr->fill = 0;
            gr->first_sight = 0;
        }

        id->group = b->gtab[h] - 1;

        if (!id->linked) {
            b->groups[id->group].first_sight = 1;
        }
    }

    for (i = 0; i < b->n; i++) {
        b->groups[b->idents[b->op_ident[i]].group].n++;
    }

    start = 0;

    for (g = 0; g < b->ngroups; g++) {
        b->groups[g].start = start;
        start += b->groups[g].n;
    }

    for (i = 0; i < b->n; i++) {
        gr = &b->groups[b->idents[b->op_ident[i]].group];
        b->order[gr->start + gr->fill++] = i;
    }
}


/* The id of a cookie or device alias value: 32 lowercase hex digits. */
static int
omni_batch_alias_id(const char *v, unsigned char *id)
{
    unsigned  i, c, d;

    for (i = 0; i < OMNI_ID_HEX_LEN; i++) {
        c = (unsigned char) v[i];

        if (c >= '0' && c <= '9') {
            d = c - '0';

        } else if (c >= 'a' && c <= 'f') {
            d = c - 'a' + 10;

        } else {
            return 0;
        }

        if (i % 2 == 0) {
            id[i / 2] = (unsigned char) (d << 4);

        } else {
            id[i / 2] |= (unsigned char) d;
        }
    }

    return v[OMNI_ID_HEX_LEN] == '\0';
}


static uint64_t
omni_batch_alias_hash(unsigned kind, const char *v)
{
    uint64_t  h;

    /* FNV-1a */
    h = 0xcbf29ce484222325ULL ^ kind;

    while (*v) {
        h = (h ^ (unsigned char) *v++) * 0x100000001b3ULL;
    }

    return h;
}


static int
omni_alias_ref_cmp(const void *a, const void *b)
{
    const omni_alias_ref_t  *x = a, *y = b;

    if (x->hash != y->hash) {
        return x->hash < y->hash ? -1 : 1;
    }

    return (x->group > y->group) - (x->group < y->group);
}


/*
 * Whether grouping keeps the sequential result (see above): *safe is 0
 * when a first-sight group's profile lists an alias that resolves to
 * another profile in this batch, or an alias another such profile lists
 * too (compared by a 64-bit hash: a collision only costs the fallback),
 * or when its record is not stored under its own id.
 */
static int
omni_batch_check(omni_batch_t *b, int *safe)
{
    int                rc;
    size_t             nrefs, cap, i;
    uint32_t           g, x;
    unsigned           k, kind;
    omni_profile_t     p;
    unsigned char      id[OMNI_ID_LEN];
    omni_alias_ref_t  *refs, *r;

    *safe = 1;
    refs = NULL;
    nrefs = 0;
    cap = 0;

    for (g = 0; g < b->ngroups && *safe; g++) {
        if (!b->groups[g].first_sight) {
            continue;
        }

        rc = omni_wtxn_get_profile(b->w, b->groups[g].pid, &p);

        if (rc == OMNI_NOTFOUND) {
            /* a new profile lists no alias yet */
            continue;
        }

        if (rc != OMNI_OK) {
            omni_profile_free(&p);
            free(refs);
            return rc;
        }

        if (memcmp(p.id, b->groups[g].pid, OMNI_ID_LEN) != 0) {
            *safe = 0;
        }

        for (k = 0; k < p.naliases && *safe; k++) {
            kind = p.aliases[k].kind;

            if ((kind == OMNI_ALIAS_COOKIE || kind == OMNI_ALIAS_DEVICE)
                && omni_batch_alias_id(p.aliases[k].value, id))
            {
                x = omni_batch_ident(b, kind, id, NULL);

                if (x != OMNI_BATCH_NONE && b->idents[x].group != g) {
                    *safe = 0;
                    break;
                }
            }

            if (nrefs == cap) {
                cap = cap ? 2 * cap : 64;
                r = realloc(refs, cap * sizeof(omni_alias_ref_t));

                if (r == NULL) {
                    omni_profile_free(&p);
                    free(refs);
                    return OMNI_ERROR;
                }

                refs = r;
            }

            refs[nrefs].hash = omni_batch_alias_hash(kind,
                                                     p.aliases[k].value);
            refs[nrefs].group = g;
            nrefs++;
        }

        omni_profile_free(&p);
    }

    if (*safe && nrefs > 1) {
        qsort(refs, nrefs, sizeof(omni_alias_ref_t), omni_alias_ref_cmp);

        for (i = 1; i < nrefs; i++) {
            if (refs[i].hash == refs[i - 1].hash
                && refs[i].group != refs[i - 1].group)
            {
                *safe = 0;
                break;
            }
        }
    }

    free(refs);

    return OMNI_OK;
}


/*
 * Whether p, just decoded, is what decoding its own encoding gives back
 * in everything a touch reads, and stays so: its record is under its own
 * id, and the aliases and impressions a touch looks through are within
 * the bounds the encoder applies (the encoder never writes more).
 */
static int
omni_batch_canonical(const omni_profile_t *p, const unsigned char *pid)
{
    unsigned  i;

    if (memcmp(p->id, pid, OMNI_ID_LEN) != 0
        || p->naliases > OMNI_MAX_ALIASES
        || p->nimpressions > OMNI_MAX_IMPRESSIONS)
    {
        return 0;
    }

    for (i = 0; i < p->naliases; i++) {
        if (strlen(p->aliases[i].value) > OMNI_MAX_STR) {
            return 0;
        }
    }

    for (i = 0; i < p->nimpressions; i++) {
        if (strlen(p->impressions[i].campaign) > OMNI_MAX_STR
            || p->impressions[i].nbuckets > OMNI_MAX_BUCKETS)
        {
            return 0;
        }
    }

    return 1;
}


/* Points every alias p lists at it, as omni_wtxn_put_profile() does. */
static int
omni_batch_put_aliases(omni_wtxn_t *w, const omni_profile_t *p)
{
    int       rc;
    unsigned  i;

    for (i = 0; i < p->naliases; i++) {
        rc = omni_wtxn_put_alias(w, p->aliases[i].kind, p->aliases[i].value,
                                 strlen(p->aliases[i].value), p->id);
        if (rc != OMNI_OK) {
            return rc;
        }
    }

    return OMNI_OK;
}


/* Applies a group's touches to its profile: one read, one write. */
static int
omni_batch_apply_group(omni_batch_t *b, omni_group_t *g,
    unsigned char (*pids)[OMNI_ID_LEN])
{
    int                  rc, done;
    char                 hex[OMNI_ID_HEX_LEN + 1];
    uint32_t             k, i;
    omni_ident_t        *id;
    omni_profile_t       p;
    const omni_touch_t  *t;

    /* Known visitors only: a first sight writes aliases. */
    if (!g->first_sight) {
        rc = omni_touch_splice(b->w, &b->splice, g->pid, b->ops,
                               b->order + g->start, g->n, &done);
        if (rc != OMNI_OK) {
            return rc;
        }

        if (done) {
            b->spliced++;

            for (k = 0; pids && k < g->n; k++) {
                memcpy(pids[b->order[g->start + k]], g->pid, OMNI_ID_LEN);
            }

            return OMNI_OK;
        }
    }

    rc = omni_wtxn_get_profile(b->w, g->pid, &p);

    if (rc == OMNI_NOTFOUND) {
        p.created = b->ops[b->order[g->start]].time;

    } else if (rc != OMNI_OK) {
        omni_profile_free(&p);
        return rc;

    } else if (g->n > 1 && !omni_batch_canonical(&p, g->pid)) {
        omni_profile_free(&p);
        b->sequential += g->n;

        for (k = 0; k < g->n; k++) {
            i = b->order[g->start + k];

            rc = omni_apply_touch(b->w, &b->ops[i], pids ? pids[i] : NULL);
            if (rc != OMNI_OK) {
                return rc;
            }
        }

        return OMNI_OK;
    }

    for (k = 0; k < g->n; k++) {
        i = b->order[g->start + k];
        t = &b->ops[i];
        id = &b->idents[b->op_ident[i]];

        omni_id_hex(t->id, hex);

        rc = omni_touch_profile(&p, t, hex);

        if (rc == OMNI_OK && !id->linked) {
            /* First sight: omni_wtxn_put_profile()'s alias writes. */
            rc = omni_batch_put_aliases(b->w, &p);
            id->linked = 1;
        }

        if (rc != OMNI_OK) {
            omni_profile_free(&p);
            return rc;
        }

        if (pids) {
            memcpy(pids[i], g->pid, OMNI_ID_LEN);
        }
    }

    rc = omni_wtxn_put_record(b->w, &p);
    omni_profile_free(&p);

    return rc;
}


int
omni_apply_touches(omni_wtxn_t *w, const omni_touch_t *ops, size_t n,
    unsigned char (*pids)[OMNI_ID_LEN])
{
    return omni_apply_touches_stat(w, ops, n, pids, NULL);
}


int
omni_apply_touches_stat(omni_wtxn_t *w, const omni_touch_t *ops, size_t n,
    unsigned char (*pids)[OMNI_ID_LEN], omni_touches_stat_t *stat)
{
    int           rc, safe;
    size_t        i, chunk;
    uint32_t      g;
    omni_batch_t  b;

    if (n == 0) {
        return OMNI_OK;
    }

    /* Huge batches in passes that bound the index's memory. */
    if (n > OMNI_BATCH_MAX) {
        for (i = 0; i < n; i += chunk) {
            chunk = n - i < OMNI_BATCH_MAX ? n - i : OMNI_BATCH_MAX;

            rc = omni_apply_touches_stat(w, ops + i, chunk,
                                         pids ? pids + i : NULL, stat);
            if (rc != OMNI_OK) {
                return rc;
            }
        }

        return OMNI_OK;
    }

    if (n == 1 && stat == NULL) {
        return omni_apply_touch(w, ops, pids ? pids[0] : NULL);
    }

    if (omni_batch_init(&b, w, ops, (uint32_t) n) != OMNI_OK) {
        /* No memory for the index: touch by touch needs none. */
        for (i = 0; i < n; i++) {
            rc = omni_apply_touch(w, &ops[i], pids ? pids[i] : NULL);
            if (rc != OMNI_OK) {
                return rc;
            }
        }

        if (stat) {
            stat->touches += n;
            stat->sequential += n;
        }

        return OMNI_OK;
    }

    safe = 1;
    rc = omni_batch_resolve(&b);

    if (rc == OMNI_OK) {
        omni_batch_group(&b);
        rc = omni_batch_check(&b, &safe);
    }

    if (rc == OMNI_OK && !safe) {
        for (i = 0; i < n && rc == OMNI_OK; i++) {
            rc = omni_apply_touch(w, &ops[i], pids ? pids[i] : NULL);
        }

        b.sequential = n;

    } else {
        for (g = 0; g < b.ngroups && rc == OMNI_OK; g++) {
            rc = omni_batch_apply_group(&b, &b.groups[g], pids);
        }
    }

    if (stat) {
        stat->touches += n;
        stat->identities += b.nidents;
        stat->profiles += b.ngroups;
        stat->sequential += b.sequential;
        stat->spliced += b.spliced;
    }

    omni_batch_free(&b);

    return rc;
}


int
omni_link_alias(omni_wtxn_t *w, const unsigned char *pid, unsigned kind,
    const char *value, size_t len, uint32_t now)
{
    int             rc;
    unsigned char   old[OMNI_ID_LEN];
    omni_profile_t  p;

    rc = omni_wtxn_get_alias(w, kind, value, len, old);

    if (rc == OMNI_OK && memcmp(old, pid, OMNI_ID_LEN) != 0) {
        /* Take the alias away from the profile that had it. */
        rc = omni_wtxn_get_profile(w, old, &p);

        if (rc == OMNI_OK) {
            omni_profile_del_alias(&p, kind, value, len);
            rc = omni_wtxn_put_profile(w, &p);
        }

        omni_profile_free(&p);

        if (rc != OMNI_OK && rc != OMNI_NOTFOUND) {
            return rc;
        }

    } else if (rc != OMNI_OK && rc != OMNI_NOTFOUND) {
        return rc;
    }

    rc = omni_wtxn_get_profile(w, pid, &p);
    if (rc != OMNI_OK && rc != OMNI_NOTFOUND) {
        omni_profile_free(&p);
        return rc;
    }

    if (rc == OMNI_NOTFOUND) {
        p.created = now;
        p.updated = now;
    }

    if (omni_profile_add_alias(&p, kind, value, len) != OMNI_OK) {
        omni_profile_free(&p);
        return OMNI_ERROR;
    }

    rc = omni_wtxn_put_profile(w, &p);
    omni_profile_free(&p);

    return rc;
}
