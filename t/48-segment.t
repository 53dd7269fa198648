# Segment's libraries, unchanged, against a real nginx (docs/events.md,
# "Segment's libraries"): the real @segment/analytics-node (from npm, into
# build/npm by scripts/install-deps.sh; skipped, saying why, without it)
# with its Basic auth and {batch, writeKey, sentAt} envelope; and the
# exact bodies of analytics-go ({messageId, sentAt, batch, context}), the
# older analytics-node ({batch, timestamp, sentAt}), the HTTP API's
# single-call paths (/v1/track), analytics.js in a browser (its own
# UUID anonymousId next to the omni cookie), and analytics-python,
# analytics-ios and analytics-android with their Basic auth.  The feed keeps the ids as
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

=== TEST 5: replayed bodies of analytics-python, analytics-ios and analytics-android (their envelopes, contexts and timestamps, exactly as they send them), with their Basic auth
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
my @t = gmtime(time - 5);
my $py_ts = sprintf '%04d-%02d-%02dT%02d:%02d:%02d.123456+00:00', $t[5] + 1900, $t[4] + 1, @t[3, 2, 1, 0];
my $z_ts  = sprintf '%04d-%02d-%02dT%02d:%02d:%02d.123Z', $t[5] + 1900, $t[4] + 1, @t[3, 2, 1, 0];
# analytics-python 2.x (analytics/client.py _enqueue, request.py post):
# {"batch": [...], "sentAt": isoformat()} with User-Agent analytics-python/VERSION;
# each message: integrations {}, context.library, a uuid4 messageId, isoformat timestamps
my $py = '{"batch": [{"properties": {"plan": "pro", "revenue": 12.5}, "timestamp": "' . $py_ts . '", "context": {"library": {"name": "analytics-python", "version": "2.3.2"}}, "integrations": {}, "anonymousId": null, "userId": "PY-1", "type": "track", "event": "Plan Upgraded", "messageId": "3bf4c5d6-89a1-4c2b-9d3e-4f5a6b7c8d90"}, {"properties": {"url": "https://shop.example/docs"}, "timestamp": "' . $py_ts . '", "context": {"library": {"name": "analytics-python", "version": "2.3.2"}}, "integrations": {}, "anonymousId": null, "userId": "PY-1", "type": "page", "category": "Docs", "name": "Install", "messageId": "4c05d6e7-9ab2-4d3c-8e4f-506a7b8c9da1"}], "sentAt": "' . $py_ts . '"}';
my $r = post($py, path => '/v1/batch', main::basic(), 'User-Agent' => 'analytics-python/2.3.2');
is($r->{status}, 200, 'analytics-python: 200') or diag $r->{content};
is($r->{json}{accepted}, 2, 'analytics-python: both accepted');
# analytics-ios 4.x (SEGSegmentIntegration: {"batch", "sentAt"}; SEGHTTPClient: Basic writeKey:)
my $ios_anon = 'A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF';
my $ios = '{"batch":[{"type":"screen","name":"Product","properties":{"sku":"TENT-2"},"anonymousId":"' . $ios_anon . '","messageId":"0F1E2D3C-4B5A-4697-8877-665544332211","timestamp":"' . $z_ts . '","integrations":{},"context":{"app":{"name":"Shop","version":"2.4.0","build":"240","namespace":"com.example.shop"},"device":{"id":"6F7E8D9C-0B1A-4233-9455-667788990011","manufacturer":"Apple","model":"iPhone15,2","type":"ios","name":"iPhone"},"library":{"name":"analytics-ios","version":"4.1.8"},"locale":"en-PT","network":{"wifi":true,"cellular":false,"carrier":"unknown"},"os":{"name":"iOS","version":"17.1"},"screen":{"width":393,"height":852},"timezone":"Europe/Lisbon","traits":{"anonymousId":"' . $ios_anon . '"}},"_metadata":{"bundled":[],"unbundled":[]}}],"sentAt":"' . $z_ts . '"}';
$r = post($ios, path => '/v1/batch', main::basic());
is($r->{status}, 200, 'analytics-ios: 200') or diag $r->{content};
# analytics-android 4.x (SegmentIntegration: {"batch":[...],"sentAt":"..."}, "channel":"mobile" on each event)
my $and = '{"batch":[{"channel":"mobile","context":{"app":{"build":"240","name":"Shop","namespace":"com.example.shop","version":"2.4.0"},"device":{"id":"c5f9d3e2a1b04b6f","manufacturer":"Google","model":"Pixel 8","name":"shiba","type":"android"},"library":{"name":"analytics-android","version":"4.11.3"},"locale":"en-PT","network":{"wifi":true,"carrier":"Vodafone","bluetooth":false,"cellular":false},"os":{"name":"Android","version":"14"},"screen":{"density":2.625,"width":1080,"height":2400},"timezone":"Europe/Lisbon","traits":{"anonymousId":"9d8c7b6a-5f4e-4d3c-2b1a-0f9e8d7c6b5a"},"userAgent":"Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/UD1A.230803.041)"},"integrations":{},"messageId":"2a3b4c5d-6e7f-4809-9a1b-2c3d4e5f6a7b","timestamp":"' . $z_ts . '","type":"track","anonymousId":"9d8c7b6a-5f4e-4d3c-2b1a-0f9e8d7c6b5a","event":"Product Added","properties":{"sku":"TENT-2","price":199.0,"quantity":1}}],"sentAt":"' . $z_ts . '"}';
$r = post($and, path => '/v1/batch', main::basic());
is($r->{status}, 200, 'analytics-android: 200') or diag $r->{content};
my $feed = feed();
my ($p1) = @{ main::by_id($feed, messageId => '3bf4c5d6-89a1-4c2b-9d3e-4f5a6b7c8d90') };
is($p1->{userId}, 'PY-1', 'python: the userId');
is($p1->{context}{library}{name}, 'analytics-python', 'python: its library');
is($p1->{properties}{revenue}, 12.5, 'python: its properties');
my ($p2) = @{ main::by_id($feed, messageId => '4c05d6e7-9ab2-4d3c-8e4f-506a7b8c9da1') };
is($p2->{name}, 'Install', 'python page: its name');
is($p2->{category}, 'Docs', 'python page: its category');
my ($i1) = @{ main::by_id($feed, messageId => '0F1E2D3C-4B5A-4697-8877-665544332211') };
is($i1->{anonymousId}, $ios_anon, 'ios: the anonymousId as sent (an uppercase UUID stays one)');
is($i1->{type}, 'screen', 'ios: a screen');
is($i1->{name}, 'Product', 'ios: its name');
is($i1->{context}{device}{model}, 'iPhone15,2', 'ios: the device');
is($i1->{context}{library}{name}, 'analytics-ios', 'ios: the library');
my ($a1) = @{ main::by_id($feed, messageId => '2a3b4c5d-6e7f-4809-9a1b-2c3d4e5f6a7b') };
is($a1->{anonymousId}, '9d8c7b6a-5f4e-4d3c-2b1a-0f9e8d7c6b5a', 'android: the anonymousId as sent');
is($a1->{channel}, 'app', 'android: "channel":"mobile" is the app channel');
is($a1->{context}{os}{name}, 'Android', 'android: its context');
is($a1->{context}{userAgent}, 'Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/UD1A.230803.041)', 'android: its userAgent');
--- no_error_log
[error]
