#!/usr/bin/perl
# The NATS JetStream cluster of bench/cluster.sh: N nats-server processes
# (default 3) on free loopback ports, JetStream on, routed to each other,
# started and watched by the tests' own t/lib/OmniNats.pm (its temporary
# directory is made under $TMPDIR).
#
#   cluster-nats.pl [N] < FIFO
#
# Once the cluster has formed (every server routed to the others, one
# JetStream meta leader), prints
#
#   urls=nats://127.0.0.1:P1,...
#   dir=/the/servers/directory
#   pids=PID1,PID2,...
#   ready
#
# then waits until its standard input ends (the script that started it
# closed the FIFO, or exited) or it gets SIGTERM/SIGINT, and stops the
# servers (SIGTERM, then SIGKILL) and removes their directory.
use strict;
use warnings;

use Cwd ();
use File::Basename ();
BEGIN {
    my $root = Cwd::abs_path(File::Basename::dirname(Cwd::abs_path(__FILE__)) . '/..');
    unshift @INC, "$root/t/lib";
}
use OmniTest ();
use OmniNats;

$| = 1;
my $n = shift // 3;
my $why = nats_skip_reason();
die "cluster-nats.pl: $why\n" if $why;

my $nats = start_cluster($n, name => 'omni-bench', timeout => 60);
print 'urls=', $nats->urls, "\n";
print 'dir=', $nats->dir, "\n";
print 'pids=', join(',', @{ $nats->pids }), "\n";
print "ready\n";

1 while sysread(STDIN, my $buf, 4096);
$nats->stop_all;
exit 0;
