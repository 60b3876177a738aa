#!/bin/bash
# What `scalebus check` tells an operator, through the real binary: every error of a file as
# FILE:LINE:COL, in file order, exit 1 (a list given as one string, unknown options and types
# with their suggestion, integers and durations out of range, merge keys); plugins.path folders
# that are missing or refused (exit 1, and the unknown type says why); whole-file problems at
# 1:1; a FIFO refused at once; an empty file valid, and `run` on it warns and stops on SIGTERM
# with 0; merge keys and quoted ${VAR} in flow mappings; and the README's promises (the plugin
# example compiles warning-free, the limits it states, `--help`). Ends only what it started.
#
#   tests/test_check.sh BUILD/scalebus SOURCE_DIR WORK_DIR
#
# WORK_DIR is in the build tree: the loader never trusts folders under a sticky /tmp.
set -u
SB=$1
SRC=$2
WORK=$3
E2E=$SRC/tests/e2e
fails=0
daemon=""
W=$(mktemp -d "$WORK/sb-test-check-XXXXXX") && W=$(realpath "$W") || exit 1
cleanup() {
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
  chmod -R u+rwx "$W" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT

. "$(dirname "$0")/lib.sh"

# expect_check FILE RC EXPECTED: `scalebus check FILE` exits RC and prints exactly EXPECTED.
expect_check() {
  local out rc
  out=$(timeout 20 "$SB" check "$1" 2>"$W/stderr"); rc=$?
  if [ "$rc" = "$2" ] && [ "$out" = "$3" ]; then
    ok "check $(basename "$1"): exit $2, the expected lines"
  else
    not_ok "check $1: exit $rc (want $2); got:"
    printf '%s\n' "$out" "-- stderr:" "$(cat "$W/stderr")" "-- wanted:" "$3" | sed 's/^/#   /'
  fi
}

# 1. Every error at its position, sorted by line and column (phase 2's before phase 1's in the
#    order they were found), exit 1.
f=$E2E/check-errors.yaml
expect_check "$f" 1 "\
$f:3:54: unknown option 'colour' for cron in trigger 'tick' (its options: schedule, timezone, value)
$f:5:23: unknown plugin type 'dirct' (did you mean 'direct'?)
$f:7:41: option 'command' of process: expected a list of strings, got 'sleep 1000': write [\"sleep\", \"1000\"] (a single string with spaces is one item)
$f:7:60: scaler 'pool': max must be an integer, got '99999999999999999999' (out of range)
$f:8:75: option 'stop_grace' of process: expected a duration like 500ms, 10s or 1m30s, got '99999999999d' (out of range: at most 36500d)
$f:9:11: the merge key '<<' takes a mapping or a list of mappings (like <<: *base), got 'nothing'
$f:9:69: unknown option 'stop_grase' for process (did you mean 'stop_grace'?) in scaler 'merged'
$f:10:11: duplicate id 'tick' (first used at 3:11)"

# 2. plugins.path: a missing folder is an error at its entry; the unknown type says why.
f=$E2E/check-plugin-path.yaml
expect_check "$f" 1 "\
$f:2:19: plugins.path: $E2E/no-such-plugins: No such file or directory
$f:4:21: unknown plugin type 'hello'; the plugins.path folder $E2E/no-such-plugins (2:19) was refused, so none of its plugins were loaded"

# A folder the trust rules refuse (writable by its group), when the build tree itself can be
# trusted (it and every folder above it: root's or ours, writable by no one else).
trusted_tree() {
  local p
  p=$(realpath "$1") || return 1
  while :; do
    local mode uid
    mode=$(stat -c '%a' "$p") && uid=$(stat -c '%u' "$p") || return 1
    { [ "$uid" = 0 ] || [ "$uid" = "$(id -u)" ]; } && (((8#$mode & 8#022) == 0)) || return 1
    [ "$p" = / ] && return 0
    p=$(dirname "$p")
  done
}
chmod 0755 "$W"
if trusted_tree "$W"; then
  mkdir -m 0775 "$W/shared-plugins"
  chmod 0775 "$W/shared-plugins"
  printf 'plugins:\n  path: [./shared-plugins]\ntriggers:\n  - { id: hi, type: hello }\n' \
    >"$W/refused.yaml"
  expect_check "$W/refused.yaml" 1 "\
$W/refused.yaml:2:10: plugins.path: $W/shared-plugins: not loaded: the folder is writable by its group (mode 0775)
$W/refused.yaml:4:21: unknown plugin type 'hello'; the plugins.path folder $W/shared-plugins (2:10) was refused, so none of its plugins were loaded"
  # The same folder made private again: the file is valid (the folder holds no plugin, so
  # only the type is unknown).
  chmod 0755 "$W/shared-plugins"
  expect_check "$W/refused.yaml" 1 "\
$W/refused.yaml:4:21: unknown plugin type 'hello'"
else
  echo "ok - # SKIP refused plugins.path folder: the build tree cannot be trusted"
fi

# 3. Whole-file problems are at 1:1.
expect_check "$W/missing.yaml" 1 "$W/missing.yaml:1:1: cannot read: No such file or directory"
expect_check "$W" 1 "$W:1:1: cannot read: Is a directory"

# 4. A FIFO is refused at once, never waited on (timeout would exit 124).
mkfifo "$W/pipe.yaml"
expect_check "$W/pipe.yaml" 1 "$W/pipe.yaml:1:1: cannot read: a FIFO, not a regular file"

# 5. An empty file is valid; `run` warns that it has nothing to run, and SIGTERM stops it with 0.
expect_check "$E2E/empty.yaml" 0 "$E2E/empty.yaml: ok"
"$SB" run "$E2E/empty.yaml" >"$W/run.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do grep -q "no components" "$W/run.log" && break; sleep 0.1; done
if grep -qF "scalebus: warning: $E2E/empty.yaml has no components" "$W/run.log"; then
  ok "run warns that an empty file has no components"
else
  not_ok "no warning from run on an empty file: $(cat "$W/run.log")"
fi
kill -TERM "$daemon"
rc=124
for _ in $(seq 100); do kill -0 "$daemon" 2>/dev/null || { wait "$daemon"; rc=$?; break; }; sleep 0.1; done
daemon=""
[ "$rc" = 0 ] && ok "run on an empty file: SIGTERM exits 0" || not_ok "SIGTERM exit status $rc"

# 6. Merge keys and x- anchors work; a ${VAR} in a flow mapping needs quotes, and says so.
expect_check "$E2E/merge.yaml" 0 "$E2E/merge.yaml: ok"
out=$("$SB" check "$E2E/merge.yaml" --next 1)
[ "$(grep -cE '^(nightly|hourly) [0-9]{4}-' <<<"$out")" = 2 ] &&
  grep -q 'T03:00:00+00:00$' <<<"$(grep ^nightly <<<"$out")" &&
  ok "merged triggers run their merged schedule" || not_ok "check --next on merge.yaml: $out"
f=$E2E/flow-var.yaml
export SB_CHECK_MAX=3
expect_check "$f" 1 "\
$f:3:57: did not find expected ',' or '}' (while parsing a flow mapping at 3:5); inside { } or [ ], quote a \${VAR}: max: \"\${MAX}\""
sed 's/\${SB_CHECK_MAX}/"${SB_CHECK_MAX}"/' "$f" >"$W/flow-quoted.yaml"
expect_check "$W/flow-quoted.yaml" 0 "$W/flow-quoted.yaml: ok"

# 7. The README: its plugin example compiles warning-free with -Wextra into the folder it makes;
#    the limits it states are the code's; `scalebus --help` ends its sentences.
awk '/^## Writing a plugin/ { f = 1 } f && /^```c$/ { c = 1; next } c && /^```$/ { exit } c' \
  "$SRC/README.md" >"$W/hello.c"
build=$(awk '/^## Writing a plugin/ { f = 1 } f && /^```sh$/ { c = 1; next } c && /^```$/ { exit } c' \
  "$SRC/README.md")
grep -q 'mkdir -p.* my-plugins' <<<"$build" && grep -q -- '-Wextra' <<<"$build" &&
  ok "README's build lines make the folder and ask for -Wextra" || not_ok "README build: $build"
if [ ! -s "$W/hello.c" ]; then
  not_ok "no C example after '## Writing a plugin' in README.md"
elif (cd "$W" && eval "$(sed "s|-I plugins/include|-I '$SRC/plugins/include' -Werror|" <<<"$build")") \
  >"$W/cc.log" 2>&1 && [ -f "$W/my-plugins/hello.so" ]; then
  ok "README plugin example compiles with -Wall -Wextra -Werror into my-plugins/"
  printf 'plugins: { path: [./my-plugins] }\ntriggers:\n  - { id: hi, type: hello, value: 2 }\n' \
    >"$W/hello.yaml"
  if trusted_tree "$W/my-plugins"; then
    expect_check "$W/hello.yaml" 0 "$W/hello.yaml: ok"
  fi
else
  not_ok "README plugin example does not build: $(cat "$W/cc.log")"
fi
grep -q "more than 1,000,000 nodes" "$SRC/README.md" && ! grep -q "200,000 nodes" "$SRC/README.md" &&
  ok "README states the alias limit of 1,000,000 nodes" || not_ok "README alias limit"
grep -qF 'max: "${' "$SRC/README.md" && ok "README shows a quoted \${VAR} in a flow mapping" ||
  not_ok "README lacks a quoted \${VAR} example"
grep -qE '^build/scalebus simulate .*--out ' "$SRC/README.md" &&
  ok "README's first simulate line writes --out" || not_ok "README simulate line without --out"
last=$("$SB" --help | tail -1)
[[ $last == *"own options" ]] && ok "--help ends its sentence" || not_ok "--help ends: $last"

echo "$fails failure(s)"
[ "$fails" = 0 ]
