#!/bin/bash
# The admin endpoint of a real `scalebus run` (docs/admin.md), with curl on a free loopback
# port: an address off loopback without a token is refused at start (check and run, at its
# file:line:col); /healthz, /readyz, /metrics (parsed line by line) and /pipelines; readings
# pushed to a `push` trigger reach a process scaler (workers counted); pause (decisions logged,
# not applied) and resume (the newest applied); an override held 2s, then the policy again;
# 404, 400, 405 and 415; a reload that adds a token (token_file) keeps the pipelines, and then
# every path but /healthz wants it (none and a wrong one: 401); the token is in no output.
# Ends only the processes it started, by pid; every wait is bounded.
#
#   tests/test_admin.sh BUILD/scalebus SOURCE_DIR
#
# SB_E2E_WRAP, when set, prefixes every `scalebus run` (e.g. valgrind --error-exitcode=99): its
# exit status must still be 0. Waits are then bounded 10 times longer.
set -u
SB=$1
SRC=$2
WRAP=${SB_E2E_WRAP:-}
SLOW=1
[ -n "$WRAP" ] && SLOW=10
W=$(mktemp -d /tmp/sb-admin.XXXXXX)
fails=0
daemon=""
TOKEN="tok-$RANDOM$RANDOM-planted-secret"
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
log=$W/run.log
log_has() { grep -qF -- "$1" "$log"; }
live_workers() {
  local n=0
  for f in "$W"/worker.*; do
    [ -f "$f" ] || continue
    # worker.sh writes "INSTANCE PORT PID"; PORT is empty here (no port: true)
    local pid; pid=$(awk '{ print $NF }' "$f")
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q '^sleep 600' && n=$((n + 1))
  done
  echo $n
}
workers_are() { [ "$(live_workers)" = "$1" ]; }
# req METHOD PATH [CURL ARGS...]: prints the status; the body goes to $W/body. Every response is
# also appended to $W/responses.log (searched for the token at the end).
req() {
  local m=$1 p=$2; shift 2
  curl -s -m 5 -o "$W/body" -w '%{http_code}' -X "$m" "$@" "$BASE$p" 2>>"$W/curl.log"
  { echo "== $m $p"; cat "$W/body"; echo; } >>"$W/responses.log"
}
auth=()
json=(-H 'Content-Type: application/json')
push() { req POST /triggers/jobs/readings "${auth[@]}" "${json[@]}" -d "{\"value\": $1}"; }
stop_daemon() {
  kill "-$1" "$daemon"
  for _ in $(seq $((300 * SLOW))); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$daemon" 2>/dev/null; then
    kill -KILL "$daemon"; wait "$daemon" 2>/dev/null; rc=255
  else
    wait "$daemon"; rc=$?
  fi
  daemon=""
}
pipeline() { # pipeline ADMIN_SECTION [SCALER_TYPE_VERSION]
  cat >"$W/p.yaml" <<YAML
$1
triggers:
  - { id: jobs, type: push }
connectors:
  - { id: per-one, type: target, from: jobs, to: pool, per_instance: 1, stabilize_down: 0s }
scalers:
  - id: pool
    type: process
    command: ["sh", "$SRC/tests/e2e/worker.sh"]
    env: { E2E_DIR: "$W" }
    min: 0
    max: 4
    stop_grace: 1s
    ${2:-}
YAML
}

# 1. Off loopback without a token: refused by check and by run, at admin.listen's position.
pipeline "admin: { listen: \"0.0.0.0:$PORT\" }"
"$SB" check "$W/p.yaml" >"$W/check.out" 2>&1; rc=$?
[ $rc = 1 ] && grep -q "p.yaml:1:18: admin.listen 0.0.0.0:$PORT is off loopback" "$W/check.out" \
  && ok "check refuses an off-loopback admin without a token at file:line:col" \
  || not_ok "check: exit $rc: $(cat "$W/check.out")"
timeout $((20 * SLOW)) $WRAP "$SB" run "$W/p.yaml" >"$W/refused.log" 2>&1; rc=$?
[ $rc = 1 ] && grep -q "p.yaml:1:18: admin.listen 0.0.0.0:$PORT is off loopback" "$W/refused.log" \
  && ok "run refuses it at start (exit 1)" || not_ok "run: exit $rc: $(tail -3 "$W/refused.log")"
