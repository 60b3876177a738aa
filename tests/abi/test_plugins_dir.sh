#!/usr/bin/env bash
# test_plugins_dir.sh SCALEBUS PLUGIN_SO WORK_DIR - `scalebus plugins --plugin-dir DIR` over
# trusted and untrusted folders: it lists the plugin from a trusted folder and exits 0; it exits 1
# with one line on stderr naming the folder (and its mode) when DIR, or any folder above it, is
# writable by group or others, when DIR is missing, or (as root) when DIR belongs to another user.
# A group-writable file in a trusted folder is refused with its own line, but the folder itself
# is fine, so the exit code stays 0.
#
# The folders are made under WORK_DIR (the build tree), since a sticky /tmp cannot be trusted.
# When WORK_DIR itself cannot be trusted this says SKIP and exits 77 (ctest: skipped); so does
# the foreign-owner part when not run as root.
set -u
scalebus=$1
plugin_so=$2
work=$3

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# Whether a folder and every folder above it are owned by root or us and writable by no one else.
trusted() {
    local p
    p=$(realpath "$1") || return 1
    while :; do
        local mode uid
        mode=$(stat -c '%a' "$p") && uid=$(stat -c '%u' "$p") || return 1
        if [ "$uid" != 0 ] && [ "$uid" != "$(id -u)" ]; then
            echo "$p belongs to uid $uid"
            return 1
        fi
        if (((8#$mode & 8#022) != 0)); then
            echo "$p has mode $mode"
            return 1
        fi
        [ "$p" = / ] && return 0
        p=$(dirname "$p")
    done
}

if ! why=$(trusted "$work"); then
    echo "SKIP: the loader cannot trust the build tree ($why); build under a folder only root or you can write to"
    exit 77
fi
[ -x "$scalebus" ] || fail "no scalebus binary at $scalebus"
[ -f "$plugin_so" ] || fail "no plugin at $plugin_so"

base=$(mktemp -d "$work/sb-test-plugins-dir-XXXXXX") || fail "mktemp"
base=$(realpath "$base")
trap 'chmod -R u+rwx "$base" 2>/dev/null; rm -rf "$base"' EXIT
chmod 0755 "$base"
dir=$base/plugins
mkdir "$dir" && chmod 0755 "$dir"
cp "$plugin_so" "$dir/frozen_v2.so" && chmod 0644 "$dir/frozen_v2.so"

# run_plugins DIR: runs `scalebus plugins --plugin-dir DIR`; sets rc, out, err.
run_plugins() {
    out=$("$scalebus" plugins --plugin-dir "$1" 2>"$base/stderr")
    rc=$?
    err=$(cat "$base/stderr")
}

# expect_refused DIR LINE: exit code 1 and exactly one stderr line containing LINE.
expect_refused() {
    run_plugins "$1"
    [ "$rc" = 1 ] || fail "plugins --plugin-dir $1: exit code $rc, expected 1 (stderr: $err)"
    local n
    n=$(grep -cF -- "$2" <<<"$err")
    [ "$n" = 1 ] || fail "plugins --plugin-dir $1: $n lines with \"$2\" on stderr, expected 1: $err"
}

echo "a trusted folder: listed, exit 0"
run_plugins "$dir"
[ "$rc" = 0 ] || fail "trusted folder: exit code $rc (stderr: $err)"
grep -q '^frozen_v2 ' <<<"$out" || fail "trusted folder: frozen_v2 not listed: $out"
grep -qF "$dir" <<<"$err" && fail "trusted folder: a line about it on stderr: $err"

echo "the folder is 0775: exit 1"
chmod 0775 "$dir"
expect_refused "$dir" "$dir: not loaded: the folder is writable by its group (mode 0775)"
grep -q '^frozen_v2 ' <<<"$out" && fail "0775 folder: frozen_v2 listed anyway"
chmod 0755 "$dir"

echo "the folder above it is 0777: exit 1"
chmod 0777 "$base"
expect_refused "$dir" \
    "$dir: not loaded: the folder $base above it is writable by its group and others (mode 0777)"
chmod 1777 "$base"
expect_refused "$dir" \
    "$dir: not loaded: the folder $base above it is writable by its group and others (mode 1777)"
chmod 0755 "$base"

echo "a missing folder: exit 1"
expect_refused "$base/missing" "$base/missing: No such file or directory"

echo "a 0664 file in a trusted folder: refused with its line, exit 0"
chmod 0664 "$dir/frozen_v2.so"
run_plugins "$dir"
[ "$rc" = 0 ] || fail "0664 file: exit code $rc, expected 0"
n=$(grep -cF "$dir/frozen_v2.so: not loaded: the file is writable by its group (mode 0664)" <<<"$err")
[ "$n" = 1 ] || fail "0664 file: $n lines about it, expected 1: $err"
chmod 0644 "$dir/frozen_v2.so"

echo "back to a trusted layout: exit 0"
run_plugins "$dir"
[ "$rc" = 0 ] || fail "trusted again: exit code $rc (stderr: $err)"

if [ "$(id -u)" != 0 ]; then
    echo "SKIP: a folder owned by another user needs root to set up; everything else passed"
    exit 77
fi
echo "the folder belongs to nobody: exit 1"
chown 65534 "$dir"
expect_refused "$dir" "$dir: not loaded: the folder is owned by uid 65534, not root (mode 0755)"
chown 0 "$dir"
echo "PASS"
