#!/bin/bash
# The sqs trigger end to end, through the real daemon and its HTTP client, against the SQS and
# instance-metadata doubles (tests/aws/sqs_double.py, tests/aws/imds_double.py: no AWS here; the
# SQS double recomputes every request's SigV4 signature with botocore). Each run's daemon drives
# a process scaler through a `target` connector:
#   1. credentials from the environment: a changed queue count reaches the scaler within one
#      `every` (latency printed); include: not_visible adds; a missing queue gives AWS's
#      NonExistentQueue; garbage, truncated and oversized replies, a 500, throttling, a dropped
#      connection and a reply slower than `timeout` give clear
#      errors without a crash; the double killed gives errors, the count held (not 0) and then
#      the policy's fallback; reading resumes when it is back; no secret in the log;
#   2. a wrong secret: SignatureDoesNotMatch; an unknown key: InvalidClientTokenId;
#   3. credentials from a credentials file, by profile;
#   4. credentials from the metadata double (IMDSv2): keys that live 16 s are fetched again
#      before they expire (the double counts its fetches; a failed refresh keeps the old keys and
#      is retried with back-off), the new keys' signatures verify, a
#      count changed after the refresh still reaches the scaler; no secret or token in the log.
# Every daemon stops on SIGTERM with exit 0.
#
#   tests/test_sqs.sh BUILD/scalebus SOURCE_DIR
#
# SB_E2E_WRAP, when set, prefixes `scalebus run` (e.g. valgrind --error-exitcode=99); waits are
# then bounded 10 times longer (SLOW). On a failure the temporary folder, with every log, is kept.
set -u
SB=$1
SRC=$2
WRAP=${SB_E2E_WRAP:-}
SLOW=${SLOW:-1}
[ -n "$WRAP" ] && SLOW=10
PY=/usr/bin/python3
$PY -c 'import botocore' 2>/dev/null || { echo "skipped: python3-botocore is not installed"; exit 77; }
W=$(mktemp -d /tmp/sb-sqs.XXXXXX)
fails=0
daemon="" sqs_pid="" imds_pid=""
. "$(dirname "$0")/lib.sh"

cleanup() {
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
  stop_pid "$sqs_pid"
  stop_pid "$imds_pid"
  for f in "$W"/pool/worker.*; do
    [ -f "$f" ] && kill -KILL "$(awk '{print $NF}' "$f")" 2>/dev/null
  done
  keep_or_remove "$W"
}
trap cleanup EXIT
trap 'fails=$((fails + 1)); exit 1' INT TERM
QP=$(free_port)
IP=$(free_port)
Q="http://127.0.0.1:$QP"
mkdir -p "$W/pool" "$W/home"

# The keys the SQS double accepts: the environment's, the file's; the metadata double adds its own.
ENV_ID=AKIAENVTEST00001 ENV_SECRET=envSecret/Xy12+never-logged
FILE_ID=AKIAFILETEST0002 FILE_SECRET=fileSecret/Qz34+never-logged
printf '%s %s\n%s %s\n' "$ENV_ID" "$ENV_SECRET" "$FILE_ID" "$FILE_SECRET" >"$W/keys"
cat >"$W/credentials" <<EOF
[default]
aws_access_key_id = AKIAUNKNOWNDEFLT
aws_secret_access_key = not-this-one

[ci]
aws_access_key_id = $FILE_ID
aws_secret_access_key = $FILE_SECRET
EOF

start_sqs() { # start_sqs COUNT: the double, with queue jobs holding COUNT messages
  $PY "$SRC/tests/aws/sqs_double.py" --port "$QP" --keys "$W/keys" --queue "jobs=$1" \
    >>"$W/sqs-double.log" 2>&1 &
  sqs_pid=$!
  wait_for 10 control stats >/dev/null || not_ok "the SQS double does not answer"
}
control() { curl -s --max-time 2 "$Q/_control/$1"; }
set_count() { control "queue?name=jobs&visible=$1&not_visible=${2:-0}&delayed=0" >/dev/null; }
set_mode() { control "mode?mode=$1" >/dev/null; }
$PY "$SRC/tests/aws/imds_double.py" --port "$IP" --keys "$W/keys" --lifetime 16 \
  >"$W/imds-double.log" 2>&1 &
