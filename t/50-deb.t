# The Debian packages end to end, as docs/install.md tells a new user:
# make deb, dpkg -i on the stock Debian nginx, the documented conf.d
# snippet (refused until the secret is set), nginx -t, start the system
# nginx, a personalized page for a customer whose cookie omnictl minted,
# omnictl as the store's group, then purge and nothing left.
#
# It changes the system (packages, /etc/nginx, a group, port 80), so it
# runs only as root on a machine with dpkg-dev, debhelper, nginx-dev and
# the nginx package, with no system nginx running; every step is serial
# and the END block puts the system back whatever happens.  Other tests
# start their own nginx on loopback ports with their own prefixes and
# never see this one.

use strict;
use warnings;

use Cwd          qw(getcwd);
use File::Temp   ();
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP     ();
use Test::More;
use Time::HiRes  qw(sleep time);

my @PKGS  = qw(libnginx-mod-http-omni omnictl);
my $CONF  = '/etc/nginx/conf.d/omni.conf';
my $LINK  = '/etc/nginx/modules-enabled/50-mod-http-omni.conf';
my $STORE = '/var/lib/omni';
my $HOST  = 'shop.example.com';
my $ANA   = 'a11ce0000000000000000000000000a1';
my $ROOT  = getcwd();

sub have { system("command -v $_[0] >/dev/null 2>&1") == 0 }

sub installed {
    my ($pkg) = @_;
    my $s = `dpkg-query -W -f='\${Status}' $pkg 2>/dev/null`;
    return $s =~ /install ok installed/;
}

sub port80_busy {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => 80,
                                  Proto => 'tcp', Timeout => 1);
    return defined $s;
}

sub nginx_running {
    my $pid = `cat /run/nginx.pid 2>/dev/null` // '';
    chomp $pid;
    return $pid =~ /^\d+$/ && kill(0, $pid);
}

plan skip_all => 'needs root (dpkg -i, /etc/nginx, port 80)' if $> != 0;
for my $tool (qw(dpkg dpkg-buildpackage dh dh_nginx systemd-tmpfiles
                 runuser openssl getent groupadd))
{
    plan skip_all => "$tool is missing (scripts/install-deps.sh installs "
                     . 'the packaging tools)' unless have($tool);
}
plan skip_all => 'the nginx package is not installed' unless installed('nginx');
plan skip_all => 'a system nginx is running: not disturbing it'
    if nginx_running();
plan skip_all => 'port 80 is in use' if port80_busy();
plan skip_all => "$CONF exists: not overwriting the admin's file" if -e $CONF;

my $TMP = File::Temp->newdir('omni-deb-XXXXXX', TMPDIR => 1);
my ($started, $touched) = (0, 0);

# run(CMD...) -> (exit status, output with stderr)
sub run {
    my @cmd = @_;
    my $out = `@cmd 2>&1`;
    return ($? >> 8, $out);
}

sub run_ok {
    my ($name, @cmd) = @_;
    my ($rc, $out) = run(@cmd);
    is($rc, 0, $name) or diag("@cmd:\n$out");
    return $out;
}

# Polls until cond() is true or timeout seconds pass.
sub wait_for {
    my ($cond, $timeout) = @_;
    my $until = time + $timeout;
    while (time < $until) {
        return 1 if $cond->();
        sleep 0.05;
    }
    return $cond->();
}

sub stop_nginx {
    return unless nginx_running();
    system('/usr/sbin/nginx -s quit >/dev/null 2>&1');
    wait_for(sub { !nginx_running() }, 10)
        or system('/usr/sbin/nginx -s stop >/dev/null 2>&1');
    wait_for(sub { !nginx_running() }, 5);
}

sub cleanup {
    stop_nginx() if $started;
    unlink $CONF if $touched;
    system("dpkg --purge @PKGS >/dev/null 2>&1") if $touched;
}

END { cleanup() }
$SIG{INT} = $SIG{TERM} = sub { cleanup(); exit 1 };

# ---- build ----

my $version = do { open my $fh, '<', 'VERSION' or die; local $/; <$fh> };
chomp $version;

run_ok('make deb', "make -s deb BUILD=$TMP/build");

my %deb;
for my $pkg (@PKGS) {
    ($deb{$pkg}) = glob("$TMP/build/deb/${pkg}_${version}-*_amd64.deb");
    ok($deb{$pkg}, "$pkg .deb built") or BAIL_OUT('no .deb');
}

