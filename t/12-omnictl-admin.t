# omnictl for operators: --version, the man page, import progress, what a
# missing store and a permission error say, backup and restore of a
# busy store (every database compared with mdb_dump), restore refusing a
# store in use, and a store newer than this build.  Plain omnictl
# against stores in temporary directories, as t/10-omnictl.t.

use strict;
use warnings;

use File::Temp   ();
use JSON::PP     ();
use Test::More;
use Time::HiRes  qw(sleep time);

my $CTL = $ENV{OMNI_OMNICTL} // 'build/omnictl';

plan skip_all => "$CTL is not built (make omnictl)" unless -x $CTL;

delete @ENV{qw(OMNI_STORE OMNI_SECRET)};

my $TMP  = File::Temp->newdir('omnictl-XXXXXX', TMPDIR => 1);
my $JSON = JSON::PP->new->canonical;
my $n    = 0;

# run({stdin => FILE, bg => 1}, ARGS) -> (exit code, stdout, stderr), or
# the pid and the output base with bg
sub run {
    my ($opt, @args) = @_;

    my $base = "$TMP/run" . ++$n;
    my $pid = fork // die "fork: $!";

    if ($pid == 0) {
        open STDIN,  '<', $opt->{stdin} // '/dev/null' or die;
        open STDOUT, '>', "$base.out" or die;
        open STDERR, '>', "$base.err" or die;
        exec @{ $opt->{cmd} // [$CTL] }, @args or exit 127;
    }

    return ($pid, $base) if $opt->{bg};

    waitpid $pid, 0;

    return ($? & 127 ? 128 + ($? & 127) : $? >> 8,
            slurp("$base.out"), slurp("$base.err"));
}

sub ctl { run({}, @_) }

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return '';
    local $/;
    return <$fh> // '';
}

sub spew {
    my ($path, $data) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $data;
    close $fh;
}

sub wait_for {
    my ($cond, $timeout) = @_;
    my $until = time + $timeout;
    while (time < $until) {
        return 1 if $cond->();
        sleep 0.02;
    }
    return $cond->();
}

sub id { sprintf '%032x', shift }

sub profiles {
    my ($from, $to) = @_;
    return join '', map {
        $JSON->encode({ id => id($_), visits => $_ % 7,
                        aliases => [ { type => 'customer', id => "c$_" },
                                     { type => 'email',
                                       id => "u$_\@example.com" } ],
                        attributes => { n => "$_" } }) . "\n"
    } $from .. $to;
}

# Every named database of a store as mdb_dump prints it (the names too).
sub dump_all {
    my ($dir) = @_;
    my @names = grep { length } split /\n/, `mdb_dump -l $dir`;
    return { map { $_ => scalar `mdb_dump -s $_ $dir` } @names };
}

my $HAVE_MDB = system('command -v mdb_dump >/dev/null 2>&1') == 0;

# ---- --version and the man page ----

