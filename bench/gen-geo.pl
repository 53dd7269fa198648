#!/usr/bin/perl
# Writes the bench's MaxMind DB and the client addresses wrk sends in
# X-Forwarded-For (bench/run.sh, arm B: the geo lookup of omni_geoip).
#
#   gen-geo.pl OUT.mmdb OUT-ips.txt [NETWORKS]
#
# NETWORKS (default 4096) /24 networks spread over the IPv4 space, each a
# city of the list below with its location jittered by up to ~4 km, in
# the full GeoLite2-City layout (continent, country, registered_country,
# subdivisions, city, location, postal; names in 8 languages), so that
# MMDB_aget_value() walks records of the real size, not toy ones.  A few
# networks carry a country only, as in the real database.
#
# OUT-ips.txt: one address per network, plus about 4% of addresses that
# are in no network ("no geo"), shuffled (fixed seed: deterministic).
# About 11% of them are within 25 km of one of the seed showroom stores
# (rules/showroom.json).
#
# Built with Debian's libmaxmind-db-writer-perl, like t/lib/OmniGeo.pm
# (which verifies every entry with mmdblookup, too slow for thousands of
# networks); here a few addresses are checked.
use strict;
use warnings;

use MaxMind::DB::Writer::Tree;

my ($out, $ips_out, $nnet) = @ARGV;
die "usage: gen-geo.pl OUT.mmdb OUT-ips.txt [NETWORKS]\n" unless $ips_out;
$nnet //= 4096;
die "NETWORKS must be between 16 and 60000\n" if $nnet < 16 || $nnet > 60000;

# name, country, continent, subdivision, lat, lon, tz, weight
my @cities = (
    ['Lisbon',    'PT', 'EU', '11',  38.7223,  -9.1393, 'Europe/Lisbon',       5],
    ['Porto',     'PT', 'EU', '13',  41.1579,  -8.6291, 'Europe/Lisbon',       2],
    ['Coimbra',   'PT', 'EU', '06',  40.2033,  -8.4103, 'Europe/Lisbon',       1],
    ['Paris',     'FR', 'EU', 'IDF', 48.8566,   2.3522, 'Europe/Paris',        2],
    ['Lyon',      'FR', 'EU', 'ARA', 45.7640,   4.8357, 'Europe/Paris',        2],
    ['Madrid',    'ES', 'EU', 'MD',  40.4168,  -3.7038, 'Europe/Madrid',       4],
    ['Barcelona', 'ES', 'EU', 'CT',  41.3874,   2.1686, 'Europe/Madrid',       3],
    ['Berlin',    'DE', 'EU', 'BE',  52.5200,  13.4050, 'Europe/Berlin',       5],
    ['Munich',    'DE', 'EU', 'BY',  48.1351,  11.5820, 'Europe/Berlin',       3],
    ['London',    'GB', 'EU', 'ENG', 51.5072,  -0.1276, 'Europe/London',       6],
    ['Amsterdam', 'NL', 'EU', 'NH',  52.3676,   4.9041, 'Europe/Amsterdam',    3],
    ['Milan',     'IT', 'EU', '25',  45.4642,   9.1900, 'Europe/Rome',         3],
    ['Vienna',    'AT', 'EU', '9',   48.2082,  16.3738, 'Europe/Vienna',       2],
    ['Zurich',    'CH', 'EU', 'ZH',  47.3769,   8.5417, 'Europe/Zurich',       2],
    ['New York',  'US', 'NA', 'NY',  40.7128, -74.0060, 'America/New_York',   10],
    ['Chicago',   'US', 'NA', 'IL',  41.8781, -87.6298, 'America/Chicago',     6],
    ['Seattle',   'US', 'NA', 'WA',  47.6062,-122.3321, 'America/Los_Angeles', 4],
    ['Toronto',   'CA', 'NA', 'ON',  43.6532, -79.3832, 'America/Toronto',     4],
    ['Sao Paulo', 'BR', 'SA', 'SP', -23.5505, -46.6333, 'America/Sao_Paulo',   6],
    ['Tokyo',     'JP', 'AS', '13',  35.6762, 139.6503, 'Asia/Tokyo',          5],
    ['Sydney',    'AU', 'OC', 'NSW',-33.8688, 151.2093, 'Australia/Sydney',    3],
);
my %continent_name = (EU => 'Europe', NA => 'North America',
                      SA => 'South America', AS => 'Asia', OC => 'Oceania');
my @langs = qw(de en es fr ja pt-BR ru zh-CN);

my %TYPES = (
    city => 'map', continent => 'map', country => 'map', location => 'map',
    postal => 'map', registered_country => 'map', names => 'map',
    subdivisions => ['array', 'map'],
    geoname_id => 'uint32', accuracy_radius => 'uint16',
    latitude => 'double', longitude => 'double',
    iso_code => 'utf8_string', code => 'utf8_string',
    time_zone => 'utf8_string',
    map { $_ => 'utf8_string' } @langs,
);

