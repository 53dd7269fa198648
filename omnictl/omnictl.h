/*
 * omnictl: the command line side of ngx_omni_module.
 *
 * Every store access goes through the core (omni_store.h, omni_update.h),
 * the same code the nginx module runs, so omnictl never disagrees with
 * nginx about the record format, the alias keys or the token format.
 */

#ifndef OMNICTL_H
#define OMNICTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "omni_core.h"
#include "omni_record.h"
#include "omni_json.h"
#include "omni_store.h"
#include "omni_batch.h"
#include "omni_update.h"
#include "omni_rules.h"
#include "omni_token.h"


/* Exit codes. */
#define OMNICTL_EXIT_OK        0
#define OMNICTL_EXIT_FAILED    1    /* some input failed, or not found */
#define OMNICTL_EXIT_FATAL     2    /* usage or fatal error */
#define OMNICTL_EXIT_VERSION  -1    /* --version printed: exit 0 */

/* How a command opens the store. */
#define OMNICTL_OPEN_READ      0    /* attach: never takes the writer lock */
#define OMNICTL_OPEN_WRITE     1
#define OMNICTL_OPEN_CREATE    2    /* write, and create when missing */
#define OMNICTL_OPEN_BULK      3    /* write, no fsync per commit */

#define OMNICTL_MAX_ARGS       8


typedef struct omnictl_cmd_s  omnictl_cmd_t;

typedef struct {
    const omnictl_cmd_t  *cmd;

    /* global options */
    const char           *store;         /* --store, OMNI_STORE */
    size_t                map_size;      /* --map-size; 0: not given */
    const char           *secret_file;   /* --secret-file */

    /* command options (each command uses the ones it declares) */
    const char           *out;           /* export --out */
    const char           *alias;         /* get/forget/decide --alias */
    const char           *device;        /* token --device */
    const char           *ttl;           /* token --ttl */
    const char           *profile;       /* token/decide --profile */
    const char           *rules;         /* decide --rules */
    const char           *channel;       /* decide --channel */
    const char           *format;        /* decide --format */
    const char           *now;           /* decide --now */
    const char           *path;          /* decide --path */
    const char           *query;         /* decide --query */
    const char           *referrer;      /* decide --referrer */
    const char           *user_agent;    /* decide --user-agent */
    const char           *geo_country;   /* decide --geo-country */
    const char           *geo_latlon;    /* decide --geo-latlon */
    unsigned              create;        /* stat --create */
    unsigned              json;          /* rules check --json */
    unsigned              explain;       /* decide --explain */
    const char           *draft;         /* decide --draft FILE */
    const char           *after;         /* tail --after */
    const char           *limit;         /* tail --limit */
    unsigned              follow;        /* tail -f, --follow */
    unsigned              progress;      /* import --progress */
    unsigned              force;         /* restore --force */

    /* positional arguments */
    const char           *args[OMNICTL_MAX_ARGS];
    unsigned              nargs;
} omnictl_ctx_t;

struct omnictl_cmd_s {
    const char   *name;
    int         (*handler)(omnictl_ctx_t *ctx);
    unsigned      min_args;
    unsigned      max_args;
    unsigned      options;        /* OMNICTL_OPT_* this command accepts */
    const char   *synopsis;
    const char   *help;
};

/* Command option bits. */
#define OMNICTL_OPT_OUT        0x01
#define OMNICTL_OPT_ALIAS      0x02
#define OMNICTL_OPT_DEVICE     0x04
#define OMNICTL_OPT_TTL        0x08
#define OMNICTL_OPT_PROFILE    0x10
#define OMNICTL_OPT_CREATE     0x20
#define OMNICTL_OPT_JSON       0x40
#define OMNICTL_OPT_RULES      0x80
#define OMNICTL_OPT_CHANNEL    0x100
#define OMNICTL_OPT_FORMAT     0x200
#define OMNICTL_OPT_NOW        0x400
#define OMNICTL_OPT_REQUEST    0x800     /* --path, --query, --referrer,
                                            --user-agent */
