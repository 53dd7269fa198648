/*
 * Rule files as texts: a directory read once into memory, compiled from
 * there.  Keeping the texts lets a running server keep the last version
 * of a file that compiled while the other files go on changing, and
 * lets a draft (the console's "try this rule", omnictl decide --draft)
 * replace one file of the directory without touching the disk.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "omni_rules_int.h"


/* An error line straight into a report (no builder exists yet). */
static void
omni_files_error(omni_rules_report_t *report, const char *fmt, ...)
{
    va_list  ap;

    if (report == NULL) {
        return;
    }

    if (report->nerrors < OMNI_RULES_MAX_ERRORS) {
        va_start(ap, fmt);
        vsnprintf(report->errors[report->nerrors], OMNI_RULES_ERROR_LEN,
                  fmt, ap);
        va_end(ap);
    }

    report->nerrors++;
}


const char *
omni_rules_file_base(const char *path)
{
    const char  *s;

    s = strrchr(path, '/');

    return s ? s + 1 : path;
}


int
omni_rules_file_name_ok(const char *name)
{
    size_t  n;

    n = strlen(name);

    return name[0] != '.' && n > 5 && strcmp(name + n - 5, ".json") == 0;
}


static int
omni_files_cmp(const void *a, const void *b)
{
    const omni_rules_file_t  *x = a, *y = b;

    return strcmp(omni_rules_file_base(x->path),
                  omni_rules_file_base(y->path));
}


static int
omni_files_grow(omni_rules_files_t *fs)
{
    unsigned            cap;
    omni_rules_file_t  *nf;

    if (fs->n < fs->cap) {
        return 0;
    }

    cap = fs->cap ? fs->cap * 2 : 32;
    nf = realloc(fs->files, cap * sizeof(omni_rules_file_t));
    if (nf == NULL) {
        return -1;
    }

    fs->files = nf;
    fs->cap = cap;

    return 0;
}


/*
 * Reads one regular file of at most OMNI_RULES_MAX_FILE_SIZE bytes into
 * f->text; a failure is kept in f->error (reported when compiled).
 * Returns 1 for something that is not a regular file (a directory named
 * x.json: not ours), -1 out of memory, 0 otherwise.
 */
static int
omni_files_read(omni_rules_file_t *f)
{
    int          fd, err;
    char         msg[OMNI_RULES_ERROR_LEN];
    size_t       n, off;
    ssize_t      r;
    struct stat  st;

    msg[0] = '\0';

    fd = open(f->path, O_RDONLY);
    if (fd == -1) {
        snprintf(msg, sizeof(msg), "%s: cannot open: %s", f->path,
                 strerror(errno));
        goto error;
    }

    if (fstat(fd, &st) != 0) {
        err = errno;
        close(fd);
        snprintf(msg, sizeof(msg), "%s: cannot stat: %s", f->path,
                 strerror(err));
        goto error;
    }

    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return 1;
    }

    if (st.st_size > OMNI_RULES_MAX_FILE_SIZE) {
        close(fd);
        snprintf(msg, sizeof(msg), "%s: larger than %d bytes", f->path,
                 OMNI_RULES_MAX_FILE_SIZE);
        goto error;
    }

    n = (size_t) st.st_size;
    f->text = malloc(n + 1);
    if (f->text == NULL) {
        close(fd);
        return -1;
    }

    for (off = 0; off < n; off += (size_t) r) {
        r = read(fd, f->text + off, n - off);

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
        free(f->text);
        f->text = NULL;
        snprintf(msg, sizeof(msg), "%s: short read", f->path);
        goto error;
    }

    f->text[n] = '\0';
    f->len = n;

    return 0;

error:

    f->error = strdup(msg);

    return f->error ? 0 : -1;
}


