#!/bin/bash
# The SDK a plugin author installs, and the packaging, through what `cmake --install` puts in
# place in a temporary prefix (nothing is written outside the temporary folder but the install
# manifest cmake always writes into the build tree):
#   - the daemon, the built-in plugins, the headers, the SDK libraries, scalebus-*.pc, the CMake
#     package, the systemd unit and the man page are installed, all under the prefix;
#   - examples/plugin-hello (copied out of the source tree) builds from the installed SDK alone,
#     once with its Makefile (pkg-config) and once with its CMakeLists.txt (find_package), the
#     compiler reading scalebus/plugin.h from the prefix, never from the source tree; each build
#     installs itself into the installed daemon's plugin folder, where `scalebus plugins`,
#     `--describe`, `check` and a short `run` (hello -> direct -> process) find it and the reading
#     reaches the scaler (a probe scaler, also built from the SDK, logs the reading's value);
#   - a connector on the policy library (scalebus/policy.h) built both ways decides through it
#     (its reason chain in the log, the count reaching the scaler), and a plugin linking all
#     four SDK libraries (policy, poll, scaler, aws) links with --no-undefined and loads;
#   - the daemon tells a NOTIFY_SOCKET (a python3 datagram listener here) READY=1 once started,
#     RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1 on SIGTERM;
#   - `systemd-analyze verify` accepts the installed unit (skipped with a line without it), and
#     under a real systemd (systemd-nspawn; skipped with a line when it cannot boot here) start
#     waits for READY=1, workers get delegated cgroups, reload is a SIGHUP, stop exits 0;
#   - the man page renders without warnings and documents every option and command `--help`
#     names.
#
#   tests/test_sdk.sh BUILD/scalebus SOURCE_DIR BUILD_DIR
#
# The temporary folder is made in BUILD_DIR/tests (the plugin loader refuses anything under /tmp).
# SB_E2E_WRAP, when set, prefixes `scalebus run` (waits are then 10 times longer). On a failure
# the temporary folder, with every log, is kept.
set -u
SB_BUILT=$1
SRC=$(realpath "$2")
BUILD=$(realpath "$3")
WRAP=${SB_E2E_WRAP:-}
SLOW=${SLOW:-1}
[ -n "$WRAP" ] && SLOW=10
PY=/usr/bin/python3
fails=0
daemon="" listener="" nspawn_pid=""
. "$(dirname "$0")/lib.sh"

skip() { echo "# skipped: $*"; exit 77; }
command -v cmake >/dev/null || skip "no cmake"
command -v pkg-config >/dev/null || skip "no pkg-config"
command -v make >/dev/null || skip "no make"
[ -x "$PY" ] || skip "no $PY"
[ -f "$BUILD/cmake_install.cmake" ] || skip "$BUILD is not a configured build tree"

mkdir -p "$BUILD/tests"
W=$(mktemp -d "$BUILD/tests/sb-test-sdk-XXXXXX") && W=$(realpath "$W") || exit 1
PREFIX=$W/prefix
cleanup() {
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
  [ -n "$listener" ] && kill -KILL "$listener" 2>/dev/null
  stop_pid "$nspawn_pid" 20
  wait 2>/dev/null
  keep_or_remove "$W"
}
trap cleanup EXIT

# ---- install ------------------------------------------------------------------------------------
if cmake --install "$BUILD" --prefix "$PREFIX" >"$W/install.log" 2>&1; then
  ok "cmake --install into a temporary prefix"
else
  not_ok "cmake --install failed"
  exit 1
fi
SB=$PREFIX/bin/scalebus
[ "$("$SB" --version)" = "$("$SB_BUILT" --version)" ] && ok "the installed daemon is this build's" ||
  not_ok "installed: $("$SB" --version); built: $("$SB_BUILT" --version)"
missing=""
for f in bin/scalebus include/scalebus/plugin.h include/scalebus/policy.h lib/libscalebus_policy.a \
         lib/libscalebus_poll.a lib/libscalebus_scaler.a lib/libscalebus_aws.a \
         lib/scalebus/plugins/direct.so lib/scalebus/plugins/process.so \
         lib/pkgconfig/scalebus-plugin.pc lib/pkgconfig/scalebus-policy.pc \
         lib/cmake/ScaleBus/ScaleBusConfig.cmake lib/cmake/ScaleBus/ScaleBusConfigVersion.cmake \
         lib/cmake/ScaleBus/ScaleBusTargets.cmake lib/systemd/system/scalebus.service \
         share/man/man1/scalebus.1; do
  [ -e "$PREFIX/$f" ] || missing="$missing $f"
