#!/usr/bin/perl
# Mints COUNT signed visitor cookies (docs/identity.md) for profile ids picked
# uniformly at random (fixed seed: deterministic) from 0 .. N-1, excluding the
# last RESERVE ids (kept untouched for the run's verification requests).
#
#   mint-cookies.pl [--outside ID:PERCENT] SECRET_FILE N COUNT [RESERVE] > cookies.txt
#   mint-cookies.pl [--outside ID:PERCENT] SECRET_FILE --id HEX32   (one cookie)
#
# --outside ID:PERCENT: only profiles outside the global holdout ID of
# PERCENT % (rules/00-holdout.json), whom the rules show something: the
# others are skipped (with --id: exit status 3, nothing printed).  The
# bucket is docs/rules.md's SipHash-2-4 (its test vectors: --selftest).
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

no warnings 'portable';    # 64-bit hex constants

# SipHash-2-4 on 64-bit unsigned integers; additions in 32-bit halves, so
# that no sum ever leaves the integers.
my $M32 = 0xffffffff;
sub add64 {
    my ($a, $b) = @_;
    my $lo = ($a & $M32) + ($b & $M32);
    return (((($a >> 32) + ($b >> 32) + ($lo >> 32)) & $M32) << 32) | ($lo & $M32);
}
sub rotl64 { my ($x, $b) = @_; return (($x << $b) | ($x >> (64 - $b))) & 0xffffffffffffffff; }
sub siphash24 {
    my ($key, $msg) = @_;
    my ($k0, $k1) = unpack('Q< Q<', $key);
    my @v = ($k0 ^ 0x736f6d6570736575, $k1 ^ 0x646f72616e646f6d,
             $k0 ^ 0x6c7967656e657261, $k1 ^ 0x7465646279746573);
    my $round = sub {
        $v[0] = add64($v[0], $v[1]); $v[1] = rotl64($v[1], 13);
        $v[1] ^= $v[0]; $v[0] = rotl64($v[0], 32);
        $v[2] = add64($v[2], $v[3]); $v[3] = rotl64($v[3], 16); $v[3] ^= $v[2];
        $v[0] = add64($v[0], $v[3]); $v[3] = rotl64($v[3], 21); $v[3] ^= $v[0];
        $v[2] = add64($v[2], $v[1]); $v[1] = rotl64($v[1], 17);
        $v[1] ^= $v[2]; $v[2] = rotl64($v[2], 32);
    };
    my $len = length $msg;
    for my $m (unpack('Q<*', $msg . ("\0" x (7 - $len % 8)) . chr($len & 0xff))) {
        $v[3] ^= $m;
        $round->() for 1 .. 2;
        $v[0] ^= $m;
    }
    $v[2] ^= 0xff;
    $round->() for 1 .. 4;
    return $v[0] ^ $v[1] ^ $v[2] ^ $v[3];
}
sub bucket {    # profile id (hex), experiment id -> 0 .. 9999
    my ($hex, $exp) = @_;
    return siphash24('omni-experiments', pack('H32', $hex) . $exp) % 10000;
}

if (@ARGV && $ARGV[0] eq '--selftest') {
    die "siphash24 reference vector\n"
        unless siphash24(pack('C*', 0 .. 15), pack('C*', 0 .. 14)) == 0xa129ca6149be45e5;
    die "bucket test vectors\n"
        unless bucket('00112233445566778899aabbccddeeff', 'hero-test') == 2014
            && bucket('abababababababababababababababab', 'exp-1') == 8939;
    print "ok\n";
    exit 0;
}

my ($hold_id, $hold_bp);
if (@ARGV && $ARGV[0] =~ /^--outside(?:=(.*))?$/) {
    shift;
    my $v = $1 // shift // '';
    ($hold_id, my $pct) = $v =~ /^(.+):([0-9.]+)$/
        or die "--outside ID:PERCENT\n";
    $hold_bp = $pct * 100;
}
sub held_out { return defined $hold_id && bucket($_[0], $hold_id) < $hold_bp; }

my $secret_file = shift // die "usage: mint-cookies.pl [--outside ID:PERCENT] SECRET_FILE N COUNT [RESERVE]\n";
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
    exit 3 if held_out($hex);
    print "$hex ", cookie($hex), "\n";
    exit 0;
}

my ($n, $count, $reserve) = @ARGV;
die "usage: mint-cookies.pl SECRET_FILE N COUNT [RESERVE]\n" unless $n && $count;
$reserve //= 0;
my $pool = $n - $reserve;
die "N must be larger than RESERVE\n" if $pool < 1;

srand(20240601);
my $made = 0;
while ($made < $count) {
    my $hex = sprintf('%032x', int(rand($pool)));
    next if held_out($hex);
    print "$hex ", cookie($hex), "\n";
    $made++;
}
