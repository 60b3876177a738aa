#!/bin/bash
# State that survives a restart (state.dir, docs/state.md), with a real `scalebus run`: a push
# trigger -> target (stabilize_down 60s) -> process scaler, state.dir in the test's folder.
# A restart keeps the fleet and the stabilisation window (a lower reading right after it does not
# scale down: no flap); a paused scaler stays paused; an override with a hold is kept; a corrupt
# and a foreign state file are each reported in one line and ignored; SIGTERM exits 0 each time.
# Ends only the processes it started, by pid; every wait is bounded.
#
#   tests/test_state.sh BUILD/scalebus SOURCE_DIR
#
# SB_E2E_WRAP, when set, prefixes every `scalebus run`; its exit status must still be 0.
set -u
SB=$1
SRC=$2
WRAP=${SB_E2E_WRAP:-}
SLOW=1
[ -n "$WRAP" ] && SLOW=10
W=$(mktemp -d /tmp/sb-state.XXXXXX)
fails=0
daemon=""
cleanup() {
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
  for f in "$W"/worker.*; do
    [ -f "$f" ] || continue
    pid=$(awk '{ print $NF }' "$f"); [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  done
  keep_or_remove "$W"
}
trap cleanup EXIT
trap 'fails=$((fails + 1)); exit 1' INT TERM
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "1..0 # SKIP curl is not installed"; exit 0; }
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
mkdir -p "$W/st"
live_workers() {
  local n=0
  for f in "$W"/worker.*; do
    [ -f "$f" ] || continue
    local pid; pid=$(awk '{ print $NF }' "$f")
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q '^sleep 600' && n=$((n + 1))
  done
  echo $n
}
workers_are() { [ "$(live_workers)" = "$1" ]; }
req() {
  local m=$1 p=$2; shift 2
  curl -s -m 5 -o "$W/body" -w '%{http_code}' -X "$m" "$@" "$BASE$p" 2>>"$W/curl.log"
}
json=(-H 'Content-Type: application/json')
push() { req POST /triggers/jobs/readings "${json[@]}" -d "{\"value\": $1}"; }
ready() { [ "$(req GET /readyz)" = 200 ]; }
cat >"$W/p.yaml" <<YAML
admin: { listen: "127.0.0.1:$PORT" }
state: { dir: st, every: 200ms }
triggers:
  - { id: jobs, type: push }
connectors:
  - { id: per-one, type: target, from: jobs, to: pool, per_instance: 1, stabilize_down: 60s }
scalers:
  - id: pool
    type: process
    command: ["sh", "$SRC/tests/e2e/worker.sh"]
    env: { E2E_DIR: "$W" }
    min: 0
    max: 4
    stop_grace: 1s
