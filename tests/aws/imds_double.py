#!/usr/bin/python3
"""A TEST DOUBLE of the EC2 instance metadata service, for scalebus's tests only: it is not AWS.

It follows the published IMDSv2 API for the calls an SDK makes to get an instance role's
credentials:

  PUT /latest/api/token  (X-aws-ec2-metadata-token-ttl-seconds: 1-21600)  -> a session token
  GET /latest/meta-data/iam/security-credentials/         -> the role's name
  GET /latest/meta-data/iam/security-credentials/ROLE     -> JSON: Code, LastUpdated, Type,
                                                             AccessKeyId, SecretAccessKey, Token,
                                                             Expiration

Every GET needs a valid X-aws-ec2-metadata-token (401 without, as IMDSv2-only instances answer);
a PUT without the TTL header is a 400. Each credentials GET hands out NEW keys (ASIA...), valid
for --lifetime seconds (short in tests, so a refresh is observed), and appends them to the keys
file the SQS double reads, so they verify there.

Control: /_control/stats -> JSON {"token_puts", "credential_fetches", "unauthorized"};
/_control/mode?mode=normal|down (down: 500 on every metadata call).

  imds_double.py --port PORT --keys FILE [--role scalebus-test] [--lifetime 3600]
"""
import argparse
import datetime
import json
import secrets
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
tokens = set()
stats = {"token_puts": 0, "credential_fetches": 0, "unauthorized": 0}
mode = {"mode": "normal"}
ROLES = "/latest/meta-data/iam/security-credentials/"


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "EC2ws"

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body, ctype="text/plain"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path != "/latest/api/token":
            self.send(404, "Not Found")
            return
        if mode["mode"] == "down":
            self.send(500, "Internal Server Error")
            return
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        if not ttl or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            self.send(400, "Bad Request")
            return
        token = secrets.token_urlsafe(40)
        with lock:
            tokens.add(token)
            stats["token_puts"] += 1
        self.send(200, token)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/_control/"):
            q = dict(urllib.parse.parse_qsl(url.query))
            with lock:
                if url.path == "/_control/mode":
                    mode["mode"] = q.get("mode", "normal")
                body = json.dumps(stats)
            self.send(200, body + "\n", "application/json")
            return
        if mode["mode"] == "down":
            self.send(500, "Internal Server Error")
            return
        with lock:
            known = self.headers.get("X-aws-ec2-metadata-token") in tokens
            if not known:
                stats["unauthorized"] += 1
        if not known:
            self.send(401, "Unauthorized")
            return
        role = self.server.role
        if url.path == ROLES:
            self.send(200, role)
        elif url.path == ROLES + role:
            now = datetime.datetime.now(datetime.timezone.utc)
            with lock:
                stats["credential_fetches"] += 1
                n = stats["credential_fetches"]
            akid = f"ASIAIMDSDOUBLE{n:06d}"
            secret = secrets.token_urlsafe(30)
            token = "IQoJb3JpZ2luX2VjE" + secrets.token_urlsafe(60)
            with open(self.server.keys_file, "a") as f:
                f.write(f"{akid} {secret} {token}\n")
            self.send(200, json.dumps({
                "Code": "Success", "LastUpdated": iso(now), "Type": "AWS-HMAC",
                "AccessKeyId": akid, "SecretAccessKey": secret, "Token": token,
                "Expiration": iso(now + datetime.timedelta(seconds=self.server.lifetime)),
            }, indent=2), "text/plain")
        else:
            self.send(404, "Not Found")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--keys", required=True)
    ap.add_argument("--role", default="scalebus-test")
    ap.add_argument("--lifetime", type=int, default=3600)
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.keys_file, srv.role, srv.lifetime = args.keys, args.role, args.lifetime
    print(f"imds double on 127.0.0.1:{args.port}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
