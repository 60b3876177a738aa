#!/bin/bash
# The marathon scaler end to end, through the real daemon, against tests/marathon/
# marathon_double.py (a double of Marathon's REST API: apps with tasks, deployments that lock an
# app for 2 s after each change, health results, basic and token authentication, a record of
# every request). A pipeline drives it: http_json triggers read desired counts from files the
# double serves, direct connectors hand them to five marathon scalers, and a test-only trigger,
# instances_recorder, writes the instance lists web publishes. It shows:
#   - scale up (PUT {"instances": N}); the instances event lists host:port and readiness (a new
#     task is starting until its health check says alive, then ready);
#   - busy: a change during a deployment gets Marathon's 409 "locked by deployment", is retried,
#     logged as busy and never counted as a failure; force: true sends ?force=true instead;
#   - scale down: Marathon picks (a PUT), or kill_tasks: newest (POST /v2/tasks/delete?scale=true
#     with the newest task ids, on an app whose own killSelection would take the oldest);
#   - Marathon unreachable, slow, answering garbage or 503: logged with the reason, and a change
#     asked meanwhile made when it is back; HTTP 401 and 403 named;
#   - a count changed behind its back, repaired by reconcile;
#   - a missing app is a failure with a clear line, and no request ever created an app;
#   - an app deleted behind its back: a failure, no PUT re-creates it;
#   - --dry-run logs the exact call and sends none; adoption on restart (3 running, min 1 stays 3);
#     SIGTERM exits 0; on_stop: keep leaves the app as it is, on_stop: stop scales it to 0.
#
#   tests/test_marathon.sh BUILD/scalebus SOURCE_DIR RECORDER_PLUGIN_DIR
#
# SB_E2E_WRAP, when set, prefixes `scalebus run` (waits are then 10 times longer). On a failure
# the temporary folder, with every log, is kept.
set -u
SB=$1
SRC=$2
RECDIR=$3
WRAP=${SB_E2E_WRAP:-}
SLOW=${SLOW:-1}
[ -n "$WRAP" ] && SLOW=10
PY=/usr/bin/python3
fails=0
. "$(dirname "$0")/lib.sh"

[ -f "$RECDIR/instances_recorder.so" ] || { echo "# skipped: no $RECDIR/instances_recorder.so"; exit 77; }
W=$(mktemp -d /tmp/sb-marathon.XXXXXX)
daemon="" double_pid=""
cleanup() {
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
  stop_pid "$double_pid"
  keep_or_remove "$W" "$W/double.log"
}
trap cleanup EXIT
trap 'fails=$((fails + 1)); exit 1' INT TERM

# ---- the double -------------------------------------------------------------------------------
mkdir -p "$W/www"
P=$(free_port)
B="http://127.0.0.1:$P"
$PY "$SRC/tests/marathon/marathon_double.py" --port "$P" --lock 2 --user web:secret \
  --token tok-4711 --files "$W/www" >"$W/double.log" 2>&1 &
double_pid=$!
ASK="$PY $SRC/tests/marathon/ask.py $B"
SEEN="$PY $SRC/tests/marathon/ask.py - seen $W/instances.jsonl"
ctl() { curl -sf --max-time 5 -o /dev/null "$B/_control/$1"; }
wait_for 10 ctl state || { not_ok "the double does not answer"; exit 1; }
want() { printf '{"n": %s}\n' "$2" >"$W/www/$1.tmp" && mv "$W/www/$1.tmp" "$W/www/$1.json"; }
instances() { $ASK instances "$1"; }
instances_is() { [ "$(instances "$1")" = "$2" ]; }
rec_mark() { rec=$($ASK count); }
rec_since() { $ASK since "$rec"; }

ctl "app?id=/team/web&instances=1&health=1"
ctl "app?id=/team/batch&instances=4&spread=60&kill_selection=OLDEST_FIRST"
ctl "app?id=/team/api&instances=1"
want web 1
want batch 4
want api 1
want ghost 1

"$SB" check "$SRC/examples/marathon-app.yaml" >"$W/check.out" 2>&1 \
  && ok "examples/marathon-app.yaml passes scalebus check" || not_ok "example: $(cat "$W/check.out")"

