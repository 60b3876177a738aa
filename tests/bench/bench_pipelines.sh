#!/bin/sh
# bench_pipelines.sh - memory and idle CPU of `scalebus run` with N idle pipelines, beside a floor
# measured in the same run.
#
#   sh tests/bench/bench_pipelines.sh [--distinct] [BUILD_DIR [N [SECONDS]]]   (build, 10000, 10)
#
# It writes a file of N pipelines, each cron (a schedule that does not fire while it measures:
# "0 0 1 1 *") -> direct -> process (min 0, max 2, `sleep 600`, so no child is started), runs
# `BUILD_DIR/scalebus run` on it, waits for the line saying that every component runs, and then
# samples the daemon for SECONDS: VmRSS and VmHWM (the peak, loading included) from
# /proc/PID/status, and CPU% from /proc/PID/stat. The floor is tests/bench/bench_floor.c (built
# here with cc and pkg-config): N bare libuv timers on one loop, measured the same way. It prints
# figures only; it fails (exit 1) only when it cannot measure at all.
#
# The daemon runs twice: as users run it, with the admin endpoint on (on a free loopback port
# rather than 9180, which another daemon may hold: the daemon would then run without it), and
# with `admin: {listen: off}`, so the admin's own cost is printed beside; and once on a file
# without pipelines, for the daemon's fixed cost (its code and libraries). The target is for the
# first.
#
# With --distinct, no two pipelines have the same options (`sleep 600+i`, the minute i % 60), so
# none share their option values: the figure for a file that is not one template repeated.
set -u
cd "$(dirname "$0")/../.."
DISTINCT=0
if [ "${1:-}" = "--distinct" ]; then
  DISTINCT=1
  shift
fi
BUILD=${1:-build}
N=${2:-10000}
SECS=${3:-10}
SCALEBUS=$BUILD/scalebus
[ -x "$SCALEBUS" ] || { echo "bench_pipelines: no $SCALEBUS (build first)"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sb-bench-pipelines-XXXXXX") || exit 1
DAEMON_PID=""
FLOOR_PID=""
cleanup() {
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
  [ -n "$FLOOR_PID" ] && kill "$FLOOR_PID" 2>/dev/null && wait "$FLOOR_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- the floor program ------------------------------------------------------------------------
FLOOR=$BUILD/bench_floor
if [ ! -x "$FLOOR" ] || [ tests/bench/bench_floor.c -nt "$FLOOR" ]; then
  # shellcheck disable=SC2046
  cc -O2 -o "$FLOOR" tests/bench/bench_floor.c $(pkg-config --cflags --libs libuv) || {
    echo "bench_pipelines: cannot build the floor program"; exit 1; }
fi

# ---- the pipeline files -----------------------------------------------------------------------
# A free loopback port for the admin (the kernel's pick; 9180, the default, as a last resort).
ADMIN_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null)
ADMIN_PORT=${ADMIN_PORT:-9180}
FILE=$WORK/pipelines.yaml
FILE_OFF=$WORK/pipelines-admin-off.yaml
awk -v n="$N" -v distinct="$DISTINCT" -v admin="admin: { listen: \"127.0.0.1:$ADMIN_PORT\" }" 'BEGIN {
  print "log: { level: info }"
  print admin
  print "triggers:"
  for (i = 0; i < n; i++)
    printf "  - { id: t%d, type: cron, schedule: \"%d 0 1 1 *\" }\n", i, distinct ? i % 60 : 0
  print "connectors:"
  for (i = 0; i < n; i++) printf "  - { id: c%d, type: direct, from: t%d, to: s%d }\n", i, i, i
  print "scalers:"
  for (i = 0; i < n; i++)
    printf "  - { id: s%d, type: process, min: 0, max: 2, command: [sleep, \"%d\"] }\n", i,
      distinct ? 600 + i : 600
}' >"$FILE"
sed 's/^admin: .*/admin: { listen: off }/' "$FILE" >"$FILE_OFF"
# No pipeline: what the daemon costs before any (its code and the libraries it links).
FILE_EMPTY=$WORK/empty.yaml
printf 'log: { level: info }\nadmin: { listen: off }\n' >"$FILE_EMPTY"

# ---- measuring a process ----------------------------------------------------------------------
TICKS=$(getconf CLK_TCK 2>/dev/null || echo 100)

now_ms() { date +%s%3N; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }
# utime + stime, in clock ticks (fields 14 and 15; the command name may hold spaces)
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'; }

# sample PID SECS: prints "RSS_KB HWM_KB CPU%" (RSS the highest seen while sampling)
sample() {
  t0=$(now_ms)
  c0=$(cpu_ticks "$1")
  rss=0
  i=0
  while [ "$i" -lt "$2" ]; do
    sleep 1
    r=$(status_kb "$1" VmRSS)
    [ -n "$r" ] || { echo "gone"; return 1; }
    [ "$r" -gt "$rss" ] && rss=$r
    i=$((i + 1))
  done
  c1=$(cpu_ticks "$1")
  t1=$(now_ms)
  hwm=$(status_kb "$1" VmHWM)
  awk -v r="$rss" -v h="$hwm" -v c="$((c1 - c0))" -v t="$((t1 - t0))" -v hz="$TICKS" \
    'BEGIN { printf "%d %d %.2f\n", r, h, 100.0 * c / hz / (t / 1000.0) }'
}

