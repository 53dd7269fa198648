package OmniCookie;

# An independent Perl implementation of the visitor cookie / app token
# format (docs/identity.md), so tests can mint valid, expired, wrongly
# keyed and tampered identities without going through the module's own C.

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256);
use Exporter ();

our @ISA    = ('Exporter');
our @EXPORT = qw(mint_cookie mint_token b64url b64url_decode tamper
                 random_id TEST_SECRET OLD_SECRET OTHER_SECRET);

use constant TEST_SECRET  => 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz';
use constant OLD_SECRET   => 'old-secret-9876543210-zyxwvutsrqponmlkjihgfedcba';
use constant OTHER_SECRET => 'other-secret-not-configured-anywhere-at-all-00';

sub b64url {
    my ($bin) = @_;
    require MIME::Base64;
    my $s = MIME::Base64::encode_base64($bin, '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+$//;
    return $s;
}

sub b64url_decode {
    my ($s) = @_;
    require MIME::Base64;
    $s =~ tr{-_}{+/};
    $s .= '=' x ((4 - length($s) % 4) % 4);
    return MIME::Base64::decode_base64($s);
}

sub random_id {
    return join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
}

# mint('c' | 't', $secret, $id_hex, issued => T, expires => T)
sub _mint {
    my ($kind, $secret, $id_hex, %o) = @_;
    my $body = pack('C a1 H32 N N', 1, $kind, $id_hex,
                    $o{issued} // time(), $o{expires} // 0);
    my $mac = substr(hmac_sha256("omni/v1/" . $body, $secret), 0, 16);
    return b64url($body . $mac);
}

sub mint_cookie { _mint('c', @_) }
sub mint_token  { _mint('t', @_) }

# Flips one bit of byte $i of the decoded value and re-encodes it.
sub tamper {
    my ($value, $i) = @_;
    my $raw = b64url_decode($value);
    substr($raw, $i, 1) = chr(ord(substr($raw, $i, 1)) ^ 0x01);
    return b64url($raw);
}

1;