# ---- the daemon and its log -------------------------------------------------------------------
log=$W/daemon.log
: >"$log"
mark=0
log_has() { grep -qF -- "$1" "$log"; }
mark() { mark=$(wc -l <"$log"); }
since_has() { tail -n +$((mark + 1)) "$log" | grep -qF -- "$1"; }
since_last() { tail -n +$((mark + 1)) "$log" | grep -F -- "$1" | tail -1 | sed 's/^[^]]*] //'; }
expect() { # expect TEXT WHAT: a line holding TEXT since the mark, within 15 s
  if wait_for 15 since_has "$1"; then ok "$2: $(since_last "$1")"; else
    not_ok "$2: no line with '$1'"
  fi
}
start_daemon() { # start_daemon [--dry-run]
  MARATHON_PASSWORD=secret MARATHON_TOKEN=tok-4711 $WRAP "$SB" run "$W/pipeline.yaml" \
    --plugin-dir "$RECDIR" "$@" >>"$log" 2>&1 &
  daemon=$!
}
stop_daemon() { # SIGTERM; asserts exit 0
  kill -TERM "$daemon"
  for _ in $(seq $((100 * SLOW))); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
  local rc
  if kill -0 "$daemon" 2>/dev/null; then kill -KILL "$daemon"; wait "$daemon" 2>/dev/null; rc=255
  else wait "$daemon"; rc=$?; fi
  daemon=""
  [ $rc = 0 ] && ok "SIGTERM: exit 0" || not_ok "SIGTERM: exit status $rc"
}
trigger() { echo "  - { id: want-$1, type: http_json, url: \"$B/_files/$1.json\", select: /n, every: 200ms, timeout: 2s, backoff_max: 1s }"; }
cat >"$W/pipeline.yaml" <<EOF
triggers:
$(trigger web)
$(trigger batch)
$(trigger api)
$(trigger ghost)
  - { id: seen, type: instances_recorder, scaler: web, file: "$W/instances.jsonl" }
connectors:
  - { id: to-web, type: direct, from: want-web, to: web }
  - { id: to-batch, type: direct, from: want-batch, to: batch }
  - { id: to-api, type: direct, from: want-api, to: api }
  - { id: to-ghost, type: direct, from: want-ghost, to: ghost }
scalers:
  - { id: web, type: marathon, url: "$B", app: /team/web, username: web,
      password: "\${MARATHON_PASSWORD}", timeout: 1s, reconcile_every: 1s, min: 1, max: 10 }
  # A token from the environment, in the header Marathon on DC/OS reads; the newest tasks go.
  - { id: batch, type: marathon, url: "$B/", app: team/batch, token: "token=\${MARATHON_TOKEN}",
      kill_tasks: newest, reconcile_every: 1s, min: 0, max: 10 }
  - { id: api, type: marathon, url: "$B", app: /team/api, username: web, password: secret,
      force: true, reconcile_every: 1s, min: 0, max: 10 }
  - { id: ghost, type: marathon, url: "$B", app: /team/ghost, username: web, password: secret,
      reconcile_every: 1s, min: 1, max: 3 }
  - { id: intruder, type: marathon, url: "$B", app: /team/web, username: web, password: guessed,
      reconcile_every: 1s, min: 1, max: 10 }
EOF

start_daemon
expect "[web] adopted 1 running instance(s)" "adoption at start"
expect "[batch] adopted 4 running instance(s)" "token from \${MARATHON_TOKEN}"

# Up, then busy: the deployment of the first change holds the app for 2 s.
mark
rec_mark
t0=$(now_ms)
want web 3
wait_for 10 instances_is /team/web 3 && ok "scale up 1 -> 3 in $(($(now_ms) - t0)) ms" \
  || not_ok "scale up: /team/web has $(instances /team/web): $(since_last '[web]')"
rec_since | grep -qF 'PUT /v2/apps/team/web {"instances":3} 200' \
  && ok "the double saw PUT /v2/apps/team/web {\"instances\":3}" || not_ok "no PUT 3: $(rec_since | tr '\n' ';')"
want web 5
expect "[web] set count busy: app /team/web is locked by deployment " "a change during a deployment"
wait_for 15 instances_is /team/web 5 && ok "made once the deployment is over: 5" \
  || not_ok "busy: /team/web has $(instances /team/web)"
n409=$(rec_since | grep -c '^PUT /v2/apps/team/web {"instances":5} 409')
[ "$n409" -ge 1 ] && rec_since | grep -qF 'PUT /v2/apps/team/web {"instances":5} 200' \
  && ok "the double answered 409 $n409 time(s), then 200" || not_ok "409s: $(rec_since | tr '\n' ';')"
if tail -n +$((mark + 1)) "$log" | grep -E '(warn|error) +\[web\]|\[web\] set count failed|\[web\] .*failure\(s\)' >"$W/busy.bad"; then
  not_ok "busy was counted as a failure: $(head -3 "$W/busy.bad")"
