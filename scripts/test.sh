#!/bin/sh
# The whole test suite, from a fresh Debian 12 (as root): installs the dependencies, then
#   1. gcc build with -Werror, every test (unit and end-to-end)
#   2. clang build with -Werror (warning-free with both compilers), and the fuzzers (libFuzzer +
#      ASan + UBSan) of the expression language, pipeline files, simulate's traces and the
#      triggers' and scalers' reply parsers and the HTTP server, over their seed corpora and for
#      60 more seconds each
#   3. AddressSanitizer + UndefinedBehaviorSanitizer build, every test
#   4. the unit tests under valgrind (memcheck, leaks included), and the end-to-end scripts with
#      their daemons and `simulate` under valgrind (SB_E2E_WRAP; any error fails the exit status)
# and finally prints the benchmarks (figures beside their baselines; they never fail the run).
# The trigger tests start real servers (redis-server, rabbitmq-server, prometheus, nginx, haproxy)
# and the SQS and metadata doubles on loopback, once per script, and stop them by pid.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh --test
JOBS=$(nproc 2>/dev/null || echo 2)
export CTEST_OUTPUT_ON_FAILURE=1

step() { printf '\n==== %s ====\n' "$*"; }

step "gcc -Werror: build and test"
cmake -S . -B build-ci -G Ninja -DCMAKE_C_COMPILER=gcc -DSB_WERROR=ON >/dev/null
cmake --build build-ci
(cd build-ci && ctest -j"$JOBS" --timeout 600)

step "clang -Werror: build; fuzz the expression language and pipeline files"
cmake -S . -B build-clang -G Ninja -DCMAKE_C_COMPILER=clang -DSB_WERROR=ON -DSB_FUZZ=ON >/dev/null
cmake --build build-clang
(cd build-clang && ctest -L fuzz)
sh tests/fuzz/run.sh build-clang "${SB_FUZZ_SECONDS:-60}" expression
sh tests/fuzz/run.sh build-clang "${SB_FUZZ_SECONDS:-60}" config
sh tests/fuzz/run.sh build-clang "${SB_FUZZ_SECONDS:-60}" trace
sh tests/fuzz/run.sh build-clang "${SB_FUZZ_SECONDS:-60}" replies
sh tests/fuzz/run.sh build-clang "${SB_FUZZ_SECONDS:-60}" httpd
sh tests/fuzz/run.sh build-clang "${SB_FUZZ_SECONDS:-60}" router

step "ASan + UBSan: build and test"
cmake -S . -B build-asan -G Ninja -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=Debug \
  -DSB_SANITIZE=ON -DSB_WERROR=ON -DSB_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan
(cd build-asan && UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 ctest -j"$JOBS" --timeout 900)

step "ThreadSanitizer: test_bus (clang)"
cmake -S . -B build-tsan -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
  -DSB_TSAN=ON -DSB_WERROR=ON -DSB_BUILD_BENCH=OFF >/dev/null
cmake --build build-tsan --target test_bus
# TSan wants its fixed memory layout: without address randomisation where setarch allows it.
norand=""
setarch "$(uname -m)" -R true 2>/dev/null && norand="setarch $(uname -m) -R"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 $norand build-tsan/tests/test_bus

step "valgrind: unit tests"
tests=$(cd build-ci && ctest -N -L unit | sed -n 's/^ *Test *#[0-9]*: *//p')
for t in $tests; do
  echo "valgrind $t"
  CK_FORK=no SB_UNDER_VALGRIND=1 valgrind -q --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
    "build-ci/tests/$t" >"build-ci/valgrind-$t.log" 2>&1 || {
      cat "build-ci/valgrind-$t.log"; echo "valgrind: $t failed"; exit 1; }
done

step "valgrind: the end-to-end daemon and simulate"
# Each `scalebus run` and `simulate` of these scripts runs under valgrind; they stop every daemon
# with SIGTERM and want its exit status (0, not valgrind's 99), so a leak or a bad read anywhere
# on the way (a refused reload, a failed start) fails them.
vg="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect"
vg="$vg --show-leak-kinds=definite,indirect"
# Each script with its third argument (the test-only plugins it loads, where it takes them).
for entry in test_e2e:daemon/plugins test_policy_pipelines:daemon/plugins \
  test_lifecycle:daemon/plugins test_policy_failures:daemon/plugins test_redis:daemon/plugins \
  test_http_json:daemon/plugins test_sqs:daemon/plugins test_docker:docker-plugins \
  test_systemd:daemon/plugins test_marathon:marathon-plugins test_ec2:daemon/plugins \
  test_include:. test_tokens:.; do
  t=${entry%%:*}
  echo "valgrind $t"
  SB_E2E_WRAP="$vg" bash "tests/$t.sh" build-ci/scalebus "$PWD" "build-ci/tests/${entry#*:}" \
    >"build-ci/valgrind-$t.log" 2>&1 || {
      cat "build-ci/valgrind-$t.log"; echo "valgrind: $t failed"; exit 1; }
done
echo "valgrind test_kitchen"
SB_E2E_WRAP="$vg" bash tests/test_kitchen.sh build-ci/tests/kitchen >build-ci/valgrind-test_kitchen.log 2>&1 || {
  cat build-ci/valgrind-test_kitchen.log; echo "valgrind: test_kitchen failed"; exit 1; }

step "benchmark (figures only)"
build-ci/tests/bench_bus 1000000 || echo "benchmark did not run (not a test failure)"
sh tests/bench/bench_pipelines.sh build-ci || echo "bench_pipelines did not run (not a test failure)"
sh tests/bench/bench_triggers.sh build-ci || echo "bench_triggers did not run (not a test failure)"
sh tests/bench/bench_router.sh build-ci || echo "bench_router did not run (not a test failure)"
bash tests/bench/bench_push.sh build-ci || echo "bench_push did not run (not a test failure)"
echo
echo "all tests passed"
