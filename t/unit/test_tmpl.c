/*
 * Template engine unit tests: variable syntax, the HTML context analysis
 * (what is escaped how, what is refused), the URL policy, every escaper,
 * the sinks and the HTML-to-text filter.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omni_tap.h"
#include "omni_core.h"
#include "omni_tmpl.h"


static const char  *value;          /* what every variable resolves to */
static char         out[8192];

typedef struct {
    void   *blocks[4096];
    int     n;
} pool_t;

static pool_t  pool;


static void *
pool_alloc(void *p, size_t n)
{
    pool_t  *pl = p;
    void    *m;

    if (pl->n >= 4096) {
        return NULL;
    }

    m = calloc(1, n ? n : 1);
    pl->blocks[pl->n++] = m;

    return m;
}


static void
pool_free(void)
{
    int  i;

    for (i = 0; i < pool.n; i++) {
        free(pool.blocks[i]);
    }

    pool.n = 0;
}


/* Attributes resolve to `value` (NULL: absent); rule.id to "r1". */
static void
resolve(void *env, const omni_top_t *op, const char *text, const char **val,
    size_t *len, char *scratch, size_t cap)
{
    if (op->var == OMNI_V_RULE_ID) {
        *val = "r1";
        *len = 2;
        return;
    }

    if (op->var == OMNI_V_ATTR && value != NULL) {
        *val = value;
        *len = strlen(value);
        return;
    }

    *len = 0;
}


/* Compiles and renders; "ERR@offset: msg" on a compile error. */
static const char *
render(const char *src, unsigned mode, const char *v)
{
    omni_tmpl_t      *t;
    omni_tmpl_err_t   err;
    omni_sink_t       s;

    value = v;

    t = omni_tmpl_compile(src, strlen(src), mode, pool_alloc, &pool, &err);
    if (t == NULL) {
        snprintf(out, sizeof(out), "ERR@%zu: %s", err.offset, err.msg);
        return out;
    }

    omni_sink_buf(&s, out, sizeof(out));
    omni_tmpl_render(t, &s, resolve, NULL);
    omni_sink_end(&s);

    return out;
}


static const char *
strip(const char *html)
{
    omni_sink_t  s, st;

    omni_sink_buf(&s, out, sizeof(out));
    omni_sink_strip(&st, &s);
    st.put(&st, html, strlen(html));
    omni_sink_strip_end(&st);
    omni_sink_end(&s);

    return out;
}


static const char *
esc(void (*fn)(omni_sink_t *, const char *, size_t), const char *in,
    size_t n)
{
    omni_sink_t  s;

    omni_sink_buf(&s, out, sizeof(out));
    fn(&s, in, n);
    omni_sink_end(&s);

    return out;
}


static void
test_syntax(void)
{
    is_str(render("Hi {{first_name|there}}!", OMNI_TMPL_TEXT, NULL),
           "Hi there!", "default when absent");
    is_str(render("Hi {{ first_name | there }}!", OMNI_TMPL_TEXT, "Ana"),
           "Hi Ana!", "spaces inside braces");
    is_str(render("Hi {{first_name|\"  dear friend \"}}", OMNI_TMPL_TEXT,
                  NULL), "Hi   dear friend ", "quoted default keeps spaces");
    is_str(render("{{attr.loyalty-tier}}", OMNI_TMPL_TEXT, "gold"), "gold",
           "attr.KEY form");
    is_str(render("{{rule.id}}", OMNI_TMPL_TEXT, NULL), "r1", "rule.id");
    is_str(render("{{x}}{{y}}", OMNI_TMPL_TEXT, "a"), "aa",
           "adjacent variables");
    is_str(render("no variables", OMNI_TMPL_TEXT, NULL), "no variables",
           "literal only");
    is_str(render("", OMNI_TMPL_TEXT, NULL), "", "empty template");
    is_str(render("{ single } and }}", OMNI_TMPL_TEXT, NULL),
           "{ single } and }}", "single braces are text");

    is_str(render("Hi {{first_name", OMNI_TMPL_TEXT, NULL),
           "ERR@3: unterminated \"{{\"", "unterminated");
    is_str(render("{{}}", OMNI_TMPL_TEXT, NULL),
           "ERR@0: invalid template variable name", "empty name");
    is_str(render("{{a b}}", OMNI_TMPL_TEXT, NULL),
           "ERR@0: invalid template variable \"a\"", "two words");
    is_str(render("x {{cart.total}}", OMNI_TMPL_TEXT, NULL),
           "ERR@2: unknown template variable \"cart.total\"",
           "unknown variable");
    is_str(render("{{viewed.qty}}", OMNI_TMPL_TEXT, NULL),
           "ERR@0: unknown template variable \"viewed.qty\"",
           "a field the item kind lacks");
    is_str(render("{{a..b}}", OMNI_TMPL_TEXT, NULL),
           "ERR@0: invalid template variable name", "empty path part");
    is_str(render("{{<b>}}", OMNI_TMPL_TEXT, NULL),
           "ERR@0: invalid template variable name", "bad characters");
}


