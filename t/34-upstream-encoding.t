# Upstreams are asked for identity encoding where the module may inject,
# while the client still gets gzip from nginx's own gzip filter.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use IO::Uncompress::Gunzip qw(gunzip $GunzipError);

run_blocks();

__DATA__

=== TEST 1: the upstream sees Accept-Encoding: identity, the client gets gzip with the banner
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
--- user_files
>>> rules/r.json
{"id": "hello", "when": {"stage": "new"},
 "banner": {"slot": "hero", "html": "<b>hello banner</b>"}}
--- config
location = /page {
    omni on;
    gzip on;
    gzip_types text/html;
    gzip_min_length 1;
    proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/upstream;
}
location = /upstream {
    default_type text/html;
    return 200 "<html><body>ae=[$http_accept_encoding]<!--omni:slot hero--></body></html>";
}
--- request
GET /page
--- more_headers
Accept-Encoding: gzip
--- response_headers
Content-Encoding: gzip
--- check
my $out;
gunzip(\$resp->{content} => \$out) or die "gunzip: $GunzipError";
like($out, qr/ae=\[identity\]/, 'the upstream was asked for identity');
like($out, qr{<b>hello banner</b>}, 'the injected page was compressed for the client');
my $plain = http_get('/page');
like($plain->{content}, qr{<b>hello banner</b>}, 'a client without gzip gets plain HTML');
ok(!$plain->{headers}{'content-encoding'}, 'not compressed for it');

=== TEST 2: without rules (or with omni_inject off) the client's header goes through
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
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
