#!/bin/sh
# tests/tool/tool-test.sh RECUR DATADIR CASE: one behaviour test of recur
# train, sample and eval (tests/tool/meson.build lists the cases). Runs in a
# scratch directory that it removes; exit 0 pass, 1 fail, 77 skip.
recur=$1
data=$2
case=$3
case $recur in /*) ;; *) recur=$PWD/$recur ;; esac
case $data in /*) ;; *) data=$PWD/$data ;; esac
work=$(mktemp -d "${TMPDIR:-/tmp}/recur-tool-XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

fail() {
    echo "FAIL ($case): $*"
    exit 1
}
# run ARGS...: recur ARGS must exit 0; its output in $out
run() {
    echo "+ recur $*"
    out=$("$recur" "$@" 2>&1)
    got=$?
    printf '%s\n' "$out"
    [ $got -eq 0 ] || fail "recur $1 exited $got"
}
# expect RC NEEDLE ARGS...: recur ARGS exits RC and its output contains NEEDLE
expect() {
    rc=$1
    needle=$2
    shift 2
    echo "+ recur $*"
    out=$("$recur" "$@" 2>&1)
    got=$?
    printf '%s\n' "$out"
    echo "exit status $got, expected $rc"
    [ $got -eq "$rc" ] || fail "exit status $got, expected $rc"
    case "$out" in
    *"$needle"*) ;;
    *) fail "the output does not contain '$needle'" ;;
    esac
}
# value TEXT KEY: the number after the last "KEY " in TEXT
value() {
    printf '%s\n' "$1" | sed -n "s/.*$2 \([0-9][0-9.e+-]*\).*/\1/p" | tail -n 1
}
# below A B: A < B as numbers
below() {
    awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 < b + 0) }'
}
atleast() {
    awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 >= b + 0) }'
}

# held_out KEY MIN: the last "KEY X" of training's output ($out) is at least MIN, and
# recur eval of a/checkpoint.safetensors says the same X
held_out() {
    ho=$(value "$out" "$1")
    echo "held-out $1 $ho (threshold $2)"
    atleast "$ho" "$2" || fail "$1 $ho"
    run eval --model a/$ck
    [ "$(value "$out" "$1")" = "$ho" ] || fail "recur eval disagrees"
}
# interrupt SECONDS ARGS...: recur ARGS in the background, Ctrl-C (SIGINT) SECONDS after
# its banner; it must exit 130. Its output in the file log.
interrupt() {
    in_wait=$1
    shift
    "$recur" "$@" > log 2>&1 &
    pid=$!
    i=0
    until grep -q 'steps 0 ->' log; do
        sleep 0.1
        i=$((i + 1))
        [ $i -lt 600 ] || { kill $pid; fail "training did not start"; }
    done
    sleep "$in_wait"
    kill -INT $pid
    wait $pid
    rc=$?
    cat log
    [ $rc -eq 130 ] || fail "exit status $rc, expected 130"
}

# set_meta FILE KEY VALUE [KEY VALUE...]: FILE (safetensors) with its metadata
# "KEY" set to VALUE, rewritten in place: a crafted checkpoint.
set_meta() {
    sm_f=$1
    shift
    sm_n=$(od -An -tu8 -N8 "$sm_f" | tr -d ' ')
    tail -c +9 "$sm_f" | head -c "$sm_n" > "$sm_f.hdr"
    tail -c +$((sm_n + 9)) "$sm_f" > "$sm_f.body"
    while [ $# -ge 2 ]; do
        grep -q "\"$1\":\"" "$sm_f.hdr" || fail "set_meta: no key $1 in $sm_f"
        sed "s|\"$1\":\"[^\"]*\"|\"$1\":\"$2\"|" "$sm_f.hdr" > "$sm_f.tmp" && mv "$sm_f.tmp" "$sm_f.hdr"
        shift 2
    done
    sed 's/ *$//' "$sm_f.hdr" | tr -d '\n' > "$sm_f.tmp"
    sm_n=$(wc -c < "$sm_f.tmp")
    while [ $((sm_n % 8)) -ne 0 ]; do
        printf ' ' >> "$sm_f.tmp"
        sm_n=$((sm_n + 1))
    done
    : > "$sm_f"
    for sm_i in 0 1 2 3 4 5 6 7; do
        printf "\\$(printf %03o $(((sm_n >> (8 * sm_i)) & 255)))" >> "$sm_f"
    done
    cat "$sm_f.tmp" "$sm_f.body" >> "$sm_f"
    rm -f "$sm_f.hdr" "$sm_f.body" "$sm_f.tmp"
}
# set_float FILE TENSOR INDEX OCTAL: float INDEX of F32 tensor TENSOR in FILE becomes the four
# little-endian bytes OCTAL (e.g. '\000\000\300\177', a NaN), in place
set_float() {
    sf_n=$(od -An -tu8 -N8 "$1" | tr -d ' ')
    sf_a=$(head -c $((sf_n + 8)) "$1" | tail -c "$sf_n" |
        sed -n "s/.*\"$2\":{\"dtype\":\"F32\",\"shape\":\[[0-9,]*\],\"data_offsets\":\[\([0-9]*\),.*/\1/p")
    [ -n "$sf_a" ] || fail "set_float: no F32 tensor $2 in $1"
    printf "$4" | dd of="$1" bs=1 seek=$((8 + sf_n + sf_a + 4 * $3)) conv=notrunc 2>/dev/null
}
# meta FILE KEY: the value of metadata KEY in FILE
meta() {
    grep -a -o "\"$2\":\"[^\"]*\"" "$1" | head -n 1 | sed 's/.*:"\(.*\)"/\1/'
}

words=$data/words.txt
examples=$data/../../examples/data
tiny="--corpus $words --hidden 32 --embed 16 --batch 8 --bptt 16 --quiet --samples 0"
ck=checkpoint.safetensors

case $case in
# ---- failures at run time: exit 1, naming what was wrong ----
missing-corpus)
    expect 1 "$work/nosuch.txt" train --corpus "$work/nosuch.txt" --out o
    ;;
empty-corpus)
    expect 1 "empty.txt" train --corpus "$data/empty.txt" --out o
    ;;
binary-corpus)
    expect 1 "binary.dat" train --corpus "$data/binary.dat" --out o
    ;;
short-corpus)
    printf 'ab\ncd\nef\n' > short.txt
    expect 1 "short.txt" train --corpus short.txt --out o
    ;;
unwritable-out)
    # a directory inside a regular file cannot be made, not even by root
    expect 1 "--out $words/run" train $tiny --out "$words/run"
    [ -e o ] && fail "created something"
    ;;
resume-missing)
    expect 1 "no checkpoint" train --resume --out "$work/none"
    ;;
