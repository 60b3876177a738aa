#!/bin/bash
# The router's tokens end to end in a live `scalebus run`: services registered at run time with
# POST /_scalebus/token, written as pipeline fragments into the router's state_dir, which the
# pipeline file includes, checked as `scalebus check` would, applied through the reload path.
#   - auth: no token_auth -> 403; no or a wrong bearer -> 401; a token_auth under 16 characters
#     is refused at the file's position;
#   - a bad request (unknown field, bad name) -> 400 naming the field; a backend the
#     configuration check refuses -> 400 with the fragment's own FILE:LINE:COL, and no file left;
#   - created (201): the service answers from zero through the router, the request's `$` reaches
#     the command as it was posted (never the daemon's environment);
#   - GET lists and reads tokens; the same POST again changes nothing;
#   - a restart of the daemon: the token is still there and serves;
#   - an update (200) is a new version: new requests reach it;
#   - DELETE: the service is gone (404), its files too; a folder the file does not include -> 409.
# Ends only the processes it started, by pid; every wait is bounded.
#
#   tests/test_tokens.sh BUILD/scalebus SOURCE_DIR
#
# SB_E2E_WRAP, when set, prefixes `scalebus run` (e.g. valgrind); waits are then 10 times longer.
set -u
SB=$1
SRC=$(cd "$2" && pwd)
WRAP=${SB_E2E_WRAP:-}
SLOW=1
[ -n "$WRAP" ] && SLOW=10
W=$(mktemp -d /tmp/sb-tokens.XXXXXX)
fails=0
daemon=""
cleanup() {
  [ -n "$daemon" ] && stop_pid "$daemon" 10
  keep_or_remove "$W"
}
trap cleanup EXIT
trap 'fails=$((fails + 1)); exit 1' INT TERM
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "1..0 # SKIP curl not installed"; exit 77; }
PY=/usr/bin/python3

PORT=$(free_port)
ADDR=127.0.0.1:$PORT
SECRET=tok-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
TOK=$W/tokens
log=$W/run.log

# The main file: one router with no service of its own, tokens on, the token folder included.
write_main() {
  cat >"$W/main.yaml" <<YAML
admin: { listen: off }
include: ["tokens/*.yaml"]
triggers:
  - id: router
    type: router
    listen: "$ADDR"
    token_auth: "$SECRET"
    state_dir: "$TOK"
    connect_timeout: 1s
YAML
}
write_main

