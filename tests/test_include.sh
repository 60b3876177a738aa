#!/bin/bash
# include: and extend: through the real binary. `scalebus check` on a conf.d layout names each
# error at its fragment's own FILE:LINE:COL (the main file's first) and exits 1, and passes the
# valid layout; a running daemon picks up a new conf.d file on SIGHUP (its pipeline starts, the
# running one keeps its worker), refuses a broken fragment with the fragment's FILE:LINE:COL
# while the running pipelines keep running, and stops on SIGTERM with exit 0 and no worker left.
# Ends only what it started, by pid; every wait is bounded; no timing assertions.
#
#   tests/test_include.sh BUILD/scalebus SOURCE_DIR WORK_DIR
#
# WORK_DIR is in the build tree. SB_E2E_WRAP, when set, prefixes `scalebus run` (e.g. valgrind);
# waits are then 10 times longer.
set -u
SB=$1
SRC=$2
WORK=$3
WRAP=${SB_E2E_WRAP:-}
SLOW=1
[ -n "$WRAP" ] && SLOW=10
fails=0
daemon=""
W=$(mktemp -d "$WORK/sb-test-include-XXXXXX") && W=$(realpath "$W") || exit 1
cleanup() {
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
  for f in "$W"/run/worker.*; do
    [ -f "$f" ] || continue
    set -- $(cat "$f"); kill -KILL "$2" 2>/dev/null
  done
  keep_or_remove "$W"
}
trap cleanup EXIT
trap 'fails=$((fails + 1)); exit 1' INT TERM

. "$SRC/tests/lib.sh"

