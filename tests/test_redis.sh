#!/bin/bash
# The redis trigger against a real redis-server (with a password and an ACL user): a list's
# length (LLEN) changed with RPUSH/LPOP reaches a process scaler through a `target` connector
# within one `every`; several keys give one reading each, labelled queue=<key>; a sorted set,
# a stream, and a stream's consumer group (lag and pending) read right, over TCP and over a unix
# socket; redis-server killed mid-run gives error lines and error events, the policy's hold (the
# count stays, never 0) and its fallback, and reading resumes once redis-server is back on the
# same port, with the daemon running throughout; a wrong password, a missing one, a WRONGTYPE key,
# a missing consumer group and a database out of range give clear errors; replies no real server
# sends (not RESP, an unsolicited reply, a reply over the 1 MiB bound, a truncated element count)
# come from a small double (a python3 script written below; it is not Redis) and give clear
# errors, no crash; SIGTERM exits 0 each time.
#
#   tests/test_redis.sh BUILD/scalebus SOURCE_DIR
#
# redis-server runs on a loopback port picked here, its files in a temporary folder, and is
# stopped by pid. SB_E2E_WRAP, when set, prefixes every `scalebus run` (e.g. valgrind with
# --error-exitcode=99): exit statuses must still be 0, and waits are bounded 10 times longer.
# On a failure the temporary folder, with every log, is kept and named.
set -u
SB=$1
SRC=$2
WRAP=${SB_E2E_WRAP:-}
SLOW=1
[ -n "$WRAP" ] && SLOW=10
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "ok - # SKIP redis-server or redis-cli not installed (scripts/install-deps.sh)"
  exit 0
fi
W=$(mktemp -d /tmp/sb-redis.XXXXXX)
fails=0
daemon="" fake_pid=""
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
FAKE_PORT=$(free_port)
PASS=sb-test-pw
SOCK=$W/redis.sock
export SB_TEST_REDIS_PASSWORD=$PASS

redis_pid() { cat "$W/redis.pid" 2>/dev/null; }
cli() { redis-cli -p "$PORT" -a "$PASS" --no-auth-warning "$@"; }
redis_up() { [ "$(cli ping 2>/dev/null)" = PONG ]; }
# start_redis: redis-server on $PORT (and $SOCK), with a password and an ACL user for db 2.
start_redis() {
  redis-server --port "$PORT" --bind 127.0.0.1 --dir "$W" --save '' --appendonly no \
    --daemonize yes --pidfile "$W/redis.pid" --logfile "$W/redis-server.out" \
    --unixsocket "$SOCK" --unixsocketperm 700 --requirepass "$PASS"
  wait_for 10 redis_up || { not_ok "redis-server did not start: $(tail -3 "$W/redis-server.out")"; exit 1; }
  cli acl setuser ci-reader on '>ci-pw' '~*' '+@read' '+select' '+ping' >/dev/null
}
# stop_redis SIGNAL: signal redis-server by pid and wait until it is gone.
stop_redis() {
  local pid
  pid=$(redis_pid)
  [ -n "$pid" ] || return 0
  kill "-$1" "$pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  rm -f "$W/redis.pid"
}

