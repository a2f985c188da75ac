#!/usr/bin/env bash
# on-impl.sh IMPL VENDORS_DIR COMMAND [ARGS...]: run COMMAND on one OpenCL
# implementation alone, through the ICD loader (OCL_ICD_VENDORS=VENDORS_DIR,
# which this script fills with one .icd file naming the implementation).
#
#   oclgrind  Oclgrind, the simulator that checks every access: its API
#             checks and race detection on (OCLGRIND_CHECK_API=1,
#             OCLGRIND_DATA_RACES=1). Oclgrind installs no ICD file.
#             Every report on stderr fails the run, but two kinds:
#             - "Uninitialized ..." / "Controlflow depends on uninitialized":
#               Oclgrind 21.10's documented false positives (it sizes its
#               shadow memory from the first host write to a buffer; see
#               issue 11); recur's poison suite checks that instead;
#             - the API errors recur's tests provoke on purpose: a build
#               failure (clBuildProgram, CL_BUILD_PROGRAM_FAILURE) and a
#               kernel missing (clCreateKernel, CL_INVALID_KERNEL_NAME) in
#               test-opencl's cell_errors, a refused binary
#               (clCreateProgramWithBinary, CL_INVALID_BINARY) in its
#               program_cache.
#   rusticl   Mesa's rusticl on llvmpipe (RUSTICL_ENABLE=llvmpipe).
#   pocl      PoCL (used by the poison and GPU-limits suites).
#
# Exit 77 (skipped) when the implementation is not installed, but 1 when
# CI=true: CI installs all three, so a missing one there is a failure.
set -u
impl=$1 vendors=$2
shift 2
case $impl in
oclgrind) libs="/usr/lib/oclgrind/liboclgrind-rt-icd.so /usr/lib/x86_64-linux-gnu/oclgrind/liboclgrind-rt-icd.so
                /usr/local/lib/liboclgrind-rt-icd.so /usr/local/lib/oclgrind/liboclgrind-rt-icd.so" ;;
rusticl) libs="/usr/lib/x86_64-linux-gnu/libRusticlOpenCL.so.1 /usr/lib/aarch64-linux-gnu/libRusticlOpenCL.so.1
               /usr/lib64/libRusticlOpenCL.so.1 /usr/local/lib/libRusticlOpenCL.so.1" ;;
pocl) libs="/usr/lib/x86_64-linux-gnu/libpocl.so.2 /usr/lib/aarch64-linux-gnu/libpocl.so.2 /usr/lib64/libpocl.so.2
            /usr/local/lib/libpocl.so.2" ;;
*) echo "on-impl.sh: unknown implementation '$impl' (oclgrind, rusticl or pocl)" >&2; exit 2 ;;
esac
lib=
for l in $libs; do [ -e "$l" ] && { lib=$l; break; }; done
if [ -z "$lib" ]; then
    echo "$impl is not installed (none of: $(echo $libs))"
    if [ "${CI:-}" = true ]; then echo "FAIL: CI=true and $impl is missing (.ci/packages installs it)"; exit 1; fi
    exit 77
fi
rm -rf "$vendors"
mkdir -p "$vendors"
echo "$lib" > "$vendors/$impl.icd"
export OCL_ICD_VENDORS=$vendors
case $impl in
rusticl) export RUSTICL_ENABLE=llvmpipe ;;
oclgrind) export OCLGRIND_CHECK_API=1 OCLGRIND_DATA_RACES=1 ;;
esac
[ "$impl" = oclgrind ] || exec "$@"

log=$vendors/stderr.txt
"$@" 2> >(tee "$log" >&2)
rc=$?
wait
awk -v rc="$rc" -f "$(dirname "$0")/oclgrind-reports.awk" "$log" || exit 1
exit "$rc"
