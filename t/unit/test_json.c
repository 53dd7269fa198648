/*
 * Unit tests: omni_json.c, profile <-> JSON.  A canonical document must
 * survive import, export, and the binary record in between, byte for
 * byte; input is strict and errors name the field path.
 */

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "omni_core.h"
#include "omni_json.h"
#include "omni_record.h"
#include "omni_tap.h"


/* Export key order, compact separators: what to_json + dumps write. */
static const char  full_doc[] =
    "{\"id\":\"0102030405060708090a0b0c0d0e0f10\","
    "\"created\":1600000000,\"updated\":1700000000,\"visits\":12,"
    "\"visit_last\":1699999995,\"stage\":\"customer\","
    "\"consent\":{\"analytics\":true,\"personalize\":false,\"ads\":false,"
    "\"email\":true,\"sms\":false},"
    "\"last_seen\":{\"web\":1700000000,\"pos\":1699990000},"
    "\"orders\":4,\"revenue\":1234.5,"
    "\"aliases\":[{\"type\":\"cookie\","
    "\"id\":\"00112233445566778899aabbccddeeff\"},"
    "{\"type\":\"device\",\"id\":\"ffeeddccbbaa99887766554433221100\"},"
    "{\"type\":\"customer\",\"id\":\"cust-42\"},"
    "{\"type\":\"email\",\"id\":"
    "\"8e43ca37701228e74983efdbd0cff5c16b3b1e5d4e29a7c05626d4d25a018e11\"}],"
    "\"segments\":[\"vip\",\"newsletter\"],"
    "\"attributes\":{\"first_name\":\"Ana\",\"points\":120,\"ratio\":0.25},"
    "\"cart\":{\"updated_at\":1699999940,\"items\":[{\"sku\":\"SKU-1\","
    "\"name\":\"Red shoes\",\"category\":\"shoes\",\"qty\":2,"
    "\"price\":59.5,\"url\":\"/p/sku-1\",\"image\":\"/img/sku-1.jpg\"}]},"
    "\"purchases\":[{\"sku\":\"SKU-9\",\"order_id\":\"O-1001\","
    "\"channel\":\"pos\",\"time\":1699913600,\"category\":\"bags\","
    "\"price\":199.0,\"qty\":1}],"
    "\"impressions\":[{\"campaign\":\"spring\",\"total\":3,"
    "\"last\":1700000000,\"buckets\":[[472220,1],[472222,2]]}],"
    "\"views\":[{\"sku\":\"SKU-3\",\"category\":\"hats\","
    "\"time\":1699999970,\"price\":19.75}],"
    "\"events\":[{\"name\":\"Product Reviewed\",\"count\":3,"
    "\"last\":1699999990}]}";


static int
load(omni_profile_t *p, const char *doc, char *err, size_t errlen)
{
    int           rc;
    json_t       *j;
    json_error_t  jerr;

    omni_profile_init(p, NULL);

    j = json_loads(doc, 0, &jerr);
    if (j == NULL) {
        snprintf(err, errlen, "test JSON does not parse: %s", jerr.text);
        return -100;
    }

    rc = omni_profile_from_json(p, j, err, errlen);
    json_decref(j);

    return rc;
}


static char *
dump(const omni_profile_t *p)
{
    char    *s;
    json_t  *j;

    j = omni_profile_to_json(p);
    if (j == NULL) {
        return NULL;
    }

    s = json_dumps(j, JSON_COMPACT);
    json_decref(j);

    return s;
}


/* A document that must be refused with exactly `want`. */
static void
refused(const char *doc, const char *want)
{
    int             rc;
    char            err[256];
    omni_profile_t  p;

    err[0] = '\0';
    rc = load(&p, doc, err, sizeof(err));
    omni_profile_free(&p);

    ok(rc == OMNI_INVALID, "refused: %s", want);
    is_str(err, want, "... with the path in the message");
}


