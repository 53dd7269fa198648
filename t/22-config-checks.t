# Misconfigurations that nginx -t refuses, each naming the file and line
# (issue 12 part 3): placeholder, short and malformed secrets; "omni on"
# without a store or a secret; endpoints whose secret comes later (order
# within http, and of includes, does not matter); unusable store paths.
# And nginx -t creates, chowns and chmods nothing: the store is made
# when nginx starts.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use OmniCookie;
use JSON::PP ();

# nginx -t on a copy of the running configuration with a store elsewhere:
# (exit, output, whether the new store path exists afterwards)
sub test_other_store {
    my ($store, $user) = @_;
    my $conf = "$OmniTest::PREFIX/conf/nginx.conf";
    open(my $in, '<', $conf) or die "$conf: $!";
    local $/;
    my $text = <$in>;
    close $in;
    $text =~ s{\Q$OmniTest::PREFIX\E/store\b}{$store}g;
    $text =~ s{logs/nginx\.pid}{logs/t.pid}g;
    $text =~ s{^user \S+;}{user $user;}m or $text = "user $user;\n$text"
        if $user;
    open(my $out, '>', "$OmniTest::PREFIX/conf/t.conf") or die $!;
    print $out $text;
    close $out;
    my ($rc, $o, $e) = run_command([$ENV{NGINX_BIN} // '/usr/sbin/nginx',
                                    '-t', '-p', "$OmniTest::PREFIX/",
                                    '-c', 'conf/t.conf',
                                    '-e', "$OmniTest::PREFIX/logs/t.log"]);
    return ($rc, $o . $e, -e $store);
}

# nginx -t of a minimal configuration with this omni_secret.
sub nginx_t_secret {
    my ($secret) = @_;
    my $dir = "$OmniTest::PREFIX/secret-t";
    mkdir $dir;
    mkdir "$dir/logs";
    my $module = $ENV{OMNI_MODULE} // repo_root() . '/build/ngx_http_omni_module.so';
    (my $quoted = $secret) =~ s/(["\\])/\\$1/g;
    open(my $fh, '>', "$dir/nginx.conf") or die $!;
    print $fh "load_module $module;\npid $dir/logs/nginx.pid;\n"
            . "error_log $dir/logs/error.log;\nevents {}\n"
            . "http { omni_secret \"$quoted\"; }\n";
    close $fh;
    my ($rc, $o, $e) = run_command([$ENV{NGINX_BIN} // '/usr/sbin/nginx',
                                    '-t', '-p', "$dir/", '-c', "$dir/nginx.conf",
                                    '-e', "$dir/logs/error.log"]);
    return ($rc, $o . $e);
}

# A directory's entries with their owner, group and mode, as one string.
sub tree_state {
    my ($dir) = @_;
    return join "\n", map {
        my @st = lstat $_;
        sprintf '%s %d:%d %04o', $_, $st[4], $st[5], $st[2] & 07777;
    } $dir, sort glob("$dir/* $dir/.??*");
}

run_blocks();

__DATA__

=== TEST 1: the README's old placeholder is refused, with file:line
--- http_config
omni_secret  "<output of: openssl rand -base64 48>";
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] invalid "omni_secret": secret contains '<', '>', a space or a control character: a placeholder, not a key; generate one with: openssl rand -base64 48 in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 2: CHANGE-ME (the packaged example's placeholder) is refused
--- http_config
omni_secret "CHANGE-ME";
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] invalid "omni_secret": secret is a placeholder \(it contains "changeme"\), not a key; generate one with: openssl rand -base64 48 in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 3: a long value around a placeholder word is refused too
--- http_config
omni_secret "Change_Me-please-0123456789abcdefghijklmnopqrstuvwxyz";
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] invalid "omni_secret": secret is a placeholder \(it contains "changeme"\), not a key; generate one with: openssl rand -base64 48 in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 4: whitespace inside the value is refused
--- http_config
omni_secret "paste here 0123456789abcdefghijklmnopqrstuvwxyzABCDEF";
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] invalid "omni_secret": secret contains '<', '>', a space or a control character: a placeholder, not a key; generate one with: openssl rand -base64 48 in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 4b: '<' alone (no whitespace, long enough) is refused
--- http_config
omni_secret "<q3mJ0tQ7c1mP7Vw7o0Qd0kXJq3f9yQ2VAbCdEfGhIjKlMnOpQrStUvWxYz012345";
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] invalid "omni_secret": secret contains '<', '>', a space or a control character: a placeholder, not a key; generate one with: openssl rand -base64 48 in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 4c: '>' alone is refused
--- http_config
omni_secret "q3mJ0tQ7c1mP7Vw7o0Qd0kXJq3f9yQ2VAbCdEfGhIjKlMnOpQrStUvWxYz012345>";
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] invalid "omni_secret": secret contains '<', '>', a space or a control character: a placeholder, not a key; generate one with: openssl rand -base64 48 in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 4d: the same value without '<' or '>' (48 random bytes in base64) passes
--- http_config
omni_secret "q3mJ0tQ7c1mP7Vw7o0Qd0kXJq3f9yQ2VAbCdEfGhIjKlMnOpQrStUvWxYz012345";
--- config
location = /t { return 200 "up"; }
--- request
GET /t
--- response_body: up

