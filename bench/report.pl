#!/usr/bin/perl
# Turns build/bench/runs.tsv (one line per measured wrk run, bench/run.sh)
# into markdown: per configuration, the median and range of requests/s per
# arm, median p50/p99, worker CPU per request; then the ratios against the
# GUIDE section 3 targets.
#
#   report.pl runs.tsv SMALLEST_SIZE LARGEST_SIZE [NOISE_MAX [HEALTH_TSV]]
#
# HEALTH_TSV: lines "config requests_to_omni_arms committed dropped failed
# arms_with_drops"; a configuration whose writer dropped touches gets a
# warning: its F, B and "new visitor" numbers did less than the whole path.
use strict;
use warnings;

my ($file, $smallest, $largest, $noise_max, $health) = @ARGV;
$noise_max //= 15;
my (%dropped, %writer);
if ($health && open(my $hf, '<', $health)) {
    while (<$hf>) {
        chomp;
        my ($c, $req, $com, $drop, $fail, $arms) = split /\t/;
        $dropped{$c} = [$drop + $fail, $req, { map { $_ => 1 } split /,/, $arms // '' }]
            if $drop + $fail > 0;
        $writer{$c} = [$req, $com, $drop, $fail];
    }
}
die "usage: report.pl runs.tsv SMALLEST LARGEST\n" unless $file;

open(my $fh, '<', $file) or die "$file: $!\n";
my $hdr = <$fh>;
chomp $hdr;
my @cols = split /\t/, $hdr;
my (@configs, %seen, %runs);
while (my $line = <$fh>) {
    chomp $line;
    my %r;
    @r{@cols} = split /\t/, $line;
    push @configs, $r{config} unless $seen{$r{config}}++;
    push @{ $runs{$r{config}}{$r{phase}}{$r{arm}} }, \%r;
}
close $fh;

sub median {
    my @v = sort { $a <=> $b } @_;
    return undef unless @v;
    my $n = @v;
    return $n % 2 ? $v[$n / 2] : ($v[$n / 2 - 1] + $v[$n / 2]) / 2;
}
sub col { my ($list, $c) = @_; return map { $_->{$c} } @$list; }
sub minmax { my @v = sort { $a <=> $b } @_; return ($v[0], $v[-1]); }

# Ratio of the medians, and the range of the per-round (paired) ratios.
sub ratio {
    my ($num, $den) = @_;
    return undef unless $num && $den && @$num && @$den;
    my $r = median(col($num, 'rps')) / median(col($den, 'rps'));
    my %d = map { $_->{round} => $_->{rps} } @$den;
    my @p = map { $d{$_->{round}} ? $_->{rps} / $d{$_->{round}} : () } @$num;
    my ($lo, $hi) = @p ? minmax(@p) : ($r, $r);
    return { med => $r, lo => $lo, hi => $hi };
}
sub pct { my $r = shift; return sprintf('%.1f%%', 100 * $r); }

# The same ratio estimated from CPU time: when the worker is the bottleneck,
# requests/s are inversely proportional to worker CPU per request, and CPU
# per request is much less disturbed by other processes than requests/s.
sub cpu_ratio {
    my ($num, $den) = @_;
    return 'n/a' unless $num && $den && @$num && @$den;
    return pct(median(col($den, 'cpu_us_req')) / median(col($num, 'cpu_us_req')));
}
sub ratio_str {
    my $r = shift;
    return 'n/a' unless $r;
    return sprintf('%s (rounds %s–%s)', pct($r->{med}), pct($r->{lo}), pct($r->{hi}));
}

my %label = (
    'A'   => 'A: static page, omni off',
    "A'"  => "A': A + one sub_filter",
    'F'   => 'F: foundation: cookie verified, profile hit, touch (omni_inject off)',
    'B'   => 'B: full path: F + rules, geo lookup, banner and pixels injected',
    'off' => 'module off in location (omni off in an omni-on server)',
    'new' => 'new visitor: omni on, no cookie (mint + Set-Cookie + new profile)',
    'C'   => 'C: the OpenResty peer (lua-nginx-module, FFI), the same work as B',
    'Ac'  => 'Ac: the page from proxy_cache (a hit), omni off',
    "A'c" => "A'c: Ac + one sub_filter",
    'Bc'  => 'Bc: B on the proxy_cache hit',
    'Ap'  => 'Ap: the page proxied from a local upstream, no cache, omni off',
    'Bp'  => 'Bp: B on the proxied page',
);
# The baseline of each arm's "vs" column and its CPU difference.
my %base = ('A' => 'A', "A'" => 'A', 'F' => 'A', 'B' => 'A', 'off' => 'A',
            'C' => 'A', 'Ac' => 'Ac', "A'c" => 'Ac', 'Bc' => 'Ac',
            'Ap' => 'Ap', 'Bp' => 'Ap');

# "met", or "NOT met" and by how much, for a ratio R against a minimum.
sub verdict {
    my ($r, $min) = @_;
    return 'met' if $r >= $min;
    return sprintf('NOT met: %.1f points short of %.0f%% (%.0f%% of the target)',
                   100 * ($min - $r), 100 * $min, 100 * $r / $min);
}

sub describe {
    my $c = shift;
    my ($w, $s) = $c =~ /^(\d+)w-(.+)$/ or return $c;
    return sprintf('%d worker%s, %s profiles', $w, $w > 1 ? 's' : '', $s);
}

my @targets;
my %noisy;

print "## Requests/s per arm\n\n";
print "Median and range over the interleaved rounds; latency: median of the",
      " runs' wrk p50/p99; CPU: worker utime+stime (all threads, writer",
      " included) ÷ requests, and the event-loop thread alone;",
      " \"other CPU\": busy CPU time on the machine not spent by the nginx",
      " workers or wrk (noise from other processes); bytes: response bytes",
      " (headers included) per request, as wrk counted them.\n\n";

for my $c (@configs) {
    my $core = $runs{$c}{core} || {};
    my $newp = $runs{$c}{new} || {};

    print "### $c: ", describe($c), "\n\n";
    my @all = map { @$_ } values(%$core), values(%$newp);
    my $other = median(col(\@all, 'other_cpu_pct'));
    if ($dropped{$c}) {
        my ($d, $req, $arms) = @{ $dropped{$c} };
        my @a = sort keys %$arms;
        printf "> **Writer overloaded:** %d touches dropped or failed (%.1f%%"
             . " of the requests to omni-on arms)%s; an arm whose touches"
             . " were dropped did less than its whole path, so its numbers"
             . " are flattered.\n\n", $d, $req ? 100 * $d / $req : 0,
             @a ? ', during measured runs of: ' . join(', ', @a)
                : ', outside the measured runs';
    }
    if (defined $other && $other > $noise_max) {
        $noisy{$c} = 1;
        printf "> **Not reliable:** other processes used a median %.0f%% of a"
             . " CPU during these runs (limit %s%%).\n\n", $other, $noise_max;
    }
    print "| arm | req/s median | req/s range | vs its baseline (A, Ac or Ap) | p50 µs | p99 µs |",
          " CPU µs/req | event loop µs/req | worker CPU | other CPU | bytes/resp | runs |\n";
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";

    my @rows;
    for my $arm ('A', "A'", 'F', 'B', 'off', 'C', 'Ac', "A'c", 'Bc', 'Ap', 'Bp') {
        push @rows, [$label{$arm}, $core->{$arm}, $core->{ $base{$arm} }] if $core->{$arm};
    }
    if ($newp->{new}) {
        push @rows, ['A, new-visitor phase (paired with the next row)',
                     $newp->{A}, $newp->{A}];
        push @rows, [$label{new}, $newp->{new}, $newp->{A}];
    }

    for my $row (@rows) {
        my ($name, $list, $base) = @$row;
        my ($lo, $hi) = minmax(col($list, 'rps'));
        my $r = ratio($list, $base);
        my $bytes = median(grep { defined } col($list, 'bytes_req'));
        printf "| %s | %.0f | %.0f–%.0f | %s | %.0f | %.0f | %.2f | %.2f | %.0f%% | %.0f%% | %s | %d |\n",
            $name, median(col($list, 'rps')), $lo, $hi,
            $r ? sprintf('%s (%s–%s)', pct($r->{med}), pct($r->{lo}), pct($r->{hi})) : '',
            median(col($list, 'p50_us')), median(col($list, 'p99_us')),
            median(col($list, 'cpu_us_req')), median(col($list, 'cpu_main_us_req')),
            median(col($list, 'worker_cpu_pct')), median(col($list, 'other_cpu_pct')),
            defined $bytes ? sprintf('%.0f', $bytes) : '', scalar @$list;
    }
    print "\n";

    if ($core->{B} && $core->{A}) {
        my $ba = ratio($core->{B}, $core->{A});
        push @targets, ['P1', "B/A, $c", ratio_str($ba),
                        cpu_ratio($core->{B}, $core->{A}), '≥ 80%',
                        verdict($ba->{med}, 0.80)];
    }
    if ($core->{B} && $core->{"A'"}) {
        my $bs = ratio($core->{B}, $core->{"A'"});
        push @targets, ['P1', "B/A', $c", ratio_str($bs),
                        cpu_ratio($core->{B}, $core->{"A'"}), '≥ 150%',
                        verdict($bs->{med}, 1.50)];
    }
    # The proxy_cache page: the same targets against its own baselines.
    if ($core->{Bc} && $core->{Ac}) {
        my $r = ratio($core->{Bc}, $core->{Ac});
        push @targets, ['P1', "Bc/Ac (proxy_cache hit), $c", ratio_str($r),
                        cpu_ratio($core->{Bc}, $core->{Ac}), '≥ 80%',
                        verdict($r->{med}, 0.80)];
    }
    if ($core->{Bc} && $core->{"A'c"}) {
        my $r = ratio($core->{Bc}, $core->{"A'c"});
        push @targets, ['P1', "Bc/A'c (proxy_cache hit), $c", ratio_str($r),
                        cpu_ratio($core->{Bc}, $core->{"A'c"}), '≥ 150%',
                        verdict($r->{med}, 1.50)];
    }
    # The proxied page without a cache.
    if ($core->{Bp} && $core->{Ap}) {
        my $r = ratio($core->{Bp}, $core->{Ap});
        push @targets, ['P1b', "Bp/Ap (proxied, no cache), $c", ratio_str($r),
                        cpu_ratio($core->{Bp}, $core->{Ap}), '≥ 85%',
                        verdict($r->{med}, 0.85)];
    }
    # B against the OpenResty peer: requests/s, and the p99 each adds to A.
    if ($core->{B} && $core->{C}) {
        my $r = ratio($core->{B}, $core->{C});
        push @targets, ['P3', "B/C (the OpenResty peer), $c", ratio_str($r),
                        cpu_ratio($core->{B}, $core->{C}), '≥ 150%',
                        verdict($r->{med}, 1.50)];
        if ($core->{A}) {
            my $p = sub { median(col($core->{$_[0]}, 'p99_us')) };
            my ($ab, $ac) = ($p->('B') - $p->('A'), $p->('C') - $p->('A'));
            my $ok = $ac > 0 ? $ab <= $ac / 2 : $ab <= 0;
            push @targets, ['P3', "added p99, B − A against C − A, $c",
                            sprintf('B adds %.0f µs, C adds %.0f µs (p99: A %.0f, B %.0f, C %.0f)',
                                    $ab, $ac, $p->('A'), $p->('B'), $p->('C')),
                            '', '≤ half of C\'s',
                            $ok ? 'met' : sprintf('NOT met: %.0f µs over half of C\'s',
                                                  $ab - $ac / 2)];
        }
    }
    if ($core->{off} && $core->{A}) {
        my $r = ratio($core->{off}, $core->{A});
        push @targets, ['P2', "module off in location / A, $c", ratio_str($r),
                        cpu_ratio($core->{off}, $core->{A}), '≥ 97%', $r->{med} >= 0.97 ? 'met' : 'NOT met'];
    }
    if ($newp->{new} && $newp->{A}) {
        my $r = ratio($newp->{new}, $newp->{A});
        push @targets, ['P2', "no cookie (new visitor) / A, $c", ratio_str($r),
                        cpu_ratio($newp->{new}, $newp->{A}), '≥ 97%', $r->{med} >= 0.97 ? 'met' : 'NOT met'];
    }
    if ($core->{B} && $core->{A}) {
        my $mc = sub { median(col($core->{$_[0]}, $_[1])) };
        my $d = $mc->('B', 'cpu_us_req') - $mc->('A', 'cpu_us_req');
        my $f = $core->{F}
              ? sprintf('; of which F − A (foundation) %.2f µs, B − F'
                        . ' (rules, geo, injection, impressions) %.2f µs',
                        $mc->('F', 'cpu_us_req') - $mc->('A', 'cpu_us_req'),
                        $mc->('B', 'cpu_us_req') - $mc->('F', 'cpu_us_req'))
              : '';
        push @targets, ['P4', "added worker CPU per request, B − A, $c",
                        sprintf('%.2f µs (B %.2f, A %.2f)%s', $d,
                                $mc->('B', 'cpu_us_req'),
                                $mc->('A', 'cpu_us_req'), $f),
                        sprintf('event loop only: %.2f µs',
                                $mc->('B', 'cpu_main_us_req')
                                - $mc->('A', 'cpu_main_us_req')),
                        '≤ 5 µs (full path)',
                        $d <= 5 ? 'met' : sprintf('NOT met: %.2f µs over', $d - 5)];
    }
    for my $pair (['Bc', 'Ac', 'proxy_cache hit'], ['Bp', 'Ap', 'proxied'],
                  ['C', 'A', 'the OpenResty peer, for comparison']) {
        my ($x, $y, $what) = @$pair;
        next unless $core->{$x} && $core->{$y};
        my $mc = sub { median(col($core->{$_[0]}, $_[1])) };
        my $d = $mc->($x, 'cpu_us_req') - $mc->($y, 'cpu_us_req');
        my $is_target = $x eq 'Bc';
        push @targets, [$is_target ? 'P4' : 'info',
                        "added worker CPU per request, $x − $y ($what), $c",
                        sprintf('%.2f µs (%s %.2f, %s %.2f)', $d, $x,
                                $mc->($x, 'cpu_us_req'), $y, $mc->($y, 'cpu_us_req')),
                        sprintf('event loop only: %.2f µs',
                                $mc->($x, 'cpu_main_us_req') - $mc->($y, 'cpu_main_us_req')),
                        $is_target ? '≤ 5 µs' : '',
                        !$is_target ? '' : $d <= 5 ? 'met'
                            : sprintf('NOT met: %.2f µs over', $d - 5)];
    }
}

# P6: B at the largest store against B at the smallest, one worker.
my ($s1, $sl) = ("1w-$smallest", "1w-$largest");
if ($smallest ne $largest && $runs{$s1}{core}{B} && $runs{$sl}{core}{B}) {
    my $r = ratio($runs{$sl}{core}{B}, $runs{$s1}{core}{B});
    my $what = $largest =~ /^10M$/i ? 'B at 10M / B at 1k'
             : "B at $largest / B at $smallest (the target is at 10M)";
    # Normalised by each configuration's own A, so that drift of the
    # machine between the two configurations does not count.
    my $n = ratio($runs{$sl}{core}{B}, $runs{$sl}{core}{A})->{med}
          / ratio($runs{$s1}{core}{B}, $runs{$s1}{core}{A})->{med};
    push @targets, ['P6', $what,
                    sprintf('%s (rounds %s–%s); normalised by each'
                            . ' configuration\'s A: %s',
                            pct($r->{med}), pct($r->{lo}), pct($r->{hi}),
                            pct($n)),
                    cpu_ratio($runs{$sl}{core}{B}, $runs{$s1}{core}{B}),
                    '≥ 90%', $r->{med} >= 0.90 ? 'met' : 'NOT met'];
}

# P7 (part): no touch dropped at B's maximum rate.
for my $c (grep { $writer{$_} } @configs) {
    my ($req, $com, $drop, $fail) = @{ $writer{$c} };
    push @targets, ['P7', "touches dropped or failed at full load, $c",
                    sprintf('%d of %d (%.2f%%)', $drop + $fail, $req,
                            $req ? 100 * ($drop + $fail) / $req : 0),
                    '', '0', $drop + $fail ? 'NOT met' : 'met'];
}

print "## Against the GUIDE targets\n\n";
print "| # | ratio | requests/s: ratio of medians (range of the per-round ratios) | from CPU µs/request | target | status (by requests/s) |\n";
print "|---|---|---|---|---|---|\n";
for my $t (@targets) {
    my ($cfgs) = join(' ', $t->[1] =~ /(\d+w-\S+)/g);
    my @cs = split / /, $cfgs;
    @cs = ($s1, $sl) if $t->[0] eq 'P6';
    my $flag = (grep { $noisy{$_} } @cs) ? ' (noisy run)' : '';
    # Which arm a target measures: "new" for the no-cookie ratio, B else.
    my $arm = $t->[0] eq 'P7' ? ''
            : $t->[1] =~ /new visitor/ ? 'new'
            : $t->[1] =~ /^B([cp])\// ? "B$1"
            : $t->[1] =~ /module off/ ? '' : 'B';
    my $invalid = 0;
    for my $c (grep { $arm && $dropped{$_} && $dropped{$_}[2]{$arm} } @cs) {
        $invalid = 1;
        $flag .= sprintf(' (%s: the writer dropped touches during arm %s;'
                         . ' %.1f%% of all touches)', $c, $arm,
                         100 * $dropped{$c}[0] / ($dropped{$c}[1] || 1));
    }
    $t->[5] = 'not valid, met only with drops' if $invalid && $t->[5] eq 'met';
    print "| $t->[0] | $t->[1] | $t->[2] | $t->[3] | $t->[4] | $t->[5]$flag |\n";
}
print "\n\"From CPU µs/request\": the same ratio computed as worker CPU per",
      " request of the baseline ÷ that of the arm, which holds while the",
      " worker is the bottleneck and is far less sensitive to other",
      " processes than requests/s.\n";
print "\nArm B is the GUIDE's full path: signed cookie verified, profile",
      " hit, the bench's rule set, a geo lookup (omni_geoip, client address",
      " from X-Forwarded-For), banner(s) and pixels injected, touchpoint",
      " recorded with the impressions. Arm F is the foundation path alone",
      " (omni_inject off: no decision); the \"new visitor\" arm runs on F's",
      " location.\n";
print "\nArm C is the OpenResty peer (bench/lua/omnic*.lua on Debian's",
      " lua-nginx-module): the same cookie check, profile read, rules, geo,",
      " injection and touches in Lua through FFI, on its own copy of the",
      " store. Ac/A'c/Bc serve the page from a proxy_cache hit, Ap/Bp proxy",
      " it from an upstream server of the same nginx (its work is in the",
      " same worker's CPU, for the baseline and B alike).\n";