else
  ok "busy is not a failure: no warning, no 'failed', no failure count for web"
fi

# The instances event: host:port and readiness.
seen_ready() { $SEEN "$1" | grep -q ^yes; }
if wait_for 15 seen_ready 5; then
  ok "instances event: new tasks were starting, then all 5 ready with host:port: $($SEEN 5 | cut -c5-220)..."
else
  not_ok "instances event: $($SEEN 5 | cut -c1-400)"
fi

# force: true on an app held by a long deployment.
ctl "hold?id=/team/api&seconds=30"
rec_mark
want api 2
wait_for 10 instances_is /team/api 2 && rec_since | grep -qF 'PUT /v2/apps/team/api?force=true {"instances":2} 200' \
  && ok "force: true: PUT /v2/apps/team/api?force=true overrides a deployment" \
  || not_ok "force: $(instances /team/api): $(rec_since | grep api | tr '\n' ';')"
rec_since | grep -q 'team/api.* 409$' && not_ok "force: a 409 for api" || true

# Down: Marathon picks (a PUT), or the newest tasks.
mark
rec_mark
want web 2
wait_for 15 instances_is /team/web 2 && rec_since | grep -qF 'PUT /v2/apps/team/web {"instances":2} 200' \
  && ok "scale down 5 -> 2, Marathon picks: PUT {\"instances\":2}" || not_ok "down: $(instances /team/web)"
before=$($ASK tasks /team/batch)
oldest2=$(echo "$before" | cut -d' ' -f1-2)
newest2=$(echo "$before" | cut -d' ' -f3-4)
rec_mark
want batch 2
if wait_for 10 instances_is /team/batch 2 && [ "$($ASK tasks /team/batch)" = "$oldest2" ]; then
  ok "kill_tasks: newest: 4 -> 2, the two oldest remain (the app's killSelection is OLDEST_FIRST)"
else
  not_ok "kill_tasks: newest: $(instances /team/batch): $($ASK tasks /team/batch) (had $before)"
fi
kill_line=$(rec_since | grep '^POST /v2/tasks/delete?scale=true ')
n1=${newest2% *}
n2=${newest2#* }
case "$kill_line" in
  *"\"$n1\""*"\"$n2\""*" 200" | *"\"$n2\""*"\"$n1\""*" 200")
    ok "POST /v2/tasks/delete?scale=true with the two newest ids" ;;
  *) not_ok "kill: '$kill_line' (newest: $newest2)" ;;
esac
rec_since | grep -q '^PUT /v2/apps/team/batch' && not_ok "kill_tasks: newest sent a PUT" || true

# A count changed behind its back.
sleep 2 # the last deployment is over
mark
ctl "scale?id=/team/web&instances=6"
expect "[web] changed outside scalebus: the count went from 2 to 6" "changed behind its back"
wait_for 15 instances_is /team/web 2 && ok "reconcile put it back: 2" || not_ok "drift: $(instances /team/web)"

# Marathon away, slow, garbage, 503: one failure each (the fleet's back-off doubles with each).
mark
ctl "mode?mode=reset"
expect "[web] list failed: cannot reach Marathon at $B: " "Marathon gone away"
want web 3
ctl "mode?mode=slow&delay=3"
expect "[web] list failed: cannot reach Marathon at $B: timed out" "Marathon slower than timeout: 1s"
ctl "mode?mode=garbage"
expect "[web] list failed: GET $B/v2/apps/team/web?embed=app.tasks: the reply is not JSON" "garbage"
ctl "mode?mode=http500"
expect "[web] list failed: GET $B/v2/apps/team/web?embed=app.tasks: HTTP 503: " "a 503 from a proxy"
[ "$(instances /team/web)" = 2 ] && ok "nothing changed while Marathon could not be read" \
  || not_ok "changed while away: $(instances /team/web)"
t0=$(now_ms)
ctl "mode?mode=normal"
expect "[web] the engine answers again after" "Marathon back"
wait_for 15 instances_is /team/web 3 && ok "the change asked meanwhile is made: 3 ($(($(now_ms) - t0)) ms after)" \
  || not_ok "after the outage: $(instances /team/web)"

