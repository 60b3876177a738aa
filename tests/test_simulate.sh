#!/bin/bash
# `scalebus simulate`, end to end through the real binary: the decisions CSV of a small trace
# through `direct` (exact), labels routed by `match`, trace errors as TRACE:LINE, a pipeline error
# as FILE:LINE:COL, usage errors, --startup delaying the model's running count, the SVG chart
# (well-formed XML with its legend and axis labels), and a day of one-second readings. The
# `target` connector's ratio mode, when it is built, shows the model's count reaching a policy.
#
#   tests/test_simulate.sh BUILD/scalebus SOURCE_DIR
set -u
SB=$1
SRC=$2
W=$(mktemp -d /tmp/sb-simulate.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; fails=$((fails + 1)); }
# expect_file NAME WANT GOT: exact comparison, with the difference shown on failure.
expect_file() {
  if diff -u "$2" "$3" >"$W/diff"; then ok "$1"; else not_ok "$1"; sed 's/^/    /' "$W/diff"; fi
}
cd "$W" || exit 1

# Triggers are never run by simulate: cron stands in for a queue-length trigger here.
cat >pipeline.yaml <<'EOF'
triggers:
  - { id: queue, type: cron, schedule: "* * * * * *" }
  - { id: cpu, type: cron, schedule: "* * * * * *" }
connectors:
  - { id: pass, type: direct, from: queue, to: workers }
scalers:
  - { id: workers, type: process, command: ["true"], min: 1, max: 5 }
EOF

# 1. Decisions through direct: one row per desired count delivered, clamped to [min, max], at the
#    reading's virtual time; direct's reason is "direct from ID". Readings of a trigger that feeds
#    nothing (cpu) decide nothing.
cat >trace.csv <<'EOF'
time_s,trigger,value
0,queue,0
1,queue,3
2.5,queue,7
2.5,cpu,0.5
4,queue,2.2
10,queue,2
EOF
cat >want.csv <<'EOF'
time_s,scaler,desired,reason
0,workers,1,"direct from pass"
1,workers,3,"direct from pass"
2.5,workers,5,"direct from pass"
4,workers,3,"direct from pass"
10,workers,2,"direct from pass"
EOF
"$SB" simulate pipeline.yaml --trace trace.csv >got.csv 2>err.txt
rc=$?
[ $rc = 0 ] && ok "simulate exits 0" || { not_ok "simulate exit code $rc"; cat err.txt; }
expect_file "decisions CSV through direct (stdout)" want.csv got.csv
"$SB" simulate pipeline.yaml --trace trace.csv --out out.csv >stdout.txt 2>&1
expect_file "--out writes the same CSV to a file" want.csv out.csv
[ ! -s stdout.txt ] && ok "--out leaves stdout empty" || not_ok "stdout with --out: $(head -3 stdout.txt)"

# 2. Labels (quoted, k=v;k=v) reach connectors, whose match routes them to their own scaler;
#    CRLF line ends and a byte order mark are accepted.
cat >labels.yaml <<'EOF'
triggers:
  - { id: queues, type: cron, schedule: "* * * * * *" }
connectors:
  - { id: to-build, type: direct, from: queues, to: build, match: { queue: "build-*" } }
  - { id: to-test, type: direct, from: queues, to: test, match: { queue: test } }
scalers:
  - { id: build, type: process, command: ["true"], min: 0, max: 9 }
  - { id: test, type: process, command: ["true"], min: 0, max: 9 }
EOF
printf '\357\273\277time_s,trigger,value,labels\r\n0,queues,4,"queue=build-arm;region=eu"\r\n0.25,queues,2,queue=test\r\n1,queues,6,queue=build-x86\r\n2,queues,1,\r\n' >labels.csv
cat >want-labels.csv <<'EOF'
time_s,scaler,desired,reason
0,build,4,"direct from to-build"
0.25,test,2,"direct from to-test"
1,build,6,"direct from to-build"
EOF
"$SB" simulate labels.yaml --trace labels.csv >got-labels.csv 2>err.txt
expect_file "labels routed by match (quoted labels, CRLF, BOM)" want-labels.csv got-labels.csv

