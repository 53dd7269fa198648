# omni_rules: configuration-time validation (nginx -t names
# file:line:column for every error), the check= parameter, live reload of
# the rules directory by each worker's timer (a broken file keeps its last
# good version serving while the other files reload; an error between
# files keeps the whole previous set), and "nginx -s reload" with a broken
# directory (nginx keeps the old configuration, old rules included,
# serving).

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use OmniCookie;
use Time::HiRes ();

our $VID = 'c0ffee00000000000000000000000001';

sub cookie { 'omni=' . mint_cookie(TEST_SECRET, $VID) }

sub spew {
    my ($path, $text) = @_;
    open(my $fh, '>:raw', "$path.tmp") or die "$path: $!";
    print $fh $text;
    close $fh or die "$path: $!";
    # rename: the worker's scan never sees a half-written file
    rename "$path.tmp", $path or die "rename $path: $!";
}

# A one-rule file: banner $text in $slot for everybody.
sub rule {
    my ($id, $slot, $text, %o) = @_;
    my $prio = $o{priority} // 0;
    return qq({\n  "id": "$id",\n  "priority": $prio,\n)
         . qq(  "banner": {"slot": "$slot", "html": "<b>$text</b>"}\n}\n);
}

sub page { http_get('/index.html', Cookie => cookie())->{content} }

sub rules_dir { "$OmniTest::PREFIX/rules" }

sub count_matches {
    my ($re) = @_;
    my @m = error_log_text() =~ /$re/g;
    return scalar @m;
}

run_blocks();

__DATA__

=== TEST 1: nginx -t names file:line:column for an unknown key, a JSON syntax error and a bad regex, all of them
--- http_config
omni_rules $TEST_NGINX_PREFIX/rules;
--- user_files
>>> rules/a.json
{
  "id": "a",
  "whenn": {"stage": "new"},
  "banner": {"slot": "hero", "html": "x"}
}
>>> rules/b.json
{
  "id": "b",
  "priority": 5,
}
>>> rules/c.json
{
  "id": "c",
  "when": {"path": {"regex": "^/p/[0-9+$"}},
  "banner": {"slot": "hero", "html": "x"}
}
>>> rules/d.json
{"id": "d", "banner": {"slot": "hero", "html": "fine"}}
--- config
location = /t { return 200; }
--- must_die
qr/\[emerg\] .*omni_rules: \S+\/rules\/a\.json:3:3: whenn: unknown key "whenn" in rule in \S+nginx\.conf:\d+/
qr/\[emerg\] .*omni_rules: \S+\/rules\/b\.json:4:1: string or '\}' expected near '\}' in \S+nginx\.conf:\d+/
qr/\[emerg\] .*omni_rules: \S+\/rules\/c\.json:3:41: when\.path\.regex: invalid regex: missing terminating \] for character class at offset 10 in /
qr/(?s)a\.json:3:3: .*b\.json:4:1: .*c\.json:3:41: /
configuration file $TEST_NGINX_PREFIX/conf/nginx.conf test failed

=== TEST 2: one unknown key alone fails the whole directory
--- http_config
omni_rules $TEST_NGINX_PREFIX/rules;
--- user_files
>>> rules/good.json
{"id": "good", "banner": {"slot": "hero", "html": "fine"}}
>>> rules/typo.json
{"id": "typo",
 "banner": {"slot": "hero", "html": "x", "colour": "red"}}
--- config
location = /t { return 200; }
--- must_die
omni_rules: $TEST_NGINX_PREFIX/rules/typo.json:2:42: banner.colour: unknown key "colour" in banner in $TEST_NGINX_PREFIX/conf/nginx.conf:

=== TEST 3: a JSON syntax error: jansson's line and column
--- http_config
omni_rules $TEST_NGINX_PREFIX/rules;
--- user_files
>>> rules/s.json
[
  {"id": "s1", "banner": {"slot": "hero", "html": "x"}},
  {"id": "s2" "banner": {"slot": "hero", "html": "y"}}
]
--- config
location = /t { return 200; }
--- must_die
omni_rules: $TEST_NGINX_PREFIX/rules/s.json:3:22: '}' expected near '"banner"'

