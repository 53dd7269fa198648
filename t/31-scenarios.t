# The seed scenarios end to end, over real HTTP: nginx with the
# repository's own rules/ directory, a store seeded with crafted profiles by
# omnictl, and visitors identified by cookies and app tokens minted with
# OmniCookie for those profile ids.  Pages are checked byte for byte, apps
# through the omni_decide JSON, and the same profiles through
# `omnictl decide`: one decision, every channel.  The showroom scenario
# gets a MaxMind DB built at test time (t/lib/OmniGeo.pm) and client
# addresses through realip's X-Forwarded-For.
#
# rules/00-holdout.json holds 10% of profiles out of everything.  The
# profile ids below are chosen outside it with an independent Perl
# SipHash-2-4 of the bucket formula in docs/rules.md (checked against the
# documented test vectors first), and the holdout block compares nginx's
# $omni_holdout with the same formula, id by id.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use OmniCookie;
use Digest::SHA qw(sha256_hex);
use File::Temp ();
use JSON::PP ();

our $JSON = JSON::PP->new->canonical;
our $NOW  = time;
our $HOUR = 3600;
our $DAY  = 86400;

# --- SipHash-2-4 and the experiment bucket (docs/rules.md) -------------------
# 64-bit words as [hi, lo] pairs of 32-bit halves: exact on any perl.

my $M32 = 0xFFFFFFFF;

sub _add  { my ($a, $b) = @_; my $l = $a->[1] + $b->[1];
            [ ($a->[0] + $b->[0] + ($l >> 32)) & $M32, $l & $M32 ] }
sub _xor  { [ $_[0][0] ^ $_[1][0], $_[0][1] ^ $_[1][1] ] }
sub _rotl {
    my ($x, $b) = @_;
    my ($h, $l) = @$x;
    ($h, $l, $b) = ($l, $h, $b - 32) if $b >= 32;
    return [ $h, $l ] if $b == 0;
    return [ (($h << $b) | ($l >> (32 - $b))) & $M32,
             (($l << $b) | ($h >> (32 - $b))) & $M32 ];
}
sub _le64 { my ($lo, $hi) = unpack 'V V', $_[0]; [ $hi, $lo ] }

sub siphash24 {
    my ($key, $msg) = @_;
    my ($k0, $k1) = (_le64(substr $key, 0, 8), _le64(substr $key, 8, 8));
    my @v = (_xor($k0, [ 0x736f6d65, 0x70736575 ]), _xor($k1, [ 0x646f7261, 0x6e646f6d ]),
             _xor($k0, [ 0x6c796765, 0x6e657261 ]), _xor($k1, [ 0x74656462, 0x79746573 ]));
    my $round = sub {
        $v[0] = _add($v[0], $v[1]); $v[1] = _xor(_rotl($v[1], 13), $v[0]); $v[0] = _rotl($v[0], 32);
        $v[2] = _add($v[2], $v[3]); $v[3] = _xor(_rotl($v[3], 16), $v[2]);
        $v[0] = _add($v[0], $v[3]); $v[3] = _xor(_rotl($v[3], 21), $v[0]);
        $v[2] = _add($v[2], $v[1]); $v[1] = _xor(_rotl($v[1], 17), $v[2]); $v[2] = _rotl($v[2], 32);
    };
    my $len  = length $msg;
    my $full = $len - $len % 8;
    my @m = map { _le64(substr $msg, 8 * $_, 8) } 0 .. $full / 8 - 1;
    push @m, _le64(substr($msg, $full) . ("\0" x (7 - $len % 8)) . chr($len & 0xff));
    for my $m (@m) {
        $v[3] = _xor($v[3], $m);
        $round->() for 1 .. 2;
        $v[0] = _xor($v[0], $m);
    }
    $v[2] = _xor($v[2], [ 0, 0xff ]);
    $round->() for 1 .. 4;
    return _xor(_xor($v[0], $v[1]), _xor($v[2], $v[3]));
}

sub bucket {
    my ($id, $exp) = @_;
    my $h = siphash24('omni-experiments', pack('H32', $id) . $exp);
    return (($h->[0] % 10000) * (2**32 % 10000) + $h->[1]) % 10000;
}

sub held_out { bucket($_[0], 'global-holdout-1') < 1000 }

# The first id counting up from $base that is (not) held out.
sub pick_id {
    my ($base, $held) = @_;
    for my $k (0 .. 1000) {
        my $id = sprintf '%s%08x', substr($base, 0, 24), hex(substr $base, 24) + $k;
        return $id if !!held_out($id) == !!$held;
    }
    die "no id from $base";
}

# --- profiles ----------------------------------------------------------------

