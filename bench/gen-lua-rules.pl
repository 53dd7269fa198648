#!/usr/bin/perl
# Arm C (the OpenResty peer): turns the JSON rules of a rules directory
# (the very files arm B loads: the seed rules of rules/ plus
# bench/gen-rules.pl's) into one Lua module of plain tables, which
# bench/lua/omnic_rules.lua compiles into closures at init_by_lua.
#
#   gen-lua-rules.pl RULES_DIR > rules.lua
#
# What an OpenResty team would do once, at deploy time, so that the
# request path never parses JSON: durations become seconds, dates epoch
# seconds, time zones the UTC offset in force now (a bench run is
# minutes long), rules are sorted in the module's rank order (priority,
# then leaf count, then id: docs/rules.md "Arbitration"), the children of
# every "all" cheapest first, and templates are split into literals and
# variables, each variable with the escaping of where it lands (element
# text or quoted attribute: HTML; URL attribute: URL, with the value's
# scheme checked at render; pixels: URL component; headers: text).
#
# Only what the bench's rule set uses is supported; anything else (an
# unknown condition, operator or template context) is an error naming the
# file, the rule and the key, so that a rule C cannot do is never silently
# dropped from the comparison.
use strict;
use warnings;

use B ();
use JSON::PP;
use POSIX qw(floor);
use Time::Local qw(timegm);

my $dir = shift // die "usage: gen-lua-rules.pl RULES_DIR > rules.lua\n";
-d $dir or die "gen-lua-rules: $dir: not a directory\n";
my $NOW = time();

my (@rules, %catalog, $holdout, $where);
sub fail { die "gen-lua-rules: $where: @_\n" }

# ------------------------------------------------------------ values

sub is_num {
    my $v = shift;
    return 0 if ref $v || !defined $v;
    my $f = B::svref_2object(\$v)->FLAGS;
    return ($f & (B::SVp_IOK | B::SVp_NOK)) && !($f & B::SVp_POK);
}
sub list { my $v = shift; return ref $v eq 'ARRAY' ? [@$v] : [$v]; }
sub set { return { map { $_ => JSON::PP::true } @{ list(shift) } }; }
sub lset { return { map { lc($_) => JSON::PP::true } @{ list(shift) } }; }

sub duration {
    my $v = shift;
    return 0 + $v if is_num($v);
    my ($s, $t) = (0, $v);
    my %u = (s => 1, m => 60, h => 3600, d => 86400, w => 604800);
    while ($t =~ s/^(\d+)([smhdw])//) { $s += $1 * $u{$2}; }
    fail("bad duration \"$v\"") if $t ne '' || $v eq '';
    return $s;
}

# UTC offset (seconds) of a zone now, from the system's tzdata.
my %tzoff;
sub tz_offset {
    my $tz = shift // 'UTC';
    return $tzoff{$tz} //= do {
        my @l = do { local $ENV{TZ} = $tz; POSIX::tzset(); localtime($NOW) };
        POSIX::tzset();
        my $off = timegm(@l[0 .. 5]) - $NOW;
        fail("unknown time zone \"$tz\"")
            unless $tz eq 'UTC' || -e "/usr/share/zoneinfo/$tz";
        $off;
    };
}

# A date (docs/rules.md "Dates") to epoch seconds; a date-only END
# includes that whole day.
sub date {
    my ($v, $tz, $is_end) = @_;
    my ($y, $mo, $d, $h, $mi, $s, $z) = $v =~
        /^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d))?(Z|[+-]\d\d:\d\d)?)?$/
        or fail("bad date \"$v\"");
    my $t = timegm($s // 0, $mi // 0, $h // 0, $d, $mo - 1, $y);
    $t += 86400 if $is_end && !defined $h;
    if (!defined $z) { $t -= tz_offset($tz); }
    elsif ($z ne 'Z') {
        my ($sg, $zh, $zm) = $z =~ /^([+-])(\d\d):(\d\d)$/;
        $t -= ($sg eq '-' ? -1 : 1) * ($zh * 3600 + $zm * 60);
    }
    return $t;
}

