/*
 * Rules engine unit tests: loading and error reports, every condition
 * and operator, composition, actions and escaping, arbitration, caps,
 * cooldown, suppression, holdouts and experiments, consent, renderers,
 * explain, text rendering of numbers, devices and needs.  The seed
 * scenarios and the timing are in test_rules_scenarios.c.
 */

#include "rules_helpers.h"


static void
test_errors(void)
{
    is_str(load_error("{\n  \"id\": \"a\",\n  \"banner\": {\"slot\": \"hero\", "
                      "\"html\": \"x\"},\n  \"whenn\": {}\n}\n"),
           "t.json:4:3: whenn: unknown key \"whenn\" in rule",
           "unknown key: exact position");

    is_str(load_error("{\n  \"id\": \"b\",\n  \"priority\": \"high\",\n"
                      "  \"banner\": {\"slot\": \"hero\", \"html\": \"x\"}\n}"),
           "t.json:3:15: priority: expected an integer, got a string",
           "wrong type");

    is_str(load_error("{\n  \"id\": \"c\",\n  \"when\": {\"path\": {\"regex\": "
                      "\"^/p/([\"}},\n  \"banner\": {\"slot\": \"hero\", "
                      "\"html\": \"x\"}\n}"),
           "t.json:3:37: when.path.regex: invalid regex: missing "
           "terminating ] for character class at offset 6",
           "bad regex: column of the offending character");

    is_str(load_error("{\n  \"id\": \"d\",\n  \"banner\": {\"slot\": \"hero\", "
                      "\"html\": \"x\"},\n}\n"),
           "t.json:4:1: string or '}' expected near '}'",
           "JSON syntax error (jansson's position)");

    is_str(load_error("{\n  \"id\": \"e\",\n  \"id\": \"e2\",\n  \"banner\": "
                      "{\"slot\": \"hero\", \"html\": \"x\"}\n}"),
           "t.json:3:6: duplicate object key near '\"id\"'",
           "duplicate key (JSON_REJECT_DUPLICATES)");

    {
        char    deep[2048];
        size_t  n;
        int     i;

        n = (size_t) snprintf(deep, sizeof(deep), "{\"id\": \"f\", \"when\": ");
        for (i = 0; i < 40; i++) {
            n += (size_t) snprintf(deep + n, sizeof(deep) - n, "{\"not\": ");
        }
        n += (size_t) snprintf(deep + n, sizeof(deep) - n,
                               "{\"stage\": \"new\"}");
        for (i = 0; i < 40; i++) {
            deep[n++] = '}';
        }
        snprintf(deep + n, sizeof(deep) - n, ", \"banner\": {\"slot\": "
                 "\"hero\", \"html\": \"x\"}}");

        is_str(load_error(deep), "t.json:1:269: nesting deeper than 32 "
               "levels", "too-deep nesting refused before parsing");
    }

    is_str(load_error("{\"id\": \"g\", \"banner\": {\"slot\": \"hero\",\n"
                      "  \"html\": \"<a href=\\\"{{x}}\\\" onclick=\\\""
                      "{{first_name}}\\\">\"}}"),
           "t.json:2:40: banner.html: template variable not allowed in "
           "event handler \"onclick\"",
           "template error points inside the string");

    is_str(load_error("{\"banner\": {\"slot\": \"hero\", \"html\": \"x\"}}"),
           "t.json:1:1: rule without \"id\"", "missing id");

    is_str(load_error("{\"id\": \"x\"}"),
           "t.json:1:1: rule has no action (\"banner\", \"pixels\" or "
           "\"headers\")", "no action");

    is_str(load_error("{\"id\": \"x y\", \"pixels\": [{\"img\": "
                      "\"https://a.b/\"}]}"),
           "t.json:1:8: id: invalid rule id \"x y\" (letters, digits, '_', "
           "'-', '.', ':'; at most 64)", "invalid id");

    is_str(load_error("[{\"id\": \"x\", \"pixels\": [{\"img\": \"https://a.b/\"}]},"
                      "\n {\"id\": \"x\", \"pixels\": [{\"img\": "
                      "\"https://a.b/\"}]}]"),
           "t.json:2:9: [1].id: duplicate rule id \"x\" (first in t.json)",
           "duplicate rule id");

    is_str(load_error("{\"id\": \"x\", \"when\": {\"stage\": \"newbie\"}, "
                      "\"pixels\": [{\"img\": \"https://a.b/\"}]}"),
           "t.json:1:31: when.stage: unknown stage \"newbie\"",
           "unknown stage name");

    is_str(load_error("{\"id\": \"x\", \"when\": {\"carts\": {}}, "
                      "\"pixels\": [{\"img\": \"https://a.b/\"}]}"),
           "t.json:1:22: when.carts: unknown condition \"carts\"",
           "unknown condition key");

    is_str(load_error("{\"id\": \"x\", \"when\": {\"cart\": {\"idle_gte\": "
                      "\"1 hour\"}}, \"pixels\": [{\"img\": \"https://a.b/\"}]}"),
           "t.json:1:43: when.cart.idle_gte: expected a duration like "
           "\"90s\", \"15m\", \"1h\", \"7d\" or \"2w\"", "bad duration");

    is_str(load_error("{\"id\": \"x\", \"pixels\": [{\"img\": "
                      "\"javascript:alert(1)\"}]}"),
           "t.json:1:33: pixels[0].img: a pixel URL must start with "
           "https:// or http://", "javascript: pixel refused");

    is_str(load_error("{\"id\": \"x\", \"headers\": {\"Set-Cookie\": \"a\"}}"),
           "t.json:1:25: headers.Set-Cookie: header \"Set-Cookie\" may not "
           "be set by a rule", "dangerous header refused");

    is_str(load_error("{\"id\": \"x\", \"tz\": \"Mars/Olympus\", \"pixels\": "
                      "[{\"img\": \"https://a.b/\"}]}"),
           "t.json:1:19: tz: unknown time zone (No such file or directory) "
           "\"Mars/Olympus\"", "unknown time zone");

    is_str(load_error("{\"id\": \"x\", \"banner\": {\"slot\": \"hero\", "
                      "\"html\": \"<a href='javascript:alert(1)'>x</a>\"}}"),
           "t.json:1:58: banner.html: unsafe URL in attribute \"href\": only "
           "http(s) URLs, paths and fragments are allowed",
           "literal javascript: href refused at load");

    is_str(load_error("[1, 2]"), "t.json:1:2: [0]: expected a rule object, "
           "got an integer", "not a rule");

    is_str(load_error(""), "t.json:1:1: '[' or '{' expected near end of file",
           "empty file");

    /* every error, not just the first */
    {
        omni_ruleset_t       *set;
        omni_rules_report_t   rep;
        const char           *t = "[{\"id\": \"a\", \"x\": 1, \"y\": 2, "
                                  "\"pixels\": [{\"img\": \"ftp://x/\"}]},"
                                  "{\"id\": \"b\", \"priority\": 1.5, "
                                  "\"pixels\": [{\"img\": \"https://a/\"}]}]";

        is_int(omni_rules_load_buffer("t.json", t, strlen(t), &set, &rep),
               OMNI_INVALID, "invalid set refused");
        ok(set == NULL, "no set on error");
        is_int(rep.nerrors, 4, "all four errors reported");
        is_str(rep.errors[3], "t.json:1:87: [1].priority: expected an "
               "integer, got a number", "errors in position order");
    }
}


static void
test_loading(void)
{
    char                  dir[] = "/tmp/omni-rules-XXXXXX";
    omni_ruleset_t       *set;
    omni_rules_report_t   rep;
    const char           *ok_rule = "{\"id\": \"%s\", \"banner\": {\"slot\": "
                                    "\"hero\", \"html\": \"x\"}}";
    char                  buf[256];

    if (mkdtemp(dir) == NULL) {
        ok(0, "mkdtemp: %s", strerror(errno));
        return;
    }

    snprintf(buf, sizeof(buf), ok_rule, "b-rule");
    write_file(dir, "b.json", buf);
    snprintf(buf, sizeof(buf), ok_rule, "a-rule");
    write_file(dir, "a.json", buf);
    write_file(dir, ".hidden.json", "not json");
    write_file(dir, "notes.txt", "not json");
    write_file(dir, "c.json.bak", "not json");

    is_int(omni_rules_load(dir, &set, &rep), OMNI_OK,
           "directory loads; dotfiles and other names ignored");
    is_int(rep.files, 2, "two files read");
    is_int(omni_rules_count(set), 2, "two rules");
    omni_rules_free(set);

    write_file(dir, "c.json", "{\"id\": \"c\", \"bogus\": 1, \"banner\": "
               "{\"slot\": \"hero\", \"html\": \"x\"}}");

    is_int(omni_rules_load(dir, &set, &rep), OMNI_INVALID,
           "one bad file fails a strict load");
    ok(rep.nerrors == 1 && strstr(rep.errors[0], "/c.json:1:13: bogus: "
                                  "unknown key") != NULL,
       "the report names the file: %s", rep.errors[0]);

    is_int(omni_rules_load_ex(dir, OMNI_RULES_LENIENT, &set, &rep), OMNI_OK,
           "lenient load keeps the good rules");
    is_int(omni_rules_count(set), 2, "the bad rule is left out");
    is_int(rep.skipped, 1, "and counted as skipped");
    is_int(rep.nerrors, 1, "and reported");
    omni_rules_free(set);

    {
        char  *big = malloc(OMNI_RULES_MAX_FILE_SIZE + 2);

        memset(big, ' ', OMNI_RULES_MAX_FILE_SIZE + 1);
        big[OMNI_RULES_MAX_FILE_SIZE + 1] = '\0';
        big[0] = '[';
        big[OMNI_RULES_MAX_FILE_SIZE] = ']';
        write_file(dir, "c.json", big);
        free(big);
    }

    is_int(omni_rules_load(dir, &set, &rep), OMNI_INVALID,
           "a file over the size limit is refused");
    ok(strstr(rep.errors[0], "larger than 1048576 bytes") != NULL,
       "size limit reported");

    is_int(omni_rules_load("/nonexistent/rules", &set, &rep), OMNI_ERROR,
           "missing directory");
    ok(strstr(rep.errors[0], "cannot open directory") != NULL,
       "missing directory reported");

    snprintf(buf, sizeof(buf), "rm -rf %s", dir);
    if (system(buf) != 0) {
        printf("# could not remove %s\n", dir);
    }

    /* an empty set decides nothing */
    set = load("[]");
    ok(set != NULL && omni_rules_count(set) == 0, "empty array: empty set");
    {
        omni_eval_t      ctx;
        omni_decision_t  d;

        ctx_init(&ctx, NULL, OMNI_CH_WEB);
        omni_decide(set, &ctx, &d);
        ok(d.nshown == 0 && d.npixels == 0, "empty set, empty decision");
    }
    omni_rules_free(set);
}


