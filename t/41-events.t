# Event ingest (docs/events.md): the omni_events endpoint over real HTTP.
# Client events (cookie or app token) are low trust and speak for their
# own visitor; server events need a key (bearer or HMAC signature) and
# are refused with 401/403 JSON otherwise.  Every 2xx means committed
# and synced: the store is read right after the answer, without polling.
# Idempotency by messageId and order id; 400s name the field; a batch
# keeps its good events.  Upstream X-Omni-Event headers are consumed and
# stripped.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use OmniCookie;
use OmniEvents;
use Digest::SHA qw(hmac_sha256_hex sha256_hex);
use JSON::PP ();

our $VID  = 'e0e00000000000000000000000000001';
our $VID2 = 'e0e00000000000000000000000000002';
our $DEV  = 'e0e000000000000000000000000000d1';
our $KEY  = 'srv-key-0123456789abcdef0123456789abcdef';
our $KEY2 = 'old-key-fedcba9876543210fedcba9876543210';
our $NOW  = time;
our $JSON = JSON::PP->new->canonical;

sub cookie { 'omni=' . mint_cookie(TEST_SECRET, $_[0] // $VID) }
sub token  { mint_token(TEST_SECRET, $_[0] // $DEV) }

sub server { (Authorization => "Bearer $KEY") }

run_blocks();

__DATA__

=== TEST 1: a browser event (cookie) is durable before its 200: the cart is in the store and the event in the feed
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location = /omni/events { omni on; omni_events; }
--- request
GET /omni/events
--- error_code: 405
--- check
my $r = main::post({ type => 'track', event => 'Product Added', messageId => 'm-1',
                     properties => { sku => 'SKU-1', name => 'Blue "Shoe"', price => 59.5,
                                     quantity => 2, category => 'shoes',
                                     url => 'https://shop.example.com/p/1' } },
                   Cookie => main::cookie());
is($r->{status}, 200, 'answered 200') or diag $r->{content};
is($r->{headers}{'content-type'}, 'application/json', 'JSON');
like($r->{headers}{'cache-control'}, qr/no-store/, 'never cached');
is($r->{json}{ok}, JSON::PP::true, 'ok');
is($r->{json}{status}, 'accepted', 'accepted');
is($r->{json}{messageId}, 'm-1', 'messageId echoed');
is($r->{json}{profile}, $main::VID, 'the visitor\'s profile');
# No polling: a 200 means committed.
my $p = main::profile($main::VID);
ok($p, 'profile exists right after the 200');
is($p->{cart}{items}[0]{sku}, 'SKU-1', 'cart item');
is($p->{cart}{items}[0]{qty}, 2, 'quantity');
is($p->{cart}{items}[0]{name}, 'Blue "Shoe"', 'name');
is($p->{stage}, 'cart', 'journey stage: cart');
my ($ev) = grep { $_->{messageId} eq 'm-1' } @{ main::feed() };
ok($ev, 'the event is in the feed under its own messageId');
is($ev->{type}, 'track', 'type');
is($ev->{event}, 'Product Added', 'event');
is($ev->{anonymousId}, $main::VID, 'anonymousId');
is($ev->{profileId}, $main::VID, 'profileId');
is($ev->{channel}, 'web', 'channel');
is($ev->{properties}{sku}, 'SKU-1', 'properties as sent');
is($ev->{context}{source}, 'client', 'source client');
ok($ev->{seq} > 0, 'a cursor');
my ($rc, $out) = omnictl('--store', main::store(), 'tail', '--after', '0');
my ($line) = grep { /"m-1"/ } split /\n/, $out;
is(scalar(() = $line =~ /"messageId"/g), 1, 'the feed line has one messageId (the event\'s)');
# the same messageId again: a duplicate, nothing changes
$r = main::post({ type => 'track', event => 'Product Added', messageId => 'm-1',
                  properties => { sku => 'SKU-1', quantity => 2 } },
                Cookie => main::cookie());
is($r->{status}, 200, 'duplicate: 200');
is($r->{json}{status}, 'duplicate', 'duplicate');
is(main::profile($main::VID)->{cart}{items}[0]{qty}, 2, 'quantity unchanged');
is(scalar(grep { $_->{messageId} eq 'm-1' } @{ main::feed() }), 1, 'one feed record');
ok(!grep({ ($_->{type} // '') eq 'page' } @{ main::feed() }), 'an events request is not also a page view');
# Product Removed, Product Viewed, Cart Viewed
for my $e ({ event => 'Product Removed', properties => { sku => 'SKU-1', quantity => 1 } },
           { event => 'Product Viewed', properties => { product_id => 'SKU-9', category => 'bags', price => 10 } },
           { event => 'Cart Viewed' }) {
    $r = main::post({ type => 'track', %$e }, Cookie => main::cookie());
    is($r->{status}, 200, "$e->{event}: 200") or diag $r->{content};
}
$p = main::profile($main::VID);
is($p->{cart}{items}[0]{qty}, 1, 'Product Removed took one');
is($p->{views}[-1]{sku}, 'SKU-9', 'Product Viewed (product_id) recorded');
my %ev = map { $_->{name} => $_->{count} } @{ $p->{events} };
is($ev{'Cart Viewed'}, 1, 'Cart Viewed counted');
--- no_error_log
[error]

=== TEST 2: trust: a browser cannot post purchases, email events, customer ids, other visitors or server traits (403 JSON naming the field)
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_events_key main "srv-key-0123456789abcdef0123456789abcdef";
--- config
location = /omni/events { omni on; omni_events; }
--- request
GET /omni/events
--- error_code: 405
--- check
my @cases = (
  [ { type => 'track', event => 'Order Completed', properties => { order_id => 'o1', products => [ { sku => 'X' } ] } }, 'event', qr/needs a server key/ ],
  [ { type => 'track', event => 'Email Clicked' }, 'event', qr/server key/ ],
  [ { type => 'track', event => 'Product Viewed', properties => { sku => 'X', channel => 'pos' } }, 'channel', qr/pos channel/ ],
  [ { type => 'identify', userId => 'C1' }, 'userId', qr/server key/ ],
  [ { type => 'identify', traits => { tier => 'gold' } }, 'traits.tier', qr/server key/ ],
  [ { type => 'identify', traits => { email => 'a@example.com' } }, 'traits.email', qr/server key/ ],
  [ { type => 'track', event => 'Product Viewed', anonymousId => $main::VID2, properties => { sku => 'X' } }, 'anonymousId', qr/requesting visitor/ ],
  [ { type => 'track', event => 'Product Viewed', profileId => $main::VID2, properties => { sku => 'X' } }, 'profileId', qr/server key/ ],
);
for my $c (@cases) {
    my $r = main::post($c->[0], Cookie => main::cookie());
    my $what = $c->[0]{event} // $c->[0]{type};
    is($r->{status}, 403, "$what: 403");
    is($r->{json}{error}, 'forbidden', "$what: forbidden");
    is($r->{json}{field}, $c->[1], "$what: names $c->[1]");
    like($r->{json}{reason}, $c->[2], "$what: the reason");
}
# an app may send its token as a bearer: a client, not a failed server key
my $r0 = main::post({ type => 'track', event => 'Product Viewed', properties => { sku => 'APP-1' } },
                    Authorization => 'Bearer ' . main::token());
is($r0->{status}, 200, 'app token as Authorization: Bearer: a client event') or diag $r0->{content};
is($r0->{json}{profile}, $main::DEV, 'for the device');
$r0 = main::post({ type => 'track', event => 'Order Completed', properties => { order_id => 'x', products => [ { sku => 'X' } ] } },
                 Authorization => 'Bearer ' . main::token());
is($r0->{status}, 403, 'and still only a client: 403 for a purchase');
# a browser may name itself, and set its own name
my $r = main::post({ type => 'identify', anonymousId => $main::VID,
                     traits => { first_name => 'Ana' } }, Cookie => main::cookie());
is($r->{status}, 200, 'own anonymousId and first_name: 200') or diag $r->{content};
is(main::profile($main::VID)->{attributes}{first_name}, 'Ana', 'first_name set');
# no cookie and no token in a location without "omni on": nobody to speak for
$r = main::post({ type => 'track', event => 'Product Viewed', properties => { sku => 'X' } },
                path => '/omni/events-anon');
is($r->{status}, 403, 'no visitor: 403');
is($r->{json}{field}, 'anonymousId', 'no visitor: names anonymousId');
# none of the refused events reached the store
ok(!main::profile($main::VID)->{purchases}, 'no purchase stored');
ok(!grep({ $_->{event} eq 'Order Completed' } @{ main::feed() }), 'no purchase in the feed');
--- config
location = /omni/events { omni on; omni_events; }
location = /omni/events-anon { omni_events; }
--- no_error_log
[error]

=== TEST 3: server keys: bearer and HMAC signature (any configured key, for rotation); a bad key is 401 naming the header
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_events_key current "srv-key-0123456789abcdef0123456789abcdef";
omni_events_key previous "old-key-fedcba9876543210fedcba9876543210";
--- config
location = /omni/events { omni_events; }
location = /omni/events-on { omni on; omni_events; }
--- request
GET /omni/events
--- error_code: 405
--- check
my $order = sub { my ($id) = @_; $main::JSON->encode({ type => 'track', event => 'Order Completed',
    userId => 'C-100', messageId => "msg-$id", timestamp => main::iso($main::NOW - 60),
    properties => { order_id => "ORD-$id", channel => 'pos', total => 120,
                    products => [ { sku => 'SUMMIT-PRO', name => 'Summit Pro', price => 120, quantity => 1 } ] } }) };
my $r = main::post($order->(1), Authorization => "Bearer $main::KEY");
is($r->{status}, 200, 'bearer: 200') or diag $r->{content};
is($r->{json}{status}, 'accepted', 'accepted');
my $p = main::profile('customer:C-100');
ok($p, 'a profile for customer C-100');
is($p->{orders}, 1, 'one order');
is($p->{revenue}, 120, 'revenue');
is($p->{purchases}[0]{channel}, 'pos', 'bought at the store (POS)');
is($p->{stage}, 'customer', 'stage customer');
$r = main::post($order->(2), Authorization => "Bearer $main::KEY2");
is($r->{status}, 200, 'the previous key still verifies');
# HMAC: t=UNIX,v1=hex(HMAC-SHA256(key, "UNIX." . body))
my $body = $order->(3);
my $t = time;
$r = main::post($body, 'X-Omni-Signature' => "t=$t,v1=" . hmac_sha256_hex("$t.$body", $main::KEY));
is($r->{status}, 200, 'signature: 200') or diag $r->{content};
# Segment's libraries: Basic with the writeKey as the user, no password
require MIME::Base64;
$r = main::post($order->(4), Authorization => 'Basic ' . MIME::Base64::encode_base64("$main::KEY:", ''));
is($r->{status}, 200, 'Basic KEY: (a Segment writeKey): 200') or diag $r->{content};
my @bad = (
  [ { Authorization => 'Bearer wrong-key-0123456789abcdef0123456789' }, 'Authorization', qr/invalid server key/ ],
  [ { Authorization => 'Basic dXNlcjpwYXNz' }, 'Authorization', qr/invalid server key/ ],
  [ { Authorization => 'Basic !!!' }, 'Authorization', qr/Basic base64/ ],
  [ { Authorization => 'Digest x' }, 'Authorization', qr/Bearer KEY.*Basic/ ],
  [ { 'X-Omni-Signature' => "t=$t,v1=" . hmac_sha256_hex("$t.$body", 'x' x 40) }, 'X-Omni-Signature', qr/does not verify/ ],
  [ { 'X-Omni-Signature' => "t=$t,v1=" . hmac_sha256_hex("$t.tampered", $main::KEY) }, 'X-Omni-Signature', qr/does not verify/ ],
  [ { 'X-Omni-Signature' => 't=' . ($t - 3600) . ',v1=' . hmac_sha256_hex(($t - 3600) . ".$body", $main::KEY) }, 'X-Omni-Signature', qr/5 minutes/ ],
  [ { 'X-Omni-Signature' => 'garbage' }, 'X-Omni-Signature', qr/expected/ ],
);
for my $b (@bad) {
    $r = main::post($order->(9), %{ $b->[0] });
    is($r->{status}, 401, "$b->[1] ($b->[2]): 401");
    is($r->{json}{error}, 'unauthorized', 'unauthorized');
    is($r->{json}{field}, $b->[1], "names $b->[1]");
    like($r->{json}{reason}, $b->[2], 'the reason');
    like($r->{headers}{'www-authenticate'}, qr/^Bearer/, 'WWW-Authenticate');
}
is(main::profile('customer:C-100')->{orders}, 4, 'refused requests stored nothing');
$r = main::post($order->(20), Authorization => "Bearer $main::KEY", path => '/omni/events-on');
is($r->{status}, 200, 'a server event in an "omni on" location');
ok(!$r->{headers}{'set-cookie'}, 'gets no visitor cookie: a server is not a visitor');
--- error_log
omni: events: Authorization refused: invalid server key
--- no_error_log
[error]

=== TEST 4: idempotency: the same order under a new messageId is a duplicate; a replayed messageId too
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
my $ev = sub { { type => 'track', event => 'Order Completed', userId => 'C-7', messageId => $_[0],
                 properties => { order_id => 5001, revenue => 80,
                                 products => [ { sku => 'A', price => 40, quantity => 2 } ] } } };
my $r = main::post($ev->('a'), main::server());
is($r->{json}{status}, 'accepted', 'first: accepted') or diag $r->{content};
$r = main::post($ev->('b'), main::server());
is($r->{status}, 200, 'same order, new messageId: 200');
is($r->{json}{status}, 'duplicate', 'a duplicate by order id');
$r = main::post($ev->('a'), main::server());
is($r->{json}{status}, 'duplicate', 'a replayed messageId: duplicate');
my $p = main::profile('customer:C-7');
is($p->{orders}, 1, 'one order counted');
is($p->{revenue}, 80, 'revenue counted once');
is(scalar @{ $p->{purchases} }, 1, 'one purchase line');
is($p->{purchases}[0]{order_id}, '5001', 'numeric order id kept as text');
is(scalar(grep { ($_->{event} // '') eq 'Order Completed' } @{ main::feed() }), 1, 'one feed record');
--- no_error_log
[error]

=== TEST 5: bad input: 400 JSON naming the field; 413, 415 and 405 for the request itself
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_events_key main "srv-key-0123456789abcdef0123456789abcdef";
--- config
location = /omni/events { omni on; omni_events max_body=4k; }
--- request
GET /omni/events
--- error_code: 405
--- response_headers
Allow: POST
--- check
my $deep = { type => 'track', event => 'X', properties => {} };
my $n = $deep->{properties};
$n = $n->{a} = {} for 1 .. 10;
my @cases = (
  [ '{"type": "track", ', 'body', qr/invalid JSON at line 1/ ],
  [ '{"type":"track","type":"page"}', 'body', qr/duplicate/ ],
  [ '[]', 'batch', qr/1 to 100 events/ ],
  [ '"hello"', 'body', qr/event object or a batch/ ],
  [ { event => 'Product Viewed' }, 'type', qr/required/ ],
  [ { type => 'alias' }, 'previousId', qr/required for an alias call/ ],
  [ { type => 'group' }, 'groupId', qr/required for a group call/ ],
  [ { type => 'page', previousId => 'x' }, 'previousId', qr/only alias calls/ ],
  [ { type => 'track' }, 'event', qr/required for a track call/ ],
  [ { type => 'track', event => 'Product Added', properties => { name => 'x' } }, 'properties.sku', qr/required/ ],
  [ { type => 'track', event => 'Product Added', properties => { sku => 'A', quantity => 0 } }, 'properties.quantity', qr/integer from 1/ ],
  [ { type => 'track', event => 'Product Added', properties => { sku => 'A', price => -1 } }, 'properties.price', qr/number from 0/ ],
  [ { type => 'track', event => 'Product Added', properties => { sku => 'A', url => 'javascript:alert(1)' } }, 'properties.url', qr/http/ ],
  [ { type => 'track', event => 'Product Added', properties => { sku => "A\nB" } }, 'properties.sku', qr/control characters/ ],
  [ { type => 'track', event => 'Product Added' }, 'properties', qr/needs properties/ ],
  [ { type => 'track', event => 'Product Viewed', properties => { sku => 'A' }, timestamp => 'yesterday' }, 'timestamp', qr/ISO 8601/ ],
  [ { type => 'track', event => 'Product Viewed', properties => { sku => 'A' }, timestamp => main::iso(time + 3 * 86400) }, 'timestamp', qr/future/ ],
  [ { type => 'track', event => 'Product Viewed', properties => 'x' }, 'properties', qr/expected an object/ ],
  [ { type => 'track', event => 'x' x 65 }, 'event', qr/1 to 64/ ],
  [ { type => 'page', traits => { a => 1 } }, 'traits', qr/only identify/ ],
  [ $deep, 'body', qr/nested deeper than 8/ ],
);
for my $c (@cases) {
    my $r = main::post($c->[0], Cookie => main::cookie());
    my $what = ref $c->[0] ? $main::JSON->encode($c->[0]) : $c->[0];
    is($r->{status}, 400, "400: $what");
    is($r->{json}{error}, 'invalid', 'error invalid');
    is($r->{json}{field}, $c->[1], "names $c->[1]") or diag $r->{content};
    like($r->{json}{reason}, $c->[2], 'the reason');
}
# server-side checks
my $r = main::post({ type => 'track', event => 'Order Completed', userId => 'C1',
                     properties => { products => [ { sku => 'A' } ] } }, main::server());
is($r->{json}{field}, 'properties.order_id', 'purchase without order_id');
$r = main::post({ type => 'track', event => 'Order Completed', userId => 'C1',
                  properties => { order_id => 'o', products => [ { name => 'A' } ] } }, main::server());
is($r->{json}{field}, 'properties.products[0].sku', 'product without sku, by index');
$r = main::post({ type => 'track', event => 'Product Viewed', properties => { sku => 'A' } }, main::server());
is($r->{json}{field}, 'userId', 'a server event must name somebody');
$r = main::post({ type => 'identify', userId => 'C1', traits => { tags => [1] } }, main::server());
is($r->{json}{field}, 'traits.tags', 'arrays in traits');
# the request itself
$r = main::post('{"type":"page","properties":{"x":"' . ('y' x 5000) . '"}}', Cookie => main::cookie());
is($r->{status}, 413, 'larger than max_body: 413');
is($r->{json}{field}, 'Content-Length', '413 names Content-Length');
$r = http_request('POST', '/omni/events', '{}', headers => { 'Content-Type' => 'application/x-www-form-urlencoded' });
is($r->{status}, 415, 'form post: 415');
is(JSON::PP::decode_json($r->{content})->{field}, 'Content-Type', '415 names Content-Type');
$r = http_request('POST', '/omni/events', '{"type":"page"}', headers => { 'Content-Type' => 'text/plain;charset=UTF-8', Cookie => main::cookie() });
is($r->{status}, 200, 'text/plain (sendBeacon) is accepted') or diag $r->{content};
ok(!main::profile($main::VID)->{cart}, 'nothing of the refused events was stored');
--- no_error_log
[error]

=== TEST 6: a batch keeps its good events and says which failed; a batch of only bad ones is 400 or 403
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location = /omni/events { omni on; omni_events; }
--- request
GET /omni/events
--- error_code: 405
--- check
my $r = main::post({ batch => [
    { type => 'track', event => 'Product Added', messageId => 'b1', properties => { sku => 'A' } },
    { type => 'track', event => 'Product Added', messageId => 'b2', properties => { name => 'no sku' } },
    { type => 'track', event => 'Order Completed', messageId => 'b3', properties => { order_id => 1, products => [ { sku => 'A' } ] } },
    { type => 'track', event => 'Product Added', messageId => 'b4', properties => { sku => 'B' } },
  ] }, Cookie => main::cookie());
is($r->{status}, 200, 'partly good batch: 200') or diag $r->{content};
my $j = $r->{json};
is($j->{ok}, JSON::PP::false, 'ok false: something failed');
is($j->{accepted}, 2, 'two accepted');
is($j->{failed}, 2, 'two failed');
is_deeply([ map { $_->{status} } @{ $j->{results} } ], [qw(accepted invalid forbidden accepted)], 'status per event, in order');
is($j->{results}[1]{field}, 'batch[1].properties.sku', 'the bad one is named by index');
is($j->{results}[2]{field}, 'batch[2].event', 'the forbidden one too');
is_deeply([ sort map { $_->{sku} } @{ main::profile($main::VID)->{cart}{items} } ], [qw(A B)], 'the good ones are stored');
# a top-level array is a batch too
$r = main::post([ { type => 'track', event => 'Product Viewed', properties => { sku => 'C' } } ], Cookie => main::cookie());
is($r->{json}{accepted}, 1, 'array body: a batch');
$r = main::post({ batch => [ { type => 'nope' }, { type => 'track' } ] }, Cookie => main::cookie());
is($r->{status}, 400, 'only bad events: 400');
is($r->{json}{failed}, 2, 'both failed');
$r = main::post({ batch => [ { type => 'track', event => 'Email Opened' } ] }, Cookie => main::cookie());
is($r->{status}, 403, 'only forbidden events: 403');
$r = main::post({ batch => [ map { { type => 'page' } } 1 .. 101 ] }, Cookie => main::cookie());
is($r->{status}, 400, '101 events: 400');
is($r->{json}{field}, 'batch', 'names batch');
--- no_error_log
[error]

=== TEST 7: upstream signals: X-Omni-Event is consumed, stripped from the response, and stitches the visitor to the customer
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location = /up/login {
    add_header X-Omni-Event '{"type":"identify","userId":"C-42","traits":{"email":" Ana@Example.com ","first_name":"Ana","tier":"gold"}}';
    add_header X-Omni-Event '{"type":"track","event":"Order Completed","properties":{"order_id":"W-1","products":[{"sku":"K","price":5}]}}';
    add_header X-Other kept;
    return 200 "welcome\n";
}
location = /up/broken {
    add_header X-Omni-Event '{"type":"track"';
    return 200 "ok\n";
}
location / { omni on; omni_upstream_events on; proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/up/; }
--- request
POST /login
--- more_headers eval
"Cookie: " . main::cookie()
--- response_body
welcome
--- response_headers
X-Other: kept
--- check
my $r = http_request('POST', '/login', '', headers => { Cookie => main::cookie() });
ok(!exists $r->{headers}{'x-omni-event'}, 'X-Omni-Event never reaches the client');
my $p;
ok(wait_for(sub { $p = main::profile('customer:C-42'); $p && $p->{orders} }, 5), 'the customer alias and the order arrive');
is($p->{id}, $main::VID, 'the visitor\'s profile became the customer\'s');
is($p->{attributes}{first_name}, 'Ana', 'traits');
is($p->{attributes}{tier}, 'gold', 'a server trait (tier) from the upstream');
my %al = map { ("$_->{type}:$_->{id}" => 1) } @{ $p->{aliases} };
ok($al{'customer:C-42'}, 'customer alias');
ok($al{'email:' . sha256_hex('ana@example.com')}, 'email alias: sha256 of the trimmed, lowercased address');
ok(!grep({ /Ana\@/i } map { JSON::PP::encode_json($_) } @{ main::feed() }), 'the address itself is nowhere in the feed');
my ($ev) = grep { ($_->{event} // '') eq 'Identify' } @{ main::feed() };
is($ev->{context}{source}, 'upstream', 'source upstream');
is($ev->{userId}, 'C-42', 'userId in the feed');
$r = http_get('/broken', Cookie => main::cookie());
is($r->{status}, 200, 'a malformed signal does not break the page');
ok(!exists $r->{headers}{'x-omni-event'}, 'and is stripped too');
--- error_log
omni: upstream header "X-Omni-Event" refused: body: invalid JSON
--- no_error_log
[crit]
[alert]

=== TEST 8: a short server key does not start, naming the key and the file:line
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_events_key pos "short";
--- config
location = /omni/events { omni_events; }
--- must_die
qr/"omni_events_key" "pos" is too short: at least 32 characters .* in .*nginx\.conf:\d+/

=== TEST 9: a duplicate key name does not start
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_events_key pos "srv-key-0123456789abcdef0123456789abcdef";
omni_events_key pos "srv-key-fedcba9876543210fedcba9876543210";
--- config
location = /omni/events { omni_events; }
--- must_die
duplicate "omni_events_key" "pos"

=== TEST 10: the documentation's example key does not start
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_events_key pos "CHANGE-ME-0123456789abcdef0123456789abcdef";
--- config
location = /omni/events { omni_events; }
--- must_die
is the documentation example

=== TEST 11: max_body out of range does not start
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
--- config
location = /omni/events { omni_events max_body=100; }
--- must_die
qr/invalid "max_body" "100" \(1k to 16m\) in .*nginx\.conf:\d+/

=== TEST 12: omni_events without a secret does not start
--- config
location = /omni/events { omni_events; }
--- must_die
qr/\[emerg\] "omni_events" directive requires "omni_secret" in \S+\/nginx\.conf:\d+/

=== TEST 13: omnictl event applies a file with the same core: shared idempotency, stitching and feed, while nginx serves
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
my $file = "$OmniTest::PREFIX/pos.ndjson";
open(my $fh, '>', $file) or die;
print $fh $main::JSON->encode({ type => 'track', event => 'Order Completed', userId => 'C-55', messageId => 'till-1',
                                properties => { order_id => 'T-1', channel => 'pos', products => [ { sku => 'S', price => 9 } ] } }), "\n";
print $fh "\n";
print $fh $main::JSON->encode({ batch => [ { type => 'identify', userId => 'C-55', traits => { tier => 'gold' } },
                                           { type => 'track', event => 'Product Added', userId => 'C-55' } ] }), "\n";
print $fh "{broken\n";
close $fh;
my ($rc, $out, $err) = omnictl('--store', main::store(), 'event', $file);
is($rc, 1, 'exit 1: a line and an event were invalid');
like($err, qr/^omnictl: event: line 4: body: invalid JSON/m, 'the bad line is named');
my @res = map { JSON::PP::decode_json($_) } split /\n/, $out;
is(scalar @res, 3, 'one result per event');
is_deeply([ map { $_->{status} } @res ], [qw(accepted accepted invalid)], 'statuses');
is($res[0]{line}, 1, 'line numbers');
is($res[2]{line}, 3, 'the batch line');
is($res[2]{field}, 'batch[1].properties', 'the invalid event names its field');
my $p = main::profile('customer:C-55');
is($p->{orders}, 1, 'the order is stored');
is($p->{attributes}{tier}, 'gold', 'the trait too');
my $r = main::post({ type => 'track', event => 'Order Completed', userId => 'C-55', messageId => 'till-1',
                     properties => { order_id => 'T-1', products => [ { sku => 'S' } ] } }, main::server());
is($r->{json}{status}, 'duplicate', 'nginx knows omnictl\'s messageId: one idempotency store');
my ($ev) = grep { $_->{messageId} eq 'till-1' } values %{ { map { $_->{messageId} => $_ } @{ main::feed() } } };
is($ev->{context}{source}, 'cli', 'the feed says where it came from');
--- no_error_log
[error]

=== TEST 14: a full store (map_max reached): events answer 503 with Retry-After and nothing half-written; pages are still served
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=1m map_max=1m tp_max=0;
--- config
location = /omni/events { omni on; omni_events max_body=1m; }
location / { omni on; return 200 "page\n"; }
--- request
GET /omni/events
--- error_code: 405
--- check
my $r;
my $i = 0;
my $big = 'x' x 900;
wait_for(sub {
    $i++;
    $r = main::post({ batch => [ map { { type => 'track', event => 'Product Viewed', messageId => "f$i-$_",
                                         properties => { sku => "S$i-$_", name => $big, note => $big } } } 1 .. 50 ] },
                    Cookie => main::cookie());
    $r->{status} != 200 }, 20, 0);
is($r->{status}, 503, "the store fills up (after $i batches): 503");
is($r->{json}{error}, 'unavailable', 'unavailable');
is($r->{json}{results}[0]{status}, 'failed', 'each event: failed');
is($r->{headers}{'retry-after'}, '1', 'Retry-After');
my ($rc, $out) = omnictl('--store', main::store(), 'tail', '--after', '0', '--limit', '100000');
ok(!grep({ /"f$i-/ } split /\n/, $out), 'nothing of the refused batch is stored');
is(http_get('/p', Cookie => main::cookie())->{status}, 200, 'pages are still served');
--- error_log
store is full at map_max
--- no_error_log
[crit]

=== TEST 15: floods: limit_req in front of omni_events answers 429; the store's growth per visitor is bounded
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
limit_req_zone $binary_remote_addr zone=ev:1m rate=5r/s;
--- config
location = /omni/events { omni on; limit_req zone=ev burst=10 nodelay; limit_req_status 429; omni_events; }
--- request
GET /omni/events
--- error_code: 405
--- check
my %st;
for my $i (1 .. 40) {
    my $r = main::post({ type => 'track', event => 'Product Viewed', properties => { sku => "F-$i" } },
                       Cookie => main::cookie());
    $st{ $r->{status} }++;
}
ok($st{200} && $st{200} <= 12, "a burst is accepted ($st{200})");
ok($st{429} && $st{429} >= 28, "the flood gets 429 ($st{429})");
my $p = main::profile($main::VID);
ok(@{ $p->{views} } <= 20, 'recently viewed stays bounded (20)');
--- error_log
limiting requests

=== TEST 16: an events body larger than client_body_buffer_size but within max_body stays in memory (never a temporary file read back on the event loop)
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location = /omni/events { omni on; client_body_buffer_size 8k; omni_events max_body=256k; }
--- request
GET /omni/events
--- error_code: 405
--- check
my $r = main::post({ batch => [ map { { type => 'track', event => 'Product Viewed', messageId => "big-$_",
                                        properties => { sku => "S-$_", note => 'n' x 900 } } } 1 .. 60 ] },
                   Cookie => main::cookie());
ok(length($main::JSON->encode({ x => 'n' x 900 })) * 60 > 40000, 'a body of more than 40 KB');
is($r->{status}, 200, 'accepted') or diag $r->{content};
is($r->{json}{accepted}, 60, 'all 60 events');
--- no_error_log
buffered to a temporary file
[error]

=== TEST 17: the sender's ip in the feed only where configured (omni_events ip=on): a server's context.ip as sent, a browser's or app's own address whatever it sent; never by default
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_events_key current "srv-key-0123456789abcdef0123456789abcdef";
--- config
location = /omni/events { omni on; omni_events; }
location = /ip/events { omni on; omni_events max_body=128k ip=on; }
location = /noip/events { omni on; omni_events ip=off; }
--- request
GET /omni/events
--- error_code: 405
--- check
my $n = 0;
my $send = sub {
    my ($path, $who, %ctx) = @_;
    my $id = 'ip-' . ++$n;
    my %auth = $who eq 'server' ? main::server() : (Cookie => main::cookie());
    my $r = main::post({ type => 'track', event => 'Product Viewed', messageId => $id,
                         ($who eq 'server' ? (userId => 'C-IP') : ()),
                         properties => { sku => 'TENT-2' },
                         (%ctx ? (context => { library => { name => 'analytics.js' }, %ctx }) : ()) },
                       path => $path, %auth);
    is($r->{status}, 200, "$path, $who: 200") or diag $r->{content};
    my ($line) = grep { $_->{messageId} eq $id } @{ main::feed() };
    return $line->{context};
};
my $c = $send->('/omni/events', 'server', ip => '203.0.113.9');
ok(!exists $c->{ip}, 'by default a server\'s context.ip is not kept') or diag explain $c;
is($c->{library}{name}, 'analytics.js', 'the rest of its context is');
$c = $send->('/omni/events', 'client', ip => '198.51.100.7');
ok(!exists $c->{ip}, 'nor a browser\'s');
$c = $send->('/omni/events', 'client');
ok(!exists $c->{ip}, 'nor the connection\'s address');
$c = $send->('/noip/events', 'server', ip => '203.0.113.9');
ok(!exists $c->{ip}, 'ip=off: not kept');
$c = $send->('/ip/events', 'server', ip => '203.0.113.9');
is($c->{ip}, "203.0.113.9", "ip=on: a server's context.ip as sent") or diag explain $c;
is($c->{source}, 'server', 'next to the module\'s source');
$c = $send->('/ip/events', 'server');
ok(!exists $c->{ip}, 'a server that sends none: none');
$c = $send->('/ip/events', 'client', ip => '198.51.100.7');
is($c->{ip}, '127.0.0.1', 'a browser: its own address, not what it claims');
$c = $send->('/ip/events', 'client');
is($c->{ip}, '127.0.0.1', 'also without a context');
# a batch: every event
my $r = main::post({ batch => [
    { type => 'track', event => 'Product Viewed', messageId => 'ip-b1', properties => { sku => 'A', price => 199.99 },
      context => { ip => '10.9.9.9', page => { path => '/p/a' } } },
    { type => 'page', name => 'Home', messageId => 'ip-b2' } ] },
    path => '/ip/events', Cookie => main::cookie());
is($r->{status}, 200, 'a batch: 200') or diag $r->{content};
my %f = map { $_->{messageId} => $_ } grep { $_->{messageId} =~ /^ip-b/ } @{ main::feed() };
is($f{'ip-b1'}{context}{ip}, '127.0.0.1', 'its first event: the address');
is($f{'ip-b1'}{context}{page}{path}, '/p/a', 'the rest of its context as sent');
is($f{'ip-b1'}{properties}{price}, 199.99, 'its properties as sent');
is($f{'ip-b2'}{context}{ip}, '127.0.0.1', 'its second event too');
--- no_error_log
[error]

=== TEST 18: omni_events: a bad ip= value does not start
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
--- config
location = /omni/events { omni_events ip=yes; }
--- must_die
--- error_log
qr/\[emerg\] .*invalid parameter "ip=yes" \(max_body=SIZE, ip=on or ip=off\)/
