# More than one nginx (docs/cluster.md): two nginx nodes, each with its
# own LMDB store, sharing one NATS JetStream stream (R3 on a cluster of 3
# nats-server processes, started here on loopback):
#   - a cookie minted on node 1 is recognised on node 2, its visits go on;
#   - a POS purchase posted to node 2 stops node 1's pixel within 1 s;
#   - a cap of 3 holds across the nodes, each request after the other
#     node has applied the one before (the propagation window);
#   - concurrent changes of one profile on both nodes: both stores end
#     equal (the stream's order decides);
#   - kill -9 of one NATS server under load: every answered event is in
#     both stores;
#   - NATS entirely down: pages are served, events get 503 with
#     Retry-After, and the feed resumes afterwards;
#   - kill -9 of a node (every process), then a restart: it catches up,
#     and its store equals the other's (exports compared);
#   - reloads under load with the cluster on;
#   - a node down longer than the stream's retention says so and applies
#     nothing (never a silent gap).
# Every node's error.log is checked for [alert], [crit] and [emerg].

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
    omni_store $p/store map_size=64m;
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
    $NODE{$i}{cluster} //= 'stream=OMNI';
    open(my $fh, '>', "$p/html/index.html") or die;
    print $fh "<html><body><!--omni:slot hero-->page</body></html>\n";
    close $fh;
    open($fh, '>', "$p/rules/r.json") or die;
    print $fh $RULES;
    close $fh;
    open($fh, '>', "$p/nginx.conf") or die;
    print $fh conf($i);
    close $fh;
    my ($rc, $out, $err) = run_command(['/usr/sbin/nginx', '-p', "$p/", '-c', "$p/nginx.conf"]);
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
is(export_of(2), export_of(1), 'the stores are equal (exports)');

