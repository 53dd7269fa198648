# Visitor identity: the signed cookie, the app token, key rotation, bad
# input, the identify endpoint and the identity variables.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use OmniCookie;

run_blocks();

__DATA__

=== TEST 1: a new visitor gets a signed cookie with the default attributes
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
omni on;
location = /t { return 200 "$omni_identity $omni_visitor\n"; }
--- request
GET /t
--- response_headers_like
Set-Cookie: ^omni=[A-Za-z0-9_-]{56}; Max-Age=31536000; Path=/; HttpOnly; SameSite=Lax$
--- response_body_like: ^new [0-9a-f]{32}$
--- check
my ($cookie) = $resp->{headers}{'set-cookie'} =~ /^omni=([^;]+)/;
my ($vid) = $resp->{content} =~ /([0-9a-f]{32})/;
my $raw = OmniCookie::b64url_decode($cookie);
is(length($raw), 42, 'cookie decodes to 42 bytes');
is(unpack('H32', substr($raw, 2, 16)), $vid, 'cookie carries $omni_visitor');
is(OmniCookie::mint_cookie(OmniCookie::TEST_SECRET, $vid,
       issued => unpack('N', substr($raw, 18, 4))),
   $cookie, 'cookie MAC matches an independent HMAC-SHA256');
--- no_error_log
[error]
[warn]

=== TEST 2: the cookie comes back: same visitor, no new cookie
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
omni on;
location = /t { return 200 "$omni_identity $omni_visitor\n"; }
--- cookie_jar
--- request
GET /t
--- response_body_like: ^new [0-9a-f]{32}$
--- request_2
GET /t
--- response_body_like_2: ^cookie [0-9a-f]{32}$
--- response_headers_2
!Set-Cookie
--- check
# A browser's round trip, step by step: the cookie from the first answer
# identifies the same visitor on the next request.
my $r1 = OmniTest::http_get('/t');
my ($cookie) = $r1->{headers}{'set-cookie'} =~ /^(omni=[^;]+)/;
my ($v1) = $r1->{content} =~ /^new ([0-9a-f]{32})$/;
my $r2 = OmniTest::http_get('/t', Cookie => $cookie);
is($r2->{content}, "cookie $v1\n", 'the cookie brings back the same visitor');

=== TEST 3: cookie attributes are configurable
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
omni on;
omni_cookie vid max_age=30d domain=.example.com path=/shop secure nohttponly samesite=strict;
location = /t { return 200 "ok"; }
--- request
GET /t
--- response_headers_like
Set-Cookie: ^vid=[A-Za-z0-9_-]{56}; Max-Age=2592000; Domain=\.example\.com; Path=/shop; Secure; SameSite=Strict$

=== TEST 4: samesite=none and samesite=off
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
omni on;
location = /none {
    omni_cookie n samesite=none secure;
    return 200 "ok";
}
location = /off {
    omni_cookie o samesite=off;
    return 200 "ok";
}
--- request
GET /none
--- response_headers_like
Set-Cookie: ^n=[^;]+; Max-Age=31536000; Path=/; Secure; HttpOnly; SameSite=None$
--- request_2
GET /off
--- response_headers_like_2
Set-Cookie: ^o=[^;]+; Max-Age=31536000; Path=/; HttpOnly$

=== TEST 5: a valid minted cookie is accepted as that visitor
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
omni on;
location = /t { return 200 "$omni_identity $omni_visitor $omni_profile\n"; }
--- request
GET /t
--- more_headers eval
"Cookie: a=b; omni=" . OmniCookie::mint_cookie(OmniCookie::TEST_SECRET,
    "0123456789abcdef0123456789abcdef") . "; c=d"
--- response_body
cookie 0123456789abcdef0123456789abcdef 0123456789abcdef0123456789abcdef
--- response_headers
!Set-Cookie

