# tests/docker/ps.py - reads an engine's JSON replies for tests/test_docker.sh.
#   ps.py names SCALER [all] < GET /containers/json?all=1 reply
#       the names of the containers labelled scalebus.scaler=SCALER, oldest first, that are
#       running (or in any state with "all"); SCALER "-" means containers with no such label
#   ps.py inspect FIELD < GET /containers/ID/json reply
#       Id, state, labels (k=v,...), env (one a line), init
import json
import sys

mode = sys.argv[1]
doc = json.load(sys.stdin)
if mode == "names":
    want = sys.argv[2]
    every = len(sys.argv) > 3
    out = []
    for c in doc:
        owner = (c.get("Labels") or {}).get("scalebus.scaler", "-")
        if owner == want and (every or c.get("State") == "running"):
            out.append(c)
    out.sort(key=lambda c: (c.get("Created", 0), c["Names"][0]))
    print(" ".join(c["Names"][0].lstrip("/") for c in out))
elif mode == "inspect":
    field = sys.argv[2]
    if not isinstance(doc, dict) or "State" not in doc:
        print("-")
    elif field == "Id":
        print(doc["Id"])
    elif field == "state":
        print(doc["State"]["Status"])
    elif field == "labels":
        print(",".join("%s=%s" % kv for kv in sorted((doc["Config"].get("Labels") or {}).items())))
    elif field == "env":
        print("\n".join(doc["Config"].get("Env") or []))
    elif field == "init":
        print(str(doc["HostConfig"].get("Init")).lower())