# Credentials: 401 at once (intruder), 403 on a change.
line="[intruder] list failed: GET $B/v2/apps/team/web?embed=app.tasks: HTTP 401: the credentials were refused (username, password): Invalid username or password."
log_has "$line" && ok "wrong password: ${line#*] }" || not_ok "wrong password: $(grep -F '[intruder]' "$log" | tail -1)"
sleep 2
mark
ctl "forbid?on=1"
want web 4
expect "[web] set count failed: PUT $B/v2/apps/team/web: HTTP 403: access forbidden to user web: Not Authorized to perform this action!" "403 on a change"
ctl "forbid?on=0"
expect "[web] the engine acts again after" "allowed again"
wait_for 15 instances_is /team/web 4 || not_ok "after 403: $(instances /team/web)"
want web 3
wait_for 15 instances_is /team/web 3 || not_ok "back to 3: $(instances /team/web)"

# A missing app: never created.
log_has "[ghost] list failed: app /team/ghost does not exist (scalebus never creates one)" \
  && ok "a missing app: $(grep -F '[ghost] list failed' "$log" | head -1 | sed 's/^[^]]*] //')" \
  || not_ok "ghost: $(grep -F '[ghost]' "$log" | tail -2)"

stop_daemon
sleep 0.5
instances_is /team/web 3 && ok "on_stop keep: /team/web still has 3 after scalebus stopped" \
  || not_ok "after stop: $(instances /team/web)"

# --dry-run: the exact calls, none sent.
mark
rec_mark
want web 7
want batch 1
start_daemon --dry-run
expect "[web] would PUT $B/v2/apps/team/web {\"instances\":7} (toward 7)" "--dry-run, up"
expect "[batch] would POST $B/v2/tasks/delete?scale=true {\"ids\":[\"" "--dry-run, newest down"
sleep 1.5
changing=$(rec_since | grep -v '^GET ')
[ -z "$changing" ] && instances_is /team/web 3 && ok "--dry-run sent no changing call (the double's record)" \
  || not_ok "--dry-run sent: $changing"
stop_daemon

# Adoption: no policy decides (no count file), min 1.
rm -f "$W/www/web.json"
want batch 2
mark
rec_mark
start_daemon
expect "[web] adopted 3 running instance(s)" "restart"
sleep 3
instances_is /team/web 3 && ! rec_since | grep -q '^PUT /v2/apps/team/web' \
  && ok "a restart with 3 running and min 1 leaves 3 running, no PUT" \
  || not_ok "after restart: $(instances /team/web): $(rec_since | grep -v '^GET' | tr '\n' ';')"

# An app deleted behind its back while a change is wanted: a failure, and never re-created.
mark
ctl "delete?id=/team/api"
want api 3
expect "app /team/api does not exist (scalebus never creates one)" "the app deleted behind its back"
rec_mark
sleep 2
rec_since | grep -v '^GET' | grep -q 'team/api' && not_ok "a changing call for the deleted app: $(rec_since | grep -v '^GET')" \
  || { case " $($ASK apps) " in *" /team/api "*) not_ok "/team/api came back" ;;
       *) ok "no changing call for it in 2 s, and the double still has no /team/api" ;; esac; }
ctl "app?id=/team/api&instances=1"
wait_for 15 instances_is /team/api 3 && ok "made again by hand: the change is made (3)" \
  || not_ok "after the app came back: $(instances /team/api)"
stop_daemon

# on_stop: stop scales the app to 0 before the daemon exits.
sed -i 's|app: /team/api, username: web, password: secret,|app: /team/api, username: web, password: secret, on_stop: stop,|' "$W/pipeline.yaml"
mark
rec_mark
start_daemon
expect "[api] adopted 3 running instance(s)" "on_stop: stop, adopted"
stop_daemon
instances_is /team/api 0 && rec_since | grep -qF 'PUT /v2/apps/team/api?force=true {"instances":0} 200' \
  && ok "on_stop: stop: PUT {\"instances\":0} before exit" || not_ok "on_stop stop: $(instances /team/api)"

rec=0
rec_since | grep -q ' 201$' && not_ok "a request created an app: $(rec_since | grep ' 201$')" \
  || ok "no request ever created an app (no 201 in $($ASK count) requests)"
rec_since | grep -v '^GET' | grep -q 'team/ghost' && not_ok "a changing call for /team/ghost" || true
case " $($ASK apps) " in
  *" /team/ghost "*) not_ok "the double has /team/ghost" ;;
  *) ok "the double still has no /team/ghost (apps: $($ASK apps))" ;;
esac
grep -E '(error|warn) +\[(web|batch|api)\]' "$log" | grep -v 'changed outside scalebus\|failed' >"$W/unexpected"
[ -s "$W/unexpected" ] && not_ok "unexpected warnings: $(head -3 "$W/unexpected")" || true

echo "$fails failure(s)"
[ $fails = 0 ]
