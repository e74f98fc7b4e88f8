"""A chaostoolkit process probe: exits 0 when a round trip through a proxy takes at least
MIN_MS milliseconds, 1 (saying how long it took) otherwise.

Usage: latency_probe.py PORT_VARIABLE MIN_MS, where PORT_VARIABLE names the environment
variable chaostoolkit-toxiproxy's `create_proxy` set to the proxy's port (`<name>_PORT`).
"""

import os
import socket
import sys
import time


def main():
    port = int(os.environ[sys.argv[1]])
    minimum = int(sys.argv[2]) / 1000
    data = b"ping"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        start = time.monotonic()
        sock.sendall(data)
        back = b""
        while len(back) < len(data):
            chunk = sock.recv(64)
            if not chunk:
                break
            back += chunk
        seconds = time.monotonic() - start
    if back != data:
        print("echoed %r, not %r" % (back, data))
        sys.exit(1)
    if seconds < minimum:
        print("took %.3f s, less than %.3f s" % (seconds, minimum))
        sys.exit(1)
    print("took %.3f s" % seconds)


if __name__ == "__main__":
    main()
