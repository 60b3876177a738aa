#!/bin/bash
# The docker scaler end to end, through the real daemon, against a real dockerd and then a real
# `podman system service` (its Docker-compatible API), each started here on a private socket,
# data root and state folder under one temporary folder, with an image imported from a tarball of
# Debian's busybox-static (no registry is reached). A pipeline drives it: an http_json trigger
# reads the desired count from a file served by a local python3 HTTP server, and a direct
# connector hands it to the scalers. The instance lists the scalers publish are read as any
# subscriber reads them, through the test-only trigger instances_recorder (one JSON line per
# list). For each engine it shows:
#   - scale up from nothing (the containers carry scalebus.scaler=<id>, the labels, env and init
#     asked for; an httpd container answers on its port), and scale down newest first with the
#     grace (a container that ignores SIGTERM is killed after stop_grace);
#   - a container killed behind its back (failed: removed and replaced), one removed behind its
#     back, and one added by hand with the scaler's label: each logged and fixed by reconcile;
#   - busy: Podman refuses to stop a paused container ("container state improper"): retried
#     until it is unpaused (dockerd stops a paused container, so it has no busy to show);
#   - the engine stopped: "cannot reach docker at ...", a change asked meanwhile is made once it
#     is back; --dry-run logs the exact calls and changes nothing;
#   - adoption: a restart with 3 running and min 1 leaves 3 running; a reload with other
#     container options takes them in place (nothing restarts); on_stop keep leaves the fleet,
#     on_stop stop removes it; SIGTERM exits 0;
#   - pull: missing pulls from a registry on loopback (Debian's docker-registry) and runs it;
#     pull: never with a missing image, and pull: missing from an unreachable registry: clear
#     errors; containers it does not own (no label, another scaler's label) are never touched;
#   - health_cmd: the engine keeps the Healthcheck sent (Podman's compatible API too); a container
#     whose check passes is published starting, then ready; the address in the published list
#     answers HTTP (Docker: the container's IP on a bridge network the test creates, which works
#     with --iptables=false; Podman: the port published on 127.0.0.1, on its default network;
#     both: 127.0.0.1:port on the host network); when its check starts failing (the test removes
#     the file it tests) it is unhealthy, published failed, logged, removed and replaced by a new
#     container that is ready and answers. Podman runs health checks from systemd timers and
#     there is no systemd here: the test runs `podman healthcheck run` each second instead, as
#     the timer would (the scaler only reads the status either way). A check is an exec in the
#     container: where an exec does not enter the container's filesystem (engines run in a
#     chroot, as in fresh-debian), only the Healthcheck kept and "starting, never ready" are shown.
#
#   tests/test_docker.sh BUILD/scalebus SOURCE_DIR [RECORDER_DIR]
#
# RECORDER_DIR holds instances_recorder.so (default: BUILD/tests/docker-plugins).
#
# Needs root, /usr/sbin/dockerd (docker.io), /bin/busybox (busybox-static) and podman with
# catatonit; exits 77 (skipped) with one line when the engines cannot run here. SB_E2E_WRAP, when
# set, prefixes `scalebus run` (waits are then 10 times longer). On a failure the temporary
# folder, with every log, is kept.
set -u
SB=$1
SRC=$2
WRAP=${SB_E2E_WRAP:-}
SLOW=${SLOW:-1}
[ -n "$WRAP" ] && SLOW=10
PY=/usr/bin/python3
PS="$PY $SRC/tests/docker/ps.py"
RECDIR=${3:-$(dirname "$SB")/tests/docker-plugins}
fails=0
. "$(dirname "$0")/lib.sh"

