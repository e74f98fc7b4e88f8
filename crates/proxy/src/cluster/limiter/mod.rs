//! A concurrency limit with a priority queue: the policy crate's [`Bulkhead`] or
//! [`AdaptiveLimiter`] counts the slots and moves the limit; this adds priorities on top.
//!
//! The policy's own queue is FIFO, and a priority queue must let a critical request pass a
//! low one, so the policy types are used without their queue (`try_acquire` only) and the
//! waiting happens here, by the rules of [`queue`].
//!
//! A slot freed while someone waits is handed to the waiter chosen by those rules (the
//! releaser takes a new slot from the gate on its behalf and sends it), so no later
//! arrival can steal it. A waiter that gives up (timeout, client gone) takes itself out of
//! the queue, or gives back a slot it was sent but never saw.
//!
//! It is state, shared by requests and kept across reloads, so it stands with the cluster
//! that holds one for all the routes sending to it (`[cluster.NAME.concurrency]`, see
//! [`ClusterAdmission`](super::ClusterAdmission)); the admission stage holds one per route
//! and takes it from here.

pub(crate) mod queue;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use blastwall_policy::bulkhead::{Bulkhead, BulkheadPermit};
use blastwall_policy::concurrency::{
    AdaptiveLimiter, AdaptivePermit, Aimd, Gradient2, LimitAlgorithm, Outcome, Sample,
};
use tokio::sync::oneshot;

use self::queue::{Decision, ShedReason, View, Waiters};
use crate::config::admission::{ConcurrencyConfig, LimitConfig, Priority};
use crate::counters::AdmissionStats;
use crate::outcome::AttemptOutcome;

/// A concurrency limit shared by a route's (or a cluster's) requests.
#[derive(Debug)]
pub(crate) struct Limiter {
    config: ConcurrencyConfig,
    gate: Gate,
    waiters: Mutex<Waiters<oneshot::Sender<Grant>>>,
    // NOTE: SeqCst, like the bulkhead's counters: a releaser gives its slot back (the
    // gate's `in_flight`) then reads `queued`; a waiter increments `queued` then reads
    // `in_flight` (in `dispatch`). One of them sees the other, so no wake-up is lost.
    queued: AtomicUsize,
    /// Moving average of the time from a slot's grant to the response, in nanoseconds;
    /// 0 until the first response.
    hold_nanos: AtomicU64,
    stats: Arc<AdmissionStats>,
}

/// What counts the slots.
#[derive(Debug)]
enum Gate {
    Fixed(Bulkhead),
    Adaptive(AdaptiveLimiter<Algorithm>),
}

/// One slot of a [`Gate`].
#[derive(Debug)]
pub(crate) enum Held {
    Fixed(BulkheadPermit),
    Adaptive(AdaptivePermit<Algorithm>),
}

/// What a waiter is sent.
#[derive(Debug)]
enum Grant {
    Slot(Held),
    Displaced,
}

/// The adaptive algorithms the config can name.
#[derive(Debug)]
pub(crate) enum Algorithm {
    Gradient2(Gradient2),
    Aimd(Aimd),
}

impl LimitAlgorithm for Algorithm {
    fn limit(&self) -> u32 {
        match self {
            Algorithm::Gradient2(algorithm) => algorithm.limit(),
            Algorithm::Aimd(algorithm) => algorithm.limit(),
        }
    }

    fn on_sample(&mut self, sample: Sample, now: Instant) -> u32 {
        match self {
            Algorithm::Gradient2(algorithm) => algorithm.on_sample(sample, now),
            Algorithm::Aimd(algorithm) => algorithm.on_sample(sample, now),
        }
    }
}

