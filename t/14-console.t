# The marketers' console (docs/console.md): the page served from memory
# by omni_console, its rules JSON (rules serving, a broken change's
# errors), and the page in a real browser (headless Chromium, installed by
# scripts/install-deps.sh; the browser part skips, saying why, without
# it): it lists the rules and, for a customer id typed in, shows the
# decision on every channel with the explanation.  The browser run also
# takes a screenshot, build/screenshots/console.png (docs/console.png).

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use JSON::PP ();

our $CHROMIUM = (grep { -x } map { "$_/chromium" } split /:/, $ENV{PATH} // '')[0];

sub chromium {
    my (@args) = @_;
    return run_command([ $CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu',
                         '--disable-dev-shm-usage', '--no-first-run',
                         "--user-data-dir=$OmniTest::PREFIX/chromium",
                         '--virtual-time-budget=10000', @args ],
                       timeout => 60);
}

run_blocks();

__DATA__

=== TEST 1: the page and the rules JSON; a broken change shows its errors while the previous rules serve
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=1s;
--- user_files
>>> rules/a.json
{"id": "welcome", "priority": 10, "when": {"stage": "new"},
 "banner": {"slot": "hero", "html": "<p>Welcome</p>", "text": "Welcome"}}
--- config
location /omni/console/ {
    allow 127.0.0.1;
    deny all;
    omni_console;
}
location = /omni/console/decide {
    allow 127.0.0.1;
    deny all;
    omni_admin_decide;
}
--- request
GET /omni/console/
--- response_headers
Content-Type: text/html
Cache-Control: no-store
X-Frame-Options: DENY
--- response_body_like
<title>omni console</title>
--- request_2
GET /omni/console/rules
--- response_body_like_2
^\{"dir":"[^"]+/rules","loaded":1,"broken":false,"errors":\[\],"rules":\[\{"id":"welcome","campaign":"welcome","slot":"hero","priority":10,"enabled":true,"file":"[^"]+/rules/a\.json","impressions_today":0,"holdouts_today":0,"impressions":0,"holdouts":0\}\],"files":\[\{"file":"[^"]+/rules/a\.json","broken":false,"serving":"this version"\}\]\}$
--- check
# a broken change: the console says so, with file:line:column
open my $f, '>', "$OmniTest::PREFIX/rules/b.json" or die;
print $f qq({"id": "b",\n "banner": {"slot": "hero", "html": "{{frist_name}}"}}\n);
close $f;
my $d;
ok(wait_for(sub {
    $d = eval { JSON::PP::decode_json(http_get('/omni/console/rules')->{content}) };
    $d && $d->{broken};
}, 10), 'the broken change shows') or diag explain $d;
is($d->{loaded}, 1, 'the previous rules keep serving');
like($d->{errors}[0], qr{/rules/b\.json:2:38: banner\.html: unknown template variable "frist_name" \(did you mean "first_name"\?},
     'its error, with file:line:column');
is_deeply([ map { [ $_->{file} =~ m{([^/]+)$}, $_->{broken} ? 1 : 0, $_->{serving} ] } @{ $d->{files} } ],
          [ [ 'a.json', 0, 'this version' ], [ 'b.json', 1, 'nothing' ] ],
          'the files: the new broken one is left out') or diag explain $d->{files};
--- error_log
omni_rules: 
qr/1 file\(s\) in "[^"]+" do not compile, their last good version keeps serving/

=== TEST 2: in a real browser: the rules, and a customer's decision on every channel with the explanation
--- skip_if: !$main::CHROMIUM
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_ROOT/rules;
--- config
location / { omni on; return 200 "ok\n"; }
location /omni/console/ { allow 127.0.0.1; deny all; omni_console; }
location = /omni/console/decide { allow 127.0.0.1; deny all; omni_admin_decide; }
--- init
my ($rc, $out, $err) = omnictl('--store', "$OmniTest::PREFIX/store", '--map-size', '16m',
                               'stat', '--create');
die $err if $rc;
($rc, $out, $err) = omnictl({ stdin => '{"id":"a11ce0000000000000000000000000a1","visits":3,'
    . '"aliases":[{"type":"customer","id":"cust-1001"}],"attributes":{"first_name":"Ana"},'
    . '"cart":{"updated_at":' . (time - 7200) . ',"items":[{"sku":"TRAIL-42","qty":1,"price":129}]}}' . "\n" },
    '--store', "$OmniTest::PREFIX/store", 'import', '-');
die $err if $rc;
--- request
GET /omni/console/
--- check
my $url = "http://127.0.0.1:$OmniTest::PORT/omni/console/?visitor=cust-1001";
my ($rc, $dom, $err) = main::chromium('--dump-dom', $url);
is($rc, 0, 'chromium ran') or diag $err;
like($dom, qr{<td>cart-abandon</td><td>cart-abandon</td><td>hero</td><td>50</td>}, 'the rules table');
like($dom, qr{\d+ rule\(s\) serving from }, 'the status line');
for my $ch (qw(web app email sms)) {
    like($dom, qr{<div class="channel" id="channel-$ch"><h3>$ch</h3><p class="slot"><strong>hero: cart-abandon</strong>},
         "$ch: the cart offer");
}
like($dom, qr{<div class="explanation">cart-abandon: shown in slot hero</div>}, 'the explanation');
like($dom, qr{Still thinking about the|your cart is still waiting|items in your cart}i, 'the rendered text');
like($dom, qr{<pre id="profile">\{.*"first_name": "Ana".*</pre>}s, 'the visitor\'s profile');
like($dom, qr{<th>impressions today</th><th>holdouts today</th>}, 'the counts columns');
like($dom, qr{<td>cart-abandon</td>(?:<td>[^<]*</td>){5}<td class="n">0</td><td class="n">0</td>},
     'a rule\'s counts (the console itself counts nothing)');

# the live feed: a page seen by a visitor appears in it
http_get('/shop/trail-42');
ok(wait_for(sub { http_get('/omni/console/feed')->{content} =~ m{/shop/trail-42} }, 5), 'the page is in the feed');
like($dom, qr{<p id="feed-status">following the feed, cursor \d+</p>}, 'the feed is followed');
($rc, $dom, $err) = main::chromium('--dump-dom', $url);
like($dom, qr{<li class="touch">\d+  \S+  web  Page Viewed  [0-9a-f]{32}  /shop/trail-42</li>}, 'the feed, live, in the page')
    or diag $dom =~ m{(<ul id="feed">.*?</ul>)}s;

# "try this rule": a draft with an error shows it with its line and column
my $esc = sub { my ($t) = @_; $t =~ s/([^A-Za-z0-9_.~-])/sprintf '%%%02X', ord $1/ge; $t };
my $bad = qq({"id": "vip",\n "banner": {"slot": "hero", "htm": "x"}}\n);
my $try = "$url&draft=" . $esc->($bad);
($rc, $dom, $err) = main::chromium('--dump-dom', $try);
like($dom, qr{<ul class="errors" id="try-errors"><li>\S+/rules/draft\.json:2:29: banner\.htm: unknown key "htm" in banner</li></ul>},
     'the draft\'s error, with line and column') or diag $dom =~ m{(<div id="try-result">.*?</div>)}s;
# a good draft: what it would give the visitor on every channel, not live
my $good = qq({"id": "vip", "priority": 90, "when": {"visits": {"gte": 2}},\n)
         . qq( "banner": {"slot": "hero", "html": "<p>VIP {{first_name}}</p>", "text": "VIP {{first_name}}"}}\n);
$try = "$url&draft=" . $esc->($good);
($rc, $dom, $err) = main::chromium('--dump-dom', $try);
like($dom, qr{<p class="ok" id="try-ok">The draft compiles: \d+ rule\(s\) with it, as \S+/rules/draft\.json\. What it would give cust-1001:</p>},
     'the draft compiles') or diag $dom =~ m{(<div id="try-result">.*)}s;
for my $ch (qw(web app email sms)) {
    like($dom, qr{<div class="channel" id="try-channel-$ch"><h3>$ch</h3><p class="slot"><strong>hero: vip</strong><span> VIP Ana</span></p>},
         "$ch: the draft's banner for the visitor");
}
like($dom, qr{<div class="channel" id="channel-web"><h3>web</h3><p class="slot"><strong>hero: cart-abandon</strong>},
     'while the live decision is still the cart offer');
($rc, undef, $err) = main::chromium('--screenshot=' . "$TEST_NGINX_ROOT/build/screenshots/console-try.png",
                                    '--window-size=1100,2200', '--hide-scrollbars', $try);
ok($rc == 0, 'screenshot of the try box') or diag $err;
# a picture (docs/console.png is a copy of one)
mkdir "$TEST_NGINX_ROOT/build/screenshots";
my $png = "$TEST_NGINX_ROOT/build/screenshots/console.png";
($rc, undef, $err) = main::chromium('--screenshot=' . $png, '--window-size=1100,1300',
                                    '--hide-scrollbars', $url);
ok($rc == 0 && -s $png, 'screenshot') or diag $err;
--- no_error_log
[error]

=== TEST 3: each rule's impressions and holdouts today; "try this rule" compiles a draft with the rules serving and decides, without making it live; the live feed
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
--- user_files
>>> rules/a.json
{"rules": [
 {"id": "welcome", "priority": 10,
  "banner": {"slot": "hero", "html": "<p>Welcome</p>", "text": "Welcome"}},
 {"id": "control", "priority": 20, "holdout": {"percent": 100},
  "banner": {"slot": "hero", "html": "<p>Test</p>", "text": "Test"}}
]}
>>> html/index.html
<body><!--omni:slot hero--></body>
--- config
location / { omni on; }
location /omni/console/ { allow 127.0.0.1; deny all; omni_console; }
location = /omni/console/decide { allow 127.0.0.1; deny all; omni_admin_decide; }
location = /omni/metrics { omni_metrics; }
--- init
my ($rc, $out, $err) = omnictl('--store', "$OmniTest::PREFIX/store", '--map-size', '16m',
                               'stat', '--create');
die $err if $rc;
use Digest::SHA ();
($rc, $out, $err) = omnictl({ stdin => '{"id":"a11ce0000000000000000000000000a1","visits":3,'
    . '"aliases":[{"type":"customer","id":"cust-1001"},'
    . '{"type":"email","id":"' . Digest::SHA::sha256_hex('ana@example.com') . '"},'
    . '{"type":"cookie","id":"c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c1"},'
    . '{"type":"device","id":"d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d1"}],"attributes":{"first_name":"Ana"}}' . "\n" },
    '--store', "$OmniTest::PREFIX/store", 'import', '-');
die $err if $rc;
--- request
GET /index.html
--- response_body
<body><p>Welcome</p></body>
--- check
use JSON::PP ();
my $json = JSON::PP->new;
# 1. today's counts: two pages shown "welcome", held "control" back twice
http_get('/index.html');
my $d;
ok(wait_for(sub {
    $d = $json->decode(http_get('/omni/console/rules')->{content});
    my %r = map { $_->{id} => $_ } @{ $d->{rules} };
    $r{welcome}{impressions_today} == 2 && $r{control}{holdouts_today} == 2;
}, 5), 'impressions and holdouts today, by rule') or diag explain $d;
my %r = map { $_->{id} => $_ } @{ $d->{rules} };
is($r{control}{impressions_today}, 0, 'the held-back rule was never shown');
is($r{welcome}{holdouts_today}, 0, 'and the other one never held back');
is($r{welcome}{impressions}, 2, 'the totals too');
like(http_get('/omni/metrics')->{content}, qr/^omni_rule_holdouts_total\{rule="control"\} 2$/m,
     'the holdouts in the metrics');

# 1b. a visitor by customer id, email, cookie or app token: the profile, and the decision
use OmniCookie;
my @whom = ('customer=cust-1001', 'email=Ana%40Example.com', 'profile=a11ce0000000000000000000000000a1',
            'cookie=' . mint_cookie(TEST_SECRET, 'c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c1'),
            'token=' . mint_token(TEST_SECRET, 'd0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d1'),
            'cookie=' . mint_token(TEST_SECRET, 'd0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d1'));
for my $w (@whom) {
    my $p = http_get("/omni/console/profile?$w");
    is($p->{status}, 200, "profile by $w") or diag $p->{content};
    my $pd = eval { $json->decode($p->{content}) } || {};
    is($pd->{profile}{id}, 'a11ce0000000000000000000000000a1', "$w: the profile");
    is($pd->{profile}{attributes}{first_name}, 'Ana', "$w: its attributes");
    my $dd = $json->decode(http_get("/omni/console/decide?$w&channel=email")->{content});
    is($dd->{slots}{hero}{rule}, 'welcome', "$w: the decision");
}
my $p = http_get('/omni/console/profile?email=nobody%40example.com');
is($p->{status}, 404, 'an unknown email: 404');
like($p->{content}, qr/"field":"email"/, 'naming email');
$p = http_get('/omni/console/profile?cookie=' . mint_cookie('another-secret-0123456789-abcdefghijklmnop', 'c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c1'));
is($p->{status}, 400, 'a forged cookie: 400');
like($p->{content}, qr/"error":"bad signature","field":"cookie"/, 'saying why');
$p = http_get('/omni/console/profile?cookie=' . mint_cookie(TEST_SECRET, 'c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c9'));
is($p->{status}, 404, 'a visitor never seen: no profile yet');
like($p->{content}, qr/"error":"no profile yet"/, 'saying so');
is(http_get('/omni/console/profile')->{status}, 400, 'nobody named: 400');

# 2. a draft with an error: 422, every error with the draft's file:line:column
my $r = http_request('POST', '/omni/console/try?customer=cust-1001&channel=web',
                     qq({"id": "vip",\n "banner": {"slot": "hero", "htm": "x"}}\n));
is($r->{status}, 422, 'a broken draft is 422');
my $e = $json->decode($r->{content});
ok(!$e->{ok}, 'not ok');
like($e->{errors}[0], qr{/rules/draft\.json:2:29: banner\.htm: unknown key "htm" in banner}, 'its error, as it would read in the directory')
    or diag explain $e;
$r = http_request('POST', '/omni/console/try', qq({"id": "welcome", "banner": {"slot": "hero", "html": "x"}}));
is($r->{status}, 422, 'a draft clashing with a rule serving is 422');
like($r->{content}, qr/duplicate|already/i, 'naming the clash');

# 3. a good draft: the decision it would give, with the explanation
my $draft = qq({"id": "vip", "priority": 50, "when": {"visits": {"gte": 2}},\n)
          . qq( "banner": {"slot": "hero", "html": "<p>VIP {{first_name}}</p>", "text": "VIP {{first_name}}"}}\n);
$r = http_request('POST', '/omni/console/try?customer=cust-1001&channel=email', $draft);
is($r->{status}, 200, 'a good draft is 200') or diag $r->{content};
$d = $json->decode($r->{content});
ok($d->{ok}, 'ok');
is($d->{rules}, 3, 'loaded with the two rules serving');
like($d->{file}, qr{/rules/draft\.json$}, 'as draft.json of the directory');
is($d->{decision}{channel}, 'email', 'on the channel asked');
is($d->{decision}{slots}{hero}{rule}, 'vip', 'the draft wins the slot');
is($d->{decision}{slots}{hero}{text}, 'VIP Ana', 'rendered for the visitor');
ok((grep { /^vip: shown in slot hero/ } @{ $d->{decision}{explanation} }), 'with the explanation')
    or diag explain $d->{decision}{explanation};
# the visitor by email
$r = http_request('POST', '/omni/console/try?email=ana%40example.com&channel=sms', $draft);
$d = $json->decode($r->{content});
is($d->{decision}{slots}{hero}{rule}, 'vip', 'a visitor by email too') or diag $r->{content};
# validation only, without a visitor; file= replaces a file serving
$r = http_request('POST', '/omni/console/try?file=a.json', $draft);
$d = $json->decode($r->{content});
is($d->{rules}, 1, 'file=a.json replaces a.json');
is($d->{decision}, undef, 'no visitor, no decision');
# nothing went live, nothing was recorded
is($json->decode(http_get('/omni/console/rules')->{content})->{loaded}, 2, 'the rules serving are unchanged');
is(http_get('/index.html')->{content}, "<body><p>Welcome</p></body>\n", 'pages too');
$d = $json->decode(http_get('/omni/console/decide?customer=cust-1001&channel=email')->{content});
is($d->{slots}{hero}{rule}, 'welcome', 'and the live decision');
# bad requests
is(http_get('/omni/console/try')->{status}, 405, 'GET .../try is 405');
$r = http_request('POST', '/omni/console/try?file=../x.json', $draft);
is($r->{status}, 400, 'a file name with a path is 400');
like($r->{content}, qr/"field":"file"/, 'naming file');
$r = http_request('POST', '/omni/console/try?file=x.txt', $draft);
is($r->{status}, 400, 'a name nginx would ignore is 400');
$r = http_request('POST', '/omni/console/try?customer=nobody', $draft);
is($r->{status}, 404, 'an unknown customer is 404');

# 4. the live feed: the last lines, then what comes after the cursor
my $f;
ok(wait_for(sub { $f = http_get('/omni/console/feed'); $f->{content} =~ tr/\n// >= 3 }, 5),
   'the feed has the three pages') or diag $f->{content};
is($f->{headers}{'content-type'}, 'application/x-ndjson', 'NDJSON');
my $cursor = $f->{headers}{'x-omni-cursor'};
like($cursor, qr/^\d+$/, 'with its cursor');
$f = http_get('/omni/console/feed?limit=1');
is($f->{content} =~ tr/\n//, 1, 'limit=1: the last line only');
is($f->{headers}{'x-omni-cursor'}, $cursor, 'the same cursor');
is(http_get("/omni/console/feed?after=$cursor")->{content}, '', 'nothing after it yet');
http_get('/index.html?after');
ok(wait_for(sub { http_get("/omni/console/feed?after=$cursor")->{content} =~ m{"path":"/index.html"} }, 5),
   'a new page comes after the cursor');
is(http_get('/omni/console/feed?after=x')->{status}, 400, 'a bad cursor is 400');
--- no_error_log
[error]
