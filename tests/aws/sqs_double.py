#!/usr/bin/python3
"""A TEST DOUBLE of Amazon SQS, for scalebus's tests only: it is not AWS.

It follows the published SQS Query API (API version 2012-11-05) for the one action the sqs
trigger uses, GetQueueAttributes: a POST to the queue's URL (/ACCOUNT/NAME) with a form body
(Action=GetQueueAttributes&AttributeName.1=...&Version=2012-11-05), answered with the XML
GetQueueAttributesResponse AWS sends, or an XML ErrorResponse (Sender/Code/Message/RequestId)
with AWS's codes and HTTP statuses:

  403 MissingAuthenticationToken  no Authorization header
  403 InvalidClientTokenId        an access key it does not know, or a wrong session token
  403 SignatureDoesNotMatch       the SigV4 signature differs from the one recomputed here
  403 RequestExpired              X-Amz-Date more than 15 minutes away
  400 AWS.SimpleQueueService.NonExistentQueue, 400 InvalidAction, 400 Throttling

Every request's Signature V4 is recomputed with botocore (botocore.auth.SigV4Auth over an
AWSRequest built from the received method, path, body and the headers listed in SignedHeaders)
and compared with the one received. Keys it accepts are read, for each request, from the keys
file (one "ACCESS_KEY_ID SECRET [SESSION_TOKEN]" per line; the metadata double appends the keys
it hands out there).

Control endpoints (any method, for the test script):
  /_control/queue?name=jobs&visible=5&not_visible=0&delayed=0   create or set a queue's counts
  /_control/mode?mode=normal|slow|garbage|oversized|truncated|throttle|http500|reset[&delay=S]
  /_control/stats    JSON: requests, answered (200s), errors by code, access keys that verified

  sqs_double.py --port PORT --keys FILE [--region us-east-1] [--queue NAME=VISIBLE ...]
"""
import argparse
import datetime
import json
import os
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

NS = "http://queue.amazonaws.com/doc/2012-11-05/"
ATTRS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
         "ApproximateNumberOfMessagesDelayed")

lock = threading.Lock()
queues = {}  # name -> {attribute: count}
mode = {"mode": "normal", "delay": 0.0}
stats = {"requests": 0, "answered": 0, "errors": {}, "verified_keys": []}


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


def error_xml(code, message, kind="Sender"):
    return (f'<?xml version="1.0"?><ErrorResponse xmlns="{NS}"><Error><Type>{kind}</Type>'
            f"<Code>{code}</Code><Message>{message}</Message><Detail/></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sqs-double"

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body, ctype="text/xml"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    def fail(self, status, code, message):
        with lock:
            stats["errors"][code] = stats["errors"].get(code, 0) + 1
        self.send(status, error_xml(code, message))

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def control(self, url):
        q = dict(urllib.parse.parse_qsl(url.query))
        what = url.path[len("/_control/"):]
        with lock:
            if what == "queue":
                queues[q["name"]] = {
                    "ApproximateNumberOfMessages": int(q.get("visible", 0)),
                    "ApproximateNumberOfMessagesNotVisible": int(q.get("not_visible", 0)),
                    "ApproximateNumberOfMessagesDelayed": int(q.get("delayed", 0)),
                }
            elif what == "mode":
                mode["mode"] = q.get("mode", "normal")
                mode["delay"] = float(q.get("delay", 0))
            elif what != "stats":
                self.send(404, "no such control\n", "text/plain")
                return
            body = json.dumps(stats)
        self.send(200, body + "\n", "application/json")

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/_control/"):
            self.control(url)
            return
        with lock:
            stats["requests"] += 1
            m, delay = mode["mode"], mode["delay"]
        if m == "slow":
            time.sleep(delay)
        elif m == "reset":  # goes away mid-request: the connection closes with no reply
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        elif m == "garbage":
            self.send(200, "<html><body>this is not SQS &nbsp; <br></body></html>", "text/html")
            return
        elif m == "truncated":
            self.send(200, f'<GetQueueAttributesResponse xmlns="{NS}"><GetQueueAttributesResult>'
                           "<Attribute><Name>ApproximateNumberOfMessages</Name><Val")
            return
        elif m == "oversized":
            self.send(200, b"<GetQueueAttributesResponse>" + b" " * (200 * 1024))
            return
        elif m == "http500":
            self.fail(500, "InternalError", "We encountered an internal error. Please try again.")
            return
        elif m == "throttle":
            self.fail(400, "Throttling", "Rate exceeded")
            return
        if self.verify(body, url):
            self.answer(body, url)

    def verify(self, body, url):
        auth = self.headers.get("Authorization")
        if not auth:
            self.fail(403, "MissingAuthenticationToken",
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
            self.fail(403, "InvalidClientTokenId",
                      "The security token included in the request is invalid.")
            return False
        secret, token = key
        if token is not None and (self.headers.get("X-Amz-Security-Token") != token
                                  or "x-amz-security-token" not in signed):
            self.fail(403, "InvalidClientTokenId",
                      "The security token included in the request is invalid.")
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
        if service != "sqs" or region != self.server.region or date != amz_date[:8]:
            self.fail(403, "SignatureDoesNotMatch",
                      f"Credential should be scoped to a valid region and service "
                      f"({self.server.region}/sqs), not {region}/{service}.")
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
        signer = SigV4Auth(Credentials(akid, secret, token), "sqs", region)
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
            if akid not in stats["verified_keys"]:
                stats["verified_keys"].append(akid)
        return True

    def answer(self, body, url):
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
        if form.get("Action") != "GetQueueAttributes" or form.get("Version") != "2012-11-05":
            self.fail(400, "InvalidAction",
                      f"The action or operation requested is invalid: {form.get('Action')}")
            return
        parts = url.path.strip("/").split("/")
        with lock:
            counts = queues.get(parts[-1]) if len(parts) == 2 else None
            counts = dict(counts) if counts else None
        if counts is None:
            self.fail(400, "AWS.SimpleQueueService.NonExistentQueue",
                      "The specified queue does not exist for this wsdl version.")
            return
        wanted = [v for k, v in sorted(form.items()) if k.startswith("AttributeName.")]
        if "All" in wanted:
            wanted = list(ATTRS)
        out = "".join(f"<Attribute><Name>{a}</Name><Value>{counts[a]}</Value></Attribute>"
                      for a in wanted if a in counts)
        with lock:
            stats["answered"] += 1
        self.send(200, f'<?xml version="1.0"?><GetQueueAttributesResponse xmlns="{NS}">'
                       f"<GetQueueAttributesResult>{out}</GetQueueAttributesResult>"
                       f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>"
                       "</ResponseMetadata></GetQueueAttributesResponse>")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--keys", required=True)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--queue", action="append", default=[], help="NAME=VISIBLE, at start")
    args = ap.parse_args()
    for q in args.queue:
        name, _, n = q.partition("=")
        queues[name] = {a: 0 for a in ATTRS}
        queues[name]["ApproximateNumberOfMessages"] = int(n or 0)
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.keys_file = args.keys
    srv.region = args.region
    print(f"sqs double on 127.0.0.1:{args.port}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
