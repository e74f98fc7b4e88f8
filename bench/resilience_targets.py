"""Issue 19's figures and targets, computed from one resilience run (see resilience.py).

resilience.py runs the scenarios and keeps everything raw: `blastwall load`'s report, the
mocks' counters (`/_mock/stats`) at marked moments, a side load of POSTs, a probe of the
refused answers in overload. This module turns that into the figures the issue's table
asks for, one function per scenario, and prints the table with a column per proxy, so the
targets are read in one place and a scenario's figures are computed the same way for
every proxy. A figure that could not be measured is None and prints as "-", never as 0.

nginx and HAProxy run in two variants each (see resilience_configs.py); the issue lets
them keep their best config per scenario, so their column shows, scenario by scenario,
the variant that met more of that scenario's targets (ties: the one nearer its first
figure's target, then the next's, then the lower error rate and p99), named beside each
figure. The table prints no pass/fail column: it would hide
how far off a figure is; targets are judged only to choose a variant.

Pure functions of the JSON a run keeps (no processes, no clock): test_resilience.py tests
them on synthetic timelines.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Callable

from resilience_configs import RETRY_BUDGET_RATIO

OUTAGE_FRESH_SHARE = 0.8                # "80% of traffic served fresh"


def _points(report: dict, start: float, end: float | None = None) -> list[dict]:
    """Timeline points (by due time) that start at or after `start` and before `end`,
    those without requests left out."""
    interval = report["timeline_interval_s"]
    return [p for p in report["timeline"]
            if p["t"] + 1e-9 >= start and (end is None or p["t"] + interval <= end + 1e-9)
            and p["ok"] + p["failed"] > 0]


def _delta(after: dict | None, before: dict | None, name: str) -> int | None:
    if after is None or before is None or after.get(name) is None or before.get(name) is None:
        return None
    return after[name] - before[name]


def _ratio(part: float | None, whole: float | None) -> float | None:
    return None if part is None or not whole else part / whole


def amplification(raw: dict) -> float | None:
    """Upstream hits ÷ client requests over the measured run, the side POSTs included in
    both (health checks are counted as hits: under 1% at these rates)."""
    sent = raw["report"]["sent"] + (raw["side"]["sent"] if raw.get("side") else 0)
    return _ratio(_delta(raw["counters_after"], raw["counters_before"], "requests"), sent)


def post_duplicates(raw: dict) -> int | None:
    """POSTs without an Idempotency-Key that reached a mock a second time (same request
    id, same path), over the measured run; None without a side load or an older mock."""
    if not raw.get("side"):
        return None
    return _delta(raw["counters_after"], raw["counters_before"], "duplicates")


def _failed_and_max(raw: dict) -> dict:
    """The main load's failed requests and its slowest; the side POSTs that failed apart:
    a POST without an Idempotency-Key caught on a killed or hung replica may have been
    processed, so no proxy may retry it, and failing it is the right answer."""
    total, side = raw["report"]["total"], raw.get("side")
    return {"failed": total["failed"], "max_ms": total["latency_us"]["max"] / 1000,
            "post_failed": side["failed"] if side else None,
            "post_sent": side["sent"] if side else None}


def _gray(raw: dict) -> dict:
    report = raw["report"]
    fault_at = raw["marks"].get("fault_at") or 0.0
    healthy = [p["p99_us"] for p in _points(report, 0.0, fault_at)]
    healthy_p99 = statistics.median(healthy) / 1000 if healthy else None
    p99 = report["total"]["latency_us"]["p99"] / 1000
    return {"p99_ms": p99, "healthy_p99_ms": healthy_p99,
            "p99_over_healthy": _ratio(p99, healthy_p99)}


def _outage(raw: dict) -> dict:
    """From 1 s after the outage starts to the moment the replicas answer again: hits ÷
    client requests due in that window, and the worst timeline point's p99 (every answer
    there is a fallback or a relayed 503); then the time from the replicas answering again
    to the first point from which every later one is at least 80% ok (2xx from upstream:
    the fallback is a 503)."""
    report, marks = raw["report"], raw["marks"]
    measured_at, ended_at = marks.get("outage_measured_at"), marks.get("outage_ended_at")
    figures: dict = {"hits_per_request": None, "answer_p99_ms": None, "recovery_s": None}
    if measured_at is None or ended_at is None:
        return figures
    hits = _delta(marks.get("outage_ended"), marks.get("outage_measured"), "requests")
    side_rate = raw["side"]["rate"] if raw.get("side") else 0
    due = (report["rate"] + side_rate) * (ended_at - measured_at)
    figures["hits_per_request"] = _ratio(hits, due)
    window = _points(report, measured_at, ended_at)
    if window:
        figures["answer_p99_ms"] = max(p["p99_us"] for p in window) / 1000
    interval = report["timeline_interval_s"]
    first_good = None
    for point in _points(report, ended_at - interval + 1e-9):
        fresh = point["ok"] / (point["ok"] + point["failed"]) >= OUTAGE_FRESH_SHARE
        first_good = (first_good if first_good is not None else point["t"]) if fresh else None
    if first_good is not None:
        figures["recovery_s"] = max(0.0, first_good - ended_at)
    return figures


def _two_hundreds(statuses: dict) -> int:
    return sum(count for status, count in statuses.items() if status.startswith("2"))


def _client_2xx(raw: dict) -> int:
    """2xx answers the clients got: the main load's, the side POSTs' and the probe's."""
    side = raw.get("side") or {}
    return (_two_hundreds(raw["report"]["total"]["statuses"])
            + _two_hundreds(side.get("statuses", {}))
            + sum(200 <= answer["status"] < 300 for answer in raw.get("probe", [])))


