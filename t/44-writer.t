# One writer per store (docs/store-format.md "The write path"):
#   - every worker queues its touches in the shared queue; exactly one
#     worker, the lease holder, writes them: nothing is dropped with two
#     workers;
#   - kill -9 of the holder: another worker takes over and nothing queued
#     is lost or written twice;
#   - HUP x20 under load: every request answered, every touch recorded;
#   - frequency caps are exact across workers (the activity table): 50
#     concurrent requests of one visitor against a cap of 3 show exactly
#     3 banners, also right after a reload;
#   - configuration errors of the queue and the activity table.
# The kill and reload blocks need a master process: skipped under
# valgrind.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use OmniCookie;
use OmniLoad;
use JSON::PP ();
use Time::HiRes ();
use IO::Socket::INET ();
use File::Copy ();
use Digest::MD5 ();

sub cookie { 'omni=' . mint_cookie(TEST_SECRET, $_[0]) }
sub store  { "$OmniTest::PREFIX/store" }

sub master {
    open(my $fh, '<', "$OmniTest::PREFIX/logs/nginx.pid") or die "pid: $!";
    my $pid = <$fh>;
    chomp $pid;
    return $pid;
}

# The touchpoints in the feed, by path prefix.
sub feed {
    my ($rc, $out, $err) = omnictl('--store', store(), 'tail', '--after', '0',
                                   '--limit', '1000000');
    die "tail: $err" if $rc;
    return [ map { JSON::PP::decode_json($_) } split /\n/, $out ];
}

