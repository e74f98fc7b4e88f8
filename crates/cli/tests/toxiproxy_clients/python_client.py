"""Drives `blastwall toxiproxy` with Shopify's Python client, `toxiproxy-python` (PyPI).

Usage: python_client.py API_HOST:PORT ECHO_HOST:PORT

Each check below uses the client as its README does; where the client has no method (toxic
update, server errors it pre-empts) the check goes through the client's own `APIConsumer`, so
the request is still the client's. Prints one line per check and exits 1 if any failed, so
the Rust test (crates/cli/tests/toxiproxy_clients.rs) shows exactly which one broke.
"""

import socket
import sys
import time

from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

TYPES = {
    "latency": {"latency": 10, "jitter": 1},
    "bandwidth": {"rate": 1000},
    "slow_close": {"delay": 10},
    "timeout": {"timeout": 100},
    "reset_peer": {"timeout": 100},
    "slicer": {"average_size": 64, "size_variation": 32, "delay": 10},
    "limit_data": {"bytes": 4096},
}

# Generous bounds: the checks prove an effect, never measure speed.
LATENCY_MS = 300
STALL_SECONDS = 0.5


def split(address):
    host, port = address.rsplit(":", 1)
    return host, int(port)


def connect(address):
    sock = socket.create_connection(split(address), timeout=10)
    return sock


