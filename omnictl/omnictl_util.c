/*
 * omnictl: opening the store, write transactions with map growth, and the
 * argument parsers shared by the commands.
 */

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "omnictl.h"
#include "omni_journal.h"


/*
 * Map growths and adoptions one write may go through before giving up:
 * doubling from 1 MiB reaches 1 TiB in 20 steps.
 */
#define OMNICTL_MAX_RETRIES   40


static const struct {
    const char  *name;
    unsigned     kind;
} omnictl_alias_types[] = {
    { "cookie", OMNI_ALIAS_COOKIE },
    { "device", OMNI_ALIAS_DEVICE },
    { "customer", OMNI_ALIAS_CUSTOMER },
    { "email", OMNI_ALIAS_EMAIL },
    { "anonymous", OMNI_ALIAS_ANON },
    { NULL, 0 }
};


/*
 * The error of a store that did not open, with what to do about the two
 * usual causes: a store that does not exist yet, and a store that
 * belongs to nginx's user (the packaged /var/lib/omni is www-data, group
 * omni, mode 2770).
 */
static void
omnictl_open_error(omnictl_ctx_t *ctx, int mode, const char *err)
{
    char            file[4200], hint[1024];
    struct stat     sb;
    struct group   *gr;
    struct passwd  *pw;
    const char     *cmd, *user, *group;

    cmd = ctx->cmd ? ctx->cmd->name : "stat";
    hint[0] = '\0';

    snprintf(file, sizeof(file), "%s/data.mdb", ctx->store);

    if (stat(ctx->store, &sb) != 0 && errno == ENOENT) {
        snprintf(hint, sizeof(hint), "; the store does not exist: create "
                 "it with \"omnictl --store %s stat --create\"%s",
                 ctx->store, strcmp(cmd, "import") == 0
                 ? " or \"import --create\"" : "");

    } else if (mode != OMNICTL_OPEN_CREATE
               && stat(file, &sb) != 0 && errno == ENOENT
               && stat(ctx->store, &sb) == 0
               && access(ctx->store, R_OK | X_OK) == 0)
    {
        snprintf(hint, sizeof(hint), "; the store is not initialised: run "
                 "\"omnictl --store %s stat --create\" (or start nginx "
                 "with omni_store %s)", ctx->store, ctx->store);

    } else if (stat(ctx->store, &sb) == 0
               && (access(ctx->store, R_OK | W_OK | X_OK) != 0
                   || (access(file, R_OK) != 0 && errno == EACCES)))
    {
        pw = getpwuid(sb.st_uid);
        gr = getgrgid(sb.st_gid);
        user = pw ? pw->pw_name : "the store's owner";
        group = gr ? gr->gr_name : NULL;

        if (group != NULL && sb.st_gid != 0 && (sb.st_mode & 0070) == 0070) {
            snprintf(hint, sizeof(hint), "; permission denied: join the "
                     "group \"%s\" that owns the store (sudo adduser "
                     "\"$USER\" %s, then log in again), or run omnictl as "
                     "\"sudo -u %s omnictl ...\"", group, group, user);

        } else {
            snprintf(hint, sizeof(hint), "; permission denied: run omnictl "
                     "as the store's owner: \"sudo -u %s omnictl ...\"",
                     user);
        }
    }

    omnictl_error(ctx, "%s%s", err, hint);
}


/*
 * Readers attach: they open the existing databases without a write
 * transaction, so they never wait for nginx's writer or an import, and
 * LMDB takes the map size from the file.
 *
 * Writers end up with the larger of --map-size and the size the file
 * already has: the core opens with --map-size (or its 1 GiB default), and
 * omni_store_set_map_size(st, 0) then adopts what the file records.
 */
