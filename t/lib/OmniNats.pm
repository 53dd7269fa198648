package OmniNats;

# A NATS JetStream cluster for the tests (issue 13): N nats-server
# processes on free loopback ports, each with its own store directory in a
# temporary directory, routed to each other, JetStream on.  start_cluster()
# returns once every server is routed to every other and sees the same
# JetStream meta leader (polled on the monitoring port; no fixed sleeps).
# Nothing outlives the test: stop_all() runs at exit and on ^C.
#
#   use lib 't/lib';
#   use OmniTest;
#   use OmniNats;
#
#   nats_skip_all();                # plan skip_all without nats-server
#   my $nats = start_cluster(3);
#   $nats->urls;                    # "nats://127.0.0.1:p1,nats://...:p2,..."
#   my ($rc, $out, $err) = $nats->natsping({replicas => 3},
#                                          'add-stream', 'OMNI', 'omni.>');
#   $nats->kill9(1);                # SIGKILL server 1 (0-based)
#   $nats->restart(1);              # same ports and store; waits until back
#   $nats->stop_all;
#
# The POD after __END__ lists everything.

use strict;
use warnings;

use Carp           qw(croak);
use Cwd            ();
use Exporter       ();
use File::Basename ();
use File::Path     ();
use File::Spec     ();
use File::Temp     ();
use HTTP::Tiny     ();
use JSON::PP       ();
use POSIX          qw(WNOHANG);
use Time::HiRes    ();

use OmniTest ();

our @ISA    = ('Exporter');
our @EXPORT = qw(start_cluster nats_server_bin natsping_bin nats_skip_reason
                 nats_skip_all run_natsping);

our $SKIP_REASON = 'nats-server not installed (scripts/install-deps.sh installs it)';

my $ROOT = Cwd::abs_path(File::Spec->catdir(
    File::Basename::dirname(Cwd::abs_path(__FILE__)), '..', '..'));

my @CLUSTERS;           # every cluster this process started, for END
my $MAIN_PID = $$;

END {
    my $status = $?;
    if ($$ == $MAIN_PID) {
        $_->stop_all for grep { defined } @CLUSTERS;
    }
    $? = $status;
}

# ---------------------------------------------------------------------------
# Finding the programs
# ---------------------------------------------------------------------------