=== TEST 5: 32 hex digits are 16 bytes: too short after decoding
--- http_config
omni_secret "00112233445566778899aabbccddeeff";
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] invalid "omni_secret": secret is 32 hex digits, 16 bytes decoded; at least 32 random bytes are required \(openssl rand -base64 48\) in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 6: base64 of 24 bytes is too short after decoding
--- http_config
omni_secret "q3mJ0tQ7c1mP7Vw7o0Qd0kXJq3f9yQ2V";
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] invalid "omni_secret": secret is 32 base64 characters, 24 bytes decoded; at least 32 random bytes are required \(openssl rand -base64 48\) in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 7: every secret the docs show is refused (README, quickstart, install, packaging)
--- config
location = /t { return 200; }
--- request
GET /t
--- check
my $root = repo_root();
my @files = ("$root/README.md", glob("$root/docs/*.md"),
             "$root/packaging/omni.conf");
my (%seen, %in);
my $n = 0;
for my $f (@files) {
    open(my $fh, '<', $f) or die "$f: $!";
    while (my $line = <$fh>) {
        next unless $line =~ /^\s*omni_secret\s+("(?:[^"\\]|\\.)*"|\S+);/;
        my $v = $1;
        $in{$f =~ s{.*/}{}r}++;
        next if $seen{$v}++;
        $n++;
        $v =~ s/^"(.*)"$/$1/;
        my ($rc, $out) = main::nginx_t_secret($v);
        isnt($rc, 0, "nginx -t refuses the secret $v of " . ($f =~ s{.*/}{}r))
            or diag $out;
        like($out, qr/invalid "omni_secret"/, '... naming omni_secret');
    }
}
ok($n >= 3, "the docs show $n example secrets, all checked");
ok($in{'README.md'}, "the README's example secret checked");
ok($in{'quickstart.md'}, "the quickstart's example secret checked");

=== TEST 8: "omni on" without omni_store names the file:line of the "omni on"
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
include site.conf;
--- user_files
>>> conf/site.conf
server {
    listen 127.0.0.1:$TEST_NGINX_PORT;
    server_name other;
    location / {
        omni on;
    }
}
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] "omni on" requires "omni_store" \(where visitors' profiles and touchpoints are kept\) in \S+\/conf\/site\.conf:5$/m

=== TEST 9: "omni on" without a secret names the file:line of the "omni on"
--- http_config
omni_store $TEST_NGINX_PREFIX/store;
include site.conf;
--- user_files
>>> conf/site.conf
server {
    listen 127.0.0.1:$TEST_NGINX_PORT;
    server_name other;
    omni on;
}
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] "omni on" requires at least one "omni_secret" in \S+\/conf\/site\.conf:4$/m

=== TEST 10: omni_decide without a secret names its own file:line
--- user_files
>>> conf/site.conf
server {
    listen 127.0.0.1:$TEST_NGINX_PORT;
    server_name other;

    location = /omni/decide { omni_decide; }
}
--- http_config
include site.conf;
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] "omni_decide" directive requires "omni_secret" in \S+\/conf\/site\.conf:5$/m

=== TEST 11: order does not matter: endpoints and "omni on" before omni_secret and omni_store
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT;
    server_name early;
    omni on;
    location = /omni/identify { omni_identify; }
    location = /omni/decide { omni_decide; }
    location = /omni/events { omni_events; }
    location / { return 200 "early $omni_visitor"; }
}
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location = /t { return 200; }
--- request
GET /omni/identify
--- more_headers
Host: early
--- response_body_like
^\{"token":"[^"]+","device":"[0-9a-f]{32}"
--- check
my $r = http_get('/x', Host => 'early');
like($r->{content}, qr/^early [0-9a-f]{32}$/, 'omni on before the secret: identified');
like($r->{headers}{'set-cookie'}, qr/^omni=/, 'and a signed cookie issued');

