#!/bin/bash
# A policy's fail_after and fallback in a live `scalebus run`: two probe triggers (feed_file: a
# number is a reading, `error WHY` an error event, as a polling trigger publishes them) drive two
# `target` policies and two `process` scalers. When a trigger fails:
#   - with `fallback: 1`, after 3 error events the policy decides 1 at once (past its 300 s
#     stabilize_down window), logs its reason "jobs-a: 3 failures -> fallback 1" once, and the
#     scaler goes to 1 worker, never 0;
#   - without fallback, the policy logs "jobs-b: 3 failures -> hold 4" once and decides nothing:
#     4 workers keep running;
# and when readings come again it logs "reading again after N failures" and decides as usual.
# The daemon runs throughout and stops on SIGTERM with exit status 0. Ends only the processes it
# started, by pid; every wait is bounded.
#
#   tests/test_policy_failures.sh BUILD/scalebus SOURCE_DIR PROBE_PLUGIN_DIR
#
# SB_E2E_WRAP, when set, prefixes `scalebus run` (e.g. valgrind with --error-exitcode=99): its
# exit status must still be 0. Waits are then bounded 10 times longer. On a failure the temporary
# folder, with the daemon's log, is kept and named.
set -u
SB=$1
SRC=$2
PROBES=$(cd "$3" && pwd)
WRAP=${SB_E2E_WRAP:-}
SLOW=1
[ -n "$WRAP" ] && SLOW=10
W=$(mktemp -d /tmp/sb-policy-failures.XXXXXX)
mkdir -p "$W/a" "$W/b"
fails=0
daemon=""
cleanup() {
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
  for f in "$W"/a/worker.* "$W"/b/worker.*; do
    [ -f "$f" ] || continue
    set -- $(cat "$f"); kill -KILL "$3" 2>/dev/null
  done
  keep_or_remove "$W"
}
trap cleanup EXIT
trap 'fails=$((fails + 1)); exit 1' INT TERM
. "$(dirname "$0")/lib.sh"
log=$W/run.log
log_has() { grep -qF -- "$1" "$log"; }
# info_count TEXT: log lines at info level that contain TEXT (the daemon runs at debug).
info_count() { grep -F -- "$1" "$log" | grep -cF "info  ["; }
# lines_between FROM TO TEXT: lines containing TEXT after the first containing FROM and before
# the first containing TO after it.
lines_between() {
  awk -v from="$1" -v to="$2" -v text="$3" \
    'on && index($0, to) { exit } on && index($0, text) { print } index($0, from) { on = 1 }' "$log"
}
# live_workers DIR: the workers of the scaler whose E2E_DIR is DIR that still run.
live_workers() {
  local n=0
  for f in "$1"/worker.*; do
    [ -f "$f" ] || continue
    set -- $(cat "$f")
    [ -r "/proc/$3/cmdline" ] && tr '\0' ' ' <"/proc/$3/cmdline" | grep -q '^sleep 600' && n=$((n + 1))
  done
  echo $n
}
workers_are() { [ "$(live_workers "$W/$1")" = "$2" ]; }
feed() { echo "$2" >"$W/$1.feed.tmp" && mv "$W/$1.feed.tmp" "$W/$1.feed"; }

cat >"$W/failures.yaml" <<YAML
triggers:
  - { id: jobs-a, type: probe_trigger, feed_file: "$W/a.feed", feed_every: 200ms }
  - { id: jobs-b, type: probe_trigger, feed_file: "$W/b.feed", feed_every: 200ms }
connectors:
  # The default stabilize_down (300s) would hold any scale-down: the fallback passes it.
  - { id: with-fallback, type: target, from: jobs-a, to: pool-a, per_instance: 2, fallback: 1 }
  - { id: holding, type: target, from: jobs-b, to: pool-b, per_instance: 2, stabilize_down: 0s }
scalers:
  - id: pool-a
    type: process
    command: ["sh", "$SRC/tests/e2e/worker.sh"]
    env: { E2E_DIR: "$W/a" }
    max: 5
    stop_grace: 1s
    port: true
  - id: pool-b
    type: process
    command: ["sh", "$SRC/tests/e2e/worker.sh"]
    env: { E2E_DIR: "$W/b" }
    max: 5
    stop_grace: 1s
    port: true
YAML

feed a 8
feed b 8
$WRAP "$SB" run "$W/failures.yaml" --plugin-dir "$PROBES" --log-level debug >"$log" 2>&1 &
daemon=$!

# 1. Readings of 8, one worker per 2: 4 workers each.
wait_for 15 log_has "[with-fallback] desired 4: jobs-a=8 per_instance=2 -> 4" \
  && ok "readings decide 4 (fallback policy)" || not_ok "no first decision: $(grep with-fallback "$log" | head -3)"
wait_for 15 log_has "[holding] desired 4: jobs-b=8 per_instance=2 -> 4" \
  && ok "readings decide 4 (holding policy)" || not_ok "no first decision: $(grep holding "$log" | head -3)"
wait_for 15 workers_are a 4 && wait_for 15 workers_are b 4 && ok "4 workers each" \
  || not_ok "workers: a $(live_workers "$W/a"), b $(live_workers "$W/b")"

