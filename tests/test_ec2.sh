#!/bin/bash
# The ec2 scaler end to end, through the real daemon and its HTTP client, against the EC2 and
# Auto Scaling double (tests/aws/ec2_double.py: no AWS here; it recomputes every request's SigV4
# signature with botocore) and the instance-metadata double (tests/aws/imds_double.py). A
# pipeline drives each scaler: an http_json trigger reads the desired count from a file served by
# a local python3 HTTP server, and a direct connector hands it on (reconcile_every 1s).
#   asg (keys from the environment): scale up and down (SetDesiredCapacity); busy
#     (ScalingActivityInProgress, throttling) retried and not counted as failures; the double gone
#     and back; garbage replies; the desired capacity changed behind its back, repaired; a count
#     outside MinSize/MaxSize, an error naming both, never sent; a missing group; adoption on
#     restart (3 running, min 1: stays 3); --dry-run makes no changing call.
#   instances (keys from the metadata double): scale up (RunInstances with the tag and a unique
#     ClientToken) and down newest first (TerminateInstances); a lost RunInstances reply retried
#     with the same ClientToken makes no second instance; an instance terminated, one stopped and
#     one tagged by hand, each repaired by reconcile; untagged instances never terminated, even
#     when DescribeInstances ignores its filter; throttling, the double gone and back, garbage;
#     adoption on restart; --dry-run; the keys expired (ExpiredToken), then fetched again.
#   No secret or session token in any log; every daemon exits 0 on SIGTERM.
#
#   tests/test_ec2.sh BUILD/scalebus SOURCE_DIR
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
command -v curl >/dev/null || { echo "skipped: no curl"; exit 77; }
W=$(mktemp -d /tmp/sb-ec2.XXXXXX)
fails=0
daemon="" ec2_pid="" imds_pid="" server_pid=""
. "$(dirname "$0")/lib.sh"

cleanup() {
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
  stop_pid "$ec2_pid"
  stop_pid "$imds_pid"
  stop_pid "$server_pid"
  keep_or_remove "$W"
}
trap cleanup EXIT
trap 'fails=$((fails + 1)); exit 1' INT TERM

EP=$(free_port)
IP=$(free_port)
SP=$(free_port)
E="http://127.0.0.1:$EP"
S="http://127.0.0.1:$SP"
mkdir -p "$W/www" "$W/home"
ENV_ID=AKIAENVTEST00001 ENV_SECRET=envSecret/Xy12+never-logged
printf '%s %s\n' "$ENV_ID" "$ENV_SECRET" >"$W/keys"

$PY "$SRC/tests/aws/ec2_double.py" --port "$EP" --keys "$W/keys" --ready 0.5 --activity 0.3 \
  --template web-template >"$W/ec2-double.log" 2>&1 &
ec2_pid=$!
$PY "$SRC/tests/aws/imds_double.py" --port "$IP" --keys "$W/keys" --lifetime 3600 \
  >"$W/imds-double.log" 2>&1 &
imds_pid=$!
$PY -m http.server "$SP" --bind 127.0.0.1 --directory "$W/www" >"$W/server.log" 2>&1 &
server_pid=$!
want() { printf '{"n": %s}\n' "$2" >"$W/www/$1.tmp" && mv "$W/www/$1.tmp" "$W/www/$1.json"; }
control() { curl -s --max-time 3 "$E/_control/$1"; }
want web 1
want fleet 0
wait_for 10 control state >/dev/null || not_ok "the EC2 double does not answer"
wait_for 10 curl -sf -o /dev/null --max-time 1 "$S/web.json" || not_ok "the count server does not answer"
control "group?name=web&min=1&max=10&desired=1" >/dev/null