sub hhmm {
    my ($h, $m) = (shift // '') =~ /^(\d\d):(\d\d)$/ or fail('bad time of day');
    return $h * 60 + $m;
}

# ------------------------------------------------------------ conditions

# Leaves: [KIND, args...]; groups: ["all"|"any", children...], ["not", c].
# Cost classes order the children of "all" the way the module does:
# request facts and header fields first, sections next, geo, time,
# experiments and regexes last.
my %cost = (channel => 0, segment => 1, stage => 1, account => 1, num => 1,
            attr => 2, last_seen => 2, device => 2, path => 2, query => 2,
            referrer => 2, cart => 3, purchased => 3, viewed => 3, event => 3,
            geo => 5, near => 6, time => 6, experiment => 7, regex => 8);
sub cost {
    my $c = shift;
    my $k = $c->[0];
    return $k eq 'not' ? cost($c->[1]) + 0.5
         : ($k eq 'all' || $k eq 'any') ? 4 + @$c / 100
         : $k eq 'path' && $c->[1] eq 'regex' ? $cost{regex}
         : $cost{$k} // fail("internal: no cost for $k");
}
sub all {
    my @c = sort { cost($a) <=> cost($b) } @_;
    return @c == 1 ? $c[0] : ['all', @c];
}

my @NUMOPS = qw(gt gte lt lte eq ne);
sub numops {    # {gte => 3, lt => 10} -> [[op, v], ...] (in a fixed order)
    my ($h, $prefix, $conv) = @_;
    $prefix //= '';
    my @o;
    for my $op (@NUMOPS) {
        my $k = "$prefix$op";
        push @o, [$op, $conv ? $conv->($h->{$k}) : 0 + $h->{$k}] if exists $h->{$k};
    }
    return @o;
}
sub check_keys {
    my ($h, $what, @ok) = @_;
    my %ok = map { $_ => 1 } @ok;
    for (sort keys %$h) { fail("$what: key \"$_\" not supported by arm C") unless $ok{$_} }
}

my $leaves;
sub cond {
    my ($w, $rtz) = @_;
    fail('a condition must be an object') unless ref $w eq 'HASH';
    my @c;
    for my $k (sort keys %$w) {
        my $v = $w->{$k};
        if ($k eq 'all' || $k eq 'any') {
            my @ch = map { cond($_, $rtz) } @{ list($v) };
            push @c, $k eq 'all' ? all(@ch) : ['any', @ch];
        } elsif ($k eq 'not') {
            push @c, ['not', cond($v, $rtz)];
        } elsif ($k eq 'channel' || $k eq 'stage' || $k eq 'device') {
            $leaves++; push @c, [$k, set($v)];
        } elsif ($k eq 'segment') {
            $leaves++; push @c, ['segment', list($v)];
        } elsif ($k eq 'account') {
            $leaves++; push @c, ['account', $v ? JSON::PP::true : JSON::PP::false];
        } elsif ($k =~ /^(orders|visits|revenue|days_since_(?:purchase|first_seen|last_seen|engagement))$/) {
            check_keys($v, $k, @NUMOPS);
            for my $o (numops($v)) { $leaves++; push @c, ['num', $k, @$o] }
        } elsif ($k eq 'attr') {
            check_keys($v, 'attr', 'key', @NUMOPS, 'in', 'exists', 'prefix');
            for my $op (qw(eq ne in gt gte lt lte exists prefix)) {
                next unless exists $v->{$op};
                my $x = $v->{$op};
                $x = $op eq 'exists' ? ($x ? JSON::PP::true : JSON::PP::false)
                   : ($op eq 'in' || $op eq 'prefix') ? list($x) : $x;
                $leaves++; push @c, ['attr', $v->{key}, $op, $x];
            }
        } elsif ($k eq 'last_seen') {
            check_keys($v, 'last_seen', qw(channel within older_than));
            $leaves++;
            push @c, ['last_seen', $v->{channel} // '',
                      exists $v->{within} ? ('within', duration($v->{within}))
                                          : ('older_than', duration($v->{older_than}))];
        } elsif ($k eq 'cart') {
            check_keys($v, 'cart', 'non_empty', 'contains_sku', 'contains_category',
                       map { ("items_$_", "value_$_", "idle_$_") } @NUMOPS);
            if (exists $v->{non_empty}) {
                $leaves++; push @c, ['cart', 'non_empty', $v->{non_empty} ? JSON::PP::true : JSON::PP::false];
            }
            for my $what (qw(items value)) {
                for my $o (numops($v, "${what}_")) { $leaves++; push @c, ['cart', $what, @$o] }
            }
            for my $o (numops($v, 'idle_', \&duration)) { $leaves++; push @c, ['cart', 'idle', @$o] }
            for my $what (qw(contains_sku contains_category)) {
                next unless exists $v->{$what};
                $leaves++; push @c, ['cart', $what, set($v->{$what})];
            }
        } elsif ($k eq 'purchased') {
            check_keys($v, 'purchased', qw(sku category within older_than));
            $leaves++;
            push @c, ['purchased', exists $v->{sku} ? set($v->{sku}) : JSON::PP::false,
                      exists $v->{category} ? set($v->{category}) : JSON::PP::false,
                      exists $v->{within} ? duration($v->{within}) : -1,
                      exists $v->{older_than} ? duration($v->{older_than}) : -1];
        } elsif ($k eq 'viewed') {
            check_keys($v, 'viewed', qw(sku category within), map { "price_$_" } @NUMOPS);
            $leaves++;
            push @c, ['viewed', exists $v->{sku} ? set($v->{sku}) : JSON::PP::false,
                      exists $v->{category} ? set($v->{category}) : JSON::PP::false,
                      exists $v->{within} ? duration($v->{within}) : -1,
                      [numops($v, 'price_')]];
        } elsif ($k eq 'event') {
            check_keys($v, 'event', 'name', 'within', @NUMOPS);
            my @o = numops($v);
            @o = (['gte', 1]) unless @o;
            $leaves++;
            push @c, ['event', $v->{name}, exists $v->{within} ? duration($v->{within}) : -1, \@o];
        } elsif ($k eq 'path') {
            check_keys($v, 'path', qw(prefix eq regex));
            for my $op (qw(prefix eq regex)) {
                next unless exists $v->{$op};
                $leaves++; push @c, ['path', $op, $op eq 'regex' ? $v->{$op} : list($v->{$op})];
            }
        } elsif ($k eq 'query' || $k eq 'utm_source') {
            my $q = $k eq 'utm_source' ? { arg => 'utm_source', eq => $v } : $v;
            check_keys($q, 'query', qw(arg eq prefix exists));
            for my $op (qw(eq prefix exists)) {
                next unless exists $q->{$op};
                $leaves++;
                push @c, ['query', $q->{arg}, $op, $op eq 'exists' ? ($q->{$op} ? JSON::PP::true : JSON::PP::false) : list($q->{$op})];
            }
        } elsif ($k eq 'referrer') {
            check_keys($v, 'referrer', qw(host prefix exists));
            for my $op (qw(host prefix exists)) {
                next unless exists $v->{$op};
                $leaves++;
                push @c, ['referrer', $op, $op eq 'exists' ? ($v->{$op} ? JSON::PP::true : JSON::PP::false) : list($v->{$op})];
            }
        } elsif ($k eq 'geo') {
            check_keys($v, 'geo', qw(country region city near));
            for my $f (qw(country region city)) {
                next unless exists $v->{$f};
                $leaves++; push @c, ['geo', $f, lset($v->{$f})];
            }
            if (my $n = $v->{near}) {
                $leaves++;
                push @c, ['near', 0 + $n->{km}, [map { {
                    id => $_->{id}, name => $_->{name}, lat => 0 + $_->{lat},
                    lon => 0 + $_->{lon}, address => $_->{address} // '',
                    url => $_->{url} // '' } } @{ $n->{stores} }]];
            }
        } elsif ($k eq 'time') {
            check_keys($v, 'time', qw(tz weekdays hours after before));
            my %wd = (sun => 0, mon => 1, tue => 2, wed => 3, thu => 4, fri => 5, sat => 6);
            $leaves++;
            push @c, ['time', tz_offset($v->{tz} // $rtz),
                      $v->{weekdays} ? { map { ($wd{$_} // fail("weekday $_")) => JSON::PP::true } @{ list($v->{weekdays}) } } : JSON::PP::false,
                      $v->{hours} ? hhmm($v->{hours}{from}) : -1,
                      $v->{hours} ? hhmm($v->{hours}{to}) : -1,
                      exists $v->{after} ? date($v->{after}, $v->{tz} // $rtz) : -1,
                      exists $v->{before} ? date($v->{before}, $v->{tz} // $rtz) : -1];
        } elsif ($k eq 'experiment') {
            check_keys($v, 'experiment', qw(id from to));
            $leaves++;
            push @c, ['experiment', $v->{id}, $v->{from} * 100, $v->{to} * 100];
        } else {
            fail("condition \"$k\" not supported by arm C");
        }
    }
    return all(@c);
}

# ------------------------------------------------------------ templates

my %URL_ATTR = map { $_ => 1 } qw(href src action formaction poster cite
    background longdesc usemap lowsrc dynsrc manifest ping xlink:href
    codebase icon profile data archive classid);

# A variable: bare names are attributes; defaults as given (quoted or not).
sub var {
    my ($spec, $mode) = @_;
    my ($name, $def) = $spec =~ /^\s*([^|]+?)\s*(?:\|(.*))?$/s or fail("bad variable {{$spec}}");
    if (defined $def) {
        $def =~ s/^\s+|\s+$//g unless $def =~ /^\s*"/;
        $def = $1 if $def =~ /^\s*"(.*)"\s*$/s;
    }
    $name = "attr.$name" unless $name =~ /^(attr|profile|cart|viewed|purchased|geo|rule)\./
                                || $name eq 'channel';
    return { v => $name, m => $mode, defined $def ? (d => $def) : () };
}

# Splits "lit {{var}} lit" into parts, the variables all of mode MODE.
sub split_vars {
    my ($s, $mode) = @_;
    my @p;
    while ($s =~ /\G(.*?)\{\{(.*?)\}\}/gcs) {
        push @p, $1 if length $1;
        push @p, var($2, $mode);
    }
    my $rest = substr($s, pos($s) // 0);
    push @p, $rest if length $rest;
    return \@p;
}

# An HTML template: a small tokenizer finds each variable's context:
# element text and quoted attributes are HTML-escaped; in a URL
# attribute, a variable at the start of the value is a whole URL
# (url_full), one after literal text a URL component (url_part), and the
# finished value is checked (http, https or a path) at render time.
sub html_tmpl {
    my $s = shift;
    my @p;
    my $lit = '';
    my $flush = sub { push @p, $lit if length $lit; $lit = '' };
    pos($s) = 0;
    while (pos($s) < length $s) {
        if ($s =~ /\G\{\{(.*?)\}\}/gcs) {
            $flush->();
            push @p, var($1, 'html');
        } elsif ($s =~ /\G(<[a-zA-Z][\w-]*)/gc) {
            $lit .= $1;
            # Inside a tag: attributes until '>'.
            while (1) {
                if ($s =~ /\G(\s*>)/gc) { $lit .= $1; last }
                elsif ($s =~ /\G(\s+([\w:-]+)\s*=\s*")/gc) {
                    my $attr = lc $2;
                    $lit .= $1;
                    $s =~ /\G([^"]*)"/gc or fail('unterminated attribute');
                    my $val = $1;
                    if ($val !~ /\{\{/) { $lit .= "$val\""; next }
                    fail("variable in attribute \"$attr\"")
                        if $attr =~ /^on|^(style|srcdoc|srcset)$/;
                    if ($URL_ATTR{$attr}) {
                        my $parts = split_vars($val, 'url_part');
                        $parts->[0]{m} = 'url_full' if ref $parts->[0];
                        $flush->();
                        push @p, { url => $parts };
                        $lit .= '"';
                    } else {
                        $flush->();
                        push @p, @{ split_vars($val, 'html') };
                        $lit .= '"';
                    }
                } elsif ($s =~ /\G(\s+[\w:-]+)/gc) { $lit .= $1 }
                else { fail('unsupported tag syntax in template') }
            }
        } elsif ($s =~ /\G([^<{]+|<|\{)/gc) {
            $lit .= $1;
        }
    }
    $flush->();
    return \@p;
}

# ------------------------------------------------------------ rules

sub leafcount { $leaves = 0; my $c = cond(@_); return ($c, $leaves); }

sub add_rule {
    my ($r, $file) = @_;
    $where = "$file: rule \"" . ($r->{id} // '?') . '"';
    check_keys($r, 'rule', qw(id description campaign priority enabled start end tz
                               when skus cap cooldown suppress holdout banner
                               pixels headers));
    my $tz = $r->{tz} // 'UTC';
    my %o = (id => $r->{id}, campaign => $r->{campaign} // $r->{id},
             priority => 0 + ($r->{priority} // 0));
    $o{enabled} = (!exists $r->{enabled} || $r->{enabled}) ? JSON::PP::true : JSON::PP::false;
    $o{start} = date($r->{start}, $tz) if exists $r->{start};
    $o{stop} = date($r->{end}, $tz, 1) if exists $r->{end};
    my ($when, $n) = $r->{when} ? leafcount($r->{when}, $tz) : (undef, 0);
    $o{when} = $when if $when;
    $o{leaves} = $n;
    # Suppression: by default, the advertised skus.
    my $sup = $r->{suppress} // ($r->{skus} ? { purchased => 'advertised' } : undef);
    if ($sup && !(($sup->{purchased} // '') eq 'none')) {
        my $p = $sup->{purchased};
        $o{suppress} = {
            skus => set(defined $p && !ref $p && $p eq 'advertised' ? ($r->{skus} // []) : ($p // [])),
            cats => set($sup->{category} // []),
            within => exists $sup->{within} ? duration($sup->{within}) : -1,
        };
    }
    if (my $c = $r->{cap}) {
        $o{cap} = { max => 0 + $c->{max}, per => exists $c->{per} ? duration($c->{per}) : -1 };
    }
    $o{cooldown} = duration($r->{cooldown}) if exists $r->{cooldown};
    if (my $h = $r->{holdout}) {
        $o{holdout} = { id => $h->{id} // $o{campaign}, bp => $h->{percent} * 100 };
    }
    if (my $b = $r->{banner}) {
        $o{banner} = { slot => $b->{slot}, html => html_tmpl($b->{html}) };
    }
    if (my $px = $r->{pixels}) {
        $o{pixels} = [map {
            my ($t) = grep { /^(img|script)$/ } keys %$_ or fail('pixel: img or script');
            { type => $t, url => split_vars($_->{$t}, 'url_part') }
        } @$px];
    }
    if (my $h = $r->{headers}) {
        $o{headers} = [map { { name => $_, value => split_vars($h->{$_}, 'text') } } sort keys %$h];
    }
    push @rules, \%o;
}

opendir(my $dh, $dir) or die "gen-lua-rules: $dir: $!\n";
for my $f (sort grep { /^[^.].*\.json$/ && -f "$dir/$_" } readdir $dh) {
    $where = "$dir/$f";
    open(my $fh, '<', "$dir/$f") or die "gen-lua-rules: $dir/$f: $!\n";
    my $doc = eval { JSON::PP->new->decode(do { local $/; <$fh> }) }
        or fail("not JSON: $@");
    my @r;
    if (ref $doc eq 'ARRAY') { @r = @$doc }
    elsif (exists $doc->{rules}) {
        @r = @{ $doc->{rules} };
        %catalog = (%catalog, %{ $doc->{catalog} }) if $doc->{catalog};
        if (my $h = $doc->{settings} && $doc->{settings}{holdout}) {
            $holdout = { id => $h->{id}, bp => $h->{percent} * 100 };
        }
    } else { @r = ($doc) }
    add_rule($_, "$dir/$f") for @r;
}

# The module's rank order: priority, then more leaf conditions, then id.
@rules = sort { $b->{priority} <=> $a->{priority} || $b->{leaves} <=> $a->{leaves}
                || $a->{id} cmp $b->{id} } @rules;

# ------------------------------------------------------------ Lua output

sub lua {
    my $v = shift;
    if (ref $v eq 'HASH') {
        return '{' . join(', ', map { '[' . lua_str($_) . '] = ' . lua($v->{$_}) } sort keys %$v) . '}';
    }
    if (ref $v eq 'ARRAY') { return '{' . join(', ', map { lua($_) } @$v) . '}' }
    if (JSON::PP::is_bool($v)) { return $v ? 'true' : 'false' }
    return 'nil' unless defined $v;
    return is_num($v) ? (0 + $v) : lua_str($v);
}
sub lua_str {
    my $s = shift;
    utf8::encode($s) if utf8::is_utf8($s);
    $s =~ s/([\\"])/\\$1/g;
    $s =~ s/([^\x20-\x7e])/sprintf('\\%03d', ord $1)/ge;
    return "\"$s\"";
}

print "-- Generated by bench/gen-lua-rules.pl from $dir at $NOW: do not edit.\n";
print "return {\n";
print "  generated = $NOW,\n";
print '  holdout = ', lua($holdout), ",\n";
print '  catalog = ', lua(\%catalog), ",\n";
print "  rules = {\n";
print '    ', lua($_), ",\n" for @rules;
print "  },\n}\n";
printf STDERR "gen-lua-rules: %d rules, %d catalog entries\n", scalar @rules, scalar keys %catalog;
