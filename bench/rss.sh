#!/usr/bin/env bash
#
# Issue 10's "worker RSS flat over 1M requests" (GUIDE P8), on the
# configuration, data and store bench/run.sh leaves in build/bench (run
# it first): 1 worker pinned to CPU 0, 1k profiles, arm B (the full path)
# at full load (wrk -t1 -c32 on CPU 1) in chunks of 5 s until REQUESTS
# (1,000,000) requests are answered, the worker's memory read after each
# chunk from /proc/PID/status:
#
#   RssAnon   the worker's private memory (heap, pools, caches): what must
#             stay flat; flat when it grows by at most 1 MiB after the
#             first chunk;
#   RssFile   file-backed pages mapped (LMDB's data file, read zero-copy):
#             grows with the touchpoint log until retention (tp_max)
#             caps it, and is the page cache, not the worker's own;
#   RssShmem  the shared zones (queue, activity table, metrics).
#
#   ./bench/rss.sh                  # about 30 s after bench/run.sh
#
# Output: a markdown report on stdout and in build/bench/rss.md; exit
# status 1 when the bench cannot run or wrk sees errors.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
B=$ROOT/build/bench
REQUESTS=${REQUESTS:-1000000}
CFG=${CFG:-1w-1k}
URL=http://127.0.0.1:$(( ${PORT_BASE:-18480} + 1 ))/b/page.html
COOKIES=$B/data/cookies-1k.txt
IPS=$B/data/ips.txt
OUT=$B/rss.md
MASTER=

die() { echo "rss: FAIL: $*" >&2; exit 1; }
log() { echo "rss: $*" >&2; }
. "$BENCH/lib.sh"

[ -f "$B/conf/$CFG.conf" ] && [ -f "$COOKIES" ] && [ -f "$IPS" ] \
    || die "no $B/conf/$CFG.conf or its data: run bench/run.sh first"
command -v wrk > /dev/null || die "wrk not found (scripts/install-deps.sh)"


run_conf_start "$CFG" rss

mem() { awk '/^(RssAnon|RssFile|RssShmem):/ { printf "%s ", $2 }' \
            "/proc/$WORKER/status"; echo; }

done_reqs=0; chunks=0; rows=
while [ "$done_reqs" -lt "$REQUESTS" ]; do
    line=$(wrk_bench "$URL" 5)
    n=$(echo "$line" | tr ' ' '\n' | sed -n 's/^requests=//p')
    done_reqs=$((done_reqs + n))
    chunks=$((chunks + 1))
    read -r anon file shm < <(mem)
    [ "$chunks" = 1 ] && { anon0=$anon; file0=$file; }
    rows="$rows| $chunks | $done_reqs | $anon | $file | $shm |
"
    log "chunk $chunks: $done_reqs requests, RssAnon $anon kB, RssFile $file kB, RssShmem $shm kB"
done

grow=$((anon - anon0))
verdict=$([ "$grow" -le 1024 ] && echo met || echo "NOT met: grew $grow kB")

{
    echo "## Worker memory over $done_reqs requests of arm B ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo
    echo "\`bench/rss.sh\` on bench/run.sh's $CFG configuration: arm B at full load (wrk -t1 -c32), chunks of 5 s, the worker's /proc status after each (kB)."
    echo
    echo "| chunk | requests so far | RssAnon (private) | RssFile (LMDB map) | RssShmem (zones) |"
    echo "|---:|---:|---:|---:|---:|"
    printf '%s' "$rows"
    echo
    echo "| target | measured | status |"
    echo "|---|---|---|"
    echo "| worker RSS flat over $REQUESTS requests: private memory (RssAnon) grows by at most 1 MiB after the first chunk | $anon0 → $anon kB (+$grow kB); file-backed $file0 → $file kB | $verdict |"
} | tee "$OUT"
