# The LMDB profile store inside nginx: lookups, the writer task, omnictl
# changes seen without a reload, token/cookie linking, degradation, and
# configuration errors.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use OmniCookie;
use JSON::PP ();

our $ANA = 'a11ce0000000000000000000000000a1';

# Seeds a store in the test prefix with omnictl; dies loudly on failure.
sub seed {
    my (@lines) = @_;
    my $store = "$OmniTest::PREFIX/store";
    my ($rc, $out, $err) = omnictl('--store', $store, 'stat', '--create');
    die "omnictl stat --create: $err" if $rc;
    my $file = "$OmniTest::PREFIX/seed.ndjson";
    open(my $fh, '>', $file) or die "$file: $!";
    print $fh "$_\n" for @lines;
    close $fh;
    ($rc, $out, $err) = omnictl('--store', $store, 'import', $file);
    die "omnictl import: $err" if $rc;
}

sub get_profile {
    my ($id) = @_;
    my ($rc, $out) = omnictl('--store', "$OmniTest::PREFIX/store", 'get', $id);
    return $rc == 0 ? JSON::PP::decode_json($out) : undef;
}

# Starts "omnictl export" (a long read transaction) and kills it with -9
# once it holds its reader slot, leaving a stale slot in the lock file.
sub stale_reader {
    my $store = "$OmniTest::PREFIX/store";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open(STDOUT, '>', '/dev/null');
        exec(OmniTest::omnictl_path(), '--store', $store, 'export') or exit 127;
    }
    # Poll the reader table until the exporter shows up, then kill it.
    my $seen = OmniTest::wait_for(sub {
        my (undef, $out) = run_command(['mdb_stat', '-r', $store]);
        $out =~ /^\s+$pid\s/m;
    }, 5, 0.005);
    kill 'KILL', $pid;
    waitpid($pid, 0);
    die "exporter never held a reader slot" unless $seen;
}

sub ana_cookie {
    return "omni=" . mint_cookie(TEST_SECRET, $ANA);
}

run_blocks();

__DATA__

=== TEST 1: a cookie whose visitor is a stored profile sees that profile
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- init
main::seed('{"id":"a11ce0000000000000000000000000a1","visits":5,"visit_last":1000,"orders":2,"stage":"customer","attributes":{"first_name":"Ana","points":420}}');
--- config
omni on;
location = /t {
    return 200 "$omni_profile $omni_stage $omni_visits $omni_attr_first_name $omni_attr_points [$omni_attr_missing]\n";
}
--- request
GET /t
--- more_headers eval
"Cookie: " . main::ana_cookie()
--- response_body
a11ce0000000000000000000000000a1 customer 5 Ana 420 []
--- no_error_log
[error]

=== TEST 2: every request is written back by the writer task (visit, last seen)
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- init
main::seed('{"id":"a11ce0000000000000000000000000a1","visits":5,"visit_last":1000,"attributes":{"first_name":"Ana"}}');
--- config
omni on;
location = /t { return 200 "$omni_visits\n"; }
--- request
GET /t
--- more_headers eval
"Cookie: " . main::ana_cookie()
--- response_body
5
--- check
my $p;
ok(wait_for(sub { $p = main::get_profile($main::ANA); $p && $p->{visits} == 6 }, 5),
   'the visit is counted in the store');
ok($p->{last_seen}{web} && abs($p->{last_seen}{web} - time()) < 10, 'last seen on web is now');
my $r = http_get('/t', Cookie => main::ana_cookie());
is($r->{content}, "6\n", 'a request within the visit timeout sees 6 visits');
ok(wait_for(sub { $p = main::get_profile($main::ANA); $p->{visit_last} >= time() - 5 }, 5),
   'visit_last moves');
is($p->{visits}, 6, 'no new visit within 30 minutes');
--- no_error_log
[error]