my $abi = `dpkg-query -W -f='\${Provides}' nginx`;
($abi) = $abi =~ /(nginx-abi-[\w.~+-]+)/;
like(`dpkg-deb -f $deb{'libnginx-mod-http-omni'} Depends`,
     qr/\Q$abi\E/, "Depends on the installed nginx's ABI ($abi)");

# The NATS client the cluster links (omni_cluster): the runtime library
# from shlibs, nats-server only suggested (a node connects to servers).
like(`dpkg-deb -f $deb{'libnginx-mod-http-omni'} Depends`,
     qr/\blibnats[\d.]+\b/, 'Depends on the NATS client library (libnats)');
like(`dpkg-deb -f $deb{'libnginx-mod-http-omni'} Suggests`,
     qr/\bnats-server\b/, 'Suggests nats-server');

# ---- install ----

$touched = 1;
run_ok('dpkg -i', "dpkg -i $deb{'libnginx-mod-http-omni'} $deb{omnictl}");

ok(-f '/usr/lib/nginx/modules/ngx_http_omni_module.so', 'module installed');
is(readlink($LINK), '/usr/share/nginx/modules-available/mod-http-omni.conf',
   'modules-enabled link');
like(`cat /usr/share/nginx/modules-available/mod-http-omni.conf`,
     qr{^load_module modules/ngx_http_omni_module\.so;$}m,
     'modules-available snippet');
like(`/usr/bin/omnictl --version`, qr/^omnictl \Q$version\E$/m,
     'omnictl --version is VERSION');
ok(-f '/usr/share/man/man1/omnictl.1.gz', 'man page');
ok(-f '/usr/share/doc/libnginx-mod-http-omni/examples/omni.conf',
   'example conf.d snippet');
ok(-f '/usr/share/doc/libnginx-mod-http-omni/omnictl.md', 'docs');
ok(defined getgrnam('omni'), 'group omni');

my @st = stat $STORE;
ok(@st, "$STORE created");
is(sprintf('%04o', $st[2] & 07777), '2770', "$STORE mode 2770");
is(scalar getpwuid($st[4]), 'www-data', "$STORE owner www-data");
is(scalar getgrgid($st[5]), 'omni', "$STORE group omni");

# ---- the documented conf.d snippet ----

run_ok('copy the example', 'cp',
       '/usr/share/doc/libnginx-mod-http-omni/examples/omni.conf', $CONF);

my ($rc, $out) = run('/usr/sbin/nginx -t');
isnt($rc, 0, 'nginx -t refuses the placeholder secret');
like($out, qr{\[emerg\] (?:\d+#\d+: )?invalid "omni_secret": secret is a placeholder \(it contains "changeme"\), not a key; generate one with: openssl rand -base64 48 in \Q$CONF\E:\d+$}m,
     '... saying why, with the file:line of the snippet') or diag($out);

# the documented command (docs/install.md, the snippet's comment)
run_ok('set a generated secret',
       q{sed -i "s|CHANGE-ME|$(openssl rand -base64 48)|" } . $CONF);
run_ok('nginx -t', '/usr/sbin/nginx -t');

my ($secret) = `cat $CONF` =~ /^omni_secret "([^"]+)";/m;
ok($secret && length $secret >= 32, 'secret in place');
{
    open my $fh, '>', "$TMP/secret" or die;
    print $fh "$secret\n";
    close $fh;
    chmod 0644, "$TMP/secret";
    chmod 0755, "$TMP";
}

# ---- start the system nginx ----

my $log = '/var/log/nginx/error.log';
my $log_at = -s $log // 0;

$started = 1;
run_ok('nginx starts', '/usr/sbin/nginx');
ok(wait_for(\&port80_busy, 10), 'nginx listens on port 80');
ok(wait_for(sub { -f "$STORE/data.mdb" }, 10), 'store created');

# omnictl as the store's owner, as docs/install.md says
my $ctl = "runuser -u www-data -- /usr/bin/omnictl --store $STORE";
run_ok('import as www-data', "$ctl import $ROOT/demo/profiles.ndjson");

my $cookie = run_ok('mint a cookie for Ana',
    "$ctl --secret-file $TMP/secret cookie --profile $ANA");
($cookie) = $cookie =~ /"cookie":"([^"]+)"/;
ok($cookie, 'cookie minted');

my $decide = run_ok('decide for Ana',
    "$ctl decide --profile $ANA --format json "
    . '--rules /usr/share/libnginx-mod-http-omni/rules');
