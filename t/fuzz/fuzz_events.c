/*
 * Fuzz target for event ingest (omni_event.h, docs/events.md).
 *
 * Every input is a request body for omni_event_batch_parse(), parsed
 * under both trust levels, with and without a requesting visitor: a
 * browser (cookie), an app (device token), a client with nobody to speak
 * for, a server key, and an upstream's X-Omni-Event about its visitor.
 * What comes back is checked against the documented invariants (a
 * refusal names a field and a reason; a client event speaks only for its
 * visitor, never carries a server-only name, userId, trait or channel;
 * the email never stays in traits_json; ...).  Every valid event is then
 * applied to a store in a temporary directory, all of them in one write
 * transaction that is committed or aborted (chosen from the input), and
 * every accepted event's profile must decode.  A violated invariant
 * aborts.
 *
 * libFuzzer (clang), with CORE standing for every .c of the core:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -DOMNI_FUZZ_LIBFUZZER
 *       -Ingx_omni_module/core t/fuzz/fuzz_events.c CORE
 *       -ljansson -llmdb -lcrypto -lmaxminddb -lpcre2-8 -lm -lpthread
 *       -o build/fuzz/fuzz_events
 *   build/fuzz/fuzz_events -max_len=16384 -dict=t/fuzz/events.dict
 *       build/fuzz/events t/fuzz/corpus/events
 *
 * Standalone (any compiler, e.g. gcc -fsanitize=address,undefined):
 * without OMNI_FUZZ_LIBFUZZER it has a main() that runs the files given
 * as arguments, for corpus replay and crash reproduction.
 *
 * The store is made in a directory from mkdtemp() under /tmp (or
 * $TMPDIR), opened without fsync, and its files and directory are
 * unlinked at once: LMDB keeps working on the open descriptors, and
 * nothing is left behind however the run ends (libFuzzer exits without
 * atexit handlers, crashes too).  A new one replaces it every few
 * hundred commits.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "omni_event.h"


#define FZ_NOW      1800000000u         /* 2027-01-15T08:00:00Z */
#define FZ_RESET    256                 /* commits before a new store */

static const unsigned char  fz_vid_a[OMNI_ID_LEN] = {
    0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01
};

static const unsigned char  fz_vid_b[OMNI_ID_LEN] = {
    0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02
};

static const char  *fz_client_traits[] = {
    "first_name", "firstName", "last_name", "lastName", "name", "locale",
    "language", "timezone", NULL
};

static omni_store_t  *fz_st;
static unsigned       fz_commits;


#define fz_check(cond)                                                      \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "fuzz_events: %s:%d: invariant failed: %s\n",   \
                    __FILE__, __LINE__, #cond);                             \
            abort();                                                        \
        }                                                                   \
    } while (0)


static void
fz_store_open(void)
{
    char               err[512], dir[256], path[300], f[320];
    const char        *tmp;
    omni_store_opts_t  opts;

    if (fz_st) {
        omni_store_close(fz_st);
        fz_st = NULL;
    }

    tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/omni-fuzz-events-XXXXXX",
             tmp && tmp[0] ? tmp : "/tmp");

    if (mkdtemp(dir) == NULL) {
        perror("fuzz_events: mkdtemp");
        abort();
    }

    snprintf(path, sizeof(path), "%s/store", dir);

    memset(&opts, 0, sizeof(opts));
    opts.map_size = (size_t) 256 << 20;
    opts.create = 1;
    opts.nosync = 1;

    if (omni_store_open(&fz_st, path, &opts, err, sizeof(err)) != OMNI_OK) {
        fprintf(stderr, "fuzz_events: cannot open %s: %s\n", path, err);
        abort();
    }

    /* the open descriptors are all this process needs */
    snprintf(f, sizeof(f), "%s/data.mdb", path);
    unlink(f);
    snprintf(f, sizeof(f), "%s/lock.mdb", path);
    unlink(f);
    rmdir(path);
    rmdir(dir);

    fz_commits = 0;
}


