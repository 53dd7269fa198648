/*
 * omnictl: administrative commands (token, stat).
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "omnictl.h"
#include "omni_batch.h"


#define OMNICTL_DEFAULT_TTL   (30 * 86400)


typedef struct {
    unsigned char   pid[OMNI_ID_LEN];
    char            device[OMNI_ID_HEX_LEN + 1];
    unsigned        alias_kind;     /* OMNI_ALIAS_DEVICE or _COOKIE */
    uint32_t        now;
} omnictl_token_link_t;


static int omnictl_load_secrets(omnictl_ctx_t *ctx, omni_keyring_t *kr);
static int omnictl_token_link_step(omni_wtxn_t *w, void *arg);
static int omnictl_mint(omnictl_ctx_t *ctx, unsigned kind);


/* ---- token and cookie ---- */

int
omnictl_token(omnictl_ctx_t *ctx)
{
    return omnictl_mint(ctx, OMNI_KIND_TOKEN);
}


/*
 * A signed web visitor cookie, for support staff and tests: with
 * --profile the browser holding it is that person (the cookie alias is
 * linked), so an email link or a demo can open a personalized session.
 */
int
omnictl_cookie(omnictl_ctx_t *ctx)
{
    return omnictl_mint(ctx, OMNI_KIND_COOKIE);
}


static int
omnictl_mint(omnictl_ctx_t *ctx, unsigned kind)
{
    int                    ret, rc;
    char                   token[OMNI_TOKEN_LEN + 1];
    char                   profile[OMNI_ID_HEX_LEN + 1];
    time_t                 now;
    json_t                *obj;
    uint32_t               ttl;
    omni_token_t           t;
    omni_store_t          *st;
    omni_keyring_t        *kr;
    omnictl_token_link_t   ln;

    memset(&t, 0, sizeof(omni_token_t));
    memset(&ln, 0, sizeof(omnictl_token_link_t));

    /* Cookies carry no expiry of their own: Max-Age governs them. */
    ttl = kind == OMNI_KIND_TOKEN ? OMNICTL_DEFAULT_TTL : 0;

    if (ctx->ttl != NULL && omnictl_parse_ttl(ctx->ttl, &ttl) != OMNI_OK) {
        return omnictl_usage_error(ctx, "invalid --ttl \"%s\" (expected "
                                   "seconds, or e.g. 45m, 12h, 30d)",
                                   ctx->ttl);
    }

    if (ctx->device != NULL) {
        if (omni_id_parse(ctx->device, strlen(ctx->device), t.id)
            != OMNI_OK)
        {
            return omnictl_usage_error(ctx, "invalid --device \"%s\" "
                                       "(expected 32 hex digits or a UUID)",
                                       ctx->device);
        }

    } else if (omni_id_random(t.id) != OMNI_OK) {
        omnictl_error(ctx, "cannot generate a random device id");
        return OMNICTL_EXIT_FATAL;
    }

    if (ctx->profile != NULL) {
        if (omni_id_parse(ctx->profile, strlen(ctx->profile), ln.pid)
            != OMNI_OK)
        {
            return omnictl_usage_error(ctx, "invalid --profile \"%s\" "
                                       "(expected 32 hex digits or a UUID)",
                                       ctx->profile);
        }

        if (ctx->store == NULL) {
            return omnictl_usage_error(ctx, "--profile needs --store DIR "
                                       "(or OMNI_STORE)");
        }
    }

    now = time(NULL);

    if (ttl != 0 && (uint64_t) now + ttl > UINT32_MAX) {
        return omnictl_usage_error(ctx, "--ttl \"%s\" expires after 2106",
                                   ctx->ttl);
    }

    t.kind = kind;
    t.issued = (uint32_t) now;
    t.expires = ttl ? (uint32_t) now + ttl : 0;

    /* the keyring holds secrets: kept off the stack, wiped after use */
    kr = calloc(1, sizeof(omni_keyring_t));
    if (kr == NULL) {
        omnictl_error(ctx, "out of memory");
        return OMNICTL_EXIT_FATAL;
    }

    ret = omnictl_load_secrets(ctx, kr);

    if (ret == OMNICTL_EXIT_OK && omni_token_sign(kr, &t, token) != OMNI_OK)
    {
        omnictl_error(ctx, "cannot sign the token");
        ret = OMNICTL_EXIT_FATAL;
    }

    omni_keyring_free(kr);
    free(kr);

    if (ret != OMNICTL_EXIT_OK) {
        return ret;
    }

    omni_id_hex(t.id, ln.device);

    if (ctx->profile != NULL) {
        ret = omnictl_open(ctx, OMNICTL_OPEN_WRITE, &st);
        if (ret != OMNICTL_EXIT_OK) {
            return ret;
        }

        ln.now = (uint32_t) now;
        ln.alias_kind = kind == OMNI_KIND_TOKEN ? OMNI_ALIAS_DEVICE
                                                : OMNI_ALIAS_COOKIE;

        rc = omnictl_write(ctx, st, omnictl_token_link_step, &ln);

        if (rc == OMNI_NOTFOUND) {
            omni_id_hex(ln.pid, profile);
            omnictl_error(ctx, "profile %s not found", profile);
            ret = OMNICTL_EXIT_FAILED;

        } else if (rc != OMNI_OK) {
            omnictl_error(ctx, "%s", omni_store_error(st));
            ret = OMNICTL_EXIT_FATAL;
        }

        omni_store_close(st);

        if (ret != OMNICTL_EXIT_OK) {
            return ret;
        }
    }

    if (kind == OMNI_KIND_TOKEN) {
        obj = json_pack("{s:s, s:s, s:I}", "token", token, "device",
                        ln.device, "expires", (json_int_t) t.expires);
    } else {
        obj = json_pack("{s:s, s:s}", "cookie", token, "visitor", ln.device);
    }

    if (obj != NULL && ctx->profile != NULL) {
        omni_id_hex(ln.pid, profile);
        json_object_set_new(obj, "profile", json_string(profile));
    }

    OPENSSL_cleanse(token, sizeof(token));

    return omnictl_print_json(ctx, obj, JSON_COMPACT);
}