static void
test_html_contexts(void)
{
    const char  *xss = "\"><script>alert(1)</script>'`";

    is_str(render("<p>{{n}}</p>", OMNI_TMPL_HTML, xss),
           "<p>&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&#39;&#96;</p>",
           "text context");
    is_str(render("<p title=\"{{n}}\" data-x='{{n}}'>", OMNI_TMPL_HTML, xss),
           "<p title=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&#39;"
           "&#96;\" data-x='&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
           "&#39;&#96;'>", "attribute contexts, both quotes");
    is_str(render("<textarea>{{n}}</textarea>", OMNI_TMPL_HTML, "</textarea>"),
           "<textarea>&lt;/textarea&gt;</textarea>", "RCDATA is escaped");
    is_str(render("<a href=\"{{u}}\">", OMNI_TMPL_HTML,
                  "https://a.example/?q=1&r=<2>"),
           "<a href=\"https://a.example/?q=1&amp;r=%3C2%3E\">",
           "a whole URL: quoted characters encoded, & escaped");
    is_str(render("<a href=\"https://a.example/s?q={{q}}&x=1\">",
                  OMNI_TMPL_HTML, "a b&c=d/\"'"),
           "<a href=\"https://a.example/s?q=a%20b%26c%3Dd%2F%22%27&x=1\">",
           "a URL component: percent-encoded");
    is_str(render("<a href=\"{{u}}\">", OMNI_TMPL_HTML, "javascript:x"),
           "<a href=\"#\">", "javascript: becomes #");
    is_str(render("<img src=\"{{u}}/x.png\">", OMNI_TMPL_HTML, "JaVaScRiPt:x"),
           "<img src=\"#\">", "any case");
    is_str(render("<a href=\"{{u}}\">", OMNI_TMPL_HTML, NULL),
           "<a href=\"#\">", "an empty URL is a dead link");
    is_str(render("<a href=\"{{u|/fallback}}\">", OMNI_TMPL_HTML, NULL),
           "<a href=\"/fallback\">", "the default is checked too");
    is_str(render("<a href=\"{{u|javascript:x}}\">", OMNI_TMPL_HTML, NULL),
           "<a href=\"#\">", "a bad default is refused too");
    is_str(render("<A HREF=\"{{u}}\">", OMNI_TMPL_HTML, "//evil.example"),
           "<A HREF=\"#\">", "upper-case attribute, protocol-relative URL");
    is_str(render("<form action=\"{{u}}\"><button formaction=\"/x\">",
                  OMNI_TMPL_HTML, "data:text/html,x"),
           "<form action=\"#\"><button formaction=\"/x\">",
           "other URL attributes");
    is_str(render("<a href=\"/static\" title=\"{{n}}\">", OMNI_TMPL_HTML, "t"),
           "<a href=\"/static\" title=\"t\">", "a literal URL passes");
    is_str(render("<a href=#top>{{n}}</a>", OMNI_TMPL_HTML, "x"),
           "<a href=#top>x</a>", "unquoted literal fragment");
    is_str(render("<!-- c --><p>{{n}}</p><script>var a = 1;</script>{{n}}",
                  OMNI_TMPL_HTML, "<"),
           "<!-- c --><p>&lt;</p><script>var a = 1;</script>&lt;",
           "comments and literal scripts around variables");
    is_str(render("<script>if (a < b) {}</script ><p>{{n}}</p>",
                  OMNI_TMPL_HTML, "x"),
           "<script>if (a < b) {}</script ><p>x</p>",
           "the end of a script is found");

    /* refused */
    is_str(render("<script>var n = \"{{n}}\";</script>", OMNI_TMPL_HTML, ""),
           "ERR@17: template variable not allowed inside <script>",
           "inside <script>");
    is_str(render("<style>p { color: {{c}} }</style>", OMNI_TMPL_HTML, ""),
           "ERR@18: template variable not allowed inside <style>",
           "inside <style>");
    is_str(render("<a onclick=\"go('{{n}}')\">", OMNI_TMPL_HTML, ""),
           "ERR@16: template variable not allowed in event handler "
           "\"onclick\"", "event handler");
    is_str(render("<a ONMOUSEOVER='{{n}}'>", OMNI_TMPL_HTML, ""),
           "ERR@16: template variable not allowed in event handler "
           "\"onmouseover\"", "event handler, any case");
    is_str(render("<p style=\"{{n}}\">", OMNI_TMPL_HTML, ""),
           "ERR@10: template variable not allowed in attribute \"style\"",
           "style attribute");
    is_str(render("<img srcset=\"{{n}} 2x\">", OMNI_TMPL_HTML, ""),
           "ERR@13: template variable not allowed in attribute \"srcset\"",
           "srcset");
    is_str(render("<meta content=\"{{n}}\">", OMNI_TMPL_HTML, ""),
           "ERR@15: template variable not allowed in <meta> attributes",
           "meta");
    is_str(render("<p title={{n}}>", OMNI_TMPL_HTML, ""),
           "ERR@9: template variable in an unquoted attribute value (use "
           "quotes)", "unquoted value");
    is_str(render("<p {{n}}>", OMNI_TMPL_HTML, ""),
           "ERR@3: template variable in an attribute name", "attribute name");
    is_str(render("<{{n}}>", OMNI_TMPL_HTML, ""),
           "ERR@1: template variable in a tag name", "tag name");
    is_str(render("</p{{n}}>", OMNI_TMPL_HTML, ""),
           "ERR@3: template variable in an end tag", "end tag");
    is_str(render("<!-- {{n}} -->", OMNI_TMPL_HTML, ""),
           "ERR@5: template variable not allowed in a comment or "
           "declaration", "comment");
    is_str(render("<a href=\"javascript:void(0)\">", OMNI_TMPL_HTML, ""),
           "ERR@9: unsafe URL in attribute \"href\": only http(s) URLs, "
           "paths and fragments are allowed", "literal javascript: URL");
    is_str(render("<a href=\"java\tscript:x\">", OMNI_TMPL_HTML, ""),
           "ERR@9: unsafe URL in attribute \"href\": only http(s) URLs, "
           "paths and fragments are allowed", "literal scheme with a tab");
    is_str(render("<a href=\"&#106;avascript:x\">", OMNI_TMPL_HTML, ""),
           "ERR@9: unsafe URL in attribute \"href\": only http(s) URLs, "
           "paths and fragments are allowed", "scheme spelled by an entity");
    is_str(render("<a href=data:x>", OMNI_TMPL_HTML, ""),
           "ERR@8: unsafe URL in attribute \"href\": only http(s) URLs, "
           "paths and fragments are allowed", "unquoted literal data: URL");
    is_str(render("<script>", OMNI_TMPL_HTML, ""),
           "ERR@8: template ends inside <script>", "unclosed script");
    is_str(render("<p class=\"x", OMNI_TMPL_HTML, ""),
           "ERR@11: template ends inside a tag, an attribute or a comment",
           "unclosed attribute");
}


