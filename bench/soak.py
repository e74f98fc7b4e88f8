#!/usr/bin/env python3
"""Soak: steady traffic through Blastwall for ten minutes, a fault every 30 seconds.

Three `blastwall mock` replicas serve behind one proxy with every resilience feature on
(retries under a budget, breakers, outlier detection, active health checks, an adaptive
concurrency limit, stale-if-error and a static fallback) and an admin listener; `blastwall
load` sends open-loop traffic at a steady rate through it. Every `--fault-every` seconds the
next fault in the rotation strikes: a replica crashes (kill -9, restarted later), hangs,
turns slow, the config is reloaded (SIGHUP), or a slowloris burst opens 200 raw
connections that trickle headers, trickle a body, or pipeline requests and never read.
Meanwhile the proxy's resident memory (VmRSS) and open descriptors (/proc/PID/fd) are
sampled every second. The question is the one a long-running proxy must answer: does it
come back to where it was after each fault, and does it grow over time? See bench/README.md
("Soak") for the figures and what they mean.

Not a CI test: it measures. Python 3 standard library only; shares its helpers with
bench/proxies.py and bench/resilience.py. Every process it starts it stops by pid, on
Ctrl-C or an error too; all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import fcntl
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import proxies
from proxies import (
    LOAD_CORE,
    REPO,
    Processes,
    build_blastwall,
    check_answer,
    log,
    machine,
    pinned,
    tool,
    wait_for_line,
)
from resilience import (
    ATTEMPTS,
    CONNECT_TIMEOUT_MS,
    HEALTH_INTERVAL_MS,
    OVERALL_TIMEOUT_MS,
    PER_TRY_TIMEOUT_MS,
    REPLICAS,
    SLOW_BY_MS,
    Replica,
    check_blastwall_config,
    raise_fd_limit,
)

FAULTS = ("crash", "hang", "slow", "reload", "slowloris")
FD_KINDS = ("listening", "downstream", "upstream", "other")
TCP_ESTABLISHED = 1   # linux/include/net/tcp_states.h
CLIENT_TIMEOUT = "3s"
# A few samples, not one, make "before" and "after" a fault: one sample can land on a
# moment of garbage (a burst of connections closing, jemalloc purging).
EDGE_SAMPLES = 5


@dataclass
class Settings:
    rate: int              # requests per second offered
    duration: float        # seconds of load in all, warm-up included
    warmup: float          # seconds before the baseline window starts
    fault_every: float     # seconds between faults (the first one after a clean baseline)
    hold: float            # seconds a fault lasts (crash: restart after; burst: held)
    settle: float          # "after" a fault is judged this long after it struck
    window: float          # seconds of the final window (the baseline's is fault_every)
    connections: int       # client connections (opened at start, kept alive)
    slow_headers: int = 100
    slow_bodies: int = 50
    never_read: int = 50
    pipelined: int = 256   # requests each never-reading connection sends (221-byte answers:
    #                        more than its receive buffer and the proxy's send buffer hold)


FULL = Settings(rate=500, duration=600, warmup=10, fault_every=30, hold=10, settle=20,
                window=30, connections=512)
QUICK = Settings(rate=500, duration=90, warmup=5, fault_every=13, hold=5, settle=10,
                 window=10, connections=512)


# --------------------------------------------------------------------------------------
# The proxy: a production-like config, rewritten with a harmless change on each reload.


def soak_config(ports: list[int], generation: int) -> str:
    """Every resilience feature on, with resilience.py's timeouts; `generation` is a
    request header value only, so a reload changes the routes and keeps the clusters live."""
    endpoints = ", ".join(f'{{ address = "127.0.0.1:{port}" }}' for port in ports)
    return f"""# bench/soak.py, generation {generation}
[proxy]
deadline_header = "x-blastwall-timeout-ms"
trusted_clients = ["127.0.0.1/32"]

[admin]
listen = "127.0.0.1:0"

[[listener]]
name = "soak"
listen = "127.0.0.1:0"

[[route]]
name = "all"
cluster = "api"
timeout = "{OVERALL_TIMEOUT_MS}ms"
per_try_timeout = "{PER_TRY_TIMEOUT_MS}ms"
request_headers = {{ add = {{ "x-soak-generation" = "{generation}" }} }}

[route.retry]
attempts = {ATTEMPTS}
backoff = {{ base = "10ms", max = "100ms", jitter = "full" }}
on = ["connect_failure", "refused", "reset", "timeout", "gateway_error", "overloaded"]
retry_after_max = "100ms"

