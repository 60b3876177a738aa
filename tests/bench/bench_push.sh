#!/bin/bash
# bench_push.sh - reaction time from a POST /triggers/ID/readings to the scaler's call, beside a
# baseline measured in the same run: a loopback HTTP round trip to the same admin's /healthz.
#
#   bash tests/bench/bench_push.sh [BUILD_DIR [N]]        (build, 2000)
#
# One `scalebus run --dry-run` (nothing is started) with push -> target (per_instance 1) ->
# process on a free loopback port. A python3 client on one keep-alive connection, N times: note
# the wall clock, POST a reading (1 and 2 in turn, so each push changes the desired count), then
# GET /pipelines and read the scaler's desired_at (the wall-clock time, in microseconds, at
# which the daemon handed the scaler its desired count, just before the scaler's on_event). The
# reaction is desired_at minus the time noted before the POST: HTTP parsing, the bus hop to the
# connector, its decision and the bus hop to the scaler. The baseline is N GET /healthz round
# trips on the same connection. Prints p50, p99 and max of both, the ratios, and the goal of
# issue 12 (p99 under 1 ms). Figures only: it exits 1 only when it cannot measure.
set -u
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
N=${2:-2000}
SB=$BUILD/scalebus
[ -x "$SB" ] || { echo "bench_push: no $SB (build first)"; exit 1; }
W=$(mktemp -d /tmp/sb-bench-push.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$W"' EXIT
PORT=$(/usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
cat >"$W/p.yaml" <<YAML
admin: { listen: "127.0.0.1:$PORT" }
log: { level: warn }
triggers:
  - { id: jobs, type: push }
connectors:
  - { id: per-one, type: target, from: jobs, to: pool, per_instance: 1, stabilize_down: 0s }
scalers:
  - { id: pool, type: process, command: ["sleep", "600"], min: 0, max: 10 }
YAML
"$SB" run "$W/p.yaml" --dry-run >"$W/run.log" 2>&1 &
pid=$!
/usr/bin/python3 - "$PORT" "$N" <<'PY' || { echo "bench_push: cannot measure"; tail -5 "$W/run.log"; exit 1; }
import http.client, json, sys, time
from datetime import datetime, timezone
port, n = int(sys.argv[1]), int(sys.argv[2])
for _ in range(100):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/readyz"); r = c.getresponse(); r.read()
        if r.status == 200: break
    except OSError:
        pass
    time.sleep(0.1)
else:
    sys.exit(1)

def at_ns(text):
    # "2026-11-27T19:53:52.405123Z" -> ns since the epoch (microsecond resolution)
    d = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return (int(d.replace(microsecond=0).timestamp()) * 1000000 + d.microsecond) * 1000

hdr = {"Content-Type": "application/json"}
def pct(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(p / 100.0 * len(v)))]

base, react, post_rtt = [], [], []
for i in range(n + 50):  # the first 50 warm up
    t0 = time.perf_counter_ns()
    c.request("GET", "/healthz"); r = c.getresponse(); r.read()
    if i >= 50: base.append(time.perf_counter_ns() - t0)
for i in range(n + 50):
    want = 1 + i % 2
    w0 = time.time_ns(); p0 = time.perf_counter_ns()
    c.request("POST", "/triggers/jobs/readings", body='{"value": %d}' % want, headers=hdr)
    r = c.getresponse(); r.read()
    p1 = time.perf_counter_ns()
    if r.status != 200: sys.exit(1)
    for _ in range(1000):
        c.request("GET", "/pipelines"); r = c.getresponse(); doc = json.loads(r.read())
        pool = [x for x in doc["components"] if x["id"] == "pool"][0]
        if pool["desired"] == want and pool["desired_at"] and at_ns(pool["desired_at"]) >= w0 - 1000:
            break
    else:
        sys.exit(1)
    if i >= 50:
        react.append(max(0, at_ns(pool["desired_at"]) - w0))
        post_rtt.append(p1 - p0)
us = lambda ns: ns / 1000.0
print("bench_push: %d pushes, one keep-alive connection, loopback" % n)
print("%-44s %9s %9s %9s" % ("", "p50 (us)", "p99 (us)", "max (us)"))
for name, v in (("baseline: GET /healthz round trip", base),
                ("POST readings round trip (client)", post_rtt),
                ("POST -> the scaler's call (reaction)", react)):
    print("%-44s %9.1f %9.1f %9.1f" % (name, us(pct(v, 50)), us(pct(v, 99)), us(max(v))))
print("reaction / baseline: %.2fx at p50, %.2fx at p99" % (pct(react, 50) / pct(base, 50), pct(react, 99) / pct(base, 99)))
print("goal (issue 12): reaction p99 < 1 ms: %s" % ("met" if pct(react, 99) < 1000000 else "NOT met"))
PY
kill -TERM "$pid"; wait "$pid" 2>/dev/null; pid=""
