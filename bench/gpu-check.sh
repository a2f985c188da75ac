#!/usr/bin/env bash
# gpu-check.sh: the one-shot OpenCL check of a GPU machine, as one script.
# From the repository root:
#
#   bash bench/gpu-check.sh [--device SELECTOR] [--tiny] [--out DIR] [--build DIR]
#                           [--prebuilt] [--step-timeout S]
#
#   --device SEL  the OpenCL device to check, a RECUR_DEVICE selector
#                 (default opencl::gpu, the first GPU; Oclgrind is never
#                 chosen unless named: opencl:oclgrind)
#   --tiny        tiny sizes: for CI on PoCL and Oclgrind (a few minutes),
#                 so that the first real GPU run does not fail on a typo
#   --out DIR     where the report and the runs go (default gpu-check-out)
#   --build DIR   the build directory it configures (default build-gpu-check)
#   --prebuilt    use --build DIR as it is: no configure, no build (a machine
#                 with no compiler or packages, given a build made elsewhere
#                 at this same path with -Dopencl=enabled -Dtests=true
#                 -Dbench=true, and its libraries on LD_LIBRARY_PATH)
#   --step-timeout S  stop any one step after S seconds (it fails, exit
#                 124), so that a slow step cannot use up a time-boxed lease
#
# MESON names the meson command (default meson) that runs the suites.
#
# Steps: register the NVIDIA ICD when the driver's library is there but
# /etc/OpenCL/vendors/nvidia.icd is not (CUDA containers); configure with
# -Dopencl=enabled (a missing CLBlast or ICD loader fails here, by name) and
# build; list the devices; make the chosen device's implementation the only
# one the ICD loader sees (so every suite's "opencl" is that device); run
# every OpenCL suite (test-opencl, the clang link check, training kernels,
# model and net on OpenCL, conformance and PyTorch parity), gradcheck of
# every cell, the default training job (lm), 200 of its steps profiled
# (RECUR_CL_PROFILE=1) and the OpenCL benchmark on it;
# with PyTorch and a CUDA device, time nn.LSTM/nn.GRU on the bench's
# shapes as the peer. Each step's status and time go into DIR/gpu-check.txt;
# the script exits 1 if any step failed (every step runs, so one run gives
# the whole picture), 2 on a bad option.
set -euo pipefail

device=opencl::gpu tiny=0 out=gpu-check-out build=build-gpu-check prebuilt=0 step_timeout=0
while [ $# -gt 0 ]; do
    case $1 in
    --device) [ $# -ge 2 ] || { echo "gpu-check: --device needs a selector" >&2; exit 2; }; device=$2; shift 2 ;;
    --tiny) tiny=1; shift ;;
    --prebuilt) prebuilt=1; shift ;;
    --step-timeout)
        [ $# -ge 2 ] && [[ $2 =~ ^[1-9][0-9]{0,5}$ ]] || { echo "gpu-check: --step-timeout needs a whole number of seconds (1-999999)" >&2; exit 2; }
        step_timeout=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || { echo "gpu-check: --out needs a directory" >&2; exit 2; }; out=$2; shift 2 ;;
    --build) [ $# -ge 2 ] || { echo "gpu-check: --build needs a directory" >&2; exit 2; }; build=$2; shift 2 ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown option '$1' (--device SEL, --tiny, --out DIR, --build DIR, --prebuilt, --step-timeout S)" >&2; exit 2 ;;
    esac
done
case $device in opencl*) ;; *) echo "gpu-check: --device '$device' is not an OpenCL selector (opencl[:...])" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
root=$PWD
read -r -a meson <<< "${MESON:-meson}"
mkdir -p "$out"
out=$(cd "$out" && pwd)
report=$out/gpu-check.txt
: > "$report"
failed=()
simulator=0

