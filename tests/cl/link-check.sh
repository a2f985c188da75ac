#!/bin/sh
# link-check.sh CLANG LLVM-NM CELL-HEADER SHARED.cl... -- GATES:CELL.cl...
#
# Compiles every OpenCL C program recur builds, as a clang-based GPU driver
# (AMD ROCm, Intel's compute runtime, Mesa) would without optimisation:
# -cl-std=CL1.2 -cl-opt-disable. The shared kernels are one program (their
# files concatenated, as kernels/embed.py joins them); each cell is
# recur-cell-cl.h followed by its source, built with -DRECUR_G=GATES. A function that is only declared,
# or `inline` without `static` (C99: no definition emitted), is left as an
# undefined symbol; OpenCL's builtins are the only ones allowed (their names
# are mangled: _Z...). Fails on a compile error or any other undefined symbol.
set -eu
clang=$1 nm=$2 header=$3
shift 3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0

check() { # name, source file, gates
    if ! "$clang" -x cl -cl-std=CL1.2 -cl-opt-disable -Xclang -finclude-default-header -target spir64 \
         -DRECUR_G="$3" -Werror=implicit-function-declaration -c -emit-llvm "$2" -o "$work/p.bc" 2>"$work/log"; then
        echo "FAIL $1: does not compile:"; cat "$work/log"; status=1; return
    fi
    undefined=$("$nm" "$work/p.bc" | awk '$1 == "U" && $2 !~ /^_Z/ {print $2}')
    if [ -n "$undefined" ]; then
        echo "FAIL $1: undefined symbols a GPU compiler will not resolve:" $undefined; status=1
    else
        echo "ok   $1"
    fi
}

: > "$work/shared.cl"
while [ $# -gt 0 ] && [ "$1" != -- ]; do cat "$1" >> "$work/shared.cl"; shift; done
check "shared kernels" "$work/shared.cl" 1
[ $# -gt 0 ] && shift
for arg in "$@"; do
    cell=${arg#*:}
    cat "$header" "$cell" > "$work/cell.cl"
    check "$(basename "$cell")" "$work/cell.cl" "${arg%%:*}"
done
exit $status