our %ID = map { $_->[0] => pick_id($_->[1], 0) } (
    [ new     => 'aaaa0000000000000000000000000100' ],  # no profile at all
    [ chloe   => 'aaaa0000000000000000000000000200' ],  # new, with a first name
    [ account => 'aaaa0000000000000000000000000300' ],  # new, signed in
    [ cart    => 'aaaa0000000000000000000000000400' ],  # cart idle 2h
    [ recent  => 'aaaa0000000000000000000000000500' ],  # cart changed 5 min ago
    [ escal   => 'aaaa0000000000000000000000000600' ],  # viewed a 300+ jacket
    [ story   => 'aaaa0000000000000000000000000700' ],  # 9 days away
    [ bought  => 'aaaa0000000000000000000000000800' ],  # bought SUMMIT-PRO at the POS
    [ viewer  => 'aaaa0000000000000000000000000900' ],  # viewed it, did not buy it
    [ review  => 'aaaa0000000000000000000000000a00' ],  # bought and reviewed
    [ loyal   => 'aaaa0000000000000000000000000b00' ],  # 6 orders, abandoned cart
    [ gold    => 'aaaa0000000000000000000000000c00' ],  # tier gold, otherwise new
    [ capped  => 'aaaa0000000000000000000000000d00' ],  # no profile: frequency cap
);
our $HELD = pick_id('bbbb0000000000000000000000000100', 1);

# device ids of the app installs linked to some profiles
our %DEV = map { $_ => sprintf('dddd%028x', hex(substr $ID{$_}, 24)) }
           qw(new bought viewer loyal gold story review escal chloe);

our %PROFILE = (
    chloe   => { visits => 1, created => $NOW - $DAY,
                 attributes => { first_name => 'Chloe' } },
    account => { visits => 1, created => $NOW - $DAY,
                 aliases => [ { type => 'customer', id => 'cust-300' } ] },
    cart    => { visits => 2, created => $NOW - 30 * $DAY,
                 attributes => { first_name => 'Ana' },
                 cart => { updated_at => $NOW - 2 * $HOUR, items => [
                     { sku => 'SOCK-3', name => 'Merino socks', qty => 1, price => 19 },
                     { sku => 'TRAIL-42', name => 'Trail Runner 42', qty => 1,
                       price => 129, url => '/product/trail-42.html' } ] } },
    recent  => { visits => 2, created => $NOW - 30 * $DAY,
                 attributes => { first_name => 'Rui' },
                 cart => { updated_at => $NOW - 5 * 60, items => [
                     { sku => 'TRAIL-42', name => 'Trail Runner 42', qty => 1,
                       price => 129, url => '/product/trail-42.html' } ] } },
    escal   => { visits => 3, created => $NOW - 60 * $DAY,
                 attributes => { first_name => 'Ivo' },
                 views => [ { sku => 'JKT-7', category => 'jackets',
                              time => $NOW - 2 * $DAY, price => 320 },
                            { sku => 'SOCK-3', category => 'socks',
                              time => $NOW - $DAY, price => 19 } ] },
    story   => { visits => 4, created => $NOW - 90 * $DAY,
                 visit_last => $NOW - 9 * $DAY,
                 last_seen => { web => $NOW - 9 * $DAY },
                 attributes => { first_name => 'Dan' },
                 views => [ { sku => 'SUMMIT-PRO', category => 'premium',
                              time => $NOW - 9 * $DAY, price => 349 } ] },
    bought  => { visits => 5, orders => 1, created => $NOW - 90 * $DAY,
                 attributes => { first_name => 'Eva' },
                 purchases => [ { sku => 'SUMMIT-PRO', order_id => 'pos-77',
                                  channel => 'pos', time => $NOW - 600,
                                  category => 'jackets', price => 349, qty => 1 } ],
                 views => [ { sku => 'SUMMIT-PRO', category => 'premium',
                              time => $NOW - $DAY, price => 349 } ] },
    viewer  => { visits => 5, orders => 1, created => $NOW - 200 * $DAY,
                 attributes => { first_name => 'Vera' },
                 purchases => [ { sku => 'SOCK-3', order_id => 'web-1', channel => 'web',
                                  time => $NOW - 100 * $DAY, price => 19, qty => 1 } ],
                 views => [ { sku => 'SUMMIT-PRO', category => 'premium',
                              time => $NOW - $DAY, price => 349 } ] },
    review  => { visits => 6, orders => 1, created => $NOW - 90 * $DAY,
                 attributes => { first_name => 'Eva' },
                 purchases => [ { sku => 'SUMMIT-PRO', order_id => 'pos-78',
                                  channel => 'pos', time => $NOW - 20 * $DAY,
                                  category => 'jackets', price => 349, qty => 1 } ],
                 events => [ { name => 'Product Reviewed', count => 1,
                               last => $NOW - 2 * $DAY } ] },
    loyal   => { visits => 31, orders => 6, revenue => 1200, created => $NOW - 400 * $DAY,
                 attributes => { first_name => 'Bob' },
                 cart => { updated_at => $NOW - 5 * $HOUR, items => [
                     { sku => 'TRAIL-42', name => 'Trail Runner 42', qty => 1,
                       price => 129 } ] } },
    gold    => { visits => 1, created => $NOW - $DAY,
                 attributes => { first_name => 'Gil', tier => 'gold' } },
);

