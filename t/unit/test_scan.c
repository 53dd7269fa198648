/*
 * omni_scan: marker detection, and the differential property the body
 * filter relies on: any split of the input (1-byte pieces, random cuts,
 * empty pieces) gives byte-identical output to the single-buffer run.
 */

#include <stdlib.h>
#include <string.h>

#include "omni_scan.h"
#include "omni_tap.h"


typedef struct {
    char    *p;
    size_t   len;
    size_t   cap;
} out_t;


static void
out_add(out_t *o, const void *d, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        o->cap = (o->len + n + 1) * 2;
        o->p = realloc(o->p, o->cap);
    }

    memcpy(o->p + o->len, d, n);
    o->len += n;
    o->p[o->len] = '\0';
}


/* Renders events: slots become [slot:NAME], </body> gets [px] before it. */
static void
render(out_t *o, omni_scan_event_t *ev)
{
    switch (ev->type) {
    case OMNI_SCAN_LITERAL:
        out_add(o, ev->data, ev->len);
        break;
    case OMNI_SCAN_SLOT:
        out_add(o, "[slot:", 6);
        out_add(o, ev->name, ev->name_len);
        out_add(o, "]", 1);
        break;
    case OMNI_SCAN_BODY_END:
        out_add(o, "[px]", 4);
        out_add(o, ev->data, ev->len);
        break;
    default:
        break;
    }
}


/* Feeds text in pieces whose sizes come from cuts[] (0 ends the list,
 * then the rest is one piece); returns the rendered output. */
static char *
run(const char *text, const size_t *cuts, unsigned seed, int random_cuts)
{
    out_t                 o = { NULL, 0, 0 };
    size_t                len, off, n;
    omni_scan_t           s;
    omni_scan_event_t     ev;
    const unsigned char  *p, *end;

    omni_scan_init(&s);
    out_add(&o, "", 0);

    len = strlen(text);
    off = 0;
    srand(seed);

    while (off < len) {
        if (random_cuts) {
            n = (size_t) (rand() % 7);            /* empty pieces too */
        } else if (cuts && *cuts) {
            n = *cuts++;
        } else {
            n = len - off;
        }

        if (n > len - off) {
            n = len - off;
        }

        p = (const unsigned char *) text + off;
        end = p + n;

        while (omni_scan_next(&s, &p, end, &ev) != OMNI_SCAN_NEED_MORE) {
            render(&o, &ev);
        }

        if (p != end) {
            free(o.p);
            return strdup("<<did not consume its input>>");
        }

        off += n;
    }

    omni_scan_finish(&s, &ev);
    render(&o, &ev);

    return o.p;
}


static char *
run_bytes(const char *text)
{
    size_t   i, len, *cuts;
    char    *r;

    len = strlen(text);
    cuts = calloc(len + 1, sizeof(size_t));
    for (i = 0; i < len; i++) {
        cuts[i] = 1;
    }

    r = run(text, cuts, 0, 0);
    free(cuts);

    return r;
}


static void
check(const char *name, const char *in, const char *want)
{
    char      *whole, *bytes, *rnd;
    unsigned   seed;
    int        same;

    whole = run(in, NULL, 0, 0);
    is_str(whole, want, "%s: single buffer", name);

    bytes = run_bytes(in);
    is_str(bytes, want, "%s: 1-byte buffers", name);

    same = 1;
    for (seed = 1; seed <= 300 && same; seed++) {
        rnd = run(in, NULL, seed, 1);
        if (strcmp(rnd, want) != 0) {
            same = 0;
            printf("# seed %u: got '%s'\n", seed, rnd);
        }
        free(rnd);
    }
    ok(same, "%s: 300 random splits identical", name);

    free(whole);
    free(bytes);
}


/*
 * Differential: random pages of tags, text, markers, near-misses and
 * comments, long enough for the vector search (16 and 32 bytes at once)
 * and with markers at every offset of a block.  The whole page in one
 * buffer (vector path) must render exactly as the page fed one byte at a
 * time (scalar path and the hold) and as random splits.
 */