done
[ -z "$missing" ] && ok "installed: daemon, plugins, headers, SDK libraries, .pc, CMake package, unit, man page" ||
  not_ok "not installed:$missing"
outside=$(grep -v "^$PREFIX/" "$BUILD/install_manifest.txt")
[ -z "$outside" ] && ok "every installed file is under the prefix" ||
  not_ok "installed outside the prefix: $(echo "$outside" | head -3)"

# DESTDIR staging, as a package build does: the files land under DESTDIR with the configured
# prefix; the unit names the daemon at that prefix; the .pc and CMake files, relocatable, work
# from the staging folder.
conf_prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$BUILD/CMakeCache.txt")
STAGE=$W/stage
if DESTDIR=$STAGE cmake --install "$BUILD" >"$W/install-destdir.log" 2>&1 &&
   [ -x "$STAGE$conf_prefix/bin/scalebus" ] &&
   grep -q "^ExecStart=$conf_prefix/bin/scalebus run " "$STAGE$conf_prefix/lib/systemd/system/scalebus.service" &&
   [ "$(realpath -m "$(PKG_CONFIG_LIBDIR=$STAGE$conf_prefix/lib/pkgconfig pkg-config \
        --variable=includedir scalebus-plugin)")" = "$STAGE$conf_prefix/include" ] &&
   cmake -S "$SRC/examples/plugin-hello" -B "$W/stage-cmake" -DCMAKE_PREFIX_PATH="$STAGE$conf_prefix" \
     -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF 2>&1 | grep -qF "plugins go to $STAGE$conf_prefix/lib/scalebus/plugins"; then
  ok "DESTDIR install: under DESTDIR$conf_prefix, unit for $conf_prefix, .pc and CMake package relocate"
else
  not_ok "DESTDIR install into $STAGE (prefix $conf_prefix): see install-destdir.log"
fi
rm -rf "$STAGE" "$W/stage-cmake"

# Only the prefix's .pc files: nothing found in a system folder can stand in for them.
export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
PC_ONLY="env PKG_CONFIG_LIBDIR=$PREFIX/lib/pkgconfig"
plugindir=$($PC_ONLY pkg-config --variable=plugindir scalebus-plugin)
abi=$($PC_ONLY pkg-config --variable=abi_version scalebus-plugin)
sb_abi=$("$SB" --version | sed -n 's/.*plugin ABI \([0-9]*\).*/\1/p')
[ "$(realpath -m "$plugindir")" = "$PREFIX/lib/scalebus/plugins" ] && [ "$abi" = "$sb_abi" ] &&
  ok "pkg-config: plugindir is the installed daemon's folder, abi_version $abi is the daemon's" ||
  not_ok "pkg-config: plugindir '$plugindir', abi_version '$abi' (daemon: ABI $sb_abi)"
libs=$(pkg-config --libs scalebus-scaler scalebus-aws scalebus-policy 2>&1)
case "$libs" in
  *-lscalebus_scaler*-lscalebus_poll*) ok "pkg-config resolves the SDK libraries: $libs" ;;
  *) not_ok "pkg-config --libs scalebus-scaler scalebus-aws scalebus-policy: $libs" ;;
esac
# An SDK built with sanitizers needs the daemon's runtime: no --no-undefined then (the .pc says).
if [ "$($PC_ONLY pkg-config --variable=sanitize scalebus-plugin)" = yes ]; then
  NO_UNDEF=""
else
  NO_UNDEF="-Wl,--no-undefined"
fi