[route.fallback]
on = ["failed", "breaker_open", "shed", "timeout"]
stale_if_error = {{ max_age = "5m", max_entries = 1000, max_body = "1MiB", max_bytes = "64MiB" }}
static = {{ status = 503, headers = {{ "content-type" = "text/plain", "retry-after" = "1" }}, body = "degraded\\n" }}

[cluster.api]
balance = "peak_ewma"
connect_timeout = "{CONNECT_TIMEOUT_MS}ms"
request_timeout = "{PER_TRY_TIMEOUT_MS}ms"
retry_budget = {{ ratio = 0.2, min_per_second = 10 }}
endpoints = [{endpoints}]

[cluster.api.health_check]
kind = "http"
path = "/"
interval = "{HEALTH_INTERVAL_MS}ms"
timeout = "{CONNECT_TIMEOUT_MS}ms"
healthy_threshold = 2
unhealthy_threshold = 2

[cluster.api.concurrency]
adaptive = "gradient2"
min = 10
max = 500
initial = 50
queue = 100
queue_timeout = "100ms"

[cluster.api.circuit_breaker]
failure_rate_percent = 50
slow_call_percent = 80
slow_call_duration = "{PER_TRY_TIMEOUT_MS}ms"
minimum_calls = 20
window = "2s"
open_duration = "1s"
half_open_probes = 3

[cluster.api.endpoint_circuit_breaker]
consecutive_failures = 5
open_duration = "1s"
half_open_probes = 1

