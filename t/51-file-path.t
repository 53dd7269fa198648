# Zero-copy injection into file-backed pages (issue 10, part 1): a static
# file or a cache hit keeps going out by sendfile, the markers' offsets
# are found once per file version.  The file path must give exactly the
# bytes the memory path gives: a differential test over random pages,
# markers and splits, and the same page after it changes on disk.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use OmniCookie;

our $VID = 'f11e0000000000000000000000000001';
sub cookie { 'omni=' . mint_cookie(TEST_SECRET, $VID) }

# Random pages from fragments: markers of slots with and without banners,
# twice the same slot, near-misses, comments, </body> in any case or
# missing, long text runs so the pieces fall anywhere.
sub random_page {
    my ($seed) = @_;
    srand($seed);
    my @frag = ('<p>text</p>', '<!--omni:slot hero-->', '<!--omni:slot side   -->',
                '<!--omni:slot nope-->', '<!--omni:slo', '<!-- c -->', '<div>',
                '</div>', '</b>', '<', "\n", ('x' x (1 + int rand 3000)),
                '<!--omni:slot top-->', '</BODY>', '</body>', '<a href="/">a</a>');
    my $page = 'y' x int(rand 40);
    $page .= $frag[int rand @frag] while length($page) < 200 + int(rand 9000);
    $page .= '</body></html>' if rand() < 0.5;
    return $page;
}

run_blocks();

__DATA__

=== TEST 1: file path = memory path (sendfile off, and proxied in 1 KB buffers) for 60 random pages
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_rules $TEST_NGINX_PREFIX/rules check=off;
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- user_files
>>> rules/r.json
{"rules": [
 {"id": "hero", "banner": {"slot": "hero", "html": "<b>HERO</b>"}},
 {"id": "side", "banner": {"slot": "side", "html": "<i>SIDE</i>"}},
 {"id": "away", "banner": {"slot": "elsewhere", "html": "<u>FALLBACK</u>"},
  "pixels": [{"img": "https://px.example/p.gif"}]}
]}
--- init
mkdir "$OmniTest::PREFIX/html/p";
for my $i (1 .. 60) {
    open(my $fh, '>', "$OmniTest::PREFIX/html/p/$i.html") or die;
    print $fh main::random_page($i);
    close $fh;
}
--- config
sendfile on;
location /f/ { omni on; alias $TEST_NGINX_PREFIX/html/p/; }
location /s/ { omni on; sendfile off; alias $TEST_NGINX_PREFIX/html/p/; }
location /m/ {
    omni on;
    proxy_buffering on;
    proxy_buffer_size 1k;
    proxy_buffers 16 1k;
    proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/raw/;
}
location /raw/ { alias $TEST_NGINX_PREFIX/html/p/; }
--- request
GET /f/1.html
--- more_headers eval
"Cookie: " . main::cookie()
--- check
my ($diff_s, $diff_m, $injected) = (0, 0, 0);
for my $i (1 .. 60) {
    my $f = http_get("/f/$i.html", Cookie => main::cookie())->{content};
    my $s = http_get("/s/$i.html", Cookie => main::cookie())->{content};
    my $m = http_get("/m/$i.html", Cookie => main::cookie())->{content};
    $diff_s++, diag("page $i: file path != sendfile off") if $f ne $s;
    $diff_m++, diag("page $i: file path != proxied") if $f ne $m;
    $injected++ if $f =~ /HERO|SIDE/ && $f =~ /FALLBACK/;
}
is($diff_s, 0, 'the file path gives the bytes of the memory path (sendfile off)');
is($diff_m, 0, 'and of a proxied page in 1 KB buffers');
ok($injected > 20, "banners and the tail were injected ($injected pages)");
# the expected rendering of one page, spelled out
my $page = "a<!--omni:slot hero-->b<!--omni:slot hero-->c<!--omni:slot nope-->d</BODY>e";
open(my $fh, '>', "$OmniTest::PREFIX/html/p/x.html") or die; print $fh $page; close $fh;
is(http_get('/f/x.html', Cookie => main::cookie())->{content},
   'a<b>HERO</b>b<!--omni:slot hero-->c<!--omni:slot nope-->d'
   . '<div data-omni-slot="elsewhere"><u>FALLBACK</u></div><div data-omni-slot="side"><i>SIDE</i></div>'
   . '<img src="https://px.example/p.gif" width="1" height="1" alt=""></BODY>e',
   'one banner per slot, unknown markers kept, the tail before </BODY>')
    or diag http_get('/f/x.html', Cookie => main::cookie())->{content};
--- no_error_log
[error]

