#!/bin/sh
# bench/threads.sh: the default training job's tokens/s on an idle machine and
# with one busy process per CPU competing (issue 12). Not a timed test: run it
# by hand on a machine nothing else uses and copy the figures into
# docs/performance.md.
#
#   bench/threads.sh [RECUR] [STEPS] [BASELINE]
#
# RECUR: the recur tool (default build/tools/recur); STEPS: training steps per
# run (default 30). Prints tokens/s idle and contended and their ratio, and
# exits 1 when the contended run keeps less than 35% of the idle throughput.
# BASELINE: another build's recur tool; then, idle first, PAIRS (default 8)
# alternating runs of RECUR and BASELINE, each pair's tokens/s ratio and the
# median ratio ("idle throughput must not drop": a median below 1 says RECUR
# is slower; each pair's ratio shows the machine's noise).
# Extra environment (RECUR_THREADS, RECUR_DEVICE, OMP_*, PAIRS) passes through.
set -eu
recur=${1:-build/tools/recur}
steps=${2:-30}
out=$(mktemp -d)
pids=
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    rm -rf "$out"
}
trap cleanup EXIT INT TERM

# tokens/s of one short run of the default job (--task lm), from its last line.
run() {
    "$recur" train --steps "$steps" --eval-every 100000 --checkpoint-every 100000 --samples 0 --quiet \
        --out "$out/run" >"$out/log" 2>&1 || { cat "$out/log" >&2; exit 2; }
    sed -n 's/.* \([0-9][0-9]*\) tokens\/s$/\1/p' "$out/log" | tail -n 1
}

cpus=$(nproc)
echo "CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $cpus CPUs"
"$recur" devices | grep -E '^(cpu |threads:)' || true
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (others' work counts as load: idle needs a quiet machine)"
if [ -n "${3:-}" ]; then
    base=$3
    ratios=
    i=0
    while [ "$i" -lt "${PAIRS:-8}" ]; do
        a=$(run)
        b=$(recur=$base run)
        r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')
        echo "pair $((i + 1)): $a against $b tokens/s, ratio $r (load $(cut -d' ' -f1 /proc/loadavg))"
        ratios="$ratios $r"
        i=$((i + 1))
    done
    echo "idle, $recur / $base: median ratio $(printf '%s\n' $ratios | sort -n | awk '{ v[NR] = $1 } END {
        printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }') over ${PAIRS:-8} pairs"
fi
idle=$(run)
echo "idle:      $idle tokens/s"
i=0
while [ "$i" -lt "$cpus" ]; do
    sh -c 'while :; do :; done' &
    pids="$pids $!"
    i=$((i + 1))
done
busy=$(run)
echo "contended: $busy tokens/s ($cpus busy processes)"
awk -v b="$busy" -v i="$idle" 'BEGIN {
    r = b / i
    printf "kept:      %.0f%% of idle (needs 35%%)\n", 100 * r
    exit r < 0.35 }'
