#!/bin/bash
# The systemd scaler end to end against a real systemd: the host's own /usr booted in
# systemd-nspawn on a tmpfs root (--volatile=yes), its system bus bound to $W/bus and driven from
# outside over D-Bus (DBUS_SYSTEM_BUS_ADDRESS), units from $W/units. Inside, a user sbuser (uid
# 4711, from a sysusers.d line) lingers (/var/lib/systemd/linger/sbuser), so logind starts its
# `systemd --user` manager in the container at boot (PAM: a two-line /etc/pam.d/systemd-user);
# its runtime dir /run/user/4711 is $W/userrun, bound in before boot (user-runtime-dir leaves a
# mount point as it is), so its user bus is $W/userrun/bus on the host, and a daemon run as uid
# 4711 (setpriv) reaches it: the user bus takes no other uid. A python3 http.server serves one
# JSON file per scaler; an http_json trigger reads it every second and a direct connector hands
# the number to the scaler, so the test sets a desired count by rewriting a file. It shows,
# with template units (ci-agent@.service) and transient units (command: /bin/sleep infinity):
#   - scale up; scale down newest first (highest timestamp), each stop a StopUnit job; a unit
#     restarted by hand is the newest (its JobRemoved makes the scaler read its timestamp again);
#   - a list costs 1 call once started-at is known: "listed 3 member(s) with 1
#     ListUnitsByPatterns and 0 Get(s)" (debug), a Get only for a new or changed member;
#   - a unit stopped behind its back is restarted, one started by hand (ci-agent@9) is adopted
#     and, being the newest, stopped to get back to the count (reconcile_every 1s);
#   - units outside the pattern (ci-agent@x.service, another-1.service) are never touched;
#   - transient units carry their properties (MemoryMax, Environment, TimeoutStopUSec);
#   - on_stop keep: a daemon restart with 3 running and min: 1 (no policy) leaves 3 running;
#   - --dry-run logs the exact D-Bus call and changes nothing;
#   - the manager gone (nspawn powered off): "cannot reach the system bus at ..." with back-off,
#     then booted again: the fleet is rebuilt;
#   - a failing unit (Type=oneshot, ExecStart=/bin/false): failed with systemd's own result; a
#     slow one (ExecStartPre=/bin/sleep 3, timeout 1s): busy, then ready;
#   - on_stop: stop: SIGTERM stops every member (and only them), exit 0;
#   - bus: user, with the daemon as uid 4711: a template (job@.service, from /run/systemd/user)
#     and transient units scaled up and down on the user manager; XDG_RUNTIME_DIR, then
#     DBUS_SESSION_BUS_ADDRESS (adoption across a restart), then neither (/run/user/UID/bus);
#   - the bus lost mid-call: dbus.socket and dbus.service stopped (StopUnit) while the StartUnit
#     job of a slow unit runs: the start fails ("the connection was lost"), lists fail with
#     back-off while it is down; dbus started again (systemctl inside, through nsenter with
#     the container's root): the scaler reconnects, re-lists, counts the unit whose job ran
#     on, and finishes (it started that unit once).
#
#   tests/test_systemd.sh BUILD/scalebus SOURCE_DIR
#
# Needs root and systemd-container (systemd-nspawn, which pulls systemd) and dbus; exits 77 when
# the container cannot boot here. The bus: user part also needs dbus-user-session (the user
# bus's dbus.socket) and setpriv (util-linux), and is skipped without them. About 30 s. SB_E2E_WRAP, when set, prefixes `scalebus run`; waits are then
# bounded 10 times longer (SLOW). On a failure the temporary folder, with every log, is kept.
set -u
SB=$1
SRC=$2
WRAP=${SB_E2E_WRAP:-}
SLOW=${SLOW:-1}
[ -n "$WRAP" ] && SLOW=10
PY=/usr/bin/python3
fails=0
daemon="" server_pid="" nspawn_pid=""
. "$(dirname "$0")/lib.sh"

