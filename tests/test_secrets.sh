#!/bin/bash
# Planted secrets never leave the daemon: every option marked secret (SB_OPTION_SECRET: the
# triggers' passwords and request headers, marathon's password and token), a password in a URL's
# userinfo and the admin token are set to unique strings; the servers they name do not exist, so
# each trigger fails its reads and logs why. Then no output shows any of them: the daemon's log
# at debug level in text and JSON, --dry-run's log, `check` of a file with an error,
# `plugins --describe`, and the admin endpoint's /pipelines, /metrics and /healthz.
#
#   tests/test_secrets.sh BUILD/scalebus SOURCE_DIR
#
# SB_E2E_WRAP, when set, prefixes `scalebus run` (waits are then 10 times longer). On a failure
# the temporary folder, with every log, is kept.
set -u
SB=$1
WRAP=${SB_E2E_WRAP:-}
SLOW=${SLOW:-1}
[ -n "$WRAP" ] && SLOW=10
fails=0
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "# skipped: no curl"; exit 77; }

W=$(mktemp -d /tmp/sb-secrets.XXXXXX)
daemon=""
cleanup() { stop_pid "$daemon"; }
trap cleanup EXIT

DEAD=127.0.0.1:$(free_port) # nothing listens there
ADMIN=$(free_port)
S_REDIS=sEcReT-redis-31f7
S_URLPW=sEcReT-userinfo-8a2c
S_HEADER=sEcReT-header-55d0
S_JSONPW=sEcReT-jsonpw-c41e
S_PROMHDR=sEcReT-promhdr-0b93
S_NGINX=sEcReT-nginx-7e12
S_HAPROXY=sEcReT-haproxy-d6a4
S_RABBIT=sEcReT-rabbit-9f30
S_MARATHONPW=sEcReT-marathonpw-2c77
S_MARATHONTOK=sEcReT-marathontok-e815
S_ADMIN=sEcReT-admin-44b1
ALL="$S_REDIS $S_URLPW $S_HEADER $S_JSONPW $S_PROMHDR $S_NGINX $S_HAPROXY $S_RABBIT $S_MARATHONPW $S_MARATHONTOK $S_ADMIN"

cat >"$W/pipeline.yaml" <<YAML
admin: { listen: "127.0.0.1:$ADMIN", token: "$S_ADMIN" }
triggers:
  - { id: redis, type: redis, url: "redis://$DEAD/0", password: "$S_REDIS", key: jobs, every: 200ms, timeout: 300ms, backoff_max: 300ms }
  - id: json
    type: http_json
    url: "http://agent:$S_URLPW@$DEAD/queue"
    headers: { Authorization: "Bearer $S_HEADER" }
    select: /count
    every: 200ms
    timeout: 300ms
    backoff_max: 300ms
  - { id: jsonpw, type: http_json, url: "http://$DEAD/q", username: u, password: "$S_JSONPW", select: /n, every: 200ms, timeout: 300ms, backoff_max: 300ms }
  - { id: prom, type: prometheus, url: "http://$DEAD", query: up, headers: { X-Token: "$S_PROMHDR" }, every: 200ms, timeout: 300ms, backoff_max: 300ms }
  - { id: ngx, type: nginx, url: "http://$DEAD/status", username: u, password: "$S_NGINX", every: 200ms, timeout: 300ms, backoff_max: 300ms }
  - { id: hap, type: haproxy, url: "http://$DEAD/stats;csv", backend: web, username: u, password: "$S_HAPROXY", every: 200ms, timeout: 300ms, backoff_max: 300ms }
  - { id: rabbit, type: rabbitmq, url: "http://$DEAD", queue: q, username: u, password: "$S_RABBIT", every: 200ms, timeout: 300ms, backoff_max: 300ms }
connectors:
  - { id: to-app, type: direct, from: [redis, json, jsonpw, prom, ngx, hap, rabbit], to: app }