pipeline "admin: { listen: \"0.0.0.0:$PORT\", token: \"\${SB_ADMIN_TEST_TOKEN}\" }"
SB_ADMIN_TEST_TOKEN=$TOKEN "$SB" check "$W/p.yaml" >>"$W/check.out" 2>&1 \
  && ok "check: off loopback with a token from \${ENV} is valid" || not_ok "check with a token: $(cat "$W/check.out")"

# 2. No token: every endpoint answers.
pipeline "admin: { listen: \"127.0.0.1:$PORT\" }"
$WRAP "$SB" run "$W/p.yaml" >"$log" 2>&1 &
daemon=$!
ready() { [ "$(req GET /readyz)" = 200 ]; }
wait_for 15 ready && ok "/readyz: 200 once every component started" || not_ok "/readyz: $(cat "$W/body")"
[ "$(req GET /healthz)" = 200 ] && grep -qx ok "$W/body" && ok "/healthz: 200 ok" \
  || not_ok "/healthz: $(cat "$W/body")"

# 3. Pushed readings reach the scaler.
[ "$(push 2)" = 200 ] && grep -q '"published":1' "$W/body" && ok "push: one reading published" \
  || not_ok "push: $(cat "$W/body")"
wait_for 15 workers_are 2 && ok "push: a reading of 2 starts 2 workers" || not_ok "workers: $(live_workers)"
[ "$(req POST /triggers/jobs/readings "${json[@]}" -d '[{"value": 1, "labels": {"q": "a"}}, {"value": 3}]')" = 200 ] \
  && grep -q '"published":2' "$W/body" && ok "push: a batch of 2 published" || not_ok "batch: $(cat "$W/body")"
wait_for 15 workers_are 3 && ok "push: the batch's last reading (3) decides 3 workers" \
  || not_ok "workers after the batch: $(live_workers)"

# 4. /metrics: valid exposition text, with the values seen so far.
[ "$(req GET /metrics)" = 200 ] && cp "$W/body" "$W/metrics.txt" || not_ok "/metrics: $(cat "$W/body")"
if /usr/bin/python3 - "$W/metrics.txt" >"$W/metrics.check" 2>&1 <<'PY'
import re, sys
name = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
label = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
sample = re.compile(r'^(%s)(\{%s(,%s)*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$' % (name, label, label))
typed, seen, bad = {}, set(), 0
for i, line in enumerate(open(sys.argv[1]), 1):
    line = line.rstrip('\n')
    if line.startswith('# HELP '):
        continue
    if line.startswith('# TYPE '):
        _, _, n, t = line.split(' ', 3)
        if t not in ('counter', 'gauge', 'histogram', 'summary', 'untyped') or n in typed:
            print('line %d: bad TYPE: %s' % (i, line)); bad += 1
        typed[n] = t
        continue
    m = sample.match(line)
    if not m:
        print('line %d: not a sample: %r' % (i, line)); bad += 1; continue
    base = m.group(1)
    for suffix in ('_bucket', '_sum', '_count'):
        if base.endswith(suffix) and typed.get(base[:-len(suffix)]) == 'histogram':
            base = base[:-len(suffix)]
    if base not in typed:
        print('line %d: no TYPE before %s' % (i, base)); bad += 1
    if typed.get(base) == 'counter' and not base.endswith('_total'):
        print('line %d: counter without _total: %s' % (i, base)); bad += 1
    seen.add(line.split(' ')[0])
sys.exit(1 if bad else 0)
PY
then ok "/metrics parses as Prometheus text (TYPE before samples, counters end in _total)"
else not_ok "/metrics: $(head -5 "$W/metrics.check")"; fi
metric() { grep -F "$1 " "$W/metrics.txt" | awk '{ print $NF }'; }
[ "$(metric 'scalebus_trigger_readings_total{trigger="jobs",type="push"}')" = 3 ] \
  && ok "metrics: 3 readings counted" || not_ok "readings: $(grep readings_total "$W/metrics.txt")"
