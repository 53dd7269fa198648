#!/usr/bin/perl
# Writes N profiles as NDJSON (docs/store-format.md) to stdout, ids
# sprintf("%032x", i) for i in 0 .. N-1, deterministic content.
use strict;
use warnings;

my $n = shift // die "usage: gen-profiles.pl N\n";
my @names = qw(Ana Ben Chloe Dario Eva Femi Greta Hugo Ines Jon);
my $buf = '';
for my $i (0 .. $n - 1) {
    $buf .= sprintf('{"id":"%032x","visits":3,"attributes":{"first_name":"%s"}}'
                    . "\n", $i, $names[$i % @names]);
    if (length($buf) > 1 << 20) {
        print $buf;
        $buf = '';
    }
}
print $buf;
