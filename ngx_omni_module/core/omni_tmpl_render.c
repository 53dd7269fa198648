/*
 * Templates (omni_tmpl.h), rendering: output sinks (a counted buffer,
 * JSON-escaping and HTML-to-text filters), the escapers for every
 * context, the URL policy, and the renderer itself.  Nothing here
 * allocates: rendering runs on the request path.
 */

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "omni_tmpl.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif


#define OMNI_TMPL_URL_BUF       4096    /* longest templated URL value */


static void omni_sink_buf_put(omni_sink_t *s, const char *p, size_t n);
static void omni_sink_json_put(omni_sink_t *s, const char *p, size_t n);
static void omni_sink_strip_put(omni_sink_t *s, const char *p, size_t n);
static void omni_strip_emit(omni_sink_t *s, const char *p, size_t n);
static void omni_strip_entity(omni_sink_t *s);
static void omni_esc_url_full(omni_sink_t *s, const char *p, size_t n);


static int
omni_is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}


/* ---- the URL policy ---- */

int
omni_url_allowed(const char *p, size_t n)
{
    char                  s[9];
    size_t                i, k;
    const unsigned char  *u;

    /*
     * The common case on the request path (every pixel, every templated
     * link): eight printable bytes first, nothing to skip, so the answer
     * is the prefix itself; the loop below decides the rest the same way.
     */
    u = (const unsigned char *) p;

    if (n >= 8 && u[0] > ' ' && u[1] > ' ' && u[2] > ' ' && u[3] > ' '
        && u[4] > ' ' && u[5] > ' ' && u[6] > ' ' && u[7] > ' ')
    {
        if (u[0] == '/') {
            return u[1] != '/' && u[1] != '\\';
        }

        if ((u[0] | 0x20) != 'h' || (u[1] | 0x20) != 't'
            || (u[2] | 0x20) != 't' || (u[3] | 0x20) != 'p')
        {
            return 0;
        }

        if (u[4] == ':') {
            return u[5] == '/' && u[6] == '/';
        }

        return (u[4] | 0x20) == 's' && u[5] == ':' && u[6] == '/'
               && u[7] == '/';
    }

    for (i = 0, k = 0; i < n && k < sizeof(s) - 1; i++) {
        if (p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
            continue;
        }

        if (k == 0 && (unsigned char) p[i] <= ' ') {
            continue;
        }

        s[k++] = (char) (p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
    }

    s[k] = '\0';

    if (k >= 1 && s[0] == '/') {
        return k == 1 || (s[1] != '/' && s[1] != '\\');
    }

    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}


/* ---- sinks ---- */

static void
omni_sink_buf_put(omni_sink_t *s, const char *p, size_t n)
{
    size_t  room;

    if (s->cap > 0 && s->len < s->cap - 1) {
        room = s->cap - 1 - s->len;
        memcpy(s->buf + s->len, p, n < room ? n : room);
    }

    s->len += n;
}


/*
 * What the escapers and the renderer write with: a buffer sink with the
 * room is filled here, without the indirect call (a banner or a pixel is
 * some twenty small pieces); any other sink, or the end of the room, goes
 * through its put.
 */
static inline void
omni_put(omni_sink_t *s, const char *p, size_t n)
{
    if (s->put == omni_sink_buf_put && s->len + n < s->cap) {
        memcpy(s->buf + s->len, p, n);
        s->len += n;
        return;
    }

    s->put(s, p, n);
}


void
omni_sink_buf(omni_sink_t *s, char *buf, size_t cap)
{
    memset(s, 0, sizeof(omni_sink_t));
    s->put = omni_sink_buf_put;
    s->buf = buf;
    s->cap = cap;
}


size_t
omni_sink_end(omni_sink_t *s)
{
    if (s->cap > 0) {
        s->buf[s->len < s->cap - 1 ? s->len : s->cap - 1] = '\0';
    }

    return s->len;
}


static void
omni_sink_json_put(omni_sink_t *s, const char *p, size_t n)
{
    omni_esc_json(s->next, p, n);
}


void
omni_sink_json(omni_sink_t *s, omni_sink_t *next)
{
    memset(s, 0, sizeof(omni_sink_t));
    s->put = omni_sink_json_put;
    s->next = next;
}


/* ---- escapers ---- */

/*
 * The replacement of each byte that HTML text or an attribute value
 * cannot carry as is (NUL is dropped), indexed by the byte: one load per
 * byte, where a switch compared each with seven characters.
 */
static const char  *omni_esc_html_rep[256] = {
    ['\0'] = "",
    ['&'] = "&amp;",
    ['<'] = "&lt;",
    ['>'] = "&gt;",
    ['"'] = "&quot;",
    ['\''] = "&#39;",
    ['`'] = "&#96;",
};


/*
 * The offset of the first byte at or after i that HTML escaping replaces
 * (n when none): 16 bytes per step with SSE2 (seven compares, one mask),
 * where the table costs a load and a test per byte.
 */
static size_t
omni_esc_html_next(const char *p, size_t i, size_t n)
{
#if defined(__SSE2__)
    int      m;
    __m128i  v, x;

    while (i + 16 <= n) {
        v = _mm_loadu_si128((const __m128i *) (p + i));
        x = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('&')),
                         _mm_cmpeq_epi8(v, _mm_set1_epi8('<')));
        x = _mm_or_si128(x, _mm_cmpeq_epi8(v, _mm_set1_epi8('>')));
        x = _mm_or_si128(x, _mm_cmpeq_epi8(v, _mm_set1_epi8('"')));
        x = _mm_or_si128(x, _mm_cmpeq_epi8(v, _mm_set1_epi8('\'')));
        x = _mm_or_si128(x, _mm_cmpeq_epi8(v, _mm_set1_epi8('`')));
        x = _mm_or_si128(x, _mm_cmpeq_epi8(v, _mm_setzero_si128()));
        m = _mm_movemask_epi8(x);

        if (m) {
            return i + (size_t) __builtin_ctz((unsigned) m);
        }

        i += 16;
    }