static void
test_modes(void)
{
    is_str(render("https://px.example.com/t?s={{s}}&c=1", OMNI_TMPL_URL,
                  "a&b=c d/é"),
           "https://px.example.com/t?s=a%26b%3Dc%20d%2F%C3%A9&c=1",
           "pixel URL: components encoded");
    is_str(render("javascript:alert(1)", OMNI_TMPL_URL, ""),
           "ERR@0: a pixel URL must start with https:// or http://",
           "pixel: scheme");
    is_str(render("https://{{h}}.example.com/", OMNI_TMPL_URL, ""),
           "ERR@8: the host of a pixel URL must be literal",
           "pixel: templated host");
    is_str(render("https://user@evil.example/", OMNI_TMPL_URL, ""),
           "ERR@12: the host of a pixel URL must be literal",
           "pixel: userinfo");
    is_str(render("https:///x", OMNI_TMPL_URL, ""),
           "ERR@8: a pixel URL needs a host", "pixel: no host");
    is_str(render("https://a.example/x y", OMNI_TMPL_URL, ""),
           "ERR@19: invalid character in a pixel URL (percent-encode it)",
           "pixel: a space");
    is_str(render("https://a.example/\"><script>", OMNI_TMPL_URL, ""),
           "ERR@18: invalid character in a pixel URL (percent-encode it)",
           "pixel: a quote");

    is_str(render("v={{n}}", OMNI_TMPL_HEADER, "a\r\nSet-Cookie: x\x01"),
           "v=aSet-Cookie: x", "header: CR, LF and controls dropped");
    is_str(render("a\nb", OMNI_TMPL_HEADER, ""),
           "ERR@1: control character in a header value", "header literal");
    is_str(render("Line {{n}}\nnext", OMNI_TMPL_TEXT, "a\tb\nc"),
           "Line abc\nnext", "text: controls dropped from values only");

    {
        omni_tmpl_b_t     b;
        omni_tmpl_t      *t;
        omni_tmpl_err_t   err;
        omni_sink_t       s;

        omni_tmpl_b_init(&b);
        omni_tmpl_b_literal(&b, "{\"t\":", 5);
        ok(omni_tmpl_b_parse(&b, "say \"{{n}}\"\n", 12, OMNI_TMPL_JSON, &err)
           == 0, "JSON string template");
        omni_tmpl_b_literal(&b, "}", 1);
        t = omni_tmpl_b_finish(&b, pool_alloc, &pool);
        omni_tmpl_b_free(&b);

        value = "</script>\xe2\x80\xa8\xff'&";
        omni_sink_buf(&s, out, sizeof(out));
        omni_tmpl_render(t, &s, resolve, NULL);
        omni_sink_end(&s);
        is_str(out, "{\"t\":\"say \\\"\\u003c/script\\u003e\\u2028\\ufffd"
               "\\u0027\\u0026\\\"\\n\"}",
               "JSON: quotes, <, U+2028, invalid UTF-8, newline");
    }
}