=== TEST 4: a bad regex alone
--- http_config
omni_rules $TEST_NGINX_PREFIX/rules;
--- user_files
>>> rules/r.json
{"id": "r", "when": {"path": {"regex": "(ab"}}, "banner": {"slot": "hero", "html": "x"}}
--- config
location = /t { return 200; }
--- must_die
omni_rules: $TEST_NGINX_PREFIX/rules/r.json:1:44: when.path.regex: invalid regex: missing closing parenthesis at offset 3

=== TEST 5: check= below 1s is refused
--- http_config
omni_rules $TEST_NGINX_PREFIX/rules check=500ms;
--- user_files
>>> rules/a.json
{"id": "a", "banner": {"slot": "hero", "html": "x"}}
--- config
location = /t { return 200; }
--- must_die
invalid "check=500ms" (at least 1s, or off)

=== TEST 6: check= that is not a time is refused
--- http_config
omni_rules $TEST_NGINX_PREFIX/rules check=often;
--- user_files
>>> rules/a.json
{"id": "a", "banner": {"slot": "hero", "html": "x"}}
--- config
location = /t { return 200; }
--- must_die
qr/invalid "check=often" \(at least 1s, or off\) in \S+nginx\.conf:\d+/

=== TEST 7: an empty check= is refused
--- http_config
omni_rules $TEST_NGINX_PREFIX/rules check=;
--- user_files
>>> rules/a.json
{"id": "a", "banner": {"slot": "hero", "html": "x"}}
--- config
location = /t { return 200; }
--- must_die
invalid "check=" (at least 1s, or off)

=== TEST 8: an unknown parameter is refused
--- http_config
omni_rules $TEST_NGINX_PREFIX/rules interval=5s;
--- user_files
>>> rules/a.json
{"id": "a", "banner": {"slot": "hero", "html": "x"}}
--- config
location = /t { return 200; }
--- must_die
invalid parameter "interval=5s"

=== TEST 9: omni_rules twice is refused
--- http_config
omni_rules $TEST_NGINX_PREFIX/rules;
omni_rules $TEST_NGINX_PREFIX/rules;
--- user_files
>>> rules/a.json
{"id": "a", "banner": {"slot": "hero", "html": "x"}}
--- config
location = /t { return 200; }
--- must_die
"omni_rules" directive is duplicate

=== TEST 10: a rules directory that does not exist is refused, naming it
--- http_config
omni_rules $TEST_NGINX_PREFIX/no-such-rules;
--- config
location = /t { return 200; }
--- must_die
qr/omni_rules: .*no-such-rules/

=== TEST 11: check=off, check=1s, check=1m and the default are accepted; the load is logged
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
--- user_files
>>> rules/a.json
[{"id": "a", "banner": {"slot": "hero", "html": "A"}},
 {"id": "b", "banner": {"slot": "aside", "html": "B"}}]
>>> rules/.hidden.json
this is not JSON and is ignored
>>> rules/notes.txt
neither is this
>>> html/index.html
<body><!--omni:slot hero--></body>
--- config
omni on;
--- request
GET /index.html
--- more_headers eval
"Cookie: " . main::cookie()
--- response_body
<body>A<div data-omni-slot="aside">B</div></body>
--- check
for my $check ('check=1s', 'check=1m', '') {
    my $conf = OmniTest::_slurp("$OmniTest::PREFIX/conf/nginx.conf");
    $conf =~ s/(omni_rules \S+)[^;]*;/$1 $check;/ or die;
    open(my $fh, '>', "$OmniTest::PREFIX/conf/nginx.conf") or die;
    print $fh $conf;
    close $fh;
    my ($rc, $out, $err) = run_command([ OmniTest::nginx_bin(), '-t', '-p', "$OmniTest::PREFIX/",
                                         '-c', 'conf/nginx.conf', '-e', "$OmniTest::PREFIX/logs/t.log" ]);
    is($rc, 0, "nginx -t with omni_rules ... " . ($check || '(default)')) or diag "$out$err";
}
--- error_log
qr/\[info\] .*omni_rules: 2 rule\(s\) from 1 file\(s\) in "\S+\/rules"/
--- no_error_log
[error]

