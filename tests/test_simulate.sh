#!/bin/bash
# `scalebus simulate`, end to end through the real binary: the decisions CSV of a small trace
# through `direct` (exact), `-` for standard input and output, labels routed by `match`, trace
# errors as TRACE:LINE (from a file and from a pipe), the line limit (/dev/zero is refused), a
# pipeline error as FILE:LINE:COL, usage errors, --startup delaying the model's running count, the
# SVG chart (well-formed XML with its legend and axis labels), a day of one-second readings, the
# built-in `target` connector's ratio mode (the model's count reaching a policy), and five million
# readings through a pipe in bounded memory (peak RSS, measured by a small getrusage helper).
#
#   tests/test_simulate.sh BUILD/scalebus SOURCE_DIR
set -u
SB=$1
SRC=$2
W=$(mktemp -d /tmp/sb-simulate.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
. "$(dirname "$0")/lib.sh"
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

# `-` is standard output for --out and --svg, standard input for --trace: from a pipe (read once,
# checked as it is replayed) or a redirected file (checked whole first), the same decisions.
"$SB" simulate pipeline.yaml --trace trace.csv --out - >got-dash.csv 2>err.txt
expect_file "--out - writes to standard output" want.csv got-dash.csv
[ ! -e ./- ] && ok "--out - writes no file named '-'" || not_ok "--out - wrote a file named '-'"
cat trace.csv | "$SB" simulate pipeline.yaml --trace - >got-pipe.csv 2>err.txt
expect_file "--trace - reads a pipe on standard input" want.csv got-pipe.csv
"$SB" simulate pipeline.yaml --trace - <trace.csv >got-stdin.csv 2>err.txt
expect_file "--trace - reads a file on standard input" want.csv got-stdin.csv
"$SB" simulate pipeline.yaml --trace trace.csv --out dash-out.csv --svg - >dash.svg 2>err.txt
rc=$?
if [ $rc = 0 ] && head -1 dash.svg | grep -q '^<?xml' && tail -1 dash.svg | grep -qx '</svg>'; then
  ok "--svg - writes the chart to standard output"
else
  not_ok "--svg -: exit $rc, $(wc -c <dash.svg) bytes on stdout"
fi
expect_file "--svg - leaves the decisions in --out" want.csv dash-out.csv
"$SB" simulate pipeline.yaml --trace trace.csv --svg - >/dev/null 2>err.txt
rc=$?
[ $rc = 2 ] && grep -q "^scalebus: --svg - needs --out FILE" err.txt &&
  ok "--svg - with the decisions on standard output is a usage error" ||
  not_ok "--svg - without --out: exit $rc, $(head -1 err.txt)"

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
# Through a pipe, the same errors (named stdin); the replay stops at the first bad row (line 3):
# only the decisions before it are written.
sed 's/^bad\.csv:/stdin:/' want-bad.txt >want-bad-pipe.txt
cat bad.csv | "$SB" simulate pipeline.yaml --trace - --out bad-pipe.csv 2>got-bad-pipe.txt >/dev/null
rc=$?
[ $rc = 1 ] && ok "a bad trace through a pipe exits 1" || not_ok "bad trace through a pipe: exit $rc"
expect_file "a pipe's trace errors as stdin:LINE: message" want-bad-pipe.txt got-bad-pipe.txt
printf 'time_s,scaler,desired,reason\n0,workers,1,"direct from pass"\n' >want-bad-pipe.csv
expect_file "a pipe's replay stops at its first bad row" want-bad-pipe.csv bad-pipe.csv
# An error quoting a line break from the trace stays on one line.
printf 'time_s,trigger,value\n0,"que\nue",1\n' >break.csv
"$SB" simulate pipeline.yaml --trace break.csv 2>got-break.txt >/dev/null
echo "break.csv:2: unknown trigger 'que?ue' (triggers in the file: queue, cpu)" >want-break.txt
expect_file "an error message is one line" want-break.txt got-break.txt

# 3b. The line limit: a line (its line break included) of 65536 bytes is read; one byte more is
#     refused and ends the reading, so /dev/zero is refused at once instead of filling memory.
long_line() { # long_line LENGTH: a row of LENGTH bytes, its newline included
  awk -v n="$1" 'BEGIN { s = "2,queue,1,pad="; while (length(s) < n - 1) s = s "x"; print s }'
}
{ printf 'time_s,trigger,value,labels\n1,queue,2,\n'; long_line 65536; } >limit.csv
"$SB" simulate pipeline.yaml --trace limit.csv >got-limit.csv 2>err.txt
rc=$?
[ $rc = 0 ] && [ "$(wc -l <got-limit.csv)" = 3 ] && ok "a line of 65536 bytes is read" ||
  { not_ok "a line of 65536 bytes: exit $rc"; head -3 err.txt; }
{ printf 'time_s,trigger,value,labels\n1,queue,2,\n'; long_line 65537; printf '3,queue,1,\n'; } >over.csv
"$SB" simulate pipeline.yaml --trace over.csv --out over-out.csv 2>got-over.txt >/dev/null
rc=$?
echo "over.csv:3: a line longer than 65536 bytes; reading stopped (is this a CSV trace?)" >want-over.txt
[ $rc = 1 ] && ok "a line of 65537 bytes exits 1" || not_ok "a line of 65537 bytes: exit $rc"
expect_file "a line over the limit is named" want-over.txt got-over.txt
[ ! -e over-out.csv ] && ok "no decisions file for a trace over the limit" || not_ok "over-out.csv written"
timeout 20 "$SB" simulate pipeline.yaml --trace /dev/zero --out zero-out.csv 2>got-zero.txt >/dev/null
rc=$?
echo "/dev/zero:1: a line longer than 65536 bytes; reading stopped (is this a CSV trace?)" >want-zero.txt
[ $rc = 1 ] && ok "--trace /dev/zero exits 1" ||
  not_ok "--trace /dev/zero: exit $rc (124: still reading after 20 s)"
expect_file "--trace /dev/zero is refused at its first line" want-zero.txt got-zero.txt
[ ! -e zero-out.csv ] && ok "no decisions file for /dev/zero" || not_ok "zero-out.csv written"

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
grep -q "^broken.yaml:6:70: unknown option 'bogus' for process" got-broken.txt &&
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
[ -s chart.svg ] && ok "the chart is written" || { not_ok "chart.svg missing or empty"; cat err.txt; }
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
if [ ! -s chart.svg ]; then
  not_ok "no chart to look into"
elif grep -qE 'xlink:href|<script|@import|url\(http' chart.svg; then
  not_ok "chart refers to something outside"
else
  ok "chart refers to nothing outside itself"
fi

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

# 9. The `target` connector (built in: it must be listed): ratio mode reads the current count
#    from the model, so --startup delays the count it multiplies. The HPA formula:
#    ceil(current * value / target).
"$SB" plugins >plugins.txt 2>&1
grep -q '^target ' plugins.txt && ok "the built-in target connector is listed" ||
  { not_ok "target is not listed by scalebus plugins (it is built in)"; cat plugins.txt; }
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

# 10. The README's example: its trace is what make-trace.sh writes, and it simulates.
EX="$SRC/examples/simulate"
if sh "$EX/make-trace.sh" | cmp -s - "$EX/trace.csv"; then
  ok "examples/simulate/trace.csv is what make-trace.sh writes"
else
  not_ok "examples/simulate/trace.csv differs from make-trace.sh's output"
fi
"$SB" simulate "$EX/policy.yaml" --trace "$EX/trace.csv" --startup 20s --out example.csv \
  --svg example.svg 2>err.txt
rc=$?
[ $rc = 0 ] && [ "$(wc -l <example.csv)" -gt 720 ] && ok "the example simulates" ||
  { not_ok "the example: exit $rc"; cat err.txt; }

# 11. Bounded memory: five million readings (100 000 label sets, more than the chart tells apart)
#     through `target`, from a pipe, as an endless trace would come. The peak RSS of `simulate`
#     (getrusage of the child, by a helper built here) stays under 64 MB; before the trace was
#     read as a stream it grew with the trace (326 MB for these rows). Under AddressSanitizer the
#     quarantine of freed blocks is held to 8 MB for this run, so it measures the simulator.
cat >maxrss.c <<'END_OF_C'
/* maxrss OUT CMD ARGS...: run CMD, write "PEAK_RSS_KB EXIT_STATUS" to OUT, exit with its status */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    pid_t pid = fork();
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    int st = 0;
    struct rusage ru;
    if (pid < 0 || wait4(pid, &st, 0, &ru) != pid)
        return 2;
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    FILE *f = fopen(argv[1], "w");
    if (!f)
        return 2;
    fprintf(f, "%ld %d\n", ru.ru_maxrss, rc);
    return fclose(f) == 0 ? rc : 2;
}
END_OF_C
if ! cc -O2 -o maxrss maxrss.c 2>cc.txt; then
  not_ok "cannot build the RSS helper (cc): $(head -3 cc.txt)"