[ "$(metric 'scalebus_connector_decisions_total{connector="per-one",type="target",direction="up"}')" -ge 2 ] 2>/dev/null \
  && [ "$(metric 'scalebus_connector_decisions_total{connector="per-one",type="target",direction="down"}')" -ge 1 ] 2>/dev/null \
  && ok "metrics: decisions by direction (up and down)" || not_ok "decisions: $(grep decisions_total "$W/metrics.txt")"
[ "$(metric 'scalebus_scaler_desired{scaler="pool",type="process"}')" = 3 ] \
  && ok "metrics: the scaler's desired count" || not_ok "desired: $(grep scaler_desired "$W/metrics.txt")"
grep -q '^scalebus_scaler_running{scaler="pool",type="process"} ' "$W/metrics.txt" \
  && grep -q '^scalebus_build_info{version="' "$W/metrics.txt" \
  && grep -q '^scalebus_bus_events_published_total ' "$W/metrics.txt" \
  && grep -q '^scalebus_reloads_total{result="ok"} 0' "$W/metrics.txt" \
  && ok "metrics: running, build info, bus and reloads families" \
  || not_ok "metrics families missing: $(grep -v '^#' "$W/metrics.txt" | head -30)"
# The scaler's calls, from the fleet library's action events: 3 starts done, and their latency.
[ "$(metric 'scalebus_scaler_actions_total{scaler="pool",type="process",result="done"}')" -ge 3 ] 2>/dev/null \
  && [ "$(metric 'scalebus_scaler_action_duration_seconds_count{scaler="pool",type="process"}')" -ge 3 ] 2>/dev/null \
  && ok "metrics: the scaler's calls by result, and their latency histogram" \
  || not_ok "actions: $(grep -E 'actions_total|action_duration' "$W/metrics.txt" | head -5)"

# 5. /pipelines: every component, the edges, the last decision with its reason.
[ "$(req GET /pipelines)" = 200 ] && cp "$W/body" "$W/pipelines.json"
if /usr/bin/python3 - "$W/pipelines.json" >"$W/pipelines.check" 2>&1 <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c = {x['id']: x for x in d['components']}
assert d['ready'] is True, d['ready']
assert set(c) == {'jobs', 'per-one', 'pool'}, c.keys()
assert c['jobs']['kind'] == 'trigger' and c['jobs']['last_value'] == 3, c['jobs']
assert c['per-one']['last_decision'] == 3 and 'per_instance=1 -> 3' in c['per-one']['last_reason'], c['per-one']
assert c['per-one']['last_decision_at'], c['per-one']
assert c['pool']['desired'] == 3 and c['pool']['paused'] is False and c['pool']['max'] == 4, c['pool']
edges = {(e['from'], e['to']) for e in d['edges']}
assert edges == {('jobs', 'per-one'), ('per-one', 'pool')}, edges
PY
then ok "/pipelines: components, edges, last value, decision and reason"
else not_ok "/pipelines: $(tail -3 "$W/pipelines.check")"; fi

# 6. Pause: decisions are logged, not applied; resume applies the newest.
[ "$(req POST /scalers/pool/pause)" = 200 ] && ok "pause: 200" || not_ok "pause: $(cat "$W/body")"
push 1 >/dev/null
wait_for 10 log_has "[pool] paused: desired 1 from per-one not applied" \
  && ok "paused: the decision (1) is logged, not applied" || not_ok "no paused line: $(tail -3 "$log")"
workers_are 3 && ok "paused: still 3 workers" || not_ok "paused but workers: $(live_workers)"
req GET /metrics >/dev/null
grep -q '^scalebus_scaler_paused{scaler="pool",type="process"} 1' "$W/body" \
  && ok "metrics: paused 1" || not_ok "paused gauge: $(grep paused "$W/body")"
[ "$(req POST /scalers/pool/resume)" = 200 ] && ok "resume: 200" || not_ok "resume: $(cat "$W/body")"
wait_for 15 workers_are 1 && ok "resume: the newest decision (1) is applied" || not_ok "after resume: $(live_workers)"

