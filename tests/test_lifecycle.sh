#!/bin/bash
# End-to-end lifecycle of the real daemon binary, for defects a review reproduced:
#   1. a pipeline whose trigger fails to start exits 1 with its error (it used to end in SIGSEGV:
#      plugins were unmapped before libuv ran their close callbacks), and the workers the scaler
#      had already started are stopped;
#   2. SIGHUPs while the first load starts 200 workers are queued reloads (they used to kill the
#      daemon: its handlers were installed after the load);
#   3. raising a scaler's max on a reload keeps every running worker (it used to stop 4 of 5);
#   4. a reload refused because a new component fails to start leaves the pool as it was, and the
#      daemon still stops with exit 0 (under ASan or valgrind: nothing leaked on the way);
#   5. plugin folders named in the file (`plugins.path`, relative to the file) are loaded, by
#      `check` and by `run`.
# Ends only the processes it started, by pid, writes only in its own temporary folder, and bounds
# every wait on a daemon.
#
#   tests/test_lifecycle.sh BUILD/scalebus SOURCE_DIR PROBE_PLUGIN_DIR
#
# SB_E2E_WRAP, when set, prefixes every `scalebus run` (e.g. valgrind with --error-exitcode=99):
# exit statuses must still be 0 (1 for the failed start). Waits are then bounded 10 times
# longer. On a failure the temporary folder, with every daemon's log, is kept and named.
set -u
SB=$1
SRC=$2
PROBES=$(cd "$3" && pwd)
WRAP=${SB_E2E_WRAP:-}
SLOW=1
[ -n "$WRAP" ] && SLOW=10
W=$(mktemp -d /tmp/sb-life.XXXXXX)
fails=0
daemon=""
cleanup() {
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
  for f in "$W"/w.*; do [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; done
  keep_or_remove "$W"
}
trap cleanup EXIT
trap 'fails=$((fails + 1)); exit 1' INT TERM

. "$(dirname "$0")/lib.sh"
# Workers write their pid to $W/w.<index> and exec sleep: live ones still run that sleep.
live_workers() {
  local n=0
  for f in "$W"/w.*; do
    [ -f "$f" ] || continue
    p=$(cat "$f")
    [ -r "/proc/$p/cmdline" ] && tr '\0' ' ' <"/proc/$p/cmdline" | grep -q '^sleep 600' && n=$((n + 1))
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
# wait_exit SECONDS: sets rc to the daemon's exit status, or 255 if it still runs after SECONDS
# (times SLOW; it is then SIGKILLed): never waits forever on a daemon that does not stop.
wait_exit() {
  for _ in $(seq $(($1 * 10 * SLOW))); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$daemon" 2>/dev/null; then
    kill -KILL "$daemon"; wait "$daemon" 2>/dev/null; rc=255
  else
    wait "$daemon"; rc=$?
  fi
  daemon=""
}
# In a pipeline file $$ is a literal $: the shell then sees $$ (its pid).
worker='["sh", "-c", "echo $$$$ > '"$W"'/w.$$SCALEBUS_INSTANCE; exec sleep 600"]'

# 1. a failed start: exit 1, the error logged, no crash, no worker left
cat >"$W/fail.yaml" <<YAML
triggers:
  - { id: broken, type: probe_trigger, fail_start: true }
connectors:
  - { id: c, type: direct, from: broken, to: pool }
scalers:
  - { id: pool, type: process, min: 2, max: 4, stop_grace: 5s, command: $worker }
YAML
start_daemon fail "$W/fail.yaml" --plugin-dir "$PROBES"
wait_exit 30
[ "$rc" = 1 ] && ok "a failed start exits 1 (not a crash)" || not_ok "failed start: exit status $rc"
log_has "'broken' failed to start" && ok "the failed start is logged with the component" \
  || not_ok "no start failure in the log"
wait_for 5 workers_are 0 && ok "workers started before the failure are stopped" \
  || not_ok "workers left: $(live_workers)"
rm -f "$W"/w.*

# 2. SIGHUP during the first load of 200 workers
cat >"$W/many.yaml" <<YAML
scalers:
  - { id: pool, type: process, min: 200, max: 200, stop_grace: 5s, command: $worker }
YAML
start_daemon many "$W/many.yaml"
wait_for 30 log_has "started instance 0 " || not_ok "no worker started"
for _ in $(seq 20); do kill -HUP "$daemon" 2>/dev/null; sleep 0.01; done
wait_for 60 workers_are 200 && ok "200 workers run after SIGHUPs during the load" \
  || not_ok "workers: $(live_workers)"
kill -0 "$daemon" 2>/dev/null && ok "the daemon survived SIGHUPs during its first load" \
  || not_ok "the daemon died: $(wait "$daemon"; echo "exit $?")"
wait_for 10 log_has "component(s) running (1 kept" && ok "the queued SIGHUP reloaded (and kept the pool)" \
  || not_ok "no reload in the log"
kill -TERM "$daemon"; wait_exit 60
[ "$rc" = 0 ] && ok "SIGTERM: exit 0" || not_ok "SIGTERM exit status $rc"
wait_for 10 workers_are 0 && ok "no worker left" || not_ok "workers left: $(live_workers)"
rm -f "$W"/w.*

# 3. raising max keeps the running workers
cat >"$W/bounds.yaml" <<YAML
triggers:
  - { id: five, type: cron, schedule: "0 0 1 1 *", value: 5 }
connectors:
  - { id: c, type: direct, from: five, to: pool }
scalers:
  - { id: pool, type: process, min: 5, max: 5, stop_grace: 5s, command: $worker }
YAML
start_daemon bounds "$W/bounds.yaml"
wait_for 20 workers_are 5 && ok "5 workers" || not_ok "workers: $(live_workers)"
before=$(cat "$W"/w.* | sort)
sed -i 's/max: 5/max: 6/' "$W/bounds.yaml"
kill -HUP "$daemon"
wait_for 10 log_has "bounds \[5, 5\] -> \[5, 6\], in place" && ok "max 5 -> 6 applied in place" \
  || not_ok "no in-place bounds change logged"
sleep 1
after=$(cat "$W"/w.* | sort)
[ "$before" = "$after" ] && workers_are 5 && ok "max 5 -> 6 keeps all 5 workers" \
  || not_ok "workers changed: before $(echo $before) after $(echo $after)"
log_has "stopping instance" && not_ok "a worker was stopped by the reload" || ok "no worker stopped"

# 4. A reload whose new trigger fails to start is refused as a whole; the pool carries on, and
#    the daemon still stops cleanly.
cat >"$W/bounds.yaml" <<YAML
plugins: { path: ["$PROBES"] }
triggers:
  - { id: five, type: cron, schedule: "0 0 1 1 *", value: 5 }
  - { id: broken, type: probe_trigger, fail_start: true }
connectors:
  - { id: c, type: direct, from: five, to: pool }
scalers:
  - { id: pool, type: process, min: 5, max: 6, stop_grace: 5s, command: $worker }
YAML
kill -HUP "$daemon"
wait_for 10 log_has "refused: 'broken' failed to start" && ok "a reload with a failed start is refused and logged" \
  || not_ok "no refused reload in the log: $(tail -3 "$log")"
sleep 1
after=$(cat "$W"/w.* | sort)
[ "$before" = "$after" ] && workers_are 5 && ok "the refused reload left the 5 workers running" \
  || not_ok "workers changed by a refused reload: before $(echo $before) after $(echo $after)"
kill -TERM "$daemon"; wait_exit 60
[ "$rc" = 0 ] && ok "SIGTERM after a refused reload: exit 0" || not_ok "SIGTERM after a refused reload: exit status $rc"
wait_for 10 workers_are 0 || not_ok "workers left: $(live_workers)"
rm -f "$W"/w.*

# 5. plugins.path in the file, relative to the file's folder: `check` and `run` load the probes
#    from there (and nothing on the command line names them).
mkdir "$W/conf"
rel=$(realpath --relative-to="$W/conf" "$PROBES")
cat >"$W/conf/path.yaml" <<YAML
plugins: { path: ["$rel"] }
triggers:
  - { id: probe, type: probe_trigger }
connectors:
  - { id: c, type: direct, from: probe, to: pool }
scalers:
  - { id: pool, type: probe_scaler, min: 2, max: 3 }
YAML
out=$("$SB" check "$W/conf/path.yaml" 2>&1); rc=$?
[ $rc = 0 ] && ok "check: plugins.path ($rel) is loaded" || not_ok "check with plugins.path: exit $rc: $out"
sed 's/^plugins: .*$//' "$W/conf/path.yaml" >"$W/conf/nopath.yaml"
out=$("$SB" check "$W/conf/nopath.yaml" 2>&1); rc=$?
[ $rc = 1 ] && grep -qF "unknown plugin type 'probe_trigger'" <<<"$out" \
  && ok "check: without plugins.path the probes are unknown" || not_ok "check without plugins.path: exit $rc: $out"
out=$("$SB" check "$W/conf/nopath.yaml" --plugin-dir "$PROBES" 2>&1); rc=$?
[ $rc = 0 ] && ok "check: --plugin-dir loads them instead" || not_ok "check --plugin-dir: exit $rc: $out"
start_daemon path "$W/conf/path.yaml"
wait_for 10 log_has "component(s) running" && ok "run: plugins.path is loaded" \
  || not_ok "run with plugins.path: $(tail -3 "$log")"
kill -TERM "$daemon"; wait_exit 30
[ "$rc" = 0 ] && ok "run with plugins.path: SIGTERM exit 0" || not_ok "run with plugins.path: exit status $rc"

echo "$fails failure(s)"
[ $fails = 0 ]
