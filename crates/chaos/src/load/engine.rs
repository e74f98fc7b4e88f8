//! Sends the timetable's requests over a bounded set of keep-alive connections (HTTP/1.1
//! or HTTP/2, [`super::connection`]).
//!
//! One dispatcher wakes at each due time and queues the requests that are due; one worker
//! per connection takes the next queued request, sends it and reads the whole answer. The
//! dispatcher never waits for an answer, so a slow server makes requests wait in the queue
//! (and their latency, counted from the due time, shows it) rather than slowing the rate.
//! A connection that fails is dropped and the worker opens a new one for its next request.
//! Every request ends by its due time plus the timeout, sent or not, so a run ends at most
//! one timeout after its last due time.
//!
//! In the closed loop ([`Schedule::Closed`]) there is no dispatcher: each worker takes a
//! request due at once from [`ClosedLoop`] as soon as its previous one is answered.
//!
//! Each request's kind and optional headers are drawn when it is queued ([`Draw`]). A
//! sampled run ([`run_sampled`]) also records one [`Sample`] per request, and may be
//! stopped early: the stop ends dispatch at once, requests queued but not yet sent are
//! dropped uncounted, and those in flight finish (within the timeout).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::closed::ClosedLoop;
use super::connection::{Sender, connect};
use super::exchange::{Answer, exchange};
use super::plan::Plan;
use super::request::Draw;
use super::sample::{Sample, SampleLog};
use super::schedule::{ClassMix, Schedule, Timetable};
use super::stats::{ErrorKind, Progress, Recorder, Summary};

/// A request waiting for a connection.
#[derive(Debug, Clone, Copy)]
struct Job {
    due: Instant,
    class: usize,
    kind: usize,
    headers: u32,
}

/// What a job draws besides its due time: its class, kind and optional headers.
struct Picker {
    classes: ClassMix,
    draw: Draw,
}

impl Picker {
    fn job(&mut self, due: Instant) -> Job {
        Job {
            due,
            class: self.classes.next_class(),
            kind: self.draw.kind(),
            headers: self.draw.headers(),
        }
    }
}

struct Shared {
    plan: Plan,
    start: Instant,
    recorder: Mutex<Recorder>,
    samples: Option<SampleLog>,
    /// Set when the run is stopped early: workers send nothing more.
    stopped: AtomicBool,
}

impl Shared {
    fn recorder(&self) -> std::sync::MutexGuard<'_, Recorder> {
        // A poisoned recorder still holds valid counts: every update is a few additions.
        self.recorder
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stops the run: workers send nothing more. Returns when, from the start.
    fn stop(&self) -> Duration {
        self.stopped.store(true, Ordering::Relaxed);
        self.start.elapsed()
    }

    fn picker(&self) -> Picker {
        let weights = self.plan.mix.as_ref().map_or_else(
            || vec![1.0],
            |(_, classes)| classes.iter().map(|(_, weight)| *weight).collect(),
        );
        Picker {
            classes: ClassMix::new(weights),
            draw: Draw::new(
                self.plan.kinds.iter().map(|kind| kind.weight).collect(),
                self.plan
                    .shared_headers
                    .iter()
                    .map(|header| header.share)
                    .collect(),
                self.plan.seed,
            ),
        }
    }
}

/// Runs the plan; calls `started` once the connections are open and the clock starts.
pub async fn run(plan: Plan, started: impl FnOnce()) -> Summary {
    run_with_progress(plan, started, Duration::MAX, |_| {}).await
}

/// Runs the plan as [`run`] does, and hands `on_progress` the counts so far every `every`
/// while it runs (from a task of its own, so a slow terminal never delays a request).
pub async fn run_with_progress(
    plan: Plan,
    started: impl FnOnce(),
    every: Duration,
    on_progress: impl FnMut(Progress) + Send + 'static,
) -> Summary {
    let watch = Watch {
        every,
        on_progress,
        samples: None,
    };
    execute(plan, started, watch, std::future::pending()).await
}

/// Runs the plan as [`run`] does, recording one [`Sample`] per request into `samples`
/// (which the caller may read while the run goes), until the plan ends or `stop`
/// completes (Ctrl-C, say): then dispatch ends at once, requests due but not sent are
/// dropped uncounted, and those in flight finish within the timeout. Returns the summary
/// and the samples, taken out of `samples` and sorted by due time.
pub async fn run_sampled(
    plan: Plan,
    started: impl FnOnce(),
    samples: SampleLog,
    stop: impl Future<Output = ()>,
) -> (Summary, Vec<Sample>) {
    let watch = Watch {
        every: Duration::MAX,
        on_progress: |_| {},
        samples: Some(samples.clone()),
    };
    let summary = execute(plan, started, watch, stop).await;
    let mut samples = samples.take();
    samples.sort_by_key(|sample| sample.due);
    (summary, samples)
}

