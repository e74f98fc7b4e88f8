"""Unit tests of the resilience benchmark's figures, on synthetic runs (no processes).

Issue 19's table is only as good as the arithmetic under it: these build the JSON one run
keeps (a `blastwall load` report with its timeline, the mocks' counters at marked moments,
the side POSTs' report, the refusal probe's answers) by hand, small enough to compute the
expected figure on paper, and check each figure, the choice of an anchor's variant and
the table. Run with `python3 -m unittest discover -s bench -p 'test_*.py'`.
"""

from __future__ import annotations

import math
import unittest

import resilience
import resilience_targets as targets


def point(t: float, ok: int, failed: int = 0, p99_ms: float = 3.0) -> dict:
    return {"t": t, "ok": ok, "failed": failed, "p99_us": p99_ms * 1000}


def load_report(timeline: list[dict], interval: float = 0.1, rate: int = 100,
                failed: int = 0, max_ms: float = 5.0, p99_ms: float = 4.0,
                ok_p99_ms: float = 4.0, elapsed_s: float = 10.0) -> dict:
    """A `blastwall load --json` report with only what the figures read."""
    sent = sum(p["ok"] + p["failed"] for p in timeline)
    return {
        "rate": rate, "sent": sent, "requests": sent, "elapsed_s": elapsed_s,
        "timeline_interval_s": interval, "timeline": timeline,
        "total": {"failed": failed,
                  "latency_us": {"max": max_ms * 1000, "p99": p99_ms * 1000},
                  "ok_latency_us": {"p99": ok_p99_ms * 1000}},
        "class_names": [], "classes": [],
    }


def counters(requests: int, ok: int = 0, duplicates: int | None = 0) -> dict:
    return {"requests": requests, "ok": ok, "duplicates": duplicates}


def raw_run(report: dict, before: dict | None = None, after: dict | None = None,
            side: dict | None = None, marks: dict | None = None, **extra) -> dict:
    return {"report": report, "side": side, "marks": marks or {},
            "counters_before": before or counters(0), "counters_after": after or counters(0),
            "probe": [], **extra}


def side_posts(sent: int = 10, failed: int = 0, rate: float = 5.0) -> dict:
    return {"rate": rate, "sent": sent, "failed": failed, "max_ms": 500.0}


class AmplificationTest(unittest.TestCase):
    def test_hits_over_requests_counts_the_side_posts_as_sent(self):
        report = load_report([point(0.0, 90)])
        raw = raw_run(report, counters(1000), counters(1110), side=side_posts(sent=10))
        self.assertAlmostEqual(targets.amplification(raw), 110 / 100)

    def test_amplification_is_none_when_nothing_was_sent(self):
        raw = raw_run(load_report([]), counters(0), counters(5))
        self.assertIsNone(targets.amplification(raw))


class PostDuplicatesTest(unittest.TestCase):
    def test_duplicates_are_the_growth_of_the_mocks_counter(self):
        raw = raw_run(load_report([point(0.0, 1)]), counters(0, duplicates=3),
                      counters(10, duplicates=5), side=side_posts())
        self.assertEqual(targets.post_duplicates(raw), 2)

    def test_no_side_load_means_duplicates_not_counted(self):
        raw = raw_run(load_report([point(0.0, 1)]), counters(0), counters(10))
        self.assertIsNone(targets.post_duplicates(raw))

    def test_a_mock_without_the_counter_gives_none_not_zero(self):
        raw = raw_run(load_report([point(0.0, 1)]), counters(0, duplicates=None),
                      counters(10, duplicates=None), side=side_posts())
        self.assertIsNone(targets.post_duplicates(raw))


class CrashAndHangTest(unittest.TestCase):
    def test_failed_and_max_are_the_main_loads_and_failed_posts_are_apart(self):
        report = load_report([point(0.0, 100)], failed=2, max_ms=40.0)
        raw = raw_run(report, side=side_posts(sent=30, failed=4))
        found = targets.figures("hang", raw)
        self.assertEqual(found["failed"], 2)
        self.assertEqual(found["max_ms"], 40.0)   # the side POSTs' 500 ms is not counted
        self.assertEqual(found["post_failed"], 4)
        self.assertEqual(found["post_sent"], 30)

    def test_without_side_load_failed_posts_are_not_measured(self):
        found = targets.figures("crash", raw_run(load_report([point(0.0, 1)])))
        self.assertIsNone(found["post_failed"])


