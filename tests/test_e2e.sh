#!/bin/bash
# End-to-end: runs the real daemon binary on a pipeline file and checks, with OS facts (pids,
# process state), the processes it starts and stops: start at the cron's value, reload on SIGHUP
# (a changed value scales; a broken file is refused and the pool carries on), graceful stop on
# SIGTERM with exit 0 and no worker left, no orphans after SIGKILL, --dry-run starts nothing, and
# `scalebus check` prints file:line:col errors. Ends only the processes it started, by pid.
#
#   tests/test_e2e.sh BUILD/scalebus SOURCE_DIR
set -u
SB=$1
SRC=$2
W=$(mktemp -d /tmp/sb-e2e.XXXXXX)
export E2E_DIR=$W E2E_SRC=$SRC
fails=0
daemon=""
cleanup() {
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
  for f in "$W"/worker.*; do
    [ -f "$f" ] || continue
    set -- $(cat "$f"); kill -KILL "$3" 2>/dev/null
  done
  rm -rf "$W"
}
trap cleanup EXIT

ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; fails=$((fails + 1)); }

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

# wait_for SECONDS CMD...: poll until CMD succeeds or the bound passes.
wait_for() {
  local limit=$(($1 * 10)); shift
  for _ in $(seq "$limit"); do "$@" && return 0; sleep 0.1; done
  return 1
}
workers_are() { [ "$(live_workers)" = "$1" ]; }
log_has() { grep -q -- "$1" "$W/daemon.log"; }

start_daemon() {
  "$SB" run "$@" >"$W/daemon.log" 2>&1 &
  daemon=$!
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
out=$("$SB" check "$SRC/examples/quickstart.yaml" --next 2)
[ "$(grep -cE '^(busy|quiet) [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\+00:00$' <<<"$out")" = 4 ] \
  && ok "check --next prints ID TIME lines" || not_ok "check --next output: $out"

# 2. run: the cron value sets the pool size
start_daemon "$SRC/tests/e2e/pipeline.yaml"
wait_for 10 workers_are 2 && ok "daemon starts 2 workers" || not_ok "workers: $(live_workers), log: $(tail -5 "$W/daemon.log")"
ports=$(cat "$W"/worker.* | awk '{print $2}' | sort -u | wc -l)
[ "$ports" -ge 2 ] && ok "each worker has its own PORT" || not_ok "ports not unique"
for f in "$W"/worker.*; do
  set -- $(cat "$f")
  ppid=$(awk '{print $4}' "/proc/$3/stat" 2>/dev/null)
  [ "$ppid" = "$daemon" ] || not_ok "worker $3 is not the daemon's child (ppid $ppid)"
done

# 3. SIGTERM: graceful stop, exit 0, no worker left
kill -TERM "$daemon"; wait "$daemon"; rc=$?
[ $rc = 0 ] && ok "SIGTERM: exit 0" || not_ok "SIGTERM exit status $rc"
wait_for 5 workers_are 0 && ok "SIGTERM: no worker left" || not_ok "workers left: $(live_workers)"
rm -f "$W"/worker.*

# reload for real: a file we edit between runs
# 4. reload: a copy of the file we edit while the daemon runs
sed 's/\${E2E_VALUE:-2}/2/' "$SRC/tests/e2e/pipeline.yaml" >"$W/p.yaml"
start_daemon "$W/p.yaml"
wait_for 10 workers_are 2 && ok "run from an edited copy: 2 workers" || not_ok "workers: $(live_workers)"
before=$(ls "$W"/worker.* | sort)
sed -i 's/value: "2"/value: "3"/' "$W/p.yaml"
kill -HUP "$daemon"
wait_for 10 workers_are 3 && ok "SIGHUP with value 3: 3 workers" || not_ok "after reload: $(live_workers) workers"
after=$(ls "$W"/worker.* | sort)
kept=$(comm -12 <(echo "$before") <(echo "$after") | wc -l)
[ "$kept" = 2 ] && ok "reload kept the running workers (scaler unchanged)" || not_ok "kept $kept workers"
echo "triggers: [ {id: tick, type: cron, schedule: \"99 * * * *\"} ]" >"$W/p.yaml"
kill -HUP "$daemon"
wait_for 5 log_has "carry on unchanged" && ok "broken reload refused and logged" || not_ok "no refusal in log"
sleep 1.5
workers_are 3 && ok "pool carries on after a refused reload" || not_ok "workers now: $(live_workers)"
kill -0 "$daemon" 2>/dev/null && ok "daemon still running" || not_ok "daemon died on a broken reload"

# 5. SIGKILL: the workers must not outlive the daemon
pids=$(for f in "$W"/worker.*; do set -- $(cat "$f"); echo "$3"; done)
kill -KILL "$daemon"; wait "$daemon" 2>/dev/null; daemon=""
gone() { for p in $pids; do [ -r "/proc/$p/cmdline" ] && tr '\0' ' ' <"/proc/$p/cmdline" | grep -q '^sleep 600' && return 1; done; return 0; }
wait_for 5 gone && ok "SIGKILL of the daemon leaves no orphan" || not_ok "orphans: $pids"
rm -f "$W"/worker.*

# 6. --dry-run logs and starts nothing
start_daemon "$SRC/tests/e2e/pipeline.yaml" --dry-run
wait_for 10 log_has "would start" && ok "--dry-run logs the actions" || not_ok "dry-run log: $(tail -3 "$W/daemon.log")"
workers_are 0 && ok "--dry-run starts no process" || not_ok "dry-run started $(live_workers)"
kill -INT "$daemon"; wait "$daemon"; rc=$?; daemon=""
[ $rc = 0 ] && ok "SIGINT: exit 0" || not_ok "SIGINT exit $rc"

# 7. run on an invalid file: exit 1 with the errors, nothing started
"$SB" run "$SRC/tests/e2e/broken.yaml" >"$W/bad.log" 2>&1; rc=$?
[ $rc = 1 ] && grep -q "broken.yaml:2:53" "$W/bad.log" && ok "run refuses an invalid file" || not_ok "run on broken: $rc"

echo "$fails failure(s)"
[ $fails = 0 ]
