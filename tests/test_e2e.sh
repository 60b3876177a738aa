#!/bin/bash
# End-to-end: runs the real daemon binary on a pipeline file and checks, with OS facts (pids,
# process state), the processes it starts and stops: start at the cron's value, reload on SIGHUP
# (a changed value scales; a broken file is refused and the pool carries on), graceful stop on
# SIGTERM with exit 0 and no worker left (after a refused reload too: a leak there fails the
# exit status under ASan or valgrind), no orphans after SIGKILL, --dry-run starts nothing,
# `scalebus check` prints file:line:col errors, the command line refuses bad option values,
# `plugins --describe` prints a plugin's options, and an installed tree (cmake --install) finds
# its own plugins. Ends only the processes it started, by pid; every wait is bounded and no
# assertion bounds how long something takes.
#
#   tests/test_e2e.sh BUILD/scalebus SOURCE_DIR
#
# SB_E2E_WRAP, when set, prefixes every `scalebus run` (e.g. "valgrind -q --error-exitcode=99
# --leak-check=full ..."): the daemon's exit status must still be 0 (or 1 where a start is
# refused), so any error the wrapper reports fails the test. Waits are then bounded 10 times
# longer. On a failure the temporary folder, with every daemon's log, is kept and named.
set -u
SB=$1
SRC=$2
WRAP=${SB_E2E_WRAP:-}
SLOW=1
[ -n "$WRAP" ] && SLOW=10
W=$(mktemp -d /tmp/sb-e2e.XXXXXX)
export E2E_DIR=$W E2E_SRC=$SRC
fails=0
daemon=""
install_dir=""
cleanup() {
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
  for f in "$W"/worker.*; do
    [ -f "$f" ] || continue
    set -- $(cat "$f"); kill -KILL "$3" 2>/dev/null
  done
  [ -n "$install_dir" ] && rm -rf "$install_dir"
  keep_or_remove "$W"
}
trap cleanup EXIT
trap 'fails=$((fails + 1)); exit 1' INT TERM

. "$(dirname "$0")/lib.sh"

# Live workers: pid files whose process still runs our worker (sleep).
live_workers() {
  local n=0
  for f in "$W"/worker.*; do
    [ -f "$f" ] || continue
    set -- $(cat "$f")
    if [ -r "/proc/$3/cmdline" ] && tr '\0' ' ' <"/proc/$3/cmdline" | grep -q '^sleep 600'; then
      n=$((n + 1))
    fi
  done
  echo $n
}

workers_are() { [ "$(live_workers)" = "$1" ]; }
log_has() { grep -q -- "$1" "$log"; }

# start_daemon NAME ARGS...: `scalebus run ARGS` in the background, its output in $W/NAME.log.
start_daemon() {
  log=$W/$1.log; shift
  $WRAP "$SB" run "$@" >"$log" 2>&1 &
  daemon=$!
}
# stop_daemon SIGNAL: signal the daemon and wait for it (bounded); rc is its exit status, 255 if
# it still ran after the bound (it is then SIGKILLed).
stop_daemon() {
  kill "-$1" "$daemon"
  for _ in $(seq $((600 * SLOW))); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$daemon" 2>/dev/null; then
    kill -KILL "$daemon"; wait "$daemon" 2>/dev/null; rc=255
  else
    wait "$daemon"; rc=$?
  fi
  daemon=""
}

# 1. check: every error of a broken file, with file:line:col, exit 1
out=$("$SB" check "$SRC/tests/e2e/broken.yaml"); rc=$?
f="$SRC/tests/e2e/broken.yaml"
[ $rc = 1 ] && ok "check exits 1 on a broken file" || not_ok "check exit code $rc"
for want in "$f:2:53: unknown option 'valu' for cron (did you mean 'value'?)" \
            "$f:4:35: connector 'c1': from 'tock'" \
            "$f:7:24: unknown plugin type 'nosuchtype'"; do
  grep -qF -- "$want" <<<"$out" && ok "check prints: $want" || not_ok "check lacks: $want (got: $out)"
done
grep -qE "broken.yaml:6:79: .*stop_grace" <<<"$out" && ok "check reports the bad duration" \
  || not_ok "no stop_grace error in: $out"
out=$("$SB" check "$SRC/tests/e2e/bad-schedule.yaml"); rc=$?
[ $rc = 1 ] && grep -qF "bad-schedule.yaml:2:39: cron 'tick': schedule:" <<<"$out" \
  && ok "check reports a bad cron schedule at its position" || not_ok "bad schedule: $rc $out"
