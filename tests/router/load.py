#!/usr/bin/python3
"""Steady load through the router for tests/test_router.sh: THREADS clients, each sending GET
requests (one connection per request, Host: HOST) for SECONDS, then one JSON summary line:
statuses and their counts, the highest "concurrent" an instance reported, the instances seen,
and the first few failures.

  load.py ADDR:PORT HOST THREADS SECONDS [DELAY]
"""
import http.client
import json
import sys
import threading
import time

addr, host, threads, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
delay = sys.argv[5] if len(sys.argv) > 5 else "0.05"
h, p = addr.rsplit(":", 1)
lock = threading.Lock()
out = {"statuses": {}, "max_concurrent": 0, "instances": [], "failures": [], "requests": 0,
       "versions": [], "last_version": None}
end = time.time() + seconds


def client():
    while time.time() < end:
        status, body = "error", ""
        try:
            c = http.client.HTTPConnection(h, int(p), timeout=30)
            c.request("GET", "/?delay=" + delay, headers={"Host": host})
            r = c.getresponse()
            body = r.read().decode(errors="replace")
            status = str(r.status)
            c.close()
        except Exception as e:  # a failed request is counted, never fatal
            body = repr(e)
        with lock:
            out["requests"] += 1
            out["statuses"][status] = out["statuses"].get(status, 0) + 1
            if status == "200":
                try:
                    doc = json.loads(body)
                    out["max_concurrent"] = max(out["max_concurrent"], doc["concurrent"])
                    if doc["instance"] not in out["instances"]:
                        out["instances"].append(doc["instance"])
                    if doc.get("version") not in out["versions"]:
                        out["versions"].append(doc.get("version"))
                    out["last_version"] = doc.get("version")
                except ValueError:
                    out["failures"].append("bad body: " + body[:80])
            elif len(out["failures"]) < 5:
                out["failures"].append(status + ": " + body.strip()[:120])


ts = [threading.Thread(target=client) for _ in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(json.dumps(out))
