#!/bin/sh
# Test worker for tests/test_process.c. Records who it is in OUT_DIR/w.<pid> (written to a
# temporary name first so the test never reads half a line), then behaves as MODE says:
#   worker.sh OUT_DIR [MODE]
#   term    (default) sleep; SIGTERM ends it at once
#   ignore  ignore SIGTERM (inherited by the exec'd sleep), so only SIGKILL ends it
#   crash   exit 1 straight away
#   group   start a second sleep in the background (same process group), then as term
#   listen  wait SB_TEST_LISTEN_AFTER seconds (default 1), then serve HTTP on 127.0.0.1:$PORT
#           (python3's http.server: GET / answers 200, other paths 404)
out=$1
mode=${2:-term}
printf '%s %s %s %s %s\n' "$SCALEBUS_INSTANCE" "${PORT:-0}" "$$" "$SCALEBUS_SCALER" \
    "${SB_TEST_EXTRA:-unset}" >"$out/w.$$.tmp"
mv "$out/w.$$.tmp" "$out/w.$$"
echo "stdout of $$"
echo "stderr of $$" >&2
case $mode in
crash) exit 1 ;;
ignore) trap '' TERM ;;
group) sleep 600 & ;;
listen)
  sleep "${SB_TEST_LISTEN_AFTER:-1}"
  cd "$out" && exec /usr/bin/python3 -m http.server --bind 127.0.0.1 "$PORT" >/dev/null 2>&1 ;;
esac
# exec: the instance stays one process, so its pid is the one the test watches.
exec sleep 600
