# make install (docs/install.md), without root: DESTDIR staging with
# PREFIX=/usr as the package build uses it, and the default PREFIX with
# one directory overridden.  Exactly the documented files land under
# DESTDIR (nothing else), with their modes; the staged omnictl prints
# the version and the man page renders; and the staged example conf.d
# snippet, set up as install.md says (the documented sed for the secret,
# the paths under DATADIR for another prefix), runs next to a default
# server: nginx -t, a personalized page for its server_name, the default
# server for any other name.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use File::Find   ();
use File::Temp   ();
use JSON::PP     ();

my $ROOT = repo_root();
my $TMP  = File::Temp->newdir('omni-install-XXXXXX', TMPDIR => 1);
chmod 0755, "$TMP";     # nginx's workers read the staged pages
my $D    = "$TMP/stage";
my $DOC  = 'libnginx-mod-http-omni';

my $version = do {
    open my $fh, '<', "$ROOT/VERSION" or die "VERSION: $!";
    local $/;
    <$fh>;
};
chomp $version;

# Every file and symlink under $dir, relative, with its mode.
sub tree {
    my ($dir) = @_;
    my %t;
    File::Find::find({ no_chdir => 1, wanted => sub {
        return if -d $_ && !-l $_;
        (my $rel = $File::Find::name) =~ s{^\Q$dir\E/}{};
        $t{$rel} = sprintf '%04o', (lstat $_)[2] & 07777;
    } }, $dir);
    return \%t;
}

sub make_install {
    my (@vars) = @_;
    my ($rc, $out, $err) = run_command(['make', '-s', '-C', $ROOT, 'install',
                                        @vars], timeout => 600);
    return ($rc, "$out$err");
}

# What docs/install.md's table says goes where, relative to DESTDIR.
sub expected {
    my (%dir) = @_;
    my %e = ("$dir{moddir}/ngx_http_omni_module.so" => '0644',
             "$dir{bindir}/omnictl"                 => '0755',
             "$dir{mandir}/man1/omnictl.1"          => '0644',
             "$dir{docdir}/README.md"               => '0644',
             "$dir{docdir}/examples/omni.conf"      => '0644',
             "$dir{datadir}/html/index.html"        => '0644');
    $e{"$dir{docdir}/" . ($_ =~ s{.*/}{}r)} = '0644' for glob("$ROOT/docs/*.md");
    $e{"$dir{datadir}/rules/" . ($_ =~ s{.*/}{}r)} = '0644'
        for glob("$ROOT/rules/*.json");
    s{^/}{} for values %e;
    return { map { s{^/}{}r => $e{$_} } keys %e };
}

# ---- DESTDIR with PREFIX=/usr (what debian/rules does) ----

my ($rc, $out) = make_install("DESTDIR=$D", 'PREFIX=/usr');
is($rc, 0, 'make install DESTDIR=... PREFIX=/usr') or diag $out;

is_deeply(tree($D), expected(moddir => '/usr/lib/nginx/modules',
                             bindir => '/usr/bin',
                             mandir => '/usr/share/man',
                             docdir => "/usr/share/doc/$DOC",
                             datadir => "/usr/share/$DOC"),
          'exactly the documented files, with their modes');

($rc, $out) = run_command(["$D/usr/bin/omnictl", '--version']);
like($out, qr/^omnictl \Q$version\E$/m, 'the staged omnictl prints VERSION');

my $man = do {
    open my $fh, '<', "$D/usr/share/man/man1/omnictl.1" or die $!;
    local $/;
    <$fh>;
};
like($man, qr/^\.TH OMNICTL 1 .*\Q$version\E/m, 'the man page carries VERSION');
unlike($man, qr/\@VERSION\@/, '... and no placeholder');
SKIP: {
    skip 'man is not installed', 1
        if system('command -v man >/dev/null 2>&1') != 0;
    my ($mrc, $text) = run_command(['man', '-l', '-P', 'cat',
                                    "$D/usr/share/man/man1/omnictl.1"],
                                   env => { MANWIDTH => 80 });
    like($text, qr/^\s+backup DIR$/m, 'man -l renders it') or diag $text;
}

# ---- the default PREFIX, one directory overridden ----

my $D2 = "$TMP/stage2";
($rc, $out) = make_install("DESTDIR=$D2", "BINDIR=/opt/omni/bin");
is($rc, 0, 'make install with the default PREFIX and BINDIR') or diag $out;
is_deeply(tree($D2), expected(moddir => '/usr/lib/nginx/modules',
                              bindir => '/opt/omni/bin',
                              mandir => '/usr/local/share/man',
                              docdir => "/usr/local/share/doc/$DOC",
                              datadir => "/usr/local/share/$DOC"),
          'PREFIX defaults to /usr/local; the module goes where nginx looks');

# ---- the staged example, set up as install.md says ----

my $conf = "$TMP/omni.conf";
system('cp', "$D/usr/share/doc/$DOC/examples/omni.conf", $conf) == 0
    or die 'cp failed';
