#!/bin/bash
# The HTTP-load triggers against the real servers: nginx (stub_status, and a static file in
# Prometheus' text format as a scrape target), HAProxy (stats CSV, a backend in front of a slow
# server) and Prometheus (scraping that file every second), each started once on free loopback
# ports in a temporary folder and stopped by pid. One `scalebus run` drives process scalers
# through `target` connectors and must show, for each trigger:
#   - a value changed at the source reaches the scaler within one `every` (plus the time the source
#     takes: one scrape for Prometheus), with the latency printed;
#   - prometheus: several series give several labelled readings (routed by `match`), an empty
#     result fails or reads 0 with empty_as_zero, a bad query fails with the server's own words;
#   - the server killed mid-run gives error lines and error events (the policy counts them), the
#     count is held (not 0), or moves to `fallback` where the policy library has it; reading
#     resumes when the server is back on the same port, with the daemon running throughout;
#   - garbage and oversized replies, and wrong or missing credentials, give a clear error;
#   - SIGTERM: exit 0.
#
#   tests/test_httpload.sh BUILD/scalebus SOURCE_DIR
#
# SB_E2E_WRAP, when set, prefixes `scalebus run` (e.g. valgrind --error-exitcode=99); waits are
# then bounded 10 times longer (SLOW). Exits 77 (skipped) when nginx, haproxy or prometheus is not
# installed. On a failure the temporary folder, with every log, is kept and named.
set -u
SB=$1
SRC=$2
WRAP=${SB_E2E_WRAP:-}
SLOW=${SLOW:-1}
[ -n "$WRAP" ] && SLOW=10
PY=/usr/bin/python3
CLIENTS=$SRC/tests/httpload/clients.py
for b in nginx haproxy prometheus $PY curl; do
  command -v "$b" >/dev/null || { echo "skipped: $b is not installed"; exit 77; }
done
W=$(mktemp -d /tmp/sb-httpload.XXXXXX)
fails=0
daemon="" nginx_pid="" haproxy_pid="" prom_pid="" slow_pid="" helpers=""
. "$(dirname "$0")/lib.sh"

