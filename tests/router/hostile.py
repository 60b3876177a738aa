#!/usr/bin/python3
"""Hostile clients for tests/test_router.sh: COUNT connections, each sending a mutation of a valid
request (bytes flipped, cut short, control characters and huge values in Host and
X-Scalebus-Service, broken chunked bodies, conflicting lengths), with a fixed seed so a failure
can be replayed. Prints how many got an HTTP status line back within 3 s and how many were closed
without one or still wait (a request cut short); never fails itself.

  hostile.py PORT COUNT SEED
"""
import random
import selectors
import socket
import sys
import time

port, count, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
base = [
    b"GET /?delay=0 HTTP/1.1\r\nHost: web.test\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-Scalebus-Service: web\r\nConnection: close, Host\r\n\r\n",
    b"GET /_scalebus/apps HTTP/1.1\r\nHost: x\r\n\r\n",
]
odd = [b"\x00", b"\r", b"\n", b"\xff", b"%", b":", b" ", b"\t", b"[", b"]", b"\x7f", b"\"", b"\\"]


def mutate(req):
    kind = rng.randrange(8)
    b = bytearray(req)
    if kind == 0:  # flip bytes
        for _ in range(rng.randrange(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 1:  # cut short
        b = b[: rng.randrange(len(b))]
    elif kind == 2:  # odd Host
        b = b"GET / HTTP/1.1\r\nHost: " + b"".join(rng.choice(odd + [b"a"]) for _ in range(rng.randrange(1, 300))) + b"\r\n\r\n"
    elif kind == 3:  # odd service name
        b = b"GET / HTTP/1.1\r\nHost: web.test\r\nX-Scalebus-Service: " + bytes(rng.randrange(32, 127) for _ in range(rng.randrange(0, 5000))) + b"\r\n\r\n"
    elif kind == 4:  # conflicting lengths
        b = b"POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc"
    elif kind == 5:  # a broken chunked body
        b = b"POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n" + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    elif kind == 6:  # many headers
        b = b"GET / HTTP/1.1\r\nHost: web.test\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(rng.randrange(50, 300))) + b"\r\n"
    else:  # insert odd bytes
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(b) + 1)
            b[at:at] = rng.choice(odd)
    return bytes(b)


# All sent first, then the answers collected within one bound: a request cut short waits for the
# rest (the router's header timeout), so waiting for each in turn would take minutes.
socks = []
for i in range(count):
    data = mutate(rng.choice(base))
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(data)
        s.setblocking(False)
        socks.append(s)
    except OSError:
        pass
sel = selectors.DefaultSelector()
for s in socks:
    sel.register(s, selectors.EVENT_READ)
got = {}
end = time.time() + 3
while len(got) < len(socks) and time.time() < end:
    for key, _ in sel.select(timeout=max(0.0, end - time.time())):
        s = key.fileobj
        try:
            got[s] = s.recv(16)
        except OSError:
            got[s] = b""
        sel.unregister(s)
answered = sum(1 for v in got.values() if v.startswith(b"HTTP/1.1 "))
for s in socks:
    s.close()
print("answered=%d closed_or_waiting=%d" % (answered, count - answered))
