#!/bin/bash
# The kitchen (tests/kitchen/kitchen.c), the project's test web app, shown option by option with
# curl against kitchens started here on free loopback ports:
#   - flags: --port, --start-delay (nothing listens until its line says so, after at least the
#     delay), --fail-rate (exactly that share of requests fails, evenly), --crash-after; port 0;
#   - the environment: PORT, KITCHEN_DELAY, KITCHEN_FAIL_RATE, KITCHEN_FAIL_STATUS;
#   - per request: ?delay / X-Kitchen-Delay (requests held in flight meanwhile), ?status /
#     X-Kitchen-Status, ?crash=1 (the process exits 3 and the client gets no answer), ?size (a
#     streamed body, chunked with ?chunked=1, HEAD gives its length);
#   - GET /echo (the headers sent and the body bytes received, plain and chunked uploads);
#     X-Kitchen-In-Flight and /stats (in_flight, max_in_flight, ?reset=1); /healthz;
#   - SIGTERM: new connections are refused at once, the request in flight still gets its answer,
#     then exit 0; SIGTERM during the start-up delay exits 0; bad options exit 2.
#
#   tests/test_kitchen.sh BUILD/tests/kitchen
#
# SB_E2E_WRAP, when set, prefixes every kitchen (e.g. valgrind; waits are then 10 times longer).
# Needs curl and python3; exits 77 (skipped) without them. On a failure the temporary folder
# (the kitchens' logs) is kept.
set -u
KITCHEN=$1
WRAP=${SB_E2E_WRAP:-}
SLOW=${SLOW:-1}
[ -n "$WRAP" ] && SLOW=10
fails=0
. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || { echo "# skipped: no curl"; exit 77; }
[ -x /usr/bin/python3 ] || { echo "# skipped: no /usr/bin/python3"; exit 77; }
[ -x "$KITCHEN" ] || { echo "not ok - no kitchen at $KITCHEN"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sb-kitchen-XXXXXX") || exit 1
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do stop_pid "$p" 2; done
  keep_or_remove "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

listening() { grep -qs "kitchen: listening on" "$1"; }
# json FILE EXPR: a value from a JSON file (EXPR is Python on the parsed document d).
json() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
# stat_of PORT FIELD: one field of GET /stats.
stat_of() { curl -s "http://127.0.0.1:$1/stats" >"$WORK/stats.json" && json "$WORK/stats.json" "d['$2']"; }
in_flight_is() { [ "$(stat_of "$1" in_flight)" = "$2" ]; }
# code URL [CURL_ARGS...]: the status of one request (000 when there was no answer).
code() { local u=$1; shift; curl -s -o /dev/null -w '%{http_code}' "$@" "$u"; }
exited() { ! kill -0 "$1" 2>/dev/null; }

# ---- A: flags ---------------------------------------------------------------------------------
PA=$(free_port)
$WRAP "$KITCHEN" --port "$PA" --start-delay 1500ms >"$WORK/a.log" 2>&1 &
A=$!
PIDS+=("$A")
# Nothing answers before the listening line (checked on both sides of the attempt).
if ! listening "$WORK/a.log" && ! curl -s -o /dev/null "http://127.0.0.1:$PA/" \
   && ! listening "$WORK/a.log"; then
  ok "start-delay: refused before it listens"
else
  not_ok "start-delay: something answered on $PA before the listening line"
fi
if wait_for 10 listening "$WORK/a.log"; then
  after=$(sed -n 's/.*(after \([0-9]*\)\.[0-9]* ms).*/\1/p' "$WORK/a.log")
  [ "${after:-0}" -ge 1500 ] && ok "start-delay: listens after $after ms (>= 1500)" \
    || not_ok "start-delay: listened after ${after:-?} ms"
  grep -q "start_ms=[0-9]* listen_ms=[0-9]*" "$WORK/a.log" && ok "listening line has start_ms and listen_ms" \
    || not_ok "listening line: $(cat "$WORK/a.log")"
else
  not_ok "kitchen A never listened"
fi
U=http://127.0.0.1:$PA

curl -s -D "$WORK/h1" -o "$WORK/b1" "$U/"
if grep -q "^HTTP/1.1 200" "$WORK/h1" && [ "$(cat "$WORK/b1")" = "hello from kitchen" ] \
   && grep -qi "^X-Kitchen-In-Flight: 1" "$WORK/h1" && grep -qi "^X-Kitchen-Pid: $A" "$WORK/h1"; then
  ok "GET /: 200, hello, X-Kitchen-In-Flight 1, X-Kitchen-Pid"
else
  not_ok "GET /: $(tr -d '\r' <"$WORK/h1" | tr '\n' '|') $(cat "$WORK/b1")"
fi

c1=$(code "$U/?status=503")
c2=$(code "$U/" -H "X-Kitchen-Status: 404")
c3=$(code "$U/?status=99")
c4=$(code "$U/?delay=soon")
[ "$c1" = 503 ] && [ "$c2" = 404 ] && ok "?status=503 and X-Kitchen-Status: 404 answered so" \
  || not_ok "status asked: $c1 $c2"
[ "$c3" = 400 ] && [ "$c4" = 400 ] && ok "a bad status or delay asked: 400" || not_ok "bad asks: $c3 $c4"

# ?delay holds requests: 5 held, a 6th sees them in flight; /stats shows the max.
curl -s "$U/stats?reset=1" >/dev/null
for i in 1 2 3 4 5; do
  if [ "$i" -le 3 ]; then curl -s -o "$WORK/held$i" -w '%{http_code}' "$U/?delay=3s" >"$WORK/held$i.code" &
  else curl -s -o "$WORK/held$i" -w '%{http_code}' -H "X-Kitchen-Delay: 3s" "$U/" >"$WORK/held$i.code" &
  fi
done
if wait_for 10 in_flight_is "$PA" 5; then
  ok "?delay and X-Kitchen-Delay hold requests in flight (5)"
else
  not_ok "in flight: $(cat "$WORK/stats.json")"
fi
curl -s -D "$WORK/h6" -o /dev/null "$U/?status=200"
grep -qi "^X-Kitchen-In-Flight: 6" "$WORK/h6" && ok "X-Kitchen-In-Flight: 6 beside 5 held" \
  || not_ok "in-flight header: $(grep -i in-flight "$WORK/h6")"
wait_for 15 in_flight_is "$PA" 0
held_ok=0
for i in 1 2 3 4 5; do
  wait_for 5 test -s "$WORK/held$i.code"
  [ "$(cat "$WORK/held$i.code")" = 200 ] && held_ok=$((held_ok + 1))
done
[ "$held_ok" = 5 ] && ok "the 5 held requests answered 200 after their delay" || not_ok "held: $held_ok of 5"
stat_of "$PA" max_in_flight >/dev/null
[ "$(json "$WORK/stats.json" "d['max_in_flight']")" = 6 ] && [ "$(json "$WORK/stats.json" "d['in_flight']")" = 0 ] \
  && ok "/stats: max_in_flight 6, in_flight 0" || not_ok "/stats: $(cat "$WORK/stats.json")"
curl -s "$U/stats?reset=1" >/dev/null
[ "$(stat_of "$PA" max_in_flight)" = 0 ] && ok "/stats?reset=1 sets max_in_flight back" \
  || not_ok "after reset: $(cat "$WORK/stats.json")"

# /echo: headers and body bytes (a plain and a chunked upload), never the body itself.
head -c 100000 /dev/zero >"$WORK/body"
curl -s -o "$WORK/echo.json" -H "X-Test: hello kitchen" --data-binary @"$WORK/body" "$U/echo?x=1"
if [ "$(json "$WORK/echo.json" "d['body_bytes']")" = 100000 ] \
   && [ "$(json "$WORK/echo.json" "[v for n,v in d['headers'] if n.lower()=='x-test'][0]")" = "hello kitchen" ] \
   && [ "$(json "$WORK/echo.json" "d['method'] + ' ' + d['target']")" = "POST /echo?x=1" ]; then
  ok "/echo: method, target, X-Test and body_bytes 100000"
else
  not_ok "/echo: $(head -c 400 "$WORK/echo.json")"
fi
curl -s -o "$WORK/echo2.json" -H "Transfer-Encoding: chunked" --data-binary @"$WORK/body" "$U/echo"
[ "$(json "$WORK/echo2.json" "d['body_bytes']")" = 100000 ] && ok "/echo: a chunked upload counted (100000)" \
  || not_ok "/echo chunked: $(head -c 400 "$WORK/echo2.json")"
curl -s -o "$WORK/echo3.json" "$U/echo"
[ "$(json "$WORK/echo3.json" "d['body_bytes']")" = 0 ] && ok "/echo: GET without a body: 0" \
  || not_ok "/echo GET: $(head -c 400 "$WORK/echo3.json")"

# ?size: a streamed body of that many bytes, with a length or chunked; HEAD gives the length.
got=$(curl -s -o "$WORK/big" -w '%{http_code} %{size_download}' "$U/?size=5000000")
[ "$got" = "200 5000000" ] && ok "?size=5000000: 5000000 bytes" || not_ok "?size: $got"
curl -s -D "$WORK/hc" -o "$WORK/bigc" "$U/?size=300000&chunked=1"
[ "$(stat -c %s "$WORK/bigc")" = 300000 ] && grep -qi "^Transfer-Encoding: chunked" "$WORK/hc" \
  && ok "?size=300000&chunked=1: chunked, 300000 bytes" || not_ok "chunked size: $(tr -d '\r' <"$WORK/hc" | tr '\n' '|')"
curl -s -I -X HEAD "$U/?size=12345" >"$WORK/hh"
grep -qi "^Content-Length: 12345" "$WORK/hh" && ok "HEAD ?size=12345: Content-Length 12345" \
  || not_ok "HEAD: $(tr -d '\r' <"$WORK/hh" | tr '\n' '|')"
[ "$(code "$U/healthz")" = 200 ] && ok "/healthz: 200" || not_ok "/healthz"

# SIGTERM: refuse new connections, finish the one in flight, exit 0.
curl -s -o "$WORK/last" -w '%{http_code}' "$U/?delay=2s" >"$WORK/last.code" &
wait_for 10 in_flight_is "$PA" 1
kill -TERM "$A"
wait_for 10 grep -qs "draining 1 request" "$WORK/a.log" && ok "SIGTERM: draining 1 request" || not_ok "no drain line"
if ! exited "$A"; then
  c=$(code "$U/")
  [ "$c" = 000 ] && ok "SIGTERM: a new connection is refused while the request finishes" \
    || not_ok "SIGTERM: a new request got $c"
fi
wait_for 10 exited "$A"
wait "$A"; rc=$?
wait_for 5 test -s "$WORK/last.code"
[ "$(cat "$WORK/last.code")" = 200 ] && [ "$(cat "$WORK/last")" = "hello from kitchen" ] \
  && ok "SIGTERM: the request in flight got its 200" || not_ok "in-flight request: $(cat "$WORK/last.code")"
[ "$rc" = 0 ] && ok "SIGTERM: exit 0" || not_ok "SIGTERM: exit $rc"

# ---- B: the environment -------------------------------------------------------------------------
PB=$(free_port)
PORT=$PB KITCHEN_DELAY=10s KITCHEN_FAIL_RATE=1 KITCHEN_FAIL_STATUS=502 $WRAP "$KITCHEN" >"$WORK/b.log" 2>&1 &
B=$!
PIDS+=("$B")
wait_for 10 listening "$WORK/b.log" && grep -q "on 127.0.0.1:$PB " "$WORK/b.log" \
  && ok "PORT from the environment: listens on $PB" || not_ok "kitchen B did not listen on $PB"
UB=http://127.0.0.1:$PB
curl -s -o /dev/null -w '%{http_code}' "$UB/" >"$WORK/envheld.code" &
wait_for 10 in_flight_is "$PB" 1 && ok "KITCHEN_DELAY holds a request" || not_ok "B in flight: $(cat "$WORK/stats.json")"
[ "$(code "$UB/?delay=0")" = 502 ] && ok "KITCHEN_FAIL_RATE=1, KITCHEN_FAIL_STATUS=502: 502 (?delay=0 answers at once)" \
  || not_ok "B: not 502"
c=$(code "$UB/?crash=1&delay=0")
wait_for 10 exited "$B"
wait "$B"; rc=$?
[ "$c" = 000 ] && [ "$rc" = 3 ] && grep -q "crashing" "$WORK/b.log" \
  && ok "?crash=1: no answer, the process exited 3" || not_ok "crash: answer $c, exit $rc"
wait_for 5 test -s "$WORK/envheld.code"
[ "$(cat "$WORK/envheld.code")" = 000 ] && ok "?crash=1 cut the request held in flight" \
  || not_ok "held request on crash: $(cat "$WORK/envheld.code")"

# ---- C: port 0 and --crash-after ------------------------------------------------------------------
$WRAP "$KITCHEN" --port=0 --fail-rate 0.25 --crash-after 10 >"$WORK/c.log" 2>&1 &
C=$!
PIDS+=("$C")
wait_for 10 listening "$WORK/c.log"
PC=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\) .*/\1/p' "$WORK/c.log")
if [ -n "$PC" ] && [ "$PC" != 0 ]; then
  ok "--port 0: listens on the free port $PC it prints"
  UC=http://127.0.0.1:$PC
  # --fail-rate 0.25: of requests 1 to 8, exactly 4 and 8 fail, with 500.
  codes=""
  for _ in 1 2 3 4 5 6 7 8; do codes="$codes $(code "$UC/")"; done
  [ "$codes" = " 200 200 200 500 200 200 200 500" ] && ok "--fail-rate 0.25: 2 of 8 answered 500 ($codes)" \
    || not_ok "--fail-rate 0.25: $codes"
  [ "$(stat_of "$PC" failed)" = 2 ] && ok "/stats counts the 2 failed" || not_ok "/stats failed: $(cat "$WORK/stats.json")"
  c1=$(code "$UC/")
  c2=$(code "$UC/")
  wait_for 10 exited "$C"
  wait "$C"; rc=$?
  [ "$c1" = 200 ] && [ "$c2" = 000 ] && [ "$rc" = 3 ] && ok "--crash-after 10: the 10th request crashes it (exit 3)" \
    || not_ok "--crash-after: $c1 $c2 exit $rc"
