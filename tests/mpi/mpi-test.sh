#!/bin/sh
# mpi-test.sh RECUR MODE: `mpirun -np N recur train` against one process (tools/dist.c,
# core/dist.c). Loopback only (shared memory between the ranks); one thread a rank.
#   equivalence-2  2 ranks at batch 16 each against one process at 32: 50 steps of the
#                  default job, per-step losses within 1e-5 relative, final checkpoints alike
#   equivalence-3  3 ranks at 10 against one process at 30
#   resume         10 steps on 2 ranks, resumed to 20 on 1 process and on 3, against 20 straight
#   buckets        2 ranks, 2 layers: the reduction in buckets started during the backward pass
#                  (RECUR_MPI_BUCKET 4 bytes: one bucket a tensor group, in place; 400000: the
#                  head, a layer, and a packed bucket of the last layer and the embedding; 1 GiB:
#                  one packed bucket), with --accum 2 too, each bit for bit the blocking path's
#                  (0: every gradient in one message at the step)
#   opencl-2       2 ranks on OpenCL devices picked by local rank (RECUR_DEVICE=opencl::cpu:, PoCL
#                  here) against one process on the same device: 5 steps at batch 8; and the
#                  buckets read during backward (RECUR_MPI_BUCKET=4) bit for bit the blocking path's
#   rank-fails     rank 1 cannot open its device: the job ends, naming rank 1 and the reason
#   bad-timeout    RECUR_MPI_TIMEOUT that is not a number of seconds: refused, naming it
#   bad-bucket     RECUR_MPI_BUCKET that is not a number of bytes up to 2^31: refused, naming it
#   rank-dies      rank 1 is killed mid-run: the job ends (no hang), naming rank 1
set -u
recur=$1
mode=$2
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export RECUR_THREADS=1
mpi="mpirun --allow-run-as-root --oversubscribe --mca btl self,vader --mca btl_vader_single_copy_mechanism none"
common="--eval-every 25 --checkpoint-every 1000 --samples 0 --quiet"

compare() { python3 "$here/compare.py" "$@" || exit 1; }

# wrap BODY: $out/wrap.sh, which runs BODY (sh) for rank 1 and execs its arguments on the others.
wrap() {
    printf '#!/bin/sh\nif [ "${OMPI_COMM_WORLD_RANK:-0}" = 1 ]; then\n%s\nfi\nexec "$@"\n' "$1" >"$out/wrap.sh"
    chmod +x "$out/wrap.sh"
}

# expect LOG NEEDLE...: the job failed (rc in $rc) and LOG has every NEEDLE (extended regexps).
expect() {
    log=$1
    shift
    cat "$log"
    echo "exit status $rc"
    [ "$rc" -ne 0 ] || exit 1
    for n in "$@"; do grep -Eq "$n" "$log" || { echo "not in the output: $n"; exit 1; }; done
}

case $mode in
equivalence-2 | equivalence-3)
    n=${mode#equivalence-}
    batch=$((n == 2 ? 32 : 30))
    "$recur" train --steps 50 --batch $batch $common --out "$out/one" >"$out/one.log" 2>&1 || { cat "$out/one.log"; exit 1; }
    $mpi -np "$n" "$recur" train --steps 50 --batch $batch $common --out "$out/many" >"$out/many.log" 2>&1 ||
        { cat "$out/many.log"; exit 1; }
    compare "$out/one/checkpoint.safetensors" "$out/many/checkpoint.safetensors" 1e-5 1e-4
    ;;
resume)
    "$recur" train --steps 20 --batch 30 $common --out "$out/one" >"$out/one.log" 2>&1 || { cat "$out/one.log"; exit 1; }
    $mpi -np 2 "$recur" train --steps 10 --batch 30 $common --out "$out/r" >"$out/r.log" 2>&1 || { cat "$out/r.log"; exit 1; }
    cp -r "$out/r" "$out/r3"
    "$recur" train --resume --steps 20 $common --out "$out/r" >"$out/r1.log" 2>&1 || { cat "$out/r1.log"; exit 1; }
    compare "$out/one/checkpoint.safetensors" "$out/r/checkpoint.safetensors" 1e-5 1e-4
    $mpi -np 3 "$recur" train --resume --steps 20 $common --out "$out/r3" >"$out/r3.log" 2>&1 ||
        { cat "$out/r3.log"; exit 1; }
    compare "$out/one/checkpoint.safetensors" "$out/r3/checkpoint.safetensors" 1e-5 1e-4
    ;;