my $hero = eval {
    JSON::PP->new->decode($decide)->{slots}{hero}{html}
} // '';
ok($hero, 'Ana has a hero banner') or diag($decide);

# by name, connected to the loopback address (as the harness does)
my $http = HTTP::Tiny->new(timeout => 10, proxy => undef,
                           http_proxy => undef, max_redirect => 0);
sub get {
    my ($host, %headers) = @_;
    return $http->get("http://$host/",
                      { headers => \%headers, peer => '127.0.0.1' });
}

my $r = get($HOST, Cookie => "omni=$cookie");
is($r->{status}, 200, 'GET / on the omni server');
ok(index($r->{content}, $hero) >= 0, 'the page carries Ana\'s banner')
    or diag($r->{content});
unlike($r->{content}, qr/<!--omni:slot/, 'the marker is replaced');

my $r2 = get($HOST);
like($r2->{headers}{'set-cookie'} // '', qr/^omni=/,
     'a new visitor gets a signed cookie');

my $def = get('localhost');
is($def->{status}, 200, "Debian's default site still answers");

# the store is shared with the omni group (setgid directory)
@st = stat "$STORE/data.mdb";
is(scalar getgrgid($st[5]), 'omni', 'data.mdb group omni');
ok(($st[2] & 0060) == 0060, 'data.mdb group read-write');

# a user outside the group is told what to do
($rc, $out) = run("runuser -u nobody -- /usr/bin/omnictl --store $STORE "
                  . 'stat');
is($rc, 2, 'omnictl as nobody fails');
like($out, qr/join the group "omni".*sudo -u www-data/,
     '... naming the group and sudo -u www-data') or diag($out);

# a member of the group (as "adduser $USER omni" makes one) may write
{
    open my $fh, '>', "$TMP/p.json" or die $!;
    print $fh qq({"id":"0123456789abcdef0123456789abcdef","visits":1}\n);
    close $fh;
    chmod 0644, "$TMP/p.json";
}
($rc, $out) = run("runuser -u nobody -g omni -- /usr/bin/omnictl --store "
                  . "$STORE put $TMP/p.json");
is($rc, 0, 'omnictl as a member of the omni group writes') or diag($out);

stop_nginx();
$started = 0;
ok(!nginx_running(), 'nginx stopped');

my $new_log = '';
if (open my $fh, '<', $log) {
    seek $fh, $log_at, 0;
    local $/;
    $new_log = <$fh> // '';
}
unlike($new_log, qr/\[(alert|crit|emerg)\]/, 'no alert, crit or emerg')
    or diag($new_log);

# ---- remove (keeps the store), install again ----

unlink $CONF;
run_ok('dpkg -r', "dpkg -r @PKGS");
ok(!-e $LINK && -l "$LINK.removed", 'remove: the link becomes .removed');
ok(-f "$STORE/data.mdb", 'remove: the store is kept');
ok(defined getgrnam('omni'), 'remove: the group is kept');
ok(!-e '/usr/lib/nginx/modules/ngx_http_omni_module.so',
   'remove: the module is gone');
run_ok('nginx -t after remove', '/usr/sbin/nginx -t');
run_ok('dpkg -i again', "dpkg -i $deb{'libnginx-mod-http-omni'} $deb{omnictl}");
is(readlink($LINK), '/usr/share/nginx/modules-available/mod-http-omni.conf',
   'installed again: the link is back');
ok(!-l "$LINK.removed", '... and no .removed link');
like(run_ok('the store is still there',
            "/usr/bin/omnictl --store $STORE get $ANA"),
     qr/"id": "$ANA"/, '... with its profiles');

# ---- purge ----

my @files = map { split /\n/, `dpkg -L $_` } @PKGS;
unlink $CONF;
run_ok('dpkg --purge', "dpkg --purge @PKGS");
$touched = 0;

ok(!installed($_), "$_ purged") for @PKGS;
my @left = grep { -f $_ } @files;
is_deeply(\@left, [], 'no file of the packages is left');
ok(!-e $STORE, "$STORE removed");
ok(!-e "/usr/share/doc/$PKGS[0]" && !-e "/usr/share/$PKGS[0]",
   'no directory of the packages is left');
ok(!-e "/usr/lib/tmpfiles.d/$PKGS[0].conf", 'no tmpfiles entry');
ok(!-e $LINK && !-l $LINK && !-l "$LINK.removed", 'no modules-enabled link');
ok(!defined getgrnam('omni'), 'group omni removed');
run_ok('nginx -t after purge', '/usr/sbin/nginx -t');

done_testing();
