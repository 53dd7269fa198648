# The HTML injection filter (GUIDE R8, R9): banners at slot markers, pixels
# before </body>, the fallback, markers cut by any buffer split, and every
# response shape that must pass through untouched (HEAD, 304, 206, other
# types, empty bodies, compressed upstreams, subrequests, omni_inject off),
# plus what injection does to caching headers and a proxy_cache in front.
#
# Every block writes the same small rule set and pages (setup() below) into
# its prefix; expected bodies are spelt out in the blocks or computed by
# oracle(), an independent Perl model of what the filter must produce.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use OmniCookie;
use IO::Compress::Gzip     qw(gzip $GzipError);
use IO::Uncompress::Gunzip qw(gunzip $GunzipError);
use JSON::PP ();
use POSIX ();

# --- the rules and what they render ----------------------------------------

our $RULES = <<'JSON';
{
  "rules": [
    {"id": "vip", "priority": 100, "when": {"stage": "loyal"},
     "banner": {"slot": "hero",
                "html": "<div class=\"omni\">VIP {{first_name|member}}</div>"}},
    {"id": "welcome", "priority": 10, "when": {"stage": "new"},
     "banner": {"slot": "hero",
                "html": "<div class=\"omni\">Welcome! $100 off</div>"},
     "pixels": [{"img": "https://px.example.com/p.gif?r=welcome"}]},
    {"id": "side", "when": {"stage": ["new", "loyal"]},
     "banner": {"slot": "aside", "html": "<aside>SIDE</aside>"}}
  ]
}
JSON

our $HERO  = '<div class="omni">Welcome! $100 off</div>';
our $VIP   = '<div class="omni">VIP Ana</div>';
our $ASIDE = '<aside>SIDE</aside>';
our $PIX   = '<img src="https://px.example.com/p.gif?r=welcome" width="1" height="1" alt="">';

# What a new visitor is shown (slot => banner), and the pixels.
our %NEW = (slots => { hero => $HERO, aside => $ASIDE }, pixels => $PIX);
our %BIG;     # set by TEST 25

# --- visitors ----------------------------------------------------------------

our $VID   = 'c0ffee00000000000000000000000001';   # no profile: stage new
our $VID2  = 'c0ffee00000000000000000000000002';
our $LOYAL = '10ca1000000000000000000000000001';   # 6 orders: VIP
our $CUST  = 'c5700000000000000000000000000001';   # 1 order: nothing shown