skip() { echo "# skipped: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "the container engines need root"
[ -x /usr/sbin/dockerd ] || skip "no /usr/sbin/dockerd (Debian package docker.io)"
[ -x /bin/busybox ] || skip "no /bin/busybox (Debian package busybox-static)"
command -v curl >/dev/null || skip "no curl"
[ -f "$RECDIR/instances_recorder.so" ] || skip "no $RECDIR/instances_recorder.so (built with the tests)"

W=$(mktemp -d /tmp/sb-docker.XXXXXX)
daemon="" server_pid="" registry_pid="" engine_pid="" engine="" SOCK="" checker_pid="" NET=""

# Everything mounted under $W (overlay layers, shm, a netns file), deepest first.
unmount_under() {
  grep -o " $W/[^ ]*" /proc/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
  done
}
api() { # api METHOD PATH [JSON]: one call on the engine under test
  if [ $# -ge 3 ]; then
    curl -s --max-time 30 --unix-socket "$SOCK" -X "$1" -H 'Content-Type: application/json' \
      -d "$3" "http://d/v1.41$2"
  else
    curl -s --max-time 30 --unix-socket "$SOCK" -X "$1" "http://d/v1.41$2"
  fi
}
names() { api GET "/containers/json?all=1" | $PS names "$@" 2>/dev/null; } # names SCALER [all]
count() { names "$@" | wc -w; }
count_is() { [ "$(count "$1")" = "$2" ]; }
none_left() { [ -z "$(names "$1" all)" ]; }
inspect() { api GET "/containers/$1/json" | $PS inspect "${@:2}" 2>/dev/null; } # inspect NAME FIELD [ARG]
run_container() { # run_container NAME LABELS: a container this test starts by hand
  api POST "/containers/create?name=$1" "{\"Image\":\"test/busybox\",\"Cmd\":[\"sleep\",\"3600\"],\
\"Labels\":$2,\"HostConfig\":{\"NetworkMode\":\"host\",\"Init\":true}}" >/dev/null
  api POST "/containers/$1/start" >/dev/null
}

podman_cli() { # the podman command line on the test's storage, as its service runs
  CONTAINERS_CONF=$W/containers.conf CONTAINERS_REGISTRIES_CONF=$W/registries.conf \
    podman --root "$W/podman/root" --runroot "$W/podman/run" --tmpdir "$W/podman/tmp" \
    --storage-driver vfs --network-config-dir "$W/podman/cni" --events-backend file \
    --cgroup-manager cgroupfs "$@"
}
start_engine() {
  if [ "$engine" = docker ]; then
    # --live-restore: containers outlive the engine's restart, as on a real host.
    setsid /usr/sbin/dockerd --data-root "$W/docker/data" --exec-root "$W/docker/exec" \
      --pidfile "$W/docker/dockerd.pid" -H "unix://$SOCK" --iptables=false --bridge=none \
      --live-restore >>"$W/docker-engine.log" 2>&1 </dev/null &
  else
    # The same flags as podman_cli, on the process stop_pid stops.
    CONTAINERS_CONF=$W/containers.conf CONTAINERS_REGISTRIES_CONF=$W/registries.conf \
      setsid podman --root "$W/podman/root" \
      --runroot "$W/podman/run" --tmpdir "$W/podman/tmp" --storage-driver vfs \
      --network-config-dir "$W/podman/cni" --events-backend file --cgroup-manager cgroupfs \
      system service --time=0 "unix://$SOCK" >>"$W/podman-engine.log" 2>&1 </dev/null &
  fi
  engine_pid=$!
  wait_for 30 curl -sf --max-time 1 --unix-socket "$SOCK" http://d/_ping -o /dev/null
}
stop_engine() {
  stop_pid "$engine_pid" 20
  engine_pid=""
}
# Every container of the engine (all are this test's), the engine, what it left mounted or running.
engine_cleanup() {
  [ -n "$engine" ] || return 0
  stop_pid "$checker_pid"
  checker_pid=""
  if [ -n "$engine_pid" ]; then
    for id in $(api GET "/containers/json?all=1" | $PY -c 'import json,sys; print(" ".join(c["Id"] for c in json.load(sys.stdin)))' 2>/dev/null); do
      api DELETE "/containers/$id?force=1&v=1" >/dev/null
    done
    # The bridge network (and its host interface) the test made.
    [ -z "$NET" ] || api DELETE "/networks/$NET" >/dev/null
  fi
  stop_engine
  # dockerd's own containerd stays up under --live-restore: stopped by its pid file.
  local cpid
  cpid=$(cat "$W/docker/exec/containerd/containerd.pid" 2>/dev/null)
  if [ "$engine" = docker ] && [ -n "$cpid" ] && kill -0 "$cpid" 2>/dev/null; then
    kill -TERM "$cpid"
    for _ in $(seq 100); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
  fi
  unmount_under
  engine=""
}
cleanup() {
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
  stop_pid "$server_pid"
  stop_pid "$registry_pid"
  engine_cleanup
  unmount_under
  keep_or_remove "$W"
}
trap cleanup EXIT
trap 'fails=$((fails + 1)); exit 1' INT TERM

# ---- the image, the count server ------------------------------------------------------------
mkdir -p "$W/rootfs/bin" "$W/rootfs/www" "$W/rootfs/tmp" "$W/www" "$W/docker" "$W/podman"
chmod 1777 "$W/rootfs/tmp"
cp /bin/busybox "$W/rootfs/bin/"
for a in $("$W/rootfs/bin/busybox" --list); do
  [ "$a" = busybox ] || ln -sf busybox "$W/rootfs/bin/$a"
done
echo "served from a container" >"$W/rootfs/www/index.html"
# Only this image has it: an exec that finds it runs in the container's filesystem.
echo "the test image of test_docker" >"$W/rootfs/.scalebus-test-image"
tar -C "$W/rootfs" -cf "$W/busybox.tar" .
# Podman: the rlimit it cannot raise here (no CAP_SYS_RESOURCE), file locks in its own folder.
printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=32768:32768"]\n[engine]\nlock_type = "file"\n' \
  "$(ulimit -Hn)" "$(ulimit -Hn)" >"$W/containers.conf"

# A registry on loopback (Debian's docker-registry), for pull: missing; Podman is told it speaks
# plain HTTP, as an operator would for such a registry.
RP=""
if [ -x /usr/bin/docker-registry ]; then
  RP=$(free_port)
  printf 'version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: %s/registry}}\nhttp: {addr: "127.0.0.1:%s"}\n' \
    "$W" "$RP" >"$W/registry.yml"
  /usr/bin/docker-registry serve "$W/registry.yml" >"$W/registry.log" 2>&1 &
  registry_pid=$!
  printf '[[registry]]\nlocation = "127.0.0.1:%s"\ninsecure = true\n' "$RP" >"$W/registries.conf"
  wait_for 10 curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$RP/v2/" || not_ok "the registry does not answer"
else
  echo "# no /usr/bin/docker-registry (Debian package docker-registry): pull: missing is shown failing only"
  : >"$W/registries.conf"
fi

SP=$(free_port)
S="http://127.0.0.1:$SP"
$PY -m http.server "$SP" --bind 127.0.0.1 --directory "$W/www" >"$W/server.log" 2>&1 &
server_pid=$!
want() { printf '{"n": %s}\n' "$2" >"$W/www/$1.tmp" && mv "$W/www/$1.tmp" "$W/www/$1.json"; }
want web 0
wait_for 10 curl -sf -o /dev/null --max-time 1 "$S/web.json" || not_ok "the count server does not answer"

"$SB" check "$SRC/examples/web-docker.yaml" >"$W/check.out" 2>&1 \
  && ok "examples/web-docker.yaml passes scalebus check" || not_ok "example: $(cat "$W/check.out")"

# ---- the daemon and its log -------------------------------------------------------------------
log=""
log_has() { grep -qF -- "$1" "$log"; }
mark() { mark=$(wc -l <"$log"); }
since_has() { tail -n +$((mark + 1)) "$log" | grep -qF -- "$1"; }
since_last() { tail -n +$((mark + 1)) "$log" | grep -F -- "$1" | tail -1 | sed 's/^[^]]*] //'; }
expect() { # expect TEXT WHAT: a line holding TEXT since the mark, within 15 s
  if wait_for 15 since_has "$1"; then ok "$engine: $2: $(since_last "$1")"; else
    not_ok "$engine: $2: no line with '$1'"
  fi
}
start_daemon() { # start_daemon [--dry-run]
  DOCKER_HOST=unix://$SOCK $WRAP "$SB" run "$W/$engine.yaml" --plugin-dir "$RECDIR" "$@" >>"$log" 2>&1 &
  daemon=$!
}
stop_daemon() { # SIGTERM; asserts exit 0
  kill -TERM "$daemon"
  for _ in $(seq $((300 * SLOW))); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
  local rc
  if kill -0 "$daemon" 2>/dev/null; then kill -KILL "$daemon"; wait "$daemon" 2>/dev/null; rc=255
  else wait "$daemon"; rc=$?; fi
  daemon=""
  [ $rc = 0 ] && ok "$engine: SIGTERM: exit 0" || not_ok "$engine: SIGTERM: exit status $rc"
}
pipeline() { # pipeline PORT ON_STOP [TEAM]: the file the daemon runs for the engine under test
  local hp=$1 team=${3:-test}
  cat >"$W/$engine.yaml" <<EOF
triggers:
  - { id: want-web, type: http_json, url: "$S/web.json", select: /n, every: 200ms, timeout: 2s, backoff_max: 1s }
  - { id: want-slow, type: http_json, url: "$S/slow.json", select: /n, every: 200ms, timeout: 2s, backoff_max: 1s }
  # The instance lists, as any subscriber sees them.
  - { id: seen-api, type: instances_recorder, scaler: api, file: "$W/$engine-api.jsonl" }
  - { id: seen-www, type: instances_recorder, scaler: www, file: "$W/$engine-www.jsonl" }
  - { id: seen-web, type: instances_recorder, scaler: web, file: "$W/$engine-web.jsonl" }
connectors:
  - { id: to-web, type: direct, from: want-web, to: web }
  - { id: to-slow, type: direct, from: want-slow, to: slow }
scalers:
  - id: web
    type: docker
    socket: "$SOCK"
    image: test/busybox
    command: [sleep, "3600"]
    network: host
    port: 8080
    env: { GREETING: "hello from scalebus" }
    labels: { team: $team }
    stop_grace: 5s
    reconcile_every: 1s
    on_stop: $2
    min: 1
    max: 6
  # init: false, so busybox sleep is PID 1 and ignores SIGTERM: a stop takes the whole grace.
  - { id: slow, type: docker, socket: "$SOCK", image: test/busybox, command: [sleep, "3600"],
      network: host, init: false, stop_grace: 2s, min: 0, max: 1 }
  # No socket: DOCKER_HOST says where the engine is.
  - { id: www, type: docker, image: test/busybox, network: host, port: $hp,
      command: [httpd, -f, -p, "127.0.0.1:$hp", -h, /www], min: 1, max: 1 }
  - { id: ghost, type: docker, socket: "$SOCK", image: test/nothere, network: host, min: 1, max: 1 }
  # Ready when its health check passes (the file is there 2s after the start, so the list
  # after the start sees it starting, however slow the machine), replaced when it fails twice
  # in a row.
  - id: api
    type: docker
    socket: "$SOCK"
    image: test/busybox
    command: [sh, -c, "(sleep 2; touch /tmp/ok) & exec httpd -f -p 8080 -h /www"]
    port: 8080$([ -n "$NET" ] && printf '\n    network: %s' "$NET")
    health_cmd: ["test -f /tmp/ok"]
    health_interval: 1s
    health_retries: 2
    health_start_period: 5s
    stop_grace: 2s
    reconcile_every: 1s
    min: 1
    max: 1
  - { id: ghost-pull, type: docker, socket: "$SOCK", image: "127.0.0.1:$DEAD/test/nothere",
      pull: missing, network: host, min: 1, max: 1 }
EOF
  [ -z "$RP" ] || cat >>"$W/$engine.yaml" <<EOF
  - { id: pulled, type: docker, socket: "$SOCK", image: "127.0.0.1:$RP/test/busybox", pull: missing,
      command: [sleep, "3600"], network: host, min: 1, max: 1 }
EOF
}

# ---- the checks, once per engine ----------------------------------------------------------------
run_engine() {
  engine=$1
  SOCK=$W/$engine.sock
  log=$W/$engine-daemon.log
  : >"$log"
  mark=0
  local t0 ms hp DEAD
  t0=$(now_ms)
  if ! start_engine; then
    not_ok "$engine: the engine does not answer on $SOCK: $(tail -3 "$W/$engine-engine.log" | tr '\n' ' ')"
    return
  fi
  ok "$engine: the engine answers on its own socket after $(($(now_ms) - t0)) ms"
  curl -s --max-time 60 --unix-socket "$SOCK" -X POST -H 'Content-Type: application/x-tar' \
    --data-binary "@$W/busybox.tar" "http://d/v1.41/images/create?fromSrc=-&repo=test/busybox&tag=latest" \
    >"$W/$engine-import.out"
  [ "$(inspect_image)" = yes ] && ok "$engine: test/busybox imported from the tarball" \
    || not_ok "$engine: import: $(cat "$W/$engine-import.out")"

  if [ -n "$RP" ] && [ "$engine" = docker ]; then
    # The image into the registry, and out of the engine again: the scaler must pull it.
    api POST "/images/test/busybox/tag?repo=127.0.0.1:$RP/test/busybox&tag=latest" >/dev/null
    curl -s --max-time 60 --unix-socket "$SOCK" -X POST -H 'X-Registry-Auth: e30=' \
      "http://d/v1.41/images/127.0.0.1:$RP/test/busybox/push?tag=latest" >"$W/push.out"
    api DELETE "/images/127.0.0.1:$RP/test/busybox:latest" >/dev/null
    curl -sf -o /dev/null "http://127.0.0.1:$RP/v2/test/busybox/manifests/latest" \
      -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
      && ok "$engine: test/busybox pushed to the loopback registry" || not_ok "push: $(tail -2 "$W/push.out")"
  fi

  # Not ours: one without the label (named like ours), one of another scaler.
  run_container web-9-byhand '{}'
  run_container other-0 '{"scalebus.scaler":"other"}'
  local stranger other
  stranger=$(inspect web-9-byhand Id)
  other=$(inspect other-0 Id)

  # Docker has no default bridge here (--bridge=none): a bridge network of the test's own, which
  # the host reaches without iptables. Podman publishes the port on its default network.
  NET=""
  if [ "$engine" = docker ]; then
    api POST /networks/create '{"Name":"sbtest","Driver":"bridge"}' | grep -q '"Id"' \
      && { NET=sbtest; ok "$engine: a bridge network of the test's own (sbtest), with --iptables=false"; } \
      || not_ok "$engine: network create failed"
  fi
  hp=$(free_port)
  DEAD=$(free_port)
  pipeline "$hp" keep
  want web 2
  want slow 1
  t0=$(now_ms)
  start_daemon
  if wait_for 20 count_is web 2; then
    ok "$engine: scale up from nothing: 2 containers in $(($(now_ms) - t0)) ms ($(names web))"
  else
    not_ok "$engine: scale up: $(names web all): $(since_last '[web]')"
  fi
  local first
  first=$(names web | cut -d' ' -f1)
  [ "$(inspect "$first" labels)" = "scalebus.scaler=web,team=test" ] \
    && ok "$engine: labels scalebus.scaler=web,team=test" || not_ok "$engine: labels $(inspect "$first" labels)"
  inspect "$first" env | grep -qx "GREETING=hello from scalebus" \
    && ok "$engine: env GREETING reaches the container" || not_ok "$engine: env $(inspect "$first" env | tr '\n' ' ')"
  [ "$(inspect "$first" init)" = true ] && ok "$engine: init: true" || not_ok "$engine: init $(inspect "$first" init)"
  case "$first" in web-0-*) ok "$engine: named <id>-<n>-<random>: $first" ;; *) not_ok "$engine: name $first" ;; esac
  wait_for 15 curl -sf --max-time 1 "http://127.0.0.1:$hp/" -o "$W/page" \
    && ok "$engine: www (its engine from DOCKER_HOST): httpd in a container answers on 127.0.0.1:$hp ($(cat "$W/page"))" \
    || not_ok "$engine: www does not answer on $hp: $(since_last '[www]')"
  wait_for 15 seen_has www "ready 127.0.0.1:$hp -" \
    && ok "$engine: www on the host network is published as $(seen www)" || not_ok "$engine: www published $(seen www)"
  wait_for 15 count_is slow 1 && ok "$engine: slow: 1 container" || not_ok "$engine: slow: $(names slow all)"
  if [ "$engine" = docker ]; then
    expect "[ghost] start failed: POST /containers/create: No such image: test/nothere:latest" "pull: never, a missing image"
  else
    expect "[ghost] start failed: POST /containers/create: " "pull: never, a missing image"
    since_last "[ghost] start failed" | grep -qi "no such image" || not_ok "$engine: no 'no such image' in the ghost error"
  fi
  expect "[ghost-pull] start failed: pull 127.0.0.1:$DEAD/test/nothere: " "pull: missing from an unreachable registry"
  none_left ghost && ok "$engine: nothing is left of the failed starts" || not_ok "$engine: ghost left $(names ghost all)"
  if [ -n "$RP" ]; then
    expect "[pulled] pulled 127.0.0.1:$RP/test/busybox" "pull: missing, an image only the registry has"
    wait_for 20 count_is pulled 1 && ok "$engine: and its container runs: $(names pulled)" \
      || not_ok "$engine: pulled: $(names pulled all): $(since_last '[pulled]')"
  fi

  health_checks

  # Up, then down newest first.
  mark
  t0=$(now_ms)
  want web 4
  wait_for 20 count_is web 4 && ok "$engine: 2 -> 4 in $(($(now_ms) - t0)) ms" || not_ok "$engine: 4: $(names web all)"
  local four keep2
  four=$(names web)
  keep2=$(echo "$four" | cut -d' ' -f1-2)
  mark
  t0=$(now_ms)
  want web 2
  if wait_for 20 count_is web 2 && wait_for 10 none_left_but web "$keep2"; then
    ok "$engine: 4 -> 2 newest first in $(($(now_ms) - t0)) ms: kept $(names web all), removed $(echo "$four" | cut -d' ' -f3-4)"
  else
    not_ok "$engine: scale down: had $four, now $(names web all)"
  fi
  since_has "/stop?t=5, DELETE /v1.41/containers/" && ok "$engine: each stop: $(since_last '/stop?t=5')" \
    || not_ok "$engine: no stop line with t=5"
  t0=$(now_ms)
  want slow 0
  if wait_for 20 none_left slow; then
    ms=$(($(now_ms) - t0))
    [ "$ms" -ge 1900 ] && [ "$ms" -le $((8000 * SLOW)) ] \
      && ok "$engine: a container that ignores SIGTERM is removed after the grace: $ms ms (stop_grace 2s)" \
      || not_ok "$engine: the slow stop took $ms ms"
  else
    not_ok "$engine: slow not removed: $(names slow all)"
  fi

  # Drift, fixed by reconcile.
  local victim
  victim=$(names web | cut -d' ' -f1)
  mark
  api POST "/containers/$victim/kill" >/dev/null
  expect "[web] changed outside scalebus: $victim failed; replacing it" "killed behind its back"
  wait_for 20 count_is web 2 && wait_for 10 not_present "$victim" \
    && ok "$engine: the dead container is removed and replaced: $(names web all)" || not_ok "$engine: after the kill: $(names web all)"
  victim=$(names web | cut -d' ' -f2)
  # the replacement the fleet just made: only one it has listed can be seen to go
  wait_for 15 seen_has web "$victim ready" || not_ok "$engine: $victim never listed ready: $(seen web)"
  mark
  api DELETE "/containers/$victim?force=1" >/dev/null
  expect "[web] changed outside scalebus: $victim is gone" "removed behind its back"
  wait_for 20 count_is web 2 && ok "$engine: replaced: $(names web)" || not_ok "$engine: after the removal: $(names web all)"
  mark
  run_container hand-made '{"scalebus.scaler":"web"}'
  expect "[web] changed outside scalebus: hand-made appeared" "added by hand with the label"
  wait_for 20 not_present hand-made && count_is web 2 \
    && ok "$engine: the extra one (the newest) is removed: $(names web)" || not_ok "$engine: after hand-made: $(names web all)"

  # Busy: a paused container.
  local newest
  newest=$(names web | cut -d' ' -f2)
  api POST "/containers/$newest/pause" >/dev/null
  mark
  want web 1
  if [ "$engine" = podman ]; then
    expect "[web] stop $newest busy: " "stopping a paused container"
    sleep 1
    [ "$(inspect "$newest" state)" = paused ] && ok "$engine: busy is retried, the container stays until it can be stopped" \
      || not_ok "$engine: $newest is $(inspect "$newest" state)"
    api POST "/containers/$newest/unpause" >/dev/null
  fi
  wait_for 30 not_present "$newest" && count_is web 1 \
    && ok "$engine: the paused (newest) container is stopped and removed$([ "$engine" = docker ] && echo ': dockerd stops a paused container, no busy')" \
    || not_ok "$engine: after pause: $(names web all): $(since_last '[web]')"
  want web 2
  wait_for 20 count_is web 2 || not_ok "$engine: back to 2: $(names web all)"

  # The engine unreachable, then back.
  mark
  stop_engine
  expect "[web] list failed: cannot reach docker at $SOCK: " "the engine stopped"
  want web 3
  sleep 1
  t0=$(now_ms)
  start_engine || not_ok "$engine: the engine does not come back"
  expect "[web] the engine answers again after" "the engine back"
  wait_for 20 count_is web 3 && ok "$engine: the change asked while it was away is made: 3 ($(($(now_ms) - t0)) ms after it came back)" \
    || not_ok "$engine: after the engine came back: $(names web all)"

  # on_stop keep, --dry-run, adoption.
  stop_daemon
  sleep 1
  count_is web 3 && ok "$engine: on_stop keep: 3 still run after scalebus stopped" || not_ok "$engine: after stop: $(names web all)"
  mark
  want web 5
  start_daemon --dry-run
  expect "[web] would POST /v1.41/containers/create?name=web-" "--dry-run, up"
  want web 1
  expect "/stop?t=5, DELETE /v1.41/containers/" "--dry-run, down"
  sleep 1
  count_is web 3 && ok "$engine: --dry-run changed nothing (3 run)" || not_ok "$engine: dry run: $(names web all)"
  stop_daemon
  rm -f "$W/www/web.json" # no policy decides: only min (1) applies
  mark
  start_daemon
  expect "[web] adopted 3 running instance(s)" "restart"
  sleep 3
  count_is web 3 && ok "$engine: a restart with 3 running and min 1 leaves 3 running" || not_ok "$engine: after restart: $(names web all)"
  mark
  want web 2
  # the stop's line comes when its DELETE has ended, after the container left the list: waited
  # for, so that it is not taken for a stop made by the reload below (a CI run did)
  wait_for 20 count_is web 2 && wait_for 10 since_has "/stop?t=" \
    && ok "$engine: and the next decision is acted on: 2" || not_ok "$engine: 2: $(names web all)"

  # A reload that changes what containers are made of takes it in place: nothing restarts, and
  # the containers started from then on have it.
  mark
  pipeline "$hp" keep test2
  kill -HUP "$daemon"
  expect "[web] options changed: taken in place" "reload with other labels"
  sleep 1.5
  count_is web 2 && ! since_has "/stop?t=" && ok "$engine: the reload stopped nothing ($(names web))" \
    || not_ok "$engine: after the reload: $(names web all): $(since_last '[web]')"
  want web 3
  if wait_for 20 count_is web 3; then
    local added
    added=$(names web | cut -d' ' -f3)
    [ "$(inspect "$added" labels)" = "scalebus.scaler=web,team=test2" ] \
      && ok "$engine: a container started after the reload has the new labels ($added)" \
      || not_ok "$engine: $added has $(inspect "$added" labels)"
  else
    not_ok "$engine: 3 after the reload: $(names web all)"
  fi
  want web 2
  wait_for 20 count_is web 2 || not_ok "$engine: back to 2 after the reload: $(names web all)"
  stop_daemon

  # on_stop stop.
  pipeline "$hp" stop
  mark
  start_daemon
  expect "[web] adopted 2 running instance(s)" "on_stop: stop, adopted"
  # A reload that changes a fleet option replaces the scaler: the new one adopts the same
  # containers, and on_stop: stop must not tear them down (it did before stop_reason).
  sed -i 's/reconcile_every: 1s/reconcile_every: 2s/' "$W/$engine.yaml"
  mark
  kill -HUP "$daemon"
  expect "[web] replaced: stopping" "on_stop: stop, a reload replaces web"
  drops=0
  for _ in $(seq 30); do count_is web 2 || drops=$((drops + 1)); sleep 0.1; done
  [ $drops = 0 ] && ok "$engine: on_stop stop: a reload that replaces the scaler keeps its 2 containers" \
    || not_ok "$engine: the reload took the fleet down ($drops samples below 2: $(names web all))"
  stop_daemon
  none_left web && ok "$engine: on_stop stop: every container of web removed before exit" || not_ok "$engine: left $(names web all)"
  count_is www 1 && ok "$engine: www (on_stop keep) still runs" || not_ok "$engine: www $(names www all)"

  # Never touched.
  [ "$(inspect web-9-byhand Id)" = "$stranger" ] && [ "$(inspect web-9-byhand state)" = running ] \
    && [ "$(inspect other-0 Id)" = "$other" ] && [ "$(inspect other-0 state)" = running ] \
    && ok "$engine: web-9-byhand (no label) and other-0 (scalebus.scaler=other) were never touched" \
    || not_ok "$engine: a container not ours changed: $(inspect web-9-byhand state) $(inspect other-0 state)"
  grep -q "web-9-byhand\|other-0" "$log" && not_ok "$engine: the log names a container not ours" || true
  engine_cleanup
}
seen() { $PS seen "$W/$engine-$1.jsonl" 2>/dev/null | tr '\n' ' '; } # seen SCALER: its last list
seen_has() { seen "$1" | grep -qF -- "$2"; }
states() { $PS states "$W/$engine-$1.jsonl" "$2" 2>/dev/null; } # states SCALER ID
ready_address() { $PS seen "$W/$engine-$1.jsonl" 2>/dev/null | awk '$2 == "ready" { print $3 }' | head -1; }
answers() { curl -sf --max-time 2 "http://$1/" -o "$W/page-$engine"; }
gone() { ! names "$1" all | grep -qw -- "$2"; } # gone SCALER NAME
# Podman's health checks run from systemd timers; there is none here: run them as the timer would.
check_health_each_second() {
  while :; do
    for c in $(names api); do
      said=$(podman_cli healthcheck run "$c" 2>&1)
      rc=$?
      echo "$(date +%T) $c: exit $rc: $said" | tr '\n' ' ' && echo
    done
    sleep 1
  done
}