resume-different)
    run train $tiny --steps 0 --out a
    expect 1 "is a different model" train --resume --out a --hidden 64
    expect 1 "is a different model" train --resume --out a --cell gru
    expect 1 "is a different model" train --resume --out a --task classify
    sed 's/a/e/g' "$words" > other.txt
    expect 1 "is a different model" train --resume --out a --corpus other.txt
    # the same settings given again are fine
    run train --resume --out a --hidden 32 --corpus "$words" --steps 2 --quiet --samples 0
    ;;
sample-missing)
    expect 1 "$work/nosuch.safetensors" sample --model "$work/nosuch.safetensors"
    ;;
eval-missing)
    expect 1 "$work/nosuch.safetensors" eval --model "$work/nosuch.safetensors"
    ;;
sample-not-checkpoint)
    expect 1 "$words" sample --model "$words"
    # a model file of recur, but not a training checkpoint
    expect 1 "not a checkpoint of recur train" sample --model "$data/../fixtures/safetensors/recur-lstm.safetensors"
    ;;
eval-not-checkpoint)
    expect 1 "$words" eval --model "$words"
    expect 1 "not a checkpoint of recur train" eval --model "$data/../fixtures/safetensors/recur-lstm.safetensors"
    ;;

# ---- a checkpoint's settings are input: the flags' ranges hold for them ----
crafted-settings)
    # crafted/: the crafted checkpoints (tests/fuzz does not cover the tool; these are its seeds)
    run train --task classify --hidden 8 --embed 4 --batch 4 --val-size 4 --steps 0 --quiet --out c
    run train $tiny --steps 0 --out l
    [ "$(meta c/$ck recur.max_len)" = 30 ] || fail "set_meta cannot read the checkpoint"
    mkdir crafted
    craft() { # craft NAME BASE KEY VALUE...: crafted/NAME
        cr_name=$1
        cp "$2/$ck" "crafted/$cr_name"
        shift 2
        set_meta "crafted/$cr_name" "$@"
        [ "$(meta "crafted/$cr_name" "$1")" = "$2" ] || fail "set_meta did not set $1"
    }
    # a stack array of 4096 overflowed for max_len above it; 2e9 grew sample to 23.7 GB
    craft max-len-1e8 c recur.max_len 100000000
    expect 1 "metadata 'recur.max_len' = '100000000': expected an integer in 2..1000 (as --max-len)" \
        sample --model crafted/max-len-1e8 --n 2
    craft max-len-2e9 c recur.max_len 2000000000
    expect 1 "'recur.max_len' = '2000000000'" sample --model crafted/max-len-2e9 --n 2
    expect 1 "'recur.max_len' = '2000000000'" eval --model crafted/max-len-2e9
    # about 210 TB asked for, and "evaluating: " with no reason
    craft batch-max c recur.batch 2147483647
    expect 1 "metadata 'recur.batch' = '2147483647': expected an integer in 1..65536 (as --batch)" \
        eval --model crafted/batch-max
    craft val-size-2e9 c recur.val_size 2000000000
    expect 1 "metadata 'recur.val_size' = '2000000000': expected an integer in 1..1000000" eval --model crafted/val-size-2e9
    craft min-above-max c recur.min_len 50 recur.max_len 10
    expect 1 "'recur.min_len' = '50' is above 'recur.max_len' = '10'" eval --model crafted/min-above-max
    craft bad-direction c recur.direction sideways
    expect 1 "metadata 'recur.direction' = 'sideways'" eval --model crafted/bad-direction
    # train --resume: signed overflow in the corpus-length check with bptt 2^31-1
    craft bptt-max l recur.bptt 2147483647
    mkdir r
    cp crafted/bptt-max r/$ck
    expect 1 "metadata 'recur.bptt' = '2147483647': expected an integer in 1..100000 (as --bptt)" \
        train --resume --out r --steps 1 --quiet --samples 0
    craft lm-batch-max l recur.batch 2147483647
    expect 1 "'recur.batch' = '2147483647'" eval --model crafted/lm-batch-max
    # a setting of another task is not read: bptt of a classify checkpoint
    craft classify-bptt c recur.bptt 2147483647
    run eval --model crafted/classify-bptt
    ;;
corpus-not-regular)
    # --corpus and a checkpoint's recur.corpus: regular files only, refused before reading
    mkfifo fifo
    expect 1 "fifo: not a regular file (a FIFO)" train --corpus fifo --out o
    expect 1 "/dev/zero: not a regular file (a character device)" train --corpus /dev/zero --out o
    run train $tiny --steps 0 --out l
    cp l/$ck fifo.st
    set_meta fifo.st recur.corpus "$work/fifo"
    expect 1 "$work/fifo: not a regular file (a FIFO)" eval --model fifo.st
    cp l/$ck zero.st
    set_meta zero.st recur.corpus /dev/zero
    expect 1 "/dev/zero: not a regular file (a character device)" eval --model zero.st
    # the checkpoint itself
    expect 1 "fifo: not a regular file (a FIFO)" sample --model fifo
    expect 1 "/dev/zero: not a regular file" eval --model /dev/zero
    ;;
old-direction)
    # one vocabulary: --direction and recur.direction say bidi_concat; the old spellings still work
    run train --task classify --direction bidi --hidden 8 --embed 4 --batch 4 --val-size 4 --steps 0 --quiet --out a
    case "$out" in *" bidi_concat, "*) ;; *) fail "the banner does not say bidi_concat" ;; esac
    [ "$(meta a/$ck recur.direction)" = bidi_concat ] || fail "recur.direction is $(meta a/$ck recur.direction)"
    # a checkpoint written before: "bidi" resumes, and is written back in the new spelling
    set_meta a/$ck recur.direction bidi
    run train --resume --out a --steps 2 --quiet
    [ "$(meta a/$ck recur.direction)" = bidi_concat ] || fail "resumed: recur.direction $(meta a/$ck recur.direction)"
    set_meta a/$ck recur.direction bidi-concat
    run eval --model a/$ck
    # the same model named either way on --resume
    run train --resume --out a --steps 3 --direction BIDI-CONCAT --quiet
    expect 1 "--direction bidi_sum, but the checkpoint has bidi_concat" train --resume --out a --direction sum --quiet
    ;;

# ---- training ----
step-waits)
    # A training step of the lm task waits for the device once (issue 11): the
    # batch and the carried state stay on the device (recur_net_forward_dev).
    # count-waits.c (LD_PRELOAD) counts every OpenCL call of the process that
    # makes it wait; two runs that differ only in --steps differ by the steps'.
    "$recur" devices 2>/dev/null | grep -q '^opencl' || { echo "no OpenCL device: skipped"; exit 77; }
    [ -f "${RECUR_WAITS_SHIM:-}" ] || fail "RECUR_WAITS_SHIM '${RECUR_WAITS_SHIM:-}' is not a file"
    for s in 10 30; do
        echo "+ recur train $tiny --steps $s --eval-every 1000 --checkpoint-every 1000 --out w$s (host waits counted)"
        RECUR_WAITS_FILE=$work/waits-$s LD_PRELOAD=$RECUR_WAITS_SHIM "$recur" train $tiny --steps $s \
            --eval-every 1000 --checkpoint-every 1000 --out w$s > log 2>&1 || { cat log; fail "recur train failed"; }
        [ -s waits-$s ] || fail "the shim wrote no count (was it preloaded?)"
    done
    a=$(cat waits-10) b=$(cat waits-30)
    echo "host waits: $a in a run of 10 steps, $b in one of 30: $((b - a)) for 20 steps"
    [ $((b - a)) -eq 20 ] || fail "$((b - a)) host waits for 20 training steps: expected one a step"
    ;;
