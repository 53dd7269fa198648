# Apps on the web (docs/app-integration.md, "Web apps on another origin";
# docs/directives.md, omni_cors): CORS preflights of omni_decide,
# omni_events and omni_identify answered 204 for listed origins (with
# credentials) or "*" (without), a 403 JSON naming Origin otherwise, and
# never a cookie nor a touch; actual requests carry the CORS headers.
# A refused app token (expired, forged) is a 401 JSON with "identity":
# "rejected" (omni_token_rejected 401, the default), or a 200 decision as
# an anonymous visitor carrying "identity": "rejected" (omni_token_rejected
# anonymous); never a 200 as a new web visitor with a Set-Cookie.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use OmniCookie;

our $DEV = 'c0c00000000000000000000000000001';

sub token   { mint_token(TEST_SECRET, $DEV, @_) }
sub expired { mint_token(TEST_SECRET, $DEV, issued => time - 7200,
                         expires => time - 3600) }
sub forged  { mint_token('another-secret-0123456789-abcdefghijklmnop', $DEV) }

run_blocks();

__DATA__

=== TEST 1: preflight from a listed origin: 204, credentials, the methods and headers; no cookie
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location = /omni/decide {
    omni on;
    omni_cors https://app.example.com https://m.example.com:8443;
    omni_decide;
}
location = /omni/events {
    omni on;
    omni_cors https://app.example.com;
    omni_events;
}
--- request
OPTIONS /omni/decide
--- more_headers
Origin: https://app.example.com
Access-Control-Request-Method: GET
Access-Control-Request-Headers: x-omni-token
--- error_code: 204
--- response_headers
Access-Control-Allow-Origin: https://app.example.com
Access-Control-Allow-Credentials: true
Access-Control-Allow-Methods: GET, HEAD, POST, OPTIONS
Access-Control-Allow-Headers: Content-Type, Authorization, X-Omni-Token, X-Omni-Signature
Access-Control-Max-Age: 600
Vary: Origin
!Set-Cookie
--- request_2
OPTIONS /omni/events
--- more_headers_2
Origin: https://app.example.com
Access-Control-Request-Method: POST
Access-Control-Request-Headers: content-type
--- error_code_2: 204
--- response_headers_2
Access-Control-Allow-Origin: https://app.example.com
!Set-Cookie
--- request_3
OPTIONS /omni/decide
--- more_headers_3
Origin: https://m.example.com:8443
Access-Control-Request-Method: GET
--- error_code_3: 204
--- response_headers_3
Access-Control-Allow-Origin: https://m.example.com:8443
--- no_error_log
[error]

