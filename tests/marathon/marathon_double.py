#!/usr/bin/python3
"""A TEST DOUBLE of Marathon's REST API (v2), for scalebus's tests only: it is not Marathon and
runs no tasks.

It follows the published API (mesosphere/marathon docs/docs/rest-api/public/api/v2: apps.raml,
tasks.raml, deployments.raml) for what the marathon scaler uses:

  GET  /v2/apps/{id}[?embed=app.tasks]  200 {"app": {... "instances", "tasks" (with embed),
                                        "healthChecks", "deployments", "tasksRunning", ...}}
                                        404 {"message": "App '/x' does not exist"}
  PUT  /v2/apps/{id}[?force=true]       {"instances": N}: 200 {"deploymentId", "version"} with a
                                        Marathon-Deployment-Id header. On an id it does not know,
                                        it CREATES the app (201), as Marathon does: the record
                                        shows whether a client ever did that.
                                        409 (Marathon's exact body) while a deployment holds the
                                        app, unless ?force=true (which cancels that deployment).
                                        400 for a body that is not JSON, 422 for a bad count.
  POST /v2/tasks/delete?scale=true[&force=true]  {"ids": [...]}: kills those tasks and lowers
                                        each app's instances by as many (a deployment); 400
                                        {"message": "Invalid task id X"} for an unknown id.
  GET  /v2/deployments                  the deployments in progress.

Deployments: each change holds the app for `lock` seconds (--lock, or /_control/lock). New tasks
are TASK_STAGING for the first third of it, then TASK_RUNNING; with health checks their
healthCheckResults turn alive after two thirds. Scaling down through a PUT kills the tasks the
app's killSelection picks (YOUNGEST_FIRST, Marathon's default, or OLDEST_FIRST).

Authentication (when --user or --token is given): HTTP basic USER:PASS, or the header
"Authorization: token=TOKEN" (DC/OS style); anything else is 401 {"message": "Invalid username
or password."}. /_control/forbid?on=1 makes every changing call 403.

Control endpoints (any method, for the test script; never recorded):
  /_control/app?id=/x&instances=N[&health=1][&kill_selection=OLDEST_FIRST][&spread=S]
      create or reset an app with N running tasks (healthy), started S seconds apart (oldest
      first), no deployment
  /_control/scale?id=/x&instances=N   change the count behind the client's back (no lock)
  /_control/delete?id=/x              the app is deleted behind the client's back
  /_control/hold?id=/x&seconds=S      a deployment that holds the app for S seconds
  /_control/lock?seconds=S            the lock each change takes from now on
  /_control/mode?mode=normal|slow|garbage|reset|http500[&delay=S]
      slow: answer after S seconds; garbage: HTML with status 200; reset: close the connection
      with no reply (Marathon gone away); http500: 503 from a proxy in front
  /_control/forbid?on=1|0
  /_control/record    JSON list of every API request: method, path, query, body, status
  /_control/state     JSON: every app with its instances and tasks
  /_files/NAME        a file from --files DIR (the test's desired counts), whatever the mode

  marathon_double.py --port PORT [--lock S] [--user U:P] [--token T] [--files DIR]
"""
import argparse
import base64
import datetime
import json
import os
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
apps = {}  # id -> app dict (internal fields start with "_")
deployments = {}  # deployment id -> {"id", "affectedApps", "until", "version"}
record = []
settings = {"mode": "normal", "delay": 0.0, "lock": 2.0, "forbid": False}
port_counter = [31000]
agent_counter = [0]


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.") + f"{int((t % 1) * 1000):03d}Z"


def new_task(app, now, running):
    port_counter[0] += 1
    agent_counter[0] += 1
    name = app["id"].strip("/").replace("/", "_")
    return {
        "id": f"{name}.instance-{uuid.uuid4()}._app.1",
        "appId": app["id"],
        "host": f"agent{agent_counter[0] % 5 + 1}.mesos",
        "ports": [port_counter[0]],
        "slaveId": f"agent{agent_counter[0] % 5 + 1}",
        "_born": now,
        "_running_at": now if running else now + settings["lock"] / 3,
        "_healthy_at": now if running else now + 2 * settings["lock"] / 3,
        "version": app["version"],
    }


def task_view(app, t, now):
    out = {k: v for k, v in t.items() if not k.startswith("_")}
    out["stagedAt"] = iso(t["_born"])
    if now >= t["_running_at"]:
        out["state"] = "TASK_RUNNING"
        out["startedAt"] = iso(t["_running_at"])
    else:
        out["state"] = "TASK_STAGING"
        out["startedAt"] = None
    if app["healthChecks"]:
        if now >= t["_running_at"]:
            alive = now >= t["_healthy_at"]
            out["healthCheckResults"] = [{
                "alive": alive, "consecutiveFailures": 0 if alive else 1,
                "firstSuccess": iso(t["_healthy_at"]) if alive else None,
                "lastFailure": None, "lastSuccess": iso(now) if alive else None,
                "lastFailureCause": None, "taskId": t["id"], "instanceId": t["id"]}]
        else:
            out["healthCheckResults"] = []
    return out


