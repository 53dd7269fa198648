# Load from forked clients for the crash, reload and writer tests
# (t/43-crash.t, t/44-writer.t): each client writes one line per request
# to its own file, so the test can poll progress and read every answer
# after the clients are done.
package OmniLoad;

use strict;
use warnings;

use Exporter 'import';
use JSON::PP ();
use POSIX ();

use OmniTest;

our @EXPORT = qw(clients client_lines post_event);

# clients($dir, $n, $per, $code) -> pids: client $c (1 .. $n) calls
# $code->($c, $i) for $i in 1 .. $per and writes each defined result as a
# line of "$dir/$c".
sub clients {
    my ($dir, $n, $per, $code) = @_;
    mkdir $dir;
    my @kids;
    for my $c (1 .. $n) {
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            open(my $out, '>', "$dir/$c") or POSIX::_exit(2);
            $out->autoflush(1);
            for my $i (1 .. $per) {
                my $line = $code->($c, $i);
                print $out "$line\n" if defined $line;
            }
            POSIX::_exit(0);
        }
        push @kids, $pid;
    }
    return @kids;
}

# Every line the clients of $dir wrote so far.
sub client_lines {
    my ($dir) = @_;
    my @lines;
    for my $file (glob "$dir/*") {
        open(my $f, '<', $file) or next;
        while (<$f>) { chomp; push @lines, $_ }
    }
    return @lines;
}

# POSTs one client event to /omni/events: a track event with a sku and
# the given messageId, as the visitor of $cookie; the response.
sub post_event {
    my ($cookie, $event, $id, $properties, $timeout) = @_;
    return http_request('POST', '/omni/events',
        JSON::PP->new->canonical->encode({ type => 'track', event => $event,
                                           messageId => $id, properties => $properties }),
        headers => { 'Content-Type' => 'application/json', Cookie => $cookie },
        timeout => $timeout // 5);
}

1;
