#!/usr/bin/env bash
#
# The writer's committed touchpoints per second outside nginx (GUIDE P7:
# "the writer commits at least 200k records/s"): bench/writer-bench.c on
# stores of WRITER_SIZES returning visitors, one table row per store size
# and batch size.  Called by bench/run.sh (WRITER=0 skips it); runs alone:
#
#   ./bench/writer.sh                  # 1k, 100k, 1M profiles
#   QUICK=1 ./bench/writer.sh          # 1k and 100k, one round (~10 s)
#
# Environment:
#   WRITER_SIZES="1k 100k 1M"   store sizes              (QUICK: "1k 100k")
#   WRITER_BATCHES="100 1000 10000"  touches per write transaction
#   WRITER_RECORDS=10000  touches per run, at least 5 batches (QUICK: 5000)
#   WRITER_RUNS=5         interleaved rounds, after one warm-up round
#                         (QUICK: 1, no warm-up)
#   WRITER_TP_MAX=1000000 the retention limit (the module's default); the
#                         touchpoint log is filled to it first, so that every
#                         batch prunes as much as it appends (steady state)
#   WRITER_CPU=0          the CPU writer-bench is pinned to
#   WRITER_MODES="batch log fold"  how touches are written:
#                         batch: every batch folds its own touches into
#                                the profiles (fold=0; the old writer)
#                         log:   log first, never fold: the log's own cost
#                         fold:  log first, one fold every 30,000 touches
#                                (fold=1s at 30k touches/s) among 10,000
#                                active visitors (the nginx bench's cookies)
#   WRITER_OUT=build/bench/writer   stores, raw output and writer.md
#
# Output: markdown on stdout and in $WRITER_OUT/writer.md.  The stores
# (about 0.7 GB each with a full log) are removed at the end.

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
OUT=${WRITER_OUT:-$ROOT/build/bench/writer}
OMNICTL=${OMNICTL:-$ROOT/build/omnictl}
WB=${WRITER_BENCH:-}
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    SIZES=${WRITER_SIZES:-1k 100k}; RECORDS=${WRITER_RECORDS:-5000}
    WRUNS=${WRITER_RUNS:-1}; WARMUP=0
else
    SIZES=${WRITER_SIZES:-1k 100k 1M}; RECORDS=${WRITER_RECORDS:-10000}
    WRUNS=${WRITER_RUNS:-5}; WARMUP=1
fi
BATCHES=${WRITER_BATCHES:-100 1000 10000}
TP_MAX=${WRITER_TP_MAX:-1000000}
CPU=${WRITER_CPU:-0}
CLK_TCK=$(getconf CLK_TCK)

die() { echo "writer: FAIL: $*" >&2; exit 1; }
log() { echo "writer: $*" >&2; }

size_n() {
    case $1 in
        *k|*K) echo $(( ${1%?} * 1000 )) ;;
        *m|*M) echo $(( ${1%?} * 1000000 )) ;;
        *[!0-9]*|'') die "bad size \"$1\"" ;;
        *) echo "$1" ;;
    esac
}

[ -x "$OMNICTL" ] || die "$OMNICTL missing: make omnictl"
if [ -z "$WB" ]; then
    # Linked against the core library as it is built (make it first).
    [ -f "$ROOT/build/libomnicore.a" ] || die "build/libomnicore.a missing: make"
    make -s -C "$ROOT" -o "$ROOT/build/libomnicore.a" -W bench/writer-bench.c \
        "$ROOT/build/writer-bench" >&2 \
        || die "cannot build build/writer-bench (make writer-bench)"
    WB=$ROOT/build/writer-bench
fi
[ -x "$WB" ] || die "$WB missing: make writer-bench"

rm -rf "$OUT"
mkdir -p "$OUT"
T0=$(date +%s)

busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

rows=$OUT/rows.md
: > "$rows"
warm=()
[ "$WARMUP" = 1 ] || warm=(--no-warmup)

