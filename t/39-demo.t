# The demo never goes stale (README's first command, scripts/demo.sh): its
# seed data is moved to "now" at every start, so Ana sees her cart offer;
# a new visitor reads natural copy (no empty name, no debug line); every
# link of every page and banner resolves; a visitor who clicks through to
# the premium product sees the escalation.  The demo runs in a temporary
# directory on a free port, exactly as `make demo` starts it.

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use File::Temp qw(tempdir);
use HTTP::Tiny;

my $root = repo_root();
my $dir  = tempdir('omni-demo-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $port = free_port();
my %env  = (OMNI_DEMO_DIR => $dir, OMNI_DEMO_PORT => $port);

my ($rc, $out, $err) = run_command([ "$root/scripts/demo.sh", 'start' ],
                                   env => \%env, timeout => 60);
is($rc, 0, 'scripts/demo.sh start') or diag "$out\n$err";
END { run_command([ "$root/scripts/demo.sh", 'stop' ], env => \%env) }

my ($ana) = $out =~ /-b 'omni=([^']+)'/;
ok($ana, "the demo printed Ana's cookie");

sub get {
    my ($path, $cookie) = @_;
    return HTTP::Tiny->new(max_redirect => 0)->get("http://127.0.0.1:$port$path",
        { headers => { $cookie ? (Cookie => "omni=$cookie") : () } });
}

# Ana: her cart offer, whatever today's date (demo.sh shows her page
# once; then the offer's 30-minute cooldown starts)
like($out, qr{Ana's page says:\n.*Still thinking about the <strong>Trail Runner 42</strong>, Ana\?}s,
     "Ana sees her cart offer");
my $r = get('/', $ana);
like($r->{content}, qr{Hello Ana, welcome back\.}, "Ana's greeting");

# a new visitor: natural copy.  One new visitor in ten is in the global
# holdout (rules/00-holdout.json) and sees no offer: the first of them
# that /omni/decide says is not held out is the one whose page is read.
my ($cookie, $tries);
for $tries (1 .. 40) {
    $r = get('/');
    ($cookie) = ($r->{headers}{'set-cookie'} // '') =~ /omni=([^;]+)/;
    last unless $cookie;
    my $d = get('/omni/decide', $cookie);
    last if $d->{content} =~ /"holdout":false/;
}
ok($cookie, 'a new visitor gets a cookie');
like($r->{content}, qr{Welcome to Omni Outdoor\.}, 'the greeting without a name');
like($r->{content}, qr{Welcome, friend! Take <strong>\$100 off</strong>}, 'the welcome offer');
unlike($r->{content}, qr{Hello \(|visit 0|stage: |Welcome, there}, 'no empty-name glitch');

# every link of every page, and of the banners shown
my %links;
my @pages = map { s{^\Q$root/demo/html\E}{}r } glob("$root/demo/html/*.html $root/demo/html/*/*.html");
for my $p (@pages, '/') {
    for my $c (undef, $ana, $cookie) {
        my $body = get($p, $c)->{content};
        $links{$_} = $p for grep { m{^/} } $body =~ /href="([^"#]+)"/g;
    }
}
ok(keys %links >= 8, scalar(keys %links) . ' links found');
for my $l (sort keys %links) {
    (my $u = $l) =~ s/&amp;/&/g;
    is(get($u)->{status}, 200, "$l (on $links{$l}) resolves");
}

# the journey: a product page reports its view, and the premium one
# turns the welcome into the escalation
$r = get('/product/summit-pro.html', $cookie);
like($r->{content}, qr{sendBeacon\('/omni/events'}, 'product pages report views');
my $ev = HTTP::Tiny->new->post("http://127.0.0.1:$port/omni/events", {
    headers => { 'Content-Type' => 'text/plain;charset=UTF-8', Cookie => "omni=$cookie" },
    content => '{"type":"track","event":"Product Viewed","properties":{"sku":"SUMMIT-PRO","name":"Summit Pro jacket","category":"premium","price":349,"url":"/product/summit-pro.html"}}' });
is($ev->{status}, 200, 'the beacon (as the page sends it): 200') or diag $ev->{content};
$r = get('/', $cookie);
like($r->{content}, qr{Take <strong>\$150 off</strong>}, 'then the escalation');
like($r->{content}, qr{Summit Pro jacket}, 'naming the jacket');

# in a real browser (headless Chromium, when installed): the page a new
# visitor sees, as a picture (docs/demo.png is a copy of one)
SKIP: {
    my ($chromium) = grep { -x } map { "$_/chromium" } split /:/, $ENV{PATH} // '';
    skip 'no chromium (scripts/install-deps.sh installs it)', 2 unless $chromium;
    mkdir "$root/build/screenshots";
    my $png = "$root/build/screenshots/demo.png";
    unlink $png;
    my @cmd = ($chromium, '--headless', '--no-sandbox', '--disable-gpu',
               '--disable-dev-shm-usage', '--no-first-run', "--user-data-dir=$dir/chromium",
               '--virtual-time-budget=5000', '--hide-scrollbars', '--window-size=1000,900',
               # a headless browser says so, and bots get no banners
               '--user-agent=Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 '
               . '(KHTML, like Gecko) Chrome/120.0 Safari/537.36');
    # each run is a new visitor, one in ten held out (no offer at all):
    # a fresh browser profile per try, five tries
    my ($rc, $dom, $e);
    for my $try (1 .. 5) {
        my @fresh = map { s{^--user-data-dir=.*}{--user-data-dir=$dir/chromium-$try}r } @cmd;
        ($rc, $dom, $e) = run_command([ @fresh, '--dump-dom', "http://127.0.0.1:$port/" ], timeout => 60);
        last if $dom =~ /omni-welcome/;
    }
    like($dom, qr{<div class="omni omni-welcome"><p>Welcome, friend!}, 'the browser shows the welcome offer');
    ($rc, undef, $e) = run_command([ @cmd, "--screenshot=$png", "http://127.0.0.1:$port/" ], timeout => 60);
    ok(-s $png, 'a screenshot of the demo') or diag $e;
}

done_testing();
