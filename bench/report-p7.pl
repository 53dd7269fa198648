#!/usr/bin/perl
# The "Touchpoints and events (P7)" part of bench/run.sh's report: the
# writer in nginx (touchpoints committed per arm, from the feed's sequence
# numbers, and the workers' drop counters), the events arm, the writer
# outside nginx (bench/writer.sh), each against GUIDE P7.
#
#   report-p7.pl RUNS_TSV HEALTH_TSV EVENTS_TSV FSYNC_TXT WRITER_MD NOISE_MAX CONNS \
#                EVENTS_WRITER_TXT
#
# Missing or empty files leave their part out.
use strict;
use warnings;

my ($runs_f, $health_f, $events_f, $fsync_f, $writer_f, $noise_max, $conns,
    $evw_f) = @ARGV;
$noise_max //= 15;
$conns //= 32;

sub median {
    my @v = sort { $a <=> $b } grep { defined } @_;
    return undef unless @v;
    my $n = @v;
    return $n % 2 ? $v[$n / 2] : ($v[$n / 2 - 1] + $v[$n / 2]) / 2;
}
sub minmax { my @v = sort { $a <=> $b } @_; return ($v[0], $v[-1]); }
sub num { my $n = sprintf('%.0f', shift); 1 while $n =~ s/^(\d+)(\d{3})/$1,$2/; return $n; }
sub tsv {
    my $f = shift;
    open(my $fh, '<', $f) or return ();
    my $h = <$fh> // return ();
    chomp $h;
    my @c = split /\t/, $h;
    my @rows;
    while (<$fh>) {
        chomp;
        my %r;
        @r{@c} = split /\t/;
        push @rows, \%r;
    }
    return @rows;
}