lower-loss)
    # RECUR_DEVICE from the test's environment (cpu, or opencl: skipped without a device)
    case "$RECUR_DEVICE" in
    opencl*) "$recur" devices 2>/dev/null | grep -q '^opencl' || { echo "no OpenCL device: skipped"; exit 77; } ;;
    esac
    run train $tiny --lr 0.01 --steps 0 --out a
    run eval --model a/$ck
    l0=$(value "$out" loss)
    run train --resume --out a --steps 60 --quiet --samples 0
    run eval --model a/$ck
    l1=$(value "$out" loss)
    echo "loss at step 0: $l0, at step 60: $l1"
    below "$l1" "$(awk -v a="$l0" 'BEGIN { print a - 0.5 }')" || fail "the loss went from $l0 to $l1"
    ;;
resume-equal-lm)
    args="$tiny --eval-every 15 --checkpoint-every 25"
    run train $args --steps 40 --out a
    run train --resume --out a --steps 80 --quiet --samples 0
    run train $args --steps 80 --out b
    cmp a/$ck b/$ck || fail "resumed and uninterrupted checkpoints differ"
    ;;
resume-equal-proj)
    # an LSTM with projection: a carried state P wide and c H wide, through checkpoints and resume
    args="$tiny --proj 4 --eval-every 15 --checkpoint-every 25"
    run train $args --steps 40 --out a
    case "$out" in *" P=4 "*) ;; *) fail "the banner does not show P=4" ;; esac
    run train --resume --out a --steps 80 --quiet --samples 0
    run train $args --steps 80 --out b
    cmp a/$ck b/$ck || fail "resumed and uninterrupted checkpoints differ"
    grep -a -q '"recur.proj":"4"' a/$ck || fail "no recur.proj in the checkpoint"
    grep -a -q '"rnn.weight_hr_l0":{"dtype":"F32","shape":\[4,' a/$ck || fail "no rnn.weight_hr_l0 [4, H] in the checkpoint"
    run eval --model a/$ck
    expect 1 "cannot project" train $tiny --cell gru --proj 4 --steps 1 --out c
    expect 2 "--proj" train $tiny --proj -1 --steps 1 --out c
    ;;
precision)
    # --precision (issue 10): the precision of the matrix products, in the banner, the loss curve's
    # title and the checkpoint (recur.precision); --resume keeps it unless given, and may change it
    # (the weights are float32). One the device cannot compute (recur devices lists those it can) is
    # refused before training with the library's reason, exit 2 like a bad option.
    expect 2 "--precision 'fp8': unknown precision 'fp8'" train $tiny --precision fp8 --steps 1 --out c
    expect 2 "--precision 'half': unknown precision" eval --model a/$ck --precision half
    run train $tiny --steps 4 --eval-every 2 --out a
    case "$out" in *" on cpu in f32, "*) ;; *) fail "the banner does not say f32" ;; esac
    [ "$(meta a/$ck recur.precision)" = f32 ] || fail "recur.precision is '$(meta a/$ck recur.precision)'"
    grep -q 'lr 0.002, f32<' a/loss.svg || fail "the loss curve's title does not say f32"
    can=$("$recur" devices | sed -n 's/^precisions: //p')
    echo "the device computes: $can"
    case "$can" in f32*) ;; *) fail "recur devices does not list the precisions" ;; esac
    for p in bf16 f16; do
        case ", $can," in
        *", $p,"* | *", $p (emulated),"*)
            run train $tiny --precision $p --steps 6 --eval-every 3 --checkpoint-every 3 --out $p
            case "$out" in *" on cpu in $p"*) ;; *) fail "the banner does not say $p" ;; esac
            # f16 scales the loss by default (tool-loss-scale has the rest), bf16 does not
            case "$p:$out" in
            f16:*", loss scale 65536 (dynamic), "* | bf16:*) ;; *) fail "f16: the banner does not say the loss scale" ;; esac
            case "$p:$out" in bf16:*"loss scale"*) fail "bf16: a loss scale said" ;; esac
            [ "$(meta $p/$ck recur.precision)" = $p ] || fail "$p: recur.precision is '$(meta $p/$ck recur.precision)'"
            grep -q "lr 0.002, $p<" $p/loss.svg || fail "the loss curve's title does not say $p"
            v=$(value "$out" "val loss")
            run eval --model $p/$ck
            [ "$(value "$out" loss)" = "$v" ] || fail "recur eval of the $p checkpoint says $(value "$out" loss), training said $v"
            # resumed: still p, and the same file as an uninterrupted run
            run train --resume --out $p --steps 9 --quiet --samples 0
            case "$out" in *" on cpu in $p"*) ;; *) fail "resumed: the banner does not say $p" ;; esac
            run train $tiny --precision $p --steps 9 --eval-every 3 --checkpoint-every 3 --out ${p}u
            cmp $p/$ck ${p}u/$ck || fail "$p: resumed and uninterrupted checkpoints differ"
            # resumed in another precision: taken, said, recorded
            run train --resume --out $p --steps 12 --precision f32 --quiet --samples 0
            case "$out" in *" in f32, "*"the checkpoint's precision was $p)"*) ;; *) fail "resumed in f32: not said" ;; esac
            [ "$(meta $p/$ck recur.precision)" = f32 ] || fail "resumed in f32: recur.precision '$(meta $p/$ck recur.precision)'"
            ;;
        *)
            expect 2 "--precision $p: device cpu" train $tiny --precision $p --steps 1 --out n$p
            case "$out" in *"cannot compute $p"*) ;; *) fail "the refusal does not name $p" ;; esac
            [ -e n$p/$ck ] && fail "a checkpoint was written"
            # a checkpoint that says p: its precision is refused by name, --precision f32 goes on
            mkdir -p x$p
            cp a/$ck x$p/$ck
            set_meta x$p/$ck recur.precision $p
            expect 1 "the checkpoint's precision $p: " eval --model x$p/$ck
            run eval --model x$p/$ck --precision f32
            expect 1 "--precision f32 computes in float32" train --resume --out x$p --steps 5
            run train --resume --out x$p --steps 5 --precision f32 --quiet --samples 0
            [ "$(meta x$p/$ck recur.precision)" = f32 ] || fail "resumed in f32: recur.precision '$(meta x$p/$ck recur.precision)'"
            ;;
        esac
    done
    ;;
