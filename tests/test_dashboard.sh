#!/bin/bash
# The dashboard (GET / on the admin endpoint, docs/admin.md "Dashboard") in a real headless
# Chromium driven by Selenium (Debian: chromium, chromium-driver, python3-selenium), against a
# real `scalebus run` with a token: the page asks for the token and keeps it for the tab; it
# draws both pipelines (component names), a trigger's value changes after a pushed reading, the
# decisions table shows the connector's reason as /pipelines gives it, a scaler's failed action
# is listed as an error as text (the command's "<i>x</i>" is no element), the chart has a line,
# and the Pause button pauses the scaler (seen through /pipelines). A screenshot is kept in the
# test's folder (printed; the folder is kept on failure, or always with DASHBOARD_KEEP=1).
# Chromium runs headless with its own --user-data-dir in that folder and reaches nothing but
# 127.0.0.1. Ends only the processes it started, by pid; every wait is bounded.
#
#   tests/test_dashboard.sh BUILD/scalebus SOURCE_DIR
#
# Exit 77 (skipped) when chromium, chromedriver or python3's selenium is missing.
set -u
SB=$1
SRC=$2
WRAP=${SB_E2E_WRAP:-}
SLOW=1
[ -n "$WRAP" ] && SLOW=10
PY=/usr/bin/python3
CHROME=$(command -v chromium || true)
DRIVER=$(command -v chromedriver || true)
if [ -z "$CHROME" ] || [ -z "$DRIVER" ] || ! "$PY" -c 'import selenium' 2>/dev/null; then
  echo "1..0 # SKIP needs chromium, chromium-driver and python3-selenium (Debian packages)"
  exit 77
