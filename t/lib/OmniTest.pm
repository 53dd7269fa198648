package OmniTest;

# Data-driven nginx test harness for ngx_omni_module, in the style of
# Test::Nginx, built only from Debian-packaged Perl modules.  The user-facing
# description (block format, sections, environment) is in docs/testing.md;
# the POD after __END__ summarises the API.

use strict;
use warnings;

use Carp             qw(croak);
use Cwd              ();
use Exporter         ();
use File::Basename   ();
use File::Path       ();
use File::Spec       ();
use File::Temp       ();
use HTTP::Tiny       ();
use IO::Select       ();
use IO::Socket::INET ();
use POSIX            qw(WNOHANG);
use Test::More       ();
use Time::HiRes      ();
use Time::Local      ();

# Test::Base is used as the block parser only.  It is deliberately loaded
# without import(): importing it would install a source filter, Spiffy
# exports and an END block that runs its own comparisons.
require Test::Base;
require Test::Base::Filter;

our $VERSION = '1.00';
our @ISA     = ('Exporter');
our @EXPORT  = qw(
    run_blocks
    start_nginx stop_nginx check_logs check_response
    http_get http_request raw_request parse_raw_response
    omnictl run_command wait_for error_log_text repo_root free_port
);

our $NO_MODULE = 0;     # true: no load_module line (stock-nginx self-tests)
our $PREFIX;            # prefix of the current (or last) nginx instance
our $PORT;              # its listening port on 127.0.0.1
our $BLOCK;             # the Test::Base block being run, if any

my $ROOT = Cwd::abs_path(File::Spec->catdir(
    File::Basename::dirname(Cwd::abs_path(__FILE__)), '..', '..'));

my $VALGRIND_EXIT = 99;   # --error-exitcode for valgrind runs
my $SANITIZER_RE  = qr/runtime error:|ERROR: (?:Address|Leak|Memory|Thread)Sanitizer|WARNING: ThreadSanitizer/;
my $ALERT_RE      = qr/\[(?:alert|crit|emerg)\]/;

# Every section a block may use.  Anything else is reported as a failure so
# that a typo ("respone_body") cannot silently disable a check.  Sections
# starting with "x_" are free-form data for --- check code.
my $PER_REQUEST = qr/raw_request|request|more_headers|error_code|response_body
                     |response_body_like|response_headers|response_headers_like/x;
my $KNOWN_SECTION = qr/^(?:main_config|http_config|config|workers|log_level
    |timeout|skip|skip_if|no_module|must_die|init|check|user_files|cookie_jar
    |error_log|no_error_log|ONLY|LAST|x_\w+|(?:$PER_REQUEST)(?:_\d+)?)$/x;

my %SRV;          # running server: pid, child (valgrind only), prefix, port
my %EXITED;       # pid => wait status, for children reaped while polling
my $PREFIX_DIR;   # File::Temp::Dir of the current prefix (removes it)
my $SPEC;         # text after __DATA__, read once

# "use OmniTest;" also gives the test file Test::More.
sub import {
    my $class = shift;
    Test::More->export_to_level(1, 'Test::More');
    $class->export_to_level(1, $class, @_);
}

# Make sure ^C during a test run still stops the nginx it started: turn
# fatal signals into exit() so that the END block below runs.
my $MAIN_PID = $$;
my %SIGNO = (HUP => 1, INT => 2, TERM => 15);
for my $sig (keys %SIGNO) {
    next if defined $SIG{$sig} && $SIG{$sig} ne 'DEFAULT';
    $SIG{$sig} = sub { exit 128 + $SIGNO{$sig} };
}

END {
    my $status = $?;
    _stop() if $SRV{pid} && $$ == $MAIN_PID;
    $? = $status;
}

# ---------------------------------------------------------------------------
# Paths and environment
# ---------------------------------------------------------------------------