say() { printf '%s\n' "$*" | tee -a "$report"; }
# step NAME CMD...: run, log to DIR/NAME.log, record status and time.
step() {
    local name=$1 t0 rc
    shift
    t0=$(date +%s.%N)
    set +e
    if [ "$step_timeout" -gt 0 ]; then timeout -k 5 "$step_timeout" "$@" > "$out/$name.log" 2>&1
    else "$@" > "$out/$name.log" 2>&1; fi
    rc=$?
    [ "$rc" -ne 124 ] || echo "gpu-check: stopped after --step-timeout $step_timeout s" >> "$out/$name.log"
    set -e
    local dt
    dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    # on Oclgrind: any report from its checks fails the step (tests/opencl/oclgrind-reports.awk)
    if [ $simulator = 1 ] && ! awk -f "$root/tests/opencl/oclgrind-reports.awk" "$out/$name.log" >> "$out/$name.log"; then
        [ $rc -ne 0 ] || rc=1
    fi
    if [ $rc -eq 0 ]; then
        say "ok     ${dt}s  $name"
    else
        say "FAILED ${dt}s  $name (exit $rc; log $out/$name.log):"
        tail -n 15 "$out/$name.log" | sed 's/^/       | /' | tee -a "$report"
        failed+=("$name")
    fi
    return 0
}
finish() {
    say ""
    if [ ${#failed[@]} -eq 0 ]; then say "RESULT: all steps passed on $device${chosen:+ ($chosen)}"; exit 0; fi
    say "RESULT: ${#failed[@]} step(s) failed: ${failed[*]}"
    exit 1
}

say "gpu-check $(date -u +%FT%TZ) on $(uname -n), --device $device$([ $tiny = 1 ] && echo ' --tiny')"
say "== machine"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "no nvidia-smi"; } | head -9 | tee -a "$report"
say "ICD files: $(ls /etc/OpenCL/vendors 2>/dev/null | tr '\n' ' ')OCL_ICD_VENDORS=${OCL_ICD_VENDORS:-unset}"

# 1. The NVIDIA ICD: CUDA containers ship libnvidia-opencl.so.1 without the
# vendors entry. As root, write /etc/OpenCL/vendors/nvidia.icd; otherwise a
# private vendors directory with the system's entries and NVIDIA's.
# Not every container lists the driver's folder to ldconfig: then look in the
# usual mounts, and the .icd names the library by its full path.
nvlib=$(ldconfig -p 2>/dev/null | awk '/libnvidia-opencl\.so\.1 / { print $NF; exit }')
nvname=libnvidia-opencl.so.1
if [ -z "$nvlib" ]; then
    for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/cuda/compat /usr/local/cuda/lib64; do
        if [ -e "$d/libnvidia-opencl.so.1" ]; then nvlib=$d/libnvidia-opencl.so.1 nvname=$nvlib; break; fi
    done
fi
if [ -n "$nvlib" ] && [ -z "${OCL_ICD_VENDORS:-}" ] && ! grep -qs nvidia /etc/OpenCL/vendors/*.icd; then
    if [ -w /etc/OpenCL/vendors ] || { [ "$(id -u)" = 0 ] && mkdir -p /etc/OpenCL/vendors; }; then
        echo "$nvname" > /etc/OpenCL/vendors/nvidia.icd
        say "registered the NVIDIA ICD: /etc/OpenCL/vendors/nvidia.icd -> $nvname ($nvlib)"
    else
        mkdir -p "$out/vendors"
        cp /etc/OpenCL/vendors/*.icd "$out/vendors/" 2>/dev/null || true
        echo "$nvname" > "$out/vendors/nvidia.icd"
        export OCL_ICD_VENDORS=$out/vendors
        say "registered the NVIDIA ICD in $OCL_ICD_VENDORS (no write access to /etc/OpenCL/vendors)"
    fi
elif [ -z "$nvlib" ]; then
    say "no libnvidia-opencl.so.1 (ldconfig, /usr/local/nvidia, /usr/lib*): no NVIDIA ICD to register"
fi

# 2. Configure with OpenCL required, build.
say "== build ($build)"
if [ $prebuilt = 1 ]; then
    if [ -x "$build/tools/recur" ] && [ -x "$build/tests/test-opencl" ]; then say "prebuilt: $build as it is"
    else say "--prebuilt: no $build/tools/recur or $build/tests/test-opencl (built with -Dopencl=enabled -Dtests=true?)"; failed+=(prebuilt); finish; fi
else
    if [ -d "$build" ]; then cfg=("${meson[@]}" configure "$build" -Dopencl=enabled -Dtests=true -Dbench=true)
    else cfg=("${meson[@]}" setup "$build" -Dopencl=enabled -Dtests=true -Dbench=true -Dbuildtype=release); fi
    step configure "${cfg[@]}"
    step build ninja -C "$build"
fi
[ ${#failed[@]} -eq 0 ] || finish
recur=$root/$build/tools/recur
export RECUR_PLUGIN_PATH=$root/$build/plugins RECUR_FIXTURES=$root/tests/fixtures/torch

# 3. The devices, and the chosen one.
say "== devices"
"$recur" devices 2>&1 | tee -a "$report" || true
chosen=$(RECUR_DEVICE=$device "$recur" devices 2>/dev/null | sed -n "s/^chosen now (RECUR_DEVICE=.*): //p")
row=$("$recur" devices 2>/dev/null | awk -v s="$chosen" '$1 == s' || true)
case $chosen in
opencl:*) say "chosen: $row" ;;
*) say "no OpenCL device for --device $device (chose '${chosen:-nothing}'): check the driver, the ICD files above"
   say "and 'RECUR_DEVICE=$device $recur devices'"
   failed+=(device); finish ;;
esac
# Only the chosen device's implementation, through a vendors directory with
# its one .icd (found by asking each registered ICD alone for the device).
name=$(printf '%s\n' "$row" | awk '{ for (i = 3; i <= NF && $i != "GPU," && $i != "CPU," && $i != "accelerator," && $i != "other,"; i++) printf "%s%s", (i > 3 ? " " : ""), $i }')
vdir=${OCL_ICD_VENDORS:-/etc/OpenCL/vendors}
if [ -d "$vdir" ]; then icds=("$vdir"/*.icd); else icds=("$vdir"); fi
mine=
for f in "${icds[@]}"; do
    [ -e "$f" ] || continue
    if OCL_ICD_VENDORS=$f "$recur" devices 2>/dev/null | grep -qF "$name"; then mine=$f; break; fi
done
if [ -n "$mine" ]; then
    mkdir -p "$out/only"
    rm -f "$out/only"/*.icd
    cp "$mine" "$out/only/"
    export OCL_ICD_VENDORS=$out/only
    sel=$(RECUR_DEVICE=opencl "$recur" devices 2>/dev/null | sed -n "s/^chosen now (RECUR_DEVICE=opencl): //p")
    say "the suites see only $(basename "$mine"); '$device' is '$sel' there"
    if [ "$sel" != opencl:0:0 ]; then
        say "note: '$name' is not its platform's first device; test-opencl runs on $sel, the default"
    fi
else
    sel=$chosen
    say "no single ICD file holds '$name'; the suites run with every ICD visible, on $sel"
fi
export RECUR_DEVICE=$sel RECUR_TEST_DEVICE=$sel RECUR_TEST_OPENCL=$sel
case $row in
*Oclgrind*) simulator=1; export OCLGRIND_CHECK_API=1 OCLGRIND_DATA_RACES=1
            say "Oclgrind: API checks and race detection on; any report fails its step" ;;
esac

# 4. The OpenCL suites.
say "== suites on $sel"
if [ $tiny = 1 ]; then
    step test-opencl env RECUR_TEST_CYCLES=5 RECUR_TEST_TINY=1 RECUR_CACHE_DIR="$out/cache" "$build/tests/test-opencl"
    if [ $simulator = 0 ]; then
        step train-kernels env RECUR_CACHE_DIR="$out/cache" "$build/tests/train-kernels/test-train-kernels"
    fi
else
    # Two test programs at a time, two Criterion workers each: on an H200
    # (driver 580) sixteen programs of sixteen workers, each worker a CUDA
    # context, made clCreateContext wait ~40 s and fail CL_OUT_OF_HOST_MEMORY.
    # 200 context cycles in test-opencl's leak check, not 1000: its 1050
    # took 263 s there (a context costs about 0.25 s on NVIDIA's OpenCL).
    step meson-opencl-suites env CRITERION_JOBS=2 RECUR_TEST_CYCLES=200 "${meson[@]}" test -C "$build" --no-rebuild --print-errorlogs \
        --timeout-multiplier 3 --num-processes 2 --suite opencl --suite opencl-c --suite train-kernels --suite model --suite net --suite conformance
    # every test's whole output (Criterion's per-test times), for the next look
    cp "$build/meson-logs/testlog.txt" "$out/suites-testlog.txt" 2>/dev/null || true
    step torch-opencl "$build/tests/test-torch" --filter '*/opencl'
fi

# 5. Gradcheck of every cell (and one stack) on the device.
say "== gradcheck on $sel"
for c in "rnn --variant tanh" "rnn --variant relu" gru gru-lbr lstm; do
    # shellcheck disable=SC2086
    n=gradcheck-${c/ --variant /-}
    if [ $tiny = 1 ]; then step "$n" "$recur" gradcheck --cell $c --steps 2 --batch 2 --hidden 3 --input 2
    else step "$n" "$recur" gradcheck --cell $c --lengths; fi
done
[ $tiny = 1 ] || step gradcheck-lstm-stack "$recur" gradcheck --cell lstm --layers 2 --bidirectional --lengths

# 6. Training: the default job (lm), or a few tiny steps.
say "== training on $sel"
rm -rf "$out/train"
if [ $tiny = 1 ]; then
    # a 60-line corpus: validation is 3 lines, a few chunks (every kernel launch is slow on a simulator)
    for i in $(seq 1 60); do echo "line $i of the tiny corpus"; done > "$out/corpus.txt"
    step train "$recur" train --out "$out/train" --corpus "$out/corpus.txt" --val-frac 0.05 --steps 4 --hidden 8 \
        --embed 4 --batch 2 --bptt 4 --eval-every 4 --checkpoint-every 4 --samples 0 --quiet
else
    step train "$recur" train --out "$out/train" --quiet
fi
step train-output test -s "$out/train/checkpoint.safetensors" -a -s "$out/train/loss.svg"
grep -hE "val|loss|steps/s|tok/s" "$out/train.log" 2>/dev/null | tail -3 | sed 's/^/       /' | tee -a "$report" || true

# Where a training step's device time goes (RECUR_CL_PROFILE=1, a table on
# stderr): each kernel's and CLBlast's time, and the device's idle share.
rm -rf "$out/profile"
if [ $tiny = 1 ]; then
    step profile env RECUR_CL_PROFILE=1 "$recur" train --out "$out/profile" --corpus "$out/corpus.txt" --val-frac 0.05 \
        --steps 2 --hidden 8 --embed 4 --batch 2 --bptt 4 --eval-every 1000 --checkpoint-every 1000 --samples 0 --quiet
else
    step profile env RECUR_CL_PROFILE=1 "$recur" train --out "$out/profile" --steps 200 --eval-every 1000 \
        --checkpoint-every 1000 --samples 0 --quiet
fi
sed -n '/^recur: OpenCL profile/,$p' "$out/profile.log" | head -12 | sed 's/^/       /' | tee -a "$report" || true

# 7. The benchmark's OpenCL rows (recur-bench opens "opencl": the device
# above, the only implementation visible when the ICD was found). Not on a
# simulator: its shapes take hours there.
say "== benchmark on $sel"
if [ $simulator = 1 ]; then
    say "skipped on a simulator"
else
    quick=()
    [ $tiny = 1 ] && quick=(--quick --reps 1)
    step bench "$build/bench/recur-bench" --cell opencl "${quick[@]}"
    # recur-bench exits 0 when it cannot open the device: its rows must be there
    step bench-rows grep -q "^OpenCL on opencl:" "$out/bench.log"
    sed -n '/^OpenCL on/,$p' "$out/bench.log" | tee -a "$report" || true
fi

# 8. The peer: PyTorch with cuDNN, when present, on the bench's OpenCL shapes.
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    say "== peer: PyTorch nn.LSTM / nn.GRU (cuDNN) on the same shapes"
    step torch-peer python3 - <<'EOF'
import time, torch
torch.backends.cudnn.benchmark = True
dev = torch.device("cuda")
print("torch", torch.__version__, "cudnn", torch.backends.cudnn.version(), torch.cuda.get_device_name(0))
for name, T, N, I, H, train in [("A infer", 100, 1, 256, 256, False), ("B train", 50, 32, 512, 512, True),
                                ("B64 train", 50, 64, 512, 512, True)]:
    for cls in (torch.nn.LSTM, torch.nn.GRU):
        m = cls(I, H).to(dev)
        x = torch.randn(T, N, I, device=dev, requires_grad=train)
        def run():
            if train:
                y, _ = m(x); y.sum().backward()
            else:
                with torch.no_grad(): m(x)
        for _ in range(3): run()
        torch.cuda.synchronize()
        ts = []
        for _ in range(5):
            t0 = time.perf_counter(); run(); torch.cuda.synchronize(); ts.append((time.perf_counter() - t0) * 1e3)
        print(f"{name:9} {cls.__name__:4} T={T:3} N={N:3} H={H:4}  {sorted(ts)[2]:9.3f} ms (median of 5)")
EOF
    sed 's/^/       /' "$out/torch-peer.log" | tee -a "$report" || true
else
    say "== peer: no PyTorch with CUDA here; no peer rows"
fi
finish
