# App decisions count, in the documented setup: a location that serves
# omni_decide (or uses $omni_decision) without "omni on" records what it
# delivered, so app impressions count toward frequency caps and app
# requests are in the feed (docs/app-integration.md).

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use OmniCookie;
use JSON::PP ();

our $DEV = 'a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a1';

sub token { mint_token(TEST_SECRET, $_[0] // $DEV) }

sub feed {
    my ($rc, $out, $err) = omnictl('--store', "$OmniTest::PREFIX/store", 'tail',
                                   '--after', '0', '--limit', '100000');
    die "tail: $err" if $rc;
    return [ map { JSON::PP::decode_json($_) } split /\n/, $out ];
}

run_blocks();

__DATA__

=== TEST 1: the docs' own configuration: a cap of 3 a day holds for an app asking /omni/decide five times, and each answer is in the feed
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- user_files
>>> rules/cap.json
{"id": "app-bar", "campaign": "free-shipping", "cap": {"max": 3, "per": "1d"},
 "when": {"channel": "app"},
 "banner": {"slot": "topbar", "html": "<b>FREE</b>", "payload": {"type": "bar"}}}
--- config
location = /omni/decide { omni_decide; }
--- request
GET /omni/decide?warm
--- check
my @shown;
for my $i (1 .. 5) {
    my $r = http_get('/omni/decide', 'X-Omni-Token' => main::token());
    my $d = JSON::PP::decode_json($r->{content});
    push @shown, $d->{slots}{topbar} ? 1 : 0;
}
is_deeply(\@shown, [1, 1, 1, 0, 0], 'shown three times, then capped');
my @app;
ok(wait_for(sub {
    @app = grep { ($_->{anonymousId} // '') eq $main::DEV } @{ main::feed() };
    @app == 5 }, 5), 'the five app requests are in the feed') or diag(scalar @app);
is($app[0]{channel}, 'app', 'on the app channel');
is(scalar(grep { grep { $_ eq 'free-shipping' } @{ $_->{context}{campaigns} // [] } } @app),
   3, 'three of them with the impression');
--- no_error_log
[error]

=== TEST 2: $omni_decision handed to an upstream from a location without "omni on" counts too
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- user_files
>>> rules/cap.json
{"id": "app-bar", "campaign": "free-shipping", "cap": {"max": 2, "per": "1d"},
 "banner": {"slot": "topbar", "html": "<b>FREE</b>", "payload": {"type": "bar"}}}
--- config
location = /up { return 200 "$http_x_decision\n"; }
location = /api/home {
    proxy_set_header X-Decision $omni_decision;
    proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/up;
}
--- request
GET /up
--- check
my @shown;
for my $i (1 .. 4) {
    my $r = http_get('/api/home', 'X-Omni-Token' => main::token('a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a2'));
    push @shown, $r->{content} =~ /topbar/ ? 1 : 0;
}
is_deeply(\@shown, [1, 1, 0, 0], 'shown twice, then capped');
--- no_error_log
[error]

=== TEST 3: a location that neither decides nor is "omni on" records nothing
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location = /plain { return 200 "$omni_visitor\n"; }
location = /on { omni on; return 200 "on\n"; }
--- request
GET /plain
--- check
http_get('/plain', 'X-Omni-Token' => main::token());
http_get('/on', 'X-Omni-Token' => main::token());
my @tp;
ok(wait_for(sub { @tp = @{ main::feed() }; @tp >= 1 }, 5), 'the omni-on request is recorded');
is(scalar(grep { ($_->{properties}{path} // '') eq '/plain' } @tp), 0, '/plain is not');
--- no_error_log
[error]

=== TEST 4: /omni/decide without any identity answers the empty decision with every documented field
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location = /omni/decide { omni_decide; }
location = /app/decide { omni_channel app; omni_decide; }
--- request
GET /omni/decide
--- response_body
{"channel":"web","holdout":false,"blocked":null,"slots":{},"pixels":[],"headers":{},"shown":[]}
--- check
my $r = http_get('/app/decide');
is($r->{content}, qq'{"channel":"app","holdout":false,"blocked":null,"slots":{},"pixels":[],"headers":{},"shown":[]}\n',
   'the location\'s channel');
--- no_error_log
[error]
