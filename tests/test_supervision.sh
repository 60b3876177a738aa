#!/bin/bash
# End-to-end supervision: the real daemon binary runs a process scaler whose workers start a
# process of their own (`sh -c "sleep 300 & exec sleep 300"`), and no process of any instance may
# outlive the daemon: not after a graceful stop (where the worker's own child gets SIGTERM too,
# not only its main process; with cgroup v2 where the daemon can make cgroups, and with process
# groups only), not after SIGKILL of the daemon (in both modes), not after the fast exit on a
# second SIGTERM (exit status 143), and, under cgroup v2, not a process that left its group with
# setsid. Processes are found by their process group (the leader pids come from the daemon's
# "started instance N (pid P)" lines); the test ends only processes it started, by pid, writes
# only in its own mktemp -d folder, and bounds every wait. No assertion bounds how long
# something takes. On a failure the folder, with the daemons' logs, is kept and named.
#
#   tests/test_supervision.sh BUILD/scalebus SOURCE_DIR
set -u
SB=$1
W=$(mktemp -d /tmp/sb-supervision.XXXXXX)
fails=0
daemon=""

# Is PID still one of our sleeps (not a zombie, not a reused pid)?
is_our_sleep() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [ "${st%% *}" != Z ] || return 1
  tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q '^sleep 300'
}

cleanup() {
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
  if [ -f "$W/pids" ]; then
    for p in $(cat "$W/pids"); do is_our_sleep "$p" && kill -KILL "$p"; done
  fi
  keep_or_remove "$W"
}
trap cleanup EXIT
trap 'fails=$((fails + 1)); exit 1' INT TERM

. "$(dirname "$0")/lib.sh"


# pipeline NAME SCRIPT MIN GRACE: a file with one process scaler running `sh -c SCRIPT`.
pipeline() {
  cat >"$W/$1.yaml" <<EOF
scalers:
  - id: workers
    type: process
    command: [sh, -c, "$2"]
    min: $3
    max: $3
    stop_grace: $4
EOF
}

# start_daemon FILE: `scalebus run FILE` in the background, its output in $W/<n>.log (one log per
# daemon, kept on a failure); $log is the newest.
nlogs=0
start_daemon() {
  nlogs=$((nlogs + 1))
  log=$W/$nlogs.log
  "$SB" run "$@" >"$log" 2>&1 &
  daemon=$!
}
# stop_daemon SIGNAL: signal the daemon and wait for it (bounded); rc is its exit status, 255 if
# it still ran after the bound (it is then SIGKILLed).
stop_daemon() {
  kill "-$1" "$daemon"
  for _ in $(seq 600); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$daemon" 2>/dev/null; then
    kill -KILL "$daemon"; wait "$daemon" 2>/dev/null; rc=255
  else
    wait "$daemon"; rc=$?
  fi
  daemon=""
}

# The leaders (= process group ids) the daemon reports having started.
leaders() { grep -o 'started instance [0-9]* (pid [0-9]*' "$log" | awk '{print $5}'; }
# Every live process of those groups.
members() {
  local l
  l=$(leaders | tr '\n' ' ')
  [ -n "$l" ] || return 0
  ps -e -o pid=,pgid=,stat= | awk -v l=" $l" '$3 !~ /^Z/ && index(l, " " $2 " ") { print $1 }'
}
members_are() { [ "$(members | wc -l)" -ge "$1" ]; }
all_gone() { local p; for p in $1; do is_our_sleep "$p" && return 1; done; return 0; }
note_pids() { echo "$1" >>"$W/pids"; }

# run_and_collect NAME N: start the daemon on NAME.yaml (extra env in $ENV_PREFIX), wait until N
# processes of its instances run, and leave their pids in $pids.
run_and_collect() {
  start_daemon "$W/$1.yaml"
  if wait_for 20 members_are "$2"; then
    pids=$(members | tr '\n' ' ')
    note_pids "$pids"
    return 0
  fi
  not_ok "$1: $2 processes did not start (log: $(tail -3 "$log"))"
  pids=""
  return 1
}

# The daemon's sb-watchdog process, and the cgroup it made for its children (if any).
watchdog_of() { ps -e -o pid=,ppid=,comm= | awk -v d="$1" '$2 == d && $3 == "sb-watchdog" { print $1 }'; }
children_cgroup_of() {
  local mnt cg
  mnt=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2" && $4 == "/") print $5; break } }' /proc/self/mountinfo | head -1)
  cg=$(sed -n 's/^0:://p' "/proc/$1/cgroup" 2>/dev/null)
  [ -n "$mnt" ] && [ -n "$cg" ] && echo "$mnt${cg%/}/scalebus-$1"
}

pipeline group 'sleep 300 & exec sleep 300' 2 1s
# The same, but the worker's own child writes a file when SIGTERM reaches it (a SIGKILL after
# stop_grace would not let it): a stop must signal the whole group, not only the main process.
pipeline termed "(trap 'echo >>$W/termed; exit 0' TERM; sleep 300 & wait) & exec sleep 300" 2 2s

