/*
 * omnictl decide --draft FILE: the decision a rule file not yet in the
 * rules directory would give, before it goes live.  The draft is loaded
 * together with every other file of the directory (it replaces the file
 * of the same name, if any), exactly as nginx would load the directory
 * once the draft is copied in: arbitration against the live rules,
 * duplicate ids, experiment ranges and the global holdout all apply.
 *
 * The set is built in a private temporary directory of symbolic links,
 * removed before omnictl exits; errors name the real files.
 */

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "omnictl.h"


static const char *
omnictl_base(const char *path)
{
    const char  *s;

    s = strrchr(path, '/');

    return s ? s + 1 : path;
}


static int
omnictl_json_name(const char *name)
{
    size_t  n;

    n = strlen(name);

    return name[0] != '.' && n > 5 && strcmp(name + n - 5, ".json") == 0;
}


/*
 * Builds tmp (size bytes, PATH_MAX is enough): the links of dir's rule
 * files and of the draft.  OMNICTL_EXIT_OK, or an error already printed.
 */
int
omnictl_draft_dir(omnictl_ctx_t *ctx, const char *dir, const char *draft,
    char *tmp, size_t size)
{
    DIR            *d;
    char            src[PATH_MAX], dst[PATH_MAX], real[PATH_MAX];
    const char     *base, *t;
    struct dirent  *e;

    base = omnictl_base(draft);

    if (!omnictl_json_name(base)) {
        return omnictl_usage_error(ctx, "--draft \"%s\": a rule file's name "
                                   "ends in .json and does not start with "
                                   "a dot (nginx would ignore it)", draft);
    }

    if (realpath(draft, real) == NULL) {
        omnictl_error(ctx, "--draft \"%s\": %s", draft, strerror(errno));
        return OMNICTL_EXIT_FATAL;
    }

    t = getenv("TMPDIR");
    snprintf(tmp, size, "%s/omnictl-draft-XXXXXX", t && t[0] ? t : "/tmp");

    if (mkdtemp(tmp) == NULL) {
        omnictl_error(ctx, "cannot create a temporary directory in \"%s\": "
                      "%s", t && t[0] ? t : "/tmp", strerror(errno));
        return OMNICTL_EXIT_FATAL;
    }

    d = opendir(dir);
    if (d == NULL) {
        omnictl_error(ctx, "cannot read the rules directory \"%s\": %s",
                      dir, strerror(errno));
        omnictl_draft_done(tmp);
        return OMNICTL_EXIT_FATAL;
    }

    while ((e = readdir(d)) != NULL) {
        if (!omnictl_json_name(e->d_name) || strcmp(e->d_name, base) == 0) {
            continue;
        }

        snprintf(src, sizeof(src), "%s/%s", dir, e->d_name);

        if (realpath(src, real + 0) == NULL) {
            continue;
        }

        snprintf(dst, sizeof(dst), "%s/%s", tmp, e->d_name);

        if (symlink(real, dst) != 0) {
            omnictl_error(ctx, "symlink \"%s\": %s", dst, strerror(errno));
            closedir(d);
            omnictl_draft_done(tmp);
            return OMNICTL_EXIT_FATAL;
        }
    }

    closedir(d);

    if (realpath(draft, real) == NULL) {
        omnictl_error(ctx, "--draft \"%s\": %s", draft, strerror(errno));
        omnictl_draft_done(tmp);
        return OMNICTL_EXIT_FATAL;
    }

    snprintf(dst, sizeof(dst), "%s/%s", tmp, base);

    if (symlink(real, dst) != 0) {
        omnictl_error(ctx, "symlink \"%s\": %s", dst, strerror(errno));
        omnictl_draft_done(tmp);
        return OMNICTL_EXIT_FATAL;
    }

    return OMNICTL_EXIT_OK;
}


/* Removes the links and the directory. */
void
omnictl_draft_done(const char *tmp)
{
    DIR            *d;
    char            path[PATH_MAX];
    struct dirent  *e;

    d = opendir(tmp);

    if (d != NULL) {
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') {
                continue;
            }

            snprintf(path, sizeof(path), "%s/%s", tmp, e->d_name);
            (void) unlink(path);
        }

        closedir(d);
    }

    (void) rmdir(tmp);
}


/*
 * An error line of the temporary set, as it would read for the real
 * files: "TMP/NAME:..." becomes "DRAFT:..." for the draft and
 * "DIR/NAME:..." for the others.
 */
void
omnictl_draft_line(const char *line, const char *tmp, const char *dir,
    const char *draft, FILE *out)
{
    size_t       n;
    const char  *name, *colon;

    n = strlen(tmp);

    if (strncmp(line, tmp, n) != 0 || line[n] != '/') {
        fprintf(out, "%s\n", line);
        return;
    }

    name = line + n + 1;
    colon = strchr(name, ':');

    if (colon == NULL) {
        fprintf(out, "%s\n", line);
        return;
    }

    if ((size_t) (colon - name) == strlen(omnictl_base(draft))
        && strncmp(name, omnictl_base(draft), colon - name) == 0)
    {
        fprintf(out, "%s%s\n", draft, colon);

    } else {
        fprintf(out, "%s/%s\n", dir, name);
    }
}
