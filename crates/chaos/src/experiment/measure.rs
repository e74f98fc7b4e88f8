//! From the samples of one experiment's load to figures and verdicts: which requests a
//! window and a scope count, each metric of the spec measured over them, and the per-second
//! timeline the reports plot.
//!
//! Nothing here reads a clock or the network: an experiment hands over its samples (by due
//! time, from the load's start), the proxy's events and when the fault was in force, so every
//! rule below is tested with made-up requests.
//!
//! The rules worth knowing:
//! - A request belongs to the window its **due time** falls in, as the load counts latency
//!   from it: a request due in the fault's last second and answered after it is the fault's.
//!   The steady state before the fault counts only requests that also *ended* before it: one
//!   in flight when the failure came is hit by it.
//! - **Available** means an answer below 500: a 429 or a 404 is the system working as
//!   designed, a 5xx or no answer is not (the spec's definition).
//! - Latency quantiles count every request, failures included, by nearest rank.
//! - **Retry amplification** is attempts at the upstreams (`x-blastwall-attempts`) per
//!   request that made at least one: a request the proxy answered without trying (breaker
//!   open, shed) sends nothing upstream and does not dilute the figure.
//! - **Time to recover** is from the fault's end to the first whole second after which every
//!   whole second's availability is at least the steady state's floor (99% when the steady
//!   state sets none) to the end of the load.

use std::time::Duration;

use crate::load::{FallbackKind, Outcome, Sample, Source};
use crate::report::{Check, ProxyEvent, Second, Sources, Totals};
use crate::spec::{Expectation, Metric, Quantile, Scope, Signal, Window};

use super::wording::{
    bound, fallback_name, label, metric_name, milliseconds, percent, scope_name, unit, window_name,
};

/// The availability a recovered second needs when the steady state sets no floor.
const DEFAULT_RECOVERED: f64 = 0.99;

/// What a sample's request kind and extra headers mean for scopes.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    /// The route of each request kind (by index), when known.
    pub routes: Vec<Option<String>>,
    /// The priority class each extra header sets (by index), when it is the priority header.
    pub classes: Vec<Option<String>>,
}

impl Labels {
    fn route(&self, sample: &Sample) -> Option<&str> {
        self.routes
            .get(usize::from(sample.kind))
            .and_then(|route| route.as_deref())
    }

    /// A request's class: the first priority header it carried, else `normal`, the class of
    /// a request that names none.
    fn class(&self, sample: &Sample) -> &str {
        self.classes
            .iter()
            .enumerate()
            .filter(|(index, _)| *index < 32 && sample.headers & (1 << index) != 0)
            .find_map(|(_, class)| class.as_deref())
            .unwrap_or("normal")
    }
}

/// When things happened in one experiment, seconds from the load's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// How long the load ran.
    pub load: f64,
    /// When the fault was in force, if it was injected.
    pub fault: Option<(f64, f64)>,
}

impl Timing {
    /// The span `window` covers: `None` when it does not exist (no fault injected).
    fn span(&self, window: Window) -> Option<(f64, f64)> {
        match window {
            Window::Run => Some((0.0, self.load)),
            Window::Fault => self.fault,
            Window::Recovery => self.fault.map(|(_, end)| (end, self.load)),
        }
    }

    /// The steady state's span before the fault: the load up to it (all of it without one).
    pub fn before(&self) -> (f64, f64) {
        (0.0, self.fault.map_or(self.load, |(start, _)| start))
    }

    /// The steady state's span after the fault: the load's last stretch, as long as the
    /// stretch before the fault and never reaching back into it.
    pub fn after(&self) -> (f64, f64) {
        match self.fault {
            Some((start, end)) => ((self.load - start).max(end), self.load),
            None => (0.0, self.load),
        }
    }
}

/// Everything an experiment measured, and what its checks are judged on.
#[derive(Debug)]
pub struct Measured<'a> {
    /// Every request, in any order.
    pub samples: &'a [Sample],
    /// What kinds and headers mean.
    pub labels: &'a Labels,
    /// When the fault was in force.
    pub timing: Timing,
    /// The proxy's events, `t` from the load's start.
    pub events: &'a [ProxyEvent],
    /// The availability a recovered second needs.
    pub recovered_floor: Option<f64>,
}