=== TEST 12: live reload: a new file is picked up, a broken new file is left out while the rest serves, a fix is picked up
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=1s;
--- user_files
>>> rules/a.json
{"id": "one", "banner": {"slot": "hero", "html": "<b>ONE</b>"}}
>>> html/index.html
<body><!--omni:slot hero--><!--omni:slot aside--></body>
--- config
omni on;
location / { add_header X-Omni-Rules $omni_rules; }
--- request
GET /index.html
--- more_headers eval
"Cookie: " . main::cookie()
--- response_body
<body><b>ONE</b><!--omni:slot aside--></body>
--- timeout: 30
--- check
my $dir = main::rules_dir();

# 1. a new rule file
main::spew("$dir/b.json", main::rule('two', 'aside', 'TWO'));
my $t0 = Time::HiRes::time();
ok(wait_for(sub { main::page() eq "<body><b>ONE</b><b>TWO</b></body>\n" }, 10, 0.1),
   'the new rule file is served without a reload');
diag(sprintf 'picked up after %.1fs', Time::HiRes::time() - $t0);
like(error_log_text(), qr/\[notice\] .*omni_rules: reloaded 2 rule\(s\) from 2 file\(s\) in "\Q$dir\E"/,
     'the reload is logged with the counts');

# 2. a broken change: an unknown key
main::spew("$dir/c.json", qq({\n  "id": "three",\n  "banner": {"slot": "hero", "htm": "<b>THREE</b>"}\n}\n));
my $broken = qr/\[error\] .*omni_rules: 1 file\(s\) in "\Q$dir\E" do not compile, their last good version keeps serving \(a new file is left out\) \(1 error\(s\)\)/;
ok(wait_for(sub { error_log_text() =~ $broken }, 10, 0.1), 'the broken change is logged');
like(error_log_text(), qr/\[error\] .*omni_rules: \Q$dir\E\/c\.json:3:30: banner\.htm: unknown key "htm" in banner/,
     'with the file:line:column of the error');
for (1 .. 10) {
    is(main::page(), "<body><b>ONE</b><b>TWO</b></body>\n", 'the previous rules keep serving');
    Time::HiRes::sleep(0.1);
}
Time::HiRes::sleep(2.5);    # two more checks of the same broken directory
is(main::count_matches($broken), 1, 'a broken change is reported once, not on every check');
is(main::page(), "<body><b>ONE</b><b>TWO</b></body>\n", 'still the previous rules');

# 3. the fix: the new set serves
main::spew("$dir/c.json", main::rule('three', 'hero', 'THREE', priority => 5));
ok(wait_for(sub { main::page() eq "<body><b>THREE</b><b>TWO</b></body>\n" }, 10, 0.1),
   'the fixed file is served: THREE outranks ONE in the hero slot');
my $r = http_get('/index.html', Cookie => main::cookie());
is($r->{headers}{'x-omni-rules'}, 'three,two', '$omni_rules follows the new set');
like(error_log_text(), qr/omni_rules: reloaded 3 rule\(s\) from 3 file\(s\)/, 'the reload after the fix is logged');

# 4. a file removed: its rule goes
unlink "$dir/c.json" or die;
ok(wait_for(sub { main::page() eq "<body><b>ONE</b><b>TWO</b></body>\n" }, 10, 0.1),
   'a removed file takes its rule with it');

