#!/usr/bin/python3
"""A TEST DOUBLE of Amazon EC2 and EC2 Auto Scaling, for scalebus's tests only: it is not AWS.

One server answers both Query APIs, told apart by their Action (and checked against the
service of each request's SigV4 credential scope): POST / with a form body, answered with the
XML documents the published APIs send.

  EC2 (Version 2016-11-15, service ec2)
    RunInstances        LaunchTemplate.LaunchTemplateId|LaunchTemplateName, LaunchTemplate.Version,
                        MinCount, MaxCount, ClientToken (idempotent: the same token answers the
                        same reservation and makes nothing), TagSpecification.N.*
    TerminateInstances  InstanceId.N (InvalidInstanceID.NotFound for an unknown id)
    DescribeInstances   Filter.N.Name / Filter.N.Value.M: tag:KEY, tag-key, instance-state-name,
                        instance-id; InstanceId.N
    Errors: <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>
  Auto Scaling (Version 2011-01-01, service autoscaling)
    DescribeAutoScalingGroups  AutoScalingGroupNames.member.N
    SetDesiredCapacity         AutoScalingGroupName, DesiredCapacity, HonorCooldown
    Errors: <ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>

Behaviour: instances go pending -> running after --ready seconds, shutting-down -> terminated
and stopping -> stopped after as long. A group converges to its desired capacity (members
Pending -> InService, surplus newest first Terminating -> gone). After each SetDesiredCapacity a
scaling activity is in progress for --activity seconds (another SetDesiredCapacity then gets
400 ScalingActivityInProgress), and the group's cooldown (--cooldown seconds) refuses
HonorCooldown=true the same way. A count outside MinSize/MaxSize is a 400 ValidationError.

Every request's Signature V4 is recomputed with botocore as tests/aws/sqs_double.py does and
compared with the one received (403 SignatureDoesNotMatch when it differs); keys come from the
keys file ("ACCESS_KEY_ID SECRET [SESSION_TOKEN]" per line; the metadata double appends its own).
Keys marked expired answer 403 ExpiredToken.

Control endpoints (any method, for the test script; answers JSON):
  /_control/group?name=web&min=1&max=10&desired=3   create a group, or change it behind the
                                                    scaler's back (converges as above)
  /_control/instance?add=1&tag=web[&state=running]  an instance by hand (tag= empty: untagged)
  /_control/instance?terminate=ID | stop=ID         terminate or stop one behind the back
  /_control/mode?mode=normal|slow|garbage|truncated|reset|throttle|http500|nofilter[&delay=S]
                                                    reset: go away (connections closed, no reply);
                                                    nofilter: DescribeInstances ignores its
                                                    filters (every instance, untagged ones too)
  /_control/expire                                  every key known now answers ExpiredToken
  /_control/lose_next_run?hide=S&delay=D            the next RunInstances makes its instance but
                                                    its reply is lost (no answer for D seconds,
                                                    then the connection is closed), and
                                                    DescribeInstances does not show it for S s
                                                    (EC2's eventual consistency)
  /_control/activity?seconds=S                      the activity window after a change
  /_control/cooldown?seconds=S                      the groups' cooldown after a change
  /_control/record                                  every request: action, key, params, status
  /_control/state                                   instances and groups

  ec2_double.py --port PORT --keys FILE [--region us-east-1] [--ready 1] [--activity 1]
                [--cooldown 0]
"""
import argparse
import datetime
import json
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
ASG_NS = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
EC2_ACTIONS = {"RunInstances", "TerminateInstances", "DescribeInstances"}
ASG_ACTIONS = {"DescribeAutoScalingGroups", "SetDesiredCapacity"}
STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48,
               "stopping": 64, "stopped": 80}

lock = threading.RLock()  # re-entered: fail() notes the record under it
cfg = {"ready": 1.0, "activity": 1.0, "cooldown": 0.0}
mode = {"mode": "normal", "delay": 0.0}
instances = {}  # id -> dict(state, since, launch, tags, token, ip, hidden_until)
groups = {}     # name -> dict(min, max, desired, members: [id], activity_until, cooldown_until)
tokens = {}     # client token -> (reservation id, instance id)
expired = set()
lose = {"next_run": False, "hide": 0.0, "delay": 3.0}
record = []
counter = {"n": 0}


