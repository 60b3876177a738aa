#!/usr/bin/python3
"""What tests/test_marathon.sh asks the Marathon double (tests/marathon/marathon_double.py) and
the instances_recorder's file, one line out per question:

  ask.py BASE count                 how many API requests the double has recorded
  ask.py BASE since N               each request from the N-th on: METHOD PATH[?QUERY] BODY STATUS
  ask.py BASE instances APP         the app's instances ("none" when the app does not exist)
  ask.py BASE tasks APP             its task ids, oldest first (by stagedAt)
  ask.py BASE apps                  every app id the double has
  ask.py - seen FILE SCALER_COUNT   the instance lists written by instances_recorder: "yes" when
                                    one listed a member "starting" and a later one listed
                                    SCALER_COUNT members, every one "ready" with host:port, then
                                    that last list
"""
import json
import re
import sys
import urllib.request


def get(base, what):
    with urllib.request.urlopen(f"{base}/_control/{what}", timeout=5) as r:
        return json.load(r)


def main():
    base, q = sys.argv[1], sys.argv[2]
    if q == "count":
        print(len(get(base, "record")))
    elif q == "since":
        for e in get(base, "record")[int(sys.argv[3]):]:
            query = f"?{e['query']}" if e["query"] else ""
            print(f"{e['method']} {e['path']}{query} {e['body']} {e['status']}")
    elif q == "instances":
        app = get(base, "state").get(sys.argv[3])
        print(app["instances"] if app else "none")
    elif q == "tasks":
        app = get(base, "state").get(sys.argv[3]) or {"tasks": []}
        print(" ".join(t["id"] for t in sorted(app["tasks"], key=lambda t: t["stagedAt"])))
    elif q == "apps":
        print(" ".join(sorted(get(base, "state"))))
    elif q == "seen":
        want = int(sys.argv[4])
        starting = False
        with open(sys.argv[3]) as f:
            lists = [json.loads(line.split(" ", 1)[1]) for line in f if " " in line]
        for members in lists:
            if any(m.get("state") == "starting" for m in members):
                starting = True
            elif (starting and len(members) == want and
                  all(m.get("state") == "ready" and
                      re.fullmatch(r"[a-z0-9.-]+:\d+", m.get("address", "")) and
                      isinstance(m.get("started_at"), (int, float)) and m["started_at"] > 0
                      for m in members)):
                print("yes " + json.dumps(members))
                return
        print("no " + (json.dumps(lists[-1]) if lists else "nothing"))


if __name__ == "__main__":
    main()