/// What the caller watches a run with.
struct Watch<P> {
    every: Duration,
    on_progress: P,
    samples: Option<SampleLog>,
}

async fn execute<P>(
    plan: Plan,
    started: impl FnOnce(),
    watch: Watch<P>,
    stop: impl Future<Output = ()>,
) -> Summary
where
    P: FnMut(Progress) + Send + 'static,
{
    let classes = plan.mix.as_ref().map_or(1, |(_, classes)| classes.len());
    let connections = plan.connections.max(1);
    let ready = open(&plan, connections).await;
    let schedule = plan.schedule;
    let interval = plan.interval;
    let start = Instant::now();
    let shared = Arc::new(Shared {
        plan,
        start,
        recorder: Mutex::new(Recorder::new(classes, interval)),
        samples: watch.samples,
        stopped: AtomicBool::new(false),
    });
    let (queue, receiver) = mpsc::unbounded_channel();
    let jobs = Arc::new(Jobs::new(schedule, start, receiver, &shared));
    let mut workers = JoinSet::new();
    for connection in ready {
        workers.spawn(worker(shared.clone(), jobs.clone(), connection));
    }
    started();
    let ticker = tokio::spawn(tick(shared.clone(), watch.every, watch.on_progress));
    let mut stop = std::pin::pin!(stop);
    // The closed loop's span is none: its rates count up to its last send and answer.
    let (span, mut stopped) = match schedule {
        Schedule::Open(timetable) => {
            let mut picker = shared.picker();
            let stopped = dispatch(&timetable, &mut picker, &shared, &queue, stop.as_mut()).await;
            (timetable.span(), stopped)
        }
        Schedule::Closed { .. } => (Duration::ZERO, None),
    };
    drop(queue);
    if stopped.is_none() {
        // A stop while the backlog drains (or the closed loop runs) still ends sending.
        tokio::select! {
            () = drain(&mut workers) => {}
            () = stop.as_mut() => stopped = Some(shared.stop()),
        }
    }
    drain(&mut workers).await;
    ticker.abort();
    // NOTE: waiting for the aborted ticker means no progress is handed over after `run`
    // returns, so the caller may erase its progress line for good.
    let _ = ticker.await;
    let elapsed = start.elapsed();
    // A stopped run's schedule spans only the time it sent.
    let span = stopped.map_or(span, |at| span.min(at));
    shared.recorder().summary(span, elapsed)
}

/// Opens the connections before the clock starts, as a long-running client has them; a
/// slot whose connection failed opens one at its first request.
async fn open(plan: &Plan, connections: usize) -> Vec<Option<Sender>> {
    let (addr, timeout, protocol) = (plan.addr, plan.timeout, plan.protocol);
    let mut opening = JoinSet::new();
    for _ in 0..connections {
        let tls = plan.tls.clone();
        opening.spawn(async move {
            tokio::time::timeout(timeout, connect(addr, protocol, tls.as_ref())).await
        });
    }
    let mut ready = Vec::with_capacity(connections);
    while let Some(opened) = opening.join_next().await {
        ready.push(
            opened
                .ok()
                .and_then(Result::ok)
                .and_then(Result::ok)
                .and_then(Result::ok),
        );
    }
    ready
}

async fn drain(workers: &mut JoinSet<()>) {
    while workers.join_next().await.is_some() {}
}

/// Hands the counts so far to `on_progress` every `every`, until aborted.
async fn tick(shared: Arc<Shared>, every: Duration, mut on_progress: impl FnMut(Progress)) {
    let Some(first) = shared.start.checked_add(every) else {
        return;
    };
    let mut ticks = tokio::time::interval_at(first, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        let progress = shared.recorder().progress(shared.start.elapsed());
        on_progress(progress);
    }
}

/// How early the dispatcher queues a request. Tokio's timer ticks every millisecond and
/// a sleep ends on the tick after its deadline, so a dispatcher waking *at* each due time
/// would send every request up to a millisecond late and charge that to the server. Woken
/// this much early it sends each request at most this much before it is due, and the
/// request's latency then counts from when it was sent (see [`worker`]).
const LEAD: Duration = Duration::from_millis(1);

/// Queues every request at its due time (up to [`LEAD`] early), catching up at once after
/// a late wake-up, until all are queued or `stop` completes (then when, from the start).
/// How many requests the dispatcher queues in a row before it lets other tasks run.
const YIELD_EVERY: u64 = 1024;

