# Self-tests of the t/lib/OmniTest.pm harness.  They use the stock nginx
# and core directives only (no load_module), so they pass before the module
# builds, and they prove that failing expectations are really detected.

use strict;
use warnings;

use File::Temp ();
use lib 't/lib';
use OmniTest;

$OmniTest::NO_MODULE = 1;

# --- pure helpers -------------------------------------------------------

{
    my $raw = "HTTP/1.1 100 Continue\r\n\r\n"
            . "HTTP/1.1 200 OK\r\nServer: x\r\nTransfer-Encoding: chunked\r\n"
            . "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n"
            . "5\r\nhello\r\n6; ext=1\r\n world\r\n0\r\n\r\n";
    my $r = parse_raw_response($raw);
    is($r->{status}, 200, 'parse_raw_response: interim 100 skipped');
    is($r->{content}, 'hello world', 'parse_raw_response: chunked body decoded');
    is_deeply($r->{headers}{'set-cookie'}, [ 'a=1', 'b=2' ],
              'parse_raw_response: repeated header is an arrayref');

    $r = parse_raw_response("HTTP/1.0 404 Not Found\r\nContent-Length: 3\r\n\r\nabcdef");
    is($r->{content}, 'abc', 'parse_raw_response: body cut at Content-Length');
    is(parse_raw_response("garbage")->{status}, 599, 'parse_raw_response: garbage is 599');

    ok(!eval { OmniTest::_subst('$TEST_NGINX_NO_SUCH_THING', {}); 1 },
       'unknown $TEST_NGINX_ variable is an error');

    my ($rc, $out, $err) = run_command([ 'sh', '-c', 'echo out; echo err >&2; exit 3' ]);
    is_deeply([ $rc, $out, $err ], [ 3, "out\n", "err\n" ], 'run_command');
    ($rc) = run_command([ 'sh', '-c', 'kill -9 $$' ]);
    is($rc, 137, 'run_command: killed by signal 9 is 137');
    ($rc, undef, $err) = run_command([ 'sleep', '5' ], timeout => 0.3);
    is($rc, -1, 'run_command: timeout kills the command');

    my $n = 0;
    ok(wait_for(sub { ++$n >= 3 }, 2, 0.01), 'wait_for: condition met');
    ok(!wait_for(sub { 0 }, 0.1), 'wait_for: times out');
}

# --- custom (non-block) test with start_nginx / stop_nginx -----------------

