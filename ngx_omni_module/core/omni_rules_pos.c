/*
 * Source positions for semantic errors in rule files.
 *
 * jansson 2.14 keeps no positions for values, so when the compiler
 * rejects a value it records the value's JSON path; this file re-scans
 * the source text (which jansson already accepted, so the scanner may
 * assume valid JSON) to that path and turns the byte offset into
 * line:column.  Runs only on the error path.
 *
 * The nesting check runs before jansson sees the text at all, so deep
 * nesting is refused with a position and never reaches a recursive
 * parser (jansson CVE-2016-4425).
 */

#include <stdlib.h>
#include <string.h>

#include "omni_rules_int.h"


typedef struct {
    const char  *p;
    const char  *end;
} omni_jscan_t;


static void omni_js_ws(omni_jscan_t *s);
static int omni_js_skip_string(omni_jscan_t *s);
static int omni_js_skip_value(omni_jscan_t *s);
static int omni_js_find(omni_jscan_t *s, const omni_jseg_t *path,
    unsigned depth, unsigned i, int want_key, size_t str_off,
    const char **pos);


/* Line and column (characters, 1-based) of text + off. */
static void
omni_js_linecol(const char *text, size_t off, unsigned *line, unsigned *col)
{
    size_t  i;

    *line = 1;
    *col = 1;

    for (i = 0; i < off; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;

        } else if (((unsigned char) text[i] & 0xc0) != 0x80) {
            (*col)++;
        }
    }
}


int
omni_json_depth_check(const char *text, size_t len, unsigned max,
    unsigned *line, unsigned *col)
{
    size_t    i;
    unsigned  depth;
    int       in_str;

    depth = 0;
    in_str = 0;

    for (i = 0; i < len; i++) {
        if (in_str) {
            if (text[i] == '\\') {
                i++;

            } else if (text[i] == '"') {
                in_str = 0;
            }

            continue;
        }

        switch (text[i]) {
        case '"':
            in_str = 1;
            break;

        case '[':
        case '{':
            if (++depth > max) {
                omni_js_linecol(text, i, line, col);
                return -1;
            }
            break;

        case ']':
        case '}':
            if (depth > 0) {
                depth--;
            }
            break;
        }
    }

    return 0;
}


static void
omni_js_ws(omni_jscan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n'
                             || *s->p == '\r'))
    {
        s->p++;
    }
}


static int
omni_js_skip_string(omni_jscan_t *s)
{
    if (s->p >= s->end || *s->p != '"') {
        return -1;
    }

    for (s->p++; s->p < s->end; s->p++) {
        if (*s->p == '\\') {
            s->p++;

        } else if (*s->p == '"') {
            s->p++;
            return 0;
        }
    }

    return -1;
}


static int
omni_js_skip_value(omni_jscan_t *s)
{
    char  close;

    omni_js_ws(s);

    if (s->p >= s->end) {
        return -1;
    }

    if (*s->p == '"') {
        return omni_js_skip_string(s);
    }

    if (*s->p == '{' || *s->p == '[') {
        close = *s->p == '{' ? '}' : ']';
        s->p++;
        omni_js_ws(s);

        if (s->p < s->end && *s->p == close) {
            s->p++;
            return 0;
        }

        for ( ;; ) {
            if (close == '}') {
                omni_js_ws(s);
                if (omni_js_skip_string(s) != 0) {
                    return -1;
                }

                omni_js_ws(s);
                if (s->p >= s->end || *s->p != ':') {
                    return -1;
                }

                s->p++;
            }

            if (omni_js_skip_value(s) != 0) {
                return -1;
            }

            omni_js_ws(s);

            if (s->p >= s->end) {
                return -1;
            }

            if (*s->p == ',') {
                s->p++;
                continue;
            }

            if (*s->p == close) {
                s->p++;
                return 0;
            }

            return -1;
        }
    }

    /* number, true, false, null */
    while (s->p < s->end && *s->p != ',' && *s->p != '}' && *s->p != ']'
           && *s->p != ' ' && *s->p != '\t' && *s->p != '\n'
           && *s->p != '\r')
    {
        s->p++;
    }

    return 0;
}


static int
omni_js_hex4(const char *p, const char *end, unsigned *v)
{
    int       i, c;
    unsigned  r;

    if (end - p < 4) {
        return -1;
    }

    r = 0;

    for (i = 0; i < 4; i++) {
        c = (unsigned char) p[i];

        if (c >= '0' && c <= '9') {
            c -= '0';

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            c = (c | 0x20) - 'a' + 10;

        } else {
            return -1;
        }

        r = r << 4 | (unsigned) c;
    }

    *v = r;

    return 0;
}


/*
 * Walks a string token at s->p; each raw position maps to a decoded
 * offset.  With key != NULL compares the decoded string with key.
 * With stop != (size_t) -1 returns the raw position of decoded offset
 * stop in *at.  Leaves s->p after the string.
 */