[cluster.api.outlier_detection]
consecutive_errors = 5
consecutive_gateway_errors = 5
interval = "1s"
base_ejection_time = "5s"
max_ejection_percent = 34
slow_call = {{ threshold = "100ms" }}
"""


class Proxy:
    """The blastwall under test: its process, ports and config file."""

    def __init__(self, procs: Processes, blastwall: Path, workdir: Path,
                 ports: list[int]) -> None:
        self.ports = ports
        self.generation = 0
        self.config = workdir / "soak.toml"
        self.config.write_text(soak_config(ports, self.generation))
        # --no-watch: only the SIGHUP reloads, so each reload is the fault's own.
        self.process = procs.start("blastwall", [
            "nice", "-n", str(proxies.NICE), str(blastwall), "run", "-c", str(self.config),
            "--log", "warn", "--no-watch"], capture=True)
        self.pid = self.process.pid
        self.port = int(wait_for_line(self.process, "listener ").rsplit(":", 1)[1])
        self.admin = int(wait_for_line(self.process, "admin listening on ")
                         .rsplit(":", 1)[1])
        wait_for_line(self.process, "blastwall ready")
        # What it prints later (one line per reload) is kept, and its pipe never fills.
        self.output: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()
        check_answer(self.port)

    def _drain(self) -> None:
        try:
            for line in self.process.stdout:
                self.output.append(line.rstrip())
        except (OSError, ValueError):
            pass  # stdout closed when the proxy is stopped

    def status(self, timeout: float = 2) -> dict:
        connection = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=timeout)
        try:
            connection.request("GET", "/admin/status")
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"/admin/status answered {response.status}")
            return json.loads(body)
        finally:
            connection.close()

    def reload(self, timeout: float = 10) -> dict:
        """Rewrites the config with the next generation, sends SIGHUP, and waits until
        /admin/status says it was applied (or refused)."""
        before = self.status()["reload"]
        self.generation += 1
        self.config.write_text(soak_config(self.ports, self.generation))
        sent = time.monotonic()
        os.kill(self.pid, signal.SIGHUP)
        deadline = sent + timeout
        while time.monotonic() < deadline:
            reload = self.status()["reload"]
            attempts = reload["applied"] + reload["unchanged"] + reload["refused"]
            if attempts > before["applied"] + before["unchanged"] + before["refused"]:
                last = reload["last"] or {}
                return {"generation": self.generation, "outcome": last.get("outcome"),
                        "trigger": last.get("trigger"),
                        "seconds": round(time.monotonic() - sent, 3),
                        "hash": reload["current_hash"],
                        "error": reload.get("last_error")}
            time.sleep(0.05)
        return {"generation": self.generation, "outcome": "no answer",
                "seconds": timeout}


# --------------------------------------------------------------------------------------
# Sampling: RSS and descriptors every second.


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def socket_kinds(pid: int, proxy_ports: set[int], upstream_ports: set[int]) -> dict[str, int]:
    """The proxy's descriptors by what they are: listening sockets, connections from
    clients (to the listener or the admin port), connections to the replicas, and
    everything else (epoll, eventfd, files, sockets gone by the time they are looked up)."""
    inodes = {}
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local_port = int(parts[1].rsplit(":", 1)[1], 16)
        remote_port = int(parts[2].rsplit(":", 1)[1], 16)
        if parts[3] == "0A":
            inodes[parts[9]] = "listening"
        elif local_port in proxy_ports:
            inodes[parts[9]] = "downstream"
        elif remote_port in upstream_ports:
            inodes[parts[9]] = "upstream"
    kinds = dict.fromkeys(FD_KINDS, 0)
    directory = f"/proc/{pid}/fd"
    for name in os.listdir(directory):
        try:
            target = os.readlink(f"{directory}/{name}")
        except OSError:
            continue
        kind = "other"
        if target.startswith("socket:["):
            kind = inodes.get(target[8:-1], "other")
        kinds[kind] += 1
    return kinds


class Sampler(threading.Thread):
    """Every second: the proxy's RSS and descriptors (read first, so the admin call that
    follows is not counted), then its own count of connections and requests in flight."""

    def __init__(self, proxy: Proxy, started: float) -> None:
        super().__init__(daemon=True)
        self.proxy = proxy
        self.started = started
        self.samples: list[dict] = []
        self.halt = threading.Event()

    def run(self) -> None:
        tick = self.started
        while not self.halt.is_set():
            sample = {"t": round(time.monotonic() - self.started, 2),
                      "rss_kib": rss_kib(self.proxy.pid), "fds": open_fds(self.proxy.pid)}
            try:
                kinds = socket_kinds(self.proxy.pid, {self.proxy.port, self.proxy.admin},
                                     set(self.proxy.ports))
            except (OSError, ValueError, IndexError):
                kinds = dict.fromkeys(FD_KINDS)
            sample.update({f"fds_{kind}": count for kind, count in kinds.items()})
            try:
                status = self.proxy.status(timeout=0.8)
                sample["connections"] = status["connections"]
                sample["in_flight"] = status["requests_in_flight"]
            except (OSError, RuntimeError, ValueError, KeyError):
                sample["connections"] = sample["in_flight"] = None
            self.samples.append(sample)
            tick += 1
            self.halt.wait(max(0.0, tick - time.monotonic()))


# --------------------------------------------------------------------------------------
# The slowloris burst: raw sockets, one byte a second, or requests never read.


class Burst(threading.Thread):
    """Opens `slow_headers` connections that send a request head one byte a second,
    `slow_bodies` that send a whole head then a body one byte a second, and `never_read`
    that pipeline `pipelined` requests on a small receive buffer and never read; holds
    them `hold` seconds, then closes them all. Counts what the proxy did meanwhile."""

    HEAD = (b"GET /slowloris HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 200)
    BODY_HEAD = (b"POST /slowloris HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: text/plain\r\nContent-Length: 100000\r\n\r\n")
    PIPELINED = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    def __init__(self, port: int, settings: Settings, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.settings = settings
        self.stop = stop
        self.result: dict = {}

    def open(self, small_receive_buffer: bool = False) -> socket.socket | None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if small_receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(2)
        try:
            sock.connect(("127.0.0.1", self.port))
        except OSError:
            sock.close()
            return None
        sock.setblocking(False)
        return sock

    def run(self) -> None:
        s = self.settings
        started = time.monotonic()
        groups: dict[str, list[dict]] = {"slow_headers": [], "slow_bodies": [],
                                         "never_read": []}
        try:
            for name, count in (("slow_headers", s.slow_headers),
                                ("slow_bodies", s.slow_bodies),
                                ("never_read", s.never_read)):
                for _ in range(count):
                    sock = self.open(small_receive_buffer=name == "never_read")
                    groups[name].append({"sock": sock, "sent": 0, "closed_at": None,
                                         "answer": None})
            for conn in groups["slow_bodies"]:
                self.send(conn, self.BODY_HEAD, started)
            for conn in groups["never_read"]:
                self.send(conn, self.PIPELINED * s.pipelined, started)
            while not self.stop.is_set() and time.monotonic() - started < s.hold:
                for conn in groups["slow_headers"]:
                    if conn["sent"] < len(self.HEAD):
                        self.send(conn, self.HEAD[conn["sent"]:conn["sent"] + 1], started)
                for conn in groups["slow_bodies"]:
                    self.send(conn, b"x", started)
                for conn in groups["slow_headers"] + groups["slow_bodies"]:
                    self.peek(conn, started)
                for conn in groups["never_read"]:
                    self.check_open(conn, started)
                self.stop.wait(1)
        finally:
            # What the proxy did by the end of the hold (a head timeout lands about then).
            for conn in groups["slow_headers"] + groups["slow_bodies"]:
                self.peek(conn, started)
            for conn in groups["never_read"]:
                self.check_open(conn, started)
            for conns in groups.values():
                for conn in conns:
                    if conn["sock"] is not None:
                        conn["unread"] = self.unread(conn["sock"])
                        conn["sock"].close()
        self.result = {name: self.tally(conns) for name, conns in groups.items()}
        unread = [c.get("unread") for c in groups["never_read"] if c.get("unread") is not None]
        # How far the proxy got answering them before its writes would block.
        self.result["never_read"]["unread_bytes_median"] = med(unread)
        self.result["held_s"] = round(time.monotonic() - started, 1)

    @staticmethod
    def check_open(conn: dict, started: float) -> None:
        """Whether the proxy closed a connection we do not read from: its TCP state (the
        first byte of TCP_INFO) leaves ESTABLISHED once the proxy's FIN or RST arrives."""
        sock = conn["sock"]
        if sock is None or conn["closed_at"] is not None:
            return
        try:
            state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
        except OSError:
            state = None
        if state != TCP_ESTABLISHED:
            conn["closed_at"] = time.monotonic() - started

    @staticmethod
    def unread(sock: socket.socket) -> int | None:
        """Bytes waiting in the receive buffer (FIONREAD)."""
        try:
            return struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0" * 4))[0]
        except OSError:
            return None

    @staticmethod
    def send(conn: dict, data: bytes, started: float) -> None:
        sock = conn["sock"]
        if sock is None or conn["closed_at"] is not None:
            return
        try:
            conn["sent"] += sock.send(data)
        except BlockingIOError:
            pass
        except OSError:
            conn["closed_at"] = time.monotonic() - started

    @staticmethod
    def peek(conn: dict, started: float) -> None:
        """Reads what the proxy sent (an early 408, a 503, ...) and notes its first line,
        and whether the proxy closed the connection (EOF or reset)."""
        sock = conn["sock"]
        while sock is not None and conn["closed_at"] is None:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                conn["closed_at"] = time.monotonic() - started
            elif conn["answer"] is None:
                conn["answer"] = data.split(b"\r\n", 1)[0].decode("latin-1")

    @staticmethod
    def tally(conns: list[dict]) -> dict:
        closed = [c["closed_at"] for c in conns if c["closed_at"] is not None]
        answers: dict[str, int] = {}
        for conn in conns:
            if conn["answer"]:
                answers[conn["answer"]] = answers.get(conn["answer"], 0) + 1
        return {"opened": sum(c["sock"] is not None for c in conns),
                "closed_by_proxy": len(closed),
                "first_closed_s": round(min(closed), 1) if closed else None,
                "answers": answers}


