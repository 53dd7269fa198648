# The module next to nginx's own filters and helper processes: the cache
# manager with a rules timer, add_after_body, slice, ssi, proxy_cache and
# gzip_static (issue 9, part 6).  Each block keeps the page's bytes in
# order, injects where it can and leaves alone what it cannot change.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use IO::Compress::Gzip qw(gzip $GzipError);

# A rules file written while nginx runs; check=1s picks it up.
sub write_rule {
    my ($html) = @_;
    my $f = "$OmniTest::PREFIX/rules/r.json";
    open my $fh, '>', "$f.tmp" or die "$f.tmp: $!";
    print $fh qq({"id": "r", "banner": {"slot": "hero", "html": "$html"}}\n);
    close $fh;
    rename "$f.tmp", $f or die "rename $f: $!";
}

sub page { http_get('/page')->{content} }

run_blocks();

__DATA__

=== TEST 1: the cache manager and a rules check timer: no helper crashes at the check interval
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=1s;
proxy_cache_path $TEST_NGINX_PREFIX/cache keys_zone=c:1m max_size=1m
                 manager_sleep=50ms manager_threshold=10ms;
--- user_files
>>> rules/r.json
{"id": "r", "banner": {"slot": "hero", "html": "<b>ONE</b>"}}
--- config
location = /page {
    omni on;
    default_type text/html;
    return 200 "<body><!--omni:slot hero--></body>";
}
--- request
GET /page
--- response_body: <body><b>ONE</b></body>
--- check
# Two rounds of the rules check in the worker: the cache manager, started
# with it, has run its own init_process and seen the same interval twice.
main::write_rule('<b>TWO</b>');
ok(wait_for(sub { main::page() eq '<body><b>TWO</b></body>' }, 10, 0.1),
   'the worker picked up the first change');
main::write_rule('<b>THREE</b>');
ok(wait_for(sub { main::page() eq '<body><b>THREE</b></body>' }, 10, 0.1),
   'and the second');
unlike(error_log_text(), qr/exited on signal/, 'no process exited on a signal');
--- no_error_log
exited on signal
[error]

=== TEST 2: add_after_body: a marker prefix held at the end of the page goes out before the appended part
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
--- user_files
>>> rules/r.json
{"id": "r", "banner": {"slot": "hero", "html": "<b>hello</b>"}}
--- config
location = /page {
    omni on;
    default_type text/html;
    add_after_body /after;
    return 200 "main text <";
}
location = /sub {
    default_type text/html;
    sub_filter_once off;
    sub_filter "nothing" "x";
    add_after_body /after;
    return 200 "main text <";
}
location = /after {
    default_type text/html;
    return 200 "AFTER";
}
--- request
GET /page
--- response_body: main text <AFTER<div data-omni-slot="hero"><b>hello</b></div>
--- request_2
GET /sub
--- response_body_2: main text <AFTER
--- no_error_log
[error]

=== TEST 3: add_before_body and add_after_body around a page with a slot and </body>
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
--- user_files
>>> rules/r.json
{"id": "r", "banner": {"slot": "hero", "html": "<b>hello</b>"},
 "pixels": [{"img": "https://px.example/p.gif"}]}
--- config
location = /page {
    omni on;
    default_type text/html;
    add_before_body /before;
    add_after_body /after;
    return 200 "<p>a</p><!--omni:slot hero--><p>b</p></body><!--omni:slot";
}
location = /before { default_type text/html; return 200 "BEFORE|"; }
location = /after  { default_type text/html; return 200 "|AFTER"; }
--- request
GET /page
--- response_body_like: ^BEFORE\|<p>a</p><b>hello</b><p>b</p><img [^>]*px\.example[^>]*></body><!--omni:slot\|AFTER$
--- no_error_log
[error]

=== TEST 4: slice: every byte of the page once and in order, markers in the first slice replaced
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
--- user_files
>>> rules/r.json
{"id": "r", "banner": {"slot": "hero", "html": "<b>hello</b>"}}
>>> html/page.html
<p>0123456789</p><!--omni:slot hero--><p>abcdefghijklmnopqrstuvwxyz</p><p>ABCDEFGHIJKLMNOPQRSTUVWXYZ</p>
--- config
location = /page {
    omni on;
    slice 64;
    proxy_set_header Range $slice_range;
    proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/page.html;
}
location = /page.html {
    root $TEST_NGINX_PREFIX/html;
}
--- request
GET /page
--- response_body
<p>0123456789</p><b>hello</b><p>abcdefghijklmnopqrstuvwxyz</p><p>ABCDEFGHIJKLMNOPQRSTUVWXYZ</p>
--- no_error_log
[error]

