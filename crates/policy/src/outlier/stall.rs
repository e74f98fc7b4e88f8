//! Stall detection: an endpoint that has had requests out and has answered nothing for a
//! while is *stalled*, and takes no new traffic until it answers anything again.
//!
//! # Why a rule of its own
//!
//! A hung process (SIGSTOP, a deadlock, a full accept queue behind a live listener) is
//! invisible to every other rule for as long as the per-try timeout: its connections are
//! accepted by the kernel, nothing fails, nothing answers. The error rules learn of it only
//! when the first timeouts land, hundreds of milliseconds in; hedging hides it from idempotent
//! requests but cancels the attempt it beats, and a cancelled attempt says nothing, so the
//! hung endpoint keeps its share and every request sent there pays the hedge delay (a POST,
//! never hedged, pays the whole timeout). Silence is the symptom, so silence is the rule.
//!
//! # The rule: busy and silent, in total
//!
//! [`Silence`] adds up the time the endpoint had at least one request out since its last
//! answer (a response head of any status, or a passing health check). When that total
//! reaches the threshold, the endpoint is stalled. Counting busy time rather than the age of
//! one request is what makes the rule fit both ends:
//!
//! - a long poll out for minutes on an endpoint that answers other requests meanwhile is
//!   never stalled: each answer starts the count again (the rule is "answered nothing", not
//!   "one request is slow");
//! - a hung endpoint whose attempts are each cancelled after a few milliseconds (a hedge
//!   won) adds those milliseconds up, attempt after attempt, so it is caught even at low
//!   traffic, when it is idle between attempts;
//! - an idle endpoint is never stalled: time without requests out does not count.
//!
//! # The threshold
//!
//! [`StallAfter::Fixed`] is the operator's duration. [`StallAfter::Auto`] learns it from
//! the endpoint's own answers: `max(25 ms, 10 × the average latency of its answers)`, or
//! 300 ms before its first answer (ten times peak-EWMA's default round trip: an endpoint not
//! heard from yet may be warming up). An endpoint that answers in 3 ms is stalled after
//! 30 ms of silence; one that answers in 300 ms only after 3 s.
//!
//! # Transitions
//!
//! ```text
//!              silent_for >= threshold, the cap allows it
//!   Answering ───────────────────────────────────────────▶ Stalled
//!       ▲                                                     │
//!       └──────────────── answers anything ───────────────────┘
//! ```
//!
//! The cap (never take the last endpoints out) is the caller's: it knows the cluster. It
//! says whether a stall may happen; a stall it refuses is reported once per silent spell
//! ([`StallEvent::Suppressed`]). [`Silence::transition`] is the one place the state changes.

use std::time::{Duration, Instant};

/// The least silence that stalls an endpoint under [`StallAfter::Auto`].
pub const AUTO_STALL_FLOOR: Duration = Duration::from_millis(25);
/// How many times its average answer latency an endpoint may be silent under
/// [`StallAfter::Auto`].
pub const AUTO_STALL_MULTIPLE: u32 = 10;
/// The silence that stalls an endpoint never heard from, under [`StallAfter::Auto`].
pub const AUTO_STALL_UNKNOWN: Duration = Duration::from_millis(300);

/// How long an endpoint may be busy and silent before it is stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallAfter {
    /// Learned from its answers: `max(25 ms, 10 × their average latency)`, 300 ms before
    /// the first.
    Auto,
    /// Always this long.
    Fixed(Duration),
}

impl StallAfter {
    /// The threshold for an endpoint whose answers take `answer_latency` on average (`None`
    /// before its first answer).
    pub fn threshold(self, answer_latency: Option<Duration>) -> Duration {
        match (self, answer_latency) {
            (StallAfter::Fixed(after), _) => after,
            (StallAfter::Auto, None) => AUTO_STALL_UNKNOWN,
            (StallAfter::Auto, Some(latency)) => latency
                .saturating_mul(AUTO_STALL_MULTIPLE)
                .max(AUTO_STALL_FLOOR),
        }
    }

    /// The shortest threshold it can give (what a clock ticking it must resolve).
    pub fn shortest(self) -> Duration {
        match self {
            StallAfter::Fixed(after) => after,
            StallAfter::Auto => AUTO_STALL_FLOOR,
        }
    }
}

/// What happens to a [`Silence`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallInput {
    /// The endpoint has requests out (`true`) or none (`false`) now. Saying the same twice
    /// changes nothing, so the caller may say it whenever it is unsure.
    Busy(bool),
    /// The endpoint answered: a response head after `Some(latency)`, or a passing health
    /// check (`None`, which says nothing of its latency).
    Answered(Option<Duration>),
    /// Time to judge: stall the endpoint if it has been silent for long enough under
    /// `after`; `may_stall` is the cluster's cap.
    Check {
        /// The threshold rule.
        after: StallAfter,
        /// Whether the cluster can afford to lose this endpoint now.
        may_stall: bool,
    },
}