/* ---- conditions ---- */

static void
test_conditions_profile(void)
{
    const omni_rec_t  *r;

    r = rec_from("{\"id\": \"%s\", \"created\": %u, \"visits\": 3, "
                 "\"orders\": 2, \"revenue\": 250.5, "
                 "\"last_seen\": {\"web\": %u, \"app\": %u}, "
                 "\"aliases\": [{\"type\": \"customer\", \"id\": \"c1\"}], "
                 "\"segments\": [\"runners\", \"newsletter\"], "
                 "\"attributes\": {\"first_name\": \"Ana\", "
                 "\"tier\": \"silver\", \"points\": 420, \"age\": \"37\"}, "
                 "\"cart\": {\"updated_at\": %u, \"items\": ["
                 "{\"sku\": \"TRAIL-42\", \"name\": \"Trail\", \"category\": "
                 "\"shoes\", \"qty\": 2, \"price\": 100}, "
                 "{\"sku\": \"SOCK-3\", \"category\": \"socks\", \"qty\": 1, "
                 "\"price\": 19.5}]}, "
                 "\"purchases\": [{\"sku\": \"JKT-7\", \"order_id\": \"o1\", "
                 "\"channel\": \"pos\", \"time\": %u, \"category\": "
                 "\"jackets\", \"price\": 199, \"qty\": 1}], "
                 "\"views\": [{\"sku\": \"SUMMIT-PRO\", \"category\": "
                 "\"premium\", \"time\": %u, \"price\": 349}, "
                 "{\"sku\": \"TRAIL-42\", \"category\": \"shoes\", \"time\": "
                 "%u, \"price\": 129}], "
                 "\"events\": [{\"name\": \"Product Reviewed\", \"count\": 2, "
                 "\"last\": %u}]}",
                 pid_hex(1), NOW - 40 * DAY, NOW - 2 * DAY, NOW - 9 * DAY,
                 NOW - 2 * HOUR, NOW - 20 * DAY, NOW - 3 * DAY, NOW - HOUR,
                 NOW - 5 * DAY);

    /* segments and account */
    is_int(when_ok("{\"segment\": \"runners\"}", r, NULL), 1, "segment");
    is_int(when_ok("{\"segment\": [\"vip\", \"newsletter\"]}", r, NULL), 1,
           "segment: any of a list");
    is_int(when_ok("{\"segment\": \"vip\"}", r, NULL), 0, "segment: not");
    is_int(when_ok("{\"account\": true}", r, NULL), 1, "account");
    is_int(when_ok("{\"account\": false}", r, NULL), 0, "account: false");
    is_int(when_ok("{\"account\": false}", NULL, NULL), 1,
           "no profile: no account");

    /* attributes */
    is_int(when_ok("{\"attr\": {\"key\": \"tier\", \"eq\": \"silver\"}}", r,
                   NULL), 1, "attr eq");
    is_int(when_ok("{\"attr\": {\"key\": \"tier\", \"eq\": \"gold\"}}", r,
                   NULL), 0, "attr eq: differs");
    is_int(when_ok("{\"attr\": {\"key\": \"tier\", \"ne\": \"gold\"}}", r,
                   NULL), 1, "attr ne");
    is_int(when_ok("{\"attr\": {\"key\": \"nope\", \"ne\": \"gold\"}}", r,
                   NULL), 1, "attr ne: absent differs");
    is_int(when_ok("{\"attr\": {\"key\": \"tier\", \"in\": [\"gold\", "
                   "\"silver\"]}}", r, NULL), 1, "attr in");
    is_int(when_ok("{\"attr\": {\"key\": \"points\", \"in\": [1, 420]}}", r,
                   NULL), 1, "attr in: numbers");
    is_int(when_ok("{\"attr\": {\"key\": \"points\", \"gt\": 400}}", r, NULL),
           1, "attr gt");
    is_int(when_ok("{\"attr\": {\"key\": \"points\", \"gte\": 420, \"lte\": "
                   "420}}", r, NULL), 1, "attr gte and lte");
    is_int(when_ok("{\"attr\": {\"key\": \"points\", \"lt\": 420}}", r, NULL),
           0, "attr lt");
    is_int(when_ok("{\"attr\": {\"key\": \"age\", \"gte\": 18}}", r, NULL), 1,
           "attr gte on a numeric string");
    is_int(when_ok("{\"attr\": {\"key\": \"points\", \"eq\": 420}}", r, NULL),
           1, "attr eq number");
    is_int(when_ok("{\"attr\": {\"key\": \"tier\", \"exists\": true}}", r,
                   NULL), 1, "attr exists");
    is_int(when_ok("{\"attr\": {\"key\": \"nope\", \"exists\": false}}", r,
                   NULL), 1, "attr exists: false");
    is_int(when_ok("{\"attr\": {\"key\": \"first_name\", \"prefix\": "
                   "[\"Bo\", \"An\"]}}", r, NULL), 1, "attr prefix");
    is_int(when_ok("{\"attr\": {\"key\": \"first_name\", \"prefix\": "
                   "\"Bo\"}}", r, NULL), 0, "attr prefix: no");

    /* numbers of the profile */
    is_int(when_ok("{\"orders\": {\"gte\": 2}}", r, NULL), 1, "orders gte");
    is_int(when_ok("{\"orders\": {\"gt\": 2}}", r, NULL), 0, "orders gt");
    is_int(when_ok("{\"orders\": {\"eq\": 2}}", r, NULL), 1, "orders eq");
    is_int(when_ok("{\"orders\": {\"ne\": 2}}", r, NULL), 0, "orders ne");
    is_int(when_ok("{\"visits\": {\"gte\": 3, \"lt\": 4}}", r, NULL), 1,
           "visits range");
    is_int(when_ok("{\"visits\": {\"lte\": 0}}", NULL, NULL), 1,
           "no profile: 0 visits");
    is_int(when_ok("{\"revenue\": {\"gt\": 250}}", r, NULL), 1, "revenue");
    is_int(when_ok("{\"days_since_purchase\": {\"gte\": 20, \"lt\": 21}}", r,
                   NULL), 1, "days since the last purchase");
    is_int(when_ok("{\"days_since_purchase\": {\"gte\": 0}}", NULL, NULL), 0,
           "days since purchase: never bought is false");
    is_int(when_ok("{\"days_since_first_seen\": {\"eq\": 40}}", r, NULL), 1,
           "days since first seen");
    is_int(when_ok("{\"days_since_last_seen\": {\"eq\": 2}}", r, NULL), 1,
           "days since last seen (any channel)");
    is_int(when_ok("{\"days_since_engagement\": {\"lt\": 1}}", r, NULL), 1,
           "days since engagement (a view an hour ago)");

    /* cart */
    is_int(when_ok("{\"cart\": {\"non_empty\": true}}", r, NULL), 1,
           "cart non_empty");
    is_int(when_ok("{\"cart\": {\"non_empty\": false}}", NULL, NULL), 1,
           "no profile: empty cart");
    is_int(when_ok("{\"cart\": {\"items_eq\": 3}}", r, NULL), 1,
           "cart items (quantities)");
    is_int(when_ok("{\"cart\": {\"value_gte\": 219.5, \"value_lt\": 219.6}}",
                   r, NULL), 1, "cart value");
    is_int(when_ok("{\"cart\": {\"idle_gte\": \"1h\"}}", r, NULL), 1,
           "cart idle_gte");
    is_int(when_ok("{\"cart\": {\"idle_gte\": \"3h\"}}", r, NULL), 0,
           "cart idle_gte: not yet");
    is_int(when_ok("{\"cart\": {\"idle_lt\": 10800}}", r, NULL), 1,
           "cart idle_lt (seconds)");
    is_int(when_ok("{\"cart\": {\"contains_sku\": [\"X\", \"SOCK-3\"]}}", r,
                   NULL), 1, "cart contains sku");
    is_int(when_ok("{\"cart\": {\"contains_category\": \"hats\"}}", r, NULL),
           0, "cart contains category: no");
    is_int(when_ok("{\"cart\": {\"contains_category\": \"shoes\"}}", r, NULL),
           1, "cart contains category");

    /* purchases */
    is_int(when_ok("{\"purchased\": {\"sku\": \"JKT-7\"}}", r, NULL), 1,
           "purchased sku (POS)");
    is_int(when_ok("{\"purchased\": {\"category\": \"jackets\", \"within\": "
                   "\"30d\"}}", r, NULL), 1, "purchased category within");
    is_int(when_ok("{\"purchased\": {\"sku\": \"JKT-7\", \"within\": "
                   "\"7d\"}}", r, NULL), 0, "purchased: not within");
    is_int(when_ok("{\"not\": {\"purchased\": {\"sku\": \"JKT-7\", \"within\": "
                   "\"7d\"}}}", r, NULL), 1, "not purchased within 7d");
    is_int(when_ok("{\"purchased\": {\"sku\": \"JKT-7\", \"older_than\": "
                   "\"14d\"}}", r, NULL), 1, "purchased older than");
    is_int(when_ok("{\"purchased\": {\"sku\": \"SOCK-3\"}}", r, NULL), 0,
           "purchased: in the cart is not bought");

    /* recency */
    is_int(when_ok("{\"last_seen\": {\"channel\": \"web\", \"within\": "
                   "\"3d\"}}", r, NULL), 1, "last seen on web within");
    is_int(when_ok("{\"last_seen\": {\"channel\": \"app\", \"within\": "
                   "\"3d\"}}", r, NULL), 0, "last seen on app: too long ago");
    is_int(when_ok("{\"last_seen\": {\"channel\": \"app\", \"older_than\": "
                   "\"7d\"}}", r, NULL), 1, "not seen on app for 7 days");
    is_int(when_ok("{\"last_seen\": {\"channel\": \"pos\", \"older_than\": "
                   "\"7d\"}}", r, NULL), 1, "never seen counts as older");

    /* stage */
    is_int(when_ok("{\"stage\": \"customer\"}", r, NULL), 1,
           "stage customer (1+ orders)");
    is_int(when_ok("{\"stage\": [\"new\", \"browsing\"]}", r, NULL), 0,
           "stage list: no");
    is_int(when_ok("{\"stage\": \"new\"}", NULL, NULL), 1,
           "no profile: stage new");
    is_int(when_ok("{\"stage\": \"cart\"}",
                   rec_from("{\"id\": \"%s\", \"cart\": {\"updated_at\": 1, "
                            "\"items\": [{\"sku\": \"A\", \"qty\": 1}]}}",
                            pid_hex(2)), NULL), 1, "stage cart");
    is_int(when_ok("{\"stage\": \"browsing\"}",
                   rec_from("{\"id\": \"%s\", \"visits\": 2}", pid_hex(3)),
                   NULL), 1, "stage browsing (second visit)");
    is_int(when_ok("{\"stage\": \"loyal\"}",
                   rec_from("{\"id\": \"%s\", \"orders\": 5, \"stage\": "
                            "\"new\"}", pid_hex(4)), NULL), 1,
           "stage loyal derived from 5 orders, not the stored byte");

    /* viewed */
    is_int(when_ok("{\"viewed\": {\"price_gte\": 300}}", r, NULL), 1,
           "viewed price_gte");
    is_int(when_ok("{\"viewed\": {\"price_gte\": 300, \"within\": \"1d\"}}", r,
                   NULL), 0, "viewed price_gte within: too old");
    is_int(when_ok("{\"viewed\": {\"category\": \"premium\", \"within\": "
                   "\"7d\"}}", r, NULL), 1, "viewed category within");
    is_int(when_ok("{\"viewed\": {\"sku\": \"TRAIL-42\", \"price_lt\": "
                   "130}}", r, NULL), 1, "viewed sku and price");

    /* events */
    is_int(when_ok("{\"event\": {\"name\": \"Product Reviewed\"}}", r, NULL),
           1, "event happened");
    is_int(when_ok("{\"event\": {\"name\": \"Product Reviewed\", \"gte\": "
                   "3}}", r, NULL), 0, "event count gte 3: no");
    is_int(when_ok("{\"event\": {\"name\": \"Product Reviewed\", \"eq\": 2, "
                   "\"within\": \"7d\"}}", r, NULL), 1, "event count within");
    is_int(when_ok("{\"event\": {\"name\": \"Product Reviewed\", \"within\": "
                   "\"1d\"}}", r, NULL), 0, "event outside the window");
    is_int(when_ok("{\"event\": {\"name\": \"Signed Up\", \"lt\": 1}}", r,
                   NULL), 1, "event never happened: count 0");
}