# q EXPR: a Python expression over the double's state (st) and record (rec), printed.
q() {
  { control state; control record; } | $PY -c "
import json, sys
st = json.loads(sys.stdin.readline()); rec = json.loads(sys.stdin.readline())
inst = st['instances']; groups = st['groups']
def tagged(tag='fleet', states=('pending', 'running')):
    return sorted(i for i, v in inst.items() if v['tags'].get('scalebus:scaler') == tag and v['state'] in states)
def calls(action, since=0):
    return [r for r in rec[since:] if r['action'] == action]
def changing(since=0):
    return [r for r in rec[since:] if r['action'] in ('SetDesiredCapacity', 'RunInstances', 'TerminateInstances')]
print($1)"
}
is() { [ "$(q "$1")" = "$2" ]; }
rec_len() { q "len(rec)"; }

log=""
log_has() { grep -qF -- "$1" "$log"; }
mark() { mark=$(wc -l <"$log"); rmark=$(rec_len); }
since_has() { tail -n +$((mark + 1)) "$log" | grep -qF -- "$1"; }
since_last() { tail -n +$((mark + 1)) "$log" | grep -F -- "$1" | tail -1 | sed 's/^[^]]*] //'; }
expect() { # expect TEXT WHAT: a line holding TEXT since the mark, within 15 s
  if wait_for 15 since_has "$1"; then ok "$2: $(since_last "$1")"; else
    not_ok "$2: no line with '$1' (last: $(tail -n +$((mark + 1)) "$log" | tail -2 | tr '\n' ' '))"
  fi
}
not_since() { # not_since TEXT WHAT
  if since_has "$1"; then not_ok "$2: $(since_last "$1")"; else ok "$2"; fi
}
start_daemon() { # start_daemon NAME FILE [--dry-run] (AWS settings from the caller's env)
  log=$W/$1.log
  : >"$log"
  mark=0
  rmark=$(rec_len)
  local file=$2; shift 2
  env -u AWS_PROFILE HOME="$W/home" AWS_SHARED_CREDENTIALS_FILE="$W/none" \
    $WRAP "$SB" run "$file" "$@" >>"$log" 2>&1 &
  daemon=$!
}
stop_daemon() { # SIGTERM; asserts exit 0
  kill -TERM "$daemon"
  for _ in $(seq $((300 * SLOW))); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
  local rc
  if kill -0 "$daemon" 2>/dev/null; then kill -KILL "$daemon"; wait "$daemon" 2>/dev/null; rc=255
  else wait "$daemon"; rc=$?; fi
  daemon=""
  [ $rc = 0 ] && ok "$1: SIGTERM: exit 0" || not_ok "$1: SIGTERM: exit status $rc"
}
no_web_failure() { # no_web_failure WHAT: no failure of scaler web since the mark
  local l
  l=$(tail -n +$((mark + 1)) "$log" | grep -F "[web]" | grep -E "failed|failure\(s\)" | grep -v "after 0 failure" | tail -1)
  [ -z "$l" ] && ok "$1" || not_ok "$1: $l"
}
no_secret_in_log() { # no_secret_in_log WHAT: no secret or session token of $W/keys in the log
  local leaked=""
  while read -r id secret token; do
    grep -qF -- "$secret" "$log" && leaked="$leaked secret-of-$id"
    [ -n "${token:-}" ] && grep -qF -- "$token" "$log" && leaked="$leaked token-of-$id"
  done <"$W/keys"
  [ -z "$leaked" ] && ok "$1: no secret or session token in the log" || not_ok "$1: leaked:$leaked"
}

"$SB" check "$SRC/examples/ec2-asg.yaml" >"$W/check.out" 2>&1 \
  && ok "examples/ec2-asg.yaml passes scalebus check" || not_ok "example: $(cat "$W/check.out")"

# ---- mode: asg --------------------------------------------------------------------------------
cat >"$W/asg.yaml" <<EOF
triggers:
  - { id: want-web, type: http_json, url: "$S/web.json", select: /n, every: 200ms, timeout: 2s, backoff_max: 1s }
connectors:
  - { id: to-web, type: direct, from: want-web, to: web }
scalers:
  - { id: web, type: ec2, mode: asg, group: web, region: us-east-1, endpoint: "$E", timeout: 2s,
      reconcile_every: 1s, min: 1, max: 12 }
  - { id: ghost, type: ec2, mode: asg, group: nothere, endpoint: "$E", reconcile_every: 1s, min: 1, max: 1 }