skip() { echo "skipped: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "systemd-nspawn needs root"
for f in /usr/bin/systemd-nspawn /usr/bin/busctl /usr/lib/systemd/systemd /usr/bin/dbus-daemon $PY; do
  [ -x "$f" ] || skip "$f is missing (apt-get install systemd-container dbus)"
done
W=$(mktemp -d /tmp/sb-systemd.XXXXXX)
chmod 711 "$W" # uid 4711 (the user-bus daemon) reaches its files, lists nothing
SBU=4711
export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$W/bus/system_bus_socket
M="org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager"

stop_daemon_hard() { [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null; daemon=""; }
stop_nspawn() {
  [ -n "$nspawn_pid" ] || return 0
  stop_pid "$nspawn_pid" 20
  nspawn_pid=""
}
cleanup() {
  stop_daemon_hard
  stop_pid "$server_pid"
  stop_nspawn
  keep_or_remove "$W"
}
trap cleanup EXIT
trap 'fails=$((fails + 1)); exit 1' INT TERM

# ---- the manager ------------------------------------------------------------------------------
mkdir -p "$W/bus" "$W/units" "$W/www"
printf 'disable *\n' >"$W/00-test.preset"
printf '[Service]\nExecStart=/bin/sleep infinity\n' >"$W/units/ci-agent@.service"
printf '[Service]\nType=oneshot\nExecStart=/bin/false\n' >"$W/units/ci-fail@.service"
printf '[Service]\nExecStartPre=/bin/sleep 3\nExecStart=/bin/sleep infinity\n' >"$W/units/ci-slow@.service"
printf '[Service]\nExecStartPre=/bin/sleep 4\nExecStart=/bin/sleep infinity\n' >"$W/units/ci-late@.service"
# The lingering user and its manager's units.
mkdir -p "$W/linger" "$W/pam.d" "$W/userrun" "$W/user-units"
touch "$W/linger/sbuser"
printf 'u sbuser %s "scalebus test user" /\n' "$SBU" >"$W/sbuser.conf"
printf 'account required pam_permit.so\nsession required pam_systemd.so\n' >"$W/pam.d/systemd-user"
printf '[Service]\nExecStart=/bin/sleep infinity\n' >"$W/user-units/job@.service"
chown "$SBU:$SBU" "$W/userrun" && chmod 700 "$W/userrun"
booted() { busctl get-property $M SystemState 2>/dev/null | grep -qE 'running|degraded'; }
boot() {
  setsid /usr/bin/systemd-nspawn -q --volatile=yes -D / -M "sbtest$$" --private-network \
    --register=no --keep-unit --bind="$W/bus:/run/dbus" --bind="$W/units:/run/systemd/system" \
    --bind-ro="$W/00-test.preset:/etc/systemd/system-preset/00-test.preset" \
    --bind-ro="$W/sbuser.conf:/etc/sysusers.d/sbuser.conf" --bind="$W/linger:/var/lib/systemd/linger" \
    --bind-ro="$W/pam.d:/etc/pam.d" --bind="$W/userrun:/run/user/$SBU" \
    --bind-ro="$W/user-units:/run/systemd/user" \
    -b -- systemd.firstboot=off >>"$W/nspawn.log" 2>&1 </dev/null &
  nspawn_pid=$!
  wait_for 30 booted
}
t0=$(now_ms)
if ! boot; then
  reason=$(grep -v '^\s*$' "$W/nspawn.log" | tail -1)
  fails=0 # nothing of ours failed: the machine cannot run the recipe
  skip "systemd-nspawn did not boot here: ${reason:-no output}"
fi
echo "# systemd booted in $(($(now_ms) - t0)) ms"

# Unit names in STATES (default active) matching PATTERN, sorted, one per line.
units() {
  busctl --json=short call $M ListUnitsByPatterns asas 1 "${2:-active}" 1 "$1" 2>/dev/null \
    | $PY -c 'import json,sys; sys.stdout.write("".join(n + "\n" for n in sorted(u[0] for u in json.load(sys.stdin)["data"][0])))'
}
units_are() { [ "$(units "$1" | tr '\n' ' ')" = "$2" ]; }
start_by_hand() { busctl call $M StartUnit ss "$1" replace >/dev/null; }
stop_by_hand() { busctl call $M StopUnit ss "$1" replace >/dev/null; }
# A transient unit by hand, outside every pattern the test's scalers use.
transient_by_hand() {
  busctl call $M StartTransientUnit 'ssa(sv)a(sa(sv))' "$1" fail \
    1 ExecStart 'a(sasb)' 1 /bin/sleep 2 /bin/sleep infinity false 0 >/dev/null
}
unit_prop() { # unit_prop UNIT INTERFACE PROPERTY
  local path
  path=$(busctl call $M GetUnit s "$1" 2>/dev/null | awk '{print $2}' | tr -d '"')
  busctl get-property org.freedesktop.systemd1 "$path" "org.freedesktop.systemd1.$2" "$3" 2>/dev/null
}

# ---- the trigger's server and the daemon ------------------------------------------------------
SP=$(free_port)
(cd "$W/www" && exec $PY -m http.server "$SP" --bind 127.0.0.1 >"$W/server.log" 2>&1) &
server_pid=$!
want() { echo "$2" >"$W/www/$1.tmp" && mv "$W/www/$1.tmp" "$W/www/$1.json"; }
wait_for 10 curl -s -o /dev/null "http://127.0.0.1:$SP/" || not_ok "the http server does not answer"

pipeline() { # pipeline FILE ON_STOP SCALER...: an http_json trigger per scaler reading www/<id>.json
  local f=$1 on_stop=$2; shift 2
  {
    echo "triggers:"
    for s in "$@"; do
      echo "  - {id: want-$s, type: http_json, url: \"http://127.0.0.1:$SP/$s.json\", every: 1s}"
    done
    echo "connectors:"
    for s in "$@"; do echo "  - {id: to-$s, type: direct, from: want-$s, to: $s}"; done
    echo "scalers:"
    for s in "$@"; do
      case $s in
        agents) echo "  - {id: agents, type: systemd, unit: ci-agent@.service, min: 0, max: 10, reconcile_every: 1s, on_stop: $on_stop}" ;;
        web) echo "  - {id: web, type: systemd, command: [/bin/sleep, infinity], min: 0, max: 10, reconcile_every: 1s, stop_grace: 2s, on_stop: $on_stop,"
             echo "     properties: {MemoryMax: 64M, Environment: \"A=1 B=two\", Description: scalebus test web}}" ;;
        failing) echo "  - {id: failing, type: systemd, unit: ci-fail@.service, min: 0, max: 2, reconcile_every: 1s}" ;;
        missing) echo "  - {id: missing, type: systemd, unit: nope@.service, min: 0, max: 2, reconcile_every: 1s}" ;;
        slow) echo "  - {id: slow, type: systemd, unit: ci-slow@.service, min: 0, max: 2, reconcile_every: 1s, timeout: 1s}" ;;
        lost) echo "  - {id: lost, type: systemd, unit: ci-late@.service, min: 0, max: 3, reconcile_every: 1s, timeout: 30s}" ;;
        ujobs) echo "  - {id: ujobs, type: systemd, bus: user, unit: job@.service, min: 0, max: 10, reconcile_every: 1s}" ;;
        utr) echo "  - {id: utr, type: systemd, bus: user, command: [/bin/sleep, infinity], prefix: utr, min: 0, max: 10, reconcile_every: 1s, stop_grace: 2s}" ;;
      esac
    done
  } >"$f"
}
log=""
start_daemon() { # start_daemon LOG FILE [ARGS...]
  log=$1; shift
  $WRAP "$SB" run "$@" >"$log" 2>&1 &
  daemon=$!
}
# start_daemon_as_user LOG [VAR=value...] -- FILE [ARGS...]: the daemon as uid SBU (the user bus
# takes only its own uid), without the system bus's variable.
start_daemon_as_user() {
  log=$1; shift
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  setpriv --reuid="$SBU" --regid="$SBU" --clear-groups env -u DBUS_SYSTEM_BUS_ADDRESS \
    "${envs[@]}" HOME=/ $WRAP "$SB" run "$@" >"$log" 2>&1 &
  daemon=$!
}
# The user manager's units, as units() does for the system one.
uunits() {
  setpriv --reuid="$SBU" --regid="$SBU" --clear-groups env XDG_RUNTIME_DIR="$W/userrun" \
    busctl --user --json=short call $M ListUnitsByPatterns asas 1 active 1 "$1" 2>/dev/null \
    | $PY -c 'import json,sys; sys.stdout.write("".join(n + "\n" for n in sorted(u[0] for u in json.load(sys.stdin)["data"][0])))'
}
uunits_are() { [ "$(uunits "$1" | tr '\n' ' ')" = "$2" ]; }
count_of() { grep -cF -- "$1" "$log"; }
stop_daemon() { # SIGTERM; asserts exit 0
  kill -TERM "$daemon"
  for _ in $(seq $((300 * SLOW))); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
  local rc
  if kill -0 "$daemon" 2>/dev/null; then kill -KILL "$daemon"; wait "$daemon" 2>/dev/null; rc=255; else wait "$daemon"; rc=$?; fi
  daemon=""
  [ $rc = 0 ] && ok "$1: SIGTERM: exit 0" || not_ok "$1: SIGTERM: exit status $rc"
}
has() { grep -qF -- "$1" "$log"; }
nth_line() { grep -nF -- "$1" "$log" | head -1 | cut -d: -f1; }