static void
test_random_pages(void)
{
    int        same;
    char      *page, *whole, *bytes, *rnd;
    size_t     len, cap, k;
    unsigned   seed, pick, bad;

    static const char  *frag[] = {
        "<p>", "</p>", "<div class=\"x\">", "</div>", "text ", "a < b ",
        "<!--omni:slot hero-->", "<!--omni:slot top-bar.v2   -->",
        "<!--omni:slot bad name-->", "<!--omni:slo", "<!--omni:slot x--",
        "<!-- a comment -->", "<!DOCTYPE html>", "</body>", "</BODY>",
        "</BoDy >", "</b>", "</bo", "</br>", "<", "<!", "<!-", "</", "-->",
        "<a href=\"/x\">y</a>", "\n", "  ", "<!--omni:slot ab-->",
        "</body></html>", "<b>bold</b>", "0123456789abcdef"
    };

    bad = 0;
    cap = 8192;
    page = malloc(cap);

    for (seed = 1; seed <= 400; seed++) {
        srand(seed);
        len = 0;

        /* 0 to 31 bytes of filler first: every alignment of a block */
        for (k = (size_t) (rand() % 32); k > 0; k--) {
            page[len++] = 'x';
        }

        while (len < 3000) {
            pick = (unsigned) rand() % (sizeof(frag) / sizeof(frag[0]));
            k = strlen(frag[pick]);
            memcpy(page + len, frag[pick], k);
            len += k;
        }

        page[len] = '\0';

        whole = run(page, NULL, 0, 0);
        bytes = run_bytes(page);
        rnd = run(page, NULL, seed, 1);

        same = strcmp(whole, bytes) == 0 && strcmp(whole, rnd) == 0;

        if (!same && bad++ == 0) {
            printf("# seed %u differs\n", seed);
        }

        free(whole);
        free(bytes);
        free(rnd);
    }

    free(page);
    is_int(bad, 0, "400 random pages: one buffer = 1-byte buffers = random "
           "splits");
}


int
main(void)
{
    size_t   i;
    char    *big, *r;
    out_t    want = { NULL, 0, 0 };

    test_random_pages();

    check("plain text", "hello <b>world</b>", "hello <b>world</b>");
    check("slot", "a<!--omni:slot hero-->b", "a[slot:hero]b");
    check("slot with spaces", "<!--omni:slot hero   -->",
          "[slot:hero]");
    check("slot name with dash and dot", "<!--omni:slot top-bar.v2-->x",
          "[slot:top-bar.v2]x");
    check("body end", "<html><body>x</body></html>",
          "<html><body>x[px]</body></html>");
    check("body end uppercase", "x</BODY></HTML>", "x[px]</BODY></HTML>");
    check("only the first body end", "</body></body>",
          "[px]</body></body>");
    check("two slots and body",
          "<!--omni:slot a--><p><!--omni:slot b--></p></body>",
          "[slot:a]<p>[slot:b]</p>[px]</body>");
    check("ordinary comment", "<!-- omni:slot x --><!--omni:slotx-->",
          "<!-- omni:slot x --><!--omni:slotx-->");
    check("empty name", "<!--omni:slot -->", "<!--omni:slot -->");
    check("name without end", "<!--omni:slot hero", "<!--omni:slot hero");
    check("bad char in name", "<!--omni:slot he<ro-->",
          "<!--omni:slot he<ro-->");
    check("restart on <", "<<!--omni:slot a--><</body>",
          "<[slot:a]<[px]</body>");
    check("partial body at end", "text</bod", "text</bod");
    check("near miss body", "</bodyx></body>", "</bodyx>[px]</body>");
    check("name of 64 bytes",
          "<!--omni:slot "
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "-->",
          "[slot:"
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "]");
    check("name of 65 bytes is text",
          "<!--omni:slot "
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "-->",
          "<!--omni:slot "
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "-->");
    check("too many spaces is text",
          "<!--omni:slot a                   -->",
          "<!--omni:slot a                   -->");
    check("dashes inside name", "<!--omni:slot a--b-->", "[slot:a--b]");
    check("empty input", "", "");

    /* A large page with many tags comes back in few literal spans. */
    big = malloc(200000);
    big[0] = '\0';
    for (i = 0; i < 2000; i++) {
        strcat(big, "<div class=\"x\"><a href=\"/p\">item</a></div>\n");
        out_add(&want, "<div class=\"x\"><a href=\"/p\">item</a></div>\n",
                strlen("<div class=\"x\"><a href=\"/p\">item</a></div>\n"));
    }
    strcat(big, "<!--omni:slot footer--></body>");
    out_add(&want, "[slot:footer][px]</body>", 24);

    r = run(big, NULL, 0, 0);
    is_str(r, want.p, "big page, single buffer");
    free(r);

    {
        size_t  cuts[] = { 4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096,
                           4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096,
                           4096, 4096, 4096, 4096, 0 };
        r = run(big, cuts, 0, 0);
        is_str(r, want.p, "big page, 4 KB buffers");
        free(r);
    }

    {
        /* Literal spans per buffer: one, not one per tag. */
        omni_scan_t          s;
        omni_scan_event_t    ev;
        const unsigned char *p, *end;
        unsigned             events = 0;

        omni_scan_init(&s);
        p = (const unsigned char *) big;
        end = p + strlen(big);

        while (omni_scan_next(&s, &p, end, &ev) != OMNI_SCAN_NEED_MORE) {
            events++;
        }

        is_int(events, 3, "big page: 3 events (text, slot, body end)");
    }

    free(big);
    free(want.p);

    return done_testing();
}
