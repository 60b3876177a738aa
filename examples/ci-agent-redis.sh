#!/bin/sh
# A stand-in CI agent for examples/ci-agents-redis.yaml: takes jobs off the Redis list `jobs`
# (BLPOP, so two agents never take the same job), "builds" each for 10 seconds, and stops when
# scalebus tells it to (SIGTERM). REDIS_URL says which Redis (redis-cli -u syntax).
url=${REDIS_URL:-redis://127.0.0.1:6379/0}
echo "agent $SCALEBUS_INSTANCE (pid $$) waiting for jobs on $url"
trap 'echo "agent $SCALEBUS_INSTANCE (pid $$) stopping"; exit 0' TERM INT
while :; do
  # In the background and waited for, so SIGTERM is handled at once, not after the BLPOP.
  redis-cli -u "$url" --no-auth-warning --raw blpop jobs 5 >"${TMPDIR:-/tmp}/ci-agent.$$" &
  if ! wait $!; then # Redis unreachable: retry in 2 s, not in a tight loop
    sleep 2 &
    wait $!
    continue
  fi
  job=$(sed -n 2p "${TMPDIR:-/tmp}/ci-agent.$$")
  rm -f "${TMPDIR:-/tmp}/ci-agent.$$"
  [ -n "$job" ] || continue
  echo "agent $SCALEBUS_INSTANCE building $job"
  sleep 10 &
  wait $!
  echo "agent $SCALEBUS_INSTANCE finished $job"
done