# header_from DEPFILE: the scalebus/plugin.h the compiler read (from its dependency file).
header_from() { tr ' \\' '\n\n' <"$1" | grep 'scalebus/plugin\.h$' | head -1; }
# include_dirs_in_source LOG: the -I/-isystem folders of the compile commands in LOG that are in
# the source or build tree, outside this test's folder (where the prefix is).
include_dirs_in_source() {
  grep -oE -- '-(I|isystem) ?[^ ]+' "$1" | sed -E 's/^-(I|isystem) ?//' | sort -u |
    while read -r d; do
      d=$(realpath -m "$d")
      case "$d/" in "$W"/*) ;; "$BUILD"/* | "$SRC"/*) echo "$d" ;; esac
    done
}
# (The check itself, on a command that does read the source tree's header.)
echo "cc -I$SRC/plugins/include -I $PREFIX/include -c x.c" >"$W/control.log"
[ "$(include_dirs_in_source "$W/control.log")" = "$SRC/plugins/include" ] ||
  not_ok "include_dirs_in_source misses -I$SRC/plugins/include"
# from_prefix WHAT DEPFILE LOG: the header came from the prefix, and no compile command had an
# include folder in the source tree.
from_prefix() {
  local h bad
  h=$(header_from "$2")
  bad=$(include_dirs_in_source "$3")
  if [ -n "$h" ] && [ "$(realpath "$h")" = "$PREFIX/include/scalebus/plugin.h" ] && [ -z "$bad" ]; then
    ok "$1: scalebus/plugin.h read from the prefix, no include folder in the source tree"
  else
    not_ok "$1: plugin.h from '$h'; include folders in the source tree: $bad"
  fi
}

# ---- examples/plugin-hello, both ways -----------------------------------------------------------
mkdir -p "$W/make" "$W/cmake-src"
cp "$SRC"/examples/plugin-hello/{hello.c,Makefile,CMakeLists.txt,hello.yaml} "$W/make/"
cp "$SRC"/examples/plugin-hello/{hello.c,CMakeLists.txt} "$W/cmake-src/"

if make -C "$W/make" PKG_CONFIG="$PC_ONLY pkg-config" LDFLAGS="$NO_UNDEF" \
     CFLAGS="-O2 -Wall -Wextra -Werror -MD -MF $W/make/hello.d" >"$W/make.log" 2>&1 &&
   [ -f "$W/make/hello.so" ]; then
  ok "plugin-hello builds with its Makefile (pkg-config)"
else
  not_ok "plugin-hello: make failed"
fi
from_prefix "make" "$W/make/hello.d" "$W/make.log"

cmake_build() { # cmake_build SRCDIR BUILDDIR: configure against the prefix only, and build
  cmake -S "$1" -B "$2" -G "Unix Makefiles" -DCMAKE_PREFIX_PATH="$PREFIX" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF \
    -DCMAKE_C_FLAGS="-Werror" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON && cmake --build "$2" --verbose
}
if cmake_build "$W/cmake-src" "$W/cmake-build" >"$W/cmake.log" 2>&1 &&
   [ -f "$W/cmake-build/hello.so" ]; then
  ok "plugin-hello builds with its CMakeLists.txt (find_package(ScaleBus))"
else
  not_ok "plugin-hello: cmake build failed"
fi
[ "$(sed -n 's/^ScaleBus_DIR:PATH=//p' "$W/cmake-build/CMakeCache.txt")" = "$PREFIX/lib/cmake/ScaleBus" ] &&
  ok "find_package(ScaleBus) found the prefix's package" ||
  not_ok "ScaleBus_DIR: $(grep ScaleBus_DIR "$W/cmake-build/CMakeCache.txt")"
from_prefix "cmake" "$W/cmake-build/CMakeFiles/hello.dir/hello.c.o.d" "$W/cmake.log"
exported=$(nm -D --defined-only "$W/cmake-build/hello.so" 2>/dev/null | awk '{print $3}' | tr '\n' ' ')
[ "$exported" = "sb_plugin_entry " ] && ok "scalebus_add_plugin: hello.so (no lib prefix) exports only sb_plugin_entry" ||
  not_ok "hello.so exports: $exported"

# ---- each build in the installed daemon ---------------------------------------------------------
# A probe scaler, itself built from the installed SDK: it logs each desired count it receives.
# (A scaler that acts is the business of the scalers' own tests.)
mkdir -p "$W/probe-src" "$W/probe"
cat >"$W/probe-src/probe.c" <<'EOF'
/* probe: a scaler that only logs each desired count it receives (test_sdk). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <scalebus/plugin.h>

static const sb_option_spec probe_options[] = {{NULL, 0, NULL, 0, NULL}};

typedef struct probe {
    sb_instance *inst;
    const sb_host *host;
} probe;

static int probe_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                        void **state, char *err, size_t errlen)
{
    probe *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->inst = inst;
    p->host = host;
    *state = p;
    return 0;
}

static void probe_on_event(void *state, const sb_event *ev)
{
    probe *p = state;
    if (strcmp(ev->topic, SB_TOPIC_DESIRED) == 0)
        p->host->log(p->inst, SB_LOG_INFO, "probe: desired %g from %s", ev->value, ev->source_id);
}

static void probe_destroy(void *state)
{
    free(state);
}

static const sb_plugin_descriptor probe_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "probe",
    .kind = SB_KIND_SCALER,
    .version = "1.0.0",
    .description = "logs each desired count (test_sdk)",
    .options = probe_options,
    .create = probe_create,
    .destroy = probe_destroy,
    .on_event = probe_on_event,
};

SB_PLUGIN_EXPORT(probe_descriptor)
EOF
cc -std=c11 -O2 -Wall -Werror -fPIC -fvisibility=hidden -shared $NO_UNDEF \
  $($PC_ONLY pkg-config --cflags scalebus-plugin) -o "$W/probe/probe.so" "$W/probe-src/probe.c" \
  >"$W/probe.log" 2>&1 || not_ok "the probe scaler did not build"

# run_pipeline NAME FILE WANT [OPTIONS]: run FILE in the installed daemon until the probe scaler
# `workers` logs the desired count WANT (the reading has crossed the pipeline).
run_pipeline() {
  local name=$1 file=$2 want=$3; shift 3
  $WRAP "$SB" run "$file" --plugin-dir "$W/probe" "$@" >"$W/run-$name.log" 2>&1 &
  daemon=$!
  if wait_for 20 grep -q "\[workers\] probe: desired $want from to-workers" "$W/run-$name.log"; then
    ok "$name: the reading reached the scaler: desired $want"
  else
    not_ok "$name: the probe scaler never logged desired $want"
  fi
}
lines_at_least() { [ "$(grep -c "$2" "$1" 2>/dev/null)" -ge "$3" ]; } # lines_at_least FILE RE N
stop_daemon() {
  local name=$1 rc
  kill -TERM "$daemon"
  for _ in $(seq $((200 * SLOW))); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$daemon" 2>/dev/null
  wait "$daemon"; rc=$?
  daemon=""
  [ "$rc" = 0 ] && ok "$name: SIGTERM: exit 0" || not_ok "$name: SIGTERM: exit $rc"
}
pipeline() { # pipeline NAME CONNECTOR_TYPE VALUE [CONNECTOR OPTIONS]
  cat >"$W/$1.yaml" <<EOF
admin: { listen: off } # no port shared with the other tests
triggers:
  - { id: greeting, type: hello, every: 200ms, value: $3 }
connectors:
  - { id: to-workers, type: $2, from: greeting, to: workers ${4:-} }
scalers:
  - { id: workers, type: probe, max: 5 }
EOF
}

for way in make cmake; do
  if [ $way = make ]; then
    make -C "$W/make" PKG_CONFIG="$PC_ONLY pkg-config" install >>"$W/make.log" 2>&1
    built=$W/make/hello.so value=2
  else
    cmake --install "$W/cmake-build" >>"$W/cmake.log" 2>&1
    built=$W/cmake-build/hello.so value=3
  fi
  installed=$PREFIX/lib/scalebus/plugins/hello.so
  if cmp -s "$built" "$installed" && [ "$(stat -c %a "$installed")" = 644 ]; then
    ok "$way install: hello.so into the daemon's plugin folder, mode 0644"
  else
    not_ok "$way install: $installed missing, different or not 0644"
  fi
  "$SB" plugins >"$W/plugins-$way.txt" 2>&1
  grep -q "^hello  *trigger  *1.0.0" "$W/plugins-$way.txt" && ok "$way: \`scalebus plugins\` lists hello" ||
    not_ok "$way: hello not listed: $(cat "$W/plugins-$way.txt")"
  desc=$("$SB" plugins --describe hello 2>&1)
  if grep -q "^file: $installed" <<<"$desc" && grep -q "^  every  *duration  *1s" <<<"$desc" &&
     grep -q "^  value  *number  *1 " <<<"$desc"; then
    ok "$way: --describe hello: its file and options every, value"
  else
    not_ok "$way: --describe hello: $desc"
  fi
  out=$("$SB" check "$W/make/hello.yaml" 2>&1)
  [ "$out" = "$W/make/hello.yaml: ok" ] && ok "$way: check examples/plugin-hello/hello.yaml" ||
    not_ok "$way: check hello.yaml: $out"
  printf 'triggers:\n  - { id: g, type: hello, every: 5ms }\n' >"$W/bad.yaml"
  out=$("$SB" check "$W/bad.yaml" 2>&1)
  grep -q "every: expected at least 10ms, got 5ms" <<<"$out" && ok "$way: hello's own error reaches check" ||
    not_ok "$way: check bad.yaml: $out"

  pipeline "hello-$way" direct "$value"
  if [ $way = cmake ]; then
    # The NOTIFY_SOCKET systemd would give: a datagram socket, each message one line in notify.txt.
    rm -f "$W/notify.sock"
    $PY -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(120)
with open(sys.argv[2], "a") as out:
    while True:
        try:
            data = s.recv(4096)
        except socket.timeout:
            break
        out.write(data.decode("utf-8", "replace").replace("\n", " ") + "\n")
        out.flush()
        if b"STOPPING=1" in data:
            break
' "$W/notify.sock" "$W/notify.txt" &
    listener=$!
    wait_for 10 test -S "$W/notify.sock" || not_ok "the notify listener did not start"
    export NOTIFY_SOCKET=$W/notify.sock
  fi
  run_pipeline "hello-$way" "$W/hello-$way.yaml" "$value"
  if [ $way = cmake ]; then
    unset NOTIFY_SOCKET
    wait_for 10 grep -q "READY=1" "$W/notify.txt" && ok "sd_notify: READY=1 once started" ||
      not_ok "sd_notify: no READY=1: $(cat "$W/notify.txt" 2>/dev/null)"
    kill -HUP "$daemon"
    if wait_for 10 lines_at_least "$W/notify.txt" "READY=1" 2 &&
       [ "$(grep -n "RELOADING=1" "$W/notify.txt" | head -1 | cut -d: -f1)" = 2 ] &&
       grep "RELOADING=1" "$W/notify.txt" | grep -q "MONOTONIC_USEC=[0-9]"; then
      ok "sd_notify: SIGHUP sends RELOADING=1 (with MONOTONIC_USEC) then READY=1"
    else
      not_ok "sd_notify around a reload: $(tr '\n' '|' <"$W/notify.txt")"
    fi
  fi
  stop_daemon "hello-$way"
  if [ $way = cmake ]; then
    wait_for 10 grep -q "STOPPING=1" "$W/notify.txt" && ok "sd_notify: STOPPING=1 on SIGTERM" ||
      not_ok "sd_notify: no STOPPING=1: $(tr '\n' '|' <"$W/notify.txt")"
    stop_pid "$listener" 2
    listener=""
  fi
  rm -f "$installed"
done

# ---- plugins on the SDK libraries, both ways ----------------------------------------------------
mkdir -p "$W/libs-src"
cat >"$W/libs-src/halve.c" <<'EOF'
/* halve: a scaling policy on the policy library: half the reading, through its limits. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <scalebus/plugin.h>
#include <scalebus/policy.h>

static const sb_option_spec halve_options[] = {SB_POLICY_OPTIONS, {NULL, 0, NULL, 0, NULL}};

typedef struct halve {
    sb_policy *policy;
} halve;

static int halve_new(const sb_value *values, void **conn, char *err, size_t errlen)
{
    halve *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = sb_policy_new_from_values(values, &h->policy, err, errlen);
    if (rc) {
        free(h);
        return rc;
    }
    *conn = h;
    return 0;
}

static void halve_on_event(void *conn, const sb_host *host, sb_instance *inst, const sb_event *ev)
{
    halve *h = conn;
    if (strcmp(ev->topic, SB_TOPIC_INSTANCES) == 0) {
        sb_policy_observe(h->policy, ev);
        return;
    }
    if (strcmp(ev->topic, SB_TOPIC_READING) != 0)
        return;
    sb_reason r;
    sb_reason_init(&r);
    sb_reason_addf(&r, "%s=%g halved -> %g", sb_policy_metric_name(ev), ev->value, ev->value / 2);
    sb_policy_input in = {.now_ns = ev->mono_ns, .raw = ev->value / 2};
    int64_t n = sb_policy_decide(h->policy, &in, &r);
    sb_policy_publish(h->policy, host, inst, ev->mono_ns, n, &r);
}

static void halve_free(void *conn)
{
    halve *h = conn;
    sb_policy_free(h->policy);
    free(h);
}

static sb_policy *halve_policy(void *conn)
{
    return ((halve *)conn)->policy;
}

static const sb_policy_connector_ops halve_ops = {
    .create = halve_new, .on_event = halve_on_event, .destroy = halve_free, .policy = halve_policy};

SB_POLICY_CONNECTOR_CREATE(halve, halve_ops)

static const sb_plugin_descriptor halve_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "halve",
    .kind = SB_KIND_CONNECTOR,
    .version = "1.0.0",
    .description = "half the reading, through the policy library's limits (test_sdk)",
    .options = halve_options,
    .create = halve_create,
    .destroy = sb_policy_connector_destroy,
    .on_event = sb_policy_connector_on_event,
    .accepts = SB_ACCEPTS_ERRORS,
};

SB_PLUGIN_EXPORT(halve_descriptor)
EOF
cat >"$W/libs-src/linkall.c" <<'EOF'
/* linkall: a trigger that links one function of each SDK library (and publishes nothing). */
#include <stdlib.h>

#include <scalebus/aws.h>
#include <scalebus/plugin.h>
#include <scalebus/policy.h>
#include <scalebus/poll.h>
#include <scalebus/scaler.h>

/* Kept reachable so the linker must resolve each library's symbol. */
void *linkall_uses[] = {(void *)sb_policy_ceil, (void *)sb_backoff_init, (void *)sb_fleet_free,
                        (void *)sb_aws_creds_free};

static const sb_option_spec linkall_options[] = {{NULL, 0, NULL, 0, NULL}};

static int linkall_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                          void **state, char *err, size_t errlen)
{
    *state = linkall_uses;
    return 0;
}

