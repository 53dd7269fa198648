#!/usr/bin/env bash
#
# ngx_omni_module benchmark: the module's request path against plain nginx,
# same binary, same 10 KB page, same store, wrk on loopback (GUIDE section 3).
# See docs/performance.md.
#
#   make bench                     # or ./bench/run.sh
#   QUICK=1 ./bench/run.sh         # smoke run: 1 run of 2 s per arm, 1k store
#   SIZES="1k 1M 10M" ./bench/run.sh
#
# Arms: A (static page, omni off), A' (A + one sub_filter), F (foundation:
# cookie verified, profile hit, touch recorded; omni_inject off), B (the
# GUIDE's full path: F + RULES rules, a geo lookup, a banner and pixels
# injected), "off" (omni off in a location), "new" (no cookie, on F's
# location).  Every arm gets the same requests: a signed cookie, a browser
# User-Agent and an X-Forwarded-For address (realip) from the bench's
# MaxMind DB.
#
# Issue 10 parts 4 and 5: C (the OpenResty peer, bench/lua/omnic*.lua, on
# Debian's libnginx-mod-http-lua: the same work as B in Lua, on its own
# copy of the store), and two more deployments, each with its own plain
# baseline: the page from proxy_cache (Ac: a plain cache hit, A'c: Ac + one
# sub_filter, Bc: the module on the cache hit) and the page proxied from a
# local upstream without a cache (Ap: plain proxy, Bp: the module on it).
# The upstream is a server of the same nginx (same worker) serving the
# page from disk.  Before measuring, B's and C's responses for COMPARE
# sampled visitors must be byte-identical (compare_bc below).
#
# Environment:
#   ARMS="A A' F B off new C Ac A'c Bc Ap Bp"   the arms to run (A is
#                 required: every ratio is against a baseline); "off" and
#                 "new" run on the smallest store only, the 2-worker
#                 configuration runs those of A A' F B that are selected
#   COMPARE=50    visitors whose B and C responses must be identical
#   DUR=5         seconds per measured run            (QUICK: 2)
#   RUNS=5        interleaved rounds                  (QUICK: 1)
#   WARM=2        seconds of warm-up per arm          (QUICK: 1)
#   SIZES="1k 1M" store sizes (k/M suffixes), 1 worker each; the smallest
#                 also gets the "module off in location" and "new visitor"
#                 arms                                 (QUICK: 1k)
#   EXTRA_SIZES=  sizes appended to SIZES, e.g. EXTRA_SIZES=10M
#   W2=1          also run 2 workers (arms A, A', F, B) on the W2_SIZE store
#   W2_SIZE=      store for the 2-worker run (default: the largest size)
#   CONNS=32      wrk connections (one wrk thread)
#   COOKIES=10000 distinct signed cookies per store, random profile ids
#                 outside the rules' global holdout
#   RULES=100     rules for arm B: the seed rules of rules/ plus generated ones
#                 (bench/gen-rules.pl)
#   GEO_NETS=4096 /24 networks in the bench's MaxMind DB (bench/gen-geo.pl)
#   INJECT_MIN=300  bytes per response arm B must average above arm A
#   MAP_SIZE=     omni_store map_size (default 2g, 8g from 5M profiles up)
#   PORT_BASE=18480  loopback ports: PORT_BASE (omni off: A, A', C and the
#                 proxy baselines), +1 (omni on), +2 (the upstream of the
#                 proxied arms)
#   QUEUE=        omni_store queue= (the shared touch queue; module default)
#   NGINX=/usr/sbin/nginx
#   MODULE=, OMNICTL=  the module and omnictl to snapshot (default: build/)
#   NOISE_MAX=15  a run during which other processes used more than this %
#                 of one CPU is repeated once ...
#   RETRY_BUDGET=3  ... at most this many times per bench
#   QUIET_BUDGET=15 seconds, in all, of waiting for an idle machine before runs
#
# Touchpoints and events (GUIDE P7):
#   EVENTS=1      the events arm: wrk POSTs a client "Product Added" event per
#                 request (bench/events.lua) to an omni_events location, 1
#                 worker, at each of EVENTS_CONNS connections; every event
#                 answered 200 must then be in the store's feed
#   EVENTS_CONNS="1 8 32 128"
#   EVENTS_SIZE=  the store for the events arm (default: the largest size)
#   FSYNC_COUNT=500  fdatasync() latency samples on the store's filesystem
#   WRITER=1      the writer outside nginx: bench/writer.sh (WRITER_* there)
# For arms F, B and "new", every measured run also counts the touchpoints
# the writer committed during it (the feed's last seq before and after).
#
# Output: a markdown table on stdout and in build/bench/results.md; every
# run's raw numbers in build/bench/runs.tsv (events: events.tsv), wrk output
# in build/bench/raw/.  Only ever talks to 127.0.0.1.

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
B=$ROOT/build/bench
MODULE=${MODULE:-$ROOT/build/ngx_http_omni_module.so}
OMNICTL=${OMNICTL:-$ROOT/build/omnictl}

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    DUR=${DUR:-2}; RUNS=${RUNS:-1}; WARM=${WARM:-1}; SIZES=${SIZES:-1k}
else
    DUR=${DUR:-5}; RUNS=${RUNS:-5}; WARM=${WARM:-2}; SIZES=${SIZES:-1k 1M}
fi
SIZES="$SIZES ${EXTRA_SIZES:-}"
W2=${W2:-1}
CONNS=${CONNS:-32}
COOKIES=${COOKIES:-10000}
RULES=${RULES:-100}
GEO_NETS=${GEO_NETS:-4096}
EVENTS=${EVENTS:-1}
EVENTS_CONNS=${EVENTS_CONNS:-1 8 32 128}
FSYNC_COUNT=${FSYNC_COUNT:-500}
WRITER=${WRITER:-1}
PORT_A=${PORT_BASE:-18480}
PORT_B=$((PORT_A + 1))
PORT_U=$((PORT_A + 2))
ALL_ARMS="A A' F B off new C Ac A'c Bc Ap Bp"
ARMS=${ARMS:-$ALL_ARMS}
COMPARE=${COMPARE:-50}
HOST=127.0.0.1
NGINX_CPU=0
WRK_CPU=1
CLK_TCK=$(getconf CLK_TCK)
T0=$(date +%s)

die() { echo "bench: FAIL: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }
. "$(dirname "$0")/lib.sh"

# ---------------------------------------------------------------- preflight

# The arms: known names only, A always.
for a in $ARMS; do
    case " $ALL_ARMS " in
        *" $a "*) ;;
        *) die "ARMS: unknown arm \"$a\" (known: $ALL_ARMS)" ;;
    esac
done
has_arm() { case " $ARMS " in *" $1 "*) return 0 ;; esac; return 1; }
has_arm A || die "ARMS=\"$ARMS\": arm A is required (every ratio is against it)"
# The arms of a configuration: those of $1 that ARMS selects, in order.
pick_arms() {
    local a out=
    for a in $1; do has_arm "$a" && out="$out $a"; done
    echo "${out# }"
}
[[ "$COMPARE" =~ ^[0-9]+$ ]] || die "COMPARE=\"$COMPARE\": a number of visitors"

# Arm C runs on Debian's lua-nginx-module and lua-resty-core, which only
# the bench needs (not the tests): installed here, with apt, when missing.
LUA_MOD=/usr/lib/nginx/modules/ngx_http_lua_module.so
NDK_MOD=/usr/lib/nginx/modules/ndk_http_module.so
LUA_PKGS="libnginx-mod-http-lua libnginx-mod-http-ndk lua-resty-core lua-resty-lrucache"
if has_arm C; then
    if [ ! -f "$LUA_MOD" ] || [ ! -f "$NDK_MOD" ] \
       || [ ! -f /usr/share/lua/5.1/resty/core.lua ] \
       || [ ! -f /usr/share/lua/5.1/resty/lrucache.lua ]; then
        log "arm C needs $LUA_PKGS (bench only): installing them with apt-get"
        [ "$(id -u)" = 0 ] || die "arm C: $LUA_PKGS missing; install them as root (apt-get install $LUA_PKGS) or leave C out of ARMS"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $LUA_PKGS >&2 \
            || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive \
                 apt-get install -y -qq --no-install-recommends $LUA_PKGS >&2; } \
            || die "arm C: apt-get install $LUA_PKGS failed"
        [ -f "$LUA_MOD" ] || die "arm C: $LUA_MOD missing after installing libnginx-mod-http-lua"
    fi
    libs=$(ldconfig -p)
    for l in libcrypto.so.3 liblmdb.so.0 libmaxminddb.so.0; do
        [[ "$libs" == *"$l"* ]] || die "arm C: $l not found (libssl3, liblmdb0, libmaxminddb0)"
    done
fi

for tool in "$NGINX" wrk taskset curl perl mmdblookup; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh)"
done
perl -MMaxMind::DB::Writer::Tree -e1 2>/dev/null \
    || die "MaxMind::DB::Writer missing (libmaxmind-db-writer-perl, scripts/install-deps.sh)"