else
  not_ok "--port 0: $(cat "$WORK/c.log")"
fi

# ---- D: SIGTERM before listening; bad options ------------------------------------------------------
$WRAP "$KITCHEN" --port "$(free_port)" --start-delay 60s >"$WORK/d.log" 2>&1 &
D=$!
PIDS+=("$D")
wait_for 10 grep -qs "listens in 60000 ms" "$WORK/d.log"
kill -TERM "$D"
wait_for 10 exited "$D"
wait "$D"; rc=$?
[ "$rc" = 0 ] && ! listening "$WORK/d.log" && ok "SIGTERM during the start-up delay: exit 0, never listened" \
  || not_ok "SIGTERM in start delay: exit $rc"
env -u PORT $WRAP "$KITCHEN" >"$WORK/e1.log" 2>&1; r1=$?
$WRAP "$KITCHEN" --port 1 --delay forever >"$WORK/e2.log" 2>&1; r2=$?
$WRAP "$KITCHEN" --port 1 --fail-rate 2 >"$WORK/e3.log" 2>&1; r3=$?
if [ "$r1" = 2 ] && [ "$r2" = 2 ] && [ "$r3" = 2 ] && grep -q "no port" "$WORK/e1.log" \
   && grep -q "bad value for delay: 'forever'" "$WORK/e2.log" && grep -q "bad value for fail-rate" "$WORK/e3.log"; then
  ok "no port, a bad delay, a fail-rate over 1: exit 2 with a reason"
else
  not_ok "bad options: $r1 $r2 $r3: $(cat "$WORK"/e?.log)"
fi

echo "# $fails failure(s)"
[ "$fails" = 0 ]
