#!/bin/bash
# Every policy connector in a pipeline: `target`, `threshold`, `expression`, `waiter` and
# `combine` (fed by two other policies) replayed by `scalebus simulate` against exact decisions
# and reasons, then `target` in a live `scalebus run`: the decision and its reason are logged,
# the scaler's bound ends the chain, the workers really run, and --dry-run logs the same decision;
# and a reload keeps a policy whose options did not change, with its stabilisation window (the
# scale-down stays held), while a policy whose options changed starts afresh.
# Ends only the processes it started, by pid; every wait is bounded.
#
#   tests/test_policy_pipelines.sh BUILD/scalebus SOURCE_DIR
#
# SB_E2E_WRAP, when set, prefixes every `scalebus run` and `scalebus simulate` (e.g. valgrind
# with --error-exitcode=99): their exit statuses must still be 0. Waits are then bounded 10 times
# longer. On a failure the temporary folder, with every log, is kept and named.
set -u
SB=$1
SRC=$2
WRAP=${SB_E2E_WRAP:-}
SLOW=1
[ -n "$WRAP" ] && SLOW=10
D=$SRC/tests/policy_pipelines
W=$(mktemp -d /tmp/sb-policies.XXXXXX)
export E2E_DIR=$W E2E_SRC=$SRC
fails=0
daemon=""
cleanup() {
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
  for f in "$W"/worker.*; do
    [ -f "$f" ] || continue
    set -- $(cat "$f"); kill -KILL "$3" 2>/dev/null
  done
  keep_or_remove "$W" "$W"/err
}
trap cleanup EXIT
trap 'fails=$((fails + 1)); exit 1' INT TERM
. "$(dirname "$0")/lib.sh"
log_has() { grep -qF -- "$1" "$log"; }
live_workers() {
  local n=0
  for f in "$W"/worker.*; do
    [ -f "$f" ] || continue
    set -- $(cat "$f")
    [ -r "/proc/$3/cmdline" ] && tr '\0' ' ' <"/proc/$3/cmdline" | grep -q '^sleep 600' && n=$((n + 1))
  done
  echo $n
}
workers_are() { [ "$(live_workers)" = "$1" ]; }
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

# 1. All five policies in simulate: exact decisions and reason chains.
$WRAP "$SB" simulate "$D/all.yaml" --trace "$D/trace.csv" >"$W/got.csv" 2>"$W/err"; rc=$?
if [ $rc = 0 ]; then
  if diff -u "$D/expected.csv" "$W/got.csv" >"$W/diff"; then
    ok "target, threshold, expression, waiter and combine decide as expected in simulate"
  else
    not_ok "simulate decisions differ:"; sed 's/^/    /' "$W/diff"
  fi
else
  not_ok "simulate: exit status $rc: $(tail -20 "$W/err")"
fi

# 2. target in a live pipeline: 7 / 2 -> 4, held to the scaler's max 3.
start_daemon live "$D/live.yaml"
wait_for 15 workers_are 3 && ok "live: target starts 3 workers (max)" || not_ok "live workers: $(live_workers)"
# The scaler publishes its instance list (with its bounds) as soon as it has adopted what runs,
# so the policy itself holds its decision to the scaler's max, and says so.
wait_for 5 log_has "[per-two] desired 3: tick=7 per_instance=2 -> 4; scaler max 3 -> 3" \
  && ok "live: the decision is logged with its reason and the scaler's bound" \
  || not_ok "no decision line: $(grep per-two "$log" | head -3)"
stop_daemon TERM
[ $rc = 0 ] && ok "live: SIGTERM exit 0" || not_ok "live: exit $rc"
wait_for 5 workers_are 0 && ok "live: no worker left" || not_ok "live: $(live_workers) left"
rm -f "$W"/worker.*

# 3. --dry-run: the same decision line, no process.
start_daemon dry-run "$D/live.yaml" --dry-run
wait_for 15 log_has "[per-two] desired 3: tick=7 per_instance=2 -> 4; scaler max 3 -> 3" \
  && ok "dry-run logs the same decision" || not_ok "dry-run log: $(tail -3 "$log")"
wait_for 5 log_has "would start" && ok "dry-run logs the action" || not_ok "no would-start line"
workers_are 0 && ok "dry-run starts nothing" || not_ok "dry-run started $(live_workers)"
stop_daemon INT
[ $rc = 0 ] && ok "dry-run: SIGINT exit 0" || not_ok "dry-run: exit status $rc"

# 4. A reload keeps an unchanged policy with its state. Readings go from 8 to 2 (one worker per
#    2): the scale-down from 4 to 1 is held by stabilize_down (1h). A reload that changes only
#    the trigger keeps the policy and its window: the scale-down is still held. A reload that
#    changes the policy's own options makes a new policy, with an empty window: down to 1 at once.
policy_file() { # policy_file VALUE WINDOW
  cat >"$W/reload.yaml" <<YAML
triggers:
  - { id: load, type: cron, schedule: "* * * * * *", value: $1 }
connectors:
  - { id: per-two, type: target, from: load, to: pool, per_instance: 2, stabilize_down: $2 }
scalers:
  - id: pool
    type: process
    command: ["sh", "$SRC/tests/e2e/worker.sh"]
    env: { E2E_DIR: "$W" }
    max: 5
    stop_grace: 1s
    port: true
YAML
}
policy_file 8 1h
start_daemon reload "$W/reload.yaml"
wait_for 15 log_has "[per-two] desired 4: load=8 per_instance=2 -> 4" \
  && ok "reload: readings of 8 decide 4" || not_ok "reload: no first decision: $(grep per-two "$log" | head -3)"
wait_for 15 workers_are 4 || not_ok "reload: workers: $(live_workers)"
policy_file 2 1h
kill -HUP "$daemon"
held="[per-two] desired 4: load=2 per_instance=2 -> 1; stabilize_down 3600s: highest 4 -> 4"
wait_for 15 log_has "$held" && ok "reload of the trigger only: the kept policy still holds the scale-down" \
  || not_ok "reload: no held decision: $(grep -E 'per-two|component' "$log" | tail -3)"
log_has "[per-two] desired 1" && not_ok "the kept policy decided 1: its window was lost" \
  || ok "the kept policy never decided 1"
log_has "component(s) running (2 kept" && ok "reload: the policy and the scaler were kept" \
  || not_ok "reload: $(grep 'component(s) running' "$log" | tail -1)"
workers_are 4 && ok "reload: 4 workers still run" || not_ok "reload: workers: $(live_workers)"
policy_file 2 2h
kill -HUP "$daemon"
wait_for 15 log_has "[per-two] desired 1: load=2 per_instance=2 -> 1" \
  && ok "reload of the policy's options: the new policy scales down at once" \
  || not_ok "reload: the changed policy did not start afresh: $(grep per-two "$log" | tail -3)"
wait_for 15 workers_are 1 && ok "reload: 1 worker left" || not_ok "reload: workers: $(live_workers)"
stop_daemon TERM
[ $rc = 0 ] && ok "reload: SIGTERM exit 0" || not_ok "reload: exit status $rc"
wait_for 5 workers_are 0 || not_ok "reload: workers left: $(live_workers)"

echo "$fails failure(s)"
[ $fails = 0 ]