{
    my $version = slurp('VERSION');
    chomp $version;

    my ($rc, $out, $err) = ctl('--version');
    is($rc, 0, '--version: exit 0');
    like($out, qr/^omnictl \Q$version\E\n/, '--version: VERSION');
    like($out, qr/^store schema \d+, profile record \d+\.\d+, LMDB /m,
         '--version: the formats it reads and writes');
    is($err, '', '--version: nothing on stderr');

    ($rc, $out) = ctl('--help');
    my @cmds = $out =~ /^  (\w+)/mg;
    @cmds = grep { $_ ne 'help' } @cmds;
    ok(@cmds >= 14, 'commands listed in --help');

    my $man = slurp('omnictl/omnictl.1');
    my $md  = slurp('docs/omnictl.md');
    for my $c (@cmds) {
        ok($man =~ /^\.B[RI ]*\s*"?\Q$c\E\b/m, "man page documents $c");
        ok($md =~ /^### \Q$c\E\b/m, "docs/omnictl.md documents $c");
    }
    like($man, qr/\\-\\-version/, 'man page: --version');
}

# ---- the man page's examples work as written ----

{
    my $s = "$TMP/man";
    my ($rc) = ctl('--store', $s, 'stat', '--create');
    mkdir "$TMP/man-backups";
    spew("$TMP/profiles.ndjson", $JSON->encode({
        id => id(77), aliases => [ { type => 'email',
                                     id => 'ana@example.com' } ] }) . "\n");
    spew("$TMP/omni.secret", 'q3mJ0tQ7c1mP7Vw7o0Qd0kXJq3f9yQ2VAbCdEfGhIjKlMnOpQrStUvWxYz012345' . "\n");
    my ($ex) = slurp('omnictl/omnictl.1') =~ /^\.SH EXAMPLES\n\.nf\n(.*?)^\.fi$/ms;
    $ex =~ s/\\-/-/g;
    $ex =~ s/\\\\\n\s*/ /g;                   # roff's \\ line continuations
    my @lines = grep { /\S/ } split /\n/, $ex;
    ok(@lines >= 4, scalar(@lines) . ' examples in the man page');
    for my $line (@lines) {
        (my $cmd = $line) =~ s{/var/lib/omni}{$s}g;
        $cmd =~ s{/var/backups}{$TMP/man-backups}g;
        $cmd =~ s{/etc/nginx/omni\.secret}{$TMP/omni.secret}g;
        $cmd =~ s{ profiles\.ndjson}{ $TMP/profiles.ndjson}g;
        $cmd =~ s{ ID$}{' ' . id(77)}e;
        $cmd =~ s{^omnictl }{$CTL };
        my ($erc, $out, $err) = run({ cmd => ['sh', '-c', $cmd] });
        is($erc, 0, "man page example: $line") or diag "$cmd\n$err";
    }
}

# ---- a missing store, import --create, progress ----

my $input = "$TMP/in.ndjson";
spew($input, profiles(1, 3000));

{
    my $s = "$TMP/new";
    my ($rc, $out, $err) = ctl('--store', $s, 'import', $input);
    is($rc, 2, 'import into a missing store: exit 2');
    like($err, qr/does not exist: create it with "omnictl --store \Q$s\E stat --create" or "import --create"/,
         'import into a missing store suggests --create');

    ($rc, $out, $err) = ctl('--store', $s, 'get', id(1));
    like($err, qr/stat --create/, 'get on a missing store suggests stat --create');

    ($rc, $out, $err) = ctl('--store', $s, 'import', '--create', $input);
    is($rc, 0, 'import --create: exit 0') or diag $err;
    unlike($err, qr/%/, 'no progress when stderr is not a terminal');
    like($err, qr/imported 3000, failed 0/, 'summary');

    ($rc, $out, $err) = run({ stdin => $input }, '--store', $s, 'import',
                            '--progress');
    is($rc, 0, 'import --progress from a redirected file');
    like($err, qr/^omnictl: import: \d+ imported, 0 failed, \d+ profiles\/s, \d+\.\d%, ETA \d\d:\d\d:\d\d$/m,
         '--progress: percentage and ETA for a known size');

    ($rc, $out, $err) = run({ cmd => ['sh', '-c',
                                      "cat $input | $CTL \"\$@\"", 'sh'] },
                            '--store', $s, 'import', '--progress');
    is($rc, 0, 'import --progress from a pipe');
    like($err, qr/^omnictl: import: \d+ imported, 0 failed, \d+ profiles\/s$/m,
         '--progress from a pipe: no percentage (size unknown)');
}

# ---- permission errors ----

SKIP: {
    skip 'needs root to run omnictl as another user', 3 if $> != 0;
    skip 'runuser is missing', 3
        if system('command -v runuser >/dev/null 2>&1') != 0;

    my $s = "$TMP/shared";
    my ($rc) = ctl('--store', $s, 'stat', '--create');
    is($rc, 0, 'store created');

    # the packaged layout: owner, a group, mode 2770
    my $group = getgrgid((getpwnam('daemon'))[3]) // 'daemon';
    system('chown', '-R', "daemon:$group", $s);
    chmod 02770, $s;
    chmod 0755, $TMP;

    my $out;
    ($rc, $out) = (undef, scalar `runuser -u nobody -- $CTL --store $s stat 2>&1`);
    like($out, qr/permission denied: join the group "\Q$group\E" that owns the store \(sudo adduser "\$USER" \Q$group\E, then log in again\), or run omnictl as "sudo -u daemon omnictl \.\.\."/,
         'permission error names the group and sudo -u the owner');

    chmod 0700, $s;
    $out = `runuser -u nobody -- $CTL --store $s stat 2>&1`;
    like($out, qr/permission denied: run omnictl as the store's owner: "sudo -u daemon omnictl \.\.\."/,
         'without group access: sudo -u the owner');
}

# ---- backup and restore of a busy store ----

my $S = "$TMP/busy";
my $BASE = 0;           # the busy store's profiles

{
    my ($rc, $out, $err) = ctl('--store', $S, 'import', '--create', $input);
    is($rc, 0, 'busy store: profiles and aliases') or diag $err;

    # events: page views and purchases (touchpoints, idempotency keys),
    # and identifies that stitch cookies onto customers (merges)
    my @ev;
    for my $i (1 .. 200) {
        my $anon = sprintf '%032x', 0xa0000000 + $i;   # not a profile id
        push @ev, { type => 'track', event => 'Product Viewed',
                    anonymousId => $anon, messageId => "v$i",
                    properties => { sku => "S$i" } };
        push @ev, { type => 'identify', anonymousId => $anon,
                    userId => "c$i", messageId => "i$i" } if $i % 2;
        push @ev, { type => 'track', event => 'Order Completed',
                    userId => "c$i", messageId => "o$i",
                    properties => { order_id => "ord$i", total => 10,
                                    products => [ { sku => "S$i" } ] } }
            if $i % 5 == 0;
    }
    spew("$TMP/events.ndjson", join '', map { $JSON->encode($_) . "\n" } @ev);
    ($rc, $out, $err) = ctl('--store', $S, 'event', "$TMP/events.ndjson");
    is($rc, 0, 'busy store: events applied') or diag $err;

    # a person forgotten: tombstones of the cookies stitched onto c1
    ($rc, $out, $err) = ctl('--store', $S, 'forget', '--alias', 'customer:c1');
    is($rc, 0, 'busy store: a person forgotten') or diag $err;

    my $stat = $JSON->decode((ctl('--store', $S, 'stat'))[1]);
    ok($stat->{touchpoints} > 0, "touchpoints: $stat->{touchpoints}");
    ok($stat->{seen} > 0, "idempotency keys: $stat->{seen}");
    $BASE = $stat->{profiles};
}

SKIP: {
    skip 'mdb_dump is missing (lmdb-utils)', 12 unless $HAVE_MDB;

    # every database of the store, whatever this build has, holds entries
    # (but tpindex, no longer written: store-format.md)
    my $before = dump_all($S);
    ok(keys %$before >= 9, 'the store\'s databases: '
       . join(' ', sort keys %$before));
    for my $db ((grep { $_ ne 'tpindex' } sort keys %$before),
                qw(profiles aliases touchpoints seen merged meta forgotten))
    {
        ok(exists $before->{$db} && $before->{$db} =~ /^ /m,
           "$db holds entries before the backup");
    }

    my ($rc, $out, $err) = ctl('--store', $S, 'backup', "$TMP/b1");
    is($rc, 0, 'backup: exit 0') or diag $err;
    my $b = eval { $JSON->decode($out) } // {};
    is($b->{backup}, "$TMP/b1/data.mdb", 'backup: names the file');
    is($b->{profiles}, $BASE, 'backup: reports its profiles') or diag $out;
    is(sprintf('%o', (stat "$TMP/b1/data.mdb")[2] & 0777), '640',
       'backup: mode 0640');

    ($rc, $out, $err) = ctl('--store', $S, 'backup', "$TMP/b1");
    is($rc, 2, 'backup never overwrites');
    like($err, qr/exists: a backup never overwrites one/, '... and says so');

    is_deeply(dump_all("$TMP/b1"), $before,
              'the backup holds every database, entry for entry');

    # the store changes, then the backup is restored over it
    spew("$TMP/more.ndjson", profiles(5001, 5100));
    ctl('--store', $S, 'import', "$TMP/more.ndjson");
    ($rc, $out, $err) = ctl('--store', $S, 'restore', "$TMP/b1");
    is($rc, 0, 'restore: exit 0') or diag $err;
    is_deeply(dump_all($S), $before, 'restored: every database as before');
    ok(-f "$S/data.mdb.before-restore", 'the replaced store is kept');
    is((ctl('--store', $S, 'get', id(5001)))[0], 1,
       'a profile added after the backup is gone');

    # the mdb_copy commands of docs/omnictl.md, then restore from that
    my ($block) = slurp('docs/omnictl.md')
        =~ /^```sh\n(d=\/var\/backups\/.*?mdb_copy .*?)^```$/ms;
    ok($block, 'omnictl.md shows how to copy with mdb_copy');
    $block =~ s{/var/lib/omni}{$S}g;
    mkdir "$TMP/mdb-copies";
    $block =~ s{/var/backups}{$TMP/mdb-copies}g;
    ($rc, $out, $err) = run({ cmd => ['sh', '-ec', $block] });
    is($rc, 0, 'the documented mdb_copy commands') or diag "$block\n$err";
    my ($copy) = glob("$TMP/mdb-copies/omni-*");
    is(sprintf('%o', (stat "$copy/data.mdb")[2] & 0777), '640',
       '... make a copy of mode 0640');
    ($rc, $out, $err) = ctl('--store', "$TMP/from-mdb-copy", 'restore', $copy);
    is($rc, 0, 'restore from the mdb_copy copy') or diag $err;
    is_deeply(dump_all("$TMP/from-mdb-copy"), $before, '... with every database');

    # restore into a store that does not exist yet (another machine)
    ($rc, $out, $err) = ctl('--store', "$TMP/fresh", 'restore', "$TMP/b1");
    is($rc, 0, 'restore into a new directory') or diag $err;
    is_deeply(dump_all("$TMP/fresh"), $before, '... with every database');
}

# ---- a hot backup during an import is one transaction's state ----

{
    my $big = "$TMP/big.ndjson";
    spew($big, profiles(10001, 50000));

    my ($pid, $base) = run({ bg => 1 }, '--store', $S, 'import', $big);
    my (@counts, $k);
    while (waitpid($pid, 1) == 0 && $k++ < 50) {
        my ($rc, $out) = ctl('--store', $S, 'backup', "$TMP/hot$k");
        push @counts, eval { $JSON->decode($out)->{profiles} } // -1;
    }
    waitpid($pid, 0) if kill 0, $pid;

    ok(@counts > 0, 'backups taken during the import: ' . scalar @counts);
    my @odd = grep { $_ < $BASE || ($_ - $BASE) % 10000 != 0 } @counts;
    is_deeply(\@odd, [], "each holds whole import batches only ($BASE + "
              . 'k * 10000 profiles)') or diag "@counts";
}

# ---- restore refuses a store in use ----

{
    my ($pid, $base) = run({ bg => 1 }, '--store', $S, 'tail', '-f');
    ok(wait_for(sub { -s "$base.out" }, 10), 'a reader holds the store open');

    my ($rc, $out, $err) = ctl('--store', $S, 'restore', "$TMP/b1");
    is($rc, 2, 'restore while in use: exit 2');
    like($err, qr/is in use by another process \(nginx or omnictl\): stop nginx .* or give --force/,
         'restore while in use: says what to do');

    ($rc, $out, $err) = ctl('--store', $S, 'restore', '--force', "$TMP/b1");
    is($rc, 0, 'restore --force: exit 0') or diag $err;
    like($err, qr/restart nginx now/, 'restore --force: restart nginx');

    kill 'TERM', $pid;
    waitpid $pid, 0;
}

# ---- a store newer than this build ----

SKIP: {
    skip 'mdb_dump/mdb_load are missing (lmdb-utils)', 5 unless $HAVE_MDB;

    my $s = "$TMP/newer";
    ctl('--store', $s, 'stat', '--create');

    # meta "schema" is a u32 in host order: 99 (little-endian here)
    my $meta = `mdb_dump -s meta $s`;
    $meta =~ s/^( 736368656d61\n )[0-9a-f]{8}$/${1}63000000/m
        or BAIL_OUT("no schema in meta:\n$meta");
    $meta =~ s/^db_pagesize=.*\n//m;    # a key mdb_load does not read
    spew("$TMP/meta.dump", $meta);
    system("mdb_load -s meta -f $TMP/meta.dump $s") == 0
        or BAIL_OUT('mdb_load failed');

    my ($rc, $out, $err) = ctl('--store', $s, 'stat');
    is($rc, 2, 'a newer store: exit 2');
    like($err, qr/store schema 99 is newer than this build supports \(1\): it was written by a newer version; upgrade the module and omnictl, or restore a backup taken before the upgrade/,
         'a newer store: refused, with what to do');

    ($rc, $out, $err) = ctl('--store', $s, 'backup', "$TMP/newer-b");
    isnt($rc, 0, 'backup of a newer store is refused');

    # such a backup, made by the newer version
    mkdir "$TMP/newer-b";
    system('cp', "$s/data.mdb", "$TMP/newer-b/data.mdb");
    ($rc, $out, $err) = ctl('--store', "$TMP/fresh", 'restore',
                            "$TMP/newer-b");
    isnt($rc, 0, 'restore of a newer backup is refused');
    like($err, qr/schema 99 is newer.*the store was not changed/s,
         '... and the store is left alone');
}

done_testing();