out=$("$SB" check "$SRC/examples/quickstart.yaml"); rc=$?
[ $rc = 0 ] && ok "quickstart example is valid" || not_ok "quickstart check: $rc $out"
out=$("$SB" check "$SRC/examples/quickstart.yaml" --next 2); rc=$?
[ $rc = 0 ] && [ "$(grep -cE '^(busy|quiet) [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\+00:00$' <<<"$out")" = 4 ] \
  && ok "check --next prints ID TIME lines" || not_ok "check --next: exit $rc, output: $out"

# 2. run: the cron value sets the pool size
start_daemon run "$SRC/tests/e2e/pipeline.yaml"
wait_for 10 workers_are 2 && ok "daemon starts 2 workers" || not_ok "workers: $(live_workers), log: $(tail -5 "$log")"
ports=$(cat "$W"/worker.* | awk '{print $2}' | sort -u | wc -l)
[ "$ports" -ge 2 ] && ok "each worker has its own PORT" || not_ok "ports not unique"
for f in "$W"/worker.*; do
  set -- $(cat "$f")
  ppid=$(awk '{print $4}' "/proc/$3/stat" 2>/dev/null)
  [ "$ppid" = "$daemon" ] || not_ok "worker $3 is not the daemon's child (ppid $ppid)"
done

# 3. SIGTERM: graceful stop, exit 0, no worker left
stop_daemon TERM
[ $rc = 0 ] && ok "SIGTERM: exit 0" || not_ok "SIGTERM exit status $rc"
wait_for 5 workers_are 0 && ok "SIGTERM: no worker left" || not_ok "workers left: $(live_workers)"
rm -f "$W"/worker.*

# 4. reload: a copy of the file we edit while the daemon runs; refused reloads (a file with
#    errors, a plugin's create() refusing its options) leave the pool as it was, and the daemon
#    still stops cleanly afterwards (exit 0: under ASan or valgrind, nothing leaked).
sed 's/\${E2E_VALUE:-2}/2/' "$SRC/tests/e2e/pipeline.yaml" >"$W/p.yaml"
start_daemon reload "$W/p.yaml"
wait_for 10 workers_are 2 && ok "run from an edited copy: 2 workers" || not_ok "workers: $(live_workers)"
before=$(ls "$W"/worker.* | sort)
sed -i 's/value: "2"/value: "3"/' "$W/p.yaml"
kill -HUP "$daemon"
wait_for 10 workers_are 3 && ok "SIGHUP with value 3: 3 workers" || not_ok "after reload: $(live_workers) workers"
after=$(ls "$W"/worker.* | sort)
kept=$(comm -12 <(echo "$before") <(echo "$after") | wc -l)
[ "$kept" = 2 ] && ok "reload kept the running workers (scaler unchanged)" || not_ok "kept $kept workers"
cp "$W/p.yaml" "$W/good.yaml"
echo "triggers: [ {id: tick, type: cron, schedule: \"99 * * * *\"} ]" >"$W/p.yaml"
kill -HUP "$daemon"
wait_for 5 log_has "carry on unchanged" && ok "broken reload refused and logged" || not_ok "no refusal in log"
sed 's/value: "3"/value: "3", timezone: Mars\/Base/' "$W/good.yaml" >"$W/p.yaml"
kill -HUP "$daemon"
wait_for 5 log_has "unknown time zone 'Mars/Base'" && ok "a reload whose trigger refuses its options is refused and logged" \
  || not_ok "no refusal of Mars/Base in the log"
sleep 1.5
workers_are 3 && ok "pool carries on after refused reloads" || not_ok "workers now: $(live_workers)"
kill -0 "$daemon" 2>/dev/null && ok "daemon still running" || not_ok "daemon died on a broken reload"
pids=$(for f in "$W"/worker.*; do set -- $(cat "$f"); echo "$3"; done)
stop_daemon TERM
[ $rc = 0 ] && ok "SIGTERM after refused reloads: exit 0" || not_ok "SIGTERM after refused reloads: exit status $rc"
gone() { for p in $pids; do [ -r "/proc/$p/cmdline" ] && tr '\0' ' ' <"/proc/$p/cmdline" | grep -q '^sleep 600' && return 1; done; return 0; }
wait_for 5 gone && ok "SIGTERM after refused reloads: no worker left" || not_ok "workers left: $pids"
rm -f "$W"/worker.*