=== TEST 6: a tampered cookie is a new visitor, logged at info, never an error
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
omni on;
location = /t { return 200 "$omni_identity $omni_visitor\n"; }
--- request
GET /t
--- more_headers eval
"Cookie: omni=" . OmniCookie::tamper(OmniCookie::mint_cookie(
    OmniCookie::TEST_SECRET, "0123456789abcdef0123456789abcdef"), 5)
--- response_body_like: ^new (?!0123456789abcdef0123456789abcdef)[0-9a-f]{32}$
--- response_headers_like
Set-Cookie: ^omni=
--- error_log
omni: visitor cookie "omni" refused (bad signature), treating as a new visitor
--- no_error_log
[error]

=== TEST 7: a truncated cookie is refused by length
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
omni on;
location = /t { return 200 "$omni_identity\n"; }
--- request
GET /t
--- more_headers eval
"Cookie: omni=" . substr(OmniCookie::mint_cookie(OmniCookie::TEST_SECRET,
    "0123456789abcdef0123456789abcdef"), 0, 40)
--- response_body
new
--- error_log
refused (wrong length)

=== TEST 8: garbage of the right length is refused as not base64url
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
omni on;
location = /t { return 200 "$omni_identity\n"; }
--- request
GET /t
--- more_headers
Cookie: omni=!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
--- response_body
new
--- error_log
refused (not base64url)

=== TEST 9: a cookie signed with a key that is not configured is refused
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
omni on;
location = /t { return 200 "$omni_identity\n"; }
--- request
GET /t
--- more_headers eval
"Cookie: omni=" . OmniCookie::mint_cookie(OmniCookie::OTHER_SECRET,
    "0123456789abcdef0123456789abcdef")
--- response_body
new
--- error_log
refused (bad signature)

=== TEST 10: an app token presented as the cookie is refused (kind is signed)
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
omni on;
location = /t { return 200 "$omni_identity\n"; }
--- request
GET /t
--- more_headers eval
"Cookie: omni=" . OmniCookie::mint_token(OmniCookie::TEST_SECRET,
    "0123456789abcdef0123456789abcdef")
--- response_body
new
--- error_log
refused (wrong kind)

=== TEST 11: key rotation: an old-key cookie verifies and is re-signed
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_secret "old-secret-9876543210-zyxwvutsrqponmlkjihgfedcba";
--- config
omni on;
location = /t { return 200 "$omni_identity $omni_visitor\n"; }
--- request
GET /t
--- more_headers eval
"Cookie: omni=" . OmniCookie::mint_cookie(OmniCookie::OLD_SECRET,
    "0123456789abcdef0123456789abcdef")
--- response_body
cookie 0123456789abcdef0123456789abcdef
--- response_headers_like
Set-Cookie: ^omni=[A-Za-z0-9_-]{56};
--- check
my ($c) = $resp->{headers}{'set-cookie'} =~ /^omni=([^;]+)/;
my $raw = OmniCookie::b64url_decode($c);
is(OmniCookie::mint_cookie(OmniCookie::TEST_SECRET,
       "0123456789abcdef0123456789abcdef",
       issued => unpack('N', substr($raw, 18, 4))),
   $c, 're-signed with the first (current) key, same visitor');

=== TEST 12: after the old key is removed, its cookies are refused
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
omni on;
location = /t { return 200 "$omni_identity\n"; }
--- request
GET /t
--- more_headers eval
"Cookie: omni=" . OmniCookie::mint_cookie(OmniCookie::OLD_SECRET,
    "0123456789abcdef0123456789abcdef")
--- response_body
new
--- error_log
refused (bad signature)