class GrayTest(unittest.TestCase):
    def test_p99_is_divided_by_the_median_healthy_point_p99(self):
        timeline = [point(0.0, 10, p99_ms=4), point(0.1, 10, p99_ms=6),
                    point(0.2, 10, p99_ms=5), point(0.3, 10, p99_ms=200)]
        raw = raw_run(load_report(timeline, p99_ms=20.0), marks={"fault_at": 0.3})
        found = targets.figures("gray", raw)
        self.assertEqual(found["healthy_p99_ms"], 5.0)
        self.assertAlmostEqual(found["p99_over_healthy"], 4.0)


def outage_run(after_end: list[tuple[int, int]], window_p99_ms: list[float],
               hits: int = 30) -> dict:
    """An outage from 1.0 s, measured from 2.0 s, over at 3.0 s, at 100 requests/s in
    20 ms points; `after_end`: (ok, failed) of the points from 3.0 s on."""
    timeline = [point(round(i * 0.02, 2), 2) for i in range(50)]              # healthy
    timeline += [point(round(1.0 + i * 0.02, 2), 0, 2) for i in range(50)]    # detecting
    timeline += [point(round(2.0 + i * 0.02, 2), 0, 2, p99_ms=window_p99_ms[i])
                 for i in range(50)]
    timeline += [point(round(3.0 + i * 0.02, 2), ok, failed)
                 for i, (ok, failed) in enumerate(after_end)]
    marks = {"outage_measured_at": 2.0, "outage_measured": counters(500),
             "outage_ended_at": 3.0, "outage_ended": counters(500 + hits)}
    return raw_run(load_report(timeline, interval=0.02), marks=marks)


class OutageTest(unittest.TestCase):
    def test_hits_count_from_one_second_in_over_the_requests_due_then(self):
        found = targets.figures("outage", outage_run([(2, 0)] * 5, [1.0] * 50, hits=30))
        # 1 s at 100 requests/s due between the two marks.
        self.assertAlmostEqual(found["hits_per_request"], 0.30)

    def test_side_posts_are_due_too(self):
        raw = outage_run([(2, 0)] * 5, [1.0] * 50, hits=30)
        raw["side"] = side_posts(rate=50.0)
        found = targets.figures("outage", raw)
        self.assertAlmostEqual(found["hits_per_request"], 30 / 150)

    def test_answer_p99_is_the_worst_point_of_the_window(self):
        p99s = [0.5] * 50
        p99s[17] = 9.5
        found = targets.figures("outage", outage_run([(2, 0)] * 5, p99s))
        self.assertEqual(found["answer_p99_ms"], 9.5)

    def test_recovery_is_immediate_when_the_first_point_after_is_fresh(self):
        found = targets.figures("outage", outage_run([(2, 0)] * 10, [1.0] * 50))
        self.assertEqual(found["recovery_s"], 0.0)

    def test_recovery_waits_for_the_point_from_which_every_later_one_is_fresh(self):
        # 3.00, 3.02 stale; 3.04 fresh (4 of 5 = 80%); 3.06 stale again; fresh from 3.08.
        after = [(0, 2), (1, 2), (4, 1), (1, 1), (2, 0), (2, 0), (5, 0)]
        found = targets.figures("outage", outage_run(after, [1.0] * 50))
        self.assertAlmostEqual(found["recovery_s"], 0.08)

    def test_never_fresh_again_means_no_recovery_figure(self):
        found = targets.figures("outage", outage_run([(0, 2)] * 10, [1.0] * 50))
        self.assertIsNone(found["recovery_s"])

    def test_without_marks_every_outage_figure_is_none(self):
        found = targets.figures("outage", raw_run(load_report([point(0.0, 1)])))
        self.assertEqual([found[k] for k in ("hits_per_request", "answer_p99_ms",
                                              "recovery_s")], [None, None, None])


def overload_run(served: int, probe: list[dict], high_error_rate: float = 0.0) -> dict:
    report = load_report([point(0.0, 10)], ok_p99_ms=66.0, elapsed_s=10.0)
    report["total"]["statuses"] = {"200": 700, "204": 100, "503": 2000}
    report["class_names"] = ["x-blastwall-priority=high", "x-blastwall-priority=low"]
    report["classes"] = [{"error_rate": high_error_rate}, {"error_rate": 0.9}]
    return raw_run(report, counters(0, ok=0), counters(served * 2, ok=served),
                   probe=probe, overload={"service_ms": 60, "capacity_per_s": 100.0})