save-exact)
    # --precision bf16 keeps the saved values in bf16, but not a cell's that needs them exact
    # (RECUR_CELL_SAVE_EXACT: tests/bad-plugins' exact-save-test, on RECUR_PLUGIN_PATH here): the
    # banner says its saved values stay f32; the LSTM's banner says no such thing
    can=$("$recur" devices | sed -n 's/^precisions: //p')
    case ", $can," in *", bf16,"* | *", bf16 (emulated),"*) ;; *) echo "no bf16 here: skipped"; exit 77 ;; esac
    run train $tiny --cell exact-save-test --precision bf16 --steps 2 --out e
    case "$out" in *" on cpu in bf16, saved values f32, exact-save-test "*) ;; *) fail "the banner does not say f32 saves" ;; esac
    run train $tiny --precision bf16 --steps 2 --out l
    case "$out" in *"saved values"*) fail "the LSTM's banner says its saved values' type" ;; esac
    ;;
cl-profile)
    # RECUR_CL_PROFILE=1: the device time of each OpenCL command by name, and the device's idle
    # share, on stderr when the context closes; anything but 0 or 1 refused by name; 0 prints nothing
    "$recur" devices 2>/dev/null | grep -q '^opencl' || { echo "no OpenCL device: skipped"; exit 77; }
    g="gradcheck --cell lstm --steps 3 --batch 2 --hidden 4 --input 3"
    # shellcheck disable=SC2086
    out=$(RECUR_DEVICE=opencl RECUR_CL_PROFILE=1 "$recur" $g 2>&1) || fail "profiled gradcheck failed: $out"
    printf '%s\n' "$out" | grep -q '^recur: OpenCL profile (RECUR_CL_PROFILE=1) on .*: [1-9][0-9]* commands, the device busy [0-9.]* ms of [0-9.]* ms' ||
        fail "no profile header: $out"
    for k in CLBlastSgemm lstm_forward_0 lstm_backward_0; do
        printf '%s\n' "$out" | grep -q "^  $k  *[1-9][0-9]*  *[0-9.]*  *[0-9.]*  *[0-9.]*%$" || fail "no profile row for $k"
    done
    # shellcheck disable=SC2086
    out=$(RECUR_DEVICE=opencl RECUR_CL_PROFILE=0 "$recur" $g 2>&1) || fail "gradcheck with RECUR_CL_PROFILE=0 failed"
    case "$out" in *"OpenCL profile"*) fail "RECUR_CL_PROFILE=0 printed a profile" ;; esac
    # a context that ran no command prints no table
    out=$(RECUR_DEVICE=opencl RECUR_CL_PROFILE=1 "$recur" devices 2>&1) || fail "recur devices failed: $out"
    case "$out" in *"OpenCL profile"*) fail "a context with no commands printed a profile" ;; esac
    for v in yes 2 " 1"; do
        # shellcheck disable=SC2086
        out=$(RECUR_DEVICE=opencl RECUR_CL_PROFILE="$v" "$recur" $g 2>&1) && fail "RECUR_CL_PROFILE='$v' accepted"
        case "$out" in *"RECUR_CL_PROFILE '$v': expected 1"*) ;; *) fail "RECUR_CL_PROFILE='$v': $out" ;; esac
    done
    ;;
