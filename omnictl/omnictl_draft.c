/*
 * omnictl decide --draft FILE: the decision a rule file not yet in the
 * rules directory would give, before it goes live.  The draft is loaded
 * together with every other file of the directory (it replaces the file
 * of the same name, if any), exactly as nginx would load the directory
 * once the draft is copied in: arbitration against the live rules,
 * duplicate ids, experiment ranges and the global holdout all apply.
 *
 * The core does it in memory (omni_rules_read_dir(), omni_rules_files_put(),
 * the same calls as the console's "try this rule"); errors name the real
 * files: the draft by the path given, the others in the directory.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omnictl.h"


/* Reads the draft's text (at most a rule file's size). */
static int
omnictl_draft_read(omnictl_ctx_t *ctx, const char *draft, char **text,
    size_t *len)
{
    FILE    *f;
    char    *buf;
    size_t   n;

    f = fopen(draft, "r");
    if (f == NULL) {
        omnictl_error(ctx, "--draft \"%s\": %s", draft, strerror(errno));
        return OMNICTL_EXIT_FATAL;
    }

    buf = malloc(OMNI_RULES_MAX_FILE_SIZE + 2);
    if (buf == NULL) {
        fclose(f);
        omnictl_error(ctx, "out of memory");
        return OMNICTL_EXIT_FATAL;
    }

    n = fread(buf, 1, OMNI_RULES_MAX_FILE_SIZE + 1, f);

    if (ferror(f)) {
        omnictl_error(ctx, "--draft \"%s\": %s", draft, strerror(errno));
        fclose(f);
        free(buf);
        return OMNICTL_EXIT_FATAL;
    }

    fclose(f);

    if (n > OMNI_RULES_MAX_FILE_SIZE) {
        omnictl_error(ctx, "--draft \"%s\": larger than %d bytes", draft,
                      OMNI_RULES_MAX_FILE_SIZE);
        free(buf);
        return OMNICTL_EXIT_FATAL;
    }

    buf[n] = '\0';
    *text = buf;
    *len = n;

    return OMNICTL_EXIT_OK;
}


int
omnictl_draft_load(omnictl_ctx_t *ctx, const char *dir, const char *draft,
    omni_ruleset_t **set, omni_rules_report_t *rep)
{
    int                  rc, ret;
    char                *text;
    size_t               len;
    omni_rules_files_t   fs;

    *set = NULL;

    if (!omni_rules_file_name_ok(omni_rules_file_base(draft))) {
        return omnictl_usage_error(ctx, "--draft \"%s\": a rule file's name "
                                   "ends in .json and does not start with "
                                   "a dot (nginx would ignore it)", draft);
    }

    ret = omnictl_draft_read(ctx, draft, &text, &len);
    if (ret != OMNICTL_EXIT_OK) {
        return ret;
    }

    rc = omni_rules_read_dir(dir, &fs, rep);

    if (rc == OMNI_OK) {
        rc = omni_rules_files_put(&fs, draft, text, len);

        if (rc == OMNI_OK) {
            rc = omni_rules_load_files(&fs, 0, set, rep);
        }

        omni_rules_files_free(&fs);
    }

    free(text);

    return rc;
}