=== TEST 13: app token in X-Omni-Token wins over the cookie
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
omni on;
location = /t { return 200 "$omni_identity $omni_visitor\n"; }
--- request
GET /t
--- more_headers eval
"X-Omni-Token: " . OmniCookie::mint_token(OmniCookie::TEST_SECRET,
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") . "\n"
. "Cookie: omni=" . OmniCookie::mint_cookie(OmniCookie::TEST_SECRET,
    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
--- response_body
token aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
--- response_headers
!Set-Cookie

=== TEST 14: app token as Authorization: Bearer, and a custom header name
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
omni on;
location = /bearer { return 200 "$omni_identity $omni_visitor\n"; }
location = /custom {
    omni_token_header X-App-Id;
    return 200 "$omni_identity $omni_visitor\n";
}
--- request
GET /bearer
--- more_headers eval
"Authorization: Bearer " . OmniCookie::mint_token(OmniCookie::TEST_SECRET,
    "cccccccccccccccccccccccccccccccc")
--- response_body
token cccccccccccccccccccccccccccccccc
--- request_2
GET /custom
--- more_headers_2 eval
"X-App-Id: " . OmniCookie::mint_token(OmniCookie::TEST_SECRET,
    "dddddddddddddddddddddddddddddddd")
--- response_body_2
token dddddddddddddddddddddddddddddddd

=== TEST 15: an expired token is refused: $omni_identity is "rejected", and the app gets no web cookie
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
omni on;
location = /t { return 200 "$omni_identity\n"; }
--- request
GET /t
--- more_headers eval
"X-Omni-Token: " . OmniCookie::mint_token(OmniCookie::TEST_SECRET,
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", issued => time() - 100,
    expires => time() - 10)
--- response_body
rejected
--- response_headers
!Set-Cookie
--- error_log
omni: app token refused (expired)

=== TEST 16: outside "omni on" nobody is minted, but valid cookies are read
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
--- config
location = /t { return 200 "[$omni_identity][$omni_visitor]\n"; }
--- request
GET /t
--- response_body
[][]
--- response_headers
!Set-Cookie
--- request_2
GET /t
--- more_headers_2 eval
"Cookie: omni=" . OmniCookie::mint_cookie(OmniCookie::TEST_SECRET,
    "0123456789abcdef0123456789abcdef")
--- response_body_2
[cookie][0123456789abcdef0123456789abcdef]

=== TEST 17: variables reach log_format and proxy_set_header
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
log_format omni 'OMNILOG $omni_identity $omni_visitor $omni_profile';
--- config
omni on;
access_log logs/omni.log omni;
location = /t {
    proxy_set_header X-Omni-Profile $omni_profile;
    proxy_set_header X-Omni-Identity $omni_identity;
    proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/upstream;
}
location = /upstream {
    omni off;
    access_log off;
    return 200 "$http_x_omni_identity $http_x_omni_profile\n";
}
--- request
GET /t
--- more_headers eval
"Cookie: omni=" . OmniCookie::mint_cookie(OmniCookie::TEST_SECRET,
    "0123456789abcdef0123456789abcdef")
--- response_body
cookie 0123456789abcdef0123456789abcdef
--- check
my $log = '';
OmniTest::wait_for(sub {
    open(my $fh, '<', "$OmniTest::PREFIX/logs/omni.log") or return 0;
    local $/; $log = <$fh>; $log =~ /OMNILOG/
}, 5);
like($log, qr/^OMNILOG cookie 0123456789abcdef0123456789abcdef 0123456789abcdef0123456789abcdef$/m,
     'access log line carries the identity variables');

=== TEST 18: omni_identify mints an app token that then identifies the app
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location = /omni/identify { omni_identify; }
location = /t { omni on; return 200 "$omni_identity $omni_visitor\n"; }
--- request
POST /omni/identify
--- response_headers
Content-Type: application/json
Cache-Control: no-store
--- response_body_like: ^\{"token":"[A-Za-z0-9_-]{56}","device":"[0-9a-f]{32}","profile":"[0-9a-f]{32}","expires":\d+\}$
--- check
use JSON::PP ();
my $j = JSON::PP::decode_json($resp->{content});
my $r = OmniTest::http_get('/t', 'X-Omni-Token' => $j->{token});
is($r->{content}, "token $j->{device}\n", 'the minted token identifies the device');
ok($j->{expires} > time() + 29 * 86400 && $j->{expires} <= time() + 30 * 86400 + 5,
   'default lifetime is 30 days');
my $r2 = OmniTest::http_request('POST', '/omni/identify', '',
    headers => { 'X-Omni-Token' => $j->{token} });
my $j2 = JSON::PP::decode_json($r2->{content});
is($j2->{device}, $j->{device}, 'a refresh keeps the device id');
my $r3 = OmniTest::http_request('PUT', '/omni/identify', '');
is($r3->{status}, 405, 'PUT is not allowed');

=== TEST 19: omni_token_ttl sets the identify lifetime
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
--- config
location = /omni/identify { omni_token_ttl 1h; omni_identify; }
--- request
GET /omni/identify
--- check
use JSON::PP ();
my $j = JSON::PP::decode_json($resp->{content});
ok(abs($j->{expires} - (time() + 3600)) < 10, 'token expires in an hour');

=== TEST 20: an internal redirect keeps the identity (one visitor, one cookie)
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
omni on;
location = /t { error_page 404 = /fallback; return 404; }
location = /fallback { return 200 "$omni_identity $omni_visitor\n"; }
--- request
GET /t
--- response_body_like: ^new [0-9a-f]{32}$
--- check
my $sc = $resp->{headers}{'set-cookie'};
my @c = ref $sc ? @$sc : ($sc);
is(scalar(@c), 1, 'exactly one Set-Cookie');
my ($vid) = $resp->{content} =~ /([0-9a-f]{32})/;
my ($cookie) = $c[0] =~ /^omni=([^;]+)/;
is(unpack('H32', substr(OmniCookie::b64url_decode($cookie), 2, 16)), $vid,
   'the cookie is the visitor shown after the redirect');

=== TEST 21: "omni on" without a secret does not start
--- config
omni on;
location = /t { return 200; }
--- must_die
qr/\[emerg\] "omni on" requires at least one "omni_secret" in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 22: a short secret is refused, naming the directive
--- http_config
omni_secret "too-short";
--- config
location = /t { return 200; }
--- must_die
qr/invalid "omni_secret": secret is 9 base64 characters, 6 bytes decoded; at least 32 random bytes are required \(openssl rand -base64 48\) in .*nginx\.conf:\d+/

=== TEST 23: the documented example secret is refused
--- http_config
omni_secret "CHANGE-ME-this-is-the-documented-example-secret";
--- config
location = /t { return 200; }
--- must_die
secret is the example value printed in the documentation

=== TEST 24: a secret of one repeated character is refused
--- http_config
omni_secret "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
--- config
location = /t { return 200; }
--- must_die
secret repeats a single character

=== TEST 25: omni_identify without a secret does not start
--- config
location = /id { omni_identify; }
--- must_die
qr/\[emerg\] "omni_identify" directive requires "omni_secret" in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 26: invalid omni_cookie parameters
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
--- config
omni_cookie omni max_age=forever;
--- must_die
invalid parameter "max_age=forever"

=== TEST 27: samesite=none without secure is refused
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
--- config
omni_cookie omni samesite=none;
--- must_die
"samesite=none" requires "secure"

=== TEST 28: an invalid cookie name and a header-splitting domain are refused
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
--- config
omni_cookie "bad name";
--- must_die
invalid cookie name "bad name"

=== TEST 29: a domain with a separator is refused
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
--- config
omni_cookie omni "domain=a.com; Secure";
--- must_die
invalid parameter "domain=a.com; Secure"

=== TEST 30: an invalid token header name is refused
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
--- config
omni_token_header "X Bad";
--- must_die
invalid header name "X Bad"

=== TEST 31: omni_channel takes only known channels
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
--- config
omni_channel fax;
--- must_die
invalid value "fax"