=== TEST 3: a new visitor's first request is logged and gets a cookie; the profile comes when the cookie comes back
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
omni on;
location = /t { return 200 "$omni_visitor\n"; }
--- request
GET /t
--- check
my ($vid) = $resp->{content} =~ /([0-9a-f]{32})/;
my ($cookie) = ($resp->{headers}{'set-cookie'} // '') =~ /^(omni=[^;]+)/;
ok($cookie, 'a cookie for the new visitor');
http_get('/t', Cookie => $cookie);
my $p;
ok(wait_for(sub { $p = main::get_profile($vid) }, 5), 'the profile, once the cookie came back');
is($p->{visits}, 1, 'one visit (both requests)');
is($p->{stage}, 'new', 'journey stage new');
is_deeply($p->{aliases}, [ { type => 'cookie', id => $vid } ], 'cookie alias recorded');
my ($rc, $out) = omnictl('--store', "$OmniTest::PREFIX/store", 'tail', '--after', '0');
is(scalar(grep { /"anonymousId":"$vid"/ } split /\n/, $out), 2, 'both requests are in the feed');
--- no_error_log
[error]

=== TEST 4: an app token linked to a profile resolves to the same person as the web cookie
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- init
main::seed('{"id":"a11ce0000000000000000000000000a1","attributes":{"first_name":"Ana"},"aliases":[{"type":"device","id":"dddddddddddddddddddddddddddddddd"}]}');
--- config
omni on;
location = /t { return 200 "$omni_identity $omni_profile $omni_attr_first_name\n"; }
--- request
GET /t
--- more_headers eval
"X-Omni-Token: " . OmniCookie::mint_token(OmniCookie::TEST_SECRET, 'dddddddddddddddddddddddddddddddd')
--- response_body
token a11ce0000000000000000000000000a1 Ana
--- request_2
GET /t
--- more_headers_2 eval
"Cookie: " . main::ana_cookie()
--- response_body_2
cookie a11ce0000000000000000000000000a1 Ana

=== TEST 5: omnictl changes are seen by nginx without a reload
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- init
main::seed('{"id":"a11ce0000000000000000000000000a1","attributes":{"first_name":"Ana"}}');
--- config
omni on;
location = /t { return 200 "$omni_attr_first_name\n"; }
--- request
GET /t
--- more_headers eval
"Cookie: " . main::ana_cookie()
--- response_body
Ana
--- check
my $store = "$OmniTest::PREFIX/store";
my $file = "$OmniTest::PREFIX/put.json";
open(my $fh, '>', $file) or die; print $fh '{"id":"a11ce0000000000000000000000000a1","attributes":{"first_name":"Anabela"}}'; close $fh;
my ($rc, $out, $err) = omnictl('--store', $store, 'put', $file);
is($rc, 0, 'omnictl put while nginx serves') or diag $err;
is(http_get('/t', Cookie => main::ana_cookie())->{content}, "Anabela\n", 'new value served at once');
($rc, $out, $err) = omnictl('--store', $store, '--secret-file', '/dev/null', 'link',
                            $main::ANA, 'device:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee');
is($rc, 0, 'omnictl link while nginx serves') or diag $err;
is(http_get('/t', 'X-Omni-Token' => OmniCookie::mint_token(OmniCookie::TEST_SECRET,
   'eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee'))->{content}, "Anabela\n", 'a newly linked device sees the profile');

=== TEST 6: profile values are escaped in $omni_attr_*: no markup, no header splitting
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- init
main::seed('{"id":"a11ce0000000000000000000000000a1","attributes":{"first_name":"<script>alert(\"x\")</script>\r\nX-Evil: 1 & \u0027"}}');
--- config
omni on;
location = /t {
    add_header X-Name $omni_attr_first_name;
    return 200 "$omni_attr_first_name\n";
}
--- request
GET /t
--- more_headers eval
"Cookie: " . main::ana_cookie()
--- response_body
&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;X-Evil: 1 &amp; &#x27;
--- response_headers
X-Name: &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;X-Evil: 1 &amp; &#x27;
!X-Evil

=== TEST 7: an internal redirect is one touch, and a stop flushes the queue
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
omni on;
location = /t { error_page 404 = /fallback; return 404; }
location = /fallback { return 200 "ok\n"; }
--- request
GET /t
--- response_body
ok
--- error_log
omni: writer exit: 1 committed, 0 dropped, 0 failed

=== TEST 8: a graceful stop loses no queued touchpoint
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- config
omni on;
location = /t { return 200 "ok\n"; }
--- request
GET /t
--- check
# 300 distinct visitors as fast as possible, then an immediate stop.
for my $i (1 .. 299) {
    http_get('/t', Cookie => 'omni=' . mint_cookie(TEST_SECRET, sprintf('%032x', $i)));
}
ok(stop_nginx(), 'graceful stop');
my ($rc, $out) = omnictl('--store', "$OmniTest::PREFIX/store", 'stat');
my $st = JSON::PP::decode_json($out);
# the block's own first request came without a cookie: logged, no profile
# (docs/privacy.md, cookieless traffic)
is($st->{profiles}, 299, 'all 299 visitors with a cookie are in the store after the stop');
is($st->{touchpoints}, 300, 'and all 300 requests in the feed');
like(error_log_text(), qr/writer exit: \d+ committed, 0 dropped, 0 failed/, 'nothing dropped');

=== TEST 9: reload 20 times: reader slots come back to the baseline
--- skip_if
# valgrind runs nginx with master_process off, where a reload never runs
# the modules' init_process again: the new cycle's thread pools are never
# started (nginx's own limitation), so no module may post tasks after it.
$ENV{TEST_NGINX_USE_VALGRIND}
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
--- workers: 2
--- config
omni on;
location = /t { return 200 "$omni_profile\n"; }
--- request
GET /t
--- more_headers eval
"Cookie: " . main::ana_cookie()
--- check
my $pidfile = "$OmniTest::PREFIX/logs/nginx.pid";
open(my $fh, '<', $pidfile) or die; chomp(my $master = <$fh>); close $fh;
my $readers = sub {
    my (undef, $out) = run_command(['mdb_stat', '-r', "$OmniTest::PREFIX/store"]);
    my @pids = $out =~ /^\s+(\d+)\s+[0-9a-f]+\s/mg;
    return scalar grep { kill 0, $_ } @pids;   # live readers only
};
for my $i (1 .. 20) {
    kill 'HUP', $master;
    wait_for(sub { error_log_text() =~ /(reconfiguring.*){$i}/s }, 5);
}
my $r;
for (1 .. 10) { $r = http_get('/t', Cookie => main::ana_cookie()); }
is($r->{status}, 200, 'serving after 20 reloads');
my $all_stale_gone = wait_for(sub {
    my (undef, $out) = run_command(['mdb_stat', '-r', "$OmniTest::PREFIX/store"]);
    my @pids = $out =~ /^\s+(\d+)\s+[0-9a-f]+\s/mg;
    # live workers, at most the old generation, and the writer's
    # checkpoint pin (two while a checkpoint ends)
    @pids <= 2 + 2 + 2;
}, 10);
ok($all_stale_gone, 'reader table back to the baseline');
ok($readers->() <= 2 + 2, 'at most one reader slot per live worker, and the writer\'s checkpoint pins');
--- no_error_log
MDB_READERS_FULL
[error]

=== TEST 10: a full store degrades: pages still served, one clear error line
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=1m map_max=1m queue=64;
--- config
omni on;
location = /t { return 200 "ok\n"; }
--- request
GET /t
--- check
my $bad = 0;
for my $i (1 .. 6000) {
    my $r = http_get('/t', Cookie => 'omni=' . mint_cookie(TEST_SECRET, sprintf('%032x', $i)));
    $bad++ if $r->{status} != 200;
}
is($bad, 0, '6000 requests into a 1 MiB store: all 200');
ok(wait_for(sub { error_log_text() =~ /store is full at map_max/ }, 5),
   'the store-full condition is logged');
my @lines = error_log_text() =~ /(store is full at map_max)/g;
is(scalar @lines, 1, 'logged once, not per request');
--- error_log
MDB_MAP_FULL

=== TEST 11: omni_store on a file is refused by nginx -t
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/conf/nginx.conf;
--- config
location = /t { return 200; }
--- must_die
qr/omni_store: store ".*\/conf\/nginx\.conf" is not a directory in .*nginx\.conf:\d+/

=== TEST 12: a store path that cannot be created is refused
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store /nonexistent-omni-parent/store;
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] omni_store: cannot create store "\/nonexistent-omni-parent\/store": its parent "\/nonexistent-omni-parent" is missing \(2: No such file or directory\) in \S+\/conf\/nginx\.conf:\d+$/m