def _overload(raw: dict) -> dict:
    """2xx the upstreams served ÷ what the replicas can serve in the run (replicas ×
    capacity ÷ service time × duration); the p99 of the answers that were 2xx (served by an
    upstream); the probe's refused answers (p99, share with Retry-After); the high class's
    success rate. `served_of_capacity` counts at the mocks, so a health check answered 200
    counts (nginx sends none); `served_of_capacity_by_clients` counts the 2xx the clients
    got instead, for the JSON (no proxy here makes a 2xx of its own)."""
    report, overload = raw["report"], raw["overload"]
    capacity = overload["capacity_per_s"] * report["elapsed_s"]
    served = _delta(raw["counters_after"], raw["counters_before"], "ok")
    figures = {
        "served_of_capacity": _ratio(served, capacity),
        "served_of_capacity_by_clients": _ratio(_client_2xx(raw), capacity),
        "served_p99_ms": report["total"]["ok_latency_us"]["p99"] / 1000,
        "service_ms": overload["service_ms"],
        "served_p99_text": None, "served_p99_over_service": None,
        "shed_p99_ms": None, "shed_with_retry_after": None, "high_success": None,
    }
    p99, service = figures["served_p99_ms"], overload["service_ms"]
    if p99:
        figures["served_p99_text"] = f"{p99:.0f} ms = {p99 / service:.2f}× {service} ms"
        figures["served_p99_over_service"] = p99 / service
    refused = [a for a in raw.get("probe", []) if a["status"] >= 429 or a["status"] == 0]
    if refused:
        latencies = sorted(a["ms"] for a in refused)
        figures["shed_p99_ms"] = latencies[min(len(latencies) - 1,
                                               int(0.99 * len(latencies)))]
        figures["shed_with_retry_after"] = (sum(a["retry_after"] for a in refused)
                                            / len(refused))
    for name, tally in zip(report["class_names"], report["classes"]):
        if name.endswith("=high"):
            figures["high_success"] = 1 - tally["error_rate"]
    return figures


def figures(scenario: str, raw: dict) -> dict:
    """Every issue-19 figure of one scenario run by one proxy."""
    found = {"amplification": amplification(raw), "post_duplicates": post_duplicates(raw)}
    if scenario in ("crash", "hang"):
        found.update(_failed_and_max(raw))
    elif scenario == "gray":
        found.update(_gray(raw))
    elif scenario == "outage":
        found.update(_outage(raw))
    elif scenario == "overload":
        found.update(_overload(raw))
    return found


def _num(pattern: str) -> Callable[[object], str]:
    return lambda value: "-" if value is None else pattern.format(value)


@dataclass(frozen=True)
class Row:
    """One line of the issue's table. `at_most`/`at_least` is the target as a number, on
    `judged` (the figure itself unless its text is not a number); neither: reported only."""
    scenario: str | None    # None: a line of every scenario
    figure: str
    target: str
    key: str
    show: Callable[[object], str]
    at_most: float | None = None
    at_least: float | None = None
    judged: str | None = None

    def value(self, figures: dict) -> float | None:
        return figures.get(self.judged or self.key)

    def judges(self) -> bool:
        return self.at_most is not None or self.at_least is not None

    def met(self, figures: dict) -> bool:
        value = self.value(figures)
        if value is None:
            return False
        if self.at_most is not None:
            return value <= self.at_most + 1e-9
        return value >= self.at_least - 1e-9

    def shortfall(self, figures: dict) -> float:
        """How far the figure is from its target: 0 when met (a figure that meets it does
        not beat another that does), infinite when not measured or not judged."""
        value = self.value(figures)
        if value is None or not self.judges():
            return math.inf
        if self.at_most is not None:
            return max(0.0, value - self.at_most)
        return max(0.0, self.at_least - value)


