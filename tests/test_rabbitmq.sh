#!/bin/bash
# The rabbitmq trigger against a real rabbitmq-server (with its management plugin), over both
# protocols: a changed queue depth reaches a process scaler through a `target` connector (AMQP
# within about one `every`; the management API within `every` plus its own 2-5 s statistics lag);
# a regular expression gives one reading per queue (each queue drives its own pool through
# `match`); the server stopped mid-run gives error lines and the policy's hold (or its fallback,
# when the policy library has `fallback`), never a count of 0, and reading resumes when the
# server is back, with the daemon running throughout; wrong credentials (HTTP 401, AMQP
# ACCESS_REFUSED) and a missing queue give clear errors; replies that are not what the API sends
# (HTML, a body over the size limit, deep nesting, wrong types, a server that never answers, a
# 503) give clear errors and no crash; SIGTERM exits 0 each time.
#
#   tests/test_rabbitmq.sh BUILD/scalebus SOURCE_DIR
#
# RabbitMQ runs on loopback ports picked here (AMQP, management, epmd, Erlang distribution), its
# files in a temporary folder, under its own node name; this script starts epmd itself and stops
# both by pid. SB_E2E_WRAP, when set, prefixes every `scalebus run` (e.g. valgrind with
# --error-exitcode=99): exit statuses must still be 0, and waits are bounded 10 times longer.
# On a failure the temporary folder, with every log, is kept and named.
set -u
SB=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
SRC=$(cd "$2" && pwd)
WRAP=${SB_E2E_WRAP:-}
SLOW=1
[ -n "$WRAP" ] && SLOW=10
RMQ_BIN=/usr/lib/rabbitmq/bin
if [ ! -x "$RMQ_BIN/rabbitmq-server" ] || ! command -v curl >/dev/null || ! command -v epmd >/dev/null; then
  echo "ok - # SKIP rabbitmq-server, epmd or curl not installed (scripts/install-deps.sh)"
  exit 0
fi
W=$(mktemp -d /tmp/sb-rabbitmq.XXXXXX)
cd "$W" || exit 1 # whatever a server writes to its working folder stays in here
export E2E_SRC=$SRC
fails=0
daemon="" rmq_pid="" epmd_pid="" junk_pid=""
. "$SRC/tests/lib.sh"

AMQP_PORT=$(free_port) MGMT_PORT=$(free_port) EPMD_PORT=$(free_port) DIST_PORT=$(free_port)
JUNK_PORT=$(free_port)
NODE=sbtest$$@localhost
R=$W/rmq
mkdir -p "$R/home"
echo '[rabbitmq_management].' >"$R/enabled_plugins"
: >"$R/env.conf"
cat >"$R/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
management.tcp.ip = 127.0.0.1
management.tcp.port = $MGMT_PORT
CONF
API=http://127.0.0.1:$MGMT_PORT/api
# The node is sbtest...@localhost. A minimal system may have no /etc/hosts (the fresh-Debian
# chroot has none), where "localhost" does not resolve and the node cannot start: Erlang's own
# resolver configuration says what localhost is, for these commands only.
printf '{host, {127,0,0,1}, ["localhost"]}.\n{lookup, [file, native]}.\n' >"$R/inetrc"