static void
test_round_trip(void)
{
    int             rc;
    char            err[256], *s;
    size_t          len;
    omni_rec_t      rec;
    unsigned char  *buf;
    omni_profile_t  p, q;

    err[0] = '\0';
    rc = load(&p, full_doc, err, sizeof(err));
    is_int(rc, OMNI_OK, "full document imports (%s)", err);

    ok(p.id[0] == 1 && p.id[15] == 16, "id");
    ok(p.created == 1600000000 && p.updated == 1700000000 && p.visits == 12
       && p.visit_last == 1699999995 && p.orders == 4
       && p.revenue == 1234.5, "fixed numbers");
    is_int(p.stage, OMNI_STAGE_CUSTOMER, "stage");
    is_int(p.consent, OMNI_CONSENT_SET | OMNI_CONSENT_ANALYTICS
           | OMNI_CONSENT_EMAIL | OMNI_CONSENT_STATED_MASK,
           "consent flags, SET, every purpose stated");
    ok(p.last_seen[OMNI_CH_WEB] == 1700000000
       && p.last_seen[OMNI_CH_POS] == 1699990000
       && p.last_seen[OMNI_CH_APP] == 0, "last_seen by channel name");
    ok(p.naliases == 4 && p.aliases[0].kind == OMNI_ALIAS_COOKIE
       && p.aliases[1].kind == OMNI_ALIAS_DEVICE
       && p.aliases[2].kind == OMNI_ALIAS_CUSTOMER
       && p.aliases[3].kind == OMNI_ALIAS_EMAIL, "alias kinds");
    ok(p.nattrs == 3 && p.attrs[1].type == OMNI_ATTR_NUM
       && p.attrs[1].num == 120 && p.attrs[2].num == 0.25,
       "attributes: integer and real numbers");
    ok(p.ncart == 1 && p.cart[0].qty == 2 && p.cart_updated == 1699999940,
       "cart");
    ok(p.npurchases == 1 && p.purchases[0].channel == OMNI_CH_POS,
       "purchase channel by name");
    ok(p.nimpressions == 1 && p.impressions[0].nbuckets == 2
       && p.impressions[0].buckets[1].hour == 472222
       && p.impressions[0].buckets[1].count == 2, "impression buckets");

    s = dump(&p);
    is_str(s, full_doc, "export reproduces the document byte for byte");
    free(s);

    /* through the binary record and back */
    ok(omni_profile_encode(&p, &buf, &len) == OMNI_OK
       && omni_rec_parse(&rec, buf, len) == OMNI_OK
       && omni_profile_from_rec(&q, &rec) == OMNI_OK, "record round trip");
    s = dump(&q);
    is_str(s, full_doc, "... and exports the same document");
    free(s);
    free(buf);
    omni_profile_free(&q);
    omni_profile_free(&p);

    /* minimal profile: the always-present keys */
    rc = load(&p, "{\"id\":\"00112233-4455-6677-8899-AABBCCDDEEFF\"}", err,
              sizeof(err));
    is_int(rc, OMNI_OK, "only an id (UUID, upper case)");
    s = dump(&p);
    is_str(s, "{\"id\":\"00112233445566778899aabbccddeeff\",\"created\":0,"
           "\"updated\":0,\"visits\":0,\"visit_last\":0,\"stage\":\"new\","
           "\"orders\":0,\"revenue\":0.0}",
           "minimal export: fixed keys, empty sections left out");
    free(s);
    omni_profile_free(&p);

    /* an empty consent object still states consent */
    rc = load(&p, "{\"id\":\"00112233445566778899aabbccddeeff\","
              "\"consent\":{}}", err, sizeof(err));
    ok(rc == OMNI_OK && p.consent == OMNI_CONSENT_SET,
       "empty consent object: OMNI_CONSENT_SET only");
    s = dump(&p);
    ok(s && strstr(s, "\"consent\":{\"analytics\":false,"), "... exported");
    free(s);
    omni_profile_free(&p);
}


