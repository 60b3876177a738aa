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