=== TEST 13: bad omni_store parameters
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=lots;
--- config
location = /t { return 200; }
--- must_die
invalid size "lots" in "map_size=lots" (at least 1m)

=== TEST 14: map_max below map_size
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=64m map_max=8m;
--- config
location = /t { return 200; }
--- must_die
"map_max" is smaller than "map_size"

=== TEST 15: unknown parameter and too few readers
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store max_readers=3;
--- config
location = /t { return 200; }
--- must_die
invalid "max_readers=3" (8..65536)

=== TEST 16: an unknown omni_store parameter
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store compress=yes;
--- config
location = /t { return 200; }
--- must_die
invalid parameter "compress=yes"

=== TEST 17: a store written by a newer schema is refused, naming it
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store;
--- init
main::seed('{"id":"a11ce0000000000000000000000000a1"}');
my $store = "$OmniTest::PREFIX/store";
my (undef, $dump) = run_command(['mdb_dump', '-s', 'meta', $store]);
$dump =~ s/^ 01000000$/ 63000000/m or die "no schema in meta: $dump";
open(my $fh, '>', "$OmniTest::PREFIX/meta.dump") or die; print $fh $dump; close $fh;
my ($rc, undef, $err) = run_command(['mdb_load', '-s', 'meta', '-f', "$OmniTest::PREFIX/meta.dump", $store]);
die "mdb_load: $err" if $rc;
--- config
location = /t { return 200; }
--- must_die
store schema 99 is newer than this build supports (1)