loss-scale)
    # --loss-scale (issue 10's loss scaling): auto is 65536 in f16 (said in the banner, the setting in
    # the checkpoint, recur.loss_scale, and the scale's state in the optimizer's); anything but auto,
    # off or a power of two in 1..2^100 is refused, exit 2 naming it; --resume keeps it unless given.
    can=$("$recur" devices | sed -n 's/^precisions: //p')
    case ", $can," in *", f16,"* | *", f16 (emulated),"*) ;; *) echo "no f16 on this device: $can"; exit 77 ;; esac
    for v in 3 0.5 big 0 -65536 inf 2e30; do
        expect 2 "--loss-scale '$v': expected auto, off or a power of two from 1 to 2^100" \
            train $tiny --precision f16 --loss-scale $v --steps 1 --out bad
    done
    expect 2 "--loss-scale-interval '0'" train $tiny --loss-scale-interval 0 --steps 1 --out bad
    [ -e bad ] && fail "a refused option left a directory"
    run train $tiny --precision f16 --steps 4 --eval-every 2 --out a
    case "$out" in *" in f16, emulated, loss scale 65536 (dynamic), "*) ;; *) fail "the banner does not say the loss scale" ;; esac
    case "$out" in *"skipped"*) fail "steps skipped at 65536" ;; esac
    [ "$(meta a/$ck recur.loss_scale)" = auto ] || fail "recur.loss_scale is '$(meta a/$ck recur.loss_scale)'"
    [ "$(meta a/$ck recur.loss_scale_interval)" = 2000 ] || fail "recur.loss_scale_interval '$(meta a/$ck recur.loss_scale_interval)'"
    [ "$(meta a/$ck optim.loss_scale_log2)" = 16 ] || fail "optim.loss_scale_log2 is '$(meta a/$ck optim.loss_scale_log2)'"
    # auto in f32 and off in f16: no scaling, not said
    run train $tiny --steps 2 --out f
    case "$out" in *"loss scale"*) fail "f32 with auto: a loss scale said" ;; esac
    [ -z "$(meta f/$ck optim.loss_scale_log2)" ] || fail "f32 with auto: the optimizer scales"
    run train $tiny --precision f16 --loss-scale off --steps 2 --out o
    case "$out" in *" in f16, emulated, lstm"*) ;; *) fail "--loss-scale off: the banner says a scale" ;; esac
    [ "$(meta o/$ck recur.loss_scale)" = off ] || fail "--loss-scale off: recur.loss_scale '$(meta o/$ck recur.loss_scale)'"
    [ -z "$(meta o/$ck optim.loss_scale_log2)" ] || fail "--loss-scale off: the optimizer scales"
    # a scale given, a growth interval: kept on --resume (the scale's state too: 1024 grew to 2048
    # after 3 good steps, then 4096), changed when given
    run train $tiny --precision f16 --loss-scale 1024 --loss-scale-interval 3 --steps 4 --out g
    case "$out" in *"loss scale 1024 (dynamic)"*) ;; *) fail "--loss-scale 1024 not said" ;; esac
    [ "$(meta g/$ck recur.loss_scale)" = 1024 ] || fail "recur.loss_scale is '$(meta g/$ck recur.loss_scale)'"
    [ "$(meta g/$ck optim.loss_scale_log2)" = 11 ] || fail "1024 after 4 steps at interval 3: log2 '$(meta g/$ck optim.loss_scale_log2)'"
    run train --resume --out g --steps 6 --quiet --samples 0
    case "$out" in *"loss scale 2048 (dynamic)"*) ;; *) fail "resumed: the banner does not say the checkpoint's scale" ;; esac
    [ "$(meta g/$ck recur.loss_scale)" = 1024 ] || fail "resumed: recur.loss_scale is '$(meta g/$ck recur.loss_scale)'"
    [ "$(meta g/$ck recur.loss_scale_interval)" = 3 ] || fail "resumed: the interval is '$(meta g/$ck recur.loss_scale_interval)'"
    [ "$(meta g/$ck optim.loss_scale_log2)" = 12 ] || fail "resumed: log2 '$(meta g/$ck optim.loss_scale_log2)', not 12"
    run train --resume --out g --steps 8 --loss-scale off --quiet --samples 0
    case "$out" in *"loss scale"*) fail "resumed with --loss-scale off: a scale said" ;; esac
    [ "$(meta g/$ck recur.loss_scale)" = off ] || fail "resumed off: recur.loss_scale is '$(meta g/$ck recur.loss_scale)'"
    # a scale far too large: the f16 products of the scaled gradients overflow, steps are skipped
    # (not a divergence) and the scale halved until they fit; said at the end, the metrics stay
    # JSON numbers, the checkpoint counts the skips and resumes to the uninterrupted run's bits
    big="--precision f16 --loss-scale 1152921504606846976 --eval-every 10 --checkpoint-every 10"
    run train $tiny $big --steps 40 --out s
    case "$out" in *"loss scale 2^60 (dynamic)"*) ;; *) fail "2^60 not said" ;; esac
    n=$(printf '%s\n' "$out" | sed -n 's/^loss scale: \([0-9]*\) of the 40 steps skipped for an overflow.*the scale is now \([0-9]*\)$/\1/p')
    atleast "$n" 1 || fail "no skipped steps said"
    # each evaluation line says the scale then and the skips so far
    case "$out" in *"step 10: train loss "*"; loss scale "*", "*" steps skipped"*) ;; *) fail "the evaluation line does not say the scale and the skips" ;; esac
    [ "$(meta s/$ck recur.skipped)" = "$n" ] || fail "recur.skipped is '$(meta s/$ck recur.skipped)', $n said"
    [ "$(meta s/$ck optim.skipped)" = "$n" ] || fail "optim.skipped is '$(meta s/$ck optim.skipped)', $n said"
    grep -q -i 'nan\|inf' s/metrics.jsonl && fail "metrics.jsonl has a NaN or Inf"
    [ "$(grep -c '^{"step":[0-9]*,"epoch":1,"lr":0.002,"train_loss":[0-9.]*,"val_loss":[0-9.]*,"loss_scale":[0-9.e+]*,"skipped":[0-9]*}$' s/metrics.jsonl)" = 4 ] ||
        fail "metrics.jsonl is not 4 lines of numbers with the scale and the skips"
    # its last line: the run's skips, and the scale said at the end
    now=$(printf '%s\n' "$out" | sed -n 's/^loss scale: .*the scale is now \([0-9]*\)$/\1/p')
    tail -n 1 s/metrics.jsonl | grep -q "\"loss_scale\":$now,\"skipped\":$n}$" ||
        fail "metrics.jsonl's last line: $(tail -n 1 s/metrics.jsonl), not the scale $now and $n skips"
    # no scale, no such fields
    grep -q loss_scale a/metrics.jsonl || fail "a/metrics.jsonl: no loss_scale with auto in f16"
    grep -q loss_scale f/metrics.jsonl && fail "f/metrics.jsonl: a loss_scale without scaling"
    run train $tiny $big --steps 20 --out r
    run train --resume --out r --steps 40 --quiet --samples 0
    cmp r/$ck s/$ck || fail "resumed and uninterrupted checkpoints differ after skipped steps"
    cmp r/metrics.jsonl s/metrics.jsonl || fail "resumed and uninterrupted metrics.jsonl differ"
    # a checkpoint whose skips do not add up with the optimizer's steps
    mkdir x
    cp s/$ck x/$ck
    set_meta x/$ck recur.skipped 0
    expect 1 "is inconsistent: recur.step 40, the optimizer made" train --resume --out x --steps 41
    # crafted histories: a step that is NaN, past the checkpoint's or out of order, a loss scale that
    # is not a power of two in 1..2^100, skips past their step or not at the scale's steps: refused
    # by name, nothing written
    nan='\000\000\300\177' three='\000\000\100\100' big='\000\000\200\177' eleven='\000\000\060\101' # NaN, 3, +Inf, 11
    for c in "train.val 0 $nan" "train.val 6 $three" "train.loss 0 $big" "train.loss_scale 1 $three" \
             "train.loss_scale 3 $big" "train.skipped 1 $big" "train.skipped 7 $nan" "train.skipped 0 $eleven"; do
        rm -rf x && mkdir x && cp s/$ck x/$ck
        # shellcheck disable=SC2086
        set_float x/$ck $c
        cmp -s x/$ck s/$ck && fail "set_float $c changed nothing"
        expect 1 "the loss histories are missing or malformed" train --resume --out x --steps 41
        [ -e x/metrics.jsonl ] && fail "a refused checkpoint ($c) wrote metrics.jsonl"
    done
    ;;
resume-equal-classify)
    args="--task classify --cell gru --direction bidi --hidden 16 --embed 8 --batch 8 --layers 2 --dropout 0.2 --val-size 50 --quiet"
    run train $args --eval-every 15 --checkpoint-every 25 --steps 40 --out a
    run train --resume --out a --steps 80 --quiet
    run train $args --eval-every 15 --checkpoint-every 25 --steps 80 --out b
    cmp a/$ck b/$ck || fail "resumed and uninterrupted checkpoints differ"
    ;;
resume-equal-zoneout)
    # zoneout's masks follow the call count too; the setting is in the checkpoint and the banner
    args="--task classify --cell lstm --hidden 16 --embed 8 --batch 8 --layers 2 --zoneout 0.2 --val-size 50"
    run train $args --eval-every 15 --checkpoint-every 25 --steps 40 --out a
    case "$out" in *"zoneout 0.2"*) ;; *) fail "the banner does not show zoneout 0.2" ;; esac
    run train --resume --out a --steps 80 --quiet
    run train $args --quiet --eval-every 15 --checkpoint-every 25 --steps 80 --out b
    cmp a/$ck b/$ck || fail "resumed and uninterrupted checkpoints differ"
    grep -a -q '"recur.zoneout":"0.2' a/$ck || fail "no recur.zoneout in the checkpoint"
    grep -a -q '"zoneout":"0.2"' a/$ck || fail "no zoneout in the checkpoint's model"
    expect 2 "--zoneout" train $args --zoneout 1 --steps 1 --out c
    ;;
resume-equal-dates)
    args="--task dates --hidden 16 --embed 8 --batch 8 --val-size 20 --quiet --eval-every 15"
    run train $args --steps 30 --out a
    run train --resume --out a --steps 60 --quiet
    run train $args --steps 60 --out b
    cmp a/$ck b/$ck || fail "resumed and uninterrupted checkpoints differ"
    ;;
