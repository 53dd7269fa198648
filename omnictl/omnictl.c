/*
 * omnictl: command line, dispatch and usage.
 *
 *   omnictl [global options] COMMAND [options] [arguments]
 *
 * Global options may also follow the command.  See docs/omnictl.md.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "omnictl.h"


/* Set by the Makefile from the VERSION file, as the .deb's version is. */
#ifndef OMNICTL_VERSION
#define OMNICTL_VERSION  "unknown"
#endif


typedef struct {
    const char  *name;
    unsigned     bit;           /* OMNICTL_OPT_*; 0: a global option */
    unsigned     value:1;       /* takes a value */
    size_t       offset;        /* where the value goes in the context */
} omnictl_opt_t;


static int omnictl_help(omnictl_ctx_t *ctx);
static void omnictl_usage(FILE *f);
static void omnictl_cmd_usage(FILE *f, const omnictl_cmd_t *cmd);
static const omnictl_cmd_t *omnictl_find_cmd(const char *name);
static const omnictl_opt_t *omnictl_find_opt(const char *arg,
    const char **value);
static int omnictl_parse(omnictl_ctx_t *ctx, int argc, char **argv,
    int *help);
static void omnictl_version(void);


#define OMNICTL_GLOBAL_HELP                                                   \
    "global options:\n"                                                       \
    "  --store DIR         the store directory (default: $OMNI_STORE)\n"    \
    "  --map-size SIZE     LMDB map size when creating or growing,\n"        \
    "                      e.g. 512m, 4g (the store keeps the larger of\n"   \
    "                      this and its current size)\n"                      \
    "  --secret-file FILE  token secrets, one per line, the first signs\n"   \
    "                      (default: $OMNI_SECRET)\n"                         \
    "  -h, --help          help for omnictl or for a command\n"       \
    "  --version           print the version and the store formats\n"