def answer(status: int, ms: float, retry_after: bool = True) -> dict:
    return {"status": status, "ms": ms, "retry_after": retry_after}


class OverloadTest(unittest.TestCase):
    def test_served_share_is_upstream_2xx_over_capacity_for_the_runs_length(self):
        found = targets.figures("overload", overload_run(950, []))
        self.assertAlmostEqual(found["served_of_capacity"], 950 / (100.0 * 10.0))

    def test_served_by_clients_counts_every_clients_2xx_and_no_health_check(self):
        raw = overload_run(950, [answer(200, 60.0), answer(503, 0.5)])
        raw["side"] = side_posts() | {"statuses": {"201": 49, "503": 30}}
        found = targets.figures("overload", raw)
        self.assertAlmostEqual(found["served_of_capacity_by_clients"],
                               (700 + 100 + 49 + 1) / 1000)

    def test_served_p99_is_compared_with_the_service_time(self):
        found = targets.figures("overload", overload_run(950, []))
        self.assertAlmostEqual(found["served_p99_over_service"], 1.1)
        self.assertEqual(found["served_p99_text"], "66 ms = 1.10× 60 ms")

    def test_refused_p99_and_retry_after_share_read_only_refusals(self):
        probe = [answer(200, 60.0, retry_after=False)] * 50
        probe += [answer(503, 0.5 + i / 100) for i in range(99)]
        probe += [answer(0, 3000.0, retry_after=False)]       # no answer at all: refused
        found = targets.figures("overload", overload_run(950, probe))
        # 100 refusals; the 99th percentile is the 100th, slowest one.
        self.assertEqual(found["shed_p99_ms"], 3000.0)
        self.assertAlmostEqual(found["shed_with_retry_after"], 0.99)

    def test_no_refusals_means_no_refusal_figures(self):
        found = targets.figures("overload", overload_run(950, [answer(200, 60.0)] * 10))
        self.assertIsNone(found["shed_p99_ms"])
        self.assertIsNone(found["shed_with_retry_after"])

    def test_high_class_success_is_one_minus_its_error_rate(self):
        found = targets.figures("overload", overload_run(950, [], high_error_rate=0.25))
        self.assertAlmostEqual(found["high_success"], 0.75)


def scored(figures: dict, error_rate: float = 0.0, p99_ms: float = 1.0) -> dict:
    return {"issue19": figures, "error_rate": error_rate, "p99_ms": p99_ms}


class VariantChoiceTest(unittest.TestCase):
    def test_the_variant_meeting_more_targets_wins(self):
        runs = {
            "nginx/failure": scored({"served_of_capacity": 0.02, "high_success": 0.01,
                                     "amplification": 0.01, "shed_p99_ms": 0.5}),
            "nginx/capacity": scored({"served_of_capacity": 0.96, "high_success": 0.5,
                                      "amplification": 0.5, "shed_p99_ms": 0.5,
                                      "served_p99_over_service": 1.1}),
        }
        self.assertEqual(targets.best_run("overload", "nginx", runs), "nginx/capacity")

    def test_a_tie_in_targets_met_goes_to_the_better_first_figure(self):
        # Both meet two of four: failure stops hitting the replicas, capacity recovers fast.
        runs = {
            "haproxy/capacity": scored({"hits_per_request": 1.0, "answer_p99_ms": 2.0,
                                        "recovery_s": 0.02, "amplification": 1.0}),
            "haproxy/failure": scored({"hits_per_request": 0.01, "answer_p99_ms": 3.0,
                                       "recovery_s": 1.3, "amplification": 0.4}),
        }
        self.assertEqual(targets.best_run("outage", "haproxy", runs), "haproxy/failure")

    def test_a_figure_not_measured_counts_as_missed(self):
        runs = {"nginx/failure": scored({"failed": None, "max_ms": 3.0}),
                "nginx/capacity": scored({"failed": 0, "max_ms": 30.0})}
        self.assertEqual(targets.best_run("crash", "nginx", runs), "nginx/capacity")

    def test_a_failed_run_is_never_chosen_over_one_that_ran(self):
        runs = {"nginx/failure": {"failed": "nginx did not start"},
                "nginx/capacity": scored({"failed": 9, "max_ms": 900.0})}
        self.assertEqual(targets.best_run("crash", "nginx", runs), "nginx/capacity")

    def test_equal_figures_fall_back_to_the_runs_error_rate(self):
        runs = {"nginx/failure": scored({"amplification": 0.4}, error_rate=0.7),
                "nginx/capacity": scored({"amplification": 0.4}, error_rate=0.6)}
        self.assertEqual(targets.best_run("down", "nginx", runs), "nginx/capacity")

    def test_a_proxy_not_run_has_no_best_run(self):
        self.assertIsNone(targets.best_run("down", "haproxy", {"blastwall": scored({})}))

    def test_reported_rows_do_not_judge(self):
        row = next(r for r in targets.ROWS if r.key == "post_failed")
        self.assertFalse(row.judges())
        self.assertEqual(row.shortfall({"post_failed": 3}), math.inf)

    def test_figures_that_both_meet_their_target_do_not_decide(self):
        runs = {"haproxy/failure": scored({"amplification": 0.3}, error_rate=0.7),
                "haproxy/capacity": scored({"amplification": 0.4}, error_rate=0.6)}
        self.assertEqual(targets.best_run("down", "haproxy", runs), "haproxy/capacity")


