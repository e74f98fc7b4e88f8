#!/usr/bin/env python3
"""Blastwall, nginx and HAProxy at once on core 0: CPU per request over the same seconds.

`proxies.py` measures the proxies one after another. On a shared VM the same proxy's CPU per
request drifts by up to 2x from one minute to the next (steal, frequency), which hides
differences of 10-20%. Here the three run at the same time on core 0, with the same configs
and upstream as `proxies.py` (imported from it), each driven from core 1 by its own
`blastwall load` at the same open-loop rate. Each round reads every proxy's CPU time over
the same seconds, so drift hits all three alike, and the per-round ratios are steady.

With `--floor` a fourth process runs beside them: `hyper_floor` (an example of the proxy
crate), the least a hyper HTTP/1 server and client can do to forward a request. It is the
floor under any proxy built on hyper. Each proxy's CPU is also split into user and system
time, since the kernel's share (the same sockets and system calls) is alike for all.

With `--before BINARY` another blastwall binary (an earlier build) runs beside them with the
same config: the ratio of the two is the figure for a change, steadier than the ratios
against nginx and HAProxy, which drift between runs by a few hundredths.

Needs root for the Debian packages (as `proxies.py`). Usage:
    sudo python3 bench/side_by_side.py [--rate 12000] [--rounds 5] [--seconds 4] [--floor]
                                       [--before BINARY]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import proxies  # noqa: E402  (the configs and process handling are shared)

FLOOR = "hyper-floor"
BEFORE = "blastwall-before"


def load(blastwall: Path, taskset: str, port: int, rate: int, seconds: float) -> dict:
    report = subprocess.run(
        proxies.pinned(taskset, proxies.LOAD_CORE)
        + [str(blastwall), "load", "--rate", str(rate), "--duration", f"{seconds}s",
           "--connections", "32", "--json", f"http://127.0.0.1:{port}/"],
        check=True, capture_output=True, text=True).stdout
    return json.loads(report[report.index("{"):])


def build_floor() -> Path:
    subprocess.run(["cargo", "build", "--release", "-p", "blastwall-proxy", "--example",
                    "hyper_floor"], cwd=proxies.REPO, check=True)
    return floor_binary()


def floor_binary() -> Path:
    target = Path(proxies.os.environ.get("CARGO_TARGET_DIR", proxies.REPO / "target"))
    return target / "release" / "examples" / "hyper_floor"


def start_floor(binary: Path, procs: proxies.Processes, taskset: str,
                upstream: proxies.Upstream) -> proxies.Target:
    process = procs.start(
        FLOOR, proxies.pinned(taskset, proxies.PROXY_CORE)
        + [str(binary), "127.0.0.1:0", f"127.0.0.1:{upstream.port}"], capture=True)
    port = int(proxies.wait_for_line(process, "listening on ").rsplit(":", 1)[1])
    proxies.check_answer(port)
    return proxies.Target(FLOOR, port, process)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=12000, help="requests/s for each proxy")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--skip-install", action="store_true")
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--floor", action="store_true",
                        help="also run hyper_floor, a bare hyper server and client")
    parser.add_argument("--before", type=Path, metavar="BINARY",
                        help="also run this blastwall binary (an earlier build)")
    args = parser.parse_args()
    names = (("blastwall", "nginx", "haproxy") + ((FLOOR,) if args.floor else ())
             + ((BEFORE,) if args.before else ()))
    paths = proxies.ensure_packages() if not args.skip_install else {
        name: proxies.tool(name) for name in ("nginx", "haproxy", "wrk", "taskset")}
    blastwall = (Path(proxies.os.environ.get("CARGO_TARGET_DIR", proxies.REPO / "target"))
                 / "release" / "blastwall") if args.skip_build else proxies.build_blastwall()
    workdir = Path(tempfile.mkdtemp(prefix="blastwall-side-"))
    procs = proxies.Processes(workdir)
    try:
        upstream = proxies.start_upstream("nginx", procs, blastwall, paths, workdir)
        targets = {name: proxies.start_target(name, procs, blastwall, paths, workdir, upstream)
                   for name in names if name not in (FLOOR, BEFORE)}
        if args.before:
            (workdir / BEFORE).mkdir()
            targets[BEFORE] = proxies.start_target("blastwall", procs, args.before, paths,
                                                   workdir / BEFORE, upstream)
        if args.floor:
            binary = floor_binary() if args.skip_build else build_floor()
            targets[FLOOR] = start_floor(binary, procs, paths["taskset"], upstream)
        cpu_us: dict[str, list[float]] = {name: [] for name in names}
        user_us: dict[str, list[float]] = {name: [] for name in names}
        for round_ in range(-1, args.rounds):  # round -1 warms pools and caches up
            before = {name: proxies.cpu_user_system(t.process.pid)
                      for name, t in targets.items()}
            reports: dict[str, dict] = {}

            def drive(name: str) -> None:
                reports[name] = load(blastwall, paths["taskset"], targets[name].port,
                                     args.rate, args.seconds)

            threads = [threading.Thread(target=drive, args=(name,)) for name in names]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if round_ < 0:
                continue
            for name, target in targets.items():
                user, system = proxies.cpu_user_system(target.process.pid)
                answered = max(reports[name]["total"]["ok"], 1)
                user_us[name].append((user - before[name][0]) / answered * 1e6)
                cpu_us[name].append(
                    (user + system - sum(before[name])) / answered * 1e6)
            print(f"round {round_ + 1}: " + ", ".join(
                f"{name} {cpu_us[name][-1]:.1f} us/request ({reports[name]['total']['ok']} ok)"
                for name in names), flush=True)
    finally:
        procs.stop_all()
    print(f"{len(names)} proxies at once on core 0, {args.rate} requests/s each, "
          f"{args.rounds} rounds of {args.seconds} s; CPU per request, median:")
    for name in names:
        user = statistics.median(user_us[name])
        system = statistics.median(total - user for total, user in zip(cpu_us[name],
                                                                       user_us[name]))
        print(f"  {name:>11}: {statistics.median(cpu_us[name]):.1f} us "
              f"(user {user:.1f}, system {system:.1f})")
    for other in names[1:]:
        ratios = [ours / theirs for ours, theirs in zip(cpu_us["blastwall"], cpu_us[other])]
        print(f"  blastwall / {other}: median {statistics.median(ratios):.3f} "
              f"(rounds {sorted(round(ratio, 3) for ratio in ratios)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