static const omnictl_cmd_t  omnictl_cmds[] = {

    { "import", omnictl_import, 0, 1,
      OMNICTL_OPT_PROGRESS | OMNICTL_OPT_CREATE,
      "import [FILE|-]",
      "Imports NDJSON profiles (one JSON profile per line, the shape in\n"
      "docs/store-format.md) from FILE or standard input.  A profile whose\n"
      "id exists is replaced; its aliases are pointed at it.  Bad lines are\n"
      "reported as \"line N: field: reason\" and skipped; the good ones are\n"
      "still imported.  Exit status 1 when any line failed.\n"
      "  --create            create the store when it does not exist\n"
      "  --progress          show progress (percentage and ETA when the\n"
      "                      input is a file) even when standard error is\n"
      "                      not a terminal\n" },

    { "export", omnictl_export, 0, 0, OMNICTL_OPT_OUT,
      "export [--out FILE]",
      "Writes every profile as NDJSON, in id order, to standard output or\n"
      "to FILE (written to FILE.tmp, then renamed).  The output imports\n"
      "back unchanged.\n"
      "  --out FILE          write to FILE instead of standard output\n" },

    { "get", omnictl_get, 0, 1, OMNICTL_OPT_ALIAS,
      "get (ID | --alias TYPE:VALUE)",
      "Prints one profile as indented JSON.  TYPE is cookie, device,\n"
      "customer or email (an email address is hashed as the store keys\n"
      "it: lowercased sha256).  Exit status 1 when not found.\n"
      "  --alias TYPE:VALUE  look the profile up by an alias\n" },

    { "put", omnictl_put, 0, 1, 0,
      "put [FILE|-]",
      "Stores one JSON profile (a single document, not NDJSON), creating\n"
      "it or replacing the profile with the same id.\n" },

    { "forget", omnictl_forget, 0, 1, OMNICTL_OPT_ALIAS,
      "forget (ID | --alias TYPE:VALUE)",
      "Erases a profile, every alias that points at it and its\n"
      "touchpoints (right to be forgotten).  Prints\n"
      "{\"forgotten\":ID,\"aliases\":N,\"touchpoints\":M}.  Exit status 1\n"
      "when not found.\n"
      "  --alias TYPE:VALUE  find the profile by an alias\n" },

    { "link", omnictl_link, 2, 2, 0,
      "link ID TYPE:VALUE",
      "Points an alias at an existing profile (moving it away from the\n"
      "profile that had it) and records it in the profile.\n" },

    { "event", omnictl_event, 0, 1, 0,
      "event [FILE|-]",
      "Applies Segment-shaped events (docs/events.md) from FILE or standard\n"
      "input, one event, batch or array per line, exactly as nginx's\n"
      "omni_events endpoint does with a server key: deduplication by\n"
      "messageId and order id, identity stitching, the feed.  Prints one\n"
      "JSON line per event: {\"line\",\"messageId\",\"status\",\"profile\"}\n"
      "(status accepted, duplicate, invalid with field and reason, or\n"
      "failed).  A line that is not JSON is reported on standard error as\n"
      "\"line N: field: reason\" and skipped; the valid events of the other\n"
      "lines are applied, 1000 per transaction.  Exit status 1 when any\n"
      "line or event was invalid.\n" },

    { "token", omnictl_token, 0, 0,
      OMNICTL_OPT_DEVICE | OMNICTL_OPT_TTL | OMNICTL_OPT_PROFILE,
      "token [--device ID] [--ttl TTL] [--profile ID]",
      "Mints a signed app token for the X-Omni-Token header.  Prints\n"
      "{\"token\":...,\"device\":...,\"expires\":N}.\n"
      "  --device ID         the device id (default: a random one)\n"
      "  --ttl TTL           lifetime: seconds or 90s, 45m, 12h, 30d, 2w;\n"
      "                      0 never expires (default: 30d)\n"
      "  --profile ID        also link the device to this existing profile\n"
      "                      (needs --store), so the app sees that person\n" },

    { "cookie", omnictl_cookie, 0, 0,
      OMNICTL_OPT_DEVICE | OMNICTL_OPT_PROFILE,
      "cookie [--device ID] [--profile ID]",
      "Mints a signed web visitor cookie (the value of the \"omni\"\n"
      "cookie).  Prints {\"cookie\":...,\"visitor\":...}.\n"
      "  --device ID         the visitor id (default: a random one)\n"
      "  --profile ID        also link the visitor to this existing profile\n"
      "                      (needs --store): the browser is that person\n"
    },

    { "stat", omnictl_stat, 0, 0, OMNICTL_OPT_CREATE,
      "stat [--create]",
      "Prints store statistics as JSON.\n"
      "  --create            create and initialise the store first\n" },

    { "rules", omnictl_rules, 2, 2, OMNICTL_OPT_JSON,
      "rules check DIR [--json]",
      "Loads the rule files of DIR (every *.json, in name order) exactly as\n"
      "nginx does, strictly, and prints every error as\n"
      "\"file:line:column: message\" on standard error (nginx -t prints the\n"
      "same lines after \"omni_rules: \"), then a summary on standard\n"
      "output: \"DIR: N rules in M files, OK\" or \"DIR: K error(s)\".\n"
      "Exit status 1 when a rule is invalid, 2 when DIR cannot be read.\n"
      "  --json              print {\"dir\",\"ok\",\"files\",\"rules\",\n"
      "                      \"errors\"} instead, errors included\n" },

    { "decide", omnictl_decide, 0, 0,
      OMNICTL_OPT_PROFILE | OMNICTL_OPT_ALIAS | OMNICTL_OPT_RULES
      | OMNICTL_OPT_CHANNEL | OMNICTL_OPT_FORMAT | OMNICTL_OPT_NOW
      | OMNICTL_OPT_REQUEST | OMNICTL_OPT_GEO | OMNICTL_OPT_EXPLAIN
      | OMNICTL_OPT_DRAFT,
      "decide (--profile ID | --alias TYPE:VALUE) --rules DIR [options]",
      "Makes the decision nginx makes for a profile: the rules of DIR\n"
      "against the stored profile (read-only, never waits for a writer).\n"
      "A profile that does not exist is a new visitor.  Prints the\n"
      "decision as JSON, the text an email or SMS sends, or the HTML of\n"
      "every slot and the pixels.  Exit status 1 when a customer or email\n"
      "alias is not in the store, 2 when the rules do not load.\n"
      "  --profile ID        the profile id (32 hex digits or a UUID)\n"
      "  --alias TYPE:VALUE  or the profile of an alias\n"
      "  --rules DIR         the rules directory (as omni_rules)\n"
      "  --draft FILE        preview a rule file not yet in DIR: loaded\n"
      "                      with DIR's files (replacing the one of the\n"
      "                      same name), as nginx would once copied in\n"
      "  --channel CHANNEL   web, app, email, sms, pos or ads (default web)\n"
      "  --format FORMAT     json (default for web, app, pos, ads), text\n"
      "                      (default for email, sms) or html\n"
      "  --path P            the decoded URI path, no query\n"
      "  --query Q           the raw query string\n"
      "  --referrer R        the Referer header\n"
      "  --user-agent UA     the User-Agent header\n"
      "  --now UNIX          the time of the decision (default: now)\n"
      "  --geo-country CC    pretend the client is in this country\n"
      "  --geo-latlon LAT,LON  ... at this location (degrees)\n"
      "  --explain           one line per rule: why it was shown or not\n"
      "                      (in the JSON; on standard error for text and\n"
      "                      html)\n" },

    { "tail", omnictl_tail, 0, 0, OMNICTL_OPT_TAIL,
      "tail [--after CURSOR] [--limit N] [-f]",
      "Prints the touchpoint feed (docs/feed.md): one JSON line per\n"
      "touchpoint, the same bytes as the omni_feed endpoint.  Exit status\n"
      "1 when the cursor fell out of retention (\"cursor expired\").\n"
      "  --after CURSOR      print touchpoints after this seq (default 0)\n"
      "  --limit N           at most N lines (default: all; with -f, per\n"
      "                      poll)\n"
      "  -f, --follow        keep polling for new touchpoints every 200 ms\n"
      "                      until interrupted\n" },

    { "backup", omnictl_backup, 1, 1, 0,
      "backup DIR",
      "Writes a consistent copy of the whole store (every database:\n"
      "profiles, aliases, touchpoints, idempotency keys, merges, meta) to\n"
      "DIR/data.mdb, compacted, while nginx keeps serving and writing.\n"
      "DIR is created when missing and must not hold a data.mdb.\n" },

    { "restore", omnictl_restore, 1, 1, OMNICTL_OPT_FORCE,
      "restore DIR [--force]",
      "Replaces the store with the backup in DIR (made by backup).  The\n"
      "current data.mdb is kept as data.mdb.before-restore.  Refuses while\n"
      "another process (nginx, omnictl) has the store open: stop nginx\n"
      "first, or give --force to replace it anyway (nginx must then be\n"
      "restarted, not reloaded).\n"
      "  --force             restore although the store is in use\n" },

    { "help", omnictl_help, 0, 1, 0,
      "help [COMMAND]",
      "Prints help for omnictl or for one command.\n" },

    { NULL, NULL, 0, 0, 0, NULL, NULL }
};