# 2. Both triggers fail. The fallback policy decides 1 after 3 failures; the other holds 4.
feed a "error GET http://queue/: connection refused"
feed b "error GET http://queue/: timed out"
fallback_line="[with-fallback] desired 1: jobs-a: 3 failures -> fallback 1"
wait_for 10 log_has "$fallback_line" && ok "fallback: decided with its reason" \
  || not_ok "no fallback decision: $(grep with-fallback "$log" | tail -3)"
wait_for 10 log_has "[holding] jobs-b: 3 failures -> hold 4" && ok "hold: logged with its count" \
  || not_ok "no hold line: $(grep holding "$log" | tail -3)"
wait_for 15 workers_are a 1 && ok "fallback: the scaler goes to 1 worker" \
  || not_ok "fallback workers: $(live_workers "$W/a")"
# Many more failures: still one info line each, the held scaler keeps its 4 workers, never 0.
sleep $((2 * SLOW))
[ "$(info_count "$fallback_line")" = 1 ] && ok "fallback: logged once (info) over many failures" \
  || not_ok "fallback logged $(info_count "$fallback_line") times at info"
[ "$(grep -cF "debug [with-fallback] desired 1: jobs-a: 3 failures -> fallback 1" "$log")" -ge 3 ] \
  && ok "fallback: published again on each failure (debug)" \
  || not_ok "fallback: not published again: $(grep -F with-fallback "$log" | tail -3)"
[ "$(info_count "jobs-b: 3 failures -> hold 4")" = 1 ] && ok "hold: logged once over many failures" \
  || not_ok "hold logged $(info_count "jobs-b: 3 failures -> hold 4") times"
workers_are b 4 && ok "hold: 4 workers still run" || not_ok "hold workers: $(live_workers "$W/b")"
workers_are a 1 && ok "fallback: 1 worker still runs" || not_ok "fallback workers: $(live_workers "$W/a")"
# (the scalers' own "desired 0 (min, at start)" is not a decision)
grep -qE 'desired 0(:| from)' "$log" && not_ok "a failure became a decision of 0: $(grep -E 'desired 0(:| from)' "$log" | head -2)" \
  || ok "no failure turned into 0"

# 3. Readings again: said once, then decisions as usual.
feed a 6
feed b 2
wait_for 10 grep -qE '\[with-fallback\] jobs-a: reading again after [0-9]+ failures' "$log" \
  && ok "fallback: reading again is logged" || not_ok "no reading-again line: $(grep with-fallback "$log" | tail -3)"
wait_for 10 log_has "[with-fallback] desired 3: jobs-a=6 per_instance=2 -> 3" \
  && ok "fallback: decisions resume" || not_ok "no decision after the fallback: $(grep with-fallback "$log" | tail -3)"
wait_for 10 grep -qE '\[holding\] jobs-b: reading again after [0-9]+ failures' "$log" \
  && ok "hold: reading again is logged" || not_ok "no reading-again line: $(grep holding "$log" | tail -3)"
wait_for 10 log_has "[holding] desired 1: jobs-b=2 per_instance=2 -> 1" \
  && ok "hold: decisions resume" || not_ok "no decision after the hold: $(grep holding "$log" | tail -3)"
wait_for 15 workers_are a 3 && wait_for 15 workers_are b 1 && ok "workers follow: 3 and 1" \
  || not_ok "workers: a $(live_workers "$W/a"), b $(live_workers "$W/b")"
[ "$(grep -cE 'jobs-a: reading again' "$log")" = 1 ] && ok "reading again logged once" \
  || not_ok "reading again logged $(grep -cE 'jobs-a: reading again' "$log") times"
# While it held, the policy published nothing at all (not even at debug), and its scaler heard
# nothing; while it fell back, nothing but the fallback.
got=$(lines_between "[holding] jobs-b: 3 failures -> hold 4" "[holding] jobs-b: reading again" "[holding] desired"
  lines_between "[holding] jobs-b: 3 failures -> hold 4" "[holding] jobs-b: reading again" "[pool-b] desired")
[ -z "$got" ] && ok "hold: nothing published while failing" || not_ok "hold published: $(head -3 <<<"$got")"
got=$(lines_between "$fallback_line" "[with-fallback] jobs-a: reading again" "[with-fallback] desired" \
  | grep -vF "desired 1: jobs-a: 3 failures -> fallback 1")
[ -z "$got" ] && ok "fallback: only the fallback while failing" || not_ok "fallback: $(head -3 <<<"$got")"

# 4. The daemon ran throughout and stops cleanly.
kill -0 "$daemon" 2>/dev/null && ok "the daemon ran throughout" || not_ok "the daemon died"
kill -TERM "$daemon"
for _ in $(seq $((600 * SLOW))); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$daemon" 2>/dev/null; then
  kill -KILL "$daemon"; wait "$daemon" 2>/dev/null; rc=255
else
  wait "$daemon"; rc=$?
fi
daemon=""
[ $rc = 0 ] && ok "SIGTERM: exit 0" || not_ok "exit status $rc"
wait_for 5 workers_are a 0 && wait_for 5 workers_are b 0 && ok "no worker left" \
  || not_ok "workers left: a $(live_workers "$W/a"), b $(live_workers "$W/b")"

echo "$fails failure(s)"
[ $fails = 0 ]
