# Bad input at the HTTP endpoints, from the bad-input probe (issue 9,
# part 5): every error is JSON that names its field, bytes that are not
# UTF-8 included; an empty body; media types matched exactly; explain is
# an admin capability; a signed request cannot be replayed; nginx's own
# 413 and 400 on the events endpoint are JSON like the endpoint's others.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use OmniCookie;
use OmniEvents;
use Digest::SHA qw(hmac_sha256_hex);
use JSON::PP ();

our $VID = 'b0b00000000000000000000000000001';
our $KEY = 'srv-key-0123456789abcdef0123456789abcdef';

sub cookie { 'omni=' . mint_cookie(TEST_SECRET, $_[0] // $VID) }

# A raw POST of exact bytes; the parsed answer with its JSON.
sub raw_post {
    my ($body, %h) = @_;
    my $path = delete $h{path} // '/omni/events';
    my $hdr = join '', map { "$_: $h{$_}\r\n" } sort keys %h;
    my $raw = raw_request($OmniTest::PORT,
        "POST $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\n$hdr"
        . "Content-Length: " . length($body) . "\r\n\r\n$body");
    my $r = parse_raw_response($raw);
    $r->{json} = eval { JSON::PP::decode_json($r->{content}) };
    return $r;
}

sub is_json_error {
    my ($r, $status, $field, $label) = @_;
    is($r->{status}, $status, "$label: $status");
    like($r->{headers}{'content-type'} // '', qr{^application/json}, "$label: JSON");
    ok($r->{json}, "$label: a JSON body") or diag $r->{content};
    is($r->{json} && $r->{json}{field}, $field, "$label: names $field") if defined $field;
}

run_blocks();

__DATA__

=== TEST 1: bytes that are not UTF-8 in what an error would quote: 400 JSON, the bad bytes replaced
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location = /omni/events { omni on; omni_events; }
--- request
GET /omni/events
--- error_code: 405
--- check
my $bs = chr(92);     # a backslash
my @cases = (
    [ '{"type":"' . $bs . "\xc3\xa9" . '"}', 'an escape of a two-byte character' ],
    [ '{"type":"' . $bs . "\xf0\x9f\x8c\x80" . '"}', 'JSONTestSuite n_string_escaped_emoji' ],
    [ '{"type":"track","event":"x","' . ("\xc3\xa9" x 100) . '":1}', 'an unknown key of 100 x e-acute' ],
    [ '{"type":"track","event":"' . "\xff\xfe" . '"}', 'raw bytes that are not UTF-8' ],
);
for my $c (@cases) {
    my $r = main::raw_post($c->[0], Cookie => main::cookie());
    main::is_json_error($r, 400, undef, $c->[1]);
    ok(utf8::decode(my $copy = $r->{content}), "$c->[1]: the answer is UTF-8");
    ok($r->{json} && $r->{json}{reason}, "$c->[1]: a reason") or diag $r->{content};
}
--- no_error_log
[error]

=== TEST 2: an empty body (Content-Length: 0) is a 400 JSON naming the body
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location = /omni/events { omni on; omni_events; }
--- request
GET /omni/events
--- error_code: 405
--- check
my $r = main::raw_post('', Cookie => main::cookie());
main::is_json_error($r, 400, undef, 'empty body');
--- no_error_log
[error]

=== TEST 3: Content-Type is the exact media type, parameters allowed
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location = /omni/events { omni on; omni_events; }
--- request
GET /omni/events
--- error_code: 405
--- check
my $body = '{"type":"track","event":"Thing Done","messageId":"ct-%d"}';
my $i = 0;
for my $ct ('application/jsonx', 'application/json-seq', 'text/plainx',
            'application/json5', 'text/html', 'application/x-www-form-urlencoded') {
    my $r = OmniEvents::post(sprintf($body, ++$i), 'Content-Type' => $ct, Cookie => main::cookie());
    is($r->{status}, 415, "$ct: 415");
    is($r->{json} && $r->{json}{field}, 'Content-Type', "$ct: names Content-Type");
}
for my $ct ('application/json', 'Application/JSON', 'application/json; charset=utf-8',
            'application/json;charset=UTF-8', 'text/plain;charset=UTF-8', 'text/plain') {
    my $r = OmniEvents::post(sprintf($body, ++$i), 'Content-Type' => $ct, Cookie => main::cookie());
    is($r->{status}, 200, "$ct: accepted") or diag $r->{content};
}
--- no_error_log
[error]

=== TEST 4: ?explain=1 is refused on omni_decide unless explain=on; the admin endpoint explains
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
--- user_files
>>> rules/r.json
{"id": "vip", "when": {"attr": {"key": "tier", "eq": "gold"}}, "banner": {"slot": "hero", "html": "<b>vip</b>"}}
--- config
location = /omni/decide { omni_decide; }
location = /staging/decide { omni_decide explain=on; }
location = /omni/admin/decide { allow 127.0.0.1; deny all; omni_admin_decide; }
--- request
GET /omni/decide?explain=1
--- more_headers eval
"Cookie: " . main::cookie()
--- error_code: 403
--- response_headers_like
Content-Type: ^application/json
--- response_body_like: "field":"explain"
--- check
my $plain = http_get('/omni/decide', Cookie => main::cookie());
is($plain->{status}, 200, 'without explain: 200');
unlike($plain->{content}, qr/explanation|tier/, 'no explanation, no conditions');
my $st = http_get('/staging/decide?explain=1', Cookie => main::cookie());
is($st->{status}, 200, 'explain=on: 200');
like($st->{content}, qr/"explanation"/, 'explain=on: explained');
my $adm = http_get("/omni/admin/decide?profile=$main::VID&explain=1");
like($adm->{content}, qr/"explanation":\[[^\]]*vip/, 'the admin endpoint explains');
--- no_error_log
[error]

=== TEST 5: omni_decide with an unknown parameter fails nginx -t
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
--- config
location = /omni/decide { omni_decide explain=yes; }
--- must_die
invalid parameter "explain=yes" (explain=on or explain=off)

=== TEST 6: a signed request needs a messageId in every event, so a replay is a duplicate
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_events_key main "srv-key-0123456789abcdef0123456789abcdef";
--- config
location = /omni/events { omni_events; }
--- request
GET /omni/events
--- error_code: 405
--- check
my $sign = sub { my ($body) = @_; my $t = time;
                 ('X-Omni-Signature' => "t=$t,v1=" . hmac_sha256_hex("$t.$body", $main::KEY)) };
my $body = '{"type":"track","event":"Email Opened","userId":"C-1"}';
my $r = OmniEvents::post($body, $sign->($body));
is($r->{status}, 400, 'no messageId: 400') or diag $r->{content};
is($r->{json}{field}, 'messageId', 'names messageId');
like($r->{json}{reason}, qr/signed/, 'says why');
$body = '{"batch":[{"type":"track","event":"Email Opened","userId":"C-1","messageId":"s-1"},'
      . '{"type":"track","event":"Email Opened","userId":"C-1"}]}';
$r = OmniEvents::post($body, $sign->($body));
is($r->{json}{results}[0]{status}, 'accepted', 'a batch keeps its good event') or diag $r->{content};
is($r->{json}{results}[1]{field}, 'batch[1].messageId', 'and names the missing messageId');
$r = OmniEvents::post($body, $sign->($body));
is($r->{json}{results}[0]{status}, 'duplicate', 'the replay is a duplicate');
# a bearer key may still leave messageId out (the docs' curl examples)
$r = OmniEvents::post('{"type":"track","event":"Email Opened","userId":"C-1"}',
                      Authorization => "Bearer $main::KEY");
is($r->{status}, 200, 'bearer without messageId: 200') or diag $r->{content};
--- no_error_log
[error]

=== TEST 7: nginx's own 413 and 400 on the events endpoint are JSON
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location = /omni/events { omni on; omni_events max_body=1m; client_max_body_size 2k; }
--- request
GET /omni/events
--- error_code: 405
--- check
my $big = '{"type":"track","event":"x","properties":{"p":"' . ('a' x 4000) . '"}}';
# over client_max_body_size by Content-Length: refused before the handler
my $r = main::raw_post($big, Cookie => main::cookie());
main::is_json_error($r, 413, 'body', 'Content-Length over client_max_body_size');
# the same body chunked: refused while it is read
my $raw = raw_request($OmniTest::PORT,
    "POST /omni/events HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    . "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    . sprintf("%x\r\n%s\r\n0\r\n\r\n", length $big, $big));
$r = parse_raw_response($raw);
$r->{json} = eval { JSON::PP::decode_json($r->{content}) };
main::is_json_error($r, 413, 'body', 'a chunked body over client_max_body_size');
# bad chunking
$raw = raw_request($OmniTest::PORT,
    "POST /omni/events HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    . "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    . "zz\r\n{}\r\n0\r\n\r\n");
$r = parse_raw_response($raw);
$r->{json} = eval { JSON::PP::decode_json($r->{content}) };
main::is_json_error($r, 400, 'body', 'bad chunked encoding');
--- no_error_log
[alert]