start_daemon() {
  $WRAP "$SB" run "$W/main.yaml" --log-level debug >>"$log" 2>&1 &
  daemon=$!
  wait_for $((10 * SLOW)) up || { not_ok "router not serving: $(tail -5 "$log")"; exit 1; }
}
up() { curl -s -o /dev/null "http://$ADDR/_scalebus/status"; }
# stop_daemon: SIGTERM; the daemon must exit 0 (under valgrind, 99 is an error it found)
stop_daemon() {
  kill -TERM "$daemon" 2>/dev/null
  local rc=0
  wait "$daemon" || rc=$?
  daemon=""
  [ "$rc" = 0 ] && ok "the daemon stopped with status 0" || not_ok "the daemon exited $rc"
}
# call METHOD PATH [BODY] [AUTH]: prints the body, then the status on the last line
call() {
  local auth=${4-Bearer $SECRET}
  if [ -n "${3:-}" ]; then
    curl -s -m 20 -X "$1" -H "Authorization: $auth" -H 'Content-Type: application/json' \
      --data-binary "$3" -w '\n%{http_code}' "http://$ADDR$2"
  else
    curl -s -m 20 -X "$1" -H "Authorization: $auth" -w '\n%{http_code}' "http://$ADDR$2"
  fi
}
status_of() { tail -n 1 <<<"$1"; }
body_of() { sed '$d' <<<"$1"; }
get() { curl -s -m $((20 * SLOW)) -H "Host: $1" -w ' %{http_code}' "http://$ADDR$2"; }
json_field() { $PY -c 'import json,sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1"; }

# token NAME VERSION [EXTRA]: a token for tests/router/app.py, its first argument the version
token() {
  cat <<JSON
{"name": "$1", "hosts": ["$1.test"], "max": 2, "concurrency_level": 2, "idle_timeout": "30s",
 "queue_timeout": "20s",
 "backend": {"type": "process", "command": ["$PY", "$SRC/tests/router/app.py", "$2"],
             "port": true, "ready": "tcp", "ready_every": "50ms", "stop_grace": "2s"}${3:-}}
JSON
}

start_daemon
ok "the router serves $ADDR with tokens on"

# ---- auth ----
r=$(call POST /_scalebus/token "$(token shop v1)" "")
[ "$(status_of "$r")" = 401 ] && ok "no bearer token: 401" || not_ok "no bearer: $r"
r=$(call POST /_scalebus/token "$(token shop v1)" "Bearer wrong-$SECRET")
[ "$(status_of "$r")" = 401 ] && ok "a wrong bearer token: 401" || not_ok "wrong bearer: $r"
r=$(call GET /_scalebus/token "" "")
[ "$(status_of "$r")" = 401 ] && ok "GET without the bearer token: 401" || not_ok "GET no bearer: $r"

# ---- bad requests ----
r=$(call POST /_scalebus/token '{"name": "shop", "colour": "red"}')
[ "$(status_of "$r")" = 400 ] && grep -q "unknown field 'colour'" <<<"$r" \
  && ok "an unknown field: 400 naming it" || not_ok "unknown field: $r"
r=$(call POST /_scalebus/token '{"name": "Shop!", "backend": {"type": "process"}}')
[ "$(status_of "$r")" = 400 ] && grep -q "name:" <<<"$r" && ok "a bad name: 400" || not_ok "bad name: $r"
r=$(call POST /_scalebus/token 'not json')
[ "$(status_of "$r")" = 400 ] && ok "not JSON: 400" || not_ok "not json: $r"
r=$(call POST /_scalebus/token '{"name": "typo", "hosts": ["typo.test"], "backend": {"type": "process", "comand": ["true"]}}')
if [ "$(status_of "$r")" = 400 ] && grep -qE "$TOK/typo.yaml:[0-9]+:[0-9]+: .*comand" <<<"$r"; then
  ok "a backend the check refuses: 400 at the fragment's file:line:col ($(grep -oE "typo.yaml:[0-9]+:[0-9]+" <<<"$r" | head -1))"
else
  not_ok "refused backend: $r"
fi
[ ! -e "$TOK/typo.yaml" ] && [ ! -e "$TOK/typo.json" ] && ok "a refused token leaves no file" \
  || not_ok "files left: $(ls "$TOK")"
r=$(get typo.test /)
[ "${r##* }" = 404 ] && ok "a refused token is not served" || not_ok "typo.test: $r"

# ---- created ----
r=$(call POST /_scalebus/token "$(token shop 'v1-$HOME')")
[ "$(status_of "$r")" = 201 ] && [ "$(body_of "$r" | json_field status)" = created ] \
  && ok "created: 201" || not_ok "create: $r $(tail -5 "$log")"
[ -f "$TOK/shop.yaml" ] && [ -f "$TOK/shop.json" ] && ok "the fragment and its description are in state_dir" \
  || not_ok "files: $(ls -la "$TOK")"
"$SB" check "$W/main.yaml" >"$W/check.out" 2>&1 && ok "scalebus check passes on the file with the fragment" \
  || not_ok "check: $(cat "$W/check.out")"
r=$(get shop.test /hello)
if [ "${r##* }" = 200 ]; then
  ok "the new service answers from zero"
  v=$(json_field version <<<"${r% *}")
  [ "$v" = 'v1-$HOME' ] && ok "the posted \$ reached the command as it was (no expansion)" \
    || not_ok "version argument: $v"
else
  not_ok "shop.test: $r $(tail -5 "$log")"
fi
r=$(call GET /_scalebus/token)
[ "$(status_of "$r")" = 200 ] && body_of "$r" | $PY -c 'import json,sys
d=json.load(sys.stdin); t=[x for x in d["tokens"] if x["name"]=="shop"]
assert t and t[0]["version"]==1 and t[0]["hosts"]==["shop.test"], d' 2>"$W/py.err" \
  && ok "GET lists the token (version 1)" || not_ok "GET list: $r $(cat "$W/py.err")"
r=$(call GET /_scalebus/token/shop)
[ "$(status_of "$r")" = 200 ] && [ "$(body_of "$r" | json_field scaler)" = token-shop ] \
  && ok "GET /_scalebus/token/shop reads it" || not_ok "GET one: $r"
r=$(call GET /_scalebus/token/nothing)
[ "$(status_of "$r")" = 404 ] && ok "GET of an unknown token: 404" || not_ok "GET unknown: $r"
reloads=$(grep -c "running (" "$log")
r=$(call POST /_scalebus/token "$(token shop 'v1-$HOME')")
[ "$(status_of "$r")" = 200 ] && [ "$(body_of "$r" | json_field status)" = unchanged ] \
  && ok "the same token again: 200 unchanged" || not_ok "same again: $r"
sleep 0.5
[ "$(grep -c "running (" "$log")" = "$reloads" ] && ok "... and no reload" || not_ok "a reload for an unchanged token"

# ---- restart ----
stop_daemon
start_daemon
r=$(get shop.test /again)
[ "${r##* }" = 200 ] && ok "after a restart the token still serves" || not_ok "after restart: $r $(tail -5 "$log")"
r=$(call GET /_scalebus/token/shop)
[ "$(status_of "$r")" = 200 ] && ok "... and GET still reads it" || not_ok "GET after restart: $r"

# ---- update: a new version ----
r=$(call POST /_scalebus/token/shop "$(token shop v2)")
[ "$(status_of "$r")" = 200 ] && [ "$(body_of "$r" | json_field version)" = 2 ] \
  && ok "an update: 200, version 2" || not_ok "update: $r"
app_pid=""
new_version() { r=$(get shop.test /v); [ "${r##* }" = 200 ] && [ "$(json_field version <<<"${r% *}")" = v2 ] \
  && app_pid=$(json_field pid <<<"${r% *}"); }
wait_for $((20 * SLOW)) new_version && ok "requests reach the new version" || not_ok "after update: $r"

# ---- delete ----
r=$(call DELETE /_scalebus/token/shop)
[ "$(status_of "$r")" = 200 ] && ok "DELETE: 200" || not_ok "delete: $r"
gone() { r=$(get shop.test /); [ "${r##* }" = 404 ]; }
wait_for $((10 * SLOW)) gone && ok "the deleted service gets 404" || not_ok "after delete: $r"
[ ! -e "$TOK/shop.yaml" ] && [ ! -e "$TOK/shop.json" ] && ok "its files are gone" || not_ok "left: $(ls "$TOK")"
r=$(call DELETE /_scalebus/token/shop)
[ "$(status_of "$r")" = 404 ] && ok "DELETE again: 404" || not_ok "delete again: $r"
no_app() { ! kill -0 "$app_pid" 2>/dev/null; }
wait_for $((10 * SLOW)) no_app && ok "its instance is stopped (pid $app_pid)" || not_ok "app pid $app_pid still running"

# ---- a folder the file does not include ----
stop_daemon
sed -i '/^include:/d' "$W/main.yaml"
start_daemon
r=$(call POST /_scalebus/token "$(token lost v1)")
[ "$(status_of "$r")" = 409 ] && grep -q "include" <<<"$r" && ok "state_dir not included: 409 saying so" \
  || not_ok "not included: $r"
[ ! -e "$TOK/lost.yaml" ] && ok "... and no file left" || not_ok "lost.yaml left"

# ---- tokens off, a short token_auth ----
stop_daemon
sed -i '/token_auth/d' "$W/main.yaml"
start_daemon
r=$(call POST /_scalebus/token "$(token off v1)")
[ "$(status_of "$r")" = 403 ] && ok "no token_auth: 403" || not_ok "tokens off: $r"
stop_daemon
sed -i "s|    state_dir:|    token_auth: short\n    state_dir:|" "$W/main.yaml"
"$SB" check "$W/main.yaml" >"$W/check.out" 2>&1
grep -qE "main.yaml:[0-9]+:[0-9]+: .*token_auth: at least 16" "$W/check.out" \
  && ok "a short token_auth is refused at its file:line:col" || not_ok "short token_auth: $(cat "$W/check.out")"

[ -n "$daemon" ] && stop_daemon
[ "$fails" = 0 ] && echo "# all passed" || echo "# $fails failed"
exit $((fails > 0))
