# tests/lib.sh - what the shell tests share: TAP-style ok/not_ok lines that count failures, a
# bounded poll, stopping what a test started by pid, and a free loopback port. Source it after setting SLOW (how many times longer a wait may take, e.g. under
# valgrind; 1 by default). Each script keeps its own cleanup and process helpers.
fails=${fails:-0}
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; fails=$((fails + 1)); }
# wait_for SECONDS CMD...: poll until CMD succeeds or the bound (times SLOW) passes.
wait_for() {
  local limit=$(($1 * 10 * ${SLOW:-1})); shift
  for _ in $(seq "$limit"); do "$@" && return 0; sleep 0.1; done
  return 1
}
# keep_or_remove DIR [EXTRA_FILES...]: after a failure, print the tail of each DIR/*.log (and of
# each extra file) and keep DIR for a look; otherwise remove it.
keep_or_remove() {
  local dir=$1; shift
  if [ "$fails" != 0 ]; then
    for l in "$dir"/*.log "$@"; do
      [ -f "$l" ] && { echo "--- $l (last 40 lines)"; tail -40 "$l"; }
    done
    echo "kept $dir for the failure above"
  else
    rm -rf "$dir"
  fi
}
# stop_pid PID [SECONDS]: SIGTERM, then SIGKILL after SECONDS (10); waits for it. For a server or
# helper the script started itself (never by name).
stop_pid() {
  [ -n "$1" ] || return 0
  local limit=$((${2:-10} * 10))
  kill -TERM "$1" 2>/dev/null
  for _ in $(seq "$limit"); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  return 0
}
# free_port: a loopback TCP port nobody listens on right now, for a server the test starts.
free_port() {
  /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}
# now_ms: wall-clock milliseconds, for the latencies a test prints.
now_ms() { date +%s%3N; }