else
  awk 'BEGIN { print "time_s,trigger,value,labels"
    for (i = 0; i < 5000000; i++) printf "%d,queue,%d,q=q%d\n", i, (i * 7) % 500, i % 100000 }' |
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8" \
      ./maxrss rss.txt "$SB" simulate "$EX/policy.yaml" --trace - --startup 20s --out - \
      --svg stream.svg 2>err.txt | wc -l >stream-rows.txt
  read -r rss_kb rss_rc <rss.txt || { rss_kb=999999999; rss_rc=none; }
  [ "$rss_rc" = 0 ] && ok "five million readings through a pipe simulate" ||
    { not_ok "five million readings: exit $rss_rc"; head -5 err.txt; }
  [ "$(cat stream-rows.txt)" = 5000001 ] && ok "a decision per reading (5000000 rows)" ||
    not_ok "five million readings: $(cat stream-rows.txt) lines of decisions"
  [ "$rss_kb" -lt 65536 ] && ok "five million readings in bounded memory (peak RSS $rss_kb kB < 64 MB)" ||
    not_ok "five million readings: peak RSS $rss_kb kB, not under 64 MB"
  grep -q "5000000 readings" stream.svg && grep -q "or more input(s) not drawn" stream.svg &&
    ok "the chart counts every reading, and more label sets than it tells apart" ||
    not_ok "stream.svg: $(grep -o '[0-9]* readings[^<]*' stream.svg)"
  size=$(wc -c <stream.svg)
  [ "$size" -lt 400000 ] && ok "the chart of five million readings stays small ($size bytes)" ||
    not_ok "stream.svg is $size bytes"
  if command -v xmllint >/dev/null; then
    xmllint --noout stream.svg && ok "that chart is well-formed" || not_ok "stream.svg is not well-formed"
  fi
fi

if [ $fails -gt 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all simulate checks passed"