# --------------------------------------------------------------------------------------
# Faults: what strikes, in rotation, and how it is undone.


@dataclass
class Fault:
    kind: str
    at: float                        # planned, seconds after the load started
    replica: Replica | None = None
    struck: float | None = None      # when it was done
    ended: float | None = None       # when it was undone
    detail: dict = field(default_factory=dict)

    def describe(self) -> str:
        target = f" {self.replica.name}" if self.replica else ""
        return f"{self.kind}{target}"


def plan_faults(settings: Settings, kinds: tuple[str, ...],
                replicas: list[Replica]) -> list[Fault]:
    """Faults every `fault_every` seconds from the end of the baseline window, none so late
    that its aftermath would reach the final window. Replicas take turns."""
    faults = []
    k = 1
    while True:
        at = settings.warmup + k * settings.fault_every
        if at + max(settings.hold, settings.settle) > settings.duration - settings.window:
            return faults
        kind = kinds[(k - 1) % len(kinds)]
        replica = replicas[(k - 1) % len(replicas)] if kind in ("crash", "hang",
                                                                  "slow") else None
        faults.append(Fault(kind, at, replica))
        k += 1


class Injector:
    """Strikes faults and undoes them; a slowloris burst runs on a thread of its own."""

    def __init__(self, proxy: Proxy, settings: Settings, started: float) -> None:
        self.proxy = proxy
        self.settings = settings
        self.started = started
        self.bursts: list[tuple[Burst, threading.Event, Fault]] = []

    def now(self) -> float:
        return time.monotonic() - self.started

    def strike(self, fault: Fault) -> None:
        fault.struck = self.now()
        replica = fault.replica
        if fault.kind == "crash":
            replica.kill()
        elif fault.kind == "hang":
            replica.behave(mode="hang")
        elif fault.kind == "slow":
            replica.behave(latency=f"{2 + SLOW_BY_MS}ms")
        elif fault.kind == "reload":
            fault.detail = self.proxy.reload()
            fault.ended = self.now()
        elif fault.kind == "slowloris":
            stop = threading.Event()
            burst = Burst(self.proxy.port, self.settings, stop)
            burst.start()
            self.bursts.append((burst, stop, fault))

    def undo(self, fault: Fault) -> None:
        replica = fault.replica
        if fault.kind == "crash":
            replica.start()
            fault.detail = {"restarted_on_port": replica.port}
        elif fault.kind in ("hang", "slow"):
            replica.behave()
        elif fault.kind == "slowloris":
            for burst, _, mine in self.bursts:
                if mine is fault:
                    burst.join(timeout=self.settings.hold + 10)
                    fault.detail = burst.result
        if fault.ended is None:
            fault.ended = self.now()

    def stop_bursts(self) -> None:
        for burst, stop, _ in self.bursts:
            stop.set()
            burst.join(timeout=5)


