package OmniGeo;

# Small MaxMind DB files for the geo tests, built at test time with
# Debian's libmaxmind-db-writer-perl (MaxMind::DB::Writer::Tree), in the
# GeoIP2-City layout the module reads:
#
#   country.iso_code, subdivisions[0].iso_code, city.names.en,
#   location.latitude, location.longitude
#
#   build_mmdb("$OmniTest::PREFIX/geo.mmdb", {
#       '127.0.0.1/32' => { country => 'PT', region => '11', city => 'Lisbon',
#                            lat => 38.71, lon => -9.14 },
#       '10.4.0.0/16'  => { country => 'DE' },          # a Country-style entry
#       '2001:db8::/32' => { country => 'FR', city => 'Paris', ... },
#   });
#
# Every field is optional.  The file is written next to $path and renamed
# into place, so a running nginx that maps the old file never sees a
# half-written one.  Each network's first address is then looked up with
# mmdblookup (mmdb-bin) and compared; any difference dies with a clear
# message, so a test never runs against a database that silently lost an
# entry (the writer drops reserved networks such as 127.0.0.0/8 unless
# told not to: GUIDE section 5).

use strict;
use warnings;

use Exporter ();
use File::Basename ();

our @ISA    = ('Exporter');
our @EXPORT = qw(build_mmdb haversine_km);

my %TYPES = (
    country      => 'map',
    subdivisions => [ 'array', 'map' ],
    city         => 'map',
    location     => 'map',
    names        => 'map',
    iso_code     => 'utf8_string',
    en           => 'utf8_string',
    latitude     => 'double',
    longitude    => 'double',
);

sub _record {
    my ($e) = @_;
    my %r;
    $r{country} = { iso_code => $e->{country} } if defined $e->{country};
    $r{subdivisions} = [ { iso_code => $e->{region} } ] if defined $e->{region};
    $r{city} = { names => { en => $e->{city} } } if defined $e->{city};
    if (defined $e->{lat} || defined $e->{lon}) {
        $r{location} = { latitude => 0.0 + $e->{lat}, longitude => 0.0 + $e->{lon} };
    }
    return \%r;
}

sub build_mmdb {
    my ($path, $entries, %opt) = @_;

    require MaxMind::DB::Writer::Tree;

    my $tree = MaxMind::DB::Writer::Tree->new(
        ip_version               => 6,
        record_size              => 24,
        database_type            => $opt{database_type} // 'GeoIP2-City',
        languages                => ['en'],
        description              => { en => 'ngx_omni_module test database' },
        alias_ipv6_to_ipv4       => 1,
        remove_reserved_networks => 0,
        map_key_type_callback    => sub {
            my ($key) = @_;
            return $TYPES{$key} // die "OmniGeo: no type for key \"$key\"";
        },
    );

    for my $net (sort keys %$entries) {
        $tree->insert_network($net, _record($entries->{$net}));
    }

    my $tmp = "$path.tmp.$$";
    open(my $fh, '>:raw', $tmp) or die "OmniGeo: $tmp: $!";
    $tree->write_tree($fh);
    close($fh) or die "OmniGeo: $tmp: $!";

    _verify($tmp, $entries);

    rename($tmp, $path) or die "OmniGeo: rename $tmp -> $path: $!";
    return $path;
}

# mmdblookup --file F --ip A country iso_code  prints  "PT" <utf8_string>
sub _mmdblookup {
    my ($file, $ip, @path) = @_;
    my @cmd = ('mmdblookup', '--file', $file, '--ip', $ip, @path);
    open(my $ph, '-|', @cmd) or die "OmniGeo: cannot run mmdblookup (mmdb-bin): $!";
    my $out = do { local $/; <$ph> } // '';
    close $ph;
    return undef if $?;
    return $1 if $out =~ /"((?:[^"\\]|\\.)*)"\s*<utf8_string>/;
    return $1 + 0 if $out =~ /(-?[0-9.]+)\s*<double>/;
    return undef;
}

sub _verify {
    my ($file, $entries) = @_;

    for my $net (sort keys %$entries) {
        my ($ip) = split m{/}, $net;
        my $e = $entries->{$net};
        my %want = (
            country => [ [qw(country iso_code)], $e->{country} ],
            region  => [ [qw(subdivisions 0 iso_code)], $e->{region} ],
            city    => [ [qw(city names en)], $e->{city} ],
            lat     => [ [qw(location latitude)], $e->{lat} ],
            lon     => [ [qw(location longitude)], $e->{lon} ],
        );
        for my $k (sort keys %want) {
            my ($path, $expect) = @{ $want{$k} };
            next unless defined $expect;
            my $got = _mmdblookup($file, $ip, @$path);
            my $same = defined $got
                       && ($k eq 'lat' || $k eq 'lon' ? abs($got - $expect) < 1e-6
                                                      : $got eq $expect);
            die "OmniGeo: $file: $ip ($net) $k: expected \"$expect\", mmdblookup says \""
                . ($got // 'nothing') . "\" (a reserved network dropped? "
                . "remove_reserved_networks must be 0)\n"
                unless $same;
        }
    }
}

# Great-circle distance in km, the formula docs/rules.md documents
# (haversine, Earth radius 6371.0088 km), written independently of the C.
sub haversine_km {
    my ($lat1, $lon1, $lat2, $lon2) = @_;
    my $rad = 3.14159265358979323846 / 180;
    my $dlat = ($lat2 - $lat1) * $rad;
    my $dlon = ($lon2 - $lon1) * $rad;
    my $a = sin($dlat / 2)**2 + cos($lat1 * $rad) * cos($lat2 * $rad) * sin($dlon / 2)**2;
    return 2 * 6371.0088 * atan2(sqrt($a), sqrt(1 - $a));
}

1;
