#!/usr/bin/python3
"""A small HTTP/1.1 server for tests/test_http.c (the daemon's HTTP client and the polling
library). Prints its port (or 'unix') on stdout once it listens.

  server.py            listen on 127.0.0.1, a free port
  server.py --unix P   listen on the unix socket P

Routes: /ok, /echo (method, headers and body back as JSON), /big?n=N, /slow?ms=N, /retry (503
with Retry-After: 7), /garbage (bytes that are not HTTP), /status?code=N, /connections (how many
client connections this server has accepted)."""
import json
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

connections = 0
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        global connections
        with lock:
            connections += 1
        super().setup()

    def address_string(self):
        return "test"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body, ctype="text/plain", extra=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        u = urlparse(self.path)
        q = parse_qs(u.query)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if u.path == "/ok":
            self.reply(200, "hello", extra=[("X-Test", "1")])
        elif u.path == "/echo":
            self.reply(200, json.dumps({"method": self.command,
                                        "headers": {k.lower(): v for k, v in self.headers.items()},
                                        "body": body.decode("latin-1")}), "application/json")
        elif u.path == "/big":
            self.reply(200, b"x" * int(q.get("n", ["0"])[0]))
        elif u.path == "/slow":
            time.sleep(int(q.get("ms", ["5000"])[0]) / 1000)
            self.reply(200, "late")
        elif u.path == "/retry":
            self.reply(503, "busy, come back later\nsecond line", extra=[("Retry-After", "7")])
        elif u.path == "/status":
            self.reply(int(q.get("code", ["500"])[0]), "status body")
        elif u.path == "/garbage":
            self.wfile.write(b"\x00\x01 this is not HTTP at all\r\n\r\n")
            self.close_connection = True
        elif u.path == "/connections":
            self.reply(200, str(connections))
        else:
            self.reply(404, "no such path")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


class QuietErrors:
    # A client that hung up (a cancelled or timed-out request) is expected here.
    def handle_error(self, request, client_address):
        pass


class TcpServer(QuietErrors, ThreadingHTTPServer):
    daemon_threads = True


class UnixServer(QuietErrors, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--unix":
        srv = UnixServer(sys.argv[2], Handler)
        print("unix", flush=True)
    else:
        srv = TcpServer(("127.0.0.1", 0), Handler)
        print(srv.server_address[1], flush=True)
    srv.serve_forever()


main()