perl "$BENCH/mint-cookies.pl" --selftest > /dev/null \
    || die "bench/mint-cookies.pl: the holdout bucket (SipHash-2-4) fails its test vectors"
[ -f "$MODULE" ] || die "$MODULE missing: make module"
[ -x "$OMNICTL" ] || die "$OMNICTL missing: make omnictl"
# The writer bench and the fsync probe of the events arm
# (bench/writer-bench.c), built like the unit tests and linked against the
# core library as it is built (never rebuilt here, always relinked: -W);
# only when WRITER=1 or EVENTS=1 need it.
if [ "$WRITER" = 1 ] || [ "$EVENTS" = 1 ]; then
    [ -f "$ROOT/build/libomnicore.a" ] || die "build/libomnicore.a missing: make"
    make -s -C "$ROOT" -o "$ROOT/build/libomnicore.a" -W bench/writer-bench.c \
        "$ROOT/build/writer-bench" >&2 \
        || die "cannot build build/writer-bench (make writer-bench)"
fi
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (nginx on CPU $NGINX_CPU, wrk on CPU $WRK_CPU)"
{ wrk --version 2>&1 || true; } | grep -q "^wrk" || die "wrk does not run"

# Sizes: "1k" -> 1000, "1M" -> 1000000; sorted, deduplicated.
size_n() {
    local s=$1
    case $s in
        *k|*K) echo $(( ${s%?} * 1000 )) ;;
        *m|*M) echo $(( ${s%?} * 1000000 )) ;;
        *[!0-9]*|'') die "bad size \"$s\"" ;;
        *) echo "$s" ;;
    esac
}
SIZE_LIST=$(for s in $SIZES; do echo "$(size_n "$s") $s"; done | sort -n -u -k1,1 | awk '{print $2}')
SMALLEST=$(echo "$SIZE_LIST" | head -1)
LARGEST=$(echo "$SIZE_LIST" | tail -1)
W2_SIZE=${W2_SIZE:-$LARGEST}
EVENTS_SIZE=${EVENTS_SIZE:-$LARGEST}
echo "$SIZE_LIST" | grep -qx -- "$W2_SIZE" || SIZE_LIST="$SIZE_LIST
$W2_SIZE"
if [ "$EVENTS" = 1 ]; then
    echo "$SIZE_LIST" | grep -qx -- "$EVENTS_SIZE" || SIZE_LIST="$SIZE_LIST
$EVENTS_SIZE"
fi

ports_free $PORT_A $PORT_B $PORT_U

# Snapshot the module and omnictl (bench/lib.sh).
mkdir -p "$B/bin"
snapshot "$MODULE" "$B/bin/ngx_http_omni_module.so"
snapshot "$OMNICTL" "$B/bin/omnictl"
if [ "$WRITER" = 1 ] || [ "$EVENTS" = 1 ]; then
    snapshot "$ROOT/build/writer-bench" "$B/bin/writer-bench"
fi
MODULE=$B/bin/ngx_http_omni_module.so
OMNICTL=$B/bin/omnictl
WRITER_BENCH=$B/bin/writer-bench
MODULE_SUM=$(sha256sum "$MODULE" | cut -c1-12)

# ---------------------------------------------------------------- cleanup