def read_keys(path):
    keys = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2:
                    keys[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else None)
    except FileNotFoundError:
        pass
    return keys


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z")


def new_instance(tags, token=None, state="pending"):
    counter["n"] += 1
    iid = "i-%017x" % (0x0abc000000000000 + counter["n"])
    now = time.time()
    instances[iid] = {"state": state, "since": now, "launch": now, "tags": dict(tags),
                      "token": token, "ip": f"10.0.{counter['n'] // 250}.{counter['n'] % 250 + 1}",
                      "hidden_until": 0.0}
    return iid


def advance():
    """Time passes: instances change state, groups converge. Called under the lock."""
    now = time.time()
    for inst in instances.values():
        if now - inst["since"] < cfg["ready"]:
            continue
        nxt = {"pending": "running", "shutting-down": "terminated", "stopping": "stopped"}.get(
            inst["state"])
        if nxt:
            inst["state"], inst["since"] = nxt, now
    for g in groups.values():
        g["members"] = [m for m in g["members"] if instances[m]["state"] != "terminated"]
        live = [m for m in g["members"] if instances[m]["state"] in ("pending", "running")]
        while len(live) < g["desired"]:
            iid = new_instance({"aws:autoscaling:groupName": g["name"]})
            g["members"].append(iid)
            live.append(iid)
        while len(live) > g["desired"]:
            victim = max(live, key=lambda m: (instances[m]["launch"], m))
            instances[victim]["state"], instances[victim]["since"] = "shutting-down", now
            live.remove(victim)


