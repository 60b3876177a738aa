#!/bin/sh
# bench_router.sh - the same backend (the kitchen, tests/kitchen) measured with wrk directly and
# through three reverse proxies, in one run on this machine:
#   (a) direct, (b) nginx (proxy_pass, upstream keep-alive pool, one worker), (c) HAProxy (one
#   thread), (d) the scalebus router (triggers/router; "router: not built yet" and skipped while
#   BUILD/plugins/router.so does not exist),
# printing requests/s and p50/p99 latency for each and the router's ratios to nginx and HAProxy
# (the goal of issue 11: throughput at least nginx's, p99 no worse than nginx's). The three
# proxies run side by side and are measured in ROUNDS rounds (default 3), each round every proxy
# once in a rotated order; the ratios are those of the medians (a tail on a shared machine moves
# by more between two minutes than between two proxies). The router's daemon runs as users run
# it: with its admin endpoint (on a free port). Then the
# router's cold start, over 20 starts from zero instances: the first response's time minus the
# kitchen's own time from its start to listening (the kitchen prints it), against the goal of
# under 5 ms.
#
#   [ROUNDS=3] [COLD_RUNS=20] sh tests/bench/bench_router.sh [BUILD_DIR [SECONDS [CONNECTIONS]]]
#                                                                         (build, 8, 64)
#
# Every server is started here on a free loopback port with its config (tests/bench/router/*.in)
# in a temporary folder, and stopped by pid. Each row gets a 1 s warm-up, then SECONDS of
# `wrk --latency`. CPUs, where there are enough: the kitchen on CPU 0, the proxy on CPU 1, wrk on
# the others (2 CPUs: the kitchen and the proxy share CPU 0, wrk has CPU 1); the router's kitchen
# is started by the process scaler and moved to the kitchen's CPU once it answers. Every request
# carries "X-Scalebus-Service: kitchen" (the router picks the service by it; the others pass it
# on). It prints figures only; it exits 1 only when it cannot measure at all (no kitchen, no wrk).
# The whole run takes about two minutes with the defaults.
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${1:-build}
SECS=${2:-8}
CONNS=${3:-64}
COLD_RUNS=${COLD_RUNS:-20}
ROUNDS=${ROUNDS:-3}
KITCHEN=$BUILD/tests/kitchen
SCALEBUS=$BUILD/scalebus
TPL=tests/bench/router
[ -x "$KITCHEN" ] || { echo "bench_router: no $KITCHEN (build the tests first)"; exit 1; }
command -v wrk >/dev/null || { echo "bench_router: wrk not installed (Debian package wrk)"; exit 1; }
case "$KITCHEN" in /*) ;; *) KITCHEN=$(pwd)/$KITCHEN ;; esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sb-bench-router-XXXXXX") || exit 1
KITCHEN_PID="" PROXY_PID=""
free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
# stop PID: SIGTERM, SIGKILL after 10 s, reaped.
stop() {
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null
  n=0
  while kill -0 "$1" 2>/dev/null && [ "$n" -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
  kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  return 0
}
cleanup() {
  stop "$PROXY_PID"
  stop "$KITCHEN_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- CPUs -----------------------------------------------------------------------------------
NCPU=$(nproc 2>/dev/null || echo 1)
PIN_KITCHEN="" PIN_PROXY="" PIN_WRK="" CPU_KITCHEN="" WRK_THREADS=1
if command -v taskset >/dev/null && [ "$NCPU" -ge 2 ]; then
  CPU_KITCHEN=0
  if [ "$NCPU" -ge 4 ]; then
    PIN_PROXY="taskset -c 1" PIN_WRK="taskset -c 2-$((NCPU - 1))" WRK_THREADS=2
    LAYOUT="kitchen CPU 0, proxy CPU 1, wrk CPUs 2-$((NCPU - 1)) (2 threads)"
  elif [ "$NCPU" -eq 3 ]; then
    PIN_PROXY="taskset -c 1" PIN_WRK="taskset -c 2"
    LAYOUT="kitchen CPU 0, proxy CPU 1, wrk CPU 2"
  else
    PIN_PROXY="taskset -c 0" PIN_WRK="taskset -c 1"
    LAYOUT="kitchen and proxy share CPU 0, wrk CPU 1"
  fi
  PIN_KITCHEN="taskset -c 0"
else
  LAYOUT="not pinned ($NCPU CPU, or no taskset)"
fi

# ---- helpers --------------------------------------------------------------------------------
# wait_line LOG PATTERN PID TIMEOUT_S: 0 once LOG has a line matching PATTERN
wait_line() {
  deadline=$(($(date +%s) + $4))
  while ! grep -q "$2" "$1" 2>/dev/null; do
    kill -0 "$3" 2>/dev/null || return 1
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}
# answers PORT PID TIMEOUT_S: 0 once GET / through PORT answers 200
answers() {
  deadline=$(($(date +%s) + $3))
  while [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Scalebus-Service: kitchen' \
             --max-time 5 "http://127.0.0.1:$1/")" != 200 ]; do
    kill -0 "$2" 2>/dev/null || return 1
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}
fill() { # TEMPLATE OUT PORT [MIN]
  sed -e "s|@WORK@|$WORK|g" -e "s|@PORT@|$3|g" -e "s|@BACKEND@|$KITCHEN_PORT|g" \
      -e "s|@KITCHEN@|$KITCHEN|g" -e "s|@MIN@|${4:-1}|g" -e "s|@ADMIN@|$(free_port)|g" \
      "$TPL/$1" >"$2"
}
# "850us" / "1.20ms" / "1.01s" -> milliseconds
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else printf "-" }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }

# measure NAME PORT: warm-up, then wrk; sets R_RPS, R_P50, R_P99, R_ERR and prints a row.
measure() {
  $PIN_WRK wrk -t1 -c"$CONNS" -d1s -H 'X-Scalebus-Service: kitchen' "http://127.0.0.1:$2/" >/dev/null 2>&1
  $PIN_WRK wrk -t"$WRK_THREADS" -c"$CONNS" -d"${SECS}s" --latency -H 'X-Scalebus-Service: kitchen' \
    "http://127.0.0.1:$2/" >"$WORK/wrk-$1.txt" 2>&1
  R_RPS=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$WORK/wrk-$1.txt")
  R_P50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$WORK/wrk-$1.txt")")
  R_P99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$WORK/wrk-$1.txt")")
  non2xx=$(awk '/Non-2xx/ { print $NF }' "$WORK/wrk-$1.txt")
  sock=$(awk '/Socket errors/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$WORK/wrk-$1.txt")
  R_ERR=$((${non2xx:-0} + ${sock:-0}))
  [ -n "$R_RPS" ] || { R_RPS="-"; R_P50="-"; R_P99="-"; echo "bench_router: $1: wrk said: $(tail -3 "$WORK/wrk-$1.txt")"; }
  printf "%-9s %12s %10s %10s %8s\n" "$1" "$R_RPS" "$R_P50" "$R_P99" "$R_ERR"
}

# ---- the backend ----------------------------------------------------------------------------
KITCHEN_PORT=$(free_port)
$PIN_KITCHEN "$KITCHEN" --port "$KITCHEN_PORT" >"$WORK/kitchen.log" 2>&1 &
KITCHEN_PID=$!
wait_line "$WORK/kitchen.log" "kitchen: listening" "$KITCHEN_PID" 10 \
  || { echo "bench_router: the kitchen did not start: $(cat "$WORK/kitchen.log")"; exit 1; }

echo "bench_router: wrk -c $CONNS, ${SECS}s per row after a 1s warm-up, $ROUNDS round(s); $LAYOUT"
printf "%-9s %12s %10s %10s %8s\n" "" "requests/s" "p50 ms" "p99 ms" "errors"
measure direct "$KITCHEN_PORT"
D_RPS=$R_RPS

# ---- the proxies: all started first, then measured in turn, round after round ----------------
# The machine's noise (other work, frequency, the scheduler) moves a tail by more than the
# proxies differ: each round measures every proxy once, in a rotated order, and the medians
# over the rounds are compared, never one row measured minutes apart from another.
NGINX_PID="" HAPROXY_PID="" ROUTER_PID="" N_PORT="" H_PORT="" R_PORT=""
cleanup_proxies() { stop "$NGINX_PID"; stop "$HAPROXY_PID"; stop "$ROUTER_PID"; }
trap 'cleanup_proxies; cleanup' EXIT
if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
  P=$(free_port)
  fill nginx.conf.in "$WORK/nginx.conf" "$P"
  $PIN_PROXY "$NGINX" -e "$WORK/nginx.error.log" -p "$WORK" -c "$WORK/nginx.conf" -g 'daemon off;' \
    >"$WORK/nginx.log" 2>&1 &
  NGINX_PID=$!
  if answers "$P" "$NGINX_PID" 10; then N_PORT=$P
  else echo "nginx: did not start: $(tail -2 "$WORK/nginx.error.log" "$WORK/nginx.log" 2>/dev/null)"; fi
else
  echo "nginx: not installed (Debian package nginx-light)"
fi
if command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ]; then
  HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
  P=$(free_port)
  fill haproxy.cfg.in "$WORK/haproxy.cfg" "$P"
  $PIN_PROXY "$HAPROXY" -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
  HAPROXY_PID=$!
  if answers "$P" "$HAPROXY_PID" 10; then H_PORT=$P
  else echo "haproxy: did not start: $(tail -3 "$WORK/haproxy.log")"; fi
else
  echo "haproxy: not installed (Debian package haproxy)"
fi
ROUTER_BUILT=no
[ -x "$SCALEBUS" ] && [ -f "$BUILD/plugins/router.so" ] && ROUTER_BUILT=yes
if [ "$ROUTER_BUILT" = no ]; then
  echo "router: not built yet ($BUILD/plugins/router.so missing): no router row, no cold start"
else
  P=$(free_port)
  fill router.yaml.in "$WORK/router.yaml" "$P" 1
  $PIN_PROXY "$SCALEBUS" run "$WORK/router.yaml" >"$WORK/router.log" 2>&1 &
  ROUTER_PID=$!
  if answers "$P" "$ROUTER_PID" 30; then
    R_PORT=$P
    # The process scaler's kitchen inherited the proxy's CPU: move it to the kitchen's.
    kpid=$(curl -s -D - -o /dev/null -H 'X-Scalebus-Service: kitchen' "http://127.0.0.1:$P/" \
           | tr -d '\r' | awk -F': ' 'tolower($1) == "x-kitchen-pid" { print $2 }')
    [ -n "$CPU_KITCHEN" ] && [ -n "$kpid" ] && taskset -p -c "$CPU_KITCHEN" "$kpid" >/dev/null 2>&1
    grep -q "\[admin\] listening" "$WORK/router.log" \
      || echo "router: the daemon runs without its admin endpoint: $(grep -m1 'admin' "$WORK/router.log")"
  else
    echo "router: did not answer within 30 s; its log ends with:"
    tail -5 "$WORK/router.log"
  fi
fi

: >"$WORK/rows.txt" # round name rps p50 p99
round=1
while [ "$round" -le "$ROUNDS" ]; do
  case $((round % 3)) in
    1) order="nginx haproxy router" ;;
    2) order="haproxy router nginx" ;;
    0) order="router nginx haproxy" ;;
  esac
  for name in $order; do
    case $name in nginx) port=$N_PORT ;; haproxy) port=$H_PORT ;; router) port=$R_PORT ;; esac
    [ -n "$port" ] || continue
    measure "$name" "$port"
    echo "$round $name $R_RPS $R_P50 $R_P99" >>"$WORK/rows.txt"
  done
  round=$((round + 1))
done
cleanup_proxies; NGINX_PID="" HAPROXY_PID="" ROUTER_PID=""

# median NAME COLUMN (3 rps, 4 p50, 5 p99) over the rounds; "-" without a figure
median() {
  awk -v n="$1" -v c="$2" '$2 == n && $c != "-" { print $c }' "$WORK/rows.txt" | sort -n \
    | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
                                  else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# the median over the rounds of router/OTHER for column c (each ratio within one round)
round_ratio() {
  awk -v o="$1" -v c="$2" '$2 == "router" { r[$1] = $c } $2 == o { x[$1] = $c }
    END { for (k in r) if ((k in x) && r[k] != "-" && x[k] != "-" && x[k] + 0 > 0) printf "%.2f\n", r[k] / x[k] }' \
    "$WORK/rows.txt" | sort -n \
    | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
                                  else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
N_RPS=$(median nginx 3) N_P50=$(median nginx 4) N_P99=$(median nginx 5)
H_RPS=$(median haproxy 3) H_P50=$(median haproxy 4) H_P99=$(median haproxy 5)
R_RPS_ROUTER=$(median router 3) R_P50_ROUTER=$(median router 4) R_P99_ROUTER=$(median router 5)
if [ "$ROUNDS" -gt 1 ]; then
  echo "medians over $ROUNDS rounds:"
  for name in nginx haproxy router; do
    grep -q " $name " "$WORK/rows.txt" || continue
    printf "%-9s %12s %10s %10s\n" "$name" "$(median "$name" 3)" "$(median "$name" 4)" "$(median "$name" 5)"
  done
fi
echo "ratios of the medians (goal: requests/s >= 1.00, p99 <= 1.00 against nginx):"
echo "  router/nginx   requests/s $(ratio "$R_RPS_ROUTER" "$N_RPS")  p50 $(ratio "$R_P50_ROUTER" "$N_P50")  p99 $(ratio "$R_P99_ROUTER" "$N_P99")"
echo "  router/haproxy requests/s $(ratio "$R_RPS_ROUTER" "$H_RPS")  p50 $(ratio "$R_P50_ROUTER" "$H_P50")  p99 $(ratio "$R_P99_ROUTER" "$H_P99")"
echo "  router/direct  requests/s $(ratio "$R_RPS_ROUTER" "$D_RPS")"
[ "$ROUNDS" -gt 1 ] && echo "  router/nginx p99 within each round: median $(round_ratio nginx 5) (requests/s $(round_ratio nginx 3))"
[ "$ROUTER_BUILT" = yes ] || exit 0

# ---- cold starts ----------------------------------------------------------------------------------
# Each: a fresh daemon with no kitchen running; one request; its time to first byte (curl's
# time_starttransfer) minus the kitchen's own "after N ms" from its start to listening.
: >"$WORK/cold.txt"
i=0
while [ "$i" -lt "$COLD_RUNS" ]; do
  P=$(free_port)
  fill router.yaml.in "$WORK/cold.yaml" "$P" 0
  LOG=$WORK/cold-$i.log # a new file each time: the wait must never read the previous daemon's
  $PIN_PROXY "$SCALEBUS" run "$WORK/cold.yaml" >"$LOG" 2>&1 &
  PROXY_PID=$!
  if ! wait_line "$LOG" "component(s) running" "$PROXY_PID" 30; then
    echo "router cold start: the daemon did not start; its log ends with:"; tail -5 "$LOG"
    break
  fi
  got=$(curl -s -o /dev/null -w '%{http_code} %{time_starttransfer}' --max-time 30 \
        -H 'X-Scalebus-Service: kitchen' "http://127.0.0.1:$P/")
  own=$(sed -n 's/^kitchen: listening on .*(after \([0-9.]*\) ms).*/\1/p' "$LOG" | head -1)
  stop "$PROXY_PID"; PROXY_PID=""
  case "$got" in
    "200 "*) [ -n "$own" ] && awk -v t="${got#200 }" -v o="$own" 'BEGIN { printf "%.3f %.3f %.3f\n", t * 1000 - o, t * 1000, o }' >>"$WORK/cold.txt" ;;
    *) echo "router cold start $i: answered '$got'"; tail -3 "$LOG" ;;
  esac
  i=$((i + 1))
done
n=$(wc -l <"$WORK/cold.txt")
if [ "$n" -gt 0 ]; then
  sort -n "$WORK/cold.txt" | awk -v n="$n" '
    { o[NR] = $1; first += $2; own += $3 }
    END {
      p50 = o[int((n + 1) / 2)]; p90 = o[int(n * 0.9 + 0.999)]
      printf "router cold start over %d starts: overhead (first response - kitchen start-to-listen) median %.2f ms, p90 %.2f ms, max %.2f ms (goal: under 5 ms); first response mean %.2f ms, kitchen start-to-listen mean %.2f ms\n", n, p50, p90, o[n], first / n, own / n
    }'
else
  echo "router cold start: no measurement"
fi