impl Measured<'_> {
    /// The requests of `scope` due within `span`.
    fn select(&self, span: (f64, f64), scope: &Scope) -> Vec<&Sample> {
        self.select_ended(span, scope, f64::INFINITY)
    }

    /// The requests of `scope` due within `span` that ended before `ended_by`.
    fn select_ended(&self, span: (f64, f64), scope: &Scope, ended_by: f64) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|sample| {
                let due = sample.due.as_secs_f64();
                due >= span.0
                    && due < span.1
                    && (sample.due + sample.latency).as_secs_f64() < ended_by
            })
            .filter(|sample| self.in_scope(sample, scope))
            .collect()
    }

    /// Whether `sample` is one of the requests `scope` counts.
    fn in_scope(&self, sample: &Sample, scope: &Scope) -> bool {
        match scope {
            Scope::All => true,
            Scope::Route(route) => self.labels.route(sample) == Some(route),
            Scope::Class(class) => self.labels.class(sample) == class,
        }
    }

    /// Judges a failure mode's expectation over its own window.
    pub fn check(&self, expectation: &Expectation) -> Check {
        let span = self.timing.span(expectation.window);
        self.judge(expectation, span, window_name(expectation.window))
    }

    /// Judges a steady-state expectation over the stretch before the fault.
    pub fn check_before(&self, expectation: &Expectation) -> Check {
        self.judge(expectation, Some(self.timing.before()), "before")
    }

    /// Judges a steady-state expectation over the load's last stretch.
    pub fn check_after(&self, expectation: &Expectation) -> Check {
        self.judge(expectation, Some(self.timing.after()), "after")
    }

    fn judge(&self, expectation: &Expectation, span: Option<(f64, f64)>, window: &str) -> Check {
        let mut check = Check {
            label: label(expectation, window),
            metric: metric_name(&expectation.metric),
            window: window.into(),
            scope: scope_name(&expectation.scope),
            bound: bound(&expectation.metric),
            measured: None,
            measured_text: String::new(),
            unit: unit(&expectation.metric).into(),
            passed: false,
            note: None,
        };
        let Some(span) = span else {
            check.measured_text = "not measured".into();
            check.note = Some("the fault was never injected".into());
            return check;
        };
        match &expectation.metric {
            Metric::TimeToDetect { signal, at_most } => self.detect(&mut check, *signal, *at_most),
            Metric::TimeToRecover { at_most } => {
                self.recover(&mut check, &expectation.scope, *at_most);
            }
            metric => {
                // Before the fault, only requests that ended before it: one in flight when
                // the failure came (a POST whose upstream was killed under it) is the
                // failure's, not the steady state's.
                let ended_by = if window == "before" {
                    span.1
                } else {
                    f64::INFINITY
                };
                let requests = self.select_ended(span, &expectation.scope, ended_by);
                if requests.is_empty() {
                    check.measured_text = "no requests".into();
                    check.note = Some(format!(
                        "no request of {} was due from {:.1}s to {:.1}s",
                        check.scope, span.0, span.1
                    ));
                    return check;
                }
                judge_requests(&mut check, metric, &requests);
            }
        }
        check
    }

    fn detect(&self, check: &mut Check, signal: Signal, at_most: Duration) {
        let Some((start, end)) = self.timing.fault else {
            check.measured_text = "not measured".into();
            return;
        };
        let kind = match signal {
            Signal::BreakerOpen => "breaker_opened",
            Signal::EndpointEjected => "endpoint_ejected",
        };
        let first = self
            .events
            .iter()
            // Only while the failure was in force: an event after it is not its detection.
            .filter(|event| event.kind == kind && event.t >= start && event.t <= end)
            .map(|event| event.t - start)
            .min_by(f64::total_cmp);
        match first {
            Some(after) => seconds_check(check, after, at_most),
            None => {
                check.measured_text = "never".into();
                check.note = Some(format!("no {kind} event while the fault was in force"));
            }
        }
    }

    fn recover(&self, check: &mut Check, scope: &Scope, at_most: Duration) {
        let Some((_, end)) = self.timing.fault else {
            check.measured_text = "not measured".into();
            return;
        };
        let floor = self.recovered_floor.unwrap_or(DEFAULT_RECOVERED);
        let first = end.ceil() as u64;
        let last = self.timing.load.floor() as u64;
        if first >= last {
            // No whole second after the fault (it was taken away late): the stretch that
            // is left says whether the system was back.
            if self.held_from(end, self.timing.load, scope, floor) {
                seconds_check(check, 0.0, at_most);
            } else {
                check.measured_text = "not recovered".into();
                check.note = Some("the load ended less than a second after the fault".into());
            }
            return;
        }
        // Walking back from the load's end, the earliest second from which every second
        // after it held the floor. The seconds after the last request (a stopped load's,
        // of a spec's "100 years") have none, so hold: the walk starts at the last request.
        let walk_from = last.min(self.busy_seconds().max(first));
        // (available, requests) of each second from `first`, in one pass over the samples.
        let mut seconds = vec![(0_u64, 0_u64); (walk_from - first) as usize];
        for sample in self.samples {
            let second = sample.due.as_secs();
            if (first..walk_from).contains(&second) && self.in_scope(sample, scope) {
                let counts = &mut seconds[(second - first) as usize];
                counts.0 += u64::from(is_available(sample));
                counts.1 += 1;
            }
        }
        let mut recovered_at = (walk_from < last).then_some(walk_from as f64);
        for (index, (available, requests)) in seconds.into_iter().enumerate().rev() {
            if requests > 0 && (available as f64) < floor * requests as f64 {
                break;
            }
            recovered_at = Some((first + index as u64) as f64);
        }
        match recovered_at {
            Some(at) => {
                let after = (at - end).max(0.0);
                // A system already back in the fault's last partial second recovered at once.
                let after = if at == first as f64 && self.held_from(end, at, scope, floor) {
                    0.0
                } else {
                    after
                };
                seconds_check(check, after, at_most);
            }
            None => {
                check.measured_text = "not recovered".into();
                check.note = Some(format!(
                    "availability was under {} in the load's last second",
                    percent(floor)
                ));
            }
        }
    }

    /// The seconds from the load's start to the end of the one the last request was due in.
    fn busy_seconds(&self) -> u64 {
        self.samples
            .iter()
            .map(|sample| sample.due.as_secs().saturating_add(1))
            .max()
            .unwrap_or(0)
    }

    /// Whether the requests due from `end` to `until` held `floor`.
    fn held_from(&self, end: f64, until: f64, scope: &Scope, floor: f64) -> bool {
        let requests = self.select((end, until), scope);
        requests.is_empty() || availability(&requests) >= floor
    }

    /// The totals of the whole load.
    pub fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for sample in self.samples {
            totals.requests += 1;
            if is_available(sample) {
                totals.available += 1;
            } else {
                totals.errors += 1;
            }
            if matches!(sample.source, Source::Fallback(_)) {
                totals.fallbacks += 1;
            }
            totals.attempts += u64::from(sample.attempts);
        }
        totals
    }

    /// One point per whole or partial second of load, up to the last request's: a stopped
    /// load (of a spec's "100 years") ends there.
    pub fn timeline(&self) -> Vec<Second> {
        let seconds = (self.timing.load.ceil().max(0.0) as u64).min(self.busy_seconds());
        let seconds = usize::try_from(seconds).unwrap_or(usize::MAX);
        let mut buckets: Vec<Vec<&Sample>> = vec![Vec::new(); seconds];
        for sample in self.samples {
            let second = sample.due.as_secs() as usize;
            if let Some(bucket) = buckets.get_mut(second) {
                bucket.push(sample);
            }
        }
        buckets
            .into_iter()
            .enumerate()
            .map(|(t, requests)| second(t, &requests))
            .collect()
    }
}

