#!/usr/bin/env bash
#
# The cluster bench (issue 13, docs/cluster.md): 2 nginx nodes on one NATS
# JetStream stream (R3 on 3 nats-server processes), all on this machine,
# against arm B of bench/run.sh on a single host, in one run.  Measures
# the issue's three targets and prints each as met or not:
#
#   1. propagation: a page view served by node 1 until its touchpoint is
#      in node 2's store, under B's load on node 1: p99 <= 1 s (aim 100 ms);
#   2. B's requests/s with the cluster on (node 1, "Bcl") >= 90% of B's
#      without it (a single host, "B"), interleaved rounds, medians; and
#      the same with NATS and node 2 on wrk's CPU ("Bclp"), so that node
#      1's worker has its CPU to itself as B's has;
#   3. a durable event's latency with R3 (node 1's omni_events, one
#      connection), next to the same on the single host.
#
# and fails (exit status 1, after the report) when a correctness check
# fails: an event answered 200 missing from a store (node 1, node 2, or
# the single host's), the two nodes' stores not equal after the load
# (omnictl export), a page view of the probe never seen in a store, a
# touch dropped, a worker that died (its core is kept in
# build/cluster-bench/cores/NAME/), wrk errors on the page arms, or an
# [alert]/[crit]/[emerg] line in a log.
#
#   ./bench/cluster.sh                 # about 5 minutes
#   QUICK=1 ./bench/cluster.sh         # smoke run, under a minute
#
# Configuration, as bench/run.sh's arm B: one worker pinned to CPU 0 (the
# single host, and node 1), wrk -t1 -c32 pinned to CPU 1 with bench/wrk.lua
# (signed cookies of random profiles outside the holdout, a browser
# User-Agent, X-Forwarded-For from the bench's GeoIP database), the 10 KB
# page of bench/gen-page.pl, 100 rules (rules/ + bench/gen-rules.pl),
# omni_geoip, a store of 1k profiles (bench/gen-profiles.pl), one copy per
# nginx.  The cluster: node 1 and node 2 add
#   omni_cluster URLS node=web-N replicas=3;
# node 2 (one worker) and the three nats-server processes (started by
# t/lib/OmniNats.pm through bench/cluster-nats.pl) are not pinned: they
# share the 2 CPUs with everything else, as they would not in production;
# in arm Bclp they are moved to CPU 1 (taskset, every thread) for the run.
# The nginx that is not measured is idle during a run.
#
# Each round: B (the single host), then Bcl (node 1) with the propagation
# probe (bench/cluster-probe.c: every PROBE_INTERVAL ms one page view of a
# unique path to node 1, then node 2's and node 1's touchpoint logs read
# every PROBE_POLL ms until it is in both), then the cluster is let settle
# (both nodes' stores at the stream's last sequence) and the time it took
# is recorded; then Bclp (node 1, NATS and node 2 on CPU 1, no probe),
# settled the same way.  Before the rounds, the probe alone on the idle
# cluster.
# After them, the events arm: wrk with bench/events.lua at 1 connection,
# single host then node 1, EV_RUNS rounds; every event answered 200 must
# then be in the store(s).
#
# Environment:
#   DUR=10        seconds per page run                   (QUICK: 3)
#   RUNS=7        interleaved rounds of B and Bcl         (QUICK: 2)
#   WARM=3        seconds of warm-up per arm              (QUICK: 1)
#   CONNS=32      wrk connections (one thread)
#   EV_DUR=8      seconds per events run                 (QUICK: 2)
#   EV_RUNS=3     rounds of the events arm               (QUICK: 1)
#   EV_CONNS=1    wrk connections of the events arm
#   IDLE_PROBE=5  seconds of the probe on the idle cluster (QUICK: 2)
#   PROBE_INTERVAL=50  ms between the probe's page views
#   PROBE_POLL=2  ms between its reads of the stores
#   PROBE_TIMEOUT=10000  ms after which a page view counts as not propagated
#   SETTLE_MAX=60  seconds the cluster may take to settle after a run (once
#                 it did not, 5 s: a node that stopped applying stays so)
#   PROFILES=1000 COOKIES=10000 RULES=100 GEO_NETS=4096
#   CLUSTER_OPTS= more omni_cluster parameters, e.g. "max_bytes=4g"
#   PORT_BASE=18580  loopback ports: +0 the single host, +1 node 1, +2 node 2
#   QUIET_BUDGET=20  seconds, in all, of waiting for an idle machine
#   NGINX=/usr/sbin/nginx  MODULE=, OMNICTL=, NATSPING= (default: build/)
#
# Output: the report on stdout and in build/cluster-bench/results.md; the
# runs in build/cluster-bench/runs.tsv, the probes' delays in
# build/cluster-bench/raw/probe-*.tsv, logs in build/cluster-bench/logs/.
# Only ever talks to 127.0.0.1.

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
B=$ROOT/build/cluster-bench
MODULE=${MODULE:-$ROOT/build/ngx_http_omni_module.so}
OMNICTL=${OMNICTL:-$ROOT/build/omnictl}
NATSPING=${NATSPING:-$ROOT/build/natsping}

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    DUR=${DUR:-3}; RUNS=${RUNS:-2}; WARM=${WARM:-1}
    EV_DUR=${EV_DUR:-2}; EV_RUNS=${EV_RUNS:-1}; IDLE_PROBE=${IDLE_PROBE:-2}
else
    DUR=${DUR:-10}; RUNS=${RUNS:-7}; WARM=${WARM:-3}
    EV_DUR=${EV_DUR:-8}; EV_RUNS=${EV_RUNS:-3}; IDLE_PROBE=${IDLE_PROBE:-5}
fi
CONNS=${CONNS:-32}
EV_CONNS=${EV_CONNS:-1}
PROBE_INTERVAL=${PROBE_INTERVAL:-50}
PROBE_POLL=${PROBE_POLL:-2}
PROBE_TIMEOUT=${PROBE_TIMEOUT:-10000}
SETTLE_MAX=${SETTLE_MAX:-60}
PROFILES=${PROFILES:-1000}
COOKIES=${COOKIES:-10000}
RULES=${RULES:-100}
GEO_NETS=${GEO_NETS:-4096}
CLUSTER_OPTS=${CLUSTER_OPTS:-}
PORT_S=${PORT_BASE:-18580}
PORT_1=$((PORT_S + 1))
PORT_2=$((PORT_S + 2))
QUIET_BUDGET=${QUIET_BUDGET:-20}
HOST=127.0.0.1
NGINX_CPU=0
WRK_CPU=1
CLK_TCK=$(getconf CLK_TCK)
STREAM=OMNI
T0=$(date +%s)
FAIL=