# ---- 1. scale up, templates and transient units, with units outside the patterns --------------
start_by_hand ci-agent@x.service
transient_by_hand another-1.service
wait_for 10 units_are 'ci-agent@*' 'ci-agent@x.service ' || not_ok "ci-agent@x by hand: $(units 'ci-agent@*')"
pipeline "$W/p.yaml" keep agents web
want agents 3
want web 2
t0=$(now_ms)
start_daemon "$W/daemon1.log" "$W/p.yaml" --log-level debug
wait_for 20 units_are 'ci-agent@*' 'ci-agent@1.service ci-agent@2.service ci-agent@3.service ci-agent@x.service ' \
  && ok "template: scaled up to 3 ($(($(now_ms) - t0)) ms), ci-agent@x.service left alone" \
  || not_ok "template up: $(units 'ci-agent@*' | tr '\n' ' ')"
wait_for 20 units_are 'web-*' 'web-1.service web-2.service ' \
  && ok "transient: scaled up to 2" || not_ok "transient up: $(units 'web-*' | tr '\n' ' ')"
has "StartUnit ci-agent@1.service replace" && has "StartTransientUnit web-1.service fail [ExecStart=/bin/sleep infinity" \
  && ok "the log names each D-Bus call" || not_ok "calls not logged: $(grep -F Start "$log" | head -3)"
