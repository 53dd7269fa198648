# Segment's libraries, unchanged, against a real nginx (docs/events.md,
# "Segment's libraries"): the real @segment/analytics-node (from npm, into
# build/npm by scripts/install-deps.sh; skipped, saying why, without it)
# with its Basic auth and {batch, writeKey, sentAt} envelope; and the
# exact bodies of analytics-go ({messageId, sentAt, batch, context}), the
# older analytics-node ({batch, timestamp, sentAt}), the HTTP API's
# single-call paths (/v1/track) and analytics.js in a browser (its own
# UUID anonymousId next to the omni cookie).  The feed keeps the ids as
# sent, the sender's context and the page name and category.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use OmniCookie;
use OmniEvents;
use MIME::Base64 qw(encode_base64);

our $KEY  = 'wk-0123456789abcdef0123456789abcdef';
our $UUID = '0d3a1f2e-7c55-4f7b-9a8e-3b1c2d4e5f60';
our $VID  = '5e900000000000000000000000000001';
our $VID2 = '5e900000000000000000000000000002';
our $NODE_DIR = repo_root() . '/build/npm';

sub basic { (Authorization => 'Basic ' . encode_base64("$KEY:", '')) }
sub cookie { 'omni=' . mint_cookie(TEST_SECRET, $_[0] // $VID) }
sub by_id {
    my ($feed, $k, $v) = @_;
    return [ grep { defined $_->{$k} && $_->{$k} eq $v } @$feed ];
}

sub have_node {
    return 0 unless -f "$NODE_DIR/node_modules/\@segment/analytics-node/package.json";
    my ($rc) = run_command([ 'node', '--version' ]);
    return $rc == 0;
}

run_blocks();

__DATA__

=== TEST 1: the real @segment/analytics-node: identify, track, page, alias, group and an order arrive whole; the feed keeps the UUID, the library and the page name
--- skip_if: !main::have_node()
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_events_key segment "wk-0123456789abcdef0123456789abcdef";
--- config
location ~ ^/v1/(batch|track|identify|page|screen|alias|group)$ {
    omni_events;
}
--- request
GET /v1/batch
--- error_code: 405
--- check
my ($rc, $out, $err) = run_command(
    [ 'node', "" . repo_root() . "/t/segment/send.js",
      "http://127.0.0.1:$OmniTest::PORT", $main::KEY, $main::UUID ],
    env => { NODE_PATH => "$main::NODE_DIR/node_modules" }, timeout => 30);
is($rc, 0, 'the library flushed without an error') or diag "$out $err";
my $p = profile('customer:SEG-1');
ok($p, 'the customer exists');
my %al = map { ("$_->{type}:$_->{id}" => 1) } @{ $p->{aliases} };
ok($al{"anonymous:$main::UUID"}, 'alias: the UUID is the customer\'s')
    or diag explain $p->{aliases};
is($p->{orders}, 1, 'the order counted');
is($p->{attributes}{group_id}, 'acme', 'group: the account id');
is($p->{attributes}{first_name}, 'Sega', 'identify: the trait');
is(scalar @{ $p->{cart}{items} // [] }, 0, 'the bought sku left the cart');
my $feed = feed();
my ($page) = @{ main::by_id($feed, type => 'page') };
is($page->{anonymousId}, $main::UUID, 'feed: the UUID as sent');
is($page->{name}, 'Home', 'feed: the page name');
is($page->{category}, 'Shop', 'feed: the page category');
is($page->{context}{library}{name}, '@segment/analytics-node',
   'feed: the sender\'s library');
is($page->{context}{source}, 'server', 'feed: our source next to it');
like($page->{messageId}, qr/^node-next-/, 'feed: the library\'s messageId');
my ($alias) = @{ main::by_id($feed, event => 'Alias') };
is($alias->{previousId}, $main::UUID, 'feed: alias previousId');
my ($group) = @{ main::by_id($feed, type => 'group') };
is($group->{groupId}, 'acme', 'feed: groupId');
--- no_error_log
[error]

=== TEST 2: replayed bodies: analytics-go's envelope, the older analytics-node's, a /v1/track single call (no type), Basic auth
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_events_key segment "wk-0123456789abcdef0123456789abcdef";
--- config
location ~ ^/v1/(batch|track|identify|page|screen|alias|group)$ {
    omni_events;
}
--- request
GET /v1/batch
--- error_code: 405
--- check
my $now = iso(time - 5);
# analytics-go v3 (analytics.go: batch{MessageId, SentAt, Messages, Context})
my $go = '{"messageId":"b1e7a2c4-go","sentAt":"' . $now . '","batch":[{"type":"track","messageId":"go-1","anonymousId":"go-anon-1","event":"Signed Up","timestamp":"' . $now . '","properties":{"plan":"pro"},"integrations":{"All":true}}],"context":{"library":{"name":"analytics-go","version":"3.0.0"}}}';
my $r = post($go, path => '/v1/batch', main::basic());
is($r->{status}, 200, 'analytics-go: 200') or diag $r->{content};
is($r->{json}{accepted}, 1, 'analytics-go: accepted');
# analytics-node 6 (the older library): {batch, timestamp, sentAt}
my $old = '{"batch":[{"type":"identify","userId":"OLD-1","traits":{"first_name":"Olga"},"messageId":"old-1","timestamp":"' . $now . '","context":{"library":{"name":"analytics-node","version":"6.2.0"}},"_metadata":{"nodeVersion":"20.0.0"}}],"timestamp":"' . $now . '","sentAt":"' . $now . '"}';
$r = post($old, path => '/v1/batch', main::basic());
is($r->{status}, 200, 'analytics-node 6: 200') or diag $r->{content};
# the HTTP API: /v1/track names no type
$r = post('{"userId":"OLD-1","event":"Coupon Used","messageId":"one-1"}',
          path => '/v1/track', main::basic());
is($r->{status}, 200, '/v1/track without a type: 200') or diag $r->{content};
my $feed = feed();
my ($go1) = @{ main::by_id($feed, messageId => 'go-1') };
is($go1->{anonymousId}, 'go-anon-1', 'a non-UUID anonymousId kept as sent');
is($go1->{properties}{plan}, 'pro', 'its properties');
my ($one) = @{ main::by_id($feed, messageId => 'one-1') };
is($one->{type}, 'track', '/v1/track: a track');
is($one->{event}, 'Coupon Used', '/v1/track: its event');
is(profile('customer:OLD-1')->{attributes}{first_name}, 'Olga',
   'analytics-node 6: identified');
# a wrong writeKey
$r = post('{"batch":[]}', path => '/v1/batch',
          Authorization => 'Basic ' . encode_base64('nope:', ''));
is($r->{status}, 401, 'a wrong writeKey: 401');
is($r->{json}{reason}, 'invalid server key', 'the reason');
--- no_error_log
[error]

=== TEST 3: analytics.js in a browser: its own UUID becomes an alias of the cookie's visitor, and never takes over another visitor's profile
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_events_key segment "wk-0123456789abcdef0123456789abcdef";
--- config
location = /omni/events { omni on; omni_events; }
--- request
GET /omni/events
--- error_code: 405
--- check
# analytics.js 2.x (what a page's analytics.page() sends, as text/plain)
my $body = '{"timestamp":"' . iso(time - 2) . '","integrations":{},"type":"page","properties":{"path":"/","url":"http://127.0.0.1/","title":"Shop"},"name":"Home","context":{"page":{"path":"/","url":"http://127.0.0.1/","title":"Shop"},"userAgent":"Mozilla/5.0","locale":"en-US","library":{"name":"analytics.js","version":"next-1.70.0"}},"messageId":"ajs-next-1","anonymousId":"' . $main::UUID . '","writeKey":"browser-key","sentAt":"' . iso(time) . '","_metadata":{"bundled":[],"unbundled":[],"bundledIds":[]}}';
my $r = post($body, 'Content-Type' => 'text/plain', Cookie => main::cookie());
is($r->{status}, 200, 'analytics.js page: 200') or diag $r->{content};
is($r->{json}{profile}, $main::VID, 'the cookie\'s visitor');
my $p = profile($main::VID);
ok((grep { $_->{type} eq 'anonymous' && $_->{id} eq $main::UUID } @{ $p->{aliases} }),
   'the UUID is an alias of the visitor');
# another browser sends the same UUID: its own profile, the alias stays
$body =~ s/ajs-next-1/ajs-next-2/;
$r = post($body, 'Content-Type' => 'text/plain', Cookie => main::cookie($main::VID2));
is($r->{status}, 200, 'another visitor with the UUID: 200');
is($r->{json}{profile}, $main::VID2, 'it speaks for itself');
is(profile("anonymous:$main::UUID")->{id}, $main::VID,
   'the UUID still names the first visitor');
# a server joining on Segment's id reaches the first visitor
$r = post({ type => 'track', event => 'Email Clicked', anonymousId => $main::UUID,
            messageId => 'srv-join-1' },
          Authorization => "Bearer $main::KEY");
is($r->{json}{profile}, $main::VID, 'a server naming the UUID: the visitor');
my ($rec) = @{ main::by_id(feed(), messageId => 'ajs-next-1') };
is($rec->{anonymousId}, $main::UUID, 'feed: the UUID as sent');
is($rec->{context}{page}{title}, 'Shop', 'feed: context.page');
is($rec->{context}{userAgent}, 'Mozilla/5.0', 'feed: context.userAgent');
# our own id form naming another visitor is still a spoof
$r = post({ type => 'page', anonymousId => $main::VID2 }, Cookie => main::cookie());
is($r->{status}, 403, 'another visitor\'s omni id: 403');
# alias and group from a browser need a key
$r = post({ type => 'group', groupId => 'acme' }, Cookie => main::cookie());
is($r->{status}, 403, 'group from a browser: 403');
--- no_error_log
[error]