static void
test_aliases(void)
{
    int             rc;
    char            err[256];
    omni_profile_t  p;

    rc = load(&p, "{\"id\":\"00112233445566778899aabbccddeeff\","
              "\"aliases\":["
              "{\"type\":\"cookie\","
              "\"id\":\"AABBCCDD-0011-2233-4455-66778899AABB\"},"
              "{\"type\":\"email\",\"id\":\"Ana@Example.COM\"},"
              "{\"type\":\"email\",\"id\":\"ana@example.com\"},"
              "{\"type\":\"email\",\"id\":"
              "\"0000000000000000000000000000000000000000000000000000"
              "00000000ABCD\"},"
              "{\"type\":\"customer\",\"id\":\"Cust 7\"}]}",
              err, sizeof(err));

    is_int(rc, OMNI_OK, "aliases import (%s)", err);
    is_int(p.naliases, 4, "same email twice: one alias");
    is_str(p.aliases[0].value, "aabbccdd00112233445566778899aabb",
           "cookie UUID stored as lower-case hex");
    is_str(p.aliases[1].value,
           "8e43ca37701228e74983efdbd0cff5c16b3b1e5d4e29a7c05626d4d25a018e11",
           "email stored as sha256 of the lower-cased address");
    is_str(p.aliases[2].value,
           "000000000000000000000000000000000000000000000000000000000000abcd",
           "a digest is taken as is, lower-cased");
    is_str(p.aliases[3].value, "Cust 7", "customer id as given");
    omni_profile_free(&p);
}


