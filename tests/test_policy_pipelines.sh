#!/bin/bash
# Every policy connector in a pipeline: `target`, `threshold`, `expression`, `waiter` and
# `combine` (fed by two other policies) replayed by `scalebus simulate` against exact decisions
# and reasons, then `target` in a live `scalebus run`: the decision and its reason are logged,
# the scaler's bound ends the chain, the workers really run, and --dry-run logs the same decision.
# Ends only the processes it started, by pid.
#
#   tests/test_policy_pipelines.sh BUILD/scalebus SOURCE_DIR
set -u
SB=$1
SRC=$2
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
  rm -rf "$W"
}
trap cleanup EXIT
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; fails=$((fails + 1)); }
wait_for() {
  local limit=$(($1 * 10)); shift
  for _ in $(seq "$limit"); do "$@" && return 0; sleep 0.1; done
  return 1
}
log_has() { grep -qF -- "$1" "$W/daemon.log"; }
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

# 1. All five policies in simulate: exact decisions and reason chains.
if "$SB" simulate "$D/all.yaml" --trace "$D/trace.csv" >"$W/got.csv" 2>"$W/err"; then
  if diff -u "$D/expected.csv" "$W/got.csv" >"$W/diff"; then
    ok "target, threshold, expression, waiter and combine decide as expected in simulate"
  else
    not_ok "simulate decisions differ:"; sed 's/^/    /' "$W/diff"
  fi
else
  not_ok "simulate failed: $(cat "$W/err")"
fi

# 2. target in a live pipeline: 7 / 2 -> 4, held to the scaler's max 3.
"$SB" run "$D/live.yaml" >"$W/daemon.log" 2>&1 &
daemon=$!
wait_for 15 workers_are 3 && ok "live: target starts 3 workers (max)" || not_ok "live workers: $(live_workers)"
wait_for 5 log_has "[per-two] desired 4: tick=7 per_instance=2 -> 4" \
  && ok "live: the decision is logged with its reason" || not_ok "no decision line: $(grep per-two "$W/daemon.log" | head -3)"
wait_for 5 log_has "[pool] desired 4 from per-two held to 3 (min 0, max 3)" \
  && ok "live: the scaler's bound is logged" || not_ok "no bound line: $(grep '\[pool\]' "$W/daemon.log" | head -3)"
kill -TERM "$daemon"; wait "$daemon"; rc=$?; daemon=""
[ $rc = 0 ] && ok "live: SIGTERM exit 0" || not_ok "live: exit $rc"
wait_for 5 workers_are 0 && ok "live: no worker left" || not_ok "live: $(live_workers) left"
rm -f "$W"/worker.*

# 3. --dry-run: the same decision line, no process.
"$SB" run "$D/live.yaml" --dry-run >"$W/daemon.log" 2>&1 &
daemon=$!
wait_for 15 log_has "[per-two] desired 4: tick=7 per_instance=2 -> 4" \
  && ok "dry-run logs the same decision" || not_ok "dry-run log: $(tail -3 "$W/daemon.log")"
wait_for 5 log_has "would start" && ok "dry-run logs the action" || not_ok "no would-start line"
workers_are 0 && ok "dry-run starts nothing" || not_ok "dry-run started $(live_workers)"
kill -INT "$daemon"; wait "$daemon"; daemon=""

echo "$fails failure(s)"
[ $fails = 0 ]