# 7. Override held 2s, then the policy decides again.
[ "$(req POST /scalers/pool/scale "${json[@]}" -d '{"desired": 9, "hold": "2s"}')" = 200 ] \
  && grep -q '"desired":4' "$W/body" && ok "scale: 9 is clamped to max 4" || not_ok "scale: $(cat "$W/body")"
wait_for 15 workers_are 4 && ok "override: 4 workers" || not_ok "override workers: $(live_workers)"
push 2 >/dev/null
wait_for 10 log_has "[pool] overridden: desired 2 from per-one not applied" \
  && ok "override: a decision during the hold is not applied" || not_ok "no overridden line"
wait_for 15 log_has "override hold ended: policies decide again" \
  && ok "override: the hold ends" || not_ok "no hold-ended line"
wait_for 15 workers_are 2 && ok "after the hold, the policy's decision (2) applies" \
  || not_ok "after the hold: $(live_workers)"

# 8. Errors.
[ "$(req POST /triggers/nope/readings "${json[@]}" -d '{"value": 1}')" = 404 ] \
  && ok "unknown trigger: 404" || not_ok "unknown trigger: $(cat "$W/body")"
[ "$(req POST /triggers/jobs/readings "${json[@]}" -d '{"value": 1,')" = 400 ] && grep -q "bad JSON" "$W/body" \
  && ok "bad JSON: 400 with a message" || not_ok "bad JSON: $(cat "$W/body")"
[ "$(req POST /triggers/jobs/readings "${json[@]}" -d '{"value": "x"}')" = 400 ] && grep -q '"value" must be' "$W/body" \
  && ok "a value that is not a number: 400" || not_ok "bad value: $(cat "$W/body")"
[ "$(req POST /triggers/jobs/readings -H 'Content-Type: text/plain' -d '{"value": 1}')" = 415 ] \
  && ok "wrong content type: 415" || not_ok "content type: $(cat "$W/body")"
[ "$(req POST /triggers/per-one/readings "${json[@]}" -d '{"value": 1}')" = 409 ] \
  && ok "not a push trigger: 409" || not_ok "not push: $(cat "$W/body")"
[ "$(req POST /scalers/nope/pause)" = 404 ] && ok "unknown scaler: 404" || not_ok "unknown scaler: $(cat "$W/body")"
[ "$(req GET /scalers/pool/pause)" = 405 ] && ok "GET on a POST path: 405" || not_ok "405: $(cat "$W/body")"
[ "$(req GET /nowhere)" = 404 ] && ok "unknown path: 404" || not_ok "unknown path: $(cat "$W/body")"

# 9. A reload adds a token from a file: the pipelines are kept; then the token is required.
printf '%s\n' "$TOKEN" >"$W/token"
pipeline "admin: { listen: \"127.0.0.1:$PORT\", token_file: token }"
kill -HUP "$daemon"
wait_for 15 log_has "token now required" && ok "reload: the token is taken on the same socket" \
  || not_ok "reload: $(tail -3 "$log")"
log_has "component(s) running (3 kept" && ok "reload: the pipelines are kept" \
  || not_ok "reload: $(grep 'component(s) running' "$log" | tail -1)"
workers_are 2 && ok "reload: the workers still run" || not_ok "reload workers: $(live_workers)"
[ "$(req GET /healthz)" = 200 ] && ok "token: /healthz needs none" || not_ok "healthz with token: $(cat "$W/body")"
for p in /readyz /metrics /pipelines; do
  [ "$(req GET $p)" = 401 ] || not_ok "$p without a token: $(cat "$W/body")"
done
[ "$(req GET /metrics -H 'Authorization: Bearer wrong')" = 401 ] && ok "token: a wrong one gets 401" \
  || not_ok "wrong token: $(cat "$W/body")"
[ "$(push 3)" = 401 ] && ok "token: a push without it gets 401" || not_ok "push no token: $(cat "$W/body")"
auth=(-H "Authorization: Bearer $TOKEN")
[ "$(req GET /metrics "${auth[@]}")" = 200 ] && grep -q '^scalebus_reloads_total{result="ok"} 1' "$W/body" \
  && ok "token: accepted; reloads_total{result=\"ok\"} 1" || not_ok "with token: $(grep reloads "$W/body")"