die() { echo "cluster-bench: FAIL: $*" >&2; exit 1; }
log() { echo "cluster-bench: $*" >&2; }
. "$(dirname "$0")/lib.sh"
fail() { log "CHECK FAILED: $*"; FAIL="$FAIL
- $*"; }

# ---------------------------------------------------------------- preflight

for tool in "$NGINX" wrk taskset curl perl cc nats-server; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh)"
done
[ -f /usr/include/lmdb.h ] || die "lmdb.h missing (liblmdb-dev) for bench/cluster-probe.c"
perl -MMaxMind::DB::Writer::Tree -e1 2>/dev/null \
    || die "MaxMind::DB::Writer missing (libmaxmind-db-writer-perl, scripts/install-deps.sh)"
[ -f "$MODULE" ] || die "$MODULE missing: make module"
[ -x "$OMNICTL" ] || die "$OMNICTL missing: make omnictl"
[ -x "$NATSPING" ] || die "$NATSPING missing: make natsping"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (nginx on CPU $NGINX_CPU, wrk on CPU $WRK_CPU)"
ports_free $PORT_S $PORT_1 $PORT_2

# Snapshots of the module, omnictl and natsping (bench/lib.sh).
rm -rf "$B"
mkdir -p "$B"/{bin,conf,logs,raw,data,tmp,rules,html/b,nats}
snapshot "$MODULE" "$B/bin/ngx_http_omni_module.so"
snapshot "$OMNICTL" "$B/bin/omnictl"
snapshot "$NATSPING" "$B/bin/natsping"
MODULE=$B/bin/ngx_http_omni_module.so
OMNICTL=$B/bin/omnictl
NATSPING=$B/bin/natsping
MODULE_SUM=$(sha256sum "$MODULE" | cut -c1-12)
cc -O2 -Wall -o "$B/bin/cluster-probe" "$BENCH/cluster-probe.c" -llmdb \
    || die "cannot build bench/cluster-probe.c"
PROBE=$B/bin/cluster-probe

# ---------------------------------------------------------------- cleanup