sub recorded {
    my ($prefix) = @_;
    return scalar grep { ($_->{properties}{path} // '') =~ /^\Q$prefix\E/ } @{ feed() };
}

# The pid of the worker that logged taking the lease last.
sub holder {
    my @pids = error_log_text()
        =~ /(\d+)#\d+: (?:\*\d+ )?omni: (?:this worker is the store's writer|writer taken over)/g;
    return $pids[-1];
}

# Forks $n clients, each running $code->($c, $i) once per request number
# in 1 .. $per and writing "ok PID" or "fail STATUS" per request.
# Returns (sub counting lines matching a regex, list of pids).
sub load {
    my ($n, $per, $code) = @_;
    my $dir = "$OmniTest::PREFIX/load";
    my @kids = clients($dir, $n, $per, sub {
        my $r = $code->(@_);
        return $r->{status} == 200 ? 'ok ' . ($r->{headers}{'x-pid'} // '-')
                                   : "fail $r->{status}";
    });
    my $count = sub { my ($re) = @_; scalar grep { /$re/ } client_lines($dir) };
    return ($count, @kids);
}

# The messageIds of @acks that the store's feed lacks.
sub lost {
    my %ids = map { ($_->{messageId} // '') => 1 } @{ feed() };
    return grep { !$ids{$_} } @_;
}

# A host crash: only what the last checkpoint synced is left of the data
# file (the copy OMNI_TEST_CKPT_COPY made then).
sub host_crash {
    File::Copy::copy("$OmniTest::PREFIX/at-checkpoint.mdb", store() . '/data.mdb')
        or die "copy: $!";
}

sub pids_seen {
    my %p = map { /^ok (\d+)/ ? ($1 => 1) : () } client_lines("$OmniTest::PREFIX/load");
    return scalar keys %p;
}

# A keep-alive request on $s: the raw request text, then the answer.
sub ka {
    my ($s, $req) = @_;
    print $s $req;
    return ka_read($s);
}

sub ka_read {
    my ($s) = @_;
    my $head = '';
    while ($head !~ /\r\n\r\n/) {
        defined(sysread($s, $head, 1, length $head)) && length $head or last;
    }
    my ($status) = $head =~ m{^HTTP/1\.1 (\d+)};
    my ($len) = $head =~ /^Content-Length: (\d+)/mi;
    my $body = '';
    while (length $body < ($len // 0)) {
        sysread($s, $body, $len - length $body, length $body) or last;
    }
    return { status => $status // 0, body => $body };
}

$ENV{TEST_NGINX_PORT2} = free_port();

run_blocks();

__DATA__

=== TEST 1: two workers, one writer: every touch of every worker is recorded, nothing dropped
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=64m;
--- workers: 2
--- user_files
>>> html/page.html
<html><body>hello</body></html>
--- config
location / { omni on; add_header X-Pid $pid; }
--- request
GET /page.html?warmup
--- check
my ($count, @kids) = main::load(6, 150, sub {
    my ($c, $i) = @_;
    http_get("/page.html?c=$c&i=$i", Cookie => main::cookie(sprintf 'b0b0%024x%04x', $c, $i % 10));
});
waitpid($_, 0) for @kids;
my $ok = $count->(qr/^ok/);
is($count->(qr/^fail/), 0, 'every request answered');
is($ok, 900, '900 pages served');
ok(main::pids_seen() >= 2 || $ENV{TEST_NGINX_USE_VALGRIND}, 'both workers served pages');
my $n;
ok(wait_for(sub { $n = main::recorded('/page.html'); $n >= 901 }, 10),
   'every touch is in the feed') or diag("$n of 901 recorded");
is($n, 901, 'each one exactly once');
my @writers = error_log_text() =~ /omni: this worker is the store's writer/g;
is(scalar @writers, 1, 'one worker took the writer lease');
--- error_log
omni: this worker is the store's writer
--- no_error_log
[error]
[warn]

=== TEST 2: the writer's exit line: everything committed, nothing dropped
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=64m;
--- workers: 2
--- config
location / { omni on; return 200 "ok\n"; }
--- request
GET /x
--- check
my ($count, @kids) = main::load(4, 100, sub {
    my ($c, $i) = @_;
    http_get("/x?$c-$i", Cookie => main::cookie(sprintf 'c0c0%028x', $c));
});
waitpid($_, 0) for @kids;
is($count->(qr/^ok/), 400, '400 answered');
ok(wait_for(sub { main::recorded('/x') == 401 }, 10), 'all 401 touches recorded before the stop');
--- error_log
qr/writer exit: 401 committed, 0 dropped, 0 failed/
--- no_error_log
[error]

=== TEST 3: kill -9 of the writer-holding worker under load: another worker takes over, nothing queued is lost or written twice
--- skip_if: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=64m;
--- workers: 2
--- config
location / { omni on; add_header X-Pid $pid; return 200 "ok\n"; }
--- request
GET /warm
--- check
my $victim = main::holder();
ok($victim, "the writer is worker $victim");
my ($count, @kids) = main::load(4, 250, sub {
    my ($c, $i) = @_;
    http_request('GET', "/k?$c-$i", undef,
                 headers => { Cookie => main::cookie(sprintf 'dead%028x', $c) }, timeout => 5);
});
ok(wait_for(sub { $count->(qr/^ok/) >= 300 }, 20), 'pages are being served');
kill 'KILL', $victim;
my $t0 = Time::HiRes::time();
my $new;
ok(wait_for(sub { $new = main::holder(); $new && $new != $victim }, 5, 0.01),
   'another worker takes the writer lease');
diag(sprintf 'writer taken over %.3f s after the kill', Time::HiRes::time() - $t0);
waitpid($_, 0) for @kids;
my $ok = $count->(qr/^ok/);
my $failed = $count->(qr/^fail/);
my $n;
wait_for(sub { $n = main::recorded('/k'); $n >= $ok }, 10);
diag("$ok answered, $failed failed with the killed worker, $n recorded");
ok($n >= $ok - 4, 'every answered page is recorded (but those whose log phase the kill cut)');
ok($n <= $ok + $failed, 'nothing recorded twice');
my %seen;
my @dup = grep { $seen{$_->{messageId}}++ } @{ main::feed() };
is(scalar @dup, 0, 'no touchpoint twice');
my ($rc) = omnictl('--store', main::store(), 'export');
is($rc, 0, 'the store verifies');
--- error_log
qr/writer taken over from process \d+, which is gone/
exited on signal 9
--- no_error_log
[crit]

=== TEST 4: 20 reloads (HUP) under load: every request answered, every touch recorded once, the lease moves to the new workers
--- skip_if: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=64m;
--- workers: 2
--- config
location / { omni on; return 200 "ok\n"; }
--- request
GET /warm
--- check
my $master = main::master();
my ($count, @kids) = main::load(4, 300, sub {
    my ($c, $i) = @_;
    http_request('GET', "/h?$c-$i", undef,
                 headers => { Cookie => main::cookie(sprintf 'beef%028x', $c) }, timeout => 10);
});
for my $i (1 .. 20) {
    kill 'HUP', $master;
    wait_for(sub { error_log_text() =~ /(reconfiguring.*){$i}/s }, 5);
    Time::HiRes::sleep(0.05);
}
waitpid($_, 0) for @kids;
is($count->(qr/^fail/), 0, 'no request failed');
is($count->(qr/^ok/), 1200, 'all 1200 answered');
my $n;
ok(wait_for(sub { $n = main::recorded('/h'); $n >= 1200 }, 15), 'every touch recorded')
    or diag("$n of 1200");
is($n, 1200, 'exactly once');
my @takes = error_log_text() =~ /omni: this worker is the store's writer/g;
ok(@takes >= 2, scalar(@takes) . ' lease hand-overs across the reloads');
--- no_error_log
[error]
writer queue full

=== TEST 5: a frequency cap of 3 holds exactly across two workers: 50 concurrent requests of one visitor show 3 banners
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=64m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- workers: 2
--- user_files
>>> rules/cap.json
{"id": "bar", "campaign": "free-shipping", "cap": {"max": 3, "per": "1d"},
 "banner": {"slot": "topbar", "html": "<b>FREE-SHIPPING</b>"}}
>>> html/index.html
<html><body><!--omni:slot topbar-->page</body></html>
--- config
location / { omni on; add_header X-Pid $pid; }
--- request
GET /index.html
--- check
my $ck = main::cookie('ca9ca9ca9ca9ca9ca9ca9ca9ca9ca9c1');
my $go = "$OmniTest::PREFIX/go";
my $dir = "$OmniTest::PREFIX/bodies";
# 50 clients of one request each, all let go at once
my @kids = clients($dir, 50, 1, sub {
    Time::HiRes::sleep(0.001) until -e $go;
    my $r = http_get('/index.html', Cookie => $ck);
    return "$r->{status} " . ($r->{content} =~ /FREE-SHIPPING/ ? 'banner' : 'none');
});
open(my $g, '>', $go); close $g;
waitpid($_, 0) for @kids;
my @answers = client_lines($dir);
my $served = grep { /^200 / } @answers;
my $banners = grep { / banner$/ } @answers;
is($served, 50, '50 pages served');
is($banners, 3, 'exactly 3 banners: the cap of 3');
my $total = sub {
    my ($rc, $out) = omnictl('--store', main::store(), 'get', 'ca9ca9ca9ca9ca9ca9ca9ca9ca9ca9c1');
    return -1 if $rc;
    my ($im) = grep { $_->{campaign} eq 'free-shipping' }
               @{ JSON::PP::decode_json($out)->{impressions} // [] };
    return $im ? $im->{total} : 0;
};
my $t;
ok(wait_for(sub { $t = $total->(); $t == 3 }, 10), '3 impressions in the store')
    or diag("store says $t");
my $r = http_get('/index.html', Cookie => $ck);
unlike($r->{content}, qr/FREE-SHIPPING/, 'and none after');
--- no_error_log
[error]
activity table full

=== TEST 6: the activity table survives a reload: impressions not yet committed still count
--- skip_if: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=64m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- workers: 2
--- user_files
>>> rules/cap.json
{"id": "bar", "campaign": "free-shipping", "cap": {"max": 3, "per": "1d"},
 "banner": {"slot": "topbar", "html": "<b>FREE-SHIPPING</b>"}}
>>> html/index.html
<html><body><!--omni:slot topbar-->page</body></html>
--- config
location / { omni on; }
--- request
GET /index.html
--- check
my $ck = main::cookie('ca9ca9ca9ca9ca9ca9ca9ca9ca9ca9c2');
my $shown = 0;
for (1 .. 2) { $shown++ if http_get('/index.html', Cookie => $ck)->{content} =~ /FREE-SHIPPING/ }
is($shown, 2, 'two shown before the reload');
kill 'HUP', main::master();
ok(wait_for(sub { error_log_text() =~ /reconfiguring/ }, 5), 'reloaded');
for (1 .. 6) { $shown++ if http_get('/index.html', Cookie => $ck)->{content} =~ /FREE-SHIPPING/ }
is($shown, 3, 'one more after the reload, then the cap holds');
--- no_error_log
[error]

=== TEST 7: activity= must be a power of two
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store activity=1000;
--- config
location / { omni on; }
--- must_die
invalid "activity=1000" (a power of two, 16..16777216)

=== TEST 8: queue= is bounded
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store queue=8;
--- config
location / { omni on; }
--- must_die
invalid "queue=8" (16..1048576)

=== TEST 9: a full queue drops and counts, never blocks a request
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=64m queue=16;
--- config
location / { omni on; return 200 "ok\n"; }
--- request
GET /x
--- check
# 16 touches of ring (8 KiB): long referrers fill it between two writer
# looks (every 10 ms)
my ($count, @kids) = main::load(4, 100, sub {
    my ($c, $i) = @_;
    http_get("/f?$c-$i", Cookie => main::cookie(sprintf 'f0f0%028x', $c),
             Referer => 'https://example.com/' . ('r' x 500));
});
waitpid($_, 0) for @kids;
is($count->(qr/^fail/), 0, 'every request answered');
my $n = main::recorded('/f');
ok(wait_for(sub { $n = main::recorded('/f'); $n > 0 }, 5), "some recorded ($n)");
--- error_log
writer queue full

=== TEST 10: events from both workers go through the one writer: all acknowledged and stored, one batch commit shared by concurrent events
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=64m;
--- workers: 2
--- config
location = /omni/events { omni on; omni_events; add_header X-Pid $pid always; }
--- request
GET /omni/events
--- error_code: 405
--- check
my ($count, @kids) = main::load(8, 40, sub {
    my ($c, $i) = @_;
    post_event(main::cookie(sprintf 'e0e0%028x', $c), 'Product Viewed', "w$c-$i",
               { sku => "SKU-$i" });
});
waitpid($_, 0) for @kids;
is($count->(qr/^fail/), 0, 'every event acknowledged');
ok(main::pids_seen() >= 2 || $ENV{TEST_NGINX_USE_VALGRIND}, 'both workers took events');
my %ids = map { ($_->{messageId} // '') => 1 } @{ main::feed() };
my @lost = grep { !$ids{$_} } map { my $c = $_; map { "w$c-$_" } 1 .. 40 } 1 .. 8;
is(scalar @lost, 0, 'all 320 events in the feed') or diag("@lost[0..9]");
--- no_error_log
[error]

=== TEST 10b: more results due to one worker than its mailbox holds (net.unix.max_dgram_qlen, 10 by default): the writer keeps them until the worker reads, every request is answered
--- skip_if: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=64m;
server {
    # reuseport: each worker accepts its own share of the connections
    listen 127.0.0.1:$TEST_NGINX_PORT2 reuseport;
    location = /pid { return 200 $pid; }
    location = /metrics { omni_metrics; }
    location = /omni/events { omni on; omni_events; }
}
--- workers: 2
--- config
location = /omni/events { omni on; omni_events; }
--- request
GET /omni/events
--- error_code: 405
--- check
# Keep-alive connections to each worker; the writer X is stopped while
# worker Y queues 16 events, then Y is stopped while X writes them and
# answers: 16 results for a mailbox of 10.  Y goes on: all 16 answered.
my %conns;
for (1 .. 80) {
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$ENV{TEST_NGINX_PORT2}")
        or die "connect: $!";
    push @{ $conns{ main::ka($s, "GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")->{body} } }, $s;
}
my $x = main::holder();
my ($y) = grep { $_ != $x } keys %conns;
ok($y && @{ $conns{$y} } >= 17 && @{ $conns{$x} } >= 1, 'connections to both workers')
    or BAIL_OUT('no connections to both workers');
my ($ym, @ys) = @{ $conns{$y} }[0 .. 16];
my $xm = $conns{$x}[0];
my $jobs = sub { main::ka($_[0], "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")->{body}
                     =~ /^omni_writer_queue_event_jobs (\d+)/m ? $1 : -1 };
kill 'STOP', $x;
for my $i (0 .. $#ys) {
    my $body = JSON::PP->new->canonical->encode({ type => 'track', event => 'Product Viewed',
                   messageId => "mb-$i", properties => { sku => "SKU-$i" } });
    print { $ys[$i] } "POST /omni/events HTTP/1.1\r\nHost: x\r\n"
        . 'Cookie: ' . main::cookie(sprintf 'abab%028x', $i) . "\r\n"
        . "Content-Type: application/json\r\nContent-Length: " . length($body)
        . "\r\n\r\n$body";
}
ok(wait_for(sub { $jobs->($ym) == 16 }, 5), 'worker Y queued 16 event jobs');
kill 'STOP', $y;
kill 'CONT', $x;
ok(wait_for(sub { $jobs->($xm) == 0 }, 10), 'the writer wrote them all');
kill 'CONT', $y;
my @status = map { main::ka_read($_)->{status} } @ys;
is(scalar(grep { $_ == 200 } @status), 16, 'all 16 answered 200') or diag("@status");
--- no_error_log
[error]

=== TEST 11: kill -9 of the writer while both workers take events: no acknowledged event is lost
--- skip_if: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=64m;
--- workers: 2
--- config
location = /omni/events { omni on; omni_events; add_header X-Pid $pid always; }
--- request
GET /omni/events
--- error_code: 405
--- check
my $victim = main::holder();
my $dir = "$OmniTest::PREFIX/acks";
my @kids = clients($dir, 6, 60, sub {
    my ($c, $i) = @_;
    my $r = post_event(main::cookie(sprintf 'e1e1%028x', $c), 'Product Added', "k$c-$i",
                       { sku => "SKU-$i" }, 15);
    return $r->{status} == 200 ? "k$c-$i" : undef;
});
my $acked = sub { scalar(() = client_lines($dir)) };
ok(wait_for(sub { $acked->() >= 60 }, 10), 'events are being acknowledged');
kill 'KILL', $victim;
waitpid($_, 0) for @kids;
my @acks = client_lines($dir);
my @lost = main::lost(@acks);
diag(scalar(@acks) . ' events acknowledged');
ok(@acks > 100, 'most events acknowledged across the kill');
is_deeply(\@lost, [], 'no acknowledged event is lost');
--- error_log
exited on signal 9
qr/writer taken over from process \d+, which is gone/
--- no_error_log
[crit]

=== TEST 12: kill -9 of the master: the workers go on serving and writing; when they stop, everything queued is in the store
--- skip_if: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=64m;
--- workers: 2
--- config
location / { omni on; return 200 "ok\n"; }
--- request
GET /warm
--- check
my $master = main::master();
my @workers = OmniTest::_children_of($master);
is(scalar @workers, 2, 'two workers');
my ($count, @kids) = main::load(4, 150, sub {
    my ($c, $i) = @_;
    http_request('GET', "/m?$c-$i", undef,
                 headers => { Cookie => main::cookie(sprintf 'abcd%028x', $c) }, timeout => 5);
});
ok(wait_for(sub { $count->(qr/^ok/) >= 100 }, 10), 'pages are being served');
kill 'KILL', $master;
waitpid($_, 0) for @kids;
is($count->(qr/^fail/), 0, 'no request failed: the workers serve on');
kill 'QUIT', @workers;
ok(wait_for(sub { !grep { kill 0, $_ } @workers }, 10), 'the workers stop gracefully');
is(main::recorded('/m'), 600, 'all 600 page views are in the store');
--- error_log
qr/writer exit: \d+ committed, 0 dropped, 0 failed/

=== TEST 13: every nginx process killed at once (a host crash, short of the kernel's page cache): no answered event is lost, the store verifies, and a new nginx writes at once
--- skip_if: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=64m;
--- workers: 2
--- config
location = /omni/events { omni on; omni_events; }
location / { omni on; return 200 "ok\n"; }
--- request
GET /warm
--- check
my $master = main::master();
my @all = ($master, OmniTest::_children_of($master));
my $dir = "$OmniTest::PREFIX/acks";
my @kids = clients($dir, 4, 100, sub {
    my ($c, $i) = @_;
    my $ck = main::cookie(sprintf 'aaaa%028x', $c);
    my $r = post_event($ck, 'Product Viewed', "h$c-$i", { sku => "S-$i" });
    http_request('GET', "/p?$c-$i", undef, headers => { Cookie => $ck }, timeout => 5);
    return $r->{status} == 200 ? "h$c-$i" : undef;
});
my $acked = sub { scalar(() = client_lines($dir)) };
ok(wait_for(sub { $acked->() >= 80 }, 10), 'events are being acknowledged');
kill 'KILL', @all;
waitpid($_, 0) for @kids;
ok(wait_for(sub { !grep { kill 0, $_ } @all }, 5), 'every nginx process is gone');
my @acks = client_lines($dir);
my @lost = main::lost(@acks);
diag(scalar(@acks) . ' events answered 200 before the kill');
is_deeply(\@lost, [], 'every answered event is in the store');
my ($rc, $out, $err) = omnictl('--store', main::store(), 'export');
is($rc, 0, 'the store verifies') or diag $err;
($rc, $out, $err) = omnictl('--store', main::store(), 'stat');
is($rc, 0, 'omnictl opens it (stale readers cleared)');

=== TEST 13b: a host crash (power, kernel): the disk holds the store as the last checkpoint synced it, the page cache is gone; the next boot restores that checkpoint and replays the journal: every answered event is in the store, and it verifies
--- skip_if: $ENV{TEST_NGINX_USE_VALGRIND}
--- main_config
env OMNI_BOOT_ID=boot-a;
env OMNI_TEST_CKPT_COPY=$TEST_NGINX_PREFIX/at-checkpoint.mdb;
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=64m checkpoint=10m;
--- workers: 2
--- config
location = /omni/events { omni on; omni_events; }
location / { omni on; return 200 "ok\n"; }
--- request
GET /warm
--- check
# checkpoint=10m: after the writer's first checkpoint (its start, before
# any event), no other; at-checkpoint.mdb is the data file as that sync
# left it.
my $master = main::master();
my @all = ($master, OmniTest::_children_of($master));
my $dir = "$OmniTest::PREFIX/acks";
my @kids = clients($dir, 4, 40, sub {
    my ($c, $i) = @_;
    my $ck = main::cookie(sprintf 'a0a0%028x', $c);
    my $r = post_event($ck, $i % 2 ? 'Product Viewed' : 'Product Added', "x$c-$i",
                       { sku => "S-$i", price => 5 });
    return $r->{status} == 200 ? "x$c-$i" : undef;
});
waitpid($_, 0) for @kids;
my @acks = client_lines($dir);
is(scalar @acks, 160, 'all 160 events answered 200');
ok(-s "$OmniTest::PREFIX/at-checkpoint.mdb", 'the checkpoint was copied');
my @segs = glob(main::store() . '/journal.*[0-9a-f]');
ok(@segs >= 1, 'the events are in a journal segment');
kill 'KILL', @all;
ok(wait_for(sub { !grep { kill 0, $_ } @all }, 5), 'every nginx process is gone');
main::host_crash();
local $ENV{OMNI_BOOT_ID} = 'boot-b';
# nginx -t before anything else opens it: it passes, says why it did not
# read the store, and changes nothing (the recovery is the start's)
my $md5 = sub { open(my $f, '<', "$_[0]") or return ''; binmode $f;
                Digest::MD5->new->addfile($f)->hexdigest };
my %before = map { $_ => $md5->($_) } glob(main::store() . '/*');
my ($rc, $out, $err) = run_command([$ENV{NGINX_BIN} // '/usr/sbin/nginx', '-t',
                                    '-p', "$OmniTest::PREFIX/", '-c', 'conf/nginx.conf',
                                    '-e', "$OmniTest::PREFIX/logs/t.log"]);
is($rc, 0, 'nginx -t passes before the recovery') or diag "$out$err";
like("$out$err" . (OmniTest::_slurp("$OmniTest::PREFIX/logs/t.log") // ""), qr/\[notice\].*omni_store: ".*store": the store is to be recovered after a host crash: the next start \(or omnictl\) replays its journal/,
     'nginx -t says the store waits for its recovery');
is_deeply({ map { $_ => $md5->($_) } glob(main::store() . '/*') }, \%before,
          'nginx -t changed no file of the store');
($rc, $out, $err) = omnictl('--store', main::store(), 'stat');
is($rc, 0, 'the store opens after the crash') or diag $err;
like($err, qr/recovered after a host crash: 160 event\(s\) replayed from the journal/,
     'the journal is replayed, once');
my @lost = main::lost(@acks);
is_deeply(\@lost, [], 'every answered event is in the store');
($rc, $out, $err) = omnictl('--store', main::store(), 'export');
is($rc, 0, 'the store verifies') or diag $err;
($rc, $out, $err) = omnictl('--store', main::store(), 'stat');
unlike($err, qr/recovered/, 'a second open recovers nothing');

=== TEST 13c: a host crash under load, with a checkpoint every 50 ms (pins moving, old segments dropped while events come in): every answered event survives the recovery, and the store verifies
--- skip_if: $ENV{TEST_NGINX_USE_VALGRIND}
--- main_config
env OMNI_BOOT_ID=boot-a;
env OMNI_TEST_CKPT_COPY=$TEST_NGINX_PREFIX/at-checkpoint.mdb;
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=64m checkpoint=50ms;
--- workers: 2
--- config
location = /omni/events { omni on; omni_events; }
location / { omni on; return 200 "ok\n"; }
--- request
GET /warm
--- check
my $master = main::master();
my @all = ($master, OmniTest::_children_of($master));
my $dir = "$OmniTest::PREFIX/acks";
my @kids = clients($dir, 4, 400, sub {
    my ($c, $i) = @_;
    my $ck = main::cookie(sprintf 'b1b1%028x', $c * 1000 + $i % 7);
    http_request('GET', "/p?$c-$i", undef, headers => { Cookie => $ck }, timeout => 5);
    my $r = post_event($ck, $i % 3 ? 'Product Viewed' : 'Product Added', "y$c-$i",
                       { sku => "S-$i", price => 5 }, 5);
    return $r->{status} == 200 ? "y$c-$i" : undef;
});
my $acked = sub { scalar(() = client_lines($dir)) };
ok(wait_for(sub { $acked->() >= 300 }, 30), 'events are being acknowledged');
kill 'KILL', @all;
waitpid($_, 0) for @kids;
ok(wait_for(sub { !grep { kill 0, $_ } @all }, 5), 'every nginx process is gone');
my @acks = client_lines($dir);
main::host_crash();
local $ENV{OMNI_BOOT_ID} = 'boot-b';
my ($rc, $out, $err) = omnictl('--store', main::store(), 'stat');
is($rc, 0, 'the store opens after the crash') or diag $err;
diag(scalar(@acks) . " events answered before the crash; $err");
my @lost = main::lost(@acks);
is_deeply(\@lost, [], 'every answered event is in the store');
($rc, $out, $err) = omnictl('--store', main::store(), 'export');
is($rc, 0, 'the store verifies') or diag $err;

=== TEST 14: a full activity table: an impression not yet folded is overwritten, and the warning says so
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=64m activity=16 fold=10s;
omni_rules $TEST_NGINX_PREFIX/rules;
--- user_files
>>> rules/cap.json
{"id": "bar", "campaign": "free-shipping", "cap": {"max": 3, "per": "1d"},
 "banner": {"slot": "topbar", "html": "<b>FREE-SHIPPING</b>"}}
>>> html/index.html
<html><body><!--omni:slot topbar-->page</body></html>
--- config
location / { omni on; }
--- request
GET /index.html
--- check
# 40 visitors, one capped impression each, within the 10 s fold: more
# live entries than the table's 16
my $shown = 0;
for my $i (1 .. 40) {
    $shown++ if http_get('/index.html', Cookie => main::cookie(sprintf 'acc0%028x', $i))->{content}
                =~ /FREE-SHIPPING/;
}
is($shown, 40, 'every visitor sees the banner once');
--- error_log
activity table full (activity=16)

=== TEST 15: fold=0: every batch folds, counters reach the profile with the touchpoint
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=64m fold=0;
--- config
location / { omni on; return 200 "$omni_visits\n"; }
--- request
GET /x
--- check
my $ck = main::cookie('f01df01df01df01df01df01df01df01d');
http_get('/x', Cookie => $ck);
my $p;
ok(wait_for(sub {
    my ($rc, $out) = omnictl('--store', main::store(), 'get', 'f01df01df01df01df01df01df01df01d');
    $rc == 0 && ($p = JSON::PP::decode_json($out)) && $p->{visits} == 1 }, 5),
   'the profile is there with its visit');
--- no_error_log
[error]

=== TEST 16: fold= is bounded
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store fold=5m;
--- config
location / { omni on; }
--- must_die
invalid "fold=5m" (0 to 60s)

=== TEST 17: binary upgrade (USR2) under load: the new generation queues until the old writer exits, then writes; every touch recorded once
--- skip_if: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=64m;
--- workers: 2
--- config
location / { omni on; return 200 "ok\n"; }
--- request
GET /warm
--- check
my $old = main::master();
my $pidfile = "$OmniTest::PREFIX/logs/nginx.pid";
my ($count, @kids) = main::load(4, 200, sub {
    my ($c, $i) = @_;
    http_request('GET', "/u?$c-$i", undef,
                 headers => { Cookie => main::cookie(sprintf 'bbbb%028x', $c) }, timeout => 10);
});
ok(wait_for(sub { $count->(qr/^ok/) >= 100 }, 10), 'pages are being served');
kill 'USR2', $old;
my $new;
ok(wait_for(sub {
    open(my $f, '<', $pidfile) or return 0;
    chomp($new = <$f> // '');
    $new && $new != $old && -e "$pidfile.oldbin" }, 10), "a new master ($new) next to the old one");
ok(wait_for(sub { OmniTest::_children_of($new) == 2 }, 10), 'the new generation has its workers');
ok(wait_for(sub { error_log_text() =~ /another nginx generation's writer holds the store/ }, 5),
   'the new generation does not write while the old writer lives');
kill 'QUIT', $old;
ok(wait_for(sub { !kill 0, $old }, 15), 'the old generation leaves');
my %newkids = map { $_ => 1 } OmniTest::_children_of($new);
ok(wait_for(sub { my $h = main::holder(); $h && $newkids{$h} }, 5),
   'a worker of the new generation is the writer now');
waitpid($_, 0) for @kids;
is($count->(qr/^fail/), 0, 'no request failed across the upgrade');
my $n;
ok(wait_for(sub { $n = main::recorded('/u'); $n >= 800 }, 10), 'all 800 page views recorded')
    or diag("$n of 800");
is($n, 800, 'each once');
kill 'QUIT', $new;
ok(wait_for(sub { !kill 0, $new }, 15), 'the new master stops');
--- no_error_log
[error]
writer queue full

=== TEST 18: a page view sees the one before it within the fold interval: visits and last seen come from the activity table until the fold
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m fold=60s;
--- init
my $store = "$OmniTest::PREFIX/store";
my ($rc, $out, $err) = omnictl('--store', $store, 'stat', '--create');
die "omnictl stat --create: $err" if $rc;
open(my $fh, '>', "$OmniTest::PREFIX/seed.ndjson") or die;
print $fh '{"id":"5ee05ee05ee05ee05ee05ee05ee05ee0","visits":5,"visit_last":1000,"last_seen":{"web":1000}}', "\n";
close $fh;
($rc, $out, $err) = omnictl('--store', $store, 'import', "$OmniTest::PREFIX/seed.ndjson");
die "omnictl import: $err" if $rc;
--- config
omni on;
location = /t { return 200 "$omni_visits\n"; }
--- request
GET /t
--- check
my $ck = main::cookie('5ee05ee05ee05ee05ee05ee05ee05ee0');
my @v = map { http_get('/t', Cookie => $ck)->{content} =~ s/\s+//gr } 1 .. 3;
is_deeply(\@v, [5, 6, 6], 'the first view sees the store (5); the next ones its new visit (6), before any fold');
my ($rc, $out) = omnictl('--store', main::store(), 'get', '5ee05ee05ee05ee05ee05ee05ee05ee0');
is(JSON::PP::decode_json($out)->{visits}, 5, 'the store itself still says 5: nothing folded yet');
--- no_error_log
[error]