static int
fz_is_client_trait(const char *key)
{
    unsigned  i;

    for (i = 0; fz_client_traits[i]; i++) {
        if (strcmp(key, fz_client_traits[i]) == 0) {
            return 1;
        }
    }

    return 0;
}


/* What every parsed event must satisfy. */
static void
fz_check_event(const omni_event_t *ev, const omni_event_ctx_t *c)
{
    unsigned     i;
    const char  *k;
    json_t      *v;

    fz_check(ev->type >= OMNI_EV_TRACK && ev->type <= OMNI_EV_GROUP);
    fz_check(ev->trust == c->trust
             && ev->source == (c->source & OMNI_SRC_MASK));
    fz_check(ev->channel < OMNI_CH_MAX);
    fz_check(ev->time <= c->now);
    fz_check(ev->name[0] != '\0'
             && strlen(ev->name) <= OMNI_EVENT_MAX_NAME);
    fz_check(ev->message_id[0] != '\0'
             && strlen(ev->message_id) <= OMNI_EVENT_MAX_ID);
    fz_check(ev->nidents >= 1 && ev->nidents <= OMNI_EVENT_MAX_IDENTS);

    for (i = 0; i < ev->nidents; i++) {
        fz_check(ev->idents[i].len >= 1
                 && ev->idents[i].len <= OMNI_ALIAS_MAX_LEN
                 && strlen(ev->idents[i].value) == ev->idents[i].len);
        fz_check(ev->idents[i].kind == 'a' || ev->idents[i].kind == 'p'
                 || ev->idents[i].kind == OMNI_ALIAS_COOKIE
                 || ev->idents[i].kind == OMNI_ALIAS_DEVICE
                 || ev->idents[i].kind == OMNI_ALIAS_CUSTOMER
                 || ev->idents[i].kind == OMNI_ALIAS_EMAIL
                 || ev->idents[i].kind == OMNI_ALIAS_ANON);
        /* only a client's own Segment anonymousId is soft */
        fz_check(!ev->idents[i].soft
                 || (c->trust == OMNI_TRUST_CLIENT && i == 1
                     && ev->idents[i].kind == OMNI_ALIAS_ANON));
    }

    fz_check(ev->ntraits <= OMNI_EVENT_MAX_TRAITS
             && ev->nunset <= OMNI_EVENT_MAX_TRAITS);
    fz_check(ev->ntraits + ev->nunset == 0 || ev->type == OMNI_EV_IDENTIFY);

    for (i = 0; i < ev->ntraits; i++) {
        fz_check(ev->traits[i].key && ev->traits[i].key[0]
                 && strlen(ev->traits[i].key) <= 64
                 && strcmp(ev->traits[i].key, "email") != 0);
        fz_check(ev->traits[i].type == OMNI_ATTR_NUM
                 || (ev->traits[i].type == OMNI_ATTR_STR
                     && ev->traits[i].str != NULL
                     && strlen(ev->traits[i].str) <= OMNI_MAX_STR));
    }

    /* the email address never reaches the feed */
    if (ev->traits_json) {
        fz_check(json_is_object(ev->traits_json)
                 && json_object_get(ev->traits_json, "email") == NULL);
    }

    /* Sec-GPC or DNT: the feed's copy keeps no referrer, campaign data
       or advertising id, and says why (docs/privacy.md) */
    if (c->source & (OMNI_SRC_GPC | OMNI_SRC_DNT)) {
        v = ev->feed_extra ? json_object_get(ev->feed_extra, "context")
                           : NULL;
        fz_check(json_is_object(v)
                 && json_is_string(json_object_get(v, "privacy")));
        fz_check(json_object_get(v, "campaign") == NULL
                 && json_object_get(v, "referrer") == NULL);
        fz_check(json_object_get(json_object_get(v, "page"), "referrer")
                 == NULL);
        fz_check(json_object_get(json_object_get(v, "device"),
                                 "advertisingId")
                 == NULL);
        fz_check(json_object_get(ev->properties, "referrer") == NULL);
    }

    switch (ev->name_id) {

    case OMNI_EVN_PRODUCT_VIEWED:
    case OMNI_EVN_PRODUCT_ADDED:
    case OMNI_EVN_PRODUCT_REMOVED:
        fz_check(ev->nproducts == 1 && ev->products[0].sku != NULL
                 && ev->properties != NULL);
        fz_check(ev->products[0].qty <= 10000);
        break;

    case OMNI_EVN_ORDER_COMPLETED:
        fz_check(ev->order_id != NULL && ev->order_id[0] != '\0');
        fz_check(ev->nproducts >= 1
                 && ev->nproducts <= OMNI_EVENT_MAX_PRODUCTS);

        for (i = 0; i < ev->nproducts; i++) {
            fz_check(ev->products[i].sku != NULL);
        }

        break;

    default:
        fz_check(ev->order_id == NULL);
    }

    if (c->trust != OMNI_TRUST_CLIENT) {
        return;
    }

    /* a client speaks for its visitor only, about low-trust things */
    fz_check(c->visitor_kind != 0);
    fz_check(ev->idents[0].kind == c->visitor_kind
             && (ev->nidents == 1
                 || (ev->nidents == 2 && ev->idents[1].soft)));
    fz_check(ev->type != OMNI_EV_ALIAS && ev->type != OMNI_EV_GROUP);
    fz_check(ev->user_id[0] == '\0');
    fz_check(ev->name_id != OMNI_EVN_ORDER_COMPLETED
             && ev->name_id != OMNI_EVN_EMAIL_OPENED
             && ev->name_id != OMNI_EVN_EMAIL_CLICKED
             && ev->name_id != OMNI_EVN_SMS_CLICKED);
    fz_check(ev->channel == OMNI_CH_WEB || ev->channel == OMNI_CH_APP
             || ev->channel == c->channel);

    for (i = 0; i < ev->ntraits; i++) {
        fz_check(fz_is_client_trait(ev->traits[i].key));
    }

    if (ev->traits_json) {
        json_object_foreach(ev->traits_json, k, v) {
            fz_check(fz_is_client_trait(k) && !json_is_object(v));
        }
    }
}