static int
test_geo_cb(void *data, omni_geo_t *g)
{
    int  *calls = data;

    (*calls)++;
    memset(g, 0, sizeof(omni_geo_t));
    strcpy(g->country, "PT");
    strcpy(g->region, "11");
    strcpy(g->city, "Lisbon");
    g->lat = 38.7223;           /* Lisbon, Rossio */
    g->lon = -9.1393;
    g->has_location = 1;

    return OMNI_OK;
}


static void
test_conditions_request(void)
{
    int          calls;
    omni_eval_t  c;

    ctx_init(&c, NULL, OMNI_CH_WEB);
    c.path.data = "/shop/p/123";
    c.path.len = strlen(c.path.data);
    c.query.data = "utm_source=news%20letter&utm_campaign=spring&x";
    c.query.len = strlen(c.query.data);
    c.referrer.data = "https://www.google.com:443/search?q=x";
    c.referrer.len = strlen(c.referrer.data);
    c.user_agent.data = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS "
                        "X) AppleWebKit/605.1.15 Mobile/15E148";
    c.user_agent.len = strlen(c.user_agent.data);

    is_int(when_ok("{\"channel\": \"web\"}", NULL, &c), 1, "channel");
    is_int(when_ok("{\"channel\": [\"app\", \"email\"]}", NULL, &c), 0,
           "channel: not");

    is_int(when_ok("{\"path\": {\"prefix\": \"/shop\"}}", NULL, &c), 1,
           "path prefix");
    is_int(when_ok("{\"path\": {\"eq\": [\"/\", \"/shop/p/123\"]}}", NULL,
                   &c), 1, "path eq");
    is_int(when_ok("{\"path\": {\"regex\": \"^/shop/p/[0-9]+$\"}}", NULL, &c),
           1, "path regex");
    is_int(when_ok("{\"path\": {\"regex\": \"^/cart\"}}", NULL, &c), 0,
           "path regex: no");

    is_int(when_ok("{\"query\": {\"arg\": \"utm_campaign\", \"eq\": "
                   "\"spring\"}}", NULL, &c), 1, "query arg eq");
    is_int(when_ok("{\"query\": {\"arg\": \"utm_campaign\", \"prefix\": "
                   "\"spr\"}}", NULL, &c), 1, "query arg prefix");
    is_int(when_ok("{\"query\": {\"arg\": \"x\", \"exists\": true}}", NULL,
                   &c), 1, "query arg exists without a value");
    is_int(when_ok("{\"query\": {\"arg\": \"y\", \"exists\": true}}", NULL,
                   &c), 0, "query arg absent");
    is_int(when_ok("{\"utm_source\": \"news letter\"}", NULL, &c), 1,
           "utm_source (percent-decoded)");
    is_int(when_ok("{\"utm_source\": [\"ads\"]}", NULL, &c), 0,
           "utm_source: no");

    is_int(when_ok("{\"referrer\": {\"host\": \"google.com\"}}", NULL, &c), 1,
           "referrer host (subdomain, port)");
    is_int(when_ok("{\"referrer\": {\"host\": \"oogle.com\"}}", NULL, &c), 0,
           "referrer host: a suffix is not a subdomain");
    is_int(when_ok("{\"referrer\": {\"prefix\": \"https://www.google\"}}",
                   NULL, &c), 1, "referrer prefix");
    is_int(when_ok("{\"referrer\": {\"exists\": false}}", NULL, &c), 0,
           "referrer exists");

    is_int(when_ok("{\"device\": \"mobile\"}", NULL, &c), 1, "device mobile");
    is_int(when_ok("{\"device\": [\"desktop\", \"tablet\"]}", NULL, &c), 0,
           "device: not");

    /* time: NOW is Sunday 12:53 UTC, 13:53 in Paris (CET) */
    is_int(when_ok("{\"time\": {\"weekdays\": [\"sat\", \"sun\"]}}", NULL, &c),
           1, "weekend");
    is_int(when_ok("{\"time\": {\"hours\": {\"from\": \"09:00\", \"to\": "
                   "\"13:00\"}}}", NULL, &c), 1, "hours (UTC)");
    is_int(when_ok("{\"time\": {\"tz\": \"Europe/Paris\", \"hours\": "
                   "{\"from\": \"09:00\", \"to\": \"13:00\"}}}", NULL, &c), 0,
           "hours in Europe/Paris");
    is_int(when_ok("{\"time\": {\"tz\": \"+01:00\", \"hours\": {\"from\": "
                   "\"13:00\", \"to\": \"14:00\"}}}", NULL, &c), 1,
           "hours at a fixed offset");
    is_int(when_ok("{\"time\": {\"hours\": {\"from\": \"22:00\", \"to\": "
                   "\"13:00\"}}}", NULL, &c), 1, "hours across midnight");
    is_int(when_ok("{\"time\": {\"tz\": \"Pacific/Kiritimati\", \"weekdays\": "
                   "[\"mon\"]}}", NULL, &c), 1,
           "weekday in a +14:00 zone is Monday");
    is_int(when_ok("{\"time\": {\"after\": \"2025-11-23T12:00:00Z\", "
                   "\"before\": \"2025-11-24\"}}", NULL, &c), 1,
           "after and before");
    is_int(when_ok("{\"time\": {\"before\": \"2025-11-23T13:00:00+01:00\"}}",
                   NULL, &c), 0, "before, with an offset");

    /* geo: the callback runs once, and only when needed */
    calls = 0;
    c.geo = test_geo_cb;
    c.geo_data = &calls;

    is_int(when_ok("{\"geo\": {\"country\": [\"FR\", \"pt\"]}}", NULL, &c), 1,
           "geo country (case-insensitive)");
    is_int(when_ok("{\"geo\": {\"region\": \"11\", \"city\": \"Lisbon\"}}",
                   NULL, &c), 1, "geo region and city");
    is_int(when_ok("{\"geo\": {\"near\": {\"km\": 5, \"stores\": [{\"name\": "
                   "\"Baixa\", \"lat\": 38.7107, \"lon\": -9.1366}]}}}", NULL,
                   &c), 1, "geo near (1.3 km)");
    is_int(when_ok("{\"geo\": {\"near\": {\"km\": 1, \"stores\": [{\"name\": "
                   "\"Baixa\", \"lat\": 38.7107, \"lon\": -9.1366}]}}}", NULL,
                   &c), 0, "geo near: not within 1 km");
    is_int(calls, 4, "one geo lookup per evaluation context");

    calls = 0;
    is_int(when_ok("{\"channel\": \"web\"}", NULL, &c), 1,
           "a rule without geo");
    is_int(calls, 0, "never calls the geo callback");

    c.geo = NULL;
    is_int(when_ok("{\"geo\": {\"country\": \"PT\"}}", NULL, &c), 0,
           "no geo callback: geo conditions are false");
}