# 3. Trace errors: every bad row as TRACE:LINE: message, exit 1, no decisions written.
cat >bad.csv <<'EOF'
time_s,trigger,value,labels
0,queue,1,
1,queu,2,
2,workers,3,
1.5,queue,4,
x,queue,1,
3,queue,abc,
4,queue,1,novalue
5,queue,"1"x,
6,queue
EOF
cat >want-bad.txt <<'EOF'
bad.csv:3: unknown trigger 'queu' (triggers in the file: queue, cpu)
bad.csv:4: 'workers' is a scaler, not a trigger (triggers in the file: queue, cpu)
bad.csv:5: time goes backwards: 1.5 is before the previous row's 2 (rows must be in time order)
bad.csv:6: time_s: 'x' is not a number of seconds
bad.csv:7: value: 'abc' is not a number
bad.csv:8: labels: expected key=value items separated by ';', got 'novalue'
bad.csv:9: text after a closing quote (a quote inside a quoted field is written "")
bad.csv:10: expected 4 fields (time_s,trigger,value,labels), got 2
EOF
"$SB" simulate pipeline.yaml --trace bad.csv --out bad-out.csv 2>got-bad.txt >/dev/null
rc=$?
[ $rc = 1 ] && ok "a bad trace exits 1" || not_ok "bad trace exit code $rc"
expect_file "trace errors as TRACE:LINE: message" want-bad.txt got-bad.txt
[ ! -e bad-out.csv ] && ok "no decisions file for a bad trace" || not_ok "bad-out.csv written"
printf 'time,trigger,value\n0,queue,1\n' >header.csv
"$SB" simulate pipeline.yaml --trace header.csv 2>got-header.txt >/dev/null
grep -qx "header.csv:1: expected the header time_s,trigger,value (or time_s,trigger,value,labels), got 'time,trigger,value'" got-header.txt &&
  ok "a wrong header is named" || not_ok "wrong header: $(cat got-header.txt)"
"$SB" simulate pipeline.yaml --trace missing.csv 2>got-missing.txt >/dev/null
rc=$?
[ $rc = 1 ] && grep -q "^missing.csv: cannot read: No such file or directory$" got-missing.txt &&
  ok "a missing trace exits 1 with its name" || not_ok "missing trace: rc $rc $(cat got-missing.txt)"

# 4. A pipeline error is printed as FILE:LINE:COL, as `check` does.
cat >broken.yaml <<'EOF'
triggers:
  - { id: queue, type: cron, schedule: "* * * * * *" }
connectors:
  - { id: pass, type: direct, from: queue, to: workers }
scalers:
  - { id: workers, type: process, command: ["true"], min: 1, max: 5, bogus: 1 }
EOF
"$SB" simulate broken.yaml --trace trace.csv 2>got-broken.txt >/dev/null
rc=$?
[ $rc = 1 ] && ok "a broken pipeline file exits 1" || not_ok "broken file exit code $rc"
grep -qx "broken.yaml:6:70: unknown option 'bogus' for process" got-broken.txt &&
  ok "pipeline errors as FILE:LINE:COL" || not_ok "pipeline error: $(cat got-broken.txt)"

# 5. Usage errors exit 2.
for args in "pipeline.yaml" "--trace trace.csv" "pipeline.yaml --trace trace.csv --startup 5x" \
  "pipeline.yaml --trace trace.csv --frobnicate"; do
  # shellcheck disable=SC2086
  "$SB" simulate $args >/dev/null 2>&1
  rc=$?
  [ $rc = 2 ] && ok "usage error exits 2: simulate $args" || not_ok "simulate $args: exit $rc"
done
"$SB" simulate --help | grep -q "^usage: scalebus simulate FILE --trace TRACE.csv" &&
  ok "simulate --help" || not_ok "simulate --help"
"$SB" --help | grep -q "simulate FILE" && ok "simulate in the command list" ||
  not_ok "simulate missing from scalebus --help"

# 6. --startup: the model's running count reaches the desired count that much later. The chart's
#    figures say how long the pool ran below its desired count: 1 -> 3 at 1 s, ready at 3 s.
cat >step.csv <<'EOF'
time_s,trigger,value
0,queue,1
1,queue,3
10,queue,3
EOF
"$SB" simulate pipeline.yaml --trace step.csv --out /dev/null --svg nostartup.svg 2>err.txt
"$SB" simulate pipeline.yaml --trace step.csv --out /dev/null --svg startup.svg --startup 2s 2>>err.txt
grep -q "running below desired 0s<" nostartup.svg && ok "no --startup: running follows at once" ||
  not_ok "no --startup: $(grep -o 'running below desired[^<]*' nostartup.svg)"
grep -q "running below desired 2s<" startup.svg && ok "--startup 2s: running 2 s behind" ||
  not_ok "--startup 2s: $(grep -o 'running below desired[^<]*' startup.svg)"
grep -q "new instances ready after 2s" startup.svg && ok "the legend names the startup" ||
  not_ok "startup missing from the legend"

# 7. The chart: well-formed, self-contained, with its title, legend and axis labels.
"$SB" simulate pipeline.yaml --trace trace.csv --out /dev/null --svg chart.svg 2>err.txt
if command -v xmllint >/dev/null; then
  xmllint --noout chart.svg 2>xml.txt && ok "the SVG is well-formed XML" ||
    { not_ok "xmllint: the SVG is not well-formed"; head -5 xml.txt; }
