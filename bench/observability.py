#!/usr/bin/env python3
"""Blastwall with the access log (and optionally tracing) on and off: throughput and CPU.

A `blastwall mock` upstream, one proxy (`worker_threads = 1`) per variant, and
`blastwall load` driving it: a saturating run (--rate far above capacity, 32 connections,
so the answered rate is the proxy's capacity) and a paced run at --paced rps, over which
the proxy's CPU time per request is read from /proc. Variants alternate, round after round,
and medians are printed, so drift of a shared machine hits every variant alike. On two or
more cores the proxy is pinned to core 0 and the mock and load generator to core 1
(`--no-pin` to turn it off), and the proxy's requests/s per core is derived from its CPU
time per request under load, which does not depend on how fast core 1 feeds it.

Only the Python standard library is used. Usage:
    cargo build --release -p blastwall
    bench/observability.py [--rounds 3] [--seconds 5] [--paced 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def line_with(process: subprocess.Popen, text: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if text in line:
            return line
    raise RuntimeError(f"no line with {text!r}")


def address(line: str) -> str:
    return line.split("http://", 1)[1].strip()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def load(binary: Path, url: str, rate: int, seconds: float, pin: list[str]) -> dict:
    report = subprocess.run(
        pin + [str(binary), "load", "--rate", str(rate), "--duration", f"{seconds}s",
         "--connections", "32", "--json", url],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(report[report.index("{"):])


def answered(report: dict) -> int:
    return report["total"]["ok"]


def elapsed(report: dict, nominal: float) -> float:
    """The run's wall time: past its nominal duration when the client fell behind the
    schedule (a saturating rate always does), and the rate must be counted over it."""
    summary = report.get("summary", report)
    return float(summary.get("elapsed_s", nominal))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=str(
        Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release" / "blastwall"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--paced", type=int, default=2000)
    parser.add_argument("--saturate", type=int, default=40000)
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the proxy to core 0 and the rest to core 1")
    parser.add_argument("--side-by-side", action="store_true",
                        help="run every variant at once, each at --paced rps, and compare "
                             "their CPU per request over the same seconds")
    args = parser.parse_args()
    pinned = not args.no_pin and (os.cpu_count() or 1) >= 2
    proxy_core = ["taskset", "-c", "0"] if pinned else []
    other_core = ["taskset", "-c", "1"] if pinned else []
    binary = Path(args.binary)
    work = Path(tempfile.mkdtemp(prefix="blastwall-obs-"))
    mock = subprocess.Popen(other_core + [str(binary), "mock", "--listen", "127.0.0.1:0", "--name", "up"],
                            stdout=subprocess.PIPE, text=True)
    upstream = address(line_with(mock, "listening on"))
    variants = {
        "off": "",
        "access_log": f'[access_log]\npath = "{work / "access.log"}"\n',
    }
    if args.side_by_side:
        try:
            side_by_side(binary, work, upstream, variants, args, proxy_core, other_core)
        finally:
            mock.terminate()
            mock.wait()
        return
    results: dict[str, dict[str, list[float]]] = {v: {"rps": [], "cpu_us": [], "cpu_us_saturated": []} for v in variants}
    try:
        for round_ in range(args.rounds):
            for name, sections in variants.items():
                config = work / f"{name}.toml"
                config.write_text(
                    '[proxy]\nworker_threads = 1\n[[listener]]\nname = "public"\n'
                    'listen = "127.0.0.1:0"\n[[route]]\ncluster = "api"\n'
                    f'[cluster.api]\nendpoints = [{{ address = "{upstream}" }}]\n{sections}')
                proxy = subprocess.Popen(proxy_core + [str(binary), "run", "-c", str(config), "--no-watch",
                                          "--log", "warn"], stdout=subprocess.PIPE, text=True)
                try:
                    url = "http://" + address(line_with(proxy, "listening on")) + "/bench"
                    line_with(proxy, "blastwall ready")
                    load(binary, url, 500, 1, other_core)  # warm up connections
                    before = cpu_seconds(proxy.pid)
                    saturated = load(binary, url, args.saturate, args.seconds, other_core)
                    spent = cpu_seconds(proxy.pid) - before
                    results[name]["rps"].append(
                        answered(saturated) / elapsed(saturated, args.seconds))
                    results[name]["cpu_us_saturated"].append(
                        spent / max(answered(saturated), 1) * 1e6)
                    before = cpu_seconds(proxy.pid)
                    paced = load(binary, url, args.paced, args.seconds, other_core)
                    spent = cpu_seconds(proxy.pid) - before
                    results[name]["cpu_us"].append(spent / max(answered(paced), 1) * 1e6)
                finally:
                    proxy.terminate()
                    proxy.wait()
                print(f"round {round_ + 1} {name}: {results[name]['rps'][-1]:.0f} rps, "
                      f"{results[name]['cpu_us_saturated'][-1]:.1f} us CPU/request saturated, "
                      f"{results[name]['cpu_us'][-1]:.1f} paced", flush=True)
    finally:
        mock.terminate()
        mock.wait()
    base = statistics.median(results["off"]["rps"])
    base_capacity = 1e6 / statistics.median(results["off"]["cpu_us_saturated"])
    print("pinned: proxy on core 0, mock and load on core 1" if pinned else "not pinned")
    for name, figures in results.items():
        rps = statistics.median(figures["rps"])
        cpu = statistics.median(figures["cpu_us"])
        saturated = statistics.median(figures["cpu_us_saturated"])
        # What one core of the proxy serves, from its CPU time per request under load: the
        # throughput figure that does not depend on the load generator's core.
        capacity = 1e6 / saturated
        print(f"{name:>10}: median {rps:.0f} rps ({(rps / base - 1) * 100:+.1f}%), "
              f"{saturated:.1f} us CPU/request saturated = {capacity:.0f} requests/s per core "
              f"({(capacity / base_capacity - 1) * 100:+.1f}%), {cpu:.1f} paced")
    # Each round runs the variants back to back, so their ratio within a round cancels the
    # drift between rounds (on a shared VM the same binary's rate varies 2x between rounds).
    for name, figures in results.items():
        if name == "off":
            continue
        ratios = [on / off for on, off in zip(figures["rps"], results["off"]["rps"])]
        cpu_ratios = [on / off for on, off in
                      zip(figures["cpu_us_saturated"], results["off"]["cpu_us_saturated"])]
        print(f"{name:>10}: paired per round, median rps ratio {statistics.median(ratios):.3f} "
              f"({(statistics.median(ratios) - 1) * 100:+.1f}%), median CPU/request ratio "
              f"{statistics.median(cpu_ratios):.3f}")
    lines = (work / "access.log").read_text().count("\n") if (work / "access.log").exists() else 0
    print(f"access log lines written: {lines}")


def side_by_side(binary: Path, work: Path, upstream: str, variants: dict[str, str],
                 args: argparse.Namespace, proxy_core: list[str], other_core: list[str]) -> None:
    """Every variant's proxy at once on the same core, each driven at the same paced rate.

    On a shared VM the same binary's CPU per request drifts by 2x from one minute to the
    next (steal, frequency); proxies measured over the same seconds on the same core see
    the same drift, so the ratio of their CPU per request is what the variant costs.
    """
    import threading
    proxies = {}
    try:
        for name, sections in variants.items():
            config = work / f"side-{name}.toml"
            config.write_text(
                '[proxy]\nworker_threads = 1\n[admin]\nlisten = "127.0.0.1:0"\n'
                '[[listener]]\nname = "public"\nlisten = "127.0.0.1:0"\n[[route]]\n'
                f'cluster = "api"\n[cluster.api]\nendpoints = [{{ address = "{upstream}" }}]\n'
                f'{sections}')
            proxy = subprocess.Popen(proxy_core + [str(binary), "run", "-c", str(config),
                                     "--no-watch", "--log", "warn"],
                                     stdout=subprocess.PIPE, text=True)
            url = "http://" + address(line_with(proxy, "listening on")) + "/bench"
            line_with(proxy, "blastwall ready")
            proxies[name] = (proxy, url)
        ratios = []
        for round_ in range(args.rounds):
            before = {name: cpu_seconds(proxy.pid) for name, (proxy, _) in proxies.items()}
            reports: dict[str, dict] = {}

            def drive(name: str, url: str) -> None:
                reports[name] = load(binary, url, args.paced, args.seconds, other_core)

            threads = [threading.Thread(target=drive, args=(name, url))
                       for name, (_, url) in proxies.items()]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            cpu = {name: (cpu_seconds(proxy.pid) - before[name]) / max(answered(reports[name]), 1)
                   * 1e6 for name, (proxy, _) in proxies.items()}
            ratio = cpu["access_log"] / cpu["off"]
            ratios.append(ratio)
            print(f"round {round_ + 1}: CPU/request off {cpu['off']:.1f} us, access log "
                  f"{cpu['access_log']:.1f} us, ratio {ratio:.3f}", flush=True)
        median = statistics.median(ratios)
        print(f"side by side, {args.paced} rps each, {args.rounds} rounds of {args.seconds} s: "
              f"median CPU/request ratio {median:.3f} (access log {(median - 1) * 100:+.1f}%), "
              f"so {(1 / median - 1) * 100:+.1f}% requests/s per core; rounds "
              f"{sorted(round(r, 3) for r in ratios)}")
    finally:
        for proxy, _ in proxies.values():
            proxy.terminate()
            proxy.wait()


if __name__ == "__main__":
    main()