quality-lm)
    # many-to-many at a reduced size: the validation loss of the word sample
    run train --corpus "$words" --hidden 64 --embed 16 --batch 16 --bptt 32 --steps 300 --lr 0.01 \
        --eval-every 100 --samples 4 --quiet --out a
    v=$(value "$out" "val loss")
    echo "val loss $v (threshold 2.45; a uniform guess is ln 27 = 3.30)"
    below "$v" 2.45 || fail "val loss $v"
    [ -s a/loss.svg ] || fail "no loss.svg"
    run eval --model a/$ck
    e=$(value "$out" loss)
    [ "$e" = "$v" ] || fail "recur eval says $e, training said $v"
    ;;
sample-lm)
    # one-to-many: temperature, top-k, --start, seeds
    run train --corpus "$words" --hidden 32 --embed 16 --batch 16 --bptt 32 --steps 80 --lr 0.01 --quiet \
        --samples 0 --out a
    run sample --model a/$ck --n 6 --temperature 0.7 --top-k 5 --seed 3
    s1=$out
    [ "$(printf '%s\n' "$s1" | grep -c '^[a-z]*$')" -eq 6 ] || fail "expected 6 lines of letters"
    [ "$(printf '%s\n' "$s1" | tr -d '\n' | wc -c)" -gt 6 ] || fail "the samples are (almost) empty"
    run sample --model a/$ck --n 6 --temperature 0.7 --top-k 5 --seed 3
    [ "$out" = "$s1" ] || fail "the same seed gave other samples"
    run sample --model a/$ck --n 3 --start th --length 12
    [ "$(printf '%s\n' "$out" | grep -c '^th[a-z]*$')" -eq 3 ] || fail "expected 3 samples starting with th"
    run sample --model a/$ck --n 3 --temperature 0
    [ "$(printf '%s\n' "$out" | sort -u | wc -l)" -eq 1 ] || fail "greedy samples differ"
    expect 1 "--start" sample --model a/$ck --start "TH"
    ;;
quality-classify)
    # many-to-one: remembering the first symbol over up to 8 steps
    run train --task classify --cell gru --hidden 32 --embed 8 --alphabet 4 --min-len 3 --max-len 8 --batch 32 --steps 300 \
        --lr 0.01 --val-size 400 --eval-every 100 --quiet --out a
    held_out accuracy 0.9
    run sample --model a/$ck --input "2 1 3 0 2"
    case "$out" in "class "*) ;; *) fail "no class printed" ;; esac
    expect 2 "--input" sample --model a/$ck --input "0 9"
    ;;
quality-dates)
    # encoder-decoder at a reduced size
    run train --task dates --hidden 128 --embed 32 --batch 64 --steps 600 --val-size 200 --eval-every 300 --quiet \
        --out a
    em=$(value "$out" "exact match")
    echo "held-out exact match $em (threshold 0.6; about 0.95 measured)"
    atleast "$em" 0.6 || fail "exact match $em"
    run sample --model a/$ck --input "3rd of March 1998"
    printf '%s\n' "$out" | grep -qx '[0-9]\{4\}-[0-9][0-9]-[0-9][0-9]' || fail "not an ISO date"
    run eval --model a/$ck --size 100 --seed 5
    ;;
sigint)
    interrupt 1 train $tiny --steps 100000000 --eval-every 100000000 --checkpoint-every 100000000 --out s
    grep -q "resume with: recur train --resume --out s" log || fail "no resume hint"
    grep -q "s/$ck" log || fail "the checkpoint's path is not printed"
    run sample --model s/$ck --n 2
    step=$(sed -n 's/.*interrupted at step \([0-9]*\).*/\1/p' log)
    run train --resume --out s --steps $((step + 3)) --quiet --samples 0
    ;;
# ---- issue 12: what a new user sees ----
devices)
    # columns as wide as their longest entry (a 49-byte PoCL name broke them), RECUR_DEVICE unset said so
    out=$(env -u RECUR_DEVICE "$recur" devices) || fail "recur devices exited $?"
    printf '%s\n' "$out"
    case "$out" in *"chosen now (RECUR_DEVICE unset): "*) ;; *) fail "does not say RECUR_DEVICE is unset" ;; esac
    printf '%s\n' "$out" | awk '
        NR == 1 { b = index($0, "BACKEND"); n = index($0, "NAME"); d = index($0, "DETAIL"); next }
        /^$/ { exit }
        { if (substr($0, b - 2, 2) != "  " || substr($0, n - 2, 2) != "  " || substr($0, d - 2, 2) != "  " ||
              substr($0, b, 1) == " " || substr($0, d, 1) == " ") { print "misaligned: " $0; bad = 1 } }
        END { exit bad }' || fail "the columns are not aligned"
    out=$(RECUR_DEVICE=cpu "$recur" devices) || fail "recur devices exited $?"
    case "$out" in *"chosen now (RECUR_DEVICE=cpu): cpu"*) ;; *) fail "RECUR_DEVICE=cpu not said" ;; esac
    # the CPU's half-precision arithmetic, in the detail of every cpu row
    printf '%s\n' "$out" | grep '^cpu' | grep -qv 'bf16: .*; fp16: ' && fail "a cpu row does not say its bf16 and fp16"
    ;;
progress)
    # classify has no epochs: step/steps; the loss a running mean; validation on stderr, paths on stdout
    args="--task classify --hidden 8 --embed 4 --batch 4 --val-size 8 --steps 30 --eval-every 10 --out c"
    "$recur" train $args > out.txt 2> err.txt || fail "train exited $?"
    cat out.txt err.txt
    grep -q epoch err.txt && fail "classify says epoch"
    grep -q '^step 1/30  loss ' err.txt || fail "no 'step 1/30' progress line"
    grep -q 'train loss [0-9.]* (mean since step 10), val loss' err.txt || fail "no validation line on stderr"
    grep -q '^step.*val loss' out.txt && fail "a validation line on stdout"
    grep -q '^checkpoint: c/checkpoint.safetensors' out.txt || fail "the checkpoint's path is not on stdout"
    # --quiet hides the progress line only
    "$recur" train $args --quiet > out.txt 2> err.txt || fail "train --quiet exited $?"
    grep -q 'tok/s' err.txt && fail "--quiet printed progress"
    [ "$(grep -c 'val loss' err.txt)" -eq 3 ] || fail "--quiet hid the validation lines"
    # lm has epochs
    "$recur" train --corpus "$words" --hidden 32 --embed 16 --batch 8 --bptt 16 --samples 0 --steps 3 --out l \
        > out.txt 2> err.txt || fail "lm exited $?"
    grep -q '^epoch 1  step 1/3' err.txt || fail "lm: no epoch"
    # the picture: the loss's unit, classify's accuracy on its own axis
    grep -q 'nats per symbol' c/loss.svg || fail "loss.svg does not say the unit"
    grep -q 'held-out accuracy' c/loss.svg || fail "classify's loss.svg has no accuracy"
    grep -q 'held-out accuracy' l/loss.svg && fail "lm's loss.svg has an accuracy"
    ;;