fi
W=$(mktemp -d /tmp/sb-dashboard.XXXXXX)
fails=0
daemon=""
TOKEN="tok-$RANDOM$RANDOM-dash"
. "$(dirname "$0")/lib.sh"
cleanup() {
  [ -n "$daemon" ] && stop_pid "$daemon" 10
  for f in "$W"/worker.*; do
    [ -f "$f" ] || continue
    pid=$(awk '{ print $NF }' "$f"); [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  done
  if [ "${DASHBOARD_KEEP:-}" = 1 ] && [ "$fails" = 0 ]; then
    echo "kept $W (DASHBOARD_KEEP=1)"
  else
    keep_or_remove "$W" "$W/chromedriver.out"
  fi
}
trap cleanup EXIT
trap 'fails=$((fails + 1)); exit 1' INT TERM
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
cat >"$W/p.yaml" <<YAML
admin: { listen: "127.0.0.1:$PORT", token: "\${SB_DASHBOARD_TOKEN}" }
triggers:
  - { id: jobs, type: push }
  - { id: evil, type: push }
connectors:
  - { id: per-one, type: target, from: jobs, to: pool, per_instance: 1, stabilize_down: 0s }
  - { id: to-broken, type: target, from: evil, to: broken, per_instance: 1 }
scalers:
  - id: pool
    type: process
    command: ["sh", "$SRC/tests/e2e/worker.sh"]
    env: { E2E_DIR: "$W" }
    min: 0
    max: 4
    stop_grace: 1s
  - id: broken
    type: process
    command: ["/nonexistent/<i>x</i>"]
    min: 0
    max: 2
    stop_grace: 1s
YAML
SB_DASHBOARD_TOKEN=$TOKEN $WRAP "$SB" run "$W/p.yaml" >"$W/run.log" 2>&1 &
daemon=$!
ready() { curl -sf -m 5 -H "Authorization: Bearer $TOKEN" "$BASE/readyz" >/dev/null; }
if wait_for 20 ready; then ok "scalebus run is ready"; else not_ok "not ready"; exit 1; fi
code=$(curl -s -m 5 -o "$W/page.html" -w '%{http_code}' "$BASE/")
[ "$code" = 200 ] && grep -q '<script src="dashboard.js">' "$W/page.html" \
  && ok "GET / serves the page without the token (it holds no data)" || not_ok "GET /: $code"
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$BASE/scalers/pool/history")
[ "$code" = 401 ] && ok "the history wants the token" || not_ok "history without a token: $code"

cat >"$W/drive.py" <<'PY'
# Drives the dashboard in headless Chromium; prints TAP lines, exits 1 on a failure.
import json, os, sys, time, urllib.request
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

base, token, work, chrome, driver_path, slow = sys.argv[1:7]
slow = int(slow)
fails = 0
def ok(msg): print("ok - " + msg, flush=True)
def not_ok(msg):
    global fails
    fails += 1
    print("not ok - " + msg, flush=True)

def api(method, path, body=None):
    req = urllib.request.Request(base + path, method=method,
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"},
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())

def component(cid):
    return next(c for c in api("GET", "/pipelines")["components"] if c["id"] == cid)

def wait(seconds, fn):
    end = time.time() + seconds * slow
    while True:
        try:
            v = fn()
            if v:
                return v
        except Exception:
            pass
        if time.time() > end:
            return None
        time.sleep(0.1)

opts = webdriver.ChromeOptions()
opts.binary_location = chrome
for a in ["--headless=new", "--user-data-dir=" + os.path.join(work, "chrome-profile"),
          "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
          "--no-default-browser-check", "--disable-background-networking",
          "--disable-component-update", "--disable-sync", "--disable-extensions",
          "--disable-default-apps", "--metrics-recording-only", "--window-size=1280,1700",
          # Nothing but loopback: every host name fails, no proxy is asked.
          "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--no-proxy-server"]:
    opts.add_argument(a)
if os.geteuid() == 0:
    opts.add_argument("--no-sandbox")  # Chromium's sandbox refuses to run as root
service = Service(executable_path=driver_path, log_path=os.path.join(work, "chromedriver.out"))
d = webdriver.Chrome(service=service, options=opts)
shot = os.path.join(work, "dashboard.png")
try:
    d.set_page_load_timeout(30 * slow)
    d.get(base + "/")
    form = wait(10, lambda: d.find_element(By.ID, "token-form").is_displayed()
                and d.find_element(By.ID, "token-form"))
    if form:
        ok("the page asks for the token (the endpoint wants one)")
    else:
        not_ok("no token form")
    d.find_element(By.ID, "token-input").send_keys(token)
    d.find_element(By.ID, "token-save").click()

    def names():
        got = {e.get_attribute("data-id"): e.text for e in d.find_elements(By.CSS_SELECTOR, "g.node")}
        return got if len(got) >= 6 else None
    shown = wait(15, names)
    want = ["jobs", "per-one", "pool", "evil", "to-broken", "broken"]
    if shown and all(w in shown and w in shown[w] for w in want):
        ok("the graphs show every component by name: " + ", ".join(sorted(shown)))
    else:
        not_ok("graph nodes: %r" % (shown,))
    pipelines = d.find_elements(By.CSS_SELECTOR, "#graphs .pipeline")
    edges = d.find_elements(By.CSS_SELECTOR, "#graphs path.edge")
    (ok if len(pipelines) == 2 and len(edges) == 4 else not_ok)(
        "two pipelines, four edges drawn (%d, %d)" % (len(pipelines), len(edges)))

    value = lambda: d.find_element(By.CSS_SELECTOR, 'g.node[data-id="jobs"] .value').text
    api("POST", "/triggers/jobs/readings", {"value": 2})
    first = wait(15, lambda: "value 2" in value() and value())
    api("POST", "/triggers/jobs/readings", {"value": 3})
    second = wait(15, lambda: "value 3" in value() and value())
    (ok if first and second and first != second else not_ok)(
        "the trigger's value changes between two looks: %r then %r" % (first, second))

    reason = wait(15, lambda: component("per-one")["last_reason"] == "jobs=3 per_instance=1 -> 3"
                  and component("per-one")["last_reason"])
    row = lambda: [r.text for r in d.find_elements(By.CSS_SELECTOR, '#decisions tr.decision[data-id="per-one"] td.reason')]
    seen = wait(15, lambda: reason and reason in row() and row())
    (ok if seen else not_ok)("the decisions show per-one's reason %r (rows: %r)" % (reason, row()))

    api("POST", "/triggers/evil/readings", {"value": 1})
    err = wait(20, lambda: d.find_element(By.CSS_SELECTOR, '#errors li.error[data-id="broken"]').text)
    (ok if err and "<i>x</i>" in err else not_ok)("the failed action is an error, as text: %r" % err)
    markup = d.execute_script("return document.querySelectorAll('main i').length")
    (ok if markup == 0 else not_ok)("no element came from the daemon's text (<i> elements: %r)" % markup)
    node_class = d.find_element(By.CSS_SELECTOR, 'g.node[data-id="broken"]').get_attribute("class")
    (ok if "error" in node_class else not_ok)("the broken scaler's node is highlighted (%s)" % node_class)

    d.execute_script("window.scrollTo(0, 0)")
    line = wait(15, lambda: d.find_elements(By.CSS_SELECTOR, '.scaler-card[data-id="pool"] svg.chart path.desired'))
    hist = api("GET", "/scalers/pool/history")
    (ok if line and hist["points"] and hist["points"][-1][1] == 3 else not_ok)(
        "the pool's chart has its desired line; the history's last point %r" % (hist["points"][-1:],))

    if component("pool")["paused"]:
        not_ok("pool paused before the click")
    d.find_element(By.CSS_SELECTOR, '.scaler-card[data-id="pool"] button.pause').click()
    paused = wait(15, lambda: component("pool")["paused"])
    (ok if paused else not_ok)("Pause pauses the scaler (/pipelines: paused true)")
    badge = wait(15, lambda: d.find_elements(By.CSS_SELECTOR, '.scaler-card[data-id="pool"] .badge.paused'))
    (ok if badge else not_ok)("the page shows it paused")

    d.refresh()
    again = wait(15, lambda: d.find_elements(By.CSS_SELECTOR, 'g.node[data-id="pool"]'))
    hidden = not d.find_element(By.ID, "token-form").is_displayed()
    (ok if again and hidden else not_ok)("after a reload the tab keeps its token (sessionStorage)")
    wait(5, lambda: d.find_elements(By.CSS_SELECTOR, '.scaler-card[data-id="pool"] .badge.paused'))
finally:
    try:
        d.save_screenshot(shot)
        print("# screenshot: " + shot, flush=True)
    finally:
        d.quit()
sys.exit(1 if fails else 0)
PY
timeout $((180 * SLOW)) "$PY" "$W/drive.py" "$BASE" "$TOKEN" "$W" "$CHROME" "$DRIVER" "$SLOW" \
  >"$W/drive.out" 2>"$W/drive.err"
rc=$?
cat "$W/drive.out"
fails=$((fails + $(grep -c '^not ok' "$W/drive.out")))
if [ "$rc" != 0 ] && ! grep -q '^not ok' "$W/drive.out"; then
  not_ok "the browser run ended with $rc: $(tail -5 "$W/drive.err")"
fi
[ -s "$W/dashboard.png" ] && ok "screenshot kept: $W/dashboard.png" || not_ok "no screenshot"
grep -qF "$TOKEN" "$W/run.log" && not_ok "the token is in the daemon's log" || ok "the token is not in the log"
# A clean stop (under SB_E2E_WRAP, the wrapper's verdict too).
kill -TERM "$daemon"
for _ in $(seq $((300 * SLOW))); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$daemon" 2>/dev/null; then
  kill -KILL "$daemon"; wait "$daemon" 2>/dev/null; rc=255
else
  wait "$daemon"; rc=$?
fi
daemon=""
[ "$rc" = 0 ] && ok "scalebus run stops cleanly (exit 0)" || not_ok "scalebus run exit $rc"
[ "$fails" = 0 ]