static int
omni_js_string(omni_jscan_t *s, const char *key, size_t klen, size_t stop,
    const char **at, int *equal)
{
    unsigned  cp, lo;
    size_t    d, n;
    char      u[4];

    if (s->p >= s->end || *s->p != '"') {
        return -1;
    }

    s->p++;
    d = 0;
    *equal = 1;

    while (s->p < s->end && *s->p != '"') {
        if (stop != (size_t) -1 && d >= stop && *at == NULL) {
            *at = s->p;
        }

        if (*s->p != '\\') {
            if (key != NULL && (d >= klen || key[d] != *s->p)) {
                *equal = 0;
            }

            d++;
            s->p++;
            continue;
        }

        if (s->p + 1 >= s->end) {
            return -1;
        }

        if (s->p[1] != 'u') {
            switch (s->p[1]) {
            case 'n': u[0] = '\n'; break;
            case 't': u[0] = '\t'; break;
            case 'r': u[0] = '\r'; break;
            case 'b': u[0] = '\b'; break;
            case 'f': u[0] = '\f'; break;
            default:  u[0] = s->p[1]; break;
            }

            n = 1;
            s->p += 2;

        } else {
            if (omni_js_hex4(s->p + 2, s->end, &cp) != 0) {
                return -1;
            }

            s->p += 6;

            if (cp >= 0xd800 && cp <= 0xdbff && s->end - s->p >= 6
                && s->p[0] == '\\' && s->p[1] == 'u'
                && omni_js_hex4(s->p + 2, s->end, &lo) == 0
                && lo >= 0xdc00 && lo <= 0xdfff)
            {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                s->p += 6;
            }

            if (cp < 0x80) {
                u[0] = (char) cp;
                n = 1;

            } else if (cp < 0x800) {
                u[0] = (char) (0xc0 | cp >> 6);
                u[1] = (char) (0x80 | (cp & 0x3f));
                n = 2;

            } else if (cp < 0x10000) {
                u[0] = (char) (0xe0 | cp >> 12);
                u[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
                u[2] = (char) (0x80 | (cp & 0x3f));
                n = 3;

            } else {
                u[0] = (char) (0xf0 | cp >> 18);
                u[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
                u[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
                u[3] = (char) (0x80 | (cp & 0x3f));
                n = 4;
            }
        }

        if (key != NULL
            && (d + n > klen || memcmp(key + d, u, n) != 0))
        {
            *equal = 0;
        }

        d += n;
    }

    if (s->p >= s->end) {
        return -1;
    }

    if (stop != (size_t) -1 && *at == NULL) {
        *at = s->p;         /* at or past the end: the closing quote */
    }

    if (key != NULL && d != klen) {
        *equal = 0;
    }

    s->p++;

    return 0;
}


static int
omni_js_find(omni_jscan_t *s, const omni_jseg_t *path, unsigned depth,
    unsigned i, int want_key, size_t str_off, const char **pos)
{
    int                 equal;
    size_t              idx;
    const char         *kpos, *at;
    const omni_jseg_t  *seg;

    omni_js_ws(s);

    if (s->p >= s->end) {
        return -1;
    }

    if (i == depth) {
        *pos = s->p;

        if (str_off != (size_t) -1 && *s->p == '"') {
            at = NULL;
            if (omni_js_string(s, NULL, 0, str_off, &at, &equal) == 0
                && at != NULL)
            {
                *pos = at;
            }
        }

        return 0;
    }

    seg = &path[i];

    if (seg->key != NULL) {
        if (*s->p != '{') {
            return -1;
        }

        s->p++;

        for ( ;; ) {
            omni_js_ws(s);

            if (s->p >= s->end || *s->p == '}') {
                return -1;
            }

            kpos = s->p;
            at = NULL;

            if (omni_js_string(s, seg->key, seg->klen, (size_t) -1, &at,
                               &equal) != 0)
            {
                return -1;
            }

            omni_js_ws(s);

            if (s->p >= s->end || *s->p != ':') {
                return -1;
            }

            s->p++;

            if (equal) {
                if (want_key && i + 1 == depth) {
                    *pos = kpos;
                    return 0;
                }

                return omni_js_find(s, path, depth, i + 1, want_key,
                                    str_off, pos);
            }

            if (omni_js_skip_value(s) != 0) {
                return -1;
            }

            omni_js_ws(s);

            if (s->p < s->end && *s->p == ',') {
                s->p++;
                continue;
            }

            return -1;
        }
    }

    if (*s->p != '[') {
        return -1;
    }

    s->p++;

    for (idx = 0; ; idx++) {
        omni_js_ws(s);

        if (s->p >= s->end || *s->p == ']') {
            return -1;
        }

        if (idx == seg->index) {
            return omni_js_find(s, path, depth, i + 1, want_key, str_off,
                                pos);
        }

        if (omni_js_skip_value(s) != 0) {
            return -1;
        }

        omni_js_ws(s);

        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }

        return -1;
    }
}


int
omni_json_position(const char *text, size_t len, const omni_jseg_t *path,
    unsigned depth, int want_key, size_t str_off, unsigned *line,
    unsigned *col)
{
    const char    *pos;
    omni_jscan_t   s;

    s.p = text;
    s.end = text + len;
    pos = NULL;

    /* a UTF-8 byte order mark is not part of the document */
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
        s.p += 3;
    }

    if (omni_js_find(&s, path, depth, 0, want_key, str_off, &pos) != 0
        || pos == NULL)
    {
        omni_js_ws(&s);
        omni_js_linecol(text, 0, line, col);
        return -1;
    }

    omni_js_linecol(text, (size_t) (pos - text), line, col);

    return 0;
}