MASTER=
cleanup() {
    local rc=$?
    if [ -n "$MASTER" ] && kill -0 "$MASTER" 2>/dev/null; then
        log "stopping nginx (pid $MASTER)"
        kill -QUIT "$MASTER" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$MASTER" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$MASTER" 2>/dev/null && kill -KILL "$MASTER" 2>/dev/null || true
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- workspace

rm -rf "$B/conf" "$B/logs" "$B/raw" "$B/tmp" "$B/data" "$B/rules" "$B/html" "$B/cache"
mkdir -p "$B"/{conf,logs,raw,data,tmp,rules,cache,html/a,html/s,html/f,html/b,html/o,html/c,html/u}
RUNS_TSV=$B/runs.tsv
printf 'config\tphase\tround\tarm\trps\trequests\tp50_us\tp99_us\tcpu_us_req\tcpu_main_us_req\tworker_cpu_pct\twrk_cpu_pct\tother_cpu_pct\tsteal_pct\tbytes_req\ttouchpoints\n' > "$RUNS_TSV"
# The events arm: the same first 14 columns (other_cpu_pct is the 13th).
EVENTS_TSV=$B/events.tsv
printf 'config\tphase\tround\tarm\trps\trequests\tp50_us\tp99_us\tcpu_us_req\tcpu_main_us_req\tworker_cpu_pct\twrk_cpu_pct\tother_cpu_pct\tsteal_pct\tconns\tp90_us\tmax_us\taccepted\tstored\tmissing\n' > "$EVENTS_TSV"

# The page: identical bytes behind every arm's location, with the slot
# markers of the rules (topbar, hero, aside, footer) and one </body>.
perl "$BENCH/gen-page.pl" 10240 > "$B/html/page.html"
for d in a s f b o c u; do cp "$B/html/page.html" "$B/html/$d/page.html"; done

# Arm B's rules: the seed rules, plus generated ones up to RULES.
cp "$ROOT"/rules/*.json "$B/rules/"
rules_count() {
    "$OMNICTL" rules check "$1" --json | perl -ne 'print $1 if /"rules":(\d+)/'
}
SEED_RULES=$(rules_count "$B/rules") || die "the seed rules do not compile"
[ "$RULES" -ge "$SEED_RULES" ] || die "RULES=$RULES: there are $SEED_RULES seed rules"
perl "$BENCH/gen-rules.pl" "$B/rules" $((RULES - SEED_RULES)) \
    || die "bench/gen-rules.pl failed"
"$OMNICTL" rules check "$B/rules" > "$B/logs/rules-check.log" 2>&1 \
    || { cat "$B/logs/rules-check.log" >&2; die "the bench rules do not compile"; }
[ "$(rules_count "$B/rules")" = "$RULES" ] || die "expected $RULES rules in $B/rules"
log "rules: $SEED_RULES seed + $((RULES - SEED_RULES)) generated in $B/rules"

# Arm C's rules: the same files as Lua tables (bench/gen-lua-rules.pl),
# which must count the same rules.
LUA_RULES=$B/lua-rules.lua
if has_arm C; then
    perl "$BENCH/gen-lua-rules.pl" "$B/rules" > "$LUA_RULES" 2> "$B/logs/lua-rules.log" \
        || { cat "$B/logs/lua-rules.log" >&2; die "bench/gen-lua-rules.pl cannot translate the bench rules for arm C"; }
    n=$(perl -ne 'print $1 if /(\d+) rules/' "$B/logs/lua-rules.log")
    [ "$n" = "$RULES" ] || die "arm C: gen-lua-rules.pl translated $n rules, arm B has $RULES"
    log "rules: $n translated to Lua tables for arm C ($LUA_RULES)"
fi

# The global holdout sees nothing: the cookies are for profiles outside it.
HOLDOUT=$(perl -MJSON::PP -e '
    for my $f (@ARGV) {
        open(my $fh, "<", $f) or next;
        my $d = eval { decode_json(do { local $/; <$fh> }) } or next;
        my $h = ref $d eq "HASH" && $d->{settings} && $d->{settings}{holdout} or next;
        print "$h->{id}:$h->{percent}";
    }' "$B"/rules/*.json)
OUTSIDE=${HOLDOUT:+--outside=$HOLDOUT}

# The geo database and the client addresses wrk sends in X-Forwarded-For.
IPS_FILE=$B/data/ips.txt
GEO_NEAR_IP=$(perl "$BENCH/gen-geo.pl" "$B/geo.mmdb" "$IPS_FILE" "$GEO_NETS") \
    || die "bench/gen-geo.pl failed"
log "geo: $B/geo.mmdb, $GEO_NETS networks ($(du -h "$B/geo.mmdb" | cut -f1)), $(wc -l < "$IPS_FILE") client addresses"

# A fresh random secret per run (48 base64 characters).
SECRET_FILE=$B/secret
perl -MMIME::Base64 -e 'open(my $r, "<", "/dev/urandom") or die; read($r, my $b, 36); print encode_base64($b, ""), "\n"' > "$SECRET_FILE"
chmod 600 "$SECRET_FILE"
SECRET=$(cat "$SECRET_FILE")

USER_LINE=
[ "$(id -u)" = 0 ] && USER_LINE="user root;"

# ---------------------------------------------------------------- stores

declare -A STORE_N STORE_DIR STORE_MAP STORE_COOKIES
for s in $SIZE_LIST; do
    n=$(size_n "$s")
    STORE_N[$s]=$n
    STORE_DIR[$s]=$B/store-$s
    if [ -n "${MAP_SIZE:-}" ]; then
        STORE_MAP[$s]=$MAP_SIZE
    elif [ "$n" -ge 5000000 ]; then
        STORE_MAP[$s]=8g
    else
        STORE_MAP[$s]=2g
    fi

    log "store $s: generating $n profiles"
    nd=$B/data/profiles-$s.ndjson
    perl "$BENCH/gen-profiles.pl" "$n" "$T0" > "$nd"

    rm -rf "${STORE_DIR[$s]}"
    "$OMNICTL" --store "${STORE_DIR[$s]}" --map-size "${STORE_MAP[$s]}" \
        stat --create > /dev/null || die "omnictl stat --create failed"
    t1=$(date +%s.%N)
    "$OMNICTL" --store "${STORE_DIR[$s]}" --map-size "${STORE_MAP[$s]}" \
        import "$nd" > "$B/logs/import-$s.log" 2>&1 \
        || { cat "$B/logs/import-$s.log" >&2; die "import of $s profiles failed"; }
    t2=$(date +%s.%N)
    rm -f "$nd"
    count=$("$OMNICTL" --store "${STORE_DIR[$s]}" stat | perl -ne 'print $1 if /"profiles":\s*(\d+)/')
    [ "$count" = "$n" ] || die "store $s holds $count profiles, expected $n"
    secs=$(echo "$t1 $t2" | awk '{printf "%.2f", $2 - $1}')
    rate=$(echo "$n $secs" | awk '{ if ($2 > 0) printf "%.0f", $1 / $2; else print "-" }')
    du_h=$(du -sh "${STORE_DIR[$s]}" | cut -f1)
    log "store $s: imported $n profiles in ${secs}s ($rate/s), $du_h on disk"
    echo "| $s | $n | ${secs} s | $rate | $du_h | ${STORE_MAP[$s]} |" >> "$B/data/imports.md"

    # Arm C reads and writes its own copy of the same store (the same
    # records, never disturbed by B's writer, nor B's by C's).
    if has_arm C; then
        rm -rf "${STORE_DIR[$s]}-c"
        cp -a "${STORE_DIR[$s]}" "${STORE_DIR[$s]}-c" || die "cannot copy store $s for arm C"
    fi

    # Cookies over ids 0 .. n-17 outside the holdout: the last 16 ids stay
    # untouched, for the verification requests of each configuration.
    STORE_COOKIES[$s]=$B/data/cookies-$s.txt
    perl "$BENCH/mint-cookies.pl" $OUTSIDE "$SECRET_FILE" "$n" "$COOKIES" 16 > "${STORE_COOKIES[$s]}"
done

# ---------------------------------------------------------------- nginx

# "2g" -> bytes, for arm C's mdb_env_set_mapsize().
map_bytes() {
    local s=$1
    case $s in
        *[kK]) echo $(( ${s%?} * 1024 )) ;;
        *[mM]) echo $(( ${s%?} * 1024 * 1024 )) ;;
        *[gG]) echo $(( ${s%?} * 1024 * 1024 * 1024 )) ;;
        *[!0-9]*|'') die "bad map size \"$s\"" ;;
        *) echo "$s" ;;
    esac
}

write_conf() {    # cfg workers size arms
    local cfg=$1 workers=$2 size=$3 arms=" ${4:-} " aff lua_load= lua_http= lua_loc=
    if [ "$workers" = 1 ]; then aff=01; else aff="01 10"; fi
    # Arm C: lua-nginx-module, only in configurations that run it.
    if [ "${arms/ C /}" != "$arms" ]; then
        lua_load="load_module $NDK_MOD;
load_module $LUA_MOD;"
        lua_http="
    # Arm C, the OpenResty peer (bench/lua/omnic.lua), on its own copy of
    # the store; its writer flushes every 10 ms, as the module's does.
    lua_package_path \"$BENCH/lua/?.lua;;\";
    init_by_lua_block {
        require(\"omnic\").init{ store = \"${STORE_DIR[$size]}-c\",
            map_size = $(map_bytes "${STORE_MAP[$size]}"), secret = \"$SECRET\",
            geoip = \"$B/geo.mmdb\", rules = \"$LUA_RULES\", flush = 0.01 }
    }
    init_worker_by_lua_block { require(\"omnic\").init_worker() }
"
        lua_loc="
        # Arm C: the same work as B, in Lua.
        location /c/ {
            access_by_lua_block { require(\"omnic\").access() }
            header_filter_by_lua_block { require(\"omnic\").header_filter() }
            body_filter_by_lua_block { require(\"omnic\").body_filter() }
            log_by_lua_block { require(\"omnic\").log() }
        }
"
    fi
    cat > "$B/conf/$cfg.conf" <<EOF
# Generated by bench/run.sh: configuration "$cfg".
$lua_load
load_module $MODULE;

$USER_LINE
worker_processes $workers;
worker_cpu_affinity $aff;
pid logs/$cfg.pid;
error_log logs/$cfg.error.log info;

events {
    worker_connections 1024;
}

http {
    types { text/html html; }
    default_type application/octet-stream;

$(conf_http_common tmp)

    omni_secret "$SECRET";
    omni_store ${STORE_DIR[$size]} map_size=${STORE_MAP[$size]}${QUEUE:+ queue=$QUEUE};
    omni_rules $B/rules;
    omni_geoip $B/geo.mmdb;

    # Every arm: the client address from X-Forwarded-For (wrk.lua).
    set_real_ip_from $HOST;
    real_ip_header X-Forwarded-For;
$lua_http
    # The proxied arms' upstream: the page from disk, on keepalive
    # connections; and the cache of the proxy_cache arms (every measured
    # request a hit: the entries are made by the verification requests).
    upstream bench_upstream {
        server $HOST:$PORT_U;
        keepalive 64;
    }
    proxy_cache_path $B/cache levels=1:2 keys_zone=bench_cache:1m
                     max_size=64m inactive=1d use_temp_path=off;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_cache_valid 200 1d;

    server {
        listen $HOST:$PORT_U;
        server_name bench-upstream;
        root $B/html;
        location /u/ { }
    }

    # Arms A and A': the module is loaded, "omni off" (the default).
    server {
        listen $HOST:$PORT_A;
        server_name bench-plain;
        root $B/html;

        location /a/ { }

        location /s/ {
            sub_filter '</body>' '<div>x</div></body>';
        }
$lua_loc
        # Ac, A'c: the page from proxy_cache, plain and with one sub_filter.
        location /pc/ {
            proxy_pass http://bench_upstream/u/;
            proxy_cache bench_cache;
            add_header X-Cache \$upstream_cache_status;
        }

        location /spc/ {
            proxy_pass http://bench_upstream/u/;
            proxy_cache bench_cache;
            add_header X-Cache \$upstream_cache_status;
            sub_filter '</body>' '<div>x</div></body>';
        }

        # Ap: the page proxied, no cache.
        location /p/ {
            proxy_pass http://bench_upstream/u/;
        }
    }

    # "omni on": arm F and "new visitor" /f/ (no decision: omni_inject
    # off), arm B /b/ (the full path), "module off in location" /o/, the
    # events arm /omni/events.
    server {
        listen $HOST:$PORT_B;
        server_name bench-omni;
        root $B/html;
        omni on;

        location /f/ {
            omni_inject off;
        }

        location /b/ { }

        location /o/ {
            omni off;
        }

        # Bc: the module on a proxy_cache hit; Bp: on a proxied page.
        location /bc/ {
            proxy_pass http://bench_upstream/u/;
            proxy_cache bench_cache;
            add_header X-Cache \$upstream_cache_status;
        }

        location /bp/ {
            proxy_pass http://bench_upstream/u/;
        }

        location = /omni/events {
            omni_events;
        }
    }
}
EOF
}

start_nginx() {   # cfg workers
    local cfg=$1 workers=$2 i
    "$NGINX" -t -q -p "$B/" -c "conf/$cfg.conf" -e "logs/$cfg.startup.log" \
        || die "nginx -t failed for $cfg (see $B/logs/$cfg.error.log)"
    "$NGINX" -p "$B/" -c "conf/$cfg.conf" -e "logs/$cfg.startup.log" \
        || die "nginx did not start ($cfg)"
    for i in $(seq 50); do
        [ -s "$B/logs/$cfg.pid" ] && break
        sleep 0.1
    done
    MASTER=$(cat "$B/logs/$cfg.pid" 2>/dev/null) || die "no pid file for $cfg"
    for i in $(seq 50); do
        # (the worker processes only: proxy_cache_path adds a cache
        # manager and a cache loader)
        # (none yet right after the start: pgrep fails, which must not
        # end the script under errexit)
        WORKERS=$(pgrep -P "$MASTER" -f 'worker process' | tr '\n' ' ' || true)
        [ "$(echo $WORKERS | wc -w)" = "$workers" ] && break
        sleep 0.1
    done
    [ "$(echo $WORKERS | wc -w)" = "$workers" ] \
        || die "expected $workers worker(s) under master $MASTER, found: $WORKERS"
    log "$cfg: nginx master $MASTER, workers $WORKERS"
}

stop_nginx() {
    local i
    [ -n "$MASTER" ] || return 0
    kill -QUIT "$MASTER"
    for i in $(seq 150); do
        kill -0 "$MASTER" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$MASTER" 2>/dev/null; then
        kill -KILL "$MASTER" 2>/dev/null || true
        die "nginx master $MASTER did not exit within 30 s of SIGQUIT"
    fi
    MASTER=
}

# ---------------------------------------------------------------- measuring

# utime+stime in ticks: the whole process (all threads, so the writer's pool
# threads too) and the worker's main (event loop) thread alone.
proc_ticks() {    # pid -> "total main"
    local pid=$1 total main
    total=$(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')
    main=$(sed 's/^.*) //' "/proc/$pid/task/$pid/stat" | awk '{print $12 + $13}')
    echo "$total $main"
}

workers_ticks() {
    local t=0 m=0 pid a b
    for pid in $WORKERS; do
        read -r a b < <(proc_ticks "$pid") || die "worker $pid is gone"
        t=$((t + a)); m=$((m + b))
    done
    echo "$t $m"
}

# All CPUs, from /proc/stat: busy ticks and steal ticks.
sys_ticks() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $9 }' /proc/stat
}

arm_url() {
    case $1 in
        A)    echo "http://$HOST:$PORT_A/a/page.html" ;;
        "A'") echo "http://$HOST:$PORT_A/s/page.html" ;;
        F)    echo "http://$HOST:$PORT_B/f/page.html" ;;
        B)    echo "http://$HOST:$PORT_B/b/page.html" ;;
        off)  echo "http://$HOST:$PORT_B/o/page.html" ;;
        new)  echo "http://$HOST:$PORT_B/f/page.html" ;;
        C)    echo "http://$HOST:$PORT_A/c/page.html" ;;
        Ac)   echo "http://$HOST:$PORT_A/pc/page.html" ;;
        "A'c") echo "http://$HOST:$PORT_A/spc/page.html" ;;
        Bc)   echo "http://$HOST:$PORT_B/bc/page.html" ;;
        Ap)   echo "http://$HOST:$PORT_A/p/page.html" ;;
        Bp)   echo "http://$HOST:$PORT_B/bp/page.html" ;;
        ev*)  echo "http://$HOST:$PORT_B/omni/events" ;;
        *)    die "unknown arm $1" ;;
    esac
}

# The "new visitor" arm sends the same cookie bytes under another name.
arm_cookie_name() { if [ "$1" = new ]; then echo xxxx; else echo omni; fi; }

declare -A OMNI_REQS    # requests sent to "omni on" arms, per config
declare -A C_REQS       # requests answered by arm C, per config
declare -A BASE_BYTES   # response bytes per request of a baseline, per config
INJECT_MIN=${INJECT_MIN:-300}   # B must average this many bytes more than A
# The baseline whose bytes an injecting arm must exceed by INJECT_MIN.
inject_base() {
    case $1 in B|C) echo A ;; Bc) echo Ac ;; Bp) echo Ap ;; *) echo ;; esac
}

# Other processes on the machine (a shared 2-CPU VM) distort a run.  Before
# each measured run, wait (bounded) until the machine is idle; after it, a
# run during which more than NOISE_MAX % of one CPU went to other processes
# is repeated once, within a budget of RETRY_BUDGET repetitions per bench.
NOISE_MAX=${NOISE_MAX:-15}
RETRY_BUDGET=${RETRY_BUDGET:-3}
QUIET_BUDGET=${QUIET_BUDGET:-15}     # seconds of waiting in all
QUIET_WAITED=0
REPEATED=0
NOISY_KEPT=0

quiet_wait() {
    local s0 s1 st busy i w0 w1 m
    for i in $(seq 20); do
        # The workers may still be draining the writer queue: not noise.
        read -r w0 m < <(workers_ticks)
        read -r s0 st < <(sys_ticks)
        sleep 0.25
        read -r w1 m < <(workers_ticks)
        read -r s1 st < <(sys_ticks)
        busy=$(( (s1 - s0 - (w1 - w0)) * 100 * 4 / CLK_TCK ))    # % of one CPU
        [ "$busy" -le 10 ] && return 0
        [ "$QUIET_WAITED" -ge "$QUIET_BUDGET" ] && return 0
        [ "$i" = 1 ] && log "machine busy (${busy}% of a CPU outside the bench), waiting"
        sleep 0.75
        QUIET_WAITED=$((QUIET_WAITED + 1))
    done
}

# The feed's last sequence number: the writer appends one touchpoint per
# touch and one record per event, so its growth during a run is what the
# writer committed for it.
feed_seq() {   # store
    "$OMNICTL" --store "$1" stat | perl -ne 'print $1 if /"last_seq":\s*(\d+)/'
}

# The same, once the writer has drained its queue: the feed has not grown
# and the workers have used no CPU time (their writer threads included)
# for two polls in a row.  A full queue's batch can take a second.
feed_seq_drained() {   # store
    local a b i t0 t1 m still=0
    a=$(feed_seq "$1")
    read -r t0 m < <(workers_ticks)
    for i in $(seq 100); do
        sleep 0.25
        b=$(feed_seq "$1")
        read -r t1 m < <(workers_ticks)
        if [ "$a" = "$b" ] && [ $((t1 - t0)) -le 1 ]; then
            still=$((still + 1))
            [ "$still" -ge 2 ] && break
        else
            still=0
        fi
        a=$b
        t0=$t1
    done
    echo "$a"
}

arm_tsv() { case $1 in ev*) echo "$EVENTS_TSV" ;; *) echo "$RUNS_TSV" ;; esac; }

wrk_run() {   # cfg phase round arm seconds record(0|1)
    local other tsv
    tsv=$(arm_tsv "$4")
    if [ "$6" = 1 ]; then
        quiet_wait
    fi
    wrk_run1 "$@"
    [ "$6" = 1 ] || return 0
    other=$(tail -1 "$tsv" | cut -f13)
    if awk -v o="$other" -v m="$NOISE_MAX" 'BEGIN { exit !(o > m) }'; then
        if [ "$REPEATED" -lt "$RETRY_BUDGET" ]; then
            REPEATED=$((REPEATED + 1))
            log "other processes took ${other}% of a CPU during that run: repeating it"
            sed -i '$d' "$tsv"
            quiet_wait
            wrk_run1 "$@"
            other=$(tail -1 "$tsv" | cut -f13)
            if awk -v o="$other" -v m="$NOISE_MAX" 'BEGIN { exit !(o > m) }'; then
                NOISY_KEPT=$((NOISY_KEPT + 1))
            fi
        else
            NOISY_KEPT=$((NOISY_KEPT + 1))
        fi
    fi
}

wrk_run1() {   # cfg phase round arm seconds record(0|1)
    local cfg=$1 phase=$2 round=$3 arm=$4 secs=$5 record=$6
    local url name tag out tf w0 m0 w1 m1 s0 st0 s1 st1 line
    local seq0='' seq1='' tps='' conns=$CONNS script=$BENCH/wrk.lua
    local -a args
    url=$(arm_url "$arm")
    name=$(arm_cookie_name "$arm")
    tag="$cfg.$phase.$round.${arm//\'/p}"
    out=$B/raw/$tag.out
    tf=$B/raw/$tag.time
    args=(-- "$COOKIE_FILE" "$name" "$IPS_FILE")

    case $arm in
        ev*)
            # One unique messageId prefix per run (a repeated run too).
            conns=${arm#ev}
            script=$BENCH/events.lua
            args=(-- "$COOKIE_FILE" "$tag.$(date +%s%N)" "$B/raw/$tag.ids")
            seq0=$(feed_seq "$CUR_STORE")
            ;;
        B|F|new|Bc|Bp)
            [ "$record" = 1 ] && seq0=$(feed_seq "$CUR_STORE")
            ;;
    esac

    read -r w0 m0 < <(workers_ticks)
    read -r s0 st0 < <(sys_ticks)
    local TIMEFORMAT='%3U %3S' tstart
    tstart=$(date +%s)
    { time timeout $((secs + 30)) taskset -c $WRK_CPU wrk -t1 -c"$conns" \
          -d"${secs}s" --latency --timeout 5s -s "$script" "$url" \
          "${args[@]}" > "$out" 2>&1 ; } 2> "$tf" \
        || { cat "$out" >&2; die "wrk failed: $cfg $arm"; }
    read -r w1 m1 < <(workers_ticks)
    read -r s1 st1 < <(sys_ticks)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$cfg" "$phase" "$round" "$arm" \
        "$tstart" "$(date +%s)" >> "$B/data/timeline.tsv"

    line=$(grep '^BENCH ' "$out") || { cat "$out" >&2; die "no BENCH line from wrk ($tag)"; }
    eval "local ${line#BENCH }"
    # shellcheck disable=SC2154
    if [ "$err_status" != 0 ] || [ "$err_connect" != 0 ] || [ "$err_timeout" != 0 ]; then
        cat "$out" >&2
        die "$tag: wrk saw errors (status $err_status, connect $err_connect, timeout $err_timeout)"
    fi
    [ "$requests" -gt 0 ] || die "$tag: no requests completed"

    if [ -n "$seq0" ]; then
        seq1=$(feed_seq_drained "$CUR_STORE")
        tps=$((seq1 - seq0))
    fi

    case $arm in
        B|F|new|Bc|Bp) OMNI_REQS[$cfg]=$(( ${OMNI_REQS[$cfg]:-0} + requests )) ;;
        C) C_REQS[$cfg]=$(( ${C_REQS[$cfg]:-0} + requests )) ;;
    esac

    # The events arm: every request answered 200 "accepted" (a read error,
    # i.e. a connection closed without an answer, is a failure too), and
    # every one of them in the feed, from the client, under its messageId.
    local stored='' missing=''
    if [ "${arm#ev}" != "$arm" ]; then
        # shellcheck disable=SC2154
        if [ "$err_read" != 0 ] || [ "$err_write" != 0 ] || [ "$non200" != 0 ] \
           || [ "$other200" != 0 ] || [ "$accepted" != "$requests" ]; then
            cat "$out" >&2
            die "$tag: events not all accepted: $requests answered, $accepted accepted, $other200 other 200, $non200 not 200, read errors $err_read"
        fi
        [ "$(wc -l < "$B/raw/$tag.ids")" = "$accepted" ] \
            || die "$tag: $accepted events accepted but $(wc -l < "$B/raw/$tag.ids") messageIds written"
        read -r stored missing < <("$OMNICTL" --store "$CUR_STORE" tail --after "$seq0" \
            | perl -e '
                my $ids = shift;
                open(my $f, "<", $ids) or die "$ids: $!\n";
                my %want = map { chomp; $_ => 1 } <$f>;
                my $stored = 0;
                while (<STDIN>) {
                    next unless /"context":\{"source":"client"\}/
                             && /"event":"Product Added"/
                             && /"messageId":"([^"]+)"/;
                    $stored++;
                    delete $want{$1};
                }
                printf "%d %d\n", $stored, scalar keys %want;
            ' "$B/raw/$tag.ids")
        [ "$missing" = 0 ] \
            || die "$tag: $missing of the $accepted events answered 200 are not in the store's feed"
        [ "$stored" = "$tps" ] \
            || log "$tag: note: the feed grew by $tps records, $stored of them this run's events"
        rm -f "$B/raw/$tag.ids"
    fi

    # Arm B must have injected into (nearly) every response: its responses
    # average at least INJECT_MIN bytes more than A's (the banners and
    # pixels add about 500; a held-out or undecided visitor gets nothing).
    # The same for C against A, Bc against Ac and Bp against Ap.
    local breq=$((bytes / requests)) base
    base=$(inject_base "$arm")
    case $arm in A|Ac|Ap) BASE_BYTES[$cfg.$arm]=$breq ;; esac
    if [ -n "$base" ] && [ -n "${BASE_BYTES[$cfg.$base]:-}" ] \
         && [ "$breq" -lt $(( ${BASE_BYTES[$cfg.$base]} + INJECT_MIN )) ]; then
        die "$tag: arm $arm responses average $breq bytes, $base's ${BASE_BYTES[$cfg.$base]}: banners and pixels were not injected into every response"
    fi

    [ "$record" = 1 ] || return 0

    local tsv extra
    tsv=$(arm_tsv "$arm")
    if [ "$tsv" = "$EVENTS_TSV" ]; then
        extra="$conns	$lat_p90	$lat_max	$accepted	$stored	$missing"
    else
        extra="$(awk -v b="$bytes" -v r="$requests" 'BEGIN { printf "%.0f", b / r }')	$tps"
    fi
    read -r wu ws < "$tf"
    perl -e '
        my ($cfg, $phase, $round, $arm, $req, $dur, $p50, $p99,
            $dw, $dm, $ds, $dst, $wrk, $tck, $extra) = @ARGV;
        my $sec = $dur / 1e6;
        my $ticks_us = 1e6 / $tck;
        my $wrk_ticks = $wrk * $tck;
        my $other = $ds - $dw - $wrk_ticks;
        $other = 0 if $other < 0;
        printf "%s\t%s\t%d\t%s\t%.0f\t%d\t%d\t%d\t%.2f\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t%s\n",
            $cfg, $phase, $round, $arm, $req / $sec, $req, $p50, $p99,
            $dw * $ticks_us / $req, $dm * $ticks_us / $req,
            100 * $dw / $tck / $sec, 100 * $wrk / $sec,
            100 * $other / $tck / $sec, 100 * $dst / $tck / $sec, $extra;
    ' "$cfg" "$phase" "$round" "$arm" "$requests" "$duration_us" \
      "$lat_p50" "$lat_p99" $((w1 - w0)) $((m1 - m0)) $((s1 - s0)) \
      $((st1 - st0)) "$(echo "$wu $ws" | awk '{print $1 + $2}')" "$CLK_TCK" \
      "$extra" >> "$tsv"
    tail -1 "$tsv" | awk -F'\t' '{printf "bench: %-6s %-4s round %s %-5s %8s req/s  p50 %5s us  p99 %6s us  %6s us CPU/req  (worker %s%%, wrk %s%%, other %s%%)\n", $1, $2, $3, $4, $5, $7, $8, $9, $11, $12, $13}' >&2
    [ -n "$tps" ] && log "$tag: the writer committed $tps touchpoint(s)/record(s) for $requests answered requests"
    return 0
}

profile_field() {  # store id field
    "$OMNICTL" --store "$1" get "$2" | perl -ne "print \$1 if /\"$3\":\\s*(\\d+)/"
}

# The User-Agent of wrk.lua, for the verification requests.
BROWSER_UA="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"

wait_touch() {   # cfg store id visits_before arm -> visits after
    local v1 i
    for i in $(seq 50); do
        v1=$(profile_field "$2" "$3" visits)
        [ "${v1:-0}" -gt "$4" ] && break
        sleep 0.1
    done
    [ "${v1:-0}" -gt "$4" ] \
        || die "$1: profile $3 visits stayed at $4 after an arm $5 request: no touch committed"
    echo "$v1"
}

# Before measuring: each arm answers as it should; arm F really runs the
# foundation path (valid cookie, profile found, touch committed) and arm B
# the full path (the same, plus a banner in the hero slot, the retargeting
# pixels before </body>, the showroom banner for an address near a store,
# i.e. the geo lookup, and the country in the committed touchpoint).
verify() {   # cfg size reserve_index
    local cfg=$1 size=$2 k=$3 id cookie hdr body v0 v1 j st bid bline got seq tp
    st=${STORE_DIR[$size]}
    id=$(printf '%032x' $(( ${STORE_N[$size]} - 1 - k )))
    cookie=$(perl "$BENCH/mint-cookies.pl" "$SECRET_FILE" --id "$id" | cut -d' ' -f2)
    hdr=$B/raw/$cfg.verify.hdr
    body=$B/raw/$cfg.verify.body

    fetch() {  # arm cookie_header [x_forwarded_for]
        curl -sS --max-time 5 -o "$body" -D "$hdr" -H "Cookie: $2" \
            -H "User-Agent: $BROWSER_UA" ${3:+-H "X-Forwarded-For: $3"} \
            "$(arm_url "$1")" \
            || die "$cfg: curl to arm $1 failed"
        grep -q '^HTTP/1.1 200' "$hdr" || { cat "$hdr" >&2; die "$cfg: arm $1 did not answer 200"; }
    }

    fetch A "omni=$cookie"
    [ "$(wc -c < "$body")" = 10240 ] || die "$cfg: arm A body is not 10240 bytes"
    grep -qi '^set-cookie' "$hdr" && die "$cfg: arm A (omni off) sent Set-Cookie"

    if has_arm "A'"; then
        fetch "A'" "omni=$cookie"
        grep -q '<div>x</div></body>' "$body" || die "$cfg: arm A' has no sub_filter insertion"
    fi

    if has_arm off; then
        fetch off "omni=$cookie"
        grep -qi '^set-cookie' "$hdr" && die "$cfg: arm off (omni off in location) sent Set-Cookie"
    fi

    if has_arm F; then
        v0=$(profile_field "$st" "$id" visits)
        [ -n "$v0" ] || die "$cfg: profile $id not found in store $size"
        fetch F "omni=$cookie"
        [ "$(wc -c < "$body")" = 10240 ] || die "$cfg: arm F body is not 10240 bytes (injected?)"
        if grep -qi '^set-cookie' "$hdr"; then
            cat "$hdr" >&2
            die "$cfg: arm F answered with Set-Cookie: the minted cookie was not accepted"
        fi
        OMNI_REQS[$cfg]=$(( ${OMNI_REQS[$cfg]:-0} + 1 ))
        v1=$(wait_touch "$cfg" "$st" "$id" "$v0" F)
        log "$cfg: verified: arm F cookie accepted, no Set-Cookie, profile $id visits $v0 -> $v1"
    fi

    # Arm B: a reserved profile outside the holdout, from an address near
    # the Lisbon showroom (its first visit there: under the showroom's cap
    # of 5 a week, which B, Bc (twice: the cache entry, then a hit) and Bp
    # stay under; C has its own store).
    bid=
    for j in 0 1 2 3 4 5; do
        bid=$(printf '%032x' $(( ${STORE_N[$size]} - 5 - 6 * k - j )))
        if bline=$(perl "$BENCH/mint-cookies.pl" $OUTSIDE "$SECRET_FILE" --id "$bid"); then
            break
        fi
        bline=
    done
    [ -n "$bline" ] || die "$cfg: no reserved profile outside the holdout"

    # An injected page (B, Bc, Bp, C): a banner in the hero slot, the
    # showroom banner (the geo lookup), the retargeting pixels before
    # </body>, marked private, the cookie accepted.
    check_injected() {   # arm
        local got
        cp "$body" "$B/raw/$cfg.verify-$1.html"
        if grep -qi '^set-cookie' "$hdr"; then
            cat "$hdr" >&2
            die "$cfg: arm $1 answered with Set-Cookie: the minted cookie was not accepted"
        fi
        got=$(perl -0777 -ne '
            my @e;
            # The hero marker replaced by a banner (any rule of the hero slot).
            my ($hero) = m{</header>\n<div class="omni omni-([\w-]+)};
            push @e, "no banner in the hero slot" unless $hero;
            push @e, "the hero marker is still there" if /<!--omni:slot hero-->/;
            # The showroom banner (geo: near Lisbon) in the aside slot.
            push @e, "no showroom banner for an address near Lisbon (geo)"
                unless m{<aside><div class="omni omni-showroom">.*Lisbon Baixa}s;
            # The SUMMIT-PRO retargeting pixels, right before </body>.
            my ($tail) = m{</footer>\n(.*)</body>}s;
            push @e, "no retargeting pixel before </body>"
                unless defined $tail
                    && $tail =~ m{<img src="https://ads\.example\.com/rt\?event=interest}
                    && $tail =~ m{<script async src="https://tags\.example\.com/retarget\.js};
            print @e ? "FAIL: " . join("; ", @e) : "hero $hero, showroom, pixels";
        ' "$body")
        case $got in
            FAIL*) die "$cfg: arm $1: ${got#FAIL: } (response in $B/raw/$cfg.verify-$1.html)" ;;
        esac
        grep -qi '^cache-control: private' "$hdr" || die "$cfg: arm $1 response not marked private"
        echo "$got"
    }

    # The touchpoint of a verified request: its profile, the country and
    # the shown rules.
    check_touchpoint() {   # arm store
        local seq tp
        seq=$("$OMNICTL" --store "$2" stat | perl -ne 'print $1 if /"last_seq":\s*(\d+)/')
        tp=$("$OMNICTL" --store "$2" tail --after $((seq - 1)) --limit 1)
        case $tp in
            *"\"profileId\":\"$bid\""*"\"country\":\"PT\""*) ;;
            *) die "$cfg: arm $1: the last touchpoint is not the verified request with its country: $tp" ;;
        esac
        case $tp in
            *showroom-invite*summit-retarget*|*summit-retarget*showroom-invite*) ;;
            *) die "$cfg: arm $1: the touchpoint does not list the shown rules: $tp" ;;
        esac
    }

    if has_arm B; then
        v0=$(profile_field "$st" "$bid" visits)
        [ -n "$v0" ] || die "$cfg: profile $bid not found in store $size"
        fetch B "omni=${bline#* }" "$GEO_NEAR_IP"
        OMNI_REQS[$cfg]=$(( ${OMNI_REQS[$cfg]:-0} + 1 ))
        got=$(check_injected B)
        v1=$(wait_touch "$cfg" "$st" "$bid" "$v0" B)
        check_touchpoint B "$st"
        log "$cfg: verified: arm B $got injected, profile $bid visits $v0 -> $v1, touchpoint with country PT"
    fi

    # The proxy_cache arms: the first request fills the cache, the second
    # must be a hit (X-Cache: HIT) and answer the same page.
    if has_arm Ac; then
        fetch Ac "omni=$cookie"; fetch Ac "omni=$cookie"
        grep -qi '^x-cache: HIT' "$hdr" || { cat "$hdr" >&2; die "$cfg: arm Ac: the second request is not a cache hit"; }
        cmp -s "$body" "$B/html/page.html" || die "$cfg: arm Ac: the cached page differs from the page"
    fi
    if has_arm "A'c"; then
        fetch "A'c" "omni=$cookie"; fetch "A'c" "omni=$cookie"
        grep -qi '^x-cache: HIT' "$hdr" || die "$cfg: arm A'c: the second request is not a cache hit"
        grep -q '<div>x</div></body>' "$body" || die "$cfg: arm A'c has no sub_filter insertion"
    fi
    if has_arm Bc; then
        fetch Bc "omni=${bline#* }" "$GEO_NEAR_IP"
        fetch Bc "omni=${bline#* }" "$GEO_NEAR_IP"
        OMNI_REQS[$cfg]=$(( ${OMNI_REQS[$cfg]:-0} + 2 ))
        grep -qi '^x-cache: HIT' "$hdr" || die "$cfg: arm Bc: the second request is not a cache hit"
        got=$(check_injected Bc)
        log "$cfg: verified: arm Bc (a proxy_cache hit) $got injected"
    fi
    if has_arm Ap; then
        fetch Ap "omni=$cookie"
        cmp -s "$body" "$B/html/page.html" || die "$cfg: arm Ap: the proxied page differs from the page"
        grep -qi '^set-cookie' "$hdr" && die "$cfg: arm Ap (omni off) sent Set-Cookie"
    fi
    if has_arm Bp; then
        fetch Bp "omni=${bline#* }" "$GEO_NEAR_IP"
        OMNI_REQS[$cfg]=$(( ${OMNI_REQS[$cfg]:-0} + 1 ))
        got=$(check_injected Bp)
        log "$cfg: verified: arm Bp (proxied) $got injected"
    fi

    # Arm C on its own copy of the store: the same page, and its
    # touchpoint (written by its timer) in its store's feed.  Only where
    # this configuration runs C (the 2-worker one does not).
    if has_arm C && [[ " $CUR_ARMS " == *" C "* ]]; then
        fetch C "omni=${bline#* }" "$GEO_NEAR_IP"
        C_REQS[$cfg]=$(( ${C_REQS[$cfg]:-0} + 1 ))
        got=$(check_injected C)
        sleep 0.5
        check_touchpoint C "$st-c"
        log "$cfg: verified: arm C $got injected, touchpoint with country PT in its store"
        grep -E '\[(error|crit|alert|emerg)\].*omnic' "$B/logs/$cfg.error.log" >&2 \
            && die "$cfg: arm C logged errors"
    fi

    if has_arm new; then
        fetch new "xxxx=$cookie"
        grep -qi '^set-cookie: omni=' "$hdr" || die "$cfg: new visitor got no Set-Cookie"
        OMNI_REQS[$cfg]=$(( ${OMNI_REQS[$cfg]:-0} + 1 ))
    fi

    if grep -q 'refused' "$B/logs/$cfg.error.log"; then
        grep 'refused' "$B/logs/$cfg.error.log" >&2
        die "$cfg: the module refused a cookie"
    fi
}

# B against C (issue 10 part 4): for the first COMPARE visitors of the
# cookie file, each with its address as wrk.lua pairs them, C's and B's
# responses must be byte-identical (body, and the headers the rules set
# or the injection changes).  Run before any measured request, when both
# stores hold the same records.  A difference stops the bench, with both
# responses in build/bench/raw/.
compare_bc() {   # cfg
    local cfg=$1 i n=0 same=0 nips id value ip hb hc ob oc
    nips=$(wc -l < "$IPS_FILE")
    hb=$B/raw/$cfg.cmp-B.hdr; hc=$B/raw/$cfg.cmp-C.hdr
    ob=$B/raw/$cfg.cmp-B.html; oc=$B/raw/$cfg.cmp-C.html
    hdrs() { grep -iE '^(content-type|cache-control|x-omni-[a-z-]+|set-cookie|content-length):' "$1" | tr -d '\r' | sort -f; }
    while read -r id value; do
        [ "$n" -lt "$COMPARE" ] || break
        n=$((n + 1))
        ip=$(sed -n "$(( (n - 1) % nips + 1 ))p" "$IPS_FILE")
        for arm in C B; do
            curl -sS --max-time 5 -o "$B/raw/$cfg.cmp-$arm.html" -D "$B/raw/$cfg.cmp-$arm.hdr" \
                -H "Cookie: omni=$value" -H "User-Agent: $BROWSER_UA" \
                -H "X-Forwarded-For: $ip" "$(arm_url $arm)" \
                || die "$cfg: compare: curl to arm $arm failed"
        done
        C_REQS[$cfg]=$(( ${C_REQS[$cfg]:-0} + 1 ))
        OMNI_REQS[$cfg]=$(( ${OMNI_REQS[$cfg]:-0} + 1 ))
        if ! cmp -s "$ob" "$oc" || [ "$(hdrs "$hb")" != "$(hdrs "$hc")" ]; then
            diff <(hdrs "$hb"; cat "$ob") <(hdrs "$hc"; cat "$oc") | head -20 >&2
            die "$cfg: compare: B and C answer visitor $id (address $ip) differently (B: $ob, C: $oc)"
        fi
        same=$((same + 1))
    done < "$COOKIE_FILE"
    echo "- $cfg: B and C answered $same of $n sampled visitors byte-identically (body, Content-Type, Cache-Control, X-Omni-* headers)" >> "$B/data/compare.md"
    log "$cfg: compare: B and C byte-identical for $same of $n visitors"
}

# After arm B's measured runs: its last touchpoints in the feed show that
# the measured requests ran the full path, not just the verified one: each
# lists the SUMMIT-PRO retargeting rule (pixels injected) and, when the
# client address is in the database (~96%), the country (geo looked up).
feed_check() {   # cfg size [arm]  (arm C: its own store)
    local cfg=$1 st=${STORE_DIR[$2]} arm=${3:-B} seq out n geo px path='/b[cp]?/'
    # The module's full-path arms (B, Bc, Bp) share its store; C has its own.
    if [ "$arm" = C ]; then st=$st-c; path=/c/; fi
    sleep 1    # the writer's last batch
    seq=$("$OMNICTL" --store "$st" stat | perl -ne 'print $1 if /"last_seq":\s*(\d+)/')
    out=$("$OMNICTL" --store "$st" tail --after $((seq > 20000 ? seq - 20000 : 0)) --limit 20000 \
          | P=$path perl -ne 'next unless m{"path":"$ENV{P}page\.html"};
                      $n++; $g++ if /"country":"[A-Z]{2}"/; $p++ if /"summit-retarget"/;
                      END { printf "%d %d %d\n", $n, $g, $p }')
    read -r n geo px <<< "$out"
    [ "$n" -gt 0 ] || die "$cfg: no arm $arm touchpoint among the last 20,000 of the feed"
    echo "- $cfg: of the last $n arm-$arm touchpoints, $((100 * px / n))% list the retargeting rule (pixels), $((100 * geo / n))% carry a country (geo lookup)" >> "$B/data/feed.md"
    log "$cfg: feed: $n arm $arm touchpoints, $px with the retargeting rule, $geo with a country"
    [ $((100 * px / n)) -ge 99 ] || die "$cfg: only $px of $n arm $arm touchpoints list the retargeting rule"
    [ $((100 * geo / n)) -ge 80 ] || die "$cfg: only $geo of $n arm $arm touchpoints carry a country: no geo lookup?"
}

# Writer health after a graceful stop: build/bench/data/health.{md,tsv}.
health() {   # cfg size
    local cfg=$1 size=$2 elog=$B/logs/$cfg.error.log
    local committed dropped failed exits errs full refused profiles
    read -r exits committed dropped failed < <(perl -ne '
        if (/writer exit: (\d+) committed, (\d+) dropped, (\d+) failed/) {
            $n++; $c += $1; $d += $2; $f += $3 }
        END { printf "%d %d %d %d\n", $n, $c, $d, $f }' "$elog")
    errs=$(grep -cE '\[(error|crit|alert|emerg)\]' "$elog" || true)
    full=$(grep -c 'queue full' "$elog" || true)
    refused=$(grep -c 'refused' "$elog" || true)
    profiles=$("$OMNICTL" --store "${STORE_DIR[$size]}" stat | perl -ne 'print $1 if /"profiles":\s*(\d+)/')
    echo "| $cfg | ${OMNI_REQS[$cfg]:-0} | $committed | $dropped | $failed | $exits | $full | $errs | $refused | $profiles |" >> "$B/data/health.md"
    if [ "$dropped" != 0 ] || [ "$failed" != 0 ] || [ "$full" != 0 ]; then
        log "$cfg: WARNING: writer dropped $dropped, failed $failed touchpoint(s)"
        # Which runs the drops happened in: the writer logs a "queue full"
        # line at the 1st, 10001st, 20001st ... drop.
        perl -MTime::Local -e '
            my ($cfg, $tl, $elog) = @ARGV;
            open(my $t, "<", $tl) or exit;
            # Only requests to "omni on" arms queue touches.
            my @w = grep { $_->[0] eq $cfg && $_->[3] =~ /^(B|F|new|Bc|Bp)$/ }
                    map { chomp; [split /\t/] } <$t>;
            open(my $e, "<", $elog) or exit;
            my %n;
            while (<$e>) {
                next unless m{^(\d+)/(\d+)/(\d+) (\d+):(\d+):(\d+) .*queue full};
                my $ts = timelocal($6, $5, $4, $3, $2 - 1, $1);
                my ($r) = grep { $ts >= $_->[4] && $ts <= $_->[5] + 1 } @w;
                $n{$r ? ($r->[1] eq "warm" ? "warm-up $r->[3]"
                                           : "$r->[1] round $r->[2] $r->[3]")
                      : "between runs"}++;
            }
            print join(", ", map { "$_: $n{$_}" } sort keys %n);
        ' "$cfg" "$B/data/timeline.tsv" "$elog" > "$B/data/drops-$cfg.txt"
        log "$cfg: \"queue full\" lines by run: $(cat "$B/data/drops-$cfg.txt")"
        echo "- $cfg: \"queue full\" lines (one per 10,000 drops) by run: $(cat "$B/data/drops-$cfg.txt")" >> "$B/data/drops.md"
    fi
    # The measured arms during which touches were dropped.
    local darms=
    if [ -s "$B/data/drops-$cfg.txt" ]; then
        # (no measured arm at all when only warm-ups dropped: grep finds
        # nothing, which must not end the script under pipefail)
        darms=$( { grep -oE 'round [0-9]+ (B|F|new|Bc|Bp):' \
                       "$B/data/drops-$cfg.txt" || true; } \
                | awk '{ sub(":", "", $3); print $3 }' | sort -u | paste -sd, -)
    fi
    # Arm C's writer: its "omnic: exit:" lines; every touch it was given
    # must be in its store too, or C did less than B's work.
    if [ -n "${C_REQS[$cfg]:-}" ]; then
        local cc cd cf
        read -r cc cd cf < <(perl -ne '
            if (/omnic: exit: (\d+) touches committed, (\d+) dropped, (\d+) failed/) {
                $c += $1; $d += $2; $f += $3 }
            END { printf "%d %d %d\n", $c, $d, $f }' "$elog")
        echo "- $cfg: arm C's writer committed $cc touches for ${C_REQS[$cfg]} requests answered, dropped $cd, failed $cf" >> "$B/data/c-health.md"
        log "$cfg: arm C's writer: $cc committed, $cd dropped, $cf failed for ${C_REQS[$cfg]} requests"
        if [ "$cd" != 0 ] || [ "$cf" != 0 ] || [ "$cc" -lt "${C_REQS[$cfg]}" ]; then
            HEALTH_FAIL="$HEALTH_FAIL $cfg: arm C committed $cc touches for ${C_REQS[$cfg]} requests ($cd dropped, $cf failed);"
        fi
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$cfg" "${OMNI_REQS[$cfg]:-0}" \
        "$committed" "$dropped" "$failed" "$darms" >> "$B/data/health.tsv"
    if [ "$errs" != 0 ]; then
        log "$cfg: WARNING: $errs error line(s) in $elog:"
        grep -E '\[(error|crit|alert|emerg)\]' "$elog" | head -5 >&2
    fi
    log "$cfg: writer: $committed committed, $dropped dropped, $failed failed ($exits worker exit line(s)); ${OMNI_REQS[$cfg]:-0} requests to omni-on arms"
    # GUIDE P7: every touch recorded, at any worker count.  A check that
    # fails the bench (after the report is written), not a remark.
    if [ "$dropped" != 0 ] || [ "$failed" != 0 ]; then
        HEALTH_FAIL="$HEALTH_FAIL $cfg: $dropped touch(es) dropped, $failed failed;"
    fi
    if [ "$committed" -lt "${OMNI_REQS[$cfg]:-0}" ]; then
        HEALTH_FAIL="$HEALTH_FAIL $cfg: $committed touchpoints committed for ${OMNI_REQS[$cfg]:-0} requests answered;"
    fi
}
HEALTH_FAIL=

run_config() {   # cfg workers size reserve_index "core arms" new_phase(0|1)
    local cfg=$1 workers=$2 size=$3 k=$4 arms=$5 newphase=$6 r arm
    COOKIE_FILE=${STORE_COOKIES[$size]}
    CUR_STORE=${STORE_DIR[$size]}
    CUR_ARMS=$arms
    write_conf "$cfg" "$workers" "$size" "$arms"
    start_nginx "$cfg" "$workers"
    verify "$cfg" "$size" "$k"
    case " $arms " in
        *" C "*) [ "$COMPARE" -gt 0 ] && has_arm B && compare_bc "$cfg" ;;
    esac

    log "$cfg: warm-up ($WARM s per arm)"
    for arm in $arms; do wrk_run "$cfg" warm 0 "$arm" "$WARM" 0; done

    for r in $(seq "$RUNS"); do
        for arm in $arms; do wrk_run "$cfg" core "$r" "$arm" "$DUR" 1; done
    done
    case " $arms " in *" B "*|*" Bc "*|*" Bp "*) feed_check "$cfg" "$size" B ;; esac
    case " $arms " in *" C "*) feed_check "$cfg" "$size" C ;; esac

    # New visitors add one profile per request: measured after the other
    # arms so that the store size those saw is the nominal one, interleaved
    # with A of their own phase.
    if [ "$newphase" = 1 ] && has_arm new; then
        wrk_run "$cfg" warm 0 new "$WARM" 0
        for r in $(seq "$RUNS"); do
            for arm in A new; do wrk_run "$cfg" new "$r" "$arm" "$DUR" 1; done
        done
    fi

    stop_nginx
    health "$cfg" "$size"
}

# The events arm (GUIDE P7: "a durable event's p99 is bounded by one
# fsync"): 1 worker, wrk POSTing one client event per request at each of
# EVENTS_CONNS connections, interleaved rounds; before it, the fdatasync()
# latency of the store's filesystem.
run_events() {   # cfg size
    local cfg=$1 size=$2 r c line cookie mid seq0 hdr body elog
    COOKIE_FILE=${STORE_COOKIES[$size]}
    CUR_STORE=${STORE_DIR[$size]}
    elog=$B/logs/$cfg.error.log
    write_conf "$cfg" 1 "$size"
    start_nginx "$cfg" 1

    # A bare fdatasync() on the store's filesystem, nginx idle.
    taskset -c "$NGINX_CPU" "$WRITER_BENCH" --fsync "$CUR_STORE" \
        --count "$FSYNC_COUNT" > "$B/data/fsync.txt" \
        || die "writer-bench --fsync failed"
    log "$cfg: fdatasync on the store's filesystem: $(tr '\n' ' ' < "$B/data/fsync.txt")"

    # One event by curl: 200, accepted, and in the feed as the client's.
    cookie=$(head -1 "$COOKIE_FILE" | cut -d' ' -f2)
    mid="verify-$(date +%s%N)"
    hdr=$B/raw/$cfg.verify.hdr
    body=$B/raw/$cfg.verify.body
    seq0=$(feed_seq "$CUR_STORE")
    curl -sS --max-time 5 -o "$body" -D "$hdr" -H "Cookie: omni=$cookie" \
        -H "User-Agent: $BROWSER_UA" -H 'Content-Type: application/json' \
        --data-binary "{\"type\":\"track\",\"event\":\"Product Added\",\"messageId\":\"$mid\",\"properties\":{\"sku\":\"JKT-7\",\"price\":189,\"quantity\":1}}" \
        "$(arm_url ev1)" || die "$cfg: curl to the events location failed"
    grep -q '^HTTP/1.1 200' "$hdr" && grep -q '"status":"accepted"' "$body" \
        || { cat "$hdr" "$body" >&2; die "$cfg: the verification event was not accepted"; }
    "$OMNICTL" --store "$CUR_STORE" tail --after "$seq0" \
        | grep -q "\"messageId\":\"$mid\".*\"source\":\"client\"" \
        || die "$cfg: the event answered 200 is not in the feed right after"
    log "$cfg: verified: a client event answered 200 accepted is in the feed"

    log "$cfg: warm-up ($WARM s per level)"
    for c in $EVENTS_CONNS; do wrk_run "$cfg" warm 0 "ev$c" "$WARM" 0; done
    for r in $(seq "$RUNS"); do
        for c in $EVENTS_CONNS; do wrk_run "$cfg" events "$r" "ev$c" "$DUR" 1; done
    done

    stop_nginx
    line=$(grep -h 'writer exit' "$elog" | tail -1 | sed 's/.*omni: //; s/,* while.*//')
    log "$cfg: $line"
    echo "$line" > "$B/data/events-writer.txt"
    if grep -qE '\[(error|crit|alert|emerg)\]' "$elog"; then
        grep -E '\[(error|crit|alert|emerg)\]' "$elog" | head -5 >&2
        die "$cfg: error lines in $elog"
    fi
}