static void
test_composition(void)
{
    const omni_rec_t  *r;

    r = rec_from("{\"id\": \"%s\", \"orders\": 1, \"segments\": [\"a\"]}",
                 pid_hex(5));

    is_int(when_ok("{\"all\": [{\"segment\": \"a\"}, {\"orders\": {\"eq\": "
                   "1}}]}", r, NULL), 1, "all");
    is_int(when_ok("{\"all\": [{\"segment\": \"a\"}, {\"orders\": {\"eq\": "
                   "2}}]}", r, NULL), 0, "all: one fails");
    is_int(when_ok("{\"any\": [{\"segment\": \"b\"}, {\"orders\": {\"eq\": "
                   "1}}]}", r, NULL), 1, "any");
    is_int(when_ok("{\"any\": [{\"segment\": \"b\"}, {\"orders\": {\"eq\": "
                   "2}}]}", r, NULL), 0, "any: none");
    is_int(when_ok("{\"not\": {\"segment\": \"b\"}}", r, NULL), 1, "not");
    is_int(when_ok("{\"not\": {\"segment\": \"a\"}}", r, NULL), 0, "not: no");
    is_int(when_ok("{\"segment\": \"a\", \"orders\": {\"eq\": 1}, \"not\": "
                   "{\"stage\": \"loyal\"}}", r, NULL), 1,
           "several keys: an implicit all");
    is_int(when_ok("{\"any\": [{\"all\": [{\"segment\": \"b\"}]}, {\"not\": "
                   "{\"any\": [{\"segment\": \"c\"}, {\"stage\": "
                   "\"new\"}]}}]}", r, NULL), 1, "nested composition");
}


/* ---- actions and escaping ---- */

static void
test_actions(void)
{
    omni_ruleset_t     *set;
    omni_eval_t         ctx;
    omni_decision_t     d;
    omni_strv_t         name;
    size_t              n;
    const omni_rec_t   *r;
    const char         *rules =
        "{\"id\": \"a\", \"campaign\": \"camp-a\",\n"
        " \"banner\": {\"slot\": \"hero\",\n"
        "   \"html\": \"<p title=\\\"{{first_name}}\\\">Hi {{first_name|there}}"
        "</p><a href=\\\"{{attr.link}}\\\">x</a>"
        "<a href=\\\"https://shop.example.com/p?n={{first_name}}\\\">y</a>"
        "<img src=\\\"{{cart.top_item.image|/img/none.png}}\\\">\",\n"
        "   \"text\": \"Hi {{first_name|there}}\",\n"
        "   \"payload\": {\"title\": \"Hi {{first_name}}\", \"n\": 1,"
        " \"list\": [true, null, \"{{cart.top_item.sku}}\"]}},\n"
        " \"pixels\": [{\"img\": \"https://px.example.com/i?n={{first_name}}"
        "&s={{cart.top_item.sku}}\"},\n"
        "             {\"script\": \"https://px.example.com/t.js?c=1\"}],\n"
        " \"headers\": {\"X-Omni-Theme\": \"dark\", \"X-Omni-Name\": "
        "\"{{first_name}}\"}}";

    set = load(rules);
    ok(set != NULL, "actions set loads");
    if (set == NULL) {
        return;
    }

    r = rec_from("{\"id\": \"%s\", \"attributes\": {\"first_name\": "
                 "\"\\\"><script>alert(1)</script>\", \"link\": "
                 "\"javascript:alert(document.cookie)\"}, \"cart\": "
                 "{\"updated_at\": 1, \"items\": [{\"sku\": \"A&B\\\"<x>\", "
                 "\"qty\": 1, \"price\": 5, \"image\": \" JaVaScRiPt:x\"}]}}",
                 pid_hex(6));

    ctx_init(&ctx, r, OMNI_CH_WEB);
    omni_decide(set, &ctx, &d);

    is_str(render_hero(set, &ctx, &d),
           "<p title=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\">Hi "
           "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</p>"
           "<a href=\"#\">x</a>"
           "<a href=\"https://shop.example.com/p?n=%22%3E%3Cscript%3Ealert%28"
           "1%29%3C%2Fscript%3E\">y</a><img src=\"#\">",
           "XSS payloads escaped per context, javascript: URLs become #");

    ok(strstr(out, "<script>") == NULL && strstr(out, "javascript") == NULL,
       "nothing executable in the banner");

    omni_render_pixels_html(set, &ctx, &d, out, sizeof(out));
    is_str(out, "<img src=\"https://px.example.com/i?n=%22%3E%3Cscript%3Ealert"
           "%281%29%3C%2Fscript%3E&amp;s=A%26B%22%3Cx%3E\" width=\"1\" "
           "height=\"1\" alt=\"\"><script async "
           "src=\"https://px.example.com/t.js?c=1\"></script>",
           "pixels: img and script, parameters URL-encoded");

    is_int(d.nheaders, 2, "two headers");
    n = omni_render_header(set, &ctx, &d, 0, &name, out, sizeof(out));
    ok(name.len == 12 && memcmp(name.data, "X-Omni-Theme", 12) == 0
       && n == 4 && strcmp(out, "dark") == 0, "header value");

    omni_render_decision_json(set, &ctx, &d, 0, out, sizeof(out));
    ok(json_valid(out), "decision JSON is valid JSON");
    ok(strstr(out, "\"payload\":{\"title\":\"Hi \\\"\\u003e\\u003cscript"
              "\\u003ealert(1)\\u003c/script\\u003e\",\"n\":1,\"list\":[true,"
              "null,\"A\\u0026B\\\"\\u003cx\\u003e\"]}") != NULL,
       "payload strings JSON-escaped, other values kept");
    ok(strstr(out, "\"campaign\":\"camp-a\"") != NULL, "campaign in JSON");
    ok(strstr(out, "<script") == NULL, "no raw <script in the JSON");

    omni_render_shown(set, &d, OMNI_SHOWN_CAMPAIGNS, out, sizeof(out));
    is_str(out, "camp-a", "shown campaigns");

    /* a header value never carries CR, LF or NUL */
    r = rec_from("{\"id\": \"%s\", \"attributes\": {\"first_name\": "
                 "\"a\\r\\nSet-Cookie: x=1\\u0001\"}}", pid_hex(7));
    ctx_init(&ctx, r, OMNI_CH_WEB);
    omni_decide(set, &ctx, &d);
    omni_render_header(set, &ctx, &d, 1, &name, out, sizeof(out));
    is_str(out, "aSet-Cookie: x=1", "header value sanitized");

    /* snprintf semantics */
    n = omni_render_slot_html(set, &ctx, &d, "hero", 4, out, 10);
    ok(n > 10 && strlen(out) == 9, "truncated output, full length returned");
    ok(omni_render_slot_html(set, &ctx, &d, "hero", 4, NULL, 0) == n,
       "a zero-size buffer measures");
    is_int(omni_render_slot_html(set, &ctx, &d, "nope", 4, out, sizeof(out)),
           0, "unknown slot renders nothing");

    omni_rules_free(set);
}