static void
test_errors(void)
{
    char  doc[1400];

    refused("[1]", "expected an object");
    refused("{}", "id: required");
    refused("{\"id\":\"xyz\"}", "id: expected 32 hex digits or a UUID");
    refused("{\"id\":7}", "id: expected 32 hex digits or a UUID");

#define ID "\"id\":\"00112233445566778899aabbccddeeff\","

    refused("{" ID "\"foo\":1}", "unknown key \"foo\"");
    refused("{" ID "\"visits\":\"3\"}",
            "visits: expected a non-negative integer");
    refused("{" ID "\"visits\":-1}",
            "visits: expected a non-negative integer");
    refused("{" ID "\"created\":1.5}",
            "created: expected a non-negative integer");
    refused("{" ID "\"updated\":4294967296}",
            "updated: out of range (at most 4294967295)");
    refused("{" ID "\"revenue\":\"1\"}", "revenue: expected a number");
    refused("{" ID "\"stage\":\"vip\"}", "stage: unknown stage \"vip\"");
    refused("{" ID "\"stage\":1}", "stage: expected a string");
    refused("{" ID "\"consent\":true}", "consent: expected an object");
    refused("{" ID "\"consent\":{\"ads\":\"yes\"}}",
            "consent.ads: expected a boolean");
    refused("{" ID "\"consent\":{\"cookies\":true}}",
            "consent: unknown key \"cookies\"");
    refused("{" ID "\"last_seen\":{\"fax\":1}}",
            "last_seen: unknown channel \"fax\"");
    refused("{" ID "\"last_seen\":{\"web\":null}}",
            "last_seen.web: expected a non-negative integer");
    refused("{" ID "\"aliases\":{}}", "aliases: expected an array");
    refused("{" ID "\"aliases\":[{\"type\":\"phone\",\"id\":\"1\"}]}",
            "aliases[0].type: unknown alias type \"phone\"");
    refused("{" ID "\"aliases\":[{\"type\":\"customer\",\"id\":\"1\"},"
            "{\"type\":\"cookie\",\"id\":\"abc\"}]}",
            "aliases[1].id: expected 32 hex digits or a UUID");
    refused("{" ID "\"aliases\":[{\"type\":\"email\",\"id\":\"abc\"}]}",
            "aliases[0].id: expected an email address or a sha256 hex "
            "digest");
    refused("{" ID "\"aliases\":[{\"id\":\"abc\"}]}",
            "aliases[0].type: required");
    refused("{" ID "\"aliases\":[{\"type\":\"customer\",\"id\":\"\"}]}",
            "aliases[0].id: expected 1 to 128 bytes");
    refused("{" ID "\"aliases\":[{\"type\":\"customer\",\"id\":\"a\","
            "\"primary\":true}]}",
            "aliases[0]: unknown key \"primary\"");
    refused("{" ID "\"segments\":[\"a\",2]}",
            "segments[1]: expected a string");
    refused("{" ID "\"segments\":[\"\"]}", "segments[0]: must not be empty");
    refused("{" ID "\"attributes\":{\"x\":true}}",
            "attributes.x: expected a string or a number");
    refused("{" ID "\"attributes\":[]}", "attributes: expected an object");
    refused("{" ID "\"cart\":{\"total\":1}}", "cart: unknown key \"total\"");
    refused("{" ID "\"cart\":{\"items\":[{},{\"qty\":1},{\"qty\":-2}]}}",
            "cart.items[2].qty: expected a non-negative integer");
    refused("{" ID "\"cart\":{\"items\":[{\"colour\":\"red\"}]}}",
            "cart.items[0]: unknown key \"colour\"");
    refused("{" ID "\"cart\":{\"items\":[{\"price\":\"9\"}]}}",
            "cart.items[0].price: expected a number");
    refused("{" ID "\"purchases\":[{\"channel\":\"fax\"}]}",
            "purchases[0].channel: unknown channel \"fax\"");
    refused("{" ID "\"purchases\":[1]}", "purchases[0]: expected an object");
    refused("{" ID "\"impressions\":[{\"total\":1}]}",
            "impressions[0].campaign: required");
    refused("{" ID "\"impressions\":[{\"campaign\":\"a\","
            "\"buckets\":[[1,2],[3,70000]]}]}",
            "impressions[0].buckets[1][1]: out of range (at most 65535)");
    refused("{" ID "\"impressions\":[{\"campaign\":\"a\","
            "\"buckets\":[[1,2,3]]}]}",
            "impressions[0].buckets[0]: expected [hour, count]");
    refused("{" ID "\"impressions\":[{\"campaign\":\"a\"},"
            "{\"campaign\":\"a\"}]}",
            "impressions[1].campaign: duplicate campaign \"a\"");
    refused("{" ID "\"views\":[{\"time\":\"now\"}]}",
            "views[0].time: expected a non-negative integer");
    refused("{" ID "\"events\":[{\"name\":\"\"}]}",
            "events[0].name: must not be empty");

    /* long strings are refused, not cut */
    snprintf(doc, sizeof(doc), "{" ID "\"segments\":[\"%01025d\"]}", 0);
    refused(doc, "segments[0]: longer than 1024 bytes");

#undef ID
}


static void
test_buckets(void)
{
    int             rc;
    char            err[256];
    omni_profile_t  p;

    rc = load(&p, "{\"id\":\"00112233445566778899aabbccddeeff\","
              "\"impressions\":[{\"campaign\":\"a\",\"total\":9,"
              "\"buckets\":[[30,1],[10,2],[30,3],[20,0]]}]}",
              err, sizeof(err));
    is_int(rc, OMNI_OK, "unordered buckets import");
    ok(p.impressions[0].nbuckets == 2
       && p.impressions[0].buckets[0].hour == 10
       && p.impressions[0].buckets[1].hour == 30
       && p.impressions[0].buckets[1].count == 4,
       "sorted, merged by hour, empty ones dropped");
    omni_profile_free(&p);
}


int
main(void)
{
    test_round_trip();
    test_aliases();
    test_errors();
    test_buckets();

    return done_testing();
}