cleanup() {
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
  stop_redis TERM
  [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null
  for f in "$W"/a/worker.* "$W"/b/worker.*; do
    [ -f "$f" ] && kill -KILL "$(awk '{ print $NF }' "$f")" 2>/dev/null
  done
  keep_or_remove "$W"
}
trap cleanup EXIT
trap 'fails=$((fails + 1)); exit 1' INT TERM

log_has() { grep -qF -- "$1" "$log"; }
# live_workers DIR: workers of the pool whose workers write into DIR, still running.
live_workers() {
  local n=0 pid
  for f in "$1"/worker.*; do
    [ -f "$f" ] || continue
    pid=$(awk '{ print $NF }' "$f")  # worker.sh writes "INSTANCE [PORT] PID"
    [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q '^sleep 600' && n=$((n + 1))
  done
  echo $n
}
workers_are() { [ "$(live_workers "$1")" = "$2" ]; }
start_daemon() { # start_daemon NAME ARGS...
  log=$W/$1.log; shift
  $WRAP "$SB" run "$@" >"$log" 2>&1 &
  daemon=$!
}
stop_daemon() { # stop_daemon SIGNAL: rc is the exit status (255: still running after the bound)
  kill "-$1" "$daemon"
  for _ in $(seq $((300 * SLOW))); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$daemon" 2>/dev/null; then
    kill -KILL "$daemon"; wait "$daemon" 2>/dev/null; rc=255
  else
    wait "$daemon"; rc=$?
  fi
  daemon=""
}
# ms_of_line TEXT: the time of the first log line holding TEXT, in ms since the epoch.
ms_of_line() { date -d "$(grep -F -- "$1" "$log" | head -1 | cut -d' ' -f1)" +%s%3N; }

"$SB" check "$SRC/examples/ci-agents-redis.yaml" >"$W/check.out" 2>&1 \
  && ok "examples/ci-agents-redis.yaml passes check" || not_ok "the example: $(cat "$W/check.out")"
start_redis
mkdir -p "$W/a" "$W/b"

# ---- 1. the main pipelines: a list drives two pools; the server goes away and comes back ----
cat >"$W/main.yaml" <<YAML
# no admin endpoint: ctest runs other daemons at once, and a second one on the
# default port warns, which the check for unexpected warnings below would catch
admin: {listen: off}
triggers:
  # the password in the url
  - { id: jobs, type: redis, url: "redis://:$PASS@127.0.0.1:$PORT/0", key: jobs,
      every: 200ms, timeout: 1s, backoff_max: 1s }
  # the password from the environment, through the password option
  - { id: jobs-fb, type: redis, url: "redis://127.0.0.1:$PORT", password: "\${SB_TEST_REDIS_PASSWORD}",
      key: jobs, every: 200ms, timeout: 1s, backoff_max: 1s }
  # an ACL user, database 2, two keys
  - { id: stages, type: redis, url: "redis://ci-reader:ci-pw@127.0.0.1:$PORT/2", keys: [build, deploy],
      every: 200ms, backoff_max: 1s }
connectors:
  - { id: per-two, type: target, from: jobs, to: pool, per_instance: 2, stabilize_down: 0s }
  - { id: per-two-fb, type: target, from: jobs-fb, to: pool-fb, per_instance: 2, stabilize_down: 0s,
      fail_after: 2, fallback: 1 }
  - { id: per-stage, type: target, from: stages, to: sink, per_instance: 1, stabilize_down: 0s }
  - { id: deploy-only, type: target, from: stages, to: sink-deploy, match: { queue: deploy },
      per_instance: 1, stabilize_down: 0s }
scalers:
  - { id: pool, type: process, command: [sh, "$SRC/tests/e2e/worker.sh"], env: { E2E_DIR: "$W/a" },
      max: 8, stop_grace: 1s }
  - { id: pool-fb, type: process, command: [sh, "$SRC/tests/e2e/worker.sh"], env: { E2E_DIR: "$W/b" },
      max: 8, stop_grace: 1s }
  - { id: sink, type: process, command: [sleep, "600"], min: 0, max: 1, stop_grace: 1s }
  - { id: sink-deploy, type: process, command: [sleep, "600"], min: 0, max: 1, stop_grace: 1s }
YAML
cli -n 2 rpush build b1 b2 b3 >/dev/null
cli -n 2 rpush deploy d1 >/dev/null
start_daemon main "$W/main.yaml"
wait_for 15 log_has "[per-two] desired 0: jobs=0 per_instance=2 -> 0" \
  && ok "an empty list reads 0" || not_ok "no first reading: $(grep -E 'jobs|error' "$log" | head -3)"
wait_for 5 log_has "[per-two-fb] desired 0: jobs=0 per_instance=2 -> 0" \
  && ok "the password from \${ENV} through the password option" || not_ok "jobs-fb: $(grep jobs-fb "$log" | head -3)"

# A change reaches the scaler within one `every` (200 ms; a little more for the hand-over).
t0=$(date +%s%3N)
cli rpush jobs j1 j2 j3 j4 j5 j6 >/dev/null
wait_for 5 log_has "[per-two] desired 3: jobs=6 per_instance=2 -> 3" \
  || not_ok "RPUSH of 6: no decision of 3: $(grep per-two "$log" | tail -3)"
t1=$(ms_of_line "[per-two] desired 3: jobs=6 per_instance=2 -> 3")
bound=$((200 + 250 * SLOW))
[ -n "$t1" ] && [ $((t1 - t0)) -le $bound ] && ok "RPUSH of 6 decided 3 in $((t1 - t0)) ms (every 200ms)" \
  || not_ok "RPUSH of 6 took $((${t1:-0} - t0)) ms to reach the policy (bound $bound ms)"
wait_for 15 log_has "[pool] desired 3 from per-two" && ok "the scaler is told 3" || not_ok "pool: $(grep '\[pool\]' "$log" | tail -2)"
wait_for 15 workers_are "$W/a" 3 && ok "3 workers run" || not_ok "workers: $(live_workers "$W/a")"
wait_for 15 workers_are "$W/b" 3 || not_ok "pool-fb workers: $(live_workers "$W/b")"
cli lpop jobs 2 >/dev/null
wait_for 5 log_has "[per-two] desired 2: jobs=4 per_instance=2 -> 2" && ok "LPOP of 2: desired 2" \
  || not_ok "LPOP: $(grep per-two "$log" | tail -2)"
wait_for 15 workers_are "$W/a" 2 && ok "down to 2 workers" || not_ok "workers: $(live_workers "$W/a")"
wait_for 15 workers_are "$W/b" 2 || not_ok "pool-fb workers: $(live_workers "$W/b")"

# Several keys: one reading each, labelled queue=<key> (the policy names a reading by its label).
wait_for 5 log_has ": build=3 per_instance=1 -> 3" \
  && wait_for 5 log_has ": deploy=1 per_instance=1 -> 1" \
  && ok "keys [build, deploy] (ACL user, db 2): one reading each, labelled by key" \
  || not_ok "several keys: $(grep per-stage "$log" | head -4)"
wait_for 5 log_has "[deploy-only] desired 1: deploy=1 per_instance=1 -> 1" \
  && ! grep -F "[deploy-only]" "$log" | grep -qF "build=" \
  && ok "match: { queue: deploy } sees only that key's readings (the label is queue=<key>)" \
  || not_ok "match on queue: $(grep deploy-only "$log" | head -3)"

# redis-server killed: error lines, error events (the policies count them), hold and fallback.
kill_line=$(wc -l <"$log")
stop_redis KILL
wait_for 10 log_has "[jobs] read failed: " && ok "killed: the trigger logs the failure" \
  || not_ok "no failure line: $(grep '\[jobs\]' "$log" | tail -3)"
grep -F "[jobs] read failed: " "$log" | grep -qE "cannot connect to redis://127.0.0.1:$PORT/0: connection refused|the server closed the connection|connection reset by peer" \
  && ok "the failure says why: $(grep -F '[jobs] read failed: ' "$log" | head -1 | sed 's/.*read failed: //')" \
  || not_ok "failure line: $(grep -F '[jobs] read failed: ' "$log" | head -2)"
wait_for 10 log_has "[per-two] jobs: 3 failures -> hold 2" && ok "the policy holds 2 after 3 failures" \
  || not_ok "no hold: $(grep per-two "$log" | tail -3)"
wait_for 10 log_has "[per-two-fb] desired 1: jobs-fb: 2 failures -> fallback 1" \
  && ok "the other policy goes to its fallback 1 after 2 failures" || not_ok "no fallback: $(grep per-two-fb "$log" | tail -3)"
wait_for 15 workers_are "$W/b" 1 && ok "fallback: 1 worker" || not_ok "pool-fb: $(live_workers "$W/b")"
sleep $((2 * SLOW))
workers_are "$W/a" 2 && ok "hold: still 2 workers after 2 s without redis (never 0)" \
  || not_ok "hold: $(live_workers "$W/a") workers"
tail -n "+$((kill_line + 1))" "$log" | grep -F "[per-two] desired" >"$W/while-down" \
  && not_ok "a decision while redis was down: $(head -1 "$W/while-down")" || ok "no decision while redis is down"
kill -0 "$daemon" 2>/dev/null && ok "the daemon runs on" || not_ok "the daemon exited"
n_fail=$(grep -cF "[jobs] read failed: " "$log")
[ "$n_fail" -le 3 ] && ok "the failure is logged once per change ($n_fail line(s))" || not_ok "$n_fail failure lines"

# Back on the same port (empty: nothing was saved): reading resumes.
start_redis
cli rpush jobs k1 k2 k3 k4 k5 k6 k7 k8 k9 k10 >/dev/null
wait_for 15 log_has "[jobs] reading again after" && ok "back: $(grep -F '[jobs] reading again after' "$log" | head -1 | sed 's/.*\] //')" \
  || not_ok "no recovery line: $(grep '\[jobs\]' "$log" | tail -2)"
wait_for 10 log_has "[per-two] desired 5: jobs=10 per_instance=2 -> 5" && ok "back: 10 jobs decide 5" \
  || not_ok "after the restart: $(grep per-two "$log" | tail -3)"
wait_for 10 log_has "[per-two-fb] desired 5: jobs=10 per_instance=2 -> 5" && ok "back: the fallback ends" \
  || not_ok "after the restart (fallback): $(grep per-two-fb "$log" | tail -3)"
wait_for 15 workers_are "$W/a" 5 && ok "5 workers" || not_ok "workers: $(live_workers "$W/a")"
wait_for 15 workers_are "$W/b" 5 || not_ok "pool-fb workers: $(live_workers "$W/b")"
stop_daemon TERM
[ $rc = 0 ] && ok "main: SIGTERM exit 0" || not_ok "main: exit status $rc"
wait_for 5 workers_are "$W/a" 0 || not_ok "workers left: $(live_workers "$W/a")"
grep -E " (error|warn) " "$log" | grep -vE "\[(jobs|jobs-fb|stages)\] read failed|\[per-two(-fb)?\]" >"$W/unexpected" \
  && not_ok "unexpected warnings: $(head -3 "$W/unexpected")" || ok "no other warning"

# ---- 2. kinds, and errors a user makes, on one --dry-run daemon -------------------------------
cli zadd delayed 1 a 2 b >/dev/null
cli xadd events '*' n 1 >/dev/null; cli xadd events '*' n 2 >/dev/null; cli xadd events '*' n 3 >/dev/null
cli xadd events '*' n 4 >/dev/null; cli xadd events '*' n 5 >/dev/null
cli xgroup create events workers 0 >/dev/null
cli xreadgroup group workers c1 count 2 streams events '>' >/dev/null
cli set a-string x >/dev/null
cli -n 2 rpush sockq s1 s2 s3 s4 >/dev/null

# A double that is not Redis: odd replies for odd keys.
cat >"$W/fake_redis.py" <<'PY'
# A TEST DOUBLE, not Redis: answers each command with a reply chosen by the key it names, to
# send what a real server never does. Loopback only; stopped by pid.
import socket, sys, threading
def serve(c):
    data = b""
    try:
        while True:
            chunk = c.recv(65536)
            if not chunk:
                return
            data += chunk
            if b"garbage" in data:
                c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n"); data = b""
            elif b"extra" in data:
                c.sendall(b":1\r\n:2\r\n"); data = b""
            elif b"huge" in data:
                c.sendall(b"$2000000\r\n" + b"x" * 2000000 + b"\r\n"); data = b""
            elif b"truncated" in data:
                c.sendall(b"*4294967296\r\n:1\r\n"); data = b""
            elif b"silent" in data:
                data = b""
    except OSError:
        pass
    finally:
        c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
/usr/bin/python3 "$W/fake_redis.py" "$FAKE_PORT" 2>"$W/fake.err" &
fake_pid=$!
fake_up() { (exec 3<>"/dev/tcp/127.0.0.1/$FAKE_PORT") 2>/dev/null; }
wait_for 10 fake_up || not_ok "the double did not start: $(cat "$W/fake.err")"

U="redis://:$PASS@127.0.0.1:$PORT"
F="redis://127.0.0.1:$FAKE_PORT"
cat >"$W/checks.yaml" <<YAML
admin: {listen: off}
triggers:
  - { id: z, type: redis, url: "$U", key: delayed, kind: zset, every: 200ms }
  - { id: s, type: redis, url: "$U", key: events, kind: stream, every: 200ms }
  - { id: lag, type: redis, url: "$U", key: events, kind: stream, group: workers, every: 200ms }
  - { id: pend, type: redis, url: "$U", key: events, kind: stream, group: workers, measure: pending, every: 200ms }
  - { id: sock, type: redis, url: "unix:$SOCK?db=2", password: "$PASS", key: sockq, every: 200ms }
  - { id: badpass, type: redis, url: "redis://:wrong@127.0.0.1:$PORT", key: jobs, every: 200ms, backoff_max: 1s }
  - { id: nopass, type: redis, url: "redis://127.0.0.1:$PORT", key: jobs, every: 200ms, backoff_max: 1s }
  - { id: wrongtype, type: redis, url: "$U", keys: [jobs, a-string], every: 200ms, backoff_max: 1s }
  - { id: nogroup, type: redis, url: "$U", key: events, kind: stream, group: nobody, every: 200ms, backoff_max: 1s }
  - { id: badselect, type: redis, url: "$U/99", key: jobs, every: 200ms, backoff_max: 1s }
  - { id: garbage, type: redis, url: "$F", key: garbage, every: 200ms, backoff_max: 1s }
  - { id: extra, type: redis, url: "$F", key: extra, every: 200ms, backoff_max: 1s }
  - { id: huge, type: redis, url: "$F", key: huge, every: 200ms, backoff_max: 1s }
  - { id: truncated, type: redis, url: "$F", key: truncated, every: 200ms, backoff_max: 1s }
  - { id: silent, type: redis, url: "$F", key: silent, every: 200ms, timeout: 300ms, backoff_max: 1s }
connectors:
YAML
for t in z s lag pend sock badpass nopass wrongtype nogroup badselect garbage extra huge truncated silent; do
  echo "  - { id: c-$t, type: target, from: $t, to: sink-$t, per_instance: 1, stabilize_down: 0s }" >>"$W/checks.yaml"
done
echo "scalers:" >>"$W/checks.yaml"
for t in z s lag pend sock badpass nopass wrongtype nogroup badselect garbage extra huge truncated silent; do
  echo "  - { id: sink-$t, type: process, command: [sleep, \"600\"], min: 0, max: 10 }" >>"$W/checks.yaml"
done
start_daemon checks "$W/checks.yaml" --dry-run
wait_for 15 log_has "[c-z] desired 2: delayed=2 per_instance=1 -> 2" && ok "zset: ZCARD 2" || not_ok "zset: $(grep c-z "$log" | head -2)"
wait_for 5 log_has "[c-s] desired 5: events=5 per_instance=1 -> 5" && ok "stream: XLEN 5" || not_ok "stream: $(grep c-s "$log" | head -2)"
wait_for 5 log_has "[c-lag] desired 3: events=3 per_instance=1 -> 3" && ok "stream group: lag 3 (5 added, 2 delivered)" \
  || not_ok "lag: $(grep c-lag "$log" | head -2)"
wait_for 5 log_has "[c-pend] desired 2: events=2 per_instance=1 -> 2" && ok "stream group: pending 2" \
  || not_ok "pending: $(grep c-pend "$log" | head -2)"
wait_for 5 log_has "[c-sock] desired 4: sockq=4 per_instance=1 -> 4" && ok "unix socket, ?db=2, password option: LLEN 4" \
  || not_ok "unix socket: $(grep -E 'c-sock|\[sock\]' "$log" | head -2)"
cli xack events workers "$(cli xrange events - + count 1 | head -1)" >/dev/null
wait_for 5 log_has "[c-pend] desired 1: events=1 per_instance=1 -> 1" && ok "XACK: pending 1" \
  || not_ok "after XACK: $(grep c-pend "$log" | tail -2)"

expect_line() { # expect_line WHAT TEXT
  wait_for 10 log_has "$2" && ok "$1: $2" || not_ok "$1: no line '$2': $(grep -F "$(echo "$2" | cut -d' ' -f1)" "$log" | head -2)"
}
expect_line "wrong password" "[badpass] read failed: AUTH failed: WRONGPASS invalid username-password pair or user is disabled. (1 in a row"
expect_line "no password" "[nopass] read failed: redis://127.0.0.1:$PORT/0 wants a password (NOAUTH Authentication required.): give it in url (redis://:PASSWORD@host) or password (1 in a row"
expect_line "WRONGTYPE" "[wrongtype] read failed: key 'a-string' (LLEN): WRONGTYPE Operation against a key holding the wrong kind of value (1 in a row"
expect_line "missing group" "[nogroup] read failed: key 'events' (XINFO GROUPS): the stream has no consumer group 'nobody' (1 in a row"
expect_line "database out of range" "[badselect] read failed: SELECT 99 failed: ERR DB index is out of range (1 in a row"
expect_line "not RESP" "[garbage] read failed: redis://127.0.0.1:$FAKE_PORT/0: protocol error: Protocol error, got \"H\" as reply type byte (1 in a row"
expect_line "an unsolicited reply" "[extra] read failed: redis://127.0.0.1:$FAKE_PORT/0 sent more replies than asked for (1 in a row"
expect_line "a reply over 1 MiB" "[huge] read failed: redis://127.0.0.1:$FAKE_PORT/0: replies larger than 1048576 bytes (1 in a row"
expect_line "an element count an int cannot hold" "[truncated] read failed: redis://127.0.0.1:$FAKE_PORT/0: protocol error: Multi-bulk length out of range (1 in a row"
expect_line "a server that never answers" "[silent] read failed: read timed out (timeout 300ms, no answer after "
log_has "[c-wrongtype] desired" && not_ok "a read with a WRONGTYPE key published readings" \
  || ok "a read with one bad key publishes nothing (all or nothing)"
# A reload that changes only `every` is taken in place; the trigger reads on.
sed -i 's/key: delayed, kind: zset, every: 200ms/key: delayed, kind: zset, every: 300ms/' "$W/checks.yaml"
kill -HUP "$daemon"
wait_for 10 log_has "(44 kept, 1 reconfigured, 0 started, 0 stopped)" && ok "reload: a new every is taken in place" \
  || not_ok "reload: $(grep 'component(s) running' "$log" | tail -1)"
cli zadd delayed 3 c >/dev/null
wait_for 5 log_has "[c-z] desired 3: delayed=3 per_instance=1 -> 3" && ok "reload: the reconfigured trigger reads on" \
  || not_ok "after the reload: $(grep c-z "$log" | tail -2)"
kill -0 "$daemon" 2>/dev/null && ok "checks: the daemon runs on" || not_ok "checks: the daemon exited"
stop_daemon TERM
[ $rc = 0 ] && ok "checks: SIGTERM exit 0" || not_ok "checks: exit status $rc"
grep -F "password" "$log" | grep -qF -- "$PASS" && not_ok "the password reached the log" || ok "the password never reaches the log"

echo "$fails failure(s)"
[ $fails = 0 ]
