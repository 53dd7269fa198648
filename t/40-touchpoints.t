# Touchpoints and the feed (docs/feed.md): every request of an "omni on"
# location appends one record through the writer task; the omni_feed
# endpoint and "omnictl tail" serve the same NDJSON lines with a cursor;
# retention expires old cursors with 410 / exit 1; forget erases them.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use OmniCookie;
use JSON::PP ();
use Time::HiRes ();

our $VID = 'feed0000000000000000000000000001';
our $DEV = 'feed00000000000000000000000000d1';

sub cookie { 'omni=' . mint_cookie(TEST_SECRET, $_[0] // $VID) }
sub token  { mint_token(TEST_SECRET, $_[0] // $DEV) }

sub store { "$OmniTest::PREFIX/store" }

# The feed as [lines], or the response when it is not a 200.
sub feed {
    my ($query) = @_;
    my $r = http_get("/omni/feed?$query");
    return $r unless $r->{status} == 200;
    return [ split /(?<=\n)/, $r->{content} ];
}

# Waits until the feed after 0 holds n lines; returns them decoded.
sub wait_records {
    my ($n) = @_;
    my $lines = [];
    wait_for(sub { $lines = feed('after=0&limit=1000'); ref $lines eq 'ARRAY' && @$lines >= $n }, 5);
    return [ map { JSON::PP::decode_json($_) } @$lines ];
}

run_blocks();

__DATA__

=== TEST 1: a page view records one touchpoint: path, referrer, utm_*, campaigns and rules shown; omnictl tail prints the same lines
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- user_files
>>> rules/r.json
{"rules": [{"id": "hello", "campaign": "spring", "when": {"stage": "new"},
            "banner": {"slot": "hero", "html": "<b>hi</b>"}}]}
>>> html/index.html
<html><body><!--omni:slot hero--><p>x</p></body></html>
--- config
location / { omni on; }
location = /omni/feed { omni_feed; }
--- request
GET /index.html?utm_source=news%20letter&utm_medium=email&utm_campaign=sp%22ring&x=1
--- more_headers eval
"Cookie: " . main::cookie() . "\nReferer: https://example.com/a?b=\"c\""
--- response_body_like
<b>hi</b>
--- check
my $recs = main::wait_records(1);
is(scalar @$recs, 1, 'exactly one touchpoint');
my $t = $recs->[0];
is($t->{seq}, 1, 'seq 1');
is($t->{messageId}, 'tp-1', 'messageId');
is($t->{type}, 'page', 'a page view');
is($t->{event}, 'Page Viewed', 'event');
is($t->{channel}, 'web', 'channel web');
is($t->{anonymousId}, $main::VID, 'anonymousId is the visitor');
is($t->{profileId}, $main::VID, 'profileId is the profile');
like($t->{timestamp}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'ISO 8601 UTC timestamp');
is_deeply($t->{properties}, { path => '/index.html',
                              referrer => 'https://example.com/a?b="c"',
                              utm_source => 'news letter', utm_medium => 'email',
                              utm_campaign => 'sp"ring' }, 'properties');
is_deeply($t->{context}{campaigns}, ['spring'], 'campaigns shown');
is_deeply($t->{context}{rules}, ['hello'], 'rules shown');
my $r = http_get('/omni/feed?after=0');
is($r->{headers}{'content-type'}, 'application/x-ndjson', 'NDJSON');
is($r->{headers}{'x-omni-cursor'}, '1', 'X-Omni-Cursor is the last seq');
my ($rc, $out, $err) = omnictl('--store', main::store(), 'tail', '--after', '0');
is($rc, 0, 'omnictl tail exits 0') or diag $err;
is($out, $r->{content}, 'omnictl tail prints the same bytes as the feed');
--- no_error_log
[error]

=== TEST 2: an app request (token) is a screen view on channel app; a second page view follows
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location /api/ { omni on; return 200 "{}"; }
location = /omni/feed { omni_feed; }
--- request
GET /api/home
--- more_headers eval
"X-Omni-Token: " . main::token()
--- check
my $recs = main::wait_records(1);
is(scalar @$recs, 1, 'one touchpoint');
is($recs->[0]{type}, 'screen', 'a screen view');
is($recs->[0]{event}, 'Screen Viewed', 'event');
is($recs->[0]{channel}, 'app', 'channel app');
is($recs->[0]{anonymousId}, $main::DEV, 'anonymousId is the device');
is($recs->[0]{properties}{path}, '/api/home', 'path');
ok(!exists $recs->[0]{properties}{referrer}, 'no referrer');
is_deeply($recs->[0]{context}{campaigns}, [], 'nothing shown');
--- no_error_log
[error]

=== TEST 3: the feed paginates with after/limit; bad parameters are 400 naming the field; deny is 403
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location /p/ { omni on; return 200 "ok\n"; }
location = /omni/feed { omni_feed; }
location = /omni/closed { allow 10.255.255.1; deny all; omni_feed; }
--- request
GET /p/1
--- more_headers eval
"Cookie: " . main::cookie()
--- check
http_get("/p/$_", Cookie => main::cookie()) for 2 .. 5;
my $recs = main::wait_records(5);
is_deeply([ map { $_->{seq} } @$recs ], [1 .. 5], 'five records in order');
my $r = http_get('/omni/feed?after=1&limit=2');
is($r->{status}, 200, 'a page');
is_deeply([ map { JSON::PP::decode_json($_)->{properties}{path} } split /\n/, $r->{content} ],
          ['/p/2', '/p/3'], 'after=1&limit=2: seq 2 and 3');
is($r->{headers}{'x-omni-cursor'}, '3', 'cursor 3');
$r = http_get('/omni/feed?after=3&limit=100');
is(scalar(split /\n/, $r->{content}), 2, 'the rest');
is($r->{headers}{'x-omni-cursor'}, '5', 'cursor 5');
$r = http_get('/omni/feed?after=5');
is($r->{status}, 200, 'caught up: 200');
is($r->{content}, '', 'caught up: empty');
is($r->{headers}{'x-omni-cursor'}, '5', 'caught up: the cursor stays');
for my $bad (['after=x', 'after'], ['after=-1', 'after'], ['limit=0', 'limit'],
             ['limit=10001', 'limit'], ['limit=abc', 'limit']) {
    $r = http_get("/omni/feed?$bad->[0]");
    is($r->{status}, 400, "$bad->[0]: 400");
    is(JSON::PP::decode_json($r->{content})->{field}, $bad->[1], "$bad->[0]: names $bad->[1]");
}
is(http_get('/omni/closed?after=0')->{status}, 403, 'allow/deny protects the endpoint');
--- error_log
access forbidden by rule
--- no_error_log
[crit]
[alert]

=== TEST 4: retention: tp_max prunes the oldest; an old cursor is 410 "cursor expired" and omnictl tail exits 1
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m tp_max=3;
--- config
location /p/ { omni on; return 200 "ok\n"; }
location = /omni/feed { omni_feed; }
--- request
GET /p/1
--- more_headers eval
"Cookie: " . main::cookie()
--- check
for my $i (2 .. 8) {
    http_get("/p/$i", Cookie => main::cookie());
    Time::HiRes::sleep(0.05);
}
my $r;
ok(wait_for(sub { $r = http_get('/omni/feed?after=5'); $r->{headers}{'x-omni-cursor'} eq '8' }, 5),
   'all eight appended');
ok(wait_for(sub { $r = http_get('/omni/feed?after=0'); $r->{status} == 410 }, 5),
   'after=0 fell out of retention: 410');
my $e = JSON::PP::decode_json($r->{content});
is($e->{error}, 'cursor expired', 'cursor expired');
is($e->{first}, 6, 'first available: 6 (three kept)');
is(http_get('/omni/feed?after=5')->{status}, 200, 'after=first-1 is still fine');
my ($rc, $out, $err) = omnictl('--store', main::store(), 'tail', '--after', '2');
is($rc, 1, 'omnictl tail: exit 1');
is($err, "omnictl: tail: cursor expired (first available: 6)\n", 'omnictl tail: the message');
--- no_error_log
[error]

=== TEST 5: omnictl tail -f sees a new touchpoint; forget erases a profile's touchpoints from the feed
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location /p/ { omni on; return 200 "ok\n"; }
location = /omni/feed { omni_feed; }
--- request
GET /p/first
--- more_headers eval
"Cookie: " . main::cookie()
--- check
main::wait_records(1);
my $outf = "$OmniTest::PREFIX/tail.out";
my $pid = fork() // die "fork: $!";
if ($pid == 0) {
    open(STDOUT, '>', $outf) or exit 127;
    exec(OmniTest::omnictl_path(), '--store', main::store(), 'tail', '-f', '--after', '0')
        or exit 127;
}
my $read = sub { open(my $fh, '<', $outf) or return ''; local $/; <$fh> // '' };
ok(wait_for(sub { $read->() =~ m{"/p/first"} }, 5), 'tail -f prints the backlog');
http_get('/p/second', Cookie => main::cookie('feed0000000000000000000000000002'));
ok(wait_for(sub { $read->() =~ m{"/p/second"} }, 5), 'tail -f sees the new touchpoint');
kill 'INT', $pid;
my $gone = wait_for(sub { waitpid($pid, 1) == $pid }, 5);
ok($gone, 'SIGINT ends tail -f');
kill 'KILL', $pid unless $gone;
is(scalar(() = $read->() =~ /\n/g), 2, 'two lines');
# a new visitor's profile is created by the fold (omni_store fold=, 1 s)
ok(wait_for(sub { (omnictl('--store', main::store(), 'get', $main::VID))[0] == 0 }, 5),
   'the profile is folded in');
my ($rc, $out, $err) = omnictl('--store', main::store(), 'forget', $main::VID);
is($rc, 0, 'forget') or diag $err;
is(JSON::PP::decode_json($out)->{touchpoints}, 1, 'one touchpoint forgotten');
my $recs = main::wait_records(1);
is_deeply([ map { $_->{properties}{path} } @$recs ], ['/p/second'], 'only the other profile is left');
--- no_error_log
[error]

=== TEST 6: the country of a geo lookup (a rule asked for it) goes into the touchpoint
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
omni_geoip $TEST_NGINX_PREFIX/geo.mmdb;
--- init
require OmniGeo;
OmniGeo::build_mmdb("$OmniTest::PREFIX/geo.mmdb",
                    { '127.0.0.1/32' => { country => 'PT', city => 'Lisbon' } });
--- user_files
>>> rules/r.json
{"rules": [{"id": "pt", "when": {"geo": {"country": "PT"}},
            "banner": {"slot": "hero", "html": "<b>ola</b>"}}]}
>>> html/index.html
<html><body><!--omni:slot hero--></body></html>
--- config
location / { omni on; }
location = /omni/feed { omni_feed; }
--- request
GET /index.html
--- more_headers eval
"Cookie: " . main::cookie()
--- response_body_like
<b>ola</b>
--- check
my $recs = main::wait_records(1);
is($recs->[0]{context}{country}, 'PT', 'country PT');
is_deeply($recs->[0]{context}{rules}, ['pt'], 'rule pt shown');
--- no_error_log
[error]

=== TEST 7: retention by age: tp_max_age prunes what is older, the cursor before it expires
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m tp_max=0 tp_max_age=1s;
--- config
location /p/ { omni on; return 200 "ok\n"; }
location = /omni/feed { omni_feed; }
--- request
GET /p/old
--- more_headers eval
"Cookie: " . main::cookie()
--- check
main::wait_records(1);
Time::HiRes::sleep(2.2);
http_get('/p/new', Cookie => main::cookie());
my $r;
ok(wait_for(sub { $r = http_get('/omni/feed?after=0'); $r->{status} == 410 }, 5),
   'the old touchpoint aged out: after=0 is 410');
is(JSON::PP::decode_json($r->{content})->{first}, 2, 'first available: 2');
$r = http_get('/omni/feed?after=1');
like($r->{content}, qr{"/p/new"}, 'the new one is served');
is(scalar(() = $r->{content} =~ /\n/g), 1, 'only the new one');
--- no_error_log
[error]