static void
test_escaping_urls(void)
{
    static const struct {
        const char  *value;
        const char  *want;
    } cases[] = {
        { "https://ok.example.com/x?a=1&b=2",
          "<a href=\"https://ok.example.com/x?a=1&amp;b=2\">" },
        { "HTTP://OK.example.com/", "<a href=\"HTTP://OK.example.com/\">" },
        { "/relative/path", "<a href=\"/relative/path\">" },
        { "javascript:alert(1)", "<a href=\"#\">" },
        { "  javascript:alert(1)", "<a href=\"#\">" },
        { "java\\tscript:alert(1)", "<a href=\"#\">" },
        { "data:text/html;base64,PHNjcmlwdD4=", "<a href=\"#\">" },
        { "vbscript:msgbox", "<a href=\"#\">" },
        { "//evil.example.com/", "<a href=\"#\">" },
        { "/\\\\evil.example.com/", "<a href=\"/%5Cevil.example.com/\">" },
        { "https://x\\\" onmouseover=\\\"alert(1)",
          "<a href=\"https://x%22%20onmouseover=%22alert(1)\">" },
        { "&#106;avascript:alert(1)", "<a href=\"#\">" },
        { "", "<a href=\"#\">" },
    };
    unsigned          i;
    omni_ruleset_t   *set;
    omni_eval_t       ctx;
    omni_decision_t   d;

    set = load("{\"id\": \"u\", \"banner\": {\"slot\": \"hero\", \"html\": "
               "\"<a href=\\\"{{link}}\\\">\"}}");
    if (set == NULL) {
        ok(0, "url set");
        return;
    }

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ctx_init(&ctx, rec_from("{\"id\": \"%s\", \"attributes\": "
                                "{\"link\": \"%s\"}}", pid_hex(100 + i),
                                cases[i].value), OMNI_CH_WEB);
        omni_decide(set, &ctx, &d);
        is_str(render_hero(set, &ctx, &d), cases[i].want, "href from \"%s\"",
               cases[i].value);
    }

    omni_rules_free(set);

    /* variables where no escaping is safe are refused at load */
    is_str(load_error("{\"id\": \"x\", \"banner\": {\"slot\": \"s\", \"html\": "
                      "\"<script>var n = '{{first_name}}';</script>\"}}"),
           "t.json:1:63: banner.html: template variable not allowed inside "
           "<script>", "variable in <script>");
    is_str(load_error("{\"id\": \"x\", \"banner\": {\"slot\": \"s\", \"html\": "
                      "\"<div style=\\\"color: {{c}}\\\">\"}}"),
           "t.json:1:66: banner.html: template variable not allowed in "
           "attribute \"style\"", "variable in style");
    is_str(load_error("{\"id\": \"x\", \"banner\": {\"slot\": \"s\", \"html\": "
                      "\"<a href={{u}}>\"}}"),
           "t.json:1:54: banner.html: template variable in an unquoted "
           "attribute value (use quotes)", "unquoted attribute");
    is_str(load_error("{\"id\": \"x\", \"banner\": {\"slot\": \"s\", \"html\": "
                      "\"<{{t}}>\"}}"),
           "t.json:1:47: banner.html: template variable in a tag name",
           "variable as a tag name");
    is_str(load_error("{\"id\": \"x\", \"banner\": {\"slot\": \"s\", \"html\": "
                      "\"<div {{a}}>\"}}"),
           "t.json:1:51: banner.html: template variable in an attribute name",
           "variable as an attribute");
    is_str(load_error("{\"id\": \"x\", \"banner\": {\"slot\": \"s\", \"html\": "
                      "\"<!-- {{a}} -->\"}}"),
           "t.json:1:51: banner.html: template variable not allowed in a "
           "comment or declaration", "variable in a comment");
    is_str(load_error("{\"id\": \"x\", \"banner\": {\"slot\": \"s\", \"html\": "
                      "\"<div>{{cart.nope}}</div>\"}}"),
           "t.json:1:51: banner.html: unknown template variable "
           "\"cart.nope\"", "unknown variable");
    is_str(load_error("{\"id\": \"x\", \"banner\": {\"slot\": \"s\", \"html\": "
                      "\"<div>{{first_name</div>\"}}"),
           "t.json:1:51: banner.html: unterminated \"{{\"",
           "unterminated variable");
    is_str(load_error("{\"id\": \"x\", \"banner\": {\"slot\": \"s\", \"html\": "
                      "\"<div title=\\\"x\"}}"),
           "t.json:1:60: banner.html: template ends inside a tag, an "
           "attribute or a comment", "unterminated attribute");
    is_str(load_error("{\"id\": \"x\", \"headers\": {\"X-A\": \"a\\r\\nb\"}}"),
           "t.json:1:34: headers.X-A: control character in a header value",
           "CR/LF in a literal header value");
    is_str(load_error("{\"id\": \"x\", \"pixels\": [{\"img\": "
                      "\"https://{{h}}/x\"}]}"),
           "t.json:1:41: pixels[0].img: the host of a pixel URL must be "
           "literal", "templated pixel host");
}


/* ---- arbitration ---- */

static void
test_arbitration(void)
{
    omni_ruleset_t   *a, *b;
    omni_eval_t       ctx;
    omni_decision_t   d1, d2;
    const char       *r1 = "{\"id\": \"low\", \"priority\": 1, \"banner\": "
                           "{\"slot\": \"hero\", \"html\": \"low\"}}";
    const char       *r2 = "{\"id\": \"high\", \"priority\": 5, \"banner\": "
                           "{\"slot\": \"hero\", \"html\": \"high\"}}";
    const char       *r3 = "{\"id\": \"specific\", \"priority\": 5, \"when\": "
                           "{\"channel\": \"web\", \"visits\": {\"gte\": 0}},"
                           " \"banner\": {\"slot\": \"hero\", \"html\": "
                           "\"s\"}}";
    const char       *r4 = "{\"id\": \"aaa\", \"priority\": 5, \"when\": "
                           "{\"channel\": \"web\", \"visits\": {\"gte\": 0}},"
                           " \"banner\": {\"slot\": \"hero\", \"html\": "
                           "\"a\"}}";
    char              t1[2048], t2[2048];

    snprintf(t1, sizeof(t1), "[%s, %s]", r1, r2);
    a = load(t1);
    ctx_init(&ctx, NULL, OMNI_CH_WEB);
    is_str(decide_slot(a, &ctx, "hero"), "high", "highest priority wins");
    omni_rules_free(a);

    snprintf(t1, sizeof(t1), "[%s, %s, %s]", r1, r2, r3);
    a = load(t1);
    is_str(decide_slot(a, &ctx, "hero"), "specific",
           "equal priority: more conditions win");
    omni_rules_free(a);

    snprintf(t1, sizeof(t1), "[%s, %s, %s, %s]", r1, r2, r3, r4);
    snprintf(t2, sizeof(t2), "[%s, %s, %s, %s]", r4, r3, r2, r1);
    a = load(t1);
    b = load(t2);
    is_str(decide_slot(a, &ctx, "hero"), "aaa",
           "equal priority and conditions: lowest id wins");
    omni_decide(a, &ctx, &d1);
    omni_decide(b, &ctx, &d2);
    ok(d1.nshown == d2.nshown && d1.shown[0].rule == d2.shown[0].rule
       && strcmp(winner(a, &d1, "hero"), winner(b, &d2, "hero")) == 0,
       "the same decision whatever the file order");
    ok(strcmp(omni_rules_rule_id(a, 0, NULL), "aaa") == 0
       && strcmp(omni_rules_rule_id(a, 3, NULL), "low") == 0,
       "rules are kept in rank order");
    omni_rules_free(a);
    omni_rules_free(b);

    /* several slots, each with one winner; slot ids in name order */
    a = load("[{\"id\": \"z\", \"banner\": {\"slot\": \"zeta\", \"html\": "
             "\"z\"}}, {\"id\": \"y\", \"banner\": {\"slot\": \"alpha\", "
             "\"html\": \"y\"}}, {\"id\": \"p\", \"pixels\": [{\"img\": "
             "\"https://p.example/1\"}]}, {\"id\": \"q\", \"pixels\": "
             "[{\"img\": \"https://p.example/1\"}, {\"img\": "
             "\"https://p.example/2\"}]}]");
    omni_decide(a, &ctx, &d1);
    is_int(omni_rules_nslots(a), 2, "two slots");
    is_str(omni_rules_slot(a, 0, NULL), "alpha", "slots sorted by name");
    is_str(winner(a, &d1, "zeta"), "z", "each slot has its winner");
    is_int(d1.nshown, 4, "two banners and two pixel-only rules shown");
    is_int(d1.npixels, 2, "pixels deduplicated");
    omni_render_shown(a, &d1, OMNI_SHOWN_RULES, t1, sizeof(t1));
    is_str(t1, "p,q,y,z", "shown rule ids in rank order");
    omni_rules_free(a);

    /* a disabled rule and dates */
    a = load("[{\"id\": \"off\", \"enabled\": false, \"priority\": 9, "
             "\"banner\": {\"slot\": \"s\", \"html\": \"x\"}}, "
             "{\"id\": \"future\", \"priority\": 8, \"start\": \"2030-01-01\", "
             "\"banner\": {\"slot\": \"s\", \"html\": \"x\"}}, "
             "{\"id\": \"past\", \"priority\": 7, \"end\": \"2025-11-22\", "
             "\"tz\": \"Europe/Paris\", \"banner\": {\"slot\": \"s\", "
             "\"html\": \"x\"}}, "
             "{\"id\": \"today\", \"priority\": 6, \"start\": \"2025-11-23\", "
             "\"end\": \"2025-11-23\", \"banner\": {\"slot\": \"s\", \"html\": "
             "\"x\"}}]");
    is_str(decide_slot(a, &ctx, "s"), "today",
           "disabled, future and past rules skipped; a one-day rule runs");
    omni_rules_free(a);
}