[ "$(unit_prop web-1.service Service MemoryMax)" = "t 67108864" ] \
  && unit_prop web-1.service Service Environment | grep -qF '"A=1" "B=two"' \
  && [ "$(unit_prop web-1.service Service TimeoutStopUSec)" = "t 2000000" ] \
  && [ "$(unit_prop web-1.service Unit Description)" = 's "scalebus test web"' ] \
  && ok "transient units carry MemoryMax, Environment, Description and stop_grace" \
  || not_ok "properties: $(unit_prop web-1.service Service MemoryMax) $(unit_prop web-1.service Service Environment) $(unit_prop web-1.service Service TimeoutStopUSec)"

# ---- 2. what a list costs; scale down, newest first ---------------------------------------------
wait_for 10 has "[agents] listed 3 member(s) with 1 ListUnitsByPatterns and 0 Get(s)" \
  && ok "a list with every started-at known costs one call (ListUnitsByPatterns, 0 Gets)" \
  || not_ok "list cost: $(grep -F '[agents] listed' "$log" | tail -2)"
grep -qE '\[agents\] listed 3 member\(s\) with 1 ListUnitsByPatterns and [1-9]' "$log" \
  && ok "a Get only for members not known yet: $(grep -m1 -oE 'listed 3 member\(s\) with 1 ListUnitsByPatterns and [1-9] Get\(s\)' "$log")" \
  || not_ok "no list read a new member's timestamp"
# ci-agent@1, restarted by hand, is now the newest: the first to go.
before=$(count_of "[agents] listed 3 member(s) with 1 ListUnitsByPatterns and 1 Get(s)")
busctl call $M RestartUnit ss ci-agent@1.service replace >/dev/null
wait_for 10 eval '[ "$(count_of "[agents] listed 3 member(s) with 1 ListUnitsByPatterns and 1 Get(s)")" -gt "$before" ]' \
  || not_ok "the restart of ci-agent@1 was not read again"
want agents 1
want web 1
wait_for 20 units_are 'ci-agent@*' 'ci-agent@2.service ci-agent@x.service ' \
  && ok "template: scaled down to 1" || not_ok "template down: $(units 'ci-agent@*' | tr '\n' ' ')"
