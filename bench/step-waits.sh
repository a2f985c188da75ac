#!/bin/sh
# bench/step-waits.sh: the per-step overhead of a small training step, two
# builds of recur against each other (issue 11: one host wait per step).
# Not a timed test: run it by hand, preferably on a quiet machine, and copy
# the figures into docs/performance.md.
#
#   bench/step-waits.sh BEFORE AFTER [ROUNDS] [STEPS]
#
# BEFORE, AFTER: build directories (each with tools/recur and plugins/).
# A small classify job (hidden 32, embedding 16, batch 8, lengths 2..12: a
# step is mostly overhead) runs ROUNDS times (default 7) per build, the two
# builds alternating so that the machine's load falls on both alike; prints
# every run's tokens/s, the median of each and their ratio, and the load
# average before and after. RECUR_DEVICE passes through (default opencl).
set -eu
before=$1
after=$2
rounds=${3:-7}
steps=${4:-1000}
: "${RECUR_DEVICE:=opencl}"
export RECUR_DEVICE
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT INT TERM

run() {
    RECUR_PLUGIN_PATH="$(cd "$1" && pwd)/plugins" "$1/tools/recur" train --task classify --hidden 32 --embed 16 \
        --batch 8 --max-len 12 --steps "$steps" --eval-every 100000 --checkpoint-every 100000 --val-size 50 \
        --quiet --out "$out/run" >"$out/log" 2>&1 || { cat "$out/log" >&2; exit 2; }
    sed -n 's/.* \([0-9][0-9]*\) tokens\/s$/\1/p' "$out/log" | tail -n 1
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

echo "CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(nproc) CPUs"
"$after/tools/recur" devices | grep -i "^$RECUR_DEVICE" | head -n 3 || true
echo "RECUR_DEVICE=$RECUR_DEVICE, $rounds rounds of $steps steps"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
b= a=
i=0
while [ "$i" -lt "$rounds" ]; do
    x=$(run "$before")
    y=$(run "$after")
    echo "round $((i + 1)): before $x, after $y tokens/s"
    b="$b $x" a="$a $y"
    i=$((i + 1))
done
mb=$(echo "$b" | median)
ma=$(echo "$a" | median)
echo "median: before $mb, after $ma tokens/s; after/before $(awk -v a="$ma" -v b="$mb" 'BEGIN {printf "%.2f", a / b}')"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