# Why a check did not pass, for a failure message: each api container's State.Health as the
# engine reports it, and what the engine (or the test's podman healthcheck runs) last said of checks.
health_report() {
  local c
  for c in $(names api all); do printf '%s: %s; ' "$c" "$(inspect "$c" health)"; done
  if [ "$engine" = podman ]; then
    printf 'podman healthcheck run: %s' "$(tail -2 "$W/podman-healthcheck.log" 2>/dev/null | tr '\n' ' ')"
  else
    printf 'dockerd: %s' "$(grep -i 'health' "$W/docker-engine.log" 2>/dev/null | tail -2 | tr '\n' ' ')"
  fi
}

# exec_sees_image NAME: a command exec'd in the container runs in its filesystem. It does not
# when the engine runs in a chroot (as in ../shared/tools/fresh-debian): runc's pivot_root then
# mounts the container's root where the chroot's root is, not on "/" of the mount namespace,
# and an exec, which joins that namespace with setns(2), lands on its "/": the host's files.
exec_sees_image() {
  if [ "$engine" = podman ]; then
    podman_cli exec "$1" test -f /.scalebus-test-image >/dev/null 2>&1
    return
  fi
  local id
  id=$(api POST "/containers/$1/exec" '{"Cmd":["test","-f","/.scalebus-test-image"],"AttachStdout":true}' \
    | $PY -c 'import json,sys; print(json.load(sys.stdin)["Id"])' 2>/dev/null)
  [ -n "$id" ] || return 1
  api POST "/exec/$id/start" '{"Detach":false,"Tty":false}' >/dev/null
  [ "$(api GET "/exec/$id/json" | $PY -c 'import json,sys; print(json.load(sys.stdin).get("ExitCode"))' 2>/dev/null)" = 0 ]
}

