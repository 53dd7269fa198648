# omnictl end to end: import, export, get, put, link, forget, token, stat,
# map growth and usage errors, against real stores in temporary
# directories.  Run from the repository root (prove does); OMNI_OMNICTL
# names another omnictl binary.

use strict;
use warnings;

use Digest::SHA  qw(hmac_sha256 sha256_hex);
use File::Temp   ();
use JSON::PP     ();
use MIME::Base64 qw(decode_base64);
use Test::More;
use Time::HiRes  qw(time);

my $CTL = $ENV{OMNI_OMNICTL} // 'build/omnictl';

plan skip_all => "$CTL is not built (make omnictl)" unless -x $CTL;

delete @ENV{qw(OMNI_STORE OMNI_SECRET)};

my $TMP  = File::Temp->newdir('omnictl-XXXXXX', TMPDIR => 1);
my $JSON = JSON::PP->new->canonical;
my $n    = 0;

# run({stdin => ..., env => {...}}, ARGS) -> (exit code, stdout, stderr)
sub run {
    my ($opt, @args) = @_;

    my $base = "$TMP/run" . ++$n;
    write_file("$base.in", $opt->{stdin} // '');

    my $pid = fork // die "fork: $!";

    if ($pid == 0) {
        %ENV = (%ENV, %{ $opt->{env} || {} });
        open STDIN,  '<', "$base.in"  or die;
        open STDOUT, '>', "$base.out" or die;
        open STDERR, '>', "$base.err" or die;
        exec $CTL, @args or exit 127;
    }

    waitpid $pid, 0;

    return ($? & 127 ? 128 + ($? & 127) : $? >> 8,
            read_file("$base.out"), read_file("$base.err"));
}

sub ctl { run({}, @_) }

sub write_file {
    my ($path, $data) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $data;
    close $fh;
}

sub read_file {
    my ($path) = @_;
    open my $fh, '<', $path or die "$path: $!";
    local $/;
    my $d = <$fh>;
    return $d // '';
}

sub decode_json_ok {
    my ($text, $name) = @_;
    my $v = eval { $JSON->decode($text) };
    ok(defined $v, "$name: output is JSON") or diag("output: $text\n$@");
    return $v // {};
}

sub stat_of {
    my ($store) = @_;
    my ($rc, $out) = ctl('--store', $store, 'stat');
    return $rc == 0 ? $JSON->decode($out) : {};
}

sub id  { sprintf '%032x', shift }

sub profile_line {
    my ($i, %extra) = @_;
    my %p = (
        id         => id($i),
        created    => 1700000000 + $i,
        updated    => 1700001000 + $i,
        visits     => $i % 50,
        aliases    => [ { type => 'customer', id => "cust-$i" },
                        { type => 'email', id => "user$i\@example.com" } ],
        segments   => [ 'all', 's' . $i % 10 ],
        attributes => { first_name => "Name$i", points => $i * 3,
                        tier => 't' . $i % 4 },
        %extra,
    );
    return $JSON->encode(\%p) . "\n";
}


# --- usage errors -----------------------------------------------------

{
    my ($rc, $out, $err) = ctl();
    is($rc, 2, 'no command: exit 2');
    like($err, qr/usage: omnictl/, 'no command: usage on stderr');

    ($rc, $out) = ctl('--help');
    is($rc, 0, '--help: exit 0');
    like($out, qr/import \[FILE\|-\].*export.*token/s,
         '--help lists commands');

    ($rc, $out) = ctl('import', '-h');
    ok($rc == 0 && $out =~ /usage: omnictl .*import/, 'import -h');

    ($rc, undef, $err) = ctl('frobnicate');
    ok($rc == 2 && $err =~ /^omnictl: unknown command "frobnicate"/,
       'unknown command: exit 2');

    ($rc, undef, $err) = ctl('get', id(1));
    ok($rc == 2 && $err =~ /^omnictl: get: --store DIR/,
       'get without --store: exit 2');

    ($rc, undef, $err) = ctl('--store', "$TMP/x", 'get', '--frob', id(1));
    ok($rc == 2 && $err =~ /unknown option "--frob"/, 'unknown option: 2');

    ($rc, undef, $err) = ctl('--store', "$TMP/x", 'import', '--ttl', '3');
    ok($rc == 2 && $err =~ /--ttl is not valid for import/,
       'option of another command: exit 2');

    ($rc) = ctl('--store', "$TMP/x", 'get', id(1), '--alias', 'customer:a');
    is($rc, 2, 'get ID --alias: exit 2');

    ($rc, undef, $err) = ctl('--store', "$TMP/x", 'get', 'not-an-id');
    ok($rc == 2 && $err =~ /invalid profile id/, 'get bad id: exit 2');

    ($rc, undef, $err) = ctl('--store', "$TMP/x", 'get', '--alias', 'foo:1');
    ok($rc == 2 && $err =~ /unknown type "foo"/, 'get bad alias type: 2');

    ($rc) = ctl('--store', "$TMP/x", '--map-size', '12q', 'stat');
    is($rc, 2, 'bad --map-size: exit 2');

    ($rc) = ctl('--store', "$TMP/x", 'link', id(1));
    is($rc, 2, 'link with one argument: exit 2');

    ($rc, undef, $err) = ctl('--store', "$TMP/missing", 'stat');
    ok($rc == 2 && $err =~ /^omnictl: stat: store .*missing/,
       'stat on a missing store: exit 2');
}


# --- stat --create, import with bad lines --------------------------------

my $A = "$TMP/a";

{
    my ($rc, $out) = ctl('--store', $A, 'stat', '--create');
    is($rc, 0, 'stat --create: exit 0');
    my $s = decode_json_ok($out, 'stat --create');
    ok($s->{profiles} == 0 && $s->{aliases} == 0 && $s->{schema} == 1
       && $s->{path} eq $A && $s->{map_size} > 0,
       'stat --create: an empty store, schema 1');
}

my $small = profile_line(1, aliases => [
                { type => 'customer', id => 'cust-1' },
                { type => 'email', id => 'Mixed.Case@Example.COM' },
                { type => 'cookie',
                  id   => 'AAAAAAAA-BBBB-CCCC-DDDD-000000000001' },
            ])
          . profile_line(2, visits => 'three')
          . profile_line(3, segments => [ 'vip' ], revenue => 99.5,
                         cart => { updated_at => 1700000500, items => [
                             { sku => 'S-1', name => 'Shoe', qty => 2,
                               price => 19.99 } ] })
          . "{\"id\": \"oops\n"
          . "\n"
          . profile_line(5, stage => 'customer', orders => 1);

{
    write_file("$TMP/small.ndjson", $small);

    my ($rc, $out, $err) = ctl('--store', $A, 'import', "$TMP/small.ndjson");
    is($rc, 1, 'import with bad lines: exit 1');
    like($err, qr/^omnictl: import: line 2: visits: /m,
         'bad line 2 is named with its field');
    like($err, qr/^omnictl: import: line 4: invalid JSON/m,
         'bad line 4 is named as invalid JSON');
    unlike($err, qr/line [1356]:/, 'no other line is reported');
    like($err, qr/imported 3, failed 2, in [\d.]+ s \(\d+\/s\)/,
         'import summary');

    for my $i (1, 3, 5) {
        ($rc, $out) = ctl('--store', $A, 'get', id($i));
        my $p = $rc == 0 ? $JSON->decode($out) : {};
        ok($rc == 0 && $p->{id} eq id($i), "good line profile $i is there");
    }

    ($rc, undef, $err) = ctl('--store', $A, 'get', id(2));
    ok($rc == 1 && $err =~ /not found/, 'the bad line was not imported');

    my $s = stat_of($A);
    ok($s->{profiles} == 3 && $s->{aliases} == 7,
       'stat: 3 profiles, 7 aliases')
        or diag explain $s;
}


# --- get ------------------------------------------------------------------

{
    my ($rc, $out) = ctl('--store', $A, 'get', id(3));
    is($rc, 0, 'get by id');
    like($out, qr/^\{\n  "id": "/, 'get output is indented');
    my $p = decode_json_ok($out, 'get');
    is($p->{revenue}, 99.5, 'get: revenue');
    is($p->{cart}{items}[0]{sku}, 'S-1', 'get: cart item');

    ($rc, $out) = ctl('--store', $A, 'get',
                      '00000000-0000-0000-0000-000000000003');
    ok($rc == 0 && $JSON->decode($out)->{id} eq id(3), 'get by UUID form');

    ($rc, $out) = ctl('--store', $A, 'get', '--alias', 'customer:cust-5');
    ok($rc == 0 && $JSON->decode($out)->{id} eq id(5),
       'get --alias customer:');

    ($rc, $out) = ctl('--store', $A, 'get', '--alias',
                      'email:mixed.case@EXAMPLE.com');
    ok($rc == 0 && $JSON->decode($out)->{id} eq id(1),
       'get --alias email: by the address in another case');

    my $digest = sha256_hex('mixed.case@example.com');
    ($rc, $out) = ctl('--store', $A, 'get', '--alias', "email:$digest");
    ok($rc == 0 && $JSON->decode($out)->{id} eq id(1),
       'get --alias email: by the sha256 digest');

    ($rc, $out) = ctl('--store', $A, 'get', '--alias',
                      'cookie:aaaaaaaabbbbccccdddd000000000001');
    ok($rc == 0 && $JSON->decode($out)->{id} eq id(1),
       'get --alias cookie: (stored from a UUID, found by hex)');

    my ($err);
    ($rc, $out, $err) = ctl('--store', $A, 'get', '--alias', 'customer:none');
    ok($rc == 1 && $out eq ''
       && $err =~ /^omnictl: get: customer:none not found$/m,
       'get --alias of an unknown customer: exit 1, not found');

    ($rc, undef, $err) = run({ env => { OMNI_STORE => $A } }, 'get', id(5));
    is($rc, 0, 'OMNI_STORE stands for --store');
}


# --- export round trip ----------------------------------------------------

{
    my ($rc, $exp1, $err) = ctl('--store', $A, 'export');
    is($rc, 0, 'export: exit 0');
    my @lines = split /\n/, $exp1;
    is(scalar @lines, 3, 'export: one line per profile');
    ok((grep { !/^\{"id":"[0-9a-f]{32}",/ } @lines) == 0,
       'export: compact JSON, id first');

    my $B = "$TMP/b";
    ($rc) = ctl('--store', $B, 'stat', '--create');
    ($rc, undef, $err) = run({ stdin => $exp1 }, '--store', $B, 'import', '-');
    is($rc, 0, 'import of the export into a fresh store');

    my $exp2;
    ($rc, $exp2) = ctl('--store', $B, 'export');
    is($exp2, $exp1, 'export | import | export is identical');

    ($rc) = ctl('--store', $B, 'export', '--out', "$TMP/b.ndjson");
    ok($rc == 0 && read_file("$TMP/b.ndjson") eq $exp1
       && !-e "$TMP/b.ndjson.tmp",
       'export --out writes the same, no temporary file left');

    # importing the export again replaces every profile with itself
    ($rc) = run({ stdin => $exp1 }, '--store', $B, 'import');
    ($rc, $exp2) = ctl('--store', $B, 'export');
    my $s = stat_of($B);
    ok($exp2 eq $exp1 && $s->{profiles} == 3 && $s->{aliases} == 7,
       're-import replaces in place');
}


# --- put ----------------------------------------------------------------

{
    my $doc = JSON::PP->new->pretty->encode({
        id => id(7), visits => 2,
        aliases => [ { type => 'customer', id => 'cust-7' },
                     { type => 'email', id => 'seven@example.com' } ],
        attributes => { first_name => 'Seven' },
    });

    my ($rc, $out, $err) = run({ stdin => $doc }, '--store', $A, 'put');
    is($rc, 0, 'put from stdin: exit 0');
    is_deeply(decode_json_ok($out, 'put'),
              { put => id(7), replaced => JSON::PP::false },
              'put: created');

    ($rc, $out) = ctl('--store', $A, 'get', '--alias', 'customer:cust-7');
    ok($rc == 0 && $JSON->decode($out)->{attributes}{first_name} eq 'Seven',
       'put profile found by its alias');

    # replace: new attribute, the email alias dropped
    write_file("$TMP/seven.json", $JSON->encode({
        id => id(7), visits => 3,
        aliases => [ { type => 'customer', id => 'cust-7' } ],
        attributes => { first_name => 'Seven', city => 'Porto' },
    }));

    ($rc, $out) = ctl('--store', $A, 'put', "$TMP/seven.json");
    ok($rc == 0 && $JSON->decode($out)->{replaced}, 'put replaces');

    ($rc, $out) = ctl('--store', $A, 'get', id(7));
    my $p = $rc == 0 ? $JSON->decode($out) : {};
    ok($p->{visits} == 3 && $p->{attributes}{city} eq 'Porto'
       && @{ $p->{aliases} } == 1, 'the replacement is stored whole');

    ($rc) = ctl('--store', $A, 'get', '--alias', 'email:seven@example.com');
    is($rc, 1, 'an alias the replacement dropped no longer resolves');

    ($rc, undef, $err) = run({ stdin => '{"id":"' . id(8) . '","bogus":1}' },
                             '--store', $A, 'put');
    ok($rc == 1 && $err =~ /^omnictl: put: unknown key "bogus"/,
       'put of an invalid profile: exit 1, names the key');

    ($rc, undef, $err) = run({ stdin => "{\"id\":" }, '--store', $A, 'put');
    ok($rc == 1 && $err =~ /invalid JSON/, 'put of invalid JSON: exit 1');
}


# --- link -----------------------------------------------------------------

{
    my ($rc, $out) = ctl('--store', $A, 'link', id(3), 'customer:crm-333');
    is($rc, 0, 'link: exit 0');
    is_deeply(decode_json_ok($out, 'link'),
              { linked => id(3), type => 'customer', alias => 'crm-333' },
              'link: output');

    ($rc, $out) = ctl('--store', $A, 'get', '--alias', 'customer:crm-333');
    ok($rc == 0 && $JSON->decode($out)->{id} eq id(3),
       'get by the newly linked alias');

    # move an alias from profile 5 to profile 3
    ($rc, $out) = ctl('--store', $A, 'link', id(3), 'customer:cust-5');
    ok($rc == 0 && $JSON->decode($out)->{moved_from} eq id(5),
       'link moves an alias and says from where');

    ($rc, $out) = ctl('--store', $A, 'get', id(5));
    my @cust = grep { $_->{type} eq 'customer' }
               @{ $JSON->decode($out)->{aliases} || [] };
    is(scalar @cust, 0, 'the old owner no longer lists the moved alias');

    my $err;
    ($rc, undef, $err) = ctl('--store', $A, 'link', id(99), 'customer:x');
    ok($rc == 1 && $err =~ /profile 0+63 not found/,
       'link to a missing profile: exit 1');
}


# --- forget -------------------------------------------------------------

{
    my ($rc, $out) = ctl('--store', $A, 'forget', '--alias',
                         'customer:cust-1');
    is($rc, 0, 'forget --alias: exit 0');
    is_deeply(decode_json_ok($out, 'forget'),
              { forgotten => id(1), aliases => 3, touchpoints => 0 },
              'forget: profile id and counts');

    ($rc) = ctl('--store', $A, 'get', id(1));
    is($rc, 1, 'forgotten profile: get by id is not found');

    for my $alias ('customer:cust-1', 'email:Mixed.Case@Example.COM') {
        ($rc) = ctl('--store', $A, 'get', '--alias', $alias);
        is($rc, 1, "forgotten profile: get --alias $alias is not found");
    }

    my $err;
    ($rc, $out, $err) = ctl('--store', $A, 'forget', id(1));
    ok($rc == 1 && $err =~ /not found/, 'forget again: exit 1');

    my $s = stat_of($A);
    ok($s->{profiles} == 3 && $s->{aliases} == 6,
       'stat after put, link and forget: 3 profiles, 6 aliases')
        or diag explain $s;
}


# --- token --------------------------------------------------------------

sub b64url_decode {
    my ($s) = @_;
    $s =~ tr{-_}{+/};
    return decode_base64($s);
}

sub check_token {
    my ($tok, $secret, $kind) = @_;
    my $raw = b64url_decode($tok);
    return 0 unless length $raw == 42;
    my $mac = substr(hmac_sha256('omni/v1/' . substr($raw, 0, 26), $secret),
                     0, 16);
    my ($ver, $k, $id, $issued, $expires) = unpack 'C a1 a16 N N', $raw;
    return 0 unless $ver == 1 && $k eq $kind && $mac eq substr($raw, 26);
    return { id => unpack('H*', $id), issued => $issued,
             expires => $expires };
}

{
    my @chars = ('a' .. 'z', 'A' .. 'Z', 0 .. 9);
    my $sa = join '', map { $chars[rand @chars] } 1 .. 48;
    my $sb = join '', map { $chars[rand @chars] } 1 .. 48;
    write_file("$TMP/secret", "$sa\n");
    write_file("$TMP/secrets", "$sb\r\n\n$sa\n");

    my $now = time;
    my ($rc, $out, $err) = ctl('--secret-file', "$TMP/secret", 'token');
    is($rc, 0, 'token: exit 0');
    my $t = decode_json_ok($out, 'token');
    is_deeply([ sort keys %$t ], [ qw(device expires token) ],
              'token: keys token, device, expires');
    like($t->{token} // '', qr/^[A-Za-z0-9_-]{56}\z/,
         'token: 56 base64url characters');
    like($t->{device} // '', qr/^[0-9a-f]{32}\z/, 'token: device id hex');
    ok(abs(($t->{expires} // 0) - ($now + 30 * 86400)) <= 5,
       'token: expires in 30 days by default');

    my $v = check_token($t->{token}, $sa, 't');
    ok($v && $v->{id} eq $t->{device} && $v->{expires} == $t->{expires}
       && abs($v->{issued} - $now) <= 5,
       'token: HMAC, kind, device and expiry check out');

    ($rc, $out) = run({ env => { OMNI_SECRET => $sa } }, 'token',
                      '--ttl', '0', '--device',
                      '0123456789ABCDEF0123456789ABCDEF');
    $t = $rc == 0 ? $JSON->decode($out) : {};
    ok($t->{expires} == 0 && $t->{device} eq '0123456789abcdef0123456789abcdef'
       && check_token($t->{token}, $sa, 't'),
       'token from OMNI_SECRET, --ttl 0 never expires, --device kept');

    ($rc, $out) = ctl('--secret-file', "$TMP/secret", 'token', '--ttl', '2h');
    $t = $rc == 0 ? $JSON->decode($out) : {};
    ok(abs($t->{expires} - ($now + 7200)) <= 5, 'token --ttl 2h');

    ($rc, $out) = ctl('--secret-file', "$TMP/secrets", 'token');
    $t = $rc == 0 ? $JSON->decode($out) : {};
    ok($rc == 0 && check_token($t->{token}, $sb, 't')
       && !check_token($t->{token}, $sa, 't'),
       'several secrets: the first line signs');

    ($rc, $out) = ctl('--store', $A, '--secret-file', "$TMP/secret",
                      'token', '--profile', id(3));
    $t = $rc == 0 ? $JSON->decode($out) : {};
    ok($rc == 0 && $t->{profile} eq id(3), 'token --profile: exit 0, profile');

    ($rc, $out) = ctl('--store', $A, 'get', '--alias', "device:$t->{device}");
    ok($rc == 0 && $JSON->decode($out)->{id} eq id(3),
       'token --profile: the device resolves to the profile');

    ($rc, undef, $err) = ctl('--store', $A, '--secret-file', "$TMP/secret",
                             'token', '--profile', id(99));
    ok($rc == 1 && $err =~ /not found/, 'token --profile unknown: exit 1');

    ($rc, undef, $err) = ctl('--secret-file', "$TMP/secret", 'token',
                             '--profile', id(3));
    ok($rc == 2 && $err =~ /--profile needs --store/,
       'token --profile without a store: exit 2');

    ($rc, undef, $err) = ctl('token');
    ok($rc == 2 && $err =~ /secret is required/, 'token without a secret: 2');

    ($rc, undef, $err) = run({ env => { OMNI_SECRET => 'short' } }, 'token');
    ok($rc == 2 && $err =~ /at least 32/, 'token with a short secret: 2');

    ($rc, undef, $err) = run({ env => { OMNI_SECRET =>
                        'CHANGE-ME-this-is-the-documented-example-secret' } },
                        'token');
    ok($rc == 2 && $err =~ /example/, 'token with the doc secret: 2');

    ($rc) = ctl('--secret-file', "$TMP/secret", 'token', '--ttl', '3x');
    is($rc, 2, 'token --ttl 3x: exit 2');
}


# --- map growth -----------------------------------------------------------

{
    my $G = "$TMP/grow";
    my ($rc, $out) = ctl('--store', $G, '--map-size', '1m', 'stat',
                         '--create');
    my $s = $rc == 0 ? $JSON->decode($out) : {};
    is($s->{map_size}, 1048576, 'created with a 1 MiB map');

    write_file("$TMP/5k.ndjson", join '', map { profile_line($_) } 1 .. 5000);

    my $err;
    ($rc, $out, $err) = ctl('--store', $G, '--map-size', '1m', 'import',
                            "$TMP/5k.ndjson");
    is($rc, 0, 'import of 5,000 profiles into a 1 MiB map: exit 0')
        or diag $err;
    like($err, qr/imported 5000, failed 0/, 'all 5,000 imported');

    $s = stat_of($G);
    ok($s->{profiles} == 5000 && $s->{aliases} == 10000,
       'stat: 5,000 profiles, 10,000 aliases');
    ok($s->{map_size} > 1048576 && $s->{map_used} > 1048576,
       "the map grew (now $s->{map_size} bytes)");

    ($rc, $out) = ctl('--store', $G, 'get', '--alias', 'customer:cust-4321');
    ok($rc == 0 && $JSON->decode($out)->{id} eq id(4321),
       'a profile from the grown store');
}


# --- 100,000 profiles: timing, reported only --------------------------------

{
    my $H = "$TMP/big";
    write_file("$TMP/100k.ndjson",
               join '', map { profile_line($_) } 1 .. 100000);

    ctl('--store', $H, 'stat', '--create');
    my $t0 = time;
    my ($rc, $out, $err) = ctl('--store', $H, 'import', "$TMP/100k.ndjson");
    my $secs = time - $t0;
    is($rc, 0, 'import of 100,000 profiles: exit 0');
    diag(sprintf 'import of 100,000 profiles: %.2f s (%.0f profiles/s)',
         $secs, 100000 / ($secs || 1));

    $t0 = time;
    ($rc, $out) = ctl('--store', $H, 'export', '--out', "$TMP/100k.out");
    diag(sprintf 'export of 100,000 profiles: %.2f s', time - $t0);
    is(stat_of($H)->{profiles}, 100000, 'stat: 100,000 profiles');
}

done_testing();