=== TEST 2: preflight from an unlisted origin: 403 JSON naming Origin, no cookie, no CORS headers
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location = /omni/decide { omni on; omni_cors https://app.example.com; omni_decide; }
--- request
OPTIONS /omni/decide
--- more_headers
Origin: https://evil.example.com
Access-Control-Request-Method: GET
--- error_code: 403
--- response_body
{"ok":false,"error":"forbidden","field":"Origin","reason":"origin not allowed (omni_cors)"}
--- response_headers
Content-Type: application/json
!Set-Cookie
!Access-Control-Allow-Origin
--- error_log
CORS preflight from "https://evil.example.com" refused: not in "omni_cors"

=== TEST 3: actual requests: a listed origin gets its CORS headers with the decision and its cookie; another origin gets none; "*" answers without credentials
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location = /omni/decide { omni on; omni_cors https://app.example.com; omni_decide; }
location = /any/decide { omni_cors *; omni_decide; }
--- request
GET /omni/decide
--- more_headers
Origin: https://app.example.com
--- response_headers
Access-Control-Allow-Origin: https://app.example.com
Access-Control-Allow-Credentials: true
Vary: Origin
--- response_headers_like
Set-Cookie: ^omni=
--- request_2
GET /omni/decide
--- more_headers_2
Origin: https://evil.example.com
--- response_headers_2
!Access-Control-Allow-Origin
--- request_3
OPTIONS /any/decide
--- more_headers_3
Origin: https://whoever.example
Access-Control-Request-Method: GET
--- error_code_3: 204
--- response_headers_3
Access-Control-Allow-Origin: *
!Access-Control-Allow-Credentials
--- request_4
GET /any/decide
--- more_headers_4 eval
"Origin: https://whoever.example\nX-Omni-Token: " . main::token()
--- response_headers_4
Access-Control-Allow-Origin: *
--- response_body_like_4
"channel":"app"
--- no_error_log
[error]

=== TEST 4: without omni_cors a preflight is left to the endpoint (405 JSON) and mints no cookie
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location = /omni/events { omni on; omni_events; }
--- request
OPTIONS /omni/events
--- more_headers
Origin: https://app.example.com
Access-Control-Request-Method: POST
--- error_code: 405
--- response_headers
Allow: POST
!Access-Control-Allow-Origin
--- no_error_log
[error]

=== TEST 5: omni_cors errors at configuration time
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
--- config
location = /omni/decide { omni_cors https://app.example.com/path; omni_decide; }
--- must_die
invalid origin "https://app.example.com/path" in "omni_cors": expected scheme://host[:port], without a path, or "*" or "off"

=== TEST 6: omni_cors: "*" with listed origins
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
--- config
location = /omni/decide { omni_cors * https://app.example.com; omni_decide; }
--- must_die
"omni_cors *" cannot be combined with listed origins

=== TEST 7: omni_cors: an uppercase origin never matches what browsers send
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
--- config
location = /omni/decide { omni_cors https://App.example.com; omni_decide; }
--- must_die
invalid origin "https://App.example.com" in "omni_cors": browsers send origins in lowercase

=== TEST 8: a refused app token: 401 JSON "identity":"rejected" naming the header, no cookie (decide with and without omni on)
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location = /omni/decide { omni_decide; }
location = /on/decide { omni on; omni_decide; }
--- request
GET /omni/decide
--- more_headers eval
"X-Omni-Token: " . main::expired()
--- error_code: 401
--- response_body_like
^\{"ok":false,"error":"unauthorized","identity":"rejected","field":"x-omni-token","reason":"app token refused: [^"]+; get a new one from omni_identify"\}$
--- response_headers
WWW-Authenticate: Bearer error="invalid_token"
!Set-Cookie
--- request_2
GET /on/decide
--- more_headers_2 eval
"X-Omni-Token: " . main::forged()
--- error_code_2: 401
--- response_headers_2
!Set-Cookie
--- request_3
GET /on/decide
--- more_headers_3 eval
"Authorization: " . 'Bearer ' . main::expired()
--- error_code_3: 401
--- response_body_like_3
"field":"Authorization"
--- request_4
GET /on/decide
--- more_headers_4 eval
"X-Omni-Token: " . main::token()
--- error_code_4: 200
--- response_body_like_4
"channel":"app"
--- error_log
omni: app token refused

=== TEST 9: omni_events: a refused app token is a 401 JSON, not "no visitor"
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location = /omni/events { omni on; omni_events; }
--- request
POST /omni/events
{"type":"screen","name":"Home"}
--- more_headers eval
"Content-Type: application/json\nX-Omni-Token: " . main::expired()
--- error_code: 401
--- response_body_like
"identity":"rejected","field":"x-omni-token"
--- response_headers
!Set-Cookie
--- error_log
omni: app token refused

=== TEST 10: omni_token_rejected anonymous: a refused token gets the decision of a visitor without a profile, with "identity":"rejected"; no cookie, nothing recorded; a valid token and the 401 default elsewhere are unchanged
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- user_files
>>> rules/a.json
{"rules": [
 {"id": "welcome", "priority": 10, "when": {"stage": "new"},
  "banner": {"slot": "hero", "html": "<p>Welcome</p>", "text": "Welcome"}},
 {"id": "returning", "priority": 20, "when": {"visits": {"gte": 1}},
  "banner": {"slot": "hero", "html": "<p>Back</p>", "text": "Back"}}
]}
--- config
location = /omni/decide { omni_token_rejected anonymous; omni on; omni_decide; }
location = /strict/decide { omni_decide; }
location = /omni/metrics { omni_metrics; }
--- request
GET /omni/decide
--- more_headers eval
"X-Omni-Token: " . main::expired()
--- error_code: 200
--- response_body_like
^\{"identity":"rejected","reason":"app token refused: expired","channel":"app","holdout":false,"blocked":null,"slots":\{"hero":\{"rule":"welcome",
--- response_headers
!Set-Cookie
!WWW-Authenticate
Cache-Control: private, no-store
--- request_2
GET /omni/decide
--- more_headers_2 eval
"Authorization: Bearer " . main::forged()
--- error_code_2: 200
--- response_body_like_2
^\{"identity":"rejected","reason":"app token refused: bad signature","channel":"app",
--- response_headers_2
!Set-Cookie
--- request_3
GET /strict/decide
--- more_headers_3 eval
"X-Omni-Token: " . main::expired()
--- error_code_3: 401
--- response_body_like_3
"identity":"rejected"
--- check
use JSON::PP ();
# a valid token: its own profile, no "identity" member, recorded
my $r = http_get('/omni/decide', 'X-Omni-Token' => main::token());
is($r->{status}, 200, 'a valid token: 200');
my $d = JSON::PP::decode_json($r->{content});
ok(!exists $d->{identity}, 'no "identity" member for a valid token');
is($d->{slots}{hero}{rule}, 'welcome', 'a new device sees the welcome');
ok(wait_for(sub {
    my ($rc, $out) = omnictl('--store', "$OmniTest::PREFIX/store", 'tail', '--after', '0');
    $out =~ /"anonymousId":"$main::DEV"/;
}, 5), 'the valid token\'s request is in the feed');
# the refused ones left nothing: one touchpoint only, no impression counted for them
my ($rc, $out) = omnictl('--store', "$OmniTest::PREFIX/store", 'tail', '--after', '0');
is(scalar(() = $out =~ /\n/g), 1, 'the two refused requests recorded nothing');
like(http_get('/omni/metrics')->{content}, qr/^omni_rule_impressions_total\{rule="welcome"\} 1$/m,
     'and counted no impression');
like(http_get('/omni/metrics')->{content}, qr/^omni_requests_total\{identity="invalid"\} [23]$/m,
     'counted as refused');
--- error_log
omni: app token refused
--- no_error_log
[error]

=== TEST 11: omni_token_rejected: anything but 401 or anonymous is refused at nginx -t
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
--- config
location = /omni/decide { omni_token_rejected 200; omni_decide; }
--- must_die
--- error_log
qr/\[emerg\] .*invalid value "200" in "omni_token_rejected" \(401 or anonymous\) in \S+nginx\.conf:\d+/