[ "$(push 3)" = 200 ] && wait_for 15 workers_are 3 && ok "token: a push with it reaches the scaler" \
  || not_ok "push with token: $(live_workers) $(cat "$W/body")"

# 10. A reload that replaces the scaler (its options changed) keeps its pause.
[ "$(req POST /scalers/pool/pause "${auth[@]}")" = 200 ] || not_ok "pause before the reload: $(cat "$W/body")"
pipeline "admin: { listen: \"127.0.0.1:$PORT\", token_file: token }" "port: true"
kill -HUP "$daemon"
wait_for 15 log_has "[pool] keeps the replaced instance's pause" \
  && ok "reload replacing the scaler: the pause is kept" || not_ok "pause not carried: $(tail -5 "$log")"
req GET /pipelines "${auth[@]}" >/dev/null
/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); p=[c for c in d["components"] if c["id"]=="pool"][0]; sys.exit(0 if p["paused"] else 1)' "$W/body" \
  && ok "/pipelines: the new scaler is paused" || not_ok "new scaler not paused: $(cat "$W/body")"
[ "$(req POST /scalers/pool/resume "${auth[@]}")" = 200 ] && ok "resume after the reload" || not_ok "resume: $(cat "$W/body")"

# 11. A reload to an address in use is refused at admin.listen; the running endpoint carries on.
BUSY=$(free_port)
/usr/bin/python3 -c 'import socket,sys,time; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); open(sys.argv[2], "w").close(); time.sleep(600)' "$BUSY" "$W/busy.ready" &
holder=$!
wait_for 10 test -f "$W/busy.ready" || not_ok "the port holder did not start"
pipeline "admin: { listen: \"127.0.0.1:$BUSY\", token_file: token }" "port: true"
kill -HUP "$daemon"
wait_for 15 log_has "p.yaml:1:18: admin.listen: cannot listen on 127.0.0.1:$BUSY" \
  && ok "reload to a port in use: refused at admin.listen" || not_ok "busy port: $(tail -3 "$log")"
[ "$(req GET /metrics "${auth[@]}")" = 200 ] && grep -q '^scalebus_reloads_total{result="refused"} 1' "$W/body" \
  && ok "the running endpoint still answers; reloads_total{result=\"refused\"} 1" \
  || not_ok "after the refused reload: $(grep reloads "$W/body")"
stop_pid "$holder" 2

# 12. A reload to a free address moves the endpoint: the new one answers, the old one is closed.
NEWPORT=$(free_port)
pipeline "admin: { listen: \"127.0.0.1:$NEWPORT\", token_file: token }" "port: true"
kill -HUP "$daemon"
wait_for 15 log_has "[admin] listening on http://127.0.0.1:$NEWPORT" || not_ok "no move: $(tail -3 "$log")"
OLDBASE=$BASE; BASE=http://127.0.0.1:$NEWPORT
[ "$(req GET /readyz "${auth[@]}")" = 200 ] && ok "reload to a new address: it answers there" \
  || not_ok "new address: $(cat "$W/body")"
curl -s -m 2 -o /dev/null "$OLDBASE/healthz" && not_ok "the old address still answers" \
  || ok "the old address is closed"
workers_are 3 && ok "the move kept the workers" || not_ok "workers after the move: $(live_workers)"

stop_daemon TERM
[ $rc = 0 ] && ok "SIGTERM: exit 0" || not_ok "exit status $rc"

# 13. The token appears in no output: the logs, the responses, the check output.
if grep -rqF -- "$TOKEN" "$log" "$W/refused.log" "$W/check.out" "$W/responses.log" "$W/curl.log" 2>/dev/null; then
  not_ok "the token appears in an output: $(grep -rlF -- "$TOKEN" "$W" | grep -v '/token$')"
else
  ok "the token is in no log or response"
fi
[ "$fails" = 0 ] && echo "all admin tests passed" || echo "$fails admin test(s) failed"
exit $((fails > 0))
