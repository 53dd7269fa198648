#!/usr/bin/env bash
#
# GUIDE P5 for issue 10: the latency the module adds at half of plain
# nginx's maximum rate, on the configuration, data and store bench/run.sh
# leaves in build/bench (run it first): 1 worker pinned to CPU 0, 1k
# profiles, arm A (the static page, omni off) and arm B (the full path).
#
# A's maximum is measured with wrk (-t1 -c32, DUR seconds); then A and B
# are each offered half of it by bench/pace.c, an open-loop client that
# sends requests at evenly spaced times on a pool of CONNS keep-alive
# connections and measures each answer from the time it was due (a
# request waiting for a free connection counts its wait), ROUNDS
# interleaved rounds of DUR seconds, medians.  Targets: B's p50 at most
# A's + 15 us, B's p99 at most A's + 50 us.  The client's own time (one
# core, loopback) is in both arms alike.
#
#   ./bench/latency.sh              # about 2 minutes after bench/run.sh
#
# Environment: DUR=10, ROUNDS=3, CONNS=64, FRACTION=50 (% of A's maximum).
# Output: a markdown report on stdout and in build/bench/latency.md; exit
# status 1 when the bench cannot run or a run has errors.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
B=$ROOT/build/bench
DUR=${DUR:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
FRACTION=${FRACTION:-50}
CFG=${CFG:-1w-1k}
HOST=127.0.0.1
PORT_A=${PORT_BASE:-18480}
PORT_B=$((PORT_A + 1))
COOKIES=$B/data/cookies-1k.txt
IPS=$B/data/ips.txt
PACE=$ROOT/build/pace
OUT=$B/latency.md
MASTER=

die() { echo "latency: FAIL: $*" >&2; exit 1; }
log() { echo "latency: $*" >&2; }
. "$BENCH/lib.sh"

[ -f "$B/conf/$CFG.conf" ] && [ -f "$COOKIES" ] && [ -f "$IPS" ] \
    || die "no $B/conf/$CFG.conf or its data: run bench/run.sh first"
command -v wrk > /dev/null || die "wrk not found (scripts/install-deps.sh)"
if [ ! -x "$PACE" ] || [ "$BENCH/pace.c" -nt "$PACE" ]; then
    ${CC:-cc} -O2 -Wall -o "$PACE" "$BENCH/pace.c" || die "cannot build $PACE"
fi


run_conf_start "$CFG" latency

wrk_rps() {   # URL SECONDS -> requests/s
    wrk_bench "$1" "$2" | awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "=");
        v[kv[1]] = kv[2] } } END { printf "%.0f", v["requests"] / v["duration_us"] * 1e6 }'
}

pace() {   # PORT PATH -> "p50 p90 p99 max rate late"
    local out
    out=$(taskset -c 1 "$PACE" "$HOST" "$1" "$2" "$RATE" "$DUR" "$CONNS" \
          "$COOKIES" "$IPS" 2>&1) || die "pace failed: $out"
    echo "$out" | grep '^PACE ' | awk '{ for (i = 2; i <= NF; i++) {
        split($i, kv, "="); v[kv[1]] = kv[2] } }
        END { print v["p50"], v["p90"], v["p99"], v["max"], v["rate"], v["late"] }'
}

median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# warm-up, then A's maximum
wrk_rps "http://$HOST:$PORT_A/a/page.html" 2 > /dev/null
wrk_rps "http://$HOST:$PORT_B/b/page.html" 2 > /dev/null
MAX=$(wrk_rps "http://$HOST:$PORT_A/a/page.html" "$DUR")
RATE=$((MAX * FRACTION / 100))
log "A's maximum: $MAX requests/s; offered to A and B: $RATE requests/s"

rows=; a50s=; a99s=; b50s=; b99s=
for r in $(seq "$ROUNDS"); do
    read -r a50 a90 a99 amax arate alate < <(pace "$PORT_A" /a/page.html)
    read -r b50 b90 b99 bmax brate blate < <(pace "$PORT_B" /b/page.html)
    log "round $r: A p50 $a50 p99 $a99 us ($arate/s, $alate late); B p50 $b50 p99 $b99 us ($brate/s, $blate late)"
    rows="$rows| $r | $arate | $a50 | $a90 | $a99 | $amax | $brate | $b50 | $b90 | $b99 | $bmax |
"
    a50s="$a50s $a50"; a99s="$a99s $a99"; b50s="$b50s $b50"; b99s="$b99s $b99"
done

A50=$(echo "$a50s" | median); A99=$(echo "$a99s" | median)
B50=$(echo "$b50s" | median); B99=$(echo "$b99s" | median)
D50=$((B50 - A50)); D99=$((B99 - A99))
verdict() { if [ "$1" -le "$2" ]; then echo met; else echo "NOT met: $(( $1 - $2 )) µs over"; fi; }

{
    echo "## Latency at $FRACTION% of A's maximum rate ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo
    echo "\`bench/latency.sh\` on bench/run.sh's $CFG configuration (1 worker on CPU 0, the client on CPU 1, 1k profiles). A's maximum (wrk -t1 -c32, $DUR s): **$MAX** requests/s. Then A and B were each offered **$RATE** requests/s by bench/pace.c (open loop, evenly spaced, $CONNS keep-alive connections, latency from each request's due time), $ROUNDS interleaved rounds of $DUR s (µs):"
    echo
    echo "| round | A req/s | A p50 | A p90 | A p99 | A max | B req/s | B p50 | B p90 | B p99 | B max |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s' "$rows"
    echo
    echo "| target (medians of the rounds) | measured | status |"
    echo "|---|---|---|"
    echo "| P5: B's p50 ≤ A's + 15 µs | A $A50, B $B50: +$D50 µs | $(verdict "$D50" 15) |"
    echo "| P5: B's p99 ≤ A's + 50 µs | A $A99, B $B99: +$D99 µs | $(verdict "$D99" 50) |"
} | tee "$OUT"
