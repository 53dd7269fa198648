# More than one nginx (docs/cluster.md): two nginx nodes, each with its
# own LMDB store, sharing one NATS JetStream stream (R3 on a cluster of 3
# nats-server processes, started here on loopback):
#   - a cookie minted on node 1 is recognised on node 2, its visits go on;
#   - a POS purchase posted to node 2 stops node 1's pixel within 1 s;
#   - a cap of 3 holds across the nodes, each request after the other
#     node has applied the one before (the propagation window);
#   - concurrent changes of one profile on both nodes: both stores end
#     equal (the stream's order decides);
#   - kill -9 of the stream's leader under load: every event answered 200
#     or, after the whole timeout, 503 (a few, retried with their
#     messageId), every one in both stores once;
#   - NATS entirely down for 30 s: pages are served, events get 503 with
#     Retry-After within the timeout, nothing is applied meanwhile, and
#     the feed resumes and the stores converge afterwards;
#   - kill -9 of a node (every process), then a restart: it catches up,
#     and its store equals the other's (exports compared);
#   - reloads under load with the cluster on: every page and event
#     answered, each event applied once on both nodes;
#   - erasure: omnictl forget on one node, the others restored from its
#     backup: the person is gone everywhere, the cookie coming back is one
#     new profile on every node;
#   - a new node bootstrapped from a peer's omnictl backup applies the
#     stream from the copy's sequence and equals the others;
#   - a node down longer than the stream's retention says so and applies
#     nothing (never a silent gap), until bootstrapped from a peer.
# Every node's error.log is checked for [alert], [crit] and [emerg], and
# for sanitizer reports (a module built with ASan/UBSan, docs/testing.md).

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use OmniCookie;
use OmniNats;
use JSON::PP ();
use File::Path ();
use File::Temp ();
use POSIX ();
use Time::HiRes ();

nats_skip_all();
plan(skip_all => 'needs a master process (not under valgrind)')
    if $ENV{TEST_NGINX_USE_VALGRIND};

my $KEY  = 'srv-key-0123456789abcdef0123456789abcdef';
my $JSON = JSON::PP->new->canonical;
my $nats = start_cluster(3);
my $root = File::Temp::tempdir('omni-cluster-XXXXXX', TMPDIR => 1,
                               CLEANUP => !$ENV{OMNI_TEST_KEEP});
my %NODE;

END {
    my $status = $?;
    for my $n (values %NODE) { kill 'KILL', $n->{master}, _workers($n->{master}) if $n->{master} }
    $? = $status;
}

sub _workers { grep { $_ } map { /^\s*(\d+)/ ? $1 : () } `ps -o pid= --ppid $_[0] 2>/dev/null` }

