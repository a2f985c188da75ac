#!/usr/bin/env bash
# gpu-check.sh: the OpenCL-on-GPU checks of the OpenCL issue, as one script for
# a machine with an NVIDIA (or any) GPU. Run from the repository root with a
# built tree (build/, from `meson setup build && ninja -C build`):
#   bash bench/gpu-check.sh [OUT_DIR]
# It records what it finds and runs in OUT_DIR/gpu-check.txt: the ICD files and
# the driver, `recur devices`, the conformance, PyTorch and model suites on the
# first GPU, and the benchmark's OpenCL rows. Each step's status is recorded;
# a missing NVIDIA OpenCL ICD is reported, not hidden.
set -u
out=${1:-.}
mkdir -p "$out"
log="$out/gpu-check.txt"
exec > >(tee "$log") 2>&1
echo "date: $(date -u +%FT%TZ)"
echo "== ICD loader vendors"; ls -l /etc/OpenCL/vendors/ 2>&1; cat /etc/OpenCL/vendors/*.icd 2>&1
echo "== driver"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -5
ldconfig -p | grep -E "libnvidia-opencl|libOpenCL" || echo "no libOpenCL / libnvidia-opencl in ldconfig"
export RECUR_PLUGIN_PATH="$PWD/build/plugins" RECUR_FIXTURES="$PWD/tests/fixtures/torch"
echo "== recur devices"; ./build/tools/recur devices; st_dev=$?
gpu=$(RECUR_DEVICE=opencl::gpu ./build/tools/recur devices 2>/dev/null | sed -n 's/^chosen now (RECUR_DEVICE=opencl::gpu): //p')
echo "first GPU: ${gpu:-none}"
[ -n "$gpu" ] || { echo "RESULT: no OpenCL GPU visible (devices exit $st_dev)"; exit 1; }
echo "== conformance on $gpu (cells x shapes against the double reference)"
RECUR_TEST_DEVICE="$gpu" ./build/tests/test-model; st_model=$?
RECUR_TEST_OPENCL="$gpu" ./build/tests/test-conformance --filter 'conformance_opencl/*'; st_conf=$?
RECUR_TEST_OPENCL="$gpu" ./build/tests/test-torch --filter '*/opencl'; st_torch=$?
echo "== benchmark, OpenCL rows"
RECUR_DEVICE="$gpu" ./build/bench/recur-bench --cell opencl; st_bench=$?
echo "RESULT: model $st_model, conformance $st_conf, torch $st_torch, bench $st_bench (0 = pass)"