def make_app(app_id, instances, health=False, kill_selection="YOUNGEST_FIRST"):
    return {"id": app_id, "cmd": "sleep 3600", "cpus": 0.1, "mem": 32, "instances": instances,
            "healthChecks": ([{"protocol": "HTTP", "path": "/health", "portIndex": 0,
                               "gracePeriodSeconds": 5, "intervalSeconds": 10,
                               "timeoutSeconds": 5, "maxConsecutiveFailures": 3}]
                             if health else []),
            "killSelection": kill_selection, "version": iso(time.time()), "labels": {},
            "_tasks": []}


def active_deployments(now):
    for d in [d for d in deployments.values() if d["until"] <= now]:
        del deployments[d["id"]]
    return deployments


def app_deployments(app_id, now):
    return [d for d in active_deployments(now).values() if app_id in d["affectedApps"]]


def app_view(app, now, embed_tasks):
    out = {k: v for k, v in app.items() if not k.startswith("_")}
    views = [task_view(app, t, now) for t in app["_tasks"]]
    out["tasksStaged"] = sum(1 for v in views if v["state"] == "TASK_STAGING")
    out["tasksRunning"] = sum(1 for v in views if v["state"] == "TASK_RUNNING")
    out["tasksHealthy"] = sum(1 for v in views if all(r["alive"] for r in
                                                    v.get("healthCheckResults", [])) and
                              v.get("healthCheckResults")) if app["healthChecks"] else 0
    out["tasksUnhealthy"] = 0
    out["deployments"] = [{"id": d["id"]} for d in app_deployments(app["id"], now)]
    if embed_tasks:
        out["tasks"] = views
    return out


def set_count(app, n, now, running=False):
    """Launch or kill tasks so the app has n (the kill order is the app's killSelection)."""
    app["instances"] = n
    tasks = app["_tasks"]
    while len(tasks) < n:
        tasks.append(new_task(app, now, running))
    if len(tasks) > n:
        tasks.sort(key=lambda t: t["_born"])
        if app["killSelection"] == "OLDEST_FIRST":
            del tasks[:len(tasks) - n]
        else:
            del tasks[n:]


def start_deployment(app_ids, now):
    dep = {"id": str(uuid.uuid4()), "affectedApps": list(app_ids), "until": now + settings["lock"],
           "version": iso(now)}
    deployments[dep["id"]] = dep
    return dep