sub repo_root    { $ROOT }
sub nginx_bin    { $ENV{NGINX_BIN} // '/usr/sbin/nginx' }
sub module_path  { File::Spec->rel2abs($ENV{OMNI_MODULE} // "$ROOT/build/ngx_http_omni_module.so") }
sub omnictl_path { File::Spec->rel2abs($ENV{OMNI_OMNICTL} // "$ROOT/build/omnictl") }
sub _keep        { $ENV{OMNI_TEST_KEEP} }
sub _valgrind    { $ENV{TEST_NGINX_USE_VALGRIND} }

# Default timeouts (seconds); valgrind makes everything much slower.
sub _start_timeout   { _valgrind() ? 30 : 5 }
sub _request_timeout { _valgrind() ? 30 : 10 }
sub _stop_timeout    { _valgrind() ? 60 : 10 }

# ---------------------------------------------------------------------------
# Small utilities
# ---------------------------------------------------------------------------
sub _slurp {
    my ($path) = @_;
    open my $fh, '<:raw', $path or return undef;
    local $/;
    my $text = <$fh>;
    return $text // '';
}

sub _spew {
    my ($path, $text) = @_;
    File::Path::make_path(File::Basename::dirname($path));
    open my $fh, '>:raw', $path or die "cannot write $path: $!\n";
    print {$fh} $text;
    close $fh or die "cannot write $path: $!\n";
}

sub _tail {
    my ($path, $n) = @_;
    my $text = _slurp($path) // return "($path does not exist)\n";
    my @lines = split /\n/, $text;
    splice @lines, 0, @lines - $n if @lines > $n;
    return join '', map { "$_\n" } @lines;
}

# Non-blank lines of a section, trimmed.
sub _lines {
    my ($text) = @_;
    return () unless defined $text;
    return grep { length } map { s/^\s+|\s+$//gr } split /\n/, $text;
}

# A pattern line is a substring, or a regex when written as qr/.../flags.
sub _match {
    my ($pat, $text) = @_;
    $text //= '';
    if ($pat =~ m{^qr/(.*)/([msixn]*)$}s) {
        my $re = length $2 ? qr/(?$2)$1/ : qr/$1/;
        return $text =~ $re;
    }
    return index($text, $pat) >= 0;
}

# wait_for($code, $timeout = 5, $interval = 0.02): polls $code until it
# returns a true value (which is returned) or $timeout seconds pass (the last
# false value is returned).
sub wait_for {
    my ($cond, $timeout, $interval) = @_;
    $timeout  //= 5;
    $interval //= 0.02;
    my $deadline = Time::HiRes::time() + $timeout;
    while (1) {
        my $r = $cond->();
        return $r if $r || Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep($interval);
    }
}

# An unused loopback port: bind port 0 and let the kernel choose.
sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1)
        or die "cannot bind 127.0.0.1:0: $!\n";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# run_command(\@argv, %opt) -> ($exit, $stdout, $stderr).
# Options: stdin (string), env (hashref added to %ENV), cwd, timeout
# (seconds, default 60).  $exit is 128+N when killed by signal N and -1 on
# timeout (the command then gets SIGTERM, so that a child test script can
# still stop its nginx, and SIGKILL 5s later).
sub run_command {
    my ($argv, %opt) = @_;
    my $in  = File::Temp->new;
    my $out = File::Temp->new;
    my $err = File::Temp->new;
    print {$in} $opt{stdin} // '';
    close $in;

    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        open STDIN,  '<',  $in->filename or POSIX::_exit(126);
        open STDOUT, '>&', $out          or POSIX::_exit(126);
        open STDERR, '>&', $err          or POSIX::_exit(126);
        if (defined $opt{cwd}) { chdir $opt{cwd} or POSIX::_exit(126) }
        @ENV{ keys %{ $opt{env} } } = values %{ $opt{env} } if $opt{env};
        { no warnings q(exec); exec { $argv->[0] } @$argv; }
        print STDERR "exec $argv->[0]: $!\n";
        POSIX::_exit(127);
    }

    my $timeout = $opt{timeout} // 60;
    my $done = wait_for(sub { !_alive($pid) }, $timeout, 0.01);
    my $exit;
    if ($done) {
        my $st = delete $EXITED{$pid} // (waitpid($pid, 0) == $pid ? $? : 255 << 8);
        $exit = $st & 127 ? 128 + ($st & 127) : $st >> 8;
    } else {
        kill 'TERM', $pid;
        kill 'KILL', $pid unless wait_for(sub { !_alive($pid) }, 5);
        waitpid $pid, 0 unless exists $EXITED{$pid};
        delete $EXITED{$pid};
        $exit = -1;
    }
    my $stderr = _slurp($err->filename);
    $stderr .= "[killed after ${timeout}s timeout]\n" if $exit == -1;
    return ($exit, _slurp($out->filename), $stderr);
}

# omnictl(@args) or omnictl({stdin => ..., env => {...}}, @args)
#   -> ($exit, $stdout, $stderr)
sub omnictl {
    my $opt = ref $_[0] eq 'HASH' ? shift : {};
    return run_command([omnictl_path(), @_], %$opt);
}

# True while $pid exists and is not a zombie.  Our own children are reaped
# here (their status is kept in %EXITED); other processes (the daemonised
# nginx master) may stay zombies when PID 1 does not reap, hence /proc.
sub _alive {
    my ($pid) = @_;
    return 0 if exists $EXITED{$pid} || _reap($pid);
    return 0 unless kill 0, $pid;
    if (open my $fh, '<', "/proc/$pid/stat") {
        my $stat = <$fh> // '';
        if ($stat =~ /\)\s+[ZX]\s/) {
            _reap($pid);    # it may have turned into our zombie just now
            return 0;
        }
    }
    return 1;
}

sub _reap {
    my ($pid) = @_;
    return 0 unless waitpid($pid, WNOHANG) == $pid;
    $EXITED{$pid} = $?;
    return 1;
}

sub _children_of {
    my ($ppid) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $s = _slurp($stat) // next;
        push @kids, $1 if $s =~ /^(\d+) .*\)\s+\S+\s+(\d+)/s && $2 == $ppid;
    }
    return @kids;
}

# Is something listening on 127.0.0.1:$port?  /proc/net/tcp is read rather
# than connecting, because a probe connection makes nginx log "client closed
# connection" lines that would pollute error.log checks.
sub _listening {
    my ($port) = @_;
    if (open my $fh, '<', '/proc/net/tcp') {
        my $want = sprintf ':%04X', $port;
        while (<$fh>) {
            my (undef, $local, undef, $state) = split;
            return 1 if $state && $state eq '0A' && $local =~ /\Q$want\E$/;
        }
        return 0;
    }
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 1);
    return $s ? 1 : 0;
}

# Connections to 127.0.0.1:$port that nginx still holds open (any state
# but LISTEN and TIME_WAIT, which belongs to no process).
sub _open_connections {
    my ($port) = @_;
    open my $fh, '<', '/proc/net/tcp' or return 0;
    my $want = sprintf ':%04X', $port;
    my $n = 0;
    while (<$fh>) {
        my (undef, $local, undef, $state) = split;
        $n++ if $state && $state ne '0A' && $state ne '06'
                && $local =~ /\Q$want\E$/;
    }
    return $n;
}

sub _read_pid {
    my ($prefix) = @_;
    my $text = _slurp("$prefix/logs/nginx.pid") // return undef;
    return $text =~ /^(\d+)\s*$/ ? $1 : undef;
}

# ---------------------------------------------------------------------------
# nginx lifecycle
# ---------------------------------------------------------------------------

# A fresh prefix with conf/ logs/ html/ tmp/.  The previous prefix is
# removed at this point (unless OMNI_TEST_KEEP=1), so error_log_text() keeps
# working after stop_nginx().
sub _new_prefix {
    $PREFIX_DIR = File::Temp->newdir('omni-test-XXXXXX', TMPDIR => 1,
                                     CLEANUP => !_keep());
    my $prefix = Cwd::abs_path($PREFIX_DIR->dirname);
    File::Path::make_path(map { "$prefix/$_" } qw(conf logs html tmp));
    Test::More::diag("OMNI_TEST_KEEP: prefix $prefix is kept") if _keep();
    return $PREFIX = $prefix;
}

sub _vars {
    my ($prefix, $port) = @_;
    return {
        PORT     => $port,
        PREFIX   => $prefix,
        SERVROOT => $prefix,
        HTML     => "$prefix/html",
        MODULE   => module_path(),
        OMNICTL  => omnictl_path(),
        ROOT     => $ROOT,
    };
}

