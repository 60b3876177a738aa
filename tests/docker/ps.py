# tests/docker/ps.py - reads an engine's JSON replies, and the instance lists a scaler published,
# for tests/test_docker.sh.
#   ps.py names SCALER [all] < GET /containers/json?all=1 reply
#       the names of the containers labelled scalebus.scaler=SCALER, oldest first, that are
#       running (or in any state with "all"); SCALER "-" means containers with no such label
#   ps.py inspect FIELD < GET /containers/ID/json reply
#       Id, state, labels (k=v,...), env (one a line), init, healthcheck (Config.Healthcheck as
#       JSON, keys sorted), ip NETWORK (the container's address on it), health (State.Health:
#       status, failing streak, and the last checks: start, exit code, output, on one line)
#   ps.py seen FILE
#       the last instance list in FILE (instances_recorder's "<active> <JSON>" lines): one line
#       per member, "id state address health" ("-" for what it has not)
#   ps.py states FILE ID
#       the states member ID went through, in order, each once ("starting ready failed")
import json
import sys


def lists(path):
    out = []
    with open(path) as f:
        for line in f:
            _, _, payload = line.partition(" ")
            doc = json.loads(payload) if payload.strip() else None
            out.append(doc if isinstance(doc, list) else [])
    return out


mode = sys.argv[1]
if mode == "seen":
    every = lists(sys.argv[2])
    for m in every[-1] if every else []:
        print(m.get("id"), m.get("state"), m.get("address") or "-", m.get("health") or "-")
    sys.exit(0)
if mode == "states":
    went = []
    for members in lists(sys.argv[2]):
        for m in members:
            if m.get("id") == sys.argv[3] and (not went or went[-1] != m.get("state")):
                went.append(m.get("state"))
    print(" ".join(went))
    sys.exit(0)

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
    elif field == "healthcheck":
        print(json.dumps(doc["Config"].get("Healthcheck"), sort_keys=True))
    elif field == "health":
        health = doc["State"].get("Health") or doc["State"].get("Healthcheck")  # Podman 4 says both
        if not isinstance(health, dict):
            print("no State.Health")
        else:
            checks = []
            for entry in (health.get("Log") or [])[-3:]:
                said = "".join(ch if ch.isprintable() else " " for ch in str(entry.get("Output", "")))
                checks.append("%s exit %s '%s'" % (entry.get("Start", "?"), entry.get("ExitCode", "?"),
                                                    said.strip()[:200]))
            print("%s, failing streak %s, last checks: %s" % (health.get("Status"), health.get("FailingStreak"),
                                                               "; ".join(checks) or "none"))
    elif field == "ip":
        nets = (doc.get("NetworkSettings") or {}).get("Networks") or {}
        print((nets.get(sys.argv[3]) or {}).get("IPAddress") or "-")