sub cookie { 'omni=' . mint_cookie(TEST_SECRET, $_[0] // $VID) }

# --- pages -------------------------------------------------------------------

our %PAGE = (
    'index.html' => <<'HTML',
<!DOCTYPE html>
<html><head><title>shop</title></head>
<body>
<!--omni:slot hero-->
<p>Hello</p>
<!--omni:slot aside-->
</body>
</html>
HTML

    'nomarker.html' => "<html><body><p>no markers here</p></body></html>\n",

    # Near misses stay literal; an unknown slot and a second marker for a
    # slot already filled stay as they are; only the first </body> counts.
    'tricky.html' => <<'HTML',
<html><body>
<!--omni:slo--><!--omni:slot--><!-- omni:slot hero--><!--omni:slot bad name-->
<!--omni:slot hero->x <!--omni:slotx hero--> <!-omni:slot hero-->
<!--omni:slot nobanner-->
<!--omni:slot hero   -->
<!--omni:slot hero-->
<p>&lt;/body&gt; <!--omni:slot aside--></p>
</BODY><!--omni:slot aside--></body>
</html>
HTML

    # The marker is the very last thing in the file (no newline, no </body>).
    'end.html' => "<p>top</p><!--omni:slot aside--><p>x</p><!--omni:slot hero-->",

    # A marker cut off by the end of the file is plain text.
    'partial.html'  => "<html><body><p>a</p></body></html>\n<!--omni:slo",
    'partial2.html' => "<p>no body tag</p><!--omni:slot her",

    'page.txt'  => "plain <!--omni:slot hero--> text </body>\n",
    'frag.html' => "<div class=\"frag\"><!--omni:slot aside--></div>\n",
    'ssi.html'  => <<'HTML',
<html><body>
<!--omni:slot hero-->
<!--# include virtual="/frag.html" -->
</body></html>
HTML
    '404.html'  => "<html><body><!--omni:slot hero-->not found</body></html>\n",
    'empty.html' => '',
    # SSI turns this into a 200 with a chunked, empty body
    'ssi-empty.html' => '<!--# echo var="no_such_variable" default="" -->',
);

# 2,000 tags, markers and near misses spread through them, </body> at the end.
{
    my $s = "<!DOCTYPE html>\n<html><body>\n";
    for my $i (1 .. 2000) {
        $s .= "<span class=\"t$i\">$i</span>";
        $s .= "<!--omni:slot hero-->"  if $i == 777;
        $s .= "<!--omni:slot aside-->" if $i == 1500;
        $s .= "<!--omni:slot ghost-->" if $i == 1000;
        $s .= "<!--omni:sl"            if $i % 97 == 0;
        $s .= "<"                      if $i % 89 == 0;
        $s .= "</bod"                  if $i % 83 == 0;
        $s .= "\n"                     if $i % 10 == 0;
    }
    $PAGE{'big.html'} = $s . "</body>\n</html>\n";
}

# oracle($page, slots => {name => html}, pixels => $html, fallback => 1):
# banners replace the first marker of their slot, unknown and repeated
# markers stay, the first </body> (any case) gets the unplaced banners
# (slot-name order, in <div data-omni-slot>) and then the pixels; without
# </body> they go at the very end.
sub oracle {
    my ($html, %o) = @_;
    my %left = %{ $o{slots} || {} };
    my $pixels = $o{pixels} // '';
    my $fallback = $o{fallback} // 1;
    my $tail = sub {
        my $t = '';
        if ($fallback) {
            $t .= "<div data-omni-slot=\"$_\">$left{$_}</div>" for sort keys %left;
        }
        %left = ();
        return $t . $pixels;
    };
    my ($out, $done, $at) = ('', 0, 0);
    while ($html =~ /\G(.*?)(?:(<!--omni:slot ([A-Za-z0-9_.-]{1,64}) *-->)|((?i)<\/body>))/gcs) {
        $out .= $1;
        $at = pos $html;
        if (defined $2) {
            $out .= exists $left{$3} ? delete $left{$3} : $2;
        } elsif ($done) {
            $out .= $4;
        } else {
            $out .= $tail->() . $4;
            $done = 1;
        }
    }
    $out .= substr $html, $at;
    $out .= $tail->() unless $done;
    return $out;
}

# --- prefix setup ----------------------------------------------------------

sub spew {
    my ($path, $text) = @_;
    open(my $fh, '>:raw', $path) or die "$path: $!";
    print $fh $text;
    close $fh or die "$path: $!";
}

sub slurp {
    my ($path) = @_;
    open(my $fh, '<:raw', $path) or die "$path: $!";
    local $/;
    return scalar <$fh>;
}

# Writes the rules and every page; a pre-compressed copy of gz.html for
# gzip_static.
sub setup {
    my $p = $OmniTest::PREFIX;
    mkdir "$p/rules";
    spew("$p/rules/r.json", $RULES);
    spew("$p/html/$_", $PAGE{$_}) for keys %PAGE;
    spew("$p/html/gz.html", $PAGE{'index.html'});
    my $gz;
    gzip(\$PAGE{'index.html'} => \$gz, Minimal => 1) or die $GzipError;
    spew("$p/html/gz.html.gz", $gz);
}

# Seeds the store with the loyal and the customer profile.
sub seed {
    my $store = "$OmniTest::PREFIX/store";
    my ($rc, $out, $err) = omnictl('--store', $store, 'stat', '--create');
    die "omnictl stat --create: $err" if $rc;
    my $now = time;
    my $file = "$OmniTest::PREFIX/seed.ndjson";
    spew($file, join '', map { JSON::PP->new->canonical->encode($_) . "\n" }
        { id => $LOYAL, visits => 40, orders => 6, created => $now - 86400 * 300,
          attributes => { first_name => 'Ana' } },
        { id => $CUST, visits => 3, orders => 1, created => $now - 86400 * 30 });
    ($rc, $out, $err) = omnictl('--store', $store, 'import', $file);
    die "omnictl import: $err" if $rc;
}

sub get_profile {
    my ($id) = @_;
    my ($rc, $out) = omnictl('--store', "$OmniTest::PREFIX/store", 'get', $id);
    return $rc == 0 ? JSON::PP::decode_json($out) : undef;
}

sub http_date {
    return POSIX::strftime('%a, %d %b %Y %H:%M:%S GMT', gmtime $_[0]);
}

# The stock static module's ETag and Last-Modified for a page.
sub static_validators {
    my ($name) = @_;
    my @st = stat "$OmniTest::PREFIX/html/$name" or die "$name: $!";
    return (sprintf('"%x-%x"', $st[9], $st[7]), http_date($st[9]));
}

run_blocks();

__DATA__

=== TEST 1: a new visitor: banners at their markers, pixels right before </body>
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
--- config
omni on;
location / { add_header X-Omni-Rules $omni_rules; }
--- request
GET /index.html
--- response_body
<!DOCTYPE html>
<html><head><title>shop</title></head>
<body>
<div class="omni">Welcome! $100 off</div>
<p>Hello</p>
<aside>SIDE</aside>
<img src="https://px.example.com/p.gif?r=welcome" width="1" height="1" alt=""></body>
</html>
--- response_headers
Content-Type: text/html
Cache-Control: private, no-cache
X-Omni-Rules: welcome,side
Transfer-Encoding: chunked
!Content-Length
!ETag
!Last-Modified
!Accept-Ranges
--- response_headers_like
Set-Cookie: ^omni=[A-Za-z0-9_-]{56};
--- check
is($resp->{content}, main::oracle($main::PAGE{'index.html'}, %main::NEW),
   'the oracle agrees with the literal expectation');
--- no_error_log
[error]
[warn]

=== TEST 2: no marker: banners fall back to right before </body>; omni_fallback off keeps only the pixels
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
--- config
omni on;
location /nofb/ {
    alias $TEST_NGINX_HTML/;
    omni_fallback off;
}
--- request
GET /nomarker.html
--- more_headers eval
"Cookie: " . main::cookie()
--- response_body
<html><body><p>no markers here</p><div data-omni-slot="aside"><aside>SIDE</aside></div><div data-omni-slot="hero"><div class="omni">Welcome! $100 off</div></div><img src="https://px.example.com/p.gif?r=welcome" width="1" height="1" alt=""></body></html>
--- request_2
GET /nofb/nomarker.html
--- more_headers_2 eval
"Cookie: " . main::cookie()
--- response_body_2
<html><body><p>no markers here</p><img src="https://px.example.com/p.gif?r=welcome" width="1" height="1" alt=""></body></html>
--- response_headers_2
Cache-Control: private, no-cache
!Content-Length
--- request_3
GET /nofb/index.html
--- more_headers_3 eval
"Cookie: " . main::cookie()
--- response_body_3 eval
main::oracle($main::PAGE{'index.html'}, %main::NEW)
--- no_error_log
[error]

=== TEST 3: near misses, unknown slots, repeated markers, upper-case </BODY>, marker at EOF, partial marker at EOF
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
--- config
omni on;
--- request
GET /tricky.html
--- more_headers eval
"Cookie: " . main::cookie()
--- response_body
<html><body>
<!--omni:slo--><!--omni:slot--><!-- omni:slot hero--><!--omni:slot bad name-->
<!--omni:slot hero->x <!--omni:slotx hero--> <!-omni:slot hero-->
<!--omni:slot nobanner-->
<div class="omni">Welcome! $100 off</div>
<!--omni:slot hero-->
<p>&lt;/body&gt; <aside>SIDE</aside></p>
<img src="https://px.example.com/p.gif?r=welcome" width="1" height="1" alt=""></BODY><!--omni:slot aside--></body>
</html>
--- request_2
GET /end.html
--- more_headers_2 eval
"Cookie: " . main::cookie()
--- response_body_2 chomp
<p>top</p><aside>SIDE</aside><p>x</p><div class="omni">Welcome! $100 off</div><img src="https://px.example.com/p.gif?r=welcome" width="1" height="1" alt="">
--- request_3
GET /partial.html
--- more_headers_3 eval
"Cookie: " . main::cookie()
--- response_body_3 eval
"<html><body><p>a</p><div data-omni-slot=\"aside\"><aside>SIDE</aside></div>"
. "<div data-omni-slot=\"hero\">$main::HERO</div>$main::PIX</body></html>\n<!--omni:slo"
--- request_4
GET /partial2.html
--- more_headers_4 eval
"Cookie: " . main::cookie()
--- response_body_4 eval
"<p>no body tag</p><!--omni:slot her<div data-omni-slot=\"aside\"><aside>SIDE</aside></div>"
. "<div data-omni-slot=\"hero\">$main::HERO</div>$main::PIX"
--- check
for my $i (0 .. 3) {
    my $page = ('tricky.html', 'end.html', 'partial.html', 'partial2.html')[$i];
    is($responses->[$i]{content}, main::oracle($main::PAGE{$page}, %main::NEW),
       "$page: the oracle agrees");
}
--- no_error_log
[error]

=== TEST 4: markers split across buffers: 1, 3, 7 byte and big buffers give byte-identical pages
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
--- config
omni on;
sendfile off;
location /b1/  { alias $TEST_NGINX_HTML/; output_buffers 1 1; }
location /b3/  { alias $TEST_NGINX_HTML/; output_buffers 1 3; }
location /b7/  { alias $TEST_NGINX_HTML/; output_buffers 1 7; }
location /b2x5/ { alias $TEST_NGINX_HTML/; output_buffers 2 5; }
location /big/ { alias $TEST_NGINX_HTML/; output_buffers 1 1m; }
# the same pages from an upstream, unbuffered: whatever the reads give
location /raw1/ { omni off; alias $TEST_NGINX_HTML/; output_buffers 1 1; }
location /pb/ {
    proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/raw1/;
    proxy_buffering off;
    proxy_http_version 1.1;
}
--- timeout: 60
--- check
my @pages = qw(index.html tricky.html big.html end.html partial.html partial2.html);
my @locs  = qw(big b1 b3 b7 b2x5 pb);
my $cookie = main::cookie();
for my $page (@pages) {
    my $want = main::oracle($main::PAGE{$page}, %main::NEW);
    isnt($want, $main::PAGE{$page}, "$page: the page is personalized at all");
    my %got;
    for my $loc (@locs) {
        my $r = http_get("/$loc/$page", Cookie => $cookie);
        is($r->{status}, 200, "$page via /$loc/: 200");
        $got{$loc} = $r->{content};
        ok($got{$loc} eq $want, "$page via /$loc/: byte-identical to the expected page")
            or diag("length got " . length($got{$loc}) . ", want " . length($want)
                    . "\nfirst difference at byte "
                    . (grep { substr($got{$loc}, $_, 1) ne substr($want, $_, 1) }
                       0 .. length $want)[0]);
    }
    ok(!grep({ $got{$_} ne $got{big} } @locs), "$page: every split gives the same bytes");
}
my $n = () = main::oracle($main::PAGE{'big.html'}, %main::NEW) =~ /<span class="t\d+">/g;
is($n, 2000, 'big.html: all 2,000 tags survive');
--- no_error_log
[error]

=== TEST 5: HEAD is untouched: the static headers, no body, no decision
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
--- config
omni on;
--- raw_request eval
"HEAD /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nCookie: "
. main::cookie() . "\r\n\r\n"
--- response_headers eval
"Content-Length: " . length($main::PAGE{'index.html'}) . "\nAccept-Ranges: bytes\n!Cache-Control\n!Transfer-Encoding\n"
--- response_headers_like
ETag: ^"[0-9a-f]+-[0-9a-f]+"$
Last-Modified: GMT$
--- check
my ($etag, $lm) = main::static_validators('index.html');
is($resp->{headers}{etag}, $etag, 'HEAD: the static ETag');
is($resp->{headers}{'last-modified'}, $lm, 'HEAD: the static Last-Modified');
like($resp->{raw}, qr/\r\n\r\n\z/, 'HEAD: nothing after the header');
my $raw = raw_request(undef, "HEAD /index.html HTTP/1.1\r\nHost: localhost\r\n"
                      . "Connection: close\r\nCookie: " . main::cookie() . "\r\n\r\n",
                      until_close => 1);
like($raw, qr/\r\n\r\n\z/, 'HEAD: the connection closes with no body bytes');
my $get = http_get('/index.html', Cookie => main::cookie());
like($get->{content}, qr/\Q$main::HERO\E/, 'GET of the same page is injected (control)');
--- no_error_log
[error]

=== TEST 6: a HEAD request counts no impression (a GET does)
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
main::seed();
--- config
omni on;
--- request
HEAD /index.html
--- more_headers eval
"Cookie: " . main::cookie($main::LOYAL)
--- check
my $p;
my $imp = sub { my ($c) = @_; my ($i) = grep { $_->{campaign} eq $c } @{ $p->{impressions} // [] };
                $i ? $i->{total} : 0 };
ok(wait_for(sub { $p = main::get_profile($main::LOYAL); $p && $p->{visits} == 41 }, 5),
   'the HEAD request was recorded as a touch');
my $after_head = $imp->('vip');
is_deeply($p->{impressions} // [], [], 'HEAD: no impression recorded');
my $r = http_get('/index.html', Cookie => main::cookie($main::LOYAL));
like($r->{content}, qr/\Q$main::VIP\E/, 'GET: the VIP banner');
ok(wait_for(sub { $p = main::get_profile($main::LOYAL); $imp->('vip') == $after_head + 1 }, 5),
   'GET: its impressions are recorded');
is_deeply([ map { "$_=" . $imp->($_) } qw(side vip) ], [ 'side=1', 'vip=1' ],
          'one page shown, one impression per campaign');
--- no_error_log
[error]

=== TEST 7: 304 Not Modified via If-Modified-Since and If-None-Match is untouched
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
my ($etag, $lm) = main::static_validators('index.html');
$block->{more_headers}   = [ "Cookie: " . main::cookie() . "\nIf-Modified-Since: $lm\n" ];
$block->{more_headers_2} = [ "Cookie: " . main::cookie() . "\nIf-None-Match: $etag\n" ];
--- config
omni on;
--- request
GET /index.html
--- more_headers
--- error_code: 304
--- response_headers
!Cache-Control
!Transfer-Encoding
--- request_2
GET /index.html
--- more_headers_2
--- error_code_2: 304
--- response_headers_2
!Cache-Control
--- check
for my $i (0, 1) {
    is($responses->[$i]{content} // '', '', "304 number " . ($i + 1) . ": no body");
}
my ($etag) = main::static_validators('index.html');
is($responses->[1]{headers}{etag}, $etag, 'the 304 keeps the static ETag');
--- no_error_log
[error]

=== TEST 8: a Range request gets nginx's 206, untouched
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
--- config
omni on;
--- request
GET /index.html
--- more_headers eval
"Cookie: " . main::cookie() . "\nRange: bytes=0-34"
--- error_code: 206
--- response_body chomp
<!DOCTYPE html>
<html><head><title>
--- response_headers eval
"Content-Range: bytes 0-34/" . length($main::PAGE{'index.html'}) . "\nContent-Length: 35\n!Cache-Control\n"
--- request_2
GET /index.html
--- more_headers_2 eval
"Cookie: " . main::cookie() . "\nRange: bytes=60-"
--- error_code_2: 206
--- response_body_2 eval
substr($main::PAGE{'index.html'}, 60)
--- no_error_log
[error]

=== TEST 9: text/plain is untouched unless omni_types lists it
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
--- config
omni on;
location /txt/ {
    alias $TEST_NGINX_HTML/;
    omni_types text/plain;
}
--- request
GET /page.txt
--- more_headers eval
"Cookie: " . main::cookie()
--- response_body
plain <!--omni:slot hero--> text </body>
--- response_headers
Content-Type: text/plain
Content-Length: 41
!Cache-Control
--- response_headers_like
ETag: ^"
--- request_2
GET /txt/page.txt
--- more_headers_2 eval
"Cookie: " . main::cookie()
--- response_body_2
plain <div class="omni">Welcome! $100 off</div> text <div data-omni-slot="aside"><aside>SIDE</aside></div><img src="https://px.example.com/p.gif?r=welcome" width="1" height="1" alt=""></body>
--- response_headers_2
Cache-Control: private, no-cache
!Content-Length
--- no_error_log
[error]

=== TEST 10: an empty file is untouched: no banner, no pixel, its headers kept
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
--- config
omni on;
--- request
GET /empty.html
--- more_headers eval
"Cookie: " . main::cookie()
--- response_body:
--- response_headers
Content-Length: 0
Content-Type: text/html
!Cache-Control
!Transfer-Encoding
--- response_headers_like
ETag: ^"
--- no_error_log
[error]

=== TEST 11: a gzip_static upstream response is passed through byte for byte
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
--- config
omni on;
location /gzs/ {
    omni off;
    alias $TEST_NGINX_HTML/;
    gzip_static on;
}
location /front/ {
    proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/gzs/;
    proxy_set_header Accept-Encoding gzip;
    proxy_http_version 1.1;
}
--- request
GET /front/gz.html
--- more_headers eval
"Cookie: " . main::cookie()
--- response_headers
Content-Encoding: gzip
!Cache-Control
--- check
my $gz = main::slurp("$OmniTest::PREFIX/html/gz.html.gz");
ok($resp->{content} eq $gz, 'the body is the .gz file, byte for byte')
    or diag('got ' . length($resp->{content}) . ' bytes, want ' . length($gz));
is($resp->{headers}{'content-length'}, length($gz), 'Content-Length of the .gz file kept');
my $plain;
ok(gunzip(\$resp->{content} => \$plain), 'it decompresses') or diag $GunzipError;
is($plain, $main::PAGE{'index.html'}, 'the decompressed page is the original, marker and all');
--- no_error_log
[error]

=== TEST 12: an upstream gzipping on the fly (chunked) is passed through, not corrupted
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
--- config
omni on;
location /gzu/ {
    omni off;
    alias $TEST_NGINX_HTML/;
    gzip on;
    gzip_min_length 1;
    gzip_types text/html;
}
location /front/ {
    proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/gzu/;
    proxy_set_header Accept-Encoding gzip;
    proxy_http_version 1.1;
}
--- request
GET /front/big.html
--- more_headers eval
"Cookie: " . main::cookie()
--- response_headers
Content-Encoding: gzip
!Cache-Control
--- check
my $direct = http_get('/gzu/big.html', 'Accept-Encoding' => 'gzip');
is($direct->{headers}{'content-encoding'}, 'gzip', 'the upstream does gzip');
ok(!defined $direct->{headers}{'content-length'}, 'the upstream answers without Content-Length');
ok($resp->{content} eq $direct->{content}, 'the proxied body is the upstream gzip stream, byte for byte');
my $plain;
ok(gunzip(\$resp->{content} => \$plain), 'it decompresses') or diag $GunzipError;
ok($plain eq $main::PAGE{'big.html'}, 'the decompressed page is the original');
--- no_error_log
[error]

=== TEST 13: a client that accepts gzip gets the injected page compressed
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
--- config
omni on;
gzip on;
gzip_types text/html;
gzip_min_length 1;
--- request
GET /index.html
--- more_headers eval
"Cookie: " . main::cookie() . "\nAccept-Encoding: gzip"
--- response_headers
Content-Encoding: gzip
Cache-Control: private, no-cache
!Content-Length
--- check
my $plain;
ok(gunzip(\$resp->{content} => \$plain), 'the body decompresses') or diag $GunzipError;
is($plain, main::oracle($main::PAGE{'index.html'}, %main::NEW),
   'the decompressed page carries the banners and the pixel');
my $r = http_get('/big.html', Cookie => main::cookie(), 'Accept-Encoding' => 'gzip');
ok(gunzip(\$r->{content} => \$plain), 'big.html decompresses') or diag $GunzipError;
ok($plain eq main::oracle($main::PAGE{'big.html'}, %main::NEW), 'big.html: injected, then compressed');
--- no_error_log
[error]

=== TEST 14: proxy_cache keeps the anonymous page; every hit is personalized on its way out
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
proxy_cache_path $TEST_NGINX_PREFIX/cache levels=1:2 keys_zone=pc:1m;
--- init
main::setup();
main::seed();
--- config
omni on;
location /origin/ {
    omni off;
    alias $TEST_NGINX_HTML/;
    add_header Cache-Control "public, max-age=600";
}
location /shop/ {
    proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/origin/;
    proxy_cache pc;
    add_header X-Cache $upstream_cache_status always;
    add_header X-Omni-Rules $omni_rules;
}
--- request
GET /shop/index.html
--- more_headers eval
"Cookie: " . main::cookie($main::VID)
--- response_headers
X-Cache: MISS
X-Omni-Rules: welcome,side
Cache-Control: private, no-cache
!ETag
!Content-Length
!Last-Modified
--- response_body eval
main::oracle($main::PAGE{'index.html'}, %main::NEW)
--- check
my @files;
ok(wait_for(sub {
    @files = grep { -f } map { glob "$OmniTest::PREFIX/cache/$_" } '*/*/*';
    @files == 1 }, 5), 'one page in the cache');
my $cached = @files ? main::slurp($files[0]) : '';
like($cached, qr/<!--omni:slot hero-->.*<!--omni:slot aside-->/s, 'the cached copy has the bare markers');
unlike($cached, qr/Welcome!|VIP|SIDE|px\.example/, 'the cached copy holds no banner and no pixel');
like($cached, qr/Cache-Control: public, max-age=600/, 'the cached copy keeps the origin headers');

my $r = http_get('/shop/index.html', Cookie => main::cookie($main::LOYAL));
is($r->{headers}{'x-cache'}, 'HIT', 'the second visitor is a cache hit');
is($r->{headers}{'x-omni-rules'}, 'vip,side', 'the hit is decided for the second visitor');
is($r->{content}, main::oracle($main::PAGE{'index.html'},
                               slots => { hero => $main::VIP, aside => $main::ASIDE }),
   'the hit carries the VIP banner, no welcome, no welcome pixel');
is($r->{headers}{'cache-control'}, 'private, no-cache', 'the hit is private');
ok(!defined $r->{headers}{etag} && !defined $r->{headers}{'content-length'},
   'the hit has no ETag and no Content-Length');

$r = http_get('/shop/index.html', Cookie => main::cookie($main::VID2));
is($r->{headers}{'x-cache'}, 'HIT', 'a third visitor: hit');
is($r->{content}, main::oracle($main::PAGE{'index.html'}, %main::NEW), 'a new visitor: welcome again');
is(main::slurp($files[0]), $cached, 'the cached file never changed');
--- no_error_log
[error]

=== TEST 15: an injected page is private whatever the upstream said; omni_private off keeps the upstream's word
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
--- config
omni on;
location /origin/ {
    omni off;
    alias $TEST_NGINX_HTML/;
    add_header Cache-Control "public, max-age=600";
    add_header Expires "Thu, 01 Jan 2099 00:00:00 GMT";
}
location /p/ {
    proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/origin/;
}
location /exp/ {
    alias $TEST_NGINX_HTML/;
    expires 1h;
}
location /pub/ {
    alias $TEST_NGINX_HTML/;
    omni_private off;
    expires 1h;
}
--- request
GET /p/index.html
--- more_headers eval
"Cookie: " . main::cookie()
--- response_headers
Cache-Control: private, no-cache
!Expires
!ETag
!Content-Length
!Last-Modified
--- response_body eval
main::oracle($main::PAGE{'index.html'}, %main::NEW)
--- request_2
GET /exp/index.html
--- more_headers_2 eval
"Cookie: " . main::cookie()
--- response_headers_2
Cache-Control: private, no-cache
!Expires
!ETag
--- request_3
GET /pub/index.html
--- more_headers_3 eval
"Cookie: " . main::cookie()
--- response_headers_3
Cache-Control: max-age=3600
!ETag
!Content-Length
--- response_headers_like_3
Expires: GMT$
--- response_body_3 eval
main::oracle($main::PAGE{'index.html'}, %main::NEW)
--- request_4
GET /p/page.txt
--- more_headers_4 eval
"Cookie: " . main::cookie()
--- response_headers_4
Cache-Control: public, max-age=600
Expires: Thu, 01 Jan 2099 00:00:00 GMT
--- no_error_log
[error]

=== TEST 16: SSI: the main page is filled, the included fragment's marker is left alone
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
--- config
omni on;
location /ssi/ {
    alias $TEST_NGINX_HTML/;
    ssi on;
}
--- request
GET /ssi/ssi.html
--- more_headers eval
"Cookie: " . main::cookie()
--- response_body
<html><body>
<div class="omni">Welcome! $100 off</div>
<div class="frag"><!--omni:slot aside--></div>

<div data-omni-slot="aside"><aside>SIDE</aside></div><img src="https://px.example.com/p.gif?r=welcome" width="1" height="1" alt=""></body></html>
--- response_headers
Cache-Control: private, no-cache
--- no_error_log
[error]

=== TEST 17: a chunked upstream (SSI behind proxy_pass, HTTP/1.1) is injected
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
--- config
omni on;
location /ssiup/ {
    omni off;
    alias $TEST_NGINX_HTML/;
    ssi on;
}
location /chunked/ {
    proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/ssiup/;
    proxy_http_version 1.1;
}
location /chunked-unbuffered/ {
    proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/ssiup/;
    proxy_http_version 1.1;
    proxy_buffering off;
}
--- request
GET /chunked/ssi.html
--- more_headers eval
"Cookie: " . main::cookie()
--- response_body
<html><body>
<div class="omni">Welcome! $100 off</div>
<div class="frag"><aside>SIDE</aside></div>

<img src="https://px.example.com/p.gif?r=welcome" width="1" height="1" alt=""></body></html>
--- request_2
GET /chunked-unbuffered/ssi.html
--- more_headers_2 eval
"Cookie: " . main::cookie()
--- response_body_2
<html><body>
<div class="omni">Welcome! $100 off</div>
<div class="frag"><aside>SIDE</aside></div>

<img src="https://px.example.com/p.gif?r=welcome" width="1" height="1" alt=""></body></html>
--- check
my $r = http_get('/ssiup/ssi.html');
is($r->{headers}{'transfer-encoding'}, 'chunked', 'the upstream really answers chunked');
ok(!defined $r->{headers}{'content-length'}, 'the upstream sends no Content-Length');
--- no_error_log
[error]

=== TEST 18: omni_inject off, omni off, and error pages are untouched
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
--- config
omni on;
error_page 404 /404.html;
log_not_found off;
location /noinject/ {
    alias $TEST_NGINX_HTML/;
    omni_inject off;
    add_header X-Omni-Rules $omni_rules;
}
location /off/ {
    alias $TEST_NGINX_HTML/;
    omni off;
}
--- request
GET /noinject/index.html
--- more_headers eval
"Cookie: " . main::cookie()
--- response_body eval
$main::PAGE{'index.html'}
--- response_headers eval
"Content-Length: " . length($main::PAGE{'index.html'}) . "\n!Cache-Control\nX-Omni-Rules: welcome,side\n"
--- response_headers_like
ETag: ^"
--- request_2
GET /off/index.html
--- more_headers_2 eval
"Cookie: " . main::cookie()
--- response_body_2 eval
$main::PAGE{'index.html'}
--- response_headers_2 eval
"Content-Length: " . length($main::PAGE{'index.html'}) . "\n!Cache-Control\n"
--- request_3
GET /missing.html
--- more_headers_3 eval
"Cookie: " . main::cookie()
--- error_code_3: 404
--- response_body_3
<html><body><!--omni:slot hero-->not found</body></html>
--- response_headers_3
!Cache-Control
--- no_error_log
[error]

=== TEST 19: a visitor the rules show nothing gets the page untouched, validators and all
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
main::seed();
--- config
omni on;
location / { add_header X-Omni-Rules "[$omni_rules]"; }
--- request
GET /index.html
--- more_headers eval
"Cookie: " . main::cookie($main::CUST)
--- response_body eval
$main::PAGE{'index.html'}
--- response_headers eval
"Content-Length: " . length($main::PAGE{'index.html'}) . "\n!Cache-Control\nX-Omni-Rules: []\n"
--- response_headers_like
ETag: ^"
Last-Modified: GMT$
--- request_2
GET /index.html
--- more_headers_2 eval
"Cookie: " . main::cookie($main::LOYAL)
--- response_body_2 eval
main::oracle($main::PAGE{'index.html'}, slots => { hero => $main::VIP, aside => $main::ASIDE })
--- response_headers_2
X-Omni-Rules: [vip,side]
--- no_error_log
[error]

=== TEST 20: an auth_request subrequest does not disturb the main page's injection
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
--- config
omni on;
location /protected/ {
    alias $TEST_NGINX_HTML/;
    auth_request /auth/index.html;
}
location /auth/ {
    internal;
    alias $TEST_NGINX_HTML/;
}
--- request
GET /protected/index.html
--- more_headers eval
"Cookie: " . main::cookie()
--- response_body eval
main::oracle($main::PAGE{'index.html'}, %main::NEW)
--- response_headers
Cache-Control: private, no-cache
--- no_error_log
[error]

=== TEST 21: gunzip on in front of a gzip upstream: inflated, then injected; a gzip client gets the upstream bytes
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
--- config
omni on;
location /gzu/ {
    omni off;
    alias $TEST_NGINX_HTML/;
    gzip on;
    gzip_min_length 1;
}
location /front/ {
    proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/gzu/;
    proxy_set_header Accept-Encoding gzip;
    proxy_http_version 1.1;
    gunzip on;
}
--- request
GET /front/big.html
--- more_headers eval
"Cookie: " . main::cookie()
--- response_headers
!Content-Encoding
Cache-Control: private, no-cache
--- check
ok($resp->{content} eq main::oracle($main::PAGE{'big.html'}, %main::NEW),
   'the inflated page is injected like a plain one');
my $r = http_get('/front/big.html', Cookie => main::cookie(), 'Accept-Encoding' => 'gzip');
is($r->{headers}{'content-encoding'}, 'gzip', 'a gzip client gets gzip');
ok(!defined $r->{headers}{'cache-control'}, 'not injected, not marked private');
my $direct = http_get('/gzu/big.html', 'Accept-Encoding' => 'gzip');
ok($r->{content} eq $direct->{content}, 'the upstream gzip bytes, unchanged');
--- no_error_log
[error]

=== TEST 22: a 200 with an empty chunked body stays empty
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
--- config
omni on;
location /ssiup/ {
    omni off;
    alias $TEST_NGINX_HTML/;
    ssi on;
}
location /chunked/ {
    proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/ssiup/;
    proxy_http_version 1.1;
}
--- request
GET /chunked/ssi-empty.html
--- more_headers eval
"Cookie: " . main::cookie()
--- response_body:
--- check
my $r = http_get('/ssiup/ssi-empty.html');
ok($r->{status} == 200 && ($r->{headers}{'transfer-encoding'} // '') eq 'chunked'
   && $r->{content} eq '', 'the upstream: 200, chunked, no body bytes');
--- no_error_log
[error]

=== TEST 23: HTTP/2: the page is injected, split buffers included, HEAD untouched
--- skip_if: !-x '/usr/bin/curl' || `curl --version` !~ /HTTP2/
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
server {
    listen unix:$TEST_NGINX_PREFIX/h2.sock http2;
    server_name localhost;
    root $TEST_NGINX_HTML;
    omni on;
    sendfile off;
    location /b1/ { alias $TEST_NGINX_HTML/; output_buffers 1 1; }
}
--- init
main::setup();
--- config
location = /t { return 200; }
--- timeout: 60
--- check
my $sock = "$OmniTest::PREFIX/h2.sock";
my $curl = sub {
    my (@args) = @_;
    my $hdr = "$OmniTest::PREFIX/h2.headers";
    my $body = "$OmniTest::PREFIX/h2.body";
    unlink $hdr, $body;
    my ($rc, undef, $err) = run_command([ 'curl', '-sS', '--http2-prior-knowledge',
        '--unix-socket', $sock, '-D', $hdr, '-o', $body,
        '-H', 'Cookie: ' . main::cookie(), @args ], timeout => 30);
    die "curl: $err" if $rc;
    return (OmniTest::_slurp($hdr), OmniTest::_slurp($body) // '');
};
for my $path ('/index.html', '/big.html', '/b1/index.html', '/b1/big.html') {
    my ($h, $b) = $curl->("http://localhost$path");
    like($h, qr{^HTTP/2 200}, "h2 $path: HTTP/2 200");
    like($h, qr/^cache-control: private, no-cache\r?$/mi, "h2 $path: private");
    (my $page = $path) =~ s{^/b1/|^/}{};
    ok($b eq main::oracle($main::PAGE{$page}, %main::NEW), "h2 $path: the injected page, byte for byte")
        or diag('got ' . length($b) . ' bytes');
}
my ($h, $b) = $curl->('-I', 'http://localhost/index.html');
like($h, qr/^content-length: 136\r?$/mi, 'h2 HEAD: the static Content-Length');
unlike($h, qr/^cache-control:/mi, 'h2 HEAD: not marked private');
--- no_error_log
[error]

=== TEST 24: Sec-GPC: 1 and DNT: 1: the banners, never a pixel
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- init
main::setup();
--- config
omni on;
--- request
GET /index.html
--- more_headers eval
"Cookie: " . main::cookie() . "\nSec-GPC: 1"
--- response_body eval
main::oracle($main::PAGE{'index.html'}, slots => $main::NEW{slots})
--- request_2
GET /index.html
--- more_headers_2 eval
"Cookie: " . main::cookie() . "\nDNT: 1"
--- response_body_2 eval
main::oracle($main::PAGE{'index.html'}, slots => $main::NEW{slots})
--- request_3
GET /index.html
--- more_headers_3 eval
"Cookie: " . main::cookie() . "\nDNT: 0"
--- response_body_3 eval
main::oracle($main::PAGE{'index.html'}, %main::NEW)
--- no_error_log
[error]

=== TEST 25: banners and pixels larger than the first render buffer come out whole
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules2;
--- init
main::setup();
my $html = '<div class="big">' . ('0123456789' x 700) . '</div>';
my @pixels = map { { img => "https://px$_.example.com/" . ('p' x 300) . "?n=$_" } } 1 .. 8;
mkdir "$OmniTest::PREFIX/rules2";
main::spew("$OmniTest::PREFIX/rules2/big.json", JSON::PP::encode_json(
    { id => 'big', banner => { slot => 'hero', html => $html }, pixels => \@pixels }));
$main::BIG{slots} = { hero => $html };
$main::BIG{pixels} = join '', map { qq{<img src="$_->{img}" width="1" height="1" alt="">} } @pixels;
--- config
omni on;
location /b7/ { alias $TEST_NGINX_HTML/; output_buffers 1 7; sendfile off; }
--- request
GET /index.html
--- more_headers eval
"Cookie: " . main::cookie()
--- check
is(length($main::BIG{slots}{hero}), 7023, 'a 7 KB banner');
ok($resp->{content} eq main::oracle($main::PAGE{'index.html'}, %main::BIG), 'the page, whole')
    or diag('got ' . length($resp->{content}) . ' bytes');
my $r = http_get('/b7/big.html', Cookie => main::cookie());
ok($r->{content} eq main::oracle($main::PAGE{'big.html'}, %main::BIG), 'big.html in 7-byte buffers, whole')
    or diag('got ' . length($r->{content}) . ' bytes');
--- no_error_log
[error]