for s in $SIZES; do
    n=$(size_n "$s")
    st=$OUT/store-$s
    log "store $s: $n returning visitors (profiles with their cookie alias)"
    perl "$BENCH/gen-profiles.pl" --aliases "$n" > "$OUT/profiles.ndjson"
    "$OMNICTL" --store "$st" --map-size 8g stat --create > /dev/null \
        || die "omnictl stat --create failed"
    "$OMNICTL" --store "$st" --map-size 8g import "$OUT/profiles.ndjson" \
        > "$OUT/import-$s.log" 2>&1 \
        || { cat "$OUT/import-$s.log" >&2; die "import of $s profiles failed"; }
    rm -f "$OUT/profiles.ndjson"

    # Whole-machine busy time during the run, minus writer-bench's own CPU
    # (the kernel's block-device work in softirqs and kworkers included).
    for mode in ${WRITER_MODES:-batch log fold}; do
        case $mode in
            batch) margs=(--batches "$(echo $BATCHES | tr ' ' ',')") ;;
            log)   margs=(--batches "$(echo $BATCHES | tr ' ' ',')" --no-fold) ;;
            fold)  margs=(--batches 1000 --fold 30000 --active 10000)
                   [ "$RECORDS" -ge 60000 ] || margs+=(--records 60000) ;;
            *) die "unknown WRITER_MODES entry \"$mode\"" ;;
        esac
        b0=$(busy_ticks)
        TIMEFORMAT='%3R %3U %3S'
        { time taskset -c "$CPU" "$WB" --profiles "$n" --records "$RECORDS" \
              --runs "$WRUNS" --tp-max "$TP_MAX" --label "$s/$mode" \
              "${warm[@]}" "${margs[@]}" "$st" \
              > "$OUT/rows-$s.md" 2> "$OUT/raw-$s.txt" ; } 2> "$OUT/time-$s.txt" \
            || { cat "$OUT/raw-$s.txt" >&2; die "writer-bench failed on the $s store ($mode)"; }
        b1=$(busy_ticks)
        read -r real user sys < "$OUT/time-$s.txt"
        other=$(awk -v b="$((b1 - b0))" -v t="$CLK_TCK" -v r="$real" -v u="$user" -v s="$sys" \
                'BEGIN { o = (b / t - u - s) / r * 100; if (o < 0) o = 0; printf "%.0f", o }')
        grep -h '^writer-bench' "$OUT/raw-$s.txt" >&2 || true
        log "store $s ($mode): $(tr '\n' ' ' < "$OUT/rows-$s.md" | sed 's/  */ /g' | cut -c1-400)"
        log "store $s ($mode): ${real}s, other CPU ${other}% of one CPU"
        sed "s/\$/ ${other}% |/" "$OUT/rows-$s.md" >> "$rows"
    done
    rm -rf "$st"
done

T1=$(date +%s)
{
    echo "Touches of returning visitors (profiles as in the nginx bench, each with its cookie alias), picked uniformly over the store's profiles (mode fold: among 10,000 of them), with campaigns, rules, path, referrer for half, utm_* for a tenth and a country; replayed through omni_batch_apply(), the module writer's own call, on a store opened like a worker's (journaled: commits not synced, a checkpoint a second with its sync counted), the touchpoint log at its limit (tp_max $TP_MAX: every batch prunes as many as it appends). Modes: **batch** every batch folds its touches into the profiles (omni_store fold=0, the writer before log-first); **log** log first, the touchpoints alone (alias read, JSON line, append, retention); **fold** log first with one fold every 30,000 touches (fold=1s at 30,000 touches/s) of 10,000 active visitors, the fold's cost included. $WRUNS round(s)$([ "$WARMUP" = 1 ] && echo " after a warm-up round"), batch sizes interleaved, writer-bench pinned to CPU $CPU; $((T1 - T0)) s in all."
    echo
    echo "| profiles/mode | batch | records/s (median) | range | µs per record | CPU µs per record | commit ms per batch | commit share | runs | other CPU |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    cat "$rows"
    echo
    echo "\"commit\": omni_wtxn_commit(), i.e. LMDB writing the dirty pages (pwrite) and fdatasync; \"other CPU\": busy CPU time on the machine outside writer-bench, in % of one CPU (the block layer's own work, in softirqs and kworkers, counts there too)."
} > "$OUT/writer.md"
rm -f "$rows"
cat "$OUT/writer.md"