ROWS = [
    Row("crash", "failed requests (main load)", "0", "failed", _num("{:d}"), at_most=0),
    Row("crash", "max latency (main load)", "≤ 5 ms", "max_ms", _num("{:.0f} ms"),
        at_most=5),
    Row("crash", "POSTs failed (not retryable)", "reported", "post_failed", _num("{:d}")),
    Row("gray", "p99 ÷ healthy p99", "≤ 1.5×", "p99_over_healthy", _num("{:.2f}×"),
        at_most=1.5),
    Row("hang", "failed requests (main load)", "0", "failed", _num("{:d}"), at_most=0),
    Row("hang", "max latency (main load)", "≤ 100 ms", "max_ms", _num("{:.0f} ms"),
        at_most=100),
    Row("hang", "POSTs failed (not retryable)", "reported", "post_failed", _num("{:d}")),
    Row("outage", "upstream hits ÷ client requests, from 1 s in", "≤ 0.2",
        "hits_per_request", _num("{:.2f}"), at_most=0.2),
    Row("outage", "answers' p99 once detected (worst 20 ms point)", "≤ 1 ms",
        "answer_p99_ms", _num("{:.1f} ms"), at_most=1),
    Row("outage", "back to 80% served fresh", "≤ 50 ms", "recovery_s",
        lambda v: "-" if v is None else f"{v * 1000:.0f} ms", at_most=0.05),
    Row("overload", "2xx served by the upstreams, of capacity", "≥ 95%",
        "served_of_capacity", _num("{:.0%}"), at_least=0.95),
    Row("overload", "p99 of upstream-served (2xx) answers", "≤ 1.25 × service time",
        "served_p99_text", lambda v: "-" if v is None else str(v), at_most=1.25,
        judged="served_p99_over_service"),
    Row("overload", "refused answers' p99 (probe)", "≤ 1 ms", "shed_p99_ms",
        _num("{:.1f} ms"), at_most=1),
    Row("overload", "refused answers with Retry-After", "100%", "shed_with_retry_after",
        _num("{:.0%}"), at_least=1),
    Row("overload", "high-priority class success", "≥ 99%", "high_success",
        _num("{:.1%}"), at_least=0.99),
]
PER_SCENARIO_ROWS = [
    Row(None, "upstream amplification", f"≤ {1 + RETRY_BUDGET_RATIO:g}", "amplification",
        _num("{:.2f}×"), at_most=1 + RETRY_BUDGET_RATIO),
    Row(None, "POSTs delivered twice", "0", "post_duplicates", _num("{:d}"), at_most=0),
]


def rows_of(scenario: str, results: dict | None = None) -> list[Row]:
    """The table's lines for a scenario: its own, then those of every scenario (POSTs
    delivered twice only where some run counted them, when `results` are given)."""
    own = [row for row in ROWS if row.scenario == scenario]
    shared = [row for row in PER_SCENARIO_ROWS
              if row.key != "post_duplicates" or results is None or any(
                  run.get("issue19", {}).get(row.key) is not None
                  for run in results.get(scenario, {}).values())]
    return own + shared


def runs_of(proxy: str, runs: dict[str, dict]) -> list[str]:
    """The keys of a proxy's runs in one scenario: `proxy` or `proxy/variant`."""
    return [key for key in runs if key == proxy or key.startswith(proxy + "/")]


def score(scenario: str, run: dict) -> tuple:
    """Smaller is better: fewer targets missed, then how far each figure misses its target
    in the table's order, then the run's error rate and p99 (the run table's figures:
    they decide where every issue-19 figure is met or equally missed, as in down). A
    failed run is last."""
    if "issue19" not in run:
        return (math.inf,)
    figures = run["issue19"]
    judged = [row for row in rows_of(scenario) if row.judges()]
    missed = sum(not row.met(figures) for row in judged)
    ties = tuple(row.shortfall(figures) for row in judged)
    tail = tuple(math.inf if run.get(key) is None else run[key]
                 for key in ("error_rate", "p99_ms"))
    return (missed, *ties, *tail)


def best_run(scenario: str, proxy: str, runs: dict[str, dict]) -> str | None:
    """The key of the proxy's run that did best in the scenario (see `score`)."""
    keys = runs_of(proxy, runs)
    return min(keys, key=lambda key: score(scenario, runs[key])) if keys else None


def _cell(row: Row, runs: dict[str, dict], key: str | None) -> str:
    if key is None:
        return "not run"
    run = runs[key]
    if "issue19" not in run:
        return "run failed"
    text = row.show(run["issue19"].get(row.key))
    variant = key.split("/", 1)[1] if "/" in key else None
    return f"{text} ({variant})" if variant and text != "-" else text


def table(results: dict[str, dict[str, dict]], proxies: list[str]) -> str:
    """The issue's table: scenario, figure, target, then one column per proxy; for a proxy
    run in variants, each scenario's figures come from its best variant there, named."""
    lines = ["| scenario | figure | target | " + " | ".join(proxies) + " |",
             "|---|---|---|" + "---|" * len(proxies)]
    for scenario, runs in results.items():
        best = {proxy: best_run(scenario, proxy, runs) for proxy in proxies}
        for row in rows_of(scenario, results):
            cells = " | ".join(_cell(row, runs, best[proxy]) for proxy in proxies)
            lines.append(f"| {scenario} | {row.figure} | {row.target} | {cells} |")
    return "\n".join(lines)