# 5. a broken file, then removed again before any fix: back to the set on disk
main::spew("$dir/d.json", "{ broken");
ok(wait_for(sub { main::count_matches(qr/file\(s\) in "[^"]+" do not compile/) == 2 }, 10, 0.1),
   'a second broken change is logged');
like(error_log_text(), qr/omni_rules: \Q$dir\E\/d\.json:1:8: string or '\}' expected near 'broken'/, 'naming d.json:1:8');
unlink "$dir/d.json" or die;
main::spew("$dir/e.json", main::rule('five', 'hero', 'FIVE', priority => 9));
ok(wait_for(sub { main::page() eq "<body><b>FIVE</b><b>TWO</b></body>\n" }, 10, 0.1),
   'the next good change is picked up');
--- no_error_log
[warn]
[crit]

=== TEST 13: live reload with 2 workers: every worker switches
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=1s;
--- workers: 2
--- user_files
>>> rules/a.json
{"id": "one", "banner": {"slot": "hero", "html": "<b>ONE</b>"}}
>>> html/index.html
<body><!--omni:slot hero--></body>
--- config
omni on;
--- request
GET /index.html
--- more_headers eval
"Cookie: " . main::cookie()
--- response_body
<body><b>ONE</b></body>
--- timeout: 30
--- check
main::spew(main::rules_dir() . "/a.json", main::rule('one', 'hero', 'NEW'));
ok(wait_for(sub {
    !grep { main::page() ne "<body><b>NEW</b></body>\n" } 1 .. 20
}, 10, 0.2), '20 requests in a row all see the new rules');
my $workers = $ENV{TEST_NGINX_USE_VALGRIND} ? 1 : 2;     # valgrind: one process
ok(wait_for(sub { main::count_matches(qr/omni_rules: reloaded 1 rule/) == $workers }, 5),
   "each of the $workers worker(s) logged its reload");
--- no_error_log
[error]

=== TEST 14: live reload works without omni_store (app decisions; "omni on" needs a store)
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_rules $TEST_NGINX_PREFIX/rules check=1s;
--- user_files
>>> rules/a.json
{"id": "one", "banner": {"slot": "hero", "html": "<b>ONE</b>"}}
--- config
location = /d { omni_decide; }
--- request
GET /d
--- more_headers eval
"Cookie: " . main::cookie()
--- response_body_like
"text":"ONE"
--- timeout: 30
--- check
main::spew(main::rules_dir() . "/b.json", main::rule('two', 'hero', 'TWO', priority => 5));
my $d = sub { http_get('/d', Cookie => main::cookie())->{content} };
ok(wait_for(sub { $d->() =~ /"text":"TWO"/ }, 6, 0.2),
   'check=1s without omni_store: the new rule is served within 6s')
    or diag('decision: ' . $d->() . 'error.log: ' . error_log_text());
--- no_error_log
[error]

=== TEST 15: nginx -s reload with a broken rules directory keeps the old configuration and its rules serving
--- skip_if: $ENV{TEST_NGINX_USE_VALGRIND} && 'valgrind runs nginx with master_process off: no master to roll back, and the old cycle outlives the exit'
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=off;
--- user_files
>>> rules/a.json
{"id": "one", "banner": {"slot": "hero", "html": "<b>ONE</b>"}}
>>> html/index.html
<body><!--omni:slot hero--></body>
--- config
omni on;
location / { add_header X-Gen "first"; }
--- request
GET /index.html
--- more_headers eval
"Cookie: " . main::cookie()
--- response_body
<body><b>ONE</b></body>
--- timeout: 30
--- check
my $dir = main::rules_dir();
my $conf = "$OmniTest::PREFIX/conf/nginx.conf";
open(my $fh, '<', "$OmniTest::PREFIX/logs/nginx.pid") or die;
chomp(my $master = <$fh>);
close $fh;

# the new configuration would change a header, but its rules are broken
my $text = OmniTest::_slurp($conf);
$text =~ s/X-Gen "first"/X-Gen "second"/ or die;
open($fh, '>', $conf) or die; print $fh $text; close $fh;
main::spew("$dir/a.json", qq({"id": "one", "banner": {"slot": "hero", "html": "<b>BROKEN</b>"}, "oops": 1}\n));

kill 'HUP', $master;
ok(wait_for(sub { error_log_text() =~ /\[emerg\] .*omni_rules: \Q$dir\E\/a\.json:1:\d+: oops: unknown key "oops"/ }, 10),
   'the reload logs the error with file:line:column');
Time::HiRes::sleep(0.5);
my $r = http_get('/index.html', Cookie => main::cookie());
is($r->{content}, "<body><b>ONE</b></body>\n", 'the old rules keep serving');
is($r->{headers}{'x-gen'}, 'first', 'the old configuration keeps serving');
ok(kill(0, $master), 'the master is alive');

# the fix, and a reload that takes
main::spew("$dir/a.json", main::rule('one', 'hero', 'FIXED'));
kill 'HUP', $master;
ok(wait_for(sub { my $r = http_get('/index.html', Cookie => main::cookie());
                  $r->{content} eq "<body><b>FIXED</b></body>\n" && ($r->{headers}{'x-gen'} // '') eq 'second' }, 10, 0.1),
   'a good reload serves the new configuration and the new rules');
--- error_log
qr/\[emerg\] .*omni_rules: \S+\/a\.json:1:\d+: oops: unknown key "oops"/

=== TEST 16: a response still being sent when the timer swaps the rules: its rule headers stay valid to the log phase
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=1s;
log_format theme '$request_uri theme=[$sent_http_x_omni_theme] rules=[$omni_rules]';
--- user_files
>>> rules/a.json
{"id": "calm", "banner": {"slot": "hero", "html": "<b>CALM</b>"}}
--- init
# glibc overwrites freed memory at once, so anything of the request that
# still points into a freed rule set shows up in its log line
$ENV{MALLOC_PERTURB_} = 165;
open(my $fh, '>', "$OmniTest::PREFIX/html/big.html") or die;
print $fh "<html><body><!--omni:slot hero-->\n";
print $fh ("<p>" . ('x' x 1020) . "</p>\n") x 16384;     # 16 MB
print $fh "</body></html>\n";
close $fh;
--- config
omni on;
location / { access_log $TEST_NGINX_PREFIX/logs/theme.log theme; }
--- timeout: 60
--- check
delete $ENV{MALLOC_PERTURB_};
my $dir = main::rules_dir();

# 1. the timer loads a set with a header rule (the configuration's own set
#    belongs to the cycle and is never freed: only timer-loaded sets are)
main::spew("$dir/a.json", qq({"id": "story", "banner": {"slot": "hero", "html": "<b>STORY</b>"},\n)
                        . qq( "headers": {"X-Omni-Theme": "story"}}\n));
ok(wait_for(sub { main::count_matches(qr/omni_rules: reloaded 1 rule/) == 1 }, 10, 0.1),
   'the timer loaded the story rules');

# 2. a slow client: the response stays in flight
use Socket qw(SOL_SOCKET SO_RCVBUF);
my $s = IO::Socket::INET->new(Proto => 'tcp') or die;
setsockopt($s, SOL_SOCKET, SO_RCVBUF, 4096) or die "SO_RCVBUF: $!";
$s->connect(Socket::pack_sockaddr_in($OmniTest::PORT, Socket::inet_aton('127.0.0.1'))) or die "connect: $!";
$s->autoflush(1);
print $s "GET /big.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nCookie: "
       . main::cookie() . "\r\n\r\n";
my $head = '';
sysread($s, $head, 4096, length $head) until $head =~ /\r\n\r\n/;
like($head, qr/^X-Omni-Theme: story\r$/m, 'the slow response carries the rule header');

# 3. meanwhile the rules change again: the story set is replaced and freed
main::spew("$dir/a.json", qq({"id": "calm", "banner": {"slot": "hero", "html": "<b>CALM</b>"}}\n));
ok(wait_for(sub { main::count_matches(qr/omni_rules: reloaded 1 rule/) == 2 }, 10, 0.1),
   'the timer swapped in the next rules meanwhile');
like(http_get('/index.html', Cookie => main::cookie())->{content} // '', qr/404|Not Found/i,
     'nginx serves other requests meanwhile');

# 4. the slow response completes and is logged
my ($buf, $total) = ('', length $head);
while (my $n = sysread($s, $buf, 1 << 20)) { $total += $n }
close $s;
ok($total > 16 * 1024 * 1024, "the slow response completed ($total bytes)");
my $log = '';
ok(wait_for(sub { $log = OmniTest::_slurp("$OmniTest::PREFIX/logs/theme.log") // '';
                  $log =~ m{^/big\.html }m }, 5), 'the slow request was logged');
like($log, qr{^/big\.html theme=\[story\] rules=\[story\]$}m,
     'its log line still sees X-Omni-Theme: story (nothing of it points into the freed set)')
    or diag $log;

=== TEST 17: a broken file keeps its last good version while the other files reload; the console and the metrics show it; an error between files keeps the whole previous set
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules check=1s;
--- user_files
>>> rules/a.json
{"id": "one", "banner": {"slot": "hero", "html": "<b>ONE</b>"}}
>>> rules/b.json
{"id": "two", "banner": {"slot": "aside", "html": "<b>TWO</b>"}}
>>> html/index.html
<body><!--omni:slot hero--><!--omni:slot aside--></body>
--- workers: 2
--- config
omni on;
location /omni/console/ { omni_console; }
location = /omni/metrics { omni_metrics; }
--- request
GET /index.html
--- more_headers eval
"Cookie: " . main::cookie()
--- response_body
<body><b>ONE</b><b>TWO</b></body>
--- timeout: 30
--- check
use JSON::PP ();
my $dir = main::rules_dir();
my $metrics = sub { http_get('/omni/metrics')->{content} };
my $gauge = sub { my ($f) = @_; $metrics->() =~ /^omni_rules_file_broken\{file="\Q$dir\E\/$f"\} (\d)$/m ? $1 : 'none' };
like($metrics->(), qr/^omni_rules_broken 0$/m, 'nothing broken to begin with');
is($gauge->('a.json'), 0, 'a.json compiles');

# 1. a.json breaks while b.json changes: b's change serves, a's last good version too
main::spew("$dir/a.json", qq({"id": "one",\n "banner": {"slot": "hero", "html": "<b>ONE-A</b>", "colour": 1}}\n));
main::spew("$dir/b.json", main::rule('two', 'aside', 'TWO-B'));
ok(wait_for(sub { my $p = main::page(); $p eq "<body><b>ONE</b><b>TWO-B</b></body>\n" }, 10, 0.1),
   'the good change serves; the broken file\'s last good version too') or diag main::page();
for (1 .. 10) {
    is(main::page(), "<body><b>ONE</b><b>TWO-B</b></body>\n", 'every worker');
}
like(error_log_text(), qr/\[error\] .*omni_rules: 1 file\(s\) in "\Q$dir\E" do not compile, their last good version keeps serving/,
     'logged');
like(error_log_text(), qr/omni_rules: \Q$dir\E\/a\.json:2:53: banner\.colour: unknown key "colour" in banner/,
     'with its file:line:column');
my $d = JSON::PP::decode_json(http_get('/omni/console/rules')->{content});
ok($d->{broken}, 'the console: broken');
like($d->{errors}[0], qr{/a\.json:2:53: banner\.colour}, 'with the error');
is_deeply([ map { [ $_->{file} =~ m{([^/]+)$}, $_->{broken} ? 1 : 0, $_->{serving} ] } @{ $d->{files} } ],
          [ [ 'a.json', 1, 'its last good version' ], [ 'b.json', 0, 'this version' ] ],
          'and which file, and what of it serves') or diag explain $d->{files};
is($gauge->('a.json'), 1, 'metrics: omni_rules_file_broken for a.json is 1');
is($gauge->('b.json'), 0, 'for b.json 0');
like($metrics->(), qr/^omni_rules_broken 1$/m, 'omni_rules_broken 1');
like($metrics->(), qr/^omni_rules_reload_failures_total 1$/m, 'counted once, not once per worker');

# 2. b.json changes again: a.json's last good version still serves
main::spew("$dir/b.json", main::rule('two', 'aside', 'TWO-C'));
ok(wait_for(sub { main::page() eq "<body><b>ONE</b><b>TWO-C</b></body>\n" }, 10, 0.1),
   'the next change of another file serves, with the same last good version');
is($gauge->('a.json'), 1, 'a.json still broken');

# 3. the fix
main::spew("$dir/a.json", main::rule('one', 'hero', 'ONE-A'));
ok(wait_for(sub { main::page() eq "<body><b>ONE-A</b><b>TWO-C</b></body>\n" }, 10, 0.1), 'the fix serves');
ok(wait_for(sub { $metrics->() =~ /^omni_rules_broken 0$/m }, 5), 'nothing broken any more');
is($gauge->('a.json'), 0, 'a.json compiles');
ok(!JSON::PP::decode_json(http_get('/omni/console/rules')->{content})->{broken}, 'the console agrees');

# 4. an error between files (a duplicate id): the whole previous set serves
main::spew("$dir/c.json", main::rule('two', 'hero', 'DUP', priority => 9));
ok(wait_for(sub { error_log_text() =~ /omni_rules: "\Q$dir\E" changed but does not compile, the previous rules keep serving/ }, 10, 0.1),
   'a change that only fails as a whole is logged as such');
like(error_log_text(), qr/omni_rules: \S+\/c\.json:\d+:\d+: .*"two"/, 'naming the duplicate');
is(main::page(), "<body><b>ONE-A</b><b>TWO-C</b></body>\n", 'the previous set serves');
like($metrics->(), qr/^omni_rules_broken 1$/m, 'and the metrics say so');
--- no_error_log
[warn]
[crit]