EOF
export AWS_ACCESS_KEY_ID=$ENV_ID AWS_SECRET_ACCESS_KEY=$ENV_SECRET AWS_DEFAULT_REGION=us-east-1
desired_is() { is "groups['web']['desired']" "$1"; }
in_service_is() { is "sum(1 for m in groups['web']['members'] if inst[m]['state'] == 'running')" "$1"; }

want web 3
start_daemon asg "$W/asg.yaml"
if wait_for 15 desired_is 3 && wait_for 15 in_service_is 3; then
  ok "asg: scale up: DesiredCapacity 3, 3 instances InService"
else not_ok "asg: scale up: $(q "groups['web']['desired']"): $(since_last '[web]')"; fi
is "[(r['params']['DesiredCapacity'], r['params']['HonorCooldown'], r.get('verified')) for r in calls('SetDesiredCapacity')]" \
  "[('3', 'false', True)]" && ok "asg: one SetDesiredCapacity(3, HonorCooldown=false), its SigV4 signature verified" \
  || not_ok "asg: calls $(q "[r['params'] for r in calls('SetDesiredCapacity')]")"
expect "adopted 1 running instance(s)" "asg: adoption first"
expect "[ghost] list failed: DescribeAutoScalingGroups: no Auto Scaling group named 'nothere' in us-east-1" "asg: a missing group"

mark
want web 2
wait_for 15 desired_is 2 && wait_for 15 in_service_is 2 && ok "asg: scale down: DesiredCapacity 2" \
  || not_ok "asg: scale down: $(q "groups['web']")"

# Busy: a scaling activity in progress (2 s) refuses the next change: retried, not a failure.
control "activity?seconds=2" >/dev/null
mark
want web 4
wait_for 15 desired_is 4 || not_ok "asg: 4: $(q "groups['web']['desired']")"
want web 5
expect "set count busy: SetDesiredCapacity: ScalingActivityInProgress" "asg: busy"
wait_for 20 desired_is 5 && ok "asg: after the activity, DesiredCapacity 5" || not_ok "asg: busy: $(q "groups['web']['desired']")"
no_web_failure "asg: busy is not a failure (nothing logged as failed)"
control "activity?seconds=0.3" >/dev/null

# Throttling: busy, backing off.
mark
control "mode?mode=throttle" >/dev/null
want web 3
expect "busy: DescribeAutoScalingGroups: Throttling: Rate exceeded (HTTP 400; backing off)" "asg: throttling"
control "mode?mode=normal" >/dev/null
wait_for 15 desired_is 3 && ok "asg: after throttling, DesiredCapacity 3" || not_ok "asg: $(q "groups['web']['desired']")"
no_web_failure "asg: throttling is not a failure (nothing logged as failed)"

# Outside MinSize/MaxSize: a clear error naming both, and nothing sent.
mark
want web 12
expect "desired 12 is outside the group's MinSize 1 / MaxSize 10" "asg: outside the group's bounds"
is "[r for r in calls('SetDesiredCapacity', $rmark) if r['params']['DesiredCapacity'] == '12']" "[]" \
  && ok "asg: no SetDesiredCapacity(12) was sent" || not_ok "asg: 12 was sent"
want web 4
wait_for 15 desired_is 4 && wait_for 5 since_has "the engine acts again" \
  && ok "asg: back inside the bounds: $(since_last 'the engine acts again'), DesiredCapacity 4" || not_ok "asg: no recovery"

# Changed behind its back: repaired by reconcile.
mark
control "group?name=web&desired=6" >/dev/null
expect "changed outside scalebus: the count went from 4 to 6; reconciling" "asg: desired capacity changed behind its back"
wait_for 15 desired_is 4 && ok "asg: repaired to 4" || not_ok "asg: not repaired: $(q "groups['web']['desired']")"