class TableTest(unittest.TestCase):
    def results(self) -> dict:
        return {"overload": {
            "blastwall": scored({"served_of_capacity": 0.92}),
            "nginx/failure": scored({"served_of_capacity": 0.02}),
            "nginx/capacity": scored({"served_of_capacity": 0.96}),
        }}

    def test_an_anchors_cells_name_the_variant_they_come_from(self):
        text = targets.table(self.results(), ["blastwall", "nginx", "haproxy"])
        line = next(l for l in text.splitlines() if "of capacity" in l)
        self.assertEqual(line, "| overload | 2xx served by the upstreams, of capacity "
                               "| ≥ 95% | 92% | 96% (capacity) | not run |")

    def test_a_figure_not_measured_prints_a_dash_without_a_variant(self):
        text = targets.table(self.results(), ["nginx"])
        line = next(l for l in text.splitlines() if "high-priority" in l)
        self.assertTrue(line.endswith("| - |"), line)

    def test_post_rows_appear_only_where_posts_were_counted(self):
        text = targets.table(self.results(), ["blastwall"])
        self.assertNotIn("POSTs delivered twice", text)

    def test_the_run_table_has_a_row_per_anchor_variant(self):
        results = {"crash": {
            key: {"error_rate": 0.0, "p50_ms": 5.0, "p99_ms": 9.0,
                  "amplification_after_fault": 1.0, "error_rate_after_fault": 0.0}
            for key in ("blastwall", "nginx/failure", "nginx/capacity")}}
        labels = [line.split(" | ")[1] for line in resilience.table(results).splitlines()[2:]]
        self.assertEqual(labels, ["blastwall", "nginx (failure)", "nginx (capacity)"])


class TimeUntilTest(unittest.TestCase):
    def test_time_until_counts_to_the_point_from_which_every_later_one_is_good(self):
        timeline = [point(0.0, 1, 1), point(0.1, 1, 0), point(0.2, 0, 1),
                    point(0.3, 1, 0), point(0.4, 1, 0)]
        found = resilience.time_until(timeline, 0.1, 0.05, lambda p: p["failed"] == 0)
        self.assertAlmostEqual(found, 0.25)

    def test_time_until_is_none_when_the_run_ends_bad(self):
        timeline = [point(0.0, 1, 0), point(0.1, 0, 1)]
        self.assertIsNone(resilience.time_until(timeline, 0.1, 0.0,
                                                lambda p: p["failed"] == 0))


class ConfigsTest(unittest.TestCase):
    def test_each_anchor_variant_writes_its_own_capacity_setting(self):
        from resilience_configs import OVERLOAD_CAPACITY, haproxy_config, nginx_config
        ports = [1001, 1002, 1003]
        self.assertNotIn("max_conns", nginx_config("/tmp", 9, ports, "failure"))
        self.assertIn(f"max_conns={OVERLOAD_CAPACITY}", nginx_config("/tmp", 9, ports,
                                                                    "capacity"))
        self.assertNotIn("maxconn 2\n", haproxy_config(9, ports, "failure"))
        self.assertIn(f"maxconn {OVERLOAD_CAPACITY}", haproxy_config(9, ports, "capacity"))
        self.assertNotIn(" 503", haproxy_config(9, ports, "capacity").split("retry-on")[1]
                         .splitlines()[0])

    def test_an_unknown_variant_is_refused(self):
        from resilience_configs import nginx_config
        with self.assertRaises(ValueError):
            nginx_config("/tmp", 9, [1], "fast")


if __name__ == "__main__":
    unittest.main()