static const omnictl_opt_t  omnictl_opts[] = {
    { "--store", 0, 1, offsetof(omnictl_ctx_t, store) },
    { "--map-size", 0, 1, 0 },
    { "--secret-file", 0, 1, offsetof(omnictl_ctx_t, secret_file) },
    { "--out", OMNICTL_OPT_OUT, 1, offsetof(omnictl_ctx_t, out) },
    { "--alias", OMNICTL_OPT_ALIAS, 1, offsetof(omnictl_ctx_t, alias) },
    { "--device", OMNICTL_OPT_DEVICE, 1, offsetof(omnictl_ctx_t, device) },
    { "--ttl", OMNICTL_OPT_TTL, 1, offsetof(omnictl_ctx_t, ttl) },
    { "--profile", OMNICTL_OPT_PROFILE, 1,
      offsetof(omnictl_ctx_t, profile) },
    { "--create", OMNICTL_OPT_CREATE, 0, offsetof(omnictl_ctx_t, create) },
    { "--json", OMNICTL_OPT_JSON, 0, offsetof(omnictl_ctx_t, json) },
    { "--rules", OMNICTL_OPT_RULES, 1, offsetof(omnictl_ctx_t, rules) },
    { "--channel", OMNICTL_OPT_CHANNEL, 1,
      offsetof(omnictl_ctx_t, channel) },
    { "--format", OMNICTL_OPT_FORMAT, 1, offsetof(omnictl_ctx_t, format) },
    { "--now", OMNICTL_OPT_NOW, 1, offsetof(omnictl_ctx_t, now) },
    { "--path", OMNICTL_OPT_REQUEST, 1, offsetof(omnictl_ctx_t, path) },
    { "--query", OMNICTL_OPT_REQUEST, 1, offsetof(omnictl_ctx_t, query) },
    { "--referrer", OMNICTL_OPT_REQUEST, 1,
      offsetof(omnictl_ctx_t, referrer) },
    { "--user-agent", OMNICTL_OPT_REQUEST, 1,
      offsetof(omnictl_ctx_t, user_agent) },
    { "--geo-country", OMNICTL_OPT_GEO, 1,
      offsetof(omnictl_ctx_t, geo_country) },
    { "--geo-latlon", OMNICTL_OPT_GEO, 1,
      offsetof(omnictl_ctx_t, geo_latlon) },
    { "--explain", OMNICTL_OPT_EXPLAIN, 0,
      offsetof(omnictl_ctx_t, explain) },
    { "--draft", OMNICTL_OPT_DRAFT, 1, offsetof(omnictl_ctx_t, draft) },
    { "--after", OMNICTL_OPT_TAIL, 1, offsetof(omnictl_ctx_t, after) },
    { "--limit", OMNICTL_OPT_TAIL, 1, offsetof(omnictl_ctx_t, limit) },
    { "--follow", OMNICTL_OPT_TAIL, 0, offsetof(omnictl_ctx_t, follow) },
    { "-f", OMNICTL_OPT_TAIL, 0, offsetof(omnictl_ctx_t, follow) },
    { "--progress", OMNICTL_OPT_PROGRESS, 0,
      offsetof(omnictl_ctx_t, progress) },
    { "--force", OMNICTL_OPT_FORCE, 0, offsetof(omnictl_ctx_t, force) },
    { NULL, 0, 0, 0 }
};