# The double goes away (connections closed), then comes back; a change asked meanwhile lands.
mark
control "mode?mode=reset" >/dev/null
expect "[web] list failed: DescribeAutoScalingGroups: cannot reach AWS: " "asg: the double gone"
want web 5
sleep 1
control "mode?mode=normal" >/dev/null
expect "[web] the engine answers again after" "asg: the double back"
wait_for 15 desired_is 5 && ok "asg: the change asked meanwhile is made: 5" || not_ok "asg: $(q "groups['web']['desired']")"

# Garbage, and a truncated reply: clear errors, no crash, nothing changed.
mark
control "mode?mode=garbage" >/dev/null
expect "[web] list failed: DescribeAutoScalingGroups: a malformed reply (HTTP 200" "asg: garbage"
mark
control "mode?mode=truncated" >/dev/null
wait_for 10 since_has "[web] list failed: DescribeAutoScalingGroups: a malformed reply (HTTP 200, 98 bytes): not XML" \
  && ok "asg: a truncated reply: $(since_last '[web] list failed')" || not_ok "asg: truncated"
control "mode?mode=normal" >/dev/null
expect "[web] the engine answers again after" "asg: answers again after garbage"
desired_is 5 && ok "asg: the count held through the garbage" || not_ok "asg: $(q "groups['web']['desired']")"
kill -0 "$daemon" 2>/dev/null && ok "asg: the daemon survived" || not_ok "asg: the daemon died"
no_secret_in_log "asg"
stop_daemon "asg"

# Adoption on restart: 3 running, min 1: stays 3, no change made.
control "group?name=web&desired=3" >/dev/null
wait_for 10 in_service_is 3
sed -i 's/url: "[^"]*web.json"/url: "http:\/\/127.0.0.1:1\/none.json"/' "$W/asg.yaml"
start_daemon asg-restart "$W/asg.yaml"
expect "[web] adopted 3 running instance(s); nothing changes until a policy decides" "asg: restart adopts"
sleep 1.5
is "changing($rmark)" "[]" && desired_is 3 && ok "asg: 3 running, min 1: still 3, no SetDesiredCapacity" \
  || not_ok "asg: restart changed $(q "changing($rmark)")"
stop_daemon "asg-restart"

# --dry-run: the exact call logged, none made.
sed -i "s|url: \"http://127.0.0.1:1/none.json\"|url: \"$S/web.json\"|" "$W/asg.yaml"
want web 7
start_daemon asg-dry "$W/asg.yaml" --dry-run
expect "would POST $E/ Action=SetDesiredCapacity&AutoScalingGroupName=web&DesiredCapacity=7&HonorCooldown=false&Version=2011-01-01" "asg: --dry-run"
sleep 1.5
is "changing($rmark)" "[]" && ok "asg: --dry-run: no SetDesiredCapacity in the double's record" \
  || not_ok "asg: --dry-run changed $(q "changing($rmark)")"
stop_daemon "asg-dry"

# A wrong secret: AWS's SignatureDoesNotMatch, in the log; nothing verified, nothing changed.
export AWS_SECRET_ACCESS_KEY=wrong-secret-value
start_daemon asg-wrong "$W/asg.yaml"
expect "[web] list failed: DescribeAutoScalingGroups: SignatureDoesNotMatch: The request signature we calculated does not match" "asg: a wrong secret"
is "changing($rmark)" "[]" && ok "asg: a wrong secret: nothing changed" || not_ok "asg: wrong secret changed $(q "changing($rmark)")"
stop_daemon "asg-wrong"
grep -qF wrong-secret-value "$log" && not_ok "asg: the wrong secret is in the log" || ok "asg: the wrong secret is not in the log"
export AWS_SECRET_ACCESS_KEY=$ENV_SECRET

