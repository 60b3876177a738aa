#!/bin/bash
# The http_json trigger end to end, through the real daemon and its HTTP client, against a local
# python3 HTTP server that serves JSON files from the temporary folder (re-read at each request,
# so the test changes a value by rewriting a file) in the shapes of the APIs the examples read:
# Buildkite's agent metrics (behind "Authorization: Token ..."), GitHub Actions' workflow runs,
# GitLab's pending jobs (an array: count: true), and a list of queues (/queues/*/depth, label
# name). It shows:
#   - a value changed at the source reaches the scaler within one `every` (latency printed);
#   - a header whose value comes from ${ENV} in the file arrives (the server checks it; a wrong
#     token is a 401 in the log), basic auth, a POST with a body;
#   - one reading per [*] match, labelled from the sibling field, routed by `match`;
#   - a non-numeric value, a missing field, a 500, garbage and an oversized reply: clear errors
#     naming the path or the status, no crash;
#   - the server killed: errors, the count held and then the policy's fallback; reading resumes
#     when it is back on the same port, the daemon running throughout;
#   - the example files pass `scalebus check`; the token never reaches the log; SIGTERM: exit 0.
#
#   tests/test_http_json.sh BUILD/scalebus SOURCE_DIR
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
W=$(mktemp -d /tmp/sb-http-json.XXXXXX)
fails=0
daemon="" server_pid=""
. "$(dirname "$0")/lib.sh"

cleanup() {
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
  stop_pid "$server_pid"
  for f in "$W"/pool/worker.*; do
    [ -f "$f" ] && kill -KILL "$(awk '{print $NF}' "$f")" 2>/dev/null
  done
  keep_or_remove "$W"
}
trap cleanup EXIT
trap 'fails=$((fails + 1)); exit 1' INT TERM
SP=$(free_port)
S="http://127.0.0.1:$SP"
TOKEN="bkua_test_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
mkdir -p "$W/www" "$W/pool"