imds_pid=$!
start_sqs 3

pipeline() { # pipeline FILE EXTRA-TRIGGER-OPTIONS [MORE-TRIGGERS [MORE-CONNECTORS [MORE-SCALERS]]]
  cat >"$1" <<EOF
triggers:
  - { id: sqs-jobs, type: sqs, queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
      endpoint: "$Q", every: 200ms, timeout: 2s, backoff_max: 1s $2 }
${3:-}
connectors:
  - { id: per-one, type: target, from: sqs-jobs, to: pool, per_instance: 1, stabilize_down: 0s,
      fail_after: 3, fallback: 2 }
${4:-}
scalers:
  - id: pool
    type: process
    command: ["sh", "$SRC/tests/e2e/worker.sh"]
    env: { E2E_DIR: "$W/pool" }
    max: 8
    stop_grace: 1s
${5:-}
EOF
}
log_has() { grep -qF -- "$1" "$log"; }
mark() { mark=$(wc -l <"$log"); }   # log lines before this point are not looked at by since_has
since_has() { tail -n +$((mark + 1)) "$log" | grep -qF -- "$1"; }
since_last() { tail -n +$((mark + 1)) "$log" | grep -F -- "$1" | tail -1; }
live_workers() {
  local n=0
  for f in "$W"/pool/worker.*; do
    [ -f "$f" ] || continue
    local pid=$(awk '{print $NF}' "$f")
    [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q '^sleep 600' && n=$((n + 1))
  done
  echo $n
}
workers_are() { [ "$(live_workers)" = "$1" ]; }
# start_daemon NAME FILE ENV...: `scalebus run FILE` with only these AWS settings, log in NAME.log.
start_daemon() {
  log=$W/$1.log
  local file=$2; shift 2
  env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE \
    HOME="$W/home" AWS_SHARED_CREDENTIALS_FILE="$W/none" "$@" \
    $WRAP "$SB" run "$file" >"$log" 2>&1 &
  daemon=$!
}
stop_daemon() { # SIGTERM, bounded; rc = exit status (255: still running, SIGKILLed)
  kill -TERM "$daemon"
  for _ in $(seq $((300 * SLOW))); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$daemon" 2>/dev/null; then
    kill -KILL "$daemon"; wait "$daemon" 2>/dev/null; rc=255
  else
    wait "$daemon"; rc=$?
  fi
  daemon=""
  wait_for 10 workers_are 0 || not_ok "workers left after the stop: $(live_workers)"
  rm -f "$W"/pool/worker.*
}
# The first decision line for N after the count was set at t0: its latency in ms, printed.
decided_within() { # decided_within N T0 LIMIT_MS WHAT
  if wait_for 10 log_has "[per-one] desired $1: jobs=$1 per_instance=1 -> $1"; then
    local ms=$(($(now_ms) - $2))
    if [ "$ms" -le $(($3 * SLOW)) ]; then ok "$4: decided $1 in ${ms} ms"; else not_ok "$4: decided $1 only after ${ms} ms"; fi
  else
    not_ok "$4: no decision for $1: $(grep -F '[per-one]' "$log" | tail -2)"
  fi
}
no_secret_in_log() { # no_secret_in_log WHAT: no secret or session token of $W/keys in the log
  local leaked=""
  while read -r id secret token; do
    grep -qF -- "$secret" "$log" && leaked="$leaked secret-of-$id"
    [ -n "${token:-}" ] && grep -qF -- "$token" "$log" && leaked="$leaked token-of-$id"
  done <"$W/keys"
  [ -z "$leaked" ] && ok "$1: no secret or session token in the log" || not_ok "$1: leaked:$leaked"
}

# ---- 1. the environment's keys ---------------------------------------------------------------------
# Beside the main pipeline: a missing queue, and the sum of three counts seen through a probe
# policy whose decisions (always 0: activate_above) log the reading.
MORE_T='  - { id: sqs-ghost, type: sqs, queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/ghost", endpoint: "'$Q'", every: 500ms, backoff_max: 1s }
  - { id: sqs-sum, type: sqs, queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/jobs", endpoint: "'$Q'", include: [not_visible, delayed], every: 300ms, backoff_max: 1s }'
MORE_C='  - { id: sum-probe, type: target, from: sqs-sum, to: probe, per_instance: 100000, activate_above: 1000000000, stabilize_down: 0s }'
MORE_S='  - { id: probe, type: process, command: ["sh", "-c", "exec sleep 600"], max: 1 }'
pipeline "$W/env.yaml" "" "$MORE_T" "$MORE_C" "$MORE_S"
"$SB" check "$W/env.yaml" >"$W/check.out" 2>&1 && ok "scalebus check accepts the pipeline" \
  || not_ok "check: $(cat "$W/check.out")"
start_daemon env "$W/env.yaml" AWS_ACCESS_KEY_ID="$ENV_ID" AWS_SECRET_ACCESS_KEY="$ENV_SECRET"
wait_for 10 log_has "credentials from the environment (key ...0001)" \
  && ok "env: credentials from the environment, only the key's last 4 characters logged" \
  || not_ok "env: no credentials line: $(grep -i credentials "$log" | head -2)"
wait_for 15 workers_are 3 && ok "env: 3 queued messages -> 3 workers" || not_ok "env: workers $(live_workers)"
t0=$(now_ms); set_count 5
decided_within 5 "$t0" 1000 "env: a changed count (3 -> 5) reaches the policy within one every (200ms)"
wait_for 15 workers_are 5 && ok "env: 5 workers" || not_ok "env: workers $(live_workers)"
set_count 5 4
wait_for 10 log_has "[sum-probe] desired 0: jobs=9" && ok "env: include: not_visible, delayed adds 5 + 4 = 9" \
  || not_ok "env: include: $(grep -F '[sum-probe]' "$log" | tail -1)"
set_count 5 0
wait_for 10 log_has "GetQueueAttributes: AWS.SimpleQueueService.NonExistentQueue: The specified queue does not exist for this wsdl version. (HTTP 400)" \
  && ok "env: a missing queue: AWS's code and message" || not_ok "env: ghost: $(grep -F '[sqs-ghost]' "$log" | tail -1)"

# Replies that are not SQS's: each a clear error; the count is held (fail_after 3 not reached
# between modes, or the fallback once reached: never 0).
check_mode() { # check_mode MODE EXPECTED-TEXT WHAT
  mark; set_mode "$1"
  wait_for 10 since_has "$2" && ok "env: $3: $(since_last "$2" | sed 's/.*read failed: //')" \
    || not_ok "env: $3: $(since_last '[sqs-jobs]')"
  kill -0 "$daemon" 2>/dev/null || not_ok "env: the daemon died on $1"
}
check_mode garbage "GetQueueAttributes: a malformed reply (HTTP 200, 53 bytes): line 1: <html> is neither a GetQueueAttributesResponse nor an ErrorResponse" "garbage"
check_mode truncated "bytes): line 1: an unterminated tag" "a truncated reply"
check_mode oversized "GetQueueAttributes: POST $Q/123456789012/jobs: reply body over the limit of 65536 bytes" "an oversized reply"
check_mode http500 "GetQueueAttributes: InternalError: We encountered an internal error. Please try again. (HTTP 500)" "a 500"
check_mode throttle "GetQueueAttributes: Throttling: Rate exceeded (HTTP 400; backing off)" "throttling"
check_mode reset "GetQueueAttributes: POST $Q/123456789012/jobs: " "the connection dropped without a reply"
check_mode "slow&delay=3" "GetQueueAttributes: POST $Q/123456789012/jobs: Operation timed out after" "a reply slower than timeout (2s)"
[ "$(live_workers)" -gt 0 ] && ok "env: after the bad replies the pool still runs $(live_workers) workers (never 0)" \
  || not_ok "env: the pool went to 0"
mark; set_mode normal
wait_for 10 since_has "[sqs-jobs] reading again after" && ok "env: reading resumes after the bad replies" || not_ok "env: no recovery line"
wait_for 15 workers_are 5 || not_ok "env: back to 5: $(live_workers)"

# The double goes away: errors, the count held, then the fallback; back: reading resumes.
mark; stop_pid "$sqs_pid"; sqs_pid=""
wait_for 10 since_has "GetQueueAttributes: POST $Q/123456789012/jobs: " \
  && ok "env: the double gone: $(since_last "[sqs-jobs]" | sed 's/.*read failed: //')" \
  || not_ok "env: no error line once the double is gone"
wait_for 10 since_has "sqs-jobs: 3 failures -> fallback 2" && ok "env: after 3 failures the policy moves to its fallback" \
  || not_ok "env: no fallback: $(grep -F '[per-one]' "$log" | tail -2)"
wait_for 15 workers_are 2 && ok "env: fallback: 2 workers (not 0)" || not_ok "env: workers $(live_workers)"
start_sqs 6
wait_for 10 log_has "[per-one] desired 6: jobs=6" && ok "env: the double back with 6 messages: reading resumes" \
  || not_ok "env: no reading after the double came back: $(grep -F '[per-one]' "$log" | tail -2)"
wait_for 15 workers_are 6 && ok "env: 6 workers" || not_ok "env: workers $(live_workers)"
kill -0 "$daemon" 2>/dev/null && ok "env: the daemon ran throughout" || not_ok "env: the daemon is gone"
stop_daemon
[ $rc = 0 ] && ok "env: SIGTERM exit 0" || not_ok "env: exit status $rc"
no_secret_in_log env

# ---- 2. wrong keys ---------------------------------------------------------------------------------
set_count 4
pipeline "$W/plain.yaml" ""
start_daemon wrong-secret "$W/plain.yaml" AWS_ACCESS_KEY_ID="$ENV_ID" AWS_SECRET_ACCESS_KEY=wrong-secret-value
wait_for 10 log_has "GetQueueAttributes: SignatureDoesNotMatch: The request signature we calculated does not match the signature you provided." \
  && ok "a wrong secret: SignatureDoesNotMatch with AWS's message" || not_ok "wrong secret: $(grep -F '[sqs-jobs]' "$log" | tail -1)"
log_has "jobs=4 per_instance" && not_ok "wrong secret: a reading arrived anyway" || ok "a wrong secret: no reading"
stop_daemon
[ $rc = 0 ] && ok "wrong secret: SIGTERM exit 0" || not_ok "wrong secret: exit status $rc"
grep -qF wrong-secret-value "$log" && not_ok "wrong secret: the secret is in the log" || ok "wrong secret: not in the log"
start_daemon unknown-key "$W/plain.yaml" AWS_ACCESS_KEY_ID=AKIANOBODYKNOWS1 AWS_SECRET_ACCESS_KEY=x
wait_for 10 log_has "GetQueueAttributes: InvalidClientTokenId: The security token included in the request is invalid. (HTTP 403)" \
  && ok "an unknown key: InvalidClientTokenId" || not_ok "unknown key: $(grep -F '[sqs-jobs]' "$log" | tail -1)"
stop_daemon
[ $rc = 0 ] && ok "unknown key: SIGTERM exit 0" || not_ok "unknown key: exit status $rc"

# ---- 3. the credentials file, by profile -------------------------------------------------------------
pipeline "$W/file.yaml" ", profile: ci"
start_daemon file "$W/file.yaml" AWS_SHARED_CREDENTIALS_FILE="$W/credentials"
wait_for 10 log_has "credentials from $W/credentials, profile ci (key ...0002)" \
  && ok "file: credentials from the file's [ci] profile" || not_ok "file: $(grep -i credentials "$log" | head -2)"
wait_for 15 workers_are 4 && ok "file: 4 workers" || not_ok "file: workers $(live_workers)"
stop_daemon
[ $rc = 0 ] && ok "file: SIGTERM exit 0" || not_ok "file: exit status $rc"
no_secret_in_log file
# Without the profile, [default] is used: its key is unknown to the double.
pipeline "$W/file-default.yaml" ""
start_daemon file-default "$W/file-default.yaml" AWS_SHARED_CREDENTIALS_FILE="$W/credentials"
wait_for 10 log_has "profile default (key ...EFLT)" && wait_for 10 log_has "InvalidClientTokenId" \
  && ok "file: without a profile, [default] (a key AWS does not know: InvalidClientTokenId)" \
  || not_ok "file default: $(grep -F '[sqs-jobs]' "$log" | tail -2)"
stop_daemon
[ $rc = 0 ] || not_ok "file default: exit status $rc"

# ---- 4. the instance metadata service: fetched, refreshed before expiry ----------------------------------
imds_stat() { curl -s --max-time 2 "http://127.0.0.1:$IP/_control/stats" | $PY -c "import json,sys;print(json.load(sys.stdin)['$1'])"; }
verified() { curl -s --max-time 2 "$Q/_control/stats" | grep -qF "\"$1\""; }
pipeline "$W/imds.yaml" ", metadata_url: \"http://127.0.0.1:$IP\""
start_daemon imds "$W/imds.yaml"
wait_for 10 log_has "credentials from the instance metadata service (role scalebus-test), key ...0001, expire " \
  && ok "imds: credentials from the metadata double (IMDSv2 token, role, keys)" || not_ok "imds: $(grep -i credentials "$log" | head -3)"
wait_for 15 workers_are 4 && ok "imds: 4 workers, signed with the role's keys" || not_ok "imds: workers $(live_workers)"
verified ASIAIMDSDOUBLE000001 && ok "imds: the SQS double verified the first keys (with their session token)" \
  || not_ok "imds: first keys not verified"
[ "$(imds_stat unauthorized)" = 0 ] && ok "imds: every metadata GET carried the session token" || not_ok "imds: $(imds_stat unauthorized) unauthorized GETs"
# 16 s keys are fetched again half-way, after ~8 s. The first refresh fails (the double answers
# 500): the old keys stay in use and the refresh is retried with back-off; the double back, the
# retry gets new keys before the old ones expire, and no read ever failed.
curl -s --max-time 2 "http://127.0.0.1:$IP/_control/mode?mode=down" >/dev/null
wait_for 14 log_has "credentials: refresh failed (instance metadata service: PUT http://127.0.0.1:$IP/latest/api/token: HTTP 500: Internal Server Error); the current ones stay valid until " \
  && ok "imds: a failed refresh keeps the current keys: $(grep -F 'refresh failed' "$log" | head -1 | sed 's/.*; the current/the current/')" \
  || not_ok "imds: no failed refresh: $(grep -i credentials "$log" | tail -2)"
curl -s --max-time 2 "http://127.0.0.1:$IP/_control/mode?mode=normal" >/dev/null
wait_for 8 log_has "key ...0002, expire" && ok "imds: the retried refresh got new keys before the old ones expired" \
  || not_ok "imds: no refresh: $(grep -i credentials "$log" | tail -2)"
log_has "[sqs-jobs] read failed" && not_ok "imds: a read failed: $(grep -F 'read failed' "$log" | head -1)" \
  || ok "imds: no read failed across the refreshes"
fetches=$(imds_stat credential_fetches)
[ "$fetches" -ge 2 ] && ok "imds: the double counted $fetches credential fetches" || not_ok "imds: $fetches fetches"
t0=$(now_ms); set_count 7
decided_within 7 "$t0" 1000 "imds: after the refresh, a changed count (4 -> 7)"
verified ASIAIMDSDOUBLE000002 && ok "imds: the new keys' signatures verify" || not_ok "imds: the new keys never verified"
log_has "SignatureDoesNotMatch" && not_ok "imds: a signature did not match" || ok "imds: no signature ever failed"
stop_daemon
[ $rc = 0 ] && ok "imds: SIGTERM exit 0" || not_ok "imds: exit status $rc"
no_secret_in_log imds

echo "$fails failure(s)"
[ $fails = 0 ]
