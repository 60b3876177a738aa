#!/bin/bash
# The router end to end in a live `scalebus run`: a router on a free loopback port, a `waiter`
# policy per service, and `process` scalers (port: true, ready: tcp, drain_from: [router]) running
# tests/router/app.py (a tiny HTTP/1.1 app that reports how many requests it serves at once).
#   - an unknown service gets 404 with a body that says so; the router's own /_scalebus pages;
#   - cold start from zero: the first request is answered once the backend has started;
#   - queue timeout and queue full (a backend that takes 30 s to listen): 503 with their bodies;
#   - scale up under parallel load, never more than concurrency_level in flight per instance;
#   - an instance killed mid-run: only 200 or 502, traffic carries on on the others;
#   - a reload that replaces the router during load: zero failed requests;
#   - back to zero after idle_timeout, each instance drained (the router's drained event);
#   - hostile clients: oversized headers (431), garbage (400), pipelined requests (in order).
# Ends only the processes it started, by pid; every wait is bounded.
#
#   tests/test_router.sh BUILD/scalebus SOURCE_DIR
#
# SB_E2E_WRAP, when set, prefixes `scalebus run` (e.g. valgrind); waits are then 10 times longer.
set -u
SB=$1
SRC=$(cd "$2" && pwd)
WRAP=${SB_E2E_WRAP:-}
SLOW=1
[ -n "$WRAP" ] && SLOW=10
W=$(mktemp -d /tmp/sb-router.XXXXXX)
fails=0
daemon=""
bg_pids=()
cleanup() {
  for p in "${bg_pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  [ -n "$daemon" ] && stop_pid "$daemon" 5
  for f in "$W"/pid.*; do [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; done
  keep_or_remove "$W"
}
trap cleanup EXIT
trap 'fails=$((fails + 1)); exit 1' INT TERM
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "1..0 # SKIP curl not installed"; exit 77; }

PORT=$(free_port)
ADDR=127.0.0.1:$PORT
log=$W/run.log
PY=/usr/bin/python3

# write_config READ_TIMEOUT VERSION: the router's read_timeout (a change replaces the router) and
# the argument web's command passes to the app (a change replaces the scaler: a new version)
write_config() {
  cat >"$W/router.yaml" <<YAML
admin: { listen: off }
triggers:
  - id: router
    type: router
    listen: "$ADDR"
    connect_timeout: 1s
    response_timeout: 4s
    read_timeout: $1
    services:
      web: { hosts: [web.test], backend: web, concurrency_level: 2, queue_timeout: 15s,
             max_queue: 100, idle_timeout: 2s }
      slow: { hosts: [slow.test], backend: slow, concurrency_level: 1, queue_timeout: 1s,
              max_queue: 2, idle_timeout: 1s }
      checked: { hosts: [checked.test], backend: checked, queue_timeout: 15s, idle_timeout: 1s,
                 health_path: /status/204, health_interval: 1s }
connectors:
  - { id: web-policy, type: waiter, from: router, to: web, match: { service: web },
      concurrency_level: 2, scale_up_factor: 1, scale_down_factor: 1, stabilize_down: 0s,
      min: 0, max: 4 }
  - { id: slow-policy, type: waiter, from: router, to: slow, match: { service: slow },
      concurrency_level: 1, scale_up_factor: 1, scale_down_factor: 1, stabilize_down: 0s,
      min: 0, max: 1 }
  - { id: checked-policy, type: waiter, from: router, to: checked, match: { service: checked },
      scale_up_factor: 1, scale_down_factor: 1, stabilize_down: 0s, min: 0, max: 1 }
scalers:
  - id: web
    type: process
    command: ["$PY", "$SRC/tests/router/app.py", "$2"]
    env: { APP_DIR: "$W" }
    port: true
    ready: tcp
    ready_every: 50ms
    min: 0
    max: 4
    drain_timeout: 10s
    drain_from: [router]
    stop_grace: 2s
  - id: slow
    type: process
    command: ["$PY", "$SRC/tests/router/app.py"]
    env: { APP_START_DELAY: "30" }
    port: true
    ready: tcp
    min: 0
    max: 1
    stop_grace: 1s
  - id: checked   # no readiness probe: listed ready at once, listening 1 s later
    type: process
    command: ["$PY", "$SRC/tests/router/app.py"]
    env: { APP_START_DELAY: "1" }
    port: true
    min: 0
    max: 1
    stop_grace: 1s
YAML
}
write_config 60s v1