version)
    run --version
    v=$out
    printf '%s\n' "$v" | grep -qx 'recur [0-9]*\.[0-9]*\.[0-9]*' || fail "not 'recur X.Y.Z'"
    run version
    [ "$out" = "$v" ] || fail "recur version and recur --version differ"
    ;;

# ---- training conveniences ----
schedule)
    # warm-up then step: the rate of each evaluation's last step in metrics.jsonl
    run train --task classify --hidden 8 --embed 4 --batch 4 --val-size 8 --steps 40 --eval-every 10 --quiet \
        --lr 0.01 --warmup 10 --lr-schedule step --lr-decay-every 10 --lr-gamma 0.5 --out s
    cat s/metrics.jsonl
    [ "$(wc -l < s/metrics.jsonl)" -eq 4 ] || fail "expected 4 lines of metrics"
    lrs=$(sed 's/.*"lr":\([^,]*\),.*/\1/' s/metrics.jsonl | tr '\n' ' ')
    [ "$lrs" = "0.01 0.01 0.005 0.0025 " ] || fail "lr by evaluation: $lrs"
    grep -q '"step":10,"lr":0.01,"train_loss":[0-9.e-]*,"val_loss":[0-9.e-]*,"accuracy":' s/metrics.jsonl ||
        fail "a metrics line lacks a field"
    # cosine: down to a hundredth at --steps; warm-up starts at lr/warmup
    run train --task classify --hidden 8 --embed 4 --batch 4 --val-size 8 --steps 40 --eval-every 1 --quiet \
        --lr 0.01 --warmup 4 --lr-schedule cosine --out c
    [ "$(sed -n 1p c/metrics.jsonl | sed 's/.*"lr":\([^,]*\),.*/\1/')" = 0.0025 ] || fail "warm-up's first rate"
    last=$(tail -n 1 c/metrics.jsonl | sed 's/.*"lr":\([^,]*\),.*/\1/')
    below "$last" 0.0002 || fail "cosine ends at $last"
    atleast "$last" 0.0001 || fail "cosine ends at $last, below lr/100"
    ;;
resume-equal-conveniences)
    # the schedule's position, the best loss, the patience count and accumulation resume exactly
    args="--task classify --hidden 16 --embed 8 --batch 8 --val-size 50 --eval-every 10 --checkpoint-every 25 --quiet
          --lr-schedule step --lr-decay-every 20 --warmup 15 --accum 2 --patience 50 --lr 0.01"
    run train $args --steps 40 --out a
    run train --resume --out a --steps 80 --quiet
    run train $args --steps 80 --out b
    cmp a/$ck b/$ck || fail "resumed and uninterrupted checkpoints differ"
    # (the best checkpoint of a's first run says --steps 40: compare its step)
    [ "$(meta a/best.safetensors recur.step)" = "$(meta b/best.safetensors recur.step)" ] || fail "the best steps differ"
    cmp a/metrics.jsonl b/metrics.jsonl || fail "the metrics differ"
    [ "$(meta b/$ck recur.accum)" = 2 ] || fail "recur.accum not kept"
    # cosine follows --steps: a run interrupted (Ctrl-C) and resumed to the same --steps is the whole run
    args="--task classify --hidden 8 --embed 4 --batch 4 --val-size 20 --eval-every 50 --quiet --lr-schedule cosine
          --warmup 100 --accum 2 --patience 50 --steps 20000"
    interrupt 0.3 train $args --out c
    echo "interrupted at step $(meta c/$ck recur.step)"
    run train --resume --out c --quiet
    run train $args --out d
    cmp c/$ck d/$ck || fail "cosine: resumed and uninterrupted checkpoints differ"
    cmp c/metrics.jsonl d/metrics.jsonl || fail "cosine: the metrics differ"
    cmp c/best.safetensors d/best.safetensors || fail "cosine: the best checkpoints differ"
    ;;
accum)
    # SGD over two batches of 4 a step is the step of their mean: not one batch of 4, and clipped alike
    base="--task classify --hidden 8 --embed 4 --val-size 8 --steps 5 --quiet --optim sgd --lr 0.5 --seed 3"
    run train $base --batch 4 --accum 2 --out a
    case "$out" in *"2 batches a step"*) ;; *) fail "the banner does not say 2 batches a step" ;; esac
    run eval --model a/$ck
    la=$(value "$out" loss)
    run train $base --batch 4 --out b
    run eval --model b/$ck
    lb=$(value "$out" loss)
    [ "$la" != "$lb" ] || fail "--accum 2 changed nothing"
    expect 2 "--accum" train --accum 0 --out x
    ;;
early-stop)
    # a rate too small to move a float32 weight: the validation loss never improves
    run train --task classify --hidden 8 --embed 4 --batch 4 --val-size 8 --steps 100 --eval-every 10 \
        --optim sgd --lr 1e-30 --patience 2 --quiet --out e
    case "$out" in *"early stop at step 30"*) ;; *) fail "no early stop at step 30" ;; esac
    [ "$(meta e/$ck recur.step)" = 30 ] || fail "the checkpoint is at step $(meta e/$ck recur.step)"
    [ "$(meta e/best.safetensors recur.step)" = 10 ] || fail "the best checkpoint is not step 10's"
    [ "$(meta e/$ck recur.bad_evals)" = 2 ] || fail "recur.bad_evals $(meta e/$ck recur.bad_evals)"
    run train --resume --out e --quiet
    case "$out" in *"stopped early at step 30 already"*) ;; *) fail "resumed after the stop" ;; esac
    run train --resume --out e --patience 3 --quiet
    [ "$(meta e/$ck recur.step)" = 40 ] || fail "a larger --patience did not go on to step 40"
    # a crafted patience counter is refused
    set_meta e/$ck recur.bad_evals -1
    expect 1 "recur.bad_evals '-1'" train --resume --out e --patience 9 --quiet
    ;;

# ---- the user's own data (examples/data) ----
data-errors)
    # TASK|FILE'S TEXT (printf)|what the message says after "bad.tsv"
    while IFS='|' read -r task text said; do
        printf "$text" > bad.tsv
        expect 1 "bad.tsv$said" train --task $task --data bad.tsv --out o
    done <<'LINES'