=== TEST 18: stale reader slots of dead processes are cleared at start and on the timer
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=64m reader_check=1s;
--- init
# A reader killed with -9 mid-export leaves its slot behind.
my @lines = map { sprintf('{"id":"%032x","attributes":{"n":"%s"}}', $_, 'x' x 50) } 1 .. 60000;
main::seed(@lines);
main::stale_reader();
--- config
omni on;
location = /t { return 200 "ok\n"; }
--- request
GET /t
--- error_log
qr/cleared [1-9]\d* stale LMDB reader slot\(s\)/
--- check
my $before = () = error_log_text() =~ /stale LMDB reader slot/g;
main::stale_reader();
ok(wait_for(sub { (() = error_log_text() =~ /stale LMDB reader slot/g) > $before }, 5),
   'the reader_check timer clears a slot left while serving');

=== TEST 19: a store in a set-group-ID directory (the packaged /var/lib/omni): every file omnictl writes is group read-write, and a member of the group writes next to nginx
--- skip_if: $> != 0
--- init
my $dir = "$OmniTest::PREFIX/shared";
mkdir $dir or die "$dir: $!";
chown 0, scalar(getgrnam('daemon')), $dir;
chmod 02770, $dir;
chmod 0711, $OmniTest::PREFIX;
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/shared map_size=16m;
--- config
location / { omni on; return 200 "ok"; }
--- request
GET /page
--- response_body: ok
--- check
my $dir = "$OmniTest::PREFIX/shared";
for my $f (qw(data.mdb lock.mdb journal.ckpt)) {
    my @st = stat "$dir/$f";
    ok(@st, "$f exists");
    is(scalar getgrgid($st[5]), 'daemon', "$f: the directory's group");
    is($st[2] & 0060, 0060, "$f: group read-write");
}
open(my $fh, '>', "$OmniTest::PREFIX/p.json") or die $!;
print $fh qq({"id":"0123456789abcdef0123456789abcdef","visits":3}\n);
close $fh;
chmod 0644, "$OmniTest::PREFIX/p.json";
my ($rc, $out, $err) = run_command(['runuser', '-u', 'nobody', '-g', 'daemon',
                                    '--', $ENV{OMNI_OMNICTL} // repo_root() . '/build/omnictl',
                                    '--store', $dir, 'put', "$OmniTest::PREFIX/p.json"]);
is($rc, 0, 'a member of the group puts a profile while nginx runs') or diag $err;
($rc, $out) = omnictl('--store', $dir, 'get', '0123456789abcdef0123456789abcdef');
like($out, qr/"visits": 3/, 'it is there');
