#!/bin/sh
# Installs what scalebus needs on Debian 12, as root: to build and run, or with --test to run the
# whole test suite too. Safe to re-run.
set -eu
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
# To build and run (what scripts/quickstart.sh needs): compiler, cmake, ninja, pkg-config;
# libuv (event loop), libyaml (pipeline files), libcurl (the HTTP client), cJSON (payloads),
# Check (the unit tests are built by default), tzdata (cron time zones), procps; the plugins'
# libraries: hiredis (redis trigger), librabbitmq (rabbitmq trigger, AMQP), libsystemd (sd-bus,
# systemd scaler), libxml2 (the EC2 and Auto Scaling replies, ec2 scaler); python3 and curl (the
# router quickstart's backend is python3 -m http.server, and the README drives it with curl).
# llhttp, below.
PKGS="build-essential cmake ninja-build pkg-config libuv1-dev libyaml-dev libcurl4-openssl-dev \
libcjson-dev check tzdata procps libhiredis-dev librabbitmq-dev libsystemd-dev libxml2-dev \
python3 curl"
# With --test, what scripts/test.sh needs besides: valgrind, clang and libclang-rt-14-dev (second
# compiler, libFuzzer), libxml2-utils (xmllint checks the simulator's SVG); the real servers the
# trigger tests read: redis-server, rabbitmq-server (management plugin included), prometheus,
# nginx-light (stub_status), haproxy (stats CSV); python3 + python3-botocore (test servers, and
# the SQS and metadata doubles recompute SigV4), curl; the real engines the scaler tests drive:
# docker.io and podman (+ catatonit) with busybox-static (an image built without a registry;
# docker-registry serves it on loopback for `pull: missing`), systemd-container, dbus and
# dbus-user-session (a real systemd booted in systemd-nspawn, driven over D-Bus on its system bus
# and a user's bus); wrk (the router benchmark's load); systemd (systemd-analyze verifies the
# unit file) and groff-base (the man page is checked for warnings); chromium, chromium-driver and
# python3-selenium (the admin dashboard is tested in a real headless browser).
if [ "${1:-}" = "--test" ]; then
  PKGS="$PKGS valgrind clang libclang-rt-14-dev libxml2-utils \
redis-server rabbitmq-server prometheus nginx-light haproxy python3 python3-botocore curl \
docker.io podman catatonit busybox-static systemd-container dbus dbus-user-session \
docker-registry wrk systemd groff-base chromium chromium-driver python3-selenium"
fi
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# llhttp (Node's HTTP/1.1 parser, for the HTTP server of the admin API and the router): Debian
# ships its C sources in node-llhttp, whose dependencies pull in a whole Node.js runtime that a C
# daemon does not need. Its .deb is fetched from the Debian archive and only the four source files
# are unpacked, into /usr/local/share/scalebus/llhttp, where cmake/llhttp.cmake looks (it also
# takes /usr/share/llhttp when node-llhttp is installed).
LLHTTP=/usr/local/share/scalebus/llhttp
if [ ! -f /usr/share/llhttp/llhttp.c ] && [ ! -f "$LLHTTP/llhttp.c" ]; then
  tmp=$(mktemp -d)
  chmod 755 "$tmp"
  [ -n "$missing" ] || $SUDO apt-get update -qq
  (cd "$tmp" && $SUDO apt-get download -qq node-llhttp >/dev/null 2>&1) \
    || { echo "install-deps: cannot download node-llhttp from the Debian archive" >&2; exit 1; }
  dpkg-deb -x "$tmp"/node-llhttp_*.deb "$tmp/x"
  $SUDO mkdir -p "$LLHTTP"
  $SUDO cp "$tmp/x/usr/share/include/llhttp/llhttp.h" "$tmp/x/usr/share/llhttp/api.c" \
    "$tmp/x/usr/share/llhttp/http.c" "$tmp/x/usr/share/llhttp/llhttp.c" "$LLHTTP/"
  rm -rf "$tmp"
fi
