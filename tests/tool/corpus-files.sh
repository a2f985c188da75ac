#!/bin/sh
# tests/tool/corpus-files.sh RECUR CORPUS: every file of the fuzz corpus
# (tests/fuzz/corpus: crafted model files and checkpoints) given to recur
# sample, eval and train --resume, as a user's --model or a run to resume.
# Each must end within 30 s with status 0 or 1, never a signal or a hang, and
# a failure must say what was wrong on stderr, naming the file.
recur=$1
corpus=$2
case $recur in /*) ;; *) recur=$PWD/$recur ;; esac
case $corpus in /*) ;; *) corpus=$PWD/$corpus ;; esac
work=$(mktemp -d "${TMPDIR:-/tmp}/recur-corpus-XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
status=0
n=0
for f in "$corpus"/*; do
    name=$(basename "$f")
    rm -rf run && mkdir run && cp "$f" run/checkpoint.safetensors
    for cmd in "sample --model $f --n 2" "eval --model $f --size 8" "train --resume --out run --steps 1 --quiet"; do
        # shellcheck disable=SC2086
        timeout 30 "$recur" $cmd > out.txt 2> err.txt
        rc=$?
        n=$((n + 1))
        case $rc in
        0) ;;
        1)
            if [ ! -s err.txt ]; then
                echo "FAIL $name: recur $cmd exited 1 with nothing on stderr"; status=1
            elif ! grep -q -e "$name" -e checkpoint.safetensors err.txt; then
                echo "FAIL $name: recur $cmd: the message does not name the file:"; cat err.txt; status=1
            fi
            ;;
        124) echo "FAIL $name: recur $cmd did not end in 30 s"; status=1 ;;
        *) echo "FAIL $name: recur $cmd exited $rc:"; cat err.txt; status=1 ;;
        esac
    done
done
echo "$n runs over $(ls "$corpus" | wc -l) files"
exit $status