# 1. check on a conf.d layout: each error at its own file's position, main file first.
mkdir -p "$W/bad/conf.d"
cat >"$W/bad/main.yaml" <<'EOF'
include: [conf.d/*.yaml]
triggers:
  - { id: tick, type: cron, schedule: "* * * * * *", valu: 1 }
EOF
cat >"$W/bad/conf.d/10-web.yaml" <<'EOF'
connectors:
  - { id: web-policy, type: direct, from: tick, to: web }
scalers:
  - { id: web, type: process, command: [sleep, "600"], max: 2, stop_grase: 1s }
EOF
cat >"$W/bad/conf.d/20-dup.yaml" <<'EOF'
admin: { listen: off }
scalers:
  - { id: web, type: process, command: [sleep, "600"], max: 1 }
EOF
out=$(timeout 20 "$SB" check "$W/bad/main.yaml" 2>&1); rc=$?
want="\
$W/bad/main.yaml:3:54: unknown option 'valu' for cron (did you mean 'value'?) in trigger 'tick'
$W/bad/conf.d/10-web.yaml:4:64: unknown option 'stop_grase' for process (did you mean 'stop_grace'?) in scaler 'web'
$W/bad/conf.d/20-dup.yaml:1:1: only the main file may set 'admin'
$W/bad/conf.d/20-dup.yaml:3:11: duplicate id 'web' (first used at $W/bad/conf.d/10-web.yaml:4:11)"
if [ "$rc" = 1 ] && [ "$out" = "$want" ]; then
  ok "check names each fragment's errors at its own FILE:LINE:COL, exit 1"
else
  not_ok "check on the broken layout: exit $rc; got:"
  printf '%s\n' "$out" "-- wanted:" "$want" | sed 's/^/#   /'
fi
rm "$W/bad/conf.d/20-dup.yaml"
sed -i 's/valu:/value:/' "$W/bad/main.yaml"
sed -i 's/stop_grase/stop_grace/' "$W/bad/conf.d/10-web.yaml"
out=$(timeout 20 "$SB" check "$W/bad/main.yaml" 2>&1); rc=$?
[ "$rc" = 0 ] && ok "check passes the fixed layout" || not_ok "check on the fixed layout: exit $rc: $out"

# 2. run: a main file and an empty conf.d; a worker records "NAME PID" in run/.
mkdir -p "$W/run/conf.d"
cat >"$W/run/worker.sh" <<'EOF'
#!/bin/sh
echo "$1 $$" > "$(dirname "$0")/worker.$$"
exec sleep 600
EOF
# pipeline ID: a cron at value 1 driving one worker through direct.
pipeline() {
  cat <<EOF
triggers:
  - { id: tick-$1, type: cron, schedule: "* * * * * *", value: 1 }
connectors:
  - { id: policy-$1, type: direct, from: tick-$1, to: pool-$1 }
scalers:
  - { id: pool-$1, type: process, command: [sh, "$W/run/worker.sh", "$1"], max: 2, stop_grace: 1s }
EOF
}
{ echo "admin: { listen: off }"; echo "include: conf.d/*.yaml"; pipeline a; } >"$W/run/main.yaml"

# Live workers of one pipeline: their pids, sorted.
workers_of() {
  local f
  for f in "$W"/run/worker.*; do
    [ -f "$f" ] || continue
    set -- $(cat "$f")
    [ "$1" = "$WANT" ] || continue
    [ -r "/proc/$2/cmdline" ] && tr '\0' ' ' <"/proc/$2/cmdline" | grep -q '^sleep 600' && echo "$2"
  done | sort
}
count_is() { WANT=$1; [ "$(workers_of | wc -l)" = "$2" ]; }
log_has() { grep -qF -- "$1" "$log"; }

log=$W/run.log
$WRAP "$SB" run "$W/run/main.yaml" >"$log" 2>&1 &
daemon=$!
wait_for 15 count_is a 1 && ok "daemon runs the main file's pipeline with an empty conf.d" \
  || not_ok "pipeline a: $(WANT=a workers_of | wc -l) workers; log: $(tail -5 "$log")"
a_pid=$(WANT=a workers_of)

# 3. a new fragment in conf.d, then SIGHUP: its pipeline starts, a's worker is kept.
pipeline b >"$W/run/conf.d/b.yaml"
kill -HUP "$daemon"
wait_for 15 count_is b 1 && ok "SIGHUP picks up a new conf.d file: its pipeline runs" \
  || not_ok "pipeline b after SIGHUP: $(WANT=b workers_of | wc -l) workers; log: $(tail -5 "$log")"
[ -n "$a_pid" ] && [ "$(WANT=a workers_of)" = "$a_pid" ] && ok "the main file's worker is kept across the reload" \
  || not_ok "pipeline a's worker changed: was $a_pid, now $(WANT=a workers_of)"
b_pid=$(WANT=b workers_of)

# 4. a broken fragment: the reload is refused at the fragment's position; both keep running.
cat >"$W/run/conf.d/c.yaml" <<'EOF'
scalers:
  - id: pool-c
    type: process
    command: [sleep, "600"]
    max: 1
    colour: red
EOF
want="$W/run/conf.d/c.yaml:6:5: unknown option 'colour' for process"
kill -HUP "$daemon"
wait_for 15 log_has "$want" && ok "a broken fragment is refused at its own FILE:LINE:COL" \
  || not_ok "no '$want' in the log: $(tail -8 "$log"); c.yaml: $(cat -n "$W/run/conf.d/c.yaml")"
log_has "the running pipelines carry on unchanged" && ok "the refusal says the pipelines carry on" \
  || not_ok "no 'carry on unchanged' in the log"
[ "$(WANT=a workers_of)" = "$a_pid" ] && [ "$(WANT=b workers_of)" = "$b_pid" ] && count_is c 0 \
  && ok "after the refused reload both pipelines keep their workers" \
  || not_ok "workers after the refused reload: a=$(WANT=a workers_of) b=$(WANT=b workers_of) c=$(WANT=c workers_of | wc -l)"
kill -0 "$daemon" 2>/dev/null && ok "daemon still running" || not_ok "daemon died on a broken fragment"

# 5. SIGTERM: exit 0, no worker left.
kill -TERM "$daemon"
for _ in $(seq $((300 * SLOW))); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$daemon" 2>/dev/null; then
  kill -KILL "$daemon"; wait "$daemon" 2>/dev/null; rc=255
else
  wait "$daemon"; rc=$?
fi
daemon=""
[ "$rc" = 0 ] && ok "SIGTERM: exit 0" || not_ok "SIGTERM: exit status $rc; log: $(tail -5 "$log")"
none_left() { count_is a 0 && count_is b 0; }
wait_for 5 none_left && ok "SIGTERM: no worker left" || not_ok "workers left: a=$(WANT=a workers_of) b=$(WANT=b workers_of)"

[ "$fails" = 0 ]