sub seed {
    my $store = "$OmniTest::PREFIX/store";
    my ($rc, $out, $err) = omnictl('--store', $store, 'stat', '--create');
    die "omnictl stat --create: $err" if $rc;
    my $nd = '';
    for my $name (sort keys %PROFILE) {
        # last seen a minute ago unless said otherwise: the requests of a
        # block are all one visit, so the journey stage does not move
        my %p = (id => $ID{$name}, visit_last => $NOW - 60, %{ $PROFILE{$name} });
        push @{ $p{aliases} }, { type => 'device', id => $DEV{$name} } if $DEV{$name};
        $nd .= $JSON->encode(\%p) . "\n";
    }
    my $file = "$OmniTest::PREFIX/seed.ndjson";
    open(my $fh, '>', $file) or die "$file: $!";
    print $fh $nd;
    close $fh;
    ($rc, $out, $err) = omnictl('--store', $store, 'import', $file);
    die "omnictl import: $err" if $rc;
}

sub get_profile {
    my ($id) = @_;
    my ($rc, $out) = omnictl('--store', "$OmniTest::PREFIX/store", 'get', $id);
    return $rc == 0 ? JSON::PP::decode_json($out) : undef;
}

sub impressions {
    my ($id, $campaign) = @_;
    my $p = get_profile($id) or return 0;
    my ($i) = grep { $_->{campaign} eq $campaign } @{ $p->{impressions} || [] };
    return $i ? $i->{total} : 0;
}