int
omnictl_open(omnictl_ctx_t *ctx, int mode, omni_store_t **stp)
{
    int                rc;
    char               err[1024];
    size_t             size;
    omni_store_t      *st;
    omni_store_opts_t  opts;

    *stp = NULL;

    if (ctx->store == NULL) {
        return omnictl_usage_error(ctx, "--store DIR (or OMNI_STORE) is "
                                   "required");
    }

    memset(&opts, 0, sizeof(omni_store_opts_t));

    if (mode == OMNICTL_OPEN_READ) {
        opts.attach = 1;

    } else {
        opts.map_size = ctx->map_size;
        opts.nosync = (mode == OMNICTL_OPEN_BULK);
        /* import --create: a bulk load that may start a new store */
        opts.create = (mode == OMNICTL_OPEN_CREATE)
                      || (mode == OMNICTL_OPEN_BULK && ctx->create);
    }

    rc = omni_store_open(&st, ctx->store, &opts, err, sizeof(err));
    if (rc != OMNI_OK) {
        omnictl_open_error(ctx, mode, err);
        return OMNICTL_EXIT_FATAL;
    }

    if (omni_store_replayed(st)) {
        fprintf(stderr, "omnictl: %s: recovered after a host crash: %u "
                "event(s) replayed from the journal\n", ctx->store,
                omni_store_replayed(st));
    }

    if (mode != OMNICTL_OPEN_READ) {
        rc = omni_store_set_map_size(st, 0);

        if (rc == OMNI_OK) {
            size = omni_store_map_size(st);

            if (ctx->map_size > size) {
                rc = omni_store_set_map_size(st, ctx->map_size);
            }
        }

        if (rc != OMNI_OK) {
            omnictl_error(ctx, "%s", omni_store_error(st));
            omni_store_close(st);
            return OMNICTL_EXIT_FATAL;
        }
    }

    *stp = st;

    return OMNICTL_EXIT_OK;
}


int
omnictl_grow(omnictl_ctx_t *ctx, omni_store_t *st)
{
    size_t  size;

    size = omni_store_map_size(st);

    if (size > ((size_t) -1) / 2) {
        return OMNI_MAP_FULL;
    }

    return omni_store_set_map_size(st, size * 2);
}


/*
 * The answer to a write that failed on the map: a full map is doubled, a
 * map grown by another process (nginx, another omnictl) is adopted.
 * OMNI_OK: try the same write again; anything else ends it.
 */
static int
omnictl_map_retry(omnictl_ctx_t *ctx, omni_store_t *st, int rc, int attempt)
{
    if (attempt >= OMNICTL_MAX_RETRIES) {
        return rc;
    }

    if (rc == OMNI_MAP_RESIZED) {
        return omni_store_set_map_size(st, 0);
    }

    if (rc == OMNI_MAP_FULL) {
        return omnictl_grow(ctx, st);
    }

    return rc;
}


/*
 * Runs step in a write transaction and commits, again after a map change
 * (omnictl_map_retry()), so step must only depend on what it reads in
 * the transaction it is given.  Any other result of step aborts and is
 * returned.
 */
int
omnictl_write(omnictl_ctx_t *ctx, omni_store_t *st, omnictl_write_pt step,
    void *arg)
{
    int           rc, attempt;
    omni_wtxn_t  *w;

    for (attempt = 0; /* void */; attempt++) {

        rc = omni_store_write_begin(st, &w);

        if (rc == OMNI_OK) {
            rc = step(w, arg);

            if (rc == OMNI_OK) {
                /* frees w whatever the result */
                rc = omni_wtxn_commit(w);

            } else {
                omni_wtxn_abort(w);
            }
        }

        if (rc == OMNI_OK) {
            return OMNI_OK;
        }

        rc = omnictl_map_retry(ctx, st, rc, attempt);
        if (rc != OMNI_OK) {
            return rc;
        }
    }
}


/* omni_batch_apply() (all or nothing), again after a map change. */
int
omnictl_batch(omnictl_ctx_t *ctx, omni_store_t *st,
    const omni_batch_opts_t *opts, omni_batch_t *b)
{
    int  rc, attempt;

    for (attempt = 0; /* void */; attempt++) {

        rc = omni_batch_apply(st, opts, b);
        if (rc == OMNI_OK) {
            return OMNI_OK;
        }

        rc = omnictl_map_retry(ctx, st, rc, attempt);
        if (rc != OMNI_OK) {
            return rc;
        }
    }
}