# honor_cooldown: true: a change during the group's cooldown is refused (busy), then made.
sed -e 's/reconcile_every: 1s, min: 1, max: 12 }/reconcile_every: 1s, min: 1, max: 12, honor_cooldown: true }/' "$W/asg.yaml" >"$W/asg-cooldown.yaml"
control "cooldown?seconds=3" >/dev/null
control "activity?seconds=0" >/dev/null
want web 4
start_daemon asg-cooldown "$W/asg-cooldown.yaml"
wait_for 15 desired_is 4 || not_ok "asg: cooldown: not 4: $(q "groups['web']['desired']")"
want web 5
expect "set count busy: SetDesiredCapacity: ScalingActivityInProgress: The cooldown period of the AutoScalingGroup has not yet passed." "asg: honor_cooldown: true, in the cooldown"
wait_for 15 desired_is 5 && ok "asg: after the cooldown, DesiredCapacity 5" || not_ok "asg: cooldown: $(q "groups['web']['desired']")"
is "[r['params']['HonorCooldown'] for r in calls('SetDesiredCapacity', $rmark)][-1]" "true" \
  && ok "asg: HonorCooldown=true sent" || not_ok "asg: $(q "[r['params'] for r in calls('SetDesiredCapacity', $rmark)]")"
no_web_failure "asg: the cooldown is not a failure"
stop_daemon "asg-cooldown"
control "cooldown?seconds=0" >/dev/null
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY

# ---- mode: instances -------------------------------------------------------------------------
stranger=$(control "instance?add=1&tag=" | $PY -c 'import json,sys;print(json.load(sys.stdin)["id"])')
other=$(control "instance?add=1&tag=other" | $PY -c 'import json,sys;print(json.load(sys.stdin)["id"])')
cat >"$W/fleet.yaml" <<EOF
triggers:
  - { id: want-fleet, type: http_json, url: "$S/fleet.json", select: /n, every: 200ms, timeout: 2s, backoff_max: 1s }
connectors:
  - { id: to-fleet, type: direct, from: want-fleet, to: fleet }
scalers:
  - { id: fleet, type: ec2, mode: instances, launch_template: web-template, port: 8080,
      endpoint: "$E", metadata_url: "http://127.0.0.1:$IP", timeout: 2s, reconcile_every: 1s,
      min: 0, max: 6 }
EOF
count_is() { is "len(tagged())" "$1"; }
running_is() { is "len(tagged(states=('running',)))" "$1"; }
want fleet 3
start_daemon fleet "$W/fleet.yaml"
expect "credentials from the instance metadata service (role" "instances: keys from the metadata double"
if wait_for 15 count_is 3 && wait_for 10 running_is 3; then
  ok "instances: scale up: 3 instances tagged scalebus:scaler=fleet, running"
else not_ok "instances: scale up: $(q "tagged()"): $(since_last '[fleet]')"; fi
is "len(set(r['params']['ClientToken'] for r in calls('RunInstances'))) == len(calls('RunInstances')) == 3 and all(
    r['params']['LaunchTemplate.LaunchTemplateName'] == 'web-template' and r['params']['LaunchTemplate.Version'] == '\$Default'
    and r['params']['TagSpecification.1.Tag.1.Key'] == 'scalebus:scaler' and r['params']['TagSpecification.1.Tag.1.Value'] == 'fleet'
    and r['params']['MinCount'] == r['params']['MaxCount'] == '1' and r.get('verified') for r in calls('RunInstances'))" True \
  && ok "instances: 3 RunInstances from web-template \$Default, MinCount=MaxCount=1, the tag, each its own ClientToken, signed with the role's keys" \
  || not_ok "instances: RunInstances $(q "[r['params'] for r in calls('RunInstances')]")"

mark
newest=$(q "max(tagged(), key=lambda i: (inst[i]['launch'], i))")
want fleet 2
wait_for 15 count_is 2 && ok "instances: scale down to 2" || not_ok "instances: scale down $(q "tagged()")"
is "[r['params']['InstanceId.1'] for r in calls('TerminateInstances', $rmark)]" "['$newest']" \
  && ok "instances: TerminateInstances of the newest ($newest)" || not_ok "instances: terminated $(q "[r['params'] for r in calls('TerminateInstances', $rmark)]")"