# ---- the server ------------------------------------------------------------------------------------
cat >"$W/server.py" <<'EOF'
# A local JSON server for test_http_json.sh: GET /NAME serves www/NAME.json; /auth/NAME needs
# "Authorization: Token $SB_TEST_TOKEN"; /basic/NAME needs basic auth sb:pw; POST /graphql needs a
# JSON body asking for the count; /status/N answers N; /garbage and /big send what they say.
import base64, json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
WWW = sys.argv[2]
TOKEN = os.environ["SB_TEST_TOKEN"]
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send(self, status, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def file(self, name):
        try:
            with open(os.path.join(WWW, name + ".json"), "rb") as f:
                self.send(200, f.read())
        except (FileNotFoundError, IsADirectoryError):
            self.send(404, '{"message":"Not Found"}')
    def do_GET(self):
        p = self.path.split("?")[0].strip("/")
        if p.startswith("auth/"):
            if self.headers.get("Authorization") != "Token " + TOKEN:
                self.send(401, '{"message":"Authentication required"}')
                return
            self.file(p[5:])
        elif p.startswith("basic/"):
            want = "Basic " + base64.b64encode(b"sb:pw").decode()
            if self.headers.get("Authorization") != want:
                self.send(401, '{"message":"Unauthorized"}')
                return
            self.file(p[6:])
        elif p.startswith("status/"):
            self.send(int(p[7:]), "<html><body>Internal Server Error</body></html>\n", "text/html")
        elif p == "garbage":
            self.send(200, b"\x00\x01 this is {not json", "application/json")
        elif p == "big":
            self.send(200, b'{"n":"' + b"x" * (2 * 1024 * 1024) + b'"}')
        else:
            self.file(p)
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        try:
            q = json.loads(body)
        except ValueError:
            q = None
        if self.path != "/graphql" or self.headers.get("Content-Type") != "application/json" \
                or q != {"query": "{ count }"}:
            self.send(400, '{"message":"bad request"}')
            return
        self.file("graphql")
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
start_server() {
  SB_TEST_TOKEN=$TOKEN $PY "$W/server.py" "$SP" "$W/www" >>"$W/server.log" 2>&1 &
  server_pid=$!
  wait_for 10 curl -s -o /dev/null --max-time 1 "$S/queues" || not_ok "the server does not answer"
}
put() { printf '%s\n' "$2" >"$W/www/$1.tmp" && mv "$W/www/$1.tmp" "$W/www/$1.json"; }
buildkite() { # buildkite SCHEDULED: Buildkite's GET /v3/metrics reply
  put metrics '{"agents":{"idle":0,"busy":2,"total":2,"queues":{"default":{"idle":0,"busy":2,"total":2}}},"jobs":{"scheduled":'$1',"running":2,"waiting":0,"total":'$(($1 + 2))',"queues":{"default":{"scheduled":'$1',"running":2,"waiting":0,"total":'$(($1 + 2))'}}},"organization":{"slug":"acme"}}'
}
buildkite 3
put runs '{"total_count":2,"workflow_runs":[{"id":1,"status":"queued"},{"id":2,"status":"queued"}]}'
put jobs '[{"id":8,"status":"pending","name":"rspec"},{"id":9,"status":"pending","name":"lint"},{"id":10,"status":"pending","name":"docs"}]'
put queues '{"queues":[{"name":"build","depth":4},{"name":"deploy","depth":"6"}]}'
put nonnum '{"jobs":{"scheduled":"many"}}'
put graphql '{"data":{"count":5}}'
put kicked '{"total_count":2}'
start_server

# ---- the pipeline ----------------------------------------------------------------------------------
POLL="every: 200ms, timeout: 2s, backoff_max: 1s"
SLOWPOLL="every: 500ms, timeout: 2s, backoff_max: 1s"
PROBE="per_instance: 100000, activate_above: 1000000000, stabilize_down: 0s"
cat >"$W/pipeline.yaml" <<EOF
triggers:
  - { id: bk, type: http_json, url: "$S/auth/metrics", select: /jobs/scheduled,
      headers: { Authorization: "Token \${BUILDKITE_AGENT_TOKEN}" }, $POLL }
  - { id: bk-wrong, type: http_json, url: "$S/auth/metrics", select: /jobs/scheduled,
      headers: { Authorization: "Token not-the-token" }, $SLOWPOLL }
  - { id: gh, type: http_json, url: "$S/runs?status=queued", select: /total_count, $SLOWPOLL }
  - { id: gl, type: http_json, url: "$S/jobs?scope=pending", count: true, $SLOWPOLL }
  - { id: queues, type: http_json, url: "$S/queues", select: "/queues/*/depth", label: name, $POLL }
  - { id: basic, type: http_json, url: "$S/basic/runs", select: /total_count, username: sb, password: pw, $SLOWPOLL }
  - { id: basic-wrong, type: http_json, url: "$S/basic/runs", select: /total_count, username: sb, password: nope, $SLOWPOLL }
  - { id: post, type: http_json, url: "$S/graphql", method: POST, body: '{"query": "{ count }"}', select: /data/count, $SLOWPOLL }
  - { id: nonnum, type: http_json, url: "$S/nonnum", select: /jobs/scheduled, $SLOWPOLL }
  - { id: missing, type: http_json, url: "$S/auth/metrics", select: /jobs/pending,
      headers: { Authorization: "Token \${BUILDKITE_AGENT_TOKEN}" }, $SLOWPOLL }
  - { id: http500, type: http_json, url: "$S/status/500", select: /a, $SLOWPOLL }
  - { id: garbage, type: http_json, url: "$S/garbage", select: /a, $SLOWPOLL }
  - { id: big, type: http_json, url: "$S/big", select: /n, $SLOWPOLL }
  # Read once an hour on its own, and every second when the cron trigger says "run" (waymond's way).
  - { id: kicked, type: http_json, url: "$S/kicked", select: /total_count, every: 1h }
  - { id: tick, type: cron, schedule: "* * * * * *" }
connectors:
  - { id: kick, type: direct, from: tick, to: kicked }
  - { id: c-kicked, type: target, from: kicked, to: probe, $PROBE }
  - { id: per-one, type: target, from: bk, to: pool, per_instance: 1, stabilize_down: 0s,
      fail_after: 3, fallback: 2 }
  - { id: c-build, type: target, from: queues, match: { name: build }, to: probe, $PROBE }
  - { id: c-deploy, type: target, from: queues, match: { name: deploy }, to: probe, $PROBE }
  - { id: c-rest, type: target, from: [gh, gl, basic, post], to: probe, $PROBE }
scalers:
  - id: pool
    type: process
    command: ["sh", "$SRC/tests/e2e/worker.sh"]
    env: { E2E_DIR: "$W/pool" }
    max: 8
    stop_grace: 1s
  - { id: probe, type: process, command: ["sh", "-c", "exec sleep 600"], max: 1 }
EOF
BUILDKITE_AGENT_TOKEN=$TOKEN "$SB" check "$W/pipeline.yaml" >"$W/check.out" 2>&1 \
  && ok "scalebus check accepts the pipeline" || not_ok "check: $(cat "$W/check.out")"
# The examples, each with the variables it reads.
for ex in "$SRC"/examples/http-json-*.yaml; do
  BUILDKITE_AGENT_TOKEN=x GITHUB_TOKEN=x GITLAB_TOKEN=x "$SB" check "$ex" >"$W/check-ex.out" 2>&1 \
    && ok "example $(basename "$ex") passes scalebus check" || not_ok "$(basename "$ex"): $(cat "$W/check-ex.out")"
done

log=$W/daemon.log
log_has() { grep -qF -- "$1" "$log"; }
mark() { mark=$(wc -l <"$log"); }
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
expect() { # expect TEXT WHAT: a log line holding TEXT, within 10 s
  wait_for 10 log_has "$1" && ok "$2: $(grep -F -- "$1" "$log" | tail -1 | sed 's/^[^]]*] //')" \
    || not_ok "$2: no line with '$1'"
}

BUILDKITE_AGENT_TOKEN=$TOKEN $WRAP "$SB" run "$W/pipeline.yaml" >"$log" 2>&1 &
daemon=$!
wait_for 15 workers_are 3 && ok "buildkite: 3 scheduled jobs -> 3 workers (the \${ENV} token header arrived)" \
  || not_ok "buildkite: workers $(live_workers): $(grep -F '[bk]' "$log" | tail -1)"
t0=$(now_ms); buildkite 5
if wait_for 10 log_has "[per-one] desired 5: bk=5 per_instance=1 -> 5"; then
  ms=$(($(now_ms) - t0))
  [ "$ms" -le $((1000 * SLOW)) ] && ok "a changed value (3 -> 5) reaches the policy within one every (200ms): ${ms} ms" \
    || not_ok "the change took ${ms} ms"
else
  not_ok "no decision for 5: $(grep -F '[per-one]' "$log" | tail -2)"
fi
wait_for 15 workers_are 5 && ok "5 workers" || not_ok "workers $(live_workers)"
expect "[c-build] desired 0: build=4" "[*] path, labelled name=build"
expect "[c-deploy] desired 0: deploy=6" "[*] path, labelled name=deploy (a numeric string)"
expect "[c-rest] desired 0: gh=2" "github: total_count"
expect "[c-rest] desired 0: gl=3" "gitlab: count: true over the array"
expect "[c-rest] desired 0: basic=2" "basic auth"
expect "[c-rest] desired 0: post=5" "POST with a JSON body"
expect "[c-kicked] desired 0: kicked=2" "every: 1h reads at once at start"
put kicked '{"total_count":7}'
expect "[c-kicked] desired 0: kicked=7" "every: 1h, driven by a cron trigger through a connector: read again on \"run\""
expect "[bk-wrong] read failed: GET $S/auth/metrics: HTTP 401: {\"message\":\"Authentication required\"}" "a wrong token"
expect "[basic-wrong] read failed: GET $S/basic/runs: HTTP 401" "a wrong password"
expect "[nonnum] read failed: reply: /jobs/scheduled: expected a number, got the string \"many\"" "a non-numeric value"
expect "[missing] read failed: reply: /jobs/pending: missing" "a missing field"
expect "[http500] read failed: GET $S/status/500: HTTP 500: <html><body>Internal Server Error</body></html>" "a 500"
expect "[garbage] read failed: reply: the reply is not JSON (20 bytes)" "garbage"
expect "[big] read failed: GET $S/big: reply body over the limit of 1048576 bytes" "an oversized reply"

# The server killed: errors, the count held, then the fallback; back: reading resumes.
mark; stop_pid "$server_pid"; server_pid=""
wait_for 10 since_has "[bk] read failed: GET $S/auth/metrics: " \
  && ok "server gone: $(since_last '[bk] read failed' | sed 's/.*read failed: //')" || not_ok "no error once the server is gone"
[ "$(live_workers)" -gt 0 ] && ok "server gone: the count is held ($(live_workers) workers, not 0)" || not_ok "server gone: 0 workers"
wait_for 10 since_has "[per-one] desired 2: bk: 3 failures -> fallback 2" \
  && ok "server gone: after 3 failures the policy moves to its fallback" || not_ok "no fallback: $(since_last '[per-one]')"
wait_for 15 workers_are 2 && ok "server gone: fallback 2 workers" || not_ok "fallback: workers $(live_workers)"
buildkite 4
start_server
wait_for 10 since_has "[bk] reading again after" && wait_for 10 since_has "[per-one] desired 4: bk=4" \
  && ok "server back: reading resumes (4)" || not_ok "no recovery: $(since_last '[per-one]')"
wait_for 15 workers_are 4 && ok "server back: 4 workers" || not_ok "workers $(live_workers)"
kill -0 "$daemon" 2>/dev/null && ok "the daemon ran throughout" || not_ok "the daemon is gone"

kill -TERM "$daemon"
for _ in $(seq $((300 * SLOW))); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$daemon" 2>/dev/null; then kill -KILL "$daemon"; wait "$daemon" 2>/dev/null; rc=255; else wait "$daemon"; rc=$?; fi
daemon=""
[ $rc = 0 ] && ok "SIGTERM: exit 0" || not_ok "SIGTERM: exit status $rc"
wait_for 10 workers_are 0 || not_ok "workers left: $(live_workers)"
grep -qF -- "$TOKEN" "$log" && not_ok "the token is in the log" || ok "the token never reaches the log"

echo "$fails failure(s)"
[ $fails = 0 ]