sub nats_server_bin {
    return $ENV{OMNI_NATS_SERVER} if $ENV{OMNI_NATS_SERVER};
    for my $dir (split(/:/, $ENV{PATH} // ''), '/usr/sbin', '/usr/bin',
                 '/usr/local/bin')
    {
        return "$dir/nats-server" if length $dir && -x "$dir/nats-server";
    }
    return undef;
}

sub natsping_bin {
    return File::Spec->rel2abs($ENV{OMNI_NATSPING} // "$ROOT/build/natsping");
}

# undef when the cluster tests can run, else why not.
sub nats_skip_reason {
    return $SKIP_REASON unless nats_server_bin();
    return 'build/natsping is missing (make builds it; libnats-dev, '
         . 'scripts/install-deps.sh installs it)' unless -x natsping_bin();
    return undef;
}

# plan skip_all => reason, when nats-server (or natsping) is missing.
sub nats_skip_all {
    my $why = nats_skip_reason() // return;
    Test::More::plan(skip_all => $why);
    exit 0;
}

# run_natsping(@args) or run_natsping({urls => ..., timeout => ...}, @args)
#   -> ($exit, $stdout, $stderr).  See t/tools/natsping.c for the commands.
sub run_natsping {
    my $opt = ref $_[0] eq 'HASH' ? shift : {};
    my @argv = (natsping_bin());
    push @argv, '--urls', $opt->{urls} if defined $opt->{urls};
    for my $k (qw(stream timeout creds nkey replicas from)) {
        push @argv, "--$k", $opt->{$k} if defined $opt->{$k};
    }
    push @argv, '--max-age', $opt->{max_age} if defined $opt->{max_age};
    push @argv, '--max-bytes', $opt->{max_bytes} if defined $opt->{max_bytes};
    push @argv, '--hex' if $opt->{hex};
    push @argv, '--headers' if $opt->{headers};
    return OmniTest::run_command([@argv, @_],
                                 timeout => $opt->{run_timeout} // 60);
}

# ---------------------------------------------------------------------------
# The cluster
# ---------------------------------------------------------------------------

# start_cluster($n = 3, %opt) -> OmniNats object.  Options:
#   name     cluster name (default "omni-test")
#   extra    text added to every server's configuration (authorization,
#            tls, limits); $i in it is the server's index
#   timeout  seconds to wait for the cluster (default 30)
#   jetstream  0: no JetStream (default 1)
# Croaks (with the servers' logs) when the cluster does not form.
sub start_cluster {
    my ($n, %opt) = @_;
    $n //= 3;
    croak 'start_cluster: ' . $SKIP_REASON unless nats_server_bin();

    my $dir = File::Temp->newdir('omni-nats-XXXXXX', TMPDIR => 1,
                                 CLEANUP => !$ENV{OMNI_TEST_KEEP});
    my $self = bless {
        n        => $n,
        dir      => $dir,
        root     => Cwd::abs_path($dir->dirname),
        name     => $opt{name} // 'omni-test',
        extra    => $opt{extra} // '',
        timeout  => $opt{timeout} // 30,
        js       => $opt{jetstream} // 1,
        servers  => [],
    }, __PACKAGE__;
    Test::More::diag("OMNI_TEST_KEEP: NATS cluster in $self->{root}")
        if $ENV{OMNI_TEST_KEEP};

    # every port first, so that each server's routes name the others
    my %taken;
    my $port = sub {
        for (1 .. 50) {
            my $p = OmniTest::free_port();
            return $p unless $taken{$p}++;
        }
        croak 'start_cluster: no free port';
    };
    for my $i (0 .. $n - 1) {
        push @{ $self->{servers} }, {
            index   => $i,
            name    => "n" . ($i + 1),
            port    => $port->(),
            cport   => $port->(),
            mport   => $port->(),
            pid     => undef,
        };
    }

    push @CLUSTERS, $self;
    $self->_write_conf($_) for @{ $self->{servers} };
    $self->_spawn($_) for @{ $self->{servers} };
    $self->wait_ready;
    return $self;
}

sub urls {
    my ($self) = @_;
    return join ',', map { "nats://127.0.0.1:$_->{port}" } @{ $self->{servers} };
}

sub url   { my ($self, $i) = @_; return "nats://127.0.0.1:$self->{servers}[$i]{port}" }
sub ports { [ map { $_->{port} } @{ $_[0]{servers} } ] }
sub monitor_ports { [ map { $_->{mport} } @{ $_[0]{servers} } ] }
sub pids  { [ map { $_->{pid} } @{ $_[0]{servers} } ] }
sub names { [ map { $_->{name} } @{ $_[0]{servers} } ] }
sub dir   { $_[0]{root} }
sub size  { $_[0]{n} }
sub log_file   { my ($self, $i) = @_; return "$self->{root}/$self->{servers}[$i]{name}.log" }
sub store_dir  { my ($self, $i) = @_; return "$self->{root}/$self->{servers}[$i]{name}" }
sub running    { my ($self, $i) = @_; return _alive($self->{servers}[$i]{pid}) }

# natsping against this cluster: $nats->natsping(@args) or
# $nats->natsping({stream => 'OMNI', ...}, @args)
sub natsping {
    my $self = shift;
    my $opt = ref $_[0] eq 'HASH' ? { %{ shift() } } : {};
    $opt->{urls} //= $self->urls;
    return run_natsping($opt, @_);
}

sub _write_conf {
    my ($self, $s) = @_;
    my @routes = map { "nats-route://127.0.0.1:$_->{cport}" }
                 grep { $_ != $s } @{ $self->{servers} };
    my $store = "$self->{root}/$s->{name}";
    File::Path::make_path($store);
    my $extra = $self->{extra};
    $extra =~ s/\$i\b/$s->{index}/g;
    my $js = $self->{js}
        ? "jetstream {\n    store_dir: \"$store\"\n    max_memory_store: 64MB\n}\n"
        : '';
    # one server: no cluster (JetStream would wait for routes)
    my $cluster = $self->{n} == 1 ? '' : <<"CLUSTER";
cluster {
    name: $self->{name}
    listen: 127.0.0.1:$s->{cport}
    routes: [
        @{[ join ",\n        ", @routes ]}
    ]
}
CLUSTER
    my $conf = <<"CONF";
server_name: $s->{name}
listen: 127.0.0.1:$s->{port}
http: 127.0.0.1:$s->{mport}
log_file: "$self->{root}/$s->{name}.log"
logtime: true
$js
$cluster
$extra
CONF
    open my $fh, '>', "$self->{root}/$s->{name}.conf"
        or croak "$self->{root}/$s->{name}.conf: $!";
    print $fh $conf;
    close $fh;
}

sub _spawn {
    my ($self, $s) = @_;
    my $bin = nats_server_bin();
    my $conf = "$self->{root}/$s->{name}.conf";
    my $out = "$self->{root}/$s->{name}.out";
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        # its own process group: a ^C to the test reaches the test, which
        # stops the servers itself
        POSIX::setpgid(0, 0);
        open STDIN,  '<', '/dev/null' or POSIX::_exit(126);
        open STDOUT, '>>', $out       or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT   or POSIX::_exit(126);
        { no warnings 'exec'; exec { $bin } $bin, '-c', $conf; }
        print STDERR "exec $bin: $!\n";
        POSIX::_exit(127);
    }
    $s->{pid} = $pid;
}

my %EXITED;

sub _alive {
    my ($pid) = @_;
    return 0 unless $pid;
    return 0 if exists $EXITED{$pid};
    if (waitpid($pid, WNOHANG) == $pid) {
        $EXITED{$pid} = $?;
        return 0;
    }
    return kill(0, $pid) ? 1 : 0;
}

my $HTTP = HTTP::Tiny->new(timeout => 2, keep_alive => 0, proxy => undef,
                           http_proxy => undef, https_proxy => undef);

# A monitoring endpoint of server $i as a hash, or undef.
sub monitor {
    my ($self, $i, $path) = @_;
    my $s = $self->{servers}[$i];
    my $r = $HTTP->get("http://127.0.0.1:$s->{mport}$path");
    return undef unless $r->{success};
    my $j = eval { JSON::PP::decode_json($r->{content}) };
    return $j;
}

# True when server $i is up, routed to every other running server, and
# (with JetStream) sees a meta leader that is a running server.
sub _server_ready {
    my ($self, $i, $want_routes) = @_;
    return 0 unless _alive($self->{servers}[$i]{pid});
    my $routez = $self->monitor($i, '/routez') or return 0;
    return 0 if ($routez->{num_routes} // 0) < $want_routes;
    my $h = $HTTP->get("http://127.0.0.1:$self->{servers}[$i]{mport}/healthz");
    return 0 unless $h->{status} == 200;
    return 1 unless $self->{js} && $self->{n} > 1;
    my $jsz = $self->monitor($i, '/jsz') or return 0;
    my $meta = $jsz->{meta_cluster} or return 0;
    my $leader = $meta->{leader} // '';
    return 0 unless length $leader;
    my %up = map { $_->{name} => 1 }
             grep { _alive($_->{pid}) } @{ $self->{servers} };
    return $up{$leader} ? 1 : 0;
}

# wait_ready(%opt): every running server ready (see _server_ready), and
# all agree on the meta leader.  Croaks after the timeout with the logs.
sub wait_ready {
    my ($self, %opt) = @_;
    my @up = grep { _alive($self->{servers}[$_]{pid}) } 0 .. $self->{n} - 1;
    my $routes = @up - 1;
    my $died;
    my $ok = OmniTest::wait_for(sub {
        # a server that exited (a bad configuration, a port taken) will
        # not come back: say so at once
        return 1 if ($died) = grep { !_alive($self->{servers}[$_]{pid}) } @up;
        for my $i (@up) {
            return 0 unless $self->_server_ready($i, $routes);
        }
        return 1 unless $self->{js} && $self->{n} > 1;
        my %leaders = map {
            ((($self->monitor($_, '/jsz') // {})->{meta_cluster} // {})->{leader} // '') => 1
        } @up;
        return keys %leaders == 1;
    }, $opt{timeout} // $self->{timeout}, 0.05);
    return 1 if $ok && !defined $died;
    my $logs = join '', map {
        "--- $self->{servers}[$_]{name} (pid " . ($self->{servers}[$_]{pid} // '-') . "):\n"
        . _tail($self->log_file($_), 15) . _tail("$self->{root}/$self->{servers}[$_]{name}.out", 5)
    } 0 .. $self->{n} - 1;
    croak defined $died
        ? "nats-server $self->{servers}[$died]{name} exited\n$logs"
        : "NATS cluster not ready within " . ($opt{timeout} // $self->{timeout}) . "s\n$logs";
}

sub _tail {
    my ($path, $n) = @_;
    open my $fh, '<', $path or return '';
    my @lines = <$fh>;
    splice @lines, 0, @lines - $n if @lines > $n;
    return join '', @lines;
}

# Signals server $i and waits for it to be gone.
sub _signal_wait {
    my ($self, $i, $sig, $timeout) = @_;
    my $s = $self->{servers}[$i];
    my $pid = $s->{pid} or return 1;
    kill $sig, $pid;
    my $gone = OmniTest::wait_for(sub { !_alive($pid) }, $timeout // 10, 0.02);
    unless ($gone) {
        kill 'KILL', $pid;
        OmniTest::wait_for(sub { !_alive($pid) }, 5, 0.02);
    }
    waitpid($pid, 0) unless exists $EXITED{$pid};
    delete $EXITED{$pid};
    $s->{pid} = undef;
    return $gone;
}

# kill -9 of server $i (0-based); returns once the process is gone.
sub kill9 {
    my ($self, $i) = @_;
    return $self->_signal_wait($i, 'KILL', 5);
}

# Graceful stop of server $i (SIGTERM; nats-server flushes and exits).
sub stop {
    my ($self, $i) = @_;
    return $self->_signal_wait($i, 'TERM', 10);
}

# Starts server $i again (after kill9 or stop), with the same ports and
# store directory, and waits until the running servers form the cluster
# again.  %opt: wait => 0 to return at once; timeout.
sub restart {
    my ($self, $i, %opt) = @_;
    my $s = $self->{servers}[$i];
    $self->_signal_wait($i, 'KILL', 5) if _alive($s->{pid});
    $self->_spawn($s);
    $self->wait_ready(%opt) unless defined $opt{wait} && !$opt{wait};
    return 1;
}

# Stops every server (SIGTERM, then SIGKILL after 10s).
sub stop_all {
    my ($self) = @_;
    my @pids = grep { _alive($_) } map { $_->{pid} } @{ $self->{servers} };
    kill 'TERM', @pids if @pids;
    OmniTest::wait_for(sub { !grep { _alive($_) } @pids }, 10, 0.02);
    kill 'KILL', grep { _alive($_) } @pids;
    for my $s (@{ $self->{servers} }) {
        next unless $s->{pid};
        OmniTest::wait_for(sub { !_alive($s->{pid}) }, 5, 0.02);
        delete $EXITED{ $s->{pid} };
        $s->{pid} = undef;
    }
    return 1;
}

sub DESTROY {
    my ($self) = @_;
    $self->stop_all if $$ == $MAIN_PID && $self->{servers};
}

1;

__END__

=head1 NAME

OmniNats - a NATS JetStream cluster of nats-server processes for the tests

=head1 FUNCTIONS (exported)

=over

=item start_cluster($n = 3, %opt)

Writes a configuration per server (server_name nI, listen, http monitor,
jetstream store_dir, cluster name and routes to the others) in a temporary
directory, starts them, and waits until each is routed to all others, each
sees the same JetStream meta leader and /healthz answers 200.  Options:
C<name>, C<extra> (configuration text added to each server; C<$i> is its
index), C<timeout> (30), C<jetstream> (1).

=item nats_skip_all(), nats_skip_reason()

C<plan skip_all> with "nats-server not installed (scripts/install-deps.sh
installs it)" (or build/natsping missing); the reason, or undef.

=item run_natsping(\%opt?, @args)

Runs build/natsping; returns C<($exit, $stdout, $stderr)>.  Options: urls,
stream, timeout, creds, nkey, replicas, from, max_age, max_bytes, hex,
headers, run_timeout.

=item nats_server_bin(), natsping_bin()

=back

=head1 METHODS

C<urls> (comma list), C<url($i)>, C<ports>, C<monitor_ports>, C<pids>,
C<names> (n1, n2, ...), C<dir>, C<size>, C<log_file($i)>, C<store_dir($i)>,
C<running($i)>, C<monitor($i, '/jsz')> (decoded JSON), C<natsping(...)>
(with C<urls> set), C<kill9($i)>, C<stop($i)>, C<restart($i, wait => 1)>,
C<wait_ready>, C<stop_all>.  Indexes are 0-based.

=cut