int
main(int argc, char **argv)
{
    int            rc, help;
    omnictl_ctx_t  ctx;

    memset(&ctx, 0, sizeof(omnictl_ctx_t));

    rc = omnictl_parse(&ctx, argc, argv, &help);
    if (rc == OMNICTL_EXIT_VERSION) {
        return OMNICTL_EXIT_OK;
    }

    if (rc != OMNICTL_EXIT_OK) {
        return rc;
    }

    if (help) {
        if (ctx.cmd == NULL) {
            omnictl_usage(stdout);

        } else {
            omnictl_cmd_usage(stdout, ctx.cmd);
        }

        return OMNICTL_EXIT_OK;
    }

    if (ctx.cmd == NULL) {
        omnictl_usage(stderr);
        return OMNICTL_EXIT_FATAL;
    }

    if (ctx.store == NULL) {
        ctx.store = getenv("OMNI_STORE");
        if (ctx.store != NULL && ctx.store[0] == '\0') {
            ctx.store = NULL;
        }
    }

    rc = ctx.cmd->handler(&ctx);

    if (fflush(stdout) != 0 || ferror(stdout)) {
        omnictl_error(&ctx, "cannot write the output");
        return OMNICTL_EXIT_FATAL;
    }

    return rc;
}


static int
omnictl_parse(omnictl_ctx_t *ctx, int argc, char **argv, int *help)
{
    int                   i, j, cmd_at, dashdash;
    const char           *arg, *value, *id;
    const omnictl_opt_t  *opt;

    *help = 0;

    /* The command is the first argument that is neither an option nor an
     * option's value. */
    cmd_at = -1;

    for (i = 1; i < argc; i++) {
        arg = argv[i];

        if (strcmp(arg, "--") == 0) {
            cmd_at = i + 1 < argc ? i + 1 : -1;
            break;
        }

        if (arg[0] != '-' || arg[1] == '\0') {
            cmd_at = i;
            break;
        }

        opt = omnictl_find_opt(arg, &value);
        if (opt != NULL && opt->value && value == NULL) {
            i++;
        }
    }

    if (cmd_at > 0) {
        ctx->cmd = omnictl_find_cmd(argv[cmd_at]);
        if (ctx->cmd == NULL) {
            fprintf(stderr, "omnictl: unknown command \"%s\" "
                    "(see omnictl --help)\n", argv[cmd_at]);
            return OMNICTL_EXIT_FATAL;
        }
    }

    dashdash = 0;

    for (i = 1; i < argc; i++) {
        arg = argv[i];

        if (i == cmd_at) {
            continue;
        }

        if (!dashdash && strcmp(arg, "--") == 0) {
            dashdash = 1;
            continue;
        }

        if (dashdash || arg[0] != '-' || arg[1] == '\0') {
            if (ctx->cmd == NULL) {
                /* only reachable after "--" with nothing following */
                continue;
            }

            if (ctx->nargs >= ctx->cmd->max_args) {
                return omnictl_usage_error(ctx, "unexpected argument "
                                           "\"%s\"", arg);
            }

            ctx->args[ctx->nargs++] = arg;
            continue;
        }

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            *help = 1;
            continue;
        }

        if (strcmp(arg, "--version") == 0) {
            omnictl_version();
            return OMNICTL_EXIT_VERSION;
        }

        opt = omnictl_find_opt(arg, &value);
        if (opt == NULL) {
            return omnictl_usage_error(ctx, "unknown option \"%s\"", arg);
        }

        if (opt->bit != 0
            && (ctx->cmd == NULL || !(ctx->cmd->options & opt->bit)))
        {
            return omnictl_usage_error(ctx, "option %s is not valid %s%s",
                                       opt->name,
                                       ctx->cmd ? "for " : "here",
                                       ctx->cmd ? ctx->cmd->name : "");
        }

        if (!opt->value) {
            if (value != NULL) {
                return omnictl_usage_error(ctx, "option %s takes no value",
                                           opt->name);
            }

            *(unsigned *) ((char *) ctx + opt->offset) = 1;
            continue;
        }

        if (value == NULL) {
            if (i + 1 >= argc) {
                return omnictl_usage_error(ctx, "option %s needs a value",
                                           opt->name);
            }

            value = argv[++i];
        }

        if (strcmp(opt->name, "--map-size") == 0) {
            if (omnictl_parse_size(value, &ctx->map_size) != OMNI_OK) {
                return omnictl_usage_error(ctx, "invalid --map-size \"%s\" "
                                           "(expected e.g. 64m, 4g)", value);
            }

            continue;
        }

        *(const char **) ((char *) ctx + opt->offset) = value;
    }

    if (*help || ctx->cmd == NULL) {
        return OMNICTL_EXIT_OK;
    }

    if (ctx->nargs < ctx->cmd->min_args) {
        return omnictl_usage_error(ctx, "missing argument");
    }

    /* get and forget take an ID or --alias, decide --profile ID or
     * --alias: exactly one of them */
    if (ctx->cmd->options & OMNICTL_OPT_ALIAS) {
        id = (ctx->cmd->options & OMNICTL_OPT_PROFILE) ? "--profile ID"
                                                       : "an ID";
        j = (ctx->alias != NULL) + (ctx->nargs > 0) + (ctx->profile != NULL);

        if (j != 1) {
            return omnictl_usage_error(ctx, j ? "give %s or --alias, not "
                                       "both" : "%s or --alias TYPE:VALUE "
                                       "is required", id);
        }
    }

    return OMNICTL_EXIT_OK;
}


