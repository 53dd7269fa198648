# Identity stitching and cross-channel consistency (docs/events.md):
#   - after a web login, the app with its own token sees the same profile,
#     cart and decision;
#   - a purchase posted as a POS server event stops that product's
#     retargeting pixel on the very next page view of every linked device,
#     and the review request, then the referral, follow;
#   - merging follows the documented rules, is idempotent, and is safe
#     under concurrent requests on two workers.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use OmniCookie;
use OmniEvents;
use JSON::PP ();
use POSIX ();

our $VID  = 'a1a1a1a1000000000000000000000001';
our $DEV  = 'a1a1a1a10000000000000000000000d1';
our $KEY  = 'srv-key-0123456789abcdef0123456789abcdef';
our $NOW  = time;
our $JSON = JSON::PP->new->canonical;

sub cookie { 'omni=' . mint_cookie(TEST_SECRET, $_[0] // $VID) }
sub token  { mint_token(TEST_SECRET, $_[0] // $DEV) }

sub decide {
    my $r = http_get('/omni/decide', 'X-Omni-Token' => token(@_));
    return JSON::PP::decode_json($r->{content});
}

sub import_profiles {
    my $file = "$OmniTest::PREFIX/seed.ndjson";
    open(my $fh, '>', $file) or die "$file: $!";
    print $fh $JSON->encode($_), "\n" for @_;
    close $fh;
    my ($rc, $out, $err) = omnictl('--store', store(), 'stat', '--create');
    die "omnictl stat --create: $err" if $rc;
    ($rc, $out, $err) = omnictl('--store', store(), 'import', $file);
    die "omnictl import: $err" if $rc;
}

run_blocks();

__DATA__

=== TEST 1: after a web login the app, with its own token, sees the same profile, cart and decision
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- user_files
>>> rules/cart.json
{"rules": [{"id": "cart-abandon", "campaign": "cart",
            "when": {"cart": {"non_empty": true, "idle_gte": "1h"}},
            "banner": {"slot": "hero",
                       "html": "<p>Still thinking about the {{cart.top_item.name}}?</p>",
                       "payload": {"type": "cart", "sku": "{{cart.top_item.sku}}"}},
            "pixels": [{"img": "https://ads.example.com/rt?sku={{cart.top_item.sku}}"}]}]}
>>> html/index.html
<html><body><!--omni:slot hero--></body></html>
--- config
location = /up/login { add_header X-Omni-Event '{"type":"identify","userId":"C-9"}'; return 200 "in\n"; }
location = /login { omni on; omni_upstream_events on; proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/up/login; }
location = /api/login { omni on; omni_upstream_events on; proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/up/login; }
location = /api/home { omni on; return 200 "{}\n"; }
location = /omni/events { omni on; omni_events; }
location = /omni/decide { omni_decide; }
location / { omni on; }
--- request
GET /api/home
--- more_headers eval
"X-Omni-Token: " . main::token()
--- check
ok(wait_for(sub { main::profile("device:$main::DEV") }, 5), 'the app has a profile of its own');
my $r = main::post({ type => 'track', event => 'Product Added', timestamp => main::iso($main::NOW - 7200),
                     properties => { sku => 'TENT-2', name => 'Trail Tent', price => 199 } },
                   Cookie => main::cookie());
is($r->{status}, 200, 'web: the cart event') or diag $r->{content};
ok(!main::decide()->{slots}{hero}, 'app before any login: not the web cart');
http_request('POST', '/login', '', headers => { Cookie => main::cookie() });
ok(wait_for(sub { my $p = main::profile('customer:C-9'); $p && $p->{id} eq $main::VID }, 5),
   'web login: the customer is the web profile');
http_request('POST', '/api/login', '', headers => { 'X-Omni-Token' => main::token() });
ok(wait_for(sub { my $p = main::profile("device:$main::DEV"); $p && $p->{id} eq $main::VID }, 5),
   'app login: the device now resolves to the same profile');
ok(!main::profile($main::DEV), 'the device\'s own profile was merged away');
my $d = main::decide();
is($d->{slots}{hero}{rule}, 'cart-abandon', 'the app shows the web cart\'s abandonment offer');
is($d->{slots}{hero}{payload}{sku}, 'TENT-2', 'for the exact item');
is_deeply($d->{pixels}, [ { type => 'img', url => 'https://ads.example.com/rt?sku=TENT-2' } ], 'and retargets it');
$r = http_get('/index.html', Cookie => main::cookie());
like($r->{content}, qr{<p>Still thinking about the Trail Tent\?</p>}, 'the web shows the same offer');
# touches are folded into profiles about once a second (omni_store fold=)
my $p;
ok(wait_for(sub { $p = main::profile($main::VID); $p->{visits} >= 2 }, 5),
   'visits of both devices are summed');
my ($alias) = grep { ($_->{type} // '') eq 'alias' } @{ main::feed() };
ok($alias, 'the merge is in the feed');
is($alias->{previousId}, $main::DEV, 'previousId: the merged-away profile');
is($alias->{profileId}, $main::VID, 'profileId: the kept one');
--- no_error_log
[error]

=== TEST 2: a POS purchase (server event) stops the product's pixel on the very next view of every linked device; review, then referral
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
omni_events_key pos "srv-key-0123456789abcdef0123456789abcdef";
--- user_files
>>> rules/catalog.json
{"catalog": {"SUMMIT-PRO": {"name": "Summit Pro jacket", "url": "/p/summit-pro"}}, "rules": []}
>>> rules/pp.json
{"rules": [
  {"id": "summit-retarget", "skus": ["SUMMIT-PRO"], "suppress": {"purchased": "advertised"},
   "when": {"viewed": {"sku": "SUMMIT-PRO", "within": "30d"}},
   "pixels": [{"img": "https://ads.example.com/rt?sku=SUMMIT-PRO"}]},
  {"id": "review-request", "priority": 70,
   "when": {"purchased": {"within": "60d"}, "not": {"event": {"name": "Product Reviewed", "gte": 1}}},
   "banner": {"slot": "hero", "html": "<p>Review your {{purchased.name|purchase}}</p>",
              "payload": {"type": "review", "sku": "{{purchased.sku}}"}}},
  {"id": "referral", "priority": 80,
   "when": {"purchased": {"within": "180d"}, "event": {"name": "Product Reviewed", "gte": 1}},
   "banner": {"slot": "hero", "html": "<p>Give $20, get $20</p>", "payload": {"type": "referral"}}}
]}
>>> html/index.html
<html><body><!--omni:slot hero--></body></html>
--- config
location = /up/login { add_header X-Omni-Event '{"type":"identify","userId":"C-5"}'; return 200 "in\n"; }
location = /login { omni on; omni_upstream_events on; proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/up/login; }
location = /omni/events { omni on; omni_events; }
location = /omni/decide { omni_decide; }
location / { omni on; }
--- request
POST /login
--- more_headers eval
"Cookie: " . main::cookie()
--- check
ok(wait_for(sub { main::profile('customer:C-5') }, 5), 'web login linked C-5');
http_request('POST', '/login', '', headers => { 'X-Omni-Token' => main::token() });
ok(wait_for(sub { my $p = main::profile("device:$main::DEV"); $p && $p->{id} eq $main::VID }, 5),
   'app login linked the device to the same profile');
my $r = main::post({ type => 'track', event => 'Product Viewed', properties => { sku => 'SUMMIT-PRO', name => 'Summit Pro' } },
                   'X-Omni-Token' => main::token());
is($r->{status}, 200, 'the app viewed SUMMIT-PRO') or diag $r->{content};
like(http_get('/index.html', Cookie => main::cookie())->{content}, qr{rt\?sku=SUMMIT-PRO}, 'web: the retargeting pixel');
is_deeply(main::decide()->{pixels}, [ { type => 'img', url => 'https://ads.example.com/rt?sku=SUMMIT-PRO' } ], 'app: the same pixel');
$r = main::post({ type => 'track', event => 'Order Completed', userId => 'C-5', messageId => 'pos-77',
                  properties => { order_id => 'POS-77', channel => 'pos',
                                  products => [ { sku => 'SUMMIT-PRO', name => 'Summit Pro', price => 349 } ] } },
                Authorization => "Bearer $main::KEY");
is($r->{status}, 200, 'POS purchase: 200 (committed)') or diag $r->{content};
# the very next page view: no polling
my $page = http_get('/index.html', Cookie => main::cookie())->{content};
unlike($page, qr{SUMMIT-PRO"}, 'web, next view: the pixel is gone');
like($page, qr{<p>Review your Summit Pro jacket</p>}, 'web, next view: the review request');
my $d = main::decide();
is_deeply($d->{pixels}, [], 'app, next decision: the pixel is gone too');
is($d->{slots}{hero}{payload}{type}, 'review', 'app: the review request');
is(main::profile($main::VID)->{purchases}[0]{channel}, 'pos', 'bought in the store');
$r = main::post({ type => 'track', event => 'Product Reviewed', properties => { sku => 'SUMMIT-PRO', rating => 5 } },
                'X-Omni-Token' => main::token());
is($r->{status}, 200, 'the app posts the review');
like(http_get('/index.html', Cookie => main::cookie())->{content}, qr{Give \$20, get \$20}, 'web: the referral offer');
--- no_error_log
[error]

=== TEST 3: merge rules (docs/events.md), idempotent, and safe under concurrent requests on two workers
--- workers: 2
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=32m;
omni_events_key crm "srv-key-0123456789abcdef0123456789abcdef";
--- config
location = /omni/events { omni_events; }
--- init
my $now = $main::NOW;
main::import_profiles(
  { id => 'aaaa0000000000000000000000000001', created => $now - 10 * 86400, updated => $now - 3 * 3600,
    visits => 3, segments => ['s-a', 'both'], attributes => { first_name => 'Ana', city => 'Porto' },
    aliases => [ { type => 'cookie', id => 'aaaa00000000000000000000000000c1' } ],
    cart => { updated_at => $now - 3 * 3600, items => [ { sku => 'OLD', qty => 1, price => 5 } ] },
    orders => 1, revenue => 10,
    purchases => [ { sku => 'P1', order_id => 'o-1', channel => 'web', time => $now - 5 * 86400, price => 10, qty => 1 } ] },
  { id => 'bbbb0000000000000000000000000002', created => $now - 2 * 86400, updated => $now - 3600,
    visits => 2, segments => ['s-b', 'both'], attributes => { city => 'Lisbon' },
    aliases => [ { type => 'device', id => 'bbbb00000000000000000000000000d2' }, { type => 'customer', id => 'C-3' },
                 { type => 'email', id => 'e3@example.com' } ],
    cart => { updated_at => $now - 3600, items => [ { sku => 'NEW', qty => 2, price => 7 } ] },
    orders => 2, revenue => 20,
    purchases => [ { sku => 'P2', order_id => 'o-2', channel => 'pos', time => $now - 4 * 86400, price => 20, qty => 1 } ] },
  { id => 'ffff0000000000000000000000000006', created => $now - 86400, visits => 1,
    aliases => [ { type => 'customer', id => 'C-F' }, { type => 'cookie', id => 'ffff00000000000000000000000000c6' } ] },
  map { { id => sprintf('cccc%028x', $_), created => $now - 86400, visits => 1,
          aliases => [ { type => 'cookie', id => sprintf('cccc%026xc1', $_) } ] } } 1 .. 12,
);
--- request
GET /omni/events
--- error_code: 405
--- check
my %auth = (Authorization => "Bearer $main::KEY");
my $r = main::post({ type => 'identify', userId => 'C-3', anonymousId => 'aaaa00000000000000000000000000c1',
                     messageId => 'link-1' }, %auth);
is($r->{status}, 200, 'identify links the cookie to customer C-3') or diag $r->{content};
is($r->{json}{profile}, 'bbbb0000000000000000000000000002', 'kept: the profile holding the customer id');
ok(!main::profile('aaaa0000000000000000000000000001'), 'the other profile is gone');
my $p = main::profile('customer:C-3');
is_deeply([ sort @{ $p->{segments} } ], [qw(both s-a s-b)], 'segments: union');
is($p->{visits}, 5, 'visits: summed');
is($p->{orders}, 3, 'orders: summed');
is($p->{revenue}, 30, 'revenue: summed');
is($p->{created}, $main::NOW - 10 * 86400, 'created: the earliest');
is_deeply([ map { $_->{sku} } @{ $p->{cart}{items} } ], ['NEW'], 'cart: the newest wins');
is_deeply([ sort map { $_->{order_id} } @{ $p->{purchases} } ], [qw(o-1 o-2)], 'purchases: union');
is($p->{attributes}{city}, 'Lisbon', 'attributes: the later-updated profile wins a conflict');
is($p->{attributes}{first_name}, 'Ana', 'attributes: the rest are kept');
is(main::profile('cookie:aaaa00000000000000000000000000c1')->{id}, $p->{id}, 'the cookie alias is re-pointed');
is(main::profile('device:bbbb00000000000000000000000000d2')->{id}, $p->{id}, 'the device alias stays');
# idempotent: the same link again, under a new messageId, changes nothing
my $before = $main::JSON->encode(main::profile('customer:C-3'));
$r = main::post({ type => 'identify', userId => 'C-3', anonymousId => 'aaaa00000000000000000000000000c1',
                  messageId => 'link-2' }, %auth);
is($r->{json}{status}, 'accepted', 'the same link again: accepted');
my $after = main::profile('customer:C-3');
is($after->{visits}, 5, 'no double counting');
is(scalar @{ $after->{aliases} }, scalar @{ JSON::PP::decode_json($before)->{aliases} }, 'same aliases');
# concurrent: 12 visitors linked to C-3 at once, each twice, over 2 workers
my @pids;
for my $i (1 .. 12) {
    for my $rep (1 .. 2) {
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            my $res = main::post({ type => 'identify', userId => 'C-3',
                                   anonymousId => sprintf('cccc%026xc1', $i) }, %auth);
            POSIX::_exit($res->{status} == 200 ? 0 : 1);
        }
        push @pids, $pid;
    }
}
my $ok = 0;
for (@pids) { waitpid($_, 0); $ok++ if $? == 0 }
is($ok, 24, 'all 24 concurrent identifies answered 200');
$p = main::profile('customer:C-3');
is($p->{visits}, 5 + 12, 'every visitor merged exactly once (visits 5 + 12)');
is(scalar(grep { main::profile(sprintf('cccc%028x', $_)) } 1 .. 12), 0, 'no visitor profile left');
is(scalar(grep { main::profile('cookie:' . sprintf('cccc%026xc1', $_))->{id} eq $p->{id} } 1 .. 12), 12,
   'every cookie resolves to the customer');
my $merges = grep { ($_->{type} // '') eq 'alias' } @{ main::feed() };
is($merges, 13, 'one merge record per merged profile');
# another customer's email is never taken: customer C-F's cookie with C-3's email
$r = main::post({ type => 'identify', anonymousId => 'ffff00000000000000000000000000c6',
                  traits => { email => 'E3@example.com' } }, %auth);
is($r->{status}, 200, 'an identify naming two customers: 200');
is($r->{json}{profile}, 'ffff0000000000000000000000000006', 'applied to the cookie\'s customer');
is(main::profile('email:e3@example.com')->{id}, 'bbbb0000000000000000000000000002', 'the email stays with C-3');
ok(main::profile('customer:C-F'), 'C-F is not merged into C-3');
isnt(main::profile('customer:C-F')->{id}, main::profile('customer:C-3')->{id}, 'two customers, two profiles');
--- no_error_log
[error]