/* Every byte value through the HTML escaper (its table), against the rule. */
static void
test_esc_html_bytes(void)
{
    char         in[256 * 2], want[256 * 12], *w;
    const char  *rep;
    unsigned     c, i;

    w = want;

    for (i = 0; i < sizeof(in); i++) {
        c = (i * 7 + 3) & 0xff;         /* every byte, in two orders */
        if (i >= 256) {
            c = i - 256;
        }

        in[i] = (char) c;

        switch (c) {
        case '&':  rep = "&amp;";  break;
        case '<':  rep = "&lt;";   break;
        case '>':  rep = "&gt;";   break;
        case '"':  rep = "&quot;"; break;
        case '\'': rep = "&#39;";  break;
        case '`':  rep = "&#96;";  break;
        case 0:    rep = "";       break;
        default:   rep = NULL;     break;
        }

        if (rep) {
            w += sprintf(w, "%s", rep);

        } else {
            *w++ = (char) c;
        }
    }

    *w = '\0';

    ok(strcmp(esc(omni_esc_html, in, sizeof(in)), want) == 0,
       "HTML escaper: each of the 256 byte values, kept or replaced");
}


static void
test_escapers(void)
{
    is_str(esc(omni_esc_html, "a<b>&\"'`", 8), "a&lt;b&gt;&amp;&quot;&#39;"
           "&#96;", "HTML escaper");
    test_esc_html_bytes();
    is_str(esc(omni_esc_url_part, "AZaz09-._~ /?", 13),
           "AZaz09-._~%20%2F%3F", "URL component escaper");
    is_str(esc(omni_esc_json, "\x01\x7f\xc3\xa9", 4), "\\u0001\\u007f\xc3\xa9",
           "JSON: controls escaped, valid UTF-8 kept");
    is_str(esc(omni_esc_json, "\xed\xa0\x80\xc0\xaf", 5),
           "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd",
           "JSON: surrogates and overlongs replaced");
    is_str(esc(omni_esc_text, "a\0b\rc", 5), "abc", "text: NUL and CR");

    ok(omni_url_allowed("https://x", 9), "https allowed");
    ok(omni_url_allowed("HTTP://x", 8), "HTTP allowed");
    ok(omni_url_allowed("/x", 2), "a path allowed");
    ok(omni_url_allowed("/", 1), "the root allowed");
    ok(!omni_url_allowed("//x", 3), "protocol-relative refused");
    ok(!omni_url_allowed("/\\x", 3), "/\\ refused");
    ok(!omni_url_allowed(" \tjavascript:x", 14), "javascript refused");
    ok(omni_url_allowed("htt\np://x", 9),
       "newlines inside the scheme are ignored, as browsers do");
    ok(!omni_url_allowed("x", 1), "a bare word refused");
    ok(!omni_url_allowed("", 0), "empty refused");
}