# Every RabbitMQ command runs with this environment (and only those commands).
RMQ_ENV=(HOME="$R/home" RABBITMQ_CONF_ENV_FILE="$R/env.conf" RABBITMQ_CONFIG_FILE="$R/rabbitmq.conf"
  RABBITMQ_MNESIA_BASE="$R/mnesia" RABBITMQ_LOG_BASE="$R/log"
  RABBITMQ_ENABLED_PLUGINS_FILE="$R/enabled_plugins" RABBITMQ_NODENAME="$NODE"
  RABBITMQ_DIST_PORT="$DIST_PORT" ERL_CRASH_DUMP="$R/erl_crash.dump" ERL_INETRC="$R/inetrc"
  ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$EPMD_PORT"
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} -kernel inet_dist_listen_min $DIST_PORT -kernel inet_dist_listen_max $DIST_PORT")
# Up when the management API answers; a server that exited is given up on at once.
mgmt_up() {
  curl -sf -m 2 -u guest:guest "$API/overview" >/dev/null 2>&1 && return 0
  kill -0 "$rmq_pid" 2>/dev/null || { echo "# rabbitmq-server exited"; return 0; }
  return 1
}
start_rabbit() {
  # One simple command (env execs setsid, which execs the script): $! is the script's own pid.
  env "${RMQ_ENV[@]}" setsid "$RMQ_BIN/rabbitmq-server" >>"$R/server.log" 2>&1 </dev/null &
  rmq_pid=$!
  wait_for 90 mgmt_up && kill -0 "$rmq_pid" 2>/dev/null
}
# The start script turns SIGTERM into a clean stop of the Erlang VM and waits for it.
stop_rabbit() {
  [ -n "$rmq_pid" ] || return 0
  kill -TERM "$rmq_pid" 2>/dev/null
  for _ in $(seq 600); do kill -0 "$rmq_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$rmq_pid" 2>/dev/null; then
    echo "# rabbitmq-server did not stop in 60 s: SIGKILL to its process group"
    kill -KILL -- "-$rmq_pid" 2>/dev/null
  fi
  wait "$rmq_pid" 2>/dev/null
  rmq_pid=""
}
kill_workers() {
  for f in "$W"/*/worker.*; do
    [ -f "$f" ] || continue
    kill -KILL "$(awk '{print $NF}' "$f")" 2>/dev/null
  done
}
cleanup() {
  set +u
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
  kill_workers
  stop_rabbit
  [ -n "$epmd_pid" ] && kill "$epmd_pid" 2>/dev/null && wait "$epmd_pid" 2>/dev/null
  # An epmd the Erlang VM started itself (ours stopped first): the one on our own port, by pid.
  for p in $(pgrep -x epmd); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "ERL_EPMD_PORT=$EPMD_PORT" && kill "$p"
  done
  [ -n "$junk_pid" ] && kill "$junk_pid" 2>/dev/null && wait "$junk_pid" 2>/dev/null
  keep_or_remove "$W" "$R/server.log"
}
trap cleanup EXIT
trap 'fails=$((fails + 1)); exit 1' INT TERM

# The management API, as a user would drive it with curl.
api() { # api METHOD PATH [JSON]
  curl -sf -m 10 -u guest:guest -X "$1" -H 'content-type: application/json' ${3:+-d "$3"} "$API$2" >/dev/null
}
declare_queue() { api PUT "/queues/%2F/$1" '{"durable":true}'; }
publish() { # publish QUEUE N: N persistent messages
  for _ in $(seq "$2"); do
    api POST /exchanges/%2F/amq.default/publish \
      "{\"properties\":{\"delivery_mode\":2},\"routing_key\":\"$1\",\"payload\":\"job\",\"payload_encoding\":\"string\"}" || return 1
  done
}
purge() { api DELETE "/queues/%2F/$1/contents"; }
set_depth() { purge "$1" && publish "$1" "$2"; }

log_has() { grep -sqF -- "$1" "$log"; }
log_count() { grep -scF -- "$1" "$log"; }
live_workers() { # live_workers POOL
  local n=0 pid
  for f in "$W/$1"/worker.*; do
    [ -f "$f" ] || continue
    pid=$(awk '{print $NF}' "$f") # worker.sh writes "INSTANCE [PORT] PID"
    [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q '^sleep 600' && n=$((n + 1))
  done
  echo $n
}
workers_are() { [ "$(live_workers "$1")" = "$2" ]; }
start_daemon() { # start_daemon NAME FILE [ARGS]
  log=$W/$1.log; shift
  $WRAP "$SB" run "$@" >"$log" 2>&1 &
  daemon=$!
}
stop_daemon() {
  kill -TERM "$daemon"
  for _ in $(seq $((600 * SLOW))); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$daemon" 2>/dev/null; then
    kill -KILL "$daemon"; wait "$daemon" 2>/dev/null; rc=255
  else
    wait "$daemon"; rc=$?
  fi
  daemon=""
}

# ---- the server ---------------------------------------------------------------------------------
epmd -port "$EPMD_PORT" -address 127.0.0.1 >"$W/epmd.out" 2>&1 &
epmd_pid=$!
t0=$(now_ms)
if ! start_rabbit; then
  not_ok "rabbitmq-server did not answer on $API within 90 s"
  exit 1
fi
echo "# rabbitmq-server up in $(($(now_ms) - t0)) ms (amqp $AMQP_PORT, management $MGMT_PORT, epmd $EPMD_PORT)"
for q in jobs build-a build-b deploy; do declare_queue "$q" || not_ok "declare $q"; done
publish jobs 2 && publish build-a 1 && publish build-b 3 && publish deploy 5 || not_ok "publish"

# Does the policy library have `fallback` yet? Then the outage shows it; else the hold.
FALLBACK=""
"$SB" plugins --describe target 2>/dev/null | grep -q '^  fallback ' && FALLBACK=1

# ---- 1. both protocols and a regex drive process scalers ------------------------------------------
policy_opts="per_instance: 1, stabilize_down: 0s"
[ -n "$FALLBACK" ] && policy_opts="$policy_opts, fail_after: 2, fallback: 1"
poll="every: 300ms, timeout: 2s, backoff_max: 1s"
pool() { # pool ID
  mkdir -p "$W/$1"
  cat <<YAML
  - id: $1
    type: process
    command: ["sh", "$SRC/tests/e2e/worker.sh"]
    env: { E2E_DIR: "$W/$1" }
    max: 8
    stop_grace: 1s
YAML
}
cat >"$W/live.yaml" <<YAML
triggers:
  - { id: jobs-http, type: rabbitmq, url: "http://127.0.0.1:$MGMT_PORT", username: guest,
      password: "\${RMQ_TEST_PASSWORD}", queue: jobs, $poll }
  - { id: jobs-amqp, type: rabbitmq, protocol: amqp, url: "amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2F",
      queue: jobs, $poll }
  - { id: builds, type: rabbitmq, url: "http://guest:guest@127.0.0.1:$MGMT_PORT", vhost: /,
      queue: "^build-", queue_regex: true, $poll }
connectors:
  - { id: http-workers, type: target, from: jobs-http, to: pool-http, $policy_opts }
  - { id: amqp-workers, type: target, from: jobs-amqp, to: pool-amqp, $policy_opts }
  - { id: a-workers, type: target, from: builds, to: pool-a, match: { queue: build-a }, per_instance: 1, stabilize_down: 0s }
  - { id: b-workers, type: target, from: builds, to: pool-b, match: { queue: build-b }, per_instance: 1, stabilize_down: 0s }
scalers:
$(pool pool-http)
$(pool pool-amqp)
$(pool pool-a)
$(pool pool-b)
YAML
export RMQ_TEST_PASSWORD=guest
start_daemon live "$W/live.yaml"
wait_for 20 workers_are pool-amqp 2 && ok "amqp: 2 ready messages -> 2 workers" \
  || not_ok "amqp: workers $(live_workers pool-amqp), want 2"
wait_for 20 workers_are pool-http 2 && ok "http: 2 ready messages -> 2 workers" \
  || not_ok "http: workers $(live_workers pool-http), want 2"
wait_for 20 workers_are pool-a 1 && wait_for 10 workers_are pool-b 3 \
  && ok "regex ^build-: one reading per queue, build-a -> 1 worker, build-b -> 3" \
  || not_ok "regex: pool-a $(live_workers pool-a) (want 1), pool-b $(live_workers pool-b) (want 3)"
log_has "[http-workers] desired 2: jobs=2 per_instance=1 -> 2" \
  && ok "the decision names the queue label" || not_ok "no decision line: $(grep http-workers "$log" | head -2)"
log_has "[a-workers] desired 1: build-a=1" && ! grep -q "a-workers\] desired .*build-b" "$log" \
  && ok "match: the build-a policy sees only build-a's readings" \
  || not_ok "a-workers: $(grep a-workers "$log" | head -3)"

# A change at the source: 2 -> 5 messages.
t0=$(now_ms)
publish jobs 3 || not_ok "publish 3 more"
if wait_for 10 workers_are pool-amqp 5; then
  t_amqp=$(($(now_ms) - t0))
  # one `every` (300 ms) plus starting 3 processes; generous for a busy machine
  [ $t_amqp -le $((3000 * SLOW)) ] && ok "amqp: 5 messages -> 5 workers in $t_amqp ms (every 300ms)" \
    || not_ok "amqp: took $t_amqp ms"
else
  not_ok "amqp: workers $(live_workers pool-amqp), want 5"
fi
if wait_for 15 workers_are pool-http 5; then
  ok "http: 5 messages -> 5 workers in $(($(now_ms) - t0)) ms (every 300ms + the API's statistics lag)"
else
  not_ok "http: workers $(live_workers pool-http), want 5"
fi
set_depth build-a 2 || not_ok "build-a to 2"
wait_for 15 workers_are pool-a 2 && ok "regex: build-a 1 -> 2 messages -> 2 workers" \
  || not_ok "regex: pool-a $(live_workers pool-a), want 2"
workers_are pool-b 3 && ok "regex: build-b's pool untouched (3)" || not_ok "pool-b: $(live_workers pool-b)"

# ---- 2. the server stops mid-run --------------------------------------------------------------
stop_rabbit
ok "rabbitmq-server stopped (the daemon keeps running)"
wait_for 10 log_has "[jobs-amqp] read failed: " && ok "amqp: the failure is logged: $(grep -F '[jobs-amqp] read failed' "$log" | head -1 | sed 's/.*read failed: //')" \
  || not_ok "amqp: no failure line"
wait_for 10 log_has "[jobs-http] read failed: GET http://127.0.0.1:$MGMT_PORT/api/queues/%2F/jobs: " \
  && ok "http: the failure is logged: $(grep -F '[jobs-http] read failed' "$log" | head -1 | sed 's/.*read failed: //')" \
  || not_ok "http: no failure line: $(grep -F '[jobs-http]' "$log" | tail -2)"
if [ -n "$FALLBACK" ]; then
  wait_for 10 log_has "[amqp-workers] desired 1: jobs-amqp: " && ok "amqp: error events reach the policy: fallback 1 ($(grep -F '[amqp-workers] desired 1' "$log" | head -1 | sed 's/.*desired 1: //'))" \
    || not_ok "amqp: no fallback decision: $(grep -F '[amqp-workers]' "$log" | tail -2)"
  wait_for 10 log_has "[http-workers] desired 1: jobs-http: " && ok "http: error events reach the policy: fallback 1" \
    || not_ok "http: no fallback decision: $(grep -F '[http-workers]' "$log" | tail -2)"
  wait_for 10 workers_are pool-amqp 1 && wait_for 10 workers_are pool-http 1 \
    && ok "the fallback count runs (1 worker each), not 0" \
    || not_ok "fallback workers: amqp $(live_workers pool-amqp), http $(live_workers pool-http)"
else
  echo "# the policy library has no fallback yet: the count must hold"
  sleep $((3 * SLOW))
  [ "$(grep -cF '[jobs-amqp] read failed' "$log")" -ge 1 ] || not_ok "amqp: no more failures"
  workers_are pool-amqp 5 && workers_are pool-http 5 \
    && ok "the count holds at 5 through the outage (never 0)" \
    || not_ok "held workers: amqp $(live_workers pool-amqp), http $(live_workers pool-http)"
fi
grep -E '\[(jobs-http|jobs-amqp|builds)\] queue [a-z-]+: messages_ready 0' "$log" >/dev/null \
  && not_ok "a failure was read as 0" || true
kill -0 "$daemon" 2>/dev/null && ok "the daemon runs through the outage" || not_ok "the daemon died"

# The server comes back with its durable queues and persistent messages: reading resumes.
t0=$(now_ms)
if start_rabbit; then
  echo "# rabbitmq-server back in $(($(now_ms) - t0)) ms"
  wait_for 20 log_has "[jobs-amqp] reading again after " && ok "amqp: reading resumes ($(grep -F '[jobs-amqp] reading again' "$log" | tail -1 | sed 's/.*\] //'))" \
    || not_ok "amqp: no recovery line"
  wait_for 20 log_has "[jobs-http] reading again after " && ok "http: reading resumes" \
    || not_ok "http: no recovery line: $(grep -F '[jobs-http]' "$log" | tail -2)"
  publish jobs 1 || not_ok "publish after the restart"
  wait_for 15 workers_are pool-amqp 6 && ok "amqp: after the restart 6 messages -> 6 workers" \
    || not_ok "amqp: workers $(live_workers pool-amqp), want 6"
  wait_for 20 workers_are pool-http 6 && ok "http: after the restart 6 messages -> 6 workers" \
    || not_ok "http: workers $(live_workers pool-http), want 6"
else
  not_ok "rabbitmq-server did not come back"
fi
# A server that hangs (its VM frozen with SIGSTOP): each read ends at `timeout` (2s) with a
# failure, on both protocols; reading resumes when it thaws.
beam=$(pgrep -P "$rmq_pid" | head -1)
n_amqp=$(log_count "[jobs-amqp] reading again after ")
if [ -n "$beam" ] && kill -STOP "$beam"; then
  wait_for 10 log_has "[jobs-amqp] read failed: amqp://127.0.0.1:$AMQP_PORT vhost /: queue.declare (passive): request timed out" \
    && ok "amqp: a hung server: the read times out" \
    || not_ok "amqp: no timeout line: $(grep -F '[jobs-amqp] read failed' "$log" | tail -1)"
  wait_for 10 log_has "[jobs-http] read failed: GET http://127.0.0.1:$MGMT_PORT/api/queues/%2F/jobs: Operation timed out" \
    && ok "http: a hung server: the read times out" \
    || not_ok "http: no timeout line: $(grep -F '[jobs-http] read failed' "$log" | tail -1)"
  kill -CONT "$beam"
  wait_for 15 eval '[ "$(log_count "[jobs-amqp] reading again after ")" -gt "$n_amqp" ]' \
    && ok "amqp: reading resumes after the thaw" || not_ok "amqp: no recovery after the thaw"
  wait_for 20 workers_are pool-amqp 6 && ok "amqp: 6 workers again" || not_ok "amqp: workers $(live_workers pool-amqp)"
  # SIGTERM while a read blocks on the worker thread: stop() waits for it, closes the
  # connection there, then the daemon exits 0.
  kill -STOP "$beam"
  sleep 0.5
  t0=$(now_ms)
  stop_daemon
  [ $rc = 0 ] && ok "live: SIGTERM during a blocked AMQP read: exit 0 after $(($(now_ms) - t0)) ms" \
    || not_ok "live: exit status $rc"
  kill -CONT "$beam"
else
  not_ok "no Erlang VM under the rabbitmq-server script"
  stop_daemon
  [ $rc = 0 ] && ok "live: SIGTERM exit 0" || not_ok "live: exit status $rc"
fi
wait_for 10 workers_are pool-amqp 0 && wait_for 10 workers_are pool-http 0 || not_ok "workers left"
kill_workers

# ---- 3. errors: credentials, missing queue, broken replies -------------------------------------
/usr/bin/python3 "$SRC/tests/rabbitmq/junk_server.py" "$JUNK_PORT" >"$W/junk.out" 2>&1 &
junk_pid=$!
declare_queue fresh && publish fresh 3 || not_ok "declare fresh"
J="http://u:p@127.0.0.1:$JUNK_PORT"
trig() { echo "  - { id: $1, type: rabbitmq, every: 300ms, timeout: 1s, backoff_max: 1s, $2 }"; }
{
  echo "triggers:"
  trig bad-http "url: \"http://guest:wrong@127.0.0.1:$MGMT_PORT\", queue: jobs"
  trig bad-amqp "protocol: amqp, url: \"amqp://guest:wrong@127.0.0.1:$AMQP_PORT\", queue: jobs"
  trig missing-http "url: \"http://guest:guest@127.0.0.1:$MGMT_PORT\", queue: nope"
  trig missing-amqp "protocol: amqp, url: \"amqp://guest:guest@127.0.0.1:$AMQP_PORT\", queue: nope"
  trig no-vhost "url: \"http://guest:guest@127.0.0.1:$MGMT_PORT\", vhost: nosuch, queue: x, queue_regex: true"
  trig no-match "url: \"http://guest:guest@127.0.0.1:$MGMT_PORT\", queue: \"^zzz\", queue_regex: true"
  trig fresh "url: \"http://guest:guest@127.0.0.1:$MGMT_PORT\", queue: fresh"
  trig refused-amqp "protocol: amqp, url: \"amqp://guest:guest@127.0.0.1:$JUNK_PORT\", queue: jobs"
  for k in html big deep types slow busy; do trig "junk-$k" "url: \"$J/$k\", queue: jobs"; done
  echo "connectors:"
  echo "  - { id: sink, type: direct, from: [bad-http, bad-amqp, missing-http, missing-amqp, no-vhost, no-match, fresh, refused-amqp, junk-html, junk-big, junk-deep, junk-types, junk-slow, junk-busy], to: pool-x }"
  echo "scalers:"
  pool pool-x
} >"$W/errors.yaml"
start_daemon errors "$W/errors.yaml" --log-level debug
expect() { # expect ID TEXT WHAT
  if wait_for 15 log_has "[$1] read failed: $2"; then ok "$3: $(grep -F "[$1] read failed: " "$log" | head -1 | sed 's/.*read failed: //')"
  else not_ok "$3: no line '[$1] read failed: $2': $(grep -F "[$1]" "$log" | tail -2)"; fi
}
expect bad-http "GET http://127.0.0.1:$MGMT_PORT/api/queues/%2F/jobs: HTTP 401: login refused for user 'guest'" "http: wrong password"
expect bad-amqp "amqp://127.0.0.1:$AMQP_PORT vhost /: login: ACCESS_REFUSED" "amqp: wrong password"
expect missing-http "queue nope not found in vhost /" "http: a missing queue"
expect missing-amqp "amqp://127.0.0.1:$AMQP_PORT vhost /: queue.declare (passive): NOT_FOUND - no queue 'nope' in vhost '/'" "amqp: a missing queue"
expect no-vhost "vhost nosuch not found" "http: a missing vhost"
expect no-match "vhost /: queue regex '^zzz': no queue matches" "http: a regex matching no queue"
expect refused-amqp "amqp://127.0.0.1:$JUNK_PORT vhost /: " "amqp: not an AMQP server"
expect junk-html "GET http://127.0.0.1:$JUNK_PORT/html/api/queues/%2F/jobs: the reply is not JSON" "an HTML page"
expect junk-big "GET http://127.0.0.1:$JUNK_PORT/big/api/queues/%2F/jobs: reply body over the limit" "a 5 MiB reply"
expect junk-deep "GET http://127.0.0.1:$JUNK_PORT/deep/api/queues/%2F/jobs: the reply is not JSON" "100,000 nested arrays"
expect junk-types "GET http://127.0.0.1:$JUNK_PORT/types/api/queues/%2F/jobs: queue jobs: messages_ready is a string, not a number" "counts as strings"
expect junk-slow "GET http://127.0.0.1:$JUNK_PORT/slow/api/queues/%2F/jobs: " "a server that never answers (timeout 1s)"
expect junk-busy "GET http://127.0.0.1:$JUNK_PORT/busy/api/queues/%2F/jobs: HTTP 503" "a 503"
grep -qF "guest:wrong" "$log" && not_ok "a password reached the log" \
  || ok "no password in the log"
# A queue just declared has no statistics for a few seconds: a failure then, never a reading of 0;
# then its 3 messages.
if log_has "[fresh] read failed: queue fresh: no statistics yet"; then
  ok "a queue just declared: 'no statistics yet' (a failure, not 0)"
else
  echo "ok - # SKIP the statistics of the new queue came before the first read"
fi
wait_for 15 log_has "[fresh] queue fresh: messages_ready 3" && ok "then its count: 3" \
  || not_ok "fresh: $(grep -F '[fresh]' "$log" | tail -2)"
# A 0 here can be true: the management API's statistics lag, and those of a queue declared and
# published to a moment before may still say 0 (a CI run saw it). That a queue without statistics
# is a failure, never 0, is test_rabbitmq_parse's ("no statistics yet"); here only the log says
# which came first.
if log_has "[fresh] queue fresh: messages_ready 0"; then
  echo "# note: the management API reported fresh's statistics as 0 before its 3 messages"
fi
# Failures are logged once per change of state (warn), then at debug level.
[ "$(grep -cF 'warn  [junk-html] read failed' "$log")" = 1 ] && [ "$(grep -cF '[junk-html] read failed' "$log")" -ge 2 ] \
  && ok "a repeated failure is warned about once" \
  || not_ok "junk-html warn lines: $(grep -cF 'warn  [junk-html] read failed' "$log")"
kill -0 "$daemon" 2>/dev/null && ok "the daemon survives every broken reply" || not_ok "the daemon died"
stop_daemon
[ $rc = 0 ] && ok "errors: SIGTERM exit 0" || not_ok "errors: exit status $rc"
kill_workers

echo "$fails failure(s)"
[ $fails = 0 ]