int
omni_rules_read_dir(const char *dir, omni_rules_files_t *fs,
    omni_rules_report_t *report)
{
    int                 rc;
    DIR                *d;
    size_t              dl;
    unsigned            i, j;
    struct dirent      *de;
    omni_rules_file_t  *f;

    memset(fs, 0, sizeof(omni_rules_files_t));

    if (report) {
        memset(report, 0, sizeof(omni_rules_report_t));
    }

    d = opendir(dir);
    if (d == NULL) {
        omni_files_error(report, "%s: cannot open directory: %s", dir,
                         strerror(errno));
        return OMNI_ERROR;
    }

    dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') {
        dl--;
    }

    rc = OMNI_OK;

    while ((de = readdir(d)) != NULL) {
        if (!omni_rules_file_name_ok(de->d_name)) {
            continue;
        }

        if (fs->n >= OMNI_RULES_MAX_FILES) {
            omni_files_error(report, "%s: more than %d rule files", dir,
                             OMNI_RULES_MAX_FILES);
            rc = OMNI_INVALID;
            break;
        }

        if (omni_files_grow(fs) != 0) {
            rc = OMNI_ERROR;
            break;
        }

        f = &fs->files[fs->n];
        memset(f, 0, sizeof(omni_rules_file_t));

        f->path = malloc(dl + 1 + strlen(de->d_name) + 1);
        if (f->path == NULL) {
            rc = OMNI_ERROR;
            break;
        }

        memcpy(f->path, dir, dl);
        f->path[dl] = '/';
        strcpy(f->path + dl + 1, de->d_name);

        fs->n++;
    }

    closedir(d);

    /* byte order of the names: the same everywhere */
    if (rc == OMNI_OK && fs->n > 1) {
        qsort(fs->files, fs->n, sizeof(omni_rules_file_t), omni_files_cmp);
    }

    for (i = 0; rc == OMNI_OK && i < fs->n; i++) {
        switch (omni_files_read(&fs->files[i])) {

        case 1:
            free(fs->files[i].path);
            fs->files[i].path = NULL;
            break;

        case -1:
            rc = OMNI_ERROR;
            break;
        }
    }

    if (rc == OMNI_ERROR) {
        omni_files_error(report, "%s: out of memory", dir);
    }

    if (rc != OMNI_OK) {
        omni_rules_files_free(fs);
        return rc;
    }

    for (i = 0, j = 0; i < fs->n; i++) {
        if (fs->files[i].path != NULL) {
            fs->files[j++] = fs->files[i];
        }
    }

    fs->n = j;

    return OMNI_OK;
}


int
omni_rules_files_put(omni_rules_files_t *fs, const char *path,
    const char *text, size_t len)
{
    char               *p, *t;
    unsigned            i;
    const char         *base;
    omni_rules_file_t  *f;

    base = omni_rules_file_base(path);

    p = strdup(path);
    t = malloc(len + 1);

    if (p == NULL || t == NULL) {
        free(p);
        free(t);
        return OMNI_ERROR;
    }

    memcpy(t, text, len);
    t[len] = '\0';

    for (i = 0; i < fs->n; i++) {
        if (strcmp(omni_rules_file_base(fs->files[i].path), base) >= 0) {
            break;
        }
    }

    if (i < fs->n
        && strcmp(omni_rules_file_base(fs->files[i].path), base) == 0)
    {
        f = &fs->files[i];
        free(f->path);
        free(f->text);
        free(f->error);

    } else {
        if (omni_files_grow(fs) != 0) {
            free(p);
            free(t);
            return OMNI_ERROR;
        }

        memmove(&fs->files[i + 1], &fs->files[i],
                (fs->n - i) * sizeof(omni_rules_file_t));
        fs->n++;
        f = &fs->files[i];
    }

    memset(f, 0, sizeof(omni_rules_file_t));
    f->path = p;
    f->text = t;
    f->len = len;

    return OMNI_OK;
}


void
omni_rules_files_free(omni_rules_files_t *fs)
{
    unsigned  i;

    for (i = 0; i < fs->n; i++) {
        free(fs->files[i].path);
        free(fs->files[i].text);
        free(fs->files[i].error);
    }

    free(fs->files);
    memset(fs, 0, sizeof(omni_rules_files_t));
}