static void
test_strip_and_sinks(void)
{
    omni_sink_t  s;
    size_t       n;

    is_str(strip("  <div><p>Hello&nbsp;<b>Ana</b>!</p>\n<p>Bye</p></div> "),
           "Hello Ana! Bye", "tags removed, blocks separate words");
    is_str(strip("a<script>x<y</script>b<style>p{}</style>c"), "abc",
           "script and style content dropped");
    is_str(strip("&lt;&amp;&gt;&quot;&#39;&#x41;&#66;&bogus; & x"),
           "<&>\"'AB&bogus; & x", "entities decoded, unknown ones kept");
    is_str(strip("1<!-- c -->2"), "12", "comments dropped");

    omni_sink_buf(&s, out, 4);
    omni_sink_str(&s, "abcdef");
    n = omni_sink_end(&s);
    ok(n == 6 && strcmp(out, "abc") == 0, "sink: truncates, counts all");

    omni_sink_buf(&s, NULL, 0);
    omni_sink_str(&s, "abcdef");
    is_int(omni_sink_end(&s), 6, "sink: measuring with no buffer");

    {
        char  big[8192];

        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        memcpy(big, "https://x/", 10);
        is_str(render("<a href=\"{{u}}\">", OMNI_TMPL_HTML, big),
               "<a href=\"#\">", "a URL too long to check is dropped");
    }
}


/*
 * The request path's fast escapers and URL check against the plain
 * byte-by-byte versions they replaced (kept here as the reference), over
 * random strings rich in the bytes that matter: identical output.
 */
static void
ref_url_part(omni_sink_t *s, const char *p, size_t n)
{
    static const char  hex[] = "0123456789ABCDEF";
    size_t             i;
    unsigned char      c;
    char               buf[3];

    for (i = 0; i < n; i++) {
        c = (unsigned char) p[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
            || c == '~')
        {
            s->put(s, p + i, 1);
            continue;
        }

        buf[0] = '%';
        buf[1] = hex[c >> 4];
        buf[2] = hex[c & 0xf];
        s->put(s, buf, 3);
    }
}