a1=$(nth_line "StopUnit ci-agent@1.service replace") a3=$(nth_line "StopUnit ci-agent@3.service replace")
[ -n "$a1" ] && [ -n "$a3" ] && [ "$a1" -lt "$a3" ] \
  && ok "newest first: @1 (restarted by hand) stopped before @3, @2 (the oldest) kept" \
  || not_ok "stop order: @1 at line ${a1:-none}, @3 at line ${a3:-none}"
wait_for 20 units_are 'web-*' 'web-1.service ' && ok "transient: scaled down to 1, newest (web-2) first" \
  || not_ok "transient down: $(units 'web-*' | tr '\n' ' ')"
units_are 'web-*' 'web-1.service ' && [ "$(units 'web-*' inactive)" = "" ] \
  && ok "a stopped transient unit is gone (not left inactive)" || true
grep -qE '\[agents\] (StopUnit|StartUnit) ci-agent@x' "$log" && not_ok "ci-agent@x was touched" \
  || ok "ci-agent@x.service never touched"

# ---- 3. drift: stopped behind its back, started by hand ----------------------------------------
stop_by_hand ci-agent@2.service
wait_for 10 has "changed outside scalebus: ci-agent@2.service is gone" \
  && wait_for 10 units_are 'ci-agent@*' 'ci-agent@1.service ci-agent@x.service ' \
  && ok "a unit stopped behind its back is restarted by reconcile" \
  || not_ok "not restarted: $(units 'ci-agent@*' | tr '\n' ' ')"
start_by_hand ci-agent@9.service
wait_for 10 has "changed outside scalebus: ci-agent@9.service appeared" \
  && wait_for 10 has "StopUnit ci-agent@9.service replace" \
  && wait_for 10 units_are 'ci-agent@*' 'ci-agent@1.service ci-agent@x.service ' \
  && ok "ci-agent@9 started by hand: adopted, and stopped as the newest to get back to 1" \
  || not_ok "by hand: $(units 'ci-agent@*' | tr '\n' ' ')"
stop_by_hand web-1.service
wait_for 10 has "changed outside scalebus: web-1.service is gone" \
  && wait_for 10 units_are 'web-*' 'web-1.service ' \
  && ok "a transient unit stopped behind its back is started again" \
  || not_ok "web not restarted: $(units 'web-*' | tr '\n' ' ')"

# ---- 4. adoption across a restart (on_stop keep) -----------------------------------------------
want agents 3
wait_for 20 units_are 'ci-agent@*' 'ci-agent@1.service ci-agent@2.service ci-agent@3.service ci-agent@x.service ' \
  || not_ok "back to 3: $(units 'ci-agent@*' | tr '\n' ' ')"
stop_daemon "keep"
units_are 'ci-agent@*' 'ci-agent@1.service ci-agent@2.service ci-agent@3.service ci-agent@x.service ' \
  && units_are 'web-*' 'web-1.service ' && ok "on_stop keep: the fleet outlives the daemon" \
  || not_ok "keep: $(units 'ci-agent@*' | tr '\n' ' ') $(units 'web-*' | tr '\n' ' ')"
cat >"$W/alone.yaml" <<EOF
scalers:
  - {id: agents, type: systemd, unit: ci-agent@.service, min: 1, max: 10, reconcile_every: 1s}
EOF
start_daemon "$W/daemon2.log" "$W/alone.yaml"
wait_for 10 has "adopted 3 running instance(s)" || not_ok "no adoption line: $(grep agents "$log" | tail -3)"
sleep 2.5 # two reconciles
units_are 'ci-agent@*' 'ci-agent@1.service ci-agent@2.service ci-agent@3.service ci-agent@x.service ' \
  && ! has "StopUnit" && ok "restart with 3 running and min: 1: still 3, adopted" \
  || not_ok "after restart: $(units 'ci-agent@*' | tr '\n' ' ')"
stop_daemon "adopted"

# ---- 5. --dry-run --------------------------------------------------------------------------------
want agents 1
want web 3
start_daemon "$W/dry.log" --dry-run "$W/p.yaml"
wait_for 10 has "would StopUnit ci-agent@3.service replace" \
  && wait_for 10 has "would StartTransientUnit web-2.service fail [ExecStart=/bin/sleep infinity, MemoryMax=67108864, Environment=A=1 B=two, Description=scalebus test web, TimeoutStopUSec=2000000]" \
  && ok "--dry-run logs the exact calls" || not_ok "dry-run lines: $(grep -F would "$log" | head -3)"
