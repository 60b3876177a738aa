#!/bin/sh
# bench_triggers.sh - CPU and memory of `scalebus run` with N polling triggers reading a real
# server every second, beside floors measured in the same run.
#
#   sh tests/bench/bench_triggers.sh [BUILD_DIR [N [SECONDS]]]      (build, 1000, 20)
#
# Four measurements, one after the other, each sampled for SECONDS after a short warm-up: CPU%
# from /proc/PID/stat (utime + stime over the window, 100% = one core busy) and RSS (the highest
# VmRSS seen while sampling):
#   1. floor: tests/bench/bench_tick_floor.c (built here with cc and pkg-config): N bare libuv
#      timers on one loop, all repeating every second;
#   2. floor: `scalebus run` with N pipelines cron ("* * * * * *", value 0) -> direct -> process
#      (min 0: no child): the daemon's own cost of N triggers firing every second;
#   3. `scalebus run` with N pipelines redis (LLEN of its own empty list q<i>, every 1s) ->
#      direct -> process, against one redis-server started here (the server's CPU is printed too,
#      and the reads it served per second, from INFO stats);
#   4. the same with http_json (select /queued of a small JSON reply, every 1s) against one local
#      nginx started here (requests per second from its stub_status), when http_json.so is built
#      and nginx is installed.
# Each row is then set against the cron floor (a ratio) and against the goal of the issue: under
# 10% of a core. It prints figures only; it exits 1 only when it cannot measure at all (no
# scalebus, no redis plugin or server, a daemon that does not start).
set -u
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
N=${2:-1000}
SECS=${3:-20}
WARM=3
SCALEBUS=$BUILD/scalebus
[ -x "$SCALEBUS" ] || { echo "bench_triggers: no $SCALEBUS (build first)"; exit 1; }
[ -f "$BUILD/plugins/redis.so" ] || { echo "bench_triggers: no $BUILD/plugins/redis.so (libhiredis-dev missing?)"; exit 1; }
command -v redis-server >/dev/null || { echo "bench_triggers: redis-server not installed"; exit 1; }