static void
ref_esc_html(omni_sink_t *s, const char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        switch (p[i]) {
        case '\0': break;
        case '&': omni_sink_str(s, "&amp;"); break;
        case '<': omni_sink_str(s, "&lt;"); break;
        case '>': omni_sink_str(s, "&gt;"); break;
        case '"': omni_sink_str(s, "&quot;"); break;
        case '\'': omni_sink_str(s, "&#39;"); break;
        case '`': omni_sink_str(s, "&#96;"); break;
        default: s->put(s, p + i, 1);
        }
    }
}


static int
ref_url_allowed(const char *p, size_t n)
{
    char    s[9];
    size_t  i, k;

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


static void
test_fast_paths(void)
{
    static const char  *starts[] = { "", "http://", "https://", "HTTPS://",
                                     "hTtP:", "/", "//", "/\\", " \t/x",
                                     "https:/", "httpx://", "javascript:" };
    static const char   alpha[] = "aZ09-._~&<>\"'`\0 \t\n\r/\\:%?=#\x80\xff";
    static const char   alnum[] = "0189:@AZ[`az{-._~/\x7f";
    char                in[200], a[2048], b[2048], hx[OMNI_ID_HEX_LEN + 1],
                        want[OMNI_ID_HEX_LEN + 1];
    unsigned char       id[OMNI_ID_LEN];
    size_t              n, k, na, nb;
    unsigned            i, j, bad_html, bad_url, bad_allowed, bad_hex;
    omni_sink_t         sa, sb;

    srand(20261206);
    bad_html = bad_url = bad_allowed = bad_hex = 0;

    for (i = 0; i < 20000; i++) {
        k = strlen(starts[i % (sizeof(starts) / sizeof(starts[0]))]);
        memcpy(in, starts[i % (sizeof(starts) / sizeof(starts[0]))], k);
        n = k + (size_t) (rand() % 90);

        for (j = (unsigned) k; j < n; j++) {
            if (i % 3 == 0) {
                /* long runs of unreserved bytes, now and then another */
                in[j] = rand() % 40 ? alnum[rand() % (sizeof(alnum) - 1)]
                                    : alpha[rand() % (sizeof(alpha) - 1)];
                continue;
            }

            in[j] = rand() % 4 ? alpha[rand() % (sizeof(alpha) - 1)]
                               : (char) (rand() % 256);
        }

        omni_sink_buf(&sa, a, sizeof(a));
        omni_esc_html(&sa, in, n);
        na = omni_sink_end(&sa);
        omni_sink_buf(&sb, b, sizeof(b));
        ref_esc_html(&sb, in, n);
        nb = omni_sink_end(&sb);
        bad_html += na != nb || memcmp(a, b, na) != 0;

        omni_sink_buf(&sa, a, sizeof(a));
        omni_esc_url_part(&sa, in, n);
        na = omni_sink_end(&sa);
        omni_sink_buf(&sb, b, sizeof(b));
        ref_url_part(&sb, in, n);
        nb = omni_sink_end(&sb);
        bad_url += na != nb || memcmp(a, b, na) != 0;

        for (j = 0; j <= n && j < 12; j++) {
            bad_allowed += !omni_url_allowed(in, j) != !ref_url_allowed(in, j);
        }

        bad_allowed += !omni_url_allowed(in, n) != !ref_url_allowed(in, n);

        for (j = 0; j < OMNI_ID_LEN; j++) {
            id[j] = (unsigned char) rand();
            snprintf(want + 2 * j, 3, "%02x", id[j]);
        }

        omni_id_hex(id, hx);
        bad_hex += strcmp(hx, want) != 0;
    }

    is_int(bad_html, 0, "HTML escaper (16 bytes a step) = byte by byte, "
           "20,000 random strings");
    is_int(bad_url, 0, "URL component escaper (table) = the comparisons");
    is_int(bad_allowed, 0, "URL policy fast path = the full check, every "
           "prefix length to 12");
    is_int(bad_hex, 0, "omni_id_hex = %%02x per byte");
}


int
main(void)
{
    test_syntax();
    test_html_contexts();
    test_modes();
    test_escapers();
    test_strip_and_sinks();
    test_fast_paths();

    pool_free();

    return done_testing();
}