/* A refused event names a field and says why, and holds nothing. */
static void
fz_check_refusal(const omni_event_t *ev, int rc, const omni_event_err_t *e)
{
    fz_check(rc == OMNI_INVALID || rc == OMNI_EVENT_FORBIDDEN
             || rc == OMNI_ERROR);
    fz_check(e->field[0] != '\0' && e->reason[0] != '\0');
    fz_check(ev->products == NULL && ev->traits == NULL
             && ev->unset == NULL && ev->order_id == NULL
             && ev->properties == NULL && ev->traits_json == NULL);
}


static void
fz_apply(omni_wtxn_t *w, omni_event_batch_t *b, int *failed)
{
    int             rc, status;
    unsigned        i;
    omni_profile_t  p;
    unsigned char   pid[OMNI_ID_LEN];

    for (i = 0; i < b->n && !*failed; i++) {
        if (b->rc[i] != OMNI_OK) {
            continue;
        }

        status = -1;
        rc = omni_event_apply(w, &b->events[i], &status, pid);

        if (rc != OMNI_OK) {
            /* a store error (a full map): the caller aborts */
            fz_check(rc < 0);
            *failed = 1;
            break;
        }

        fz_check(status == OMNI_EVENT_ACCEPTED
                 || status == OMNI_EVENT_DUPLICATE);

        if (status == OMNI_EVENT_ACCEPTED) {
            /* what was accepted is stored, and decodes */
            rc = omni_wtxn_get_profile(w, pid, &p);
            fz_check(rc == OMNI_OK);
            fz_check(memcmp(p.id, pid, OMNI_ID_LEN) == 0);
            omni_profile_free(&p);
        }
    }
}