# A lost RunInstances reply, the instance not yet visible: the retry reuses the ClientToken.
mark
control "lose_next_run?hide=4&delay=3" >/dev/null
want fleet 3
expect "start failed: RunInstances: cannot reach AWS: POST $E/: Operation timed out" "instances: a RunInstances reply lost"
wait_for 15 is "len(calls('RunInstances', $rmark))" 2 || not_ok "instances: no retry of the lost start: $(q "calls('RunInstances', $rmark)")"
wait_for 10 is "any(r['action'] == 'DescribeInstances' and r['t'] > max(v['launch'] for v in inst.values()) + 4 for r in rec)" True  # listed after the hiding
sleep 1
runs=$(q "[r['params']['ClientToken'] for r in calls('RunInstances', $rmark)]")
is "(lambda t: len(t) == 2 and t[0] == t[1])([r['params']['ClientToken'] for r in calls('RunInstances', $rmark)]) and any(r.get('idempotent_replay') for r in calls('RunInstances', $rmark))" True \
  && ok "instances: the retry sent the same ClientToken, the double answered its first instance" \
  || not_ok "instances: RunInstances tokens $runs"
count_is 3 && ok "instances: 3 tagged instances, not 4" || not_ok "instances: $(q "tagged()")"

# Behind its back: one terminated, then one stopped, then one tagged by hand.
mark
victim=$(q "tagged()[0]")
control "instance?terminate=$victim" >/dev/null
expect "changed outside scalebus: $victim is gone" "instances: one terminated behind its back"
wait_for 15 running_is 3 && ok "instances: replaced: 3 running" || not_ok "instances: $(q "tagged()")"
mark
victim=$(q "tagged()[0]")
control "instance?stop=$victim" >/dev/null
expect "changed outside scalebus: $victim failed; replacing it" "instances: one stopped behind its back (drift)"
wait_for 15 running_is 3 && wait_for 10 is "inst['$victim']['state'] in ('shutting-down', 'terminated')" True \
  && ok "instances: the stopped one terminated and replaced: 3 running" || not_ok "instances: $(q "tagged(states=('running','stopped'))")"
mark
extra=$(control "instance?add=1&tag=fleet" | $PY -c 'import json,sys;print(json.load(sys.stdin)["id"])')
expect "changed outside scalebus: $extra appeared" "instances: one tagged by hand"
wait_for 15 is "inst['$extra']['state'] in ('shutting-down', 'terminated')" True && count_is 3 \
  && ok "instances: the newest (the one added by hand) terminated: 3 again" || not_ok "instances: $(q "tagged()")"

# Untagged instances: never terminated, even when DescribeInstances ignores its filter.
mark
control "mode?mode=nofilter" >/dev/null  # every instance listed, whatever its tags
want fleet 1
wait_for 15 count_is 1
sleep 1
control "mode?mode=normal" >/dev/null
wait_for 15 count_is 1 || not_ok "instances: not 1: $(q "tagged()")"
is "[r['params']['InstanceId.1'] for r in calls('TerminateInstances') if r['params']['InstanceId.1'] in ('$stranger', '$other')]" "[]" \
  && is "(inst['$stranger']['state'], inst['$other']['state'])" "('running', 'running')" \
  && ok "instances: the untagged instance and another scaler's are never terminated (while DescribeInstances ignored its filter)" \
  || not_ok "instances: strangers touched: $(q "inst['$stranger'], inst['$other']")"

# Throttling, the double gone and back, garbage.
mark
control "mode?mode=throttle" >/dev/null
expect "busy: DescribeInstances: RequestLimitExceeded: Request limit exceeded. (HTTP 503; backing off)" "instances: throttling"
control "mode?mode=reset" >/dev/null
expect "list failed: DescribeInstances: cannot reach AWS" "instances: the double gone"
want fleet 2
control "mode?mode=garbage" >/dev/null
expect "DescribeInstances: a malformed reply (HTTP 200" "instances: garbage"
control "mode?mode=normal" >/dev/null
expect "the engine answers again after" "instances: the double back"
wait_for 15 running_is 2 && ok "instances: the change asked meanwhile is made: 2" || not_ok "instances: $(q "tagged()")"

