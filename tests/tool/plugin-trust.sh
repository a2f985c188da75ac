#!/bin/sh
# tests/tool/plugin-trust.sh RECUR MARKER_SO CASE: where `recur` loads cell
# plugins from (core/plugin.c, tools/recur.c find_build_plugins). MARKER_SO is
# tests/marker-plugin's marker.so, whose constructor writes $RECUR_TEST_MARKER:
# its absence proves a plugin was never opened. Runs in a scratch directory
# that it removes; exit 0 pass, 1 fail, 77 skip.
recur=$1
marker_so=$2
case=$3
case $recur in /*) ;; *) recur=$PWD/$recur ;; esac
case $marker_so in /*) ;; *) marker_so=$PWD/$marker_so ;; esac
build=$(dirname "$(dirname "$recur")")
work=$(mktemp -d "${TMPDIR:-/tmp}/recur-trust-XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
export RECUR_TEST_MARKER="$work/marker-ran"
unset RECUR_PLUGIN_PATH RECUR_PLUGIN_TRUST_ANY
# a copy of the tool finds the library of the build it came from
export LD_LIBRARY_PATH="$build/core${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

fail() {
    echo "FAIL ($case): $*"
    exit 1
}
# cells [RECUR]: `recur cells` (of RECUR, default the build's); its output in $out
cells() {
    tool=${1:-$recur}
    echo "+ RECUR_PLUGIN_PATH=${RECUR_PLUGIN_PATH-(unset)} $tool cells"
    out=$("$tool" cells 2>&1)
    printf '%s\n' "$out"
}
has() {
    case "$out" in *"$1"*) ;; *) fail "the output does not contain '$1'" ;; esac
}
ran() {
    [ -e "$RECUR_TEST_MARKER" ] || fail "marker.so did not run: $1"
}
not_ran() {
    [ -e "$RECUR_TEST_MARKER" ] && fail "marker.so ran: $1"
    case "$out" in *marker-test*) fail "cell marker-test is listed: $1" ;; esac
}
# tree DIR BINDIR: DIR/BINDIR/recur (a copy of the tool) and DIR/plugins/marker.so
tree() {
    mkdir -p "$1/$2" "$1/plugins" || exit 1
    cp "$recur" "$1/$2/recur" && cp "$marker_so" "$1/plugins/marker.so" || exit 1
}

case $case in
# A copy of the tool whose path merely contains /tools loads nothing beside it.
copy-tools-2024)
    tree "$work/tools-2024" bin
    cells "$work/tools-2024/bin/recur"
    not_ran "tools-2024/bin/recur loaded tools-2024/plugins"
    ;;
# <DIR>/tools/recur with plugins/ beside it but no build-tree mark, or a wrong one: nothing.
copy-unmarked)
    tree "$work/tree" tools
    cells "$work/tree/tools/recur"
    not_ran "a tools/recur without recur-build-tree loaded ../plugins"
    printf 'recur 0.0.0 build tree: its tools/recur loads its plugins/ (written by meson.build)\n' \
        > "$work/tree/recur-build-tree"
    cells "$work/tree/tools/recur"
    not_ran "a recur-build-tree of another version counted"
    rm "$work/tree/recur-build-tree" && mkfifo "$work/tree/recur-build-tree" || exit 1
    cells "$work/tree/tools/recur"
    not_ran "a FIFO named recur-build-tree counted"
    ;;
# The control: the same copy with the build's own mark beside it loads ../plugins.
copy-marked)
    tree "$work/tree" tools
    cp "$build/recur-build-tree" "$work/tree/" || exit 1
    cells "$work/tree/tools/recur"
    ran "tools/recur of a marked build tree did not load its plugins/"
    has "marker-test"
    ;;
# Setting RECUR_PLUGIN_PATH adds cells to the build tree's own, it does not hide them.
path-keeps-build-cells)
    mkdir p && cp "$marker_so" p/ || exit 1
    export RECUR_PLUGIN_PATH="$work/p"
    cells
    ran "RECUR_PLUGIN_PATH's marker.so did not load"
    has "marker-test"
    has "$build/plugins/lstm.so"
    ;;
# Each refusal is listed by `recur cells` with its reason.
relative-listed)
    mkdir rel && cp "$marker_so" rel/ && cp "$marker_so" . || exit 1
    export RECUR_PLUGIN_PATH="rel:.:"
    cells
    not_ran "a relative RECUR_PLUGIN_PATH entry was searched"
    has "rejected: RECUR_ERR_PLUGIN_PATH: RECUR_PLUGIN_PATH entry 'rel' is relative"
    has "rejected: RECUR_ERR_PLUGIN_PATH: RECUR_PLUGIN_PATH entry '.' is relative"
    has "rejected: RECUR_ERR_PLUGIN_PATH: RECUR_PLUGIN_PATH 'rel:.:': entry 3 is empty"
    ;;
world-writable-listed)
    mkdir ww && cp "$marker_so" ww/ && chmod 777 ww || exit 1
    mkdir d && cp "$marker_so" d/ && chmod 666 d/marker.so || exit 1
    export RECUR_PLUGIN_PATH="$work/ww:$work/d"
    cells
    not_ran "a world-writable directory or file was loaded"
    has "rejected: RECUR_ERR_PLUGIN_UNTRUSTED: $work/ww: the directory is world-writable"
    has "rejected: RECUR_ERR_PLUGIN_UNTRUSTED: $work/d/marker.so: the file is world-writable"
    export RECUR_PLUGIN_TRUST_ANY=1
    cells
    ran "RECUR_PLUGIN_TRUST_ANY=1 did not load them"
    ;;
other-user-listed)
    [ "$(id -u)" = 0 ] || { echo "SKIP: not root, cannot give a file to another user"; exit 77; }
    mkdir d && cp "$marker_so" d/ && chown 65534:65534 d/marker.so || exit 1
    export RECUR_PLUGIN_PATH="$work/d"
    cells
    not_ran "a plugin of uid 65534 was loaded"
    has "rejected: RECUR_ERR_PLUGIN_UNTRUSTED: $work/d/marker.so: the file is owned by uid 65534"
    ;;
not-plugins-listed)
    mkdir -p d/x.so && cp "$marker_so" d/x.so/ || exit 1
    mkfifo d/fifo.so && ln -s "$work/d/none" d/dangling.so && ln -s loop.so d/loop.so || exit 1
    export RECUR_PLUGIN_PATH="$work/d"
    cells
    not_ran "the directory x.so was searched"
    has "rejected: RECUR_ERR_PLUGIN_OPEN: $work/d/x.so: a directory, not a shared object"
    has "rejected: RECUR_ERR_PLUGIN_OPEN: $work/d/fifo.so: a FIFO"
    has "rejected: RECUR_ERR_PLUGIN_OPEN: $work/d/dangling.so: a dangling symbolic link"
    has "rejected: RECUR_ERR_PLUGIN_OPEN: $work/d/loop.so: a symbolic link loop"
    ;;
# RECUR_LOG=debug names every directory searched and every file tried.
debug-log)
    mkdir p && cp "$marker_so" p/ || exit 1
    export RECUR_PLUGIN_PATH="$work/p" RECUR_LOG=debug
    cells
    has "searching plugin directory $work/p"
    has "trying plugin $work/p/marker.so"
    has "searching plugin directory $build/plugins"
    has "trying plugin $build/plugins/lstm.so"
    ;;
*)
    fail "unknown case"
    ;;
esac
echo "PASS ($case)"
