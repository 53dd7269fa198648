#!/bin/bash
# Instructions per request of the request path, by part, under callgrind:
# robust where wall-clock numbers are not (a shared machine).
#
#   bench/callgrind.sh                 # arms A and B, 1k profiles
#   N=4000 ARMS="A F B" bench/callgrind.sh
#   ARMS="A N" bench/callgrind.sh      # N: a new visitor (no cookie)
#   ARMS="A E" bench/callgrind.sh      # E: a browser's event, POSTed
#
# One nginx (the module snapshot, master_process off, one process) runs
# under valgrind --tool=callgrind --separate-threads=yes with the bench's
# configuration of arms A (static page, omni off), F (omni on, omni_inject
# off) and B (the full path): the same 10 KB page, the same 100 rules,
# generated GeoIP2 database and store (bench/gen-*.pl), the same request
# headers as bench/wrk.lua (a signed cookie, a browser User-Agent,
# X-Forwarded-For).  Per arm: N requests on one keep-alive connection
# (curl) as a warm-up, the counters zeroed, the same N requests measured,
# then a dump.  The report: instructions per request of the event-loop
# thread, and of the writer's pool thread(s), and the inclusive cost of the
# module's parts (identity, store read, decision, ...) per request.
#
# Variables: N (2000), PROFILES (1000), COOKIES (1000), RULES (100),
# GEO_NETS (4096), ARMS ("A B"), PORT (18580), OUT (build/callgrind),
# NGINX, MODULE, OMNICTL.

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
OUT=${OUT:-$ROOT/build/callgrind}
# NGINX (bench/lib.sh)
. "$BENCH/lib.sh"
MODULE=${MODULE:-$ROOT/build/ngx_http_omni_module.so}
OMNICTL=${OMNICTL:-$ROOT/build/omnictl}
N=${N:-2000}
PROFILES=${PROFILES:-1000}
COOKIES=${COOKIES:-1000}
RULES=${RULES:-100}
GEO_NETS=${GEO_NETS:-4096}
ARMS=${ARMS:-A B}
PORT=${PORT:-18580}
HOST=127.0.0.1
UA="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"

die() { echo "callgrind: FAIL: $*" >&2; exit 1; }
log() { echo "callgrind: $*" >&2; }

command -v valgrind > /dev/null || die "valgrind is not installed"
command -v callgrind_annotate > /dev/null || die "callgrind_annotate missing"

rm -rf "$OUT"
mkdir -p "$OUT"/{bin,conf,logs,tmp,rules,html/a,html/f,html/b,data,cg}

# A snapshot: build/ is shared, and a rebuild would change the .so under a
# running nginx.
cp "$MODULE" "$OUT/bin/ngx_http_omni_module.so"
cp "$OMNICTL" "$OUT/bin/omnictl"
MODULE=$OUT/bin/ngx_http_omni_module.so
OMNICTL=$OUT/bin/omnictl

perl "$BENCH/gen-page.pl" 10240 > "$OUT/html/page.html"
for d in a f b; do cp "$OUT/html/page.html" "$OUT/html/$d/page.html"; done