#endif

    while (i < n && omni_esc_html_rep[(unsigned char) p[i]] == NULL) {
        i++;
    }

    return i;
}


static const unsigned char  omni_esc_html_len[256] = {
    ['&'] = 5, ['<'] = 4, ['>'] = 4, ['"'] = 6, ['\''] = 5, ['`'] = 5,
};


void
omni_esc_html(omni_sink_t *s, const char *p, size_t n)
{
    size_t       i, run;
    const char  *rep;

    run = 0;

    for (i = 0; i < n; i++) {
        i = omni_esc_html_next(p, i, n);

        if (i == n) {
            break;
        }

        rep = omni_esc_html_rep[(unsigned char) p[i]];

        if (rep == NULL) {
            continue;
        }

        if (i > run) {
            omni_put(s, p + run, i - run);
        }

        omni_put(s, rep, omni_esc_html_len[(unsigned char) p[i]]);
        run = i + 1;
    }

    if (n > run) {
        omni_put(s, p + run, n - run);
    }
}


/* Length of a valid UTF-8 sequence at p, 0 when invalid. */
static size_t
omni_utf8_len(const unsigned char *p, size_t n)
{
    unsigned  c = p[0];

    if (c < 0x80) {
        return 1;
    }

    if (c >= 0xc2 && c <= 0xdf) {
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    }

    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) {
            return 0;
        }

        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f)) {
            return 0;       /* overlong, or a surrogate */
        }

        return 3;
    }

    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80
            || (p[3] & 0xc0) != 0x80)
        {
            return 0;
        }

        if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f)) {
            return 0;
        }

        return 4;
    }

    return 0;
}


/*
 * JSON string content.  Beyond what JSON requires, <, >, &, ' and the
 * line separators U+2028/U+2029 are escaped so that the output is also
 * safe inside an HTML <script> block; invalid UTF-8 becomes U+FFFD so
 * the output is always valid JSON.
 */
