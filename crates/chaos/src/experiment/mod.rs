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
mod events;
pub mod inject;
mod load_run;
pub mod measure;
mod wording;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::time::Instant;

use crate::load::Sample;
use crate::report::{Check, ExperimentReport, FaultWindow, Outcome, ProxyEvent, VerifyReport};
use crate::spec::{Expectation, FailureMode, Metric, Spec};
use api::Api;
use events::EventReader;
use inject::{Levers, Services, inject};
use load_run::LoadRun;
use measure::{Labels, Measured, Timing};

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
    let mut left_behind: Option<String> = None;
    for (index, failure) in spec.failures.iter().enumerate() {
        let (report, failure_left) = if *stop.borrow() {
            let reason = "verify was stopped before this experiment";
            (not_run(failure, spec, reason), false)
        } else if let Some(reason) = &left_behind {
            // The system is not the one the spec describes any more: an experiment on it
            // would blame it for what verify left.
            (not_run(failure, spec, reason), false)
        } else {
            let mut progress = |mut progress: Progress| {
                progress.index = index;
                progress.of = spec.failures.len();
                on_progress(&progress);
            };
            experiment(spec, failure, target, &mut stop, &mut progress).await
        };
        if let Some(error) = report.error.as_deref().filter(|_| failure_left) {
            left_behind = Some(format!(
                "experiment {:?} could not take its failure away ({error})",
                report.name
            ));
        }
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

/// Runs one failure mode; also says whether its failure was left in force (it could not be
/// taken away).
async fn experiment<S: Services>(
    spec: &Spec,
    failure: &FailureMode,
    target: &Target<'_, S>,
    stop: &mut watch::Receiver<bool>,
    on_progress: &mut impl FnMut(Progress),
) -> (ExperimentReport, bool) {
    let run = match LoadRun::start(&spec.load, target.traffic, &target.host).await {
        Ok(run) => run,
        Err(reason) => {
            let reason = format!("starting the load: {reason}");
            return (not_run(failure, spec, &reason), false);
        }
    };
    let began = Instant::now();
    let events = EventReader::start(target.admin.clone(), unix_ms(SystemTime::now()));
    let mut watcher = Watcher {
        run: &run,
        began,
        load_s: spec.load.duration.as_secs_f64(),
        name: &failure.name,
        on_progress,
    };
    let driven = drive(spec, failure, target, &mut watcher, stop).await;
    let stopped = *stop.borrow();
    if stopped || driven.error.is_some() || driven.steady_failed.is_some() {
        run.stop();
    }
    let samples = run.finish().await;
    let events = events.finish(target.admin.as_ref()).await;
    let left = driven.left_behind;
    (
        findings(spec, failure, target, &samples, events, driven, stopped),
        left,
    )
}

/// How far an experiment went.
#[derive(Debug, Default)]
struct Driven {
    /// When the failure was in force, if it was caused.
    fault: Option<FaultWindow>,
    /// Why it stopped short, if verify could not go on.
    error: Option<String>,
    /// The steady-state check that failed before the fault, if one did.
    steady_failed: Option<String>,
    /// Whether the failure could not be taken away.
    left_behind: bool,
}

/// The experiment's steps while the load runs: steady state, inject, hold, remove, recover.
/// The failure, once caused, is taken away on every path out.
async fn drive<S: Services>(
    spec: &Spec,
    failure: &FailureMode,
    target: &Target<'_, S>,
    watcher: &mut Watcher<'_, impl FnMut(Progress)>,
    stop: &mut watch::Receiver<bool>,
) -> Driven {
    let mut driven = Driven::default();
    if !watcher.until(failure.start, Phase::Steady, stop).await {
        return driven;
    }
    driven.steady_failed = first_failed(spec, &watcher.run.samples(), target, failure.start);
    if driven.steady_failed.is_some() {
        return driven;
    }
    let levers = Levers {
        admin: target.admin.as_ref(),
        toxiproxy: target.toxiproxy.as_ref(),
        services: target.services,
    };
    // The fault starts as it is caused: what the proxy does during the call (a killed
    // endpoint ejected at once) is its detection.
    let start_s = watcher.began.elapsed().as_secs_f64();
    let injected = match inject(&failure.cause, failure.duration, &failure.name, &levers).await {
        Ok(injected) => injected,
        Err(reason) => {
            driven.error = Some(format!("causing the failure: {reason}"));
            return driven;
        }
    };
    let held = watcher
        .until(failure.start + failure.duration, Phase::Fault, stop)
        .await;
    let removed = injected.remove(&levers).await;
    let end_s = watcher.began.elapsed().as_secs_f64();
    driven.fault = Some(FaultWindow { start_s, end_s });
    match removed {
        Err(reason) => {
            driven.error = Some(format!("taking the failure away: {reason}"));
            driven.left_behind = true;
        }
        Ok(()) if held => {
            watcher
                .until(spec.load.duration, Phase::Recovery, stop)
                .await;
        }
        Ok(()) => {}
    }
    driven
}

/// What the experiment found: every check judged on its samples and events, and how it
/// ended.
fn findings<S>(
    spec: &Spec,
    failure: &FailureMode,
    target: &Target<'_, S>,
    samples: &[Sample],
    events: Vec<ProxyEvent>,
    driven: Driven,
    stopped: bool,
) -> ExperimentReport {
    let load_s = spec.load.duration.as_secs_f64();
    let measured = Measured {
        samples,
        labels: &target.labels,
        timing: Timing {
            load: load_s,
            fault: driven.fault.map(|window| (window.start_s, window.end_s)),
        },
        events: &events,
        recovered_floor: recovered_floor(&spec.steady_state),
    };
    let steady_before: Vec<Check> = spec
        .steady_state
        .iter()
        .map(|expectation| measured.check_before(expectation))
        .collect();
    let (expectations, steady_after): (Vec<Check>, Vec<Check>) = if driven.fault.is_some() {
        (
            failure
                .expectations
                .iter()
                .map(|expectation| measured.check(expectation))
                .collect(),
            spec.steady_state
                .iter()
                .map(|expectation| measured.check_after(expectation))
                .collect(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let held = steady_before
        .iter()
        .chain(&expectations)
        .chain(&steady_after)
        .all(|check| check.passed);
    let (outcome, error) = match (stopped, driven.steady_failed, driven.error) {
        (true, _, error) => (
            Outcome::CouldNotRun,
            Some(error.unwrap_or_else(|| "verify was stopped during this experiment".into())),
        ),
        // The system, not verify, is why the experiment stopped there.
        (false, Some(reason), _) => (
            Outcome::Failed,
            Some(format!(
                "the steady state did not hold before the fault ({reason}): the failure was not caused"
            )),
        ),
        (false, None, Some(error)) => (Outcome::CouldNotRun, Some(error)),
        (false, None, None) if held => (Outcome::Passed, None),
        (false, None, None) => (Outcome::Failed, None),
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
        fault: driven.fault,
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
    samples: &[Sample],
    target: &Target<'_, S>,
    start: Duration,
) -> Option<String> {
    let measured = Measured {
        samples,
        labels: &target.labels,
        timing: Timing {
            load: spec.load.duration.as_secs_f64(),
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

/// Waits through the phases of an experiment, handing progress.
struct Watcher<'a, P> {
    run: &'a LoadRun,
    began: Instant,
    load_s: f64,
    name: &'a str,
    on_progress: &'a mut P,
}

impl<P: FnMut(Progress)> Watcher<'_, P> {
    /// Waits until `at` after the load began in `phase`: false when stopped first.
    async fn until(
        &mut self,
        at: Duration,
        phase: Phase,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let deadline = self.began + at;
        let mut progress = tokio::time::interval(PROGRESS_EVERY);
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

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}