fn second(t: usize, requests: &[&Sample]) -> Second {
    let mut latencies: Vec<Duration> = requests.iter().map(|sample| sample.latency).collect();
    latencies.sort_unstable();
    let ms = |quantile| nearest_rank(&latencies, quantile).map(|at| at.as_secs_f64() * 1000.0);
    let mut sources = Sources::default();
    for sample in requests {
        *source_count(&mut sources, sample) += 1;
    }
    Second {
        t: u32::try_from(t).unwrap_or(u32::MAX),
        requests: requests.len() as u64,
        error_rate: if requests.is_empty() {
            0.0
        } else {
            1.0 - availability(requests)
        },
        p50_ms: ms(0.50),
        p95_ms: ms(0.95),
        p99_ms: ms(0.99),
        sources,
    }
}

/// The one count of `sources` a request adds to.
fn source_count<'a>(sources: &'a mut Sources, sample: &Sample) -> &'a mut u64 {
    match sample.source {
        Source::Fallback(FallbackKind::Static) => &mut sources.fallback_static,
        Source::Fallback(FallbackKind::Cluster) => &mut sources.fallback_cluster,
        Source::Fallback(FallbackKind::Stale | FallbackKind::Other) => &mut sources.fallback_stale,
        Source::Refused => &mut sources.shed,
        Source::ProxyError | Source::NoAnswer => &mut sources.failed,
        Source::Upstream => &mut sources.upstream,
    }
}

fn is_available(sample: &Sample) -> bool {
    matches!(sample.outcome, Outcome::Status(status) if status < 500)
}

