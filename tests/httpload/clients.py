#!/usr/bin/python3
"""Load makers for tests/test_httpload.sh, on loopback only; each runs until killed or done.

  clients.py idle PORT N            hold N idle TCP connections to 127.0.0.1:PORT
  clients.py hold PORT PATH N       send N GET PATH requests, each on its own connection, and
                                    wait for the replies (or for a kill)
  clients.py load PORT PATH SECONDS GET PATH over one keep-alive connection for SECONDS
  clients.py slowserver PORT FILE   an HTTP server that answers each request once FILE exists
                                    (at most 120 s after it came), "ok"
"""
import os
import signal
import socket
import sys
import threading
import time

HOST = "127.0.0.1"


def connect(port):
    s = socket.create_connection((HOST, port), timeout=5)
    s.settimeout(None)
    return s


def idle(port, n):
    conns = [connect(port) for _ in range(n)]
    print("holding %d connections" % len(conns), flush=True)
    signal.pause()


def hold(port, path, n):
    conns = []
    for _ in range(n):
        s = connect(port)
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
        conns.append(s)
    print("sent %d requests" % n, flush=True)
    for s in conns:
        while s.recv(4096):
            pass


def load(port, path, seconds):
    req = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode()
    end, n = time.monotonic() + seconds, 0
    s, buf = connect(port), b""
    while time.monotonic() < end:
        s.sendall(req)
        # Read one reply: headers, then Content-Length bytes.
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit("connection closed after %d requests" % n)
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        length, close = 0, False
        for line in head.lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            if line.startswith(b"connection:") and b"close" in line:
                close = True
        while len(buf) < length:
            buf += s.recv(65536)
        buf = buf[length:]
        n += 1
        if close:  # nginx ends a keep-alive connection after keepalive_requests (1000)
            s.close()
            s, buf = connect(port), b""
    print("%d requests in %ss" % (n, seconds), flush=True)


def slowserver(port, release):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((HOST, port))
    srv.listen(128)

    def answer(c):
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = c.recv(4096)
                if not chunk:
                    return
                data += chunk
            end = time.monotonic() + 120
            while not os.path.exists(release) and time.monotonic() < end:
                time.sleep(0.05)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        except OSError:
            pass
        finally:
            c.close()

    while True:
        c, _ = srv.accept()
        threading.Thread(target=answer, args=(c,), daemon=True).start()


def main(argv):
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    mode = argv[1] if len(argv) > 1 else ""
    if mode == "idle" and len(argv) == 4:
        idle(int(argv[2]), int(argv[3]))
    elif mode == "hold" and len(argv) == 5:
        hold(int(argv[2]), argv[3], int(argv[4]))
    elif mode == "load" and len(argv) == 5:
        load(int(argv[2]), argv[3], float(argv[4]))
    elif mode == "slowserver" and len(argv) == 4:
        slowserver(int(argv[2]), argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