def lifecycle(iid):
    st = instances[iid]["state"]
    return {"pending": "Pending", "running": "InService", "shutting-down": "Terminating",
            "stopping": "Terminating", "stopped": "Terminating"}.get(st, "Terminated")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AmazonEC2"

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body, ctype="text/xml;charset=UTF-8"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    def note(self, status, code=None):
        with lock:
            if self.rec is not None:
                self.rec["status"] = status
                if code:
                    self.rec["code"] = code

    def fail(self, status, code, message):
        self.note(status, code)
        if self.api == "ec2":
            body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
                    f"<Code>{code}</Code><Message>{escape(message)}</Message></Error></Errors>"
                    f"<RequestID>{uuid.uuid4()}</RequestID></Response>")
        else:
            kind = "Receiver" if status >= 500 else "Sender"
            body = (f'<ErrorResponse xmlns="{ASG_NS}">\n  <Error>\n    <Type>{kind}</Type>\n'
                    f"    <Code>{code}</Code>\n    <Message>{escape(message)}</Message>\n"
                    f"  </Error>\n  <RequestId>{uuid.uuid4()}</RequestId>\n</ErrorResponse>\n")
        self.send(status, body)

    def ok(self, body):
        self.note(200)
        self.send(200, '<?xml version="1.0" encoding="UTF-8"?>\n' + body)

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    # ---- control ----

    def control(self, url):
        q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        what = url.path[len("/_control/"):]
        out = {"ok": True}
        with lock:
            advance()
            if what == "group":
                g = groups.setdefault(q["name"], {"name": q["name"], "min": 0, "max": 10,
                                                  "desired": 0, "members": [],
                                                  "activity_until": 0.0,
                                                  "cooldown_until": 0.0})
                for k in ("min", "max", "desired"):
                    if k in q:
                        g[k] = int(q[k])
                advance()
            elif what == "instance":
                if "add" in q:
                    tags = {"scalebus:scaler": q["tag"]} if q.get("tag") else {"Name": "by-hand"}
                    out["id"] = new_instance(tags, state=q.get("state", "running"))
                elif "terminate" in q:
                    i = instances[q["terminate"]]
                    i["state"], i["since"] = "shutting-down", time.time()
                elif "stop" in q:
                    i = instances[q["stop"]]
                    i["state"], i["since"] = "stopping", time.time()
            elif what == "mode":
                mode["mode"] = q.get("mode", "normal")
                mode["delay"] = float(q.get("delay", 0))
            elif what == "expire":
                expired.update(read_keys(self.server.keys_file).keys())
                out["expired"] = len(expired)
            elif what == "lose_next_run":
                lose["next_run"] = True
                lose["hide"] = float(q.get("hide", 3))
                lose["delay"] = float(q.get("delay", 3))
            elif what == "activity":
                cfg["activity"] = float(q.get("seconds", 1))
            elif what == "cooldown":
                cfg["cooldown"] = float(q.get("seconds", 0))
            elif what == "record":
                out = record
            elif what == "state":
                out = {"instances": {k: {"state": v["state"], "tags": v["tags"],
                                         "token": v["token"], "launch": v["launch"]}
                                     for k, v in instances.items()},
                       "groups": {k: {kk: vv for kk, vv in g.items()}
                                  for k, g in groups.items()}}
            else:
                self.send(404, "no such control\n", "text/plain")
                return
            body = json.dumps(out)
        self.send(200, body + "\n", "application/json")

    # ---- requests ----

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(self.path)
        self.rec = None
        self.api = "ec2"
        if url.path.startswith("/_control/"):
            self.control(url)
            return
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                           keep_blank_values=True))
        action = form.get("Action", "")
        self.api = "autoscaling" if action in ASG_ACTIONS else "ec2"
        auth = self.headers.get("Authorization", "")
        akid = ""
        if "Credential=" in auth:
            akid = auth.split("Credential=", 1)[1].split("/", 1)[0]
        with lock:
            self.rec = {"action": action, "key": akid, "t": time.time(),
                        "params": {k: v for k, v in form.items() if k not in ("Action",)},
                        "status": None}
            record.append(self.rec)
            m, delay = mode["mode"], mode["delay"]
        if m == "slow":
            time.sleep(delay)
        elif m == "reset":
            self.note("reset")
            self.close_connection = True
            self.connection.shutdown(2)
            return
        elif m == "garbage":
            self.note(200, "garbage")
            self.send(200, "<html><body>this is not EC2 &nbsp; <br></body></html>", "text/html")
            return
        elif m == "truncated":
            self.note(200, "truncated")
            self.send(200, f'<DescribeInstancesResponse xmlns="{EC2_NS}"><reservationSet><item>')
            return
        elif m == "http500":
            self.fail(500, "InternalError" if self.api == "ec2" else "InternalFailure",
                      "An internal error has occurred")
            return
        elif m == "throttle":
            if self.api == "ec2":
                self.fail(503, "RequestLimitExceeded", "Request limit exceeded.")
            else:
                self.fail(400, "Throttling", "Rate exceeded")
            return
        if not self.verify(body):
            return
        if action in EC2_ACTIONS or action in ASG_ACTIONS:
            want = "2016-11-15" if self.api == "ec2" else "2011-01-01"
            if form.get("Version") != want:
                self.fail(400, "InvalidParameterValue" if self.api == "ec2" else "ValidationError",
                          f"Version {form.get('Version')} is not {want}")
                return
        getattr(self, "do_" + action, self.unknown)(form)

    def unknown(self, form):
        self.fail(400, "InvalidAction", f"The action {form.get('Action')} is not valid for this "
                                        "web service.")

    def verify(self, body):
        auth = self.headers.get("Authorization")
        if not auth:
            self.fail(403 if self.api == "autoscaling" else 401, "MissingAuthenticationToken",
                      "Request is missing Authentication Token")
            return False
        try:
            algo, rest = auth.split(" ", 1)
            fields = dict(p.strip().split("=", 1) for p in rest.split(","))
            akid, date, region, service, term = fields["Credential"].split("/")
            signed = fields["SignedHeaders"].split(";")
            given = fields["Signature"]
        except (ValueError, KeyError):
            self.fail(403, "IncompleteSignature", "Authorization header is malformed")
            return False
        if algo != "AWS4-HMAC-SHA256" or term != "aws4_request":
            self.fail(403, "IncompleteSignature", "Unsupported signing algorithm")
            return False
        key = read_keys(self.server.keys_file).get(akid)
        if key is None:
            if self.api == "ec2":
                self.fail(401, "AuthFailure", "AWS was not able to validate the provided access "
                                              "credentials")
            else:
                self.fail(403, "InvalidClientTokenId",
                          "The security token included in the request is invalid.")
            return False
        secret, token = key
        if token is not None and (self.headers.get("X-Amz-Security-Token") != token
                                  or "x-amz-security-token" not in signed):
            self.fail(403, "InvalidClientTokenId",
                      "The security token included in the request is invalid.")
            return False
        with lock:
            is_expired = akid in expired
        if is_expired:
            self.fail(403 if self.api == "autoscaling" else 400, "ExpiredToken",
                      "The security token included in the request is expired")
            return False
        amz_date = self.headers.get("X-Amz-Date", "")
        try:
            when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=datetime.timezone.utc)
        except ValueError:
            self.fail(403, "IncompleteSignature", "X-Amz-Date is missing or malformed")
            return False
        if abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) > 900:
            self.fail(403, "RequestExpired", "Request has expired.")
            return False
        if service != self.api or region != self.server.region or date != amz_date[:8]:
            self.fail(403, "SignatureDoesNotMatch",
                      f"Credential should be scoped to a valid region and service "
                      f"({self.server.region}/{self.api}), not {region}/{service}.")
            return False
        headers = {}
        for name in signed:
            value = self.headers.get_all(name)
            if value is None:
                self.fail(403, "SignatureDoesNotMatch",
                          f"The signed header {name} is missing from the request.")
                return False
            headers[name] = ",".join(value)
        req = AWSRequest(method=self.command, url=f"http://{self.headers['Host']}{self.path}",
                         data=body, headers=headers)
        req.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(akid, secret, token), service, region)
        canonical = signer.canonical_request(req)
        if signer.signed_headers(signer.headers_to_sign(req)) != ";".join(signed):
            self.fail(403, "SignatureDoesNotMatch", "SignedHeaders do not match the request.")
            return False
        expected = signer.signature(signer.string_to_sign(req, canonical), req)
        if expected != given:
            self.fail(403, "SignatureDoesNotMatch",
                      "The request signature we calculated does not match the signature you "
                      "provided. Check your AWS Secret Access Key and signing method. Consult "
                      "the service documentation for details.")
            return False
        with lock:
            self.rec["verified"] = True
        return True

    # ---- EC2 ----

    def instance_xml(self, iid, inst):
        tags = "".join(f"<item><key>{escape(k)}</key><value>{escape(v)}</value></item>"
                       for k, v in inst["tags"].items())
        st = inst["state"]
        return (f"<item><instanceId>{iid}</instanceId><imageId>ami-0abcdef1234567890</imageId>"
                f"<instanceState><code>{STATE_CODES[st]}</code><name>{st}</name></instanceState>"
                f"<privateDnsName>ip-{inst['ip'].replace('.', '-')}.ec2.internal</privateDnsName>"
                f"<instanceType>t3.micro</instanceType><launchTime>{iso(inst['launch'])}"
                f"</launchTime><placement><availabilityZone>{self.server.region}a"
                f"</availabilityZone></placement>"
                f"<privateIpAddress>{inst['ip']}</privateIpAddress>"
                + (f"<clientToken>{escape(inst['token'])}</clientToken>" if inst["token"]
                   else "<clientToken/>")
                + f"<tagSet>{tags}</tagSet></item>")

    def do_DescribeInstances(self, form):
        filters = {}
        for k, v in form.items():
            parts = k.split(".")
            if parts[0] == "Filter" and len(parts) == 3 and parts[2] == "Name":
                filters[parts[1]] = (v, [])
        for k, v in sorted(form.items()):
            parts = k.split(".")
            if parts[0] == "Filter" and len(parts) == 4 and parts[2] == "Value":
                if parts[1] in filters:
                    filters[parts[1]][1].append(v)
        ids = [v for k, v in form.items() if k.startswith("InstanceId.")]
        now = time.time()

        def match(iid, inst):
            if ids and iid not in ids:
                return False
            for name, values in filters.values():
                if name.startswith("tag:"):
                    if inst["tags"].get(name[4:]) not in values:
                        return False
                elif name == "tag-key":
                    if not any(v in inst["tags"] for v in values):
                        return False
                elif name == "instance-state-name":
                    if inst["state"] not in values:
                        return False
                elif name == "instance-id":
                    if iid not in values:
                        return False
                else:
                    return None
            return True

        with lock:
            advance()
            items = []
            broken = mode["mode"] == "nofilter"
            for iid, inst in sorted(instances.items()):
                if inst["hidden_until"] > now:
                    continue
                m = True if broken else match(iid, inst)
                if m is None:
                    self.fail(400, "InvalidParameterValue", "The filter is invalid")
                    return
                if m:
                    items.append(self.instance_xml(iid, inst))
        reservations = "".join(
            f"<item><reservationId>r-{abs(hash(x)) % (16 ** 17):017x}</reservationId>"
            f"<ownerId>123456789012</ownerId><groupSet/><instancesSet>{x}</instancesSet></item>"
            for x in items)
        self.ok(f'<DescribeInstancesResponse xmlns="{EC2_NS}">\n'
                f"    <requestId>{uuid.uuid4()}</requestId>\n"
                f"    <reservationSet>{reservations}</reservationSet>\n"
                "</DescribeInstancesResponse>")

    def do_RunInstances(self, form):
        lt_id = form.get("LaunchTemplate.LaunchTemplateId")
        lt_name = form.get("LaunchTemplate.LaunchTemplateName")
        if not (lt_id or lt_name) or form.get("MinCount") != "1" or form.get("MaxCount") != "1":
            self.fail(400, "MissingParameter", "The request must contain the parameter "
                                               "LaunchTemplate, MinCount=MaxCount=1 here")
            return
        if (lt_name or lt_id) not in self.server.templates:
            self.fail(400, "InvalidLaunchTemplateName.NotFoundException" if lt_name else
                      "InvalidLaunchTemplateId.NotFound",
                      f"The specified launch template, with template "
                      f"{'name' if lt_name else 'ID'} {lt_name or lt_id}, does not exist.")
            return
        tags = {}
        n = 1
        while f"TagSpecification.{n}.ResourceType" in form:
            if form[f"TagSpecification.{n}.ResourceType"] == "instance":
                k = 1
                while f"TagSpecification.{n}.Tag.{k}.Key" in form:
                    tags[form[f"TagSpecification.{n}.Tag.{k}.Key"]] = form.get(
                        f"TagSpecification.{n}.Tag.{k}.Value", "")
                    k += 1
            n += 1
        token = form.get("ClientToken")
        with lock:
            advance()
            if token and token in tokens:
                iid = tokens[token][1]
                self.rec["idempotent_replay"] = True
            else:
                iid = new_instance(tags, token)
                if token:
                    tokens[token] = ("r-%017x" % counter["n"], iid)
            inst = instances[iid]
            lost = lose["next_run"]
            if lost:
                lose["next_run"] = False
                inst["hidden_until"] = time.time() + lose["hide"]
            xml = self.instance_xml(iid, inst)
            rid = tokens[token][0] if token else "r-%017x" % counter["n"]
        if lost:  # the instance is made; the reply never arrives (the caller times out first)
            self.note("lost")
            time.sleep(lose["delay"])
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.ok(f'<RunInstancesResponse xmlns="{EC2_NS}">\n'
                f"  <requestId>{uuid.uuid4()}</requestId>\n  <reservationId>{rid}</reservationId>"
                f"\n  <ownerId>123456789012</ownerId>\n  <groupSet/>\n"
                f"  <instancesSet>{xml}</instancesSet>\n</RunInstancesResponse>")

    def do_TerminateInstances(self, form):
        ids = [v for k, v in sorted(form.items()) if k.startswith("InstanceId.")]
        with lock:
            advance()
            unknown = [i for i in ids if i not in instances]
            if not ids or unknown:
                self.fail(400, "InvalidInstanceID.NotFound",
                          f"The instance ID '{','.join(unknown) or '?'}' does not exist")
                return
            items = []
            for i in ids:
                inst = instances[i]
                prev = inst["state"]
                if prev not in ("shutting-down", "terminated"):
                    inst["state"], inst["since"] = "shutting-down", time.time()
                cur = inst["state"]
                items.append(f"<item><instanceId>{i}</instanceId><currentState><code>"
                             f"{STATE_CODES[cur]}</code><name>{cur}</name></currentState>"
                             f"<previousState><code>{STATE_CODES[prev]}</code><name>{prev}"
                             "</name></previousState></item>")
        self.ok(f'<TerminateInstancesResponse xmlns="{EC2_NS}">\n'
                f"  <requestId>{uuid.uuid4()}</requestId>\n"
                f"  <instancesSet>{''.join(items)}</instancesSet>\n</TerminateInstancesResponse>")

    # ---- Auto Scaling ----

    def do_DescribeAutoScalingGroups(self, form):
        names = [v for k, v in sorted(form.items()) if k.startswith("AutoScalingGroupNames.member.")]
        with lock:
            advance()
            out = []
            for name in names or sorted(groups):
                g = groups.get(name)
                if not g:
                    continue
                members = "".join(
                    f"<member><InstanceId>{m}</InstanceId><InstanceType>t3.micro</InstanceType>"
                    f"<AvailabilityZone>{self.server.region}a</AvailabilityZone>"
                    f"<LifecycleState>{lifecycle(m)}</LifecycleState>"
                    f"<HealthStatus>Healthy</HealthStatus>"
                    f"<ProtectedFromScaleIn>false</ProtectedFromScaleIn></member>"
                    for m in g["members"])
                out.append(
                    f"<member><AutoScalingGroupName>{escape(name)}</AutoScalingGroupName>"
                    f"<AutoScalingGroupARN>arn:aws:autoscaling:{self.server.region}:123456789012:"
                    f"autoScalingGroup:{uuid.uuid4()}:autoScalingGroupName/{escape(name)}"
                    f"</AutoScalingGroupARN><MinSize>{g['min']}</MinSize><MaxSize>{g['max']}"
                    f"</MaxSize><DesiredCapacity>{g['desired']}</DesiredCapacity>"
                    f"<DefaultCooldown>300</DefaultCooldown><Instances>{members}</Instances>"
                    f"<HealthCheckType>EC2</HealthCheckType></member>")
        self.ok(f'<DescribeAutoScalingGroupsResponse xmlns="{ASG_NS}">\n'
                f"  <DescribeAutoScalingGroupsResult>\n    <AutoScalingGroups>{''.join(out)}"
                "</AutoScalingGroups>\n  </DescribeAutoScalingGroupsResult>\n"
                f"  <ResponseMetadata>\n    <RequestId>{uuid.uuid4()}</RequestId>\n"
                "  </ResponseMetadata>\n</DescribeAutoScalingGroupsResponse>\n")

    def do_SetDesiredCapacity(self, form):
        name = form.get("AutoScalingGroupName", "")
        try:
            n = int(form.get("DesiredCapacity", ""))
        except ValueError:
            self.fail(400, "ValidationError", "DesiredCapacity must be an integer")
            return
        honor = form.get("HonorCooldown", "false") == "true"
        now = time.time()
        with lock:
            advance()
            g = groups.get(name)
            if not g:
                self.fail(400, "ValidationError", f"AutoScalingGroup name not found - "
                                                  f"AutoScalingGroup '{name}' not found")
                return
            if n > g["max"]:
                self.fail(400, "ValidationError", f"New SetDesiredCapacity value {n} is above max "
                                                  f"value {g['max']} for the AutoScalingGroup.")
                return
            if n < g["min"]:
                self.fail(400, "ValidationError", f"New SetDesiredCapacity value {n} is below min "
                                                  f"value {g['min']} for the AutoScalingGroup.")
                return
            if now < g["activity_until"]:
                self.fail(400, "ScalingActivityInProgress",
                          "Scaling activities are in progress and the desired capacity cannot "
                          "be changed now.")
                return
            if honor and now < g["cooldown_until"]:
                self.fail(400, "ScalingActivityInProgress",
                          "The cooldown period of the AutoScalingGroup has not yet passed.")
                return
            if n != g["desired"]:
                g["desired"] = n
                g["activity_until"] = now + cfg["activity"]
                g["cooldown_until"] = now + cfg["cooldown"]
                advance()
        self.ok(f'<SetDesiredCapacityResponse xmlns="{ASG_NS}">\n  <ResponseMetadata>\n'
                f"    <RequestId>{uuid.uuid4()}</RequestId>\n  </ResponseMetadata>\n"
                "</SetDesiredCapacityResponse>\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--keys", required=True)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--ready", type=float, default=1.0, help="seconds from pending to running")
    ap.add_argument("--activity", type=float, default=1.0,
                    help="seconds a scaling activity lasts after each change")
    ap.add_argument("--cooldown", type=float, default=0.0, help="the groups' cooldown")
    ap.add_argument("--template", action="append", default=[],
                    help="a launch template that exists (name or lt-id)")
    args = ap.parse_args()
    cfg.update(ready=args.ready, activity=args.activity, cooldown=args.cooldown)
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.keys_file = args.keys
    srv.region = args.region
    srv.templates = set(args.template)
    print(f"ec2 double on 127.0.0.1:{args.port}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
