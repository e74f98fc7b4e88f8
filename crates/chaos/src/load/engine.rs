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

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::closed::ClosedLoop;
use super::connection::{Protocol, Sender, connect};
use super::schedule::{ClassMix, Schedule, Timetable};
use super::stats::{ErrorKind, Outcome, Progress, Recorder, Summary};
use super::tls::TlsSettings;

/// Everything a run needs, checked and parsed before it starts.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The method of every request.
    pub method: Method,
    /// The request target (path and query) of every request.
    pub target: Uri,
    /// Headers of every request, `Host` included.
    pub headers: HeaderMap,
    /// Body of every request.
    pub body: Bytes,
    /// The header that tells traffic classes apart, with each class's value and weight.
    pub mix: Option<(HeaderName, Vec<(HeaderValue, f64)>)>,
    /// When requests are sent: on a timetable, or as fast as the connections answer.
    pub schedule: Schedule,
    /// Connections kept open at most.
    pub connections: usize,
    /// How long a request may take from its due time.
    pub timeout: Duration,
    /// Width of a timeline point.
    pub interval: Duration,
    /// The HTTP version of every connection (over TLS, what ALPN agrees instead).
    pub protocol: Protocol,
    /// TLS for `https://` targets.
    pub tls: Option<TlsSettings>,
}

/// A request waiting for a connection.
#[derive(Debug, Clone, Copy)]
struct Job {
    due: Instant,
    class: usize,
}

struct Shared {
    plan: Plan,
    start: Instant,
    recorder: Mutex<Recorder>,
}