# ---------------------------------------------------------------- runs

echo "| store | profiles | import time | profiles/s | on disk | map_size |" > "$B/data/imports.md.head"
echo "|---|---:|---:|---:|---:|---|" >> "$B/data/imports.md.head"
echo "| config | requests to omni-on arms | writer committed | dropped | failed | worker exit lines | \"queue full\" lines | error lines | \"refused\" lines | profiles after |" > "$B/data/health.md"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" >> "$B/data/health.md"

CONFIGS=
for s in $SIZE_LIST; do
    # W2_SIZE may have been added only for the 2-worker run.
    if echo "$SIZES" | tr ' ' '\n' | grep -qx -- "$s"; then
        if [ "$s" = "$SMALLEST" ]; then
            run_config "1w-$s" 1 "$s" 0 "$(pick_arms "A A' F B off C Ac A'c Bc Ap Bp")" 1
        else
            run_config "1w-$s" 1 "$s" 0 "$(pick_arms "A A' F B C Ac A'c Bc Ap Bp")" 0
        fi
        CONFIGS="$CONFIGS 1w-$s"
    fi
done
if [ "$W2" = 1 ]; then
    run_config "2w-$W2_SIZE" 2 "$W2_SIZE" 1 "$(pick_arms "A A' F B")" 0
    CONFIGS="$CONFIGS 2w-$W2_SIZE"