void
omni_esc_json(omni_sink_t *s, const char *p, size_t n)
{
    static const char     hex[] = "0123456789abcdef";
    const unsigned char  *u = (const unsigned char *) p;
    size_t                i, run, l;
    char                  buf[8];
    const char           *rep;
    size_t                rlen;

    run = 0;
    i = 0;

    while (i < n) {
        rep = NULL;
        rlen = 0;
        l = 1;

        if (u[i] >= 0x80) {
            l = omni_utf8_len(u + i, n - i);

            if (l == 0) {
                rep = "\\ufffd";
                rlen = 6;
                l = 1;

            } else if (l == 3 && u[i] == 0xe2 && u[i + 1] == 0x80
                       && (u[i + 2] == 0xa8 || u[i + 2] == 0xa9))
            {
                rep = u[i + 2] == 0xa8 ? "\\u2028" : "\\u2029";
                rlen = 6;
            }

        } else if (u[i] == '"') {
            rep = "\\\"";
            rlen = 2;

        } else if (u[i] == '\\') {
            rep = "\\\\";
            rlen = 2;

        } else if (u[i] == '\n') {
            rep = "\\n";
            rlen = 2;

        } else if (u[i] == '\r') {
            rep = "\\r";
            rlen = 2;

        } else if (u[i] == '\t') {
            rep = "\\t";
            rlen = 2;

        } else if (u[i] < 0x20 || u[i] == 0x7f || u[i] == '<' || u[i] == '>'
                   || u[i] == '&' || u[i] == '\'')
        {
            buf[0] = '\\';
            buf[1] = 'u';
            buf[2] = '0';
            buf[3] = '0';
            buf[4] = hex[u[i] >> 4];
            buf[5] = hex[u[i] & 0xf];
            rep = buf;
            rlen = 6;
        }

        if (rep != NULL) {
            if (i > run) {
                omni_put(s, p + run, i - run);
            }

            omni_put(s, rep, rlen);
            run = i + l;
        }

        i += l;
    }

    if (n > run) {
        omni_put(s, p + run, n - run);
    }
}


/* RFC 3986 unreserved characters, by byte: one load per byte. */
static const unsigned char  omni_url_unreserved[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
    ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1,
};


/*
 * The offset of the first byte at or after i that is not unreserved (n
 * when none): 16 bytes per step with SSE2 (ids, names and words are
 * long runs of them), the table for the rest.  Bytes from 0x80 compare
 * as negative, so they are never in a range.
 */
static size_t
omni_url_reserved_next(const char *p, size_t i, size_t n)
{
#if defined(__SSE2__)
    int      m;
    __m128i  v, ok;

    while (i + 16 <= n) {
        v = _mm_loadu_si128((const __m128i *) (p + i));

        ok = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
                           _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
        ok = _mm_or_si128(ok,
                 _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('A' - 1)),
                               _mm_cmplt_epi8(v, _mm_set1_epi8('Z' + 1))));
        ok = _mm_or_si128(ok,
                 _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('a' - 1)),
                               _mm_cmplt_epi8(v, _mm_set1_epi8('z' + 1))));
        ok = _mm_or_si128(ok, _mm_cmpeq_epi8(v, _mm_set1_epi8('-')));
        ok = _mm_or_si128(ok, _mm_cmpeq_epi8(v, _mm_set1_epi8('.')));
        ok = _mm_or_si128(ok, _mm_cmpeq_epi8(v, _mm_set1_epi8('_')));
        ok = _mm_or_si128(ok, _mm_cmpeq_epi8(v, _mm_set1_epi8('~')));
        m = _mm_movemask_epi8(ok) ^ 0xffff;

        if (m) {
            return i + (size_t) __builtin_ctz((unsigned) m);
        }

        i += 16;
    }
#endif

    while (i < n && omni_url_unreserved[(unsigned char) p[i]]) {
        i++;
    }

    return i;
}