# health_cmd, readiness, the published address, and an unhealthy container replaced.
health_checks() {
  if [ "$engine" = podman ]; then
    check_health_each_second </dev/null >>"$W/podman-healthcheck.log" 2>&1 &
    checker_pid=$!
  fi
  local first addr t0
  local want_check='{"Interval": 1000000000, "Retries": 2, "StartPeriod": 5000000000, "Test": ["CMD-SHELL", "test -f /tmp/ok"], "Timeout": 3000000000}'
  # A health check is an exec in the container: where an exec cannot see the container's files
  # no check can pass, so only what holds without one is shown (the rest would fail, and the
  # test's own exec that removes the checked file would act on the host's /tmp).
  if ! wait_for 20 count_is api 1; then
    not_ok "$engine: api does not run: $(names api all): $(since_last '[api]')"
  elif ! exec_sees_image "$(names api)"; then
    first=$(names api)
    echo "# $engine: an exec in $first does not run in its filesystem (the engine runs in a chroot?): health checks cannot pass here, only what holds without one is checked"
    [ "$(inspect "$first" healthcheck)" = "$want_check" ] \
      && ok "$engine: the engine keeps the Healthcheck sent: $want_check" \
      || not_ok "$engine: Healthcheck $(inspect "$first" healthcheck)"
    wait_for 10 seen_has api "$first starting" || true
    case "$(states api "$first")" in
      starting | starting\ failed) ok "$engine: a container whose check has not passed is published starting, never ready: $first $(states api "$first" | sed 's/ / then /g')" ;;
      *) not_ok "$engine: $first went '$(states api "$first")' with no check passed: $(health_report)" ;;
    esac
    stop_pid "$checker_pid"
    checker_pid=""
    return
  fi
  if wait_for 20 seen_has api " ready "; then
    first=$(seen api | cut -d' ' -f1)
    case "$(states api "$first")" in
      starting*ready*) ok "$engine: health_cmd passes: $first published $(states api "$first" | sed 's/ / then /g')" ;;
      *) not_ok "$engine: $first went $(states api "$first")" ;;
    esac
  else
    not_ok "$engine: api never published ready: $(seen api) / $(names api all): $(since_last '[api]') / $(health_report)"
    return
  fi
  [ "$(inspect "$first" healthcheck)" = "$want_check" ] \
    && ok "$engine: the engine keeps the Healthcheck sent: $want_check" \
    || not_ok "$engine: Healthcheck $(inspect "$first" healthcheck)"
  addr=$(ready_address api)
  seen_has api "$first ready $addr healthy" && ok "$engine: published: $(seen api)" \
    || not_ok "$engine: published $(seen api), not '$first ready $addr healthy'"
  if [ "$engine" = docker ]; then
    [ "$addr" = "$(inspect "$first" ip "$NET"):8080" ] || not_ok "$engine: $addr is not the IP on $NET"
  else
    case "$addr" in 127.0.0.1:8080 | 127.0.0.1:) not_ok "$engine: $addr is not a published port" ;; 127.0.0.1:*) ;; *) not_ok "$engine: $addr" ;; esac
  fi
  answers "$addr" && ok "$engine: the published address $addr answers ($(cat "$W/page-$engine"))" \
    || not_ok "$engine: the published address '$addr' does not answer"

  # Its check starts failing: unhealthy after 2 checks, then removed and replaced.
  mark
  t0=$(now_ms)
  if [ "$engine" = podman ]; then
    # Its CLI: an exec session made through the API keeps a conmon running for 5 minutes.
    podman_cli exec "$first" rm /tmp/ok >/dev/null 2>&1
  else
    api POST "/containers/$first/exec" '{"Cmd":["rm","/tmp/ok"],"AttachStdout":true}' \
      | $PY -c 'import json,sys; print(json.load(sys.stdin)["Id"])' >"$W/exec-id" 2>/dev/null
    api POST "/exec/$(cat "$W/exec-id")/start" '{"Detach":false,"Tty":false}' >/dev/null
  fi
  expect "[api] $first is unhealthy: its health check failed 2 time(s) in a row (last: exit 1" "the check fails"
  if wait_for 20 gone api "$first" && wait_for 20 seen_has api " ready "; then
    local second
    second=$(seen api | cut -d' ' -f1)
    [ "$second" != "$first" ] && [ "$(names api)" = "$second" ] \
      && ok "$engine: unhealthy $first ($(states api "$first" | sed 's/ / then /g')) removed and replaced by $second in $(($(now_ms) - t0)) ms" \
      || not_ok "$engine: after unhealthy: $(names api all), published $(seen api)"
    case "$(states api "$first")" in *failed) ;; *) not_ok "$engine: $first was never published failed" ;; esac
    addr=$(ready_address api)
    answers "$addr" && ok "$engine: the new container's address $addr answers" \
      || not_ok "$engine: the new address '$addr' does not answer"
  else
    not_ok "$engine: unhealthy not replaced: $(names api all), published $(seen api): $(since_last '[api]')"
  fi
  stop_pid "$checker_pid"
  checker_pid=""
}
inspect_image() { api GET "/images/test/busybox/json" | grep -q '"Id"' && echo yes; }
not_present() { ! names web all | grep -qw -- "$1"; }
none_left_but() { [ "$(names "$1" all)" = "$2" ]; }

run_engine docker
if command -v podman >/dev/null; then
  run_engine podman
else
  echo "# podman: not installed (Debian package podman), its checks are skipped"
fi

echo "$fails failure(s)"
[ $fails = 0 ]