def run_soak(procs: Processes, blastwall: Path, settings: Settings, kinds: tuple[str, ...],
             workdir: Path) -> dict:
    replicas = [Replica(i, procs, blastwall, tool("taskset") or "taskset")
                for i in range(REPLICAS)]
    proxy = Proxy(procs, blastwall, workdir, [replica.port for replica in replicas])
    log(f"proxy pid {proxy.pid} on 127.0.0.1:{proxy.port}, admin on {proxy.admin}; "
        f"replicas on {[replica.port for replica in replicas]}")
    command = pinned(tool("taskset") or "taskset", LOAD_CORE) + [
        str(blastwall), "load", f"http://127.0.0.1:{proxy.port}/",
        "--rate", str(settings.rate), "--duration", f"{round(settings.duration * 1000)}ms",
        "--connections", str(settings.connections), "--timeout", CLIENT_TIMEOUT,
        "--timeline-interval", "1s", "--json"]
    load = procs.start("load", command, capture=True)
    deadline = time.monotonic() + 30
    while "load started" not in load.log.read_text():
        if load.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"blastwall load did not start: {load.log.read_text()}")
        time.sleep(0.01)
    started = time.monotonic()
    sampler = Sampler(proxy, started)
    sampler.start()
    injector = Injector(proxy, settings, started)
    faults = plan_faults(settings, kinds, replicas)
    log(f"{len(faults)} faults planned: "
        + ", ".join(f"{f.at:g}s {f.describe()}" for f in faults))
    # (time, step, fault): strike at `at`, undo `hold` later (reload has nothing to undo).
    steps = [(f.at, "strike", f) for f in faults]
    steps += [(f.at + settings.hold, "undo", f) for f in faults if f.kind != "reload"]
    steps.sort(key=lambda step: step[0])
    try:
        for at, step, fault in steps:
            delay = started + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if load.poll() is not None:
                raise RuntimeError(f"blastwall load ended early: {load.log.read_text()}")
            try:
                if step == "strike":
                    injector.strike(fault)
                else:
                    injector.undo(fault)
            except (OSError, RuntimeError, ValueError) as error:
                fault.detail["error"] = f"{step}: {error}"
                log(f"  {step} {fault.describe()} failed: {error}")
            else:
                log(f"  {injector.now():6.1f}s {step} {fault.describe()}"
                    + (f" {fault.detail}" if fault.detail else ""))
        stdout, _ = load.communicate(timeout=settings.duration + 60)
        if load.returncode != 0:
            raise RuntimeError(f"blastwall load failed: {load.log.read_text()[-2000:]}")
        report = json.loads(stdout)
    finally:
        # The replicas, hung or not, are stopped with everything else by the caller.
        injector.stop_bursts()
        sampler.halt.set()
        sampler.join(timeout=5)
    faults_done = [{"kind": f.kind, "target": f.replica.name if f.replica else None,
                    "planned_at": f.at, "struck": f.struck, "ended": f.ended,
                    "detail": f.detail} for f in faults]
    return {"samples": sampler.samples, "faults": faults_done, "load": report,
            "proxy_output": proxy.output, "ports": {"proxy": proxy.port,
                                                    "admin": proxy.admin}}