static const omnictl_opt_t *
omnictl_find_opt(const char *arg, const char **value)
{
    size_t                len;
    const char           *eq;
    const omnictl_opt_t  *opt;

    eq = strchr(arg, '=');
    len = eq ? (size_t) (eq - arg) : strlen(arg);
    *value = eq ? eq + 1 : NULL;

    for (opt = omnictl_opts; opt->name; opt++) {
        if (strlen(opt->name) == len && memcmp(opt->name, arg, len) == 0) {
            return opt;
        }
    }

    return NULL;
}


static const omnictl_cmd_t *
omnictl_find_cmd(const char *name)
{
    const omnictl_cmd_t  *cmd;

    for (cmd = omnictl_cmds; cmd->name; cmd++) {
        if (strcmp(cmd->name, name) == 0) {
            return cmd;
        }
    }

    return NULL;
}


static int
omnictl_help(omnictl_ctx_t *ctx)
{
    const omnictl_cmd_t  *cmd;

    if (ctx->nargs == 0) {
        omnictl_usage(stdout);
        return OMNICTL_EXIT_OK;
    }

    cmd = omnictl_find_cmd(ctx->args[0]);
    if (cmd == NULL) {
        return omnictl_usage_error(ctx, "unknown command \"%s\"",
                                   ctx->args[0]);
    }

    omnictl_cmd_usage(stdout, cmd);

    return OMNICTL_EXIT_OK;
}


