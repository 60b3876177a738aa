# tests/lib.sh - what the shell tests share: TAP-style ok/not_ok lines that count failures, and a
# bounded poll. Source it after setting SLOW (how many times longer a wait may take, e.g. under
# valgrind; 1 by default). Each script keeps its own cleanup and process helpers.
fails=${fails:-0}
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; fails=$((fails + 1)); }
# wait_for SECONDS CMD...: poll until CMD succeeds or the bound (times SLOW) passes.
wait_for() {
  local limit=$(($1 * 10 * ${SLOW:-1})); shift
  for _ in $(seq "$limit"); do "$@" && return 0; sleep 0.1; done
  return 1
}
# keep_or_remove DIR [EXTRA_FILES...]: after a failure, print the tail of each DIR/*.log (and of
# each extra file) and keep DIR for a look; otherwise remove it.
keep_or_remove() {
  local dir=$1; shift
  if [ "$fails" != 0 ]; then
    for l in "$dir"/*.log "$@"; do
      [ -f "$l" ] && { echo "--- $l (last 40 lines)"; tail -40 "$l"; }
    done
    echo "kept $dir for the failure above"
  else
    rm -rf "$dir"
  fi
}
