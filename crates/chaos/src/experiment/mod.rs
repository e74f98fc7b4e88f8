//! Experiments: each failure mode of a spec run as a real experiment under load, and what
//! it found ([`crate::report::ExperimentReport`]).
//!
//! One experiment is: start the spec's load; at the failure's `start`, check the steady
//! state on the load so far (a system already failing it is not broken further: the
//! experiment fails with the reason, as Chaos Toolkit does); cause the failure
//! ([`inject`]); hold it for its `duration`; take it away; let the load run to its end;
//! then judge the steady state on the load's last stretch and every expectation on its
//! window ([`measure`]). The load runs throughout, in the open loop, so the figures are
//! what a caller saw while it all happened.
//!
//! Nothing is left behind: the failure is taken away on every path out (its hold's end,
//! the caller's stop signal, an error), and a fault rule also carries a `ttl`. The proxy's
//! events (breakers, ejections, health, reloads, fault rules) are read from its admin API
//! every second while the load runs, so a busy log cannot roll them away.
//!
//! The runner does not know how the system was started: a topology's processes are
//! [`inject::Services`], a running system's are none.

pub mod api;
pub mod inject;
mod load_run;
pub mod measure;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Method;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::report::{ExperimentReport, FaultWindow, Outcome, ProxyEvent, VerifyReport};
use crate::spec::{Expectation, FailureMode, Metric, Spec};
use api::Api;
use inject::{Levers, Services, inject};
use load_run::LoadRun;
use measure::{Labels, Measured, Timing};

/// How often the proxy's events are read while the load runs.
const EVENTS_EVERY: Duration = Duration::from_secs(1);

/// How often progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// The system under test, as experiments reach it.
#[derive(Debug)]
pub struct Target<'a, S> {
    /// Where the load goes.
    pub traffic: SocketAddr,
    /// The `Host` of every request.
    pub host: String,
    /// The Blastwall admin API, for fault rules and events.
    pub admin: Option<Api>,
    /// A Toxiproxy API, for toxics.
    pub toxiproxy: Option<Api>,
    /// The processes verify started.
    pub services: &'a S,
    /// What request kinds and extra headers mean for scopes.
    pub labels: Labels,
}

/// Where an experiment is, for a progress bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Which experiment, from 0.
    pub index: usize,
    /// Of how many.
    pub of: usize,
    /// Its name.
    pub name: String,
    /// Seconds of load so far.
    pub elapsed: f64,
    /// Seconds of load in all.
    pub load: f64,
    /// What is happening now.
    pub phase: Phase,
    /// Requests answered or failed so far.
    pub requests: u64,
    /// Of which 5xx or unanswered.
    pub errors: u64,
    /// The p99 latency of the last second's requests, ms.
    pub p99_ms: Option<f64>,
}

/// What an experiment is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Load before the fault.
    Steady,
    /// The fault is in force.
    Fault,
    /// Load after the fault.
    Recovery,
    /// Done or stopping.
    Done,
}

/// Runs every failure mode of `spec` against `target`, one after another, handing progress
/// to `on_progress` and each experiment's findings to `on_done` as it ends; `stop` turning true ends the experiment in progress at once (its
/// failure taken away) and skips the rest.
pub async fn verify<S: Services>(
    spec: &Spec,
    target: &Target<'_, S>,
    mut stop: watch::Receiver<bool>,
    mut on_progress: impl FnMut(&Progress),
    mut on_done: impl FnMut(&ExperimentReport),
) -> VerifyReport {
    let started = Instant::now();
    let started_unix_ms = unix_ms(SystemTime::now());
    let mut experiments = Vec::with_capacity(spec.failures.len());
    for (index, failure) in spec.failures.iter().enumerate() {
        let report = if *stop.borrow() {
            not_run(failure, spec, "verify was stopped before this experiment")
        } else {
            let mut progress = |mut progress: Progress| {
                progress.index = index;
                progress.of = spec.failures.len();
                on_progress(&progress);
            };
            experiment(spec, failure, target, &mut stop, &mut progress).await
        };
        on_done(&report);
        experiments.push(report);
    }
    VerifyReport {
        spec: spec.name.clone(),
        started_unix_ms,
        elapsed_s: started.elapsed().as_secs_f64(),
        experiments,
    }
}