def locked_body(deps):
    return {"message": "App is locked by one or more deployments. Override with the option "
                       f"'?force=true'. View details at '/v2/deployments/{deps[0]['id']}'.",
            "deployments": [{"id": d["id"]} for d in deps]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "marathon-double"

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body, ctype="application/json", headers=()):
        data = body if isinstance(body, bytes) else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.status = status
        try:
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
            self.close_connection = True

    do_GET = do_PUT = do_POST = do_DELETE = lambda self: self.handle_any()

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/_control/"):
            return self.control(url)
        if url.path.startswith("/_files/"):
            return self.file(url)
        self.status = 0
        entry = {"method": self.command, "path": url.path, "query": url.query,
                 "body": body.decode("utf-8", "replace"), "status": 0, "time": time.time()}
        with lock:
            record.append(entry)
            m, delay = settings["mode"], settings["delay"]
        try:
            if m == "slow":
                time.sleep(delay)
            elif m == "reset":  # gone away: the connection closes with no reply
                self.close_connection = True
                self.connection.shutdown(2)
                return
            elif m == "garbage":
                return self.send(200, "<html><body>502 Bad Gateway &nbsp;<br>nginx</body></html>",
                                 "text/html")
            elif m == "http500":
                return self.send(503, "<html><body><h1>503 Service Unavailable</h1>\n"
                                      "No server is available to handle this request.\n"
                                      "</body></html>", "text/html")
            if self.authenticate():
                self.api(url, body)
        finally:
            entry["status"] = self.status

    def authenticate(self):
        user, token = self.server.user, self.server.token
        if not user and not token:
            return True
        auth = self.headers.get("Authorization", "")
        if user and auth.startswith("Basic "):
            try:
                if base64.b64decode(auth[6:]).decode() == user:
                    return True
            except ValueError:
                pass
        if token and auth == f"token={token}":
            return True
        self.send(401, {"message": "Invalid username or password."},
                  headers=[("WWW-Authenticate", 'Basic realm="Mesosphere"')])
        return False

    def api(self, url, body):
        q = dict(urllib.parse.parse_qsl(url.query))
        force = q.get("force") == "true"
        now = time.time()
        p = url.path.rstrip("/")
        with lock:
            if self.command != "GET" and settings["forbid"]:
                return self.send(403, {"message": "Not Authorized to perform this action!"})
            if p.startswith("/v2/apps/") and self.command == "GET":
                app = apps.get(p[len("/v2/apps"):])
                if not app:
                    return self.send(404, {"message": f"App '{p[len('/v2/apps'):]}' does not "
                                                      "exist"})
                embed = "app.tasks" in urllib.parse.parse_qs(url.query).get("embed", [])
                return self.send(200, {"app": app_view(app, now, embed)})
            if p.startswith("/v2/apps/") and self.command == "PUT":
                return self.put_app(p[len("/v2/apps"):], body, force, now)
            if p == "/v2/tasks/delete" and self.command == "POST":
                return self.kill_tasks(body, q.get("scale") == "true", force, now)
            if p == "/v2/deployments" and self.command == "GET":
                return self.send(200, [{"id": d["id"], "affectedApps": d["affectedApps"],
                                        "version": d["version"]}
                                       for d in active_deployments(now).values()])
        self.send(404, {"message": "Unknown resource"})

    def put_app(self, app_id, body, force, now):
        try:
            change = json.loads(body or b"null")
            if not isinstance(change, dict):
                raise ValueError
        except ValueError:
            return self.send(400, {"message": "Invalid JSON", "details": [
                {"path": "/", "errors": ["error.expected.jsobject"]}]})
        n = change.get("instances", 1)
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            return self.send(422, {"message": "Object is not valid", "details": [
                {"path": "/instances", "errors": ["error.min"]}]})
        app = apps.get(app_id)
        if app is None:  # Marathon creates the app on a PUT to an unknown id
            app = make_app(app_id, n)
            apps[app_id] = app
            set_count(app, n, now)
            dep = start_deployment([app_id], now)
            return self.send(201, {"deploymentId": dep["id"], "version": dep["version"]},
                             headers=[("Location", f"/v2/apps{app_id}"),
                                      ("Marathon-Deployment-Id", dep["id"])])
        deps = app_deployments(app_id, now)
        if deps and not force:
            return self.send(409, locked_body(deps))
        for d in deps:  # force: the running deployment is cancelled
            deployments.pop(d["id"], None)
        app["version"] = iso(now)
        set_count(app, n, now)
        dep = start_deployment([app_id], now)
        self.send(200, {"deploymentId": dep["id"], "version": dep["version"]},
                  headers=[("Marathon-Deployment-Id", dep["id"])])

    def kill_tasks(self, body, scale, force, now):
        try:
            ids = json.loads(body or b"null")["ids"]
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return self.send(400, {"message": "Invalid JSON", "details": [
                {"path": "/ids", "errors": ["error.path.missing"]}]})
        owner = {}
        for tid in ids:
            found = [a for a in apps.values() if any(t["id"] == tid for t in a["_tasks"])]
            if not found:
                return self.send(400, {"message": f"Invalid task id {tid}"})
            owner[tid] = found[0]
        affected = {a["id"] for a in owner.values()}
        deps = [d for a in affected for d in app_deployments(a, now)]
        if deps and not force:
            return self.send(409, locked_body(deps))
        for d in deps:
            deployments.pop(d["id"], None)
        for tid, app in owner.items():
            app["_tasks"] = [t for t in app["_tasks"] if t["id"] != tid]
            if scale:
                app["instances"] -= 1
        if not scale:  # killed tasks are replaced
            for app_id in affected:
                set_count(apps[app_id], apps[app_id]["instances"], now)
        dep = start_deployment(affected, now)
        self.send(200, {"deploymentId": dep["id"], "version": dep["version"]})

    def file(self, url):
        name = os.path.basename(url.path)
        try:
            with open(os.path.join(self.server.files, name), "rb") as f:
                data = f.read()
        except (OSError, TypeError):
            return self.send(404, "no such file\n", "text/plain")
        self.send(200, data)

    def control(self, url):
        q = dict(urllib.parse.parse_qsl(url.query))
        what = url.path[len("/_control/"):]
        now = time.time()
        with lock:
            if what == "app":
                n, spread = int(q.get("instances", 1)), float(q.get("spread", 0))
                app = make_app(q["id"], n, q.get("health") == "1",
                               q.get("kill_selection", "YOUNGEST_FIRST"))
                for i in range(n):
                    t = new_task(app, now - (n - i) * spread, True)
                    app["_tasks"].append(t)
                apps[q["id"]] = app
            elif what == "scale":
                set_count(apps[q["id"]], int(q["instances"]), now, running=True)
            elif what == "delete":
                apps.pop(q["id"], None)
            elif what == "hold":
                dep = start_deployment([q["id"]], now)
                dep["until"] = now + float(q["seconds"])
            elif what == "lock":
                settings["lock"] = float(q["seconds"])
            elif what == "mode":
                settings["mode"] = q.get("mode", "normal")
                settings["delay"] = float(q.get("delay", 0))
            elif what == "forbid":
                settings["forbid"] = q.get("on") == "1"
            elif what == "record":
                return self.send(200, list(record))
            elif what == "state":
                return self.send(200, {a: app_view(v, now, True) for a, v in apps.items()})
            else:
                return self.send(404, "no such control\n", "text/plain")
        self.send(200, "ok\n", "text/plain")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--lock", type=float, default=2.0)
    ap.add_argument("--user")
    ap.add_argument("--token")
    ap.add_argument("--files")
    a = ap.parse_args()
    settings["lock"] = a.lock
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.user, srv.token, srv.files = a.user, a.token, a.files
    srv.serve_forever()


if __name__ == "__main__":
    main()