static void linkall_destroy(void *state)
{
}

static const sb_plugin_descriptor linkall_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "linkall",
    .kind = SB_KIND_TRIGGER,
    .version = "1.0.0",
    .description = "links the policy, poll, scaler and aws libraries (test_sdk)",
    .options = linkall_options,
    .create = linkall_create,
    .destroy = linkall_destroy,
};

SB_PLUGIN_EXPORT(linkall_descriptor)
EOF
cat >"$W/libs-src/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.18)
project(sdk_libs LANGUAGES C)
find_package(ScaleBus REQUIRED)
scalebus_add_plugin(halve SOURCES halve.c LIBRARIES ScaleBus::policy NO_INSTALL)
scalebus_add_plugin(linkall SOURCES linkall.c
  LIBRARIES ScaleBus::policy ScaleBus::poll ScaleBus::scaler ScaleBus::aws NO_INSTALL)
EOF
if cmake_build "$W/libs-src" "$W/libs-cmake" >"$W/libs-cmake.log" 2>&1 &&
   [ -f "$W/libs-cmake/halve.so" ] && [ -f "$W/libs-cmake/linkall.so" ]; then
  ok "cmake: halve (ScaleBus::policy) and linkall (policy, poll, scaler, aws) build"
else
  not_ok "cmake: the SDK-library plugins did not build"