# --------------------------------------------------------------------------------------
# Analysis: baseline, peak, final, and each fault's before / peak / after.


def values(samples: list[dict], key: str, since: float, until: float) -> list[float]:
    return [s[key] for s in samples if since <= s["t"] < until and s[key] is not None]


def med(found: list[float]) -> float | None:
    return statistics.median(found) if found else None


def growth(final: float | None, baseline: float | None) -> float | None:
    return (final - baseline) / baseline if final is not None and baseline else None


def analyse(run: dict, settings: Settings, kinds: tuple[str, ...], tolerance: float) -> dict:
    samples = run["samples"]
    faults: list[dict] = run["faults"]
    baseline_until = faults[0]["planned_at"] if faults else settings.warmup + settings.fault_every
    summary: dict = {"tolerance": tolerance}
    for key in ("rss_kib", "fds", "connections", *(f"fds_{kind}" for kind in FD_KINDS)):
        baseline = med(values(samples, key, settings.warmup, baseline_until))
        final = med(values(samples, key, settings.duration - settings.window,
                           settings.duration + 1))
        everything = values(samples, key, settings.warmup, settings.duration + 1)
        summary[key] = {"baseline": baseline, "final": final,
                        "peak": max(everything) if everything else None,
                        "growth": growth(final, baseline)}
    # A leak grows for as long as the faults go on; a high-water mark (pools, allocator
    # caches grown to the worst fault so far) stops once every fault has been seen.
    # The trend after the first full rotation tells them apart.
    since = faults[len(kinds)]["planned_at"] if len(faults) > len(kinds) else None
    summary["trend_since"] = since
    # Only quiet samples: those outside every fault's `settle` seconds, so the trend is
    # of where the proxy comes back to, not of where the faults happened to fall.
    windows = [(f["struck"] or f["planned_at"], (f["struck"] or f["planned_at"])
                + settings.settle) for f in faults]
    quiet = [s for s in samples if since is not None and s["t"] >= since
             and not any(start <= s["t"] < end for start, end in windows)]
    for key in ("rss_kib", "fds"):
        points = [(s["t"], s[key]) for s in quiet if s[key] is not None]
        summary[key]["per_minute_after_first_rotation"] = (
            statistics.linear_regression([t for t, _ in points],
                                         [v for _, v in points]).slope * 60
            if len(points) > 2 else None)
        summary[key]["final_vs_first_rotation"] = growth(
            summary[key]["final"], med(values(samples, key, since - EDGE_SAMPLES, since))
            if since is not None else None)
    timeline = run["load"]["timeline"]
    rows = []
    for fault in faults:
        struck = fault["struck"] if fault["struck"] is not None else fault["planned_at"]
        row = {"kind": fault["kind"], "target": fault["target"], "at": round(struck, 1),
               "detail": fault["detail"]}
        for key in ("rss_kib", "fds"):
            before = med(values(samples, key, struck - EDGE_SAMPLES, struck))
            during = values(samples, key, struck, struck + settings.settle)
            after = med(values(samples, key, struck + settings.settle - 3,
                               struck + settings.settle + 0.5))
            back = (after is not None and before is not None
                    and after <= before * (1 + tolerance))
            row[key] = {"before": before, "peak": max(during) if during else None,
                        "after": after, "back": back,
                        "after_vs_baseline": growth(after, summary[key]["baseline"])}
        row["fds_after_by_kind"] = {
            kind: med(values(samples, f"fds_{kind}", struck + settings.settle - 3,
                             struck + settings.settle + 0.5)) for kind in FD_KINDS}
        points = [p for p in timeline if struck <= p["t"] < struck + settings.settle]
        row["client_ok"] = sum(p["ok"] for p in points)
        row["client_failed"] = sum(p["failed"] for p in points)
        rows.append(row)
    summary["faults"] = rows
    total = run["load"]["total"]
    summary["client"] = {"requests": run["load"]["requests"], "sent": run["load"]["sent"],
                         "ok": total["ok"], "failed": total["failed"],
                         "error_rate": total["error_rate"], "statuses": total["statuses"],
                         "errors": total["errors"],
                         "p50_ms": total["latency_us"]["p50"] / 1000,
                         "p99_ms": total["latency_us"]["p99"] / 1000,
                         "max_ms": total["latency_us"]["max"] / 1000}
    return summary


