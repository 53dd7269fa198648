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
^\{"dir":"[^"]+/rules","loaded":1,"broken":false,"errors":\[\],"rules":\[\{"id":"welcome","campaign":"welcome","slot":"hero","priority":10,"enabled":true,"file":"[^"]+/rules/a\.json"\}\]\}$
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
--- error_log
omni_rules: 
qr/does not compile, the previous rules keep serving/

=== TEST 2: in a real browser: the rules, and a customer's decision on every channel with the explanation
--- skip_if: !$main::CHROMIUM
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_ROOT/rules;
--- config
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
# a picture (docs/console.png is a copy of one)
mkdir "$TEST_NGINX_ROOT/build/screenshots";
my $png = "$TEST_NGINX_ROOT/build/screenshots/console.png";
($rc, undef, $err) = main::chromium('--screenshot=' . $png, '--window-size=1100,1300',
                                    '--hide-scrollbars', $url);
ok($rc == 0 && -s $png, 'screenshot') or diag $err;
--- no_error_log
[error]