/* ---- caps, cooldown, suppression ---- */

static void
test_eligibility(void)
{
    omni_ruleset_t     *set;
    omni_eval_t         ctx;
    const omni_rec_t   *r;
    uint32_t            hour = NOW / 3600;

    set = load("[{\"id\": \"capped\", \"priority\": 2, \"cap\": {\"max\": 3, "
               "\"per\": \"1d\"}, \"banner\": {\"slot\": \"s\", \"html\": "
               "\"x\"}},"
               "{\"id\": \"fallback\", \"banner\": {\"slot\": \"s\", "
               "\"html\": \"y\"}}]");

    r = rec_from("{\"id\": \"%s\", \"impressions\": [{\"campaign\": "
                 "\"capped\", \"total\": 2, \"last\": %u, \"buckets\": "
                 "[[%u, 2]]}]}", pid_hex(8), NOW - 60, hour);
    ctx_init(&ctx, r, OMNI_CH_WEB);
    is_str(decide_slot(set, &ctx, "s"), "capped", "2 of 3 shown: shows");

    r = rec_from("{\"id\": \"%s\", \"impressions\": [{\"campaign\": "
                 "\"capped\", \"total\": 3, \"last\": %u, \"buckets\": "
                 "[[%u, 1], [%u, 2]]}]}", pid_hex(9), NOW - 60, hour - 5,
                 hour);
    ctx_init(&ctx, r, OMNI_CH_WEB);
    is_str(decide_slot(set, &ctx, "s"), "fallback",
           "3 of 3 today: capped, the next rule wins");

    r = rec_from("{\"id\": \"%s\", \"impressions\": [{\"campaign\": "
                 "\"capped\", \"total\": 9, \"last\": %u, \"buckets\": "
                 "[[%u, 9]]}]}", pid_hex(10), NOW - 2 * DAY,
                 hour - 48);
    ctx_init(&ctx, r, OMNI_CH_WEB);
    is_str(decide_slot(set, &ctx, "s"), "capped",
           "impressions of earlier days do not count");
    omni_rules_free(set);

    set = load("{\"id\": \"cool\", \"campaign\": \"c\", \"cooldown\": \"4h\", "
               "\"banner\": {\"slot\": \"s\", \"html\": \"x\"}}");
    r = rec_from("{\"id\": \"%s\", \"impressions\": [{\"campaign\": \"c\", "
                 "\"total\": 1, \"last\": %u, \"buckets\": [[%u, 1]]}]}",
                 pid_hex(11), NOW - HOUR, hour - 1);
    ctx_init(&ctx, r, OMNI_CH_WEB);
    is_str(decide_slot(set, &ctx, "s"), "", "cooldown: shown an hour ago");
    r = rec_from("{\"id\": \"%s\", \"impressions\": [{\"campaign\": \"c\", "
                 "\"total\": 1, \"last\": %u, \"buckets\": [[%u, 1]]}]}",
                 pid_hex(12), NOW - 5 * HOUR, hour - 5);
    ctx_init(&ctx, r, OMNI_CH_WEB);
    is_str(decide_slot(set, &ctx, "s"), "cool", "cooldown over");
    omni_rules_free(set);

    set = load("[{\"id\": \"adv\", \"skus\": [\"X1\"], \"banner\": "
               "{\"slot\": \"s\", \"html\": \"x\"}},"
               "{\"id\": \"list\", \"suppress\": {\"purchased\": [\"Y1\"], "
               "\"within\": \"30d\"}, \"banner\": {\"slot\": \"t\", \"html\": "
               "\"x\"}},"
               "{\"id\": \"cat\", \"suppress\": {\"category\": \"tents\"}, "
               "\"banner\": {\"slot\": \"u\", \"html\": \"x\"}},"
               "{\"id\": \"keep\", \"skus\": [\"X1\"], \"suppress\": "
               "{\"purchased\": \"none\"}, \"banner\": {\"slot\": \"v\", "
               "\"html\": \"x\"}}]");
    r = rec_from("{\"id\": \"%s\", \"purchases\": [{\"sku\": \"X1\", "
                 "\"channel\": \"pos\", \"time\": %u, \"category\": "
                 "\"tents\"}, {\"sku\": \"Y1\", \"channel\": \"app\", "
                 "\"time\": %u}]}", pid_hex(13), NOW - 400 * DAY,
                 NOW - 40 * DAY);
    ctx_init(&ctx, r, OMNI_CH_WEB);
    is_str(decide_slot(set, &ctx, "s"), "",
           "advertised sku bought (POS, long ago): suppressed by default");
    is_str(decide_slot(set, &ctx, "t"), "list",
           "suppression window: a purchase 40 days ago is outside 30d");
    is_str(decide_slot(set, &ctx, "u"), "", "suppressed by category");
    is_str(decide_slot(set, &ctx, "v"), "keep",
           "\"purchased\": \"none\" turns the default off");
    omni_rules_free(set);

    /* a per-rule holdout: the held-out share never sees the rule */
    {
        unsigned         i, held;
        unsigned char    pid[16];
        omni_decision_t  d;

        set = load("{\"id\": \"h\", \"holdout\": {\"percent\": 25}, "
                   "\"banner\": {\"slot\": \"s\", \"html\": \"x\"}}");
        held = 0;

        for (i = 0; i < 4000; i++) {
            memset(pid, 0, sizeof(pid));
            memcpy(pid, &i, sizeof(i));
            ctx_init(&ctx, NULL, OMNI_CH_WEB);
            ctx.pid = pid;
            omni_decide(set, &ctx, &d);
            held += d.nshown == 0;
        }

        ok(held > 900 && held < 1100, "rule holdout 25%%: %u of 4000", held);
        omni_rules_free(set);
    }
}


/* ---- experiments and holdouts ---- */

static void
test_buckets(void)
{
    static const unsigned char  key[16] = {
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    };
    unsigned char    msg[15], pid[16];
    unsigned         i, b, counts[10], held, inexp, min, max;
    omni_ruleset_t  *set;
    omni_eval_t      ctx;
    omni_decision_t  d;

    for (i = 0; i < 15; i++) {
        msg[i] = (unsigned char) i;
    }

    ok(omni_siphash24(key, msg, 15) == 0xa129ca6149be45e5ULL,
       "SipHash-2-4 reference vector");
    ok(omni_siphash24(key, msg, 0) == 0x726fdb47dd0e0e31ULL,
       "SipHash-2-4 empty message");

    memset(pid, 0xab, sizeof(pid));
    b = omni_rules_bucket(pid, "exp-1", 5);
    is_int(omni_rules_bucket(pid, "exp-1", 5), b, "bucket is stable");
    ok(b < 10000, "bucket in 0..9999");
    is_int(omni_rules_bucket(pid, "exp-1", 5), 8939,
           "bucket is the documented SipHash value");

    memset(counts, 0, sizeof(counts));

    for (i = 0; i < 10000; i++) {
        memset(pid, 0, sizeof(pid));
        memcpy(pid, &i, sizeof(i));
        pid[15] = (unsigned char) (i * 7);
        counts[omni_rules_bucket(pid, "exp-1", 5) / 1000]++;
    }

    min = max = counts[0];
    for (i = 1; i < 10; i++) {
        min = counts[i] < min ? counts[i] : min;
        max = counts[i] > max ? counts[i] : max;
    }

    ok(min > 880 && max < 1120, "buckets roughly uniform over 10k ids "
       "(deciles %u..%u)", min, max);

    /* the global holdout: 10% see nothing, deterministically */
    set = load("{\"settings\": {\"holdout\": {\"id\": \"g\", \"percent\": "
               "10}}, \"rules\": [{\"id\": \"x\", \"when\": {\"experiment\": "
               "{\"id\": \"e\", \"from\": 0, \"to\": 50}}, \"banner\": "
               "{\"slot\": \"s\", \"html\": \"x\"}}]}");
    held = 0;
    inexp = 0;

    for (i = 0; i < 10000; i++) {
        memset(pid, 0, sizeof(pid));
        memcpy(pid + 4, &i, sizeof(i));
        ctx_init(&ctx, NULL, OMNI_CH_WEB);
        ctx.pid = pid;
        omni_decide(set, &ctx, &d);
        held += d.holdout;
        inexp += d.nshown;

        if (i < 100) {
            omni_decision_t  again;

            omni_decide(set, &ctx, &again);
            if (again.holdout != d.holdout || again.nshown != d.nshown) {
                ok(0, "holdout is deterministic");
            }
        }
    }

    ok(held >= 850 && held <= 1150, "holdout 10%% +- 1.5%%: %u of 10000",
       held);
    ok(inexp > 4200 && inexp < 4800,
       "experiment 0-50%% of the 90%% not held out: %u", inexp);
    ok(d.block == OMNI_BLOCK_NONE || d.block == OMNI_BLOCK_HOLDOUT,
       "holdout reported as a block reason");

    ctx_init(&ctx, NULL, OMNI_CH_WEB);
    omni_decide(set, &ctx, &d);
    ok(d.holdout == 0 && d.nshown == 0,
       "no profile id: nobody held out, no experiment");
    ok(omni_rules_needs(set) & OMNI_NEED_PID, "needs the profile id");
    omni_rules_free(set);
}