def mib(kib: float | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"


def num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def trend(summary: dict, settings: Settings) -> str:
    since = summary["trend_since"]
    if since is None:
        return "Too few faults for a trend after the first rotation."
    rss, fds = summary["rss_kib"], summary["fds"]
    return (f"After the first rotation of faults (from t={since:g} s, the value just before "
            f"to the final): RSS {pct(rss['final_vs_first_rotation'])}, trend "
            f"{rss['per_minute_after_first_rotation']:+.0f} KiB/min; descriptors "
            f"{pct(fds['final_vs_first_rotation'])}, trend "
            f"{fds['per_minute_after_first_rotation']:+.2f}/min (least squares over the samples "
            f"outside every fault's {settings.settle:g} s).")


def report(summary: dict, settings: Settings) -> str:
    rss, fds, conns = summary["rss_kib"], summary["fds"], summary["connections"]
    lines = [
        f"Baseline = median of t={settings.warmup:g}..{settings.warmup + settings.fault_every:g}"
        f" s; final = median of the last {settings.window:g} s; growth = final vs baseline.",
        "",
        "| | baseline | peak | final | growth |",
        "|---|---|---|---|---|",
        f"| RSS MiB | {mib(rss['baseline'])} | {mib(rss['peak'])} | {mib(rss['final'])} "
        f"| {pct(rss['growth'])} |",
        f"| open descriptors | {num(fds['baseline'])} | {num(fds['peak'])} "
        f"| {num(fds['final'])} | {pct(fds['growth'])} |",
        f"| connections (admin) | {num(conns['baseline'])} | {num(conns['peak'])} "
        f"| {num(conns['final'])} | {pct(conns['growth'])} |",
        *(f"| fds: {kind} | {num(summary[f'fds_{kind}']['baseline'])} "
          f"| {num(summary[f'fds_{kind}']['peak'])} | {num(summary[f'fds_{kind}']['final'])} "
          f"| {pct(summary[f'fds_{kind}']['growth'])} |" for kind in FD_KINDS),
        "",
        trend(summary, settings),
        "",
        f"Per fault: before = median of the {EDGE_SAMPLES} s before; peak = highest in the "
        f"{settings.settle:g} s from the fault; after = median of the samples "
        f"{settings.settle - 3:g}..{settings.settle:g} s after; back = after within "
        f"{summary['tolerance']:.0%} of before (a fault is judged on what it added, so an "
        f"earlier drift does not fail every later one; vs baseline shows the drift). "
        f"Client figures: requests due in those "
        f"{settings.settle:g} s.",
        "",
        "| t s | fault | RSS MiB before / peak / after | vs baseline | back "
        "| fds before / peak / after | vs baseline | back | client ok / failed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["faults"]:
        r, f = row["rss_kib"], row["fds"]
        what = row["kind"] + (f" {row['target']}" if row["target"] else "")
        lines.append(
            f"| {row['at']:.0f} | {what} | {mib(r['before'])} / {mib(r['peak'])} / "
            f"{mib(r['after'])} | {pct(r['after_vs_baseline'])} "
            f"| {'yes' if r['back'] else 'NO'} | {num(f['before'])} / {num(f['peak'])} / "
            f"{num(f['after'])} | {pct(f['after_vs_baseline'])} "
            f"| {'yes' if f['back'] else 'NO'} | {row['client_ok']} / {row['client_failed']} |")
    c = summary["client"]
    lines += ["", f"Client: {c['requests']} requests due, {c['ok']} ok, {c['failed']} failed "
              f"({c['error_rate']:.2%}); statuses {c['statuses']}; errors {c['errors']}; "
              f"p50 {c['p50_ms']:.1f} ms, p99 {c['p99_ms']:.0f} ms, max {c['max_ms']:.0f} ms."]
    for row in summary["faults"]:
        if row["kind"] in ("slowloris", "reload") and row["detail"]:
            lines.append(f"{row['kind']} at {row['at']:.0f} s: {json.dumps(row['detail'])}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {QUICK.duration:g} s, a fault every "
                             f"{QUICK.fault_every:g} s held {QUICK.hold:g} s")
    parser.add_argument("--duration", type=float,
                        help=f"seconds of load, warm-up included (default {FULL.duration:g})")
    parser.add_argument("--rate", type=int, help=f"requests/s (default {FULL.rate})")
    parser.add_argument("--fault-every", type=float,
                        help=f"seconds between faults (default {FULL.fault_every:g})")
    parser.add_argument("--hold", type=float,
                        help=f"seconds a fault lasts (default {FULL.hold:g}); with a hold "
                             f"longer than --fault-every faults overlap")
    parser.add_argument("--burst", metavar="HEADS,BODIES,NEVER_READ",
                        help="connections of each kind in a slowloris burst (default "
                             f"{FULL.slow_headers},{FULL.slow_bodies},{FULL.never_read})")
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help="the rotation, comma-separated (default: "
                             + ",".join(FAULTS) + ")")
    parser.add_argument("--tolerance", type=float, default=0.05,
                        help="'back to baseline': after a fault, within this share of the "
                             "value before it (default 0.05)")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of every process started (default 0)")
    parser.add_argument("--json", type=Path, help="write the timeline and figures here")
    parser.add_argument("--skip-build", action="store_true",
                        help="use $CARGO_TARGET_DIR/release/blastwall as it is")
    parser.add_argument("--blastwall", type=Path, help="use this binary (no build)")
    parser.add_argument("--analyse", type=Path, metavar="JSON",
                        help="run nothing: print the report of a run saved with --json")
    args = parser.parse_args()
    if args.analyse:
        saved = json.loads(args.analyse.read_text())
        settings = Settings(**saved["info"]["settings"])
        print(report(analyse(saved, settings, tuple(saved["info"]["faults"]),
                             args.tolerance), settings))
        return 0
    settings = QUICK if args.quick else FULL
    if args.duration:
        settings.duration = args.duration
    if args.rate:
        settings.rate = args.rate
    if args.fault_every:
        settings.fault_every = args.fault_every
    if args.hold:
        settings.hold = args.hold
        settings.settle = max(settings.settle, args.hold + 5)
    if args.burst:
        try:
            settings.slow_headers, settings.slow_bodies, settings.never_read = (
                int(count) for count in args.burst.split(","))
        except ValueError:
            sys.exit("--burst takes three counts: HEADS,BODIES,NEVER_READ")
    kinds = tuple(kind for kind in args.faults.split(",") if kind)
    for kind in kinds:
        if kind not in FAULTS:
            sys.exit(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")
    if not kinds:
        sys.exit("--faults needs at least one fault")
    proxies.NICE = args.nice
    raise_fd_limit()
    # Ctrl-C and SIGTERM alike unwind through the `finally`s that stop what was started
    # (SIGINT too when a shell started us in the background with it ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    if args.blastwall:
        blastwall = args.blastwall.resolve()
    elif args.skip_build:
        blastwall = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release" \
            / "blastwall"
    else:
        blastwall = build_blastwall()
    workdir = Path(tempfile.mkdtemp(prefix="blastwall-soak-"))
    refused = check_blastwall_config(blastwall, soak_config([1, 2, 3], 0), workdir)
    if refused:
        sys.exit(f"blastwall check refuses the soak config:\n{refused}")
    version = subprocess.run([str(blastwall), "--version"], capture_output=True,
                             text=True).stdout.strip()
    info = {"machine": machine(), "blastwall": version, "settings": settings.__dict__,
            "faults": kinds, "nice": args.nice}
    log(f"{version}; {settings.duration:g} s at {settings.rate}/s, a fault every "
        f"{settings.fault_every:g} s ({', '.join(kinds)}); logs in {workdir}")

    procs = Processes(workdir)
    try:
        run = run_soak(procs, blastwall, settings, kinds, workdir)
    except KeyboardInterrupt:
        log(f"interrupted; everything started is stopped; logs kept in {workdir}")
        return 130
    except BaseException:
        log(f"failed; everything started is stopped; logs kept in {workdir}")
        raise
    finally:
        procs.stop_all()
    info["loadavg_at_end"] = Path("/proc/loadavg").read_text().strip()
    proxy_log = (workdir / "blastwall.log").read_text(errors="replace").splitlines()
    info["proxy_log"] = {"lines": len(proxy_log), "last": proxy_log[-20:]}
    shutil.rmtree(workdir, ignore_errors=True)
    summary = analyse(run, settings, kinds, args.tolerance)
    print()
    print(report(summary, settings))
    if args.json:
        args.json.write_text(json.dumps({
            "info": info, "summary": summary, "samples": run["samples"],
            "faults": run["faults"], "load": run["load"],
            "proxy_output": run["proxy_output"]}, indent=1) + "\n")
        log(f"timeline written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