impl Shared {
    fn recorder(&self) -> std::sync::MutexGuard<'_, Recorder> {
        // A poisoned recorder still holds valid counts: every update is a few additions.
        self.recorder
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn request(&self, class: usize) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.plan.body.clone()));
        *request.method_mut() = self.plan.method.clone();
        *request.uri_mut() = self.plan.target.clone();
        *request.headers_mut() = self.plan.headers.clone();
        if let Some((name, classes)) = &self.plan.mix
            && let Some((value, _)) = classes.get(class)
        {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        request
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
    let classes = plan.mix.as_ref().map_or(1, |(_, classes)| classes.len());
    let weights = plan.mix.as_ref().map_or_else(
        || vec![1.0],
        |(_, classes)| classes.iter().map(|(_, weight)| *weight).collect(),
    );
    let connections = plan.connections.max(1);
    let (addr, timeout, protocol) = (plan.addr, plan.timeout, plan.protocol);
    // Connections are opened before the clock starts, as a long-running client has them.
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

    let schedule = plan.schedule;
    let interval = plan.interval;
    let start = Instant::now();
    let shared = Arc::new(Shared {
        plan,
        start,
        recorder: Mutex::new(Recorder::new(classes, interval)),
    });
    let (queue, receiver) = mpsc::unbounded_channel();
    let jobs = Arc::new(match schedule {
        Schedule::Open(_) => Jobs::Queue(tokio::sync::Mutex::new(receiver)),
        Schedule::Closed { requests, duration } => Jobs::Closed(ClosedLoop::new(
            start,
            requests,
            duration,
            ClassMix::new(weights.clone()),
        )),
    });
    let mut workers = JoinSet::new();
    for connection in ready {
        workers.spawn(worker(shared.clone(), jobs.clone(), connection));
    }
    started();
    let ticker = tokio::spawn(tick(shared.clone(), every, on_progress));
    // The closed loop's span is none: its rates count up to its last send and answer.
    let span = match schedule {
        Schedule::Open(timetable) => {
            dispatch(&timetable, ClassMix::new(weights), start, &queue).await;
            timetable.span()
        }
        Schedule::Closed { .. } => Duration::ZERO,
    };
    drop(queue);
    while workers.join_next().await.is_some() {}
    ticker.abort();
    // NOTE: waiting for the aborted ticker means no progress is handed over after `run`
    // returns, so the caller may erase its progress line for good.
    let _ = ticker.await;
    let elapsed = start.elapsed();
    shared.recorder().summary(span, elapsed)
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
/// a late wake-up.
async fn dispatch(
    timetable: &Timetable,
    mut mix: ClassMix,
    start: Instant,
    queue: &mpsc::UnboundedSender<Job>,
) {
    let mut queued = 0;
    while queued < timetable.total() {
        let due = timetable.due_by(start.elapsed() + LEAD);
        while queued < due {
            let job = Job {
                due: start + timetable.due(queued),
                class: mix.next_class(),
            };
            if queue.send(job).is_err() {
                return;
            }
            queued += 1;
        }
        if queued < timetable.total() {
            let next = start + timetable.due(queued);
            tokio::time::sleep_until(next.checked_sub(LEAD).unwrap_or(next)).await;
        }
    }
}

/// Where workers take their next request from.
enum Jobs {
    /// The dispatcher's queue of requests due (open loop).
    Queue(tokio::sync::Mutex<mpsc::UnboundedReceiver<Job>>),
    /// A request due now, while the run lasts (closed loop).
    Closed(ClosedLoop),
}

impl Jobs {
    async fn next(&self) -> Option<Job> {
        match self {
            // NOTE: the lock is held only while waiting for the next job, so idle workers
            // queue for jobs in turn; none is held while a request is in flight.
            Self::Queue(queue) => queue.lock().await.recv().await,
            Self::Closed(closed) => {
                let due = Instant::now();
                closed.next(due).map(|class| Job { due, class })
            }
        }
    }
}

async fn worker(shared: Arc<Shared>, jobs: Arc<Jobs>, mut connection: Option<Sender>) {
    loop {
        let Some(job) = jobs.next().await else { return };
        let picked = Instant::now();
        // NOTE: latency counts from the due time, or from the send if the dispatcher
        // queued the request a little early: never from a time later than either.
        let origin = job.due.min(picked);
        let deadline = job.due + shared.plan.timeout;
        let due = job.due - shared.start;
        if picked >= deadline {
            let mut recorder = shared.recorder();
            recorder.expired_unsent();
            recorder.record(
                job.class,
                due,
                picked - job.due,
                Outcome::Error(ErrorKind::Timeout),
            );
            continue;
        }
        shared
            .recorder()
            .sent(due, picked.saturating_duration_since(job.due));
        let outcome =
            match tokio::time::timeout_at(deadline, attempt(&mut connection, &shared, job.class))
                .await
            {
                Ok(outcome) => outcome,
                Err(_elapsed) => {
                    // The answer may still arrive on this connection: it cannot be reused.
                    connection = None;
                    Outcome::Error(ErrorKind::Timeout)
                }
            };
        let latency = Instant::now() - origin;
        shared.recorder().record(job.class, due, latency, outcome);
    }
}

/// Sends one request on the worker's connection, opening one first if it has none or the
/// one it has is closed.
async fn attempt(connection: &mut Option<Sender>, shared: &Shared, class: usize) -> Outcome {
    if let Some(sender) = connection.as_mut()
        && sender.ready().await.is_err()
    {
        *connection = None;
    }
    if connection.is_none() {
        match connect(
            shared.plan.addr,
            shared.plan.protocol,
            shared.plan.tls.as_ref(),
        )
        .await
        {
            Ok(Ok(sender)) => *connection = Some(sender),
            Ok(Err(_)) => return Outcome::Error(ErrorKind::Protocol),
            Err(_) => return Outcome::Error(ErrorKind::Connect),
        }
    }
    let sender = connection.as_mut().expect("a connection was opened above");
    let outcome = match sender.send(shared.request(class)).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let version = response.version();
            match response.into_body().collect().await {
                Ok(_) => {
                    shared.recorder().version(version);
                    Outcome::Status(status)
                }
                Err(error) => Outcome::Error(classify(&error)),
            }
        }
        Err(error) => Outcome::Error(classify(&error)),
    };
    if matches!(outcome, Outcome::Error(_)) {
        *connection = None;
    }
    outcome
}

/// What a failed exchange on an open connection means to the client.
fn classify(error: &hyper::Error) -> ErrorKind {
    if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_parse() || error.is_user() {
        ErrorKind::Protocol
    } else {
        // Closed, canceled, incomplete message, or an I/O error (reset, broken pipe).
        ErrorKind::Reset
    }
}