buckets)
    # 2 layers of H=128: the head 36 kB, layer 1 528 kB, layer 0 332 kB, the embedding 9 kB
    small="--steps 12 --batch 16 --layers 2 --hidden 128 --bptt 32"
    for accum in 1 2; do
        for b in 0 4 400000 1073741824; do
            RECUR_MPI_BUCKET=$b RECUR_LOG=info $mpi -np 2 -x RECUR_MPI_BUCKET -x RECUR_LOG "$recur" train $small \
                --accum $accum $common --out "$out/b$accum-$b" >"$out/b$accum-$b.log" 2>&1 ||
                { cat "$out/b$accum-$b.log"; exit 1; }
        done
        # the plan each size makes, as the library logs it (rank 0)
        for want in "0:1 buckets.*at the step" "4:4 buckets.*0 floats packed.*during" \
                    "400000:3 buckets.*85216 floats packed.*during" "1073741824:1 buckets.*during"; do
            grep -q "rank 0 of 2: the gradients in ${want#*:}" "$out/b$accum-${want%%:*}.log" ||
                { cat "$out/b$accum-${want%%:*}.log"; echo "no bucket plan like '${want#*:}'"; exit 1; }
        done
        for b in 4 400000 1073741824; do
            echo "accum $accum, RECUR_MPI_BUCKET=$b against 0:"
            compare "$out/b$accum-0/checkpoint.safetensors" "$out/b$accum-$b/checkpoint.safetensors" 0 0
        done
    done
    ;;
opencl-2)
    small="--steps 5 --batch 8 --hidden 64 --bptt 32"
    RECUR_DEVICE=opencl::cpu:0 "$recur" train $small $common --out "$out/one" >"$out/one.log" 2>&1 ||
        { cat "$out/one.log"; exit 1; }
    RECUR_DEVICE=opencl::cpu: $mpi -np 2 "$recur" train $small $common --out "$out/many" >"$out/many.log" 2>&1 ||
        { cat "$out/many.log"; exit 1; }
    grep -q "on opencl:" "$out/many.log" || { cat "$out/many.log"; echo "not on OpenCL"; exit 1; }
    compare "$out/one/checkpoint.safetensors" "$out/many/checkpoint.safetensors" 1e-5 1e-4
    # the buckets' reads queued during backward (4 bytes: one bucket a tensor group) against
    # the blocking path, bit for bit
    for b in 0 4; do
        RECUR_MPI_BUCKET=$b RECUR_DEVICE=opencl::cpu: $mpi -np 2 -x RECUR_MPI_BUCKET "$recur" train $small $common \
            --out "$out/b$b" >"$out/b$b.log" 2>&1 || { cat "$out/b$b.log"; exit 1; }
    done
    compare "$out/b0/checkpoint.safetensors" "$out/b4/checkpoint.safetensors" 0 0
    ;;
rank-fails)
    wrap '    export RECUR_DEVICE=no-such-device'
    $mpi -np 2 "$out/wrap.sh" "$recur" train --steps 50 $common --out "$out/f" >"$out/f.log" 2>&1
    rc=$?
    expect "$out/f.log" "rank 1 of 2 stopped" "no-such-device"
    ;;
bad-timeout)
    RECUR_MPI_TIMEOUT=soon $mpi -np 2 -x RECUR_MPI_TIMEOUT "$recur" train --steps 5 $common --out "$out/t" >"$out/t.log" 2>&1
    rc=$?
    expect "$out/t.log" "RECUR_MPI_TIMEOUT 'soon': expected seconds from 1 to 86400" "rank [01] of 2 stopped"
    ;;
bad-bucket)
    RECUR_MPI_BUCKET=4GB $mpi -np 2 -x RECUR_MPI_BUCKET "$recur" train --steps 5 $common --out "$out/t" >"$out/t.log" 2>&1
    rc=$?
    expect "$out/t.log" "RECUR_MPI_BUCKET '4GB': expected bytes from 0 to 2147483648" "rank [01] of 2 stopped"
    ;;
rank-dies)
    wrap '    "$@" &
    sleep 3
    kill -9 $!
    exit 137'
    $mpi -np 2 "$out/wrap.sh" "$recur" train --steps 100000 $common --out "$out/d" >"$out/d.log" 2>&1
    rc=$?
    # mpirun names the process that died: [[job,1],1] is rank 1
    expect "$out/d.log" '\[\[[0-9]+,[0-9]+\],1\]'
    ;;
*)
    echo "mpi-test.sh: unknown mode '$mode'" >&2
    exit 2
    ;;
esac