/// Runs one failure mode.
async fn experiment<S: Services>(
    spec: &Spec,
    failure: &FailureMode,
    target: &Target<'_, S>,
    stop: &mut watch::Receiver<bool>,
    on_progress: &mut impl FnMut(Progress),
) -> ExperimentReport {
    let levers = Levers {
        admin: target.admin.as_ref(),
        toxiproxy: target.toxiproxy.as_ref(),
        services: target.services,
    };
    let load_s = spec.load.duration.as_secs_f64();
    let run = match LoadRun::start(&spec.load, target.traffic, &target.host).await {
        Ok(run) => run,
        Err(reason) => return not_run(failure, spec, &format!("starting the load: {reason}")),
    };
    let began = Instant::now();
    let began_unix_ms = unix_ms(SystemTime::now());
    let mut events = EventLog::new(target.admin.as_ref(), began_unix_ms);
    let mut watcher = Watcher {
        run: &run,
        began,
        load_s,
        name: &failure.name,
        on_progress,
        events: &mut events,
    };

    let mut error = None;
    let mut fault = None;
    let mut steady_failed = None;
    if watcher.until(failure.start, Phase::Steady, stop).await {
        let so_far = run.samples();
        steady_failed = first_failed(spec, &so_far, target, load_s, failure.start);
        if steady_failed.is_none() {
            match inject(&failure.cause, failure.duration, &failure.name, &levers).await {
                Ok(injected) => {
                    let start_s = began.elapsed().as_secs_f64();
                    let held = watcher
                        .until(failure.start + failure.duration, Phase::Fault, stop)
                        .await;
                    let removed = injected.remove(&levers).await;
                    let end_s = began.elapsed().as_secs_f64();
                    fault = Some(FaultWindow { start_s, end_s });
                    if let Err(reason) = removed {
                        error = Some(format!("taking the failure away: {reason}"));
                    } else if held {
                        watcher
                            .until(spec.load.duration, Phase::Recovery, stop)
                            .await;
                    }
                }
                Err(reason) => error = Some(format!("causing the failure: {reason}")),
            }
        }
    }
    let stopped = *stop.borrow();
    if stopped || error.is_some() || steady_failed.is_some() {
        run.stop();
    }
    let samples = run.finish().await;
    events.read().await;
    let events = events.into_events();

    let timing = Timing {
        load: load_s,
        fault: fault.map(|window| (window.start_s, window.end_s)),
    };
    let measured = Measured {
        samples: &samples,
        labels: &target.labels,
        timing,
        events: &events,
        recovered_floor: recovered_floor(&spec.steady_state),
    };
    let steady_before: Vec<_> = spec
        .steady_state
        .iter()
        .map(|e| measured.check_before(e))
        .collect();
    let (expectations, steady_after) = if fault.is_some() {
        (
            failure
                .expectations
                .iter()
                .map(|e| measured.check(e))
                .collect(),
            spec.steady_state
                .iter()
                .map(|e| measured.check_after(e))
                .collect(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    if stopped && error.is_none() {
        error = Some("verify was stopped during this experiment".into());
    }
    if let Some(reason) = &steady_failed {
        error = Some(format!(
            "the steady state did not hold before the fault ({reason}): the failure was not caused"
        ));
    }
    let held = steady_before
        .iter()
        .chain(&expectations)
        .chain(&steady_after)
        .all(|check| check.passed);
    let outcome = if stopped {
        Outcome::CouldNotRun
    } else if steady_failed.is_some() {
        // The system, not verify, is why the experiment stopped there.
        Outcome::Failed
    } else if error.is_some() {
        Outcome::CouldNotRun
    } else if held {
        Outcome::Passed
    } else {
        Outcome::Failed
    };
    ExperimentReport {
        name: failure.name.clone(),
        failure: failure.failure.clone(),
        required_behaviour: failure.required_behaviour.clone(),
        acceptable_degradation: failure.acceptable_degradation.clone(),
        design: failure.design.clone(),
        outcome,
        error,
        load_s,
        fault,
        steady_before,
        expectations,
        steady_after,
        totals: measured.totals(),
        timeline: measured.timeline(),
        events,
    }
}

/// The first steady-state expectation the load before the fault fails, as a sentence.
fn first_failed<S>(
    spec: &Spec,
    samples: &[crate::load::Sample],
    target: &Target<'_, S>,
    load_s: f64,
    start: Duration,
) -> Option<String> {
    let measured = Measured {
        samples,
        labels: &target.labels,
        timing: Timing {
            load: load_s,
            fault: Some((start.as_secs_f64(), start.as_secs_f64())),
        },
        events: &[],
        recovered_floor: None,
    };
    spec.steady_state
        .iter()
        .map(|expectation| measured.check_before(expectation))
        .find(|check| !check.passed)
        .map(|check| {
            format!(
                "{}: {} against {}",
                check.label, check.measured_text, check.bound
            )
        })
}

/// The availability the steady state asks for: the floor a recovered second must reach.
fn recovered_floor(steady: &[Expectation]) -> Option<f64> {
    steady
        .iter()
        .find_map(|expectation| match expectation.metric {
            Metric::Availability { at_least } => Some(at_least),
            Metric::ErrorRate { at_most } => Some(1.0 - at_most),
            _ => None,
        })
}

/// An experiment that did not run.
fn not_run(failure: &FailureMode, spec: &Spec, reason: &str) -> ExperimentReport {
    ExperimentReport {
        name: failure.name.clone(),
        failure: failure.failure.clone(),
        required_behaviour: failure.required_behaviour.clone(),
        acceptable_degradation: failure.acceptable_degradation.clone(),
        design: failure.design.clone(),
        outcome: Outcome::CouldNotRun,
        error: Some(reason.into()),
        load_s: spec.load.duration.as_secs_f64(),
        fault: None,
        steady_before: Vec::new(),
        expectations: Vec::new(),
        steady_after: Vec::new(),
        totals: Default::default(),
        timeline: Vec::new(),
        events: Vec::new(),
    }
}

/// Waits through the phases of an experiment, reading events and handing progress.
struct Watcher<'a, 'b, P> {
    run: &'b LoadRun,
    began: Instant,
    load_s: f64,
    name: &'b str,
    on_progress: &'b mut P,
    events: &'b mut EventLog<'a>,
}

impl<P: FnMut(Progress)> Watcher<'_, '_, P> {
    /// Waits until `at` after the load began in `phase`: false when stopped first.
    async fn until(
        &mut self,
        at: Duration,
        phase: Phase,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let deadline = self.began + at;
        let mut progress = tokio::time::interval(PROGRESS_EVERY);
        let mut events = tokio::time::interval(EVENTS_EVERY);
        loop {
            if *stop.borrow() {
                return false;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return true,
                changed = stop.changed() => {
                    if changed.is_err() {
                        // Nobody can stop us any more: wait the phase out.
                        tokio::time::sleep_until(deadline).await;
                        return true;
                    }
                }
                _ = progress.tick() => {
                    let progress = self.progress(phase);
                    (self.on_progress)(progress);
                }
                _ = events.tick() => self.events.read().await,
            }
        }
    }

    fn progress(&self, phase: Phase) -> Progress {
        let counts = self.run.counts();
        Progress {
            index: 0,
            of: 0,
            name: self.name.to_owned(),
            elapsed: self.began.elapsed().as_secs_f64().min(self.load_s),
            load: self.load_s,
            phase,
            requests: counts.requests,
            errors: counts.errors,
            p99_ms: counts.recent_p99_ms,
        }
    }
}

/// The proxy's events seen during one experiment, read again and again and merged.
struct EventLog<'a> {
    admin: Option<&'a Api>,
    began_unix_ms: u64,
    seen: BTreeSet<(u64, String, String, String)>,
    events: Vec<ProxyEvent>,
}

impl<'a> EventLog<'a> {
    fn new(admin: Option<&'a Api>, began_unix_ms: u64) -> Self {
        Self {
            admin,
            began_unix_ms,
            seen: BTreeSet::new(),
            events: Vec::new(),
        }
    }

    /// Reads the admin API's events and keeps the new ones since the load began. An
    /// unreachable admin API is not an experiment's failure: its events are then missing,
    /// and an expectation on them fails saying so.
    async fn read(&mut self) {
        let Some(admin) = self.admin else { return };
        let Ok(answer) = admin.call(Method::GET, "/admin/events", None).await else {
            return;
        };
        let Some(list) = answer.get("events").and_then(Value::as_array) else {
            return;
        };
        for event in list {
            let Some(at_ms) = event.get("at_ms").and_then(Value::as_u64) else {
                continue;
            };
            if at_ms < self.began_unix_ms {
                continue;
            }
            let text = |key: &str| {
                event
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            let kind = text("kind");
            let target = [text("cluster"), text("endpoint"), text("route")]
                .into_iter()
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join("/");
            let detail = text("detail");
            if !self
                .seen
                .insert((at_ms, kind.clone(), target.clone(), detail.clone()))
            {
                continue;
            }
            self.events.push(ProxyEvent {
                t: (at_ms - self.began_unix_ms) as f64 / 1000.0,
                kind,
                target,
                detail,
                failure: event
                    .get("failure")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            });
        }
    }

    fn into_events(mut self) -> Vec<ProxyEvent> {
        self.events.sort_by(|a, b| a.t.total_cmp(&b.t));
        self.events
    }
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}