# N triggers each hold a connection (redis) or share a few (http): lift the soft descriptor limit.
hard=$(ulimit -Hn)
want=$((N * 2 + 1024))
[ "$hard" = unlimited ] || [ "$hard" -ge "$want" ] || want=$hard
ulimit -n "$want" 2>/dev/null

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sb-bench-triggers-XXXXXX") || exit 1
DAEMON_PID="" FLOOR_PID="" NGINX_PID=""
free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
REDIS_PORT=$(free_port)
HTTP_PORT=$(free_port)
cleanup() {
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
  [ -n "$FLOOR_PID" ] && kill "$FLOOR_PID" 2>/dev/null && wait "$FLOOR_PID" 2>/dev/null
  [ -f "$WORK/redis.pid" ] && kill "$(cat "$WORK/redis.pid")" 2>/dev/null
  [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
  sleep 0.2
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- measuring a process ----------------------------------------------------------------------
TICKS=$(getconf CLK_TCK 2>/dev/null || echo 100)
now_ms() { date +%s%3N; }
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status" 2>/dev/null; }
# utime + stime, in clock ticks (fields 14 and 15; the command name may hold spaces)
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'; }
pct() { awk -v c="$1" -v t="$2" -v hz="$TICKS" 'BEGIN { printf "%.2f", 100.0 * c / hz / (t / 1000.0) }'; }

# sample PID SECS [SERVER_PID]: sets S_CPU (the process's CPU %), S_RSS (highest VmRSS, kB) and
# S_SRV (the server's CPU %, or "-"); returns 1 when the process went away.
sample() {
  t0=$(now_ms)
  c0=$(cpu_ticks "$1")
  s0=""
  [ -n "${3:-}" ] && s0=$(cpu_ticks "$3")
  S_RSS=0
  i=0
  while [ "$i" -lt "$2" ]; do
    sleep 1
    r=$(rss_kb "$1")
    [ -n "$r" ] || return 1
    [ "$r" -gt "$S_RSS" ] && S_RSS=$r
    i=$((i + 1))
  done
  c1=$(cpu_ticks "$1")
  t1=$(now_ms)
  S_CPU=$(pct $((c1 - c0)) $((t1 - t0)))
  S_SRV=-
  if [ -n "$s0" ]; then
    s1=$(cpu_ticks "$3")
    S_SRV=$(pct $((s1 - s0)) $((t1 - t0)))
  fi
  S_MS=$((t1 - t0))
  return 0
}

# wait_line LOG PATTERN PID TIMEOUT_S: 0 once LOG has a line matching PATTERN
wait_line() {
  deadline=$(($(date +%s) + $4))
  while ! grep -q "$2" "$1" 2>/dev/null; do
    kill -0 "$3" 2>/dev/null || return 1
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# run_daemon NAME FILE [SERVER_PID]: runs scalebus on FILE, samples it; sets the S_* figures.
run_daemon() {
  LOG=$WORK/$1.log
  "$SCALEBUS" run "$2" >"$LOG" 2>&1 &
  DAEMON_PID=$!
  if ! wait_line "$LOG" "component(s) running" "$DAEMON_PID" 120; then
    echo "bench_triggers: $1: scalebus did not report its components running; its log ends with:"
    tail -5 "$LOG"
    exit 1
  fi
  sleep "$WARM"
  [ -n "${BEFORE:-}" ] && eval "$BEFORE"
  sample "$DAEMON_PID" "$SECS" "${3:-}" || { echo "bench_triggers: $1: scalebus exited"; tail -5 "$LOG"; exit 1; }
  [ -n "${AFTER:-}" ] && eval "$AFTER"
  kill "$DAEMON_PID"
  wait "$DAEMON_PID" 2>/dev/null
  D_RC=$?
  DAEMON_PID=""
  FAILED=$(grep -c "read failed" "$LOG")
}

# pipelines TRIGGER_TEMPLATE: N pipelines, %d in the template is the pipeline's number.
pipelines() {
  awk -v n="$N" -v tpl="$1" 'BEGIN {
    print "log: { level: info }"
    print "triggers:"
    for (i = 0; i < n; i++) { t = tpl; gsub(/%d/, i, t); printf "  - { id: t%d, %s }\n", i, t }
    print "connectors:"
    for (i = 0; i < n; i++) printf "  - { id: c%d, type: direct, from: t%d, to: s%d }\n", i, i, i
    print "scalers:"
    for (i = 0; i < n; i++)
      printf "  - { id: s%d, type: process, min: 0, max: 2, command: [sleep, \"600\"] }\n", i
  }'
}

ROWS=$WORK/rows
: >"$ROWS"
row() { printf '%-46s %8s %9.1f %12s   %s\n' "$1" "$2" "$(echo "$3" | awk '{ print $1 / 1024 }')" "$4" "$5" >>"$ROWS"; }

# ---- 1. the C floor ---------------------------------------------------------------------------
FLOOR=$BUILD/bench_tick_floor
if [ ! -x "$FLOOR" ] || [ tests/bench/bench_tick_floor.c -nt "$FLOOR" ]; then
  # shellcheck disable=SC2046
  cc -O2 -o "$FLOOR" tests/bench/bench_tick_floor.c $(pkg-config --cflags --libs libuv) || {
    echo "bench_triggers: cannot build the floor program"; exit 1; }
fi
"$FLOOR" "$N" 1000 >"$WORK/floor.log" 2>&1 &
FLOOR_PID=$!
wait_line "$WORK/floor.log" "ready" "$FLOOR_PID" 30 || { echo "bench_triggers: the floor did not start"; exit 1; }
sample "$FLOOR_PID" "$SECS" || { echo "bench_triggers: the floor exited"; exit 1; }
kill "$FLOOR_PID"
wait "$FLOOR_PID" 2>/dev/null
FLOOR_PID=""
row "floor: $N bare uv timers every 1s (C)" "$S_CPU" "$S_RSS" - "$(grep ticks "$WORK/floor.log")"

# ---- 2. the daemon's floor: cron ------------------------------------------------------------
pipelines 'type: cron, schedule: "* * * * * *", value: 0' >"$WORK/cron.yaml"
BEFORE="" AFTER=""
run_daemon cron "$WORK/cron.yaml"
CRON_CPU=$S_CPU
row "floor: scalebus, $N cron triggers every 1s" "$S_CPU" "$S_RSS" - "exit $D_RC"

# ---- 3. redis -------------------------------------------------------------------------------
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK" --save '' --appendonly no \
  --daemonize yes --pidfile "$WORK/redis.pid" --logfile "$WORK/redis-server.out" \
  --maxclients $((N + 100)) || { echo "bench_triggers: redis-server did not start"; exit 1; }
for _ in $(seq 50); do [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
REDIS_PID=$(cat "$WORK/redis.pid")
commands() { redis-cli -p "$REDIS_PORT" info stats | awk -F: '/^total_commands_processed:/ { print $2 + 0 }'; }
pipelines "type: redis, url: \"redis://127.0.0.1:$REDIS_PORT/0\", key: q%d, every: 1s" >"$WORK/redis.yaml"
BEFORE='k0=$(commands)' AFTER='k1=$(commands)'
run_daemon redis "$WORK/redis.yaml" "$REDIS_PID"
REDIS_CPU=$S_CPU
reads=$(awk -v a="$k0" -v b="$k1" -v t="$S_MS" 'BEGIN { printf "%.0f", (b - a - 2) / (t / 1000.0) }')
row "scalebus, $N redis triggers every 1s (LLEN)" "$S_CPU" "$S_RSS" "$S_SRV" \
  "$reads reads/s at redis-server; $FAILED failed-read lines; exit $D_RC"
kill "$REDIS_PID" 2>/dev/null
rm -f "$WORK/redis.pid"

# ---- 4. http_json against nginx ------------------------------------------------------------
HTTP_CPU=""
if [ ! -f "$BUILD/plugins/http_json.so" ]; then
  row "scalebus, $N http_json triggers every 1s" - 0 - "not run: no $BUILD/plugins/http_json.so"
elif ! command -v nginx >/dev/null; then
  row "scalebus, $N http_json triggers every 1s" - 0 - "not run: nginx not installed"
else
  mkdir -p "$WORK/nginx"
  cat >"$WORK/nginx.conf" <<NGINX
worker_processes 1;
error_log $WORK/nginx/error.log;
events { worker_connections $((N + 100)); }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$HTTP_PORT;
    location = /queue.json { default_type application/json; return 200 '{"queued": 0, "running": 3}'; }
    location = /status { stub_status; }
  }
}
NGINX
  nginx -c "$WORK/nginx.conf" -g "daemon off; pid $WORK/nginx/nginx.pid;" >"$WORK/nginx.out" 2>&1 &
  NGINX_PID=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$HTTP_PORT/status" >/dev/null 2>&1 && break; sleep 0.1; done
  # The worker serves the requests: measure it (the master only supervises).
  NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -1)
  requests() { curl -s "http://127.0.0.1:$HTTP_PORT/status" | awk 'NR == 3 { print $3 }'; }
  pipelines "type: http_json, url: \"http://127.0.0.1:$HTTP_PORT/queue.json\", select: /queued, every: 1s" \
    >"$WORK/http.yaml"
  BEFORE='r0=$(requests)' AFTER='r1=$(requests)'
  run_daemon http "$WORK/http.yaml" "${NGINX_WORKER:-$NGINX_PID}"
  HTTP_CPU=$S_CPU
  rps=$(awk -v a="$r0" -v b="$r1" -v t="$S_MS" 'BEGIN { printf "%.0f", (b - a - 1) / (t / 1000.0) }')
  row "scalebus, $N http_json triggers every 1s" "$S_CPU" "$S_RSS" "$S_SRV" \
    "$rps requests/s at nginx; $FAILED failed-read lines; exit $D_RC"
  kill "$NGINX_PID" 2>/dev/null
  wait "$NGINX_PID" 2>/dev/null
  NGINX_PID=""
fi

# ---- the figures ----------------------------------------------------------------------------
echo "scalebus trigger benchmark: $N triggers every 1s, each run sampled for ${SECS} s"
echo "(CPU %: 100 = one core busy; the server's CPU is its own process, beside the daemon's)"
printf '%-46s %8s %9s %12s   %s\n' "" "CPU %" "RSS (MB)" "server CPU %" ""
cat "$ROWS"
verdict() { # verdict NAME CPU
  awk -v name="$1" -v c="$2" -v f="$CRON_CPU" 'BEGIN {
    ratio = f > 0 ? sprintf("%.1fx", c / f) : "n/a"
    printf "%s: %s of a core, %s the cron floor; goal under 10%% of a core: %s\n", name, c "%",
      ratio, c < 10 ? "met" : "NOT met" }'
}
verdict "redis" "$REDIS_CPU"
[ -n "$HTTP_CPU" ] && verdict "http_json" "$HTTP_CPU"
exit 0