impl Gate {
    fn new(limit: &LimitConfig) -> Self {
        match limit {
            LimitConfig::Fixed(bulkhead) | LimitConfig::Capacity(bulkhead) => {
                Gate::Fixed(Bulkhead::from_valid(bulkhead))
            }
            LimitConfig::Gradient2(config) => Gate::Adaptive(AdaptiveLimiter::new(
                Algorithm::Gradient2(Gradient2::from_valid(config)),
            )),
            LimitConfig::Aimd(config) => Gate::Adaptive(AdaptiveLimiter::new(Algorithm::Aimd(
                Aimd::from_valid(config),
            ))),
        }
    }

    fn bulkhead(&self) -> &Bulkhead {
        match self {
            Gate::Fixed(bulkhead) => bulkhead,
            Gate::Adaptive(limiter) => limiter.bulkhead(),
        }
    }

    fn try_take(&self, now: Instant) -> Option<Held> {
        match self {
            Gate::Fixed(bulkhead) => bulkhead.try_acquire().ok().map(Held::Fixed),
            Gate::Adaptive(limiter) => limiter.try_acquire(now).ok().map(Held::Adaptive),
        }
    }
}

impl Limiter {
    /// A limiter for `config`, counting into `stats`.
    pub(crate) fn new(config: ConcurrencyConfig, stats: Arc<AdmissionStats>) -> Self {
        let gate = Gate::new(&config.limit);
        stats.limit.set(u64::from(gate.bulkhead().limit()));
        Self {
            config,
            gate,
            waiters: Mutex::new(Waiters::default()),
            queued: AtomicUsize::new(0),
            hold_nanos: AtomicU64::new(0),
            stats,
        }
    }

    /// The config it was built from (a reload keeps the limiter when this is unchanged).
    pub(crate) fn config(&self) -> &ConcurrencyConfig {
        &self.config
    }

    /// The limit now.
    pub(crate) fn limit(&self) -> u32 {
        self.gate.bulkhead().limit()
    }

    /// Follows what the cluster's endpoints showed they take (`None`: no limit known), for
    /// a limit that does (`adaptive = "capacity"`), within its `max`; a no-op for others.
    /// A raised limit hands the new slots to waiters at once.
    pub(crate) fn follow_capacity(&self, capacity: Option<u32>) {
        let LimitConfig::Capacity(bulkhead) = &self.config.limit else {
            return;
        };
        let max = bulkhead.config().max_concurrent;
        let limit = capacity.map_or(max, |capacity| capacity.clamp(1, max));
        let before = self.limit();
        if limit == before {
            return;
        }
        self.gate.bulkhead().set_limit(limit);
        self.stats.limit.set(u64::from(limit));
        if limit > before {
            self.released();
        }
    }

    /// Whether the limit follows the endpoints' capacities.
    pub(crate) fn follows_capacity(&self) -> bool {
        matches!(self.config.limit, LimitConfig::Capacity(_))
    }

    /// Slots held now.
    pub(crate) fn in_flight(&self) -> u32 {
        self.gate.bulkhead().in_flight()
    }