scalers:
  - { id: app, type: marathon, url: "http://$DEAD", app: /team/web, username: u, password: "$S_MARATHONPW", max: 3, reconcile_every: 300ms }
  - { id: app2, type: marathon, url: "http://$DEAD", app: /team/api, token: "token=$S_MARATHONTOK", max: 3, reconcile_every: 300ms }
connectors_x: {}
YAML
# (connectors_x makes the file invalid for the `check` step; removed before running.)
grep -v '^connectors_x' "$W/pipeline.yaml" >"$W/run.yaml"
# app2 has no connector: every scaler needs none; it still lists the app (and fails) at start.

run_for() { # run_for NAME SECONDS [ARGS...]: a daemon for a while, its log in $W/NAME.log
  local name=$1 secs=$2; shift 2
  $WRAP "$SB" run "$W/run.yaml" --log-level debug "$@" >"$W/$name.log" 2>&1 &
  daemon=$!
  sleep "$((secs * SLOW))"
}
stop_daemon() {
  kill -TERM "$daemon" 2>/dev/null
  wait "$daemon"
  rc=$?
  daemon=""
}
api() { # api PATH: the admin's answer, with the token
  curl -s --max-time $((5 * SLOW)) -H "Authorization: Bearer $S_ADMIN" "http://127.0.0.1:$ADMIN$1"
}

# 1. A run at debug level: reads fail (their errors say why), the admin answers.
run_for text 2
grep -q 'read failed' "$W/text.log" && ok "the triggers' reads fail and say why" \
  || not_ok "no read failure logged: $(tail -5 "$W/text.log")"
for path in /pipelines /metrics /healthz; do
  api "$path" >"$W/admin$(echo "$path" | tr / _).out" || not_ok "admin $path did not answer"
done
grep -q '"id"' "$W/admin_pipelines.out" && ok "/pipelines answered" || not_ok "/pipelines: $(head -c 200 "$W/admin_pipelines.out")"
grep -q '^scalebus_' "$W/admin_metrics.out" && ok "/metrics answered" || not_ok "/metrics: $(head -c 200 "$W/admin_metrics.out")"
stop_daemon
[ "$rc" = 0 ] && ok "SIGTERM: exit 0" || not_ok "exit $rc"

# 2. The same in JSON lines, and a dry run.
run_for json 1 --log-format json
stop_daemon
run_for dry 1 --dry-run
stop_daemon
grep -q '"message"' "$W/json.log" && ok "a JSON log was written" || not_ok "no JSON log"

# 3. check of a file with an error, and the options tables.
"$SB" check "$W/pipeline.yaml" >"$W/check.out" 2>&1 && not_ok "check accepted an invalid file"
grep -q "connectors_x" "$W/check.out" && ok "check names the error" || not_ok "check: $(cat "$W/check.out")"
for t in redis http_json prometheus nginx haproxy rabbitmq marathon; do
  "$SB" plugins --describe "$t" >>"$W/describe.out" 2>&1
done
grep -c "(secret)" "$W/describe.out" | grep -q '^1[0-9]$\|^9$' \
  && ok "plugins --describe marks the secret options ($(grep -c '(secret)' "$W/describe.out"))" \
  || not_ok "secret options marked: $(grep -c '(secret)' "$W/describe.out")"

# 4. No secret anywhere.
leaked=""
for s in $ALL; do
  grep -l -F -- "$s" "$W"/*.log "$W"/*.out >/dev/null 2>&1 && leaked="$leaked $s($(grep -l -F -- "$s" "$W"/*.log "$W"/*.out | xargs -n1 basename | tr '\n' ' '))"
done
[ -z "$leaked" ] && ok "no planted secret in any log, check, describe or admin output" \
  || not_ok "leaked:$leaked"

keep_or_remove "$W" "$W"/*.out
[ "$fails" = 0 ] && echo "all secrets tests passed"
exit $((fails > 0))