fi
if [ "$EVENTS" = 1 ]; then
    run_events "ev-$EVENTS_SIZE" "$EVENTS_SIZE"
fi
if [ "$WRITER" = 1 ]; then
    log "the writer outside nginx: bench/writer.sh"
    QUICK=$QUICK WRITER_OUT=$B/writer OMNICTL=$OMNICTL WRITER_BENCH=$WRITER_BENCH \
        WRITER_CPU=$NGINX_CPU "$BENCH/writer.sh" > "$B/data/writer.md" \
        || die "bench/writer.sh failed"
fi

# ---------------------------------------------------------------- report

T1=$(date +%s)
{
    echo "# ngx_omni_module benchmark results"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && [ -n "$(git status --porcelain -uno 2>/dev/null)" ] && echo ' (with uncommitted changes)')"
    echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), kernel $(uname -r)"
    echo "- module: build/ngx_http_omni_module.so, sha256 $MODULE_SUM… (snapshot in build/bench/bin)"
    echo "- $("$NGINX" -v 2>&1), $({ wrk --version 2>&1 || true; } | head -1 | awk '{print $1, $2}')"
    echo "- nginx worker(s) pinned to CPU $NGINX_CPU (2 workers: CPUs 0 and 1), wrk -t1 -c$CONNS pinned to CPU $WRK_CPU, loopback"
    echo "- $RUNS interleaved round(s) of ${DUR} s per arm after ${WARM} s of warm-up per arm; QUICK=$QUICK; total bench time $((T1 - T0)) s"
    echo "- noise control: runs during which other processes took more than ${NOISE_MAX}% of a CPU were repeated once: $REPEATED repeated, $NOISY_KEPT noisy run(s) kept (see the \"other CPU\" column); ${QUIET_WAITED} s spent waiting for an idle machine"
    echo "- every request carries one of $COOKIES signed cookies for random existing profiles outside the global holdout${HOLDOUT:+ ($HOLDOUT%)} (the \"new visitor\" arm: the same bytes under another cookie name), a browser User-Agent and X-Forwarded-For (realip) from $(wc -l < "$IPS_FILE") addresses"
    echo "- arm B: $RULES rules ($SEED_RULES seed rules of rules/, $((RULES - SEED_RULES)) generated by bench/gen-rules.pl), omni_geoip with a generated GeoIP2-City database of $GEO_NETS networks"
    echo
    perl "$BENCH/report.pl" "$RUNS_TSV" "$SMALLEST" "$LARGEST" "$NOISE_MAX" "$B/data/health.tsv"
    echo
    perl "$BENCH/report-p7.pl" "$RUNS_TSV" "$B/data/health.tsv" "$EVENTS_TSV" \
        "$B/data/fsync.txt" "$B/data/writer.md" "$NOISE_MAX" "$CONNS" \
        "$B/data/events-writer.txt"
    echo
    echo "## Store import (omnictl import)"
    echo
    cat "$B/data/imports.md.head" "$B/data/imports.md"
    echo
    echo "## Writer health (after nginx -s quit)"
    echo
    cat "$B/data/health.md"
    echo
    cat "$B/data/feed.md" 2>/dev/null || true
    echo
    if [ -s "$B/data/compare.md" ] || [ -s "$B/data/c-health.md" ]; then
        echo "## Arm C (the OpenResty peer): correctness and touches"
        echo
        cat "$B/data/compare.md" "$B/data/c-health.md" 2>/dev/null
        echo
    fi
    [ -s "$B/data/drops.md" ] && { cat "$B/data/drops.md"; echo; }
    echo "\"writer committed\" is the sum of the workers' \"writer exit: N committed\" lines (the batch in flight and the queue flushed at exit included)."
} > "$B/results.md"
rm -f "$B/data/imports.md" "$B/data/imports.md.head" "$B/data/health.md"

cat "$B/results.md"
log "results: $B/results.md, raw runs: $RUNS_TSV ($((T1 - T0)) s)"
[ -z "$HEALTH_FAIL" ] || die "touchpoints not all recorded:$HEALTH_FAIL"
log "every touch recorded in every configuration (1 and 2 workers): the drop counter is 0"