/* RFC 3986 unreserved characters stay, everything else is %XX. */
void
omni_esc_url_part(omni_sink_t *s, const char *p, size_t n)
{
    static const char  hex[] = "0123456789ABCDEF";
    size_t             i, run;
    unsigned char      c;
    char               buf[3];

    run = 0;

    for (i = 0; i < n; i++) {
        i = omni_url_reserved_next(p, i, n);

        if (i == n) {
            break;
        }

        c = (unsigned char) p[i];

        if (i > run) {
            omni_put(s, p + run, i - run);
        }

        buf[0] = '%';
        buf[1] = hex[c >> 4];
        buf[2] = hex[c & 0xf];
        omni_put(s, buf, 3);
        run = i + 1;
    }

    if (n > run) {
        omni_put(s, p + run, n - run);
    }
}


/*
 * A whole URL from a variable, inside an attribute value: characters
 * that could end the attribute, start a tag or confuse URL parsing are
 * percent-encoded, '&' becomes "&amp;".  The caller checks the scheme of
 * the finished value.
 */
static void
omni_esc_url_full(omni_sink_t *s, const char *p, size_t n)
{
    static const char  hex[] = "0123456789ABCDEF";
    size_t             i, run;
    unsigned char      c;
    char               buf[3];

    run = 0;

    for (i = 0; i < n; i++) {
        c = (unsigned char) p[i];

        if (c > ' ' && c < 0x7f && c != '"' && c != '\'' && c != '<'
            && c != '>' && c != '\\' && c != '^' && c != '`' && c != '{'
            && c != '|' && c != '}' && c != '&')
        {
            continue;
        }

        if (i > run) {
            omni_put(s, p + run, i - run);
        }

        if (c == '&') {
            omni_put(s, "&amp;", 5);

        } else {
            buf[0] = '%';
            buf[1] = hex[c >> 4];
            buf[2] = hex[c & 0xf];
            omni_put(s, buf, 3);
        }

        run = i + 1;
    }

    if (n > run) {
        omni_put(s, p + run, n - run);
    }
}


/* Plain text, headers: control characters (CR, LF, NUL, ...) dropped. */
void
omni_esc_text(omni_sink_t *s, const char *p, size_t n)
{
    size_t         i, run;
    unsigned char  c;

    run = 0;

    for (i = 0; i < n; i++) {
        c = (unsigned char) p[i];

        if (c >= ' ' && c != 0x7f) {
            continue;
        }

        if (i > run) {
            omni_put(s, p + run, i - run);
        }

        run = i + 1;
    }

    if (n > run) {
        omni_put(s, p + run, n - run);
    }
}


/* ---- the strip filter: HTML to plain text ---- */

enum {
    OMNI_S_TEXT = 0,
    OMNI_S_TAG,
    OMNI_S_TAGNAME,
    OMNI_S_ENTITY,
    OMNI_S_RAW,             /* script/style content */
    OMNI_S_RAW_LT           /* '<' seen in RAW */
};

#define OMNI_S_F_RAW     0x100   /* the tag opens script/style */
#define OMNI_S_F_BLOCK   0x200   /* the tag separates words */
#define OMNI_S_F_END     0x400   /* an end tag */


void
omni_sink_strip(omni_sink_t *s, omni_sink_t *next)
{
    memset(s, 0, sizeof(omni_sink_t));
    s->put = omni_sink_strip_put;
    s->next = next;
}


/* Text out, white space collapsed; leading and trailing space dropped. */
static void
omni_strip_emit(omni_sink_t *s, const char *p, size_t n)
{
    size_t  i, run;

    run = 0;

    for (i = 0; i < n; i++) {
        if (!omni_is_space((unsigned char) p[i])) {
            continue;
        }

        if (i > run) {
            if (s->space == 2) {
                s->next->put(s->next, " ", 1);
            }

            s->next->put(s->next, p + run, i - run);
            s->space = 1;
        }

        if (s->space == 1) {
            s->space = 2;       /* a space is due before more text */
        }

        run = i + 1;
    }

    if (n > run) {
        if (s->space == 2) {
            s->next->put(s->next, " ", 1);
        }

        s->next->put(s->next, p + run, n - run);
        s->space = 1;
    }
}


