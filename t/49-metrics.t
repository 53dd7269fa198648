# omni_metrics (docs/metrics.md): the Prometheus text format, checked by
# promtool; every counter summed across workers through the omni_metrics
# zone (two workers serve, either answers the scrape); requests by
# identity outcome, decisions, impressions and holdouts by rule, the
# writer's queue, batches and commit latency, events accepted and
# rejected by reason, merges, store fill, rules generation and reload
# failures; the endpoint exists only where configured and is refused by
# allow/deny; the counters survive a reload (HUP).  Drops (a stopped
# writer) and a store full at map_max, geo lookups and misses, events
# rejected by reason, the cluster's metrics with NATS
# unreachable and with a JetStream server (skipped without nats-server).
# The documented alerts name metrics that exist, load, and fire when
# they should (promtool test rules).

use strict;
use warnings;

use lib 't/lib';
use OmniTest;
use OmniCookie;
use OmniEvents;
use OmniGeo;
use OmniNats;
use IO::Socket::INET ();

our $VID  = 'ae000000000000000000000000000001';
our $VID2 = 'ae000000000000000000000000000002';
our $KEY  = 'srv-key-0123456789abcdef0123456789abcdef';

sub cookie { 'omni=' . mint_cookie(TEST_SECRET, $_[0] // $VID) }

# The scrape, parsed: { 'name{labels}' => value }, plus the raw text.
sub scrape {
    my $r = http_get('/metrics');
    die "scrape: $r->{status}" unless $r->{status} == 200;
    my %m;
    for (split /\n/, $r->{content}) {
        next if /^#/;
        my ($k, $v) = /^(\S+) (\S+)$/ or die "bad line: $_";
        $m{$k} = $v;
    }
    return (\%m, $r);
}

# promtool's lint of a scrape: (ok, output); undef when it is absent.
sub promtool {
    my ($text) = @_;
    my $bin = `command -v promtool 2>/dev/null`;
    chomp $bin;
    return undef unless $bin;
    my ($rc, $out, $err) = run_command([$bin, 'check', 'metrics'],
                                       stdin => $text);
    return ($rc == 0 && $out . $err eq '', $out . $err);
}

# The documented alerts (docs/metrics.md): every metric their expressions
# and the other sample expressions name is one the scrape printed
# (%$names, from its TYPE lines), the rules load (promtool check rules),
# and each alert fires when it should, with its annotations, and not
# otherwise (promtool test rules, on made-up series).
sub check_alerts {
    my ($docs, $names) = @_;

    my @yaml = $docs =~ /^```yaml\n(.*?)^```$/msg;
    my ($alerts) = grep { /alert: OmniTouchesDropped/ } @yaml;
    ok($alerts && $alerts =~ /alert: OmniStoreNearlyFull/,
       'the sample alerts: drops and store fill');

    # the prose after the rules file
    my ($section) = $docs =~ /^## Alerts\n.*?^```yaml\n.*?^```\n(.*)/ms;
    my @exprs = $alerts =~ /^\s+expr: (.*?)\n(?=\s+for:)/msg;
    my @more = grep { /\[\d+[mh]\]/ } $section =~ /`([^`]+)`/g;
    ok(@exprs >= 5 && @more >= 3, scalar(@exprs) . ' alert expressions, '
       . scalar(@more) . ' other expressions');
    my %used;
    for my $e (@exprs, @more) {
        $used{$_ =~ s/_(bucket|sum|count)$//r}++
            for $e =~ /\b(omni_[a-z_]+)\b/g;
    }
    for my $n (sort keys %used) {
        ok($names->{$n}, "the alerts' $n is a metric the module prints");
    }

    my $bin = `command -v promtool 2>/dev/null`;
    chomp $bin;
    SKIP: {
        skip 'promtool is not installed', 2 unless $bin;
        my $dir = $OmniTest::PREFIX;
        open(my $fh, '>', "$dir/alerts.yml") or die $!;
        print $fh $alerts;
        close $fh;
        my ($rc, $out, $err) = run_command([$bin, 'check', 'rules',
                                            "$dir/alerts.yml"]);
        is($rc, 0, 'promtool check rules: the documented alerts load')
            or diag "$out$err";

        my ($share) = grep { /identity="invalid"/ } @more;
        (my $t = $main::ALERT_TESTS) =~ s/\@SHARE\@/$share/;
        open($fh, '>', "$dir/alerts-test.yml") or die $!;
        print $fh $t;
        close $fh;
        ($rc, $out, $err) = run_command([$bin, 'test', 'rules',
                                         "$dir/alerts-test.yml"]);
        is($rc, 0, 'promtool test rules: each alert fires when it should')
            or diag "$out$err";
    }
}

# Made-up series for the documented alerts: instance a is in trouble
# with everything, b and c are not (c has no store: map_max 0).
our $ALERT_TESTS = <<'YAML';
rule_files: [alerts.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'omni_touches_dropped_total{instance="a",job="omni"}'
        values: '0 0 0 5 10 10 10 10 10 10 10 10 10 10 10 10 10 10'
      - series: 'omni_touches_dropped_total{instance="b",job="omni"}'
        values: '0x20'
      - series: 'omni_store_map_used_bytes{instance="a",job="omni"}'
        values: '950x20'
      - series: 'omni_store_map_max_bytes{instance="a",job="omni"}'
        values: '1000x20'
      - series: 'omni_store_map_used_bytes{instance="b",job="omni"}'
        values: '500x20'
      - series: 'omni_store_map_max_bytes{instance="b",job="omni"}'
        values: '1000x20'
      - series: 'omni_store_map_used_bytes{instance="c",job="omni"}'
        values: '0x20'
      - series: 'omni_store_map_max_bytes{instance="c",job="omni"}'
        values: '0x20'
      - series: 'omni_cluster_node_info{instance="a",job="omni",node="web-1",stream="OMNI"}'
        values: '1x20'
      - series: 'omni_cluster_connected{instance="a",job="omni"}'
        values: '0x20'
      - series: 'omni_cluster_connected{instance="b",job="omni"}'
        values: '0x20'
      - series: 'omni_cluster_stream_lag_messages{instance="a",job="omni"}'
        values: '20000x20'
      - series: 'omni_cluster_stream_lag_messages{instance="b",job="omni"}'
        values: '0x20'
      - series: 'omni_cluster_behind_retention{instance="a",job="omni"}'
        values: '0x20'
      - series: 'omni_cluster_behind_retention{instance="b",job="omni"}'
        values: '0x20'
      - series: 'omni_rules_broken{instance="a",job="omni"}'
        values: '0x20'
      - series: 'omni_rules_file_broken{instance="a",job="omni",file="/r/a.json"}'
        values: '1x20'
      - series: 'omni_rules_file_broken{instance="a",job="omni",file="/r/b.json"}'
        values: '0x20'
      - series: 'omni_rules_broken{instance="b",job="omni"}'
        values: '0x20'
      - series: 'omni_requests_total{instance="a",job="omni",identity="invalid"}'
        values: '0+60x20'
      - series: 'omni_requests_total{instance="a",job="omni",identity="cookie"}'
        values: '0+180x20'
      - series: 'omni_requests_total{instance="a",job="omni",identity="new"}'
        values: '0x20'
    alert_rule_test:
      - eval_time: 5m
        alertname: OmniTouchesDropped
        exp_alerts:
          - exp_labels: {severity: warning, instance: a, job: omni}
            exp_annotations:
              summary: "a drops touchpoints"
              description: "10 touches dropped in 5 minutes: the writer queue or the store is full (omni_store queue= / map_max=)."
      - eval_time: 15m
        alertname: OmniTouchesDropped
      - eval_time: 5m
        alertname: OmniStoreNearlyFull
      - eval_time: 15m
        alertname: OmniStoreNearlyFull
        exp_alerts:
          - exp_labels: {severity: warning, instance: a, job: omni}
            exp_annotations:
              summary: "a: the omni store is 90% full"
              description: "The store uses 95% of map_max; when it is full, touchpoints are dropped. Raise map_max or lower touchpoint retention (tp_max, tp_max_age)."
      - eval_time: 10m
        alertname: OmniClusterLagging
        exp_alerts:
          - exp_labels: {severity: warning, instance: a, job: omni}
            exp_annotations:
              summary: "a does not keep up with the cluster's stream"
              description: "20000: the node's store is behind the stream (or past its retention: bootstrap it from a peer, docs/cluster.md)."
      - eval_time: 10m
        alertname: OmniClusterDisconnected
        exp_alerts:
          - exp_labels: {severity: critical, instance: a, job: omni}
            exp_annotations:
              summary: "a has no NATS connection"
              description: "For 5 minutes: the node publishes nothing (events get 503) and applies nothing from the other nodes."
      - eval_time: 10m
        alertname: OmniRulesBroken
        exp_alerts:
          - exp_labels: {severity: warning, instance: a, job: omni}
            exp_annotations:
              summary: "a: a rule file does not compile: see the console"
    promql_expr_test:
      - expr: '@SHARE@'
        eval_time: 10m
        exp_samples:
          - labels: '{instance="a",job="omni"}'
            value: 0.25
YAML

# A keep-alive request on $s (t/44-writer.t): the answer's status, body.
sub ka {
    my ($s, $req) = @_;
    print $s $req;
    my $head = '';
    while ($head !~ /\r\n\r\n/) {
        defined(sysread($s, $head, 1, length $head)) && length $head or last;
    }
    my ($status) = $head =~ m{^HTTP/1\.1 (\d+)};
    my ($len) = $head =~ /^Content-Length: (\d+)/mi;
    my $body = '';
    while (length $body < ($len // 0)) {
        sysread($s, $body, $len - length $body, length $body) or last;
    }
    return { status => $status // 0, body => $body };
}

# The scrape over a keep-alive connection, parsed as scrape() does.
sub ka_scrape {
    my ($s) = @_;
    my $r = ka($s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    return { map { /^(\S+) (\S+)$/ ? ($1 => $2) : () }
             grep { !/^#/ } split /\n/, $r->{body} };
}

# The pid of the worker that logged taking the writer lease last.
sub holder {
    my @pids = error_log_text()
        =~ /(\d+)#\d+: (?:\*\d+ )?omni: (?:this worker is the store's writer|writer taken over)/g;
    return $pids[-1];
}

# A NATS JetStream server for the cluster block (t/lib/OmniNats.pm), and
# the omni_cluster line that points at it, in conf/cluster.conf.
our $NATS;
sub nats_conf {
    $NATS = start_cluster(1);
    my $path = "$OmniTest::PREFIX/conf/cluster.conf";
    open(my $fh, '>', $path) or die "$path: $!";
    print $fh 'omni_cluster ' . $NATS->urls . " node=m-1 replicas=1;\n";
    close $fh;
}

$ENV{TEST_NGINX_PORT2} = free_port();
$ENV{TEST_NGINX_NO_NATS} = nats_skip_reason() // '';

sub master_pid {
    open(my $fh, '<', "$OmniTest::PREFIX/logs/nginx.pid") or die $!;
    my $pid = <$fh>;
    chomp $pid;
    return $pid;
}

run_blocks();

__DATA__

=== TEST 1: the text format passes promtool, and every counter counts what happened, summed over two workers
--- workers: 2
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m fold=0;
omni_rules $TEST_NGINX_PREFIX/rules check=1s;
omni_events_key main "srv-key-0123456789abcdef0123456789abcdef";
--- user_files
>>> rules/a.json
{"rules": [
  {"id": "welcome", "priority": 10,
   "banner": {"slot": "hero", "html": "<b>hi</b>"}},
  {"id": "px", "pixels": [{"img": "https://px.example.com/p.gif"}]},
  {"id": "never", "when": {"stage": "loyal"},
   "banner": {"slot": "hero", "html": "<b>vip</b>"}}
]}
>>> html/index.html
<html><body><!--omni:slot hero--></body></html>
--- config
location / { omni on; }
location = /omni/events { omni on; omni_events; }
location = /metrics {
    allow 127.0.0.1;
    deny all;
    omni_metrics;
}
location = /metrics-denied {
    deny all;
    omni_metrics;
}
location = /plain { return 200 "plain"; }
--- request
GET /metrics-denied
--- error_code: 403
--- check
my ($m0) = main::scrape();
is($m0->{'omni_requests_total{identity="new"}'}, 0, 'nothing counted yet');
is($m0->{'omni_rules_generation'}, 1, 'the configuration\'s rules: generation 1');
is($m0->{'omni_rules_loaded'}, 3, 'three rules loaded');

# requests: 2 new, 3 with a valid cookie, 1 tampered, 1 outside the module
for (1 .. 2) { is(http_get('/index.html')->{status}, 200, 'new visitor') }
for (1 .. 3) {
    like(http_get('/index.html', Cookie => main::cookie())->{content},
         qr/<b>hi<\/b>/, 'cookie visitor sees the banner');
}
my $bad = main::cookie();
substr($bad, -3, 2) = substr($bad, -3, 2) eq 'AA' ? 'BB' : 'AA';
is(http_get('/index.html', Cookie => $bad)->{status}, 200, 'tampered cookie');
is(http_get('/plain')->{content}, 'plain', 'a location without omni');

# events: accepted, duplicate, an invalid one, a wrong method, a forbidden one
my $ev = { type => 'track', event => 'Product Viewed', messageId => 'mm-1',
           properties => { sku => 'S1' } };
is(post($ev, Cookie => main::cookie())->{status}, 200, 'event accepted');
is(post($ev, Cookie => main::cookie())->{json}{status}, 'duplicate',
   'the same again: duplicate');
is(post({ type => 'nope' }, Cookie => main::cookie())->{status}, 400,
   'an invalid event');
is(http_get('/omni/events')->{status}, 405, 'GET on the events endpoint');
is(post({ type => 'track', event => 'Order Completed',
          properties => { order_id => 'o1', products => [ { sku => 'X' } ] } },
        Cookie => main::cookie())->{status}, 403, 'a purchase from a browser');
is(post({ batch => [ { type => 'nope' }, { type => 'nope' },
                     { type => 'track', event => 'Product Viewed',
                       messageId => 'mm-2', properties => { sku => 'S2' } } ] },
        Cookie => main::cookie())->{status}, 200, 'a batch with two bad events');

# a merge: two visitors with profiles, then one customer id for both
is(http_get('/index.html', Cookie => main::cookie($main::VID2))->{status},
   200, 'a second visitor');
for my $v ($main::VID, $main::VID2) {
    my $r = post({ type => 'identify', userId => 'cust-m', anonymousId => $v,
                   messageId => "id-$v" },
                 Authorization => "Bearer $main::KEY");
    is($r->{status}, 200, "identify $v") or diag $r->{content};
}

# the writer is asynchronous for touches: poll until every one is in
my $m;
ok(wait_for(sub {
    ($m) = main::scrape();
    # and every request's log phase ran (it may follow the response)
    my $requests = 0;
    $requests += $m->{"omni_requests_total{identity=\"$_\"}"}
        for qw(new invalid cookie token none);
    $m->{'omni_touches_committed_total'} >= $m->{'omni_touches_queued_total'}
        && $m->{'omni_writer_queue_touches'} == 0
        && $m->{'omni_touches_queued_total'} > 0
        && $requests >= 3 + 3 + 9;
}, 10, 0.05), 'every queued touch committed, every request counted');
($m, my $r) = main::scrape();

# The scrape itself is no identified request: the counts are exact.
# new: 2 pages and the GET on the events endpoint
is($m->{'omni_requests_total{identity="new"}'}, 3, 'requests: 3 new');
# the tampered cookie, and the server key of the two identify events: in
# an omni on location a bearer is first tried as an app token
is($m->{'omni_requests_total{identity="invalid"}'}, 1 + 2,
   'requests: refused cookie and tokens');
# 3 pages, 5 event requests with the cookie and the second visitor's page
is($m->{'omni_requests_total{identity="cookie"}'}, 3 + 5 + 1,
   'requests: a valid cookie (pages and events)');
is($m->{'omni_requests_total{identity="token"}'}, 0, 'requests: no token');

# every page decided; welcome and px shown on each, never nothing
is($m->{'omni_decisions_total'}, 7, 'decisions: every page');
is($m->{'omni_rule_decisions_total{rule="welcome"}'}, 7, 'welcome decided 7 times');
is($m->{'omni_rule_impressions_total{rule="welcome"}'}, 7, 'and delivered 7 times');
is($m->{'omni_rule_decisions_total{rule="px"}'}, 7, 'the pixel rule: 7');
is($m->{'omni_rule_decisions_total{rule="never"}'}, 0, 'a rule never chosen: 0, still listed');
is($m->{'omni_holdouts_total'}, 0, 'no holdout');

is($m->{'omni_events_total{result="accepted"}'}, 1 + 1 + 2, 'events accepted (1, the batch\'s 1, 2 identify)');
is($m->{'omni_events_total{result="duplicate"}'}, 1, 'events: 1 duplicate');
is($m->{'omni_events_total{result="failed"}'}, 0, 'events: none failed');
is($m->{'omni_events_rejected_total{reason="invalid"}'}, 1 + 2, 'rejected: invalid (1 request, 2 in a batch)');
is($m->{'omni_events_rejected_total{reason="method"}'}, 1, 'rejected: method');
is($m->{'omni_events_rejected_total{reason="forbidden"}'}, 1, 'rejected: forbidden');
is($m->{'omni_merges_total'}, 1, 'one merge');

is($m->{'omni_touches_dropped_total'}, 0, 'no touch dropped');
ok($m->{'omni_writer_batches_total{result="ok"}'} >= 1, 'batches committed');
is($m->{'omni_writer_batches_total{result="failed"}'}, 0, 'no batch failed');
is($m->{'omni_writer_batch_touches_sum'}, $m->{'omni_touches_committed_total'},
   'batch sizes add up to the committed touches');
is($m->{'omni_writer_commit_duration_seconds_count'},
   $m->{'omni_writer_batches_total{result="ok"}'}, 'one latency per committed batch');
is($m->{'omni_writer_commit_duration_seconds_bucket{le="+Inf"}'},
   $m->{'omni_writer_commit_duration_seconds_count'}, '+Inf bucket is the count');
ok($m->{'omni_writer_commit_duration_seconds_sum'} > 0, 'commit time measured');
ok($m->{'omni_store_map_used_bytes'} > 0, 'store: bytes used');
is($m->{'omni_store_map_size_bytes'}, 16 * 1024 * 1024, 'store: map size');
is($m->{'omni_store_map_max_bytes'}, 8 * 16 * 1024 * 1024, 'store: map_max');
is($m->{'omni_writer_queue_capacity_touches'}, 65536, 'queue capacity');

is($r->{headers}{'content-type'}, 'text/plain; version=0.0.4; charset=utf-8',
   'the exposition content type');
like($r->{headers}{'cache-control'}, qr/no-store/, 'never cached');
is(http_request('POST', '/metrics', 'x')->{status}, 405, 'POST: 405');
my $h = http_request('HEAD', '/metrics', '');
is($h->{status} . ($h->{content} // ''), '200', 'HEAD: headers only');

SKIP: {
    my ($ok, $out) = main::promtool($r->{content});
    skip 'promtool is not installed (Debian package prometheus; '
         . 'scripts/install-deps.sh installs it)', 1 unless defined $ok;
    ok($ok, 'promtool check metrics: no problem') or diag $out;
}

# every metric printed is documented, and the documented alerts load
open(my $doc, '<', repo_root() . '/docs/metrics.md') or die $!;
my $docs = do { local $/; <$doc> };
close $doc;
my %names = map { /^# TYPE (\S+)/ ? ($1 => 1) : () } split /\n/, $r->{content};
ok(keys %names >= 25, scalar(keys %names) . ' metrics');
for my $n (sort keys %names) {
    like($docs, qr/`\Q$n\E`/, "docs/metrics.md documents $n");
}
main::check_alerts($docs, \%names);

# a broken change of the rules: counted once, not once per worker
open(my $fh, '>', "$OmniTest::PREFIX/rules/b.json") or die $!;
print $fh "{ broken\n";
close $fh;
ok(wait_for(sub { (main::scrape())[0]{'omni_rules_reload_failures_total'} >= 1 },
            10, 0.05), 'a broken change counted');
# both workers have seen it once their timers ran
ok(wait_for(sub { error_log_text() =~ /do(?:es)? not compile(?s:.*)do(?:es)? not compile/ },
            10, 0.05), 'both workers saw it');
is((main::scrape())[0]{'omni_rules_reload_failures_total'}, 1, 'and counted once');
unlink "$OmniTest::PREFIX/rules/b.json";
open($fh, '>', "$OmniTest::PREFIX/rules/c.json") or die $!;
print $fh qq({"id": "later", "banner": {"slot": "side", "html": "x"}}\n);
close $fh;
ok(wait_for(sub { (main::scrape())[0]{'omni_rules_generation'} == 2 }, 10, 0.05),
   'a new set: generation 2');
ok(wait_for(sub { (main::scrape())[0]{'omni_rules_loaded'} == 4 }, 10, 0.05),
   'the new rule is listed');

# a reload keeps the counters (the zone survives HUP)
my ($before) = main::scrape();
kill 'HUP', main::master_pid();
ok(wait_for(sub { error_log_text() =~ /reconfiguring/ }, 10, 0.05), 'reloaded');
ok(wait_for(sub { http_get('/index.html')->{status} == 200
                  && (main::scrape())[0]{'omni_requests_total{identity="new"}'}
                     >= $before->{'omni_requests_total{identity="new"}'} + 1 },
            10, 0.05), 'the counters go on after a reload');
my ($after) = main::scrape();
is($after->{'omni_merges_total'}, 1, 'merges kept across the reload');
ok($after->{'omni_touches_committed_total'} >= $before->{'omni_touches_committed_total'},
   'committed touches kept across the reload');
--- error_log
not compile
--- no_error_log
[crit]

=== TEST 2: a global holdout counts every decision as one; no rule is decided
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
--- user_files
>>> rules/a.json
{"settings": {"holdout": {"id": "h", "percent": 100}},
 "rules": [{"id": "welcome", "banner": {"slot": "hero", "html": "<b>hi</b>"}}]}
>>> html/index.html
<html><body><!--omni:slot hero--></body></html>
--- config
location / { omni on; }
location = /metrics { allow 127.0.0.1; deny all; omni_metrics; }
--- request
GET /index.html
--- response_body
<html><body><!--omni:slot hero--></body></html>
--- check
is(http_get('/index.html', Cookie => main::cookie())->{status}, 200, 'again');
my ($m) = main::scrape();
is($m->{'omni_decisions_total'}, 2, 'two decisions');
is($m->{'omni_holdouts_total'}, 2, 'both in the holdout');
is($m->{'omni_rule_decisions_total{rule="welcome"}'}, 0, 'nothing decided for the rule');
is($m->{'omni_rule_impressions_total{rule="welcome"}'}, 0, 'nor shown');

=== TEST 3: without a store or rules the endpoint still answers, with zeros
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
--- config
location = /metrics { omni_metrics; }
--- request
GET /metrics
--- response_body_like
omni_store_map_used_bytes 0\n(?s:.*)omni_rules_loaded 0\n
--- check
for my $g (qw(connected stream_applied_sequence stream_last_sequence
              stream_lag_messages behind_retention)) {
    like($resp->{content}, qr/^omni_cluster_$g 0$/m, "omni_cluster_$g 0");
}
like($resp->{content}, qr/^# TYPE omni_cluster_node_info gauge$/m,
     'omni_cluster_node_info declared');
unlike($resp->{content}, qr/^omni_cluster_node_info/m, '... with no series');
SKIP: {
    my ($ok, $out) = main::promtool($resp->{content});
    skip 'promtool is not installed', 1 unless defined $ok;
    ok($ok, 'promtool check metrics: no problem') or diag $out;
}

=== TEST 4: a full queue: drops counted (the writer stopped, the other worker queues); every queued touch committed once the writer goes on
--- skip_if: $ENV{TEST_NGINX_USE_VALGRIND}
--- workers: 2
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m queue=16;
server {
    # reuseport: each worker accepts its own share of the connections
    listen 127.0.0.1:$TEST_NGINX_PORT2 reuseport;
    location = /pid { return 200 $pid; }
    location = /metrics { omni_metrics; }
    location / { omni on; return 200 "ok"; }
}
--- config
location = /t { return 200 "up"; }
--- request
GET /t
--- check
my %conns;
for (1 .. 40) {
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$ENV{TEST_NGINX_PORT2}")
        or die "connect: $!";
    push @{ $conns{ main::ka($s, "GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")->{body} } }, $s;
}
my $x = main::holder();
my ($y) = grep { $_ != $x } keys %conns;
ok($y && @{ $conns{$x} // [] }, 'keep-alive connections to both workers')
    or BAIL_OUT('no connections to both workers');
my ($ys, $xs) = ($conns{$y}[0], $conns{$x}[0]);
my $m0 = main::ka_scrape($ys);
is($m0->{omni_touches_dropped_total}, 0, 'nothing dropped yet');

kill 'STOP', $x;
my $views = 40;
for my $i (1 .. $views) {
    # long referrers: 16 touches of ring (8 KiB) hold a few of them
    my $r = main::ka($ys, "GET /p$i HTTP/1.1\r\nHost: x\r\nCookie: "
                     . main::cookie(sprintf 'd0d0%028x', $i) . "\r\n"
                     . 'Referer: https://example.com/' . ('r' x 500)
                     . "\r\n\r\n");
    is($r->{status}, 200, "page view $i answered, the writer stopped") if $i == $views;
}
my $m = main::ka_scrape($ys);
kill 'CONT', $x;
ok($m->{omni_touches_dropped_total} > 0,
   "drops counted: $m->{omni_touches_dropped_total}");
ok($m->{omni_writer_queue_touches} > 0 && $m->{omni_writer_queue_touches} <= 16,
   "the queue holds what fits: $m->{omni_writer_queue_touches}");
is($m->{omni_touches_queued_total} + $m->{omni_touches_dropped_total}, $views,
   'every page view queued or dropped');
ok(wait_for(sub { my $n = main::ka_scrape($ys);
                  $n->{omni_writer_queue_touches} == 0
                  && $n->{omni_touches_committed_total} == $n->{omni_touches_queued_total} },
            10, 0.05), 'the writer went on: every queued touch committed');
is(main::ka_scrape($ys)->{omni_touches_dropped_total},
   $m->{omni_touches_dropped_total}, 'the drops stay counted');
--- error_log
writer queue full

=== TEST 5: geo lookups and misses
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_rules $TEST_NGINX_PREFIX/rules;
omni_geoip geo.mmdb;
set_real_ip_from 127.0.0.1;
real_ip_header X-Forwarded-For;
--- init
build_mmdb("$OmniTest::PREFIX/conf/geo.mmdb",
           { '10.2.0.0/16' => { country => 'FR', city => 'Paris',
                                lat => 48.86, lon => 2.34 } });
--- user_files
>>> rules/a.json
{"rules": [
  {"id": "fr", "when": {"geo": {"country": "FR"}},
   "banner": {"slot": "hero", "html": "<b>FR</b>"}}
]}
>>> html/index.html
<html><body><!--omni:slot hero--></body></html>
--- config
location / { omni on; }
location = /metrics { omni_metrics; }
--- request
GET /metrics
--- response_body_like
\nomni_geo_lookups_total 0\n(?s:.*)\nomni_geo_misses_total 0\n
--- check
like(http_get('/index.html', 'X-Forwarded-For' => '10.2.3.4')->{content},
     qr{<b>FR</b>}, 'a client in the database: found');
unlike(http_get('/index.html', 'X-Forwarded-For' => '10.9.3.4')->{content},
       qr{<b>FR</b>}, 'a client outside it: not found');
unlike(http_get('/index.html', 'X-Forwarded-For' => '10.9.3.5')->{content},
       qr{<b>FR</b>}, 'another one');
my ($m) = main::scrape();
is($m->{omni_geo_lookups_total}, 3, 'three lookups');
is($m->{omni_geo_misses_total}, 2, 'two misses');
is($m->{omni_decisions_total}, 3, 'three decisions');

=== TEST 6: omni_cluster with NATS unreachable: the node's info, not connected, publishes fail and are counted; without omni_cluster none of it (TEST 3)
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
omni_cluster nats://127.0.0.1:1 node=web-7 stream=SHOP timeout=200ms;
--- config
location / { omni on; return 200 "ok"; }
location = /metrics { omni_metrics; }
--- request
GET /page
--- check
my $m;
ok(wait_for(sub { ($m) = main::scrape(); $m->{omni_cluster_publish_failures_total} >= 1 },
            15, 0.1), 'the publish of the page view failed, and was counted')
    or diag explain $m;
is($m->{'omni_cluster_node_info{node="web-7",stream="SHOP"}'}, 1,
   'omni_cluster_node_info with node and stream');
is($m->{omni_cluster_connected}, 0, 'not connected');
is($m->{omni_cluster_messages_published_total}, 0, 'nothing published');
is($m->{omni_cluster_records_published_total}, 0, 'no record');
is($m->{omni_cluster_messages_consumed_total}, 0, 'nothing consumed');
is($m->{omni_cluster_messages_skipped_total}, 0, 'nothing skipped');
is($m->{omni_touches_committed_total}, 0, 'nothing committed (the stream applies)');
is($m->{'omni_writer_batches_total{result="failed"}'}, 0,
   'a failed publish is no failed writer batch');
is($m->{omni_touches_queued_total}, 1, 'the page view stays queued');
is($m->{omni_writer_queue_touches}, 1, '... in the queue');
my (undef, $r) = main::scrape();
SKIP: {
    my ($ok, $out) = main::promtool($r->{content});
    skip 'promtool is not installed', 1 unless defined $ok;
    ok($ok, 'promtool check metrics: no problem') or diag $out;
}
--- error_log
not published, retrying

=== TEST 7: omni_cluster with a NATS JetStream server: published, consumed, the applied sequence is the stream's, connected; the server stopped: disconnected
--- skip_if: $ENV{TEST_NGINX_NO_NATS}
--- workers: 2
--- init
main::nats_conf();
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=16m;
include cluster.conf;
--- config
location / { omni on; return 200 "ok"; }
location = /metrics { omni_metrics; }
--- request
GET /t
--- check
my $m;
for my $i (1 .. 5) {
    is(http_get("/p$i", Cookie => main::cookie(sprintf 'c1c1%028x', $i))->{status},
       200, "page view $i");
}
ok(wait_for(sub { ($m) = main::scrape();
                  $m->{omni_touches_committed_total} >= 6
                  && $m->{omni_cluster_stream_lag_messages} == 0 }, 20, 0.1),
   'the page views published and applied') or diag explain $m;
is($m->{omni_cluster_records_published_total}, 6, 'six records published and acknowledged');
# several records go in one message (docs/cluster.md)
my $msgs = $m->{omni_cluster_messages_published_total};
ok($msgs >= 1 && $msgs <= 6, "in $msgs message(s)");
is($m->{omni_cluster_messages_consumed_total}, $msgs, 'each consumed');
is($m->{omni_cluster_messages_skipped_total}, 0, 'none skipped');
is($m->{omni_touches_committed_total}, 6, 'six touches committed, by the consumer');
ok($m->{'omni_writer_batches_total{result="ok"}'} >= 1, 'the consumer\'s transactions are the batches');
is($m->{omni_writer_commit_duration_seconds_count}, $m->{'omni_writer_batches_total{result="ok"}'},
   'one commit time per transaction');
is($m->{omni_cluster_connected}, 1, 'connected');
is($m->{'omni_cluster_node_info{node="m-1",stream="OMNI"}'}, 1, 'node info');
my (undef, $info) = $main::NATS->natsping('stream-info', 'OMNI');
my ($last) = $info =~ /^last_seq=(\d+)$/m;
is($m->{omni_cluster_stream_applied_sequence}, $last, "applied the stream's last sequence ($last)");
is($m->{omni_cluster_stream_last_sequence}, $last, 'and saw it');
is($m->{omni_cluster_stream_lag_messages}, 0, 'no lag');
is($m->{omni_cluster_publish_failures_total}, 0, 'no publish failed');
is($m->{omni_cluster_consume_failures_total}, 0, 'no consume failed');
is($m->{omni_cluster_behind_retention}, 0, 'not behind');
my (undef, $r) = main::scrape();
SKIP: {
    my ($ok, $out) = main::promtool($r->{content});
    skip 'promtool is not installed', 1 unless defined $ok;
    ok($ok, 'promtool check metrics: no problem') or diag $out;
}

$main::NATS->stop(0);
ok(wait_for(sub { (main::scrape())[0]{omni_cluster_connected} == 0 }, 10, 0.1),
   'the server stopped: not connected');
is(http_get('/p9', Cookie => main::cookie())->{status}, 200, 'pages still served');
ok(wait_for(sub { (main::scrape())[0]{omni_cluster_publish_failures_total} >= 1 }, 15, 0.1),
   'its publish failed, and was counted');
$main::NATS->stop_all;
--- error_log
not published, retrying

=== TEST 8: events rejected, by reason: unauthorized, media_type, too_large, unavailable (no store), each counted once
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_events_key main "srv-key-0123456789abcdef0123456789abcdef";
--- config
location = /omni/events { omni_events max_body=1k; }
location = /metrics { omni_metrics; }
--- request
GET /metrics
--- check
my $ev = { type => 'track', event => 'Product Viewed', messageId => 'rj-1',
           anonymousId => $main::VID, properties => { sku => 'S1' } };
is(post($ev, Authorization => 'Bearer not-the-key-0123456789abcdef0123456789')->{status},
   401, 'a key that does not verify: 401');
is(post('{"type":"track"}', 'Content-Type' => 'application/xml')->{status},
   415, 'not JSON: 415');
is(post({ %$ev, properties => { sku => 'x' x 2000 } })->{status},
   413, 'larger than max_body: 413');
is(post($ev, Authorization => "Bearer $main::KEY")->{status},
   503, 'no store: 503');
my ($m) = main::scrape();
my %want = (unauthorized => 1, media_type => 1, too_large => 1,
            unavailable => 1, invalid => 0, forbidden => 0, method => 0,
            queue_full => 0);
for my $reason (sort keys %want) {
    is($m->{"omni_events_rejected_total{reason=\"$reason\"}"}, $want{$reason},
       "rejected $reason: $want{$reason}");
}
is($m->{'omni_events_total{result="accepted"}'}, 0, 'nothing accepted');

=== TEST 9: the store full at map_max: the batch counts as store_full, its touches as dropped, the fill gauges show it
--- init
my $in = "$OmniTest::PREFIX/fill.ndjson";
open(my $fh, '>', $in) or die $!;
printf $fh qq({"id":"%032x","attributes":{"blob":"%s"}}\n), $_, 'x' x 1000 for 1 .. 400;
close $fh;
my ($rc, $out, $err) = omnictl('--store', "$OmniTest::PREFIX/store", '--map-size', '1m',
                               'import', '--create', $in);
die "import: $err" if $rc;
--- http_config
omni_secret "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
omni_store $TEST_NGINX_PREFIX/store map_size=1m map_max=1m;
--- config
location / { omni on; return 200 "ok"; }
location = /metrics { omni_metrics; }
--- request
GET /metrics
--- check
my ($m0) = main::scrape();
is($m0->{omni_store_map_max_bytes}, 1024 * 1024, 'map_max 1m');
ok($m0->{omni_store_map_used_bytes} > 0.8 * 1024 * 1024,
   "the store is nearly full: $m0->{omni_store_map_used_bytes}");
my $m;
for my $i (1 .. 400) {
    http_get("/f$i", Cookie => main::cookie(sprintf 'f1f1%028x', $i),
             Referer => 'https://example.com/' . ('r' x 800));
    ($m) = main::scrape();
    last if $m->{'omni_writer_batches_total{result="store_full"}'} >= 1
            && $m->{omni_touches_dropped_total} > 0;
}
ok($m->{'omni_writer_batches_total{result="store_full"}'} >= 1,
   'a batch found the store full');
ok($m->{omni_touches_dropped_total} > 0,
   "its touches dropped: $m->{omni_touches_dropped_total}");
is($m->{'omni_writer_batches_total{result="failed"}'}, 0, 'no other failure');
ok($m->{omni_store_map_used_bytes} / $m->{omni_store_map_max_bytes} >= 0.9,
   'used / max >= 0.9: the store-fill alert\'s expression holds');
--- error_log
touchpoints are dropped
