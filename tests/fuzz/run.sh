#!/bin/sh
# run.sh BUILD_DIR SECONDS [TARGET] - fuzz TARGET (expression: the expression language, the
# default; config: pipeline files; trace: the trace reader of `scalebus simulate`; replies: the
# parsers of what remote servers send the triggers and scalers; httpd: the HTTP/1.1 server of the
# admin API and the router; router: the router's request and answer handling) for SECONDS
# with libFuzzer, starting from a copy of the kept seed corpus (tests/fuzz/corpus/TARGET), so new
# inputs never land in the source tree. BUILD_DIR is a clang build configured with -DSB_FUZZ=ON.
#
# Exit status: 0 no crash; 1 a crash, leak, sanitizer report or broken promise (the reproducer is
# kept and its path printed); 2 bad arguments; 77 the fuzzer is not built in BUILD_DIR.
set -u
if [ $# -ne 2 ] && [ $# -ne 3 ]; then
  echo "usage: $0 BUILD_DIR SECONDS [expression|config|trace|replies|httpd|router]" >&2
  exit 2
fi
build=$1
seconds=$2
target=${3:-expression}
case $target in
  expression) max_len=4200 ;;
  config) max_len=16384 ;;
  trace) max_len=4096 ;;
  replies) max_len=8192 ;;
  httpd) max_len=8192 ;;
  router) max_len=8192 ;;
  *) echo "$0: unknown target '$target' (expression, config, trace, replies, httpd or router)" >&2; exit 2 ;;
esac
case $seconds in
  '' | *[!0-9]*) echo "$0: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
fuzzer=$build/tests/fuzz_$target
if [ ! -x "$fuzzer" ]; then
  echo "$0: $fuzzer not built (configure with -DCMAKE_C_COMPILER=clang -DSB_FUZZ=ON)" >&2
  exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz_$target.XXXXXX") || exit 1
mkdir "$work/corpus" "$work/artifacts"
seeds=$here/corpus/$target
[ "$target" = router ] && seeds=$here/../router/fuzz-corpus # kept beside the router's tests
cp "$seeds"/* "$work/corpus/"

ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
"$fuzzer" -max_total_time="$seconds" -max_len=$max_len -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/fuzz.log" 2>&1
status=$?
grep -E '^(#[0-9]+ +DONE|Done|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb)' \
  "$work/fuzz.log"
if [ $status -ne 0 ] || ls "$work/artifacts/"* >/dev/null 2>&1; then
  tail -n 60 "$work/fuzz.log"
  echo "fuzz_$target: FAILED (exit $status); log and reproducer kept in $work" >&2
  exit 1
fi
echo "fuzz_$target: no crash in ${seconds}s ($(ls "$work/corpus" | wc -l) inputs in the corpus)"
rm -rf "$work"
exit 0