fi
mkdir -p "$W/libs-pc"
(
  cd "$W/libs-src" &&
  cc -std=c11 -O2 -Wall -Werror -fPIC -fvisibility=hidden -shared $NO_UNDEF \
    $(pkg-config --cflags scalebus-policy) -o "$W/libs-pc/halve.so" halve.c \
    $(pkg-config --libs scalebus-policy) &&
  cc -std=c11 -O2 -Wall -Werror -fPIC -fvisibility=hidden -shared $NO_UNDEF \
    $(pkg-config --cflags scalebus-policy scalebus-poll scalebus-scaler scalebus-aws) \
    -o "$W/libs-pc/linkall.so" linkall.c \
    $(pkg-config --libs scalebus-policy scalebus-poll scalebus-scaler scalebus-aws)
) >"$W/libs-pc.log" 2>&1 && ok "pkg-config: halve and linkall build" ||
  not_ok "pkg-config: the SDK-library plugins did not build"
rm -rf "$W/libs-cmake/CMakeFiles" # only the .so files in the folder the daemon is pointed at

for way in pc cmake; do
  dir=$W/libs-$way
  "$SB" plugins --plugin-dir "$dir" >"$W/plugins-libs-$way.txt" 2>&1
  grep -q "^halve " "$W/plugins-libs-$way.txt" && grep -q "^linkall " "$W/plugins-libs-$way.txt" &&
    ok "$way: halve and linkall load in the installed daemon" ||
    not_ok "$way: $(cat "$W/plugins-libs-$way.txt")"
  # hello 5 -> halve -> ceil(2.5) = 3, the decision's reason from the policy library.
  cp "$W/cmake-build/hello.so" "$dir/"
  pipeline "halve-$way" halve 5 ", stabilize_down: 0s"
  run_pipeline "halve-$way" "$W/halve-$way.yaml" 3 --plugin-dir "$dir"
  grep -q "\[to-workers\] desired 3: .*=5 halved -> 2.5" "$W/run-halve-$way.log" &&
    ok "$way: the policy library decided: desired 3 with its reason chain" ||
    not_ok "$way: no 'desired 3: ... halved' line: $(grep to-workers "$W/run-halve-$way.log" | head -3)"
  stop_daemon "halve-$way"