/*
 * The version, and the formats this build reads and writes: what an
 * operator compares with "omnictl stat" before and after an upgrade.
 */
static void
omnictl_version(void)
{
    printf("omnictl %s\n"
           "store schema %u, profile record %u.%u, LMDB %d.%d.%d\n",
           OMNICTL_VERSION, (unsigned) OMNI_SCHEMA_VERSION,
           (unsigned) OMNI_REC_MAJOR, (unsigned) OMNI_REC_MINOR,
           MDB_VERSION_MAJOR, MDB_VERSION_MINOR, MDB_VERSION_PATCH);
}


static void
omnictl_usage(FILE *f)
{
    const omnictl_cmd_t  *cmd;

    fprintf(f, "usage: omnictl [global options] COMMAND [options] "
            "[arguments]\n\ncommands:\n");

    for (cmd = omnictl_cmds; cmd->name; cmd++) {
        fprintf(f, "  %s\n", cmd->synopsis);
    }

    fprintf(f, "\n" OMNICTL_GLOBAL_HELP
            "\nexit status: 0 ok, 1 some input failed or not found,"
            " 2 usage or fatal error\n"
            "omnictl COMMAND --help describes a command; see also"
            " docs/omnictl.md\n");
}


static void
omnictl_cmd_usage(FILE *f, const omnictl_cmd_t *cmd)
{
    fprintf(f, "usage: omnictl [global options] %s\n\n%s\n"
            OMNICTL_GLOBAL_HELP, cmd->synopsis, cmd->help);
}


void
omnictl_error(omnictl_ctx_t *ctx, const char *fmt, ...)
{
    va_list  args;
    char     msg[1024];

    va_start(args, fmt);
    vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);

    if (ctx != NULL && ctx->cmd != NULL) {
        fprintf(stderr, "omnictl: %s: %s\n", ctx->cmd->name, msg);

    } else {
        fprintf(stderr, "omnictl: %s\n", msg);
    }
}


int
omnictl_usage_error(omnictl_ctx_t *ctx, const char *fmt, ...)
{
    va_list  args;
    char     msg[1024];

    va_start(args, fmt);
    vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);

    if (ctx != NULL && ctx->cmd != NULL) {
        fprintf(stderr, "omnictl: %s: %s (see omnictl %s --help)\n",
                ctx->cmd->name, msg, ctx->cmd->name);

    } else {
        fprintf(stderr, "omnictl: %s (see omnictl --help)\n", msg);
    }

    return OMNICTL_EXIT_FATAL;
}