static void
omni_strip_utf8(omni_sink_t *s, unsigned long cp)
{
    char    u[4];
    size_t  n;

    if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        cp = 0xfffd;
    }

    if (cp < 0x80) {
        u[0] = (char) cp;
        n = 1;

    } else if (cp < 0x800) {
        u[0] = (char) (0xc0 | (cp >> 6));
        u[1] = (char) (0x80 | (cp & 0x3f));
        n = 2;

    } else if (cp < 0x10000) {
        u[0] = (char) (0xe0 | (cp >> 12));
        u[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char) (0x80 | (cp & 0x3f));
        n = 3;

    } else {
        u[0] = (char) (0xf0 | (cp >> 18));
        u[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char) (0x80 | (cp & 0x3f));
        n = 4;
    }

    omni_strip_emit(s, u, n);
}


/* The pending "&...;" (without the '&'), decoded or passed through. */
static void
omni_strip_entity(omni_sink_t *s)
{
    static const struct {
        const char  *name;
        const char  *text;
    } named[] = {
        { "amp", "&" }, { "lt", "<" }, { "gt", ">" }, { "quot", "\"" },
        { "apos", "'" }, { "nbsp", " " }, { NULL, NULL }
    };
    char           name[sizeof(s->pend) + 1];
    unsigned long  cp;
    unsigned       i;
    char          *end;

    memcpy(name, s->pend, s->npend);
    name[s->npend] = '\0';

    if (s->npend > 1 && name[s->npend - 1] == ';') {
        name[s->npend - 1] = '\0';

        if (name[0] == '#') {
            if (name[1] == 'x' || name[1] == 'X') {
                cp = strtoul(name + 2, &end, 16);

            } else {
                cp = strtoul(name + 1, &end, 10);
            }

            if (*end == '\0' && end != name + 1) {
                omni_strip_utf8(s, cp);
                s->npend = 0;
                return;
            }
        }

        for (i = 0; named[i].name; i++) {
            if (strcmp(named[i].name, name) == 0) {
                omni_strip_emit(s, named[i].text, strlen(named[i].text));
                s->npend = 0;
                return;
            }
        }
    }

    omni_strip_emit(s, "&", 1);
    omni_strip_emit(s, s->pend, s->npend);
    s->npend = 0;
}


static int
omni_strip_name_in(const char *name, size_t n, const char *const *list)
{
    unsigned  i;

    for (i = 0; list[i]; i++) {
        if (strlen(list[i]) == n && strncasecmp(name, list[i], n) == 0) {
            return 1;
        }
    }

    return 0;
}


/* A tag ends: block elements separate words; script/style are skipped. */
static void
omni_strip_tag_end(omni_sink_t *s)
{
    if ((s->state & OMNI_S_F_BLOCK) && s->space == 1) {
        s->space = 2;
    }

    s->state = (s->state & OMNI_S_F_RAW) ? OMNI_S_RAW : OMNI_S_TEXT;
}