# Replaces $TEST_NGINX_NAME; unknown names come from %ENV or are an error.
sub _subst {
    my ($text, $vars) = @_;
    return $text unless defined $text;
    $text =~ s{\$TEST_NGINX_(\w+)}{
        exists $vars->{$1}                ? $vars->{$1}
      : defined $ENV{"TEST_NGINX_$1"}     ? $ENV{"TEST_NGINX_$1"}
      : die "unknown variable \$TEST_NGINX_$1\n"
    }ge;
    return $text;
}

# The generated nginx.conf (see docs/testing.md for its layout).
sub _nginx_conf {
    my (%c) = @_;
    my $p = $c{prefix};
    my @main;
    push @main, 'load_module ' . module_path() . ';' unless $c{no_module};
    if ($c{valgrind}) {
        push @main, 'daemon off;', 'master_process off;';
    } else {
        push @main, 'daemon on;', 'master_process on;',
                    'worker_processes ' . ($c{workers} // 1) . ';';
    }
    # Workers running as nobody would get 403 in the 0700 temp prefix.
    push @main, 'user root;' if $> == 0;
    push @main, "error_log $p/logs/error.log " . ($c{log_level} // 'info') . ';',
                "pid $p/logs/nginx.pid;";
    my $main = join "\n", @main;
    my ($main_config, $http_config, $config) =
        map { $_ // '' } @c{qw(main_config http_config config)};

    return <<"CONF";
$main

$main_config

events {
    worker_connections 256;
}

http {
    access_log off;
    client_body_temp_path $p/tmp/client_body;
    proxy_temp_path $p/tmp/proxy;
    fastcgi_temp_path $p/tmp/fastcgi;
    uwsgi_temp_path $p/tmp/uwsgi;
    scgi_temp_path $p/tmp/scgi;
    default_type text/plain;

$http_config

    server {
        listen 127.0.0.1:$c{port};
        server_name localhost;
        root $p/html;

$config
    }
}
CONF
}

sub _nginx_argv {
    my ($prefix) = @_;
    return (nginx_bin(), '-p', "$prefix/", '-c', 'conf/nginx.conf',
            '-e', "$prefix/logs/error.log");
}

# nginx -t -> ($exit, $output)
sub _nginx_test {
    my ($prefix) = @_;
    my ($rc, $out, $err) = run_command([_nginx_argv($prefix), '-t'], timeout => 30);
    return ($rc, $out . $err);
}

# Starts nginx in $prefix (conf/nginx.conf already written) and polls until
# the pid file exists and the port is listening.  Returns (1) or (0, $why).
sub _start {
    my ($prefix, $port) = @_;
    my @argv = _nginx_argv($prefix);
    %SRV = (prefix => $prefix, port => $port);
    $PREFIX = $prefix;
    $PORT   = $port;

    if (_valgrind()) {
        my @vg = ('valgrind', '--tool=memcheck', '--leak-check=full',
                  '--keep-debuginfo=yes',
                  '--num-callers=30', "--error-exitcode=$VALGRIND_EXIT",
                  "--log-file=$prefix/logs/valgrind.log");
        _spew("$prefix/conf/valgrind.supp", _valgrind_suppressions());
        push @vg, "--suppressions=$prefix/conf/valgrind.supp";
        my $supp = $ENV{TEST_NGINX_VALGRIND_SUPP} // "$ROOT/t/valgrind.supp";
        push @vg, "--suppressions=$supp" if -f $supp;
        my $pid = fork // die "fork: $!\n";
        if ($pid == 0) {
            open STDIN,  '<', '/dev/null'                 or POSIX::_exit(126);
            open STDOUT, '>', "$prefix/logs/valgrind.out" or POSIX::_exit(126);
            open STDERR, '>&', \*STDOUT                   or POSIX::_exit(126);
            { no warnings q(exec); exec { $vg[0] } @vg, @argv; }
            print STDERR "exec valgrind: $!\n";
            POSIX::_exit(127);
        }
        $SRV{child} = $SRV{pid} = $pid;
    } else {
        my ($rc, $out, $err) = run_command(\@argv, timeout => 30);
        if ($rc != 0) {
            %SRV = ();
            return (0, "nginx exited with status $rc\n$out$err");
        }
        # Output of the foreground part of the startup; check_logs() scans
        # it for sanitizer reports along with error.log.
        _spew("$prefix/logs/startup.out", "$out$err");
    }

    my $timeout  = _start_timeout();
    my $deadline = Time::HiRes::time() + $timeout;
    while (1) {
        my $pid = _read_pid($prefix);
        if ($SRV{child} && !_alive($SRV{child})) {
            my $st = delete $EXITED{ $SRV{child} } // 0;
            %SRV = ();
            return (0, 'nginx under valgrind exited during startup with '
                     . ($st & 127 ? 'signal ' . ($st & 127) : 'status ' . ($st >> 8))
                     . "; see $prefix/logs/valgrind.log");
        }
        if ($pid && !$SRV{child} && !_alive($pid)) {
            %SRV = ();
            return (0, "nginx master $pid died during startup");
        }
        if ($pid && _listening($port)) {
            $SRV{pid} //= $pid;
            return (1);
        }
        if (Time::HiRes::time() >= $deadline) {
            $SRV{pid} //= $pid;
            _stop() if $SRV{pid};
            %SRV = ();
            return (0, "nginx did not listen on 127.0.0.1:$port within ${timeout}s");
        }
        Time::HiRes::sleep(0.02);
    }
}

# Allocations stock nginx never frees, reported even without the module:
# the environment copy and the connection/event arrays of
# ngx_event_process_init (a static function, "???" in a stripped binary)
# in single-process mode, and the cache-line aligned CRC32 table (a pointer
# into the block, hence "possibly lost").  The stacks are exact so that leaks
# of the module, whose frames are in the .so, are still reported.
sub _valgrind_suppressions {
    my $bin = Cwd::abs_path(nginx_bin()) // nginx_bin();
    my @supp = (
        [ definite => 'fun:ngx_set_environment', 'fun:ngx_single_process_cycle' ],
        [ definite => 'fun:ngx_event_process_init', 'fun:ngx_single_process_cycle' ],
        [ definite => "obj:$bin", 'fun:ngx_single_process_cycle' ],
        [ possible => 'fun:ngx_crc32_table_init' ],
    );
    my ($n, $text) = (0, '');
    for (@supp) {
        my ($kind, @frames) = @$_;
        $text .= join "\n   ", "{", 'omnitest_stock_nginx_' . ++$n, 'Memcheck:Leak',
                 "match-leak-kinds: $kind", 'fun:malloc', 'fun:ngx_alloc', @frames,
                 "fun:main\n}\n";
    }
    return $text;
}

# Graceful stop: SIGQUIT, then poll until the process is gone; SIGTERM and
# SIGKILL (master and workers) if it takes too long.  Returns (1) when the
# graceful stop worked, else (0, $what_happened).
sub _stop {
    my $pid = $SRV{pid} or return (1);
    my $grace = _stop_timeout();
    my @log;

    # A single process (valgrind) exits on SIGQUIT without waiting for
    # its connections: let the ones clients already closed (lingering
    # close) finish first, or their memory is reported as lost.
    wait_for(sub { !_open_connections($SRV{port}) }, 5) if $SRV{child} && $SRV{port};

    # With master_process off (valgrind) a signal arriving just before
    # epoll_wait() is only acted on at the next event, so SIGQUIT is
    # repeated every 0.5s; a master process needs it only once.
    my $next_quit = 0;
    my $quit = sub {
        if (Time::HiRes::time() >= $next_quit) {
            kill 'QUIT', $pid;
            $next_quit = $SRV{child} ? Time::HiRes::time() + 0.5 : 9**9**9;
        }
        return !_alive($pid);
    };
    unless (wait_for($quit, $grace)) {
        my @kids = _children_of($pid);
        push @log, "nginx $pid still running ${grace}s after SIGQUIT; sent SIGTERM";
        kill 'TERM', $pid, @kids;
        unless (wait_for(sub { !_alive($pid) }, 5)) {
            push @log, 'still running 5s after SIGTERM; sent SIGKILL';
            kill 'KILL', $pid, @kids;
            wait_for(sub { !_alive($pid) }, 5);
        }
        kill 'KILL', grep { _alive($_) } @kids;
    }

    # Under valgrind, exit status $VALGRIND_EXIT means "valgrind found
    # errors"; check_logs() reports those from valgrind.log.
    my $status = delete $EXITED{$pid};
    if ($SRV{child} && defined $status && !@log && $status != 0
        && $status != $VALGRIND_EXIT << 8)
    {
        push @log, 'nginx under valgrind exited with '
                 . ($status & 127 ? 'signal ' . ($status & 127) : 'status ' . ($status >> 8));
    }
    %SRV = ();
    return @log ? (0, join "\n", @log) : (1);
}

# start_nginx($config, %opt) -> $port.  For tests written without blocks.
# $config is the server{} body (like --- config), or the whole nginx.conf
# with full_config => 1.  Options: http_config, main_config, workers,
# log_level, user_files, no_module, full_config.  $TEST_NGINX_* variables are
# substituted.  Croaks (with nginx's output and error.log) when nginx -t
# fails or nginx does not come up.  Any server already running is stopped.
sub start_nginx {
    my ($config, %o) = @_;
    _stop() if $SRV{pid};
    my $port   = free_port();
    my $prefix = _new_prefix();
    my $vars   = _vars($prefix, $port);
    $PORT = $port;

    _write_user_files($prefix, _subst($o{user_files}, $vars));
    my $conf = $o{full_config}
        ? _subst($config, $vars)
        : _nginx_conf(
            prefix      => $prefix,
            port        => $port,
            config      => _subst($config, $vars),
            http_config => _subst($o{http_config}, $vars),
            main_config => _subst($o{main_config}, $vars),
            workers     => $o{workers},
            log_level   => $o{log_level},
            no_module   => $o{no_module} // $NO_MODULE,
            valgrind    => _valgrind(),
        );
    _spew("$prefix/conf/nginx.conf", $conf);

    my ($rc, $output) = _nginx_test($prefix);
    croak "nginx -t failed:\n$output" if $rc != 0;
    my ($ok, $why) = _start($prefix, $port);
    croak "$why\nerror.log:\n" . _tail("$prefix/logs/error.log", 30) unless $ok;
    return $port;
}

# stop_nginx() -> true when nginx stopped gracefully (diagnostics otherwise).
sub stop_nginx {
    my ($ok, $why) = _stop();
    Test::More::diag($why) unless $ok;
    return $ok;
}

sub error_log_text {
    return '' unless defined $PREFIX;
    return _slurp("$PREFIX/logs/error.log") // '';
}

# ---------------------------------------------------------------------------
# HTTP clients
# ---------------------------------------------------------------------------

# http_request($method, $path, $body, %opt) -> HTTP::Tiny response hashref
# (status, reason, headers with lower-case names, content).  Options: headers
# (hashref), port (default: the running server), timeout.  A Host header is
# honoured: the URL uses that name while the connection still goes to
# 127.0.0.1.  Redirects are not followed, proxies from the environment are
# ignored.
sub http_request {
    my ($method, $path, $body, %opt) = @_;
    my $port = $opt{port} // $PORT // croak 'http_request: no nginx running';
    my %headers = %{ $opt{headers} || {} };
    my $host = '127.0.0.1';
    for my $name (grep { lc eq 'host' } keys %headers) {
        $host = delete $headers{$name};
        $host =~ s/:\d+$//;
    }
    my $url = $path =~ m{^https?://} ? $path : "http://$host:$port$path";
    my $ua = HTTP::Tiny->new(
        agent        => "OmniTest/$VERSION",
        timeout      => $opt{timeout} // _request_timeout(),
        max_redirect => 0,
        keep_alive   => 0,
        proxy        => undef,
        http_proxy   => undef,
        https_proxy  => undef,
    );
    return $ua->request($method, $url, {
        headers => \%headers,
        peer    => '127.0.0.1',
        (defined $body && length $body ? (content => $body) : ()),
    });
}

# http_get($path, %headers) -> HTTP::Tiny response hashref
sub http_get {
    my ($path, %headers) = @_;
    return http_request('GET', $path, undef, headers => \%headers);
}

# raw_request($port, $bytes | \@chunks, %opt) -> raw response bytes.
# Sends the bytes unchanged (chunks are written separately with `delay`
# seconds, default 0.05, between them, to exercise split reads) and reads
# until one complete response has arrived (Content-Length, chunked end, HEAD,
# 1xx/204/304), the peer closes, or `timeout` (default 5) expires.  With
# until_close => 1 it reads until the peer closes (pipelining).  $port
# defaults to the running server.
sub raw_request {
    my ($port, $data, %opt) = @_;
    $port //= $PORT // croak 'raw_request: no nginx running';
    my $timeout = $opt{timeout} // _request_timeout();
    local $SIG{PIPE} = 'IGNORE';

    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                     Proto => 'tcp', Timeout => $timeout)
        or croak "raw_request: connect 127.0.0.1:$port: $!";
    binmode $sock;
    my @chunks = ref $data ? @$data : ($data);
    my ($method) = join('', @chunks) =~ /^\s*(\S+)/;
    for my $i (0 .. $#chunks) {
        my $buf = $chunks[$i];
        while (length $buf) {
            my $n = syswrite $sock, $buf;
            last unless $n;
            substr($buf, 0, $n, '');
        }
        Time::HiRes::sleep($opt{delay} // 0.05) if $i < $#chunks;
    }

    my $resp = '';
    my $sel = IO::Select->new($sock);
    my $deadline = Time::HiRes::time() + $timeout;
    while ((my $left = $deadline - Time::HiRes::time()) > 0) {
        last unless $sel->can_read($left);
        my $n = sysread $sock, $resp, 65536, length $resp;
        last unless $n;
        last if !$opt{until_close} && _response_complete($resp, $method // '');
    }
    close $sock;
    return $resp;
}

# Splits off interim 1xx responses (not 101).
sub _skip_interim {
    my ($raw) = @_;
    while ($raw =~ m{^HTTP/\d\.\d\s+1(?!01)\d\d.*?\r\n\r\n}s) {
        $raw = substr $raw, $+[0];
    }
    return $raw;
}

sub _response_complete {
    my ($raw, $method) = @_;
    $raw = _skip_interim($raw);
    my $end = index $raw, "\r\n\r\n";
    return 0 if $end < 0;
    my $head = substr $raw, 0, $end;
    my $body = substr $raw, $end + 4;
    my ($status) = $head =~ m{^HTTP/\d\.\d\s+(\d{3})} or return 0;
    return 1 if uc $method eq 'HEAD' || $status =~ /^(?:1\d\d|204|304)$/;
    return defined((_dechunk($body))[0]) if $head =~ /^transfer-encoding:\s*chunked/im;
    return length($body) >= $1 if $head =~ /^content-length:\s*(\d+)/im;
    return 0;
}

# Decodes a chunked body -> ($content, $rest), or () when incomplete.
sub _dechunk {
    my ($body) = @_;
    my $out = '';
    while (1) {
        $body =~ /\A([0-9a-fA-F]+)[^\r\n]*\r\n/ or return ();
        my $size = hex $1;
        my $data = substr $body, $+[0];
        if ($size == 0) {
            # optional trailers, then an empty line
            my $end = index $data, "\r\n";
            while ($end > 0) {
                $data = substr $data, $end + 2;
                $end = index $data, "\r\n";
            }
            return () if $end < 0;
            return ($out, substr $data, 2);
        }
        return () if length($data) < $size + 2;
        $out .= substr $data, 0, $size;
        $body = substr $data, $size + 2;
    }
}

# parse_raw_response($raw) -> hashref shaped like an HTTP::Tiny response:
# protocol, status, reason, headers (lower-case names, arrayref when
# repeated), content (de-chunked; limited to Content-Length), raw.  Interim
# 1xx responses are skipped.  An unparseable response gives status 599 with
# the raw text as content.
sub parse_raw_response {
    my ($raw) = @_;
    $raw //= '';
    my $text = _skip_interim($raw);
    my $end = index $text, "\r\n\r\n";
    my ($status_line, @lines) = split /\r\n/, $end < 0 ? '' : substr($text, 0, $end);
    my ($proto, $status, $reason) =
        ($status_line // '') =~ m{^(HTTP/\d\.\d)\s+(\d{3})(?:\s+(.*))?$};
    return { status => 599, reason => 'Unparseable raw response', headers => {},
             content => $raw, raw => $raw } unless $status;

    my %h;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        $k = lc $k;
        $h{$k} = exists $h{$k} ? [ (ref $h{$k} ? @{ $h{$k} } : $h{$k}), $v ] : $v;
    }
    my $body = substr $text, $end + 4;
    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        my ($content) = _dechunk($body);
        $body = $content if defined $content;
    } elsif (defined $h{'content-length'} && !ref $h{'content-length'}
             && length $body > $h{'content-length'}) {
        $body = substr $body, 0, $h{'content-length'};
    }
    return { protocol => $proto, status => $status, reason => $reason // '',
             headers => \%h, content => $body, raw => $raw,
             success => scalar $status =~ /^2/ };
}

# ---------------------------------------------------------------------------
# Assertions
# ---------------------------------------------------------------------------

# Test::Builder level that makes failures point at the first caller outside
# this package (the test file, or the #line of a block's --- check code)
# instead of at a line of OmniTest.pm.
sub _level {
    my $n = 1;
    $n++ while (caller $n)[0] && (caller $n)[0] eq __PACKAGE__;
    return $n + 1;
}

sub _header {
    my ($resp, $name) = @_;
    my $v = $resp->{headers}{ lc $name };
    return ref $v ? join(', ', @$v) : $v;
}

# check_response($resp, \%expect, $label): the per-request assertions of a
# block.  %expect keys are the section names without suffix: error_code
# (default 200), response_body, response_body_like, response_headers,
# response_headers_like (the last two as multi-line text).
sub check_response {
    my ($resp, $exp, $label) = @_;
    local $Test::Builder::Level = _level();
    $label //= 'response';

    my $code = $exp->{error_code} // 200;
    $code =~ s/^\s+|\s+$//g;
    my $status_ok = Test::More::is($resp->{status}, $code, "$label - status $code");
    if (!$status_ok && $resp->{status} == 599) {
        Test::More::diag("client error: $resp->{content}");
    }

    for my $line (_lines($exp->{response_headers})) {
        if (my ($name) = $line =~ /^!\s*(\S+)$/) {
            my $got = _header($resp, $name);
            Test::More::ok(!defined $got, "$label - header $name absent")
                or Test::More::diag("got $name: $got");
        } elsif (my ($n, $want) = $line =~ /^([^:\s]+)\s*:\s*(.*)$/) {
            Test::More::is(_header($resp, $n), $want, "$label - header $n: $want");
        } else {
            Test::More::fail("$label - malformed response_headers line '$line'");
        }
    }
    for my $line (_lines($exp->{response_headers_like})) {
        if (my ($name, $re) = $line =~ /^([^:\s]+)\s*:\s*(.*)$/) {
            my $got = _header($resp, $name);
            Test::More::ok(defined $got && $got =~ /$re/, "$label - header $name like /$re/")
                or Test::More::diag('got ' . ($got // 'no such header'));
        } else {
            Test::More::fail("$label - malformed response_headers_like line '$line'");
        }
    }
    if (defined $exp->{response_body}) {
        Test::More::is($resp->{content}, $exp->{response_body}, "$label - response body");
    }
    if (defined $exp->{response_body_like}) {
        (my $re = $exp->{response_body_like}) =~ s/\n\z//;
        Test::More::like($resp->{content}, qr/$re/s, "$label - response body like /$re/");
    }
}

# check_logs(%opt): assertions on $PREFIX/logs/error.log (call after stopping
# nginx so that everything is flushed).  Options: error_log and no_error_log
# (arrayrefs of patterns), label, alerts (default 1: fail on [alert], [crit],
# [emerg] lines not matched by an error_log pattern), sanitizers (default 1:
# fail on ASan/UBSan reports).  When logs/valgrind.log exists, also fails on
# valgrind errors or definite leaks.
sub check_logs {
    my (%o) = @_;
    local $Test::Builder::Level = _level();
    my $label  = $o{label} // 'error.log';
    my $log    = error_log_text();
    my @want   = @{ $o{error_log}    || [] };
    my @unwant = @{ $o{no_error_log} || [] };

    for my $pat (@want) {
        Test::More::ok(_match($pat, $log), "$label - error.log has $pat")
            or Test::More::diag("error.log tail:\n" . _tail("$PREFIX/logs/error.log", 20));
    }
    for my $pat (@unwant) {
        my @hits = grep { _match($pat, $_) } split /\n/, $log;
        @hits = ('(matched across lines)') if !@hits && _match($pat, $log);
        Test::More::ok(!@hits, "$label - error.log lacks $pat")
            or Test::More::diag(join "\n", @hits[0 .. ($#hits < 9 ? $#hits : 9)]);
    }
    if ($o{alerts} // 1) {
        my @bad = grep { /$ALERT_RE/ && !_allowed($_, @want) } split /\n/, $log;
        Test::More::ok(!@bad, "$label - no [alert]/[crit]/[emerg] in error.log")
            or Test::More::diag(join "\n", @bad);
    }
    if ($o{sanitizers} // 1) {
        my $text = $log;
        $text .= _slurp("$PREFIX/logs/$_") // '' for qw(startup.out valgrind.out);
        my @san = grep { /$SANITIZER_RE/ } split /\n/, $text;
        Test::More::ok(!@san, "$label - no sanitizer reports")
            or Test::More::diag(join "\n", @san);
    }
    if (defined(my $vg = _slurp("$PREFIX/logs/valgrind.log"))) {
        my $bad = $vg =~ /ERROR SUMMARY: [1-9]/ || $vg =~ /definitely lost: [1-9]/;
        Test::More::ok(!$bad, "$label - valgrind clean")
            or Test::More::diag("$PREFIX/logs/valgrind.log:\n" . substr($vg, 0, 20000));
    }
}

sub _allowed {
    my ($line, @patterns) = @_;
    return scalar grep { _match($_, $line) } @patterns;
}

# ---------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------

# Section value (several values from list filters are joined).
sub _sec {
    my ($block, $name) = @_;
    return undef unless exists $block->{$name};
    my @v = @{ $block->{$name} };
    return @v > 1 ? join('', @v) : $v[0];
}

# Per-request section N; N == 1 is also spelt without suffix.
sub _secn {
    my ($block, $name, $n) = @_;
    return _sec($block, "${name}_$n") // ($n == 1 ? _sec($block, $name) : undef);
}

sub _request_numbers {
    my ($block) = @_;
    my %n;
    for (keys %$block) {
        $n{ $1 // 1 } = 1 if /^(?:raw_)?request(?:_(\d+))?$/;
    }
    return sort { $a <=> $b } keys %n;
}

sub _parse_blocks {
    my ($spec) = @_;
    my $tb = Test::Base->new;
    $tb->_spec_string($spec);
    return @{ $tb->block_list };
}

sub _data_section {
    return $SPEC if defined $SPEC;
    require Scalar::Util;
    no warnings 'once';
    my $fh = Scalar::Util::openhandle(\*main::DATA);
    return $SPEC = '' unless $fh;
    local $/;
    return $SPEC = <$fh> // '';
}

# run_blocks(%opt): runs every block after __DATA__ (or in spec => $text)
# and then calls done_testing unless done_testing => 0.  no_module => 1 is
# the same as $OmniTest::NO_MODULE = 1.
sub run_blocks {
    my (%opt) = @_;
    my $spec = $opt{spec} // _data_section();
    my @blocks = _parse_blocks($spec);
    Test::More::fail('no test blocks found') unless @blocks;
    for my $block (@blocks) {
        _run_block($block, \%opt);
    }
    Test::More::done_testing() if $opt{done_testing} // 1;
}

sub _skip_reason {
    my ($block) = @_;
    if (exists $block->{skip}) {
        my $why = _sec($block, 'skip');
        $why =~ s/^\s+|\s+$//g;
        return length $why ? $why : 'skip section';
    }
    if (defined(my $expr = _sec($block, 'skip_if'))) {
        my $r = eval "package main; $expr";
        die "skip_if: $@" if $@;
        return "skip_if: $expr" if $r;
    }
    return undef;
}

sub _run_block {
    my ($block, $opt) = @_;
    my $name = $block->name;
    local $BLOCK = $block;
    local $Test::Builder::Level = _level();

    my @unknown = grep { !/$KNOWN_SECTION/ } _section_names($block);
    if (@unknown) {
        Test::More::fail("$name - unknown section(s): @unknown");
        return;
    }
    my $why = eval { _skip_reason($block) };
    if ($@) {
        Test::More::fail("$name - skip_if");
        Test::More::diag($@);
        return;
    }
    if (defined $why) {
        Test::More->builder->skip("$name: $why");
        return;
    }

    my $ok = eval { _run_block_body($block, $opt); 1 };
    my $err = $@;
    _stop() if $SRV{pid};
    unless ($ok) {
        Test::More::fail("$name - harness error");
        Test::More::diag($err);
    }
}

# Substitutes variables in every raw section, then runs the Test::Base
# filters (so "--- request eval" sees the substituted text).
sub _section_names { @{ $_[0]{_section_order}[0] } }

sub _prepare_block {
    my ($block, $vars) = @_;
    for my $sec (_section_names($block)) {
        $block->{$sec} = [ map { _subst($_, $vars) } @{ $block->{$sec} } ];
    }
    $block->run_filters;
}

sub _write_user_files {
    my ($prefix, $spec) = @_;
    return unless defined $spec && $spec =~ /\S/;
    my ($lead, @parts) = split /^>>>[ \t]*(\S+)[ \t]*\n/m, $spec;
    die "user_files: text before the first '>>> path' line\n" if $lead =~ /\S/;
    while (@parts) {
        my ($rel, $content) = splice @parts, 0, 2;
        die "user_files: '$rel' must be relative and inside the prefix\n"
            if $rel =~ m{^/} || $rel =~ m{(?:^|/)\.\.(?:/|$)};
        _spew("$prefix/$rel", $content // '');
    }
}

# Compiles block Perl code as a sub in package main (strict, warnings).
sub _compile {
    my ($code, $what, $params) = @_;
    (my $file = $what) =~ s/["\n]/ /g;
    my $sub = eval "package main; sub { my ($params) = \@_;\n#line 1 \"$file\"\n$code\n}";
    die "$what: $@" unless $sub;
    return $sub;
}

sub _run_block_body {
    my ($block, $opt) = @_;
    local $Test::Builder::Level = _level();
    my $name   = $block->name;
    my $port   = free_port();
    my $prefix = _new_prefix();
    $PORT = $port;
    _prepare_block($block, _vars($prefix, $port));

    _write_user_files($prefix, _sec($block, 'user_files'));
    if (defined(my $code = _sec($block, 'init'))) {
        my $init = _compile($code, "$name --- init", '$block');
        local $Test::Builder::Level = 1;
        $init->($block);
    }

    my ($workers, $log_level) = map { defined ? s/^\s+|\s+$//gr : undef }
                                map { _sec($block, $_) } qw(workers log_level);
    _spew("$prefix/conf/nginx.conf", _nginx_conf(
        prefix      => $prefix,
        port        => $port,
        config      => _sec($block, 'config'),
        http_config => _sec($block, 'http_config'),
        main_config => _sec($block, 'main_config'),
        workers     => $workers,
        log_level   => $log_level,
        no_module   => $NO_MODULE || $opt->{no_module} || exists $block->{no_module},
        valgrind    => _valgrind(),
    ));

    my %log_expect = (
        label        => $name,
        error_log    => [ _lines(_sec($block, 'error_log')) ],
        no_error_log => [ _lines(_sec($block, 'no_error_log')) ],
    );

    my ($rc, $output) = _nginx_test($prefix);
    if (exists $block->{must_die}) {
        Test::More::ok($rc != 0, "$name - nginx -t fails")
            or Test::More::diag("nginx -t output:\n$output");
        for my $pat (_lines(_sec($block, 'must_die'))) {
            Test::More::ok(_match($pat, $output), "$name - nginx -t says $pat")
                or Test::More::diag("nginx -t output:\n$output");
        }
        check_logs(%log_expect, alerts => 0, sanitizers => 0)
            if @{ $log_expect{error_log} } || @{ $log_expect{no_error_log} };
        return;
    }
    Test::More::ok($rc == 0, "$name - nginx -t")
        or return Test::More::diag("nginx -t output:\n$output");

    my ($started, $why) = _start($prefix, $port);
    Test::More::ok($started, "$name - nginx started")
        or return Test::More::diag("$why\nerror.log:\n" . _tail("$prefix/logs/error.log", 30));

    my @responses = _run_requests($block, $port);

    if (defined(my $code = _sec($block, 'check'))) {
        my $sub = _compile($code, "$name --- check", '$resp, $block, $responses');
        my $ok = eval {
            local $Test::Builder::Level = 1;    # report "--- check line N"
            $sub->($responses[-1], $block, \@responses);
            1;
        };
        unless ($ok) {
            Test::More::fail("$name - check code died");
            Test::More::diag($@);
        }
    }

    my ($stopped, $stop_why) = _stop();
    Test::More::ok($stopped, "$name - nginx stopped gracefully")
        or Test::More::diag($stop_why);
    check_logs(%log_expect);
}

sub _run_requests {
    my ($block, $port) = @_;
    my $name    = $block->name;
    my @numbers = _request_numbers($block);
    my $timeout = _sec($block, 'timeout');
    $timeout = defined $timeout && $timeout =~ /(\d+(?:\.\d+)?)/ ? $1 : undef;
    $timeout *= 3 if $timeout && _valgrind();
    my $jar = exists $block->{cookie_jar} ? { order => [], value => {} } : undef;

    my @responses;
    for my $n (@numbers) {
        my $label = @numbers > 1 ? "$name - request $n" : $name;
        my $resp;
        if (defined(my $raw = _secn($block, 'raw_request', $n))) {
            $resp = parse_raw_response(raw_request($port, $raw,
                                                   timeout => $timeout));
        } else {
            my ($method, $path, $body) = _parse_request(_secn($block, 'request', $n));
            my %headers = _parse_headers(_secn($block, 'more_headers', $n));
            if ($jar && @{ $jar->{order} }) {
                my $cookies = join '; ', map { "$_=$jar->{value}{$_}" } @{ $jar->{order} };
                my ($key) = grep { lc eq 'cookie' } keys %headers;
                $headers{ $key // 'Cookie' } = defined $key
                    ? "$headers{$key}; $cookies" : $cookies;
            }
            $resp = http_request($method, $path, $body, headers => \%headers,
                                 port => $port, timeout => $timeout);
        }
        push @responses, $resp;
        _jar_update($jar, $resp) if $jar;
        check_response($resp, {
            map { $_ => _secn($block, $_, $n) }
                qw(error_code response_body response_body_like
                   response_headers response_headers_like)
        }, $label);
    }
    return @responses;
}

# "METHOD /path [HTTP/1.x]" then an optional body on the following lines
# (its final newline is dropped).  A bare "/path" means GET.
sub _parse_request {
    my ($text) = @_;
    $text //= '';
    $text =~ s/\A\s+//;
    my ($line, $body) = split /\n/, $text, 2;
    my @words = split ' ', $line // '';
    die "malformed request '$line'\n" unless @words;
    unshift @words, 'GET' if $words[0] =~ m{^/};
    $body =~ s/\n\z// if defined $body;
    return ($words[0], $words[1] // '/', $body);
}

# "Name: value" lines -> hash; a repeated name becomes an arrayref.
sub _parse_headers {
    my %h;
    for my $line (_lines($_[0])) {
        my ($k, $v) = $line =~ /^([^:\s]+)\s*:\s*(.*)$/
            or die "malformed more_headers line '$line'\n";
        $h{$k} = exists $h{$k} ? [ (ref $h{$k} ? @{ $h{$k} } : $h{$k}), $v ] : $v;
    }
    return %h;
}

# A minimal browser-like cookie jar: name=value pairs, removed by
# Max-Age<=0 or an Expires date in the past.  Domain/Path are ignored.
sub _jar_update {
    my ($jar, $resp) = @_;
    my $set = $resp->{headers}{'set-cookie'} // return;
    for my $cookie (ref $set ? @$set : $set) {
        my ($pair, @attrs) = split /;\s*/, $cookie;
        my ($k, $v) = split /=/, $pair // '', 2;
        next unless defined $k && length($k =~ s/^\s+|\s+$//gr);
        $k =~ s/^\s+|\s+$//g;
        my ($max_age, $expires);
        for (@attrs) {
            $max_age = $1 if /^max-age\s*=\s*(-?\d+)/i;
            $expires = _http_date($1) if /^expires\s*=\s*(.+)$/i;
        }
        my $expired = defined $max_age ? $max_age <= 0
                    : defined $expires ? $expires <= time : 0;
        if ($expired) {
            delete $jar->{value}{$k};
            $jar->{order} = [ grep { $_ ne $k } @{ $jar->{order} } ];
        } else {
            push @{ $jar->{order} }, $k unless exists $jar->{value}{$k};
            $jar->{value}{$k} = $v // '';
        }
    }
}

sub _http_date {
    my ($text) = @_;
    my %mon; @mon{qw(jan feb mar apr may jun jul aug sep oct nov dec)} = 0 .. 11;
    my ($d, $m, $y, $H, $M, $S) =
        $text =~ /(\d{1,2})[- ]([A-Za-z]{3})[- ](\d{2,4})\s+(\d\d):(\d\d):(\d\d)/
        or return undef;
    return undef unless exists $mon{ lc $m };
    $y += $y < 70 ? 2000 : 1900 if $y < 100;
    return eval { Time::Local::timegm($S, $M, $H, $d, $mon{ lc $m }, $y) };
}

1;

__END__

=head1 NAME

OmniTest - Test::Nginx-style data-driven harness for ngx_omni_module

=head1 SYNOPSIS

    use lib 't/lib';
    use OmniTest;          # also imports Test::More

    run_blocks();          # runs the blocks below, then done_testing

    __DATA__

    === TEST 1: hello
    --- config
    location = /t { return 200 "hello"; }
    --- request
    GET /t
    --- response_body: hello
    --- no_error_log
    [error]

=head1 DESCRIPTION

Each block gets a fresh temporary prefix, a free loopback port and its own
nginx (C<nginx -t> first, then a daemonised master polled until it
listens), sends its requests, checks the responses, stops nginx with
SIGQUIT and then checks F<error.log> (no C<[alert]>, C<[crit]>,
C<[emerg]>, no sanitizer reports, valgrind clean in valgrind mode).

The block sections, variables and environment are documented in
F<docs/testing.md>.

=head1 FUNCTIONS

All exported by default.

=over

=item run_blocks(%opt)

Options: C<spec> (block text instead of C<__DATA__>), C<done_testing>
(default 1), C<no_module>.

=item start_nginx($config, %opt) / stop_nginx()

For tests without blocks.  C<start_nginx> returns the port and croaks on
failure; options C<http_config>, C<main_config>, C<workers>, C<log_level>,
C<user_files>, C<no_module>, C<full_config>.  C<stop_nginx> returns true
for a graceful stop.

=item check_response($resp, \%expect, $label)

=item check_logs(%opt)

C<error_log>, C<no_error_log> (arrayrefs), C<label>, C<alerts>,
C<sanitizers>.

=item http_get($path, %headers), http_request($method, $path, $body, %opt)

HTTP::Tiny response hashrefs; C<%opt>: C<headers>, C<port>, C<timeout>.

=item raw_request($port, $bytes | \@chunks, %opt), parse_raw_response($raw)

=item omnictl(@args) -> ($exit, $stdout, $stderr)

=item run_command(\@argv, %opt) -> ($exit, $stdout, $stderr)

=item wait_for($code, $timeout, $interval)

=item error_log_text(), repo_root(), free_port()

=back

Variables: C<$OmniTest::PREFIX>, C<$OmniTest::PORT>, C<$OmniTest::BLOCK>,
C<$OmniTest::NO_MODULE>.

=cut
