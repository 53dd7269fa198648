# omni_geoip: a MaxMind DB opened at configuration time (nginx -t names a
# missing or corrupt file with file:line), looked up lazily for rules that
# need geo (never otherwise, at most once per decision), for the client
# address after ngx_http_realip_module; the showroom scenario with the
# repository's rules/showroom.json; country/region/city conditions and
# templates; $omni_geo_country and $omni_geo_city; and reloads: a replaced
# database is served after "nginx -s reload" (no stale data, no per-request
# stat), a broken one keeps the old configuration and its data serving.
#
# The databases are built at test time by t/lib/OmniGeo.pm with Debian's
# libmaxmind-db-writer-perl and checked with mmdblookup: nothing is
# downloaded.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use OmniGeo;
use File::Temp ();
use Time::HiRes ();

# --- the world of the tests ----------------------------------------------------

# rules/showroom.json's stores
our %STORE = (
    'Lisbon Baixa'  => [ 38.7107, -9.1366 ],
    'Porto Aliados' => [ 41.1496, -8.6109 ],
    'Paris Opéra' => [ 48.8719, 2.3316 ],
);

# client address => where the database puts it
our %WHERE = (
    '127.0.0.1'   => { country => 'PT', region => '11', city => 'Lisbon',
                       lat => 38.7223, lon => -9.1393 },
    '127.0.0.2'   => { country => 'PT', region => '13', city => 'Porto',
                       lat => 41.1579, lon => -8.6291 },
    '10.1.0.0/16' => { country => 'PT', region => '13', city => 'Matosinhos',
                       lat => 41.1821, lon => -8.6891 },
    '10.2.0.0/16' => { country => 'FR', region => 'IDF', city => 'Paris',
                       lat => 48.8606, lon => 2.3376 },
    '10.3.0.0/16' => { country => 'PT', region => '08', city => 'Faro',
                       lat => 37.0194, lon => -7.9304 },
    '10.4.0.0/16' => { country => 'DE' },               # a Country-style entry
    '2001:db8::/32' => { country => 'FR', region => 'IDF', city => 'Versailles',
                         lat => 48.8049, lon => 2.1204 },
);

sub db_entries {
    my (%override) = @_;
    my %e;
    for my $k (keys %WHERE) {
        my $net = $k =~ m{/} ? $k : "$k/32";
        $e{$net} = $WHERE{$k};
    }
    $e{$_} = $override{$_} for keys %override;
    return \%e;
}