fn availability(requests: &[&Sample]) -> f64 {
    let available = requests
        .iter()
        .filter(|sample| is_available(sample))
        .count();
    available as f64 / requests.len() as f64
}

fn nearest_rank(sorted: &[Duration], quantile: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Judges a metric measured over requests (all but the time-based ones).
fn judge_requests(check: &mut Check, metric: &Metric, requests: &[&Sample]) {
    let count = requests.len() as f64;
    match metric {
        Metric::Availability { at_least } => {
            ratio_check(check, availability(requests), |value| value >= *at_least);
        }
        Metric::ErrorRate { at_most } => {
            ratio_check(check, 1.0 - availability(requests), |value| {
                value <= *at_most
            });
        }
        Metric::Latency { quantile, at_most } => {
            let mut latencies: Vec<Duration> =
                requests.iter().map(|sample| sample.latency).collect();
            latencies.sort_unstable();
            let at = nearest_rank(&latencies, quantile_of(*quantile)).unwrap_or_default();
            check.measured = Some(at.as_secs_f64() * 1000.0);
            check.measured_text = milliseconds(at);
            check.passed = at <= *at_most;
        }
        Metric::FallbackShare {
            kind,
            at_least,
            at_most,
        } => {
            let served = requests
                .iter()
                .filter(|sample| match (sample.source, kind.as_deref()) {
                    (Source::Fallback(_), None) => true,
                    (Source::Fallback(served), Some(wanted)) => fallback_name(served) == wanted,
                    _ => false,
                })
                .count() as f64;
            ratio_check(check, served / count, |value| {
                at_least.is_none_or(|floor| value >= floor)
                    && at_most.is_none_or(|ceiling| value <= ceiling)
            });
        }
        Metric::Statuses { allowed } => statuses_check(check, allowed, requests),
        Metric::RetryAmplification { at_most } => {
            let tried: Vec<u64> = requests
                .iter()
                .map(|sample| u64::from(sample.attempts))
                .filter(|attempts| *attempts > 0)
                .collect();
            if tried.is_empty() {
                // Not a pass: answers that do not say how many attempts they took (a proxy
                // sending no decision headers) look the same, and nothing was measured.
                check.measured_text = "not measured".into();
                check.note = Some(
                    "no answer said it reached an upstream (x-blastwall-attempts): are the proxy's decision headers off?"
                        .into(),
                );
                return;
            }
            let factor = tried.iter().sum::<u64>() as f64 / tried.len() as f64;
            check.measured = Some(factor);
            check.measured_text = format!("{factor:.2}×");
            check.passed = factor <= *at_most + 1e-9;
        }
        Metric::TimeToDetect { .. } | Metric::TimeToRecover { .. } => {
            unreachable!("time metrics are judged on events and seconds, not requests")
        }
    }
}

fn statuses_check(check: &mut Check, allowed: &[u16], requests: &[&Sample]) {
    let mut others: std::collections::BTreeMap<String, u64> = Default::default();
    for sample in requests {
        let name = match sample.outcome {
            Outcome::Status(status) if allowed.contains(&status) => continue,
            Outcome::Status(status) => status.to_string(),
            Outcome::Error(_) => "no answer".into(),
        };
        *others.entry(name).or_default() += 1;
    }
    check.passed = others.is_empty();
    let outside: u64 = others.values().sum();
    check.measured = Some(outside as f64 / requests.len() as f64);
    check.unit = "ratio".into();
    if others.is_empty() {
        check.measured_text = "all allowed".into();
    } else {
        let named: Vec<String> = others
            .iter()
            .map(|(status, times)| format!("{status} ×{times}"))
            .collect();
        check.measured_text = named.join(", ");
        check.note = Some(format!(
            "{outside} of {} answers outside the allowed statuses",
            requests.len()
        ));
    }
}

fn ratio_check(check: &mut Check, value: f64, holds: impl Fn(f64) -> bool) {
    check.measured = Some(value);
    check.measured_text = percent(value);
    check.passed = holds(value);
}

fn seconds_check(check: &mut Check, seconds: f64, at_most: Duration) {
    check.measured = Some(seconds);
    check.measured_text = if seconds < 1.0 {
        format!("{:.0} ms", seconds * 1000.0)
    } else {
        format!("{seconds:.1} s")
    };
    check.passed = seconds <= at_most.as_secs_f64();
}

fn quantile_of(quantile: Quantile) -> f64 {
    match quantile {
        Quantile::P50 => 0.50,
        Quantile::P95 => 0.95,
        Quantile::P99 => 0.99,
    }
}

#[cfg(test)]
#[path = "measure_tests.rs"]
mod tests;