# the documented command, as it is in install.md
my ($sed) = do {
    open my $fh, '<', "$ROOT/docs/install.md" or die $!;
    local $/;
    <$fh> =~ /^(sudo sed -i "s\|CHANGE-ME\|.*?" \S+)$/m;
};
ok($sed, 'install.md shows the sed that sets the secret') or diag 'none';
$sed //= '';
$sed =~ s{^sudo }{};
$sed =~ s{/etc/nginx/conf\.d/omni\.conf$}{$conf};
($rc, $out) = run_command(['sh', '-c', $sed]);
is($rc, 0, 'the documented sed') or diag $out;

my $text = do { open my $fh, '<', $conf or die $!; local $/; <$fh> };
my ($secret) = $text =~ /^omni_secret "([^"]+)";/m;
ok($secret && $secret ne 'CHANGE-ME' && length $secret >= 64,
   'a generated secret in place');
like($text, qr/^\s*server_name shop\.example\.com;/m, 'the example has a server_name');

# another prefix: omni_rules and root under DATADIR; the store and the
# port the test's (the workers run as nobody: a store they can reach)
my $data = "$D/usr/share/$DOC";
$text =~ s{/usr/share/\Q$DOC\E/}{$data/}g;
$text =~ s{/var/lib/omni}{$TMP/store}g;
$text =~ s{^\s*listen \[::\]:80;\n}{}m;
$text =~ s{^(\s*)listen 80;}{${1}listen 127.0.0.1:\$TEST_NGINX_PORT;}m;

# Debian's nginx.conf: conf.d inside http, then the default site
my $port = start_nginx(<<"CONF", full_config => 1, user_files => ">>> conf.d/omni.conf\n$text");
load_module $D/usr/lib/nginx/modules/ngx_http_omni_module.so;
pid \$TEST_NGINX_PREFIX/logs/nginx.pid;
error_log \$TEST_NGINX_PREFIX/logs/error.log;
events { worker_connections 64; }
http {
    types { text/html html; }
    default_type application/octet-stream;
    access_log off;
    include \$TEST_NGINX_PREFIX/conf.d/*.conf;
    server {
        listen 127.0.0.1:\$TEST_NGINX_PORT default_server;
        server_name _;
        location / { return 200 "the default site\\n"; }
    }
}
CONF
ok($port, 'nginx starts with the staged module and the example snippet');

# a visitor's cookie from the staged omnictl, and what it decides
my $store = "$TMP/store";
ok(wait_for(sub { -f "$store/data.mdb" }, 10), 'nginx created the store');
SKIP: {
    skip 'not root: the workers run as this user', 1 if $> != 0;
    is(scalar getpwuid((stat "$store/data.mdb")[4]), 'nobody',
       "... and, as root, handed it to the workers' user (nobody)");
}
open my $sf, '>', "$TMP/secret" or die $!;
print $sf "$secret\n";
close $sf;
my ($hero, $cookie);
for my $n (1 .. 20) {
    my $vid = sprintf 'a5a5%028x', $n;
    my ($crc, $cout) = run_command(["$D/usr/bin/omnictl", '--secret-file',
                                    "$TMP/secret", 'cookie', '--device', $vid]);
    my ($drc, $dout) = run_command(["$D/usr/bin/omnictl", '--store', $store,
                                    'decide', '--profile', $vid, '--rules',
                                    "$data/rules", '--format', 'json']);
    my $h = eval { JSON::PP::decode_json($dout)->{slots}{hero}{html} };
    next unless $h && $cout =~ /"cookie":"([^"]+)"/;
    ($hero, $cookie) = ($h, $1);
    last;
}
ok($hero, 'omnictl decides a hero banner for a new visitor') or diag 'none';

my $r = http_get('/', Host => 'shop.example.com', Cookie => "omni=$cookie");
is($r->{status}, 200, 'the example server answers its server_name');
ok(index($r->{content}, $hero) >= 0, 'the example page carries the banner')
    or diag $r->{content};
unlike($r->{content}, qr/<!--omni:slot/, 'the marker is replaced');

$r = http_get('/', Host => 'shop.example.com');
like($r->{headers}{'set-cookie'} // '', qr/^omni=/, 'a new visitor gets a cookie');

# quickstart.md's check: a new visitor sees the welcome banner, unless in
# the example rules' 10% holdout (the marker stays)
my @seen = map {
    my $c = http_get('/', Host => 'shop.example.com')->{content};
    $c =~ /class="omni omni-welcome"/ ? 'welcome'
        : $c =~ /<!--omni:slot hero-->/ ? 'holdout' : 'other';
} 1 .. 5;
ok((grep { $_ eq 'welcome' } @seen) && !(grep { $_ eq 'other' } @seen),
   "new visitors: the welcome banner or the holdout (@seen)");

$r = http_get('/', Host => 'localhost');
is($r->{content}, "the default site\n", 'any other name: the default site');
is($r->{headers}{'set-cookie'}, undef, '... without a cookie');

ok(stop_nginx(), 'nginx stopped');
check_logs(no_error_log => ['[error]']);

done_testing();
