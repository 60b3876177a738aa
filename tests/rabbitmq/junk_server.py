#!/usr/bin/python3
"""junk_server.py PORT - a stand-in for a broken RabbitMQ management API, for tests/test_rabbitmq.sh.

Not RabbitMQ: it answers every GET by the first part of its path, so one server plays every kind
of bad reply. /html/... a 200 with an HTML page; /big/... a 200 whose JSON body is 5 MiB (over
the host's 4 MiB reply limit); /deep/... 100,000 nested arrays; /types/... a queue whose counts
are strings; /slow/... a reply that never comes in time (sleeps 30 s); /busy/... a 503 with
Retry-After; anything else a 404. Serves on 127.0.0.1 only, one thread per request.
"""
import http.server
import socketserver
import sys
import time


class Handler(http.server.BaseHTTPRequestHandler):
    def send(self, status, body, ctype="application/json", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self):
        kind = self.path.split("/")[1] if self.path.count("/") > 1 else ""
        if kind == "html":
            self.send(200, b"<html><body>502 Bad Gateway</body></html>\n", "text/html")
        elif kind == "big":
            self.send(200, b"[" + b" " * (5 * 1024 * 1024) + b"]")
        elif kind == "deep":
            self.send(200, b"[" * 100000 + b"]" * 100000)
        elif kind == "types":
            self.send(200, b'{"name":"jobs","messages_ready":"12","messages":"12"}')
        elif kind == "slow":
            time.sleep(30)
            self.send(200, b'{"name":"jobs","messages_ready":1}')
        elif kind == "busy":
            self.send(503, b'{"error":"busy"}', extra=[("Retry-After", "1")])
        else:
            self.send(404, b'{"error":"Object Not Found","reason":"Not Found"}')

    def log_message(self, fmt, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # every trigger connects at once at start: no SYN dropped


if __name__ == "__main__":
    Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