=== TEST 11b: order of includes does not matter: the sites first, omni_secret and omni_store in a later include
--- http_config
include sites/*.conf;
include omni.conf;
--- user_files
>>> conf/sites/shop.conf
server {
    listen 127.0.0.1:$TEST_NGINX_PORT;
    server_name shop;
    omni on;
    location = /omni/identify { omni_identify; }
    location / { return 200 "shop $omni_visitor"; }
}
>>> conf/omni.conf
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location = /t { return 200; }
--- request
GET /x
--- more_headers
Host: shop
--- response_body_like
^shop [0-9a-f]{32}$
--- response_headers_like
Set-Cookie: ^omni=
--- check
like(http_get('/omni/identify', Host => 'shop')->{content},
     qr/^\{"token":"[^"]+","device":"[0-9a-f]{32}"/, 'omni_identify works');

=== TEST 11c: without the later include, the error names the site file's line
--- http_config
include sites/*.conf;
--- user_files
>>> conf/sites/shop.conf
server {
    listen 127.0.0.1:$TEST_NGINX_PORT;
    server_name shop;

    location = /omni/identify { omni_identify; }
}
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] "omni_identify" directive requires "omni_secret" in \S+\/conf\/sites\/shop\.conf:5$/m

=== TEST 12: a store whose parent is missing
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/no/such/store;
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] omni_store: cannot create store "\S+\/no\/such\/store": its parent "\S+\/no\/such" is missing \(2: No such file or directory\) in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 13: a store path that is a file
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/conf/mime.types;
--- user_files
>>> conf/mime.types
x
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] omni_store: store "\S+\/conf\/mime\.types" is not a directory in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 14: a store whose parent is a file
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/conf/afile/store;
--- user_files
>>> conf/afile
x
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] omni_store: cannot use store "\S+\/conf\/afile\/store" \(20: Not a directory\) in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 15: a directory that is not an LMDB store
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/bad;
--- user_files
>>> bad/data.mdb
this is not an LMDB file at all, just some text long enough
>>> bad/lock.mdb
x
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] omni_store: cannot open store "\S+\/bad": .* in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 16: nginx -t creates nothing; nginx start creates the store
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
location / { omni on; return 200 "ok"; }
--- request
GET /
--- response_body: ok
--- check
ok(-f "$OmniTest::PREFIX/store/data.mdb", 'nginx start created the store');
my ($rc, $out, $exists) = main::test_other_store("$OmniTest::PREFIX/fresh");
is($rc, 0, 'nginx -t with a store that does not exist yet: ok') or diag $out;
ok(!$exists, 'and it created nothing');
($rc, $out) = main::test_other_store("$OmniTest::PREFIX/store");
is($rc, 0, 'nginx -t with the existing store: ok (opened read-only)') or diag $out;
# the journal's files are the writer's: journal.ckpt, and a segment or
# two (journal.<16 hex digits>)
my $ls = join ' ', sort grep { !/^journal\.[0-9a-f]{16}$/ } map { s{.*/}{}r } glob("$OmniTest::PREFIX/store/*");
is($ls, 'data.mdb journal.ckpt lock.mdb writer.lock', 'the store holds its files only');

# an existing store of another owner, with nginx -t as root for the
# worker user nobody: no chown, no chmod, no new file
SKIP: {
    skip 'needs root (chown)', 2 if $> != 0;
    my $other = "$OmniTest::PREFIX/other";
    my ($crc, $cout, $cerr) = omnictl('--store', $other, 'stat', '--create');
    is($crc, 0, 'another store') or diag $cerr;
    chmod 02770, $other;
    system('chown', '-R', '4242:4243', $other);
    chmod 0600, glob("$other/*");
    my $before = main::tree_state($other);
    ($rc, $out) = main::test_other_store($other, 'nobody nogroup');
    is($rc, 0, 'nginx -t with user nobody and a store of uid 4242: ok')
        or diag $out;
    is(main::tree_state($other), $before,
       'nginx -t changed no owner, group or mode, and created nothing');
}