/* ---- consent ---- */

static void
test_consent(void)
{
    omni_ruleset_t     *set;
    omni_eval_t         ctx;
    omni_decision_t     d;
    const omni_rec_t   *r;

    set = load("[{\"id\": \"b\", \"banner\": {\"slot\": \"s\", \"html\": "
               "\"x\", \"text\": \"t\"}, \"pixels\": [{\"img\": "
               "\"https://p.example/b\"}]}, {\"id\": \"p\", \"pixels\": "
               "[{\"img\": \"https://p.example/p\"}]}]");

    ctx_init(&ctx, NULL, OMNI_CH_WEB);
    ctx.flags = OMNI_EVAL_NO_ADS;
    omni_decide(set, &ctx, &d);
    ok(d.npixels == 0 && d.nshown == 1 && d.no_ads,
       "Sec-GPC/DNT: banner yes, pixels no");
    omni_render_pixels_html(set, &ctx, &d, out, sizeof(out));
    is_str(out, "", "no pixel HTML");

    r = rec_from("{\"id\": \"%s\", \"consent\": {\"personalize\": true, "
                 "\"ads\": false, \"email\": true}}", pid_hex(14));
    ctx_init(&ctx, r, OMNI_CH_WEB);
    omni_decide(set, &ctx, &d);
    ok(d.npixels == 0 && d.nshown == 1, "no ads consent: no pixels");

    r = rec_from("{\"id\": \"%s\", \"consent\": {\"personalize\": false, "
                 "\"ads\": true}}", pid_hex(15));
    ctx_init(&ctx, r, OMNI_CH_WEB);
    omni_decide(set, &ctx, &d);
    ok(d.nshown == 0 && d.block == OMNI_BLOCK_CONSENT,
       "personalization refused: nothing");

    r = rec_from("{\"id\": \"%s\", \"consent\": {\"personalize\": true, "
                 "\"sms\": false}}", pid_hex(16));
    ctx_init(&ctx, r, OMNI_CH_SMS);
    omni_decide(set, &ctx, &d);
    ok(d.nshown == 0 && d.block == OMNI_BLOCK_CHANNEL,
       "no SMS consent: no SMS");
    is_int(omni_render_text(set, &ctx, &d, OMNI_CH_SMS, out, sizeof(out)), 0,
           "empty SMS");

    omni_rules_free(set);
}


/* ---- explain ---- */

static void
test_explain(void)
{
    omni_ruleset_t     *set;
    omni_eval_t         ctx;
    omni_decision_t     d;
    const omni_rec_t   *r;
    uint32_t            hour = NOW / 3600;

    set = load("[{\"id\": \"welcome-offer\", \"cap\": {\"max\": 3, \"per\": "
               "\"1d\"}, \"priority\": 9, \"banner\": {\"slot\": \"hero\", "
               "\"html\": \"w\"}},"
               "{\"id\": \"cart-abandon\", \"priority\": 8, \"when\": "
               "{\"cart\": {\"idle_gte\": \"1h\"}}, \"banner\": {\"slot\": "
               "\"hero\", \"html\": \"c\"}},"
               "{\"id\": \"fallback\", \"banner\": {\"slot\": \"hero\", "
               "\"html\": \"f\"}},"
               "{\"id\": \"low\", \"priority\": -1, \"banner\": {\"slot\": "
               "\"hero\", \"html\": \"l\"}},"
               "{\"id\": \"any\", \"when\": {\"any\": [{\"segment\": \"a\"}, "
               "{\"not\": {\"channel\": \"web\"}}]}, \"pixels\": [{\"img\": "
               "\"https://p.example/\"}]}]");

    r = rec_from("{\"id\": \"%s\", \"impressions\": [{\"campaign\": "
                 "\"welcome-offer\", \"total\": 3, \"last\": %u, \"buckets\": "
                 "[[%u, 3]]}], \"cart\": {\"updated_at\": %u, \"items\": "
                 "[{\"sku\": \"A\", \"qty\": 1}]}}", pid_hex(17), NOW - 60,
                 hour, NOW - 20 * 60);
    ctx_init(&ctx, r, OMNI_CH_WEB);
    omni_decide(set, &ctx, &d);
    omni_explain(set, &ctx, out, sizeof(out));

    is_str(out,
           "welcome-offer: skipped: cap 3/1d reached (3 shown)\n"
           "cart-abandon: no: cart.idle_gte 1h (idle 20m)\n"
           "any: no: none of: not channel web; segment a (not a member)\n"
           "fallback: shown in slot hero\n"
           "low: lost: slot hero went to fallback\n",
           "explain: one line per rule, in rank order");

    omni_render_decision_json(set, &ctx, &d, 1, out, sizeof(out));
    ok(json_valid(out), "decision JSON with explanation is valid");
    ok(strstr(out, "\"explanation\":[\"welcome-offer: skipped: cap 3/1d "
              "reached (3 shown)\",\"cart-abandon") != NULL,
       "explanation in the JSON");

    omni_rules_free(set);
}


/* ---- seed scenarios (rules/) ---- */

static void
test_numbers(void)
{
    omni_ruleset_t   *set;
    omni_eval_t       ctx;
    omni_decision_t   d;

    set = load("{\"id\": \"n\", \"banner\": {\"slot\": \"s\", "
               "\"text\": \"{{a}}|{{b}}|{{c}}|{{e|none}}|{{f}}|{{cart.value}}|"
               "{{cart.items}}|{{cart.top_item.price}}|{{profile.visits}}\"}}");
    ctx_init(&ctx, rec_from("{\"id\": \"%s\", \"visits\": 12, "
                            "\"attributes\": {\"a\": 12.5, \"b\": -3.25, "
                            "\"c\": 420, \"e\": 1e20, \"f\": 0.000001}, "
                            "\"cart\": {\"updated_at\": 1, \"items\": "
                            "[{\"sku\": \"A\", \"qty\": 3, \"price\": "
                            "0.005}]}}", pid_hex(40)), OMNI_CH_EMAIL);
    omni_decide(set, &ctx, &d);
    omni_render_text(set, &ctx, &d, OMNI_CH_EMAIL, out, sizeof(out));
    is_str(out, "12.5|-3.25|420|none|0.000001|0.02|3|0.01|12",
           "numbers: shortest for attributes, 2 decimals for money");
    omni_rules_free(set);
}


/* ---- device classes and needs ---- */