=== TEST 2: a page that changes on disk is scanned again (size, mtime, inode)
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_rules $TEST_NGINX_PREFIX/rules check=off;
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- user_files
>>> rules/r.json
{"id": "hero", "banner": {"slot": "hero", "html": "<b>HERO</b>"}}
>>> html/page.html
<body>one <!--omni:slot hero--> end</body>
--- config
location / { omni on; }
--- request
GET /page.html
--- more_headers eval
"Cookie: " . main::cookie()
--- response_body
<body>one <b>HERO</b> end</body>
--- check
my $f = "$OmniTest::PREFIX/html/page.html";
for my $v (["<body>two, longer: <!--omni:slot hero--></body>\n", "<body>two, longer: <b>HERO</b></body>\n"],
           ["<body><!--omni:slot hero-->3</body>\n", "<body><b>HERO</b>3</body>\n"]) {
    open(my $fh, '>', "$f.tmp") or die; print $fh $v->[0]; close $fh;
    utime(time + 5, time + 5, "$f.tmp");
    rename("$f.tmp", $f) or die;
    is(http_get('/page.html', Cookie => main::cookie())->{content}, $v->[1], 'the new version');
}
--- no_error_log
[error]

=== TEST 3: a proxy_cache hit takes the file path: the cached page stays anonymous, each visitor gets their banner
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_rules $TEST_NGINX_PREFIX/rules check=off;
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
proxy_cache_path $TEST_NGINX_PREFIX/cache keys_zone=c:1m;
--- user_files
>>> rules/r.json
{"id": "hero", "banner": {"slot": "hero", "html": "<b>HERO</b>"}}
--- config
location = /page {
    omni on;
    proxy_cache c;
    proxy_cache_valid 200 1m;
    add_header X-Cache $upstream_cache_status;
    proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/origin;
}
location = /origin {
    default_type text/html;
    return 200 "<html><body><!--omni:slot hero--><p>cached</p></body></html>";
}
--- request
GET /page
--- more_headers eval
"Cookie: " . main::cookie()
--- response_body: <html><body><b>HERO</b><p>cached</p></body></html>
--- check
for (1 .. 3) {
    my $r = http_get('/page', Cookie => main::cookie());
    is($r->{headers}{'x-cache'}, 'HIT', 'a hit');
    is($r->{content}, '<html><body><b>HERO</b><p>cached</p></body></html>', 'injected from the cache file');
}
--- no_error_log
[error]

=== TEST 4: a page over 64 KB goes out by sendfile ranges, a small one from the kept bytes; both equal the memory path; 600 files (more than the cache keeps) stay right
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_rules $TEST_NGINX_PREFIX/rules check=off;
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- user_files
>>> rules/r.json
{"id": "hero", "banner": {"slot": "hero", "html": "<b>HERO</b>"},
 "pixels": [{"img": "https://px.example/p.gif"}]}
--- init
mkdir "$OmniTest::PREFIX/html/p";
for my $seed (1 .. 5) {
    srand($seed);
    my $page = ('z' x (70000 + int rand 200000)) . '<!--omni:slot hero-->'
             . ('w' x int rand 100000) . '</body>' . ('v' x 1000);
    open(my $fh, '>', "$OmniTest::PREFIX/html/p/big$seed.html") or die;
    print $fh $page;
    close $fh;
}
for my $i (1 .. 600) {
    open(my $fh, '>', "$OmniTest::PREFIX/html/p/s$i.html") or die;
    print $fh "<p>$i</p><!--omni:slot hero--><p>$i</p></body>";
    close $fh;
}
--- config
sendfile on;
location /f/ { omni on; alias $TEST_NGINX_PREFIX/html/p/; }
location /m/ {
    omni on;
    proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/raw/;
}
location /raw/ { alias $TEST_NGINX_PREFIX/html/p/; }
--- request
GET /f/big1.html
--- more_headers eval
"Cookie: " . main::cookie()
--- check
for my $seed (1 .. 5) {
    my $f = http_get("/f/big$seed.html", Cookie => main::cookie())->{content};
    my $m = http_get("/m/big$seed.html", Cookie => main::cookie())->{content};
    ok($f eq $m && $f =~ m{<b>HERO</b>.*<img [^>]*px\.example[^>]*></body>}s,
       "big page $seed (" . length($f) . " bytes): file ranges = memory path");
}
my $bad = 0;
for my $round (1 .. 2) {
    for my $i (1 .. 600) {
        my $c = http_get("/f/s$i.html", Cookie => main::cookie())->{content};
        $bad++ unless $c eq "<p>$i</p><b>HERO</b><p>$i</p>"
            . '<img src="https://px.example/p.gif" width="1" height="1" alt=""></body>';
    }
}
is($bad, 0, '600 small files twice (the cache keeps 512): every answer right');
--- no_error_log
[error]