int
omni_rules_load_files(const omni_rules_files_t *fs, unsigned flags,
    omni_ruleset_t **out, omni_rules_report_t *report)
{
    unsigned                  i;
    omni_rb_t                *rb;
    omni_ruleset_t           *set;
    const omni_rules_file_t  *f;

    *out = NULL;

    rb = omni_rb_create(flags, report);
    if (rb == NULL) {
        return OMNI_ERROR;
    }

    for (i = 0; i < fs->n; i++) {
        f = &fs->files[i];

        if (f->error) {
            omni_rb_error(rb, "%s", f->error);

        } else if (f->text) {
            omni_rb_file(rb, f->path, f->text, f->len);
        }

        /* text NULL without an error: a broken file left out */
    }

    if (omni_rb_errors(rb) > 0 && !(flags & OMNI_RULES_LENIENT)) {
        omni_rb_destroy(rb);
        return OMNI_INVALID;
    }

    set = omni_rb_finish(rb);           /* frees rb */
    if (set == NULL) {
        return OMNI_ERROR;
    }

    *out = set;

    return OMNI_OK;
}


/* Appends src's error lines to dst. */
static void
omni_files_report_add(omni_rules_report_t *dst,
    const omni_rules_report_t *src)
{
    unsigned  i, n;

    n = src->nerrors < OMNI_RULES_MAX_ERRORS ? src->nerrors
                                             : OMNI_RULES_MAX_ERRORS;

    for (i = 0; i < n; i++) {
        omni_files_error(dst, "%s", src->errors[i]);
    }

    dst->nerrors += src->nerrors - n;
}


int
omni_rules_load_last_good(omni_rules_files_t *fs,
    const omni_rules_files_t *good, omni_ruleset_t **out,
    omni_rules_report_t *report)
{
    int                   rc;
    unsigned              i, j, nbroken;
    omni_ruleset_t       *one;
    omni_rules_file_t    *f;
    omni_rules_report_t  *own, *all;

    *out = NULL;

    rc = omni_rules_load_files(fs, 0, out, report);
    if (rc != OMNI_INVALID) {
        return rc;
    }

    own = malloc(sizeof(omni_rules_report_t));
    all = calloc(1, sizeof(omni_rules_report_t));

    if (own == NULL || all == NULL) {
        free(own);
        free(all);
        return OMNI_ERROR;
    }

    /* which files do not compile on their own */
    nbroken = 0;

    for (i = 0; i < fs->n; i++) {
        f = &fs->files[i];

        if (f->error) {
            omni_files_error(all, "%s", f->error);

        } else {
            rc = omni_rules_load_buffer(f->path, f->text, f->len, &one, own);

            if (rc == OMNI_OK) {
                omni_rules_free(one);
                continue;
            }

            if (rc != OMNI_INVALID) {
                free(own);
                free(all);
                return OMNI_ERROR;
            }

            omni_files_report_add(all, own);
        }

        /* broken: its last good text, if it ever had one, serves */
        free(f->text);
        free(f->error);
        f->text = NULL;
        f->error = NULL;
        f->len = 0;
        f->broken = 1;
        nbroken++;

        for (j = 0; good && j < good->n; j++) {
            if (good->files[j].text
                && strcmp(good->files[j].path, f->path) == 0)
            {
                f->text = malloc(good->files[j].len + 1);
                if (f->text == NULL) {
                    free(own);
                    free(all);
                    return OMNI_ERROR;
                }

                memcpy(f->text, good->files[j].text, good->files[j].len + 1);
                f->len = good->files[j].len;
                break;
            }
        }
    }

    if (nbroken == 0) {
        /* every file compiles alone: an error between files, as reported */
        free(own);
        free(all);
        return OMNI_INVALID;
    }

    /* the rest, and the broken files' last good versions, together */
    rc = omni_rules_load_files(fs, 0, out, own);

    if (rc == OMNI_INVALID) {
        /* an error between files: nothing of this change serves */
        omni_files_report_add(all, own);
    }

    if (rc == OMNI_OK) {
        all->files = own->files;
        all->rules = own->rules;
    }

    if (report) {
        memcpy(report, all, sizeof(omni_rules_report_t));
    }

    free(own);
    free(all);

    return rc;
}


unsigned
omni_rules_files_broken(const omni_rules_files_t *fs)
{
    unsigned  i, n;

    for (i = 0, n = 0; i < fs->n; i++) {
        n += fs->files[i].broken ? 1 : 0;
    }

    return n;
}
