/*
 * Loading rules: a directory of JSON files (or one buffer) into a
 * compiled set, with every error reported as "file:line:column: ...".
 * Load time only: this is where file I/O happens, never later.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "omni_rules_int.h"


static int omni_rules_finish(omni_rb_t *rb, unsigned flags,
    omni_ruleset_t **out);


static int
omni_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}


static int
omni_rules_name_ok(const char *name)
{
    size_t  n;

    n = strlen(name);

    return name[0] != '.' && n > 5 && strcmp(name + n - 5, ".json") == 0;
}


/* Reads a whole regular file of at most OMNI_RULES_MAX_FILE_SIZE bytes. */
static int
omni_rules_read(omni_rb_t *rb, const char *path, char **text, size_t *len)
{
    int          fd;
    char        *buf;
    size_t       n, off;
    ssize_t      r;
    struct stat  st;

    *text = NULL;
    *len = 0;

    fd = open(path, O_RDONLY);
    if (fd == -1) {
        omni_rb_error(rb, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }

    if (fstat(fd, &st) != 0) {
        omni_rb_error(rb, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }

    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return 1;               /* a directory named x.json: not ours */
    }

    if (st.st_size > OMNI_RULES_MAX_FILE_SIZE) {
        omni_rb_error(rb, "%s: larger than %d bytes", path,
                      OMNI_RULES_MAX_FILE_SIZE);
        close(fd);
        return -1;
    }

    n = (size_t) st.st_size;
    buf = malloc(n + 1);
    if (buf == NULL) {
        omni_rb_error(rb, "%s: out of memory", path);
        close(fd);
        return -1;
    }

    for (off = 0; off < n; off += (size_t) r) {
        r = read(fd, buf + off, n - off);

        if (r == -1 && errno == EINTR) {
            r = 0;
            continue;
        }

        if (r <= 0) {
            break;
        }
    }

    close(fd);

    if (off != n) {
        omni_rb_error(rb, "%s: short read", path);
        free(buf);
        return -1;
    }

    buf[n] = '\0';
    *text = buf;
    *len = n;

    return 0;
}


int
omni_rules_load(const char *dir, omni_ruleset_t **out,
    omni_rules_report_t *report)
{
    return omni_rules_load_ex(dir, 0, out, report);
}


int
omni_rules_load_ex(const char *dir, unsigned flags, omni_ruleset_t **out,
    omni_rules_report_t *report)
{
    DIR            *d;
    struct dirent  *de;
    char          **names, **nn, *path, *text;
    size_t          n, cap, i, dl, len;
    int             rc;
    omni_rb_t      *rb;

    *out = NULL;

    rb = omni_rb_create(flags, report);
    if (rb == NULL) {
        return OMNI_ERROR;
    }

    d = opendir(dir);
    if (d == NULL) {
        omni_rb_error(rb, "%s: cannot open directory: %s", dir,
                      strerror(errno));
        omni_rb_destroy(rb);
        return OMNI_ERROR;
    }

    names = NULL;
    n = 0;
    cap = 0;
    rc = OMNI_OK;

    while ((de = readdir(d)) != NULL) {
        if (!omni_rules_name_ok(de->d_name)) {
            continue;
        }

        if (n >= OMNI_RULES_MAX_FILES) {
            omni_rb_error(rb, "%s: more than %d rule files", dir,
                          OMNI_RULES_MAX_FILES);
            rc = OMNI_INVALID;
            break;
        }

        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            nn = realloc(names, cap * sizeof(char *));
            if (nn == NULL) {
                rc = OMNI_ERROR;
                break;
            }

            names = nn;
        }

        names[n] = strdup(de->d_name);
        if (names[n] == NULL) {
            rc = OMNI_ERROR;
            break;
        }

        n++;
    }

    closedir(d);

    /* byte order of the names: the same everywhere */
    if (n > 1) {
        qsort(names, n, sizeof(char *), omni_name_cmp);
    }

    dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') {
        dl--;
    }

    for (i = 0; i < n && rc == OMNI_OK; i++) {
        path = malloc(dl + 1 + strlen(names[i]) + 1);
        if (path == NULL) {
            rc = OMNI_ERROR;
            break;
        }

        memcpy(path, dir, dl);
        path[dl] = '/';
        strcpy(path + dl + 1, names[i]);

        if (omni_rules_read(rb, path, &text, &len) == 0) {
            omni_rb_file(rb, path, text, len);
            free(text);
        }

        free(path);
    }

    for (i = 0; i < n; i++) {
        free(names[i]);
    }

    free(names);

    if (rc != OMNI_OK) {
        if (rc == OMNI_ERROR) {
            omni_rb_error(rb, "%s: out of memory", dir);
        }

        omni_rb_destroy(rb);
        return rc;
    }

    return omni_rules_finish(rb, flags, out);
}


