#!/usr/bin/env python3
"""Seven failures, three proxies: Blastwall, nginx and HAProxy in front of the same replicas.

Three `blastwall mock` replicas serve behind each proxy in turn; `blastwall load` sends
open-loop traffic at a fixed rate through the proxy while the script breaks the replicas
in the same way at the same moments for every proxy: a replica crashes (kill -9), turns
slow, or hangs (SIGSTOP); the whole dependency stops answering, or answers 503 (an
outage); the dependency is overloaded 3× with a quarter of the traffic high priority; the
dependency goes away and comes back. Blastwall runs one config; nginx and HAProxy run two
variants each (tuned for failures, tuned to the known capacity). For each run it prints
the client-visible error rate, p50/p99 latency (from each request's due time, so stalls
are not hidden) and retry amplification, then issue 19's table, and writes everything as
JSON. See bench/README.md ("Resilience benchmark") for what each scenario does.

The configs are in resilience_configs.py, the figures in resilience_targets.py. Python 3
standard library only; shares its helpers with bench/proxies.py. Run as root (it may
apt-get install nginx-light and haproxy; neither is started as a service).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import proxies
import resilience_targets
from proxies import (
    LOAD_CORE,
    PROXY_CORE,
    REPO,
    Processes,
    build_blastwall,
    check_answer,
    ensure_packages,
    free_port,
    log,
    machine,
    pinned,
    tool,
    wait_for_line,
    wait_for_port,
)
from resilience_configs import (  # noqa: F401 (soak.py imports the shared numbers from here)
    ANCHOR_VARIANTS,
    ATTEMPTS,
    BLASTWALL_CONFIGS,
    CONNECT_TIMEOUT_MS,
    HEALTH_INTERVAL_MS,
    OVERALL_TIMEOUT_MS,
    OVERLOAD_CAPACITY,
    PER_TRY_TIMEOUT_MS,
    REPLICAS,
    haproxy_config,
    nginx_config,
)

PROXIES = ("blastwall", "nginx", "haproxy")
SCENARIOS = ("crash", "gray", "hang", "down", "outage", "overload", "recovery")
# Scenarios with a side load of POSTs (no Idempotency-Key) to count double deliveries.
POST_SCENARIOS = ("crash", "hang", "overload")
POST_PATH = "/orders"
COUNTERS = ("requests", "ok", "duplicates")
CLIENT_TIMEOUT = "3s"         # the client gives up after the proxies have
# A healthy replica: 2-5 ms per request.
HEALTHY = {"latency": "2ms", "latency_jitter": "3ms"}
SLOW_BY_MS = 200              # gray failure: one replica this much slower
OUTAGE_DETECTED_AFTER_S = 1.0  # outage figures count from this long after it starts
OUTAGE_INTERVAL = "20ms"       # outage's timeline points (recovery target: 50 ms)
SIDE_POST_SHARE = 0.1         # side load of POSTs, as a share of the main rate
PROBE_EVERY_S = 0.02          # overload: one probe request this often
FAIL_FAST_MS = 100            # "failing fast": a timeline point's p99 below this
RECOVERED_OK_SHARE = 0.99     # "recovered": every later timeline point at least this ok


@dataclass
class Settings:
    rate: int            # requests per second offered by the client
    duration: float      # seconds of measured load per proxy and scenario
    warmup: float        # seconds of healthy load first (pools, EWMA), not measured
    interval: str = "100ms"


# 7 scenarios × 5 runs (Blastwall, nginx and HAProxy in two variants each): the full run
# takes about 12 minutes on 2 cores, the quick one about 4 (each run adds well under a
# second of starting and stopping; down adds the 2 s its last requests wait).
FULL = Settings(rate=300, duration=18, warmup=1.5)
QUICK = Settings(rate=150, duration=5, warmup=1)


# --------------------------------------------------------------------------------------
# Replicas: `blastwall mock` processes, changed at run time through their control API.


def mock_call(port: int, method: str, path: str, body: dict | None = None) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=payload,
                           headers={"content-type": "application/json"} if payload else {})
        response = connection.getresponse()
        text = response.read()
        if response.status != 200:
            raise RuntimeError(f"mock {port} {method} {path}: {response.status} {text!r}")
        return json.loads(text)
    finally:
        connection.close()


class Replica:
    """One mock process. It may be killed and restarted on the same port; `received()`
    counts requests across restarts (the control API's own calls are not counted)."""

    def __init__(self, index: int, procs: Processes, blastwall: Path, taskset: str) -> None:
        self.name = f"replica-{index}"
        self.index = index
        self.procs = procs
        self.blastwall = blastwall
        self.taskset = taskset
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.counted_before = dict.fromkeys(COUNTERS, 0)  # by processes since killed
        self.frozen: dict | None = None   # counters when paused (a stopped process answers nothing)
        self.start()

    def start(self) -> None:
        command = pinned(self.taskset, LOAD_CORE) + [
            str(self.blastwall), "mock", "--listen", f"127.0.0.1:{self.port}",
            "--name", self.name, "--seed", str(self.index),
            "--latency", HEALTHY["latency"], "--latency-jitter", HEALTHY["latency_jitter"]]
        env = dict(os.environ, TOKIO_WORKER_THREADS="1")
        self.process = self.procs.start(self.name, command, env=env, capture=True)
        line = wait_for_line(self.process, "mock ")
        self.port = int(line.rsplit(":", 1)[1])

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def behave(self, **changes: object) -> None:
        """Sets the behaviour: the healthy one with `changes` on top."""
        if self.alive():
            mock_call(self.port, "PUT", "/_mock/behaviour", {**HEALTHY, **changes})

    def counters(self) -> dict[str, int]:
        """`COUNTERS` of every process on this port so far (see `/_mock/stats`)."""
        if self.frozen is not None:
            return self.frozen
        live = dict.fromkeys(COUNTERS, 0)
        if self.alive():
            stats = mock_call(self.port, "GET", "/_mock/stats")
            live = {"requests": stats["requests"], "ok": stats["answered_by_class"][1],
                    # An older mock has no duplicate counter: None says "not counted".
                    "duplicates": stats.get("duplicates")}
        return {name: (None if live[name] is None or self.counted_before[name] is None
                       else self.counted_before[name] + live[name])
                for name in COUNTERS}

    def received(self) -> int:
        return self.counters()["requests"]

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets open and answers nothing (a hang)."""
        if self.alive() and self.frozen is None:
            self.frozen = self.counters()
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.alive() and self.frozen is not None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.frozen = None

    def kill(self) -> None:
        """kill -9: every connection drops at once, new ones are refused."""
        if not self.alive():
            return
        self.resume()
        try:
            self.counted_before = self.counters()
        except (OSError, RuntimeError):
            pass
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.procs.stop(self.process)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.resume()
            self.procs.stop(self.process)
            self.process = None


# --------------------------------------------------------------------------------------
# Proxies: started with their configs from resilience_configs.py.


def check_blastwall_config(blastwall: Path, text: str, workdir: Path) -> str | None:
    """None when `blastwall check` accepts the config, else what it said."""
    path = workdir / "check.toml"
    path.write_text(text)
    done = subprocess.run([str(blastwall), "check", str(path)], capture_output=True,
                          text=True)
    return None if done.returncode == 0 else (done.stdout + done.stderr).strip()


@dataclass
class Proxy:
    name: str
    port: int
    process: subprocess.Popen


def run_key(proxy: str, variant: str) -> str:
    """How a run is named in the results: `blastwall` (it runs one config), or
    `nginx/capacity`: an anchor and its variant."""
    return proxy if proxy == "blastwall" else f"{proxy}/{variant}"


def run_label(key: str) -> str:
    proxy, _, variant = key.partition("/")
    return f"{proxy} ({variant})" if variant else proxy


def start_proxy(name: str, procs: Processes, blastwall: Path, paths: dict[str, str],
                workdir: Path, ports: list[int], variant: str) -> Proxy:
    """Starts `name` with `variant`: Blastwall's config name, or an anchor's variant."""
    taskset = pinned(paths["taskset"], PROXY_CORE)
    if name == "blastwall":
        config = workdir / "blastwall.toml"
        config.write_text(BLASTWALL_CONFIGS[variant](ports))
        env = dict(os.environ, TOKIO_WORKER_THREADS="1")
        process = procs.start("blastwall", taskset + [
            str(blastwall), "run", "-c", str(config), "--log", "warn", "--no-watch"],
            env=env, capture=True)
        line = wait_for_line(process, "listener ")
        port = int(line.rsplit(":", 1)[1])
        wait_for_line(process, "blastwall ready")
    elif name == "nginx":
        port = free_port()
        config = workdir / "nginx.conf"
        config.write_text(nginx_config(workdir, port, ports, variant))
        process = procs.start("nginx", taskset + [
            paths["nginx"], "-c", str(config), "-p", str(workdir),
            "-e", str(workdir / "nginx.error.log")])
        wait_for_port(port, process)
    else:
        port = free_port()
        config = workdir / "haproxy.cfg"
        config.write_text(haproxy_config(port, ports, variant))
        process = procs.start("haproxy", taskset + [paths["haproxy"], "-f", str(config),
                                                    "-db"])
        wait_for_port(port, process)
    check_answer(port)
    return Proxy(name, port, process)


# --------------------------------------------------------------------------------------
# Load: `blastwall load`, open loop, with faults at fixed offsets from its start.


@dataclass
class Fault:
    at: float                      # seconds after the load started
    what: str
    act: object                    # callable()
    happened: float | None = None  # when it was done, seconds after the load started


def connections_for(settings: Settings) -> int:
    # Enough connections that a client timeout's worth of requests can be in flight,
    # so the client stays open-loop even while every request hangs.
    return min(2000, math.ceil(settings.rate * 3.2))


def run_load(procs: Processes, blastwall: Path, taskset: str, port: int, settings: Settings,
             seconds: float, faults: list[Fault], mix: str | None, label: str) -> dict:
    command = pinned(taskset, LOAD_CORE) + [
        str(blastwall), "load", f"http://127.0.0.1:{port}/", "--rate", str(settings.rate),
        "--duration", f"{seconds}s", "--connections", str(connections_for(settings)),
        "--timeout", CLIENT_TIMEOUT, "--timeline-interval", settings.interval, "--json"]
    if mix:
        command += ["--header-mix", mix]
    process = procs.start(label, command, capture=True)
    # The start line goes to stderr, which Processes sends to the log file.
    deadline = time.monotonic() + 30
    while "load started" not in process.log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"blastwall load did not start: {process.log.read_text()}")
        time.sleep(0.005)
    started = time.monotonic()
    try:
        for fault in sorted(faults, key=lambda fault: fault.at):
            delay = started + fault.at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            fault.act()
            fault.happened = time.monotonic() - started
            log(f"  {fault.happened:5.2f}s {fault.what}")
        stdout, _ = process.communicate(timeout=seconds + 30)
    finally:
        # Stops the load too if a fault could not be injected.
        procs.stop(process)
    if process.returncode != 0:
        raise RuntimeError(f"blastwall load failed: {process.log.read_text()[-2000:]}")
    return json.loads(stdout)


# --------------------------------------------------------------------------------------
# Scenarios: what breaks, when, and what is measured.


def overload_shape(settings: Settings) -> dict:
    """Overload's replicas: service time such that the cluster's capacity (replicas ×
    capacity ÷ service time) is a third of the offered rate."""
    latency_ms = round(3 * REPLICAS * OVERLOAD_CAPACITY * 1000 / settings.rate)
    return {"service_ms": latency_ms,
            "capacity_per_s": REPLICAS * OVERLOAD_CAPACITY * 1000 / latency_ms}


def total_counters(replicas: list[Replica]) -> dict[str, int | None]:
    """The replicas' `COUNTERS` summed (None if one of them does not count it)."""
    each = [replica.counters() for replica in replicas]
    return {name: (None if any(c[name] is None for c in each) else sum(c[name] for c in each))
            for name in COUNTERS}


def scenario_faults(name: str, replicas: list[Replica], settings: Settings,
                    down_mode: str, marks: dict) -> tuple[list[Fault], str | None]:
    """The faults of a scenario (offsets from the load's start) and its header mix. Acts
    that measure put the replicas' counters (and when, in `<mark>_at`) into `marks`."""
    d = settings.duration
    first = replicas[0]

    def mark(key: str, started: float) -> None:
        marks[key] = total_counters(replicas)
        marks[f"{key}_at"] = started
    if name == "crash":
        return [Fault(d / 3, f"kill -9 {first.name}", first.kill)], None
    if name == "gray":
        slow = {"latency": f"{2 + SLOW_BY_MS}ms"}
        return [Fault(d / 3, f"{first.name} +{SLOW_BY_MS}ms", lambda: first.behave(**slow))], None
    if name == "hang":
        # SIGCONT comes when the replica is stopped, after the load.
        return [Fault(d / 3, f"SIGSTOP {first.name}", first.pause)], None
    if name == "outage":
        def outage() -> None:
            for replica in replicas:
                replica.behave(status=503)

        def recover() -> None:
            mark("outage_ended", 3 * d / 4)
            for replica in replicas:
                replica.behave()
        return [Fault(d / 4, "every replica answers 503 (no Retry-After)", outage),
                Fault(d / 4 + OUTAGE_DETECTED_AFTER_S, "(outage figures measured from here)",
                      lambda: mark("outage_measured", d / 4 + OUTAGE_DETECTED_AFTER_S)),
                Fault(3 * d / 4, "every replica answers again", recover)], None
    if name == "down":
        def down() -> None:
            for replica in replicas:
                replica.behave(mode=down_mode)
        return [Fault(d / 3, f"every replica: mode {down_mode}", down)], None
    if name == "overload":
        latency_ms = overload_shape(settings)["service_ms"]

        def overload() -> None:
            for replica in replicas:
                replica.behave(capacity=OVERLOAD_CAPACITY, latency=f"{latency_ms}ms",
                               latency_jitter="0ms")
        return ([Fault(0, f"every replica: capacity {OVERLOAD_CAPACITY} at {latency_ms}ms "
                          f"(3× overload)", overload)],
                "x-blastwall-priority=high:0.25,low:0.75")
    if name == "recovery":
        def kill_all() -> None:
            for replica in replicas:
                replica.kill()

        def restart_all() -> None:
            for replica in replicas:
                replica.start()
        return [Fault(d / 4, "kill -9 every replica", kill_all),
                Fault(d / 2, "restart every replica", restart_all)], None
    raise ValueError(name)


def percent(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def from_point(timeline: list[dict], interval: float, since: float) -> list[dict]:
    """The timeline points from the one `since` falls in, those without requests left out."""
    return [p for p in timeline
            if p["t"] + interval > since + 1e-9 and p["ok"] + p["failed"] > 0]


def time_until(timeline: list[dict], interval: float, since: float,
               good: object) -> float | None:
    """Seconds from `since` to the start of the first timeline point from which every
    later point with requests is `good` (0 if the point `since` falls in already is);
    None if the run ended before that."""
    points = from_point(timeline, interval, since)
    first_good = None
    for point in points:
        if good(point):
            if first_good is None:
                first_good = point["t"]
        else:
            first_good = None
    return None if first_good is None else max(0.0, first_good - since)


def analyse(name: str, report: dict, faults: list[Fault], received: int,
            received_after_fault: int, side: dict | None = None) -> dict:
    """The run's figures; `side` is the side POST load's, whose requests count as sent."""
    total = report["total"]
    fault_at = faults[0].happened or 0.0
    sent = report["sent"] + (side["sent"] if side else 0)
    # Requests due from the fault on (the timetable is fixed: index / rate).
    due_after_fault = max(1, report["requests"] - math.floor(fault_at * report["rate"])
                          + (side["rate"] * (report["elapsed_s"] - fault_at) if side else 0))
    result = {
        "requests": report["requests"],
        "sent": sent,
        "achieved_rate": report["achieved_rate"],
        "error_rate": total["error_rate"],
        "p50_ms": total["latency_us"]["p50"] / 1000,
        "p99_ms": total["latency_us"]["p99"] / 1000,
        "max_ms": total["latency_us"]["max"] / 1000,
        "statuses": total["statuses"],
        "errors": total["errors"],
        "upstream_requests": received,
        "amplification": percent(received, sent),
        "upstream_requests_after_fault": received_after_fault,
        "amplification_after_fault": received_after_fault / due_after_fault,
        "faults": [{"at": f.happened, "what": f.what} for f in faults],
    }
    timeline = report["timeline"]
    interval = report["timeline_interval_s"]
    after = from_point(timeline, interval, fault_at)
    result["error_rate_after_fault"] = percent(sum(p["failed"] for p in after),
                                               sum(p["ok"] + p["failed"] for p in after))
    if name == "down":
        result["time_to_fail_fast_s"] = time_until(
            timeline, interval, fault_at, lambda p: p["p99_us"] < FAIL_FAST_MS * 1000)
    if name == "recovery":
        back_at = faults[-1].happened or 0.0
        result["time_to_recover_s"] = time_until(
            timeline, interval, back_at,
            lambda p: p["ok"] / (p["ok"] + p["failed"]) >= RECOVERED_OK_SHARE)
    if name == "overload":
        result["classes"] = {
            class_name.split("=", 1)[1]: {
                "error_rate": tally["error_rate"],
                "p50_ms": tally["latency_us"]["p50"] / 1000,
                "p99_ms": tally["latency_us"]["p99"] / 1000,
                "statuses": tally["statuses"],
            }
            for class_name, tally in zip(report["class_names"], report["classes"])}
    return result


def start_side_posts(procs: Processes, blastwall: Path, taskset: str, port: int,
                     settings: Settings, label: str) -> tuple[subprocess.Popen, float]:
    """A second `blastwall load` beside the main one: POSTs without an Idempotency-Key to
    `POST_PATH`, so the mocks can count the ones a proxy delivered twice."""
    rate = max(5.0, settings.rate * SIDE_POST_SHARE)
    command = pinned(taskset, LOAD_CORE) + [
        str(blastwall), "load", f"http://127.0.0.1:{port}{POST_PATH}", "--method", "POST",
        "--body", "{}", "-H", "content-type: application/json",
        "--rate", f"{rate:g}", "--duration", f"{settings.duration}s",
        "--connections", str(math.ceil(rate * 3.2)), "--timeout", CLIENT_TIMEOUT,
        "--timeline-interval", "1s", "--json"]
    return procs.start(label, command, capture=True), rate


def finish_side_posts(procs: Processes, process: subprocess.Popen, rate: float) -> dict:
    try:
        stdout, _ = process.communicate(timeout=60)
    finally:
        procs.stop(process)
    if process.returncode != 0:
        raise RuntimeError(f"side POST load failed: {process.log.read_text()[-2000:]}")
    report = json.loads(stdout)
    total = report["total"]
    return {"rate": rate, "sent": report["sent"], "failed": total["failed"],
            "max_ms": total["latency_us"]["max"] / 1000, "error_rate": total["error_rate"],
            "statuses": total["statuses"]}


class RefusalProbe(threading.Thread):
    """Overload: one low-priority GET every `PROBE_EVERY_S` on a connection of its own,
    recording each answer's status, latency and whether it carries Retry-After (the load
    client does not keep headers). Status 0 is a request that got no answer."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.answers: list[dict] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        connection = None
        while not self.stopping.wait(PROBE_EVERY_S):
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=3)
            started = time.monotonic()
            try:
                connection.request("GET", "/", headers={"x-blastwall-priority": "low"})
                response = connection.getresponse()
                response.read()
                status, retry_after = response.status, response.getheader("retry-after")
            except (OSError, http.client.HTTPException):
                connection.close()
                connection, status, retry_after = None, 0, None
            self.answers.append({"status": status, "retry_after": retry_after is not None,
                                 "ms": (time.monotonic() - started) * 1000})
        if connection is not None:
            connection.close()


def run_scenario(scenario: str, proxy_name: str, procs: Processes, blastwall: Path,
                 paths: dict[str, str], settings: Settings, variant: str,
                 down_mode: str) -> dict:
    key = run_key(proxy_name, variant)
    label = key.replace("/", "-")
    workdir = Path(tempfile.mkdtemp(prefix=f"resilience-{scenario}-{label}-",
                                    dir=procs.logs))
    replicas = [Replica(i, procs, blastwall, paths["taskset"]) for i in range(REPLICAS)]
    proxy = None
    try:
        ports = [replica.port for replica in replicas]
        proxy = start_proxy(proxy_name, procs, blastwall, paths, workdir, ports, variant)
        run_load(procs, blastwall, paths["taskset"], proxy.port, settings, settings.warmup,
                 [], None, f"warmup-{scenario}-{label}")
        marks: dict = {}
        faults, mix = scenario_faults(scenario, replicas, settings, down_mode, marks)
        side = None
        if scenario in POST_SCENARIOS:
            side = start_side_posts(procs, blastwall, paths["taskset"], proxy.port,
                                    settings, f"posts-{scenario}-{label}")
        probe = RefusalProbe(proxy.port) if scenario == "overload" else None
        if probe is not None:
            probe.start()
        counters_before = total_counters(replicas)
        # What the replicas had received when the first fault struck, for the
        # amplification of the faulty part of the run.
        at_fault: dict[str, int] = {}
        first_act = faults[0].act

        def snapshot_then_act() -> None:
            at_fault["received"] = total_counters(replicas)["requests"]
            marks["fault_at"] = faults[0].at
            first_act()
        faults[0].act = snapshot_then_act
        try:
            # Outage: recovery is judged against 50 ms, so finer timeline points.
            measured = replace(settings, interval=OUTAGE_INTERVAL) if scenario == "outage" \
                else settings
            report = run_load(procs, blastwall, paths["taskset"], proxy.port, measured,
                              settings.duration, faults, mix,
                              f"load-{scenario}-{label}")
        finally:
            if probe is not None:
                probe.stopping.set()
                probe.join(timeout=5)
        side_report = finish_side_posts(procs, *side) if side else None
        counters_after = total_counters(replicas)
        before, after = counters_before["requests"], counters_after["requests"]
        result = analyse(scenario, report, faults, after - before,
                         after - at_fault.get("received", before), side_report)
        raw = {"report": report, "marks": marks, "side": side_report,
               "counters_before": counters_before, "counters_after": counters_after,
               "probe": probe.answers if probe else [],
               "overload": overload_shape(settings)}
        result["proxy"], result["variant"] = proxy_name, variant
        result["issue19"] = resilience_targets.figures(scenario, raw)
        # Everything the figures come from, so they can be recomputed from the JSON.
        result["side_posts"] = side_report
        result["marks"] = marks
        result["counters"] = {"before": counters_before, "after": counters_after}
        result["probe"] = raw["probe"]
        result["report"] = report
        return result
    finally:
        if proxy is not None:
            procs.stop(proxy.process)
        for replica in replicas:
            replica.stop()


# --------------------------------------------------------------------------------------
# Report.


def fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def note(scenario: str, row: dict) -> str:
    if scenario == "down":
        return ("fails fast after " + fmt(row.get("time_to_fail_fast_s"), "{:.1f} s")
                if row.get("time_to_fail_fast_s") is not None else "never fails fast")
    if scenario == "recovery":
        return ("back after " + fmt(row.get("time_to_recover_s"), "{:.1f} s")
                if row.get("time_to_recover_s") is not None else "not back by the end")
    if scenario == "overload":
        classes = row.get("classes", {})
        return "; ".join(f"{name}: {fmt(c['error_rate'], '{:.1%}')} errors, "
                         f"p99 {fmt(c['p99_ms'], '{:.0f}')} ms"
                         for name, c in classes.items())
    return "errors after the fault " + fmt(row.get("error_rate_after_fault"), "{:.1%}")


def table(results: dict[str, dict[str, dict]]) -> str:
    lines = ["| scenario | proxy | error rate | p50 ms | p99 ms "
             "| retry amplification (from the fault) | |",
             "|---|---|---|---|---|---|---|"]
    for scenario, rows in results.items():
        for key, row in rows.items():
            if "failed" in row:
                lines.append(f"| {scenario} | {run_label(key)} | failed: {row['failed']} "
                             f"| | | | |")
                continue
            lines.append(
                f"| {scenario} | {run_label(key)} | {fmt(row['error_rate'], '{:.2%}')} "
                f"| {fmt(row['p50_ms'], '{:.1f}')} | {fmt(row['p99_ms'], '{:.0f}')} "
                f"| {fmt(row['amplification_after_fault'], '{:.2f}×')} "
                f"| {note(scenario, row)} |")
    return "\n".join(lines)


def tool_versions(paths: dict[str, str], blastwall: Path) -> dict[str, str]:
    def first_line(command: list[str]) -> str:
        done = subprocess.run(command, capture_output=True, text=True)
        text = (done.stdout or done.stderr).strip()
        return text.splitlines()[0] if text else "?"

    found = {"blastwall": first_line([str(blastwall), "--version"])}
    for name in ("nginx", "haproxy"):
        if paths.get(name):
            found[name] = first_line([paths[name], "-v"])
    return found


def raise_fd_limit() -> None:
    # Thousands of client, proxy and upstream sockets; children inherit the limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {QUICK.duration:g} s per scenario and proxy at "
                             f"{QUICK.rate}/s (full: {FULL.duration:g} s at {FULL.rate}/s)")
    parser.add_argument("--rate", type=int, help="requests per second offered")
    parser.add_argument("--duration", type=float, help="seconds of load per scenario")
    parser.add_argument("--proxies", default=",".join(PROXIES),
                        help="comma-separated subset of " + ",".join(PROXIES))
    parser.add_argument("--variants", default=",".join(ANCHOR_VARIANTS),
                        help="the anchors' variants, each run in every scenario: "
                             "comma-separated subset of " + ",".join(ANCHOR_VARIANTS)
                             + " (failure: passive health, retries on 5xx; capacity: "
                             "max_conns / maxconn at the replicas' capacity)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma-separated subset of " + ",".join(SCENARIOS))
    parser.add_argument("--blastwall-config", choices=("auto", "today", "issue4", "issue19"),
                        default="auto",
                        help="issue19: the round-two config, one for every scenario, no "
                             "capacity written (adaptive limit, hedging; "
                             "blastwall_issue19 in resilience_configs.py); issue4: retries, "
                             "budget, breakers, outlier detection, a bulkhead of 6 and "
                             "fallbacks; "
                             "today: only keys that existed before issue 4; auto (default): "
                             "the first of issue19, issue4, today that `blastwall check` "
                             "accepts, with a warning if not issue19")
    parser.add_argument("--down-mode", choices=("hang", "reset"), default="hang",
                        help="how the dependency is down in scenario 'down' (default "
                             "hang: requests never answered)")
    parser.add_argument("--nice", type=int, default=-10,
                        help="niceness of every process started (default -10)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--skip-install", action="store_true")
    parser.add_argument("--skip-build", action="store_true",
                        help="use $CARGO_TARGET_DIR/release/blastwall as it is")
    parser.add_argument("--blastwall", type=Path,
                        help="use this blastwall binary (no build)")
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL
    if args.rate:
        settings.rate = args.rate
    if args.duration:
        settings.duration = args.duration
    proxies.NICE = args.nice
    chosen_proxies = [p for p in args.proxies.split(",") if p]
    chosen_scenarios = [s for s in args.scenarios.split(",") if s]
    for name in chosen_proxies:
        if name not in PROXIES:
            sys.exit(f"unknown proxy {name!r}")
    for name in chosen_scenarios:
        if name not in SCENARIOS:
            sys.exit(f"unknown scenario {name!r}")
    chosen_variants = [v for v in args.variants.split(",") if v]
    for name in chosen_variants:
        if name not in ANCHOR_VARIANTS:
            sys.exit(f"unknown variant {name!r} (known: {', '.join(ANCHOR_VARIANTS)})")
    if not chosen_variants and any(p != "blastwall" for p in chosen_proxies):
        sys.exit("--variants is empty: nginx and HAProxy need at least one")
    if os.cpu_count() is None or os.cpu_count() < 2:
        sys.exit("needs at least 2 CPUs (core 0 for proxies, core 1 for load + replicas)")
    raise_fd_limit()

    wanted = tuple(p for p in ("nginx", "haproxy") if p in chosen_proxies)
    paths = ensure_packages(wanted) if not args.skip_install else {
        name: tool(name) for name in (*wanted, "taskset")}
    if args.blastwall:
        blastwall = args.blastwall.resolve()
    elif args.skip_build:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        blastwall = target / "release" / "blastwall"
    else:
        blastwall = build_blastwall()

    workdir = Path(tempfile.mkdtemp(prefix="blastwall-resilience-"))
    blastwall_config = args.blastwall_config
    refusals = {name: check_blastwall_config(blastwall, BLASTWALL_CONFIGS[name]([1, 2, 3]),
                                             workdir)
                for name in ("issue19", "issue4")}
    if blastwall_config == "auto":
        blastwall_config = next(
            (name for name in ("issue19", "issue4") if not refusals[name]), "today")
        if blastwall_config != "issue19":
            log(f"WARNING: this blastwall refuses the issue 19 config, so it runs with "
                f"{blastwall_config}'s:\n" + refusals["issue19"])
    elif blastwall_config in refusals and refusals[blastwall_config]:
        sys.exit(f"blastwall check refuses the {blastwall_config} config:\n"
                 f"{refusals[blastwall_config]}")

    info = {"machine": machine(), "versions": tool_versions(paths, blastwall),
            "settings": settings.__dict__, "blastwall_config": blastwall_config,
            "variants": chosen_variants,
            "down_mode": args.down_mode, "nice": args.nice,
            "connections": connections_for(settings)}
    log(f"versions: {info['versions']}; blastwall config: {blastwall_config}")

    procs = Processes(workdir)
    results: dict[str, dict[str, dict]] = {}
    # (proxy, variant): Blastwall once with its config, each anchor once per variant.
    runs = [(proxy_name, blastwall_config if proxy_name == "blastwall" else anchor_variant)
            for proxy_name in chosen_proxies
            for anchor_variant in (chosen_variants if proxy_name != "blastwall" else [None])]
    count = len(runs) * len(chosen_scenarios)
    log(f"{count} runs of {settings.warmup:g} + {settings.duration:g} s: about "
        f"{count * (settings.warmup + settings.duration + 0.5) / 60:.0f} min")
    started = time.monotonic()
    try:
        for scenario in chosen_scenarios:
            results[scenario] = {}
            for proxy_name, run_variant in runs:
                key = run_key(proxy_name, run_variant)
                log(f"{scenario} / {run_label(key)}: {settings.duration:g} s at "
                    f"{settings.rate}/s")
                try:
                    row = run_scenario(scenario, proxy_name, procs, blastwall, paths,
                                       settings, run_variant, args.down_mode)
                except (RuntimeError, OSError, ValueError,
                        subprocess.TimeoutExpired) as error:
                    log(f"  FAILED: {error}")
                    row = {"failed": str(error)}
                else:
                    log(f"  error rate {row['error_rate']:.2%}, p50 {row['p50_ms']:.1f} ms, "
                        f"p99 {row['p99_ms']:.0f} ms, amplification from the fault "
                        f"{fmt(row['amplification_after_fault'], '{:.2f}')}; "
                        f"{note(scenario, row)}")
                results[scenario][key] = row
    except BaseException:
        log(f"interrupted; configs and logs kept in {workdir}")
        raise
    finally:
        procs.stop_all()
    info["run_time_s"] = round(time.monotonic() - started, 1)
    log(f"ran for {info['run_time_s']:.0f} s")
    failed = any("failed" in row for rows in results.values() for row in rows.values())
    if failed:
        log(f"some runs failed; configs and logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(f"{settings.rate} requests/s for {settings.duration:g} s per scenario and proxy, "
          f"{REPLICAS} replicas, blastwall config: {blastwall_config}, anchors' variants: "
          f"{', '.join(chosen_variants)}. Latency from each request's "
          f"due time (open loop); amplification = requests the replicas received ÷ "
          f"requests the client sent, both from the first fault on.")
    print()
    print(table(results))
    print()
    print("Issue 19's figures (see bench/README.md, \"Resilience benchmark\", for how each is "
          "computed):")
    print()
    print(resilience_targets.table(results, chosen_proxies))
    if args.json:
        args.json.write_text(json.dumps({"info": info, "results": results}, indent=2) + "\n")
        log(f"figures written to {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
