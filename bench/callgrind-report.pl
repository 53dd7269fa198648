#!/usr/bin/perl
# The report of bench/callgrind.sh: instructions per request by arm and by
# part of the module's request path, from callgrind's dumps.
#
#   callgrind-report.pl N DIR ARM...
#
# DIR holds callgrind.out.PID.K-TT: dump K (1 for the first arm, ...) of
# thread TT (01: the event loop; the others: the thread pool, where the
# writer runs).  Costs are inclusive (a function and what it calls),
# computed from the call graph: self cost plus the inclusive cost of every
# call, recursion excluded.  Parts do not overlap; "nginx and the rest" is
# the event loop's total minus the module's parts.  The next header and
# body filters that the module's filters call (nginx's static functions,
# shown by address) are nginx's work, not the module's.
use strict;
use warnings;

my ($n, $dir, @arms) = @ARGV;
die "usage: callgrind-report.pl N DIR ARM...\n" unless @arms;

# Parses one callgrind file: self cost and call edges, by function name.
sub parse {
    my ($file) = @_;
    my (%fnname, %obname, %self, %edge, %obj, $fn, $ob, $cfn, $cob, $incall);
    my $total = 0;

    open(my $fh, '<', $file) or die "$file: $!";
    while (my $l = <$fh>) {
        if ($l =~ /^summary:\s*(\d+)/) {
            $total = $1;
        } elsif ($l =~ /^ob=\((\d+)\)(?: (.*))?$/) {
            $obname{$1} = $2 if defined $2;
            $ob = $obname{$1};
        } elsif ($l =~ /^cob=\((\d+)\)(?: (.*))?$/) {
            $obname{$1} = $2 if defined $2;
            $cob = $obname{$1};
        } elsif ($l =~ /^fn=\((\d+)\)(?: (.*))?$/) {
            $fnname{$1} = $2 if defined $2;
            $fn = key($fnname{$1}, $ob);
            $obj{$fn} = $ob;
            $cob = undef;
        } elsif ($l =~ /^cfn=\((\d+)\)(?: (.*))?$/) {
            $fnname{$1} = $2 if defined $2;
            $cfn = key($fnname{$1}, $cob // $ob);
            $obj{$cfn} //= $cob // $ob;
        } elsif ($l =~ /^calls=/) {
            $incall = 1;
        } elsif ($l =~ /^[+\-*]?\d*\s+(\d+)\s*$/) {
            if ($incall) {
                $edge{$fn}{$cfn} += $1 if $cfn ne $fn;
                $incall = 0;
                $cob = undef;
            } else {
                $self{$fn} += $1;
            }
        }
    }
    close($fh);

    my %inc;
    for my $f (keys %self, keys %edge) {
        next if exists $inc{$f};
        my $c = $self{$f} // 0;
        $c += $_ for values %{ $edge{$f} || {} };
        $inc{$f} = $c;
    }

    return { total => $total, inc => \%inc, edge => \%edge, obj => \%obj };
}

# Unnamed functions (addresses) are named by their object too.
sub key {
    my ($name, $ob) = @_;
    $name =~ s/\.(?:part|isra|constprop|cold)\.\d+//g;
    return $name if $name !~ /^0x/;
    (my $o = $ob // '?') =~ s{.*/}{};
    return "$o:$name";
}

sub inc {
    my ($p, @f) = @_;
    my $c = 0;
    $c += $p->{inc}{$_} // 0 for @f;
    return $c;
}

# What the module's filters hand to nginx's next filters.
sub next_filters {
    my ($p, @f) = @_;
    my $c = 0;
    for my $f (@f) {
        my $e = $p->{edge}{$f} or next;
        for my $callee (keys %$e) {
            $c += $e->{$callee} if $callee =~ /^nginx:0x/;
        }
    }
    return $c;
}

sub files {
    my ($k) = @_;
    opendir(my $d, $dir) or die "$dir: $!";
    my @f = sort grep { /^callgrind\.out\.\d+\.$k-\d+$/ } readdir($d);
    closedir($d);
    return map { "$dir/$_" } @f;
}

my @render = qw(omni_render_slot_html omni_render_pixels_html
                omni_render_shown omni_render_header
                omni_render_decision_json omni_render_text);
my @rows;
my %col;

for my $k (1 .. @arms) {
    my $arm = $arms[$k - 1];
    my @f = files($k);
    die "no dump $k for arm $arm in $dir\n" unless @f;
    my ($main) = grep { /-01$/ } @f;
    my $p = parse($main);
    my $pool = 0;
    for my $t (grep { !/-01$/ } @f) {
        open(my $fh, '<', $t) or die;
        while (<$fh>) { if (/^summary:\s*(\d+)/) { $pool += $1; last } }
        close($fh);
    }

    my %c;
    $c{total} = $p->{total};
    $c{identity} = inc($p, 'ngx_http_omni_identify_handler');
    $c{hmac} = inc($p, 'omni_token_verify');
    $c{decision} = inc($p, 'ngx_http_omni_decide');
    # The snapshot's fold position (meta "queue"): a store read, wherever
    # asked (ngx_http_omni_read_snap() or, before it, directly).
    my $snapf = exists $p->{inc}{ngx_http_omni_read_snap}
                ? 'ngx_http_omni_read_snap' : 'omni_store_read_queue_pos';
    my $overlay_snap = $p->{edge}{ngx_http_omni_activity_overlay}{$snapf}
                       // 0;
    $c{activity} = inc($p, qw(ngx_http_omni_activity_get
                              ngx_http_omni_activity_overlay))
                   - $overlay_snap;
    $c{read} = inc($p, qw(ngx_http_omni_read_begin ngx_http_omni_lookup
                          omni_store_read_end), $snapf)
               - inc($p, 'ngx_http_omni_activity_overlay');
    $c{geo} = inc($p, 'ngx_http_omni_geo_lookup');
    $c{rules} = inc($p, qw(omni_decide omni_decision_caps_hold)) - $c{geo};
    $c{render} = inc($p, @render);
    $c{decision_other} = $c{decision} - $c{activity} - $c{read} - $c{geo}
                         - $c{rules} - $c{render};
    $c{header} = inc($p, 'ngx_http_omni_header_filter')
                 - next_filters($p, 'ngx_http_omni_header_filter')
                 - $c{decision};
    $c{body} = inc($p, 'ngx_http_omni_body_filter')
               - next_filters($p, 'ngx_http_omni_body_filter',
                              'ngx_http_omni_output');
    $c{log} = inc($p, 'ngx_http_omni_log_handler');
    $c{metrics} = inc($p, 'ngx_http_omni_metrics_log');
    $c{module} = $c{identity} + $c{decision} + $c{header} + $c{body}
                 + $c{log} + $c{metrics};
    $c{nginx} = $c{total} - $c{module};
    $c{pool} = $pool;
    $col{$arm} = \%c;
}

my @parts = (
    [ total          => 'event loop, all' ],
    [ nginx          => 'nginx and the rest (not under a module function)' ],
    [ module         => 'the module, all parts below' ],
    [ identity       => 'identity (rewrite phase: cookie parse, verify)' ],
    [ hmac           => '  of which the cookie HMAC (omni_token_verify)' ],
    [ decision       => 'decision (ngx_http_omni_decide), all' ],
    [ read           => '  store read (txn, alias, profile, queue pos)' ],
    [ activity       => '  activity table (overlay, pending impressions)' ],
    [ rules          => '  rules (omni_decide, caps check), without geo' ],
    [ geo            => '  geo lookup' ],
    [ render         => '  render (slots, pixels, shown lists)' ],
    [ decision_other => '  the rest of the decision (pool copies, ...)' ],
    [ header         => 'header filter, without the decision' ],
    [ body           => 'body filter (injection), without next filters' ],
    [ log            => 'log phase: consent, touch queued' ],
    [ metrics        => 'log phase: metrics' ],
    [ pool           => 'thread pool (the writer), all threads' ],
);

print "Instructions per request (callgrind Ir / $n requests):\n\n";
print "| part | ", join(' | ', @arms), " |\n";
print "|---|", join('|', map { '---:' } @arms), "|\n";
for my $row (@parts) {
    my ($k, $label) = @$row;
    print "| $label | ",
        join(' | ', map { sprintf('%.0f', $col{$_}{$k} / $n) } @arms), " |\n";
}
if ($col{A}) {
    for my $arm (grep { $_ ne 'A' } @arms) {
        printf "\n%s - A, event loop: %.0f instructions per request\n", $arm,
            ($col{$arm}{total} - $col{A}{total}) / $n;
    }
}