static void
test_devices_and_needs(void)
{
    static const struct {
        const char  *ua;
        unsigned     want;
    } uas[] = {
        { "", OMNI_DEVICE_BOT },
        { "Mozilla/5.0 (compatible; Googlebot/2.1; "
          "+http://www.google.com/bot.html)", OMNI_DEVICE_BOT },
        { "curl/8.1.2", OMNI_DEVICE_BOT },
        { "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0",
          OMNI_DEVICE_BOT },
        { "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X)",
          OMNI_DEVICE_TABLET },
        { "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 "
          "Chrome/120.0 Safari/537.36", OMNI_DEVICE_TABLET },
        { "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
          "Chrome/120.0 Mobile Safari/537.36", OMNI_DEVICE_MOBILE },
        { "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
          OMNI_DEVICE_MOBILE },
        { "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
          "Chrome/120.0 Safari/537.36", OMNI_DEVICE_DESKTOP },
        { "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Safari/605.1.15",
          OMNI_DEVICE_DESKTOP },
    };
    unsigned         i;
    omni_ruleset_t  *set;

    for (i = 0; i < sizeof(uas) / sizeof(uas[0]); i++) {
        is_int(omni_device_class(uas[i].ua, strlen(uas[i].ua)), uas[i].want,
               "device class %s of \"%.40s\"",
               omni_device_name(uas[i].want), uas[i].ua);
    }

    set = load("[{\"id\": \"a\", \"when\": {\"device\": \"mobile\", "
               "\"referrer\": {\"exists\": true}, \"utm_source\": \"x\", "
               "\"path\": {\"prefix\": \"/\"}}, \"pixels\": [{\"img\": "
               "\"https://p.example/\"}]}]");
    is_int(omni_rules_needs(set), OMNI_NEED_UA | OMNI_NEED_REFERRER
           | OMNI_NEED_QUERY | OMNI_NEED_PATH | OMNI_NEED_INJECT,
           "needs: exactly the request fields the rules read, and a pixel");
    omni_rules_free(set);

    set = load("{\"id\": \"a\", \"when\": {\"channel\": \"web\"}, "
               "\"banner\": {\"slot\": \"s\", \"html\": \"<b>x</b>\"}}");
    is_int(omni_rules_needs(set), OMNI_NEED_INJECT,
           "needs: nothing, not even the profile (but it injects)");
    omni_rules_free(set);

    set = load("{\"id\": \"a\", \"headers\": {\"X-Theme\": \"dark\"}}");
    is_int(omni_rules_needs(set), 0,
           "needs: a header-only rule injects nothing into pages");
    omni_rules_free(set);

    set = load("{\"id\": \"a\", \"enabled\": false, \"banner\": "
               "{\"slot\": \"s\", \"html\": \"<b>x</b>\"}}");
    is_int(omni_rules_needs(set), 0,
           "needs: a disabled banner injects nothing");
    omni_rules_free(set);

    set = load("{\"id\": \"a\", \"banner\": {\"slot\": \"s\", "
               "\"html\": \"{{geo.city|near you}}\"}}");
    is_int(omni_rules_needs(set), OMNI_NEED_GEO | OMNI_NEED_INJECT,
           "needs: a geo variable in a template");
    omni_rules_free(set);
}


/* ---- performance (diagnostic only) ---- */


/* omni_consent_allows() and omni_consent_merge(): the models. */
static void
test_consent_model(void)
{
    uint32_t  c, req, m;

    ok(omni_consent_allows(0, OMNI_CONSENT_ADS, 0),
       "opt-out, nothing stated: allowed");
    ok(!omni_consent_allows(0, OMNI_CONSENT_ADS, 1),
       "opt-in, nothing stated: refused");

    /* stated: ads refused, analytics granted; personalization unstated */
    c = OMNI_CONSENT_SET | OMNI_CONSENT_ANALYTICS
        | OMNI_CONSENT_STATED(OMNI_CONSENT_ANALYTICS | OMNI_CONSENT_ADS);
    ok(!omni_consent_allows(c, OMNI_CONSENT_ADS, 0), "a stated no holds");
    ok(omni_consent_allows(c, OMNI_CONSENT_ANALYTICS, 1),
       "a stated yes holds under opt-in");
    ok(omni_consent_allows(c, OMNI_CONSENT_PERSONALIZE, 0)
       && !omni_consent_allows(c, OMNI_CONSENT_PERSONALIZE, 1),
       "an unstated purpose follows the model");

    /* a record from before the stated bits: every purpose stated */
    c = OMNI_CONSENT_SET | OMNI_CONSENT_PERSONALIZE;
    ok(!omni_consent_allows(c, OMNI_CONSENT_ADS, 0)
       && omni_consent_allows(c, OMNI_CONSENT_PERSONALIZE, 1),
       "legacy flags: all stated");

    /* the request's cookie over the profile's, per purpose */
    c = OMNI_CONSENT_SET | OMNI_CONSENT_ADS | OMNI_CONSENT_ANALYTICS
        | OMNI_CONSENT_STATED(OMNI_CONSENT_ADS | OMNI_CONSENT_ANALYTICS);
    req = OMNI_CONSENT_SET | OMNI_CONSENT_STATED(OMNI_CONSENT_ADS);
    m = omni_consent_merge(c, req);
    ok(!omni_consent_allows(m, OMNI_CONSENT_ADS, 0)
       && omni_consent_allows(m, OMNI_CONSENT_ANALYTICS, 1),
       "the cookie's ads=no wins, the profile's analytics stays");
    is_int(omni_consent_merge(c, 0), c, "no cookie: the profile's");
    is_int(omni_consent_merge(0, req), req, "no profile: the cookie's");
}


/* omni_consent_cookie(): a CMP's cookie, by the keys it is mapped with. */
static uint32_t
consent_cookie(const char *value, const char *analytics,
    const char *personalization, const char *ads)
{
    char        buf[1024];
    size_t      klen[OMNI_CONSENT_NKEYS];
    const char *key[OMNI_CONSENT_NKEYS] = { analytics, personalization,
                                            ads, NULL, NULL };
    unsigned    k;

    for (k = 0; k < OMNI_CONSENT_NKEYS; k++) {
        klen[k] = key[k] ? strlen(key[k]) : 0;
    }

    return omni_consent_cookie(value, strlen(value), buf, key, klen);
}


/* The purposes' names, one list for events, the feed and the cookie. */
static void
test_consent_purposes(void)
{
    unsigned  k;

    static const char  *want[] = { "analytics", "personalization", "ads",
                                   "email", "sms" };

    for (k = 0; k < OMNI_CONSENT_NKEYS; k++) {
        is_str(omni_consent_purpose_name(k), want[k], "purpose %u's name", k);
        ok(omni_consent_purpose(want[k], strlen(want[k])) == 1u << k,
           "%s: purpose %u", want[k], k);
    }

    ok(omni_consent_purpose_name(OMNI_CONSENT_NKEYS) == NULL,
       "no name past the last purpose");
    ok(omni_consent_purpose("personalize", 11) == OMNI_CONSENT_PERSONALIZE
       && omni_consent_purpose("advertising", 11) == OMNI_CONSENT_ADS
       && omni_consent_purpose("marketing", 9) == OMNI_CONSENT_ADS,
       "the other words events accept");
    ok(omni_consent_purpose("ad", 2) == 0
       && omni_consent_purpose("adsx", 4) == 0
       && omni_consent_purpose("analyticsx", 9) == OMNI_CONSENT_ANALYTICS,
       "whole names only, by length");
}


static void
test_consent_cookie(void)
{
    uint32_t  all, c;

    all = OMNI_CONSENT_STATED(OMNI_CONSENT_ANALYTICS
                              | OMNI_CONSENT_PERSONALIZE | OMNI_CONSENT_ADS)
          | OMNI_CONSENT_SET;

    /* Cookiebot, URL-encoded as its script writes it */
    c = consent_cookie("{stamp:%27q9Y%2Bk%3D%3D%27%2Cnecessary:true%2C"
                       "preferences:true%2Cstatistics:false%2C"
                       "marketing:true%2Cmethod:%27explicit%27}",
                       "statistics", "preferences", "marketing");
    is_int(c, all | OMNI_CONSENT_PERSONALIZE | OMNI_CONSENT_ADS,
           "Cookiebot: preferences and marketing");

    /* OneTrust: groups=C0001:1,C0002:0,... among other members */
    c = consent_cookie("isGpcEnabled=0&datestamp=Thu+Dec+04+2026&groups="
                       "C0001%3A1%2CC0002%3A0%2CC0003%3A1%2CC0004%3A1"
                       "&AwaitingReconsent=false", "C0002", "C0003",
                       "C0004");
    is_int(c, all | OMNI_CONSENT_PERSONALIZE | OMNI_CONSENT_ADS,
           "OneTrust: C0003 and C0004");

    c = consent_cookie("analytics:1|personalization:granted|ads:DENIED",
                       "analytics", "personalization", "ads");
    is_int(c, all | OMNI_CONSENT_ANALYTICS | OMNI_CONSENT_PERSONALIZE,
           "a site's own, words in any case");

    /* only what is stated, as a whole key */
    c = consent_cookie("xads:1|badsport=1|ads:maybe|personalization:0",
                       "analytics", "personalization", "ads");
    is_int(c, OMNI_CONSENT_SET
              | OMNI_CONSENT_STATED(OMNI_CONSENT_PERSONALIZE),
           "partial keys and other words state nothing");
    is_int(consent_cookie("ads", "analytics", NULL, "ads"), 0,
           "a key without a value: nothing");
    is_int(consent_cookie("%", "analytics", NULL, "ads"), 0,
           "a lone percent sign: nothing");
    is_int(consent_cookie("ads%3", "analytics", NULL, "ads"), 0,
           "a cut escape: nothing");
    is_int(consent_cookie("ads=%31", "analytics", NULL, "ads"),
           OMNI_CONSENT_SET | OMNI_CONSENT_STATED(OMNI_CONSENT_ADS)
           | OMNI_CONSENT_ADS, "an escaped value");
}


int
main(void)
{
    test_errors();
    test_consent_model();
    test_consent_purposes();
    test_consent_cookie();
    test_loading();
    test_conditions_profile();
    test_conditions_request();
    test_composition();
    test_actions();
    test_escaping_urls();
    test_arbitration();
    test_eligibility();
    test_buckets();
    test_consent();
    test_explain();
    test_numbers();
    test_devices_and_needs();

    recs_free();

    return done_testing();
}