sub cookie { 'omni=' . mint_cookie(TEST_SECRET, $ID{ $_[0] } // $_[0]) }
sub token  { mint_token(TEST_SECRET, $DEV{ $_[0] } // $_[0]) }

# --- the page and what it becomes ------------------------------------------

our $PAGE = <<'HTML';
<html><head><title>Summit shop</title></head>
<body>
<!--omni:slot topbar-->
<header>Summit shop</header>
<!--omni:slot hero-->
<main>Jackets, shoes, socks.</main>
</body>
</html>
HTML

our $BAR = '<div class="omni omni-bar">Free shipping on orders over $50</div>';

# The page with these slot banners at their markers (absent: the marker
# stays), the aside banner (no marker on the page) in its fallback <div>,
# and these pixels before </body>.
sub page {
    my (%o) = @_;
    my $p = $PAGE;
    for my $slot (qw(topbar hero)) {
        $p =~ s/<!--omni:slot $slot-->/$o{$slot}/ if defined $o{$slot};
    }
    my $aside = defined $o{aside} ? qq{<div data-omni-slot="aside">$o{aside}</div>} : '';
    $p =~ s{</body>}{$aside . ($o{pixels} // '') . '</body>'}e;
    return $p;
}

sub welcome {
    my ($name) = @_;
    return qq{<div class="omni omni-welcome"><p>Welcome, $name! Take <strong>\$100 off</strong> }
         . qq{your first order with code <code>WELCOME100</code>.</p><a class="omni-cta" }
         . qq{href="/account/new?offer=WELCOME100">Create my account</a></div>};
}

# The showroom invitation for a client at (lat, lon) near a store at
# (slat, slon): the distance with one decimal, by an independent haversine.
sub showroom {
    my ($name, $lat, $lon, $slat, $slon, $url) = @_;
    my $km = sprintf '%.1f', OmniGeo::haversine_km($lat, $lon, $slat, $slon);
    return qq{<div class="omni omni-showroom"><p>Try it on at our <strong>$name</strong> showroom, }
         . qq{$km km from you.</p><a href="$url">Opening hours and directions</a></div>};
}

sub img { qq{<img src="$_[0]" width="1" height="1" alt="">} }

sub decide_json {
    my ($path, %h) = @_;
    my $r = http_get($path, %h);
    die "$path: $r->{status}" unless $r->{status} == 200;
    return JSON::PP::decode_json($r->{content});
}

sub shown { join ',', map { $_->{rule} } @{ $_[0]{shown} || [] } }

sub omnictl_decide {
    my ($name, @args) = @_;
    my ($rc, $out, $err) = omnictl('--store', "$OmniTest::PREFIX/store", 'decide',
                                   '--profile', $ID{$name}, '--rules', repo_root() . '/rules',
                                   '--now', time, @args);
    die "omnictl decide $name: $err" if $rc;
    return JSON::PP::decode_json($out);
}

sub has_omnictl_decide {
    my ($rc) = omnictl('decide', '--help');
    return $rc == 0;
}

# nginx -t with the module and one directive: is it known?
sub has_directive {
    my ($directive) = @_;
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    mkdir "$dir/logs";
    open(my $fh, '>', "$dir/nginx.conf") or die;
    print $fh "load_module " . OmniTest::module_path() . ";\n"
            . "error_log $dir/logs/error.log;\npid $dir/logs/nginx.pid;\n"
            . "events {}\nhttp { $directive }\n";
    close $fh;
    my (undef, $out, $err) = run_command([ OmniTest::nginx_bin(), '-t', '-p', "$dir/",
                                           '-c', "$dir/nginx.conf", '-e', "$dir/logs/error.log" ]);
    my ($name) = $directive =~ /^(\S+)/;
    return ("$out$err" !~ /unknown directive "\Q$name\E"/);
}

# --- the bucket formula itself, before anything relies on it ---------------

{
    my $h = siphash24(join('', map { chr } 0 .. 15), join('', map { chr } 0 .. 14));
    is(sprintf('%08x%08x', @$h), 'a129ca6149be45e5', 'SipHash-2-4 reference vector');
    is(bucket('00112233445566778899aabbccddeeff', 'hero-test'), 2014, 'bucket test vector 1');
    is(bucket('abababababababababababababababab', 'exp-1'), 8939, 'bucket test vector 2');
    ok(!grep({ held_out($_) } values %ID), 'no scenario profile is in the global holdout');
    ok(held_out($HELD), "$HELD is held out");
    # the 'new' app install has no profile: its device id is its profile id
    ok(!held_out($DEV{new}), 'the unlinked device is not held out either');
}

run_blocks();

__DATA__

=== TEST 1: Welcome: a new visitor sees "$100 off"; with a name, by name; not once signed in
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_ROOT/rules;
--- init
main::seed();
open(my $fh, '>', "$OmniTest::PREFIX/html/index.html") or die; print $fh $main::PAGE; close $fh;
--- config
omni on;
location / { add_header X-Omni-Rules $omni_rules; }
location = /app/decide { omni_decide; }
--- request
GET /index.html
--- more_headers eval
"Cookie: " . main::cookie('new')
--- response_body eval
main::page(topbar => $main::BAR, hero => main::welcome('friend'))
--- response_headers
X-Omni-Rules: welcome-offer,free-shipping-bar
Cache-Control: private, no-cache
--- request_2
GET /index.html
--- more_headers_2 eval
"Cookie: " . main::cookie('chloe')
--- response_body_2 eval
main::page(topbar => $main::BAR, hero => main::welcome('Chloe'))
--- request_3
GET /index.html
--- more_headers_3 eval
"Cookie: " . main::cookie('account')
--- response_body_3 eval
main::page(topbar => $main::BAR)
--- response_headers_3
X-Omni-Rules: free-shipping-bar
--- check
my $d = main::decide_json('/app/decide', 'X-Omni-Token' => main::token('new'));
is($d->{channel}, 'app', 'app: the token makes it an app decision');
is($d->{slots}{hero}{rule}, 'welcome-offer', 'app: the welcome offer');
is_deeply($d->{slots}{hero}{payload},
          { type => 'offer', title => 'Welcome, friend!', discount => 100,
            code => 'WELCOME100', theme => 'discount' }, 'app: the offer payload');
ok(!exists $d->{slots}{topbar}, 'app: no web-only bar');
is_deeply($d->{pixels}, [], 'app: no pixels');
--- no_error_log
[error]

=== TEST 2: Cart abandonment: a cart idle for 2 hours names the item and retargets its sku; 5 minutes idle: nothing
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_ROOT/rules;
--- init
main::seed();
open(my $fh, '>', "$OmniTest::PREFIX/html/index.html") or die; print $fh $main::PAGE; close $fh;
--- config
omni on;
location / { add_header X-Omni-Rules $omni_rules; }
--- request
GET /index.html
--- more_headers eval
"Cookie: " . main::cookie('cart')
--- response_body eval
main::page(topbar => $main::BAR,
    hero => '<div class="omni omni-cart"><p>Still thinking about the <strong>Trail Runner 42</strong>, Ana?</p>'
          . '<a class="omni-cta" href="/product/trail-42.html">Complete my order</a></div>',
    pixels => main::img('https://ads.example.com/rt?event=cart_abandon&amp;sku=TRAIL-42&amp;value=148.00'))
--- response_headers
X-Omni-Rules: cart-abandon,free-shipping-bar
--- request_2
GET /index.html
--- more_headers_2 eval
"Cookie: " . main::cookie('recent')
--- response_body_2 eval
main::page(topbar => $main::BAR)
--- response_headers_2
X-Omni-Rules: free-shipping-bar
--- check
# The 30-minute cooldown: once the writer has counted the impression,
# the next page holds the cart banner back.
ok(wait_for(sub { main::impressions($main::ID{cart}, 'cart-abandon') == 1 }, 5),
   'the cart banner counted one impression');
my $r = http_get('/index.html', Cookie => main::cookie('cart'));
is($r->{content}, main::page(topbar => $main::BAR),
   'right after it, the 30-minute cooldown holds the cart banner and its pixel back');
--- no_error_log
[error]

=== TEST 3: Escalation: a prospect who viewed a 300+ product gets "$150 off" that product, named from the catalog
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_ROOT/rules;
--- init
main::seed();
open(my $fh, '>', "$OmniTest::PREFIX/html/index.html") or die; print $fh $main::PAGE; close $fh;
--- config
omni on;
location / { add_header X-Omni-Rules $omni_rules; }
location = /app/decide { omni_decide; }
--- request
GET /index.html
--- more_headers eval
"Cookie: " . main::cookie('escal')
--- response_body eval
main::page(topbar => $main::BAR,
    hero => '<div class="omni omni-escalation"><p>The <strong>Ridge 7 jacket</strong> caught your eye? '
          . 'Take <strong>$150 off</strong> it with code <code>UPGRADE150</code>.</p>'
          . '<a class="omni-cta" href="/product/jkt-7.html">See it again</a></div>')
--- response_headers
X-Omni-Rules: escalation-premium,free-shipping-bar
--- check
my $d = main::decide_json('/app/decide', 'X-Omni-Token' => main::token('escal'));
is($d->{slots}{hero}{rule}, 'escalation-premium', 'app: the same escalation');
is($d->{slots}{hero}{payload}{sku}, 'JKT-7', 'app: the payload names the viewed sku');
is($d->{slots}{hero}{payload}{title}, '$150 off the Ridge 7 jacket', 'app: the title names it');
--- no_error_log
[error]

=== TEST 4: Theme switch: 9 days away, the story replaces the discount, with X-Omni-Theme: story and the story payload
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_ROOT/rules;
--- init
main::seed();
open(my $fh, '>', "$OmniTest::PREFIX/html/index.html") or die; print $fh $main::PAGE; close $fh;
--- config
omni on;
location / { add_header X-Omni-Rules $omni_rules; }
location = /app/decide { omni_decide explain=on; }
--- request
GET /index.html
--- more_headers eval
"Cookie: " . main::cookie('story')
--- response_body eval
main::page(topbar => $main::BAR,
    hero => '<div class="omni omni-story"><p>Dan, every jacket we sell plants ten trees. '
          . '<a href="/stories/ten-trees">Read the story</a></p></div>',
    pixels => main::img("https://ads.example.com/rt?event=interest&amp;sku=SUMMIT-PRO&amp;p=$main::ID{story}")
            . '<script async src="https://tags.example.com/retarget.js?sku=SUMMIT-PRO"></script>')
--- response_headers
X-Omni-Theme: story
X-Omni-Rules: theme-story,free-shipping-bar,summit-retarget
--- check
unlike($resp->{content}, qr/\$150 off|\$100 off|storm hood/, 'web: no discount at all');
my $d = main::decide_json('/app/decide?explain=1', 'X-Omni-Token' => main::token('story'));
is($d->{slots}{hero}{rule}, 'theme-story', 'app: the story');
is($d->{slots}{hero}{payload}{theme}, 'story', 'app: "theme": "story" in the payload');
is_deeply($d->{headers}, { 'X-Omni-Theme' => 'story' }, 'app: the theme header in the decision');
ok((grep { /^escalation-premium: lost: slot hero went to theme-story/ } @{ $d->{explanation} || [] }),
   'app: the escalation discount matched but lost the slot to the story')
    or diag explain $d->{explanation};
--- no_error_log
[error]

=== TEST 5: Showroom: within 25 km of a store, an invitation naming the nearest one and its distance, 5 times a week
--- skip_if
!main::has_directive('omni_geoip /nonexistent.mmdb;') ? 'geo (omni_geoip) is not in the module'
: !eval { require OmniGeo; require MaxMind::DB::Writer::Tree; 1 } ? 'no OmniGeo / MaxMind::DB::Writer'
: 0
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_ROOT/rules;
omni_geoip $TEST_NGINX_PREFIX/geo.mmdb;
--- init
main::seed();
open(my $fh, '>', "$OmniTest::PREFIX/html/index.html") or die; print $fh $main::PAGE; close $fh;
OmniGeo::build_mmdb("$OmniTest::PREFIX/geo.mmdb", {
    '203.0.113.0/24'  => { country => 'PT', city => 'Porto',  lat => 41.1579, lon => -8.6291 },
    '198.51.100.0/24' => { country => 'PT', city => 'Lisbon', lat => 38.7223, lon => -9.1393 },
    '100.64.0.0/16'   => { country => 'FR', city => 'Paris',  lat => 48.8606, lon => 2.3376 },
    '192.0.2.0/24'    => { country => 'ES', city => 'Madrid', lat => 40.4168, lon => -3.7038 },
});
--- config
omni on;
set_real_ip_from 127.0.0.1;
real_ip_header X-Forwarded-For;
location / {
    add_header X-Omni-Rules $omni_rules;
    add_header X-Geo "$omni_geo_country/$omni_geo_city";
}
location = /app/decide { omni_decide; }
--- request
GET /index.html
--- more_headers eval
"Cookie: " . main::cookie('new') . "\nX-Forwarded-For: 203.0.113.7"
--- response_body eval
main::page(topbar => $main::BAR, hero => main::welcome('friend'),
           aside => main::showroom('Porto Aliados', 41.1579, -8.6291, 41.1496, -8.6109,
                                   'https://shop.example.com/stores/porto-aliados'))
--- response_headers
X-Omni-Rules: showroom-invite,welcome-offer,free-shipping-bar
X-Geo: PT/Porto
--- request_2
GET /index.html
--- more_headers_2 eval
"Cookie: " . main::cookie('chloe') . "\nX-Forwarded-For: 198.51.100.7"
--- response_body_2 eval
main::page(topbar => $main::BAR, hero => main::welcome('Chloe'),
           aside => main::showroom('Lisbon Baixa', 38.7223, -9.1393, 38.7107, -9.1366,
                                   'https://shop.example.com/stores/lisbon-baixa'))
--- request_3
GET /index.html
--- more_headers_3 eval
"Cookie: " . main::cookie('chloe') . "\nX-Forwarded-For: 192.0.2.7"
--- response_body_3 eval
main::page(topbar => $main::BAR, hero => main::welcome('Chloe'))
--- response_headers_3
X-Geo: ES/Madrid
--- request_4
GET /index.html
--- more_headers_4 eval
"Cookie: " . main::cookie('chloe')
--- response_body_4 eval
main::page(topbar => $main::BAR, hero => main::welcome('Chloe'))
--- response_headers_4
X-Geo: /
--- check
is(sprintf('%.1f', OmniGeo::haversine_km(41.1579, -8.6291, 41.1496, -8.6109)), '1.8',
   'Porto: 1.8 km, as docs/omnictl.md says for this point');

my $d = main::decide_json('/app/decide', 'X-Omni-Token' => main::token('gold'),
                          'X-Forwarded-For' => '100.64.0.7');
is(main::shown($d), 'vip-lounge,showroom-invite', 'app, Paris: the VIP lounge and the showroom');
is_deeply($d->{slots}{aside}{payload},
          { type => 'showroom', store => 'par-opera', title => "Visit Paris Op\x{e9}ra",
            distance_km => '1.3' }, 'app, Paris: the Paris Opéra payload');

if (main::has_omnictl_decide()) {
    my $c = main::omnictl_decide('new', '--channel', 'web', '--geo-latlon', '41.1579,-8.6291');
    is(main::shown($c), 'showroom-invite,welcome-offer,free-shipping-bar',
       'omnictl decide --geo-latlon: the same rules');
    is($c->{slots}{aside}{html}, main::showroom('Porto Aliados', 41.1579, -8.6291, 41.1496, -8.6109,
                                                'https://shop.example.com/stores/porto-aliados'),
       'omnictl decide --geo-latlon: the same invitation');
}

# at most 5 a week: the 6th page from Porto has no invitation
my $id = $main::ID{capped};
my @seen;
for my $n (1 .. 7) {
    my $r = http_get('/index.html', Cookie => main::cookie('capped'), 'X-Forwarded-For' => '203.0.113.9');
    push @seen, ($r->{content} =~ /omni-showroom/ ? 1 : 0);
    ok(wait_for(sub { main::impressions($id, 'welcome-offer') == $n }, 5), "showroom page $n recorded");
}
is("@seen", '1 1 1 1 1 0 0', 'the invitation showed exactly 5 times');
is(main::impressions($id, 'showroom-invite'), 5, '5 impressions counted');
--- no_error_log
[error]

=== TEST 6: After a purchase of X at the POS: no banner, no pixel for X on web or app; the review request shows
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_ROOT/rules;
--- init
main::seed();
open(my $fh, '>', "$OmniTest::PREFIX/html/index.html") or die; print $fh $main::PAGE; close $fh;
--- config
omni on;
location / { add_header X-Omni-Rules $omni_rules; }
location = /app/decide { omni_decide; }
--- request
GET /index.html
--- more_headers eval
"Cookie: " . main::cookie('bought')
--- response_body eval
main::page(topbar => $main::BAR,
    hero => '<div class="omni omni-review"><p>How do you like your <strong>Summit Pro jacket</strong>, Eva?</p>'
          . '<a class="omni-cta" href="/reviews/new?sku=SUMMIT-PRO">Write a review</a></div>')
--- response_headers
X-Omni-Rules: review-request,free-shipping-bar
--- request_2
GET /index.html
--- more_headers_2 eval
"Cookie: " . main::cookie('viewer')
--- response_body_2 eval
main::page(topbar => $main::BAR,
    hero => '<div class="omni omni-promo"><p>The <strong>Summit Pro jacket</strong> now comes with a free storm hood.</p>'
          . '<a class="omni-cta" href="/product/summit-pro.html">Get mine</a></div>',
    pixels => main::img('https://ads.example.com/rt?event=promo&amp;sku=SUMMIT-PRO')
            . main::img("https://ads.example.com/rt?event=interest&amp;sku=SUMMIT-PRO&amp;p=$main::ID{viewer}")
            . '<script async src="https://tags.example.com/retarget.js?sku=SUMMIT-PRO"></script>')
--- response_headers_2
X-Omni-Rules: summit-promo,free-shipping-bar,summit-retarget
--- check
like($resp->{content}, qr/storm hood/, 'control: the viewer who did not buy it sees the promotion');
unlike($responses->[0]{content}, qr/storm hood|summit-pro\.html|ads\.example\.com|retarget\.js/,
       'web, buyer: no promotion and no pixel for the jacket bought at the POS');

my $d = main::decide_json('/app/decide', 'X-Omni-Token' => main::token('bought'));
is($d->{slots}{hero}{rule}, 'review-request', 'app, buyer: the review request');
is_deeply($d->{slots}{hero}{payload},
          { type => 'review', sku => 'SUMMIT-PRO', title => 'How do you like your Summit Pro jacket?' },
          'app, buyer: the review payload');
is_deeply($d->{pixels}, [], 'app, buyer: no pixel');
ok(!grep({ $_->{rule} =~ /^summit-/ } @{ $d->{shown} }), 'app, buyer: no summit rule shown');

$d = main::decide_json('/app/decide', 'X-Omni-Token' => main::token('viewer'));
is(main::shown($d), 'summit-promo,summit-retarget', 'app, viewer (control): promo and retargeting');

# The sale happens now, at the POS: a writer records it; the very next
# page of every linked device stops advertising the jacket.
my $p = main::get_profile($main::ID{viewer});
push @{ $p->{purchases} }, { sku => 'SUMMIT-PRO', order_id => 'pos-99', channel => 'pos',
                             time => time, price => 349, qty => 1, category => 'jackets' };
$p->{orders} = 2;
my $file = "$OmniTest::PREFIX/put.json";
open(my $fh, '>', $file) or die; print $fh JSON::PP::encode_json($p); close $fh;
my ($rc, undef, $err) = omnictl('--store', "$OmniTest::PREFIX/store", 'put', $file);
is($rc, 0, 'the POS sale is recorded while nginx serves') or diag $err;
my $r = http_get('/index.html', Cookie => main::cookie('viewer'));
unlike($r->{content}, qr/storm hood|ads\.example\.com|retarget\.js/,
       'web, next page after the POS sale: no promotion, no pixel');
like($r->{content}, qr/How do you like your <strong>Summit Pro jacket<\/strong>, Vera\?/,
     'web, next page after the POS sale: the review request for it');
$d = main::decide_json('/app/decide', 'X-Omni-Token' => main::token('viewer'));
is(main::shown($d), 'review-request', 'app, after the POS sale: only the review request');
--- no_error_log
[error]

=== TEST 7: After a "Product Reviewed" event: the referral message
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_ROOT/rules;
--- init
main::seed();
open(my $fh, '>', "$OmniTest::PREFIX/html/index.html") or die; print $fh $main::PAGE; close $fh;
--- config
omni on;
location / { add_header X-Omni-Rules $omni_rules; }
location = /app/decide { omni_decide; }
--- request
GET /index.html
--- more_headers eval
"Cookie: " . main::cookie('review')
--- response_body eval
main::page(topbar => $main::BAR,
    hero => "<div class=\"omni omni-referral\"><p>Thanks for your review, Eva! Give \$20, get \$20: "
          . "share your code <code>FRIEND-$main::ID{review}</code>.</p></div>")
--- response_headers
X-Omni-Rules: referral,free-shipping-bar
--- check
my $d = main::decide_json('/app/decide', 'X-Omni-Token' => main::token('review'));
is($d->{slots}{hero}{rule}, 'referral', 'app: the referral');
is($d->{slots}{hero}{payload}{title}, 'Give $20, get $20', 'app: the referral payload');
--- no_error_log
[error]

=== TEST 8: Frequency cap: the free-shipping bar at most 3 times a day, then nothing
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_ROOT/rules;
--- init
main::seed();
open(my $fh, '>', "$OmniTest::PREFIX/html/index.html") or die; print $fh $main::PAGE; close $fh;
--- config
omni on;
location / { add_header X-Omni-Rules $omni_rules; }
--- check
my $id = $main::ID{capped};
my @bars;
for my $n (1 .. 6) {
    my $r = http_get('/index.html', Cookie => main::cookie('capped'));
    push @bars, ($r->{content} =~ /\Q$main::BAR\E/ ? 1 : 0);
    if ($n <= 3) {
        is($r->{content}, main::page(topbar => $main::BAR, hero => main::welcome('friend')),
           "page $n: the bar and the welcome");
        is($r->{headers}{'x-omni-rules'}, 'welcome-offer,free-shipping-bar', "page $n: both shown");
    } else {
        is($r->{content}, main::page(hero => main::welcome('friend')),
           "page $n: the welcome only, the bar marker left as it is");
        is($r->{headers}{'x-omni-rules'}, 'welcome-offer', "page $n: the bar is not shown");
    }
    # wait until the writer has recorded this page before the next one
    ok(wait_for(sub { main::impressions($id, 'welcome-offer') == $n }, 5),
       "page $n recorded (welcome-offer impressions: $n)");
    is(main::impressions($id, 'free-shipping'), $n < 3 ? $n : 3,
       "page $n: free-shipping impressions counted under the campaign");
}
is("@bars", '1 1 1 0 0 0', 'the bar showed exactly 3 times');
--- no_error_log
[error]

=== TEST 9: Holdout: about 10% of 200 visitors see nothing, exactly the ones the bucket formula names, every time
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_ROOT/rules;
--- init
open(my $fh, '>', "$OmniTest::PREFIX/html/index.html") or die; print $fh $main::PAGE; close $fh;
--- config
omni on;
location = /holdout { return 200 "$omni_holdout"; }
location = /app/decide { omni_decide; }
--- timeout: 60
--- check
my (@got, @want, @again);
for my $i (1 .. 200) {
    my $id = substr(Digest::SHA::sha256_hex("holdout visitor $i"), 0, 32);
    push @want, main::held_out($id) ? 1 : 0;
    push @got, http_get('/holdout', Cookie => main::cookie($id))->{content};
}
for my $i (1 .. 200) {
    my $id = substr(Digest::SHA::sha256_hex("holdout visitor $i"), 0, 32);
    push @again, http_get('/holdout', Cookie => main::cookie($id))->{content};
}
my $held = grep { $_ eq '1' } @got;
ok($held >= 10 && $held <= 35, "$held of 200 visitors held out (10..35)");
is(scalar(grep { $_ eq '0' || $_ eq '1' } @got), 200, 'every answer is 0 or 1');
is(join('', @got), join('', @want), 'exactly the visitors whose bucket is below 10.00%');
is(join('', @again), join('', @got), 'the same visitor always gets the same answer');

my $r = http_get('/index.html', Cookie => main::cookie($main::HELD));
is($r->{content}, $main::PAGE, 'a held-out visitor gets the page untouched');
ok(defined $r->{headers}{'content-length'} && !defined $r->{headers}{'cache-control'},
   'a held-out page keeps its Content-Length and is not marked private');
my $d = main::decide_json('/app/decide', 'X-Omni-Token' => mint_token(TEST_SECRET, $main::HELD));
ok($d->{holdout} && !%{ $d->{slots} } && !@{ $d->{shown} } && !@{ $d->{pixels} },
   'the app: holdout true, nothing shown') or diag explain $d;
--- no_error_log
[error]

=== TEST 10: Loyal (6 orders) and tier gold: the VIP message, X-Omni-Theme: vip, no discount
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_ROOT/rules;
--- init
main::seed();
open(my $fh, '>', "$OmniTest::PREFIX/html/index.html") or die; print $fh $main::PAGE; close $fh;
--- config
omni on;
location / { add_header X-Omni-Rules $omni_rules; }
location = /app/decide { omni_decide; }
--- request
GET /index.html
--- more_headers eval
"Cookie: " . main::cookie('loyal')
--- response_body eval
main::page(topbar => $main::BAR,
    hero => '<div class="omni omni-vip"><p>Bob, your VIP lounge is open: early access to the winter '
          . 'collection and free express delivery.</p><a class="omni-cta" href="/vip">Enter the lounge</a></div>')
--- response_headers
X-Omni-Theme: vip
X-Omni-Rules: vip-lounge,free-shipping-bar
--- request_2
GET /index.html
--- more_headers_2 eval
"Cookie: " . main::cookie('gold')
--- response_body_2 eval
main::page(topbar => $main::BAR,
    hero => '<div class="omni omni-vip"><p>Gil, your VIP lounge is open: early access to the winter '
          . 'collection and free express delivery.</p><a class="omni-cta" href="/vip">Enter the lounge</a></div>')
--- response_headers_2
X-Omni-Theme: vip
X-Omni-Rules: vip-lounge,free-shipping-bar
--- check
for my $i (0, 1) {
    unlike($responses->[$i]{content}, qr/\$100 off|\$150 off|Still thinking|ads\.example\.com/,
           ('loyal', 'gold')[$i] . ': no discount, no cart banner, no cart pixel');
}
for my $who (qw(loyal gold)) {
    my $d = main::decide_json('/app/decide', 'X-Omni-Token' => main::token($who));
    is(main::shown($d), 'vip-lounge', "app, $who: only the VIP lounge");
    is($d->{slots}{hero}{payload}{theme}, 'vip', "app, $who: the vip theme");
    is_deeply($d->{headers}, { 'X-Omni-Theme' => 'vip' }, "app, $who: X-Omni-Theme: vip");
}
--- no_error_log
[error]

=== TEST 11: One decision, every channel: page, app JSON and omnictl decide agree for every profile
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_ROOT/rules;
--- init
main::seed();
open(my $fh, '>', "$OmniTest::PREFIX/html/index.html") or die; print $fh $main::PAGE; close $fh;
--- config
omni on;
location / { add_header X-Omni-Rules $omni_rules; }
location = /app/decide { omni_decide; }
location = /app/decide-web { omni_channel web; omni_decide; }
--- timeout: 30
--- check
my $ctl = main::has_omnictl_decide();
SKIP: {
    skip 'omnictl decide is not built: page and app only', 1 unless $ctl;
    pass('omnictl decide is available');
}
for my $who (qw(new chloe escal story bought viewer review loyal gold)) {
    # omnictl first: it never counts an impression
    my ($cweb, $capp) = $ctl ? (main::omnictl_decide($who, '--channel', 'web'),
                                main::omnictl_decide($who, '--channel', 'app')) : ();
    my $page = http_get('/index.html', Cookie => main::cookie($who));
    my $web  = main::decide_json('/app/decide-web', 'X-Omni-Token' => main::token($who));
    my $app  = main::decide_json('/app/decide', 'X-Omni-Token' => main::token($who));

    my $rules = $page->{headers}{'x-omni-rules'} // '';
    isnt($rules, '', "$who: the page shows something");
    is(main::shown($web), $rules, "$who: app JSON on the web channel = \$omni_rules of the page ($rules)");
    (my $app_rules = $rules) =~ s/(?:^|,)free-shipping-bar//;
    $app_rules =~ s/^,//;
    is(main::shown($app), $app_rules, "$who: app JSON on the app channel = the page without the web-only bar");
    for my $slot (sort keys %{ $web->{slots} }) {
        my $html = $web->{slots}{$slot}{html};
        ok(index($page->{content}, $html) >= 0, "$who: the page carries the JSON's $slot banner")
            or diag "missing: $html";
    }
    if ($ctl) {
        is(main::shown($cweb), $rules, "$who: omnictl decide --channel web agrees");
        is(main::shown($capp), $app_rules, "$who: omnictl decide --channel app agrees");
        is_deeply($cweb->{slots}, $web->{slots}, "$who: omnictl and nginx render the same slots");
        is_deeply($cweb->{pixels}, $web->{pixels}, "$who: and the same pixels");
    }
}
--- no_error_log
[error]