/// A change worth telling the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallEvent {
    /// The endpoint is stalled: out of routing until it answers.
    Stalled {
        /// How long it had been busy without answering.
        silent: Duration,
        /// The threshold that was passed.
        threshold: Duration,
    },
    /// It would have been stalled, but the cluster cannot afford it; said once per silent
    /// spell.
    Suppressed {
        /// How long it had been busy without answering.
        silent: Duration,
    },
    /// A stalled endpoint answered: it takes traffic again.
    AnsweredAgain {
        /// How long it was stalled.
        stalled_for: Duration,
    },
}

/// Where an endpoint stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// It answers (or has not been silent long enough); `suppressed` once a stall was
    /// refused in this silent spell.
    Answering { suppressed: bool },
    /// Out of routing since `since`.
    Stalled { since: Instant },
}

/// One endpoint's silence: how long it has been busy since its last answer, the average
/// latency of its answers, and whether it is stalled. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Silence {
    /// Busy time since the last answer, over busy spells that have ended.
    silent: Duration,
    /// When the busy spell in progress began (or, if it began before the last answer, that
    /// answer).
    busy_since: Option<Instant>,
    /// The average latency of its answers, weighing each new one 1/8.
    answer_latency: Option<Duration>,
    phase: Phase,
}

impl Default for Silence {
    fn default() -> Self {
        Self::new()
    }
}

impl Silence {
    /// An endpoint with nothing out, never heard from, answering.
    pub fn new() -> Self {
        Self {
            silent: Duration::ZERO,
            busy_since: None,
            answer_latency: None,
            phase: Phase::Answering { suppressed: false },
        }
    }

    /// Whether it is stalled.
    pub fn is_stalled(&self) -> bool {
        matches!(self.phase, Phase::Stalled { .. })
    }

    /// The average latency of its answers, `None` before the first.
    pub fn answer_latency(&self) -> Option<Duration> {
        self.answer_latency
    }

    /// How long it has been busy without answering, as of `now`.
    pub fn silent_for(&self, now: Instant) -> Duration {
        let spell = self
            .busy_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        self.silent.saturating_add(spell)
    }

    /// The one place the state changes; returns what the operator should hear of.
    pub fn transition(&mut self, input: StallInput, now: Instant) -> Option<StallEvent> {
        match input {
            StallInput::Busy(busy) => {
                self.set_busy(busy, now);
                None
            }
            StallInput::Answered(latency) => self.answered(latency, now),
            StallInput::Check { after, may_stall } => self.check(after, may_stall, now),
        }
    }

    fn set_busy(&mut self, busy: bool, now: Instant) {
        match (busy, self.busy_since) {
            (true, None) => self.busy_since = Some(now),
            (false, Some(since)) => {
                self.silent = self
                    .silent
                    .saturating_add(now.saturating_duration_since(since));
                self.busy_since = None;
            }
            _ => {}
        }
    }

    fn answered(&mut self, latency: Option<Duration>, now: Instant) -> Option<StallEvent> {
        if let Some(latency) = latency {
            self.answer_latency = Some(match self.answer_latency {
                None => latency,
                Some(average) => average - average / 8 + latency / 8,
            });
        }
        self.silent = Duration::ZERO;
        if self.busy_since.is_some() {
            self.busy_since = Some(now);
        }
        match self.phase {
            // ## Stalled => Answering
            Phase::Stalled { since } => {
                self.phase = Phase::Answering { suppressed: false };
                Some(StallEvent::AnsweredAgain {
                    stalled_for: now.saturating_duration_since(since),
                })
            }
            Phase::Answering { .. } => {
                self.phase = Phase::Answering { suppressed: false };
                None
            }
        }
    }

    fn check(&mut self, after: StallAfter, may_stall: bool, now: Instant) -> Option<StallEvent> {
        let Phase::Answering { suppressed } = self.phase else {
            return None;
        };
        let silent = self.silent_for(now);
        let threshold = after.threshold(self.answer_latency);
        if silent < threshold {
            return None;
        }
        if !may_stall {
            // ## Answering => Answering (refused by the cap, said once)
            self.phase = Phase::Answering { suppressed: true };
            return (!suppressed).then_some(StallEvent::Suppressed { silent });
        }
        // ## Answering => Stalled
        self.phase = Phase::Stalled { since: now };
        Some(StallEvent::Stalled { silent, threshold })
    }
}