$WRAP "$SB" run "$W/router.yaml" --log-level debug >"$log" 2>&1 &
daemon=$!
up() { curl -s -o /dev/null "http://$ADDR/_scalebus/status"; }
wait_for 10 up && ok "the router serves $ADDR" || { not_ok "router not serving: $(tail -5 "$log")"; exit 1; }

# get HOST PATH: "STATUS BODY" of one request (Host: HOST).
get() { curl -s -m $((20 * SLOW)) -H "Host: $1" -w ' %{http_code}' "http://$ADDR$2"; }
apps() { curl -s "http://$ADDR/_scalebus/apps"; }
# ready_instances SERVICE: how many instances the router lists as ready.
ready_instances() {
  apps | $PY -c 'import json,sys; d=json.load(sys.stdin)
print(sum(1 for s in d["services"] if s["name"]==sys.argv[1] for i in s["instances"] if i["state"]=="ready"))' "$1"
}
listed_instances() {
  apps | $PY -c 'import json,sys; d=json.load(sys.stdin)
print(sum(len(s["instances"]) for s in d["services"] if s["name"]==sys.argv[1]))' "$1"
}

# 1. An unknown service, and the router's own pages.
out=$(get nope.test /)
[[ "$out" == *"no service for host 'nope.test'"*" 404" ]] && ok "unknown host: 404 saying so" \
  || not_ok "unknown host: $out"
out=$(curl -s -H 'X-Scalebus-Service: nothing' -w ' %{http_code}' "http://$ADDR/")
[[ "$out" == *"no service named 'nothing'"*" 404" ]] && ok "unknown X-Scalebus-Service: 404" \
  || not_ok "unknown service header: $out"
apps | $PY -c 'import json,sys; d=json.load(sys.stdin); assert sorted(s["name"] for s in d["services"])==["checked","slow","web"]' \
  && ok "/_scalebus/apps lists the services" || not_ok "apps: $(apps)"
[ "$(listed_instances web)" = 0 ] && ok "web starts at zero instances" || not_ok "web not at zero: $(apps)"

# 2. Cold start: the first request waits for the backend to start and become ready.
t0=$(now_ms)
out=$(get web.test "/?delay=0")
t1=$(now_ms)
[[ "$out" == *'"instance": "0"'*" 200" ]] && ok "cold start: first request answered by the new instance ($((t1 - t0)) ms)" \
  || not_ok "cold start: $out"
[[ "$out" == *'"X-Forwarded-For": "127.0.0.1"'* && "$out" == *'"Via": "1.1 scalebus"'* && "$out" == *'"X-Forwarded-Proto": "http"'* ]] \
  && ok "forwarded headers: X-Forwarded-For, X-Forwarded-Proto, Via" || not_ok "forwarded headers: $out"
out=$(curl -s -H 'Host: web.test' -H 'Connection: close, X-Secret' -H 'X-Secret: 1' -H 'Keep-Alive: 5' \
  -H 'X-Scalebus-Service: web' "http://$ADDR/")
[[ "$out" != *'X-Secret'* && "$out" != *'Keep-Alive'* && "$out" != *'X-Scalebus-Service'* ]] \
  && ok "hop-by-hop headers (and those Connection names) are not forwarded" || not_ok "hop-by-hop: $out"
out=$(curl -s --http1.0 -H 'Host:' -H 'X-Scalebus-Service: web' -w ' %{http_code}' "http://$ADDR/")
[[ "$out" == *'"Host": "web"'*" 200" ]] && ok "HTTP/1.0 without Host, by X-Scalebus-Service: answered (Host: the service's name)" \
  || not_ok "HTTP/1.0 without Host: $out"