int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    int                 rc, failed;
    unsigned            k, i;
    omni_wtxn_t        *w;
    omni_event_ctx_t    ctx[5];
    omni_event_err_t    err;
    omni_event_batch_t  b[5];

    if (fz_st == NULL) {
        fz_store_open();
    }

    memset(ctx, 0, sizeof(ctx));

    for (k = 0; k < 5; k++) {
        ctx[k].now = FZ_NOW;
        ctx[k].channel = OMNI_CH_MAX;
    }

    /* a browser */
    ctx[0].trust = OMNI_TRUST_CLIENT;
    ctx[0].source = OMNI_SRC_CLIENT;
    ctx[0].channel = OMNI_CH_WEB;
    ctx[0].visitor_kind = OMNI_ALIAS_COOKIE;
    memcpy(ctx[0].visitor, fz_vid_a, OMNI_ID_LEN);

    /* an app whose request said Sec-GPC: 1 */
    ctx[1].trust = OMNI_TRUST_CLIENT;
    ctx[1].source = OMNI_SRC_CLIENT | OMNI_SRC_GPC;
    ctx[1].channel = OMNI_CH_APP;
    ctx[1].visitor_kind = OMNI_ALIAS_DEVICE;
    memcpy(ctx[1].visitor, fz_vid_b, OMNI_ID_LEN);

    /* a client with nobody to speak for */
    ctx[2].trust = OMNI_TRUST_CLIENT;
    ctx[2].source = OMNI_SRC_CLIENT;

    /* a server key */
    ctx[3].trust = OMNI_TRUST_SERVER;
    ctx[3].source = OMNI_SRC_SERVER;

    /* an upstream's signal about the visitor of its request */
    ctx[4].trust = OMNI_TRUST_SERVER;
    ctx[4].source = OMNI_SRC_UPSTREAM;
    ctx[4].channel = OMNI_CH_WEB;
    ctx[4].visitor_kind = OMNI_ALIAS_COOKIE;
    memcpy(ctx[4].visitor, fz_vid_a, OMNI_ID_LEN);

    for (k = 0; k < 5; k++) {
        memset(&err, 0, sizeof(err));
        rc = omni_event_batch_parse(&b[k], (const char *) data, size,
                                    &ctx[k], &err);

        if (rc != OMNI_OK) {
            fz_check(rc == OMNI_INVALID || rc == OMNI_ERROR);
            fz_check(err.field[0] != '\0' && err.reason[0] != '\0');
            fz_check(b[k].n == 0 && b[k].events == NULL);
            continue;
        }

        fz_check(b[k].n >= 1 && b[k].n <= OMNI_EVENT_MAX_BATCH);
        fz_check(b[k].batch || b[k].n == 1);

        for (i = 0; i < b[k].n; i++) {
            if (b[k].rc[i] == OMNI_OK) {
                fz_check(k != 2);       /* nobody: nothing is valid */
                fz_check_event(&b[k].events[i], &ctx[k]);

            } else {
                fz_check_refusal(&b[k].events[i], b[k].rc[i],
                                 &b[k].errs[i]);
            }
        }
    }

    /* the body as a whole is judged alike under every trust */
    for (k = 1; k < 5; k++) {
        fz_check((b[k].n == 0) == (b[0].n == 0) && b[k].n == b[0].n);
    }

    /* every valid event, in one write transaction */
    if (b[0].n && omni_store_write_begin(fz_st, &w) == OMNI_OK) {
        failed = 0;

        for (k = 0; k < 5; k++) {
            fz_apply(w, &b[k], &failed);
        }

        if (failed || (size & 1)) {
            omni_wtxn_abort(w);

        } else if (omni_wtxn_commit(w) == OMNI_OK) {
            fz_commits++;
        }
    }

    for (k = 0; k < 5; k++) {
        omni_event_batch_free(&b[k]);
    }

    if (fz_commits >= FZ_RESET) {
        fz_store_open();
    }

    return 0;
}


#if !defined(OMNI_FUZZ_LIBFUZZER)

#include "fuzz_replay.h"


int
main(int argc, char **argv)
{
    int  rc;

    rc = fuzz_replay(argc, argv);

    if (fz_st) {
        omni_store_close(fz_st);
    }

    return rc;
}

#endif