YAML
run=0
log=""
start_daemon() {
  run=$((run + 1))
  log=$W/run$run.log
  $WRAP "$SB" run "$W/p.yaml" >"$log" 2>&1 &
  daemon=$!
  wait_for 15 ready || not_ok "run $run: not ready: $(tail -3 "$log")"
}
log_has() { grep -qF -- "$1" "$log"; }
stop_daemon() {
  kill -TERM "$daemon"
  for _ in $(seq $((300 * SLOW))); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$daemon" 2>/dev/null; then
    kill -KILL "$daemon"; wait "$daemon" 2>/dev/null; rc=255
  else
    wait "$daemon"; rc=$?
  fi
  daemon=""
  [ $rc = 0 ] && ok "run $run: SIGTERM exits 0" || not_ok "run $run: exit $rc: $(tail -3 "$log")"
  rm -f "$W"/worker.*
}
pipelines_has() { req GET /pipelines >/dev/null; /usr/bin/python3 -c "
import json, sys
d = {c['id']: c for c in json.load(open('$W/body'))['components']}
sys.exit(0 if $1 else 1)"; }

# 1. Three workers, then a restart: the state file keeps them and the window.
start_daemon
push 3 >/dev/null
wait_for 15 workers_are 3 && ok "a reading of 3 starts 3 workers" || not_ok "workers: $(live_workers)"
stop_daemon
grep -q '"stabilize_down":\[\[' "$W/st/state.json" && grep -q '"last_desired":3' "$W/st/state.json" \
  && ok "the state file keeps the window and the last desired count" \
  || not_ok "state.json: $(head -c 600 "$W/st/state.json")"
ls "$W/st" | grep -q '\.tmp$' && not_ok "a temporary file was left: $(ls "$W/st")" \
  || ok "no temporary file left in state.dir"

start_daemon
log_has "[pool] desired 3 (the state file)" && ok "restart: the scaler starts at its saved count (3)" \
  || not_ok "no restored count: $(grep pool "$log" | head -5)"
log_has "[per-one] state restored" && ok "restart: the policy's state is restored" \
  || not_ok "no restore line: $(head -5 "$log")"
wait_for 15 workers_are 3 && ok "restart: 3 workers again" || not_ok "workers: $(live_workers)"
push 1 >/dev/null
wait_for 10 log_has "[per-one] desired 3: jobs=1" \
  && log_has "stabilize_down 60s: highest 3 -> 3" \
  && ok "no flap: a reading of 1 right after the restart still decides 3 (the window survived)" \
  || not_ok "decision after restart: $(grep 'per-one' "$log" | tail -3)"
workers_are 3 && ok "still 3 workers" || not_ok "workers after the lower reading: $(live_workers)"

# 2. A paused scaler stays paused across a restart.
[ "$(req POST /scalers/pool/pause)" = 200 ] || not_ok "pause: $(cat "$W/body")"
stop_daemon
grep -q '"paused":true' "$W/st/state.json" && ok "the state file keeps the pause" \
  || not_ok "state.json: $(head -c 600 "$W/st/state.json")"
start_daemon
log_has "[pool] paused (kept in the state file)" && pipelines_has "d['pool']['paused'] is True" \
  && ok "restart: the scaler is still paused" || not_ok "not paused: $(grep pool "$log" | head -5)"
[ "$(req POST /scalers/pool/resume)" = 200 ] || not_ok "resume: $(cat "$W/body")"

# 3. An override with a hold is kept, with what is left of its hold.
[ "$(req POST /scalers/pool/scale "${json[@]}" -d '{"desired": 2, "hold": "10m"}')" = 200 ] \
  || not_ok "override: $(cat "$W/body")"
wait_for 15 workers_are 2 || not_ok "override: workers $(live_workers)"
stop_daemon
grep -q '"override":{"desired":2,"until_ms":' "$W/st/state.json" && ok "the state file keeps the override" \
  || not_ok "state.json: $(head -c 600 "$W/st/state.json")"
start_daemon
log_has "[pool] override 2 (kept in the state file), held" && log_has "[pool] desired 2 (the state file)" \
  && ok "restart: the override and its hold are back" || not_ok "override lost: $(grep pool "$log" | head -5)"
wait_for 15 workers_are 2 && ok "restart: 2 workers, as overridden" || not_ok "workers: $(live_workers)"
push 4 >/dev/null
wait_for 10 log_has "[pool] overridden: desired 4 from per-one not applied" \
  && ok "the held override still withholds a policy's decision" || not_ok "$(grep pool "$log" | tail -3)"
stop_daemon

# 4. A corrupt, then a foreign state file: one line each, ignored, the daemon runs.
printf '{"format": "scalebus-state", "version": 1, "scal' >"$W/st/state.json"
start_daemon
[ "$(grep -c 'state: .*state.json: corrupt: not JSON' "$log")" = 1 ] \
  && ok "a corrupt state file is reported in one line" || not_ok "corrupt: $(head -3 "$log")"
log_has "[pool] desired 0 (min, at start)" && ok "a corrupt state file is ignored: the scaler starts at min" \
  || not_ok "$(grep pool "$log" | head -3)"
stop_daemon
grep -q '"format":"scalebus-state"' "$W/st/state.json" && ok "the next stop writes a good file over it" \
  || not_ok "state.json: $(head -c 300 "$W/st/state.json")"
echo '{"format": "scalebus-state", "version": 99, "daemon": "9.0"}' >"$W/st/state.json"
start_daemon
log_has "newer than this daemon's 1; ignored" && ok "a newer state file is reported and ignored" \
  || not_ok "newer: $(head -3 "$log")"
stop_daemon
echo '{"something": "else"}' >"$W/st/state.json"
start_daemon
log_has "not a scalebus state file" && ok "a foreign state file is reported and ignored" \
  || not_ok "foreign: $(head -3 "$log")"
stop_daemon

# 5. state.dir that is not a folder: refused at its file:line:col.
sed -i 's|dir: st,|dir: nowhere,|' "$W/p.yaml"
"$SB" run "$W/p.yaml" >"$W/refused.log" 2>&1; rc=$?
[ $rc = 1 ] && grep -q "p.yaml:2:15: state.dir .*nowhere: No such file or directory" "$W/refused.log" \
  && ok "a state.dir that does not exist is refused at start, at file:line:col" \
  || not_ok "exit $rc: $(tail -3 "$W/refused.log")"

[ "$fails" = 0 ]