    /// Requests waiting now.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, Waiters<oneshot::Sender<Grant>>> {
        // Every statement leaves the queue consistent; a panic elsewhere changes nothing.
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn hold(&self) -> Option<Duration> {
        match self.hold_nanos.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    fn view(&self, waiters: &Waiters<oneshot::Sender<Grant>>) -> View {
        View {
            in_flight: self.in_flight(),
            limit: self.limit(),
            queued: waiters.counts(),
            max_queue: self.config.queue,
            queue_timeout: self.config.queue_timeout,
            hold: self.hold(),
            queue_from: self.config.queue_from,
        }
    }

    /// A slot for a request of `priority` arriving at `now`: at once, after waiting in the
    /// queue (at most the queue timeout), or shed.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        priority: Priority,
        now: Instant,
    ) -> Result<LimitPermit, ShedReason> {
        // Nobody waits and a slot is free for this priority: no lock.
        if self.queued.load(Ordering::SeqCst) == 0
            && self.in_flight() < queue::cap(self.limit(), priority)
            && let Some(held) = self.gate.try_take(now)
        {
            return Ok(self.permit(held, now));
        }
        let (receiver, id) = match self.enter(priority, now) {
            Entered::Took(held) => return Ok(self.permit(held, now)),
            Entered::Shed(reason) => return Err(self.shed(reason)),
            Entered::Queued(receiver, id) => (receiver, id),
        };
        let mut waiting = Waiting {
            limiter: self,
            priority,
            id,
            receiver: Some(receiver),
        };
        let receiver = waiting.receiver.as_mut().expect("set just above");
        let granted = tokio::time::timeout(self.config.queue_timeout, receiver).await;
        match granted {
            Ok(Ok(Grant::Slot(held))) => {
                waiting.receiver = None;
                Ok(self.permit(held, Instant::now()))
            }
            Ok(Ok(Grant::Displaced)) => {
                waiting.receiver = None;
                Err(self.shed(ShedReason::Displaced))
            }
            // The sender is only dropped after a send; counted as a full queue if not.
            Ok(Err(_)) => Err(self.shed(ShedReason::QueueFull)),
            Err(_elapsed) => Err(self.shed(ShedReason::Timeout)),
        }
    }

    /// The slow path, under the lock: take, queue (displacing a lower waiter), or shed.
    fn enter(&self, priority: Priority, now: Instant) -> Entered {
        let mut waiters = self.lock();
        // A slot seen free may be taken by a fast-path request before us; look again.
        for _ in 0..4 {
            match queue::decide(&self.view(&waiters), priority) {
                Decision::Take => {
                    if let Some(held) = self.gate.try_take(now) {
                        return Entered::Took(held);
                    }
                }
                Decision::Shed(reason) => return Entered::Shed(reason),
                Decision::Wait { displace } => {
                    if let Some(lower) = displace
                        && let Some(displaced) = waiters.pop_newest(lower)
                    {
                        self.queued.fetch_sub(1, Ordering::SeqCst);
                        // A waiter already gone has nothing to be told.
                        let _ = displaced.send(Grant::Displaced);
                    }
                    let (sender, receiver) = oneshot::channel();
                    let id = waiters.push(priority, sender);
                    self.queued.fetch_add(1, Ordering::SeqCst);
                    // A slot freed before we were counted as waiting was not handed out.
                    self.dispatch(&mut waiters, now);
                    return Entered::Queued(receiver, id);
                }
            }
        }
        Entered::Shed(ShedReason::QueueFull)
    }

    /// Hands free slots to waiters, best first, while their priority's share allows.
    fn dispatch(&self, waiters: &mut Waiters<oneshot::Sender<Grant>>, now: Instant) {
        while let Some(best) = waiters.best() {
            if self.in_flight() >= queue::cap(self.limit(), best) {
                break;
            }
            let Some(held) = self.gate.try_take(now) else {
                break;
            };
            let waiter = waiters.pop_best().expect("best() saw a waiter");
            self.queued.fetch_sub(1, Ordering::SeqCst);
            // A waiter gone (timed out) since: its slot goes back, and the loop goes on.
            // Dropping a held slot only counts it back in the gate: no call back into us.
            drop(waiter.send(Grant::Slot(held)));
        }
        self.stats.queued.set(waiters.len() as u64);
    }

    /// After a slot was given back: hands it on if anyone waits.
    fn released(&self) {
        if self.queued.load(Ordering::SeqCst) > 0 {
            let mut waiters = self.lock();
            self.dispatch(&mut waiters, Instant::now());
        }
    }

    fn shed(&self, reason: ShedReason) -> ShedReason {
        let stats = &self.stats;
        stats.shed.increment();
        match reason {
            ShedReason::QueueFull => stats.queue_full.increment(),
            ShedReason::Hopeless => stats.queue_hopeless.increment(),
            ShedReason::Timeout => stats.queue_timeout.increment(),
            ShedReason::Displaced => stats.displaced.increment(),
        }
        reason
    }