{
    my $port = start_nginx(<<'CONF');
location = /raw { return 200 "hello"; }
location = /host { return 200 "host=$host"; }
CONF
    ok($port, "start_nginx: port $port");

    my $raw = raw_request($port, "HEAD /raw HTTP/1.1\r\nHost: localhost\r\n\r\n");
    like($raw, qr{^HTTP/1\.1 200 OK\r\n}, 'raw_request HEAD: status line');
    like($raw, qr{\r\nContent-Length: 5\r\n}i, 'raw_request HEAD: Content-Length of GET');
    like($raw, qr{\r\n\r\n\z}, 'raw_request HEAD: no body');

    # a request split across several writes, kept alive (no Connection: close)
    $raw = raw_request($port, [ "GET /raw HT", "TP/1.1\r\nHost: local", "host\r\n\r\n" ]);
    is(parse_raw_response($raw)->{content}, 'hello', 'raw_request: split request');

    # two pipelined requests, read until nginx closes
    $raw = raw_request($port, "GET /raw HTTP/1.1\r\nHost: a\r\n\r\n"
                            . "GET /raw HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                       until_close => 1);
    my @status = $raw =~ m{HTTP/1\.1 (\d{3}) }g;
    is_deeply(\@status, [ 200, 200 ], 'raw_request: pipelined requests');

    is(http_get('/host', Host => 'example.com')->{content}, 'host=example.com',
       'http_get: Host header is sent');

    ok(stop_nginx(), 'stop_nginx: graceful');
    like(error_log_text(), qr/\[notice\].*exit/, 'error_log_text after stop');
    check_logs(label => 'custom server', no_error_log => ['[error]']);

    ok(!eval { start_nginx('no_such_directive 1;'); 1 }, 'start_nginx croaks on a bad config');
    like($@, qr/unknown directive "no_such_directive"/, 'start_nginx: croak message');
}

# --- failing expectations must fail ----------------------------------------
# The blocks below are wrong on purpose.  They run as a separate test file
# in a child perl, whose TAP output must show at least one "not ok" per
# block and whose exit status must be non-zero.

{
    my $bad = <<'BAD';
=== BAD 1: wrong body
--- config
location = /t { return 200 "hello"; }
--- request
GET /t
--- response_body: goodbye

=== BAD 2: wrong status
--- config
location = /t { return 204; }
--- request
GET /t

=== BAD 3: header that must be absent is present
--- config
location = /t { add_header X-Foo bar; return 200 "x"; }
--- request
GET /t
--- response_headers
!X-Foo

=== BAD 4: header regex does not match
--- config
location = /t { return 200 "x"; }
--- request
GET /t
--- response_headers_like
Content-Type: ^application/json

=== BAD 5: no_error_log violated
--- config
location = /t { return 200 "x"; }
--- request
GET /missing
--- error_code: 404
--- no_error_log
[error]

=== BAD 6: expected error_log line missing
--- config
location = /t { return 200 "x"; }
--- request
GET /t
--- error_log
this line never appears

=== BAD 7: an [alert] in error.log fails the block
--- init
open my $fh, '>>', "$OmniTest::PREFIX/logs/error.log" or die $!;
print $fh "2024/01/01 00:00:00 [alert] 1#1: injected by the self-test\n";
--- config
location = /t { return 200 "x"; }
--- request
GET /t

=== BAD 8: must_die on a valid config
--- config
location = /t { return 200 "x"; }
--- must_die

=== BAD 9: must_die message mismatch
--- config
no_such_directive on;
--- must_die
qr/duplicate \w+ directive/

=== BAD 10: typo in a section name
--- config
location = /t { return 200 "x"; }
--- request
GET /t
--- respone_body: x

=== BAD 11: check code can fail the block
--- config
location = /t { return 200 "x"; }
--- request
GET /t
--- check
die "deliberate\n" if $resp->{content} eq 'x';

=== BAD 12: sanitizer report
--- init
open my $fh, '>>', "$OmniTest::PREFIX/logs/error.log" or die $!;
print $fh "src/foo.c:12:3: runtime error: signed integer overflow\n";
--- config
location = /t { return 200 "x"; }
--- request
GET /t

=== BAD 13: the request times out
--- timeout: 1
--- config
location = /t { proxy_pass http://127.0.0.1:$TEST_NGINX_HANG_PORT; }
--- request
GET /t
BAD

    # BAD 13 proxies to a socket that listens but never answers.
    my $prelude = <<'PERL';
use IO::Socket::INET;
my $hang = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 5)
    or die "listen: $!";
$ENV{TEST_NGINX_HANG_PORT} = $hang->sockport;
$OmniTest::NO_MODULE = 1;
run_blocks();
PERL
    my $lib  = repo_root() . '/t/lib';
    my $file = File::Temp->new(SUFFIX => '.t');
    print {$file} "use lib '$lib';\nuse OmniTest;\n${prelude}__DATA__\n$bad";
    close $file;

    my ($rc, $out, $err) = run_command([ $^X, $file->filename ],
                                       timeout => $ENV{TEST_NGINX_USE_VALGRIND} ? 900 : 120);
    note("child TAP:\n$out\nchild diagnostics:\n$err");
    isnt($rc, 0, "a test file with failing blocks exits non-zero ($rc)");
    for my $i (1 .. 13) {
        my @failed = $out =~ /^not ok \d+ - (BAD $i:.*)$/mg;
        ok(scalar @failed, "BAD $i detected") or diag("child TAP:\n$out");
        note("  $_") for @failed;
    }
    like($out, qr/^not ok \d+ - BAD 7:.*no \[alert\]/m, 'BAD 7 failed on the alert check');
    like($out, qr/^not ok \d+ - BAD 12:.*no sanitizer reports/m,
         'BAD 12 failed on the sanitizer check');
    like($err, qr/deliberate/, 'BAD 11: the error of the check code is shown');
}

run_blocks();

__DATA__

=== TEST 1: return 200 "hello"
--- config
location = /t { return 200 "hello"; }
--- request
GET /t
--- response_body: hello
--- response_headers
Content-Type: text/plain
Content-Length: 5
!X-Not-There
--- no_error_log
[error]
[warn]

=== TEST 2: response headers, exact and regex
--- config
location = /t {
    add_header X-Foo bar;
    add_header X-Multi one;
    add_header X-Multi two;
    return 200 "ok\n";
}
--- request
GET /t
--- response_headers
X-Foo: bar
X-Multi: one, two
--- response_headers_like
Server: ^nginx
Date: GMT$
--- response_body
ok

=== TEST 3: error_log lines, substring and qr//
--- config
location / { }
--- request
GET /missing.txt
--- error_code: 404
--- response_body_like: 404 Not Found
--- error_log
open() "$TEST_NGINX_HTML/missing.txt" failed
qr/\[error\] \d+#\d+: \*\d+ open\(\) ".*" failed \(2: No such file or directory\)/
--- no_error_log
[alert]

=== TEST 4: must_die on an unknown directive
--- config
location = /t { frobnicate on; }
--- must_die
unknown directive "frobnicate"
qr/in \S+nginx\.conf:\d+/

=== TEST 5: must_die with no expected message
--- http_config
server_tokens maybe;
--- must_die

=== TEST 6: several requests, POST body, more_headers
--- config
location = /a { return 200 "a"; }
location = /post { return 200 "$request_method len=$content_length x=$http_x_test"; }
--- request
GET /a
--- response_body: a
--- request_2
POST /post
hello body
--- more_headers_2
X-Test: abc
--- response_body_2: POST len=10 x=abc
--- request_3
GET /nothing-here
--- error_code_3: 404
--- response_headers_3
!X-Foo

=== TEST 7: cookie jar
--- config
location = /set { add_header Set-Cookie "x=42; Path=/"; add_header Set-Cookie "y=7"; return 200 "set"; }
location = /get { return 200 "x=$cookie_x y=$cookie_y"; }
location = /del { add_header Set-Cookie "x=; Max-Age=0"; return 200 "del"; }
location = /old { add_header Set-Cookie "y=1; Expires=Thu, 01 Jan 1970 00:00:01 GMT"; return 200 "old"; }
--- cookie_jar
--- request: GET /set
--- request_2: GET /get
--- response_body_2: x=42 y=7
--- request_3: GET /del
--- request_4: GET /get
--- response_body_4: x= y=7
--- request_5: GET /old
--- request_6: GET /get
--- response_body_6: x= y=

=== TEST 8: HEAD through raw_request
--- config
location = /t { return 200 "hello"; }
--- raw_request eval
"HEAD /t HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
--- response_headers
Content-Length: 5
--- response_body eval
""

=== TEST 9: http_config, main_config, user_files, init and check code
--- main_config
thread_pool omnitest threads=1;
--- http_config
map $uri $mapped { default "from-map"; }
--- config
location = /map { return 200 $mapped; }
location /files/ { alias $TEST_NGINX_HTML/; aio threads=omnitest; }
--- user_files
>>> html/a.txt
file a
>>> html/sub/b.txt
file b
--- init
open my $fh, '>', "$OmniTest::PREFIX/html/init.txt" or die $!;
print $fh "port $OmniTest::PORT\n";
--- request
GET /map
--- response_body: from-map
--- request_2
GET /files/sub/b.txt
--- response_body_2
file b
--- check
is($responses->[0]{content}, 'from-map', 'check: $responses holds all responses');
is(http_get('/files/a.txt')->{content}, "file a\n", 'check: user_files written');
is(http_get('/files/init.txt')->{content}, "port $TEST_NGINX_PORT\n",
   'check: init ran with $OmniTest::PREFIX and $OmniTest::PORT set');
is($block->name, 'TEST 9: http_config, main_config, user_files, init and check code',
   'check: $block is the current block');

=== TEST 10: debug log level, timeout
--- log_level: debug
--- timeout: 3
--- config
location = /t { return 200 "x"; }
--- request
GET /t
--- error_log
[debug]

=== TEST 10a: two workers (there are none with master_process off)
--- skip_if: $ENV{TEST_NGINX_USE_VALGRIND}
--- workers: 2
--- config
location = /t { return 200 "x"; }
--- request
GET /t
--- error_log
qr/start worker process \d+\n(?s:.*)start worker process \d+/

=== TEST 11: an expected alert is allowed when error_log lists it
--- init
open my $fh, '>>', "$OmniTest::PREFIX/logs/error.log" or die $!;
print $fh "2024/01/01 00:00:00 [alert] 1#1: injected by the self-test\n";
--- config
location = /t { return 200 "x"; }
--- request
GET /t
--- error_log
[alert] 1#1: injected by the self-test

=== TEST 12: no request at all, startup only
--- config
location = /t { return 200 "x"; }
--- error_log
qr/\[notice\] .*: nginx\/\d+\.\d+\.\d+$/m

=== TEST 13: skipped block
--- skip: demonstrates --- skip
--- config
this would not even parse;

=== TEST 14: skip_if
--- skip_if: 1 + 1 == 2
--- config
this would not even parse;

=== TEST 15: variables
--- config
location = /t { return 200 "$TEST_NGINX_PORT $TEST_NGINX_PREFIX $TEST_NGINX_SERVROOT $TEST_NGINX_HTML"; }
--- request
GET /t
--- response_body: $TEST_NGINX_PORT $TEST_NGINX_PREFIX $TEST_NGINX_PREFIX $TEST_NGINX_PREFIX/html
--- check
like("$TEST_NGINX_ROOT", qr{^/}, 'TEST_NGINX_ROOT is absolute');
ok(-f "$TEST_NGINX_ROOT/t/lib/OmniTest.pm", 'TEST_NGINX_ROOT is the repository root');
like("$TEST_NGINX_MODULE", qr{^/.*\.so$}, 'TEST_NGINX_MODULE is an absolute .so path');
like("$TEST_NGINX_OMNICTL", qr{^/.*omnictl$}, 'TEST_NGINX_OMNICTL is absolute');
