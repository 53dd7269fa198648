#!/usr/bin/perl
# Writes N profiles as NDJSON (docs/store-format.md) to stdout, ids
# sprintf("%032x", i) for i in 0 .. N-1, content deterministic in i, times
# relative to NOW (default: the current time).
#
#   gen-profiles.pl [--aliases] N [NOW]
#
# --aliases: each profile also lists its cookie alias (the visitor id is the
# profile id), as a returning visitor's profile does once the writer has
# seen its cookie (bench/writer.sh: the writer's steady state).
#
# Every profile looks like a returning shopper of the demo shop (about
# 0.6 KB encoded): segments, attributes, recent views of TRAIL-42 and of
# SUMMIT-PRO (category premium, 349.00, a day ago), so that with the seed
# rules (rules/) arm B's visitors get a hero banner and the SUMMIT-PRO
# retargeting pixels:
#
#   - most: escalation-premium ($150 off the Summit Pro jacket) in the
#     hero slot, summit-retarget's pixels (an img and a script);
#   - i % 7 == 3: a customer (bought SOCK-3 20 days ago):
#     review-request in the hero slot instead;
#   - i % 5 == 1: a JKT-7 cart idle for 3 hours: cart-abandon (banner and
#     its own pixel) on the first request, then its 30-minute cooldown;
#   - i % 2 == 0: the "newsletter" segment (a generated pixel-only rule).
use strict;
use warnings;

my $aliases = @ARGV && $ARGV[0] eq '--aliases' ? shift : 0;
my $n = shift // die "usage: gen-profiles.pl [--aliases] N [NOW]\n";
my $now = shift // time();
my $day = 86400;
my @names = qw(Ana Ben Chloe Dario Eva Femi Greta Hugo Ines Jon);
my @langs = qw(pt en fr es);
my @tiers = qw(bronze silver);

my $buf = '';
for my $i (0 .. $n - 1) {
    my @seg;
    push @seg, '"newsletter"' if $i % 2 == 0;
    push @seg, '"outdoor"' if $i % 3 == 0;
    push @seg, '"runners"' if $i % 5 == 0;
    my $customer = $i % 7 == 3;
    my $cart = $i % 5 == 1;
    my $seen = $now - 7200 - $i % 600;

    my $p = sprintf('{"id":"%032x","created":%d,"updated":%d,"visits":%d,'
                    . '"visit_last":%d,"stage":"%s","last_seen":{"web":%d%s},',
                    $i, $now - (30 + $i % 60) * $day, $seen, 3 + $i % 17, $seen,
                    $customer ? 'customer' : $cart ? 'cart' : 'browsing', $seen,
                    $i % 4 == 0 ? sprintf(',"app":%d', $now - 3 * $day) : '');
    $p .= sprintf('"aliases":[{"type":"cookie","id":"%032x"}],', $i) if $aliases;
    $p .= sprintf('"orders":1,"revenue":19.9,') if $customer;
    $p .= '"segments":[' . join(',', @seg) . '],' if @seg;
    $p .= sprintf('"attributes":{"first_name":"%s","tier":"%s","lang":"%s",'
                  . '"zip":"%04d-%03d","age":%d},',
                  $names[$i % @names], $tiers[$i % 2], $langs[$i % 4],
                  1000 + $i % 900, $i % 1000, 20 + $i % 50);
    $p .= sprintf('"cart":{"updated_at":%d,"items":[{"sku":"JKT-7",'
                  . '"name":"Ridge 7 jacket","category":"jackets","qty":1,'
                  . '"price":189.0,"url":"/product/jkt-7.html"}]},',
                  $now - 3 * 3600) if $cart;
    $p .= sprintf('"purchases":[{"sku":"SOCK-3","order_id":"O-%d","channel":"web",'
                  . '"time":%d,"category":"socks","price":19.9,"qty":1}],',
                  $i, $now - 20 * $day) if $customer;
    $p .= sprintf('"views":[{"sku":"TRAIL-42","category":"shoes","time":%d,'
                  . '"price":119.0},{"sku":"SUMMIT-PRO","category":"premium",'
                  . '"time":%d,"price":349.0}]',
                  $now - 3 * $day - $i % 1000, $now - $day - $i % 3600);
    $p .= sprintf(',"events":[{"name":"Newsletter Opened","count":%d,"last":%d}]',
                  1 + $i % 9, $now - 5 * $day) if $i % 3 == 0;
    $buf .= "$p}\n";
    if (length($buf) > 1 << 20) {
        print $buf;
        $buf = '';
    }
}
print $buf;
