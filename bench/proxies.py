#!/usr/bin/env python3
"""Blastwall against nginx and HAProxy (and no proxy at all), one core each.

Every proxy runs pinned to core 0 with one worker; the load generator (wrk) and the one
upstream all proxies share are pinned to core 1. For each proxy, and for the direct path,
the script measures closed-loop throughput, latency at a paced rate below saturation, the
proxy's CPU time per request and its peak RSS, over interleaved rounds, and prints medians
and ratios. See bench/README.md for what the figures mean and how noisy they are.

Only the Python standard library is used. Run as root (it may apt-get install nginx-light,
haproxy and wrk; none of them is started as a service).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROXY_CORE = "0"
LOAD_CORE = "1"
TARGETS = ("blastwall", "nginx", "haproxy", "direct")
# With --full: Blastwall with every mechanism of issue 19 on (bench/full.toml) as well.
FULL_TARGET = "blastwall-full"
BLASTWALLS = ("blastwall", FULL_TARGET)
# Niceness of every process we start (set from --nice): the same for all of them, so
# other work on the machine takes less from whichever target is being measured.
NICE = 0


def renice_session(pid: int) -> None:
    """Gives the process's scheduler autogroup the niceness NICE too.

    Each process we start leads its own session, and with autogroup scheduling (the
    default) the kernel shares a core between sessions before it looks at niceness, so a
    process's own nice value alone would not matter against other sessions' work.
    """
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(NICE))
    except OSError:
        pass


def pinned(taskset: str, core: str) -> list[str]:
    """Command prefix running a program on `core` at niceness NICE (same pid: both exec)."""
    return ["nice", "-n", str(NICE), taskset, "-c", core]


@dataclass
class Settings:
    rounds: int
    warmup: float
    closed_seconds: int
    closed_connections: int
    paced_seconds: int
    paced_connections: int
    paced_mean_delay_ms: int
    paced_rate: int
    calibrate_seconds: int
    quiet_wait: float
    retries: int
    max_foreign: float = 0.15


FULL = Settings(
    rounds=3,
    warmup=3,
    closed_seconds=10,
    closed_connections=50,
    paced_seconds=10,
    paced_connections=50,
    paced_mean_delay_ms=10,
    paced_rate=4500,
    calibrate_seconds=5,
    quiet_wait=20,
    retries=2,
)
QUICK = Settings(
    rounds=1,
    warmup=1,
    closed_seconds=2,
    closed_connections=50,
    paced_seconds=2,
    paced_connections=50,
    paced_mean_delay_ms=10,
    paced_rate=4500,
    calibrate_seconds=1,
    quiet_wait=5,
    retries=0,
)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Setup: packages and the blastwall binary.


def tool(name: str) -> str | None:
    """Finds a tool on PATH or in the sbin directories (nginx lives in /usr/sbin)."""
    found = shutil.which(name)
    if found:
        return found
    for directory in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    return None


def ensure_packages(names: tuple[str, ...] = ("nginx", "haproxy", "wrk")) -> dict[str, str]:
    """Installs the tools `names` (nginx, haproxy, wrk) from Debian if missing, without
    starting services, and returns their paths and taskset's."""
    missing = [name for name in names if tool(name) is None]
    if missing:
        log(f"installing {', '.join(missing)} with apt-get")
        policy = Path("/usr/sbin/policy-rc.d")
        # policy-rc.d exiting 101 tells the packages' maintainer scripts not to start the
        # services: nginx and haproxy run here only as our own foreground processes.
        created_policy = False
        if not policy.exists():
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
            created_policy = True
        try:
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
            packages = {"nginx": "nginx-light", "haproxy": "haproxy", "wrk": "wrk"}
            wanted = [packages[name] for name in missing]
            install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends"]
            if subprocess.run(install + wanted, env=env).returncode != 0:
                wanted = ["nginx" if p == "nginx-light" else p for p in wanted]
                subprocess.run(install + wanted, check=True, env=env)
        finally:
            if created_policy:
                policy.unlink()
    paths = {}
    for name in (*names, "taskset"):
        path = tool(name)
        if path is None:
            sys.exit(f"{name} is still missing after installing")
        paths[name] = path
    return paths