/*
 * Points the device alias at an existing profile: the request path then
 * resolves the app's device to that person.
 */
static int
omnictl_token_link_step(omni_wtxn_t *w, void *arg)
{
    omnictl_token_link_t *ln = arg;

    int             rc;
    omni_profile_t  p;

    rc = omni_wtxn_get_profile(w, ln->pid, &p);
    omni_profile_free(&p);

    if (rc != OMNI_OK) {
        return rc;
    }

    return omni_link_alias(w, ln->pid, ln->alias_kind, ln->device,
                           OMNI_ID_HEX_LEN, ln->now);
}


/*
 * Secrets from --secret-file, else $OMNI_SECRET: one per line, the first
 * signs (the order of "omni_secret" directives in nginx.conf).  Trailing
 * CR/LF is stripped and blank lines are skipped; every secret passes the
 * checks nginx applies (omni_keyring_add).
 */
static int
omnictl_load_secrets(omnictl_ctx_t *ctx, omni_keyring_t *kr)
{
    int          ret;
    char        *data, *line, *next, err[256];
    size_t       len, n;
    unsigned     lineno;
    const char  *from, *env;

    if (ctx->secret_file != NULL) {
        from = ctx->secret_file;

        if (omnictl_read_all(ctx->secret_file, &data, &len) != OMNI_OK) {
            omnictl_error(ctx, "cannot read \"%s\": %s", ctx->secret_file,
                          strerror(errno));
            return OMNICTL_EXIT_FATAL;
        }

    } else {
        from = "OMNI_SECRET";

        env = getenv("OMNI_SECRET");
        if (env == NULL || env[0] == '\0') {
            return omnictl_usage_error(ctx, "a secret is required: "
                                       "--secret-file FILE or OMNI_SECRET");
        }

        len = strlen(env);
        data = malloc(len + 1);
        if (data == NULL) {
            omnictl_error(ctx, "out of memory");
            return OMNICTL_EXIT_FATAL;
        }

        memcpy(data, env, len + 1);
    }

    ret = OMNICTL_EXIT_OK;
    lineno = 0;

    for (line = data; line != NULL && line < data + len; line = next) {
        lineno++;

        next = memchr(line, '\n', data + len - line);
        n = next ? (size_t) (next - line) : (size_t) (data + len - line);
        if (next) {
            next++;
        }

        while (n > 0 && line[n - 1] == '\r') {
            n--;
        }

        if (n == 0) {
            continue;
        }

        if (omni_keyring_add(kr, line, n, err, sizeof(err)) != OMNI_OK) {
            omnictl_error(ctx, "%s, line %u: %s", from, lineno, err);
            ret = OMNICTL_EXIT_FATAL;
            break;
        }
    }

    if (ret == OMNICTL_EXIT_OK && kr->n == 0) {
        omnictl_error(ctx, "%s: no secret", from);
        ret = OMNICTL_EXIT_FATAL;
    }

    OPENSSL_cleanse(data, len);
    free(data);

    return ret;
}


/* ---- stat ---- */

int
omnictl_stat(omnictl_ctx_t *ctx)
{
    int                ret, rc, attempt;
    json_t            *obj;
    uint64_t           stream;
    omni_store_t      *st;
    omni_store_stat_t  s;

    ret = omnictl_open(ctx, ctx->create ? OMNICTL_OPEN_CREATE
                                        : OMNICTL_OPEN_READ, &st);
    if (ret != OMNICTL_EXIT_OK) {
        return ret;
    }

    for (attempt = 0; /* void */; attempt++) {
        rc = omni_store_stat(st, &s);

        if (rc != OMNI_MAP_RESIZED || attempt > 3
            || omni_store_set_map_size(st, 0) != OMNI_OK)
        {
            break;
        }
    }

    if (rc != OMNI_OK) {
        omnictl_error(ctx, "%s", omni_store_error(st));
        omni_store_close(st);
        return OMNICTL_EXIT_FATAL;
    }

    obj = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
                    "s:I, s:s}",
                    "map_size", (json_int_t) s.map_size,
                    "map_used", (json_int_t) s.map_used,
                    "max_readers", (json_int_t) s.max_readers,
                    "readers_used", (json_int_t) s.readers_used,
                    "profiles", (json_int_t) s.profiles,
                    "aliases", (json_int_t) s.aliases,
                    "touchpoints", (json_int_t) s.touchpoints,
                    "seen", (json_int_t) s.seen,
                    "first_seq", (json_int_t) s.first_seq,
                    "last_seq", (json_int_t) s.last_seq,
                    "schema", (json_int_t) s.schema,
                    "path", omni_store_path(st));

    /* a cluster node: the last sequence of the stream its store holds */
    if (obj && omni_store_stream_seq(st, &stream) == OMNI_OK && stream) {
        json_object_set_new(obj, "stream_seq", json_integer(stream));
    }

    omni_store_close(st);

    return omnictl_print_json(ctx, obj, JSON_INDENT(2));
}