done

# ---- packaging ----------------------------------------------------------------------------------
UNIT=$PREFIX/lib/systemd/system/scalebus.service
grep -q "^ExecStart=$PREFIX/bin/scalebus run " "$UNIT" && ok "unit: ExecStart names the installed daemon" ||
  not_ok "unit: $(grep ^ExecStart "$UNIT")"
for want in Type=notify "ExecReload=/bin/kill -HUP \$MAINPID" Delegate=yes NoNewPrivileges=yes \
            ProtectSystem=strict ProtectHome=yes PrivateTmp=yes StateDirectory=scalebus \
            LogsDirectory=scalebus; do
  grep -qxF "$want" "$UNIT" || unit_missing="${unit_missing:-} '$want'"
done
[ -z "${unit_missing:-}" ] &&
  ok "unit: Type=notify, ExecReload SIGHUP, Delegate, the hardening and writable folders are set" ||
  not_ok "unit: missing$unit_missing"
if command -v systemd-analyze >/dev/null; then
  # (Documentation=man:scalebus(1) is looked up with man in the prefix's man folder; without man
  # (a minimal system has no man-db) that one lookup is left out: the page itself is checked
  # below with groff.)
  man_check=""
  command -v man >/dev/null || man_check="--man=no"
  # shellcheck disable=SC2086
  if MANPATH=$PREFIX/share/man systemd-analyze verify $man_check "$UNIT" >"$W/verify.log" 2>&1; then
    ok "systemd-analyze verify accepts the unit${man_check:+ (without man: $man_check)}"
  else
    not_ok "systemd-analyze verify: $(cat "$W/verify.log")"
  fi