# 5. SIGKILL: the workers must not outlive the daemon
start_daemon orphans "$SRC/tests/e2e/pipeline.yaml"
wait_for 10 workers_are 2 || not_ok "orphans: workers: $(live_workers)"
pids=$(for f in "$W"/worker.*; do set -- $(cat "$f"); echo "$3"; done)
stop_daemon KILL
[ $rc = 137 ] || not_ok "SIGKILL: exit status $rc"
wait_for 5 gone && ok "SIGKILL of the daemon leaves no orphan" || not_ok "orphans: $pids"
rm -f "$W"/worker.*

# 6. --dry-run logs and starts nothing
start_daemon dry-run "$SRC/tests/e2e/pipeline.yaml" --dry-run
wait_for 10 log_has "would start" && ok "--dry-run logs the actions" || not_ok "dry-run log: $(tail -3 "$log")"
workers_are 0 && ok "--dry-run starts no process" || not_ok "dry-run started $(live_workers)"
stop_daemon INT
[ $rc = 0 ] && ok "SIGINT: exit 0" || not_ok "SIGINT exit $rc"

# 7. run on an invalid file: exit 1 with the errors, nothing started
$WRAP "$SB" run "$SRC/tests/e2e/broken.yaml" >"$W/bad.log" 2>&1; rc=$?
[ $rc = 1 ] && grep -q "broken.yaml:2:53" "$W/bad.log" && ok "run refuses an invalid file" || not_ok "run on broken: $rc"

# 8. the command line: bad option values are usage errors (exit 2) that name the option.
usage_error() { # usage_error WHAT EXPECTED-TEXT ARGS...
  local what=$1 want=$2; shift 2
  out=$("$SB" "$@" 2>&1); rc=$?
  [ $rc = 2 ] && grep -qF -- "$want" <<<"$out" && ok "$what: exit 2, '$want'" \
    || not_ok "$what: exit $rc, output: $out"
}
usage_error "--log-level loud" "scalebus: --log-level: 'loud' is not error, warn, info or debug" \
  run "$SRC/tests/e2e/pipeline.yaml" --log-level loud
usage_error "simulate --log-level loud" "scalebus: --log-level: 'loud' is not error, warn, info or debug" \
  simulate "$SRC/tests/e2e/pipeline.yaml" --trace /dev/null --log-level loud
usage_error "--log-level without a value" "scalebus: unknown or incomplete option '--log-level'" \
  run "$SRC/tests/e2e/pipeline.yaml" --log-level
for n in 0 10001 3x; do
  usage_error "--next $n" "scalebus: --next: expected a count from 1 to 10000, got '$n'" \
    check "$SRC/examples/quickstart.yaml" --next "$n"
done
usage_error "--plugin-dir without a value" "scalebus: unknown or incomplete option '--plugin-dir'" \
  plugins --plugin-dir
many=(); for i in $(seq 33); do many+=(--plugin-dir "$SRC"); done
usage_error "33 --plugin-dir" "scalebus: at most 32 --plugin-dir" plugins "${many[@]}"
usage_error "run without FILE" "scalebus: missing FILE" run
usage_error "an unknown command" "scalebus: unknown command 'rnu'" rnu
# --log-level error leaves out info lines; debug adds debug ones.
out=$("$SB" check "$SRC/examples/quickstart.yaml" --log-level error 2>&1); rc=$?
[ $rc = 0 ] && ok "check accepts --log-level error" || not_ok "check --log-level error: exit $rc: $out"
start_daemon debug "$SRC/tests/e2e/pipeline.yaml" --dry-run --log-level debug
wait_for 10 log_has "would start" || not_ok "--log-level debug: no action logged: $(tail -3 "$log")"
grep -q " debug " "$log" && ok "--log-level debug: debug lines are logged" || not_ok "--log-level debug: no debug line"
stop_daemon TERM
[ $rc = 0 ] || not_ok "--log-level debug: exit status $rc"
start_daemon quiet "$SRC/tests/e2e/pipeline.yaml" --log-level error
wait_for 10 workers_are 2 || not_ok "--log-level error: workers: $(live_workers)"
stop_daemon TERM
[ $rc = 0 ] || not_ok "--log-level error: exit status $rc"
grep -qE " (info|debug) " "$log" && not_ok "--log-level error logged: $(grep -m1 -E ' (info|debug) ' "$log")" \
  || ok "--log-level error: workers started and stopped without an info or debug line"