=== TEST 4b: slice: a marker cut by a slice boundary is plain text, every byte in order (the banner goes at the end, as on a page without </body>)
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
--- user_files
>>> rules/r.json
{"id": "r", "banner": {"slot": "hero", "html": "<b>hello</b>"}}
>>> html/page.html
<p>0123456789012345678901234567890123456789012345678901234</p><!--omni:slot hero--><p>tail</p>
--- config
location = /page {
    omni on;
    slice 64;
    proxy_set_header Range $slice_range;
    proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/page.html;
}
location = /page.html {
    root $TEST_NGINX_PREFIX/html;
}
--- request
GET /page
--- response_body eval
"<p>0123456789012345678901234567890123456789012345678901234</p><!--omni:slot hero--><p>tail</p>\n"
. '<div data-omni-slot="hero"><b>hello</b></div>'
--- no_error_log
[error]

=== TEST 5: ssi: the included part and the page's slot both in place, in order
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
--- user_files
>>> rules/r.json
{"id": "r", "banner": {"slot": "hero", "html": "<b>hello</b>"}}
>>> html/page.html
<p>head</p><!--# include virtual="/part" --><!--omni:slot hero--><p>tail</p></body>
--- config
location = /page.html {
    omni on;
    ssi on;
    root $TEST_NGINX_PREFIX/html;
}
location = /part { default_type text/html; return 200 "[part]"; }
--- request
GET /page.html
--- response_body
<p>head</p>[part]<b>hello</b><p>tail</p></body>
--- no_error_log
[error]

=== TEST 6: proxy_cache: one cached page, each visitor gets their own banner, the cache keeps the markers
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
proxy_cache_path $TEST_NGINX_PREFIX/cache keys_zone=c:1m max_size=1m
                 manager_sleep=50ms;
--- user_files
>>> rules/r.json
{"id": "r", "banner": {"slot": "hero", "html": "<b>visit {{profile.visits}}</b>"}}
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
    add_header Cache-Control "public, max-age=60";
    return 200 "<body><!--omni:slot hero--></body>";
}
--- request
GET /page
--- response_headers
X-Cache: MISS
--- response_headers_like
Cache-Control: ^private
--- response_body_like: ^<body><b>visit \d+</b></body>$
--- check
my $r2 = http_get('/page');
is($r2->{headers}{'x-cache'}, 'HIT', 'the second request is a cache hit');
like($r2->{content}, qr{^<body><b>visit \d+</b></body>$}, 'personalized on the hit');
like($r2->{headers}{'cache-control'} // '', qr/private/, 'and marked private');
my $key = `cat $OmniTest::PREFIX/cache/* 2>/dev/null`;
like($key, qr/<!--omni:slot hero-->/, 'the cache holds the page with its marker');
unlike($key, qr/visit \d/, 'and nobody\'s banner');
--- no_error_log
[error]
exited on signal

=== TEST 7: gzip_static: a precompressed page goes out untouched, a plain client gets the banner
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
--- user_files
>>> rules/r.json
{"id": "r", "banner": {"slot": "hero", "html": "<b>hello</b>"}}
>>> html/page.html
<body><!--omni:slot hero--></body>
--- init
my $gz;
gzip(\"<body><!--omni:slot hero--></body>\n" => \$gz) or die $GzipError;
open my $fh, '>', "$OmniTest::PREFIX/html/page.html.gz" or die $!;
binmode $fh;
print $fh $gz;
close $fh;
--- config
location = /page.html {
    omni on;
    gzip_static on;
    root $TEST_NGINX_PREFIX/html;
}
--- request
GET /page.html
--- more_headers
Accept-Encoding: gzip
--- response_headers
Content-Encoding: gzip
--- check
my $gz = do { local $/; open my $fh, '<', "$OmniTest::PREFIX/html/page.html.gz" or die; binmode $fh; <$fh> };
is($resp->{content}, $gz, 'the .gz file byte for byte');
my $plain = http_get('/page.html');
is($plain->{content}, "<body><b>hello</b></body>\n", 'a client without gzip gets the banner');
--- no_error_log
[error]

=== TEST 8: an empty rules directory leaves the client's Accept-Encoding to the upstream
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
--- user_files
>>> rules/.keep
--- config
location = /page {
    omni on;
    proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/upstream;
}
location = /upstream {
    return 200 "ae=[$http_accept_encoding]";
}
--- request
GET /page
--- more_headers
Accept-Encoding: gzip, br
--- response_body: ae=[gzip, br]
--- no_error_log
[error]

=== TEST 9: a header-only rule: no identity encoding asked, and the upstream's Cache-Control: public becomes private
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
--- user_files
>>> rules/r.json
{"id": "r", "headers": {"X-Omni-Theme": "story"}}
--- config
location = /page {
    omni on;
    proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/upstream;
}
location = /upstream {
    default_type text/html;
    add_header Cache-Control "public, max-age=600";
    expires 1h;
    return 200 "ae=[$http_accept_encoding]";
}
--- request
GET /page
--- more_headers
Accept-Encoding: gzip
--- response_headers
X-Omni-Theme: story
Cache-Control: private, no-cache
--- response_body: ae=[gzip]
--- check
ok(!defined $resp->{headers}{expires}, 'no Expires');
my @cc = grep { /public/ } split /\n/, ($resp->{headers}{'cache-control'} // '');
is(scalar @cc, 0, 'no public Cache-Control left');
--- no_error_log
[error]