my %health;
if ($health_f && open(my $hf, '<', $health_f)) {
    while (<$hf>) {
        chomp;
        my ($c, $req, $com, $drop, $fail, $arms) = split /\t/;
        $health{$c} = { req => $req, com => $com, drop => $drop, fail => $fail,
                        arms => $arms // '' };
    }
}

my @verdicts;
print "## Touchpoints and events (P7)\n\n";

# ---- the writer in nginx ----

my @runs = grep { ($_->{phase} // 'warm') ne 'warm' && defined $_->{touchpoints}
                  && $_->{touchpoints} ne '' } tsv($runs_f);
my (@cfgs, %seen, %by);
for my $r (@runs) {
    push @cfgs, $r->{config} unless $seen{$r->{config}}++;
    push @{ $by{$r->{config}}{$r->{arm}} }, $r;
}

if (@cfgs) {
    print "### The writer in nginx: touchpoints committed per arm\n\n";
    print "For each measured run of an arm that records touches, the writer's",
          " committed touchpoints are the growth of the feed's last sequence",
          " number from just before wrk starts to when the writer has drained",
          " its queue; wrk counts the requests answered. Requests still in",
          " flight when wrk stops (at most $conns per run) are recorded but",
          " not counted as answered, so \"recorded\" is at least 100% when",
          " nothing is dropped; \"dropped in these runs\" is the sum over the",
          " runs of answered − committed where that is positive. The drop",
          " counter is the workers' own (\"writer exit: N committed, D",
          " dropped\"), for the whole configuration (warm-ups and every arm",
          " included). Writer CPU: the worker's CPU time outside its event",
          " loop thread (the thread-pool threads) per committed touchpoint.\n\n";
    print "| config | arm | requests answered | touchpoints committed | recorded | dropped in these runs | touchpoints/s (median) | writer CPU µs per touchpoint | drop counter of the configuration |\n";
    print "|---|---|---:|---:|---:|---:|---:|---:|---:|\n";
    my @notes;
    for my $c (@cfgs) {
        my $h = $health{$c};
        my $cfg_drop = 0;
        for my $arm (grep { $by{$c}{$_} } qw(B F new)) {
            my @l = @{ $by{$c}{$arm} };
            my ($req, $tp, $drop, $wcpu) = (0, 0, 0, 0);
            my @rate;
            for my $r (@l) {
                $req += $r->{requests};
                $tp += $r->{touchpoints};
                $drop += $r->{requests} - $r->{touchpoints}
                    if $r->{requests} > $r->{touchpoints};
                my $secs = $r->{requests} / ($r->{rps} || 1);
                push @rate, $r->{touchpoints} / ($secs || 1);
                $wcpu += ($r->{cpu_us_req} - $r->{cpu_main_us_req}) * $r->{requests};
            }
            my $counter = $h ? sprintf('%s dropped, %s failed of %s', num($h->{drop}),
                                       num($h->{fail}), num($h->{com} + $h->{drop} + $h->{fail}))
                             : 'n/a';
            $cfg_drop += $drop;
            printf "| %s | %s | %s | %s | %.2f%% | %s | %s | %.1f | %s |\n",
                $c, $arm, num($req), num($tp), $req ? 100 * $tp / $req : 0,
                num($drop), num(median(@rate)), $tp ? $wcpu / $tp : 0, $counter;
            if ($arm eq 'B') {
                my $ok = $drop == 0 && $tp >= $req;
                my $exact = $h && $h->{drop} + $h->{fail} == 0;
                push @verdicts, ['P7', "every request recorded at B's maximum rate, $c",
                    sprintf('B: %s requests answered, %s touchpoints committed, %s dropped in B\'s runs; drop counter of %s: %s',
                            num($req), num($tp), num($drop), $c, $counter),
                    'every request, drops 0',
                    $ok && $exact ? 'met'
                    : $ok ? 'met for B (drops elsewhere in the configuration: ' . ($h->{arms} || 'warm-ups or between runs') . ')'
                    : 'NOT met'];
            }
        }
        push @notes, sprintf('%s: the runs lack %s touchpoints, more than the'
                             . ' drop counter (%s): some were committed after'
                             . ' their run was counted.', $c, num($cfg_drop),
                             num($h->{drop} + $h->{fail}))
            if $h && $cfg_drop > $h->{drop} + $h->{fail};
    }
    print "\n";
    print "Note: $_\n" for @notes;
    print "\n" if @notes;
}

# ---- the events arm ----

my @ev = grep { ($_->{phase} // 'warm') ne 'warm' } tsv($events_f);
my %fs;
if ($fsync_f && open(my $ff, '<', $fsync_f)) {
    while (<$ff>) {
        next unless /^FSYNC mode=(\S+) (.*)/;
        my ($m, $rest) = ($1, $2);
        my %kv = $rest =~ /(\w+)=(\S+)/g;
        $fs{$m} = \%kv;
    }
}

if (@ev) {
    my ($cfg) = $ev[0]{config};
    my %lv;
    push @{ $lv{$_->{conns}} }, $_ for @ev;
    my $f50 = $fs{overwrite} ? $fs{overwrite}{p50_us} : undef;
    my $wline = '';
    if ($evw_f && open(my $wf, '<', $evw_f)) {
        $wline = <$wf> // '';
        chomp $wline;
    }
    print "### Durable events: omni_events with group commit ($cfg)\n\n";
    print "One worker (CPU 0), wrk on CPU 1 POSTing one client event per",
          " request (`bench/events.lua`: a signed visitor cookie, \"Product",
          " Added\" with a unique messageId), each answered once its batch is",
          " committed (not synced) and its events appended to the event",
          " journal and synced there (one fdatasync() of a journal segment;",
          " the store is synced at checkpoints, every second, in another",
          " thread). Medians over the rounds;",
          " every event answered 200 \"accepted\" was then found in the feed",
          " (source client, its messageId).\n\n";
    if (%fs) {
        printf "A bare fdatasync() on the store's filesystem (`writer-bench --fsync`,"
             . " %d samples each): 4 KiB overwritten in place p50 %d µs, p90 %d µs,"
             . " p99 %d µs, max %d µs; 4 KiB appended (the file grows) p50 %d µs,"
             . " p99 %d µs.\n\n",
            $fs{overwrite}{count}, $fs{overwrite}{p50_us}, $fs{overwrite}{p90_us},
            $fs{overwrite}{p99_us}, $fs{overwrite}{max_us},
            $fs{append}{p50_us}, $fs{append}{p99_us};
    }
    print "| connections | events/s (median) | range | p50 µs | p90 µs | p99 µs | max µs | p99 ÷ bare fsync p99 | worker CPU µs/event | of which event loop | other CPU | answered 200 | in the feed | runs |\n";
    print "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    my ($p99_one, $c_one, $all_ok, $noisy) = (undef, undef, 1, 0);
    for my $c (sort { $a <=> $b } keys %lv) {
        my @l = @{ $lv{$c} };
        my ($lo, $hi) = minmax(map { $_->{rps} } @l);
        my $p99 = median(map { $_->{p99_us} } @l);
        my $other = median(map { $_->{other_cpu_pct} } @l);
        $noisy = 1 if $other > $noise_max;
        my $acc = 0; $acc += $_->{accepted} for @l;
        my $sto = 0; $sto += $_->{stored} for @l;
        my $mis = 0; $mis += $_->{missing} for @l;
        $all_ok = 0 if $mis;
        my $fp99 = $fs{overwrite} ? $fs{overwrite}{p99_us} : 0;
        printf "| %d | **%s** | %s–%s | %s | %s | **%s** | %s | %s | %.1f | %.1f | %.0f%% | %s | %s | %d |\n",
            $c, num(median(map { $_->{rps} } @l)), num($lo), num($hi),
            num(median(map { $_->{p50_us} } @l)), num(median(map { $_->{p90_us} } @l)),
            num($p99), num(median(map { $_->{max_us} } @l)),
            $fp99 ? sprintf('%.1f×', $p99 / $fp99) : 'n/a',
            median(map { $_->{cpu_us_req} } @l), median(map { $_->{cpu_main_us_req} } @l),
            $other, num($acc), $mis ? "**$mis missing**" : 'all ' . num($sto), scalar @l;
        ($p99_one, $c_one) = ($p99, $c) unless defined $p99_one;
    }
    print "\n";
    print "Writer: $wline.\n\n" if $wline;
    if ($fs{overwrite} && defined $p99_one) {
        my $lim = $fs{overwrite}{p99_us};
        push @verdicts, ['P7', "a durable event's p99 bounded by one fsync ($cfg)",
            sprintf('p99 %s µs at %d connection(s) (the fewest measured) against a bare fdatasync p99 of %s µs (p50 %s µs)',
                    num($p99_one), $c_one, num($lim), num($fs{overwrite}{p50_us})),
            'p99 ≤ one fsync', ($p99_one <= $lim ? 'met' : 'NOT met') . ($noisy ? ' (noisy run)' : '')];
    }
    push @verdicts, ['P7', "every event answered 200 is in the store ($cfg)",
        $all_ok ? 'yes, every one' : 'NO', 'all', $all_ok ? 'met' : 'NOT met'];
}

# ---- the writer outside nginx ----

if ($writer_f && -s $writer_f) {
    open(my $wf, '<', $writer_f) or die "$writer_f: $!\n";
    my $md = do { local $/; <$wf> };
    print "### The writer outside nginx (`bench/writer.sh`)\n\n", $md, "\n";
    my ($best, $bl, $bb) = (0, '', '');
    my @rows = $md =~ /^\| (\S+) \| (\d+) \| \*\*(\d+)\*\*/mg;
    my %at;
    while (my ($l, $b, $r) = splice(@rows, 0, 3)) {
        ($best, $bl, $bb) = ($r, $l, $b) if $r > $best;
        $at{$l}{$b} = $r;
    }
    # GUIDE P7 at 1M profiles: the log's rate (log first) and the whole
    # writer's (log and fold) CPU per touch.
    my ($log1m) = sort { $b <=> $a } values %{ $at{'1M/log'} // {} };
    my ($fold1m) = values %{ $at{'1M/fold'} // {} };
    my ($batch1m) = sort { $b <=> $a } values %{ $at{'1M/batch'} // {} };
    if (defined $log1m) {
        push @verdicts, ['P7', 'the writer commits ≥ 300k touches/s at 1M profiles (outside nginx, log at its limit)',
            sprintf('log first: %s touches/s; with the fold (10k active visitors): %s; every batch folding (the old writer): %s',
                    num($log1m), defined $fold1m ? num($fold1m) : '?',
                    defined $batch1m ? num($batch1m) : '?'),
            '≥ 300,000', $log1m >= 300000 ? 'met (log)' : 'NOT met'];
    }
    my %cpu;
    while ($md =~ /^\| (1M\/\w+) \| (\d+) \| \*\*\d+\*\* \| [^|]+ \| [^|]+ \| ([\d.]+) \|/mg) {
        $cpu{$1} = $3 if !defined $cpu{$1} || $3 < $cpu{$1};
    }
    if (%cpu) {
        push @verdicts, ['P7', 'writer CPU per touch at 1M profiles',
            join('; ', map { "$_: $cpu{$_} µs" } sort keys %cpu),
            '≤ 2 µs', ($cpu{'1M/fold'} // 99) <= 2 ? 'met' : (($cpu{'1M/log'} // 99) <= 2 ? 'met for the log; NOT with the fold' : 'NOT met')];
    }
}

if (@verdicts) {
    print "### Against P7\n\n";
    print "| # | what | measured | target | status |\n|---|---|---|---|---|\n";
    print "| $_->[0] | $_->[1] | $_->[2] | $_->[3] | $_->[4] |\n" for @verdicts;
    print "\n";
}
