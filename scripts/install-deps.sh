#!/bin/sh
# Installs everything scalebus needs to build and test on Debian 12, as root. Safe to re-run.
set -eu
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
# build: compiler, cmake, ninja, pkg-config; libraries: libuv (event loop), libyaml (pipeline
# files), libcurl (HTTP triggers and scalers), cJSON (event payloads), Check (tests); test tools:
# valgrind, clang and libclang-rt-14-dev (second compiler, libFuzzer), tzdata (cron time zones),
# procps (ps in the end-to-end test), libxml2-utils (xmllint checks the simulator's SVG);
# trigger libraries: hiredis (the redis trigger, with its libuv adapter), librabbitmq (the
# rabbitmq trigger's AMQP mode); the real servers the trigger tests read: redis-server,
# rabbitmq-server (management plugin included), prometheus, nginx-light (stub_status), haproxy
# (stats CSV); python3 + python3-botocore (the SQS and metadata doubles recompute SigV4), curl;
# the scalers: libsystemd-dev (sd-bus, the systemd scaler), and the real engines their tests
# drive: docker.io and podman (+ catatonit) with busybox-static (an image built without a
# registry; docker-registry serves it on loopback for `pull: missing`), systemd-container (a real
# systemd booted in systemd-nspawn, driven over D-Bus).
PKGS="build-essential cmake ninja-build pkg-config libuv1-dev libyaml-dev libcurl4-openssl-dev \
libcjson-dev check valgrind clang libclang-rt-14-dev tzdata procps libxml2-utils \
libhiredis-dev librabbitmq-dev redis-server rabbitmq-server prometheus nginx-light haproxy \
python3 python3-botocore curl \
libsystemd-dev docker.io podman catatonit busybox-static systemd-container dbus docker-registry"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