else
  echo "# skipped: systemd-analyze verify (no systemd-analyze)"
fi

# The unit under a real systemd: the host's /usr booted in systemd-nspawn on a tmpfs root
# (--volatile=yes), the prefix bound at its own path, the unit in /run/systemd/system and a
# pipeline as /etc/scalebus/scalebus.yaml (cron every second -> direct -> process, 2 workers).
# `systemctl start` returns once the daemon sent READY=1 (Type=notify), the workers run in
# cgroups of their own below the service's (Delegate=yes) despite the hardening; reload is a
# SIGHUP (the same main process, its status "reloaded"); stop is graceful (exit 0).
nspawn_skip() { echo "# skipped: the unit under systemd-nspawn: $*"; }
if [ "$(id -u)" != 0 ]; then
  nspawn_skip "needs root"
elif [ ! -x /usr/bin/systemd-nspawn ] || ! command -v nsenter >/dev/null; then
  nspawn_skip "no systemd-nspawn (systemd-container) or nsenter"
else
  mkdir -p "$W/nspawn"
  cat >"$W/nspawn/scalebus.yaml" <<'EOF'
admin: { listen: off }
log: { level: debug }
triggers:
  - { id: tick, type: cron, schedule: "* * * * * *", value: 2 }
connectors:
  - { id: to-workers, type: direct, from: tick, to: workers }
scalers:
  - { id: workers, type: process, command: [/bin/sleep, infinity], max: 3, stop_grace: 2s }
