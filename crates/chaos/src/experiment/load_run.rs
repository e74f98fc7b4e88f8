//! The load of one experiment, watched while it runs: the samples so far (for the steady
//! state at the fault's start), counts for the progress line, and a stop.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use http::HeaderValue;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::load::{self, Outcome, Plan, Sample, SampleLog};
use crate::spec::Load;

/// A load running in a task of its own.
pub(super) struct LoadRun {
    log: SampleLog,
    stop: watch::Sender<bool>,
    task: JoinHandle<Vec<Sample>>,
    counts: Mutex<Tally>,
}

/// What the progress line shows.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Counts {
    /// Requests ended so far.
    pub requests: u64,
    /// Of which 5xx or unanswered.
    pub errors: u64,
    /// The p99 latency of the requests that ended since the last look, ms.
    pub recent_p99_ms: Option<f64>,
}

#[derive(Debug, Default)]
struct Tally {
    read: usize,
    counts: Counts,
}

impl LoadRun {
    /// Starts the spec's load against `addr`, `Host: host`, and returns once its
    /// connections are open and its clock has started: due times count from then.
    pub(super) async fn start(load: &Load, addr: SocketAddr, host: &str) -> Result<Self, String> {
        let host =
            HeaderValue::from_str(host).map_err(|_| format!("{host:?} is not a Host header"))?;
        let plan = Plan::from_spec(load, addr, host).map_err(|error| error.to_string())?;
        let log = SampleLog::new();
        let (stop, stopped) = watch::channel(false);
        let (started, clock) = oneshot::channel();
        let task = tokio::spawn(run(plan, log.clone(), started, stopped));
        clock
            .await
            .map_err(|_| "the load ended before it started".to_owned())?;
        Ok(Self {
            log,
            stop,
            task,
            counts: Mutex::new(Tally::default()),
        })
    }

    /// Every request ended so far.
    pub(super) fn samples(&self) -> Vec<Sample> {
        self.log.read_from(0)
    }

    /// Counts so far, for the progress line.
    pub(super) fn counts(&self) -> Counts {
        let mut tally = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let new = self.log.read_from(tally.read);
        tally.read += new.len();
        tally.counts.requests += new.len() as u64;
        tally.counts.errors += new
            .iter()
            .filter(|sample| !matches!(sample.outcome, Outcome::Status(status) if status < 500))
            .count() as u64;
        if !new.is_empty() {
            let mut latencies: Vec<Duration> = new.iter().map(|sample| sample.latency).collect();
            latencies.sort_unstable();
            let rank = (latencies.len() * 99).div_ceil(100).max(1) - 1;
            tally.counts.recent_p99_ms = Some(latencies[rank].as_secs_f64() * 1000.0);
        }
        tally.counts
    }

    /// Ends the load's dispatch now (Ctrl-C, an error); requests in flight finish.
    pub(super) fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits for the load to end (its last due time, or the stop) and for the requests in
    /// flight, and returns every request, by due time.
    pub(super) async fn finish(self) -> Vec<Sample> {
        let samples = self.task.await.unwrap_or_default();
        drop(self.stop);
        samples
    }
}

async fn run(
    plan: Plan,
    log: SampleLog,
    started: oneshot::Sender<()>,
    mut stopped: watch::Receiver<bool>,
) -> Vec<Sample> {
    let stop = async move {
        // A dropped sender stops the load too.
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let started = move || {
        let _ = started.send(());
    };
    let (_, samples) = load::run_sampled(plan, started, log, stop).await;
    samples
}