# ---- processes ---------------------------------------------------------------------------------
cleanup() {
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
  for p in $helpers; do kill -KILL "$p" 2>/dev/null; done
  for p in $nginx_pid $haproxy_pid $prom_pid $slow_pid; do stop_pid "$p"; done
  for f in "$W"/p-*/worker.*; do
    [ -f "$f" ] || continue
    pid=$(awk '{print $NF}' "$f"); [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  done
  keep_or_remove "$W"
}
trap cleanup EXIT
trap 'fails=$((fails + 1)); exit 1' INT TERM
helper() { # helper NAME ARGS...: clients.py ARGS in the background; its pid in $helper_pid
  $PY "$CLIENTS" "${@:2}" >"$W/$1.log" 2>&1 &
  helper_pid=$!
  helpers="$helpers $helper_pid"
}
port_answers() { curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" ; }

NP=$(free_port) HP=$(free_port) HA=$(free_port) FP=$(free_port) PP=$(free_port) SP=$(free_port)
mkdir -p "$W/www" "$W/nginx-tmp" "$W/tsdb"
# nginx's worker runs as nobody: it must reach the files it serves (and the test's passwords).
chmod 755 "$W" "$W/www"

# ---- the sources ---------------------------------------------------------------------------------
# The scrape target: a static file; metrics() replaces it in one rename.
# Also: a series with no number (NaN), and one with 15 labels of its own.
metrics() { # metrics A B: inflight{route="/a"} A, inflight{route="/b"} B
  { printf '# TYPE inflight gauge\ninflight{route="/a"} %s\ninflight{route="/b"} %s\n' "$1" "$2"
    printf 'broken{route="/c"} NaN\n'
    printf 'wide{l01="1",l02="2",l03="3",l04="4",l05="5",l06="6",l07="7",l08="8",l09="9",'
    printf 'l10="10",l11="11",l12="12",l13="13",l14="14",l15="15"} 6\n'
  } >"$W/www/metrics.tmp"
  mv "$W/www/metrics.tmp" "$W/www/metrics.txt"
}
metrics 2 3
printf 'sb:{PLAIN}secret\n' >"$W/htpasswd"
cp "$SRC/tests/httpload/prom_vector_nolabels.json" "$W/www/prom-ok.json" # sum = 10
printf '\x00\x01garbage{{{ not json\n' >"$W/www/junk.txt"
head -c 10485760 /dev/zero | tr '\0' 'x' >"$W/www/big.txt" # 10 MB
cat >"$W/nginx.conf" <<EOF
worker_processes 1;
error_log $W/nginx-error.log;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path $W/nginx-tmp; proxy_temp_path $W/nginx-tmp;
  fastcgi_temp_path $W/nginx-tmp; uwsgi_temp_path $W/nginx-tmp; scgi_temp_path $W/nginx-tmp;
  default_type text/plain;
  server {
    listen 127.0.0.1:$NP;
    location = /status { stub_status; }
    location = /auth/status { auth_basic "sb"; auth_basic_user_file $W/htpasswd; stub_status; }
    location = /metrics { alias $W/www/metrics.txt; }
    location = /junk/status { alias $W/www/junk.txt; }
    location = /big/status { alias $W/www/big.txt; }
    # Stand-ins for Prometheus' query API: garbage, 10 MB, behind basic auth, behind a bearer token.
    location = /junk/api/v1/query { alias $W/www/junk.txt; }
    location = /big/api/v1/query { alias $W/www/big.txt; }
    location = /auth/api/v1/query {
      auth_basic "sb"; auth_basic_user_file $W/htpasswd; alias $W/www/prom-ok.json;
    }
    location = /bearer/api/v1/query {
      if (\$http_authorization != "Bearer t0ken") { return 403; }
      alias $W/www/prom-ok.json;
    }
  }
}
EOF
start_nginx() {
  nginx -c "$W/nginx.conf" -g "daemon off; pid $W/nginx.pid;" >>"$W/nginx.log" 2>&1 &
  nginx_pid=$!
}
# HAProxy: stats without and with auth, and a frontend whose backend `app` (server maxconn 1) is a
# server that answers only when told: held requests are current sessions, all but one queued.
cat >"$W/haproxy.cfg" <<EOF
global
  maxconn 500
defaults
  mode http
  timeout connect 1s
  timeout client 60s
  timeout server 60s
  timeout queue 60s
frontend stats
  bind 127.0.0.1:$HP
  stats enable
  stats uri /stats
frontend stats_auth
  bind 127.0.0.1:$HA
  stats enable
  stats uri /stats
  stats auth sb:secret
frontend web
  bind 127.0.0.1:$FP
  use_backend app if { path_beg /app }
  default_backend web
backend web
  server n1 127.0.0.1:$NP
backend app
  server s1 127.0.0.1:$SP maxconn 1
EOF
start_haproxy() {
  haproxy -f "$W/haproxy.cfg" >>"$W/haproxy.log" 2>&1 &
  haproxy_pid=$!
}
cat >"$W/prom.yml" <<EOF
global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: web
    static_configs: [ { targets: ["127.0.0.1:$NP"] } ]
EOF
start_prom() {
  prometheus --config.file="$W/prom.yml" --storage.tsdb.path="$W/tsdb" \
    --web.listen-address="127.0.0.1:$PP" >>"$W/prometheus.log" 2>&1 &
  prom_pid=$!
}
prom_sum() { # the value of sum(inflight) as Prometheus answers it now
  curl -s --max-time 2 "http://127.0.0.1:$PP/api/v1/query" --data-urlencode 'query=sum(inflight)' |
    sed -n 's/.*"value":\[[0-9.]*,"\([^"]*\)"\].*/\1/p'
}
prom_sum_is() { [ "$(prom_sum)" = "$1" ]; }

$PY "$CLIENTS" slowserver "$SP" "$W/release" >"$W/slowserver.log" 2>&1 &
slow_pid=$!
start_nginx
start_haproxy
start_prom
wait_for 10 port_answers "$NP" || not_ok "nginx does not answer: $(tail -3 "$W/nginx-error.log")"
wait_for 10 port_answers "$HP" || not_ok "haproxy does not answer: $(tail -3 "$W/haproxy.log")"
# A new target shows in queries about 5 s after Prometheus starts.
wait_for 30 prom_sum_is 5 && ok "servers up: nginx, haproxy, prometheus (sum(inflight) = 5)" \
  || not_ok "prometheus does not have the target: $(prom_sum) $(tail -3 "$W/prometheus.log")"

# ---- the pipeline ---------------------------------------------------------------------------------
HAS_FALLBACK=0
"$SB" plugins --describe target 2>/dev/null | grep -q '^ *fallback ' && HAS_FALLBACK=1
fallback_opt() { [ $HAS_FALLBACK = 1 ] && echo ", fallback: $1"; }
POLL="every: 200ms, backoff_max: 1s, timeout: 2s"
SLOWPOLL="every: 500ms, backoff_max: 1s, timeout: 2s"
pool() { # pool ID MAX: a process scaler whose workers record themselves in $W/ID/
  mkdir -p "$W/$1"
  cat <<EOF
  - id: $1
    type: process
    command: ["sh", "$SRC/tests/e2e/worker.sh"]
    env: { E2E_DIR: "$W/$1" }
    max: $2
    stop_grace: 1s
EOF
}
P="http://127.0.0.1"
PROBE="per_instance: 100000, activate_above: 1000000000, stabilize_down: 0s"
cat >"$W/pipeline.yaml" <<EOF
triggers:
  - { id: prom-total, type: prometheus, url: "$P:$PP", query: "sum(inflight)", $POLL }
  - { id: prom-routes, type: prometheus, url: "$P:$PP/", query: "sum by (route) (inflight)", $POLL }
  - { id: prom-empty, type: prometheus, url: "$P:$PP", query: "nothing_here", $SLOWPOLL }
  - { id: prom-empty0, type: prometheus, url: "$P:$PP", query: "nothing_here", empty_as_zero: true, $SLOWPOLL }
  - { id: prom-nan, type: prometheus, url: "$P:$PP", query: "broken", $SLOWPOLL }
  - { id: prom-some-nan, type: prometheus, url: "$P:$PP", query: '{__name__=~"inflight|broken"}', $SLOWPOLL }
  - { id: prom-wide, type: prometheus, url: "$P:$PP", query: "wide", $SLOWPOLL }
  - { id: prom-bad, type: prometheus, url: "$P:$PP", query: "sum(", $SLOWPOLL }
  - { id: prom-junk, type: prometheus, url: "$P:$NP/junk", query: "up", $SLOWPOLL }
  - { id: prom-big, type: prometheus, url: "$P:$NP/big", query: "up", $SLOWPOLL }
  - { id: prom-auth-ok, type: prometheus, url: "$P:$NP/auth", query: "up", username: sb, password: secret, $SLOWPOLL }
  - { id: prom-auth-bad, type: prometheus, url: "$P:$NP/auth", query: "up", username: sb, password: wrong, $SLOWPOLL }
  - { id: prom-bearer, type: prometheus, url: "$P:$NP/bearer", query: "up", headers: { Authorization: "Bearer t0ken" }, $SLOWPOLL }
  - { id: prom-no-bearer, type: prometheus, url: "$P:$NP/bearer", query: "up", $SLOWPOLL }
  - { id: ngx-active, type: nginx, url: "$P:$NP/status", $POLL }
  - { id: ngx-rps, type: nginx, url: "$P:$NP/status", measure: requests_per_second, every: 1s, backoff_max: 1s }
  - { id: ngx-auth-ok, type: nginx, url: "$P:$NP/auth/status", measure: waiting, username: sb, password: secret, $SLOWPOLL }
  - { id: ngx-auth-bad, type: nginx, url: "$P:$NP/auth/status", username: sb, password: wrong, $SLOWPOLL }
  - { id: ngx-auth-none, type: nginx, url: "$P:$NP/auth/status", $SLOWPOLL }
  - { id: ngx-junk, type: nginx, url: "$P:$NP/junk/status", $SLOWPOLL }
  - { id: ngx-scrape-page, type: nginx, url: "$P:$NP/metrics", $SLOWPOLL }
  - { id: ngx-big, type: nginx, url: "$P:$NP/big/status", $SLOWPOLL }
  - { id: hap-scur, type: haproxy, url: "$P:$HP/stats;csv", backend: app, $POLL }
  - { id: hap-qcur, type: haproxy, url: "$P:$HP/stats;csv", backend: app, measure: qcur, $SLOWPOLL }
  - { id: hap-server, type: haproxy, url: "$P:$HP/stats;csv", server: web/n1, measure: weight, $SLOWPOLL }
  - { id: hap-auth-ok, type: haproxy, url: "$P:$HA/stats;csv", backend: web, measure: act, username: sb, password: secret, $SLOWPOLL }
  - { id: hap-auth-bad, type: haproxy, url: "$P:$HA/stats;csv", backend: web, username: sb, password: wrong, $SLOWPOLL }
  - { id: hap-auth-none, type: haproxy, url: "$P:$HA/stats;csv", backend: web, $SLOWPOLL }
  - { id: hap-html, type: haproxy, url: "$P:$HP/stats", backend: app, $SLOWPOLL }
  - { id: hap-column, type: haproxy, url: "$P:$HP/stats;csv", backend: app, measure: sessions_now, $SLOWPOLL }
  - { id: hap-nobackend, type: haproxy, url: "$P:$HP/stats;csv", backend: api, $SLOWPOLL }
connectors:
  - { id: c-prom, type: target, from: prom-total, to: p-prom, per_instance: 1, stabilize_down: 0s }
  - { id: c-a, type: target, from: prom-routes, to: p-a, match: { route: "/a" }, per_instance: 1, stabilize_down: 0s }
  - { id: c-b, type: target, from: prom-routes, to: p-b, match: { route: "/b" }, per_instance: 1, stabilize_down: 0s }
  - { id: c-ngx, type: target, from: ngx-active, to: p-ngx, per_instance: 10, stabilize_down: 0s $(fallback_opt 2) }
  - { id: c-hap, type: target, from: hap-scur, to: p-hap, per_instance: 1, stabilize_down: 0s $(fallback_opt 2) }
  # Readings seen only through the decisions these log (name=value in each reason); activation
  # keeps every decision at 0, so p-probe never runs a worker.
  - { id: c-probe, type: target, from: [prom-empty0, prom-auth-ok, prom-bearer, ngx-rps, ngx-auth-ok], to: p-probe, $PROBE }
  - { id: c-hq, type: target, from: hap-qcur, to: p-probe, $PROBE }
  - { id: c-hsrv, type: target, from: hap-server, to: p-probe, $PROBE }
  - { id: c-hauth, type: target, from: hap-auth-ok, to: p-probe, $PROBE }
scalers:
$(pool p-prom 10)
$(pool p-a 6)
$(pool p-b 6)
$(pool p-ngx 5)
$(pool p-hap 6)
$(pool p-probe 1)
EOF
if "$SB" check "$W/pipeline.yaml" >"$W/check.out" 2>&1; then
  ok "scalebus check accepts the pipeline"
else
  not_ok "check: $(cat "$W/check.out")"
  exit 1
fi

log=$W/daemon.log
log_has() { grep -qF -- "$1" "$log"; }
log_count() { grep -cF -- "$1" "$log"; }
workers() { # workers POOL: live workers of that pool
  local n=0
  for f in "$W/$1"/worker.*; do
    [ -f "$f" ] || continue
    # "INSTANCE PORT PID" (no PORT: these pools have none); the pid is the last word.
    pid=$(awk '{print $NF}' "$f")
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q '^sleep 600' && n=$((n + 1))
  done
  echo $n
}
workers_are() { [ "$(workers "$1")" = "$2" ]; }
# within MS POOL N: wait up to MS ms (times SLOW) for POOL to run N workers; prints the latency.
within() {
  local t0 limit=$(($1 * SLOW)) pool=$2 want=$3 t
  t0=$(now_ms)
  while :; do
    t=$(($(now_ms) - t0))
    workers_are "$pool" "$want" && { latency=$t; return 0; }
    [ $t -gt $((limit + 5000 * SLOW)) ] && { latency=$t; return 1; }
    sleep 0.05
  done
}

# fast_enough WHAT: the last latency was at most one `every` (200 ms) plus 1 s for the request, the
# decision and a worker's start (times SLOW).
fast_enough() {
  [ "$latency" -le $(((200 + 1000) * SLOW)) ] \
    && ok "$1: the change reached the scaler within one every (+1 s): ${latency} ms" \
    || not_ok "$1: the change took ${latency} ms, more than one every (200 ms) + 1 s"
}

$WRAP "$SB" run "$W/pipeline.yaml" >"$log" 2>&1 &
daemon=$!
if ! wait_for 10 log_has "component(s) running"; then
  not_ok "the daemon did not start: $(tail -3 "$log")"
  exit 1
fi

# ---- 1. first readings --------------------------------------------------------------------------
wait_for 20 workers_are p-prom 5 && ok "prometheus: sum(inflight)=5 -> 5 workers" \
  || not_ok "prometheus: p-prom runs $(workers p-prom): $(grep -E 'c-prom|prom-total' "$log" | tail -3)"
wait_for 10 workers_are p-a 2 && wait_for 10 workers_are p-b 3 \
  && ok "prometheus: two series -> two labelled readings, routed by match: /a -> 2, /b -> 3" \
  || not_ok "series: p-a $(workers p-a), p-b $(workers p-b): $(grep -E 'c-a|c-b' "$log" | tail -3)"
wait_for 10 log_has "[c-a] desired 2: /a=2 per_instance=1 -> 2" \
  && ok "the reason names the series by its label: /a=2" || not_ok "no '/a=2' decision"
wait_for 10 workers_are p-ngx 1 && ok "nginx: a few connections -> 1 worker (per_instance 10)" \
  || not_ok "nginx: p-ngx runs $(workers p-ngx)"
workers_are p-hap 0 && ok "haproxy: no sessions on app -> 0 workers" || not_ok "p-hap: $(workers p-hap)"

# ---- 2. a change at the source reaches the scaler within one `every` ----------------------------
# nginx: 30 idle connections -> active >= 31 -> ceil(/10) = 4.
helper idle-conns idle "$NP" 30
idle_pid=$helper_pid
if within 200 p-ngx 4; then ok "nginx: 30 connections opened -> 4 workers after ${latency} ms (every 200ms)"
else not_ok "nginx: p-ngx runs $(workers p-ngx) after ${latency} ms"; fi
fast_enough nginx
stop_pid "$idle_pid"
within 200 p-ngx 1 && ok "nginx: connections closed -> back to 1 worker after ${latency} ms" \
  || not_ok "nginx: p-ngx still $(workers p-ngx)"

# haproxy: 4 held requests on backend app: scur 4 (1 at the server, 3 queued).
rm -f "$W/release"
helper hold-4 hold "$FP" /app 4
hold_pid=$helper_pid
if within 200 p-hap 4; then ok "haproxy: 4 held requests -> scur 4 -> 4 workers after ${latency} ms"
else not_ok "haproxy: p-hap runs $(workers p-hap) after ${latency} ms: $(grep c-hap "$log" | tail -2)"; fi
fast_enough haproxy
wait_for 10 log_has "[c-hq] desired 0: app=3 per_instance=100000" \
  && ok "haproxy: qcur of app reads 3 (server maxconn 1)" || not_ok "no qcur=3 reading: $(grep 'app=' "$log" | tail -2)"
touch "$W/release"
within 200 p-hap 0 && ok "haproxy: requests answered -> 0 workers after ${latency} ms" \
  || not_ok "haproxy: p-hap still $(workers p-hap)"
wait "$hold_pid" 2>/dev/null

# prometheus: the scrape target changes; Prometheus has it one scrape (1 s) later.
metrics 4 5
t0=$(now_ms)
wait_for 10 prom_sum_is 9 || not_ok "prometheus never saw the change: $(prom_sum)"
scraped=$(($(now_ms) - t0))
if within 200 p-prom 9; then
  ok "prometheus: file 2+3 -> 4+5: 9 workers ${latency} ms after Prometheus had it (${scraped} ms after the file changed)"
else not_ok "prometheus: p-prom runs $(workers p-prom) after ${latency} ms"; fi
fast_enough prometheus
wait_for 10 workers_are p-a 4 && wait_for 10 workers_are p-b 5 \
  && ok "prometheus: each series follows: /a -> 4, /b -> 5" || not_ok "p-a $(workers p-a), p-b $(workers p-b)"

# nginx requests_per_second: a keep-alive client for 4 s.
helper load load "$NP" /status 4
load_pid=$helper_pid
rps_high() { grep -oE '\[c-probe\] desired [0-9]+: ngx-rps=[0-9.]+' "$log" | sed 's/.*=//' |
  awk '$1 >= 100 { found = 1 } END { exit !found }'; }
wait_for 8 rps_high && ok "nginx: requests_per_second reads >= 100 under load ($(grep -oE 'ngx-rps=[0-9.]+' "$log" | sort -t= -k2 -n | tail -1))" \
  || not_ok "nginx: no rate >= 100: $(grep -oE 'ngx-rps=[0-9.]+' "$log" | tail -5 | tr '\n' ' ')"
wait "$load_pid"
ok "nginx: the load made $(cat "$W/load.log")"
log_has "[ngx-rps] read failed" && not_ok "ngx-rps failed: $(grep 'ngx-rps' "$log" | head -2)" \
  || ok "nginx: the first read of requests_per_second is no reading and no failure"

# ---- 3. empty, bad query, garbage, oversized, credentials: clear errors --------------------------
expect_line() { # expect_line WHAT TEXT: a log line with TEXT appears
  wait_for 10 log_has "$2" && ok "$1" || not_ok "$1: no line '$2': $(grep -F "$(echo "$2" | cut -c1-20)" "$log" | head -2)"
}
expect_line "prometheus: an empty result fails" "[prom-empty] read failed: query returned no series"
expect_line "prometheus: empty_as_zero reads 0" "[c-probe] desired 0: prom-empty0=0 per_instance=100000"
log_has "[prom-empty0] read failed" && not_ok "prom-empty0 failed" || ok "prometheus: empty_as_zero never fails"
expect_line "prometheus: a bad query gives the server's error" \
  "[prom-bad] read failed: GET $P:$PP/api/v1/query: HTTP 400: bad_data: invalid parameter \"query\": 1:5: parse error: unclosed left parenthesis"
expect_line "prometheus: garbage is refused" "[prom-junk] read failed: GET $P:$NP/junk/api/v1/query: not JSON (at byte 2 of 22)" # cJSON skips the two control bytes as blanks
expect_line "prometheus: a 10 MB reply is refused" "[prom-big] read failed: GET $P:$NP/big/api/v1/query: reply body over the limit of 8388608 bytes"
expect_line "prometheus: basic auth reads" "[c-probe] desired 0: prom-auth-ok=10 per_instance=100000"
expect_line "prometheus: wrong credentials are named" "[prom-auth-bad] read failed: GET $P:$NP/auth/api/v1/query: HTTP 401: the credentials were refused (username, password)"
expect_line "prometheus: headers are sent" "[c-probe] desired 0: prom-bearer=10 per_instance=100000"
expect_line "prometheus: a missing token is named" "[prom-no-bearer] read failed: GET $P:$NP/bearer/api/v1/query: HTTP 403: access forbidden"
expect_line "nginx: basic auth reads" "[c-probe] desired 0: ngx-auth-ok="
expect_line "nginx: wrong credentials are named" "[ngx-auth-bad] read failed: GET $P:$NP/auth/status: HTTP 401: the credentials were refused (username, password)"
expect_line "nginx: missing credentials are named" "[ngx-auth-none] read failed: GET $P:$NP/auth/status: HTTP 401: the page wants credentials (username, password)"
expect_line "nginx: garbage is refused" "[ngx-junk] read failed: GET $P:$NP/junk/status: not an nginx stub_status page (it starts \"  garbage{{{ not json \")"
expect_line "nginx: another page is refused" "[ngx-scrape-page] read failed: GET $P:$NP/metrics: not an nginx stub_status page (it starts \"# TYPE inflight gauge in\")"
expect_line "nginx: a 10 MB reply is refused" "[ngx-big] read failed: GET $P:$NP/big/status: reply body over the limit of 65536 bytes"
expect_line "haproxy: a server's row reads (weight of web/n1)" "[c-hsrv] desired 0: web=1 per_instance=100000"
expect_line "haproxy: stats auth reads (act of web)" "[c-hauth] desired 0: web=1 per_instance=100000"
expect_line "haproxy: wrong credentials are named" "[hap-auth-bad] read failed: GET $P:$HA/stats;csv: HTTP 401: the credentials were refused (username, password)"
expect_line "haproxy: missing credentials are named" "[hap-auth-none] read failed: GET $P:$HA/stats;csv: HTTP 401: the stats page wants credentials (username, password)"
expect_line "haproxy: the HTML page is refused, with a hint" "[hap-html] read failed: GET $P:$HP/stats: not HAProxy stats CSV: no \"# pxname,svname,...\" header line (does the url end in ;csv?)"
expect_line "haproxy: an unknown column is named" "[hap-column] read failed: GET $P:$HP/stats;csv: no column \"sessions_now\" in the stats CSV header"
expect_line "haproxy: an unknown backend lists the backends" "[hap-nobackend] read failed: GET $P:$HP/stats;csv: no backend \"api\" in the stats (backends: web, app)"
expect_line "prometheus: a NaN value fails, naming the series" \
  "[prom-nan] read failed: the query's value is NaN for {__name__=\"broken\", instance=\"127.0.0.1:$NP\", job=\"web\", route=\"/c\"} (not a number)"
expect_line "prometheus: a NaN series among others gives no reading and a warning" \
  "warn  [prom-some-nan] 1 of 3 series have no number (NaN or Inf) and give no reading, e.g. {__name__=\"broken\""
log_has "[prom-some-nan] read failed" && not_ok "prom-some-nan failed" \
  || ok "prometheus: the other two series still read"
expect_line "prometheus: labels past 14 are cut, said once" \
  "warn  [prom-wide] a series has 18 labels; readings carry the first 14 (the rest are cut: aggregate with sum by (...) to choose them)"
n=$(log_count "[prom-wide] a series has")
[ "$n" = 1 ] && ok "prometheus: the cut is logged once" || not_ok "the cut is logged $n times"
# Failures are logged once per change of state, not at every read.
n=$(log_count "[prom-bad] read failed")
[ "$n" = 1 ] && ok "a failure that repeats is logged once at warn ($n line)" || not_ok "prom-bad logged $n times"

# ---- 4. servers killed mid-run: errors, hold or fallback, then recovery ---------------------------
# Prometheus: the count is held.
stop_pid "$prom_pid"; prom_pid=""
expect_line "prometheus killed: an error line" "[prom-total] read failed: GET $P:$PP/api/v1/query: "
wait_for 10 log_has "[c-prom] prom-total: 3 failures -> hold 9" \
  && ok "prometheus killed: the policy counts the error events and holds 9" \
  || not_ok "no hold line: $(grep -F '[c-prom]' "$log" | tail -3)"
sleep 1
workers_are p-prom 9 && ok "prometheus killed: still 9 workers (not 0)" || not_ok "p-prom: $(workers p-prom)"
metrics 1 1
start_prom
wait_for 30 log_has "[prom-total] reading again after" \
  && ok "prometheus back on port $PP: $(grep -oE '\[prom-total\] reading again after [0-9]+ failures?' "$log" | tail -1)" \
  || not_ok "prometheus: no recovery: $(grep prom-total "$log" | tail -2)"
wait_for 30 workers_are p-prom 2 && ok "prometheus back: the count follows the source again (2)" \
  || not_ok "p-prom: $(workers p-prom) (prometheus has $(prom_sum))"

# HAProxy: the fallback (or the hold, without it).
rm -f "$W/release"
helper hold-5 hold "$FP" /app 5
wait_for 10 workers_are p-hap 5 || not_ok "haproxy: 5 held requests -> p-hap $(workers p-hap)"
stop_pid "$haproxy_pid"; haproxy_pid=""
expect_line "haproxy killed: an error line" "[hap-scur] read failed: GET $P:$HP/stats;csv: "
if [ $HAS_FALLBACK = 1 ]; then
  wait_for 10 log_has "[c-hap] desired 2: hap-scur: 3 failures -> fallback 2" \
    && ok "haproxy killed: the policy moves to its fallback" || not_ok "no fallback line: $(grep -F '[c-hap]' "$log" | tail -3)"
  wait_for 10 workers_are p-hap 2 && ok "haproxy killed: fallback 2 workers" || not_ok "p-hap: $(workers p-hap)"
else
  wait_for 10 log_has "[c-hap] hap-scur: 3 failures -> hold 5" && ok "haproxy killed: held at 5 (no fallback in this build)" \
    || not_ok "no hold line"
fi
touch "$W/release"
start_haproxy
wait_for 20 log_has "[hap-scur] reading again after" && ok "haproxy back on port $HP: reading again" \
  || not_ok "haproxy: no recovery"
wait_for 10 workers_are p-hap 0 && ok "haproxy back: scur 0 -> 0 workers" || not_ok "p-hap: $(workers p-hap)"

# nginx last (Prometheus scrapes it): 30 connections, then killed: the fallback.
helper idle-30 idle "$NP" 30
idle_pid=$helper_pid
wait_for 10 workers_are p-ngx 4 || not_ok "nginx: p-ngx $(workers p-ngx) before the kill"
stop_pid "$nginx_pid"; nginx_pid=""
stop_pid "$idle_pid"
expect_line "nginx killed: an error line" "[ngx-active] read failed: GET $P:$NP/status: "
expect_line "nginx killed: requests_per_second fails too" "[ngx-rps] read failed: GET $P:$NP/status: "
if [ $HAS_FALLBACK = 1 ]; then
  wait_for 10 workers_are p-ngx 2 && ok "nginx killed: fallback 2 workers" || not_ok "p-ngx: $(workers p-ngx)"
else
  sleep 2; workers_are p-ngx 4 && ok "nginx killed: held at 4 workers" || not_ok "p-ngx: $(workers p-ngx)"
fi
start_nginx
wait_for 20 log_has "[ngx-active] reading again after" && ok "nginx back on port $NP: reading again" \
  || not_ok "nginx: no recovery"
wait_for 10 workers_are p-ngx 1 && ok "nginx back: 1 worker" || not_ok "p-ngx: $(workers p-ngx)"
wait_for 10 log_has "[ngx-rps] reading again after" && ok "nginx back: requests_per_second reads again" \
  || not_ok "ngx-rps: no recovery"
kill -0 "$daemon" 2>/dev/null && ok "the daemon ran throughout" || not_ok "the daemon died"
grep -E ' error +\[' "$log" | grep -v 'read failed' | head -3 | sed 's/^/# error line: /'

# ---- 5. SIGTERM -----------------------------------------------------------------------------------
kill -TERM "$daemon"
for _ in $(seq $((300 * SLOW))); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$daemon" 2>/dev/null; then
  kill -KILL "$daemon"; wait "$daemon" 2>/dev/null; rc=255
else
  wait "$daemon"; rc=$?
fi
daemon=""
[ $rc = 0 ] && ok "SIGTERM: exit 0" || not_ok "SIGTERM: exit $rc"
for p in p-prom p-a p-b p-ngx p-hap p-probe; do
  wait_for 5 workers_are $p 0 || not_ok "$p: $(workers $p) workers left"
done

echo "$fails failure(s)"
[ $fails = 0 ]