sleep 2
units_are 'ci-agent@*' 'ci-agent@1.service ci-agent@2.service ci-agent@3.service ci-agent@x.service ' \
  && units_are 'web-*' 'web-1.service ' && ok "--dry-run changes nothing" \
  || not_ok "dry-run changed: $(units 'ci-agent@*' | tr '\n' ' ') $(units 'web-*' | tr '\n' ' ')"
stop_daemon "dry-run"

# ---- 6. bus: user: the lingering user's own manager, the daemon as that user -----------------------
if [ ! -e /usr/lib/systemd/user/dbus.socket ] || [ ! -x /usr/bin/setpriv ]; then
  ok "# skip bus: user (needs dbus-user-session and setpriv)"
elif ! wait_for 10 test -S "$W/userrun/bus"; then
  not_ok "the user manager of uid $SBU did not start in the container (no $W/userrun/bus)"
else
  pipeline "$W/u.yaml" keep ujobs utr
  chmod 644 "$W/u.yaml"
  want ujobs 3
  want utr 2
  start_daemon_as_user "$W/user1.log" XDG_RUNTIME_DIR="$W/userrun" -- "$W/u.yaml"
  wait_for 20 uunits_are 'job@*' 'job@1.service job@2.service job@3.service ' \
    && wait_for 20 uunits_are 'utr-*' 'utr-1.service utr-2.service ' \
    && ok "bus: user (XDG_RUNTIME_DIR): a user template scaled to 3, transient user units to 2" \
    || not_ok "user up: $(uunits 'job@*' | tr '\n' ' ') $(uunits 'utr-*' | tr '\n' ' ')"
  [ -z "$(units 'job@*')" ] && [ -z "$(units 'utr-*')" ] && ok "nothing of it on the system manager" \
    || not_ok "user units on the system bus: $(units 'job@*') $(units 'utr-*')"
  want ujobs 1
  want utr 0
  wait_for 20 uunits_are 'job@*' 'job@1.service ' && wait_for 20 uunits_are 'utr-*' '' \
    && ok "bus: user: scaled down to 1 and 0" \
    || not_ok "user down: $(uunits 'job@*' | tr '\n' ' ') $(uunits 'utr-*' | tr '\n' ' ')"
  u3=$(nth_line "StopUnit job@3.service replace") u2=$(nth_line "StopUnit job@2.service replace")
  [ -n "$u3" ] && [ -n "$u2" ] && [ "$u3" -lt "$u2" ] && ok "bus: user: newest first" \
    || not_ok "user stop order: @3 at line ${u3:-none}, @2 at line ${u2:-none}"
  stop_daemon "bus: user"
  want ujobs 2
  start_daemon_as_user "$W/user2.log" DBUS_SESSION_BUS_ADDRESS="unix:path=$W/userrun/bus" \
    XDG_RUNTIME_DIR=/nonexistent -- "$W/u.yaml"
  wait_for 10 has "[ujobs] adopted 1 running instance(s)" \
    && wait_for 20 uunits_are 'job@*' 'job@1.service job@2.service ' \
    && ok "DBUS_SESSION_BUS_ADDRESS honoured: job@1 adopted, scaled to 2" \
    || not_ok "user restart: $(uunits 'job@*' | tr '\n' ' '): $(grep ujobs "$log" | tail -2)"
  stop_daemon "bus: user, DBUS_SESSION_BUS_ADDRESS"
  start_daemon_as_user "$W/user3.log" -u XDG_RUNTIME_DIR -u DBUS_SESSION_BUS_ADDRESS -- "$W/u.yaml"
  wait_for 10 has "[ujobs] list failed: cannot reach the user bus at unix:path=/run/user/$SBU/bus: No such file or directory" \
    && ok "neither variable: /run/user/$SBU/bus (here only inside the container), a clear error" \
    || not_ok "no variable: $(grep ujobs "$log" | tail -2)"
  stop_daemon "bus: user, no variable"
fi