cp "$ROOT"/rules/*.json "$OUT/rules/"
rules_count() {
    "$OMNICTL" rules check "$1" --json | perl -ne 'print $1 if /"rules":(\d+)/'
}
seed=$(rules_count "$OUT/rules")
perl "$BENCH/gen-rules.pl" "$OUT/rules" $((RULES - seed)) \
    || die "bench/gen-rules.pl failed"
[ "$(rules_count "$OUT/rules")" = "$RULES" ] || die "expected $RULES rules"

HOLDOUT=$(perl -MJSON::PP -e '
    for my $f (@ARGV) {
        open(my $fh, "<", $f) or next;
        my $d = eval { decode_json(do { local $/; <$fh> }) } or next;
        my $h = ref $d eq "HASH" && $d->{settings} && $d->{settings}{holdout} or next;
        print "$h->{id}:$h->{percent}";
    }' "$OUT"/rules/*.json)

IPS=$OUT/data/ips.txt
perl "$BENCH/gen-geo.pl" "$OUT/geo.mmdb" "$IPS" "$GEO_NETS" > /dev/null \
    || die "bench/gen-geo.pl failed"

perl -MMIME::Base64 -e 'open(my $r, "<", "/dev/urandom") or die; read($r, my $b, 36); print encode_base64($b, ""), "\n"' > "$OUT/secret"
SECRET=$(cat "$OUT/secret")

STORE=$OUT/store
perl "$BENCH/gen-profiles.pl" "$PROFILES" > "$OUT/data/profiles.ndjson"
"$OMNICTL" --store "$STORE" --map-size 2g stat --create > /dev/null
"$OMNICTL" --store "$STORE" --map-size 2g import "$OUT/data/profiles.ndjson" \
    > "$OUT/logs/import.log" 2>&1 || die "import failed"
perl "$BENCH/mint-cookies.pl" ${HOLDOUT:+--outside=$HOLDOUT} "$OUT/secret" \
    "$PROFILES" "$COOKIES" 16 > "$OUT/data/cookies.txt"

USER_LINE=
[ "$(id -u)" = 0 ] && USER_LINE="user root;"

cat > "$OUT/conf/nginx.conf" <<EOF
load_module $MODULE;
$USER_LINE
daemon off;
master_process off;
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log info;
events { worker_connections 64; }
http {
    types { text/html html; }
    default_type application/octet-stream;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    open_file_cache max=64 inactive=60s;
    open_file_cache_valid 60s;
    open_file_cache_min_uses 1;

    omni_secret "$SECRET";
    omni_store $STORE map_size=2g;
    omni_rules $OUT/rules;
    omni_geoip $OUT/geo.mmdb;
    set_real_ip_from $HOST;
    real_ip_header X-Forwarded-For;

    server {
        listen $HOST:$PORT;
        root $OUT/html;
        location /a/ { }
    }
    server {
        listen $HOST:$((PORT + 1));
        root $OUT/html;
        omni on;
        location /f/ { omni_inject off; }
        location /b/ { }
        location = /omni/events { omni_events; }
    }
}
EOF

arm_url() {
    case $1 in
        A) echo "http://$HOST:$PORT/a/page.html" ;;
        F) echo "http://$HOST:$((PORT + 1))/f/page.html" ;;
        B) echo "http://$HOST:$((PORT + 1))/b/page.html" ;;
        N) echo "http://$HOST:$((PORT + 1))/f/page.html" ;;
        E) echo "http://$HOST:$((PORT + 1))/omni/events" ;;
        *) die "unknown arm $1" ;;
    esac
}

# One curl configuration per arm: N requests on one connection, the i-th
# with the i-th cookie and address (cycling), as bench/wrk.lua pairs them;
# arm N (the F location without a cookie: a new visitor every request)
# sends no cookie.
for arm in $ARMS; do
    EVENT=$([ "$arm" = E ] && echo 1 || true) \
    NO_COOKIE=$([ "$arm" = N ] && echo 1 || true) perl -e '
        my ($url, $ua, $n, $cf, $ipf) = @ARGV;
        open(my $c, "<", $cf) or die; my @c = map { (split)[1] } <$c>;
        open(my $i, "<", $ipf) or die; chomp(my @ip = <$i>);
        for my $k (0 .. $n - 1) {
            print "next\n" if $k;
            print "url = \"$url\"\noutput = \"/dev/null\"\n";
            print "write-out = \"%{http_code} %{size_download}\\n\"\n";
            print "header = \"Cookie: omni=$c[$k % @c]\"\n"
                unless $ENV{NO_COOKIE};
            print "header = \"X-Forwarded-For: $ip[$k % @ip]\"\n";
            # arm E: a browser\x27s "Product Added", as bench/events.lua
            # sends it, without a messageId (the module makes one up: the
            # warm-up sends the same requests as the measured run)
            print "header = \"Content-Type: application/json\"\n",
                  "data = \"{\\\"type\\\":\\\"track\\\",",
                  "\\\"event\\\":\\\"Product Added\\\",",
                  "\\\"properties\\\":{\\\"sku\\\":\\\"TRAIL-42\\\",",
                  "\\\"name\\\":\\\"Trail 42 running shoe\\\",",
                  "\\\"category\\\":\\\"shoes\\\",",
                  "\\\"price\\\":119.0,\\\"quantity\\\":1}}\"\n"
                if $ENV{EVENT};
            print "user-agent = \"$ua\"\n";
        }' "$(arm_url "$arm")" "$UA" "$N" "$OUT/data/cookies.txt" "$IPS" \
        > "$OUT/data/curl-$arm.cfg"
done

cd "$OUT"
"$NGINX" -t -q -p "$OUT/" -c conf/nginx.conf || die "nginx -t failed"
valgrind --tool=callgrind --separate-threads=yes --dump-instr=no \
    --callgrind-out-file="$OUT/cg/callgrind.out.%p" \
    "$NGINX" -p "$OUT/" -c conf/nginx.conf > "$OUT/logs/valgrind.log" 2>&1 &
VG=$!
cleanup() {
    if kill -0 "$VG" 2>/dev/null; then
        kill -QUIT "$VG" 2>/dev/null || true
        wait "$VG" 2>/dev/null || true
    fi
}
trap cleanup EXIT

for _ in $(seq 300); do
    curl -s -o /dev/null "http://$HOST:$PORT/a/page.html" && break
    sleep 0.2
done
curl -s -o /dev/null "http://$HOST:$PORT/a/page.html" || die "nginx did not start"

# The writer's queue drained: the feed's sequence still for 2 s.
settle() {
    local a b
    a=$("$OMNICTL" --store "$STORE" stat 2>/dev/null | md5sum)
    for _ in $(seq 60); do
        sleep 2
        b=$("$OMNICTL" --store "$STORE" stat 2>/dev/null | md5sum)
        [ "$a" = "$b" ] && return 0
        a=$b
    done
}

for arm in $ARMS; do
    log "arm $arm: warm-up, $N requests"
    curl -s -K "$OUT/data/curl-$arm.cfg" > /dev/null \
        || die "curl failed (arm $arm)"
    settle
    callgrind_control -z "$VG" > /dev/null
    log "arm $arm: measuring $N requests"
    curl -s -K "$OUT/data/curl-$arm.cfg" > "$OUT/logs/sizes-$arm.txt" \
        || die "curl failed (arm $arm)"
    settle
    callgrind_control -d "arm-$arm" "$VG" > /dev/null
    sleep 1
done

kill -QUIT "$VG"
wait "$VG" || true
trap - EXIT

# Every response 200, and the sizes: arm B must have something injected.
for arm in $ARMS; do
    bad=$(awk '$1 != 200' "$OUT/logs/sizes-$arm.txt" | wc -l)
    [ "$bad" = 0 ] || die "arm $arm: $bad responses were not 200"
    log "arm $arm: response bytes $(awk '{ s += $2 } END { printf "%.0f", s / NR }' "$OUT/logs/sizes-$arm.txt") on average"
done

# The report: per arm and thread, Ir / N, and the module's parts.
perl "$BENCH/callgrind-report.pl" "$N" "$OUT/cg" $ARMS | tee "$OUT/report.md"