classify|even\tone\nodd\n|:2: no tab (expected LABEL<TAB>SEQUENCE)
classify|a\tb\tc\nb\tx\n|:1: more than one tab
generate|a\tx\n\tx\n|:2: an empty label
seq2seq|one\t1\ntwo\t\n|:2: an empty target
classify|a\tx\na\ty\n|: every example has the label 'a'
classify|a\tx\nb\t\377\n|:2: not valid UTF-8
LINES
    mkfifo fifo
    expect 1 "fifo: not a regular file (a FIFO)" train --task classify --data fifo --out o
    truncate -s 65M big.tsv
    expect 1 "big.tsv: 68157440 bytes, over the limit of 64 MiB" train --task classify --data big.tsv --out o
    expect 1 "$work/nosuch.tsv" train --task classify --data "$work/nosuch.tsv" --out o
    # seq2seq and generate need a file; the generated classify task's options are not --data's
    expect 2 "--task seq2seq learns from a file" train --task seq2seq --out o
    expect 2 "--alphabet is an option of the generated classify task" \
        train --task classify --data "$examples/parity.tsv" --alphabet 4 --out o
    expect 2 "--val-frac is for --task classify with --data" train --task classify --val-frac 0.2 --out o
    [ -e o/$ck ] && fail "a checkpoint was written"
    # labels in a checkpoint are input too ("even", "odd", "odd": not in increasing order)
    run train --task classify --data "$examples/parity.tsv" --hidden 8 --embed 4 --steps 0 --out c
    set_meta c/$ck recur.labels 6576656e0a6f64640a6f64640a
    expect 1 "metadata 'recur.labels' is malformed" sample --model c/$ck --input one
    ;;
data-classify)
    # many-to-one from a file: the parity of a number in words (examples/data/parity.tsv)
    run train --task classify --data "$examples/parity.tsv" --val-frac 0.2 --hidden 32 --embed 16 --steps 150 \
        --eval-every 50 --quiet --out a
    held_out accuracy 0.95
    run eval --model a/$ck --data "$examples/parity.tsv"
    case "$out" in *"/1000 examples of --data"*) ;; *) fail "eval --data did not read the 1000 examples" ;; esac
    run sample --model a/$ck --input "three hundred seventy-one"
    [ "${out%% *}" = odd ] || fail "371 is not odd: $out"
    run sample --model a/$ck --input "forty-two"
    [ "${out%% *}" = even ] || fail "42 is not even: $out"
    expect 1 "the byte 0x58 ('X') is not in the model's vocabulary" sample --model a/$ck --input "X"
    expect 2 "--input TEXT is required" sample --model a/$ck
    ;;
data-seq2seq)
    # encoder-decoder from a file: numbers in words to digits (examples/data/numbers.tsv), reduced
    run train --task seq2seq --data "$examples/numbers.tsv" --val-frac 0.1 --hidden 64 --embed 16 --batch 32 \
        --steps 400 --lr 0.01 --eval-every 200 --quiet --out a
    em=$(value "$out" "exact match")
    echo "held-out exact match $em (threshold 0.5)"
    atleast "$em" 0.5 || fail "exact match $em"
    run eval --model a/$ck
    [ "$(value "$out" "exact match")" = "$em" ] || fail "recur eval disagrees"
    run sample --model a/$ck --input "six hundred five"
    printf '%s\n' "$out" | tail -n 1 | grep -qx '[0-9]*' || fail "not digits: $out"
    ;;
data-generate)
    # one-to-many: a number in words from its hundreds digit (examples/data/hundreds.tsv)
    run train --task generate --data "$examples/hundreds.tsv" --val-frac 0.1 --hidden 64 --embed 16 --steps 300 \
        --lr 0.01 --eval-every 100 --samples 4 --quiet --out a
    v=$(value "$out" "val loss")
    echo "held-out loss $v nats per symbol (threshold 0.5; uniform over 22 symbols: 3.1)"
    below "$v" 0.5 || fail "val loss $v"
    [ "$(printf '%s\n' "$out" | grep -c '^[0-9]	[a-z -]*$')" -eq 4 ] || fail "expected 4 samples"
    # the label is the first word: 10 of 10
    run sample --model a/$ck --input 7 --n 10 --seed 2
    [ "$(printf '%s\n' "$out" | grep -c '^7	seven hundred')" -eq 10 ] || fail "expected 10 samples of seven hundred"
    s1=$out
    run sample --model a/$ck --input 7 --n 10 --seed 2
    [ "$out" = "$s1" ] || fail "the same seed gave other samples"
    expect 1 "--input 'three': not a label of the model" sample --model a/$ck --input three
    run eval --model a/$ck
    [ "$(value "$out" loss)" = "$v" ] || fail "recur eval disagrees"
    ;;
resume-equal-data)
    for task in classify seq2seq generate; do
        f=$examples/parity.tsv
        [ $task = seq2seq ] && f=$examples/numbers.tsv
        args="--task $task --data $f --hidden 16 --embed 8 --batch 8 --eval-every 15 --quiet"
        run train $args --steps 20 --out $task-a
        run train --resume --out $task-a --steps 40 --quiet
        run train $args --steps 40 --out $task-b
        cmp $task-a/$ck $task-b/$ck || fail "$task: resumed and uninterrupted checkpoints differ"
    done
    # another text under the same name is another model
    sed 's/one/won/' "$examples/parity.tsv" > other.tsv
    run train --task classify --data other.tsv --hidden 16 --embed 8 --steps 2 --quiet --out o
    cp "$examples/parity.tsv" other.tsv
    expect 1 "is not the file it was trained on" train --resume --out o --steps 4 --quiet
    ;;
readme)
    # README says what recur is before any command, and its main job installs only the run packages
    root=$data/../..
    r=$root/README.md
    first_apt=$(grep -n 'apt-get' "$r" | head -n 1 | cut -d: -f1)
    what=$(grep -n '^recur is a C11 library' "$r" | head -n 1 | cut -d: -f1)
    [ -n "$what" ] && [ -n "$first_apt" ] && [ "$what" -lt "$first_apt" ] || fail "README: apt-get before what recur is"
    main=$(grep -m 1 'recur train$' "$r")
    case "$main" in *'$(cat .ci/packages-run)'*'-Dtests=false'*) ;; *) fail "README's main job: $main" ;; esac
    for p in libcriterion-dev clang libclang-rt-14-dev pocl-opencl-icd; do
        grep -qx "$p" "$root/.ci/packages-run" && fail ".ci/packages-run has $p, which the main job does not need"
        grep -qx "$p" "$root/.ci/packages" || fail ".ci/packages lacks $p"
    done
    grep -q 'cat .ci/packages-run .ci/packages' "$root/.ci/run" || fail ".ci/run does not install both lists"
    ;;
demo)
    # demo says up front how many runs it makes, then a line as each is done (it was silent for 15 s)
    out=$("$recur" demo --cell rnn | cat) || fail "recur demo exited $?"
    printf '%s\n' "$out"
    printf '%s\n' "$out" | sed -n 4p | grep -qx '2 cells and variants to check, a line each (times after a warm-up run)' ||
        fail "no count of the runs before them"
    [ "$(printf '%s\n' "$out" | grep -c '^rnn:\(tanh\|relu\) .* ok$')" -eq 2 ] || fail "expected a line per variant"
    ;;
*)
    fail "unknown case"
    ;;
esac
echo "ok ($case)"
