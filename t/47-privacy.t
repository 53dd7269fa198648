# Privacy (docs/privacy.md): erasure that erases, sign-out, consent and
# the expiry of anonymous profiles (issue 9, parts 1 to 4).

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use OmniCookie;
use OmniEvents;
use JSON::PP ();

our $VID  = 'c0ffee00000000000000000000000001';
our $DEV  = 'c0ffee000000000000000000000000d1';
our $KEY  = 'srv-key-0123456789abcdef0123456789abcdef';
our $JSON = JSON::PP->new->canonical;

sub cookie { 'omni=' . mint_cookie(TEST_SECRET, $_[0] // $VID) }
sub token  { mint_token(TEST_SECRET, $_[0] // $DEV) }
sub server { (Authorization => "Bearer $KEY") }

# Every database of the store, as mdb_dump writes it: hex bytes, and
# printable text (both, so that binary ids and strings can be found).
sub dump_store {
    my $out = '';
    for my $p ('', '-p') {
        my ($rc, $o, $e) = run_command(['mdb_dump', '-a', ($p ? $p : ()), store()]);
        die "mdb_dump: $e" if $rc;
        $out .= $o;
    }
    return $out;
}

# Where a needle would show in a dump: its text, its bytes as hex, and
# for a 32-hex-digit id, the 16 bytes it stands for.
sub found_in {
    my ($dump, $needle) = @_;
    my @forms = ($needle, unpack('H*', $needle));
    push @forms, lc $needle if $needle =~ /^[0-9a-fA-F]{32}$/;
    for my $f (@forms) {
        return $f if index($dump, $f) >= 0;
    }
    return undef;
}

run_blocks();

__DATA__

=== TEST 1: forget erases the person everywhere: mdb_dump of every database holds none of their ids, hashes, orders or messageIds
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_events_key main "srv-key-0123456789abcdef0123456789abcdef";
--- config
location = /omni/events { omni on; omni_events; }
location = /up/login { add_header X-Omni-Event '{"type":"identify","userId":"CUST-PRIV-77"}'; return 200 "in\n"; }
location = /api/login { omni on; omni_upstream_events on; proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/up/login; }
location / { omni on; return 200 "<html><body>hi</body></html>"; }
--- request
GET /p/1?utm_source=news
--- more_headers eval
"Cookie: " . main::cookie()
--- check
# a visitor browses, adds to cart, logs in (identify with email), buys
# in the store, and uses the app too
http_get('/p/2', Cookie => main::cookie());
my @msg = ('cl-msg-7a1', 'srv-msg-9b2', 'pos-msg-3c3', 'app-msg-4d4');
my $r = main::post({ type => 'track', event => 'Product Added', messageId => $msg[0],
                     properties => { sku => 'SKU-PRIV', price => 10 } }, Cookie => main::cookie());
is($r->{status}, 200, 'client event') or diag $r->{content};
$r = main::post({ type => 'identify', anonymousId => $main::VID, userId => 'CUST-PRIV-77',
                  messageId => $msg[1], traits => { email => 'ana.priv@example.com', first_name => 'Ana' } },
                main::server());
is($r->{status}, 200, 'identify') or diag $r->{content};
$r = main::post({ type => 'track', event => 'Order Completed', userId => 'CUST-PRIV-77', messageId => $msg[2],
                  properties => { order_id => 'ORDER-PRIV-55', channel => 'pos', total => 10,
                                  products => [ { sku => 'SKU-PRIV', price => 10 } ] } }, main::server());
is($r->{status}, 200, 'order') or diag $r->{content};
# the app logs in too (its device joins the customer), and sends an event
http_request('POST', '/api/login', '', headers => { 'X-Omni-Token' => main::token() });
ok(wait_for(sub { my $d = main::profile("device:$main::DEV"); $d && $d->{id} eq main::profile('customer:CUST-PRIV-77')->{id} }, 5),
   'the app device is the customer\'s');
$r = main::post({ type => 'track', event => 'Product Viewed', messageId => $msg[3],
                  properties => { sku => 'SKU-PRIV' } }, 'X-Omni-Token' => main::token());
is($r->{status}, 200, 'app event') or diag $r->{content};
http_get('/api/x', 'X-Omni-Token' => main::token());
my $p;
ok(wait_for(sub { $p = main::profile("cookie:$main::VID"); $p && $p->{visits} >= 1 }, 5), 'folded')
    or diag explain $p;
my $pid = $p->{id};
my ($email) = map { $_->{id} } grep { $_->{type} eq 'email' } @{ $p->{aliases} || [] };
ok($email, 'an email alias (hashed)') or diag explain $p->{aliases};
my $before = main::dump_store();
ok(main::found_in($before, $pid), 'before: the profile id is in the dump (the test can fail)');
my ($rc, $out, $err) = omnictl('--store', main::store(), 'forget', $pid);
is($rc, 0, 'forget') or diag $err;
my $forgot_at = time;
my $after = main::dump_store();
for my $needle ($pid, $main::VID, $main::DEV, $email, 'CUST-PRIV-77', 'ana.priv@example.com',
                'ORDER-PRIV-55', @msg) {
    my $f = main::found_in($after, $needle);
    ok(!$f, "after forget: no trace of $needle") or diag "found as $f";
}
# the same cookie comes back (in a later second: what the visitor did up
# to the second of the forget is dropped, docs/privacy.md): a new, empty
# profile under another id
ok(wait_for(sub { time > $forgot_at }, 3, 0.05), 'a second later');
http_get('/p/3', Cookie => main::cookie());
my $q;
ok(wait_for(sub { $q = main::profile("cookie:$main::VID"); $q }, 5), 'the cookie starts a profile again');
isnt($q->{id}, $pid, 'under a new id');
is($q->{visits}, 1, 'one visit: nothing of the old one');
ok(!$q->{attributes}{first_name}, 'no name');
is($q->{orders}, 0, 'no orders');
my $feed = main::feed();
ok(!(grep { ($_->{profileId} // '') eq $pid } @$feed), 'the feed has nothing under the old id');
# the erased messageIds are not remembered: a sender may not replay them,
# but if one does it is a new event for the new profile, not a duplicate
# of the old person
--- no_error_log
[error]