    fn permit(self: &Arc<Self>, held: Held, now: Instant) -> LimitPermit {
        self.stats.admitted.increment();
        LimitPermit {
            limiter: Arc::clone(self),
            held: Some(held),
            granted: now,
            observed: None,
        }
    }

    fn learn_hold(&self, hold: Duration) {
        let sample = u64::try_from(hold.as_nanos()).unwrap_or(u64::MAX).max(1);
        let previous = self.hold_nanos.load(Ordering::Relaxed);
        // An average over about 8 responses; racing updates lose a sample, which is fine.
        let next = if previous == 0 {
            sample
        } else {
            previous - previous / 8 + sample / 8
        };
        self.hold_nanos.store(next.max(1), Ordering::Relaxed);
    }
}

enum Entered {
    Took(Held),
    Queued(oneshot::Receiver<Grant>, u64),
    Shed(ShedReason),
}

/// A place in the queue; leaving it early (timeout, cancelled) gives it up cleanly.
struct Waiting<'a> {
    limiter: &'a Limiter,
    priority: Priority,
    id: u64,
    /// `None` once the outcome was taken.
    receiver: Option<oneshot::Receiver<Grant>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let Some(mut receiver) = self.receiver.take() else {
            return;
        };
        let limiter = self.limiter;
        {
            let mut waiters = limiter.lock();
            if waiters.remove(self.priority, self.id) {
                limiter.queued.fetch_sub(1, Ordering::SeqCst);
                limiter.stats.queued.set(waiters.len() as u64);
                return;
            }
        }
        // Granted (or displaced) while nobody was looking: pass a slot on, never lose it.
        if let Ok(Grant::Slot(held)) = receiver.try_recv() {
            drop(held);
            limiter.released();
        }
    }
}

/// One slot of a [`Limiter`], held until the response ends; gives itself back on drop,
/// teaching an adaptive limit what the request observed.
#[derive(Debug)]
pub(crate) struct LimitPermit {
    limiter: Arc<Limiter>,
    held: Option<Held>,
    granted: Instant,
    observed: Option<(Outcome, Instant)>,
}

impl LimitPermit {
    /// What the request came to, and when its response (head) arrived.
    pub(crate) fn observe(&mut self, outcome: AttemptOutcome, at: Instant) {
        let outcome = match outcome {
            // The upstream answered: its latency is a measurement.
            AttemptOutcome::Success | AttemptOutcome::ServerError(_) => Outcome::Success,
            // Saturated, or too slow to answer: signs of overload, so the limit comes down.
            AttemptOutcome::Overloaded { .. } | AttemptOutcome::Timeout => Outcome::Dropped,
            // Broken rather than busy, or nothing learnt (the client's doing included):
            // breakers and outlier detection deal with those.
            AttemptOutcome::GatewayError(_)
            | AttemptOutcome::Unavailable
            | AttemptOutcome::ConnectFailed
            | AttemptOutcome::Refused
            | AttemptOutcome::Reset
            | AttemptOutcome::BodyFailed(_)
            | AttemptOutcome::Cancelled
            | AttemptOutcome::ClientCaused(_) => Outcome::Ignored,
        };
        self.observed = Some((outcome, at));
    }
}

impl Drop for LimitPermit {
    fn drop(&mut self) {
        let Some(held) = self.held.take() else {
            return;
        };
        let limiter = &self.limiter;
        let (outcome, at) = self.observed.unwrap_or((Outcome::Ignored, self.granted));
        if outcome != Outcome::Ignored {
            limiter.learn_hold(at.saturating_duration_since(self.granted));
        }
        match held {
            Held::Fixed(permit) => drop(permit),
            Held::Adaptive(permit) => {
                let limit = permit.record(outcome, at);
                limiter.stats.limit.set(u64::from(limit));
            }
        }
        limiter.released();
    }
}

#[cfg(test)]
mod tests;
