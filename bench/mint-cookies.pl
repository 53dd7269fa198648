#!/usr/bin/perl
# Mints COUNT signed visitor cookies (docs/identity.md) for profile ids picked
# uniformly at random (fixed seed: deterministic) from 0 .. N-1, excluding the
# last RESERVE ids (kept untouched for the run's verification requests).
#
#   mint-cookies.pl SECRET_FILE N COUNT [RESERVE] > cookies.txt
#   mint-cookies.pl SECRET_FILE --id HEX32            (one cookie for one id)
#
# Output: one line per cookie, "<id hex> <cookie value>".
#
# Wire format: base64url (no padding) of 42 bytes: u8 version 1, u8 kind 'c',
# 16-byte id, u32 issued (BE), u32 expires (BE, 0), then the first 16 bytes
# of HMAC-SHA256(secret, "omni/v1/" . the 26 bytes above).
use strict;
use warnings;
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url);

my $secret_file = shift // die "usage: mint-cookies.pl SECRET_FILE N COUNT [RESERVE]\n";
open(my $fh, '<', $secret_file) or die "$secret_file: $!\n";
my $secret = <$fh>;
close $fh;
chomp $secret;
die "secret shorter than 32 bytes\n" if length($secret) < 32;

my $issued = time() - 60;

sub cookie {
    my ($hex) = @_;
    my $msg = pack('C C a16 N N', 1, ord('c'), pack('H32', $hex), $issued, 0);
    my $tag = substr(hmac_sha256('omni/v1/' . $msg, $secret), 0, 16);
    return encode_base64url($msg . $tag);
}

if (@ARGV && $ARGV[0] eq '--id') {
    my $hex = lc($ARGV[1] // die "--id HEX32\n");
    die "id must be 32 hex digits\n" unless $hex =~ /^[0-9a-f]{32}$/;
    print "$hex ", cookie($hex), "\n";
    exit 0;
}

my ($n, $count, $reserve) = @ARGV;
die "usage: mint-cookies.pl SECRET_FILE N COUNT [RESERVE]\n" unless $n && $count;
$reserve //= 0;
my $pool = $n - $reserve;
die "N must be larger than RESERVE\n" if $pool < 1;

srand(20240601);
for (1 .. $count) {
    my $hex = sprintf('%032x', int(rand($pool)));
    print "$hex ", cookie($hex), "\n";
}
