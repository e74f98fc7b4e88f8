#!/usr/bin/env python3
"""A hostile 'running system' for `blastwall verify`: traffic + admin on raw sockets, 127.0.0.1.

usage: hostile.py MODE  -> prints "traffic PORT admin PORT", logs every admin request line to stderr.
Modes (admin side unless said):
  ok            201 {"id":"f1"} / 200 events [] / DELETE 204
  noid          POST /admin/faults -> 201 {}
  evilid        POST -> 201 {"id": "../../x"}
  dotdot        POST -> 201 {"id": ".."}
  bigid         POST -> 201 {"id": 10 KB}
  hangpost      POST never answers (socket kept open)
  hangevents    GET /admin/events never answers
  trickle       GET /admin/events trickles a byte a second
  bigevents     GET /admin/events 4 MB of fresh unique events each call
  evilevents    events with hostile strings, u64::MAX and future at_ms
  delete500     DELETE answers 500 (body mentions 404)
  traffic modes via env TRAFFIC: ok | hang | trickle | bighead | garbage | reset | headers
"""
import json, os, socket, sys, threading, time

MODE = sys.argv[1] if len(sys.argv) > 1 else "ok"
TRAFFIC = os.environ.get("TRAFFIC", "ok")
counter = [0]

def log(*a):
    print(*a, file=sys.stderr, flush=True)

def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None, None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    return lines[0], rest

def answer(conn, status, body, ctype="application/json", extra=""):
    if isinstance(body, str):
        body = body.encode()
    conn.sendall(f"HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode() + body)

def events_body():
    now = int(time.time() * 1000)
    if MODE == "bigevents":
        counter[0] += 1
        n = 25_000  # about 3.9 MB: just under verify's 4 MiB answer cap
        evs = [{"at_ms": now, "kind": "breaker_opened", "cluster": "c", "detail": f"{counter[0]}-{i}-" + "x" * 60} for i in range(n)]
        body = json.dumps({"events": evs})
        return body
    if MODE == "evilevents":
        evs = [
            {"at_ms": 18446744073709551615, "kind": "breaker_opened", "cluster": "</title><script>alert(1)</script>", "detail": "\"]]>\x00\x01\x1b[31m"},
            {"at_ms": now + 10**12, "kind": "endpoint_ejected", "endpoint": "<svg onload=alert(1)>", "detail": "y" * (3 * 1024 * 1024)},
            {"at_ms": 0, "kind": "x"},
            {"at_ms": -5, "kind": "x"},
            {"at_ms": 1.5e300, "kind": "x"},
            {"at_ms": now, "kind": {"nested": 1}, "failure": "yes"},
        ]
        return json.dumps({"events": evs})
    return json.dumps({"events": []})

def admin(conn):
    try:
        while True:
            line, body = read_request(conn)
            if line is None:
                return
            log("ADMIN", line, body[:80])
            method, path = line.split(" ")[:2]
            if method == "POST" and path == "/admin/faults":
                if MODE == "hangpost":
                    time.sleep(3600); return
                ids = {"noid": {}, "evilid": {"id": "../../x"}, "dotdot": {"id": ".."}, "bigid": {"id": "A" * 10240},
                       "emptyid": {"id": ""}, "numid": {"id": 12}}
                answer(conn, "201 Created", json.dumps(ids.get(MODE, {"id": "f1"})))
            elif method == "GET" and path.startswith("/admin/events"):
                if MODE == "hangevents":
                    time.sleep(3600); return
                if MODE == "trickle":
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
                    for _ in range(3600):
                        conn.sendall(b" "); time.sleep(1)
                    return
                answer(conn, "200 OK", events_body())
            elif method == "DELETE":
                if MODE == "delete500":
                    answer(conn, "500 Internal Server Error", '{"error":"storage 404 lost"}')
                else:
                    answer(conn, "204 No Content", "")
            else:
                answer(conn, "404 Not Found", '{"error":"no"}')
    except (BrokenPipeError, ConnectionResetError):
        pass

def traffic(conn):
    try:
        while True:
            line, _ = read_request(conn)
            if line is None:
                return
            if TRAFFIC == "hang":
                time.sleep(3600); return
            if TRAFFIC == "trickle":
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
                for _ in range(3600):
                    conn.sendall(b"x"); time.sleep(1)
                return
            if TRAFFIC == "bighead":
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                for _ in range(100000):
                    conn.sendall(b"x-a: " + b"b" * 1000 + b"\r\n")
                return
            if TRAFFIC == "garbage":
                conn.sendall(b"\x00\xffHELLO garbage\r\n\r\n"); conn.close(); return
            if TRAFFIC == "reset":
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc")
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                conn.close(); return
            if TRAFFIC == "headers":
                extra = ("x-blastwall-attempts: 99999999999999999999\r\nx-blastwall-attempts: -1\r\n"
                         "x-blastwall-fallback: \xc3\xa9</script>\r\nx-blastwall-fallback: static\r\n"
                         "x-blastwall-error: " + "e" * 8000 + "\r\n")
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n" + extra.encode("latin1") + b"\r\nok")
                continue
            answer(conn, "200 OK", "ok", "text/plain")
    except (BrokenPipeError, ConnectionResetError, OSError):
        pass

def serve(sock, handler):
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=handler, args=(conn,), daemon=True).start()

def listener():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0)); s.listen(1024); return s

t, a = listener(), listener()
print(f"traffic {t.getsockname()[1]} admin {a.getsockname()[1]}", flush=True)
threading.Thread(target=serve, args=(t, traffic), daemon=True).start()
serve(a, admin)