static void
omni_sink_strip_put(omni_sink_t *s, const char *p, size_t n)
{
    static const char *const  raw[] = { "script", "style", NULL };
    static const char *const  block[] = {
        "br", "p", "div", "li", "ul", "ol", "tr", "td", "th", "table",
        "h1", "h2", "h3", "h4", "h5", "h6", "hr", "section", "article",
        "header", "footer", "aside", "nav", "blockquote", "dd", "dt",
        "figure", "figcaption", "main", NULL
    };
    size_t    i, run;
    unsigned  flags;
    char      c;

    run = 0;

    for (i = 0; i < n; i++) {
        c = p[i];

        switch (s->state & 0xff) {

        case OMNI_S_TEXT:
            if (c != '<' && c != '&') {
                continue;
            }

            if (i > run) {
                omni_strip_emit(s, p + run, i - run);
            }

            s->state = c == '<' ? OMNI_S_TAGNAME : OMNI_S_ENTITY;
            s->npend = 0;
            break;

        case OMNI_S_ENTITY:
            if (c == '<' || c == '&' || omni_is_space((unsigned char) c)
                || s->npend >= sizeof(s->pend))
            {
                /* not an entity after all: reprocess c as text */
                omni_strip_entity(s);
                s->state = OMNI_S_TEXT;
                run = i;
                i--;
                continue;
            }

            s->pend[s->npend++] = c;

            if (c == ';') {
                omni_strip_entity(s);
                s->state = OMNI_S_TEXT;
            }

            break;

        case OMNI_S_TAGNAME:
            if (c == '/' && s->npend == 0 && !(s->state & OMNI_S_F_END)) {
                s->state |= OMNI_S_F_END;
                break;
            }

            if (c == '>' || c == '/' || omni_is_space((unsigned char) c)) {
                flags = s->state & OMNI_S_F_END;

                if (!flags && omni_strip_name_in(s->pend, s->npend, raw)) {
                    flags |= OMNI_S_F_RAW;
                }

                if (omni_strip_name_in(s->pend, s->npend, block)) {
                    flags |= OMNI_S_F_BLOCK;
                }

                s->state = flags | OMNI_S_TAG;

                if (c == '>') {
                    omni_strip_tag_end(s);
                }

            } else if (s->npend < sizeof(s->pend)) {
                s->pend[s->npend++] = c;
            }

            break;

        case OMNI_S_TAG:
            if (c == '>') {
                omni_strip_tag_end(s);
            }
            break;

        case OMNI_S_RAW:
            if (c == '<') {
                s->state = OMNI_S_RAW_LT;
            }
            break;

        case OMNI_S_RAW_LT:
            if (c == '/') {
                s->state = OMNI_S_TAGNAME | OMNI_S_F_END;
                s->npend = 0;

            } else {
                s->state = c == '<' ? OMNI_S_RAW_LT : OMNI_S_RAW;
            }
            break;
        }

        run = i + 1;
    }

    if ((s->state & 0xff) == OMNI_S_TEXT && n > run) {
        omni_strip_emit(s, p + run, n - run);
    }
}


void
omni_sink_strip_end(omni_sink_t *s)
{
    if ((s->state & 0xff) == OMNI_S_ENTITY) {
        omni_strip_entity(s);
    }

    s->state = OMNI_S_TEXT;
}


/* ---- rendering ---- */

void
omni_tmpl_render(const omni_tmpl_t *t, omni_sink_t *out,
    omni_tmpl_resolve_pt resolve, void *env)
{
    char               scratch[128];
    char               ubuf[OMNI_TMPL_URL_BUF];
    unsigned           i;
    size_t             len;
    const char        *val;
    omni_sink_t        url, *s;
    const omni_top_t  *op;

    if (t == NULL) {
        return;
    }

    s = out;

    for (i = 0; i < t->nops; i++) {
        op = &t->ops[i];

        switch (op->op) {

        case OMNI_TOP_LIT:
            omni_put(s, t->text + op->off, op->len);
            break;

        case OMNI_TOP_VAR:
            val = NULL;
            len = 0;
            resolve(env, op, t->text, &val, &len, scratch, sizeof(scratch));

            if (len == 0 || val == NULL) {
                val = t->text + op->def_off;
                len = op->def_len;
            }

            switch (op->esc) {
            case OMNI_ESC_HTML:
                omni_esc_html(s, val, len);
                break;
            case OMNI_ESC_URL_FULL:
                omni_esc_url_full(s, val, len);
                break;
            case OMNI_ESC_URL_PART:
            case OMNI_ESC_URL_RAW:
                omni_esc_url_part(s, val, len);
                break;
            case OMNI_ESC_JSON:
                omni_esc_json(s, val, len);
                break;
            default:
                omni_esc_text(s, val, len);
                break;
            }

            break;

        case OMNI_TOP_URL_BEGIN:
            omni_sink_buf(&url, ubuf, sizeof(ubuf));
            s = &url;
            break;

        case OMNI_TOP_URL_END:
            s = out;

            /* too long to check, or not http(s): a dead link */
            if (url.len < sizeof(ubuf) && omni_url_allowed(ubuf, url.len)) {
                omni_put(s, ubuf, url.len);

            } else {
                omni_put(s, "#", 1);
            }

            break;
        }
    }
}
