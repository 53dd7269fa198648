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
    my ($dir) = @_;
    my $out = '';
    for my $p ('', '-p') {
        my ($rc, $o, $e) = run_command(['mdb_dump', '-a', ($p ? $p : ()), $dir // store()]);
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
# somebody else, who stays
our $OTHER = 'c0ffee000000000000000000000000ff';
http_get("/o/$_", Cookie => main::cookie($OTHER)) for 1 .. 2;
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
# the idempotency keys never held a device, customer, order or message
# id in clear: keyed hashes (each names its profile id, as its value, so
# that forget finds it; here that is the first cookie's id)
for my $db ('seen', 'seen_age') {
    my ($rc, $o, $e) = run_command(['mdb_dump', '-s', $db, main::store()]);
    is($rc, 0, "mdb_dump -s $db") or diag $e;
    ok(($o =~ tr/\n//) > 4, "$db holds keys");
    for my $needle ($main::DEV, 'CUST-PRIV-77', 'ORDER-PRIV-55', @msg) {
        my $f = main::found_in($o, $needle);
        ok(!$f, "$db: no $needle in clear") or diag "found as $f";
    }
}
my ($rc, $out, $err) = omnictl('--store', main::store(), 'forget', $pid);
is($rc, 0, 'forget') or diag $err;
my $forgot_at = time;
my $after = main::dump_store();
for my $needle ($pid, $main::VID, $main::DEV, $email, 'CUST-PRIV-77', 'ana.priv@example.com',
                'ORDER-PRIV-55', @msg) {
    my $f = main::found_in($after, $needle);
    ok(!$f, "after forget: no trace of $needle") or diag "found as $f";
}
# a backup taken now holds none of it either (docs/privacy.md)
my $bk = "$OmniTest::PREFIX/backup";
($rc, $out, $err) = omnictl('--store', main::store(), 'backup', $bk);
is($rc, 0, 'backup') or diag $err;
my $bdump = main::dump_store($bk);
ok(main::found_in($bdump, $main::OTHER), 'the backup holds the other visitor (the test can fail)');
for my $needle ($pid, $main::VID, $main::DEV, $email, 'CUST-PRIV-77', 'ORDER-PRIV-55', @msg) {
    my $f = main::found_in($bdump, $needle);
    ok(!$f, "the backup: no trace of $needle") or diag "found as $f";
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
# the forgotten app device too: a new profile under another id
$r = main::post({ type => 'track', event => 'Thing Done', messageId => 'after-forget-1' },
                'X-Omni-Token' => main::token());
is($r->{status}, 200, 'the forgotten device sends an event') or diag $r->{content};
ok($r->{json}{profile} && $r->{json}{profile} ne $pid && $r->{json}{profile} ne $q->{id},
   'under a profile of its own, not the erased one') or diag $r->{content};
my $feed = main::feed();
ok(!(grep { ($_->{profileId} // '') eq $pid } @$feed), 'the feed has nothing under the old id');
# the erased messageIds are not remembered: a sender may not replay them,
# but if one does it is a new event for the new profile, not a duplicate
# of the old person
--- no_error_log
[error]

=== TEST 2: consent models x signals x HTML, JSON and the feed
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
omni_events_key main "srv-key-0123456789abcdef0123456789abcdef";
omni_consent_cookie CookieConsent analytics=statistics personalization=preferences ads=marketing;
--- user_files
>>> rules/r.json
{"id": "offer", "campaign": "offer",
 "banner": {"slot": "hero", "html": "<b>offer</b>", "payload": {"type": "offer"}},
 "pixels": [{"img": "https://ads.example/px?p={{profile.id}}"}]}
>>> rules/h.json
{"id": "theme", "headers": {"X-Omni-Theme": "story"}}
--- config
location /out/ { omni on; omni_consent opt-out; default_type text/html; return 200 "<body><!--omni:slot hero--></body>"; }
location /in/  { omni on; omni_consent opt-in;  default_type text/html; return 200 "<body><!--omni:slot hero--></body>"; }
location = /out-decide { omni_consent opt-out; omni_decide; }
location = /in-decide  { omni_consent opt-in;  omni_decide; }
location = /omni/events { omni on; omni_events; }
--- request
GET /out/warm
--- check
my $n = 0;
my $case = sub {
    my (%c) = @_;
    my $vid = sprintf('c0115e00%024x', ++$n);
    my @cookie = ('omni=' . mint_cookie(TEST_SECRET, $vid));
    push @cookie, "CookieConsent=$c{cmp}" if $c{cmp};
    my %h = (Cookie => join('; ', @cookie), Referer => 'https://news.example/a');
    $h{'Sec-GPC'} = '1' if $c{gpc};
    $h{'DNT'} = '1' if $c{dnt};
    $h{'DNT'} = '0' if $c{dnt0};
    # the sources of consent (docs/privacy.md): the CMP cookie above, a
    # client event, an identify call's traits.consent, a server event
    my $r;
    if ($c{event}) {
        $r = main::post({ type => 'track', event => 'Consent Updated', properties => $c{event} },
                        Cookie => $cookie[0]);
    } elsif ($c{identify}) {
        $r = main::post({ type => 'identify', traits => { consent => $c{identify} } },
                        Cookie => $cookie[0]);
    } elsif ($c{server}) {
        $r = main::post({ type => 'track', event => 'Consent Updated', anonymousId => $vid,
                          properties => $c{server} }, main::server());
    }
    is($r->{status}, 200, "$c{name}: the consent statement") or diag $r->{content} if $r;
    # a click id in the query: a third-party id the touchpoint never keeps
    my $page = http_get("/$c{model}/p?utm_source=mail&gclid=GCLID-$n", %h);
    my $json = JSON::PP::decode_json(http_get("/$c{model}-decide", %h)->{content});
    is($page->{content} =~ /<b>offer<\/b>/ ? 1 : 0, $c{banner}, "$c{name}: HTML banner $c{banner}");
    is($page->{content} =~ /ads\.example/ ? 1 : 0, $c{pixel}, "$c{name}: HTML pixel $c{pixel}");
    is(defined $page->{headers}{'x-omni-theme'} ? 1 : 0, $c{banner}, "$c{name}: personalized header $c{banner}");
    is($json->{slots}{hero} ? 1 : 0, $c{banner}, "$c{name}: JSON banner $c{banner}");
    is(scalar @{ $json->{pixels} || [] } ? 1 : 0, $c{pixel}, "$c{name}: JSON pixels $c{pixel}");
    is($json->{blocked} // '', $c{banner} ? '' : 'consent', "$c{name}: JSON blocked");
    return $vid;
};
my @cases = (
    { name => 'opt-out, nothing stated', model => 'out', banner => 1, pixel => 1, tp => 'full' },
    { name => 'opt-out, cookie refuses all', model => 'out', banner => 0, pixel => 0, tp => 'none',
      cmp => '{necessary:true,preferences:false,statistics:false,marketing:false}' },
    { name => 'opt-out, cookie refuses ads', model => 'out', banner => 1, pixel => 0, tp => 'full',
      cmp => '{necessary:true,preferences:true,statistics:true,marketing:false}' },
    { name => 'opt-out, Sec-GPC', model => 'out', banner => 1, pixel => 0, tp => 'gpc', gpc => 1 },
    { name => 'opt-out, DNT', model => 'out', banner => 1, pixel => 0, tp => 'dnt', dnt => 1 },
    { name => 'opt-out, event refuses analytics', model => 'out', banner => 1, pixel => 1, tp => 'bare',
      event => { analytics => JSON::PP::false } },
    { name => 'opt-in, nothing stated', model => 'in', banner => 0, pixel => 0, tp => 'none' },
    { name => 'opt-in, cookie grants all', model => 'in', banner => 1, pixel => 1, tp => 'full',
      cmp => '{necessary:true,preferences:true,statistics:true,marketing:true}' },
    { name => 'opt-in, cookie grants personalization only', model => 'in', banner => 1, pixel => 0,
      tp => 'bare', cmp => '{necessary:true,preferences:true,statistics:false,marketing:false}' },
    { name => 'opt-in, event grants all', model => 'in', banner => 1, pixel => 1, tp => 'full',
      event => { analytics => JSON::PP::true, personalization => JSON::PP::true, ads => JSON::PP::true } },
    { name => 'opt-in, event grants all, Sec-GPC', model => 'in', banner => 1, pixel => 0, tp => 'gpc',
      gpc => 1, event => { analytics => JSON::PP::true, personalization => JSON::PP::true, ads => JSON::PP::true } },
    { name => 'opt-out, identify traits.consent refuses ads', model => 'out', banner => 1, pixel => 0,
      tp => 'full', identify => { ads => JSON::PP::false } },
    { name => 'opt-in, identify traits.consent grants all', model => 'in', banner => 1, pixel => 1,
      tp => 'full', identify => { analytics => JSON::PP::true, personalization => JSON::PP::true,
                                  ads => JSON::PP::true } },
    { name => 'opt-out, server event refuses all', model => 'out', banner => 0, pixel => 0, tp => 'none',
      server => { analytics => JSON::PP::false, personalization => JSON::PP::false, ads => JSON::PP::false } },
    { name => 'opt-in, server event grants all', model => 'in', banner => 1, pixel => 1, tp => 'full',
      server => { analytics => JSON::PP::true, personalization => JSON::PP::true, ads => JSON::PP::true } },
    { name => 'opt-in, cookie grants all, Sec-GPC', model => 'in', banner => 1, pixel => 0, tp => 'gpc',
      gpc => 1, cmp => '{necessary:true,preferences:true,statistics:true,marketing:true}' },
    { name => 'opt-in, cookie grants all, DNT', model => 'in', banner => 1, pixel => 0, tp => 'dnt',
      dnt => 1, cmp => '{necessary:true,preferences:true,statistics:true,marketing:true}' },
    { name => 'opt-out, DNT: 0 is no signal', model => 'out', banner => 1, pixel => 1, tp => 'full',
      dnt0 => 1 },
);
my %vid;
$vid{$_->{name}} = $case->(%$_) for @cases;
# the feed: wait until the last full case's touchpoints are in
my $feed;
my @full = grep { $_->{tp} ne 'none' && $_->{tp} ne 'bare' } @cases;
ok(wait_for(sub {
    $feed = main::feed();
    my %n;
    $n{$_->{anonymousId} // ''}++ for grep { ($_->{type} // '') eq 'page' } @$feed;
    !grep { ($n{$vid{$_->{name}}} // 0) < 2 } @full }, 5), 'the feed caught up');
for my $c (@cases) {
    my @tp = grep { ($_->{anonymousId} // '') eq $vid{$c->{name}} && ($_->{type} // '') eq 'page' } @$feed;
    if ($c->{tp} eq 'none' || $c->{tp} eq 'bare') {
        is(scalar @tp, 0, "$c->{name}: no touchpoint in the feed") or diag explain \@tp;
        next;
    }
    is(scalar @tp, 2, "$c->{name}: page and decide touchpoints") or diag explain \@tp;
    my ($page) = grep { $_->{properties}{path} =~ m{^/\w+/p$} } @tp;
    if ($c->{tp} eq 'full') {
        is($page->{properties}{referrer}, 'https://news.example/a', "$c->{name}: referrer kept");
        is($page->{properties}{utm_source}, 'mail', "$c->{name}: utm kept");
        ok(!$page->{context}{privacy}, "$c->{name}: no privacy mark");
    } else {
        ok(!exists $page->{properties}{referrer}, "$c->{name}: no referrer");
        ok(!exists $page->{properties}{utm_source}, "$c->{name}: no utm");
        is($page->{context}{privacy}, $c->{tp}, "$c->{name}: marked $c->{tp}");
        my ($json) = grep { $_ != $page } @tp;
        is($json->{context}{privacy}, $c->{tp}, "$c->{name}: the JSON decision's touchpoint marked too");
        ok(!exists $json->{properties}{referrer}, "$c->{name}: and without referrer");
    }
    # never the query: no click id, GPC or not
    unlike($main::JSON->encode($_), qr/GCLID|gclid/, "$c->{name}: no click id in the touchpoint")
        for @tp;
}
# every consent statement is in the feed, with its source, whatever the
# statement allows, so that email and ad tools downstream honour it
my %cmp_key = (statistics => 'analytics', preferences => 'personalization', marketing => 'ads');
for my $c (grep { $_->{cmp} || $_->{event} || $_->{identify} || $_->{server} } @cases) {
    my $v = $vid{$c->{name}};
    my %said = ($c->{cmp} // '') =~ /(\w+):(true|false)/g;
    my $want = $c->{event} || $c->{identify} || $c->{server}
        || { map { ($cmp_key{$_} => ($said{$_} eq 'true' ? JSON::PP::true : JSON::PP::false)) }
             grep { $cmp_key{$_} } keys %said };
    my $src = $c->{cmp} ? 'consent cookie' : $c->{server} ? 'server' : 'client';
    my @rec;
    ok(wait_for(sub {
        @rec = grep { ($_->{anonymousId} // '') eq $v
                      && (($_->{event} // '') eq 'Consent Updated'
                          || ($_->{type} eq 'identify' && $_->{traits}{consent})) } @{ main::feed() };
        @rec }, 5), "$c->{name}: the feed records the consent change");
    next unless @rec;
    is($rec[0]{context}{source}, $src, "$c->{name}: context.source $src");
    is_deeply($rec[0]{type} eq 'identify' ? $rec[0]{traits}{consent} : $rec[0]{properties}, $want,
              "$c->{name}: the purposes as stated") or diag explain $rec[0];
}
# without analytics, a banner shown still counts for caps: the impression
# and the visit, folded into the profile (and nothing in the feed, above)
my $bare = $vid{'opt-in, cookie grants personalization only'};
my $bp;
ok(wait_for(sub { $bp = main::profile("cookie:$bare"); $bp && $bp->{impressions} && @{ $bp->{impressions} } }, 5),
   'personalization only: the impressions are kept') or diag explain $bp;
is($bp->{impressions}[0]{campaign}, 'offer', 'of the campaign shown');
ok($bp->{visits} >= 1, 'and the visit');
# a consent cookie's statement is recorded: profile and feed
my $v = $vid{'opt-out, cookie refuses ads'};
my $p;
ok(wait_for(sub { $p = main::profile("cookie:$v"); $p && $p->{consent} }, 5), 'cookie consent stored');
is_deeply($p->{consent}, { analytics => JSON::PP::true, personalize => JSON::PP::true, ads => JSON::PP::false },
          'as stated, per purpose') or diag explain $p->{consent};
ok((grep { ($_->{anonymousId} // '') eq $v && ($_->{event} // '') eq 'Consent Updated'
           && $_->{properties}{ads} == JSON::PP::false } @$feed), 'the feed records the consent change');
# a statement is recorded once, however many quick requests carry it;
# a new one is recorded again
my $q = 'c0115e000000000000000000000000f7';
my $qc = 'omni=' . mint_cookie(TEST_SECRET, $q);
# (pipelined on one connection: the writer has no time in between)
raw_request($OmniTest::PORT, join('', map { "GET /in/q$_ HTTP/1.1\r\nHost: localhost\r\n"
    . "Cookie: $qc; CookieConsent={preferences:true,statistics:true,marketing:false}\r\n"
    . ($_ == 4 ? "Connection: close\r\n" : '') . "\r\n" } 1 .. 4), until_close => 1);
http_get("/in/q5", Cookie => "$qc; CookieConsent={preferences:true,statistics:true,marketing:true}");
my @cu;
ok(wait_for(sub {
    my $f = main::feed();
    @cu = grep { ($_->{anonymousId} // '') eq $q && ($_->{event} // '') eq 'Consent Updated' } @$f;
    grep { ($_->{properties}{path} // '') eq "/in/q5" } @$f }, 5), 'the quick requests are in the feed');
is(scalar @cu, 2, 'two statements, two Consent Updated') or diag explain \@cu;
is_deeply([ map { $_->{properties}{ads} ? 1 : 0 } @cu ], [ 0, 1 ], 'ads refused, then granted');
# opt-in: a new visitor without consent gets no identifying cookie, and
# nothing about it is recorded
my $r = http_get('/in/first?utm_source=x');
ok(!$r->{headers}{'set-cookie'}, 'opt-in: no cookie before consent');
$r = http_get('/in/first', Cookie => 'CookieConsent={preferences:false,statistics:false,marketing:true}');
ok(!$r->{headers}{'set-cookie'}, 'opt-in: ads alone sets no cookie');
$r = http_get('/in/stats', Cookie => 'CookieConsent={preferences:false,statistics:true,marketing:false}');
like($r->{headers}{'set-cookie'} // '', qr/^omni=/, 'opt-in: analytics granted sets the cookie');
ok(wait_for(sub { grep { ($_->{properties}{path} // '') eq '/in/stats' } @{ main::feed() } }, 5),
   'and its touchpoint is in the feed');
ok(!(grep { ($_->{properties}{path} // '') eq '/in/first' } @{ main::feed() }),
   'nothing of the visitors without analytics consent');
$r = http_get('/out/p');
like($r->{headers}{'set-cookie'} // '', qr/^omni=/, 'opt-out: the visitor cookie');
$r = http_get('/in/p', Cookie => 'CookieConsent={preferences:true,statistics:true,marketing:false}');
like($r->{headers}{'set-cookie'} // '', qr/^omni=/, 'opt-in with consent: the visitor cookie');
like($r->{content}, qr{<b>offer</b>}, 'and the banner on that very request');
--- no_error_log
[error]

=== TEST 3: sign-out on a shared computer: after logout the browser is a new visitor and keeps nothing of the customer
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
omni_events_key main "srv-key-0123456789abcdef0123456789abcdef";
--- user_files
>>> rules/r.json
{"id": "hi", "when": {"attr": {"key": "first_name", "exists": true}},
 "banner": {"slot": "hero", "html": "<b>Hi {{first_name}}</b>"}}
--- config
location = /up/login {
    add_header X-Omni-Event '{"type":"identify","userId":"C-SHARED","traits":{"first_name":"Ana"}}';
    return 200 "in\n";
}
location = /up/logout {
    add_header X-Omni-Event '{"type":"track","event":"Signed Out"}';
    return 200 "out\n";
}
location = /login  { omni on; omni_upstream_events on; proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/up/login; }
location = /logout { omni on; omni_upstream_events on; proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/up/logout; }
location = /omni/events { omni on; omni_events; }
location / { omni on; default_type text/html; return 200 "<body><!--omni:slot hero--></body>"; }
--- request
GET /warm
--- check
my $v1 = 'ab5000000000000000000000000000a1';
my $c1 = 'omni=' . mint_cookie(TEST_SECRET, $v1);
my $page = sub { http_get('/page', Cookie => $_[0])->{content} };
is($page->($c1), '<body><!--omni:slot hero--></body>', 'anonymous: no greeting');
http_get('/login', Cookie => $c1);
ok(wait_for(sub { $page->($c1) =~ /Hi Ana/ }, 5), 'logged in: "Hi Ana"');
my $r = http_get('/logout', Cookie => $c1);
my ($v2) = ($r->{headers}{'set-cookie'} // '') =~ /^omni=([^;]+)/;
ok($v2, 'the logout response sets a new visitor cookie') or diag explain $r->{headers};
my $c2 = "omni=$v2";
unlike($page->($c2), qr/Ana/, 'the next person on this computer: a new visitor');
ok(wait_for(sub { $page->($c1) !~ /Ana/ }, 5), 'even a stale copy of the old cookie finds nothing of Ana');
my $cust = main::profile('customer:C-SHARED');
ok($cust, 'the customer profile stays');
ok(!(grep { $_->{type} eq 'cookie' && $_->{id} eq $v1 } @{ $cust->{aliases} || [] }),
   'without the browser\'s cookie') or diag explain $cust->{aliases};
my ($ev) = grep { ($_->{event} // '') eq 'Signed Out' } @{ main::feed() };
ok($ev, 'the sign-out is in the feed');
is($ev->{profileId}, $cust->{id}, 'under the customer it left');
# the same through the events endpoint: durable before its 200
my $v3 = 'ab5000000000000000000000000000a3';
my $c3 = 'omni=' . mint_cookie(TEST_SECRET, $v3);
http_get('/login', Cookie => $c3);
ok(wait_for(sub { $page->($c3) =~ /Hi Ana/ }, 5), 'another browser logs in');
$r = main::post({ type => 'track', event => 'Signed Out' }, Cookie => $c3);
is($r->{status}, 200, 'Signed Out accepted') or diag $r->{content};
like($r->{headers}{'set-cookie'} // '', qr/^omni=(?!\Q$v3\E)/, 'with a fresh cookie');
unlike($page->($c3), qr/Ana/, 'the old cookie is out at once (the 200 means applied)');
# a sign-out that names nobody is refused
$r = main::post({ type => 'track', event => 'Signed Out', userId => 'C-SHARED' },
                Authorization => 'Bearer nope');
is($r->{status}, 401, 'a bad key: 401');
$r = main::post({ type => 'track', event => 'Signed Out', userId => 'C-SHARED' }, main::server());
is($r->{status}, 400, 'a server sign-out that names no browser or device: 400');
is($r->{json} && $r->{json}{field}, 'anonymousId', 'naming anonymousId') or diag $r->{content};
# an app signs out with its token: its device leaves the customer
my $d1 = 'ab5000000000000000000000000000d1';
http_get('/login', 'X-Omni-Token' => main::token($d1));
ok(wait_for(sub { my $p = main::profile("device:$d1"); $p && $p->{id} eq $cust->{id} }, 5),
   'an app logs in: its device is the customer\'s');
$r = main::post({ type => 'track', event => 'Signed Out' }, 'X-Omni-Token' => main::token($d1));
is($r->{status}, 200, 'the app\'s Signed Out') or diag $r->{content};
# (the device's id points at a fresh profile id, made when it is used)
my $next = sub { main::post({ type => 'track', event => 'Thing Done' }, 'X-Omni-Token' => main::token($_[0])) };
$r = $next->($d1);
ok($r->{json}{profile} && $r->{json}{profile} ne $cust->{id}, 'the app\'s next event is another profile\'s')
    or diag $r->{content};
my $dp = main::profile("device:$d1");
ok($dp && !$dp->{attributes}{first_name}, 'which holds nothing of the customer') or diag explain $dp;
ok(!(grep { $_->{type} eq 'device' && $_->{id} eq $d1 } @{ main::profile('customer:C-SHARED')->{aliases} || [] }),
   'the customer no longer lists the device');
# a server signs a device out by naming it
my $d2 = 'ab5000000000000000000000000000d2';
http_get('/login', 'X-Omni-Token' => main::token($d2));
ok(wait_for(sub { my $p = main::profile("device:$d2"); $p && $p->{id} eq $cust->{id} }, 5),
   'another device logs in');
$r = main::post({ type => 'track', event => 'Signed Out', anonymousId => $d2 }, main::server());
is($r->{status}, 200, 'a server signs it out by anonymousId') or diag $r->{content};
$r = $next->($d2);
ok($r->{json}{profile} && $r->{json}{profile} ne $cust->{id}, 'that device left the customer')
    or diag $r->{content};
ok(!(grep { $_->{id} eq $d2 } @{ main::profile('customer:C-SHARED')->{aliases} || [] }),
   'the customer no longer lists it');
is(scalar(grep { ($_->{event} // '') eq 'Signed Out' && $_->{profileId} eq $cust->{id} } @{ main::feed() }),
   4, 'four sign-outs in the customer\'s feed');
--- no_error_log
[error]

=== TEST 4: a cookieless flood creates no profiles (the first request of a browser is logged, not folded); the visitor who comes back gets one
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m tp_max=300;
omni_consent_cookie CookieConsent analytics=statistics personalization=preferences ads=marketing;
--- config
location / { omni on; return 200 "ok\n"; }
--- request
GET /warm
--- check
my $set;
for my $i (1 .. 600) {
    # half of them with a CMP's cookie: a statement of consent does not
    # make a profile of a first request either
    my $r = http_get("/flood/$i", $i % 2 ? () : (Cookie => 'CookieConsent={statistics:true,marketing:false}'));
    $set //= $r->{headers}{'set-cookie'};
}
my ($cookie) = ($set // '') =~ /^(omni=[^;]+)/;
ok($cookie, 'each got a cookie');
# the first browser comes back: its second request creates its profile;
# when it is there, the fold has passed every flood request before it
http_get('/back', Cookie => $cookie);
# (the log was pruned to tp_max: read it from its first kept record)
my $tail = sub {
    my ($rc, $out, $err) = omnictl('--store', main::store(), 'tail', '--after', '0');
    if ($rc && $err =~ /first available: (\d+)/) {
        ($rc, $out, $err) = omnictl('--store', main::store(), 'tail', '--after', $1 - 1,
                                    '--limit', '10000');
    }
    return [ map { JSON::PP::decode_json($_) } split /\n/, $out ];
};
my $v;
ok(wait_for(sub { ($v) = map { $_->{anonymousId} }
                      grep { ($_->{properties}{path} // '') eq '/back' } @{ $tail->() };
                  $v && main::profile("cookie:$v") }, 5), 'the returning visitor has a profile');
my ($rc, $out) = omnictl('--store', main::store(), 'stat');
my $st = JSON::PP::decode_json($out);
is($st->{profiles}, 1, 'one profile for 601 requests: the flood created none');
ok($st->{touchpoints} <= 300, "the log stays within tp_max ($st->{touchpoints})");
--- no_error_log
[error]

=== TEST 5: anonymous profiles idle longer than anon_ttl are removed with their aliases; customers and recent visitors stay
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m anon_ttl=30d;
--- init
my $now = time;
my $old = $now - 40 * 86400;
my @p = (
    { id => 'a0000000000000000000000000000001', created => $old, updated => $old, visits => 3, visit_last => $old,
      aliases => [ { type => 'device', id => 'a00000000000000000000000000000d1' } ] },
    { id => 'a0000000000000000000000000000002', created => $old, updated => $old, visits => 1, visit_last => $old },
    { id => 'a0000000000000000000000000000003', created => $old, updated => $old, visits => 9, visit_last => $old,
      aliases => [ { type => 'customer', id => 'C-OLD' } ] },
    { id => 'a0000000000000000000000000000004', created => $old, updated => $now - 86400, visits => 2,
      visit_last => $now - 86400 },
    # identified by an email only, or by an order only: not anonymous
    { id => 'a0000000000000000000000000000005', created => $old, updated => $old, visits => 2, visit_last => $old,
      aliases => [ { type => 'email', id => 'ed' x 32 } ] },
    { id => 'a0000000000000000000000000000006', created => $old, updated => $old, visits => 2, visit_last => $old,
      orders => 1, revenue => 10 },
);
my $f = "$OmniTest::PREFIX/seed.ndjson";
open(my $fh, '>', $f) or die; print $fh JSON::PP->new->canonical->encode($_), "\n" for @p; close $fh;
mkdir "$OmniTest::PREFIX/store";
my ($rc, $o, $e) = omnictl('--store', "$OmniTest::PREFIX/store", 'import', '--create', $f);
die "import: $e" if $rc;
--- config
location / { omni on; return 200 "ok\n"; }
--- request
GET /warm
--- check
ok(wait_for(sub { !main::profile('a0000000000000000000000000000001')
                  && !main::profile('a0000000000000000000000000000002') }, 5),
   'the idle anonymous profiles are gone');
ok(!main::profile('device:a00000000000000000000000000000d1'), 'with their alias');
ok(main::profile('customer:C-OLD'), 'an idle customer stays');
ok(main::profile('a0000000000000000000000000000004'), 'a recent visitor stays');
ok(main::profile('a0000000000000000000000000000005'), 'an idle profile with an email stays');
ok(main::profile('a0000000000000000000000000000006'), 'an idle profile with an order stays');
--- no_error_log
[error]

=== TEST 6: anon_ttl must be at least 1h and not shorter than tp_max_age
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store anon_ttl=1d tp_max_age=7d;
--- config
location / { return 200; }
--- must_die
qr/"anon_ttl" \(86400 s\) is shorter than "tp_max_age" \(604800 s\): an expired profile's touchpoints would stay in \S+nginx\.conf:\d+/

=== TEST 6b: anon_ttl needs retention by age (tp_max_age=0 would keep an expired profile's touchpoints)
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store anon_ttl=90d tp_max_age=0;
--- config
location / { return 200; }
--- must_die
qr/"anon_ttl" needs "tp_max_age" \(it is 0, no limit\): an expired profile's touchpoints would stay in \S+nginx\.conf:\d+/

=== TEST 6c: anon_ttl is at least 1h
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store anon_ttl=30m tp_max_age=10m;
--- config
location / { return 200; }
--- must_die
invalid "anon_ttl=30m" (at least 1h, or off)

=== TEST 7: Sec-GPC or DNT on a browser's or app's own events: the feed keeps no referrer, campaign data, click id or advertising id, and marks them
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location = /omni/events { omni on; omni_events; }
--- request
GET /omni/events
--- error_code: 405
--- check
# what analytics.js sends for a page view, and an app's track call
my $page = { type => 'page', name => 'Trail',
             properties => { path => '/p/trail', referrer => 'https://news.example/a', title => 'Trail',
                             search => '?gclid=GCLID-1', url => 'https://shop.example/p/trail?gclid=GCLID-1',
                             utm_medium => 'email' },
             context => { page => { path => '/p/trail', referrer => 'https://news.example/a',
                                    search => '?gclid=GCLID-1',
                                    url => 'https://shop.example/p/trail?gclid=GCLID-1' },
                          campaign => { source => 'mail', medium => 'email', name => 'winter' },
                          referrer => { type => 'google', id => 'GCLID-1' },
                          library => { name => 'analytics.js', version => '4.1.0' } } };
my $app = { type => 'track', event => 'Product Viewed', properties => { sku => 'SKU-G' },
            context => { device => { advertisingId => 'ADID-6D92078A', manufacturer => 'Apple' },
                         campaign => { source => 'mail' } } };
my @sent = (
    [ 'gpc', 'browser, Sec-GPC: 1', $page, Cookie => main::cookie('96c00000000000000000000000000001'), 'Sec-GPC' => '1' ],
    [ 'dnt', 'app, DNT: 1', $app, 'X-Omni-Token' => main::token('96c000000000000000000000000000d1'), 'DNT' => '1' ],
    [ '', 'browser, no signal', $page, Cookie => main::cookie('96c00000000000000000000000000002') ],
    [ '', 'app, no signal', $app, 'X-Omni-Token' => main::token('96c000000000000000000000000000d2') ],
);
for my $s (@sent) {
    my ($mark, $name, $body, %h) = @$s;
    my $r = main::post($body, %h);
    is($r->{status}, 200, "$name: accepted") or diag $r->{content};
    my $id = $r->{json}{messageId};
    my ($rec) = grep { ($_->{messageId} // '') eq $id } @{ main::feed() };
    ok($rec, "$name: in the feed") or next;
    my $text = $main::JSON->encode($rec);
    if ($mark) {
        is($rec->{context}{privacy}, $mark, "$name: marked $mark");
        unlike($text, qr/news\.example|GCLID|ADID|winter|"utm_|"campaign"|"referrer"|"search"/,
               "$name: no referrer, campaign data, click id or advertising id") or diag $text;
    } else {
        ok(!exists $rec->{context}{privacy}, "$name: not marked");
        like($text, $body eq $page ? qr/news\.example.*GCLID-1/ : qr/ADID-6D92078A/,
             "$name: kept as sent") or diag $text;
    }
}
# what the event does is the same: the page is still a page, the product
# view still a view
my $p = main::profile('device:96c000000000000000000000000000d1');
ok($p && grep({ ($_->{sku} // '') eq 'SKU-G' } @{ $p->{views} || [] }), 'the GPC app\'s view is in its profile')
    or diag explain $p;
--- no_error_log
[error]

=== TEST 8: the consent cookie formats of privacy.md (Cookiebot, OneTrust, a site's own), every grant and refusal word, applied on the request over the profile's consent
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
--- user_files
>>> rules/r.json
{"id": "offer", "campaign": "offer",
 "banner": {"slot": "hero", "html": "<b>offer</b>"},
 "pixels": [{"img": "https://ads.example/px"}]}
--- config
omni_consent opt-in;
location = /cb { omni_consent_cookie CookieConsent analytics=statistics personalization=preferences ads=marketing; omni_decide; }
location = /ot { omni_consent_cookie OptanonConsent analytics=C0002 personalization=C0003 ads=C0004; omni_decide; }
location = /own { omni_consent_cookie consent analytics=analytics personalization=personalization ads=ads; omni_decide; }
location = /own-out { omni_consent opt-out; omni_consent_cookie consent analytics=analytics personalization=personalization ads=ads; omni_decide; }
location = /omni/events { omni on; omni_events; }
--- request
GET /own
--- check
my $n = 0;
# [banner, pixel] of a decision for a new visitor with this consent cookie
my $decide = sub {
    my ($path, $cookie, $vid) = @_;
    $vid //= sprintf('c00c1e00%024x', ++$n);
    my $r = http_get($path, Cookie => 'omni=' . mint_cookie(TEST_SECRET, $vid) . "; $cookie");
    my $j = JSON::PP::decode_json($r->{content});
    return ($j->{slots}{hero} ? 1 : 0) . (@{ $j->{pixels} || [] } ? 1 : 0);
};
# Cookiebot, as its script writes it (URL-encoded)
is($decide->('/cb', 'CookieConsent={stamp:%27q9Yx1Z3e0Lq1%2Bk9%2Fw%3D%3D%27%2Cnecessary:true%2Cpreferences:true%2Cstatistics:false%2Cmarketing:true%2Cmethod:%27explicit%27%2Cver:1%2Cutc:1733400000000%2Cregion:%27de%27}'),
   '11', 'Cookiebot: preferences and marketing granted');
is($decide->('/cb', 'CookieConsent={stamp:%27x%27%2Cnecessary:true%2Cpreferences:false%2Cstatistics:true%2Cmarketing:true}'),
   '00', 'Cookiebot: preferences refused');
# OneTrust, a whole OptanonConsent cookie
my $ot = 'isGpcEnabled=0&datestamp=Thu+Dec+04+2026+10%3A00%3A00+GMT%2B0100&version=202409.1.0'
       . '&browserGpcFlag=0&isIABGlobal=false&hosts=&consentId=0b7c2a&interactionCount=1'
       . '&isAnonUser=1&landingPath=NotLandingPage&groups=C0001%3A1%2CC0002%3A0%2CC0003%3A1%2CC0004%3AADS'
       . '&AwaitingReconsent=false';
is($decide->('/ot', 'OptanonConsent=' . ($ot =~ s/ADS/1/r)), '11', 'OneTrust: C0003 and C0004 granted');
is($decide->('/ot', 'OptanonConsent=' . ($ot =~ s/ADS/0/r)), '10', 'OneTrust: C0004 refused');
# a site's own
is($decide->('/own', 'consent=analytics:1|personalization:1|ads:0'), '10', 'own: ads:0');
is($decide->('/own', 'consent=analytics=1&personalization=1&ads=1'), '11', 'own, KEY=VALUE: all granted');
for my $w (qw(1 true yes granted allow allowed accepted on TRUE Granted)) {
    is($decide->('/own', "consent=personalization:1|ads:$w"), '11', "'$w' grants");
}
for my $w (qw(0 false no denied deny rejected off)) {
    is($decide->('/own', "consent=personalization:1|ads:$w"), '10', "'$w' refuses");
    is($decide->('/own-out', "consent=personalization:1|ads:$w"), '10', "'$w' refuses under opt-out");
}
# anything else, or no key, states nothing: the model decides
is($decide->('/own', 'consent=personalization:1|ads:maybe'), '10', 'opt-in: ads:maybe states nothing');
is($decide->('/own-out', 'consent=personalization:1|ads:maybe'), '11', 'opt-out: ads:maybe states nothing');
is($decide->('/own', 'consent=personalization:1'), '10', 'opt-in: no ads key');
is($decide->('/own-out', 'consent=analytics:0'), '11', 'opt-out: only analytics stated');
# a key is a whole word: 'xads' is not 'ads'
is($decide->('/own', 'consent=personalization:1|xads:1|badsport:1'), '10', 'no partial key');
# the cookie applies over what the profile holds, on the same request
my $vid = 'c00c1e00000000000000000000000ff1';
my $r = main::post({ type => 'track', event => 'Consent Updated',
                     properties => { personalization => JSON::PP::true, ads => JSON::PP::false } },
                   Cookie => 'omni=' . mint_cookie(TEST_SECRET, $vid));
is($r->{status}, 200, 'the profile refuses ads') or diag $r->{content};
is($decide->('/own', 'x=1', $vid), '10', 'profile: no pixel');
is($decide->('/own', 'consent=ads:1', $vid), '11', 'the cookie granting ads: pixels on that request');
--- no_error_log
[error]

=== TEST 9: a cookieless flood of events: one profile per accepted event, so limit_req on the events location bounds it (privacy.md)
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
limit_req_zone $binary_remote_addr zone=ev:1m rate=1r/m;
--- config
location = /omni/events { omni on; limit_req zone=ev burst=5 nodelay; limit_req_status 429; omni_events; }
--- request
GET /warm
--- error_code: 404
--- check
my %st;
for my $i (1 .. 60) {
    my $r = main::post({ type => 'track', event => 'Thing Done', messageId => "flood-$i" });
    $st{$r->{status}}++;
}
is($st{200}, 6, 'limit_req lets 6 through (1 + burst)') or diag explain \%st;
is($st{429}, 54, 'and refuses the rest');
my ($rc, $out) = omnictl('--store', main::store(), 'stat');
is(JSON::PP::decode_json($out)->{profiles}, 6, 'six profiles: what the limit let through');
--- no_error_log
[crit]

=== TEST 10: a banner on a browser's first request counts for caps only until the fold (it makes no profile): a cap of one shows once more, then holds
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m fold=0;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
--- user_files
>>> rules/r.json
{"id": "offer", "campaign": "offer", "cap": {"max": 1, "per": "1d"},
 "banner": {"slot": "hero", "html": "<b>offer</b>"}}
--- config
location / { omni on; default_type text/html; return 200 "<body><!--omni:slot hero--></body>"; }
--- request
GET /first
--- response_body: <body><b>offer</b></body>
--- check
my ($c) = ($resp->{headers}{'set-cookie'} // '') =~ /^(omni=[^;]+)/;
ok($c, 'a visitor cookie');
my $n = 0;
ok(wait_for(sub { $n++; http_get('/again', Cookie => $c)->{content} =~ /offer/ }, 5, 0.1),
   'once the fold dropped the first request, the banner shows once more') or diag "$n tries";
is(http_get('/then', Cookie => $c)->{content}, '<body><!--omni:slot hero--></body>',
   'and then the cap holds: that impression counted');
--- no_error_log
[error]