/* "4g", "512m", "1048576", "64MiB": binary units, case-insensitive. */
int
omnictl_parse_size(const char *s, size_t *size)
{
    char                *end;
    unsigned             shift;
    unsigned long long   n;

    if (s[0] < '0' || s[0] > '9') {
        return OMNI_INVALID;
    }

    errno = 0;
    n = strtoull(s, &end, 10);
    if (errno != 0) {
        return OMNI_INVALID;
    }

    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: shift = 0;
    }

    if (shift && (*end == 'i' || *end == 'I')) {
        end++;
        if (*end != 'b' && *end != 'B') {
            return OMNI_INVALID;
        }
    }

    if (*end == 'b' || *end == 'B') {
        end++;
    }

    if (*end != '\0' || n == 0 || n > (((size_t) -1) >> shift)) {
        return OMNI_INVALID;
    }

    *size = (size_t) n << shift;

    return OMNI_OK;
}


/* "3600", "90s", "45m", "12h", "30d", "2w"; 0 means never. */
int
omnictl_parse_ttl(const char *s, uint32_t *ttl)
{
    char                *end;
    unsigned long long   n, unit;

    if (s[0] < '0' || s[0] > '9') {
        return OMNI_INVALID;
    }

    errno = 0;
    n = strtoull(s, &end, 10);
    if (errno != 0) {
        return OMNI_INVALID;
    }

    switch (*end) {
    case 's': unit = 1; end++; break;
    case 'm': unit = 60; end++; break;
    case 'h': unit = 3600; end++; break;
    case 'd': unit = 86400; end++; break;
    case 'w': unit = 7 * 86400; end++; break;
    default: unit = 1;
    }

    if (*end != '\0' || n > UINT32_MAX / unit) {
        return OMNI_INVALID;
    }

    *ttl = (uint32_t) (n * unit);

    return OMNI_OK;
}


const char *
omnictl_alias_type(unsigned kind)
{
    unsigned  i;

    for (i = 0; omnictl_alias_types[i].name; i++) {
        if (omnictl_alias_types[i].kind == kind) {
            return omnictl_alias_types[i].name;
        }
    }

    return "unknown";
}


/*
 * TYPE:VALUE into the alias kind and the value as the store keys it.
 *
 * The normalisation (ids to lowercase hex, email addresses hashed) is the
 * one omni_profile_from_json() applies to "aliases" in imported profiles;
 * rather than keep a second copy of those rules, the value is run through
 * it, so an alias given here always finds what an import stored.
 */
int
omnictl_parse_alias(const char *spec, unsigned *kind, char *value,
    size_t *len, char *err, size_t errlen)
{
    int             rc;
    char            jerr[512];
    size_t          tlen;
    unsigned        i;
    json_t         *obj;
    const char     *colon, *reason;
    omni_profile_t  p;

    colon = strchr(spec, ':');
    if (colon == NULL) {
        snprintf(err, errlen, "alias \"%s\": expected TYPE:VALUE", spec);
        return OMNI_INVALID;
    }

    tlen = (size_t) (colon - spec);

    for (i = 0; omnictl_alias_types[i].name; i++) {
        if (strlen(omnictl_alias_types[i].name) == tlen
            && memcmp(omnictl_alias_types[i].name, spec, tlen) == 0)
        {
            break;
        }
    }

    if (omnictl_alias_types[i].name == NULL) {
        snprintf(err, errlen, "alias \"%s\": unknown type \"%.*s\" "
                 "(expected cookie, device, customer or email)", spec,
                 (int) tlen, spec);
        return OMNI_INVALID;
    }

    obj = json_pack("{s:s, s:[{s:s, s:s}]}",
                    "id", "00000000000000000000000000000000",
                    "aliases", "type", omnictl_alias_types[i].name,
                    "id", colon + 1);
    if (obj == NULL) {
        /* json_pack refuses strings that are not UTF-8 */
        snprintf(err, errlen, "alias \"%s\": not valid UTF-8", spec);
        return OMNI_INVALID;
    }

    omni_profile_init(&p, NULL);

    rc = omni_profile_from_json(&p, obj, jerr, sizeof(jerr));
    json_decref(obj);

    if (rc != OMNI_OK || p.naliases != 1) {
        /* "aliases[0].id: reason" -> "reason" */
        reason = strstr(jerr, ": ");
        reason = reason ? reason + 2 : jerr;

        snprintf(err, errlen, "alias \"%s\": %s", spec, reason);
        omni_profile_free(&p);
        return OMNI_INVALID;
    }

    *kind = p.aliases[0].kind;
    *len = strlen(p.aliases[0].value);

    if (*len > OMNI_ALIAS_MAX_LEN) {
        snprintf(err, errlen, "alias \"%s\": too long", spec);
        omni_profile_free(&p);
        return OMNI_INVALID;
    }

    memcpy(value, p.aliases[0].value, *len + 1);
    omni_profile_free(&p);

    return OMNI_OK;
}


