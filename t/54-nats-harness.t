# t/lib/OmniNats.pm and build/natsping, the tools of the cluster tests
# (issue 13): a cluster of 3 nats-server processes forms with JetStream;
# a stream of 3 replicas takes a message with a de-duplication id and
# gives it back; a duplicate is recognised; kill -9 of the stream's
# leader loses nothing acknowledged, the others go on, and the killed
# server comes back with the same store and catches up.  An nkey seed's
# derived public key authenticates; a server that cannot start is
# reported at once.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use OmniNats;

nats_skip_all();

my $nats = start_cluster(3);

my @urls = split /,/, $nats->urls;
is(scalar @urls, 3, 'three URLs');
like($_, qr{^nats://127\.0\.0\.1:\d+$}, "URL $_") for @urls;
is(scalar(grep { $_ && kill 0, $_ } @{ $nats->pids }), 3, 'three servers running');
my %seen;
ok(!(grep { $seen{$_}++ } @{ $nats->ports }, @{ $nats->monitor_ports }),
   'every port different');

my $jsz = $nats->monitor(0, '/jsz');
is($jsz->{meta_cluster}{cluster_size}, 3, 'the JetStream meta group has 3 servers')
    or diag explain $jsz;

my ($rc, $out, $err) = $nats->natsping('ping');
is($rc, 0, 'natsping ping') or diag $err;
like($out, qr{^ok nats://127\.0\.0\.1:\d+$}m, 'connected');

($rc, $out, $err) = $nats->natsping({replicas => 3, max_age => 3600},
                                    'add-stream', 'TEST', 'test.>');
is($rc, 0, 'add-stream') or diag $err;
is($out, "created TEST replicas=3\n", 'a stream of 3 replicas');

($rc, $out, $err) = $nats->natsping({replicas => 3}, 'add-stream', 'TEST', 'test.>');
is($out, "exists TEST replicas=3\n", 'add-stream again: it exists') or diag $err;

sub info {
    my ($rc, $out, $err) = $nats->natsping('stream-info', 'TEST');
    return undef if $rc != 0;
    return { map { /^(\w+)=(.*)$/ ? ($1 => $2) : () } split /\n/, $out };
}

my $info = info();
is($info->{replicas}, 3, 'stream-info: replicas');
is($info->{subjects}, 'test.>', 'stream-info: subjects');
is($info->{max_age}, 3600, 'stream-info: max_age');
is($info->{messages}, 0, 'stream-info: empty');
like($info->{leader} // '', qr/^n[123]$/, 'stream-info: a leader');
is(scalar(split /,/, $info->{peers} // ''), 2, 'stream-info: two other peers');

($rc, $out, $err) = $nats->natsping({stream => 'TEST'}, 'pub', 'test.a', 'hello', 'id-1');
is($rc, 0, 'pub') or diag $err;
is($out, "seq=1 duplicate=0 stream=TEST\n", 'acknowledged as sequence 1');

($rc, $out) = $nats->natsping({stream => 'TEST'}, 'pub', 'test.a', 'hello', 'id-1');
is($out, "seq=1 duplicate=1 stream=TEST\n", 'the same Nats-Msg-Id is a duplicate');

($rc, $out, $err) = $nats->natsping({stream => 'TEST'}, 'pub', 'test.b',
                                    "tab\tnew\nline back\\slash \x01 caf\xc3\xa9");
is($out, "seq=2 duplicate=0 stream=TEST\n", 'no id: sequence 2') or diag $err;

($rc, $out, $err) = $nats->natsping({stream => 'NOPE'}, 'pub', 'test.c', 'x');
isnt($rc, 0, 'pub expecting another stream fails');

($rc, $out, $err) = $nats->natsping({stream => 'TEST'}, 'dump');
is($rc, 0, 'dump') or diag $err;
is($out, "1\ttest.a\tid-1\thello\n"
       . "2\ttest.b\t-\ttab\\tnew\\nline back\\\\slash \\x01 caf\xc3\xa9\n",
   'dump: sequence, subject, id, escaped data');

($rc, $out) = $nats->natsping({stream => 'TEST'}, 'dump', 'test.a');
is($out, "1\ttest.a\tid-1\thello\n", 'dump of one subject');
($rc, $out) = $nats->natsping({stream => 'TEST', from => 2}, 'dump', 'test.>');
like($out, qr/^2\ttest\.b\t/, 'dump --from 2 with a wildcard');
is(scalar(() = $out =~ /\n/g), 1, 'one line');
($rc, $out) = $nats->natsping({stream => 'TEST', hex => 1, headers => 1}, 'dump', 'test.a');
like($out, qr/^1\ttest\.a\tid-1\t68656c6c6f\t(?:[^\t\n]*; )?Nats-Msg-Id: id-1(?:;[^\t\n]*)?\n\z/,
     'dump --hex --headers');
like($out, qr/Nats-Expected-Stream: TEST/, 'every header');

($rc, $out, $err) = $nats->natsping('stream-info', 'MISSING');
is($rc, 3, 'stream-info of a missing stream: exit 3') or diag $err;

# kill -9 of the stream leader: the two others elect another and go on
my %index = map { $nats->names->[$_] => $_ } 0 .. 2;
my $leader = $index{ info()->{leader} };
ok($nats->kill9($leader), "kill -9 of the stream leader, n" . ($leader + 1));
ok(!$nats->running($leader), 'it is gone');

my $acked = wait_for(sub {
    my ($rc, $out) = $nats->natsping({stream => 'TEST', timeout => 1000},
                                     'pub', 'test.a', 'after', 'id-3');
    return $rc == 0 && $out =~ /^seq=3 /;
}, 20, 0.2);
ok($acked, 'a publish is acknowledged by the two left (R3: 2 of 3)');

$info = wait_for(sub { my $i = info(); $i && $i->{leader} ? $i : undef }, 10);
isnt($info->{leader}, $nats->names->[$leader], 'another leader');

ok($nats->restart($leader), 'the killed server restarts (same store)');
ok($nats->running($leader), 'running again');

my $caught_up = wait_for(sub {
    my $i = info() or return 0;
    my @peers = split /,/, $i->{peers} // '';
    return @peers == 2 && !grep { !/:current:0$/ } @peers;
}, 20, 0.2);
ok($caught_up, 'every replica is current again') or diag explain info();

($rc, $out) = $nats->natsping({stream => 'TEST'}, 'dump', 'test.a');
is($out, "1\ttest.a\tid-1\thello\n3\ttest.a\tid-3\tafter\n",
   'nothing acknowledged was lost');

# the restarted server alone serves the stream's messages too
($rc, $out) = run_natsping({urls => $nats->url($leader), stream => 'TEST'}, 'dump');
is(scalar(() = $out =~ /\n/g), 3, 'the restarted server answers with all three');

my @pids = @{ $nats->pids };
ok($nats->stop_all, 'stop_all');
ok(!(grep { kill 0, $_ } @pids), 'no server left');

# One server with nkey authentication: the public key omni_nkey derives
# from the seed (as omni_cluster nkey= does) is the one the server knows.
my $one = start_cluster(1, extra => "authorization { users: [ { nkey: "
    . "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4 } ] }\n");
my $seed = $one->dir . '/user.nk';
open my $fh, '>', $seed or die "$seed: $!";
print $fh "SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY\n";
close $fh;
($rc, $out, $err) = $one->natsping('ping');
isnt($rc, 0, 'nkey server: refused without the nkey');
($rc, $out, $err) = $one->natsping({nkey => $seed}, 'ping');
is($rc, 0, 'nkey server: accepted with the seed file') or diag $err;
($rc, $out, $err) = $one->natsping({nkey => $seed}, 'add-stream', 'ONE', 'one.>');
is($out, "created ONE replicas=1\n", 'a JetStream of one server') or diag $err;
$one->stop_all;

# A server that cannot start is reported at once, with its log
my $t0 = time;
ok(!eval { start_cluster(1, extra => "no_such_option: [\n"); 1 },
   'a bad configuration: start_cluster croaks');
like($@, qr/nats-server n1 exited/, 'saying the server exited');
ok(time - $t0 < 10, 'without waiting for the timeout');

done_testing();