async fn dispatch(
    timetable: &Timetable,
    picker: &mut Picker,
    shared: &Shared,
    queue: &mpsc::UnboundedSender<Job>,
    mut stop: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Option<Duration> {
    let start = shared.start;
    let mut queued = 0;
    while queued < timetable.total() {
        let due = timetable.due_by(start.elapsed() + LEAD);
        while queued < due {
            if queue
                .send(picker.job(start + timetable.due(queued)))
                .is_err()
            {
                return None;
            }
            queued += 1;
            if queued % YIELD_EVERY == 0 {
                // A rate faster than jobs can be queued keeps this loop busy for good: it
                // still lets the stop (and the runtime's other tasks) in.
                tokio::select! {
                    biased;
                    () = stop.as_mut() => return Some(shared.stop()),
                    () = tokio::task::yield_now() => {}
                }
            }
        }
        if queued < timetable.total() {
            let next = start + timetable.due(queued);
            tokio::select! {
                () = tokio::time::sleep_until(next.checked_sub(LEAD).unwrap_or(next)) => {}
                () = stop.as_mut() => return Some(shared.stop()),
            }
        }
    }
    None
}

/// Where workers take their next request from.
enum Jobs {
    /// The dispatcher's queue of requests due (open loop).
    Queue(tokio::sync::Mutex<mpsc::UnboundedReceiver<Job>>),
    /// A request due now, while the run lasts (closed loop).
    Closed {
        bound: ClosedLoop,
        picker: Mutex<Picker>,
    },
}

impl Jobs {
    fn new(
        schedule: Schedule,
        start: Instant,
        queue: mpsc::UnboundedReceiver<Job>,
        shared: &Shared,
    ) -> Self {
        match schedule {
            Schedule::Open(_) => Self::Queue(tokio::sync::Mutex::new(queue)),
            Schedule::Closed { requests, duration } => Self::Closed {
                bound: ClosedLoop::new(start, requests, duration),
                picker: Mutex::new(shared.picker()),
            },
        }
    }

    async fn next(&self) -> Option<Job> {
        match self {
            // NOTE: the lock is held only while waiting for the next job, so idle workers
            // queue for jobs in turn; none is held while a request is in flight.
            Self::Queue(queue) => queue.lock().await.recv().await,
            Self::Closed { bound, picker } => {
                let due = Instant::now();
                if !bound.next(due) {
                    return None;
                }
                // A poisoned picker still draws valid kinds and headers.
                let mut picker = picker
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                Some(picker.job(due))
            }
        }
    }
}

async fn worker(shared: Arc<Shared>, jobs: Arc<Jobs>, mut connection: Option<Sender>) {
    loop {
        let Some(job) = jobs.next().await else { return };
        if shared.stopped.load(Ordering::Relaxed) {
            return;
        }
        let picked = Instant::now();
        // NOTE: latency counts from the due time, or from the send if the dispatcher
        // queued the request a little early: never from a time later than either.
        let origin = job.due.min(picked);
        let deadline = job.due + shared.plan.timeout;
        let due = job.due - shared.start;
        if picked >= deadline {
            shared.recorder().expired_unsent();
            shared.finish(
                &job,
                due,
                picked - job.due,
                Answer::none(ErrorKind::Timeout),
            );
            continue;
        }
        shared
            .recorder()
            .sent(due, picked.saturating_duration_since(job.due));
        let request = shared.plan.request(job.kind, job.class, job.headers);
        let exchange = exchange(&mut connection, &shared.plan, request);
        let answer = match tokio::time::timeout_at(deadline, exchange).await {
            Ok(answer) => answer,
            Err(_elapsed) => {
                // The answer may still arrive on this connection: it cannot be reused.
                connection = None;
                Answer::none(ErrorKind::Timeout)
            }
        };
        shared.finish(&job, due, Instant::now() - origin, answer);
    }
}

impl Shared {
    /// Records a request's outcome, and its sample when the run keeps them.
    fn finish(&self, job: &Job, due: Duration, latency: Duration, answer: Answer) {
        {
            let mut recorder = self.recorder();
            if let Some(version) = answer.version {
                recorder.version(version);
            }
            recorder.record(job.class, due, latency, answer.outcome);
        }
        if let Some(samples) = &self.samples {
            samples.push(Sample {
                due,
                latency,
                outcome: answer.outcome,
                kind: u16::try_from(job.kind).unwrap_or(u16::MAX),
                headers: job.headers,
                source: answer.source,
                attempts: answer.attempts,
            });
        }
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