declare -A MASTER=()
NATS_FD=
cleanup() {
    local rc=$? name m
    for name in "${!MASTER[@]}"; do
        m=${MASTER[$name]}
        if [ -n "$m" ] && kill -0 "$m" 2>/dev/null; then
            kill -QUIT "$m" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$m" 2>/dev/null || break; sleep 0.2; done
            kill -0 "$m" 2>/dev/null && kill -KILL "$m" 2>/dev/null || true
        fi
    done
    # closing the FIFO stops the NATS servers (bench/cluster-nats.pl)
    if [ -n "$NATS_FD" ]; then
        exec 3>&-
        for _ in $(seq 100); do [ -d "$NATS_DIR" ] || break; sleep 0.1; done
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- data

# The page, the rules, the geo database, the secret, the store and the
# cookies: as bench/run.sh makes them for arm B.
perl "$BENCH/gen-page.pl" 10240 > "$B/html/b/page.html"
cp "$ROOT"/rules/*.json "$B/rules/"
rules_count() { "$OMNICTL" rules check "$1" --json | perl -ne 'print $1 if /"rules":(\d+)/'; }
SEED_RULES=$(rules_count "$B/rules") || die "the seed rules do not compile"
perl "$BENCH/gen-rules.pl" "$B/rules" $((RULES - SEED_RULES)) || die "bench/gen-rules.pl failed"
[ "$(rules_count "$B/rules")" = "$RULES" ] || die "expected $RULES rules in $B/rules"
HOLDOUT=$(perl -MJSON::PP -e '
    for my $f (@ARGV) {
        open(my $fh, "<", $f) or next;
        my $d = eval { decode_json(do { local $/; <$fh> }) } or next;
        my $h = ref $d eq "HASH" && $d->{settings} && $d->{settings}{holdout} or next;
        print "$h->{id}:$h->{percent}";
    }' "$B"/rules/*.json)
OUTSIDE=${HOLDOUT:+--outside=$HOLDOUT}
IPS_FILE=$B/data/ips.txt
perl "$BENCH/gen-geo.pl" "$B/geo.mmdb" "$IPS_FILE" "$GEO_NETS" > /dev/null \
    || die "bench/gen-geo.pl failed"
SECRET_FILE=$B/secret
perl -MMIME::Base64 -e 'open(my $r, "<", "/dev/urandom") or die; read($r, my $b, 36); print encode_base64($b, ""), "\n"' > "$SECRET_FILE"
chmod 600 "$SECRET_FILE"
SECRET=$(cat "$SECRET_FILE")
USER_LINE=
[ "$(id -u)" = 0 ] && USER_LINE="user root;"

# One store, copied for each nginx: the same profiles everywhere.
perl "$BENCH/gen-profiles.pl" "$PROFILES" "$T0" > "$B/data/profiles.ndjson"
"$OMNICTL" --store "$B/store-seed" --map-size 2g stat --create > /dev/null \
    || die "omnictl stat --create failed"
"$OMNICTL" --store "$B/store-seed" --map-size 2g import "$B/data/profiles.ndjson" \
    > "$B/logs/import.log" 2>&1 || { cat "$B/logs/import.log" >&2; die "import failed"; }
for s in single n1 n2; do cp -a "$B/store-seed" "$B/store-$s"; done
rm -rf "$B/store-seed" "$B/data/profiles.ndjson"
COOKIE_FILE=$B/data/cookies.txt
perl "$BENCH/mint-cookies.pl" $OUTSIDE "$SECRET_FILE" "$PROFILES" "$COOKIES" 16 > "$COOKIE_FILE"
# The probe's visitor: a reserved profile (none of wrk's cookies).
PROBE_COOKIE=$(perl "$BENCH/mint-cookies.pl" "$SECRET_FILE" --id "$(printf '%032x' $((PROFILES - 1)))" | cut -d' ' -f2)
log "data: $PROFILES profiles, $COOKIES cookies, $RULES rules, geo $GEO_NETS networks"

# ---------------------------------------------------------------- NATS

mkfifo "$B/nats/ctl"
TMPDIR=$B/nats perl "$BENCH/cluster-nats.pl" 3 < "$B/nats/ctl" \
    > "$B/nats/driver.out" 2> "$B/logs/nats-driver.log" &
exec 3> "$B/nats/ctl"
NATS_FD=3
NATS_DIR=/nonexistent
for _ in $(seq 600); do
    grep -q '^ready' "$B/nats/driver.out" 2>/dev/null && break
    kill -0 $! 2>/dev/null || { cat "$B/logs/nats-driver.log" >&2; die "the NATS cluster did not start"; }
    sleep 0.1
done
grep -q '^ready' "$B/nats/driver.out" || die "the NATS cluster did not form within 60 s"
URLS=$(sed -n 's/^urls=//p' "$B/nats/driver.out")
NATS_DIR=$(sed -n 's/^dir=//p' "$B/nats/driver.out")
NATS_PIDS=$(sed -n 's/^pids=//p' "$B/nats/driver.out" | tr ',' ' ')
log "NATS: 3 servers ($NATS_PIDS), $URLS"

# ---------------------------------------------------------------- nginx

write_conf() {   # name port store "cluster line" pinned(0|1)
    local name=$1 port=$2 store=$3 cluster=$4 aff=
    [ "$5" = 1 ] && aff="worker_cpu_affinity 01;"
    mkdir -p "$B/tmp/$name" "$B/cores/$name"
    cat > "$B/conf/$name.conf" <<EOF
# Generated by bench/cluster.sh: "$name".
load_module $MODULE;

$USER_LINE
worker_processes 1;
$aff
# a worker that crashes leaves its core here (gdb, with the module snapshot)
working_directory $B/cores/$name;
worker_rlimit_core 4g;
pid logs/$name.pid;
error_log logs/$name.error.log info;

events {
    worker_connections 1024;
}

http {
    types { text/html html; }
    default_type application/octet-stream;

$(conf_http_common tmp/$name)

    omni_secret "$SECRET";
    omni_store $store map_size=2g;
    omni_rules $B/rules;
    omni_geoip $B/geo.mmdb;
    $cluster

    set_real_ip_from $HOST;
    real_ip_header X-Forwarded-For;

    server {
        listen $HOST:$port;
        server_name bench-$name;
        root $B/html;
        omni on;

        # arm B: the full path (rules, geo, banner and pixels injected)
        location /b/ { }

        # the propagation probe's page views, each with its own path
        location /probe/ {
            default_type text/plain;
            return 200 "probe\n";
        }

        location = /omni/events {
            omni_events;
        }
    }
}
EOF
}

declare -A WORKER=()
start_nginx() {   # name
    local name=$1 m w
    "$NGINX" -t -q -p "$B/" -c "conf/$name.conf" -e "logs/$name.startup.log" \
        || die "nginx -t failed for $name (see $B/logs/$name.startup.log)"
    "$NGINX" -p "$B/" -c "conf/$name.conf" -e "logs/$name.startup.log" \
        || die "nginx did not start ($name)"
    for _ in $(seq 50); do [ -s "$B/logs/$name.pid" ] && break; sleep 0.1; done
    m=$(cat "$B/logs/$name.pid" 2>/dev/null) || die "no pid file for $name"
    MASTER[$name]=$m
    for _ in $(seq 50); do
        w=$(pgrep -P "$m" -f 'worker process' | tr '\n' ' ' || true)
        [ "$(echo $w | wc -w)" = 1 ] && break
        sleep 0.1
    done
    [ "$(echo $w | wc -w)" = 1 ] || die "$name: expected 1 worker under master $m, found: $w"
    WORKER[$name]=${w% }
    log "$name: nginx master $m, worker ${WORKER[$name]}"
}

stop_nginx() {   # name
    local name=$1 m=${MASTER[$1]:-}
    [ -n "$m" ] || return 0
    kill -QUIT "$m"
    for _ in $(seq 150); do kill -0 "$m" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$m" 2>/dev/null; then
        kill -KILL "$m" 2>/dev/null || true
        fail "$name: nginx master $m did not exit within 30 s of SIGQUIT"
    fi
    MASTER[$name]=
}

CL="omni_cluster $URLS node=web-%s stream=$STREAM replicas=3${CLUSTER_OPTS:+ $CLUSTER_OPTS};"
write_conf single "$PORT_S" "$B/store-single" "" 1
# shellcheck disable=SC2059
write_conf n1 "$PORT_1" "$B/store-n1" "$(printf "$CL" 1)" 1
# shellcheck disable=SC2059
write_conf n2 "$PORT_2" "$B/store-n2" "$(printf "$CL" 2)" 0
start_nginx n1
start_nginx n2
start_nginx single

# ---------------------------------------------------------------- helpers

stat_field() {   # store field
    "$OMNICTL" --store "$1" stat | perl -ne "print \$1 if /\"$2\":\\s*(\\d+)/"
}
feed_seq() { stat_field "$1" last_seq; }
node_seq() { local v; v=$(stat_field "$1" stream_seq); echo "${v:-0}"; }
stream_last() {
    "$NATSPING" --urls "$URLS" stream-info "$STREAM" 2>/dev/null | sed -n 's/^last_seq=//p'
}

# Both nodes' stores at the stream's last sequence, twice in a row 0.2 s
# apart.  Prints the seconds it took; fails after SETTLE_MAX.
settle() {
    local t0 t1 a b s prev= n=0
    t0=$(date +%s.%N)
    for _ in $(seq $((SETTLE_MAX * 5))); do
        s=$(stream_last); a=$(node_seq "$B/store-n1"); b=$(node_seq "$B/store-n2")
        if [ -n "$s" ] && [ "$a" = "$s" ] && [ "$b" = "$s" ]; then
            if [ "$s" = "$prev" ]; then n=$((n + 1)); else n=1; fi
            prev=$s
            if [ "$n" -ge 2 ]; then
                t1=$(date +%s.%N)
                awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", b - a - 0.2 }'
                return 0
            fi
        else
            n=0
        fi
        sleep 0.2
    done
    log "not settled after $SETTLE_MAX s: stream $s, node 1 $a, node 2 $b"
    echo -1
}

# The single host's writer has drained its queue: its feed stopped growing.
drained_seq() {   # store
    local a b
    a=$(feed_seq "$1")
    for _ in $(seq 100); do
        sleep 0.3
        b=$(feed_seq "$1")
        [ "$a" = "$b" ] && break
        a=$b
    done
    echo "$a"
}

# utime+stime in ticks of processes (all their threads); a process that
# is gone counts 0 (a crashed worker: check_worker says so).
ticks() {
    local t=0 p v
    for p in "$@"; do
        v=$({ sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null || true; } | awk '{print $12 + $13}')
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
main_ticks() {   # the event loop thread of a worker
    local v
    v=$({ sed 's/^.*) //' "/proc/$1/task/$1/stat" 2>/dev/null || true; } | awk '{print $12 + $13}')
    echo "${v:-0}"
}

# A worker that died during a run (a crash: nginx starts another) fails
# the bench; the run goes on with the new worker, for the other checks.
CRASHES=0
check_worker() {   # name
    local name=$1 w=${WORKER[$1]} m=${MASTER[$1]} nw= why
    kill -0 "$w" 2>/dev/null && return 0
    CRASHES=$((CRASHES + 1))
    why=$(grep -E "worker process $w exited|^[a-z_]+\(\)|corrupted|double free|invalid (size|pointer)" \
          "$B/logs/$name.error.log" | tail -3 | tr '\n' ' ')
    fail "$name: its worker $w died during a run: $why(cores, if any: $B/cores/$name/)"
    nw=$(worker_of "$m")
    [ -n "$nw" ] || die "$name: no worker after the crash"
    WORKER[$name]=$nw
    log "$name: new worker $nw"
}
sys_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

QUIET_WAITED=0
quiet_wait() {   # other processes under 10% of a CPU, within the budget
    local s0 s1 o0 o1 busy
    for i in $(seq 20); do
        s0=$(sys_ticks); o0=$(ticks ${WORKER[single]} ${WORKER[n1]} ${WORKER[n2]} $NATS_PIDS)
        sleep 0.25
        s1=$(sys_ticks); o1=$(ticks ${WORKER[single]} ${WORKER[n1]} ${WORKER[n2]} $NATS_PIDS)
        busy=$(( (s1 - s0 - (o1 - o0)) * 100 * 4 / CLK_TCK ))
        [ "$busy" -le 10 ] && return 0
        [ "$QUIET_WAITED" -ge "$QUIET_BUDGET" ] && return 0
        [ "$i" = 1 ] && log "machine busy (${busy}% of a CPU outside the bench), waiting"
        sleep 0.75
        QUIET_WAITED=$((QUIET_WAITED + 1))
    done
}

BROWSER_UA="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
port_of() { case $1 in single) echo "$PORT_S" ;; n1) echo "$PORT_1" ;; n2) echo "$PORT_2" ;; esac; }

RUNS_TSV=$B/runs.tsv
printf 'phase\tround\tarm\trps\trequests\tp50_us\tp99_us\tworker_cpu_us_req\tloop_cpu_us_req\tcluster_cpu_pct\tnats_cpu_pct\tnode2_cpu_pct\twrk_cpu_pct\tother_cpu_pct\tbytes_req\ttouches\tsettle_s\n' > "$RUNS_TSV"
EV_TSV=$B/events.tsv
printf 'round\tarm\tevents_s\trequests\tp50_us\tp90_us\tp99_us\tmax_us\taccepted\tnon200\tother200\tmissing_n1\tmissing_n2\tmissing_single\n' > "$EV_TSV"

# wrk against one nginx.  Sets: W_REQ W_RPS W_P50 W_P90 W_P99 W_MAX
# W_BYTES W_ACC W_NON200 W_OTHER200, and W_CPU (the nginx worker's CPU µs
# per request, all threads), W_LOOP (its event loop thread's), W_CL (NATS + node 2, % of a CPU; only for the cluster),
# W_NATS, W_N2, W_WRK, W_OTHER (% of a CPU).
wrk_run() {   # name phase tag seconds conns script args...
    local name=$1 phase=$2 tag=$3 secs=$4 conns=$5 script=$6 url out tf
    shift 6
    local w=${WORKER[$name]} n2w=${WORKER[n2]}
    local a0 a1 l0 l1 n0 n1 c0 c1 s0 s1 wu ws line
    if [ "$phase" = events ]; then url="http://$HOST:$(port_of "$name")/omni/events"
    else url="http://$HOST:$(port_of "$name")/b/page.html"; fi
    out=$B/raw/$tag.out
    tf=$B/raw/$tag.time
    a0=$(ticks "$w"); l0=$(main_ticks "$w"); n0=$(ticks $NATS_PIDS); c0=$(ticks "$n2w" "${MASTER[n2]}"); s0=$(sys_ticks)
    local TIMEFORMAT='%3U %3S'
    { time timeout $((secs + 30)) taskset -c $WRK_CPU wrk -t1 -c"$conns" \
          -d"${secs}s" --latency --timeout 5s -s "$script" "$url" -- "$@" \
          > "$out" 2>&1 ; } 2> "$tf" || { cat "$out" >&2; die "wrk failed: $tag"; }
    a1=$(ticks "$w"); l1=$(main_ticks "$w"); n1=$(ticks $NATS_PIDS); c1=$(ticks "$n2w" "${MASTER[n2]}"); s1=$(sys_ticks)
    check_worker "$name"
    [ "$name" = n2 ] || check_worker n2
    line=$(grep '^BENCH ' "$out") || { cat "$out" >&2; die "no BENCH line from wrk ($tag)"; }
    local requests duration_us bytes err_connect err_read err_write err_status err_timeout
    local lat_p50 lat_p90 lat_p99 lat_max lat_mean accepted=0 other200=0 non200=0
    eval "${line#BENCH }"
    [ "$requests" -gt 0 ] || die "$tag: no requests completed"
    if [ "$phase" != events ] && { [ "$err_status" != 0 ] || [ "$err_connect" != 0 ] \
                                   || [ "$err_timeout" != 0 ] || [ "$err_read" != 0 ]; }; then
        fail "$tag: wrk saw errors (status $err_status, connect $err_connect, timeout $err_timeout, read $err_read)"
    fi
    read -r wu ws < "$tf"
    W_REQ=$requests; W_P50=$lat_p50; W_P90=$lat_p90; W_P99=$lat_p99; W_MAX=$lat_max
    W_ACC=$accepted; W_NON200=$((non200 + err_read + err_timeout)); W_OTHER200=$other200
    read -r W_RPS W_BYTES W_CPU W_LOOP W_NATS W_N2 W_WRK W_OTHER < <(perl -e '
        my ($req, $dur, $bytes, $da, $dl, $dn, $dc, $ds, $wrk, $tck) = @ARGV;
        my $sec = $dur / 1e6;
        my $other = $ds - $da - $dn - $dc - $wrk * $tck;
        $other = 0 if $other < 0;
        printf "%.0f %.0f %.2f %.2f %.1f %.1f %.1f %.1f\n", $req / $sec, $bytes / $req,
            $da * 1e6 / $tck / $req, $dl * 1e6 / $tck / $req, 100 * $dn / $tck / $sec, 100 * $dc / $tck / $sec,
            100 * $wrk / $sec, 100 * $other / $tck / $sec;
    ' "$requests" "$duration_us" "$bytes" $((a1 - a0)) $((l1 - l0)) $((n1 - n0)) $((c1 - c0)) \
      $((s1 - s0)) "$(echo "$wu $ws" | awk '{print $1 + $2}')" "$CLK_TCK")
    W_CL=$(awk -v a="$W_NATS" -v b="$W_N2" 'BEGIN { printf "%.1f", a + b }')
}

# ---------------------------------------------------------------- verify

# Arm B's page from both (banner and pixels injected), and a page view on
# node 1 that reaches node 2's store: the cluster is connected.
verify_page() {   # name
    local name=$1 hdr=$B/raw/verify-$1.hdr body=$B/raw/verify-$1.html cookie
    cookie=$(head -1 "$COOKIE_FILE" | cut -d' ' -f2)
    curl -sS --max-time 5 -o "$body" -D "$hdr" -H "Cookie: omni=$cookie" \
        -H "User-Agent: $BROWSER_UA" -H "X-Forwarded-For: $(head -1 "$IPS_FILE")" \
        "http://$HOST:$(port_of "$name")/b/page.html" || die "$name: curl failed"
    grep -q '^HTTP/1.1 200' "$hdr" || { cat "$hdr" >&2; die "$name: arm B did not answer 200"; }
    grep -qi '^set-cookie' "$hdr" && die "$name: Set-Cookie: the minted cookie was not accepted"
    grep -q 'class="omni omni-' "$body" || die "$name: no banner injected ($body)"
    grep -q 'ads\.example\.com/rt' "$body" || die "$name: no retargeting pixel ($body)"
}
verify_page single
verify_page n1
verify_page n2

s2=$(feed_seq "$B/store-n2")
curl -sS --max-time 5 -o /dev/null -H "Cookie: omni=$PROBE_COOKIE" \
    -H "User-Agent: $BROWSER_UA" "http://$HOST:$PORT_1/probe/verify" || die "node 1: probe curl failed"
ok=
for _ in $(seq 300); do
    if "$OMNICTL" --store "$B/store-n2" tail --after "$s2" | grep -q '"path":"/probe/verify"'; then ok=1; break; fi
    sleep 0.1
done
[ -n "$ok" ] || die "a page view on node 1 did not reach node 2's store within 30 s (see $B/logs/n*.error.log)"
[ "$(settle)" != -1 ] || die "the cluster did not settle after the verification requests"
log "verified: arm B injects on all three; a page view on node 1 is in node 2's store"
"$OMNICTL" --store "$B/store-n1" export > "$B/data/export-n1.start"
"$OMNICTL" --store "$B/store-n2" export > "$B/data/export-n2.start"
cmp -s "$B/data/export-n1.start" "$B/data/export-n2.start" \
    || fail "the nodes' stores differ before the load (exports in $B/data/)"

# ---------------------------------------------------------------- pages

log "warm-up: $WARM s each"
wrk_run single warm warm.B "$WARM" "$CONNS" "$BENCH/wrk.lua" "$COOKIE_FILE" omni "$IPS_FILE"
wrk_run n1 warm warm.Bcl "$WARM" "$CONNS" "$BENCH/wrk.lua" "$COOKIE_FILE" omni "$IPS_FILE"
WARM_SETTLE=$(settle)
log "warm-up: the cluster settled in $WARM_SETTLE s"

# The probe alone, the cluster idle.
quiet_wait
"$PROBE" --port "$PORT_1" --path-prefix "/probe/idle-" --cookie "$PROBE_COOKIE" \
    --store "$B/store-n2" --store "$B/store-n1" --seconds "$IDLE_PROBE" \
    --interval "$PROBE_INTERVAL" --poll "$PROBE_POLL" --timeout "$PROBE_TIMEOUT" \
    > "$B/raw/probe-idle.tsv" || die "the probe failed (idle)"
log "idle probe: $(wc -l < "$B/raw/probe-idle.tsv") page views"

record() {   # phase round arm touches settle
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" \
        "$W_RPS" "$W_REQ" "$W_P50" "$W_P99" "$W_CPU" "$W_LOOP" "$W_CL" "$W_NATS" "$W_N2" \
        "$W_WRK" "$W_OTHER" "$W_BYTES" "$4" "$5" >> "$RUNS_TSV"
    log "$(printf 'round %s %-3s %7s req/s  p50 %5s us  p99 %6s us  worker %6s us/req (loop %s)  NATS+node2 %5s%% CPU  other %5s%%  touches %s  settle %s s' \
        "$2" "$3" "$W_RPS" "$W_P50" "$W_P99" "$W_CPU" "$W_LOOP" "$W_CL" "$W_OTHER" "$4" "$5")"
}

# NATS and node 2 on the CPU given (every thread), for arm Bclp; back on
# every CPU with the CPU list of the machine.
pin_others() {   # cpus
    local p
    for p in $NATS_PIDS ${MASTER[n2]} ${WORKER[n2]}; do
        taskset -a -p -c "$1" "$p" > /dev/null 2>&1 || true
    done
}
ALL_CPUS=0-$(( $(nproc) - 1 ))

# After a run on node 1: the cluster let settle, the pages checked for
# injection against B's, the run recorded with the stream's messages.
record_cluster() {   # round arm stream-sequence-before
    local sl st1
    sl=$(settle)
    [ "$sl" != -1 ] || { fail "round $1: the cluster did not settle within $SETTLE_MAX s"; SETTLE_MAX=5; }
    st1=$(stream_last)
    [ "$W_BYTES" -ge $((B_BYTES * 95 / 100)) ] \
        || die "round $1: $2 responses average $W_BYTES bytes, B's $B_BYTES: not injected"
    record pages "$1" "$2" $((st1 - $3)) "$sl"
}

for r in $(seq "$RUNS"); do
    # B: the single host
    quiet_wait
    f0=$(feed_seq "$B/store-single")
    wrk_run single pages "r$r.B" "$DUR" "$CONNS" "$BENCH/wrk.lua" "$COOKIE_FILE" omni "$IPS_FILE"
    f1=$(drained_seq "$B/store-single")
    [ "$W_BYTES" -ge 10540 ] || die "round $r: arm B responses average $W_BYTES bytes: not injected"
    record pages "$r" B $((f1 - f0)) -
    B_BYTES=$W_BYTES

    # Bcl: node 1, the probe running from 0.5 s in to 0.5 s before the end
    quiet_wait
    st0=$(stream_last)
    ( sleep 0.5; exec "$PROBE" --port "$PORT_1" --path-prefix "/probe/r$r-" \
        --cookie "$PROBE_COOKIE" --store "$B/store-n2" --store "$B/store-n1" \
        --seconds $((DUR - 1)) --interval "$PROBE_INTERVAL" --poll "$PROBE_POLL" \
        --timeout "$PROBE_TIMEOUT" > "$B/raw/probe-r$r.tsv" ) &
    probe_pid=$!
    wrk_run n1 pages "r$r.Bcl" "$DUR" "$CONNS" "$BENCH/wrk.lua" "$COOKIE_FILE" omni "$IPS_FILE"
    wait "$probe_pid" || die "round $r: the probe failed"
    record_cluster "$r" Bcl "$st0"

    # Bclp: node 1 again, NATS and node 2 on wrk's CPU: node 1's worker
    # has CPU 0 to itself, as B's has (in production the NATS servers and
    # the other nodes run on machines of their own)
    quiet_wait
    st0=$(stream_last)
    pin_others "$WRK_CPU"
    wrk_run n1 pages "r$r.Bclp" "$DUR" "$CONNS" "$BENCH/wrk.lua" "$COOKIE_FILE" omni "$IPS_FILE"
    pin_others "$ALL_CPUS"
    record_cluster "$r" Bclp "$st0"
done

# ---------------------------------------------------------------- events

# An events run: every event answered 200 "accepted" must be in the
# store(s) (source client, its messageId).
ev_missing() {   # store seq0 ids
    "$OMNICTL" --store "$1" tail --after "$2" | perl -e '
        my $ids = shift;
        open(my $f, "<", $ids) or die "$ids: $!\n";
        my %want = map { chomp; $_ => 1 } <$f>;
        while (<STDIN>) {
            next unless /"context":\{"source":"client"\}/ && /"messageId":"([^"]+)"/;
            delete $want{$1};
        }
        print scalar(keys %want), "\n";
    ' "$3"
}

for r in $(seq "$EV_RUNS"); do
    for arm in evB evBcl; do
        if [ "$arm" = evB ]; then name=single; else name=n1; fi
        tag=r$r.$arm
        s_single=$(feed_seq "$B/store-single"); s1=$(feed_seq "$B/store-n1"); s2=$(feed_seq "$B/store-n2")
        quiet_wait
        wrk_run "$name" events "$tag" "$EV_DUR" "$EV_CONNS" "$BENCH/events.lua" \
            "$COOKIE_FILE" "$tag.$(date +%s%N)" "$B/raw/$tag.ids"
        [ "$(wc -l < "$B/raw/$tag.ids")" = "$W_ACC" ] \
            || fail "$tag: $W_ACC events accepted but $(wc -l < "$B/raw/$tag.ids") messageIds written"
        m1=-; m2=-; ms=-
        if [ "$name" = single ]; then
            ms=$(ev_missing "$B/store-single" "$s_single" "$B/raw/$tag.ids")
            [ "$ms" = 0 ] || fail "$tag: $ms of the $W_ACC events answered 200 are not in the single host's store"
        else
            [ "$(settle)" != -1 ] || { fail "$tag: the cluster did not settle"; SETTLE_MAX=5; }
            m1=$(ev_missing "$B/store-n1" "$s1" "$B/raw/$tag.ids")
            m2=$(ev_missing "$B/store-n2" "$s2" "$B/raw/$tag.ids")
            [ "$m1" = 0 ] || fail "$tag: $m1 of the $W_ACC events answered 200 are not in node 1's store"
            [ "$m2" = 0 ] || fail "$tag: $m2 of the $W_ACC events answered 200 are not in node 2's store"
        fi
        [ "$W_NON200" = 0 ] || log "$tag: $W_NON200 event(s) not answered 200 (503?)"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$arm" \
            "$W_RPS" "$W_REQ" "$W_P50" "$W_P90" "$W_P99" "$W_MAX" "$W_ACC" "$W_NON200" \
            "$W_OTHER200" "$m1" "$m2" "$ms" >> "$EV_TSV"
        log "$(printf 'events round %s %-5s %6s events/s  p50 %6s us  p99 %6s us  max %6s us  %s accepted, %s not 200, missing: node 1 %s, node 2 %s, single %s' \
            "$r" "$arm" "$W_RPS" "$W_P50" "$W_P99" "$W_MAX" "$W_ACC" "$W_NON200" "$m1" "$m2" "$ms")"
    done
done

# ---------------------------------------------------------------- end state

FINAL_SETTLE=$(settle)
[ "$FINAL_SETTLE" != -1 ] || fail "the cluster did not settle at the end"
# The probe's page views: every one in both nodes' logs.
for f in "$B"/raw/probe-*.tsv; do
    lost=$(awk -F'\t' '$3 < 0 || $4 < 0' "$f" | wc -l)
    [ "$lost" = 0 ] || fail "$(basename "$f"): $lost probe page view(s) not seen in a store within $PROBE_TIMEOUT ms"
done
"$OMNICTL" --store "$B/store-n1" export > "$B/data/export-n1"
"$OMNICTL" --store "$B/store-n2" export > "$B/data/export-n2"
EXPORT_LINES=$(wc -l < "$B/data/export-n1")
if cmp -s "$B/data/export-n1" "$B/data/export-n2"; then
    EXPORTS="equal ($EXPORT_LINES profiles, $(wc -c < "$B/data/export-n1") bytes)"
else
    ndiff=$(diff "$B/data/export-n1" "$B/data/export-n2" | grep -c '^<' || true)
    EXPORTS="DIFFERENT: $ndiff of $EXPORT_LINES profiles differ"
    fail "the nodes' stores are not equal after the load: $ndiff of $EXPORT_LINES profiles differ (omnictl export: $B/data/export-n1, export-n2)"
fi
STREAM_INFO=$("$NATSPING" --urls "$URLS" stream-info "$STREAM" 2>&1 || true)
echo "$STREAM_INFO" > "$B/data/stream-info.txt"
N1_STAT=$("$OMNICTL" --store "$B/store-n1" stat)
N2_STAT=$("$OMNICTL" --store "$B/store-n2" stat)

for name in n1 n2 single; do stop_nginx "$name"; done
WRITER_LINES=
for name in single n1 n2; do
    elog=$B/logs/$name.error.log
    read -r committed dropped failed < <(perl -ne '
        if (/writer exit: (\d+) committed, (\d+) dropped, (\d+) failed/) { $c += $1; $d += $2; $f += $3 }
        END { printf "%d %d %d\n", $c, $d, $f }' "$elog")
    errs=$(grep -cE '\[error\]' "$elog" || true)
    crit=$(grep -cE '\[(crit|alert|emerg)\]' "$elog" || true)
    WRITER_LINES="$WRITER_LINES
| $name | $committed | $dropped | $failed | $errs | $crit |"
    [ "$dropped" = 0 ] && [ "$failed" = 0 ] || fail "$name: the writer dropped $dropped and failed $failed touch(es)"
    [ "$crit" = 0 ] || fail "$name: $crit [crit]/[alert]/[emerg] line(s) in $elog"
    [ "$errs" = 0 ] || grep -E '\[error\]' "$elog" | sed 's/^/  /' | head -5 >&2
done
for i in 1 2 3; do cp "$NATS_DIR/n$i.log" "$B/logs/nats-n$i.log" 2>/dev/null || true; done

# ---------------------------------------------------------------- report

T1=$(date +%s)
perl - "$RUNS_TSV" "$EV_TSV" "$B/raw" > "$B/data/report.md" <<'PERL' || die "the report failed"
use strict;
use warnings;
my ($runs, $evs, $raw) = @ARGV;
sub med { my @v = sort { $a <=> $b } grep { defined && $_ ne '-' } @_; return undef unless @v;
          return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2 }
sub pct { my ($p, @v) = @_; @v = sort { $a <=> $b } @v; return undef unless @v;
          my $i = int($p / 100 * @v + 0.999999) - 1; $i = 0 if $i < 0; $i = $#v if $i > $#v; return $v[$i] }
sub ms { defined $_[0] ? sprintf('%.1f', $_[0] / 1000) : '-' }
sub c { my $n = shift; return '-' unless defined $n; $n = sprintf('%.0f', $n) if $n =~ /\./; 1 while $n =~ s/^(\d+)(\d{3})/$1,$2/; $n }
sub tsv { my $f = shift; open(my $fh, '<', $f) or die "$f: $!"; my $h = <$fh>; chomp $h; my @h = split /\t/, $h;
          my @r; while (<$fh>) { chomp; my %x; @x{@h} = split /\t/; push @r, \%x } return @r }

my @runs = grep { $_->{phase} eq 'pages' } tsv($runs);
my %by; push @{ $by{$_->{arm}} }, $_ for @runs;
my @rounds = sort { $a <=> $b } keys %{{ map { $_->{round} => 1 } @runs }};

# the probes of each round: node 2 (col 2), node 1 (col 3)
my (%p2, %p1, %lost, @all2, @all1);
for my $r (@rounds, 'idle') {
    my $f = $r eq 'idle' ? "$raw/probe-idle.tsv" : "$raw/probe-r$r.tsv";
    open(my $fh, '<', $f) or next;
    while (<$fh>) {
        chomp; my @c = split /\t/;
        if ($c[2] < 0 || $c[3] < 0) { $lost{$r}++; next }
        push @{ $p2{$r} }, $c[2]; push @{ $p1{$r} }, $c[3];
        next if $r eq 'idle';
        push @all2, $c[2]; push @all1, $c[3];
    }
}

print "### Pages: B (single host) and Bcl (node 1 of the cluster), per round\n\n";
print "| round | B req/s | Bcl req/s | Bcl ÷ B | B p99 µs | Bcl p99 µs | B worker µs/req (event loop) | Bcl worker µs/req (event loop) | NATS + node 2 CPU | other CPU (B / Bcl) | Bcl messages in the stream | settle s | probes | propagation p50 / p99 / max ms |\n";
print "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
my (@ratio, @p99r, @p50r, @cpur, @pratio, @pcpur);
for my $r (@rounds) {
    my ($b) = grep { $_->{round} == $r } @{ $by{B} };
    my ($c) = grep { $_->{round} == $r } @{ $by{Bcl} };
    my ($cp) = grep { $_->{round} == $r } @{ $by{Bclp} // [] };
    next unless $b && $c;
    my $ratio = $c->{rps} / $b->{rps};
    push @ratio, $ratio;
    if ($cp) {
        push @pratio, $cp->{rps} / $b->{rps};
        push @pcpur, $b->{worker_cpu_us_req} / $cp->{worker_cpu_us_req};
    }
    push @cpur, $b->{worker_cpu_us_req} / $c->{worker_cpu_us_req};
    my @v = @{ $p2{$r} // [] };
    my ($p50, $p99, $max) = (pct(50, @v), pct(99, @v), pct(100, @v));
    push @p99r, $p99 if defined $p99;
    push @p50r, $p50 if defined $p50;
    printf "| %d | %s | %s | %.1f%% | %s | %s | %.1f (%.1f) | %.1f (%.1f) | %s%% | %s%% / %s%% | %s | %s | %d%s | %s / %s / %s |\n",
        $r, c($b->{rps}), c($c->{rps}), 100 * $ratio, c($b->{p99_us}), c($c->{p99_us}),
        $b->{worker_cpu_us_req}, $b->{loop_cpu_us_req}, $c->{worker_cpu_us_req}, $c->{loop_cpu_us_req}, $c->{cluster_cpu_pct},
        $b->{other_cpu_pct}, $c->{other_cpu_pct}, c($c->{touches}), $c->{settle_s},
        scalar(@v), ($lost{$r} ? " ($lost{$r} lost)" : ''), ms($p50), ms($p99), ms($max);
}
my $mb = med(map { $_->{rps} } @{ $by{B} });
my $mc = med(map { $_->{rps} } @{ $by{Bcl} });
my $mr = med(@ratio);
printf "| **median** | **%s** | **%s** | **%.1f%%** | %s | %s | %.1f (%.1f) | %.1f (%.1f) | %s%% | | | %s | | | %s / **%s** / |\n\n",
    c($mb), c($mc), 100 * $mr, c(med(map { $_->{p99_us} } @{ $by{B} })), c(med(map { $_->{p99_us} } @{ $by{Bcl} })),
    med(map { $_->{worker_cpu_us_req} } @{ $by{B} }), med(map { $_->{loop_cpu_us_req} } @{ $by{B} }),
    med(map { $_->{worker_cpu_us_req} } @{ $by{Bcl} }), med(map { $_->{loop_cpu_us_req} } @{ $by{Bcl} }),
    med(map { $_->{cluster_cpu_pct} } @{ $by{Bcl} }), med(map { $_->{settle_s} } @{ $by{Bcl} }),
    ms(med(@p50r)), ms(med(@p99r));

if (@pratio) {
    print "### Pages: Bclp, node 1 with NATS and node 2 on wrk's CPU (CPU 1)\n\n";
    print "Node 1's worker has CPU 0 to itself, as B's has: what the cluster costs node 1 itself, as on a site whose NATS servers and other nodes run on machines of their own.\n\n";
    print "| round | B req/s | Bclp req/s | Bclp ÷ B | Bclp p99 µs | Bclp worker µs/req (event loop) | NATS + node 2 CPU | wrk CPU | Bclp messages in the stream |\n";
    print "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for my $r (@rounds) {
        my ($b) = grep { $_->{round} == $r } @{ $by{B} };
        my ($cp) = grep { $_->{round} == $r } @{ $by{Bclp} };
        next unless $b && $cp;
        printf "| %d | %s | %s | %.1f%% | %s | %.1f (%.1f) | %s%% | %s%% | %s |\n",
            $r, c($b->{rps}), c($cp->{rps}), 100 * $cp->{rps} / $b->{rps}, c($cp->{p99_us}),
            $cp->{worker_cpu_us_req}, $cp->{loop_cpu_us_req}, $cp->{cluster_cpu_pct}, $cp->{wrk_cpu_pct},
            c($cp->{touches});
    }
    printf "| **median** | **%s** | **%s** | **%.1f%%** | %s | %.1f (%.1f) | %s%% | %s%% | |\n\n",
        c($mb), c(med(map { $_->{rps} } @{ $by{Bclp} })), 100 * med(@pratio),
        c(med(map { $_->{p99_us} } @{ $by{Bclp} })),
        med(map { $_->{worker_cpu_us_req} } @{ $by{Bclp} }), med(map { $_->{loop_cpu_us_req} } @{ $by{Bclp} }),
        med(map { $_->{cluster_cpu_pct} } @{ $by{Bclp} }), med(map { $_->{wrk_cpu_pct} } @{ $by{Bclp} });
}

print "### Propagation: a page view on node 1 until its touchpoint is in a store\n\n";
print "Milliseconds from just before the probe's request was written; one page view every few tens of ms, one at a time.\n\n";
print "| when | page views | not seen | node 2: p50 | p90 | p99 | max | node 1 (its own store): p50 | p99 | max |\n";
print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
for my $row (['idle cluster', 'idle'], ['under Bcl\'s load, all rounds', 'all']) {
    my ($label, $k) = @$row;
    my @v2 = $k eq 'all' ? @all2 : @{ $p2{idle} // [] };
    my @v1 = $k eq 'all' ? @all1 : @{ $p1{idle} // [] };
    my $lost = $k eq 'all' ? 0 : ($lost{idle} // 0);
    if ($k eq 'all') { $lost += $lost{$_} // 0 for @rounds }
    printf "| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s |\n", $label, scalar(@v2) + $lost, $lost,
        ms(pct(50, @v2)), ms(pct(90, @v2)), ms(pct(99, @v2)), ms(pct(100, @v2)),
        ms(pct(50, @v1)), ms(pct(99, @v1)), ms(pct(100, @v1));
}
print "\n";

my @ev = tsv($evs);
my %eb; push @{ $eb{$_->{arm}} }, $_ for @ev;
print "### Durable events: omni_events, 1 connection\n\n";
print "| arm | rounds | events/s | p50 ms | p90 ms | p99 ms | max ms | answered 200 accepted | not 200 | missing from the store(s) |\n";
print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
my %evp99;
for my $arm (qw(evB evBcl)) {
    my @x = @{ $eb{$arm} // [] } or next;
    my $miss = 0; for my $e (@x) { for my $k (qw(missing_n1 missing_n2 missing_single)) { $miss += $e->{$k} if $e->{$k} ne '-' } }
    my $acc = 0; $acc += $_->{accepted} for @x;
    my $n200 = 0; $n200 += $_->{non200} for @x;
    $evp99{$arm} = med(map { $_->{p99_us} } @x);
    printf "| %s | %d | %s | %s | %s | **%s** | %s | %s | %s | %s |\n",
        $arm eq 'evB' ? 'single host (B)' : 'cluster, node 1, R3 (Bcl)', scalar(@x),
        c(sprintf '%.0f', med(map { $_->{events_s} } @x)), ms(med(map { $_->{p50_us} } @x)),
        ms(med(map { $_->{p90_us} } @x)), ms($evp99{$arm}), ms(med(map { $_->{max_us} } @x)),
        c($acc), $n200, $miss;
}
print "\n";

# the targets
my $prop = med(@p99r);
print "### Against the targets (issue 13)\n\n";
print "| target | measured | status |\n|---|---|---|\n";
printf "| propagation p99, node 1's touch to node 2's store, under B's load: ≤ 1 s | %s ms (median of the rounds' p99; all probes pooled: %s ms) | %s |\n",
    ms($prop), ms(pct(99, @all2)), defined $prop && $prop <= 1e6 ? 'met' : 'NOT met';
printf "| … aim: ≤ 100 ms | %s ms | %s |\n", ms($prop), defined $prop && $prop <= 1e5 ? 'met' : 'NOT met';
printf "| B's requests/s with the cluster on: ≥ 90%% of B without | %.1f%% (Bcl %s ÷ B %s req/s, median of the rounds' ratios; from the worker's CPU per request: %.1f%%) | %s |\n",
    100 * $mr, c($mc), c($mb), 100 * med(@cpur), $mr >= 0.9 ? 'met' : 'NOT met';
printf "| … with NATS and node 2 off node 1's CPU (Bclp) | %.1f%% (median of the rounds' ratios; from the worker's CPU per request: %.1f%%) | %s |\n",
    100 * med(@pratio), 100 * med(@pcpur), med(@pratio) >= 0.9 ? 'met' : 'NOT met' if @pratio;
printf "| durable event p99 with R3, next to the single host | %s ms (single host: %s ms), 1 connection | reported |\n",
    ms($evp99{evBcl}), ms($evp99{evB});
print "\n";
# machine-readable summary for the shell
open(my $s, '>', "$raw/../data/summary.txt") or die;
printf $s "ratio=%.3f pinned_ratio=%.3f prop_p99_ms=%s ev_cl_p99_ms=%s ev_single_p99_ms=%s\n", $mr, (@pratio ? med(@pratio) : 0), ms($prop), ms($evp99{evBcl}), ms($evp99{evB});
PERL

{
    echo "# ngx_omni_module cluster bench (issue 13)"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && [ -n "$(git status --porcelain -uno 2>/dev/null)" ] && echo ' (with uncommitted changes)')"
    echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), kernel $(uname -r)"
    echo "- module: sha256 $MODULE_SUM… (snapshot in build/cluster-bench/bin); $("$NGINX" -v 2>&1); $(nats-server --version 2>&1); $({ wrk --version 2>&1 || true; } | head -1 | awk '{print $1, $2}')"
    echo "- NATS: 3 nats-server (JetStream, file storage, one NATS cluster on loopback, t/lib/OmniNats.pm), stream $STREAM replicas 3; nodes: \`omni_cluster URLS node=web-N stream=$STREAM replicas=3${CLUSTER_OPTS:+ $CLUSTER_OPTS}\`"
    echo "- B: the single host, 1 worker on CPU 0; Bcl: node 1, 1 worker on CPU 0; node 2 (1 worker) and the NATS servers not pinned; Bclp: as Bcl, with node 2 and the NATS servers on CPU 1; wrk -t1 -c$CONNS on CPU 1 (bench/wrk.lua); arm B of bench/run.sh: 10 KB page, $RULES rules, omni_geoip ($GEO_NETS networks), $PROFILES profiles, $COOKIES cookies outside the holdout"
    echo "- $RUNS interleaved round(s) of $DUR s per arm after $WARM s of warm-up per arm; probe every $PROBE_INTERVAL ms, stores read every $PROBE_POLL ms; events: $EV_RUNS round(s) of $EV_DUR s per arm at $EV_CONNS connection(s); QUICK=$QUICK; ${QUIET_WAITED} s waiting for an idle machine; total $((T1 - T0)) s"
    echo
    cat "$B/data/report.md"
    echo "### Correctness"
    echo
    echo "- the nodes' stores after the load (omnictl export): $EXPORTS"
    echo "- stream: $(echo "$STREAM_INFO" | grep -E '^(messages|bytes|last_seq|leader|peers)=' | tr '\n' ' ')"
    echo "- node 1: stream_seq $(echo "$N1_STAT" | perl -ne 'print $1 if /"stream_seq":\s*(\d+)/'), touchpoints $(echo "$N1_STAT" | perl -ne 'print $1 if /"touchpoints":\s*(\d+)/'); node 2: stream_seq $(echo "$N2_STAT" | perl -ne 'print $1 if /"stream_seq":\s*(\d+)/'), touchpoints $(echo "$N2_STAT" | perl -ne 'print $1 if /"touchpoints":\s*(\d+)/')"
    echo
    echo "| nginx | writer committed | dropped | failed | [error] lines | [crit]/[alert]/[emerg] lines |"
    echo "|---|---:|---:|---:|---:|---:|$WRITER_LINES"
    echo
    if [ -n "$FAIL" ]; then echo "**Correctness checks failed:**$FAIL"; else echo "Every correctness check passed."; fi
} > "$B/results.md"

cat "$B/results.md"
log "results: $B/results.md ($((T1 - T0)) s)"
[ -z "$FAIL" ] || die "correctness checks failed:$FAIL"