def round_trip(address, data):
    """Sends `data` through the proxy and reads as much back; returns (bytes, seconds)."""
    with connect(address) as sock:
        start = time.monotonic()
        sock.sendall(data)
        back = b""
        while len(back) < len(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            back += chunk
        return back, time.monotonic() - start


def expect_raises(exception, action):
    try:
        action()
    except exception:
        return
    raise AssertionError("expected %s" % exception.__name__)


class Checks:
    def __init__(self, api, echo):
        self.echo = echo
        self.server = Toxiproxy()
        self.server.update_api_consumer(*split(api))
        self.failed = []

    def run(self, name, check):
        try:
            check()
            print("ok   %s" % name, flush=True)
        except Exception as err:  # noqa: BLE001 -- report every failure, keep going
            self.failed.append(name)
            print("FAIL %s: %r" % (name, err), flush=True)
        finally:
            self.server.destroy_all()

    def create(self, name="echo"):
        return self.server.create(upstream=self.echo, name=name, listen="127.0.0.1:0")

    def server_is_running_and_reports_a_version(self):
        assert self.server.running()
        assert b"version" in self.server.version()

    def a_created_proxy_is_listed_with_its_real_address(self):
        proxy = self.create()
        assert proxy.name == "echo" and proxy.enabled is True
        assert proxy.upstream == self.echo
        assert not proxy.listen.endswith(":0"), proxy.listen
        listed = self.server.proxies()
        assert list(listed) == ["echo"], listed
        assert listed["echo"].listen == proxy.listen
        assert self.server.get_proxy("echo").upstream == self.echo
        back, _ = round_trip(proxy.listen, b"hello")
        assert back == b"hello", back

    def every_toxic_type_is_accepted_on_both_streams(self):
        proxy = self.create()
        for stream in ("upstream", "downstream"):
            for kind, attributes in TYPES.items():
                proxy.add_toxic(type=kind, stream=stream, attributes=attributes)
        toxics = proxy.toxics()
        assert len(toxics) == 2 * len(TYPES), sorted(toxics)
        for stream in ("upstream", "downstream"):
            for kind, attributes in TYPES.items():
                toxic = toxics["%s_%s" % (kind, stream)]
                assert toxic.type == kind and toxic.stream == stream
                assert toxic.toxicity == 1.0
                assert toxic.attributes == attributes, (kind, toxic.attributes)

    def a_toxic_is_updated_and_destroyed(self):
        proxy = self.create()
        proxy.add_toxic(type="latency", attributes={"latency": 100}, toxicity=0.5)
        url = "/proxies/echo/toxics/latency_downstream"
        updated = APIConsumer.post(url, json={"attributes": {"jitter": 7}}).json()
        assert updated["attributes"] == {"latency": 100, "jitter": 7}, updated
        assert updated["toxicity"] == 0.5, updated
        toxic = proxy.get_toxic("latency_downstream")
        assert toxic.attributes == {"latency": 100, "jitter": 7}
        assert proxy.destroy_toxic("latency_downstream")
        assert proxy.get_toxic("latency_downstream") is None

    def a_proxy_taken_down_refuses_connections_and_comes_back(self):
        proxy = self.create()
        with proxy.down():
            assert self.server.get_proxy("echo").enabled is False
            expect_raises(OSError, lambda: round_trip(proxy.listen, b"x"))
        assert self.server.get_proxy("echo").enabled is True
        back, _ = round_trip(proxy.listen, b"back")
        assert back == b"back"

    def reset_enables_proxies_and_removes_toxics(self):
        proxy = self.create()
        proxy.add_toxic(type="latency", attributes={"latency": 100})
        proxy.disable()
        assert self.server.reset()
        again = self.server.get_proxy("echo")
        assert again.enabled is True
        assert again.toxics() == {}

    def a_destroyed_proxy_is_gone(self):
        proxy = self.create()
        assert proxy.destroy()
        assert self.server.proxies() == {}
        expect_raises(NotFound, proxy.toxics)

    def populate_creates_the_proxies_not_there_yet(self):
        self.create()
        listen = "127.0.0.1:0"
        made = self.server.populate([{"name": "other", "upstream": self.echo, "listen": listen}])
        assert [p.name for p in made] == ["other"]
        assert sorted(self.server.proxies()) == ["echo", "other"]

    def errors_come_back_as_the_clients_exceptions(self):
        proxy = self.create()
        expect_raises(ProxyExists, self.create)
        expect_raises(
            ProxyExists,
            lambda: APIConsumer.post(
                "/proxies", json={"name": "echo", "upstream": self.echo}
            ),
        )
        expect_raises(InvalidToxic, lambda: proxy.add_toxic(type="no_such_toxic"))
        expect_raises(
            InvalidToxic, lambda: proxy.add_toxic(type="latency", stream="sideways")
        )
        proxy.add_toxic(type="latency")
        expect_raises(ProxyExists, lambda: proxy.add_toxic(type="latency"))
        expect_raises(NotFound, lambda: APIConsumer.get("/proxies/nowhere"))
        expect_raises(
            NotFound, lambda: APIConsumer.delete("/proxies/echo/toxics/nothing")
        )
        expect_raises(
            InvalidToxic, lambda: APIConsumer.post("/proxies", data=b"{not json")
        )

    def latency_delays_the_echo(self):
        proxy = self.create()
        proxy.add_toxic(type="latency", attributes={"latency": LATENCY_MS})
        back, seconds = round_trip(proxy.listen, b"slow")
        assert back == b"slow"
        assert seconds >= LATENCY_MS / 1000, seconds

    def timeout_stalls_the_connection(self):
        proxy = self.create()
        proxy.add_toxic(type="timeout", stream="upstream", attributes={"timeout": 0})
        with connect(proxy.listen) as sock:
            sock.settimeout(STALL_SECONDS)
            sock.sendall(b"stalled")
            expect_raises(socket.timeout, lambda: sock.recv(16))

    def limit_data_cuts_the_connection_after_its_bytes(self):
        proxy = self.create()
        proxy.add_toxic(type="limit_data", attributes={"bytes": 5})
        back, _ = round_trip(proxy.listen, b"0123456789")
        assert back == b"01234", back


def main():
    api, echo = sys.argv[1], sys.argv[2]
    checks = Checks(api, echo)
    names = [n for n in Checks.__dict__ if not n.startswith("_") and n not in ("run", "create")]
    for name in names:
        checks.run(name, getattr(checks, name))
    if checks.failed:
        print("failed: %s" % ", ".join(checks.failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