# The keys expire: ExpiredToken, then keys fetched again from the metadata double.
mark
before=$(curl -s --max-time 2 "http://127.0.0.1:$IP/_control/stats" | $PY -c 'import json,sys;print(json.load(sys.stdin)["credential_fetches"])')
old_key=$(q "rec[-1]['key']")
control expire >/dev/null
expect "ExpiredToken: The security token included in the request is expired (HTTP 400; fetching new credentials)" "instances: the keys expired"
expect "credentials from the instance metadata service (role" "instances: keys fetched again"
after=$(curl -s --max-time 2 "http://127.0.0.1:$IP/_control/stats" | $PY -c 'import json,sys;print(json.load(sys.stdin)["credential_fetches"])')
[ "$after" -gt "$before" ] && ok "instances: the metadata double handed out new keys ($before -> $after fetches)" || not_ok "instances: fetches $before -> $after"
want fleet 3
wait_for 15 running_is 3 && is "rec[-1]['key'] != '$old_key' and rec[-1].get('verified') == True" True \
  && ok "instances: with the new keys, 3 running (new key verified)" || not_ok "instances: $(q "rec[-1]")"
no_secret_in_log "instances"
stop_daemon "instances"

# Adoption on restart: 3 running, min 1: stays 3.
sed -i 's/min: 0, max: 6/min: 1, max: 6/; s/url: "[^"]*fleet.json"/url: "http:\/\/127.0.0.1:1\/none.json"/' "$W/fleet.yaml"
start_daemon fleet-restart "$W/fleet.yaml"
expect "[fleet] adopted 3 running instance(s); nothing changes until a policy decides" "instances: restart adopts"
sleep 1.5
is "changing($rmark)" "[]" && count_is 3 && ok "instances: 3 running, min 1: still 3, no RunInstances or TerminateInstances" \
  || not_ok "instances: restart changed $(q "changing($rmark)")"
stop_daemon "instances-restart"

# --dry-run: the calls logged, none made.
sed -i "s|url: \"http://127.0.0.1:1/none.json\"|url: \"$S/fleet.json\"|" "$W/fleet.yaml"
want fleet 5
start_daemon fleet-dry "$W/fleet.yaml" --dry-run
expect "would POST $E/ Action=RunInstances&LaunchTemplate.LaunchTemplateName=web-template&LaunchTemplate.Version=%24Default&MinCount=1&MaxCount=1&ClientToken=UNIQUE-PER-START&TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=scalebus%3Ascaler&TagSpecification.1.Tag.1.Value=fleet&Version=2016-11-15" "instances: --dry-run, up"
stop_daemon "instances-dry"
want fleet 1
start_daemon fleet-dry2 "$W/fleet.yaml" --dry-run
newest=$(q "max(tagged(), key=lambda i: (inst[i]['launch'], i))")
expect "would POST $E/ Action=TerminateInstances&InstanceId.1=$newest&Version=2016-11-15" "instances: --dry-run, down (the newest)"
sleep 1
is "changing($rmark)" "[]" && count_is 3 && ok "instances: --dry-run: no RunInstances or TerminateInstances in the double's record" \
  || not_ok "instances: --dry-run changed $(q "changing($rmark)")"
stop_daemon "instances-dry"
no_secret_in_log "instances --dry-run"

# on_stop: stop: SIGTERM terminates every tagged instance (and only those), then exits 0.
sed -i 's/min: 1, max: 6 }/min: 1, max: 6, on_stop: stop }/; s|url: "[^"]*fleet.json"|url: "http://127.0.0.1:1/none.json"|' "$W/fleet.yaml"
start_daemon fleet-onstop "$W/fleet.yaml"
expect "[fleet] adopted 3 running instance(s)" "instances: on_stop: stop, adopted"
stop_daemon "instances on_stop: stop"
count_is 0 && ok "instances: on_stop: stop: no tagged instance left running" || not_ok "instances: on_stop: $(q "tagged()")"
is "(inst['$stranger']['state'], inst['$other']['state'])" "('running', 'running')" \
  && ok "instances: on_stop: stop left the untagged and the other scaler's instance running" \
  || not_ok "instances: on_stop touched strangers"

echo "# $fails failure(s)"
[ "$fails" = 0 ]