def build_blastwall() -> Path:
    log("building blastwall (cargo build --release -p blastwall)")
    subprocess.run(["cargo", "build", "--release", "-p", "blastwall"], cwd=REPO, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = target / "release" / "blastwall"
    if not binary.exists():
        sys.exit(f"built, but {binary} is missing")
    return binary


def versions(paths: dict[str, str], blastwall: Path) -> dict[str, str]:
    def first_line(command: list[str]) -> str:
        done = subprocess.run(command, capture_output=True, text=True)
        text = (done.stdout or done.stderr).strip()
        return text.splitlines()[0] if text else "?"

    return {
        "blastwall": first_line([str(blastwall), "--version"]),
        "nginx": first_line([paths["nginx"], "-v"]),
        "haproxy": first_line([paths["haproxy"], "-v"]),
        "wrk": first_line([paths["wrk"], "-v"]),
    }


# --------------------------------------------------------------------------------------
# Processes: start pinned, wait until ready, account CPU and memory, stop by pid.


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process {process.pid} exited with {process.returncode}: "
                               f"{process.log.read_text().strip()[-1000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


def wait_for_line(process: subprocess.Popen, prefix: str, timeout: float = 15) -> str:
    """Reads stdout until a line starts with `prefix` (readiness lines of blastwall)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"process {process.pid} closed stdout before {prefix!r}")
        if line.startswith(prefix):
            return line.strip()
    raise RuntimeError(f"no {prefix!r} line within {timeout}s")


def check_answer(port: int, expect_header: str | None = None) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/")
    response = connection.getresponse()
    body = response.read()
    connection.close()
    if response.status != 200 or body != b"ok\n":
        raise RuntimeError(f"port {port} answered {response.status} {body!r}, not 200 ok")
    if expect_header and response.getheader(expect_header) is None:
        raise RuntimeError(f"port {port} answered without {expect_header}")


def process_tree(pid: int) -> list[int]:
    pids, stack = [], [pid]
    while stack:
        current = stack.pop()
        pids.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(child) for child in children)
        except OSError:
            pass
    return pids


def cpu_user_system(pid: int) -> tuple[float, float]:
    """utime and stime of a process and its children processes (nginx's workers)."""
    user = system = 0
    for member in process_tree(pid):
        try:
            after_comm = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(after_comm[11])
        system += int(after_comm[12])
    return user / CLK_TCK, system / CLK_TCK


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its children processes (nginx's workers)."""
    return sum(cpu_user_system(pid))


def peak_rss_kib(pid: int) -> int:
    """VmHWM summed over the process tree (shared pages are counted once per process)."""
    total = 0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def threads(pid: int) -> dict[str, object]:
    """Thread names (counted) and the CPUs each process of the tree may run on."""
    names: dict[str, int] = {}
    allowed = set()
    for member in process_tree(pid):
        try:
            tasks = list(Path(f"/proc/{member}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                name = (task / "comm").read_text().strip()
                status = (task / "status").read_text()
            except OSError:
                continue
            names[name] = names.get(name, 0) + 1
            for line in status.splitlines():
                if line.startswith("Cpus_allowed_list:"):
                    allowed.add(line.split()[1])
    return {"threads": names, "cpus_allowed": sorted(allowed)}


def core_seconds() -> dict[str, dict[str, float]]:
    """Per CPU from /proc/stat: time running tasks (user, nice, system) and in interrupts
    (irq, softirq: loopback TCP receive work lands here), in seconds."""
    cores = {}
    for line in Path("/proc/stat").read_text().splitlines():
        parts = line.split()
        if parts[0].startswith("cpu") and parts[0] != "cpu":
            user, nice, system, _idle, _iowait, irq, softirq = map(int, parts[1:8])
            cores[parts[0][3:]] = {"tasks": (user + nice + system) / CLK_TCK,
                                   "irq": (irq + softirq) / CLK_TCK}
    return cores


def wait_quiet(limit: float, threshold: float = 0.10) -> dict[str, float]:
    """Waits (at most `limit` seconds) until no core is more than `threshold` busy over a
    one-second sample: other work on this 2-core machine skews every figure. Returns the
    last sample's busy shares."""
    deadline = time.monotonic() + limit
    while True:
        before = core_seconds()
        time.sleep(1)
        after = core_seconds()
        busy = {core: (after[core]["tasks"] + after[core]["irq"]
                       - before[core]["tasks"] - before[core]["irq"])
                for core in after}
        if max(busy.values()) <= threshold or time.monotonic() >= deadline:
            return busy
        time.sleep(2)


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Processes:
    """Everything this script started, stopped by pid (never by name)."""

    def __init__(self, logs: Path) -> None:
        self.started: list[subprocess.Popen] = []
        self.logs = logs

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None,
              capture: bool = False) -> subprocess.Popen:
        """Starts `command` in its own session; its stderr goes to `<logs>/<name>.log`."""
        with open(self.logs / f"{name}.log", "a") as stderr:
            process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                stderr=stderr,
                text=True,
                start_new_session=True,
            )
        process.log = self.logs / f"{name}.log"
        renice_session(process.pid)
        self.started.append(process)
        return process

    def stop(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            tree = process_tree(process.pid)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                for pid in reversed(tree):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                process.wait()
        if process.stdout:
            process.stdout.close()
        if process in self.started:
            self.started.remove(process)

    def stop_all(self) -> None:
        for process in list(self.started):
            self.stop(process)


# --------------------------------------------------------------------------------------
# Configs of the three proxies: the same work (forward, keep-alive both sides, add
# X-Forwarded-For/-Proto and a request id) so the comparison is of the proxies.


def blastwall_config(upstream: int) -> str:
    # One thread: tokio's current-thread runtime, everything on the main thread.
    return f"""
[proxy]
worker_threads = 1

[[listener]]
name = "bench"
listen = "127.0.0.1:0"

[[route]]
name = "all"
cluster = "upstream"

[cluster.upstream]
balance = "round_robin"
endpoints = [{{ address = "127.0.0.1:{upstream}" }}]
"""


def blastwall_full_config(upstream: int) -> str:
    """The bare config's proxy and listener, with bench/full.toml's route and cluster:
    issue 19's "every mechanism on" (the same file bench/callgrind.sh's `full` reads)."""
    mechanisms = (REPO / "bench" / "full.toml").read_text()
    return f"""
[proxy]
worker_threads = 1

[[listener]]
name = "bench"
listen = "127.0.0.1:0"

{mechanisms.replace("@UPSTREAM@", str(upstream))}"""


def nginx_proxy_config(workdir: Path, port: int, upstream: int) -> str:
    return f"""
worker_processes 1;
daemon off;
pid {workdir}/nginx-proxy.pid;
error_log {workdir}/nginx-proxy.error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/nginx-body;
    proxy_temp_path {workdir}/nginx-proxy-temp;
    fastcgi_temp_path {workdir}/nginx-fastcgi;
    uwsgi_temp_path {workdir}/nginx-uwsgi;
    scgi_temp_path {workdir}/nginx-scgi;
    keepalive_requests 1000000;
    upstream backend {{
        server 127.0.0.1:{upstream};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Request-Id $request_id;
            add_header X-Request-Id $request_id always;
        }}
    }}
}}
"""


def nginx_static_config(workdir: Path, port: int) -> str:
    return f"""
worker_processes 1;
daemon off;
pid {workdir}/nginx-upstream.pid;
error_log {workdir}/nginx-upstream.error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/nginx-up-body;
    proxy_temp_path {workdir}/nginx-up-proxy-temp;
    fastcgi_temp_path {workdir}/nginx-up-fastcgi;
    uwsgi_temp_path {workdir}/nginx-up-uwsgi;
    scgi_temp_path {workdir}/nginx-up-scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        default_type text/plain;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


def haproxy_config(port: int, upstream: int) -> str:
    return f"""
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    option forwardfor
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    unique-id-format %{{+X}}o%ci%cp%fi%fp%Ts%rt%pid
    unique-id-header X-Request-Id

frontend bench
    bind 127.0.0.1:{port}
    http-request set-header X-Forwarded-Proto http
    http-response set-header X-Request-Id %[unique-id]
    default_backend upstream

backend upstream
    server up 127.0.0.1:{upstream}
"""


# --------------------------------------------------------------------------------------
# Load: wrk, reporting through a Lua done() hook as one JSON line.

REPORT_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,' ..
    '"mean_us":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
"""

# Each connection waits a uniformly random 0..2m ms (mean m) before each request, so
# C connections offer about C*1000/(m + latency) requests per second, spread out rather
# than in lock-step. wrk's timers have millisecond resolution.
PACED_LUA = r"""
local mean_ms = 10
init = function(args)
  if args[1] then mean_ms = tonumber(args[1]) end
  math.randomseed(os.time() + os.clock() * 1000000)
end
delay = function()
  return math.random(0, 2 * mean_ms)
end
"""


@dataclass
class Load:
    wrk: str
    taskset: str
    workdir: Path
    # The paced phase: "load" (blastwall load, open loop at `paced_rate`) or "wrk" (wrk
    # with a random delay per connection: closed loop, coordinated omission).
    paced_with: str = "wrk"
    blastwall: Path | None = None
    paced_rate: int = 4500

    def __post_init__(self) -> None:
        (self.workdir / "report.lua").write_text(REPORT_LUA)
        (self.workdir / "paced.lua").write_text(PACED_LUA + REPORT_LUA)

    def run(self, port: int, seconds: float, connections: int,
            paced_delay_ms: int | None = None) -> dict:
        if paced_delay_ms is not None and self.paced_with == "load":
            return self.run_open(port, seconds, connections)
        script = "paced.lua" if paced_delay_ms is not None else "report.lua"
        command = [
            *pinned(self.taskset, LOAD_CORE), self.wrk, "-t1", f"-c{connections}",
            f"-d{max(1, round(seconds))}s", "--timeout", "5s",
            "-s", str(self.workdir / script), f"http://127.0.0.1:{port}/",
        ]
        if paced_delay_ms is not None:
            command += ["--", str(paced_delay_ms)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, start_new_session=True)
        renice_session(process.pid)
        stdout, stderr = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"wrk failed: {stderr.strip()}")
        for line in stdout.splitlines():
            if line.startswith("BENCH "):
                result = json.loads(line[len("BENCH "):])
                result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
                return result
        raise RuntimeError(f"wrk printed no report:\n{stdout}")


    def run_open(self, port: int, seconds: float, connections: int) -> dict:
        """`blastwall load` at a fixed rate: each request's latency counts from when it was
        due, so a stall is charged to every request it delayed. Same keys as `run`."""
        command = [
            *pinned(self.taskset, LOAD_CORE), str(self.blastwall), "load",
            f"http://127.0.0.1:{port}/", "--rate", str(self.paced_rate),
            "--duration", f"{max(1, round(seconds))}s", "--connections", str(connections),
            "--timeout", "5s", "--json",
        ]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, start_new_session=True)
        renice_session(process.pid)
        stdout, stderr = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"blastwall load failed: {stderr.strip()}")
        report = json.loads(stdout)
        total, latency = report["total"], report["total"]["latency_us"]
        return {
            "requests": total["requests"],
            "duration_us": round(report["elapsed_s"] * 1e6),
            "errors": sum(total["errors"].values()),
            "non2xx": sum(count for status, count in total["statuses"].items()
                          if not status.startswith("2")),
            "mean_us": latency["mean"],
            "p50_us": latency["p50"],
            "p90_us": latency["p90"],
            "p99_us": latency["p99"],
            "p999_us": latency["p999"],
            "max_us": latency["max"],
            # The rate it kept up, not requests over the wait for the last answers.
            "rps": report["achieved_rate"],
            "open_loop": True,
        }


# --------------------------------------------------------------------------------------
# Upstream: the blastwall mock or a static nginx, pinned to the load generator's core.


@dataclass
class Upstream:
    kind: str
    process: subprocess.Popen
    port: int


def start_upstream(kind: str, procs: Processes, blastwall: Path, paths: dict[str, str],
                   workdir: Path) -> Upstream:
    if kind == "mock":
        env = dict(os.environ, TOKIO_WORKER_THREADS="1")
        process = procs.start(
            "mock", pinned(paths["taskset"], LOAD_CORE) + [str(blastwall), "mock",
             "--listen", "127.0.0.1:0", "--name", "bench"],
            env=env, capture=True)
        line = wait_for_line(process, "mock ")
        port = int(line.rsplit(":", 1)[1])
    else:
        port = free_port()
        config = workdir / "nginx-upstream.conf"
        config.write_text(nginx_static_config(workdir, port))
        process = procs.start(
            "nginx-upstream",
            pinned(paths["taskset"], LOAD_CORE) + [paths["nginx"], "-c", str(config),
             "-p", str(workdir), "-e", str(workdir / "nginx-upstream.error.log")])
        wait_for_port(port, process)
    check_answer(port)
    return Upstream(kind, process, port)


def calibrate_upstreams(procs: Processes, blastwall: Path, paths: dict[str, str],
                        workdir: Path, load: Load, settings: Settings) -> dict:
    """Drives each candidate upstream directly and measures its CPU per request.

    Upstream and load generator share core 1, so the cheaper upstream leaves more of that
    core to wrk and is less likely to be what limits a proxied run.
    """
    figures = {}
    for kind in ("mock", "nginx"):
        wait_quiet(settings.quiet_wait)
        upstream = start_upstream(kind, procs, blastwall, paths, workdir)
        try:
            load.run(upstream.port, 1, settings.closed_connections)
            before = cpu_seconds(upstream.process.pid)
            result = load.run(upstream.port, settings.calibrate_seconds,
                              settings.closed_connections)
            used = cpu_seconds(upstream.process.pid) - before
            figures[kind] = {
                "rps": result["rps"],
                "cpu_us_per_request": used / result["requests"] * 1e6,
                "threads": threads(upstream.process.pid),
            }
            log(f"upstream {kind}: {result['rps']:.0f} req/s direct (sharing core 1 with "
                f"wrk), {figures[kind]['cpu_us_per_request']:.1f} us CPU per request")
        finally:
            procs.stop(upstream.process)
    return figures


# --------------------------------------------------------------------------------------
# One measurement of one target.


@dataclass
class Target:
    name: str
    port: int
    process: subprocess.Popen | None


def start_target(name: str, procs: Processes, blastwall: Path, paths: dict[str, str],
                 workdir: Path, upstream: Upstream) -> Target:
    taskset = pinned(paths["taskset"], PROXY_CORE)
    if name == "direct":
        return Target(name, upstream.port, None)
    if name in BLASTWALLS:
        config = workdir / f"{name}.toml"
        config.write_text(blastwall_config(upstream.port) if name == "blastwall"
                          else blastwall_full_config(upstream.port))
        # `[proxy] worker_threads = 1` in the config: the main thread serves everything;
        # the thread names are checked after the run.
        process = procs.start(
            name, taskset + [str(blastwall), "run", "-c", str(config), "--log", "warn"],
            capture=True)
        line = wait_for_line(process, "listener ")
        port = int(line.rsplit(":", 1)[1])
        wait_for_line(process, "blastwall ready")
        check_answer(port, expect_header="x-request-id")
        return Target(name, port, process)
    port = free_port()
    if name == "nginx":
        config = workdir / "nginx-proxy.conf"
        config.write_text(nginx_proxy_config(workdir, port, upstream.port))
        process = procs.start("nginx", taskset + [
            paths["nginx"], "-c", str(config), "-p", str(workdir),
            "-e", str(workdir / "nginx-proxy.error.log")])
    else:
        config = workdir / "haproxy.cfg"
        config.write_text(haproxy_config(port, upstream.port))
        process = procs.start("haproxy",
                              taskset + [paths["haproxy"], "-f", str(config), "-db"])
    wait_for_port(port, process)
    check_answer(port, expect_header="x-request-id")
    return Target(name, port, process)


@dataclass
class Accounting:
    """CPU used by each party during one load phase, to tell proxy work from noise."""

    pids: dict[str, int | None]
    wall: float = 0.0
    used: dict[str, float] = field(default_factory=dict)

    def __enter__(self) -> "Accounting":
        self._cores = core_seconds()
        self._procs = {role: cpu_seconds(pid) if pid else 0.0
                       for role, pid in self.pids.items()}
        self._children = children_cpu_seconds()
        self._started = time.monotonic()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.wall = time.monotonic() - self._started
        for role, pid in self.pids.items():
            self.used[role] = (cpu_seconds(pid) - self._procs[role]) if pid else 0.0
        # wrk is the only child reaped during the phase.
        self.used["wrk"] = children_cpu_seconds() - self._children
        cores = core_seconds()
        for core in (PROXY_CORE, LOAD_CORE):
            for kind in ("tasks", "irq"):
                self.used[f"core{core}_{kind}"] = (cores[core][kind]
                                                   - self._cores[core][kind])

    def share(self, key: str) -> float:
        return self.used[key] / self.wall

    def foreign(self) -> dict[str, float]:
        """Share of each core spent running tasks that are none of ours."""
        return {
            PROXY_CORE: max(0.0, self.used[f"core{PROXY_CORE}_tasks"]
                            - self.used["proxy"]) / self.wall,
            LOAD_CORE: max(0.0, self.used[f"core{LOAD_CORE}_tasks"]
                           - self.used["upstream"] - self.used["wrk"]) / self.wall,
        }


def measure(name: str, procs: Processes, blastwall: Path, paths: dict[str, str],
            workdir: Path, upstream: Upstream, load: Load, settings: Settings) -> dict:
    quiet = wait_quiet(settings.quiet_wait)
    target = start_target(name, procs, blastwall, paths, workdir, upstream)
    try:
        load.run(target.port, settings.warmup, settings.closed_connections)
        pid = target.process.pid if target.process else None
        pids = {"proxy": pid, "upstream": upstream.process.pid}
        with Accounting(pids) as closed_cpu:
            closed = load.run(target.port, settings.closed_seconds,
                              settings.closed_connections)
        with Accounting(pids) as paced_cpu:
            paced = load.run(target.port, settings.paced_seconds, settings.paced_connections,
                             paced_delay_ms=settings.paced_mean_delay_ms)
        requests = closed["requests"]
        foreign = closed_cpu.foreign()
        paced_foreign = paced_cpu.foreign()
        result = {
            "target": name,
            "rps": closed["rps"],
            "closed": closed,
            "paced": paced,
            "p50_us": paced["p50_us"],
            "p99_us": paced["p99_us"],
            "paced_rps": paced["rps"],
            "proxy_cpu_us_per_request": (closed_cpu.used["proxy"] / requests * 1e6
                                         if pid else None),
            "core0_us_per_request": (closed_cpu.used[f"core{PROXY_CORE}_tasks"]
                                     + closed_cpu.used[f"core{PROXY_CORE}_irq"])
            / requests * 1e6,
            "upstream_cpu_us_per_request": closed_cpu.used["upstream"] / requests * 1e6,
            "wrk_cpu_us_per_request": closed_cpu.used["wrk"] / requests * 1e6,
            "proxy_busy": closed_cpu.share("proxy") if pid else None,
            "core1_busy": (closed_cpu.share(f"core{LOAD_CORE}_tasks")
                           + closed_cpu.share(f"core{LOAD_CORE}_irq")),
            "foreign_core0": foreign[PROXY_CORE],
            "foreign_core1": foreign[LOAD_CORE],
            "paced_foreign_core0": paced_foreign[PROXY_CORE],
            "paced_foreign_core1": paced_foreign[LOAD_CORE],
            "busy_before": quiet,
            "cpu_seconds": {"closed": closed_cpu.used, "paced": paced_cpu.used},
            "peak_rss_kib": peak_rss_kib(pid) if pid else None,
            "threads": threads(pid) if pid else None,
        }
        # The closed loop keeps our processes busy, so other work there took CPU from them.
        # (In the paced phase our processes mostly wait, so other work filling the idle
        # time is expected; it is recorded but not counted as disturbance. Without a proxy
        # core 0 is idle and the scheduler rightly moves other work there.)
        cores = (PROXY_CORE, LOAD_CORE) if pid else (LOAD_CORE,)
        result["disturbance"] = max(foreign[core] for core in cores)
        if closed["errors"] or closed["non2xx"] or paced["errors"] or paced["non2xx"]:
            log(f"WARNING {name}: errors in the run: closed {closed['errors']}+"
                f"{closed['non2xx']} non-2xx, paced {paced['errors']}+{paced['non2xx']}")
        return result
    finally:
        if target.process:
            procs.stop(target.process)


def measure_undisturbed(name: str, settings: Settings, *args: object) -> dict:
    """Measures, and measures again (up to `settings.retries` times) while other work took
    more than `settings.max_foreign` of a core; keeps the least disturbed attempt."""
    attempts = []
    for _ in range(settings.retries + 1):
        result = measure(name, *args, settings)
        attempts.append(result)
        if result["disturbance"] <= settings.max_foreign:
            break
        log(f"{name}: other processes took {result['disturbance']:.0%} of a core; "
            f"measuring again")
    best = min(attempts, key=lambda attempt: attempt["disturbance"])
    best["attempts"] = len(attempts)
    return best


# --------------------------------------------------------------------------------------
# Report.


def median(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


SUMMARY_KEYS = ("rps", "p50_us", "p99_us", "paced_rps", "proxy_cpu_us_per_request",
                "core0_us_per_request", "upstream_cpu_us_per_request",
                "wrk_cpu_us_per_request", "peak_rss_kib", "proxy_busy", "core1_busy",
                "disturbance")


def summarize(runs: list[dict], targets: tuple[str, ...]) -> dict[str, dict]:
    summary = {}
    for name in targets:
        mine = [run for run in runs if run["target"] == name]
        if mine:
            summary[name] = {key: median([run[key] for run in mine]) for key in SUMMARY_KEYS}
            summary[name]["rounds"] = len(mine)
            summary[name]["attempts"] = sum(run["attempts"] for run in mine)
            summary[name]["rps_all"] = [round(run["rps"]) for run in mine]
            summary[name]["cpu_all"] = [
                None if run["proxy_cpu_us_per_request"] is None
                else round(run["proxy_cpu_us_per_request"], 1) for run in mine]
            summary[name]["p99_all"] = [run["p99_us"] for run in mine]
    return summary


def fmt(value: float | None, digits: int = 0, scale: float = 1.0, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value * scale:,.{digits}f}{unit}"


def table(summary: dict[str, dict]) -> str:
    header = ("| | req/s (closed loop) | p50 µs (paced) | p99 µs (paced) | proxy CPU µs/req "
              "| core 0 µs/req | peak RSS MiB |")
    lines = [header, header_rule(header)]
    for name, row in summary.items():
        lines.append(
            f"| {name} | {fmt(row['rps'])} | {fmt(row['p50_us'])} | {fmt(row['p99_us'])} "
            f"| {fmt(row['proxy_cpu_us_per_request'], 1)} "
            f"| {fmt(row['core0_us_per_request'], 1) if name != 'direct' else '-'} "
            f"| {fmt(row['peak_rss_kib'], 1, 1 / 1024)} |")
    for blastwall, other in [(mine, other) for mine in BLASTWALLS
                             for other in ("nginx", "haproxy")]:
        if blastwall not in summary or other not in summary:
            continue
        mine, theirs = summary[blastwall], summary[other]

        def ratio(key: str) -> str:
            if mine[key] is None or not theirs[key]:
                return "-"
            return f"{mine[key] / theirs[key]:.2f}×"

        lines.append(
            f"| {blastwall} ÷ {other} | {ratio('rps')} | {ratio('p50_us')} "
            f"| {ratio('p99_us')} | {ratio('proxy_cpu_us_per_request')} "
            f"| {ratio('core0_us_per_request')} | {ratio('peak_rss_kib')} |")
    return "\n".join(lines)


def cost_of_resilience(summary: dict[str, dict], runs: list[dict]) -> str:
    """Issue 19's two CPU figures: the full config over the bare one (target ≤ 1.05) and
    over min(nginx, HAProxy) (target ≤ 1.00), in proxy CPU per request (closed loop). Each
    as the ratio of the medians and as the median of the ratios within a round (the
    targets of one round ran minutes apart, so that one cancels slower drift)."""
    if FULL_TARGET not in summary or "blastwall" not in summary:
        return ""
    key = "proxy_cpu_us_per_request"

    def per_round(name: str) -> dict[int, float]:
        return {run["round"]: run[key] for run in runs if run["target"] == name}

    def best_anchor(round_number: int | None) -> float | None:
        figures = [(per_round(name).get(round_number) if round_number else
                    summary[name][key]) for name in ("nginx", "haproxy") if name in summary]
        figures = [figure for figure in figures if figure]
        return min(figures) if figures else None

    full, bare = per_round(FULL_TARGET), per_round("blastwall")
    rounds = sorted(set(full) & set(bare))
    over_bare = [full[r] / bare[r] for r in rounds]
    over_anchor = [full[r] / best_anchor(r) for r in rounds if best_anchor(r)]
    lines = ["| proxy CPU µs/req (closed loop) | ratio of medians | median of per-round "
             "ratios | per round | target |", "|---|---|---|---|---|"]

    def row(label: str, numerator: float, denominator: float | None, ratios: list[float],
            target: str) -> None:
        if not denominator or not ratios:
            return
        lines.append(f"| {label} | {numerator / denominator:.3f} "
                     f"| {statistics.median(ratios):.3f} "
                     f"| {', '.join(f'{ratio:.3f}' for ratio in ratios)} | {target} |")

    row("full ÷ bare", summary[FULL_TARGET][key], summary["blastwall"][key], over_bare,
        "≤ 1.05")
    row("full ÷ min(nginx, HAProxy)", summary[FULL_TARGET][key], best_anchor(None),
        over_anchor, "≤ 1.00")
    return "\n".join(lines)


def diagnostics(summary: dict[str, dict]) -> str:
    header = ("| | paced req/s | proxy busy (closed) | core 1 busy (closed) "
              "| upstream µs/req | wrk µs/req | foreign load (closed) | attempts |")
    lines = [header, header_rule(header)]
    for name, row in summary.items():
        lines.append(
            f"| {name} | {fmt(row['paced_rps'])} | {fmt(row['proxy_busy'], 0, 100, '%')} "
            f"| {fmt(row['core1_busy'], 0, 100, '%')} "
            f"| {fmt(row['upstream_cpu_us_per_request'], 1)} "
            f"| {fmt(row['wrk_cpu_us_per_request'], 1)} "
            f"| {fmt(row['disturbance'], 0, 100, '%')} | {row['attempts']} |")
    return "\n".join(lines)


def header_rule(header: str) -> str:
    columns = header.count("|") - 1
    return "|" + "---|" * columns


def machine() -> dict[str, str]:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": model,
        "cpus": str(os.cpu_count()),
        "kernel": platform.release(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().strip(),
    }


# --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 round, 2 s per phase")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3)")
    parser.add_argument("--upstream", choices=("auto", "mock", "nginx"), default="auto",
                        help="upstream behind every proxy; auto picks the one with the "
                             "lower CPU per request (default)")
    parser.add_argument("--nice", type=int, default=-10,
                        help="niceness of proxies, upstream and wrk alike (default -10: "
                             "other work on the machine disturbs the figures less)")
    parser.add_argument("--paced-with", choices=("load", "wrk"), default="load",
                        help="client of the latency phase: load (default: `blastwall "
                             "load`, open loop at --paced-rate, latency from each "
                             "request's due time) or wrk (random delay per connection, "
                             "closed loop)")
    parser.add_argument("--paced-rate", type=int,
                        help="requests/s of the open-loop latency phase (default 4500)")
    parser.add_argument("--full", action="store_true",
                        help="measure Blastwall with every mechanism of issue 19 on "
                             "(bench/full.toml) beside the bare one, and print the ratios "
                             "full/bare and full/min(nginx, HAProxy)")
    parser.add_argument("--json", type=Path, help="write every run's raw figures here")
    parser.add_argument("--skip-install", action="store_true")
    parser.add_argument("--skip-build", action="store_true")
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL
    global NICE
    NICE = args.nice
    if args.rounds:
        settings.rounds = args.rounds
    if args.paced_rate:
        settings.paced_rate = args.paced_rate
    targets = (("blastwall", FULL_TARGET, *TARGETS[1:]) if args.full else TARGETS)
    if os.cpu_count() is None or os.cpu_count() < 2:
        sys.exit("needs at least 2 CPUs (core 0 for proxies, core 1 for load + upstream)")

    paths = ensure_packages() if not args.skip_install else {
        name: tool(name) for name in ("nginx", "haproxy", "wrk", "taskset")}
    if args.skip_build:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        blastwall = target / "release" / "blastwall"
    else:
        blastwall = build_blastwall()
    info = {"machine": machine(), "versions": versions(paths, blastwall),
            "settings": settings.__dict__, "nice": NICE}
    log(f"machine: {info['machine']}")
    log(f"versions: {info['versions']}")

    workdir = Path(tempfile.mkdtemp(prefix="blastwall-bench-"))
    procs = Processes(workdir)
    try:
        load = Load(paths["wrk"], paths["taskset"], workdir, paced_with=args.paced_with,
                    blastwall=blastwall, paced_rate=settings.paced_rate)
        info["paced_with"] = args.paced_with
        kind = args.upstream
        if kind == "auto":
            calibration = calibrate_upstreams(procs, blastwall, paths, workdir, load, settings)
            info["upstream_calibration"] = calibration
            kind = min(calibration, key=lambda k: calibration[k]["cpu_us_per_request"])
        upstream = start_upstream(kind, procs, blastwall, paths, workdir)
        info["upstream"] = kind
        log(f"upstream: {kind} on 127.0.0.1:{upstream.port}, pinned to core {LOAD_CORE}")

        runs = []
        for round_number in range(1, settings.rounds + 1):
            for name in targets:
                result = measure_undisturbed(name, settings, procs, blastwall, paths,
                                             workdir, upstream, load)
                result["round"] = round_number
                runs.append(result)
                cpu = result["proxy_cpu_us_per_request"]
                log(f"round {round_number} {name:9}: {result['rps']:8.0f} req/s, "
                    f"paced {result['paced_rps']:.0f} req/s p50 {result['p50_us']} µs "
                    f"p99 {result['p99_us']} µs"
                    + (f", {cpu:.1f} µs CPU/req, peak RSS {result['peak_rss_kib']} KiB, "
                       f"threads {result['threads']['threads']} on CPUs "
                       f"{result['threads']['cpus_allowed']}" if cpu is not None else ""))
        procs.stop(upstream.process)
    except BaseException:
        log(f"failed; configs and logs kept in {workdir}")
        raise
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    finally:
        procs.stop_all()

    summary = summarize(runs, targets)
    info["loadavg_at_end"] = Path("/proc/loadavg").read_text().strip()
    bw_threads = [run["threads"] for run in runs if run["target"] in BLASTWALLS]
    # With `worker_threads = 1` blastwall runs tokio's current-thread runtime on its main
    # thread ("blastwall"); the only other threads are its blocking pool ("blastwall-block",
    # the config watcher's file reads). A "tokio-..." worker would mean a work-stealing pool.
    workers = [sum(count for thread, count in t["threads"].items()
                   if thread.startswith("tokio-"))
               for t in bw_threads]
    if any(count != 0 for count in workers):
        log(f"WARNING: blastwall ran with {workers} tokio worker threads, not its main thread only")
    print()
    paced = (f"paced open loop (blastwall load) {settings.paced_rate} requests/s over at most "
             f"{settings.paced_connections} connections"
             if args.paced_with == "load" else
             f"paced {settings.paced_connections} connections, mean "
             f"{settings.paced_mean_delay_ms} ms between requests")
    print(f"Upstream: {kind}; {settings.rounds} round(s); closed loop "
          f"{settings.closed_connections} connections × {settings.closed_seconds} s; "
          f"{paced}, {settings.paced_seconds} s. Medians over rounds.")
    print()
    print(table(summary))
    print()
    print(diagnostics(summary))
    print()
    resilience = cost_of_resilience(summary, runs)
    if resilience:
        print("The cost of resilience (issue 19), blastwall-full = bench/full.toml:")
        print()
        print(resilience)
        print()
    for name, row in summary.items():
        print(f"{name}: req/s per round {row['rps_all']}"
              + (f", CPU µs/req per round {row['cpu_all']}" if name != "direct" else "")
              + f", p99 µs per round {row['p99_all']}")
    if args.json:
        args.json.write_text(json.dumps(
            {"info": info, "summary": summary, "runs": runs,
             "blastwall_full_config": (blastwall_full_config(0) if args.full else None)}, indent=2) + "\n")
        log(f"raw figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