# ---- 7. the bus lost while a StartUnit job runs, then back -----------------------------------------
pipeline "$W/lost.yaml" keep lost
want lost 2
start_daemon "$W/lost.log" "$W/lost.yaml"
wait_for 10 has "[lost] StartUnit ci-late@1.service replace" || not_ok "lost: no start: $(tail -2 "$log")"
sleep 0.3 # the job is running (its ExecStartPre takes 4 s)
busctl call $M StopUnit ss dbus.socket replace >/dev/null 2>&1
busctl call $M StopUnit ss dbus.service replace >/dev/null 2>&1
wait_for 10 has "[lost] start failed: cannot reach the system bus at unix:path=$W/bus/system_bus_socket" \
  && ok "dbus stopped mid-job: the start fails, with the bus named" \
  || not_ok "lost mid-call: $(grep lost "$log" | tail -3)"
grep -m1 -F "[lost] start failed" "$log" | sed 's/^/# /'
wait_for 10 has "[lost] list failed: cannot reach the system bus" \
  && ok "while it is down, lists fail (retried with back-off)" || not_ok "lost: $(grep lost "$log" | tail -2)"
# The container's PID 1 is systemd-nspawn's child. -r -w (its root and working directory) matter:
# setns() to a mount namespace leaves a process at that namespace's root mount, which is the
# container's root only when nspawn ran from the real "/"; from a chroot (CI's fresh Debian) it
# is the machine's own "/", where systemctl finds no systemd ("not booted with systemd").
leader=$(ps --ppid "$nspawn_pid" -o pid=,comm= | awk '$2 == "systemd" { print $1; exit }')
if [ -z "$leader" ]; then
  not_ok "no systemd child of systemd-nspawn (pid $nspawn_pid): $(ps --ppid "$nspawn_pid" -o pid=,comm= | tr '\n' ' ')"
elif ! out=$(nsenter -t "$leader" -m -p -r -w -- /usr/bin/systemctl start dbus.socket 2>&1); then
  not_ok "cannot start dbus.socket again inside the container (nsenter -t $leader, root $(readlink "/proc/$leader/root")): $out"
fi
wait_for 20 units_are 'ci-late@*' 'ci-late@1.service ci-late@2.service ' \
  && ok "the bus back: re-listed, ci-late@1 (its job ran on while the bus was away) counted, ci-late@2 started" \
  || not_ok "after dbus came back: $(units 'ci-late@*' 'active activating' | tr '\n' ' ')"
[ "$(count_of "StartUnit ci-late@1.service replace")" = 1 ] && ! has "StartUnit ci-late@3" \
  && ok "ci-late@1 started once, no third unit" || not_ok "starts: $(grep -F 'StartUnit ci-late' "$log")"
has "[lost] connected to the system bus at" && has "[lost] the engine answers again after" \
  && ok "the reconnection and the failures counted are logged: $(grep -m1 -oE 'answers again after [0-9]+ failure\(s\)' "$log")" \
  || not_ok "no reconnection line: $(grep lost "$log" | tail -3)"
stop_daemon "lost"

# ---- 8. the manager gone, then back --------------------------------------------------------------
want agents 2
want web 1
start_daemon "$W/daemon3.log" "$W/p.yaml"
wait_for 20 units_are 'ci-agent@*' 'ci-agent@1.service ci-agent@2.service ci-agent@x.service ' \
  || not_ok "before the outage: $(units 'ci-agent@*' | tr '\n' ' ')"
stop_nspawn
wait_for 15 has "cannot reach the system bus at unix:path=$W/bus/system_bus_socket" \
  && ok "the bus gone: $(grep -m1 -oF "cannot reach the system bus at unix:path=$W/bus/system_bus_socket" "$log")..." \
  || not_ok "no bus error: $(grep agents "$log" | tail -3)"
grep -m1 -F "cannot reach the system bus" "$log" | sed 's/^/# /'
sleep 2
t0=$(now_ms)
boot || not_ok "systemd did not boot again"
# The root is a fresh tmpfs: every unit is gone, and the fleet rebuilds itself.
wait_for 40 units_are 'ci-agent@*' 'ci-agent@1.service ci-agent@2.service ' \
  && wait_for 20 units_are 'web-*' 'web-1.service ' \
  && ok "the bus back: the fleet rebuilt ($(($(now_ms) - t0)) ms after boot)" \
  || not_ok "after the outage: $(units 'ci-agent@*' | tr '\n' ' ') $(units 'web-*' | tr '\n' ' ')"