/*
 * The profile a command names: ID, or --alias TYPE:VALUE.  Parsed before
 * the store is opened, so a bad argument is a usage error.
 */
int
omnictl_target_parse(omnictl_ctx_t *ctx, const char *id, const char *alias,
    omnictl_target_t *t)
{
    char  err[1024];

    memset(t, 0, sizeof(omnictl_target_t));

    if (alias == NULL) {
        if (omni_id_parse(id, strlen(id), t->pid) != OMNI_OK) {
            return omnictl_usage_error(ctx, "invalid profile id \"%s\" "
                                       "(expected 32 hex digits or a UUID)",
                                       id);
        }

        return OMNICTL_EXIT_OK;
    }

    if (omnictl_parse_alias(alias, &t->kind, t->value, &t->len, err,
                            sizeof(err))
        != OMNI_OK)
    {
        return omnictl_usage_error(ctx, "%s", err);
    }

    t->alias = alias;

    return OMNICTL_EXIT_OK;
}


/*
 * The target's profile id, looked up in w, or when w is NULL in the read
 * transaction the caller has begun on st.  A cookie or device with no
 * alias resolves to the profile keyed by its own id, as on the request
 * path.  Returns OMNI_OK, OMNI_NOTFOUND or a store error.
 */
int
omnictl_target_resolve(omni_store_t *st, omni_wtxn_t *w,
    omnictl_target_t *t)
{
    int  rc;

    if (t->alias == NULL) {
        return OMNI_OK;
    }

    if (w != NULL) {
        rc = omni_wtxn_get_alias(w, t->kind, t->value, t->len, t->pid);

    } else {
        rc = omni_store_get_alias(st, t->kind, t->value, t->len, t->pid);
    }

    if (rc == OMNI_NOTFOUND
        && (t->kind == OMNI_ALIAS_COOKIE || t->kind == OMNI_ALIAS_DEVICE))
    {
        /* the value is normalised hex, so this cannot fail */
        if (omni_id_parse(t->value, t->len, t->pid) == OMNI_OK) {
            rc = OMNI_OK;
        }
    }

    return rc;
}


/* "profile <hex>" or the alias as given, for messages. */
const char *
omnictl_target_name(omnictl_target_t *t)
{
    if (t->alias != NULL) {
        return t->alias;
    }

    memcpy(t->name, "profile ", 8);
    omni_id_hex(t->pid, t->name + 8);

    return t->name;
}


