# Helpers for the event and stitching tests (t/41-*.t ... t/43-*.t):
# posting events, and reading the store the running nginx writes, with
# omnictl, the same core.
#
#   post($body_or_ref, %headers)   POST /omni/events (path => '/x' for
#                                  another location); the answer, with
#                                  the decoded JSON in {json}
#   profile('ID' | 'TYPE:VALUE')   a profile from the store, or undef
#   feed()                         every feed record, decoded, in order
#   iso($unix)                     ISO 8601 UTC
#   store()                        the running nginx's store directory

package OmniEvents;

use strict;
use warnings;

use Exporter 'import';
use JSON::PP ();
use OmniTest ();

our @EXPORT = qw(post profile feed iso store);

my $JSON = JSON::PP->new->canonical;

sub store { "$OmniTest::PREFIX/store" }

sub iso {
    my @t = gmtime($_[0]);
    return sprintf '%04d-%02d-%02dT%02d:%02d:%02dZ', $t[5] + 1900, $t[4] + 1,
                   @t[3, 2, 1, 0];
}

sub post {
    my ($body, %h) = @_;
    $body = $JSON->encode($body) if ref $body;
    my $path = delete $h{path} // '/omni/events';
    my $r = OmniTest::http_request('POST', $path, $body,
                headers => { 'Content-Type' => 'application/json', %h });
    $r->{json} = eval { JSON::PP::decode_json($r->{content}) };
    return $r;
}

sub profile {
    my ($which) = @_;
    my @arg = $which =~ /:/ ? ('--alias', $which) : ($which);
    my ($rc, $out) = OmniTest::omnictl('--store', store(), 'get', @arg);
    return $rc == 0 ? JSON::PP::decode_json($out) : undef;
}

sub feed {
    my ($rc, $out, $err) = OmniTest::omnictl('--store', store(), 'tail',
                                             '--after', '0', '--limit', '1000000');
    die "omnictl tail: $err" if $rc;
    return [ map { JSON::PP::decode_json($_) } split /\n/, $out ];
}

1;