#define OMNICTL_OPT_GEO        0x1000    /* --geo-country, --geo-latlon */
#define OMNICTL_OPT_EXPLAIN    0x2000
#define OMNICTL_OPT_TAIL       0x4000    /* --after, --limit, -f */
#define OMNICTL_OPT_PROGRESS   0x8000
#define OMNICTL_OPT_FORCE      0x10000
#define OMNICTL_OPT_DRAFT      0x20000


/* A profile named by ID or by --alias TYPE:VALUE. */
typedef struct {
    const char     *alias;              /* NULL: by id */
    unsigned        kind;
    char            value[OMNI_ALIAS_MAX_LEN + 1];
    size_t          len;
    unsigned char   pid[OMNI_ID_LEN];
    char            name[OMNI_ID_HEX_LEN + 9];
} omnictl_target_t;


/* A write step run by omnictl_write(); returns OMNI_OK or an OMNI_* code. */
typedef int (*omnictl_write_pt)(omni_wtxn_t *w, void *arg);


/* omnictl.c */
void omnictl_error(omnictl_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int omnictl_usage_error(omnictl_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* omnictl_util.c */
int omnictl_open(omnictl_ctx_t *ctx, int mode, omni_store_t **stp);
int omnictl_write(omnictl_ctx_t *ctx, omni_store_t *st,
    omnictl_write_pt step, void *arg);
/* omni_batch_apply() (omni_batch.h), map changes handled as above. */
int omnictl_batch(omnictl_ctx_t *ctx, omni_store_t *st,
    const omni_batch_opts_t *opts, omni_batch_t *b);
int omnictl_grow(omnictl_ctx_t *ctx, omni_store_t *st);
int omnictl_parse_size(const char *s, size_t *size);
int omnictl_parse_ttl(const char *s, uint32_t *ttl);
int omnictl_parse_alias(const char *spec, unsigned *kind, char *value,
    size_t *len, char *err, size_t errlen);
const char *omnictl_alias_type(unsigned kind);
int omnictl_target_parse(omnictl_ctx_t *ctx, const char *id,
    const char *alias, omnictl_target_t *t);
int omnictl_target_resolve(omni_store_t *st, omni_wtxn_t *w,
    omnictl_target_t *t);
const char *omnictl_target_name(omnictl_target_t *t);
int omnictl_replace_profile(omni_wtxn_t *w, const omni_profile_t *p,
    int *replaced);
int omnictl_print_json(omnictl_ctx_t *ctx, json_t *obj, size_t flags);
int omnictl_read_all(const char *path, char **data, size_t *len);
double omnictl_now(void);

/* omnictl_profiles.c */
int omnictl_import(omnictl_ctx_t *ctx);
int omnictl_export(omnictl_ctx_t *ctx);
int omnictl_get(omnictl_ctx_t *ctx);
int omnictl_event(omnictl_ctx_t *ctx);
int omnictl_put(omnictl_ctx_t *ctx);
int omnictl_forget(omnictl_ctx_t *ctx);
int omnictl_link(omnictl_ctx_t *ctx);

/* omnictl_admin.c */
int omnictl_token(omnictl_ctx_t *ctx);
int omnictl_cookie(omnictl_ctx_t *ctx);
int omnictl_stat(omnictl_ctx_t *ctx);
int omnictl_tail(omnictl_ctx_t *ctx);

/* omnictl_backup.c */
int omnictl_backup(omnictl_ctx_t *ctx);
int omnictl_restore(omnictl_ctx_t *ctx);

/* omnictl_rules.c */
int omnictl_rules(omnictl_ctx_t *ctx);
int omnictl_decide(omnictl_ctx_t *ctx);

/* decide --draft (omnictl_draft.c): OMNI_OK, OMNI_INVALID, OMNI_ERROR
   (the report says why), or an omnictl exit code already printed */
int omnictl_draft_load(omnictl_ctx_t *ctx, const char *dir,
    const char *draft, omni_ruleset_t **set, omni_rules_report_t *rep);


#endif /* OMNICTL_H */