# 1. A graceful stop (SIGTERM): exit 0, every process of every instance got SIGTERM and is gone,
#    the watchdog gone, its cgroup removed; with cgroups and with process groups only.
for mode in default no-cgroup; do
  if [ $mode = default ]; then unset SCALEBUS_SUPERVISE; else export SCALEBUS_SUPERVISE=$mode; fi
  rm -f "$W/termed"
  if run_and_collect termed 6; then
    wd=$(watchdog_of "$daemon")
    cgdir=$(children_cgroup_of "$daemon")
    [ -n "$wd" ] && ok "($mode) the daemon has a watchdog (pid $wd)" || not_ok "($mode) no sb-watchdog child of the daemon"
    stop_daemon TERM
    [ $rc = 0 ] && ok "($mode) SIGTERM: exit 0" || not_ok "($mode) SIGTERM: exit status $rc"
    wait_for 10 all_gone "$pids" && ok "($mode) SIGTERM: no process of any instance left" \
      || not_ok "($mode) SIGTERM: left: $(for p in $pids; do is_our_sleep "$p" && echo "$p"; done)"
    n=$(cat "$W/termed" 2>/dev/null | wc -l)
    [ "$n" = 2 ] && ok "($mode) SIGTERM: each worker's own child got SIGTERM too" \
      || not_ok "($mode) SIGTERM reached $n of the 2 workers' own children (the rest were killed)"
    if [ -n "$wd" ]; then
      gone_wd() { ! [ -d "/proc/$wd" ] || grep -q '^State:.*Z' "/proc/$wd/status" 2>/dev/null; }
      wait_for 10 gone_wd && ok "($mode) SIGTERM: the watchdog exited" || not_ok "($mode) the watchdog $wd outlived a clean stop"
    fi
    if [ $mode = default ] && [ -n "$cgdir" ]; then
      no_cgdir() { ! [ -d "$cgdir" ]; }
      wait_for 10 no_cgdir && ok "($mode) SIGTERM: no cgroup left behind" || not_ok "($mode) cgroup $cgdir left behind"
    fi
  fi
done
unset SCALEBUS_SUPERVISE

# 2. SIGKILL of the daemon: every process of every instance goes, the leaders' children too.
for mode in default no-cgroup; do
  if [ $mode = default ]; then unset SCALEBUS_SUPERVISE; else export SCALEBUS_SUPERVISE=$mode; fi
  if run_and_collect group 4; then
    stop_daemon KILL
    wait_for 10 all_gone "$pids" && ok "SIGKILL ($mode): no process of any instance outlived the daemon" \
      || not_ok "SIGKILL ($mode): outlived the daemon: $(for p in $pids; do is_our_sleep "$p" && echo "$p"; done)"
  fi
done
unset SCALEBUS_SUPERVISE

# 3. The fast exit: a second SIGTERM while workers ignore the first one (60 s grace): exit status
#    143 at once, and nothing left.
pipeline deaf "trap '' TERM; sleep 300 & exec sleep 300" 2 60s
if run_and_collect deaf 4; then
  kill -TERM "$daemon"
  sleep 1
  kill -0 "$daemon" 2>/dev/null && ok "first SIGTERM: still stopping (workers ignore SIGTERM)" \
    || not_ok "the daemon exited on the first SIGTERM"
  stop_daemon TERM
  [ $rc = 143 ] && ok "second SIGTERM: exit status 143" || not_ok "second SIGTERM: exit status $rc"
  wait_for 10 all_gone "$pids" && ok "fast exit: no process of any instance left" \
    || not_ok "fast exit: left: $(for p in $pids; do is_our_sleep "$p" && echo "$p"; done)"
fi

# 4. cgroup v2: a process that left its group with setsid goes too. With process groups only it
#    would escape (README), so the case runs only where the daemon made cgroups.
pipeline escape 'setsid sleep 300 & exec sleep 300' 1 1s
start_daemon "$W/escape.yaml"
escapee() {
  local l
  l=$(leaders | head -1)
  [ -n "$l" ] || return 1
  ps -e -o pid=,ppid=,pgid=,stat= | awk -v l="$l" '$2 == l && $3 != l && $4 !~ /^Z/ { print $1 }'
}
has_escapee() { [ -n "$(escapee)" ]; }
if wait_for 20 has_escapee; then
  esc=$(escapee)
  note_pids "$esc $(leaders)"
  cgdir=$(children_cgroup_of "$daemon")
  if [ -n "$cgdir" ] && [ -d "$cgdir" ]; then
    stop_daemon KILL
    wait_for 10 all_gone "$esc $(leaders)" && ok "SIGKILL (cgroup v2): the setsid escapee went too" \
      || not_ok "SIGKILL (cgroup v2): setsid escapee $esc outlived the daemon"
  else
    echo "ok - # skip setsid escapee: the daemon cannot make cgroups here (process groups only)"
    stop_daemon TERM
    [ $rc = 0 ] || not_ok "setsid escapee, process groups only: SIGTERM: exit status $rc"
    for p in $esc; do is_our_sleep "$p" && kill -KILL "$p"; done
  fi
else
  not_ok "no setsid escapee appeared (log: $(tail -3 "$log"))"
fi

echo "$fails failure(s)"
[ $fails = 0 ]