has "connected to the system bus at" && ok "the reconnection is logged" || not_ok "no reconnection line"
kill -0 "$daemon" 2>/dev/null && ok "the daemon ran throughout" || not_ok "the daemon is gone"

# ---- 9. on_stop: stop ----------------------------------------------------------------------------
stop_daemon "outage"
start_by_hand ci-agent@x.service
transient_by_hand another-1.service
pipeline "$W/stop.yaml" stop agents web
start_daemon "$W/daemon4.log" "$W/stop.yaml"
wait_for 10 has "adopted 2 running instance(s)" || not_ok "on_stop stop: not adopted: $(grep agents "$log" | tail -2)"
stop_daemon "on_stop stop"
units_are 'ci-agent@*' 'ci-agent@x.service ' && units_are 'web-*' '' \
  && units_are 'another-*' 'another-1.service ' \
  && ok "on_stop stop: every member stopped, ci-agent@x and another-1 left running" \
  || not_ok "on_stop stop left: $(units "ci-agent@*" | tr "\n" " ") web: $(units "web-*" | tr "\n" " ") another: $(units "another-*" | tr "\n" " ")"

# ---- 10. a failing unit, a slow one ---------------------------------------------------------------
pipeline "$W/bad.yaml" keep failing slow missing
want missing 1
want failing 1
want slow 1
start_daemon "$W/daemon5.log" "$W/bad.yaml"
wait_for 15 has "start failed: StartUnit ci-fail@1.service: job failed (the unit's result: exit-code, exit status 1)" \
  && ok "a failing unit: failed with systemd's result" \
  || not_ok "failing: $(grep failing "$log" | tail -3)"
grep -m1 -F "[failing] start failed" "$log" | sed 's/^/# /'
wait_for 10 has "start busy: StartUnit ci-slow@1.service: job" \
  && ok "a slow unit (timeout 1s): busy" || not_ok "slow: $(grep slow "$log" | tail -3)"
wait_for 15 units_are 'ci-slow@*' 'ci-slow@1.service ' \
  && ok "the slow unit is ready later, and only one was started" \
  || not_ok "slow: $(units 'ci-slow@*' 'active activating' | tr '\n' ' ')"
wait_for 10 has "[missing] start failed: StartUnit nope@1.service: Unit nope@1.service not found. (org.freedesktop.systemd1.NoSuchUnit)" \
  && ok "a template that does not exist: systemd's error" || not_ok "missing: $(grep missing "$log" | tail -2)"
stop_daemon "failing"

# ---- 11. configuration errors (scalebus check runs create()) --------------------------------------
check_says() { # check_says SCALER_YAML EXPECTED
  printf 'scalers:\n  - %s\n' "$1" >"$W/bad-config.yaml"
  local out
  out=$("$SB" check "$W/bad-config.yaml" 2>&1)
  [ $? = 1 ] && grep -qF -- "$2" <<<"$out" && ok "check: $2" || not_ok "check: want '$2', got: $out"
}
check_says '{id: a, type: systemd, max: 2}' "systemd 'a': unit: required (a template such as ci-agent@.service), or command"
check_says '{id: a, type: systemd, unit: ci-agent.service, max: 2}' "unit: expected a template service such as ci-agent@.service, got 'ci-agent.service'"
check_says '{id: a, type: systemd, command: [sleep, "1"], max: 2}' "command: the program must be an absolute path (systemd searches no PATH), got 'sleep'"
check_says '{id: a, type: systemd, unit: a@.service, stop_grace: 2s, max: 2}' "stop_grace: only with command"
check_says '{id: a, type: systemd, command: [/bin/sleep], properties: {MemoryMax: lots}, max: 2}' "properties: MemoryMax: expected bytes such as 536870912, 512M or infinity, got 'lots'"
check_says '{id: a, type: systemd, command: [/bin/sleep], properties: {Bogus: "1"}, max: 2}' "properties: Bogus: not supported (supported: Description,"
check_says '{id: a, type: systemd, unit: a@.service, bus: session, max: 2}' "bus: system or user, got 'session'"
"$SB" check "$SRC/examples/ci-agents-systemd.yaml" >/dev/null 2>&1 && ok "examples/ci-agents-systemd.yaml passes check" \
  || not_ok "the example: $("$SB" check "$SRC/examples/ci-agents-systemd.yaml" 2>&1)"

echo "$fails failure(s)"
[ "$fails" = 0 ]