int
omni_rules_load_buffer(const char *name, const char *text, size_t len,
    omni_ruleset_t **out, omni_rules_report_t *report)
{
    omni_rb_t  *rb;

    *out = NULL;

    rb = omni_rb_create(0, report);
    if (rb == NULL) {
        return OMNI_ERROR;
    }

    if (len > OMNI_RULES_MAX_FILE_SIZE) {
        omni_rb_error(rb, "%s: larger than %d bytes", name,
                      OMNI_RULES_MAX_FILE_SIZE);
        omni_rb_destroy(rb);
        return OMNI_INVALID;
    }

    omni_rb_file(rb, name, text, len);

    return omni_rules_finish(rb, 0, out);
}


static int
omni_rules_finish(omni_rb_t *rb, unsigned flags, omni_ruleset_t **out)
{
    omni_ruleset_t  *set;

    if (omni_rb_errors(rb) > 0 && !(flags & OMNI_RULES_LENIENT)) {
        omni_rb_destroy(rb);
        return OMNI_INVALID;
    }

    set = omni_rb_finish(rb);          /* frees rb */
    if (set == NULL) {
        return OMNI_ERROR;
    }

    *out = set;

    return OMNI_OK;
}


/* ---- accessors ---- */

unsigned
omni_rules_count(const omni_ruleset_t *set)
{
    return set ? set->nrules : 0;
}


unsigned
omni_rules_needs(const omni_ruleset_t *set)
{
    return set ? set->needs : 0;
}


unsigned
omni_rules_nslots(const omni_ruleset_t *set)
{
    return set ? set->nslots : 0;
}


const char *
omni_rules_slot(const omni_ruleset_t *set, unsigned slot, size_t *len)
{
    if (set == NULL || slot >= set->nslots) {
        if (len) {
            *len = 0;
        }
        return NULL;
    }

    if (len) {
        *len = set->slots[slot].len;
    }

    return set->slots[slot].data;
}


int
omni_rules_slot_find(const omni_ruleset_t *set, const char *name,
    size_t len)
{
    uint32_t  i;

    if (set == NULL) {
        return -1;
    }

    for (i = 0; i < set->nslots; i++) {
        if (omni_strv_eq(set->slots[i], name, len)) {
            return (int) i;
        }
    }

    return -1;
}


const char *
omni_rules_rule_id(const omni_ruleset_t *set, unsigned rule, size_t *len)
{
    if (set == NULL || rule >= set->nrules) {
        if (len) {
            *len = 0;
        }
        return NULL;
    }

    if (len) {
        *len = set->rules[rule].id.len;
    }

    return set->rules[rule].id.data;
}


int
omni_rules_rule_info(const omni_ruleset_t *set, unsigned rule,
    omni_rule_info_t *out)
{
    const omni_rule_t  *r;

    if (set == NULL || rule >= set->nrules) {
        return OMNI_NOTFOUND;
    }

    r = &set->rules[rule];

    /* the file name and slot names live as long as the set */
    out->file = r->file.data ? r->file.data : "";
    out->slot_len = 0;
    out->slot = r->slot >= 0 ? omni_rules_slot(set, (unsigned) r->slot,
                                               &out->slot_len)
                             : "";
    out->priority = r->priority;
    out->enabled = r->enabled ? 1 : 0;

    return OMNI_OK;
}


const char *
omni_rules_rule_campaign(const omni_ruleset_t *set, unsigned rule,
    size_t *len)
{
    if (set == NULL || rule >= set->nrules) {
        if (len) {
            *len = 0;
        }
        return NULL;
    }

    if (len) {
        *len = set->rules[rule].campaign.len;
    }

    return set->rules[rule].campaign.data;
}