sub geo_db {
    my ($file, %override) = @_;
    build_mmdb("$OmniTest::PREFIX/" . ($file // 'geo.mmdb'), db_entries(%override));
}

# The showroom banner rules/showroom.json renders for a client at $where.
sub showroom {
    my ($where) = @_;
    my ($best, $km);
    for my $name (sort keys %STORE) {
        my $d = haversine_km($where->{lat}, $where->{lon}, @{ $STORE{$name} });
        ($best, $km) = ($name, $d) if $d <= 25 && (!defined $km || $d < $km);
    }
    return '' unless defined $best;
    my $url = { 'Lisbon Baixa' => 'lisbon-baixa', 'Porto Aliados' => 'porto-aliados',
                'Paris Opéra' => 'paris-opera' }->{$best};
    return sprintf('<div class="omni omni-showroom"><p>Try it on at our <strong>%s</strong> '
                 . 'showroom, %.1f km from you.</p><a href="https://shop.example.com/stores/%s">'
                 . 'Opening hours and directions</a></div>', $best, $km, $url);
}

our $COUNTRY_RULE = <<'JSON';
{"id": "pt-visitors",
 "when": {"geo": {"country": ["pt"]}},
 "banner": {"slot": "hero",
            "html": "<b>PT {{geo.city}}/{{geo.region}}/{{geo.country}}</b>"}}
JSON

our $REGION_RULE = <<'JSON';
{"id": "idf-visitors",
 "when": {"geo": {"region": "idf", "city": ["Paris", "Versailles"]}},
 "banner": {"slot": "top", "html": "<i>IDF {{geo.city}}</i>"}}
JSON

our $PLAIN_RULE = <<'JSON';
{"id": "hello", "banner": {"slot": "hero", "html": "<b>hello</b>"}}
JSON

our $PAGE = "<body>[<!--omni:slot top-->][<!--omni:slot hero-->][<!--omni:slot aside-->]</body>\n";

sub spew {
    my ($path, $text) = @_;
    open(my $fh, '>:raw', "$path.tmp") or die "$path: $!";
    print $fh $text;
    close $fh or die "$path: $!";
    rename "$path.tmp", $path or die "rename $path: $!";
}

sub slurp {
    my ($path) = @_;
    open(my $fh, '<:raw', $path) or die "$path: $!";
    local $/;
    return scalar <$fh>;
}

# rules/ in the prefix: the repository's showroom.json (unless told
# otherwise) plus the given extra rule files; and the page.
sub setup {
    my (%o) = @_;
    my $dir = "$OmniTest::PREFIX/rules";
    mkdir $dir;
    spew("$dir/showroom.json", slurp(repo_root() . '/rules/showroom.json'))
        unless $o{no_showroom};
    my $i = 0;
    spew("$dir/extra-" . $i++ . ".json", $_) for @{ $o{rules} || [] };
    spew("$OmniTest::PREFIX/html/index.html", $PAGE);
    geo_db() unless $o{no_db};
}

# The page a client at $xff gets.
sub page_for {
    my ($xff) = @_;
    return http_get('/index.html', 'X-Forwarded-For' => $xff);
}

sub expect_page {
    my (%slot) = @_;
    return "<body>[" . ($slot{top} // '<!--omni:slot top-->') . "]["
         . ($slot{hero} // '<!--omni:slot hero-->') . "]["
         . ($slot{aside} // '<!--omni:slot aside-->') . "]</body>\n";
}

sub count_matches {
    my ($re) = @_;
    my @m = error_log_text() =~ /$re/g;
    return scalar @m;
}

sub master_pid {
    return OmniTest::_slurp("$OmniTest::PREFIX/logs/nginx.pid") =~ /(\d+)/ ? $1 : die;
}

# --- OmniGeo itself --------------------------------------------------------------

{
    my $r = haversine_km(48.8566, 2.3522, 51.5074, -0.1278);
    ok(abs($r - 343.56) < 0.1, "haversine Paris-London is 343.6 km ($r)");
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    ok(eval { build_mmdb("$dir/t.mmdb", db_entries()); 1 }, 'build_mmdb builds the test world')
        or diag $@;
    my $out = `mmdblookup --file $dir/t.mmdb --ip 127.0.0.2 city names en`;
    like($out, qr/"Porto" <utf8_string>/, 'mmdblookup finds 127.0.0.2 (a reserved network kept)');
}

run_blocks();

__DATA__

=== TEST 1: a missing database fails nginx -t with the path and file:line
--- http_config
omni_geoip $TEST_NGINX_PREFIX/nope.mmdb;
--- must_die
qr/\[emerg\] omni_geoip: cannot open "\S+\/nope\.mmdb": Error opening the specified MaxMind DB file \(2: No such file or directory\) in \S+\/conf\/nginx\.conf:\d+/

=== TEST 2: a garbage file fails nginx -t with the path and file:line
--- http_config
omni_geoip $TEST_NGINX_PREFIX/garbage.mmdb;
--- user_files
>>> garbage.mmdb
this is not a MaxMind DB file, just some text that is long enough to look
--- must_die
qr/\[emerg\] omni_geoip: cannot open "\S+\/garbage\.mmdb": The MaxMind DB file contains invalid metadata in \S+\/conf\/nginx\.conf:\d+/

=== TEST 3: an empty file fails nginx -t too
--- http_config
omni_geoip $TEST_NGINX_PREFIX/empty.mmdb;
--- init
open(my $fh, '>', "$OmniTest::PREFIX/empty.mmdb") or die; close $fh;
--- must_die
qr/\[emerg\] omni_geoip: cannot open "\S+\/empty\.mmdb": .* in \S+\/conf\/nginx\.conf:\d+/

=== TEST 4: omni_geoip twice is an error
--- http_config
omni_geoip $TEST_NGINX_PREFIX/geo.mmdb;
omni_geoip $TEST_NGINX_PREFIX/geo.mmdb;
--- init
main::geo_db();
--- must_die
qr/"omni_geoip" directive is duplicate in \S+\/conf\/nginx\.conf:\d+/

=== TEST 5: $omni_geo_country and $omni_geo_city for IPv4, IPv6 and unknown clients (realip decides the address); a relative path is under conf/
--- http_config
omni_geoip geo.mmdb;
set_real_ip_from 127.0.0.1;
real_ip_header X-Forwarded-For;
--- init
main::geo_db('conf/geo.mmdb');
--- config
location = /geo { return 200 "[$omni_geo_country] [$omni_geo_city] [$remote_addr]\n"; }
--- request
GET /geo
--- response_body
[PT] [Lisbon] [127.0.0.1]
--- request_2
GET /geo
--- more_headers_2
X-Forwarded-For: 10.2.3.4
--- response_body_2
[FR] [Paris] [10.2.3.4]
--- request_3
GET /geo
--- more_headers_3
X-Forwarded-For: 2001:db8::7
--- response_body_3
[FR] [Versailles] [2001:db8::7]
--- request_4
GET /geo
--- more_headers_4
X-Forwarded-For: 10.4.0.1
--- response_body_4
[DE] [] [10.4.0.1]
--- request_5
GET /geo
--- more_headers_5
X-Forwarded-For: 10.9.9.9
--- response_body_5
[] [] [10.9.9.9]
--- request_6
GET /geo
--- more_headers_6
X-Forwarded-For: 2001:db9::1
--- response_body_6
[] [] [2001:db9::1]
--- error_log
qr/\[info\] .*omni_geoip: "\S+\/conf\/geo\.mmdb": GeoIP2-City, IPv6, built \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/
--- no_error_log
[error]

=== TEST 6: without real_ip_header the X-Forwarded-For header is ignored: the connection's address is looked up
--- http_config
omni_geoip $TEST_NGINX_PREFIX/geo.mmdb;
--- init
main::geo_db();
--- config
location = /geo { return 200 "[$omni_geo_country] [$omni_geo_city]\n"; }
--- request
GET /geo
--- more_headers
X-Forwarded-For: 10.2.3.4
--- response_body
[PT] [Lisbon]

=== TEST 7: showroom (rules/showroom.json): a client near a store is invited to THAT store, with the distance
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_geoip $TEST_NGINX_PREFIX/geo.mmdb;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
set_real_ip_from 127.0.0.1;
real_ip_header X-Forwarded-For;
--- init
main::setup(rules => [ $main::COUNTRY_RULE, $main::REGION_RULE ]);
--- config
omni on;
location / { add_header X-Omni-Rules $omni_rules always; }
--- request
GET /index.html
--- more_headers
X-Forwarded-For: 10.1.2.3
--- response_headers
X-Omni-Rules: showroom-invite,pt-visitors
--- check
my $banner = main::showroom($main::WHERE{'10.1.0.0/16'});
like($banner, qr/Porto Aliados.*7\.5 km/, 'the oracle: Matosinhos is 7.5 km from Porto Aliados');
is($resp->{content}, main::expect_page(hero => '<b>PT Matosinhos/13/PT</b>', aside => $banner),
   'Matosinhos: the Porto store and the distance; the country rule with city/region/country');

for my $case ([ '127.0.0.1', 'Lisbon Baixa', '1.3', '127.0.0.1' ],
              [ '127.0.0.2', 'Porto Aliados', '1.8', '127.0.0.2' ],
              [ '10.2.0.9', 'Paris Opéra', '1.3', '10.2.0.0/16' ],
              [ '2001:db8::1', 'Paris Opéra', '17.2', '2001:db8::/32' ]) {
    my ($ip, $store, $km, $net) = @$case;
    my $r = main::page_for($ip);
    is($r->{status}, 200, "$ip: 200");
    my $banner = main::showroom($main::WHERE{$net});
    like($banner, qr/\Q$store\E.* \Q$km\E km/, "the oracle: $ip is $km km from $store");
    like($r->{content}, qr/\Q$banner\E/, "$ip: invited to $store, $km km");
}

like(main::page_for('10.2.0.9')->{content}, qr/^<body>\[<i>IDF Paris<\/i>\]\[<!--omni:slot hero-->\]/,
     'Paris: the region + city rule, not the PT rule');
like(main::page_for('2001:db8::1')->{content}, qr/^<body>\[<i>IDF Versailles<\/i>\]/,
     'IPv6 client in Versailles: region + city rule');
--- no_error_log
[error]

=== TEST 8: far from every store, outside the database, or without a location: no showroom banner, conditions false, still 200
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_geoip $TEST_NGINX_PREFIX/geo.mmdb;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
set_real_ip_from 127.0.0.1;
real_ip_header X-Forwarded-For;
--- init
main::setup(rules => [ $main::COUNTRY_RULE, $main::REGION_RULE ]);
--- config
omni on;
location / { add_header X-Omni-Rules $omni_rules always; }
--- request
GET /index.html
--- more_headers
X-Forwarded-For: 10.3.0.1
--- response_body eval
main::expect_page(hero => '<b>PT Faro/08/PT</b>')
--- response_headers
X-Omni-Rules: pt-visitors
--- request_2
GET /index.html
--- more_headers_2
X-Forwarded-For: 10.9.9.9
--- response_body_2 eval
main::expect_page()
--- response_headers_2
!X-Omni-Rules
--- request_3
GET /index.html
--- more_headers_3
X-Forwarded-For: 10.4.0.1
--- response_body_3 eval
main::expect_page()
--- request_4
GET /index.html
--- more_headers_4
X-Forwarded-For: 2001:db9::1
--- response_body_4 eval
main::expect_page()
--- no_error_log
[error]

=== TEST 9: a rule set without geo conditions never looks up; one with geo looks up once per request, not once per rule
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_geoip $TEST_NGINX_PREFIX/geo.mmdb;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
set_real_ip_from 127.0.0.1;
real_ip_header X-Forwarded-For;
--- log_level: debug
--- init
main::setup(no_showroom => 1, rules => [ $main::PLAIN_RULE ]);
--- config
omni on;
location / { add_header X-Omni-Rules $omni_rules always; }
--- request
GET /index.html
--- more_headers
X-Forwarded-For: 10.1.2.3
--- response_body eval
main::expect_page(hero => '<b>hello</b>')
--- response_headers
X-Omni-Rules: hello
--- check
my $log = error_log_text();
like($log, qr/\[debug\] .*omni/, 'debug logging is on (nginx --with-debug)');
unlike($log, qr/omni geo:/, 'no geo lookup for a rule set without geo');
--- no_error_log
omni geo:

=== TEST 10: with geo rules, exactly one lookup per decision, logged at debug level only
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_geoip $TEST_NGINX_PREFIX/geo.mmdb;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
set_real_ip_from 127.0.0.1;
real_ip_header X-Forwarded-For;
--- log_level: debug
--- init
main::setup(rules => [ $main::COUNTRY_RULE, $main::REGION_RULE, $main::PLAIN_RULE ]);
--- config
omni on;
location / { add_header X-Omni-Rules $omni_rules always; }
--- request
GET /index.html
--- more_headers
X-Forwarded-For: 10.1.2.3
--- response_headers
X-Omni-Rules: showroom-invite,pt-visitors
--- request_2
GET /index.html
--- more_headers_2
X-Forwarded-For: 10.9.9.9
--- response_headers_2
X-Omni-Rules: hello
--- check
is(main::count_matches(qr/omni geo: lookup 10\.1\.2\.3\b/), 1, 'one lookup for 10.1.2.3 (three geo conditions, templates)');
is(main::count_matches(qr/omni geo: 10\.1\.2\.3: country "PT" region "13" city "Matosinhos" location 41\.1821,-8\.6891/), 1,
   'the fields found, logged at debug level');
is(main::count_matches(qr/omni geo: lookup 10\.9\.9\.9\b/), 1, 'one lookup for 10.9.9.9');
is(main::count_matches(qr/omni geo: 10\.9\.9\.9: not in the database/), 1, 'not found: a debug line');
--- no_error_log
[error]
[warn]

=== TEST 11: nginx -s reload with a replaced database serves the new data, never the old (and nothing changes without a reload)
--- skip_if: $ENV{TEST_NGINX_USE_VALGRIND} && "a reload needs the master process (valgrind runs master_process off)"
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_geoip $TEST_NGINX_PREFIX/geo.mmdb;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
set_real_ip_from 127.0.0.1;
real_ip_header X-Forwarded-For;
--- init
main::setup(rules => [ $main::COUNTRY_RULE ]);
--- config
omni on;
location / { add_header X-Omni-Rules $omni_rules always; }
location = /geo { return 200 "$omni_geo_country $omni_geo_city\n"; }
--- request
GET /index.html
--- more_headers
X-Forwarded-For: 10.1.2.3
--- response_headers
X-Omni-Rules: showroom-invite,pt-visitors
--- timeout: 30
--- check
my $paris = { country => 'FR', region => 'IDF', city => 'Paris', lat => 48.8606, lon => 2.3376 };
# the new database moves 10.1.0.0/16 to Paris (written aside, renamed over)
main::geo_db(undef, '10.1.0.0/16' => $paris);
Time::HiRes::sleep(0.3);
is(http_get('/geo', 'X-Forwarded-For' => '10.1.2.3')->{content}, "PT Matosinhos\n",
   'no reload yet: the mapped database keeps serving (no stat per request)');

kill 'HUP', main::master_pid();
ok(wait_for(sub { http_get('/geo', 'X-Forwarded-For' => '10.1.2.3')->{content} eq "FR Paris\n" }, 10, 0.1),
   'after the reload: the new data');
# the old worker has gone: every answer is the new data
ok(wait_for(sub { main::count_matches(qr/\[notice\] \d+#\d+: exit$/m) >= 1 }, 10, 0.1),
   'the old worker exited');
for (1 .. 5) {
    my $r = main::page_for('10.1.2.3');
    is($r->{headers}{'x-omni-rules'}, 'showroom-invite', "request $_: no PT rule any more");
    like($r->{content}, qr/\Q@{[ main::showroom($paris) ]}\E/, "request $_: invited to Paris Opera");
}
is(main::count_matches(qr/omni_geoip: "\S+\/geo\.mmdb": GeoIP2-City/), 2,
   'the database was opened at start and again at the reload');
--- no_error_log
[error]

=== TEST 12: nginx -s reload with a broken database keeps the old configuration and its data serving
--- skip_if: $ENV{TEST_NGINX_USE_VALGRIND} && "a reload needs the master process (valgrind runs master_process off)"
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_geoip $TEST_NGINX_PREFIX/geo.mmdb;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
set_real_ip_from 127.0.0.1;
real_ip_header X-Forwarded-For;
--- init
main::setup();
--- config
omni on;
location / { add_header X-Gen "first" always; }
location = /geo { add_header X-Gen "first" always; return 200 "$omni_geo_country $omni_geo_city\n"; }
--- request
GET /geo
--- more_headers
X-Forwarded-For: 10.1.2.3
--- response_body
PT Matosinhos
--- timeout: 30
--- check
my $conf = "$OmniTest::PREFIX/conf/nginx.conf";
my $text = main::slurp($conf);
$text =~ s/X-Gen "first"/X-Gen "second"/g or die;
main::spew($conf, $text);
main::spew("$OmniTest::PREFIX/geo.mmdb", "not a database any more\n" x 10);

my $master = main::master_pid();
kill 'HUP', $master;
ok(wait_for(sub { error_log_text() =~ /\[emerg\] .*omni_geoip: cannot open "\S+\/geo\.mmdb": .* in \S+\/conf\/nginx\.conf:\d+/ }, 10, 0.1),
   'the reload logs the error with the path and file:line');
Time::HiRes::sleep(0.5);
my $r = http_get('/geo', 'X-Forwarded-For' => '10.1.2.3');
is($r->{content}, "PT Matosinhos\n", 'the old database keeps serving');
is($r->{headers}{'x-gen'}, 'first', 'the old configuration keeps serving');
$r = main::page_for('10.1.2.3');
my $banner = main::showroom($main::WHERE{'10.1.0.0/16'});
like($r->{content}, qr/\Q$banner\E/, 'the showroom still works');
ok(kill(0, $master), 'the master is alive');

# the fix, and a reload that takes
main::geo_db(undef, '10.1.0.0/16' => { country => 'PT', city => 'Fixed', lat => 41.1821, lon => -8.6891 });
kill 'HUP', $master;
ok(wait_for(sub { my $r = http_get('/geo', 'X-Forwarded-For' => '10.1.2.3');
                  $r->{content} eq "PT Fixed\n" && ($r->{headers}{'x-gen'} // '') eq 'second' }, 10, 0.1),
   'a good reload serves the new configuration and the new database');
--- error_log
qr/\[emerg\] .*omni_geoip: cannot open "\S+\/geo\.mmdb": The MaxMind DB file contains invalid metadata in \S+\/conf\/nginx\.conf:\d+/