static int
omnictl_has_alias(const omni_profile_t *p, const omni_alias_t *a)
{
    unsigned  i;

    for (i = 0; i < p->naliases; i++) {
        if (p->aliases[i].kind == a->kind
            && strcmp(p->aliases[i].value, a->value) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * Stores p in place of the profile with its id, keeping the aliases
 * database in step with the records:
 *   - aliases the old profile had and p has not are deleted (when they
 *     still point at this profile);
 *   - aliases of p that point at another profile are taken away from that
 *     profile's record, as omni_link_alias() does;
 *   - omni_wtxn_put_profile() then points every alias of p at p.
 */
int
omnictl_replace_profile(omni_wtxn_t *w, const omni_profile_t *p,
    int *replaced)
{
    int             rc;
    size_t          len;
    unsigned        i;
    omni_profile_t  other;
    unsigned char   owner[OMNI_ID_LEN];
    omni_alias_t   *a;

    *replaced = 0;

    rc = omni_wtxn_get_profile(w, p->id, &other);

    if (rc == OMNI_OK) {
        *replaced = 1;

        for (i = 0; i < other.naliases; i++) {
            a = &other.aliases[i];

            if (omnictl_has_alias(p, a)) {
                continue;
            }

            len = strlen(a->value);
            rc = omni_wtxn_get_alias(w, a->kind, a->value, len, owner);

            if (rc == OMNI_OK && memcmp(owner, p->id, OMNI_ID_LEN) == 0) {
                rc = omni_wtxn_del_alias(w, a->kind, a->value, len);
            }

            if (rc != OMNI_OK && rc != OMNI_NOTFOUND) {
                break;
            }

            rc = OMNI_OK;
        }
    }

    omni_profile_free(&other);

    if (rc != OMNI_OK && rc != OMNI_NOTFOUND) {
        return rc;
    }

    for (i = 0; i < p->naliases; i++) {
        a = &p->aliases[i];
        len = strlen(a->value);

        rc = omni_wtxn_get_alias(w, a->kind, a->value, len, owner);

        if (rc == OMNI_NOTFOUND) {
            continue;
        }

        if (rc != OMNI_OK) {
            return rc;
        }

        if (memcmp(owner, p->id, OMNI_ID_LEN) == 0) {
            continue;
        }

        rc = omni_wtxn_get_profile(w, owner, &other);

        if (rc == OMNI_OK
            && omni_profile_del_alias(&other, a->kind, a->value, len)
               == OMNI_OK)
        {
            rc = omni_wtxn_put_profile(w, &other);
        }

        omni_profile_free(&other);

        if (rc != OMNI_OK && rc != OMNI_NOTFOUND) {
            return rc;
        }
    }

    return omni_wtxn_put_profile(w, p);
}


int
omnictl_print_json(omnictl_ctx_t *ctx, json_t *obj, size_t flags)
{
    int  rc;

    if (obj == NULL) {
        omnictl_error(ctx, "out of memory");
        return OMNICTL_EXIT_FATAL;
    }

    rc = json_dumpf(obj, stdout, flags);
    json_decref(obj);

    if (rc != 0 || fputc('\n', stdout) == EOF) {
        omnictl_error(ctx, "cannot write the output");
        return OMNICTL_EXIT_FATAL;
    }

    return OMNICTL_EXIT_OK;
}


/* Reads FILE, or standard input for NULL or "-"; *data is NUL-terminated. */
int
omnictl_read_all(const char *path, char **data, size_t *len)
{
    int      err;
    char    *buf, *nbuf;
    FILE    *f;
    size_t   n, size;

    *data = NULL;
    *len = 0;

    if (path == NULL || strcmp(path, "-") == 0) {
        f = stdin;

    } else {
        f = fopen(path, "rb");
        if (f == NULL) {
            return OMNI_ERROR;
        }
    }

    size = 65536;
    n = 0;
    buf = malloc(size);

    while (buf != NULL) {
        if (n + 1 >= size) {
            size *= 2;
            nbuf = realloc(buf, size);
            if (nbuf == NULL) {
                free(buf);
                buf = NULL;
                errno = ENOMEM;
                break;
            }

            buf = nbuf;
        }

        n += fread(buf + n, 1, size - n - 1, f);

        if (ferror(f)) {
            err = errno;
            free(buf);
            buf = NULL;
            errno = err;
            break;
        }

        if (feof(f)) {
            break;
        }
    }

    if (f != stdin) {
        err = errno;
        fclose(f);
        errno = err;
    }

    if (buf == NULL) {
        return OMNI_ERROR;
    }

    buf[n] = '\0';
    *data = buf;
    *len = n;

    return OMNI_OK;
}


double
omnictl_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}