# ---- kill -9 of one NATS server under load ----
{
    my $dir = "$root/acks";
    mkdir $dir;
    my @k;
    for my $c (1 .. 4) {
        my $pid = fork() // die;
        if ($pid == 0) {
            open(my $out, '>', "$dir/$c") or POSIX::_exit(2);
            $out->autoflush(1);
            my $vc = mint_cookie(TEST_SECRET, random_id());
            for my $i (1 .. 60) {
                my $res = post(1 + $c % 2, { type => 'track', event => 'Product Added', messageId => "k$c-$i",
                                             properties => { sku => "S-$i" } }, Cookie => "omni=$vc");
                print $out "k$c-$i\n" if $res->{status} == 200;
            }
            POSIX::_exit(0);
        }
        push @k, $pid;
    }
    my $acked = sub { scalar(() = `cat $dir/* 2>/dev/null`) };
    ok(wait_for(sub { $acked->() >= 40 }, 20), 'events are being acknowledged');
    $nats->kill9(0);
    waitpid($_, 0) for @k;
    my @acks = map { chomp; $_ } `cat $dir/*`;
    diag(scalar(@acks) . ' events answered 200 across the kill of a NATS server');
    # a server's death can cost a few seconds of 503s (JetStream elects
    # new leaders for the stream and the consumer); what counts is that
    # none of the answered ones is lost
    ok(@acks >= 40, 'events answered across the kill');
    ok(settled(), 'both nodes applied the stream');
    for my $i (1, 2) {
        my %ids = map { ($_->{messageId} // '') => 1 } @{ feed_of($i) };
        my @lost = grep { !$ids{$_} } @acks;
        is_deeply(\@lost, [], "node $i: every answered event is in its store");
    }
    $nats->restart(0, wait => 0);
    $nats->wait_ready(timeout => 90);
}

# ---- NATS entirely down ----
{
    my @idx = (0 .. $nats->size - 1);
    $nats->kill9($_) for @idx;
    my $page = get(1, '/', $ck);
    is($page->{status}, 200, 'NATS down: pages are served');
    my $t = Time::HiRes::time();
    my $ev = post(2, { type => 'track', event => 'Product Viewed', messageId => 'down-1',
                       properties => { sku => 'X' } }, Cookie => "omni=$ck");
    is($ev->{status}, 503, 'NATS down: an event gets 503');
    ok($ev->{headers}{'retry-after'}, 'with Retry-After');
    like($ev->{json}{results} ? '' : $ev->{json}{reason} // '', qr/did not acknowledge/, 'saying why');
    ok(Time::HiRes::time() - $t < 5, 'within the timeout (2 s), not hanging');
    get(1, "/during-$_", $ck) for 1 .. 5;
    $nats->restart($_, wait => 0) for @idx;
    $nats->wait_ready(timeout => 90);
    ok(wait_for(sub { post(2, { type => 'track', event => 'Product Viewed', messageId => 'down-1',
                                properties => { sku => 'X' } }, Cookie => "omni=$ck")->{status} == 200 }, 30, 0.5),
       'NATS back: the retried event is answered 200');
    ok(settled(), 'both nodes caught up');
    for my $i (1, 2) {
        my @f = @{ feed_of($i) };
        ok((grep { ($_->{properties}{path} // '') =~ m{^/during-} } @f) == 5,
           "node $i: the page views served while NATS was down are in the feed");
        ok((grep { ($_->{messageId} // '') eq 'down-1' } @f) == 1, "node $i: the retried event, once");
    }
}

# ---- kill -9 of a node, then a restart ----
stop_node(2, 'KILL');
for my $k (1 .. 20) { get(1, "/while-2-down-$k", $ck) }
post(1, { type => 'track', event => 'Product Added', messageId => 'while-down', properties => { sku => 'W' } },
     Cookie => "omni=$ck");
start_node(2);
ok(settled(), 'the restarted node caught up');
is(export_of(2), export_of(1), 'its store equals the other node\'s (exports)');

# ---- reloads under load ----
{
    my $dir = "$root/reload";
    mkdir $dir;
    my @k;
    for my $c (1 .. 2) {
        my $pid = fork() // die;
        if ($pid == 0) {
            open(my $out, '>', "$dir/$c") or POSIX::_exit(2);
            $out->autoflush(1);
            for my $i (1 .. 150) {
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
    my @lines = map { chomp; $_ } `cat $dir/*`;
    is(scalar(grep { $_ eq 'ok' } @lines), 300, 'reloads under load: every page answered')
        or diag("@lines[0 .. 9]");
    ok(settled(), 'both nodes applied the stream');
    my @f = @{ feed_of(2) };
    is(scalar(grep { ($_->{properties}{path} // '') =~ m{^/rl/} } @f), 300,
       'every page view of both nodes, once, in node 2\'s feed');
    is(export_of(2), export_of(1), 'the stores are equal');
}

# ---- a node behind the stream's retention ----
{
    $NODE{3}{cluster} = 'stream=SHORT max_age=1s';
    start_node(3);
    get(3, '/', $ck) for 1 .. 2;
    ok(wait_for(sub { (stat_of(3)->{stream_seq} // 0) >= 2 }, 10), 'node 3 applied its stream');
    stop_node(3);
    my %info;
    for my $k (1 .. 3) { $nats->natsping({stream => 'SHORT'}, 'pub', 'omni.SHORT.other', "x$k") }
    ok(wait_for(sub {
        my (undef, $out) = $nats->natsping('stream-info', 'SHORT');
        %info = $out =~ /^(\w+)=(.*)$/mg;
        ($info{messages} // 1) == 0;
    }, 10, 0.2), "retention dropped the stream's messages (first_seq $info{first_seq})");
    start_node(3);
    my $log = "$root/n3/logs/error.log";
    ok(wait_for(sub { (OmniTest::_slurp($log) // '') =~ /omni: cluster: this node's store holds the stream up to sequence \d+, and the stream now begins at \d+ \(retention removed the records between\): bootstrap this node/ }, 10),
       'node 3 says it is behind the retention and needs a bootstrap');
    is(get(3, '/', $ck)->{status}, 200, 'and serves pages from its store');
    stop_node(3);
}

stop_node(1);
stop_node(2);

for my $i (1, 2, 3) {
    my $log = OmniTest::_slurp("$root/n$i/logs/error.log") // '';
    my @bad = $log =~ /^(.*\[(?:alert|crit|emerg)\].*)$/mg;
    is_deeply(\@bad, [], "node $i: no [alert], [crit] or [emerg]");
}

done_testing();
