#!/usr/bin/python3
"""A tiny HTTP/1.1 backend for tests/test_router.sh, run by the process scaler (until the C test
app tests/kitchen/ lands). Listens on 127.0.0.1:$PORT after APP_START_DELAY seconds, keeps
connections alive, writes its pid to $APP_DIR/pid.$PORT when it listens.

  GET  /?delay=S      sleeps S seconds (at most 10), then answers JSON: instance, port, pid,
                      concurrent (requests this instance serves now, this one included),
                      max_concurrent, the request's headers and body size
  POST /              the same, with body_len the size of the (Content-Length or chunked) body
  GET  /status/NNN    answers status NNN
  GET  /crash         exits at once without answering
  GET  /garbage       answers bytes that are not HTTP
  GET  /bigheader     answers a head of 70 KB
  GET  /cut           promises 1000 bytes, sends 10 and exits
  GET  /cut-chunked   a chunked answer cut after its first chunk (10 bytes): exits
The first argument, if any, is reported as "version".
"""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

lock = threading.Lock()
state = {"now": 0, "max": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            total = 0
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return total
                total += len(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return len(self.rfile.read(n)) if n else 0

    def answer(self):
        body_len = self.read_body()
        url = urlparse(self.path)
        if url.path == "/crash":
            os._exit(3)
        if url.path == "/garbage":  # not HTTP at all
            self.wfile.write(b"HELLO THERE\r\n\r\n")
            self.wfile.flush()
            self.close_connection = True
            return
        if url.path == "/bigheader":  # a head larger than the router takes
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 70000 + b"\r\nContent-Length: 0\r\n\r\n")
            self.wfile.flush()
            self.close_connection = True
            return
        if url.path == "/cut-chunked":  # a chunked answer: one chunk of 10 bytes, then exits
            self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n")
            self.wfile.flush()
            os._exit(4)
        if url.path == "/cut":  # promises 1000 bytes, sends 10, exits
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
            self.wfile.flush()
            os._exit(4)
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            concurrent = state["now"]
        try:
            q = parse_qs(url.query)
            delay = min(float(q.get("delay", ["0"])[0]), 10.0)
            if delay > 0:
                time.sleep(delay)
        finally:
            # before the answer goes out: the router may send the next request as soon as the
            # answer is complete, and must never find this one still counted
            with lock:
                state["now"] -= 1
        status = 200
        if url.path.startswith("/status/"):
            status = int(url.path[len("/status/"):])
        doc = {"instance": os.environ.get("SCALEBUS_INSTANCE"), "port": os.environ.get("PORT"),
               "pid": os.getpid(), "concurrent": concurrent, "max_concurrent": state["max"],
               "headers": dict(self.headers.items()), "body_len": body_len,
               "method": self.command, "path": self.path,
               "version": sys.argv[1] if len(sys.argv) > 1 else ""}
        data = (json.dumps(doc) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-App-Instance", str(os.environ.get("SCALEBUS_INSTANCE")))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = answer


def main():
    time.sleep(float(os.environ.get("APP_START_DELAY", "0")))
    port = int(os.environ["PORT"])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    d = os.environ.get("APP_DIR")
    if d:
        with open(os.path.join(d, "pid.%d" % port), "w") as f:
            f.write(str(os.getpid()))
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