out=$(curl -s -H 'Host: web.test' --data-binary @"$SRC/tests/router/app.py" "http://$ADDR/")
size=$(stat -c %s "$SRC/tests/router/app.py")
[[ "$out" == *"\"body_len\": $size"* ]] && ok "a POST body reaches the backend ($size bytes)" || not_ok "POST body: $out"
out=$(head -c 300000 /dev/zero | curl -s -H 'Host: web.test' -H 'Transfer-Encoding: chunked' --data-binary @- "http://$ADDR/")
[[ "$out" == *'"body_len": 300000'* ]] && ok "a chunked body streams through (300000 bytes)" || not_ok "chunked body: ${out:0:200}"

# The router's own health check: the instance is listed ready before it listens; the request
# waits for the check to pass instead of failing on a refused connection.
out=$(get checked.test "/?delay=0")
[[ "$out" == *'"instance": "0"'*" 200" ]] && ok "health_path: a cold start waits for the router's own check" \
  || not_ok "health check cold start: $out"
grep -q "service checked: instance checked.0 passes its health check" "$log" \
  && ok "health_path: the check passed before the request went" || not_ok "no health line: $(grep -F checked "$log" | tail -3)"
status_field() { curl -s "http://$ADDR/_scalebus/status" | $PY -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
[ "$(status_field ejections)" = 0 ] && ok "health_path: no connection was refused on the way" \
  || not_ok "ejections: $(status_field ejections); $(grep -F ejected "$log" | head -2)"

# A slow backend and a slow client cost no other request: a request that takes 3 s and a client
# that sends half a head and waits, while another request is answered.
get web.test "/?delay=3" >"$W/slowreq" & slowreq=$!; bg_pids+=($slowreq)
$PY -c 'import socket,sys,time; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.sendall(b"GET / HTTP/1.1\r\nHost: web.test\r\n"); time.sleep(4)' "$PORT" & loris=$!; bg_pids+=($loris)
sleep 0.3
out=$(get web.test "/?delay=0")
if [[ "$out" == *" 200" ]] && kill -0 "$slowreq" 2>/dev/null && kill -0 "$loris" 2>/dev/null; then
  ok "a slow backend request and a slow client do not hold up another request"
else
  not_ok "slow request/client: $out"
fi
wait "$slowreq"; kill "$loris" 2>/dev/null; wait "$loris" 2>/dev/null; bg_pids=()
[[ "$(cat "$W/slowreq")" == *" 200" ]] && ok "the slow request is answered too" || not_ok "slow request: $(cat "$W/slowreq")"

# A backend that misbehaves: 502 for an answer that is not HTTP or has a head too large, 504 for
# one that does not come within response_timeout (4s), a cut for one that breaks after its head.
out=$(get web.test /garbage)
[[ "$out" == *"502 bad gateway: the instance of web sent an invalid response"*" 502" ]] \
  && ok "an answer that is not HTTP: 502 saying so" || not_ok "garbage answer: $out"
out=$(get web.test /bigheader)
[[ "$out" == *"502 bad gateway"*" 502" ]] && ok "an answer head too large: 502" || not_ok "big head: $out"
out=$(get web.test "/?delay=6")
[[ "$out" == *"504 gateway timeout: the instance of web did not answer within 4s"*" 504" ]] \
  && ok "an answer that does not come: 504 saying so" || not_ok "no answer: $out"
curl -s -o "$W/cut.out" -H 'Host: web.test' "http://$ADDR/cut"; rc=$?
[ "$rc" = 18 ] && [ "$(stat -c %s "$W/cut.out")" = 10 ] \
  && ok "an answer cut after its head: the client sees a cut (curl exit 18), not a complete answer" \
  || not_ok "cut answer: curl exit $rc, $(stat -c %s "$W/cut.out") bytes"
curl -s -o "$W/cut-chunked.out" -H 'Host: web.test' "http://$ADDR/cut-chunked"; rc=$?
[ "$rc" = 18 ] && [ "$(cat "$W/cut-chunked.out")" = 0123456789 ] \
  && ok "a chunked answer cut mid-way: the client sees a cut (curl exit 18, no last chunk)" \
  || not_ok "cut chunked answer: curl exit $rc, $(stat -c %s "$W/cut-chunked.out") bytes"
out=$(get web.test "/?delay=0")
[[ "$out" == *" 200" ]] && ok "web still answers after its misbehaving" || not_ok "after misbehaving: $out"

# 3. Queue timeout and queue full: slow takes 30 s to listen; its queue_timeout is 1s, max_queue 2.
out=$(get slow.test /)
[[ "$out" == *"no instance of slow became ready within 1s"*" 503" ]] && ok "queue timeout: 503 saying so" \
  || not_ok "queue timeout: $out"
get slow.test / >"$W/q1" & bg_pids+=($!)
get slow.test / >"$W/q2" & bg_pids+=($!)
sleep 0.3
out=$(get slow.test /)
[[ "$out" == *"queue full"*" 503" ]] && ok "queue full: 503 saying so" || not_ok "queue full: $out"
wait "${bg_pids[@]}" 2>/dev/null; bg_pids=()
[[ "$(cat "$W/q1")" == *" 503" && "$(cat "$W/q2")" == *" 503" ]] && ok "the queued requests time out" \
  || not_ok "queued: $(cat "$W/q1") / $(cat "$W/q2")"

# 4. Scale up under parallel load: 12 clients, 0.3 s per request, concurrency_level 2.
$PY "$SRC/tests/router/load.py" "$ADDR" web.test 12 5 0.3 >"$W/load1.json"
summary() { $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }
[ "$(summary "$W/load1.json" 'list(d["statuses"].keys())')" = "['200']" ] \
  && ok "parallel load: every request answered 200 ($(summary "$W/load1.json" 'd["requests"]') requests)" \
  || not_ok "parallel load: $(cat "$W/load1.json")"
n=$(summary "$W/load1.json" 'len(d["instances"])')
[ "$n" -ge 2 ] && ok "scaled up under load: $n instances served" || not_ok "no scale-up: $(cat "$W/load1.json")"
mc=$(summary "$W/load1.json" 'd["max_concurrent"]')
[ "$mc" -le 2 ] && ok "slots respected: at most $mc in flight per instance (concurrency_level 2)" \
  || not_ok "an instance served $mc at once"

# 5. An instance killed mid-run: its requests may fail with 502, the others carry on.
$PY "$SRC/tests/router/load.py" "$ADDR" web.test 8 4 0.3 >"$W/load2.json" & lp=$!; bg_pids+=($lp)
sleep 1.5
victim=$(ls "$W"/pid.* 2>/dev/null | head -1)
[ -n "$victim" ] && kill -KILL "$(cat "$victim")" && rm -f "$victim"
wait "$lp"; bg_pids=()
bad=$(summary "$W/load2.json" '[k for k in d["statuses"] if k not in ("200","502")]')
twohundred=$(summary "$W/load2.json" 'd["statuses"].get("200",0)')
[ "$bad" = "[]" ] && [ "$twohundred" -gt 10 ] \
  && ok "instance killed: only 200 and 502 ($(summary "$W/load2.json" 'd["statuses"]')), traffic carried on" \
  || not_ok "instance killed: $(cat "$W/load2.json")"

# 6. A reload that replaces the router during load: not one request fails.
$PY "$SRC/tests/router/load.py" "$ADDR" web.test 6 4 0.1 >"$W/load3.json" & lp=$!; bg_pids+=($lp)
sleep 1
write_config 61s v1
kill -HUP "$daemon"
wait "$lp"; bg_pids=()
wait_for 10 grep -q "router.yaml: .*running (.*1 started, 1 stopped" "$log" \
  && ok "the reload replaced the router" || not_ok "no reload line: $(grep -F 'router.yaml' "$log" | tail -2)"
[ "$(summary "$W/load3.json" 'list(d["statuses"].keys())')" = "['200']" ] \
  && ok "reload under load: zero failed requests ($(summary "$W/load3.json" 'd["requests"]') requests)" \
  || not_ok "reload under load: $(cat "$W/load3.json")"

# 7. A new version of web (its command changed) under steady load: not one request fails, and
# the new version answers once it is ready.
$PY "$SRC/tests/router/load.py" "$ADDR" web.test 6 6 0.1 >"$W/load4.json" & lp=$!; bg_pids+=($lp)
sleep 1
write_config 61s v2
kill -HUP "$daemon"
wait "$lp"; bg_pids=()
[ "$(summary "$W/load4.json" 'list(d["statuses"].keys())')" = "['200']" ] \
  && ok "version switch under load: zero failed requests ($(summary "$W/load4.json" 'd["requests"]') requests)" \
  || not_ok "version switch: $(cat "$W/load4.json")"
[ "$(summary "$W/load4.json" 'd["last_version"]')" = v2 ] \
  && ok "version switch: the new version answers ($(summary "$W/load4.json" 'd["versions"]'))" \
  || not_ok "version switch: versions $(summary "$W/load4.json" 'd["versions"]')"

# 8. Hostile clients.
raw() { # raw PYTHON-BYTES-EXPR: send them, print what comes back until the router closes (bounded)
  $PY - "$PORT" "$1" <<'PYEOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(eval(sys.argv[2]))
# no half-close: a client that closes its side has gone, and its requests with it
data = b""
end = time.time() + 10
while time.time() < end:
    try:
        b = s.recv(65536)
    except OSError:
        break
    if not b:
        break
    data += b
print(data.decode(errors="replace"))
PYEOF
}
out=$(raw 'b"GET / HTTP/1.1\r\nHost: web.test\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"')
[[ "$out" == "HTTP/1.1 431"* ]] && ok "oversized headers: 431" || not_ok "oversized headers: ${out:0:100}"
out=$(raw 'b"\x00\x01garbage\r\n\r\n"')
[[ "$out" == "HTTP/1.1 400"* ]] && ok "garbage: 400" || not_ok "garbage: ${out:0:100}"
out=$(raw 'b"GET /?delay=0.2&n=1 HTTP/1.1\r\nHost: web.test\r\n\r\nGET /?n=2 HTTP/1.1\r\nHost: web.test\r\n\r\nGET /_scalebus/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"')
n1=$(grep -bo 'n=1' <<<"$out" | head -1 | cut -d: -f1)
n2=$(grep -bo 'n=2' <<<"$out" | head -1 | cut -d: -f1)
[ "$(grep -c '^HTTP/1.1 200' <<<"$out")" = 3 ] && [ -n "$n1" ] && [ -n "$n2" ] && [ "$n1" -lt "$n2" ] \
  && ok "pipelined requests: three answers in order" || not_ok "pipelined: ${out:0:300}"
out=$($PY "$SRC/tests/router/hostile.py" "$PORT" 300 11)
echo "# hostile clients (seed 11): $out"
out=$(get web.test "/?delay=0")
[[ "$out" == *" 200" ]] && kill -0 "$daemon" && ok "the router still serves after 300 hostile clients" \
  || not_ok "after hostile: $out"

# 9. Idle: after idle_timeout the demand goes to 0, each instance is drained and stopped.
web_at_zero() { [ "$(listed_instances web)" = 0 ]; }
wait_for 30 web_at_zero && ok "back to zero instances after idle_timeout" \
  || not_ok "not back to zero: $(apps)"
grep -q "\[web\] web\.[0-9]* drained (router says so)" "$log" && ok "instances stopped through the router's drained event" \
  || not_ok "no drained stop: $(grep -F drained "$log" | tail -3)"
grep -qE "\[router\] .*(Assertion|crash)" "$log" && not_ok "router trouble in the log" || true

stop_pid "$daemon" 20
daemon=""
[ "$fails" = 0 ] && echo "# all passed" || echo "# $fails failed"
exit $((fails > 0))