EOF
  # Nothing to wait for on a private network: wait-online masked (an empty unit file).
  : >"$W/nspawn/masked.service"
  setsid /usr/bin/systemd-nspawn -q --volatile=yes -D / -M "sbsdk$$" --private-network \
    --register=no --keep-unit --bind-ro="$PREFIX:$PREFIX" \
    --bind-ro="$UNIT:/run/systemd/system/scalebus.service" \
    --bind-ro="$W/nspawn/masked.service:/run/systemd/system/systemd-networkd-wait-online.service" \
    --bind-ro="$W/nspawn/scalebus.yaml:/etc/scalebus/scalebus.yaml" \
    -b -- systemd.firstboot=off >"$W/nspawn.log" 2>&1 </dev/null &
  nspawn_pid=$!
  ns() { nsenter -t "$(ps --ppid "$nspawn_pid" -o pid= | head -1 | tr -d ' ')" -m -p -- "$@"; }
  booted() { ns /bin/systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded'; }
  prop() { ns /bin/systemctl show scalebus -p "$1" --value 2>/dev/null; }
  if ! wait_for 30 booted; then
    nspawn_skip "systemd did not boot here: $(grep -v '^\s*$' "$W/nspawn.log" | tail -1)"
  else
    if timeout $((30 * SLOW)) nsenter -t "$(ps --ppid "$nspawn_pid" -o pid= | head -1 | tr -d ' ')" \
         -m -p -- /bin/systemctl start scalebus && [ "$(prop ActiveState)" = active ] &&
       [ "$(prop StatusText)" = running ]; then
      ok "systemd: start returns once the daemon is ready (Type=notify, status 'running')"
    else
      not_ok "systemd: start: $(prop ActiveState) '$(prop StatusText)'"
    fi
    workers_in_cgroups() { ns /bin/systemctl status scalebus --no-pager 2>/dev/null |
      grep -A4 'scalebus-[0-9]' | grep -c '/bin/sleep infinity' | grep -qx 2; }
    wait_for 20 workers_in_cgroups && ok "systemd: 2 workers, each in its cgroup below the service's (Delegate=yes)" ||
      not_ok "systemd: workers: $(ns /bin/systemctl status scalebus --no-pager 2>&1 | sed -n '/CGroup/,/^$/p')"
    pid=$(prop MainPID)
    if ns /bin/systemctl reload scalebus && [ "$(prop MainPID)" = "$pid" ] &&
       [ "$(prop StatusText)" = reloaded ] && [ "$(prop ActiveState)" = active ]; then
      ok "systemd: reload is a SIGHUP to the same process (status 'reloaded')"
    else
      not_ok "systemd: reload: pid $pid -> $(prop MainPID), '$(prop StatusText)', $(prop ActiveState)"
    fi
    if ns /bin/systemctl stop scalebus && [ "$(prop Result)" = success ] &&
       [ "$(prop ExecMainStatus)" = 0 ]; then
      ok "systemd: stop is graceful (exit 0)"
    else
      not_ok "systemd: stop: $(prop Result), status $(prop ExecMainStatus)"
    fi
    ns /bin/journalctl -u scalebus --no-pager >"$W/nspawn-journal.log" 2>&1
  fi
  stop_pid "$nspawn_pid" 20
  nspawn_pid=""
fi

MAN=$PREFIX/share/man/man1/scalebus.1
if command -v groff >/dev/null; then
  warnings=$(groff -man -ww -z "$MAN" 2>&1)
  [ -z "$warnings" ] && ok "man page: groff finds nothing to warn about" || not_ok "man page: $warnings"
  page=$(groff -man -Tutf8 -P-cbou "$MAN" 2>/dev/null | sed 's/‐/-/g')
  undocumented=""
  for cmd in "" run check plugins simulate; do
    for opt in $("$SB" $cmd --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
      grep -qF -- "$opt" <<<"$page" || undocumented="$undocumented $cmd:$opt"
    done
  done
  for cmd in run check plugins simulate; do
    grep -q "^  $cmd" < <("$SB" --help) || undocumented="$undocumented --help:$cmd"
    grep -q "^       $cmd" <<<"$page" || undocumented="$undocumented man:$cmd"
  done
  version=$("$SB" --version | awk '{print $2}')
  grep -q "^\.TH SCALEBUS 1 \"[^\"]*\" \"scalebus $version\"" "$MAN" ||
    undocumented="$undocumented version:$version"
  [ -z "$undocumented" ] && ok "man page and --help: every command and option of --help is documented, same version" ||
    not_ok "missing from the man page (or --help):$undocumented"
else
  echo "# skipped: man page checks (no groff)"
fi

echo "# $fails failure(s)"
[ "$fails" = 0 ]