sub names {
    my ($name, $id) = @_;
    my %n = map { $_ => $name } @langs;
    # A little variety in length, as in the real names.
    $n{de} = "$name (Stadt)" if $id % 3 == 0;
    $n{ja} = "\x{30b7}\x{30c6}\x{30a3} $name";
    $n{ru} = "\x{0413}\x{043e}\x{0440}\x{043e}\x{0434} $name";
    $n{'zh-CN'} = "\x{57ce}\x{5e02}$name";
    return \%n;
}

sub record {
    my ($c, $ci, $k, $country_only) = @_;
    my ($name, $cc, $cont, $sub, $lat, $lon, $tz) = @$c;
    my $gid = 1000000 + $ci * 1000;
    my %r = (
        continent => { code => $cont, geoname_id => 6255148 + length($cont),
                       names => names($continent_name{$cont}, 1) },
        country => { geoname_id => 2000000 + ord($cc), iso_code => $cc,
                     names => names("Country $cc", 2) },
        registered_country => { geoname_id => 2000000 + ord($cc),
                                iso_code => $cc, names => names("Country $cc", 2) },
    );
    return \%r if $country_only;
    # Jitter: up to ~0.035 degrees (~4 km) each way.
    my $jl = (($k * 7919) % 71 - 35) / 1000;
    my $jo = (($k * 104729) % 71 - 35) / 1000;
    $r{city} = { geoname_id => $gid, names => names($name, $ci) };
    $r{location} = { accuracy_radius => 5 + $k % 50, latitude => $lat + $jl,
                     longitude => $lon + $jo, time_zone => $tz };
    $r{postal} = { code => sprintf('%05d', ($k * 37) % 100000) };
    $r{subdivisions} = [ { geoname_id => $gid + 1, iso_code => $sub,
                           names => names("Region $sub", $ci) } ];
    return \%r;
}

my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version               => 6,
    record_size              => 28,
    database_type            => 'GeoIP2-City',
    languages                => \@langs,
    description              => { en => 'ngx_omni_module bench database' },
    alias_ipv6_to_ipv4       => 1,
    remove_reserved_networks => 0,
    map_key_type_callback    => sub {
        my ($key) = @_;
        return $TYPES{$key} // die "gen-geo: no type for key \"$key\"\n";
    },
);

srand(20240602);
my @pick;
for my $ci (0 .. $#cities) {
    push @pick, ($ci) x $cities[$ci][7];
}

# Distinct /24s over 1.0.0.0 .. 223.255.255.0, not 127/8 (loopback, so
# the bench never looks up a real client address by accident) nor
# 203.0.113/24 (the "not in the database" addresses).
my (%used, @ips, %check);
while (keys %used < $nnet) {
    my ($a, $b, $c) = (1 + int(rand(223)), int(rand(256)), int(rand(256)));
    next if $a == 127 || ($a == 203 && $b == 0 && $c == 113);
    my $net = "$a.$b.$c";
    next if $used{$net}++;
    my $k = keys %used;
    my $ci = $pick[int(rand(@pick))];
    my $country_only = $k % 23 == 0;
    $tree->insert_network("$net.0/24", record($cities[$ci], $ci, $k, $country_only));
    my $ip = "$net." . (1 + int(rand(254)));
    push @ips, $ip;
    $check{$cities[$ci][0]} //= [$ip, $cities[$ci]] unless $country_only;
}
for my $i (1 .. int($nnet / 25)) {
    push @ips, '203.0.113.' . (1 + $i % 254);
}

for my $i (reverse 1 .. $#ips) {
    my $j = int(rand($i + 1));
    @ips[$i, $j] = @ips[$j, $i];
}

my $tmp = "$out.tmp.$$";
open(my $fh, '>:raw', $tmp) or die "gen-geo: $tmp: $!\n";
$tree->write_tree($fh);
close($fh) or die "gen-geo: $tmp: $!\n";

# Spot checks with mmdblookup: the showroom cities and one more.
for my $name ('Lisbon', 'Porto', 'Paris', 'Berlin') {
    my ($ip, $c) = @{ $check{$name} or next };
    my $got = `mmdblookup --file '$tmp' --ip $ip city names en 2>&1`;
    die "gen-geo: $ip: expected city \"$name\", mmdblookup says: $got\n"
        unless $got =~ /"\Q$name\E"/;
    $got = `mmdblookup --file '$tmp' --ip $ip location latitude 2>&1`;
    die "gen-geo: $ip: latitude: $got\n"
        unless $got =~ /(-?[0-9.]+)\s*<double>/ && abs($1 - $c->[4]) < 0.04;
}
my $none = `mmdblookup --file '$tmp' --ip 203.0.113.7 2>&1`;
die "gen-geo: 203.0.113.7 should not be in the database: $none\n"
    unless $none =~ /Could not find/;
rename($tmp, $out) or die "gen-geo: rename $tmp: $!\n";

open(my $ih, '>', $ips_out) or die "gen-geo: $ips_out: $!\n";
print $ih "$_\n" for @ips;
close $ih;

# For run.sh's verification: one Lisbon address (near the showroom).
print "$check{Lisbon}[0]\n";