else
  not_ok "xmllint not found: install libxml2-utils (scripts/install-deps.sh)"
fi
for want in "scalebus simulate: pipeline.yaml" "desired count (decisions)" "running (model" \
  "min 1 / max 5" "queue (right axis)" ">instances<" ">time (s)<" ">min 1<" ">max 5<" \
  "scaler workers"; do
  grep -qF -- "$want" chart.svg && ok "chart has '$want'" || not_ok "chart lacks '$want'"
done
grep -qE 'xlink:href|<script|@import|url\(http' chart.svg && not_ok "chart refers to something outside" ||
  ok "chart refers to nothing outside itself"

# 8. A day of one-second readings (timings are for the report, not asserted here).
awk 'BEGIN { print "time_s,trigger,value"; srand(7)
  for (t = 0; t < 86400; t++) printf "%d,queue,%d\n", t, 3 + 2 * sin(t / 900) + rand() * 2 }' >day.csv
start=$(date +%s%N)
"$SB" simulate pipeline.yaml --trace day.csv --out day-out.csv --svg day.svg --startup 30s 2>err.txt
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
[ $rc = 0 ] && ok "a day of 1-second readings simulates (${ms} ms)" || { not_ok "day trace: exit $rc"; cat err.txt; }
rows=$(($(wc -l <day-out.csv) - 1))
[ "$rows" -ge 86400 ] && ok "a decision per reading ($rows rows)" || not_ok "day trace: $rows decision rows"
size=$(wc -c <day.svg)
[ "$size" -lt 400000 ] && ok "the day's chart stays small ($size bytes)" || not_ok "day.svg is $size bytes"
if command -v xmllint >/dev/null; then
  xmllint --noout day.svg && ok "the day's chart is well-formed" || not_ok "day.svg is not well-formed"
fi

# 9. With the `target` connector built: ratio mode reads the current count from the model, so
#    --startup delays the count it multiplies. The HPA formula: ceil(current * value / target).
if "$SB" plugins 2>/dev/null | grep -q '^target '; then
  cat >ratio.yaml <<'EOF'
triggers:
  - { id: cpu, type: cron, schedule: "* * * * * *" }
connectors:
  - { id: hpa, type: target, from: cpu, to: web, mode: ratio, target: 50, stabilize_down: 0s }
scalers:
  - { id: web, type: process, command: ["true"], min: 2, max: 50 }
EOF
  printf 'time_s,trigger,value\n0,cpu,100\n1,cpu,100\n2,cpu,100\n3,cpu,100\n' >ratio.csv
  "$SB" simulate ratio.yaml --trace ratio.csv >ratio0.csv 2>err.txt
  "$SB" simulate ratio.yaml --trace ratio.csv --startup 2500ms >ratio1.csv 2>>err.txt
  # Without a startup the pool doubles on every reading; with 2.5 s, readings 1 and 2 still see 4
  # running, and the reading at 3 s sees the 4 that became ready at 2.5 s.
  got0=$(cut -d, -f1,3 ratio0.csv | tail -n +2 | paste -sd' ')
  got1=$(cut -d, -f1,3 ratio1.csv | tail -n +2 | paste -sd' ')
  [ "$got0" = "0,4 1,8 2,16 3,32" ] && ok "ratio mode doubles the model's count each reading" ||
    { not_ok "ratio mode, no startup: $got0"; cat err.txt; }
  [ "$got1" = "0,4 1,4 2,4 3,8" ] && ok "ratio mode sees the count only after --startup" ||
    not_ok "ratio mode, --startup 2500ms: $got1"
else
  echo "ok - # SKIP the target connector is not built: ratio mode through the model"
fi

# 10. The README's example: its trace is what make-trace.sh writes, and it simulates.
EX="$SRC/examples/simulate"
if sh "$EX/make-trace.sh" | cmp -s - "$EX/trace.csv"; then
  ok "examples/simulate/trace.csv is what make-trace.sh writes"
else
  not_ok "examples/simulate/trace.csv differs from make-trace.sh's output"
fi
if "$SB" plugins 2>/dev/null | grep -q '^target '; then
  "$SB" simulate "$EX/policy.yaml" --trace "$EX/trace.csv" --startup 20s --out example.csv \
    --svg example.svg 2>err.txt
  rc=$?
  [ $rc = 0 ] && [ "$(wc -l <example.csv)" -gt 720 ] && ok "the example simulates" ||
    { not_ok "the example: exit $rc"; cat err.txt; }
else
  echo "ok - # SKIP the target connector is not built: the example"
fi

if [ $fails -gt 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all simulate checks passed"