wait_for 5 workers_are 0 || not_ok "--log-level error: workers left: $(live_workers)"
rm -f "$W"/worker.*

# 9. plugins --describe TYPE: the plugin's header line, its file and every option row; an
#    unknown type is an error.
out=$("$SB" plugins --describe process); rc=$?
if [ $rc = 0 ]; then
  head -1 <<<"$out" | grep -qE '^process \(scaler [0-9.]+\) - runs N local copies of a command' \
    && ok "--describe process: the header line" || not_ok "--describe header: $(head -1 <<<"$out")"
  grep -qE '^file: /.*/process\.so$' <<<"$out" && ok "--describe process: the plugin's file" \
    || not_ok "--describe: no file line in: $out"
  for row in "id +string +- +yes" "min +integer +0 +no" "max +integer +- +yes" \
             "command +list +- +yes" "stop_grace +duration +10s +no" "port +bool +false +no"; do
    grep -qE "^  $row " <<<"$out" && ok "--describe process: row '$row'" || not_ok "--describe: no row '$row' in: $out"
  done
else
  not_ok "plugins --describe process: exit $rc"
fi
out=$("$SB" plugins --describe target); rc=$?
[ $rc = 0 ] && grep -qE '^  from +list ' <<<"$out" && grep -qE '^  per_instance +number +- +no ' <<<"$out" && grep -qE '^  mode +string +total +no ' <<<"$out" \
  && ok "--describe target: the connector rows and its own options" || not_ok "--describe target: exit $rc: $out"
out=$("$SB" plugins --describe nosuchtype 2>&1); rc=$?
[ $rc = 1 ] && grep -qF "scalebus: no plugin of type 'nosuchtype' (see \`scalebus plugins\`)" <<<"$out" \
  && ok "--describe of an unknown type: exit 1 with the reason" || not_ok "--describe nosuchtype: exit $rc: $out"

# 10. An installed tree finds its own plugins (<prefix>/bin/../lib/scalebus/plugins). The
#     prefix is a folder of our own in the build tree: the loader refuses plugins under /tmp,
#     which everyone can write to. cmake also writes its list of installed files into the build
#     tree (install_manifest_Unspecified.txt, for the one component there is): whatever was
#     there before is put back.
BUILD=$(cd "$(dirname "$SB")" && pwd)
if command -v cmake >/dev/null && [ -f "$BUILD/cmake_install.cmake" ]; then
  install_dir=$(mktemp -d "$BUILD/e2e-install.XXXXXX")
  manifest=$BUILD/install_manifest_Unspecified.txt
  had_manifest=0
  [ -f "$manifest" ] && cp -p "$manifest" "$W/manifest" && had_manifest=1
  if cmake --install "$BUILD" --prefix "$install_dir" --component Unspecified >"$W/install.log" 2>&1; then
    want=$("$SB" plugins | awk 'NR > 1 { print $1 }' | sort)
    out=$("$install_dir/bin/scalebus" plugins 2>&1); rc=$?
    got=$(awk 'NR > 1 { print $1 }' <<<"$out" | sort)
    [ $rc = 0 ] && [ -n "$want" ] && [ "$got" = "$want" ] \
      && ok "installed: scalebus plugins lists the same plugins ($(echo $got))" \
      || not_ok "installed: exit $rc, listed '$(echo $got)', expected '$(echo $want)': $out"
    out=$("$install_dir/bin/scalebus" plugins --describe cron 2>&1)
    grep -qxF "file: $install_dir/lib/scalebus/plugins/cron.so" <<<"$out" \
      && ok "installed: plugins come from <prefix>/lib/scalebus/plugins" \
      || not_ok "installed: cron.so not from $install_dir/lib/scalebus/plugins: $(grep '^file' <<<"$out")"
    out=$("$install_dir/bin/scalebus" check "$SRC/examples/quickstart.yaml" 2>&1); rc=$?
    [ $rc = 0 ] && ok "installed: check loads a pipeline file's plugins" || not_ok "installed check: exit $rc: $out"
  else
    not_ok "cmake --install failed: $(tail -5 "$W/install.log")"
  fi
  if [ $had_manifest = 1 ]; then cp -p "$W/manifest" "$manifest"; else rm -f "$manifest"; fi
  rm -rf "$install_dir"; install_dir=""
else
  echo "ok - # skip installed layout: no cmake, or no cmake_install.cmake in $BUILD"
fi

echo "$fails failure(s)"
[ $fails = 0 ]