sub conf {
    my ($i) = @_;
    my $p = "$root/n$i";
    my $port = $NODE{$i}{port};
    my $user = $> == 0 ? 'user root;' : '';
    return <<"CONF";
load_module @{[ OmniTest::module_path() ]};
$user
worker_processes 2;
worker_rlimit_core 2g;
working_directory $p/;
error_log $p/logs/error.log info;
pid $p/logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $p/tmp;
    default_type text/html;
    omni_secret "${\ TEST_SECRET }";
    omni_store $p/store @{[ ($NODE{$i}{store_opts} // '') =~ /map_size=/ ? '' : 'map_size=64m' ]} @{[ $NODE{$i}{store_opts} // '' ]};
    omni_rules $p/rules;
    omni_events_key pos "$KEY";
    omni_cluster @{[ $nats->urls ]} node=web-$i $NODE{$i}{cluster} replicas=3 timeout=2s;
    server {
        listen 127.0.0.1:$port;
        root $p/html;
        location = /omni/events { omni on; omni_events; }
        location /rl/ { omni on; return 200 "rl\n"; }
        location / { omni on; add_header X-Visits \$omni_visits always; }
    }
}
CONF
}

my $RULES = <<'JSON';
{"catalog": {"SUMMIT-PRO": {"name": "Summit Pro jacket", "url": "/p/summit-pro"}},
 "rules": [
  {"id": "summit-retarget", "skus": ["SUMMIT-PRO"], "suppress": {"purchased": "advertised"},
   "when": {"viewed": {"sku": "SUMMIT-PRO", "within": "30d"}},
   "pixels": [{"img": "https://ads.example.com/rt?sku=SUMMIT-PRO"}]},
  {"id": "capped", "campaign": "spring", "cap": {"max": 3, "per": "1d"},
   "when": {"attr": {"key": "tier", "eq": "capped"}},
   "banner": {"slot": "hero", "html": "<b>SPRING-SALE</b>"}}
 ]}
JSON

sub start_node {
    my ($i) = @_;
    my $p = "$root/n$i";
    File::Path::make_path("$p/logs", "$p/tmp", "$p/html", "$p/rules");
    $NODE{$i}{port} //= free_port();
    # node 2 sends its runs as they are (OMC2), the others compressed
    # (OMC3): every node reads both, and the stores must still be equal
    $NODE{$i}{cluster} //= 'stream=OMNI' . ($i == 2 ? ' compress=off' : '');
    open(my $fh, '>', "$p/html/index.html") or die;
    print $fh "<html><body><!--omni:slot hero-->page</body></html>\n";
    close $fh;
    open($fh, '>', "$p/rules/r.json") or die;
    print $fh $RULES;
    close $fh;
    open($fh, '>', "$p/nginx.conf") or die;
    print $fh conf($i);
    close $fh;
    my ($rc, $out, $err) = run_command([OmniTest::nginx_bin(), '-p', "$p/", '-c', "$p/nginx.conf"]);
    die "node $i: nginx failed: $out $err" if $rc;
    ok(wait_for(sub { http_request('GET', '/', undef, port => $NODE{$i}{port}, timeout => 1)->{status} == 200 }, 10),
       "node $i serves");
    open($fh, '<', "$p/logs/nginx.pid") or die;
    chomp($NODE{$i}{master} = <$fh>);
}

sub stop_node {
    my ($i, $sig) = @_;
    my $m = $NODE{$i}{master} or return;
    my @all = ($m, _workers($m));
    kill $sig // 'QUIT', $sig && $sig eq 'KILL' ? @all : $m;
    ok(wait_for(sub { !grep { kill 0, $_ } @all }, 15), "node $i stopped (" . ($sig // 'QUIT') . ')');
    delete $NODE{$i}{master};
}

sub get {
    my ($i, $path, $cookie) = @_;
    return http_request('GET', $path, undef, port => $NODE{$i}{port},
                        headers => { $cookie ? (Cookie => "omni=$cookie") : () }, timeout => 5);
}

sub post {
    my ($i, $body, %h) = @_;
    my $r = http_request('POST', '/omni/events', $JSON->encode($body), port => $NODE{$i}{port},
                         headers => { 'Content-Type' => 'application/json', %h }, timeout => 10);
    $r->{json} = eval { JSON::PP::decode_json($r->{content}) };
    return $r;
}

sub store { "$root/n$_[0]/store" }

sub stat_of {
    my ($rc, $out) = omnictl('--store', store($_[0]), 'stat');
    return $rc == 0 ? JSON::PP::decode_json($out) : {};
}

# Both stores have applied the whole stream (the same sequence), and it
# stays so for a moment: nothing in flight.
sub settled {
    my $s;
    return wait_for(sub {
        my ($a, $b) = (stat_of(1)->{stream_seq} // 0, stat_of(2)->{stream_seq} // 0);
        $a && $a == $b && $a == ($s // -1) ? 1 : do { $s = $a; 0 };
    }, 20, 0.2);
}

# Two stores hold the same profiles: the exports are compared until they
# match (each node applies the stream at its own pace; one may be a fetch
# behind when both were last looked at), for at most 20 s, then once more
# for the report.
sub same_stores {
    my ($x, $y, $name) = @_;
    wait_for(sub { export_of($x) eq export_of($y) }, 20, 0.2);
    is(export_of($x), export_of($y), $name);
}

sub export_of {
    my ($rc, $out, $err) = omnictl('--store', store($_[0]), 'export');
    die "export: $err" if $rc;
    return $out;
}

sub feed_of {
    my ($rc, $out) = omnictl('--store', store($_[0]), 'tail', '--after', '0', '--limit', '1000000');
    return [ map { JSON::PP::decode_json($_) } split /\n/, $out ];
}

sub profile_of {
    my ($i, $alias) = @_;
    my ($rc, $out) = omnictl('--store', store($i), 'get', '--alias', $alias);
    return $rc == 0 ? JSON::PP::decode_json($out) : undef;
}

start_node(1);
start_node(2);

# ---- one visitor, two nodes ----
my $vid = random_id();
my $ck = mint_cookie(TEST_SECRET, $vid);
get(1, '/', $ck) for 1 .. 2;
ok(wait_for(sub { profile_of(2, "cookie:$vid") }, 5), 'node 2 knows the cookie minted for node 1');
ok(settled(), 'both nodes applied the stream');
my $v1 = get(1, '/', $ck)->{headers}{'x-visits'};
ok($v1 >= 1, "node 1: visits $v1");
ok(settled(), 'both nodes applied the stream');
my $v2 = get(2, '/', $ck)->{headers}{'x-visits'};
is($v2, $v1, "node 2 continues the visit count ($v1)");
ok(settled(), 'both nodes applied the stream');

# ---- a POS purchase on node 2 stops node 1's pixel ----
my $r = post(1, { type => 'track', event => 'Product Viewed', properties => { sku => 'SUMMIT-PRO', name => 'Summit Pro' } },
             Cookie => "omni=$ck");
is($r->{status}, 200, 'a view of SUMMIT-PRO on node 1') or diag $r->{content};
like(get(1, '/', $ck)->{content}, qr{rt\?sku=SUMMIT-PRO}, 'node 1 shows the retargeting pixel');
$r = post(1, { type => 'identify', userId => 'C-9', anonymousId => $vid, messageId => 'link-9' },
          Authorization => "Bearer $KEY");
is($r->{status}, 200, 'the visitor is customer C-9');
$r = post(2, { type => 'track', event => 'Order Completed', userId => 'C-9', messageId => 'pos-9',
               properties => { order_id => 'POS-9', channel => 'pos',
                               products => [ { sku => 'SUMMIT-PRO', name => 'Summit Pro', price => 349 } ] } },
          Authorization => "Bearer $KEY");
is($r->{status}, 200, 'a POS purchase posted to node 2: 200 (in the stream, applied)') or diag $r->{content};
my $t0 = Time::HiRes::time();
ok(wait_for(sub { get(1, '/', $ck)->{content} !~ /rt\?sku=SUMMIT-PRO/ }, 1, 0.01),
   'node 1 stops the pixel within 1 s');
diag(sprintf 'node 1 stopped the pixel %.0f ms after the purchase was answered', 1000 * (Time::HiRes::time() - $t0));

# ---- a cap of 3 across the nodes ----
my $cid = random_id();
my $cc = mint_cookie(TEST_SECRET, $cid);
get(1, '/', $cc);
get(1, '/', $cc);
$r = post(1, { type => 'identify', anonymousId => $cid, traits => { tier => 'capped' }, messageId => 'tier-1' },
          Authorization => "Bearer $KEY");
is($r->{status}, 200, 'the capped visitor');
ok(settled(), 'applied everywhere');
my $shown = 0;
for my $k (1 .. 8) {
    $shown++ if get(1 + $k % 2, '/', $cc)->{content} =~ /SPRING-SALE/;
    settled();
}
is($shown, 3, 'a cap of 3 holds across two nodes: 3 banners in 8 alternating views');

# ---- concurrent changes of one profile on both nodes ----
my $did = random_id();
my $dc = mint_cookie(TEST_SECRET, $did);
get(1, '/', $dc);
my @kids;
for my $i (1, 2) {
    my $pid = fork() // die;
    if ($pid == 0) {
        for my $k (1 .. 20) {
            get($i, "/p$k", $dc);
            post($i, { type => 'identify', anonymousId => $did, traits => { color => "n$i-$k" },
                       messageId => "c$i-$k" }, Authorization => "Bearer $KEY");
        }
        POSIX::_exit(0);
    }
    push @kids, $pid;
}
waitpid($_, 0) for @kids;
ok(settled(), 'both nodes applied everything');
my ($p1, $p2) = (profile_of(1, "cookie:$did"), profile_of(2, "cookie:$did"));
is_deeply($p2, $p1, 'one profile changed on both nodes at once: the same on both');
same_stores(2, 1, 'the stores are equal (exports)');

# ---- kill -9 of the stream's leader under load ----
# The worst case: the server that leads the stream dies, and JetStream
# elects another (a few seconds, docs/cluster.md).  Publishing waits and
# sends again within timeout=, so an event posted meanwhile waits; only
# one that waits the whole timeout= gets 503 (with Retry-After), and the
# client sends it again with its messageId.  Every event ends answered
# 200, none lost, none applied twice.
{
    my $dir = "$root/acks";
    mkdir $dir;
    my (undef, $si) = $nats->natsping('stream-info', 'OMNI');
    my ($leader) = $si =~ /^leader=(.*)$/m;
    my ($victim) = grep { $nats->names->[$_] eq ($leader // '') } 0 .. $nats->size - 1;
    ok(defined $victim, "the stream's leader: " . ($leader // '?'));
    $victim //= 0;
    my @k;
    for my $c (1 .. 4) {
        my $pid = fork() // die;
        if ($pid == 0) {
            open(my $out, '>', "$dir/$c") or POSIX::_exit(2);
            $out->autoflush(1);
            my $vc = mint_cookie(TEST_SECRET, random_id());
            for my $i (1 .. 60) {
                for my $try (1 .. 30) {
                    my $t = Time::HiRes::time();
                    my $res = post(1 + $c % 2, { type => 'track', event => 'Product Added', messageId => "k$c-$i",
                                                 properties => { sku => "S-$i" } }, Cookie => "omni=$vc");
                    printf $out "k$c-$i %d %.2f %s\n", $res->{status}, Time::HiRes::time() - $t,
                        $res->{headers}{'retry-after'} // '-';
                    last if $res->{status} != 503;
                    Time::HiRes::sleep($res->{headers}{'retry-after'} // 1);    # as a client does
                }
            }
            POSIX::_exit(0);
        }
        push @k, $pid;
    }
    my $answers = sub { map { [ split ' ' ] } `cat $dir/* 2>/dev/null` };
    ok(wait_for(sub { grep({ $_->[1] == 200 } $answers->()) >= 40 }, 20), 'events are being acknowledged');
    $nats->kill9($victim);
    waitpid($_, 0) for @k;
    my @all = $answers->();
    my @acks = map { $_->[0] } grep { $_->[1] == 200 } @all;
    my @busy = grep { $_->[1] == 503 } @all;
    my @other = grep { $_->[1] != 200 && $_->[1] != 503 } @all;
    diag(scalar(@acks) . ' events answered 200, ' . scalar(@busy) . ' answers 503 (retried) across the kill of the stream leader');
    is_deeply([ map { "@$_" } @other ], [], 'every answer is 200 or 503');
    is(scalar(@acks), 240, 'every event answered 200 in the end (each 503 retried with its messageId)');
    is_deeply([ map { "@$_" } grep { $_->[2] < 1.9 || !$_->[3] || $_->[3] eq '-' } @busy ], [],
              'a 503 only after the whole timeout (2 s), with Retry-After');
    # a client that sends one event at a time loses at most one timeout
    # per 2 s of election (docs/cluster.md): a few per client
    ok(@busy <= 4 * 6, 'at most 6 answers 503 per client (' . scalar(@busy) . ')');
    ok(settled(), 'both nodes applied the stream');
    for my $i (1, 2) {
        my %n;
        $n{ $_->{messageId} // '' }++ for @{ feed_of($i) };
        is_deeply([ grep { ($n{$_} // 0) != 1 } @acks ], [], "node $i: every answered event is in its store, once");
    }
    $nats->restart($victim, wait => 0);
    $nats->wait_ready(timeout => 90);
}

# ---- NATS entirely down for 30 s ----
# Pages are served all along; every event gets 503 with Retry-After
# within the timeout; nothing is half-applied (an event answered 503 is
# applied once, whole, when NATS is back, or never); the feed resumes and
# the stores converge.
{
    my @idx = (0 .. $nats->size - 1);
    my $before = { map { $_ => scalar @{ feed_of($_) } } 1, 2 };
    $nats->kill9($_) for @idx;
    my $t0 = Time::HiRes::time();
    my (@pages, @events, @slow);
    my $k = 0;
    while (Time::HiRes::time() - $t0 < 30) {
        $k++;
        push @pages, get(1 + $k % 2, "/rl/during-$k", $ck)->{status};
        if ($k % 5 == 0) {
            my $t = Time::HiRes::time();
            my $ev = post(1 + $k % 2, { type => 'track', event => 'Product Viewed', messageId => "down-$k",
                                        properties => { sku => 'X' } }, Cookie => "omni=$ck");
            push @events, [ "down-$k", $ev ];
            push @slow, "down-$k" if Time::HiRes::time() - $t > 5;
        }
        Time::HiRes::sleep(0.2);    # the outage's pace, not a synchronization
    }
    diag(sprintf '%d pages and %d events over %.0f s with NATS down', scalar(@pages), scalar(@events),
         Time::HiRes::time() - $t0);
    is_deeply([ grep { $_ != 200 } @pages ], [], 'NATS down for 30 s: every page served (200)');
    is_deeply([ map { "$_->[0] $_->[1]{status}" } grep { $_->[1]{status} != 503 } @events ], [],
              'NATS down: every event gets 503');
    is_deeply([ map { $_->[0] } grep { !$_->[1]{headers}{'retry-after'} } @events ], [], 'with Retry-After');
    is_deeply([ map { $_->[0] } grep { ($_->[1]{json}{reason} // '') !~ /did not acknowledge/ } @events ], [],
              'saying why');
    is_deeply(\@slow, [], 'within the timeout (2 s), not hanging');
    for my $i (1, 2) {
        is(scalar @{ feed_of($i) }, $before->{$i}, "node $i: nothing applied while NATS is down");
    }
    $nats->restart($_, wait => 0) for @idx;
    $nats->wait_ready(timeout => 90);
    my $first = $events[0][0];
    ok(wait_for(sub { post(2, { type => 'track', event => 'Product Viewed', messageId => $first,
                                properties => { sku => 'X' } }, Cookie => "omni=$ck")->{status} == 200 }, 30, 0.5),
       'NATS back: a retried event is answered 200');
    ok(settled(), 'both nodes caught up');
    my %pages = map { ("/rl/during-$_" => 1) } 1 .. $k;
    for my $i (1, 2) {
        my @f = @{ feed_of($i) };
        my %n;
        $n{ $_->{messageId} // '' }++ for @f;
        is(scalar(grep { $pages{ $_->{properties}{path} // '' } } @f), $k,
           "node $i: the $k page views served while NATS was down are in the feed, once");
        is($n{$first}, 1, "node $i: the retried event, once");
        # an event answered 503 stays queued and is published when NATS is
        # back: applied whole, once (a retry then answers "duplicate")
        is_deeply([ grep { ($n{$_} // 0) != 1 } map { $_->[0] } @events ], [],
                  "node $i: every event answered 503 while NATS was down is applied once now");
    }
    same_stores(2, 1, 'NATS back: the stores are equal (exports)');
}

# ---- kill -9 of a node, then a restart ----
stop_node(2, 'KILL');
for my $k (1 .. 20) { get(1, "/while-2-down-$k", $ck) }
post(1, { type => 'track', event => 'Product Added', messageId => 'while-down', properties => { sku => 'W' } },
     Cookie => "omni=$ck");
start_node(2);
ok(settled(), 'the restarted node caught up');
same_stores(2, 1, 'its store equals the other node\'s (exports)');

# ---- reloads under load ----
# Pages and events on both nodes while both reload five times: every page
# answered, every event answered 200 (a worker that exits answers the
# events its last fetch applied), each applied once on both nodes.
{
    my $dir = "$root/reload";
    mkdir $dir;
    my @k;
    for my $c (1 .. 3) {
        my $pid = fork() // die;
        if ($pid == 0) {
            open(my $out, '>', "$dir/$c") or POSIX::_exit(2);
            $out->autoflush(1);
            for my $i (1 .. 150) {
                if ($c == 3) {
                    last if $i > 60;
                    my $res = post(1 + $i % 2, { type => 'track', event => 'Product Added', messageId => "rl-$i",
                                                 properties => { sku => "R-$i" } }, Cookie => "omni=$ck");
                    print $out "event rl-$i $res->{status}\n";
                    next;
                }
                my $res = get(1 + $c % 2, "/rl/$c-$i", $ck);
                print $out ($res->{status} == 200 ? "ok\n" : "fail $res->{status}\n");
            }
            POSIX::_exit(0);
        }
        push @k, $pid;
    }
    for (1 .. 5) {
        kill 'HUP', $NODE{1}{master}, $NODE{2}{master};
        Time::HiRes::sleep(0.2);
    }
    waitpid($_, 0) for @k;
    my @lines = map { chomp; $_ } `cat $dir/1 $dir/2`;
    is(scalar(grep { $_ eq 'ok' } @lines), 300, 'reloads under load: every page answered')
        or diag("@lines[0 .. 9]");
    my @ev = map { chomp; [ split ' ' ] } `cat $dir/3`;
    is_deeply([ map { "$_->[1] $_->[2]" } grep { $_->[2] != 200 } @ev ], [],
              'reloads under load: every event answered 200');
    is(scalar(@ev), 60, '60 events');
    ok(settled(), 'both nodes applied the stream');
    for my $i (1, 2) {
        my @f = @{ feed_of($i) };
        is(scalar(grep { ($_->{properties}{path} // '') =~ m{^/rl/\d+-\d+$} } @f), 300,
           "every page view of both nodes, once, in node ${i}'s feed");
        my %n;
        $n{ $_->{messageId} // '' }++ for @f;
        is_deeply([ grep { ($n{"rl-$_"} // 0) != 1 } 1 .. 60 ], [], "node $i: every event, once");
    }
    same_stores(2, 1, 'the stores are equal');
}

# ---- erasure in a cluster (docs/cluster.md "Erasure") ----
# omnictl forget writes one node's store; the other nodes get the erased
# store by the bootstrap procedure (backup of the node that forgot,
# restore on each other node), so that every node holds the same
# tombstones: the cookie coming back is one new profile everywhere.
{
    my $eid = random_id();
    my $ec = mint_cookie(TEST_SECRET, $eid);
    get(1, '/', $ec) for 1 .. 2;
    get(2, '/e-2', $ec);
    is(post(2, { type => 'identify', anonymousId => $eid, traits => { secret => 'erase-me' },
                 messageId => 'erase-1' }, Authorization => "Bearer $KEY")->{status}, 200, 'a person to erase');
    ok(settled(), 'applied everywhere');
    my $old = (profile_of(2, "cookie:$eid") // {})->{id};
    ok($old, 'node 2 has the profile');
    my ($rc, $out, $err) = omnictl('--store', store(1), 'forget', '--alias', "cookie:$eid");
    is($rc, 0, 'omnictl forget on node 1') or diag $err;
    ok(!profile_of(1, "cookie:$eid"), 'erased on node 1');
    ok(profile_of(2, "cookie:$eid"), 'not on node 2 yet: omnictl writes one store');
    ($rc, $out, $err) = omnictl('--store', store(1), 'backup', "$root/backup-erased");
    is($rc, 0, "backup of node 1's store") or diag $err;
    stop_node(2);
    ($rc, $out, $err) = omnictl('--store', store(2), 'restore', "$root/backup-erased");
    is($rc, 0, 'restored on node 2') or diag $err;
    start_node(2);
    ok(settled(), 'node 2 applies the stream from the copy on');
    ok(!profile_of(2, "cookie:$eid"), 'erased on node 2');
    same_stores(2, 1, 'the stores are equal');
    unlike(export_of(2), qr/erase-me|\Q$old\E/, 'nothing of the person in either export');
    get(1, '/', $ec) for 1 .. 2;
    get(2, '/', $ec);
    ok(settled(), 'the cookie came back on both nodes');
    my ($n1, $n2) = map { (profile_of($_, "cookie:$eid") // {})->{id} // '' } 1, 2;
    ok($n1 && $n1 ne $old, 'the cookie coming back is a new profile');
    is($n2, $n1, 'the same new profile on both nodes');
    same_stores(2, 1, 'the stores are equal');
}

# ---- a new node bootstrapped from a peer's backup ----
# docs/cluster.md "Bootstrapping a node": omnictl backup on a running
# peer, restore on the new node (the copy keeps the stream sequence),
# start it: it applies the stream from the copy's sequence, and its store
# ends equal to the others'.
{
    my $bk = "$root/backup-1";
    my ($rc, $out, $err) = omnictl('--store', store(1), 'backup', $bk);
    is($rc, 0, "omnictl backup of node 1's store while it runs") or diag $err;
    my $copied = stat_of(1)->{stream_seq};
    for my $k (1 .. 10) { get(1 + $k % 2, "/after-backup-$k", $ck) }
    is(post(2, { type => 'identify', anonymousId => $vid, traits => { plan => 'after-backup' },
                 messageId => 'after-backup' }, Authorization => "Bearer $KEY")->{status}, 200,
       'an event after the backup');
    File::Path::make_path("$root/n4");
    ($rc, $out, $err) = omnictl('--store', store(4), 'restore', $bk);
    is($rc, 0, 'restored on the new node 4') or diag $err;
    my $restored = stat_of(4)->{stream_seq} // 0;
    ok($restored > 0 && $restored <= $copied + 0, "the copy holds the stream sequence ($restored)");
    ok(settled(), 'nodes 1 and 2 applied the stream');
    my $last = stat_of(1)->{stream_seq};
    ok($last > $restored, "the stream went on past the copy ($last)");
    start_node(4);
    # (its own first page view is in the stream too)
    ok(wait_for(sub { my $s4 = stat_of(4)->{stream_seq} // 0;
                      $s4 > $last && $s4 == (stat_of(1)->{stream_seq} // 0) }, 20, 0.2),
       "node 4 applied the stream from the copy's sequence on");
    same_stores(4, 1, 'node 4 equals node 1 (exports)');
    is((profile_of(4, "cookie:$vid") // {})->{attributes}{plan}, 'after-backup',
       'node 4 has the event posted after the backup');
    unlike(OmniTest::_slurp("$root/n4/logs/error.log") // '', qr/bootstrap this node/, 'node 4 is not behind');
    stop_node(4);
}

# ---- a node behind the stream's retention, and its bootstrap ----
{
    $NODE{$_}{cluster} = 'stream=SHORT max_age=3s' for 3, 5;
    start_node(5);                  # the peer that stays up
    start_node(3);
    my %info;
    my $stream_info = sub {
        my (undef, $out) = $nats->natsping('stream-info', 'SHORT');
        %info = $out =~ /^(\w+)=(.*)$/mg;
        return \%info;
    };
    get(3, '/', $ck) for 1 .. 2;
    # (a node publishes several records per message: the count varies)
    ok(wait_for(sub { my $l = $stream_info->()->{last_seq} // 0;
                      $l >= 1 && (stat_of(3)->{stream_seq} // 0) == $l }, 10, 0.2),
       'node 3 applied its stream');
    my $before = stat_of(3)->{stream_seq};
    stop_node(3);
    for my $k (1 .. 3) { $nats->natsping({stream => 'SHORT'}, 'pub', 'omni.SHORT.other', "x$k") }
    for my $k (1 .. 3) { get(5, "/short-$k", $ck) }
    ok(wait_for(sub {
        $stream_info->();
        ($info{messages} // 1) == 0 && ($info{last_seq} // 0) >= $before + 4
            && (stat_of(5)->{stream_seq} // 0) == $info{last_seq};
    }, 20, 0.2), "retention dropped the stream's messages (first_seq $info{first_seq})");
    is(stat_of(5)->{stream_seq}, $info{last_seq}, 'the peer, node 5, applied them all');
    start_node(3);
    my $log = "$root/n3/logs/error.log";
    my $behind = qr/omni: cluster: this node's store holds the stream up to sequence \d+, and the stream now begins at \d+ \(retention removed the records between\): bootstrap this node/;
    ok(wait_for(sub { (OmniTest::_slurp($log) // '') =~ $behind }, 10),
       'node 3 says it is behind the retention and needs a bootstrap');
    is(get(3, '/', $ck)->{status}, 200, 'and serves pages from its store');
    # the bootstrap, as documented
    stop_node(3);
    my ($rc, undef, $err) = omnictl('--store', store(5), 'backup', "$root/backup-5");
    is($rc, 0, "backup of the peer's store") or diag $err;
    ($rc, undef, $err) = omnictl('--store', store(3), 'restore', "$root/backup-5");
    is($rc, 0, "restored on node 3") or diag $err;
    my $lines = () = (OmniTest::_slurp($log) // '') =~ /$behind/g;
    start_node(3);
    get(5, '/short-after', $ck);
    ok(wait_for(sub { (stat_of(3)->{stream_seq} // 0) == (stat_of(5)->{stream_seq} // -1)
                      && (stat_of(3)->{stream_seq} // 0) > $info{last_seq} }, 10, 0.2),
       'bootstrapped, node 3 applies the stream again');
    my $now = () = (OmniTest::_slurp($log) // '') =~ /$behind/g;
    is($now, $lines, 'and no longer says it is behind');
    same_stores(3, 5, 'node 3 equals its peer (exports)');
    stop_node(3);
    stop_node(5);
}

# ---- runs across the queue's end ----
# Records go to the stream in runs of the queue's consecutive records
# (docs/cluster.md); a run never crosses the end of the queue's ring. A
# queue of 32 is a ring of 16 KB; page views of one visitor with paths of
# 64 characters are records of 128 bytes (a 64-byte header and the
# path), so every 128th ends exactly at the ring's end, with no pad
# record after it. Every page view reaches the peer, once, and nothing
# is damaged or skipped. The stores start with a map of 1 MB, which the
# page views fill: each node's consumer finds the map full and grows it
# (on the event loop, where no transaction of the worker is open) and
# applies the stream again.
{
    for my $i (6, 7) {
        $NODE{$i}{cluster} = 'stream=RING';
        $NODE{$i}{store_opts} = 'queue=32 map_size=1m map_max=64m';
        start_node($i);
    }
    my $rid = random_id();
    my $rc = mint_cookie(TEST_SECRET, $rid);
    my $n = 2000;
    # the node's first page view in the stream: the stream is made, the
    # consumer subscribed; then bursts of 50, each applied before the next
    get(6, sprintf('/rl/%060d', 0), $rc);
    my $count = sub { scalar grep { ($_->{properties}{path} // '') =~ m{^/rl/0*[1-9]\d*$} } @{ feed_of($_[0]) } };
    ok(wait_for(sub { profile_of(7, "cookie:$rid") }, 20, 0.1), 'node 7 has the first page view');
    # where the queue is: the end of the stream's last run
    my $end = sub {
        my (undef, $dump) = $nats->natsping({stream => 'RING', hex => 1}, 'dump');
        my $hex = (split /\t/, (split /\n/, $dump)[-1])[3] // '';
        return (unpack 'V V Q< Q< Q< Q<', pack 'H*', substr($hex, 0, 96))[5];
    };
    # one page view whose record brings the queue to a multiple of 128
    my $at = $end->();
    my $fill = (16384 - $at % 16384) % 128;
    $fill += 128 if $fill < 72;
    get(6, '/rl/' . ('a' x ($fill - 68)), $rc);
    ok(wait_for(sub { ($end->() // 0) > $at }, 10, 0.05), 'it is in the stream');
    is($end->() % 128, 0, "the queue at a multiple of 128 bytes (from $at, a record of $fill)");
    my @bad;
    for (my $k = 1; $k <= $n; $k += 50) {
        push @bad, grep { $_ != 200 } map { get(6, sprintf('/rl/%060d', $_), $rc)->{status} } $k .. $k + 49;
        wait_for(sub { $count->(6) >= $k + 49 }, 5, 0.01) or last;
    }
    is_deeply(\@bad, [], "$n page views on node 6, its queue wrapping");
    ok(wait_for(sub { $count->(7) == $n }, 30, 0.2), "node 7 has all $n of them")
        or diag 'node 7: ' . $count->(7) . ', node 6: ' . $count->(6);
    is($count->(6), $n, 'node 6 too, once each');
    # then 1.5 MB of touchpoints: page views with 1,000-character paths,
    # ten at a time (a queue of 16 KB holds fourteen)
    my $tps = sub { stat_of($_[0])->{touchpoints} // 0 };
    my $base = $tps->(6);
    for (my $k = 0; $k < 1500; $k += 10) {
        push @bad, grep { $_ != 200 } map { get(6, sprintf('/rl/%04d', $_) . ('f' x 992), $rc)->{status} } $k .. $k + 9;
        wait_for(sub { $tps->(6) >= $base + $k + 10 }, 5, 0.01) or last;
    }
    is_deeply(\@bad, [], '1,500 page views of 1,000-character paths');
    ok(wait_for(sub { $tps->(7) == $base + 1500 }, 30, 0.2), 'node 7 has all of them')
        or diag 'node 7: ' . $tps->(7) . ', node 6: ' . $tps->(6) . ", from $base";
    same_stores(7, 6, 'the stores are equal (exports)');
    for my $i (6, 7) {
        my $log = OmniTest::_slurp("$root/n$i/logs/error.log") // '';
        my @seen = grep { /damaged|are lost|skipped|queue full/ } split /\n/, $log;
        is_deeply(\@seen, [], "node $i: no run damaged, skipped or dropped");
        like($log, qr/\[notice\].*omni: store map grown from 1048576 to 2097152 bytes/,
             "node $i: its consumer grew the map (MDB_MAP_FULL)");
    }
    stop_node($_) for 6, 7;
}

# ---- the stream's messages: compressed from node 1, as they are from node 2 ----
{
    my (undef, $dump) = $nats->natsping({stream => 'OMNI', hex => 1}, 'dump');
    my %magic;
    for my $line (split /\n/, $dump // '') {
        my (undef, $subject, undef, $hex) = split /\t/, $line;
        $magic{$subject}{substr($hex // '', 0, 8)}++;
    }
    ok($magic{'omni.OMNI.web-1'}{'4f4d4333'},
       'node 1 (compress=on, the default) published compressed runs (OMC3)')
        or diag explain \%magic;
    is_deeply([ sort keys %{ $magic{'omni.OMNI.web-2'} // {} } ], ['4f4d4332'],
              'node 2 (compress=off): every run as it is (OMC2)');
}

stop_node(1);
stop_node(2);

for my $i (1 .. 7) {
    my $log = OmniTest::_slurp("$root/n$i/logs/error.log") // '';
    my @bad = $log =~ /^(.*(?:\[(?:alert|crit|emerg)\]|runtime error:|ERROR: AddressSanitizer).*)$/mg;
    is_deeply(\@bad, [], "node $i: no [alert], [crit] or [emerg], no sanitizer report");
}

done_testing();