# wait_for LOG PATTERN PID TIMEOUT_S: 0 once LOG has a line matching PATTERN
wait_for() {
  deadline=$(($(date +%s) + $4))
  while ! grep -q "$2" "$1" 2>/dev/null; do
    kill -0 "$3" 2>/dev/null || return 1
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# ---- scalebus ---------------------------------------------------------------------------------
# run_daemon FILE: sets load_ms, running, d_rss, d_hwm, d_cpu, children, admin_on (1 when the log
# says the admin listens)
run_daemon() {
  LOG=$WORK/scalebus.log
  t0=$(now_ms)
  "$SCALEBUS" run "$1" >"$LOG" 2>&1 &
  DAEMON_PID=$!
  if ! wait_for "$LOG" "component(s) running" "$DAEMON_PID" 120; then
    echo "bench_pipelines: scalebus did not report its components running; its log ends with:"
    tail -5 "$LOG"
    exit 1
  fi
  load_ms=$(($(now_ms) - t0))
  running=$(grep -o "[0-9]* component(s) running" "$LOG" | tail -1)
  set -- $(sample "$DAEMON_PID" "$SECS")
  [ "$1" != gone ] || { echo "bench_pipelines: scalebus exited while measured"; tail -5 "$LOG"; exit 1; }
  d_rss=$1 d_hwm=$2 d_cpu=$3
  children=$(pgrep -c -P "$DAEMON_PID" 2>/dev/null)
  children=${children:-0}
  admin_on=0
  grep -q "listening on http://" "$LOG" && admin_on=1
  kill "$DAEMON_PID"
  wait "$DAEMON_PID" 2>/dev/null
  DAEMON_PID=""
}

run_daemon "$FILE_EMPTY"
empty_rss=$d_rss empty_hwm=$d_hwm empty_cpu=$d_cpu
run_daemon "$FILE_OFF"
off_rss=$d_rss off_hwm=$d_hwm off_cpu=$d_cpu
run_daemon "$FILE"

# ---- the floor --------------------------------------------------------------------------------
FLOG=$WORK/floor.log
"$FLOOR" "$N" >"$FLOG" 2>&1 &
FLOOR_PID=$!
wait_for "$FLOG" "ready" "$FLOOR_PID" 30 || { echo "bench_pipelines: the floor did not start"; exit 1; }
set -- $(sample "$FLOOR_PID" "$SECS")
f_rss=$1 f_hwm=$2 f_cpu=$3
kill "$FLOOR_PID"
wait "$FLOOR_PID" 2>/dev/null
FLOOR_PID=""

what="cron -> direct -> process, min 0"
[ "$DISTINCT" = 1 ] && what="$what; no two with the same options"
echo "scalebus pipelines benchmark: $N x ($what), idle for ${SECS} s"
printf '%-40s %10s %10s %8s\n' "" "RSS (MB)" "peak (MB)" "CPU %"
printf '%-40s %10.1f %10.1f %8.2f\n' "floor: $N bare uv timers" \
  "$(echo "$f_rss" | awk '{ print $1 / 1024 }')" "$(echo "$f_hwm" | awk '{ print $1 / 1024 }')" "$f_cpu"
admin_what="admin on"
[ "$admin_on" = 1 ] || admin_what="admin NOT listening (see the log)"
printf '%-40s %10.1f %10.1f %8.2f\n' "scalebus run, $admin_what" \
  "$(echo "$d_rss" | awk '{ print $1 / 1024 }')" "$(echo "$d_hwm" | awk '{ print $1 / 1024 }')" "$d_cpu"
printf '%-40s %10.1f %10.1f %8.2f\n' "scalebus run, admin: {listen: off}" \
  "$(echo "$off_rss" | awk '{ print $1 / 1024 }')" "$(echo "$off_hwm" | awk '{ print $1 / 1024 }')" "$off_cpu"
printf '%-40s %10.1f %10.1f %8.2f\n' "scalebus run, no pipeline" \
  "$(echo "$empty_rss" | awk '{ print $1 / 1024 }')" "$(echo "$empty_hwm" | awk '{ print $1 / 1024 }')" "$empty_cpu"
awk -v d="$d_rss" -v f="$f_rss" -v n="$N" 'BEGIN {
  printf "scalebus / floor: %.1fx RSS; %.0f bytes per pipeline above the floor\n", d / f, (d - f) * 1024 / n }'
awk -v d="$d_rss" -v e="$empty_rss" -v n="$N" 'BEGIN {
  printf "%.0f bytes per pipeline above the daemon without pipelines\n", (d - e) * 1024 / n }'
awk -v d="$d_rss" -v o="$off_rss" -v n="$N" 'BEGIN {
  printf "the admin endpoint: %+.1f MB (%.0f bytes per pipeline)\n", (d - o) / 1024, (d - o) * 1024 / n }'
echo "$running; loaded and running in $load_ms ms; child processes: $children (min 0: none expected)"
awk -v d="$d_rss" 'BEGIN { printf "target: RSS < 32 MB with the admin on: %s\n", d < 32 * 1024 ? "met" : "NOT met" }'
exit 0
